//! Every committed input — the corpora and the saved reproducers — through the harnesses,
//! without libFuzzer (stable `cargo test`):
//!
//! ```sh
//! cargo test --manifest-path fuzz/Cargo.toml --release
//! ```
//!
//! A reproducer under `regressions/<target>/` stays there after its bug is fixed, so the
//! bug cannot come back unnoticed.

use std::path::Path;

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_file() && e.file_name() != ".gitkeep" {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("read input");
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn pipeline() {
    replay("pipeline", rvs_fuzz::pipeline::run);
}

#[test]
fn control_request() {
    replay("control_request", rvs_fuzz::control::run);
}

#[test]
fn config() {
    replay("config", rvs_fuzz::config::run);
}

#[test]
fn sync_decode() {
    replay("sync_decode", rvs_fuzz::sync::run);
}

/// Each `seed_refused_<reason>` sync seed (`seed_refused6_<reason>`: an IPv6 session's) is
/// refused for that reason: the whole datagram, or one of its records.
#[test]
fn sync_seeds_are_refused_for_their_reason() {
    use dataplane::sync::{wire::header, Datagram};
    let mut seen = 0;
    for f in inputs("sync_decode") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let Some(reason) = name
            .strip_prefix("seed_refused_")
            .or_else(|| name.strip_prefix("seed_refused6_"))
        else {
            continue;
        };
        let data = std::fs::read(&f).expect("read input");
        let got: Vec<&str> = match Datagram::parse(&data, data[header::SYNC_ID]) {
            Err(e) => vec![e.as_str()],
            Ok(g) => g
                .records()
                .filter_map(|r| r.err())
                .map(|e| e.as_str())
                .collect(),
        };
        assert_eq!(got, [reason], "{name}");
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} refusal seeds");
}

/// The sync seeds reach the install path: the jumbo seed (every session the seeds have, one
/// flow per protocol in every mode and state) installs each protocol's flow, not only
/// refusals.
#[test]
fn sync_seeds_install_sessions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(root.join("corpus/sync_decode/seed_jumbo")).expect("seed");
    let g = dataplane::sync::Datagram::parse(&data, data[5]).expect("a valid seed");
    let records: Vec<_> = g.records().filter_map(Result::ok).collect();
    let installed = rvs_fuzz::sync::install(&records);
    assert!(installed >= 3, "only {installed} installed");
}

/// The IPv6 sync seeds install: every IPv6 session they carry (each mode, NAT64 included,
/// each its own flow and LIP port) is installed by the worker that owns it.
#[test]
fn sync_seeds_install_ipv6_sessions() {
    let mut records = Vec::new();
    for f in inputs("sync_decode") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed_sessions6_") {
            continue;
        }
        let data = std::fs::read(&f).expect("read input");
        let g = dataplane::sync::Datagram::parse(&data, data[5]).expect("a valid seed");
        for r in g.records() {
            let r = r.expect("a valid record");
            assert!(
                matches!(r, dataplane::sync::SyncRecord::Session6(_)),
                "{r:?}"
            );
            records.push(r);
        }
    }
    assert!(records.len() >= 50, "only {} IPv6 sessions", records.len());
    let installed = rvs_fuzz::sync::install(&records);
    assert_eq!(installed, records.len() as u64);
}
