//! A hashed timer wheel with intrusive links and exact, budgeted expiry.
//!
//! Time is cut into ticks of `2^slot_shift` ms and the wheel has `slots` buckets (a power of
//! two); a node due at `deadline` is filed in bucket `(deadline >> slot_shift) % slots`.
//! Timeouts longer than one revolution simply stay in their bucket until the revolution in
//! which they fall due (the "rounds" are recomputed from the deadline, not stored).
//!
//! The wheel stores no nodes itself: nodes live in the caller's storage (the session slab),
//! which implements [`TimerNodes`] to hold each node's [`Link`] and report its deadline. Lists
//! are circular and doubly linked, with one sentinel per bucket held by the wheel, so arm,
//! cancel and re-arm are O(1) and need no per-node bucket number.
//!
//! # Exactness
//!
//! The wheel reads each node's current deadline when it visits it, so a node is handed out by
//! the first [`Wheel::expire`] call whose `now >= deadline` (budget permitting) and never by
//! one with `now < deadline`, whatever the tick size. The tick being processed is visited
//! once: nodes due later within that tick move to a small "current" list, which is rescanned
//! only when `now` reaches the smallest deadline it may hold.
//!
//! # Lazy re-arming
//!
//! A node whose deadline moves *later* need not be re-armed: when its bucket comes up, the
//! wheel finds the deadline in the future and re-files it then (at most once per revolution).
//! This keeps the per-packet refresh to a single store. A deadline moving *earlier* must be
//! followed by [`Wheel::rearm`], otherwise the node could be visited too late.

/// The intrusive links of a timer node, stored by the caller beside the node's data.
///
/// Opaque: implementers of [`TimerNodes`] only store what the wheel gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    next: u32,
    prev: u32,
}

/// Storage of timer nodes, identified by `u32` ids below the wheel's node capacity.
///
/// The wheel only asks about nodes it has armed and not yet cancelled or handed out.
pub trait TimerNodes {
    /// The node's links, as last set by [`set_link`](TimerNodes::set_link).
    fn link(&self, node: u32) -> Link;
    /// Stores the node's links.
    fn set_link(&mut self, node: u32, link: Link);
    /// The node's deadline (ms, same clock as `now`).
    fn deadline(&self, node: u32) -> u64;
}

/// A hashed timer wheel over nodes kept in a [`TimerNodes`] store.
#[derive(Clone, Debug)]
pub struct Wheel {
    /// Sentinels: one per bucket, then the current list.
    heads: Vec<Link>,
    /// Node ids are `< base`; sentinel `k` has id `base + k`.
    base: u32,
    slot_shift: u32,
    mask: u64,
    /// The tick being processed: every bucket of an earlier tick has been visited.
    cursor: u64,
    /// Whether the bucket of `cursor` has been visited during tick `cursor`.
    cursor_done: bool,
    /// A lower bound of the deadlines in the current list (`u64::MAX` when known empty).
    current_min: u64,
    armed: usize,
}

impl Wheel {
    /// Largest number of buckets (more would not pay: each costs 8 bytes).
    pub const MAX_SLOTS: usize = 1 << 20;

    /// A wheel for node ids `0..nodes`, with ticks of `2^slot_shift` ms and `slots` buckets
    /// (rounded up to a power of two, between 1 and [`MAX_SLOTS`](Wheel::MAX_SLOTS)).
    ///
    /// One revolution lasts `slots << slot_shift` ms; longer timeouts work but cost one visit
    /// per revolution.
    ///
    /// # Panics
    ///
    /// If `nodes + slots + 1` does not fit in a `u32`, or `slot_shift >= 64`.
    pub fn new(nodes: u32, slot_shift: u32, slots: usize) -> Wheel {
        assert!(slot_shift < 64, "slot_shift must be below 64");
        let slots = slots.clamp(1, Wheel::MAX_SLOTS).next_power_of_two();
        let top = u64::from(nodes) + slots as u64 + 1;
        assert!(top <= u64::from(u32::MAX), "too many timer nodes");
        let heads = (0..=slots as u32)
            .map(|k| Link {
                next: nodes + k,
                prev: nodes + k,
            })
            .collect();
        Wheel {
            heads,
            base: nodes,
            slot_shift,
            mask: slots as u64 - 1,
            cursor: 0,
            cursor_done: false,
            current_min: u64::MAX,
            armed: 0,
        }
    }

    /// Number of buckets.
    #[inline]
    pub fn slots(&self) -> usize {
        self.heads.len() - 1
    }

    /// Tick length in ms.
    #[inline]
    pub fn tick_ms(&self) -> u64 {
        1 << self.slot_shift
    }

    /// Number of armed nodes.
    #[inline]
    pub fn len(&self) -> usize {
        self.armed
    }

    /// Whether no node is armed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// If no node is armed, moves the wheel's position up to `now` (there is nothing to visit
    /// before it). Saves the first [`expire`](Wheel::expire) of a wheel that starts far from
    /// tick 0 (a Unix-epoch clock) a sweep over every bucket.
    #[inline]
    pub fn skip_to(&mut self, now: u64) {
        let tick = now >> self.slot_shift;
        if self.armed == 0 && tick > self.cursor {
            self.cursor = tick;
            self.cursor_done = true;
            self.current_min = u64::MAX;
        }
    }

    /// Files `node` by its current deadline. The node must not be armed already.
    #[inline]
    pub fn arm<S: TimerNodes>(&mut self, nodes: &mut S, node: u32) {
        let deadline = nodes.deadline(node);
        self.file(nodes, node, deadline);
        self.armed += 1;
    }

    /// Unlinks an armed `node`; it will not be handed out by [`expire`](Wheel::expire).
    #[inline]
    pub fn cancel<S: TimerNodes>(&mut self, nodes: &mut S, node: u32) {
        self.unlink(nodes, node);
        self.armed = self.armed.saturating_sub(1);
    }

    /// Re-files an armed `node` after its deadline moved earlier (a later deadline needs no
    /// call, see the module docs).
    #[inline]
    pub fn rearm<S: TimerNodes>(&mut self, nodes: &mut S, node: u32) {
        self.unlink(nodes, node);
        let deadline = nodes.deadline(node);
        self.file(nodes, node, deadline);
    }

    /// Unlinks every armed node whose deadline is `<= now` and passes it to `f`, stopping
    /// after `budget` of them (the rest stay due for the next call). Returns how many were
    /// handed out.
    ///
    /// `f` receives the store back and may free the node; it must not touch other armed
    /// nodes' links. `now` need not be monotonic, but the wheel's position only moves forward.
    pub fn expire<S: TimerNodes>(
        &mut self,
        nodes: &mut S,
        now: u64,
        budget: usize,
        mut f: impl FnMut(&mut S, u32),
    ) -> usize {
        let now_tick = now >> self.slot_shift;
        let mut count = 0;
        let mut swept = 0;
        if budget == 0 {
            return 0;
        }
        loop {
            if self.armed == 0 {
                // Nothing to visit: jump straight to the present.
                if now_tick > self.cursor || !self.cursor_done {
                    self.cursor = self.cursor.max(now_tick);
                    self.cursor_done = true;
                }
                self.current_min = u64::MAX;
                return count;
            }

            // 1. The current list: nodes due during the cursor tick (or re-armed behind it).
            if now >= self.current_min {
                let head = self.current_head();
                let mut min = u64::MAX;
                let mut x = self.get(nodes, head).next;
                while x != head {
                    let next = self.get(nodes, x).next;
                    let deadline = nodes.deadline(x);
                    if deadline <= now {
                        self.unlink(nodes, x);
                        self.armed = self.armed.saturating_sub(1);
                        f(nodes, x);
                        count += 1;
                        if count == budget {
                            // `current_min` is still a lower bound of what is left.
                            return count;
                        }
                    } else {
                        let tick = self.tick_of(deadline);
                        if tick == self.cursor {
                            min = min.min(deadline);
                        } else {
                            self.unlink(nodes, x);
                            self.push(nodes, (tick & self.mask) as u32, x);
                        }
                    }
                    x = next;
                }
                self.current_min = min;
            }

            // 2. The bucket of the cursor tick, once per tick.
            if !self.cursor_done {
                let bucket = (self.cursor & self.mask) as u32;
                let head = self.base + bucket;
                let mut x = self.get(nodes, head).next;
                while x != head {
                    let next = self.get(nodes, x).next;
                    let deadline = nodes.deadline(x);
                    if deadline <= now {
                        self.unlink(nodes, x);
                        self.armed = self.armed.saturating_sub(1);
                        f(nodes, x);
                        count += 1;
                        if count == budget {
                            return count;
                        }
                    } else {
                        let tick = self.tick_of(deadline);
                        if tick == self.cursor {
                            self.unlink(nodes, x);
                            self.push_current(nodes, x, deadline);
                        } else if (tick & self.mask) as u32 != bucket {
                            // Refreshed lazily since it was filed: move to its real bucket.
                            self.unlink(nodes, x);
                            self.push(nodes, (tick & self.mask) as u32, x);
                        }
                        // Else due in a later revolution: stays.
                    }
                    x = next;
                }
                self.cursor_done = true;
                swept += 1;
            }

            // 3. Advance to the next tick, if `now` is past this one.
            if self.cursor >= now_tick {
                return count;
            }
            if swept >= self.slots() {
                // Every bucket was visited during this call: whatever is left is filed in the
                // bucket of its own deadline, which is after `now`.
                self.cursor = now_tick;
            } else {
                self.cursor += 1;
            }
            self.cursor_done = false;
        }
    }

    /// The tick a deadline is filed for: its own, or the cursor's if that is already past.
    #[inline]
    fn tick_of(&self, deadline: u64) -> u64 {
        (deadline >> self.slot_shift).max(self.cursor)
    }

    #[inline]
    fn file<S: TimerNodes>(&mut self, nodes: &mut S, node: u32, deadline: u64) {
        let tick = self.tick_of(deadline);
        if tick == self.cursor {
            self.push_current(nodes, node, deadline);
        } else {
            self.push(nodes, (tick & self.mask) as u32, node);
        }
    }

    #[inline]
    fn current_head(&self) -> u32 {
        self.base + self.slots() as u32
    }

    #[inline]
    fn push_current<S: TimerNodes>(&mut self, nodes: &mut S, node: u32, deadline: u64) {
        self.current_min = self.current_min.min(deadline);
        self.push(nodes, self.slots() as u32, node);
    }

    /// Links `node` first in list `list` (a bucket, or `slots()` for the current list).
    #[inline]
    fn push<S: TimerNodes>(&mut self, nodes: &mut S, list: u32, node: u32) {
        let head = self.base + list;
        let mut h = self.get(nodes, head);
        let first = h.next;
        self.set(
            nodes,
            node,
            Link {
                next: first,
                prev: head,
            },
        );
        if first == head {
            h.prev = node;
        } else {
            let mut f = self.get(nodes, first);
            f.prev = node;
            self.set(nodes, first, f);
        }
        h.next = node;
        self.set(nodes, head, h);
    }

    #[inline]
    fn unlink<S: TimerNodes>(&mut self, nodes: &mut S, node: u32) {
        let l = self.get(nodes, node);
        let mut p = self.get(nodes, l.prev);
        p.next = l.next;
        self.set(nodes, l.prev, p);
        let mut n = self.get(nodes, l.next);
        n.prev = l.prev;
        self.set(nodes, l.next, n);
    }

    #[inline]
    fn get<S: TimerNodes>(&self, nodes: &S, id: u32) -> Link {
        if id >= self.base {
            self.heads
                .get((id - self.base) as usize)
                .copied()
                .unwrap_or_default()
        } else {
            nodes.link(id)
        }
    }

    #[inline]
    fn set<S: TimerNodes>(&mut self, nodes: &mut S, id: u32, link: Link) {
        if id >= self.base {
            if let Some(h) = self.heads.get_mut((id - self.base) as usize) {
                *h = link;
            }
        } else {
            nodes.set_link(id, link);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A plain node store: links and deadlines in vectors.
    struct Nodes {
        links: Vec<Link>,
        deadlines: Vec<u64>,
    }

    impl Nodes {
        fn new(n: usize) -> Nodes {
            Nodes {
                links: vec![Link::default(); n],
                deadlines: vec![0; n],
            }
        }
    }

    impl TimerNodes for Nodes {
        fn link(&self, node: u32) -> Link {
            self.links[node as usize]
        }
        fn set_link(&mut self, node: u32, link: Link) {
            self.links[node as usize] = link;
        }
        fn deadline(&self, node: u32) -> u64 {
            self.deadlines[node as usize]
        }
    }

    fn drain(w: &mut Wheel, n: &mut Nodes, now: u64, budget: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let c = w.expire(n, now, budget, |_, x| out.push(x));
        assert_eq!(c, out.len());
        out.sort_unstable();
        out
    }

    #[test]
    fn long_timeouts_span_many_revolutions() {
        // 8 buckets of 4 ms: one revolution is 32 ms.
        let mut w = Wheel::new(16, 2, 8);
        let mut n = Nodes::new(16);
        for (i, d) in [1000u64, 33, 32, 31, 64, 5000, 1001]
            .into_iter()
            .enumerate()
        {
            n.deadlines[i] = d;
            w.arm(&mut n, i as u32);
        }
        // Step one millisecond at a time: each node comes out exactly at its deadline.
        let mut seen = Vec::new();
        for now in 0..=6000u64 {
            for x in drain(&mut w, &mut n, now, usize::MAX) {
                assert_eq!(n.deadlines[x as usize], now, "node {x}");
                seen.push(x);
            }
        }
        assert_eq!(seen.len(), 7);
        assert!(w.is_empty());
    }

    #[test]
    fn long_timeouts_with_sparse_ticks() {
        let mut w = Wheel::new(4, 2, 8);
        let mut n = Nodes::new(4);
        n.deadlines[0] = 10_000;
        w.arm(&mut n, 0);
        assert!(drain(&mut w, &mut n, 3_000, usize::MAX).is_empty());
        assert!(drain(&mut w, &mut n, 9_999, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, &mut n, 10_000, usize::MAX), [0]);
    }

    #[test]
    fn budget_limits_each_call() {
        let mut w = Wheel::new(100, 3, 16);
        let mut n = Nodes::new(100);
        for i in 0..100 {
            n.deadlines[i] = 50 + i as u64;
            w.arm(&mut n, i as u32);
        }
        assert_eq!(w.expire(&mut n, 1_000, 0, |_, _| ()), 0);
        let mut all = BTreeSet::new();
        for _ in 0..10 {
            let got = drain(&mut w, &mut n, 1_000, 10);
            assert_eq!(got.len(), 10);
            all.extend(got);
        }
        assert_eq!(all.len(), 100);
        assert!(drain(&mut w, &mut n, 1_000, 10).is_empty());
    }

    #[test]
    fn budget_stops_inside_the_current_tick() {
        let mut w = Wheel::new(10, 10, 4);
        let mut n = Nodes::new(10);
        for i in 0..10 {
            n.deadlines[i] = 100 + i as u64;
            w.arm(&mut n, i as u32);
        }
        // All ten are in the same 1024 ms tick.
        assert!(drain(&mut w, &mut n, 99, 3).is_empty());
        assert_eq!(drain(&mut w, &mut n, 104, 3).len(), 3);
        assert_eq!(drain(&mut w, &mut n, 104, 3).len(), 2);
        assert!(drain(&mut w, &mut n, 104, 3).is_empty());
        assert_eq!(drain(&mut w, &mut n, 109, 100).len(), 5);
    }

    #[test]
    fn lazy_later_and_eager_earlier() {
        let mut w = Wheel::new(2, 4, 8);
        let mut n = Nodes::new(2);
        n.deadlines[0] = 100;
        n.deadlines[1] = 100;
        w.arm(&mut n, 0);
        w.arm(&mut n, 1);
        // Node 0 is pushed far back without telling the wheel.
        n.deadlines[0] = 10_000;
        // Node 1 is pulled forward and re-armed.
        n.deadlines[1] = 20;
        w.rearm(&mut n, 1);
        assert!(drain(&mut w, &mut n, 19, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, &mut n, 20, usize::MAX), [1]);
        assert!(drain(&mut w, &mut n, 9_999, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, &mut n, 10_000, usize::MAX), [0]);
    }

    #[test]
    fn cancel_unlinks() {
        let mut w = Wheel::new(3, 0, 4);
        let mut n = Nodes::new(3);
        for i in 0..3 {
            n.deadlines[i] = 5;
            w.arm(&mut n, i as u32);
        }
        w.cancel(&mut n, 1);
        assert_eq!(w.len(), 2);
        assert_eq!(drain(&mut w, &mut n, 5, usize::MAX), [0, 2]);
    }

    #[test]
    fn huge_clock_jumps() {
        let mut w = Wheel::new(2, 4, 64);
        let mut n = Nodes::new(2);
        let t0 = 1_700_000_000_000u64; // a Unix-epoch clock
        n.deadlines[0] = t0 + 900_000;
        w.arm(&mut n, 0);
        assert!(drain(&mut w, &mut n, t0, usize::MAX).is_empty());
        n.deadlines[1] = t0 + 5;
        w.arm(&mut n, 1);
        assert!(drain(&mut w, &mut n, t0 + 4, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, &mut n, t0 + 5, usize::MAX), [1]);
        assert!(drain(&mut w, &mut n, t0 + 899_999, usize::MAX).is_empty());
        assert_eq!(drain(&mut w, &mut n, u64::MAX, usize::MAX), [0]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Arm node (if idle) at now + delay.
        Arm(u8, u64),
        /// Move an armed node's deadline later, lazily.
        Later(u8, u64),
        /// Move an armed node's deadline to now + delay and re-arm.
        Rearm(u8, u64),
        Cancel(u8),
        /// Advance the clock by `dt` (sometimes backwards) and expire with a budget.
        Expire(i64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..24u8, 0..300u64).prop_map(|(n, d)| Op::Arm(n, d)),
            2 => (0..24u8, 0..400u64).prop_map(|(n, d)| Op::Later(n, d)),
            1 => (0..24u8, 0..300u64).prop_map(|(n, d)| Op::Rearm(n, d)),
            1 => (0..24u8).prop_map(Op::Cancel),
            3 => (prop_oneof![-20..0i64, 0..40i64, 0..2_000i64], 0..6usize)
                .prop_map(|(dt, b)| Op::Expire(dt, if b == 5 { usize::MAX } else { b })),
        ]
    }

    proptest! {
        /// Small wheels (short revolutions, coarse ticks) against a set of armed deadlines.
        #[test]
        fn agrees_with_a_model(
            shift in 0u32..5,
            slots in 1usize..9,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            const N: usize = 24;
            let mut w = Wheel::new(N as u32, shift, slots);
            let mut n = Nodes::new(N);
            let mut armed = [false; N];
            let mut now = 1_000u64;
            for op in ops {
                match op {
                    Op::Arm(x, d) => {
                        let x = x as usize;
                        if !armed[x] {
                            n.deadlines[x] = now + d;
                            w.skip_to(now);
                            w.arm(&mut n, x as u32);
                            armed[x] = true;
                        }
                    }
                    Op::Later(x, d) => {
                        let x = x as usize;
                        if armed[x] {
                            n.deadlines[x] += d;
                        }
                    }
                    Op::Rearm(x, d) => {
                        let x = x as usize;
                        if armed[x] {
                            n.deadlines[x] = now + d;
                            w.rearm(&mut n, x as u32);
                        }
                    }
                    Op::Cancel(x) => {
                        let x = x as usize;
                        if armed[x] {
                            w.cancel(&mut n, x as u32);
                            armed[x] = false;
                        }
                    }
                    Op::Expire(dt, budget) => {
                        now = now.saturating_add_signed(dt);
                        let due: BTreeSet<u32> = (0..N)
                            .filter(|&x| armed[x] && n.deadlines[x] <= now)
                            .map(|x| x as u32)
                            .collect();
                        let got = drain(&mut w, &mut n, now, budget);
                        prop_assert_eq!(got.len(), due.len().min(budget));
                        for x in got {
                            prop_assert!(due.contains(&x), "node {} expired early", x);
                            armed[x as usize] = false;
                        }
                    }
                }
                prop_assert_eq!(w.len(), armed.iter().filter(|a| **a).count());
            }
        }
    }
}
