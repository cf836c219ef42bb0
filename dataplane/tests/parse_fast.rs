//! The parser's fast path never disagrees with the full one: on valid frames of every kind and
//! on mutated and truncated ones, whenever `parse_fast` answers, `parse_full` gives the same
//! answer; and the fast path does take the common frames (untagged IPv4 TCP and UDP).

use dataplane::parse::{parse, parse_fast, parse_full, L3};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use testkit::Frame;

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
