//! The port view of a running rvsd: this test process is the other end of rvsd's vhost-user
//! port and sends it ARP requests; `rvsadm --ports` (table and JSON) and the metrics endpoint
//! then show the port's link up and its packets received and sent.

mod common;

use common::{rvsadm_bin, Peer, Rvsd};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::*;

/// A free port on 127.0.0.1 for the metrics listener.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn scrape(port: u16) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: rvsd\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).expect("answer");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}

/// The value of the sample `series` (name and labels as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn ports_and_metrics_show_link_and_traffic() {
    let pid = std::process::id();
    let metrics = free_port();
    let config = |dir: &std::path::Path| {
        format!(
            r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "512", "--single-file-segments", "--file-prefix", "rvsd-p{pid}"]

[daemon]
table_capacity = 1024
mbufs = 4095
socket = "{dir}/rvsd.sock"
metrics = "127.0.0.1:{metrics}"

[[port]]
name = "wan"
device = "net_vhost0,iface={dir}/wan.sock,queues=1"

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]
"#,
            dir = dir.display()
        )
    };
    let rvsd = Rvsd::start("ports", config, &["wan.sock", "rvsd.sock"]);
    let mut p = Peer::start(
        "ports",
        &[(rvsd.dir.join("wan.sock"), "02:00:00:00:fe:fe")],
        1,
    );
    p.resolve(0, ROUTER_MAC, ROUTER, DIP_WAN);
    for _ in 0..5 {
        p.resolve(0, ROUTER_MAC, ROUTER, DIP_WAN);
    }

    // Published about once a second: wait for a reading with the traffic in it.
    let adm = |args: &[&str]| {
        let o = Command::new(rvsadm_bin())
            .args(args)
            .env("RVS_SOCKET", rvsd.dir.join("rvsd.sock"))
            .output()
            .expect("run rvsadm");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let ports = loop {
        let json: serde_json::Value = serde_json::from_str(&adm(&["--ports", "--json"])).unwrap();
        let wan = json[0].clone();
        if wan["rx_packets"].as_u64().unwrap_or(0) >= 6 && wan["tx_packets"].as_u64() >= Some(6) {
            break json;
        }
        assert!(
            Instant::now() < deadline,
            "no traffic in the port view: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
    let wan = &ports[0];
    assert_eq!(wan["name"], "wan");
    assert_eq!(wan["link_up"], true, "{wan}");
    assert!(wan["rx_bytes"].as_u64().unwrap() >= 6 * 60, "{wan}");

    let table = adm(&["--ports"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("wan "))
        .unwrap_or_else(|| panic!("no wan row: {table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "UP", "{table}");
    assert!(row[3].parse::<u64>().unwrap() >= 6, "{table}");

    let text = scrape(metrics);
    assert_eq!(
        sample(&text, "rvs_port_link_up{port=\"wan\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "rvs_port_rx_packets_total{port=\"wan\"}").is_some_and(|v| v >= 6.0),
        "{text}"
    );
    assert!(
        sample(&text, "rvs_port_tx_bytes_total{port=\"wan\"}").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rvs_port_rx_nombuf_total{port=\"wan\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "rvs_mbufs_capacity").is_some_and(|v| v >= 4095.0),
        "{text}"
    );
    let stopped = rvsd.stop();
    assert!(stopped.status.success(), "{}", stopped.err);
}
