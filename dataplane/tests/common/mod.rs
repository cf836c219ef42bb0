//! Test lab for the worker: a two-port director on in-memory devices, frame builders and an
//! independent decoder (smoltcp's views and checksum code, not ours).
#![allow(dead_code, missing_docs)]

use arc_swap::ArcSwap;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::{Cidr, DirectorConfig, InterfaceConfig, RouteConfig, Snapshot};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{PortRole, Worker, WorkerConfig};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
pub use testkit::*;

pub fn interfaces() -> Vec<InterfaceConfig> {
    vec![
        InterfaceConfig {
            addrs6: Vec::new(),
            name: "wan0".into(),
            port: WAN,
            vlan: None,
            addrs: vec![Cidr::new(DIP_WAN, 24)],
            mtu: 1500,
        },
        InterfaceConfig {
            addrs6: Vec::new(),
            name: "lan0".into(),
            port: LAN,
            vlan: None,
            addrs: vec![Cidr::new(DIP_LAN, 24)],
            mtu: 1500,
        },
    ]
}

/// A director config with one service on VIP:80/`proto` and the given dests, which the
/// service lists in the order given: they are added last first (a service lists its dests
/// newest first, as IPVS does), so `dests[0]` is the schedulers' first.
pub fn config(proto: Proto, port: u16, sched: SchedKind, dests: &[Dest]) -> DirectorConfig {
    let mut services = ServiceTable::default();
    let mut svc = Service::new(
        ServiceKey {
            proto,
            vip: VIP.into(),
            port,
        },
        sched,
    )
    .unwrap();
    for d in dests.iter().rev() {
        svc.add_dest(*d).unwrap();
    }
    assert_eq!(svc.dests(), dests);
    services.add(svc).unwrap();
    DirectorConfig {
        interfaces: interfaces(),
        routes: vec![RouteConfig {
            dst: Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: ROUTER,
        }],
        lips: vec![LIP1, LIP2],
        lport_range: 1024..=65535,
        services,
        ..DirectorConfig::default()
    }
}

/// The director's IPv6 DIP on the WAN, the IPv6 router there, the IPv6 VIP and an IPv6
/// client (the IPv6 services' and NAT64's tests).
pub const DIP6_WAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
/// The director's IPv6 DIP on the LAN, its IPv6 LIP there, and two IPv6 RSs.
pub const DIP6_LAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1);
pub const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x201);
pub const RS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x12),
];

/// Makes `lab`'s worker know the IPv6 RSs' ([`RS6`]) and the IPv6 router's MACs.
pub fn know_ipv6_neighbours(lab: &mut Lab) {
    for (ip, mac) in [
        (RS6[0], testkit::rs_mac(0)),
        (RS6[1], testkit::rs_mac(1)),
        (ROUTER6, ROUTER_MAC),
    ] {
        lab.worker
            .insert_static_neighbour(ip.into(), EthernetAddress(mac));
    }
}

/// The IPv4 lab's FullNAT configuration with IPv6 DIPs on both ports ([`DIP6_WAN`],
/// [`DIP6_LAN`]) and a default IPv6 route through [`ROUTER6`]: the IPv6 tests' base.
pub fn config_with_ipv6() -> DirectorConfig {
    use dataplane::snapshot::{Cidr6, RouteConfig6};
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.interfaces[WAN as usize].addrs6 = vec![Cidr6::new(DIP6_WAN, 64)];
    cfg.interfaces[LAN as usize].addrs6 = vec![Cidr6::new(DIP6_LAN, 64)];
    cfg.routes6 = vec![RouteConfig6 {
        dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
        via: ROUTER6,
    }];
    cfg
}

/// The key of the IPv6 service on `[VIP6]:port`/`proto`.
pub fn key6(proto: Proto, port: u16) -> ServiceKey {
    ServiceKey {
        proto,
        vip: VIP6.into(),
        port,
    }
}

pub fn dest(i: usize, port: u16, weight: u32, mode: ForwardMode) -> Dest {
    Dest {
        addr: RS[i].into(),
        port,
        weight,
        mode,
    }
}

pub struct Lab {
    pub worker: Worker<MemDevice>,
    pub cell: Arc<ArcSwap<Snapshot>>,
    pub pool: MemPool,
    pub now: u64,
}

impl Lab {
    pub fn new(cfg: &DirectorConfig) -> Lab {
        Lab::with(cfg, WorkerConfig::default(), true)
    }

    /// A lab; `static_neigh` pre-populates the router's and the RSs' MACs.
    pub fn with(cfg: &DirectorConfig, wcfg: WorkerConfig, static_neigh: bool) -> Lab {
        let snap = Snapshot::build(cfg).expect("valid config");
        let cell = Arc::new(ArcSwap::from_pointee(snap));
        let pool = MemPool::new(4096);
        let ports = vec![
            MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 1024),
            MemDevice::new(EthernetAddress(LAN_MAC), pool.clone(), 1024),
            MemDevice::new(EthernetAddress(TAP_MAC), pool.clone(), 1024),
        ];
        let mut wcfg = wcfg;
        if wcfg.ports.is_empty() {
            wcfg.ports = vec![
                PortRole::Data {
                    exception: Some(TAP),
                },
                PortRole::Data { exception: None },
                PortRole::Exception { data: WAN },
            ];
        }
        let mut worker = Worker::new(wcfg, ports, cell.clone()).expect("worker");
        if static_neigh {
            let n = worker.neighbours_mut();
            n.insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
            for (i, rs) in RS.iter().enumerate() {
                n.insert_static(*rs, EthernetAddress(rs_mac(i)));
            }
        }
        Lab {
            worker,
            cell,
            pool,
            now: 1_000,
        }
    }

    /// The same lab with its worker connected to a sync daemon through the returned link.
    pub fn synced(self) -> (Lab, Arc<dataplane::sync::SyncLink>) {
        let link = Arc::new(dataplane::sync::SyncLink::default());
        (self.synced_with(link.clone()), link)
    }

    /// The same lab with its worker connected to a sync daemon through `link`.
    pub fn synced_with(self, link: Arc<dataplane::sync::SyncLink>) -> Lab {
        Lab {
            worker: self.worker.with_sync(link),
            ..self
        }
    }

    /// Injects `frame` on `port`, runs one poll, returns what every port sent.
    pub fn send(&mut self, port: u16, frame: &[u8]) -> Out {
        assert!(self.worker.port_mut(port).inject(frame));
        self.worker.poll(self.now);
        self.collect()
    }

    pub fn collect(&mut self) -> Out {
        Out {
            wan: self.worker.port_mut(WAN).take_tx(),
            lan: self.worker.port_mut(LAN).take_tx(),
            tap: self.worker.port_mut(TAP).take_tx(),
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    pub fn slow(&mut self) -> Out {
        self.worker.slow_jobs(self.now);
        self.collect()
    }

    /// One page of `-L -c`: at most `max` sessions from slot `from` on, answered in the slow
    /// jobs.
    pub fn dump(&mut self, from: u32, max: usize) -> dataplane::worker::SessionDump {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.worker
            .mailbox_handle()
            .post(dataplane::worker::MailRequest::DumpSessions {
                from,
                max,
                into: Vec::with_capacity(max),
                reply: tx,
            })
            .unwrap();
        self.slow();
        rx.try_recv().expect("answered in the slow jobs")
    }

    pub fn publish(&mut self, cfg: &DirectorConfig) {
        self.cell
            .store(Arc::new(Snapshot::build(cfg).expect("valid config")));
    }
}

#[derive(Debug, Default)]
pub struct Out {
    pub wan: Vec<Vec<u8>>,
    pub lan: Vec<Vec<u8>>,
    pub tap: Vec<Vec<u8>>,
}

impl Out {
    pub fn total(&self) -> usize {
        self.wan.len() + self.lan.len() + self.tap.len()
    }
    /// The single frame sent, on whichever port.
    pub fn only(&self) -> (u16, &[u8]) {
        assert_eq!(
            self.total(),
            1,
            "expected exactly one frame out, got {self:?}"
        );
        if let Some(f) = self.wan.first() {
            (WAN, f)
        } else if let Some(f) = self.lan.first() {
            (LAN, f)
        } else {
            (TAP, &self.tap[0])
        }
    }
}

/// A TCP frame with the given sequence and acknowledgement numbers.
pub fn tcp_frame(
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
) -> Frame {
    let mut f = Frame::tcp(src, sport, dst, dport, flags);
    f.l4 = L4Spec::Tcp {
        sport,
        dport,
        flags,
        seq,
        ack,
    };
    f
}

/// The state of the lab's only session, a TCP one.
pub fn state_of(lab: &Lab) -> TcpState {
    let mut it = lab.worker.sessions().iter();
    let (_, s) = it.next().expect("one session");
    assert!(it.next().is_none(), "exactly one session");
    match s.state {
        SessionState::Tcp(t) => t,
        other => panic!("not a TCP session: {other:?}"),
    }
}
