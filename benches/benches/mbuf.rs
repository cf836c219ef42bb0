//! Per-packet cost of the worker on DPDK mbufs: the same director as `pipeline`, but its ports
//! are DPDK queues (`DpdkQueue` over two `net_ring` vdevs, no hugepages), so the timed
//! `Worker::poll` includes `rte_eth_rx_burst`, parsing and rewriting inside mbufs, the mbuf
//! headroom/prepend operations and `rte_eth_tx_burst`.
//!
//! A `net_ring` vdev created without arguments uses one ring per queue for both directions:
//! what is transmitted on a queue comes back on its RX. So each step (untimed) allocates 32
//! mbufs, copies the frames in and transmits them on the client port (they wait on its RX);
//! the timed poll receives and forwards them; then (untimed) the output is received back from
//! the ports and freed.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::device::{Burst, Device};
use dataplane::dpdk_port::DpdkQueue;
use dataplane::wire::EthernetAddress;
use dataplane::worker::Worker;
use dpdk::{Eal, Mempool, Port, PortConf};
use rvs_benches::{client, director_on, tcp_frame, LAN, LAN_MAC, VIP, WAN, WAN_MAC};
use sched::ForwardMode;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const FLOWS: u32 = 4096;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;

struct Dpdk {
    _eal: Eal,
    pool: Mempool,
    ports: Vec<Port>,
}

fn dpdk() -> Dpdk {
    let prefix = format!("rvs-bench-mbuf-{}", std::process::id());
    let args = [
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
        "--vdev",
        "net_ring0",
        "--vdev",
        "net_ring1",
    ];
    let eal = Eal::init(&args).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
    let pool = Mempool::new("bench", 8191, 0, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ports = ["net_ring0", "net_ring1"]
        .iter()
        .map(|name| {
            let mut p = Port::by_name(name).unwrap_or_else(|e| panic!("{e}"));
            let conf = PortConf {
                rx_desc: 1024,
                tx_desc: 1024,
                ..PortConf::default()
            };
            p.configure(&conf, &pool).unwrap_or_else(|e| panic!("{e}"));
            p.start().unwrap_or_else(|e| panic!("{e}"));
            p
        })
        .collect();
    Dpdk {
        _eal: eal,
        pool,
        ports,
    }
}

fn worker(d: &Dpdk, mode: ForwardMode, syn_recv_ms: u64) -> Worker<DpdkQueue> {
    let devices = [(0usize, WAN_MAC), (1, LAN_MAC)]
        .iter()
        .map(|&(i, mac)| {
            let q = d.ports[i].queue(0).unwrap_or_else(|e| panic!("{e}"));
            DpdkQueue::new(q, d.pool.clone(), EthernetAddress(mac))
        })
        .collect();
    director_on(devices, mode, 1 << 20, syn_recv_ms, true)
}

/// Queues `frames` on the client port's RX (see the module docs).
fn inject(w: &mut Worker<DpdkQueue>, pool: &Mempool, frames: &[&[u8]]) {
    let mut b: Burst<dpdk::Mbuf> = Burst::new();
    for f in frames {
        let mut m = pool.alloc().expect("pool has room");
        assert!(m.extend_from_slice(f));
        b.push(m);
    }
    let n = b.len();
    assert_eq!(w.port_mut(WAN).tx_burst(&mut b), n);
}

/// Receives and frees what the worker sent; returns how many frames.
fn drain(w: &mut Worker<DpdkQueue>) -> usize {
    let mut n = 0;
    for port in [WAN, LAN] {
        loop {
            let mut b: Burst<dpdk::Mbuf> = Burst::new();
            w.port_mut(port).rx_burst(&mut b);
            if b.is_empty() {
                break;
            }
            n += b.len();
        }
    }
    n
}

fn sport(i: u32) -> u16 {
    10_000 + (i % 50_000) as u16
}

fn established(c: &mut Criterion, d: &Dpdk, name: &str, mode: ForwardMode) {
    let mut w = worker(d, mode, 60_000);
    for chunk in (0..FLOWS).collect::<Vec<_>>().chunks(BURST) {
        let syns: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&i| tcp_frame(WAN_MAC, client(i), sport(i), VIP, 80, SYN, 0))
            .collect();
        inject(
            &mut w,
            &d.pool,
            &syns.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        );
        w.poll(1);
        drain(&mut w);
    }
    assert_eq!(w.sessions().len(), FLOWS as usize);
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| tcp_frame(WAN_MAC, client(i), sport(i), VIP, 80, ACK, 64))
        .collect();
    let mut next = 0usize;
    let mut g = c.benchmark_group("mbuf");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let burst: Vec<&[u8]> = (0..BURST)
                    .map(|k| frames[(next + k) % frames.len()].as_slice())
                    .collect();
                next += BURST;
                inject(&mut w, &d.pool, &burst);
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

fn new_sessions(c: &mut Criterion, d: &Dpdk) {
    let mut w = worker(d, ForwardMode::FullNat, 1);
    let mut flow = 0u32;
    let mut now = 10u64;
    let mut g = c.benchmark_group("mbuf");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("fullnat_new_session", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let syns: Vec<Vec<u8>> = (0..BURST as u32)
                    .map(|k| {
                        let f = flow.wrapping_add(k);
                        tcp_frame(WAN_MAC, client(f / 50_000), sport(f), VIP, 80, SYN, 0)
                    })
                    .collect();
                flow = flow.wrapping_add(BURST as u32);
                inject(
                    &mut w,
                    &d.pool,
                    &syns.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                );
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
    assert_eq!(
        w.counters().total_drops(),
        0,
        "new sessions: nothing dropped"
    );
}

fn mbuf(c: &mut Criterion) {
    let d = dpdk();
    // One worker at a time owns the ports' queues: each bench's worker is dropped before the
    // next is built.
    established(c, &d, "fullnat_established", ForwardMode::FullNat);
    established(c, &d, "dr_established", ForwardMode::Dr);
    new_sessions(c, &d);
}

criterion_group!(benches, mbuf);
criterion_main!(benches);
