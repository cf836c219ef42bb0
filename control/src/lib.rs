//! rvs control plane.
//!
//! - [`access`]: who may use the control socket and how much: socket mode, peer credentials,
//!   rate limits, client slots, request deadlines.
//! - [`change`]: every change to the model (rvsadm requests, reloads, health verdicts) as one
//!   [`Change`], applied by [`Model::apply`].
//! - [`cli`]: rvsadm's command line (ipvsadm's syntax) parsed into requests.
//! - [`config`]: the rvsd configuration file (TOML), checked into a `DirectorConfig` and
//!   the daemon's settings.
//! - [`format`](mod@format): rvsadm's output, shaped like ipvsadm's tables, or JSON.
//! - [`health`]: health checks that quiesce failing dests and restore them.
//! - [`model`]: the authoritative director model; every change is validated as a whole and
//!   published to the workers as a new snapshot, or refused with nothing changed.
//! - [`proto`]: the control protocol (versioned, length-prefixed JSON) between rvsadm and rvsd.
//! - [`server`]: rvsd's control threads: requests, listings, estimator, metrics endpoint.

pub mod access;
pub mod change;
pub mod cli;
pub mod config;
pub mod format;
pub mod health;
pub mod model;
pub mod proto;
pub mod server;

pub use change::Change;
pub use model::{ControlError, Model};
