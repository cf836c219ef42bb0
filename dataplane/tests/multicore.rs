//! Two workers, each with its own queue on every port, sharing one snapshot and the redirect
//! rings: packets that reach the worker not owning their session are handed over and
//! forwarded, in FullNAT (by LIP port slice) and NAT (by the client endpoint's home worker);
//! ARP answers and IPv6 neighbour adverts reach every worker's neighbour table; a full ring is a counted drop.

mod common;

use arc_swap::ArcSwap;
use common::*;
use conntrack::Proto;
use dataplane::mem::{MemBuf, MemDevice, MemPool};
use dataplane::redirect::{home, RedirectRings};
use dataplane::rss::ReplySteering;
use dataplane::rss::{toeplitz, Reta, RssKey};
use dataplane::snapshot::{DirectorConfig, Snapshot};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{PortRole, Worker, WorkerConfig};
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv6Addr;
use std::sync::Arc;

struct Pair {
    w: Vec<Worker<MemDevice>>,
    now: u64,
}

impl Pair {
    /// Delivers each reply to the queue RSS puts it on (`(queue, frame)`): every one is
    /// forwarded there, none handed over, nothing dropped.
    fn deliver_steered(&mut self, replies: &[(usize, Vec<u8>)]) {
        for (q, r) in replies {
            let [o0, o1] = self.send(*q, LAN, r);
            assert_eq!(o0.wan.len() + o1.wan.len(), 1);
        }
        for w in &self.w {
            assert_eq!(w.counters().redirected_out(), 0);
            assert_eq!(w.counters().total_drops(), 0);
        }
    }

    fn new(cfg: &DirectorConfig, depth: usize, static_neigh: bool) -> Pair {
        Pair::with_steering(cfg, depth, static_neigh, None)
    }

    /// Two workers; with `rss`, the LAN port spreads replies by Toeplitz with this key and a
    /// round-robin RETA, and each worker steers its FullNAT LIP ports to its own queue.
    fn with_steering(
        cfg: &DirectorConfig,
        depth: usize,
        static_neigh: bool,
        rss: Option<RssKey>,
    ) -> Pair {
        let cell = Arc::new(ArcSwap::from_pointee(Snapshot::build(cfg).unwrap()));
        let rings: Arc<RedirectRings<MemBuf>> = Arc::new(RedirectRings::new(2, depth));
        let pool = MemPool::new(4096);
        let w = (0..2)
            .map(|id| {
                let ports = vec![
                    MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 256),
                    MemDevice::new(EthernetAddress(LAN_MAC), pool.clone(), 256),
                    MemDevice::new(EthernetAddress(TAP_MAC), pool.clone(), 256),
                ];
                let wcfg = WorkerConfig {
                    id,
                    workers: 2,
                    ports: vec![
                        PortRole::Data {
                            exception: Some(TAP),
                        },
                        PortRole::Data { exception: None },
                        PortRole::Exception { data: WAN },
                    ],
                    steering: match rss {
                        Some(key) => vec![
                            None,
                            Some(
                                ReplySteering::new(&key, Reta::round_robin(128, 2).unwrap(), id)
                                    .unwrap(),
                            ),
                            None,
                        ],
                        None => Vec::new(),
                    },
                    ..WorkerConfig::default()
                };
                let mut w = Worker::new(wcfg, ports, cell.clone())
                    .unwrap()
                    .with_redirect(rings.clone())
                    .unwrap();
                if static_neigh {
                    w.neighbours_mut()
                        .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
                    for (i, rs) in RS.iter().enumerate() {
                        w.neighbours_mut()
                            .insert_static(*rs, EthernetAddress(rs_mac(i)));
                    }
                }
                w
            })
            .collect();
        Pair { w, now: 1_000 }
    }

    /// Injects `frame` on worker `wi`'s queue of `port`, then polls both workers (the
    /// receiver first) until nothing moves; returns what each worker sent.
    fn send(&mut self, wi: usize, port: u16, frame: &[u8]) -> [Out; 2] {
        assert!(self.w[wi].port_mut(port).inject(frame));
        for _ in 0..3 {
            self.w[wi].poll(self.now);
            self.w[1 - wi].poll(self.now);
        }
        [self.collect(0), self.collect(1)]
    }

    fn collect(&mut self, wi: usize) -> Out {
        let w = &mut self.w[wi];
        Out {
            wan: w.port_mut(WAN).take_tx(),
            lan: w.port_mut(LAN).take_tx(),
            tap: w.port_mut(TAP).take_tx(),
        }
    }
}

#[test]
fn fullnat_reply_on_the_other_worker_is_redirected_to_the_owner() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut p = Pair::new(&cfg, 64, true);
    let [o0, o1] = p.send(0, WAN, &Frame::tcp(CIP, 40000, VIP, 80, SYN).build());
    assert_eq!((o0.lan.len(), o1.total()), (1, 0));
    let s = decode(&o0.lan[0]);
    let (lip, lport) = (s.src, s.sport);
    assert!(lport <= 33279, "worker 0's slice of 1024..=65535");

    // The RS's answer lands on worker 1's queue: handed to worker 0, which forwards it.
    let [o0, o1] = p.send(
        1,
        LAN,
        &Frame::tcp(RS[0], 8080, lip, lport, SYN | ACK)
            .via_rs(0)
            .build(),
    );
    assert_eq!(o1.total(), 0);
    let s = decode(&o0.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 80, CIP, 40000));
    assert_eq!(p.w[1].counters().redirected_out(), 1);
    assert_eq!(p.w[0].counters().redirected_in(), 1);
    assert_eq!(
        p.w[1].sessions().len(),
        0,
        "no session was made on the wrong worker"
    );
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
    }
    assert!(p.w[0].counters().balanced() && p.w[1].counters().balanced());
}

const RIP6: Ipv6Addr = RS6[0];

/// Two workers with IPv6 on both ports, an IPv6 LIP, and TCP [VIP6]:80 → RIP6:8080 in `mode`;
/// both know the RS's and the router's MACs.
fn pair6(mode: ForwardMode) -> Pair {
    pair6_to(RIP6.into(), mode)
}

/// [`pair6`] with its IPv6 service's one dest at `addr` (an IPv4 FullNAT one: NAT64).
fn pair6_to(addr: std::net::IpAddr, mode: ForwardMode) -> Pair {
    pair6_with(addr, mode, None, None)
}

/// [`pair6_to`], the LAN port spreading by Toeplitz with `rss` when given (see
/// [`Pair::with_steering`]), the service persistent for `persistence` seconds when given.
fn pair6_with(
    addr: std::net::IpAddr,
    mode: ForwardMode,
    rss: Option<RssKey>,
    persistence: Option<u32>,
) -> Pair {
    use dataplane::snapshot::{Cidr6, RouteConfig6};
    use sched::{Dest, Service, ServiceKey};
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.interfaces[WAN as usize].addrs6 = vec![Cidr6::new(v6("2001:db8:2::1"), 64)];
    cfg.interfaces[LAN as usize].addrs6 = vec![Cidr6::new(v6("2001:db8:10:1::1"), 64)];
    cfg.routes6 = vec![RouteConfig6 {
        dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
        via: ROUTER6,
    }];
    cfg.lips6 = vec![LIP6];
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP6.into(),
        port: 80,
    };
    let mut svc = Service::new(key, SchedKind::Rr).unwrap();
    svc.add_dest(Dest {
        addr,
        port: 8080,
        weight: 1,
        mode,
    })
    .unwrap();
    svc.set_persistence(persistence).unwrap();
    cfg.services.add(svc).unwrap();
    let mut p = Pair::with_steering(&cfg, 64, true, rss);
    for w in &mut p.w {
        w.insert_static_neighbour(RIP6.into(), EthernetAddress(rs_mac(0)));
        w.insert_static_neighbour(ROUTER6.into(), EthernetAddress(ROUTER_MAC));
    }
    p
}

/// The RS's segment `src` → `dst` as it reaches the director's LAN port.
fn from_rs6(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8) -> Vec<u8> {
    let mut f = testkit::Frame6::tcp(src.0, src.1, dst.0, dst.1, flags);
    f.dst_mac = LAN_MAC;
    f.src_mac = rs_mac(0);
    f.build()
}

#[test]
fn a_fullnat66_reply_on_the_other_worker_is_redirected_to_the_owner() {
    let mut p = pair6(ForwardMode::FullNat);
    let syn = testkit::Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let [o0, o1] = p.send(0, WAN, &syn);
    assert_eq!((o0.lan.len(), o1.total()), (1, 0));
    let s = decode6(&o0.lan[0]);
    let lport = s.l4().sport;
    assert_eq!(s.src, LIP6);
    assert!(lport <= 33279, "worker 0's slice of 1024..=65535");
    // The RS's answer lands on worker 1's queue: handed to worker 0, which forwards it.
    let [o0, o1] = p.send(1, LAN, &from_rs6((RIP6, 8080), (LIP6, lport), SYN | ACK));
    assert_eq!(o1.total(), 0);
    let s = decode6(&o0.wan[0]);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    assert_eq!((s.l4().sport, s.l4().dport), (80, 40000));
    assert_eq!(p.w[1].counters().redirected_out(), 1);
    assert_eq!(p.w[0].counters().redirected_in(), 1);
    assert_eq!(
        p.w[1].sessions6().len(),
        0,
        "no session on the wrong worker"
    );
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
    }
    assert!(p.w[0].counters().balanced() && p.w[1].counters().balanced());
}

#[test]
fn an_icmpv6_error_on_the_other_worker_goes_to_the_session_owner() {
    let mut p = pair6(ForwardMode::FullNat);
    let syn = testkit::Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let [o0, _] = p.send(0, WAN, &syn);
    let sent = o0.lan[0].clone();
    let lport = decode6(&sent).l4().sport;
    // A Packet Too Big from the RS's side about the segment sent to it reaches worker 1: by
    // the quoted LIP port it goes to worker 0, which relays it to the client.
    let ptb = smoltcp::wire::Icmpv6Repr::PktTooBig {
        mtu: 1400,
        header: smoltcp::wire::Ipv6Repr {
            src_addr: LIP6,
            dst_addr: RIP6,
            next_header: smoltcp::wire::IpProtocol::Tcp,
            payload_len: sent.len() - 54,
            hop_limit: 63,
        },
        data: &sent[54..],
    };
    let frame = icmpv6_frame(rs_mac(0), LAN_MAC, (RIP6, LIP6), 64, &ptb);
    let [o0, o1] = p.send(1, LAN, &frame);
    assert_eq!(o1.total(), 0);
    let s = decode6(&o0.wan[0]);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    match s.icmpv6() {
        smoltcp::wire::Icmpv6Repr::PktTooBig { mtu, header, .. } => {
            assert_eq!(mtu, 1400);
            assert_eq!((header.src_addr, header.dst_addr), (CLIENT6, VIP6));
        }
        other => panic!("expected packet too big, got {other:?}"),
    }
    assert!(lport <= 33279);
    assert_eq!(p.w[1].counters().redirected_out(), 1);
    assert_eq!(p.w[0].counters().icmp_relayed(), 1);
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
    }
}

#[test]
fn a_nat64_reply_on_the_other_worker_is_redirected_to_the_owner() {
    let mut p = pair6_to(RS[0].into(), ForwardMode::FullNat);
    let syn = testkit::Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let [o0, o1] = p.send(0, WAN, &syn);
    assert_eq!((o0.lan.len(), o1.total()), (1, 0));
    let s = decode(&o0.lan[0]);
    assert_eq!((s.dst, s.dport), (RS[0], 8080));
    assert!(s.sport <= 33279, "worker 0's slice of 1024..=65535");
    // The RS's IPv4 answer lands on worker 1's queue: handed to worker 0, which translates it.
    let mut synack = Frame::tcp(RS[0], 8080, s.src, s.sport, SYN | ACK).via_rs(0);
    synack.dst_mac = LAN_MAC;
    let [o0, o1] = p.send(1, LAN, &synack.build());
    assert_eq!(o1.total(), 0);
    let s = decode6(&o0.wan[0]);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    assert_eq!((s.l4().sport, s.l4().dport), (80, 40000));
    assert_eq!(p.w[1].counters().redirected_out(), 1);
    assert_eq!(p.w[0].counters().redirected_in(), 1);
    assert_eq!(p.w[1].sessions6().len(), 0);
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
    }
    assert!(p.w[0].counters().balanced() && p.w[1].counters().balanced());
}

#[test]
fn nat66_sessions_live_on_the_client_endpoint_home_worker() {
    let mut p = pair6(ForwardMode::Nat);
    // A client port whose home is worker 1, arriving on worker 0: both its packets and the
    // RS's replies (arriving on worker 0 too) are worker 1's.
    let cport = (40000..41000)
        .find(|&c| dataplane::redirect::home6(CLIENT6, c, 2) == 1)
        .unwrap();
    let syn = testkit::Frame6::tcp(CLIENT6, cport, VIP6, 80, SYN).build();
    let [o0, o1] = p.send(0, WAN, &syn);
    assert_eq!((o0.total(), o1.lan.len()), (0, 1));
    let s = decode6(&o1.lan[0]);
    assert_eq!((s.src, s.dst, s.l4().dport), (CLIENT6, RIP6, 8080));
    let [o0, o1] = p.send(0, LAN, &from_rs6((RIP6, 8080), (CLIENT6, cport), SYN | ACK));
    assert_eq!((o0.total(), o1.wan.len()), (0, 1));
    let s = decode6(&o1.wan[0]);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    assert_eq!((s.l4().sport, s.l4().dport), (80, cport));
    assert_eq!(p.w[0].counters().redirected_out(), 2);
    assert_eq!(p.w[1].counters().redirected_in(), 2);
    assert_eq!((p.w[0].sessions6().len(), p.w[1].sessions6().len()), (0, 1));
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
    }
}

/// A fragmented FullNAT reply landing on the other worker (NICs hash fragments by their
/// addresses only): its first fragment is handed to the owner by its LIP port and noted; the
/// later ones, which have no port, follow it there.
#[test]
fn fragments_of_a_reply_on_the_other_worker_follow_their_first_to_the_owner() {
    let cfg = config(
        Proto::Udp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut p = Pair::new(&cfg, 64, true);
    let [o0, _] = p.send(
        0,
        WAN,
        &Frame::udp(CIP, 40000, VIP, 80).payload(b"q").build(),
    );
    let s = decode(&o0.lan[0]);
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut answer = Frame::udp(RS[0], 8080, s.src, s.sport)
        .via_rs(0)
        .payload(&payload);
    answer.df = false;
    let mut out = Vec::new();
    for f in fragment(&answer.build(), 1500) {
        let [o0, o1] = p.send(1, LAN, &f);
        assert_eq!(o1.total(), 0);
        out.extend(o0.wan);
    }
    assert_eq!(out.len(), 3);
    let whole = reassemble(&out);
    assert!(checksums_valid(&whole));
    let r = decode(&whole);
    assert_eq!((r.src, r.sport, r.dst, r.dport), (VIP, 80, CIP, 40000));
    assert_eq!(r.payload, payload);
    let (c0, c1) = (p.w[0].counters(), p.w[1].counters());
    assert_eq!((c1.redirected_out(), c0.redirected_in()), (3, 3));
    assert_eq!((c1.fragments_tracked(), c1.fragments_followed()), (1, 2));
    assert_eq!((c0.fragments_tracked(), c0.fragments_followed()), (1, 2));
    assert_eq!(p.w[1].sessions().len(), 0);
    assert_eq!(c0.total_drops() + c1.total_drops(), 0);
    assert!(c0.balanced() && c1.balanced());
}

/// The same for a FullNAT66 reply: the first fragment goes to the owner by its LIP port, the
/// later ones follow it there.
#[test]
fn fragments_of_a_fullnat66_reply_on_the_other_worker_follow_their_first_to_the_owner() {
    let mut p = pair6(ForwardMode::FullNat);
    let syn = testkit::Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let [o0, _] = p.send(0, WAN, &syn);
    let lport = decode6(&o0.lan[0]).l4().sport;
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut answer = testkit::Frame6::tcp(RIP6, 8080, LIP6, lport, ACK).payload(&payload);
    answer.dst_mac = LAN_MAC;
    answer.src_mac = rs_mac(0);
    let mut out = Vec::new();
    for f in testkit::fragment6(&answer.build(), 1500, 99) {
        let [o0, o1] = p.send(1, LAN, &f);
        assert_eq!(o1.total(), 0);
        out.extend(o0.wan);
    }
    assert_eq!(out.len(), 3);
    let whole = decode6(&testkit::reassemble6(&out));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst), (VIP6, CLIENT6));
    assert_eq!((l4.sport, l4.dport, l4.payload), (80, 40000, payload));
    let (c0, c1) = (p.w[0].counters(), p.w[1].counters());
    assert_eq!((c1.redirected_out(), c0.redirected_in()), (3, 3));
    assert_eq!((c1.fragments_tracked(), c1.fragments_followed()), (1, 2));
    assert_eq!((c0.fragments_tracked(), c0.fragments_followed()), (1, 2));
    assert_eq!(c0.total_drops() + c1.total_drops(), 0);
    assert!(c0.balanced() && c1.balanced());
}

/// The same for a NAT64 reply: the RS's IPv4 fragments land on the other worker, the first
/// goes to the owner by its LIP port, the later ones follow it there, and the owner sends
/// them on as IPv6 fragments.
#[test]
fn fragments_of_a_nat64_reply_on_the_other_worker_follow_their_first_to_the_owner() {
    let mut p = pair6_to(RS[0].into(), ForwardMode::FullNat);
    let syn = testkit::Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let [o0, _] = p.send(0, WAN, &syn);
    let s = decode(&o0.lan[0]);
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut answer = Frame::tcp(RS[0], 8080, s.src, s.sport, ACK)
        .via_rs(0)
        .payload(&payload);
    answer.dst_mac = LAN_MAC;
    answer.df = false;
    let mut out = Vec::new();
    for f in fragment(&answer.build(), 1400) {
        let [o0, o1] = p.send(1, LAN, &f);
        assert_eq!(o1.total(), 0);
        out.extend(o0.wan);
    }
    assert_eq!(out.len(), 3);
    let whole = decode6(&testkit::reassemble6(&out));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst), (VIP6, CLIENT6));
    assert_eq!((l4.sport, l4.dport, l4.payload), (80, 40000, payload));
    let (c0, c1) = (p.w[0].counters(), p.w[1].counters());
    assert_eq!((c1.redirected_out(), c0.redirected_in()), (3, 3));
    assert_eq!((c1.fragments_tracked(), c1.fragments_followed()), (1, 2));
    assert_eq!((c0.fragments_tracked(), c0.fragments_followed()), (1, 2));
    assert_eq!(c0.total_drops() + c1.total_drops(), 0);
    assert!(c0.balanced() && c1.balanced());
}

#[test]
fn nat_sessions_live_on_the_client_endpoint_home_worker() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(1, 8080, 1, ForwardMode::Nat)],
    );
    let mut p = Pair::new(&cfg, 64, true);
    // Pick client ports homed on each worker, and send each client's SYN to the *other* one.
    let mut by_home = [None, None];
    for cport in 40000..40100u16 {
        by_home[home(CIP, cport, 2) as usize].get_or_insert(cport);
    }
    for (h, cport) in by_home.iter().enumerate() {
        let cport = cport.unwrap();
        let away = 1 - h;
        let [a, b] = p.send(away, WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
        let out = if h == 0 { &a } else { &b };
        let s = decode(&out.lan[0]);
        assert_eq!((s.dst, s.dport, s.src, s.sport), (RS[1], 8080, CIP, cport));
        let key = conntrack::FlowKey::new(Proto::Tcp, CIP, cport, VIP, 80);
        assert!(
            p.w[h].sessions().lookup(&key).is_some(),
            "session on the home worker"
        );
        assert!(p.w[away].sessions().lookup(&key).is_none());

        // The RS's reply arrives on the non-home worker too, and is forwarded by the home.
        let [a, b] = p.send(
            away,
            LAN,
            &Frame::tcp(RS[1], 8080, CIP, cport, SYN | ACK)
                .via_rs(1)
                .build(),
        );
        let out = if h == 0 { &a } else { &b };
        let s = decode(&out.wan[0]);
        assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 80, CIP, cport));
        // Arriving at home, nothing moves between workers.
        let before = p.w[away].counters().redirected_out();
        p.send(h, WAN, &Frame::tcp(CIP, cport, VIP, 80, ACK).build());
        assert_eq!(p.w[away].counters().redirected_out(), before);
    }
    for w in &p.w {
        assert_eq!(w.counters().total_drops(), 0);
        assert!(w.counters().balanced());
    }
}

#[test]
fn arp_answers_reach_every_worker() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut p = Pair::new(&cfg, 64, false);
    for w in &mut p.w {
        w.neighbours_mut()
            .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
    }
    // Worker 1 parks a SYN and asks for the RS's MAC.
    let [o0, o1] = p.send(1, WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    assert_eq!((o0.total(), o1.lan.len()), (0, 1));
    // The answer arrives on worker 0's queue (non-IP traffic often lands on queue 0).
    let f = testkit::arp_frame(2, rs_mac(0), LAN_MAC, RS[0], LAN_MAC, DIP_LAN);
    let [_, o1] = p.send(0, LAN, &f);
    let s = decode(&o1.lan[0]);
    assert_eq!(
        (s.dst_mac, s.dst),
        (rs_mac(0), RS[0]),
        "worker 1's parked SYN left"
    );
    assert_eq!(p.w[0].counters().arp_to_peers(), 1);
    assert!(p.w[0].neighbours().lookup(RS[0]).is_some());
    assert!(p.w[1].neighbours().lookup(RS[0]).is_some());
}

#[test]
fn neighbour_adverts_reach_every_worker() {
    use smoltcp::wire::{Icmpv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
    use std::net::Ipv6Addr;
    let dip6 = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1);
    let rs6 = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11);
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.interfaces[LAN as usize].addrs6 = vec![dataplane::snapshot::Cidr6::new(dip6, 64)];
    let mut p = Pair::new(&cfg, 64, true);
    // Worker 1 answers an echo from rs1 on the LAN: parked, a solicitation for rs1 goes out.
    let echo = icmpv6_frame(
        rs_mac(0),
        LAN_MAC,
        (rs6, dip6),
        64,
        &Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"x",
        },
    );
    let [o0, o1] = p.send(1, LAN, &echo);
    assert_eq!((o0.total(), o1.lan.len()), (0, 1));
    // rs1's advert lands on worker 0's queue: both tables learn, worker 1's reply leaves.
    let na = icmpv6_frame(
        rs_mac(0),
        LAN_MAC,
        (rs6, dip6),
        255,
        &Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
            target_addr: rs6,
            lladdr: Some(RawHardwareAddress::from_bytes(&rs_mac(0))),
        }),
    );
    let [_, o1] = p.send(0, LAN, &na);
    let s = decode6(&o1.lan[0]);
    assert_eq!(
        (s.dst_mac, s.dst),
        (rs_mac(0), rs6),
        "worker 1's parked reply left"
    );
    assert_eq!(p.w[0].counters().nd_to_peers(), 1);
    assert!(p.w[1].neighbours6().lookup(rs6).is_some());
}

#[test]
fn a_full_ring_is_a_counted_drop() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::FullNat)],
    );
    let mut p = Pair::new(&cfg, 2, true);
    let mut replies = Vec::new();
    for i in 0..4u16 {
        let [o0, _] = p.send(0, WAN, &Frame::udp(CIP, 50000 + i, VIP, 53).build());
        let s = decode(&o0.lan[0]);
        replies.push(Frame::udp(RS[0], 53, s.src, s.sport).via_rs(0).build());
    }
    // Four replies on worker 1 in one burst, with worker 0 not polling: two fit the ring.
    for r in &replies {
        assert!(p.w[1].port_mut(LAN).inject(r));
    }
    p.w[1].poll(p.now);
    assert_eq!(p.w[1].counters().redirected_out(), 2);
    assert_eq!(p.w[1].counters().drop_count(DropReason::RedirectFull), 2);
    p.w[0].poll(p.now);
    assert_eq!(p.collect(0).wan.len(), 2);
    assert!(p.w[1].counters().balanced());
}

#[test]
fn rss_steered_lip_ports_bring_replies_back_to_their_owner() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[
            dest(0, 53, 1, ForwardMode::FullNat),
            dest(1, 5353, 1, ForwardMode::FullNat),
        ],
    );
    let key = RssKey::MICROSOFT;
    let reta = Reta::round_robin(128, 2).unwrap();
    let mut p = Pair::with_steering(&cfg, 64, true, Some(key));
    let mut replies = Vec::new();
    for i in 0..200u16 {
        let w = (i % 2) as usize;
        let [o0, o1] = p.send(w, WAN, &Frame::udp(CIP, 20000 + i, VIP, 53).build());
        let out = if w == 0 { o0 } else { o1 };
        let s = decode(&out.lan[0]);
        // The reply's tuple as the NIC hashes it: src RIP:rport, dst LIP:lport.
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&s.dst.octets());
        input[4..8].copy_from_slice(&s.src.octets());
        input[8..10].copy_from_slice(&s.dport.to_be_bytes());
        input[10..12].copy_from_slice(&s.sport.to_be_bytes());
        let queue = reta.queue(toeplitz(&key, &input)) as usize;
        assert_eq!(
            queue,
            w,
            "reply of {:?} would land on queue {queue}, owner is {w}",
            (s.src, s.sport)
        );
        replies.push((
            queue,
            Frame::udp(s.dst, s.dport, s.src, s.sport)
                .via_rs(if s.dst == RS[0] { 0 } else { 1 })
                .build(),
        ));
    }
    p.deliver_steered(&replies);
}

#[test]
fn rss_steered_ipv6_lip_ports_bring_replies_back_to_their_owner() {
    let key = RssKey::MICROSOFT;
    let reta = Reta::round_robin(128, 2).unwrap();
    let mut p = pair6_with(RIP6.into(), ForwardMode::FullNat, Some(key), None);
    let mut replies = Vec::new();
    for i in 0..100u16 {
        let w = (i % 2) as usize;
        let syn = testkit::Frame6::tcp(CLIENT6, 20000 + i, VIP6, 80, SYN).build();
        let [o0, o1] = p.send(w, WAN, &syn);
        let out = if w == 0 { o0 } else { o1 };
        let s = decode6(&out.lan[0]);
        let l4 = s.l4();
        // The reply's tuple as the NIC hashes it: src RIP:rport, dst LIP:lport.
        let mut input = [0u8; 36];
        input[..16].copy_from_slice(&s.dst.octets());
        input[16..32].copy_from_slice(&s.src.octets());
        input[32..34].copy_from_slice(&l4.dport.to_be_bytes());
        input[34..].copy_from_slice(&l4.sport.to_be_bytes());
        let queue = reta.queue(toeplitz(&key, &input)) as usize;
        assert_eq!(
            queue, w,
            "reply to port {} would land on queue {queue}",
            l4.sport
        );
        replies.push((
            queue,
            from_rs6((s.dst, l4.dport), (s.src, l4.sport), SYN | ACK),
        ));
    }
    p.deliver_steered(&replies);
}

#[test]
fn a_persistent_client_meets_one_template_whichever_worker_it_reaches() {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[
            dest(0, 8080, 1, ForwardMode::Nat),
            dest(1, 8080, 1, ForwardMode::Nat),
        ],
    );
    let key = sched::ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    cfg.services
        .get_mut(&key)
        .unwrap()
        .set_persistence(Some(300))
        .unwrap();
    let mut p = Pair::new(&cfg, 64, true);
    let mut seen = Vec::new();
    for i in 0..8u16 {
        // Alternate the worker that receives the SYN, as RSS would spread a client's ports.
        let [o0, o1] = p.send(
            (i % 2) as usize,
            WAN,
            &Frame::tcp(CIP, 45000 + i, VIP, 80, SYN).build(),
        );
        let f = o0.lan.first().or(o1.lan.first()).expect("forwarded");
        seen.push(decode(f).dst);
    }
    assert!(seen.iter().all(|d| *d == seen[0]), "{seen:?}");
    let home = home(CIP, 0, 2) as usize;
    assert_eq!(
        p.w[home].sessions().len(),
        8,
        "all on the client's home worker"
    );
}

/// An IPv6 persistent service's sessions live on the client's home worker, whichever worker
/// a SYN reaches, so that all its connections meet one template; NAT66 replies go there too.
#[test]
fn a_persistent_ipv6_client_meets_one_template_whichever_worker_it_reaches() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut p = pair6_with(RIP6.into(), mode, None, Some(300));
        for i in 0..8u16 {
            let syn = testkit::Frame6::tcp(CLIENT6, 45000 + i, VIP6, 80, SYN).build();
            let [o0, o1] = p.send((i % 2) as usize, WAN, &syn);
            assert_eq!(o0.lan.len() + o1.lan.len(), 1, "{mode:?}: forwarded");
        }
        let home = dataplane::redirect::home6(CLIENT6, 0, 2) as usize;
        assert_eq!(
            p.w[home].sessions6().len(),
            8,
            "{mode:?}: all on the home worker"
        );
        assert_eq!(p.w[home].templates6().len(), 1, "{mode:?}: one template");
        assert_eq!(p.w[1 - home].templates6().len(), 0);
        if mode == ForwardMode::Nat {
            // The RS's answer, on the other worker's queue, is handed to the home worker.
            let [o0, o1] = p.send(
                1 - home,
                LAN,
                &from_rs6((RIP6, 8080), (CLIENT6, 45000), SYN | ACK),
            );
            let out = if home == 0 { o0 } else { o1 };
            assert_eq!(decode6(&out.wan[0]).src, VIP6);
        }
    }
}

/// Session sync between two directors of two workers each: every IPv6 session a master's
/// worker exports goes to the backup worker [`dataplane::sync::FlowOwner`] names, which is
/// the one that holds it on the master — FullNAT66's and NAT64's by their LIP port's slice
/// (a session made on each worker), NAT66's by the client endpoint's home (a client port
/// homed on each) — and the backup forwards a mid-stream packet both ways, the one that
/// reaches the other worker handed over.
#[test]
fn synced_ipv6_sessions_land_on_the_backup_worker_that_owns_them() {
    use dataplane::sync::{FlowOwner, SyncLink, SyncRecord};
    use testkit::{Frame6, PSH};
    let with_sync = |p: &mut Pair| -> Vec<Arc<SyncLink>> {
        let links: Vec<_> = (0..2).map(|_| Arc::new(SyncLink::new(64))).collect();
        p.w =
            p.w.drain(..)
                .zip(&links)
                .map(|(w, l)| w.with_sync(l.clone()))
                .collect();
        links
    };
    let slow = |p: &mut Pair| {
        for w in &mut p.w {
            w.slow_jobs(p.now);
        }
    };
    for (addr, mode) in [
        (std::net::IpAddr::from(RIP6), ForwardMode::FullNat),
        (RS[0].into(), ForwardMode::FullNat),
        (RIP6.into(), ForwardMode::Nat),
    ] {
        let nat66 = mode == ForwardMode::Nat;
        let mut m = pair6_to(addr, mode);
        let mut b = pair6_to(addr, mode);
        let lm = with_sync(&mut m);
        let lb = with_sync(&mut b);
        for l in &lm {
            l.set_export(true, 0);
        }
        slow(&mut m);
        // One session held by each master worker: FullNAT's SYN on that worker's queue;
        // NAT66's from a client port homed there, arriving on worker 0.
        let mut peers = Vec::new();
        for k in 0..2usize {
            let cport = (40000..41000)
                .find(|&c| !nat66 || dataplane::redirect::home6(CLIENT6, c, 2) == k as u16)
                .map(|c| c + if nat66 { 0 } else { k as u16 })
                .unwrap();
            let at = if nat66 { 0 } else { k };
            let syn = Frame6::tcp(CLIENT6, cport, VIP6, 80, SYN).build();
            let out = m.send(at, WAN, &syn);
            assert_eq!(out[k].lan.len(), 1, "{mode:?} {addr}");
            assert_eq!(m.w[k].sessions6().len(), 1);
            let peer = if addr.is_ipv4() {
                let s = decode(&out[k].lan[0]);
                (std::net::IpAddr::from(s.src), s.sport)
            } else {
                let s = decode6(&out[k].lan[0]);
                (s.src.into(), s.l4().sport)
            };
            peers.push((cport, peer));
        }
        slow(&mut m);
        let snap = b.w[0].snapshot().clone();
        let owner = FlowOwner::new(2, &[]);
        for (k, l) in lm.iter().enumerate() {
            let mut n = 0;
            while let Some(r) = l.pop_out() {
                assert!(matches!(r, SyncRecord::Session6(_)), "{r:?}");
                assert_eq!(usize::from(owner.owner(&snap, &r)), k, "{r:?}");
                lb[k].post_in(r).unwrap();
                n += 1;
            }
            assert_eq!(n, 1);
        }
        slow(&mut b);
        for (k, &(cport, peer)) in peers.iter().enumerate() {
            assert_eq!(b.w[k].sessions6().len(), 1, "{mode:?} {addr}");
            // The client's data: FullNAT's on the owner's queue (RSS keeps a client's flow
            // on one queue), NAT66's on the other worker, handed to its home.
            let data = Frame6::tcp(CLIENT6, cport, VIP6, 80, ACK | PSH)
                .payload(b"GET /")
                .build();
            let at = if nat66 { 1 - k } else { k };
            let out = b.send(at, WAN, &data);
            assert_eq!((out[k].lan.len(), out[1 - k].total()), (1, 0));
            // The RS's answer reaches the other worker: handed to the owner, which sends it
            // to the client from the VIP.
            let reply = match (addr, peer.0) {
                (std::net::IpAddr::V4(rs), std::net::IpAddr::V4(lip)) => {
                    let mut f = Frame::tcp(rs, 8080, lip, peer.1, ACK | PSH)
                        .via_rs(0)
                        .payload(b"200");
                    f.dst_mac = LAN_MAC;
                    f.build()
                }
                (std::net::IpAddr::V6(rs), std::net::IpAddr::V6(to)) => {
                    let mut f = Frame6::tcp(rs, 8080, to, peer.1, ACK | PSH).payload(b"200");
                    f.dst_mac = LAN_MAC;
                    f.src_mac = rs_mac(0);
                    f.build()
                }
                other => panic!("{other:?}"),
            };
            let out = b.send(1 - k, LAN, &reply);
            assert_eq!((out[k].wan.len(), out[1 - k].total()), (1, 0));
            let s = decode6(&out[k].wan[0]);
            let l4 = s.l4();
            assert_eq!(
                (s.src, s.dst, l4.sport, l4.dport),
                (VIP6, CLIENT6, 80, cport)
            );
            assert_eq!(l4.payload, b"200");
        }
        for w in &b.w {
            assert_eq!(w.counters().total_drops(), 0);
        }
    }
}
