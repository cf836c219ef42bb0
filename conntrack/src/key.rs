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
use core::hash::Hash;
use core::net::{Ipv4Addr, Ipv6Addr};

/// A flow key of one address family: what the session table hashes, compares and mirrors.
/// A table holds the keys of one family ([`FlowKey`] for IPv4, [`FlowKey6`] for IPv6), so
/// that an IPv4 session does not grow by the width of IPv6 addresses.
pub trait Key: Copy + Eq + fmt::Debug {
    /// The key as plain words: equal keys give equal words and different keys different
    /// words (hashed and compared instead of the fields).
    type Packed: Copy + Eq + Hash;

    /// The key as words.
    fn packed(&self) -> Self::Packed;

    /// The L4 protocol.
    fn proto(&self) -> Proto;

    /// The key of a packet going the other way on the same addresses and ports.
    fn mirror(&self) -> Self;
}

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

/// Ports and protocol as one word (both families).
#[inline(always)]
fn ports_word(sport: u16, dport: u16, proto: Proto) -> u64 {
    (u64::from(sport) << 24) | (u64::from(dport) << 8) | u64::from(proto.ip_proto())
}

impl Key for FlowKey {
    /// Both addresses, then ports and protocol.
    type Packed = (u64, u64);

    #[inline]
    fn packed(&self) -> (u64, u64) {
        let addrs = (u64::from(self.src.to_bits()) << 32) | u64::from(self.dst.to_bits());
        (addrs, ports_word(self.sport, self.dport, self.proto))
    }

    #[inline]
    fn proto(&self) -> Proto {
        self.proto
    }

    #[inline]
    fn mirror(&self) -> FlowKey {
        FlowKey::mirror(self)
    }
}

/// A flow 5-tuple, IPv6, in host representation (ICMPv6 echo flows use the echo identifier
/// as IPv4's do, under [`Proto::Icmp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey6 {
    /// Source address as on the wire.
    pub src: Ipv6Addr,
    /// Destination address as on the wire.
    pub dst: Ipv6Addr,
    /// Source port (echo: identifier for requests, 0 for replies).
    pub sport: u16,
    /// Destination port (echo: 0 for requests, identifier for replies).
    pub dport: u16,
    /// L4 protocol.
    pub proto: Proto,
}

impl FlowKey6 {
    /// A key from its parts.
    #[inline]
    pub fn new(proto: Proto, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> FlowKey6 {
        FlowKey6 {
            src,
            dst,
            sport,
            dport,
            proto,
        }
    }
}

impl Key for FlowKey6 {
    /// Source, destination, then ports and protocol.
    type Packed = (u128, u128, u64);

    #[inline]
    fn packed(&self) -> (u128, u128, u64) {
        (
            self.src.to_bits(),
            self.dst.to_bits(),
            ports_word(self.sport, self.dport, self.proto),
        )
    }

    #[inline]
    fn proto(&self) -> Proto {
        self.proto
    }

    #[inline]
    fn mirror(&self) -> FlowKey6 {
        FlowKey6 {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

impl fmt::Display for FlowKey6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]:{} -> [{}]:{}",
            self.proto, self.src, self.sport, self.dst, self.dport
        )
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
    fn ipv6_keys_mirror_and_pack_apart() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let k = FlowKey6::new(Proto::Tcp, a, 40000, b, 80);
        assert_eq!(k.mirror().mirror(), k);
        assert_eq!((k.mirror().src, k.mirror().sport), (b, 80));
        assert_ne!(k.packed(), k.mirror().packed());
        // Addresses that agree in their low 64 bits (where a narrower packing would lose
        // the rest) still pack apart; so do protocols.
        let c: Ipv6Addr = "2001:db9::1".parse().unwrap();
        assert_ne!(
            k.packed(),
            FlowKey6::new(Proto::Tcp, c, 40000, b, 80).packed()
        );
        assert_ne!(
            k.packed(),
            FlowKey6::new(Proto::Udp, a, 40000, b, 80).packed()
        );
        assert_eq!(
            k.to_string(),
            "tcp [2001:db8::1]:40000 -> [2001:db8:1::10]:80"
        );
    }

    #[test]
    fn proto_numbers() {
        for p in [Proto::Icmp, Proto::Tcp, Proto::Udp] {
            assert_eq!(Proto::from_ip_proto(p.ip_proto()), Some(p));
        }
        assert_eq!(Proto::from_ip_proto(47), None);
    }
}
