//! The `sync_decode` target: bytes as a session sync datagram a backup director received,
//! checked with `dataplane::sync::Datagram::parse` (expecting the sync id the datagram itself
//! carries, so that its records are reached) and read record by record.
//!
//! Invariants:
//!
//! - No panic, whatever the bytes.
//! - A refused datagram is refused for a datagram-level reason (`SyncDrop::refuses_datagram`);
//!   a datagram that checks is refused with any other sync id (`wrong_sync_id`).
//! - A datagram that checks yields exactly its count of records; a refused record is refused
//!   for a record-level reason.
//! - Every decoded record is valid (`SyncRecord::validate`), and re-encoded alone
//!   (`DatagramWriter`) and decoded again gives the same record; all of them re-encoded into
//!   one datagram with the same header (which fits in the input's length) decode to the same
//!   records in order, and when no record was refused that datagram is the input, byte for
//!   byte (the encoding is canonical: the reader accepts only what the writer writes).
//! - The decoded records then go through a backup's install path ([`install`]).

use std::sync::Arc;

use arc_swap::ArcSwap;
use conntrack::Proto;
use dataplane::lip::PortReuse;
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::{Cidr, Cidr6, DirectorConfig, InterfaceConfig, RouteConfig6, Snapshot};
use dataplane::sync::{
    wire::header, Datagram, DatagramWriter, FlowOwner, SyncDrop, SyncLink, SyncRecord,
    MAX_DATAGRAM_LEN,
};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{Via6, Worker, WorkerConfig};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
use std::net::{IpAddr, Ipv6Addr};
use testkit::{DIP_LAN, DIP_WAN, LAN, LAN_MAC, LIP1, RS, VIP, WAN, WAN_MAC};

use crate::pipeline::{DIP6_LAN, DIP6_WAN, LIP6, ROUTER6, RS6, VIP6};

/// Runs one fuzz input (see the module doc). Panics on any broken invariant.
pub fn run(data: &[u8]) {
    let own = data.get(header::SYNC_ID).copied().unwrap_or(0);
    let g = match Datagram::parse(data, own) {
        Ok(g) => g,
        Err(e) => {
            assert!(e.refuses_datagram(), "datagram refused for {e}");
            return;
        }
    };
    assert_eq!(
        Datagram::parse(data, own.wrapping_add(1)).err(),
        Some(SyncDrop::WrongSyncId)
    );
    assert!(data.len() <= MAX_DATAGRAM_LEN);
    let h = g.header();
    assert_eq!(g.records().len(), usize::from(g.count()));
    let mut decoded: Vec<SyncRecord> = Vec::new();
    let mut refused = 0usize;
    for r in g.records() {
        match r {
            Ok(rec) => {
                assert_eq!(rec.validate(), Ok(()), "{rec:?}");
                let mut buf = [0u8; 128];
                let mut w = DatagramWriter::new(&mut buf, &h).expect("room for the header");
                w.push(&rec).expect("a decoded record encodes");
                let again = Datagram::parse(w.datagram(), h.sync_id).expect("re-encoded");
                let back: Vec<_> = again.records().collect();
                assert_eq!(back, vec![Ok(rec)]);
                decoded.push(rec);
            }
            Err(e) => {
                assert!(!e.refuses_datagram(), "record refused for {e}");
                refused += 1;
            }
        }
    }
    assert_eq!(decoded.len() + refused, usize::from(g.count()));
    let mut buf = vec![0u8; data.len()];
    let mut w = DatagramWriter::new(&mut buf, &h).expect("the input held a header");
    for rec in &decoded {
        w.push(rec)
            .expect("the decoded records fit where they came from");
    }
    let again = Datagram::parse(w.datagram(), h.sync_id).expect("re-encoded datagram");
    assert_eq!(again.header(), h);
    let back: Vec<SyncRecord> = again
        .records()
        .map(|r| r.expect("re-encoded record"))
        .collect();
    assert_eq!(back, decoded);
    if refused == 0 {
        assert_eq!(w.datagram(), data, "the encoding is canonical");
    }
    install(&decoded);
}

/// The install path: the records a datagram carried, installed by a director's two workers
/// (each record on the worker [`FlowOwner`] names), as a backup's sync daemon does.
///
/// Invariants:
///
/// - No panic.
/// - Every record has exactly one outcome, counted (installed, updated, kept, or refused for
///   a reason).
/// - Each worker's IPv4 LIP pool holds exactly the pairs of its FullNAT sessions and its
///   NAT64 sessions; its IPv6 pool exactly those of its FullNAT66 sessions.
/// - Once every session and template has run out, the tables (IPv6's too) are empty and
///   every LIP pair is free again: an installed record leaks nothing.
pub fn install(records: &[SyncRecord]) -> u64 {
    use dataplane::counters::Counter;
    let cell = Arc::new(ArcSwap::from_pointee(
        Snapshot::build(&install_config()).expect("valid config"),
    ));
    let pool = MemPool::new(64);
    let owner = FlowOwner::new(WORKERS as u16, &[]);
    let mut workers: Vec<(Worker<MemDevice>, Arc<SyncLink>)> = (0..WORKERS)
        .map(|id| {
            let ports = [WAN_MAC, LAN_MAC]
                .map(|mac| MemDevice::new(EthernetAddress(mac), pool.clone(), 8))
                .into();
            let wcfg = WorkerConfig {
                id: id as u16,
                workers: WORKERS as u16,
                table_capacity: 64,
                template_capacity: 64,
                ..WorkerConfig::default()
            };
            let link = Arc::new(SyncLink::new(1024));
            let w = Worker::new(wcfg, ports, cell.clone())
                .expect("worker")
                .with_sync(link.clone());
            (w, link)
        })
        .collect();
    let snap = cell.load_full();
    let mut posted = [0u64; WORKERS];
    for r in records {
        let w = usize::from(owner.owner(&snap, r));
        assert!(w < WORKERS, "owner {w} of {WORKERS}");
        if workers[w].1.post_in(*r).is_ok() {
            posted[w] += 1;
        }
    }
    let outcomes = [
        Counter::SyncInstalled,
        Counter::SyncUpdated,
        Counter::SyncKept,
        Counter::SyncConflicts,
        Counter::SyncUnknownService,
        Counter::SyncForeignLip,
        Counter::SyncTableFull,
        Counter::SyncRefused,
    ];
    let mut now = 1_000u64;
    let mut installed_all = 0;
    for (i, (w, _)) in workers.iter_mut().enumerate() {
        w.slow_jobs(now);
        let counted: u64 = outcomes.iter().map(|c| w.counters().get(*c)).sum();
        assert_eq!(counted, posted[i], "one outcome per record");
        let installed = w.counters().get(Counter::SyncInstalled);
        installed_all += installed;
        assert!((w.sessions().len() + w.sessions6().len()) as u64 <= installed);
        let nat64 = w
            .sessions6()
            .iter()
            .filter(|(_, s)| matches!(s.data.via, Via6::Nat64 { .. }))
            .count();
        if let Some(p) = w.lip_pool() {
            let fullnat = w
                .sessions()
                .iter()
                .filter(|(_, s)| s.data.local().is_some())
                .count();
            assert_eq!(
                p.capacity() - p.available(),
                fullnat + nat64,
                "LIP pairs held"
            );
        }
        if let Some(p) = w.lip_pool6() {
            let fullnat66 = w
                .sessions6()
                .iter()
                .filter(|(_, s)| matches!(s.data.via, Via6::FullNat { .. }))
                .count();
            assert_eq!(
                p.capacity() - p.available(),
                fullnat66,
                "IPv6 LIP pairs held"
            );
        }
    }
    // Everything runs out: past the longest time a record can carry, and the quarantine.
    now += u64::from(u32::MAX) + 3_600_000;
    for (w, _) in &mut workers {
        for _ in 0..64 {
            w.slow_jobs(now);
        }
        assert_eq!(w.sessions().len(), 0, "every session expired");
        assert_eq!(w.sessions6().len(), 0, "every IPv6 session expired");
        if let Some(p) = w.lip_pool() {
            assert_eq!(p.available(), p.capacity(), "every LIP pair back");
        }
        if let Some(p) = w.lip_pool6() {
            assert_eq!(p.available(), p.capacity(), "every IPv6 LIP pair back");
        }
    }
    installed_all
}

const WORKERS: usize = 2;

/// An IPv6 service's dest in [`install_config`]: address (IPv4 for NAT64), port, mode.
type Dest6 = (IpAddr, u16, ForwardMode);

/// Services for the seeds' records (testkit's VIP, RS 0, LIP1): TCP and UDP on port 80 with
/// a FullNAT dest on 8080 and a DR dest on 80, and an ICMP service; IPv6 ones (the pipeline's
/// VIP6, RS6 and LIP6): TCP and UDP on [VIP6]:80 with a FullNAT66 dest on 8080 and a DR dest
/// on 80, TCP [VIP6]:81 with a NAT66 dest on 8081 and a TUN dest on 81, and NAT64's TCP and
/// UDP [VIP6]:8064 → RS 0:8080.
fn install_config() -> DirectorConfig {
    let mut services = ServiceTable::default();
    for (proto, port) in [(Proto::Tcp, 80), (Proto::Udp, 80), (Proto::Icmp, 0)] {
        let mut svc = Service::new(
            ServiceKey {
                proto,
                vip: VIP.into(),
                port,
            },
            SchedKind::Rr,
        )
        .expect("service");
        let dests: &[(u16, ForwardMode)] = if proto == Proto::Icmp {
            &[(0, ForwardMode::FullNat)]
        } else {
            &[(8080, ForwardMode::FullNat), (80, ForwardMode::Dr)]
        };
        for &(p, mode) in dests {
            svc.add_dest(Dest {
                addr: RS[0].into(),
                port: p,
                weight: 1,
                mode,
            })
            .expect("dest");
        }
        if proto == Proto::Udp {
            svc.set_persistence(Some(300)).expect("persistence");
        }
        services.add(svc).expect("add");
    }
    let v6: [(Proto, u16, &[Dest6]); 5] = [
        (
            Proto::Tcp,
            80,
            &[
                (RS6[0].into(), 8080, ForwardMode::FullNat),
                (RS6[0].into(), 80, ForwardMode::Dr),
            ],
        ),
        (
            Proto::Udp,
            80,
            &[
                (RS6[0].into(), 8080, ForwardMode::FullNat),
                (RS6[0].into(), 80, ForwardMode::Dr),
            ],
        ),
        (
            Proto::Tcp,
            81,
            &[
                (RS6[1].into(), 8081, ForwardMode::Nat),
                (RS6[1].into(), 81, ForwardMode::Tun),
            ],
        ),
        (
            Proto::Tcp,
            8064,
            &[(RS[0].into(), 8080, ForwardMode::FullNat)],
        ),
        (
            Proto::Udp,
            8064,
            &[(RS[0].into(), 8080, ForwardMode::FullNat)],
        ),
    ];
    for (proto, port, dests) in v6 {
        let key = ServiceKey {
            proto,
            vip: VIP6.into(),
            port,
        };
        let mut svc = Service::new(key, SchedKind::Rr).expect("service");
        for &(addr, port, mode) in dests {
            svc.add_dest(Dest {
                addr,
                port,
                weight: 1,
                mode,
            })
            .expect("dest");
        }
        services.add(svc).expect("add");
    }
    DirectorConfig {
        interfaces: vec![
            InterfaceConfig {
                addrs6: vec![Cidr6::new(DIP6_WAN, 64)],
                name: "wan0".into(),
                port: WAN,
                vlan: None,
                addrs: vec![Cidr::new(DIP_WAN, 24)],
                mtu: 1500,
            },
            InterfaceConfig {
                addrs6: vec![Cidr6::new(DIP6_LAN, 64)],
                name: "lan0".into(),
                port: LAN,
                vlan: None,
                addrs: vec![Cidr::new(DIP_LAN, 24)],
                mtu: 1500,
            },
        ],
        routes6: vec![RouteConfig6 {
            dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
            via: ROUTER6,
        }],
        lips: vec![LIP1],
        lips6: vec![LIP6],
        lport_range: 1024..=2047,
        lport_reuse: PortReuse {
            pools: 1,
            quarantine_ms: 60_000,
        },
        services,
        ..DirectorConfig::default()
    }
}
