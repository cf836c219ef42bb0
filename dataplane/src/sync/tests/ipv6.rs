//! IPv6 sessions (record type 5): every mode round-trips (NAT64 included), the layout is the
//! documented one byte by byte, every refusal comes with its reason from the writer and the
//! receiver alike, and a receiver that does not know the type steps over it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::proxy_protocol::{Carrier, Phase};
use crate::sync::wire::{
    family, record_type, session6, session6_preamble, session6_synproxy, MAX_RECORD_LEN,
};

const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11);
const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x200);

/// A FullNAT66 TCP session.
fn fullnat66() -> SyncSession6 {
    SyncSession6 {
        proto: Proto::Tcp,
        client: (CIP6, 40000),
        vip: (VIP6, 80),
        rip: IpAddr::V6(RIP6),
        rport: 8080,
        mode: ForwardMode::FullNat,
        lip: Some((IpAddr::V6(LIP6), 5000)),
        state: SessionState::Tcp(TcpState::Established),
        expires_in_ms: 899_000,
        persist_ms: 0,
        synproxy: SyncProxy::Off,
        preamble: None,
    }
}

/// A NAT64 session: FullNAT toward an IPv4 RS from an IPv4 LIP.
fn nat64() -> SyncSession6 {
    SyncSession6 {
        rip: IpAddr::V4(RIP),
        lip: Some((IpAddr::V4(LIP), 5001)),
        ..fullnat66()
    }
}

/// A session of `mode` (IPv6 RS) with valid ports and LIP.
fn of_mode(mode: ForwardMode) -> SyncSession6 {
    SyncSession6 {
        mode,
        rport: if mode.maps_ports() { 8080 } else { 80 },
        lip: (mode == ForwardMode::FullNat).then_some((IpAddr::V6(LIP6), 5000)),
        ..fullnat66()
    }
}

/// Every mode (and NAT64) × protocol × state.
fn every_session6() -> Vec<SyncRecord> {
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        for state in states(proto) {
            for s in MODES.map(of_mode).into_iter().chain([nat64()]) {
                out.push(SyncRecord::Session6(SyncSession6 { proto, state, ..s }));
            }
        }
    }
    out
}

#[test]
fn every_ipv6_session_round_trips_beside_ipv4_records() {
    let all = every_session6();
    // 5 (4 modes and NAT64) × (11 TCP states + UDP).
    assert_eq!(all.len(), 5 * 12);
    for chunk in all.chunks(7) {
        let mut recs = chunk.to_vec();
        recs.push(SyncRecord::Session(tcp_session()));
        recs.push(SyncRecord::Template(udp_template()));
        let back: Vec<_> = decode_all(&datagram(&recs))
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, recs);
        for r in chunk {
            assert_eq!(r.wire_len(), session6::LEN);
            assert_eq!(decode_record(&raw(r)), Ok(*r));
        }
    }
}

/// The layout in the module docs, byte by byte: a FullNAT66 and a NAT64 session.
#[test]
fn ipv6_layout_is_as_documented() {
    let s = SyncRecord::Session6(SyncSession6 {
        state: SessionState::Tcp(TcpState::SynRecv),
        ..fullnat66()
    });
    #[rustfmt::skip]
    let want: Vec<u8> = [
        // Type 5, length 89, TCP, FullNAT, SYN_RECV, no SYN proxy.
        &[0, 5, 0, 89, 6, 5, 3, 0][..],
        &CIP6.octets(), &VIP6.octets(), &RIP6.octets(), &LIP6.octets(),
        &40000u16.to_be_bytes(), &80u16.to_be_bytes(), &8080u16.to_be_bytes(),
        &5000u16.to_be_bytes(),
        &899_000u32.to_be_bytes(), &[0, 0, 0, 0],
        // The RS's family.
        &[6],
    ]
    .concat();
    assert_eq!(raw(&s), want);
    assert_eq!(want.len(), session6::LEN);
    assert_eq!(MAX_RECORD_LEN, 99);
    // NAT64: family 4, the IPv4 RIP and LIP IPv4-mapped.
    let n = raw(&SyncRecord::Session6(nat64()));
    let mapped = |a: Ipv4Addr| [&[0u8; 10][..], &[0xff, 0xff], &a.octets()].concat();
    assert_eq!(n[session6::RIP..session6::RIP + 16], mapped(RIP));
    assert_eq!(n[session6::LIP..session6::LIP + 16], mapped(LIP));
    assert_eq!(
        n[session6::LPORT..session6::LPORT + 2],
        5001u16.to_be_bytes()
    );
    assert_eq!(n[session6::FAMILY], family::IPV4);
    assert_eq!((family::IPV4, family::IPV6), (4, 6));
    // DR: no LIP, the RS port the VIP's; UDP: state 0.
    let dr = raw(&SyncRecord::Session6(SyncSession6 {
        proto: Proto::Udp,
        state: SessionState::Udp,
        ..of_mode(ForwardMode::Dr)
    }));
    assert_eq!(dr[4..8], [17, 3, 0, 0]);
    assert_eq!(dr[session6::LIP..session6::LIP + 16], [0; 16]);
    assert_eq!(dr[session6::LPORT..session6::LPORT + 2], [0, 0]);
    assert_eq!(
        dr[session6::RPORT..session6::RPORT + 2],
        80u16.to_be_bytes()
    );
}

/// IPv6 sessions the rules refuse, each with the reason.
fn invalid_sessions6() -> Vec<(SyncSession6, SyncDrop)> {
    let s = fullnat66();
    let nat = of_mode(ForwardMode::Nat);
    let dr = of_mode(ForwardMode::Dr);
    let v6 = |a: Ipv6Addr| IpAddr::V6(a);
    let v4 = |a: Ipv4Addr| IpAddr::V4(a);
    vec![
        (
            SyncSession6 {
                proto: Proto::Icmp,
                state: SessionState::Icmp,
                ..s
            },
            SyncDrop::BadProto,
        ),
        (
            SyncSession6 {
                state: SessionState::Udp,
                ..s
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession6 {
                proto: Proto::Udp,
                ..s
            },
            SyncDrop::BadState,
        ),
        (
            SyncSession6 {
                client: (Ipv6Addr::UNSPECIFIED, 1),
                ..s
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession6 {
                vip: (Ipv6Addr::UNSPECIFIED, 80),
                ..s
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession6 {
                rip: v6(Ipv6Addr::UNSPECIFIED),
                ..s
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession6 {
                rip: v4(Ipv4Addr::UNSPECIFIED),
                ..nat64()
            },
            SyncDrop::BadAddress,
        ),
        (
            SyncSession6 {
                vip: (VIP6, 0),
                ..s
            },
            SyncDrop::BadPort,
        ),
        (SyncSession6 { rport: 0, ..s }, SyncDrop::BadPort),
        (SyncSession6 { rport: 81, ..dr }, SyncDrop::BadPort),
        (
            SyncSession6 {
                rport: 81,
                ..of_mode(ForwardMode::Tun)
            },
            SyncDrop::BadPort,
        ),
        (SyncSession6 { lip: None, ..s }, SyncDrop::BadLip),
        (
            SyncSession6 {
                lip: Some((v6(Ipv6Addr::UNSPECIFIED), 5000)),
                ..s
            },
            SyncDrop::BadLip,
        ),
        (
            SyncSession6 {
                lip: Some((v4(Ipv4Addr::UNSPECIFIED), 5000)),
                ..nat64()
            },
            SyncDrop::BadLip,
        ),
        (
            SyncSession6 {
                lip: Some((v6(LIP6), 5000)),
                ..nat
            },
            SyncDrop::BadLip,
        ),
        (
            SyncSession6 {
                lip: None,
                ..nat64()
            },
            SyncDrop::BadLip,
        ),
        // NAT64: the RIP and the LIP both IPv4, in FullNAT only.
        (
            SyncSession6 {
                lip: Some((v6(LIP6), 5000)),
                ..nat64()
            },
            SyncDrop::BadFamily,
        ),
        (
            SyncSession6 {
                lip: Some((v4(LIP), 5000)),
                ..s
            },
            SyncDrop::BadFamily,
        ),
        (
            SyncSession6 {
                rip: v4(RIP),
                ..nat
            },
            SyncDrop::BadFamily,
        ),
        (SyncSession6 { rip: v4(RIP), ..dr }, SyncDrop::BadFamily),
        // IPv4-mapped IPv6 addresses are the wire's way of writing NAT64's.
        (
            SyncSession6 {
                rip: v6(RIP.to_ipv6_mapped()),
                ..s
            },
            SyncDrop::BadFamily,
        ),
        (
            SyncSession6 {
                lip: Some((v6(LIP.to_ipv6_mapped()), 5000)),
                ..s
            },
            SyncDrop::BadFamily,
        ),
    ]
}

#[test]
fn writer_refuses_invalid_ipv6_sessions_and_writes_nothing() {
    let mut buf = [0u8; MTU_1500_DATAGRAM_LEN];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    for (s, why) in invalid_sessions6() {
        assert_eq!(s.validate(), Err(why), "{s:?}");
        let r = SyncRecord::Session6(s);
        assert_eq!(w.push(&r), Err(WriteError::Invalid(why)), "{s:?}");
        assert_eq!(w.count(), 0);
        assert!(!why.refuses_datagram());
    }
    assert_eq!(w.datagram().len(), header::LEN);
}

/// The receiver refuses the same sessions, sent with the writer's checks bypassed: a valid
/// record's fields set by hand.
#[test]
fn receiver_refuses_invalid_ipv6_sessions() {
    let wire = |a: IpAddr| match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    for (s, why) in invalid_sessions6() {
        let mut b = raw(&SyncRecord::Session6(fullnat66()));
        if s.proto == Proto::Icmp {
            // The wire says the protocol only: an ICMP one is refused as such.
            b[session6::PROTO] = 1;
            assert_eq!(decode_one(&b), Err(why));
            continue;
        }
        b[session6::PROTO] = s.proto.ip_proto();
        b[session6::MODE] = match s.mode {
            ForwardMode::Nat => wire::mode::NAT,
            ForwardMode::Tun => wire::mode::TUN,
            ForwardMode::Dr => wire::mode::DR,
            ForwardMode::FullNat => wire::mode::FULLNAT,
        };
        b[session6::STATE] = match (s.proto, s.state) {
            (_, SessionState::Tcp(t)) => t.index() as u8,
            // A UDP state on TCP reads as NONE, which is valid: the wire cannot say it.
            (Proto::Tcp, _) => continue,
            _ => 0,
        };
        b[session6::CLIENT_ADDR..session6::CLIENT_ADDR + 16].copy_from_slice(&s.client.0.octets());
        set16(&mut b, session6::CLIENT_PORT, s.client.1);
        b[session6::VIP_ADDR..session6::VIP_ADDR + 16].copy_from_slice(&s.vip.0.octets());
        set16(&mut b, session6::VIP_PORT, s.vip.1);
        b[session6::RIP..session6::RIP + 16].copy_from_slice(&wire(s.rip));
        set16(&mut b, session6::RPORT, s.rport);
        let (lip, lport) = s.lip.unwrap_or((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
        b[session6::LIP..session6::LIP + 16].copy_from_slice(&wire(lip));
        set16(&mut b, session6::LPORT, lport);
        b[session6::FAMILY] = if s.rip.is_ipv4() { 4 } else { 6 };
        // A NAT64 RIP with an IPv6 LIP, written with family 4, reads the LIP as not mapped;
        // an IPv6 RIP with an IPv4 LIP, written with family 6, reads a mapped LIP: both are
        // the wrong family.
        assert_eq!(decode_one(&b), Err(why), "{s:?}");
    }
}

/// Field values outside the tables, and the fields IPv6 sessions keep 0.
#[test]
fn invalid_ipv6_field_values_refuse_the_record() {
    let tcp = raw(&SyncRecord::Session6(fullnat66()));
    let n64 = raw(&SyncRecord::Session6(nat64()));
    let nat = raw(&SyncRecord::Session6(of_mode(ForwardMode::Nat)));
    let case = |base: &[u8], at: usize, v: u8, why: SyncDrop| {
        let mut b = base.to_vec();
        b[at] = v;
        assert_eq!(decode_one(&b), Err(why), "byte {at} = {v}");
    };
    for p in [0, 1, 2, 58, 132, 255] {
        case(&tcp, session6::PROTO, p, SyncDrop::BadProto);
    }
    for m in [1, 4, 6, 255] {
        case(&tcp, session6::MODE, m, SyncDrop::BadMode);
    }
    case(&tcp, session6::STATE, 11, SyncDrop::BadState);
    let mut udp = tcp.clone();
    udp[session6::PROTO] = 17;
    udp[session6::STATE] = 0;
    assert!(decode_one(&udp).is_ok());
    case(&udp, session6::STATE, 1, SyncDrop::BadState);
    for v in [1, 2, 255] {
        case(&tcp, session6::SYNPROXY, v, SyncDrop::BadSynProxy);
    }
    // A persistent service's timeout is carried (not a refusal).
    let mut persistent = tcp.clone();
    persistent[session6::PERSIST_MS..session6::PERSIST_MS + 4]
        .copy_from_slice(&300_000u32.to_be_bytes());
    match decode_one(&persistent) {
        Ok(SyncRecord::Session6(x)) => assert_eq!(x.persist_ms, 300_000),
        other => panic!("a persistent session: {other:?}"),
    }
    for f in [0, 5, 41, 255] {
        case(&tcp, session6::FAMILY, f, SyncDrop::BadFamily);
        case(&n64, session6::FAMILY, f, SyncDrop::BadFamily);
    }
    // The family byte against the addresses: an IPv6 RIP read as IPv4, a mapped one as IPv6.
    case(&tcp, session6::FAMILY, family::IPV4, SyncDrop::BadFamily);
    case(&n64, session6::FAMILY, family::IPV6, SyncDrop::BadFamily);
    // NAT64 in another mode.
    case(&n64, session6::MODE, wire::mode::NAT, SyncDrop::BadLip);
    let mut n64_nat = n64.clone();
    n64_nat[session6::MODE] = wire::mode::NAT;
    n64_nat[session6::LIP..session6::LIP + 16].fill(0);
    set16(&mut n64_nat, session6::LPORT, 0);
    set16(&mut n64_nat, session6::RPORT, 8080);
    assert_eq!(decode_one(&n64_nat), Err(SyncDrop::BadFamily));
    // A LIP or local port outside FullNAT.
    case(&nat, session6::LIP + 15, 1, SyncDrop::BadLip);
    case(&nat, session6::LPORT + 1, 1, SyncDrop::BadLip);
    // Unspecified addresses.
    let mut b = tcp.clone();
    b[session6::CLIENT_ADDR..session6::CLIENT_ADDR + 16].fill(0);
    assert_eq!(decode_one(&b), Err(SyncDrop::BadAddress));
    let mut b = tcp.clone();
    b[session6::RIP..session6::RIP + 16].fill(0);
    assert_eq!(decode_one(&b), Err(SyncDrop::BadAddress));
    // Ports: 0 for the service or the RS; the client port and local port are free.
    case(&tcp, session6::VIP_PORT + 1, 0, SyncDrop::BadPort);
    let mut b = tcp.clone();
    set16(&mut b, session6::RPORT, 0);
    assert_eq!(decode_one(&b), Err(SyncDrop::BadPort));
    let mut b = tcp.clone();
    set16(&mut b, session6::CLIENT_PORT, 0);
    set16(&mut b, session6::LPORT, 0);
    assert!(decode_one(&b).is_ok());
}

#[test]
fn an_ipv6_session_of_another_length_is_refused() {
    let base = raw(&SyncRecord::Session6(fullnat66()));
    for n in [
        record_header::LEN,
        session::LEN,
        session6::LEN - 1,
        session6::LEN + 1,
    ] {
        let mut b = base.clone();
        b.resize(n, 0);
        set16(&mut b, record_header::LENGTH, n as u16);
        assert_eq!(decode_one(&b), Err(SyncDrop::BadRecordLength), "{n}");
    }
}

/// A receiver that does not know type 5 (a director older than IPv6 sync) frames records by
/// their type and length alone: it steps over each IPv6 session, counts it unknown, and
/// installs the records around it. Such a receiver is this one with the type renumbered to
/// one it does not know.
#[test]
fn a_receiver_without_ipv6_sync_skips_ipv6_sessions() {
    let s4 = SyncRecord::Session(tcp_session());
    let t = SyncRecord::Template(udp_template());
    let s6 = SyncRecord::Session6(fullnat66());
    let n64 = SyncRecord::Session6(nat64());
    let d = datagram(&[s4, s6, t, n64, s4]);
    // The framing check reads no type: the datagram is accepted whole.
    assert_eq!(
        decode_all(&d).unwrap(),
        vec![Ok(s4), Ok(s6), Ok(t), Ok(n64), Ok(s4)]
    );
    let unknown = |r: &SyncRecord| {
        let mut b = raw(r);
        set16(&mut b, record_header::TYPE, 0x7fff);
        b
    };
    let older = framed(&[
        &raw(&s4),
        &unknown(&s6),
        &raw(&t),
        &unknown(&n64),
        &raw(&s4),
    ]);
    assert_eq!(older.len(), d.len());
    let u = Err(SyncDrop::UnknownRecordType);
    assert_eq!(
        decode_all(&older).unwrap(),
        vec![Ok(s4), u, Ok(t), u, Ok(s4)]
    );
}

#[test]
fn a_1500_mtu_datagram_holds_16_ipv6_sessions() {
    let mut buf = [0u8; MTU_1500_DATAGRAM_LEN];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    let rec = SyncRecord::Session6(fullnat66());
    while w.push(&rec).is_ok() {}
    assert_eq!(w.count(), 16);
    assert_eq!(w.datagram().len(), header::LEN + 16 * session6::LEN);
    // Proxied ones are 4 bytes longer: 15.
    let mut buf = [0u8; MTU_1500_DATAGRAM_LEN];
    let mut w = DatagramWriter::new(&mut buf, &HDR).unwrap();
    let rec = SyncRecord::Session6(SyncSession6 {
        synproxy: SyncProxy::On { shift: 7 },
        ..fullnat66()
    });
    while w.push(&rec).is_ok() {}
    assert_eq!(w.count(), 15);
}

/// What the rings between a worker and the daemon hold per record: an IPv6 session's four
/// 16-byte addresses, its SYN proxy state and its PROXY protocol header's make a record 104
/// bytes (an IPv4 one alone would be 56); pinned so that it does not grow unnoticed.
#[test]
fn a_record_is_104_bytes() {
    assert_eq!(core::mem::size_of::<SyncSession>(), 56);
    assert_eq!(core::mem::size_of::<SyncSession6>(), 104);
    assert_eq!(core::mem::size_of::<SyncRecord>(), 104);
}

fn addr6() -> impl Strategy<Value = Ipv6Addr> {
    // Never unspecified; never IPv4-mapped (the wire's NAT64 form).
    (1u128..)
        .prop_map(Ipv6Addr::from_bits)
        .prop_filter("not IPv4-mapped", |a| a.to_ipv4_mapped().is_none())
}

/// Any valid IPv6 session: any mode, NAT64 included.
pub(super) fn valid_session6() -> impl Strategy<Value = SyncSession6> {
    (
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)],
        prop_oneof![4 => mode().prop_map(Some), 1 => Just(None)],
    )
        .prop_flat_map(|(proto, mode)| {
            // `None`: NAT64.
            let fwd = mode.unwrap_or(ForwardMode::FullNat);
            let server = match mode {
                None => (addr(), addr())
                    .prop_map(|(r, l)| (IpAddr::V4(r), IpAddr::V4(l)))
                    .boxed(),
                Some(_) => (addr6(), addr6())
                    .prop_map(|(r, l)| (IpAddr::V6(r), IpAddr::V6(l)))
                    .boxed(),
            };
            (
                (addr6(), any::<u16>(), addr6()),
                ports(proto, fwd),
                server,
                any::<u16>(),
                state(proto),
                any::<u32>(),
                proptest::option::of(any::<u32>()),
            )
                .prop_map(
                    move |(
                        (cip, cport, vip),
                        (vport, rport),
                        (rip, lip),
                        lport,
                        state,
                        exp,
                        shift,
                    )| {
                        // A joined SYN-proxied session (type 6) where the rules allow one.
                        let proxied = proto == Proto::Tcp && fwd.maps_ports() && mode.is_some();
                        let synproxy = match shift {
                            Some(shift) if proxied => SyncProxy::On { shift },
                            _ => SyncProxy::Off,
                        };
                        SyncSession6 {
                            proto,
                            client: (cip, cport),
                            vip: (vip, vport),
                            rip,
                            rport,
                            mode: fwd,
                            lip: (fwd == ForwardMode::FullNat).then_some((lip, lport)),
                            state,
                            expires_in_ms: exp,
                            persist_ms: 0,
                            synproxy,
                            preamble: None,
                        }
                    },
                )
        })
}

/// A joined SYN-proxied IPv6 session (type 6): type 5's 89 bytes with SYN proxy byte 2, then
/// the shift; it round-trips in NAT66, FullNAT66 and NAT64, and its rules refuse the rest.
#[test]
fn a_proxied_ipv6_session_is_type_6_with_its_shift() {
    for base in [
        of_mode(ForwardMode::FullNat),
        of_mode(ForwardMode::Nat),
        nat64(),
    ] {
        let s = SyncSession6 {
            synproxy: SyncProxy::On { shift: 0xdead_beef },
            ..base
        };
        let r = SyncRecord::Session6(s);
        assert_eq!(r.wire_len(), session6_synproxy::LEN);
        let b = raw(&r);
        assert_eq!(b.len(), 93);
        assert_eq!(
            u16::from_be_bytes([b[0], b[1]]),
            record_type::SESSION6_SYNPROXY
        );
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 93);
        assert_eq!(b[session6::SYNPROXY], 2);
        assert_eq!(&b[89..93], &[0xde, 0xad, 0xbe, 0xef]);
        // The first 89 bytes are the type 5 record's, but for its type, length and byte 7.
        let plain = raw(&SyncRecord::Session6(base));
        assert_eq!(&b[4..7], &plain[4..7]);
        assert_eq!(&b[8..89], &plain[8..89]);
        assert_eq!(decode_record(&b), Ok(r));
        // A type 6 record saying off, or a type 5 one saying on: refused.
        let mut off = b.clone();
        off[session6::SYNPROXY] = 0;
        assert_eq!(decode_record(&off), Err(SyncDrop::BadSynProxy));
        let mut on5 = plain.clone();
        on5[session6::SYNPROXY] = 2;
        assert_eq!(decode_record(&on5), Err(SyncDrop::BadSynProxy));
        // Type 6 at type 5's length, and the other way round.
        let mut short = b[..89].to_vec();
        short[2..4].copy_from_slice(&89u16.to_be_bytes());
        assert_eq!(decode_record(&short), Err(SyncDrop::BadRecordLength));
    }
    let on = SyncProxy::On { shift: 1 };
    let pending = SyncProxy::Pending {
        client_isn: 1,
        mss: 0,
        epoch: 0,
    };
    for bad in [
        SyncSession6 {
            synproxy: pending,
            ..of_mode(ForwardMode::FullNat)
        },
        SyncSession6 {
            synproxy: on,
            ..of_mode(ForwardMode::Dr)
        },
        SyncSession6 {
            synproxy: on,
            ..of_mode(ForwardMode::Tun)
        },
        SyncSession6 {
            synproxy: on,
            proto: Proto::Udp,
            state: SessionState::Udp,
            ..of_mode(ForwardMode::FullNat)
        },
    ] {
        assert_eq!(bad.validate(), Err(SyncDrop::BadSynProxy), "{bad:?}");
    }
}

/// An IPv6 session with a PROXY protocol header or TOA (type 7): type 5's 89 bytes (SYN
/// proxy byte 0 or 2), the shift (0 when off), version, phase and the first data byte's low
/// 24 bits; it round-trips in FullNAT66, NAT66 and NAT64, SYN-proxied or not, and its rules
/// refuse the rest.
#[test]
fn an_ipv6_session_with_a_header_is_type_7() {
    let header = |carrier, phase| SyncPreamble {
        carrier,
        phase,
        first_seq: 0x00ab_cdef,
    };
    let v1 = Carrier::Proxy(sched::ProxyProtocol::V1);
    let v2 = Carrier::Proxy(sched::ProxyProtocol::V2);
    let cases = [
        (
            of_mode(ForwardMode::FullNat),
            v2,
            Phase::Sent,
            SyncProxy::Off,
        ),
        (
            of_mode(ForwardMode::Nat),
            v1,
            Phase::Pending,
            SyncProxy::Off,
        ),
        (nat64(), Carrier::Toa, Phase::Done, SyncProxy::Off),
        (
            of_mode(ForwardMode::FullNat),
            v2,
            Phase::Sent,
            SyncProxy::On { shift: 0xdead_beef },
        ),
    ];
    for (s, carrier, phase, synproxy) in cases {
        let s = SyncSession6 {
            synproxy,
            preamble: Some(header(carrier, phase)),
            ..s
        };
        let r = SyncRecord::Session6(s);
        assert_eq!(r.wire_len(), session6_preamble::LEN);
        let b = raw(&r);
        assert_eq!(b.len(), 99);
        assert_eq!(u16::from_be_bytes([b[0], b[1]]), 7);
        assert_eq!(record_type::SESSION6_PREAMBLE, 7);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 99);
        let (proxy_byte, shift) = match synproxy {
            SyncProxy::On { shift } => (2, shift),
            _ => (0, 0),
        };
        assert_eq!(b[session6::SYNPROXY], proxy_byte);
        assert_eq!(b[89..93], shift.to_be_bytes());
        let version = match carrier {
            Carrier::Proxy(sched::ProxyProtocol::V1) => 1,
            Carrier::Proxy(sched::ProxyProtocol::V2) => 2,
            Carrier::Toa => 3,
        };
        let phase_byte = match phase {
            Phase::Pending => 0,
            Phase::Sent => 1,
            Phase::Done => 2,
        };
        assert_eq!(b[93..99], [version, phase_byte, 0, 0xab, 0xcd, 0xef]);
        assert_eq!(decode_record(&b), Ok(r), "{r:?}");
        // A bad version or phase, a first data byte beyond 24 bits, a shift with the SYN
        // proxy off: refused.
        for (at, v, why) in [
            (93, 4, SyncDrop::BadPreamble),
            (94, 3, SyncDrop::BadPreamble),
            (95, 1, SyncDrop::BadPreamble),
        ] {
            let mut bad = b.clone();
            bad[at] = v;
            assert_eq!(decode_record(&bad), Err(why), "byte {at}");
        }
        if proxy_byte == 0 {
            let mut bad = b.clone();
            bad[92] = 1;
            assert_eq!(decode_record(&bad), Err(SyncDrop::BadSynProxy));
        }
    }
    // No header in DR or TUN, none but v2 for UDP.
    let v2 = header(v2, Phase::Pending);
    for bad in [
        SyncSession6 {
            preamble: Some(v2),
            ..of_mode(ForwardMode::Dr)
        },
        SyncSession6 {
            preamble: Some(v2),
            ..of_mode(ForwardMode::Tun)
        },
        SyncSession6 {
            preamble: Some(header(Carrier::Toa, Phase::Pending)),
            proto: Proto::Udp,
            state: SessionState::Udp,
            ..nat64()
        },
    ] {
        assert_eq!(bad.validate(), Err(SyncDrop::BadPreamble), "{bad:?}");
    }
}
