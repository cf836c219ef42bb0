//! rvsd in a cluster (`[cluster]`), as a process with a real kernel: the host routes it keeps
//! for BIRD in a kernel table follow what it can serve (a VIP only while a service of it has
//! a dest with weight above 0, its own LIPs, the peers' LIPs with the backup metric);
//! `rvsadm --cluster` lists them; `rvsadm --drain` (or SIGUSR1) withdraws them all and rvsd
//! exits; and a killed rvsd takes its routes with it (they point at its TAP).

mod common;

use common::{rvsadm_bin, Rvsd};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn rvsadm(sock: &Path, args: &[&str]) -> Output {
    Command::new(rvsadm_bin())
        .args(args)
        .env("RVS_SOCKET", sock)
        .output()
        .expect("run rvsadm")
}

fn ok(sock: &Path, args: &[&str]) -> String {
    let o = rvsadm(sock, args);
    assert!(
        o.status.success(),
        "rvsadm {args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The routes of protocol 250 (rvsd's) in `table`: "addr metric" each, sorted.
fn routes(table: u32) -> Vec<String> {
    let o = Command::new("ip")
        .args(["route", "show", "table", &table.to_string(), "proto", "250"])
        .output()
        .expect("ip route");
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let metric = w
                .iter()
                .position(|x| *x == "metric")
                .and_then(|i| w.get(i + 1))
                .copied()
                .unwrap_or("?");
            format!("{} {metric}", w[0])
        })
        .collect();
    v.sort();
    v
}

/// Waits (5 s at most) until the table holds exactly `want`.
fn wait_routes(table: u32, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = routes(table);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "table {table}: {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(tag: &str, table: u32) -> impl Fn(&Path) -> String {
    let pid = std::process::id();
    let tap = format!("rvc{tag}{}", pid % 10_000);
    let tag = tag.to_string();
    move |dir: &Path| {
        format!(
            r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", "rvsd-cl{tag}{pid}"]

[daemon]
table_capacity = 1024
mbufs = 2047
socket = "{dir}/rvsd.sock"
metrics = "off"

[[port]]
name = "lan"
device = "net_tap9,iface={tap}d"
exception = "{tap}"

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[fullnat]
lips = ["10.1.0.201"]

[cluster]
table = {table}
peer_lips = ["10.1.0.202", "10.1.0.203"]
settle = 0.3
drain_timeout = 10

[[service]]
proto = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "mh"
  [[service.dest]]
  addr = "10.1.0.11"
  port = 80
  mode = "fullnat"
"#,
            dir = dir.display()
        )
    }
}

/// A table number of this test run's own.
fn table(n: u32) -> u32 {
    10_000 + (std::process::id() % 10_000) * 4 + n
}

#[test]
fn announcements_follow_the_services_and_a_drain_withdraws_them() {
    let t = table(0);
    let rvsd = Rvsd::start("ann", config("a", t), &["rvsd.sock"]);
    let sock = rvsd.dir.join("rvsd.sock");
    let all = [
        "10.1.0.201 32",
        "10.1.0.202 64",
        "10.1.0.203 64",
        "192.0.2.100 32",
    ];
    wait_routes(t, &all);
    let view = ok(&sock, &["--cluster"]);
    assert!(view.starts_with("cluster: serving"), "{view}");
    assert!(view.contains("192.0.2.100/32     32     vip"), "{view}");
    assert!(
        view.contains("10.1.0.202/32      64     peer-lip"),
        "{view}"
    );
    assert!(view.contains("no sync daemon"), "{view}");

    // Its only dest drained: the VIP is withdrawn; the LIPs stay (replies still come).
    ok(
        &sock,
        &[
            "-e",
            "-t",
            "192.0.2.100:80",
            "-r",
            "10.1.0.11:80",
            "--fullnat",
            "-w",
            "0",
        ],
    );
    wait_routes(t, &all[..3]);
    ok(
        &sock,
        &[
            "-e",
            "-t",
            "192.0.2.100:80",
            "-r",
            "10.1.0.11:80",
            "--fullnat",
            "-w",
            "2",
        ],
    );
    wait_routes(t, &all);
    // The service deleted: withdrawn; a new one with a dest: announced again.
    ok(&sock, &["-D", "-t", "192.0.2.100:80"]);
    wait_routes(t, &all[..3]);
    ok(&sock, &["-A", "-t", "192.0.2.100:80", "-s", "mh"]);
    wait_routes(t, &all[..3]);
    ok(
        &sock,
        &[
            "-a",
            "-t",
            "192.0.2.100:80",
            "-r",
            "10.1.0.11:80",
            "--fullnat",
        ],
    );
    wait_routes(t, &all);

    // The drain: everything withdrawn, rvsd exits by itself, rvsadm reports it.
    let started = Instant::now();
    let out = ok(&sock, &["--drain", "8"]);
    assert!(out.contains("drained in"), "{out}");
    assert!(out.contains("rvsd has exited"), "{out}");
    assert!(routes(t).is_empty(), "{:?}", routes(t));
    assert!(started.elapsed() < Duration::from_secs(8), "{out}");
    let stopped = rvsd.stop_exited();
    assert!(stopped.status.success(), "{}", stopped.err);
    assert!(
        stopped.err.contains("cluster: drain over"),
        "{}",
        stopped.err
    );
}

#[test]
fn a_killed_rvsd_takes_its_routes_along() {
    let t = table(1);
    let mut rvsd = Rvsd::start("kill", config("k", t), &["rvsd.sock"]);
    wait_routes(
        t,
        &[
            "10.1.0.201 32",
            "10.1.0.202 64",
            "10.1.0.203 64",
            "192.0.2.100 32",
        ],
    );
    rvsd.child.kill().expect("kill -9");
    rvsd.child.wait().expect("wait");
    wait_routes(t, &[]);
}

#[test]
fn sigusr1_drains_and_rvsd_exits() {
    let t = table(2);
    let rvsd = Rvsd::start("usr1", config("u", t), &["rvsd.sock"]);
    wait_routes(
        t,
        &[
            "10.1.0.201 32",
            "10.1.0.202 64",
            "10.1.0.203 64",
            "192.0.2.100 32",
        ],
    );
    let st = Command::new("kill")
        .args(["-USR1", &rvsd.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    // Withdrawn at once, then rvsd stops by itself after settle (0.3 s).
    wait_routes(t, &[]);
    let stopped = rvsd.stop_exited();
    assert!(stopped.status.success(), "{}", stopped.err);
    assert!(stopped.err.contains("drained in"), "{}", stopped.err);
    assert!(stopped.out.contains("worker 0 "), "{}", stopped.out);
}

#[test]
fn drain_without_a_cluster_is_refused() {
    let pid = std::process::id();
    let rvsd = Rvsd::start(
        "nocl",
        |dir: &Path| {
            format!(
                r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", "rvsd-nocl{pid}"]
[daemon]
table_capacity = 1024
mbufs = 2047
socket = "{dir}/rvsd.sock"
metrics = "off"
[[port]]
name = "lan"
device = "net_ring0"
[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]
"#,
                dir = dir.display()
            )
        },
        &["rvsd.sock"],
    );
    let sock = rvsd.dir.join("rvsd.sock");
    let o = rvsadm(&sock, &["--drain"]);
    assert_eq!(o.status.code(), Some(255), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not in a cluster"), "{err}");
    let o = rvsadm(&sock, &["--cluster"]);
    assert!(!o.status.success());
    // Still running and serving its socket.
    ok(&sock, &["-L", "-n"]);
    drop(rvsd);
}
