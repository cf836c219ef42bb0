//! The control socket under misuse (issue 7, "control plane"): socket mode and peer uid, size
//! limits, rate limits, malformed and unknown requests, concurrent clients, silent and stalling
//! clients. Each test runs its own rvsd control server on a real Unix socket and checks with a
//! listing that nothing refused left a trace.

#[path = "support/fleet.rs"]
mod fleet;

use control::access::Limits;
use control::model::Model;
use control::server::{Server, MAX_CLIENTS};
use control::state::ControlState;
use dataplane::snapshot::DirectorConfig;
use proto::{
    self, DestSpec, Envelope, ErrorKind, FrameError, ProtoName, Request, Response, SvcKey,
    MAX_FRAME,
};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::*;

/// The uid of `nobody`.
const NOBODY: u32 = 65534;

/// How long a test waits for any one answer before calling it a hang.
const HANG: Duration = Duration::from_secs(20);

/// A control server on its own socket, over a director with two interfaces and a default
/// route (FullNAT dests anywhere are routable).
struct Rvsd {
    dir: PathBuf,
    sock: PathBuf,
    server: Option<Server>,
    state: Arc<Mutex<ControlState>>,
}

/// A fresh directory (0755, so that `nobody` may reach into it).
fn test_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rvs-hardening-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn director() -> DirectorConfig {
    DirectorConfig {
        lips: vec![LIP1],
        ..fleet::director()
    }
}

impl Rvsd {
    fn start(limits: Limits) -> Rvsd {
        let dir = test_dir();
        let sock = dir.join("rvsd.sock");
        let model = Model::new(director()).expect("model");
        let state = Arc::new(Mutex::new(ControlState::new(model, vec![], vec![])));
        let server =
            Server::start_with(&sock, None, state.clone(), &[], limits).expect("control server");
        Rvsd {
            dir,
            sock,
            server: Some(server),
            state,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// A new connection, as rvsadm makes one per invocation.
    fn connect(&self) -> UnixStream {
        let c = UnixStream::connect(&self.sock).expect("connect");
        c.set_read_timeout(Some(HANG)).unwrap();
        c.set_write_timeout(Some(HANG)).unwrap();
        c
    }

    /// One request on a new connection. A refused connection may be closed before the
    /// request is sent; its answer is read all the same.
    fn call(&self, request: Request) -> Response {
        let mut c = self.connect();
        let _ = proto::write_frame(
            &mut c,
            &Envelope {
                version: proto::VERSION,
                request,
            },
        );
        answer(&mut c).expect("an answer")
    }

    fn list(&self) -> Response {
        self.call(Request::List { service: None })
    }

    /// Waits until the server serves `n` clients.
    fn wait_for_clients(&self, n: usize) {
        let deadline = Instant::now() + HANG;
        while self.server().clients() != n {
            assert!(
                Instant::now() < deadline,
                "{} clients, not {n}",
                self.server().clients()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn send(c: &mut UnixStream, request: Request) {
    proto::write_frame(
        c,
        &Envelope {
            version: proto::VERSION,
            request,
        },
    )
    .expect("send");
}

/// The next answer, or None if the server closed the connection.
fn answer(c: &mut UnixStream) -> Option<Response> {
    match proto::read_frame_bytes(c) {
        Ok(body) => Some(proto::decode_response(&body).expect("a valid answer")),
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("reading an answer: {e}"),
    }
}

fn raw_frame(c: &mut UnixStream, body: &[u8]) {
    c.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    c.write_all(body).unwrap();
}

fn error_kind(r: &Response) -> Option<ErrorKind> {
    match r {
        Response::Error { kind, .. } => Some(*kind),
        _ => None,
    }
}

fn message(r: &Response) -> &str {
    match r {
        Response::Error { message, .. } => message,
        other => panic!("not an error: {other:?}"),
    }
}

fn svc(vip: Ipv4Addr) -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: vip.into(),
        port: 80,
    }
}

fn add_service(vip: Ipv4Addr) -> Request {
    Request::AddService {
        service: svc(vip),
        scheduler: "wrr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    }
}

fn add_dest(vip: Ipv4Addr, addr: Ipv4Addr, weight: u32) -> Request {
    Request::AddDest {
        service: svc(vip),
        dest: DestSpec {
            addr: addr.into(),
            port: 8080,
            weight,
            mode: "fullnat".into(),
        },
    }
}

/// The IPv4 address every address of these tests is.
fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("{a} is not one of the test's addresses"),
    }
}

/// (VIP, [(RIP, weight)]) of every service listed.
fn services(r: &Response) -> BTreeSet<(Ipv4Addr, Vec<(Ipv4Addr, u32)>)> {
    match r {
        Response::Services { services } => services
            .iter()
            .map(|s| {
                let mut dests: Vec<_> = s.dests.iter().map(|d| (v4(d.addr), d.weight)).collect();
                dests.sort();
                (v4(s.key.vip), dests)
            })
            .collect(),
        other => panic!("not a listing: {other:?}"),
    }
}

/// The rvsadm binary `cargo test --workspace` built beside this test (rvsadm is its own crate).
fn rvsadm_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("rvsadm");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p rvsadm` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// rvsadm as `uid`, from a copy in `dir` (so that `nobody` can run it).
fn rvsadm_as(uid: u32, dir: &Path, sock: &Path, args: &[&str]) -> (i32, String) {
    let bin = dir.join("rvsadm");
    if !bin.exists() {
        std::fs::copy(rvsadm_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new(&bin)
        .env_remove("RVS_SOCKET")
        .arg("--socket")
        .arg(sock)
        .args(args)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run rvsadm");
    (
        out.status.code().expect("exit status"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Changing uid needs root; the tests run as root.
fn root() -> bool {
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me != 0 {
        eprintln!("not root (uid {me}): cannot run a client as another uid, test skipped");
    }
    me == 0
}

#[test]
fn socket_file_is_0600_owned_by_rvsd_and_closed_to_other_uids() {
    let rvsd = Rvsd::start(Limits::default());
    let meta = std::fs::metadata(&rvsd.sock).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata("/proc/self").unwrap().uid());
    assert!(
        root(),
        "the uid checks need root: run the tests as root (scripts/test does)"
    );
    // The file mode: the kernel refuses nobody's connect.
    let (code, stderr) = rvsadm_as(NOBODY, &rvsd.dir, &rvsd.sock, &["-L", "-n"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Permission denied (os error 13)"),
        "{stderr}"
    );
    // Root is served.
    let (code, stderr) = rvsadm_as(0, &rvsd.dir, &rvsd.sock, &["-A", "-t", "192.0.2.100:80"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[test]
fn a_peer_of_another_uid_is_refused_by_the_server() {
    let rvsd = Rvsd::start(Limits::default());
    assert!(
        root(),
        "the uid checks need root: run the tests as root (scripts/test does)"
    );
    // Widened by hand: the connect succeeds and the peer check is what refuses.
    std::fs::set_permissions(&rvsd.sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = rvsd.list();
    for args in [
        &["-A", "-t", "192.0.2.100:80", "-s", "rr"][..],
        &["-C"],
        &["-L", "-n"],
    ] {
        let (code, stderr) = rvsadm_as(NOBODY, &rvsd.dir, &rvsd.sock, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("rvsadm: permission denied: uid 65534 (pid ")
                && stderr.contains("may not use rvsd's control socket (only root may)"),
            "{stderr}"
        );
    }
    assert_eq!(rvsd.list(), before, "nothing changed");
    // Root still is.
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
}

#[test]
fn the_socket_directory_may_not_be_writable_by_all_without_the_sticky_bit() {
    let dir = test_dir();
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let model = Model::new(director()).unwrap();
    let state = Arc::new(Mutex::new(ControlState::new(model, vec![], vec![])));
    let e = Server::start(&open.join("rvsd.sock"), None, state.clone(), &[])
        .err()
        .expect("refused");
    assert!(e.to_string().contains("has no sticky bit"), "{e}");
    assert!(!open.join("rvsd.sock").exists());
    // With the sticky bit (as /tmp), others cannot remove or replace our socket.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let server = Server::start(&open.join("rvsd.sock"), None, state, &[]).expect("started");
    server.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_oversized_length_is_refused_before_the_body_is_read() {
    let rvsd = Rvsd::start(Limits::default());
    let before = rvsd.list();
    // The length alone is answered: the server does not wait for the body.
    let mut c = rvsd.connect();
    c.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let r = answer(&mut c).expect("an answer");
    assert_eq!(error_kind(&r), Some(ErrorKind::BadRequest));
    assert!(
        message(&r).contains("larger than the 1048576-byte limit"),
        "{r:?}"
    );
    assert!(answer(&mut c).is_none(), "then the connection is closed");
    // A valid change behind an oversized length is never applied.
    let body = serde_json::to_vec(&Envelope {
        version: proto::VERSION,
        request: add_service(VIP),
    })
    .unwrap();
    let mut c = rvsd.connect();
    c.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes()).unwrap();
    let _ = c.write_all(&body);
    let r = answer(&mut c).expect("an answer");
    assert!(message(&r).contains("larger than"), "{r:?}");
    assert!(answer(&mut c).is_none());
    // Exactly MAX_FRAME is read (and is bad JSON here).
    let mut c = rvsd.connect();
    raw_frame(&mut c, &vec![b' '; MAX_FRAME]);
    let r = answer(&mut c).expect("an answer");
    assert_eq!(error_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    assert!(message(&r).contains("malformed message"), "{r:?}");
    assert_eq!(rvsd.list(), before, "nothing changed");
}

#[test]
fn a_zero_length_frame_is_a_bad_request_and_the_connection_goes_on() {
    let rvsd = Rvsd::start(Limits::default());
    let mut c = rvsd.connect();
    raw_frame(&mut c, b"");
    let r = answer(&mut c).expect("an answer");
    assert_eq!(error_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    assert!(message(&r).contains("EOF while parsing"), "{r:?}");
    send(&mut c, add_service(VIP));
    assert_eq!(answer(&mut c), Some(Response::Done));
}

#[test]
fn a_client_hanging_up_mid_request_changes_nothing() {
    let rvsd = Rvsd::start(Limits::default());
    let before = rvsd.list();
    let body = serde_json::to_vec(&Envelope {
        version: proto::VERSION,
        request: add_service(VIP),
    })
    .unwrap();
    // The whole request is there but the length promised ten bytes more.
    let mut c = rvsd.connect();
    c.write_all(&(body.len() as u32 + 10).to_be_bytes())
        .unwrap();
    c.write_all(&body).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert!(answer(&mut c).is_none(), "nothing to answer");
    // Hung up inside the length.
    let mut c = rvsd.connect();
    c.write_all(&[0, 0]).unwrap();
    drop(c);
    assert_eq!(rvsd.list(), before, "nothing changed");
    rvsd.wait_for_clients(0);
}

#[test]
fn malformed_and_unknown_requests_change_nothing_and_the_server_goes_on() {
    let rvsd = Rvsd::start(Limits::default());
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
    assert_eq!(rvsd.call(add_dest(VIP, RS[0], 1)), Response::Done);
    let before = rvsd.list();
    let nested = format!(
        r#"{{"version":2,"request":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let svc = r#"{"proto":"tcp","vip":"192.0.2.100","port":80}"#;
    let dest = |addr: &str, weight: &str, mode: &str| {
        format!(
            r#"{{"version":2,"request":{{"op":"add-dest","service":{svc},"dest":{{"addr":"{addr}","port":8080,"weight":{weight},"mode":"{mode}"}}}}}}"#
        )
    };
    let bad: Vec<(String, ErrorKind)> = vec![
        // Not JSON, or not whole.
        ("not json".into(), ErrorKind::BadRequest),
        ("\u{fffd}\u{0}".into(), ErrorKind::BadRequest),
        (r#"{"version":2,"request":{"op":"clear""#.into(), ErrorKind::BadRequest),
        (nested, ErrorKind::BadRequest),
        // Other versions (1: before -L -c was paged), including one that would wrap to 2 in a
        // u32.
        (r#"{"version":1,"request":{"op":"clear"}}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":3,"request":{"op":"clear"}}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":4294967298,"request":{"op":"clear"}}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":"2","request":{"op":"clear"}}"#.into(), ErrorKind::BadRequest),
        (r#"{"request":{"op":"clear"}}"#.into(), ErrorKind::BadRequest),
        // Unknown operations and fields, at every level.
        (r#"{"version":2,"request":{"op":"format-disk"}}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":2,"request":{"op":"clear","force":true}}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":2,"request":{"op":"clear"},"sudo":1}"#.into(), ErrorKind::BadRequest),
        (
            r#"{"version":2,"request":{"op":"batch","requests":[{"op":"clear"},{"op":"nope"}]}}"#
                .into(),
            ErrorKind::BadRequest,
        ),
        // Valid JSON of the wrong shape.
        ("[1,2,3]".into(), ErrorKind::BadRequest),
        ("null".into(), ErrorKind::BadRequest),
        (r#"{"version":2,"request":"clear"}"#.into(), ErrorKind::BadRequest),
        (r#"{"version":2,"request":{"op":"delete-service"}}"#.into(), ErrorKind::BadRequest),
        // Numbers out of range (a port that would wrap to 80, a weight past u32).
        (
            r#"{"version":2,"request":{"op":"delete-service","service":{"proto":"tcp","vip":"192.0.2.100","port":65616}}}"#.into(),
            ErrorKind::BadRequest,
        ),
        (dest("10.1.0.12", "4294967296", "fullnat"), ErrorKind::BadRequest),
        (dest("10.1.0.12", "-1", "fullnat"), ErrorKind::BadRequest),
        (dest("10.1.0.12", "1e3", "fullnat"), ErrorKind::BadRequest),
        (dest("10.1.0.12", "65536", "fullnat"), ErrorKind::Refused),
        // Bad addresses.
        (dest("10.1.0.300", "1", "fullnat"), ErrorKind::BadRequest),
        (dest("10.1.0", "1", "fullnat"), ErrorKind::BadRequest),
        // An address of the other family than the service's VIP.
        (dest("::1", "1", "fullnat"), ErrorKind::Refused),
        (dest(" 10.1.0.12", "1", "fullnat"), ErrorKind::BadRequest),
        // Names the model does not know.
        (dest("10.1.0.12", "1", "teleport"), ErrorKind::Refused),
        (
            r#"{"version":2,"request":{"op":"add-service","service":{"proto":"tcp","vip":"192.0.2.101","port":80},"scheduler":"fastest","persistence":null}}"#.into(),
            ErrorKind::Refused,
        ),
        (
            r#"{"version":2,"request":{"op":"add-service","service":{"proto":"sctp","vip":"192.0.2.101","port":80},"scheduler":"rr","persistence":null}}"#.into(),
            ErrorKind::BadRequest,
        ),
    ];
    // All on one connection: each is answered and the connection stays usable.
    let mut c = rvsd.connect();
    for (body, kind) in &bad {
        raw_frame(&mut c, body.as_bytes());
        let r = answer(&mut c).unwrap_or_else(|| panic!("closed after {body:.80}"));
        assert_eq!(error_kind(&r), Some(*kind), "{body:.200}: {r:?}");
        assert!(!message(&r).is_empty());
    }
    raw_frame(&mut c, b"\xff\xfe\x00");
    assert_eq!(
        error_kind(&answer(&mut c).unwrap()),
        Some(ErrorKind::BadRequest)
    );
    send(&mut c, Request::List { service: None });
    assert_eq!(
        answer(&mut c),
        Some(before.clone()),
        "same client, unchanged"
    );
    assert_eq!(rvsd.list(), before, "another client, unchanged");
}

#[test]
fn requests_on_one_connection_are_rate_limited_with_a_busy_answer() {
    let limits = Limits {
        requests_per_sec: 5,
        request_burst: 10,
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
    let mut c = rvsd.connect();
    let started = Instant::now();
    let mut applied = Vec::new();
    let mut busy = 0;
    for i in 0..40u8 {
        let rip = Ipv4Addr::new(10, 2, 0, i + 1);
        send(&mut c, add_dest(VIP, rip, 1));
        match answer(&mut c).expect("answered, not dropped") {
            Response::Done => applied.push((rip, 1)),
            r => {
                assert_eq!(error_kind(&r), Some(ErrorKind::Busy), "{r:?}");
                assert!(message(&r).contains("5 requests per second"), "{r:?}");
                busy += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(applied.len() >= 10, "the burst passes: {}", applied.len());
    assert!(busy > 0, "40 requests in {secs:.2} s at 5/s burst 10");
    assert!(
        applied.len() as f64 <= 10.0 + 5.0 * secs + 1.0,
        "{} applied in {secs:.2} s",
        applied.len()
    );
    // Exactly the requests answered Done were applied.
    assert_eq!(
        services(&rvsd.list()),
        BTreeSet::from([(VIP, applied.clone())])
    );
    // The connection is not closed: after a pause it is served again.
    std::thread::sleep(Duration::from_millis(300));
    send(&mut c, Request::List { service: None });
    assert!(matches!(answer(&mut c), Some(Response::Services { .. })));
}

#[test]
fn new_connections_are_rate_limited_with_a_busy_answer() {
    let limits = Limits {
        connections_per_sec: 5,
        connection_burst: 5,
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..30u8 {
        let vip = Ipv4Addr::new(192, 0, 2, 10 + i);
        answers.push((vip, rvsd.call(add_service(vip))));
    }
    let secs = started.elapsed().as_secs_f64();
    let added: Vec<Ipv4Addr> = answers
        .iter()
        .filter(|(_, r)| *r == Response::Done)
        .map(|(v, _)| *v)
        .collect();
    for (_, r) in answers.iter().filter(|(_, r)| *r != Response::Done) {
        assert_eq!(error_kind(r), Some(ErrorKind::Busy), "{r:?}");
        assert!(
            message(r).contains("5 new control connections per second"),
            "{r:?}"
        );
    }
    assert!(
        added.len() < 30,
        "30 connections in {secs:.2} s at 5/s burst 5"
    );
    assert!(added.len() as f64 <= 5.0 + 5.0 * secs + 1.0);
    std::thread::sleep(Duration::from_millis(400));
    let listed: BTreeSet<Ipv4Addr> = services(&rvsd.list()).into_iter().map(|s| s.0).collect();
    assert_eq!(listed, added.into_iter().collect(), "exactly the Done ones");
}

#[test]
fn concurrent_clients_see_exactly_the_union_of_their_changes() {
    // Room for every client: a connection closed by a one-shot client holds its slot until
    // its server thread has run, and on a loaded machine 16 slots can fill with those and
    // evict a kept connection between its requests (as designed, and tested on its own).
    // This test is about the union of concurrent changes.
    let rvsd = Arc::new(Rvsd::start(Limits {
        max_clients: 64,
        ..Limits::default()
    }));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let rvsd = rvsd.clone();
            std::thread::spawn(move || {
                let vip = Ipv4Addr::new(192, 0, 2, 10 + t);
                let rip = |j: u8| Ipv4Addr::new(10, 2, t, j);
                let mut reqs = vec![add_service(vip)];
                reqs.extend((1..=10).map(|j| add_dest(vip, rip(j), u32::from(j))));
                reqs.extend((1..=3).map(|j| Request::DeleteDest {
                    service: svc(vip),
                    addr: rip(j).into(),
                    port: 8080,
                }));
                reqs.push(Request::EditDest {
                    service: svc(vip),
                    dest: DestSpec {
                        addr: rip(4).into(),
                        port: 8080,
                        weight: 100,
                        mode: "fullnat".into(),
                    },
                });
                // Half the clients keep one connection, half make one per request (rvsadm).
                let mut kept = (t % 2 == 0).then(|| rvsd.connect());
                for r in reqs {
                    let got = match kept.as_mut() {
                        Some(c) => {
                            send(c, r.clone());
                            answer(c).expect("answer")
                        }
                        None => rvsd.call(r.clone()),
                    };
                    assert_eq!(got, Response::Done, "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let expected: BTreeSet<_> = (0..8u8)
        .map(|t| {
            let mut dests = vec![(Ipv4Addr::new(10, 2, t, 4), 100)];
            dests.extend((5..=10).map(|j| (Ipv4Addr::new(10, 2, t, j), u32::from(j))));
            (Ipv4Addr::new(192, 0, 2, 10 + t), dests)
        })
        .collect();
    assert_eq!(services(&rvsd.list()), expected);
}

#[test]
fn one_client_more_than_the_slots_gets_a_busy_answer() {
    let rvsd = Rvsd::start(Limits::default());
    // Every client's request waits for the model, held here: all slots are at work.
    let held = rvsd.state.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut clients = Vec::new();
    for _ in 0..=MAX_CLIENTS {
        let mut c = rvsd.connect();
        send(&mut c, Request::List { service: None });
        let tx = tx.clone();
        clients.push(std::thread::spawn(move || {
            let _ = tx.send(answer(&mut c));
        }));
    }
    // One of the MAX_CLIENTS + 1 is answered while the model is still held.
    let first = rx.recv_timeout(HANG).expect("an answer while all are busy");
    let first = first.expect("an answer, not a hang-up");
    assert_eq!(error_kind(&first), Some(ErrorKind::Busy), "{first:?}");
    assert!(message(&first).contains("try again"), "{first:?}");
    drop(held);
    for _ in 0..MAX_CLIENTS {
        let r = rx.recv_timeout(HANG).expect("answered").expect("an answer");
        assert!(matches!(r, Response::Services { .. }), "{r:?}");
    }
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn silent_clients_do_not_starve_a_real_one() {
    // A first-request deadline far away: only making room can serve the real client.
    let limits = Limits {
        first_request: Duration::from_secs(60),
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    let mut silent: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| rvsd.connect()).collect();
    rvsd.wait_for_clients(MAX_CLIENTS);
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
    // The one that waited longest was told why it was closed.
    let mut told = 0;
    for c in &mut silent {
        c.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + HANG;
    while told == 0 {
        for c in &mut silent {
            let mut b = [0u8; 1];
            if c.read(&mut b).is_ok_and(|n| n > 0) {
                c.set_nonblocking(false).unwrap();
                let mut len = [b[0], 0, 0, 0];
                c.read_exact(&mut len[1..]).unwrap();
                let mut body = vec![0; u32::from_be_bytes(len) as usize];
                c.read_exact(&mut body).unwrap();
                let r = proto::decode_response(&body).unwrap();
                assert_eq!(error_kind(&r), Some(ErrorKind::Busy), "{r:?}");
                assert!(message(&r).contains("closed this idle connection"), "{r:?}");
                told += 1;
            }
        }
        assert!(Instant::now() < deadline, "nobody was told");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every further real client is served as well.
    for i in 0..(2 * MAX_CLIENTS as u8) {
        let r = rvsd.call(add_dest(VIP, Ipv4Addr::new(10, 2, 0, i + 1), 1));
        assert_eq!(r, Response::Done);
    }
}

#[test]
fn a_silent_client_is_closed_at_its_first_request_deadline() {
    let limits = Limits {
        first_request: Duration::from_millis(300),
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    let mut c = rvsd.connect();
    let r = answer(&mut c).expect("told before being closed");
    assert_eq!(error_kind(&r), Some(ErrorKind::BadRequest), "{r:?}");
    assert_eq!(
        message(&r),
        "no complete request within 300ms (0 bytes received): closing"
    );
    assert!(answer(&mut c).is_none());
    rvsd.wait_for_clients(0);
}

#[test]
fn half_a_request_then_silence_or_a_trickle_is_closed_at_the_deadline() {
    let limits = Limits {
        first_request: Duration::from_millis(300),
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    let mut c = rvsd.connect();
    c.write_all(&100u32.to_be_bytes()).unwrap();
    c.write_all(b"{\"version\"").unwrap();
    let r = answer(&mut c).expect("told before being closed");
    assert_eq!(
        message(&r),
        "no complete request within 300ms (14 bytes received): closing"
    );
    assert!(answer(&mut c).is_none());

    // A byte every 20 ms of a 1000-byte request: every read succeeds, the whole never comes.
    let mut c = rvsd.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = c.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        if w.write_all(&1000u32.to_be_bytes()).is_err() {
            return;
        }
        for _ in 0..1000 {
            if w.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let r = answer(&mut c).expect("closed within the deadline, not after the trickle");
    assert!(
        message(&r).starts_with("no complete request within 300ms"),
        "{r:?}"
    );
    c.shutdown(Shutdown::Both).unwrap();
    trickle.join().unwrap();
    // Others are served.
    assert!(matches!(rvsd.list(), Response::Services { .. }));
}

#[test]
fn rvsadm_waits_out_a_busy_rvsd() {
    // One new connection a second: rvsadm's comes right after the test's and is told busy.
    let limits = Limits {
        connections_per_sec: 1,
        connection_burst: 1,
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
    let (code, stderr) = rvsadm_as(
        0,
        &rvsd.dir,
        &rvsd.sock,
        &[
            "-a",
            "-t",
            "192.0.2.100:80",
            "-r",
            "10.1.0.11:8080",
            "--fullnat",
        ],
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        services(&rvsd.list()),
        BTreeSet::from([(VIP, vec![(RS[0], 1)])])
    );
}

#[test]
fn rvsadm_gives_up_on_a_busy_rvsd_with_a_clear_message() {
    let limits = Limits {
        connections_per_sec: 0,
        connection_burst: 1,
        ..Limits::default()
    };
    let rvsd = Rvsd::start(limits);
    assert_eq!(rvsd.call(add_service(VIP)), Response::Done);
    let (code, stderr) = rvsadm_as(0, &rvsd.dir, &rvsd.sock, &["-D", "-t", "192.0.2.100:80"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr,
        "rvsadm: rvsd stayed busy for 5 s: rvsd is busy: more than 0 new control connections \
         per second (burst 1); nothing was done, try again\n"
    );
}

#[test]
fn a_reply_over_the_frame_limit_is_an_error_not_a_hang_up() {
    let rvsd = Rvsd::start(Limits::default());
    let mut c = rvsd.connect();
    // Three services of 2,000 dests each: their -L listing is some 1.3 MB.
    let vips = [
        VIP,
        Ipv4Addr::new(192, 0, 2, 101),
        Ipv4Addr::new(192, 0, 2, 102),
    ];
    for vip in vips {
        let mut requests = vec![add_service(vip)];
        requests.extend((0..2000u32).map(|d| add_dest(vip, Ipv4Addr::from(0x0a02_0000 + d), 1)));
        send(&mut c, Request::Batch { requests });
        assert_eq!(answer(&mut c), Some(Response::Done));
    }
    send(&mut c, Request::List { service: None });
    let refused = answer(&mut c).expect("an answer, not a hang-up");
    assert_eq!(error_kind(&refused), Some(ErrorKind::Internal));
    let text = message(&refused);
    let size: usize = text
        .strip_prefix("reply of ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {text}"));
    assert!(size > MAX_FRAME, "{text}");
    assert_eq!(
        text,
        format!(
            "reply of {size} bytes is over the 1 MiB limit of one message: the services (-L) \
             listing is too large to send"
        )
    );
    // The connection goes on, and one service's listing fits.
    send(
        &mut c,
        Request::List {
            service: Some(svc(VIP)),
        },
    );
    match answer(&mut c) {
        Some(Response::Services { services }) => assert_eq!(services[0].dests.len(), 2000),
        other => panic!("{other:?}"),
    }
    // rvsadm prints the error and fails like a failed listing.
    let (code, stderr) = rvsadm_as(0, &rvsd.dir, &rvsd.sock, &["-L", "-n"]);
    assert_eq!((code, stderr), (1, format!("{text}\n")));
}
