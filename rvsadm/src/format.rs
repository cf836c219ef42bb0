//! rvsadm's output: rvsd's answers printed the way ipvsadm prints the kernel's tables.
//!
//! Column widths are ipvsadm.c's printf formats (`print_title`, `print_service_entry`,
//! `print_largenum`, `list_conn`, `list_timeout`), so that scripts which parse
//! `ipvsadm -L -n`, `--stats`, `--rate`, `-c`, `--timeout` and `-S` keep working; trailing
//! padding is kept as ipvsadm's `%-10u` leaves it. Services are sorted by address family,
//! protocol number, VIP and port and dests by address and port, as ipvsadm sorts them, unless
//! `--nosort`.
//!
//! IPv6 addresses are printed as ipvsadm prints them, `[2001:db8::10]:80`, everywhere an
//! address and port are (the listings, `-c`, `--health`, `-S`); no column is widened for
//! them: a longer name pushes the rest of its line right, as ipvsadm's `%-33s` and `%-28s` do.
//! `-S` writes an IPv6 address without a port (ICMP) in brackets too, `[2001:db8::10]`, so
//! that `-R` never reads its last group as a port.
//!
//! Differences, all additive: the first line names rvs instead of the kernel's IPVS; the
//! Forward column also says `FullNat`; ICMP services print as `ICMP 192.0.2.1:0` (rules:
//! `--icmp 192.0.2.1`); `-c` gains a `local` column (the FullNAT LIP:lport) after
//! `destination` when rvsd holds FullNAT sessions; `--workers` is rvs's own table; `--json`
//! prints the answer's payload instead of a table.
//!
//! `-c` comes in pages ([`ConnectionsPrinter`]): the title lines once, then each page's rows as
//! it arrives; with `--json` one array across the pages, written as it goes.

use crate::cli::Output;
use proto::{
    ConnView, DestView, ForwardName, ProtoName, Request, Response, ServiceView, WorkerView,
};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Why an answer could not be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// rvsd refused the request; its message is for the operator, as is.
    #[error("{0}")]
    Refused(String),
    /// rvsd answered with something that does not answer this request.
    #[error("unexpected answer from rvsd: {got} (expected {expected})")]
    Unexpected {
        /// What this request is answered with.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// A dest's forwarding method is none that `-S` can write as an option.
    #[error("cannot save dest {dest}: unknown forwarding method `{forward}'")]
    UnknownForward {
        /// The dest, `RIP:port`.
        dest: String,
        /// The method rvsd reported.
        forward: String,
    },
    /// The payload could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(String),
}

/// The `--json` payload of `-L --timeout`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsView {
    /// TCP ESTABLISHED, seconds.
    pub tcp: u64,
    /// TCP FIN_WAIT, seconds.
    pub tcpfin: u64,
    /// UDP, seconds.
    pub udp: u64,
}

/// The first line of a full listing, in the shape of ipvsadm's
/// `IP Virtual Server version 1.2.1 (size=4096)`.
pub fn banner() -> String {
    format!(
        "Rust Virtual Server version {} (protocol={})\n",
        env!("CARGO_PKG_VERSION"),
        proto::VERSION
    )
}

/// Prints rvsd's answer to `request` as rvsadm prints it: a table, or JSON with `--json`,
/// or nothing for a change that was applied.
///
/// # Errors
/// [`FormatError::Refused`] for an error answer, [`FormatError::Unexpected`] for an answer of
/// the wrong kind, [`FormatError::Json`] if JSON cannot be written.
pub fn render(
    request: &Request,
    response: &Response,
    output: &Output,
) -> Result<String, FormatError> {
    let expected = expected_answer(request);
    let got = answer_name(response);
    if let Response::Error { message, .. } = response {
        return Err(FormatError::Refused(message.clone()));
    }
    if expected != got {
        return Err(FormatError::Unexpected { expected, got });
    }
    match response {
        Response::Done | Response::Noted { .. } | Response::Error { .. } => Ok(String::new()),
        Response::Services { services } if output.json => json(services),
        Response::Services { services } => {
            let one = matches!(request, Request::List { service: Some(_) });
            Ok(services_table(services, output, !one))
        }
        Response::Connections { conns, local, .. } => {
            let mut printer = ConnectionsPrinter::new(output);
            let mut s = printer.page(conns, *local)?;
            s.push_str(&printer.finish());
            Ok(s)
        }
        &Response::Timeouts { tcp, tcpfin, udp } => {
            let view = TimeoutsView { tcp, tcpfin, udp };
            if output.json {
                json(&view)
            } else {
                Ok(timeouts(&view))
            }
        }
        Response::Workers { workers: list } if output.json => json(list),
        Response::Workers { workers: list } => Ok(workers(list, output)),
        Response::Ports { ports: list } if output.json => json(list),
        Response::Ports { ports: list } => Ok(ports(list, output)),
        Response::Lips { .. } if output.json => json(response),
        Response::Lips {
            lips,
            lips6,
            first_port,
            last_port,
            workers: list,
            pools,
            quarantine_secs,
            usage,
        } => Ok(lips_table(
            (lips, lips6),
            (*first_port, *last_port),
            (*pools, *quarantine_secs),
            list,
            usage,
        )),
        Response::Health { dests } if output.json => json(dests),
        Response::Health { dests } => Ok(health(dests)),
        Response::Daemons { .. } if output.json => json(response),
        Response::Daemons {
            daemons: list,
            peers,
            backlog,
            counters,
        } => Ok(daemons(list, peers, *backlog, counters)),
        Response::Addresses { addresses: list } if output.json => json(list),
        Response::Addresses { addresses: list } => Ok(addresses(list)),
        Response::Cluster { cluster: c } if output.json => json(c),
        Response::Cluster { cluster: c } => Ok(cluster(c)),
    }
}

/// The answer kind that answers `request`.
fn expected_answer(request: &Request) -> &'static str {
    match request {
        Request::List { .. } => "services",
        Request::Connections { .. } => "connections",
        Request::Timeouts => "timeouts",
        Request::Workers => "workers",
        Request::Ports => "ports",
        Request::Lips => "lips",
        Request::Health => "health",
        Request::Daemons => "daemons",
        Request::Addresses => "addresses",
        Request::Cluster => "cluster",
        // Every change, batch and reload answers `done`.
        _ => "done",
    }
}

/// The wire name of an answer kind.
fn answer_name(response: &Response) -> &'static str {
    match response {
        Response::Done | Response::Noted { .. } => "done",
        Response::Error { .. } => "error",
        Response::Services { .. } => "services",
        Response::Connections { .. } => "connections",
        Response::Timeouts { .. } => "timeouts",
        Response::Workers { .. } => "workers",
        Response::Ports { .. } => "ports",
        Response::Lips { .. } => "lips",
        Response::Health { .. } => "health",
        Response::Daemons { .. } => "daemons",
        Response::Addresses { .. } => "addresses",
        Response::Cluster { .. } => "cluster",
    }
}

/// `-L --daemon`: ipvsadm's line per running role, then (rvs) the senders heard, the
/// master's backlog and the sync counters that are not zero.
fn daemons(
    list: &[proto::DaemonView],
    peers: &[proto::SyncPeerView],
    backlog: u64,
    counters: &[(String, u64)],
) -> String {
    let mut s = String::new();
    for d in list {
        let to = if d.peers.is_empty() {
            format!("mcast={}", d.interface)
        } else {
            let p: Vec<String> = d.peers.iter().map(ToString::to_string).collect();
            format!("interface={}, peers={}", d.interface, p.join(","))
        };
        s.push_str(&format!(
            "{} sync daemon ({to}, syncid={}, maxlen={}",
            d.role.as_str(),
            d.sync_id,
            d.maxlen
        ));
        if d.peers.is_empty() {
            s.push_str(&format!(
                ", group={}, port={}, ttl={}",
                d.group, d.port, d.ttl
            ));
        } else {
            s.push_str(&format!(", port={}", d.port));
        }
        s.push_str(&format!(", refresh={}s)\n", d.refresh_secs));
    }
    if list.is_empty() {
        return s;
    }
    for p in peers {
        s.push_str(&format!(
            "peer {} sender {:08x}: {} datagrams, last seq {}, heard {} ms ago, {}\n",
            p.addr,
            p.sender,
            p.datagrams,
            p.seq,
            p.last_heard_ms,
            peer_view(p)
        ));
    }
    s.push_str(&format!("backlog {backlog} records\n"));
    for (name, v) in counters.iter().filter(|(_, v)| *v > 0) {
        s.push_str(&format!("{name} {v}\n"));
    }
    s
}

/// How a peer's view of its services compares with this director's.
fn peer_view(p: &proto::SyncPeerView) -> String {
    match (p.view_agrees, p.view_services, &p.view_digest) {
        (Some(true), _, _) => "services agree".to_owned(),
        (Some(false), Some(n), Some(d)) => format!("services DIFFER ({n} services, view {d})"),
        _ => "no view heard".to_owned(),
    }
}

/// `--cluster`: the phase, the announced routes, the sync daemons and peers.
pub fn cluster(c: &proto::ClusterView) -> String {
    let proto::ClusterView {
        phase,
        phase_ms,
        table,
        interface,
        routes,
        drain,
        route_errors,
        daemons: list,
        peers,
        backlog,
        view_services,
        view_digest,
    } = c;
    let mut s = format!(
        "cluster: {phase} for {:.1} s, routes in table {table} dev {interface}\n\
         services: {view_services}, view {view_digest}\n",
        *phase_ms as f64 / 1000.0
    );
    if !drain.is_empty() {
        s.push_str(&format!("drain: {drain}\n"));
    }
    if *route_errors > 0 {
        s.push_str(&format!("route changes refused: {route_errors}\n"));
    }
    s.push_str("Announced          Metric Role\n");
    for r in routes {
        s.push_str(&format!(
            "{:<18} {:<6} {}\n",
            format!("{}/32", r.addr),
            r.metric,
            r.role
        ));
    }
    if list.is_empty() {
        s.push_str("no sync daemon\n");
    } else {
        for p in peers {
            s.push_str(&format!(
                "peer {} sender {:08x}: {} datagrams, heard {} ms ago, bulk sync {}, {}\n",
                p.addr,
                p.sender,
                p.datagrams,
                p.last_heard_ms,
                if p.bulk_complete {
                    "complete"
                } else {
                    "pending"
                },
                peer_view(p)
            ));
        }
        let roles: Vec<&str> = list.iter().map(|d| d.role.as_str()).collect();
        s.push_str(&format!(
            "sync: {} ({} peers heard), backlog {backlog} records\n",
            roles.join("+"),
            peers.len()
        ));
    }
    s
}

/// `value` as pretty JSON, with a final newline.
///
/// # Errors
/// [`FormatError::Json`] (serde_json cannot fail on these types, but the error is not hidden).
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, FormatError> {
    let mut s =
        serde_json::to_string_pretty(value).map_err(|e| FormatError::Json(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

/// ipvsadm's `print_largenum`: 9 columns, with K/M/G/T above 10^8 unless `exact`, in which
/// case the number is printed whole (and the column widens to fit it plus one space).
pub fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    match n {
        0..=99_999_999 => format!("{n:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", n / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

/// The IANA protocol number, ipvsadm's first sort key.
fn proto_number(p: ProtoName) -> u8 {
    match p {
        ProtoName::Icmp => 1,
        ProtoName::Tcp => 6,
        ProtoName::Udp => 17,
    }
}

/// `TCP`, `UDP` or `ICMP`.
fn proto_label(p: ProtoName) -> &'static str {
    match p {
        ProtoName::Tcp => "TCP",
        ProtoName::Udp => "UDP",
        ProtoName::Icmp => "ICMP",
    }
}

/// `addr:port` (IPv6 `[addr]:port`), ipvsadm's `addrport_to_anyname` with `-n`.
fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// An address without a port as `-S` writes it: IPv6 in brackets (`[2001:db8::10]`).
fn addr_alone(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// The services in ipvsadm's order (unless `nosort`), each with its dests in order: IPv4
/// services before IPv6 ones (libipvs's `ipvs_cmp_services` compares the family first), then
/// by protocol number, VIP and port; dests by address and port.
fn sorted(services: &[ServiceView], nosort: bool) -> Vec<(&ServiceView, Vec<&DestView>)> {
    let mut out: Vec<(&ServiceView, Vec<&DestView>)> = services
        .iter()
        .map(|s| (s, s.dests.iter().collect()))
        .collect();
    if !nosort {
        out.sort_by_key(|(s, _)| {
            let k = &s.key;
            (k.vip.is_ipv6(), proto_number(k.proto), k.vip, k.port)
        });
        for (_, dests) in &mut out {
            dests.sort_by_key(|d| (d.addr, d.port));
        }
    }
    out
}

/// The `Forward` column name of a dest (`Masq`, `Route`, `Tunnel`, `FullNat`), whichever
/// spelling rvsd used; an unknown one is printed as it came.
fn forward_name(forward: &str) -> &str {
    ForwardName::parse(forward).map_or(forward, |m| m.column())
}

/// `-L`, `-L --stats`, `-L --rate`: the banner (for a full listing), ipvsadm's title lines,
/// then each service and its dests.
pub fn services_table(services: &[ServiceView], output: &Output, full: bool) -> String {
    let mut s = String::new();
    if full {
        s.push_str(&banner());
    }
    let numbers = output.stats || output.rate;
    if output.stats {
        s.push_str(&format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ));
    } else if output.rate {
        s.push_str(&format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ));
    } else {
        s.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        );
    }
    for (svc, dests) in sorted(services, output.nosort) {
        let name = format!(
            "{:<5}{}",
            proto_label(svc.key.proto),
            addr_port(svc.key.vip, svc.key.port)
        );
        if numbers {
            let _ = write!(s, "{name:<33}");
            s.push_str(&counters(&svc.stats, &svc.rates, output));
        } else {
            let _ = write!(s, "{name} {}", svc.scheduler);
            if let Some(t) = svc.persistence {
                let _ = write!(s, " persistent {t}");
            }
            if svc.synproxy {
                s.push_str(" synproxy");
            }
            if let Some(v) = &svc.proxy_protocol {
                let _ = write!(s, " proxy-protocol {v}");
            }
            if svc.toa {
                s.push_str(" toa");
            }
        }
        s.push('\n');
        for d in dests {
            let dname = addr_port(d.addr, d.port);
            if numbers {
                let _ = write!(s, "  -> {dname:<28}");
                s.push_str(&counters(&d.stats, &d.rates, output));
                s.push('\n');
            } else {
                let _ = writeln!(
                    s,
                    "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                    forward_name(&d.forward),
                    d.weight,
                    d.active,
                    d.inactive
                );
            }
        }
    }
    s
}

/// The five number columns of `--stats` (or `--rate`).
fn counters(stats: &proto::Stats, rates: &proto::Rates, output: &Output) -> String {
    let values = if output.stats {
        [
            stats.conns,
            stats.inpkts,
            stats.outpkts,
            stats.inbytes,
            stats.outbytes,
        ]
    } else {
        [
            rates.cps,
            rates.inpps,
            rates.outpps,
            rates.inbps,
            rates.outbps,
        ]
    };
    values.iter().map(|&v| largenum(v, output.exact)).collect()
}

/// `-S`: the services and dests as command lines `-R` (and ipvsadm-restore) read back, in
/// ipvsadm's order: `-A -t VIP:port -s sched [-p timeout]`, then
/// `-a -t VIP:port -r RIP:port -g|-m|-i|--fullnat -w weight` per dest; IPv6 addresses in
/// brackets (`-t [2001:db8::10]:80`, `--icmp [2001:db8::10]`).
///
/// # Errors
/// [`FormatError::UnknownForward`] for a dest whose forwarding method has no option.
pub fn rules(services: &[ServiceView]) -> Result<String, FormatError> {
    let mut s = String::new();
    for (svc, dests) in sorted(services, false) {
        let name = match svc.key.proto {
            ProtoName::Tcp => format!("-t {}", addr_port(svc.key.vip, svc.key.port)),
            ProtoName::Udp => format!("-u {}", addr_port(svc.key.vip, svc.key.port)),
            ProtoName::Icmp => format!("--icmp {}", addr_alone(svc.key.vip)),
        };
        let _ = write!(s, "-A {name} -s {}", svc.scheduler);
        if let Some(t) = svc.persistence {
            let _ = write!(s, " -p {t}");
        }
        if svc.synproxy {
            s.push_str(" -j enable");
        }
        if let Some(v) = &svc.proxy_protocol {
            let _ = write!(s, " --proxy-protocol {v}");
        }
        if svc.toa {
            s.push_str(" --toa");
        }
        s.push('\n');
        for d in dests {
            let switch = match ForwardName::parse(&d.forward) {
                Some(method) => method.switch(),
                None if d.forward.eq_ignore_ascii_case("local") => "-g",
                None => {
                    return Err(FormatError::UnknownForward {
                        dest: addr_port(d.addr, d.port),
                        forward: d.forward.clone(),
                    })
                }
            };
            let dname = match svc.key.proto {
                ProtoName::Icmp => addr_alone(d.addr),
                ProtoName::Tcp | ProtoName::Udp => addr_port(d.addr, d.port),
            };
            let _ = writeln!(s, "-a {name} -r {dname} {switch} -w {}", d.weight);
        }
    }
    Ok(s)
}

/// `-L -c`: ipvsadm's connection listing (`pro expire state source virtual destination`,
/// expiry as mm:ss), with a `local` column when some session is FullNAT; all in one page.
pub fn connections(conns: &[ConnView]) -> String {
    let mut printer = ConnectionsPrinter::new(&Output::default());
    // Tables cannot fail to print.
    let mut s = printer.page(conns, false).unwrap_or_default();
    s.push_str(&printer.finish());
    s
}

/// `-L -c` printed page by page as rvsd sends them, so that a listing of any size takes the
/// memory of one page: ipvsadm's table (title lines before the first page's rows), or with
/// `--json` one JSON array over all the pages, exactly as the whole list would be printed.
///
/// The table's `local` column (FullNAT LIP:lport, `-` for other sessions) is there when the
/// first page says rvsd holds FullNAT sessions or has one. A FullNAT session on a later page of
/// a table without the column (it started during the listing) still shows its local address
/// after its destination.
#[derive(Debug)]
pub struct ConnectionsPrinter {
    json: bool,
    /// Whether anything was printed yet (the title lines; the array's first element).
    started: bool,
    with_local: bool,
}

impl ConnectionsPrinter {
    /// A printer for `output` (`--json` or a table).
    pub fn new(output: &Output) -> ConnectionsPrinter {
        ConnectionsPrinter {
            json: output.json,
            started: false,
            with_local: false,
        }
    }

    /// The text of one page; `local` is the page's word on FullNAT sessions.
    ///
    /// # Errors
    /// [`FormatError::Json`] if a session cannot be written as JSON.
    pub fn page(&mut self, conns: &[ConnView], local: bool) -> Result<String, FormatError> {
        let mut s = String::new();
        if self.json {
            for c in conns {
                s.push_str(if self.started { ",\n" } else { "[\n" });
                self.started = true;
                let item = serde_json::to_string_pretty(c)
                    .map_err(|e| FormatError::Json(e.to_string()))?;
                // serde_json's array layout: each element indented by two spaces (strings
                // hold no raw line breaks).
                for (i, line) in item.lines().enumerate() {
                    if i > 0 {
                        s.push('\n');
                    }
                    s.push_str("  ");
                    s.push_str(line);
                }
            }
            return Ok(s);
        }
        if !self.started {
            self.started = true;
            self.with_local = local || conns.iter().any(|c| c.local.is_some());
            s.push_str("RVS connection entries\n");
            if self.with_local {
                let _ = writeln!(
                    s,
                    "pro expire {:<11} {:<18} {:<18} {:<18} local",
                    "state", "source", "virtual", "destination"
                );
            } else {
                let _ = writeln!(
                    s,
                    "pro expire {:<11} {:<18} {:<18} destination",
                    "state", "source", "virtual"
                );
            }
        }
        for c in conns {
            let expire = format!("{:02}:{:02}", c.expire_secs / 60, c.expire_secs % 60);
            let _ = write!(
                s,
                "{:<3} {:<6} {:<11} {:<18} {:<18} ",
                proto_label(c.proto),
                expire,
                c.state,
                addr_port(c.source, c.sport),
                addr_port(c.vip, c.vport)
            );
            let dest = addr_port(c.dest, c.dport);
            match c.local {
                Some((a, p)) => {
                    let _ = writeln!(s, "{dest:<18} {}", addr_port(a, p));
                }
                None if self.with_local => {
                    let _ = writeln!(s, "{dest:<18} -");
                }
                None => {
                    let _ = writeln!(s, "{dest}");
                }
            }
        }
        Ok(s)
    }

    /// The text after the last page: the end of the JSON array (`[]` if it had nothing), or
    /// the title lines of a table that had no page.
    pub fn finish(self) -> String {
        match (self.json, self.started) {
            (true, true) => "\n]\n".to_owned(),
            (true, false) => "[]\n".to_owned(),
            (false, true) => String::new(),
            (false, false) => {
                let mut printer = self;
                printer.page(&[], false).unwrap_or_default()
            }
        }
    }
}

/// `-L --timeout`: `Timeout (tcp tcpfin udp): 900 60 300`.
pub fn timeouts(t: &TimeoutsView) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcpfin, t.udp
    )
}

/// `--lips`: the FullNAT local addresses (IPv4, then IPv6) and each worker's free ports.
pub fn lips_table(
    (lips, lips6): (&[std::net::Ipv4Addr], &[std::net::Ipv6Addr]),
    (first, last): (u16, u16),
    (pools, quarantine_secs): (u16, u64),
    list: &[proto::LipWorkerView],
    usage: &[proto::LipUsageView],
) -> String {
    let mut s = String::new();
    let names: Vec<String> = lips
        .iter()
        .map(|l| l.to_string())
        .chain(lips6.iter().map(|l| l.to_string()))
        .collect();
    let _ = writeln!(
        s,
        "Local addresses: {}",
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(" ")
        }
    );
    if pools > 0 {
        let _ = writeln!(
            s,
            "Local ports: {first}-{last} ({pools} pools per LIP, quarantine {quarantine_secs} s)"
        );
    } else {
        let _ = writeln!(s, "Local ports: {first}-{last}");
    }
    let _ = writeln!(s, "{:<6} {:>10} {:>10}", "Worker", "Free", "Total");
    for w in list {
        let _ = writeln!(s, "{:<6} {:>10} {:>10}", w.id, w.available, w.capacity);
    }
    if !usage.is_empty() {
        // IPv4 addresses in 15 columns, as before; wider when an IPv6 LIP needs it.
        let width = usage
            .iter()
            .map(|u| u.lip.to_string().len())
            .max()
            .unwrap_or(0)
            .max(15);
        let _ = writeln!(
            s,
            "{:<6} {:<width$} {:>10} {:>10} {:>10}",
            "Worker", "LocalAddress", "InUse", "Quarantine", "Free"
        );
        for u in usage {
            let _ = writeln!(
                s,
                "{:<6} {:<width$} {:>10} {:>10} {:>10}",
                u.worker,
                u.lip.to_string(),
                u.in_use,
                u.quarantined,
                u.free
            );
        }
    }
    s
}

/// `--addresses`: each managed address, what it is, owned or standby, and while owned the
/// interface it is announced on.
pub fn addresses(list: &[proto::AddressView]) -> String {
    let mut s = format!("{:<15} {:<4} {:<7} Interface\n", "Address", "Role", "State");
    for a in list {
        let _ = writeln!(
            s,
            "{:<15} {:<4} {:<7} {}",
            a.addr,
            a.role,
            if a.owned { "owned" } else { "standby" },
            a.interface.as_deref().unwrap_or("-")
        );
    }
    s
}

/// `--health`: each checked dest, its state and its check (IPv6 as `[addr]:port`).
pub fn health(dests: &[proto::HealthView]) -> String {
    let mut s = format!(
        "{:<4} {:<21} {:<21} {:<5} {:>6} Check\n",
        "Prot", "LocalAddress:Port", "RemoteAddress:Port", "State", "Weight"
    );
    for d in dests {
        let proto = match d.service.proto {
            ProtoName::Tcp => "TCP",
            ProtoName::Udp => "UDP",
            ProtoName::Icmp => "ICMP",
        };
        let _ = writeln!(
            s,
            "{proto:<4} {:<21} {:<21} {:<5} {:>6} {}",
            addr_port(d.service.vip, d.service.port),
            addr_port(d.addr, d.port),
            if d.up { "UP" } else { "DOWN" },
            d.weight,
            d.check
        );
    }
    s
}

/// A link speed as `ip`/ethtool say it: `10Gb/s`, `100Mb/s`, `-` when unknown or down.
fn speed(mbps: u32) -> String {
    match mbps {
        0 => "-".to_owned(),
        m if m % 1000 == 0 => format!("{}Gb/s", m / 1000),
        m => format!("{m}Mb/s"),
    }
}

/// `--ports`: one line per DPDK data port, as `ip -s link` would show it: link, speed, then
/// packets and bytes each way, and the RX drops and errors (numbers in ipvsadm's 9-column
/// style, `--exact` applies).
pub fn ports(list: &[proto::PortView], output: &Output) -> String {
    let mut s = format!(
        "{:<10} {:<4} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "Port",
        "Link",
        "Speed",
        "RxPkts",
        "RxBytes",
        "TxPkts",
        "TxBytes",
        "Missed",
        "RxErrs",
        "TxErrs",
        "NoMbuf"
    );
    for p in list {
        let link = if p.link_up { "UP" } else { "DOWN" };
        let _ = write!(s, "{:<10} {link:<4} {:>7}", p.name, speed(p.speed_mbps));
        for v in [
            p.rx_packets,
            p.rx_bytes,
            p.tx_packets,
            p.tx_bytes,
            p.rx_missed,
            p.rx_errors,
            p.tx_errors,
            p.rx_nombuf,
        ] {
            s.push_str(&largenum(v, output.exact));
        }
        s.push('\n');
    }
    s
}

/// `--workers`: one line per worker, numbers in ipvsadm's 9-column style (`--exact` applies),
/// busy share in percent, and the drops by reason; then every event counter above zero, a line
/// per worker.
pub fn workers(list: &[WorkerView], output: &Output) -> String {
    let mut s = format!(
        "{:<6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} Drops\n",
        "Worker", "RxPkts", "TxPkts", "Sessions", "RedirOut", "RedirIn", "Busy"
    );
    for w in list {
        let _ = write!(s, "{:<6}", w.id);
        for v in [
            w.rx_packets,
            w.tx_packets,
            w.sessions,
            w.redirected_out,
            w.redirected_in,
        ] {
            s.push_str(&largenum(v, output.exact));
        }
        let busy = format!("{}.{}%", w.busy_permille / 10, w.busy_permille % 10);
        let drops = if w.drops.is_empty() {
            "-".to_owned()
        } else {
            w.drops
                .iter()
                .map(|(reason, n)| format!("{reason}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(s, " {busy:>6} {drops}");
    }
    // Every event counter, below the table: one line per worker, the counters above zero.
    if list.iter().any(|w| !w.counters.is_empty()) {
        s.push_str("Worker Counters\n");
        for w in list {
            let counters = if w.counters.is_empty() {
                "-".to_owned()
            } else {
                w.counters
                    .iter()
                    .map(|(name, n)| format!("{name}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = writeln!(s, "{:<6} {counters}", w.id);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_matches_ipvsadm() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(12_345_678, true), " 12345678");
        assert_eq!(largenum(123_456_789, true), " 123456789");
        assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
    }

    #[test]
    fn ports_table_as_ip_s_link() {
        let up = proto::PortView {
            name: "wan".into(),
            link_up: true,
            speed_mbps: 10_000,
            rx_packets: 123_456_789,
            rx_bytes: 5,
            tx_packets: 7,
            rx_missed: 3,
            rx_nombuf: 2,
            ..Default::default()
        };
        let down = proto::PortView {
            name: "lan".into(),
            speed_mbps: 0,
            ..Default::default()
        };
        let out = ports(&[up.clone(), down], &Output::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let cols: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "Port", "Link", "Speed", "RxPkts", "RxBytes", "TxPkts", "TxBytes", "Missed",
                "RxErrs", "TxErrs", "NoMbuf"
            ]
        );
        let wan: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            wan,
            ["wan", "UP", "10Gb/s", "123456K", "5", "7", "0", "3", "0", "0", "2"]
        );
        let lan: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(lan[..3], ["lan", "DOWN", "-"]);
        let exact = Output {
            exact: true,
            ..Output::default()
        };
        assert!(ports(&[up], &exact).contains(" 123456789 "));
        assert_eq!(speed(100), "100Mb/s");
        assert_eq!(speed(2500), "2500Mb/s");
    }

    #[test]
    fn forward_names_are_ipvsadm_names_whatever_the_spelling() {
        assert_eq!(forward_name("Masq"), "Masq");
        assert_eq!(forward_name("nat"), "Masq");
        assert_eq!(forward_name("dr"), "Route");
        assert_eq!(forward_name("fullnat"), "FullNat");
        assert_eq!(forward_name("Local"), "Local");
    }
}
