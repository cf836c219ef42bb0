//! cargo-fuzz target `config`: see `rvs_fuzz::config` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::config::run(data));
