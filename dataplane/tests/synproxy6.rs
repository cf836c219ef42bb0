//! The SYN proxy for IPv6 services end to end through the worker, as `synproxy.rs` does it
//! for IPv4: the client's handshake answered from the VIP with a cookie and no state, the
//! RS's opened on the client's valid ACK, and the two sequence spaces joined for the rest of
//! the session — in NAT66 and FullNAT66, every TCP checksum verified over the IPv6
//! pseudo-header (smoltcp). Also: refused and stale cookies, an RS that refuses, a spoofed
//! SYN flood that never reaches an RS, the table or the IPv6 LIP pool, NAT64 (the director's
//! side of the handshake toward the IPv4 RS in IPv4), ICMPv6 errors of a
//! proxied session quoting each side its own numbers, and no export of a pending session.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::snapshot::{Cidr6, DirectorConfig, RouteConfig6};
use dataplane::synproxy::EPOCH_MS;
use dataplane::wire::EthernetAddress;
use dataplane::worker::SynProxy;
use dataplane::DropReason;
use sched::{Dest, ForwardMode, SchedKind, Service};
use smoltcp::wire::{Icmpv6Repr, IpAddress, TcpPacket};
use std::net::Ipv6Addr;
use testkit::alloc::{armed, Counting};
use testkit::{Frame6, L4Spec, ACK, FIN, PSH, RST, SYN};

#[global_allocator]
static GLOBAL: Counting = Counting;

const DIP6_LAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 1);
const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x201);
const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11);
const ISN: u32 = 0x1111_0000;
const RS_ISN: u32 = 0x7777_0000;
const CPORT: u16 = 40000;

/// A director with IPv6 DIPs on both ports, a default IPv6 route, IPv6 LIPs, and the
/// SYN-proxied TCP service [VIP6]:80 toward [RS6]:8080 in `mode`; the router's and the RS's
/// MACs known.
fn proxied6(mode: ForwardMode) -> Lab {
    lab_of(&proxied_config6(mode))
}

fn proxied_config6(mode: ForwardMode) -> DirectorConfig {
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
    cfg.lips6 = vec![LIP6];
    let mut svc = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    svc.add_dest(Dest {
        addr: RS6.into(),
        port: 8080,
        weight: 1,
        mode,
    })
    .unwrap();
    svc.set_synproxy(true).unwrap();
    cfg.services.add(svc).unwrap();
    cfg
}

fn lab_of(cfg: &DirectorConfig) -> Lab {
    let mut lab = Lab::new(cfg);
    for (ip, mac) in [(RS6, rs_mac(0)), (ROUTER6, ROUTER_MAC)] {
        lab.worker
            .insert_static_neighbour(ip.into(), EthernetAddress(mac));
    }
    lab
}

/// A TCP segment with its own sequence numbers.
fn seg(
    (src, sport): (Ipv6Addr, u16),
    (dst, dport): (Ipv6Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
) -> Frame6 {
    let mut f = Frame6::tcp(src, sport, dst, dport, flags);
    f.l4 = L4Spec::Tcp {
        sport,
        dport,
        flags,
        seq,
        ack,
    };
    f
}

/// `f` as the RS sends it, on the LAN.
fn from_rs(mut f: Frame6) -> Frame6 {
    f.dst_mac = LAN_MAC;
    f.src_mac = rs_mac(0);
    f
}

/// `frame` (untagged Ethernet/IPv6/TCP without options) with the TCP options `opts` (a
/// multiple of 4 bytes) after its TCP header; the payload length and checksum made right.
fn with_options6(frame: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut f = frame[..74].to_vec();
    f.extend_from_slice(opts);
    f.extend_from_slice(&frame[74..]);
    let len = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&len.to_be_bytes());
    f[54 + 12] = ((20 + opts.len()) as u8 / 4) << 4;
    let s = decode6(&f);
    TcpPacket::new_unchecked(&mut f[54..])
        .fill_checksum(&IpAddress::Ipv6(s.src), &IpAddress::Ipv6(s.dst));
    f
}

/// The sequence and acknowledgement numbers of an output IPv6 TCP frame, its checksum
/// verified first.
fn seq_ack(f: &[u8]) -> (u32, u32) {
    let s = decode6(f);
    let _ = s.l4();
    let t = &s.payload;
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8))
}

/// The MSS option of an output IPv6 TCP frame.
fn mss_of(f: &[u8]) -> Option<u16> {
    let t = decode6(f).payload;
    let doff = usize::from(t[12] >> 4) * 4;
    (doff == 24 && t[20] == 2 && t[21] == 4).then(|| u16::from_be_bytes([t[22], t[23]]))
}

fn client_syn(cport: u16) -> Vec<u8> {
    let syn = seg((CLIENT6, cport), (VIP6, 80), SYN, ISN, 0).build();
    // MSS 1400 and a window scale the proxy does not offer back.
    with_options6(&syn, &[2, 4, 0x05, 0x78, 1, 3, 3, 7])
}

/// The client's SYN answered from the VIP with a cookie: returns it.
fn client_handshake(lab: &mut Lab, cport: u16) -> u32 {
    let out = lab.send(WAN, &client_syn(cport));
    assert_eq!(out.total(), 1, "only the SYN/ACK: {out:?}");
    let s = decode6(&out.wan[0]);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (VIP6, CLIENT6, 64));
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport, l4.flags), (80, cport, SYN | ACK));
    let (cookie, ack) = seq_ack(&out.wan[0]);
    assert_eq!(ack, ISN + 1);
    assert_eq!(
        mss_of(&out.wan[0]),
        Some(1440),
        "the director's MSS: a 1500-byte MTU less the IPv6 and TCP headers"
    );
    cookie
}

fn client(flags: u8, seq: u32, ack: u32) -> Frame6 {
    seg((CLIENT6, CPORT), (VIP6, 80), flags, seq, ack)
}

/// Both handshakes of a proxied session from client port 40000: returns the cookie and the
/// (address, port) the RS sees.
fn join(lab: &mut Lab) -> (u32, Ipv6Addr, u16) {
    let cookie = client_handshake(lab, CPORT);
    let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1)).build());
    let syn = decode6(&out.lan[0]);
    let sport = syn.l4().sport;
    let synack = from_rs(seg(
        (RS6, 8080),
        (syn.src, sport),
        SYN | ACK,
        RS_ISN,
        ISN + 1,
    ));
    assert_eq!(lab.send(LAN, &synack.build()).lan.len(), 1);
    (cookie, syn.src, sport)
}

#[test]
fn nat66_and_fullnat66_handshakes_are_proxied_and_joined() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = proxied6(mode);
        let cookie = client_handshake(&mut lab, CPORT);
        assert_eq!(
            lab.worker.sessions6().len(),
            0,
            "{mode:?}: a SYN leaves no state"
        );
        assert_eq!(lab.worker.counters().synproxy_cookies(), 1);

        // The client's ACK brings the cookie back: the RS gets the client's SYN.
        let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1)).build());
        assert_eq!(out.total(), 1, "{out:?}");
        let syn = decode6(&out.lan[0]);
        assert_eq!((syn.dst_mac, syn.src_mac), (rs_mac(0), LAN_MAC));
        let l4 = syn.l4();
        let (from, sport) = (syn.src, l4.sport);
        if mode == ForwardMode::FullNat {
            assert_eq!(from, LIP6);
        } else {
            assert_eq!((from, sport), (CLIENT6, CPORT));
        }
        assert_eq!((syn.dst, l4.dport, l4.flags), (RS6, 8080, SYN));
        assert_eq!(seq_ack(&out.lan[0]).0, ISN, "the client's own ISN");
        assert_eq!(
            mss_of(&out.lan[0]),
            Some(1300),
            "the client's MSS, as the cookie kept it"
        );
        let (_, s) = lab.worker.sessions6().iter().next().unwrap();
        assert_eq!(s.state, SessionState::Tcp(TcpState::SynRecv));
        assert!(matches!(s.data.synproxy(), SynProxy::Pending(_)));

        // Data before the RS answered: dropped, the SYN goes again.
        let early = client(ACK | PSH, ISN + 1, cookie.wrapping_add(1)).payload(b"early");
        let out = lab.send(WAN, &early.build());
        assert_eq!(decode6(&out.lan[0]).l4().flags, SYN, "the SYN again");
        assert_eq!(lab.worker.counters().synproxy_syn_retries(), 1);
        // The RS's packets other than its SYN/ACK wait.
        let stray = from_rs(seg((RS6, 8080), (from, sport), ACK, RS_ISN, ISN + 1));
        assert_eq!(lab.send(LAN, &stray.build()).total(), 0);
        let c = lab.worker.counters();
        assert_eq!(c.drop_count(DropReason::SynProxyPending), 1);

        // The RS's SYN/ACK: the RS gets the ACK, the client nothing.
        let synack = from_rs(seg((RS6, 8080), (from, sport), SYN | ACK, RS_ISN, ISN + 1));
        let out = lab.send(LAN, &synack.build());
        assert_eq!(out.total(), 1, "{out:?}");
        let a = decode6(&out.lan[0]);
        let l4 = a.l4();
        assert_eq!(
            (a.src, l4.sport, a.dst, l4.dport, l4.flags),
            (from, sport, RS6, 8080, ACK)
        );
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
        let (_, s) = lab.worker.sessions6().iter().next().unwrap();
        assert_eq!(s.state, SessionState::Tcp(TcpState::Established));
        assert_eq!(s.data.synproxy(), SynProxy::On);

        // Client data: its ack moves into the RS's space.
        let data =
            client(ACK | PSH, ISN + 1, cookie.wrapping_add(1)).payload(b"GET / HTTP/1.0\r\n\r\n");
        let out = lab.send(WAN, &data.build());
        let d = decode6(&out.lan[0]);
        assert_eq!((d.src, d.dst, d.hop_limit), (from, RS6, 63));
        assert_eq!(d.l4().payload, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));

        // The RS's answer: its seq moves into the cookie's space.
        let answer = from_rs(seg(
            (RS6, 8080),
            (from, sport),
            ACK | PSH,
            RS_ISN + 1,
            ISN + 19,
        ))
        .payload(b"HTTP/1.0 200 OK\r\n\r\nhello");
        let out = lab.send(LAN, &answer.build());
        let d = decode6(&out.wan[0]);
        let l4 = d.l4();
        assert_eq!(
            (d.src, l4.sport, d.dst, l4.dport),
            (VIP6, 80, CLIENT6, CPORT)
        );
        assert_eq!(l4.payload, b"HTTP/1.0 200 OK\r\n\r\nhello");
        assert_eq!(seq_ack(&out.wan[0]), (cookie.wrapping_add(1), ISN + 19));

        // Both FINs.
        let fin = from_rs(seg(
            (RS6, 8080),
            (from, sport),
            FIN | ACK,
            RS_ISN + 25,
            ISN + 19,
        ));
        let out = lab.send(LAN, &fin.build());
        assert_eq!(seq_ack(&out.wan[0]).0, cookie.wrapping_add(25));
        let fin = client(FIN | ACK, ISN + 19, cookie.wrapping_add(26));
        let out = lab.send(WAN, &fin.build());
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 19, RS_ISN + 26));
        let c = lab.worker.counters();
        assert_eq!(
            (
                c.synproxy_cookies(),
                c.synproxy_opened(),
                c.synproxy_joined()
            ),
            (1, 1, 1)
        );
        assert!(c.balanced(), "{mode:?}");
        // The dest counted the session, active once joined.
        let snap = lab.worker.snapshot().clone();
        let si = snap.service_index6(Proto::Tcp, VIP6, 80).unwrap();
        let d = lab
            .worker
            .stats_handle()
            .dest(snap.dest_slot(si, 0))
            .sample();
        assert_eq!(d.conns, 1, "{mode:?}");
    }
}

#[test]
fn ipv6_acks_without_a_valid_cookie_open_nothing() {
    let mut lab = proxied6(ForwardMode::FullNat);
    let free = lab.worker.lip_pool6().unwrap().available();
    let cookie = client_handshake(&mut lab, CPORT);
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 8);
    let bad = [
        client(ACK, ISN + 1, cookie.wrapping_add(1 + 0x1000)),
        client(ACK, ISN + 2, cookie.wrapping_add(1)),
        seg(
            (CLIENT6, CPORT + 1),
            (VIP6, 80),
            ACK,
            ISN + 1,
            cookie.wrapping_add(1),
        ),
        // Another client: the cookie covers the whole address.
        seg(
            (other, CPORT),
            (VIP6, 80),
            ACK,
            ISN + 1,
            cookie.wrapping_add(1),
        ),
        client(ACK, 0, 0),
    ];
    for (i, f) in bad.iter().enumerate() {
        let before = lab.worker.counters().drop_count(DropReason::BadCookie);
        assert_eq!(lab.send(WAN, &f.build()).total(), 0, "case {i}");
        assert_eq!(
            lab.worker.counters().drop_count(DropReason::BadCookie),
            before + 1,
            "case {i}"
        );
    }
    // FIN or RST without a session: nothing to proxy.
    for flags in [FIN | ACK, RST] {
        let f = client(flags, ISN + 1, cookie.wrapping_add(1));
        assert_eq!(lab.send(WAN, &f.build()).total(), 0);
    }
    assert_eq!(lab.worker.counters().drop_count(DropReason::NoSession), 2);
    // Three epochs later the right ACK is stale.
    lab.advance(3 * EPOCH_MS);
    let late = client(ACK, ISN + 1, cookie.wrapping_add(1));
    assert_eq!(lab.send(WAN, &late.build()).total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::BadCookie), 6);
    assert_eq!(lab.worker.sessions6().len(), 0);
    assert_eq!(lab.worker.lip_pool6().unwrap().available(), free);
    assert!(lab.worker.counters().balanced());
}

#[test]
fn a_refusing_ipv6_rs_resets_the_client() {
    let mut lab = proxied6(ForwardMode::FullNat);
    let cookie = client_handshake(&mut lab, CPORT);
    let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1)).build());
    let syn = decode6(&out.lan[0]);
    let rst = from_rs(seg(
        (RS6, 8080),
        (syn.src, syn.l4().sport),
        RST | ACK,
        0,
        ISN + 1,
    ));
    let out = lab.send(LAN, &rst.build());
    assert_eq!(out.total(), 1, "{out:?}");
    let r = decode6(&out.wan[0]);
    let l4 = r.l4();
    assert_eq!(
        (r.src, l4.sport, r.dst, l4.dport, l4.flags),
        (VIP6, 80, CLIENT6, CPORT, RST)
    );
    assert_eq!(
        seq_ack(&out.wan[0]).0,
        cookie.wrapping_add(1),
        "in the client's window"
    );
    let (_, s) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::Close));
}

/// A director whose SYN-proxied [VIP6]:80 goes to the IPv4 RS[0]:8080 (NAT64) from the IPv4
/// LIP1.
fn proxied64() -> Lab {
    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    cfg.interfaces[WAN as usize].addrs6 = vec![Cidr6::new(DIP6_WAN, 64)];
    cfg.routes6 = vec![RouteConfig6 {
        dst: Cidr6::new(Ipv6Addr::UNSPECIFIED, 0),
        via: ROUTER6,
    }];
    cfg.lips = vec![LIP1];
    let mut svc = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    svc.add_dest(dest(0, 8080, 1, ForwardMode::FullNat))
        .unwrap();
    svc.set_synproxy(true).unwrap();
    cfg.services.add(svc).unwrap();
    lab_of(&cfg)
}

/// An IPv4 segment from RS[0]:8080 to LIP1:`lport`, on the LAN.
fn from_rs4(lport: u16, flags: u8, seq: u32, ack: u32) -> testkit::Frame {
    let mut f = tcp_frame((RS[0], 8080), (LIP1, lport), flags, seq, ack).via_rs(0);
    f.dst_mac = LAN_MAC;
    f
}

/// The sequence and acknowledgement numbers of an output IPv4 TCP frame (checksums verified
/// by the decoder).
fn seq_ack4(f: &[u8]) -> (u32, u32) {
    let t = &f[decode(f).l3 + 20..];
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8))
}

/// The MSS option of an output IPv4 TCP frame.
fn mss_of4(f: &[u8]) -> Option<u16> {
    let t = &f[decode(f).l3 + 20..];
    let doff = usize::from(t[12] >> 4) * 4;
    (doff == 24 && t[20] == 2 && t[21] == 4).then(|| u16::from_be_bytes([t[22], t[23]]))
}

/// NAT64 behind the SYN proxy: the client's IPv6 handshake is answered from the VIP, the
/// director's SYN to the IPv4 RS leaves from the IPv4 LIP with the client's ISN and MSS, the
/// RS's IPv4 SYN/ACK joins the halves, and the data crosses the translation with its
/// sequence numbers moved both ways.
#[test]
fn nat64_handshakes_are_proxied_toward_ipv4_servers() {
    let mut lab = proxied64();
    let cookie = client_handshake(&mut lab, CPORT);
    assert_eq!(lab.worker.sessions6().len(), 0, "a SYN leaves no state");
    let free = lab.worker.lip_pool().unwrap().available();

    // The cookie comes back: the RS gets an IPv4 SYN from the LIP.
    let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1)).build());
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let syn = decode(f);
    assert_eq!((syn.dst_mac, syn.src_mac), (rs_mac(0), LAN_MAC));
    assert_eq!(
        (syn.src, syn.dst, syn.dport, syn.flags),
        (LIP1, RS[0], 8080, SYN)
    );
    let lport = syn.sport;
    assert_eq!(seq_ack4(f).0, ISN, "the client's own ISN");
    assert_eq!(
        mss_of4(f),
        Some(1300),
        "the client's MSS, as the cookie kept it"
    );
    assert_eq!(lab.worker.lip_pool().unwrap().available(), free - 1);
    let (_, s) = lab.worker.sessions6().iter().next().unwrap();
    assert!(matches!(s.data.synproxy(), SynProxy::Pending(_)));

    // Data before the RS answered: the SYN goes again; the RS's strays wait.
    let early = client(ACK | PSH, ISN + 1, cookie.wrapping_add(1)).payload(b"early");
    let out = lab.send(WAN, &early.build());
    assert_eq!(decode(&out.lan[0]).flags, SYN, "the SYN again");
    let stray = from_rs4(lport, ACK, RS_ISN, ISN + 1);
    assert_eq!(lab.send(LAN, &stray.build()).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::SynProxyPending), 1);

    // The RS's SYN/ACK: the RS gets the ACK that completes its handshake, the client nothing.
    let out = lab.send(LAN, &from_rs4(lport, SYN | ACK, RS_ISN, ISN + 1).build());
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let a = decode(f);
    assert_eq!(
        (a.src, a.sport, a.dst, a.dport, a.flags),
        (LIP1, lport, RS[0], 8080, ACK)
    );
    assert_eq!(seq_ack4(f), (ISN + 1, RS_ISN + 1));
    let (_, s) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::Established));
    assert_eq!(s.data.synproxy(), SynProxy::On);

    // The client's data: translated, its ack in the RS's space.
    let get = b"GET / HTTP/1.0\r\n\r\n";
    let data = client(ACK | PSH, ISN + 1, cookie.wrapping_add(1)).payload(get);
    let out = lab.send(WAN, &data.build());
    let d = decode(&out.lan[0]);
    assert_eq!(
        (d.src, d.sport, d.dst, d.dport, d.ttl),
        (LIP1, lport, RS[0], 8080, 63)
    );
    assert_eq!(d.payload, get);
    assert_eq!(seq_ack4(&out.lan[0]), (ISN + 1, RS_ISN + 1));

    // The RS's answer: translated to IPv6, its seq in the cookie's space.
    let body = b"HTTP/1.0 200 OK\r\n\r\nhello";
    let answer = from_rs4(lport, ACK | PSH, RS_ISN + 1, ISN + 19).payload(body);
    let out = lab.send(LAN, &answer.build());
    let d = decode6(&out.wan[0]);
    let l4 = d.l4();
    assert_eq!(
        (d.src, l4.sport, d.dst, l4.dport),
        (VIP6, 80, CLIENT6, CPORT)
    );
    assert_eq!(l4.payload, body);
    let at_client = out.wan[0].clone();
    assert_eq!(seq_ack(&at_client), (cookie.wrapping_add(1), ISN + 19));

    // A Packet Too Big about that reply reaches the RS in ICMPv4, quoting the reply with the
    // RS's own sequence number (else its TCP would take the error for out of window).
    let ptb = Icmpv6Repr::PktTooBig {
        mtu: 1280,
        header: smoltcp::wire::Ipv6Repr {
            src_addr: VIP6,
            dst_addr: CLIENT6,
            next_header: smoltcp::wire::IpProtocol::Tcp,
            payload_len: at_client.len() - 54,
            hop_limit: 63,
        },
        data: &at_client[54..at_client.len().min(54 + 64)],
    };
    let frame = icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &ptb);
    let out = lab.send(WAN, &frame);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let e = decode(f);
    assert_eq!((e.src, e.dst, e.proto), (LIP1, RS[0], 1));
    assert_eq!((f[e.l3 + 20], f[e.l3 + 21]), (3, 4), "fragmentation needed");
    let quote = &e.payload[20..];
    let be = |i: usize| u32::from_be_bytes([quote[i], quote[i + 1], quote[i + 2], quote[i + 3]]);
    assert_eq!(be(4), RS_ISN + 1, "the RS's own sequence number");

    // A full-sized reply without DF no longer fits the IPv6 side: cut into IPv6 fragments,
    // the segment's seq moved all the same, its checksum right over the whole datagram.
    let mut big = from_rs4(lport, ACK, RS_ISN + 25, ISN + 19).payload(&[0x5a; 1460]);
    big.df = false;
    let out = lab.send(LAN, &big.build());
    assert!(out.wan.len() >= 2, "fragments: {out:?}");
    let whole = testkit::reassemble6(&out.wan);
    assert_eq!(decode6(&whole).l4().payload, vec![0x5a; 1460]);
    assert_eq!(seq_ack(&whole).0, cookie.wrapping_add(25));

    // Both FINs.
    let fin = from_rs4(lport, FIN | ACK, RS_ISN + 1485, ISN + 19);
    let out = lab.send(LAN, &fin.build());
    assert_eq!(seq_ack(&out.wan[0]).0, cookie.wrapping_add(1485));
    let fin = client(FIN | ACK, ISN + 19, cookie.wrapping_add(1486));
    let out = lab.send(WAN, &fin.build());
    assert_eq!(seq_ack4(&out.lan[0]), (ISN + 19, RS_ISN + 1486));
    let c = lab.worker.counters();
    assert_eq!(
        (
            c.synproxy_cookies(),
            c.synproxy_opened(),
            c.synproxy_joined()
        ),
        (1, 1, 1)
    );
    assert!(c.balanced());

    // A second client whose RS refuses: reset in IPv6 from the VIP, in the client's window.
    let cport = CPORT + 1;
    let cookie = client_handshake(&mut lab, cport);
    let ack = seg(
        (CLIENT6, cport),
        (VIP6, 80),
        ACK,
        ISN + 1,
        cookie.wrapping_add(1),
    );
    let out = lab.send(WAN, &ack.build());
    let lport = decode(&out.lan[0]).sport;
    let out = lab.send(LAN, &from_rs4(lport, RST | ACK, 0, ISN + 1).build());
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    let r = decode6(f);
    let l4 = r.l4();
    assert_eq!(
        (r.src, l4.sport, r.dst, l4.dport, l4.flags),
        (VIP6, 80, CLIENT6, cport, RST)
    );
    assert_eq!(seq_ack(f).0, cookie.wrapping_add(1));
}

/// A spoofed SYN flood against a proxied IPv6 service: each SYN gets its SYN/ACK and nothing
/// else happens — no session, no IPv6 LIP port, not one packet to a real server, and (after
/// the first batch) not one allocation.
#[test]
fn an_ipv6_syn_flood_never_reaches_the_table_or_an_rs() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = proxied6(mode);
        let free = lab.worker.lip_pool6().unwrap().available();
        let n = 10_000u32;
        let (mut answered, mut to_rs, mut allocs) = (0, 0, 0);
        for (c, chunk) in (0..n).collect::<Vec<_>>().chunks(256).enumerate() {
            for &i in chunk {
                let src = Ipv6Addr::from(
                    0x2001_0db8_0bad_0000_0000_0000_0000_0000u128 + u128::from(i) * 7919,
                );
                let f = seg((src, 1024 + (i % 60000) as u16), (VIP6, 80), SYN, i, 0).build();
                assert!(lab.worker.port_mut(WAN).inject(&f));
            }
            let now = lab.now;
            let ((), a) = armed(|| while lab.worker.poll(now) > 0 {});
            if c > 0 {
                allocs += a;
            }
            let out = lab.collect();
            for f in &out.wan {
                let _ = seq_ack(f);
            }
            answered += out.wan.len();
            to_rs += out.lan.len();
        }
        assert_eq!(answered, n as usize, "{mode:?}");
        assert_eq!((to_rs, lab.worker.sessions6().len()), (0, 0), "{mode:?}");
        assert_eq!(allocs, 0, "{mode:?}: the cookies' path allocates nothing");
        assert_eq!(lab.worker.lip_pool6().unwrap().available(), free);
        assert_eq!(lab.worker.counters().synproxy_cookies(), u64::from(n));
        // A real client still gets through.
        let cookie = client_handshake(&mut lab, CPORT);
        let ack = client(ACK, ISN + 1, cookie.wrapping_add(1));
        assert_eq!(lab.send(WAN, &ack.build()).lan.len(), 1);
        assert!(lab.worker.counters().balanced());
    }
}

/// Path-MTU discovery on a proxied IPv6 session: a router's Packet Too Big about the RS's
/// segment as the client's side numbers it reaches the RS quoting the segment as the RS
/// sent it; the RS's error about the director's segment reaches the client in its numbers.
#[test]
fn icmpv6_errors_of_a_proxied_session_quote_each_side_its_own_numbers() {
    let mut lab = proxied6(ForwardMode::FullNat);
    let (cookie, lip, lport) = join(&mut lab);
    let big =
        from_rs(seg((RS6, 8080), (lip, lport), ACK, RS_ISN + 1, ISN + 1)).payload(&[0x42; 1200]);
    let out = lab.send(LAN, &big.build());
    let at_client = out.wan[0].clone();
    assert_eq!(seq_ack(&at_client).0, cookie.wrapping_add(1));
    let ptb = Icmpv6Repr::PktTooBig {
        mtu: 1280,
        header: smoltcp::wire::Ipv6Repr {
            src_addr: VIP6,
            dst_addr: CLIENT6,
            next_header: smoltcp::wire::IpProtocol::Tcp,
            payload_len: at_client.len() - 54,
            hop_limit: 63,
        },
        data: &at_client[54..54 + 64],
    };
    let frame = icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &ptb);
    let s = decode6(lab.send(WAN, &frame).only().1);
    assert_eq!((s.src, s.dst), (lip, RS6));
    match s.icmpv6() {
        Icmpv6Repr::PktTooBig { header, data, .. } => {
            assert_eq!((header.src_addr, header.dst_addr), (RS6, lip));
            let be =
                |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            assert_eq!(
                (be(4), be(8)),
                (RS_ISN + 1, ISN + 1),
                "the RS's own numbers"
            );
        }
        other => panic!("expected packet too big, got {other:?}"),
    }
    // The other way: an error from the RS's side about the client's segment as the RS got
    // it reaches the client quoting the segment as the client sent it.
    let data = client(ACK, ISN + 1, cookie.wrapping_add(1)).payload(&[7; 100]);
    let to_rs = lab.send(WAN, &data.build()).lan[0].clone();
    assert_eq!(seq_ack(&to_rs), (ISN + 1, RS_ISN + 1));
    let unreach = Icmpv6Repr::DstUnreachable {
        reason: smoltcp::wire::Icmpv6DstUnreachable::PortUnreachable,
        header: smoltcp::wire::Ipv6Repr {
            src_addr: lip,
            dst_addr: RS6,
            next_header: smoltcp::wire::IpProtocol::Tcp,
            payload_len: to_rs.len() - 54,
            hop_limit: 63,
        },
        data: &to_rs[54..54 + 64],
    };
    let frame = icmpv6_frame(rs_mac(0), LAN_MAC, (RS6, lip), 64, &unreach);
    let s = decode6(lab.send(LAN, &frame).only().1);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    match s.icmpv6() {
        Icmpv6Repr::DstUnreachable { header, data, .. } => {
            assert_eq!((header.src_addr, header.dst_addr), (CLIENT6, VIP6));
            let be =
                |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            assert_eq!(
                (be(4), be(8)),
                (ISN + 1, cookie.wrapping_add(1)),
                "the client's own numbers"
            );
        }
        other => panic!("expected destination unreachable, got {other:?}"),
    }
    assert_eq!(lab.worker.counters().icmp_relayed(), 2);
}

/// An IPv6 service whose dests include an IPv4 one (NAT64) cannot have the SYN proxy; DR
/// cannot have it whatever the family.
#[test]
fn the_ipv6_syn_proxy_needs_nat66_or_fullnat66_dests() {
    let mut svc = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    svc.add_dest(Dest {
        addr: RS6.into(),
        port: 80,
        weight: 1,
        mode: ForwardMode::Dr,
    })
    .unwrap();
    assert!(svc.set_synproxy(true).is_err(), "DR dests refuse it");
}

/// A fresh director that has not resolved the router or the RS yet: the SYN/ACK waits for
/// the router's advertisement, the SYN to the RS for the RS's, and both leave then.
#[test]
fn the_proxys_segments_wait_for_neighbour_discovery() {
    use smoltcp::wire::{NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
    let mut lab = Lab::new(&proxied_config6(ForwardMode::FullNat));
    let advert = |from: Ipv6Addr, mac: [u8; 6], to_mac: [u8; 6], dip: Ipv6Addr| {
        icmpv6_frame(
            mac,
            to_mac,
            (from, dip),
            255,
            &Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                target_addr: from,
                lladdr: Some(RawHardwareAddress::from_bytes(&mac)),
            }),
        )
    };
    let out = lab.send(WAN, &client_syn(CPORT));
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    assert!(
        matches!(decode6(f).icmpv6(), Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) if target_addr == ROUTER6)
    );
    // (The advertisement is copied to the kernel too.)
    let out = lab.send(WAN, &advert(ROUTER6, ROUTER_MAC, WAN_MAC, DIP6_WAN));
    assert_eq!(out.wan.len(), 1, "{out:?}");
    let f = &out.wan[0];
    let cookie = seq_ack(f).0;
    assert_eq!(decode6(f).l4().flags, SYN | ACK);
    let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1)).build());
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert!(
        matches!(decode6(f).icmpv6(), Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) if target_addr == RS6)
    );
    let out = lab.send(LAN, &advert(RS6, rs_mac(0), LAN_MAC, DIP6_LAN));
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    assert_eq!(decode6(f).l4().flags, SYN);
}
