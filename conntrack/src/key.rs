//! Flow keys: the 5-tuple a packet carries, as seen on the wire where it arrives.
//!
//! A session is reachable through up to two keys: the *original* key (client → VIP, as the
//! client's packet arrives) and the *reply* key (as the real server's answer arrives at the
//! director: RS → CIP in NAT, RS → LIP in FullNAT). DR and TUN sessions have no reply key.
//!
//! ICMP echo flows use the echo identifier as a port: a request from `src` carries
//! `(sport = id, dport = 0)`, its reply `(sport = 0, dport = id)`, so that the reply key is the
//! mirror of the request key exactly as for TCP and UDP.

use core::fmt;
use core::net::Ipv4Addr;

/// The L4 protocols the director tracks, with their IP protocol numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    /// ICMP (echo sessions), IP protocol 1.
    Icmp = 1,
    /// TCP, IP protocol 6.
    Tcp = 6,
    /// UDP, IP protocol 17.
    Udp = 17,
}

impl Proto {
    /// The protocol for an IP protocol number, if rvs tracks it.
    #[inline]
    pub fn from_ip_proto(n: u8) -> Option<Proto> {
        match n {
            1 => Some(Proto::Icmp),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    /// The IP protocol number.
    #[inline]
    pub fn ip_proto(self) -> u8 {
        self as u8
    }

    /// The lower-case name ipvsadm uses (`tcp`, `udp`, `icmp`).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of a session's keys a packet matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → service direction (LVS "input").
    Original,
    /// Real server → client direction (LVS "output").
    Reply,
}

/// A flow 5-tuple, IPv4, in host representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address as on the wire.
    pub src: Ipv4Addr,
    /// Destination address as on the wire.
    pub dst: Ipv4Addr,
    /// Source port (ICMP echo: identifier for requests, 0 for replies).
    pub sport: u16,
    /// Destination port (ICMP echo: 0 for requests, identifier for replies).
    pub dport: u16,
    /// L4 protocol.
    pub proto: Proto,
}

impl FlowKey {
    /// A key from its parts.
    #[inline]
    pub fn new(proto: Proto, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        }
    }

    /// The key as two words: both addresses, then ports and protocol. Equal keys give equal
    /// words and different keys different words; used for hashing and comparing.
    #[inline]
    pub(crate) fn packed(&self) -> (u64, u64) {
        let addrs = (u64::from(self.src.to_bits()) << 32) | u64::from(self.dst.to_bits());
        let rest = (u64::from(self.sport) << 24)
            | (u64::from(self.dport) << 8)
            | u64::from(self.proto.ip_proto());
        (addrs, rest)
    }

    /// The key of a packet going the other way on the same addresses and ports.
    #[inline]
    pub fn mirror(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.proto, self.src, self.sport, self.dst, self.dport
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_an_involution() {
        let k = FlowKey::new(
            Proto::Tcp,
            Ipv4Addr::new(10, 0, 0, 1),
            40000,
            Ipv4Addr::new(192, 0, 2, 10),
            80,
        );
        assert_eq!(k.mirror().mirror(), k);
        assert_eq!(k.mirror().src, k.dst);
        assert_eq!(k.mirror().dport, k.sport);
    }

    #[test]
    fn proto_numbers() {
        for p in [Proto::Icmp, Proto::Tcp, Proto::Udp] {
            assert_eq!(Proto::from_ip_proto(p.ip_proto()), Some(p));
        }
        assert_eq!(Proto::from_ip_proto(47), None);
    }
}
