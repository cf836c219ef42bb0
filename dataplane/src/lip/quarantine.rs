//! Port pools and quarantine: a pair freed by a connection to `RIP:rport` is not handed out
//! toward that dest again before the quarantine is over, the same lport serves dests of
//! other pools at once, and the usage figures follow.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const T0: u64 = 1_700_000_000_000;
const Q: u64 = 60_000;

fn reuse(pools: u16) -> PortReuse {
    PortReuse {
        pools,
        quarantine_ms: Q,
    }
}

fn to(rip: Ipv4Addr, now: u64) -> Toward {
    Toward {
        rip,
        rport: 80,
        now,
    }
}

/// Two RSes whose dests fall in different pools of `pool`.
fn two_pools_apart(pool: &LipPool) -> (Ipv4Addr, Ipv4Addr) {
    let r1 = Ipv4Addr::new(10, 1, 0, 11);
    let r2 = (12..=250)
        .map(|d| Ipv4Addr::new(10, 1, 0, d))
        .find(|&r| pool.pool_of(r, 80) != pool.pool_of(r1, 80))
        .unwrap();
    (r1, r2)
}

#[test]
fn a_freed_port_waits_out_the_quarantine_toward_its_dest_and_serves_another_meanwhile() {
    let mut pool = LipPool::with_reuse(&[A], 1000..=1000, None, reuse(16)).unwrap();
    let (r1, r2) = two_pools_apart(&pool);
    assert_eq!(pool.alloc(to(r1, T0)), Some((A, 1000)));
    // The same lport toward another server, at the same time: another pool.
    assert_eq!(pool.alloc(to(r2, T0)), Some((A, 1000)));
    assert!(pool.free(A, 1000, to(r1, T0 + 5)));
    // Toward r1 the port is in quarantine for 60 s from its release ...
    assert_eq!(pool.alloc(to(r1, T0 + 5)), None);
    assert_eq!(pool.alloc(to(r1, T0 + 5 + Q - 1_000)), None);
    // ... and comes back once it is over (rounded up to the next second).
    assert_eq!(pool.alloc(to(r1, T0 + 1_000 + Q)), Some((A, 1000)));
    // r2's pool did not wait: freed and taken again at once after free_now.
    assert!(pool.free_now(A, 1000, to(r2, T0 + 6)));
    assert_eq!(pool.alloc(to(r2, T0 + 6)), Some((A, 1000)));
}

#[test]
fn the_oldest_cooled_port_goes_first_and_a_pool_in_quarantine_is_exhausted() {
    let mut pool = LipPool::with_reuse(&[A], 1000..=1002, None, reuse(1)).unwrap();
    let r = Ipv4Addr::new(10, 1, 0, 11);
    for p in 1000..=1002 {
        assert_eq!(pool.alloc(to(r, T0)), Some((A, p)));
    }
    assert!(pool.free(A, 1001, to(r, T0)));
    assert!(pool.free(A, 1000, to(r, T0 + 10_000)));
    assert_eq!(
        pool.available(),
        2,
        "in quarantine still counts as not in use"
    );
    assert_eq!(pool.alloc(to(r, T0 + 30_000)), None);
    assert_eq!(pool.alloc(to(r, T0 + Q)), Some((A, 1001)));
    assert_eq!(pool.alloc(to(r, T0 + Q + 5_000)), None);
    assert_eq!(pool.alloc(to(r, T0 + Q + 10_000)), Some((A, 1000)));
}

#[test]
fn with_several_lips_a_lip_in_quarantine_is_passed_over() {
    let mut pool = LipPool::with_reuse(&[A, B], 2000..=2000, None, reuse(1)).unwrap();
    let r = Ipv4Addr::new(10, 1, 0, 11);
    assert_eq!(pool.alloc(to(r, T0)), Some((A, 2000)));
    assert!(pool.free(A, 2000, to(r, T0)));
    // A is next in turn but in quarantine: B serves, with and without a predicate.
    assert_eq!(pool.alloc(to(r, T0 + 1)), Some((B, 2000)));
    assert!(pool.free(B, 2000, to(r, T0 + Q)));
    let mut seen = Vec::new();
    let got = pool.alloc_where(
        to(r, T0 + Q + 1),
        |l, p| {
            seen.push((l, p));
            true
        },
        8,
    );
    assert_eq!(got, Some((A, 2000)));
    assert_eq!(seen, [(A, 2000)], "the LIP in quarantine costs no try");
    assert_eq!(pool.alloc_where(to(r, T0 + Q + 2), |_, _| true, 8), None);
}

#[test]
fn usage_counts_pairs_in_use_and_in_quarantine_per_lip() {
    let mut pool = LipPool::with_reuse(&[A, B], 3000..=3009, None, reuse(4)).unwrap();
    let (r1, r2) = two_pools_apart(&pool);
    let mut held = Vec::new();
    for i in 0..6 {
        let r = if i % 2 == 0 { r1 } else { r2 };
        let (l, p) = pool.alloc(to(r, T0)).unwrap();
        held.push((l, p, r));
    }
    for &(l, p, r) in &held[..3] {
        assert!(pool.free(l, p, to(r, T0 + 1_500)));
    }
    let usage: Vec<LipUsage> = pool.usage(T0 + 2_000).collect();
    let total = |f: fn(&LipUsage) -> u64| usage.iter().map(f).sum::<u64>();
    assert_eq!(total(|u| u.in_use), 3);
    assert_eq!(total(|u| u.quarantined), 3);
    assert!(usage.iter().all(|u| u.capacity == 40));
    assert_eq!(usage.iter().map(|u| u.addr).collect::<Vec<_>>(), [A, B]);
    // Still there a second before the end, gone after it.
    let q = |pool: &mut LipPool, now| pool.usage(now).map(|u| u.quarantined).sum::<u64>();
    assert_eq!(q(&mut pool, T0 + 1_500 + Q - 1_000), 3);
    assert_eq!(q(&mut pool, T0 + 2_000 + Q), 0);
    // Long after, nothing lingers (the ring of seconds is cleared as time goes).
    assert_eq!(q(&mut pool, T0 + 100 * Q), 0);
    assert!(pool.allocation_size() >= pool.capacity() * 6);
}

#[test]
fn a_bad_number_of_pools_is_refused() {
    for pools in [0, PortReuse::MAX_POOLS + 1] {
        let e = LipPool::with_reuse(&[A], 1..=10, None, reuse(pools)).unwrap_err();
        assert_eq!(e, LipError::BadPools(pools));
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocate toward dest `d` of four.
    Alloc(usize),
    /// Free the held pair at this index (mod the number held).
    Free(usize),
    /// Let time pass (ms).
    Wait(u64),
}

proptest! {
    /// Against a model: no pair is held twice toward one dest, and a pair freed by a
    /// connection toward a dest's pool is never handed out from that pool within the
    /// quarantine; `available` and `usage` agree with what is held.
    #[test]
    fn quarantine_holds_under_churn(
        pools in 1u16..=8,
        nports in 1u16..6,
        seed in proptest::option::of(any::<u64>()),
        ops in proptest::collection::vec(prop_oneof![
            3 => (0usize..4).prop_map(Op::Alloc),
            2 => any::<usize>().prop_map(Op::Free),
            2 => prop_oneof![0..2_000u64, 0..70_000u64].prop_map(Op::Wait),
        ], 0..300),
    ) {
        let rips: Vec<Ipv4Addr> = (0..4).map(|d| Ipv4Addr::new(10, 1, 0, 11 + d)).collect();
        let mut pool =
            LipPool::with_reuse(&[A, B], 5000..=5000 + nports - 1, seed, reuse(pools)).unwrap();
        let mut now = T0;
        let mut held: Vec<(Ipv4Addr, u16, usize)> = Vec::new();
        // (pool, LIP, port) → when it was last freed.
        let mut freed: HashMap<(usize, Ipv4Addr, u16), u64> = HashMap::new();
        for op in ops {
            match op {
                Op::Alloc(d) => {
                    let p = pool.pool_of(rips[d], 80);
                    if let Some((l, port)) = pool.alloc(to(rips[d], now)) {
                        prop_assert!(
                            !held.iter().any(|&(hl, hp, hd)| (hl, hp) == (l, port)
                                && pool.pool_of(rips[hd], 80) == p),
                            "held twice in one pool"
                        );
                        if let Some(&at) = freed.get(&(p, l, port)) {
                            prop_assert!(now >= at + Q, "handed out {} ms after its release", now - at);
                        }
                        held.push((l, port, d));
                    }
                }
                Op::Free(k) if !held.is_empty() => {
                    let (l, port, d) = held.swap_remove(k % held.len());
                    prop_assert!(pool.free(l, port, to(rips[d], now)));
                    freed.insert((pool.pool_of(rips[d], 80), l, port), now);
                }
                Op::Free(_) => {}
                Op::Wait(ms) => now += ms,
            }
            prop_assert_eq!(pool.available(), pool.capacity() - held.len());
            let usage: Vec<LipUsage> = pool.usage(now).collect();
            prop_assert_eq!(usage.iter().map(|u| u.in_use).sum::<u64>(), held.len() as u64);
            // In quarantine, at one-second granularity: freed within the last
            // quarantine (rounded up to the second).
            let cooling = freed
                .values()
                .filter(|&&at| now / 1000 < (at + Q).div_ceil(1000))
                .count() as u64;
            prop_assert_eq!(usage.iter().map(|u| u.quarantined).sum::<u64>(), cooling);
        }
    }
}
