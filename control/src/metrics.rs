//! Prometheus metrics: every dest and worker counter in the text exposition format, and the
//! HTTP endpoint that serves it (`[daemon] metrics`, `GET /metrics`).

use crate::views::Readings;
use dataplane::counters::Counter;
use dataplane::drop::DropReason;
use dataplane::stats::{DestSample, WorkerStats};
use sched::AddrPort;
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

/// The sync daemon's families: its counters, its drops by reason, the master's backlog and
/// how long ago each sender was last heard (the backup's view of the lag).
fn sync_metrics(out: &mut String, p: &crate::sync::SyncPlane) {
    use dataplane::sync::SyncDrop;
    let stats = p.stats();
    for (name, v) in stats.values() {
        let _ = writeln!(out, "# TYPE {name} counter\n{name} {v}");
    }
    for (name, drops) in [
        ("rvs_sync_datagrams_dropped_total", &stats.datagram_drops),
        ("rvs_sync_records_refused_total", &stats.record_drops),
    ] {
        let _ = writeln!(out, "# TYPE {name} counter");
        for d in SyncDrop::ALL {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\"}} {}",
                d.as_str(),
                drops[d.index()].load(Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# TYPE rvs_sync_backlog_records gauge\nrvs_sync_backlog_records {}",
        p.backlog()
    );
    let roles = p.daemons();
    let _ = writeln!(out, "# TYPE rvs_sync_daemon_running gauge");
    for role in [crate::sync::Role::Master, crate::sync::Role::Backup] {
        let on = u8::from(roles.iter().any(|d| d.role == role));
        let _ = writeln!(out, "rvs_sync_daemon_running{{role=\"{role}\"}} {on}");
    }
    let peers = p.peers();
    if !peers.is_empty() {
        let _ = writeln!(out, "# TYPE rvs_sync_peer_last_heard_seconds gauge");
        let now = std::time::Instant::now();
        for (sender, seen) in peers {
            let _ = writeln!(
                out,
                "rvs_sync_peer_last_heard_seconds{{sender=\"{sender:08x}\",addr=\"{}\"}} {:.3}",
                seen.addr,
                now.duration_since(seen.at).as_secs_f64()
            );
        }
    }
}

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
            for d in &r.model.published_dests(key) {
                let v = r
                    .model
                    .slots()
                    .get(key, d.addr, d.port)
                    .map(|slot| get(&r.sample(slot)))
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{}:{}\",dest=\"{}\"}} {v}",
                    key.proto,
                    AddrPort(key.vip, key.port),
                    AddrPort(d.addr, d.port)
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
    let usage = crate::views::lip_usage(r.workers, &r.model.config().lips6);
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
    if let Some(p) = r.sync {
        sync_metrics(&mut out, p);
    }
    let managed = crate::views::managed_addresses(r.model);
    if !managed.is_empty() {
        let _ = writeln!(out, "# TYPE rvs_address_owned gauge");
        for a in &managed {
            let _ = writeln!(
                out,
                "rvs_address_owned{{address=\"{}\",role=\"{}\"}} {}",
                a.addr,
                a.role,
                u8::from(a.owned)
            );
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
