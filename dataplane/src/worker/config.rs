//! A worker's static settings: its index, table sizes, the role of each port, RSS steering,
//! and what can go wrong setting it up.

use crate::lip::LipError;
use crate::neigh::NeighConfig;
use crate::rss::ReplySteering;

/// What a port is to this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// A data port; traffic for the director that rvs doesn't handle goes to `exception`.
    Data {
        /// The exception port paired with this one, if any.
        exception: Option<u16>,
    },
    /// The kernel side of a data port (TAP): what arrives here goes out on `data` unchanged.
    Exception {
        /// The data port it is paired with.
        data: u16,
    },
}

/// Static settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's index, 0-based.
    pub id: u16,
    /// How many workers share the director (for the LIP port split).
    pub workers: u16,
    /// Hard capacity of the session table.
    pub table_capacity: usize,
    /// Hard capacity of the IPv6 session table (IPv6 services' sessions).
    pub table6_capacity: usize,
    /// Hard capacity of the persistence template table (one template per client of a
    /// persistent service; at least 64).
    pub template_capacity: usize,
    /// Entries of each fragment table (IPv4's and IPv6's), which later fragments follow
    /// their datagram's first one by ([`crate::frag`]; rounded up to buckets of 8).
    pub fragment_capacity: usize,
    /// The fragment tables' hash seed: `None` (random, per worker) in service; fixed where
    /// runs must repeat exactly (fuzzing compares two workers' outputs).
    pub fragment_seed: Option<u64>,
    /// Neighbour table settings.
    pub neigh: NeighConfig,
    /// Run the slow jobs every this many loops (at least 1).
    pub slow_every: u32,
    /// Sessions expired at most per slow-job run.
    pub expire_budget: usize,
    /// Look RX bursts up in prefetching stages (the default; off only to measure what the
    /// stages save).
    pub prefetch: bool,
    /// Role of each port, by port index; ports beyond the list are data ports without an
    /// exception path.
    pub ports: Vec<PortRole>,
    /// Per port index: how the port's RSS spreads replies over queues, with this worker's
    /// queue, when the port does RSS. FullNAT then picks LIP ports whose replies hash to this
    /// worker's own queue (software Toeplitz with the port's key and RETA); without it, replies
    /// that land on another worker's queue go through the redirect rings.
    pub steering: Vec<Option<ReplySteering>>,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            id: 0,
            workers: 1,
            table_capacity: 1 << 20,
            table6_capacity: 1 << 18,
            template_capacity: 1 << 16,
            fragment_capacity: 4096,
            fragment_seed: None,
            neigh: NeighConfig::default(),
            slow_every: 64,
            expire_budget: 4096,
            prefetch: true,
            ports: Vec::new(),
            steering: Vec::new(),
        }
    }
}

/// Why a worker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The LIP pool could not be split or built.
    #[error("LIP pool: {0}")]
    Lip(#[from] LipError),
    /// The configuration has an interface on a port the worker does not have.
    #[error("the configuration uses {needed} ports, but the worker was given {count}")]
    MissingPort {
        /// Ports the configuration needs.
        needed: usize,
        /// Ports the worker has.
        count: usize,
    },
    /// The redirect rings connect another number of workers than configured.
    #[error("redirect rings connect {rings} workers, but the worker configuration says {workers}")]
    RingMismatch {
        /// Workers the rings connect.
        rings: usize,
        /// `WorkerConfig::workers`.
        workers: u16,
    },
    /// A port role names a port that does not exist.
    #[error("port role for port {port} names port {other}, but the worker has {count} ports")]
    BadPortRole {
        /// The port whose role is wrong.
        port: u16,
        /// The port it names.
        other: u16,
        /// Ports the worker has.
        count: usize,
    },
}
