//! Round-robin scheduling, as Linux IPVS does it (`net/netfilter/ipvs/ip_vs_rr.c`, the code of
//! Linux 6.x).
//!
//! IPVS keeps a cursor (`sched_data`) on the dest picked last, or on the list head before the
//! first pick. A pick walks on from the dest after the cursor, wraps around the end, and
//! skips dests with weight 0 (quiesced; IPVS also skips dests flagged overloaded, and rvs has
//! no connection thresholds to flag one). The dests are walked in the service's order, which
//! is IPVS's: newest first ([`Service::add_dest`](crate::Service::add_dest)), so rs1, rs2, rs3
//! added in that order are picked rs3, rs2, rs1, rs3, ... If the dest picked last is the only
//! one with a weight, it is picked again; if every weight is 0 (or there are no dests) there is
//! no pick and the cursor stays where it was. Neither the flow hint nor the dests' load plays
//! any part.
//!
//! Across [`update`](Scheduler::update) the cursor stays on the same dest (found again by
//! address and port), as in IPVS where it points at the list entry: rr has no `add_dest` or
//! `upd_dest`, so a dest added at the head is reached when the walk next wraps, and an edited
//! weight changes nothing but that dest's turn. If the cursor's dest was removed, the cursor
//! steps back to the dest before it, or to the head (`ip_vs_rr_del_dest`), so the walk goes on
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

    /// A service whose dests rs1, rs2, ... (10.0.0.1, ...) were added in that order with these
    /// weights, and a fresh rr scheduler (`ip_vs_rr_init_svc`: the cursor on the list head).
    fn added(weights: &[u32]) -> (crate::Service, RoundRobin) {
        let key = crate::ServiceKey {
            proto: crate::Proto::Tcp,
            vip: core::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            port: 80,
        };
        let mut svc = crate::Service::new(key, crate::SchedKind::Rr).unwrap();
        for d in dests(weights) {
            svc.add_dest(d).unwrap();
        }
        let rr = RoundRobin::new(svc.dests());
        (svc, rr)
    }

    /// `n` picks as the numbers of the dests picked (rs3 → '3'), `-` for None.
    fn rs(rr: &mut RoundRobin, d: &[Dest], n: usize) -> String {
        (0..n)
            .map(|_| match rr.pick(d, &FlowHint::default(), &[]) {
                Some(i) => match d[i].addr {
                    IpAddr::V4(a) => char::from(b'0' + a.octets()[3]),
                    IpAddr::V6(_) => '?',
                },
                None => '-',
            })
            .collect()
    }

    /// rs1, rs2, rs3 added in that order: IPVS's list is rs3, rs2, rs1 (list_add_rcu at the
    /// head) and the cursor starts on the head, so the walk is rs3, rs2, rs1, rs3, ...
    #[test]
    fn dests_added_in_order_are_picked_newest_first() {
        let (svc, mut rr) = added(&[5, 3, 1]);
        assert_eq!(rs(&mut rr, svc.dests(), 7), "3213213");
    }

    /// After rs3, rs2 the cursor is on rs2; rs4 is added at the head (rr has no add_dest, the
    /// cursor stays on rs2): the list is rs4, rs3, rs2, rs1 and the walk goes on with rs1,
    /// wraps to rs4, then rs3, rs2, rs1.
    #[test]
    fn a_dest_added_at_the_head_comes_after_the_wrap() {
        let (mut svc, mut rr) = added(&[1, 1, 1]);
        assert_eq!(rs(&mut rr, svc.dests(), 2), "32");
        svc.add_dest(dests(&[0, 0, 0, 1])[3]).unwrap();
        rr.update(svc.dests());
        assert_eq!(rs(&mut rr, svc.dests(), 5), "14321");
    }

    /// After rs3, rs2 (cursor on rs2) rs2 is deleted: ip_vs_rr_del_dest moves the cursor to
    /// the entry before rs2 (rs3, through rs2's old next, rs1, whose prev is now rs3), so the
    /// walk goes on with rs1, not back at rs3.
    #[test]
    fn deleting_the_cursors_dest_goes_on_with_the_one_after_it() {
        let (mut svc, mut rr) = added(&[1, 1, 1]);
        assert_eq!(rs(&mut rr, svc.dests(), 2), "32");
        let rs2 = svc.dests()[1];
        svc.remove_dest(rs2.addr, rs2.port).unwrap();
        rr.update(svc.dests());
        assert_eq!(rs(&mut rr, svc.dests(), 4), "1313");
        // The newest dest deleted while the cursor is on it: back to the head.
        let (mut svc, mut rr) = added(&[1, 1, 1]);
        assert_eq!(rs(&mut rr, svc.dests(), 1), "3");
        let rs3 = svc.dests()[0];
        svc.remove_dest(rs3.addr, rs3.port).unwrap();
        rr.update(svc.dests());
        assert_eq!(rs(&mut rr, svc.dests(), 3), "212");
    }

    /// An edited weight leaves the cursor where it is (rr has no upd_dest); weight 0 is
    /// skipped: after rs3, rs2, rs1 goes to 0 and the walk is rs3, rs2, rs3, ...
    #[test]
    fn an_edited_weight_keeps_the_cursor_and_weight_zero_is_skipped() {
        let (mut svc, mut rr) = added(&[1, 1, 1]);
        assert_eq!(rs(&mut rr, svc.dests(), 2), "32");
        let mut rs1 = svc.dests()[2];
        rs1.weight = 0;
        svc.edit_dest(rs1).unwrap();
        rr.update(svc.dests());
        assert_eq!(rs(&mut rr, svc.dests(), 4), "3232");
        rs1.weight = 4;
        svc.edit_dest(rs1).unwrap();
        rr.update(svc.dests());
        assert_eq!(rs(&mut rr, svc.dests(), 4), "1321");
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
