//! The established fast path (worker/fast.rs), IPv4's and IPv6's, changes no outcome: the
//! same bursts through a
//! worker that stages its bursts (the fast path on) and one that does not (every frame by the
//! full path) give the same frames out of every port, and leave the same counters, sessions,
//! per-dest figures and sync records behind — whatever the mode, the flags, a TTL at its end,
//! a packet over the MTU, a frame for another MAC, a martian source, a PROXY protocol or TOA
//! header, or an unresolved next hop.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::sync::SyncLink;
use dataplane::worker::WorkerConfig;
use proptest::prelude::*;
use sched::{ForwardMode, ProxyProtocol, SchedKind, ServiceKey};
use std::sync::Arc;

/// Client flows the steps pick from.
const FLOWS: u16 = 6;

/// What the TCP service does besides forwarding (both need replies through the director, so
/// they go with NAT and FullNAT only). Not the SYN proxy: its cookies come from each worker's
/// own random key, so twin workers answer a SYN differently; tests/synproxy.rs follows its
/// sessions' segments through the fast path.
#[derive(Clone, Copy, Debug)]
enum Extra {
    None,
    ProxyProtocol,
    Toa,
}

/// TCP VIP:80 (with `extra`) and UDP VIP:53, both to two dests in `mode`.
fn director(mode: ForwardMode, extra: Extra) -> dataplane::snapshot::DirectorConfig {
    let port = if mode.maps_ports() { 8080 } else { 80 };
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, port, 1, mode), dest(1, port, 1, mode)],
    );
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let web = cfg.services.get_mut(&key).unwrap();
    match extra {
        Extra::None => {}
        Extra::ProxyProtocol => web.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap(),
        Extra::Toa => web.set_toa(true).unwrap(),
    }
    let dns = config(Proto::Udp, 53, SchedKind::Rr, &[dest(2, 53, 1, mode)]);
    for s in dns.services.iter() {
        cfg.services.add(s.clone()).unwrap();
    }
    cfg
}

/// A lab whose worker stages its bursts (`fast`) or not, connected to a sync daemon that
/// takes its records.
fn lab(cfg: &dataplane::snapshot::DirectorConfig, fast: bool, neigh: bool) -> (Lab, Arc<SyncLink>) {
    let wcfg = WorkerConfig {
        prefetch: fast,
        ..WorkerConfig::default()
    };
    let (lab, link) = Lab::with(cfg, wcfg, neigh).synced();
    link.set_export(true, 60_000);
    (lab, link)
}

/// A client's frame of flow `flow`: `kind` picks what it is, `twist` what is odd about it.
fn client_frame(flow: u16, kind: usize, twist: usize) -> Vec<u8> {
    let sport = 40_000 + flow;
    let mut f = match kind {
        0 => tcp_frame((CIP, sport), (VIP, 80), SYN, 1000, 0),
        1 => tcp_frame((CIP, sport), (VIP, 80), ACK | PSH, 1001, 1)
            .payload(b"GET / HTTP/1.0\r\n\r\n"),
        2 => tcp_frame((CIP, sport), (VIP, 80), ACK, 1001, 1),
        3 => tcp_frame((CIP, sport), (VIP, 80), FIN | ACK, 1020, 1),
        4 => tcp_frame((CIP, sport), (VIP, 80), RST, 1020, 0),
        5 => tcp_frame((CIP, sport), (VIP, 80), ACK, 1001, 1).payload(&[7; 1600]),
        6 => tcp_frame((CIP, sport), (VIP, 80), SYN | FIN, 1000, 0),
        _ => Frame::udp(CIP, sport, VIP, 53).payload(b"query"),
    };
    match twist {
        1 => f.ttl = 1,
        2 => f.dst_mac = [0x02, 0, 0, 0, 0x33, 0x33],
        3 => f.src = std::net::Ipv4Addr::new(127, 0, 0, 9),
        4 => f.df = false,
        _ => {}
    }
    f.build()
}

/// What an RS (or the router) sends back for a frame the director sent it: MACs, addresses
/// and ports swapped, so every checksum still holds. Only TCP and UDP over IPv4 without
/// options.
fn reflect(f: &[u8]) -> Option<Vec<u8>> {
    if f.len() < 38 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || ![6, 17].contains(&f[23]) {
        return None;
    }
    let mut r = f.to_vec();
    r[..6].copy_from_slice(&f[6..12]);
    r[6..12].copy_from_slice(&f[..6]);
    r[26..30].copy_from_slice(&f[30..34]);
    r[30..34].copy_from_slice(&f[26..30]);
    r[34..36].copy_from_slice(&f[36..38]);
    r[36..38].copy_from_slice(&f[34..36]);
    Some(r)
}

/// The IPv6 services: TCP [VIP6]:80 (with `extra`) and UDP [VIP6]:53 to the IPv6 RSs in
/// `mode`, and NAT64's TCP [VIP6]:8000 to the IPv4 RS[1].
fn director6(mode: ForwardMode, extra: Extra) -> dataplane::snapshot::DirectorConfig {
    let mut cfg = config_with_ipv6();
    cfg.lips6 = vec![LIP6];
    let v6 = |i: usize, port: u16| sched::Dest {
        addr: RS6[i].into(),
        port,
        weight: 1,
        mode,
    };
    let port = if mode.maps_ports() { 8080 } else { 80 };
    let mut web = sched::Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    web.add_dest(v6(0, port)).unwrap();
    web.add_dest(v6(1, port)).unwrap();
    match extra {
        Extra::None => {}
        Extra::ProxyProtocol => web.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap(),
        Extra::Toa => web.set_toa(true).unwrap(),
    }
    cfg.services.add(web).unwrap();
    let mut dns = sched::Service::new(key6(Proto::Udp, 53), SchedKind::Rr).unwrap();
    dns.add_dest(v6(0, 53)).unwrap();
    cfg.services.add(dns).unwrap();
    let mut nat64 = sched::Service::new(key6(Proto::Tcp, 8000), SchedKind::Rr).unwrap();
    nat64
        .add_dest(dest(1, 8080, 1, ForwardMode::FullNat))
        .unwrap();
    cfg.services.add(nat64).unwrap();
    cfg
}

/// An IPv6 client's frame of flow `flow`, as [`client_frame`] makes IPv4 ones (kind 7: to
/// the NAT64 service; twist 3: a loopback source, 4: a UDP datagram without a checksum).
fn client_frame6(flow: u16, kind: usize, twist: usize) -> Vec<u8> {
    let sport = 40_000 + flow;
    let tcp = |flags, port| Frame6::tcp(CLIENT6, sport, VIP6, port, flags);
    let mut f = match kind {
        0 => tcp(SYN, 80),
        1 => tcp(ACK | PSH, 80).payload(b"GET / HTTP/1.0\r\n\r\n"),
        2 => tcp(ACK, 80),
        3 => tcp(FIN | ACK, 80),
        4 => tcp(RST, 80),
        5 => tcp(ACK, 80).payload(&[7; 1600]),
        6 => Frame6::udp(CLIENT6, sport, VIP6, 53).payload(b"query"),
        _ => tcp(if flow.is_multiple_of(2) { SYN } else { ACK }, 8000),
    };
    match twist {
        1 => f.hop_limit = 1,
        2 => f.dst_mac = [0x02, 0, 0, 0, 0x33, 0x33],
        3 => f.src = std::net::Ipv6Addr::LOCALHOST,
        _ => {}
    }
    let mut b = f.build();
    if twist == 4 && kind == 6 {
        b[60..62].fill(0);
    }
    b
}

/// [`reflect`] for IPv6 TCP and UDP without extension headers.
fn reflect6(f: &[u8]) -> Option<Vec<u8>> {
    if f.len() < 58 || f[12..14] != [0x86, 0xdd] || ![6, 17].contains(&f[20]) {
        return None;
    }
    let mut r = f.to_vec();
    r[..6].copy_from_slice(&f[6..12]);
    r[6..12].copy_from_slice(&f[..6]);
    r[22..38].copy_from_slice(&f[38..54]);
    r[38..54].copy_from_slice(&f[22..38]);
    r[54..56].copy_from_slice(&f[56..58]);
    r[56..58].copy_from_slice(&f[54..56]);
    Some(r)
}

/// Sends `frames` to `port` of both labs as one burst; their outputs must be the same.
fn burst(a: &mut Lab, b: &mut Lab, port: u16, frames: &[Vec<u8>]) -> Result<Out, TestCaseError> {
    for lab in [&mut *a, &mut *b] {
        for f in frames {
            assert!(lab.worker.port_mut(port).inject(f));
        }
        lab.worker.poll(lab.now);
    }
    let (oa, ob) = (a.collect(), b.collect());
    prop_assert_eq!(&oa.wan, &ob.wan, "WAN output differs");
    prop_assert_eq!(&oa.lan, &ob.lan, "LAN output differs");
    prop_assert_eq!(&oa.tap, &ob.tap, "kernel output differs");
    Ok(oa)
}

/// Everything the two labs keep must be the same.
fn same_state(a: &Lab, la: &SyncLink, b: &Lab, lb: &SyncLink) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.worker.counters(), b.worker.counters());
    let sessions = |l: &Lab| {
        let mut v: Vec<String> = l
            .worker
            .sessions()
            .iter()
            .map(|(_, s)| format!("{s:?}"))
            .collect();
        v.sort();
        v
    };
    prop_assert_eq!(sessions(a), sessions(b));
    let sessions6 = |l: &Lab| {
        let mut v: Vec<String> = l
            .worker
            .sessions6()
            .iter()
            .map(|(_, s)| format!("{s:?}"))
            .collect();
        v.sort();
        v
    };
    prop_assert_eq!(sessions6(a), sessions6(b));
    let (sa, sb) = (a.worker.stats_handle(), b.worker.stats_handle());
    for slot in 0..8 {
        prop_assert_eq!(
            sa.dest(slot).sample(),
            sb.dest(slot).sample(),
            "dest slot {}",
            slot
        );
    }
    let records = |l: &SyncLink| {
        std::iter::from_fn(|| l.pop_out())
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(records(la), records(lb));
    Ok(())
}

/// The address family a property runs: its director, its clients' frames and its RSs'
/// answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    /// IPv6 services, NAT64's included (whose RS answers in IPv4).
    V6,
}

impl Family {
    fn director(self, mode: ForwardMode, extra: Extra) -> dataplane::snapshot::DirectorConfig {
        match self {
            Family::V4 => director(mode, extra),
            Family::V6 => director6(mode, extra),
        }
    }

    fn client(self, flow: u16, kind: usize, twist: usize) -> Vec<u8> {
        match self {
            Family::V4 => client_frame(flow, kind, twist),
            Family::V6 => client_frame6(flow, kind, twist),
        }
    }

    fn reflect(self, f: &[u8]) -> Option<Vec<u8>> {
        match self {
            Family::V4 => reflect(f),
            Family::V6 => reflect6(f).or_else(|| reflect(f)),
        }
    }

    /// Twin labs for `cfg`: the first stages its bursts, the second does not.
    fn twins(
        self,
        cfg: &dataplane::snapshot::DirectorConfig,
        neigh: bool,
    ) -> ((Lab, Arc<SyncLink>), (Lab, Arc<SyncLink>)) {
        let (mut a, mut b) = (lab(cfg, true, neigh), lab(cfg, false, neigh));
        if neigh && self == Family::V6 {
            know_ipv6_neighbours(&mut a.0);
            know_ipv6_neighbours(&mut b.0);
        }
        (a, b)
    }
}

/// Runs `steps` (flow, kind, twist) as bursts of `per_burst` client frames of `family`
/// through twin labs, each burst's LAN output answered by the RSs in one burst, time moving
/// on and the slow jobs running between bursts; the twins must agree throughout.
fn same_outcome(
    family: Family,
    cfg: &dataplane::snapshot::DirectorConfig,
    steps: &[(u16, usize, usize)],
    per_burst: usize,
    neigh: bool,
) -> Result<(), TestCaseError> {
    let ((mut a, la), (mut b, lb)) = family.twins(cfg, neigh);
    for chunk in steps.chunks(per_burst) {
        let frames: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&(flow, kind, twist)| family.client(flow, kind, twist))
            .collect();
        let out = burst(&mut a, &mut b, WAN, &frames)?;
        let replies: Vec<Vec<u8>> = out.lan.iter().filter_map(|f| family.reflect(f)).collect();
        if !replies.is_empty() {
            burst(&mut a, &mut b, LAN, &replies)?;
        }
        for lab in [&mut a, &mut b] {
            lab.advance(700);
            lab.slow();
        }
        same_state(&a, &la, &b, &lb)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 224, ..ProptestConfig::default() })]

    /// Twists 0 and 5 to 7 are none: most frames are plain.
    #[test]
    fn the_fast_path_changes_no_outcome(
        family in prop_oneof![Just(Family::V4), Just(Family::V6)],
        steps in proptest::collection::vec((0..FLOWS, 0usize..8, 0usize..8), 1..48),
        per_burst in 1usize..8,
        (mode, extra) in prop_oneof![
            Just((ForwardMode::FullNat, Extra::None)),
            Just((ForwardMode::FullNat, Extra::ProxyProtocol)),
            Just((ForwardMode::FullNat, Extra::Toa)),
            Just((ForwardMode::Nat, Extra::None)),
            Just((ForwardMode::Nat, Extra::ProxyProtocol)),
            Just((ForwardMode::Dr, Extra::None)),
            Just((ForwardMode::Tun, Extra::None)),
        ],
        neigh in any::<bool>(),
    ) {
        let cfg = family.director(mode, extra);
        same_outcome(family, &cfg, &steps, per_burst, neigh)?;
    }
}

/// The properties above compare real traffic: an established flow's packets are forwarded,
/// with the stages as without, in every mode the fast path serves and in both families.
#[test]
fn established_flows_forward_with_and_without_the_fast_path() {
    let modes = [ForwardMode::FullNat, ForwardMode::Nat, ForwardMode::Dr];
    for (family, mode) in [Family::V4, Family::V6]
        .into_iter()
        .flat_map(|f| modes.map(|m| (f, m)))
    {
        let cfg = family.director(mode, Extra::None);
        let ((mut a, _), (mut b, _)) = family.twins(&cfg, true);
        let open = burst(&mut a, &mut b, WAN, &[family.client(0, 0, 0)]).unwrap();
        assert_eq!(
            open.lan.len(),
            1,
            "{family:?} {mode:?}: the SYN reached the RS"
        );
        // NAT66's reply goes to the client, not to a director's address: the full path's.
        if mode == ForwardMode::FullNat || (mode == ForwardMode::Nat && family == Family::V4) {
            let back = family.reflect(&open.lan[0]).unwrap();
            let back = burst(&mut a, &mut b, LAN, &[back]).unwrap();
            assert_eq!(
                back.wan.len(),
                1,
                "{family:?} {mode:?}: the SYN-ACK came back"
            );
        }
        let data: Vec<Vec<u8>> = (0..4).map(|_| family.client(0, 1, 0)).collect();
        let out = burst(&mut a, &mut b, WAN, &data).unwrap();
        assert_eq!(
            out.lan.len(),
            4,
            "{family:?} {mode:?}: every segment reached the RS"
        );
        assert_eq!(a.worker.counters(), b.worker.counters());
    }
}
