//! The harnesses behind rvs's cargo-fuzz targets, as a library so that the seed generator
//! (`examples/seeds.rs`) and the regression test (`tests/regressions.rs`) run exactly the code
//! the fuzzer runs. See `fuzz/README.md` for what each target feeds and asserts.
//!
//! - [`pipeline`]: raw frames through a director worker on in-memory ports.
//! - [`control`]: control-protocol frames decoded and applied to a control state.
//! - [`config`]: configuration text through the parser and what rvsd builds from it.
//! - [`sync`]: session sync datagrams through the reader, each record re-encoded.

pub mod config;
pub mod control;
pub mod pipeline;
pub mod sync;
