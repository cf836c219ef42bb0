//! rvsd driven by the real `rvsadm`: ipvsadm's commands add, edit and delete services and
//! dests; listings come out shaped like ipvsadm's; `--json` parses; bad commands are refused
//! with ipvsadm's messages and change nothing; save/clear/restore round-trips; `--set`,
//! `--timeout`, `-Z` and `--reload` work against the running daemon.

mod common;

use common::{rvsadm_bin, Rvsd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Adm {
    bin: PathBuf,
    sock: PathBuf,
}

impl Adm {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("RVS_SOCKET", &self.sock)
            .output()
            .expect("run rvsadm")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "rvsadm {args:?}: {:?}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let o = self.run(args);
        assert!(!o.status.success(), "rvsadm {args:?} should fail");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

fn config(dir: &Path) -> String {
    format!(
        r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", "rvsd-adm{pid}"]

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

[fullnat]
lips = ["10.1.0.201"]
"#,
        pid = std::process::id(),
        dir = dir.display()
    )
}

#[test]
fn rvsadm_drives_a_running_rvsd() {
    let rvsd = Rvsd::start("adm", config, &["rvsd.sock"]);
    let adm = Adm {
        bin: rvsadm_bin(),
        sock: rvsd.dir.join("rvsd.sock"),
    };

    adm.ok(&["-A", "-t", "192.0.2.100:80", "-s", "wrr"]);
    adm.ok(&[
        "-a",
        "-t",
        "192.0.2.100:80",
        "-r",
        "10.1.0.11:8080",
        "-m",
        "-w",
        "3",
    ]);
    adm.ok(&[
        "-a",
        "-t",
        "192.0.2.100:80",
        "-r",
        "10.1.0.12:8080",
        "--fullnat",
        "-w",
        "1",
    ]);
    adm.ok(&["-A", "-u", "192.0.2.100:53", "-s", "rr"]);
    adm.ok(&["-a", "-u", "192.0.2.100:53", "-r", "10.1.0.13", "-g"]);

    let listing = adm.ok(&["-L", "-n"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].contains("Virtual Server version"), "{listing}");
    assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    );
    let body: Vec<String> = lines[3..]
        .iter()
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(
        body,
        [
            "TCP  192.0.2.100:80 wrr",
            "  -> 10.1.0.11:8080               Masq    3      0          0",
            "  -> 10.1.0.12:8080               FullNat 1      0          0",
            "UDP  192.0.2.100:53 rr",
            "  -> 10.1.0.13:53                 Route   1      0          0",
        ],
        "{listing}"
    );

    // --json carries the same model, the dests in the service's order: newest first, as IPVS
    // lists them (10.1.0.12 was added last).
    let json = adm.ok(&["-L", "-n", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v[0]["dests"][0]["forward"], "FullNat");
    assert_eq!(v[0]["dests"][1]["weight"], 3);

    // Refused commands: ipvsadm's messages, and the listing is unchanged.
    for (args, text) in [
        (
            vec!["-a", "-t", "192.0.2.100:80", "-r", "10.1.0.11:8080", "-m"],
            "Destination already exists",
        ),
        (
            vec!["-A", "-t", "192.0.2.100:80", "-s", "wrr"],
            "Service already exists",
        ),
        (vec!["-D", "-t", "192.0.2.100:81"], "No such service"),
        (
            vec!["-E", "-t", "192.0.2.100:81", "-s", "rr"],
            "No such service",
        ),
        (vec!["-L", "-n", "-t", "192.0.2.100:81"], "No such service"),
        (
            vec!["-d", "-t", "192.0.2.100:81", "-r", "10.1.0.11:8080"],
            "Service not defined",
        ),
        (
            vec!["-A", "-t", "192.0.2.100:82", "-s", "fastest"],
            "Scheduler or persistence engine not found",
        ),
        (
            vec!["-a", "-t", "192.0.2.100:80", "-r", "10.9.9.9:80", "-m"],
            "no route",
        ),
        (
            vec![
                "-e",
                "-t",
                "192.0.2.100:80",
                "-r",
                "10.1.0.11:8080",
                "-m",
                "-w",
                "70000",
            ],
            "illegal weight",
        ),
        (vec!["-A", "-t", "192.0.2.101:80", "-s", "nosuch"], "nosuch"),
        (
            vec![
                "-a",
                "-t",
                "192.0.2.100:80",
                "-r",
                "10.1.0.14:8080",
                "--fullnat",
                "-x",
                "3",
            ],
            "",
        ),
    ] {
        let (_, err) = adm.fails(&args);
        assert!(
            err.to_lowercase().contains(&text.to_lowercase()),
            "{args:?}: {err}"
        );
        assert_eq!(adm.ok(&["-L", "-n"]), listing, "{args:?} changed nothing");
    }

    // -e changes a weight; -d removes a dest; the listing follows.
    adm.ok(&[
        "-e",
        "-t",
        "192.0.2.100:80",
        "-r",
        "10.1.0.11:8080",
        "-m",
        "-w",
        "5",
    ]);
    adm.ok(&["-d", "-t", "192.0.2.100:80", "-r", "10.1.0.12:8080"]);
    let after = adm.ok(&["-L", "-n", "-t", "192.0.2.100:80"]);
    assert!(
        after.contains("10.1.0.11:8080               Masq    5"),
        "{after}"
    );
    assert!(!after.contains("10.1.0.12"), "{after}");

    // Save, clear, restore: the same rules again.
    let saved = adm.ok(&["-S", "-n"]);
    assert!(
        saved.contains("-a -t 192.0.2.100:80 -r 10.1.0.11:8080 -m -w 5"),
        "{saved}"
    );
    adm.ok(&["-C"]);
    let empty = adm.ok(&["-L", "-n"]);
    assert_eq!(empty.lines().count(), 3, "{empty}");
    let mut restore = Command::new(&adm.bin)
        .arg("-R")
        .env("RVS_SOCKET", &adm.sock)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("rvsadm -R");
    {
        use std::io::Write;
        restore
            .stdin
            .take()
            .expect("stdin")
            .write_all(saved.as_bytes())
            .expect("write rules");
    }
    assert!(restore.wait().expect("wait").success());
    assert_eq!(adm.ok(&["-S", "-n"]), saved);

    // Timeouts, counters, connections.
    adm.ok(&["--set", "600", "30", "60"]);
    assert_eq!(
        adm.ok(&["-L", "--timeout"]).trim(),
        "Timeout (tcp tcpfin udp): 600 30 60"
    );
    adm.ok(&["-Z"]);
    let stats = adm.ok(&["-L", "-n", "--stats"]);
    assert!(stats.contains("Conns"), "{stats}");
    let conns = adm.ok(&["-L", "-n", "-c"]);
    assert!(conns.contains("pro expire state"), "{conns}");

    // rvs's own listings: the LIP pool and the health checks (none configured here).
    let lips = adm.ok(&["--lips"]);
    assert!(
        lips.starts_with(
            "Local addresses: 10.1.0.201\n\
             Local ports: 1024-65535 (16 pools per LIP, quarantine 60 s)\n"
        ),
        "{lips}"
    );
    // 16 pools × 64512 ports; the LIP's line: nothing in use or in quarantine.
    assert!(
        lips.lines()
            .any(|l| l.starts_with("0 ") && l.ends_with(" 1032192")),
        "{lips}"
    );
    assert!(
        lips.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["0", "10.1.0.201", "0", "0", "1032192"]),
        "{lips}"
    );
    let health = adm.ok(&["--health"]);
    assert_eq!(health.lines().count(), 1, "{health}");
    let v: serde_json::Value = serde_json::from_str(&adm.ok(&["--lips", "--json"])).expect("JSON");
    assert_eq!(v["first_port"], 1024);

    // --reload applies a file's services; the ones made by hand stay (the file is
    // authoritative only for what it declares, as keepalived is).
    let file = rvsd.dir.join("reload.toml");
    let text = config(&rvsd.dir)
        + r#"
[[service]]
proto = "tcp"
vip = "192.0.2.102"
port = 443
scheduler = "rr"
  [[service.dest]]
  addr = "10.1.0.21"
  mode = "fullnat"
"#;
    std::fs::write(&file, text).expect("write reload file");
    adm.ok(&["--reload", file.to_str().expect("path")]);
    let reloaded = adm.ok(&["-L", "-n"]);
    assert!(reloaded.contains("TCP  192.0.2.102:443 rr"), "{reloaded}");
    assert!(reloaded.contains("TCP  192.0.2.100:80 wrr"), "{reloaded}");
    // A change to the file's service is made, and rvsadm says what a reload will do to it.
    let o = adm.run(&[
        "-e",
        "-t",
        "192.0.2.102:443",
        "-r",
        "10.1.0.21",
        "--fullnat",
        "-w",
        "3",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "rvsadm: note: tcp 192.0.2.102:443 is managed by the configuration file: a reload puts the file's version back\n"
    );
    let weight = |listing: &str| {
        listing
            .lines()
            .find(|l| l.contains("10.1.0.21:443"))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
    };
    assert_eq!(weight(&adm.ok(&["-L", "-n"])).as_deref(), Some("3"));
    adm.ok(&["--reload", file.to_str().expect("path")]);
    let again = adm.ok(&["-L", "-n"]);
    assert_eq!(weight(&again).as_deref(), Some("1"), "{again}");
    assert!(again.contains("TCP  192.0.2.100:80 wrr"), "{again}");

    // --log-level: rvsd's filter while it runs. At warn the next reload's info line is not
    // written; back at info it is; a filter rvsd cannot parse is refused.
    adm.ok(&["--log-level", "warn"]);
    adm.ok(&["--reload", file.to_str().expect("path")]);
    adm.ok(&["--log-level", "info"]);
    adm.ok(&["--reload", file.to_str().expect("path")]);
    let (code, err) = adm.fails(&["--log-level", "info,control=loud"]);
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("bad log filter"), "{err}");

    let st = rvsd.stop();
    assert!(st.status.success(), "{}", st.err);
    // Three reloads were logged at info, the fourth (at warn) was not.
    assert_eq!(
        st.err.matches("configuration reloaded").count(),
        3,
        "{}",
        st.err
    );
    assert!(st.err.contains("log filter is now \"info\""), "{}", st.err);
    assert!(!st.err.contains("log filter is now \"warn\""), "{}", st.err);
}
