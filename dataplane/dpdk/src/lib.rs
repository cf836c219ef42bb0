//! rvs's thin, safe binding to the system DPDK (22.11, found through pkg-config and linked as
//! shared libraries; PMDs load as plugins from the EAL's plugin directory).
//!
//! - [`eal`]: start DPDK once per process, shut it down; TSC clock, lcore ids, thread
//!   registration.
//! - [`mempool`]: packet-buffer pools.
//! - [`mbuf`]: the owned packet buffer, its segments and offload flags.
//! - [`port`]: ports (configure, start, RSS key and table, stats) and their queues (bursts).
//! - [`flow`]: rte_flow rules steering a destination address and port range to a queue.
//! - [`error`]: what went wrong, where, and what to do.
//! - [`ffi`]: the raw bindings and the C shim (unsafe; for `Mbuf::from_raw` and the like).
//!
//! Unsafe code lives only in this crate; each block says why it holds. The process-wide
//! rules that keep the safe API sound (one handle per port and per queue, pools that outlive
//! their mbufs, no cleanup under live objects) are kept by a small registry, touched on the
//! control path only.

pub mod eal;
pub mod error;
pub mod ffi;
pub mod flow;
pub mod mbuf;
pub mod mempool;
pub mod port;
mod registry;

pub use eal::{lcore_id, register_thread, tsc, tsc_hz, unregister_thread, Eal, LCORE_ID_ANY};
pub use error::DpdkError;
pub use flow::{Flow, L4Proto};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Port, PortConf, PortInfo, PortStats, Queue, RssConf, BURST};
