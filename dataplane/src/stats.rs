//! Counters a worker publishes for the control plane, without locks.
//!
//! Each worker owns one [`WorkerStats`] block and is its only writer: it bumps counters with
//! relaxed loads and stores (a plain add on x86, no lock prefix, no allocation). The control
//! plane reads any time and sums over workers; it never writes (zeroing is done by keeping a
//! baseline on the reading side, as `ipvsadm -Z` users see it).
//!
//! Per dest (indexed by the stable slot the control plane assigned, see
//! [`crate::snapshot::DestSlots`]): sessions scheduled, packets and bytes in each direction,
//! and the IPVS-style active/inactive session counts (TCP ESTABLISHED is active, other TCP
//! states inactive; UDP and ICMP sessions count as active, as in IPVS).

use crate::counters::{Counter, Counters};
use crate::drop::DropReason;
use crate::snapshot::MAX_DEST_SLOTS;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Adds `n` to a counter only this thread writes.
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtracts `n` from a counter only this thread writes (never below 0).
#[inline]
fn drop_by(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).saturating_sub(n), Relaxed);
}

/// One dest's counters on one worker.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct DestCounters {
    /// Sessions scheduled to it.
    pub conns: AtomicU64,
    /// Packets client → RS.
    pub inpkts: AtomicU64,
    /// Packets RS → client (NAT and FullNAT only: DR/TUN replies bypass the director).
    pub outpkts: AtomicU64,
    /// IP bytes client → RS.
    pub inbytes: AtomicU64,
    /// IP bytes RS → client.
    pub outbytes: AtomicU64,
    /// Live active sessions.
    pub active: AtomicU64,
    /// Live inactive sessions.
    pub inactive: AtomicU64,
}

/// A plain copy of [`DestCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestSample {
    /// Sessions scheduled.
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Live active sessions.
    pub active: u64,
    /// Live inactive sessions.
    pub inactive: u64,
}

impl DestSample {
    /// Field-wise sum.
    pub fn add(&mut self, o: &DestSample) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
        self.active += o.active;
        self.inactive += o.inactive;
    }
}

impl DestCounters {
    /// A relaxed snapshot of the counters.
    pub fn sample(&self) -> DestSample {
        DestSample {
            conns: self.conns.load(Relaxed),
            inpkts: self.inpkts.load(Relaxed),
            outpkts: self.outpkts.load(Relaxed),
            inbytes: self.inbytes.load(Relaxed),
            outbytes: self.outbytes.load(Relaxed),
            active: self.active.load(Relaxed),
            inactive: self.inactive.load(Relaxed),
        }
    }
}

/// Whole-worker counters, published by the worker's slow jobs: every [`Counter`] (named
/// accessors such as `rx_packets()` come with the counter table in [`crate::counters`]), the
/// drops by reason, and a few gauges.
#[derive(Debug)]
pub struct WorkerCounters {
    /// Events by [`Counter::index`].
    pub counters: [AtomicU64; Counter::COUNT],
    /// Drops by [`DropReason::index`].
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Live sessions.
    pub sessions: AtomicU64,
    /// Loops that found work, per mille of the loops since the previous publish.
    pub busy_permille: AtomicU64,
}

impl WorkerCounters {
    /// One counter's published value.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c.index()].load(Relaxed)
    }

    /// One drop reason's published count.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()].load(Relaxed)
    }

    /// Copies the worker's own counters in (its slow jobs; the worker is the only writer).
    pub fn publish(&self, c: &Counters) {
        for (a, v) in self.counters.iter().zip(c.values()) {
            a.store(*v, Relaxed);
        }
        for (a, v) in self.drops.iter().zip(c.drops()) {
            a.store(*v, Relaxed);
        }
    }
}

/// One LIP's pressure in one worker's port pools, published by its slow jobs
/// ([`crate::lip::LipUsage`]).
#[derive(Debug, Default)]
pub struct LipGauges {
    /// The LIP (as a `u32`).
    pub addr: AtomicU64,
    /// (pool, port) pairs held by sessions.
    pub in_use: AtomicU64,
    /// Pairs in quarantine.
    pub quarantined: AtomicU64,
    /// All pairs.
    pub capacity: AtomicU64,
}

/// Everything one worker publishes.
#[derive(Debug)]
pub struct WorkerStats {
    /// Per dest slot.
    pub dests: Box<[DestCounters]>,
    /// Whole-worker counters.
    pub worker: WorkerCounters,
    /// Per LIP of the worker's pool, in the pool's order.
    pub lips: Box<[LipGauges]>,
    /// Per IPv6 LIP of the worker's IPv6 pool, in the configuration's order (`addr` holds
    /// the LIP's index there: the address does not fit the gauge).
    pub lips6: Box<[LipGauges]>,
}

impl WorkerStats {
    /// A zeroed block with room for [`MAX_DEST_SLOTS`] dests and no LIPs.
    pub fn new() -> Arc<WorkerStats> {
        Self::with_lips(0, 0)
    }

    /// A zeroed block with room for [`MAX_DEST_SLOTS`] dests, `lips` LIPs and `lips6` IPv6
    /// ones.
    pub fn with_lips(lips: usize, lips6: usize) -> Arc<WorkerStats> {
        Arc::new(WorkerStats {
            lips: (0..lips).map(|_| LipGauges::default()).collect(),
            lips6: (0..lips6).map(|_| LipGauges::default()).collect(),
            dests: (0..MAX_DEST_SLOTS)
                .map(|_| DestCounters::default())
                .collect(),
            worker: WorkerCounters {
                counters: core::array::from_fn(|_| AtomicU64::new(0)),
                drops: core::array::from_fn(|_| AtomicU64::new(0)),
                sessions: AtomicU64::new(0),
                busy_permille: AtomicU64::new(0),
            },
        })
    }

    /// (pool, LIP, port) pairs of this worker's share: (in use, all), over its LIPs of both
    /// families.
    pub fn lip_pairs(&self) -> (u64, u64) {
        self.lips
            .iter()
            .chain(self.lips6.iter())
            .fold((0, 0), |(u, c), g| {
                (u + g.in_use.load(Relaxed), c + g.capacity.load(Relaxed))
            })
    }

    /// Counters of dest slot `slot` (the last slot absorbs out-of-range indices).
    #[inline]
    pub fn dest(&self, slot: u32) -> &DestCounters {
        let i = (slot as usize).min(self.dests.len() - 1);
        &self.dests[i]
    }

    /// A new session of dest `slot`, active or not.
    #[inline]
    pub fn session_opened(&self, slot: u32, active: bool) {
        let d = self.dest(slot);
        bump(&d.conns, 1);
        bump(if active { &d.active } else { &d.inactive }, 1);
    }

    /// A session of dest `slot` installed from a peer director (session sync): counted
    /// active or inactive like any, but not in `conns`, which counts the connections this
    /// director scheduled (as IPVS's backup does: a synced connection binds its dest, it is
    /// not scheduled).
    #[inline]
    pub fn session_installed(&self, slot: u32, active: bool) {
        let d = self.dest(slot);
        bump(if active { &d.active } else { &d.inactive }, 1);
    }

    /// A session of dest `slot` changed between active and inactive.
    #[inline]
    pub fn session_moved(&self, slot: u32, was_active: bool, active: bool) {
        if was_active == active {
            return;
        }
        let d = self.dest(slot);
        if active {
            drop_by(&d.inactive, 1);
            bump(&d.active, 1);
        } else {
            drop_by(&d.active, 1);
            bump(&d.inactive, 1);
        }
    }

    /// A session of dest `slot` ended.
    #[inline]
    pub fn session_closed(&self, slot: u32, active: bool) {
        let d = self.dest(slot);
        drop_by(if active { &d.active } else { &d.inactive }, 1);
    }

    /// A packet of `bytes` IP bytes for dest `slot`, client → RS when `inbound`.
    #[inline]
    pub fn packet(&self, slot: u32, inbound: bool, bytes: u64) {
        let d = self.dest(slot);
        if inbound {
            bump(&d.inpkts, 1);
            bump(&d.inbytes, bytes);
        } else {
            bump(&d.outpkts, 1);
            bump(&d.outbytes, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_sessions_and_packets() {
        let s = WorkerStats::new();
        s.session_opened(3, false);
        s.packet(3, true, 60);
        s.session_moved(3, false, true);
        s.packet(3, false, 1500);
        let d = s.dest(3).sample();
        assert_eq!(
            d,
            DestSample {
                conns: 1,
                inpkts: 1,
                outpkts: 1,
                inbytes: 60,
                outbytes: 1500,
                active: 1,
                inactive: 0
            }
        );
        s.session_closed(3, true);
        assert_eq!(s.dest(3).sample().active, 0);
        // Never below zero, and out-of-range slots are absorbed, not a panic.
        s.session_closed(3, true);
        assert_eq!(s.dest(3).sample().active, 0);
        s.packet(u32::MAX, true, 1);
        assert_eq!(s.dest(u32::MAX).sample().inpkts, 1);
    }
}
