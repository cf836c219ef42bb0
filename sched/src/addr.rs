//! Addresses of either family as services and dests carry them: written as ipvsadm writes
//! them (`192.0.2.1:80`, `[2001:db8::10]:80`) and laid out as bytes for the fixed hashes.

use core::fmt;
use core::net::IpAddr;

/// An address and port, displayed as ipvsadm lists them: IPv6 addresses in brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrPort(pub IpAddr, pub u16);

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// Appends the address's bytes in network order: 4 for IPv4, 16 for IPv6.
pub(crate) fn push_octets(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv6_is_bracketed_as_ipvsadm_lists_it() {
        let v4 = AddrPort(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80);
        let v6 = AddrPort(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
            80,
        );
        assert_eq!(v4.to_string(), "192.0.2.1:80");
        assert_eq!(v6.to_string(), "[2001:db8::10]:80");
        let mut b = Vec::new();
        push_octets(&mut b, v4.0);
        push_octets(&mut b, v6.0);
        assert_eq!(b.len(), 20);
    }
}
