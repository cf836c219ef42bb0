//! Least-connection scheduling, as Linux IPVS does it (`net/netfilter/ipvs/ip_vs_lc.c`).
//!
//! Each pick walks the dests in order and takes the one with the smallest overhead,
//! `active * 256 + inactive` ([`DestLoad::overhead`], IPVS's `ip_vs_dest_conn_overhead`):
//! - a dest with weight 0 is skipped (quiesced); any other weight plays no part;
//! - on a tie the first dest wins (IPVS replaces its candidate only on a strictly smaller
//!   overhead);
//! - a dest past the end of the load slice has no load.
//!
//! The load is what this worker knows of its own sessions, so with several workers each
//! balances its own share. IPVS also skips dests flagged overloaded (upper threshold
//! reached); rvs has no connection thresholds, so there is no such flag. The scheduler keeps no
//! state, and the flow hint plays no part.

use crate::dest::Dest;
use crate::scheduler::{DestLoad, FlowHint, Scheduler};

/// Least-connection scheduler for one service on one worker. It holds no state: each pick
/// looks at the load it is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeastConnection;

impl LeastConnection {
    /// A least-connection scheduler. It keeps nothing derived from the dests, so `dests` is not
    /// needed; it is taken to match the other schedulers.
    pub fn new(dests: &[Dest]) -> LeastConnection {
        let _ = dests;
        LeastConnection
    }
}

/// The load of `dests[i]`: `load[i]`, or none past the end of `load`.
#[inline]
pub(crate) fn load_of(load: &[DestLoad], i: usize) -> DestLoad {
    load.get(i).copied().unwrap_or_default()
}

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, dests: &[Dest]) {
        let _ = dests;
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], _hint: &FlowHint, load: &[DestLoad]) -> Option<usize> {
        // (index, overhead) of the least loaded dest so far.
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.weight == 0 {
                continue;
            }
            let doh = load_of(load, i).overhead();
            let better = match least {
                None => true,
                Some((_, loh)) => doh < loh,
            };
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dests, loads};
    use proptest::prelude::*;

    /// One pick over `weights` with `(active, inactive)` loads.
    fn pick(weights: &[u32], load: &[(u32, u32)]) -> Option<usize> {
        LeastConnection.pick(&dests(weights), &FlowHint::default(), &loads(load))
    }

    #[test]
    fn picks_the_smallest_overhead() {
        // Overheads 256, 5, 3.
        assert_eq!(pick(&[1, 1, 1], &[(1, 0), (0, 5), (0, 3)]), Some(2));
        // One active session outweighs 255 inactive ones, but not 257.
        assert_eq!(pick(&[1, 1], &[(1, 0), (0, 255)]), Some(1));
        assert_eq!(pick(&[1, 1], &[(1, 0), (0, 257)]), Some(0));
    }

    #[test]
    fn a_tie_goes_to_the_first_dest() {
        assert_eq!(pick(&[1, 1, 1], &[(0, 5), (0, 5), (0, 5)]), Some(0));
        assert_eq!(pick(&[1, 1, 1], &[(2, 0), (1, 0), (0, 256)]), Some(1)); // 512, 256, 256
        assert_eq!(pick(&[1, 1], &[]), Some(0));
    }

    #[test]
    fn weights_other_than_zero_play_no_part() {
        assert_eq!(pick(&[100, 1], &[(0, 2), (0, 1)]), Some(1));
        assert_eq!(pick(&[1, 100], &[(0, 1), (0, 1)]), Some(0));
    }

    #[test]
    fn weight_zero_is_never_picked_even_when_idle() {
        assert_eq!(pick(&[0, 1, 1], &[(0, 0), (9, 9), (5, 0)]), Some(2));
        assert_eq!(pick(&[1, 0], &[(1000, 0)]), Some(0));
    }

    #[test]
    fn a_short_load_slice_means_zero_for_the_rest() {
        assert_eq!(pick(&[1, 1, 1], &[(1, 0), (0, 1)]), Some(2));
        assert_eq!(pick(&[1, 1], &[(0, 1), (0, 0), (0, 0), (0, 0)]), Some(1));
    }

    #[test]
    fn none_when_no_dest_can_take_a_session() {
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&[0, 0], &[]), None);
    }

    #[test]
    fn max_loads_do_not_overflow() {
        let max = (u32::MAX, u32::MAX);
        assert_eq!(pick(&[1, 1], &[max, (u32::MAX, u32::MAX - 1)]), Some(1));
    }

    #[test]
    fn sessions_spread_evenly_when_each_pick_adds_one() {
        let d = dests(&[5, 1, 0, 2]);
        let mut load = vec![DestLoad::default(); d.len()];
        for _ in 0..300 {
            let i = LeastConnection
                .pick(&d, &FlowHint::default(), &load)
                .unwrap();
            load[i].active += 1;
        }
        let active: Vec<u32> = load.iter().map(|l| l.active).collect();
        assert_eq!(active, [100, 100, 0, 100]);
    }

    proptest! {
        /// The pick has a non-zero weight and the least overhead of those that do, and every
        /// earlier dest with a weight has a strictly greater overhead; None iff no weight.
        #[test]
        fn pick_is_the_first_least_loaded(
            dl in prop::collection::vec(
                (prop_oneof![Just(0u32), 1u32..5], (0u32..4, 0u32..600)), 0..12),
            short in 0usize..3,
        ) {
            let (weights, mut load): (Vec<u32>, Vec<(u32, u32)>) = dl.into_iter().unzip();
            load.truncate(load.len().saturating_sub(short));
            let d = dests(&weights);
            let l = loads(&load);
            let oh = |i: usize| load_of(&l, i).overhead();
            match LeastConnection.pick(&d, &FlowHint::default(), &l) {
                None => prop_assert!(weights.iter().all(|&w| w == 0)),
                Some(p) => {
                    prop_assert!(weights[p] > 0);
                    for (j, &w) in weights.iter().enumerate() {
                        if w > 0 && j < p {
                            prop_assert!(oh(j) > oh(p));
                        } else if w > 0 {
                            prop_assert!(oh(j) >= oh(p));
                        }
                    }
                }
            }
        }
    }
}
