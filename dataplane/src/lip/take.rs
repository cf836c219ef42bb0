//! Taking a given pair (session sync installs a peer's FullNAT session): against a model,
//! a taken pair is never handed out again while held, `take` refuses exactly the pairs held
//! toward the same pool, and the rings stay whole (every free pair comes out exactly once).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FIRST: u16 = 5000;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    Take(usize, bool, u16),
    Free(usize),
}

fn to(rip: Ipv4Addr) -> Toward {
    Toward {
        rip,
        rport: 80,
        now: 0,
    }
}

#[test]
fn take_refuses_foreign_pairs_and_pairs_in_use() {
    let mut pool = LipPool::new(&[A], FIRST..=FIRST + 3).unwrap();
    let d = to(Ipv4Addr::new(10, 1, 0, 11));
    assert_eq!(pool.take(B, FIRST, d), Err(TakeError::Foreign));
    assert_eq!(pool.take(A, FIRST - 1, d), Err(TakeError::Foreign));
    assert_eq!(pool.take(A, FIRST + 4, d), Err(TakeError::Foreign));
    assert_eq!(pool.take(A, FIRST + 2, d), Ok(()));
    assert_eq!(pool.take(A, FIRST + 2, d), Err(TakeError::InUse));
    assert_eq!(pool.available(), 3);
    let mut out: Vec<u16> = (0..3).map(|_| pool.alloc(d).unwrap().1).collect();
    out.sort_unstable();
    assert_eq!(
        out,
        [FIRST, FIRST + 1, FIRST + 3],
        "the taken port is not handed out"
    );
    assert_eq!(pool.alloc(d), None);
    assert!(
        pool.free(A, FIRST + 2, d),
        "a taken pair is freed like any other"
    );
    assert_eq!(pool.alloc(d), Some((A, FIRST + 2)));
}

#[test]
fn take_keeps_fifo_order_of_the_others() {
    let mut pool = LipPool::new(&[A], FIRST..=FIRST + 4).unwrap();
    let d = to(Ipv4Addr::new(10, 1, 0, 11));
    pool.take(A, FIRST + 3, d).unwrap();
    // The head moved into the taken port's place: it comes later, nothing comes earlier.
    let order: Vec<u16> = (0..4).map(|_| pool.alloc(d).unwrap().1).collect();
    assert_eq!(order, [FIRST + 1, FIRST + 2, FIRST, FIRST + 4]);
}

proptest! {
    #[test]
    fn take_alloc_free_agree_with_a_model(
        pools in 1u16..=4,
        nports in 1u16..8,
        seed in proptest::option::of(any::<u64>()),
        ops in proptest::collection::vec(prop_oneof![
            3 => (0usize..3).prop_map(Op::Alloc),
            3 => (0usize..3, any::<bool>(), 0u16..10).prop_map(|(d, b, p)| Op::Take(d, b, p)),
            2 => any::<usize>().prop_map(Op::Free),
        ], 0..200),
    ) {
        let reuse = PortReuse { pools, quarantine_ms: 0 };
        let rips: Vec<Ipv4Addr> = (0..3).map(|d| Ipv4Addr::new(10, 1, 0, 11 + d)).collect();
        let mut pool = LipPool::with_reuse(&[A, B], FIRST..=FIRST + nports - 1, seed, reuse).unwrap();
        // (pool, LIP, port) held, and by which dest.
        let mut held: Vec<(usize, Ipv4Addr, u16, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc(d) => {
                    let p = pool.pool_of(rips[d], 80);
                    if let Some((l, port)) = pool.alloc(to(rips[d])) {
                        prop_assert!(!held.iter().any(|h| (h.0, h.1, h.2) == (p, l, port)), "held twice");
                        held.push((p, l, port, d));
                    } else {
                        let free_in_pool = 2 * nports as usize
                            - held.iter().filter(|h| h.0 == p).count();
                        prop_assert_eq!(free_in_pool, 0, "alloc failed with free pairs");
                    }
                }
                Op::Take(d, second, off) => {
                    let l = if second { B } else { A };
                    let port = FIRST + off;
                    let p = pool.pool_of(rips[d], 80);
                    let got = pool.take(l, port, to(rips[d]));
                    let want = if off >= nports {
                        Err(TakeError::Foreign)
                    } else if held.iter().any(|h| (h.0, h.1, h.2) == (p, l, port)) {
                        Err(TakeError::InUse)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(got, want);
                    if got.is_ok() {
                        held.push((p, l, port, d));
                    }
                }
                Op::Free(k) if !held.is_empty() => {
                    let (_, l, port, d) = held.swap_remove(k % held.len());
                    prop_assert!(pool.free(l, port, to(rips[d])));
                }
                Op::Free(_) => {}
            }
            prop_assert_eq!(pool.available(), pool.capacity() - held.len());
        }
        // Every pair not held comes out exactly once.
        let mut seen = HashSet::new();
        for (d, rip) in rips.iter().enumerate() {
            let p = pool.pool_of(*rip, 80);
            while let Some((l, port)) = pool.alloc(to(*rip)) {
                prop_assert!(seen.insert((p, l, port)), "handed out twice");
                prop_assert!(!held.iter().any(|h| (h.0, h.1, h.2) == (p, l, port)));
                held.push((p, l, port, d));
            }
        }
        let pools_used: HashSet<usize> = rips.iter().map(|r| pool.pool_of(*r, 80)).collect();
        let expect: usize = pools_used.len() * 2 * nports as usize;
        prop_assert_eq!(held.iter().filter(|h| pools_used.contains(&h.0)).count(), expect);
    }
}
