//! rvsd as a process on DPDK virtual ports, with 2 workers and 2 queues per port.
//!
//! rvsd owns two `net_vhost` ports (client side "wan", real-server side "lan"); this test
//! process is the other end of both, through `net_virtio_user` ports, and plays the client,
//! the router and the real servers. Because a virtio-user TX queue feeds the vhost RX queue of
//! the same number, the test chooses which worker receives each frame — so it can deliver a
//! reply to the worker that does *not* own the session and check it is handed over and
//! forwarded. FullNAT and NAT are checked in both directions, and the director's ARP and ICMP
//! answers; idle, the workers sleep (`idle_sleep_us`); then SIGTERM must stop rvsd cleanly
//! with every worker's counters on stdout.

mod common;

use common::{Peer, Rvsd};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use testkit::*;

const WAN_SIDE: usize = 0;
const LAN_SIDE: usize = 1;

const VIP_NAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
const RS_FNAT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
const RS_NAT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 12);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 201);

fn config(dir: &Path, prefix: &str) -> String {
    format!(
        r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "1024", "--single-file-segments", "--file-prefix", "{prefix}"]

[daemon]
workers = 2
idle_sleep_us = 1000
table_capacity = 65536
mbufs = 8191
socket = "{dir}/rvsd.sock"
metrics = "127.0.0.1:0"

[[port]]
name = "wan"
device = "net_vhost0,iface={dir}/wan.sock,queues=2"
rss = false

[[port]]
name = "lan"
device = "net_vhost1,iface={dir}/lan.sock,queues=2"
rss = false

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"

[fullnat]
lips = ["10.1.0.201"]

[[service]]
proto = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "rr"
  [[service.dest]]
  addr = "10.1.0.11"
  port = 8080
  mode = "fullnat"

[[service]]
proto = "tcp"
vip = "192.0.2.101"
port = 80
scheduler = "rr"
  [[service.dest]]
  addr = "10.1.0.12"
  port = 8080
  mode = "nat"

[[neighbour]]
ip = "192.0.2.254"
mac = "02:00:00:00:fe:fe"

[[neighbour]]
ip = "10.1.0.11"
mac = "02:00:00:01:00:0b"

[[neighbour]]
ip = "10.1.0.12"
mac = "02:00:00:01:00:0c"

[[neighbour]]
ip = "10.1.0.13"
mac = "02:00:00:01:00:0d"
"#,
        dir = dir.display()
    )
}

/// The worker owning a FullNAT lport: worker 0 has 1024..=33279, worker 1 the rest.
fn lport_owner(lport: u16) -> u16 {
    if lport <= 33279 {
        0
    } else {
        1
    }
}

/// The home worker of a client endpoint, as rvs computes it.
fn home(addr: Ipv4Addr, port: u16) -> u16 {
    dataplane::redirect::home(addr, port, 2)
}

/// rvsd's MACs on its two ports, learnt by ARP like any neighbour would.
struct Macs {
    wan: [u8; 6],
    lan: [u8; 6],
}

impl Macs {
    fn to_wan(&self, mut f: Frame) -> Frame {
        f.dst_mac = self.wan;
        f.src_mac = ROUTER_MAC;
        f
    }

    fn to_lan(&self, mut f: Frame, rs_mac_last: u8) -> Frame {
        f.dst_mac = self.lan;
        f.src_mac = [0x02, 0, 0, 0x01, 0, rs_mac_last];
        f
    }
}

#[test]
fn rvsd_forwards_fullnat_and_nat_across_two_workers() {
    let pid = std::process::id();
    let rvsd = Rvsd::start(
        "vhost",
        |dir| config(dir, &format!("rvsd-t{pid}")),
        &["wan.sock", "lan.sock"],
    );
    let mut p = Peer::start(
        "vhost",
        &[
            (rvsd.dir.join("wan.sock"), "02:00:00:00:fe:fe"),
            (rvsd.dir.join("lan.sock"), "02:00:00:01:00:0b"),
        ],
        2,
    );
    let macs = Macs {
        wan: p.resolve(WAN_SIDE, ROUTER_MAC, ROUTER, VIP),
        lan: p.resolve(LAN_SIDE, [0x02, 0, 0, 0x01, 0, 0x0b], RS_FNAT, LIP),
    };

    // FullNAT: SYN on queue 0 (worker 0); the RS's SYN/ACK on queue 1 (worker 1).
    let s = p.exchange(
        WAN_SIDE,
        0,
        &macs.to_wan(Frame::tcp(CIP, 40000, VIP, 80, SYN)).build(),
        LAN_SIDE,
    );
    assert_eq!((s.src, s.dst, s.dport, s.ttl), (LIP, RS_FNAT, 8080, 63));
    assert_eq!(s.dst_mac, [0x02, 0, 0, 0x01, 0, 0x0b]);
    let lport = s.sport;
    let owner = lport_owner(lport);
    assert_eq!(
        owner, 0,
        "the session was made by the worker that got the SYN"
    );
    let other = 1 - owner;
    let r = p.exchange(
        LAN_SIDE,
        other,
        &macs
            .to_lan(Frame::tcp(RS_FNAT, 8080, LIP, lport, SYN | ACK), 0x0b)
            .build(),
        WAN_SIDE,
    );
    assert_eq!((r.src, r.sport, r.dst, r.dport), (VIP, 80, CIP, 40000));
    assert_eq!(r.dst_mac, ROUTER_MAC);
    // Data both ways, replies again on the non-owning worker.
    let d = p.exchange(
        WAN_SIDE,
        owner,
        &macs
            .to_wan(Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH).payload(b"GET / HTTP/1.0\r\n\r\n"))
            .build(),
        LAN_SIDE,
    );
    assert_eq!(
        (d.dst, d.sport, d.payload.as_slice()),
        (RS_FNAT, lport, &b"GET / HTTP/1.0\r\n\r\n"[..])
    );
    let d = p.exchange(
        LAN_SIDE,
        other,
        &macs
            .to_lan(
                Frame::tcp(RS_FNAT, 8080, LIP, lport, ACK | PSH)
                    .payload(b"HTTP/1.0 200 OK\r\n\r\n"),
                0x0b,
            )
            .build(),
        WAN_SIDE,
    );
    assert_eq!(
        (d.dst, d.dport, d.payload.as_slice()),
        (CIP, 40000, &b"HTTP/1.0 200 OK\r\n\r\n"[..])
    );

    // NAT: a client homed on worker 1 sends its SYN to worker 0, and the RS answers to
    // worker 0 again; both are handed to worker 1, which owns the session.
    let cport = (41000..42000)
        .find(|&c| home(CIP, c) == 1)
        .expect("a port homed on worker 1");
    let s = p.exchange(
        WAN_SIDE,
        0,
        &macs
            .to_wan(Frame::tcp(CIP, cport, VIP_NAT, 80, SYN))
            .build(),
        LAN_SIDE,
    );
    assert_eq!((s.src, s.sport, s.dst, s.dport), (CIP, cport, RS_NAT, 8080));
    let r = p.exchange(
        LAN_SIDE,
        0,
        &macs
            .to_lan(Frame::tcp(RS_NAT, 8080, CIP, cport, SYN | ACK), 0x0c)
            .build(),
        WAN_SIDE,
    );
    assert_eq!((r.src, r.sport, r.dst, r.dport), (VIP_NAT, 80, CIP, cport));

    // SIGHUP reload: the FullNAT service turns wrr with a changed weight and a new dest, and
    // a new service appears. The established session keeps its dest; new ones follow the
    // new weights.
    let path = rvsd.dir.join("rvsd.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let old_service = "scheduler = \"rr\"\n  [[service.dest]]\n  addr = \"10.1.0.11\"\n  port = 8080\n  mode = \"fullnat\"";
    assert!(text.contains(old_service));
    let mut text = text.replacen(
        old_service,
        "scheduler = \"wrr\"\n  [[service.dest]]\n  addr = \"10.1.0.11\"\n  port = 8080\n  weight = 1\n  mode = \"fullnat\"\n  [[service.dest]]\n  addr = \"10.1.0.13\"\n  port = 8080\n  weight = 3\n  mode = \"fullnat\"",
        1,
    );
    text.push_str(
        r#"
[[service]]
proto = "tcp"
vip = "192.0.2.102"
port = 80
  [[service.dest]]
  addr = "10.1.0.11"
  port = 9090
  mode = "fullnat"
"#,
    );
    std::fs::write(&path, text).expect("rewrite config");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &rvsd.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let vip3 = Ipv4Addr::new(192, 0, 2, 102);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let s = loop {
        p.send(
            WAN_SIDE,
            0,
            &macs.to_wan(Frame::tcp(CIP, 43000, vip3, 80, SYN)).build(),
        );
        let got = p.recv(LAN_SIDE, 1, std::time::Duration::from_millis(200));
        if let Some(f) = got.iter().find(|f| f[12..14] == [0x08, 0x00]) {
            break decode(f);
        }
        assert!(
            std::time::Instant::now() < until,
            "the reloaded service never answered"
        );
    };
    assert_eq!((s.src, s.dst, s.dport), (LIP, RS_FNAT, 9090));
    let d = p.exchange(
        WAN_SIDE,
        owner,
        &macs
            .to_wan(Frame::tcp(CIP, 40000, VIP, 80, ACK).payload(b"after reload"))
            .build(),
        LAN_SIDE,
    );
    assert_eq!(
        (d.sport, d.dst, d.dport),
        (lport, RS_FNAT, 8080),
        "session kept across reload"
    );
    // New sessions (all to worker 0) follow IPVS wrr over {10.1.0.11: 1, 10.1.0.13: 3}.
    let mut to_new = 0;
    for i in 0..8u16 {
        let s = p.exchange(
            WAN_SIDE,
            0,
            &macs
                .to_wan(Frame::tcp(CIP, 44000 + i, VIP, 80, SYN))
                .build(),
            LAN_SIDE,
        );
        to_new += usize::from(s.dst == Ipv4Addr::new(10, 1, 0, 13));
    }
    assert_eq!(to_new, 6, "3:1 over 8 new sessions");

    // ICMP echo to the VIP is answered by the director.
    let e = p.exchange(
        WAN_SIDE,
        1,
        &macs.to_wan(Frame::echo(CIP, VIP, true, 7)).build(),
        WAN_SIDE,
    );
    assert_eq!((e.src, e.dst, e.flags, e.sport), (VIP, CIP, 0, 7));

    // The control socket: the listing carries the workers' counters, -c their sessions.
    let sock = rvsd.dir.join("rvsd.sock");
    let call = |request: proto::Request| {
        let mut c = std::os::unix::net::UnixStream::connect(&sock).expect("control socket");
        proto::write_frame(
            &mut c,
            &proto::Envelope {
                version: proto::VERSION,
                request,
            },
        )
        .expect("send");
        proto::decode_response(&proto::read_frame_bytes(&mut c).expect("answer")).expect("decode")
    };
    match call(proto::Request::List { service: None }) {
        proto::Response::Services { services } => {
            let fnat = services
                .iter()
                .find(|s| s.key.vip == VIP)
                .expect("FullNAT service");
            // The dests in the service's order, newest first: the file's last one (10.1.0.13)
            // leads; each is found by its address here.
            let by_addr = |a: [u8; 4]| {
                fnat.dests
                    .iter()
                    .find(|d| d.addr == std::net::IpAddr::from(a))
                    .expect("a dest of the service")
            };
            assert_eq!(fnat.dests[0].addr, std::net::IpAddr::from([10, 1, 0, 13]));
            let d = by_addr([10, 1, 0, 11]);
            assert_eq!(
                (d.forward.as_str(), d.weight, d.stats.conns),
                ("FullNat", 1, 3)
            );
            assert_eq!(
                (d.stats.inpkts, d.stats.outpkts),
                (5, 2),
                "SYN, data, after-reload data and 2 new SYNs in; SYN/ACK, data out"
            );
            assert_eq!(
                (d.active, d.inactive),
                (1, 2),
                "1 established, 2 in SYN_RECV"
            );
            let n = by_addr([10, 1, 0, 13]);
            assert_eq!((n.weight, n.stats.conns, n.inactive), (3, 6, 6));
            let nat = services
                .iter()
                .find(|s| s.key.vip == VIP_NAT)
                .expect("NAT service");
            assert_eq!(
                (nat.dests[0].stats.conns, nat.dests[0].forward.as_str()),
                (1, "Masq")
            );
        }
        other => panic!("{other:?}"),
    }
    match call(proto::Request::Connections { from: None }) {
        proto::Response::Connections { conns, next, local } => {
            assert_eq!(next, None, "one page");
            assert!(local, "FullNAT sessions");
            assert_eq!(conns.len(), 11, "{conns:?}");
            let f = conns
                .iter()
                .find(|c| c.vip == VIP && c.sport == 40000)
                .expect("FullNAT session");
            assert_eq!((f.worker, f.local), (owner, Some((LIP.into(), lport))));
            let n = conns
                .iter()
                .find(|c| c.vip == VIP_NAT)
                .expect("NAT session");
            assert_eq!(
                n.worker, 1,
                "the NAT session lives on the client's home worker"
            );
        }
        other => panic!("{other:?}"),
    }

    // `idle_sleep_us`: the idle workers sleep (they block, and leave most of their core);
    // everything above was forwarded by workers that slept between the test's frames.
    let rpid = rvsd.child.id();
    for w in ["rvs-worker-0", "rvs-worker-1"] {
        let (s0, t0) = worker_usage(rpid, w);
        std::thread::sleep(Duration::from_secs(1));
        let (s1, t1) = worker_usage(rpid, w);
        let ticks_per_s = 100; // USER_HZ
        assert!(
            s1 - s0 >= 200,
            "{w}: an idle worker sleeping 1 ms blocks hundreds of times a second, not {}",
            s1 - s0
        );
        assert!(
            t1 - t0 <= ticks_per_s / 2,
            "{w}: an idle worker that sleeps leaves most of its core: {} ticks in 1 s",
            t1 - t0
        );
    }

    // SIGTERM: rvsd stops cleanly and reports its workers' counters.
    let st = rvsd.stop();
    assert!(st.status.success(), "rvsd exit {:?}\n{}", st.status, st.err);
    if std::env::var_os("RVS_DEMO").is_some() {
        println!(
            "\nrvsd forwarded FullNAT ({CIP}:40000 -> {VIP}:80 -> {LIP}:{lport} -> {RS_FNAT}:8080)"
        );
        println!("and NAT ({CIP}:{cport} -> {VIP_NAT}:80 -> {RS_NAT}:8080) in both directions;");
        println!("replies sent to the worker not owning their session were handed over.");
        println!("rvsd's counters at SIGTERM:\n{}", st.out);
    }
    // Worker 1 handed 2 FullNAT replies to worker 0; worker 0 handed the NAT SYN and reply to 1.
    assert_eq!(st.counter(1, "redirected_out"), 2, "{}", st.out);
    assert_eq!(st.counter(0, "redirected_in"), 2, "{}", st.out);
    assert_eq!(st.counter(0, "redirected_out"), 2, "{}", st.out);
    assert_eq!(st.counter(1, "redirected_in"), 2, "{}", st.out);
    assert_eq!(
        st.counter(0, "sessions_created") + st.counter(1, "sessions_created"),
        11,
        "{}",
        st.out
    );
    assert!(st.err.contains("worker stopped"), "{}", st.err);
    assert!(st.err.contains("configuration reloaded"), "{}", st.err);
    // vhost ports take no flow rules and do no RSS: the redirect rings carried the replies.
    assert_eq!(
        st.err.matches("no rte_flow steering").count(),
        2,
        "{}",
        st.err
    );
    // rvsd removed its EAL runtime directory; this process's own goes with the test.
    assert!(!Path::new(&format!("/var/run/dpdk/rvsd-t{pid}")).exists());
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/peer-vhost-{pid}"));
}

/// A worker thread's (voluntary context switches, CPU ticks in user and system mode), read
/// from /proc by its thread name.
fn worker_usage(pid: u32, name: &str) -> (u64, u64) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).expect("status");
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("voluntary_ctxt_switches");
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // Fields after the command's closing parenthesis: state is the 3rd, utime the 14th.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat")
            .1
            .split_whitespace()
            .collect();
        let ticks = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
        return (switches, ticks);
    }
    panic!("no thread {name} in rvsd {pid}");
}
