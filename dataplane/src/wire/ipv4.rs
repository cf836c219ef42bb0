//! The IPv4 header (RFC 791): where its fields lie, the protocol numbers the director knows,
//! and the one writer of the IPv4 headers the director builds itself (the frames it answers
//! or originates, and TUN's outer header).

use core::net::Ipv4Addr;

/// Byte offsets of the fixed header's fields.
pub mod field {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP/ECN.
    pub const TOS: usize = 1;
    /// Total length, header included.
    pub const LENGTH: usize = 2;
    /// Identification.
    pub const IDENT: usize = 4;
    /// Flags (top three bits) and fragment offset.
    pub const FLAGS_FRAG: usize = 6;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: usize = 10;
    /// Source address.
    pub const SRC: usize = 12;
    /// Destination address.
    pub const DST: usize = 16;
}

/// The first byte of a header without options: version 4, IHL 5.
pub const VER_IHL_NO_OPTIONS: u8 = 0x45;
/// Don't fragment, in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More fragments, in the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits of the flags/fragment-offset word.
pub const FRAG_OFFSET: u16 = 0x1fff;
/// The TTL of packets the director originates (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// The IP protocol numbers the director tells apart (IANA "Assigned Internet Protocol
/// Numbers"); everything else is [`IpProto::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProto {
    /// ICMP (1).
    Icmp,
    /// IPv4-in-IPv4 (4, RFC 2003): TUN mode's encapsulation.
    Ipip,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// Any other protocol, by number.
    Other(u8),
}

impl IpProto {
    /// The protocol of number `n`.
    #[inline]
    pub const fn from_number(n: u8) -> IpProto {
        match n {
            1 => IpProto::Icmp,
            4 => IpProto::Ipip,
            6 => IpProto::Tcp,
            17 => IpProto::Udp,
            n => IpProto::Other(n),
        }
    }

    /// The protocol's number, as in the header.
    #[inline]
    pub const fn number(self) -> u8 {
        match self {
            IpProto::Icmp => 1,
            IpProto::Ipip => 4,
            IpProto::Tcp => 6,
            IpProto::Udp => 17,
            IpProto::Other(n) => n,
        }
    }
}

impl From<u8> for IpProto {
    #[inline]
    fn from(n: u8) -> IpProto {
        IpProto::from_number(n)
    }
}

impl From<IpProto> for u8 {
    #[inline]
    fn from(p: IpProto) -> u8 {
        p.number()
    }
}

impl From<conntrack::Proto> for IpProto {
    #[inline]
    fn from(p: conntrack::Proto) -> IpProto {
        match p {
            conntrack::Proto::Tcp => IpProto::Tcp,
            conntrack::Proto::Udp => IpProto::Udp,
            conntrack::Proto::Icmp => IpProto::Icmp,
        }
    }
}

/// An IPv4 header without options, to write with [`Ipv4Header::emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub proto: IpProto,
    /// DSCP/ECN byte.
    pub tos: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More-fragments bit and fragment offset (in 8-byte units), as in the header's
    /// flags/offset word; zero for a whole datagram.
    pub frag: u16,
    /// Total length, this header's 20 bytes included.
    pub total_len: u16,
}

impl Ipv4Header {
    /// Writes the header, its checksum included, into `out` (no options).
    #[inline]
    pub fn emit(&self, out: &mut [u8; 20]) {
        out[field::VER_IHL] = VER_IHL_NO_OPTIONS;
        out[field::TOS] = self.tos;
        out[field::LENGTH..field::LENGTH + 2].copy_from_slice(&self.total_len.to_be_bytes());
        out[field::IDENT..field::IDENT + 2].copy_from_slice(&self.ident.to_be_bytes());
        let df: u16 = if self.dont_frag { FLAG_DF } else { 0 };
        let flags = df | (self.frag & (FLAG_MF | FRAG_OFFSET));
        out[field::FLAGS_FRAG..field::FLAGS_FRAG + 2].copy_from_slice(&flags.to_be_bytes());
        out[field::TTL] = self.ttl;
        out[field::PROTOCOL] = self.proto.number();
        out[field::CHECKSUM..field::CHECKSUM + 2].fill(0);
        out[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        out[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        let c = crate::checksum::checksum(out);
        out[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpProtocol, Ipv4Packet};

    #[test]
    fn numbers_round_trip() {
        for n in 0..=255u8 {
            assert_eq!(IpProto::from(n).number(), n);
        }
        assert_eq!(IpProto::from(6), IpProto::Tcp);
        assert_eq!(IpProto::from(conntrack::Proto::Udp), IpProto::Udp);
    }

    #[test]
    fn emitted_header_reads_back() {
        let h = Ipv4Header {
            src: Ipv4Addr::new(10, 2, 0, 1),
            dst: Ipv4Addr::new(10, 1, 0, 11),
            proto: IpProto::Ipip,
            tos: 0xb8,
            ttl: 63,
            ident: 0x1234,
            dont_frag: true,
            frag: 0,
            total_len: 20 + 60,
        };
        let mut b = [0xaau8; 20];
        h.emit(&mut b);
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 80);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(p.next_header(), IpProtocol::Unknown(4));
        assert_eq!(p.src_addr(), h.src);
        assert_eq!(p.dst_addr(), h.dst);
        assert_eq!(b[field::TOS], 0xb8);
        assert!(p.verify_checksum());
        let frag = Ipv4Header {
            dont_frag: false,
            frag: FLAG_MF | 185,
            ..h
        };
        frag.emit(&mut b);
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(!p.dont_frag() && p.more_frags());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert!(p.verify_checksum());
    }
}
