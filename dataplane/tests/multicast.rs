//! VRRP and the other link-local multicast: adverts from the wire reach the kernel behind the
//! exception path (keepalived on the TAP), and the kernel's adverts and gratuitous ARPs leave on
//! the data port unchanged; unicast VRRP to a DIP takes the exception path like any traffic
//! for the director.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::wire::ArpOperation;
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use std::net::Ipv4Addr;

const VRRP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

fn lab() -> Lab {
    Lab::new(&config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    ))
}

/// An untagged IPv4 frame with protocol `proto` and `payload`, header checksum right.
fn ip_frame(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let (dst_mac, src_mac) = macs;
    let mut f = vec![0u8; 14 + 20];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len()) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[22] = ttl;
    f[23] = proto;
    f[26..30].copy_from_slice(&src.octets());
    f[30..34].copy_from_slice(&dst.octets());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    testkit::refresh_ip_checksum(&mut f, 14);
    f
}

/// A VRRPv2 advertisement (RFC 3768 5.1: VRID 51, priority 100, one address, the VIP) from
/// `src` with source MAC `src_mac`, to `dst` on `dst_mac`.
fn vrrp_advert(macs: ([u8; 6], [u8; 6]), src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0x21, 51, 100, 1, 0, 1, 0, 0];
    v.extend_from_slice(&VIP.octets());
    v.extend_from_slice(&[0; 8]); // authentication data (none)
    let mut sum: u32 = v
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    v[6..8].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip_frame(macs, src, dst, 112, 255, &v)
}

#[test]
fn a_vrrp_advert_from_the_wire_reaches_the_kernel() {
    let mut lab = lab();
    let advert = vrrp_advert(
        (VRRP_MAC, ROUTER_MAC),
        Ipv4Addr::new(192, 0, 2, 2),
        VRRP_GROUP,
    );
    let out = lab.send(WAN, &advert);
    // Unchanged but for the Ethernet padding, which the data path trims.
    assert_eq!(out.tap, vec![advert[..54].to_vec()], "to the kernel");
    assert!(out.wan.is_empty() && out.lan.is_empty());
    let c = lab.worker.counters();
    assert_eq!((c.multicast_to_kernel(), c.exception()), (1, 1));

    // Other link-local groups go the same way (all-hosts, IGMP's group); groups beyond
    // 224.0.0.0/24, and a group address on a MAC that is not its own, do not.
    let all_hosts = ip_frame(
        ([0x01, 0x00, 0x5e, 0, 0, 1], ROUTER_MAC),
        ROUTER,
        Ipv4Addr::new(224, 0, 0, 1),
        2,
        1,
        &[0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0],
    );
    assert_eq!(
        lab.send(WAN, &all_hosts).tap,
        vec![all_hosts[..42].to_vec()]
    );
    let site = ip_frame(
        ([0x01, 0x00, 0x5e, 0x01, 0x01, 0x01], ROUTER_MAC),
        ROUTER,
        Ipv4Addr::new(239, 1, 1, 1),
        17,
        1,
        &[0x13, 0x88, 0x13, 0x88, 0, 8, 0, 0],
    );
    assert_eq!(lab.send(WAN, &site).total(), 0);
    let wrong_mac = vrrp_advert(
        ([0x01, 0x00, 0x5e, 0, 0, 0x13], ROUTER_MAC),
        ROUTER,
        VRRP_GROUP,
    );
    assert_eq!(lab.send(WAN, &wrong_mac).total(), 0);
    // A port without an exception path has nowhere to send it.
    let on_lan = vrrp_advert((VRRP_MAC, rs_mac(0)), RS[0], VRRP_GROUP);
    assert_eq!(lab.send(LAN, &on_lan).total(), 0);
    let c = lab.worker.counters();
    assert_eq!(c.multicast_to_kernel(), 3);
    assert_eq!(c.drop_count(DropReason::OtherHost), 2);
    assert_eq!(c.drop_count(DropReason::NoExceptionPath), 1);
    assert!(c.balanced());
}

#[test]
fn the_kernels_adverts_leave_on_the_data_port_unchanged() {
    let mut lab = lab();
    // keepalived on the TAP sends from the TAP's MAC, which rvsd sets to its data port's.
    let advert = vrrp_advert((VRRP_MAC, WAN_MAC), DIP_WAN, VRRP_GROUP);
    let out = lab.send(TAP, &advert);
    assert_eq!(out.wan, vec![advert]);
    assert!(out.lan.is_empty() && out.tap.is_empty());
    // Its gratuitous ARPs too.
    let garp = testkit::arp_frame(
        ArpOperation::Request.into(),
        WAN_MAC,
        [0xff; 6],
        VIP,
        [0xff; 6],
        VIP,
    );
    assert_eq!(lab.send(TAP, &garp).wan, vec![garp]);
}

#[test]
fn unicast_vrrp_to_a_dip_reaches_the_kernel() {
    let mut lab = lab();
    let peer = Ipv4Addr::new(192, 0, 2, 2);
    let advert = vrrp_advert((WAN_MAC, ROUTER_MAC), peer, DIP_WAN);
    let out = lab.send(WAN, &advert);
    assert_eq!(out.tap, vec![advert[..54].to_vec()]);
    assert_eq!(lab.worker.counters().exception(), 1);
    assert_eq!(lab.worker.counters().multicast_to_kernel(), 0);
}
