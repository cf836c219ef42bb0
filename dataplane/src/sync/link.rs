//! Between one worker and the sync daemon: two bounded lock-free rings of [`SyncRecord`]s
//! and a few atomics. The worker touches them only in its slow jobs (never per packet); the
//! daemon never blocks a worker: a full ring refuses a record, and whoever pushed counts it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

use super::record::SyncRecord;

/// Records a ring holds by default, each way: at 88 bytes a record (the size of an IPv6
/// session's, the largest), 704 KiB per worker and direction; a sweep that meets a full ring
/// waits for the next slow job.
pub const DEFAULT_DEPTH: usize = 8192;

/// One worker's end of session sync.
#[derive(Debug)]
pub struct SyncLink {
    /// Worker → daemon: sessions and templates to send.
    outbound: ArrayQueue<SyncRecord>,
    /// Daemon → worker: peers' records to install.
    inbound: ArrayQueue<SyncRecord>,
    /// Whether the worker exports (a master daemon runs).
    export: AtomicBool,
    /// Full sweeps asked for (bulk sync): the worker starts one when this moves.
    sweeps_asked: AtomicU32,
    /// The last sweep request the worker has finished.
    sweeps_done: AtomicU32,
    /// A refresh sweep at most this often (ms; 0: only when asked).
    refresh_ms: AtomicU64,
}

impl SyncLink {
    /// A link whose rings hold `depth` records each way (at least 1).
    pub fn new(depth: usize) -> SyncLink {
        SyncLink {
            outbound: ArrayQueue::new(depth.max(1)),
            inbound: ArrayQueue::new(depth.max(1)),
            export: AtomicBool::new(false),
            sweeps_asked: AtomicU32::new(0),
            sweeps_done: AtomicU32::new(0),
            refresh_ms: AtomicU64::new(0),
        }
    }

    /// Starts or stops exporting (a master daemon started or stopped). Stopping drops what
    /// waits in the outbound ring.
    pub fn set_export(&self, on: bool, refresh_ms: u64) {
        self.refresh_ms.store(refresh_ms, Relaxed);
        self.export.store(on, Relaxed);
        if !on {
            while self.outbound.pop().is_some() {}
        }
    }

    /// Whether the worker is asked to export.
    pub fn exporting(&self) -> bool {
        self.export.load(Relaxed)
    }

    /// The refresh period the daemon asked for (ms; 0: none).
    pub fn refresh_ms(&self) -> u64 {
        self.refresh_ms.load(Relaxed)
    }

    /// Asks the worker for a sweep of its whole table (a peer asked for a bulk sync);
    /// returns the request's number for [`sweep_finished`](Self::sweep_finished).
    pub fn request_sweep(&self) -> u32 {
        self.sweeps_asked.fetch_add(1, Relaxed).wrapping_add(1)
    }

    /// Whether the worker has finished sweep request `n` (or a later one).
    pub fn sweep_finished(&self, n: u32) -> bool {
        self.sweeps_done.load(Relaxed).wrapping_sub(n) < u32::MAX / 2
    }

    /// The daemon takes the next record to send.
    pub fn pop_out(&self) -> Option<SyncRecord> {
        self.outbound.pop()
    }

    /// The daemon hands a peer's record to the worker; gives it back if the ring is full.
    pub fn post_in(&self, r: SyncRecord) -> Result<(), SyncRecord> {
        self.inbound.push(r)
    }

    /// Records waiting to be sent.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// Records waiting to be installed.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// The worker queues a record; gives it back if the ring is full.
    pub fn push_out(&self, r: SyncRecord) -> Result<(), SyncRecord> {
        self.outbound.push(r)
    }

    /// Whether the outbound ring has room for `n` more records (a sweep's step).
    pub(crate) fn room_out(&self) -> usize {
        self.outbound.capacity() - self.outbound.len()
    }

    /// The worker takes the next record to install.
    pub fn pop_in(&self) -> Option<SyncRecord> {
        self.inbound.pop()
    }

    /// The newest sweep request.
    pub fn sweeps_asked(&self) -> u32 {
        self.sweeps_asked.load(Relaxed)
    }

    /// The worker finished the sweep it started for request `n` (called by the worker; public
    /// for tests that stand in for one).
    pub fn finish_sweep(&self, n: u32) {
        self.sweeps_done.store(n, Relaxed);
    }
}

impl Default for SyncLink {
    fn default() -> SyncLink {
        SyncLink::new(DEFAULT_DEPTH)
    }
}
