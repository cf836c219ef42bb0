//! IPv6 services in Route (DR) mode: sessions opened by a SYN or a datagram for an IPv6 VIP,
//! scheduled, followed through the handshake and close, the frame re-addressed to the RS's
//! MAC with the IPv6 packet untouched; neighbour solicitations for the VIP answered; RSs
//! resolved by neighbour discovery; the configurations an IPv6 service cannot have refused.
//! Every frame rvs sends is decoded by smoltcp, checksums verified.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::{ConfigError, DirectorConfig, Snapshot};
use dataplane::wire::EthernetAddress;
use dataplane::DropReason;
use sched::{Dest, ForwardMode, SchedError, SchedKind, Service, ServiceKey};
use smoltcp::wire::{Icmpv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
use std::net::{IpAddr, Ipv6Addr};
use testkit::{Frame6, ACK, FIN, PSH};

fn dr6(i: usize, port: u16) -> Dest {
    Dest {
        addr: RS6[i].into(),
        port,
        weight: 1,
        mode: ForwardMode::Dr,
    }
}

/// The IPv4 lab's configuration with IPv6 DIPs on both ports, a default IPv6 route, and
/// IPv6 DR services: TCP [VIP6]:80 and UDP [VIP6]:53 over both RSs, round robin, RS6[0]
/// first (added last: a service lists its dests newest first).
fn config6() -> DirectorConfig {
    let mut cfg = config_with_ipv6();
    for (proto, port) in [(Proto::Tcp, 80), (Proto::Udp, 53)] {
        let mut svc = Service::new(key6(proto, port), SchedKind::Rr).unwrap();
        svc.add_dest(dr6(1, port)).unwrap();
        svc.add_dest(dr6(0, port)).unwrap();
        cfg.services.add(svc).unwrap();
    }
    cfg
}

/// A lab whose RSs' IPv6 MACs are known (static neighbours), unless `resolve`.
fn lab6(resolve: bool) -> Lab {
    let mut lab = Lab::new(&config6());
    if !resolve {
        for (i, rs) in RS6.iter().enumerate() {
            lab.worker
                .insert_static_neighbour((*rs).into(), EthernetAddress(rs_mac(i)));
        }
    }
    lab
}

/// Asserts that `frame` left on LAN for RS `i` carrying exactly the IPv6 packet of `sent`.
fn assert_dr(frame: &[u8], sent: &[u8], i: usize) {
    let s = decode6(frame);
    assert_eq!((s.dst_mac, s.src_mac), (rs_mac(i), LAN_MAC));
    assert_eq!(
        &frame[12..],
        &sent[12..],
        "the IPv6 packet leaves untouched"
    );
    let _ = s.l4();
}

#[test]
fn a_tcp_connection_to_an_ipv6_vip_goes_to_one_rs_in_dr_mode() {
    let mut lab = lab6(false);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, testkit::SYN).build();
    let out = lab.send(WAN, &syn);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert_dr(f, &syn, 0);
    let s = lab.worker.sessions6();
    assert_eq!(s.len(), 1);
    let (_, sess) = s.iter().next().unwrap();
    assert_eq!(sess.state, SessionState::Tcp(TcpState::SynRecv));
    assert_eq!(sess.data.rip, RS6[0]);
    // The rest of the connection follows its session, whatever its flags.
    for (flags, payload) in [(ACK, &b""[..]), (ACK | PSH, b"GET / HTTP/1.1\r\n\r\n")] {
        let seg = Frame6::tcp(CLIENT6, 40000, VIP6, 80, flags)
            .payload(payload)
            .build();
        let out = lab.send(WAN, &seg);
        assert_dr(out.only().1, &seg, 0);
    }
    let (_, sess) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(sess.state, SessionState::Tcp(TcpState::Established));
    // The next client is round robin's next RS.
    let syn2 = Frame6::tcp(CLIENT6, 40001, VIP6, 80, testkit::SYN).build();
    let out = lab.send(WAN, &syn2);
    assert_dr(out.only().1, &syn2, 1);
    // The first client's FIN moves its session on; it still goes to its RS.
    let fin = Frame6::tcp(CLIENT6, 40000, VIP6, 80, FIN | ACK).build();
    let out = lab.send(WAN, &fin);
    assert_dr(out.only().1, &fin, 0);
    let states: Vec<_> = lab
        .worker
        .sessions6()
        .iter()
        .map(|(_, s)| s.state)
        .collect();
    assert!(
        states.contains(&SessionState::Tcp(TcpState::FinWait)),
        "{states:?}"
    );
    let c = lab.worker.counters();
    assert_eq!(c.sessions_created(), 2);
    // Each dest counted its packets and its sessions.
    let snap = lab.worker.snapshot().clone();
    let si = snap.service_index6(Proto::Tcp, VIP6, 80).unwrap();
    let stats = lab.worker.stats_handle();
    let d0 = stats.dest(snap.dest_slot(si, 0)).sample();
    let d1 = stats.dest(snap.dest_slot(si, 1)).sample();
    assert_eq!((d0.conns, d0.inpkts, d1.conns, d1.inpkts), (1, 4, 1, 1));
}

#[test]
fn a_segment_without_a_session_or_a_service_is_dropped_by_reason() {
    let mut lab = lab6(false);
    // An ACK no session knows: not a connection's start.
    let ack = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK).build();
    assert_eq!(lab.send(WAN, &ack).total(), 0);
    // A SYN to a port of the VIP with no service: a RST back (no_service.rs), no session.
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 81, testkit::SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 1);
    // A SYN to an address that is no VIP.
    let other = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x101);
    let syn = Frame6::tcp(CLIENT6, 40000, other, 80, testkit::SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::NoSession), 1);
    assert_eq!(c.drop_count(DropReason::NoService), 1);
    assert_eq!(c.drop_count(DropReason::Ipv6NotSupported), 1);
    assert!(lab.worker.sessions6().is_empty());
}

#[test]
fn udp_sessions_expire_and_give_their_dests_load_back() {
    let mut lab = lab6(false);
    for sport in [5000, 5001, 5000] {
        let dgram = Frame6::udp(CLIENT6, sport, VIP6, 53)
            .payload(b"query")
            .build();
        let out = lab.send(WAN, &dgram);
        let i = usize::from(sport == 5001);
        assert_dr(out.only().1, &dgram, i);
        assert_eq!(decode6(out.only().1).l4().payload, b"query");
    }
    assert_eq!(lab.worker.sessions6().len(), 2);
    let snap = lab.worker.snapshot().clone();
    let si = snap.service_index6(Proto::Udp, VIP6, 53).unwrap();
    let stats = lab.worker.stats_handle();
    let active = |lab: &Lab| {
        let _ = lab;
        (0..2)
            .map(|d| stats.dest(snap.dest_slot(si, d)).sample().active)
            .collect::<Vec<_>>()
    };
    assert_eq!(active(&lab), [1, 1]);
    // UDP's timeout is 300 s.
    lab.advance(301_000);
    lab.slow();
    assert!(lab.worker.sessions6().is_empty());
    assert_eq!(active(&lab), [0, 0]);
    assert_eq!(lab.worker.counters().sessions_expired(), 2);
}

#[test]
fn solicitations_for_an_ipv6_vip_are_answered_and_not_given_to_the_kernel() {
    let mut lab = lab6(false);
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    let o = VIP6.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    let g = group.octets();
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: VIP6,
        lladdr: Some(RawHardwareAddress::from_bytes(&asker)),
    });
    let ns = icmpv6_frame(
        asker,
        [0x33, 0x33, g[12], g[13], g[14], g[15]],
        (ROUTER6, group),
        255,
        &msg,
    );
    let out = lab.send(WAN, &ns);
    let (p, f) = out.only();
    assert_eq!(
        p, WAN,
        "answered, and no copy to the kernel, which holds no VIP"
    );
    let s = decode6(f);
    assert_eq!(
        (s.dst_mac, s.src_mac, s.src, s.dst),
        (asker, WAN_MAC, VIP6, ROUTER6)
    );
    match s.icmpv6() {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        }) => {
            assert_eq!(
                flags,
                NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE
            );
            assert_eq!(target_addr, VIP6);
            assert_eq!(lladdr.unwrap().as_bytes(), &WAN_MAC[..]);
        }
        other => panic!("expected a neighbour advert, got {other:?}"),
    }
    // The solicitor was learnt: its MAC is known now.
    assert_eq!(
        lab.worker.neighbours6().lookup(ROUTER6).map(|m| m.0),
        Some(asker)
    );
}

#[test]
fn an_unresolved_rs_is_solicited_and_the_segment_leaves_once_it_answers() {
    let mut lab = lab6(true);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, testkit::SYN).build();
    let out = lab.send(WAN, &syn);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let s = decode6(f);
    assert_eq!((s.src, s.src_mac), (DIP6_LAN, LAN_MAC));
    match s.icmpv6() {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) => {
            assert_eq!(target_addr, RS6[0])
        }
        other => panic!("expected a solicitation, got {other:?}"),
    }
    // The RS answers; the SYN leaves for it.
    let na = icmpv6_frame(
        rs_mac(0),
        LAN_MAC,
        (RS6[0], DIP6_LAN),
        255,
        &Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
            target_addr: RS6[0],
            lladdr: Some(RawHardwareAddress::from_bytes(&rs_mac(0))),
        }),
    );
    let out = lab.send(LAN, &na);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert_dr(f, &syn, 0);
}

#[test]
fn configurations_an_ipv6_service_cannot_have_are_refused() {
    let build = |f: &dyn Fn(&mut DirectorConfig)| {
        let mut cfg = config6();
        f(&mut cfg);
        Snapshot::build(&cfg).map(|_| ())
    };
    assert_eq!(build(&|_| {}), Ok(()));
    let svc6 = |mode: ForwardMode, rip: Ipv6Addr| {
        let mut s = Service::new(key6(Proto::Tcp, 443), SchedKind::Rr).unwrap();
        s.add_dest(Dest {
            addr: rip.into(),
            port: 443,
            weight: 1,
            mode,
        })
        .unwrap();
        s
    };
    // NAT66 and TUN need a route to the RS.
    let far = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 1);
    for mode in [ForwardMode::Nat, ForwardMode::Tun] {
        let e = build(&|c| {
            c.routes6.clear();
            c.services.add(svc6(mode, far)).unwrap();
        });
        assert!(matches!(e, Err(ConfigError::NoRouteToDest { .. })), "{e:?}");
    }
    // FullNAT66 needs IPv6 LIPs, and a route to the RS.
    let e = build(&|c| c.services.add(svc6(ForwardMode::FullNat, RS6[0])).unwrap());
    assert!(
        matches!(e, Err(ConfigError::FullNatWithoutLips { .. })),
        "{e:?}"
    );
    let e = build(&|c| {
        c.lips6 = vec![LIP6];
        c.routes6.clear();
        c.services.add(svc6(ForwardMode::FullNat, far)).unwrap();
    });
    assert!(matches!(e, Err(ConfigError::NoRouteToDest { .. })), "{e:?}");
    // A LIP is no VIP, and no DIP.
    let e = build(&|c| c.lips6 = vec![VIP6]);
    assert_eq!(e, Err(ConfigError::LipIsVip6(VIP6)));
    let e = build(&|c| c.lips6 = vec![DIP6_LAN]);
    assert!(matches!(e, Err(ConfigError::BadAddress6 { .. })), "{e:?}");
    // DR only rewrites the MAC: the RS must be on a connected subnet.
    let e = build(&|c| c.services.add(svc6(ForwardMode::Dr, far)).unwrap());
    assert!(matches!(e, Err(ConfigError::DestNotOnLink { .. })), "{e:?}");
    // Persistence is an IPv6 service's too.
    let e = build(&|c| {
        let mut s = svc6(ForwardMode::Dr, RS6[0]);
        s.set_persistence(Some(300)).unwrap();
        c.services.add(s).unwrap();
    });
    assert_eq!(e, Ok(()));
    // The SYN proxy, the PROXY protocol and TOA are an IPv6 service's too, toward IPv4
    // dests (NAT64) as well.
    let with = |f: &dyn Fn(&mut Service)| {
        build(&|c| {
            c.lips6 = vec![LIP6];
            let mut s = svc6(ForwardMode::FullNat, RS6[0]);
            f(&mut s);
            c.services.add(s).unwrap();
        })
    };
    assert_eq!(with(&|_| {}), Ok(()));
    let synproxy = |s: &mut Service| s.set_synproxy(true).unwrap();
    let header = |s: &mut Service| {
        s.set_proxy_protocol(Some(sched::ProxyProtocol::V2))
            .unwrap()
    };
    let toa = |s: &mut Service| s.set_toa(true).unwrap();
    type SetOption<'a> = &'a dyn Fn(&mut Service);
    assert_eq!(with(&synproxy), Ok(()));
    let nat64 = build(&|c| {
        c.lips6 = vec![LIP6];
        let mut s = svc6(ForwardMode::FullNat, RS6[0]);
        s.set_synproxy(true).unwrap();
        s.add_dest(dest(0, 8443, 1, ForwardMode::FullNat)).unwrap();
        c.services.add(s).unwrap();
    });
    assert_eq!(nat64, Ok(()));
    let both = |s: &mut Service| {
        synproxy(s);
        header(s);
    };
    let options: [SetOption; 3] = [&header, &toa, &both];
    for set in options {
        assert_eq!(with(set), Ok(()));
    }
    for set in [&header as SetOption, &toa] {
        let nat64 = build(&|c| {
            let mut s = svc6(ForwardMode::FullNat, RS6[0]);
            s.add_dest(dest(0, 8443, 1, ForwardMode::FullNat)).unwrap();
            set(&mut s);
            c.lips6 = vec![LIP6];
            c.services.add(s).unwrap();
        });
        assert_eq!(nat64, Ok(()));
    }
    // A DIP as VIP.
    let e = build(&|c| {
        let mut s = Service::new(
            ServiceKey {
                proto: Proto::Tcp,
                vip: DIP6_WAN.into(),
                port: 80,
            },
            SchedKind::Rr,
        )
        .unwrap();
        s.add_dest(dr6(0, 80)).unwrap();
        c.services.add(s).unwrap();
    });
    assert_eq!(e, Err(ConfigError::VipIsDip6(DIP6_WAN)));
    // A dest of the other family is refused by the service itself.
    let mut s = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    let v4 = dest(0, 80, 1, ForwardMode::Dr);
    assert_eq!(
        s.add_dest(v4),
        Err(SchedError::FamilyMismatch {
            vip: IpAddr::V6(VIP6),
            dest: v4.addr,
        })
    );
}

#[test]
fn listings_give_ipv6_sessions_after_the_ipv4_ones() {
    use dataplane::worker::SessionDump;
    let mut lab = lab6(false);
    let v4 = testkit::Frame::tcp(CIP, 40000, VIP, 80, testkit::SYN).build();
    assert_eq!(lab.send(WAN, &v4).total(), 1);
    for sport in [40000, 40001] {
        let syn = Frame6::tcp(CLIENT6, sport, VIP6, 80, testkit::SYN).build();
        assert_eq!(lab.send(WAN, &syn).total(), 1);
    }
    // Pages of one session: the IPv4 one, then the IPv6 ones, then the end.
    let mut from = 0;
    let mut listed = Vec::new();
    for _ in 0..10 {
        let SessionDump { sessions, next } = lab.dump(from, 1);
        listed.extend(sessions);
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    let seen: Vec<_> = listed.iter().map(|s| (s.client, s.vip, s.rip)).collect();
    assert_eq!(
        seen,
        [
            ((CIP.into(), 40000), (VIP.into(), 80), (RS[0].into(), 8080)),
            (
                (CLIENT6.into(), 40000),
                (VIP6.into(), 80),
                (RS6[0].into(), 80)
            ),
            (
                (CLIENT6.into(), 40001),
                (VIP6.into(), 80),
                (RS6[1].into(), 80)
            ),
        ]
    );
    assert!(listed[1..].iter().all(|s| s.local.is_none()));
}

/// [`config6`] with an IPv6 LIP and FullNAT66 services: TCP [VIP6]:8000 → RS6[0]:8080 and
/// UDP [VIP6]:5353 → RS6[0]:53, over `ports` LIP ports.
fn fullnat6(ports: core::ops::RangeInclusive<u16>) -> Lab {
    let mut cfg = config6();
    cfg.lips6 = vec![LIP6];
    cfg.lport_range = ports;
    for (proto, port, rport) in [(Proto::Tcp, 8000, 8080), (Proto::Udp, 5353, 53)] {
        let mut svc = Service::new(key6(proto, port), SchedKind::Rr).unwrap();
        svc.add_dest(Dest {
            addr: RS6[0].into(),
            port: rport,
            weight: 1,
            mode: ForwardMode::FullNat,
        })
        .unwrap();
        cfg.services.add(svc).unwrap();
    }
    let mut lab = Lab::new(&cfg);
    for (ip, mac) in [(RS6[0], rs_mac(0)), (ROUTER6, ROUTER_MAC)] {
        lab.worker
            .insert_static_neighbour(ip.into(), EthernetAddress(mac));
    }
    lab
}

#[test]
fn a_fullnat66_connection_leaves_from_the_lip_and_its_replies_come_back_from_the_vip() {
    let mut lab = fullnat6(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN).build();
    let out = lab.send(WAN, &syn);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let s = decode6(f);
    assert_eq!((s.dst_mac, s.src_mac), (rs_mac(0), LAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (LIP6, RS6[0], 63));
    let l4 = s.l4();
    assert_eq!((l4.dport, l4.flags), (8080, testkit::SYN));
    let lport = l4.sport;
    assert!((2000..=2999).contains(&lport), "lport {lport}");
    // The RS answers the LIP: back to the client from the VIP.
    let mut synack = Frame6::tcp(RS6[0], 8080, LIP6, lport, testkit::SYN | ACK);
    synack.dst_mac = LAN_MAC;
    synack.src_mac = rs_mac(0);
    let out = lab.send(LAN, &synack.payload(b"").build());
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    let s = decode6(f);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (VIP6, CLIENT6, 63));
    let l4 = s.l4();
    assert_eq!(
        (l4.sport, l4.dport, l4.flags),
        (8000, 40000, testkit::SYN | ACK)
    );
    // The client's data goes the same way as its SYN, checksum and payload intact.
    let data = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, ACK | PSH)
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .build();
    let s = decode6(lab.send(WAN, &data).only().1);
    let l4 = s.l4();
    assert_eq!((s.src, l4.sport, l4.dport), (LIP6, lport, 8080));
    assert_eq!(l4.payload, b"GET / HTTP/1.1\r\n\r\n");
    let (_, sess) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(sess.state, SessionState::Tcp(TcpState::Established));
    // A router's Packet Too Big about the reply the director sent (VIP → client) reaches
    // the RS as an error about its own packet to the LIP, from the LIP.
    let reply = Frame6::tcp(VIP6, 8000, CLIENT6, 40000, ACK)
        .payload(&[1; 64])
        .build();
    let ptb = Icmpv6Repr::PktTooBig {
        mtu: 1280,
        header: smoltcp::wire::Ipv6Repr {
            src_addr: VIP6,
            dst_addr: CLIENT6,
            next_header: smoltcp::wire::IpProtocol::Tcp,
            payload_len: reply.len() - 54,
            hop_limit: 63,
        },
        data: &reply[54..],
    };
    let frame = icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &ptb);
    let s = decode6(lab.send(WAN, &frame).only().1);
    assert_eq!(
        (s.dst_mac, s.src, s.dst, s.hop_limit),
        (rs_mac(0), LIP6, RS6[0], 63)
    );
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { mtu, header, data } => {
            assert_eq!(mtu, 1280);
            assert_eq!((header.src_addr, header.dst_addr), (RS6[0], LIP6));
            let ports = [data[0], data[1], data[2], data[3]];
            assert_eq!(ports, [0x1f, 0x90, (lport >> 8) as u8, lport as u8]);
        }
        other => panic!("expected packet too big, got {other:?}"),
    }
    assert_eq!(lab.worker.counters().icmp_relayed(), 1);
    // One with a bad checksum is dropped.
    let mut bad = frame.clone();
    bad[56] ^= 0xff;
    assert_eq!(lab.send(WAN, &bad).total(), 0);
    assert_eq!(
        lab.worker
            .counters()
            .drop_count(DropReason::BadIcmpChecksum),
        1
    );
    let snap = lab.worker.snapshot().clone();
    let si = snap.service_index6(Proto::Tcp, VIP6, 8000).unwrap();
    let d = lab
        .worker
        .stats_handle()
        .dest(snap.dest_slot(si, 0))
        .sample();
    assert_eq!((d.conns, d.inpkts, d.outpkts, d.active), (1, 2, 1, 1));
}

#[test]
fn fullnat66_drops_what_it_cannot_route_and_its_lip_ports_come_back() {
    let mut lab = fullnat6(2000..=2000);
    // Hop limit 1: not forwarded, and its source told so (from the DIP toward it).
    let mut last_hop = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN);
    last_hop.hop_limit = 1;
    let last_hop = last_hop.build();
    let out = lab.send(WAN, &last_hop);
    let s = decode6(out.only().1);
    assert_eq!((s.src, s.dst, s.dst_mac), (DIP6_WAN, CLIENT6, ROUTER_MAC));
    match s.icmpv6() {
        Icmpv6Repr::TimeExceeded { header, data, .. } => {
            assert_eq!((header.src_addr, header.dst_addr), (CLIENT6, VIP6));
            assert_eq!(data, &last_hop[54..], "the whole packet quoted");
        }
        other => panic!("expected time exceeded, got {other:?}"),
    }
    // Bigger than the LAN's MTU (1500): Packet Too Big naming it, quoting at most 1232 bytes.
    let big = Frame6::udp(CLIENT6, 5000, VIP6, 5353)
        .payload(&[7; 1500])
        .build();
    let out = lab.send(WAN, &big);
    let s = decode6(out.only().1);
    assert_eq!((s.src, s.dst), (DIP6_WAN, CLIENT6));
    assert_eq!(s.payload.len(), 1280 - 40);
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { mtu, header, .. } => {
            assert_eq!((mtu, header.dst_addr), (1500, VIP6));
        }
        other => panic!("expected packet too big, got {other:?}"),
    }
    // IPv6 UDP without a checksum.
    let mut zero = Frame6::udp(CLIENT6, 5001, VIP6, 5353).payload(b"q").build();
    zero[54 + 6..54 + 8].copy_from_slice(&[0, 0]);
    assert_eq!(lab.send(WAN, &zero).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.icmp_errors(), 2);
    assert_eq!(c.drop_count(DropReason::TtlExceeded), 1);
    assert_eq!(c.drop_count(DropReason::TooBig), 1);
    assert_eq!(c.drop_count(DropReason::MalformedUdp), 1);
    // One LIP port: a datagram takes it (the sessions above hold it too: let them go).
    lab.advance(301_000);
    lab.slow();
    assert!(lab.worker.sessions6().is_empty());
    let q = Frame6::udp(CLIENT6, 6000, VIP6, 5353).payload(b"q").build();
    assert_eq!(lab.send(WAN, &q).only().0, LAN);
    // ... so the next client finds none until that session ends (UDP: no quarantine).
    let q2 = Frame6::udp(CLIENT6, 6001, VIP6, 5353).payload(b"q").build();
    assert_eq!(lab.send(WAN, &q2).total(), 0);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::LipExhausted),
        1
    );
    lab.advance(301_000);
    lab.slow();
    let out = lab.send(WAN, &q2);
    let s = decode6(out.only().1);
    assert_eq!((s.src, s.l4().sport, s.l4().dport), (LIP6, 2000, 53));
}

/// [`config6`] with one more service, TCP [VIP6]:8000 → RS6[`i`]:`rport` in `mode`, the RS's
/// and the router's MACs known.
fn one_dest6(i: usize, rport: u16, mode: ForwardMode) -> Lab {
    let mut cfg = config6();
    let mut svc = Service::new(key6(Proto::Tcp, 8000), SchedKind::Rr).unwrap();
    svc.add_dest(Dest {
        addr: RS6[i].into(),
        port: rport,
        weight: 1,
        mode,
    })
    .unwrap();
    cfg.services.add(svc).unwrap();
    let mut lab = Lab::new(&cfg);
    for (ip, mac) in [(RS6[i], rs_mac(i)), (ROUTER6, ROUTER_MAC)] {
        lab.worker
            .insert_static_neighbour(ip.into(), EthernetAddress(mac));
    }
    lab
}

#[test]
fn a_nat66_connection_reaches_the_rs_and_its_replies_leave_from_the_vip() {
    let mut lab = one_dest6(1, 8080, ForwardMode::Nat);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN).build();
    let s = decode6(lab.send(WAN, &syn).only().1);
    assert_eq!((s.dst_mac, s.src_mac), (rs_mac(1), LAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (CLIENT6, RS6[1], 63));
    assert_eq!((s.l4().sport, s.l4().dport), (40000, 8080));
    // The RS answers the client through its gateway, the director.
    let mut synack = Frame6::tcp(RS6[1], 8080, CLIENT6, 40000, testkit::SYN | ACK);
    synack.dst_mac = LAN_MAC;
    synack.src_mac = rs_mac(1);
    let out = lab.send(LAN, &synack.payload(b"hi").build());
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    let s = decode6(f);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (VIP6, CLIENT6, 63));
    let l4 = s.l4();
    assert_eq!(
        (l4.sport, l4.dport, &l4.payload[..]),
        (8000, 40000, &b"hi"[..])
    );
    // Through the director from someone who is no NAT dest: not forwarded.
    let mut stray = Frame6::tcp(RS6[0], 8080, CLIENT6, 40000, ACK);
    stray.dst_mac = LAN_MAC;
    stray.src_mac = rs_mac(0);
    assert_eq!(lab.send(LAN, &stray.build()).total(), 0);
    // A NAT dest's packet no session knows.
    let mut late = Frame6::tcp(RS6[1], 8080, CLIENT6, 40999, ACK);
    late.dst_mac = LAN_MAC;
    late.src_mac = rs_mac(1);
    assert_eq!(lab.send(LAN, &late.build()).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::Ipv6NotSupported), 1);
    assert_eq!(c.drop_count(DropReason::NoSession), 1);
}

#[test]
fn a_tun_session_goes_ipv6_in_ipv6_to_its_rs() {
    let mut lab = one_dest6(0, 8000, ForwardMode::Tun);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN)
        .payload(b"x")
        .build();
    let out = lab.send(WAN, &syn);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let outer = decode6(f);
    assert_eq!((outer.dst_mac, outer.src_mac), (rs_mac(0), LAN_MAC));
    assert_eq!(
        (outer.src, outer.dst, outer.next_header),
        (DIP6_LAN, RS6[0], 41)
    );
    assert_eq!(outer.hop_limit, 64, "the inner packet's hop limit");
    assert_eq!(&outer.payload[..], &syn[14..], "the inner packet untouched");
    // Too big once encapsulated: a Packet Too Big naming the room left.
    let big = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, ACK)
        .payload(&[0; 1440])
        .build();
    let s = decode6(lab.send(WAN, &big).only().1);
    assert_eq!((s.src, s.dst), (DIP6_WAN, CLIENT6));
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { mtu, .. } => assert_eq!(mtu, 1460),
        other => panic!("expected packet too big, got {other:?}"),
    }
    assert_eq!(lab.worker.counters().drop_count(DropReason::TooBig), 1);
}

#[test]
fn the_ipv6_lip_pool_publishes_its_pressure() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut lab = fullnat6(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 1);
    lab.slow();
    let stats = lab.worker.stats_handle();
    assert_eq!(stats.lips6.len(), 1);
    let g = &stats.lips6[0];
    // The gauge names the LIP by its index in the configuration's IPv6 LIPs.
    assert_eq!(g.addr.load(Relaxed), 0);
    assert_eq!(g.in_use.load(Relaxed), 1);
    assert!(g.capacity.load(Relaxed) >= 1000);
    let (in_use, all) = stats.lip_pairs();
    assert_eq!(in_use, 1, "both families' pairs counted");
    assert!(all >= g.capacity.load(Relaxed));
}

/// `n` bytes that do not repeat over short distances, to tell fragments apart.
fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i % 251) as u8).collect()
}

/// Sends each of `frames` on `port` and returns the one frame each made leave on `to`.
fn relay(lab: &mut Lab, port: u16, frames: &[Vec<u8>], to: u16) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let out = lab.send(port, f);
            let (p, f) = out.only();
            assert_eq!(p, to);
            f.to_vec()
        })
        .collect()
}

/// An RS's UDP datagram or TCP segment `f` as it reaches the director's LAN port.
fn at_lan(mut f: Frame6, i: usize) -> Vec<u8> {
    f.dst_mac = LAN_MAC;
    f.src_mac = rs_mac(i);
    f.build()
}

#[test]
fn fullnat66_fragments_follow_their_first_one_both_ways() {
    let mut lab = fullnat6(2000..=2999);
    let question = pattern(3000);
    let dgram = Frame6::udp(CLIENT6, 5000, VIP6, 5353)
        .payload(&question)
        .build();
    let frags = testkit::fragment6(&dgram, 1280, 0xabcd_0001);
    assert_eq!(frags.len(), 3);
    let sent = relay(&mut lab, WAN, &frags, LAN);
    for f in &sent {
        let s = decode6(f);
        assert_eq!(
            (s.dst_mac, s.src, s.dst, s.hop_limit, s.next_header),
            (rs_mac(0), LIP6, RS6[0], 63, 44)
        );
    }
    // A fresh identification toward the RS (clients share the LIP there), one for all.
    let ident = testkit::fragment6_ident(&sent[0]);
    assert_ne!(ident, 0xabcd_0001);
    assert!(sent.iter().all(|f| testkit::fragment6_ident(f) == ident));
    let whole = decode6(&testkit::reassemble6(&sent));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst, l4.dport), (LIP6, RS6[0], 53));
    assert_eq!(l4.payload, question);
    // The RS's fragmented answer goes back to the client from the VIP, its identification
    // kept.
    let answer = pattern(2500);
    let reply = at_lan(Frame6::udp(RS6[0], 53, LIP6, l4.sport).payload(&answer), 0);
    let frags = testkit::fragment6(&reply, 1500, 77);
    assert_eq!(frags.len(), 2);
    let back = relay(&mut lab, LAN, &frags, WAN);
    assert!(back.iter().all(|f| testkit::fragment6_ident(f) == 77));
    let whole = decode6(&testkit::reassemble6(&back));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst, whole.hop_limit), (VIP6, CLIENT6, 63));
    assert_eq!((l4.sport, l4.dport, l4.payload), (5353, 5000, answer));
    let c = lab.worker.counters();
    assert_eq!((c.fragments_tracked(), c.fragments_followed()), (2, 3));
    assert!(c.total_drops() == 0 && c.balanced());
    assert_eq!(
        lab.worker.fragments6().in_use(),
        0,
        "both datagrams seen whole"
    );
}

#[test]
fn dr_nat66_and_tun_sessions_take_fragments_too() {
    // DR (config6's UDP [VIP6]:53): every fragment to the one RS, the packet untouched.
    let mut lab = lab6(false);
    let dgram = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(&pattern(3000))
        .build();
    let frags = testkit::fragment6(&dgram, 1280, 9);
    for (f, out) in frags.iter().zip(relay(&mut lab, WAN, &frags, LAN)) {
        assert_eq!(&out[..6], &rs_mac(0)[..]);
        assert_eq!(&out[12..], &f[12..], "the fragment leaves untouched");
    }
    // NAT66: a data segment fragmented by the client reaches the RS whole once put together;
    // the RS's fragmented answer leaves from the VIP.
    let mut lab = one_dest6(1, 8080, ForwardMode::Nat);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN).build();
    assert_eq!(lab.send(WAN, &syn).only().0, LAN);
    let data = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, ACK | PSH)
        .payload(&pattern(4000))
        .build();
    let sent = relay(&mut lab, WAN, &testkit::fragment6(&data, 1280, 10), LAN);
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|f| testkit::fragment6_ident(f) == 10));
    let whole = decode6(&testkit::reassemble6(&sent));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst), (CLIENT6, RS6[1]));
    assert_eq!(
        (l4.sport, l4.dport, l4.payload),
        (40000, 8080, pattern(4000))
    );
    let answer = at_lan(
        Frame6::tcp(RS6[1], 8080, CLIENT6, 40000, ACK | PSH).payload(&pattern(2000)),
        1,
    );
    let back = relay(&mut lab, LAN, &testkit::fragment6(&answer, 1280, 11), WAN);
    let whole = decode6(&testkit::reassemble6(&back));
    let l4 = whole.l4();
    assert_eq!((whole.src, whole.dst), (VIP6, CLIENT6));
    assert_eq!(
        (l4.sport, l4.dport, l4.payload),
        (8000, 40000, pattern(2000))
    );
    let c = lab.worker.counters();
    assert_eq!((c.fragments_tracked(), c.fragments_followed()), (2, 4));
    assert!(c.total_drops() == 0 && c.balanced());
    // TUN: each fragment in its own outer header, the fragment untouched inside.
    let mut lab = one_dest6(0, 8000, ForwardMode::Tun);
    assert_eq!(lab.send(WAN, &syn).only().0, LAN);
    let frags = testkit::fragment6(&data, 1280, 12);
    for (f, out) in frags.iter().zip(relay(&mut lab, WAN, &frags, LAN)) {
        let outer = decode6(&out);
        assert_eq!(
            (outer.src, outer.dst, outer.next_header),
            (DIP6_LAN, RS6[0], 41)
        );
        assert_eq!(&outer.payload[..], &f[14..]);
    }
}

#[test]
fn ipv6_fragments_with_nowhere_to_go_are_dropped_by_reason() {
    let mut lab = fullnat6(2000..=2999);
    // A later fragment whose first one never came.
    let dgram = Frame6::udp(CLIENT6, 5000, VIP6, 5353)
        .payload(&pattern(3000))
        .build();
    let frags = testkit::fragment6(&dgram, 1280, 5);
    assert_eq!(lab.send(WAN, &frags[2]).total(), 0);
    // A fragmented SYN opens nothing.
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 8000, testkit::SYN)
        .payload(&pattern(2000))
        .build();
    assert_eq!(
        lab.send(WAN, &testkit::fragment6(&syn, 1280, 6)[0]).total(),
        0
    );
    // A first fragment too short for its TCP header (RFC 7112: the header chain is whole
    // in the first fragment).
    let seg = Frame6::tcp(CLIENT6, 40001, VIP6, 8000, ACK)
        .payload(&pattern(100))
        .build();
    assert_eq!(
        lab.send(WAN, &testkit::fragment6(&seg, 56, 7)[0]).total(),
        0
    );
    // A first fragment of a datagram for no service.
    let stray = Frame6::udp(CLIENT6, 5000, VIP6, 9999)
        .payload(&pattern(3000))
        .build();
    assert_eq!(
        lab.send(WAN, &testkit::fragment6(&stray, 1280, 8)[0])
            .total(),
        0
    );
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 1);
    assert_eq!(c.drop_count(DropReason::Fragment), 1);
    assert_eq!(c.drop_count(DropReason::FragmentTiny), 1);
    assert_eq!(c.drop_count(DropReason::NotForUs), 1);
    assert_eq!(
        c.ipv6_fragments(),
        3,
        "the tiny one was refused by the parser"
    );
    assert!(lab.worker.sessions6().is_empty());
    assert_eq!(lab.worker.fragments6().in_use(), 0);
    assert!(c.balanced());
}

/// A FullNAT66 lab whose TCP [VIP6]:8000 is persistent (300 s) over RS6[0] and RS6[1]:8080,
/// round robin.
fn persistent6() -> Lab {
    let mut cfg = config6();
    cfg.lips6 = vec![LIP6];
    let mut svc = Service::new(key6(Proto::Tcp, 8000), SchedKind::Rr).unwrap();
    for rs in RS6 {
        svc.add_dest(Dest {
            addr: rs.into(),
            port: 8080,
            weight: 1,
            mode: ForwardMode::FullNat,
        })
        .unwrap();
    }
    svc.set_persistence(Some(300)).unwrap();
    cfg.services.add(svc).unwrap();
    let mut lab = Lab::new(&cfg);
    know_ipv6_neighbours(&mut lab);
    lab
}

/// The RS a client's SYN from `(addr, port)` to the persistent service goes to.
fn syn_goes_to(lab: &mut Lab, client: (Ipv6Addr, u16)) -> Ipv6Addr {
    let syn = Frame6::tcp(client.0, client.1, VIP6, 8000, testkit::SYN).build();
    let s = decode6(lab.send(WAN, &syn).only().1);
    assert_eq!((s.src, s.l4().dport), (LIP6, 8080));
    s.dst
}

#[test]
fn a_persistent_ipv6_client_goes_back_to_its_dest_until_its_template_times_out() {
    let mut lab = persistent6();
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 77);
    // Round robin would alternate; the client's template keeps it on its first dest, while
    // another client gets the scheduler's next.
    let first = syn_goes_to(&mut lab, (CLIENT6, 40000));
    for port in 40001..40005 {
        assert_eq!(syn_goes_to(&mut lab, (CLIENT6, port)), first);
    }
    let next = syn_goes_to(&mut lab, (other, 40000));
    assert_ne!(next, first);
    assert_eq!(lab.worker.templates6().len(), 2, "one template per client");
    // Its sessions end (SYN_RECV times out); the template outlives them by the timeout.
    lab.advance(60_000);
    lab.slow();
    assert!(lab.worker.sessions6().is_empty());
    assert_eq!(lab.worker.templates6().len(), 2);
    assert_eq!(syn_goes_to(&mut lab, (CLIENT6, 41000)), first);
    // 300 s after that session ended, the client is scheduled afresh.
    lab.advance(60_000);
    lab.slow();
    lab.advance(301_000);
    lab.slow();
    assert!(lab.worker.sessions6().is_empty());
    assert_eq!(lab.worker.templates6().len(), 0, "templates expire");
    let seen: Vec<_> = (42000..42004)
        .map(|port| syn_goes_to(&mut lab, (CLIENT6, port)))
        .collect();
    assert!(seen.iter().all(|d| *d == seen[0]), "one template again");
}
