//! Bringing the director up on DPDK, running it, and taking it down cleanly.
//!
//! Start: EAL (the operator's arguments plus one `--vdev`/`-a` per port and one `net_tap` per
//! exception path), one mbuf pool, every port configured with one RX/TX queue pair per worker
//! (RSS across them where the port can), TAPs given their data port's MAC. Then one thread per
//! worker, pinned to its core and registered with the EAL, each owning queue `w` of every port,
//! its own session table and its share of LIP ports; the workers share the configuration
//! snapshot and the redirect rings. The main thread blocks on signals: SIGHUP reloads the
//! services, addresses and timeouts from the file; SIGINT/SIGTERM stop the workers, then the
//! ports, then the EAL (no hugepage files are left behind: `--huge-unlink` is added unless the
//! operator runs without hugepages or in memory). While it runs, a small thread publishes the
//! pool's mbufs in use and each data port's link and counters once a second
//! (`rvs_mbufs_in_use`, `rvs_port_*` and `rvsadm --ports`), and the address
//! follower (`control::ownership`) tells the model which addresses the exception TAPs hold:
//! keepalived's `virtual_ipaddress`es there make managed VIPs and LIPs owned.

use control::config::{PortConfig, RvsConfig};
use control::model::Model;
use control::ownership::{AddressFollower, FollowError};
use control::server::Server;
use control::state::ControlState;
use control::sync::{Role, StartOptions, SyncPlane};
use dataplane::dpdk_port::DpdkQueue;
use dataplane::icmpv6;
use dataplane::lip::LipPool;
use dataplane::redirect::RedirectRings;
use dataplane::rss::ReplySteering;
use dataplane::rss::{Reta, RssKey};
use dataplane::sync::{FlowOwner, SyncLink};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{PortRole, Worker, WorkerConfig};
use dataplane::Counters;
use dpdk::flow::{Flow, L4Proto};
use dpdk::{Eal, Mbuf, Mempool, Port, PortConf, PortMonitor, RssConf};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file.
    #[error("configuration: {0}")]
    Config(#[from] control::config::ConfigFileError),
    /// The DPDK environment or a port.
    #[error("{0}")]
    Dpdk(#[from] dpdk::DpdkError),
    /// A port named in the configuration did not appear after EAL init.
    #[error("port \"{name}\": device {device} did not appear after EAL init: check the device string (a vdev like net_vhost0,iface=PATH or a PCI address bound to a DPDK driver)")]
    NoSuchPort {
        /// The port's name in the configuration.
        name: String,
        /// The EAL device name looked up.
        device: String,
    },
    /// A port cannot give each worker its own queue.
    #[error("port \"{name}\" ({driver}) has at most {max} queues, but {workers} workers need one each: lower [daemon] workers")]
    TooFewQueues {
        /// The port.
        name: String,
        /// Its driver.
        driver: String,
        /// Queues it offers.
        max: u16,
        /// Workers configured.
        workers: u16,
    },
    /// RSS asked on a port that cannot do it.
    #[error("port \"{name}\" ({driver}) cannot do RSS: set rss = false for it (the redirect rings then hand each packet to the worker owning its session) or run one worker")]
    NoRss {
        /// The port.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// The control socket or metrics listener could not start.
    #[error("control plane: {0}")]
    Control(std::io::Error),
    /// A sync daemon of `[sync]` could not start.
    #[error("[sync]: {0}")]
    Sync(#[from] control::sync::SyncError),
    /// The cluster's announcer (`[cluster]`).
    #[error("cluster: {0}")]
    Announce(#[from] control::announce::AnnounceError),
    /// The worker could not be built.
    #[error("worker {id}: {source}")]
    Worker {
        /// Worker index.
        id: u16,
        /// Why.
        source: dataplane::worker::WorkerError,
    },
    /// The EAL would need hugepages and there are none.
    #[error("{0}")]
    NoHugepages(String),
    /// The addresses of the exception TAPs cannot be followed, and managed addresses need it.
    #[error("[ha] managed_addresses: {0}")]
    Follow(#[from] FollowError),
    /// A thread could not be started or pinned.
    #[error("worker {id}: {message}")]
    Thread {
        /// Worker index.
        id: u16,
        /// Why.
        message: String,
    },
}

/// The EAL arguments rvsd runs with: the operator's, `-l CORE` unless they chose lcores, then
/// the devices of the ports and of the exception TAPs, then `--huge-unlink` when hugepages
/// are in use.
pub fn eal_args(cfg: &RvsConfig) -> Vec<String> {
    let mut args = vec!["rvsd".to_string()];
    args.extend(cfg.eal_args.iter().cloned());
    // Workers are rvsd's own pinned threads: the EAL needs just one lcore, for the main thread
    // (which blocks on signals). More would start idle EAL threads for nothing.
    let cores_given = cfg
        .eal_args
        .iter()
        .any(|a| a == "-l" || a == "-c" || a.starts_with("--lcores") || a.starts_with("-l"));
    if !cores_given {
        let main = cfg
            .daemon
            .cores
            .as_ref()
            .and_then(|c| c.first())
            .copied()
            .unwrap_or(0);
        args.push("-l".into());
        args.push(main.to_string());
    }
    for p in &cfg.ports {
        if p.is_vdev() {
            args.push("--vdev".into());
        } else {
            args.push("-a".into());
        }
        args.push(p.device.clone());
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if let Some(ifname) = &p.exception {
            args.push("--vdev".into());
            args.push(format!("{},iface={ifname}", tap_name(i)));
        }
    }
    let no_files = cfg
        .eal_args
        .iter()
        .any(|a| a == "--no-huge" || a == "--in-memory" || a == "--huge-unlink");
    if !no_files {
        args.push("--huge-unlink".into());
    }
    args
}

/// Why the EAL will not find the memory these arguments ask for, if it will not: hugepages are
/// needed (no `--no-huge`) but `meminfo` shows none reserved.
pub fn hugepage_problem(args: &[String], meminfo: &str) -> Option<String> {
    if args.iter().any(|a| a == "--no-huge") {
        return None;
    }
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Total:"))
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    (total == 0).then(|| {
        "no hugepages are reserved: reserve some (echo 512 > /proc/sys/vm/nr_hugepages, and \
         mount hugetlbfs if none is mounted), or add \"--no-huge\", \"-m\", \"1024\" to [eal] args"
            .to_string()
    })
}

/// The EAL's runtime directory for these arguments (`/var/run/dpdk/PREFIX` as root).
fn runtime_dir(args: &[String]) -> std::path::PathBuf {
    let prefix = args
        .iter()
        .position(|a| a == "--file-prefix")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--file-prefix=").map(str::to_string))
        })
        .unwrap_or_else(|| "rte".to_string());
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !is_root() => std::path::PathBuf::from(d).join("dpdk"),
        _ => std::path::PathBuf::from("/var/run/dpdk"),
    };
    base.join(prefix)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The EAL, and its runtime directory to remove once the EAL is cleaned up. rvsd held the
/// primary lock of its file prefix, so the directory is its own.
struct EalGuard {
    eal: Option<Eal>,
    dir: std::path::PathBuf,
}

impl Drop for EalGuard {
    fn drop(&mut self) {
        self.eal.take();
        if !Eal::is_running() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tap_name(port: usize) -> String {
    format!("net_tap_rvs{port}")
}

/// A running director.
pub struct Daemon {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Result<Counters, DaemonError>>>,
    flows: Vec<Flow>,
    server: Option<Server>,
    /// The control state (the sync daemon stops with rvsd).
    control: Arc<Mutex<ControlState>>,
    /// Follows the exception TAPs' addresses (managed addresses' ownership).
    addresses: Option<AddressFollower>,
    /// The cluster's announcer thread and its stop flag.
    announcer: Option<AnnouncerThread>,
    /// Publishes the pool's mbufs in use and the port view (it holds a pool handle and the
    /// ports' monitors: joined before the pool and the ports go).
    pool_gauge: Option<JoinHandle<()>>,
    ports: Vec<Port>,
    config: RvsConfig,
    // Dropped last: the pool after the ports, the EAL after everything.
    pool: Option<Mempool>,
    eal: Option<EalGuard>,
}

impl Daemon {
    /// Starts the director described by `cfg`.
    ///
    /// # Errors
    /// EAL, port, queue or thread setup failures, each saying what to do.
    pub fn start(cfg: RvsConfig) -> Result<Daemon, DaemonError> {
        let args = eal_args(&cfg);
        if let Some(msg) = hugepage_problem(
            &args,
            &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        ) {
            return Err(DaemonError::NoHugepages(msg));
        }
        // Before the EAL pins this thread to its main lcore, which narrows what it may run on.
        let cores = worker_cores(&cfg);
        info!(args = ?args, "starting EAL");
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let eal = EalGuard {
            eal: Some(Eal::init(&arg_refs)?),
            dir: runtime_dir(&args),
        };
        let workers = cfg.daemon.workers;
        let pool = Mempool::new(
            "rvs_pkt",
            cfg.daemon.mbufs,
            cfg.daemon.mbuf_cache,
            Mempool::DEFAULT_DATA_ROOM,
            None,
        )?;

        // Data ports first (indices 0..P), then their exception TAPs.
        let mut ports = Vec::new();
        let mut roles = Vec::new();
        let mut macs = Vec::new();
        for (i, p) in cfg.ports.iter().enumerate() {
            let port = open_port((i, p), p.device_name(), workers, &cfg, &pool, true)?;
            macs.push(port.mac());
            ports.push(port);
            roles.push(PortRole::Data { exception: None });
        }
        let data_ports = ports.len();
        for (i, p) in cfg.ports.iter().enumerate() {
            if p.exception.is_some() {
                let mut tap = open_port((i, p), &tap_name(i), workers, &cfg, &pool, false)?;
                // The kernel side answers and sends as the data port: same MAC.
                tap.set_mac(macs[i])?;
                let idx = ports.len() as u16;
                roles[i] = PortRole::Data {
                    exception: Some(idx),
                };
                roles.push(PortRole::Exception { data: i as u16 });
                ports.push(tap);
            }
        }
        for port in &mut ports {
            port.start()?;
        }
        // Ports doing RSS: their key and RETA let each worker pick FullNAT ports whose
        // replies come back to its own queue.
        let mut rss: Vec<Option<(RssKey, Reta)>> = Vec::new();
        for (i, p) in cfg.ports.iter().enumerate() {
            rss.push(if rss_wanted(p, workers) {
                reply_hashing(&ports[i], &p.name)
            } else {
                None
            });
        }
        // Session sync installs a peer's flow on the worker its packets reach here.
        let owner = FlowOwner::new(workers, &rss);
        // Where a port takes flow rules, they steer each worker's LIP-port slice to its queue
        // exactly (and replace the RSS steering there).
        let mut flows: Vec<Flow> = Vec::new();
        if workers > 1 && !cfg.director.lips.is_empty() {
            for (i, p) in cfg.ports.iter().enumerate() {
                match steer_by_flow(&ports[i], &cfg, workers) {
                    Ok(f) => {
                        info!(port = %p.name, rules = f.len(), "FullNAT replies steered by rte_flow");
                        flows.extend(f);
                        rss[i] = None;
                    }
                    Err(e) => info!(port = %p.name, "no rte_flow steering ({e})"),
                }
            }
        }
        for (p, mac) in cfg.ports.iter().zip(&macs) {
            info!(
                port = %p.name,
                device = p.device_name(),
                mac = %EthernetAddress(*mac),
                "port up"
            );
        }
        info!(
            ports = data_ports,
            taps = ports.len() - data_ports,
            workers,
            "ports started"
        );

        let refused = |e| match e {
            control::model::ControlError::Config(c) => {
                DaemonError::Config(control::config::ConfigFileError::Director(c))
            }
            other => DaemonError::Control(std::io::Error::other(other.to_string())),
        };
        let mut model = Model::new(cfg.director.clone()).map_err(refused)?;
        // The services' sorry servers, in service while none of their dests is up.
        model
            .apply(control::Change::SetSorry(
                cfg.sorry_servers.iter().copied().collect(),
            ))
            .map_err(refused)?;
        let cell = model.cell();
        let mut worker_stats = Vec::new();
        let mut mailboxes = Vec::new();
        let rings: Arc<RedirectRings<Mbuf>> = Arc::new(RedirectRings::new(
            workers as usize,
            cfg.daemon.redirect_depth,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let mut links = Vec::new();
        for w in 0..workers {
            let queues: Vec<DpdkQueue> = ports
                .iter()
                .map(|p| DpdkQueue::from_port(p, w, pool.clone()))
                .collect::<Result<_, _>>()?;
            let steering = rss
                .iter()
                .map(|r| {
                    r.as_ref()
                        .and_then(|(key, reta)| ReplySteering::new(key, reta.clone(), w).ok())
                })
                .collect();
            let wcfg = WorkerConfig {
                id: w,
                workers,
                table_capacity: cfg.daemon.table_capacity,
                table6_capacity: cfg.daemon.table6_capacity,
                template_capacity: cfg.daemon.template_capacity,
                fragment_capacity: cfg.daemon.fragment_capacity,
                slow_every: cfg.daemon.slow_every,
                ports: roles.clone(),
                steering,
                ..WorkerConfig::default()
            };
            let link = Arc::new(SyncLink::default());
            links.push(link.clone());
            let worker = Worker::new(wcfg, queues, cell.clone())
                .and_then(|wk| wk.with_redirect(rings.clone()))
                .map(|wk| wk.with_sync(link))
                .map_err(|source| DaemonError::Worker { id: w, source })?;
            worker_stats.push(worker.stats_handle());
            mailboxes.push(worker.mailbox_handle());
            let stop = stop.clone();
            let core = cores.get(w as usize).copied();
            let neighbours = cfg.neighbours.clone();
            let idle_sleep = (cfg.daemon.idle_sleep_us > 0)
                .then(|| Duration::from_micros(cfg.daemon.idle_sleep_us.into()));
            let h = std::thread::Builder::new()
                .name(format!("rvs-worker-{w}"))
                .spawn(move || run_worker(w, core, worker, neighbours, idle_sleep, stop))
                .map_err(|e| DaemonError::Thread {
                    id: w,
                    message: e.to_string(),
                })?;
            handles.push(h);
        }
        let mut state = ControlState::new(model, worker_stats, mailboxes);
        state.set_sync(
            SyncPlane::new(links, owner, cell.clone()),
            cfg.sync.settings.clone(),
        );
        let control = Arc::new(Mutex::new(state));
        let server = Server::start(
            std::path::Path::new(&cfg.daemon.socket),
            cfg.daemon.metrics,
            control.clone(),
            &cfg.checks,
        )
        .map_err(DaemonError::Control);
        let server = match server {
            Ok(s) => s,
            Err(e) => {
                stop_workers(&stop, handles);
                return Err(e);
            }
        };
        if cfg.daemon.kernel_addresses {
            configure_kernel(&cfg);
        }
        let addresses = match follow_addresses(&cfg, &control) {
            Ok(f) => f,
            Err(e) => {
                server.stop();
                stop_workers(&stop, handles);
                return Err(e);
            }
        };
        // The sync socket binds to a kernel interface, and the announced routes point at a
        // TAP: both once the TAPs are up. A failed announcer stops the sync daemons again.
        let started = start_sync(&cfg, &control).and_then(|()| {
            start_announcer(&cfg, &control).inspect_err(|_| lock(&control).stop_daemons())
        });
        let announcer = match started {
            Ok(a) => a,
            Err(e) => {
                if let Some(f) = addresses {
                    f.stop();
                }
                server.stop();
                stop_workers(&stop, handles);
                return Err(e);
            }
        };
        // The data ports (the first ones, in configuration order) for the port view.
        let monitors: Vec<(String, PortMonitor)> = cfg
            .ports
            .iter()
            .zip(&ports)
            .map(|(p, port)| (p.name.clone(), port.monitor()))
            .collect();
        let board = lock(&control).port_board();
        control::metrics::MBUFS_CAPACITY.store(pool.capacity().into(), Ordering::Relaxed);
        let gauge_pool = pool.clone();
        let pool_gauge = spawn_gauge(
            move || {
                board.publish(read_ports(&monitors));
                u64::from(gauge_pool.in_use())
            },
            &control::metrics::MBUFS_IN_USE,
            Duration::from_secs(1),
            stop.clone(),
        )
        .map_err(|e| {
            warn!("no rvs_mbufs_in_use metric nor port view: cannot start its thread: {e}")
        })
        .ok();
        Ok(Daemon {
            stop,
            workers: handles,
            flows,
            server: Some(server),
            control,
            addresses,
            announcer,
            pool_gauge,
            ports,
            config: cfg,
            pool: Some(pool),
            eal: Some(eal),
        })
    }

    /// Applies the services, addresses, routes, LIPs and timeouts of a new configuration.
    /// Ports, EAL and daemon settings need a restart; a change there is logged and ignored.
    ///
    /// # Errors
    /// The new configuration's error; nothing is changed then.
    pub fn reload(&mut self, new: RvsConfig) -> Result<(), DaemonError> {
        if new.ports != self.config.ports
            || new.daemon != self.config.daemon
            || new.eal_args != self.config.eal_args
        {
            warn!("reload: [eal], [daemon] and [[port]] changes need a restart; applying the rest");
        }
        // The model, then the health checks (down dests stay down until they rise).
        if let Some(s) = &self.server {
            s.reload(&new)
                .map_err(|e| DaemonError::Control(std::io::Error::other(e.to_string())))?;
        }
        self.config.director = new.director;
        self.config.checks = new.checks;
        Ok(())
    }

    /// Lets `rvsadm --log-level` set the log filter through `set`.
    pub fn set_log_filter_setter(&self, set: control::state::LogFilterSetter) {
        lock(&self.control).set_log_filter_setter(set);
    }

    /// Starts a drain (SIGUSR1, as `rvsadm --drain`): the announcer withdraws everything,
    /// waits for the sessions to reach the peers, then raises SIGTERM.
    pub fn drain(&self) {
        match lock(&self.control).drain(None) {
            Ok(()) => {
                info!("draining: announcements withdrawn, rvsd exits once the sessions are synced")
            }
            Err(e) => warn!("drain refused: {e}"),
        }
    }

    /// Stops the workers and the ports; returns each worker's final counters.
    pub fn stop(mut self) -> Vec<Result<Counters, DaemonError>> {
        // Announcements first: the router stops sending before anything stops forwarding.
        if let Some((flag, thread)) = self.announcer.take() {
            flag.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
            lock(&self.control).withdraw_all();
        }
        if let Some(f) = self.addresses.take() {
            f.stop();
        }
        self.control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stop_daemons();
        if let Some(s) = self.server.take() {
            s.stop();
        }
        self.stop.store(true, Ordering::Release);
        if let Some(g) = self.pool_gauge.take() {
            g.thread().unpark();
            let _ = g.join();
        }
        let mut results = Vec::new();
        for (w, h) in self.workers.drain(..).enumerate() {
            results.push(h.join().unwrap_or_else(|_| {
                Err(DaemonError::Thread {
                    id: w as u16,
                    message: "the worker thread panicked".into(),
                })
            }));
        }
        // Flow rules go before their ports.
        self.flows.clear();
        for p in &mut self.ports {
            if let Err(e) = p.stop() {
                warn!(error = %e, "stopping a port");
            }
        }
        // The workers (and their queues) are gone: the ports can close.
        for p in self.ports.drain(..) {
            if let Err(e) = p.close() {
                warn!(error = %e, "closing a port");
            }
        }
        self.pool.take();
        self.eal.take();
        results
    }
}

/// Starts the sync daemon roles `[sync]` asks for.
/// Stops the workers of a start that failed half-way, and waits for them.
fn stop_workers(stop: &AtomicBool, handles: Vec<JoinHandle<Result<Counters, DaemonError>>>) {
    stop.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
}

/// The announcer's thread and its stop flag.
type AnnouncerThread = (Arc<AtomicBool>, JoinHandle<()>);

fn lock(control: &Mutex<ControlState>) -> std::sync::MutexGuard<'_, ControlState> {
    control
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// With `[cluster]`: the announcer (its routes point at a TAP, so after the ports are up),
/// ticked from a thread of its own; once a drain is over it raises SIGTERM, and rvsd stops
/// as on any SIGTERM.
fn start_announcer(
    cfg: &RvsConfig,
    control: &Arc<Mutex<ControlState>>,
) -> Result<Option<AnnouncerThread>, DaemonError> {
    let Some(settings) = &cfg.cluster else {
        return Ok(None);
    };
    let announcer = control::announce::Announcer::new(settings.clone())?;
    lock(control).set_announcer(announcer);
    let flag = Arc::new(AtomicBool::new(false));
    let (f, st) = (flag.clone(), control.clone());
    let thread = std::thread::Builder::new()
        .name("rvs-announce".into())
        .spawn(move || {
            while !f.load(Ordering::Acquire) {
                std::thread::park_timeout(control::announce::TICK);
                if f.load(Ordering::Acquire) {
                    break;
                }
                if lock(&st).announce_tick() {
                    info!("drained: stopping");
                    if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGTERM) {
                        error!("drained, but could not raise SIGTERM: {e}");
                    }
                    break;
                }
            }
        })
        .map_err(|e| DaemonError::Thread {
            id: u16::MAX,
            message: format!("announcer: {e}"),
        })?;
    Ok(Some((flag, thread)))
}

fn start_sync(cfg: &RvsConfig, control: &Mutex<ControlState>) -> Result<(), DaemonError> {
    let mut st = control
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (on, role) in [
        (cfg.sync.master, Role::Master),
        (cfg.sync.backup, Role::Backup),
    ] {
        if on {
            st.start_daemon(role, StartOptions::default())?;
        }
    }
    Ok(())
}

fn open_port(
    (i, p): (usize, &PortConfig),
    device: &str,
    workers: u16,
    cfg: &RvsConfig,
    pool: &Mempool,
    data: bool,
) -> Result<Port, DaemonError> {
    let mut port = Port::by_name(device).map_err(|_| DaemonError::NoSuchPort {
        name: p.name.clone(),
        device: device.to_string(),
    })?;
    let info = port.info()?;
    if info.max_rx_queues < workers || info.max_tx_queues < workers {
        return Err(DaemonError::TooFewQueues {
            name: p.name.clone(),
            driver: info.driver_name.clone(),
            max: info.max_rx_queues.min(info.max_tx_queues),
            workers,
        });
    }
    let want_rss = data && rss_wanted(p, workers);
    if want_rss && info.flow_type_rss_offloads == 0 {
        return Err(DaemonError::NoRss {
            name: p.name.clone(),
            driver: info.driver_name,
        });
    }
    let rss = want_rss.then_some(RssConf {
        hash_functions: info.flow_type_rss_offloads
            & (dpdk::port::rss::IP | dpdk::port::rss::TCP | dpdk::port::rss::UDP),
        key: None,
    });
    port.configure(
        &PortConf {
            rx_queues: workers,
            tx_queues: workers,
            rx_desc: cfg.daemon.rx_desc,
            tx_desc: cfg.daemon.tx_desc,
            mtu: if data { p.mtu } else { None },
            rss,
            tx_offloads: 0,
        },
        pool,
    )?;
    if data {
        if let Some(mac) = p.mac {
            port.set_mac(mac)?;
        }
        // Only when asked: several virtual PMDs implement neither enabling nor disabling it.
        if p.promiscuous {
            port.promiscuous(true)?;
        }
        let groups = multicast_groups(cfg, i, p.exception.is_some());
        if !groups.is_empty() {
            receive_multicast(&mut port, &p.name, &groups);
        }
    }
    Ok(port)
}

/// The group MACs of the link-local multicast the kernel behind an exception path needs when
/// the port cannot take every group: all-hosts (224.0.0.1) and VRRP (224.0.0.18).
const KERNEL_GROUPS: [[u8; 6]; 2] = [
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12],
];

/// The group MACs data port `port` must receive: with an exception path, the kernel's
/// ([`KERNEL_GROUPS`]); with IPv6 DIPs, all-nodes and the solicited-node group of each DIP
/// and of each IPv6 VIP the configuration file names, where neighbour solicitations for them
/// arrive (a VIP added later by rvsadm relies on the port receiving every group).
fn multicast_groups(cfg: &RvsConfig, port: usize, exception: bool) -> Vec<[u8; 6]> {
    let mut groups = if exception {
        KERNEL_GROUPS.to_vec()
    } else {
        Vec::new()
    };
    let dips6: Vec<Ipv6Addr> = cfg
        .director
        .interfaces
        .iter()
        .filter(|f| f.port as usize == port)
        .flat_map(|f| f.addrs6.iter().map(|a| a.addr))
        .collect();
    let vips6 = cfg
        .director
        .services
        .iter()
        .filter_map(|s| match s.key().vip {
            IpAddr::V6(vip) if !dips6.is_empty() => Some(vip),
            _ => None,
        });
    let addrs6: Vec<Ipv6Addr> = dips6.iter().copied().chain(vips6).collect();
    for a in addrs6 {
        for g in [icmpv6::ALL_NODES, icmpv6::solicited_node(a)] {
            let mac = icmpv6::group_mac(g);
            if !groups.contains(&mac) {
                groups.push(mac);
            }
        }
    }
    groups
}

/// Has a data port receive the multicast its kernel (VRRP adverts for keepalived behind the
/// exception path) and its IPv6 DIPs (neighbour solicitations) need: every group if the
/// driver can, else `groups`. A driver that can do neither is logged: some (net_af_packet)
/// receive multicast anyway.
fn receive_multicast(port: &mut Port, name: &str, groups: &[[u8; 6]]) {
    let all = match port.allmulticast() {
        Ok(()) => {
            info!(port = name, "receiving all multicast");
            return;
        }
        Err(e) => e,
    };
    match port.set_multicast_addrs(groups) {
        Ok(()) => info!(
            port = name,
            groups = groups.len(),
            "receiving the kernel's and the IPv6 DIPs' groups (no allmulticast: {all})"
        ),
        Err(e) => warn!(
            port = name,
            "the driver takes neither allmulticast ({all}) nor a multicast list ({e}): VRRP \
             adverts and neighbour solicitations arrive only if it receives multicast anyway \
             (net_af_packet does)"
        ),
    }
}

/// One rte_flow rule per LIP, protocol and (value, mask) block of each worker's LIP-port
/// slice, sending FullNAT replies to the worker owning their port. All or nothing: on the
/// first refusal the rules made so far are destroyed and the error returned.
fn steer_by_flow(port: &Port, cfg: &RvsConfig, workers: u16) -> Result<Vec<Flow>, dpdk::DpdkError> {
    let mut flows = Vec::new();
    for w in 0..workers {
        let Ok(slice) = LipPool::worker_range(cfg.director.lport_range.clone(), workers, w) else {
            continue;
        };
        for (value, mask) in LipPool::port_blocks(slice) {
            for &lip in &cfg.director.lips {
                for proto in [L4Proto::Tcp, L4Proto::Udp] {
                    flows.push(Flow::steer_ipv4_dst_port(port, lip, proto, value, mask, w)?);
                }
            }
        }
    }
    Ok(flows)
}

/// Gives the kernel its side of the exception path: each TAP gets the DIPs of the untagged
/// interfaces on its data port and is brought up, and gateway routes through those
/// interfaces go through it. Failures are logged; forwarding does not depend on them.
fn configure_kernel(cfg: &RvsConfig) {
    let ip = |args: &[&str]| match std::process::Command::new("ip").args(args).status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            warn!(?args, %s, "ip command failed");
            false
        }
        Err(e) => {
            warn!(?args, "cannot run ip: {e}");
            false
        }
    };
    for (i, p) in cfg.ports.iter().enumerate() {
        let Some(tap) = &p.exception else { continue };
        let ifaces: Vec<_> = cfg
            .director
            .interfaces
            .iter()
            .filter(|f| f.port as usize == i && f.vlan.is_none())
            .collect();
        for f in &ifaces {
            for a in &f.addrs {
                ip(&["addr", "replace", &a.to_string(), "dev", tap]);
            }
            // No duplicate address detection: rvsd answers for the address on the wire
            // already, and the kernel would hold it back for a second or more.
            for a in &f.addrs6 {
                ip(&["-6", "addr", "replace", &a.to_string(), "dev", tap, "nodad"]);
            }
        }
        ip(&["link", "set", "dev", tap, "up"]);
        // Gateway routes of both families through this port's subnets.
        let v4 = cfg.director.routes.iter().filter_map(|r| {
            let here = ifaces
                .iter()
                .any(|f| f.addrs.iter().any(|a| a.contains(r.via)));
            here.then(|| ("-4", r.dst.to_string(), r.via.to_string()))
        });
        let v6 = cfg.director.routes6.iter().filter_map(|r| {
            let here = ifaces
                .iter()
                .any(|f| f.addrs6.iter().any(|a| a.contains(r.via)));
            here.then(|| ("-6", r.dst.to_string(), r.via.to_string()))
        });
        for (family, dst, via) in v4.chain(v6) {
            ip(&[family, "route", "replace", &dst, "via", &via, "dev", tap]);
        }
        info!(tap = %tap, "kernel addresses and routes set on the exception TAP");
    }
}

/// Starts following the addresses of the exception TAPs (made by the EAL, so they exist by
/// now), which sets the managed addresses' ownership before any traffic is served. Without
/// TAPs there is nothing to follow; without managed addresses a failure is only logged.
fn follow_addresses(
    cfg: &RvsConfig,
    control: &Arc<Mutex<ControlState>>,
) -> Result<Option<AddressFollower>, DaemonError> {
    let taps: Vec<(String, u16)> = cfg
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.exception.clone()?, i as u16)))
        .collect();
    if taps.is_empty() {
        return Ok(None);
    }
    match AddressFollower::start(&taps, control.clone()) {
        Ok(f) => Ok(Some(f)),
        Err(e) if cfg.director.managed.is_empty() => {
            warn!("not following the exception interfaces' addresses: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// RSS is on for a data port when several workers share it, unless the operator said no.
fn rss_wanted(p: &PortConfig, workers: u16) -> bool {
    workers > 1 && p.rss.unwrap_or(true)
}

/// The port's RSS key and RETA, for software Toeplitz; None (with a warning) if the port
/// won't tell, in which case replies reaching the wrong worker use the redirect rings.
fn reply_hashing(port: &Port, name: &str) -> Option<(RssKey, Reta)> {
    let found = port
        .rss_key()
        .ok()
        .and_then(|k| RssKey::new(&k).ok())
        .zip(port.reta().ok().and_then(|r| Reta::new(r).ok()));
    match &found {
        Some((_, reta)) => info!(port = name, reta = reta.size(), "FullNAT reply steering by RSS"),
        None => warn!(
            port = name,
            "RSS key or RETA unavailable: FullNAT replies on another worker's queue will be handed over"
        ),
    }
    found
}

/// Cores for the workers: the configured list, or every core in order.
fn worker_cores(cfg: &RvsConfig) -> Vec<usize> {
    if let Some(c) = &cfg.daemon.cores {
        return c.clone();
    }
    let all: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    (0..cfg.daemon.workers as usize)
        .map(|w| all[w % all.len()])
        .collect()
}

fn run_worker(
    id: u16,
    core: Option<usize>,
    mut worker: Worker<DpdkQueue>,
    neighbours: Vec<control::config::NeighbourConfig>,
    idle_sleep: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Result<Counters, DaemonError> {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            warn!(worker = id, core, "could not pin the worker to its core");
        }
    }
    let lcore = dpdk::register_thread().map_err(DaemonError::Dpdk)?;
    info!(worker = id, ?core, lcore, "worker running");
    for n in &neighbours {
        worker.insert_static_neighbour(n.ip, EthernetAddress(n.mac));
    }
    let per_ms = (dpdk::tsc_hz() / 1000).max(1);
    let mut empty = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if worker.poll(dpdk::tsc() / per_ms) > 0 {
            empty = 0;
            continue;
        }
        // `[daemon] idle_sleep_us`: only after a run of empty loops, never between packets.
        empty = empty.saturating_add(1);
        if let Some(d) = idle_sleep.filter(|_| empty >= control::config::IDLE_LOOPS) {
            std::thread::sleep(d);
        }
    }
    let c = worker.counters().clone();
    let sessions = worker.sessions().len();
    drop(worker);
    dpdk::unregister_thread();
    info!(
        worker = id,
        rx = c.rx_packets(),
        tx = c.tx_packets(),
        drops = c.total_drops(),
        sessions,
        redirected_out = c.redirected_out(),
        redirected_in = c.redirected_in(),
        "worker stopped"
    );
    if c.total_drops() > 0 {
        for r in dataplane::DropReason::ALL {
            let n = c.drop_count(*r);
            if n > 0 {
                info!(worker = id, reason = r.as_str(), n, "drops");
            }
        }
    }
    Ok(c)
}

/// Starts a thread that stores `read()` into `gauge` now and then every `every`, until `stop`
/// is set (unpark the thread to have it see `stop` at once).
fn spawn_gauge(
    read: impl Fn() -> u64 + Send + 'static,
    gauge: &'static AtomicU64,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvs-gauge".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                gauge.store(read(), Ordering::Relaxed);
                std::thread::park_timeout(every);
            }
        })
}

/// Each data port's link and counters now, for the port view (a port DPDK cannot read shows
/// its name and zeros, and the reason is logged at debug level).
fn read_ports(monitors: &[(String, PortMonitor)]) -> Vec<control::PortView> {
    monitors
        .iter()
        .map(|(name, m)| {
            let link = m.link().unwrap_or_else(|e| {
                debug!(port = %name, "port view: no link state: {e}");
                Default::default()
            });
            let st = m.stats().unwrap_or_else(|e| {
                debug!(port = %name, "port view: no counters: {e}");
                Default::default()
            });
            control::PortView {
                name: name.clone(),
                link_up: link.up,
                speed_mbps: link.speed_mbps,
                rx_packets: st.ipackets,
                tx_packets: st.opackets,
                rx_bytes: st.ibytes,
                tx_bytes: st.obytes,
                rx_missed: st.imissed,
                rx_errors: st.ierrors,
                tx_errors: st.oerrors,
                rx_nombuf: st.rx_nombuf,
            }
        })
        .collect()
}

/// Logs why the daemon stopped with an error.
pub fn report(e: &DaemonError) {
    error!("{e}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gauge_publishes_until_stopped() {
        static GAUGE: AtomicU64 = AtomicU64::new(0);
        let reads = Arc::new(AtomicU64::new(0));
        let r = reads.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let read = move || 40 + r.fetch_add(1, Ordering::Relaxed);
        let t = spawn_gauge(read, &GAUGE, Duration::from_millis(5), stop.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while GAUGE.load(Ordering::Relaxed) < 42 {
            assert!(
                std::time::Instant::now() < deadline,
                "the gauge is not refreshed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Release);
        t.thread().unpark();
        t.join().unwrap();
        let n = reads.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(reads.load(Ordering::Relaxed), n, "read after the stop");
        assert_eq!(GAUGE.load(Ordering::Relaxed), 40 + n - 1);
    }

    #[test]
    fn metrics_show_the_mbufs_in_use() {
        let model = Model::new(Default::default()).unwrap();
        let state = ControlState::new(model, Vec::new(), Vec::new());
        control::metrics::MBUFS_IN_USE.store(1234, Ordering::Relaxed);
        let text = state.metrics();
        assert!(
            text.contains("# TYPE rvs_mbufs_in_use gauge\nrvs_mbufs_in_use 1234\n"),
            "{text}"
        );
    }

    #[test]
    fn hugepages_are_checked_only_when_needed() {
        let none = "MemTotal: 1 kB\nHugePages_Total:       0\nHugePages_Free: 0\n";
        let some = "HugePages_Total:     512\n";
        let e = hugepage_problem(&args(&["rvsd", "-l", "0"]), none).expect("a problem");
        assert!(e.contains("nr_hugepages") && e.contains("--no-huge"), "{e}");
        assert_eq!(hugepage_problem(&args(&["rvsd", "--no-huge"]), none), None);
        assert_eq!(hugepage_problem(&args(&["rvsd"]), some), None);
        assert_eq!(
            hugepage_problem(&args(&["rvsd"]), "MemTotal: 1 kB\n"),
            None,
            "unknown: let the EAL say"
        );
    }

    #[test]
    fn eal_arguments() {
        let cfg = control::config::RvsConfig::parse(
            r#"
[eal]
args = ["--file-prefix", "x"]
[[port]]
name = "wan"
device = "net_null0"
exception = "tap0"
[[port]]
name = "lan"
device = "0000:01:00.0"
"#,
        )
        .unwrap();
        let a = eal_args(&cfg);
        assert_eq!(
            a,
            args(&[
                "rvsd",
                "--file-prefix",
                "x",
                "-l",
                "0",
                "--vdev",
                "net_null0",
                "-a",
                "0000:01:00.0",
                "--vdev",
                "net_tap_rvs0,iface=tap0",
                "--huge-unlink"
            ])
        );
        assert_eq!(runtime_dir(&a), std::path::PathBuf::from("/var/run/dpdk/x"));
    }
}
