//! Floods against one worker: spoofed SYNs until the session table is full, a UDP flood, and
//! LIP port exhaustion under a flood. In each, the sessions that existed before keep every
//! packet flowing and are never evicted, new sessions are refused and counted by reason, and
//! the table (or the LIP pool) drains by its timeouts so that new clients get in again. Each
//! test prints its figures (`cargo test --test floods -- --nocapture`).
//! (A full redirect ring is `multicore.rs`'s `a_full_ring_is_a_counted_drop`.)

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::worker::WorkerConfig;
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv4Addr;

const CAPACITY: usize = 4096;

/// A spoofed source: a different address and port for every `i`.
fn spoofed(i: u32) -> (Ipv4Addr, u16) {
    let a = 0x2d00_0000 + (i.wrapping_mul(2_654_435_761) >> 8);
    (Ipv4Addr::from(a), 1024 + (i % 60_000) as u16)
}

fn lab(proto: Proto, port: u16, capacity: usize) -> Lab {
    let cfg = config(
        proto,
        port,
        SchedKind::Rr,
        &[dest(0, port, 1, ForwardMode::FullNat)],
    );
    let wcfg = WorkerConfig {
        table_capacity: capacity,
        ..WorkerConfig::default()
    };
    Lab::with(&cfg, wcfg, true)
}

/// Feeds `frames` through the worker in RX bursts, polling until everything is handled, and
/// returns what went out on the LAN side (toward the RSs) and the WAN side (toward clients).
fn run(lab: &mut Lab, frames: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut lan, mut wan) = (Vec::new(), Vec::new());
    for chunk in frames.chunks(256) {
        for f in chunk {
            let port = if f[0..6] == LAN_MAC { LAN } else { WAN };
            assert!(lab.worker.port_mut(port).inject(f), "RX ring has room");
        }
        while lab.worker.poll(lab.now) > 0 {}
        let out = lab.collect();
        lan.extend(out.lan);
        wan.extend(out.wan);
    }
    (lan, wan)
}

/// Opens `n` TCP sessions through to ESTABLISHED (SYN, the RS's SYN/ACK, the client's ACK);
/// returns each one's client port and the (LIP, lport) the RS sees.
fn establish(lab: &mut Lab, n: u16) -> Vec<(u16, Ipv4Addr, u16)> {
    (0..n)
        .map(|i| {
            let cport = 40000 + i;
            let out = lab.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
            let s = decode(&out.lan[0]);
            let synack = Frame::tcp(RS[0], 80, s.src, s.sport, SYN | ACK).via_rs(0);
            assert_eq!(lab.send(LAN, &synack.build()).wan.len(), 1);
            assert_eq!(
                lab.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, ACK).build())
                    .lan
                    .len(),
                1
            );
            (cport, s.src, s.sport)
        })
        .collect()
}

/// Both directions of every established session, `rounds` times.
fn established_traffic(flows: &[(u16, Ipv4Addr, u16)], round: u8) -> Vec<Vec<u8>> {
    flows
        .iter()
        .flat_map(|&(cport, lip, lport)| {
            [
                Frame::tcp(CIP, cport, VIP, 80, ACK | PSH)
                    .payload(&[round; 8])
                    .build(),
                Frame::tcp(RS[0], 80, lip, lport, ACK | PSH)
                    .via_rs(0)
                    .payload(&[round; 8])
                    .build(),
            ]
        })
        .collect()
}

fn all_established(lab: &Lab, n: usize) -> bool {
    let est = lab
        .worker
        .sessions()
        .iter()
        .filter(|(_, s)| s.state == SessionState::Tcp(TcpState::Established))
        .count();
    est == n
}

/// Expires what is due, in as many slow-job runs as the expiry budget needs.
fn drain(lab: &mut Lab) {
    for _ in 0..16 {
        lab.slow();
    }
}

#[test]
fn syn_flood_fills_the_table_and_established_sessions_keep_flowing() {
    let mut lab = lab(Proto::Tcp, 80, CAPACITY);
    let flows = establish(&mut lab, 8);
    let flood_n = 20_000u32;
    let mut delivered = (0, 0);
    let mut sent_established = 0;
    // The flood in rounds, each with every established session's traffic mixed in.
    for round in 0..20u32 {
        let mut frames: Vec<Vec<u8>> = (round * 1000..(round + 1) * 1000)
            .map(|i| {
                let (src, sport) = spoofed(i);
                Frame::tcp(src, sport, VIP, 80, SYN).build()
            })
            .collect();
        let est = established_traffic(&flows, round as u8);
        sent_established += est.len();
        for (k, f) in est.into_iter().enumerate() {
            frames.insert(k * 60, f);
        }
        let (lan, wan) = run(&mut lab, &frames);
        delivered.0 += lan
            .iter()
            .filter(|f| decode(f).payload == [round as u8; 8])
            .count();
        delivered.1 += wan.len();
        lab.advance(100);
    }
    let c = lab.worker.counters().clone();
    let refused = c.drop_count(DropReason::TableFull);
    println!(
        "SYN flood: {flood_n} spoofed SYNs into a {CAPACITY}-session table: {} opened, {refused} \
         refused (table_full); {} of {sent_established} established packets delivered",
        c.sessions_created() - 8,
        delivered.0 + delivered.1
    );
    assert_eq!(
        delivered.0 + delivered.1,
        sent_established,
        "no established packet lost"
    );
    assert_eq!(lab.worker.sessions().len(), CAPACITY);
    assert_eq!(refused, u64::from(flood_n) - (CAPACITY as u64 - 8));
    assert!(all_established(&lab, 8), "never evicted");
    assert!(c.balanced());
    // A real client is refused while the flood's sessions wait out SYN_RECV (60 s)...
    let syn = Frame::tcp(CIP, 50000, VIP, 80, SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 0);
    // ... and gets in once they have expired; the established sessions are still there.
    lab.advance(60_000);
    drain(&mut lab);
    assert_eq!(lab.worker.sessions().len(), 8);
    assert!(all_established(&lab, 8));
    assert_eq!(lab.send(WAN, &syn).lan.len(), 1);
    let (lan, wan) = run(&mut lab, &established_traffic(&flows, 99));
    assert_eq!(lan.len() + wan.len(), 16);
    let pool = lab.worker.lip_pool().unwrap();
    assert_eq!(
        pool.capacity() - pool.available(),
        9,
        "the flood's LIP ports came back"
    );
}

#[test]
fn udp_flood_fills_the_table_and_existing_flows_keep_flowing() {
    let mut lab = lab(Proto::Udp, 53, CAPACITY);
    let mut flows = Vec::new();
    for i in 0..8u16 {
        let out = lab.send(WAN, &Frame::udp(CIP, 30000 + i, VIP, 53).build());
        let s = decode(&out.lan[0]);
        flows.push((30000 + i, s.src, s.sport));
    }
    let mut delivered = 0;
    let mut sent = 0;
    for round in 0..10u32 {
        let mut frames: Vec<Vec<u8>> = (round * 1000..(round + 1) * 1000)
            .map(|i| {
                let (src, sport) = spoofed(i);
                Frame::udp(src, sport, VIP, 53).payload(&[0; 64]).build()
            })
            .collect();
        for (k, &(cport, lip, lport)) in flows.iter().enumerate() {
            let q = Frame::udp(CIP, cport, VIP, 53).payload(b"query").build();
            let a = Frame::udp(RS[0], 53, lip, lport)
                .via_rs(0)
                .payload(b"answer")
                .build();
            frames.insert(k * 100, q);
            frames.insert(k * 100 + 50, a);
            sent += 2;
        }
        let (lan, wan) = run(&mut lab, &frames);
        delivered += lan.iter().filter(|f| decode(f).payload == b"query").count();
        delivered += wan
            .iter()
            .filter(|f| decode(f).payload == b"answer")
            .count();
        lab.advance(1_000);
    }
    let c = lab.worker.counters().clone();
    println!(
        "UDP flood: 10000 spoofed datagrams into a {CAPACITY}-session table: {} opened, {} \
         refused (table_full); {delivered} of {sent} packets of existing flows delivered",
        c.sessions_created() - 8,
        c.drop_count(DropReason::TableFull)
    );
    assert_eq!(delivered, sent);
    assert_eq!(
        c.drop_count(DropReason::TableFull),
        10_000 - (CAPACITY as u64 - 8)
    );
    assert!(c.balanced());
    // The flood's sessions expire 300 s after their one packet; the live flows, refreshed
    // by their traffic, outlast them.
    lab.advance(300_000 - 9_000);
    let (lan, wan) = run(
        &mut lab,
        &flows
            .iter()
            .map(|&(cport, _, _)| Frame::udp(CIP, cport, VIP, 53).payload(b"query").build())
            .collect::<Vec<_>>(),
    );
    assert_eq!((lan.len(), wan.len()), (8, 0));
    // The last round of the flood went in 10 s after the first.
    lab.advance(10_000);
    drain(&mut lab);
    assert_eq!(lab.worker.sessions().len(), 8, "only the live flows remain");
}

#[test]
fn lip_ports_run_out_under_a_syn_flood_and_come_back() {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 80, 1, ForwardMode::FullNat)],
    );
    cfg.lport_range = 10_000..=10_099; // 2 LIPs × 100 ports
    let mut lab = Lab::new(&cfg);
    let flows = establish(&mut lab, 4);
    let frames: Vec<Vec<u8>> = (0..2_000)
        .map(|i| {
            let (src, sport) = spoofed(i);
            Frame::tcp(src, sport, VIP, 80, SYN).build()
        })
        .chain(established_traffic(&flows, 1))
        .collect();
    let (lan, wan) = run(&mut lab, &frames);
    let c = lab.worker.counters().clone();
    let exhausted = c.drop_count(DropReason::LipExhausted);
    println!(
        "LIP exhaustion: 2000 spoofed SYNs, 200 LIP ports: {} opened, {exhausted} refused \
         (lip_exhausted); established packets delivered: {}",
        c.sessions_created() - 4,
        lan.iter()
            .chain(wan.iter())
            .filter(|f| decode(f).payload == [1; 8])
            .count()
    );
    assert_eq!(exhausted, 2_000 - (200 - 4));
    // The dest's port pool is used up (the other pools serve other dests).
    let in_use = |lab: &Lab| {
        let p = lab.worker.lip_pool().unwrap();
        p.capacity() - p.available()
    };
    assert_eq!(in_use(&lab), 200);
    let got = lan
        .iter()
        .chain(wan.iter())
        .filter(|f| decode(f).payload == [1; 8])
        .count();
    assert_eq!(got, 8, "established sessions keep their LIP ports and flow");
    assert!(c.balanced());
    // SYN_RECV's timeout later the flood's sessions are gone and their ports are back, in
    // quarantine toward this dest (the server may hold them in TIME_WAIT) for 60 s more.
    lab.advance(60_000);
    drain(&mut lab);
    assert_eq!(in_use(&lab), 4);
    assert!(all_established(&lab, 4));
    let out = lab.send(WAN, &Frame::tcp(CIP, 50000, VIP, 80, SYN).build());
    assert_eq!(
        out.total(),
        0,
        "no port of the dest's pool is out of quarantine yet"
    );
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::LipExhausted),
        exhausted + 1
    );
    lab.advance(60_000);
    let out = lab.send(WAN, &Frame::tcp(CIP, 50001, VIP, 80, SYN).build());
    assert_eq!(out.lan.len(), 1, "a new client gets a port again");
}
