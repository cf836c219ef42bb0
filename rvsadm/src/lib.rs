//! rvsadm's library: what the `rvsadm` binary parses and prints. It speaks the control
//! protocol ([`proto`]) and nothing else of rvs, so it builds without DPDK.
//!
//! - [`cli`]: ipvsadm's command line, parsed into a request and how to print its answer.
//! - [`format`](mod@format): rvsd's answers printed as ipvsadm prints its tables, or JSON.

pub mod cli;
pub mod format;
