//! SYN proxy end to end through the worker: the client's handshake answered with a cookie and
//! no state, the RS's handshake opened on the client's valid ACK, and the two sequence spaces
//! joined for the rest of the session's life — in FullNAT and NAT, with every checksum
//! verified independently (smoltcp). Also: refused and stale cookies, an RS that refuses, a
//! spoofed SYN flood that never reaches an RS or the table, and ICMP errors of a proxied
//! session carrying the right sequence numbers.

mod common;

use common::tcp_frame as tcp;
use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::synproxy::{EPOCH_MS, MSS_TABLE};
use dataplane::worker::SynProxy;
use dataplane::{icmp, DropReason};
use sched::{ForwardMode, SchedKind, ServiceKey};

const ISN: u32 = 0x1111_0000;
const RS_ISN: u32 = 0x7777_0000;

fn proxied_config(mode: ForwardMode) -> dataplane::snapshot::DirectorConfig {
    let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &[dest(0, 8080, 1, mode)]);
    set_synproxy(&mut cfg, true);
    cfg
}

fn set_synproxy(cfg: &mut dataplane::snapshot::DirectorConfig, on: bool) {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    cfg.services
        .get_mut(&key)
        .unwrap()
        .set_synproxy(on)
        .unwrap();
}

fn proxied_lab(mode: ForwardMode) -> Lab {
    Lab::new(&proxied_config(mode))
}

/// The sequence and acknowledgement numbers of an output TCP frame.
fn seq_ack(f: &[u8]) -> (u32, u32) {
    let t = &f[decode(f).l3 + 20..];
    let be = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    (be(4), be(8))
}

/// The MSS option of an output TCP frame.
fn mss_of(f: &[u8]) -> Option<u16> {
    let t = &f[decode(f).l3 + 20..];
    let doff = usize::from(t[12] >> 4) * 4;
    (doff == 24 && t[20] == 2 && t[21] == 4).then(|| u16::from_be_bytes([t[22], t[23]]))
}

fn client_syn(cport: u16) -> Vec<u8> {
    let syn = tcp((CIP, cport), (VIP, 80), SYN, ISN, 0).build();
    // MSS 1400 and a window scale the proxy does not offer back.
    with_tcp_options(&syn, &[2, 4, 0x05, 0x78, 1, 3, 3, 7])
}

/// Runs the client's handshake: returns the cookie (the server ISN the client sees).
fn client_handshake(lab: &mut Lab, cport: u16) -> u32 {
    let out = lab.send(WAN, &client_syn(cport));
    assert_eq!(out.total(), 1, "only the SYN/ACK: {out:?}");
    let s = decode(&out.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 80, CIP, cport));
    assert_eq!((s.flags, s.dst_mac), (SYN | ACK, ROUTER_MAC));
    let (cookie, ack) = seq_ack(&out.wan[0]);
    assert_eq!(ack, ISN + 1);
    assert_eq!(
        mss_of(&out.wan[0]),
        Some(1460),
        "the director's MSS: its MTU allows 1460"
    );
    cookie
}

/// The client's ACK of the SYN/ACK with `cookie` (port 40000).
fn client_ack(cookie: u32) -> Frame {
    tcp(
        (CIP, 40000),
        (VIP, 80),
        ACK,
        ISN + 1,
        cookie.wrapping_add(1),
    )
}

/// Both handshakes of a proxied FullNAT session from client port 40000: returns the cookie
/// and the (LIP, lport) the RS sees.
fn join(lab: &mut Lab) -> (u32, std::net::Ipv4Addr, u16) {
    let cookie = client_handshake(lab, 40000);
    let syn = decode(&lab.send(WAN, &client_ack(cookie).build()).lan[0]);
    let synack = tcp(
        (RS[0], 8080),
        (syn.src, syn.sport),
        SYN | ACK,
        RS_ISN,
        ISN + 1,
    )
    .via_rs(0);
    lab.send(LAN, &synack.build());
    (cookie, syn.src, syn.sport)
}

#[test]
fn fullnat_and_nat_handshakes_are_proxied_and_joined() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let mut lab = proxied_lab(mode);
        let cookie = client_handshake(&mut lab, 40000);
        assert_eq!(
            lab.worker.sessions().len(),
            0,
            "{mode:?}: a SYN leaves no state"
        );
        assert_eq!(lab.worker.counters().synproxy_cookies(), 1);

        // The client's ACK brings the cookie back: the RS gets the client's SYN.
        let ack = client_ack(cookie);
        let out = lab.send(WAN, &ack.build());
        assert_eq!(out.total(), 1, "{out:?}");
        let syn = decode(&out.lan[0]);
        let (lip, lport) = (syn.src, syn.sport);
        if mode == ForwardMode::FullNat {
            assert!(lip == LIP1 || lip == LIP2);
        } else {
            assert_eq!((lip, lport), (CIP, 40000));
        }
        assert_eq!((syn.dst, syn.dport, syn.flags), (RS[0], 8080, SYN));
        assert_eq!(seq_ack(&out.lan[0]).0, ISN, "the client's own ISN");
        assert_eq!(
            mss_of(&out.lan[0]),
            Some(1300),
            "the client's MSS, as the cookie kept it"
        );
        let (_, s) = lab.worker.sessions().iter().next().unwrap();
        assert_eq!(s.state, SessionState::Tcp(TcpState::SynRecv));
        assert!(matches!(s.data.synproxy, SynProxy::Pending(_)));

        // The client sends data before the RS answered: dropped, the SYN goes again.
        let early = tcp(
            (CIP, 40000),
            (VIP, 80),
            ACK | PSH,
            ISN + 1,
            cookie.wrapping_add(1),
        )
        .payload(b"early");
        let out = lab.send(WAN, &early.build());
        assert_eq!(decode(&out.lan[0]).flags, SYN, "the SYN again");
        assert_eq!(lab.worker.counters().synproxy_syn_retries(), 1);

        // The RS's SYN/ACK: the RS gets the ACK, the client nothing.
        let synack = tcp((RS[0], 8080), (lip, lport), SYN | ACK, RS_ISN, ISN + 1).via_rs(0);
        let out = lab.send(LAN, &synack.build());
        assert_eq!(out.total(), 1, "{out:?}");
        let a = decode(&out.lan[0]);
        assert_eq!(
            (a.src, a.sport, a.dst, a.dport, a.flags),
            (lip, lport, RS[0], 8080, ACK)
        );
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
        let (_, s) = lab.worker.sessions().iter().next().unwrap();
        assert_eq!(s.state, SessionState::Tcp(TcpState::Established));
        assert_eq!(s.data.synproxy, SynProxy::On);

        // Client data: its ack moves into the RS's space.
        let data = tcp(
            (CIP, 40000),
            (VIP, 80),
            ACK | PSH,
            ISN + 1,
            cookie.wrapping_add(1),
        )
        .payload(b"GET / HTTP/1.0\r\n\r\n");
        let out = lab.send(WAN, &data.build());
        let d = decode(&out.lan[0]);
        assert_eq!(d.payload, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));

        // The RS's answer: its seq moves into the cookie's space.
        let answer = tcp((RS[0], 8080), (lip, lport), ACK | PSH, RS_ISN + 1, ISN + 19)
            .via_rs(0)
            .payload(b"HTTP/1.0 200 OK\r\n\r\nhello");
        let out = lab.send(LAN, &answer.build());
        let d = decode(&out.wan[0]);
        assert_eq!((d.src, d.sport, d.dst, d.dport), (VIP, 80, CIP, 40000));
        assert_eq!(seq_ack(&out.wan[0]), (cookie.wrapping_add(1), ISN + 19));

        // Both FINs and the last ACK.
        let fin = tcp(
            (RS[0], 8080),
            (lip, lport),
            FIN | ACK,
            RS_ISN + 25,
            ISN + 19,
        )
        .via_rs(0);
        let out = lab.send(LAN, &fin.build());
        assert_eq!(seq_ack(&out.wan[0]).0, cookie.wrapping_add(25));
        let fin = tcp(
            (CIP, 40000),
            (VIP, 80),
            FIN | ACK,
            ISN + 19,
            cookie.wrapping_add(26),
        );
        let out = lab.send(WAN, &fin.build());
        assert_eq!(seq_ack(&out.lan[0]), (ISN + 19, RS_ISN + 26));
        assert_eq!(lab.worker.counters().synproxy_joined(), 1);
        assert!(lab.worker.counters().balanced(), "{mode:?}");
        // Published for the control plane (metrics) by the slow jobs.
        lab.slow();
        let w = &lab.worker.stats_handle().worker;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            (
                load(w.synproxy_cookies()),
                load(w.synproxy_opened()),
                load(w.synproxy_joined())
            ),
            (1, 1, 1)
        );
    }
}

#[test]
fn acks_without_a_valid_cookie_open_nothing() {
    let mut lab = proxied_lab(ForwardMode::FullNat);
    let cookie = client_handshake(&mut lab, 40000);
    let bad = [
        tcp(
            (CIP, 40000),
            (VIP, 80),
            ACK,
            ISN + 1,
            cookie.wrapping_add(1 + 0x1000),
        ),
        tcp(
            (CIP, 40000),
            (VIP, 80),
            ACK,
            ISN + 2,
            cookie.wrapping_add(1),
        ),
        tcp(
            (CIP, 40001),
            (VIP, 80),
            ACK,
            ISN + 1,
            cookie.wrapping_add(1),
        ),
        tcp((CIP, 40000), (VIP, 80), ACK, 0, 0),
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
    let fin = tcp(
        (CIP, 40000),
        (VIP, 80),
        FIN | ACK,
        ISN + 1,
        cookie.wrapping_add(1),
    );
    assert_eq!(lab.send(WAN, &fin.build()).total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::NoSession), 1);
    // Three epochs later the right ACK is stale.
    lab.advance(3 * EPOCH_MS);
    let late = client_ack(cookie);
    assert_eq!(lab.send(WAN, &late.build()).total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::BadCookie), 5);
    assert_eq!(lab.worker.sessions().len(), 0);
    assert!(lab.worker.counters().balanced());
}

#[test]
fn a_refusing_rs_resets_the_client() {
    let mut lab = proxied_lab(ForwardMode::FullNat);
    let cookie = client_handshake(&mut lab, 40000);
    let ack = client_ack(cookie);
    let syn = decode(&lab.send(WAN, &ack.build()).lan[0]);
    let rst = tcp((RS[0], 8080), (syn.src, syn.sport), RST | ACK, 0, ISN + 1).via_rs(0);
    let out = lab.send(LAN, &rst.build());
    assert_eq!(out.total(), 1, "{out:?}");
    let r = decode(&out.wan[0]);
    assert_eq!(
        (r.src, r.sport, r.dst, r.dport, r.flags),
        (VIP, 80, CIP, 40000, RST)
    );
    assert_eq!(
        seq_ack(&out.wan[0]).0,
        cookie.wrapping_add(1),
        "in the client's window"
    );
    let (_, s) = lab.worker.sessions().iter().next().unwrap();
    assert_eq!(s.state, SessionState::Tcp(TcpState::Close));
}

/// A spoofed SYN flood against a proxied service: each SYN gets its SYN/ACK and nothing else
/// happens — no session, no LIP port, not one packet to a real server.
#[test]
fn a_syn_flood_never_reaches_the_table_or_an_rs() {
    let mut lab = proxied_lab(ForwardMode::FullNat);
    let free = lab.worker.lip_pool().unwrap().available();
    let n = 20_000u32;
    let mut answered = 0;
    let mut to_rs = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        for &i in chunk {
            let src = std::net::Ipv4Addr::from(0x2d00_0000 + i * 7);
            let f = tcp((src, 1024 + (i % 60000) as u16), (VIP, 80), SYN, i, 0).build();
            assert!(lab.worker.port_mut(WAN).inject(&f));
        }
        while lab.worker.poll(lab.now) > 0 {}
        let out = lab.collect();
        answered += out.wan.len();
        to_rs += out.lan.len();
    }
    println!(
        "SYN flood on a proxied service: {n} spoofed SYNs, {answered} SYN/ACKs, {} sessions, \
         {to_rs} packets to real servers",
        lab.worker.sessions().len()
    );
    assert_eq!(answered, n as usize);
    assert_eq!((to_rs, lab.worker.sessions().len()), (0, 0));
    assert_eq!(lab.worker.lip_pool().unwrap().available(), free);
    // A real client still gets through.
    let cookie = client_handshake(&mut lab, 40000);
    let ack = client_ack(cookie);
    assert_eq!(lab.send(WAN, &ack.build()).lan.len(), 1);
    assert!(lab.worker.counters().balanced());
}

/// Path-MTU discovery on a proxied session: the router's error about the RS's segment (in
/// the client's sequence space) reaches the RS quoting the segment as the RS sent it.
#[test]
fn icmp_errors_of_a_proxied_session_quote_each_side_its_own_numbers() {
    let mut lab = proxied_lab(ForwardMode::FullNat);
    let (cookie, lip, lport) = join(&mut lab);
    let big = tcp((RS[0], 8080), (lip, lport), ACK, RS_ISN + 1, ISN + 1)
        .via_rs(0)
        .payload(&[0x42; 1400]);
    let out = lab.send(LAN, &big.build());
    let at_client = out.wan[0][14..].to_vec();
    assert_eq!(seq_ack(&out.wan[0]).0, cookie.wrapping_add(1));
    let err = icmp_error_frame(
        (ROUTER_MAC, WAN_MAC),
        ROUTER,
        VIP,
        (icmp::DEST_UNREACH, icmp::FRAG_NEEDED, 1280),
        &at_client[..20 + 20 + 64],
    );
    let out = lab.send(WAN, &err);
    assert_eq!(out.lan.len(), 1, "{out:?}");
    let e = decode(&out.lan[0]);
    assert_eq!((e.src, e.dst), (lip, RS[0]));
    let quote = &e.payload;
    let q_seq = u32::from_be_bytes([quote[24], quote[25], quote[26], quote[27]]);
    let q_ack = u32::from_be_bytes([quote[28], quote[29], quote[30], quote[31]]);
    assert_eq!(
        (q_seq, q_ack),
        (RS_ISN + 1, ISN + 1),
        "the RS's own numbers"
    );
    assert_eq!(
        u16::from_be_bytes([quote[20], quote[21]]),
        8080,
        "the RS's own port"
    );
}

#[test]
fn turning_synproxy_off_keeps_proxied_sessions() {
    let mut cfg = proxied_config(ForwardMode::FullNat);
    let mut lab = Lab::new(&cfg);
    let (cookie, _, _) = join(&mut lab);
    set_synproxy(&mut cfg, false);
    lab.publish(&cfg);
    // The proxied session keeps shifting; a new SYN goes straight to the RS.
    let data = client_ack(cookie).payload(b"x");
    let out = lab.send(WAN, &data.build());
    assert_eq!(seq_ack(&out.lan[0]), (ISN + 1, RS_ISN + 1));
    let out = lab.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    assert_eq!(decode(&out.lan[0]).flags, SYN);
    assert_eq!(lab.worker.sessions().len(), 2);
    assert_eq!(MSS_TABLE.len(), 4);
}
