//! The sync codec's tests: round trips of every record kind and variant (unit and proptest),
//! batches that fill a datagram, every refusal with its reason, and arbitrary bytes. IPv6
//! sessions' own cases are in `tests/ipv6.rs`; the property tests here draw them too.

use core::net::Ipv4Addr;

use conntrack::{Proto, SessionState, TcpState};
use proptest::prelude::*;
use sched::ForwardMode;

use super::wire::{
    self, header, record_header, record_type, session, session_preamble, template, view,
};
use super::*;
use crate::proxy_protocol::{Carrier, Phase};
use sched::ProxyProtocol;

mod ipv6;

const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 200);

const HDR: SyncHeader = SyncHeader {
    sync_id: 7,
    flags: 0,
    sender: 0x0a01_0001,
    seq: 41,
};

const MODES: [ForwardMode; 4] = [
    ForwardMode::Nat,
    ForwardMode::Tun,
    ForwardMode::Dr,
    ForwardMode::FullNat,
];

fn tcp_session() -> SyncSession {
    SyncSession {
        proto: Proto::Tcp,
        client: (CIP, 40000),
        vip: (VIP, 80),
        rip: RIP,
        rport: 8080,
        mode: ForwardMode::FullNat,
        lip: Some((LIP, 5000)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 899_000,
        persist_ms: 0,
        synproxy: SyncProxy::On { shift: 0x1234_5678 },
        preamble: None,
    }
}

/// Every PROXY protocol header (and TOA) a session may carry.
fn preambles() -> Vec<SyncPreamble> {
    let mut out = Vec::new();
    for carrier in [
        Carrier::Proxy(ProxyProtocol::V1),
        Carrier::Proxy(ProxyProtocol::V2),
        Carrier::Toa,
    ] {
        for phase in [Phase::Pending, Phase::Sent, Phase::Done] {
            out.push(SyncPreamble {
                carrier,
                phase,
                first_seq: 0xfedc_ba98,
            });
        }
    }
    out
}

fn udp_template() -> SyncTemplate {
    SyncTemplate {
        proto: Proto::Udp,
        client: CIP,
        vip: (VIP, 53),
        rip: RIP,
        rport: 5353,
        timeout_ms: 300_000,
        expires_in_ms: 120_000,
    }
}

/// Encodes `recs` into one datagram of `HDR` (they must be valid and fit).
fn datagram(recs: &[SyncRecord]) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
    let mut w = DatagramWriter::new(&mut buf, &HDR).expect("header fits");
    for r in recs {
        w.push(r).expect("valid record that fits");
    }
    w.datagram().to_vec()
}

/// The bytes of one valid record.
fn raw(rec: &SyncRecord) -> Vec<u8> {
    datagram(&[*rec])[header::LEN..].to_vec()
}

/// A datagram of `HDR` around raw records, built by hand (not by the writer).
fn framed(records: &[&[u8]]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(b"RVSY");
    d.push(1);
    d.push(HDR.sync_id);
    d.extend_from_slice(&HDR.flags.to_be_bytes());
    d.extend_from_slice(&HDR.sender.to_be_bytes());
    d.extend_from_slice(&HDR.seq.to_be_bytes());
    d.extend_from_slice(&(records.len() as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    for r in records {
        d.extend_from_slice(r);
    }
    let len = d.len() as u16;
    d[header::LENGTH..header::LENGTH + 2].copy_from_slice(&len.to_be_bytes());
    d
}

fn decode_all(d: &[u8]) -> Result<Vec<Result<SyncRecord, SyncDrop>>, SyncDrop> {
    Datagram::parse(d, HDR.sync_id).map(|g| g.records().collect())
}

/// What a receiver makes of one raw record in a datagram of its own.
fn decode_one(rec: &[u8]) -> Result<SyncRecord, SyncDrop> {
    let got = decode_all(&framed(&[rec])).expect("framing is fine");
    assert_eq!(got.len(), 1);
    got[0]
}

fn set16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn set32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Every valid SYN proxy state a session of `proto` in `mode` may have.
fn proxies(proto: Proto, mode: ForwardMode) -> Vec<SyncProxy> {
    let mut v = vec![SyncProxy::Off];
    if proto == Proto::Tcp && mode.maps_ports() {
        for mss in 0..4 {
            v.push(SyncProxy::Pending {
                client_isn: 0xfeed_0000 + u32::from(mss),
                mss,
                epoch: 250 + mss,
            });
        }
        v.push(SyncProxy::On { shift: 0 });
        v.push(SyncProxy::On { shift: u32::MAX });
    }
    v
}

fn states(proto: Proto) -> Vec<SessionState> {
    match proto {
        Proto::Tcp => TcpState::ALL
            .iter()
            .map(|&s| SessionState::Tcp(s))
            .collect(),
        Proto::Udp => vec![SessionState::Udp],
        Proto::Icmp => vec![SessionState::Icmp],
    }
}

/// Every combination of protocol, mode, state and SYN proxy state, as a valid session.
fn every_session_variant() -> Vec<SyncRecord> {
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        for mode in MODES {
            for state in states(proto) {
                for synproxy in proxies(proto, mode) {
                    let (vport, rport) = match (proto, mode.maps_ports()) {
                        (Proto::Icmp, _) => (0, 0),
                        (_, true) => (443, 8443),
                        (_, false) => (443, 443),
                    };
                    out.push(SyncRecord::Session(SyncSession {
                        proto,
                        client: (CIP, if proto == Proto::Icmp { 0 } else { 65535 }),
                        vip: (VIP, vport),
                        rip: RIP,
                        rport,
                        mode,
                        lip: (mode == ForwardMode::FullNat).then_some((LIP, 1024)),
                        state,
                        expires_in_ms: u32::MAX,
                        persist_ms: 360_000,
                        synproxy,
                        preamble: None,
                    }));
                    let pending = matches!(synproxy, SyncProxy::Pending { .. });
                    let udp_v2 = |p: &SyncPreamble| {
                        proto == Proto::Udp && p.carrier == Carrier::Proxy(ProxyProtocol::V2)
                    };
                    if (proto == Proto::Tcp || proto == Proto::Udp) && mode.maps_ports() && !pending
                    {
                        for p in preambles()
                            .into_iter()
                            .filter(|p| proto == Proto::Tcp || udp_v2(p))
                        {
                            if let Some(SyncRecord::Session(s)) = out.last().copied() {
                                out.push(SyncRecord::Session(SyncSession {
                                    preamble: Some(p),
                                    ..s
                                }));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_session_variant_round_trips() {
    let all = every_session_variant();
    // 4 modes × 11 TCP states × (1 + 6 SYN proxy states in NAT/FullNAT) + UDP and ICMP,
    // and the 9 headers (v1, v2, TOA × 3 phases) of NAT and FullNAT TCP sessions whose SYN proxy is
    // off or on (3 states), never pending; and UDP's v2 header in its 3 phases.
    assert_eq!(
        all.len(),
        2 * 11 * 7 + 2 * 11 + 2 * 4 + 2 * 11 * 3 * 9 + 2 * 3
    );
    for chunk in all.chunks(20) {
        let d = datagram(chunk);
        let g = Datagram::parse(&d, HDR.sync_id).expect("valid datagram");
        assert_eq!(g.header(), HDR);
        assert_eq!(usize::from(g.count()), chunk.len());
        assert_eq!(g.records().len(), chunk.len());
        let back: Vec<_> = g.records().map(|r| r.expect("valid record")).collect();
        assert_eq!(back, chunk);
    }
}

#[test]
fn templates_of_every_protocol_round_trip() {
    let recs: Vec<_> = [Proto::Tcp, Proto::Udp, Proto::Icmp]
        .into_iter()
        .map(|proto| {
            let ports = if proto == Proto::Icmp { 0 } else { 1 };
            SyncRecord::Template(SyncTemplate {
                proto,
                vip: (VIP, ports),
                rport: ports,
                timeout_ms: 1,
                ..udp_template()
            })
        })
        .collect();
    let back: Vec<_> = decode_all(&datagram(&recs))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, recs);
}

const VIEW: ServiceView = ServiceView {
    services: 3,
    digest: 0x0123_4567_89ab_cdef,
};

/// A view: type 3, 16 bytes, the service count and the digest big-endian; it round-trips
/// beside sessions.
#[test]
fn a_view_round_trips_as_documented() {
    let v = SyncRecord::View(VIEW);
    assert_eq!(
        raw(&v),
        [
            &[0, 3, 0, 16][..],
            &[0, 0, 0, 3],
            &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        ]
        .concat()
    );
    let recs = [
        SyncRecord::Session(tcp_session()),
        v,
        SyncRecord::Session(tcp_session()),
    ];
    let back: Vec<_> = decode_all(&datagram(&recs))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, recs);
}

/// The layout in the module docs, byte by byte.
#[test]
fn layout_is_as_documented() {
    let s = SyncRecord::Session(SyncSession {
        synproxy: SyncProxy::Pending {
            client_isn: 0xa1b2_c3d4,
            mss: 3,
            epoch: 0x7e,
        },
        state: SessionState::Tcp(TcpState::SynRecv),
        persist_ms: 0x0102_0304,
        ..tcp_session()
    });
    let t = SyncRecord::Template(udp_template());
    let d = datagram(&[s, t]);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        // Header: magic, version, sync id, flags, sender, seq, count, length.
        &b"RVSY"[..], &[1, 7], &[0, 0], &[10, 1, 0, 1], &[0, 0, 0, 41], &[0, 2], &[0, 95],
        // Session: type 1, length 46, TCP, FullNAT, SYN_RECV, pending.
        &[0, 1, 0, 46, 6, 5, 3, 1],
        &[198, 51, 100, 7], &[192, 0, 2, 100], &[10, 1, 0, 10], &[10, 1, 0, 200],
        &40000u16.to_be_bytes(), &80u16.to_be_bytes(), &8080u16.to_be_bytes(),
        &5000u16.to_be_bytes(),
        &899_000u32.to_be_bytes(), &[1, 2, 3, 4], &[0xa1, 0xb2, 0xc3, 0xd4], &[3, 0x7e],
        // Template: type 2, length 29, UDP.
        &[0, 2, 0, 29, 17],
        &[198, 51, 100, 7], &[192, 0, 2, 100], &[10, 1, 0, 10],
        &53u16.to_be_bytes(), &5353u16.to_be_bytes(),
        &300_000u32.to_be_bytes(), &120_000u32.to_be_bytes(),
    ]
    .concat();
    assert_eq!(d, want);
    assert_eq!(d.len(), header::LEN + session::LEN + template::LEN);
    // The writer's header is the hand-built one.
    assert_eq!(d, framed(&[&raw(&s), &raw(&t)]));
    // The mode numbers.
    for (mode, n) in [
        (ForwardMode::Nat, 0),
        (ForwardMode::Tun, 2),
        (ForwardMode::Dr, 3),
        (ForwardMode::FullNat, 5),
    ] {
        let r = SyncRecord::Session(SyncSession {
            mode,
            rport: 80,
            lip: (mode == ForwardMode::FullNat).then_some((LIP, 5000)),
            synproxy: SyncProxy::Off,
            ..tcp_session()
        });
        assert_eq!(raw(&r)[session::MODE], n, "{mode:?}");
    }
}

#[test]
fn header_fields_come_back() {
    let h = SyncHeader {
        sync_id: 255,
        flags: 0xbeef,
        sender: u32::MAX,
        seq: 0,
    };
    let mut buf = [0u8; header::LEN];
    let w = DatagramWriter::new(&mut buf, &h).unwrap();
    assert_eq!(w.count(), 0);
    assert_eq!(w.remaining(), 0);
    let d = w.into_datagram();
    let g = Datagram::parse(d, 255).unwrap();
    assert_eq!(g.header(), h);
    assert_eq!(g.count(), 0);
    assert_eq!(g.records().next(), None);
}

#[test]
fn writer_refuses_a_buffer_without_room_for_the_header() {
    let mut buf = [0u8; header::LEN - 1];
    assert_eq!(
        DatagramWriter::new(&mut buf, &HDR).unwrap_err(),
        WriteError::BufferTooSmall
    );
    let mut none: [u8; 0] = [];
    assert_eq!(
        DatagramWriter::new(&mut none, &HDR).unwrap_err(),
        WriteError::BufferTooSmall
    );
}

#[test]
fn writer_uses_at_most_the_largest_datagram() {
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN + 1000];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    assert_eq!(w.remaining(), MAX_DATAGRAM_LEN - header::LEN);
    let rec = SyncRecord::Session(tcp_session());
    while w.push(&rec).is_ok() {}
    let n = usize::from(w.count());
    assert_eq!(n, (MAX_DATAGRAM_LEN - header::LEN) / session::LEN);
    assert!(w.remaining() < session::LEN);
    let d = w.datagram();
    assert!(d.len() <= MAX_DATAGRAM_LEN);
    let got = decode_all(d).unwrap();
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|r| *r == Ok(rec)));
}

/// A buffer of exactly the records' size takes them all and then nothing, and a refused
/// record leaves the datagram as it was.
#[test]
fn a_datagram_fills_exactly() {
    let recs = [
        SyncRecord::Session(tcp_session()),
        SyncRecord::Template(udp_template()),
        SyncRecord::Session(tcp_session()),
    ];
    let size = header::LEN + recs.iter().map(SyncRecord::wire_len).sum::<usize>();
    let mut buf = vec![0u8; size];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    for r in &recs {
        w.push(r).unwrap();
    }
    assert_eq!(w.remaining(), 0);
    let before = w.datagram().to_vec();
    assert_eq!(w.push(&recs[1]), Err(WriteError::Full));
    assert_eq!(w.datagram(), &before[..]);
    assert_eq!(w.count(), 3);
    // One byte less: the last record does not fit.
    let mut short = vec![0u8; size - 1];
    let mut w = DatagramWriter::new(&mut short, &HDR).unwrap();
    assert_eq!(w.push(&recs[0]), Ok(()));
    assert_eq!(w.push(&recs[1]), Ok(()));
    assert_eq!(w.push(&recs[2]), Err(WriteError::Full));
    assert_eq!(w.remaining(), session::LEN - 1);
    let got = decode_all(w.datagram()).unwrap();
    assert_eq!(got, vec![Ok(recs[0]), Ok(recs[1])]);
}

#[test]
fn writer_refuses_invalid_records_and_writes_nothing() {
    let mut buf = [0u8; 512];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    w.push(&SyncRecord::Template(udp_template())).unwrap();
    let before = w.datagram().to_vec();
    for (s, why) in invalid_sessions() {
        assert_eq!(
            w.push(&SyncRecord::Session(s)),
            Err(WriteError::Invalid(why)),
            "{s:?}"
        );
    }
    for (t, why) in invalid_templates() {
        assert_eq!(
            w.push(&SyncRecord::Template(t)),
            Err(WriteError::Invalid(why)),
            "{t:?}"
        );
    }
    assert_eq!(w.datagram(), &before[..]);
    assert_eq!(
        WriteError::Invalid(SyncDrop::BadLip).to_string(),
        "invalid sync record: bad_lip"
    );
}

/// Sessions that break exactly one rule, and the rule.
fn invalid_sessions() -> Vec<(SyncSession, SyncDrop)> {
    let ok = tcp_session();
    let udp = SyncSession {
        proto: Proto::Udp,
        state: SessionState::Udp,
        synproxy: SyncProxy::Off,
        ..ok
    };
    let icmp = SyncSession {
        proto: Proto::Icmp,
        state: SessionState::Icmp,
        synproxy: SyncProxy::Off,
        vip: (VIP, 0),
        rport: 0,
        ..ok
    };
    let dr = SyncSession {
        mode: ForwardMode::Dr,
        lip: None,
        rport: 80,
        synproxy: SyncProxy::Off,
        ..ok
    };
    let pending = |mss| SyncProxy::Pending {
        client_isn: 1,
        mss,
        epoch: 2,
    };
    for s in [ok, udp, icmp, dr] {
        assert_eq!(s.validate(), Ok(()), "{s:?}");
    }
    vec![
        (
            SyncSession {
                state: SessionState::Udp,
                ..ok
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession {
                state: SessionState::Icmp,
                ..ok
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession {
                state: SessionState::Tcp(TcpState::Established),
                ..udp
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession {
                state: SessionState::Udp,
                ..icmp
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession {
                synproxy: pending(4),
                ..ok
            },
            SyncDrop::BadSynProxy,
        ),
        (
            SyncSession {
                synproxy: SyncProxy::On { shift: 1 },
                ..udp
            },
            SyncDrop::BadSynProxy,
        ),
        (
            SyncSession {
                synproxy: pending(0),
                ..icmp
            },
            SyncDrop::BadSynProxy,
        ),
        (
            SyncSession {
                synproxy: SyncProxy::On { shift: 1 },
                ..dr
            },
            SyncDrop::BadSynProxy,
        ),
        (
            SyncSession {
                mode: ForwardMode::Tun,
                synproxy: pending(1),
                ..dr
            },
            SyncDrop::BadSynProxy,
        ),
        (
            SyncSession {
                client: (Ipv4Addr::UNSPECIFIED, 1),
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession {
                vip: (Ipv4Addr::UNSPECIFIED, 80),
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession {
                rip: Ipv4Addr::UNSPECIFIED,
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession {
                vip: (VIP, 0),
                ..ok
            },
            SyncDrop::BadPort,
        ),
        (SyncSession { rport: 0, ..udp }, SyncDrop::BadPort),
        (
            SyncSession {
                vip: (VIP, 8),
                ..icmp
            },
            SyncDrop::BadPort,
        ),
        (SyncSession { rport: 8, ..icmp }, SyncDrop::BadPort),
        (SyncSession { rport: 81, ..dr }, SyncDrop::BadPort),
        (
            SyncSession {
                mode: ForwardMode::Tun,
                rport: 8080,
                ..dr
            },
            SyncDrop::BadPort,
        ),
        (SyncSession { lip: None, ..ok }, SyncDrop::BadLip),
        (
            SyncSession {
                lip: Some((Ipv4Addr::UNSPECIFIED, 5000)),
                ..ok
            },
            SyncDrop::BadLip,
        ),
        (
            SyncSession {
                lip: Some((LIP, 5000)),
                ..dr
            },
            SyncDrop::BadLip,
        ),
        (
            SyncSession {
                mode: ForwardMode::Nat,
                lip: Some((LIP, 5000)),
                ..ok
            },
            SyncDrop::BadLip,
        ),
        // A PROXY protocol header only on TCP in NAT or FullNAT, not while a SYN proxy
        // waits for its RS.
        (
            SyncSession {
                preamble: Some(preambles()[0]),
                synproxy: pending(1),
                ..ok
            },
            SyncDrop::BadPreamble,
        ),
        (
            SyncSession {
                preamble: Some(preambles()[1]),
                ..udp
            },
            SyncDrop::BadPreamble,
        ),
        (
            SyncSession {
                preamble: Some(preambles()[5]),
                ..dr
            },
            SyncDrop::BadPreamble,
        ),
    ]
}

/// Templates that break exactly one rule, and the rule.
fn invalid_templates() -> Vec<(SyncTemplate, SyncDrop)> {
    let ok = udp_template();
    let icmp = SyncTemplate {
        proto: Proto::Icmp,
        vip: (VIP, 0),
        rport: 0,
        ..ok
    };
    assert_eq!(icmp.validate(), Ok(()));
    vec![
        (
            SyncTemplate {
                client: Ipv4Addr::UNSPECIFIED,
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncTemplate {
                vip: (Ipv4Addr::UNSPECIFIED, 53),
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncTemplate {
                rip: Ipv4Addr::UNSPECIFIED,
                ..ok
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncTemplate {
                vip: (VIP, 0),
                ..ok
            },
            SyncDrop::BadPort,
        ),
        (SyncTemplate { rport: 0, ..ok }, SyncDrop::BadPort),
        (SyncTemplate { rport: 1, ..icmp }, SyncDrop::BadPort),
        (
            SyncTemplate {
                vip: (VIP, 1),
                ..icmp
            },
            SyncDrop::BadPort,
        ),
        (
            SyncTemplate {
                timeout_ms: 0,
                ..ok
            },
            SyncDrop::BadTimeout,
        ),
    ]
}

/// The receiver refuses the same records, sent with the writer's checks bypassed: each is
/// encoded valid and then its fields set by hand to the invalid values.
#[test]
fn receiver_refuses_what_the_writer_refuses() {
    for (s, why) in invalid_sessions() {
        // A header needs the longer record type: start from a valid one of that type.
        let base = match s.preamble {
            None => tcp_session(),
            Some(p) => SyncSession {
                synproxy: SyncProxy::Off,
                preamble: Some(p),
                ..tcp_session()
            },
        };
        let mut b = raw(&SyncRecord::Session(base));
        b[session::PROTO] = s.proto.ip_proto();
        b[session::MODE] = match s.mode {
            ForwardMode::Nat => wire::mode::NAT,
            ForwardMode::Tun => wire::mode::TUN,
            ForwardMode::Dr => wire::mode::DR,
            ForwardMode::FullNat => wire::mode::FULLNAT,
        };
        b[session::STATE] = match s.state {
            SessionState::Tcp(t) => t.index() as u8,
            _ => 0,
        };
        let (kind, word, mss, epoch) = match s.synproxy {
            SyncProxy::Off => (0, 0, 0, 0),
            SyncProxy::Pending {
                client_isn,
                mss,
                epoch,
            } => (1, client_isn, mss, epoch),
            SyncProxy::On { shift } => (2, shift, 0, 0),
        };
        b[session::SYNPROXY] = kind;
        set32(&mut b, session::PROXY_WORD, word);
        b[session::PROXY_MSS] = mss;
        b[session::PROXY_EPOCH] = epoch;
        set32(&mut b, session::CLIENT_ADDR, s.client.0.to_bits());
        set16(&mut b, session::CLIENT_PORT, s.client.1);
        set32(&mut b, session::VIP_ADDR, s.vip.0.to_bits());
        set16(&mut b, session::VIP_PORT, s.vip.1);
        set32(&mut b, session::RIP, s.rip.to_bits());
        set16(&mut b, session::RPORT, s.rport);
        let (lip, lport) = s.lip.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        set32(&mut b, session::LIP, lip.to_bits());
        set16(&mut b, session::LPORT, lport);
        // UDP/ICMP state numbers are 0 on the wire: a TCP state for UDP shows as a non-zero
        // byte; a UDP state for TCP as NONE, which is valid (the wire cannot say it).
        let expect = match (s.proto, s.state) {
            (Proto::Udp, SessionState::Tcp(TcpState::Established)) => {
                b[session::STATE] = 1;
                why
            }
            (Proto::Tcp, SessionState::Udp | SessionState::Icmp) => continue,
            (Proto::Icmp, SessionState::Udp) => continue,
            _ => why,
        };
        assert_eq!(decode_one(&b), Err(expect), "{s:?}");
    }
    for (t, why) in invalid_templates() {
        let mut b = raw(&SyncRecord::Template(udp_template()));
        b[template::PROTO] = t.proto.ip_proto();
        set32(&mut b, template::CLIENT_ADDR, t.client.to_bits());
        set32(&mut b, template::VIP_ADDR, t.vip.0.to_bits());
        set16(&mut b, template::VIP_PORT, t.vip.1);
        set32(&mut b, template::RIP, t.rip.to_bits());
        set16(&mut b, template::RPORT, t.rport);
        set32(&mut b, template::TIMEOUT_MS, t.timeout_ms);
        assert_eq!(decode_one(&b), Err(why), "{t:?}");
    }
}

/// Field values outside the tables, and values in fields a state does not use.
#[test]
fn invalid_field_values_refuse_the_record() {
    let tcp = raw(&SyncRecord::Session(tcp_session()));
    let udp = raw(&SyncRecord::Session(SyncSession {
        proto: Proto::Udp,
        state: SessionState::Udp,
        synproxy: SyncProxy::Off,
        ..tcp_session()
    }));
    let icmp = raw(&SyncRecord::Session(SyncSession {
        proto: Proto::Icmp,
        state: SessionState::Icmp,
        synproxy: SyncProxy::Off,
        vip: (VIP, 0),
        rport: 0,
        ..tcp_session()
    }));
    let nat = raw(&SyncRecord::Session(SyncSession {
        mode: ForwardMode::Nat,
        lip: None,
        synproxy: SyncProxy::Off,
        ..tcp_session()
    }));
    let tpl = raw(&SyncRecord::Template(udp_template()));
    let with_header = raw(&SyncRecord::Session(SyncSession {
        synproxy: SyncProxy::Off,
        preamble: Some(preambles()[3]),
        ..tcp_session()
    }));
    let case = |base: &[u8], at: usize, v: u8, why: SyncDrop| {
        let mut b = base.to_vec();
        b[at] = v;
        assert_eq!(decode_one(&b), Err(why), "byte {at} = {v}");
    };
    for v in [0, 4, 255] {
        case(
            &with_header,
            session_preamble::VERSION,
            v,
            SyncDrop::BadPreamble,
        );
    }
    for p in [3, 4, 255] {
        case(
            &with_header,
            session_preamble::PHASE,
            p,
            SyncDrop::BadPreamble,
        );
    }
    for p in [0, 2, 4, 41, 58, 255] {
        case(&tcp, session::PROTO, p, SyncDrop::BadProto);
        case(&tpl, template::PROTO, p, SyncDrop::BadProto);
    }
    for m in [1, 4, 6, 7, 255] {
        case(&tcp, session::MODE, m, SyncDrop::BadMode);
    }
    for s in [11, 12, 128, 255] {
        case(&tcp, session::STATE, s, SyncDrop::BadState);
    }
    for s in [1, 10, 255] {
        case(&udp, session::STATE, s, SyncDrop::BadState);
        case(&icmp, session::STATE, s, SyncDrop::BadState);
    }
    for k in [3, 4, 255] {
        case(&tcp, session::SYNPROXY, k, SyncDrop::BadSynProxy);
    }
    // Off carries no word, MSS or epoch; On no MSS or epoch.
    case(&nat, session::PROXY_WORD + 3, 1, SyncDrop::BadSynProxy);
    case(&nat, session::PROXY_MSS, 1, SyncDrop::BadSynProxy);
    case(&nat, session::PROXY_EPOCH, 1, SyncDrop::BadSynProxy);
    case(&tcp, session::PROXY_MSS, 1, SyncDrop::BadSynProxy);
    case(&tcp, session::PROXY_EPOCH, 1, SyncDrop::BadSynProxy);
    // Pending with an MSS index beyond the table.
    let mut pending = tcp.clone();
    pending[session::SYNPROXY] = 1;
    for mss in [0, 3] {
        pending[session::PROXY_MSS] = mss;
        assert!(decode_one(&pending).is_ok());
    }
    for mss in [4, 5, 255] {
        case(&pending, session::PROXY_MSS, mss, SyncDrop::BadSynProxy);
    }
    // A LIP or local port outside FullNAT, a FullNAT LIP of 0.0.0.0.
    case(&nat, session::LIP, 10, SyncDrop::BadLip);
    case(&nat, session::LPORT + 1, 1, SyncDrop::BadLip);
    let mut no_lip = tcp.clone();
    set32(&mut no_lip, session::LIP, 0);
    assert_eq!(decode_one(&no_lip), Err(SyncDrop::BadLip));
    // ICMP with ports where ports make no sense.
    case(&icmp, session::VIP_PORT + 1, 1, SyncDrop::BadPort);
    case(&icmp, session::RPORT, 1, SyncDrop::BadPort);
    // ... but an echo identifier of any value.
    let mut id = icmp.clone();
    set16(&mut id, session::CLIENT_PORT, 0xffff);
    assert!(decode_one(&id).is_ok());
}

#[test]
fn a_known_type_of_another_length_is_refused() {
    for (base, len) in [
        (raw(&SyncRecord::Session(tcp_session())), session::LEN),
        (raw(&SyncRecord::Template(udp_template())), template::LEN),
        (raw(&SyncRecord::View(VIEW)), view::LEN),
    ] {
        for n in [record_header::LEN, len - 1, len + 1, len + 40] {
            let mut b = base.clone();
            b.resize(n, 0);
            set16(&mut b, record_header::LENGTH, n as u16);
            assert_eq!(decode_one(&b), Err(SyncDrop::BadRecordLength), "{n}");
        }
    }
}

/// A newer sender's record types are skipped and counted; the records around them are
/// installed.
#[test]
fn unknown_record_types_are_skipped() {
    let s = SyncRecord::Session(tcp_session());
    let t = SyncRecord::Template(udp_template());
    let zero = [0u8, 0, 0, 4];
    let nine = [0u8, 9, 0, 10, 1, 2, 3, 4, 5, 6];
    let mut big = vec![0xff, 0xff, 0x01, 0x00];
    big.resize(256, 0xaa);
    // A record type with a known type's length is still unknown.
    let mut like_session = raw(&s);
    set16(&mut like_session, record_header::TYPE, 8);
    let d = framed(&[
        &raw(&s),
        &nine,
        &raw(&t),
        &zero,
        &big,
        &like_session,
        &raw(&s),
    ]);
    let got = decode_all(&d).unwrap();
    let u = Err(SyncDrop::UnknownRecordType);
    assert_eq!(got, vec![Ok(s), u, Ok(t), u, u, u, Ok(s)]);
}

#[test]
fn header_problems_refuse_the_datagram() {
    let d = datagram(&[
        SyncRecord::Session(tcp_session()),
        SyncRecord::Template(udp_template()),
    ]);
    assert!(decode_all(&d).is_ok());
    let refused = |b: &[u8], why: SyncDrop| {
        assert_eq!(decode_all(b).unwrap_err(), why);
        assert!(why.refuses_datagram());
    };
    // Every truncation, the empty datagram included.
    for n in 0..d.len() {
        refused(&d[..n], SyncDrop::Truncated);
    }
    for i in 0..4 {
        let mut b = d.clone();
        b[header::MAGIC + i] ^= 0x20;
        refused(&b, SyncDrop::BadMagic);
    }
    for v in [0, 2, 255] {
        let mut b = d.clone();
        b[header::VERSION] = v;
        refused(&b, SyncDrop::UnknownVersion);
    }
    for id in [0, 6, 8, 255] {
        assert_eq!(Datagram::parse(&d, id).unwrap_err(), SyncDrop::WrongSyncId);
    }
    // The length field: below the header, beyond the bytes, short of them.
    for n in [0, 1, header::LEN - 1] {
        let mut b = d.clone();
        set16(&mut b, header::LENGTH, n as u16);
        refused(&b, SyncDrop::BadLength);
    }
    for n in [d.len() + 1, 65535] {
        let mut b = d.clone();
        set16(&mut b, header::LENGTH, n as u16);
        refused(&b, SyncDrop::Truncated);
    }
    let mut b = d.clone();
    set16(&mut b, header::LENGTH, (d.len() - 1) as u16);
    refused(&b, SyncDrop::BadLength);
    let mut trailing = d.clone();
    trailing.push(0);
    refused(&trailing, SyncDrop::BadLength);
    // The count.
    for c in [0u16, 1, 3, u16::MAX] {
        let mut b = d.clone();
        set16(&mut b, header::COUNT, c);
        refused(&b, SyncDrop::BadRecordCount);
    }
    // The framing: a record length below the record header or past the end, a partial
    // record header after the last record.
    let first = header::LEN + record_header::LENGTH;
    for n in [
        0u16,
        1,
        3,
        (session::LEN + template::LEN + 1) as u16,
        u16::MAX,
    ] {
        let mut b = d.clone();
        set16(&mut b, first, n);
        refused(&b, SyncDrop::BadFraming);
    }
    for extra in 1..=3 {
        let mut b = d.clone();
        b.resize(d.len() + extra, 0);
        set16(&mut b, header::LENGTH, (d.len() + extra) as u16);
        refused(&b, SyncDrop::BadFraming);
    }
    // A zero-length record is a framing error, not an endless loop.
    let b = framed(&[&[0, 1, 0, 0]]);
    refused(&b, SyncDrop::BadFraming);
    // The checks' order: magic before version before sync id before length.
    let mut b = d.clone();
    b[header::MAGIC] = 0;
    b[header::VERSION] = 9;
    assert_eq!(Datagram::parse(&b, 0).unwrap_err(), SyncDrop::BadMagic);
    b[header::MAGIC] = b'R';
    assert_eq!(
        Datagram::parse(&b, 0).unwrap_err(),
        SyncDrop::UnknownVersion
    );
    b[header::VERSION] = 1;
    set16(&mut b, header::LENGTH, 0);
    assert_eq!(Datagram::parse(&b, 0).unwrap_err(), SyncDrop::WrongSyncId);
}

#[test]
fn decode_record_checks_its_own_framing() {
    let s = raw(&SyncRecord::Session(tcp_session()));
    assert_eq!(decode_record(&s), Ok(SyncRecord::Session(tcp_session())));
    assert_eq!(decode_record(&[]), Err(SyncDrop::BadFraming));
    assert_eq!(decode_record(&s[..3]), Err(SyncDrop::BadFraming));
    assert_eq!(decode_record(&s[..45]), Err(SyncDrop::BadFraming));
    let mut long = s.clone();
    long.push(0);
    assert_eq!(decode_record(&long), Err(SyncDrop::BadFraming));
}

#[test]
fn drop_names_are_unique_and_indices_dense() {
    for (i, r) in SyncDrop::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert_eq!(r.to_string(), r.as_str());
        assert!(r
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c == b'_'));
    }
    let mut names: Vec<_> = SyncDrop::ALL.iter().map(|r| r.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), SyncDrop::COUNT);
    let whole: Vec<_> = SyncDrop::ALL
        .iter()
        .filter(|r| r.refuses_datagram())
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        whole,
        [
            "truncated",
            "bad_magic",
            "unknown_version",
            "wrong_sync_id",
            "bad_length",
            "bad_framing",
            "bad_record_count"
        ]
    );
}

#[test]
fn a_1500_mtu_datagram_holds_31_sessions() {
    let mut buf = [0u8; MTU_1500_DATAGRAM_LEN];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    let rec = SyncRecord::Session(tcp_session());
    while w.push(&rec).is_ok() {}
    assert_eq!(w.count(), 31);
    assert_eq!(w.datagram().len(), header::LEN + 31 * session::LEN);
}

// Property tests.

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..).prop_map(Ipv4Addr::from_bits)
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Tcp), Just(Proto::Udp), Just(Proto::Icmp)]
}

fn mode() -> impl Strategy<Value = ForwardMode> {
    prop::sample::select(MODES.to_vec())
}

/// A VIP port and an RS port valid for `proto` in `mode`.
fn ports(proto: Proto, mode: ForwardMode) -> BoxedStrategy<(u16, u16)> {
    match (proto, mode.maps_ports()) {
        (Proto::Icmp, _) => Just((0, 0)).boxed(),
        (_, true) => (1u16.., 1u16..).boxed(),
        (_, false) => (1u16..).prop_map(|p| (p, p)).boxed(),
    }
}

fn state(proto: Proto) -> BoxedStrategy<SessionState> {
    match proto {
        Proto::Tcp => prop::sample::select(TcpState::ALL.to_vec())
            .prop_map(SessionState::Tcp)
            .boxed(),
        Proto::Udp => Just(SessionState::Udp).boxed(),
        Proto::Icmp => Just(SessionState::Icmp).boxed(),
    }
}

fn synproxy(proto: Proto, mode: ForwardMode) -> BoxedStrategy<SyncProxy> {
    if proto == Proto::Tcp && mode.maps_ports() {
        prop_oneof![
            Just(SyncProxy::Off),
            (any::<u32>(), 0u8..4, any::<u8>()).prop_map(|(client_isn, mss, epoch)| {
                SyncProxy::Pending {
                    client_isn,
                    mss,
                    epoch,
                }
            }),
            any::<u32>().prop_map(|shift| SyncProxy::On { shift }),
        ]
        .boxed()
    } else {
        Just(SyncProxy::Off).boxed()
    }
}

fn valid_session() -> impl Strategy<Value = SyncSession> {
    (proto(), mode()).prop_flat_map(|(proto, mode)| {
        let lip = if mode == ForwardMode::FullNat {
            (addr(), any::<u16>()).prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        };
        (
            (addr(), any::<u16>(), addr(), addr()),
            ports(proto, mode),
            lip,
            state(proto),
            (any::<u32>(), any::<u32>()),
            synproxy(proto, mode),
            (any::<u8>(), any::<u32>()),
        )
            .prop_map(
                move |(
                    (cip, cport, vip, rip),
                    (vport, rport),
                    lip,
                    state,
                    (expires_in_ms, persist_ms),
                    synproxy,
                    (pick, first_seq),
                )| SyncSession {
                    proto,
                    client: (cip, cport),
                    vip: (vip, vport),
                    rip,
                    rport,
                    mode,
                    lip,
                    state,
                    expires_in_ms,
                    persist_ms,
                    synproxy,
                    preamble: (proto == Proto::Tcp
                        && mode.maps_ports()
                        && !matches!(synproxy, SyncProxy::Pending { .. }))
                    .then(|| preambles()[usize::from(pick) % 10..].first().copied())
                    .flatten()
                    .map(|p| SyncPreamble { first_seq, ..p }),
                },
            )
    })
}

fn valid_template() -> impl Strategy<Value = SyncTemplate> {
    proto().prop_flat_map(|proto| {
        (
            (addr(), addr(), addr()),
            ports(proto, ForwardMode::Nat),
            (1u32.., any::<u32>()),
        )
            .prop_map(
                move |((client, vip, rip), (vport, rport), (timeout_ms, expires_in_ms))| {
                    SyncTemplate {
                        proto,
                        client,
                        vip: (vip, vport),
                        rip,
                        rport,
                        timeout_ms,
                        expires_in_ms,
                    }
                },
            )
    })
}

fn valid_record() -> impl Strategy<Value = SyncRecord> {
    prop_oneof![
        3 => valid_session().prop_map(SyncRecord::Session),
        2 => ipv6::valid_session6().prop_map(SyncRecord::Session6),
        1 => valid_template().prop_map(SyncRecord::Template),
    ]
}

fn any_header() -> impl Strategy<Value = SyncHeader> {
    (any::<u8>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
        |(sync_id, flags, sender, seq)| SyncHeader {
            sync_id,
            flags,
            sender,
            seq,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Arbitrary valid records → one datagram → the same records, header and bytes.
    #[test]
    fn valid_records_round_trip(h in any_header(), recs in prop::collection::vec(valid_record(), 0..64)) {
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        let mut w = DatagramWriter::new(&mut buf, &h).unwrap();
        for r in &recs {
            prop_assert_eq!(r.validate(), Ok(()));
            w.push(r).unwrap();
        }
        let d = w.datagram().to_vec();
        let g = Datagram::parse(&d, h.sync_id).unwrap();
        prop_assert_eq!(g.header(), h);
        let back: Vec<_> = g.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&back, &recs);
        // Each record alone decodes to itself too.
        let mut at = header::LEN;
        for r in &recs {
            let n = r.wire_len();
            prop_assert_eq!(decode_record(&d[at..at + n]), Ok(*r));
            at += n;
        }
    }

    /// Records split over datagrams of `size` bytes: each datagram is filled until the next
    /// record does not fit, and all of them together give the records back in order.
    #[test]
    fn batches_fill_datagrams(
        recs in prop::collection::vec(valid_record(), 1..200),
        size in prop_oneof![Just(MTU_1500_DATAGRAM_LEN), (header::LEN + MAX_RECORD_LEN)..2000],
    ) {
        let mut back = Vec::new();
        let mut buf = vec![0u8; size];
        let mut next = 0;
        let mut seq = 0u32;
        while next < recs.len() {
            let h = SyncHeader { seq, ..HDR };
            let mut w = DatagramWriter::new(&mut buf, &h).unwrap();
            while next < recs.len() {
                match w.push(&recs[next]) {
                    Ok(()) => next += 1,
                    Err(e) => {
                        prop_assert_eq!(e, WriteError::Full);
                        prop_assert!(w.remaining() < recs[next].wire_len());
                        break;
                    }
                }
            }
            prop_assert!(w.count() > 0, "a record always fits an empty datagram");
            let d = w.datagram().to_vec();
            prop_assert!(d.len() <= size);
            let g = Datagram::parse(&d, HDR.sync_id).unwrap();
            prop_assert_eq!(g.header().seq, seq);
            for r in g.records() {
                back.push(r.unwrap());
            }
            seq += 1;
        }
        prop_assert_eq!(back, recs);
    }

    /// Arbitrary bytes never panic the reader; whatever it accepts is a valid record that
    /// encodes back to the same bytes (the encoding is canonical).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), id in any::<u8>()) {
        check_any(&bytes, id)?;
    }

    /// Arbitrary records behind a valid header and framing: every record reaches the
    /// record decoder.
    #[test]
    fn arbitrary_records_never_panic(
        bodies in prop::collection::vec(
            (0u16..7, prop::collection::vec(any::<u8>(), 0..90)),
            0..20,
        ),
    ) {
        let recs: Vec<Vec<u8>> = bodies
            .iter()
            .map(|(ty, body)| {
                let mut r = Vec::new();
                r.extend_from_slice(&ty.to_be_bytes());
                r.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
                r.extend_from_slice(body);
                r
            })
            .collect();
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let d = framed(&refs);
        let got = decode_all(&d).unwrap();
        prop_assert_eq!(got.len(), recs.len());
        for (r, g) in recs.iter().zip(got) {
            prop_assert_eq!(g, decode_record(r));
            check_record(r, g)?;
        }
    }

    /// One byte of a valid record set to any value: the record decodes (to a valid record
    /// that encodes to those very bytes) or is refused for one record-level reason.
    #[test]
    fn one_byte_changed(rec in valid_record(), at in 4usize..MAX_RECORD_LEN, v in any::<u8>()) {
        let mut b = raw(&rec);
        let at = record_header::LEN + at % (b.len() - record_header::LEN);
        b[at] = v;
        let got = decode_one(&b);
        check_record(&b, got)?;
    }
}

fn check_record(b: &[u8], got: Result<SyncRecord, SyncDrop>) -> Result<(), TestCaseError> {
    match got {
        Ok(r) => {
            prop_assert_eq!(r.validate(), Ok(()));
            prop_assert_eq!(raw(&r), b);
        }
        Err(e) => prop_assert!(!e.refuses_datagram(), "{:?}", e),
    }
    Ok(())
}

fn check_any(bytes: &[u8], id: u8) -> Result<(), TestCaseError> {
    for id in [id, bytes.get(header::SYNC_ID).copied().unwrap_or(0)] {
        match Datagram::parse(bytes, id) {
            Ok(g) => {
                prop_assert_eq!(g.records().len(), usize::from(g.count()));
                let mut at = header::LEN;
                for r in g.records() {
                    let n = usize::from(u16::from_be_bytes([
                        bytes[at + record_header::LENGTH],
                        bytes[at + record_header::LENGTH + 1],
                    ]));
                    check_record(&bytes[at..at + n], r)?;
                    at += n;
                }
                prop_assert_eq!(at, bytes.len());
            }
            Err(e) => prop_assert!(e.refuses_datagram(), "{:?}", e),
        }
    }
    Ok(())
}

/// The constants are the documented ones.
#[test]
fn record_type_numbers() {
    assert_eq!(record_type::SESSION, 1);
    assert_eq!(record_type::TEMPLATE, 2);
    assert_eq!(record_type::VIEW, 3);
    assert_eq!(record_type::SESSION_PREAMBLE, 4);
    assert_eq!(record_type::SESSION6, 5);
    assert_eq!(wire::MAGIC, *b"RVSY");
    assert_eq!(wire::VERSION, 1);
    assert_eq!(
        raw(&SyncRecord::Template(udp_template()))[..4],
        [0, 2, 0, 29]
    );
}
