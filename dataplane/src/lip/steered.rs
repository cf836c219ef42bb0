//! Allocation with reply steering: the ports a steered pool hands out reply to the worker's
//! own queue, by the NIC's hash computed independently, and allocation rarely gives up.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

/// Any dest, at any time: these pools have one pool and no quarantine.
const T: Toward = Toward {
    rip: Ipv4Addr::UNSPECIFIED,
    rport: 0,
    now: 0,
};
use crate::rss::{toeplitz, ReplySteering, Reta, RssKey, ToeplitzTable};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// The queue the NIC delivers the reply `rip:rport → lip:lport` to, by the bitwise
/// reference hash (independent of the tables `ReplySteering` uses).
fn reference_queue(
    key: &RssKey,
    reta: &Reta,
    rip: Ipv4Addr,
    rport: u16,
    lip: Ipv4Addr,
    lport: u16,
) -> u16 {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&rip.octets());
    t[4..8].copy_from_slice(&lip.octets());
    t[8..10].copy_from_slice(&rport.to_be_bytes());
    t[10..].copy_from_slice(&lport.to_be_bytes());
    reta.queue(toeplitz(key, &t))
}

/// Rank over GF(2) of the map from lport bits `0..bits` to the low `index_bits` bits of
/// the reply hash: full (`index_bits`) unless the key ignores those lport bits.
fn lport_rank(table: &ToeplitzTable, bits: u32, index_bits: u32) -> u32 {
    let mask = (1u32 << index_bits) - 1;
    let mut basis: Vec<u32> = Vec::new();
    for b in 0..bits {
        let mut v = table.hash_dport(1 << b) & mask;
        for &x in &basis {
            v = v.min(v ^ x);
        }
        if v != 0 {
            basis.push(v);
            basis.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
    basis.len() as u32
}

/// A deterministic generator for the scenario tests.
fn rng(seed: u64) -> SplitMix64 {
    SplitMix64(seed)
}

const MLX5_KEY: [u8; 40] = [
    0x2c, 0xc6, 0x81, 0xd1, 0x5b, 0xdb, 0xf4, 0xf7, 0xfc, 0xa2, 0x83, 0x19, 0xdb, 0x1a, 0x3e, 0x94,
    0x6b, 0x9e, 0x38, 0xd9, 0x2c, 0x9c, 0x03, 0xd1, 0xad, 0x99, 0x44, 0xa7, 0xd9, 0x56, 0x3d, 0x59,
    0x06, 0x3c, 0x25, 0xf3, 0xfc, 0x1f, 0xdc, 0x2a,
];

#[test]
fn steered_pool_still_hands_out_every_port() {
    let key = RssKey::MICROSOFT;
    let steer = ReplySteering::new(&key, Reta::round_robin(128, 3).unwrap(), 2).unwrap();
    let mut pool = LipPool::new(&[A, B, C], 2000..=2299).unwrap();
    let mut out = HashSet::new();
    let mut r = rng(7);
    for _ in 0..2000 {
        let rip = Ipv4Addr::from(r.next() as u32);
        let before = pool.available();
        match pool.alloc_where(T, steer.selector(rip, 443), 192) {
            Some((lip, lport)) => {
                assert!(steer.accepts(rip, 443, lip, lport));
                assert!(out.insert((lip, lport)), "handed out twice");
                assert_eq!(pool.available(), before - 1);
            }
            None => assert_eq!(pool.available(), before),
        }
    }
    while let Some(pair) = pool.alloc(T) {
        assert!(out.insert(pair), "handed out twice");
    }
    assert_eq!(out.len(), pool.capacity());
}

/// Connections to a few RSes on one worker, with churn: alloc_where with the steering
/// selector and `max_tries = 64 × q`, then a random held pair freed once `held` are out.
/// Returns (calls, failures, ports examined).
fn churn(
    pool: &mut LipPool,
    steer: &ReplySteering,
    q: u16,
    steps: usize,
    seed: u64,
) -> (usize, usize, usize) {
    let mut r = rng(seed);
    let rs: Vec<(Ipv4Addr, u16)> = (0..8)
        .map(|_| (Ipv4Addr::from(r.next() as u32), 80))
        .collect();
    let (mut fails, mut examined) = (0, 0);
    let mut held = Vec::new();
    for _ in 0..steps {
        let (rip, rport) = rs[(r.next() % 8) as usize];
        let mut sel = steer.selector(rip, rport);
        let got = pool.alloc_where(
            T,
            |l, p| {
                examined += 1;
                sel(l, p)
            },
            64 * usize::from(q),
        );
        match got {
            Some(pair) => held.push(pair),
            None => fails += 1,
        }
        if held.len() > 1000 {
            let (l, p) = held.swap_remove((r.next() % held.len() as u64) as usize);
            assert!(pool.free(l, p, T));
        }
    }
    (steps, fails, examined)
}

#[test]
fn steering_rarely_gives_up_with_default_keys() {
    // The defaults of Microsoft/Intel and of mlx5, both pool orders, q = 1..=4 workers
    // each owning a slice of 1024..=65535. Bounds are loose (the exact counts are fixed
    // by the seeds); see the module notes for how rejections grow with uptime.
    for key in [RssKey::MICROSOFT, RssKey::new(&MLX5_KEY).unwrap()] {
        for q in 1..=4u16 {
            for shuffled in [false, true] {
                let w = q - 1;
                let range = LipPool::worker_range(1024..=65535, q, w).unwrap();
                let steer =
                    ReplySteering::new(&key, Reta::round_robin(128, q).unwrap(), w).unwrap();
                let mut pool = if shuffled {
                    LipPool::new_shuffled(&[A, B], range, u64::from(q)).unwrap()
                } else {
                    LipPool::new(&[A, B], range).unwrap()
                };
                let (calls, fails, examined) = churn(&mut pool, &steer, q, 5000, 1);
                assert!(
                    fails * 1000 <= calls,
                    "{key:?} q={q}: {fails} of {calls} failed"
                );
                let mean = examined as f64 / calls as f64;
                assert!(
                    mean < 4.0 * f64::from(q),
                    "{key:?} q={q}: {mean} examined per call"
                );
            }
        }
    }
}

proptest! {
    #[test]
    fn steered_ports_reply_to_the_workers_queue(
        key in proptest::collection::vec(any::<u8>(), 40),
        (q, worker) in (1u16..=4).prop_flat_map(|q| (Just(q), 0..q)),
        rips in proptest::collection::vec(any::<u32>(), 1..4),
        rport in any::<u16>(),
        nlips in 1usize..=3,
    ) {
        let key = RssKey::new(&key).unwrap();
        let reta = Reta::round_robin(128, q).unwrap();
        let steer = ReplySteering::new(&key, reta.clone(), worker).unwrap();
        let range = LipPool::worker_range(1024..=65535, q, worker).unwrap();
        let mut pool = LipPool::new(&[A, B, C][..nlips], range.clone()).unwrap();
        let mut held = Vec::new();
        for i in 0..300usize {
            let rip = Ipv4Addr::from(rips[i % rips.len()]);
            if let Some((lip, lport)) = pool.alloc_where(T, steer.selector(rip, rport), 64 * usize::from(q)) {
                prop_assert!(range.contains(&lport));
                prop_assert_eq!(reference_queue(&key, &reta, rip, rport, lip, lport), worker);
                prop_assert_eq!(LipPool::worker_of(1024..=65535, q, lport), Some(worker));
                held.push((lip, lport));
            }
            if i % 3 == 0 && !held.is_empty() {
                let (l, p) = held.swap_remove(i % held.len());
                prop_assert!(pool.free(l, p, T));
            }
        }
    }

    #[test]
    fn one_port_in_q_qualifies_per_aligned_block(
        key in proptest::collection::vec(any::<u8>(), 40),
        (q, worker) in (1u16..=4).prop_flat_map(|q| (Just(q), 0..q)),
        rip in any::<u32>(),
        rport in any::<u16>(),
        lip in any::<u32>(),
    ) {
        let key = RssKey::new(&key).unwrap();
        // A worker's slice holds an aligned block of 2^13 ports; skip the rare keys
        // (about 1 in 1000) whose hash ignores those 13 lport bits in its low 7 bits:
        // for them some RETA indices cannot be reached by the lport at all.
        prop_assume!(lport_rank(&ToeplitzTable::new(&key), 13, 7) == 7);
        let steer = ReplySteering::new(&key, Reta::round_robin(128, q).unwrap(), worker).unwrap();
        let range = LipPool::worker_range(1024..=65535, q, worker).unwrap();
        let (rip, lip) = (Ipv4Addr::from(rip), Ipv4Addr::from(lip));
        let partial = steer.prepare(rip, rport, lip);
        // With full rank the 13 low lport bits map onto every RETA index equally (2^6
        // ports each), so every aligned block of 2^13 ports holds exactly 2^6 ports per
        // RETA entry of the worker's queue: about 1 port in q ...
        let entries = (0..128u16).filter(|i| i % q == worker).count();
        let mut aligned = 0usize;
        let mut block = range.start().next_multiple_of(1 << 13);
        while u32::from(block) + (1 << 13) - 1 <= u32::from(*range.end()) {
            let good = (block..=block + ((1 << 13) - 1))
                .filter(|&p| steer.accepts_prepared(partial, p))
                .count();
            prop_assert_eq!(good, entries << 6, "block at {}", block);
            aligned += 1;
            block = match block.checked_add(1 << 13) { Some(b) => b, None => break };
        }
        prop_assert!(aligned >= 1, "the slice {:?} holds no aligned block", range);
        // ... which bounds the share of the whole slice from below: the try budget of
        // alloc_where (64 × q draws) rests on at least half the fair share qualifying.
        let total = range.clone().count();
        let good = range.filter(|&p| steer.accepts_prepared(partial, p)).count();
        let share = good as f64 * f64::from(q) / total as f64;
        prop_assert!(share >= 0.5, "{} of {} ports", good, total);
    }
}
