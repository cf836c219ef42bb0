//! The sync daemon over real UDP sockets on the loopback interface (unicast peers): a
//! master's records reach the backup's worker ring, a backup that starts asks for a bulk
//! sync, and bad datagrams — garbage, another sync group, a truncated one — are counted and
//! change nothing; lost datagrams are counted from the sequence numbers. IPv6 sessions pass
//! through like IPv4 ones, to the backup worker that owns each.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use conntrack::{Proto, SessionState, TcpState};
use control::sync::{Role, SyncError, SyncPlane, SyncSettings};
use dataplane::snapshot::{Cidr, DirectorConfig, InterfaceConfig, Snapshot};
use dataplane::sync::{
    DatagramWriter, FlowOwner, SyncDrop, SyncHeader, SyncLink, SyncProxy, SyncRecord, SyncSession,
    SyncSession6,
};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn plane() -> (SyncPlane, Arc<SyncLink>) {
    let (p, link, _) = plane_on(Snapshot::build(&DirectorConfig::default()).unwrap());
    (p, link)
}

/// A plane on `snap`, with the cell that holds it (to change the services).
fn plane_on(snap: Snapshot) -> (SyncPlane, Arc<SyncLink>, Arc<ArcSwap<Snapshot>>) {
    let link = Arc::new(SyncLink::default());
    let cell = Arc::new(ArcSwap::from_pointee(snap));
    (
        SyncPlane::new(vec![link.clone()], FlowOwner::new(1, &[]), cell.clone()),
        link,
        cell,
    )
}

/// A director with one mh service over two FullNAT dests weighing 1 and `weight`.
fn mh_director(weight: u32) -> Snapshot {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: Ipv4Addr::new(192, 0, 2, 100).into(),
        port: 80,
    };
    let mut svc = Service::new(key, SchedKind::Mh).unwrap();
    for (last, w) in [(11, 1), (12, weight)] {
        svc.add_dest(Dest {
            addr: Ipv4Addr::new(10, 1, 0, last).into(),
            port: 8080,
            weight: w,
            mode: ForwardMode::FullNat,
        })
        .unwrap();
    }
    let mut services = ServiceTable::default();
    services.add(svc).unwrap();
    Snapshot::build(&DirectorConfig {
        interfaces: vec![InterfaceConfig {
            addrs6: Vec::new(),
            name: "lan0".into(),
            port: 0,
            vlan: None,
            addrs: vec![Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24)],
            mtu: 1500,
        }],
        lips: vec![Ipv4Addr::new(10, 1, 0, 201)],
        services,
        ..DirectorConfig::default()
    })
    .unwrap()
}

fn settings(port: u16, peer: u16, sync_id: u8) -> SyncSettings {
    SyncSettings {
        interface: "lo".into(),
        sync_id,
        port,
        peers: vec![SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer)],
        ..SyncSettings::default()
    }
}

fn session(cport: u16) -> SyncRecord {
    SyncRecord::Session(SyncSession {
        proto: Proto::Tcp,
        client: (Ipv4Addr::new(198, 51, 100, 7), cport),
        vip: (Ipv4Addr::new(192, 0, 2, 100), 80),
        rip: Ipv4Addr::new(10, 1, 0, 11),
        rport: 8080,
        mode: ForwardMode::FullNat,
        lip: Some((Ipv4Addr::new(10, 1, 0, 201), cport)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 900_000,
        persist_ms: 0,
        synproxy: SyncProxy::Off,
        preamble: None,
    })
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn datagram(sync_id: u8, sender: u32, seq: u32, records: &[SyncRecord]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let header = SyncHeader {
        sync_id,
        flags: 0,
        sender,
        seq,
    };
    let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
    for r in records {
        w.push(r).unwrap();
    }
    w.datagram().to_vec()
}

#[test]
fn records_go_from_master_to_backup_and_a_backup_asks_for_bulk() {
    let (pa, pb) = (free_port(), free_port());
    let (mut a, la) = plane();
    let (mut b, lb) = plane();
    a.start(Role::Master, settings(pa, pb, 9)).unwrap();
    assert!(matches!(
        a.start(Role::Master, settings(pa, pb, 9)),
        Err(SyncError::AlreadyRunning(Role::Master))
    ));
    assert!(matches!(
        a.start(Role::Backup, settings(pa, pb, 10)),
        Err(SyncError::OtherSettings { .. })
    ));
    let asked = la.sweeps_asked();
    b.start(Role::Backup, settings(pb, pa, 9)).unwrap();
    // The backup's bulk request reaches the master, which asks its workers for a sweep.
    wait_for("bulk request", || la.sweeps_asked() != asked);
    assert_eq!(a.stats().bulk_requests_received.load(Relaxed), 1);
    assert_eq!(b.stats().bulk_requests_sent.load(Relaxed), 1);
    // 100 records, more than one datagram's worth (31 per 1472 bytes).
    for c in 0..100 {
        la.push_out(session(10_000 + c)).unwrap();
    }
    let mut got = Vec::new();
    wait_for("100 records", || {
        while let Some(r) = lb.pop_in() {
            got.push(r);
        }
        got.len() == 100
    });
    let want: Vec<SyncRecord> = (0..100).map(|c| session(10_000 + c)).collect();
    assert_eq!(got, want, "in order, unchanged");
    assert_eq!(a.stats().records_sent.load(Relaxed), 100);
    assert!(a.stats().datagrams_sent.load(Relaxed) >= 4);
    assert_eq!(b.stats().records_posted.load(Relaxed), 100);
    assert_eq!(b.stats().datagrams_lost.load(Relaxed), 0);
    let daemons = a.daemons();
    assert_eq!(daemons.len(), 1);
    assert_eq!(daemons[0].role, Role::Master);
    assert_eq!(b.peers().len(), 1, "the backup heard one sender");
    // The bulk sync is complete once the worker's sweep is done and sent: the master says so
    // and the backup (a starting cluster director) sees it.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        a.stats().bulk_ends_sent.load(Relaxed),
        0,
        "the sweep is not done"
    );
    assert_eq!(b.view().peers_complete, 0);
    la.finish_sweep(la.sweeps_asked());
    wait_for("bulk end", || b.view().peers_complete == 1);
    assert_eq!(a.stats().bulk_ends_sent.load(Relaxed), 1);
    assert!(b.peers()[0].1.bulk_ended.is_some());
    let v = b.view();
    assert!(v.backup && !v.master && v.peers_heard == 1);
    assert!(a.sweep_all().is_some(), "a master can sweep for a drain");
    assert!(
        b.sweep_all().is_none(),
        "a backup alone has nothing to send"
    );
    b.stop(Role::Backup).unwrap();
    assert!(matches!(
        b.stop(Role::Backup),
        Err(SyncError::NotRunning(Role::Backup))
    ));
    a.stop_all();
    assert!(a.daemons().is_empty());
}

#[test]
fn bad_datagrams_are_counted_and_change_nothing() {
    let pb = free_port();
    let (mut b, lb) = plane();
    b.start(Role::Backup, settings(pb, free_port(), 3)).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
    let good = datagram(3, 77, 1, &[session(1)]);
    tx.send_to(b"hello, sync: this is no sync datagram", to)
        .unwrap();
    tx.send_to(&datagram(4, 77, 1, &[session(2)]), to).unwrap();
    tx.send_to(&good[..good.len() - 3], to).unwrap();
    let mut bad_record = good.clone();
    // The record's mode byte (record offset 5, after the 20-byte header): not a mode.
    bad_record[20 + 5] = 9;
    tx.send_to(&bad_record, to).unwrap();
    tx.send_to(&good, to).unwrap();
    // Seq 1, then 5: three lost.
    tx.send_to(&datagram(3, 77, 5, &[session(3)]), to).unwrap();
    let drops = |d: SyncDrop| b.stats().datagram_drops[d.index()].load(Relaxed);
    wait_for("every datagram seen", || {
        b.stats().datagrams_received.load(Relaxed) == 3
    });
    assert_eq!(drops(SyncDrop::BadMagic), 1);
    assert_eq!(drops(SyncDrop::WrongSyncId), 1);
    assert_eq!(drops(SyncDrop::Truncated), 1);
    assert_eq!(
        b.stats().record_drops[SyncDrop::BadMode.index()].load(Relaxed),
        1
    );
    assert_eq!(b.stats().datagrams_lost.load(Relaxed), 3);
    let mut got = Vec::new();
    while let Some(r) = lb.pop_in() {
        got.push(r);
    }
    assert_eq!(got, [session(1), session(3)]);
}

#[test]
fn settings_are_checked() {
    let (mut p, _) = plane();
    let bad = [
        SyncSettings {
            interface: String::new(),
            ..settings(1, 2, 0)
        },
        SyncSettings {
            peers: vec![],
            group: Ipv4Addr::new(10, 0, 0, 1),
            ..settings(1, 2, 0)
        },
        SyncSettings {
            maxlen: 40,
            ..settings(1, 2, 0)
        },
        // One byte short of the header and the longest record (an IPv6 session's).
        SyncSettings {
            maxlen: (dataplane::sync::wire::header::LEN + dataplane::sync::MAX_RECORD_LEN - 1)
                as u16,
            ..settings(1, 2, 0)
        },
        SyncSettings {
            interface: "no-such-if0".into(),
            ..settings(free_port(), 2, 0)
        },
    ];
    for s in bad {
        let e = p.start(Role::Master, s.clone()).unwrap_err();
        assert!(!e.to_string().is_empty(), "{s:?}");
        assert!(p.daemons().is_empty());
    }
}

#[test]
fn a_flood_fills_the_ring_and_the_rest_is_counted() {
    let pb = free_port();
    let (mut b, lb) = plane();
    b.start(Role::Backup, settings(pb, free_port(), 5)).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb);
    let records: Vec<SyncRecord> = (0..31).map(|c| session(c + 1)).collect();
    for seq in 0..1000 {
        tx.send_to(&datagram(5, 99, seq, &records), to).unwrap();
    }
    // What the socket may have dropped of the flood shows as lost at the next datagram.
    std::thread::sleep(Duration::from_millis(200));
    tx.send_to(&datagram(5, 99, 1000, &records[..1]), to)
        .unwrap();
    let s = b.stats();
    wait_for("the flood read", || {
        s.datagrams_received.load(Relaxed) + s.datagrams_lost.load(Relaxed) == 1001
    });
    let (r, p, d) = (
        s.records_received.load(Relaxed),
        s.records_posted.load(Relaxed),
        s.records_dropped.load(Relaxed),
    );
    assert_eq!(p, 8192, "the ring's depth");
    assert_eq!(r, p + d);
    let lost = s.datagrams_lost.load(Relaxed);
    assert!(
        r > 8192 && lost < 1000,
        "{r} records received, {lost} datagrams lost"
    );
    let mut n = 0;
    while lb.pop_in().is_some() {
        n += 1;
    }
    assert_eq!(n, 8192);
}

/// Each master sends its view of its services every second and when they change; a backup
/// whose services differ counts it, says which peer in `-L --daemon`, and sees it agree
/// again once both have the same services.
#[test]
fn a_peer_with_other_services_is_counted_and_shown() {
    let (pa, pb) = (free_port(), free_port());
    let (mut a, la, cell_a) = plane_on(mh_director(1));
    let (mut b, lb, cell_b) = plane_on(mh_director(1));
    b.start(Role::Backup, settings(pb, pa, 4)).unwrap();
    a.start(Role::Master, settings(pa, pb, 4)).unwrap();
    let agrees = |b: &SyncPlane| match b.response(&[]) {
        proto::Response::Daemons { peers, .. } => peers.first().and_then(|p| p.view_agrees),
        other => panic!("{other:?}"),
    };
    wait_for("the master's view", || agrees(&b).is_some());
    assert_eq!(agrees(&b), Some(true));
    assert_eq!(b.stats().view_mismatches.load(Relaxed), 0);
    let first = b.peers()[0].1.view.unwrap();
    assert_eq!(first.services, 1);
    // Another weight on the master: its new view goes out at once, not after a second.
    let t = Instant::now();
    cell_a.store(Arc::new(mh_director(3)));
    wait_for("the mismatch", || {
        b.stats().view_mismatches.load(Relaxed) > 0
    });
    assert!(t.elapsed() < Duration::from_millis(900), "sent on change");
    assert_eq!(agrees(&b), Some(false));
    match b.response(&[]) {
        proto::Response::Daemons {
            peers, counters, ..
        } => {
            assert_eq!(peers[0].view_services, Some(1));
            assert_ne!(peers[0].view_digest, Some(format!("{:016x}", first.digest)));
            assert!(counters
                .iter()
                .any(|(n, v)| n == "rvs_sync_view_mismatches_total" && *v > 0));
        }
        other => panic!("{other:?}"),
    }
    // Sessions still flow: the view is reported, not a reason to refuse the peer's records.
    la.push_out(session(20_000)).unwrap();
    wait_for("a record after the mismatch", || lb.pop_in().is_some());
    // The backup gets the same edit: they agree again with the master's next view.
    cell_b.store(Arc::new(mh_director(3)));
    wait_for("agreement", || agrees(&b) == Some(true));
    a.stop_all();
    b.stop_all();
}

/// An IPv6 session on `lport` (FullNAT66, or NAT64 when `nat64`).
fn session6(cport: u16, lport: u16, nat64: bool) -> SyncRecord {
    use std::net::{IpAddr, Ipv6Addr};
    let (rip, lip): (IpAddr, IpAddr) = if nat64 {
        (
            Ipv4Addr::new(10, 1, 0, 11).into(),
            Ipv4Addr::new(10, 1, 0, 201).into(),
        )
    } else {
        (
            "2001:db8:10:1::11".parse::<Ipv6Addr>().unwrap().into(),
            "2001:db8:10:1::201".parse::<Ipv6Addr>().unwrap().into(),
        )
    };
    SyncRecord::Session6(SyncSession6 {
        proto: Proto::Tcp,
        client: ("2001:db8:99::7".parse().unwrap(), cport),
        vip: ("2001:db8:2::100".parse().unwrap(), 80),
        rip,
        rport: 8080,
        mode: ForwardMode::FullNat,
        lip: Some((lip, lport)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 900_000,
        persist_ms: 0,
        synproxy: SyncProxy::Off,
        preamble: None,
    })
}

/// IPv6 sessions (FullNAT66 and NAT64) go from the master's worker to the backup's with the
/// IPv4 ones, counted alike, each to the backup worker that owns its LIP port; one the rules
/// refuse is counted by reason.
#[test]
fn ipv6_sessions_pass_through_to_the_worker_that_owns_them() {
    let (pa, pb) = (free_port(), free_port());
    let (mut a, la) = plane();
    let snap = Snapshot::build(&DirectorConfig::default()).unwrap();
    let range = snap.lport_range();
    let lb: Vec<Arc<SyncLink>> = (0..2).map(|_| Arc::new(SyncLink::default())).collect();
    let cell = Arc::new(ArcSwap::from_pointee(snap));
    let mut b = SyncPlane::new(lb.clone(), FlowOwner::new(2, &[]), cell);
    a.start(Role::Master, settings(pa, pb, 5)).unwrap();
    b.start(Role::Backup, settings(pb, pa, 5)).unwrap();
    let (low, high) = (*range.start(), *range.end());
    let sent = [
        session6(1, low, false),
        session(40_000),
        session6(3, high, true),
        session6(4, high, false),
        session6(5, low, true),
    ];
    for r in sent {
        la.push_out(r).unwrap();
    }
    let mut got: [Vec<SyncRecord>; 2] = Default::default();
    wait_for("5 records", || {
        for (w, l) in lb.iter().enumerate() {
            while let Some(r) = l.pop_in() {
                got[w].push(r);
            }
        }
        got[0].len() + got[1].len() == 5
    });
    let owner = |lport| dataplane::lip::LipPool::worker_of(range.clone(), 2, lport).unwrap();
    assert_eq!((owner(low), owner(high)), (0, 1));
    let on = |w: u16| -> Vec<SyncRecord> {
        sent.iter()
            .filter(|r| match r {
                SyncRecord::Session6(s) => owner(s.lip.unwrap().1) == w,
                SyncRecord::Session(s) => owner(s.lip.unwrap().1) == w,
                _ => false,
            })
            .copied()
            .collect()
    };
    assert_eq!(
        got,
        [on(0), on(1)],
        "each on its owner, in order, unchanged"
    );
    assert_eq!(a.stats().records_sent.load(Relaxed), 5);
    // (Records received include the master's views of its services, which are not posted.)
    assert!(b.stats().records_received.load(Relaxed) >= 5);
    assert_eq!(b.stats().records_posted.load(Relaxed), 5);
    // A NAT64 record written with family 6 (its IPv4 addresses read as IPv6): refused.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut bad = datagram(5, 77, 1, &[session6(6, low, true)]);
    let family = 20 + dataplane::sync::wire::session6::FAMILY;
    bad[family] = 6;
    tx.send_to(&bad, SocketAddrV4::new(Ipv4Addr::LOCALHOST, pb))
        .unwrap();
    let refused = || b.stats().record_drops[SyncDrop::BadFamily.index()].load(Relaxed);
    wait_for("the refusal counted", || refused() == 1);
    assert_eq!(b.stats().records_posted.load(Relaxed), 5);
    let counters = b.counters(&[]);
    assert!(counters
        .iter()
        .any(|(n, v)| n == "rvs_sync_records_refused_total{bad_family}" && *v == 1));
    a.stop_all();
    b.stop_all();
}
