//! Golden outputs for given answers (the expected text was produced by ipvsadm.c's printf
//! formats, transliterated), `-S` → `-R` round trips, and `--json` read back.

use proptest::prelude::*;
use proto::{
    ConnView, DestView, ErrorKind, ProtoName, Rates, Request, Response, ServiceView, Stats, SvcKey,
    WorkerView,
};
use rvsadm::cli::{self, Output};
use rvsadm::format::{self, FormatError, TimeoutsView};
use std::net::Ipv4Addr;

fn stats(v: [u64; 5]) -> Stats {
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn rates(v: [u64; 5]) -> Rates {
    Rates {
        cps: v[0],
        inpps: v[1],
        outpps: v[2],
        inbps: v[3],
        outbps: v[4],
    }
}

fn key(proto: ProtoName, last: u8, port: u16) -> SvcKey {
    SvcKey {
        proto,
        vip: Ipv4Addr::new(192, 0, 2, last).into(),
        port,
    }
}

#[allow(clippy::too_many_arguments)]
fn dest(
    last: u8,
    port: u16,
    forward: &str,
    weight: u32,
    active: u64,
    inactive: u64,
    s: [u64; 5],
    r: [u64; 5],
) -> DestView {
    DestView {
        addr: Ipv4Addr::new(10, 1, 0, last).into(),
        port,
        forward: forward.into(),
        weight,
        active,
        inactive,
        stats: stats(s),
        rates: rates(r),
    }
}

const Z: [u64; 5] = [0; 5];

/// Three services in rvsd's order (not ipvsadm's): UDP, then TCP with its dests out of
/// order, then ICMP. Every forwarding method appears; the numbers cross every K/M/G/T step.
fn services() -> Vec<ServiceView> {
    vec![
        ServiceView {
            key: key(ProtoName::Udp, 2, 53),
            scheduler: "rr".into(),
            persistence: Some(300),
            synproxy: false,
            proxy_protocol: None,
            toa: false,
            stats: stats(Z),
            rates: rates(Z),
            dests: vec![
                dest(22, 53, "Tunnel", 65535, 123_456, 7, Z, Z),
                dest(21, 53, "Route", 0, 0, 0, Z, Z),
            ],
        },
        ServiceView {
            key: key(ProtoName::Tcp, 1, 80),
            scheduler: "wrr".into(),
            persistence: None,
            synproxy: true,
            proxy_protocol: None,
            toa: false,
            stats: stats([
                123,
                100_000_000,
                99_999_999,
                1_500_000_000_000,
                150_000_000_000_000,
            ]),
            rates: rates([7, 1200, 1100, 987_654_321, 5]),
            dests: vec![
                dest(
                    12,
                    8080,
                    "Masq",
                    1,
                    5,
                    2,
                    [
                        23,
                        40_000_000,
                        40_000_000,
                        500_000_000_000,
                        50_000_000_000_000,
                    ],
                    [3, 500, 500, 487_654_321, 2],
                ),
                dest(
                    11,
                    8080,
                    "FullNat",
                    3,
                    0,
                    0,
                    [
                        100,
                        60_000_000,
                        59_999_999,
                        1_000_000_000_000,
                        100_000_000_000_000,
                    ],
                    [4, 700, 600, 500_000_000, 3],
                ),
            ],
        },
        ServiceView {
            key: key(ProtoName::Icmp, 9, 0),
            scheduler: "rr".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false,
            stats: stats(Z),
            rates: rates(Z),
            dests: vec![dest(31, 0, "Route", 1, 0, 0, Z, Z)],
        },
    ]
}

fn list_all() -> Request {
    Request::List { service: None }
}

fn render(request: &Request, response: &Response, output: Output) -> String {
    format::render(request, response, &output).unwrap()
}

/// `lines` joined, each with its newline, after the banner line.
fn with_banner(lines: &[&str]) -> String {
    format::banner() + &lines.iter().map(|l| format!("{l}\n")).collect::<String>()
}

fn joined(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

const PLAIN: &[&str] = &[
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "ICMP 192.0.2.9:0 rr",
    "  -> 10.1.0.31:0                  Route   1      0          0         ",
    "TCP  192.0.2.1:80 wrr synproxy",
    "  -> 10.1.0.11:8080               FullNat 3      0          0         ",
    "  -> 10.1.0.12:8080               Masq    1      5          2         ",
    "UDP  192.0.2.2:53 rr persistent 300",
    "  -> 10.1.0.21:53                 Route   0      0          0         ",
    "  -> 10.1.0.22:53                 Tunnel  65535  123456     7         ",
];

const STATS: &[&str] = &[
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
    "  -> RemoteAddress:Port",
    "ICMP 192.0.2.9:0                         0        0        0        0        0",
    "  -> 10.1.0.31:0                         0        0        0        0        0",
    "TCP  192.0.2.1:80                      123  100000K 99999999    1500G     150T",
    "  -> 10.1.0.11:8080                    100 60000000 59999999    1000G     100T",
    "  -> 10.1.0.12:8080                     23 40000000 40000000     500G   50000G",
    "UDP  192.0.2.2:53                        0        0        0        0        0",
    "  -> 10.1.0.21:53                        0        0        0        0        0",
    "  -> 10.1.0.22:53                        0        0        0        0        0",
];

const STATS_EXACT: &[&str] = &[
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
    "  -> RemoteAddress:Port",
    "ICMP 192.0.2.9:0                         0        0        0        0        0",
    "  -> 10.1.0.31:0                         0        0        0        0        0",
    "TCP  192.0.2.1:80                      123 100000000 99999999 1500000000000 150000000000000",
    "  -> 10.1.0.11:8080                    100 60000000 59999999 1000000000000 100000000000000",
    "  -> 10.1.0.12:8080                     23 40000000 40000000 500000000000 50000000000000",
    "UDP  192.0.2.2:53                        0        0        0        0        0",
    "  -> 10.1.0.21:53                        0        0        0        0        0",
    "  -> 10.1.0.22:53                        0        0        0        0        0",
];

const RATE: &[&str] = &[
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
    "  -> RemoteAddress:Port",
    "ICMP 192.0.2.9:0                         0        0        0        0        0",
    "  -> 10.1.0.31:0                         0        0        0        0        0",
    "TCP  192.0.2.1:80                        7     1200     1100  987654K        5",
    "  -> 10.1.0.11:8080                      4      700      600  500000K        3",
    "  -> 10.1.0.12:8080                      3      500      500  487654K        2",
    "UDP  192.0.2.2:53                        0        0        0        0        0",
    "  -> 10.1.0.21:53                        0        0        0        0        0",
    "  -> 10.1.0.22:53                        0        0        0        0        0",
];

const RATE_EXACT: &[&str] = &[
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
    "  -> RemoteAddress:Port",
    "ICMP 192.0.2.9:0                         0        0        0        0        0",
    "  -> 10.1.0.31:0                         0        0        0        0        0",
    "TCP  192.0.2.1:80                        7     1200     1100 987654321        5",
    "  -> 10.1.0.11:8080                      4      700      600 500000000        3",
    "  -> 10.1.0.12:8080                      3      500      500 487654321        2",
    "UDP  192.0.2.2:53                        0        0        0        0        0",
    "  -> 10.1.0.21:53                        0        0        0        0        0",
    "  -> 10.1.0.22:53                        0        0        0        0        0",
];

const RULES: &[&str] = &[
    "-A --icmp 192.0.2.9 -s rr",
    "-a --icmp 192.0.2.9 -r 10.1.0.31 -g -w 1",
    "-A -t 192.0.2.1:80 -s wrr -j enable",
    "-a -t 192.0.2.1:80 -r 10.1.0.11:8080 --fullnat -w 3",
    "-a -t 192.0.2.1:80 -r 10.1.0.12:8080 -m -w 1",
    "-A -u 192.0.2.2:53 -s rr -p 300",
    "-a -u 192.0.2.2:53 -r 10.1.0.21:53 -g -w 0",
    "-a -u 192.0.2.2:53 -r 10.1.0.22:53 -i -w 65535",
];

#[test]
fn list_numeric_is_ipvsadms_table_sorted_like_ipvsadm() {
    let out = render(
        &list_all(),
        &Response::Services {
            services: services(),
        },
        Output {
            numeric: true,
            ..Output::default()
        },
    );
    assert_eq!(out, with_banner(PLAIN));
}

#[test]
fn nosort_keeps_rvsds_order() {
    let out = render(
        &list_all(),
        &Response::Services {
            services: services(),
        },
        Output {
            nosort: true,
            ..Output::default()
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[3], "UDP  192.0.2.2:53 rr persistent 300");
    assert!(lines[4].starts_with("  -> 10.1.0.22:53 "), "{out}");
    assert_eq!(lines[6], "TCP  192.0.2.1:80 wrr synproxy");
    assert!(lines[7].starts_with("  -> 10.1.0.12:8080 "), "{out}");
    assert_eq!(lines[9], "ICMP 192.0.2.9:0 rr");
}

#[test]
fn one_service_has_no_banner_like_ipvsadms_list_service() {
    let svc = services().remove(1);
    let out = render(
        &Request::List {
            service: Some(svc.key),
        },
        &Response::Services {
            services: vec![svc],
        },
        Output::default(),
    );
    assert_eq!(
        out,
        joined(&[PLAIN[0], PLAIN[1], PLAIN[4], PLAIN[5], PLAIN[6]])
    );
}

#[test]
fn empty_table_is_just_the_headers() {
    let out = render(
        &list_all(),
        &Response::Services { services: vec![] },
        Output::default(),
    );
    assert_eq!(out, with_banner(&PLAIN[..2]));
}

#[test]
fn forward_column_accepts_either_spelling() {
    let mut svcs = services();
    for (d, mode) in svcs[1].dests.iter_mut().zip(["nat", "fullnat"]) {
        d.forward = mode.into();
    }
    svcs[0].dests[0].forward = "tun".into();
    svcs[0].dests[1].forward = "dr".into();
    svcs[2].dests[0].forward = "DR".into();
    let out = render(
        &list_all(),
        &Response::Services { services: svcs },
        Output::default(),
    );
    assert_eq!(out, with_banner(PLAIN));
}

#[test]
fn stats_with_large_numbers() {
    let resp = Response::Services {
        services: services(),
    };
    let stats = Output {
        stats: true,
        ..Output::default()
    };
    assert_eq!(render(&list_all(), &resp, stats), with_banner(STATS));
    let exact = Output {
        exact: true,
        ..stats
    };
    assert_eq!(render(&list_all(), &resp, exact), with_banner(STATS_EXACT));
    // --stats wins over --rate, as in ipvsadm's print_title.
    let both = Output {
        rate: true,
        ..stats
    };
    assert_eq!(render(&list_all(), &resp, both), with_banner(STATS));
}

#[test]
fn rates_with_and_without_exact() {
    let resp = Response::Services {
        services: services(),
    };
    let rate = Output {
        rate: true,
        ..Output::default()
    };
    assert_eq!(render(&list_all(), &resp, rate), with_banner(RATE));
    let exact = Output {
        exact: true,
        ..rate
    };
    assert_eq!(render(&list_all(), &resp, exact), with_banner(RATE_EXACT));
}

fn conn(
    proto: ProtoName,
    expire_secs: u64,
    state: &str,
    client: (u8, u16),
    vip: (u8, u16),
    rs: (u8, u16),
    local: Option<(Ipv4Addr, u16)>,
) -> ConnView {
    ConnView {
        proto,
        expire_secs,
        state: state.into(),
        source: Ipv4Addr::new(203, 0, 113, client.0).into(),
        sport: client.1,
        vip: Ipv4Addr::new(192, 0, 2, vip.0).into(),
        vport: vip.1,
        dest: Ipv4Addr::new(10, 1, 0, rs.0).into(),
        dport: rs.1,
        local: local.map(|(a, p)| (a.into(), p)),
        worker: 0,
    }
}

fn conns() -> Vec<ConnView> {
    vec![
        conn(
            ProtoName::Tcp,
            899,
            "ESTABLISHED",
            (7, 51234),
            (1, 80),
            (12, 8080),
            None,
        ),
        conn(
            ProtoName::Udp,
            3725,
            "UDP",
            (8, 5353),
            (2, 53),
            (22, 53),
            None,
        ),
    ]
}

#[test]
fn connections_like_ipvsadm_lnc() {
    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: conns(),
            next: None,
            local: false,
        },
        Output {
            connections: true,
            numeric: true,
            ..Output::default()
        },
    );
    assert_eq!(
        out,
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 14:59  ESTABLISHED 203.0.113.7:51234  192.0.2.1:80       10.1.0.12:8080",
            "UDP 62:05  UDP         203.0.113.8:5353   192.0.2.2:53       10.1.0.22:53",
        ])
    );
}

/// A persistent client's template as rvsd lists it (state `NONE`, the client's port 0) prints
/// as ipvsadm prints IPVS's: `TCP 05:59  NONE        CIP:0  VIP:80  RIP:8080`.
#[test]
fn persistence_templates_print_like_ipvsadms() {
    let mut list = conns();
    list.insert(
        1,
        conn(
            ProtoName::Tcp,
            359,
            "NONE",
            (7, 0),
            (1, 80),
            (12, 8080),
            None,
        ),
    );
    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: list,
            next: None,
            local: false,
        },
        Output {
            connections: true,
            numeric: true,
            ..Output::default()
        },
    );
    assert_eq!(
        out,
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 14:59  ESTABLISHED 203.0.113.7:51234  192.0.2.1:80       10.1.0.12:8080",
            "TCP 05:59  NONE        203.0.113.7:0      192.0.2.1:80       10.1.0.12:8080",
            "UDP 62:05  UDP         203.0.113.8:5353   192.0.2.2:53       10.1.0.22:53",
        ])
    );
}

#[test]
fn fullnat_connections_add_a_local_column() {
    let mut list = conns();
    list.push(conn(
        ProtoName::Tcp,
        59,
        "SYN_RECV",
        (9, 40000),
        (1, 80),
        (11, 8080),
        Some((Ipv4Addr::new(10, 2, 0, 1), 1025)),
    ));
    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: list,
            next: None,
            local: false,
        },
        Output::default(),
    );
    assert_eq!(
        out,
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination        local",
            "TCP 14:59  ESTABLISHED 203.0.113.7:51234  192.0.2.1:80       10.1.0.12:8080     -",
            "UDP 62:05  UDP         203.0.113.8:5353   192.0.2.2:53       10.1.0.22:53       -",
            "TCP 00:59  SYN_RECV    203.0.113.9:40000  192.0.2.1:80       10.1.0.11:8080     10.2.0.1:1025",
        ])
    );
}

/// `n` sessions, every third one FullNAT.
fn many_conns(n: u16) -> Vec<ConnView> {
    (0..n)
        .map(|i| {
            let local = (i % 3 == 2).then(|| (Ipv4Addr::new(10, 2, 0, 1), 1024 + i));
            let mut c = conn(
                ProtoName::Tcp,
                u64::from(i),
                "ESTABLISHED",
                (7, 40000 + i),
                (1, 80),
                (11, 8080),
                local,
            );
            c.worker = i / 4;
            c
        })
        .collect()
}

/// What a printer makes of `pages` (each with the page's `local` word).
fn paged(pages: &[(&[ConnView], bool)], json: bool) -> String {
    let mut p = format::ConnectionsPrinter::new(&Output {
        json,
        ..Output::default()
    });
    let mut out = String::new();
    for (conns, local) in pages {
        out.push_str(&p.page(conns, *local).unwrap());
    }
    out + &p.finish()
}

#[test]
fn pages_print_as_one_table_and_one_json_array() {
    let all = many_conns(10);
    // Split anywhere, with empty pages in between, the output is the whole list's.
    let splits: [&[usize]; 4] = [&[10], &[1, 9], &[2, 0, 5, 3], &[0, 0, 4, 4, 2, 0]];
    let whole_table = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: all.clone(),
            next: None,
            local: true,
        },
        Output::default(),
    );
    assert_eq!(whole_table.lines().count(), 12);
    let whole_json = serde_json::to_string_pretty(&all).unwrap() + "\n";
    for split in splits {
        let mut pages = Vec::new();
        let mut at = 0;
        for &n in split {
            pages.push((&all[at..at + n], true));
            at += n;
        }
        assert_eq!(at, all.len());
        assert_eq!(paged(&pages, false), whole_table, "{split:?}");
        assert_eq!(paged(&pages, true), whole_json, "{split:?}");
        let back: Vec<ConnView> = serde_json::from_str(&paged(&pages, true)).unwrap();
        assert_eq!(back, all);
    }
    // Nothing at all, in one empty page or none.
    assert_eq!(paged(&[(&[], false)], true), "[]\n");
    assert_eq!(paged(&[], true), "[]\n");
    assert_eq!(
        paged(&[(&[], false), (&[], false)], false),
        "RVS connection entries\npro expire state       source             virtual            destination\n"
    );
    assert_eq!(paged(&[], false), paged(&[(&[], false)], false));
}

#[test]
fn the_local_column_is_decided_by_the_first_page() {
    let all = many_conns(3);
    // rvsd says FullNAT sessions exist though the first page has none: the column is there.
    let out = paged(&[(&all[..1], true), (&all[1..], true)], false);
    assert_eq!(
        out,
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination        local",
            "TCP 00:00  ESTABLISHED 203.0.113.7:40000  192.0.2.1:80       10.1.0.11:8080     -",
            "TCP 00:01  ESTABLISHED 203.0.113.7:40001  192.0.2.1:80       10.1.0.11:8080     -",
            "TCP 00:02  ESTABLISHED 203.0.113.7:40002  192.0.2.1:80       10.1.0.11:8080     10.2.0.1:1026",
        ])
    );
    // A FullNAT session that started after the first page still shows its local address.
    let out = paged(&[(&all[..1], false), (&all[1..], true)], false);
    assert_eq!(
        out,
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 00:00  ESTABLISHED 203.0.113.7:40000  192.0.2.1:80       10.1.0.11:8080",
            "TCP 00:01  ESTABLISHED 203.0.113.7:40001  192.0.2.1:80       10.1.0.11:8080",
            "TCP 00:02  ESTABLISHED 203.0.113.7:40002  192.0.2.1:80       10.1.0.11:8080     10.2.0.1:1026",
        ])
    );
}

#[test]
fn no_connections_is_the_two_header_lines() {
    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: vec![],
            next: None,
            local: false,
        },
        Output::default(),
    );
    assert_eq!(
        out,
        "RVS connection entries\npro expire state       source             virtual            destination\n"
    );
}

#[test]
fn timeouts_line() {
    let out = render(
        &Request::Timeouts,
        &Response::Timeouts {
            tcp: 900,
            tcpfin: 60,
            udp: 300,
        },
        Output::default(),
    );
    assert_eq!(out, "Timeout (tcp tcpfin udp): 900 60 300\n");
}

fn workers() -> Vec<WorkerView> {
    vec![
        WorkerView {
            id: 0,
            rx_packets: 123_456_789,
            tx_packets: 1000,
            sessions: 17,
            redirected_out: 0,
            redirected_in: 3,
            drops: vec![("no-session".into(), 3), ("table-full".into(), 1)],
            busy_permille: 425,
            counters: vec![],
        },
        WorkerView {
            id: 1,
            rx_packets: 0,
            tx_packets: 0,
            sessions: 0,
            redirected_out: 0,
            redirected_in: 0,
            drops: vec![],
            busy_permille: 1000,
            counters: vec![],
        },
    ]
}

#[test]
fn workers_table() {
    let resp = Response::Workers { workers: workers() };
    assert_eq!(
        render(&Request::Workers, &resp, Output::default()),
        joined(&[
            "Worker   RxPkts   TxPkts Sessions RedirOut  RedirIn   Busy Drops",
            "0       123456K     1000       17        0        3  42.5% no-session=3,table-full=1",
            "1             0        0        0        0        0 100.0% -",
        ])
    );
    let exact = Output {
        exact: true,
        ..Output::default()
    };
    assert!(render(&Request::Workers, &resp, exact).contains("0      123456789     1000"));
}

#[test]
fn workers_table_lists_every_counter_below() {
    let mut list = workers();
    list[0].counters = vec![("rx_bytes".into(), 9000), ("arp_to_kernel".into(), 2)];
    let resp = Response::Workers { workers: list };
    assert_eq!(
        render(&Request::Workers, &resp, Output::default()),
        joined(&[
            "Worker   RxPkts   TxPkts Sessions RedirOut  RedirIn   Busy Drops",
            "0       123456K     1000       17        0        3  42.5% no-session=3,table-full=1",
            "1             0        0        0        0        0 100.0% -",
            "Worker Counters",
            "0      rx_bytes=9000,arp_to_kernel=2",
            "1      -",
        ])
    );
}

#[test]
fn changes_print_nothing() {
    assert_eq!(
        render(&Request::Clear, &Response::Done, Output::default()),
        ""
    );
}

#[test]
fn refusals_and_mismatched_answers_are_errors() {
    let refused = Response::Error {
        kind: ErrorKind::Refused,
        message: "Service not defined".into(),
    };
    let e = format::render(&Request::Clear, &refused, &Output::default()).unwrap_err();
    assert_eq!(e, FormatError::Refused("Service not defined".into()));
    assert_eq!(e.to_string(), "Service not defined");
    let e = format::render(&list_all(), &Response::Done, &Output::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unexpected answer from rvsd: done (expected services)"
    );
    let e = format::render(
        &Request::Clear,
        &Response::Workers { workers: vec![] },
        &Output::default(),
    )
    .unwrap_err();
    assert!(matches!(e, FormatError::Unexpected { .. }), "{e}");
}

#[test]
fn save_prints_rules_in_ipvsadm_order() {
    assert_eq!(format::rules(&services()).unwrap(), joined(RULES));
    assert_eq!(format::rules(&[]).unwrap(), "");
}

#[test]
fn save_refuses_an_unknown_forwarding_method() {
    let mut svcs = services();
    svcs[1].dests[0].forward = "Carrier-Pigeon".into();
    let e = format::rules(&svcs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot save dest 10.1.0.12:8080: unknown forwarding method `Carrier-Pigeon'"
    );
}

/// The Add* requests that rebuild `services` (in ipvsadm's order).
fn adds(services: &[ServiceView]) -> Vec<Request> {
    let mut svcs: Vec<&ServiceView> = services.iter().collect();
    let number = |p: ProtoName| match p {
        ProtoName::Icmp => 1,
        ProtoName::Tcp => 6,
        ProtoName::Udp => 17,
    };
    svcs.sort_by_key(|s| (number(s.key.proto), s.key.vip, s.key.port));
    let mut out = Vec::new();
    for s in svcs {
        out.push(Request::AddService {
            service: s.key,
            scheduler: s.scheduler.clone(),
            persistence: s.persistence,
            synproxy: s.synproxy,
            proxy_protocol: s.proxy_protocol.clone(),
            toa: s.toa,
        });
        let mut dests: Vec<&DestView> = s.dests.iter().collect();
        dests.sort_by_key(|d| (d.addr, d.port));
        for d in dests {
            let mode = match d.forward.as_str() {
                "Masq" => "nat",
                "Route" => "dr",
                "Tunnel" => "tun",
                _ => "fullnat",
            };
            out.push(Request::AddDest {
                service: s.key,
                dest: proto::DestSpec {
                    addr: d.addr,
                    port: d.port,
                    weight: d.weight,
                    mode: mode.into(),
                },
            });
        }
    }
    out
}

#[test]
fn save_then_restore_gives_the_same_adds() {
    let svcs = services();
    let saved = format::rules(&svcs).unwrap();
    assert_eq!(
        cli::parse_rules(&saved).unwrap(),
        Request::Batch {
            requests: adds(&svcs)
        }
    );
}

#[test]
fn json_parses_back_to_the_payload() {
    let json = Output {
        json: true,
        ..Output::default()
    };
    let out = render(
        &list_all(),
        &Response::Services {
            services: services(),
        },
        json,
    );
    assert!(
        out.ends_with("]\n") && out.contains("\n  {"),
        "pretty: {out}"
    );
    let back: Vec<ServiceView> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, services());

    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: conns(),
            next: None,
            local: false,
        },
        json,
    );
    let back: Vec<ConnView> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, conns());

    let out = render(
        &Request::Timeouts,
        &Response::Timeouts {
            tcp: 900,
            tcpfin: 60,
            udp: 300,
        },
        json,
    );
    let back: TimeoutsView = serde_json::from_str(&out).unwrap();
    assert_eq!(
        back,
        TimeoutsView {
            tcp: 900,
            tcpfin: 60,
            udp: 300
        }
    );

    let out = render(
        &Request::Workers,
        &Response::Workers { workers: workers() },
        json,
    );
    let back: Vec<WorkerView> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, workers());
}

fn arb_forward() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("Masq"), Just("Route"), Just("Tunnel"), Just("FullNat")]
}

fn arb_service() -> impl Strategy<Value = ServiceView> {
    let dest = (any::<u32>(), any::<u16>(), arb_forward(), 0u32..=65535).prop_map(
        |(addr, port, forward, weight)| DestView {
            addr: Ipv4Addr::from(addr).into(),
            port,
            forward: forward.into(),
            weight,
            active: 0,
            inactive: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        },
    );
    (
        prop_oneof![
            Just(ProtoName::Tcp),
            Just(ProtoName::Udp),
            Just(ProtoName::Icmp)
        ],
        any::<u32>(),
        1u16..,
        prop_oneof![Just("rr"), Just("wrr"), Just("wlc"), Just("mh")],
        proptest::option::of(1u32..=cli::MAX_TIMEOUT),
        proptest::collection::vec(dest, 0..4),
    )
        .prop_map(|(proto, vip, port, sched, persistence, mut dests)| {
            let port = if proto == ProtoName::Icmp { 0 } else { port };
            for d in &mut dests {
                // What rvsd would hold: ICMP has no ports, DR and TUN keep the service port.
                if proto == ProtoName::Icmp || d.forward == "Route" || d.forward == "Tunnel" {
                    d.port = port;
                }
            }
            ServiceView {
                key: SvcKey {
                    proto,
                    vip: Ipv4Addr::from(vip).into(),
                    port,
                },
                scheduler: sched.into(),
                persistence,
                synproxy: false,
                proxy_protocol: None,
                toa: false,
                stats: Stats::default(),
                rates: Rates::default(),
                dests,
            }
        })
}

proptest! {
    #[test]
    fn any_table_survives_save_and_restore(svcs in proptest::collection::vec(arb_service(), 0..5)) {
        let saved = format::rules(&svcs).unwrap();
        prop_assert_eq!(
            cli::parse_rules(&saved).unwrap(),
            Request::Batch { requests: adds(&svcs) }
        );
    }

    #[test]
    fn rendering_never_panics(
        svcs in proptest::collection::vec(arb_service(), 0..4),
        big in any::<u64>(),
        exact in any::<bool>(),
        stats_layout in any::<bool>(),
    ) {
        let mut svcs = svcs;
        for s in &mut svcs {
            s.stats.outbytes = big;
            s.rates.inbps = big;
        }
        let output = Output { exact, stats: stats_layout, rate: !stats_layout, ..Output::default() };
        let out = format::render(&list_all(), &Response::Services { services: svcs }, &output).unwrap();
        prop_assert!(out.starts_with(&format::banner()));
    }

    #[test]
    fn parsing_random_words_never_panics(words in proptest::collection::vec("[-a-zA-Z0-9.:=é ]{0,12}", 0..8)) {
        let _ = cli::parse(&words);
        let _ = cli::parse_rules(&words.join("\n"));
    }
}

#[test]
fn lips_and_health_tables() {
    use proto::{HealthView, LipUsageView, LipWorkerView, ProtoName, SvcKey};
    use rvsadm::format::{health, lips_table};
    use std::net::Ipv4Addr;
    let workers = [
        LipWorkerView {
            id: 0,
            available: 64510,
            capacity: 64512,
        },
        LipWorkerView {
            id: 1,
            available: 64512,
            capacity: 64512,
        },
    ];
    let lips = [Ipv4Addr::new(10, 1, 0, 201), Ipv4Addr::new(10, 1, 0, 202)];
    let t = lips_table((&lips, &[]), (1024, 65535), (0, 0), &workers, &[]);
    assert_eq!(
        t,
        "Local addresses: 10.1.0.201 10.1.0.202\nLocal ports: 1024-65535\nWorker       Free      Total\n0           64510      64512\n1           64512      64512\n"
    );
    let usage = [
        LipUsageView {
            worker: 0,
            lip: lips[0].into(),
            in_use: 2,
            quarantined: 7,
            free: 516087,
        },
        LipUsageView {
            worker: 1,
            lip: lips[1].into(),
            in_use: 0,
            quarantined: 0,
            free: 516096,
        },
    ];
    let t = lips_table((&lips, &[]), (1024, 65535), (16, 60), &workers, &usage);
    assert_eq!(
        t,
        "Local addresses: 10.1.0.201 10.1.0.202\n\
         Local ports: 1024-65535 (16 pools per LIP, quarantine 60 s)\n\
         Worker       Free      Total\n\
         0           64510      64512\n\
         1           64512      64512\n\
         Worker LocalAddress         InUse Quarantine       Free\n\
         0      10.1.0.201               2          7     516087\n\
         1      10.1.0.202               0          0     516096\n"
    );
    // An IPv6 LIP: listed after the IPv4 ones, the address column as wide as it needs.
    let lip6: std::net::Ipv6Addr = "2001:db8:10:1::201".parse().unwrap();
    let mut usage6 = usage.to_vec();
    usage6.push(LipUsageView {
        worker: 0,
        lip: lip6.into(),
        in_use: 1,
        quarantined: 0,
        free: 32255,
    });
    let t = lips_table((&lips, &[lip6]), (1024, 65535), (0, 0), &workers, &usage6);
    assert_eq!(
        t,
        "Local addresses: 10.1.0.201 10.1.0.202 2001:db8:10:1::201\n\
         Local ports: 1024-65535\n\
         Worker       Free      Total\n\
         0           64510      64512\n\
         1           64512      64512\n\
         Worker LocalAddress            InUse Quarantine       Free\n\
         0      10.1.0.201                  2          7     516087\n\
         1      10.1.0.202                  0          0     516096\n\
         0      2001:db8:10:1::201          1          0      32255\n"
    );
    let h = health(&[HealthView {
        service: SvcKey {
            proto: ProtoName::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 100).into(),
            port: 80,
        },
        addr: Ipv4Addr::new(10, 1, 0, 11).into(),
        port: 8080,
        check: "http GET / = 200 every 2s timeout 1s rise 2 fall 3".into(),
        up: false,
        weight: 3,
    }]);
    assert_eq!(
        h,
        "Prot LocalAddress:Port     RemoteAddress:Port    State Weight Check\nTCP  192.0.2.100:80        10.1.0.11:8080        DOWN       3 http GET / = 200 every 2s timeout 1s rise 2 fall 3\n"
    );
}

#[test]
fn managed_addresses_table_and_request() {
    use proto::{AddressView, Request};
    let list = [
        AddressView {
            addr: Ipv4Addr::new(192, 0, 2, 100),
            role: "vip".into(),
            owned: true,
            interface: Some("wan0".into()),
        },
        AddressView {
            addr: Ipv4Addr::new(10, 1, 0, 201),
            role: "lip".into(),
            owned: false,
            interface: None,
        },
    ];
    assert_eq!(
        format::addresses(&list),
        "Address         Role State   Interface\n\
         192.0.2.100     vip  owned   wan0\n\
         10.1.0.201      lip  standby -\n"
    );
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match cli::parse(&args(&["--addresses", "--json"])).unwrap() {
        cli::Invocation::Request { request, output } => {
            assert_eq!(request, Request::Addresses);
            assert!(output.json);
        }
        other => panic!("{other:?}"),
    }
    assert!(cli::parse(&args(&["--addresses", "-t", "192.0.2.1:80"])).is_err());
}

#[test]
fn cluster_view_and_drain_words() {
    let view = proto::ClusterView {
        phase: "serving".into(),
        phase_ms: 12_345,
        table: 100,
        interface: "rvswan".into(),
        routes: vec![
            proto::RouteView {
                addr: Ipv4Addr::new(198, 51, 100, 100),
                metric: 32,
                role: "vip".into(),
            },
            proto::RouteView {
                addr: Ipv4Addr::new(10, 1, 0, 202),
                metric: 64,
                role: "peer-lip".into(),
            },
        ],
        drain: String::new(),
        route_errors: 0,
        daemons: Vec::new(),
        peers: Vec::new(),
        backlog: 0,
        view_services: 2,
        view_digest: "bcfdd98fce762e73".into(),
    };
    let resp = Response::Cluster {
        cluster: Box::new(view.clone()),
    };
    assert_eq!(
        render(&Request::Cluster, &resp, Output::default()),
        "cluster: serving for 12.3 s, routes in table 100 dev rvswan\n\
         services: 2, view bcfdd98fce762e73\n\
         Announced          Metric Role\n\
         198.51.100.100/32  32     vip\n\
         10.1.0.202/32      64     peer-lip\n\
         no sync daemon\n"
    );
    let json = render(
        &Request::Cluster,
        &resp,
        Output {
            json: true,
            ..Output::default()
        },
    );
    let back: proto::ClusterView = serde_json::from_str(&json).unwrap();
    assert_eq!(back, view);
    // With sync: each peer's bulk sync and whether its services agree with this director's.
    let peer = |addr: &str, agrees: Option<bool>| proto::SyncPeerView {
        sender: 0x0a01_0016,
        addr: addr.into(),
        seq: 9,
        datagrams: 40,
        last_heard_ms: 300,
        bulk_complete: agrees.is_some(),
        view_services: agrees.map(|_| 2),
        view_digest: agrees.map(|_| "00000000deadbeef".into()),
        view_agrees: agrees,
    };
    let synced = proto::ClusterView {
        routes: Vec::new(),
        daemons: vec![proto::DaemonView {
            role: proto::DaemonRole::Master,
            interface: "rvslan".into(),
            sync_id: 15,
            group: Ipv4Addr::new(224, 0, 0, 81),
            port: 8848,
            peers: Vec::new(),
            maxlen: 1472,
            ttl: 1,
            refresh_secs: 10,
            sender: 0x0a01_0015,
        }],
        peers: vec![
            peer("10.1.0.22:8848", Some(true)),
            peer("10.1.0.23:8848", Some(false)),
            peer("10.1.0.24:8848", None),
        ],
        ..view.clone()
    };
    assert_eq!(
        render(
            &Request::Cluster,
            &Response::Cluster {
                cluster: Box::new(synced)
            },
            Output::default()
        ),
        "cluster: serving for 12.3 s, routes in table 100 dev rvswan\n\
         services: 2, view bcfdd98fce762e73\n\
         Announced          Metric Role\n\
         peer 10.1.0.22:8848 sender 0a010016: 40 datagrams, heard 300 ms ago, bulk sync complete, services agree\n\
         peer 10.1.0.23:8848 sender 0a010016: 40 datagrams, heard 300 ms ago, bulk sync complete, services DIFFER (2 services, view 00000000deadbeef)\n\
         peer 10.1.0.24:8848 sender 0a010016: 40 datagrams, heard 300 ms ago, bulk sync pending, no view heard\n\
         sync: master (3 peers heard), backlog 0 records\n"
    );
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (line, want) in [(&["--drain"][..], None), (&["--drain", "20"][..], Some(20))] {
        match cli::parse(&args(line)).unwrap() {
            cli::Invocation::Request { request, .. } => {
                assert_eq!(request, Request::Drain { timeout_secs: want })
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(cli::parse(&args(&["--drain", "0"])).is_err());
    assert!(cli::parse(&args(&["--drain", "-t", "192.0.2.1:80"])).is_err());
    assert!(cli::parse(&args(&["--cluster", "-t", "192.0.2.1:80"])).is_err());
}

#[test]
fn proxy_protocol_is_listed_and_saved() {
    let svc = ServiceView {
        key: key(ProtoName::Tcp, 5, 80),
        scheduler: "rr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: Some("v2".into()),
        toa: false,
        stats: stats(Z),
        rates: rates(Z),
        dests: vec![dest(11, 8080, "FullNat", 1, 0, 0, Z, Z)],
    };
    let list = render(
        &Request::List { service: None },
        &Response::Services {
            services: vec![svc.clone()],
        },
        Output::default(),
    );
    assert!(
        list.lines()
            .any(|l| l == "TCP  192.0.2.5:80 rr proxy-protocol v2"),
        "{list}"
    );
    let toa = ServiceView {
        key: key(ProtoName::Tcp, 6, 80),
        proxy_protocol: None,
        toa: true,
        ..svc.clone()
    };
    let listed = render(
        &Request::List { service: None },
        &Response::Services {
            services: vec![toa.clone()],
        },
        Output::default(),
    );
    assert!(
        listed.lines().any(|l| l == "TCP  192.0.2.6:80 rr toa"),
        "{listed}"
    );
    assert_eq!(
        format::rules(&[toa]).unwrap().lines().next(),
        Some("-A -t 192.0.2.6:80 -s rr --toa")
    );
    let save = format::rules(&[svc]).unwrap();
    assert_eq!(
        save.lines().next(),
        Some("-A -t 192.0.2.5:80 -s rr --proxy-protocol v2")
    );
    // What -S writes, -R reads back as the same request.
    let words: Vec<String> = save
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .map(String::from)
        .collect();
    match cli::parse(&words).unwrap() {
        cli::Invocation::Request { request, .. } => match request {
            Request::AddService { proxy_protocol, .. } => {
                assert_eq!(proxy_protocol.as_deref(), Some("v2"))
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// `2001:db8:<third>::<last>`.
fn ip6(third: u16, last: u16) -> std::net::IpAddr {
    std::net::Ipv6Addr::new(0x2001, 0xdb8, third, 0, 0, 0, 0, last).into()
}

/// `2001:db8:1234:5678:9abc:def0:1234:<last>`: as long as an IPv6 address gets.
fn long6(last: u16) -> std::net::IpAddr {
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x1234, 0x5678, 0x9abc, 0xdef0, 0x1234, last).into()
}

fn key6(proto: ProtoName, vip: std::net::IpAddr, port: u16) -> SvcKey {
    SvcKey { proto, vip, port }
}

fn dest6(addr: std::net::IpAddr, port: u16, forward: &str, weight: u32) -> DestView {
    DestView {
        addr,
        ..dest(0, port, forward, weight, 0, 0, Z, Z)
    }
}

fn service6(key: SvcKey, scheduler: &str, dests: Vec<DestView>) -> ServiceView {
    ServiceView {
        key,
        scheduler: scheduler.into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
        stats: stats(Z),
        rates: rates(Z),
        dests,
    }
}

/// IPv6 services in rvsd's order, with one IPv4 service that ipvsadm lists first (it sorts
/// by family before protocol): TCP `[2001:db8::10]:80` with its dests out of order, TCP on
/// the longest address there is, IPv4 UDP, and IPv6 ICMP.
fn v6_services() -> Vec<ServiceView> {
    let mut masq = dest6(ip6(1, 0x12), 8080, "Masq", 2);
    masq.active = 3;
    masq.inactive = 4;
    masq.stats = stats([7, 10, 20, 1000, 2000]);
    let mut web = service6(
        key6(ProtoName::Tcp, ip6(0, 0x10), 80),
        "wrr",
        vec![masq, dest6(ip6(1, 0x11), 80, "Route", 1)],
    );
    web.stats = stats([7, 10, 20, 1000, 2000]);
    web.rates = rates([1, 2, 3, 987_654_321, 5]);
    vec![
        web,
        service6(
            key6(ProtoName::Tcp, long6(0x5678), 65535),
            "rr",
            vec![dest6(long6(0xffff), 65535, "Route", 1)],
        ),
        service6(
            key(ProtoName::Udp, 2, 53),
            "rr",
            vec![dest(21, 53, "Route", 1, 0, 0, Z, Z)],
        ),
        service6(
            key6(ProtoName::Icmp, ip6(0, 9), 0),
            "rr",
            vec![dest6(ip6(1, 0x31), 0, "Route", 1)],
        ),
    ]
}

#[test]
fn ipv6_is_listed_in_brackets_after_ipv4_like_ipvsadm() {
    let out = render(
        &list_all(),
        &Response::Services {
            services: v6_services(),
        },
        Output {
            numeric: true,
            ..Output::default()
        },
    );
    assert_eq!(
        out,
        with_banner(&[
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "UDP  192.0.2.2:53 rr",
            "  -> 10.1.0.21:53                 Route   1      0          0         ",
            "ICMP [2001:db8::9]:0 rr",
            "  -> [2001:db8:1::31]:0           Route   1      0          0         ",
            "TCP  [2001:db8::10]:80 wrr",
            "  -> [2001:db8:1::11]:80          Route   1      0          0         ",
            "  -> [2001:db8:1::12]:8080        Masq    2      3          4         ",
            "TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 rr",
            "  -> [2001:db8:1234:5678:9abc:def0:1234:ffff]:65535 Route   1      0          0         ",
        ])
    );
}

#[test]
fn ipv6_stats_and_rates_push_the_numbers_right_as_ipvsadm_does() {
    let resp = Response::Services {
        services: v6_services(),
    };
    let stats = Output {
        stats: true,
        ..Output::default()
    };
    assert_eq!(
        render(&list_all(), &resp, stats),
        with_banner(&[
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
            "UDP  192.0.2.2:53                        0        0        0        0        0",
            "  -> 10.1.0.21:53                        0        0        0        0        0",
            "ICMP [2001:db8::9]:0                     0        0        0        0        0",
            "  -> [2001:db8:1::31]:0                  0        0        0        0        0",
            "TCP  [2001:db8::10]:80                   7       10       20     1000     2000",
            "  -> [2001:db8:1::11]:80                 0        0        0        0        0",
            "  -> [2001:db8:1::12]:8080               7       10       20     1000     2000",
            "TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535        0        0        0        0        0",
            "  -> [2001:db8:1234:5678:9abc:def0:1234:ffff]:65535        0        0        0        0        0",
        ])
    );
    let rate = Output {
        rate: true,
        ..Output::default()
    };
    let out = render(&list_all(), &resp, rate);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[7],
        "TCP  [2001:db8::10]:80                   1        2        3  987654K        5"
    );
    let exact = Output {
        exact: true,
        ..rate
    };
    let out = render(&list_all(), &resp, exact);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[7],
        "TCP  [2001:db8::10]:80                   1        2        3 987654321        5"
    );
}

/// A session between IPv6 endpoints (client `2001:db8:ff::<client>`).
fn conn6(
    expire_secs: u64,
    state: &str,
    client: (u16, u16),
    rs: (u16, u16),
    local: Option<(std::net::IpAddr, u16)>,
) -> ConnView {
    ConnView {
        proto: ProtoName::Tcp,
        expire_secs,
        state: state.into(),
        source: ip6(0xff, client.0),
        sport: client.1,
        vip: ip6(0, 0x10),
        vport: 80,
        dest: ip6(1, rs.0),
        dport: rs.1,
        local,
        worker: 0,
    }
}

#[test]
fn ipv6_connections_are_bracketed_like_ipvsadm_lnc() {
    let established = conn6(899, "ESTABLISHED", (7, 51234), (0x12, 8080), None);
    let conns = Response::Connections {
        conns: vec![established.clone()],
        next: None,
        local: false,
    };
    let request = Request::Connections { from: None };
    assert_eq!(
        render(&request, &conns, Output::default()),
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 14:59  ESTABLISHED [2001:db8:ff::7]:51234 [2001:db8::10]:80  [2001:db8:1::12]:8080",
        ])
    );
    let fullnat = conn6(
        59,
        "SYN_RECV",
        (9, 40000),
        (0x11, 80),
        Some((ip6(2, 1), 1025)),
    );
    let conns = Response::Connections {
        conns: vec![established, fullnat],
        next: None,
        local: true,
    };
    assert_eq!(
        render(&request, &conns, Output::default()),
        joined(&[
            "RVS connection entries",
            "pro expire state       source             virtual            destination        local",
            "TCP 14:59  ESTABLISHED [2001:db8:ff::7]:51234 [2001:db8::10]:80  [2001:db8:1::12]:8080 -",
            "TCP 00:59  SYN_RECV    [2001:db8:ff::9]:40000 [2001:db8::10]:80  [2001:db8:1::11]:80 [2001:db8:2::1]:1025",
        ])
    );
}

#[test]
fn ipv6_health_is_bracketed() {
    let h = format::health(&[proto::HealthView {
        service: key6(ProtoName::Tcp, ip6(0, 0x10), 80),
        addr: ip6(1, 0x11),
        port: 8080,
        check: "tcp connect every 2s".into(),
        up: true,
        weight: 1,
    }]);
    assert_eq!(
        h,
        joined(&[
            "Prot LocalAddress:Port     RemoteAddress:Port    State Weight Check",
            "TCP  [2001:db8::10]:80     [2001:db8:1::11]:8080 UP         1 tcp connect every 2s",
        ])
    );
}

#[test]
fn ipv6_save_writes_brackets_and_restores_to_the_same_requests() {
    let saved = format::rules(&v6_services()).unwrap();
    assert_eq!(
        saved,
        joined(&[
            "-A -u 192.0.2.2:53 -s rr",
            "-a -u 192.0.2.2:53 -r 10.1.0.21:53 -g -w 1",
            "-A --icmp [2001:db8::9] -s rr",
            "-a --icmp [2001:db8::9] -r [2001:db8:1::31] -g -w 1",
            "-A -t [2001:db8::10]:80 -s wrr",
            "-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:80 -g -w 1",
            "-a -t [2001:db8::10]:80 -r [2001:db8:1::12]:8080 -m -w 2",
            "-A -t [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -s rr",
            "-a -t [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 \
             -r [2001:db8:1234:5678:9abc:def0:1234:ffff]:65535 -g -w 1",
        ])
    );
    let add_service = |service: SvcKey, scheduler: &str| Request::AddService {
        service,
        scheduler: scheduler.into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    };
    let add_dest = |service: SvcKey, addr, port, weight, mode: &str| Request::AddDest {
        service,
        dest: proto::DestSpec {
            addr,
            port,
            weight,
            mode: mode.into(),
        },
    };
    let udp = key(ProtoName::Udp, 2, 53);
    let icmp = key6(ProtoName::Icmp, ip6(0, 9), 0);
    let web = key6(ProtoName::Tcp, ip6(0, 0x10), 80);
    let long = key6(ProtoName::Tcp, long6(0x5678), 65535);
    assert_eq!(
        cli::parse_rules(&saved).unwrap(),
        Request::Batch {
            requests: vec![
                add_service(udp, "rr"),
                add_dest(udp, Ipv4Addr::new(10, 1, 0, 21).into(), 53, 1, "dr"),
                add_service(icmp, "rr"),
                add_dest(icmp, ip6(1, 0x31), 0, 1, "dr"),
                add_service(web, "wrr"),
                add_dest(web, ip6(1, 0x11), 80, 1, "dr"),
                add_dest(web, ip6(1, 0x12), 8080, 2, "nat"),
                add_service(long, "rr"),
                add_dest(long, long6(0xffff), 65535, 1, "dr"),
            ]
        }
    );
}

#[test]
fn ipv6_icmp_rules_stay_unambiguous() {
    // `2001:db8::1:80` bare would read as an address and a port: -S brackets it.
    let vip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x80).into();
    let svc = service6(
        key6(ProtoName::Icmp, vip, 0),
        "rr",
        vec![dest6(ip6(1, 0x80), 0, "Route", 1)],
    );
    let saved = format::rules(std::slice::from_ref(&svc)).unwrap();
    assert_eq!(
        saved,
        "-A --icmp [2001:db8::1:80] -s rr\n-a --icmp [2001:db8::1:80] -r [2001:db8:1::80] -g -w 1\n"
    );
    assert_eq!(
        cli::parse_rules(&saved).unwrap(),
        Request::Batch {
            requests: adds(&[svc])
        }
    );
}

#[test]
fn ipv6_json_addresses_are_plain_strings() {
    let json = Output {
        json: true,
        ..Output::default()
    };
    let out = render(
        &list_all(),
        &Response::Services {
            services: v6_services(),
        },
        json,
    );
    assert!(out.contains("\"vip\": \"2001:db8::10\","), "{out}");
    assert!(out.contains("\"addr\": \"2001:db8:1::11\","), "{out}");
    assert!(out.contains("\"vip\": \"192.0.2.2\","), "{out}");
    let back: Vec<ServiceView> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, v6_services());

    let conns = vec![conn6(
        59,
        "SYN_RECV",
        (9, 40000),
        (0x11, 80),
        Some((ip6(2, 1), 1025)),
    )];
    let out = render(
        &Request::Connections { from: None },
        &Response::Connections {
            conns: conns.clone(),
            next: None,
            local: true,
        },
        json,
    );
    assert!(out.contains("\"source\": \"2001:db8:ff::9\","), "{out}");
    assert!(out.contains("\"dest\": \"2001:db8:1::11\","), "{out}");
    assert!(out.contains("\"2001:db8:2::1\","), "{out}");
    let back: Vec<ConnView> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, conns);
}

/// [`arb_service`] on IPv6 addresses.
fn arb_service6() -> impl Strategy<Value = ServiceView> {
    (
        arb_service(),
        any::<u128>(),
        proptest::collection::vec(any::<u128>(), 4),
    )
        .prop_map(|(mut svc, vip, addrs)| {
            svc.key.vip = std::net::Ipv6Addr::from(vip).into();
            for (d, a) in svc.dests.iter_mut().zip(addrs) {
                d.addr = std::net::Ipv6Addr::from(a).into();
            }
            svc
        })
}

proptest! {
    #[test]
    fn any_ipv6_table_survives_save_and_restore(
        svcs in proptest::collection::vec(arb_service6(), 0..5)
    ) {
        let saved = format::rules(&svcs).unwrap();
        prop_assert_eq!(
            cli::parse_rules(&saved).unwrap(),
            Request::Batch { requests: adds(&svcs) }
        );
    }

    #[test]
    fn ipv6_like_words_never_panic(
        words in proptest::collection::vec("[-\\[\\]0-9a-f:.%tr]{0,24}", 0..6)
    ) {
        let _ = cli::parse(&words);
        let mut line = vec!["-a".to_owned(), "-t".to_owned()];
        line.extend(words.iter().cloned());
        let _ = cli::parse(&line);
        let _ = cli::parse_rules(&words.join(" "));
    }
}

/// An IPv6 service with the PROXY protocol (with the SYN proxy) or TOA: listed and saved
/// with the option after the bracketed VIP, and what -S writes -R reads back.
#[test]
fn an_ipv6_services_proxy_protocol_and_toa_are_listed_and_saved() {
    let pp = ServiceView {
        synproxy: true,
        proxy_protocol: Some("v1".into()),
        ..service6(
            key6(ProtoName::Tcp, ip6(0, 0x10), 80),
            "rr",
            vec![
                dest6(ip6(1, 0x11), 8081, "FullNat", 1),
                dest(11, 8081, "FullNat", 1, 0, 0, Z, Z),
            ],
        )
    };
    let toa = ServiceView {
        key: key6(ProtoName::Tcp, ip6(0, 0x11), 80),
        synproxy: false,
        proxy_protocol: None,
        toa: true,
        ..pp.clone()
    };
    let list = render(
        &Request::List { service: None },
        &Response::Services {
            services: vec![pp.clone(), toa.clone()],
        },
        Output {
            numeric: true,
            ..Output::default()
        },
    );
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines.contains(&"TCP  [2001:db8::10]:80 rr synproxy proxy-protocol v1"),
        "{list}"
    );
    assert!(lines.contains(&"TCP  [2001:db8::11]:80 rr toa"), "{list}");
    let save = format::rules(&[pp, toa]).unwrap();
    let adds: Vec<&str> = save.lines().filter(|l| l.starts_with("-A")).collect();
    assert_eq!(
        adds,
        [
            "-A -t [2001:db8::10]:80 -s rr -j enable --proxy-protocol v1",
            "-A -t [2001:db8::11]:80 -s rr --toa",
        ],
        "{save}"
    );
    for (line, want_pp, want_toa) in [(adds[0], Some("v1"), false), (adds[1], None, true)] {
        let words: Vec<String> = line.split(' ').map(String::from).collect();
        match cli::parse(&words).unwrap() {
            cli::Invocation::Request {
                request:
                    Request::AddService {
                        proxy_protocol,
                        toa,
                        ..
                    },
                ..
            } => assert_eq!((proxy_protocol.as_deref(), toa), (want_pp, want_toa)),
            other => panic!("{other:?}"),
        }
    }
}
