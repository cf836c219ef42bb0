//! The control server over its real Unix socket, with a real worker (on in-memory ports)
//! behind it: changes are applied or refused whole, listings carry the worker's counters,
//! `-c` lists the worker's sessions, `-Z` zeroes, bad input changes nothing, a silent client
//! does not block another, and the metrics endpoint serves Prometheus text.

#[path = "support/fleet.rs"]
mod fleet;

use control::model::Model;
use control::server::Server;
use control::state::ControlState;
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::DirectorConfig;
use dataplane::wire::EthernetAddress;
use dataplane::worker::{Worker, WorkerConfig};
use proto::{self, DestSpec, Envelope, ProtoName, Request, Response, SvcKey};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::*;

fn call(sock: &std::path::Path, request: Request) -> Response {
    let mut c = UnixStream::connect(sock).expect("connect");
    proto::write_frame(
        &mut c,
        &Envelope {
            version: proto::VERSION,
            request,
        },
    )
    .expect("send");
    proto::decode_response(&proto::read_frame_bytes(&mut c).expect("answer")).expect("decode")
}

fn key() -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: VIP.into(),
        port: 80,
    }
}

#[test]
fn control_server_end_to_end() {
    let cfg = DirectorConfig {
        lips: vec![LIP1],
        ..fleet::director()
    };
    let model = Model::new(cfg).expect("model");
    let pool = MemPool::new(512);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 64),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 64),
    ];
    let mut worker = Worker::new(WorkerConfig::default(), ports, model.cell()).expect("worker");
    worker
        .neighbours_mut()
        .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
    worker
        .neighbours_mut()
        .insert_static(RS[0], EthernetAddress(rs_mac(0)));
    let state = Arc::new(Mutex::new(ControlState::new(
        model,
        vec![worker.stats_handle()],
        vec![worker.mailbox_handle()],
    )));
    let dir = std::env::temp_dir().join(format!("rvs-ctl-{}", std::process::id()));
    let sock = dir.join("sub").join("rvsd.sock");
    let server = Server::start(
        &sock,
        Some("127.0.0.1:0".parse().unwrap()),
        state.clone(),
        &[],
    )
    .expect("server");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second server on the same live socket is refused.
    assert!(Server::start(&sock, None, state.clone(), &[]).is_err());

    // ipvsadm -A / -a through the socket.
    let add = Request::AddService {
        service: key(),
        scheduler: "wrr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    };
    assert_eq!(call(&sock, add.clone()), Response::Done);
    let dest = DestSpec {
        addr: RS[0].into(),
        port: 8080,
        weight: 2,
        mode: "fullnat".into(),
    };
    assert_eq!(
        call(
            &sock,
            Request::AddDest {
                service: key(),
                dest: dest.clone()
            }
        ),
        Response::Done
    );

    // Refused changes say why and change nothing.
    let listing = call(&sock, Request::List { service: None });
    for (req, text) in [
        (add, "Service already exists"),
        (
            Request::AddDest {
                service: key(),
                dest: DestSpec {
                    mode: "route".into(),
                    ..dest.clone()
                },
            },
            "cannot map ports",
        ),
        (
            Request::DeleteService {
                service: SvcKey { port: 81, ..key() },
            },
            "No such service",
        ),
        (
            Request::AddService {
                service: SvcKey { port: 81, ..key() },
                scheduler: "wrr".into(),
                persistence: Some(0),
                synproxy: false,
                proxy_protocol: None,
                toa: false,
            },
            "persistence must be",
        ),
        (
            Request::Batch {
                requests: vec![
                    Request::Clear,
                    Request::AddDest {
                        service: key(),
                        dest: dest.clone(),
                    },
                ],
            },
            "Service not defined",
        ),
    ] {
        match call(&sock, req) {
            Response::Error { message, .. } => assert!(message.contains(text), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        call(&sock, Request::List { service: None }),
        listing,
        "nothing changed"
    );

    // Bad bytes: an error answer, nothing changed, and the server still serves.
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(&5u32.to_be_bytes()).unwrap();
    c.write_all(b"hello").unwrap();
    let r = proto::decode_response(&proto::read_frame_bytes(&mut c).unwrap()).unwrap();
    assert!(
        matches!(
            r,
            Response::Error {
                kind: proto::ErrorKind::BadRequest,
                ..
            }
        ),
        "{r:?}"
    );
    let mut c = UnixStream::connect(&sock).unwrap();
    c.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let r = proto::decode_response(&proto::read_frame_bytes(&mut c).unwrap()).unwrap();
    assert!(
        matches!(r, Response::Error { ref message, .. } if message.contains("larger than")),
        "{r:?}"
    );
    // A client that connects and never speaks does not hold up anyone.
    let _silent = UnixStream::connect(&sock).unwrap();
    assert_eq!(call(&sock, Request::List { service: None }), listing);

    // Traffic through the worker: the listing shows its counters.
    worker.poll(1);
    let syn = Frame::tcp(CIP, 40000, VIP, 80, SYN).build();
    assert!(worker.port_mut(WAN).inject(&syn));
    worker.poll(2);
    let out = worker.port_mut(LAN).take_tx();
    let s = decode(&out[0]);
    assert!(worker.port_mut(LAN).inject(
        &Frame::tcp(RS[0], 8080, s.src, s.sport, SYN | ACK)
            .via_rs(0)
            .build()
    ));
    // The server's SYN/ACK crosses the director before the client's ACK does.
    worker.poll(3);
    assert!(worker
        .port_mut(WAN)
        .inject(&Frame::tcp(CIP, 40000, VIP, 80, ACK).build()));
    worker.poll(3);
    match call(
        &sock,
        Request::List {
            service: Some(key()),
        },
    ) {
        Response::Services { services } => {
            let d = &services[0].dests[0];
            assert_eq!(
                (d.forward.as_str(), d.weight, d.active, d.inactive),
                ("FullNat", 2, 1, 0)
            );
            assert_eq!((d.stats.conns, d.stats.inpkts, d.stats.outpkts), (1, 2, 1));
            assert_eq!(services[0].stats.inbytes, 80);
        }
        other => panic!("{other:?}"),
    }

    // -c: the worker answers from its slow jobs (run here by a thread of the test).
    let stop = Arc::new(AtomicBool::new(false));
    let (sp, mut w) = (stop.clone(), worker);
    let t = std::thread::spawn(move || {
        let mut now = 10;
        while !sp.load(Ordering::Acquire) {
            w.slow_jobs(now);
            now += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        w
    });
    match call(&sock, Request::Connections { from: None }) {
        Response::Connections { conns, next, local } => {
            assert_eq!((conns.len(), next), (1, None));
            assert!(local, "a FullNAT session holds a LIP port");
            let c = &conns[0];
            assert_eq!(
                (c.source, c.sport, c.vip, c.vport, c.dest, c.dport),
                (CIP.into(), 40000, VIP.into(), 80, RS[0].into(), 8080)
            );
            assert_eq!(c.state, "ESTABLISHED");
            assert_eq!(c.local.map(|l| l.0), Some(LIP1.into()));
            assert!((899..=900).contains(&c.expire_secs), "{}", c.expire_secs);
        }
        other => panic!("{other:?}"),
    }
    stop.store(true, Ordering::Release);
    let _worker = t.join().unwrap();

    // --lips: the session's pair is in use on LIP1, none in quarantine; metrics agree.
    match call(&sock, Request::Lips) {
        Response::Lips {
            pools,
            quarantine_secs,
            usage,
            ..
        } => {
            assert_eq!((pools, quarantine_secs), (16, 60));
            let u = usage
                .iter()
                .find(|u| u.lip == std::net::IpAddr::from(LIP1))
                .expect("LIP1 listed");
            assert_eq!((u.worker, u.in_use, u.quarantined), (0, 1, 0));
            assert_eq!(u.free, 16 * 64512 - 1);
        }
        other => panic!("{other:?}"),
    }

    // -Z zeroes the counters (not the live connection gauges).
    assert_eq!(call(&sock, Request::Zero { service: None }), Response::Done);
    match call(&sock, Request::List { service: None }) {
        Response::Services { services } => {
            let d = &services[0].dests[0];
            assert_eq!((d.stats.conns, d.stats.inpkts, d.active), (0, 0, 1));
        }
        other => panic!("{other:?}"),
    }

    // --set and --timeout.
    assert_eq!(
        call(
            &sock,
            Request::SetTimeouts {
                tcp: 600,
                tcpfin: 0,
                udp: 30
            }
        ),
        Response::Done
    );
    assert_eq!(
        call(&sock, Request::Timeouts),
        Response::Timeouts {
            tcp: 600,
            tcpfin: 60,
            udp: 30
        }
    );

    // Prometheus text.
    let mut m = std::net::TcpStream::connect(server.metrics_addr().unwrap()).unwrap();
    m.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(
        text.contains(
            "rvs_dest_connections_active{local_address=\"192.0.2.100\",local_port=\"80\",remote_address=\"10.1.0.11\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 1"
        ),
        "{text}"
    );
    for name in [
        "rvs_worker_rx_packets_total",
        "rvs_worker_icmp_errors_relayed_total",
        "rvs_worker_synproxy_cookies_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} counter\n{name}{{worker=\"0\"}} ")),
            "{name}: {text}"
        );
    }

    server.stop();
    assert!(!sock.exists(), "socket removed at stop");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_worker_counter_is_listed_and_exported() {
    use dataplane::stats::WorkerStats;
    use dataplane::{Counter, Counters};
    let model = Model::new(DirectorConfig::default()).expect("model");
    // Each counter gets its own value, so a counter published in another's place shows.
    let mut counters = Counters::default();
    for c in Counter::ALL {
        counters.add(*c, 1000 + c.index() as u64);
    }
    let stats = WorkerStats::new();
    stats.worker.publish(&counters);
    let mut state = ControlState::new(model, vec![stats], Vec::new());
    let Response::Workers { workers } = state.handle(Request::Workers) else {
        panic!("not a workers answer");
    };
    let listed: Vec<(String, u64)> = workers[0].counters.clone();
    let expected: Vec<(String, u64)> = Counter::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 1000 + c.index() as u64))
        .collect();
    assert_eq!(listed, expected);
    // The ones no listing or metric showed before.
    for name in [
        "synproxy_syn_retries",
        "arp_to_peers",
        "arp_to_kernel",
        "sessions_reused",
        "parked",
        "arp_replies",
        "arp_requests",
        "icmp_echo_replies",
        "snapshots_refused",
    ] {
        assert!(listed.iter().any(|(n, _)| n == name), "{name} not listed");
    }
    let text = state.metrics();
    for c in Counter::ALL {
        let line = format!(
            "{}{{worker=\"0\"}} {}\n",
            c.metric(),
            1000 + c.index() as u64
        );
        assert!(text.contains(&line), "{line}: {text}");
    }
}

#[test]
fn lip_pressure_is_listed_and_exported() {
    use dataplane::stats::WorkerStats;
    let lip6: std::net::Ipv6Addr = "2001:db8:10:1::201".parse().unwrap();
    let cfg = DirectorConfig {
        lips: vec![LIP1],
        lips6: vec![lip6],
        ..DirectorConfig::default()
    };
    let model = Model::new(cfg).expect("model");
    let stats = WorkerStats::with_lips(1, 1);
    let g = &stats.lips[0];
    g.addr.store(u64::from(u32::from(LIP1)), Ordering::Relaxed);
    g.in_use.store(5, Ordering::Relaxed);
    g.quarantined.store(7, Ordering::Relaxed);
    g.capacity.store(100, Ordering::Relaxed);
    // The IPv6 pool's gauges name their LIP by its index in the configuration.
    let g6 = &stats.lips6[0];
    g6.addr.store(0, Ordering::Relaxed);
    g6.in_use.store(3, Ordering::Relaxed);
    g6.capacity.store(50, Ordering::Relaxed);
    let mut state = ControlState::new(model, vec![stats], Vec::new());
    let Response::Lips { usage, lips6, .. } = state.handle(Request::Lips) else {
        panic!("not a lips answer");
    };
    assert_eq!(lips6, [lip6]);
    let seen: Vec<_> = usage
        .iter()
        .map(|u| (u.lip, u.in_use, u.quarantined, u.free))
        .collect();
    assert_eq!(seen, [(LIP1.into(), 5, 7, 88), (lip6.into(), 3, 0, 47)]);
    let text = state.metrics();
    for (lip, st, n) in [
        (LIP1.to_string(), "in_use", 5),
        (LIP1.to_string(), "quarantine", 7),
        (LIP1.to_string(), "free", 88),
        (lip6.to_string(), "in_use", 3),
        (lip6.to_string(), "free", 47),
    ] {
        let line = format!("rvs_lip_ports{{worker=\"0\",lip=\"{lip}\",state=\"{st}\"}} {n}\n");
        assert!(text.contains(&line), "{line}: {text}");
    }
}
