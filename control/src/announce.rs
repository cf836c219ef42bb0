//! The announcer: the host routes a routing daemon on the director (BIRD 2, as Debian ships
//! it) exports to the router, kept by rvsd so that a VIP is announced exactly while this
//! director can serve it.
//!
//! rvsd keeps `addr/32 dev TAP` routes (protocol [`rtnl::RTPROT_RVS`], scope link) in one
//! kernel routing table that nothing routes by: BIRD's `kernel` protocol with `learn` imports
//! them, and its BGP export sends them to the router (next hop: the director's address). Every
//! route carries a metric, which BIRD reads as `krt_metric`: this director's own VIPs and LIPs
//! have `metric`, the peers' LIPs `backup_metric`, so an export filter (`bgp_med =
//! krt_metric`) makes the router prefer a LIP's own director and fall back to the others,
//! which hold its sessions through sync. The routes point at the TAP of rvsd's exception
//! path: when rvsd dies, the kernel removes the TAP and every route with it, and BIRD
//! withdraws them — no announcement outlives rvsd.
//!
//! A director goes through [`Phase`]s: **starting** (nothing announced until the peers'
//! bulk syncs are complete, or `hold` has passed), **serving** (each VIP whose services have
//! a dest with weight above 0, this director's LIPs, the peers' LIPs), **draining** (nothing
//! announced; waiting until the sessions are swept to the peers and sent, or `timeout`), and
//! **drained** (rvsd exits). [`Announcer::tick`] moves them on and brings the table in line
//! with [`wanted`]; it is called every [`TICK`] from a thread of rvsd.

use crate::rtnl::{self, Message};
use dataplane::snapshot::Snapshot;
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{self, AddressFamily, RecvFlags, SendFlags, SocketType};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often rvsd calls [`Announcer::tick`].
pub const TICK: Duration = Duration::from_millis(100);
/// A starting director listens this long for peers before it takes their silence for none.
pub const LISTEN: Duration = Duration::from_secs(1);
/// How long an acknowledgement from the kernel may take.
const ACK_TIMEOUT: Duration = Duration::from_millis(500);

/// `[cluster]` settings of the announcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// The kernel routing table rvsd keeps its routes in (BIRD's `kernel table`).
    pub table: u32,
    /// The interface the routes point at: a TAP of rvsd's exception path.
    pub interface: String,
    /// Metric of this director's VIPs and LIPs.
    pub metric: u32,
    /// Metric of the peers' LIPs (announced as backups: higher, so less preferred).
    pub backup_metric: u32,
    /// The longest a starting director waits for its peers' bulk syncs before announcing.
    pub hold: Duration,
    /// After a drain withdrew everything: the least time before rvsd exits (for the router
    /// to move the flows to the peers).
    pub settle: Duration,
    /// The longest a drain waits for the sessions (`rvsadm --drain` may give another).
    pub drain_timeout: Duration,
}

/// Where a director is in its life in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the peers' bulk syncs: nothing announced.
    Starting,
    /// Announcing what it can serve.
    Serving,
    /// Withdrawn, waiting for its sessions to reach the peers.
    Draining,
    /// Done: rvsd exits.
    Drained,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Drained => "drained",
        })
    }
}

/// What a route announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteRole {
    /// A VIP with at least one servable service.
    Vip,
    /// One of this director's LIPs.
    Lip,
    /// A peer director's LIP, as a backup.
    PeerLip,
}

impl RouteRole {
    /// The word listings use.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteRole::Vip => "vip",
            RouteRole::Lip => "lip",
            RouteRole::PeerLip => "peer-lip",
        }
    }
}

/// The routes a director in `phase` announces with `snap` in force: address → (metric, role).
pub fn wanted(
    snap: &Snapshot,
    phase: Phase,
    s: &AnnounceSettings,
) -> BTreeMap<Ipv4Addr, (u32, RouteRole)> {
    let mut out = BTreeMap::new();
    if phase != Phase::Serving {
        return out;
    }
    for (i, svc) in snap.services().iter().enumerate() {
        let servable = svc.dests().iter().any(|d| d.weight > 0) && !snap.service_standby(i);
        // IPv4 VIPs only: the announcer's kernel routes are IPv4 host routes.
        if let (true, IpAddr::V4(vip)) = (servable, svc.key().vip) {
            out.insert(vip, (s.metric, RouteRole::Vip));
        }
    }
    for &lip in snap.lips() {
        if !snap.local(lip).is_some_and(|l| l.standby) {
            out.insert(lip, (s.metric, RouteRole::Lip));
        }
    }
    for &lip in snap.peer_lips() {
        out.insert(lip, (s.backup_metric, RouteRole::PeerLip));
    }
    out
}

/// Why the announcer could not start or change a route.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The interface the routes point at does not exist.
    #[error("[cluster] interface \"{name}\": no such interface: {source}")]
    UnknownInterface {
        /// Its name.
        name: String,
        /// The lookup's error.
        source: std::io::Error,
    },
    /// A netlink socket could not be opened or used.
    #[error("rtnetlink {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused a route change.
    #[error("the kernel refused the route {addr}/32 metric {metric} in table {table}: {source}")]
    Refused {
        /// The route's address.
        addr: Ipv4Addr,
        /// Its metric.
        metric: u32,
        /// The table.
        table: u32,
        /// The kernel's errno.
        source: std::io::Error,
    },
}

/// The kernel routing table rvsd writes, over rtnetlink.
struct RouteTable {
    sock: OwnedFd,
    ifindex: u32,
    table: u32,
    seq: u32,
}

fn sock_err(op: &'static str) -> impl FnOnce(Errno) -> AnnounceError {
    move |e| AnnounceError::Socket {
        op,
        source: e.into(),
    }
}

impl RouteTable {
    fn open(interface: &str, table: u32) -> Result<RouteTable, AnnounceError> {
        let inet = net::socket(AddressFamily::INET, SocketType::DGRAM, None)
            .map_err(sock_err("socket for the interface lookup"))?;
        let ifindex = net::netdevice::name_to_index(&inet, interface).map_err(|e| {
            AnnounceError::UnknownInterface {
                name: interface.to_string(),
                source: e.into(),
            }
        })?;
        let sock = net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
            .map_err(sock_err("socket"))?;
        net::bind(&sock, &SocketAddrNetlink::new(0, 0)).map_err(sock_err("bind"))?;
        net::sockopt::set_socket_timeout(&sock, net::sockopt::Timeout::Recv, Some(ACK_TIMEOUT))
            .map_err(sock_err("receive timeout"))?;
        Ok(RouteTable {
            sock,
            ifindex,
            table,
            seq: 0,
        })
    }

    /// Adds (`new`) or removes the route of `addr` with `metric`, and waits for the kernel's
    /// answer. Removing a route that is not there succeeds (the TAP may have taken it along).
    fn change(&mut self, new: bool, addr: Ipv4Addr, metric: u32) -> Result<(), AnnounceError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = rtnl::route_request(new, seq, addr, self.ifindex, self.table, metric);
        net::sendto(
            &self.sock,
            &msg,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(sock_err("send a route request"))?;
        let mut buf = [0u8; 4096];
        loop {
            let n = match net::recv(&self.sock, &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(sock_err("receive the acknowledgement")(e)),
            };
            for m in rtnl::messages(&buf[..n]) {
                match m {
                    Ok(Message::Error { errno, seq: s }) if s == seq => {
                        return match errno {
                            0 => Ok(()),
                            // ESRCH: no such route to remove.
                            3 if !new => Ok(()),
                            e => Err(AnnounceError::Refused {
                                addr,
                                metric,
                                table: self.table,
                                source: std::io::Error::from_raw_os_error(e),
                            }),
                        };
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(AnnounceError::Socket {
                            op: "read the acknowledgement",
                            source: std::io::Error::other(e.to_string()),
                        })
                    }
                }
            }
        }
    }
}

/// A drain in progress (or ended).
#[derive(Clone, Debug)]
struct Drain {
    started: Instant,
    deadline: Instant,
    /// The sweeps started on each worker (with a sync master running), to wait for.
    sweeps: Option<Vec<u32>>,
    /// What it waits for now, or how it ended.
    status: String,
}

/// What [`Announcer::tick`] reads of the sync daemon.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncView {
    /// A backup role runs: a starting director waits for the peers' bulk syncs.
    pub backup: bool,
    /// A master role runs: a draining director waits for its sweep to be sent.
    pub master: bool,
    /// Peers heard since the backup started.
    pub peers_heard: usize,
    /// Of them, those whose bulk sync is complete.
    pub peers_complete: usize,
    /// Records queued and not sent.
    pub backlog: u64,
}

/// What a drain asks of the sync plane and the workers, and reads back.
pub trait DrainProbe {
    /// Starts a sweep of every worker's sessions to the peers; returns each worker's sweep
    /// number (None without a sync master).
    fn sweep(&mut self) -> Option<Vec<u32>>;
    /// Whether the sweeps are finished and their records sent.
    fn swept(&self, sweeps: &[u32]) -> bool;
    /// Sessions in the workers' tables.
    fn sessions(&self) -> u64;
}

/// The announcer's state, kept by the control plane.
pub struct Announcer {
    settings: AnnounceSettings,
    table: RouteTable,
    /// Routes in the table now: address → (metric, role).
    installed: BTreeMap<Ipv4Addr, (u32, RouteRole)>,
    phase: Phase,
    since: Instant,
    drain: Option<Drain>,
    errors: u64,
}

impl Announcer {
    /// An announcer writing to `settings.table` through `settings.interface`, starting.
    ///
    /// # Errors
    /// The interface does not exist, or no netlink socket.
    pub fn new(settings: AnnounceSettings) -> Result<Announcer, AnnounceError> {
        let table = RouteTable::open(&settings.interface, settings.table)?;
        info!(
            table = settings.table,
            interface = %settings.interface,
            "announcer: routes for the routing daemon in this kernel table"
        );
        Ok(Announcer {
            settings,
            table,
            installed: BTreeMap::new(),
            phase: Phase::Starting,
            since: Instant::now(),
            drain: None,
            errors: 0,
        })
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Its settings.
    pub fn settings(&self) -> &AnnounceSettings {
        &self.settings
    }

    /// Time in this phase.
    pub fn in_phase(&self) -> Duration {
        self.since.elapsed()
    }

    /// The routes in the table now.
    pub fn installed(&self) -> &BTreeMap<Ipv4Addr, (u32, RouteRole)> {
        &self.installed
    }

    /// What the drain waits for, or how it ended ("" before any).
    pub fn drain_status(&self) -> &str {
        self.drain.as_ref().map_or("", |d| d.status.as_str())
    }

    /// Route changes the kernel refused.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn enter(&mut self, phase: Phase) {
        info!(from = %self.phase, to = %phase, "cluster: phase");
        self.phase = phase;
        self.since = Instant::now();
    }

    /// Starts a drain (if none runs): everything is withdrawn at the next tick.
    pub fn drain(&mut self, timeout: Option<Duration>, probe: &mut dyn DrainProbe) {
        if matches!(self.phase, Phase::Draining | Phase::Drained) {
            return;
        }
        let now = Instant::now();
        self.drain = Some(Drain {
            started: now,
            deadline: now + timeout.unwrap_or(self.settings.drain_timeout),
            sweeps: probe.sweep(),
            status: "withdrawing".into(),
        });
        self.enter(Phase::Draining);
    }

    /// Moves the phase on and brings the table in line with what `snap` lets this director
    /// serve. Returns true once drained (rvsd then exits).
    pub fn tick(&mut self, snap: &Snapshot, sync: SyncView, probe: &dyn DrainProbe) -> bool {
        if self.phase == Phase::Starting {
            let waited = self.since.elapsed();
            let complete = sync.peers_complete >= sync.peers_heard;
            if !sync.backup || (waited >= LISTEN && complete) {
                info!(
                    peers = sync.peers_complete,
                    "cluster: the peers' bulk syncs are complete; announcing"
                );
                self.enter(Phase::Serving);
            } else if waited >= self.settings.hold {
                warn!(
                    heard = sync.peers_heard,
                    complete = sync.peers_complete,
                    "cluster: hold time over before every peer's bulk sync completed; announcing"
                );
                self.enter(Phase::Serving);
            }
        }
        self.apply(&wanted(snap, self.phase, &self.settings));
        if self.phase == Phase::Draining {
            self.drain_step(sync, probe);
        }
        self.phase == Phase::Drained
    }

    fn drain_step(&mut self, sync: SyncView, probe: &dyn DrainProbe) {
        let Some(d) = &mut self.drain else {
            return;
        };
        let now = Instant::now();
        let sessions = probe.sessions();
        let withdrawn = self.installed.is_empty();
        let settled = now.duration_since(d.started) >= self.settings.settle;
        let synced = match &d.sweeps {
            Some(s) => probe.swept(s) && sync.backlog == 0,
            None => sessions == 0,
        };
        let waited = now.duration_since(d.started).as_secs_f64();
        if withdrawn && settled && synced {
            d.status = match &d.sweeps {
                Some(_) => {
                    format!("drained in {waited:.1} s: {sessions} sessions synced to the peers")
                }
                None => format!("drained in {waited:.1} s: every session finished"),
            };
        } else if now >= d.deadline {
            d.status = format!(
                "drain timed out after {waited:.1} s: {} ({sessions} sessions)",
                if !withdrawn {
                    "routes not withdrawn"
                } else if d.sweeps.is_some() {
                    "the sweep to the peers was not sent"
                } else {
                    "sessions still open, no sync master to hand them to"
                }
            );
        } else {
            d.status = format!(
                "waiting {:.0} s more at most: {}",
                d.deadline.duration_since(now).as_secs_f64(),
                if !withdrawn {
                    "withdrawing".to_string()
                } else if !settled {
                    "the router moving the flows".to_string()
                } else if d.sweeps.is_some() {
                    format!("the sweep of {sessions} sessions to the peers")
                } else {
                    format!("{sessions} sessions to finish")
                }
            );
            return;
        }
        info!(status = %d.status, "cluster: drain over");
        self.enter(Phase::Drained);
    }

    /// Adds what is wanted and missing, removes what is there and not wanted; a refused
    /// change is counted and tried again at the next tick.
    fn apply(&mut self, want: &BTreeMap<Ipv4Addr, (u32, RouteRole)>) {
        let stale: Vec<(Ipv4Addr, u32)> = self
            .installed
            .iter()
            .filter(|(a, (m, _))| want.get(a).map(|w| w.0) != Some(*m))
            .map(|(a, (m, _))| (*a, *m))
            .collect();
        for (addr, metric) in stale {
            match self.table.change(false, addr, metric) {
                Ok(()) => {
                    info!(%addr, metric, "cluster: withdrawn");
                    self.installed.remove(&addr);
                }
                Err(e) => self.refused(&e),
            }
        }
        for (&addr, &(metric, role)) in want {
            if self.installed.contains_key(&addr) {
                continue;
            }
            match self.table.change(true, addr, metric) {
                Ok(()) => {
                    info!(%addr, metric, role = role.as_str(), "cluster: announced");
                    self.installed.insert(addr, (metric, role));
                }
                Err(e) => self.refused(&e),
            }
        }
    }

    fn refused(&mut self, e: &AnnounceError) {
        self.errors += 1;
        if self.errors.is_power_of_two() {
            warn!(errors = self.errors, "cluster: {e}");
        }
    }

    /// Removes every route (rvsd stopping).
    pub fn withdraw_all(&mut self) {
        self.apply(&BTreeMap::new());
    }
}

#[cfg(test)]
mod tests {
    //! The phases over real netlink: routes in a table of this test's own on `lo` (root).
    use super::*;
    use dataplane::snapshot::DirectorConfig;
    use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
    use std::process::Command;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 201);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 202);

    fn snapshot(weight: u32) -> Snapshot {
        let key = ServiceKey {
            proto: conntrack::Proto::Tcp,
            vip: VIP.into(),
            port: 80,
        };
        let mut svc = Service::new(key, SchedKind::Mh).unwrap();
        svc.add_dest(Dest {
            addr: Ipv4Addr::new(10, 1, 0, 11).into(),
            port: 80,
            weight,
            mode: ForwardMode::FullNat,
        })
        .unwrap();
        let mut services = ServiceTable::default();
        services.add(svc).unwrap();
        let cfg = DirectorConfig {
            interfaces: vec![dataplane::snapshot::InterfaceConfig {
                addrs6: Vec::new(),
                name: "lan0".into(),
                port: 0,
                vlan: None,
                addrs: vec![dataplane::snapshot::Cidr::new(
                    Ipv4Addr::new(10, 1, 0, 1),
                    24,
                )],
                mtu: 1500,
            }],
            lips: vec![LIP],
            peer_lips: vec![PEER],
            services,
            ..DirectorConfig::default()
        };
        Snapshot::build(&cfg).unwrap()
    }

    /// The routes of protocol 250 in `table`, as "addr metric".
    fn table_routes(table: u32) -> Vec<String> {
        let o = Command::new("ip")
            .args(["route", "show", "table", &table.to_string(), "proto", "250"])
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let m = w
                    .iter()
                    .position(|x| *x == "metric")
                    .map_or("?", |i| w[i + 1]);
                format!("{} {m}", w[0])
            })
            .collect();
        v.sort();
        v
    }

    struct Probe {
        swept: bool,
        sessions: u64,
    }

    impl DrainProbe for Probe {
        fn sweep(&mut self) -> Option<Vec<u32>> {
            Some(vec![1])
        }
        fn swept(&self, _: &[u32]) -> bool {
            self.swept
        }
        fn sessions(&self) -> u64 {
            self.sessions
        }
    }

    fn settings(table: u32, hold_ms: u64) -> AnnounceSettings {
        AnnounceSettings {
            table,
            interface: "lo".into(),
            metric: 32,
            backup_metric: 64,
            hold: Duration::from_millis(hold_ms),
            settle: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn phases_follow_the_peers_and_the_drain() {
        let table = 20_000 + std::process::id() % 10_000;
        let mut a = Announcer::new(settings(table, 60_000)).unwrap();
        let snap = snapshot(1);
        let mut probe = Probe {
            swept: false,
            sessions: 3,
        };
        // A backup that heard a peer whose bulk sync is not complete: nothing announced.
        let waiting = SyncView {
            backup: true,
            peers_heard: 1,
            ..SyncView::default()
        };
        std::thread::sleep(LISTEN);
        assert!(!a.tick(&snap, waiting, &probe));
        assert_eq!(a.phase(), Phase::Starting);
        assert!(table_routes(table).is_empty());
        // Its bulk sync complete: serving, every route in the table.
        let complete = SyncView {
            peers_complete: 1,
            ..waiting
        };
        a.tick(&snap, complete, &probe);
        assert_eq!(a.phase(), Phase::Serving);
        let all = ["10.1.0.201 32", "10.1.0.202 64", "192.0.2.100 32"];
        assert_eq!(table_routes(table), all);
        // The only dest at weight 0: the VIP goes, the LIPs stay.
        a.tick(&snapshot(0), complete, &probe);
        assert_eq!(table_routes(table), all[..2]);
        a.tick(&snap, complete, &probe);
        assert_eq!(table_routes(table), all);
        // A drain: withdrawn at once, drained only once the sweep is sent.
        a.drain(None, &mut probe);
        assert!(!a.tick(&snap, complete, &probe));
        assert_eq!(a.phase(), Phase::Draining);
        assert!(table_routes(table).is_empty());
        assert!(
            a.drain_status().contains("sweep of 3 sessions"),
            "{}",
            a.drain_status()
        );
        probe.swept = true;
        assert!(a.tick(&snap, complete, &probe));
        assert_eq!(a.phase(), Phase::Drained);
        assert!(
            a.drain_status().starts_with("drained in"),
            "{}",
            a.drain_status()
        );
        assert_eq!(a.errors(), 0);
    }

    #[test]
    fn hold_ends_the_wait_for_silent_peers() {
        let table = 30_000 + std::process::id() % 10_000;
        let mut a = Announcer::new(settings(table, 300)).unwrap();
        let snap = snapshot(1);
        let probe = Probe {
            swept: false,
            sessions: 0,
        };
        let never = SyncView {
            backup: true,
            peers_heard: 2,
            peers_complete: 1,
            ..SyncView::default()
        };
        a.tick(&snap, never, &probe);
        assert_eq!(a.phase(), Phase::Starting);
        std::thread::sleep(Duration::from_millis(350));
        a.tick(&snap, never, &probe);
        assert_eq!(a.phase(), Phase::Serving);
        assert_eq!(table_routes(table).len(), 3);
        a.withdraw_all();
        assert!(table_routes(table).is_empty());
        assert!(Announcer::new(AnnounceSettings {
            interface: "no-such-if0".into(),
            ..settings(table, 0)
        })
        .is_err());
    }
}
