//! Weighted least-connection scheduling, as Linux IPVS does it
//! (`net/netfilter/ipvs/ip_vs_wlc.c`).
//!
//! Each pick takes the dest with the smallest `overhead / weight`, where the overhead is
//! `active * 256 + inactive` ([`DestLoad::overhead`], IPVS's `ip_vs_dest_conn_overhead`):
//! - there is no division: the candidate `least` is replaced by dest `d` only when
//!   `overhead(least) * weight(d) > overhead(d) * weight(least)`, IPVS's cross-multiplication;
//! - the walk starts at the first dest with a non-zero weight, so a tie goes to the first dest,
//!   and a dest with weight 0 never wins (its side of the comparison is 0);
//! - a dest past the end of the load slice has no load.
//!
//! The products are taken in `u128`: an overhead of up to 2^41 times a weight of up to 2^32
//! does not overflow (IPVS uses `s64` with 16-bit weights and 32-bit overheads). IPVS also
//! skips dests flagged overloaded (upper threshold reached); rvs has no connection
//! thresholds, so there is no such flag. The scheduler keeps no state, and the flow hint plays
//! no part.

use crate::dest::Dest;
use crate::lc::load_of;
use crate::scheduler::{DestLoad, FlowHint, Scheduler};

/// Weighted least-connection scheduler for one service on one worker. It holds no state: each
/// pick looks at the load it is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WeightedLeastConnection;

impl WeightedLeastConnection {
    /// A weighted least-connection scheduler. It keeps nothing derived from the dests, so
    /// `dests` is not needed; it is taken to match the other schedulers.
    pub fn new(dests: &[Dest]) -> WeightedLeastConnection {
        let _ = dests;
        WeightedLeastConnection
    }
}

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, dests: &[Dest]) {
        let _ = dests;
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], _hint: &FlowHint, load: &[DestLoad]) -> Option<usize> {
        // The first dest with a weight is the first candidate.
        let first = dests.iter().position(|d| d.weight > 0)?;
        let mut least = first;
        let mut loh = u128::from(load_of(load, first).overhead());
        let mut lw = dests.get(first).map_or(0, |d| u128::from(d.weight));
        for (i, d) in dests.iter().enumerate().skip(first + 1) {
            let doh = u128::from(load_of(load, i).overhead());
            let dw = u128::from(d.weight);
            if loh * dw > doh * lw {
                least = i;
                loh = doh;
                lw = dw;
            }
        }
        Some(least)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dests, loads};
    use proptest::prelude::*;

    /// One pick over `weights` with `(active, inactive)` loads.
    fn pick(weights: &[u32], load: &[(u32, u32)]) -> Option<usize> {
        WeightedLeastConnection.pick(&dests(weights), &FlowHint::default(), &loads(load))
    }

    #[test]
    fn picks_the_smallest_overhead_per_weight() {
        // 256 / 1 against 512 / 3 (= 170.7): 256 * 3 > 512 * 1, so dests[1].
        assert_eq!(pick(&[1, 3], &[(1, 0), (2, 0)]), Some(1));
        // 256 / 1 against 1024 / 3 (= 341.3): dests[0].
        assert_eq!(pick(&[1, 3], &[(1, 0), (4, 0)]), Some(0));
        // Inactive sessions count 1/256 of an active one: 300 / 1 against 256 / 1.
        assert_eq!(pick(&[1, 1], &[(0, 300), (1, 0)]), Some(1));
    }

    #[test]
    fn a_tie_goes_to_the_first_dest() {
        // 256 / 1 against 512 / 2: 256 * 2 > 512 * 1 is false.
        assert_eq!(pick(&[1, 2], &[(1, 0), (2, 0)]), Some(0));
        // No load at all: the first dest with a weight, whatever the weights.
        assert_eq!(pick(&[1, 100], &[]), Some(0));
        assert_eq!(pick(&[0, 1, 100], &[]), Some(1));
    }

    #[test]
    fn weight_zero_is_never_picked_even_when_idle() {
        assert_eq!(pick(&[1, 0], &[(50, 0), (0, 0)]), Some(0));
        assert_eq!(
            pick(&[0, 2, 0, 1], &[(0, 0), (3, 0), (0, 0), (1, 0)]),
            Some(3)
        );
    }

    #[test]
    fn a_short_load_slice_means_zero_for_the_rest() {
        assert_eq!(pick(&[5, 1], &[(1, 0)]), Some(1));
    }

    #[test]
    fn none_when_no_dest_can_take_a_session() {
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&[0, 0, 0], &[(0, 0)]), None);
    }

    #[test]
    fn max_loads_and_weights_do_not_overflow() {
        let max = (u32::MAX, u32::MAX);
        assert_eq!(pick(&[u32::MAX, u32::MAX - 1], &[max, max]), Some(0));
        assert_eq!(pick(&[u32::MAX - 1, u32::MAX], &[max, max]), Some(1));
        assert_eq!(pick(&[1, u32::MAX], &[(0, 0), max]), Some(0));
    }

    #[test]
    fn sessions_follow_the_weights_when_each_pick_adds_one() {
        let d = dests(&[1, 2, 0, 3]);
        let mut load = vec![DestLoad::default(); d.len()];
        let mut first = Vec::new();
        for n in 0..600 {
            let i = WeightedLeastConnection
                .pick(&d, &FlowHint::default(), &load)
                .unwrap();
            if n < 6 {
                first.push(i);
            }
            load[i].active += 1;
        }
        // Ratios 0/1 0/2 0/3 tie: dests[0]; then 1/1 > 0: dests[1]; then dests[3] twice, ...
        assert_eq!(first, [0, 1, 3, 3, 1, 3]);
        let active: Vec<u32> = load.iter().map(|l| l.active).collect();
        assert_eq!(active, [100, 200, 0, 300]);
    }

    proptest! {
        /// The pick has a non-zero weight and the least overhead per weight of those that do,
        /// and every earlier dest with a weight has a strictly greater one; None iff no weight.
        #[test]
        fn pick_is_the_first_least_loaded_per_weight(
            dl in prop::collection::vec(
                (prop_oneof![Just(0u32), 1u32..8], (0u32..4, 0u32..600)), 0..12),
            short in 0usize..3,
        ) {
            let (weights, mut load): (Vec<u32>, Vec<(u32, u32)>) = dl.into_iter().unzip();
            load.truncate(load.len().saturating_sub(short));
            let d = dests(&weights);
            let l = loads(&load);
            // overhead(i) / weight(i) compared with overhead(j) / weight(j), as fractions.
            let ratio = |i: usize| (load_of(&l, i).overhead(), u64::from(weights[i]));
            let less = |(a, b): (u64, u64), (c, e): (u64, u64)| a * e < c * b;
            match WeightedLeastConnection.pick(&d, &FlowHint::default(), &l) {
                None => prop_assert!(weights.iter().all(|&w| w == 0)),
                Some(p) => {
                    prop_assert!(weights[p] > 0);
                    let live = (0..weights.len()).filter(|&j| weights[j] > 0);
                    for j in live {
                        prop_assert!(!less(ratio(j), ratio(p)), "dest {} is less loaded", j);
                        if j < p {
                            prop_assert!(less(ratio(p), ratio(j)), "dest {} ties earlier", j);
                        }
                    }
                }
            }
        }
    }
}
