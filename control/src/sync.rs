//! The sync daemon: session sync between directors over UDP, as IPVS's `ipvsadm
//! --start-daemon` does, in rvs's own versioned format ([`dataplane::sync`]).
//!
//! One thread per director runs whichever roles are started. As **master** it drains every
//! worker's outbound ring ([`SyncLink`]) about every 5 ms, packs the records into datagrams
//! of at most `maxlen` bytes and sends them to the multicast group (224.0.0.81:8848 by
//! default, IPVS's) on the sync interface, or to each unicast peer; it asks the workers for a
//! refresh sweep every `refresh` seconds, and for a whole-table sweep when a backup asks for
//! a bulk sync. As **backup** it checks each datagram (sync id, version, framing, every
//! record's rules; what fails is counted by [`SyncDrop`] reason and dropped), counts the
//! datagrams a sender's sequence numbers say were lost, picks the worker that owns each
//! flow on this director ([`FlowOwner`]) and posts the record into that worker's inbound
//! ring (a full ring drops it, counted). A backup asks for a bulk sync when it starts, when
//! it first hears a sender, and when it sees datagrams lost — at most once a second.
//! Datagrams from this director itself are ignored. Nothing here ever blocks a worker.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::snapshot::{Snapshot, SnapshotCell};
use dataplane::sync::{
    Datagram, DatagramWriter, FlowOwner, ServiceView, SyncDrop, SyncHeader, SyncLink, SyncRecord,
    WriteError,
};
use tracing::{info, warn};

/// IPVS's sync group and port.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// IPVS's sync port.
pub const DEFAULT_PORT: u16 = 8848;
/// Header flag: the sender asks for a bulk sync (a whole-table sweep).
pub const FLAG_BULK_REQUEST: u16 = 0x0001;
/// Header flag: the sender has sent its whole table since the last bulk request it heard
/// (an otherwise empty datagram). A starting cluster director waits for it from its peers
/// before it announces anything.
pub const FLAG_BULK_END: u16 = 0x0002;
/// The receive timeout that paces the daemon's loop.
const TICK: Duration = Duration::from_millis(5);
/// Bulk requests at most this often.
const BULK_INTERVAL: Duration = Duration::from_secs(1);
/// A sender's view of its services goes out this often (and whenever the services change).
const VIEW_INTERVAL: Duration = Duration::from_secs(1);
/// Datagrams read per loop at most, before the outbound rings are drained again.
const RECV_BURST: usize = 512;

/// A sync daemon's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends this director's sessions.
    Master,
    /// Installs the peers' sessions.
    Backup,
}

impl Role {
    /// ipvsadm's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a sync daemon talks to its peers (ipvsadm's `--mcast-interface`, `--syncid`,
/// `--sync-maxlen`, `--mcast-group`, `--mcast-port`, `--mcast-ttl`, and rvs's unicast peers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// The kernel interface the datagrams go over (e.g. the data port's TAP).
    pub interface: String,
    /// The sync group id (0–255).
    pub sync_id: u8,
    /// The multicast group (unused with unicast peers).
    pub group: Ipv4Addr,
    /// The UDP port, sent to and listened on.
    pub port: u16,
    /// Unicast peers instead of the group (`--sync-peer`).
    pub peers: Vec<SocketAddrV4>,
    /// Largest datagram in bytes (UDP payload).
    pub maxlen: u16,
    /// Multicast TTL.
    pub ttl: u8,
    /// A refresh sweep of the whole table this often (ms; 0: none).
    pub refresh_ms: u64,
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        SyncSettings {
            interface: String::new(),
            sync_id: 0,
            group: DEFAULT_GROUP,
            port: DEFAULT_PORT,
            peers: Vec::new(),
            maxlen: 1472,
            ttl: 1,
            refresh_ms: 30_000,
        }
    }
}

/// Why a sync daemon could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// That role runs already.
    #[error("a {0} sync daemon is already running")]
    AlreadyRunning(Role),
    /// That role does not run.
    #[error("no {0} sync daemon is running")]
    NotRunning(Role),
    /// The other role runs with other settings: both share one socket.
    #[error("the running {running} sync daemon uses other settings ({settings}); stop it first or start with the same")]
    OtherSettings {
        /// The role running.
        running: Role,
        /// Its settings, for the message.
        settings: String,
    },
    /// Settings out of range.
    #[error("bad sync settings: {0}")]
    Bad(String),
    /// The socket could not be set up.
    #[error("sync socket on {interface}: {what}: {source}")]
    Socket {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// rvsd runs without workers to sync (no sync links).
    #[error("session sync is not available in this rvsd")]
    Unavailable,
}

impl SyncSettings {
    /// Checks the settings' ranges.
    ///
    /// # Errors
    /// [`SyncError::Bad`] saying which.
    pub fn check(&self) -> Result<(), SyncError> {
        if self.interface.is_empty() || self.interface.len() > 15 || self.interface.contains('/') {
            return Err(SyncError::Bad(format!(
                "interface name {:?}: 1 to 15 characters",
                self.interface
            )));
        }
        if self.peers.is_empty() && !self.group.is_multicast() {
            return Err(SyncError::Bad(format!(
                "{} is not a multicast group",
                self.group
            )));
        }
        if self.port == 0 {
            return Err(SyncError::Bad("port 0".into()));
        }
        if usize::from(self.maxlen)
            < dataplane::sync::wire::header::LEN + dataplane::sync::MAX_RECORD_LEN
        {
            return Err(SyncError::Bad(format!(
                "maxlen {} is too small for one record",
                self.maxlen
            )));
        }
        if self.ttl == 0 {
            return Err(SyncError::Bad("TTL 0".into()));
        }
        Ok(())
    }

    /// The settings as `-L --daemon` shows them.
    pub fn describe(&self) -> String {
        let to = if self.peers.is_empty() {
            format!(
                "mcast={}, group={}:{}",
                self.interface, self.group, self.port
            )
        } else {
            let peers: Vec<String> = self.peers.iter().map(ToString::to_string).collect();
            format!("interface={}, peers={}", self.interface, peers.join(","))
        };
        format!("{to}, syncid={}, maxlen={}", self.sync_id, self.maxlen)
    }
}

macro_rules! sync_counters {
    ($( $(#[doc = $doc:literal])* $field:ident => $name:literal, )*) => {
        /// The daemon's counters (read by `-L --daemon --stats` and the metrics).
        #[derive(Debug, Default)]
        pub struct SyncStats {
            $( $(#[doc = $doc])* pub $field: AtomicU64, )*
            /// Datagrams refused whole, by [`SyncDrop`] reason.
            pub datagram_drops: [AtomicU64; SyncDrop::COUNT],
            /// Records refused, by [`SyncDrop`] reason.
            pub record_drops: [AtomicU64; SyncDrop::COUNT],
        }

        impl SyncStats {
            /// Every plain counter: its metric name and value.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$( ($name, self.$field.load(Relaxed)), )*]
            }

            /// Every plain counter: its metric name, what it counts (its doc comment, the
            /// metric's `# HELP` text) and its value.
            pub fn described(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$( ($name, concat!($($doc),*).trim_ascii_start(), self.$field.load(Relaxed)), )*]
            }
        }
    };
}

sync_counters! {
    /// Datagrams sent.
    datagrams_sent => "rvs_sync_datagrams_sent_total",
    /// Records sent.
    records_sent => "rvs_sync_records_sent_total",
    /// Datagrams the socket refused to send.
    send_errors => "rvs_sync_send_errors_total",
    /// Datagrams received from peers (own ones not counted).
    datagrams_received => "rvs_sync_datagrams_received_total",
    /// Records received in valid datagrams.
    records_received => "rvs_sync_records_received_total",
    /// Records handed to the workers to install.
    records_posted => "rvs_sync_records_posted_total",
    /// Records dropped because the owning worker's inbound ring was full.
    records_dropped => "rvs_sync_records_dropped_total",
    /// Datagrams a sender's sequence numbers say never arrived.
    datagrams_lost => "rvs_sync_datagrams_lost_total",
    /// Bulk syncs this director asked for.
    bulk_requests_sent => "rvs_sync_bulk_requests_sent_total",
    /// Bulk syncs peers asked this director for.
    bulk_requests_received => "rvs_sync_bulk_requests_received_total",
    /// Bulk syncs this director completed (a datagram saying so sent).
    bulk_ends_sent => "rvs_sync_bulk_ends_sent_total",
    /// Views of their services peers sent that differ from this director's (another
    /// configuration: their new flows may go to other dests).
    view_mismatches => "rvs_sync_view_mismatches_total",
    /// Received datagrams the daemon ignored (this director's own, or a bulk request while
    /// no master runs).
    ignored => "rvs_sync_ignored_total",
}

/// What the daemon shares with the control plane while it runs.
#[derive(Debug)]
struct Shared {
    master: AtomicBool,
    backup: AtomicBool,
    stop: AtomicBool,
}

/// A running daemon.
#[derive(Debug)]
struct Running {
    settings: SyncSettings,
    sender: u32,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    peers: Arc<std::sync::Mutex<HashMap<u32, PeerSeen>>>,
}

/// What a backup knows of one sender.
#[derive(Clone, Copy, Debug)]
pub struct PeerSeen {
    /// Its address.
    pub addr: SocketAddr,
    /// The last sequence number received.
    pub seq: u32,
    /// When its last datagram came.
    pub at: Instant,
    /// Datagrams received from it.
    pub datagrams: u64,
    /// When it last said its bulk sync was complete ([`FLAG_BULK_END`]).
    pub bulk_ended: Option<Instant>,
    /// The last view of its services it sent.
    pub view: Option<ServiceView>,
}

/// One role as `-L --daemon` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonInfo {
    /// The role.
    pub role: Role,
    /// Its settings.
    pub settings: SyncSettings,
    /// This director's sender id.
    pub sender: u32,
}

/// Session sync for the control plane: the workers' links, and the daemon when one runs.
#[derive(Debug)]
pub struct SyncPlane {
    links: Vec<Arc<SyncLink>>,
    owner: Arc<FlowOwner>,
    cell: Arc<SnapshotCell>,
    stats: Arc<SyncStats>,
    running: Option<Running>,
}

impl SyncPlane {
    /// Sync over `links` (one per worker, in worker order), installing by `owner`'s rules
    /// with the configuration in `cell`.
    pub fn new(links: Vec<Arc<SyncLink>>, owner: FlowOwner, cell: Arc<SnapshotCell>) -> SyncPlane {
        SyncPlane {
            links,
            owner: Arc::new(owner),
            cell,
            stats: Arc::new(SyncStats::default()),
            running: None,
        }
    }

    /// The daemon's counters.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Records waiting in the workers' outbound rings (the master's backlog).
    pub fn backlog(&self) -> u64 {
        self.links.iter().map(|l| l.outbound_len() as u64).sum()
    }

    /// Starts a sweep of every worker's sessions to the peers (a drain hands them over):
    /// each worker's sweep number, or None when no master role runs.
    pub fn sweep_all(&self) -> Option<Vec<u32>> {
        let r = self.running.as_ref()?;
        if !r.shared.master.load(Relaxed) {
            return None;
        }
        Some(self.links.iter().map(|l| l.request_sweep()).collect())
    }

    /// Whether the sweeps `sweeps` (from [`SyncPlane::sweep_all`]) are finished and every
    /// record they queued has been sent.
    pub fn swept(&self, sweeps: &[u32]) -> bool {
        self.links
            .iter()
            .zip(sweeps)
            .all(|(l, &n)| l.sweep_finished(n) && l.outbound_len() == 0)
    }

    /// What the announcer reads: the roles running, the peers heard and whose bulk sync is
    /// complete, the backlog.
    pub fn view(&self) -> crate::announce::SyncView {
        let Some(r) = &self.running else {
            return Default::default();
        };
        let peers = lock(&r.peers);
        crate::announce::SyncView {
            backup: r.shared.backup.load(Relaxed),
            master: r.shared.master.load(Relaxed),
            peers_heard: peers.len(),
            peers_complete: peers.values().filter(|p| p.bulk_ended.is_some()).count(),
            backlog: self.backlog(),
        }
    }

    /// The senders this backup has heard.
    pub fn peers(&self) -> Vec<(u32, PeerSeen)> {
        self.running.as_ref().map_or_else(Vec::new, |r| {
            let mut v: Vec<_> = lock(&r.peers).iter().map(|(k, v)| (*k, *v)).collect();
            v.sort_by_key(|(k, _)| *k);
            v
        })
    }

    /// The roles running.
    pub fn daemons(&self) -> Vec<DaemonInfo> {
        let Some(r) = &self.running else {
            return Vec::new();
        };
        [
            (Role::Master, r.shared.master.load(Relaxed)),
            (Role::Backup, r.shared.backup.load(Relaxed)),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(role, _)| DaemonInfo {
            role,
            settings: r.settings.clone(),
            sender: r.sender,
        })
        .collect()
    }

    /// Starts `role` with `settings`. The other role, if it runs, must use the same settings
    /// (the two share one socket).
    ///
    /// # Errors
    /// [`SyncError`]: the role runs already, other settings, bad settings, a socket error.
    pub fn start(&mut self, role: Role, settings: SyncSettings) -> Result<(), SyncError> {
        if self.links.is_empty() {
            return Err(SyncError::Unavailable);
        }
        settings.check()?;
        if let Some(r) = &self.running {
            let on = match role {
                Role::Master => &r.shared.master,
                Role::Backup => &r.shared.backup,
            };
            if on.load(Relaxed) {
                return Err(SyncError::AlreadyRunning(role));
            }
            if r.settings != settings {
                let running = if r.shared.master.load(Relaxed) {
                    Role::Master
                } else {
                    Role::Backup
                };
                return Err(SyncError::OtherSettings {
                    running,
                    settings: r.settings.describe(),
                });
            }
            self.set_role(role, true);
            return Ok(());
        }
        let socket = open_socket(&settings)?;
        let sender = sender_id();
        let shared = Arc::new(Shared {
            master: AtomicBool::new(false),
            backup: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let peers = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let daemon = Daemon {
            socket,
            settings: settings.clone(),
            sender,
            seq: 0,
            links: self.links.clone(),
            owner: self.owner.clone(),
            cell: self.cell.clone(),
            stats: self.stats.clone(),
            shared: shared.clone(),
            peers: peers.clone(),
            last_bulk_request: None,
            view: None,
            want_bulk: false,
            sweeps: None,
            out: vec![0; usize::from(settings.maxlen)],
            inbuf: vec![0; 65_536],
        };
        let thread = std::thread::Builder::new()
            .name("rvs-sync".into())
            .spawn(move || daemon.run())
            .map_err(|source| SyncError::Socket {
                interface: settings.interface.clone(),
                what: "starting the thread",
                source,
            })?;
        self.running = Some(Running {
            settings,
            sender,
            shared,
            thread: Some(thread),
            peers,
        });
        self.set_role(role, true);
        Ok(())
    }

    /// Stops `role`; the thread ends with the last role.
    ///
    /// # Errors
    /// [`SyncError::NotRunning`].
    pub fn stop(&mut self, role: Role) -> Result<(), SyncError> {
        let running = self.daemons().iter().any(|d| d.role == role);
        if !running {
            return Err(SyncError::NotRunning(role));
        }
        self.set_role(role, false);
        if self.daemons().is_empty() {
            if let Some(mut r) = self.running.take() {
                r.shared.stop.store(true, Relaxed);
                if let Some(t) = r.thread.take() {
                    let _ = t.join();
                }
            }
        }
        Ok(())
    }

    /// Stops every role (rvsd stopping).
    pub fn stop_all(&mut self) {
        for role in [Role::Master, Role::Backup] {
            let _ = self.stop(role);
        }
    }

    fn set_role(&mut self, role: Role, on: bool) {
        let Some(r) = &self.running else {
            return;
        };
        match role {
            Role::Master => {
                r.shared.master.store(on, Relaxed);
                for l in &self.links {
                    l.set_export(on, r.settings.refresh_ms);
                }
            }
            Role::Backup => r.shared.backup.store(on, Relaxed),
        }
        info!(%role, on, settings = %r.settings.describe(), "sync daemon");
    }
}

impl Drop for SyncPlane {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The UDP socket on `settings.interface`: bound to the sync port, to the interface, and to
/// the group when multicast.
fn open_socket(s: &SyncSettings) -> Result<UdpSocket, SyncError> {
    use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
    let err = |what: &'static str| {
        let interface = s.interface.clone();
        move |source| SyncError::Socket {
            interface,
            what,
            source,
        }
    };
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("creating the socket"))?;
    sock.set_reuse_address(true).map_err(err("SO_REUSEADDR"))?;
    sock.bind_device(Some(s.interface.as_bytes()))
        .map_err(err("binding to the interface (SO_BINDTODEVICE)"))?;
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, s.port);
    sock.bind(&SockAddr::from(any))
        .map_err(err("binding the port"))?;
    if s.peers.is_empty() {
        let index = interface_index(&s.interface).map_err(err("finding the interface"))?;
        sock.join_multicast_v4_n(&s.group, &InterfaceIndexOrAddress::Index(index))
            .map_err(err("joining the group"))?;
        sock.set_multicast_loop_v4(false)
            .map_err(err("IP_MULTICAST_LOOP"))?;
        sock.set_multicast_ttl_v4(u32::from(s.ttl))
            .map_err(err("IP_MULTICAST_TTL"))?;
    }
    sock.set_read_timeout(Some(TICK))
        .map_err(err("SO_RCVTIMEO"))?;
    Ok(sock.into())
}

/// The kernel's index of interface `name`.
fn interface_index(name: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unreadable ifindex"))
}

/// A sender id for a daemon that starts: random, so that a restarted director is a new
/// sender to its peers (its sequence numbers start again) and never mistaken for another.
fn sender_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// A snapshot's view of its services, as the sync daemon sends it.
pub fn service_view(snap: &Snapshot) -> ServiceView {
    ServiceView {
        services: snap.services().len() as u32,
        digest: sched::view_digest(snap.services()),
    }
}

/// The daemon thread's state.
struct Daemon {
    socket: UdpSocket,
    settings: SyncSettings,
    sender: u32,
    seq: u32,
    links: Vec<Arc<SyncLink>>,
    owner: Arc<FlowOwner>,
    cell: Arc<SnapshotCell>,
    stats: Arc<SyncStats>,
    shared: Arc<Shared>,
    peers: Arc<std::sync::Mutex<HashMap<u32, PeerSeen>>>,
    last_bulk_request: Option<Instant>,
    /// This director's view, the snapshot it was computed from and when it was last sent.
    view: Option<(Arc<Snapshot>, ServiceView, Option<Instant>)>,
    /// A bulk sync to ask for as soon as the rate allows.
    want_bulk: bool,
    /// The sweeps a peer's bulk request started, one per worker: when every one is finished
    /// and the outbound rings are empty, a [`FLAG_BULK_END`] datagram says so.
    sweeps: Option<Vec<u32>>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

impl Daemon {
    fn run(mut self) {
        let mut was_backup = false;
        while !self.shared.stop.load(Relaxed) {
            let backup = self.shared.backup.load(Relaxed);
            if backup && !was_backup {
                self.want_bulk = true;
            }
            was_backup = backup;
            self.receive();
            if self.shared.master.load(Relaxed) {
                self.send_records();
                self.end_bulk();
                self.send_view();
            }
            if backup && self.want_bulk {
                self.ask_bulk();
            }
        }
    }

    /// Reads what arrived (waiting one tick for the first datagram).
    fn receive(&mut self) {
        let mut buf = std::mem::take(&mut self.inbuf);
        self.receive_into(&mut buf);
        self.inbuf = buf;
    }

    fn receive_into(&mut self, buf: &mut [u8]) {
        for _ in 0..RECV_BURST {
            let (n, from) = match self.socket.recv_from(buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "sync socket: receive failed");
                    std::thread::sleep(TICK);
                    return;
                }
            };
            self.datagram(&buf[..n], from);
        }
    }

    /// One received datagram from `from`.
    fn datagram(&mut self, buf: &[u8], from: SocketAddr) {
        let d = match Datagram::parse(buf, self.settings.sync_id) {
            Ok(d) => d,
            Err(drop) => {
                self.stats.datagram_drops[drop.index()].fetch_add(1, Relaxed);
                return;
            }
        };
        let h = d.header();
        if h.sender == self.sender {
            self.stats.ignored.fetch_add(1, Relaxed);
            return;
        }
        self.stats.datagrams_received.fetch_add(1, Relaxed);
        if h.flags & FLAG_BULK_REQUEST != 0 {
            if self.shared.master.load(Relaxed) {
                self.stats.bulk_requests_received.fetch_add(1, Relaxed);
                info!(peer = %from, "sync: a peer asks for a bulk sync");
                self.sweeps = Some(self.links.iter().map(|l| l.request_sweep()).collect());
            } else {
                self.stats.ignored.fetch_add(1, Relaxed);
            }
        }
        if !self.shared.backup.load(Relaxed) {
            return;
        }
        self.follow_sequence(h.sender, h.seq, from);
        if h.flags & FLAG_BULK_END != 0 {
            if let Some(p) = lock(&self.peers).get_mut(&h.sender) {
                p.bulk_ended = Some(Instant::now());
            }
            info!(peer = %from, "sync: a peer's bulk sync is complete");
        }
        let snap = self.cell.load();
        for r in d.records() {
            let r = match r {
                Ok(r) => r,
                Err(drop) => {
                    self.stats.record_drops[drop.index()].fetch_add(1, Relaxed);
                    continue;
                }
            };
            self.stats.records_received.fetch_add(1, Relaxed);
            if let SyncRecord::View(v) = r {
                self.peer_view(h.sender, v, from, &snap);
                continue;
            }
            let w = usize::from(self.owner.owner(&snap, &r));
            match self.links.get(w).map(|l| l.post_in(r)) {
                Some(Ok(())) => self.stats.records_posted.fetch_add(1, Relaxed),
                _ => self.stats.records_dropped.fetch_add(1, Relaxed),
            };
        }
    }

    /// Counts the datagrams a sender's sequence numbers skipped; a new sender, or one that
    /// lost datagrams, gets a bulk request.
    fn follow_sequence(&mut self, sender: u32, seq: u32, from: SocketAddr) {
        let now = Instant::now();
        let mut peers = lock(&self.peers);
        match peers.get_mut(&sender) {
            None => {
                info!(peer = %from, sender = %Ipv4Addr::from(sender), "sync: a new sender");
                peers.insert(
                    sender,
                    PeerSeen {
                        addr: from,
                        seq,
                        at: now,
                        datagrams: 1,
                        bulk_ended: None,
                        view: None,
                    },
                );
                self.want_bulk = true;
            }
            Some(p) => {
                let gap = seq.wrapping_sub(p.seq.wrapping_add(1));
                if gap != 0 && gap < u32::MAX / 2 {
                    self.stats.datagrams_lost.fetch_add(u64::from(gap), Relaxed);
                    self.want_bulk = true;
                }
                // Older or repeated (a restarted sender starts again): followed from here.
                *p = PeerSeen {
                    addr: from,
                    seq,
                    at: now,
                    datagrams: p.datagrams + 1,
                    bulk_ended: p.bulk_ended,
                    view: p.view,
                };
            }
        }
    }

    /// Keeps a peer's view of its services; counts and logs one that differs from this
    /// director's.
    fn peer_view(&mut self, sender: u32, v: ServiceView, from: SocketAddr, snap: &Snapshot) {
        let ours = service_view(snap);
        let before = lock(&self.peers)
            .get_mut(&sender)
            .and_then(|p| p.view.replace(v));
        if v == ours {
            if before.is_some_and(|b| b != ours) {
                info!(peer = %from, "sync: the peer's services agree with this director's again");
            }
            return;
        }
        self.stats.view_mismatches.fetch_add(1, Relaxed);
        if before != Some(v) {
            warn!(
                peer = %from,
                peer_services = v.services,
                peer_digest = %format!("{:016x}", v.digest),
                services = ours.services,
                digest = %format!("{:016x}", ours.digest),
                "sync: the peer's services differ from this director's: new flows may go to \
                 other dests there (compare the configurations)"
            );
        }
    }

    /// Sends this director's view of its services if it changed or a second passed.
    fn send_view(&mut self) {
        let snap = self.cell.load_full();
        let now = Instant::now();
        let view = match &self.view {
            Some((s, v, at)) if Arc::ptr_eq(s, &snap) => {
                if at.is_some_and(|at| now.duration_since(at) < VIEW_INTERVAL) {
                    return;
                }
                *v
            }
            _ => service_view(&snap),
        };
        self.view = Some((snap, view, Some(now)));
        let header = self.header(0);
        let Ok(mut w) = DatagramWriter::new(&mut self.out, &header) else {
            return;
        };
        if w.push(&SyncRecord::View(view)).is_ok() {
            let len = w.datagram().len();
            self.transmit(len);
        }
    }

    /// Sends a bulk request, if the last one is a second old.
    fn ask_bulk(&mut self) {
        let now = Instant::now();
        if self
            .last_bulk_request
            .is_some_and(|t| now.duration_since(t) < BULK_INTERVAL)
        {
            return;
        }
        self.last_bulk_request = Some(now);
        self.want_bulk = false;
        if self.send_empty(FLAG_BULK_REQUEST) {
            self.stats.bulk_requests_sent.fetch_add(1, Relaxed);
        }
    }

    /// Once the sweeps of a bulk request are done and their records sent, says so.
    fn end_bulk(&mut self) {
        let Some(sweeps) = &self.sweeps else {
            return;
        };
        let done = self
            .links
            .iter()
            .zip(sweeps)
            .all(|(l, &n)| l.sweep_finished(n) && l.outbound_len() == 0);
        if !done {
            return;
        }
        self.sweeps = None;
        if self.send_empty(FLAG_BULK_END) {
            self.stats.bulk_ends_sent.fetch_add(1, Relaxed);
        }
    }

    /// Sends a datagram with no records and `flags`; false if the buffer cannot hold one.
    fn send_empty(&mut self, flags: u16) -> bool {
        let header = self.header(flags);
        let Ok(w) = DatagramWriter::new(&mut self.out, &header) else {
            return false;
        };
        let len = w.datagram().len();
        self.transmit(len);
        true
    }

    /// The header of the next datagram ([`Daemon::transmit`] moves the sequence on).
    fn header(&self, flags: u16) -> SyncHeader {
        SyncHeader {
            sync_id: self.settings.sync_id,
            flags,
            sender: self.sender,
            seq: self.seq,
        }
    }

    /// Drains every worker's outbound ring into datagrams and sends them.
    fn send_records(&mut self) {
        let links = self.links.clone();
        let mut pending = None;
        loop {
            let header = self.header(0);
            let mut w = match DatagramWriter::new(&mut self.out, &header) {
                Ok(w) => w,
                Err(_) => return,
            };
            let mut full = false;
            'fill: for l in &links {
                loop {
                    let r = match pending.take() {
                        Some(r) => r,
                        None => match l.pop_out() {
                            Some(r) => r,
                            None => break,
                        },
                    };
                    match w.push(&r) {
                        Ok(()) => {}
                        Err(WriteError::Full) => {
                            pending = Some(r);
                            full = true;
                            break 'fill;
                        }
                        Err(WriteError::Invalid(drop)) => {
                            self.stats.record_drops[drop.index()].fetch_add(1, Relaxed);
                        }
                        Err(WriteError::BufferTooSmall) => return,
                    }
                }
            }
            let count = u64::from(w.count());
            let len = w.datagram().len();
            if count == 0 {
                return;
            }
            self.stats.records_sent.fetch_add(count, Relaxed);
            self.transmit(len);
            if !full {
                return;
            }
        }
    }

    /// Sends the first `len` bytes of the outbound buffer (a datagram with the current
    /// sequence number) to the group or every peer, then moves the sequence on.
    fn transmit(&mut self, len: usize) {
        self.seq = self.seq.wrapping_add(1);
        let targets: Vec<SocketAddr> = if self.settings.peers.is_empty() {
            vec![SocketAddr::V4(SocketAddrV4::new(
                self.settings.group,
                self.settings.port,
            ))]
        } else {
            self.settings
                .peers
                .iter()
                .map(|p| SocketAddr::V4(*p))
                .collect()
        };
        for t in targets {
            match self.socket.send_to(&self.out[..len], t) {
                Ok(_) => self.stats.datagrams_sent.fetch_add(1, Relaxed),
                Err(e) => {
                    if self.stats.send_errors.fetch_add(1, Relaxed) == 0 {
                        warn!(error = %e, to = %t, "sync: send failed (counted from now on)");
                    }
                    0
                }
            };
        }
    }
}

impl From<proto::DaemonRole> for Role {
    fn from(r: proto::DaemonRole) -> Role {
        match r {
            proto::DaemonRole::Master => Role::Master,
            proto::DaemonRole::Backup => Role::Backup,
        }
    }
}

impl From<Role> for proto::DaemonRole {
    fn from(r: Role) -> proto::DaemonRole {
        match r {
            Role::Master => proto::DaemonRole::Master,
            Role::Backup => proto::DaemonRole::Backup,
        }
    }
}

/// What `--start-daemon` asked for, over `defaults` (the file's `[sync]`, then the built-in
/// defaults).
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// `--mcast-interface`.
    pub interface: Option<String>,
    /// `--syncid`.
    pub sync_id: Option<u8>,
    /// `--sync-maxlen`.
    pub maxlen: Option<u16>,
    /// `--mcast-group`.
    pub group: Option<Ipv4Addr>,
    /// `--mcast-port`.
    pub port: Option<u16>,
    /// `--mcast-ttl`.
    pub ttl: Option<u8>,
    /// `--sync-peer`.
    pub peers: Vec<SocketAddrV4>,
    /// `--sync-refresh`.
    pub refresh_secs: Option<u32>,
}

impl StartOptions {
    /// The settings: each option given, else `defaults`'.
    pub fn over(self, defaults: &SyncSettings) -> SyncSettings {
        SyncSettings {
            interface: self.interface.unwrap_or_else(|| defaults.interface.clone()),
            sync_id: self.sync_id.unwrap_or(defaults.sync_id),
            group: self.group.unwrap_or(defaults.group),
            port: self.port.unwrap_or(defaults.port),
            peers: if self.peers.is_empty() {
                defaults.peers.clone()
            } else {
                self.peers
            },
            maxlen: self.maxlen.unwrap_or(defaults.maxlen),
            ttl: self.ttl.unwrap_or(defaults.ttl),
            refresh_ms: self
                .refresh_secs
                .map_or(defaults.refresh_ms, |s| u64::from(s) * 1000),
        }
    }
}

impl SyncPlane {
    /// `-L --daemon`'s answer: the roles, the senders heard, the backlog, and every counter
    /// (the daemon's, and the workers' sync counters summed over `workers`).
    pub fn response(&self, workers: &[Arc<dataplane::stats::WorkerStats>]) -> proto::Response {
        let daemons = self
            .daemons()
            .into_iter()
            .map(|d| proto::DaemonView {
                role: d.role.into(),
                interface: d.settings.interface.clone(),
                sync_id: d.settings.sync_id,
                group: d.settings.group,
                port: d.settings.port,
                peers: d.settings.peers.clone(),
                maxlen: d.settings.maxlen,
                ttl: d.settings.ttl,
                refresh_secs: (d.settings.refresh_ms / 1000) as u32,
                sender: d.sender,
            })
            .collect();
        let now = Instant::now();
        let ours = service_view(&self.cell.load());
        let peers = self
            .peers()
            .into_iter()
            .map(|(sender, p)| proto::SyncPeerView {
                sender,
                addr: p.addr.to_string(),
                seq: p.seq,
                datagrams: p.datagrams,
                last_heard_ms: now.duration_since(p.at).as_millis() as u64,
                bulk_complete: p.bulk_ended.is_some(),
                view_services: p.view.map(|v| v.services),
                view_digest: p.view.map(|v| format!("{:016x}", v.digest)),
                view_agrees: p.view.map(|v| v == ours),
            })
            .collect();
        proto::Response::Daemons {
            daemons,
            peers,
            backlog: self.backlog(),
            counters: self.counters(workers),
        }
    }

    /// Every counter by metric name: the daemon's, its drops by reason (`name{reason}`),
    /// and the workers' sync counters summed.
    pub fn counters(&self, workers: &[Arc<dataplane::stats::WorkerStats>]) -> Vec<(String, u64)> {
        use dataplane::counters::Counter;
        let mut out: Vec<(String, u64)> = self
            .stats
            .values()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        for (name, drops) in [
            (
                "rvs_sync_datagrams_dropped_total",
                &self.stats.datagram_drops,
            ),
            ("rvs_sync_records_refused_total", &self.stats.record_drops),
        ] {
            for d in SyncDrop::ALL {
                let n = drops[d.index()].load(Relaxed);
                if n > 0 {
                    out.push((format!("{name}{{{}}}", d.as_str()), n));
                }
            }
        }
        for c in Counter::ALL
            .iter()
            .filter(|c| c.as_str().starts_with("sync_"))
        {
            let n = workers.iter().map(|w| w.worker.get(*c)).sum();
            out.push((c.metric().to_string(), n));
        }
        out
    }
}
