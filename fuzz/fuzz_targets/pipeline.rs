//! cargo-fuzz target `pipeline`: see `rvs_fuzz::pipeline` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::pipeline::run(data));
