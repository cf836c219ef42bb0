//! Services, dests and schedulers for rvs: the control side's model of what a VIP forwards to,
//! and the per-worker schedulers the data path asks for a dest on each new session.
#![deny(unsafe_code)]

pub mod addr; // AddrPort (ipvsadm's `[v6]:port`) and address bytes for the fixed hashes.
pub mod dest; // Dest (a real server) and ForwardMode (NAT, DR, TUN, FullNAT).
pub mod error; // SchedError: why a service or dest change was refused.
mod hash; // SipHash-1-3 with fixed keys: mh's hash, the same in every director.
pub mod lc; // LeastConnection, after Linux IPVS ip_vs_lc.c.
pub mod mh; // MaglevHashing (Maglev lookup table), after Linux IPVS ip_vs_mh.c.
pub mod rr; // RoundRobin, after Linux IPVS ip_vs_rr.c.
pub mod scheduler; // The Scheduler trait, FlowHint, DestLoad, SchedKind and AnyScheduler.
pub mod service; // ServiceKey, Service (a VIP:port:proto and its dests) and ServiceTable.
pub mod sh; // SourceHashing (256 buckets filled by weight), after Linux IPVS ip_vs_sh.c.
#[cfg(test)]
mod testing; // Helpers shared by the unit and property tests.
pub mod wlc; // WeightedLeastConnection, after Linux IPVS ip_vs_wlc.c.
pub mod wrr; // WeightedRoundRobin, interleaved, after Linux IPVS ip_vs_wrr.c.

pub use addr::AddrPort;
pub use conntrack::Proto;
pub use dest::{Dest, ForwardMode, MAX_WEIGHT};
pub use error::SchedError;
pub use lc::LeastConnection;
pub use mh::{MaglevConfig, MaglevHashing, MH_DEFAULT_TABLE_SIZE, MH_TABLE_SIZES};
pub use rr::RoundRobin;
pub use scheduler::{fold_ipv6, AnyScheduler, DestLoad, FlowHint, SchedKind, Scheduler};
pub use service::{view_digest, ProxyProtocol, Service, ServiceKey, ServiceTable};
pub use sh::SourceHashing;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;
