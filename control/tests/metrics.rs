//! The metrics endpoint: over real TCP sockets on 127.0.0.1, a client that holds its
//! connection open without a request does not hold up another's scrape; and the exposition of
//! a known state: every family with `# HELP` and `# TYPE`, service and dest families labelled
//! exactly as node_exporter's IPVS collector labels its own, values as the state has them.

#[path = "support/fleet.rs"]
mod fleet;

use control::health::HealthSink;
use control::metrics;
use control::model::Model;
use control::state::ControlState;
use dataplane::stats::WorkerStats;
use proto::{DestSpec, ProtoName, Request, Response, SvcKey};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::*;

/// A metrics server on 127.0.0.1 answering with `body`; stopped when dropped.
struct Endpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn start(body: &'static str) -> Endpoint {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sp = stop.clone();
        let thread = std::thread::spawn(move || {
            metrics::serve(l, &sp, Arc::new(move || body.to_string()));
        });
        Endpoint {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `request` and reads the whole answer (the server closes after it).
fn ask(addr: SocketAddr, request: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn an_idle_client_never_stalls_a_scrape() {
    let ep = Endpoint::start("rvs_up 1\n");
    // One client connected and silent, one with half a request line, one with a request
    // line but no end of headers: each keeps its connection open.
    let silent = TcpStream::connect(ep.addr).unwrap();
    let mut half = TcpStream::connect(ep.addr).unwrap();
    half.write_all(b"GET /met").unwrap();
    let mut headless = TcpStream::connect(ep.addr).unwrap();
    headless
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let t = Instant::now();
        let answer = ask(ep.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let took = t.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nrvs_up 1\n"), "{answer}");
        assert!(
            took < Duration::from_secs(1),
            "a scrape took {took:?} behind idle clients"
        );
    }
    // The idle ones are closed once their time is up, unanswered.
    let mut rest = Vec::new();
    half.set_read_timeout(Some(metrics::SCRAPE_TIMEOUT * 3))
        .unwrap();
    assert_eq!(half.read_to_end(&mut rest).unwrap(), 0);
    drop((silent, headless));
}

#[test]
fn http_status_and_length() {
    let ep = Endpoint::start("a 1\n");
    let ok = ask(ep.addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
    assert!(ok.contains("Content-Length: 4\r\n"), "{ok}");
    assert!(ok.contains(&format!("Content-Type: {}\r\n", metrics::CONTENT_TYPE)));
    let nf = ask(ep.addr, "GET /nope HTTP/1.1\r\n\r\n");
    assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
    let na = ask(ep.addr, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert!(
        na.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{na}"
    );
    let bad = ask(ep.addr, "hello\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{bad}");
}

#[test]
fn scrapes_beyond_the_limit_are_turned_away_at_once() {
    let ep = Endpoint::start("a 1\n");
    let idle: Vec<TcpStream> = (0..metrics::MAX_SCRAPERS)
        .map(|_| TcpStream::connect(ep.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let busy = ask(ep.addr, "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        busy.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
        "{busy}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    // Once the idle ones time out, scrapes are served again.
    drop(idle);
    let deadline = Instant::now() + metrics::SCRAPE_TIMEOUT * 3;
    loop {
        let a = ask(ep.addr, "GET /metrics HTTP/1.1\r\n\r\n");
        if a.starts_with("HTTP/1.1 200 OK") {
            break;
        }
        assert!(Instant::now() < deadline, "{a}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A parsed exposition: per family its HELP, TYPE and samples (labels as ordered pairs).
#[derive(Default, Debug)]
struct Fam {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").expect("label=\"");
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

fn parse(text: &str) -> BTreeMap<String, Fam> {
    let mut fams: BTreeMap<String, Fam> = BTreeMap::new();
    let mut order = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            let f = fams.entry(name.into()).or_default();
            assert!(f.help.is_none() && f.kind.is_none(), "{name}: HELP again");
            f.help = Some(help.into());
            order.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let f = fams.entry(name.into()).or_default();
            assert!(f.help.is_some(), "{name}: TYPE before HELP");
            assert!(f.kind.is_none(), "{name}: TYPE again");
            f.kind = Some(kind.into());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').unwrap())),
                None => (series, Vec::new()),
            };
            assert_eq!(
                order.last().map(String::as_str),
                Some(name),
                "sample {line} outside its family"
            );
            let f = fams.get_mut(name).expect("sample of a family");
            f.samples.push((labels, value.parse().expect("a number")));
        }
    }
    fams
}

fn svc(proto: ProtoName, port: u16) -> SvcKey {
    SvcKey {
        proto,
        vip: VIP.into(),
        port,
    }
}

fn add(state: &mut ControlState, key: SvcKey, dests: &[(std::net::Ipv4Addr, u16, u32)]) {
    let add = Request::AddService {
        service: key,
        scheduler: "wrr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    };
    assert_eq!(state.handle(add), Response::Done);
    for &(addr, port, weight) in dests {
        let dest = DestSpec {
            addr: addr.into(),
            port,
            weight,
            mode: "nat".into(),
        };
        assert_eq!(
            state.handle(Request::AddDest { service: key, dest }),
            Response::Done
        );
    }
}

/// The value of the sample of `name` whose labels are exactly `labels`.
fn value(f: &BTreeMap<String, Fam>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let fam = f.get(name).unwrap_or_else(|| panic!("no family {name}"));
    let want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hits: Vec<f64> = fam
        .samples
        .iter()
        .filter(|(l, _)| *l == want)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{name}{labels:?}: {:?}", fam.samples);
    hits[0]
}

const DEST_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

#[test]
fn the_exposition_of_a_known_state() {
    let model = Model::new(fleet::director()).expect("model");
    let (w0, w1) = (WorkerStats::new(), WorkerStats::new());
    let mut state = ControlState::new(model, vec![w0.clone(), w1.clone()], Vec::new());
    let http = svc(ProtoName::Tcp, 80);
    let dns = svc(ProtoName::Udp, 53);
    add(&mut state, http, &[(RS[0], 8080, 3), (RS[1], 8080, 1)]);
    add(&mut state, dns, &[(RS[0], 53, 1)]);
    // RS[1] fails its health check.
    let tcp = control::convert::service_key(http);
    let rs1: IpAddr = RS[1].into();
    let state = std::sync::Mutex::new(state);
    state.dest_health(tcp, rs1, 8080, false);
    let state = state.into_inner().unwrap();
    let slot = |addr: std::net::Ipv4Addr, key: SvcKey, port| {
        let k = control::convert::service_key(key);
        state.model().slots().get(k, addr.into(), port).unwrap()
    };
    let (s0, s1, s2) = (
        slot(RS[0], http, 8080),
        slot(RS[1], http, 8080),
        slot(RS[0], dns, 53),
    );
    // Counters split over two workers: the exposition sums them.
    for (w, share) in [(&w0, 1), (&w1, 2)] {
        for (s, base) in [(s0, 10), (s1, 100), (s2, 1000)] {
            let d = w.dest(s);
            d.conns.store(base * share, Ordering::Relaxed);
            d.inpkts.store((base + 1) * share, Ordering::Relaxed);
            d.outpkts.store((base + 2) * share, Ordering::Relaxed);
            d.inbytes.store((base + 3) * share, Ordering::Relaxed);
            d.outbytes.store((base + 4) * share, Ordering::Relaxed);
            d.active.store(share, Ordering::Relaxed);
            d.inactive.store(2 * share, Ordering::Relaxed);
        }
    }
    let mut counters = dataplane::Counters::default();
    counters.add_drops(dataplane::drop::DropReason::ALL[0], 5);
    w1.worker.publish(&counters);
    w0.worker.busy_permille.store(250, Ordering::Relaxed);
    w1.worker.busy_permille.store(1000, Ordering::Relaxed);
    state.port_board().publish(vec![proto::PortView {
        name: "wan0".into(),
        link_up: true,
        speed_mbps: 10000,
        rx_packets: 42,
        rx_missed: 3,
        ..Default::default()
    }]);
    metrics::MBUFS_IN_USE.store(700, Ordering::Relaxed);
    metrics::MBUFS_CAPACITY.store(8191, Ordering::Relaxed);

    let text = state.metrics();
    let f = parse(&text);

    // Every family has both, counters (only they) end in _total.
    for (name, fam) in &f {
        assert!(
            fam.help.as_deref().is_some_and(|h| !h.is_empty()),
            "{name} has no HELP"
        );
        let kind = fam
            .kind
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no TYPE"));
        assert!(kind == "counter" || kind == "gauge", "{name}: {kind}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
    }
    // Service and dest families: node_exporter's label sets, nothing more or less.
    let svc_labels = ["local_address", "local_port", "proto", "local_mark"];
    let mut seen = BTreeSet::new();
    for (name, fam) in &f {
        let want: &[&str] = if name.starts_with("rvs_service_") {
            &svc_labels
        } else if name.starts_with("rvs_dest_") {
            &DEST_LABELS
        } else {
            continue;
        };
        seen.insert(name.as_str());
        assert!(!fam.samples.is_empty(), "{name}");
        for (labels, _) in &fam.samples {
            let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, want, "{name}");
        }
    }
    for name in [
        "rvs_service_connections_total",
        "rvs_service_incoming_packets_total",
        "rvs_service_outgoing_packets_total",
        "rvs_service_incoming_bytes_total",
        "rvs_service_outgoing_bytes_total",
        "rvs_dest_connections_total",
        "rvs_dest_incoming_packets_total",
        "rvs_dest_outgoing_packets_total",
        "rvs_dest_incoming_bytes_total",
        "rvs_dest_outgoing_bytes_total",
        "rvs_dest_connections_active",
        "rvs_dest_connections_inactive",
        "rvs_dest_weight",
        "rvs_dest_up",
    ] {
        assert!(seen.contains(name), "{name} missing");
    }

    let vip = VIP.to_string();
    let (r0, r1) = (RS[0].to_string(), RS[1].to_string());
    let d = |rip: &str, rport: &str, lport: &str, proto: &str| -> Vec<(&str, String)> {
        vec![
            ("local_address", vip.clone()),
            ("local_port", lport.into()),
            ("remote_address", rip.into()),
            ("remote_port", rport.into()),
            ("proto", proto.into()),
            ("local_mark", String::new()),
        ]
    };
    let val = |name: &str, l: Vec<(&str, String)>| {
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        value(&f, name, &l)
    };
    let http0 = d(&r0, "8080", "80", "TCP");
    let http1 = d(&r1, "8080", "80", "TCP");
    let dns0 = d(&r0, "53", "53", "UDP");
    assert_eq!(val("rvs_dest_connections_total", http0.clone()), 30.0);
    assert_eq!(val("rvs_dest_incoming_packets_total", http0.clone()), 33.0);
    assert_eq!(val("rvs_dest_outgoing_packets_total", http1.clone()), 306.0);
    assert_eq!(val("rvs_dest_incoming_bytes_total", dns0.clone()), 3009.0);
    assert_eq!(val("rvs_dest_outgoing_bytes_total", dns0.clone()), 3012.0);
    assert_eq!(val("rvs_dest_connections_active", http0.clone()), 3.0);
    assert_eq!(val("rvs_dest_connections_inactive", http0.clone()), 6.0);
    assert_eq!(val("rvs_dest_weight", http0.clone()), 3.0);
    // Down by its health check, still weighted 1 as configured.
    assert_eq!(val("rvs_dest_weight", http1.clone()), 1.0);
    assert_eq!(val("rvs_dest_up", http1), 0.0);
    assert_eq!(val("rvs_dest_up", http0), 1.0);
    assert_eq!(val("rvs_dest_up", dns0), 1.0);
    let s = |lport: &str, proto: &str| {
        vec![
            ("local_address", vip.clone()),
            ("local_port", lport.to_string()),
            ("proto", proto.to_string()),
            ("local_mark", String::new()),
        ]
    };
    // The service sums its dests.
    assert_eq!(val("rvs_service_connections_total", s("80", "TCP")), 330.0);
    assert_eq!(
        val("rvs_service_outgoing_bytes_total", s("80", "TCP")),
        (14 + 104) as f64 * 3.0
    );
    assert_eq!(
        val("rvs_service_incoming_packets_total", s("53", "UDP")),
        3003.0
    );

    // The rest.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&f, "rvs_build_info", &[("version", version)]), 1.0);
    assert_eq!(value(&f, "rvs_worker_busy_ratio", &[("worker", "0")]), 0.25);
    assert_eq!(value(&f, "rvs_worker_busy_ratio", &[("worker", "1")]), 1.0);
    assert!(!f.contains_key("rvs_worker_busy_ratio_permille"));
    assert_eq!(value(&f, "rvs_port_link_up", &[("port", "wan0")]), 1.0);
    assert_eq!(
        value(&f, "rvs_port_speed_mbps", &[("port", "wan0")]),
        10000.0
    );
    assert_eq!(
        value(&f, "rvs_port_rx_packets_total", &[("port", "wan0")]),
        42.0
    );
    assert_eq!(
        value(&f, "rvs_port_rx_missed_total", &[("port", "wan0")]),
        3.0
    );
    assert_eq!(value(&f, "rvs_mbufs_in_use", &[]), 700.0);
    assert_eq!(value(&f, "rvs_mbufs_capacity", &[]), 8191.0);
    for c in dataplane::Counter::ALL {
        let fam = &f[c.metric()];
        assert_eq!(fam.help.as_deref(), Some(c.help()), "{}", c.metric());
        assert_eq!(fam.samples.len(), 2, "{}", c.metric());
    }
    let reason = dataplane::drop::DropReason::ALL[0].as_str();
    let drops = &f["rvs_worker_drops_total"].samples;
    assert_eq!(drops.len(), 1, "only the reasons seen: {drops:?}");
    assert_eq!(
        value(
            &f,
            "rvs_worker_drops_total",
            &[("worker", "1"), ("reason", reason)]
        ),
        5.0
    );
    // Families without samples are left out.
    assert!(!f.contains_key("rvs_lip_ports") && !f.contains_key("rvs_address_owned"));
}

/// Every `rvs_*` name in `text`.
fn rvs_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("rvs_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not a name's tail (`xrvs_...`).
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The alert rules and the dashboard (monitoring/) use only families rvsd exports, and use
/// the service, dest, port, sync and pool families their alerts and panels are about.
#[test]
fn monitoring_files_use_only_exported_families() {
    use control::sync::{SyncPlane, SyncSettings};
    use dataplane::sync::{FlowOwner, SyncLink};
    let model = Model::new(fleet::director()).expect("model");
    let cell = model.cell();
    let mut state = ControlState::new(model, vec![WorkerStats::new()], Vec::new());
    state.set_sync(
        SyncPlane::new(
            vec![Arc::new(SyncLink::default())],
            FlowOwner::new(1, &[]),
            cell,
        ),
        SyncSettings::default(),
    );
    metrics::MBUFS_IN_USE.store(1, Ordering::Relaxed);
    metrics::MBUFS_CAPACITY.store(2, Ordering::Relaxed);
    let exported: BTreeSet<String> = state
        .metric_families()
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
    let rules = std::fs::read_to_string(dir.join("rvs-alerts.yml")).expect("rules file");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    // The dashboard's queries: every "expr" in it.
    fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if k == "expr" => out.push(s.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() > 20, "{queries:?}");
    let used_by_rules = rvs_names(&rules);
    let used_by_dashboard = rvs_names(&queries.join("\n"));
    for (what, used) in [("rules", &used_by_rules), ("dashboard", &used_by_dashboard)] {
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{what} use {unknown:?}, not exported");
    }
    for name in [
        "rvs_dest_up",
        "rvs_dest_weight",
        "rvs_sync_peer_last_heard_seconds",
        "rvs_worker_drops_total",
        "rvs_mbufs_in_use",
        "rvs_mbufs_capacity",
        "rvs_port_rx_missed_total",
        "rvs_port_link_up",
    ] {
        assert!(used_by_rules.contains(name), "no rule on {name}");
    }
    // The dashboard shows every service and dest family.
    for name in exported
        .iter()
        .filter(|n| n.starts_with("rvs_service_") || n.starts_with("rvs_dest_"))
    {
        assert!(used_by_dashboard.contains(name), "no panel shows {name}");
    }
}
