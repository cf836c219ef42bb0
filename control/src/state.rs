//! The control plane's state and how it answers a request.
//!
//! [`ControlState`] holds the model, the workers' published counters and mailboxes, the `-Z`
//! baselines, the estimator and the health checks in force. Changes — rvsadm's requests, a
//! reload, a health verdict — become a [`Change`] and go through [`Model::apply`]; listings are
//! built by [`crate::views`] from what the state reads. The server keeps it behind a mutex on
//! the control side only; workers see nothing but the snapshots the model publishes.

use crate::announce::{Announcer, DrainProbe};
use crate::change::{self, Change};
use crate::config::RvsConfig;
use crate::convert::service_key;
use crate::estimator::Estimator;
use crate::health::{HealthCheck, HealthSink, Target};
use crate::metrics::{self, PortStatsBoard};
use crate::model::{ControlError, Model};
use crate::ownership::HeldSink;
use crate::sync::{Role, StartOptions, SyncError, SyncPlane, SyncSettings};
use crate::views::{self, refused, Readings};
use conntrack::{SessionState, TcpState};
use dataplane::stats::{DestSample, WorkerStats};
use dataplane::worker::Mailbox;
use proto::{Request, Response, SvcKey};
use sched::{SchedError, ServiceKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{info, warn};

/// Sets rvsd's log filter at run time (`rvsadm --log-level`): the filter's text, or why it
/// is not one.
pub type LogFilterSetter = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// The control plane's state: the model, the workers' counters, `-Z` baselines, estimator.
pub struct ControlState {
    model: Model,
    workers: Vec<Arc<WorkerStats>>,
    mailboxes: Vec<Arc<Mailbox>>,
    baseline: HashMap<u32, DestSample>,
    estimator: Estimator,
    /// Health checks of a configuration reloaded through the socket, for the server to
    /// (re)start once the request is answered.
    pending_checks: Option<Vec<HealthCheck>>,
    /// The health checks in force (for `--health`).
    checks: Vec<HealthCheck>,
    /// Session sync, when rvsd has it ([`ControlState::set_sync`]).
    sync: Option<SyncPlane>,
    /// What `--start-daemon` takes for the settings it does not give.
    sync_defaults: SyncSettings,
    /// The cluster's announcer, when rvsd has `[cluster]` ([`ControlState::set_announcer`]).
    announcer: Option<Announcer>,
    /// The services the configuration file declares (the model's at start, then the last
    /// reloaded file's). The file is authoritative for them, as keepalived is for its
    /// virtual servers: a reload puts them back as the file has them; services made with
    /// rvsadm are kept across reloads.
    file_services: BTreeSet<ServiceKey>,
    /// How `--log-level` reaches the daemon's logger, when it gave one.
    log_filter: Option<LogFilterSetter>,
    /// The ports' link state and counters, as the daemon last published them.
    ports: Arc<PortStatsBoard>,
}

impl ControlState {
    /// State over `model`, reading the counters of `workers` and asking them for session
    /// lists through `mailboxes` (one per worker, in worker order).
    pub fn new(
        model: Model,
        workers: Vec<Arc<WorkerStats>>,
        mailboxes: Vec<Arc<Mailbox>>,
    ) -> ControlState {
        let file_services = model.config().services.iter().map(|s| s.key()).collect();
        ControlState {
            model,
            workers,
            mailboxes,
            baseline: HashMap::new(),
            estimator: Estimator::default(),
            pending_checks: None,
            checks: Vec::new(),
            sync: None,
            sync_defaults: SyncSettings::default(),
            announcer: None,
            file_services,
            log_filter: None,
            ports: Arc::default(),
        }
    }

    /// Lets `--log-level` change the daemon's log filter through `set`.
    pub fn set_log_filter_setter(&mut self, set: LogFilterSetter) {
        self.log_filter = Some(set);
    }

    /// Where the daemon publishes the ports' readings (`--ports`, `rvs_port_*`).
    pub fn port_board(&self) -> Arc<PortStatsBoard> {
        self.ports.clone()
    }

    /// Gives the control plane a cluster announcer (`[cluster]`).
    pub fn set_announcer(&mut self, announcer: Announcer) {
        self.announcer = Some(announcer);
    }

    /// One announcer tick (see [`Announcer::tick`]): true once a drain is over and rvsd
    /// should exit. False without an announcer.
    pub fn announce_tick(&mut self) -> bool {
        let snap = self.model.cell().load_full();
        let sync = self.sync.as_ref().map(|p| p.view()).unwrap_or_default();
        let probe = Probe {
            sync: self.sync.as_ref(),
            workers: &self.workers,
        };
        match &mut self.announcer {
            Some(a) => a.tick(&snap, sync, &probe),
            None => false,
        }
    }

    /// Withdraws every announced route (rvsd stopping).
    pub fn withdraw_all(&mut self) {
        if let Some(a) = &mut self.announcer {
            a.withdraw_all();
        }
    }

    /// Starts a drain (`rvsadm --drain`, SIGUSR1).
    ///
    /// # Errors
    /// Why not: this rvsd has no `[cluster]`.
    pub fn drain(&mut self, timeout: Option<Duration>) -> Result<(), &'static str> {
        let mut probe = Probe {
            sync: self.sync.as_ref(),
            workers: &self.workers,
        };
        match &mut self.announcer {
            Some(a) => {
                a.drain(timeout, &mut probe);
                Ok(())
            }
            None => Err("this rvsd is not in a cluster: --drain needs a [cluster] section (without one, stop rvsd)"),
        }
    }

    fn cluster(&self) -> Response {
        let Some(a) = &self.announcer else {
            return refused("this rvsd is not in a cluster (no [cluster] section)");
        };
        let (daemons, peers, backlog) = match self.sync.as_ref().map(|p| p.response(&self.workers))
        {
            Some(Response::Daemons {
                daemons,
                peers,
                backlog,
                ..
            }) => (daemons, peers, backlog),
            _ => (Vec::new(), Vec::new(), 0),
        };
        let view = crate::sync::service_view(&self.model.cell().load());
        Response::Cluster {
            cluster: Box::new(proto::ClusterView {
                phase: a.phase().to_string(),
                phase_ms: a.in_phase().as_millis() as u64,
                table: a.settings().table,
                interface: a.settings().interface.clone(),
                routes: a
                    .installed()
                    .iter()
                    .map(|(addr, (metric, role))| proto::RouteView {
                        addr: *addr,
                        metric: *metric,
                        role: role.as_str().to_string(),
                    })
                    .collect(),
                drain: a.drain_status().to_string(),
                route_errors: a.errors(),
                daemons,
                peers,
                backlog,
                view_services: view.services,
                view_digest: format!("{:016x}", view.digest),
            }),
        }
    }

    /// Gives the control plane session sync over `plane`, `--start-daemon` taking
    /// `defaults` for what it does not say.
    pub fn set_sync(&mut self, plane: SyncPlane, defaults: SyncSettings) {
        self.sync = Some(plane);
        self.sync_defaults = defaults;
    }

    /// Starts a sync daemon role with `options` over the defaults (as `--start-daemon`).
    ///
    /// # Errors
    /// [`SyncError`], e.g. [`SyncError::Unavailable`] without [`ControlState::set_sync`].
    pub fn start_daemon(&mut self, role: Role, options: StartOptions) -> Result<(), SyncError> {
        let settings = options.over(&self.sync_defaults);
        self.sync
            .as_mut()
            .ok_or(SyncError::Unavailable)?
            .start(role, settings)
    }

    /// Stops every sync daemon role (rvsd stopping).
    pub fn stop_daemons(&mut self) {
        if let Some(p) = &mut self.sync {
            p.stop_all();
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The workers' mailboxes, for `-c` (which waits for the workers without the state).
    pub fn mailboxes(&self) -> Vec<Arc<Mailbox>> {
        self.mailboxes.clone()
    }

    /// The workers' published counters, in worker order.
    pub fn worker_stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.clone()
    }

    /// What the listings and metrics read.
    fn readings(&self) -> Readings<'_> {
        Readings {
            model: &self.model,
            workers: &self.workers,
            baseline: &self.baseline,
            estimator: &self.estimator,
            checks: &self.checks,
            sync: self.sync.as_ref(),
            ports: &self.ports,
        }
    }

    /// Applies the services, addresses, routes, LIPs and timeouts of `new` (a reload).
    ///
    /// # Errors
    /// The new configuration's error; nothing changes then.
    pub fn reload(&mut self, new: &RvsConfig) -> Result<(), ControlError> {
        if new.director.lips != self.model.config().lips
            || new.director.lips6 != self.model.config().lips6
            || new.director.lport_range != self.model.config().lport_range
            || new.director.lport_reuse != self.model.config().lport_reuse
        {
            warn!("reload: LIP changes take effect at the next restart");
        }
        // The file's services as it has them, and the services made with rvsadm (neither in
        // the file before nor now) as they are.
        let mut merged = new.director.clone();
        let mut kept = 0;
        for s in self.model.config().services.iter() {
            let key = s.key();
            if !self.file_services.contains(&key) && merged.services.get(&key).is_none() {
                merged.services.add(s.clone())?;
                kept += 1;
            }
        }
        // With the file's sorry servers (rvsadm makes none).
        self.model.apply(Change::Batch(vec![
            Change::Replace(Box::new(merged)),
            Change::SetSorry(new.sorry_servers.iter().copied().collect()),
        ]))?;
        self.file_services = new.director.services.iter().map(|s| s.key()).collect();
        info!(
            file_services = self.file_services.len(),
            rvsadm_services_kept = kept,
            "configuration reloaded"
        );
        Ok(())
    }

    /// The services of `change` that the configuration file manages (for `-C`: every such
    /// service there is now).
    fn file_managed(&self, change: &Change) -> BTreeSet<ServiceKey> {
        let named = match change {
            Change::Clear => self
                .model
                .config()
                .services
                .iter()
                .map(|s| s.key())
                .collect(),
            other => other.services(),
        };
        named
            .into_iter()
            .filter(|k| self.file_services.contains(k))
            .collect()
    }

    /// A restore (`-R`, a batch) leaves the services the file manages as they are: their
    /// commands are taken out, and named in the answer. Other changes are applied whole and
    /// the answer notes a file-managed service they touch.
    fn applied(&mut self, change: Change) -> Result<Option<String>, ControlError> {
        let note = match change {
            Change::Batch(changes) => {
                let (skipped, kept): (Vec<Change>, Vec<Change>) = changes
                    .into_iter()
                    .partition(|c| !self.file_managed(c).is_empty() && !matches!(c, Change::Clear));
                let keys: BTreeSet<ServiceKey> =
                    skipped.iter().flat_map(|c| self.file_managed(c)).collect();
                self.model.apply(Change::Batch(kept))?;
                (!keys.is_empty()).then(|| {
                    format!(
                        "{} command(s) for {} left out: the configuration file manages {}",
                        skipped.len(),
                        list(&keys),
                        if keys.len() == 1 { "it" } else { "them" }
                    )
                })
            }
            change => {
                let keys = self.file_managed(&change);
                self.model.apply(change)?;
                (!keys.is_empty()).then(|| {
                    format!(
                        "{} {} managed by the configuration file: a reload puts the file's version back",
                        list(&keys),
                        if keys.len() == 1 { "is" } else { "are" }
                    )
                })
            }
        };
        Ok(note)
    }

    /// One estimator period over every dest's counters.
    pub fn tick(&mut self, period: Duration) {
        let readings = self.readings();
        let samples: Vec<(u32, DestSample)> = self
            .model
            .config()
            .services
            .iter()
            .flat_map(|s| {
                let k = s.key();
                self.model
                    .published_dests(k)
                    .into_iter()
                    .map(move |d| (k, d.addr, d.port))
            })
            .filter_map(|(k, a, p)| self.model.slots().get(k, a, p))
            .map(|slot| (slot, readings.sample(slot)))
            .collect();
        self.estimator.tick(samples, period);
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::List { service } => self.readings().services(service),
            Request::Timeouts => {
                let t = self.model.config().timeouts;
                Response::Timeouts {
                    tcp: t.get(SessionState::Tcp(TcpState::Established)) / 1000,
                    tcpfin: t.get(SessionState::Tcp(TcpState::FinWait)) / 1000,
                    udp: t.get(SessionState::Udp) / 1000,
                }
            }
            Request::Workers => self.readings().workers(),
            Request::Ports => Response::Ports {
                ports: self.ports.read(),
            },
            Request::Lips => self.readings().lips(),
            Request::Health => self.readings().health(),
            Request::StartDaemon {
                role,
                interface,
                sync_id,
                maxlen,
                group,
                port,
                ttl,
                peers,
                refresh_secs,
            } => {
                let options = StartOptions {
                    interface,
                    sync_id,
                    maxlen,
                    group,
                    port,
                    ttl,
                    peers,
                    refresh_secs,
                };
                match self.start_daemon(role.into(), options) {
                    Ok(()) => Response::Done,
                    Err(e) => sync_refused(&e),
                }
            }
            Request::StopDaemon { role } => {
                match self
                    .sync
                    .as_mut()
                    .ok_or(SyncError::Unavailable)
                    .and_then(|p| p.stop(role.into()))
                {
                    Ok(()) => Response::Done,
                    Err(e) => sync_refused(&e),
                }
            }
            Request::Daemons => match &self.sync {
                Some(p) => p.response(&self.workers),
                None => Response::Daemons {
                    daemons: Vec::new(),
                    peers: Vec::new(),
                    backlog: 0,
                    counters: Vec::new(),
                },
            },
            Request::Addresses => self.readings().addresses(),
            Request::Cluster => self.cluster(),
            Request::Drain { timeout_secs } => {
                match self.drain(timeout_secs.map(|s| Duration::from_secs(u64::from(s)))) {
                    Ok(()) => Response::Done,
                    Err(e) => refused(e),
                }
            }
            Request::Connections { from } => {
                views::connections(&self.mailboxes, &self.workers, from)
            }
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
            Request::LogLevel { filter } => match &self.log_filter {
                Some(set) => match set(&filter) {
                    Ok(()) => {
                        info!("log filter is now {filter:?} (rvsadm --log-level)");
                        Response::Done
                    }
                    Err(e) => refused(format!("bad log filter {filter:?}: {e}")),
                },
                None => refused("this rvsd cannot change its log filter at run time"),
            },
            change => {
                // Counters zeroed inside a batch (a restored -Z), once it has applied.
                let zeroed = change::zeroed_by(&change);
                match Change::try_from(change).and_then(|c| self.applied(c)) {
                    Ok(note) => {
                        for service in zeroed {
                            self.zero(service);
                        }
                        match note {
                            Some(note) => Response::Noted { note },
                            None => Response::Done,
                        }
                    }
                    Err(e) => refused(e),
                }
            }
        }
    }

    /// `-Z`: the counters of one service's dests (or of all) start again from 0.
    fn zero(&mut self, service: Option<SvcKey>) -> Response {
        let cfg = self.model.config();
        let keys: Vec<ServiceKey> = match service {
            Some(k) => {
                let k = service_key(k);
                if cfg.services.get(&k).is_none() {
                    return refused(SchedError::NoSuchService { key: k });
                }
                vec![k]
            }
            None => cfg.services.iter().map(|s| s.key()).collect(),
        };
        let mut slots = Vec::new();
        for k in keys {
            if cfg.services.get(&k).is_some() {
                for d in self.model.published_dests(k) {
                    if let Some(slot) = self.model.slots().get(k, d.addr, d.port) {
                        slots.push(slot);
                    }
                }
            }
        }
        let readings = self.readings();
        let now: Vec<(u32, DestSample)> = slots
            .into_iter()
            .map(|slot| (slot, readings.sample(slot)))
            .collect();
        self.baseline.extend(now);
        Response::Done
    }

    /// Sets the health checks in force (listed by `--health`).
    pub fn set_checks(&mut self, checks: &[HealthCheck]) {
        self.checks = checks.to_vec();
    }

    /// The health checks of a configuration reloaded through the socket since the last call,
    /// for the server to restart.
    pub fn take_pending_checks(&mut self) -> Option<Vec<HealthCheck>> {
        self.pending_checks.take()
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

    /// The Prometheus text exposition of every counter.
    pub fn metrics(&self) -> String {
        metrics::render(&self.readings())
    }

    /// Every metric family, read now (those without samples too, which the exposition
    /// leaves out).
    pub fn metric_families(&self) -> Vec<metrics::Family> {
        metrics::families(&self.readings())
    }
}

/// Health verdicts become [`Change::Health`] through the model, which puts a service's sorry
/// server in service while none of its dests is up (logged when it comes and goes).
impl HealthSink for Mutex<ControlState> {
    fn dest_health(&self, service: ServiceKey, addr: IpAddr, port: u16, up: bool) {
        let change = Change::Health {
            key: service,
            addr,
            port,
            up,
        };
        let mut st = lock(self);
        let before = st.model.sorry_server(service);
        if let Err(e) = st.model.apply(change) {
            warn!(%service, %addr, "could not publish a health change: {e}");
            return;
        }
        match (before, st.model.sorry_server(service)) {
            (None, Some(d)) => warn!(
                %service,
                sorry_server = %std::net::SocketAddr::from((d.addr, d.port)),
                "no dest is up: the sorry server takes the new sessions"
            ),
            (Some(d), None) => info!(
                %service,
                sorry_server = %std::net::SocketAddr::from((d.addr, d.port)),
                "a dest is up again: the sorry server is out, its sessions drain"
            ),
            _ => {}
        }
    }
}

/// The address follower's view becomes [`Change::Held`] through the model; each managed
/// address that changes hands is logged.
impl HeldSink for Mutex<ControlState> {
    fn held(&self, held: BTreeMap<Ipv4Addr, u16>) {
        let mut st = lock(self);
        let before = views::managed_addresses(&st.model);
        if let Err(e) = st.model.apply(Change::Held(held)) {
            warn!("could not publish the addresses the exception interfaces hold: {e}");
            return;
        }
        for (old, new) in before.iter().zip(views::managed_addresses(&st.model)) {
            if old.owned != new.owned {
                if new.owned {
                    info!(address = %new.addr, interface = ?new.interface, "managed address owned: answering and serving it");
                } else {
                    info!(address = %new.addr, "managed address released: standby");
                }
            }
        }
    }
}

/// The state, even if a thread panicked while holding it: a panic in a handler would be a
/// bug there, and the model is only ever replaced whole, so keep serving it.
pub(crate) fn lock(state: &Mutex<ControlState>) -> MutexGuard<'_, ControlState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Services for a note: `TCP 192.0.2.100:80, UDP 192.0.2.100:53`.
fn list(keys: &BTreeSet<ServiceKey>) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sync daemon request refused: the daemon's own words.
fn sync_refused(e: &SyncError) -> Response {
    let kind = match e {
        SyncError::Socket { .. } => proto::ErrorKind::Internal,
        _ => proto::ErrorKind::Refused,
    };
    Response::Error {
        kind,
        message: e.to_string(),
    }
}

/// What a drain reads and asks through the control state.
struct Probe<'a> {
    sync: Option<&'a SyncPlane>,
    workers: &'a [Arc<WorkerStats>],
}

impl DrainProbe for Probe<'_> {
    fn sweep(&mut self) -> Option<Vec<u32>> {
        self.sync.and_then(SyncPlane::sweep_all)
    }

    fn swept(&self, sweeps: &[u32]) -> bool {
        self.sync.is_some_and(|p| p.swept(sweeps))
    }

    fn sessions(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.worker.sessions.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}
