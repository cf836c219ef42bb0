//! Session sync between two directors' workers, in memory: director A opens sessions, its
//! worker queues sync records, the records go (through the wire format) to director B's
//! worker, and B forwards the flow's next packets exactly as A does — byte for byte, in every
//! mode, for TCP, UDP and ICMP, with the SYN proxy's shift and FullNAT's LIP port. Also:
//! state changes, refresh of a peer's session, conflicts with local sessions, bad records,
//! bulk sweeps and persistence templates; and cluster directors, each with LIPs of its own,
//! serving each other's FullNAT sessions on the peer's LIP. IPv6 sessions (FullNAT66, NAT66,
//! DR, TUN and NAT64) go the same way: synced, installed, and forwarded mid-stream by B both
//! ways, checksums valid.

mod common;

use std::sync::Arc;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::DirectorConfig;
use dataplane::sync::{
    Datagram, DatagramWriter, FlowOwner, SyncHeader, SyncLink, SyncProxy, SyncRecord, SyncSession,
    SyncSession6,
};
use dataplane::{Counter, DropReason};
use sched::{ForwardMode, SchedKind, ServiceKey};

const SYNC_ID: u8 = 7;

/// Two directors with the same configuration, A exporting, B installing.
struct Pair {
    a: Lab,
    la: Arc<SyncLink>,
    b: Lab,
    lb: Arc<SyncLink>,
}

impl Pair {
    fn new(cfg: &DirectorConfig) -> Pair {
        Pair::of(cfg, cfg)
    }

    /// A on `ca`, B on `cb` (cluster directors: each its own LIPs).
    fn of(ca: &DirectorConfig, cb: &DirectorConfig) -> Pair {
        let (a, la) = Lab::new(ca).synced();
        let (b, lb) = Lab::new(cb).synced();
        la.set_export(true, 0);
        let mut p = Pair { a, la, b, lb };
        // The export flag is read in the slow jobs.
        p.a.slow();
        p
    }

    /// A's slow jobs, then every queued record through one or more datagrams to B, then
    /// B's slow jobs. Returns the records sent.
    fn sync(&mut self) -> Vec<SyncRecord> {
        self.a.slow();
        let mut sent = Vec::new();
        while let Some(r) = self.la.pop_out() {
            sent.push(r);
        }
        let mut buf = vec![0u8; 1472];
        let mut pending: &[SyncRecord] = &sent;
        let owner = FlowOwner::new(1, &[]);
        while !pending.is_empty() {
            let header = SyncHeader {
                sync_id: SYNC_ID,
                flags: 0,
                sender: 1,
                seq: 0,
            };
            let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
            let mut n = 0;
            for r in pending {
                if w.push(r).is_err() {
                    break;
                }
                n += 1;
            }
            assert!(n > 0, "a record that never fits");
            let bytes = w.datagram().to_vec();
            let d = Datagram::parse(&bytes, SYNC_ID).expect("valid datagram");
            for r in d.records() {
                let r = r.expect("valid record");
                let snap = self.b.worker.snapshot().clone();
                assert_eq!(owner.owner(&snap, &r), 0);
                self.lb.post_in(r).unwrap();
            }
            pending = &pending[n..];
        }
        self.b.slow();
        sent
    }

    /// The same frame into both directors on `port`: what each sent.
    fn both(&mut self, port: u16, frame: &[u8]) -> (Out, Out) {
        (self.a.send(port, frame), self.b.send(port, frame))
    }

    /// The frame gives the same output on both directors, and some output (TUN's outer
    /// header aside: its identification is each director's own counter).
    fn same(&mut self, port: u16, frame: &[u8]) -> Out {
        let (oa, ob) = self.both(port, frame);
        let norm = |o: &Out| -> Vec<Vec<u8>> {
            let mut all: Vec<Vec<u8>> = o.wan.iter().chain(&o.lan).chain(&o.tap).cloned().collect();
            for f in &mut all {
                if f[14 + 9] == 4 {
                    f[18..20].fill(0);
                    f[24..26].fill(0);
                }
            }
            all
        };
        assert_eq!(
            (oa.wan.len(), oa.lan.len(), oa.tap.len()),
            (ob.wan.len(), ob.lan.len(), ob.tap.len())
        );
        assert!(oa.total() > 0, "A forwarded nothing");
        assert_eq!(norm(&oa), norm(&ob), "B forwards differently from A");
        oa
    }
}

fn count(lab: &Lab, c: Counter) -> u64 {
    lab.worker.counters().get(c)
}

/// Opens a TCP connection through A only (SYN, SYN/ACK, ACK): B never saw it. Returns the
/// RS index and the source port the RS saw.
fn open_on_a(p: &mut Pair, cport: u16, rs_port: u16) -> (usize, u16) {
    let out = p.a.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
    let s = decode(&out.lan[0]);
    let rs = (0..RS.len())
        .find(|&i| out.lan[0][0..6] == rs_mac(i))
        .unwrap();
    if s.proto == 6 && s.dst == RS[rs] {
        // NAT and FullNAT: the RS answers through the director (DR, TUN: past it).
        let synack = Frame::tcp(s.dst, rs_port, s.src, s.sport, SYN | ACK).via_rs(rs);
        assert_eq!(p.a.send(LAN, &synack.build()).wan.len(), 1);
    }
    assert_eq!(
        p.a.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, ACK).build())
            .lan
            .len(),
        1
    );
    (rs, s.sport)
}

/// A TCP connection established on A continues on B, both ways, in `mode`.
fn tcp_continues(mode: ForwardMode) {
    let rs_port = if mode.maps_ports() { 8080 } else { 80 };
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, rs_port, 1, mode), dest(1, rs_port, 1, mode)],
    );
    let mut p = Pair::new(&cfg);
    let (rs, sport) = open_on_a(&mut p, 40000, rs_port);
    let sent = p.sync();
    assert!(!sent.is_empty());
    let Some(SyncRecord::Session(last)) = sent.last() else {
        panic!("no session record: {sent:?}");
    };
    assert_eq!(last.state, SessionState::Tcp(TcpState::Established));
    assert_eq!(count(&p.b, Counter::SyncInstalled), 1);
    let data = Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH).payload(b"GET / HTTP/1.1\r\n\r\n");
    let out = p.same(WAN, &data.build());
    assert_eq!(out.lan[0][0..6], rs_mac(rs));
    let seen = decode(&out.lan[0]);
    if mode.maps_ports() {
        let reply = Frame::tcp(RS[rs], rs_port, seen.src, sport, ACK | PSH)
            .via_rs(rs)
            .payload(b"HTTP/1.1 200 OK\r\n\r\n");
        let back = p.same(LAN, &reply.build());
        let b = decode(&back.wan[0]);
        assert_eq!((b.src, b.dst), (VIP, CIP));
    }
    let s = p.b.worker.sessions().iter().next().unwrap().1;
    assert!(s.data.peer, "installed from the peer");
}

#[test]
fn fullnat_tcp_continues_on_the_peer() {
    tcp_continues(ForwardMode::FullNat);
}

#[test]
fn nat_tcp_continues_on_the_peer() {
    tcp_continues(ForwardMode::Nat);
}

#[test]
fn dr_tcp_continues_on_the_peer() {
    tcp_continues(ForwardMode::Dr);
}

#[test]
fn tun_tcp_continues_on_the_peer() {
    tcp_continues(ForwardMode::Tun);
}

#[test]
fn fullnat_lip_port_is_taken_on_the_peer() {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.lips = vec![LIP1];
    cfg.lport_range = 20_000..=20_001;
    cfg.lport_reuse.pools = 1;
    let mut p = Pair::new(&cfg);
    let (_, lport) = open_on_a(&mut p, 40000, 8080);
    let before = p.b.worker.lip_pool().unwrap().available();
    p.sync();
    assert_eq!(p.b.worker.lip_pool().unwrap().available(), before - 1);
    // B's own next connection gets the other port, never the synced one.
    let out = p.b.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    let other = decode(&out.lan[0]).sport;
    assert_ne!(other, lport);
    // And with both ports held, B refuses a third rather than reuse one.
    let out = p.b.send(WAN, &Frame::tcp(CIP, 40002, VIP, 80, SYN).build());
    assert_eq!(out.lan.len(), 0);
}

#[test]
fn udp_and_icmp_sessions_continue_on_the_peer() {
    for proto in [Proto::Udp, Proto::Icmp] {
        for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
            let port = if proto == Proto::Icmp { 0 } else { 53 };
            let cfg = config(proto, port, SchedKind::Rr, &[dest(0, port, 1, mode)]);
            let mut p = Pair::new(&cfg);
            let first = match proto {
                Proto::Udp => Frame::udp(CIP, 5353, VIP, 53).payload(b"q1"),
                _ => Frame::echo(CIP, VIP, true, 0x4242),
            };
            let out = p.a.send(WAN, &first.build());
            let seen = decode(&out.lan[0]);
            p.sync();
            assert_eq!(count(&p.b, Counter::SyncInstalled), 1, "{proto:?} {mode:?}");
            let again = match proto {
                Proto::Udp => Frame::udp(CIP, 5353, VIP, 53).payload(b"q2"),
                _ => Frame::echo(CIP, VIP, true, 0x4242),
            };
            p.same(WAN, &again.build());
            let reply = match proto {
                Proto::Udp => Frame::udp(RS[0], 53, seen.src, seen.sport).payload(b"a"),
                _ => Frame::echo(RS[0], seen.src, false, seen.sport),
            };
            let back = p.same(LAN, &reply.via_rs(0).build());
            assert_eq!(decode(&back.wan[0]).dst, CIP);
        }
    }
}

/// The SYN proxy's shift goes with the session: B moves sequence numbers as A does.
#[test]
fn synproxy_shift_continues_on_the_peer() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &[dest(0, 8080, 1, mode)]);
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: VIP.into(),
            port: 80,
        };
        cfg.services
            .get_mut(&key)
            .unwrap()
            .set_synproxy(true)
            .unwrap();
        let mut p = Pair::new(&cfg);
        let isn = 0x1111_0000u32;
        let syn = tcp_frame((CIP, 40000), (VIP, 80), SYN, isn, 0).build();
        let out = p.a.send(WAN, &syn);
        let t = &out.wan[0][decode(&out.wan[0]).l3 + 20..];
        let cookie = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = tcp_frame(
            (CIP, 40000),
            (VIP, 80),
            ACK,
            isn.wrapping_add(1),
            cookie.wrapping_add(1),
        );
        let out = p.a.send(WAN, &ack.build());
        let to_rs = decode(&out.lan[0]);
        // Pending (the RS has not answered): not exported yet.
        let pending = p.sync();
        assert!(
            pending.is_empty(),
            "a pending proxied session was sent: {pending:?}"
        );
        let synack = tcp_frame(
            (RS[0], 8080),
            (to_rs.src, to_rs.sport),
            SYN | ACK,
            0x7777_0000,
            isn.wrapping_add(1),
        )
        .via_rs(0);
        p.a.send(LAN, &synack.build());
        let sent = p.sync();
        let shift = sent.iter().find_map(|r| match r {
            SyncRecord::Session(SyncSession {
                synproxy: SyncProxy::On { shift },
                ..
            }) => Some(*shift),
            _ => None,
        });
        assert_eq!(
            shift,
            Some(0x7777_0000u32.wrapping_sub(cookie)),
            "{mode:?}: {sent:?}"
        );
        let data = tcp_frame(
            (CIP, 40000),
            (VIP, 80),
            ACK | PSH,
            isn.wrapping_add(1),
            cookie.wrapping_add(1),
        )
        .payload(b"hello");
        p.same(WAN, &data.build());
        let answer = tcp_frame(
            (RS[0], 8080),
            (to_rs.src, to_rs.sport),
            ACK | PSH,
            0x7777_0001,
            isn.wrapping_add(6),
        )
        .via_rs(0)
        .payload(b"world");
        let back = p.same(LAN, &answer.build());
        let t = &back.wan[0][decode(&back.wan[0]).l3 + 20..];
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        assert_eq!(
            seq,
            cookie.wrapping_add(1),
            "{mode:?}: in the client's space"
        );
    }
}

#[test]
fn state_changes_are_synced_and_refresh_the_peers_copy() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut p = Pair::new(&cfg);
    let (_, lport) = open_on_a(&mut p, 40000, 8080);
    let first = p.sync();
    let states: Vec<_> = first
        .iter()
        .map(|r| match r {
            SyncRecord::Session(s) => s.state,
            _ => panic!("{r:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [SessionState::Tcp(TcpState::Established)],
        "one record for the changes since the last slow job, as they stand"
    );
    // Nothing changed: nothing to send.
    assert!(p.sync().is_empty());
    p.a.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, FIN | ACK).build());
    let updated = count(&p.b, Counter::SyncUpdated);
    let sent = p.sync();
    assert_eq!(sent.len(), 1);
    assert_eq!(count(&p.b, Counter::SyncUpdated), updated + 1);
    let s = p.b.worker.sessions().iter().next().unwrap().1;
    assert_eq!(s.state, SessionState::Tcp(TcpState::CloseWait));
    // The RS's FIN on B (after the failover): B drives the session now ...
    let fin = Frame::tcp(RS[0], 8080, LIP1, lport, FIN | ACK).via_rs(0);
    let out = p.b.send(LAN, &fin.build());
    assert_eq!(out.wan.len(), 1);
    // (Taken from the peer in B's next slow job, before any install.)
    p.b.slow();
    let s = p.b.worker.sessions().iter().next().unwrap().1;
    assert!(!s.data.peer, "moved by B itself");
    // ... so A's late record for it is not taken.
    let stale = p.a.worker.sessions().iter().next().unwrap().1.state;
    p.la.set_export(true, 0);
    let n = p.la.request_sweep();
    p.sync();
    assert!(p.la.sweep_finished(n));
    assert_eq!(count(&p.b, Counter::SyncKept), 1);
    let s = p.b.worker.sessions().iter().next().unwrap().1;
    assert_ne!(s.state, stale);
}

#[test]
fn a_conflicting_record_changes_nothing() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[
            dest(0, 8080, 1, ForwardMode::FullNat),
            dest(1, 8080, 1, ForwardMode::FullNat),
        ],
    );
    let mut p = Pair::new(&cfg);
    // B has its own session for the flow, to RS 0; A's goes to RS 1.
    p.a.send(WAN, &Frame::tcp(CIP, 39999, VIP, 80, SYN).build());
    p.b.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    let out = p.a.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    assert_eq!(decode(&out.lan[0]).dst, RS[1]);
    let view = |l: &Lab| -> Vec<_> {
        l.worker
            .sessions()
            .iter()
            .map(|(_, s)| (s.original, s.reply, s.state, s.deadline, s.data))
            .collect()
    };
    let before = view(&p.b);
    p.sync();
    // 40000: the key is B's, toward another dest. 39999: both directors handed out the
    // first port of the pool toward RS 0, so its (LIP, lport) is B's own session's.
    assert_eq!(count(&p.b, Counter::SyncConflicts), 2);
    assert_eq!(count(&p.b, Counter::SyncInstalled), 0);
    let after = view(&p.b);
    assert!(
        before.iter().all(|s| after.contains(s)),
        "B's session untouched"
    );
}

#[test]
fn records_for_unknown_services_and_lips_are_counted() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let (mut b, lb) = Lab::new(&cfg).synced();
    let good = SyncSession {
        proto: Proto::Tcp,
        client: (CIP, 40000),
        vip: (VIP, 80),
        rip: RS[0],
        rport: 8080,
        mode: ForwardMode::FullNat,
        lip: Some((LIP1, 30000)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 900_000,
        persist_ms: 0,
        synproxy: SyncProxy::Off,
        preamble: None,
    };
    let cases = [
        (
            SyncSession {
                vip: (VIP, 81),
                ..good
            },
            Counter::SyncUnknownService,
        ),
        (
            SyncSession { rip: RS[2], ..good },
            Counter::SyncUnknownService,
        ),
        (
            SyncSession {
                lip: Some((DIP_LAN, 30000)),
                ..good
            },
            Counter::SyncForeignLip,
        ),
        (
            SyncSession {
                synproxy: SyncProxy::Pending {
                    client_isn: 1,
                    mss: 0,
                    epoch: 0,
                },
                ..good
            },
            Counter::SyncRefused,
        ),
    ];
    for (r, c) in cases {
        let before = count(&b, c);
        lb.post_in(SyncRecord::Session(r)).unwrap();
        b.slow();
        assert_eq!(count(&b, c), before + 1, "{r:?}");
    }
    assert_eq!(b.worker.sessions().len(), 0);
    lb.post_in(SyncRecord::Session(good)).unwrap();
    b.slow();
    assert_eq!(b.worker.sessions().len(), 1);
    // It expires when the master said it would, if nothing refreshes it.
    b.advance(899_000);
    b.slow();
    assert_eq!(b.worker.sessions().len(), 1);
    b.advance(2_000);
    b.slow();
    assert_eq!(b.worker.sessions().len(), 0);
    assert_eq!(
        b.worker.lip_pool().unwrap().available(),
        b.worker.lip_pool().unwrap().capacity(),
        "its LIP port came back"
    );
}

#[test]
fn a_bulk_sweep_sends_every_session_and_template() {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    cfg.services
        .get_mut(&key)
        .unwrap()
        .set_persistence(Some(300))
        .unwrap();
    let (mut a, la) = Lab::new(&cfg).synced();
    // Sessions opened while nobody exported.
    for c in 0..50u16 {
        let frame = Frame::tcp(
            std::net::Ipv4Addr::new(198, 51, 100, 10 + (c % 5) as u8),
            40000 + c,
            VIP,
            80,
            SYN,
        );
        assert_eq!(a.send(WAN, &frame.build()).lan.len(), 1);
    }
    a.slow();
    assert_eq!(la.outbound_len(), 0);
    la.set_export(true, 0);
    let n = la.request_sweep();
    a.slow();
    assert!(la.sweep_finished(n));
    let mut sessions = 0;
    let mut templates = 0;
    while let Some(r) = la.pop_out() {
        match r {
            SyncRecord::Session(s) => {
                assert_eq!(s.persist_ms, 300_000);
                sessions += 1;
            }
            SyncRecord::Template(_) => templates += 1,
            SyncRecord::Session6(s) => panic!("no IPv6 service here: {s:?}"),
            SyncRecord::View(v) => panic!("views come from the daemon, not a worker: {v:?}"),
        }
    }
    assert_eq!((sessions, templates), (50, 5));
    // A periodic refresh sweeps again a period after the last sweep started, not before.
    la.set_export(true, 10_000);
    a.advance(9_000);
    a.slow();
    assert_eq!(la.outbound_len(), 0);
    a.advance(1_000);
    a.slow();
    assert_eq!(la.outbound_len(), 55);
}

#[test]
fn a_full_ring_is_counted_and_the_sweep_resumes() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::Nat)],
    );
    // A small ring: 8 records.
    let link = Arc::new(SyncLink::new(8));
    let mut a = Lab::new(&cfg).synced_with(link.clone());
    for c in 0..20u16 {
        a.send(WAN, &Frame::udp(CIP, 1000 + c, VIP, 53).build());
    }
    link.set_export(true, 0);
    let n = link.request_sweep();
    a.slow();
    assert_eq!(link.outbound_len(), 8);
    assert!(!link.sweep_finished(n));
    let mut got = 0;
    for _ in 0..10 {
        while link.pop_out().is_some() {
            got += 1;
        }
        a.slow();
    }
    while link.pop_out().is_some() {
        got += 1;
    }
    assert_eq!(got, 20, "every session once");
    assert!(link.sweep_finished(n));
    // Changes noted while the ring is full are counted, not lost silently.
    for c in 0..20u16 {
        a.send(WAN, &Frame::udp(CIP, 2000 + c, VIP, 53).build());
    }
    a.slow();
    assert_eq!(link.outbound_len(), 8);
    assert_eq!(a.worker.counters().get(Counter::SyncUnqueued), 12);
}

#[test]
fn owner_follows_the_lip_port_slices_and_homing() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let snap = dataplane::snapshot::Snapshot::build(&cfg).unwrap();
    let owner = FlowOwner::new(2, &[]);
    let rec = |lport| {
        SyncRecord::Session(SyncSession {
            proto: Proto::Tcp,
            client: (CIP, 40000),
            vip: (VIP, 80),
            rip: RS[0],
            rport: 8080,
            mode: ForwardMode::FullNat,
            lip: Some((LIP1, lport)),
            state: SessionState::Tcp(TcpState::Established),
            expires_in_ms: 1000,
            persist_ms: 0,
            synproxy: SyncProxy::Off,
            preamble: None,
        })
    };
    // 1024..=65535 over two workers: 1024..=33279 and 33280..=65535.
    assert_eq!(owner.owner(&snap, &rec(1024)), 0);
    assert_eq!(owner.owner(&snap, &rec(33_279)), 0);
    assert_eq!(owner.owner(&snap, &rec(33_280)), 1);
    assert_eq!(FlowOwner::new(1, &[]).owner(&snap, &rec(60_000)), 0);
}

#[test]
fn a_cluster_peer_serves_sessions_on_the_other_directors_lip() {
    let base = config(
        Proto::Tcp,
        80,
        SchedKind::Mh,
        &[
            dest(0, 8080, 1, ForwardMode::FullNat),
            dest(1, 8080, 1, ForwardMode::FullNat),
        ],
    );
    // A's LIP is LIP1; B's is LIP2 and it knows LIP1 as a peer's.
    let ca = DirectorConfig {
        lips: vec![LIP1],
        peer_lips: vec![LIP2],
        ..base.clone()
    };
    let cb = DirectorConfig {
        lips: vec![LIP2],
        peer_lips: vec![LIP1],
        ..base
    };
    let mut p = Pair::of(&ca, &cb);
    let (rs, sport) = open_on_a(&mut p, 40000, 8080);
    p.sync();
    assert_eq!(count(&p.b, Counter::SyncInstalled), 1);
    assert_eq!(count(&p.b, Counter::SyncForeignLip), 0);
    // Counted active on B's dest, but not as a connection B scheduled (IPVS's Conns).
    let slot = p.b.worker.snapshot().dest_slot(0, rs);
    let d = p.b.worker.stats_handle().dest(slot).sample();
    assert_eq!((d.conns, d.active, d.inactive), (0, 1, 0));
    let slot = p.a.worker.snapshot().dest_slot(0, rs);
    let d = p.a.worker.stats_handle().dest(slot).sample();
    assert_eq!((d.conns, d.active), (1, 1));
    // B's own pool is untouched: the pair is A's to hand out.
    let pool = p.b.worker.lip_pool().unwrap();
    assert_eq!(pool.available(), pool.capacity());
    // The router moves the flow to B: both ways, B forwards exactly as A, on A's LIP:lport.
    let data = Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH).payload(b"GET / HTTP/1.1\r\n\r\n");
    let out = p.same(WAN, &data.build());
    let seen = decode(&out.lan[0]);
    assert_eq!((seen.src, seen.sport), (LIP1, sport));
    let reply = Frame::tcp(RS[rs], 8080, LIP1, sport, ACK | PSH)
        .via_rs(rs)
        .payload(b"HTTP/1.1 200 OK\r\n\r\n");
    let back = p.same(LAN, &reply.build());
    let b = decode(&back.wan[0]);
    assert_eq!((b.src, b.dst), (VIP, CIP));
    // A new flow on B takes B's own LIP, never the peer's.
    let out = p.b.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    assert_eq!(decode(&out.lan[0]).src, LIP2);
    // B does not answer ARP for the peer's LIP, and drops what no session of it matches.
    let arp = arp_frame(1, rs_mac(0), [0xff; 6], RS[0], [0; 6], LIP1);
    assert_eq!(p.b.send(LAN, &arp).total(), 0);
    let arp = arp_frame(1, rs_mac(0), [0xff; 6], RS[0], [0; 6], LIP2);
    assert_eq!(p.b.send(LAN, &arp).total(), 1, "its own LIP is answered");
    let stray = Frame::tcp(RS[0], 8080, LIP1, 50000, ACK).via_rs(0);
    let before = p.b.worker.counters().drop_count(DropReason::PeerLip);
    assert_eq!(p.b.send(LAN, &stray.build()).total(), 0);
    assert_eq!(
        p.b.worker.counters().drop_count(DropReason::PeerLip),
        before + 1
    );
    // The session ends on B: nothing of B's pool moves.
    let pool = p.b.worker.lip_pool().unwrap();
    assert_eq!(
        pool.capacity() - pool.available(),
        1,
        "only the new flow's pair"
    );
}

/// A session with a PROXY protocol header moves to the peer with the header's state: once
/// the RS acknowledged it on A, B neither sends it again (a retransmission at the first byte
/// goes without it) nor loses the shift (the client's data and the RS's acknowledgements
/// move by the header's length on B as on A).
#[test]
fn a_proxy_protocol_header_is_neither_lost_nor_repeated_on_the_peer() {
    use dataplane::sync::SyncPreamble;
    use dataplane::worker::Phase;
    use sched::ProxyProtocol;
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let svc = cfg.services.get_mut(&key).unwrap();
    svc.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap();
    let mut p = Pair::new(&cfg);
    let base = 1001;
    let n = 28;
    let out = p.a.send(
        WAN,
        &tcp_frame((CIP, 40000), (VIP, 80), SYN, base - 1, 0).build(),
    );
    let syn = decode(&out.lan[0]);
    let sport = syn.sport;
    let synack = tcp_frame((RS[0], 8080), (syn.src, sport), SYN | ACK, 4999, base).via_rs(0);
    assert_eq!(p.a.send(LAN, &synack.build()).wan.len(), 1);
    let ack = tcp_frame((CIP, 40000), (VIP, 80), ACK, base, 5000);
    assert_eq!(p.a.send(WAN, &ack.build()).lan.len(), 1);
    let sent = p.sync();
    let Some(SyncRecord::Session(s)) = sent.last() else {
        panic!("{sent:?}");
    };
    let pending = SyncPreamble {
        carrier: dataplane::proxy_protocol::Carrier::Proxy(ProxyProtocol::V2),
        phase: Phase::Pending,
        first_seq: base,
    };
    assert_eq!(s.preamble, Some(pending));
    // The first data through A only: the header goes ahead of it; then the RS (at A)
    // acknowledges header and data.
    let get = b"GET / HTTP/1.1\r\n\r\n";
    let data = tcp_frame((CIP, 40000), (VIP, 80), ACK | PSH, base, 5000).payload(get);
    let out = p.a.send(WAN, &data.build());
    let lip_side = decode(&out.lan[0]);
    assert_eq!(lip_side.payload.len(), n + get.len());
    let acked = base + (n + get.len()) as u32;
    let ack = tcp_frame((RS[0], 8080), (lip_side.src, sport), ACK, 5000, acked).via_rs(0);
    let at_client = decode(&p.a.send(LAN, &ack.build()).wan[0]);
    assert_eq!(at_client.dport, 40000);
    let sent = p.sync();
    let done = sent.iter().rev().find_map(|r| match r {
        SyncRecord::Session(s) => s.preamble,
        _ => None,
    });
    assert_eq!(
        done,
        Some(SyncPreamble {
            phase: Phase::Done,
            ..pending
        })
    );
    let on_b = p.b.worker.sessions().iter().next().unwrap().1.data;
    assert_eq!((on_b.preamble.phase(), on_b.first_seq), (Phase::Done, base));
    // A (spurious) retransmission of the first data, and new data: B as A, no header again.
    let out = p.same(WAN, &data.build());
    assert_eq!(decode(&out.lan[0]).payload, get, "not repeated");
    let more = tcp_frame(
        (CIP, 40000),
        (VIP, 80),
        ACK | PSH,
        base + get.len() as u32,
        5000,
    )
    .payload(b"more");
    p.same(WAN, &more.build());
    let ack = tcp_frame((RS[0], 8080), (lip_side.src, sport), ACK, 5000, acked + 4).via_rs(0);
    let out = p.same(LAN, &ack.build());
    let t = &out.wan[0][14 + 20..];
    let client_ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    assert_eq!(client_ack, base + get.len() as u32 + 4, "not lost");
}

// IPv6 sessions.

use dataplane::wire::EthernetAddress;
use sched::{Dest, Service};
use std::net::{IpAddr, Ipv6Addr};
use testkit::Frame6;

/// One IPv6 service of [`config6`]: its protocol and port, and its one dest (IPv4 for
/// NAT64), which is RS (or RS6) `rs`.
#[derive(Clone, Copy, Debug)]
struct Svc6 {
    proto: Proto,
    vport: u16,
    mode: ForwardMode,
    rip: IpAddr,
    rport: u16,
    rs: usize,
}

const FULLNAT66: Svc6 = Svc6 {
    proto: Proto::Tcp,
    vport: 8000,
    mode: ForwardMode::FullNat,
    rip: IpAddr::V6(RS6[0]),
    rport: 8080,
    rs: 0,
};
const NAT66: Svc6 = Svc6 {
    proto: Proto::Tcp,
    vport: 8001,
    mode: ForwardMode::Nat,
    rip: IpAddr::V6(RS6[1]),
    rport: 8080,
    rs: 1,
};
const DR6: Svc6 = Svc6 {
    proto: Proto::Tcp,
    vport: 8002,
    mode: ForwardMode::Dr,
    rip: IpAddr::V6(RS6[0]),
    rport: 8002,
    rs: 0,
};
const TUN6: Svc6 = Svc6 {
    proto: Proto::Tcp,
    vport: 8003,
    mode: ForwardMode::Tun,
    rip: IpAddr::V6(RS6[1]),
    rport: 8003,
    rs: 1,
};
const NAT64: Svc6 = Svc6 {
    proto: Proto::Tcp,
    vport: 8004,
    mode: ForwardMode::FullNat,
    rip: IpAddr::V4(RS[0]),
    rport: 8080,
    rs: 0,
};
const FULLNAT66_UDP: Svc6 = Svc6 {
    proto: Proto::Udp,
    vport: 5353,
    mode: ForwardMode::FullNat,
    rip: IpAddr::V6(RS6[0]),
    rport: 53,
    rs: 0,
};
const NAT64_UDP: Svc6 = Svc6 {
    proto: Proto::Udp,
    vport: 53,
    mode: ForwardMode::FullNat,
    rip: IpAddr::V4(RS[1]),
    rport: 53,
    rs: 1,
};
const SERVICES6: [Svc6; 7] = [FULLNAT66, NAT66, DR6, TUN6, NAT64, FULLNAT66_UDP, NAT64_UDP];

/// The IPv4 lab with IPv6 DIPs on both ports, a default IPv6 route, an IPv6 LIP and the IPv4
/// one (NAT64), and the IPv6 services [`SERVICES6`].
fn config6() -> DirectorConfig {
    let mut cfg = config_with_ipv6();
    cfg.lips = vec![LIP1];
    cfg.lips6 = vec![LIP6];
    cfg.lport_range = 2000..=2999;
    for s in SERVICES6 {
        let mut svc = Service::new(key6(s.proto, s.vport), SchedKind::Rr).unwrap();
        svc.add_dest(Dest {
            addr: s.rip,
            port: s.rport,
            weight: 1,
            mode: s.mode,
        })
        .unwrap();
        cfg.services.add(svc).unwrap();
    }
    cfg
}

/// A and B on [`config6`], the IPv6 RSs' and router's MACs known to both.
fn pair6() -> Pair {
    pair6_on(&config6())
}

/// A and B on `cfg`, the IPv6 RSs' and router's MACs known to both.
fn pair6_on(cfg: &DirectorConfig) -> Pair {
    let mut p = Pair::new(cfg);
    know_ipv6_neighbours(&mut p.a);
    know_ipv6_neighbours(&mut p.b);
    p
}

/// The client's segment or datagram of `s` from `cport` (TCP: `flags`).
fn client6(s: &Svc6, cport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let f = match s.proto {
        Proto::Tcp => Frame6::tcp(CLIENT6, cport, VIP6, s.vport, flags),
        _ => Frame6::udp(CLIENT6, cport, VIP6, s.vport),
    };
    f.payload(payload).build()
}

/// The RS's answer to `to` (what it saw as its peer: the LIP, or the client in NAT66).
fn from_rs(s: &Svc6, to: (IpAddr, u16), flags: u8, payload: &[u8]) -> Vec<u8> {
    match (s.rip, to.0) {
        (IpAddr::V6(rip), IpAddr::V6(dst)) => {
            let mut f = match s.proto {
                Proto::Tcp => Frame6::tcp(rip, s.rport, dst, to.1, flags),
                _ => Frame6::udp(rip, s.rport, dst, to.1),
            };
            f.dst_mac = LAN_MAC;
            f.src_mac = rs_mac(s.rs);
            f.payload(payload).build()
        }
        (IpAddr::V4(rip), IpAddr::V4(dst)) => {
            let f = match s.proto {
                Proto::Tcp => Frame::tcp(rip, s.rport, dst, to.1, flags),
                _ => Frame::udp(rip, s.rport, dst, to.1),
            };
            let mut f = f.via_rs(s.rs).payload(payload);
            f.dst_mac = LAN_MAC;
            f.build()
        }
        other => panic!("no such reply: {other:?}"),
    }
}

/// Where a frame the director sent toward the RS came from and goes: its source (the LIP,
/// or the client) and source port, and its destination; the L4 checksum verified (TUN: the
/// inner packet's).
fn toward_rs(frame: &[u8]) -> ((IpAddr, u16), (IpAddr, u16)) {
    if frame[12..14] == [0x08, 0x00] {
        let s = decode(frame);
        return ((s.src.into(), s.sport), (s.dst.into(), s.dport));
    }
    let mut s = decode6(frame);
    if s.next_header == 41 {
        // TUN: the inner packet, as a frame of its own.
        let inner = [&frame[..14], &s.payload[..]].concat();
        s = decode6(&inner);
    }
    let l4 = s.l4();
    ((s.src.into(), l4.sport), (s.dst.into(), l4.dport))
}

/// Checks every frame `o` holds (IPv4 and L4 checksums, IPv6 L4 checksums), and returns
/// them with IPv4's identification and header checksum zeroed: each director numbers the
/// IPv4 packets it makes (NAT64) on its own.
fn checked(o: &Out) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = o.wan.iter().chain(&o.lan).chain(&o.tap).cloned().collect();
    for f in &mut all {
        let _ = toward_rs(f);
        if f[12..14] == [0x08, 0x00] {
            f[18..20].fill(0);
            f[24..26].fill(0);
        }
    }
    all
}

impl Pair {
    /// The frame gives the same output on both directors (each's own IPv4 identification
    /// aside), some output, and valid checksums.
    fn same6(&mut self, port: u16, frame: &[u8]) -> Out {
        let (oa, ob) = self.both(port, frame);
        assert_eq!(
            (oa.wan.len(), oa.lan.len(), oa.tap.len()),
            (ob.wan.len(), ob.lan.len(), ob.tap.len())
        );
        assert!(oa.total() > 0, "A forwarded nothing");
        assert_eq!(checked(&oa), checked(&ob), "B forwards differently from A");
        ob
    }
}

/// Where the director's packets toward the RS of `s` go: the RS (NAT, FullNAT), or still the
/// VIP (DR, TUN: the RS is reached by its MAC, or through the tunnel).
fn rs_side(s: &Svc6) -> (IpAddr, u16) {
    if s.mode.maps_ports() {
        (s.rip, s.rport)
    } else {
        (IpAddr::V6(VIP6), s.vport)
    }
}

/// Opens a connection (TCP: SYN, the RS's SYN/ACK when it answers through the director,
/// ACK; UDP: a datagram) of `s` through A only; returns the RS's view of its peer.
fn open6_on_a(p: &mut Pair, s: &Svc6, cport: u16) -> (IpAddr, u16) {
    let first = client6(s, cport, SYN, b"q");
    let out = p.a.send(WAN, &first);
    assert_eq!(out.lan.len(), 1, "{s:?}");
    assert_eq!(out.lan[0][0..6], rs_mac(s.rs));
    let (peer, rs) = toward_rs(&out.lan[0]);
    assert_eq!(rs, rs_side(s));
    if s.proto == Proto::Tcp {
        if s.mode.maps_ports() {
            let synack = from_rs(s, peer, SYN | ACK, b"");
            assert_eq!(p.a.send(LAN, &synack).wan.len(), 1, "{s:?}");
        }
        let ack = client6(s, cport, ACK, b"");
        assert_eq!(p.a.send(WAN, &ack).lan.len(), 1);
    }
    peer
}

/// A connection of `s` opened on A continues on B, both ways when the replies come back
/// through the director; B holds it as the peer's, its LIP pair taken.
fn continues6(s: Svc6) {
    let mut p = pair6();
    let cport = 40000;
    let peer = open6_on_a(&mut p, &s, cport);
    let sent = p.sync();
    let recs: Vec<SyncSession6> = sent
        .iter()
        .filter_map(|r| match r {
            SyncRecord::Session6(x) => Some(*x),
            _ => None,
        })
        .collect();
    assert_eq!(recs.len(), sent.len(), "IPv6 sessions only: {sent:?}");
    let r = *recs.last().expect("a record");
    let state = match s.proto {
        Proto::Tcp => SessionState::Tcp(TcpState::Established),
        _ => SessionState::Udp,
    };
    assert_eq!(
        (r.client, r.vip, r.rip, r.rport, r.mode, r.state),
        (
            (CLIENT6, cport),
            (VIP6, s.vport),
            s.rip,
            s.rport,
            s.mode,
            state
        )
    );
    let lip = match (s.mode, s.rip) {
        (ForwardMode::FullNat, IpAddr::V6(_)) => Some((IpAddr::V6(LIP6), peer.1)),
        (ForwardMode::FullNat, IpAddr::V4(_)) => Some((IpAddr::V4(LIP1), peer.1)),
        _ => None,
    };
    assert_eq!(r.lip, lip);
    assert_eq!(count(&p.b, Counter::SyncInstalled), 1, "{s:?}");
    assert_eq!(p.b.worker.sessions6().len(), 1);
    let (_, held) = p.b.worker.sessions6().iter().next().unwrap();
    assert!(held.data.peer(), "installed from the peer");
    assert_eq!(held.state, state);
    // The LIP pair is B's now too: its pool will not hand it out again.
    let taken = |lab: &Lab| {
        let p6 = lab.worker.lip_pool6().unwrap();
        let p4 = lab.worker.lip_pool().unwrap();
        (
            p6.capacity() - p6.available(),
            p4.capacity() - p4.available(),
        )
    };
    assert_eq!(taken(&p.b), taken(&p.a));
    // Mid-stream, no SYN: the client's data, then the RS's answer.
    let data = client6(&s, cport, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n");
    let out = p.same6(WAN, &data);
    assert_eq!(out.lan.len(), 1);
    assert_eq!(out.lan[0][0..6], rs_mac(s.rs));
    let (from, to) = toward_rs(&out.lan[0]);
    assert_eq!((from, to), (peer, rs_side(&s)));
    if s.mode.maps_ports() {
        let reply = from_rs(&s, peer, ACK | PSH, b"HTTP/1.1 200 OK\r\n\r\n");
        let back = p.same6(LAN, &reply);
        assert_eq!(back.wan.len(), 1);
        let b = decode6(&back.wan[0]);
        let l4 = b.l4();
        assert_eq!(
            (b.src, l4.sport, b.dst, l4.dport),
            (VIP6, s.vport, CLIENT6, cport)
        );
        assert_eq!(l4.payload, b"HTTP/1.1 200 OK\r\n\r\n");
    }
    for lab in [&p.a, &p.b] {
        assert_eq!(lab.worker.counters().total_drops(), 0);
    }
}

#[test]
fn fullnat66_tcp_continues_on_the_peer() {
    continues6(FULLNAT66);
}

#[test]
fn nat66_tcp_continues_on_the_peer() {
    continues6(NAT66);
}

#[test]
fn dr6_tcp_continues_on_the_peer() {
    continues6(DR6);
}

#[test]
fn tun6_tcp_continues_on_the_peer() {
    continues6(TUN6);
}

#[test]
fn nat64_tcp_continues_on_the_peer() {
    continues6(NAT64);
}

#[test]
fn ipv6_udp_sessions_continue_on_the_peer() {
    continues6(FULLNAT66_UDP);
    continues6(NAT64_UDP);
}

/// A's later state changes reach B's copy (the peer's still), a refresh only extends it, and
/// once B moves the session itself a record no longer changes it.
/// A persistent IPv6 service's session carries its timeout; B holds the client's template
/// from it, so that the client's next connection after a failover goes where its last did.
#[test]
fn a_persistent_ipv6_session_brings_its_clients_template_to_the_peer() {
    let mut cfg = config6();
    cfg.services
        .get_mut(&key6(Proto::Tcp, FULLNAT66.vport))
        .unwrap()
        .set_persistence(Some(300))
        .unwrap();
    let mut p = pair6_on(&cfg);
    open6_on_a(&mut p, &FULLNAT66, 40000);
    let sent = p.sync();
    let x = sent
        .iter()
        .find_map(|r| match r {
            SyncRecord::Session6(x) => Some(*x),
            _ => None,
        })
        .expect("the session's record");
    assert_eq!(x.persist_ms, 300_000);
    let t = p.b.worker.templates6();
    assert_eq!(t.len(), 1);
    let (_, t) = t.iter().next().unwrap();
    assert_eq!((t.data.rip, t.data.rport, t.data.live), (RS6[0], 8080, 1));
    assert_eq!(t.data.timeout_ms, 300_000);
    // An update of the session (the client closes) holds it no further.
    let fin = client6(&FULLNAT66, 40000, FIN | ACK, b"");
    assert_eq!(p.a.send(WAN, &fin).lan.len(), 1);
    assert!(!p.sync().is_empty());
    assert_eq!(
        p.b.worker.templates6().iter().next().unwrap().1.data.live,
        1
    );
}

#[test]
fn ipv6_state_changes_are_synced_and_a_moved_session_is_kept() {
    let mut p = pair6();
    let s = FULLNAT66;
    let peer = open6_on_a(&mut p, &s, 40000);
    p.sync();
    let state_on_b = |p: &Pair| p.b.worker.sessions6().iter().next().unwrap().1.state;
    assert_eq!(state_on_b(&p), SessionState::Tcp(TcpState::Established));
    let fin = client6(&s, 40000, FIN | ACK, b"");
    assert_eq!(p.a.send(WAN, &fin).lan.len(), 1);
    let on_a = p.a.worker.sessions6().iter().next().unwrap().1.state;
    assert_ne!(on_a, SessionState::Tcp(TcpState::Established));
    let sent = p.sync();
    assert!(matches!(sent[..], [SyncRecord::Session6(_)]), "{sent:?}");
    assert_eq!(count(&p.b, Counter::SyncUpdated), 1);
    assert_eq!(state_on_b(&p), on_a);
    // Nothing changed on A: nothing is sent.
    assert!(p.sync().is_empty());
    // B's own packet moves the session: from now on it is B's.
    let fin = from_rs(&s, peer, FIN | ACK, b"");
    assert_eq!(p.b.send(LAN, &fin).wan.len(), 1);
    p.b.slow();
    assert!(!p.b.worker.sessions6().iter().next().unwrap().1.data.peer());
    let moved = state_on_b(&p);
    assert_ne!(moved, on_a);
    // A's refresh sweep sends it again: kept as B has it.
    p.la.set_export(true, 1);
    p.a.advance(10);
    p.sync();
    assert_eq!(count(&p.b, Counter::SyncKept), 1);
    assert_eq!(state_on_b(&p), moved);
}

/// Records B cannot install are counted by reason and change nothing: an unknown service or
/// dest, a FullNAT66 LIP that is not B's, a LIP pair in use, a key B holds the other way.
#[test]
fn ipv6_records_b_cannot_install_are_counted() {
    let mut p = pair6();
    let good = SyncSession6 {
        proto: Proto::Tcp,
        client: (CLIENT6, 40000),
        vip: (VIP6, FULLNAT66.vport),
        rip: FULLNAT66.rip,
        rport: FULLNAT66.rport,
        mode: ForwardMode::FullNat,
        lip: Some((IpAddr::V6(LIP6), 2500)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 900_000,
        persist_ms: 0,
        synproxy: SyncProxy::Off,
        preamble: None,
    };
    let nat64 = SyncSession6 {
        client: (CLIENT6, 40001),
        vip: (VIP6, NAT64.vport),
        rip: NAT64.rip,
        rport: NAT64.rport,
        lip: Some((IpAddr::V4(LIP1), 2600)),
        ..good
    };
    let other6 = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x299);
    let cases = [
        (
            SyncSession6 {
                vip: (VIP6, 9999),
                ..good
            },
            Counter::SyncUnknownService,
        ),
        (
            SyncSession6 {
                rip: IpAddr::V6(RS6[1]),
                ..good
            },
            Counter::SyncUnknownService,
        ),
        (
            SyncSession6 {
                lip: Some((IpAddr::V6(other6), 2500)),
                ..good
            },
            Counter::SyncForeignLip,
        ),
        (
            SyncSession6 {
                lip: Some((IpAddr::V6(LIP6), 4000)),
                ..good
            },
            Counter::SyncForeignLip,
        ),
        (
            SyncSession6 {
                lip: Some((IpAddr::V4(LIP2), 2600)),
                ..nat64
            },
            Counter::SyncForeignLip,
        ),
        (good, Counter::SyncInstalled),
        (nat64, Counter::SyncInstalled),
        // Another client on an installed pair.
        (
            SyncSession6 {
                client: (CLIENT6, 40002),
                ..good
            },
            Counter::SyncConflicts,
        ),
        (
            SyncSession6 {
                client: (CLIENT6, 40003),
                ..nat64
            },
            Counter::SyncConflicts,
        ),
        // The same flow to another dest (the NAT66 service's RS on the FullNAT66 port).
        (
            SyncSession6 {
                lip: Some((IpAddr::V6(LIP6), 2501)),
                rport: 8081,
                ..good
            },
            Counter::SyncUnknownService,
        ),
    ];
    for (x, want) in cases {
        let before = count(&p.b, want);
        p.lb.post_in(SyncRecord::Session6(x)).unwrap();
        p.b.slow();
        assert_eq!(count(&p.b, want), before + 1, "{x:?}");
    }
    assert_eq!(p.b.worker.sessions6().len(), 2);
    let p6 = p.b.worker.lip_pool6().unwrap();
    let p4 = p.b.worker.lip_pool().unwrap();
    assert_eq!(p6.capacity() - p6.available(), 1);
    assert_eq!(p4.capacity() - p4.available(), 1);
    // Everything runs out: the pairs come back (after TCP's quarantine).
    p.b.advance(900_000 + 3_600_000);
    for _ in 0..64 {
        p.b.slow();
    }
    assert!(p.b.worker.sessions6().is_empty());
    let p6 = p.b.worker.lip_pool6().unwrap();
    assert_eq!(p6.available(), p6.capacity());
    assert_eq!(count(&p.b, Counter::SyncRefused), 0);
}

/// A backup's bulk request: the sweep sends every IPv6 session too, after the IPv4 ones.
#[test]
fn a_bulk_sweep_sends_the_ipv6_sessions() {
    let (mut a, la) = Lab::new(&config6()).synced();
    for (ip, mac) in [
        (RS6[0], rs_mac(0)),
        (RS6[1], rs_mac(1)),
        (ROUTER6, ROUTER_MAC),
    ] {
        a.worker
            .insert_static_neighbour(ip.into(), EthernetAddress(mac));
    }
    // Sessions opened while nobody exported.
    for (i, s) in SERVICES6.iter().enumerate() {
        let out = a.send(WAN, &client6(s, 41000 + i as u16, SYN, b""));
        assert_eq!(out.lan.len(), 1, "{s:?}");
    }
    let v4 = Frame::tcp(CIP, 40000, VIP, 80, SYN).build();
    assert_eq!(a.send(WAN, &v4).lan.len(), 1);
    a.slow();
    assert_eq!(la.outbound_len(), 0);
    la.set_export(true, 0);
    let n = la.request_sweep();
    a.slow();
    assert!(la.sweep_finished(n));
    let mut kinds = Vec::new();
    while let Some(r) = la.pop_out() {
        kinds.push(match r {
            SyncRecord::Session(_) => 4,
            SyncRecord::Session6(_) => 6,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(kinds, [4, 6, 6, 6, 6, 6, 6, 6]);
}

/// Which backup worker installs an IPv6 session: FullNAT66's and NAT64's the owner of the
/// LIP port's slice, NAT66's the client endpoint's home worker, DR's and TUN's the worker
/// whose queue the client's packets hash to on the port facing the client (RSS).
#[test]
fn owner_of_ipv6_sessions() {
    use dataplane::lip::LipPool;
    use dataplane::rss::{hash_ipv6_l4, Reta, RssKey};
    let snap = dataplane::snapshot::Snapshot::build(&config6()).unwrap();
    let reta = Reta::round_robin(128, 2).unwrap();
    // The client is reached through the WAN port (port 0), which does RSS.
    let owner = FlowOwner::new(2, &[Some((RssKey::MICROSOFT, reta.clone())), None, None]);
    let rec = |s: &Svc6, cport: u16, lport: u16| {
        let lip = match (s.mode, s.rip) {
            (ForwardMode::FullNat, IpAddr::V6(_)) => Some((IpAddr::V6(LIP6), lport)),
            (ForwardMode::FullNat, IpAddr::V4(_)) => Some((IpAddr::V4(LIP1), lport)),
            _ => None,
        };
        SyncRecord::Session6(SyncSession6 {
            proto: s.proto,
            client: (CLIENT6, cport),
            vip: (VIP6, s.vport),
            rip: s.rip,
            rport: s.rport,
            mode: s.mode,
            lip,
            state: match s.proto {
                Proto::Tcp => SessionState::Tcp(TcpState::Established),
                _ => SessionState::Udp,
            },
            expires_in_ms: 1000,
            persist_ms: 0,
            synproxy: SyncProxy::Off,
            preamble: None,
        })
    };
    let range = snap.lport_range();
    for s in [FULLNAT66, NAT64] {
        let mut seen = [false; 2];
        for lport in [2000, 2499, 2500, 2999] {
            let want = LipPool::worker_of(range.clone(), 2, lport).unwrap();
            let r = rec(&s, 40000, lport);
            assert_eq!(owner.owner(&snap, &r), want, "{s:?} {lport}");
            seen[usize::from(want)] = true;
        }
        assert_eq!(seen, [true, true]);
    }
    let mut seen = [[false; 2]; 2];
    for cport in 40000..40064 {
        let r = rec(&NAT66, cport, 0);
        let home = dataplane::redirect::home6(CLIENT6, cport, 2);
        assert_eq!(owner.owner(&snap, &r), home);
        seen[0][usize::from(home)] = true;
        for s in [DR6, TUN6] {
            let r = rec(&s, cport, 0);
            let hash = hash_ipv6_l4(&RssKey::MICROSOFT, CLIENT6, VIP6, cport, s.vport);
            let q = reta.queue(hash);
            assert_eq!(owner.owner(&snap, &r), q, "{s:?} {cport}");
            seen[1][usize::from(q)] = true;
        }
    }
    assert_eq!(seen, [[true, true], [true, true]]);
    // One worker: that one.
    let one = FlowOwner::new(1, &[]);
    assert_eq!(one.owner(&snap, &rec(&DR6, 40000, 0)), 0);
}

/// A TCP segment of IPv6 flow `from` → `to` with its own sequence numbers.
fn seg6(
    (src, sport): (Ipv6Addr, u16),
    (dst, dport): (Ipv6Addr, u16),
    flags: u8,
    (seq, ack): (u32, u32),
) -> Frame6 {
    let mut f = Frame6::tcp(src, sport, dst, dport, flags);
    f.l4 = testkit::L4Spec::Tcp {
        sport,
        dport,
        flags,
        seq,
        ack,
    };
    f
}

/// The sequence and acknowledgement numbers of an IPv6 TCP frame, its checksum verified.
fn seq_ack6(f: &[u8]) -> (u32, u32) {
    let s = decode6(f);
    let _ = s.l4();
    let t = &s.payload;
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8))
}

/// A joined SYN-proxied IPv6 session goes to the peer with its shift (record type 6): B
/// moves sequence numbers both ways as A does — NAT64's toward its IPv4 RS too. A pending one
/// is not sent.
#[test]
fn a_proxied_ipv6_sessions_shift_continues_on_the_peer() {
    for s in [FULLNAT66, NAT66, NAT64] {
        let mut cfg = config6();
        cfg.services
            .get_mut(&key6(Proto::Tcp, s.vport))
            .unwrap()
            .set_synproxy(true)
            .unwrap();
        let mut p = Pair::new(&cfg);
        for lab in [&mut p.a, &mut p.b] {
            for (ip, mac) in [(RS6[s.rs], rs_mac(s.rs)), (ROUTER6, ROUTER_MAC)] {
                lab.worker
                    .insert_static_neighbour(ip.into(), EthernetAddress(mac));
            }
        }
        let (isn, rs_isn) = (0x1111_0000u32, 0x7777_0000u32);
        let client = (CLIENT6, 40000);
        let vip = (VIP6, s.vport);
        let out = p.a.send(WAN, &seg6(client, vip, SYN, (isn, 0)).build());
        let cookie = seq_ack6(&out.wan[0]).0;
        let ack = seg6(client, vip, ACK, (isn + 1, cookie.wrapping_add(1)));
        let out = p.a.send(WAN, &ack.build());
        let (peer, _) = toward_rs(&out.lan[0]);
        // The RS's segments to the side of the session it sees, in its own family.
        let from_rs = |flags: u8, (seq, ack): (u32, u32), payload: &[u8]| match (s.rip, peer.0) {
            (IpAddr::V6(rip), IpAddr::V6(to)) => {
                let mut f = seg6((rip, s.rport), (to, peer.1), flags, (seq, ack)).payload(payload);
                f.dst_mac = LAN_MAC;
                f.src_mac = rs_mac(s.rs);
                f.build()
            }
            (IpAddr::V4(rip), IpAddr::V4(to)) => {
                let f = tcp_frame((rip, s.rport), (to, peer.1), flags, seq, ack);
                let mut f = f.payload(payload).via_rs(s.rs);
                f.dst_mac = LAN_MAC;
                f.build()
            }
            other => panic!("{s:?}: families {other:?}"),
        };
        let at_rs = |f: &[u8]| {
            if f[12..14] == [0x08, 0x00] {
                let t = &f[decode(f).l3 + 20..];
                let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
                (be(4), be(8))
            } else {
                seq_ack6(f)
            }
        };
        let pending = p.sync();
        assert!(
            pending.is_empty(),
            "{s:?}: a pending proxied session was sent: {pending:?}"
        );
        let synack = from_rs(SYN | ACK, (rs_isn, isn + 1), b"");
        assert_eq!(p.a.send(LAN, &synack).lan.len(), 1);
        let sent = p.sync();
        let shift = sent.iter().find_map(|r| match r {
            SyncRecord::Session6(SyncSession6 {
                synproxy: SyncProxy::On { shift },
                ..
            }) => Some(*shift),
            _ => None,
        });
        assert_eq!(shift, Some(rs_isn.wrapping_sub(cookie)), "{s:?}: {sent:?}");
        assert_eq!(count(&p.b, Counter::SyncInstalled), 1, "{s:?}");
        // Both directors shift the client's ack and the RS's seq alike.
        let data =
            seg6(client, vip, ACK | PSH, (isn + 1, cookie.wrapping_add(1))).payload(b"hello");
        let out = p.same6(WAN, &data.build());
        assert_eq!(at_rs(&out.lan[0]), (isn + 1, rs_isn + 1), "{s:?}");
        let answer = from_rs(ACK | PSH, (rs_isn + 1, isn + 6), b"world");
        let out = p.same6(LAN, &answer);
        assert_eq!(
            seq_ack6(&out.wan[0]),
            (cookie.wrapping_add(1), isn + 6),
            "{s:?}"
        );
    }
}

/// An IPv6 session's PROXY protocol header moves to the peer with its state (record type
/// 7): a FullNAT66 and a NAT64 connection opened on A whose client has sent no data yet
/// continue on B, which puts the v2 header (naming the IPv6 client) ahead of the first data
/// and moves the RS's acknowledgement back; once A has sent it and the RS acknowledged it,
/// B only shifts.
#[test]
fn an_ipv6_sessions_header_moves_to_the_peer() {
    use dataplane::proxy_protocol::{Carrier, Phase};
    use dataplane::sync::SyncPreamble;
    use testkit::L4Spec;
    const ISN: u32 = 0x0abc_0000;
    const RS_ISN: u32 = 0x7777_0000;
    let mut cfg = config6();
    for s in [FULLNAT66, NAT64] {
        let key = key6(s.proto, s.vport);
        let svc = cfg.services.get_mut(&key).unwrap();
        svc.set_proxy_protocol(Some(sched::ProxyProtocol::V2))
            .unwrap();
    }
    let tcp = |s: &Svc6, flags: u8, seq: u32, ack: u32, data: &[u8]| {
        let mut f = Frame6::tcp(CLIENT6, 40000, VIP6, s.vport, flags).payload(data);
        f.l4 = L4Spec::Tcp {
            sport: 40000,
            dport: s.vport,
            flags,
            seq,
            ack,
        };
        f.build()
    };
    let rs = |s: &Svc6, to: (IpAddr, u16), flags: u8, (seq, ack): (u32, u32)| {
        let spec = L4Spec::Tcp {
            sport: s.rport,
            dport: to.1,
            flags,
            seq,
            ack,
        };
        match (s.rip, to.0) {
            (IpAddr::V6(rip), IpAddr::V6(dst)) => {
                let mut f = Frame6::tcp(rip, s.rport, dst, to.1, flags);
                (f.l4, f.dst_mac, f.src_mac) = (spec, LAN_MAC, rs_mac(s.rs));
                f.build()
            }
            (IpAddr::V4(rip), IpAddr::V4(dst)) => {
                let mut f = Frame::tcp(rip, s.rport, dst, to.1, flags).via_rs(s.rs);
                (f.l4, f.dst_mac) = (spec, LAN_MAC);
                f.build()
            }
            other => panic!("{other:?}"),
        }
    };
    // What the RS gets: (sequence number, payload).
    let at_rs = |f: &[u8]| -> (u32, Vec<u8>) {
        let (t, payload) = if f[12..14] == [0x08, 0x00] {
            let s = decode(f);
            (f[s.l3 + 20..].to_vec(), s.payload)
        } else {
            let s = decode6(f);
            let l4 = s.l4();
            (s.payload, l4.payload)
        };
        (u32::from_be_bytes([t[4], t[5], t[6], t[7]]), payload)
    };
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0, 36]);
    h.extend_from_slice(&CLIENT6.octets());
    h.extend_from_slice(&VIP6.octets());
    let get = b"GET / HTTP/1.1\r\n\r\n";
    for s in [FULLNAT66, NAT64] {
        let mut h = h.clone();
        h.extend_from_slice(&40000u16.to_be_bytes());
        h.extend_from_slice(&s.vport.to_be_bytes());
        let mut p = pair6_on(&cfg);
        let out = p.a.send(WAN, &tcp(&s, SYN, ISN, 0, b""));
        let (peer, _) = toward_rs(&out.lan[0]);
        assert_eq!(
            p.a.send(LAN, &rs(&s, peer, SYN | ACK, (RS_ISN, ISN + 1)))
                .wan
                .len(),
            1
        );
        assert_eq!(
            p.a.send(WAN, &tcp(&s, ACK, ISN + 1, RS_ISN + 1, b""))
                .lan
                .len(),
            1
        );
        let sent = p.sync();
        let r = match sent.last() {
            Some(SyncRecord::Session6(r)) => *r,
            other => panic!("{other:?}"),
        };
        let want = SyncPreamble {
            carrier: Carrier::Proxy(sched::ProxyProtocol::V2),
            phase: Phase::Pending,
            first_seq: (ISN + 1) & 0xff_ffff,
        };
        assert_eq!(r.preamble, Some(want), "{s:?}");
        assert_eq!(count(&p.b, Counter::SyncInstalled), 1);
        // A is gone: B puts the header ahead of the first data.
        let out = p.b.send(WAN, &tcp(&s, ACK | PSH, ISN + 1, RS_ISN + 1, get));
        assert_eq!(
            at_rs(&out.lan[0]),
            (ISN + 1, [&h[..], get].concat()),
            "{s:?}"
        );
        let acked = ISN + 1 + 52 + get.len() as u32;
        let back = p.b.send(LAN, &rs(&s, peer, ACK, (RS_ISN + 1, acked)));
        let t = decode6(&back.wan[0]).payload;
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        assert_eq!(
            ack,
            ISN + 1 + get.len() as u32,
            "{s:?}: the client's own number"
        );

        // Another connection whose header A sent and the RS acknowledged: B only shifts.
        let mut p = pair6_on(&cfg);
        let out = p.a.send(WAN, &tcp(&s, SYN, ISN, 0, b""));
        let (peer, _) = toward_rs(&out.lan[0]);
        p.a.send(LAN, &rs(&s, peer, SYN | ACK, (RS_ISN, ISN + 1)));
        p.a.send(WAN, &tcp(&s, ACK | PSH, ISN + 1, RS_ISN + 1, get));
        p.a.send(LAN, &rs(&s, peer, ACK, (RS_ISN + 1, acked)));
        p.sync();
        let (_, held) = p.b.worker.sessions6().iter().next().unwrap();
        assert_eq!(held.data.preamble().phase(), Phase::Done, "{s:?}");
        let next = ISN + 1 + get.len() as u32;
        let out =
            p.b.send(WAN, &tcp(&s, ACK | PSH, next, RS_ISN + 1, b"more"));
        assert_eq!(at_rs(&out.lan[0]), (next + 52, b"more".to_vec()), "{s:?}");
    }
}
