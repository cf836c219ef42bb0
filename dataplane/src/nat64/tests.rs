use super::*;
use proptest::prelude::*;
use testkit::{decode, decode6, Frame, Frame6};

const CIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x10);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 201);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);

/// The IPv6 frame `f` translated toward the RS, re-framed as Ethernet/IPv4 for the decoder.
fn translated_out(f: &[u8], tcp: bool, ident: u16) -> Vec<u8> {
    let mut pkt = f[14..].to_vec();
    let t = To4 {
        src: (LIP, 40000),
        dst: (RIP, 8080),
        ident,
    };
    let at = to_ipv4(&mut pkt, IPV6_HEADER_LEN, tcp, &t);
    assert_eq!(at, GROWTH);
    let mut out = f[..14].to_vec();
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&pkt[at..]);
    out
}

/// The IPv4 frame `f` translated toward the client, re-framed as Ethernet/IPv6.
fn translated_back(f: &[u8], tcp: bool) -> Vec<u8> {
    // The packet with GROWTH bytes of room in front of it.
    let mut area = vec![0u8; GROWTH];
    area.extend_from_slice(&f[14..]);
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let at = to_ipv6(&mut area, GROWTH, ihl, tcp, ((VIP, 80), (CIP, 51000)));
    let mut out = f[..14].to_vec();
    out[12..14].copy_from_slice(&[0x86, 0xdd]);
    out.extend_from_slice(&area[at..]);
    out
}

#[test]
fn a_tcp_segment_leaves_as_ipv4_with_its_checksums_right() {
    let mut f = Frame6::tcp(CIP, 51000, VIP, 80, 0x18)
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .build();
    f[14] = 0x6b; // traffic class 0xb8 (EF): the header's first two bytes 6b 80
    f[15] = 0x80;
    let s = decode(&translated_out(&f, true, 7));
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP, 40000, RIP, 8080));
    assert_eq!(s.ttl, 63, "the director routes: hop limit less one");
    assert_eq!(s.tos, 0xb8);
    assert_eq!(s.proto, 6);
    assert_eq!(s.ident, 7);
    assert!(!s.df, "a small packet may be fragmented on the IPv4 side");
    assert_eq!(usize::from(s.total_len), 20 + 20 + 18);
    assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn df_is_set_above_1260_bytes() {
    for (payload, df) in [(1220, false), (1221, true), (1440, true)] {
        let f = Frame6::tcp(CIP, 51000, VIP, 80, 0x10)
            .payload(&vec![7u8; payload])
            .build();
        let s = decode(&translated_out(&f, true, 1));
        assert_eq!(s.df, df, "{} bytes", s.total_len);
    }
}

#[test]
fn a_udp_datagram_leaves_as_ipv4() {
    let f = Frame6::udp(CIP, 5353, VIP, 53).payload(b"query").build();
    let s = decode(&translated_out(&f, false, 9));
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP, 40000, RIP, 8080));
    assert_eq!(s.proto, 17);
    assert_eq!(s.payload, b"query");
}

#[test]
fn a_reply_comes_back_as_ipv6() {
    let mut f = Frame::tcp(RIP, 8080, LIP, 40000, 0x18)
        .payload(b"HTTP/1.1 200 OK\r\n")
        .build();
    f[15] = 0x28; // TOS
    testkit::refresh_ip_checksum(&mut f, 14);
    let s = decode6(&translated_back(&f, true));
    assert_eq!((s.src, s.dst, s.next_header), (VIP, CIP, 6));
    assert_eq!(s.hop_limit, 63);
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport), (80, 51000));
    assert_eq!(l4.payload, b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn a_udp_reply_without_checksum_gets_one() {
    let mut f = Frame::udp(RIP, 8080, LIP, 40000).payload(b"answer").build();
    f[14 + 20 + 6..14 + 20 + 8].fill(0);
    let s = decode6(&translated_back(&f, false));
    let l4 = s.l4();
    assert_eq!(
        (l4.sport, l4.dport, &l4.payload[..]),
        (80, 51000, &b"answer"[..])
    );
    assert_ne!(&s.payload[6..8], &[0, 0], "IPv6 UDP always has a checksum");
}

#[test]
fn ipv4_options_are_left_behind() {
    // A 24-byte IPv4 header (one NOP/EOL option word): the IPv6 header lands right before
    // the TCP header, the option gone.
    let f = Frame::tcp(RIP, 8080, LIP, 40000, 0x10).build();
    let mut g = f[..34].to_vec();
    g.extend_from_slice(&[1, 1, 1, 0]);
    g.extend_from_slice(&f[34..]);
    g[14] = 0x46;
    testkit::set_ip_total_len(&mut g, 44);
    testkit::refresh_ip_checksum(&mut g, 14);
    let s = decode6(&translated_back(&g, true));
    assert_eq!(s.payload.len(), 20);
    assert_eq!((s.l4().sport, s.l4().dport), (80, 51000));
}

#[test]
fn errors_translate_as_rfc_7915_says() {
    // IPv4 → IPv6: fragmentation needed becomes Packet Too Big, 20 bytes more, never under
    // 1280 nor over the IPv6 link's MTU.
    assert_eq!(error_to_icmpv6(3, 4, 1480, 1500), Some((2, 0, 1500)));
    assert_eq!(error_to_icmpv6(3, 4, 1400, 1500), Some((2, 0, 1420)));
    assert_eq!(error_to_icmpv6(3, 4, 1500, 1500), Some((2, 0, 1500)));
    assert_eq!(error_to_icmpv6(3, 4, 576, 1500), Some((2, 0, 1280)));
    assert_eq!(error_to_icmpv6(3, 3, 0, 1500), Some((1, 4, 0)));
    assert_eq!(error_to_icmpv6(3, 1, 0, 1500), Some((1, 0, 0)));
    assert_eq!(error_to_icmpv6(3, 13, 0, 1500), Some((1, 1, 0)));
    assert_eq!(error_to_icmpv6(3, 2, 0, 1500), Some((4, 1, 6)));
    assert_eq!(error_to_icmpv6(11, 0, 0, 1500), Some((3, 0, 0)));
    assert_eq!(error_to_icmpv6(4, 0, 0, 1500), None, "source quench");
    assert_eq!(error_to_icmpv6(12, 0, 0, 1500), None, "parameter problem");
    assert_eq!(error_to_icmpv6(3, 14, 0, 1500), None);
    // IPv6 → IPv4: Packet Too Big becomes fragmentation needed, 20 bytes less.
    assert_eq!(error_to_icmpv4(2, 0, 1280, 1500), Some((3, 4, 1260)));
    assert_eq!(error_to_icmpv4(2, 0, 9000, 1500), Some((3, 4, 1500)));
    assert_eq!(error_to_icmpv4(1, 4, 0, 1500), Some((3, 3, 0)));
    assert_eq!(error_to_icmpv4(1, 1, 0, 1500), Some((3, 10, 0)));
    assert_eq!(error_to_icmpv4(1, 0, 0, 1500), Some((3, 1, 0)));
    assert_eq!(error_to_icmpv4(3, 1, 0, 1500), Some((11, 1, 0)));
    assert_eq!(error_to_icmpv4(4, 1, 0, 1500), Some((3, 2, 0)));
    assert_eq!(error_to_icmpv4(4, 0, 0, 1500), None);
    assert_eq!(error_to_icmpv4(1, 5, 0, 1500), None);
}

#[test]
fn quotes_translate_both_ways() {
    // The RS-side quote (LIP → RIP as the director sent it) becomes the client's packet.
    let f = Frame::tcp(LIP, 40000, RIP, 8080, 0x10)
        .payload(&[1u8; 100])
        .build();
    let q4 = &f[14..14 + 28];
    let mut out = [0u8; 64];
    let n = quote_to_ipv6(q4, &mut out, ((CIP, 51000), (VIP, 80))).unwrap();
    assert_eq!(n, 48);
    let q6 = &out[..n];
    assert_eq!(q6[0] >> 4, 6);
    assert_eq!(
        u16::from_be_bytes([q6[4], q6[5]]),
        120,
        "the quoted packet's payload length"
    );
    assert_eq!(q6[6], 6);
    assert_eq!(crate::parse::ipv6_addrs(q6), (CIP, VIP));
    assert_eq!(&q6[40..44], &[0xc7, 0x38, 0, 80]);
    // And back: the client-side quote (VIP → CIP) becomes the RS's reply to the LIP.
    let g = Frame6::tcp(VIP, 80, CIP, 51000, 0x10)
        .payload(&[2u8; 50])
        .build();
    let mut out4 = [0u8; 28];
    let n = quote_to_ipv4(&g[14..], &mut out4, ((RIP, 8080), (LIP, 40000)), 3).unwrap();
    assert_eq!(n, 28, "cut to the room given");
    let h = smoltcp::wire::Ipv4Packet::new_unchecked(&out4[..]);
    assert!(h.verify_checksum());
    assert_eq!((h.src_addr(), h.dst_addr(), h.total_len()), (RIP, LIP, 90));
    assert_eq!(&out4[20..24], &[0x1f, 0x90, 0x9c, 0x40]);
    // Too short, or not TCP/UDP: nothing.
    assert_eq!(
        quote_to_ipv6(&q4[..22], &mut out, ((CIP, 1), (VIP, 2))),
        None
    );
    let mut icmp = q4.to_vec();
    icmp[9] = 1;
    assert_eq!(quote_to_ipv6(&icmp, &mut out, ((CIP, 1), (VIP, 2))), None);
    assert_eq!(
        quote_to_ipv4(&g[14..50], &mut out4, ((RIP, 1), (LIP, 2)), 0),
        None
    );
}

#[test]
fn a_whole_quote_keeps_its_checksum_right() {
    let f = Frame::udp(LIP, 40000, RIP, 8080).payload(b"hello").build();
    let mut out = [0u8; 128];
    let n = quote_to_ipv6(&f[14..], &mut out, ((CIP, 51000), (VIP, 53))).unwrap();
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&out[..n]);
    assert_eq!(decode6(&frame).l4().payload, b"hello");
}

proptest! {
    /// Valid in, valid out: any TCP or UDP packet translated to IPv4 and back has checksums
    /// that verify and the same payload.
    #[test]
    fn translation_keeps_checksums(
        tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1400),
        cport in 1u16..,
        ident in any::<u16>(),
    ) {
        let f = if tcp {
            Frame6::tcp(CIP, cport, VIP, 80, 0x18)
        } else {
            Frame6::udp(CIP, cport, VIP, 80)
        }
        .payload(&payload)
        .build();
        let out = translated_out(&f, tcp, ident);
        let s = decode(&out);
        prop_assert_eq!(&s.payload, &payload);
        // The RS's answer is the same packet turned around.
        let mut back = out.clone();
        back[14 + 12..14 + 16].copy_from_slice(&RIP.octets());
        back[14 + 16..14 + 20].copy_from_slice(&LIP.octets());
        let s6 = decode6(&translated_back(&back, tcp));
        let l4 = s6.l4();
        prop_assert_eq!((l4.sport, l4.dport), (80, 51000));
        prop_assert_eq!(&l4.payload, &payload);
    }
}

/// The IPv6 fragment frame `f` (its Fragment Header right after the fixed header)
/// translated toward the RS as datagram `ident`, re-framed as Ethernet/IPv4.
fn fragment_out(f: &[u8], tcp: bool, ident: u16) -> Vec<u8> {
    let mut pkt = f[14..].to_vec();
    let word = u16::from_be_bytes([pkt[42], pkt[43]]);
    let piece = Piece {
        offset: u32::from(word & 0xfff8),
        more: word & 1 != 0,
        proto: pkt[40],
    };
    let t = To4 {
        src: (LIP, 40000),
        dst: (RIP, 8080),
        ident,
    };
    let first = (piece.offset == 0).then_some(tcp);
    let at = fragment_to_ipv4(&mut pkt, FRAGMENT_HEADERS_LEN, first, piece, &t);
    assert_eq!(at, FRAGMENT_HEADERS_LEN - IPV4_MIN_HEADER_LEN);
    let mut out = f[..14].to_vec();
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&pkt[at..]);
    out
}

/// The IPv4 fragment frame `f` translated toward the client, re-framed as Ethernet/IPv6 with
/// a Fragment Header; `None` when RFC 7915 drops it.
fn fragment_back(f: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let word = u16::from_be_bytes([ip[6], ip[7]]);
    let piece = Piece {
        offset: u32::from(word & 0x1fff) * 8,
        more: word & 0x2000 != 0,
        proto: ip[9],
    };
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let mut body = ip[ihl..total].to_vec();
    if piece.offset == 0 {
        let whole = !piece.more;
        let ends = ((VIP, 80), (CIP, 51000));
        if !first_to_ipv6(&mut body, &ip[12..20], tcp, whole, ends) {
            return None;
        }
    }
    let mut h = [0u8; FRAGMENT_HEADERS_LEN];
    let ident = u32::from(u16::from_be_bytes([ip[4], ip[5]]));
    write_fragment_headers(
        &mut h,
        (ip[1], ip[8] - 1),
        (VIP, CIP),
        body.len(),
        piece,
        ident,
    );
    let mut out = f[..14].to_vec();
    out[12..14].copy_from_slice(&[0x86, 0xdd]);
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    Some(out)
}

#[test]
fn fragments_translate_into_fragments_both_ways() {
    // Client → RS: offset, MF and the Fragment Header's next header carried over, DF clear,
    // the datagram's identification the one given.
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 253) as u8).collect();
    let f = Frame6::udp(CIP, 51000, VIP, 53).payload(&payload).build();
    let frags = testkit::fragment6(&f, 1500, 0x0102_0304);
    let out: Vec<_> = frags
        .iter()
        .map(|f| fragment_out(f, false, 0x4242))
        .collect();
    for (i, o) in out.iter().enumerate() {
        let ip = smoltcp::wire::Ipv4Packet::new_checked(&o[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.ident(), ip.dont_frag(), ip.more_frags()),
            (0x4242, false, i < 2)
        );
        assert_eq!(u8::from(ip.next_header()), 17);
        assert_eq!(ip.hop_limit(), 63);
    }
    let whole = testkit::reassemble(&out);
    assert!(testkit::checksums_valid(&whole));
    let s = decode(&whole);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP, 40000, RIP, 8080));
    assert_eq!(s.payload, payload);
    // RS → client: the Fragment Header names the protocol, the offset and M, and the IPv4
    // identification.
    let mut r = Frame::tcp(RIP, 8080, LIP, 40000, 0x18).payload(&payload);
    r.df = false;
    r.ident = 0x9999;
    let frags = testkit::fragment(&r.build(), 1400);
    let back: Vec<_> = frags
        .iter()
        .map(|f| fragment_back(f, true).unwrap())
        .collect();
    assert!(back.iter().all(|f| testkit::fragment6_ident(f) == 0x9999));
    let s = decode6(&testkit::reassemble6(&back));
    assert_eq!((s.src, s.dst, s.hop_limit), (VIP, CIP, 63));
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport), (80, 51000));
    assert_eq!(l4.payload, payload);
    // A fragment of a UDP datagram without a checksum cannot get one: dropped (RFC 7915
    // 4.5); the datagram whole gets it computed.
    let mut u = Frame::udp(RIP, 8080, LIP, 40000).payload(&payload);
    u.df = false;
    let mut u = u.build();
    u[14 + 20 + 6..14 + 20 + 8].fill(0);
    assert_eq!(fragment_back(&testkit::fragment(&u, 1400)[0], false), None);
    let mut one = Frame::udp(RIP, 8080, LIP, 40000).payload(b"answer").build();
    one[14 + 20 + 6..14 + 20 + 8].fill(0);
    let s = decode6(&testkit::reassemble6(
        &[fragment_back(&one, false).unwrap()],
    ));
    assert_eq!(s.l4().payload, b"answer");
}

proptest! {
    /// Any datagram fragmented by the client reassembles on the RS side with checksums that
    /// verify, and its answer fragmented by the RS on the client side.
    #[test]
    fn fragmented_translation_keeps_checksums(
        tcp in any::<bool>(),
        len in 1500usize..6000,
        mtu in 1280usize..1501,
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 13 % 256) as u8).collect();
        let f = if tcp {
            Frame6::tcp(CIP, 51000, VIP, 80, 0x18)
        } else {
            Frame6::udp(CIP, 51000, VIP, 80)
        }
        .payload(&payload)
        .build();
        let out: Vec<_> = testkit::fragment6(&f, mtu, 7)
            .iter()
            .map(|f| fragment_out(f, tcp, 7))
            .collect();
        prop_assert!(out.len() > 1);
        let whole = testkit::reassemble(&out);
        prop_assert!(testkit::checksums_valid(&whole));
        prop_assert_eq!(&decode(&whole).payload, &payload);
        let mut back = whole.clone();
        back[14 + 12..14 + 16].copy_from_slice(&RIP.octets());
        back[14 + 16..14 + 20].copy_from_slice(&LIP.octets());
        testkit::refresh_ip_checksum(&mut back, 14);
        // The addresses swapped, the ports too: the RS's answer of the same bytes.
        let l4 = 14 + 20;
        let (sp, dp) = (back[l4..l4 + 2].to_vec(), back[l4 + 2..l4 + 4].to_vec());
        back[l4..l4 + 2].copy_from_slice(&dp);
        back[l4 + 2..l4 + 4].copy_from_slice(&sp);
        let frags: Vec<_> = testkit::fragment(&back, mtu)
            .iter()
            .map(|f| fragment_back(f, tcp).unwrap())
            .collect();
        let s = decode6(&testkit::reassemble6(&frags));
        let l4 = s.l4();
        prop_assert_eq!((l4.sport, l4.dport), (80, 51000));
        prop_assert_eq!(&l4.payload, &payload);
    }
}
