//! The rvsd configuration file (TOML): EAL, ports, interfaces, routes, LIPs, timeouts,
//! services and dests.
//!
//! [`RvsConfig::parse`] reads the text, checks every value, and builds the
//! [`DirectorConfig`] the data path runs (validated as a whole by `Snapshot::build`) plus the
//! daemon's own settings. Unknown keys are errors, so a typo never passes silently; every
//! error names the section and the value, and syntax errors carry the line and column.
//!
//! ```toml
//! [eal]
//! args = ["--no-pci", "--no-huge", "-m", "1024", "--file-prefix", "rvs"]
//!
//! [daemon]
//! workers = 2                      # one thread per worker, pinned; one queue per port each
//!
//! [[port]]
//! name = "wan"
//! device = "net_vhost0,iface=/run/rvs/wan.sock,queues=2"   # a vdev, or a PCI address
//! exception = "rvs-wan"            # kernel TAP interface for the director's own traffic
//!
//! [[interface]]
//! name = "wan0"
//! port = "wan"
//! addrs = ["192.0.2.1/24"]
//!
//! [[route]]
//! dst = "0.0.0.0/0"
//! via = "192.0.2.254"
//!
//! [fullnat]
//! lips = ["10.1.0.201", "10.1.0.202"]
//! lport_range = "1024-65535"
//!
//! [timeouts]                       # seconds, like ipvsadm --set
//! tcp = 900
//! tcpfin = 60
//! udp = 300
//!
//! [[service]]
//! proto = "tcp"
//! vip = "192.0.2.100"
//! port = 80
//! scheduler = "wrr"
//!   [[service.dest]]
//!   addr = "10.1.0.11"
//!   port = 8080
//!   weight = 3
//!   mode = "fullnat"               # nat | dr | tun | fullnat; ipvsadm's default is dr
//! ```

use conntrack::{Proto, SessionState, TcpState, Timeouts};
use dataplane::snapshot::{Cidr, ConfigError, DirectorConfig, InterfaceConfig, RouteConfig};
use sched::{Dest, ForwardMode, SchedError, SchedKind, Service, ServiceKey, ServiceTable};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type (with line and column).
    #[error("{0}")]
    Syntax(String),
    /// A value that parses but is not acceptable.
    #[error("{section}: {message}")]
    Value {
        /// Where: e.g. `port "wan"` or `service tcp 192.0.2.1:80`.
        section: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// A service or dest the scheduler model refuses.
    #[error("{section}: {source}")]
    Service {
        /// The service.
        section: String,
        /// The model's error.
        source: SchedError,
    },
    /// The configuration as a whole cannot run (no route to a dest, FullNAT without LIPs...).
    #[error(transparent)]
    Director(#[from] ConfigError),
}

fn value(section: impl Into<String>, message: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Value {
        section: section.into(),
        message: message.into(),
    }
}

/// The daemon's own settings (`[daemon]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Worker threads; each owns one RX/TX queue pair on every port.
    pub workers: u16,
    /// Cores to pin the workers to, one per worker (None: the EAL's lcores in order).
    pub cores: Option<Vec<usize>>,
    /// Hard capacity of each worker's session table.
    pub table_capacity: usize,
    /// Hard capacity of each worker's persistence template table (default: a sixteenth of
    /// `table_capacity`, at least 64).
    pub template_capacity: usize,
    /// Mbufs in the packet pool (shared by all ports and workers).
    pub mbufs: u32,
    /// Per-core mbuf cache.
    pub mbuf_cache: u32,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Loops between two runs of the slow jobs (expiry, neighbour aging, ARP retries).
    pub slow_every: u32,
    /// Packets each redirect ring between two workers holds.
    pub redirect_depth: usize,
    /// The control socket rvsadm talks to (mode 0600).
    pub socket: String,
    /// Where Prometheus scrapes metrics (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
    /// Give the kernel the DIPs (and gateway routes) on the exception TAPs, so that health
    /// checks and the director's own connections reach the network through rvs. It changes
    /// the kernel's addresses and routes in rvsd's network namespace, hence off by default.
    pub kernel_addresses: bool,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig {
            workers: 1,
            cores: None,
            table_capacity: 1 << 20,
            template_capacity: 1 << 16,
            mbufs: 16383,
            mbuf_cache: 256,
            rx_desc: 1024,
            tx_desc: 1024,
            slow_every: 64,
            redirect_depth: 1024,
            socket: "/run/rvs/rvsd.sock".into(),
            metrics: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9410))),
            kernel_addresses: false,
        }
    }
}

/// One DPDK port (`[[port]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// The name interfaces refer to.
    pub name: String,
    /// A vdev string (`net_vhost0,iface=...`) or a PCI address (`0000:01:00.0`).
    pub device: String,
    /// Spread received flows over the queues with the NIC's RSS (true by default when
    /// there is more than one worker). Ports that cannot (vhost, ring) need `rss = false`.
    pub rss: Option<bool>,
    /// Port MTU to set (None: leave the driver's; interfaces then default to 1500).
    pub mtu: Option<u16>,
    /// Receive frames for any MAC.
    pub promiscuous: bool,
    /// MAC address to set on the port.
    pub mac: Option<[u8; 6]>,
    /// Kernel interface name of the TAP that takes the director's own traffic.
    pub exception: Option<String>,
}

impl PortConfig {
    /// The EAL device name: the vdev's name before its first comma, or the PCI address.
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }

    /// True for a virtual device (`--vdev`), false for a PCI address (`-a`).
    pub fn is_vdev(&self) -> bool {
        self.device.starts_with("net_") || self.device.starts_with("eth_")
    }
}

/// A static neighbour (`[[neighbour]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: [u8; 6],
}

/// A whole rvsd configuration, checked.
#[derive(Clone, Debug)]
pub struct RvsConfig {
    /// EAL arguments given by the operator (ports are added as `--vdev`/`-a` by rvsd).
    pub eal_args: Vec<String>,
    /// Daemon settings.
    pub daemon: DaemonConfig,
    /// Ports, in port-index order (interfaces refer to them by name).
    pub ports: Vec<PortConfig>,
    /// What the data path runs.
    pub director: DirectorConfig,
    /// Static neighbours.
    pub neighbours: Vec<NeighbourConfig>,
    /// Health checks, one per checked service.
    pub checks: Vec<crate::health::HealthCheck>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileEal {
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDaemon {
    workers: Option<u16>,
    cores: Option<Vec<usize>>,
    table_capacity: Option<usize>,
    template_capacity: Option<usize>,
    mbufs: Option<u32>,
    mbuf_cache: Option<u32>,
    rx_desc: Option<u16>,
    tx_desc: Option<u16>,
    slow_every: Option<u32>,
    redirect_depth: Option<usize>,
    socket: Option<String>,
    metrics: Option<String>,
    kernel_addresses: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePort {
    name: String,
    device: String,
    rss: Option<bool>,
    mtu: Option<u16>,
    #[serde(default)]
    promiscuous: bool,
    mac: Option<String>,
    exception: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInterface {
    name: String,
    port: String,
    vlan: Option<u16>,
    addrs: Vec<String>,
    mtu: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    dst: String,
    via: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileFullNat {
    #[serde(default)]
    lips: Vec<String>,
    lport_range: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileTimeouts {
    tcp: Option<u64>,
    tcpfin: Option<u64>,
    udp: Option<u64>,
    icmp: Option<u64>,
    syn_recv: Option<u64>,
    time_wait: Option<u64>,
    close: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    proto: String,
    vip: String,
    port: Option<u16>,
    scheduler: Option<String>,
    persistence: Option<u32>,
    #[serde(default)]
    synproxy: bool,
    #[serde(default, rename = "dest")]
    dests: Vec<FileDest>,
    check: Option<FileCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheck {
    #[serde(rename = "type")]
    kind: String,
    interval: Option<f64>,
    timeout: Option<f64>,
    rise: Option<u32>,
    fall: Option<u32>,
    port: Option<u16>,
    path: Option<String>,
    expect: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDest {
    addr: String,
    port: Option<u16>,
    weight: Option<u32>,
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNeighbour {
    ip: String,
    mac: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    eal: FileEal,
    #[serde(default)]
    daemon: FileDaemon,
    #[serde(default, rename = "port")]
    ports: Vec<FilePort>,
    #[serde(default, rename = "interface")]
    interfaces: Vec<FileInterface>,
    #[serde(default, rename = "route")]
    routes: Vec<FileRoute>,
    #[serde(default)]
    fullnat: FileFullNat,
    #[serde(default)]
    timeouts: FileTimeouts,
    #[serde(default, rename = "service")]
    services: Vec<FileService>,
    #[serde(default, rename = "neighbour")]
    neighbours: Vec<FileNeighbour>,
}

/// Parses `a.b.c.d`.
fn addr(section: &str, what: &str, s: &str) -> Result<Ipv4Addr, ConfigFileError> {
    Ipv4Addr::from_str(s.trim())
        .map_err(|_| value(section, format!("{what} '{s}' is not an IPv4 address")))
}

/// Parses `a.b.c.d/len`.
fn cidr(section: &str, s: &str) -> Result<Cidr, ConfigFileError> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| value(section, format!("'{s}' needs a prefix length, e.g. {s}/24")))?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| value(section, format!("'{s}': prefix length must be 0..=32")))?;
    Ok(Cidr::new(addr(section, "address", a)?, len))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn port_range(section: &str, s: &str) -> Result<RangeInclusive<u16>, ConfigFileError> {
    let bad = || {
        value(
            section,
            format!("lport_range '{s}' must look like 1024-65535"),
        )
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

/// Where each `[[table]]` entry starts, by table name, for error messages.
#[derive(Deserialize, Default)]
struct Spans {
    #[serde(default)]
    port: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    interface: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    route: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    service: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    neighbour: Vec<toml::Spanned<toml::Value>>,
}

/// Prefixes a value error with the line of the `[[table]]` entry it is about.
fn locate(e: ConfigFileError, text: &str, at: Option<(&'static str, usize)>) -> ConfigFileError {
    let Some((table, i)) = at else { return e };
    let spans: Spans = toml::from_str(text).unwrap_or_default();
    let list = match table {
        "port" => &spans.port,
        "interface" => &spans.interface,
        "route" => &spans.route,
        "service" => &spans.service,
        _ => &spans.neighbour,
    };
    let Some(span) = list.get(i).map(|s| s.span()) else {
        return e;
    };
    // The span starts at the entry's [[header]].
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    match e {
        ConfigFileError::Value { section, message } => ConfigFileError::Value {
            section: format!("line {line}: {section}"),
            message,
        },
        ConfigFileError::Service { section, source } => ConfigFileError::Service {
            section: format!("line {line}: {section}"),
            source,
        },
        other => other,
    }
}

fn health_check(
    section: &str,
    service: ServiceKey,
    c: &FileCheck,
) -> Result<Option<crate::health::HealthCheck>, ConfigFileError> {
    use crate::health::{CheckKind, HealthCheck};
    let duration = |what: &str, v: Option<f64>, default: f64| {
        let s = v.unwrap_or(default);
        if !(0.01..=3600.0).contains(&s) {
            return Err(value(
                section,
                format!("check {what} = {s} s must be 0.01..=3600"),
            ));
        }
        Ok(std::time::Duration::from_secs_f64(s))
    };
    let kind = match c.kind.as_str() {
        "none" => return Ok(None),
        "tcp" => CheckKind::Tcp,
        "udp" => CheckKind::Udp,
        "http" => CheckKind::Http {
            path: c.path.clone().unwrap_or_else(|| "/".into()),
            expect: c.expect.unwrap_or(200),
        },
        other => {
            return Err(value(
                section,
                format!("check type '{other}' must be tcp, http, udp or none"),
            ))
        }
    };
    if !matches!(kind, CheckKind::Http { .. }) && (c.path.is_some() || c.expect.is_some()) {
        return Err(value(
            section,
            "check path and expect are for type = \"http\"",
        ));
    }
    let (rise, fall) = (c.rise.unwrap_or(2), c.fall.unwrap_or(3));
    if rise == 0 || fall == 0 {
        return Err(value(section, "check rise and fall must be at least 1"));
    }
    let interval = duration("interval", c.interval, 2.0)?;
    let timeout = duration("timeout", c.timeout, interval.as_secs_f64().min(1.0))?;
    if timeout > interval {
        return Err(value(
            section,
            "check timeout must not be longer than its interval",
        ));
    }
    Ok(Some(HealthCheck {
        service,
        kind,
        interval,
        timeout,
        rise,
        fall,
        port: c.port,
    }))
}

fn secs(section: &str, what: &str, v: Option<u64>) -> Result<Option<u64>, ConfigFileError> {
    match v {
        Some(0) => Err(value(section, format!("{what} must be at least 1 second"))),
        Some(s) if s > 31 * 24 * 3600 => Err(value(
            section,
            format!("{what} = {s} s is more than 31 days"),
        )),
        Some(s) => Ok(Some(s * 1000)),
        None => Ok(None),
    }
}

impl RvsConfig {
    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    /// Unreadable file, or any error of [`RvsConfig::parse`].
    pub fn load(path: &str) -> Result<RvsConfig, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_string(),
            source,
        })?;
        RvsConfig::parse(&text)
    }

    /// Parses and checks a configuration.
    ///
    /// # Errors
    /// The first problem found, saying where and what would be right.
    pub fn parse(text: &str) -> Result<RvsConfig, ConfigFileError> {
        let at = std::cell::Cell::new(None);
        RvsConfig::parse_at(text, &at).map_err(|e| locate(e, text, at.get()))
    }

    /// [`RvsConfig::parse`], noting in `at` which `[[table]]` entry is being read.
    fn parse_at(
        text: &str,
        at: &std::cell::Cell<Option<(&'static str, usize)>>,
    ) -> Result<RvsConfig, ConfigFileError> {
        let f: File = toml::from_str(text).map_err(|e| ConfigFileError::Syntax(e.to_string()))?;
        let d = DaemonConfig::default();
        let daemon = DaemonConfig {
            workers: f.daemon.workers.unwrap_or(d.workers),
            cores: f.daemon.cores,
            table_capacity: f.daemon.table_capacity.unwrap_or(d.table_capacity),
            template_capacity: f.daemon.template_capacity.unwrap_or_else(|| {
                (f.daemon.table_capacity.unwrap_or(d.table_capacity) / 16).max(64)
            }),
            mbufs: f.daemon.mbufs.unwrap_or(d.mbufs),
            mbuf_cache: f.daemon.mbuf_cache.unwrap_or(d.mbuf_cache),
            rx_desc: f.daemon.rx_desc.unwrap_or(d.rx_desc),
            tx_desc: f.daemon.tx_desc.unwrap_or(d.tx_desc),
            slow_every: f.daemon.slow_every.unwrap_or(d.slow_every),
            redirect_depth: f.daemon.redirect_depth.unwrap_or(d.redirect_depth),
            socket: f.daemon.socket.unwrap_or(d.socket),
            kernel_addresses: f.daemon.kernel_addresses.unwrap_or(d.kernel_addresses),
            metrics: match f.daemon.metrics.as_deref() {
                None => d.metrics,
                Some("off") => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    value(
                        "daemon",
                        format!("metrics '{a}' must be an address like 127.0.0.1:9410, or \"off\""),
                    )
                })?),
            },
        };
        if daemon.workers == 0 || daemon.workers > 128 {
            return Err(value("daemon", "workers must be 1..=128"));
        }
        if let Some(c) = &daemon.cores {
            if c.len() != daemon.workers as usize {
                return Err(value(
                    "daemon",
                    format!(
                        "cores lists {} cores for {} workers: give one core per worker",
                        c.len(),
                        daemon.workers
                    ),
                ));
            }
        }
        if daemon.table_capacity == 0 || daemon.slow_every == 0 || daemon.redirect_depth == 0 {
            return Err(value(
                "daemon",
                "table_capacity, slow_every and redirect_depth must be at least 1",
            ));
        }
        if daemon.template_capacity < 64 {
            return Err(value("daemon", "template_capacity must be at least 64"));
        }
        if daemon.mbufs < 1024 {
            return Err(value("daemon", "mbufs must be at least 1024"));
        }

        let mut ports = Vec::with_capacity(f.ports.len());
        for (i, p) in f.ports.into_iter().enumerate() {
            at.set(Some(("port", i)));
            let section = format!("port \"{}\"", p.name);
            if ports.iter().any(|q: &PortConfig| q.name == p.name) {
                return Err(value(section, "a port of this name is already defined"));
            }
            let mac = match &p.mac {
                Some(m) => Some(parse_mac(m).ok_or_else(|| {
                    value(
                        &section,
                        format!("mac '{m}' must look like 02:00:00:00:00:01"),
                    )
                })?),
                None => None,
            };
            if let Some(mtu) = p.mtu.filter(|m| !(576..=9000).contains(m)) {
                return Err(value(
                    section,
                    format!("mtu {mtu} is out of range (576..=9000)"),
                ));
            }
            let mtu = p.mtu;
            ports.push(PortConfig {
                name: p.name,
                device: p.device,
                rss: p.rss,
                mtu,
                promiscuous: p.promiscuous,
                mac,
                exception: p.exception,
            });
        }

        at.set(None);
        let mut director = DirectorConfig::default();
        for (n, i) in f.interfaces.into_iter().enumerate() {
            at.set(Some(("interface", n)));
            let section = format!("interface \"{}\"", i.name);
            let port = ports
                .iter()
                .position(|p| p.name == i.port)
                .ok_or_else(|| value(&section, format!("port \"{}\" is not defined", i.port)))?;
            let addrs = i
                .addrs
                .iter()
                .map(|a| cidr(&section, a))
                .collect::<Result<Vec<_>, _>>()?;
            director.interfaces.push(InterfaceConfig {
                name: i.name,
                port: port as u16,
                vlan: i.vlan,
                addrs,
                mtu: i.mtu.or(ports[port].mtu).unwrap_or(1500),
            });
        }
        for (n, r) in f.routes.into_iter().enumerate() {
            at.set(Some(("route", n)));
            let section = format!("route {} via {}", r.dst, r.via);
            director.routes.push(RouteConfig {
                dst: cidr(&section, &r.dst)?,
                via: addr(&section, "via", &r.via)?,
            });
        }
        at.set(None);
        director.lips = f
            .fullnat
            .lips
            .iter()
            .map(|l| addr("fullnat", "LIP", l))
            .collect::<Result<_, _>>()?;
        if let Some(r) = &f.fullnat.lport_range {
            director.lport_range = port_range("fullnat", r)?;
        }

        let mut t = Timeouts::default();
        let ft = &f.timeouts;
        for (state, v, what) in [
            (SessionState::Tcp(TcpState::Established), ft.tcp, "tcp"),
            (SessionState::Tcp(TcpState::FinWait), ft.tcpfin, "tcpfin"),
            (SessionState::Udp, ft.udp, "udp"),
            (SessionState::Icmp, ft.icmp, "icmp"),
            (
                SessionState::Tcp(TcpState::SynRecv),
                ft.syn_recv,
                "syn_recv",
            ),
            (
                SessionState::Tcp(TcpState::TimeWait),
                ft.time_wait,
                "time_wait",
            ),
            (SessionState::Tcp(TcpState::Close), ft.close, "close"),
        ] {
            if let Some(ms) = secs("timeouts", what, v)? {
                t.set(state, ms);
            }
        }
        director.timeouts = t;

        let mut services = ServiceTable::new();
        let mut checks = Vec::new();
        for (n, s) in f.services.into_iter().enumerate() {
            at.set(Some(("service", n)));
            let proto = match s.proto.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "icmp" => Proto::Icmp,
                other => {
                    return Err(value(
                        format!("service {} {}", s.proto, s.vip),
                        format!("proto '{other}' must be tcp, udp or icmp"),
                    ))
                }
            };
            let port = s.port.unwrap_or(0);
            let section = format!("service {} {}:{}", proto, s.vip, port);
            let key = ServiceKey {
                proto,
                vip: addr(&section, "vip", &s.vip)?,
                port,
            };
            let sched = match &s.scheduler {
                Some(n) => SchedKind::from_str(n).map_err(|source| ConfigFileError::Service {
                    section: section.clone(),
                    source,
                })?,
                None => SchedKind::Wrr,
            };
            let service_err = |source| ConfigFileError::Service {
                section: section.clone(),
                source,
            };
            let mut svc = Service::new(key, sched).map_err(service_err)?;
            svc.set_persistence(s.persistence).map_err(service_err)?;
            svc.set_synproxy(s.synproxy).map_err(service_err)?;
            for d in &s.dests {
                let mode = match &d.mode {
                    Some(m) => ForwardMode::from_str(m).map_err(service_err)?,
                    None => ForwardMode::Dr,
                };
                svc.add_dest(Dest {
                    addr: addr(&section, "dest", &d.addr)?,
                    port: d.port.unwrap_or(port),
                    weight: d.weight.unwrap_or(1),
                    mode,
                })
                .map_err(service_err)?;
            }
            if let Some(c) = &s.check {
                if let Some(check) = health_check(&section, key, c)? {
                    checks.push(check);
                }
            }
            services.add(svc).map_err(service_err)?;
        }
        at.set(None);
        director.services = services;

        at.set(None);
        let mut neighbours = Vec::new();
        for (k, n) in f.neighbours.into_iter().enumerate() {
            at.set(Some(("neighbour", k)));
            let section = format!("neighbour {}", n.ip);
            neighbours.push(NeighbourConfig {
                ip: addr(&section, "ip", &n.ip)?,
                mac: parse_mac(&n.mac)
                    .ok_or_else(|| value(&section, format!("mac '{}' is not a MAC", n.mac)))?,
            });
        }

        at.set(None);
        // The data path's own whole-configuration checks.
        dataplane::snapshot::Snapshot::build(&director)?;
        Ok(RvsConfig {
            eal_args: f.eal.args,
            daemon,
            ports,
            director,
            neighbours,
            checks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "512"]

[daemon]
workers = 2
table_capacity = 4096

[[port]]
name = "wan"
device = "net_vhost0,iface=/tmp/wan.sock,queues=2"
rss = false
exception = "rvs-wan"

[[port]]
name = "lan"
device = "0000:01:00.0"
mac = "02:00:00:00:01:01"

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"

[fullnat]
lips = ["10.1.0.201"]
lport_range = "2000-60000"

[timeouts]
tcp = 600
udp = 30

[[service]]
proto = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "rr"
  [[service.dest]]
  addr = "10.1.0.11"
  port = 8080
  weight = 3
  mode = "fullnat"
  [[service.dest]]
  addr = "10.1.0.12"
  [service.check]
  type = "http"
  path = "/health"
  interval = 0.5
  fall = 2

[[neighbour]]
ip = "192.0.2.254"
mac = "02:00:00:00:fe:fe"
"#;

    #[test]
    fn a_full_file_parses() {
        let c = RvsConfig::parse(GOOD).unwrap();
        assert_eq!(c.daemon.workers, 2);
        assert_eq!(
            (c.daemon.table_capacity, c.daemon.template_capacity),
            (4096, 256),
            "templates default to a sixteenth of the sessions"
        );
        let big = RvsConfig::parse(&GOOD.replace("4096", "10000000")).unwrap();
        assert_eq!(big.daemon.template_capacity, 625_000);
        let small = RvsConfig::parse(&GOOD.replace("4096", "100")).unwrap();
        assert_eq!(small.daemon.template_capacity, 64, "at least 64");
        let set = RvsConfig::parse(&GOOD.replace("4096", "4096\ntemplate_capacity = 1000"));
        assert_eq!(set.unwrap().daemon.template_capacity, 1000);
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].device_name(), "net_vhost0");
        assert!(c.ports[0].is_vdev() && !c.ports[1].is_vdev());
        assert_eq!(c.ports[1].mac, Some([2, 0, 0, 0, 1, 1]));
        assert_eq!(c.director.interfaces[1].port, 1);
        assert_eq!(c.director.lport_range, 2000..=60000);
        assert_eq!(
            c.director
                .timeouts
                .get(SessionState::Tcp(TcpState::Established)),
            600_000
        );
        assert_eq!(c.director.timeouts.get(SessionState::Udp), 30_000);
        let svc = c.director.services.iter().next().unwrap();
        assert_eq!(svc.sched(), SchedKind::Rr);
        assert_eq!(svc.dests()[0].mode, ForwardMode::FullNat);
        assert_eq!(svc.dests()[1].mode, ForwardMode::Dr, "ipvsadm's default");
        assert_eq!(
            svc.dests()[1].port,
            80,
            "dest port defaults to the service port"
        );
        assert_eq!(c.neighbours[0].mac, [2, 0, 0, 0, 0xfe, 0xfe]);
        let h = &c.checks[0];
        assert_eq!(
            h.kind,
            crate::health::CheckKind::Http {
                path: "/health".into(),
                expect: 200
            }
        );
        assert_eq!(
            (
                h.interval.as_millis(),
                h.timeout.as_millis(),
                h.rise,
                h.fall
            ),
            (500, 500, 2, 2)
        );
    }

    fn err(text: &str) -> String {
        RvsConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn synproxy_is_a_service_option_for_nat_and_fullnat() {
        let on = GOOD.replace("scheduler = \"rr\"", "scheduler = \"rr\"\nsynproxy = true");
        // The second dest has no mode: DR, which a SYN proxy cannot serve.
        let e = err(&on);
        assert!(
            e.contains("synproxy cannot be used with DR (-g) dests: the real server's replies"),
            "{e}"
        );
        let on = on.replace(
            "addr = \"10.1.0.12\"",
            "addr = \"10.1.0.12\"\n  port = 8080\n  mode = \"nat\"",
        );
        let c = RvsConfig::parse(&on).unwrap();
        assert!(c.director.services.iter().all(|s| s.synproxy()));
        let c = RvsConfig::parse(GOOD).unwrap();
        assert!(c.director.services.iter().all(|s| !s.synproxy()));
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = err(&GOOD.replace("rss = false", "rss = false\nqueues = 3"));
        assert!(
            e.contains("unknown field `queues`") && e.contains("line"),
            "{e}"
        );
        let e = err(&GOOD.replace("192.0.2.1/24", "192.0.2.1/33"));
        assert_eq!(
            e,
            "line 20: interface \"wan0\": '192.0.2.1/33': prefix length must be 0..=32"
        );
        assert_eq!(
            GOOD.lines().nth(19),
            Some("[[interface]]"),
            "line 20 is its header"
        );
        let e = err(&GOOD.replace("port = \"lan\"", "port = \"lab\""));
        assert_eq!(
            e,
            "line 25: interface \"lan0\": port \"lab\" is not defined"
        );
        let e = err(&GOOD.replace("mode = \"fullnat\"", "mode = \"fnord\""));
        assert!(
            e.starts_with("line 42: service tcp 192.0.2.100:80: forwarding mode 'fnord'"),
            "{e}"
        );
        assert_eq!(GOOD.lines().nth(41), Some("[[service]]"));
        let e = err(&GOOD.replace("lips = [\"10.1.0.201\"]", "lips = []"));
        assert!(e.contains("no LIP is configured"), "{e}");
        let e = err(&GOOD.replace("weight = 3", "weight = 70000"));
        assert!(e.contains("70000"), "{e}");
        let e = err(&GOOD.replace("type = \"http\"", "type = \"icmp\""));
        assert!(
            e.contains("check type 'icmp' must be tcp, http, udp or none"),
            "{e}"
        );
        let e = err(&GOOD.replace("fall = 2", "fall = 2\n  timeout = 3"));
        assert!(
            e.contains("timeout must not be longer than its interval"),
            "{e}"
        );
        let e = err(&GOOD.replace("4096", "4096\ntemplate_capacity = 10"));
        assert_eq!(e, "daemon: template_capacity must be at least 64");
        let e = err(&GOOD.replace("udp = 30", "udp = 0"));
        assert_eq!(e, "timeouts: udp must be at least 1 second");
        let e = err(&GOOD.replace("workers = 2", "workers = 2\ncores = [1]"));
        assert!(e.contains("give one core per worker"), "{e}");
        let e = err(&GOOD.replace("\"2000-60000\"", "\"60000-2000\""));
        assert!(e.contains("must look like 1024-65535"), "{e}");
        let e = err(&GOOD.replace("02:00:00:00:01:01", "02:00:00:00:01"));
        assert!(e.contains("port \"lan\": mac"), "{e}");
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:0a:ff:00:00:01"), Some([2, 10, 255, 0, 0, 1]));
        assert_eq!(parse_mac("02:0a:ff:00:00"), None);
        assert_eq!(parse_mac("02:0a:ff:00:00:01:02"), None);
        assert_eq!(parse_mac("zz:0a:ff:00:00:01"), None);
    }
}
