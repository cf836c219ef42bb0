//! Interleaved weighted round-robin scheduling, as Linux IPVS does it
//! (`net/netfilter/ipvs/ip_vs_wrr.c`, the code of Linux 6.x, unchanged in substance since
//! 3.11).
//!
//! The state is IPVS's `struct ip_vs_wrr_mark`: a cursor `cl` (the dest picked last, or the
//! list head), a current weight `cw`, a maximum `mw` and a step `di`:
//! - `di` is the gcd of the non-zero weights (1 if there are none);
//! - `mw` is the largest weight minus `di - 1`, so that the last pass runs at `cw = 1` and
//!   still catches a dest whose weight fell below `di`;
//! - a pick (`ip_vs_wrr_schedule`) walks forward from the dest after `cl` and takes the first
//!   dest whose weight is at least `cw`; each time the walk wraps past the end, `cw` drops by
//!   `di`, and once it is no longer positive it starts again at `mw`. A walk that has checked
//!   every dest at the lowest weight without a match gives no pick.
//!
//! The dests are walked in the service's order, which is IPVS's: newest first
//! ([`Service::add_dest`](crate::Service::add_dest)). A dest with weight 0 is never picked
//! (IPVS also skips dests flagged overloaded; rvs has no connection thresholds, so no dest
//! is); neither the flow hint nor the dests' load plays any part.
//!
//! **Where a sequence starts.** IPVS creates a service without dests (`cw = mw = 0`) and calls
//! `ip_vs_wrr_dest_changed` on every dest added, edited or deleted: the cursor goes back to the
//! head, `di` and `mw` are computed again, and `cw` is kept if it is still valid (set to `mw`
//! when it is 0 or above it, moved onto the new `di` grid otherwise). So the first pass of a
//! service whose dests were added one by one is not always the top weight: rs1 (5), rs2 (3),
//! rs3 (1) added in that order leave `cw = 1`, and the first picks are rs3 rs2 rs1 (the pass
//! at weight 1), then rs1 rs1 rs2 rs1 rs2 rs1 (passes 5, 4, 3, 2). [`WeightedRoundRobin::new`]
//! gives that state for dests as a service holds them (replaying the adds, oldest first);
//! [`update`](Scheduler::update) is `ip_vs_wrr_dest_changed`; [`WeightedRoundRobin::bound`] is
//! `ip_vs_wrr_init_svc` on a service that already has its dests (`-E -s wrr` switching a
//! service to wrr), whose first pass is the top weight.
//!
//! Pass after pass, each dest is picked `weight / di` times per cycle of `sum / di` picks,
//! interleaved: weights {4, 3, 2} from the top weight give `A A B A B C A B C`.

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
    /// The scheduler of a service created with wrr and no dests, then given `dests` one by one
    /// as `ipvsadm -a` adds them: `dests` are in the service's order (newest first), so they
    /// were added from the last to the first, each followed by `ip_vs_wrr_dest_changed`. The
    /// walk starts at the list head.
    ///
    /// This is the state of a service as `ipvsadm -A` and `-a` (or `-R`) build it, and of a
    /// service from rvsd's configuration file, whose dests are added in the file's order.
    pub fn new(dests: &[Dest]) -> WeightedRoundRobin {
        // ip_vs_wrr_init_svc on no dests: mw = 0 - (1 - 1), cw = mw.
        let mut s = WeightedRoundRobin {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
        };
        // The gcd and the largest weight of the dests added so far, kept as each is added
        // (the same as gcd_weight and max_weight over `dests[first..]`).
        let (mut g, mut max) = (0, 0);
        for d in dests.iter().rev() {
            let w = i64::from(d.weight);
            if w > 0 {
                g = gcd(g, w);
            }
            max = max.max(w);
            s.changed(if g > 0 { g } else { 1 }, max);
        }
        s
    }

    /// The heart of `ip_vs_wrr_dest_changed` for a service whose non-zero weights have the
    /// gcd `di` (1 if none) and whose largest weight is `max`.
    fn changed(&mut self, di: i64, max: i64) {
        self.cl = None;
        self.di = di;
        self.mw = max - (di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            // Back onto the grid mw, mw - di, ..., 1 (all ≡ 1 mod di).
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// The scheduler a service that already has `dests` gets when it is switched to wrr
    /// (`ip_vs_wrr_init_svc` on a bound service): at the list head, `cw = mw`, so the first
    /// pass is the top weight.
    pub fn bound(dests: &[Dest]) -> WeightedRoundRobin {
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

    /// `ip_vs_wrr_dest_changed`, IPVS's answer to a dest added, edited or deleted: back to the
    /// list head, `di` and `mw` computed again, `cw` kept if still valid.
    fn update(&mut self, dests: &[Dest]) {
        self.changed(gcd_weight(dests), max_weight(dests));
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

    /// A scheduler bound to `weights` as they stand (`ip_vs_wrr_init_svc`: `cw = mw`) and its
    /// first `n` picks, as letters.
    fn sequence(weights: &[u32], n: usize) -> String {
        let d = dests(weights);
        letters(&mut WeightedRoundRobin::bound(&d), &d, n)
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
        let mut wrr = WeightedRoundRobin::bound(&d);
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
        let mut wrr = WeightedRoundRobin::bound(&d);
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
        let mut wrr = WeightedRoundRobin::bound(&d);
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
        let mut wrr = WeightedRoundRobin::bound(&d);
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
        let mut wrr = WeightedRoundRobin::bound(&d);
        assert_eq!(letters(&mut wrr, &d, 3), "AAA");
    }

    /// A wrr service whose dests rs1, rs2, ... (10.0.0.1, 10.0.0.2, ...) were added in that
    /// order with these weights, and its scheduler as the adds left it.
    fn added(weights: &[u32]) -> (crate::Service, WeightedRoundRobin) {
        let key = crate::ServiceKey {
            proto: crate::Proto::Tcp,
            vip: core::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            port: 80,
        };
        let mut svc = crate::Service::new(key, crate::SchedKind::Wrr).unwrap();
        for d in dests(weights) {
            svc.add_dest(d).unwrap();
        }
        let wrr = WeightedRoundRobin::new(svc.dests());
        (svc, wrr)
    }

    /// `n` picks as the numbers of the dests picked (rs3 → '3'), `-` for None.
    fn rs(wrr: &mut WeightedRoundRobin, d: &[Dest], n: usize) -> String {
        (0..n)
            .map(|_| match wrr.pick(d, &FlowHint::default(), &[]) {
                Some(i) => match d[i].addr {
                    core::net::IpAddr::V4(a) => char::from(b'0' + a.octets()[3]),
                    core::net::IpAddr::V6(_) => '?',
                },
                None => '-',
            })
            .collect()
    }

    /// rs1 (5), rs2 (3), rs3 (1) added in that order, worked out from `ip_vs_wrr.c`:
    /// - the list is rs3, rs2, rs1 (each new dest at the head);
    /// - adding rs1: di = 5, mw = 5 - 4 = 1, cw was 0 so cw = 1; adding rs2: di = 1, mw = 5,
    ///   cw = 1 is valid and stays; adding rs3: the same, cw = 1; cl = head;
    /// - picks at cw 1 from the head: rs3, rs2, rs1; past the end cw drops to 0, so it is
    ///   mw = 5: rs1; cw 4: rs1; cw 3: rs2, rs1; cw 2: rs2, rs1; cw 1: rs3, rs2, rs1; again.
    #[test]
    fn dests_added_5_3_1_pick_as_a_linux_director() {
        let (svc, mut wrr) = added(&[5, 3, 1]);
        assert_eq!((wrr.cl, wrr.cw, wrr.mw, wrr.di), (None, 1, 5, 1));
        let d = svc.dests();
        assert_eq!(rs(&mut wrr, d, 9), "321112121");
        assert_eq!(rs(&mut wrr, d, 18), "321112121".repeat(2));
        // Bound to the same list as it stands (`-E -s wrr`): cw = mw = 5 first.
        let mut bound = WeightedRoundRobin::bound(d);
        assert_eq!(rs(&mut bound, d, 9), "112121321");
    }

    /// After rs3 rs2 rs1 rs1 (cw = 5, cl = rs1), rs4 (2) is added at the head; dest_changed:
    /// cl = head, di = 1, mw = 5, cw = 5 stays. cw 5: rs1; cw 4: rs1; cw 3: rs2, rs1;
    /// cw 2: rs4, rs2, rs1; cw 1: rs4, rs3, rs2, rs1.
    #[test]
    fn a_fourth_dest_added_joins_at_the_head() {
        let (mut svc, mut wrr) = added(&[5, 3, 1]);
        assert_eq!(rs(&mut wrr, svc.dests(), 4), "3211");
        svc.add_dest(dests(&[0, 0, 0, 2])[3]).unwrap();
        wrr.update(svc.dests());
        assert_eq!(rs(&mut wrr, svc.dests(), 11), "11214214321");
    }

    /// After rs3 rs2 rs1 rs1 (cw = 5), rs2 is deleted: list rs3, rs1, dest_changed: cl = head,
    /// di = 1, mw = 5, cw = 5 stays. cw 5, 4, 3, 2: rs1 each; cw 1: rs3, rs1; then rs1 at 5.
    #[test]
    fn deleting_a_dest_restarts_at_the_head() {
        let (mut svc, mut wrr) = added(&[5, 3, 1]);
        assert_eq!(rs(&mut wrr, svc.dests(), 4), "3211");
        let rs2 = svc.dests()[1];
        svc.remove_dest(rs2.addr, rs2.port).unwrap();
        wrr.update(svc.dests());
        assert_eq!(rs(&mut wrr, svc.dests(), 7), "1111311");
    }

    /// After six picks (rs3 rs2 rs1 rs1 rs1 rs2: cw = 3, cl = rs2), rs1's weight goes 5 → 2:
    /// list rs3 (1), rs2 (3), rs1 (2); dest_changed: cl = head, di = 1, mw = 3, cw = 3 stays.
    /// cw 3: rs2; cw 2: rs2, rs1; cw 1: rs3, rs2, rs1; cw 3: rs2. (Had the cursor stayed on
    /// rs2, the walk would have gone on past it: rs2 at cw 2 would come first, then rs1.)
    #[test]
    fn editing_a_weight_restarts_at_the_head() {
        let (mut svc, mut wrr) = added(&[5, 3, 1]);
        assert_eq!(rs(&mut wrr, svc.dests(), 6), "321112");
        let mut rs1 = svc.dests()[2];
        rs1.weight = 2;
        svc.edit_dest(rs1).unwrap();
        wrr.update(svc.dests());
        assert_eq!(rs(&mut wrr, svc.dests(), 7), "2213212");
    }

    /// Weight 0 is skipped; adds that leave a gcd above 1 put cw on its grid: rs1 (4), rs2 (0),
    /// rs3 (2) added: rs1: di 4, mw 1, cw 0 → 1; rs2 (0): di 4, mw 1, cw 1 stays; rs3: di 2,
    /// mw 4 - 1 = 3, cw 1 → (1 / 2) * 2 + 1 = 1. List rs3, rs2, rs1. cw 1: rs3, rs1;
    /// cw 3 (mw): rs1; cw 1: rs3, rs1; ...
    #[test]
    fn weight_zero_is_skipped_and_cw_stays_on_the_gcd_grid() {
        let (svc, mut wrr) = added(&[4, 0, 2]);
        assert_eq!((wrr.cw, wrr.mw, wrr.di), (1, 3, 2));
        assert_eq!(rs(&mut wrr, svc.dests(), 9), "311311311");
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
            let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
            for mut wrr in [WeightedRoundRobin::new(&d), WeightedRoundRobin::bound(&d)] {
                let fresh = counts(&mut wrr, &d, len)?;
                let _ = counts(&mut wrr, &d, warmup)?;
                let later = counts(&mut wrr, &d, len)?;
                prop_assert_eq!(&fresh, &want);
                prop_assert_eq!(&later, &want);
            }
        }

        /// `new` is the state after `ip_vs_wrr_dest_changed` for each dest added, oldest (the
        /// last in the list) first, from a service created without dests.
        #[test]
        fn new_replays_the_adds_oldest_first(
            weights in prop::collection::vec(prop_oneof![Just(0u32), 0u32..=40], 0..=12),
        ) {
            let d = dests(&weights);
            let mut replayed = WeightedRoundRobin::bound(&[]);
            prop_assert_eq!((replayed.cw, replayed.mw, replayed.di), (0, 0, 1));
            for first in (0..d.len()).rev() {
                replayed.update(&d[first..]);
            }
            prop_assert_eq!(WeightedRoundRobin::new(&d), replayed);
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
