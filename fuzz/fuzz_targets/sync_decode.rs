//! cargo-fuzz target `sync_decode`: see `rvs_fuzz::sync` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::sync::run(data));
