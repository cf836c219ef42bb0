//! The rvsd configuration file (TOML): EAL, ports, interfaces, routes, LIPs, timeouts,
//! services and dests, managed addresses.
//!
//! [`RvsConfig::parse`] reads the text once, checks each section's values (one function per
//! section), and builds the [`DirectorConfig`] the data path runs (validated as a whole by
//! `Snapshot::build`) plus the daemon's own settings. Unknown keys are errors, so a typo never
//! passes silently. Every error names the section and the value: syntax errors, unknown keys
//! and values of the wrong type carry the line and column; a value refused in a `[[port]]`,
//! `[[interface]]`, `[[route]]`, `[[service]]` or `[[neighbour]]` entry names the line of the
//! entry's header (entries are read as `toml::Spanned`).
//!
//! ```toml
//! [eal]
//! args = ["--no-pci", "--no-huge", "-m", "1024", "--file-prefix", "rvs"]
//!
//! [daemon]
//! workers = 2                      # one thread per worker, pinned; one queue per port each
//! # idle_sleep_us = 100            # sleep after 64 empty loops (shared cores); default 0
//! # table_capacity = 1048576       # IPv4 sessions per worker
//! # table6_capacity = 262144       # IPv6 sessions per worker; default a quarter of the above
//!
//! [[port]]
//! name = "wan"
//! device = "net_vhost0,iface=/run/rvs/wan.sock,queues=2"   # a vdev, or a PCI address
//! exception = "rvs-wan"            # kernel TAP interface for the director's own traffic
//!
//! [[interface]]
//! name = "wan0"
//! port = "wan"
//! addrs = ["192.0.2.1/24", "2001:db8:2::1/64"]   # DIPs; IPv6 ones answer ND and echo
//!
//! [[route]]
//! dst = "0.0.0.0/0"
//! via = "192.0.2.254"
//!
//! [[route]]                        # IPv6 routes too (echo replies, neighbour resolution)
//! dst = "::/0"
//! via = "2001:db8:2::254"
//!
//! [fullnat]
//! lips = ["10.1.0.201", "10.1.0.202", "2001:db8:10:1::201"]   # IPv6 ones for FullNAT66
//! lport_range = "1024-65535"
//! lport_quarantine = 60            # s a freed TCP (LIP, lport) waits before the same dest
//! lport_pools = 16                 # port pools per LIP; dests spread over them by hash
//!
//! [timeouts]                       # seconds, like ipvsadm --set
//! tcp = 900
//! tcpfin = 60
//! udp = 300
//!
//! [sync]                           # session sync with the peer directors (ipvsadm --start-daemon)
//! master = true                    # send this director's sessions
//! backup = true                    # install the peers' sessions
//! interface = "rvslan"             # kernel interface; default: the first port's exception TAP
//! syncid = 1                       # default 0
//! group = "224.0.0.81"             # multicast group and port (IPVS's defaults)
//! port = 8848
//! # peers = ["10.1.0.3"]           # unicast peers (address or address:port) instead of the group
//! maxlen = 1472                    # largest datagram (UDP payload) in bytes
//! ttl = 1                          # multicast TTL
//! refresh = 30                     # s between refresh sweeps of the whole table; 0: none
//!
//! [[service]]
//! proto = "tcp"
//! vip = "192.0.2.100"
//! port = 80
//! scheduler = "wrr"                # rr | wrr | lc | wlc | sh | mh; default wlc, as ipvsadm
//! # proxy_protocol = "v2"          # v1 | v2 | disable: the client's address to the RS ahead
//! #                                # of its data (tcp; FullNAT and NAT dests)
//! # toa = true                     # or in TCP option 254 of its first segments (Alibaba TOA)
//! # sorry_server = "10.1.0.99:8080"   # keepalived's: in service (weight 1) while no dest is
//! #                                # up; "addr" alone takes the service's port
//! # sorry_mode = "fullnat"         # its forwarding mode; default: the mode the dests share
//!   [[service.dest]]
//!   addr = "10.1.0.11"
//!   port = 8080
//!   weight = 3
//!   mode = "fullnat"               # nat | dr | tun | fullnat; ipvsadm's default is dr
//!   [service.check]                # keepalived's checkers (see crate::health)
//!   type = "https"                 # tcp | http | https | udp | script (or misc) | none
//!   interval = 2                   # s between probes (0.01..=3600); default 2
//!   # timeout = 1                  # s a whole probe may take; default the interval, at
//!   #                              # most 1 (script: the interval); never above the interval
//!   rise = 2                       # passes in a row that bring a dest back; default 2
//!   fall = 3                       # failures in a row that take it out; default 3
//!   # port = 8443                  # probe this port instead of the dest's (needed for a
//!   #                              # TCP-based check of a UDP service, and the reverse)
//!   path = "/health"               # http, https: request path; default "/"
//!   expect = "200-299,301"         # http, https: statuses that pass: a code, a string of
//!   #                              # codes and ranges, or an array; default "200-299"
//!   virtualhost = "www.example.org"   # http, https: Host header and SNI; default the dest's
//!   #                              # address:port as Host, no SNI
//!   # digest = "9e107d9d372bb6826bd81d3542a419d6"   # http, https: MD5 of the body (genhash)
//!   # ca_file = "/etc/rvs/ca.pem"  # https: verify the certificate against these CAs;
//!   #                              # default: not verified (keepalived's SSL_GET)
//!   # script = "/usr/local/bin/check {addr} {port}"   # script: the program and its
//!   #                              # arguments, no shell; RVS_DEST_ADDR, RVS_DEST_PORT,
//!   #                              # RVS_SERVICE_PROTO, RVS_SERVICE_VIP, RVS_SERVICE_PORT set
//!
//! [[service]]                      # an IPv6 service: IPv6 dests on a connected IPv6 subnet,
//! proto = "tcp"                    # DR (the frame re-addressed to the RS's MAC), no
//! vip = "2001:db8:2::100"          # persistence
//! port = 80
//!   [[service.dest]]
//!   addr = "2001:db8:10:1::11"
//!
//! [ha]                             # addresses keepalived moves between directors (VIPs of
//! managed_addresses = ["192.0.2.100"]  # services, LIPs): served only while a TAP holds one
//!
//! [cluster]                        # an ECMP cluster: host routes for BIRD to announce
//! table = 100                      # kernel table rvsd keeps them in (BIRD: kernel table 100)
//! interface = "rvs-wan"            # the TAP they point at; default: the first exception TAP
//! metric = 32                      # this director's VIPs and LIPs (krt_metric in BIRD)
//! backup_metric = 64               # the peers' LIPs, announced as backups
//! peer_lips = ["10.1.0.202"]       # the other directors' LIPs: their synced sessions served
//! hold = 10                        # s a starting director waits for the peers' bulk syncs
//! settle = 2                       # s a drain waits at least after withdrawing
//! drain_timeout = 30               # s a drain waits at most for the sessions to be synced
//! ```

mod keys;
mod sections;

use crate::health::HealthCheck;
use dataplane::snapshot::{ConfigError, DirectorConfig, Snapshot};
use sched::{SchedError, ServiceTable};

pub use keys::accepted_keys;
pub use sections::{parse_mac, sync_peer};

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

/// Empty loops in a row after which a worker with `idle_sleep_us` set sleeps.
pub const IDLE_LOOPS: u32 = 64;

/// The longest `idle_sleep_us` accepted (10 ms).
pub const MAX_IDLE_SLEEP_US: u32 = 10_000;

/// The daemon's own settings (`[daemon]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Worker threads; each owns one RX/TX queue pair on every port.
    pub workers: u16,
    /// Cores to pin the workers to, one per worker (None: the EAL's lcores in order).
    pub cores: Option<Vec<usize>>,
    /// Hard capacity of each worker's session table.
    pub table_capacity: usize,
    /// Hard capacity of each worker's IPv6 session table (default: a quarter of
    /// `table_capacity`, at least 64).
    pub table6_capacity: usize,
    /// Hard capacity of each worker's persistence template table (default: a sixteenth of
    /// `table_capacity`, at least 64).
    pub template_capacity: usize,
    /// Entries of each worker's fragment tables (one for IPv4, one for IPv6), which later
    /// fragments follow their datagram's first fragment by (default 4096; rounded up to
    /// buckets of 8).
    pub fragment_capacity: usize,
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
    /// Microseconds a worker sleeps once [`IDLE_LOOPS`] loops in a row received nothing
    /// (0, the default: it polls without pause, as a poll-mode worker should). For hosts
    /// where directors share cores with other work, such as a lab of several directors on a
    /// few vCPUs; a sleeping worker adds up to this much latency to the first packet of a
    /// burst.
    pub idle_sleep_us: u32,
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
            table6_capacity: 1 << 18,
            template_capacity: 1 << 16,
            fragment_capacity: 4096,
            mbufs: 16383,
            mbuf_cache: 256,
            rx_desc: 1024,
            tx_desc: 1024,
            slow_every: 64,
            redirect_depth: 1024,
            idle_sleep_us: 0,
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

/// A static neighbour (`[[neighbour]]`), IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Address.
    pub ip: std::net::IpAddr,
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
    pub checks: Vec<HealthCheck>,
    /// Sorry servers (`sorry_server` of a `[[service]]`), by service: each put in service
    /// while none of its service's dests is up.
    pub sorry_servers: Vec<(sched::ServiceKey, sched::Dest)>,
    /// Session sync (`[sync]`).
    pub sync: SyncConfig,
    /// The cluster's announcer (`[cluster]`), if this director is in one.
    pub cluster: Option<crate::announce::AnnounceSettings>,
}

/// `[sync]`: which sync daemon roles rvsd starts with, and the settings `--start-daemon`
/// uses for what it does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncConfig {
    /// Start a master sync daemon.
    pub master: bool,
    /// Start a backup sync daemon.
    pub backup: bool,
    /// The settings.
    pub settings: crate::sync::SyncSettings,
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

    /// Parses and checks a configuration: the TOML once, then each section in the order of
    /// the reference above, then the director configuration as a whole.
    ///
    /// # Errors
    /// The first problem found, saying where and what would be right.
    pub fn parse(text: &str) -> Result<RvsConfig, ConfigFileError> {
        let f: sections::File =
            toml::from_str(text).map_err(|e| ConfigFileError::Syntax(e.to_string()))?;
        let daemon = sections::daemon(f.daemon)?;
        let mut ports: Vec<PortConfig> = Vec::with_capacity(f.ports.len());
        sections::each(text, f.ports, |p| {
            let port = sections::port(p, &ports)?;
            ports.push(port);
            Ok(())
        })?;
        let mut director = DirectorConfig {
            interfaces: sections::each(text, f.interfaces, |i| sections::interface(i, &ports))?,
            ..DirectorConfig::default()
        };
        for r in sections::each(text, f.routes, sections::route)? {
            match r {
                sections::Route::V4(r) => director.routes.push(r),
                sections::Route::V6(r) => director.routes6.push(r),
            }
        }
        sections::fullnat(&f.fullnat, &mut director)?;
        director.timeouts = sections::timeouts(&f.timeouts)?;
        let mut services = ServiceTable::new();
        let extras = sections::each(text, f.services, |s| {
            sections::service(s, &mut services, &director)
        })?;
        let mut checks = Vec::new();
        let mut sorry_servers = Vec::new();
        for e in extras {
            checks.extend(e.check);
            sorry_servers.extend(e.sorry);
        }
        director.services = services;
        director.managed = sections::ha(&f.ha, &director, &ports)?;
        let neighbours = sections::each(text, f.neighbours, sections::neighbour)?;
        let sync = sections::sync(f.sync, &ports)?;
        let cluster = sections::cluster(f.cluster, &mut director, &ports)?;
        // The data path's own whole-configuration checks.
        Snapshot::build(&director)?;
        Ok(RvsConfig {
            eal_args: f.eal.args,
            daemon,
            ports,
            director,
            neighbours,
            checks,
            sorry_servers,
            sync,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::{SessionState, TcpState};
    use sched::{ForwardMode, SchedKind};
    use std::net::Ipv4Addr;

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
    fn lport_quarantine_and_pools_default_and_parse() {
        let c = RvsConfig::parse(GOOD).unwrap();
        assert_eq!(c.director.lport_reuse, dataplane::lip::PortReuse::default());
        assert_eq!(
            (
                c.director.lport_reuse.pools,
                c.director.lport_reuse.quarantine_ms
            ),
            (16, 60_000)
        );
        let set = |extra: &str| {
            RvsConfig::parse(&GOOD.replace(
                "lport_range = \"2000-60000\"",
                &format!("lport_range = \"2000-60000\"\n{extra}"),
            ))
        };
        let c = set("lport_quarantine = 0\nlport_pools = 64").unwrap();
        assert_eq!(
            (
                c.director.lport_reuse.pools,
                c.director.lport_reuse.quarantine_ms
            ),
            (64, 0)
        );
        for (bad, says) in [
            (
                "lport_pools = 0",
                "lport_pools = 0: 1 to 256 pools are possible",
            ),
            (
                "lport_pools = 257",
                "lport_pools = 257: 1 to 256 pools are possible",
            ),
            (
                "lport_quarantine = 7200",
                "lport_quarantine = 7200 s is more than an hour",
            ),
        ] {
            let e = set(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn idle_sleep_defaults_to_busy_polling_and_is_bounded() {
        assert_eq!(RvsConfig::parse(GOOD).unwrap().daemon.idle_sleep_us, 0);
        let with = |us: &str| {
            RvsConfig::parse(&GOOD.replace(
                "table_capacity = 4096",
                &format!("table_capacity = 4096\nidle_sleep_us = {us}"),
            ))
        };
        assert_eq!(with("200").unwrap().daemon.idle_sleep_us, 200);
        let e = with("20000").unwrap_err().to_string();
        assert!(e.contains("idle_sleep_us 20000 is more than 10000"), "{e}");
        assert!(with("-1").is_err());
    }

    #[test]
    fn sync_section_defaults_and_parses() {
        let c = RvsConfig::parse(GOOD).unwrap();
        assert!(!c.sync.master && !c.sync.backup);
        assert_eq!(
            c.sync.settings.interface, "rvs-wan",
            "the first exception TAP"
        );
        assert_eq!(
            c.sync.settings.group,
            std::net::Ipv4Addr::new(224, 0, 0, 81)
        );
        assert_eq!(c.sync.settings.port, 8848);
        let with = |section: &str| RvsConfig::parse(&format!("{GOOD}\n[sync]\n{section}"));
        let c = with(
            "master = true\nbackup = true\ninterface = \"sync0\"\nsyncid = 9\n\
             peers = [\"10.9.0.2\", \"10.9.0.3:9000\"]\nmaxlen = 1400\nrefresh = 0",
        )
        .unwrap();
        assert!(c.sync.master && c.sync.backup);
        let s = &c.sync.settings;
        assert_eq!(
            (s.interface.as_str(), s.sync_id, s.maxlen, s.refresh_ms),
            ("sync0", 9, 1400, 0)
        );
        assert_eq!(
            s.peers,
            [
                "10.9.0.2:8848".parse().unwrap(),
                "10.9.0.3:9000".parse().unwrap()
            ]
        );
        for (bad, says) in [
            (
                "peers = [\"10.9.0\"]",
                "peer '10.9.0' is not an IPv4 address",
            ),
            (
                "master = true\ngroup = \"10.0.0.1\"",
                "10.0.0.1 is not a multicast group",
            ),
            ("backup = true\nmaxlen = 50", "maxlen 50 is too small"),
            ("mode = \"master\"", "unknown field `mode`"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn cluster_section_defaults_and_parses() {
        use std::time::Duration;
        assert!(RvsConfig::parse(GOOD).unwrap().cluster.is_none());
        let with = |section: &str| RvsConfig::parse(&format!("{GOOD}\n[cluster]\n{section}"));
        let c = with("").unwrap();
        let a = c.cluster.unwrap();
        assert_eq!(
            (a.table, a.interface.as_str(), a.metric, a.backup_metric),
            (100, "rvs-wan", 32, 64),
            "defaults; the first exception TAP"
        );
        assert_eq!(
            (a.hold, a.settle, a.drain_timeout),
            (
                Duration::from_secs(10),
                Duration::from_secs(2),
                Duration::from_secs(30)
            )
        );
        assert!(c.director.peer_lips.is_empty());
        let c = with(
            "table = 7\ninterface = \"tap9\"\nmetric = 10\nbackup_metric = 20\n\
             peer_lips = [\"10.1.0.202\"]\nhold = 1.5\nsettle = 0\ndrain_timeout = 5",
        )
        .unwrap();
        let a = c.cluster.unwrap();
        assert_eq!(
            (a.table, a.interface.as_str(), a.metric, a.backup_metric),
            (7, "tap9", 10, 20)
        );
        assert_eq!(a.hold, Duration::from_millis(1500));
        assert_eq!(
            c.director.peer_lips,
            [std::net::Ipv4Addr::new(10, 1, 0, 202)]
        );
        for (bad, says) in [
            ("table = 254", "table 254 is reserved"),
            ("table = 0", "table 0 is reserved"),
            ("metric = 64", "backup_metric 64 must be above metric 64"),
            (
                "peer_lips = [\"10.1.0.201\"]",
                "each LIP belongs to one director",
            ),
            (
                "peer_lips = [\"192.0.2.1\"]",
                "192.0.2.1 is configured twice",
            ),
            (
                "peer_lips = [\"192.0.2.100\"]",
                "LIP 192.0.2.100 is also a VIP",
            ),
            ("peer_lips = [\"x\"]", "peer LIP"),
            ("hold = -1", "hold -1 is out of range"),
            ("announce = true", "unknown field `announce`"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let no_tap = GOOD.replace("exception = \"rvs-wan\"\n", "");
        let e = RvsConfig::parse(&format!("{no_tap}\n[cluster]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exception TAP"), "{e}");
    }

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
        assert_eq!(c.daemon.table6_capacity, 1024, "IPv6 sessions: a quarter");
        let six = RvsConfig::parse(&GOOD.replace("4096", "4096\ntable6_capacity = 100"));
        assert_eq!(six.unwrap().daemon.table6_capacity, 100);
        let e = err(&GOOD.replace("4096", "4096\ntable6_capacity = 10"));
        assert_eq!(e, "daemon: table6_capacity must be at least 64");
        let set = RvsConfig::parse(&GOOD.replace("4096", "4096\ntemplate_capacity = 1000"));
        assert_eq!(set.unwrap().daemon.template_capacity, 1000);
        assert_eq!(small.daemon.fragment_capacity, 4096, "the default");
        let set = RvsConfig::parse(&GOOD.replace("4096", "4096\nfragment_capacity = 512"));
        assert_eq!(set.unwrap().daemon.fragment_capacity, 512);
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
        // The file's dests as `ipvsadm -a` would have added them in its order: newest first.
        assert_eq!(svc.dests()[1].mode, ForwardMode::FullNat);
        assert_eq!(svc.dests()[0].mode, ForwardMode::Dr, "ipvsadm's default");
        assert_eq!(
            svc.dests()[0].port,
            80,
            "dest port defaults to the service port"
        );
        assert_eq!(c.neighbours[0].mac, [2, 0, 0, 0, 0xfe, 0xfe]);
        let six = GOOD.replace("ip = \"192.0.2.254\"", "ip = \"2001:db8:2::254\"");
        let c = RvsConfig::parse(&six).unwrap();
        assert_eq!(
            c.neighbours[0].ip,
            "2001:db8:2::254".parse::<std::net::IpAddr>().unwrap()
        );
        let e = err(&GOOD.replace("ip = \"192.0.2.254\"", "ip = \"2001:db8::zz\""));
        assert!(
            e.contains("'2001:db8::zz' is not an IPv4 or IPv6 address"),
            "{e}"
        );
        let h = &c.checks[0];
        assert_eq!(
            h.kind,
            crate::health::CheckKind::Http(crate::health::HttpCheck {
                path: "/health".into(),
                expect: crate::health::StatusSet::success(),
                virtualhost: None,
                digest: None,
                tls: None,
            })
        );
        assert!(c.sorry_servers.is_empty());
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
    fn ipv6_services_and_dests_are_read() {
        let v6 = GOOD.replace(
            "addrs = [\"10.1.0.1/24\"]",
            "addrs = [\"10.1.0.1/24\", \"2001:db8:10:1::1/64\"]",
        ) + r#"
[[service]]
proto = "udp"
vip = "2001:db8:2::100"
port = 53
  [[service.dest]]
  addr = "2001:db8:10:1::11"
"#;
        let c = RvsConfig::parse(&v6).unwrap();
        let key = sched::ServiceKey {
            proto: conntrack::Proto::Udp,
            vip: "2001:db8:2::100".parse().unwrap(),
            port: 53,
        };
        let svc = c.director.services.get(&key).expect("the IPv6 service");
        let d = svc.dests()[0];
        assert_eq!(
            d.addr,
            "2001:db8:10:1::11".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!((d.port, d.weight, d.mode), (53, 1, ForwardMode::Dr));
        let six = v6.replace(
            "lips = [\"10.1.0.201\"]",
            "lips = [\"10.1.0.201\", \"2001:db8:10:1::201\"]",
        );
        let c6 = RvsConfig::parse(&six).unwrap();
        let v4lip: std::net::Ipv4Addr = "10.1.0.201".parse().unwrap();
        let v6lip: std::net::Ipv6Addr = "2001:db8:10:1::201".parse().unwrap();
        assert_eq!(
            (c6.director.lips, c6.director.lips6),
            (vec![v4lip], vec![v6lip])
        );
        // A dest of the other family, and an address that is none.
        let e = err(&v6.replace("addr = \"2001:db8:10:1::11\"", "addr = \"10.1.0.13\""));
        assert!(e.contains("service udp [2001:db8:2::100]:53"), "{e}");
        assert!(
            e.contains("Address family of destination 10.1.0.13 differs"),
            "{e}"
        );
        let e = err(&v6.replace("vip = \"2001:db8:2::100\"", "vip = \"2001:db8::zz\""));
        assert!(
            e.contains("vip '2001:db8::zz' is not an IPv4 or IPv6 address"),
            "{e}"
        );
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
    fn proxy_protocol_is_a_service_option_for_nat_and_fullnat() {
        let on = GOOD.replace(
            "scheduler = \"rr\"",
            "scheduler = \"rr\"\nproxy_protocol = \"v2\"",
        );
        let e = err(&on);
        assert!(
            e.contains("proxy-protocol cannot be used with DR (-g) dests"),
            "{e}"
        );
        let on = on.replace(
            "addr = \"10.1.0.12\"",
            "addr = \"10.1.0.12\"\n  port = 8080\n  mode = \"nat\"",
        );
        let c = RvsConfig::parse(&on).unwrap();
        assert!(c
            .director
            .services
            .iter()
            .all(|s| s.proxy_protocol() == Some(sched::ProxyProtocol::V2)));
        let e = err(&on.replace("\"v2\"", "\"v9\""));
        assert!(e.contains("illegal proxy-protocol value 'v9'"), "{e}");
        let e = err(&on.replace(
            "proxy_protocol = \"v2\"",
            "proxy_protocol = \"v2\"\ntoa = true",
        ));
        assert!(e.contains("toa and proxy-protocol"), "{e}");
        let c = RvsConfig::parse(&on.replace("proxy_protocol = \"v2\"", "toa = true")).unwrap();
        assert!(c.director.services.iter().all(|s| s.toa()));
    }

    #[test]
    fn interfaces_take_ipv6_prefixes_beside_ipv4() {
        let six = GOOD.replace("\"192.0.2.1/24\"", "\"192.0.2.1/24\", \"2001:db8:2::1/64\"");
        let c = RvsConfig::parse(&six).unwrap();
        let wan = &c.director.interfaces[0];
        assert_eq!(wan.addrs.len(), 1);
        assert_eq!(
            wan.addrs6,
            vec![dataplane::snapshot::Cidr6::new(
                "2001:db8:2::1".parse().unwrap(),
                64
            )]
        );
        for (bad, what) in [
            ("2001:db8:2::1/129", "prefix length must be 0..=128"),
            (
                "2001:db8:2::1",
                "needs a prefix length, e.g. 2001:db8:2::1/64",
            ),
            ("2001:db8:2::g1/64", "is not an IPv6 address"),
            ("fe80::1/64", "the link-local address is the kernel's"),
            ("ff02::1/64", "not a unicast address"),
        ] {
            let e = err(&GOOD.replace("\"192.0.2.1/24\"", &format!("\"192.0.2.1/24\", \"{bad}\"")));
            assert!(e.contains(what), "{bad}: {e}");
        }
        // IPv6 routes beside IPv4 ones, through an interface's IPv6 subnet.
        let routed = six.replace(
            "[[route]]",
            "[[route]]\ndst = \"::/0\"\nvia = \"2001:db8:2::254\"\n\n[[route]]",
        );
        let c = RvsConfig::parse(&routed).unwrap();
        assert_eq!((c.director.routes.len(), c.director.routes6.len()), (1, 1));
        assert_eq!(
            c.director.routes6[0].via,
            "2001:db8:2::254".parse::<std::net::Ipv6Addr>().unwrap()
        );
        let e = err(&routed.replace("via = \"2001:db8:2::254\"", "via = \"2001:db8:3::254\""));
        assert!(e.contains("not inside any interface's IPv6 subnet"), "{e}");
        let e = err(&routed.replace("via = \"2001:db8:2::254\"", "via = \"192.0.2.254\""));
        assert!(
            e.contains("is not an IPv6 address (the route is IPv6)"),
            "{e}"
        );
        let twice = GOOD
            .replace("\"192.0.2.1/24\"", "\"192.0.2.1/24\", \"2001:db8:2::1/64\"")
            .replace("\"10.1.0.1/24\"", "\"10.1.0.1/24\", \"2001:db8:2::1/64\"");
        assert!(err(&twice).contains("2001:db8:2::1/64: configured twice"));
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
            e.contains("check type 'icmp' must be tcp, http, https, udp, script (or misc) or none"),
            "{e}"
        );
        let e = err(&GOOD.replace("fall = 2", "fall = 2\n  timeout = 3"));
        assert!(
            e.contains("timeout must not be longer than its interval"),
            "{e}"
        );
        let e = err(&GOOD.replace("4096", "4096\ntemplate_capacity = 10"));
        assert_eq!(e, "daemon: template_capacity must be at least 64");
        let e = err(&GOOD.replace("4096", "4096\nfragment_capacity = 4"));
        assert_eq!(e, "daemon: fragment_capacity must be between 8 and 1048576");
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
    fn managed_addresses_are_vips_or_lips_with_an_exception_tap() {
        let c = RvsConfig::parse(GOOD).unwrap();
        assert!(c.director.managed.is_empty(), "none by default");
        let ha =
            |list: &str| RvsConfig::parse(&format!("{GOOD}\n[ha]\nmanaged_addresses = {list}\n"));
        let c = ha(r#"["192.0.2.100", "10.1.0.201"]"#).unwrap();
        assert_eq!(
            c.director.managed,
            [Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(10, 1, 0, 201)]
        );
        assert!(c.director.held.is_empty(), "never from the file");
        for (list, says) in [
            (
                r#"["192.0.2.7"]"#,
                "ha: managed address 192.0.2.7 is neither a VIP of a [[service]] nor a [fullnat] LIP",
            ),
            (r#"["192.0.2"]"#, "ha: managed address '192.0.2' is not an IPv4 address"),
            (
                r#"["10.1.0.201", "10.1.0.201"]"#,
                "managed address 10.1.0.201 is listed twice",
            ),
        ] {
            let e = ha(list).unwrap_err().to_string();
            assert!(e.starts_with(says), "{list}: {e}");
        }
        // A VIP that is also a DIP: the data path's own check.
        let dip_vip = GOOD.replace("vip = \"192.0.2.100\"", "vip = \"192.0.2.1\"");
        let e = RvsConfig::parse(&format!(
            "{dip_vip}\n[ha]\nmanaged_addresses = [\"192.0.2.1\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("managed address 192.0.2.1 is a DIP"), "{e}");
        // Without a TAP, keepalived has nowhere to hold them.
        let no_tap = GOOD.replace("exception = \"rvs-wan\"\n", "");
        let e = RvsConfig::parse(&format!(
            "{no_tap}\n[ha]\nmanaged_addresses = [\"192.0.2.100\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("managed_addresses needs a [[port]] with an exception TAP"),
            "{e}"
        );
        let e = ha("[]\nvrid = 51").unwrap_err().to_string();
        assert!(e.contains("unknown field `vrid`"), "{e}");
    }

    #[test]
    fn a_service_without_a_scheduler_gets_wlc_as_with_rvsadm() {
        let c = RvsConfig::parse(&GOOD.replace("scheduler = \"rr\"\n", "")).unwrap();
        let svc = c.director.services.iter().next().unwrap();
        assert_eq!(svc.sched(), SchedKind::Wlc);
        assert_eq!(svc.sched().to_string(), "wlc");
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:0a:ff:00:00:01"), Some([2, 10, 255, 0, 0, 1]));
        assert_eq!(parse_mac("02:0a:ff:00:00"), None);
        assert_eq!(parse_mac("02:0a:ff:00:00:01:02"), None);
        assert_eq!(parse_mac("zz:0a:ff:00:00:01"), None);
    }

    /// A TCP service on 192.0.2.100:80 with two NAT dests, `check` as its `[service.check]`
    /// body and `more` as more service keys.
    fn checked(check: &str, more: &str) -> String {
        GOOD.replace("[[neighbour]]", &format!(
            "[[service]]\nproto = \"tcp\"\nvip = \"192.0.2.100\"\nport = 443\n{more}\n  [[service.dest]]\n  addr = \"10.1.0.11\"\n  mode = \"nat\"\n  [[service.dest]]\n  addr = \"10.1.0.12\"\n  mode = \"nat\"\n  [service.check]\n{check}\n\n[[neighbour]]"
        ))
    }

    fn check_of(text: &str) -> crate::health::HealthCheck {
        let c = RvsConfig::parse(text).unwrap();
        c.checks
            .into_iter()
            .find(|h| h.service.port == 443)
            .expect("the service's check")
    }

    #[test]
    fn keepalived_checks_parse_with_their_defaults() {
        use crate::health::{CheckKind, StatusSet};
        let h = check_of(&checked(
            "type = \"https\"\npath = \"/health\"\nexpect = \"200-299, 301\"\nvirtualhost = \"www.example.org\"\ndigest = \"9E107D9D372BB6826BD81D3542A419D6\"",
            "",
        ));
        let CheckKind::Http(web) = &h.kind else {
            panic!("{h:?}")
        };
        assert_eq!(web.expect, StatusSet::parse("200-299,301").unwrap());
        assert_eq!(web.virtualhost.as_deref(), Some("www.example.org"));
        assert_eq!(
            web.digest.map(|d| crate::health::http::hex(&d)).as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        let tls = web.tls.as_ref().expect("https");
        assert_eq!(tls.ca_file(), None, "not verified by default");
        // An array of codes and ranges; a single code.
        for (expect, want) in [
            ("[200, \"300-302\"]", "200,300-302"),
            ("204", "204"),
            ("\"200\"", "200"),
        ] {
            let h = check_of(&checked(&format!("type = \"http\"\nexpect = {expect}"), ""));
            let CheckKind::Http(web) = &h.kind else {
                panic!("{h:?}")
            };
            assert_eq!(web.expect.to_string(), want);
            assert!(web.tls.is_none());
            assert_eq!(web.path, "/", "the default path");
        }
        // A script (misc, keepalived's name, too), its timeout the interval by default.
        for t in ["script", "misc", "SCRIPT"] {
            let h = check_of(&checked(
                &format!("type = \"{t}\"\nscript = \"/bin/sh -c 'exit 0' {{addr}} {{port}}\"\ninterval = 3"),
                "",
            ));
            let CheckKind::Script(s) = &h.kind else {
                panic!("{h:?}")
            };
            assert_eq!(s.argv(), ["/bin/sh", "-c", "exit 0", "{addr}", "{port}"]);
            assert_eq!(h.timeout, std::time::Duration::from_secs(3));
        }
        // A TCP-based check of a UDP service with the TCP port to probe.
        let udp = checked("type = \"https\"\nport = 8443", "").replace(
            "proto = \"tcp\"\nvip = \"192.0.2.100\"\nport = 443",
            "proto = \"udp\"\nvip = \"192.0.2.100\"\nport = 443",
        );
        let c = RvsConfig::parse(&udp).unwrap();
        assert!(c.checks.iter().any(|h| h.port == Some(8443)));
    }

    #[test]
    fn a_ca_file_is_read_when_the_configuration_is() {
        let dir = std::env::temp_dir().join(format!("rvs-config-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let h = check_of(&checked(
            &format!("type = \"https\"\nca_file = \"{}\"", path.display()),
            "",
        ));
        let crate::health::CheckKind::Http(web) = &h.kind else {
            panic!("{h:?}")
        };
        assert_eq!(web.tls.as_ref().unwrap().ca_file(), path.to_str());
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = err(&checked(
            &format!("type = \"https\"\nca_file = \"{}\"", path.display()),
            "",
        ));
        assert!(
            e.contains("ca_file") && e.contains("no PEM certificate in it"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_expect_of_another_shape_is_a_syntax_error_with_its_line() {
        for bad in ["true", "1.5", "[[200]]", "{ a = 1 }"] {
            let e = err(&checked(&format!("type = \"http\"\nexpect = {bad}"), ""));
            assert!(
                e.contains("a status code (200), a string of codes and ranges (\"200-299,301\") or an array of them")
                    && e.contains("line"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_check_keys_are_refused_with_what_is_wrong() {
        let udp_service = |check: &str| {
            checked(check, "").replace(
                "proto = \"tcp\"\nvip = \"192.0.2.100\"\nport = 443",
                "proto = \"udp\"\nvip = \"192.0.2.100\"\nport = 443",
            )
        };
        for (text, says) in [
            (checked("type = \"smtp\"", ""), "check type 'smtp' must be tcp, http, https, udp, script (or misc) or none"),
            (checked("type = \"http\"\nexpect = \"200-\"", ""), "check expect '200-' is not a status code (100..=599) or a range of them like 200-299"),
            (checked("type = \"http\"\nexpect = \"299-200\"", ""), "check expect range '299-200' ends below its start"),
            (checked("type = \"http\"\nexpect = 700", ""), "check expect '700' is not a status code"),
            (checked("type = \"http\"\nexpect = \"200,,301\"", ""), "check expect lists no status"),
            (checked("type = \"http\"\nexpect = []", ""), "check expect lists no status"),

            (checked("type = \"http\"\ndigest = \"abc\"", ""), "check digest 'abc' must be 32 hex digits"),
            (checked("type = \"http\"\npath = \"health\"", ""), "check path 'health' must start with /"),
            (checked("type = \"http\"\npath = \"/a b\"", ""), "check path '/a b' must start with / and hold no blanks"),
            (checked("type = \"http\"\nvirtualhost = \"a b\\r\\nX: y\"", ""), "must be a host name, without blanks or control characters"),
            (checked("type = \"https\"\nvirtualhost = \"bad_name!\"", ""), "virtualhost 'bad_name!' is not a DNS name or an address (TLS sends it as SNI)"),
            (checked("type = \"https\"\nca_file = \"/nonexistent/ca.pem\"", ""), "check ca_file '/nonexistent/ca.pem': "),
            (checked("type = \"http\"\nca_file = \"/etc/ssl/ca.pem\"", ""), "check ca_file is for type = \"https\", not \"http\""),
            (checked("type = \"tcp\"\npath = \"/\"", ""), "check path is for type = \"http\" or \"https\", not \"tcp\""),
            (checked("type = \"tcp\"\nvirtualhost = \"x\"", ""), "check virtualhost is for type = \"http\" or \"https\""),
            (checked("type = \"http\"\nscript = \"/bin/true\"", ""), "check script is for type = \"script\", not \"http\""),
            (checked("type = \"script\"", ""), "check type \"script\" needs script = \"/path/to/program args\""),
            (checked("type = \"script\"\nscript = \"  \"", ""), "check script is empty"),
            (checked("type = \"script\"\nscript = \"/bin/sh -c 'exit 0\"", ""), "unterminated quote"),
            (checked("type = \"script\"\nscript = \"/nonexistent/check {addr}\"", ""), "check script program '/nonexistent/check' does not exist"),
            (checked("type = \"script\"\nscript = \"/dev/null\"", ""), "script program '/dev/null' is not an executable file"),
            (checked("type = \"script\"\nscript = \"/bin/true\"\ninterval = 1\ntimeout = 2", ""), "check timeout must not be longer than its interval"),
            (udp_service("type = \"https\""), "check type \"https\" probes over TCP, and this is a udp service: give the port to probe"),
            (udp_service("type = \"tcp\""), "check type \"tcp\" probes over TCP, and this is a udp service"),
            (checked("type = \"udp\"", ""), "check type \"udp\" probes over UDP, and this is a tcp service"),
        ] {
            let e = err(&text);
            assert!(e.contains(says), "wanted {says:?}, got {e:?}");
            // Refused by the section's checks, which name the service.
            assert!(e.contains("service tcp 192.0.2.100:443") || e.contains("service udp 192.0.2.100:443"), "{e}");
        }
    }

    #[test]
    fn sorry_servers_take_the_dests_mode_and_are_checked_as_dests() {
        use std::net::IpAddr;
        let with = |more: &str| checked("type = \"tcp\"", more);
        let c = RvsConfig::parse(&with("sorry_server = \"10.1.0.99:8080\"")).unwrap();
        let (key, d) = c.sorry_servers[0];
        assert_eq!(
            (key.vip, key.port),
            ("192.0.2.100".parse::<IpAddr>().unwrap(), 443)
        );
        assert_eq!(
            (d.addr, d.port, d.weight, d.mode),
            (
                "10.1.0.99".parse::<IpAddr>().unwrap(),
                8080,
                1,
                ForwardMode::Nat
            ),
            "weight 1, the dests' mode"
        );
        let c = RvsConfig::parse(&with(
            "sorry_server = \"10.1.0.99\"\nsorry_mode = \"fullnat\"",
        ))
        .unwrap();
        let d = c.sorry_servers[0].1;
        assert_eq!(
            (d.port, d.mode),
            (443, ForwardMode::FullNat),
            "the service's port"
        );
        // Not in the configured dests: it is published only while none of them is up.
        let svc = c
            .director
            .services
            .iter()
            .find(|s| s.key().port == 443)
            .unwrap();
        assert_eq!(svc.dests().len(), 2);
        for (more, says) in [
            (
                "sorry_server = \"10.1.0.99:x\"",
                "sorry_server '10.1.0.99:x' is not an address or address:port",
            ),
            (
                "sorry_server = \"10.1.0.11:443\"",
                "sorry_server 10.1.0.11:443 is also a dest of the service",
            ),
            ("sorry_mode = \"nat\"", "sorry_mode is for a sorry_server"),
            (
                "sorry_server = \"10.1.0.99\"\nsorry_mode = \"snat\"",
                "forwarding mode 'snat'",
            ),
            (
                "sorry_server = \"2001:db8::99\"",
                "Address family of destination 2001:db8::99 differs",
            ),
            // DR cannot reach off-link servers nor map ports: the director's own checks.
            (
                "sorry_server = \"10.9.0.1\"\nsorry_mode = \"dr\"",
                "sorry_server: ",
            ),
            (
                "sorry_server = \"10.1.0.99:8080\"\nsorry_mode = \"dr\"",
                "cannot map ports",
            ),
        ] {
            let e = err(&with(more));
            assert!(e.contains(says), "{more}: wanted {says:?}, got {e:?}");
            assert!(e.contains("service tcp 192.0.2.100:443"), "{e}");
        }
        // Dests of two modes leave the sorry server's to the operator.
        let mixed = with("sorry_server = \"10.1.0.99\"").replacen(
            "mode = \"nat\"",
            "mode = \"fullnat\"",
            1,
        );
        let e = err(&mixed);
        assert!(
            e.contains("the service's dests have different forwarding modes: give sorry_mode"),
            "{e}"
        );
        let empty = GOOD.replace(
            "[[neighbour]]",
            "[[service]]\nproto = \"tcp\"\nvip = \"192.0.2.100\"\nport = 443\nsorry_server = \"10.1.0.99\"\n\n[[neighbour]]",
        );
        assert!(err(&empty).contains("no dests to take the forwarding mode from"));
    }
}
