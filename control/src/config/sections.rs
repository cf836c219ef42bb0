//! The configuration file's sections as serde reads them, and one function per section that
//! checks its values into what rvsd runs.
//!
//! Each `[[table]]` entry is read as a [`Spanned`] value, so an error about it names the line
//! of its header (`line 20: interface "wan0": ...`) from the one parse of the file.

use super::{ConfigFileError, DaemonConfig, NeighbourConfig, PortConfig, SyncConfig};
use crate::announce::AnnounceSettings;
use crate::health::http::{parse_digest, server_name};
use crate::health::{CheckKind, HealthCheck, HttpCheck, ScriptCheck, StatusSet, Tls};
use crate::sync::SyncSettings;
use conntrack::{Proto, SessionState, TcpState, Timeouts};
use dataplane::lip::PortReuse;
use dataplane::snapshot::{
    Cidr, Cidr6, DirectorConfig, InterfaceConfig, RouteConfig, RouteConfig6,
};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;

/// The scheduler of a service without `scheduler`: `wlc`, ipvsadm's default (and rvsadm's).
pub(super) const DEFAULT_SCHEDULER: SchedKind = SchedKind::Wlc;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    pub eal: FileEal,
    #[serde(default)]
    pub daemon: FileDaemon,
    #[serde(default, rename = "port")]
    pub ports: Vec<Spanned<FilePort>>,
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<Spanned<FileInterface>>,
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<FileRoute>>,
    #[serde(default)]
    pub fullnat: FileFullNat,
    #[serde(default)]
    pub timeouts: FileTimeouts,
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<FileService>>,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<Spanned<FileNeighbour>>,
    #[serde(default)]
    pub sync: FileSync,
    #[serde(default)]
    pub ha: FileHa,
    pub cluster: Option<FileCluster>,
}

/// `[cluster]`: this director in an ECMP cluster (see `crate::announce`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCluster {
    table: Option<u32>,
    interface: Option<String>,
    metric: Option<u32>,
    backup_metric: Option<u32>,
    #[serde(default)]
    peer_lips: Vec<String>,
    /// Seconds.
    hold: Option<f64>,
    /// Seconds.
    settle: Option<f64>,
    /// Seconds.
    drain_timeout: Option<f64>,
}

/// `[sync]`: session sync with the peer directors (ipvsadm's `--start-daemon` options).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSync {
    #[serde(default)]
    master: bool,
    #[serde(default)]
    backup: bool,
    interface: Option<String>,
    syncid: Option<u8>,
    group: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    peers: Vec<String>,
    maxlen: Option<u16>,
    ttl: Option<u8>,
    /// Seconds between refresh sweeps; 0: none.
    refresh: Option<u32>,
}

/// `[eal]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEal {
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[daemon]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDaemon {
    workers: Option<u16>,
    cores: Option<Vec<usize>>,
    table_capacity: Option<usize>,
    table6_capacity: Option<usize>,
    template_capacity: Option<usize>,
    fragment_capacity: Option<usize>,
    mbufs: Option<u32>,
    mbuf_cache: Option<u32>,
    rx_desc: Option<u16>,
    tx_desc: Option<u16>,
    slow_every: Option<u32>,
    redirect_depth: Option<usize>,
    idle_sleep_us: Option<u32>,
    socket: Option<String>,
    metrics: Option<String>,
    kernel_addresses: Option<bool>,
}

/// `[[port]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePort {
    name: String,
    device: String,
    rss: Option<bool>,
    mtu: Option<u16>,
    #[serde(default)]
    promiscuous: bool,
    mac: Option<String>,
    exception: Option<String>,
}

/// `[[interface]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileInterface {
    name: String,
    port: String,
    vlan: Option<u16>,
    addrs: Vec<String>,
    mtu: Option<u16>,
}

/// `[[route]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    dst: String,
    via: String,
}

/// `[fullnat]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFullNat {
    #[serde(default)]
    lips: Vec<String>,
    lport_range: Option<String>,
    /// Seconds a freed TCP (LIP, lport) stays out of use toward its dest; 0: none.
    lport_quarantine: Option<u64>,
    /// Port pools per LIP (dests spread over them by hash).
    lport_pools: Option<u16>,
}

/// `[ha]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHa {
    /// VIPs and LIPs served only while an exception TAP holds them (keepalived moves them).
    #[serde(default)]
    managed_addresses: Vec<String>,
}

/// `[timeouts]`, in seconds.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTimeouts {
    tcp: Option<u64>,
    tcpfin: Option<u64>,
    udp: Option<u64>,
    icmp: Option<u64>,
    syn_recv: Option<u64>,
    time_wait: Option<u64>,
    close: Option<u64>,
}

/// `[[service]]`, with its `[[service.dest]]` entries and its `[service.check]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileService {
    proto: String,
    vip: String,
    port: Option<u16>,
    scheduler: Option<String>,
    persistence: Option<u32>,
    #[serde(default)]
    synproxy: bool,
    proxy_protocol: Option<String>,
    #[serde(default)]
    toa: bool,
    #[serde(default, rename = "dest")]
    dests: Vec<FileDest>,
    check: Option<FileCheck>,
    /// keepalived's sorry_server: `addr` or `addr:port`.
    sorry_server: Option<String>,
    /// The sorry server's forwarding mode (default: the dests').
    sorry_mode: Option<String>,
}

/// `[[service.dest]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDest {
    addr: String,
    port: Option<u16>,
    weight: Option<u32>,
    mode: Option<String>,
}

/// `[service.check]`.
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
    /// A code, a string of codes and ranges (`"200-299,301"`), or an array of either.
    expect: Option<ExpectText>,
    virtualhost: Option<String>,
    digest: Option<String>,
    ca_file: Option<String>,
    script: Option<String>,
}

/// `expect` as written — a code (`200`), a string of codes and ranges (`"200-299,301"`) or an
/// array of either — as one comma-separated text, checked by [`StatusSet::parse`]. Read as a
/// string (TOML's values take any shape through it), so that the key list
/// ([`super::keys`]) sees a plain value.
struct ExpectText(String);

impl<'de> Deserialize<'de> for ExpectText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ExpectText, D::Error> {
        d.deserialize_str(ExpectVisitor { nested: false })
            .map(ExpectText)
    }
}

/// Reads a code, a string, or (not nested) an array of codes and strings.
struct ExpectVisitor {
    nested: bool,
}

impl<'de> serde::de::Visitor<'de> for ExpectVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "a status code (200), a string of codes and ranges (\"200-299,301\") or an array of them",
        )
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        if self.nested {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &self,
            ));
        }
        let mut items = Vec::new();
        while let Some(ExpectItem(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.join(","))
    }
}

/// One item of an `expect` array: a code or a string.
struct ExpectItem(String);

impl<'de> Deserialize<'de> for ExpectItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ExpectItem, D::Error> {
        d.deserialize_str(ExpectVisitor { nested: true })
            .map(ExpectItem)
    }
}

/// `[[neighbour]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNeighbour {
    ip: String,
    mac: String,
}

fn value(section: impl Into<String>, message: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Value {
        section: section.into(),
        message: message.into(),
    }
}

/// Checks each `[[table]]` entry with `check`, in order; an error is prefixed with the line of
/// the entry's header.
pub(super) fn each<T, U>(
    text: &str,
    entries: Vec<Spanned<T>>,
    mut check: impl FnMut(T) -> Result<U, ConfigFileError>,
) -> Result<Vec<U>, ConfigFileError> {
    entries
        .into_iter()
        .map(|entry| {
            let start = entry.span().start;
            check(entry.into_inner()).map_err(|e| locate(e, text, start))
        })
        .collect()
}

/// Prefixes a value or service error with the line of byte offset `at` in `text`.
fn locate(e: ConfigFileError, text: &str, at: usize) -> ConfigFileError {
    let line = text.get(..at).unwrap_or(text).matches('\n').count() + 1;
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

/// Parses `a.b.c.d`.
fn addr(section: &str, what: &str, s: &str) -> Result<Ipv4Addr, ConfigFileError> {
    Ipv4Addr::from_str(s.trim())
        .map_err(|_| value(section, format!("{what} '{s}' is not an IPv4 address")))
}

/// Parses an IPv4 or IPv6 address (a VIP or a RIP).
fn ip_addr(section: &str, what: &str, s: &str) -> Result<IpAddr, ConfigFileError> {
    IpAddr::from_str(s.trim()).map_err(|_| {
        value(
            section,
            format!("{what} '{s}' is not an IPv4 or IPv6 address"),
        )
    })
}

/// Splits a prefix such as `10.1.0.1/24` into its address text and its length (at most
/// `max`: 32 or 128).
fn prefix<'a>(section: &str, s: &'a str, max: u8) -> Result<(&'a str, u8), ConfigFileError> {
    let (a, l) = s.split_once('/').ok_or_else(|| {
        let e = if max == 32 { 24 } else { 64 };
        value(
            section,
            format!("'{s}' needs a prefix length, e.g. {s}/{e}"),
        )
    })?;
    let len = l
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| value(section, format!("'{s}': prefix length must be 0..={max}")))?;
    Ok((a, len))
}

/// Parses an IPv4 prefix, `10.1.0.1/24`.
fn cidr(section: &str, s: &str) -> Result<Cidr, ConfigFileError> {
    let (a, len) = prefix(section, s, 32)?;
    Ok(Cidr::new(addr(section, "address", a)?, len))
}

/// Parses an IPv6 prefix, `2001:db8::1/64`.
fn cidr6(section: &str, s: &str) -> Result<Cidr6, ConfigFileError> {
    let (a, len) = prefix(section, s, 128)?;
    let addr = Ipv6Addr::from_str(a.trim())
        .map_err(|_| value(section, format!("address '{a}' is not an IPv6 address")))?;
    Ok(Cidr6::new(addr, len))
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

/// Seconds, 1 s ..= 31 days, as milliseconds.
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

/// `[daemon]`: every setting, defaulted, and checked.
pub(super) fn daemon(f: FileDaemon) -> Result<DaemonConfig, ConfigFileError> {
    let d = DaemonConfig::default();
    let metrics: Option<SocketAddr> = match f.metrics.as_deref() {
        None => d.metrics,
        Some("off") => None,
        Some(a) => Some(a.parse().map_err(|_| {
            value(
                "daemon",
                format!("metrics '{a}' must be an address like 127.0.0.1:9410, or \"off\""),
            )
        })?),
    };
    let table_capacity = f.table_capacity.unwrap_or(d.table_capacity);
    let daemon = DaemonConfig {
        workers: f.workers.unwrap_or(d.workers),
        cores: f.cores,
        table_capacity,
        table6_capacity: f.table6_capacity.unwrap_or((table_capacity / 4).max(64)),
        template_capacity: f.template_capacity.unwrap_or((table_capacity / 16).max(64)),
        fragment_capacity: f.fragment_capacity.unwrap_or(d.fragment_capacity),
        mbufs: f.mbufs.unwrap_or(d.mbufs),
        mbuf_cache: f.mbuf_cache.unwrap_or(d.mbuf_cache),
        rx_desc: f.rx_desc.unwrap_or(d.rx_desc),
        tx_desc: f.tx_desc.unwrap_or(d.tx_desc),
        slow_every: f.slow_every.unwrap_or(d.slow_every),
        redirect_depth: f.redirect_depth.unwrap_or(d.redirect_depth),
        idle_sleep_us: f.idle_sleep_us.unwrap_or(d.idle_sleep_us),
        socket: f.socket.unwrap_or(d.socket),
        metrics,
        kernel_addresses: f.kernel_addresses.unwrap_or(d.kernel_addresses),
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
    if daemon.idle_sleep_us > super::MAX_IDLE_SLEEP_US {
        return Err(value(
            "daemon",
            format!(
                "idle_sleep_us {} is more than {} (10 ms): a sleeping worker delays packets by that much",
                daemon.idle_sleep_us,
                super::MAX_IDLE_SLEEP_US
            ),
        ));
    }
    if daemon.table6_capacity < 64 {
        return Err(value("daemon", "table6_capacity must be at least 64"));
    }
    if daemon.template_capacity < 64 {
        return Err(value("daemon", "template_capacity must be at least 64"));
    }
    if !(8..=1 << 20).contains(&daemon.fragment_capacity) {
        return Err(value(
            "daemon",
            "fragment_capacity must be between 8 and 1048576",
        ));
    }
    if daemon.mbufs < 1024 {
        return Err(value("daemon", "mbufs must be at least 1024"));
    }
    Ok(daemon)
}

/// One `[[port]]`, after the `earlier` ones.
pub(super) fn port(p: FilePort, earlier: &[PortConfig]) -> Result<PortConfig, ConfigFileError> {
    let section = format!("port \"{}\"", p.name);
    if earlier.iter().any(|q| q.name == p.name) {
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
    Ok(PortConfig {
        name: p.name,
        device: p.device,
        rss: p.rss,
        mtu: p.mtu,
        promiscuous: p.promiscuous,
        mac,
        exception: p.exception,
    })
}

/// One `[[interface]]` on one of `ports`; its MTU defaults to its port's, then 1500.
pub(super) fn interface(
    i: FileInterface,
    ports: &[PortConfig],
) -> Result<InterfaceConfig, ConfigFileError> {
    let section = format!("interface \"{}\"", i.name);
    let port = ports
        .iter()
        .position(|p| p.name == i.port)
        .ok_or_else(|| value(&section, format!("port \"{}\" is not defined", i.port)))?;
    let (v6, v4): (Vec<&String>, Vec<&String>) = i.addrs.iter().partition(|a| a.contains(':'));
    let addrs = v4
        .into_iter()
        .map(|a| cidr(&section, a))
        .collect::<Result<Vec<_>, _>>()?;
    let addrs6 = v6
        .into_iter()
        .map(|a| cidr6(&section, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InterfaceConfig {
        addrs6,
        name: i.name,
        port: port as u16,
        vlan: i.vlan,
        addrs,
        mtu: i.mtu.or(ports[port].mtu).unwrap_or(1500),
    })
}

/// One `[[route]]`.
pub(super) fn route(r: FileRoute) -> Result<Route, ConfigFileError> {
    let section = format!("route {} via {}", r.dst, r.via);
    if !r.dst.contains(':') {
        return Ok(Route::V4(RouteConfig {
            dst: cidr(&section, &r.dst)?,
            via: addr(&section, "via", &r.via)?,
        }));
    }
    let via = Ipv6Addr::from_str(r.via.trim()).map_err(|_| {
        value(
            &section,
            format!("via '{}' is not an IPv6 address (the route is IPv6)", r.via),
        )
    })?;
    Ok(Route::V6(RouteConfig6 {
        dst: cidr6(&section, &r.dst)?,
        via,
    }))
}

/// A `[[route]]`, of either family (by its destination prefix).
pub(super) enum Route {
    /// An IPv4 route.
    V4(RouteConfig),
    /// An IPv6 route.
    V6(RouteConfig6),
}

/// `[fullnat]`: the LIPs, the local port range (if given) and how freed ports come back,
/// into `director`.
pub(super) fn fullnat(
    f: &FileFullNat,
    director: &mut DirectorConfig,
) -> Result<(), ConfigFileError> {
    let mut lips = Vec::new();
    let mut lips6 = Vec::new();
    for l in &f.lips {
        match ip_addr("fullnat", "LIP", l)? {
            IpAddr::V4(a) => lips.push(a),
            IpAddr::V6(a) => lips6.push(a),
        }
    }
    let range = f
        .lport_range
        .as_deref()
        .map(|r| port_range("fullnat", r))
        .transpose()?;
    let mut reuse = PortReuse::default();
    match f.lport_quarantine {
        Some(s) if s > 3600 => {
            return Err(value(
                "fullnat",
                format!("lport_quarantine = {s} s is more than an hour"),
            ))
        }
        Some(s) => reuse.quarantine_ms = s * 1000,
        None => {}
    }
    if let Some(n) = f.lport_pools {
        if n == 0 || n > PortReuse::MAX_POOLS {
            return Err(value(
                "fullnat",
                format!(
                    "lport_pools = {n}: 1 to {} pools are possible",
                    PortReuse::MAX_POOLS
                ),
            ));
        }
        reuse.pools = n;
    }
    director.lips = lips;
    director.lips6 = lips6;
    if let Some(r) = range {
        director.lport_range = r;
    }
    director.lport_reuse = reuse;
    Ok(())
}

/// `[ha]`: the managed addresses, each a VIP of a service or a LIP of `director`, and only
/// with an exception TAP in `ports` for keepalived to put them on.
pub(super) fn ha(
    f: &FileHa,
    director: &DirectorConfig,
    ports: &[PortConfig],
) -> Result<Vec<Ipv4Addr>, ConfigFileError> {
    let managed: Vec<Ipv4Addr> = f
        .managed_addresses
        .iter()
        .map(|a| addr("ha", "managed address", a))
        .collect::<Result<_, _>>()?;
    if !managed.is_empty() && ports.iter().all(|p| p.exception.is_none()) {
        return Err(value(
            "ha",
            "managed_addresses needs a [[port]] with an exception TAP: an address is owned \
             while keepalived holds it on one",
        ));
    }
    for a in &managed {
        let vip = director.services.iter().any(|s| s.key().vip == *a);
        if !vip && !director.lips.contains(a) {
            return Err(value(
                "ha",
                format!(
                    "managed address {a} is neither a VIP of a [[service]] nor a [fullnat] \
                     LIP: only those can be managed"
                ),
            ));
        }
    }
    Ok(managed)
}

/// `lport_range = "1024-65535"`.
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

/// `[timeouts]`: IPVS's defaults with the ones given.
pub(super) fn timeouts(f: &FileTimeouts) -> Result<Timeouts, ConfigFileError> {
    let mut t = Timeouts::default();
    for (state, v, what) in [
        (SessionState::Tcp(TcpState::Established), f.tcp, "tcp"),
        (SessionState::Tcp(TcpState::FinWait), f.tcpfin, "tcpfin"),
        (SessionState::Udp, f.udp, "udp"),
        (SessionState::Icmp, f.icmp, "icmp"),
        // One timeout for both half-open states: SYN_RECV, and SYNACK (the server answered).
        (SessionState::Tcp(TcpState::SynRecv), f.syn_recv, "syn_recv"),
        (SessionState::Tcp(TcpState::SynAck), f.syn_recv, "syn_recv"),
        (
            SessionState::Tcp(TcpState::TimeWait),
            f.time_wait,
            "time_wait",
        ),
        (SessionState::Tcp(TcpState::Close), f.close, "close"),
    ] {
        if let Some(ms) = secs("timeouts", what, v)? {
            t.set(state, ms);
        }
    }
    Ok(t)
}

/// What a `[[service]]` brings beside the service itself.
pub(super) struct ServiceExtras {
    /// Its health check, unless it has none.
    pub check: Option<HealthCheck>,
    /// Its sorry server, if it has one.
    pub sorry: Option<(ServiceKey, Dest)>,
}

/// One `[[service]]` with its dests, added to `services`; its sorry server is checked
/// against `director` (the interfaces, routes and LIPs read so far).
pub(super) fn service(
    s: FileService,
    services: &mut ServiceTable,
    director: &DirectorConfig,
) -> Result<ServiceExtras, ConfigFileError> {
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
    let section = match IpAddr::from_str(s.vip.trim()) {
        Ok(IpAddr::V6(_)) => format!("service {} [{}]:{}", proto, s.vip.trim(), port),
        _ => format!("service {} {}:{}", proto, s.vip, port),
    };
    let key = ServiceKey {
        proto,
        vip: ip_addr(&section, "vip", &s.vip)?,
        port,
    };
    let service_err = |source| ConfigFileError::Service {
        section: section.clone(),
        source,
    };
    let sched = match &s.scheduler {
        Some(n) => SchedKind::from_str(n).map_err(service_err)?,
        None => DEFAULT_SCHEDULER,
    };
    let mut svc = Service::new(key, sched).map_err(service_err)?;
    svc.set_persistence(s.persistence).map_err(service_err)?;
    svc.set_synproxy(s.synproxy).map_err(service_err)?;
    if let Some(v) = &s.proxy_protocol {
        let v = sched::ProxyProtocol::parse(v).map_err(service_err)?;
        svc.set_proxy_protocol(v).map_err(service_err)?;
    }
    svc.set_toa(s.toa).map_err(service_err)?;
    for d in &s.dests {
        let dest = dest(&section, port, d)?;
        svc.add_dest(dest).map_err(service_err)?;
    }
    let check = match &s.check {
        Some(c) => check(&section, key, c)?,
        None => None,
    };
    let sorry = match &s.sorry_server {
        Some(a) => Some((
            key,
            sorry_server(&section, &svc, a, s.sorry_mode.as_deref(), director)?,
        )),
        None if s.sorry_mode.is_some() => {
            return Err(value(&section, "sorry_mode is for a sorry_server"))
        }
        None => None,
    };
    services.add(svc).map_err(service_err)?;
    Ok(ServiceExtras { check, sorry })
}

/// A service's `sorry_server` (`addr` on the service's port, or `addr:port`): weight 1, in
/// `mode` or else the forwarding mode all of the service's dests share; checked as a dest of
/// the service the director could run (route, LIPs, family).
fn sorry_server(
    section: &str,
    svc: &Service,
    text: &str,
    mode: Option<&str>,
    director: &DirectorConfig,
) -> Result<Dest, ConfigFileError> {
    let key = svc.key();
    let (addr, port) = match text.trim().parse::<SocketAddr>() {
        Ok(a) => (a.ip(), a.port()),
        Err(_) => (
            IpAddr::from_str(text.trim()).map_err(|_| {
                value(
                    section,
                    format!(
                        "sorry_server '{text}' is not an address or address:port (e.g. 10.1.0.99:8080, [2001:db8::99]:80)"
                    ),
                )
            })?,
            key.port,
        ),
    };
    let mode = match mode {
        Some(m) => ForwardMode::from_str(m).map_err(|source| ConfigFileError::Service {
            section: section.to_string(),
            source,
        })?,
        None => {
            let mut modes = svc.dests().iter().map(|d| d.mode);
            let first = modes.next().ok_or_else(|| {
                value(
                    section,
                    "sorry_server: the service has no dests to take the forwarding mode from: give sorry_mode",
                )
            })?;
            if modes.any(|m| m != first) {
                return Err(value(
                    section,
                    "sorry_server: the service's dests have different forwarding modes: give sorry_mode",
                ));
            }
            first
        }
    };
    let sorry = Dest {
        addr,
        port,
        weight: 1,
        mode,
    };
    if svc.dest(addr, port).is_some() {
        return Err(value(
            section,
            format!(
                "sorry_server {} is also a dest of the service: the sorry server stands in when every dest is down",
                SocketAddr::from((addr, port))
            ),
        ));
    }
    // As a dest of this service, alone on the director read so far.
    let mut with = svc.clone();
    with.add_dest(sorry)
        .map_err(|source| ConfigFileError::Service {
            section: section.to_string(),
            source,
        })?;
    let mut d = director.clone();
    d.services = ServiceTable::new();
    d.services
        .add(with)
        .map_err(|source| ConfigFileError::Service {
            section: section.to_string(),
            source,
        })?;
    dataplane::snapshot::Snapshot::build(&d)
        .map_err(|e| value(section, format!("sorry_server: {e}")))?;
    Ok(sorry)
}

/// One `[[service.dest]]`: its port defaults to the service's, its weight to 1, its mode to
/// DR (ipvsadm's default).
fn dest(section: &str, service_port: u16, d: &FileDest) -> Result<Dest, ConfigFileError> {
    let mode = match &d.mode {
        Some(m) => ForwardMode::from_str(m).map_err(|source| ConfigFileError::Service {
            section: section.to_string(),
            source,
        })?,
        None => ForwardMode::Dr,
    };
    Ok(Dest {
        addr: ip_addr(section, "dest", &d.addr)?,
        port: d.port.unwrap_or(service_port),
        weight: d.weight.unwrap_or(1),
        mode,
    })
}

/// `[service.check]`: None for `type = "none"`. Each key belongs to some types: a key given
/// to another type is an error, as is a TCP-based check (tcp, http, https) of a service that
/// is not TCP unless `port` names the TCP port to probe (and a udp one of a TCP service).
fn check(
    section: &str,
    service: ServiceKey,
    c: &FileCheck,
) -> Result<Option<HealthCheck>, ConfigFileError> {
    let duration = |what: &str, v: Option<f64>, default: f64| {
        let s = v.unwrap_or(default);
        if !(0.01..=3600.0).contains(&s) {
            return Err(value(
                section,
                format!("check {what} = {s} s must be 0.01..=3600"),
            ));
        }
        Ok(Duration::from_secs_f64(s))
    };
    let t = c.kind.to_ascii_lowercase();
    let t = match t.as_str() {
        "none" => return Ok(None),
        "misc" => "script",
        "tcp" | "udp" | "http" | "https" | "script" => t.as_str(),
        _ => {
            return Err(value(
                section,
                format!(
                    "check type '{}' must be tcp, http, https, udp, script (or misc) or none",
                    c.kind
                ),
            ))
        }
    };
    let web = matches!(t, "http" | "https");
    let misplaced = [
        ("path", c.path.is_some(), web),
        ("expect", c.expect.is_some(), web),
        ("virtualhost", c.virtualhost.is_some(), web),
        ("digest", c.digest.is_some(), web),
        ("ca_file", c.ca_file.is_some(), t == "https"),
        ("script", c.script.is_some(), t == "script"),
    ];
    if let Some((key, _, _)) = misplaced.iter().find(|(_, given, fits)| *given && !fits) {
        let types = match *key {
            "ca_file" => "type = \"https\"",
            "script" => "type = \"script\"",
            _ => "type = \"http\" or \"https\"",
        };
        return Err(value(
            section,
            format!("check {key} is for {types}, not \"{t}\""),
        ));
    }
    let over_tcp = matches!(t, "tcp" | "http" | "https");
    if c.port.is_none()
        && (over_tcp && service.proto != Proto::Tcp || t == "udp" && service.proto != Proto::Udp)
    {
        return Err(value(
            section,
            format!(
                "check type \"{t}\" probes over {}, and this is a {} service: give the port to probe (port = ...)",
                if over_tcp { "TCP" } else { "UDP" },
                service.proto
            ),
        ));
    }
    let kind = match t {
        "tcp" => CheckKind::Tcp,
        "udp" => CheckKind::Udp,
        "script" => {
            let command = c.script.as_deref().ok_or_else(|| {
                value(
                    section,
                    "check type \"script\" needs script = \"/path/to/program args\"",
                )
            })?;
            CheckKind::Script(
                ScriptCheck::parse(command).map_err(|e| value(section, format!("check {e}")))?,
            )
        }
        _ => CheckKind::Http(http_check(section, c, t == "https")?),
    };
    let (rise, fall) = (c.rise.unwrap_or(2), c.fall.unwrap_or(3));
    if rise == 0 || fall == 0 {
        return Err(value(section, "check rise and fall must be at least 1"));
    }
    let interval = duration("interval", c.interval, 2.0)?;
    // A script may take the whole interval (keepalived's misc_timeout defaults to delay_loop).
    let default_timeout = if t == "script" {
        interval.as_secs_f64()
    } else {
        interval.as_secs_f64().min(1.0)
    };
    let timeout = duration("timeout", c.timeout, default_timeout)?;
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

/// The keys of an `http` or `https` check.
fn http_check(section: &str, c: &FileCheck, tls: bool) -> Result<HttpCheck, ConfigFileError> {
    // Text that goes into the request as it is: no blanks, no control characters.
    let clean = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || !clean(&path) {
        return Err(value(
            section,
            format!(
                "check path '{path}' must start with / and hold no blanks or control characters"
            ),
        ));
    }
    let expect = match &c.expect {
        None => StatusSet::success(),
        Some(ExpectText(text)) => {
            StatusSet::parse(text).map_err(|e| value(section, format!("check {e}")))?
        }
    };
    if let Some(v) = &c.virtualhost {
        if !clean(v) {
            return Err(value(
                section,
                format!("check virtualhost '{v}' must be a host name, without blanks or control characters"),
            ));
        }
        if tls {
            // Any address stands in: only the name's form is checked here.
            let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
            server_name(Some(v), any)
                .map_err(|e| value(section, format!("check {e} (TLS sends it as SNI)")))?;
        }
    }
    let digest = match &c.digest {
        None => None,
        Some(d) => Some(parse_digest(d).ok_or_else(|| {
            value(
                section,
                format!("check digest '{d}' must be 32 hex digits: the body's MD5, as md5sum or keepalived's genhash print it"),
            )
        })?),
    };
    let tls = if tls {
        Some(Tls::new(c.ca_file.as_deref()).map_err(|e| value(section, format!("check {e}")))?)
    } else {
        None
    };
    Ok(HttpCheck {
        path,
        expect,
        virtualhost: c.virtualhost.clone(),
        digest,
        tls,
    })
}

/// One `[[neighbour]]`.
pub(super) fn neighbour(n: FileNeighbour) -> Result<NeighbourConfig, ConfigFileError> {
    let section = format!("neighbour {}", n.ip);
    let ip = std::net::IpAddr::from_str(n.ip.trim()).map_err(|_| {
        value(
            &section,
            format!("ip '{}' is not an IPv4 or IPv6 address", n.ip),
        )
    })?;
    Ok(NeighbourConfig {
        ip,
        mac: parse_mac(&n.mac)
            .ok_or_else(|| value(&section, format!("mac '{}' is not a MAC", n.mac)))?,
    })
}

/// `[sync]`: the roles to start with and the settings (the interface defaults to the first
/// exception TAP among `ports`).
pub(super) fn sync(f: FileSync, ports: &[PortConfig]) -> Result<SyncConfig, ConfigFileError> {
    let d = SyncSettings::default();
    let interface = match f.interface {
        Some(i) => i,
        None => ports
            .iter()
            .find_map(|p| p.exception.clone())
            .unwrap_or_default(),
    };
    let group = f
        .group
        .as_deref()
        .map(|g| addr("sync", "group", g))
        .transpose()?
        .unwrap_or(d.group);
    let port = f.port.unwrap_or(d.port);
    let peers = f
        .peers
        .iter()
        .map(|p| {
            sync_peer(p, port).ok_or_else(|| {
                value(
                    "sync",
                    format!("peer '{p}' is not an IPv4 address or address:port"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let settings = SyncSettings {
        interface,
        sync_id: f.syncid.unwrap_or(d.sync_id),
        group,
        port,
        peers,
        maxlen: f.maxlen.unwrap_or(d.maxlen),
        ttl: f.ttl.unwrap_or(d.ttl),
        refresh_ms: f.refresh.map_or(d.refresh_ms, |s| u64::from(s) * 1000),
    };
    if f.master || f.backup {
        settings.check().map_err(|e| value("sync", e.to_string()))?;
    }
    Ok(SyncConfig {
        master: f.master,
        backup: f.backup,
        settings,
    })
}

/// A sync peer: `a.b.c.d` (on the sync port) or `a.b.c.d:port`.
pub fn sync_peer(s: &str, port: u16) -> Option<SocketAddrV4> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return (a.port() != 0).then_some(a);
    }
    s.parse::<Ipv4Addr>()
        .ok()
        .map(|a| SocketAddrV4::new(a, port))
}

/// `[cluster]`: the announcer's settings (the interface defaults to the first exception TAP
/// among `ports`), and the peers' LIPs into `director`.
pub(super) fn cluster(
    f: Option<FileCluster>,
    director: &mut DirectorConfig,
    ports: &[PortConfig],
) -> Result<Option<AnnounceSettings>, ConfigFileError> {
    let Some(f) = f else {
        return Ok(None);
    };
    let interface = match f.interface {
        Some(i) => i,
        None => ports
            .iter()
            .find_map(|p| p.exception.clone())
            .ok_or_else(|| {
                value(
                    "cluster",
                    "the announced routes point at an exception TAP: give a [[port]] an \
                     exception interface (or set interface)",
                )
            })?,
    };
    let table = f.table.unwrap_or(DEFAULT_TABLE);
    // 0 is unspecified; 253-255 are the kernel's default, main and local tables.
    if table == 0 || (253..=255).contains(&table) {
        return Err(value(
            "cluster",
            format!(
                "table {table} is reserved: choose a table of rvsd's own (e.g. {DEFAULT_TABLE})"
            ),
        ));
    }
    let metric = f.metric.unwrap_or(DEFAULT_METRIC);
    let backup_metric = f.backup_metric.unwrap_or(DEFAULT_BACKUP_METRIC);
    if backup_metric <= metric {
        return Err(value(
            "cluster",
            format!(
                "backup_metric {backup_metric} must be above metric {metric}: a peer's LIP is \
                 announced as a backup, less preferred than its own director's"
            ),
        ));
    }
    let secs = |key: &str, v: Option<f64>, default: f64| -> Result<Duration, ConfigFileError> {
        let v = v.unwrap_or(default);
        if !(0.0..=3600.0).contains(&v) {
            return Err(value(
                "cluster",
                format!("{key} {v} is out of range (0..=3600 s)"),
            ));
        }
        Ok(Duration::from_secs_f64(v))
    };
    let peer_lips: Vec<Ipv4Addr> = f
        .peer_lips
        .iter()
        .map(|a| addr("cluster", "peer LIP", a))
        .collect::<Result<_, _>>()?;
    for a in &peer_lips {
        if director.lips.contains(a) {
            return Err(value(
                "cluster",
                format!("peer LIP {a} is also one of this director's [fullnat] lips: each LIP belongs to one director"),
            ));
        }
    }
    director.peer_lips = peer_lips;
    Ok(Some(AnnounceSettings {
        table,
        interface,
        metric,
        backup_metric,
        hold: secs("hold", f.hold, 10.0)?,
        settle: secs("settle", f.settle, 2.0)?,
        drain_timeout: secs("drain_timeout", f.drain_timeout, 30.0)?,
    }))
}

/// `[cluster] table`'s default.
pub const DEFAULT_TABLE: u32 = 100;
/// `[cluster] metric`'s default.
pub const DEFAULT_METRIC: u32 = 32;
/// `[cluster] backup_metric`'s default.
pub const DEFAULT_BACKUP_METRIC: u32 = 64;
