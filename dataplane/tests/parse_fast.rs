//! The parser's fast paths never disagree with the full one: on valid frames of every kind and
//! on mutated and truncated ones, whenever `parse_fast` or `parse_fast6` answers, `parse_full`
//! gives the same answer; and the fast paths do take the common frames (untagged IPv4 and
//! IPv6 TCP and UDP).

use dataplane::parse::{parse, parse_fast, parse_fast6, parse_full, L3};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use testkit::{Frame, Frame6};

fn base(kind: u8, payload: usize, vlan: Option<u16>, df: bool) -> Vec<u8> {
    let (c, v) = (
        Ipv4Addr::new(198, 51, 100, 7),
        Ipv4Addr::new(192, 0, 2, 100),
    );
    let mut f = match kind % 4 {
        0 => Frame::tcp(c, 40000, v, 80, 0x18),
        1 => Frame::udp(c, 5353, v, 53),
        2 => Frame::echo(c, v, true, 77),
        _ => Frame::tcp(c, 1, v, 443, 0x02),
    };
    f.vlan = vlan;
    f.df = df;
    f.payload = vec![0xa5; payload];
    f.build()
}

/// Recomputes the IPv4 header checksum of an untagged frame, if it has a plausible header.
fn fix_ip_checksum(f: &mut [u8]) {
    if f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[14] >> 4 == 4 {
        let ihl = usize::from(f[14] & 0x0f) * 4;
        if ihl >= 20 && f.len() >= 14 + ihl {
            f[24] = 0;
            f[25] = 0;
            let c = dataplane::checksum::checksum(&f[14..14 + ihl]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
    }
}

#[test]
fn the_common_frames_take_the_fast_path() {
    for kind in [0, 1, 3] {
        for payload in [0, 1, 64, 1400] {
            let f = base(kind, payload, None, true);
            let fast = parse_fast(&f).expect("untagged TCP/UDP takes the fast path");
            assert_eq!(Ok(fast), parse_full(&f));
            assert_eq!(parse(&f), parse_full(&f));
        }
    }
    // Ethernet padding past the IPv4 total length is allowed on both paths.
    let mut padded = base(0, 0, None, true);
    padded.extend_from_slice(&[0; 6]);
    assert!(parse_fast(&padded).is_some());
    // And these do not: ICMP, a VLAN tag, a fragment, a bad header checksum.
    assert!(parse_fast(&base(2, 8, None, true)).is_none());
    assert!(parse_fast(&base(0, 8, Some(10), true)).is_none());
    let mut frag = base(1, 8, None, false);
    frag[20] |= 0x20;
    fix_ip_checksum(&mut frag);
    assert!(parse_fast(&frag).is_none());
    assert!(matches!(parse(&frag), Ok(p) if matches!(p.l3, L3::Ipv4(m) if m.is_fragment())));
    let mut bad = base(0, 8, None, true);
    bad[24] ^= 1;
    assert!(parse_fast(&bad).is_none());
    assert_eq!(parse(&bad), parse_full(&bad));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn fast_agrees_with_full(
        kind in any::<u8>(),
        payload in 0usize..80,
        vlan in proptest::option::weighted(0.1, 1u16..4095),
        df in any::<bool>(),
        edits in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
        cut in proptest::option::weighted(0.2, 0usize..140),
        // Header fields set on purpose: IHL/version, total length, flags + fragment offset,
        // protocol, TCP data offset / UDP length.
        fields in proptest::collection::vec(
            (prop_oneof![Just(14usize), Just(16), Just(17), Just(20), Just(21), Just(23),
                         Just(38), Just(39), Just(46)], any::<u8>()),
            0..3,
        ),
        fix in any::<bool>(),
    ) {
        let mut f = base(kind, payload, vlan, df);
        for (at, byte) in edits.into_iter().chain(fields) {
            if at < f.len() {
                f[at] = byte;
            }
        }
        // Edits usually break the header checksum; often make it right again so that the
        // later checks (lengths, fragments, L4) are reached too.
        if fix {
            fix_ip_checksum(&mut f);
        }
        if let Some(n) = cut {
            f.truncate(n);
        }
        if let Some(fast) = parse_fast(&f) {
            prop_assert_eq!(Ok(fast), parse_full(&f));
        }
        prop_assert_eq!(parse(&f), parse_full(&f));
    }
}

/// An IPv6 frame of kind `kind`: TCP, UDP, ICMPv6 echo, or TCP behind a destination options
/// header.
fn base6(kind: u8, payload: usize) -> Vec<u8> {
    let c = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
    let v = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
    let body = vec![0x5a; payload];
    match kind % 4 {
        0 => Frame6::tcp(c, 40000, v, 80, 0x18).payload(&body).build(),
        1 => Frame6::udp(c, 5353, v, 53).payload(&body).build(),
        2 => {
            let echo = smoltcp::wire::Icmpv6Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: &body,
            };
            let (m, r) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0xfe, 0xfe]);
            testkit::icmpv6_frame(r, m, (c, v), 64, &echo)
        }
        _ => {
            // The TCP segment moved behind an 8-byte destination options header.
            let f = Frame6::tcp(c, 40000, v, 80, 0x10).payload(&body).build();
            let mut g = f[..54].to_vec();
            g[20] = 60;
            g.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
            g.extend_from_slice(&f[54..]);
            let len = u16::from_be_bytes([g[18], g[19]]) + 8;
            g[18..20].copy_from_slice(&len.to_be_bytes());
            g
        }
    }
}

#[test]
fn the_common_ipv6_frames_take_the_fast_path() {
    for kind in [0, 1] {
        for payload in [0, 1, 64, 1400] {
            let f = base6(kind, payload);
            let fast = parse_fast6(&f).expect("untagged IPv6 TCP/UDP takes the fast path");
            assert_eq!(Ok(fast), parse_full(&f));
        }
    }
    // Not these: ICMPv6, an extension header, an IPv4 frame.
    assert!(parse_fast6(&base6(2, 8)).is_none());
    let ext = base6(3, 8);
    assert!(parse_fast6(&ext).is_none());
    assert!(matches!(parse_full(&ext), Ok(p) if matches!(p.l3, L3::Ipv6(m) if m.ext != 0)));
    assert!(parse_fast6(&base(0, 8, None, true)).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn fast6_agrees_with_full(
        kind in any::<u8>(),
        payload in 0usize..80,
        edits in proptest::collection::vec((0usize..100, any::<u8>()), 0..4),
        // Header fields set on purpose: version, payload length, next header, TCP data
        // offset / UDP length, and the ethertype.
        fields in proptest::collection::vec(
            (prop_oneof![Just(12usize), Just(14), Just(18), Just(19), Just(20), Just(58),
                         Just(59), Just(66)], any::<u8>()),
            0..3,
        ),
        cut in proptest::option::weighted(0.2, 0usize..160),
    ) {
        let mut f = base6(kind, payload);
        for (at, byte) in edits.into_iter().chain(fields) {
            if at < f.len() {
                f[at] = byte;
            }
        }
        if let Some(n) = cut {
            f.truncate(n);
        }
        if let Some(fast) = parse_fast6(&f) {
            prop_assert_eq!(Ok(fast), parse_full(&f));
        }
    }
}
