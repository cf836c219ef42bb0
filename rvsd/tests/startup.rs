//! rvsd's command line and start-up failures: every failure exits non-zero with a message
//! that says what is wrong and what to do, and leaves nothing running.

use std::path::PathBuf;
use std::process::{Command, Output};

fn rvsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(args)
        .output()
        .expect("run rvsd")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvsd-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn config(name: &str, device: &str, workers: u16, rss: &str) -> String {
    format!(
        r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", "rvsd-st{pid}-{name}"]

[daemon]
workers = {workers}
table_capacity = 1024
mbufs = 2047
socket = "{dir}/{name}.sock"
metrics = "off"

[[port]]
name = "wan"
device = "{device}"
{rss}

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]

[[service]]
proto = "udp"
vip = "192.0.2.100"
port = 53
  [[service.dest]]
  addr = "192.0.2.11"
  mode = "dr"
"#,
        pid = std::process::id(),
        dir = std::env::temp_dir()
            .join(format!("rvsd-startup-{}", std::process::id()))
            .display()
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_and_version() {
    let o = rvsd(&["--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("unexpected argument '--bogus'"), "{e}");
    assert!(e.contains("Usage: rvsd"), "{e}");
    for v in ["--version", "-v"] {
        let o = rvsd(&[v]);
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("rvsd "));
    }
    let o = rvsd(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--config <FILE>",
        "--check-config [<FILE>]",
        "/etc/rvs/rvsd.toml",
    ] {
        assert!(out.contains(opt), "{out}");
    }
}

#[test]
fn check_config_accepts_good_and_locates_bad() {
    let good = write_config("good.toml", &config("good", "net_null0", 1, ""));
    let o = rvsd(&["--check-config", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("configuration OK (1 ports, 1 services, 1 workers)"));

    let bad = write_config(
        "bad.toml",
        &config("bad", "net_null0", 1, "").replace("addrs = [", "adrs = ["),
    );
    let o = rvsd(&["--check-config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("unknown field `adrs`") && e.contains("line"),
        "{e}"
    );

    // -t with -f checks -f's file, as `rvsd -t` checks /etc/rvs/rvsd.toml.
    let o = rvsd(&["-t", "-f", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rvsd(&["-t", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));

    let o = rvsd(&["--config", "/nonexistent/rvsd.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read /nonexistent/rvsd.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_device_fails_with_a_message() {
    let path = write_config("baddev.toml", &config("baddev", "net_nosuchdriver0", 1, ""));
    let o = rvsd(&["--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("net_nosuchdriver0"), "{e}");
    // The EAL never came up, so rvsd leaves its runtime directory alone; the test removes it.
    let _ = std::fs::remove_dir_all(format!(
        "/var/run/dpdk/rvsd-st{}-baddev",
        std::process::id()
    ));
}

#[test]
fn rss_on_a_port_without_it_says_what_to_do() {
    let path = write_config("norss.toml", &config("norss", "net_ring0", 2, ""));
    let o = rvsd(&["--config", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("cannot do RSS: set rss = false"), "{e}");
    // The EAL came up before the port check failed: its runtime directory is gone again.
    let dir = format!("/var/run/dpdk/rvsd-st{}-norss", std::process::id());
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
}

#[test]
fn rss_ports_give_workers_reply_steering_and_sigterm_stops_cleanly() {
    // net_null does RSS (a key and a 128-entry RETA) and receives endless zero frames.
    let path = write_config("rss.toml", &config("rss", "net_null0", 2, ""));
    let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rvsd");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let o = child.wait_with_output().expect("wait");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{err}");
    assert!(err.contains("FullNAT reply steering by RSS"), "{err}");
    // Both workers ran and counted what they got (all-zero frames: ethertype 0).
    for w in 0..2 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("worker {w} ")))
            .expect("counters");
        assert!(line.contains("drop.unknown_ethertype="), "{line}");
    }
    let dir = format!("/var/run/dpdk/rvsd-st{}-rss", std::process::id());
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
}

#[test]
fn the_shipped_example_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rvsd.toml");
    let o = rvsd(&["--check-config", example]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("configuration OK (2 ports, 2 services, 2 workers)"));
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_and_the_journal_gets_plain_lines() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::time::{Duration, Instant};

    let path = write_config("notify.toml", &config("notify", "net_null0", 1, ""));
    // A service manager's notify socket (abstract, as systemd's own is not) and a journal
    // stream: a file whose device and inode go in JOURNAL_STREAM, as systemd sets them.
    let name = format!("rvsd-startup-notify-{}", std::process::id());
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
        .expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = path.with_extension("log");
    let file = std::fs::File::create(&log).expect("log file");
    let meta = file.metadata().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--config", path.to_str().unwrap()])
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn rvsd");
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let started = Instant::now();
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=forwarding: 1 ports, 1 services"),
        "{ready}"
    );
    // READY comes once the control socket listens.
    let control = std::env::temp_dir()
        .join(format!("rvsd-startup-{}", std::process::id()))
        .join("notify.sock");
    assert!(control.exists(), "READY before the control socket");
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("kill")
            .success());
    };
    signal("-HUP");
    assert_eq!(next(), "RELOADING=1\nSTATUS=reloading");
    assert_eq!(next(), "READY=1\nSTATUS=forwarding: reloaded");
    signal("-TERM");
    assert_eq!(next(), "STOPPING=1\nSTATUS=stopping");
    assert!(child.wait().expect("wait").success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains('\x1b'),
        "colour codes in the journal: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6> INFO") && l.contains("reloaded")),
        "{text}"
    );
    // Every tracing line carries its priority and no timestamp.
    for l in lines.iter().filter(|l| l.starts_with('<')) {
        let p = &l[..3];
        assert!(["<3>", "<4>", "<6>", "<7>"].contains(&p), "{l}");
        assert!(!l[3..].trim_start().starts_with("20"), "timestamp in {l}");
    }
    let _ = std::fs::remove_file(&log);
}
