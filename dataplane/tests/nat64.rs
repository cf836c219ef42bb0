//! NAT64: an IPv6 service whose dests are IPv4 servers in FullNAT mode. The client's IPv6
//! packets leave translated to IPv4 from an IPv4 LIP, the server's replies come back
//! translated to IPv6 from the VIP; ICMP errors cross the translation both ways so that
//! path-MTU discovery works; the director's own Packet Too Big and fragmentation needed name
//! the room on the other side of the translation. Every frame rvs sends is decoded by
//! smoltcp, checksums verified.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::{Cidr6, ConfigError, DirectorConfig, RouteConfig6, Snapshot};
use dataplane::wire::EthernetAddress;
use dataplane::DropReason;
use sched::{Dest, ForwardMode, SchedError, SchedKind, Service, ServiceKey};
use smoltcp::wire::{Icmpv4Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Repr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use testkit::{Frame, Frame6, ACK, PSH, SYN};

fn fullnat(i: usize, port: u16) -> Dest {
    dest(i, port, 1, ForwardMode::FullNat)
}

/// The IPv4 lab (LIPs 10.1.0.201-202 on the LAN) with an IPv6 DIP on the WAN, a default
/// IPv6 route, and NAT64 services: TCP [VIP6]:80 → RS[0]:8080 and RS[1]:8080 (round robin),
/// UDP [VIP6]:53 → RS[0]:53, over `ports` LIP ports.
fn config64(ports: core::ops::RangeInclusive<u16>) -> DirectorConfig {
    let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &[fullnat(0, 8080)]);
    cfg.interfaces[WAN as usize].addrs6 = vec![Cidr6::new(DIP6_WAN, 64)];
    cfg.routes6 = vec![RouteConfig6 {
        dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
        via: ROUTER6,
    }];
    cfg.lips = vec![LIP1];
    cfg.lport_range = ports;
    let mut web = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    // RS[0] added last: the service lists it first (newest first), the first rr pick.
    web.add_dest(fullnat(1, 8080)).unwrap();
    web.add_dest(fullnat(0, 8080)).unwrap();
    cfg.services.add(web).unwrap();
    let mut dns = Service::new(key6(Proto::Udp, 53), SchedKind::Rr).unwrap();
    dns.add_dest(fullnat(0, 53)).unwrap();
    cfg.services.add(dns).unwrap();
    cfg
}

fn lab64(ports: core::ops::RangeInclusive<u16>) -> Lab {
    let mut lab = Lab::new(&config64(ports));
    lab.worker
        .insert_static_neighbour(ROUTER6.into(), EthernetAddress(ROUTER_MAC));
    lab
}

/// A frame from RS `i` to the director's LAN port.
fn from_rs(f: Frame, i: usize) -> Vec<u8> {
    let mut f = f.via_rs(i);
    f.dst_mac = LAN_MAC;
    f.build()
}

#[test]
fn a_nat64_connection_is_translated_both_ways() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let out = lab.send(WAN, &syn);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let s = decode(f);
    assert_eq!((s.dst_mac, s.src_mac), (rs_mac(0), LAN_MAC));
    assert_eq!((s.src, s.dst, s.ttl, s.proto), (LIP1, RS[0], 63, 6));
    assert_eq!((s.dport, s.flags), (8080, SYN));
    let lport = s.sport;
    assert!((2000..=2999).contains(&lport), "lport {lport}");
    // The RS answers the LIP: back to the client from the VIP, in IPv6.
    let synack = from_rs(Frame::tcp(RS[0], 8080, LIP1, lport, SYN | ACK), 0);
    let out = lab.send(LAN, &synack);
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    let s = decode6(f);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (VIP6, CLIENT6, 63));
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport, l4.flags), (80, 40000, SYN | ACK));
    // Data both ways, payloads intact.
    let get = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK | PSH)
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .build();
    let s = decode(lab.send(WAN, &get).only().1);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP1, lport, RS[0], 8080));
    assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");
    let body = from_rs(
        Frame::tcp(RS[0], 8080, LIP1, lport, ACK | PSH).payload(&[0x5a; 1000]),
        0,
    );
    let s = decode6(lab.send(LAN, &body).only().1);
    assert_eq!(s.l4().payload, vec![0x5a; 1000]);
    let (_, sess) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(sess.state, SessionState::Tcp(TcpState::Established));
    // The next client goes to the next RS (its LIP port from that RS's pool).
    let syn2 = Frame6::tcp(CLIENT6, 40001, VIP6, 80, SYN).build();
    let s = decode(lab.send(WAN, &syn2).only().1);
    assert_eq!((s.src, s.dst, s.dport), (LIP1, RS[1], 8080));
    let snap = lab.worker.snapshot().clone();
    let si = snap.service_index6(Proto::Tcp, VIP6, 80).unwrap();
    let d = lab
        .worker
        .stats_handle()
        .dest(snap.dest_slot(si, 0))
        .sample();
    assert_eq!((d.conns, d.inpkts, d.outpkts, d.active), (1, 2, 2, 1));
    assert_eq!(lab.worker.counters().sessions_created(), 2);
}

#[test]
fn nat64_udp_and_its_lip_ports() {
    let mut lab = lab64(2000..=2000);
    let q = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(b"query")
        .build();
    let s = decode(lab.send(WAN, &q).only().1);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP1, 2000, RS[0], 53));
    assert_eq!((s.proto, &s.payload[..]), (17, &b"query"[..]));
    // An answer without a UDP checksum (IPv4 allows it) gets one in IPv6.
    let mut a = from_rs(Frame::udp(RS[0], 53, LIP1, 2000).payload(b"answer"), 0);
    a[14 + 20 + 6..14 + 20 + 8].fill(0);
    let s = decode6(lab.send(LAN, &a).only().1);
    let l4 = s.l4();
    assert_eq!(
        (s.src, s.dst, l4.sport, l4.dport),
        (VIP6, CLIENT6, 53, 5000)
    );
    assert_eq!(l4.payload, b"answer");
    // The only LIP port is taken: the next client waits for the session's end.
    let q2 = Frame6::udp(CLIENT6, 5001, VIP6, 53).payload(b"q").build();
    assert_eq!(lab.send(WAN, &q2).total(), 0);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::LipExhausted),
        1
    );
    lab.advance(301_000);
    lab.slow();
    assert!(lab.worker.sessions6().is_empty());
    let s = decode(lab.send(WAN, &q2).only().1);
    assert_eq!((s.src, s.sport), (LIP1, 2000));
    // A reply to a LIP port no session holds is dropped.
    let stray = from_rs(Frame::udp(RS[0], 53, LIP1, 2999), 0);
    assert_eq!(lab.send(LAN, &stray).total(), 0);
}

#[test]
fn nat64_sessions_are_listed_with_their_ipv4_rs_and_lip() {
    use dataplane::worker::SessionDump;
    let mut lab = lab64(2000..=2000);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 1);
    let mut from = 0;
    let mut sessions = Vec::new();
    for _ in 0..100 {
        let SessionDump {
            sessions: page,
            next,
        } = lab.dump(from, 8);
        sessions.extend(page);
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.client, (CLIENT6.into(), 40000));
    assert_eq!(s.vip, (VIP6.into(), 80));
    assert_eq!(s.rip, (IpAddr::V4(RS[0]), 8080));
    assert_eq!(s.local, Some((IpAddr::V4(LIP1), 2000)));
}

/// The ICMPv4 message of an IPv4 frame, with its checksum verified.
fn icmpv4(frame: &[u8]) -> (Ipv4Packet<&[u8]>, Icmpv4Packet<&[u8]>) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum());
    let icmp = Icmpv4Packet::new_checked(&frame[14 + 20..]).unwrap();
    assert!(icmp.verify_checksum());
    (ip, icmp)
}

#[test]
fn path_mtu_discovery_works_through_the_translation() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let lport = decode(lab.send(WAN, &syn).only().1).sport;
    // 1) An IPv4 router between the director and the RS says fragmentation needed (MTU 1400)
    //    about a segment the director sent: the client gets Packet Too Big for 1420 about its
    //    own segment, from the VIP.
    let sent = Frame::tcp(LIP1, lport, RS[0], 8080, ACK)
        .payload(&[1; 1380])
        .build();
    let needed = icmp_error_frame(
        (ROUTER_MAC, LAN_MAC),
        DIP_LAN,
        LIP1,
        (3, 4, 1400),
        &sent[14..],
    );
    let out = lab.send(LAN, &needed);
    let s = decode6(out.only().1);
    assert_eq!((s.src, s.dst, s.dst_mac), (VIP6, CLIENT6, ROUTER_MAC));
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { mtu, header, data } => {
            assert_eq!(mtu, 1420);
            assert_eq!((header.src_addr, header.dst_addr), (CLIENT6, VIP6));
            assert_eq!(header.payload_len, 1400, "the quoted packet's own length");
            assert_eq!(&data[..4], &[0x9c, 0x40, 0, 80], "the client's ports");
        }
        other => panic!("expected packet too big, got {other:?}"),
    }
    // 2) An IPv6 router toward the client says Packet Too Big (1280) about a reply the
    //    director sent: the RS gets fragmentation needed for 1260 about its own segment,
    //    from the LIP.
    let reply = Frame6::tcp(VIP6, 80, CLIENT6, 40000, ACK)
        .payload(&[2; 1400])
        .build();
    let ptb = Icmpv6Repr::PktTooBig {
        mtu: 1280,
        header: Ipv6Repr {
            src_addr: VIP6,
            dst_addr: CLIENT6,
            next_header: IpProtocol::Tcp,
            payload_len: reply.len() - 54,
            hop_limit: 63,
        },
        data: &reply[54..54 + 1232 - 40],
    };
    let frame = icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &ptb);
    let out = lab.send(WAN, &frame);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert_eq!(&f[0..6], &rs_mac(0));
    let (ip, icmp) = icmpv4(f);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (LIP1, RS[0]));
    assert_eq!((icmp.msg_type().into(), icmp.msg_code()), (3u8, 4u8));
    assert_eq!(u16::from_be_bytes([f[34 + 6], f[34 + 7]]), 1260);
    let quoted = Ipv4Packet::new_unchecked(&f[34 + 8..]);
    assert!(quoted.verify_checksum());
    assert_eq!((quoted.src_addr(), quoted.dst_addr()), (RS[0], LIP1));
    assert_eq!(quoted.total_len(), 20 + 20 + 1400);
    let ports = &f[34 + 8 + 20..34 + 8 + 24];
    assert_eq!(ports, &[0x1f, 0x90, (lport >> 8) as u8, lport as u8]);
    assert_eq!(lab.worker.counters().icmp_relayed(), 2);
    // 3) The director's own: a client segment that would not fit the IPv4 side once
    //    translated gets Packet Too Big naming the IPv4 MTU plus 20.
    let big = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK)
        .payload(&[3; 1461])
        .build();
    let s = decode6(lab.send(WAN, &big).only().1);
    assert_eq!((s.src, s.dst), (DIP6_WAN, CLIENT6));
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { mtu, .. } => assert_eq!(mtu, 1520),
        other => panic!("expected packet too big, got {other:?}"),
    }
    // One byte less fits.
    let fits = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK)
        .payload(&[3; 1460])
        .build();
    let s = decode(lab.send(WAN, &fits).only().1);
    assert_eq!((s.total_len, s.df), (1500, true));
    // 4) An RS segment that would not fit the IPv6 side once translated: fragmentation
    //    needed naming the IPv6 MTU less 20, from the director's LAN address.
    let mut seg = Frame::tcp(RS[0], 8080, LIP1, lport, ACK).payload(&[4; 1460]);
    seg = seg.via_rs(0);
    seg.dst_mac = LAN_MAC;
    let out = lab.send(LAN, &seg.build());
    let (ip, icmp) = icmpv4(out.only().1);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (DIP_LAN, RS[0]));
    assert_eq!((icmp.msg_type().into(), icmp.msg_code()), (3u8, 4u8));
    assert_eq!(u16::from_be_bytes([out.lan[0][40], out.lan[0][41]]), 1480);
    let c = lab.worker.counters();
    assert_eq!(c.icmp_errors(), 2);
    assert_eq!(c.drop_count(DropReason::TooBig), 2);
}

#[test]
fn errors_nat64_cannot_translate_or_check_are_dropped_by_reason() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let lport = decode(lab.send(WAN, &syn).only().1).sport;
    let sent = Frame::tcp(LIP1, lport, RS[0], 8080, ACK).build();
    // Source quench: no ICMPv6 counterpart.
    let quench = icmp_error_frame((ROUTER_MAC, LAN_MAC), DIP_LAN, LIP1, (4, 0, 0), &sent[14..]);
    assert_eq!(lab.send(LAN, &quench).total(), 0);
    // A bad ICMP checksum.
    let mut bad = icmp_error_frame(
        (ROUTER_MAC, LAN_MAC),
        DIP_LAN,
        LIP1,
        (3, 4, 1400),
        &sent[14..],
    );
    bad[34 + 2] ^= 0xff;
    assert_eq!(lab.send(LAN, &bad).total(), 0);
    // An ICMPv6 parameter problem about a header field: none in ICMPv4.
    let reply = Frame6::tcp(VIP6, 80, CLIENT6, 40000, ACK).build();
    let pp = Icmpv6Repr::ParamProblem {
        reason: smoltcp::wire::Icmpv6ParamProblem::ErroneousHdrField,
        pointer: 4,
        header: Ipv6Repr {
            src_addr: VIP6,
            dst_addr: CLIENT6,
            next_header: IpProtocol::Tcp,
            payload_len: 20,
            hop_limit: 63,
        },
        data: &reply[54..],
    };
    let frame = icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &pp);
    assert_eq!(lab.send(WAN, &frame).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::Untranslatable), 2);
    assert_eq!(c.drop_count(DropReason::BadIcmpChecksum), 1);
    assert_eq!(c.icmp_relayed(), 0);
    // Time exceeded both ways is the director's own answer, in the sender's family.
    let mut last = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK);
    last.hop_limit = 1;
    let s = decode6(lab.send(WAN, &last.build()).only().1);
    assert!(matches!(s.icmpv6(), Icmpv6Repr::TimeExceeded { .. }));
    let mut seg = Frame::tcp(RS[0], 8080, LIP1, lport, ACK).via_rs(0);
    seg.dst_mac = LAN_MAC;
    seg.ttl = 1;
    let out = lab.send(LAN, &seg.build());
    let (ip, icmp) = icmpv4(out.only().1);
    assert_eq!(ip.dst_addr(), RS[0]);
    assert_eq!(u8::from(icmp.msg_type()), 11);
    assert_eq!(lab.worker.counters().drop_count(DropReason::TtlExceeded), 2);
}

#[test]
fn nat64_configurations_are_checked() {
    // IPv4 dests of an IPv6 service in any other mode are refused by the service.
    for mode in [ForwardMode::Dr, ForwardMode::Nat, ForwardMode::Tun] {
        let mut s = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
        let d = dest(0, 80, 1, mode);
        assert_eq!(
            s.add_dest(d),
            Err(SchedError::FamilyMismatch {
                vip: VIP6.into(),
                dest: d.addr,
            })
        );
    }
    // An IPv4 service still takes no IPv6 dest, FullNAT or not.
    let mut s = Service::new(
        ServiceKey {
            proto: Proto::Tcp,
            vip: VIP.into(),
            port: 80,
        },
        SchedKind::Rr,
    )
    .unwrap();
    let v6 = Dest {
        addr: CLIENT6.into(),
        port: 80,
        weight: 1,
        mode: ForwardMode::FullNat,
    };
    assert!(matches!(
        s.add_dest(v6),
        Err(SchedError::FamilyMismatch { .. })
    ));
    // NAT64 needs IPv4 LIPs.
    let mut cfg = config64(1024..=65535);
    cfg.lips.clear();
    cfg.services = {
        let mut t = sched::ServiceTable::default();
        let mut web = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
        web.add_dest(fullnat(0, 8080)).unwrap();
        t.add(web).unwrap();
        t
    };
    assert_eq!(
        Snapshot::build(&cfg).err(),
        Some(ConfigError::FullNatWithoutLips {
            service: key6(Proto::Tcp, 80),
            dest: IpAddr::V4(RS[0]),
        })
    );
    // With them, the snapshot knows IPv4 replies may be NAT64's.
    cfg.lips = vec![Ipv4Addr::new(10, 1, 0, 201)];
    assert!(Snapshot::build(&cfg).unwrap().has_nat64());
    assert!(
        !Snapshot::build(&config(Proto::Tcp, 80, SchedKind::Rr, &[fullnat(0, 80)]))
            .unwrap()
            .has_nat64()
    );
}

#[test]
fn a_syn_on_a_closing_tuple_starts_a_new_session() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let first = decode(lab.send(WAN, &syn).only().1);
    let synack = from_rs(Frame::tcp(RS[0], 8080, LIP1, first.sport, SYN | ACK), 0);
    assert_eq!(lab.send(LAN, &synack).total(), 1);
    let ack = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK).build();
    assert_eq!(lab.send(WAN, &ack).total(), 1);
    // The client resets the connection: its session closes but lingers.
    let rst = Frame6::tcp(CLIENT6, 40000, VIP6, 80, testkit::RST | ACK).build();
    assert_eq!(lab.send(WAN, &rst).total(), 1);
    let (_, s) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::Close));
    // A new SYN on the same 4-tuple is scheduled afresh (the next RS, a new LIP port).
    let again = decode(lab.send(WAN, &syn).only().1);
    assert_eq!((again.dst, again.flags), (RS[1], SYN));
    assert_eq!(lab.worker.counters().sessions_reused(), 1);
    let (_, s) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::SynRecv));
    assert_eq!(lab.worker.sessions6().len(), 1);
    assert_eq!(lab.worker.counters().sessions_created(), 2);
}

#[test]
fn a_reply_with_the_longest_ipv4_header_is_translated() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let lport = decode(lab.send(WAN, &syn).only().1).sport;
    // 40 bytes of options (NOPs, then the end of the list): a 60-byte IPv4 header, longer
    // than the IPv6 one that replaces it.
    let f = from_rs(
        Frame::tcp(RS[0], 8080, LIP1, lport, SYN | ACK).payload(b"hello"),
        0,
    );
    let mut g = f[..34].to_vec();
    g.extend_from_slice(&[1; 39]);
    g.push(0);
    g.extend_from_slice(&f[34..]);
    g[14] = 0x4f;
    let total = (g.len() - 14) as u16;
    testkit::set_ip_total_len(&mut g, total);
    testkit::refresh_ip_checksum(&mut g, 14);
    let s = decode6(lab.send(LAN, &g).only().1);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    let l4 = s.l4();
    assert_eq!(
        (l4.sport, l4.dport, &l4.payload[..]),
        (80, 40000, &b"hello"[..])
    );
    // One byte too big for the IPv6 side (1441 bytes of payload: 1501 in IPv6): fragmentation
    // needed names the IPv4 room, its options counted.
    let big = from_rs(
        Frame::tcp(RS[0], 8080, LIP1, lport, ACK).payload(&[1; 1441]),
        0,
    );
    let mut g = big[..34].to_vec();
    g.extend_from_slice(&[1; 39]);
    g.push(0);
    g.extend_from_slice(&big[34..]);
    g[14] = 0x4f;
    let total = (g.len() - 14) as u16;
    testkit::set_ip_total_len(&mut g, total);
    testkit::refresh_ip_checksum(&mut g, 14);
    let out = lab.send(LAN, &g);
    let (ip, icmp) = icmpv4(out.only().1);
    assert_eq!(ip.dst_addr(), RS[0]);
    assert_eq!((u8::from(icmp.msg_type()), icmp.msg_code()), (3, 4));
    let f = out.only().1;
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1500 + 60 - 40);
}

/// A payload whose bytes all differ from their neighbours.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i * 7 + u32::from(seed)) as u8)
        .collect()
}

/// Sends each of `frames` on `port` and gathers what left on `to` (nothing elsewhere).
fn relay(lab: &mut Lab, port: u16, frames: &[Vec<u8>], to: u16) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for f in frames {
        let out = lab.send(port, f);
        let (here, there) = if to == LAN {
            (out.lan, out.wan)
        } else {
            (out.wan, out.lan)
        };
        assert!(there.is_empty(), "nothing the other way");
        got.extend(here);
    }
    got
}

/// An IPv4 fragment's header, its checksum verified by smoltcp: (src, dst, protocol, ident,
/// DF, MF, offset in bytes).
fn ipv4_fragment(f: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, u16, bool, bool, u16) {
    let ip = Ipv4Packet::new_checked(&f[14..]).expect("ipv4");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    assert_eq!(usize::from(ip.total_len()), f.len() - 14, "total length");
    (
        ip.src_addr(),
        ip.dst_addr(),
        u8::from(ip.next_header()),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
    )
}

#[test]
fn a_fragmented_udp_datagram_crosses_nat64_both_ways() {
    let mut lab = lab64(2000..=2999);
    // The client's 4000-byte question in three IPv6 fragments opens the session with its
    // first and leaves as three IPv4 fragments of one fresh identification, DF clear.
    let question = pattern(4000, 1);
    let dgram = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(&question)
        .build();
    let frags = testkit::fragment6(&dgram, 1500, 0xabcd_0001);
    assert_eq!(frags.len(), 3);
    let sent = relay(&mut lab, WAN, &frags, LAN);
    assert_eq!(sent.len(), 3);
    let ident = ipv4_fragment(&sent[0]).3;
    for (i, (f, v6)) in sent.iter().zip(&frags).enumerate() {
        let (src, dst, proto, id, df, mf, offset) = ipv4_fragment(f);
        assert_eq!((src, dst, proto, id, df), (LIP1, RS[0], 17, ident, false));
        assert_eq!(&f[..6], &rs_mac(0)[..]);
        let word = u16::from_be_bytes([v6[56], v6[57]]);
        assert_eq!((mf, offset), (i < 2, word & 0xfff8), "fragment {i}");
        assert_eq!(
            f.len() - 34,
            v6.len() - 62,
            "the payload, 28 bytes of header less"
        );
        assert_eq!(f[22], 63, "TTL: hop limit less one");
    }
    let whole = testkit::reassemble(&sent);
    assert!(testkit::checksums_valid(&whole), "the UDP checksum holds");
    let q = decode(&whole);
    assert_eq!((q.src, q.dst, q.dport), (LIP1, RS[0], 53));
    assert_eq!(q.payload, question);
    let lport = q.sport;
    // A second datagram gets an identification of its own.
    let again = testkit::fragment6(&dgram, 1500, 0xabcd_0002);
    let sent = relay(&mut lab, WAN, &again, LAN);
    assert_eq!(sent.len(), 3);
    let ident2 = ipv4_fragment(&sent[0]).3;
    assert_ne!(ident2, ident);
    assert!(sent.iter().all(|f| ipv4_fragment(f).3 == ident2));
    assert_eq!(decode(&testkit::reassemble(&sent)).payload, question);

    // The RS's answer in IPv4 fragments that fit the IPv6 side once translated: one IPv6
    // fragment each, its identification the RS's.
    let answer = pattern(4000, 2);
    let mut a = Frame::udp(RS[0], 53, LIP1, lport).payload(&answer);
    a.df = false;
    a.ident = 0x5151;
    let a = from_rs(a, 0);
    let frags4 = testkit::fragment(&a, 1400);
    assert_eq!(frags4.len(), 3);
    let back = relay(&mut lab, LAN, &frags4, WAN);
    assert_eq!(back.len(), 3);
    for f in &back {
        let s = decode6(f);
        assert_eq!(
            (s.dst_mac, s.src, s.dst, s.hop_limit, s.next_header),
            (ROUTER_MAC, VIP6, CLIENT6, 63, 44)
        );
        assert_eq!(testkit::fragment6_ident(f), 0x5151);
        assert_eq!(f[54], 17, "the Fragment Header names UDP");
    }
    let whole = decode6(&testkit::reassemble6(&back));
    let l4 = whole.l4();
    assert_eq!((l4.sport, l4.dport), (53, 5000));
    assert_eq!(l4.payload, answer);
    // Fragments of a full 1500-byte path each grow past the IPv6 side's 1500 bytes: each is
    // cut in two IPv6 fragments that fit (RFC 7915 4), all of one datagram.
    let mut a = Frame::udp(RS[0], 53, LIP1, lport).payload(&answer);
    a.df = false;
    a.ident = 0x5152;
    let frags4 = testkit::fragment(&from_rs(a, 0), 1500);
    assert_eq!(frags4.len(), 3);
    let back = relay(&mut lab, LAN, &frags4, WAN);
    assert_eq!(
        back.len(),
        5,
        "1480, 1480 and 1048 bytes in 1448-byte pieces"
    );
    assert!(back.iter().all(|f| f.len() - 14 <= 1500));
    assert!(back.iter().all(|f| testkit::fragment6_ident(f) == 0x5152));
    let whole = decode6(&testkit::reassemble6(&back));
    assert_eq!(whole.l4().payload, answer);
    let c = lab.worker.counters();
    assert_eq!((c.nat64_fragmented(), c.nat64_fragment_frames()), (2, 2));
    assert_eq!((c.fragments_tracked(), c.fragments_followed()), (4, 8));
    assert_eq!(c.total_drops(), 0);
    assert!(c.balanced());
    assert_eq!(lab.worker.sessions6().len(), 1, "one session for it all");
    assert_eq!(lab.worker.fragments6().in_use(), 0, "datagrams seen whole");
    assert_eq!(lab.worker.fragments().in_use(), 0);
}

#[test]
fn a_whole_nat64_reply_without_df_too_big_for_ipv6_leaves_in_fragments() {
    let mut lab = lab64(2000..=2999);
    let q = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(b"query")
        .build();
    let lport = decode(lab.send(WAN, &q).only().1).sport;
    // 1500 bytes of IPv4 are 1520 of IPv6: two fragments, the identification the RS's, the
    // checksum of a datagram that had none computed (it is whole here).
    let answer = pattern(1472, 3);
    for zero_csum in [false, true] {
        let mut a = Frame::udp(RS[0], 53, LIP1, lport).payload(&answer);
        a.df = false;
        a.ident = 0x0777;
        let mut a = from_rs(a, 0);
        if zero_csum {
            a[40..42].fill(0);
        }
        let back = relay(&mut lab, LAN, &[a], WAN);
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|f| testkit::fragment6_ident(f) == 0x0777));
        let whole = decode6(&testkit::reassemble6(&back));
        assert_eq!((whole.src, whole.dst), (VIP6, CLIENT6));
        let l4 = whole.l4();
        assert_eq!((l4.sport, l4.dport, l4.payload), (53, 5000, answer.clone()));
    }
    // A fragment of a datagram without a checksum cannot get one (RFC 7915 4.5).
    let mut a = Frame::udp(RS[0], 53, LIP1, lport).payload(&pattern(3000, 4));
    a.df = false;
    let mut a = from_rs(a, 0);
    a[40..42].fill(0);
    let frags4 = testkit::fragment(&a, 1400);
    assert_eq!(relay(&mut lab, LAN, &frags4, WAN).len(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::Untranslatable), 1);
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 2, "its others");
    assert_eq!(c.nat64_fragmented(), 2);
}

#[test]
fn nat64_fragments_ahead_of_their_first_and_without_a_session_are_dropped() {
    let mut lab = lab64(2000..=2999);
    // A later fragment ahead of its first: dropped, unmatched; the datagram opens its
    // session with its first, and its others follow.
    let dgram = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(&pattern(3000, 5))
        .build();
    let frags = testkit::fragment6(&dgram, 1280, 1);
    assert_eq!(frags.len(), 3);
    assert_eq!(lab.send(WAN, &frags[1]).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 1);
    assert_eq!(lab.worker.sessions6().len(), 0);
    let sent = relay(&mut lab, WAN, &[frags[0].clone(), frags[2].clone()], LAN);
    assert_eq!(sent.len(), 2);
    assert_eq!(lab.worker.fragments6().in_use(), 1, "waits for its middle");
    let lport = u16::from_be_bytes([sent[0][34], sent[0][35]]);
    // The same from the RS.
    let mut a = Frame::udp(RS[0], 53, LIP1, lport).payload(&pattern(3000, 6));
    a.df = false;
    let frags4 = testkit::fragment(&from_rs(a, 0), 1400);
    assert_eq!(lab.send(LAN, &frags4[2]).total(), 0);
    assert_eq!(relay(&mut lab, LAN, &frags4[..2], WAN).len(), 2);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 2);
    // A TCP first fragment opens no NAT64 session, from the client or to a LIP.
    let seg = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK)
        .payload(&pattern(3000, 7))
        .build();
    for f in testkit::fragment6(&seg, 1280, 2) {
        assert_eq!(lab.send(WAN, &f).total(), 0);
    }
    let mut seg = Frame::tcp(RS[0], 8080, LIP1, 2500, ACK).payload(&pattern(3000, 8));
    seg.df = false;
    for f in testkit::fragment(&from_rs(seg, 0), 1400) {
        assert_eq!(lab.send(LAN, &f).total(), 0);
    }
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::NoSession), 1, "the client's first");
    assert_eq!(c.drop_count(DropReason::Fragment), 1, "the RS's first");
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 2 + 2 + 2);
    assert_eq!(lab.worker.sessions6().len(), 1, "the datagram's only");
}

#[test]
fn a_nat64_connection_takes_fragmented_segments_both_ways() {
    let mut lab = lab64(2000..=2999);
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build();
    let lport = decode(lab.send(WAN, &syn).only().1).sport;
    let synack = from_rs(Frame::tcp(RS[0], 8080, LIP1, lport, SYN | ACK), 0);
    assert_eq!(lab.send(LAN, &synack).only().0, WAN);
    // The client's segment, fragmented by its stack: the RS reassembles a segment whose
    // checksum holds.
    let data = pattern(3000, 9);
    let seg = Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK | PSH)
        .payload(&data)
        .build();
    let sent = relay(&mut lab, WAN, &testkit::fragment6(&seg, 1280, 3), LAN);
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|f| ipv4_fragment(f).2 == 6));
    let whole = testkit::reassemble(&sent);
    assert!(testkit::checksums_valid(&whole));
    let s = decode(&whole);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LIP1, lport, RS[0], 8080));
    assert_eq!(s.payload, data);
    // And the RS's, fragmented on its side.
    let mut back = Frame::tcp(RS[0], 8080, LIP1, lport, ACK | PSH).payload(&data);
    back.df = false;
    let frags4 = testkit::fragment(&from_rs(back, 0), 1400);
    let got = relay(&mut lab, LAN, &frags4, WAN);
    assert_eq!(got.len(), 3);
    let whole = decode6(&testkit::reassemble6(&got));
    let l4 = whole.l4();
    assert_eq!((l4.sport, l4.dport, l4.payload), (80, 40000, data));
    let c = lab.worker.counters();
    assert_eq!(c.total_drops(), 0);
    let (_, sess) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(sess.state, SessionState::Tcp(TcpState::Established));
}

#[test]
fn an_atomic_fragment_crosses_nat64_as_a_whole_packet() {
    let mut lab = lab64(2000..=2999);
    // RFC 6946: a Fragment Header with offset 0 and M clear is a whole packet; it leaves as
    // one IPv4 packet, the Fragment Header gone.
    let q = Frame6::udp(CLIENT6, 5000, VIP6, 53)
        .payload(b"atomic")
        .build();
    let mut f = q[..54].to_vec();
    f[20] = 44;
    let len = u16::from_be_bytes([q[18], q[19]]) + 8;
    f[18..20].copy_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 9]);
    f.extend_from_slice(&q[54..]);
    let s = decode(lab.send(WAN, &f).only().1);
    assert_eq!((s.src, s.dst, s.dport, s.proto), (LIP1, RS[0], 53, 17));
    assert_eq!(s.payload, b"atomic");
    assert_eq!(usize::from(s.total_len), 20 + 8 + 6);
    let c = lab.worker.counters();
    assert_eq!((c.fragments_tracked(), c.total_drops()), (0, 0));
}
