//! Raw bindings: bindgen's output over DPDK's headers (allowlisted to what rvs uses) and the
//! C shim's `rvs_*` wrappers of DPDK's static-inline functions. Everything here is unsafe
//! to call; the rest of the crate is the safe layer over it. Public only so that
//! [`crate::Mbuf::into_raw`] / [`crate::Mbuf::from_raw`] can name `rte_mbuf`.

#![allow(
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
