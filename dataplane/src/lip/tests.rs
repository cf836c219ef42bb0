//! The pool's unit and property tests: allocation order, reuse, worker slices, and
//! `alloc_where` against a model with arbitrary predicates.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;

use super::*;

/// Any dest, at any time: these pools have one pool and no quarantine.
const T: Toward = Toward {
    rip: Ipv4Addr::UNSPECIFIED,
    rport: 0,
    now: 0,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

#[test]
fn new_rejects_bad_input() {
    assert_eq!(
        LipPool::new(&[], 1024..=2047).unwrap_err(),
        LipError::NoLips
    );
    assert_eq!(
        LipPool::new(&[A, B, A], 1024..=2047).unwrap_err(),
        LipError::DuplicateLip(A)
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 2000..=1999;
    assert!(matches!(
        LipPool::new(&[A], empty),
        Err(LipError::BadRange {
            start: 2000,
            end: 1999,
            ..
        })
    ));
    assert!(matches!(
        LipPool::new(&[A], 0..=10),
        Err(LipError::BadRange { start: 0, .. })
    ));
    let msg = LipPool::new(&[A], 0..=10).unwrap_err().to_string();
    assert_eq!(
        msg,
        "bad LIP port range 0-10 for 1 worker(s): port 0 is not a usable source port"
    );
}

#[test]
fn round_robin_over_lips() {
    let mut pool = LipPool::new(&[A, B, C], 5000..=5009).unwrap();
    assert_eq!(pool.capacity(), 30);
    let got: Vec<_> = (0..6).map(|_| pool.alloc(T).unwrap()).collect();
    assert_eq!(
        got,
        [
            (A, 5000),
            (B, 5000),
            (C, 5000),
            (A, 5001),
            (B, 5001),
            (C, 5001)
        ]
    );
    assert_eq!(pool.available(), 24);
    assert_eq!(pool.lips().collect::<Vec<_>>(), [A, B, C]);
    assert!(pool.contains(B));
    assert!(!pool.contains(Ipv4Addr::new(10, 0, 0, 4)));
}

#[test]
fn ports_are_reused_fifo() {
    let mut pool = LipPool::new(&[A], 1000..=1003).unwrap();
    for p in 1000..=1003 {
        assert_eq!(pool.alloc(T), Some((A, p)));
    }
    assert_eq!(pool.alloc(T), None);
    assert!(pool.free(A, 1002, T));
    assert!(pool.free(A, 1000, T));
    assert!(pool.free(A, 1003, T));
    // Least recently freed first.
    assert_eq!(pool.alloc(T), Some((A, 1002)));
    assert!(pool.free(A, 1002, T));
    assert_eq!(pool.alloc(T), Some((A, 1000)));
    assert_eq!(pool.alloc(T), Some((A, 1003)));
    assert_eq!(pool.alloc(T), Some((A, 1002)));
    assert_eq!(pool.alloc(T), None);
}

#[test]
fn free_ignores_what_is_not_held() {
    let mut pool = LipPool::new(&[A, B], 1000..=1001).unwrap();
    assert!(!pool.free(A, 1000, T), "never handed out");
    let (lip, port) = pool.alloc(T).unwrap();
    assert!(!pool.free(C, port, T), "unknown LIP");
    assert!(!pool.free(lip, 999, T), "below the range");
    assert!(!pool.free(lip, 1002, T), "above the range");
    assert!(!pool.free(lip, 0, T));
    assert!(!pool.free(lip, u16::MAX, T));
    assert!(pool.free(lip, port, T));
    assert!(!pool.free(lip, port, T), "double free");
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn exhausted_lips_are_skipped() {
    let mut pool = LipPool::new(&[A, B, C], 7000..=7000).unwrap();
    assert_eq!(pool.alloc(T), Some((A, 7000)));
    assert_eq!(pool.alloc(T), Some((B, 7000)));
    assert_eq!(pool.alloc(T), Some((C, 7000)));
    assert_eq!(pool.alloc(T), None);
    assert!(pool.free(B, 7000, T));
    assert_eq!(pool.alloc(T), Some((B, 7000)));
    assert_eq!(pool.alloc(T), None);
}

#[test]
fn full_range_pool() {
    let mut pool = LipPool::new(&[A], 1..=u16::MAX).unwrap();
    assert_eq!(pool.capacity(), 65535);
    let mut last = 0;
    while let Some((_, p)) = pool.alloc(T) {
        last = p;
    }
    assert_eq!(last, u16::MAX);
    assert!(pool.free(A, u16::MAX, T));
    assert!(pool.free(A, 1, T));
    assert_eq!(pool.alloc(T), Some((A, u16::MAX)));
    let dbg = format!("{pool:?}");
    assert!(dbg.contains("ports: 1..=65535"), "{dbg}");
}

#[test]
fn worker_range_slices() {
    assert_eq!(LipPool::worker_range(1024..=2047, 4, 0), Ok(1024..=1279));
    assert_eq!(LipPool::worker_range(1024..=2047, 4, 3), Ok(1792..=2047));
    // The last worker takes the remainder.
    assert_eq!(LipPool::worker_range(1..=10, 3, 0), Ok(1..=3));
    assert_eq!(LipPool::worker_range(1..=10, 3, 1), Ok(4..=6));
    assert_eq!(LipPool::worker_range(1..=10, 3, 2), Ok(7..=10));
    assert_eq!(LipPool::worker_range(1..=65535, 1, 0), Ok(1..=65535));
    assert_eq!(LipPool::worker_range(100..=101, 2, 1), Ok(101..=101));
    for (range, workers, worker) in [
        (100..=101, 3, 0),
        (100..=101, 0, 0),
        (100..=101, 2, 2),
        (0..=101, 2, 0),
    ] {
        assert!(matches!(
            LipPool::worker_range(range, workers, worker),
            Err(LipError::BadRange { .. })
        ));
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc,
    /// Free the held pair at this index (mod the number held).
    FreeHeld(usize),
    /// Free an arbitrary pair: LIP index (3 = unknown), port.
    FreeAny(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Alloc),
        2 => any::<usize>().prop_map(Op::FreeHeld),
        1 => (0usize..4, 95u16..125).prop_map(|(l, p)| Op::FreeAny(l, p)),
    ]
}

proptest! {
    #[test]
    fn pool_behaves_like_a_set(
        nlips in 1usize..4,
        first in 100u16..110,
        nports in 1u16..12,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let all = [A, B, C, Ipv4Addr::new(192, 0, 2, 9)];
        let lips = &all[..nlips];
        let last = first + nports - 1;
        let mut pool = LipPool::new(lips, first..=last).unwrap();
        prop_assert_eq!(pool.capacity(), nlips * usize::from(nports));
        let mut held: Vec<(Ipv4Addr, u16)> = Vec::new();
        // Model of each LIP's free list, to check FIFO reuse.
        let mut fifo: Vec<VecDeque<u16>> =
            (0..nlips).map(|_| (first..=last).collect()).collect();
        for op in ops {
            match op {
                Op::Alloc => match pool.alloc(T) {
                    Some((lip, port)) => {
                        prop_assert!(!held.contains(&(lip, port)), "handed out twice");
                        let i = lips.iter().position(|&l| l == lip).unwrap();
                        prop_assert_eq!(fifo[i].pop_front(), Some(port), "not FIFO");
                        held.push((lip, port));
                    }
                    None => prop_assert_eq!(held.len(), pool.capacity()),
                },
                Op::FreeHeld(k) if !held.is_empty() => {
                    let (lip, port) = held.swap_remove(k % held.len());
                    prop_assert!(pool.free(lip, port, T));
                    let i = lips.iter().position(|&l| l == lip).unwrap();
                    fifo[i].push_back(port);
                }
                Op::FreeHeld(_) => {}
                Op::FreeAny(l, port) => {
                    let lip = all[l];
                    let was_held = held.iter().position(|&h| h == (lip, port));
                    prop_assert_eq!(pool.free(lip, port, T), was_held.is_some());
                    if let Some(k) = was_held {
                        held.swap_remove(k);
                        let i = lips.iter().position(|&x| x == lip).unwrap();
                        fifo[i].push_back(port);
                    }
                }
            }
            prop_assert_eq!(pool.available(), pool.capacity() - held.len());
        }
        // Drain: exactly the free pairs come out, then None.
        let mut seen: HashSet<_> = held.iter().copied().collect();
        while let Some(pair) = pool.alloc(T) {
            prop_assert!(seen.insert(pair));
        }
        prop_assert_eq!(seen.len(), pool.capacity());
        prop_assert_eq!(pool.available(), 0);
    }

    #[test]
    fn worker_ranges_partition(
        start in 1u16..=65535,
        len in 1u32..=65535,
        workers in 1u16..=64,
    ) {
        let end = (u32::from(start) + len - 1).min(65535) as u16;
        let total = u32::from(end) - u32::from(start) + 1;
        if total < u32::from(workers) {
            prop_assert!(LipPool::worker_range(start..=end, workers, 0).is_err());
            return Ok(());
        }
        let mut next = u32::from(start);
        for w in 0..workers {
            let r = LipPool::worker_range(start..=end, workers, w).unwrap();
            prop_assert_eq!(u32::from(*r.start()), next, "contiguous and disjoint");
            prop_assert!(r.start() <= r.end());
            next = u32::from(*r.end()) + 1;
        }
        prop_assert_eq!(next, u32::from(end) + 1, "covers the range");
    }
}

#[test]
fn alloc_where_rejections_leave_the_pool_as_it_was() {
    let mut pool = LipPool::new(&[A, B], 100..=163).unwrap();
    let mut twin = LipPool::new(&[A, B], 100..=163).unwrap();
    let _ = (pool.alloc(T), twin.alloc(T)); // so `next` is not at the first LIP
    let before = pool.available();
    let mut seen = Vec::new();
    let got = pool.alloc_where(
        T,
        |l, p| {
            seen.push((l, p));
            false
        },
        10_000,
    );
    assert_eq!(got, None);
    assert_eq!(pool.available(), before);
    // No more tries than free ports, LIPs taking turns from `next` (B), heads first.
    assert_eq!(seen.len(), before);
    assert_eq!(&seen[..4], &[(B, 100), (A, 101), (B, 101), (A, 102)]);
    // Every free port is still there.
    let rest: HashSet<_> = core::iter::from_fn(|| pool.alloc(T)).collect();
    let twin_rest: HashSet<_> = core::iter::from_fn(|| twin.alloc(T)).collect();
    assert_eq!(rest, twin_rest);
    assert_eq!(rest.len(), before);
    // A few rejections leave the older ports in FIFO order: the rejected ones went back
    // among the newer half.
    let mut pool = LipPool::new(&[A, B], 100..=163).unwrap();
    let mut twin = LipPool::new(&[A, B], 100..=163).unwrap();
    assert_eq!(pool.alloc_where(T, |_, _| false, 10), None);
    for _ in 0..10 {
        twin.alloc(T);
    }
    for _ in 0..20 {
        assert_eq!(pool.alloc(T), twin.alloc(T));
    }
    // `max_tries` bounds the work; 0 examines nothing.
    let mut pool = LipPool::new(&[A], 1000..=1999).unwrap();
    let mut calls = 0;
    assert_eq!(
        pool.alloc_where(
            T,
            |_, _| {
                calls += 1;
                false
            },
            7
        ),
        None
    );
    assert_eq!(calls, 7);
    assert_eq!(pool.alloc_where(T, |_, _| true, 0), None);
    // Rejected ports went back: the next candidate is the one after them.
    assert_eq!(
        pool.alloc_where(T, |_, p| p % 2 == 0 && p > 1007, 100),
        Some((A, 1008))
    );
    assert_eq!(pool.alloc(T), Some((A, 1009)));
}

#[test]
fn shuffled_pool_is_a_permutation_per_lip() {
    let mut pool = LipPool::new_shuffled(&[A, B], 5000..=5999, 42).unwrap();
    let mut again = LipPool::new_shuffled(&[A, B], 5000..=5999, 42).unwrap();
    let mut ports: [Vec<u16>; 2] = [Vec::new(), Vec::new()];
    while let Some((lip, port)) = pool.alloc(T) {
        assert_eq!(again.alloc(T), Some((lip, port)), "same seed, same order");
        ports[usize::from(lip == B)].push(port);
    }
    for p in &ports {
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (5000..=5999).collect::<Vec<_>>());
        assert_ne!(*p, sorted, "not ascending");
    }
    assert_ne!(ports[0], ports[1], "each LIP has its own order");
    // After the first round, reuse is FIFO as with `new`.
    assert!(pool.free(A, 5500, T));
    assert!(pool.free(A, 5001, T));
    assert_eq!(pool.alloc(T), Some((A, 5500)));
    assert_eq!(pool.alloc(T), Some((A, 5001)));
    let other = LipPool::new_shuffled(&[A], 5000..=5999, 43).unwrap();
    assert!(LipPool::new_shuffled(&[], 1..=2, 0).is_err());
    assert_eq!(other.available(), 1000);
}

#[test]
fn worker_of_edges() {
    assert_eq!(LipPool::worker_of(1..=10, 3, 1), Some(0));
    assert_eq!(LipPool::worker_of(1..=10, 3, 6), Some(1));
    assert_eq!(LipPool::worker_of(1..=10, 3, 7), Some(2));
    assert_eq!(LipPool::worker_of(1..=10, 3, 10), Some(2), "the remainder");
    assert_eq!(LipPool::worker_of(1..=10, 3, 11), None);
    assert_eq!(LipPool::worker_of(5..=10, 3, 4), None);
    assert_eq!(LipPool::worker_of(1..=10, 0, 1), None);
    assert_eq!(LipPool::worker_of(0..=10, 2, 1), None);
    assert_eq!(LipPool::worker_of(1..=2, 3, 1), None);
    assert_eq!(LipPool::worker_of(1..=65535, 1, 65535), Some(0));
}

#[derive(Clone, Debug)]
enum WhereOp {
    Alloc,
    /// alloc_where with a predicate accepting `1 + salt % 4` pairs in 8, and a try budget.
    AllocWhere(u8, usize),
    FreeHeld(usize),
}

fn where_op() -> impl Strategy<Value = WhereOp> {
    prop_oneof![
        2 => Just(WhereOp::Alloc),
        4 => (any::<u8>(), 0usize..40).prop_map(|(s, t)| WhereOp::AllocWhere(s, t)),
        3 => any::<usize>().prop_map(WhereOp::FreeHeld),
    ]
}

/// A deterministic pseudo-random predicate over (LIP, port).
fn accept(salt: u8, lip: Ipv4Addr, port: u16) -> bool {
    let x = (u64::from(u32::from(lip)) << 16 | u64::from(port)) ^ (u64::from(salt) << 48);
    SplitMix64(x).next() % 8 <= u64::from(salt % 4)
}

proptest! {
    #[test]
    fn alloc_where_matches_the_model(
        nlips in 1usize..4,
        nports in 1u16..10,
        ops in proptest::collection::vec(where_op(), 0..300),
    ) {
        let lips = &[A, B, C][..nlips];
        let (first, last) = (500u16, 500 + nports - 1);
        let mut pool = LipPool::new(lips, first..=last).unwrap();
        // Model: one FIFO per LIP and the LIP to start at.
        let mut fifo: Vec<VecDeque<u16>> =
            (0..nlips).map(|_| (first..=last).collect()).collect();
        let mut next = 0usize;
        let mut rng = SplitMix64(SCATTER_SEED);
        let mut held: Vec<(Ipv4Addr, u16)> = Vec::new();
        for op in ops {
            match op {
                WhereOp::Alloc => {
                    let want = (0..nlips).map(|k| (next + k) % nlips).find(|&i| !fifo[i].is_empty());
                    let want = want.and_then(|i| {
                        next = (i + 1) % nlips;
                        fifo[i].pop_front().map(|p| (lips[i], p))
                    });
                    prop_assert_eq!(pool.alloc(T), want);
                    held.extend(want);
                }
                WhereOp::AllocWhere(salt, max_tries) => {
                    let mut calls = Vec::new();
                    let got = pool.alloc_where(T, |l, p| {
                        calls.push((l, p));
                        accept(salt, l, p)
                    }, max_tries);
                    // The model: round r looks at the head of each LIP with more than r
                    // free, from `next`; a rejected port takes a random place among the
                    // newer half (or the back), the port there going to the back.
                    let mut want_calls = Vec::new();
                    let mut want = None;
                    let mut tries = max_tries;
                    let counts: Vec<usize> = fifo.iter().map(VecDeque::len).collect();
                    'rounds: for round in 0..counts.iter().copied().max().unwrap_or(0) {
                        for k in 0..nlips {
                            let i = (next + k) % nlips;
                            if counts[i] <= round {
                                continue;
                            }
                            if tries == 0 {
                                break 'rounds;
                            }
                            tries -= 1;
                            let p = fifo[i].pop_front().unwrap();
                            want_calls.push((lips[i], p));
                            if accept(salt, lips[i], p) {
                                want = Some((lips[i], p));
                                next = (i + 1) % nlips;
                                break 'rounds;
                            }
                            let m = fifo[i].len() as u32;
                            let lo = m.div_ceil(2);
                            let j = (lo + rng.below(m - lo + 1)) as usize;
                            if j < fifo[i].len() {
                                let displaced = core::mem::replace(&mut fifo[i][j], p);
                                fifo[i].push_back(displaced);
                            } else {
                                fifo[i].push_back(p);
                            }
                        }
                    }
                    prop_assert_eq!(&calls, &want_calls);
                    prop_assert_eq!(got, want);
                    held.extend(want);
                }
                WhereOp::FreeHeld(k) if !held.is_empty() => {
                    let (lip, port) = held.swap_remove(k % held.len());
                    prop_assert!(pool.free(lip, port, T));
                    let i = lips.iter().position(|&l| l == lip).unwrap();
                    fifo[i].push_back(port);
                }
                WhereOp::FreeHeld(_) => {}
            }
            prop_assert_eq!(pool.available(), pool.capacity() - held.len());
        }
    }


    #[test]
    fn worker_of_inverts_worker_range(
        start in 1u16..=65535,
        len in 1u32..=65535,
        workers in 1u16..=64,
        probe in any::<u16>(),
    ) {
        let end = (u32::from(start) + len - 1).min(65535) as u16;
        let range = start..=end;
        if LipPool::worker_range(range.clone(), workers, 0).is_err() {
            prop_assert_eq!(LipPool::worker_of(range, workers, probe), None);
            return Ok(());
        }
        for w in 0..workers {
            let slice = LipPool::worker_range(range.clone(), workers, w).unwrap();
            for port in [*slice.start(), *slice.end()] {
                prop_assert_eq!(LipPool::worker_of(range.clone(), workers, port), Some(w));
            }
        }
        let owner = LipPool::worker_of(range.clone(), workers, probe);
        match owner {
            Some(w) => {
                let slice = LipPool::worker_range(range.clone(), workers, w).unwrap();
                prop_assert!(slice.contains(&probe));
            }
            None => prop_assert!(!range.contains(&probe)),
        }
    }
}

proptest! {
    #[test]
    fn port_blocks_cover_the_range_exactly(a in any::<u16>(), b in any::<u16>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let blocks = LipPool::port_blocks(lo..=hi);
        prop_assert!(blocks.len() <= 32);
        for p in 0..=u16::MAX {
            let hits = blocks.iter().filter(|(v, m)| p & m == *v).count();
            prop_assert_eq!(hits, usize::from((lo..=hi).contains(&p)), "port {}", p);
        }
    }
}

#[test]
fn port_blocks_of_a_worker_slice() {
    assert_eq!(LipPool::port_blocks(0..=65535), vec![(0, 0)]);
    assert_eq!(LipPool::port_blocks(1024..=2047), vec![(1024, 0xfc00)]);
    assert_eq!(LipPool::port_blocks(5..=5), vec![(5, 0xffff)]);
    assert_eq!(
        LipPool::port_blocks(1024..=4095),
        vec![(1024, 0xfc00), (2048, 0xf800)]
    );
}
