//! `-L -c` at any size (issue 13): the sessions of several real workers listed page by page
//! over the control socket — every session exactly once, no message near the frame limit —
//! by the protocol and by rvsadm, as a table and as JSON.
//!
//! The same million sessions are measured in a release build, listed by rvsadm, by the
//! `list_sessions` example (`scripts/listing`; figures in docs/robustness.md).

#[path = "support/fleet.rs"]
mod fleet;

use fleet::{session_of, Fleet};
use proto::{
    self, ConnCursor, Envelope, ErrorKind, ProtoName, Request, Response, CONNECTIONS_PAGE,
    MAX_FRAME,
};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

/// One request on `c`, and the answer's size on the wire.
fn call(c: &mut UnixStream, request: Request) -> (Response, usize) {
    proto::write_frame(
        c,
        &Envelope {
            version: proto::VERSION,
            request,
        },
    )
    .expect("send");
    let body = proto::read_frame_bytes(c).expect("an answer");
    (proto::decode_response(&body).expect("decode"), body.len())
}

fn connect(sock: &std::path::Path) -> UnixStream {
    let c = UnixStream::connect(sock).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// Lists every page from `from` on over one connection; returns how often each session was
/// seen (by session number), the pages' sizes in sessions and the largest answer in bytes.
fn list(fleet: &Fleet, from: Option<ConnCursor>) -> (Vec<u8>, Vec<usize>, usize) {
    let mut c = connect(&fleet.sock);
    let mut seen = vec![0u8; fleet.total() as usize];
    let mut pages = Vec::new();
    let mut largest = 0;
    let mut from = from;
    loop {
        let (answer, size) = call(&mut c, Request::Connections { from });
        let (conns, next, local) = match answer {
            Response::Connections { conns, next, local } => (conns, next, local),
            // Over the request rate of one connection: resume on a new one, as rvsadm does.
            Response::Error {
                kind: ErrorKind::Busy,
                ..
            } => {
                std::thread::sleep(Duration::from_millis(10));
                c = connect(&fleet.sock);
                continue;
            }
            other => panic!("{other:?}"),
        };
        assert!(!local, "DR sessions have no local address");
        largest = largest.max(size);
        pages.push(conns.len());
        for v in &conns {
            let i = session_of(v.source, v.sport).expect("one of the fleet's clients");
            // Sessions are numbered on from one worker to the next.
            let owner = fleet
                .sizes
                .iter()
                .scan(0, |end, n| {
                    *end += n;
                    Some(*end)
                })
                .position(|end| i < end)
                .expect("a worker");
            assert_eq!(usize::from(v.worker), owner, "session {i}");
            assert_eq!(
                (v.vip, v.vport, v.dest, v.dport),
                (testkit::VIP.into(), 53, testkit::RS[0].into(), 53)
            );
            assert_eq!(
                (v.proto, v.state.as_str(), v.local),
                (ProtoName::Udp, "UDP", None)
            );
            assert!((1..=300).contains(&v.expire_secs), "{}", v.expire_secs);
            seen[i as usize] += 1;
        }
        if let (Some(n), Some(f)) = (next, from) {
            assert!(n > f, "the cursor moves on: {f:?} then {n:?}");
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    (seen, pages, largest)
}

#[test]
fn the_sessions_of_several_workers_are_listed_page_by_page_each_once() {
    // Worker 0 alone holds ten pages and more; worker 1 none; worker 2 less than one.
    let fleet = Fleet::start(&[21_000, 0, 4_500], Duration::from_millis(1));
    let (seen, pages, largest) = list(&fleet, None);
    let missed: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let twice: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    assert!(
        missed.is_empty(),
        "{} missed, first {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert!(twice.is_empty(), "{} seen twice: {twice:?}", twice.len());
    // Full pages (one spans workers 0 to 2) but the last.
    assert_eq!(
        pages.len(),
        25_500usize.div_ceil(CONNECTIONS_PAGE),
        "{pages:?}"
    );
    let (last, full) = pages.split_last().expect("pages");
    assert!(full.iter().all(|&n| n == CONNECTIONS_PAGE), "{pages:?}");
    assert_eq!(*last, 25_500 % CONNECTIONS_PAGE);
    assert!(largest < MAX_FRAME / 2, "a page of {largest} bytes");

    // A listing resumed at the empty worker 1 lists worker 2's sessions.
    let (seen, _, _) = list(&fleet, Some(ConnCursor { worker: 1, slot: 0 }));
    assert!(seen[..21_000].iter().all(|&n| n == 0));
    assert!(seen[21_000..].iter().all(|&n| n == 1));

    // Past the end of a table: an empty last page. A worker rvsd does not have: refused.
    let mut c = connect(&fleet.sock);
    let from = Some(ConnCursor {
        worker: 2,
        slot: 1 << 30,
    });
    assert_eq!(
        call(&mut c, Request::Connections { from }).0,
        Response::Connections {
            conns: vec![],
            next: None,
            local: false
        }
    );
    let from = Some(ConnCursor { worker: 3, slot: 0 });
    match call(&mut c, Request::Connections { from }).0 {
        Response::Error {
            kind: ErrorKind::Refused,
            message,
        } => assert_eq!(message, "no worker 3 to list sessions from (rvsd has 3)"),
        other => panic!("{other:?}"),
    }
}

/// The client address and port of a row of `rvsadm -L -n -c` (`UDP 04:59  UDP  SOURCE ...`).
fn row_source(line: &str) -> (Ipv4Addr, u16) {
    let source = line.split_whitespace().nth(3).expect("a source column");
    let (addr, port) = source.rsplit_once(':').expect("addr:port");
    (addr.parse().expect("address"), port.parse().expect("port"))
}

#[test]
fn rvsadm_lists_them_all_as_a_table_and_as_json() {
    let fleet = Fleet::start(&[6_000, 3_000], Duration::from_millis(1));
    let rvsadm = |args: &[&str]| {
        let out = Command::new(fleet::rvsadm_bin())
            .env_remove("RVS_SOCKET")
            .arg("--socket")
            .arg(&fleet.sock)
            .args(args)
            .output()
            .expect("run rvsadm");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty());
        String::from_utf8(out.stdout).expect("text")
    };
    let table = rvsadm(&["-L", "-n", "-c"]);
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("RVS connection entries"));
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination")
    );
    let mut seen = vec![0u8; 9_000];
    for line in lines {
        assert!(line.starts_with("UDP "), "{line}");
        assert!(line.ends_with(" 192.0.2.100:53     10.1.0.11:53"), "{line}");
        let (addr, port) = row_source(line);
        seen[session_of(addr.into(), port).expect("a fleet client") as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "each session on one row");

    let json = rvsadm(&["-L", "-n", "-c", "--json"]);
    let conns: Vec<proto::ConnView> = serde_json::from_str(&json).expect("one JSON array");
    let mut seen = vec![0u8; 9_000];
    for c in &conns {
        let i = session_of(c.source, c.sport).expect("a fleet client");
        assert_eq!(c.worker, u16::from(i >= 6_000));
        seen[i as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "each session in one element");
}

/// A million sessions in one worker (over fifteen of its bounded table walks): all listed,
/// each once, in full pages. About 20 s in a debug build.
#[test]
fn a_million_sessions_in_one_worker_are_all_listed_once() {
    let fleet = Fleet::start(&[1_000_000], Duration::from_millis(1));
    let (seen, pages, largest) = list(&fleet, None);
    let missed = seen.iter().filter(|&&n| n == 0).count();
    let twice = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missed, twice), (0, 0), "missed, seen more than once");
    assert_eq!(pages.len(), 1_000_000usize.div_ceil(CONNECTIONS_PAGE));
    let (last, full) = pages.split_last().expect("pages");
    assert!(full.iter().all(|&n| n == CONNECTIONS_PAGE));
    assert_eq!(*last, 1_000_000 % CONNECTIONS_PAGE);
    assert!(largest < MAX_FRAME / 2, "a page of {largest} bytes");
}
