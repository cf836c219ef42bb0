//! rvsd's control server: requests from `rvsadm` applied to the model, listings built from the
//! workers' published counters, rates from an IPVS-style estimator, and a Prometheus endpoint.
//!
//! Threads, all blocking (never spinning — the data path has the cores): one accepting on the
//! Unix socket (mode 0600), one per client (at most [`MAX_CLIENTS`]), one for the estimator
//! (every 2 s) and one accepting metrics scrapes. The model sits behind a mutex on the control
//! side only; workers see nothing but the snapshots it publishes.
//!
//! Who may connect, how often, how many at once and how long a request may take are the
//! business of [`crate::access`]: the accepting thread checks the peer's uid, the connection
//! rate and the slots before a client thread starts; the client thread enforces its request
//! deadlines and request rate. Every refusal is an error answer and changes nothing.

use crate::change::{self, Change};
use crate::config::RvsConfig;
use crate::health::{Checker, HealthCheck, HealthSink, Target};
use crate::model::{ControlError, Model};
use crate::proto::{
    self, ConnView, DestView, ErrorKind, FrameError, Rates, Request, Response, ServiceView, Stats,
    SvcKey, WorkerView,
};
use conntrack::{SessionState, TcpState};
use dataplane::counters::Counter;
use dataplane::drop::DropReason;
use dataplane::stats::{DestSample, WorkerStats};
use dataplane::worker::{MailRequest, Mailbox};
use sched::{Dest, ForwardMode, SchedError};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

pub use crate::access::MAX_CLIENTS;
use crate::access::{self, DeadlineReader, Limits, Peer, Refusal, Slot, Slots, TokenBucket};

/// The estimator's period (IPVS's is 2 s).
pub const ESTIMATOR_PERIOD: Duration = Duration::from_secs(2);

/// IPVS-style rate estimator (ip_vs_est.c): every period, the per-second rate of each counter
/// is folded into a moving average with weight 1/4, in fixed point (×2^10 for counts, ×2^5 for
/// bytes).
#[derive(Clone, Copy, Debug, Default)]
struct Est {
    last: DestSample,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

fn ewma(avg: u64, rate: u64) -> u64 {
    let (a, r) = (avg as i64, rate as i64);
    (a + ((r - a) >> 2)).max(0) as u64
}

impl Est {
    fn update(&mut self, now: &DestSample, period: Duration) {
        let secs_x2 = (period.as_millis().max(1) as u64 * 2).div_ceil(1000).max(1);
        let per =
            |new: u64, old: u64, shift: u32| ((new.saturating_sub(old)) << shift) * 2 / secs_x2;
        self.cps = ewma(self.cps, per(now.conns, self.last.conns, 10));
        self.inpps = ewma(self.inpps, per(now.inpkts, self.last.inpkts, 10));
        self.outpps = ewma(self.outpps, per(now.outpkts, self.last.outpkts, 10));
        self.inbps = ewma(self.inbps, per(now.inbytes, self.last.inbytes, 5));
        self.outbps = ewma(self.outbps, per(now.outbytes, self.last.outbytes, 5));
        self.last = *now;
    }

    fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps + 0x1ff) >> 10,
            inpps: (self.inpps + 0x1ff) >> 10,
            outpps: (self.outpps + 0x1ff) >> 10,
            inbps: (self.inbps + 0xf) >> 5,
            outbps: (self.outbps + 0xf) >> 5,
        }
    }
}

/// A metric: name, Prometheus type, and how to read it from a sample of `T`.
type Metric<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Mbufs out of rvsd's packet pool, as the daemon last published it (about once a second);
/// `u64::MAX` while no pool publishes (the metric is left out then). For `rvs_mbufs_in_use`.
pub static MBUFS_IN_USE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// The control plane's state: the model, the workers' counters, `-Z` baselines, estimators.
pub struct ControlState {
    model: Model,
    workers: Vec<Arc<WorkerStats>>,
    mailboxes: Vec<Arc<Mailbox>>,
    baseline: HashMap<u32, DestSample>,
    est: HashMap<u32, Est>,
    /// Health checks of a configuration reloaded through the socket, for the server to
    /// (re)start once the request is answered.
    pending_checks: Option<Vec<crate::health::HealthCheck>>,
    /// The health checks in force (for `--health`).
    checks: Vec<HealthCheck>,
}

fn refused(e: impl ToString) -> Response {
    Response::Error {
        kind: ErrorKind::Refused,
        message: e.to_string(),
    }
}

impl ControlState {
    /// State over `model`, reading the counters of `workers` and asking them for session
    /// lists through `mailboxes` (one per worker, in worker order).
    pub fn new(
        model: Model,
        workers: Vec<Arc<WorkerStats>>,
        mailboxes: Vec<Arc<Mailbox>>,
    ) -> ControlState {
        ControlState {
            model,
            workers,
            mailboxes,
            baseline: HashMap::new(),
            est: HashMap::new(),
            pending_checks: None,
            checks: Vec::new(),
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Applies the services, addresses, routes, LIPs and timeouts of `new` (a reload).
    ///
    /// # Errors
    /// The new configuration's error; nothing changes then.
    pub fn reload(&mut self, new: &RvsConfig) -> Result<(), ControlError> {
        if new.director.lips != self.model.config().lips
            || new.director.lport_range != self.model.config().lport_range
        {
            warn!("reload: LIP changes take effect at the next restart");
        }
        self.model.apply(Change::Replace(new.director.clone()))?;
        info!("configuration reloaded");
        Ok(())
    }

    /// What `checks` probe: each dest of each checked service as the model has it now, up
    /// unless the model already has it down (so a restarted check does not flap it).
    pub fn health_targets(&self, checks: &[HealthCheck]) -> Vec<Target> {
        let m = &self.model;
        checks
            .iter()
            .filter_map(|c| m.config().services.get(&c.service).map(|s| (c, s)))
            .flat_map(|(c, s)| {
                s.dests().iter().map(|d| Target {
                    check: c.clone(),
                    addr: d.addr,
                    port: d.port,
                    up: !m.is_down(c.service, d.addr, d.port),
                })
            })
            .collect()
    }

    /// Sum over workers of one dest slot's counters.
    fn sample(&self, slot: u32) -> DestSample {
        let mut s = DestSample::default();
        for w in &self.workers {
            s.add(&w.dest(slot).sample());
        }
        s
    }

    /// One estimator period.
    pub fn tick(&mut self, period: Duration) {
        let slots: Vec<u32> = self
            .model
            .config()
            .services
            .iter()
            .flat_map(|s| {
                let key = s.key();
                s.dests()
                    .iter()
                    .map(move |d| (key, d.addr, d.port))
                    .collect::<Vec<_>>()
            })
            .filter_map(|(k, a, p)| self.model.slots().get(k, a, p))
            .collect();
        for slot in slots {
            let now = self.sample(slot);
            self.est.entry(slot).or_insert_with(|| Est {
                last: now,
                ..Est::default()
            });
            if let Some(e) = self.est.get_mut(&slot) {
                e.update(&now, period);
            }
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::List { service } => self.list(service),
            Request::Timeouts => {
                let t = self.model.config().timeouts;
                Response::Timeouts {
                    tcp: t.get(SessionState::Tcp(TcpState::Established)) / 1000,
                    tcpfin: t.get(SessionState::Tcp(TcpState::FinWait)) / 1000,
                    udp: t.get(SessionState::Udp) / 1000,
                }
            }
            Request::Workers => self.workers(),
            Request::Lips => self.lips(),
            Request::Health => self.health(),
            Request::Connections => connections(&self.mailboxes),
            Request::Zero { service } => self.zero(service),
            Request::Reload { path } => match RvsConfig::load(&path) {
                Ok(new) => match self.reload(&new) {
                    Ok(()) => {
                        self.pending_checks = Some(new.checks.clone());
                        self.checks = new.checks;
                        Response::Done
                    }
                    Err(e) => refused(e),
                },
                Err(e) => refused(format!("{path}: {e}")),
            },
            change => {
                // Counters zeroed inside a batch (a restored -Z), once it has applied.
                let zeroed = change::zeroed_by(&change);
                match Change::try_from(change).and_then(|c| self.model.apply(c)) {
                    Ok(()) => {
                        for service in zeroed {
                            self.zero(service);
                        }
                        Response::Done
                    }
                    Err(e) => refused(e),
                }
            }
        }
    }

    fn zero(&mut self, service: Option<SvcKey>) -> Response {
        let cfg = self.model.config();
        let keys: Vec<sched::ServiceKey> = match service {
            Some(k) => {
                let k: sched::ServiceKey = k.into();
                if cfg.services.get(&k).is_none() {
                    return refused(SchedError::ServiceNotFound { key: k });
                }
                vec![k]
            }
            None => cfg.services.iter().map(|s| s.key()).collect(),
        };
        let mut slots = Vec::new();
        for k in keys {
            if let Some(s) = cfg.services.get(&k) {
                for d in s.dests() {
                    if let Some(slot) = self.model.slots().get(k, d.addr, d.port) {
                        slots.push(slot);
                    }
                }
            }
        }
        for slot in slots {
            let now = self.sample(slot);
            self.baseline.insert(slot, now);
        }
        Response::Done
    }

    fn dest_view(&self, key: sched::ServiceKey, d: &Dest) -> DestView {
        let slot = self.model.slots().get(key, d.addr, d.port);
        let (now, base, rates) = match slot {
            Some(s) => (
                self.sample(s),
                self.baseline.get(&s).copied().unwrap_or_default(),
                self.est.get(&s).map(Est::rates).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        DestView {
            addr: d.addr,
            port: d.port,
            forward: d.mode.ipvsadm_name().to_string(),
            weight: self.model.effective_weight(key, d),
            active: now.active,
            inactive: now.inactive,
            stats: Stats {
                conns: now.conns.saturating_sub(base.conns),
                inpkts: now.inpkts.saturating_sub(base.inpkts),
                outpkts: now.outpkts.saturating_sub(base.outpkts),
                inbytes: now.inbytes.saturating_sub(base.inbytes),
                outbytes: now.outbytes.saturating_sub(base.outbytes),
            },
            rates,
        }
    }

    fn list(&self, service: Option<SvcKey>) -> Response {
        let cfg = self.model.config();
        let mut services = Vec::new();
        let wanted: Option<sched::ServiceKey> = service.map(Into::into);
        if let Some(k) = wanted {
            if cfg.services.get(&k).is_none() {
                return refused(SchedError::ServiceNotFound { key: k });
            }
        }
        for s in cfg
            .services
            .iter()
            .filter(|s| wanted.is_none_or(|k| k == s.key()))
        {
            let key = s.key();
            let dests: Vec<DestView> = s.dests().iter().map(|d| self.dest_view(key, d)).collect();
            let mut stats = Stats::default();
            let mut rates = Rates::default();
            for d in &dests {
                stats.conns += d.stats.conns;
                stats.inpkts += d.stats.inpkts;
                stats.outpkts += d.stats.outpkts;
                stats.inbytes += d.stats.inbytes;
                stats.outbytes += d.stats.outbytes;
                rates.cps += d.rates.cps;
                rates.inpps += d.rates.inpps;
                rates.outpps += d.rates.outpps;
                rates.inbps += d.rates.inbps;
                rates.outbps += d.rates.outbps;
            }
            services.push(ServiceView {
                key: key.into(),
                scheduler: s.sched().to_string(),
                persistence: s.persistence(),
                synproxy: s.synproxy(),
                stats,
                rates,
                dests,
            });
        }
        Response::Services { services }
    }

    fn lips(&self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let cfg = self.model.config();
        Response::Lips {
            lips: cfg.lips.clone(),
            first_port: *cfg.lport_range.start(),
            last_port: *cfg.lport_range.end(),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| proto::LipWorkerView {
                    id: i as u16,
                    available: w.worker.lip_available.load(Relaxed),
                    capacity: w.worker.lip_capacity.load(Relaxed),
                })
                .collect(),
        }
    }

    fn health(&self) -> Response {
        let cfg = self.model.config();
        let mut dests = Vec::new();
        for c in &self.checks {
            let Some(s) = cfg.services.get(&c.service) else {
                continue;
            };
            for d in s.dests() {
                dests.push(proto::HealthView {
                    service: c.service.into(),
                    addr: d.addr,
                    port: d.port,
                    check: describe_check(c),
                    up: !self.model.is_down(c.service, d.addr, d.port),
                    weight: d.weight,
                });
            }
        }
        Response::Health { dests }
    }

    /// Sets the health checks in force (listed by `--health`).
    pub fn set_checks(&mut self, checks: &[HealthCheck]) {
        self.checks = checks.to_vec();
    }

    fn workers(&self) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = &w.worker;
                WorkerView {
                    id: i as u16,
                    rx_packets: c.get(Counter::RxPackets),
                    tx_packets: c.get(Counter::TxPackets),
                    sessions: c.sessions.load(Relaxed),
                    redirected_out: c.get(Counter::RedirectedOut),
                    redirected_in: c.get(Counter::RedirectedIn),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.as_str().to_string(), c.drop_count(*r)))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    busy_permille: c.busy_permille.load(Relaxed) as u32,
                    counters: Counter::ALL
                        .iter()
                        .map(|k| (k.as_str().to_string(), c.get(*k)))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                }
            })
            .collect();
        Response::Workers { workers }
    }

    /// The Prometheus text exposition of every counter.
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
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
        let cfg = self.model.config();
        for (name, kind, get) in dest_metrics {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for s in cfg.services.iter() {
                let key = s.key();
                for d in s.dests() {
                    let v = self
                        .model
                        .slots()
                        .get(key, d.addr, d.port)
                        .map(|slot| get(&self.sample(slot)))
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
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(w));
            }
        }
        for c in Counter::ALL {
            let _ = writeln!(out, "# TYPE {} counter", c.metric());
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{}{{worker=\"{i}\"}} {}", c.metric(), w.worker.get(*c));
            }
        }
        let _ = writeln!(out, "# TYPE rvs_worker_drops_total counter");
        for (i, w) in self.workers.iter().enumerate() {
            for r in DropReason::ALL {
                let n = w.worker.drop_count(*r);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "rvs_worker_drops_total{{worker=\"{i}\",reason=\"{}\"}} {n}",
                        r.as_str()
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
}

/// A check in one line, e.g. `http GET / = 200 every 2s timeout 1s rise 2 fall 3`.
fn describe_check(c: &HealthCheck) -> String {
    let what = match &c.kind {
        crate::health::CheckKind::Tcp => "tcp connect".to_string(),
        crate::health::CheckKind::Udp => "udp".to_string(),
        crate::health::CheckKind::Http { path, expect } => format!("http GET {path} = {expect}"),
    };
    let port = c.port.map(|p| format!(" port {p}")).unwrap_or_default();
    format!(
        "{what}{port} every {:?} timeout {:?} rise {} fall {}",
        c.interval, c.timeout, c.rise, c.fall
    )
}

/// Most sessions one `-c` listing returns per worker.
pub const MAX_LISTED_SESSIONS: usize = 100_000;

/// Asks every worker for its sessions (answered in their slow jobs) and lists them.
pub fn connections(mailboxes: &[Arc<Mailbox>]) -> Response {
    let mut waiting = Vec::new();
    for (w, m) in mailboxes.iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let posted = m.post(MailRequest::DumpSessions {
            max: MAX_LISTED_SESSIONS,
            reply: tx,
        });
        if posted.is_err() {
            return Response::Error {
                kind: ErrorKind::Internal,
                message: format!("worker {w} is busy with other requests: try again"),
            };
        }
        waiting.push((w, rx));
    }
    let mut conns = Vec::new();
    for (w, rx) in waiting {
        let Ok(list) = rx.recv_timeout(Duration::from_secs(2)) else {
            return Response::Error {
                kind: ErrorKind::Internal,
                message: format!("worker {w} did not answer within 2 s"),
            };
        };
        for s in list {
            let f = s.forward;
            conns.push(ConnView {
                proto: s.original.proto.into(),
                expire_secs: s.expires_in.div_ceil(1000),
                state: s.state.to_string(),
                source: s.original.src,
                sport: s.original.sport,
                vip: s.original.dst,
                vport: s.original.dport,
                dest: f.rip,
                dport: f.rport,
                local: f.local(),
                worker: w as u16,
            });
        }
    }
    Response::Connections { conns }
}

/// Health verdicts become [`Change::Health`] through the model.
impl HealthSink for Mutex<ControlState> {
    fn dest_health(
        &self,
        service: sched::ServiceKey,
        addr: std::net::Ipv4Addr,
        port: u16,
        up: bool,
    ) {
        let change = Change::Health {
            key: service,
            addr,
            port,
            up,
        };
        if let Err(e) = lock(self).model.apply(change) {
            warn!(%service, %addr, "could not publish a health change: {e}");
        }
    }
}

fn lock(state: &Mutex<ControlState>) -> MutexGuard<'_, ControlState> {
    // A panic while holding the lock would be a bug in the handler; keep serving the model.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The health checks, restarted when a reload changes them.
type Checks = Arc<Mutex<Option<Checker>>>;

/// The running control threads.
pub struct Server {
    stop: Arc<AtomicBool>,
    socket: PathBuf,
    metrics: Option<std::net::SocketAddr>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Mutex<ControlState>>,
    checks: Checks,
    slots: Arc<Slots>,
}

impl Server {
    /// Listens on the Unix socket `path` (mode 0600; its directory is created if missing; a
    /// stale socket file is replaced, a live one is an error), optionally serves metrics on
    /// `metrics`, and runs the estimator, with the default [`Limits`].
    ///
    /// # Errors
    /// Socket or listener errors, an unsafe socket directory (see [`access::bind_socket`]), or
    /// another rvsd already answering on `path`.
    pub fn start(
        path: &Path,
        metrics: Option<std::net::SocketAddr>,
        state: Arc<Mutex<ControlState>>,
        checks: &[HealthCheck],
    ) -> io::Result<Server> {
        Server::start_with(path, metrics, state, checks, Limits::default())
    }

    /// [`Server::start`] with other limits.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn start_with(
        path: &Path,
        metrics: Option<std::net::SocketAddr>,
        state: Arc<Mutex<ControlState>>,
        checks: &[HealthCheck],
        limits: Limits,
    ) -> io::Result<Server> {
        let listener = access::bind_socket(path)?;
        // The uid rvsd runs as owns the socket it just made.
        let owner = std::fs::metadata(path)?.uid();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        lock(&state).set_checks(checks);
        let checker: Checks = Arc::new(Mutex::new(Some(start_checks(checks, &state))));
        let slots = Arc::new(Slots::new(limits.max_clients));

        let (st, sp, ck, sl) = (state.clone(), stop.clone(), checker.clone(), slots.clone());
        threads.push(
            std::thread::Builder::new()
                .name("rvs-control".into())
                .spawn(move || {
                    let mut rate = TokenBucket::new(
                        limits.connections_per_sec,
                        limits.connection_burst,
                        Instant::now(),
                    );
                    for conn in listener.incoming() {
                        if sp.load(Ordering::Acquire) {
                            break;
                        }
                        let conn = match conn {
                            Ok(c) => c,
                            Err(e) => {
                                // Out of descriptors, say: wait instead of spinning.
                                warn!(error = %e, "control socket: accept failed");
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                        };
                        let slot = match admit(&conn, owner, &mut rate, &sl, &limits) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                refuse(conn, &refusal);
                                continue;
                            }
                        };
                        let (st, ck, sl2, slot2) =
                            (st.clone(), ck.clone(), sl.clone(), slot.clone());
                        let spawned = std::thread::Builder::new().name("rvs-client".into()).spawn(
                            move || {
                                serve_client(conn, &slot2, &limits, &st, &ck);
                                sl2.leave(&slot2);
                            },
                        );
                        if spawned.is_err() {
                            warn!("could not start a thread for a control client");
                            sl.leave(&slot);
                        }
                    }
                })?,
        );

        let (st, sp) = (state.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("rvs-estimator".into())
                .spawn(move || {
                    while !sp.load(Ordering::Acquire) {
                        std::thread::park_timeout(ESTIMATOR_PERIOD);
                        if sp.load(Ordering::Acquire) {
                            break;
                        }
                        lock(&st).tick(ESTIMATOR_PERIOD);
                    }
                })?,
        );

        let mut metrics_addr = None;
        if let Some(addr) = metrics {
            let l = TcpListener::bind(addr)?;
            metrics_addr = Some(l.local_addr()?);
            let (st, sp) = (state.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-metrics".into())
                    .spawn(move || {
                        for conn in l.incoming() {
                            if sp.load(Ordering::Acquire) {
                                break;
                            }
                            if let Ok(c) = conn {
                                serve_metrics(c, &st);
                            }
                        }
                    })?,
            );
        }
        info!(socket = %path.display(), metrics = ?metrics_addr, "control plane listening");
        Ok(Server {
            stop,
            socket: path.to_path_buf(),
            metrics: metrics_addr,
            threads,
            state,
            checks: checker,
            slots,
        })
    }

    /// Control clients being served now.
    pub fn clients(&self) -> usize {
        self.slots.live()
    }

    /// Applies a reloaded configuration (SIGHUP): the model, then the health checks.
    ///
    /// # Errors
    /// The configuration's error; nothing changes then.
    pub fn reload(&self, new: &RvsConfig) -> Result<(), ControlError> {
        {
            let mut st = lock(&self.state);
            st.reload(new)?;
            st.set_checks(&new.checks);
        }
        restart_checks(&self.checks, &new.checks, &self.state);
        Ok(())
    }

    /// The metrics address actually bound (useful with port 0).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// Stops every control thread and removes the socket file.
    pub fn stop(mut self) {
        if let Some(c) = self.checks.lock().unwrap_or_else(|p| p.into_inner()).take() {
            c.stop();
        }
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accepts with a connection of our own.
        let _ = UnixStream::connect(&self.socket);
        if let Some(a) = self.metrics {
            let _ = TcpStream::connect(a);
        }
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Replaces the running health checks by `checks`.
fn restart_checks(current: &Checks, checks: &[HealthCheck], state: &Arc<Mutex<ControlState>>) {
    let mut slot = current.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = slot.take() {
        old.stop();
    }
    *slot = Some(start_checks(checks, state));
}

/// Starts `checks` on the dests the model has now.
fn start_checks(checks: &[HealthCheck], state: &Arc<Mutex<ControlState>>) -> Checker {
    let targets = lock(state).health_targets(checks);
    Checker::start(targets, state.clone())
}

/// Admits a new connection: its peer's uid, the connection rate, then a slot.
fn admit(
    conn: &UnixStream,
    owner: u32,
    rate: &mut TokenBucket,
    slots: &Slots,
    limits: &Limits,
) -> Result<Arc<Slot>, Refusal> {
    let peer = Peer::of(conn).map_err(Refusal::Credentials)?;
    access::authorize(&peer, owner)?;
    let now = Instant::now();
    if !rate.take(now) {
        return Err(Refusal::ConnectionRate {
            per_sec: limits.connections_per_sec,
            burst: limits.connection_burst,
        });
    }
    slots.admit(conn, now)
}

/// Tells a connection why it is not served, and closes it.
fn refuse(mut conn: UnixStream, refusal: &Refusal) {
    match refusal {
        Refusal::Denied { uid, pid, .. } => {
            warn!(
                uid,
                pid, "control client refused: only root and rvsd's uid may connect"
            );
        }
        Refusal::Credentials(e) => warn!(error = %e, "control client refused: no credentials"),
        other => debug!(reason = %other, "control client turned away"),
    }
    // A new connection's send buffer is empty: this small answer does not block.
    let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = proto::write_frame(&mut conn, &refusal.response());
}

/// Serves one control client until it hangs up, misses a request deadline, sends something
/// unreadable, or is evicted to make room for another.
fn serve_client(
    mut conn: UnixStream,
    slot: &Slot,
    limits: &Limits,
    state: &Arc<Mutex<ControlState>>,
    checks: &Checks,
) {
    let _ = conn.set_write_timeout(Some(limits.write));
    let mut rate = TokenBucket::new(
        limits.requests_per_sec,
        limits.request_burst,
        Instant::now(),
    );
    let mut wait = limits.first_request;
    loop {
        let mut reader = DeadlineReader::new(&conn, Instant::now() + wait);
        let read = proto::read_frame_bytes(&mut reader);
        let received = reader.received();
        if !slot.start_work() {
            let evicted = Refusal::Evicted {
                clients: limits.max_clients,
            };
            let _ = proto::write_frame(&mut conn, &evicted.response());
            return;
        }
        let body = match read {
            Ok(b) => b,
            Err(FrameError::Io(e)) if access::is_timeout(&e) => {
                let late = Refusal::Timeout {
                    limit: wait,
                    received,
                };
                debug!(reason = %late, "control client closed");
                let _ = proto::write_frame(&mut conn, &late.response());
                return;
            }
            // Hung up, possibly in the middle of a request: nothing to answer, nothing done.
            Err(FrameError::Io(_)) => return,
            // Over MAX_FRAME: refused unread; the stream is out of step, so it ends here.
            Err(e) => {
                let _ = proto::write_frame(
                    &mut conn,
                    &Response::Error {
                        kind: ErrorKind::BadRequest,
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        let response = if !rate.take(Instant::now()) {
            Refusal::RequestRate {
                per_sec: limits.requests_per_sec,
                burst: limits.request_burst,
            }
            .response()
        } else {
            answer(&body, state, checks)
        };
        if proto::write_frame(&mut conn, &response).is_err() {
            return;
        }
        slot.finish_work(Instant::now());
        wait = limits.next_request;
    }
}

/// Decodes and answers one request body.
fn answer(body: &[u8], state: &Arc<Mutex<ControlState>>, checks: &Checks) -> Response {
    match proto::decode_request(body) {
        // Waits for the workers: done without holding the model.
        Ok(Request::Connections) => {
            let boxes = lock(state).mailboxes.clone();
            connections(&boxes)
        }
        Ok(req) => {
            let (response, reloaded) = {
                let mut st = lock(state);
                let r = st.handle(req);
                (r, st.pending_checks.take())
            };
            if let Some(new) = reloaded {
                restart_checks(checks, &new, state);
            }
            response
        }
        Err(e) => Response::Error {
            kind: ErrorKind::BadRequest,
            message: e.to_string(),
        },
    }
}

/// Answers one HTTP request on the metrics port with the Prometheus text format.
fn serve_metrics(mut c: TcpStream, state: &Mutex<ControlState>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 1024];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap_or(0);
    let req = String::from_utf8_lossy(&buf[..n]);
    let (status, body) = if req.starts_with("GET /metrics") || req.starts_with("GET / ") {
        ("200 OK", lock(state).metrics())
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let _ = write!(
        c,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}
