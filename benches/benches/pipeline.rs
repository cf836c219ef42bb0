//! Per-packet cost of the worker pipeline on in-memory ports, by forwarding mode and path.
//!
//! Each measured step is one `Worker::poll` over a burst of 32 frames already queued on the
//! client port: parse, classify, session lookup (and for new sessions: schedule, LIP port,
//! insert), state transition, rewrite, neighbour lookup, TX buffering and the TX burst.
//! Queueing the frames (a copy each) and collecting the output happen outside the timed
//! region (`iter_custom`). Throughput is reported per packet.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::mem::MemDevice;
use dataplane::worker::Worker;
use rvs_benches::{client, director, tcp_frame, LAN, VIP, WAN, WAN_MAC};
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

/// Established path: `FLOWS` sessions opened first, then ACK+data frames cycling over them.
fn established(c: &mut Criterion, name: &str, mode: ForwardMode) {
    let mut w = director(mode, 1 << 20, 60_000);
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            tcp_frame(
                WAN_MAC,
                client(i),
                10_000 + (i % 50_000) as u16,
                VIP,
                80,
                ACK,
                64,
            )
        })
        .collect();
    for i in 0..FLOWS {
        let syn = tcp_frame(
            WAN_MAC,
            client(i),
            10_000 + (i % 50_000) as u16,
            VIP,
            80,
            SYN,
            0,
        );
        assert!(w.port_mut(WAN).inject(&syn));
        w.poll(1);
        drain(&mut w);
    }
    assert_eq!(w.sessions().len(), FLOWS as usize);
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

fn pipeline(c: &mut Criterion) {
    established(c, "fullnat_established", ForwardMode::FullNat);
    established(c, "nat_established", ForwardMode::Nat);
    established(c, "dr_established", ForwardMode::Dr);
    established(c, "tun_established", ForwardMode::Tun);
    new_sessions(c, "fullnat_new_session", ForwardMode::FullNat);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
