//! Prometheus metrics: every service, dest, worker, sync, address, pool and port counter in
//! the Prometheus text format (0.0.4), and the HTTP endpoint that serves it (`[daemon]
//! metrics`, `GET /metrics`).
//!
//! A scrape reads the same [`Readings`] as the listings, at scrape time, on the control side
//! (never on the data path): [`families`] turns them into [`Family`]s, a custom
//! `prometheus_client` collector encodes those. Service and dest families follow the
//! node_exporter IPVS collector: `rvs_service_*` and `rvs_dest_*` are its `node_ipvs_*` and
//! `node_ipvs_backend_*`, labelled `local_address`, `local_port`, `proto` (`TCP`, `UDP`) and
//! `local_mark` (always empty: rvs has no fwmark services), dests also `remote_address` and
//! `remote_port`, so that an IPVS dashboard needs only the prefix changed.
//!
//! The HTTP server ([`serve`]) answers each connection on its own short-lived thread (at most
//! [`MAX_SCRAPERS`] at once, each with [`SCRAPE_TIMEOUT`] to send its request and take the
//! answer): a client that connects and says nothing never holds up another's scrape.

use crate::views::Readings;
use dataplane::counters::Counter;
use dataplane::drop::DropReason;
use dataplane::stats::DestSample;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use proto::PortView;
use sched::ServiceKey;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Mbufs out of rvsd's packet pool, as the daemon last published it (about once a second);
/// `u64::MAX` while no pool publishes (the metric is left out then). For `rvs_mbufs_in_use`.
pub static MBUFS_IN_USE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The pool's size, published with [`MBUFS_IN_USE`] (`u64::MAX` while none). For
/// `rvs_mbufs_capacity`, so that an alert can compare the two.
pub static MBUFS_CAPACITY: AtomicU64 = AtomicU64::new(u64::MAX);

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Scrapes served at once; a connection beyond them is answered 503 and closed.
pub const MAX_SCRAPERS: usize = 8;

/// How long a scrape connection may take to send its request, and then to take the answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest request head read (request line and headers).
const MAX_HEAD: usize = 8192;

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when rvsd restarts); its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A ratio, a duration in seconds.
    Float(f64),
}

/// One sample of a family: its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values, in exposition order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

/// A metric family: name (as exposed, `_total` included for counters), `# HELP` text, type
/// and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The name every sample carries.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its samples (none: the family is left out of the exposition).
    pub samples: Vec<Sample>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.samples.push(Sample { labels, value });
    }

    fn int(&mut self, labels: Vec<(&'static str, String)>, v: u64) {
        self.push(labels, Value::Int(v));
    }
}

/// The ports' last readings, published by the daemon (about once a second) and read by
/// scrapes and `--ports`.
#[derive(Debug, Default)]
pub struct PortStatsBoard {
    ports: std::sync::Mutex<Vec<PortView>>,
}

impl PortStatsBoard {
    /// Replaces the readings.
    pub fn publish(&self, ports: Vec<PortView>) {
        *self.ports.lock().unwrap_or_else(|p| p.into_inner()) = ports;
    }

    /// The last readings (none before the first publication).
    pub fn read(&self) -> Vec<PortView> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An IP address as node_exporter writes it (no brackets around IPv6).
fn addr(a: IpAddr) -> String {
    a.to_string()
}

/// The protocol as IPVS's `/proc/net/ip_vs` (and so node_exporter) writes it.
fn proto(key: &ServiceKey) -> String {
    key.proto.to_string().to_ascii_uppercase()
}

/// A service's labels: node_exporter's minus the remote ones.
fn service_labels(key: &ServiceKey) -> Vec<(&'static str, String)> {
    vec![
        ("local_address", addr(key.vip)),
        ("local_port", key.port.to_string()),
        ("proto", proto(key)),
        ("local_mark", String::new()),
    ]
}

/// A dest's labels: exactly node_exporter's IPVS backend labels, in its order.
fn dest_labels(key: &ServiceKey, rip: IpAddr, rport: u16) -> Vec<(&'static str, String)> {
    vec![
        ("local_address", addr(key.vip)),
        ("local_port", key.port.to_string()),
        ("remote_address", addr(rip)),
        ("remote_port", rport.to_string()),
        ("proto", proto(key)),
        ("local_mark", String::new()),
    ]
}

/// A counter of a [`DestSample`], per dest and summed per service: the service family's name
/// and help, the dest family's, and how to read it.
struct Traffic {
    service: (&'static str, &'static str),
    dest: (&'static str, &'static str),
    get: fn(&DestSample) -> u64,
}

/// The service and dest counters, node_exporter's names under `rvs_service_` / `rvs_dest_`.
const TRAFFIC: [Traffic; 5] = [
    Traffic {
        service: (
            "rvs_service_connections_total",
            "Connections (sessions) the service scheduled, summed over its dests",
        ),
        dest: (
            "rvs_dest_connections_total",
            "Connections (sessions) scheduled to the dest",
        ),
        get: |s| s.conns,
    },
    Traffic {
        service: (
            "rvs_service_incoming_packets_total",
            "Packets from clients to the service, summed over its dests",
        ),
        dest: (
            "rvs_dest_incoming_packets_total",
            "Packets from clients to the dest",
        ),
        get: |s| s.inpkts,
    },
    Traffic {
        service: (
            "rvs_service_outgoing_packets_total",
            "Packets from the service's real servers, summed over its dests",
        ),
        dest: (
            "rvs_dest_outgoing_packets_total",
            "Packets from the dest to clients (NAT and FullNAT: DR and TUN replies bypass rvs)",
        ),
        get: |s| s.outpkts,
    },
    Traffic {
        service: (
            "rvs_service_incoming_bytes_total",
            "Bytes from clients to the service, summed over its dests",
        ),
        dest: (
            "rvs_dest_incoming_bytes_total",
            "IP bytes from clients to the dest",
        ),
        get: |s| s.inbytes,
    },
    Traffic {
        service: (
            "rvs_service_outgoing_bytes_total",
            "Bytes from the service's real servers, summed over its dests",
        ),
        dest: (
            "rvs_dest_outgoing_bytes_total",
            "IP bytes from the dest to clients",
        ),
        get: |s| s.outbytes,
    },
];

/// The service and dest families.
fn service_families(r: &Readings, out: &mut Vec<Family>) {
    let cfg = r.model.config();
    let mut svc: Vec<Family> = TRAFFIC
        .iter()
        .map(|t| Family::new(t.service.0, t.service.1, Kind::Counter))
        .collect();
    let mut dst: Vec<Family> = TRAFFIC
        .iter()
        .map(|t| Family::new(t.dest.0, t.dest.1, Kind::Counter))
        .collect();
    let mut active = Family::new(
        "rvs_dest_connections_active",
        "Sessions to the dest in ESTABLISHED (IPVS's ActiveConn)",
        Kind::Gauge,
    );
    let mut inactive = Family::new(
        "rvs_dest_connections_inactive",
        "Sessions to the dest in any other state (IPVS's InActConn)",
        Kind::Gauge,
    );
    let mut weight = Family::new(
        "rvs_dest_weight",
        "The dest's configured weight (0: drained)",
        Kind::Gauge,
    );
    let mut up = Family::new(
        "rvs_dest_up",
        "1 while the dest's health check has it up (or it has none), 0 while it is down",
        Kind::Gauge,
    );
    for s in cfg.services.iter() {
        let key = s.key();
        let mut sum = DestSample::default();
        for d in &r.model.published_dests(key) {
            let sample = r
                .model
                .slots()
                .get(key, d.addr, d.port)
                .map(|slot| r.sample(slot))
                .unwrap_or_default();
            sum.add(&sample);
            let labels = dest_labels(&key, d.addr, d.port);
            for (f, t) in dst.iter_mut().zip(TRAFFIC.iter()) {
                f.int(labels.clone(), (t.get)(&sample));
            }
            active.int(labels.clone(), sample.active);
            inactive.int(labels.clone(), sample.inactive);
            weight.int(labels.clone(), d.weight.into());
            up.int(labels, u64::from(!r.model.is_down(key, d.addr, d.port)));
        }
        let labels = service_labels(&key);
        for (f, t) in svc.iter_mut().zip(TRAFFIC.iter()) {
            f.int(labels.clone(), (t.get)(&sum));
        }
    }
    out.extend(svc);
    out.extend(dst);
    out.extend([active, inactive, weight, up]);
}

/// The workers' families: sessions, busy ratio, every [`Counter`], drops by reason.
fn worker_families(r: &Readings, out: &mut Vec<Family>) {
    let worker = |i: usize| vec![("worker", i.to_string())];
    let mut sessions = Family::new(
        "rvs_worker_sessions",
        "Sessions in the worker's table",
        Kind::Gauge,
    );
    let mut busy = Family::new(
        "rvs_worker_busy_ratio",
        "Share of the worker's recent loop time spent on packets (0 to 1)",
        Kind::Gauge,
    );
    for (i, w) in r.workers.iter().enumerate() {
        sessions.int(worker(i), w.worker.sessions.load(Relaxed));
        let permille = w.worker.busy_permille.load(Relaxed);
        busy.push(worker(i), Value::Float(permille as f64 / 1000.0));
    }
    out.extend([sessions, busy]);
    for c in Counter::ALL {
        let mut f = Family::new(c.metric(), c.help(), Kind::Counter);
        for (i, w) in r.workers.iter().enumerate() {
            f.int(worker(i), w.worker.get(*c));
        }
        out.push(f);
    }
    let mut drops = Family::new(
        "rvs_worker_drops_total",
        "Packets the worker dropped, by reason (reasons never seen are left out)",
        Kind::Counter,
    );
    for (i, w) in r.workers.iter().enumerate() {
        for reason in DropReason::ALL {
            let n = w.worker.drop_count(*reason);
            if n > 0 {
                drops.int(
                    vec![
                        ("worker", i.to_string()),
                        ("reason", reason.as_str().to_string()),
                    ],
                    n,
                );
            }
        }
    }
    out.push(drops);
}

/// The sync daemon's families: its counters, its drops by reason, the master's backlog and
/// how long ago each sender was last heard (the backup's view of the lag).
fn sync_families(p: &crate::sync::SyncPlane, out: &mut Vec<Family>) {
    use dataplane::sync::SyncDrop;
    let stats = p.stats();
    for (name, help, v) in stats.described() {
        let mut f = Family::new(name, help, Kind::Counter);
        f.int(Vec::new(), v);
        out.push(f);
    }
    for (name, help, drops) in [
        (
            "rvs_sync_datagrams_dropped_total",
            "Sync datagrams refused whole, by reason",
            &stats.datagram_drops,
        ),
        (
            "rvs_sync_records_refused_total",
            "Sync records refused, by reason",
            &stats.record_drops,
        ),
    ] {
        let mut f = Family::new(name, help, Kind::Counter);
        for d in SyncDrop::ALL {
            f.int(
                vec![("reason", d.as_str().to_string())],
                drops[d.index()].load(Relaxed),
            );
        }
        out.push(f);
    }
    let mut backlog = Family::new(
        "rvs_sync_backlog_records",
        "Session records waiting to be sent by the master",
        Kind::Gauge,
    );
    backlog.int(Vec::new(), p.backlog());
    let mut running = Family::new(
        "rvs_sync_daemon_running",
        "1 while the sync daemon of the role runs",
        Kind::Gauge,
    );
    let roles = p.daemons();
    for role in [crate::sync::Role::Master, crate::sync::Role::Backup] {
        let on = u64::from(roles.iter().any(|d| d.role == role));
        running.int(vec![("role", role.to_string())], on);
    }
    let mut heard = Family::new(
        "rvs_sync_peer_last_heard_seconds",
        "Seconds since the last datagram from each sync sender",
        Kind::Gauge,
    );
    let now = Instant::now();
    for (sender, seen) in p.peers() {
        heard.push(
            vec![
                ("sender", format!("{sender:08x}")),
                ("addr", seen.addr.to_string()),
            ],
            Value::Float(now.duration_since(seen.at).as_secs_f64()),
        );
    }
    out.extend([backlog, running, heard]);
}

/// The port view's families, one sample per port.
fn port_families(ports: &[PortView], out: &mut Vec<Family>) {
    type Get = fn(&PortView) -> u64;
    let gauges: [(&'static str, &'static str, Get); 2] = [
        ("rvs_port_link_up", "1 while the port's link is up", |p| {
            u64::from(p.link_up)
        }),
        (
            "rvs_port_speed_mbps",
            "The port's link speed in Mbit/s (0 when unknown or down)",
            |p| p.speed_mbps.into(),
        ),
    ];
    let counters: [(&'static str, &'static str, Get); 8] = [
        (
            "rvs_port_rx_packets_total",
            "Packets the port received",
            |p| p.rx_packets,
        ),
        ("rvs_port_tx_packets_total", "Packets the port sent", |p| {
            p.tx_packets
        }),
        ("rvs_port_rx_bytes_total", "Bytes the port received", |p| {
            p.rx_bytes
        }),
        ("rvs_port_tx_bytes_total", "Bytes the port sent", |p| {
            p.tx_bytes
        }),
        (
            "rvs_port_rx_missed_total",
            "Packets the port dropped for want of room in its RX queues (imissed)",
            |p| p.rx_missed,
        ),
        (
            "rvs_port_rx_errors_total",
            "Receive errors (ierrors)",
            |p| p.rx_errors,
        ),
        (
            "rvs_port_tx_errors_total",
            "Transmit errors (oerrors)",
            |p| p.tx_errors,
        ),
        (
            "rvs_port_rx_nombuf_total",
            "Receive failures for want of an mbuf (rx_nombuf)",
            |p| p.rx_nombuf,
        ),
    ];
    let families = gauges
        .iter()
        .map(|g| (g, Kind::Gauge))
        .chain(counters.iter().map(|c| (c, Kind::Counter)));
    for ((name, help, get), kind) in families {
        let mut f = Family::new(name, help, kind);
        for p in ports {
            f.int(vec![("port", p.name.clone())], get(p));
        }
        out.push(f);
    }
}

/// Every family, read now.
pub fn families(r: &Readings) -> Vec<Family> {
    let mut out = Vec::new();
    let mut build = Family::new(
        "rvs_build_info",
        "Always 1, labelled with rvsd's version",
        Kind::Gauge,
    );
    build.int(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1);
    out.push(build);
    service_families(r, &mut out);
    worker_families(r, &mut out);
    let mut lips = Family::new(
        "rvs_lip_ports",
        "Each LIP's local ports on each worker, by state (in_use, quarantine, free)",
        Kind::Gauge,
    );
    for u in crate::views::lip_usage(r.workers, &r.model.config().lips6) {
        for (state, n) in [
            ("in_use", u.in_use),
            ("quarantine", u.quarantined),
            ("free", u.free),
        ] {
            lips.int(
                vec![
                    ("worker", u.worker.to_string()),
                    ("lip", u.lip.to_string()),
                    ("state", state.to_string()),
                ],
                n,
            );
        }
    }
    out.push(lips);
    if let Some(p) = r.sync {
        sync_families(p, &mut out);
    }
    let mut owned = Family::new(
        "rvs_address_owned",
        "1 while the director holds the managed address (keepalived's master), 0 on standby",
        Kind::Gauge,
    );
    for a in crate::views::managed_addresses(r.model) {
        owned.int(
            vec![
                ("address", a.addr.to_string()),
                ("role", a.role.to_string()),
            ],
            u64::from(a.owned),
        );
    }
    out.push(owned);
    let (in_use, total) = (MBUFS_IN_USE.load(Relaxed), MBUFS_CAPACITY.load(Relaxed));
    if in_use != u64::MAX {
        let mut f = Family::new(
            "rvs_mbufs_in_use",
            "Mbufs out of the packet pool (published about once a second)",
            Kind::Gauge,
        );
        f.int(Vec::new(), in_use);
        out.push(f);
    }
    if total != u64::MAX {
        let mut f = Family::new(
            "rvs_mbufs_capacity",
            "Mbufs in the packet pool",
            Kind::Gauge,
        );
        f.int(Vec::new(), total);
        out.push(f);
    }
    port_families(&r.ports.read(), &mut out);
    out
}

/// The families as a `prometheus_client` collector.
#[derive(Debug)]
struct Exposition(Vec<Family>);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // As Go's client does, a family without samples is left out.
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            let (name, ty) = match f.kind {
                // The encoder adds the `_total` every counter's name here ends with.
                Kind::Counter => (
                    f.name.strip_suffix("_total").unwrap_or(f.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (f.name, MetricType::Gauge),
            };
            let mut metric = encoder.encode_descriptor(name, f.help, None, ty)?;
            for s in &f.samples {
                let e = metric.encode_family(&s.labels)?;
                match (f.kind, s.value) {
                    (Kind::Counter, Value::Int(v)) => ConstCounter::new(v).encode(e)?,
                    (Kind::Counter, Value::Float(v)) => ConstCounter::new(v).encode(e)?,
                    (Kind::Gauge, Value::Int(v)) => ConstGauge::new(v).encode(e)?,
                    (Kind::Gauge, Value::Float(v)) => ConstGauge::new(v).encode(e)?,
                }
            }
        }
        Ok(())
    }
}

/// The families in the Prometheus text format.
pub fn encode(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(families)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        // Writing to a String cannot fail; the families are well formed.
        warn!("metrics: encoding failed: {e}");
    }
    out
}

/// The Prometheus text exposition of everything, read now.
pub fn render(r: &Readings) -> String {
    encode(families(r))
}

/// Serves scrapes on `listener` until `stop` is set (and a connection wakes the accept): each
/// connection on its own thread, at most [`MAX_SCRAPERS`] at once, answered by [`respond`].
pub fn serve(
    listener: TcpListener,
    stop: &AtomicBool,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) {
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "metrics: accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if live.fetch_add(1, Ordering::AcqRel) >= MAX_SCRAPERS {
            live.fetch_sub(1, Ordering::AcqRel);
            debug!("metrics: too many scrapes at once, one turned away");
            turn_away(conn);
            continue;
        }
        let (live2, render) = (live.clone(), render.clone());
        let spawned = std::thread::Builder::new()
            .name("rvs-scrape".into())
            .spawn(move || {
                answer(conn, &*render);
                live2.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            warn!("metrics: could not start a thread for a scrape");
            live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Answers 503 to a scrape beyond [`MAX_SCRAPERS`], on the accepting thread: at most 50 ms
/// to take in its request (closing with it unread would reset the connection before the
/// client read the answer).
fn turn_away(mut c: TcpStream) {
    // A new connection's send buffer is empty: this small answer does not block.
    let _ = c.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = c.write_all(&status_only("HTTP/1.0", "503 Service Unavailable", ""));
    let _ = c.shutdown(std::net::Shutdown::Write);
    let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 2048];
    let _ = c.read(&mut buf);
}

/// Reads one request from `c` (within [`SCRAPE_TIMEOUT`]) and answers it; a client that
/// sends no complete request in time is closed unanswered.
fn answer(mut c: TcpStream, render: &dyn Fn() -> String) {
    let deadline = Instant::now() + SCRAPE_TIMEOUT;
    let Some(head) = read_head(&mut c, deadline) else {
        return;
    };
    let reply = respond(&head, render);
    let _ = c.set_write_timeout(Some(SCRAPE_TIMEOUT));
    let _ = c.write_all(&reply);
    let _ = c.shutdown(std::net::Shutdown::Write);
}

/// The request head (up to and including the blank line), or `None` if the client closed
/// or timed out first. A head longer than [`MAX_HEAD`] is returned cut, to be refused.
fn read_head(c: &mut TcpStream, deadline: Instant) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() || c.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        let n = match c.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return Some(head);
        }
    }
}

/// An answer without a body worth rendering.
fn status_only(version: &str, status: &str, extra: &str) -> Vec<u8> {
    let body = format!("{status}\n");
    format!(
        "{version} {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The whole answer to a request head: `GET` (or `HEAD`) of `/metrics` or `/` → 200 with
/// `render`'s text (HEAD without it), another path → 404, another method → 405, anything
/// that is not an HTTP/1.0 or 1.1 request line → 400. Always `Content-Length` and
/// `Connection: close`, in the request's HTTP version.
pub fn respond(head: &[u8], render: &dyn Fn() -> String) -> Vec<u8> {
    let line_end = head.iter().position(|&b| b == b'\n');
    let line = line_end
        .and_then(|e| std::str::from_utf8(&head[..e]).ok())
        .map(|l| l.trim_end_matches('\r'));
    let mut parts = line.unwrap_or("").split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        return status_only("HTTP/1.0", "400 Bad Request", "");
    };
    if version != "HTTP/1.0" && version != "HTTP/1.1" || head.len() > MAX_HEAD {
        return status_only("HTTP/1.0", "400 Bad Request", "");
    }
    if method != "GET" && method != "HEAD" {
        return status_only(version, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" && path != "/" {
        return status_only(version, "404 Not Found", "");
    }
    let body = render();
    let mut out = format!(
        "{version} 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(head: &str) -> String {
        String::from_utf8(respond(head.as_bytes(), &|| "x 1\n".to_string())).unwrap()
    }

    #[test]
    fn answers_by_method_path_and_version() {
        let ok = text("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\nx 1\n"),
            "{ok}"
        );
        assert!(text("GET / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200 OK"));
        assert!(text("GET /metrics?x=1 HTTP/1.0\n\n").starts_with("HTTP/1.0 200 OK"));
        let head = text("HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.contains("Content-Length: 4\r\n") && head.ends_with("\r\n\r\n"));
        assert!(text("GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found"));
        let post = text("POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        for bad in [
            "GET /metrics\r\n\r\n",
            "GET /metrics HTTP/2.0\r\n\r\n",
            "\u{0}\r\n\r\n",
            "",
        ] {
            assert!(text(bad).starts_with("HTTP/1.0 400 Bad Request"), "{bad:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(text(&long).starts_with("HTTP/1.0 400"));
        // Every answer says how long it is.
        for a in [ok, post, text("GET /x HTTP/1.0\r\n\r\n")] {
            let (h, body) = a.split_once("\r\n\r\n").unwrap();
            assert!(
                h.contains(&format!("Content-Length: {}\r\n", body.len())),
                "{a}"
            );
        }
    }

    #[test]
    fn counters_and_gauges_encode_with_help_type_and_labels() {
        let mut c = Family::new("rvs_x_total", "Things \\ seen\nhere", Kind::Counter);
        c.int(vec![("a", "q\"uote".into())], 7);
        c.int(Vec::new(), 8);
        let mut g = Family::new("rvs_ratio", "A ratio", Kind::Gauge);
        g.push(vec![("w", "0".into())], Value::Float(0.25));
        let out = encode(vec![c, g]);
        assert_eq!(
            out,
            "# HELP rvs_x_total Things \\\\ seen\\nhere\n# TYPE rvs_x_total counter\n\
             rvs_x_total{a=\"q\\\"uote\"} 7\nrvs_x_total 8\n\
             # HELP rvs_ratio A ratio\n# TYPE rvs_ratio gauge\nrvs_ratio{w=\"0\"} 0.25\n"
        );
    }

    #[test]
    fn port_families_have_one_sample_per_port() {
        let ports = [
            PortView {
                name: "wan".into(),
                link_up: true,
                speed_mbps: 10000,
                rx_packets: 5,
                rx_nombuf: 2,
                ..Default::default()
            },
            PortView {
                name: "lan".into(),
                ..Default::default()
            },
        ];
        let mut out = Vec::new();
        port_families(&ports, &mut out);
        let text = encode(out);
        for line in [
            "rvs_port_link_up{port=\"wan\"} 1\n",
            "rvs_port_link_up{port=\"lan\"} 0\n",
            "rvs_port_speed_mbps{port=\"wan\"} 10000\n",
            "rvs_port_rx_packets_total{port=\"wan\"} 5\n",
            "rvs_port_rx_nombuf_total{port=\"wan\"} 2\n",
            "rvs_port_rx_missed_total{port=\"lan\"} 0\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}
