//! Shared helpers for the rvs criterion benches: a two-port director on in-memory devices and
//! frame builders. Frames are built with smoltcp (valid checksums), independent of rvs's code.

pub mod peer;
pub mod trace;

use arc_swap::ArcSwap;
use conntrack::{Proto, SessionState, TcpState, Timeouts};
use dataplane::device::Device;
use dataplane::lip::PortReuse;
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::{
    Cidr, Cidr6, DirectorConfig, InterfaceConfig, RouteConfig, RouteConfig6, Snapshot,
};
use dataplane::wire::{EthernetAddress, Ipv4Packet, TcpPacket};
use dataplane::worker::{Worker, WorkerConfig};
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
use smoltcp::wire::IpAddress;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Client-side port.
pub const WAN: u16 = 0;
/// Real-server-side port.
pub const LAN: u16 = 1;
/// WAN port MAC.
pub const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// LAN port MAC.
pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// The client-side router's MAC.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xfe, 0xfe];
/// The service's VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// Real servers.
pub const RS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 1, 0, 11),
    Ipv4Addr::new(10, 1, 0, 12),
    Ipv4Addr::new(10, 1, 0, 13),
];

/// A director with one TCP service VIP:80 whose three dests use `mode`, on in-memory ports,
/// with static neighbours. SYN_RECV lasts `syn_recv_ms` (benches of the new-session path
/// expire sessions between batches).
pub fn director(mode: ForwardMode, capacity: usize, syn_recv_ms: u64) -> Worker<MemDevice> {
    director_with(mode, capacity, syn_recv_ms, true)
}

/// [`director`] with the worker's prefetching stages on or off.
pub fn director_with(
    mode: ForwardMode,
    capacity: usize,
    syn_recv_ms: u64,
    prefetch: bool,
) -> Worker<MemDevice> {
    let pool = MemPool::new(8192);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 4096),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 4096),
    ];
    director_on(ports, mode, capacity, syn_recv_ms, prefetch)
}

/// The same director on any two devices (WAN, LAN), e.g. DPDK queues.
pub fn director_on<D: Device>(
    ports: Vec<D>,
    mode: ForwardMode,
    capacity: usize,
    syn_recv_ms: u64,
    prefetch: bool,
) -> Worker<D> {
    let cfg = config(mode, capacity, syn_recv_ms, false);
    worker_on(ports, &cfg, capacity, prefetch)
}

/// [`director`] in FullNAT with the service's SYN proxy on (`-j enable`).
pub fn synproxy_director(capacity: usize) -> Worker<MemDevice> {
    let pool = MemPool::new(8192);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 4096),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 4096),
    ];
    let cfg = config(ForwardMode::FullNat, capacity, 60_000, true);
    worker_on(ports, &cfg, capacity, true)
}

/// [`director`] in FullNAT with the service's PROXY protocol v2 header
/// (`--proxy-protocol v2`).
pub fn proxy_protocol_director(capacity: usize) -> Worker<MemDevice> {
    let pool = MemPool::new(8192);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 4096),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 4096),
    ];
    let mut cfg = config(ForwardMode::FullNat, capacity, 600_000, false);
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    if let Some(s) = cfg.services.get_mut(&key) {
        s.set_proxy_protocol(Some(sched::ProxyProtocol::V2))
            .expect("proxy protocol");
    }
    worker_on(ports, &cfg, capacity, true)
}

/// The bench director's IPv6 VIP.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);

/// The IPv6 real servers (FullNAT66).
pub const RS6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x0b),
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x0c),
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x0d),
];

/// The IPv6 router on the WAN link.
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0xfe);

/// [`director`] with an IPv6 service on `[VIP6]:80` in FullNAT (wrr 1:2:3, as the IPv4
/// one): toward [`RS6`] from an IPv6 LIP (FullNAT66), or with `nat64` toward the IPv4 [`RS`]
/// from the IPv4 LIPs (NAT64).
pub fn director6(nat64: bool, capacity: usize) -> Worker<MemDevice> {
    let pool = MemPool::new(8192);
    let ports = vec![
        MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 4096),
        MemDevice::new(EthernetAddress(LAN_MAC), pool, 4096),
    ];
    let mut cfg = config(ForwardMode::FullNat, capacity, 600_000, false);
    cfg.interfaces[WAN as usize].addrs6 = vec![Cidr6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1),
        64,
    )];
    cfg.interfaces[LAN as usize].addrs6 = vec![Cidr6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1),
        64,
    )];
    cfg.routes6 = vec![RouteConfig6 {
        dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
        via: ROUTER6,
    }];
    cfg.lips6 = vec![Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x201)];
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP6.into(),
        port: 80,
    };
    let mut svc = Service::new(key, SchedKind::Wrr).expect("service");
    for i in 0..3 {
        let addr = if nat64 { RS[i].into() } else { RS6[i].into() };
        svc.add_dest(Dest {
            addr,
            port: 8080,
            weight: 1 + i as u32,
            mode: ForwardMode::FullNat,
        })
        .expect("dest");
    }
    cfg.services.add(svc).expect("add");
    let wcfg = WorkerConfig {
        table_capacity: capacity,
        table6_capacity: capacity,
        slow_every: u32::MAX,
        ..WorkerConfig::default()
    };
    let mut w = worker_with(ports, &cfg, wcfg);
    w.insert_static_neighbour(ROUTER6.into(), EthernetAddress(ROUTER_MAC));
    for (i, rs) in RS6.iter().enumerate() {
        w.insert_static_neighbour(
            (*rs).into(),
            EthernetAddress([0x02, 0, 0, 1, 0, 0x0b + i as u8]),
        );
    }
    w
}

/// The bench director's configuration.
fn config(mode: ForwardMode, capacity: usize, syn_recv_ms: u64, synproxy: bool) -> DirectorConfig {
    let mut services = ServiceTable::new();
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let mut svc = Service::new(key, SchedKind::Wrr).expect("service");
    let port = if mode.maps_ports() { 8080 } else { 80 };
    for (i, rs) in RS.iter().enumerate() {
        svc.add_dest(Dest {
            addr: (*rs).into(),
            port,
            weight: 1 + i as u32,
            mode,
        })
        .expect("dest");
    }
    svc.set_synproxy(synproxy).expect("synproxy");
    services.add(svc).expect("add");
    let mut timeouts = Timeouts::default();
    timeouts.set(SessionState::Tcp(TcpState::SynRecv), syn_recv_ms);
    DirectorConfig {
        interfaces: vec![
            InterfaceConfig {
                addrs6: Vec::new(),
                name: "wan0".into(),
                port: WAN,
                vlan: None,
                addrs: vec![Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24)],
                mtu: 1500,
            },
            InterfaceConfig {
                addrs6: Vec::new(),
                name: "lan0".into(),
                port: LAN,
                vlan: None,
                addrs: vec![Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24)],
                mtu: 1500,
            },
        ],
        routes: vec![RouteConfig {
            dst: Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: Ipv4Addr::new(192, 0, 2, 254),
        }],
        // Two LIPs; tables beyond 2^20 sessions get one per 50 000 (a LIP has about 64k
        // ports toward each dest).
        lips: (0..lip_count(capacity))
            .map(|i| Ipv4Addr::new(10, 1, 0, 201 + i as u8))
            .collect(),
        services,
        timeouts,
        // The new-session traces open ~16k sessions per second of their clock toward a few
        // dests: a 1 s quarantine keeps the check on the path without running a dest's pool
        // dry (60 s would, after a few million iterations).
        lport_reuse: PortReuse {
            quarantine_ms: 1_000,
            ..PortReuse::default()
        },
        ..DirectorConfig::default()
    }
}

/// A worker over `ports` with `cfg`, static neighbours and no slow jobs.
fn worker_on<D: Device>(
    ports: Vec<D>,
    cfg: &DirectorConfig,
    capacity: usize,
    prefetch: bool,
) -> Worker<D> {
    let wcfg = WorkerConfig {
        table_capacity: capacity,
        slow_every: u32::MAX,
        prefetch,
        ..WorkerConfig::default()
    };
    worker_with(ports, cfg, wcfg)
}

/// A worker over `ports` with `cfg` and `wcfg`, static IPv4 neighbours.
fn worker_with<D: Device>(ports: Vec<D>, cfg: &DirectorConfig, wcfg: WorkerConfig) -> Worker<D> {
    let snap = Snapshot::build(cfg).expect("config");
    let mut w = Worker::new(wcfg, ports, Arc::new(ArcSwap::from_pointee(snap))).expect("worker");
    let n = w.neighbours_mut();
    n.insert_static(Ipv4Addr::new(192, 0, 2, 254), EthernetAddress(ROUTER_MAC));
    for (i, rs) in RS.iter().enumerate() {
        n.insert_static(*rs, EthernetAddress([0x02, 0, 0, 1, 0, 0x0b + i as u8]));
    }
    w
}

/// LIPs of a bench director with `capacity` sessions.
fn lip_count(capacity: usize) -> usize {
    if capacity > 1 << 20 {
        (capacity / 50_000 + 2).min(50)
    } else {
        2
    }
}

/// A TCP frame with valid checksums and `payload_len` bytes of payload (sequence and
/// acknowledgement numbers 0).
pub fn tcp_frame(
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    payload_len: usize,
) -> Vec<u8> {
    tcp_frame_seq(
        dst_mac,
        (src, sport),
        (dst, dport),
        flags,
        (0, 0),
        payload_len,
    )
}

/// [`tcp_frame`] with sequence and acknowledgement numbers `(seq, ack)`.
pub fn tcp_frame_seq(
    dst_mac: [u8; 6],
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    flags: u8,
    (seq, ack): (u32, u32),
    payload_len: usize,
) -> Vec<u8> {
    let ip_len = 20 + 20 + payload_len;
    let mut f = vec![0u8; 14 + ip_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&ROUTER_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    {
        let l4 = &mut f[34..];
        l4[13] = flags;
        let mut t = TcpPacket::new_unchecked(&mut *l4);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        t.set_header_len(20);
        t.set_seq_number(smoltcp::wire::TcpSeqNumber(seq as i32));
        t.set_ack_number(smoltcp::wire::TcpSeqNumber(ack as i32));
        t.set_window_len(65535);
        t.fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(ip_len as u16);
    ip.set_dont_frag(true);
    ip.set_hop_limit(64);
    ip.set_next_header(smoltcp::wire::IpProtocol::Tcp);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    f
}

/// An IPv6 TCP frame from the router with valid checksums and `payload_len` bytes of
/// payload (sequence and acknowledgement numbers 0).
pub fn tcp6_frame(
    dst_mac: [u8; 6],
    (src, sport): (Ipv6Addr, u16),
    (dst, dport): (Ipv6Addr, u16),
    flags: u8,
    payload_len: usize,
) -> Vec<u8> {
    let l4_len = 20 + payload_len;
    let mut f = vec![0u8; 14 + 40 + l4_len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&ROUTER_MAC);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    smoltcp::wire::Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: smoltcp::wire::IpProtocol::Tcp,
        payload_len: l4_len,
        hop_limit: 64,
    }
    .emit(&mut smoltcp::wire::Ipv6Packet::new_unchecked(
        &mut f[14..54],
    ));
    let l4 = &mut f[54..];
    l4[13] = flags;
    let mut t = TcpPacket::new_unchecked(&mut *l4);
    t.set_src_port(sport);
    t.set_dst_port(dport);
    t.set_header_len(20);
    t.set_window_len(65535);
    t.fill_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst));
    f
}

/// IPv6 client address number `i` (spread over 2001:db8:99::/64).
pub fn client6(i: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, (i >> 16) as u16, i as u16)
}

/// Client address number `i` (spread over 198.18.0.0/15).
pub fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000u32 + (i % 131_072))
}
