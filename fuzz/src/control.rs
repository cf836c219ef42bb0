//! The `control_request` target: bytes as a stream of control-protocol frames (a 4-byte
//! big-endian length, then JSON), read with `proto::read_frame_bytes` and decoded with
//! `proto::decode_request` as rvsd's client threads do, then applied one after the other to
//! one `ControlState` over the pipeline target's director model (no daemon, no socket).
//!
//! Invariants:
//!
//! - No panic in framing, decoding, handling, listing, the estimator or the metrics text.
//! - Every decoded request survives a round trip (`write_frame` → `read_frame_bytes` →
//!   `decode_request` gives it back), and so does every response (`decode_response`).
//! - A refused request (`Response::Error`) leaves the model exactly as it was: same
//!   configuration, same published snapshot, same generation, same `-L` listing and timeouts.
//! - An applied change publishes exactly one new generation; the model's configuration always
//!   builds a valid snapshot, and `-L` lists exactly its services.
//!
//! `reload` names a file rvsd would read. The harness does not let fuzz input choose paths:
//! an even-length path becomes a copy of `examples/rvsd.toml`, an odd-length one a path
//! that does not exist. Sessions (`-c`) are listed from no workers (the worker mailbox is the
//! pipeline target's business).

use control::estimator::ESTIMATOR_PERIOD;
use control::model::Model;
use control::state::ControlState;
use dataplane::snapshot::Snapshot;
use dataplane::stats::WorkerStats;
use proto::{Envelope, Request, Response};
use sched::SchedKind;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The example configuration, for `reload` requests.
const EXAMPLE: &str = include_str!("../../examples/rvsd.toml");

fn reload_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        // One file for every fuzzing process, replaced whole (write, then rename).
        let dir = std::env::temp_dir();
        let p = dir.join("rvs-fuzz-reload.toml");
        let tmp = dir.join(format!("rvs-fuzz-reload.toml.{}", std::process::id()));
        std::fs::write(&tmp, EXAMPLE).expect("write the reload file");
        std::fs::rename(&tmp, &p).expect("put the reload file in place");
        p
    })
}

/// What a refused request must leave alone.
#[derive(Debug, PartialEq)]
struct Seen {
    config: String,
    generation: u64,
    snapshot: *const Snapshot,
    listing: Response,
    timeouts: Response,
}

fn observe(s: &mut ControlState) -> Seen {
    Seen {
        config: format!("{:?}", s.model().config()),
        generation: s.model().generation(),
        snapshot: Arc::as_ptr(&s.model().cell().load_full()),
        listing: s.handle(Request::List { service: None }),
        timeouts: s.handle(Request::Timeouts),
    }
}

/// A fresh control state over the pipeline target's base configuration, its Maglev service
/// switched to wrr: every applied change rebuilds the snapshot, and a Maglev table would
/// dominate the time of every execution (requests still add `mh` services).
pub fn state() -> ControlState {
    let mut cfg = crate::pipeline::base_config();
    let maglev: Vec<_> = cfg
        .services
        .iter()
        .filter(|s| s.sched() == SchedKind::Mh)
        .map(|s| s.key())
        .collect();
    for k in maglev {
        if let Some(s) = cfg.services.get_mut(&k) {
            s.set_sched(SchedKind::Wrr);
        }
    }
    let model = Model::new(cfg).expect("base model");
    ControlState::new(model, vec![WorkerStats::new()], Vec::new())
}

/// Keeps file access out of fuzz input's hands (see the module doc).
fn sandbox(req: Request) -> Request {
    match req {
        Request::Reload { path } => Request::Reload {
            path: if path.len() % 2 == 0 {
                reload_file().display().to_string()
            } else {
                "/nonexistent/rvs-fuzz/rvsd.toml".into()
            },
        },
        other => other,
    }
}

fn round_trip(req: &Request) {
    let mut wire = Vec::new();
    proto::write_frame(
        &mut wire,
        &Envelope {
            version: proto::VERSION,
            request: req.clone(),
        },
    )
    .expect("a decoded request encodes");
    let body = proto::read_frame_bytes(&mut wire.as_slice()).expect("own frame reads back");
    assert_eq!(
        &proto::decode_request(&body).expect("own frame decodes"),
        req,
        "request round trip"
    );
}

/// Runs one fuzz input (see the module doc). Panics on any broken invariant.
pub fn run(data: &[u8]) {
    let mut s = state();
    let mut r = Cursor::new(data);
    // Reads frames until the input runs out or announces an oversized one.
    while let Ok(body) = proto::read_frame_bytes(&mut r) {
        let req = match proto::decode_request(&body) {
            Ok(req) => req,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        round_trip(&req);
        let req = sandbox(req);
        let before = observe(&mut s);
        let resp = s.handle(req.clone());
        let json = serde_json::to_vec(&resp).expect("response encodes");
        assert_eq!(
            proto::decode_response(&json).expect("response decodes"),
            resp,
            "response round trip"
        );
        let after = observe(&mut s);
        match &resp {
            Response::Error { .. } => {
                assert_eq!(before, after, "refused {req:?} changed the model: {resp:?}")
            }
            Response::Done | Response::Noted { .. }
                if req.is_change() && !matches!(req, Request::Zero { .. })
                    || matches!(req, Request::Batch { .. } | Request::Reload { .. }) =>
            {
                assert_eq!(
                    after.generation,
                    before.generation + 1,
                    "{req:?} applied without publishing one generation"
                )
            }
            _ => assert_eq!(
                before, after,
                "{req:?} is not a change but changed the model"
            ),
        }
        let cfg = s.model().config();
        assert!(
            Snapshot::build(cfg).is_ok(),
            "the model holds an invalid configuration after {req:?}"
        );
        let listed = match &after.listing {
            Response::Services { services } => services.len(),
            other => panic!("-L answered {other:?}"),
        };
        assert_eq!(listed, cfg.services.len(), "-L lists every service");
        s.tick(ESTIMATOR_PERIOD);
        let _ = s.metrics();
    }
}
