//! cargo-fuzz target `control_request`: see `rvs_fuzz::control` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::control::run(data));
