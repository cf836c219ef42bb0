//! rvs data path: packets in, packets out.
//!
//! - [`buf`]: the owned packet buffer trait every device's buffers implement.
//! - [`checksum`]: RFC 1624 incremental and RFC 1071 full Internet checksums.
//! - [`counters`]: the per-worker event counters, one enum-indexed array.
//! - [`device`]: one worker's RX/TX queue pair on a port.
//! - [`dpdk_port`]: DPDK mbufs as packet buffers and a DPDK queue pair as a device.
//! - [`drop`](mod@drop): the per-packet drop-reason enum.
//! - [`icmp`]: ICMP errors about sessions' packets (their quotes, rewritten), and the rate
//!   limit on the ones the director builds.
//! - [`lip`]: FullNAT local-address (LIP) port pools, one per worker.
//! - [`local`]: frames the director builds itself (ARP, ICMP errors).
//! - [`mem`]: in-memory device and buffer pool for tests and benches.
//! - [`neigh`]: the ARP neighbour table, with aging and packets parked until resolution.
//! - [`parse`]: raw frame → validated summary (or a drop reason).
//! - [`proxy_protocol`]: the PROXY protocol header (v1, v2) a service puts ahead of the
//!   client's data, its insertion into a segment and the sequence mapping around it.
//! - [`redirect`]: lock-free rings handing packets to the worker that owns their session.
//! - [`rewrite`]: in-place header rewrites with incremental checksums, L2 framing, IPIP.
//! - [`rss`]: the NIC's RSS in software: Toeplitz hash, redirection table (RETA), and the
//!   steering of FullNAT replies to a worker's queue.
//! - [`synproxy`]: SYN cookies and the sequence shift of SYN-proxied sessions.
//! - [`stats`]: lock-free counters each worker publishes (per dest slot and per worker).
//! - [`sync`]: the session sync wire format between directors: records, datagram writer and
//!   reader.
//! - [`snapshot`]: the validated configuration workers read, and how it is published.
//! - [`wire`]: zero-copy packet views (smoltcp's, plus 802.1Q tags) and their panic contract.
//! - [`worker`]: the run loop: RX, classify, sessions, rewrite, TX, slow jobs.

pub mod buf;
pub mod checksum;
pub mod counters;
pub mod device;
pub mod dpdk_port;
pub mod drop;
pub mod frag;
pub mod icmp;
pub mod icmpv6;
pub mod lip;
pub mod local;
pub mod mem;
pub mod nat64;
pub mod neigh;
pub mod parse;
pub mod proxy_protocol;
pub mod redirect;
pub mod rewrite;
pub mod rss;
pub mod snapshot;
pub mod stats;
pub mod sync;
pub mod synproxy;
pub mod wire;
pub mod worker;

pub use counters::{Counter, Counters};
pub use drop::DropReason;
