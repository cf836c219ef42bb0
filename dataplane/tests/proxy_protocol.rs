//! The PROXY protocol header end to end through the worker, every output frame decoded and
//! its checksums verified independently (smoltcp): the header goes into the client's first
//! data (v2 and v1, FullNAT and NAT), again into a retransmission of it, never once the RS
//! has acknowledged it; the rest of the session is shifted both ways (acknowledgements and
//! SACK blocks too); a first segment with no room under the MTU gets the header as a segment
//! of its own; a FIN without data carries it; ICMP errors quoting a shifted segment are moved
//! back; and a service without the header forwards exactly as before.

mod common;

use common::tcp_frame as tcp;
use common::*;
use conntrack::Proto;
use dataplane::counters::Counter;
use dataplane::icmp;
use dataplane::proxy_protocol::{self, Ends};
use dataplane::worker::Phase;
use sched::{ForwardMode, ProxyProtocol, SchedKind, ServiceKey};
use std::net::Ipv4Addr;

const ISN: u32 = 0x1111_0000;
const RS_ISN: u32 = 0x7777_0000;
const CPORT: u16 = 40000;

/// A director with one service on VIP:`port`/`proto` (dest rs0:`rport` in `mode`), the
/// service changed by `edit`.
fn lab_with(
    (proto, port, rport): (Proto, u16, u16),
    mode: ForwardMode,
    edit: impl FnOnce(&mut sched::Service),
) -> Lab {
    let mut cfg = config(proto, port, SchedKind::Rr, &[dest(0, rport, 1, mode)]);
    let key = ServiceKey {
        proto,
        vip: VIP.into(),
        port,
    };
    edit(cfg.services.get_mut(&key).unwrap());
    Lab::new(&cfg)
}

fn lab(mode: ForwardMode, version: Option<ProxyProtocol>) -> Lab {
    lab_with((Proto::Tcp, 80, 8080), mode, |s| {
        s.set_proxy_protocol(version).unwrap()
    })
}

/// The header the RS must see for the client at `cport`.
fn header(version: ProxyProtocol, cport: u16) -> Vec<u8> {
    let ends = Ends {
        client: (CIP, cport),
        vip: (VIP, 80),
    };
    let mut out = [0u8; proxy_protocol::MAX_LEN];
    let n = proxy_protocol::write(version, &ends, &mut out);
    out[..n].to_vec()
}

/// The sequence and acknowledgement numbers of an output TCP frame.
fn seq_ack(f: &[u8]) -> (u32, u32) {
    let t = &f[decode(f).l3 + 20..];
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8))
}

/// The client's handshake through the director: returns the RS's view of the client's
/// side (source address and port).
fn handshake(lab: &mut Lab) -> (Ipv4Addr, u16) {
    let out = lab.send(WAN, &tcp((CIP, CPORT), (VIP, 80), SYN, ISN, 0).build());
    assert_eq!(out.lan.len(), 1, "{out:?}");
    let syn = decode(&out.lan[0]);
    assert_eq!(seq_ack(&out.lan[0]).0, ISN, "the SYN is not shifted");
    let synack = tcp(
        (RS[0], 8080),
        (syn.src, syn.sport),
        SYN | ACK,
        RS_ISN,
        ISN + 1,
    )
    .via_rs(0);
    let out = lab.send(LAN, &synack.build());
    assert_eq!(
        seq_ack(&out.wan[0]),
        (RS_ISN, ISN + 1),
        "the SYN/ACK acknowledges the SYN: no header yet"
    );
    (syn.src, syn.sport)
}

fn from_client(flags: u8, seq: u32, data: &[u8]) -> Vec<u8> {
    tcp((CIP, CPORT), (VIP, 80), flags, seq, RS_ISN + 1)
        .payload(data)
        .build()
}

fn from_rs(side: (Ipv4Addr, u16), ack: u32) -> Frame {
    tcp((RS[0], 8080), side, ACK, RS_ISN + 1, ack).via_rs(0)
}

fn phase(lab: &Lab) -> Phase {
    let (_, s) = lab.worker.sessions().iter().next().expect("a session");
    s.data.preamble.phase()
}

fn count(lab: &Lab, c: Counter) -> u64 {
    lab.worker.counters().get(c)
}

#[test]
fn v2_goes_ahead_of_the_first_data_again_on_retransmission_and_the_rest_shifts() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = lab(mode, Some(ProxyProtocol::V2));
        let side = handshake(&mut lab);
        let h = header(ProxyProtocol::V2, CPORT);
        let n = h.len() as u32;
        assert_eq!(n, 28);
        // The client's ACK without data: moved after the header's place.
        let out = lab.send(WAN, &from_client(ACK, ISN + 1, b""));
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1 + n, RS_ISN + 1), "{mode:?}");
        assert_eq!(phase(&lab), Phase::Pending);
        // The first data: the header in front of it, at the first byte.
        let get = b"GET / HTTP/1.0\r\n\r\n";
        let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, get));
        let d = decode(&out.lan[0]);
        assert_eq!(d.payload, [&h[..], get].concat(), "{mode:?}");
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
        assert_eq!((d.dst, d.dport), (RS[0], 8080));
        assert_eq!(phase(&lab), Phase::Sent);
        // The RS acknowledges part of the header only: the client's data is not.
        let out = lab.send(LAN, &from_rs(side, ISN + 1 + 10).build());
        assert_eq!(seq_ack(&out.wan[0]).1, ISN + 1, "{mode:?}");
        // Lost, so the client sends it again: the header again, in front.
        let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, get));
        assert_eq!(decode(&out.lan[0]).payload, [&h[..], get].concat());
        assert_eq!(count(&lab, Counter::ProxyHeadersResent), 1);
        // The RS acknowledges header and data: the client sees its data acknowledged.
        let acked = ISN + 1 + n + get.len() as u32;
        let out = lab.send(LAN, &from_rs(side, acked).build());
        assert_eq!(seq_ack(&out.wan[0]).1, ISN + 1 + get.len() as u32);
        assert_eq!(phase(&lab), Phase::Done);
        // From now on: shifted, never a header again, even at the first byte.
        let next = ISN + 1 + get.len() as u32;
        let out = lab.send(WAN, &from_client(ACK | PSH, next, b"more"));
        assert_eq!(seq_ack(&out.lan[0]).0, next + n);
        assert_eq!(decode(&out.lan[0]).payload, b"more");
        let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, get));
        assert_eq!(decode(&out.lan[0]).payload, get, "acknowledged: no header");
        assert_eq!(seq_ack(&out.lan[0]).0, ISN + 1 + n);
        assert_eq!(
            (
                count(&lab, Counter::ProxyHeadersSent),
                count(&lab, Counter::ProxyHeadersAcked)
            ),
            (1, 1)
        );
        // The RS's data comes to the client with its acknowledgement moved back.
        let reply = from_rs(side, acked + 4).payload(b"HTTP/1.0 200 OK\r\n\r\n");
        let out = lab.send(LAN, &reply.build());
        assert_eq!(seq_ack(&out.wan[0]), (RS_ISN + 1, next + 4));
        assert_eq!(decode(&out.wan[0]).dport, CPORT);
    }
}

#[test]
fn v1_names_the_client_and_the_vip_in_text() {
    let mut lab = lab(ForwardMode::FullNat, Some(ProxyProtocol::V1));
    handshake(&mut lab);
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, b"hello"));
    let want = format!("PROXY TCP4 {CIP} {VIP} {CPORT} 80\r\nhello");
    assert_eq!(decode(&out.lan[0]).payload, want.as_bytes());
}

#[test]
fn sack_blocks_move_back_like_the_acknowledgement() {
    let mut lab = lab(ForwardMode::FullNat, Some(ProxyProtocol::V2));
    let side = handshake(&mut lab);
    lab.send(WAN, &from_client(ACK | PSH, ISN + 1, &[7; 100]));
    let n = 28;
    // The RS lost [129, 229) and holds [229, 329) (RS space: header + 100 + 100 + ...).
    let (l, r) = (ISN + 1 + n + 200, ISN + 1 + n + 300);
    let mut opts = vec![1, 1, 5, 10];
    opts.extend_from_slice(&l.to_be_bytes());
    opts.extend_from_slice(&r.to_be_bytes());
    let f = with_tcp_options(&from_rs(side, ISN + 1 + n + 100).build(), &opts);
    let out = lab.send(LAN, &f);
    let t = &out.wan[0][14 + 20..];
    let edge = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    assert_eq!(seq_ack(&out.wan[0]).1, ISN + 1 + 100);
    assert_eq!((edge(24), edge(28)), (ISN + 1 + 200, ISN + 1 + 300));
    decode(&out.wan[0]);
}

#[test]
fn a_full_sized_first_segment_gets_the_header_as_a_segment_of_its_own() {
    let mut lab = lab(ForwardMode::FullNat, Some(ProxyProtocol::V2));
    handshake(&mut lab);
    let data = vec![0x5a; 1460];
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, &data));
    assert_eq!(out.lan.len(), 2, "{out:?}");
    let (h, d) = (decode(&out.lan[0]), decode(&out.lan[1]));
    assert_eq!(h.payload, header(ProxyProtocol::V2, CPORT));
    assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
    assert_eq!((h.src, h.dst, h.dport), (d.src, d.dst, d.dport));
    assert_eq!(d.payload, data);
    assert_eq!(seq_ack(&out.lan[1]).0, ISN + 1 + 28);
    assert_eq!(count(&lab, Counter::ProxyHeaderSegments), 1);
    assert!(out.lan.iter().all(|f| f.len() <= 14 + 1500));
}

#[test]
fn a_fin_without_data_carries_the_header() {
    let mut lab = lab(ForwardMode::FullNat, Some(ProxyProtocol::V2));
    handshake(&mut lab);
    let out = lab.send(WAN, &from_client(ACK | FIN, ISN + 1, b""));
    let f = decode(&out.lan[0]);
    assert_eq!(f.payload, header(ProxyProtocol::V2, CPORT));
    assert_eq!(f.flags & FIN, FIN);
    assert_eq!(seq_ack(&out.lan[0]).0, ISN + 1);
}

#[test]
fn an_icmp_error_quoting_a_shifted_segment_is_moved_back() {
    let mut lab = lab(ForwardMode::FullNat, Some(ProxyProtocol::V2));
    let (lip, lport) = handshake(&mut lab);
    lab.send(WAN, &from_client(ACK | PSH, ISN + 1, b"first"));
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 6, &[1; 1000]));
    let at_rs = out.lan[0][14..].to_vec();
    assert_eq!(seq_ack(&out.lan[0]).0, ISN + 6 + 28);
    // A router between the director and the RS says it is too big.
    let err = icmp_error_frame(
        (rs_mac(0), LAN_MAC),
        Ipv4Addr::new(10, 1, 0, 254),
        lip,
        (icmp::DEST_UNREACH, icmp::FRAG_NEEDED, 1280),
        &at_rs[..20 + 20 + 64],
    );
    let out = lab.send(LAN, &err);
    assert_eq!(out.wan.len(), 1, "{out:?}");
    let e = decode(&out.wan[0]);
    let q = &e.payload;
    let q_seq = u32::from_be_bytes([q[24], q[25], q[26], q[27]]);
    assert_eq!(q_seq, ISN + 6, "the client's own sequence number");
    assert_eq!(u16::from_be_bytes([q[20], q[21]]), CPORT);
    let _ = lport;
}

#[test]
fn a_service_without_it_forwards_as_before() {
    let mut lab = lab(ForwardMode::FullNat, None);
    handshake(&mut lab);
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, b"plain"));
    assert_eq!(decode(&out.lan[0]).payload, b"plain");
    assert_eq!(seq_ack(&out.lan[0]).0, ISN + 1);
    assert_eq!(count(&lab, Counter::ProxyHeadersSent), 0);
}

/// With the SYN proxy: the header goes ahead of the first data the client sends once both
/// halves are joined (at its ISN + 1, learnt from its ACK), the client's acknowledgements move
/// into the RS's space by the proxy's shift, and the RS's segments come back moved by both.
#[test]
fn with_the_synproxy_both_shifts_apply() {
    let mut lab = lab_with((Proto::Tcp, 80, 8080), ForwardMode::FullNat, |s| {
        s.set_synproxy(true).unwrap();
        s.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap();
    });
    let out = lab.send(WAN, &tcp((CIP, CPORT), (VIP, 80), SYN, ISN, 0).build());
    let cookie = seq_ack(&out.wan[0]).0;
    let ack = tcp(
        (CIP, CPORT),
        (VIP, 80),
        ACK,
        ISN + 1,
        cookie.wrapping_add(1),
    );
    let out = lab.send(WAN, &ack.build());
    let syn = decode(&out.lan[0]);
    assert_eq!(seq_ack(&out.lan[0]).0, ISN, "the client's SYN, unshifted");
    let synack = tcp(
        (RS[0], 8080),
        (syn.src, syn.sport),
        SYN | ACK,
        RS_ISN,
        ISN + 1,
    )
    .via_rs(0);
    let out = lab.send(LAN, &synack.build());
    assert_eq!(
        seq_ack(&out.lan[0]),
        (ISN + 1, RS_ISN + 1),
        "the director's ACK to the RS"
    );
    let get = b"GET / HTTP/1.0\r\n\r\n";
    let data = tcp(
        (CIP, CPORT),
        (VIP, 80),
        ACK | PSH,
        ISN + 1,
        cookie.wrapping_add(1),
    )
    .payload(get);
    let out = lab.send(WAN, &data.build());
    let d = decode(&out.lan[0]);
    assert_eq!(
        d.payload,
        [&header(ProxyProtocol::V2, CPORT)[..], get].concat()
    );
    assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
    let n = 28;
    let reply = tcp(
        (RS[0], 8080),
        (syn.src, syn.sport),
        ACK | PSH,
        RS_ISN + 1,
        ISN + 1 + n + get.len() as u32,
    )
    .via_rs(0)
    .payload(b"HTTP/1.0 200 OK\r\n\r\n");
    let out = lab.send(LAN, &reply.build());
    assert_eq!(
        seq_ack(&out.wan[0]),
        (cookie.wrapping_add(1), ISN + 1 + get.len() as u32),
        "the cookie's space and the client's own"
    );
    assert_eq!(phase(&lab), Phase::Done);
}

/// The TOA option (kind 254) of an output TCP frame: the address and port it names.
fn toa_of(f: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let t = &f[decode(f).l3 + 20..];
    let doff = usize::from(t[12] >> 4) * 4;
    let mut i = 20;
    while i < doff {
        match t[i] {
            0 => break,
            1 => i += 1,
            254 if t[i + 1] == 8 => {
                let port = u16::from_be_bytes([t[i + 2], t[i + 3]]);
                return Some((Ipv4Addr::new(t[i + 4], t[i + 5], t[i + 6], t[i + 7]), port));
            }
            _ => i += usize::from(t[i + 1].max(2)),
        }
    }
    None
}

fn toa_lab() -> Lab {
    lab_with((Proto::Tcp, 80, 8080), ForwardMode::FullNat, |s| {
        s.set_toa(true).unwrap()
    })
}

/// TOA: option 254 with the client's address and port in the handshake's ACK and the first
/// data toward the RS (and their retransmissions), nothing moved in sequence space, none
/// once the RS has acknowledged data; no room in a full option space is counted, the segment
/// sent without.
#[test]
fn toa_names_the_client_in_the_first_segments() {
    let mut lab = toa_lab();
    let side = handshake(&mut lab);
    let out = lab.send(WAN, &from_client(ACK, ISN + 1, b""));
    assert_eq!(toa_of(&out.lan[0]), Some((CIP, CPORT)));
    assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1), "no shift");
    let get = b"GET / HTTP/1.0\r\n\r\n";
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, get));
    assert_eq!(toa_of(&out.lan[0]), Some((CIP, CPORT)));
    let d = decode(&out.lan[0]);
    assert_eq!(d.payload, get);
    assert_eq!(d.total_len as usize, 20 + 20 + 8 + get.len());
    // The RS acknowledges the data (and its ACK passes unchanged): no option from now on.
    let acked = ISN + 1 + get.len() as u32;
    let out = lab.send(LAN, &from_rs(side, acked).build());
    assert_eq!(seq_ack(&out.wan[0]).1, acked);
    let out = lab.send(WAN, &from_client(ACK | PSH, ISN + 1, get));
    assert_eq!(toa_of(&out.lan[0]), None, "the RS has it");
    let out = lab.send(WAN, &from_client(ACK | PSH, acked, b"more"));
    assert_eq!(toa_of(&out.lan[0]), None);
    assert_eq!(count(&lab, Counter::ToaInserted), 2);

    // Another connection whose first data fills the option space: sent without, counted.
    let mut lab = toa_lab();
    handshake(&mut lab);
    let full = with_tcp_options(&from_client(ACK | PSH, ISN + 1, b"x"), &[1; 40]);
    let out = lab.send(WAN, &full);
    assert_eq!(toa_of(&out.lan[0]), None);
    assert_eq!(decode(&out.lan[0]).payload, b"x");
    assert_eq!(count(&lab, Counter::ToaNoRoom), 1);
}

/// UDP with v2: the header (protocol `DGRAM`) in front of the first datagram of a flow only,
/// its length and checksum right; the replies untouched. A first datagram the header would
/// make too big is dropped with a fragmentation-needed giving the room left, and the next
/// one carries it.
#[test]
fn udp_flows_get_a_v2_header_once() {
    let mut lab = lab_with((Proto::Udp, 53, 53), ForwardMode::FullNat, |s| {
        s.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap()
    });
    let udp_header = |cport| {
        let mut out = [0u8; proxy_protocol::MAX_LEN];
        let ends = Ends {
            client: (CIP, cport),
            vip: (VIP, 53),
        };
        let n = proxy_protocol::write_udp(&ends, &mut out);
        assert_eq!(out[13], 0x12, "AF_INET, DGRAM");
        out[..n].to_vec()
    };
    let h = udp_header(5353);
    let out = lab.send(
        WAN,
        &Frame::udp(CIP, 5353, VIP, 53).payload(b"query-1").build(),
    );
    let d = decode(&out.lan[0]);
    assert_eq!(d.payload, [&h[..], b"query-1"].concat());
    assert_eq!((d.dst, d.dport), (RS[0], 53));
    assert_eq!(phase(&lab), Phase::Done);
    let out = lab.send(
        WAN,
        &Frame::udp(CIP, 5353, VIP, 53).payload(b"query-2").build(),
    );
    assert_eq!(decode(&out.lan[0]).payload, b"query-2", "once per flow");
    let reply = Frame::udp(RS[0], 53, d.src, d.sport)
        .via_rs(0)
        .payload(b"answer");
    let out = lab.send(LAN, &reply.build());
    let r = decode(&out.wan[0]);
    assert_eq!(
        (r.src, r.dport, r.payload.as_slice()),
        (VIP, 5353, &b"answer"[..])
    );

    // Another flow whose first datagram fills the MTU.
    let big = Frame::udp(CIP, 5354, VIP, 53).payload(&[9; 1472]);
    let out = lab.send(WAN, &big.build());
    assert!(out.lan.is_empty(), "{out:?}");
    let e = decode(&out.wan[0]);
    assert_eq!((e.dst, e.proto), (CIP, 1));
    let icmp_at = e.l3 + 20;
    assert_eq!(out.wan[0][icmp_at], 3, "destination unreachable");
    let mtu = u16::from_be_bytes([out.wan[0][icmp_at + 6], out.wan[0][icmp_at + 7]]);
    assert_eq!(mtu, 1500 - 28, "the room the header leaves");
    let out = lab.send(
        WAN,
        &Frame::udp(CIP, 5354, VIP, 53).payload(b"small").build(),
    );
    assert_eq!(
        decode(&out.lan[0]).payload,
        [&udp_header(5354)[..], b"small"].concat()
    );
}
