//! rvs control plane: the model and every change to it, rvsd's control threads, the
//! configuration file and health checks. The protocol is the `proto` crate; rvsadm is its own
//! crate.
//!
//! - [`announce`]: the cluster's announcer: host routes for BIRD, starting, draining.
//! - [`access`]: who may use the control socket and how much (mode, peer uid, rates, slots).
//! - [`change`]: every change to the model — requests, reloads, health verdicts — as a [`Change`].
//! - [`config`]: the rvsd configuration file (TOML), checked into a `DirectorConfig` and more.
//! - [`convert`]: the protocol's service keys and protocol names to the model's, and back.
//! - [`estimator`]: IPVS's rate estimator for `-L --rate`.
//! - [`health`]: health checks that quiesce failing dests and restore them.
//! - [`metrics`]: Prometheus text of every counter, and its HTTP endpoint.
//! - [`model`]: the authoritative model; [`Model::apply`] validates, commits and publishes.
//! - [`ownership`]: the address follower: which addresses the exception TAPs hold (rtnetlink).
//! - [`rtnl`]: rtnetlink address messages, read and written.
//! - [`server`]: rvsd's control threads: accept, clients, admission, estimator, metrics.
//! - [`state`]: the control state and how it answers each request.
//! - [`sync`]: the sync daemon: session sync with the peer directors over UDP.
//! - [`views`]: the listings: services, dests, LIPs, health, workers, sessions.

pub mod access;
pub mod announce;
pub mod change;
pub mod config;
pub mod convert;
pub mod estimator;
pub mod health;
pub mod metrics;
pub mod model;
pub mod ownership;
pub mod rtnl;
pub mod server;
pub mod state;
pub mod sync;
pub mod views;

pub use change::Change;
pub use model::{ControlError, Model};
pub use proto::PortView;
