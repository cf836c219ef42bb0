//! Health checks through the exception path, against a real server in a network namespace.
//!
//! rvsd runs inside a director namespace with one `net_af_packet` port on a veth whose peer is
//! in a real-server namespace; an HTTP server (Python's http.server) listens there. rvsd gives
//! its kernel the DIP on the exception TAP (`kernel_addresses`), so the health check's kernel
//! TCP connection goes kernel → TAP → rvsd → veth → server and back the same way. Stopping the
//! server takes the dest to weight 0 within fall × interval; starting it brings the configured
//! weight back.

mod common;

use proto::{Envelope, Request, Response};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Lab {
    dir_ns: String,
    rs_ns: String,
    tmp: std::path::PathBuf,
    rvsd: Option<Child>,
    server: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in [self.rvsd.take(), self.server.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.dir_ns, &self.rs_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

fn start_server(rs_ns: &str) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            rs_ns,
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "10.1.0.11",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start http.server")
}

fn call(sock: &Path, request: Request) -> Option<Response> {
    let mut c = UnixStream::connect(sock).ok()?;
    proto::write_frame(
        &mut c,
        &Envelope {
            version: proto::VERSION,
            request,
        },
    )
    .ok()?;
    proto::decode_response(&proto::read_frame_bytes(&mut c).ok()?).ok()
}

fn weight(sock: &Path) -> Option<u32> {
    match call(sock, Request::List { service: None })? {
        Response::Services { services } => services.first()?.dests.first().map(|d| d.weight),
        _ => None,
    }
}

fn wait_for_weight(sock: &Path, want: u32, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if weight(sock) == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "weight did not become {want} within {within:?} (now {:?})",
            weight(sock)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stopped_server_leaves_and_comes_back() {
    let pid = std::process::id();
    let tag = pid % 100_000;
    let mut lab = Lab {
        dir_ns: format!("rvshd{tag}"),
        rs_ns: format!("rvshr{tag}"),
        tmp: std::env::temp_dir().join(format!("rvsd-health-{pid}")),
        rvsd: None,
        server: None,
    };
    let _ = std::fs::remove_dir_all(&lab.tmp);
    std::fs::create_dir_all(&lab.tmp).unwrap();
    let (vd, vr, tap) = (format!("vd{tag}"), format!("vr{tag}"), format!("th{tag}"));
    ip(&["netns", "add", &lab.dir_ns]);
    ip(&["netns", "add", &lab.rs_ns]);
    ip(&[
        "link",
        "add",
        &vd,
        "netns",
        &lab.dir_ns,
        "type",
        "veth",
        "peer",
        "name",
        &vr,
        "netns",
        &lab.rs_ns,
    ]);
    ip(&["-n", &lab.dir_ns, "link", "set", "lo", "up"]);
    ip(&["-n", &lab.dir_ns, "link", "set", &vd, "up"]);
    // The director's kernel must not use the veth rvsd owns: no ARP answers there, and
    // packets arriving on it directly fail the reverse-path check (its route to the servers
    // is the TAP). Everything the health checks get has then come through rvsd.
    for (key, v) in [("arp_ignore", "8"), ("rp_filter", "1")] {
        {
            let dev = vd.as_str();
            let st = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.dir_ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv4.conf.{dev}.{key}={v}"),
                ])
                .status()
                .expect("sysctl");
            assert!(st.success());
        }
    }
    ip(&["-n", &lab.rs_ns, "link", "set", "lo", "up"]);
    ip(&["-n", &lab.rs_ns, "addr", "add", "10.1.0.11/24", "dev", &vr]);
    ip(&["-n", &lab.rs_ns, "link", "set", &vr, "up"]);
    // veth leaves TCP/UDP checksums to "offload": frames captured on the other end (rvsd's
    // af_packet port) would carry unfinished checksums, which the director's kernel rejects
    // when rvsd hands them over. Real NICs deliver complete ones; on a veth lab, turn it off.
    let st = Command::new("ip")
        .args([
            "netns", "exec", &lab.rs_ns, "ethtool", "-K", &vr, "tx", "off",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("ethtool");
    assert!(st.success());
    lab.server = Some(start_server(&lab.rs_ns));

    let sock = lab.tmp.join("rvsd.sock");
    let config = format!(
        r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", "rvsd-h{pid}"]

[daemon]
table_capacity = 1024
mbufs = 2047
socket = "{sock}"
metrics = "off"
kernel_addresses = true

[[port]]
name = "lan"
device = "net_af_packet0,iface={vd}"
exception = "{tap}"

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[[service]]
proto = "tcp"
vip = "10.1.0.100"
port = 80
  [[service.dest]]
  addr = "10.1.0.11"
  port = 8080
  weight = 4
  mode = "nat"
  [service.check]
  type = "http"
  path = "/"
  interval = 0.3
  timeout = 0.3
  rise = 2
  fall = 2
"#,
        sock = sock.display()
    );
    let path = lab.tmp.join("rvsd.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(lab.tmp.join("rvsd.log")).unwrap();
    lab.rvsd = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.dir_ns,
                env!("CARGO_BIN_EXE_rvsd"),
                "--config",
            ])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start rvsd"),
    );
    let log = || std::fs::read_to_string(lab.tmp.join("rvsd.log")).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(30);
    while weight(&sock).is_none() {
        assert!(
            Instant::now() < until,
            "rvsd's control socket never answered:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Up: the checks pass through rvs and the configured weight stays.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(weight(&sock), Some(4), "{}", log());

    // Down: the server stops; fall × interval = 0.6 s (+ probe timeouts and scheduling).
    let mut server = lab.server.take().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let took = wait_for_weight(&sock, 0, Duration::from_secs(5));
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(log().contains("dest is DOWN"), "{}", log());
    match call(&sock, Request::Health) {
        Some(Response::Health { dests }) => {
            assert_eq!(dests.len(), 1);
            assert_eq!(
                (dests[0].up, dests[0].weight),
                (false, 4),
                "configured weight kept"
            );
            assert!(
                dests[0].check.starts_with("http GET / = 200"),
                "{}",
                dests[0].check
            );
        }
        other => panic!("{other:?}"),
    }

    // Back: the server returns; the configured weight comes back.
    lab.server = Some(start_server(&lab.rs_ns));
    wait_for_weight(&sock, 4, Duration::from_secs(10));
    assert!(log().contains("dest is UP again"), "{}", log());

    // Clean stop.
    let rvsd = lab.rvsd.take().unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &rvsd.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = rvsd.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", log());
    let counters = String::from_utf8_lossy(&out.stdout);
    let exception: u64 = counters
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("exception="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        exception >= 4,
        "the checks' replies reached the kernel through rvsd: {counters}"
    );
}
