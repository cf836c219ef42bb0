//! Hostile and edge-case packets, each with its expected verdict and counter: truncation at
//! every layer, inconsistent lengths, bad checksums, IP options, fragments, TTL, TCP flag
//! combinations, UDP without payload, VLAN tags, unknown VIPs and ports, broadcast and
//! multicast, martian addresses — and ICMP errors about sessions, relayed with their quotes
//! rewritten. After every case the worker's counters balance (each frame forwarded, dropped
//! for one reason, or handed on exactly once) and it still forwards a good packet.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::icmp;
use dataplane::worker::WorkerConfig;
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv4Addr;

fn fullnat_lab() -> Lab {
    Lab::new(&config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    ))
}

fn lab_for(proto: Proto, mode: ForwardMode) -> Lab {
    Lab::new(&config(proto, 80, SchedKind::Rr, &[dest(0, 8080, 1, mode)]))
}

/// Sends `frame` on `port` and checks it was dropped, with nothing sent, for `reason` alone.
fn expect_drop(lab: &mut Lab, port: u16, frame: &[u8], reason: DropReason, what: &str) {
    let before = lab.worker.counters().clone();
    let out = lab.send(port, frame);
    let after = lab.worker.counters();
    assert_eq!(out.total(), 0, "{what}: nothing goes out: {out:?}");
    assert_eq!(
        after.drop_count(reason),
        before.drop_count(reason) + 1,
        "{what}: counted as {reason}"
    );
    assert_eq!(
        after.total_drops(),
        before.total_drops() + 1,
        "{what}: one drop, one reason"
    );
    assert!(after.balanced(), "{what}: counters balance");
}

/// The lab still opens and forwards a fresh connection.
fn still_forwards(lab: &mut Lab, sport: u16) {
    let out = lab.send(WAN, &Frame::tcp(CIP, sport, VIP, 80, SYN).build());
    assert_eq!(out.lan.len(), 1, "a good SYN still goes through: {out:?}");
    assert!(checksums_valid(&out.lan[0]));
}

/// A client's SYN to VIP:80.
fn syn_frame() -> Vec<u8> {
    Frame::tcp(CIP, 40000, VIP, 80, SYN).build()
}

#[test]
fn truncated_at_every_byte() {
    let mut lab = fullnat_lab();
    let good = syn_frame();
    for cut in 0..good.len() {
        let reason = if cut < 14 {
            DropReason::TruncatedEthernet
        } else {
            // The IPv4 header, or the total length beyond what is left of the frame.
            DropReason::MalformedIpv4
        };
        expect_drop(
            &mut lab,
            WAN,
            &good[..cut],
            reason,
            &format!("cut at {cut}"),
        );
    }
    // A tagged frame cut inside its tag.
    let mut tagged = Frame::tcp(CIP, 40000, VIP, 80, SYN);
    tagged.vlan = Some(100);
    let tagged = tagged.build();
    for cut in 14..18 {
        expect_drop(
            &mut lab,
            WAN,
            &tagged[..cut],
            DropReason::BadVlan,
            "cut in the tag",
        );
    }
    // An ARP request cut short.
    let arp = arp_frame(1, ROUTER_MAC, [0xff; 6], ROUTER, [0; 6], VIP);
    expect_drop(
        &mut lab,
        WAN,
        &arp[..30],
        DropReason::MalformedArp,
        "short ARP",
    );
    assert_eq!(lab.worker.sessions().len(), 0);
    still_forwards(&mut lab, 40001);
}

/// The IPv4 total length says the L4 header is shorter than its minimum: TCP 20 bytes (and
/// its data offset), UDP 8 (and its length field), ICMP 8.
#[test]
fn l4_header_shorter_than_its_minimum() {
    let mut lab = Lab::new(&config(
        Proto::Udp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    ));
    let cases = [
        (
            Frame::tcp(CIP, 40000, VIP, 80, SYN),
            20,
            DropReason::MalformedTcp,
        ),
        (Frame::udp(CIP, 40000, VIP, 80), 8, DropReason::MalformedUdp),
        (Frame::echo(CIP, VIP, true, 7), 8, DropReason::MalformedIcmp),
    ];
    for (frame, min, reason) in cases {
        let built = frame.build();
        for l4 in 0..min {
            let mut f = built.clone();
            set_ip_total_len(&mut f, (20 + l4) as u16);
            expect_drop(
                &mut lab,
                WAN,
                &f,
                reason,
                &format!("{reason}: {l4} L4 bytes"),
            );
        }
    }
    // TCP data offset below 5, or beyond the segment.
    for doff in [0u8, 4, 6, 15] {
        let mut f = syn_frame();
        f[14 + 20 + 12] = doff << 4;
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::MalformedTcp,
            &format!("doff {doff}"),
        );
    }
    // UDP length field below 8, or beyond the datagram.
    for len in [0u16, 7, 9 + 8] {
        let mut f = Frame::udp(CIP, 40000, VIP, 80).build();
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&len.to_be_bytes());
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::MalformedUdp,
            &format!("UDP len {len}"),
        );
    }
    assert_eq!(lab.worker.sessions().len(), 0);
}

#[test]
fn ihl_below_five_or_version_not_four() {
    let mut lab = fullnat_lab();
    for ihl in 0..5u8 {
        let mut f = syn_frame();
        f[14] = 0x40 | ihl;
        refresh_ip_checksum(&mut f, 14);
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::MalformedIpv4,
            &format!("IHL {ihl}"),
        );
    }
    // IHL beyond the total length.
    let mut f = syn_frame();
    f[14] = 0x4f;
    refresh_ip_checksum(&mut f, 14);
    expect_drop(&mut lab, WAN, &f, DropReason::MalformedIpv4, "IHL 15");
    for version in [0u8, 5, 6, 15] {
        let mut f = syn_frame();
        f[14] = version << 4 | 5;
        refresh_ip_checksum(&mut f, 14);
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::MalformedIpv4,
            &format!("version {version}"),
        );
    }
    still_forwards(&mut lab, 40001);
}

#[test]
fn total_length_beyond_the_frame_or_shorter_than_the_header() {
    let mut lab = fullnat_lab();
    for len in [0u16, 1, 19, 41, 1500, 65535] {
        let mut f = syn_frame();
        set_ip_total_len(&mut f, len);
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::MalformedIpv4,
            &format!("total length {len}"),
        );
    }
    // Shorter than the frame is Ethernet padding: trimmed, and the packet forwarded.
    let mut f = syn_frame();
    f.extend_from_slice(&[0xee; 20]);
    let out = lab.send(WAN, &f);
    let s = decode(&out.lan[0]);
    assert_eq!(s.total_len, 40);
    assert_eq!(out.lan[0].len(), 14 + 40, "the padding is not forwarded");
    assert!(lab.worker.counters().balanced());
}

/// Policy: the IPv4 header checksum is verified (a bad one is dropped); TCP and UDP checksums
/// are not — the rewrite updates them incrementally, so a bad one stays exactly as wrong and
/// the receiving host drops the segment, as IPVS and DPVS leave it.
#[test]
fn bad_checksums() {
    let mut lab = fullnat_lab();
    let mut f = syn_frame();
    f[14 + 10] ^= 0x5a;
    expect_drop(
        &mut lab,
        WAN,
        &f,
        DropReason::BadIpv4Checksum,
        "IPv4 header",
    );

    // Each case: the good and the damaged input through fresh labs; the outputs' checksums
    // differ by what the inputs' did (ones' complement), so the damage passes on unchanged.
    let cases = [
        (Proto::Tcp, ForwardMode::FullNat, syn_frame(), 14 + 20 + 16),
        (
            Proto::Udp,
            ForwardMode::Nat,
            Frame::udp(CIP, 40000, VIP, 80).payload(b"x").build(),
            14 + 20 + 6,
        ),
    ];
    for (proto, mode, good, at) in cases {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let csum = |f: &[u8]| u16::from_be_bytes([f[at], f[at + 1]]);
        let through = |f: &[u8]| {
            let out = lab_for(proto, mode).send(WAN, f);
            assert_eq!(out.lan.len(), 1, "{proto:?}: forwarded");
            out.lan[0].clone()
        };
        let (good_out, bad_out) = (through(&good), through(&bad));
        assert!(checksums_valid(&good_out));
        assert!(!checksums_valid(&bad_out), "{proto:?}: still bad");
        assert_eq!(
            ones_diff(csum(&bad_out), csum(&good_out)),
            ones_diff(csum(&bad), csum(&good)),
            "{proto:?}: off by exactly the input's error"
        );
    }
}

/// `a - b` in ones' complement arithmetic (mod 0xffff).
fn ones_diff(a: u16, b: u16) -> u32 {
    (u32::from(a) + 0xffff - u32::from(b)) % 0xffff
}

#[test]
fn ip_options_are_kept() {
    let mut lab = fullnat_lab();
    // Insert 4 bytes of options (NOP, NOP, NOP, EOL) into the SYN's IPv4 header.
    let plain = syn_frame();
    let mut f = plain[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&plain[34..]);
    f[14] = 0x46;
    set_ip_total_len(&mut f, 44);
    let out = lab.send(WAN, &f);
    assert_eq!(out.lan.len(), 1, "forwarded: {out:?}");
    let s = decode(&out.lan[0]);
    assert_eq!((s.dst, s.dport), (RS[0], 8080));
    assert_eq!(&out.lan[0][34..38], &[1, 1, 1, 0], "options kept");
    assert!(lab.worker.counters().balanced());
}

/// Policy (docs/robustness.md): fragments that no session or service can take are dropped
/// and counted by reason, and open nothing — a first fragment too short for its L4 header, a
/// TCP fragment at offset 8, a later fragment whose first was never seen, a TCP SYN or an
/// ICMP error in fragments, a TCP first fragment that matches no session.
#[test]
fn hostile_fragments_are_dropped_and_counted() {
    let mut lab = lab_for(Proto::Udp, ForwardMode::FullNat);
    let with_frag_word = |mut f: Vec<u8>, word: u16| {
        f[14 + 6..14 + 8].copy_from_slice(&word.to_be_bytes());
        refresh_ip_checksum(&mut f, 14);
        f
    };
    let first = Frame::udp(CIP, 40000, VIP, 80).payload(&[7; 32]).build();
    let mut tiny = with_frag_word(first.clone(), 0x2000);
    set_ip_total_len(&mut tiny, 20 + 4);
    tiny.truncate(14 + 24);
    expect_drop(&mut lab, WAN, &tiny, DropReason::FragmentTiny, "tiny first");
    let later = with_frag_word(first.clone(), 5);
    expect_drop(
        &mut lab,
        WAN,
        &later,
        DropReason::FragmentUnmatched,
        "later fragment, no first",
    );
    let mut tcp = lab_for(Proto::Tcp, ForwardMode::FullNat);
    let syn = Frame::tcp(CIP, 40000, VIP, 80, SYN)
        .payload(&[1; 16])
        .build();
    let syn_first = with_frag_word(syn.clone(), 0x2000);
    expect_drop(
        &mut tcp,
        WAN,
        &syn_first,
        DropReason::Fragment,
        "SYN fragment",
    );
    let at_8 = with_frag_word(syn.clone(), 0x2001);
    expect_drop(
        &mut tcp,
        WAN,
        &at_8,
        DropReason::FragmentTiny,
        "TCP at offset 8",
    );
    let ack = Frame::tcp(CIP, 40001, VIP, 80, ACK)
        .payload(&[1; 16])
        .build();
    let ack_first = with_frag_word(ack, 0x2000);
    expect_drop(
        &mut tcp,
        WAN,
        &ack_first,
        DropReason::Fragment,
        "TCP first fragment without a session",
    );
    let inner = Frame::udp(VIP, 80, CIP, 40000).build();
    let err = icmp_error_frame((ROUTER_MAC, WAN_MAC), CIP, VIP, (3, 3, 0), &inner[14..]);
    let err_first = with_frag_word(err, 0x2000);
    expect_drop(
        &mut lab,
        WAN,
        &err_first,
        DropReason::Fragment,
        "ICMP error fragment",
    );
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(tcp.worker.sessions().len(), 0);
    assert_eq!(lab.worker.fragments().in_use(), 0);
    assert_eq!(tcp.worker.fragments().in_use(), 0);
    still_forwards(&mut tcp, 41000);
}

/// ICMP errors in an Out: (port, decoded outer, the quote as an untagged frame to decode).
fn icmp_out(f: &[u8]) -> (Seen, Vec<u8>) {
    let s = decode(f);
    assert_eq!(s.proto, 1);
    let mut quoted = vec![0u8; 14];
    quoted[12..14].copy_from_slice(&[0x08, 0x00]);
    quoted.extend_from_slice(&s.payload);
    (s, quoted)
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut lab = fullnat_lab();
    for ttl in [0u8, 1] {
        let mut fr = Frame::tcp(CIP, 41000 + ttl as u16, VIP, 80, SYN);
        fr.ttl = ttl;
        let f = fr.build();
        let out = lab.send(WAN, &f);
        assert_eq!(out.total(), 1, "only the ICMP error: {out:?}");
        let (s, quoted) = icmp_out(&out.wan[0]);
        assert_eq!(s.dst_mac, ROUTER_MAC);
        assert_eq!((s.src, s.dst), (DIP_WAN, CIP));
        assert_eq!((s.flags, s.payload.len()), (icmp::TIME_EXCEEDED, 20 + 8));
        assert_eq!(
            &quoted[14..],
            &f[14..14 + 28],
            "quotes the packet as received"
        );
        assert_eq!(
            lab.worker.counters().drop_count(DropReason::TtlExceeded),
            ttl as u64 + 1
        );
    }
    assert_eq!(lab.worker.counters().icmp_errors(), 2);
    assert!(lab.worker.counters().balanced());
    assert_eq!(lab.worker.sessions().len(), 0);

    // On a session: the RS's reply with TTL 1 gets its error on the RS side.
    let out = lab.send(WAN, &syn_frame());
    let s = decode(&out.lan[0]);
    let mut reply = Frame::tcp(RS[0], 8080, s.src, s.sport, SYN | ACK).via_rs(0);
    reply.ttl = 1;
    let out = lab.send(LAN, &reply.build());
    let (e, _) = icmp_out(&out.lan[0]);
    assert_eq!((e.dst, e.flags), (RS[0], icmp::TIME_EXCEEDED));
}

#[test]
fn icmp_errors_the_director_builds_are_rate_limited() {
    let mut lab = fullnat_lab();
    let n = 300;
    let mut sent = 0;
    for i in 0..n {
        let mut fr = Frame::tcp(CIP, 20000 + i, VIP, 80, SYN);
        fr.ttl = 1;
        sent += lab.send(WAN, &fr.build()).total();
    }
    let c = lab.worker.counters();
    assert_eq!(
        sent,
        icmp::RateLimit::BURST as usize,
        "a burst at one instant"
    );
    assert_eq!(c.icmp_errors(), icmp::RateLimit::BURST as u64);
    assert_eq!(c.icmp_unsent(), n as u64 - icmp::RateLimit::BURST as u64);
    assert_eq!(c.drop_count(DropReason::TtlExceeded), n as u64);
    // 100 ms later: 100 more.
    lab.advance(100);
    let mut later = 0;
    for i in 0..n {
        let mut fr = Frame::tcp(CIP, 30000 + i, VIP, 80, SYN);
        fr.ttl = 1;
        later += lab.send(WAN, &fr.build()).total();
    }
    assert_eq!(
        later,
        icmp::RateLimit::BURST as usize,
        "refilled to the burst, not beyond"
    );
    assert!(lab.worker.counters().balanced());
}

/// Which TCP flag combinations open a session, and which are dropped before any lookup.
#[test]
fn tcp_flag_combinations() {
    let mut lab = fullnat_lab();
    let bad = [
        (SYN | FIN, "SYN+FIN"),
        (SYN | RST, "SYN+RST"),
        (SYN | FIN | RST | ACK, "SYN+FIN+RST+ACK"),
        (0, "no flags"),
        (0xff, "all flags"),
        (FIN, "FIN without ACK"),
        (FIN | PSH | 0x20, "FIN+PSH+URG (Xmas scan)"),
        (RST | 0x20, "RST+URG"),
    ];
    for (i, (flags, what)) in bad.iter().enumerate() {
        let f = Frame::tcp(CIP, 42000 + i as u16, VIP, 80, *flags).build();
        expect_drop(&mut lab, WAN, &f, DropReason::BadTcpFlags, what);
    }
    assert_eq!(lab.worker.sessions().len(), 0);
    // A plain ACK or RST is valid but opens nothing.
    for (i, flags) in [ACK, RST, RST | ACK, FIN | ACK].into_iter().enumerate() {
        let f = Frame::tcp(CIP, 42100 + i as u16, VIP, 80, flags).build();
        expect_drop(
            &mut lab,
            WAN,
            &f,
            DropReason::NoSession,
            &format!("flags {flags:#x}"),
        );
    }
    // SYN with PSH, ECE and CWR (ECN set-up) opens a session.
    let f = Frame::tcp(CIP, 42200, VIP, 80, SYN | PSH | 0x40 | 0x80).build();
    assert_eq!(lab.send(WAN, &f).lan.len(), 1);
    assert_eq!(lab.worker.sessions().len(), 1);
    // On that session, an invalid combination is dropped and changes nothing.
    let state = |lab: &Lab| lab.worker.sessions().iter().next().unwrap().1.state;
    let before = state(&lab);
    let f = Frame::tcp(CIP, 42200, VIP, 80, SYN | FIN | ACK).build();
    expect_drop(
        &mut lab,
        WAN,
        &f,
        DropReason::BadTcpFlags,
        "SYN+FIN on a session",
    );
    assert_eq!(state(&lab), before);
}

#[test]
fn udp_without_payload_is_forwarded() {
    let mut lab = lab_for(Proto::Udp, ForwardMode::FullNat);
    let out = lab.send(WAN, &Frame::udp(CIP, 40000, VIP, 80).build());
    let s = decode(&out.lan[0]);
    assert_eq!((s.dst, s.dport, s.payload.len()), (RS[0], 8080, 0));
    // With no checksum (0): still none after the rewrite (RFC 768).
    let mut fr = Frame::udp(CIP, 40001, VIP, 80);
    fr.l4 = L4Spec::Udp {
        sport: 40001,
        dport: 80,
        zero_csum: true,
    };
    let out = lab.send(WAN, &fr.build());
    assert_eq!(&out.lan[0][14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert!(lab.worker.counters().balanced());
}

#[test]
fn vlan_tags() {
    let mut lab = fullnat_lab();
    // A tag no interface is configured for.
    let mut fr = Frame::tcp(CIP, 40000, VIP, 80, SYN);
    fr.vlan = Some(7);
    expect_drop(
        &mut lab,
        WAN,
        &fr.build(),
        DropReason::UnknownVlan,
        "VLAN 7",
    );
    // Stacked tags (QinQ): not configurable, dropped.
    let mut f = fr.build();
    f.splice(12..12, [0x88, 0xa8, 0x00, 0x07]);
    expect_drop(&mut lab, WAN, &f, DropReason::BadVlan, "QinQ");
    let mut f = fr.build();
    f.splice(12..12, [0x81, 0x00, 0x00, 0x08]);
    expect_drop(&mut lab, WAN, &f, DropReason::BadVlan, "two 802.1Q tags");
    // A tagged frame on a configured VLAN is forwarded: see modes.rs vlan_ingress_and_egress.
}

#[test]
fn unknown_vips_and_ports() {
    let mut lab = fullnat_lab();
    // The VIP on a port without a service: refused as a kernel refuses a port with no socket
    // (no_service.rs has the details), never the kernel's.
    let f = Frame::tcp(CIP, 40000, VIP, 81, SYN).build();
    let out = lab.send(WAN, &f);
    assert_eq!((out.wan.len(), out.total()), (1, 1), "a RST back: {out:?}");
    assert_eq!(decode(&out.wan[0]).flags, RST | ACK);
    let f = Frame::udp(CIP, 40000, VIP, 80).build();
    let out = lab.send(WAN, &f);
    assert_eq!(
        decode(out.only().1).proto,
        1,
        "UDP to a TCP service's VIP: unreachable"
    );
    assert_eq!(lab.worker.counters().drop_count(DropReason::NoService), 2);
    // An address that is nobody's.
    let f = Frame::tcp(CIP, 40000, Ipv4Addr::new(192, 0, 2, 99), 80, SYN).build();
    expect_drop(&mut lab, WAN, &f, DropReason::NotForUs, "unknown VIP");
    // From the side without an exception path: refused the same way, toward the sender.
    let f = Frame::tcp(RS[0], 40000, VIP, 81, SYN).via_rs(0).build();
    let out = lab.send(LAN, &f);
    assert_eq!((out.lan.len(), out.total()), (1, 1), "a RST back: {out:?}");
    // The DIP's ports without an exception path: dropped as before.
    let f = Frame::tcp(RS[0], 40000, DIP_LAN, 22, SYN).via_rs(0).build();
    expect_drop(
        &mut lab,
        LAN,
        &f,
        DropReason::NoExceptionPath,
        "DIP:22 from the LAN",
    );
    assert_eq!(lab.worker.sessions().len(), 0);
    assert!(lab.worker.counters().balanced());
}

#[test]
fn broadcast_multicast_and_martians() {
    let mut lab = fullnat_lab();
    for mac in [[0xff; 6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]] {
        let mut fr = Frame::tcp(CIP, 40000, VIP, 80, SYN);
        fr.dst_mac = mac;
        expect_drop(
            &mut lab,
            WAN,
            &fr.build(),
            DropReason::OtherHost,
            "IPv4 to a group MAC",
        );
    }
    let martians = [
        (Ipv4Addr::new(0, 0, 0, 0), VIP, "source 0.0.0.0"),
        (Ipv4Addr::new(127, 0, 0, 1), VIP, "source loopback"),
        (Ipv4Addr::new(224, 0, 0, 1), VIP, "source multicast"),
        (Ipv4Addr::BROADCAST, VIP, "source broadcast"),
        (Ipv4Addr::new(240, 0, 0, 1), VIP, "source reserved"),
        (CIP, Ipv4Addr::BROADCAST, "destination broadcast"),
        (CIP, Ipv4Addr::new(127, 0, 0, 1), "destination loopback"),
        (CIP, Ipv4Addr::new(0, 1, 2, 3), "destination 0/8"),
    ];
    for (src, dst, what) in martians {
        let f = Frame::tcp(src, 40000, dst, 80, SYN).build();
        expect_drop(&mut lab, WAN, &f, DropReason::MartianAddress, what);
    }
    // A broadcast ARP request for the VIP is answered.
    let arp = arp_frame(1, ROUTER_MAC, [0xff; 6], ROUTER, [0; 6], VIP);
    assert_eq!(lab.send(WAN, &arp).wan.len(), 1);
    assert_eq!(lab.worker.sessions().len(), 0);
    still_forwards(&mut lab, 40002);
}

/// Opens a session with `first` (client → VIP) and answers it from RS 0 when `reply` is
/// given; returns what the RS got (its L3 bytes) and, if answered, what the client got.
fn open(lab: &mut Lab, first: &Frame, reply: Option<u8>) -> (Seen, Vec<u8>, Option<Vec<u8>>) {
    let out = lab.send(WAN, &first.build());
    assert_eq!(out.lan.len(), 1, "forwarded to the RS: {out:?}");
    let at_rs = decode(&out.lan[0]);
    let rs_l3 = out.lan[0][14..].to_vec();
    let at_client = reply.map(|flags| {
        let fr = match first.l4 {
            L4Spec::Tcp { .. } => Frame::tcp(at_rs.dst, at_rs.dport, at_rs.src, at_rs.sport, flags),
            _ => Frame::udp(at_rs.dst, at_rs.dport, at_rs.src, at_rs.sport),
        };
        let out = lab.send(LAN, &fr.via_rs(0).build());
        assert_eq!(out.wan.len(), 1);
        out.wan[0][14..].to_vec()
    });
    (at_rs, rs_l3, at_client)
}

/// A real server's "port unreachable" about a UDP datagram reaches the client as an error
/// about the datagram the client sent: from the VIP, quoting CIP:cport → VIP:vport, every
/// checksum valid (outer IPv4, ICMP, quoted IPv4 header, quoted UDP).
#[test]
fn port_unreachable_from_the_rs_reaches_the_client() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = lab_for(Proto::Udp, mode);
        let client = Frame::udp(CIP, 40000, VIP, 80).payload(b"query");
        let (at_rs, rs_l3, _) = open(&mut lab, &client, None);
        let err = icmp_error_frame(
            (rs_mac(0), LAN_MAC),
            RS[0],
            at_rs.src,
            (icmp::DEST_UNREACH, 3, 0),
            &rs_l3,
        );
        let out = lab.send(LAN, &err);
        assert_eq!(out.wan.len(), 1, "{mode:?}: relayed to the client: {out:?}");
        let (s, quoted) = icmp_out(&out.wan[0]);
        assert_eq!(
            (s.src, s.dst, s.dst_mac),
            (VIP, CIP, ROUTER_MAC),
            "{mode:?}"
        );
        assert_eq!((s.flags, s.ttl), (icmp::DEST_UNREACH, 63));
        let q = decode(&quoted);
        assert_eq!(
            (q.src, q.sport, q.dst, q.dport),
            (CIP, 40000, VIP, 80),
            "{mode:?}"
        );
        assert_eq!(q.payload, b"query");
        assert_eq!(lab.worker.counters().icmp_relayed(), 1);
        assert!(lab.worker.counters().balanced());
        lab.slow();
        let w = &lab.worker.stats_handle().worker;
        assert_eq!(
            w.icmp_relayed().load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}

/// Path-MTU discovery through the director: a router on the client's side says the RS's
/// segment (as the client would have got it) does not fit; the RS gets the error about the
/// segment it sent, with the MTU — from the LIP in FullNAT, from the router in NAT.
#[test]
fn frag_needed_from_the_client_side_reaches_the_rs() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = lab_for(Proto::Tcp, mode);
        let (at_rs, _, at_client) = open(
            &mut lab,
            &Frame::tcp(CIP, 40000, VIP, 80, SYN),
            Some(SYN | ACK),
        );
        let to_client = at_client.unwrap();
        let err = icmp_error_frame(
            (ROUTER_MAC, WAN_MAC),
            ROUTER,
            VIP,
            (icmp::DEST_UNREACH, icmp::FRAG_NEEDED, 1280),
            &to_client,
        );
        let out = lab.send(WAN, &err);
        assert_eq!(out.lan.len(), 1, "{mode:?}: relayed to the RS: {out:?}");
        let (s, quoted) = icmp_out(&out.lan[0]);
        let expect_src = if mode == ForwardMode::FullNat {
            at_rs.src
        } else {
            ROUTER
        };
        assert_eq!(
            (s.src, s.dst, s.dst_mac),
            (expect_src, RS[0], rs_mac(0)),
            "{mode:?}"
        );
        assert_eq!(
            &out.lan[0][14 + 24..14 + 28],
            &1280u32.to_be_bytes(),
            "MTU kept"
        );
        let q = decode(&quoted);
        assert_eq!(
            (q.src, q.sport, q.dst, q.dport, q.flags),
            (RS[0], 8080, at_rs.src, at_rs.sport, SYN | ACK),
            "{mode:?}: the RS's own segment"
        );
        // The session is untouched: the client's next segment still goes through.
        let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, ACK).build());
        assert_eq!(out.lan.len(), 1);
        assert!(lab.worker.counters().balanced());
    }
}

/// An error quoting a ping through a FullNAT ICMP service: the identifier moves back too.
#[test]
fn time_exceeded_about_a_ping_reaches_the_client() {
    let mut lab = Lab::new(&config(
        Proto::Icmp,
        0,
        SchedKind::Rr,
        &[dest(0, 0, 1, ForwardMode::FullNat)],
    ));
    let out = lab.send(WAN, &Frame::echo(CIP, VIP, true, 0x77).build());
    assert_eq!(out.lan.len(), 1, "{out:?}");
    let at_rs = out.lan[0][14..].to_vec();
    let err = icmp_error_frame(
        (rs_mac(0), LAN_MAC),
        RS[0],
        decode(&out.lan[0]).src,
        (icmp::TIME_EXCEEDED, 0, 0),
        &at_rs,
    );
    let out = lab.send(LAN, &err);
    let (s, quoted) = icmp_out(&out.wan[0]);
    assert_eq!((s.src, s.dst), (VIP, CIP));
    let q = decode(&quoted);
    assert_eq!((q.src, q.dst, q.sport, q.flags), (CIP, VIP, 0x77, 8));
}

/// In DR the RS answers the client directly; an error about that answer comes to the VIP and
/// goes on to the RS unchanged, as the client's packets do.
#[test]
fn dr_errors_go_to_the_rs_unchanged() {
    let mut lab = Lab::new(&config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 80, 1, ForwardMode::Dr)],
    ));
    let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    assert_eq!(out.lan.len(), 1);
    let direct = Frame::tcp(VIP, 80, CIP, 40000, SYN | ACK).build();
    let err = icmp_error_frame(
        (ROUTER_MAC, WAN_MAC),
        ROUTER,
        VIP,
        (icmp::DEST_UNREACH, icmp::FRAG_NEEDED, 1400),
        &direct[14..],
    );
    let out = lab.send(WAN, &err);
    assert_eq!(out.lan.len(), 1, "{out:?}");
    assert_eq!(&out.lan[0][0..6], &rs_mac(0));
    assert_eq!(&out.lan[0][14..], &err[14..], "L3 unchanged");
}

#[test]
fn icmp_errors_that_are_not_about_a_session() {
    let mut lab = fullnat_lab();
    let (at_rs, rs_l3, _) = open(&mut lab, &Frame::tcp(CIP, 40000, VIP, 80, SYN), None);
    // A bad ICMP checksum on an error about a session: dropped, never rewritten.
    let mut err = icmp_error_frame(
        (rs_mac(0), LAN_MAC),
        RS[0],
        at_rs.src,
        (icmp::DEST_UNREACH, 1, 0),
        &rs_l3,
    );
    err[14 + 20 + 2] ^= 0x10;
    expect_drop(
        &mut lab,
        LAN,
        &err,
        DropReason::BadIcmpChecksum,
        "bad ICMP checksum",
    );
    // Quoting a connection nobody has, to the VIP: the director's own (the kernel's).
    let stranger = Frame::tcp(VIP, 80, Ipv4Addr::new(198, 51, 100, 9), 1234, SYN | ACK).build();
    let err = icmp_error_frame(
        (ROUTER_MAC, WAN_MAC),
        ROUTER,
        VIP,
        (icmp::DEST_UNREACH, 3, 0),
        &stranger[14..],
    );
    assert_eq!(lab.send(WAN, &err).tap.len(), 1, "to the exception path");
    // A quote cut inside its L4 header, to a LIP: nobody's, dropped.
    let err = icmp_error_frame(
        (rs_mac(0), LAN_MAC),
        RS[0],
        at_rs.src,
        (icmp::DEST_UNREACH, 3, 0),
        &rs_l3[..24],
    );
    expect_drop(&mut lab, LAN, &err, DropReason::NotForUs, "quote too short");
    assert_eq!(lab.worker.counters().icmp_relayed(), 0);
}

/// The director does not fragment: a packet bigger than the egress MTU is dropped; with DF
/// the sender gets "fragmentation needed" with that MTU (RFC 1191), quoting its packet.
#[test]
fn oversized_packets_get_frag_needed() {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.interfaces[1].mtu = 1400;
    let mut lab = Lab::with(&cfg, WorkerConfig::default(), true);
    let (_, _, _) = open(&mut lab, &Frame::tcp(CIP, 40000, VIP, 80, SYN), None);
    let big = Frame::tcp(CIP, 40000, VIP, 80, ACK)
        .payload(&[0x61; 1400])
        .build();
    let out = lab.send(WAN, &big);
    assert_eq!(out.total(), 1, "only the error: {out:?}");
    let (s, quoted) = icmp_out(&out.wan[0]);
    assert_eq!((s.src, s.dst, s.flags), (DIP_WAN, CIP, icmp::DEST_UNREACH));
    assert_eq!(out.wan[0][34 + 1], icmp::FRAG_NEEDED);
    assert_eq!(
        &out.wan[0][34 + 6..34 + 8],
        &1400u16.to_be_bytes(),
        "the egress MTU"
    );
    assert_eq!(&quoted[14..14 + 28], &big[14..14 + 28]);
    assert_eq!(lab.worker.counters().drop_count(DropReason::TooBig), 1);
    // Without DF: dropped and counted, no error.
    let mut fr = Frame::tcp(CIP, 40000, VIP, 80, ACK).payload(&[0x61; 1400]);
    fr.df = false;
    expect_drop(&mut lab, WAN, &fr.build(), DropReason::TooBig, "no DF");
    // What fits goes through.
    let ok = Frame::tcp(CIP, 40000, VIP, 80, ACK)
        .payload(&[0x61; 1360])
        .build();
    assert_eq!(lab.send(WAN, &ok).lan.len(), 1);
    assert!(lab.worker.counters().balanced());
}
