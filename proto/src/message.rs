//! The messages between `rvsadm` and `rvsd`: a request in its [`Envelope`], and the
//! [`Response`] to it. The operations follow ipvsadm's commands; unknown operations and fields
//! are errors, and every change is all-or-nothing: a refused request changes nothing.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

/// The protocol version this build speaks. Version 2 pages `-L -c` (a cursor in
/// [`Request::Connections`], the next one in [`Response::Connections`]).
pub const VERSION: u32 = 2;

/// Most sessions in one page of `-L -c` ([`Response::Connections`]): a page of the longest
/// sessions there can be stays under half of [`crate::MAX_FRAME`].
pub const CONNECTIONS_PAGE: usize = 1024;

/// A service as named on the command line (`-t 192.0.2.1:80`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct SvcKey {
    /// `tcp`, `udp` or `icmp`.
    pub proto: ProtoName,
    /// The VIP.
    pub vip: IpAddr,
    /// The port (0 for ICMP).
    pub port: u16,
}

/// The protocols a service can have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ProtoName {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// ICMP echo.
    Icmp,
}

/// A dest as given to `-a`/`-e`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DestSpec {
    /// RIP.
    pub addr: IpAddr,
    /// Port (the service port when the command line gives none).
    pub port: u16,
    /// Weight 0..=65535.
    pub weight: u32,
    /// `nat`, `dr`, `tun` or `fullnat` (ipvsadm's `-m`, `-g`, `-i`, `--fullnat`).
    pub mode: String,
}

/// One operation. The names follow ipvsadm's commands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// `-A`: add a service.
    AddService {
        /// The service.
        service: SvcKey,
        /// Scheduler name (`rr`, `wrr`, ...).
        scheduler: String,
        /// `-p`: persistence timeout in seconds.
        persistence: Option<u32>,
        /// `-j enable`: SYN proxy.
        #[serde(default)]
        synproxy: bool,
        /// `--proxy-protocol v1|v2`: the PROXY protocol header sent to the dests (None: off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proxy_protocol: Option<String>,
        /// `--toa`: the client's address in a TCP option (254) toward the dests.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        toa: bool,
    },
    /// `-E`: change a service's scheduler, persistence or SYN proxy.
    EditService {
        /// The service.
        service: SvcKey,
        /// Scheduler name.
        scheduler: String,
        /// `-p`: persistence timeout in seconds.
        persistence: Option<u32>,
        /// `-j enable`: SYN proxy.
        #[serde(default)]
        synproxy: bool,
        /// `--proxy-protocol v1|v2`: the PROXY protocol header sent to the dests (None: off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proxy_protocol: Option<String>,
        /// `--toa`: the client's address in a TCP option (254) toward the dests.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        toa: bool,
    },
    /// `-D`: delete a service (its sessions run out on their own).
    DeleteService {
        /// The service.
        service: SvcKey,
    },
    /// `-a`: add a dest to a service.
    AddDest {
        /// The service.
        service: SvcKey,
        /// The dest.
        dest: DestSpec,
    },
    /// `-e`: change a dest's weight or mode.
    EditDest {
        /// The service.
        service: SvcKey,
        /// The dest (found by address and port).
        dest: DestSpec,
    },
    /// `-d`: remove a dest (its sessions run out on their own).
    DeleteDest {
        /// The service.
        service: SvcKey,
        /// RIP.
        addr: IpAddr,
        /// Port.
        port: u16,
    },
    /// `-C`: remove every service.
    Clear,
    /// `-Z`: zero the counters of one service or of all.
    Zero {
        /// The service, or None for all.
        service: Option<SvcKey>,
    },
    /// `--set TCP TCPFIN UDP` in seconds; 0 keeps a value.
    SetTimeouts {
        /// ESTABLISHED.
        tcp: u32,
        /// FIN_WAIT.
        tcpfin: u32,
        /// UDP.
        udp: u32,
    },
    /// Several changes applied all together or not at all (`-R`).
    Batch {
        /// The changes, in order.
        requests: Vec<Request>,
    },
    /// `--reload FILE`: apply the services, addresses and timeouts of a configuration file.
    Reload {
        /// The file, as rvsd sees it.
        path: String,
    },
    /// `--log-level FILTER`: rvsd's log filter from now on (`RVS_LOG`'s syntax: `debug`,
    /// `info,control=debug`, ...), until the next one or a restart.
    LogLevel {
        /// The filter.
        filter: String,
    },
    /// `-L`: services, dests, counters and rates (one service, or all).
    List {
        /// The service, or None for all.
        service: Option<SvcKey>,
    },
    /// `-L -c`: one page of the sessions, at most [`CONNECTIONS_PAGE`]. A listing asks from
    /// no cursor, then from each answer's `next` until it is none.
    Connections {
        /// Where the page starts; none for the first page.
        from: Option<ConnCursor>,
    },
    /// `-L --timeout`.
    Timeouts,
    /// Per-worker counters.
    Workers,
    /// Each DPDK data port's link and counters (`rvsadm --ports`).
    Ports,
    /// FullNAT LIPs and each worker's free local ports (`rvsadm --lips`).
    Lips,
    /// Health-checked dests and their state (`rvsadm --health`).
    Health,
    /// `--start-daemon master|backup`: start session sync in that role. Unset settings take
    /// the configuration file's `[sync]` values, then the defaults.
    StartDaemon {
        /// The role.
        role: DaemonRole,
        /// `--mcast-interface`: the kernel interface the datagrams use.
        #[serde(default)]
        interface: Option<String>,
        /// `--syncid`.
        #[serde(default)]
        sync_id: Option<u8>,
        /// `--sync-maxlen`: largest datagram (UDP payload) in bytes.
        #[serde(default)]
        maxlen: Option<u16>,
        /// `--mcast-group`.
        #[serde(default)]
        group: Option<Ipv4Addr>,
        /// `--mcast-port`.
        #[serde(default)]
        port: Option<u16>,
        /// `--mcast-ttl`.
        #[serde(default)]
        ttl: Option<u8>,
        /// `--sync-peer` (repeatable): unicast peers instead of the group.
        #[serde(default)]
        peers: Vec<SocketAddrV4>,
        /// `--sync-refresh`: seconds between refresh sweeps of the whole table (0: none).
        #[serde(default)]
        refresh_secs: Option<u32>,
    },
    /// `--stop-daemon master|backup`.
    StopDaemon {
        /// The role.
        role: DaemonRole,
    },
    /// `-L --daemon`: the sync daemons, their peers and counters.
    Daemons,
    /// Managed addresses (`[ha] managed_addresses`) and whether each is owned
    /// (`rvsadm --addresses`). A newer operation: an older rvsd answers it `bad-request`.
    Addresses,
    /// `rvsadm --cluster`: what this director announces, its phase, its sync peers.
    Cluster,
    /// `rvsadm --drain`: withdraw every announcement, wait until the sessions are synced to
    /// the peers (or finished), then rvsd exits. Answered at once; `--cluster` follows it.
    Drain {
        /// Seconds to wait for the sessions at most before exiting anyway.
        #[serde(default)]
        timeout_secs: Option<u32>,
    },
}

/// A sync daemon's role (ipvsadm's `state`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DaemonRole {
    /// Sends this director's sessions.
    Master,
    /// Installs the peers' sessions.
    Backup,
}

impl DaemonRole {
    /// ipvsadm's word.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonRole::Master => "master",
            DaemonRole::Backup => "backup",
        }
    }
}

/// A running sync daemon role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DaemonView {
    /// The role.
    pub role: DaemonRole,
    /// The kernel interface.
    pub interface: String,
    /// The sync id.
    pub sync_id: u8,
    /// The multicast group (unused with peers).
    pub group: Ipv4Addr,
    /// The UDP port.
    pub port: u16,
    /// Unicast peers (empty: multicast).
    pub peers: Vec<SocketAddrV4>,
    /// Largest datagram.
    pub maxlen: u16,
    /// Multicast TTL.
    pub ttl: u8,
    /// Seconds between refresh sweeps (0: none).
    pub refresh_secs: u32,
    /// This director's sender id.
    pub sender: u32,
}

/// A sender a backup hears.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SyncPeerView {
    /// Its sender id.
    pub sender: u32,
    /// Where its datagrams come from.
    pub addr: String,
    /// Its last sequence number.
    pub seq: u32,
    /// Datagrams received from it.
    pub datagrams: u64,
    /// Milliseconds since its last datagram.
    pub last_heard_ms: u64,
    /// It said its bulk sync (answering this director's request) is complete.
    #[serde(default)]
    pub bulk_complete: bool,
    /// The number of services in the last view of its services it sent (None: none heard).
    #[serde(default)]
    pub view_services: Option<u32>,
    /// The digest of that view, 16 hex digits.
    #[serde(default)]
    pub view_digest: Option<String>,
    /// Whether that view is this director's (the same services and dests).
    #[serde(default)]
    pub view_agrees: Option<bool>,
}

/// One host route the announcer keeps in the kernel table a routing daemon exports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteView {
    /// The address (announced as a /32).
    pub addr: Ipv4Addr,
    /// The route's metric (BIRD's `krt_metric`, the MED the lab's filter sets).
    pub metric: u32,
    /// `vip`, `lip` (this director's) or `peer-lip` (a peer's, announced as a backup).
    pub role: String,
}

impl Request {
    /// True for requests that change rvsd's state (and may be part of a [`Request::Batch`]);
    /// false for listings, batches themselves and reloads.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Request::AddService { .. }
                | Request::EditService { .. }
                | Request::DeleteService { .. }
                | Request::AddDest { .. }
                | Request::EditDest { .. }
                | Request::DeleteDest { .. }
                | Request::Clear
                | Request::Zero { .. }
                | Request::SetTimeouts { .. }
        )
    }
}

/// What a request is wrapped in on the wire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Must be [`VERSION`].
    pub version: u32,
    /// The request.
    pub request: Request,
}

/// Error classes, so that rvsadm can exit like ipvsadm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The message could not be decoded (bad framing, JSON, fields, version).
    BadRequest,
    /// The change is invalid (ipvsadm-style message: "Service not defined", ...).
    Refused,
    /// Something failed in the daemon.
    Internal,
    /// rvsd is at one of its limits (clients served at once, connection or request rate) or
    /// closed an idle connection to serve another; nothing was done and the same request can
    /// be sent again.
    Busy,
    /// The client's uid may not use the control socket (only root and rvsd's own uid may).
    Denied,
}

/// Counters of a service or dest (since start or the last `-Z`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Connections (sessions) scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client (only what passes the director: NAT, FullNAT).
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

/// Rates from the estimator (per second, smoothed like IPVS's).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// A dest in a listing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DestView {
    /// RIP.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// `Masq`, `Route`, `Tunnel` or `FullNat` (ipvsadm's Forward column).
    pub forward: String,
    /// Weight.
    pub weight: u32,
    /// Established TCP sessions (ipvsadm's ActiveConn).
    pub active: u64,
    /// Other sessions (InActConn).
    pub inactive: u64,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// A service in a listing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceView {
    /// The service.
    pub key: SvcKey,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout in seconds.
    pub persistence: Option<u32>,
    /// SYN proxy on.
    #[serde(default)]
    pub synproxy: bool,
    /// The PROXY protocol version sent to the dests (`v1`, `v2`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// TOA on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub toa: bool,
    /// Counters (sum of its dests').
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Dests, in the order they were added.
    pub dests: Vec<DestView>,
}

/// A session in `-L -c`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnView {
    /// Protocol.
    pub proto: ProtoName,
    /// Seconds until it expires.
    pub expire_secs: u64,
    /// State (`ESTABLISHED`, `UDP`, ...).
    pub state: String,
    /// Client address.
    pub source: IpAddr,
    /// Client port.
    pub sport: u16,
    /// VIP.
    pub vip: IpAddr,
    /// VIP port.
    pub vport: u16,
    /// RIP.
    pub dest: IpAddr,
    /// RS port.
    pub dport: u16,
    /// FullNAT LIP and port.
    pub local: Option<(IpAddr, u16)>,
    /// Worker owning it.
    pub worker: u16,
}

/// Where a page of `-L -c` starts: a worker and a slot of its session table. Workers are
/// listed in order, each table in slot order; a session keeps its slot for its whole life, so
/// each session that lives throughout a listing is listed exactly once, and one that starts or
/// ends during it may or may not be (as with `/proc/net/ip_vs_conn`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(deny_unknown_fields)]
pub struct ConnCursor {
    /// Worker index.
    pub worker: u16,
    /// Slot of its session table.
    pub slot: u32,
}

/// Per-worker counters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkerView {
    /// Worker index.
    pub id: u16,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Packets handed to other workers.
    pub redirected_out: u64,
    /// Packets handed over by other workers.
    pub redirected_in: u64,
    /// Drops by reason (only reasons with drops).
    pub drops: Vec<(String, u64)>,
    /// Share of recent loops that found work, 0..=1000 (per mille).
    pub busy_permille: u32,
    /// Every other event counter of the worker, by name (only counters above zero).
    #[serde(default)]
    pub counters: Vec<(String, u64)>,
}

/// One DPDK data port: its link and the driver's counters (`rte_eth_stats`), as rvsd last
/// read them (about once a second).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortView {
    /// The port's name in the configuration (`[[port]] name`).
    pub name: String,
    /// Link up.
    pub link_up: bool,
    /// Link speed in Mbit/s (0 while down or unknown).
    pub speed_mbps: u32,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped for want of room in its RX queues (`imissed`).
    pub rx_missed: u64,
    /// Receive errors (`ierrors`).
    pub rx_errors: u64,
    /// Transmit errors (`oerrors`).
    pub tx_errors: u64,
    /// Receive failures for want of an mbuf (`rx_nombuf`).
    pub rx_nombuf: u64,
}

/// One worker's share of the LIP ports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LipWorkerView {
    /// Worker index.
    pub id: u16,
    /// (pool, LIP, port) not in use: free or in quarantine.
    pub available: u64,
    /// All of its (pool, LIP, port).
    pub capacity: u64,
}

/// One LIP's pressure in one worker: its (pool, port) pairs in use, in quarantine and free.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LipUsageView {
    /// Worker index.
    pub worker: u16,
    /// The LIP (IPv4 or IPv6).
    pub lip: IpAddr,
    /// Pairs held by sessions.
    pub in_use: u64,
    /// Pairs released less than the quarantine ago.
    pub quarantined: u64,
    /// Pairs free now.
    pub free: u64,
}

/// A health-checked dest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthView {
    /// The service.
    pub service: SvcKey,
    /// RIP.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// The check, e.g. `http GET / = 200 every 2s timeout 1s rise 2 fall 3`.
    pub check: String,
    /// Up (its configured weight is in use) or down (weight 0).
    pub up: bool,
    /// The configured weight.
    pub weight: u32,
}

/// A managed address: a VIP or LIP served only while keepalived has it on this director.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddressView {
    /// The address.
    pub addr: Ipv4Addr,
    /// `vip`, `lip`, or `none` (a VIP whose services are all deleted for now).
    pub role: String,
    /// Owned (answered, served, announced) or standby.
    pub owned: bool,
    /// While owned: the interface it is announced on (its gratuitous ARPs).
    pub interface: Option<String>,
}

/// `--cluster`: this director in its cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterView {
    /// `starting` (waiting for the peers' bulk sync), `serving`, `draining` or `drained`.
    pub phase: String,
    /// Milliseconds in this phase.
    pub phase_ms: u64,
    /// The kernel routing table and the interface of the announced routes.
    pub table: u32,
    /// The interface the routes point at.
    pub interface: String,
    /// The routes in the table now.
    pub routes: Vec<RouteView>,
    /// What the drain waits for, or how it ended (empty before a drain).
    pub drain: String,
    /// Route changes the kernel refused (each is retried).
    pub route_errors: u64,
    /// The sync daemons (as `-L --daemon`).
    pub daemons: Vec<DaemonView>,
    /// The peers heard.
    pub peers: Vec<SyncPeerView>,
    /// Records queued for the peers and not sent yet.
    pub backlog: u64,
    /// The number of this director's services (its view, as the peers get it).
    #[serde(default)]
    pub view_services: u32,
    /// The digest of its services and dests, 16 hex digits (peers compare theirs).
    #[serde(default)]
    pub view_digest: String,
}

/// The answer to one request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Response {
    /// The change was applied.
    Done,
    /// The change was applied, with something the operator should know: a change to a
    /// service the configuration file manages (a reload puts the file's version back), or
    /// restored rules that left such services as the file has them.
    Noted {
        /// The note, for a human.
        note: String,
    },
    /// The request was refused; nothing changed.
    Error {
        /// Class.
        kind: ErrorKind,
        /// What is wrong, for a human.
        message: String,
    },
    /// `-L`.
    Services {
        /// The services.
        services: Vec<ServiceView>,
    },
    /// `-L -c`: one page of the sessions.
    Connections {
        /// The sessions, at most [`CONNECTIONS_PAGE`].
        conns: Vec<ConnView>,
        /// Where the next page starts; none after the last page.
        next: Option<ConnCursor>,
        /// Whether rvsd held FullNAT sessions (some worker had LIP ports in use) when it made
        /// this page: a listing knows from its first page whether sessions have a local
        /// address to show.
        local: bool,
    },
    /// `-L --timeout` (seconds).
    Timeouts {
        /// ESTABLISHED.
        tcp: u64,
        /// FIN_WAIT.
        tcpfin: u64,
        /// UDP.
        udp: u64,
    },
    /// Per-worker counters.
    Workers {
        /// One per worker.
        workers: Vec<WorkerView>,
    },
    /// `--lips`.
    Lips {
        /// The LIPs.
        lips: Vec<Ipv4Addr>,
        /// The IPv6 LIPs.
        #[serde(default)]
        lips6: Vec<Ipv6Addr>,
        /// First local port.
        first_port: u16,
        /// Last local port.
        last_port: u16,
        /// Each worker's share.
        workers: Vec<LipWorkerView>,
        /// Port pools per LIP.
        #[serde(default)]
        pools: u16,
        /// Seconds a freed TCP (LIP, lport) stays out of use toward its dest.
        #[serde(default)]
        quarantine_secs: u64,
        /// Each LIP in each worker.
        #[serde(default)]
        usage: Vec<LipUsageView>,
    },
    /// `--health`.
    Health {
        /// The checked dests.
        dests: Vec<HealthView>,
    },
    /// `-L --daemon`.
    Daemons {
        /// The roles running.
        daemons: Vec<DaemonView>,
        /// The senders heard (backup).
        peers: Vec<SyncPeerView>,
        /// Records the workers queued and the daemon has not sent yet (master).
        backlog: u64,
        /// The daemon's counters and the workers' sync counters, by metric name, summed
        /// over workers; drops by reason as `name{reason}`.
        counters: Vec<(String, u64)>,
    },
    /// `--addresses`.
    Addresses {
        /// The managed addresses, in configuration order.
        addresses: Vec<AddressView>,
    },
    /// `--cluster`.
    Cluster {
        /// The view (boxed: the largest answer).
        cluster: Box<ClusterView>,
    },
    /// `--ports`.
    Ports {
        /// The data ports, in configuration order.
        ports: Vec<PortView>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SvcKey {
        SvcKey {
            proto: ProtoName::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 1).into(),
            port: 80,
        }
    }

    #[test]
    fn wire_form_is_readable() {
        let env = Envelope {
            version: VERSION,
            request: Request::DeleteDest {
                service: key(),
                addr: Ipv4Addr::new(10, 0, 0, 1).into(),
                port: 80,
            },
        };
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"version":2,"request":{"op":"delete-dest","service":{"proto":"tcp","vip":"192.0.2.1","port":80},"addr":"10.0.0.1","port":80}}"#
        );
    }
}
