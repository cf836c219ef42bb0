//! IPv6 to the director's own addresses: neighbour solicitations answered with the port's
//! MAC (and copied to the kernel), duplicate address detection answered to all-nodes, ICMPv6
//! echo answered, the rest handed to the kernel; bad neighbour discovery and IPv6 the data
//! path does not forward counted by reason. Every frame rvs builds is decoded by smoltcp.

mod common;

use common::*;
use dataplane::snapshot::DirectorConfig;
use dataplane::DropReason;
use smoltcp::wire::{Icmpv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
use std::net::Ipv6Addr;

const DIP6_WAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

fn config6() -> DirectorConfig {
    config_with_ipv6()
}

fn lab6() -> Lab {
    Lab::new(&config6())
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn group_mac(g: Ipv6Addr) -> [u8; 6] {
    let o = g.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A neighbour solicitation from `src` (MAC `mac`) for `target`, to its solicited-node group,
/// with a source link-layer option if `slla`.
fn ns(src: Ipv6Addr, mac: [u8; 6], target: Ipv6Addr, slla: bool) -> Vec<u8> {
    let dst = solicited_node(target);
    let dst_mac = group_mac(dst);
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: slla.then(|| RawHardwareAddress::from_bytes(&mac)),
    });
    icmpv6_frame(mac, dst_mac, (src, dst), 255, &msg)
}

/// The neighbour advertisement in `frame`: (flags, target, target link-layer address).
fn advert(frame: &[u8]) -> (NdiscNeighborFlags, Ipv6Addr, Vec<u8>) {
    let s = decode6(frame);
    assert_eq!(s.hop_limit, 255);
    match s.icmpv6() {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        }) => (
            flags,
            target_addr,
            lladdr
                .expect("target link-layer option")
                .as_bytes()
                .to_vec(),
        ),
        other => panic!("expected a neighbour advert, got {other:?}"),
    }
}

#[test]
fn solicitations_for_dips_are_answered_with_the_ports_mac() {
    let mut lab = lab6();
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    let other = [0x02, 0, 0, 0, 0xbb, 0xbb];
    // To the group with a source link-layer option naming another MAC than the frame's: the
    // advert goes to the option's; the kernel (WAN has an exception path) gets the
    // solicitation as it came.
    let mut req = ns(ROUTER6, other, DIP6_WAN, true);
    req[6..12].copy_from_slice(&asker);
    let out = lab.send(WAN, &req);
    assert_eq!((out.wan.len(), out.tap.len(), out.lan.len()), (1, 1, 0));
    assert_eq!(out.tap[0], req);
    let s = decode6(&out.wan[0]);
    assert_eq!((s.dst_mac, s.src_mac), (other, WAN_MAC));
    assert_eq!((s.src, s.dst), (DIP6_WAN, ROUTER6));
    let (flags, target, ll) = advert(&out.wan[0]);
    assert_eq!(
        flags,
        NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE
    );
    assert_eq!((target, &ll[..]), (DIP6_WAN, &WAN_MAC[..]));
    // Unicast, without the option (a reachability probe): to the frame's source MAC. LAN has
    // no exception path: no copy.
    let rs6 = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11);
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: DIP6_LAN,
        lladdr: None,
    });
    let req = icmpv6_frame(asker, LAN_MAC, (rs6, DIP6_LAN), 255, &msg);
    let out = lab.send(LAN, &req);
    let (p, f) = out.only();
    assert_eq!(p, LAN);
    let s = decode6(f);
    assert_eq!(
        (s.dst_mac, s.src_mac, s.src, s.dst),
        (asker, LAN_MAC, DIP6_LAN, rs6)
    );
    assert_eq!(advert(f).2, LAN_MAC.to_vec());
    let c = lab.worker.counters();
    assert_eq!((c.neighbour_adverts(), c.nd_to_kernel()), (2, 1));
    assert!(c.balanced(), "{c:?}");
    // Both solicitors were learnt, at their option's MAC, else not at all (rs6 gave none).
    let n = lab.worker.neighbours6();
    assert_eq!(n.lookup(ROUTER6).map(|m| m.0), Some(other));
    assert_eq!(n.lookup(rs6), None);
}

#[test]
fn duplicate_address_detection_is_answered_to_all_nodes() {
    let mut lab = lab6();
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    let req = ns(Ipv6Addr::UNSPECIFIED, asker, DIP6_WAN, false);
    let out = lab.send(WAN, &req);
    assert_eq!((out.wan.len(), out.tap.len()), (1, 1));
    let s = decode6(&out.wan[0]);
    assert_eq!(
        (s.dst_mac, s.src, s.dst),
        (ALL_NODES_MAC, DIP6_WAN, ALL_NODES)
    );
    let (flags, target, _) = advert(&out.wan[0]);
    assert_eq!((flags, target), (NdiscNeighborFlags::OVERRIDE, DIP6_WAN));
}

#[test]
fn other_solicitations_and_link_local_groups_go_to_the_kernel() {
    let mut lab = lab6();
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    // For the LAN's DIP but on the WAN, for an address nobody here has, a router
    // solicitation to all-routers: none answered, all the kernel's.
    let nobody = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x77);
    let rs = icmpv6_frame(
        asker,
        group_mac("ff02::2".parse().unwrap()),
        (ROUTER6, "ff02::2".parse().unwrap()),
        255,
        &Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { lladdr: None }),
    );
    for req in [
        ns(ROUTER6, asker, DIP6_LAN, true),
        ns(ROUTER6, asker, nobody, true),
        rs,
    ] {
        let out = lab.send(WAN, &req);
        let (p, f) = out.only();
        assert_eq!((p, f), (TAP, &req[..]));
    }
    let c = lab.worker.counters();
    assert_eq!((c.neighbour_adverts(), c.multicast_to_kernel()), (0, 3));
    assert_eq!(c.exception(), 3);
    // What the kernel sends (its own solicitations) comes out of the data port as is.
    let from_kernel = ns(DIP6_WAN, WAN_MAC, ROUTER6, true);
    let out = lab.send(TAP, &from_kernel);
    assert_eq!(out.only(), (WAN, &from_kernel[..]));
}

/// An echo request from `src` to `dst`, at the WAN port's MAC from the router's.
fn echo6(src: Ipv6Addr, dst: Ipv6Addr, seq_no: u16) -> Vec<u8> {
    icmpv6_frame(
        ROUTER_MAC,
        WAN_MAC,
        (src, dst),
        60,
        &Icmpv6Repr::EchoRequest {
            ident: 0x1234,
            seq_no,
            data: b"ping6-payload",
        },
    )
}

/// The router's advertisement of its own address, to `dst`, solicited.
fn router_advert(dst: Ipv6Addr) -> Vec<u8> {
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        target_addr: ROUTER6,
        lladdr: Some(RawHardwareAddress::from_bytes(&ROUTER_MAC)),
    });
    icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, dst), 255, &msg)
}

/// Checks `f` is the echo reply to `echo6(CLIENT6, DIP6_WAN, seq_no)`, routed to the router.
fn assert_echo_reply(f: &[u8], seq_no: u16) {
    let s = decode6(f);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (DIP6_WAN, CLIENT6, 64));
    match s.icmpv6() {
        Icmpv6Repr::EchoReply {
            ident,
            seq_no: q,
            data,
        } => assert_eq!((ident, q, data), (0x1234, seq_no, &b"ping6-payload"[..])),
        other => panic!("expected an echo reply, got {other:?}"),
    }
}

#[test]
fn echo_replies_are_routed_and_wait_for_the_gateway_to_resolve() {
    let mut lab = lab6();
    // From off-link: the reply goes to the default route's gateway, unknown yet: parked, and
    // a solicitation for it goes to its solicited-node group.
    let out = lab.send(WAN, &echo6(CLIENT6, DIP6_WAN, 1));
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    let s = decode6(f);
    let group = solicited_node(ROUTER6);
    assert_eq!((s.dst_mac, s.src_mac), (group_mac(group), WAN_MAC));
    assert_eq!((s.src, s.dst, s.hop_limit), (DIP6_WAN, group, 255));
    match s.icmpv6() {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr,
            lladdr,
        }) => {
            assert_eq!(target_addr, ROUTER6);
            assert_eq!(
                lladdr.map(|l| l.as_bytes().to_vec()),
                Some(WAN_MAC.to_vec())
            );
        }
        other => panic!("expected a neighbour solicitation, got {other:?}"),
    }
    let c = lab.worker.counters();
    assert_eq!((c.parked(), c.neighbour_solicits()), (1, 1));
    // The router's advert releases the reply (the advert itself is the kernel's too).
    let out = lab.send(WAN, &router_advert(DIP6_WAN));
    assert_eq!((out.wan.len(), out.tap.len()), (1, 1));
    assert_echo_reply(&out.wan[0], 1);
    assert_eq!(
        lab.worker.neighbours6().lookup(ROUTER6).map(|m| m.0),
        Some(ROUTER_MAC)
    );
    // Resolved now: the next reply leaves at once.
    let out = lab.send(WAN, &echo6(CLIENT6, DIP6_WAN, 2));
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    assert_echo_reply(f, 2);
    assert_eq!(lab.worker.counters().icmp_echo_replies(), 2);
    // TCP to the DIP (a BGP session, ssh): the kernel's, unchanged.
    let tcp = tcp6_frame(CLIENT6, DIP6_WAN);
    let out = lab.send(WAN, &tcp);
    assert_eq!(out.only(), (TAP, &tcp[..]));
}

#[test]
fn an_unanswered_neighbour_is_given_up_and_adverts_teach_only_known_neighbours() {
    let mut lab = lab6();
    // An advert nobody asked for teaches nothing.
    let out = lab.send(WAN, &router_advert(DIP6_WAN));
    assert_eq!(out.only().0, TAP);
    assert!(lab.worker.neighbours6().is_empty());
    // An on-link host that never answers: three solicitations, then the reply is dropped.
    let silent = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x50);
    let out = lab.send(WAN, &echo6(silent, DIP6_WAN, 1));
    assert_eq!(out.wan.len(), 1);
    let mut solicits = 1;
    for _ in 0..5 {
        lab.advance(1_001);
        solicits += lab.slow().wan.len();
    }
    let c = lab.worker.counters();
    assert_eq!((solicits, c.neighbour_solicits()), (3, 3));
    assert_eq!(c.drop_count(DropReason::NeighbourUnresolved), 1);
    assert!(lab.worker.neighbours6().is_empty());
}

/// An IPv6 TCP SYN (checksum left zero: the director does not look at it on these paths).
fn tcp6_frame(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 20];
    f[0..6].copy_from_slice(&WAN_MAC);
    f[6..12].copy_from_slice(&ROUTER_MAC);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&20u16.to_be_bytes());
    f[20] = 6;
    f[21] = 60;
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    f[54..56].copy_from_slice(&40000u16.to_be_bytes());
    f[56..58].copy_from_slice(&179u16.to_be_bytes());
    f[66] = 0x50;
    f[67] = SYN;
    f
}

#[test]
fn bad_neighbour_discovery_and_unforwarded_ipv6_are_counted_and_change_nothing() {
    let mut lab = lab6();
    let asker = [0x02, 0, 0, 0, 0xaa, 0xaa];
    let good = ns(ROUTER6, asker, DIP6_WAN, true);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    let mut routed = good.clone();
    routed[21] = 254;
    cases.push((routed, DropReason::BadNeighbourDiscovery));
    let mut csum = good.clone();
    csum[70] ^= 0x40;
    cases.push((csum, DropReason::BadNeighbourDiscovery));
    let mut short = good.clone();
    short[18..20].copy_from_slice(&16u16.to_be_bytes());
    cases.push((short, DropReason::BadNeighbourDiscovery));
    let mut mcast_src = good.clone();
    mcast_src[22] = 0xff;
    cases.push((mcast_src, DropReason::MartianAddress));
    // At a group MAC that is not its destination's; to a group beyond the link.
    let mut wrong_mac = good.clone();
    wrong_mac[0..6].copy_from_slice(&ALL_NODES_MAC);
    cases.push((wrong_mac, DropReason::OtherHost));
    let site: Ipv6Addr = "ff05::1:3".parse().unwrap();
    let echo = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"x",
    };
    cases.push((
        icmpv6_frame(asker, group_mac(site), (ROUTER6, site), 64, &echo),
        DropReason::OtherHost,
    ));
    // Not to a DIP: IPv6 is not forwarded.
    cases.push((
        icmpv6_frame(asker, WAN_MAC, (CLIENT6, ROUTER6), 64, &echo),
        DropReason::Ipv6NotSupported,
    ));
    cases.push((tcp6_frame(CLIENT6, ROUTER6), DropReason::Ipv6NotSupported));
    // A truncated header.
    cases.push((good[..40].to_vec(), DropReason::MalformedIpv6));
    for (frame, reason) in cases {
        let before = lab.worker.counters().drop_count(reason);
        let out = lab.send(WAN, &frame);
        assert_eq!(out.total(), 0, "{reason:?}");
        assert_eq!(
            lab.worker.counters().drop_count(reason),
            before + 1,
            "{reason:?}"
        );
    }
    let c = lab.worker.counters();
    assert_eq!((c.neighbour_adverts(), c.exception()), (0, 0));
    assert!(c.balanced());
    // Still answering.
    let out = lab.send(WAN, &good);
    assert_eq!((out.wan.len(), out.tap.len()), (1, 1));
}

/// `frame` (an untagged IPv6 frame) with an extension header `ext` (type `ty`, its next
/// header filled in) inserted after the fixed header.
fn with_extension(frame: &[u8], ty: u8, ext: &[u8]) -> Vec<u8> {
    let mut f = frame[..54].to_vec();
    let mut h = ext.to_vec();
    h[0] = f[20];
    f[20] = ty;
    f.extend_from_slice(&h);
    f.extend_from_slice(&frame[54..]);
    let payload = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f
}

#[test]
fn extension_headers_follow_their_policy_and_are_counted() {
    let mut lab = lab6();
    let echo = echo6(ROUTER6, DIP6_WAN, 1);
    let pad = [0, 0, 1, 4, 0, 0, 0, 0];
    // Destination options before an echo to a DIP: not answered by rvs, the kernel's.
    let f = with_extension(&echo, 60, &pad);
    let out = lab.send(WAN, &f);
    assert_eq!(out.only(), (TAP, &f[..]));
    // A routing header with no segments left is passed over likewise; one with segments
    // left is refused.
    let f = with_extension(&echo, 43, &[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(lab.send(WAN, &f).only().0, TAP);
    let f = with_extension(&echo, 43, &[0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(lab.send(WAN, &f).total(), 0);
    // A fragment to a DIP: the kernel reassembles its own.
    let f = with_extension(&echo, 44, &[0, 0, 0, 1, 0, 0, 0, 9]);
    assert_eq!(lab.send(WAN, &f).only().0, TAP);
    // Hop-by-hop options (an MLD report carries them) to a link-local group: the kernel's.
    let mld: Ipv6Addr = "ff02::16".parse().unwrap();
    let mut report = icmpv6_frame(ROUTER_MAC, group_mac(mld), (ROUTER6, mld), 1, &{
        Icmpv6Repr::EchoRequest {
            ident: 0,
            seq_no: 0,
            data: &[0; 4],
        }
    });
    report[54] = 143;
    let f = with_extension(&report, 0, &[0, 0, 5, 2, 0, 0, 1, 0]);
    assert_eq!(lab.send(WAN, &f).only().0, TAP);
    // Hop-by-hop options anywhere but first: malformed.
    let f = with_extension(&with_extension(&echo, 0, &pad), 60, &pad);
    assert_eq!(lab.send(WAN, &f).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(
        (
            c.ipv6_destination_options(),
            c.ipv6_routing(),
            c.ipv6_fragments(),
            c.ipv6_hop_by_hop()
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(c.drop_count(DropReason::Ipv6RoutingHeader), 1);
    assert_eq!(c.drop_count(DropReason::MalformedIpv6), 1);
    assert_eq!((c.exception(), c.icmp_echo_replies()), (4, 0));
}

#[test]
fn a_static_ipv6_neighbour_needs_no_solicitation() {
    let mut lab = lab6();
    lab.worker
        .neighbours6_mut()
        .insert_static(ROUTER6, dataplane::wire::EthernetAddress(ROUTER_MAC));
    let out = lab.send(WAN, &echo6(CLIENT6, DIP6_WAN, 9));
    let (p, f) = out.only();
    assert_eq!(p, WAN);
    assert_echo_reply(f, 9);
    assert_eq!(lab.worker.counters().neighbour_solicits(), 0);
}
