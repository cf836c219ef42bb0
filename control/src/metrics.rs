//! Prometheus metrics: every dest and worker counter in the text exposition format, and the
//! HTTP endpoint that serves it (`[daemon] metrics`, `GET /metrics`).

use crate::views::Readings;
use dataplane::counters::Counter;
use dataplane::drop::DropReason;
use dataplane::stats::{DestSample, WorkerStats};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Mbufs out of rvsd's packet pool, as the daemon last published it (about once a second);
/// `u64::MAX` while no pool publishes (the metric is left out then). For `rvs_mbufs_in_use`.
pub static MBUFS_IN_USE: AtomicU64 = AtomicU64::new(u64::MAX);

/// A metric: name, Prometheus type, and how to read it from a sample of `T`.
type Metric<T> = (&'static str, &'static str, fn(&T) -> u64);

/// The Prometheus text exposition of every counter.
pub fn render(r: &Readings) -> String {
    let mut out = String::new();
    let dest_metrics: [Metric<DestSample>; 7] = [
        ("rvs_dest_connections_total", "counter", |s| s.conns),
        ("rvs_dest_packets_in_total", "counter", |s| s.inpkts),
        ("rvs_dest_packets_out_total", "counter", |s| s.outpkts),
        ("rvs_dest_bytes_in_total", "counter", |s| s.inbytes),
        ("rvs_dest_bytes_out_total", "counter", |s| s.outbytes),
        ("rvs_dest_active_connections", "gauge", |s| s.active),
        ("rvs_dest_inactive_connections", "gauge", |s| s.inactive),
    ];
    let cfg = r.model.config();
    for (name, kind, get) in dest_metrics {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in cfg.services.iter() {
            let key = s.key();
            for d in s.dests() {
                let v = r
                    .model
                    .slots()
                    .get(key, d.addr, d.port)
                    .map(|slot| get(&r.sample(slot)))
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}:{}:{}\",dest=\"{}:{}\"}} {v}",
                    key.proto, key.vip, key.port, d.addr, d.port
                );
            }
        }
    }
    let worker_gauges: [Metric<WorkerStats>; 2] = [
        ("rvs_worker_sessions", "gauge", |w| {
            w.worker.sessions.load(Relaxed)
        }),
        ("rvs_worker_busy_ratio_permille", "gauge", |w| {
            w.worker.busy_permille.load(Relaxed)
        }),
    ];
    for (name, kind, get) in worker_gauges {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (i, w) in r.workers.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(w));
        }
    }
    for c in Counter::ALL {
        let _ = writeln!(out, "# TYPE {} counter", c.metric());
        for (i, w) in r.workers.iter().enumerate() {
            let _ = writeln!(out, "{}{{worker=\"{i}\"}} {}", c.metric(), w.worker.get(*c));
        }
    }
    let _ = writeln!(out, "# TYPE rvs_worker_drops_total counter");
    for (i, w) in r.workers.iter().enumerate() {
        for reason in DropReason::ALL {
            let n = w.worker.drop_count(*reason);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "rvs_worker_drops_total{{worker=\"{i}\",reason=\"{}\"}} {n}",
                    reason.as_str()
                );
            }
        }
    }
    let usage = crate::views::lip_usage(r.workers);
    if !usage.is_empty() {
        let _ = writeln!(out, "# TYPE rvs_lip_ports gauge");
        for u in &usage {
            for (state, n) in [
                ("in_use", u.in_use),
                ("quarantine", u.quarantined),
                ("free", u.free),
            ] {
                let _ = writeln!(
                    out,
                    "rvs_lip_ports{{worker=\"{}\",lip=\"{}\",state=\"{state}\"}} {n}",
                    u.worker, u.lip
                );
            }
        }
    }
    let mbufs = MBUFS_IN_USE.load(Relaxed);
    if mbufs != u64::MAX {
        let _ = writeln!(
            out,
            "# TYPE rvs_mbufs_in_use gauge\nrvs_mbufs_in_use {mbufs}"
        );
    }
    out
}

/// Answers one HTTP request on the metrics port: `GET /metrics` (or `/`) with the text
/// `render` makes, anything else with 404.
pub fn serve(mut c: TcpStream, render: impl FnOnce() -> String) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).unwrap_or(0);
    let req = String::from_utf8_lossy(&buf[..n]);
    let (status, body) = if req.starts_with("GET /metrics") || req.starts_with("GET / ") {
        ("200 OK", render())
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let _ = write!(
        c,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}
