//! RSS in software: the Toeplitz hash of one IPv4 4-tuple (the bitwise reference, the
//! table-free fast path, the per-byte tables), and a FullNAT lport allocation steered to the
//! worker's RX queue (`LipPool::alloc_where` with `ReplySteering`), alloc + free per iteration,
//! against a plain `alloc` + `free`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use dataplane::lip::{LipPool, Toward};
use dataplane::rss::ReplySteering;
use dataplane::rss::{hash_ipv4_l4, toeplitz, Reta, RssKey, ToeplitzTable};

const SRC: Ipv4Addr = Ipv4Addr::new(66, 9, 149, 187);
const DST: Ipv4Addr = Ipv4Addr::new(161, 142, 100, 80);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;
/// These pools have one port pool and no quarantine: any dest, any time.
const ANY: Toward = Toward {
    rip: Ipv4Addr::UNSPECIFIED,
    rport: 0,
    now: 0,
};
/// Connections held open while allocating: the pool is in steady churn, not fresh.
const HELD: usize = 1000;

fn hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("rss");
    let key = RssKey::MICROSOFT;
    let table = ToeplitzTable::new(&key);
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&SRC.octets());
    input[4..8].copy_from_slice(&DST.octets());
    input[8..10].copy_from_slice(&2794u16.to_be_bytes());
    input[10..].copy_from_slice(&1766u16.to_be_bytes());
    assert_eq!(toeplitz(&key, &input), 0x51cc_c178);

    g.bench_function("toeplitz_reference_4tuple", |b| {
        b.iter(|| toeplitz(black_box(&key), black_box(&input)))
    });
    g.bench_function("hash_ipv4_l4_table_free", |b| {
        b.iter(|| {
            hash_ipv4_l4(
                black_box(&key),
                black_box(SRC),
                black_box(DST),
                black_box(2794),
                black_box(1766),
            )
        })
    });
    g.bench_function("hash_ipv4_l4_tables", |b| {
        b.iter(|| {
            black_box(&table).hash_ipv4_l4(
                black_box(SRC),
                black_box(DST),
                black_box(2794),
                black_box(1766),
            )
        })
    });
    g.finish();
}

/// Real servers the connections go to (port 80), in turn.
fn servers() -> Vec<Ipv4Addr> {
    (0..8u8).map(|i| Ipv4Addr::new(10, 0, 2, 20 + i)).collect()
}

/// xorshift64: which RS the next connection goes to and which open one closes.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Connections open on one worker: a steered allocation to a random RS, then, once `HELD`
/// are open, a random one closes (sessions do not end in the order they started).
struct Churn {
    pool: LipPool,
    held: Vec<(Ipv4Addr, u16)>,
    rng: Xorshift,
    rs: Vec<Ipv4Addr>,
    /// Allocations that gave up, and ports the predicate examined.
    failed: usize,
    examined: usize,
}

impl Churn {
    #[inline]
    fn step(&mut self, steer: &ReplySteering, q: u16) {
        let rip = self.rs[self.rng.below(self.rs.len())];
        let mut sel = steer.selector(rip, 80);
        let examined = &mut self.examined;
        let got = self.pool.alloc_where(
            ANY,
            |l, p| {
                *examined += 1;
                sel(l, p)
            },
            64 * usize::from(q),
        );
        match got {
            Some(pair) => self.held.push(pair),
            None => self.failed += 1,
        }
        if self.held.len() > HELD {
            let (l, p) = self.held.swap_remove(self.rng.below(self.held.len()));
            self.pool.free(l, p, ANY);
        }
    }
}

fn steering(c: &mut Criterion) {
    let mut g = c.benchmark_group("lip");
    let rs = servers();

    // Baseline: the same churn with a plain `alloc` on an unsliced pool.
    let mut pool = LipPool::new(&[LIP], PORTS).unwrap();
    let mut held = Vec::with_capacity(HELD + 1);
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    g.bench_function("alloc_free", |b| {
        b.iter(|| {
            if let Some(pair) = pool.alloc(ANY) {
                held.push(pair);
            }
            if held.len() > HELD {
                let (l, p) = held.swap_remove(rng.below(held.len()));
                pool.free(l, p, ANY);
            }
        })
    });

    for q in [2u16, 4] {
        // Worker 0 of q, each owning a slice of the LIP ports and one RX queue.
        let range = LipPool::worker_range(PORTS, q, 0).unwrap();
        let reta = Reta::round_robin(128, q).unwrap();
        let steer = ReplySteering::new(&RssKey::MICROSOFT, reta, 0).unwrap();
        let mut churn = Churn {
            pool: LipPool::new_shuffled(&[LIP], range, 1).unwrap(),
            held: Vec::with_capacity(HELD + 1),
            rng: Xorshift(0x9e37_79b9_7f4a_7c15),
            rs: rs.clone(),
            failed: 0,
            examined: 0,
        };
        // Age the pool first, so the figure is for a worker that has been up a while.
        const AGE: usize = 1_000_000;
        for _ in 0..AGE {
            churn.step(&steer, q);
        }
        eprintln!(
            "q={q}: ageing, {} of {AGE} steered allocations gave up, {:.2} ports examined each",
            churn.failed,
            churn.examined as f64 / AGE as f64
        );
        let (failed, examined) = (churn.failed, churn.examined);
        let mut n = 0usize;
        g.bench_function(format!("alloc_where_steered_free/q{q}"), |b| {
            b.iter(|| {
                n += 1;
                churn.step(&steer, q)
            })
        });
        eprintln!(
            "q={q}: timed, {} of {n} gave up, {:.2} ports examined each",
            churn.failed - failed,
            (churn.examined - examined) as f64 / n.max(1) as f64
        );
    }
    g.finish();
}

criterion_group!(rss_benches, hash, steering);
criterion_main!(rss_benches);
