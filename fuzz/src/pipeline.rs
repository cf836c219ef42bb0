//! The `pipeline` target: any bytes, read as a script of frames, through a director's two
//! workers on in-memory ports, from raw frame to verdict.
//!
//! # The director
//!
//! Two workers (as rvsd runs them: each its own queue on every port, its own session table,
//! LIP-port slice and neighbour table, the redirect rings between them) on three ports: WAN,
//! LAN and the WAN port's exception TAP. [`base_config`] has every forwarding mode and
//! scheduler, a tagged interface with a small MTU and a gateway that must be resolved by ARP.
//!
//! # Input
//!
//! A sequence of records, each starting with a control byte `ctl`:
//!
//! - `ctl & 3 == 3`: a command, no payload. With bit 4 clear, *publish* snapshot
//!   `(ctl >> 2) & 3` (0 the base configuration, 1 a changed one, 2 no services, 3 one that
//!   needs a port the workers do not have and must refuse); with bit 4 set, later frames go
//!   to worker `(ctl >> 5) & 1`'s queues (worker 0 at the start).
//! - otherwise a *frame* for port `ctl & 3` (0 WAN, 1 LAN, 2 TAP), then a little-endian
//!   `u16` whose low 11 bits are the frame length (capped by what is left of the input), then
//!   the frame. Bit 2 asks the harness to *repair* the frame first (IPv4 version, total and
//!   UDP lengths if they overrun the frame, TCP data offset, and every checksum, computed by
//!   smoltcp), so the fuzzer reaches sessions without having to guess checksums. Bit 3 ends
//!   the current *cycle*; bits 4..=6 pick how far the clock moves before the cycle's polls
//!   ([`STEPS`]); bit 7 runs the slow jobs after them.
//!
//! A cycle injects its frames (at most [`MAX_CYCLE`]), moves the clock, polls the workers in
//! turn until no frame waits in any RX queue or redirect ring, and collects everything the
//! ports sent. At the end of the input the clock jumps two days ahead and the slow jobs run
//! until every session has expired and every unanswered neighbour has been given up.
//!
//! # Invariants (checked after every cycle)
//!
//! - No panic, anywhere (the worker promises "never a panic on any packet").
//! - `parse_fast` and `parse_full` agree on every frame `parse_fast` accepts.
//! - **Counters.** Per worker, `rx_packets`/`rx_bytes` equal what was injected into its
//!   queues, `tx_packets`/`tx_bytes` what its devices took. With
//!   `forwarded = tx − arp_requests − neighbour_solicits − icmp_errors − arp_to_kernel −
//!   nd_to_kernel` (and the
//!   other frames the director makes: PROXY header segments, TUN's outer fragments, NAT64's IPv6
//!   fragments, the RSTs and port unreachables for VIP ports no service has), the sum over the
//!   workers of
//!   `rx + redirected_in − forwarded − drops − redirected_out` is the number of items waiting
//!   for ARP: `0 ≤ still_parked ≤ parked` and `≤ 4 ×` (incomplete neighbours), exactly 0 when
//!   no neighbour is incomplete; frames handed over = frames taken over; while nothing was
//!   ever parked, `Counters::balanced()` holds for each worker (it does not once parked frames
//!   were released: see its doc). Per worker: live sessions = created − expired − reused;
//!   free LIP ports + live FullNAT sessions = its pool's capacity; Σ active and Σ inactive of
//!   its dest counters equal its live sessions in those states, Σ conns = sessions created.
//! - **Frames out.** What leaves a TAP is a prefix (Ethernet padding trimmed) of a frame
//!   received on WAN in the same cycle (exception path, ARP copies: never altered). What
//!   leaves WAN byte-identical to a TAP input of the cycle is the kernel's traffic passed
//!   through. Everything else on WAN or LAN was built or rewritten by rvs and must be ARP or
//!   IPv4: source MAC the port's, a configured (port, VLAN), ARP well-formed from a director
//!   address; IPv4 with a unicast non-zero destination MAC (a parked frame never leaves with
//!   its placeholder MAC), total length = frame length, a valid header checksum (rvs checks
//!   it on input and keeps it right, or builds the header); IPIP's inner header valid too;
//!   every ICMP error (built from scratch, or relayed: verified, then recomputed after the
//!   quote's rewrite) with a valid ICMP checksum.
//! - **L4 checksums (the policy).** rvs rewrites incrementally (RFC 1624): a packet that came
//!   in with a bad TCP/UDP/ICMP checksum leaves with a bad one — the end host drops it; rvs
//!   neither repairs nor hides the error. So the invariant is *valid in ⇒ valid out*: when
//!   every IPv4 frame received on a data port in the cycle had valid checksums (by smoltcp's
//!   full computation; for an ICMP error, also a consistent quote) and no frame of an unclean
//!   cycle is still parked, every IPv4 frame rvs emits must pass `testkit::checksums_valid`
//!   and `testkit::decode` (smoltcp's independent decoder), and every quote it rewrote must
//!   be consistent. Frames passed through unchanged (exception path both ways) are exempt:
//!   they carry whatever they came with.
//! - **Differential.** Twin workers with the prefetching stages off get the same script; they
//!   must send the same frames (in any order: ARP probes follow the neighbour table's
//!   randomly seeded hash map) and count the same (the stages are an optimisation only).

use arc_swap::ArcSwap;
use conntrack::{Proto, SessionState, TcpState, Timeouts};
use dataplane::mem::{MemBuf, MemDevice, MemPool};
use dataplane::neigh::{NeighConfig, NeighState};
use dataplane::parse;
use dataplane::redirect::RedirectRings;
use dataplane::snapshot::{
    Cidr, Cidr6, DirectorConfig, InterfaceConfig, RouteConfig, RouteConfig6, Snapshot,
};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{PortRole, Via6, Worker, WorkerConfig};
use dataplane::Counters;
use sched::{Dest, ForwardMode, SchedKind, Service, ServiceKey, ServiceTable};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, Icmpv4Packet, Icmpv6Packet, IpAddress, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
pub use testkit::{
    rs_mac, CIP, DIP_LAN, DIP_WAN, LAN, LAN_MAC, LIP1, LIP2, ROUTER, ROUTER_MAC, RS, TAP, TAP_MAC,
    VIP, WAN, WAN_MAC,
};

/// The director's IPv6 address on the WAN: neighbour solicitations and echoes to it are
/// answered.
pub const DIP6_WAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
/// The director's IPv6 address on the LAN.
pub const DIP6_LAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1);
/// The IPv6 VIP: FullNAT66 and NAT64 services.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
/// The IPv6 LIP.
pub const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x201);
/// The IPv6 router on the WAN (static neighbour, [`ROUTER_MAC`]).
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);
/// IPv6 real servers (static neighbours, MACs `rs_mac(0)`, `rs_mac(1)`).
pub const RS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x12),
];
/// Every IPv6 address of the director (DIPs, VIP, LIP): what IPv6 rvs sends comes from one.
const LOCAL6: [Ipv6Addr; 4] = [DIP6_WAN, DIP6_LAN, VIP6, LIP6];

/// All-nodes (ff02::1), where an answer to duplicate address detection goes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A second VIP (DR, TUN and ICMP services).
pub const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
/// VLAN of the second LAN interface.
pub const LAN_VLAN: u16 = 100;
/// The director's address on the LAN VLAN.
pub const DIP_VLAN: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// A real server on the LAN VLAN (static neighbour).
pub const RS_VLAN: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 11);
/// Its MAC.
pub const RS_VLAN_MAC: [u8; 6] = [0x02, 0, 0, 0x02, 0, 0x0b];
/// A LAN gateway to far real servers: *not* a static neighbour, so packets toward it park
/// until an ARP reply (MAC [`LAN_GW_MAC`]) resolves it.
pub const LAN_GW: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
/// The MAC the seeds' ARP reply gives [`LAN_GW`].
pub const LAN_GW_MAC: [u8; 6] = [0x02, 0, 0, 0x01, 0xfe, 0xfe];
/// A real server behind [`LAN_GW`] (TUN dests).
pub const RS_FAR: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 11);
/// MTU of the VLAN interface: small, so TUN reaches "fragmentation needed".
pub const VLAN_MTU: u16 = 1000;

/// Clock steps a cycle can take, in ms (index: bits 4..=6 of the control byte).
pub const STEPS: [u64; 8] = [0, 1, 100, 1_000, 10_000, 61_000, 301_000, 1_000_000];
/// Frames one cycle injects at most (more end it early).
pub const MAX_CYCLE: usize = 96;
/// Longest frame a record can carry (the in-memory buffers hold 2048 bytes).
pub const MAX_FRAME: usize = 0x7ff;

const ETH_IPV4: [u8; 2] = [0x08, 0x00];
const ETH_ARP: [u8; 2] = [0x08, 0x06];
const ETH_IPV6: [u8; 2] = [0x86, 0xdd];

/// The interfaces every snapshot has: (port, VLAN).
const IFACES: [(u16, Option<u16>); 3] = [(WAN, None), (LAN, None), (LAN, Some(LAN_VLAN))];
/// Every address of the director (DIPs, VIPs, LIPs).
const LOCAL: [Ipv4Addr; 7] = [DIP_WAN, DIP_LAN, DIP_VLAN, VIP, VIP2, LIP1, LIP2];

/// One record of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Publish snapshot `0..=3`.
    Publish(usize),
    /// Later frames go to this worker's queues (`0..WORKERS`).
    Worker(usize),
    /// A frame for a port.
    Frame {
        /// WAN, LAN or TAP.
        port: u16,
        /// The frame.
        bytes: &'a [u8],
        /// Repair lengths and checksums before injecting it.
        repair: bool,
        /// End the cycle after it.
        end: bool,
        /// Index into [`STEPS`] for the cycle it ends.
        step: usize,
        /// Run the slow jobs after the cycle it ends.
        slow: bool,
    },
}

/// Splits fuzz input into [`Record`]s.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        data = rest;
        if ctl & 3 == 3 {
            if ctl & 0x10 != 0 {
                return Some(Record::Worker(((ctl >> 5) & 1) as usize));
            }
            return Some(Record::Publish(((ctl >> 2) & 3) as usize));
        }
        let len = match data {
            [a, b, rest @ ..] => {
                data = rest;
                (u16::from_le_bytes([*a, *b]) as usize) & MAX_FRAME
            }
            _ => {
                data = &[];
                0
            }
        };
        let (bytes, rest) = data.split_at(len.min(data.len()));
        data = rest;
        Some(Record::Frame {
            port: (ctl & 3) as u16,
            bytes,
            repair: ctl & 0x04 != 0,
            end: ctl & 0x08 != 0,
            step: ((ctl >> 4) & 7) as usize,
            slow: ctl & 0x80 != 0,
        })
    })
}

/// Encodes a record (the seed generator's side of [`records`]).
pub fn encode(out: &mut Vec<u8>, r: &Record<'_>) {
    match *r {
        Record::Publish(i) => out.push(3 | ((i as u8 & 3) << 2)),
        Record::Worker(w) => out.push(3 | 0x10 | ((w as u8 & 1) << 5)),
        Record::Frame {
            port,
            bytes,
            repair,
            end,
            step,
            slow,
        } => {
            assert!(port < 3 && bytes.len() <= MAX_FRAME && step < STEPS.len());
            out.push(
                port as u8
                    | (repair as u8) << 2
                    | (end as u8) << 3
                    | (step as u8) << 4
                    | (slow as u8) << 7,
            );
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

fn dest(addr: impl Into<IpAddr>, port: u16, weight: u32, mode: ForwardMode) -> Dest {
    Dest {
        addr: addr.into(),
        port,
        weight,
        mode,
    }
}

fn service(
    proto: Proto,
    vip: impl Into<IpAddr>,
    port: u16,
    sched: SchedKind,
    persist: Option<u32>,
    dests: &[Dest],
) -> Service {
    let mut s = Service::new(
        ServiceKey {
            proto,
            vip: vip.into(),
            port,
        },
        sched,
    )
    .expect("service");
    s.set_persistence(persist).expect("persistence");
    for d in dests {
        s.add_dest(*d).expect("dest");
    }
    s
}

/// `s` with its SYN proxy on.
fn proxied(mut s: Service) -> Service {
    s.set_synproxy(true).expect("synproxy");
    s
}

/// `s` sending the PROXY protocol header of `version`.
fn with_header(mut s: Service, version: sched::ProxyProtocol) -> Service {
    s.set_proxy_protocol(Some(version)).expect("proxy protocol");
    s
}

/// `s` with TOA on.
fn with_toa(mut s: Service) -> Service {
    s.set_toa(true).expect("toa");
    s
}

/// The base configuration: WAN 192.0.2.1/24 (default route via the router), LAN
/// 10.1.0.1/24, LAN VLAN 100 10.2.0.1/24 (MTU 1000), 172.16/16 via the LAN gateway, two LIPs
/// with 2 × 32 ports, and services in every mode and scheduler, three of them SYN-proxied
/// (FullNAT, NAT and FullNAT66), five sending a PROXY protocol header (v1 on NAT, v2 on a
/// SYN-proxied FullNAT service, v2 on FullNAT66, v2 on NAT64 UDP, v1 on the SYN-proxied
/// FullNAT66 service) and one TOA (FullNAT66 and NAT64).
pub fn base_config() -> DirectorConfig {
    use ForwardMode::{Dr, FullNat, Nat, Tun};
    let services = [
        service(
            Proto::Tcp,
            VIP,
            80,
            SchedKind::Wrr,
            None,
            &[dest(RS[0], 8080, 1, FullNat), dest(RS[1], 8080, 2, FullNat)],
        ),
        with_header(
            service(
                Proto::Tcp,
                VIP,
                443,
                SchedKind::Sh,
                None,
                &[dest(RS[0], 8443, 1, Nat), dest(RS[2], 8443, 1, Nat)],
            ),
            sched::ProxyProtocol::V1,
        ),
        service(
            Proto::Udp,
            VIP,
            53,
            SchedKind::Rr,
            Some(60),
            &[dest(RS[2], 53, 1, Nat), dest(RS[1], 5353, 1, Nat)],
        ),
        service(
            Proto::Udp,
            VIP,
            123,
            SchedKind::Wrr,
            None,
            &[dest(RS_VLAN, 123, 1, FullNat)],
        ),
        service(
            Proto::Tcp,
            VIP,
            8081,
            SchedKind::Rr,
            None,
            &[dest(RS[0], 8081, 0, FullNat)],
        ),
        service(
            Proto::Tcp,
            VIP2,
            80,
            SchedKind::Wlc,
            None,
            &[
                dest(RS[0], 80, 1, Dr),
                dest(RS[1], 80, 1, Dr),
                dest(RS_VLAN, 80, 2, Dr),
            ],
        ),
        service(
            Proto::Tcp,
            VIP2,
            8000,
            SchedKind::Mh,
            None,
            &[dest(RS_VLAN, 8000, 1, Tun), dest(RS_FAR, 8000, 1, Tun)],
        ),
        service(
            Proto::Udp,
            VIP2,
            4789,
            SchedKind::Lc,
            None,
            &[dest(RS_FAR, 4789, 1, Tun)],
        ),
        service(
            Proto::Icmp,
            VIP2,
            0,
            SchedKind::Rr,
            None,
            &[dest(RS[1], 0, 1, FullNat)],
        ),
        with_header(
            proxied(service(
                Proto::Tcp,
                VIP,
                8443,
                SchedKind::Wrr,
                None,
                &[dest(RS[0], 9443, 1, FullNat), dest(RS[1], 9443, 1, FullNat)],
            )),
            sched::ProxyProtocol::V2,
        ),
        proxied(service(
            Proto::Tcp,
            VIP2,
            443,
            SchedKind::Rr,
            None,
            &[dest(RS[2], 443, 1, Nat)],
        )),
        // FullNAT66 and NAT64 (IPv4 FullNAT dests of IPv6 services), telling the RS who
        // the client is: a v2 header, TOA, UDP's v2 header.
        with_header(
            service(
                Proto::Tcp,
                VIP6,
                80,
                SchedKind::Wrr,
                None,
                &[
                    dest(RS6[0], 8080, 1, FullNat),
                    dest(RS6[1], 8080, 1, FullNat),
                ],
            ),
            sched::ProxyProtocol::V2,
        ),
        with_toa(service(
            Proto::Tcp,
            VIP6,
            8080,
            SchedKind::Mh,
            None,
            &[
                dest(RS[0], 8080, 1, FullNat),
                dest(RS6[1], 8080, 1, FullNat),
            ],
        )),
        with_header(
            service(
                Proto::Udp,
                VIP6,
                53,
                SchedKind::Rr,
                None,
                &[dest(RS[2], 53, 1, FullNat)],
            ),
            sched::ProxyProtocol::V2,
        ),
        // A SYN-proxied FullNAT66 service with a v1 header.
        with_header(
            proxied(service(
                Proto::Tcp,
                VIP6,
                443,
                SchedKind::Rr,
                None,
                &[dest(RS6[0], 8443, 1, FullNat)],
            )),
            sched::ProxyProtocol::V1,
        ),
        // A SYN-proxied NAT64 service (the director's side of the handshake in IPv4) with a
        // v2 header.
        with_header(
            proxied(service(
                Proto::Tcp,
                VIP6,
                8443,
                SchedKind::Rr,
                None,
                &[dest(RS[1], 9444, 1, FullNat)],
            )),
            sched::ProxyProtocol::V2,
        ),
    ];
    let mut table = ServiceTable::new();
    for s in services {
        table.add(s).expect("add service");
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
            InterfaceConfig {
                addrs6: Vec::new(),
                name: "lan0.100".into(),
                port: LAN,
                vlan: Some(LAN_VLAN),
                addrs: vec![Cidr::new(DIP_VLAN, 24)],
                mtu: VLAN_MTU,
            },
        ],
        routes: vec![
            RouteConfig {
                dst: Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
                via: ROUTER,
            },
            RouteConfig {
                dst: Cidr::new(Ipv4Addr::new(172, 16, 0, 0), 16),
                via: LAN_GW,
            },
        ],
        routes6: vec![RouteConfig6 {
            dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
            via: ROUTER6,
        }],
        lips: vec![LIP1, LIP2],
        lips6: vec![LIP6],
        lport_range: 1024..=1055,
        lport_reuse: dataplane::lip::PortReuse::default(),
        services: table,
        timeouts: Timeouts::default(),
        ..DirectorConfig::default()
    }
}

/// The four snapshots a script can publish (built once: snapshots are immutable).
fn snapshots() -> &'static [Arc<Snapshot>; 4] {
    static SNAPS: OnceLock<[Arc<Snapshot>; 4]> = OnceLock::new();
    SNAPS.get_or_init(|| {
        let base = base_config();
        // Changed: a FullNAT dest removed, a DR dest at weight 0, the TUN/mh service gone,
        // short timeouts.
        let mut changed = base.clone();
        let k = |proto, vip, port| ServiceKey { proto, vip, port };
        changed
            .services
            .get_mut(&k(Proto::Tcp, VIP.into(), 80))
            .expect("svc")
            .remove_dest(RS[1].into(), 8080)
            .expect("remove");
        changed
            .services
            .get_mut(&k(Proto::Tcp, VIP2.into(), 80))
            .expect("svc")
            .edit_dest(dest(RS[0], 80, 0, ForwardMode::Dr))
            .expect("edit");
        changed
            .services
            .remove(&k(Proto::Tcp, VIP2.into(), 8000))
            .expect("remove");
        for (state, ms) in [
            (SessionState::Tcp(TcpState::SynRecv), 2_000),
            (SessionState::Tcp(TcpState::Established), 10_000),
            (SessionState::Tcp(TcpState::TimeWait), 1_000),
            (SessionState::Udp, 5_000),
            (SessionState::Icmp, 1_000),
        ] {
            changed.timeouts.set(state, ms);
        }
        let mut empty = base.clone();
        empty.services = ServiceTable::new();
        // Refused by the worker: an interface on a fourth port.
        let mut refused = base.clone();
        refused.interfaces.push(InterfaceConfig {
            addrs6: Vec::new(),
            name: "extra".into(),
            port: 3,
            vlan: None,
            addrs: vec![Cidr::new(Ipv4Addr::new(10, 9, 0, 1), 24)],
            mtu: 1500,
        });
        [base, changed, empty, refused].map(|c| Arc::new(Snapshot::build(&c).expect("config")))
    })
}

/// Workers of a lab: two, sharing the ports (each with its own queue on every port) and the
/// redirect rings, as rvsd runs them.
pub const WORKERS: usize = 2;

/// A frame to inject: worker (whose queue), port, bytes, whether the script asked for repair.
type Input = (usize, u16, Vec<u8>, bool);
/// A frame sent: port, bytes.
type Output = (u16, Vec<u8>);

/// The director's workers on three in-memory ports each, with what the harness counted per
/// worker (frames and bytes in, frames and bytes out).
struct Lab {
    w: Vec<Worker<MemDevice>>,
    rings: Arc<RedirectRings<MemBuf>>,
    cell: Arc<ArcSwap<Snapshot>>,
    now: u64,
    rx: Vec<(u64, u64)>,
    tx: Vec<(u64, u64)>,
    /// The SYN proxy's last cookie per client flow (client, port, VIP, port), as sent.
    cookies: HashMap<(IpAddr, u16, IpAddr, u16), u32>,
}

impl Lab {
    fn new(prefetch: bool) -> Lab {
        let cell = Arc::new(ArcSwap::new(snapshots()[0].clone()));
        let pool = MemPool::new(2048);
        let rings: Arc<RedirectRings<MemBuf>> = Arc::new(RedirectRings::new(WORKERS, 64));
        let w = (0..WORKERS)
            .map(|id| {
                let ports = [WAN_MAC, LAN_MAC, TAP_MAC]
                    .map(|mac| MemDevice::new(EthernetAddress(mac), pool.clone(), 128))
                    .into();
                let wcfg = WorkerConfig {
                    id: id as u16,
                    workers: WORKERS as u16,
                    table_capacity: 256,
                    table6_capacity: 64,
                    template_capacity: 64,
                    // Small, so that a few first fragments fill a bucket.
                    fragment_capacity: 16,
                    fragment_seed: Some(1),
                    neigh: NeighConfig {
                        capacity: 32,
                        ..NeighConfig::default()
                    },
                    slow_every: 8,
                    prefetch,
                    ports: vec![
                        PortRole::Data {
                            exception: Some(TAP),
                        },
                        PortRole::Data { exception: None },
                        PortRole::Exception { data: WAN },
                    ],
                    ..WorkerConfig::default()
                };
                let mut worker = Worker::new(wcfg, ports, cell.clone())
                    .and_then(|w| w.with_redirect(rings.clone()))
                    .expect("worker");
                let n = worker.neighbours_mut();
                n.insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
                for (i, rs) in RS.iter().enumerate() {
                    n.insert_static(*rs, EthernetAddress(rs_mac(i)));
                }
                n.insert_static(RS_VLAN, EthernetAddress(RS_VLAN_MAC));
                worker.insert_static_neighbour(ROUTER6.into(), EthernetAddress(ROUTER_MAC));
                for (i, rs) in RS6.iter().enumerate() {
                    worker.insert_static_neighbour((*rs).into(), EthernetAddress(rs_mac(i)));
                }
                worker
            })
            .collect();
        Lab {
            w,
            rings,
            cell,
            now: 1_000,
            rx: vec![(0, 0); WORKERS],
            tx: vec![(0, 0); WORKERS],
            cookies: HashMap::new(),
        }
    }

    fn collect(&mut self, out: &mut Vec<Output>) {
        for (i, w) in self.w.iter_mut().enumerate() {
            for port in [WAN, LAN, TAP] {
                for f in w.port_mut(port).take_tx() {
                    self.tx[i].0 += 1;
                    self.tx[i].1 += f.len() as u64;
                    if let Some((k, cookie)) = syn_cookie(&f) {
                        self.cookies.insert(k, cookie);
                    }
                    out.push((port, f));
                }
            }
        }
    }

    /// Frames waiting in an RX queue or a redirect ring.
    fn waiting(&mut self) -> bool {
        !self.rings.is_empty()
            || self
                .w
                .iter_mut()
                .any(|w| [WAN, LAN, TAP].iter().any(|&p| w.port_mut(p).rx_len() > 0))
    }

    /// Polls every worker in turn until no frame waits anywhere.
    fn drain(&mut self, out: &mut Vec<Output>) {
        loop {
            for w in &mut self.w {
                w.poll(self.now);
            }
            self.collect(out);
            if !self.waiting() {
                break;
            }
        }
    }

    /// Injects `inputs`, polls until nothing waits, runs the slow jobs if asked; returns
    /// the frames as injected (see [`Lab::answer_cookie`]) and everything sent.
    fn cycle(&mut self, inputs: &[Input], step: u64, slow: bool) -> (Vec<Input>, Vec<Output>) {
        let mut out = Vec::new();
        let mut used = Vec::with_capacity(inputs.len());
        self.now += step;
        for (w, port, f, fix) in inputs {
            let mut f = f.clone();
            if *fix {
                self.answer_cookie(&mut f);
            }
            if !self.w[*w].port_mut(*port).inject(&f) {
                self.drain(&mut out);
                assert!(
                    self.w[*w].port_mut(*port).inject(&f),
                    "harness: no room to inject after draining"
                );
            }
            self.rx[*w].0 += 1;
            self.rx[*w].1 += f.len() as u64;
            used.push((*w, *port, f, *fix));
        }
        self.drain(&mut out);
        if slow {
            for w in &mut self.w {
                w.slow_jobs(self.now);
            }
            self.collect(&mut out);
        }
        (used, out)
    }

    /// The SYN proxy's cookies come from a random key per worker, which no input can guess:
    /// a repaired TCP ACK (no SYN) to a SYN-proxied service acknowledges the cookie this lab
    /// last sent for its flow, so that the fuzzer can complete proxied handshakes.
    fn answer_cookie(&self, f: &mut [u8]) {
        let Some((key, at)) = tcp_flow(f) else {
            return;
        };
        if f[at + 13] & 0x12 != 0x10 {
            return;
        }
        if let Some(cookie) = self.cookies.get(&key) {
            let at = at + 8;
            f[at..at + 4].copy_from_slice(&cookie.wrapping_add(1).to_be_bytes());
            repair(f);
        }
    }

    fn slow(&mut self, step: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.now += step;
        for w in &mut self.w {
            w.slow_jobs(self.now);
        }
        self.collect(&mut out);
        out
    }

    fn incomplete(&self) -> usize {
        self.w
            .iter()
            .map(|w| {
                let v4 = w.neighbours().iter().map(|e| e.1);
                let v6 = w.neighbours6().iter().map(|e| e.1);
                v4.chain(v6)
                    .filter(|&s| s == NeighState::Incomplete)
                    .count()
            })
            .sum()
    }

    fn parked(&self) -> u64 {
        self.w.iter().map(|w| w.counters().parked()).sum()
    }

    /// Frames parked now, over all workers, by the counters (see the module doc).
    fn still_parked(&self) -> i128 {
        self.w
            .iter()
            .map(|w| {
                let c = w.counters();
                let forwarded = c.tx_packets() as i128
                    - c.arp_requests() as i128
                    - c.neighbour_solicits() as i128
                    - c.icmp_errors() as i128
                    - c.no_service_answers() as i128
                    - c.arp_to_kernel() as i128
                    - c.nd_to_kernel() as i128
                    - c.proxy_header_segments() as i128
                    - c.tunnel_fragment_frames() as i128
                    - c.nat64_fragment_frames() as i128;
                c.rx_packets() as i128 + c.redirected_in() as i128
                    - forwarded
                    - c.drops().iter().map(|&d| d as i128).sum::<i128>()
                    - c.redirected_out() as i128
            })
            .sum()
    }

    /// The counter invariants of the module doc.
    fn check_counters(&self) {
        let still = self.still_parked();
        let incomplete = self.incomplete() as i128;
        let parked = self.parked() as i128;
        assert!(
            0 <= still && still <= parked && still <= 4 * incomplete,
            "frames unaccounted for: still parked {still}, incomplete neighbours {incomplete}: {:?}",
            self.w.iter().map(|w| w.counters()).collect::<Vec<_>>()
        );
        let (out, inn): (u64, u64) = self.w.iter().fold((0, 0), |(o, i), w| {
            (
                o + w.counters().redirected_out(),
                i + w.counters().redirected_in(),
            )
        });
        assert_eq!(out, inn, "handed over ≠ taken over (the rings are empty)");
        for (i, w) in self.w.iter().enumerate() {
            let c = w.counters();
            assert_eq!(
                (c.rx_packets(), c.rx_bytes()),
                self.rx[i],
                "rx counters: {c:?}"
            );
            assert_eq!(
                (c.tx_packets(), c.tx_bytes()),
                self.tx[i],
                "tx counters: {c:?}"
            );
            if parked == 0 {
                assert!(c.balanced(), "Counters::balanced() fails: {c:?}");
            }
            let table = w.sessions();
            let table6 = w.sessions6();
            assert_eq!(
                (table.len() + table6.len()) as u64,
                c.sessions_created() - c.sessions_expired() - c.sessions_reused(),
                "live sessions (both families) vs created − expired − reused: {c:?}"
            );
            let (mut active, mut inactive, mut fullnat) = (0u64, 0u64, 0usize);
            for (_, s) in table.iter() {
                let is_active = match s.state {
                    SessionState::Tcp(t) => t == TcpState::Established,
                    SessionState::Udp | SessionState::Icmp => true,
                };
                if is_active {
                    active += 1;
                } else {
                    inactive += 1;
                }
                if s.data.mode() == ForwardMode::FullNat {
                    fullnat += 1;
                }
            }
            for (_, s) in table6.iter() {
                if matches!(
                    s.state,
                    SessionState::Tcp(TcpState::Established) | SessionState::Udp
                ) {
                    active += 1;
                } else {
                    inactive += 1;
                }
                // NAT64 sessions hold IPv4 LIP ports.
                if matches!(s.data.via, Via6::Nat64 { .. }) {
                    fullnat += 1;
                }
            }
            if let Some(pool) = w.lip_pool() {
                assert_eq!(
                    pool.available() + fullnat,
                    pool.capacity(),
                    "LIP ports of worker {i}: free + live FullNAT sessions ≠ capacity"
                );
            }
            let stats = w.stats_handle();
            let (mut a, mut n, mut conns) = (0, 0, 0);
            for slot in 0..64 {
                let d = stats.dest(slot).sample();
                a += d.active;
                n += d.inactive;
                conns += d.conns;
            }
            assert_eq!(
                (a, n),
                (active, inactive),
                "worker {i}: dest active/inactive counters vs live sessions"
            );
            assert_eq!(
                conns,
                c.sessions_created(),
                "dest conns vs sessions created"
            );
        }
    }
}

/// Client-side ends of the SYN-proxied services.
const PROXIED: [(Ipv4Addr, u16); 2] = [(VIP, 8443), (VIP2, 443)];
/// Server-side ends of the SYN-proxied services' sessions (what the RS sees).
const PROXIED_RS: [(Ipv4Addr, u16); 4] = [
    (RS[0], 9443),
    (RS[1], 9443),
    (RS[2], 443),
    // The SYN-proxied NAT64 service's IPv4 RS.
    (RS[1], 9444),
];
/// The same for the SYN-proxied IPv6 services: their client sides (FullNAT66, NAT64), the
/// FullNAT66 one's RS side.
const PROXIED6: [(Ipv6Addr, u16); 3] = [(VIP6, 443), (VIP6, 8443), (RS6[0], 8443)];

/// The flow of a whole basic TCP header in an unfragmented IPv4 frame or an untagged IPv6
/// one without extension headers: (source, port, destination, port), and where the header
/// starts.
fn tcp_flow(f: &[u8]) -> Option<((IpAddr, u16, IpAddr, u16), usize)> {
    let (src, dst, at) = if let Some((l3, hl)) = tcp_at(f) {
        let ip = |i: usize| Ipv4Addr::new(f[l3 + i], f[l3 + i + 1], f[l3 + i + 2], f[l3 + i + 3]);
        (IpAddr::V4(ip(12)), IpAddr::V4(ip(16)), l3 + hl)
    } else {
        match ipv6_l4_of(f)? {
            (6, src, dst, at, len) if len >= 20 => (IpAddr::V6(src), IpAddr::V6(dst), at),
            _ => return None,
        }
    };
    let port = |i: usize| u16::from_be_bytes([f[at + i], f[at + i + 1]]);
    Some(((src, port(0), dst, port(2)), at))
}

/// Where the TCP header of an unfragmented IPv4 frame starts: (L3 offset, IPv4 header
/// length), when the frame holds a whole basic TCP header.
fn tcp_at(f: &[u8]) -> Option<(usize, usize)> {
    if !is_ipv4(f) {
        return None;
    }
    let l3 = if f[12..14] == ETH_IPV4 { 14 } else { 18 };
    let ip = f.get(l3..l3 + 20)?;
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    (ip[9] == 6 && !fragment && hl >= 20 && f.len() >= l3 + hl + 20).then_some((l3, hl))
}

/// A SYN/ACK from a SYN-proxied service: its client flow and the cookie (its sequence number).
fn syn_cookie(f: &[u8]) -> Option<((IpAddr, u16, IpAddr, u16), u32)> {
    let ((vip, vport, client, cport), at) = tcp_flow(f)?;
    let t = &f[at..];
    let proxied = match vip {
        IpAddr::V4(v) => PROXIED.contains(&(v, vport)),
        IpAddr::V6(v) => PROXIED6[..2].contains(&(v, vport)),
    };
    (t[13] & 0x12 == 0x12 && proxied).then(|| {
        (
            (client, cport, vip, vport),
            u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        )
    })
}

/// Does `f` belong to a SYN-proxied session (or is it an ICMP error quoting one)? Their
/// sequence numbers derive from the random cookie key, so twin labs differ there.
fn proxied_flow(f: &[u8]) -> bool {
    if f.get(12..14) == Some(&ETH_IPV6[..]) {
        return proxied_flow6(f);
    }
    if !is_ipv4(f) {
        return false;
    }
    let l3 = if f[12..14] == ETH_IPV4 { 14 } else { 18 };
    let ends = |ip: &[u8], l4: &[u8]| {
        let a = |i: usize| Ipv4Addr::new(ip[i], ip[i + 1], ip[i + 2], ip[i + 3]);
        let p = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
        [(a(12), p(0)), (a(16), p(2))]
            .iter()
            .any(|e| PROXIED.contains(e) || PROXIED_RS.contains(e))
    };
    let Some(ip) = f.get(l3..) else {
        return false;
    };
    let hl = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
    let Some(l4) = ip.get(hl..) else {
        return false;
    };
    match ip.get(9) {
        Some(6) if l4.len() >= 4 && hl >= 20 => ends(ip, l4),
        Some(1) if l4.len() >= 8 + 20 && icmp_error(l4[0]) => {
            let q = &l4[8..];
            let qhl = usize::from(q[0] & 0x0f) * 4;
            q[9] == 6 && qhl >= 20 && q.len() >= qhl + 4 && ends(q, &q[qhl..])
        }
        // IPIP carries TUN services, never SYN-proxied.
        _ => false,
    }
}

/// [`proxied_flow`] for an untagged IPv6 frame: a TCP segment of the SYN-proxied IPv6
/// service, or an ICMPv6 error quoting one.
fn proxied_flow6(f: &[u8]) -> bool {
    let ends = |ip: &[u8]| -> bool {
        let a = |i: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&ip[i..i + 16]);
            Ipv6Addr::from(o)
        };
        let p = |i: usize| u16::from_be_bytes([ip[40 + i], ip[40 + i + 1]]);
        ip[6] == 6
            && [(a(8), p(0)), (a(24), p(2))]
                .iter()
                .any(|e| PROXIED6.contains(e))
    };
    let Some(ip) = f.get(14..) else {
        return false;
    };
    if ip.len() >= 44 && ends(ip) {
        return true;
    }
    // An ICMPv6 error (types 1–4) quoting a fixed header and the ports.
    ip.len() >= 40 + 8 + 44 && ip[6] == 58 && (1..=4).contains(&ip[40]) && ends(&ip[48..])
}

/// Is `f` an IPv4 frame (after at most one tag)?
fn is_ipv4(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([0x81, 0x00] | [0x88, 0xa8]) => f.get(16..18) == Some(&ETH_IPV4),
        Some(t) => t == ETH_IPV4,
        None => false,
    }
}

/// The ICMPv6 message of an untagged IPv6 frame whose payload length fits it:
/// (source, destination, message offset, message length).
fn icmpv6_of(f: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, usize, usize)> {
    if f.get(12..14)? != ETH_IPV6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(f.get(14..)?).ok()?;
    (u8::from(ip.next_header()) == 58 && ip.payload().len() >= 4)
        .then(|| (ip.src_addr(), ip.dst_addr(), 54, ip.payload().len()))
}

/// The TCP or UDP segment of an untagged IPv6 frame without extension headers whose payload
/// length fits it: (next header, source, destination, segment offset, segment length).
fn ipv6_l4_of(f: &[u8]) -> Option<(u8, Ipv6Addr, Ipv6Addr, usize, usize)> {
    if f.get(12..14)? != ETH_IPV6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(f.get(14..)?).ok()?;
    let nh = u8::from(ip.next_header());
    (matches!(nh, 6 | 17)).then(|| (nh, ip.src_addr(), ip.dst_addr(), 54, ip.payload().len()))
}

/// Makes an IPv4 frame consistent: version 4, total length (and UDP length) no longer than
/// the frame, TCP data offset in range, every checksum right; and an IPv6 frame's ICMPv6
/// checksum right. Anything else is left alone.
pub fn repair(f: &mut [u8]) {
    if let Some((src, dst, at, len)) = icmpv6_of(f) {
        let mut msg = Icmpv6Packet::new_unchecked(&mut f[at..at + len]);
        msg.fill_checksum(&src, &dst);
        return;
    }
    if let Some((nh, src, dst, at, len)) = ipv6_l4_of(f) {
        let (s, d) = (IpAddress::Ipv6(src), IpAddress::Ipv6(dst));
        let l4 = &mut f[at..at + len];
        match nh {
            6 if l4.len() >= 20 => {
                let doff = (l4[12] >> 4) as usize * 4;
                if doff < 20 || doff > l4.len() {
                    l4[12] = (5 << 4) | (l4[12] & 0x0f);
                }
                TcpPacket::new_unchecked(&mut *l4).fill_checksum(&s, &d);
            }
            17 if l4.len() >= 8 => {
                let n = (l4.len() as u16).to_be_bytes();
                l4[4..6].copy_from_slice(&n);
                UdpPacket::new_unchecked(&mut *l4).fill_checksum(&s, &d);
            }
            _ => {}
        }
        return;
    }
    if !is_ipv4(f) {
        return;
    }
    let l3 = if f[12..14] == ETH_IPV4 { 14 } else { 18 };
    let ip = &mut f[l3..];
    if ip.len() < 20 {
        return;
    }
    ip[0] = 0x40 | (ip[0] & 0x0f);
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    if hl < 20 || hl > ip.len() {
        return;
    }
    let avail = ip.len().min(0xffff);
    let mut total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < hl || total > avail {
        total = avail;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    }
    let (src, dst) = {
        let p = Ipv4Packet::new_unchecked(&ip[..]);
        (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()))
    };
    let fragment = ip[6] & 0x20 != 0 || (u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff) != 0;
    let proto = ip[9];
    let l4 = &mut ip[hl..total];
    if !fragment {
        match proto {
            6 if l4.len() >= 20 => {
                let doff = (l4[12] >> 4) as usize * 4;
                if doff < 20 || doff > l4.len() {
                    l4[12] = (5 << 4) | (l4[12] & 0x0f);
                }
                TcpPacket::new_unchecked(&mut *l4).fill_checksum(&src, &dst);
            }
            17 if l4.len() >= 8 => {
                let len = (l4.len() as u16).to_be_bytes();
                l4[4..6].copy_from_slice(&len);
                UdpPacket::new_unchecked(&mut *l4).fill_checksum(&src, &dst);
            }
            1 if l4.len() >= 8 => Icmpv4Packet::new_unchecked(&mut *l4).fill_checksum(),
            _ => {}
        }
    }
    Ipv4Packet::new_unchecked(&mut f[l3..l3 + hl]).fill_checksum();
}

/// Checks one frame rvs built or rewrote, sent on `port`; `clean`: see the module doc.
fn check_built(port: u16, f: &[u8], clean: bool) {
    let mac = [WAN_MAC, LAN_MAC, TAP_MAC][port as usize];
    assert!(f.len() >= 14, "runt frame out of port {port}: {f:02x?}");
    assert_eq!(f[6..12], mac, "source MAC of a frame out of port {port}");
    let (vlan, l3) = if f[12..14] == [0x81, 0x00] {
        assert!(f.len() >= 18, "truncated tag: {f:02x?}");
        (Some(u16::from_be_bytes([f[14], f[15]]) & 0xfff), 18)
    } else {
        (None, 14)
    };
    assert!(
        IFACES.contains(&(port, vlan)),
        "frame out of port {port} on VLAN {vlan:?}, which has no interface"
    );
    let ethertype = [f[l3 - 2], f[l3 - 1]];
    if ethertype == ETH_ARP {
        assert!(f.len() >= 60, "ARP frame not padded: {f:02x?}");
        let arp = ArpPacket::new_checked(&f[l3..]).expect("ARP frame rvs built parses");
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) = ArpRepr::parse(&arp)
        else {
            panic!("ARP frame rvs built is not Ethernet/IPv4: {f:02x?}");
        };
        assert_eq!(source_hardware_addr.0, mac, "ARP sender MAC");
        assert!(
            LOCAL.contains(&source_protocol_addr),
            "ARP from {source_protocol_addr}, not a director address"
        );
        match operation {
            ArpOperation::Request => assert_eq!(f[0..6], [0xff; 6], "ARP request not broadcast"),
            ArpOperation::Reply => {}
            other => panic!("rvs sent ARP operation {other:?}"),
        }
        return;
    }
    if ethertype == ETH_IPV6 {
        return check_ipv6(f, l3, clean);
    }
    assert_eq!(
        ethertype, ETH_IPV4,
        "rvs emitted a frame that is neither ARP nor IP: {f:02x?}"
    );
    assert!(
        f[0] & 1 == 0 && f[0..6] != [0; 6],
        "IPv4 frame to group or zero MAC: {f:02x?}"
    );
    check_ipv4(&f[l3..], clean, true, f);
    // The independent decoder checks L4 checksums: not for a fragment, which holds part of
    // its datagram only (check_ipv4 checked its header).
    let fragment = u16::from_be_bytes([f[l3 + 6], f[l3 + 7]]) & 0x3fff != 0;
    if clean && f[l3 + 9] != 4 && !fragment {
        let _ = testkit::decode(f);
    }
}

/// Checks an IPv6 frame rvs built or forwarded, from one of the director's IPv6 addresses:
/// an echo reply, a neighbour advertisement or solicitation (hop limit 255, checksum right),
/// an ICMPv6 error (built or relayed: its checksum computed in full), or a FullNAT66 / NAT64
/// TCP or UDP packet (its checksum verifying when the input was clean); to a unicast MAC, or
/// to a group at that group's MAC (all-nodes for an advert answering duplicate address
/// detection, a solicited-node group for a solicitation); echo replies keep a bad checksum
/// bad.
fn check_ipv6(f: &[u8], l3: usize, clean: bool) {
    let ip = Ipv6Packet::new_checked(&f[l3..]).expect("IPv6 packet rvs built parses");
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    assert!(
        LOCAL6.contains(&src),
        "IPv6 from {src}, not a director address"
    );
    let (s6, d6) = (IpAddress::Ipv6(src), IpAddress::Ipv6(dst));
    match u8::from(ip.next_header()) {
        58 => check_icmpv6(&ip, clean),
        6 => assert!(
            !clean
                || TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.verify_checksum(&s6, &d6)),
            "valid in, invalid IPv6 TCP out: {f:02x?}"
        ),
        17 => assert!(
            !clean
                || UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.verify_checksum(&s6, &d6)),
            "valid in, invalid IPv6 UDP out: {f:02x?}"
        ),
        // A fragment of a session's TCP segment or UDP datagram: its checksum covers the
        // whole datagram, not to be verified from one fragment.
        44 => assert!(
            ip.payload().len() > 8 && matches!(ip.payload()[0], 6 | 17),
            "rvs sent an IPv6 fragment of no TCP or UDP datagram: {f:02x?}"
        ),
        t => panic!("rvs sent IPv6 next header {t}: {f:02x?}"),
    }
    if dst.is_multicast() {
        let o = dst.octets();
        assert_eq!(
            f[0..6],
            [0x33, 0x33, o[12], o[13], o[14], o[15]],
            "group MAC of {dst}"
        );
    } else {
        assert!(
            f[0] & 1 == 0 && f[0..6] != [0; 6],
            "IPv6 to a group MAC: {f:02x?}"
        );
    }
}

/// The ICMPv6 message of an IPv6 packet rvs sent (see [`check_ipv6`]).
fn check_icmpv6(ip: &Ipv6Packet<&[u8]>, clean: bool) {
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let msg = Icmpv6Packet::new_checked(ip.payload()).expect("ICMPv6 rvs sent parses");
    let ty: u8 = msg.msg_type().into();
    if ty == 135 || ty == 136 {
        assert_eq!(ip.hop_limit(), 255, "neighbour discovery's hop limit");
    }
    match ty {
        136 => assert!(!dst.is_multicast() || dst == ALL_NODES, "advert to {dst}"),
        135 => assert_eq!(
            dst.segments()[..6],
            [0xff02, 0, 0, 0, 0, 1],
            "solicitation to {dst}"
        ),
        129 => {
            assert!(!dst.is_multicast(), "echo reply to a group");
            if !clean {
                return;
            }
        }
        1..=4 => assert!(!dst.is_multicast(), "ICMPv6 error to a group"),
        t => panic!("rvs sent ICMPv6 type {t}"),
    }
    assert!(msg.verify_checksum(&src, &dst), "ICMPv6 type {ty} checksum");
}

/// ICMP types that quote a packet (RFC 792): destination unreachable, source quench, time
/// exceeded, parameter problem.
fn icmp_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 11 | 12)
}

/// Does the L4 checksum of this (unfragmented) IPv4 packet verify? Other protocols: yes.
fn l4_valid(ip: &Ipv4Packet<&[u8]>) -> bool {
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let p = ip.payload();
    match u8::from(ip.next_header()) {
        6 => TcpPacket::new_checked(p).is_ok_and(|t| t.verify_checksum(&s, &d)),
        17 => UdpPacket::new_checked(p).is_ok_and(|u| u.verify_checksum(&s, &d)),
        1 => Icmpv4Packet::new_checked(p).is_ok_and(|i| i.verify_checksum()),
        _ => true,
    }
}

/// The packet an ICMP error quotes (`icmp` from the ICMP header on) is consistent as far as
/// it goes: its IPv4 header checksum verifies when the header is quoted whole, and its L4
/// checksum when the whole packet is quoted. rvs keeps both right incrementally when it
/// rewrites a quote (`icmp::rewrite_quote`), so a consistent quote in means one out.
fn quote_consistent(icmp: &[u8]) -> bool {
    let Some(q) = icmp.get(8..) else {
        return true;
    };
    let ihl = q.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    if q.len() < 20 || q[0] >> 4 != 4 || ihl < 20 || q.len() < ihl {
        return true;
    }
    if internet_checksum(&q[..ihl]) != 0 {
        return false;
    }
    // The whole packet quoted: its L4 checksum too (smoltcp's computation).
    match Ipv4Packet::new_checked(q) {
        Ok(inner) if !inner.more_frags() && inner.frag_offset() == 0 => l4_valid(&inner),
        _ => true,
    }
}

/// RFC 1071 over `data` (0 when the data includes a valid checksum); the harness's own, not
/// rvs's.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// "Clean" input: IPv4 whose checksums all verify (smoltcp's computation), including those
/// of the packet an ICMP error quotes; IPv6 ICMPv6, TCP or UDP right after the fixed header
/// whose checksum verifies; anything but IPv6.
fn clean(f: &[u8]) -> bool {
    if let Some((src, dst, at, len)) = icmpv6_of(f) {
        return Icmpv6Packet::new_unchecked(&f[at..at + len]).verify_checksum(&src, &dst);
    }
    if let Some((nh, src, dst, at, len)) = ipv6_l4_of(f) {
        let (s, d) = (IpAddress::Ipv6(src), IpAddress::Ipv6(dst));
        let p = &f[at..at + len];
        return match nh {
            6 => TcpPacket::new_checked(p).is_ok_and(|t| t.verify_checksum(&s, &d)),
            _ => UdpPacket::new_checked(p).is_ok_and(|u| u.verify_checksum(&s, &d)),
        };
    }
    // Other IPv6 (extension headers, a tag): its transport checksum is not judged here.
    if f.get(12..14) == Some(&ETH_IPV6) || f.get(16..18) == Some(&ETH_IPV6) {
        return false;
    }
    if !is_ipv4(f) {
        return true;
    }
    if !testkit::checksums_valid(f) {
        return false;
    }
    let l3 = if f[12..14] == ETH_IPV4 { 14 } else { 18 };
    match Ipv4Packet::new_checked(&f[l3..]) {
        Ok(ip)
            if u8::from(ip.next_header()) == 1
                && !ip.more_frags()
                && ip.frag_offset() == 0
                && ip.payload().first().is_some_and(|t| icmp_error(*t)) =>
        {
            quote_consistent(ip.payload())
        }
        _ => true,
    }
}

/// Checks an IPv4 packet rvs emitted (`outer`: not inside an IPIP tunnel); `f` is the whole
/// frame, for messages.
fn check_ipv4(pkt: &[u8], clean: bool, outer: bool, f: &[u8]) {
    let ip = Ipv4Packet::new_checked(pkt).expect("IPv4 rvs emitted has a whole header");
    assert_eq!(ip.version(), 4);
    assert!(ip.header_len() >= 20, "IHL < 5: {f:02x?}");
    assert_eq!(
        ip.total_len() as usize,
        pkt.len(),
        "IPv4 total length vs frame (outer: {outer}): {f:02x?}"
    );
    assert!(
        ip.verify_checksum(),
        "IPv4 header checksum (outer: {outer}): {f:02x?}"
    );
    if ip.more_frags() || ip.frag_offset() != 0 {
        return;
    }
    let proto = u8::from(ip.next_header());
    if proto == 4 && outer {
        // TUN: the outer header is built, the inner packet left as it came (through the
        // parser, so its header checksum verifies).
        assert!(
            LOCAL.contains(&ip.src_addr()),
            "IPIP from {}, not a DIP",
            ip.src_addr()
        );
        return check_ipv4(ip.payload(), clean, false, f);
    }
    if proto == 1 && ip.payload().first().is_some_and(|t| icmp_error(*t)) {
        // An ICMP error rvs built (checksum computed in full) or relayed (checksum verified
        // on input, recomputed after the quote's rewrite): valid whatever it quotes.
        let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("ICMP error header");
        assert!(icmp.verify_checksum(), "ICMP error checksum: {f:02x?}");
        if clean {
            assert!(
                quote_consistent(ip.payload()),
                "consistent quote in, inconsistent quote out: {f:02x?}"
            );
        }
    }
    if clean {
        assert!(
            l4_valid(&ip),
            "valid in, invalid out (outer: {outer}): {f:02x?}"
        );
    }
}

/// Checks one cycle's output against its inputs.
fn check_output(inputs: &[Input], out: &[Output], clean: bool) {
    for (port, f) in out {
        match *port {
            TAP => assert!(
                f.len() >= 14
                    && inputs.iter().any(|(_, p, i, _)| {
                        *p == WAN && i.len() >= f.len() && i[..f.len()] == f[..]
                    }),
                "a frame to the kernel that WAN did not receive: {f:02x?}"
            ),
            WAN if inputs.iter().any(|(_, p, i, _)| *p == TAP && i == f) => {}
            p => check_built(p, f, clean),
        }
    }
}

/// One cycle on both labs (see the module doc), with every check.
fn run_cycle(
    labs: &mut [Lab; 2],
    inputs: &mut Vec<Input>,
    step: usize,
    slow: bool,
    dirty_parked: &mut bool,
) {
    let parked_before = labs[0].parked();
    let [(used, out0), (_, out1)] = labs
        .each_mut()
        .map(|lab| lab.cycle(inputs, STEPS[step], slow));
    let outs = [out0, out1];
    let inputs_clean = used.iter().all(|(_, p, f, _)| *p == TAP || clean(f));
    check_output(&used, &outs[0], inputs_clean && !*dirty_parked);
    compare(labs, &outs);
    labs[0].check_counters();
    if !inputs_clean && labs[0].parked() > parked_before {
        *dirty_parked = true;
    }
    if labs[0].incomplete() == 0 {
        *dirty_parked = false;
    }
    inputs.clear();
}

/// Runs one fuzz input (see the module doc). Panics on any broken invariant.
pub fn run(data: &[u8]) {
    let snaps = snapshots();
    let mut labs = [Lab::new(true), Lab::new(false)];
    let mut inputs: Vec<Input> = Vec::new();
    let mut worker = 0;
    // A frame of an unclean cycle was parked and may still be released later.
    let mut dirty_parked = false;
    for r in records(data) {
        match r {
            Record::Publish(i) => {
                for lab in &labs {
                    lab.cell.store(snaps[i].clone());
                }
            }
            Record::Worker(w) => worker = w,
            Record::Frame {
                port,
                bytes,
                repair: fix,
                end,
                step,
                slow,
            } => {
                let mut f = bytes.to_vec();
                if fix {
                    repair(&mut f);
                }
                if let Some(p) = parse::parse_fast(&f) {
                    assert_eq!(Ok(p), parse::parse_full(&f), "parse_fast ≠ parse_full");
                }
                inputs.push((worker, port, f, fix));
                if end || inputs.len() >= MAX_CYCLE {
                    run_cycle(&mut labs, &mut inputs, step, slow, &mut dirty_parked);
                }
            }
        }
    }
    if !inputs.is_empty() {
        run_cycle(&mut labs, &mut inputs, 0, false, &mut dirty_parked);
    }
    // The end: every session expires, every unanswered neighbour is given up.
    for step in [2 * 86_400_000, 2_000, 2_000, 2_000, 2_000, 2_000, 2_000] {
        let outs = labs.each_mut().map(|lab| lab.slow(step));
        check_output(&[], &outs[0], !dirty_parked);
        compare(&labs, &outs);
        labs[0].check_counters();
    }
    let lab = &labs[0];
    for w in &lab.w {
        assert_eq!(w.sessions().len(), 0, "sessions left after two days");
    }
    assert_eq!(lab.incomplete(), 0, "incomplete neighbours left");
    assert_eq!(lab.still_parked(), 0, "frames unaccounted for at the end");
}

/// Runs a script on one lab without checks and returns each cycle's output (the seed
/// generator uses it to answer what the director sent).
pub fn trace(data: &[u8]) -> Vec<Vec<Output>> {
    trace_counted(data).0
}

/// [`trace`], with each worker's counters at the end of the script.
pub fn trace_counted(data: &[u8]) -> (Vec<Vec<Output>>, Vec<Counters>) {
    let mut lab = Lab::new(true);
    let mut inputs = Vec::new();
    let mut outs = Vec::new();
    let mut worker = 0;
    for r in records(data) {
        match r {
            Record::Publish(i) => lab.cell.store(snapshots()[i].clone()),
            Record::Worker(w) => worker = w,
            Record::Frame {
                port,
                bytes,
                repair: fix,
                end,
                step,
                slow,
            } => {
                let mut f = bytes.to_vec();
                if fix {
                    repair(&mut f);
                }
                inputs.push((worker, port, f, fix));
                if end || inputs.len() >= MAX_CYCLE {
                    outs.push(lab.cycle(&inputs, STEPS[step], slow).1);
                    inputs.clear();
                }
            }
        }
    }
    if !inputs.is_empty() {
        outs.push(lab.cycle(&inputs, 0, false).1);
    }
    let counters = lab.w.iter().map(|w| w.counters().clone()).collect();
    (outs, counters)
}

/// The workers without prefetching stages must do exactly what those with them do.
fn compare(labs: &[Lab; 2], outs: &[Vec<Output>; 2]) {
    // The same frames; their order may differ where a worker walks a hash map seeded at
    // random per instance (the neighbour table's ARP probes).
    // Frames of SYN-proxied sessions carry sequence numbers from each lab's random cookie
    // key: only their number is compared.
    let sorted = |o: &Vec<Output>| {
        let (mut same, proxied): (Vec<Output>, Vec<Output>) =
            o.iter().cloned().partition(|(_, f)| !proxied_flow(f));
        same.sort();
        (same, proxied.len())
    };
    assert!(
        sorted(&outs[0]) == sorted(&outs[1]),
        "prefetching stages change the output:\nwith:    {:02x?}\nwithout: {:02x?}",
        outs[0],
        outs[1]
    );
    for (a, b) in labs[0].w.iter().zip(&labs[1].w) {
        let (a, b): (&Counters, &Counters) = (a.counters(), b.counters());
        assert_eq!(a, b, "prefetching stages change the counters");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut v = Vec::new();
        let frame = [1u8, 2, 3];
        let rs = [
            Record::Publish(2),
            Record::Worker(1),
            Record::Frame {
                port: LAN,
                bytes: &frame,
                repair: true,
                end: true,
                step: 5,
                slow: true,
            },
        ];
        for r in &rs {
            encode(&mut v, r);
        }
        assert_eq!(records(&v).collect::<Vec<_>>(), rs);
    }
}
