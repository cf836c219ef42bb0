//! The rvsadm binary against a stand-in rvsd: a Unix socket thread that answers with canned
//! responses and records the requests it got. Checks output, stderr and exit statuses.

use proto::{
    self, ConnCursor, ConnView, DestSpec, DestView, ErrorKind, ProtoName, Rates, Request, Response,
    ServiceView, Stats, SvcKey, WorkerView,
};
use rvsadm::format;
use std::io::{ErrorKind as IoErrorKind, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A fresh socket path for one test.
fn socket_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("rvsadm-test-{}-{n}.sock", std::process::id()))
}

/// A stand-in rvsd answering the canned answers in order, each request on whichever
/// connection it comes (`None`: hang up unanswered).
struct FakeRvsd {
    path: PathBuf,
    thread: JoinHandle<Vec<Request>>,
}

impl FakeRvsd {
    fn start(answers: Vec<Option<Response>>) -> FakeRvsd {
        let path = socket_path();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = thread::spawn(move || {
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut answers = answers.into_iter().peekable();
            'connections: while answers.peek().is_some() {
                let mut stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == IoErrorKind::WouldBlock && Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => break,
                };
                stream.set_nonblocking(false).expect("blocking");
                // Requests on this connection until the client hangs up.
                while let Ok(body) = proto::read_frame_bytes(&mut stream) {
                    got.push(proto::decode_request(&body).expect("valid request"));
                    match answers.next() {
                        Some(Some(resp)) => proto::write_frame(&mut stream, &resp).expect("answer"),
                        Some(None) => continue 'connections,
                        None => break 'connections,
                    }
                }
            }
            got
        });
        FakeRvsd { path, thread }
    }

    fn socket(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// The requests received (waits for the thread).
    fn requests(self) -> Vec<Request> {
        let got = self.thread.join().expect("server thread");
        let _ = std::fs::remove_file(&self.path);
        got
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn rvsadm(socket: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsadm"));
    cmd.env_remove("RVS_SOCKET")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    let mut child = cmd.spawn().expect("spawn rvsadm");
    if let Some(mut input) = child.stdin.take() {
        // rvsadm may exit without reading stdin; a broken pipe is fine then.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("rvsadm output");
    Run {
        code: out.status.code().expect("exit status"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn tcp80() -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: Ipv4Addr::new(192, 0, 2, 1).into(),
        port: 80,
    }
}

fn one_service() -> Vec<ServiceView> {
    vec![ServiceView {
        key: tcp80(),
        scheduler: "wrr".into(),
        persistence: Some(300),
        synproxy: false,
        proxy_protocol: None,
        toa: false,
        stats: Stats::default(),
        rates: Rates::default(),
        dests: vec![DestView {
            addr: Ipv4Addr::new(10, 1, 0, 11).into(),
            port: 8080,
            forward: "FullNat".into(),
            weight: 3,
            active: 1,
            inactive: 2,
            stats: Stats::default(),
            rates: Rates::default(),
        }],
    }]
}

fn refused(message: &str) -> Response {
    Response::Error {
        kind: ErrorKind::Refused,
        message: message.into(),
    }
}

#[test]
fn list_prints_the_table() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Services {
        services: one_service(),
    })]);
    let run = rvsadm(Some(&rvsd.socket()), &["-L", "-n"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.stdout,
        format::banner()
            + "Prot LocalAddress:Port Scheduler Flags\n"
            + "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            + "TCP  192.0.2.1:80 wrr persistent 300\n"
            + "  -> 10.1.0.11:8080               FullNat 3      1          2         \n"
    );
    assert_eq!(rvsd.requests(), vec![Request::List { service: None }]);
}

#[test]
fn a_change_prints_nothing_and_exits_0() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Done)]);
    let run = rvsadm(
        Some(&rvsd.socket()),
        &[
            "-a",
            "-t",
            "192.0.2.1:80",
            "-r",
            "10.1.0.11:8080",
            "--fullnat",
            "-w",
            "3",
        ],
        "",
    );
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(
        rvsd.requests(),
        vec![Request::AddDest {
            service: tcp80(),
            dest: DestSpec {
                addr: Ipv4Addr::new(10, 1, 0, 11).into(),
                port: 8080,
                weight: 3,
                mode: "fullnat".into()
            }
        }]
    );
}

#[test]
fn a_refused_change_prints_rvsds_message_alone_and_exits_255() {
    let rvsd = FakeRvsd::start(vec![Some(refused("Service not defined"))]);
    let run = rvsadm(
        Some(&rvsd.socket()),
        &["-d", "-t", "192.0.2.1:80", "-r", "10.1.0.11"],
        "",
    );
    assert_eq!(run.code, 255);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "Service not defined\n");
    assert_eq!(rvsd.requests().len(), 1);
}

#[test]
fn a_failed_listing_exits_1() {
    let rvsd = FakeRvsd::start(vec![Some(refused("No such service"))]);
    let run = rvsadm(
        Some(&rvsd.socket()),
        &["-L", "-n", "-t", "192.0.2.7:80"],
        "",
    );
    assert_eq!((run.code, run.stderr.as_str()), (1, "No such service\n"));
    assert_eq!(
        rvsd.requests(),
        vec![Request::List {
            service: Some(SvcKey {
                vip: Ipv4Addr::new(192, 0, 2, 7).into(),
                ..tcp80()
            })
        }]
    );
}

#[test]
fn save_lists_and_prints_rules() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Services {
        services: one_service(),
    })]);
    let run = rvsadm(Some(&rvsd.socket()), &["-S", "-n"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "-A -t 192.0.2.1:80 -s wrr -p 300\n-a -t 192.0.2.1:80 -r 10.1.0.11:8080 --fullnat -w 3\n"
    );
    assert_eq!(rvsd.requests(), vec![Request::List { service: None }]);
}

#[test]
fn save_output_restores_as_one_batch() {
    let rvsd = FakeRvsd::start(vec![
        Some(Response::Services {
            services: one_service(),
        }),
        Some(Response::Done),
    ]);
    let saved = rvsadm(Some(&rvsd.socket()), &["-S"], "");
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let restored = rvsadm(Some(&rvsd.socket()), &["-R"], &saved.stdout);
    assert_eq!(
        (
            restored.code,
            restored.stdout.as_str(),
            restored.stderr.as_str()
        ),
        (0, "", "")
    );
    let got = rvsd.requests();
    assert_eq!(
        got[1],
        Request::Batch {
            requests: vec![
                Request::AddService {
                    service: tcp80(),
                    scheduler: "wrr".into(),
                    persistence: Some(300),
                    synproxy: false,
                    proxy_protocol: None,
                    toa: false
                },
                Request::AddDest {
                    service: tcp80(),
                    dest: DestSpec {
                        addr: Ipv4Addr::new(10, 1, 0, 11).into(),
                        port: 8080,
                        weight: 3,
                        mode: "fullnat".into()
                    }
                }
            ]
        }
    );
}

#[test]
fn a_refused_restore_exits_255() {
    let rvsd = FakeRvsd::start(vec![Some(refused("Destination already exists"))]);
    let run = rvsadm(
        Some(&rvsd.socket()),
        &["-R"],
        "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.1.0.11\n",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (255, "Destination already exists\n")
    );
    assert!(matches!(&rvsd.requests()[..], [Request::Batch { requests }] if requests.len() == 2));
}

#[test]
fn a_bad_rule_stops_restore_before_rvsd_is_asked() {
    let socket = socket_path();
    let run = rvsadm(
        Some(&socket.to_string_lossy()),
        &["-R"],
        "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.1.0.11 -w 99999\n",
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "line 2: illegal weight specified\n");
}

#[test]
fn cannot_connect_says_so_and_exits_2() {
    let socket = socket_path();
    let shown = socket.to_string_lossy().into_owned();
    let run = rvsadm(Some(&shown), &["-L", "-n"], "");
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "rvsadm: cannot connect to rvsd at {shown}: No such file or directory (os error 2) \
             (is rvsd running? try --socket)\n"
        )
    );
}

#[test]
fn the_default_socket_is_named_when_unreachable() {
    // Runs only where no rvsd listens at the default path (always so in tests here).
    if std::path::Path::new(rvsadm::cli::DEFAULT_SOCKET).exists() {
        return;
    }
    let run = rvsadm(None, &["-C"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("rvsadm: cannot connect to rvsd at /run/rvs/rvsd.sock: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.ends_with("(is rvsd running? try --socket)\n"));
}

#[test]
fn rvs_socket_environment_variable_is_used() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Done)]);
    let out = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(["--set", "900", "60", "300"])
        .env("RVS_SOCKET", rvsd.socket())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rvsd.requests(),
        vec![Request::SetTimeouts {
            tcp: 900,
            tcpfin: 60,
            udp: 300
        }]
    );
}

#[test]
fn command_line_errors_never_reach_rvsd() {
    let socket = socket_path();
    let socket = socket.to_string_lossy();
    let run = rvsadm(Some(&socket), &["-A", "-t", "192.0.2.1"], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "Zero port specified for non-persistent service\n")
    );
    let run = rvsadm(
        Some(&socket),
        &["-a", "-t", "192.0.2.1:80", "-r", "10.1.0.1", "-w", "x"],
        "",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "illegal weight specified\n")
    );
    let run = rvsadm(Some(&socket), &["-L", "--bogus"], "");
    assert_eq!(run.code, 255);
    assert_eq!(
        run.stderr,
        "--bogus: unknown option\nTry `rvsadm -h' or 'rvsadm --help' for more information.\n"
    );
    let run = rvsadm(Some(&socket), &["-n"], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            255,
            "Try `rvsadm -h' or 'rvsadm --help' for more information.\n"
        )
    );
}

#[test]
fn help_and_version_need_no_rvsd() {
    let run = rvsadm(None, &["-h"], "");
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, rvsadm::cli::usage());
    let run = rvsadm(None, &["--version"], "");
    assert_eq!((run.code, run.stdout), (0, rvsadm::cli::version()));
}

#[test]
fn workers_as_json() {
    let workers = vec![WorkerView {
        id: 0,
        rx_packets: 10,
        tx_packets: 9,
        sessions: 1,
        redirected_out: 0,
        redirected_in: 0,
        drops: vec![("no-route".into(), 1)],
        busy_permille: 12,
        counters: vec![],
    }];
    let rvsd = FakeRvsd::start(vec![Some(Response::Workers {
        workers: workers.clone(),
    })]);
    let run = rvsadm(Some(&rvsd.socket()), &["--workers", "--json"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let back: Vec<WorkerView> = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(back, workers);
    assert_eq!(rvsd.requests(), vec![Request::Workers]);
}

#[test]
fn connections_and_timeouts() {
    let rvsd = FakeRvsd::start(vec![
        Some(Response::Connections {
            conns: vec![],
            next: None,
            local: false,
        }),
        Some(Response::Timeouts {
            tcp: 900,
            tcpfin: 60,
            udp: 300,
        }),
    ]);
    let run = rvsadm(Some(&rvsd.socket()), &["-Lnc"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run
        .stdout
        .starts_with("RVS connection entries\npro expire state"));
    let run = rvsadm(Some(&rvsd.socket()), &["-L", "--timeout"], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "Timeout (tcp tcpfin udp): 900 60 300\n")
    );
    assert_eq!(
        rvsd.requests(),
        vec![Request::Connections { from: None }, Request::Timeouts]
    );
}

#[test]
fn reload_sends_an_absolute_path() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Done)]);
    let dir = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .current_dir(&dir)
        .args(["--reload", "rvsd.toml", "--socket", &rvsd.socket()])
        .env_remove("RVS_SOCKET")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let want = std::path::absolute(dir.join("rvsd.toml")).expect("absolute");
    assert_eq!(
        rvsd.requests(),
        vec![Request::Reload {
            path: want.to_string_lossy().into_owned()
        }]
    );
}

#[test]
fn a_hang_up_without_answer_exits_1() {
    let rvsd = FakeRvsd::start(vec![None]);
    let socket = rvsd.socket();
    let run = rvsadm(Some(&socket), &["-C"], "");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("rvsadm: talking to rvsd at {socket}: ")),
        "{}",
        run.stderr
    );
    assert_eq!(rvsd.requests(), vec![Request::Clear]);
}

#[test]
fn an_answer_of_the_wrong_kind_is_an_error() {
    let rvsd = FakeRvsd::start(vec![Some(Response::Done)]);
    let run = rvsadm(Some(&rvsd.socket()), &["-L"], "");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "unexpected answer from rvsd: done (expected services)\n"
    );
    rvsd.requests();
}

/// Session `i` of a listing: client 203.0.113.7:(40000 + i).
fn session(i: u16) -> ConnView {
    ConnView {
        proto: ProtoName::Udp,
        expire_secs: 300,
        state: "UDP".into(),
        source: Ipv4Addr::new(203, 0, 113, 7).into(),
        sport: 40000 + i,
        vip: Ipv4Addr::new(192, 0, 2, 1).into(),
        vport: 53,
        dest: Ipv4Addr::new(10, 1, 0, 11).into(),
        dport: 53,
        local: None,
        worker: i / 3,
    }
}

/// The pages of sessions 0..7: three, none (a worker without sessions), four.
fn pages() -> (Vec<Option<Response>>, Vec<Request>) {
    let at = |worker, slot| Some(ConnCursor { worker, slot });
    let page = |range: std::ops::Range<u16>, next| {
        Some(Response::Connections {
            conns: range.map(session).collect(),
            next,
            local: false,
        })
    };
    (
        vec![page(0..3, at(0, 3)), page(3..3, at(2, 0)), page(3..7, None)],
        vec![
            Request::Connections { from: None },
            Request::Connections { from: at(0, 3) },
            Request::Connections { from: at(2, 0) },
        ],
    )
}

#[test]
fn connections_are_asked_page_by_page_and_printed_as_one_listing() {
    let all: Vec<ConnView> = (0..7).map(session).collect();
    let (answers, asked) = pages();
    let rvsd = FakeRvsd::start(answers);
    let run = rvsadm(Some(&rvsd.socket()), &["-L", "-n", "-c"], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(run.stdout, format::connections(&all));
    assert_eq!(run.stdout.lines().count(), 2 + 7);
    // Each page asked from where the previous one ended.
    assert_eq!(rvsd.requests(), asked);

    let (answers, asked) = pages();
    let rvsd = FakeRvsd::start(answers);
    let run = rvsadm(Some(&rvsd.socket()), &["-Lnc", "--json"], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(
        run.stdout,
        serde_json::to_string_pretty(&all).unwrap() + "\n"
    );
    let back: Vec<ConnView> = serde_json::from_str(&run.stdout).expect("one JSON array");
    assert_eq!(back, all);
    assert_eq!(rvsd.requests(), asked);
}

#[test]
fn a_listing_cut_short_by_an_error_says_so_and_exits_1() {
    let (mut answers, _) = pages();
    answers[1] = Some(Response::Error {
        kind: ErrorKind::Internal,
        message: "worker 1 did not answer within 2 s".into(),
    });
    answers.truncate(2);
    let rvsd = FakeRvsd::start(answers);
    let run = rvsadm(Some(&rvsd.socket()), &["-Lnc"], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "worker 1 did not answer within 2 s\n")
    );
    // What came before the error was printed.
    assert_eq!(
        run.stdout,
        format::connections(&(0..3).map(session).collect::<Vec<_>>())
    );
    assert_eq!(rvsd.requests().len(), 2);
}

#[test]
fn a_busy_page_is_asked_again() {
    let (mut answers, mut asked) = pages();
    answers.insert(
        1,
        Some(Response::Error {
            kind: ErrorKind::Busy,
            message: "rvsd is busy: more than 200 requests per second on one connection".into(),
        }),
    );
    asked.insert(1, asked[1].clone());
    let rvsd = FakeRvsd::start(answers);
    let run = rvsadm(Some(&rvsd.socket()), &["-Lnc"], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(run.stdout.lines().count(), 2 + 7);
    assert_eq!(rvsd.requests(), asked);
}

#[test]
fn an_answer_over_the_message_limit_is_printed_and_fails() {
    let message = "reply of 1300000 bytes is over the 1 MiB limit of one message: the services \
                   (-L) listing is too large to send";
    let rvsd = FakeRvsd::start(vec![Some(Response::Error {
        kind: ErrorKind::Internal,
        message: message.into(),
    })]);
    let run = rvsadm(Some(&rvsd.socket()), &["-L", "-n"], "");
    assert_eq!((run.code, run.stderr), (1, format!("{message}\n")));
    rvsd.requests();
}

fn tcp6_80() -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: "2001:db8::10".parse().expect("IPv6"),
        port: 80,
    }
}

#[test]
fn ipv6_save_output_restores_as_one_batch() {
    let rs: std::net::IpAddr = "2001:db8:1::11".parse().expect("IPv6");
    let services = vec![ServiceView {
        key: tcp6_80(),
        scheduler: "rr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
        stats: Stats::default(),
        rates: Rates::default(),
        dests: vec![DestView {
            addr: rs,
            port: 80,
            forward: "Route".into(),
            weight: 1,
            active: 0,
            inactive: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }],
    }];
    let rvsd = FakeRvsd::start(vec![
        Some(Response::Services { services }),
        Some(Response::Done),
    ]);
    let saved = rvsadm(Some(&rvsd.socket()), &["-S", "-n"], "");
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    assert_eq!(
        saved.stdout,
        "-A -t [2001:db8::10]:80 -s rr\n-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:80 -g -w 1\n"
    );
    let restored = rvsadm(Some(&rvsd.socket()), &["-R"], &saved.stdout);
    assert_eq!(
        (
            restored.code,
            restored.stdout.as_str(),
            restored.stderr.as_str()
        ),
        (0, "", "")
    );
    assert_eq!(
        rvsd.requests(),
        vec![
            Request::List { service: None },
            Request::Batch {
                requests: vec![
                    Request::AddService {
                        service: tcp6_80(),
                        scheduler: "rr".into(),
                        persistence: None,
                        synproxy: false,
                        proxy_protocol: None,
                        toa: false
                    },
                    Request::AddDest {
                        service: tcp6_80(),
                        dest: DestSpec {
                            addr: rs,
                            port: 80,
                            weight: 1,
                            mode: "dr".into()
                        }
                    }
                ]
            }
        ]
    );
}

#[test]
fn ipv6_command_line_errors_never_reach_rvsd() {
    let socket = socket_path();
    let socket = socket.to_string_lossy();
    let run = rvsadm(Some(&socket), &["-A", "-6", "-t", "[2001:db8::10]:80"], "");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "-6: not supported by rvs: IPv6 services are given by their bracketed address \
         (-t [2001:db8::10]:80); -6 only applies to fwmark services (-f), which rvs does not \
         have\nTry `rvsadm -h' or 'rvsadm --help' for more information.\n"
    );
    let run = rvsadm(
        Some(&socket),
        &["-a", "-t", "[2001:db8::10]:80", "-r", "10.1.0.11"],
        "",
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "Address family of destination 10.1.0.11 differs from the service's VIP \
             2001:db8::10\n"
        )
    );
    let run = rvsadm(Some(&socket), &["-A", "-t", "[2001:db8::10:80"], "");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "illegal virtual server address[:port] specified\n")
    );
}
