//! Scheduler pick: the only scheduler call on the data path (once per new session); and the
//! mh table build, the control side's cost of a dest change under mh.
//!
//! The hashing schedulers are asked for a different client each time (4096 clients in turn),
//! so the figures include the table loads of real traffic, not one slot kept in L1.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use sched::{Dest, DestLoad, FlowHint, ForwardMode, MaglevHashing, SchedKind, Scheduler};

/// NAT dests 10.0.x.y:80 with the given weights.
fn dests(weights: impl IntoIterator<Item = u32>) -> Vec<Dest> {
    weights
        .into_iter()
        .zip(1u16..)
        .map(|(weight, i)| {
            let [hi, lo] = i.to_be_bytes();
            Dest {
                addr: Ipv4Addr::new(10, 0, hi, lo).into(),
                port: 80,
                weight,
                mode: ForwardMode::Nat,
            }
        })
        .collect()
}

/// splitmix64, for clients and loads that do not follow a pattern.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 4096 clients with random addresses and ports.
fn clients() -> Vec<FlowHint> {
    let mut x = 7;
    (0..4096)
        .map(|_| {
            let r = splitmix(&mut x);
            FlowHint {
                src: Ipv4Addr::from((r >> 32) as u32),
                sport: r as u16,
            }
        })
        .collect()
}

/// One pick per iteration from a scheduler of `kind` over `d` with `load`, for one client.
fn bench_pick(c: &mut Criterion, name: &str, kind: SchedKind, d: &[Dest], load: &[DestLoad]) {
    let mut s = kind.build(d);
    let hint = FlowHint {
        src: Ipv4Addr::new(198, 51, 100, 7),
        sport: 40000,
    };
    c.bench_function(name, |b| {
        b.iter(|| black_box(s.pick(black_box(d), black_box(&hint), black_box(load))))
    });
}

/// One pick per iteration from `s` over `d`, for each of 4096 clients in turn.
fn bench_pick_clients(c: &mut Criterion, name: &str, mut s: impl Scheduler, d: &[Dest]) {
    let hints = clients();
    let mut n = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            n = (n + 1) % hints.len();
            black_box(s.pick(black_box(d), &hints[n], &[]))
        })
    });
}

fn sched(c: &mut Criterion) {
    bench_pick(
        c,
        "wrr pick, 3 dests {4,3,2}",
        SchedKind::Wrr,
        &dests([4, 3, 2]),
        &[],
    );
    // Varied weights 1..=100 (gcd 1), so a cycle has many passes with few picks each.
    let varied = dests((0..100u32).map(|i| (i * 37) % 100 + 1));
    bench_pick(
        c,
        "wrr pick, 100 dests varied weights",
        SchedKind::Wrr,
        &varied,
        &[],
    );
    bench_pick(
        c,
        "rr pick, 100 dests",
        SchedKind::Rr,
        &dests([1; 100]),
        &[],
    );

    // lc and wlc walk every dest: 100 of them, each with its own load.
    let mut x = 11;
    let load: Vec<DestLoad> = (0..100)
        .map(|_| {
            let r = splitmix(&mut x);
            DestLoad {
                active: (r % 1000) as u32,
                inactive: ((r >> 32) % 5000) as u32,
            }
        })
        .collect();
    bench_pick(
        c,
        "lc pick, 100 dests with loads",
        SchedKind::Lc,
        &dests([1; 100]),
        &load,
    );
    bench_pick(
        c,
        "wlc pick, 100 dests with loads, varied weights",
        SchedKind::Wlc,
        &varied,
        &load,
    );

    let even = dests([1; 100]);
    bench_pick_clients(
        c,
        "sh pick, 100 dests, 4096 clients",
        SchedKind::Sh.build(&even),
        &even,
    );
    bench_pick_clients(
        c,
        "mh pick, 100 dests, 65537 slots, 4096 clients",
        SchedKind::Mh.build(&varied),
        &varied,
    );

    c.bench_function("mh table build, 100 dests, 65537 slots", |b| {
        b.iter(|| black_box(MaglevHashing::new(black_box(&varied))))
    });
}

criterion_group!(benches, sched);
criterion_main!(benches);
