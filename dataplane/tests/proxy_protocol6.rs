//! The PROXY protocol and TOA for IPv6 services end to end through the worker, as
//! `proxy_protocol.rs` does it for IPv4, every output frame decoded and its checksums
//! verified independently (smoltcp): the `TCP6` / `AF_INET6` header goes into the client's
//! first data in FullNAT66 and NAT66, and in NAT64 into the translated IPv4 segment (still
//! naming the IPv6 client and VIP); again into a retransmission of it, never once the RS has
//! acknowledged it; the rest of the session shifted both ways (acknowledgements and SACK
//! blocks too); a full-sized first segment gets the header as a segment of its own; with
//! the SYN proxy on FullNAT66 both shifts apply; a UDP flow gets the v2 header once; TOA
//! (kind 254, length 20) names the IPv6 client in the first segments. The expected headers
//! are written out here byte by byte, not by the code under test.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::counters::Counter;
use dataplane::worker::Phase;
use sched::{Dest, ForwardMode, ProxyProtocol, SchedKind, Service};
use smoltcp::wire::{IpAddress, TcpPacket};
use std::net::{Ipv4Addr, Ipv6Addr};
use testkit::{icmp_error_frame, icmpv6_frame, Frame, Frame6, L4Spec, ACK, FIN, PSH, SYN};

const ISN: u32 = 0x1111_0000;
const RS_ISN: u32 = 0x7777_0000;
const CPORT: u16 = 40000;

/// What a service tells its RS.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tell {
    Proxy(ProxyProtocol),
    Toa,
}

/// A director with IPv6 DIPs, LIPs of both families, and the service [VIP6]:`port`/`proto`
/// toward `dest` (an IPv6 RS, or an IPv4 one: NAT64) telling it `tell`, the SYN proxy on
/// if `synproxy`.
fn lab6(proto: Proto, port: u16, dest: Dest, tell: Tell, synproxy: bool) -> Lab {
    let mut cfg = config_with_ipv6();
    cfg.lips6 = vec![LIP6];
    let mut svc = Service::new(key6(proto, port), SchedKind::Rr).unwrap();
    svc.add_dest(dest).unwrap();
    match tell {
        Tell::Proxy(v) => svc.set_proxy_protocol(Some(v)).unwrap(),
        Tell::Toa => svc.set_toa(true).unwrap(),
    }
    svc.set_synproxy(synproxy).unwrap();
    cfg.services.add(svc).unwrap();
    let mut lab = Lab::new(&cfg);
    know_ipv6_neighbours(&mut lab);
    lab
}

fn dest6(mode: ForwardMode, port: u16) -> Dest {
    Dest {
        addr: RS6[0].into(),
        port,
        weight: 1,
        mode,
    }
}

/// The v2 header the RS must see for the IPv6 client at `cport` of [VIP6]:`vport`
/// (`proto_byte`: 0x21 STREAM, 0x22 DGRAM), written from the specification.
fn v2(proto_byte: u8, cport: u16, vport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, proto_byte, 0, 36]);
    h.extend_from_slice(&CLIENT6.octets());
    h.extend_from_slice(&VIP6.octets());
    h.extend_from_slice(&cport.to_be_bytes());
    h.extend_from_slice(&vport.to_be_bytes());
    assert_eq!(h.len(), 52);
    h
}

/// The v1 line for the client at `cport` (the test's addresses as RFC 5952 writes them).
fn v1(cport: u16) -> Vec<u8> {
    assert_eq!(CLIENT6, "2001:db8:99::7".parse::<Ipv6Addr>().unwrap());
    assert_eq!(VIP6, "2001:db8:2::100".parse::<Ipv6Addr>().unwrap());
    format!("PROXY TCP6 2001:db8:99::7 2001:db8:2::100 {cport} 80\r\n").into_bytes()
}

fn header(tell: Tell) -> Vec<u8> {
    match tell {
        Tell::Proxy(ProxyProtocol::V2) => v2(0x21, CPORT, 80),
        Tell::Proxy(ProxyProtocol::V1) => v1(CPORT),
        Tell::Toa => Vec::new(),
    }
}

/// A TCP segment of the IPv6 client to the VIP.
fn client(flags: u8, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    let mut f = Frame6::tcp(CLIENT6, CPORT, VIP6, 80, flags).payload(data);
    f.l4 = L4Spec::Tcp {
        sport: CPORT,
        dport: 80,
        flags,
        seq,
        ack,
    };
    f.build()
}

/// `frame` (untagged Ethernet/IPv6/TCP without options) with the TCP options `opts` (a
/// multiple of 4 bytes) after its TCP header; lengths and checksum made right.
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

/// The RS's side of a session as it sees it: its own address and the peer (LIP or client)
/// it talks to, of either family.
#[derive(Clone, Copy, Debug)]
enum Side {
    V6(Ipv6Addr, u16),
    V4(Ipv4Addr, u16),
}

/// An output TCP segment toward the RS, decoded and its checksums verified: (source,
/// sequence, acknowledgement, TCP header bytes, payload).
struct Seg {
    side: Side,
    dport: u16,
    seq: u32,
    ack: u32,
    tcp_header: Vec<u8>,
    payload: Vec<u8>,
}

fn seg(f: &[u8]) -> Seg {
    let be = |t: &[u8], i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    if f[12..14] == [0x86, 0xdd] {
        let s = decode6(f);
        let l4 = s.l4();
        let t = &s.payload;
        let doff = usize::from(t[12] >> 4) * 4;
        Seg {
            side: Side::V6(s.src, l4.sport),
            dport: l4.dport,
            seq: be(t, 4),
            ack: be(t, 8),
            tcp_header: t[..doff].to_vec(),
            payload: l4.payload,
        }
    } else {
        let s = decode(f);
        let t = &f[s.l3 + 20..];
        let doff = usize::from(t[12] >> 4) * 4;
        Seg {
            side: Side::V4(s.src, s.sport),
            dport: s.dport,
            seq: be(t, 4),
            ack: be(t, 8),
            tcp_header: t[..doff].to_vec(),
            payload: s.payload,
        }
    }
}

/// A segment of the RS to `side`, with TCP options `opts`.
fn from_rs(side: Side, flags: u8, (seq, ack): (u32, u32), data: &[u8], opts: &[u8]) -> Vec<u8> {
    let spec = |sport, dport| L4Spec::Tcp {
        sport,
        dport,
        flags,
        seq,
        ack,
    };
    match side {
        Side::V6(to, port) => {
            let mut f = Frame6::tcp(RS6[0], 8080, to, port, flags).payload(data);
            f.l4 = spec(8080, port);
            f.dst_mac = LAN_MAC;
            f.src_mac = testkit::rs_mac(0);
            let f = f.build();
            if opts.is_empty() {
                f
            } else {
                with_options6(&f, opts)
            }
        }
        Side::V4(to, port) => {
            assert!(opts.is_empty());
            let mut f = Frame::tcp(RS[0], 8080, to, port, flags).payload(data);
            f.l4 = spec(8080, port);
            let mut f = f.via_rs(0);
            f.dst_mac = LAN_MAC;
            f.build()
        }
    }
}

/// The client's view of a segment the director sends it: (sequence, acknowledgement, its
/// TCP bytes), checksums verified.
fn to_client(f: &[u8]) -> (u32, u32, Vec<u8>) {
    let s = decode6(f);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport), (80, CPORT));
    let t = &s.payload;
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8), t.clone())
}

/// The client's handshake through the director (no SYN proxy): returns the RS's side.
fn handshake(lab: &mut Lab) -> Side {
    let out = lab.send(WAN, &client(SYN, ISN, 0, b""));
    assert_eq!(out.lan.len(), 1, "{out:?}");
    let syn = seg(&out.lan[0]);
    assert_eq!(syn.seq, ISN, "the SYN is not shifted");
    assert!(syn.payload.is_empty());
    let side = syn.side;
    let out = lab.send(LAN, &from_rs(side, SYN | ACK, (RS_ISN, ISN + 1), b"", &[]));
    let (seq, ack, _) = to_client(&out.wan[0]);
    assert_eq!((seq, ack), (RS_ISN, ISN + 1), "no header yet");
    side
}

fn phase(lab: &Lab) -> Phase {
    let (_, s) = lab.worker.sessions6().iter().next().expect("a session");
    s.data.preamble().phase()
}

fn count(lab: &Lab, c: Counter) -> u64 {
    lab.worker.counters().get(c)
}

/// The destinations that take a header: FullNAT66, NAT66 and NAT64 (an IPv4 RS).
fn routed_dests() -> [(&'static str, Dest); 3] {
    [
        ("FullNAT66", dest6(ForwardMode::FullNat, 8080)),
        ("NAT66", dest6(ForwardMode::Nat, 8080)),
        ("NAT64", dest(0, 8080, 1, ForwardMode::FullNat)),
    ]
}

/// The whole life of a header, v2 and v1, in each mode: the client's bare ACK moved after
/// the header's place; the header in front of the first data at the first byte, in the RS's
/// family; an acknowledgement within the header leaves the client's data unacknowledged;
/// the retransmission carries it again; the RS's acknowledgement of all of it comes back
/// moved, with its SACK blocks; afterwards segments move and never carry it again.
#[test]
fn the_header_goes_ahead_of_the_first_data_and_the_session_shifts_both_ways() {
    for version in [ProxyProtocol::V2, ProxyProtocol::V1] {
        for (mode, dest) in routed_dests() {
            let what = format!("{mode} {version:?}");
            let tell = Tell::Proxy(version);
            let mut lab = lab6(Proto::Tcp, 80, dest, tell, false);
            let side = handshake(&mut lab);
            match (mode, side) {
                ("NAT64", Side::V4(lip, _)) => assert_eq!(lip, LIP1),
                ("FullNAT66", Side::V6(lip, _)) => assert_eq!(lip, LIP6),
                ("NAT66", Side::V6(c, p)) => assert_eq!((c, p), (CLIENT6, CPORT)),
                _ => panic!("{what}: {side:?}"),
            }
            let h = header(tell);
            let n = h.len() as u32;
            let out = lab.send(WAN, &client(ACK, ISN + 1, RS_ISN + 1, b""));
            let s = seg(&out.lan[0]);
            assert_eq!((s.seq, s.ack), (ISN + 1 + n, RS_ISN + 1), "{what}");
            assert!(s.payload.is_empty());
            assert_eq!(phase(&lab), Phase::Pending);

            let get = b"GET / HTTP/1.1\r\nHost: v6\r\n\r\n";
            let out = lab.send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get));
            let s = seg(&out.lan[0]);
            assert_eq!(s.payload, [&h[..], get].concat(), "{what}");
            assert_eq!((s.seq, s.ack, s.dport), (ISN + 1, RS_ISN + 1, 8080));
            assert_eq!(phase(&lab), Phase::Sent);

            let out = lab.send(LAN, &from_rs(side, ACK, (RS_ISN + 1, ISN + 11), b"", &[]));
            assert_eq!(
                to_client(&out.wan[0]).1,
                ISN + 1,
                "{what}: within the header"
            );

            let out = lab.send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get));
            assert_eq!(seg(&out.lan[0]).payload, [&h[..], get].concat(), "{what}");
            assert_eq!(count(&lab, Counter::ProxyHeadersResent), 1);

            let acked = ISN + 1 + n + get.len() as u32;
            let answer = b"HTTP/1.1 200 OK\r\n\r\n";
            let reply = from_rs(side, ACK | PSH, (RS_ISN + 1, acked), answer, &[]);
            let out = lab.send(LAN, &reply);
            let (seq, ack, t) = to_client(&out.wan[0]);
            assert_eq!(
                (seq, ack),
                (RS_ISN + 1, ISN + 1 + get.len() as u32),
                "{what}"
            );
            assert!(t.ends_with(answer));
            assert_eq!(phase(&lab), Phase::Done);

            let next = ISN + 1 + get.len() as u32;
            let ack_back = RS_ISN + 1 + answer.len() as u32;
            let out = lab.send(WAN, &client(ACK | PSH, next, ack_back, b"more"));
            let s = seg(&out.lan[0]);
            assert_eq!(
                (s.seq, s.ack, s.payload.as_slice()),
                (next + n, ack_back, &b"more"[..])
            );
            let out = lab.send(WAN, &client(ACK | PSH, ISN + 1, ack_back, get));
            let s = seg(&out.lan[0]);
            assert_eq!(
                (s.seq, s.payload.as_slice()),
                (ISN + 1 + n, &get[..]),
                "{what}"
            );
            assert_eq!(
                (
                    count(&lab, Counter::ProxyHeadersSent),
                    count(&lab, Counter::ProxyHeadersAcked)
                ),
                (1, 1),
                "{what}"
            );
            if let Side::V6(..) = side {
                // SACK blocks (kind 5) move back like the acknowledgement.
                let left = acked + 4 + 100;
                let mut sack = vec![1, 1, 5, 10];
                sack.extend_from_slice(&left.to_be_bytes());
                sack.extend_from_slice(&(left + 50).to_be_bytes());
                let r = from_rs(side, ACK, (ack_back, acked + 4), b"", &sack);
                let (_, ack, t) = to_client(&lab.send(LAN, &r).wan[0]);
                assert_eq!(ack, next + 4);
                let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
                assert_eq!((be(24), be(28)), (left - n, left + 50 - n), "{what}");
            }
        }
    }
}

/// A first segment that fills the MTU gets the header as a segment of its own, just before
/// it, in the RS's family; the data follows moved by the header.
#[test]
fn a_full_sized_first_segment_gets_the_header_alone() {
    for (mode, dest) in routed_dests() {
        let tell = Tell::Proxy(ProxyProtocol::V2);
        let mut lab = lab6(Proto::Tcp, 80, dest, tell, false);
        handshake(&mut lab);
        // 1500 bytes of IPv6 (as NAT64's IPv4, 20 fewer): no room for 52 more.
        let full = vec![0x42; 1500 - 40 - 20];
        let out = lab.send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, &full));
        assert_eq!(out.lan.len(), 2, "{mode}: {out:?}");
        let (alone, data) = (seg(&out.lan[0]), seg(&out.lan[1]));
        assert_eq!(alone.payload, v2(0x21, CPORT, 80), "{mode}");
        assert_eq!((alone.seq, alone.ack), (ISN + 1, RS_ISN + 1));
        assert_eq!(alone.tcp_header[13], ACK | PSH);
        assert_eq!(
            (data.seq, data.payload),
            (ISN + 1 + 52, full.clone()),
            "{mode}"
        );
        assert_eq!(count(&lab, Counter::ProxyHeaderSegments), 1);
        assert_eq!(phase(&lab), Phase::Sent);
    }
}

/// A FIN without data carries the header.
#[test]
fn a_fin_without_data_carries_the_header() {
    for (mode, dest) in routed_dests() {
        let tell = Tell::Proxy(ProxyProtocol::V1);
        let mut lab = lab6(Proto::Tcp, 80, dest, tell, false);
        handshake(&mut lab);
        let out = lab.send(WAN, &client(ACK | FIN, ISN + 1, RS_ISN + 1, b""));
        let s = seg(&out.lan[0]);
        assert_eq!((s.seq, s.payload), (ISN + 1, v1(CPORT)), "{mode}");
        assert_ne!(s.tcp_header[13] & FIN, 0);
    }
}

/// With the SYN proxy on FullNAT66, NAT66 and NAT64 (the RS's handshake in IPv4 there): the
/// header goes ahead of the first data once both halves are joined, the client's
/// acknowledgements move into the RS's space by the proxy's shift, and the RS's segments come
/// back moved by both.
#[test]
fn with_the_synproxy_both_shifts_apply() {
    for (mode, d) in routed_dests() {
        let tell = Tell::Proxy(ProxyProtocol::V2);
        let mut lab = lab6(Proto::Tcp, 80, d, tell, true);
        let out = lab.send(WAN, &client(SYN, ISN, 0, b""));
        assert!(out.lan.is_empty(), "answered by the director");
        let (cookie, ack, _) = to_client(&out.wan[0]);
        assert_eq!(ack, ISN + 1);
        let out = lab.send(WAN, &client(ACK, ISN + 1, cookie.wrapping_add(1), b""));
        let syn = seg(&out.lan[0]);
        assert_eq!(syn.seq, ISN, "{mode}: the client's SYN, unshifted");
        let side = syn.side;
        let out = lab.send(LAN, &from_rs(side, SYN | ACK, (RS_ISN, ISN + 1), b"", &[]));
        let s = seg(&out.lan[0]);
        assert_eq!((s.seq, s.ack), (ISN + 1, RS_ISN + 1), "the director's ACK");
        assert!(s.payload.is_empty());

        let get = b"GET / HTTP/1.1\r\n\r\n";
        let data = client(ACK | PSH, ISN + 1, cookie.wrapping_add(1), get);
        let s = seg(&lab.send(WAN, &data).lan[0]);
        assert_eq!(
            s.payload,
            [&v2(0x21, CPORT, 80)[..], get].concat(),
            "{mode}"
        );
        assert_eq!((s.seq, s.ack), (ISN + 1, RS_ISN + 1));

        let acked = ISN + 1 + 52 + get.len() as u32;
        let reply = from_rs(
            side,
            ACK | PSH,
            (RS_ISN + 1, acked),
            b"HTTP/1.1 200 OK",
            &[],
        );
        let (seq, ack, _) = to_client(&lab.send(LAN, &reply).wan[0]);
        assert_eq!(
            (seq, ack),
            (cookie.wrapping_add(1), ISN + 1 + get.len() as u32),
            "{mode}: the cookie's space and the client's own"
        );
        assert_eq!(phase(&lab), Phase::Done);
        let more = client(ACK | PSH, ISN + 1 + get.len() as u32, cookie + 16, b"x");
        let s = seg(&lab.send(WAN, &more).lan[0]);
        assert_eq!((s.seq, s.ack), (acked, RS_ISN + 16), "{mode}");
    }
}

/// The TOA option for an IPv6 client in an output TCP frame: (address, port).
fn toa6_of(s: &Seg) -> Option<(Ipv6Addr, u16)> {
    let t = &s.tcp_header;
    let mut i = 20;
    while i < t.len() {
        match t[i] {
            0 => break,
            1 => i += 1,
            254 if t[i + 1] == 20 => {
                let port = u16::from_be_bytes([t[i + 2], t[i + 3]]);
                let mut a = [0u8; 16];
                a.copy_from_slice(&t[i + 4..i + 20]);
                return Some((Ipv6Addr::from(a), port));
            }
            _ => i += usize::from(t[i + 1].max(2)),
        }
    }
    None
}

/// TOA: option 254 of length 20 with the IPv6 client's port and address in the handshake's
/// ACK and the first data toward the RS (IPv6 in FullNAT66, the translated IPv4 segment in
/// NAT64), nothing moved; none once the RS has acknowledged data.
#[test]
fn toa_names_the_ipv6_client_in_the_first_segments() {
    for (mode, dest) in routed_dests() {
        let mut lab = lab6(Proto::Tcp, 80, dest, Tell::Toa, false);
        let side = handshake(&mut lab);
        let s = seg(&lab.send(WAN, &client(ACK, ISN + 1, RS_ISN + 1, b"")).lan[0]);
        assert_eq!(toa6_of(&s), Some((CLIENT6, CPORT)), "{mode}");
        assert_eq!((s.seq, s.ack), (ISN + 1, RS_ISN + 1), "no shift");
        assert_eq!(s.tcp_header.len(), 40);
        let get = b"GET / HTTP/1.1\r\n\r\n";
        let s = seg(&lab
            .send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get))
            .lan[0]);
        assert_eq!(toa6_of(&s), Some((CLIENT6, CPORT)), "{mode}");
        assert_eq!(s.payload, get);
        let acked = ISN + 1 + get.len() as u32;
        let out = lab.send(LAN, &from_rs(side, ACK, (RS_ISN + 1, acked), b"", &[]));
        assert_eq!(to_client(&out.wan[0]).1, acked, "{mode}: passes as it is");
        let s = seg(&lab
            .send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get))
            .lan[0]);
        assert_eq!(toa6_of(&s), None, "{mode}: the RS has it");
        let s = seg(&lab
            .send(WAN, &client(ACK | PSH, acked, RS_ISN + 1, b"more"))
            .lan[0]);
        assert_eq!((toa6_of(&s), s.tcp_header.len()), (None, 20));
        assert_eq!(count(&lab, Counter::ToaInserted), 2, "{mode}");
    }
    // A first segment whose options leave no room for 20 bytes: sent without, counted.
    let mut lab = lab6(
        Proto::Tcp,
        80,
        dest6(ForwardMode::FullNat, 8080),
        Tell::Toa,
        false,
    );
    handshake(&mut lab);
    let full = with_options6(&client(ACK | PSH, ISN + 1, RS_ISN + 1, b"x"), &[1; 24]);
    let s = seg(&lab.send(WAN, &full).lan[0]);
    assert_eq!((toa6_of(&s), s.payload.as_slice()), (None, &b"x"[..]));
    assert_eq!(count(&lab, Counter::ToaNoRoom), 1);
}

/// UDP with v2: the `AF_INET6` / `DGRAM` header in front of the first datagram of a flow
/// only (FullNAT66 and NAT64), the replies untouched; a first datagram the header would make
/// too big is dropped with a Packet Too Big naming the room left, and the next one carries
/// it.
#[test]
fn ipv6_udp_flows_get_a_v2_header_once() {
    let dests = [
        ("FullNAT66", dest6(ForwardMode::FullNat, 53)),
        ("NAT64", dest(0, 53, 1, ForwardMode::FullNat)),
    ];
    for (mode, dest) in dests {
        let mut lab = lab6(Proto::Udp, 53, dest, Tell::Proxy(ProxyProtocol::V2), false);
        let q = |cport, data: &[u8]| Frame6::udp(CLIENT6, cport, VIP6, 53).payload(data).build();
        let out = lab.send(WAN, &q(5353, b"query-1"));
        let (to, payload) = udp_out(&out.lan[0]);
        assert_eq!(
            payload,
            [&v2(0x22, 5353, 53)[..], b"query-1"].concat(),
            "{mode}"
        );
        assert_eq!(phase(&lab), Phase::Done);
        let out = lab.send(WAN, &q(5353, b"query-2"));
        assert_eq!(udp_out(&out.lan[0]).1, b"query-2", "{mode}: once per flow");
        let reply = match to {
            Side::V6(from, port) => {
                let mut f = Frame6::udp(RS6[0], 53, from, port).payload(b"answer");
                f.dst_mac = LAN_MAC;
                f.src_mac = testkit::rs_mac(0);
                f.build()
            }
            Side::V4(from, port) => {
                let mut f = Frame::udp(RS[0], 53, from, port)
                    .payload(b"answer")
                    .via_rs(0);
                f.dst_mac = LAN_MAC;
                f.build()
            }
        };
        let out = lab.send(LAN, &reply);
        let r = decode6(&out.wan[0]);
        let l4 = r.l4();
        assert_eq!(
            (r.src, l4.dport, l4.payload.as_slice()),
            (VIP6, 5353, &b"answer"[..])
        );

        // A flow whose first datagram fills the MTU as it leaves (NAT64's as IPv4: 20
        // bytes shorter than the client's IPv6 datagram).
        let fill = match mode {
            "NAT64" => 1500 - 20 - 8,
            _ => 1500 - 40 - 8,
        };
        let out = lab.send(WAN, &q(5354, &vec![9; fill]));
        assert!(out.lan.is_empty(), "{mode}: {out:?}");
        let e = decode6(&out.wan[0]);
        assert_eq!(e.dst, CLIENT6);
        let m = &e.payload;
        assert_eq!(m[0], 2, "Packet Too Big");
        let room = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
        let want = match mode {
            "NAT64" => 1500 - 52 + 20,
            _ => 1500 - 52,
        };
        assert_eq!(room, want, "{mode}: the room the header leaves");
        let out = lab.send(WAN, &q(5354, b"small"));
        assert_eq!(
            udp_out(&out.lan[0]).1,
            [&v2(0x22, 5354, 53)[..], b"small"].concat()
        );
    }
}

/// A datagram toward the RS: where it comes from and its payload, checksums verified.
fn udp_out(f: &[u8]) -> (Side, Vec<u8>) {
    if f[12..14] == [0x86, 0xdd] {
        let s = decode6(f);
        let l4 = s.l4();
        assert_eq!(s.dst, RS6[0]);
        (Side::V6(s.src, l4.sport), l4.payload)
    } else {
        let s = decode(f);
        assert_eq!(s.dst, RS[0]);
        (Side::V4(s.src, s.sport), s.payload)
    }
}

/// A service without a header or TOA forwards its IPv6 segments as they are.
#[test]
fn a_service_without_it_is_unchanged() {
    let mut cfg = config_with_ipv6();
    cfg.lips6 = vec![LIP6];
    let mut svc = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    svc.add_dest(dest6(ForwardMode::FullNat, 8080)).unwrap();
    cfg.services.add(svc).unwrap();
    let mut lab = Lab::new(&cfg);
    know_ipv6_neighbours(&mut lab);
    handshake(&mut lab);
    let get = b"GET / HTTP/1.1\r\n\r\n";
    let s = seg(&lab
        .send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get))
        .lan[0]);
    assert_eq!((s.seq, s.payload.as_slice()), (ISN + 1, &get[..]));
    assert_eq!(s.tcp_header.len(), 20);
    let (_, sess) = lab.worker.sessions6().iter().next().unwrap();
    assert_eq!(sess.data.preamble().carrier(), None);
}

/// An ICMP error about a segment that went toward the RS with the header (Packet Too Big in
/// FullNAT66, fragmentation needed in NAT64) reaches the client quoting its own segment in
/// its own numbers: the first data byte, not the header's place.
#[test]
fn an_error_quoting_a_shifted_segment_reaches_the_client_in_its_numbers() {
    use smoltcp::wire::{Icmpv6Repr, IpProtocol, Ipv6Repr};
    for (mode, dest) in [routed_dests()[0], routed_dests()[2]] {
        let mut lab = lab6(Proto::Tcp, 80, dest, Tell::Proxy(ProxyProtocol::V2), false);
        let side = handshake(&mut lab);
        let get = b"GET / HTTP/1.1\r\n\r\n";
        lab.send(WAN, &client(ACK | PSH, ISN + 1, RS_ISN + 1, get));
        // The next segment, shifted by the header.
        let next = ISN + 1 + get.len() as u32;
        let sent = lab
            .send(WAN, &client(ACK | PSH, next, RS_ISN + 1, b"more"))
            .lan[0]
            .clone();
        assert_eq!(seg(&sent).seq, next + 52);
        let error = match side {
            Side::V6(lip, _) => {
                let ptb = Icmpv6Repr::PktTooBig {
                    mtu: 1400,
                    header: Ipv6Repr {
                        src_addr: lip,
                        dst_addr: RS6[0],
                        next_header: IpProtocol::Tcp,
                        payload_len: sent.len() - 54,
                        hop_limit: 63,
                    },
                    data: &sent[54..54 + 24],
                };
                icmpv6_frame(ROUTER_MAC, LAN_MAC, (DIP6_LAN, lip), 64, &ptb)
            }
            Side::V4(lip, _) => icmp_error_frame(
                (ROUTER_MAC, LAN_MAC),
                DIP_LAN,
                lip,
                (3, 4, 1400),
                &sent[14..],
            ),
        };
        let out = lab.send(LAN, &error);
        let s = decode6(&out.wan[0]);
        assert_eq!((s.src, s.dst), (VIP6, CLIENT6), "{mode}");
        match s.icmpv6() {
            Icmpv6Repr::PktTooBig { header, data, .. } => {
                assert_eq!((header.src_addr, header.dst_addr), (CLIENT6, VIP6));
                let be =
                    |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                assert_eq!(
                    (be(4), be(8)),
                    (next, RS_ISN + 1),
                    "{mode}: the client's own numbers"
                );
            }
            other => panic!("{mode}: expected packet too big, got {other:?}"),
        }
    }
}

/// A fragment of the client's first data, while the header is still to go, is dropped
/// (`fragment`): the header cannot go into it. Whole, the next try carries the header.
#[test]
fn no_header_goes_into_an_ipv6_fragment() {
    for (mode, d) in routed_dests() {
        let mut lab = lab6(Proto::Tcp, 80, d, Tell::Proxy(ProxyProtocol::V2), false);
        let side = handshake(&mut lab);
        let data = client(ACK | PSH, ISN + 1, RS_ISN + 1, &[5; 1000]);
        for f in testkit::fragment6(&data, 600, 77) {
            assert!(lab.send(WAN, &f).lan.is_empty(), "{mode}");
        }
        let c = lab.worker.counters();
        assert!(c.drop_count(dataplane::DropReason::Fragment) >= 1, "{mode}");
        assert_eq!(count(&lab, Counter::ProxyHeadersSent), 0, "{mode}");
        assert_eq!(phase(&lab), Phase::Pending, "{mode}");
        let s = seg(&lab.send(WAN, &data).lan[0]);
        assert_eq!(
            s.payload,
            [&v2(0x21, CPORT, 80)[..], &[5; 1000][..]].concat(),
            "{mode}"
        );
        // Once the RS has acknowledged the header, a fragmented segment goes through, its
        // first fragment's seq moved past the header.
        let acked = ISN + 1 + 52 + 1000;
        let ack = from_rs(side, ACK, (RS_ISN + 1, acked), b"", &[]);
        assert_eq!(lab.send(LAN, &ack).wan.len(), 1, "{mode}");
        assert_eq!(phase(&lab), Phase::Done, "{mode}");
        let more = client(ACK | PSH, ISN + 1001, RS_ISN + 1, &[6; 1000]);
        let out: Vec<Vec<u8>> = testkit::fragment6(&more, 600, 78)
            .iter()
            .flat_map(|f| lab.send(WAN, f).lan)
            .collect();
        assert!(out.len() >= 2, "{mode}: {out:?}");
        let first = &out[0];
        let tcp = if first[12..14] == [0x86, 0xdd] {
            &first[54 + 8..]
        } else {
            &first[14 + 20..]
        };
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        assert_eq!(seq, ISN + 1001 + 52, "{mode}");
    }
}
