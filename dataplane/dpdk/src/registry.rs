//! Process-wide bookkeeping that keeps the safe API sound: whether the EAL runs, which ports
//! and queues have an owner, which pool each configured port receives into, and how many
//! pools are alive. Control path only (a mutex); nothing here is touched per packet.
//!
//! The rules it enforces:
//! - DPDK objects are made only while the EAL runs, and [`crate::Eal`]'s drop runs
//!   `rte_eal_cleanup` only when no pool, port handle, queue handle or flow rule is left;
//! - one [`crate::Port`] handle per port, one [`crate::Queue`] handle per queue, and a port is
//!   reconfigured or closed only when no queue handle or flow rule uses it;
//! - a configured port keeps its RX pools alive until it is closed (a driver may allocate from it at any time).

use crate::ffi;
use crate::mempool::Mempool;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Ports the build supports (`RTE_MAX_ETHPORTS`).
pub(crate) const MAX_PORTS: usize = ffi::RTE_MAX_ETHPORTS as usize;
/// Queues per port the build supports (`RTE_MAX_QUEUES_PER_PORT`).
pub(crate) const MAX_QUEUES: usize = ffi::RTE_MAX_QUEUES_PER_PORT as usize;

/// The EAL's life: never started.
pub(crate) const EAL_UNINIT: u8 = 0;
/// `rte_eal_init` is running.
pub(crate) const EAL_STARTING: u8 = 1;
/// Initialized and usable.
pub(crate) const EAL_RUNNING: u8 = 2;
/// Cleaned up, or init failed: DPDK cannot start again in this process.
pub(crate) const EAL_DEAD: u8 = 4;

pub(crate) static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_UNINIT);

/// Pools created and not yet freed (leaked pools stay counted: their mbufs may be in use).
pub(crate) static POOLS_LIVE: AtomicUsize = AtomicUsize::new(0);

/// True while the EAL is initialized and not cleaned up.
pub(crate) fn eal_running() -> bool {
    EAL_STATE.load(Ordering::SeqCst) == EAL_RUNNING
}

/// What the process knows about one port id.
pub(crate) struct Slot {
    /// A [`crate::Port`] handle exists.
    pub claimed: bool,
    /// Started by this process and not stopped since.
    pub started: bool,
    /// Configured RX queues (0: not configured by this process).
    pub rx: u16,
    /// Configured TX queues.
    pub tx: u16,
    /// The pools its RX queues (present or past, until close) take mbufs from.
    pub pools: Vec<Mempool>,
    /// Queue ids that have a [`crate::Queue`] handle, as a bitset.
    pub queues: [u64; MAX_QUEUES / 64],
    /// Live [`crate::Flow`] rules.
    pub flows: u32,
    /// Live [`crate::port::PortMonitor`]s.
    pub monitors: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        claimed: false,
        started: false,
        rx: 0,
        tx: 0,
        pools: Vec::new(),
        queues: [0; MAX_QUEUES / 64],
        flows: 0,
        monitors: 0,
    };

    /// Number of live queue handles.
    pub fn queue_count(&self) -> u32 {
        self.queues.iter().map(|w| w.count_ones()).sum()
    }

    /// True if queue `q` has a handle.
    pub fn queue_taken(&self, q: u16) -> bool {
        let q = q as usize;
        self.queues[q / 64] & (1 << (q % 64)) != 0
    }

    /// Marks queue `q` taken or free.
    pub fn set_queue(&mut self, q: u16, taken: bool) {
        let q = q as usize;
        if taken {
            self.queues[q / 64] |= 1 << (q % 64);
        } else {
            self.queues[q / 64] &= !(1 << (q % 64));
        }
    }
}

static PORTS: Mutex<[Slot; MAX_PORTS]> = Mutex::new([const { Slot::EMPTY }; MAX_PORTS]);

/// The port table, locked. A panic while it was held cannot leave it inconsistent (every
/// update is a single field write), so a poisoned lock is simply taken over.
pub(crate) fn ports() -> MutexGuard<'static, [Slot; MAX_PORTS]> {
    PORTS.lock().unwrap_or_else(|e| e.into_inner())
}
