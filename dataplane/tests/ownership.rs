//! Managed addresses: a managed VIP or LIP is served only while the director holds it
//! (keepalived put it on a kernel interface; the snapshot says so), gratuitous ARPs announce a
//! takeover, and sessions outlive a standby spell.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::DirectorConfig;
use dataplane::wire::{ArpOperation, ArpPacket, ArpRepr};
use dataplane::worker::{WorkerConfig, GARP_COUNT, GARP_INTERVAL_MS};
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv4Addr;

const ASKER: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0xaa];

/// FullNAT on VIP:80 with LIP1 and LIP2; VIP and LIP1 managed, held as `held` says (the
/// port whose kernel interface has each).
fn cfg(held: &[(Ipv4Addr, u16)]) -> DirectorConfig {
    let mut c = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    c.managed = vec![VIP, LIP1];
    c.held = held.iter().copied().collect();
    c
}

const OWNED: &[(Ipv4Addr, u16)] = &[(VIP, WAN), (LIP1, LAN)];

/// An ARP request for `target` from a host on `port`'s segment.
fn who_has(port: u16, target: Ipv4Addr) -> Vec<u8> {
    let asker_ip = if port == WAN {
        Ipv4Addr::new(192, 0, 2, 9)
    } else {
        Ipv4Addr::new(10, 1, 0, 9)
    };
    testkit::arp_frame(
        ArpOperation::Request.into(),
        ASKER,
        [0xff; 6],
        asker_ip,
        [0; 6],
        target,
    )
}

fn parse_arp(f: &[u8]) -> ArpRepr {
    assert_eq!(&f[12..14], &[0x08, 0x06], "an ARP frame");
    ArpRepr::parse(&ArpPacket::new_checked(&f[14..]).unwrap()).unwrap()
}

/// True if `out` (a port's frames) holds an ARP reply for `ip`.
fn answered(frames: &[Vec<u8>], ip: Ipv4Addr) -> bool {
    frames.iter().any(|f| {
        matches!(parse_arp(f), ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_protocol_addr,
            ..
        } if source_protocol_addr == ip)
    })
}

#[test]
fn a_standby_address_gets_no_arp_answer_and_no_traffic() {
    let mut lab = Lab::new(&cfg(&[]));
    for (port, target) in [(WAN, VIP), (LAN, LIP1)] {
        let out = lab.send(port, &who_has(port, target));
        assert!(
            out.wan.is_empty() && out.lan.is_empty(),
            "{target}: {out:?}"
        );
    }
    assert_eq!(lab.worker.counters().arp_replies(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::ArpNotForUs), 2);
    // What nobody manages is answered as always: the DIPs and the other LIP.
    for (port, target) in [(WAN, DIP_WAN), (LAN, LIP2), (LAN, DIP_LAN)] {
        let out = lab.send(port, &who_has(port, target));
        let sent = if port == WAN { &out.wan } else { &out.lan };
        assert!(answered(sent, target), "{target}");
    }

    // A new connection, a ping and a datagram to the standby VIP: dropped and counted, no
    // session opened, nothing to the kernel.
    for f in [
        Frame::tcp(CIP, 40000, VIP, 80, SYN).build(),
        Frame::echo(CIP, VIP, true, 7).build(),
        Frame::tcp(CIP, 40001, VIP, 22, SYN).build(),
    ] {
        let out = lab.send(WAN, &f);
        assert_eq!(out.total(), 0, "{out:?}");
    }
    // A packet to the standby LIP that belongs to no session.
    let out = lab.send(
        LAN,
        &Frame::tcp(RS[0], 8080, LIP1, 5000, ACK).via_rs(0).build(),
    );
    assert_eq!(out.total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::StandbyAddress), 4);
    assert_eq!(c.sessions_created(), 0);
    assert_eq!(c.exception(), 0);
    assert!(lab.worker.sessions().is_empty());
    assert!(c.balanced());
}

#[test]
fn an_owned_address_is_answered_and_served() {
    let mut lab = Lab::new(&cfg(OWNED));
    let out = lab.send(WAN, &who_has(WAN, VIP));
    assert!(answered(&out.wan, VIP));
    assert_eq!(&out.wan[0][6..12], &WAN_MAC);
    let out = lab.send(LAN, &who_has(LAN, LIP1));
    assert!(answered(&out.lan, LIP1));
    let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    let (port, f) = out.only();
    assert_eq!(port, LAN);
    assert_eq!(decode(f).dst, RS[0]);
    assert_eq!(lab.worker.counters().sessions_created(), 1);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::StandbyAddress),
        0
    );
}

/// The gratuitous ARPs in `frames`, as (sender address, source MAC).
fn garps(frames: &[Vec<u8>]) -> Vec<(Ipv4Addr, [u8; 6])> {
    frames
        .iter()
        .filter(|f| f[12..14] == [0x08, 0x06])
        .filter_map(|f| match parse_arp(f) {
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } if source_protocol_addr == target_protocol_addr => {
                assert_eq!(&f[0..6], &[0xff; 6], "broadcast");
                assert_eq!(&f[6..12], &source_hardware_addr.0, "from the port's MAC");
                assert_eq!(target_hardware_addr.0, [0; 6]);
                Some((source_protocol_addr, source_hardware_addr.0))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn taking_an_address_over_sends_gratuitous_arps_from_its_port() {
    let mut lab = Lab::new(&cfg(&[]));
    assert!(lab.slow().total() == 0, "nothing to announce in standby");
    lab.publish(&cfg(OWNED));
    lab.worker.poll(lab.now); // adopts the snapshot: schedules only
    let out = lab.collect();
    assert_eq!(out.total(), 0, "never from the packet path");
    for n in 0..GARP_COUNT {
        let out = lab.slow();
        assert_eq!(garps(&out.wan), vec![(VIP, WAN_MAC)], "round {n}");
        assert_eq!(garps(&out.lan), vec![(LIP1, LAN_MAC)], "round {n}");
        assert!(out.tap.is_empty());
        // Not again before the interval.
        assert_eq!(lab.slow().total(), 0);
        lab.advance(GARP_INTERVAL_MS);
    }
    assert_eq!(lab.slow().total(), 0, "{GARP_COUNT} and done");
    let c = lab.worker.counters();
    assert_eq!(c.gratuitous_arps(), 2 * GARP_COUNT as u64);
    assert!(c.balanced(), "built frames are not forwarded ones");

    // Another publish that keeps the ownership announces nothing; a release cancels what is
    // left, and a new takeover announces again.
    lab.publish(&cfg(OWNED));
    lab.worker.poll(lab.now);
    assert_eq!(lab.slow().total(), 0);
    lab.publish(&cfg(&[(LIP1, LAN)]));
    lab.worker.poll(lab.now);
    assert_eq!(lab.slow().total(), 0);
    lab.publish(&cfg(OWNED));
    lab.worker.poll(lab.now);
    let out = lab.slow();
    assert_eq!(garps(&out.wan), vec![(VIP, WAN_MAC)]);
    assert!(out.lan.is_empty(), "LIP1 stayed owned");
    lab.publish(&cfg(&[(LIP1, LAN)]));
    lab.worker.poll(lab.now);
    lab.advance(GARP_INTERVAL_MS);
    assert_eq!(lab.slow().total(), 0, "released: the rest is cancelled");
}

#[test]
fn only_worker_zero_announces() {
    let wcfg = WorkerConfig {
        id: 1,
        workers: 2,
        ..WorkerConfig::default()
    };
    let mut lab = Lab::with(&cfg(&[]), wcfg, true);
    lab.publish(&cfg(OWNED));
    lab.worker.poll(lab.now);
    assert_eq!(lab.slow().total(), 0);
    assert_eq!(lab.worker.counters().gratuitous_arps(), 0);
}

#[test]
fn held_from_the_start_is_announced_too() {
    let mut lab = Lab::new(&cfg(OWNED));
    let out = lab.slow();
    assert_eq!(garps(&out.wan), vec![(VIP, WAN_MAC)]);
    assert_eq!(garps(&out.lan), vec![(LIP1, LAN_MAC)]);
}

#[test]
fn sessions_outlive_standby_spells() {
    let mut lab = Lab::new(&cfg(OWNED));
    let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    let (_, f) = out.only();
    let syn = decode(f);
    let (lip, lport) = (syn.src, syn.sport);
    assert_eq!(lip, LIP1);
    let synack = Frame::tcp(RS[0], 8080, lip, lport, SYN | ACK)
        .via_rs(0)
        .build();
    assert_eq!(lab.send(LAN, &synack).wan.len(), 1);
    assert_eq!(
        lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, ACK).build())
            .lan
            .len(),
        1
    );
    assert_eq!(state_of(&lab), TcpState::Established);

    let spells = [("standby", &[][..]), ("owned", OWNED), ("standby", &[][..])];
    for (i, (spell, held)) in spells.into_iter().enumerate() {
        lab.advance(1_000);
        lab.publish(&cfg(held));
        lab.worker.poll(lab.now);
        lab.slow();
        // The session is still there, and a packet of it still finds it: a flow that reaches
        // this director after a failover is served, not reset.
        let kept = lab
            .worker
            .sessions()
            .iter()
            .find(|(_, s)| s.original.sport == 40000);
        assert_eq!(
            kept.map(|(_, s)| s.state),
            Some(SessionState::Tcp(TcpState::Established)),
            "{spell}"
        );
        let data = Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH)
            .payload(b"more")
            .build();
        let out = lab.send(WAN, &data);
        let (port, f) = out.only();
        assert_eq!(port, LAN, "{spell}");
        assert_eq!((decode(f).src, decode(f).sport), (lip, lport), "{spell}");
        let reply = Frame::tcp(RS[0], 8080, lip, lport, ACK).via_rs(0).build();
        assert_eq!(lab.send(LAN, &reply).wan.len(), 1, "{spell}");
        // A new client is served only while the VIP is owned.
        let cport = 41000 + i as u16;
        let out = lab.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
        if spell == "owned" {
            assert_eq!(out.lan.len(), 1);
        } else {
            assert_eq!(out.total(), 0, "{spell}");
        }
    }
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::StandbyAddress),
        2
    );
}
