//! IPv4 fragments through the worker: a datagram bigger than the path crosses every mode in
//! fragments, both ways, and comes out whole when the receiver reassembles it; TUN fragments
//! its outer header when the encapsulation no longer fits; the fragment table holds a flood
//! to its bound and lets go of it.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::frag::FRAGMENT_TIMEOUT_MS;
use dataplane::snapshot::DirectorConfig;
use dataplane::worker::WorkerConfig;
use dataplane::DropReason;
use sched::{ForwardMode, ProxyProtocol, SchedKind, ServiceKey};

const CPORT: u16 = 40000;

/// One UDP service on VIP:`port` with rs0:`rport` as its dest in `mode`.
fn udp_service(port: u16, rport: u16, mode: ForwardMode) -> DirectorConfig {
    config(Proto::Udp, port, SchedKind::Rr, &[dest(0, rport, 1, mode)])
}

/// A 4000-byte datagram's payload whose bytes all differ from their neighbours.
fn big_payload(seed: u8) -> Vec<u8> {
    (0..4000u32)
        .map(|i| (i * 7 + u32::from(seed)) as u8)
        .collect()
}

/// Sends each frame of `frames` on `port`, in order, and gathers what went out on `out_port`.
fn send_all(lab: &mut Lab, port: u16, frames: &[Vec<u8>], out_port: u16) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for f in frames {
        let out = lab.send(port, f);
        got.extend(if out_port == LAN { out.lan } else { out.wan });
    }
    got
}

/// The inner packets of TUN's IPIP frames (outer fragments reassembled first), as untagged
/// frames carrying the inner packet.
fn decapsulate(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut by_ident: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
    for f in frames {
        let s = decode(f);
        assert_eq!(s.proto, 4, "IPIP");
        match by_ident.iter_mut().find(|(id, _)| *id == s.ident) {
            Some((_, v)) => v.push(f.clone()),
            None => by_ident.push((s.ident, vec![f.clone()])),
        }
    }
    by_ident
        .into_iter()
        .map(|(_, parts)| {
            let outer = reassemble(&parts);
            let mut inner = outer[..14].to_vec();
            inner.extend_from_slice(&outer[34..]);
            inner
        })
        .collect()
}

/// One mode's round trip of a 4000-byte UDP datagram each way, in 1500-byte fragments.
fn round_trip(mode: ForwardMode) {
    // DR and TUN leave the port alone: their dests listen on the VIP's port.
    let rport = match mode {
        ForwardMode::Dr | ForwardMode::Tun => 80,
        _ => 8080,
    };
    let cfg = udp_service(80, rport, mode);
    let mut lab = Lab::new(&cfg);
    let mut q = Frame::udp(CIP, CPORT, VIP, 80).payload(&big_payload(1));
    q.df = false;
    let query = q.build();
    let frags = fragment(&query, 1500);
    assert_eq!(frags.len(), 3);
    let out = send_all(&mut lab, WAN, &frags, LAN);
    let pieces = match mode {
        ForwardMode::Tun => decapsulate(&out),
        _ => out,
    };
    assert_eq!(pieces.len(), 3, "{mode:?}: three fragments out");
    let whole = reassemble(&pieces);
    assert!(
        checksums_valid(&whole),
        "{mode:?}: the datagram's checksum holds"
    );
    let d = decode(&whole);
    assert_eq!(d.payload, big_payload(1), "{mode:?}: every byte");
    let c = lab.worker.counters();
    assert_eq!((c.fragments_tracked(), c.fragments_followed()), (1, 2));
    match mode {
        ForwardMode::FullNat => assert!(d.src == LIP1 || d.src == LIP2),
        _ => assert_eq!((d.src, d.sport), (CIP, CPORT)),
    }
    match mode {
        ForwardMode::Dr | ForwardMode::Tun => {
            assert_eq!((d.dst, d.dport), (VIP, 80));
            assert_eq!(&pieces[0][0..6], &rs_mac(0), "DR: to the RS's MAC");
            assert_eq!(lab.worker.counters().total_drops(), 0);
            return;
        }
        _ => assert_eq!((d.dst, d.dport), (RS[0], rport)),
    }
    // The answer, fragmented by the RS, goes back to the client whole.
    let mut a = Frame::udp(RS[0], rport, d.src, d.sport)
        .via_rs(0)
        .payload(&big_payload(2));
    a.df = false;
    a.ident = 0x5151;
    let out = send_all(&mut lab, LAN, &fragment(&a.build(), 1500), WAN);
    assert_eq!(out.len(), 3);
    let whole = reassemble(&out);
    assert!(checksums_valid(&whole));
    let r = decode(&whole);
    assert_eq!(
        (r.src, r.sport, r.dst, r.dport),
        (VIP, 80, CIP, CPORT),
        "{mode:?}"
    );
    assert_eq!(r.payload, big_payload(2));
    let c = lab.worker.counters();
    assert_eq!((c.fragments_tracked(), c.fragments_followed()), (2, 4));
    assert_eq!(c.total_drops(), 0);
    assert!(c.balanced());
    assert_eq!(
        lab.worker.fragments().in_use(),
        0,
        "entries end with their datagram"
    );
}

#[test]
fn a_4000_byte_datagram_crosses_every_mode() {
    for mode in [
        ForwardMode::FullNat,
        ForwardMode::Nat,
        ForwardMode::Dr,
        ForwardMode::Tun,
    ] {
        round_trip(mode);
    }
}

/// TUN adds 20 bytes: a full-size packet with DF gets "fragmentation needed" (MTU 1480) back;
/// without DF it leaves as two outer fragments that reassemble to the IPIP packet.
#[test]
fn tun_with_df_gets_frag_needed_instead_of_fragments() {
    let cfg = udp_service(80, 80, ForwardMode::Tun);
    let mut lab = Lab::new(&cfg);
    let full = Frame::udp(CIP, CPORT, VIP, 80).payload(&[5; 1472]);
    let out = lab.send(WAN, &full.build());
    assert!(out.lan.is_empty(), "{out:?}");
    let e = decode(&out.wan[0]);
    assert_eq!((e.dst, e.proto), (CIP, 1));
    let at = e.l3 + 20;
    assert_eq!(out.wan[0][at..at + 2], [3, 4], "fragmentation needed");
    let mtu = u16::from_be_bytes([out.wan[0][at + 6], out.wan[0][at + 7]]);
    assert_eq!(mtu, 1480);
    assert_eq!(lab.worker.counters().drop_count(DropReason::TooBig), 1);

    let mut f = full.clone();
    f.df = false;
    let frame = f.build();
    let out = lab.send(WAN, &frame);
    assert_eq!(out.lan.len(), 2, "two outer fragments");
    for o in &out.lan {
        assert!(o.len() - 14 <= 1500);
        assert_eq!(&o[0..6], &rs_mac(0));
    }
    let inner = decapsulate(&out.lan);
    assert_eq!(inner.len(), 1);
    assert_eq!(
        &inner[0][14..],
        &frame[14..],
        "the packet itself, untouched"
    );
    let c = lab.worker.counters();
    assert_eq!((c.tunnel_fragmented(), c.tunnel_fragment_frames()), (1, 1));
    assert!(c.balanced());
}

/// A later fragment that comes before its first is not held: dropped as unmatched. The
/// first and the rest still go.
#[test]
fn a_fragment_ahead_of_its_first_is_dropped() {
    let cfg = udp_service(80, 8080, ForwardMode::FullNat);
    let mut lab = Lab::new(&cfg);
    let mut q = Frame::udp(CIP, CPORT, VIP, 80).payload(&big_payload(3));
    q.df = false;
    let frags = fragment(&q.build(), 1500);
    let out = lab.send(WAN, &frags[1]);
    assert_eq!(out.total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::FragmentUnmatched), 1);
    let out = send_all(&mut lab, WAN, &[frags[0].clone(), frags[2].clone()], LAN);
    assert_eq!(out.len(), 2);
    assert_eq!(
        lab.worker.fragments().in_use(),
        1,
        "waits for bytes it never gets"
    );
    lab.advance(FRAGMENT_TIMEOUT_MS + 1);
    let out = lab.send(WAN, &frags[1]);
    assert_eq!(out.total(), 0, "expired");
    assert_eq!(
        lab.worker
            .counters()
            .drop_count(DropReason::FragmentUnmatched),
        2
    );
}

/// A flood of first fragments (distinct IP ids) fills the table to its capacity and no
/// further, counted; whole packets are not affected; once the entries expire, fragmented
/// datagrams pass again.
#[test]
fn a_fragment_flood_fills_the_table_to_its_bound() {
    let cfg = udp_service(80, 8080, ForwardMode::FullNat);
    let wcfg = WorkerConfig {
        fragment_capacity: 256,
        ..WorkerConfig::default()
    };
    let mut lab = Lab::with(&cfg, wcfg, true);
    let cap = lab.worker.fragments().capacity();
    assert_eq!(cap, 256);
    let n = 5000u32;
    let mut forwarded = 0;
    for i in 0..n {
        let mut f = Frame::udp(CIP, CPORT, VIP, 80).payload(&[0; 64]);
        f.df = false;
        f.ident = i as u16;
        let mut frame = f.build();
        frame[20] = 0x20; // MF, offset 0
        refresh_ip_checksum(&mut frame, 14);
        forwarded += lab.send(WAN, &frame).lan.len();
    }
    let c = lab.worker.counters();
    println!(
        "flood of {n} first fragments: tracked {}, table full {}, forwarded {forwarded}",
        c.fragments_tracked(),
        c.drop_count(DropReason::FragmentTableFull)
    );
    assert_eq!(c.fragments_tracked(), cap as u64);
    assert_eq!(forwarded, cap);
    assert_eq!(
        c.drop_count(DropReason::FragmentTableFull),
        u64::from(n) - cap as u64
    );
    assert_eq!(lab.worker.fragments().in_use(), cap);
    // Whole datagrams of the flow, and of others, still pass.
    for sport in [CPORT, CPORT + 1] {
        let out = lab.send(WAN, &Frame::udp(CIP, sport, VIP, 80).payload(b"x").build());
        assert_eq!(out.lan.len(), 1);
    }
    lab.advance(FRAGMENT_TIMEOUT_MS + 1);
    let mut q = Frame::udp(CIP, CPORT, VIP, 80).payload(&big_payload(4));
    q.df = false;
    q.ident = 0xfff0;
    let out = send_all(&mut lab, WAN, &fragment(&q.build(), 1500), LAN);
    assert_eq!(out.len(), 3, "fragments pass again");
    assert_eq!(decode(&reassemble(&out)).payload, big_payload(4));
    assert!(lab.worker.counters().balanced());
}

/// A UDP flow's PROXY v2 header goes into a whole datagram: a fragmented first datagram is
/// dropped (`fragment`); once the header has gone, fragments pass without one.
#[test]
fn no_proxy_header_goes_into_fragments() {
    let mut cfg = udp_service(53, 53, ForwardMode::FullNat);
    let key = ServiceKey {
        proto: Proto::Udp,
        vip: VIP.into(),
        port: 53,
    };
    cfg.services
        .get_mut(&key)
        .unwrap()
        .set_proxy_protocol(Some(ProxyProtocol::V2))
        .unwrap();
    let mut lab = Lab::new(&cfg);
    let mut q = Frame::udp(CIP, CPORT, VIP, 53).payload(&big_payload(5));
    q.df = false;
    let frags = fragment(&q.build(), 1500);
    let out = lab.send(WAN, &frags[0]);
    assert_eq!(out.total(), 0);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::Fragment),
        1,
        "the header has no place in a fragment"
    );
    let out = lab.send(WAN, &Frame::udp(CIP, CPORT, VIP, 53).payload(b"q").build());
    assert_eq!(out.lan.len(), 1, "a whole datagram carries the header");
    q.ident = 0x777;
    let frags = fragment(&q.build(), 1500);
    let out = send_all(&mut lab, WAN, &frags, LAN);
    let whole = reassemble(&out);
    assert!(checksums_valid(&whole));
    assert_eq!(
        decode(&whole).payload,
        big_payload(5),
        "no header this time"
    );
}

/// FullNAT puts every client behind the same LIP: two clients' datagrams with one IP id would
/// meet in the RS's reassembly (by LIP, RIP, protocol, id). Each datagram leaves with an id of
/// its own, the same on all its fragments; replies keep theirs (the client's address tells
/// them apart).
#[test]
fn fullnat_gives_each_fragmented_datagram_its_own_ip_id() {
    let cfg = udp_service(80, 8080, ForwardMode::FullNat);
    let cfg = DirectorConfig {
        lips: vec![LIP1],
        ..cfg
    };
    let mut lab = Lab::new(&cfg);
    let other = std::net::Ipv4Addr::new(198, 51, 100, 8);
    let mut ids = Vec::new();
    for (client, seed) in [(CIP, 6), (other, 7)] {
        let mut q = Frame::udp(client, CPORT, VIP, 80).payload(&big_payload(seed));
        q.df = false;
        q.ident = 0x4242;
        let out = send_all(&mut lab, WAN, &fragment(&q.build(), 1500), LAN);
        assert_eq!(out.len(), 3);
        let ident = |f: &[u8]| u16::from_be_bytes([f[18], f[19]]);
        let id = ident(&out[0]);
        assert!(out.iter().all(|f| ident(f) == id), "one id per datagram");
        let whole = reassemble(&out);
        assert!(checksums_valid(&whole));
        assert_eq!(decode(&whole).payload, big_payload(seed));
        ids.push((decode(&whole).src, id));
    }
    assert_eq!(ids[0].0, ids[1].0, "both behind one LIP");
    assert_ne!(ids[0].1, ids[1].1, "but apart in the RS's reassembly");
}
