//! Round-robin scheduling, as Linux IPVS does it (`net/netfilter/ipvs/ip_vs_rr.c`).
//!
//! The walk continues from the dest after the one picked last, wraps around the end, and skips
//! dests with weight 0 (quiesced). The first pick is the first dest with a non-zero weight. If
//! the dest picked last is the only one with a weight, it is picked again; if every weight is 0
//! (or there are no dests) there is no pick and the cursor stays where it was. Neither the
//! flow hint nor the dests' load plays any part.
//!
//! Across [`update`](Scheduler::update) the cursor stays on the same dest (found again by
//! address and port), as in IPVS where it points at the list entry. If that dest was removed,
//! the cursor steps back to the dest before it (`ip_vs_rr_del_dest`), so the walk goes on
//! with the dest that followed the removed one.

use core::net::IpAddr;

use crate::dest::Dest;
use crate::scheduler::{DestLoad, FlowHint, Scheduler};

/// Round-robin scheduler state for one service on one worker: where the walk stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundRobin {
    /// The dest picked last, or None for "before the first dest".
    last: Option<Cursor>,
}

/// A position in the dests: the index of a dest and who it is, so that the position can be
/// found again after the dests change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// Index into the dests.
    index: usize,
    /// The dest's RIP.
    addr: IpAddr,
    /// The dest's port.
    port: u16,
}

impl Cursor {
    /// The cursor on `dests[index]`.
    fn at(dests: &[Dest], index: usize) -> Option<Cursor> {
        dests.get(index).map(|d| Cursor {
            index,
            addr: d.addr,
            port: d.port,
        })
    }

    /// Whether `d` is the dest this cursor was on.
    fn is(&self, d: &Dest) -> bool {
        d.addr == self.addr && d.port == self.port
    }
}

impl RoundRobin {
    /// A round-robin scheduler whose first pick is the first dest with a non-zero weight.
    ///
    /// Round robin keeps no state derived from the dests, so `dests` is not needed; it is taken
    /// to match the other schedulers.
    pub fn new(dests: &[Dest]) -> RoundRobin {
        let _ = dests;
        RoundRobin { last: None }
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[Dest]) {
        let Some(last) = self.last else { return };
        if dests.get(last.index).is_some_and(|d| last.is(d)) {
            return;
        }
        self.last = match dests.iter().position(|d| last.is(d)) {
            Some(index) => Cursor::at(dests, index),
            // Removed: step back to the dest before it (or before the first).
            None => last
                .index
                .checked_sub(1)
                .and_then(|prev| Cursor::at(dests, prev.min(dests.len().saturating_sub(1)))),
        };
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], _hint: &FlowHint, _load: &[DestLoad]) -> Option<usize> {
        let start = match self.last {
            Some(c) if c.index < dests.len() => c.index + 1,
            _ => 0,
        };
        // Each dest once, from the one after the cursor round to the cursor itself.
        let (before, after) = dests.split_at(start.min(dests.len()));
        let index = match after.iter().position(|d| d.weight > 0) {
            Some(i) => start + i,
            None => before.iter().position(|d| d.weight > 0)?,
        };
        self.last = Cursor::at(dests, index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::dests;
    use proptest::prelude::*;

    /// `n` picks from `rr` over `d`.
    fn picks(rr: &mut RoundRobin, d: &[Dest], n: usize) -> Vec<Option<usize>> {
        (0..n)
            .map(|_| rr.pick(d, &FlowHint::default(), &[]))
            .collect()
    }

    #[test]
    fn cycles_from_the_first_dest() {
        let d = dests(&[1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        let p = picks(&mut rr, &d, 7);
        assert_eq!(p, [0, 1, 2, 0, 1, 2, 0].map(Some));
    }

    #[test]
    fn ignores_weights_other_than_zero() {
        let d = dests(&[100, 1, 7]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 6), [0, 1, 2, 0, 1, 2].map(Some));
    }

    #[test]
    fn skips_weight_zero() {
        let d = dests(&[0, 3, 0, 1, 0]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 5), [1, 3, 1, 3, 1].map(Some));
    }

    #[test]
    fn only_one_dest_with_weight_is_picked_again() {
        let d = dests(&[0, 0, 5]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 3), [2, 2, 2].map(Some));
    }

    #[test]
    fn none_when_no_dest_can_take_a_session() {
        let mut rr = RoundRobin::new(&[]);
        assert_eq!(rr.pick(&[], &FlowHint::default(), &[]), None);
        let d = dests(&[0, 0]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 2), [None, None]);
    }

    #[test]
    fn drain_then_restore() {
        let mut d = dests(&[1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 2), [0, 1].map(Some));
        d[2].weight = 0;
        rr.update(&d);
        assert_eq!(picks(&mut rr, &d, 4), [0, 1, 0, 1].map(Some));
        d[2].weight = 1;
        rr.update(&d);
        assert_eq!(picks(&mut rr, &d, 4), [2, 0, 1, 2].map(Some));
    }

    #[test]
    fn removing_the_last_picked_dest_goes_on_with_its_successor() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 2), [0, 1].map(Some));
        let removed = d.remove(1);
        rr.update(&d);
        // The old dests[2] is now dests[1] and comes next.
        assert_eq!(picks(&mut rr, &d, 4), [1, 2, 0, 1].map(Some));
        assert!(d.iter().all(|x| *x != removed));
    }

    #[test]
    fn removing_the_first_dest_when_it_was_picked_last_restarts() {
        let mut d = dests(&[1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 1), [Some(0)]);
        d.remove(0);
        rr.update(&d);
        assert_eq!(picks(&mut rr, &d, 3), [0, 1, 0].map(Some));
    }

    #[test]
    fn removing_another_dest_keeps_the_cursor_on_the_same_dest() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 3), [0, 1, 2].map(Some));
        let third = d[2];
        d.remove(0);
        rr.update(&d);
        // The cursor is still on `third`, now at index 1: next is the old dests[3].
        assert_eq!(d[1], third);
        assert_eq!(picks(&mut rr, &d, 3), [2, 0, 1].map(Some));
    }

    #[test]
    fn a_shrunk_slice_without_update_stays_in_range() {
        let d = dests(&[1, 1, 1, 1]);
        let mut rr = RoundRobin::new(&d);
        assert_eq!(picks(&mut rr, &d, 4), [0, 1, 2, 3].map(Some));
        assert_eq!(picks(&mut rr, &d[..2], 3), [0, 1, 0].map(Some));
        let mut emptied = rr.clone();
        emptied.update(&[]);
        assert_eq!(emptied.pick(&[], &FlowHint::default(), &[]), None);
    }

    proptest! {
        /// Over k rounds each dest with a weight is picked exactly k times, from any start.
        #[test]
        fn each_dest_with_weight_k_times_in_k_rounds(
            weights in prop::collection::vec(0u32..=20, 1..=12),
            warmup in 0usize..30,
            k in 1usize..5,
        ) {
            let d = dests(&weights);
            let mut rr = RoundRobin::new(&d);
            let live = weights.iter().filter(|&&w| w > 0).count();
            let _ = picks(&mut rr, &d, warmup);
            let mut count = vec![0usize; d.len()];
            for p in picks(&mut rr, &d, k * live.max(1)) {
                match p {
                    Some(i) => count[i] += 1,
                    None => prop_assert_eq!(live, 0),
                }
            }
            for (w, c) in weights.iter().zip(&count) {
                prop_assert_eq!(*c, if *w > 0 { k } else { 0 });
            }
        }

        /// After new weights and an `update`, rounds again visit each dest with a weight once.
        #[test]
        fn update_keeps_rounds_fair(
            pairs in prop::collection::vec((0u32..=20, 0u32..=20), 1..=12),
            warmup in 0usize..30,
        ) {
            let (before, after): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
            let mut d = dests(&before);
            let mut rr = RoundRobin::new(&d);
            let _ = picks(&mut rr, &d, warmup);
            for (x, w) in d.iter_mut().zip(&after) {
                x.weight = *w;
            }
            rr.update(&d);
            let live = after.iter().filter(|&&w| w > 0).count();
            let mut count = vec![0usize; d.len()];
            for p in picks(&mut rr, &d, 3 * live.max(1)) {
                match p {
                    Some(i) => count[i] += 1,
                    None => prop_assert_eq!(live, 0),
                }
            }
            for (w, c) in after.iter().zip(&count) {
                prop_assert_eq!(*c, if *w > 0 { 3 } else { 0 });
            }
        }
    }
}
