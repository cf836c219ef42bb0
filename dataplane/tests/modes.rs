//! Golden tests per forwarding mode: a client's SYN / data / FIN exchange through the worker,
//! every output frame checked field by field, checksums verified by smoltcp's full computation.

mod common;

use common::*;
use conntrack::{Proto, SessionState, TcpState};
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};
use smoltcp::wire::Ipv4Packet;

#[test]
fn fullnat_tcp_both_directions() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::new(&cfg);
    let free_before = lab.worker.lip_pool().unwrap().available();

    // Client SYN → RS, with source LIP:lport and destination RIP:rport.
    let syn = Frame::tcp(CIP, 40000, VIP, 80, SYN).build();
    let out = lab.send(WAN, &syn);
    let (port, f) = out.only();
    assert_eq!(port, LAN);
    let s = decode(f);
    assert_eq!(s.dst_mac, rs_mac(0));
    assert_eq!(s.src_mac, LAN_MAC);
    assert_eq!(s.vlan, None);
    assert!(s.src == LIP1 || s.src == LIP2, "source is a LIP: {}", s.src);
    let (lip, lport) = (s.src, s.sport);
    assert!(lport >= 1024);
    assert_eq!(s.dst, RS[0]);
    assert_eq!(s.dport, 8080);
    assert_eq!(s.ttl, 63);
    assert_eq!(s.flags, SYN);
    assert_eq!(s.proto, 6);
    assert!(s.df);
    assert_eq!(state_of(&lab), TcpState::SynRecv);
    assert_eq!(lab.worker.lip_pool().unwrap().available(), free_before - 1);

    // RS SYN/ACK → client: source VIP:vport, destination CIP:cport.
    let synack = Frame::tcp(RS[0], 8080, lip, lport, SYN | ACK)
        .via_rs(0)
        .build();
    let out = lab.send(LAN, &synack);
    let (port, f) = out.only();
    assert_eq!(port, WAN);
    let s = decode(f);
    assert_eq!(s.dst_mac, ROUTER_MAC);
    assert_eq!(s.src_mac, WAN_MAC);
    assert_eq!((s.src, s.sport), (VIP, 80));
    assert_eq!((s.dst, s.dport), (CIP, 40000));
    assert_eq!(s.ttl, 63);
    assert_eq!(s.flags, SYN | ACK);
    assert_eq!(state_of(&lab), TcpState::SynAck);

    // Client ACK with data → RS; payload untouched.
    let data = Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH)
        .payload(b"GET / HTTP/1.0\r\n\r\n")
        .build();
    let out = lab.send(WAN, &data);
    let s = decode(&out.lan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (lip, lport, RS[0], 8080));
    assert_eq!(s.payload, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(state_of(&lab), TcpState::Established);

    // Odd-length payload back: the incremental UDP/TCP update must handle it.
    let resp = Frame::tcp(RS[0], 8080, lip, lport, ACK | PSH)
        .via_rs(0)
        .payload(b"HTTP/1.0 200 OK\r\n\r\nx")
        .build();
    let out = lab.send(LAN, &resp);
    let s = decode(&out.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 80, CIP, 40000));
    assert_eq!(s.payload, b"HTTP/1.0 200 OK\r\n\r\nx");

    // Client closes first: FIN_WAIT; server FIN: TIME_WAIT.
    let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, FIN | ACK).build());
    assert_eq!(decode(&out.lan[0]).flags, FIN | ACK);
    assert_eq!(state_of(&lab), TcpState::CloseWait);
    let out = lab.send(
        LAN,
        &Frame::tcp(RS[0], 8080, lip, lport, FIN | ACK)
            .via_rs(0)
            .build(),
    );
    assert_eq!(decode(&out.wan[0]).flags, FIN | ACK);
    assert_eq!(state_of(&lab), TcpState::TimeWait);
    let out = lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, ACK).build());
    assert_eq!(out.lan.len(), 1);

    // TIME_WAIT lasts 120 s; then the session expires and its LIP port comes back.
    lab.advance(119_999);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    lab.advance(1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(lab.worker.counters().sessions_expired(), 1);
    assert_eq!(lab.worker.lip_pool().unwrap().available(), free_before);
    assert_eq!(lab.worker.counters().total_drops(), 0);
}

#[test]
fn nat_tcp_both_directions_with_port_mapping() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(1, 8080, 1, ForwardMode::Nat)],
    );
    let mut lab = Lab::new(&cfg);

    let out = lab.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, SYN).build());
    let (port, f) = out.only();
    assert_eq!(port, LAN);
    let s = decode(f);
    assert_eq!((s.dst_mac, s.src_mac), (rs_mac(1), LAN_MAC));
    assert_eq!(
        (s.src, s.sport),
        (CIP, 40001),
        "NAT keeps the client address"
    );
    assert_eq!((s.dst, s.dport), (RS[1], 8080));
    assert_eq!(s.ttl, 63);

    // RS replies to the client address directly (its gateway is the director).
    let out = lab.send(
        LAN,
        &Frame::tcp(RS[1], 8080, CIP, 40001, SYN | ACK)
            .via_rs(1)
            .build(),
    );
    let (port, f) = out.only();
    assert_eq!(port, WAN);
    let s = decode(f);
    assert_eq!((s.dst_mac, s.src_mac), (ROUTER_MAC, WAN_MAC));
    assert_eq!((s.src, s.sport), (VIP, 80));
    assert_eq!((s.dst, s.dport), (CIP, 40001));
    assert_eq!(s.ttl, 63);

    let out = lab.send(
        WAN,
        &Frame::tcp(CIP, 40001, VIP, 80, ACK)
            .payload(b"hello")
            .build(),
    );
    let s = decode(&out.lan[0]);
    assert_eq!(
        (s.dst, s.dport, s.payload.as_slice()),
        (RS[1], 8080, &b"hello"[..])
    );
    assert_eq!(state_of(&lab), TcpState::Established);

    // Server closes first this time.
    lab.send(
        LAN,
        &Frame::tcp(RS[1], 8080, CIP, 40001, FIN | ACK)
            .via_rs(1)
            .build(),
    );
    assert_eq!(state_of(&lab), TcpState::FinWait);
    lab.send(WAN, &Frame::tcp(CIP, 40001, VIP, 80, FIN | ACK).build());
    assert_eq!(state_of(&lab), TcpState::TimeWait);
    assert_eq!(lab.worker.counters().total_drops(), 0);
}

#[test]
fn dr_rewrites_only_the_mac() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(2, 80, 1, ForwardMode::Dr)],
    );
    let mut lab = Lab::new(&cfg);
    for flags in [SYN, ACK, ACK | PSH, FIN | ACK] {
        let input = Frame::tcp(CIP, 40002, VIP, 80, flags)
            .payload(b"dr-data")
            .build();
        let out = lab.send(WAN, &input);
        let (port, f) = out.only();
        assert_eq!(port, LAN);
        assert_eq!(&f[0..6], &rs_mac(2));
        assert_eq!(&f[6..12], &LAN_MAC);
        assert_eq!(
            &f[12..],
            &input[12..],
            "DR leaves everything after the MACs untouched"
        );
        let s = decode(f);
        assert_eq!((s.dst, s.ttl), (VIP, 64));
    }
    // DR sessions see one direction only (IPVS INPUT_ONLY table): FIN from the client → FIN_WAIT.
    assert_eq!(state_of(&lab), TcpState::FinWait);
}

#[test]
fn tun_encapsulates_the_untouched_packet() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(1, 80, 1, ForwardMode::Tun)],
    );
    let mut lab = Lab::new(&cfg);
    for (i, df) in [(0u16, true), (1, false)] {
        let mut fr = Frame::tcp(CIP, 40003 + i, VIP, 80, SYN);
        fr.df = df;
        fr.tos = 0x28;
        fr.ttl = 17;
        let input = fr.build();
        let out = lab.send(WAN, &input);
        let (port, f) = out.only();
        assert_eq!(port, LAN);
        assert_eq!((&f[0..6], &f[6..12]), (&rs_mac(1)[..], &LAN_MAC[..]));
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let outer = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(outer.header_len(), 20);
        assert_eq!(u8::from(outer.next_header()), 4, "IPIP");
        assert_eq!(outer.src_addr(), DIP_LAN);
        assert_eq!(outer.dst_addr(), RS[1]);
        assert_eq!(
            outer.hop_limit(),
            17,
            "outer TTL copied from the inner packet"
        );
        assert_eq!(
            outer.dont_frag(),
            df,
            "outer DF copied from the inner packet"
        );
        assert_eq!(f[15], 0x28, "outer TOS copied");
        assert_eq!(outer.total_len() as usize, 20 + input.len() - 14);
        assert_eq!(&f[34..], &input[14..], "inner packet untouched");
    }
}

#[test]
fn tun_too_big_with_df_sends_fragmentation_needed() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(1, 80, 1, ForwardMode::Tun)],
    );
    let mut lab = Lab::new(&cfg);
    // 1500-byte packet: with the 20-byte outer header it cannot fit a 1500 MTU.
    let input = Frame::tcp(CIP, 40010, VIP, 80, SYN)
        .payload(&[7u8; 1460])
        .build();
    let out = lab.send(WAN, &input);
    assert!(out.lan.is_empty());
    let (port, f) = out.only();
    assert_eq!(port, WAN);
    let s = decode(f);
    assert_eq!((s.src, s.dst, s.proto), (DIP_WAN, CIP, 1));
    assert_eq!(s.dst_mac, ROUTER_MAC);
    let icmp = &f[s.l3 + 20..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable / fragmentation needed"
    );
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480, "next-hop MTU");
    assert_eq!(
        &icmp[8..36],
        &input[14..42],
        "quotes the IP header and 8 bytes"
    );
    assert_eq!(lab.worker.counters().drop_count(DropReason::TooBig), 1);

    // Without DF there is no ICMP: the encapsulated packet leaves as two outer fragments.
    let mut fr = Frame::tcp(CIP, 40011, VIP, 80, SYN).payload(&[7u8; 1460]);
    fr.df = false;
    let out = lab.send(WAN, &fr.build());
    assert_eq!((out.lan.len(), out.wan.len()), (2, 0));
    assert_eq!(lab.worker.counters().drop_count(DropReason::TooBig), 1);
    assert_eq!(lab.worker.counters().tunnel_fragmented(), 1);
}

#[test]
fn fullnat_udp_and_zero_checksum() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 5353, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::new(&cfg);
    let out = lab.send(
        WAN,
        &Frame::udp(CIP, 5000, VIP, 53).payload(b"query").build(),
    );
    let s = decode(&out.lan[0]);
    assert_eq!((s.dst, s.dport, s.proto), (RS[0], 5353, 17));
    let (lip, lport) = (s.src, s.sport);
    assert_eq!(
        lab.worker.sessions().iter().next().unwrap().1.state,
        SessionState::Udp
    );

    let out = lab.send(
        LAN,
        &Frame::udp(RS[0], 5353, lip, lport)
            .via_rs(0)
            .payload(b"answer")
            .build(),
    );
    let s = decode(&out.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 53, CIP, 5000));

    // A datagram without checksum (0, RFC 768) stays without one.
    let mut fr = Frame::udp(CIP, 5000, VIP, 53).payload(b"q2");
    fr.l4 = L4Spec::Udp {
        sport: 5000,
        dport: 53,
        zero_csum: true,
    };
    let out = lab.send(WAN, &fr.build());
    let f = &out.lan[0];
    assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());

    // UDP sessions last 300 s after the last datagram.
    lab.advance(299_999);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    lab.advance(1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
}

#[test]
fn nat_udp_reply() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(2, 53, 1, ForwardMode::Nat)],
    );
    let mut lab = Lab::new(&cfg);
    let out = lab.send(WAN, &Frame::udp(CIP, 5001, VIP, 53).payload(b"q").build());
    let s = decode(&out.lan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (CIP, 5001, RS[2], 53));
    let out = lab.send(
        LAN,
        &Frame::udp(RS[2], 53, CIP, 5001)
            .via_rs(2)
            .payload(b"a")
            .build(),
    );
    let s = decode(&out.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 53, CIP, 5001));
}

#[test]
fn icmp_echo_service_fullnat_and_nat() {
    for mode in [ForwardMode::FullNat, ForwardMode::Nat] {
        let cfg = config(Proto::Icmp, 0, SchedKind::Rr, &[dest(0, 0, 1, mode)]);
        let mut lab = Lab::new(&cfg);
        let out = lab.send(WAN, &Frame::echo(CIP, VIP, true, 0x4242).build());
        let s = decode(&out.lan[0]);
        assert_eq!((s.dst, s.proto, s.flags), (RS[0], 1, 8));
        let (src, ident) = (s.src, s.sport);
        match mode {
            ForwardMode::FullNat => assert!(src == LIP1 || src == LIP2),
            _ => assert_eq!((src, ident), (CIP, 0x4242)),
        }
        assert_eq!(
            lab.worker.sessions().iter().next().unwrap().1.state,
            SessionState::Icmp
        );
        let out = lab.send(
            LAN,
            &Frame::echo(RS[0], src, false, ident).via_rs(0).build(),
        );
        let s = decode(&out.wan[0]);
        assert_eq!(
            (s.src, s.dst, s.flags, s.sport),
            (VIP, CIP, 0, 0x4242),
            "{mode:?}"
        );
    }
}

#[test]
fn vlan_ingress_and_egress() {
    let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &[]);
    cfg.interfaces.push(dataplane::snapshot::InterfaceConfig {
        addrs6: Vec::new(),
        name: "lan0.100".into(),
        port: LAN,
        vlan: Some(100),
        addrs: vec![dataplane::snapshot::Cidr::new(
            std::net::Ipv4Addr::new(10, 2, 0, 1),
            24,
        )],
        mtu: 1500,
    });
    cfg.lips = vec![std::net::Ipv4Addr::new(10, 2, 0, 201)];
    let rs = std::net::Ipv4Addr::new(10, 2, 0, 11);
    let key = sched::ServiceKey {
        proto: Proto::Tcp,
        vip: VIP.into(),
        port: 80,
    };
    let svc = cfg.services.get_mut(&key).unwrap();
    svc.add_dest(sched::Dest {
        addr: rs.into(),
        port: 80,
        weight: 1,
        mode: ForwardMode::FullNat,
    })
    .unwrap();
    let mut lab = Lab::new(&cfg);
    lab.worker
        .neighbours_mut()
        .insert_static(rs, dataplane::wire::EthernetAddress(rs_mac(0)));

    // Client frames arrive tagged 7 on WAN? No interface: counted and dropped.
    let mut fr = Frame::tcp(CIP, 40020, VIP, 80, SYN);
    fr.vlan = Some(7);
    lab.send(WAN, &fr.build());
    assert_eq!(lab.worker.counters().drop_count(DropReason::UnknownVlan), 1);

    let out = lab.send(WAN, &Frame::tcp(CIP, 40020, VIP, 80, SYN).build());
    let s = decode(&out.lan[0]);
    assert_eq!(s.vlan, Some(100), "egress toward the RS is tagged");
    assert_eq!((s.dst, s.src), (rs, std::net::Ipv4Addr::new(10, 2, 0, 201)));
    let mut back = Frame::tcp(rs, 80, s.src, s.sport, SYN | ACK).via_rs(0);
    back.vlan = Some(100);
    let out = lab.send(LAN, &back.build());
    let s = decode(&out.wan[0]);
    assert_eq!(s.vlan, None, "egress toward the client is untagged");
    assert_eq!((s.src, s.dst), (VIP, CIP));
}

/// Inserts 4 bytes of IPv4 options (NOP NOP NOP EOL) into an untagged frame.
fn with_ip_options(f: &[u8]) -> Vec<u8> {
    let mut g = f[..34].to_vec();
    g.extend_from_slice(&[1, 1, 1, 0]);
    g.extend_from_slice(&f[34..]);
    g[14] = 0x46;
    let total = u16::from_be_bytes([g[16], g[17]]) + 4;
    g[16..18].copy_from_slice(&total.to_be_bytes());
    g[24..26].fill(0);
    let c = dataplane::checksum::checksum(&g[14..38]);
    g[24..26].copy_from_slice(&c.to_be_bytes());
    g
}

#[test]
fn ip_options_are_kept_and_l4_found_behind_them() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::new(&cfg);
    let input = with_ip_options(&Frame::tcp(CIP, 40030, VIP, 80, SYN).payload(b"opt").build());
    let out = lab.send(WAN, &input);
    let f = &out.lan[0];
    let s = decode(f);
    assert_eq!(f[14], 0x46, "IHL 6 kept");
    assert_eq!(&f[34..38], &[1, 1, 1, 0], "options kept");
    assert_eq!(
        (s.dst, s.dport, s.payload.as_slice()),
        (RS[0], 8080, &b"opt"[..])
    );
    let (lip, lport) = (s.src, s.sport);
    let back = with_ip_options(
        &Frame::tcp(RS[0], 8080, lip, lport, SYN | ACK)
            .via_rs(0)
            .build(),
    );
    let out = lab.send(LAN, &back);
    let s = decode(&out.wan[0]);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (VIP, 80, CIP, 40030));
}

#[test]
fn stacked_vlan_tags_are_dropped() {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let mut lab = Lab::new(&cfg);
    let f = Frame::tcp(CIP, 40031, VIP, 80, SYN).build();
    let mut qinq = f[..12].to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x0b]);
    qinq.extend_from_slice(&f[12..]);
    assert_eq!(lab.send(WAN, &qinq).total(), 0);
    assert_eq!(lab.worker.counters().drop_count(DropReason::BadVlan), 1);
    assert_eq!(lab.send(WAN, &f[..16]).total(), 0, "cut inside the tag");
}

#[test]
fn workers_use_disjoint_lip_port_slices() {
    let cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::FullNat)],
    );
    let mut seen: Vec<Vec<u16>> = Vec::new();
    for id in 0..2 {
        let wcfg = dataplane::worker::WorkerConfig {
            id,
            workers: 2,
            ..Default::default()
        };
        let mut lab = Lab::with(&cfg, wcfg, true);
        let ports: Vec<u16> = (0..64)
            .map(|i| {
                decode(
                    &lab.send(WAN, &Frame::udp(CIP, 9000 + i, VIP, 53).build())
                        .lan[0],
                )
                .sport
            })
            .collect();
        seen.push(ports);
    }
    let (a_max, b_min) = (seen[0].iter().max().unwrap(), seen[1].iter().min().unwrap());
    assert!(
        a_max < b_min,
        "worker 0 ports {a_max} below worker 1 ports {b_min}"
    );
    assert!(seen.iter().flatten().all(|p| *p >= 1024));
}
