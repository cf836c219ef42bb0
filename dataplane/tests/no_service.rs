//! A packet for a VIP on a port no service has is refused as the kernel of an IPVS director
//! refuses a port with no socket: a TCP segment without RST gets a RST (RFC 793's reset
//! generation), a UDP datagram an ICMP port unreachable (ICMPv6 for IPv6), from the VIP,
//! within a rate limit of its own; the packet counts as a `no_service` drop and each answer as
//! `no_service_answers`, the counters balancing. RSTs are never answered, and traffic to other
//! addresses (a DIP, an address the director does not have) keeps its way. Every frame rvs
//! sends is decoded by smoltcp, checksums verified.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::icmp::RateLimit;
use dataplane::snapshot::DirectorConfig;
use dataplane::{Counter, DropReason};
use sched::{Dest, ForwardMode, SchedKind, Service};
use smoltcp::wire::{Icmpv4Packet, Icmpv6Repr, TcpPacket};
use std::net::Ipv4Addr;
use testkit::{Frame6, ACK, FIN, PSH, RST, SYN};

/// The lab's director: TCP VIP:80 over FullNAT, and the IPv6 DIPs and routes with a TCP
/// [VIP6]:80 service in DR mode.
fn cfg() -> DirectorConfig {
    let mut cfg = config_with_ipv6();
    let mut svc = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    svc.add_dest(Dest {
        addr: RS6[0].into(),
        port: 80,
        weight: 1,
        mode: ForwardMode::Dr,
    })
    .unwrap();
    cfg.services.add(svc).unwrap();
    cfg
}

fn lab() -> Lab {
    let mut lab = Lab::new(&cfg());
    know_ipv6_neighbours(&mut lab);
    lab
}

/// Sends `frame` on WAN and asserts it was one `no_service` drop answered by exactly one
/// frame out of WAN (returned), the counters balancing.
fn answered(lab: &mut Lab, frame: &[u8]) -> Vec<u8> {
    let before = lab.worker.counters().clone();
    let out = lab.send(WAN, frame);
    let after = lab.worker.counters();
    let (port, f) = out.only();
    assert_eq!(port, WAN, "the answer goes back toward the client");
    assert_eq!(
        after.drop_count(DropReason::NoService),
        before.drop_count(DropReason::NoService) + 1
    );
    assert_eq!(after.total_drops(), before.total_drops() + 1);
    assert_eq!(
        after.get(Counter::NoServiceAnswers),
        before.get(Counter::NoServiceAnswers) + 1
    );
    assert!(after.balanced(), "counters balance: {after:?}");
    f.to_vec()
}

/// Sends `frame` on WAN and asserts it was one `no_service` drop with nothing sent.
fn unanswered(lab: &mut Lab, frame: &[u8]) {
    let before = lab.worker.counters().clone();
    let out = lab.send(WAN, frame);
    let after = lab.worker.counters();
    assert_eq!(out.total(), 0, "nothing goes out: {out:?}");
    assert_eq!(
        after.drop_count(DropReason::NoService),
        before.drop_count(DropReason::NoService) + 1
    );
    assert_eq!(after.total_drops(), before.total_drops() + 1);
    assert_eq!(
        after.get(Counter::NoServiceAnswers),
        before.get(Counter::NoServiceAnswers)
    );
    assert!(after.balanced());
}

/// The sequence number, acknowledgement number and flags of the IPv4 TCP segment in `frame`
/// (its checksums verified by `decode`).
fn tcp_numbers(frame: &[u8]) -> (u32, u32, u8) {
    let s = decode(frame);
    let t = TcpPacket::new_checked(&frame[s.l3 + 20..]).unwrap();
    (t.seq_number().0 as u32, t.ack_number().0 as u32, s.flags)
}

#[test]
fn a_syn_to_a_port_without_a_service_is_reset_at_once() {
    let mut lab = lab();
    let syn = tcp_frame((CIP, 40000), (VIP, 81), SYN, 1000, 0).build();
    let f = answered(&mut lab, &syn);
    let s = decode(&f);
    assert_eq!((s.src_mac, s.dst_mac), (WAN_MAC, ROUTER_MAC));
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 81, CIP, 40000));
    // RFC 793: no ACK in the SYN, so SEQ 0 and ACK = SEG.SEQ + SEG.LEN (the SYN's one).
    assert_eq!(tcp_numbers(&f), (0, 1001, RST | ACK));
    assert!(s.payload.is_empty());
    assert!(lab.worker.sessions().is_empty(), "no session for it");
    // The service's own port still opens sessions.
    let out = lab.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    assert_eq!(out.lan.len(), 1, "{out:?}");
}

#[test]
fn segments_without_syn_are_reset_as_rfc_793_says() {
    let mut lab = lab();
    // With ACK: SEQ = SEG.ACK, no ACK flag.
    let data = tcp_frame((CIP, 40000), (VIP, 8443), ACK | PSH, 7000, 123_456)
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .build();
    assert_eq!(tcp_numbers(&answered(&mut lab, &data)), (123_456, 0, RST));
    // A FIN without ACK is no connection's: the flag filter drops it first, unanswered.
    let before = lab.worker.counters().drop_count(DropReason::BadTcpFlags);
    let fin = tcp_frame((CIP, 40000), (VIP, 8443), FIN, 7000, 0).build();
    assert_eq!(lab.send(WAN, &fin).total(), 0);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::BadTcpFlags),
        before + 1
    );
    // FIN with ACK: SEQ = SEG.ACK.
    let fin = tcp_frame((CIP, 40000), (VIP, 8443), FIN | ACK, 7000, 99).build();
    assert_eq!(tcp_numbers(&answered(&mut lab, &fin)), (99, 0, RST));
}

#[test]
fn a_rst_is_never_answered() {
    let mut lab = lab();
    for flags in [RST, RST | ACK] {
        let rst = tcp_frame((CIP, 40000), (VIP, 81), flags, 1000, 5000).build();
        unanswered(&mut lab, &rst);
    }
}

#[test]
fn a_udp_datagram_gets_a_port_unreachable_quoting_it() {
    let mut lab = lab();
    let dgram = Frame::udp(CIP, 5353, VIP, 53).payload(b"query").build();
    let f = answered(&mut lab, &dgram);
    let s = decode(&f);
    assert_eq!((s.src, s.dst, s.proto), (VIP, CIP, 1));
    let icmp = Icmpv4Packet::new_checked(&f[s.l3 + 20..]).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((icmp.msg_type().into(), icmp.msg_code()), (3u8, 3u8));
    // The quote: the datagram's IP header and its first 8 bytes (the UDP header), as sent.
    let quote = &f[s.l3 + 28..];
    assert_eq!(quote, &dgram[14..14 + 20 + 8]);
    // TCP on the same port is refused too: the service is TCP's port 80 only.
    let syn = Frame::tcp(CIP, 40000, VIP, 53, SYN).build();
    assert_eq!(tcp_numbers(&answered(&mut lab, &syn)).2, RST | ACK);
    // A UDP datagram to the TCP service's port: no UDP service there either.
    let dgram = Frame::udp(CIP, 5353, VIP, 80).build();
    assert_eq!(decode(&answered(&mut lab, &dgram)).proto, 1);
}

#[test]
fn answers_are_rate_limited_with_a_budget_of_their_own() {
    let mut lab = lab();
    let burst = RateLimit::BURST as usize;
    let mut answers = 0;
    for i in 0..(burst + 30) {
        let syn = Frame::tcp(CIP, 30000 + i as u16, VIP, 81, SYN).build();
        answers += lab.send(WAN, &syn).total();
    }
    assert_eq!(answers, burst, "a burst, then nothing");
    let c = lab.worker.counters();
    assert_eq!(c.drop_count(DropReason::NoService), (burst + 30) as u64);
    assert_eq!(c.get(Counter::NoServiceAnswers), burst as u64);
    assert!(c.balanced());
    // The ICMP errors' budget is untouched: a TTL-1 SYN to the FullNAT service still gets
    // its time exceeded.
    let mut ttl1 = Frame::tcp(CIP, 29999, VIP, 80, SYN);
    ttl1.ttl = 1;
    let out = lab.send(WAN, &ttl1.build());
    let (_, f) = out.only();
    let s = decode(f);
    assert_eq!((s.proto, s.flags), (1, 11), "ICMP time exceeded");
    // A second later the bucket has refilled.
    lab.advance(1000);
    let syn = Frame::tcp(CIP, 20000, VIP, 81, SYN).build();
    answered(&mut lab, &syn);
}

#[test]
fn other_addresses_keep_their_way() {
    let mut lab = lab();
    let before = lab.worker.counters().clone();
    // A DIP's port: the kernel's, through the exception path.
    let ssh = Frame::tcp(CIP, 40000, DIP_WAN, 22, SYN).build();
    let out = lab.send(WAN, &ssh);
    assert_eq!((out.tap.len(), out.total()), (1, 1), "{out:?}");
    let dns = Frame::udp(CIP, 5353, DIP_WAN, 53).build();
    assert_eq!(lab.send(WAN, &dns).tap.len(), 1);
    // An address the director does not have: dropped as before, unanswered.
    let other = Ipv4Addr::new(198, 51, 100, 77);
    let syn = Frame::tcp(CIP, 40000, other, 81, SYN).build();
    assert_eq!(lab.send(WAN, &syn).total(), 0);
    // A LIP: a stale reply with no session, never refused.
    let stray = Frame::tcp(RS[0], 8080, LIP1, 4000, SYN | ACK)
        .via_rs(0)
        .build();
    assert_eq!(lab.send(LAN, &stray).total(), 0);
    let after = lab.worker.counters();
    assert_eq!(after.drop_count(DropReason::NoService), 0);
    assert_eq!(
        after.get(Counter::NoServiceAnswers),
        before.get(Counter::NoServiceAnswers)
    );
    // Both dropped as not for the director, as before.
    assert_eq!(
        after.drop_count(DropReason::NotForUs),
        before.drop_count(DropReason::NotForUs) + 2
    );
    // ICMP to the VIP is not a port: echo is answered as before.
    let echo = Frame::echo(CIP, VIP, true, 7).build();
    let out = lab.send(WAN, &echo);
    assert_eq!(decode(out.only().1).flags, 0, "an echo reply");
}

#[test]
fn ipv6_tcp_is_reset_and_udp_gets_an_icmpv6_port_unreachable() {
    let mut lab = lab();
    let syn = Frame6::tcp(CLIENT6, 40000, VIP6, 81, SYN).build();
    let f = answered(&mut lab, &syn);
    let s = decode6(&f);
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    let l4 = s.l4();
    assert_eq!((l4.sport, l4.dport, l4.flags), (81, 40000, RST | ACK));
    let t = TcpPacket::new_checked(&s.payload[..]).unwrap();
    assert_eq!((t.seq_number().0, t.ack_number().0), (0, 1001));
    // With ACK: SEQ = SEG.ACK (Frame6's ACK segments acknowledge 5000).
    let ack = Frame6::tcp(CLIENT6, 40000, VIP6, 81, ACK | PSH)
        .payload(b"x")
        .build();
    let s = decode6(&answered(&mut lab, &ack));
    let t = TcpPacket::new_checked(&s.payload[..]).unwrap();
    assert_eq!((t.seq_number().0, s.l4().flags), (5000, RST));
    // A RST: nothing.
    unanswered(
        &mut lab,
        &Frame6::tcp(CLIENT6, 40000, VIP6, 81, RST).build(),
    );

    let dgram = Frame6::udp(CLIENT6, 5353, VIP6, 53).payload(b"q").build();
    let s = decode6(&answered(&mut lab, &dgram));
    assert_eq!((s.src, s.dst), (VIP6, CLIENT6));
    match s.icmpv6() {
        Icmpv6Repr::DstUnreachable { reason, data, .. } => {
            assert_eq!(reason, smoltcp::wire::Icmpv6DstUnreachable::PortUnreachable);
            assert_eq!(data, &dgram[14 + 40..], "the whole datagram quoted");
        }
        other => panic!("not a port unreachable: {other:?}"),
    }
    // The IPv6 service's own port still goes to its RS; a DIP's port to the kernel.
    let out = lab.send(WAN, &Frame6::tcp(CLIENT6, 40001, VIP6, 80, SYN).build());
    assert_eq!(out.lan.len(), 1, "{out:?}");
    let out = lab.send(WAN, &Frame6::tcp(CLIENT6, 40002, DIP6_WAN, 22, SYN).build());
    assert_eq!((out.tap.len(), out.total()), (1, 1), "{out:?}");
    assert!(lab.worker.counters().balanced());
}
