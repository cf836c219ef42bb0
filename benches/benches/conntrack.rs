//! Session table at one million sessions: lookup (hit, miss), churn (remove + insert),
//! per-packet refresh, and the expiry tick (nothing due, some due). Then the scale check:
//! lookup hits in a table of the worker's own sessions (`Forward`) at 100k and at 10M, each
//! table pre-sized, with the bytes per session it allocated (slab, index and wheel) and a
//! check that loading it never grew the index.
//!
//! Keys are random and every stream is visited in an order unrelated to insertion, so the
//! figures include the cache misses a real worker sees.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use conntrack::{
    Candidate, Dir, FlowKey, Proto, SessionId, SessionState, Table, TcpEvent, TcpState, Timeouts,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::worker::{Forward, Preamble, SynProxy, Via};

const SESSIONS: usize = 1 << 20;
const BURST: usize = 32;
const S: u64 = 1000;
const T0: u64 = 1_700_000_000_000;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);

type Data = [u8; 32];

/// splitmix64: a tiny deterministic generator for keys and orders.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A FullNAT-like pair: client → VIP:80, real server → LIP:lport.
    fn keys(&mut self) -> (FlowKey, FlowKey) {
        let r = self.next();
        let o = FlowKey::new(
            Proto::Tcp,
            Ipv4Addr::from((r >> 32) as u32),
            r as u16,
            VIP,
            80,
        );
        let q = self.next();
        let reply = FlowKey::new(
            Proto::Tcp,
            Ipv4Addr::from(0x0a01_0000 | (q as u32 & 0xffff)),
            8080,
            LIP,
            (q >> 16) as u16,
        );
        (o, reply)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// A table with `SESSIONS` established sessions whose deadlines are spread over the
/// 900 s ESTABLISHED timeout (as in steady state), and their ids and keys.
struct Loaded<T = Data> {
    table: Table<T>,
    ids: Vec<SessionId>,
    keys: Vec<(FlowKey, FlowKey)>,
    rng: Rng,
    /// The time of the last packet; every deadline is in `(now, now + 900 s]`.
    now: u64,
}

fn loaded(capacity: usize, timeouts: Timeouts) -> Loaded {
    loaded_with(SESSIONS, capacity, timeouts, [0; 32])
}

fn loaded_with<T: Copy>(
    sessions: usize,
    capacity: usize,
    timeouts: Timeouts,
    data: T,
) -> Loaded<T> {
    let mut table = Table::with_capacity(capacity, timeouts);
    // As the worker does: big tables on transparent huge pages.
    dataplane::worker::advise_huge_pages(&table);
    let mut rng = Rng(0x5eed);
    let mut ids = Vec::with_capacity(sessions);
    let mut keys = Vec::with_capacity(sessions);
    let step = (900 * S) as f64 / sessions as f64;
    let mut now = T0;
    while ids.len() < sessions {
        let (o, r) = rng.keys();
        now = T0 + (ids.len() as f64 * step) as u64;
        if let Ok(id) = table.insert(o, Some(r), data, now) {
            table.on_packet(id, Dir::Original, Some(TcpEvent::Ack), now);
            ids.push(id);
            keys.push((o, r));
        }
    }
    Loaded {
        table,
        ids,
        keys,
        rng,
        now,
    }
}

fn lookup(c: &mut Criterion) {
    let l = loaded(SESSIONS, Timeouts::default());
    let mut g = c.benchmark_group("conntrack/lookup_1M");

    // Hits: both directions, in random order.
    let mut hits: Vec<FlowKey> = l.keys.iter().flat_map(|(o, r)| [*o, *r]).collect();
    let mut rng = Rng(7);
    rng.shuffle(&mut hits);
    let mut i = 0;
    g.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 1) & (hits.len() - 1);
            black_box(l.table.lookup(black_box(&hits[i])))
        })
    });

    let misses: Vec<FlowKey> = (0..SESSIONS).map(|_| rng.keys().0).collect();
    let mut i = 0;
    g.bench_function("miss", |b| {
        b.iter(|| {
            i = (i + 1) & (misses.len() - 1);
            black_box(l.table.lookup(black_box(&misses[i])))
        })
    });
    g.finish();
}

fn churn_and_refresh(c: &mut Criterion) {
    let mut l = loaded(SESSIONS + 1024, Timeouts::default());
    let mut g = c.benchmark_group("conntrack/update_1M");

    // One session replaced by a new one (random victim, fresh keys): a remove and an insert.
    let mut order: Vec<usize> = (0..SESSIONS).collect();
    l.rng.shuffle(&mut order);
    let fresh: Vec<(FlowKey, FlowKey)> = (0..SESSIONS).map(|_| l.rng.keys()).collect();
    let mut i = 0;
    let now = l.now;
    g.bench_function("remove+insert", |b| {
        b.iter(|| {
            i = (i + 1) & (SESSIONS - 1);
            let slot = order[i];
            black_box(l.table.remove(l.ids[slot]));
            let (o, r) = fresh[i];
            // A key can repeat after a full cycle of `fresh`; keep the old id then.
            if let Ok(id) = l.table.insert(o, Some(r), [0; 32], now) {
                l.ids[slot] = id;
            }
        })
    });

    // A packet of an established session: state lookup and lazy re-arm.
    let live: Vec<SessionId> = l.ids.clone();
    let mut now = l.now;
    let mut i = 0;
    g.bench_function("on_packet", |b| {
        b.iter(|| {
            i = (i + 1) & (SESSIONS - 1);
            now += 1;
            black_box(
                l.table
                    .on_packet(live[order[i]], Dir::Original, Some(TcpEvent::Ack), now),
            )
        })
    });
    g.finish();
}

fn expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("conntrack/expire_1M");

    // Nothing due: ESTABLISHED lasts 10^6 s here, so no deadline comes within any run, and
    // `now` moves 1 ms per call (a new 16 ms wheel tick every 16 calls). Each new tick visits
    // its bucket: the ~16 sessions filed there for a later revolution.
    let mut long = Timeouts::default();
    long.set(SessionState::Tcp(TcpState::Established), 1_000_000 * S);
    let mut l = loaded(SESSIONS, long);
    let mut now = l.now;
    l.table.expire(now, 256, |_, _| ());
    g.bench_function("none_due_1ms", |b| {
        b.iter(|| {
            now += 1;
            black_box(l.table.expire(now, 256, |_, _| ()))
        })
    });
    drop(l);

    let mut l = loaded(SESSIONS + 4096, Timeouts::default());
    l.table.expire(l.now, 4096, |_, _| ());

    // Some due: 16 ms per call past the first deadlines, so each call retires the sessions of
    // one wheel tick (≈ 19 at 1 M sessions over 900 s); the expired ones are replaced
    // (untimed) to keep the table at 1 M.
    let mut now = l.now;
    let mut gone: Vec<FlowKey> = Vec::with_capacity(4096);
    let mut expired_total = 0usize;
    let mut calls = 0usize;
    g.bench_function("some_due_16ms", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                now += 16;
                let start = Instant::now();
                let n = l.table.expire(now, 4096, |_, s| gone.push(s.original));
                total += start.elapsed();
                expired_total += n;
                calls += 1;
                for _ in gone.drain(..) {
                    let (o, r) = l.rng.keys();
                    if let Ok(id) = l.table.insert(o, Some(r), [0; 32], now) {
                        l.table
                            .on_packet(id, Dir::Original, Some(TcpEvent::Ack), now);
                    }
                }
            }
            total
        })
    });
    g.finish();
    if calls > 0 {
        eprintln!(
            "expire_1M/some_due_16ms: {:.1} sessions expired per call on average",
            expired_total as f64 / calls as f64
        );
    }
}

/// Lookup hits at 100k and 10M sessions of the worker's own type, in random order over both
/// directions' keys. The bar: the 10M figure at most twice the 100k one.
fn scale(c: &mut Criterion) {
    let fwd = Forward {
        via: Via::FullNat {
            lip: LIP,
            lport: 4242,
        },
        rip: Ipv4Addr::new(10, 1, 0, 11),
        rport: 8080,
        slot: 0,
        persist_ms: 0,
        synproxy: SynProxy::Off,
        peer: false,
        sync_noted: false,
        preamble: Preamble::NONE,
        first_seq: 0,
    };
    let mut g = c.benchmark_group("conntrack/scale");
    for (name, n) in [("hit_100k", 100_000usize), ("hit_10M", 10_000_000)] {
        let l = loaded_with(n, n, Timeouts::default(), fwd);
        let buckets = Table::<Forward>::with_capacity(n, Timeouts::default()).index_buckets();
        assert_eq!(l.table.len(), n);
        assert_eq!(
            l.table.index_buckets(),
            buckets,
            "{name}: the index grew while loading"
        );
        eprintln!(
            "conntrack/scale/{name}: {} sessions, {:.1} bytes per session allocated (slab {} + index + wheel)",
            n,
            l.table.allocation_size() as f64 / n as f64,
            std::mem::size_of::<conntrack::Session<Forward>>(),
        );
        let mut hits: Vec<FlowKey> = l.keys.iter().flat_map(|(o, r)| [*o, *r]).collect();
        let mut rng = Rng(11);
        rng.shuffle(&mut hits);
        let mut i = 0;
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                if i == hits.len() {
                    i = 0;
                }
                black_box(l.table.lookup(black_box(&hits[i])))
            })
        });
        // The worker's way: a burst of 32 keys hashed with their index lines prefetched,
        // then the heads of their candidate sessions prefetched, then looked up.
        let mut at = 0;
        g.throughput(Throughput::Elements(BURST as u64));
        g.bench_function(format!("{name}_burst"), |b| {
            b.iter(|| {
                if at + BURST > hits.len() {
                    at = 0;
                }
                let keys = &hits[at..at + BURST];
                at += BURST;
                let mut hashes = [(conntrack::KeyHash::default(), Candidate::NONE); BURST];
                for (k, h) in keys.iter().zip(hashes.iter_mut()) {
                    h.0 = l.table.hash(k);
                    dpdk::prefetch(l.table.index_line(h.0));
                }
                for h in hashes.iter_mut() {
                    h.1 = l.table.candidate(h.0);
                    // A lookup reads only the head of the session (keys, generation).
                    if let Some(slot) = l.table.candidate_slot(h.1) {
                        dpdk::prefetch_head(slot, Table::<Forward>::LOOKUP_BYTES);
                    }
                }
                let mut found = 0;
                for (k, h) in keys.iter().zip(hashes.iter()) {
                    found += usize::from(l.table.lookup_hinted(k, h.0, h.1).is_some());
                }
                assert_eq!(found, BURST);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, churn_and_refresh, expire, scale);
criterion_main!(benches);
