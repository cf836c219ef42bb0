//! Sessions and scheduling through the worker: IPVS wrr order, draining with weight 0,
//! SYN retransmission and reuse, hard capacity, LIP exhaustion, configuration changes.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::DirectorConfig;
use dataplane::worker::WorkerConfig;
use dataplane::DropReason;
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey};

fn key() -> ServiceKey {
    ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    }
}

fn rs_index(f: &[u8]) -> usize {
    let s = decode(f);
    RS.iter().position(|r| *r == s.dst).expect("a real server")
}

/// A director whose service VIP:80 (`sched`) was given these dests by `ipvsadm -a` in this
/// order: `(RS index, weight)`. The service lists them newest first, as IPVS does.
fn added(sched: SchedKind, mode: ForwardMode, dests: &[(usize, u32)]) -> DirectorConfig {
    let mut cfg = config(Proto::Tcp, 80, sched, &[]);
    let svc = cfg.services.get_mut(&key()).unwrap();
    for &(i, w) in dests {
        svc.add_dest(dest(i, 80, w, mode)).unwrap();
    }
    cfg
}

/// The RS indices of `n` new connections' first packets (SYNs from ports `from`, `from + 1`,
/// ...).
fn picks(lab: &mut Lab, from: u16, n: u16) -> Vec<usize> {
    (0..n)
        .map(|i| {
            let out = lab.send(WAN, &Frame::tcp(CIP, from + i, VIP, 80, SYN).build());
            let f = out.lan.first().expect("the SYN goes to an RS");
            RS.iter()
                .position(|r| *r == decode(f).dst)
                .or_else(|| (0..3).find(|&r| f[0..6] == rs_mac(r)))
                .expect("a real server")
        })
        .collect()
}

/// wrr as a Linux director schedules, worked out from `ip_vs_wrr.c` by hand:
/// - rs0 (4), rs1 (3), rs2 (2) added in that order: the list is rs2, rs1, rs0. Adding rs0:
///   di 4, mw 4 - 3 = 1, cw 0 → 1; adding rs1: di 1, mw 4, cw 1 stays; rs2: cw 1 stays. From
///   the head at cw 1: rs2 rs1 rs0; then cw 4: rs0; cw 3: rs1 rs0; cw 2: rs2 rs1 rs0; cw 1:
///   rs2 rs1 rs0; then 4 again.
/// - rs0 (5), rs1 (1), rs2 (1): adding rs0 leaves cw 1, and so do the others: rs2 rs1 rs0 at
///   cw 1, then rs0 alone at cw 5, 4, 3, 2.
#[test]
fn wrr_follows_the_sequence_of_a_linux_director() {
    let mut lab = Lab::new(&added(
        SchedKind::Wrr,
        ForwardMode::Nat,
        &[(0, 4), (1, 3), (2, 2)],
    ));
    let cycle = [0, 1, 0, 2, 1, 0, 2, 1, 0];
    let mut want = vec![2, 1, 0];
    want.extend(cycle);
    want.extend(&cycle[..6]);
    assert_eq!(picks(&mut lab, 30000, 18), want);

    let mut lab = Lab::new(&added(
        SchedKind::Wrr,
        ForwardMode::Nat,
        &[(0, 5), (1, 1), (2, 1)],
    ));
    assert_eq!(
        picks(&mut lab, 30000, 11),
        [2, 1, 0, 0, 0, 0, 0, 2, 1, 0, 0]
    );
}

/// rr walks the list from its head: rs0, rs1, rs2 added in that order are picked rs2, rs1,
/// rs0, ...
#[test]
fn rr_cycles_newest_first() {
    let dests = [(0, 1), (1, 1), (2, 1)];
    let mut lab = Lab::new(&added(SchedKind::Rr, ForwardMode::Dr, &dests));
    assert_eq!(picks(&mut lab, 31000, 6), [2, 1, 0, 2, 1, 0]);
}

/// What a new snapshot does to a worker's rr or wrr position, as IPVS's calls do to its
/// scheduler: a change of another service, or none of this service's dests, leaves it where
/// it is; a dest added at the head is reached after the wrap (rr) or restarts the walk at the
/// head (wrr, `ip_vs_wrr_dest_changed`); switching a service to wrr binds it at the top
/// weight (`ip_vs_wrr_init_svc`).
#[test]
fn a_new_configuration_moves_rr_and_wrr_as_ipvs_calls_do() {
    // rs0 (5), rs1 (3), rs2 (1) added: rs2 rs1 rs0 rs0 rs0 rs1 rs0 rs1 rs0 (sched's own
    // tests work it out). After four picks cl = rs0, cw = 5.
    let mut cfg = added(SchedKind::Wrr, ForwardMode::Nat, &[(0, 5), (1, 3), (2, 1)]);
    let mut lab = Lab::new(&cfg);
    assert_eq!(picks(&mut lab, 32000, 4), [2, 1, 0, 0]);
    // Another service comes and a timeout changes: this one's walk goes on (cw 4: rs0; cw 3:
    // rs1 rs0; ...). A reset to the head would have given rs0 at cw 5 first, then rs0 rs1.
    let mut other = Service::new(ServiceKey { port: 443, ..key() }, SchedKind::Rr).unwrap();
    other.add_dest(dest(0, 443, 1, ForwardMode::Nat)).unwrap();
    cfg.services.add(other).unwrap();
    cfg.timeouts.set(SessionState::Udp, 10_000);
    lab.publish(&cfg);
    assert_eq!(picks(&mut lab, 32100, 5), [0, 1, 0, 1, 0]);
    // The walk now stands at cl = rs0, cw = 2. rs2's weight edited 1 → 4: dest_changed puts
    // cl at the head, di 1, mw 5, and cw 2 is valid so it stays. From the head at cw 2: rs2
    // (4) rs1 rs0; cw 1: rs2 rs1 rs0; cw 5: rs0. (Without the reset the walk would have gone
    // on from rs0: rs2 rs1 rs0 at cw 1, then rs0 at 5, rs2 at 4.)
    cfg.services
        .get_mut(&key())
        .unwrap()
        .edit_dest(dest(2, 80, 4, ForwardMode::Nat))
        .unwrap();
    lab.publish(&cfg);
    assert_eq!(picks(&mut lab, 32200, 7), [2, 1, 0, 2, 1, 0, 0]);

    // rr, rs0 and rs1 added: rs1 first; then rs2 is added at the head (rr has no add_dest:
    // the cursor stays on rs1): rs0, then the wrap reaches rs2, rs1.
    let mut cfg = added(SchedKind::Rr, ForwardMode::Nat, &[(0, 1), (1, 1)]);
    let mut lab = Lab::new(&cfg);
    assert_eq!(picks(&mut lab, 33000, 1), [1]);
    cfg.services
        .get_mut(&key())
        .unwrap()
        .add_dest(dest(2, 80, 1, ForwardMode::Nat))
        .unwrap();
    lab.publish(&cfg);
    assert_eq!(picks(&mut lab, 33100, 3), [0, 2, 1]);
    // The cursor's dest (rs1) deleted: ip_vs_rr_del_dest steps the cursor back to rs2, so rs0
    // comes next (a cursor back at the head would have given rs2).
    cfg.services
        .get_mut(&key())
        .unwrap()
        .remove_dest(RS[1].into(), 80)
        .unwrap();
    lab.publish(&cfg);
    assert_eq!(picks(&mut lab, 33200, 3), [0, 2, 0]);

    // `-E -s wrr` on that rr service (rs2, rs0) with rs0's weight 1 → 2: bound to its dests
    // as they stand (ip_vs_wrr_init_svc): di 1, mw 2, cw 2: rs0; cw 1: rs2 rs0; cw 2: rs0.
    // (Had the dests been added to a wrr service, cw would have stayed at 1: rs2 rs0 first.)
    let svc = cfg.services.get_mut(&key()).unwrap();
    svc.set_sched(SchedKind::Wrr);
    svc.edit_dest(dest(0, 80, 2, ForwardMode::Nat)).unwrap();
    lab.publish(&cfg);
    assert_eq!(picks(&mut lab, 33300, 5), [0, 2, 0, 0, 2]);
}

#[test]
fn weight_zero_drains_without_breaking_sessions() {
    let dests = [
        dest(0, 80, 1, ForwardMode::FullNat),
        dest(1, 80, 1, ForwardMode::FullNat),
    ];
    let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &dests);
    let mut lab = Lab::new(&cfg);
    let out = lab.send(WAN, &Frame::tcp(CIP, 32000, VIP, 80, SYN).build());
    assert_eq!(rs_index(&out.lan[0]), 0);

    // Quiesce RS0 (weight 0) and publish: the established flow keeps going to RS0.
    cfg.services
        .get_mut(&key())
        .unwrap()
        .edit_dest(Dest {
            weight: 0,
            ..dests[0]
        })
        .unwrap();
    lab.publish(&cfg);
    for i in 0..4 {
        let out = lab.send(
            WAN,
            &Frame::tcp(CIP, 32000, VIP, 80, ACK).payload(&[i]).build(),
        );
        assert_eq!(rs_index(&out.lan[0]), 0, "existing session keeps its dest");
    }
    // New sessions all go to RS1.
    for i in 1..6 {
        let out = lab.send(WAN, &Frame::tcp(CIP, 32000 + i, VIP, 80, SYN).build());
        assert_eq!(rs_index(&out.lan[0]), 1);
    }
    // Even removing RS0 from the service keeps its session forwarding.
    cfg.services
        .get_mut(&key())
        .unwrap()
        .remove_dest(RS[0].into(), 80)
        .unwrap();
    lab.publish(&cfg);
    let out = lab.send(WAN, &Frame::tcp(CIP, 32000, VIP, 80, ACK).build());
    assert_eq!(rs_index(&out.lan[0]), 0);
    assert_eq!(lab.worker.counters().total_drops(), 0);
}

#[test]
fn retransmitted_syn_keeps_its_dest_and_time_wait_syn_reschedules() {
    let dests = [
        dest(0, 80, 1, ForwardMode::Nat),
        dest(1, 80, 1, ForwardMode::Nat),
    ];
    let mut lab = Lab::new(&config(Proto::Tcp, 80, SchedKind::Rr, &dests));
    let syn = Frame::tcp(CIP, 33000, VIP, 80, SYN).build();
    assert_eq!(rs_index(&lab.send(WAN, &syn).lan[0]), 0);
    assert_eq!(
        rs_index(&lab.send(WAN, &syn).lan[0]),
        0,
        "retransmission goes to the same dest"
    );
    assert_eq!(lab.worker.counters().sessions_created(), 1);

    // Complete and close the connection into TIME_WAIT.
    lab.send(
        LAN,
        &Frame::tcp(RS[0], 80, CIP, 33000, SYN | ACK)
            .via_rs(0)
            .build(),
    );
    lab.send(WAN, &Frame::tcp(CIP, 33000, VIP, 80, ACK).build());
    lab.send(WAN, &Frame::tcp(CIP, 33000, VIP, 80, FIN | ACK).build());
    lab.send(
        LAN,
        &Frame::tcp(RS[0], 80, CIP, 33000, FIN | ACK)
            .via_rs(0)
            .build(),
    );
    let (_, s) = lab.worker.sessions().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::TimeWait));

    // A new SYN on the same 4-tuple is a new connection: a new session, scheduled afresh.
    let out = lab.send(WAN, &syn);
    assert_eq!(rs_index(&out.lan[0]), 1);
    assert_eq!(lab.worker.counters().sessions_created(), 2);
    assert_eq!(lab.worker.counters().sessions_reused(), 1);
    assert_eq!(lab.worker.sessions().len(), 1);
}

#[test]
fn full_table_refuses_new_sessions_and_keeps_old_ones() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 80, 1, ForwardMode::FullNat)],
    );
    let wcfg = WorkerConfig {
        table_capacity: 2,
        ..WorkerConfig::default()
    };
    let mut lab = Lab::with(&cfg, wcfg, true);
    let free = lab.worker.lip_pool().unwrap().available();
    let mut first = None;
    for i in 0..2 {
        let out = lab.send(WAN, &Frame::tcp(CIP, 34000 + i, VIP, 80, SYN).build());
        assert_eq!(out.lan.len(), 1);
        let s = decode(&out.lan[0]);
        first.get_or_insert((s.src, s.sport));
    }
    let out = lab.send(WAN, &Frame::tcp(CIP, 34002, VIP, 80, SYN).build());
    assert_eq!(out.total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::TableFull), 1);
    assert_eq!(
        lab.worker.lip_pool().unwrap().available(),
        free - 2,
        "refused session returns its LIP port"
    );
    // The existing sessions keep flowing: flow 0 completes its handshake and carries data.
    let (lip, lport) = first.unwrap();
    let synack = Frame::tcp(RS[0], 80, lip, lport, SYN | ACK).via_rs(0);
    assert_eq!(lab.send(LAN, &synack.build()).wan.len(), 1);
    for i in 0..3 {
        let out = lab.send(
            WAN,
            &Frame::tcp(CIP, 34000, VIP, 80, ACK).payload(&[i]).build(),
        );
        assert_eq!(out.lan.len(), 1);
    }
    // Flow 1 stays in SYN_RECV and times out after 60 s; flow 0 (ESTABLISHED) stays.
    lab.advance(60_000);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    assert_eq!(lab.worker.counters().sessions_expired(), 1);
    assert_eq!(
        lab.send(WAN, &Frame::tcp(CIP, 34002, VIP, 80, SYN).build())
            .lan
            .len(),
        1
    );
    assert_eq!(
        lab.send(WAN, &Frame::tcp(CIP, 34000, VIP, 80, ACK).build())
            .lan
            .len(),
        1
    );
    assert_eq!(lab.worker.counters().drop_count(DropReason::TableFull), 1);
}

#[test]
fn lip_exhaustion_is_counted_and_ports_come_back() {
    let mut cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::FullNat)],
    );
    cfg.lips = vec![LIP1, LIP2];
    cfg.lport_range = 5000..=5001;
    let mut lab = Lab::new(&cfg);
    let mut used = Vec::new();
    for i in 0..4 {
        let out = lab.send(WAN, &Frame::udp(CIP, 6000 + i, VIP, 53).build());
        let s = decode(&out.lan[0]);
        used.push((s.src, s.sport));
    }
    used.sort();
    assert_eq!(
        used,
        vec![(LIP1, 5000), (LIP1, 5001), (LIP2, 5000), (LIP2, 5001)]
    );
    let out = lab.send(WAN, &Frame::udp(CIP, 6004, VIP, 53).build());
    assert_eq!(out.total(), 0);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::LipExhausted),
        1
    );
    lab.advance(300_000);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(
        lab.send(WAN, &Frame::udp(CIP, 6004, VIP, 53).build())
            .lan
            .len(),
        1
    );
}

#[test]
fn timeouts_change_at_run_time() {
    let mut cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::Nat)],
    );
    let mut lab = Lab::new(&cfg);
    cfg.timeouts.set(SessionState::Udp, 10_000);
    lab.publish(&cfg);
    lab.send(WAN, &Frame::udp(CIP, 7000, VIP, 53).build());
    lab.advance(9_999);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    lab.advance(1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
}

#[test]
fn no_dest_and_all_quiesced_are_counted() {
    let mut lab = Lab::new(&config(
        Proto::Tcp,
        80,
        SchedKind::Wrr,
        &[dest(0, 80, 0, ForwardMode::Nat)],
    ));
    assert_eq!(
        lab.send(WAN, &Frame::tcp(CIP, 35000, VIP, 80, SYN).build())
            .total(),
        0
    );
    assert_eq!(lab.worker.counters().drop_count(DropReason::NoDest), 1);
}

#[test]
fn configuration_for_missing_ports_is_refused_and_forwarding_goes_on() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 80, 1, ForwardMode::Nat)],
    );
    let mut lab = Lab::new(&cfg);
    assert_eq!(
        lab.send(WAN, &Frame::tcp(CIP, 36000, VIP, 80, SYN).build())
            .lan
            .len(),
        1
    );
    let mut bad = cfg.clone();
    bad.interfaces[1].port = 7;
    lab.publish(&bad);
    for _ in 0..3 {
        let out = lab.send(WAN, &Frame::tcp(CIP, 36000, VIP, 80, ACK).build());
        assert_eq!(
            out.lan.len(),
            1,
            "still forwarding with the previous configuration"
        );
    }
    assert_eq!(lab.worker.counters().snapshots_refused(), 1);

    // At start, the same configuration is a clear error.
    let snap = dataplane::snapshot::Snapshot::build(&bad).unwrap();
    let cell = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(snap));
    let pool = dataplane::mem::MemPool::new(4);
    let ports = vec![dataplane::mem::MemDevice::new(
        dataplane::wire::EthernetAddress(WAN_MAC),
        pool,
        4,
    )];
    let err = dataplane::worker::Worker::new(WorkerConfig::default(), ports, cell)
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "the configuration uses 8 ports, but the worker was given 1"
    );
}

#[test]
fn published_counters_follow_sessions_like_ipvs() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[
            dest(0, 8080, 1, ForwardMode::FullNat),
            dest(1, 8080, 1, ForwardMode::FullNat),
        ],
    );
    let mut lab = Lab::new(&cfg);
    let stats = lab.worker.stats_handle();
    let out = lab.send(WAN, &Frame::tcp(CIP, 37000, VIP, 80, SYN).build());
    let s = decode(&out.lan[0]);
    assert_eq!(s.dst, RS[0]);
    let slot = lab.worker.snapshot().dest_slot(0, 0);
    let d = stats.dest(slot).sample();
    assert_eq!(
        (d.conns, d.active, d.inactive, d.inpkts, d.inbytes),
        (1, 0, 1, 1, 40),
        "SYN_RECV is inactive"
    );
    lab.send(
        LAN,
        &Frame::tcp(RS[0], 8080, s.src, s.sport, SYN | ACK)
            .via_rs(0)
            .payload(b"xy")
            .build(),
    );
    lab.send(WAN, &Frame::tcp(CIP, 37000, VIP, 80, ACK).build());
    let d = stats.dest(slot).sample();
    assert_eq!(
        (d.active, d.inactive, d.inpkts, d.outpkts, d.outbytes),
        (1, 0, 2, 1, 42),
        "ESTABLISHED is active"
    );
    lab.send(WAN, &Frame::tcp(CIP, 37000, VIP, 80, FIN | ACK).build());
    assert_eq!(
        (
            stats.dest(slot).sample().active,
            stats.dest(slot).sample().inactive
        ),
        (0, 1)
    );
    // The other dest saw nothing.
    assert_eq!(
        stats.dest(lab.worker.snapshot().dest_slot(0, 1)).sample(),
        Default::default()
    );
    // Expiry closes it; whole-worker counters are published by the slow jobs.
    lab.advance(3_600_000);
    lab.slow();
    let d = stats.dest(slot).sample();
    assert_eq!((d.conns, d.active, d.inactive), (1, 0, 0));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.worker.rx_packets().load(Relaxed), 4);
    assert_eq!(stats.worker.sessions.load(Relaxed), 0);
    assert_eq!(stats.worker.sessions_expired().load(Relaxed), 1);
}

fn persistent(secs: u32) -> dataplane::snapshot::DirectorConfig {
    let mut cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[
            dest(0, 53, 1, ForwardMode::Nat),
            dest(1, 53, 1, ForwardMode::Nat),
        ],
    );
    let key = ServiceKey {
        proto: Proto::Udp,
        vip: VIP.into(),
        port: 53,
    };
    cfg.services
        .get_mut(&key)
        .unwrap()
        .set_persistence(Some(secs))
        .unwrap();
    cfg
}

#[test]
fn persistence_keeps_a_client_on_one_dest_like_ipvs_templates() {
    let other = std::net::Ipv4Addr::new(198, 51, 100, 99);
    let mut lab = Lab::new(&persistent(300));
    // Without persistence rr would alternate; with it, every port of CIP goes to RS0.
    for i in 0..4 {
        let out = lab.send(WAN, &Frame::udp(CIP, 1000 + i, VIP, 53).build());
        assert_eq!(rs_index(&out.lan[0]), 0, "connection {i}");
    }
    // Another client is scheduled normally (rr continues with RS1).
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(other, 1000, VIP, 53).build()).lan[0]),
        1
    );

    // The client's sessions end (UDP 300 s); its template lasts 300 s after the last one.
    lab.advance(300_000);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    lab.advance(299_999);
    lab.slow();
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(CIP, 2000, VIP, 53).build()).lan[0]),
        0,
        "template still alive"
    );
    // That new session holds the template again; once it and the template run out, the
    // client is scheduled afresh (rr's next pick is RS0 again, then RS1 for the other).
    lab.advance(300_000 + 300_000);
    lab.slow();
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    let picks: Vec<usize> = [other, CIP]
        .iter()
        .map(|c| rs_index(&lab.send(WAN, &Frame::udp(*c, 3000, VIP, 53).build()).lan[0]))
        .collect();
    assert_eq!(picks, [0, 1], "both templates gone: rr decides again");
}

#[test]
fn a_template_whose_dest_left_the_service_is_dropped() {
    let mut cfg = persistent(300);
    let mut lab = Lab::new(&cfg);
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(CIP, 1000, VIP, 53).build()).lan[0]),
        0
    );
    let key = ServiceKey {
        proto: Proto::Udp,
        vip: VIP.into(),
        port: 53,
    };
    // Weight 0 keeps persistence (IPVS's default): still RS0.
    cfg.services
        .get_mut(&key)
        .unwrap()
        .edit_dest(dest(0, 53, 0, ForwardMode::Nat))
        .unwrap();
    lab.publish(&cfg);
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(CIP, 1001, VIP, 53).build()).lan[0]),
        0
    );
    // Removed: the template goes and the client is rescheduled.
    cfg.services
        .get_mut(&key)
        .unwrap()
        .remove_dest(RS[0].into(), 53)
        .unwrap();
    lab.publish(&cfg);
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(CIP, 1002, VIP, 53).build()).lan[0]),
        1
    );
    assert_eq!(
        rs_index(&lab.send(WAN, &Frame::udp(CIP, 1003, VIP, 53).build()).lan[0]),
        1
    );
}

#[test]
fn least_connection_sees_the_workers_own_loads() {
    let dests = [
        dest(0, 80, 1, ForwardMode::Nat),
        dest(1, 80, 1, ForwardMode::Nat),
    ];
    let mut lab = Lab::new(&config(Proto::Tcp, 80, SchedKind::Lc, &dests));
    // Both idle: the first dest. Establish it: an active connection weighs 256 (IPVS).
    assert_eq!(
        rs_index(
            &lab.send(WAN, &Frame::tcp(CIP, 38000, VIP, 80, SYN).build())
                .lan[0]
        ),
        0
    );
    lab.send(
        LAN,
        &Frame::tcp(RS[0], 80, CIP, 38000, SYN | ACK)
            .via_rs(0)
            .build(),
    );
    lab.send(WAN, &Frame::tcp(CIP, 38000, VIP, 80, ACK).build());
    // New connections (inactive, weight 1 each) all go to the other dest.
    for i in 1..6 {
        let out = lab.send(WAN, &Frame::tcp(CIP, 38000 + i, VIP, 80, SYN).build());
        assert_eq!(rs_index(&out.lan[0]), 1, "connection {i}");
    }
}

#[test]
fn hashing_schedulers_keep_a_client_address_on_one_dest() {
    for kind in [SchedKind::Sh, SchedKind::Mh] {
        let dests = [
            dest(0, 80, 1, ForwardMode::Nat),
            dest(1, 80, 1, ForwardMode::Nat),
            dest(2, 80, 1, ForwardMode::Nat),
        ];
        let mut lab = Lab::new(&config(Proto::Tcp, 80, kind, &dests));
        let mut used = [false; 3];
        for c in 0..32u8 {
            let cip = std::net::Ipv4Addr::new(198, 51, 100, c);
            let first = rs_index(
                &lab.send(WAN, &Frame::tcp(cip, 30000, VIP, 80, SYN).build())
                    .lan[0],
            );
            for p in 1..4 {
                let again = rs_index(
                    &lab.send(WAN, &Frame::tcp(cip, 30000 + p, VIP, 80, SYN).build())
                        .lan[0],
                );
                assert_eq!(again, first, "{kind:?}: client {cip} moved");
            }
            used[first] = true;
        }
        assert_eq!(used, [true; 3], "{kind:?} spreads clients over every dest");
    }
}

/// The per-session memory bar: a worker sized for 10M sessions (and the default sixteenth as
/// templates) allocates at most 128 bytes per session for both tables, slab, index and wheel
/// included, and all of it up front (the index never grows: see the table's docs).
#[test]
fn ten_million_sessions_take_at_most_128_bytes_each() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    for sessions in [100_000usize, 10_000_000] {
        let wcfg = WorkerConfig {
            table_capacity: sessions,
            table6_capacity: sessions / 4,
            template_capacity: sessions / 16,
            ..WorkerConfig::default()
        };
        let lab = Lab::with(&cfg, wcfg, true);
        let per = lab.worker.session_memory() as f64 / sessions as f64;
        // The IPv6 fragment table is fixed (fragment_capacity entries, not per session).
        let frags6 = lab.worker.fragments6().allocation_size();
        let per6 = (lab.worker.session_memory6() - frags6) as f64 / (sessions / 4) as f64;
        eprintln!(
            "{sessions} sessions: {per:.1} bytes per IPv4 session, {per6:.1} per IPv6 one \
             (and {frags6} bytes of IPv6 fragment table)"
        );
        assert!(
            (80.0..=128.0).contains(&per),
            "{sessions} sessions: {per:.1} bytes each"
        );
        // An IPv6 session: the 136-byte slot (its keys are 32 bytes longer each), its SYN
        // proxy word (4 bytes, as an IPv4 session's), its share of the index, the wheel and
        // the IPv6 templates.
        assert!(
            (140.0..=180.0).contains(&per6),
            "{sessions} IPv6 sessions: {per6:.1} bytes each"
        );
    }
}
