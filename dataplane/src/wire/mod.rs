//! Packet views: zero-copy readers and writers over packet bytes.
//!
//! Ethernet, ARP, IPv4, IPv6, TCP, UDP and ICMP come from `smoltcp::wire`, re-exported here so
//! the data path names one module; what smoltcp lacks is written here in the same style
//! ([`vlan`]: 802.1Q tags), and the header layouts the fixed-offset readers and in-place
//! rewrites use ([`ipv4`]: fields, protocol numbers and the one IPv4 header writer; [`l4`]:
//! TCP, UDP and ICMP fields and values).
//!
//! # Panic contract
//! Untrusted bytes enter a view only through `new_checked` (or `new_unchecked` followed by a
//! successful `check_len`). After that, no getter panics: every field a getter reads lies inside
//! the checked length. `new_unchecked` on its own is for buffers the data path built itself.
//! The property tests at the bottom of this file feed arbitrary bytes to every `new_checked`
//! below and call every getter (and each `Repr::parse`).
//!
//! # What `new_checked` checks, and what the data path must check itself
//! Pinned by the tests in this file against smoltcp 0.14:
//!
//! | view | `new_checked` rejects | it does **not** check |
//! |---|---|---|
//! | [`EthernetFrame`] | < 14 bytes | 802.1Q/QinQ tags (ethertype 0x8100/0x88a8 is `Unknown`); 802.3 length-style ethertypes < 0x0600 |
//! | [`VlanPacket`] | < 4 bytes | reserved VID 0xfff (only [`VlanRepr::parse`] refuses it) |
//! | [`Ipv4Packet`] | < 20 bytes; IHL < 5; IHL×4 > buffer; total length < IHL×4; total length > buffer | version = 4; header checksum; fragments (MF / offset ≠ 0: a later fragment has no L4 header); options; TTL; martian addresses. A buffer longer than the total length (Ethernet padding) is accepted and `payload()` is trimmed to the total length |
//! | [`TcpPacket`] | < 20 bytes; data offset < 5; data offset×4 > buffer | checksum; ports ≠ 0; flag combinations (SYN+FIN, SYN+RST, none); options (malformed ones only fail `options_summary` / `TcpRepr::parse`). Its length is the **buffer's**: build it from `Ipv4Packet::payload()`, never from the rest of the frame, or Ethernet padding becomes payload and breaks the checksum |
//! | [`UdpPacket`] | < 8 bytes; length field < 8; length field > buffer | checksum; dst port ≠ 0 (`UdpRepr::parse` does); length field < IP payload (trailing bytes accepted, `payload()` trimmed to the length field) |
//! | [`Icmpv4Packet`] | < 8 bytes | checksum; type/code; the datagram quoted by an error. `Ipv4Packet::new_checked` on that quote fails whenever the quote is shorter than the original total length (RFC 792 asks for only IP header + 8 bytes), and so does `Icmpv4Repr::parse`: read a quoted header with `new_unchecked` after checking `len ≥ 20`, `IHL ≥ 5`, `len ≥ IHL×4 + 8` |
//! | [`ArpPacket`] | < 8 bytes; < 8 + 2·hlen + 2·plen bytes | htype = Ethernet, ptype = IPv4, hlen = 6, plen = 4 (`ArpRepr::parse` checks these four); operation; sender MAC unicast; sender IP ≠ 0.0.0.0 (probe) |
//! | [`Ipv6Packet`] | < 40 bytes; payload length > buffer − 40 | version = 6; extension headers (next header is not necessarily L4); trailing bytes accepted, `payload()` trimmed |
//! | [`Icmpv6Packet`] | < 4 bytes; shorter than its type's fixed header; unknown types | checksum |

pub mod ipv4;
pub mod l4;
pub mod vlan;

pub use ipv4::{IpProto, Ipv4Header};
pub use l4::{icmp, tcp, udp};

/// The error every view returns: the input is malformed or too short.
pub use smoltcp::wire::Error as WireError;
pub use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame,
    EthernetProtocol, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpAddress,
    IpProtocol, Ipv4Address, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
pub use vlan::{Packet as VlanPacket, Repr as VlanRepr};

/// The big-endian `u32` at `b[at..at + 4]` (a TCP sequence number, an address).
///
/// # Panics
/// If `b` is shorter than `at + 4`: callers index headers whose length they have checked.
#[inline]
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of an 802.1Q customer tag (C-tag).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Ethertype of an 802.1ad service tag (S-tag, QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Length of an untagged Ethernet II header: two MACs and an ethertype.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Length of one 802.1Q/802.1ad tag (TCI and the next ethertype).
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an IPv4 header without options (IHL 5).
pub const IPV4_MIN_HEADER_LEN: usize = 20;

const _: () = assert!(ETHERNET_HEADER_LEN == smoltcp::wire::ETHERNET_HEADER_LEN);
const _: () = assert!(VLAN_TAG_LEN == vlan::HEADER_LEN);
const _: () = assert!(IPV4_MIN_HEADER_LEN == smoltcp::wire::IPV4_HEADER_LEN);

#[cfg(test)]
mod tests {
    use core::hint::black_box;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetRepr, Icmpv4Repr, Icmpv6Repr, Ipv4Repr, Ipv6Address, Ipv6Repr, TcpRepr, UdpRepr,
    };

    use super::*;

    const ERR: Result<(), WireError> = Err(WireError);

    fn ok<T>(r: Result<T, WireError>) -> Result<(), WireError> {
        r.map(|_| ())
    }

    /// An IPv4 header (version/IHL byte `ver_ihl`, total length `total_len`) followed by zeros up
    /// to `buf_len` bytes; protocol UDP, 10.0.0.1 → 10.0.0.2, checksum filled in.
    fn ipv4(ver_ihl: u8, total_len: u16, buf_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; buf_len.max(20)];
        b[0] = ver_ihl;
        b[2..4].copy_from_slice(&total_len.to_be_bytes());
        b[8] = 64;
        b[9] = 17;
        b[12..16].copy_from_slice(&[10, 0, 0, 1]);
        b[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let hl = (usize::from(ver_ihl & 0x0f) * 4).clamp(20, b.len());
        let c = crate::checksum::checksum(&b[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b.truncate(buf_len);
        b
    }

    #[test]
    fn ethernet_checks() {
        let mut frame = [0u8; 14];
        frame[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        for len in 0..14 {
            assert_eq!(ok(EthernetFrame::new_checked(&frame[..len])), ERR);
        }
        let f = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert!(f.payload().is_empty());
        // No tag parsing: 0x8100 is just an unknown ethertype.
        assert_eq!(f.ethertype(), EthernetProtocol::Unknown(ETHERTYPE_VLAN));
        // An 802.3 length field is not told apart from an ethertype either.
        frame[12..14].copy_from_slice(&46u16.to_be_bytes());
        let f = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(f.ethertype(), EthernetProtocol::Unknown(46));
    }

    #[test]
    fn ipv4_rejects() {
        // Shorter than a minimal header.
        let good = ipv4(0x45, 28, 28);
        for len in 0..20 {
            assert_eq!(ok(Ipv4Packet::new_checked(&good[..len])), ERR, "len {len}");
        }
        // IHL < 5 (IHL 4 = 16 bytes), everything else consistent.
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x44, 28, 28)[..])), ERR);
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x40, 28, 28)[..])), ERR);
        // IHL 15 = 60 bytes, beyond a 40-byte buffer.
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x4f, 40, 40)[..])), ERR);
        // Total length beyond the buffer.
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x45, 29, 28)[..])), ERR);
        // Total length shorter than the header.
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x45, 19, 28)[..])), ERR);
        assert_eq!(ok(Ipv4Packet::new_checked(&ipv4(0x46, 20, 28)[..])), ERR);
        // The good one passes and verifies.
        let p = Ipv4Packet::new_checked(&good[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn ipv4_does_not_check() {
        // Version 6 in an IPv4 view: accepted by the view, refused by Ipv4Repr::parse.
        let b = ipv4(0x65, 28, 28);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert!(Ipv4Repr::parse(&p, &ChecksumCapabilities::ignored()).is_err());

        // A wrong header checksum is accepted.
        let mut b = ipv4(0x45, 28, 28);
        b[10] ^= 0xff;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());

        // A later fragment (offset 185×8) with MF set is accepted: no L4 header inside.
        let mut b = ipv4(0x45, 28, 28);
        b[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);

        // TTL 0 and arbitrary option bytes are accepted.
        let mut b = ipv4(0x46, 32, 32);
        b[8] = 0;
        b[20..24].copy_from_slice(&[0xff, 0x00, 0x13, 0x37]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.hop_limit(), 0);
        assert_eq!(p.header_len(), 24);

        // Ethernet padding past the total length is accepted, and the payload excludes it.
        let b = ipv4(0x45, 28, 60);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    /// A 20-byte TCP header with data offset `doff` and flags `flags`, plus `extra` zero bytes.
    fn tcp(doff: u8, flags: u8, extra: usize) -> Vec<u8> {
        let mut b = vec![0u8; 20 + extra];
        b[0..2].copy_from_slice(&1234u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[12] = doff << 4;
        b[13] = flags;
        b
    }

    #[test]
    fn tcp_rejects() {
        let good = tcp(5, 0x02, 0);
        for len in 0..20 {
            assert_eq!(ok(TcpPacket::new_checked(&good[..len])), ERR, "len {len}");
        }
        for doff in 0..5 {
            assert_eq!(ok(TcpPacket::new_checked(&tcp(doff, 0x02, 40)[..])), ERR);
        }
        // Data offset 6 (24 bytes) in a 23-byte buffer; 15 (60 bytes) in 59.
        assert_eq!(ok(TcpPacket::new_checked(&tcp(6, 0x02, 3)[..])), ERR);
        assert_eq!(ok(TcpPacket::new_checked(&tcp(15, 0x02, 39)[..])), ERR);
        assert!(TcpPacket::new_checked(&tcp(15, 0x02, 40)[..]).is_ok());
        assert!(TcpPacket::new_checked(&good[..]).is_ok());
    }

    #[test]
    fn tcp_does_not_check() {
        let src = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
        let dst = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2));
        let ignored = ChecksumCapabilities::ignored();

        // SYN+FIN and no flags at all pass the view; TcpRepr::parse refuses SYN+FIN.
        let b = tcp(5, 0x03, 0);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.syn() && p.fin());
        assert!(!p.verify_checksum(&src, &dst));
        assert!(TcpRepr::parse(&p, &src, &dst, &ignored).is_err());
        assert!(TcpPacket::new_checked(&tcp(5, 0, 0)[..]).is_ok());

        // Source port 0 passes the view (TcpRepr::parse refuses it).
        let mut b = tcp(5, 0x02, 0);
        b[0..2].copy_from_slice(&[0, 0]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 0);
        assert!(TcpRepr::parse(&p, &src, &dst, &ignored).is_err());

        // A malformed option (MSS with length 3) passes the view; only option parsing fails.
        let mut b = tcp(6, 0x02, 4);
        b[20..24].copy_from_slice(&[2, 3, 0x05, 0xb4]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.options_summary().is_err());
        assert!(TcpRepr::parse(&p, &src, &dst, &ignored).is_err());
        // An option claiming more bytes than the header has fails the same way.
        b[20..24].copy_from_slice(&[8, 10, 0, 0]);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(p.options_summary().is_err());

        // The payload runs to the end of the buffer: padding would be counted.
        let b = tcp(5, 0x10, 6);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 6);
        assert_eq!(p.segment_len(), 6);
    }

    /// A UDP header with length field `len`, plus `extra` zero bytes of buffer.
    fn udp(len: u16, extra: usize) -> Vec<u8> {
        let mut b = vec![0u8; 8 + extra];
        b[0..2].copy_from_slice(&5353u16.to_be_bytes());
        b[2..4].copy_from_slice(&53u16.to_be_bytes());
        b[4..6].copy_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn udp_rejects() {
        let good = udp(8, 0);
        for len in 0..8 {
            assert_eq!(ok(UdpPacket::new_checked(&good[..len])), ERR, "len {len}");
        }
        for len in 0..8 {
            assert_eq!(ok(UdpPacket::new_checked(&udp(len, 8)[..])), ERR);
        }
        assert_eq!(ok(UdpPacket::new_checked(&udp(17, 8)[..])), ERR);
        assert!(UdpPacket::new_checked(&udp(16, 8)[..]).is_ok());
    }

    #[test]
    fn udp_does_not_check() {
        let src = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
        let dst = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2));
        // A length field shorter than the buffer: accepted, payload trimmed to the field.
        let mut b = udp(10, 8);
        b[6..8].copy_from_slice(&0x1234u16.to_be_bytes()); // wrong checksum
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 2);
        assert!(!p.verify_checksum(&src, &dst));
        // Destination port 0: accepted by the view, refused by UdpRepr::parse.
        let mut b = udp(8, 0);
        b[2..4].copy_from_slice(&[0, 0]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(UdpRepr::parse(&p, &src, &dst, &ChecksumCapabilities::ignored()).is_err());
        // A zero checksum means "none" and always verifies (RFC 768).
        let b = udp(8, 0);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&src, &dst));
    }

    #[test]
    fn icmpv4_checks() {
        let echo = [8u8, 0, 0xf7, 0xfe, 0, 1, 0, 0];
        for len in 0..8 {
            assert_eq!(ok(Icmpv4Packet::new_checked(&echo[..len])), ERR);
        }
        let p = Icmpv4Packet::new_checked(&echo[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert!(p.verify_checksum());
        // Bad checksum and unknown type pass the view.
        let p = Icmpv4Packet::new_checked(&[200u8, 99, 0, 0, 0, 0, 0, 0][..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::Unknown(200));
        assert!(!p.verify_checksum());
        assert!(p.data().is_empty());
    }

    #[test]
    fn icmpv4_quoted_datagram_needs_own_check() {
        // Destination unreachable (frag needed) quoting IP header + 8 bytes of a 1500-byte
        // datagram, as RFC 792 allows.
        let mut b = vec![3u8, 4, 0, 0, 0, 0, 0x05, 0xdc];
        b.extend_from_slice(&ipv4(0x45, 1500, 28));
        let c = crate::checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        let quote = p.data();
        assert_eq!(quote.len(), 28);
        // smoltcp's checked view and Repr both refuse it: the total length says 1500.
        assert!(Ipv4Packet::new_checked(quote).is_err());
        assert!(Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).is_err());
        // What the data path does instead: check what it reads, then new_unchecked.
        let inner = Ipv4Packet::new_unchecked(quote);
        let hl = usize::from(inner.header_len());
        assert!(quote.len() >= 20 && hl >= 20 && quote.len() >= hl + 8);
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
    }

    fn arp_request() -> [u8; 28] {
        [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype, ptype, hlen, plen, oper
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1, // sha, spa
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 2, // tha, tpa
        ]
    }

    #[test]
    fn arp_checks() {
        let b = arp_request();
        for len in 0..28 {
            assert_eq!(ok(ArpPacket::new_checked(&b[..len])), ERR, "len {len}");
        }
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Request);
        assert!(ArpRepr::parse(&p).is_ok());

        // hlen 255 / plen 255: the length check follows the fields (8 + 2·255 + 2·255).
        let mut b2 = [0u8; 1028];
        b2[..8].copy_from_slice(&[0, 1, 8, 0, 255, 255, 0, 1]);
        assert_eq!(ok(ArpPacket::new_checked(&b2[..1027])), ERR);
        let p = ArpPacket::new_checked(&b2[..]).unwrap();
        assert_eq!(p.source_hardware_addr().len(), 255);
        // The view accepts it; only ArpRepr::parse insists on Ethernet/IPv4/6/4.
        assert!(ArpRepr::parse(&p).is_err());

        // hlen 0, plen 0: an 8-byte "ARP packet" passes the view.
        let p = ArpPacket::new_checked(&[0u8, 1, 8, 0, 0, 0, 0, 1][..]).unwrap();
        assert!(p.source_protocol_addr().is_empty());
        assert!(ArpRepr::parse(&p).is_err());

        // Unknown operation, broadcast sender MAC, sender IP 0.0.0.0: all parse.
        let mut b = arp_request();
        b[6..8].copy_from_slice(&[0, 9]);
        b[8..14].copy_from_slice(&[0xff; 6]);
        b[14..18].copy_from_slice(&[0; 4]);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Unknown(9));
        assert!(ArpRepr::parse(&p).is_ok());
    }

    fn ipv6(ver: u8, payload_len: u16, buf_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; buf_len.max(40)];
        b[0] = ver << 4;
        b[4..6].copy_from_slice(&payload_len.to_be_bytes());
        b[6] = 17;
        b[7] = 64;
        b.truncate(buf_len);
        b
    }

    #[test]
    fn ipv6_checks() {
        let good = ipv6(6, 8, 48);
        for len in 0..40 {
            assert_eq!(ok(Ipv6Packet::new_checked(&good[..len])), ERR);
        }
        assert_eq!(ok(Ipv6Packet::new_checked(&good[..47])), ERR);
        assert!(Ipv6Packet::new_checked(&good[..]).is_ok());
        // Version 4 passes the view (Ipv6Repr::parse refuses it); trailing bytes are trimmed.
        let b = ipv6(4, 8, 60);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.payload().len(), 8);
        assert!(Ipv6Repr::parse(&p).is_err());
    }

    #[test]
    fn icmpv6_checks() {
        // Echo request needs 8 bytes, neighbour solicitation 24.
        let echo = [128u8, 0, 0, 0, 0, 1, 0, 1];
        for len in 0..8 {
            assert_eq!(ok(Icmpv6Packet::new_checked(&echo[..len])), ERR);
        }
        assert!(Icmpv6Packet::new_checked(&echo[..]).is_ok());
        let mut ns = [0u8; 24];
        ns[0] = 135;
        assert_eq!(ok(Icmpv6Packet::new_checked(&ns[..23])), ERR);
        assert!(Icmpv6Packet::new_checked(&ns[..]).is_ok());
        // Unknown types are refused by the view itself (unlike ICMPv4).
        assert_eq!(
            ok(Icmpv6Packet::new_checked(&[99u8, 0, 0, 0, 0, 0, 0, 0][..])),
            ERR
        );
    }

    // Property tests: every getter after a successful new_checked, on arbitrary bytes.

    fn exercise_ethernet(b: &[u8]) {
        if let Ok(p) = EthernetFrame::new_checked(b) {
            black_box((p.dst_addr(), p.src_addr(), p.ethertype(), p.payload()));
            black_box(EthernetRepr::parse(&p).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_vlan(b: &[u8]) {
        if let Ok(p) = VlanPacket::new_checked(b) {
            black_box((
                p.tci(),
                p.pcp(),
                p.dei(),
                p.vid(),
                p.ethertype(),
                p.payload(),
            ));
            black_box(VlanRepr::parse(&p).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_ipv4(b: &[u8]) {
        if let Ok(p) = Ipv4Packet::new_checked(b) {
            black_box((
                p.version(),
                p.header_len(),
                p.dscp(),
                p.ecn(),
                p.total_len(),
            ));
            black_box((p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset()));
            black_box((p.hop_limit(), p.next_header(), p.checksum()));
            black_box((p.src_addr(), p.dst_addr(), p.verify_checksum(), p.get_key()));
            black_box(p.payload());
            black_box(Ipv4Repr::parse(&p, &ChecksumCapabilities::default()).ok());
            black_box(Ipv4Repr::parse(&p, &ChecksumCapabilities::ignored()).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_tcp(b: &[u8]) {
        if let Ok(p) = TcpPacket::new_checked(b) {
            let src = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
            let dst = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2));
            black_box((p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()));
            black_box((p.fin(), p.syn(), p.rst(), p.psh(), p.ack(), p.urg()));
            black_box((p.ece(), p.cwr(), p.ns(), p.header_len(), p.window_len()));
            black_box((p.checksum(), p.urgent_at(), p.segment_len()));
            black_box((
                p.selective_ack_permitted().ok(),
                p.selective_ack_ranges().ok(),
            ));
            black_box(p.options_summary().ok());
            black_box(p.verify_partial_checksum(&src, &dst));
            black_box(p.verify_checksum(&src, &dst));
            black_box((p.options(), p.payload()));
            black_box(TcpRepr::parse(&p, &src, &dst, &ChecksumCapabilities::default()).ok());
            black_box(TcpRepr::parse(&p, &src, &dst, &ChecksumCapabilities::ignored()).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_udp(b: &[u8]) {
        if let Ok(p) = UdpPacket::new_checked(b) {
            let src = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
            let dst = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2));
            black_box((
                p.src_port(),
                p.dst_port(),
                p.len(),
                p.checksum(),
                p.payload(),
            ));
            black_box(p.verify_partial_checksum(&src, &dst));
            black_box(p.verify_checksum(&src, &dst));
            black_box(UdpRepr::parse(&p, &src, &dst, &ChecksumCapabilities::default()).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_icmpv4(b: &[u8]) {
        if let Ok(p) = Icmpv4Packet::new_checked(b) {
            black_box((p.msg_type(), p.msg_code(), p.checksum(), p.header_len()));
            black_box((
                p.echo_ident(),
                p.echo_seq_no(),
                p.verify_checksum(),
                p.data(),
            ));
            black_box(Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).ok());
            black_box(Icmpv4Repr::parse(&p, &ChecksumCapabilities::ignored()).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_arp(b: &[u8]) {
        if let Ok(p) = ArpPacket::new_checked(b) {
            black_box((p.hardware_type(), p.protocol_type(), p.hardware_len()));
            black_box((p.protocol_len(), p.operation()));
            black_box((p.source_hardware_addr(), p.source_protocol_addr()));
            black_box((p.target_hardware_addr(), p.target_protocol_addr()));
            black_box(ArpRepr::parse(&p).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_ipv6(b: &[u8]) {
        if let Ok(p) = Ipv6Packet::new_checked(b) {
            black_box((
                p.version(),
                p.traffic_class(),
                p.flow_label(),
                p.payload_len(),
            ));
            black_box((p.total_len(), p.next_header(), p.hop_limit()));
            black_box((p.src_addr(), p.dst_addr(), p.header_len(), p.payload()));
            black_box(Ipv6Repr::parse(&p).ok());
            black_box(p.to_string());
        }
    }

    fn exercise_icmpv6(b: &[u8]) {
        if let Ok(p) = Icmpv6Packet::new_checked(b) {
            let src = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
            let dst = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
            black_box((p.msg_type(), p.msg_code(), p.checksum(), p.header_len()));
            black_box((p.echo_ident(), p.echo_seq_no(), p.pkt_too_big_mtu()));
            black_box((
                p.param_problem_ptr(),
                p.verify_checksum(&src, &dst),
                p.payload(),
            ));
            black_box(Icmpv6Repr::parse(&src, &dst, &p, &ChecksumCapabilities::ignored()).ok());
        }
    }

    fn exercise_all(b: &[u8]) {
        exercise_ethernet(b);
        exercise_vlan(b);
        exercise_ipv4(b);
        exercise_tcp(b);
        exercise_udp(b);
        exercise_icmpv4(b);
        exercise_arp(b);
        exercise_ipv6(b);
        exercise_icmpv6(b);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..160)) {
            exercise_all(&b);
        }

        // Random bytes rarely get past the length checks; these patch the length fields to
        // plausible values so the getters behind them run on every case.
        #[test]
        fn ipv4_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 20..120),
            ihl in 0u8..16,
            slack in 0usize..8,
        ) {
            b[0] = (b[0] & 0xf0) | ihl;
            let total = b.len().saturating_sub(slack) as u16;
            b[2..4].copy_from_slice(&total.to_be_bytes());
            exercise_ipv4(&b);
            exercise_icmpv4(&b[20..]);
        }

        #[test]
        fn tcp_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 20..100),
            doff in 0u8..16,
        ) {
            b[12] = (b[12] & 0x0f) | (doff << 4);
            exercise_tcp(&b);
        }

        #[test]
        fn udp_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 8..100),
            slack in 0usize..4,
        ) {
            let len = b.len().saturating_sub(slack) as u16;
            b[4..6].copy_from_slice(&len.to_be_bytes());
            exercise_udp(&b);
        }

        #[test]
        fn arp_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 8..64),
            hlen in 0u8..10,
            plen in 0u8..10,
        ) {
            b[0..4].copy_from_slice(&[0, 1, 8, 0]);
            b[4] = hlen;
            b[5] = plen;
            exercise_arp(&b);
        }

        #[test]
        fn ipv6_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 44..140),
            slack in 0usize..4,
            icmp_type in prop::sample::select(vec![1u8, 2, 3, 4, 128, 129, 130, 131, 133, 134, 135, 136, 137, 143]),
        ) {
            b[0] = 0x60 | (b[0] & 0x0f);
            let pl = (b.len() - 40).saturating_sub(slack) as u16;
            b[4..6].copy_from_slice(&pl.to_be_bytes());
            exercise_ipv6(&b);
            b[40] = icmp_type;
            exercise_icmpv6(&b[40..]);
        }

        #[test]
        fn ethernet_vlan_like_never_panics(
            mut b in proptest::collection::vec(any::<u8>(), 14..80),
            tagged in any::<bool>(),
        ) {
            if tagged {
                b[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            }
            exercise_ethernet(&b);
            exercise_vlan(&b[14..]);
        }
    }
}
