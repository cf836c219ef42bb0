//! rvs control plane: the model and every change to it, rvsd's control threads, the
//! configuration file, health checks, and rvsadm.
//!
//! - [`access`]: who may use the control socket and how much (mode, peer uid, rates, slots).
//! - [`change`]: every change to the model — requests, reloads, health verdicts — as a [`Change`].
//! - [`cli`]: rvsadm's command line (ipvsadm's syntax) parsed into requests.
//! - [`config`]: the rvsd configuration file (TOML), checked into a `DirectorConfig` and more.
//! - [`estimator`]: IPVS's rate estimator for `-L --rate`.
//! - [`format`](mod@format): rvsadm's output, shaped like ipvsadm's tables, or JSON.
//! - [`health`]: health checks that quiesce failing dests and restore them.
//! - [`metrics`]: Prometheus text of every counter, and its HTTP endpoint.
//! - [`model`]: the authoritative model; [`Model::apply`] validates, commits and publishes.
//! - [`proto`]: the control protocol (versioned, length-prefixed JSON) between rvsadm and rvsd.
//! - [`server`]: rvsd's control threads: accept, clients, admission, estimator, metrics.
//! - [`state`]: the control state and how it answers each request.
//! - [`views`]: the listings: services, dests, LIPs, health, workers, sessions.

pub mod access;
pub mod change;
pub mod cli;
pub mod config;
pub mod estimator;
pub mod format;
pub mod health;
pub mod metrics;
pub mod model;
pub mod proto;
pub mod server;
pub mod state;
pub mod views;

pub use change::Change;
pub use model::{ControlError, Model};
