//! Per-packet cost of the worker pipeline on in-memory ports, by forwarding mode and path.
//!
//! Each measured step is one `Worker::poll` over a burst of 32 frames already queued on the
//! client port: parse, classify, session lookup (and for new sessions: schedule, LIP port,
//! insert), state transition, rewrite, neighbour lookup, TX buffering and the TX burst.
//! Queueing the frames (a copy each) and collecting the output happen outside the timed
//! region (`iter_custom`). Throughput is reported per packet. The established paths cycle over
//! 4096 sessions in a table sized for 2^20 and for FullNAT also over a million, with and
//! without the worker's prefetching stages. `syn_flood_refused` is a SYN flood's packet once
//! the session table is full; `synproxy_syn_cookie` one against a SYN-proxy service.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::mem::MemDevice;
use dataplane::worker::Worker;
use dataplane::DropReason;
use rvs_benches::{
    client, director, director_with, synproxy_director, tcp_frame, LAN, VIP, WAN, WAN_MAC,
};
use sched::ForwardMode;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const FLOWS: u32 = 4096;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;

/// Drops every transmitted frame (back to the pool); returns how many there were.
fn drain(w: &mut Worker<MemDevice>) -> usize {
    let mut n = 0;
    for port in [WAN, LAN] {
        while let Some(b) = w.port_mut(port).pop_tx() {
            black_box(&b);
            n += 1;
        }
    }
    n
}

/// Established path: `flows` sessions opened first, then ACK+data frames cycling over them
/// (in a shuffled order), with the worker's prefetching stages on or off.
fn established(c: &mut Criterion, name: &str, mode: ForwardMode, flows: u32, prefetch: bool) {
    // Room beyond the flows (and, for a million, LIPs enough: see `director`).
    let capacity = (flows as usize + (1 << 16)).max(1 << 20);
    let mut w = director_with(mode, capacity, 60_000, prefetch);
    let flow = |i: u32, flags: u8, len: usize| {
        tcp_frame(
            WAN_MAC,
            client(i),
            10_000 + (i % 50_000) as u16,
            VIP,
            80,
            flags,
            len,
        )
    };
    for chunk in (0..flows).collect::<Vec<_>>().chunks(BURST) {
        for &i in chunk {
            assert!(w.port_mut(WAN).inject(&flow(i, SYN, 0)));
        }
        w.poll(1);
        drain(&mut w);
    }
    assert_eq!(w.sessions().len(), flows as usize);
    let mut frames: Vec<Vec<u8>> = (0..flows).map(|i| flow(i, ACK, 64)).collect();
    // A fixed shuffle (Fisher–Yates on a 64-bit LCG): no two bursts alike, no stride the
    // hardware prefetcher could follow.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..frames.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        frames.swap(i, (x >> 33) as usize % (i + 1));
    }
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut next = 0usize;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..BURST {
                    w.port_mut(WAN).inject(&frames[next % frames.len()]);
                    next += 1;
                }
                let t = Instant::now();
                black_box(w.poll(2));
                total += t.elapsed();
                assert_eq!(drain(&mut w), BURST);
            }
            total
        })
    });
    g.finish();
    assert_eq!(w.counters().total_drops(), 0, "{name}: nothing dropped");
}

/// New-session path: every frame a SYN of a flow never seen; between bursts (untimed) the
/// clock moves on and expiry frees the table and the LIP ports.
fn new_sessions(c: &mut Criterion, name: &str, mode: ForwardMode) {
    let mut w = director(mode, 1 << 20, 1);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut flow = 0u32;
    let mut now = 10u64;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..BURST {
                    let cip = client(flow / 50_000);
                    let sport = 10_000 + (flow % 50_000) as u16;
                    let syn = tcp_frame(WAN_MAC, cip, sport, VIP, 80, SYN, 0);
                    w.port_mut(WAN).inject(&syn);
                    flow = flow.wrapping_add(1);
                }
                let t = Instant::now();
                black_box(w.poll(now));
                total += t.elapsed();
                assert_eq!(drain(&mut w), BURST);
                now += 2;
                w.slow_jobs(now);
            }
            total
        })
    });
    g.finish();
    assert_eq!(w.counters().total_drops(), 0, "{name}: nothing dropped");
}

/// A SYN flood against a full table: every frame a SYN of a flow never seen, and every one
/// refused (`table_full`) — what one flood packet costs the worker once its table is full
/// (the flood's sessions wait out SYN_RECV; the table never evicts).
fn syn_flood_refused(c: &mut Criterion, name: &str) {
    const CAPACITY: usize = 4096;
    let mut w = director(ForwardMode::FullNat, CAPACITY, 3_600_000);
    let mut flow = 0u32;
    let mut syn = move || {
        let f = tcp_frame(
            WAN_MAC,
            client(flow / 50_000),
            10_000 + (flow % 50_000) as u16,
            VIP,
            80,
            SYN,
            0,
        );
        flow = flow.wrapping_add(1);
        f
    };
    while w.sessions().len() < CAPACITY {
        for _ in 0..BURST {
            w.port_mut(WAN).inject(&syn());
        }
        w.poll(1);
        drain(&mut w);
    }
    let refused_before = w.counters().drop_count(DropReason::TableFull);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut sent = 0u64;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..BURST {
                    w.port_mut(WAN).inject(&syn());
                }
                let t = Instant::now();
                black_box(w.poll(2));
                total += t.elapsed();
                assert_eq!(drain(&mut w), 0);
                sent += BURST as u64;
            }
            total
        })
    });
    g.finish();
    let refused = w.counters().drop_count(DropReason::TableFull) - refused_before;
    assert_eq!(
        refused, sent,
        "{name}: every flood SYN refused as table_full"
    );
}

/// The same flood against a SYN-proxy service: every SYN answered with a cookie, nothing
/// kept — what one flood packet costs then, table full or not.
fn synproxy_syn(c: &mut Criterion, name: &str) {
    let mut w = synproxy_director(4096);
    let mut flow = 0u32;
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..BURST {
                    let syn = tcp_frame(
                        WAN_MAC,
                        client(flow / 50_000),
                        10_000 + (flow % 50_000) as u16,
                        VIP,
                        80,
                        SYN,
                        0,
                    );
                    w.port_mut(WAN).inject(&syn);
                    flow = flow.wrapping_add(1);
                }
                let t = Instant::now();
                black_box(w.poll(2));
                total += t.elapsed();
                assert_eq!(drain(&mut w), BURST, "a SYN/ACK for every SYN");
            }
            total
        })
    });
    g.finish();
    assert_eq!(w.sessions().len(), 0, "{name}: no state kept");
    assert_eq!(w.counters().total_drops(), 0, "{name}: nothing dropped");
}

fn pipeline(c: &mut Criterion) {
    established(c, "fullnat_established", ForwardMode::FullNat, FLOWS, true);
    established(c, "nat_established", ForwardMode::Nat, FLOWS, true);
    established(c, "dr_established", ForwardMode::Dr, FLOWS, true);
    established(c, "tun_established", ForwardMode::Tun, FLOWS, true);
    new_sessions(c, "fullnat_new_session", ForwardMode::FullNat);
    syn_flood_refused(c, "syn_flood_refused");
    synproxy_syn(c, "synproxy_syn_cookie");
    // What the prefetching stages save, side by side: FullNAT established without them, over
    // the 4096 sessions and over a million.
    established(
        c,
        "fullnat_established_unstaged",
        ForwardMode::FullNat,
        FLOWS,
        false,
    );
    established(
        c,
        "fullnat_established_1m",
        ForwardMode::FullNat,
        1 << 20,
        true,
    );
    established(
        c,
        "fullnat_established_1m_unstaged",
        ForwardMode::FullNat,
        1 << 20,
        false,
    );
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
