//! The probes against real sockets on loopback: TCP listeners, HTTP servers answering fixed
//! statuses, bodies and virtual hosts, TLS servers (rustls, certificates made by rcgen), UDP
//! sockets and scripts; and checkers reporting rises and falls to a sink.

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

fn key() -> ServiceKey {
    ServiceKey {
        proto: conntrack::Proto::Tcp,
        vip: Ipv4Addr::new(192, 0, 2, 100).into(),
        port: 80,
    }
}

fn check_of(kind: CheckKind, timeout: Duration) -> HealthCheck {
    HealthCheck {
        service: key(),
        kind,
        interval: timeout.max(Duration::from_millis(20)),
        timeout,
        rise: 1,
        fall: 1,
        port: None,
    }
}

/// One probe of `kind` against `addr`.
fn try_probe(kind: &CheckKind, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    probe(
        &check_of(kind.clone(), timeout),
        addr,
        &AtomicBool::new(false),
    )
}

/// An HTTP(S) check of `path` expecting `expect`.
fn http(expect: &str) -> HttpCheck {
    HttpCheck {
        path: "/health".into(),
        expect: StatusSet::parse(expect).unwrap(),
        virtualhost: None,
        digest: None,
        tls: None,
    }
}

/// What a test server saw of one connection: the request head, and over TLS the SNI name.
#[derive(Debug, Default)]
struct Seen {
    head: String,
    sni: Option<String>,
}

/// A server on 127.0.0.1 for `n` connections, over TLS with `tls`: each request head is
/// answered with `answer(head)`, after reading the whole head (closing with request bytes
/// unread would make the kernel send a reset that can overtake the answer).
fn server(
    tls: Option<Arc<ServerConfig>>,
    n: usize,
    answer: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..n {
            let (c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut s = Seen::default();
            match &tls {
                None => {
                    let mut c = c;
                    let _ = serve_one(&mut c, &answer, &mut s);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    // Wait for the prober to close first.
                    let _ = c.read(&mut [0u8; 64]);
                }
                Some(cfg) => {
                    let conn = ServerConnection::new(cfg.clone()).unwrap();
                    let mut t = StreamOwned::new(conn, c);
                    if !serve_one(&mut t, &answer, &mut s) {
                        // No TLS client: hang up.
                        seen.push(s);
                        continue;
                    }
                    s.sni = t.conn.server_name().map(str::to_string);
                    t.conn.send_close_notify();
                    let _ = t.flush();
                    let _ = t.read(&mut [0u8; 64]);
                }
            }
            seen.push(s);
        }
        seen
    });
    (addr, t)
}

/// Reads one request head and answers it; false if no head came.
fn serve_one(
    c: &mut (impl Read + Write),
    answer: &impl Fn(&str) -> Vec<u8>,
    seen: &mut Seen,
) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    seen.head = String::from_utf8_lossy(&head).into_owned();
    let _ = c.write_all(&answer(&seen.head));
    let _ = c.flush();
    true
}

/// An answer with `status` and `body`.
fn reply(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn tcp_and_http_probes_against_real_sockets() {
    let t1 = Duration::from_secs(2);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    assert!(try_probe(&CheckKind::Tcp, addr, t1).is_ok());
    drop(l);
    assert!(try_probe(&CheckKind::Tcp, addr, t1)
        .unwrap_err()
        .starts_with("TCP connect"));
    let h = CheckKind::Http(http("200"));
    let (ok, t) = server(None, 1, |_| reply("200 OK", ""));
    assert_eq!(try_probe(&h, ok, t1), Ok(()));
    let seen = t.join().unwrap();
    assert!(
        seen[0].head.starts_with(&format!(
            "GET /health HTTP/1.0\r\nHost: {ok}\r\nUser-Agent: rvs-health\r\n"
        )),
        "the dest's address as Host by default: {:?}",
        seen[0].head
    );
    let (busy, t) = server(None, 1, |_| reply("503 Busy", ""));
    assert_eq!(
        try_probe(&h, busy, t1).unwrap_err(),
        "HTTP status 503, expected 200"
    );
    t.join().unwrap();
}

#[test]
fn expected_statuses_are_codes_and_ranges() {
    let t1 = Duration::from_secs(2);
    let statuses = [
        "200 OK",
        "204 No Content",
        "301 Moved",
        "302 Found",
        "404 Not Found",
    ];
    let (addr, t) = server(None, statuses.len() * 2, move |head| {
        // The status is asked for in the path: /health?NNN.
        let i: usize = head[12..13].parse().unwrap();
        reply(statuses[i], "")
    });
    let mut got = Vec::new();
    for expect in ["200-299,301", "200"] {
        for i in 0..statuses.len() {
            let mut h = http(expect);
            h.path = format!("/health?{i}");
            got.push(try_probe(&CheckKind::Http(h), addr, t1).is_ok());
        }
    }
    t.join().unwrap();
    assert_eq!(
        got,
        [true, true, true, false, false, true, false, false, false, false]
    );
}

#[test]
fn the_host_header_is_the_virtualhost() {
    let t1 = Duration::from_secs(2);
    // Only the right virtual host answers 200, as nginx with server_name and a default
    // server answering 404.
    let (addr, t) = server(None, 2, |head| {
        if head.contains("\r\nHost: www.example.org\r\n") {
            reply("200 OK", "")
        } else {
            reply("404 Not Found", "")
        }
    });
    let mut h = http("200");
    assert!(try_probe(&CheckKind::Http(h.clone()), addr, t1).is_err());
    h.virtualhost = Some("www.example.org".into());
    assert_eq!(try_probe(&CheckKind::Http(h), addr, t1), Ok(()));
    t.join().unwrap();
}

#[test]
fn the_body_digest_must_match() {
    let t1 = Duration::from_secs(2);
    let (addr, t) = server(None, 3, |head| {
        if head.starts_with("GET /health ") {
            reply("200 OK", "rs1\n")
        } else {
            reply("200 OK", "rs2\n")
        }
    });
    // md5("rs1\n"), as `printf 'rs1\n' | md5sum` and keepalived's genhash print it.
    let mut h = http("200");
    h.digest = http::parse_digest("7a6c0d2ef5a9e6e1776090916c66ba3a");
    assert_eq!(try_probe(&CheckKind::Http(h.clone()), addr, t1), Ok(()));
    h.path = "/other".into();
    let e = try_probe(&CheckKind::Http(h.clone()), addr, t1).unwrap_err();
    assert!(
        e.starts_with("body MD5 ")
            && e.ends_with(", expected 7a6c0d2ef5a9e6e1776090916c66ba3a (4 bytes)"),
        "{e}"
    );
    // A wrong status fails before the digest is looked at.
    h.path = "/health".into();
    h.expect = StatusSet::parse("404").unwrap();
    assert_eq!(
        try_probe(&CheckKind::Http(h), addr, t1).unwrap_err(),
        "HTTP status 200, expected 404"
    );
    t.join().unwrap();
}

#[test]
fn a_silent_server_fails_within_the_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let started = Instant::now();
    let e = try_probe(
        &CheckKind::Http(http("200")),
        addr,
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert_eq!(e, "HTTP response: timed out");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Over TLS: the handshake waits for an answer that never comes.
    let mut h = http("200");
    h.tls = Some(Tls::new(None).unwrap());
    let started = Instant::now();
    let e = try_probe(&CheckKind::Http(h), addr, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e, "TLS handshake: timed out");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(l);
}

/// A TLS server configuration with `cert` and its key.
fn tls_server(cert: CertificateDer<'static>, key: &rcgen::KeyPair) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Arc::new(
        ServerConfig::builder_with_provider(Arc::new(tls::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    )
}

/// A self-signed certificate for `names`, as `openssl req -x509 -nodes` makes.
fn self_signed(names: &[&str]) -> Arc<ServerConfig> {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    tls_server(c.cert.der().clone(), &c.key_pair)
}

#[test]
fn https_checks_take_any_certificate_by_default_and_send_the_virtualhost_as_sni() {
    let t1 = Duration::from_secs(2);
    let cfg = self_signed(&["rs1.example"]);
    let (addr, t) = server(Some(cfg), 3, |head| {
        if head.contains("\r\nHost: rs1.example\r\n") {
            reply("200 OK", "rs1\n")
        } else {
            reply("404 Not Found", "")
        }
    });
    let mut h = http("200");
    h.tls = Some(Tls::new(None).unwrap());
    // No virtualhost: Host is the address, no SNI; the 404 fails.
    assert_eq!(
        try_probe(&CheckKind::Http(h.clone()), addr, t1).unwrap_err(),
        "HTTP status 404, expected 200"
    );
    h.virtualhost = Some("rs1.example".into());
    assert_eq!(try_probe(&CheckKind::Http(h.clone()), addr, t1), Ok(()));
    h.digest = http::parse_digest("7a6c0d2ef5a9e6e1776090916c66ba3a");
    assert_eq!(try_probe(&CheckKind::Http(h), addr, t1), Ok(()));
    let seen = t.join().unwrap();
    let sni: Vec<_> = seen.iter().map(|s| s.sni.as_deref()).collect();
    assert_eq!(sni, [None, Some("rs1.example"), Some("rs1.example")]);
}

#[test]
fn https_against_plain_http_and_http_against_tls_fail() {
    let t1 = Duration::from_secs(2);
    let (plain, t) = server(None, 1, |_| reply("200 OK", ""));
    let mut h = http("200");
    h.tls = Some(Tls::new(None).unwrap());
    let e = try_probe(&CheckKind::Http(h), plain, t1).unwrap_err();
    assert!(e.starts_with("TLS handshake: "), "{e}");
    drop(t);
    let (tls, t) = server(Some(self_signed(&["rs1.example"])), 1, |_| {
        reply("200 OK", "")
    });
    let e = try_probe(&CheckKind::Http(http("200")), tls, t1).unwrap_err();
    assert!(e.starts_with("HTTP response: not a status line"), "{e}");
    drop(t);
}

#[test]
fn https_checks_with_a_ca_file_verify_the_chain_and_the_name() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let t1 = Duration::from_secs(2);
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Not rcgen's default name, which the self-signed certificates below have as issuer.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rvs test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let rs_key = KeyPair::generate().unwrap();
    let rs = CertificateParams::new(vec!["rs1.example".to_string()])
        .unwrap()
        .signed_by(&rs_key, &ca, &ca_key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let verified = Tls::new(Some(ca_file.to_str().unwrap())).unwrap();
    assert_eq!(verified.ca_file(), ca_file.to_str());

    let (addr, t) = server(Some(tls_server(rs.der().clone(), &rs_key)), 2, |_| {
        reply("200 OK", "")
    });
    let mut h = http("200");
    h.tls = Some(verified.clone());
    h.virtualhost = Some("rs1.example".into());
    assert_eq!(try_probe(&CheckKind::Http(h.clone()), addr, t1), Ok(()));
    h.virtualhost = Some("rs2.example".into());
    let e = try_probe(&CheckKind::Http(h.clone()), addr, t1).unwrap_err();
    assert!(
        e.starts_with("TLS handshake: invalid peer certificate: certificate not valid for name"),
        "{e}"
    );
    drop(t);
    // A certificate from elsewhere.
    let (other, t) = server(Some(self_signed(&["rs1.example"])), 1, |_| {
        reply("200 OK", "")
    });
    h.virtualhost = Some("rs1.example".into());
    let e = try_probe(&CheckKind::Http(h), other, t1).unwrap_err();
    assert!(
        e.starts_with("TLS handshake: invalid peer certificate: UnknownIssuer"),
        "{e}"
    );
    drop(t);

    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = Tls::new(Some(empty.to_str().unwrap())).unwrap_err();
    assert!(e.to_string().ends_with("no PEM certificate in it"), "{e}");
    let e = Tls::new(Some("/dev/zero")).unwrap_err();
    assert_eq!(e.to_string(), "ca_file '/dev/zero': not a regular file");
    let e = Tls::new(Some("/nonexistent/ca.pem")).unwrap_err();
    assert!(
        e.to_string().starts_with("ca_file '/nonexistent/ca.pem': "),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Records every verdict.
#[derive(Default)]
struct Verdicts(std::sync::Mutex<Vec<(IpAddr, u16, bool)>>);

impl HealthSink for Verdicts {
    fn dest_health(&self, _: ServiceKey, addr: IpAddr, port: u16, up: bool) {
        self.0.lock().unwrap().push((addr, port, up));
    }
}

impl Verdicts {
    /// Waits until `n` verdicts are in (at most 10 s).
    fn wait(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sorted(&self) -> Vec<(IpAddr, u16, bool)> {
        let mut got = self.0.lock().unwrap().clone();
        got.sort();
        got
    }
}

#[test]
fn a_checker_reports_rises_and_falls_to_its_sink() {
    rises_and_falls(Ipv4Addr::LOCALHOST.into());
}

#[test]
fn ipv6_dests_are_checked_over_ipv6() {
    rises_and_falls(Ipv6Addr::LOCALHOST.into());
    let closed = UdpSocket::bind("[::1]:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = try_probe(&CheckKind::Udp, addr, Duration::from_millis(500)).unwrap_err();
    assert_eq!(e, "UDP: port unreachable");
}

/// A TCP check of two dests on loopback address `lo`: one that answers rises, one that
/// refuses falls.
fn rises_and_falls(lo: IpAddr) {
    let live = TcpListener::bind((lo, 0)).unwrap();
    let closed = TcpListener::bind((lo, 0)).unwrap();
    let (live_port, closed_port) = (
        live.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    drop(closed);
    let check = HealthCheck {
        interval: Duration::from_millis(20),
        rise: 2,
        fall: 2,
        ..check_of(CheckKind::Tcp, Duration::from_millis(500))
    };
    let target = |port, up| Target {
        check: check.clone(),
        addr: lo,
        port,
        up,
    };
    let sink = Arc::new(Verdicts::default());
    // A down dest that answers rises; an up dest that refuses falls; each says so once.
    let checker = Checker::start(
        vec![target(live_port, false), target(closed_port, true)],
        sink.clone(),
    );
    sink.wait(2);
    std::thread::sleep(Duration::from_millis(100));
    checker.stop();
    let mut want = vec![(lo, live_port, true), (lo, closed_port, false)];
    want.sort();
    assert_eq!(sink.sorted(), want);
}

#[test]
fn a_script_check_follows_the_exit_status_and_a_slow_script_holds_up_no_other_dest() {
    let dir = std::env::temp_dir().join(format!("rvs-script-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("up");
    // Port 1: up while the flag file exists. Port 2: hangs until killed at the timeout.
    let script = ScriptCheck::parse(&format!(
        "sh -c 'if [ {{port}} = 2 ]; then exec sleep 30; fi; test -e {}'",
        flag.display()
    ))
    .unwrap();
    let check = HealthCheck {
        interval: Duration::from_millis(600),
        rise: 1,
        fall: 1,
        ..check_of(CheckKind::Script(script), Duration::from_millis(600))
    };
    let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
    let target = |port, up| Target {
        check: check.clone(),
        addr: lo,
        port,
        up,
    };
    let sink = Arc::new(Verdicts::default());
    let started = Instant::now();
    let checker = Checker::start(vec![target(1, true), target(2, true)], sink.clone());
    // Port 1 falls at its first run, long before port 2's script times out.
    sink.wait(1);
    assert_eq!(sink.sorted(), [(lo, 1, false)]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    sink.wait(2);
    assert_eq!(sink.sorted(), [(lo, 1, false), (lo, 2, false)]);
    std::fs::write(&flag, "").unwrap();
    sink.wait(3);
    checker.stop();
    assert_eq!(
        sink.sorted(),
        [(lo, 1, false), (lo, 1, true), (lo, 2, false)]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn udp_probe_sees_port_unreachable() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = try_probe(&CheckKind::Udp, addr, Duration::from_millis(500)).unwrap_err();
    assert_eq!(e, "UDP: port unreachable");
    let open = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(try_probe(
        &CheckKind::Udp,
        open.local_addr().unwrap(),
        Duration::from_millis(200)
    )
    .is_ok());
}
