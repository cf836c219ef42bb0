//! `-L -c` lists persistence templates as ipvsadm lists IPVS's: beside each session of a
//! persistent service, one line per client with state `NONE`, the client's port 0, the
//! service's port and the dest's (`TCP 05:59  NONE  CIP:0  VIP:80  RIP:8080`), its expiry the
//! persistence timeout while the client has connections. Through the real views code, from a
//! real worker on in-memory ports whose slow jobs answer on a thread of the test.

#[path = "support/fleet.rs"]
mod fleet;

use control::views;
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::Snapshot;
use dataplane::wire::EthernetAddress;
use dataplane::worker::{Worker, WorkerConfig};
use proto::{ConnView, Response};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use testkit::*;

/// Every `-L -c` row of a worker whose persistent service (TCP VIP:80, 300 s, NAT to RS[0]:8080)
/// took connections from CIP (ports 40000 and 40001) and from 198.51.100.8 (port 41000).
fn listed() -> Vec<ConnView> {
    let mut cfg = fleet::director();
    let key = ServiceKey {
        proto: conntrack::Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let mut svc = Service::new(key, SchedKind::Rr).unwrap();
    svc.set_persistence(Some(300)).unwrap();
    svc.add_dest(Dest {
        addr: RS[0].into(),
        port: 8080,
        weight: 1,
        mode: ForwardMode::Nat,
    })
    .unwrap();
    cfg.services.add(svc).unwrap();
    let cell = Arc::new(arc_swap::ArcSwap::from_pointee(
        Snapshot::build(&cfg).expect("config"),
    ));
    let pool = MemPool::new(512);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 64),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 64),
    ];
    let mut w = Worker::new(WorkerConfig::default(), ports, cell).expect("worker");
    w.neighbours_mut()
        .insert_static(RS[0], EthernetAddress(rs_mac(0)));
    let other = std::net::Ipv4Addr::new(198, 51, 100, 8);
    for (src, sport) in [(CIP, 40000), (CIP, 40001), (other, 41000)] {
        assert!(w
            .port_mut(WAN)
            .inject(&Frame::tcp(src, sport, VIP, 80, SYN).build()));
        w.poll(1);
        assert_eq!(w.port_mut(LAN).take_tx().len(), 1, "the SYN reaches the RS");
    }
    let (mailboxes, stats) = (vec![w.mailbox_handle()], vec![w.stats_handle()]);
    let stop = Arc::new(AtomicBool::new(false));
    let sp = stop.clone();
    let t = std::thread::spawn(move || {
        while !sp.load(Ordering::Acquire) {
            w.slow_jobs(2);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let conns = match views::connections(&mailboxes, &stats, None) {
        Response::Connections { conns, next, .. } => {
            assert_eq!(next, None, "one page");
            conns
        }
        other => panic!("{other:?}"),
    };
    stop.store(true, Ordering::Release);
    t.join().unwrap();
    conns
}

#[test]
fn a_persistent_clients_template_is_listed_beside_its_sessions() {
    let conns = listed();
    let row = |c: &ConnView| {
        (
            c.state.clone(),
            (c.source, c.sport),
            (c.vip, c.vport),
            (c.dest, c.dport),
        )
    };
    let sessions: Vec<_> = conns
        .iter()
        .filter(|c| c.state != "NONE")
        .map(row)
        .collect();
    let templates: Vec<_> = conns.iter().filter(|c| c.state == "NONE").collect();
    assert_eq!(sessions.len(), 3, "{conns:?}");
    assert!(sessions.iter().all(|s| s.0 == "SYN_RECV"), "{sessions:?}");
    // One template per client, after the sessions: port 0 for the client, the service's
    // port and the dest's, as IPVS keys a port service's template.
    let mut got: Vec<_> = templates.iter().map(|c| row(c)).collect();
    got.sort();
    let other: std::net::IpAddr = std::net::Ipv4Addr::new(198, 51, 100, 8).into();
    let want = |src: std::net::IpAddr| {
        (
            "NONE".to_owned(),
            (src, 0),
            (VIP.into(), 80),
            (RS[0].into(), 8080),
        )
    };
    let mut expected = vec![want(CIP.into()), want(other)];
    expected.sort();
    assert_eq!(got, expected, "{conns:?}");
    let first_template = conns.iter().position(|c| c.state == "NONE").unwrap();
    assert!(conns[first_template..].iter().all(|c| c.state == "NONE"));
    // Held by its client's connections: it expires the persistence timeout after them.
    for t in &templates {
        assert!((299..=300).contains(&t.expire_secs), "{t:?}");
        assert_eq!((t.proto, t.local), (proto::ProtoName::Tcp, None));
    }
}
