//! Interleaved weighted round-robin scheduling, as Linux IPVS does it
//! (`net/netfilter/ipvs/ip_vs_wrr.c`).
//!
//! The state is a cursor `cl` (the dest picked last, or "before the first"), a current weight
//! `cw`, a maximum `mw` and a step `di`:
//! - `di` is the gcd of the non-zero weights (1 if there are none);
//! - `mw` is the largest weight minus `di - 1`, so that the last pass runs at `cw = 1` and
//!   still catches a dest whose weight fell below `di`;
//! - a pick walks forward from the dest after `cl` and takes the first dest whose weight is at
//!   least `cw`; each time the walk wraps past the end, `cw` drops by `di`, and once it is no
//!   longer positive it starts again at `mw`. A walk that has checked every dest at the lowest
//!   weight without a match gives no pick.
//!
//! Pass after pass, each dest is picked `weight / di` times per cycle of `sum / di` picks,
//! interleaved: weights {4, 3, 2} give `A A B A B C A B C`. A dest with weight 0 is never
//! picked; neither the flow hint nor the dests' load plays any part. After [`update`](Scheduler::update) the walk restarts before the first dest and
//! `cw` is kept if it is still valid (clamped to the new `mw`, and moved onto the new `di` grid),
//! exactly as `ip_vs_wrr_dest_changed` does.

use crate::dest::Dest;
use crate::scheduler::{DestLoad, FlowHint, Scheduler};

/// Weighted round-robin scheduler state for one service on one worker.
///
/// Weights are held as `i64` so that any `u32` weight works without overflow, even one that
/// was never validated against [`MAX_WEIGHT`](crate::MAX_WEIGHT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Index of the dest picked last, or None for "before the first dest" (the list head).
    cl: Option<usize>,
    /// The current weight: this pass picks dests with a weight of at least `cw`.
    cw: i64,
    /// The weight of the first pass: the largest weight minus `di - 1`; 0 when no dest has one.
    mw: i64,
    /// The step between passes: the gcd of the non-zero weights, or 1.
    di: i64,
}

impl WeightedRoundRobin {
    /// A weighted round-robin scheduler for `dests`, starting before the first dest with
    /// `cw = mw` (`ip_vs_wrr_init_svc`).
    pub fn new(dests: &[Dest]) -> WeightedRoundRobin {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        WeightedRoundRobin {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[Dest]) {
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            // Back onto the grid mw, mw - di, ..., 1 (all ≡ 1 mod di).
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], _hint: &FlowHint, _load: &[DestLoad]) -> Option<usize> {
        if self.mw <= 0 {
            return None;
        }
        // Where this walk started (None: the head, before the first dest).
        let last = self.cl.filter(|&i| i < dests.len());
        // The dest at which the final pass stops, once set.
        let mut stop = None;
        let mut last_pass = false;
        let mut restarted = false;
        let mut from = last.map_or(0, |i| i + 1);
        loop {
            for (i, d) in dests.iter().enumerate().skip(from) {
                if i64::from(d.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            // Wrapped past the end: next pass, at a lower weight.
            from = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Every dest has been checked at the lowest weight: either that pass was the
                // one just finished, or the walk started at the head and has covered it all.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The dests after `last` were checked at the lowest weight before the restart;
                // now check the ones up to and including `last`, then stop.
                stop = last;
            }
        }
    }
}

/// The gcd of the non-zero weights of `dests`, or 1 if none has a weight.
fn gcd_weight(dests: &[Dest]) -> i64 {
    let g = dests
        .iter()
        .map(|d| i64::from(d.weight))
        .filter(|&w| w > 0)
        .fold(0, gcd);
    if g > 0 {
        g
    } else {
        1
    }
}

/// The largest weight of `dests`, 0 if there are none.
fn max_weight(dests: &[Dest]) -> i64 {
    dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0)
}

/// The greatest common divisor of two non-negative numbers (`gcd(0, b) = b`).
fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dests, gcd as gcd32};
    use proptest::prelude::*;

    /// `n` picks from `wrr` over `d`, as letters (A is dests[0]), `-` for None.
    fn letters(wrr: &mut WeightedRoundRobin, d: &[Dest], n: usize) -> String {
        (0..n)
            .map(|_| match wrr.pick(d, &FlowHint::default(), &[]) {
                Some(i) => char::from(b'A' + u8::try_from(i).unwrap_or(25)),
                None => '-',
            })
            .collect()
    }

    /// A new scheduler over `weights` and its first `n` picks, as letters.
    fn sequence(weights: &[u32], n: usize) -> String {
        let d = dests(weights);
        letters(&mut WeightedRoundRobin::new(&d), &d, n)
    }

    #[test]
    fn ipvs_sequence_4_3_2() {
        assert_eq!(sequence(&[4, 3, 2], 27), "AABABCABC".repeat(3));
    }

    #[test]
    fn ipvs_sequence_5_1_1() {
        assert_eq!(sequence(&[5, 1, 1], 21), "AAAAABC".repeat(3));
    }

    #[test]
    fn ipvs_sequence_4_2_uses_the_gcd() {
        assert_eq!(sequence(&[4, 2], 12), "AAB".repeat(4));
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        assert_eq!(sequence(&[7, 7, 7], 9), "ABC".repeat(3));
    }

    #[test]
    fn only_dest_with_weight_takes_everything() {
        assert_eq!(sequence(&[0, 3, 0], 6), "BBBBBB");
    }

    #[test]
    fn none_when_every_weight_is_zero() {
        assert_eq!(sequence(&[0, 0], 3), "---");
        assert_eq!(sequence(&[], 2), "--");
    }

    #[test]
    fn update_with_new_weights_gives_new_proportions() {
        let mut d = dests(&[4, 3, 2]);
        let mut wrr = WeightedRoundRobin::new(&d);
        assert_eq!(letters(&mut wrr, &d, 4), "AABA");
        d[0].weight = 1;
        d[2].weight = 5;
        wrr.update(&d);
        // cw was 2: still valid (mw is now 5), so the walk restarts at the head with cw = 2:
        // passes at cw 2 (B C) and 1 (A B C), then a new cycle at 5 (C), 4 (C), 3 (B C)...
        assert_eq!(letters(&mut wrr, &d, 9), "BCABCCCBC");
        let seq = letters(&mut wrr, &d, 9 * 3);
        for (letter, want) in [('A', 3), ('B', 9), ('C', 15)] {
            assert_eq!(
                seq.chars().filter(|&c| c == letter).count(),
                want,
                "{letter}"
            );
        }
    }

    #[test]
    fn update_moves_cw_onto_the_new_grid() {
        let mut d = dests(&[3, 1]);
        let mut wrr = WeightedRoundRobin::new(&d);
        assert_eq!(letters(&mut wrr, &d, 2), "AA"); // cw is now 2
        d[0].weight = 4;
        d[1].weight = 2;
        wrr.update(&d);
        // di = 2, mw = 3: cw 2 → (2 / 2) * 2 + 1 = 3, the first pass of the new cycle.
        assert_eq!(wrr.cw, 3);
        assert_eq!(letters(&mut wrr, &d, 6), "AABAAB");
    }

    #[test]
    fn draining_all_dests_then_restoring_one() {
        let mut d = dests(&[2, 1]);
        let mut wrr = WeightedRoundRobin::new(&d);
        assert_eq!(letters(&mut wrr, &d, 2), "AA");
        for x in &mut d {
            x.weight = 0;
        }
        wrr.update(&d);
        assert_eq!(letters(&mut wrr, &d, 2), "--");
        d[1].weight = 9;
        wrr.update(&d);
        assert_eq!(letters(&mut wrr, &d, 3), "BBB");
    }

    #[test]
    fn stale_state_stays_in_range_and_skips_weight_zero() {
        let d = dests(&[4, 3, 2]);
        let mut wrr = WeightedRoundRobin::new(&d);
        let _ = letters(&mut wrr, &d, 5);
        // No update: a shorter slice, then one with every weight at 0.
        assert!(!letters(&mut wrr, &d[..1], 4).contains(['B', 'C', '-']));
        let zero = dests(&[0, 0, 0]);
        assert_eq!(letters(&mut wrr, &zero, 3), "---");
        assert_eq!(letters(&mut wrr, &[], 2), "--");
    }

    #[test]
    fn max_weights_do_not_overflow() {
        let d = dests(&[u32::MAX, crate::MAX_WEIGHT, 1]);
        let mut wrr = WeightedRoundRobin::new(&d);
        assert_eq!(letters(&mut wrr, &d, 3), "AAA");
    }

    /// Counts of each dest over `n` picks; panics the proptest on a None.
    fn counts(
        wrr: &mut WeightedRoundRobin,
        d: &[Dest],
        n: usize,
    ) -> Result<Vec<u32>, TestCaseError> {
        let mut count = vec![0u32; d.len()];
        for _ in 0..n {
            let i = wrr.pick(d, &FlowHint::default(), &[]);
            prop_assert!(i.is_some(), "no pick while some weight is non-zero");
            if let Some(i) = i {
                count[i] += 1;
            }
        }
        Ok(count)
    }

    /// The length of one wrr cycle over `weights` and the gcd of the non-zero ones.
    fn cycle(weights: &[u32]) -> (usize, u32) {
        let g = weights.iter().fold(0, |g, &w| gcd32(g, w)).max(1);
        let sum: u32 = weights.iter().sum();
        (usize::try_from(sum / g).unwrap_or(0), g)
    }

    proptest! {
        /// Over one full cycle (sum / gcd picks) each dest is picked exactly weight / gcd
        /// times, from a fresh scheduler and from anywhere in the cycle.
        #[test]
        fn one_cycle_gives_exact_proportions(
            weights in prop::collection::vec(0u32..=20, 1..=12),
            warmup in 0usize..60,
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let d = dests(&weights);
            let (len, g) = cycle(&weights);
            let mut wrr = WeightedRoundRobin::new(&d);
            let fresh = counts(&mut wrr, &d, len)?;
            let _ = counts(&mut wrr, &d, warmup)?;
            let later = counts(&mut wrr, &d, len)?;
            let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
            prop_assert_eq!(&fresh, &want);
            prop_assert_eq!(&later, &want);
        }

        /// Weight-0 dests are never picked, and there is no pick iff every weight is 0.
        #[test]
        fn none_iff_all_zero_and_zero_never_picked(
            weights in prop::collection::vec(prop_oneof![Just(0u32), 0u32..=20], 0..=12),
            n in 1usize..100,
        ) {
            let d = dests(&weights);
            let all_zero = weights.iter().all(|&w| w == 0);
            let mut wrr = WeightedRoundRobin::new(&d);
            for _ in 0..n {
                match wrr.pick(&d, &FlowHint::default(), &[]) {
                    Some(i) => {
                        prop_assert!(!all_zero);
                        prop_assert!(weights[i] > 0, "picked dest {} with weight 0", i);
                    }
                    None => prop_assert!(all_zero),
                }
            }
        }

        /// After new weights and an `update` mid-cycle, one cycle gives the new proportions.
        #[test]
        fn update_gives_the_new_proportions(
            pairs in prop::collection::vec((0u32..=20, 0u32..=20), 1..=12),
            warmup in 0usize..60,
        ) {
            let (before, after): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
            prop_assume!(after.iter().any(|&w| w > 0));
            let mut d = dests(&before);
            let mut wrr = WeightedRoundRobin::new(&d);
            for _ in 0..warmup {
                let _ = wrr.pick(&d, &FlowHint::default(), &[]);
            }
            for (x, w) in d.iter_mut().zip(&after) {
                x.weight = *w;
            }
            wrr.update(&d);
            let (len, g) = cycle(&after);
            let want: Vec<u32> = after.iter().map(|w| w / g).collect();
            prop_assert_eq!(counts(&mut wrr, &d, len)?, want);
        }
    }
}
