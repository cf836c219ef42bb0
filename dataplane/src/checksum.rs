//! Internet checksums: incremental updates (RFC 1624) for every rewrite, and the full
//! computation (RFC 1071) used to build small headers and as the reference in tests.
//!
//! All values are in host order: a 16-bit checksum field is read with `u16::from_be_bytes`,
//! updated here and written back with `to_be_bytes`. An address is its `u32::from(Ipv4Addr)`.
//!
//! The update is RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, which never turns a correct
//! checksum into the ambiguous `-0` form that eqn. 2 can produce. UDP's "no checksum" value 0
//! (RFC 768) is handled by [`update_udp16`] / [`update_udp32`]: a zero stays zero, and a computed
//! zero is sent as `0xffff`.

use core::net::Ipv6Addr;

/// Folds a 32-bit ones' complement accumulator to 16 bits (end-around carry).
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero), added to `initial`. The result is unfolded; pass it to [`fold`].
pub fn sum_bytes(initial: u32, data: &[u8]) -> u32 {
    let mut sum = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u64) << 8;
    }
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

/// The checksum of `data`: the complement of its ones' complement sum (RFC 1071).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_bytes(0, data))
}

/// The TCP/UDP pseudo-header sum for IPv4 (RFC 793 / RFC 768): addresses, protocol, length.
#[inline]
pub fn pseudo_header_sum(src: u32, dst: u32, proto: u8, l4_len: u16) -> u32 {
    (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto as u32 + l4_len as u32
}

/// The ICMPv6 checksum of message `msg` (its checksum field zero) from `src` to `dst`:
/// RFC 4443 2.3, over the IPv6 pseudo-header (RFC 8200 8.1) and the message.
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    ipv6_l4(src, dst, 58, msg)
}

/// The checksum of upper-layer message `msg` (its checksum field zero) of protocol
/// `next_header` from `src` to `dst`, over the IPv6 pseudo-header (RFC 8200 8.1).
pub fn ipv6_l4(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, msg: &[u8]) -> u16 {
    let pseudo = sum_bytes(0, &src.octets());
    let pseudo = sum_bytes(pseudo, &dst.octets());
    let len = msg.len() as u32;
    let pseudo = pseudo + (len >> 16) + (len & 0xffff) + u32::from(next_header);
    !fold(sum_bytes(pseudo, msg))
}

/// Updates checksum `csum` for a 16-bit field that changed from `old` to `new` (RFC 1624 eqn. 3).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u32 + !old as u32 + new as u32)
}

/// Updates checksum `csum` for a 32-bit field (an IPv4 address) that changed from `old` to `new`.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let sum =
        !csum as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(sum)
}

/// [`update16`] for a UDP checksum: 0 means "no checksum" and stays 0; a result of 0 becomes 0xffff.
#[inline]
pub fn update_udp16(csum: u16, old: u16, new: u16) -> u16 {
    if csum == 0 {
        return 0;
    }
    match update16(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// [`update32`] for a UDP checksum: 0 means "no checksum" and stays 0; a result of 0 becomes 0xffff.
#[inline]
pub fn update_udp32(csum: u16, old: u32, new: u32) -> u16 {
    if csum == 0 {
        return 0;
    }
    match update32(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// An accumulated checksum change: several 16/32-bit field edits summed once, then applied to
/// a checksum in one step. Equivalent to applying [`update16`] / [`update32`] edit by edit.
///
/// The sum is kept unfolded (each edit adds at most 2 × 0xffff, so a `u32` holds over 30 000
/// of them) and folded once, when applied.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delta(u32);

impl Delta {
    /// No change.
    pub const ZERO: Delta = Delta(0);

    /// The change whose edits sum to `sum`: 32-bit words of `!old` and `new` added in a 64-bit
    /// accumulator (RFC 1071 section 2(C)), folded here once.
    #[inline]
    pub fn from_sum64(sum: u64) -> Delta {
        let sum = (sum & 0xffff_ffff) + (sum >> 32);
        let sum = (sum & 0xffff_ffff) + (sum >> 32);
        Delta(u32::from(fold(sum as u32)))
    }

    /// Adds a 16-bit field edit `old` → `new`.
    #[inline]
    pub fn add16(&mut self, old: u16, new: u16) {
        self.0 += !old as u32 + new as u32;
    }

    /// Adds a 32-bit field edit `old` → `new` (an IPv4 address).
    #[inline]
    pub fn add32(&mut self, old: u32, new: u32) {
        self.0 += (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    }

    /// Adds all the edits of `other`.
    #[inline]
    pub fn add(&mut self, other: Delta) {
        self.0 = fold(self.0) as u32 + fold(other.0) as u32;
    }

    /// True if the edits add up to no change.
    #[inline]
    pub fn is_zero(self) -> bool {
        matches!(fold(self.0), 0 | 0xffff)
    }

    /// The checksum `csum` after the edits.
    #[inline]
    pub fn apply(self, csum: u16) -> u16 {
        !fold(!csum as u32 + fold(self.0) as u32)
    }

    /// The UDP checksum `csum` after the edits: 0 ("no checksum", RFC 768) stays 0, and a
    /// computed 0 is sent as 0xffff.
    #[inline]
    pub fn apply_udp(self, csum: u16) -> u16 {
        if csum == 0 {
            return 0;
        }
        match self.apply(csum) {
            0 => 0xffff,
            c => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum_bytes(0, &[0xab]), 0xab00);
    }

    // A real IPv4 header (checksum 0xb861), from the classic example.
    #[test]
    fn ipv4_header_checksum() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn update_matches_recompute_for_ttl_and_address() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let csum = u16::from_be_bytes([h[10], h[11]]);
        // TTL 0x40 -> 0x3f (the TTL/protocol word changes).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] = 0x3f;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let csum = update16(csum, old, new);
        // dst 192.168.0.199 -> 10.1.2.3
        let old_dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new_dst = u32::from_be_bytes([10, 1, 2, 3]);
        h[16..20].copy_from_slice(&new_dst.to_be_bytes());
        let csum = update32(csum, old_dst, new_dst);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(csum, checksum(&h));
    }

    #[test]
    fn delta_equals_stepwise_updates() {
        let mut d = Delta::ZERO;
        d.add32(0x0a000001, 0xc0a80101);
        d.add16(80, 8080);
        d.add16(0x4006, 0x3f06);
        let stepwise = update16(
            update16(update32(0x1234, 0x0a000001, 0xc0a80101), 80, 8080),
            0x4006,
            0x3f06,
        );
        assert_eq!(fold(!d.apply(0x1234) as u32), fold(!stepwise as u32));
        assert_eq!(Delta::ZERO.apply_udp(0), 0);
    }

    #[test]
    fn udp_zero_checksum_is_kept() {
        assert_eq!(update_udp16(0, 1000, 2000), 0);
        assert_eq!(update_udp32(0, 0x0a000001, 0x0a000002), 0);
    }

    #[test]
    fn udp_computed_zero_is_sent_as_ffff() {
        // A UDP packet whose payload word is chosen so that the computed checksum is 0: it goes
        // on the wire as 0xffff (RFC 768), and both our sum and smoltcp accept it.
        let mut p = props::build(
            props::Proto::Udp,
            0x0a00_0001,
            0xc0a8_0102,
            5353,
            53,
            64,
            &[0, 0],
            false,
        );
        let l4 = props::L4;
        p[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        let sum = props::l4_sum(&p);
        let word = !fold(sum); // makes the folded sum 0xffff, so the checksum is 0
        p[l4 + 8..l4 + 10].copy_from_slice(&word.to_be_bytes());
        assert_eq!(!fold(props::l4_sum(&p)), 0);
        p[l4 + 6..l4 + 8].copy_from_slice(&0xffffu16.to_be_bytes());
        props::assert_valid(&p, props::Proto::Udp, false);
        // A port rewrite from there stays correct.
        let c = props::rewrite(&mut p, props::Proto::Udp, props::Rewrite::DstPort(5300));
        assert_ne!(c, 0);
        props::assert_valid(&p, props::Proto::Udp, false);
    }

    #[test]
    fn udp_update_landing_on_zero_gives_ffff() {
        let mut p = props::build(
            props::Proto::Udp,
            0x0a00_0001,
            0x0a00_0002,
            40000,
            53,
            64,
            b"hello",
            false,
        );
        let l4 = props::L4;
        let csum = u16::from_be_bytes([p[l4 + 6], p[l4 + 7]]);
        let old = 40000u16;
        // The source port that makes RFC 1624 eqn. 3 return 0.
        let new = (0..=u16::MAX)
            .find(|&n| update16(csum, old, n) == 0)
            .unwrap();
        assert_eq!(update_udp16(csum, old, new), 0xffff);
        let c = props::rewrite(&mut p, props::Proto::Udp, props::Rewrite::SrcPort(new));
        assert_eq!(c, 0xffff);
        props::assert_valid(&p, props::Proto::Udp, false);
        // Same for an address change.
        let csum = u16::from_be_bytes([p[l4 + 6], p[l4 + 7]]);
        let old = 0x0a00_0002u32;
        let new = (0..=u32::from(u16::MAX))
            .map(|lo| 0x0a01_0000 | lo)
            .find(|&n| update32(csum, old, n) == 0)
            .unwrap();
        assert_eq!(update_udp32(csum, old, new), 0xffff);
        let c = props::rewrite(&mut p, props::Proto::Udp, props::Rewrite::DstAddr(new));
        assert_eq!(c, 0xffff);
        props::assert_valid(&p, props::Proto::Udp, false);
    }

    /// Random IPv4/TCP and IPv4/UDP packets, rewritten field by field.
    mod props {
        use std::net::Ipv4Addr;

        use proptest::prelude::*;
        use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};

        use super::super::*;

        /// Where the L4 header starts (IPv4 without options).
        pub const L4: usize = 20;

        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Proto {
            Tcp,
            Udp,
        }

        impl Proto {
            fn number(self) -> u8 {
                match self {
                    Proto::Tcp => 6,
                    Proto::Udp => 17,
                }
            }
            fn csum_at(self) -> usize {
                match self {
                    Proto::Tcp => L4 + 16,
                    Proto::Udp => L4 + 6,
                }
            }
            fn header_len(self) -> usize {
                match self {
                    Proto::Tcp => 20,
                    Proto::Udp => 8,
                }
            }
        }

        #[derive(Clone, Copy, Debug)]
        pub enum Rewrite {
            SrcAddr(u32),
            DstAddr(u32),
            SrcPort(u16),
            DstPort(u16),
            Ttl(u8),
            /// Append this many zero bytes: IPv4 total length and UDP length grow, the
            /// payload's sum does not change.
            Grow(u8),
        }

        fn rd16(p: &[u8], at: usize) -> u16 {
            u16::from_be_bytes([p[at], p[at + 1]])
        }
        fn wr16(p: &mut [u8], at: usize, v: u16) {
            p[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        fn rd32(p: &[u8], at: usize) -> u32 {
            u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
        }
        fn wr32(p: &mut [u8], at: usize, v: u32) {
            p[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }

        /// Pseudo header plus L4 bytes, unfolded, with the checksum field as it is in `p`.
        pub fn l4_sum(p: &[u8]) -> u32 {
            let l4_len = (p.len() - L4) as u16;
            sum_bytes(
                pseudo_header_sum(rd32(p, 12), rd32(p, 16), p[9], l4_len),
                &p[L4..],
            )
        }

        /// The L4 checksum computed from scratch (field zeroed); a UDP 0 becomes 0xffff.
        pub fn full_l4(p: &[u8], proto: Proto) -> u16 {
            let mut q = p.to_vec();
            wr16(&mut q, proto.csum_at(), 0);
            match (proto, !fold(l4_sum(&q))) {
                (Proto::Udp, 0) => 0xffff,
                (_, c) => c,
            }
        }

        /// The IPv4 header checksum computed from scratch.
        pub fn full_ip(p: &[u8]) -> u16 {
            let mut h = [0u8; 20];
            h.copy_from_slice(&p[..20]);
            wr16(&mut h, 10, 0);
            checksum(&h)
        }

        #[allow(clippy::too_many_arguments)]
        pub fn build(
            proto: Proto,
            src: u32,
            dst: u32,
            sport: u16,
            dport: u16,
            ttl: u8,
            payload: &[u8],
            udp_zero: bool,
        ) -> Vec<u8> {
            let l4_len = proto.header_len() + payload.len();
            let mut p = vec![0u8; L4 + l4_len];
            p[0] = 0x45;
            wr16(&mut p, 2, (L4 + l4_len) as u16);
            wr16(&mut p, 4, 0x1c46);
            wr16(&mut p, 6, 0x4000);
            p[8] = ttl;
            p[9] = proto.number();
            wr32(&mut p, 12, src);
            wr32(&mut p, 16, dst);
            wr16(&mut p, L4, sport);
            wr16(&mut p, L4 + 2, dport);
            match proto {
                Proto::Tcp => {
                    wr32(&mut p, L4 + 4, 0x1234_5678);
                    wr32(&mut p, L4 + 8, 0x9abc_def0);
                    p[L4 + 12] = 5 << 4;
                    p[L4 + 13] = 0x18;
                    wr16(&mut p, L4 + 14, 64240);
                }
                Proto::Udp => wr16(&mut p, L4 + 4, l4_len as u16),
            }
            p[L4 + proto.header_len()..].copy_from_slice(payload);
            let c = if proto == Proto::Udp && udp_zero {
                0
            } else {
                full_l4(&p, proto)
            };
            wr16(&mut p, proto.csum_at(), c);
            let c = full_ip(&p);
            wr16(&mut p, 10, c);
            p
        }

        /// Applies `rw` to `p` and updates both checksums incrementally, as the data path
        /// does. Returns the new L4 checksum.
        pub fn rewrite(p: &mut Vec<u8>, proto: Proto, rw: Rewrite) -> u16 {
            let at = proto.csum_at();
            let (mut ipc, mut l4c) = (rd16(p, 10), rd16(p, at));
            let u16_l4 = |c, o, n| match proto {
                Proto::Tcp => update16(c, o, n),
                Proto::Udp => update_udp16(c, o, n),
            };
            let u32_l4 = |c, o, n| match proto {
                Proto::Tcp => update32(c, o, n),
                Proto::Udp => update_udp32(c, o, n),
            };
            match rw {
                Rewrite::SrcAddr(new) | Rewrite::DstAddr(new) => {
                    let field = if matches!(rw, Rewrite::SrcAddr(_)) {
                        12
                    } else {
                        16
                    };
                    let old = rd32(p, field);
                    wr32(p, field, new);
                    ipc = update32(ipc, old, new);
                    l4c = u32_l4(l4c, old, new);
                }
                Rewrite::SrcPort(new) | Rewrite::DstPort(new) => {
                    let field = if matches!(rw, Rewrite::SrcPort(_)) {
                        L4
                    } else {
                        L4 + 2
                    };
                    let old = rd16(p, field);
                    wr16(p, field, new);
                    l4c = u16_l4(l4c, old, new);
                }
                Rewrite::Ttl(ttl) => {
                    let old = rd16(p, 8);
                    p[8] = ttl;
                    ipc = update16(ipc, old, rd16(p, 8));
                }
                Rewrite::Grow(k) => {
                    let (old_total, old_l4) = (rd16(p, 2), (p.len() - L4) as u16);
                    p.resize(p.len() + usize::from(k), 0);
                    let (new_total, new_l4) = (rd16(p, 2) + u16::from(k), old_l4 + u16::from(k));
                    wr16(p, 2, new_total);
                    ipc = update16(ipc, old_total, new_total);
                    // The L4 length is in the pseudo header; UDP also carries it in its header.
                    l4c = u16_l4(l4c, old_l4, new_l4);
                    if proto == Proto::Udp {
                        wr16(p, L4 + 4, new_l4);
                        l4c = u16_l4(l4c, old_l4, new_l4);
                    }
                }
            }
            wr16(p, 10, ipc);
            wr16(p, at, l4c);
            l4c
        }

        /// Both checksums match a full recompute, and verify with our sum and with smoltcp.
        pub fn assert_valid(p: &[u8], proto: Proto, udp_zero: bool) {
            let at = proto.csum_at();
            assert_eq!(rd16(p, 10), full_ip(p), "IPv4 checksum vs recompute");
            assert_eq!(checksum(&p[..20]), 0, "IPv4 header sums to -0");
            let ip = Ipv4Packet::new_checked(p).expect("valid IPv4");
            assert!(ip.verify_checksum(), "smoltcp IPv4 verify");
            let src = IpAddress::Ipv4(Ipv4Addr::from(rd32(p, 12)));
            let dst = IpAddress::Ipv4(Ipv4Addr::from(rd32(p, 16)));
            if udp_zero {
                assert_eq!(rd16(p, at), 0, "UDP zero checksum stays zero");
            } else {
                assert_eq!(rd16(p, at), full_l4(p, proto), "L4 checksum vs recompute");
                assert_eq!(!fold(l4_sum(p)), 0, "L4 sums to -0");
            }
            match proto {
                Proto::Tcp => {
                    let tcp = TcpPacket::new_checked(ip.payload()).expect("valid TCP");
                    assert!(tcp.verify_checksum(&src, &dst), "smoltcp TCP verify");
                }
                Proto::Udp => {
                    let udp = UdpPacket::new_checked(ip.payload()).expect("valid UDP");
                    assert_eq!(usize::from(udp.len()), ip.payload().len());
                    assert!(udp.verify_checksum(&src, &dst), "smoltcp UDP verify");
                }
            }
        }

        fn rewrite_strategy() -> impl Strategy<Value = Rewrite> {
            prop_oneof![
                any::<u32>().prop_map(Rewrite::SrcAddr),
                any::<u32>().prop_map(Rewrite::DstAddr),
                any::<u16>().prop_map(Rewrite::SrcPort),
                any::<u16>().prop_map(Rewrite::DstPort),
                any::<u8>().prop_map(Rewrite::Ttl),
                (0u8..=9).prop_map(Rewrite::Grow),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn incremental_rewrites_match_recompute(
                tcp in any::<bool>(),
                src in any::<u32>(),
                dst in any::<u32>(),
                sport in any::<u16>(),
                dport in any::<u16>(),
                ttl in any::<u8>(),
                payload in proptest::collection::vec(any::<u8>(), 0..=1500),
                udp_zero in any::<bool>(),
                rewrites in proptest::collection::vec(rewrite_strategy(), 0..12),
            ) {
                let proto = if tcp { Proto::Tcp } else { Proto::Udp };
                let udp_zero = udp_zero && proto == Proto::Udp;
                let mut p = build(proto, src, dst, sport, dport, ttl, &payload, udp_zero);
                assert_valid(&p, proto, udp_zero);
                for rw in rewrites {
                    let c = rewrite(&mut p, proto, rw);
                    if proto == Proto::Udp {
                        // RFC 768: 0 means "none"; a real checksum never becomes 0.
                        prop_assert_eq!(c == 0, udp_zero);
                    }
                    assert_valid(&p, proto, udp_zero);
                }
            }

            #[test]
            fn update16_of_unchanged_field_is_identity(c in 0u16..0xffff, x in any::<u16>()) {
                prop_assert_eq!(update16(c, x, x), c);
            }

            #[test]
            fn update32_is_two_update16(c in 0u16..0xffff, old in any::<u32>(), new in any::<u32>()) {
                let halves = update16(
                    update16(c, (old >> 16) as u16, (new >> 16) as u16),
                    old as u16,
                    new as u16,
                );
                prop_assert_eq!(update32(c, old, new), halves);
            }

            #[test]
            fn checksum_of_data_with_its_checksum_is_zero(
                mut data in proptest::collection::vec(any::<u8>(), 2..200),
            ) {
                // Put the checksum in the first word (even offset), then re-sum: -0 folds to 0.
                data[0] = 0;
                data[1] = 0;
                let c = checksum(&data);
                data[..2].copy_from_slice(&c.to_be_bytes());
                prop_assert_eq!(checksum(&data), 0);
            }
        }
    }
}
