//! The director's own traffic: ARP for its addresses, ARP resolution of next hops with parked
//! packets, ICMP echo, the exception path, and malformed input counted by reason.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
use dataplane::worker::WorkerConfig;
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv4Addr;

fn arp_frame(
    op: ArpOperation,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    testkit::arp_frame(op.into(), src_mac, dst_mac, spa, tha, tpa)
}

fn parse_arp(f: &[u8]) -> ArpRepr {
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    ArpRepr::parse(&ArpPacket::new_checked(&f[14..]).unwrap()).unwrap()
}

fn lab() -> Lab {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    Lab::new(&cfg)
}

#[test]
fn arp_replies_for_vip_lip_and_dip() {
    let mut lab = lab();
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    for (port, target, my_mac) in [
        (WAN, VIP, WAN_MAC),
        (WAN, DIP_WAN, WAN_MAC),
        (LAN, LIP1, LAN_MAC),
        (LAN, DIP_LAN, LAN_MAC),
    ] {
        let asker_ip = if port == WAN {
            Ipv4Addr::new(192, 0, 2, 9)
        } else {
            Ipv4Addr::new(10, 1, 0, 9)
        };
        let req = arp_frame(
            ArpOperation::Request,
            asker,
            [0xff; 6],
            asker_ip,
            [0; 6],
            target,
        );
        let out = lab.send(port, &req);
        // The kernel gets a copy of every ARP frame from a port with an exception path.
        if port == WAN {
            assert_eq!(out.tap, vec![req.clone()]);
        }
        let f = if port == WAN {
            &out.wan[0]
        } else {
            &out.lan[0]
        };
        assert_eq!(out.total(), if port == WAN { 2 } else { 1 });
        assert_eq!(&f[0..6], &asker);
        assert_eq!(&f[6..12], &my_mac);
        assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
        match parse_arp(f) {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } => {
                assert_eq!(operation, ArpOperation::Reply);
                assert_eq!(source_hardware_addr.0, my_mac);
                assert_eq!(source_protocol_addr, target);
                assert_eq!(target_hardware_addr.0, asker);
                assert_eq!(target_protocol_addr, asker_ip);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lab.worker.counters().arp_replies(), 4);
    // The LAN DIP is not answered on the WAN interface; unknown addresses are not answered.
    for target in [DIP_LAN, Ipv4Addr::new(192, 0, 2, 77)] {
        let req = arp_frame(
            ArpOperation::Request,
            asker,
            [0xff; 6],
            Ipv4Addr::new(192, 0, 2, 9),
            [0; 6],
            target,
        );
        let out = lab.send(WAN, &req);
        assert_eq!(
            (out.wan.len(), out.lan.len(), out.tap.len()),
            (0, 0, 1),
            "only the kernel's copy"
        );
    }
    assert_eq!(lab.worker.counters().drop_count(DropReason::ArpNotForUs), 2);
}

#[test]
fn next_hop_resolution_parks_then_releases() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::with(&cfg, WorkerConfig::default(), false);
    lab.worker
        .neighbours_mut()
        .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));

    let out = lab.send(WAN, &Frame::tcp(CIP, 41000, VIP, 80, SYN).build());
    // Only an ARP request for the RS goes out; the SYN waits.
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert_eq!(&f[0..6], &[0xff; 6]);
    match parse_arp(f) {
        ArpRepr::EthernetIpv4 {
            operation,
            source_protocol_addr,
            target_protocol_addr,
            source_hardware_addr,
            ..
        } => {
            assert_eq!(operation, ArpOperation::Request);
            assert_eq!(source_protocol_addr, DIP_LAN);
            assert_eq!(source_hardware_addr.0, LAN_MAC);
            assert_eq!(target_protocol_addr, RS[0]);
        }
        other => panic!("{other:?}"),
    }
    // A retransmitted SYN parks too, with no second request.
    let out = lab.send(WAN, &Frame::tcp(CIP, 41000, VIP, 80, SYN).build());
    assert_eq!(out.total(), 0);
    assert_eq!(lab.worker.counters().parked(), 2);

    // The RS answers: both parked SYNs leave, in order, with its MAC.
    let reply = arp_frame(
        ArpOperation::Reply,
        rs_mac(0),
        LAN_MAC,
        RS[0],
        LAN_MAC,
        DIP_LAN,
    );
    let out = lab.send(LAN, &reply);
    assert_eq!(out.lan.len(), 2);
    for f in &out.lan {
        let s = decode(f);
        assert_eq!((s.dst_mac, s.dst, s.dport), (rs_mac(0), RS[0], 8080));
    }
    // Now resolved: the next packet goes straight out.
    let out = lab.send(WAN, &Frame::tcp(CIP, 41000, VIP, 80, ACK).build());
    assert_eq!(out.lan.len(), 1);
}

#[test]
fn unanswered_resolution_gives_up_and_counts() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::with(&cfg, WorkerConfig::default(), false);
    lab.send(WAN, &Frame::tcp(CIP, 41001, VIP, 80, SYN).build());
    let mut requests = 1;
    for _ in 0..10 {
        lab.advance(1_000);
        requests += lab.slow().lan.len();
    }
    assert_eq!(requests, 3, "max_probes requests in all");
    assert_eq!(
        lab.worker
            .counters()
            .drop_count(DropReason::NeighbourUnresolved),
        1
    );
    // A fifth packet while four are parked is refused and counted.
    let mut lab = Lab::with(&cfg, WorkerConfig::default(), false);
    for i in 0..5 {
        lab.send(WAN, &Frame::tcp(CIP, 42000 + i, VIP, 80, SYN).build());
    }
    assert_eq!(lab.worker.counters().parked(), 4);
    assert_eq!(
        lab.worker
            .counters()
            .drop_count(DropReason::NeighbourUnresolved),
        1
    );
}

#[test]
fn echo_replies_for_vip_and_dip() {
    let mut lab = lab();
    for target in [VIP, DIP_WAN, DIP_LAN] {
        let input = Frame::echo(CIP, target, true, 77).build();
        let out = lab.send(WAN, &input);
        let (p, f) = out.only();
        assert_eq!(p, WAN);
        let s = decode(f);
        assert_eq!((s.src, s.dst, s.flags, s.sport), (target, CIP, 0, 77));
        assert_eq!(s.dst_mac, ROUTER_MAC);
        assert_eq!(s.payload, b"ping-payload");
    }
    assert_eq!(lab.worker.counters().icmp_echo_replies(), 3);
}

#[test]
fn exception_path_both_ways() {
    let mut lab = lab();
    // SSH to the DIP goes to the kernel unchanged; a VIP port without a service is refused
    // by rvs itself (a RST: no_service.rs), not handed to the kernel.
    let input = Frame::tcp(CIP, 43000, DIP_WAN, 22, SYN).build();
    let out = lab.send(WAN, &input);
    let (p, f) = out.only();
    assert_eq!(p, TAP);
    assert_eq!(f, &input[..]);
    let out = lab.send(WAN, &Frame::tcp(CIP, 43000, VIP, 443, SYN).build());
    let (p, f) = out.only();
    assert_eq!((p, decode(f).flags), (WAN, RST | ACK));
    assert_eq!(lab.worker.counters().exception(), 1);
    // What the kernel sends comes out of the data port as is.
    let from_kernel = Frame::tcp(DIP_WAN, 22, CIP, 43000, SYN | ACK).build();
    let out = lab.send(TAP, &from_kernel);
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    assert_eq!(f, &from_kernel[..]);
    // Without an exception path, the director's traffic is dropped and counted.
    let out = lab.send(
        LAN,
        &Frame::tcp(RS[0], 43000, DIP_LAN, 22, SYN).via_rs(0).build(),
    );
    assert_eq!(out.total(), 0);
    assert_eq!(
        lab.worker
            .counters()
            .drop_count(DropReason::NoExceptionPath),
        1
    );
}

#[test]
fn bad_input_is_counted_by_reason_and_changes_nothing() {
    let mut lab = lab();
    let good = Frame::tcp(CIP, 44000, VIP, 80, SYN).build();
    let mut cases: Vec<(Vec<u8>, DropReason)> = vec![
        (good[..10].to_vec(), DropReason::TruncatedEthernet),
        (good[..20].to_vec(), DropReason::MalformedIpv4),
        (good[..14 + 20 + 10].to_vec(), DropReason::MalformedIpv4),
    ];
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    cases.push((bad_ihl, DropReason::MalformedIpv4));
    let mut bad_csum = good.clone();
    bad_csum[14 + 10] ^= 0xff;
    cases.push((bad_csum, DropReason::BadIpv4Checksum));
    let mut other_mac = good.clone();
    other_mac[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    cases.push((other_mac, DropReason::OtherHost));
    let mut ipv6 = good.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    ipv6[14] = 0x60;
    ipv6[18..20].copy_from_slice(&[0, 0]); // payload length 0: a bare 40-byte header
    cases.push((ipv6, DropReason::Ipv6NotSupported));
    let mut unknown = good.clone();
    unknown[12..14].copy_from_slice(&[0x88, 0xcc]);
    cases.push((unknown, DropReason::UnknownEthertype));
    cases.push((
        Frame::tcp(CIP, 44000, VIP, 80, ACK).build(),
        DropReason::NoSession,
    ));
    cases.push((
        Frame::tcp(CIP, 44000, VIP, 80, SYN | FIN).build(),
        DropReason::BadTcpFlags,
    ));
    cases.push((
        Frame::tcp(CIP, 44000, Ipv4Addr::new(203, 0, 113, 1), 80, SYN).build(),
        DropReason::NotForUs,
    ));
    for (frame, reason) in cases {
        let before = lab.worker.counters().drop_count(reason);
        let out = lab.send(WAN, &frame);
        assert_eq!(out.total(), 0, "{reason:?}");
        assert_eq!(
            lab.worker.counters().drop_count(reason),
            before + 1,
            "{reason:?}"
        );
    }
    assert_eq!(lab.worker.sessions().len(), 0);
    // The worker still forwards normally.
    assert_eq!(lab.send(WAN, &good).lan.len(), 1);
}

fn fragment(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut f = Frame::tcp(CIP, 45000, dst, dport, SYN)
        .payload(&[1; 16])
        .build();
    // Set MF (a first fragment) and fix the IPv4 header checksum.
    f[14 + 6] |= 0x20;
    f[14 + 10..14 + 12].fill(0);
    let c = dataplane::checksum::checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn fragments_policy() {
    let mut lab = lab();
    // A VIP's fragment can't be matched to a session: counted drop, nothing scheduled.
    assert_eq!(lab.send(WAN, &fragment(VIP, 80)).total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::Fragment), 1);
    assert_eq!(lab.worker.sessions().len(), 0);
    // The director's own fragments go to the kernel, which reassembles them.
    let f = fragment(DIP_WAN, 22);
    let out = lab.send(WAN, &f);
    assert_eq!(out.tap, vec![f]);
    // Transit fragments are not for us.
    assert_eq!(
        lab.send(WAN, &fragment(Ipv4Addr::new(203, 0, 113, 5), 80))
            .total(),
        0
    );
    assert_eq!(lab.worker.counters().drop_count(DropReason::Fragment), 2);
}
