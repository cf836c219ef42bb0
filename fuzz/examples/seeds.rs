//! Writes the seed corpora of the three fuzz targets:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! - `corpus/pipeline/`: scripts (see `rvs_fuzz::pipeline`) of well-formed frames built with
//!   testkit's `Frame` builder — TCP handshakes and teardowns, UDP, ICMP echo, through every
//!   forwarding mode, the real servers' replies built by reflecting what the director sent,
//!   ARP, 802.1Q tags, fragments, IP options, the exception path both ways, neighbour
//!   resolution, snapshot changes, expiry.
//! - `corpus/control_request/`: framed requests of every operation (`proto::Request`).
//! - `corpus/config/`: the configurations of `examples/`, `docker/` and `lab/`, and variants
//!   using every section and key.
//! - `corpus/sync_decode/`: session sync datagrams: sessions of every protocol, mode, TCP state
//!   and SYN proxy state, IPv6 sessions of every mode (NAT64 included), templates, unknown
//!   record types, and one refusal of each kind.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- sync_decode` writes only the
//! targets named.
//!
//! Seeds are starting points; `scripts/fuzz` then minimises each corpus (`cargo fuzz cmin`).

use conntrack::{Proto, SessionState, TcpState};
use dataplane::proxy_protocol::{Carrier, Phase};
use dataplane::sync::wire::{header, mode, record_header, session, session6, template};
use dataplane::sync::{
    DatagramWriter, ServiceView, SyncHeader, SyncPreamble, SyncProxy, SyncRecord, SyncSession,
    SyncSession6, SyncTemplate, MTU_1500_DATAGRAM_LEN,
};
use proto::{ConnCursor, DestSpec, Envelope, ProtoName, Request, SvcKey};
use rvs_fuzz::pipeline::{
    self, encode, Record, DIP6_WAN, DIP_VLAN, LAN_GW, LAN_GW_MAC, LAN_VLAN, ROUTER6, RS_FAR,
    RS_VLAN, RS_VLAN_MAC, VIP2, VIP6, VLAN_MTU,
};
use sched::ForwardMode;
use smoltcp::wire::{Icmpv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use testkit::{
    arp_frame, fragment6, icmp_error_frame, icmpv6_frame, rs_mac, Frame, Frame6, ACK, CIP, DIP_LAN,
    DIP_WAN, FIN, LAN, LAN_MAC, LIP1, PSH, ROUTER, ROUTER_MAC, RS, RST, SYN, TAP, VIP, WAN,
    WAN_MAC,
};

/// A client on the WAN subnet itself (its replies need ARP).
const ONLINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const ONLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x50];

/// A pipeline script under construction.
#[derive(Default)]
struct Script(Vec<u8>);

impl Script {
    /// A frame on `port`, alone in its cycle.
    fn send(&mut self, port: u16, f: &[u8]) -> &mut Self {
        self.frame(port, f, true, 0, false)
    }

    /// A frame that does not end the cycle.
    fn batch(&mut self, port: u16, f: &[u8]) -> &mut Self {
        self.frame(port, f, false, 0, false)
    }

    fn frame(&mut self, port: u16, f: &[u8], end: bool, step: usize, slow: bool) -> &mut Self {
        encode(
            &mut self.0,
            &Record::Frame {
                port,
                bytes: f,
                repair: false,
                end,
                step,
                slow,
            },
        );
        self
    }

    /// A frame the harness should repair (reflected replies).
    fn repaired(&mut self, port: u16, f: &[u8]) -> &mut Self {
        encode(
            &mut self.0,
            &Record::Frame {
                port,
                bytes: f,
                repair: true,
                end: true,
                step: 1,
                slow: false,
            },
        );
        self
    }

    /// Later frames go to worker `w`'s queues.
    fn worker(&mut self, w: usize) -> &mut Self {
        encode(&mut self.0, &Record::Worker(w));
        self
    }

    fn publish(&mut self, i: usize) -> &mut Self {
        encode(&mut self.0, &Record::Publish(i));
        self
    }

    /// What the director sent on `port` in the last cycle (run from the start).
    fn last_out(&self, port: u16) -> Option<Vec<u8>> {
        let outs = pipeline::trace(&self.0);
        outs.last()?
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, f)| f.clone())
    }

    /// Sends back, on `port`, the reply to what the director last sent there: MACs,
    /// addresses and ports swapped, TCP flags `flags`, ICMP echo request → reply.
    fn reply(&mut self, port: u16, flags: u8) -> &mut Self {
        let out = self
            .last_out(port)
            .unwrap_or_else(|| panic!("seed: nothing was sent on port {port} to answer"));
        self.repaired(port, &reflect(&out, flags))
    }
}

/// The reply a peer would send to `f` (see [`Script::reply`]); checksums are left for the
/// harness to repair.
fn reflect(f: &[u8], flags: u8) -> Vec<u8> {
    let mut r = f.to_vec();
    let (dst, src) = (f[0..6].to_vec(), f[6..12].to_vec());
    r[0..6].copy_from_slice(&src);
    r[6..12].copy_from_slice(&dst);
    if f[12..14] == [0x86, 0xdd] {
        // IPv6 (TCP or UDP right after the fixed header): addresses, ports, flags.
        let (a, b) = (f[22..38].to_vec(), f[38..54].to_vec());
        r[22..38].copy_from_slice(&b);
        r[38..54].copy_from_slice(&a);
        r[21] = 64;
        let (sp, dp) = (f[54..56].to_vec(), f[56..58].to_vec());
        r[54..56].copy_from_slice(&dp);
        r[56..58].copy_from_slice(&sp);
        if f[20] == 6 {
            let seq = u32::from_be_bytes([f[58], f[59], f[60], f[61]]);
            r[58..62].copy_from_slice(&f[62..66]);
            r[62..66].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
            r[54 + 13] = flags;
        }
        return r;
    }
    let l3 = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let ip = &mut r[l3..];
    let hl = ((ip[0] & 0x0f) as usize) * 4;
    let (a, b) = (ip[12..16].to_vec(), ip[16..20].to_vec());
    ip[12..16].copy_from_slice(&b);
    ip[16..20].copy_from_slice(&a);
    ip[8] = 64;
    let l4 = &mut ip[hl..];
    match f[l3 + 9] {
        6 | 17 => {
            let (s, d) = (l4[0..2].to_vec(), l4[2..4].to_vec());
            l4[0..2].copy_from_slice(&d);
            l4[2..4].copy_from_slice(&s);
            if f[l3 + 9] == 6 {
                // The peer's next sequence number is what was acknowledged; it acknowledges
                // the segment as a SYN or FIN (one sequence number).
                let (seq, ack) = (l4[4..8].to_vec(), l4[8..12].to_vec());
                let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
                l4[4..8].copy_from_slice(&ack);
                l4[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
                l4[13] = flags;
            }
        }
        1 => l4[0] = 0,
        _ => {}
    }
    r
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Frame {
    Frame::tcp(src, sport, dst, dport, flags)
}

/// `f` as sent by a host on the LAN side with `mac`, optionally tagged.
fn from_lan(mut f: Frame, mac: [u8; 6], vlan: Option<u16>) -> Frame {
    f.dst_mac = LAN_MAC;
    f.src_mac = mac;
    f.vlan = vlan;
    f
}

/// `frame` with 4 bytes of IP options (NOP NOP NOP EOL), lengths and checksums left for the
/// harness's repair bit to fix (the record sets it).
fn with_ip_options(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&frame[34..]);
    f[14] = 0x46;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    pipeline::repair(&mut f);
    f
}

/// `frame` as an IPv4 fragment: more-fragments set (first) or offset `off` × 8 bytes.
fn fragment(frame: &[u8], more: bool, off: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    let v = (if more { 0x2000 } else { 0 }) | off;
    f[20..22].copy_from_slice(&v.to_be_bytes());
    pipeline::repair(&mut f);
    f
}

fn pipeline_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |name, s: &Script| seeds.push((name, s.0.clone()));

    // FullNAT TCP: handshake, data, close, and a new SYN on the closed tuple.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 40000, VIP, 80, SYN).build());
    s.reply(LAN, SYN | ACK);
    s.send(
        WAN,
        &tcp(CIP, 40000, VIP, 80, ACK | PSH)
            .payload(b"GET / HTTP/1.0\r\n\r\n")
            .build(),
    );
    s.reply(LAN, ACK | PSH);
    s.send(WAN, &tcp(CIP, 40000, VIP, 80, FIN | ACK).build());
    s.reply(LAN, FIN | ACK);
    s.send(WAN, &tcp(CIP, 40000, VIP, 80, ACK).build());
    s.frame(WAN, &tcp(CIP, 40000, VIP, 80, SYN).build(), true, 3, true);
    add("tcp_fullnat_session", &s);

    // NAT TCP with a reset from the server.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 41000, VIP, 443, SYN).build());
    s.reply(LAN, SYN | ACK);
    s.send(WAN, &tcp(CIP, 41000, VIP, 443, ACK).build());
    s.reply(LAN, RST | ACK);
    add("tcp_nat_reset", &s);

    // NAT UDP on a persistent service: two flows of one client, replies.
    let mut s = Script::default();
    s.send(
        WAN,
        &Frame::udp(CIP, 5000, VIP, 53).payload(b"query-1").build(),
    );
    s.reply(LAN, 0);
    s.send(
        WAN,
        &Frame::udp(CIP, 5001, VIP, 53).payload(b"query-2").build(),
    );
    s.reply(LAN, 0);
    add("udp_nat_persistent", &s);

    // FullNAT UDP to a server on the tagged LAN interface.
    let mut s = Script::default();
    s.send(
        WAN,
        &Frame::udp(CIP, 6000, VIP, 123).payload(&[0x1b; 48]).build(),
    );
    s.reply(LAN, 0);
    add("udp_fullnat_vlan", &s);

    // UDP without checksum.
    let mut s = Script::default();
    let mut f = Frame::udp(CIP, 6001, VIP, 53).payload(b"no-checksum");
    f.l4 = testkit::L4Spec::Udp {
        sport: 6001,
        dport: 53,
        zero_csum: true,
    };
    s.send(WAN, &f.build());
    s.reply(LAN, 0);
    add("udp_zero_checksum", &s);

    // DR: SYN and data to three dests, one on the VLAN.
    let mut s = Script::default();
    for (i, sport) in [42000u16, 42001, 42002].iter().enumerate() {
        s.frame(
            WAN,
            &tcp(CIP, *sport, VIP2, 80, SYN).build(),
            i == 2,
            0,
            false,
        );
    }
    s.send(
        WAN,
        &tcp(CIP, 42000, VIP2, 80, ACK | PSH)
            .payload(b"data")
            .build(),
    );
    add("tcp_dr", &s);

    // TUN: to the VLAN dest (small MTU: a big DF packet gets "fragmentation needed", a big
    // non-DF one is dropped) and to the far dest behind the unresolved LAN gateway, which an
    // ARP reply then resolves.
    let mut s = Script::default();
    // mh hashes the client address: several clients reach both dests.
    let client = |i: u16| Ipv4Addr::new(198, 51, 100, 7 + i as u8);
    for i in 0..4u16 {
        s.batch(WAN, &tcp(client(i), 43000 + i, VIP2, 8000, SYN).build());
    }
    s.send(
        WAN,
        &Frame::udp(CIP, 7000, VIP2, 4789).payload(b"vxlan?").build(),
    );
    let big = vec![0x5a; 1470];
    for i in 0..4u16 {
        let mut f = tcp(client(i), 43000 + i, VIP2, 8000, ACK)
            .payload(&big[..(VLAN_MTU as usize + 150 * i as usize)]);
        f.df = i % 2 == 0;
        s.batch(WAN, &f.build());
    }
    s.send(
        WAN,
        &tcp(CIP, 43000, VIP2, 8000, ACK).payload(b"small").build(),
    );
    s.send(
        LAN,
        &arp_frame(2, LAN_GW_MAC, LAN_MAC, LAN_GW, LAN_MAC, DIP_LAN),
    );
    add("tun_and_neighbour_resolution", &s);

    // ICMP: echo to the ICMP FullNAT service and its reply; echo to a DIP and to a VIP
    // without ICMP service (answered in place); an echo reply nobody asked for.
    let mut s = Script::default();
    s.send(WAN, &Frame::echo(CIP, VIP2, true, 77).build());
    s.reply(LAN, 0);
    s.send(WAN, &Frame::echo(CIP, DIP_WAN, true, 78).build());
    s.send(WAN, &Frame::echo(CIP, VIP, true, 79).build());
    s.send(
        LAN,
        &from_lan(Frame::echo(RS[0], DIP_LAN, true, 80), rs_mac(0), None).build(),
    );
    s.send(WAN, &Frame::echo(CIP, VIP, false, 81).build());
    add("icmp_echo", &s);

    // ARP: requests for a DIP, a VIP, a LIP (on LAN), a tagged request for the VLAN DIP, a
    // request for someone else, a gratuitous reply.
    let mut s = Script::default();
    s.send(
        WAN,
        &arp_frame(1, ROUTER_MAC, [0xff; 6], ROUTER, [0; 6], DIP_WAN),
    );
    s.send(
        WAN,
        &arp_frame(1, ROUTER_MAC, [0xff; 6], ROUTER, [0; 6], VIP),
    );
    s.send(
        LAN,
        &arp_frame(1, rs_mac(1), [0xff; 6], RS[1], [0; 6], LIP1),
    );
    let mut tagged = arp_frame(1, RS_VLAN_MAC, [0xff; 6], RS_VLAN, [0; 6], DIP_VLAN);
    tagged.splice(12..12, [0x81, 0x00, 0x00, LAN_VLAN as u8]);
    s.send(LAN, &tagged);
    s.send(
        WAN,
        &arp_frame(1, ROUTER_MAC, [0xff; 6], ROUTER, [0; 6], ONLINK),
    );
    s.send(
        WAN,
        &arp_frame(2, ONLINK_MAC, [0xff; 6], ONLINK, [0xff; 6], ONLINK),
    );
    add("arp", &s);

    // Exception path both ways: SSH to the DIP goes to the kernel; the kernel answers.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 50000, DIP_WAN, 22, SYN).build());
    let mut answer = tcp(DIP_WAN, 22, CIP, 50000, SYN | ACK);
    answer.dst_mac = ROUTER_MAC;
    answer.src_mac = WAN_MAC;
    s.send(TAP, &answer.build());
    s.send(WAN, &tcp(CIP, 50001, VIP, 22, SYN).build());
    s.send(
        LAN,
        &from_lan(tcp(RS[0], 50002, DIP_LAN, 22, SYN), rs_mac(0), None).build(),
    );
    add("exception_path", &s);

    // Fragments: a datagram to the VIP (the first opens the session, the later one follows
    // it), one ahead of its first (unmatched), one to the DIP (kernel), a big one through TUN
    // over the small VLAN MTU (outer fragments), a flood of first fragments (the table's
    // bucket fills); IP options on a SYN.
    let mut s = Script::default();
    let whole = Frame::udp(CIP, 8000, VIP, 53).payload(&[7; 64]).build();
    s.send(WAN, &fragment(&whole, true, 0));
    s.send(WAN, &fragment(&whole, false, 9));
    let mut ahead = Frame::udp(CIP, 8002, VIP, 53).payload(&[6; 64]);
    ahead.ident = 0x2222;
    s.send(WAN, &fragment(&ahead.build(), false, 9));
    let mut tunneled = Frame::udp(CIP, 7001, VIP2, 4789).payload(&[0x5b; 1400]);
    tunneled.df = false;
    s.send(WAN, &fragment(&tunneled.build(), true, 0));
    for ident in 0..20u16 {
        let mut f = Frame::udp(CIP, 8003, VIP, 53).payload(&[5; 32]);
        f.ident = 0x3000 + ident;
        s.batch(WAN, &fragment(&f.build(), true, 0));
    }
    let to_dip = Frame::udp(CIP, 8001, DIP_WAN, 9999)
        .payload(&[8; 64])
        .build();
    s.send(WAN, &fragment(&to_dip, true, 0));
    s.send(
        WAN,
        &with_ip_options(&tcp(CIP, 44000, VIP, 80, SYN).build()),
    );
    s.send(
        WAN,
        &with_ip_options(&tcp(CIP, 44001, VIP2, 80, SYN).build()),
    );
    add("fragments_and_options", &s);

    // 802.1Q: a tagged frame on the untagged WAN, tagged traffic from the VLAN server, and a
    // DR dest on the VLAN answered through it.
    let mut s = Script::default();
    let mut f = tcp(CIP, 45000, VIP, 80, SYN);
    f.vlan = Some(LAN_VLAN);
    s.send(WAN, &f.build());
    s.send(
        LAN,
        &from_lan(
            tcp(RS_VLAN, 123, DIP_VLAN, 22, SYN),
            RS_VLAN_MAC,
            Some(LAN_VLAN),
        )
        .build(),
    );
    s.send(
        LAN,
        &from_lan(
            Frame::echo(RS_VLAN, DIP_VLAN, true, 5),
            RS_VLAN_MAC,
            Some(LAN_VLAN),
        )
        .build(),
    );
    add("vlan", &s);

    // Configuration changes under live sessions: changed weights and timeouts, no services,
    // a snapshot the worker must refuse, back to the base.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 46000, VIP, 80, SYN).build());
    s.reply(LAN, SYN | ACK);
    s.publish(1);
    s.send(WAN, &tcp(CIP, 46000, VIP, 80, ACK).build());
    s.send(WAN, &tcp(CIP, 46001, VIP, 80, SYN).build());
    s.publish(2);
    s.send(WAN, &tcp(CIP, 46002, VIP, 80, SYN).build());
    s.publish(3);
    s.send(WAN, &tcp(CIP, 46003, VIP, 80, SYN).build());
    s.publish(0);
    s.frame(WAN, &tcp(CIP, 46000, VIP, 80, ACK).build(), true, 6, true);
    add("snapshots", &s);

    // Expiry: a session, the clock jumps past its timeout, a late packet.
    let mut s = Script::default();
    s.send(WAN, &Frame::udp(CIP, 9000, VIP, 53).build());
    s.frame(WAN, &[], true, 7, true);
    s.send(WAN, &Frame::udp(CIP, 9000, VIP, 53).build());
    add("expiry", &s);

    // Drops: IPv6, TTL 1, a service without usable dest, a bad checksum, a frame for another
    // MAC, a truncated frame, a broadcast IPv4 frame.
    let mut s = Script::default();
    let mut v6 = vec![0u8; 54];
    v6[0..6].copy_from_slice(&WAN_MAC);
    v6[6..12].copy_from_slice(&ROUTER_MAC);
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    v6[14] = 0x60;
    v6[20] = 59;
    s.send(WAN, &v6);
    let mut f = tcp(CIP, 47000, VIP, 80, SYN);
    f.ttl = 1;
    s.send(WAN, &f.build());
    s.send(WAN, &tcp(CIP, 47001, VIP, 8081, SYN).build());
    let mut bad = tcp(CIP, 47002, VIP, 80, SYN).build();
    bad[40] ^= 0xff;
    s.send(WAN, &bad);
    let mut other = tcp(CIP, 47003, VIP, 80, SYN);
    other.dst_mac = [0x02, 9, 9, 9, 9, 9];
    s.send(WAN, &other.build());
    s.send(WAN, &tcp(CIP, 47004, VIP, 80, SYN).build()[..30]);
    let mut bcast = tcp(CIP, 47005, VIP, 80, SYN);
    bcast.dst_mac = [0xff; 6];
    s.send(WAN, &bcast.build());
    s.send(WAN, &tcp(CIP, 47006, VIP, 80, ACK).build());
    add("drops", &s);

    // One burst: the same SYN twice, a SYN and its ACK, replies of another flow (the
    // prefetching stages read keys ahead of inserts).
    let mut s = Script::default();
    s.batch(WAN, &tcp(CIP, 48000, VIP, 80, SYN).build());
    s.batch(WAN, &tcp(CIP, 48000, VIP, 80, SYN).build());
    s.batch(WAN, &tcp(CIP, 48001, VIP, 443, SYN).build());
    s.batch(WAN, &tcp(CIP, 48001, VIP, 443, ACK).build());
    s.batch(WAN, &Frame::udp(CIP, 48002, VIP, 53).build());
    s.send(WAN, &Frame::udp(CIP, 48002, VIP, 53).build());
    add("one_burst", &s);

    // A client on the WAN subnet: NAT replies to it park until it answers ARP.
    let mut s = Script::default();
    let mut f = tcp(ONLINK, 49000, VIP, 443, SYN);
    f.src_mac = ONLINK_MAC;
    s.send(WAN, &f.build());
    s.reply(LAN, SYN | ACK);
    s.send(
        WAN,
        &arp_frame(2, ONLINK_MAC, WAN_MAC, ONLINK, WAN_MAC, DIP_WAN),
    );
    add("onlink_client_arp", &s);

    // ICMP errors about sessions: the RS's port unreachable about a FullNAT UDP flow goes to
    // the client; the client's router's time exceeded about a NAT reply goes to the RS; an
    // ICMP error about nothing; a TTL-1 packet of a session (time exceeded back) and a
    // too-big one with DF (fragmentation needed back).
    let mut s = Script::default();
    s.send(
        WAN,
        &Frame::udp(CIP, 11000, VIP, 123).payload(b"ntp?").build(),
    );
    let out = s.last_out(LAN).expect("forwarded");
    let l3 = if out[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let mut unreach = icmp_error_frame(
        (RS_VLAN_MAC, LAN_MAC),
        RS_VLAN,
        LIP1,
        (3, 3, 0),
        &out[l3..l3 + 28],
    );
    unreach.splice(12..12, [0x81, 0x00, 0x00, LAN_VLAN as u8]);
    s.send(LAN, &unreach);
    s.send(WAN, &tcp(CIP, 11001, VIP, 443, SYN).build());
    s.reply(LAN, SYN | ACK);
    let back = s.last_out(WAN).expect("reply forwarded");
    s.send(
        WAN,
        &icmp_error_frame((ROUTER_MAC, WAN_MAC), ROUTER, VIP, (11, 0, 0), &back[14..]),
    );
    s.send(
        WAN,
        &icmp_error_frame(
            (ROUTER_MAC, WAN_MAC),
            ROUTER,
            DIP_WAN,
            (3, 1, 0),
            &back[14..42],
        ),
    );
    let mut ttl1 = tcp(CIP, 11001, VIP, 443, ACK);
    ttl1.ttl = 1;
    s.send(WAN, &ttl1.build());
    s.send(
        WAN,
        &tcp(CIP, 11001, VIP, 443, ACK).payload(&[1; 1490]).build(),
    );
    add("icmp_errors", &s);

    // SYN proxy, FullNAT and NAT: the director answers the SYN with a cookie, the client's
    // ACK opens the session and the director's SYN to the RS, whose SYN/ACK joins the halves;
    // data both ways (sequence numbers shifted); an ACK with a wrong cookie; the RS refusing.
    for (name, vip, port) in [
        ("synproxy_fullnat", VIP, 8443u16),
        ("synproxy_nat", VIP2, 443),
    ] {
        let mut s = Script::default();
        s.send(WAN, &tcp(CIP, 13000, vip, port, SYN).build());
        s.reply(WAN, ACK);
        s.reply(LAN, SYN | ACK);
        s.send(
            WAN,
            &tcp(CIP, 13000, vip, port, ACK | PSH)
                .payload(b"GET /")
                .build(),
        );
        s.reply(LAN, ACK | PSH);
        s.send(WAN, &tcp(CIP, 13001, vip, port, ACK).build());
        s.send(WAN, &tcp(CIP, 13002, vip, port, SYN).build());
        s.reply(WAN, ACK);
        s.reply(LAN, RST | ACK);
        add(name, &s);
    }

    // PROXY protocol v1 on the NAT service VIP:443: the SYN (sequence 1000), the RS's SYN/ACK,
    // the first data at 1001 (the header goes in front), its retransmission (again), the RS's
    // acknowledgement (reflected), later data, a full-sized first segment of another
    // connection (the header as a segment of its own), a FIN without data.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 14000, VIP, 443, SYN).build());
    s.reply(LAN, SYN | ACK);
    let mut first = tcp(CIP, 14000, VIP, 443, ACK | PSH).payload(b"GET / HTTP/1.0\r\n\r\n");
    if let testkit::L4Spec::Tcp { seq, .. } = &mut first.l4 {
        *seq = 1001;
    }
    s.send(WAN, &first.build());
    s.send(WAN, &first.build());
    s.reply(LAN, ACK);
    let mut later = first.clone().payload(b"more");
    if let testkit::L4Spec::Tcp { seq, .. } = &mut later.l4 {
        *seq = 1019;
    }
    s.send(WAN, &later.build());
    s.send(WAN, &tcp(CIP, 14001, VIP, 443, SYN).build());
    s.reply(LAN, SYN | ACK);
    let mut big = tcp(CIP, 14001, VIP, 443, ACK).payload(&[7; 1460]);
    if let testkit::L4Spec::Tcp { seq, .. } = &mut big.l4 {
        *seq = 1001;
    }
    s.send(WAN, &big.build());
    s.send(WAN, &tcp(CIP, 14002, VIP, 443, SYN).build());
    s.reply(LAN, SYN | ACK);
    let mut fin = tcp(CIP, 14002, VIP, 443, ACK | FIN);
    if let testkit::L4Spec::Tcp { seq, .. } = &mut fin.l4 {
        *seq = 1001;
    }
    s.send(WAN, &fin.build());
    add("proxy_protocol", &s);

    // Two workers: replies and later packets arriving on the other worker's queue (RSS
    // put them there) are handed over to the session's owner; an ARP answer on one worker
    // teaches the other.
    let mut s = Script::default();
    s.send(WAN, &tcp(CIP, 12000, VIP, 80, SYN).build());
    s.worker(1);
    s.reply(LAN, SYN | ACK);
    s.send(WAN, &tcp(CIP, 12000, VIP, 80, ACK).build());
    for sport in 12001u16..12005 {
        s.batch(WAN, &tcp(CIP, sport, VIP, 443, SYN).build());
    }
    s.send(WAN, &Frame::udp(CIP, 12006, VIP, 53).build());
    s.reply(LAN, 0);
    s.worker(0);
    s.send(WAN, &Frame::udp(CIP, 12007, VIP2, 4789).build());
    s.worker(1);
    s.send(
        LAN,
        &arp_frame(2, LAN_GW_MAC, LAN_MAC, LAN_GW, LAN_MAC, DIP_LAN),
    );
    s.worker(0);
    s.send(WAN, &Frame::udp(CIP, 12007, VIP2, 4789).build());
    add("two_workers", &s);

    // Floods: more FullNAT flows than worker 0 has LIP ports (2 × 16), more DR sessions
    // than its table holds (256).
    let mut s = Script::default();
    for sport in 0..40u16 {
        s.frame(
            WAN,
            &Frame::udp(CIP, 20000 + sport, VIP, 123).build(),
            sport == 39,
            0,
            false,
        );
    }
    add("flood_lip_ports", &s);
    let mut s = Script::default();
    for i in 0..260u16 {
        let client = Ipv4Addr::new(198, 51, 100, 100 + (i % 50) as u8);
        s.frame(
            WAN,
            &tcp(client, 30000 + i, VIP2, 80, SYN).build(),
            i == 259,
            0,
            false,
        );
    }
    add("flood_table", &s);

    // Far TUN dest: the gateway never answers (given up in the slow jobs).
    let mut s = Script::default();
    s.send(WAN, &Frame::udp(CIP, 7001, VIP2, 4789).build());
    for _ in 0..4 {
        s.frame(WAN, &[], true, 3, true);
    }
    add("neighbour_gives_up", &s);

    // IPv6 to the director: a neighbour solicitation for its WAN DIP (answered, copied to
    // the kernel), duplicate address detection, an echo request, TCP to the DIP (the
    // kernel's) and an echo to an address that is not the director's (dropped).
    let mut s = Script::default();
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    let group_mac = [0x33, 0x33, 0xff, 0, 0, 1];
    let router6 = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);
    let solicit = |src| {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: DIP6_WAN,
            lladdr: (src != Ipv6Addr::UNSPECIFIED)
                .then(|| RawHardwareAddress::from_bytes(&ROUTER_MAC)),
        })
    };
    for src in [router6, Ipv6Addr::UNSPECIFIED] {
        let f = icmpv6_frame(ROUTER_MAC, group_mac, (src, group), 255, &solicit(src));
        s.send(WAN, &f);
    }
    let echo = Icmpv6Repr::EchoRequest {
        ident: 9,
        seq_no: 1,
        data: b"ping6",
    };
    s.send(
        WAN,
        &icmpv6_frame(ROUTER_MAC, WAN_MAC, (router6, DIP6_WAN), 64, &echo),
    );
    // A TCP SYN (its checksum not looked at on the way to the kernel).
    let bytes = Icmpv6Repr::EchoRequest {
        ident: 9,
        seq_no: 1,
        data: &[0; 16],
    };
    let mut tcp6 = icmpv6_frame(ROUTER_MAC, WAN_MAC, (router6, DIP6_WAN), 64, &bytes);
    tcp6[20] = 6;
    tcp6[54 + 12] = 0x50;
    tcp6[54 + 13] = SYN;
    s.send(WAN, &tcp6);
    let elsewhere = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1);
    s.send(
        WAN,
        &icmpv6_frame(ROUTER_MAC, WAN_MAC, (router6, elsewhere), 64, &echo),
    );
    // An echo from an on-link host rvs does not know: the reply waits while rvs solicits
    // it; its advert releases the reply.
    let host = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x77);
    s.send(
        WAN,
        &icmpv6_frame(ROUTER_MAC, WAN_MAC, (host, DIP6_WAN), 64, &echo),
    );
    let advert = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        target_addr: host,
        lladdr: Some(RawHardwareAddress::from_bytes(&ROUTER_MAC)),
    });
    s.send(
        WAN,
        &icmpv6_frame(ROUTER_MAC, WAN_MAC, (host, DIP6_WAN), 255, &advert),
    );
    // Extension headers: destination options before an echo (the kernel's), a routing
    // header with a segment left (refused), a fragment to the DIP (the kernel's).
    let plain = icmpv6_frame(ROUTER_MAC, WAN_MAC, (router6, DIP6_WAN), 64, &echo);
    for (ty, ext) in [
        (60u8, [0u8, 0, 1, 4, 0, 0, 0, 0]),
        (43, [0, 0, 0, 1, 0, 0, 0, 0]),
        (44, [0, 0, 0, 1, 0, 0, 0, 9]),
    ] {
        let mut f = plain[..54].to_vec();
        let mut h = ext;
        h[0] = f[20];
        f[20] = ty;
        f.extend_from_slice(&h);
        f.extend_from_slice(&plain[54..]);
        let payload = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&payload.to_be_bytes());
        s.send(WAN, &f);
    }
    add("ipv6_director", &s);

    // IPv6 services: FullNAT66 (TCP [VIP6]:80) handshake, data and close; NAT64 (TCP
    // [VIP6]:8080 over an IPv4 and an IPv6 dest, UDP [VIP6]:53 to an IPv4 one) both ways;
    // the errors that cross the translation (fragmentation needed from an IPv4 router, a
    // Packet Too Big about a reply), a client segment too big for the IPv4 side, a hop limit
    // running out.
    let client6 = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
    let mut s = Script::default();
    s.send(WAN, &Frame6::tcp(client6, 40000, VIP6, 80, SYN).build());
    s.reply(LAN, SYN | ACK);
    s.send(
        WAN,
        &Frame6::tcp(client6, 40000, VIP6, 80, ACK | PSH)
            .payload(b"GET / HTTP/1.1\r\n\r\n")
            .build(),
    );
    s.reply(LAN, ACK | PSH);
    // A segment the client fragmented (FullNAT66 takes it), a datagram for NAT64.
    let big = Frame6::tcp(client6, 40000, VIP6, 80, ACK | PSH).payload(&[5; 2000]);
    for f in fragment6(&big.build(), 1280, 3) {
        s.send(WAN, &f);
    }
    let big = Frame6::udp(client6, 5356, VIP6, 53).payload(&[6; 2000]);
    for f in fragment6(&big.build(), 1280, 4) {
        s.send(WAN, &f);
    }
    s.send(
        WAN,
        &Frame6::tcp(client6, 40000, VIP6, 80, FIN | ACK).build(),
    );
    s.reply(LAN, FIN | ACK);
    for cport in [41000, 41001, 41002] {
        s.send(WAN, &Frame6::tcp(client6, cport, VIP6, 8080, SYN).build());
        s.reply(LAN, SYN | ACK);
    }
    s.send(
        WAN,
        &Frame6::udp(client6, 5353, VIP6, 53)
            .payload(b"query")
            .build(),
    );
    s.reply(LAN, 0);
    if let Some(out) = s.last_out(WAN) {
        // The translated answer: a router toward the client says it is too big.
        let ptb = Icmpv6Repr::PktTooBig {
            mtu: 1280,
            header: smoltcp::wire::Ipv6Repr {
                src_addr: VIP6,
                dst_addr: client6,
                next_header: smoltcp::wire::IpProtocol::Udp,
                payload_len: out.len() - 54,
                hop_limit: 63,
            },
            data: &out[54..],
        };
        s.send(
            WAN,
            &icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, VIP6), 64, &ptb),
        );
    }
    s.send(
        WAN,
        &Frame6::udp(client6, 5354, VIP6, 53).payload(b"q2").build(),
    );
    if let Some(out) = s.last_out(LAN) {
        // The translated query: an IPv4 router toward the server needs fragmentation.
        s.send(
            LAN,
            &icmp_error_frame(
                (ROUTER_MAC, LAN_MAC),
                LAN_GW,
                LIP1,
                (3, 4, 1400),
                &out[14..],
            ),
        );
    }
    s.send(
        WAN,
        &Frame6::udp(client6, 5355, VIP6, 53)
            .payload(&[9; 1480])
            .build(),
    );
    let mut last = Frame6::tcp(client6, 42000, VIP6, 80, SYN);
    last.hop_limit = 1;
    s.send(WAN, &last.build());
    add("ipv6_services", &s);

    // NAT64 fragments: the client's 4000-byte datagram to UDP [VIP6]:53 in IPv6 fragments
    // (IPv4 fragments toward the RS), the RS's answer in IPv4 fragments of a 1500-byte path
    // (each cut in two IPv6 fragments), one of them again ahead of a new datagram's first, a
    // whole answer without DF too big for the IPv6 side, and a TCP connection's segment
    // fragmented by the client.
    let mut s = Script::default();
    let dgram = Frame6::udp(client6, 5400, VIP6, 53).payload(&[0x64; 4000]);
    let frags = fragment6(&dgram.build(), 1500, 0x6464);
    s.send(WAN, &frags[0]);
    let first = s.last_out(LAN);
    for f in &frags[1..] {
        s.send(WAN, f);
    }
    if let Some(out) = first {
        let lip = Ipv4Addr::new(out[26], out[27], out[28], out[29]);
        let lport = u16::from_be_bytes([out[34], out[35]]);
        let rs = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
        let answer = |len: usize, ident: u16| {
            let mut a = from_lan(
                Frame::udp(rs, 53, lip, lport),
                out[0..6].try_into().unwrap(),
                None,
            )
            .payload(&vec![0x46; len]);
            a.df = false;
            a.ident = ident;
            a.build()
        };
        let frags4 = testkit::fragment(&answer(4000, 0x4646), 1500);
        for f in &frags4 {
            s.send(LAN, f);
        }
        let late = testkit::fragment(&answer(3000, 0x4647), 1500);
        s.send(LAN, &late[1]);
        s.send(LAN, &answer(1472, 0x4648));
    }
    s.send(WAN, &Frame6::tcp(client6, 41100, VIP6, 8080, SYN).build());
    s.reply(LAN, SYN | ACK);
    let seg = Frame6::tcp(client6, 41100, VIP6, 8080, ACK | PSH).payload(&[0x65; 3000]);
    for f in fragment6(&seg.build(), 1280, 0x6565) {
        s.send(WAN, &f);
    }
    add("nat64_fragments", &s);

    // The SYN proxy on the FullNAT66 service [VIP6]:443: the director answers the SYN with
    // a cookie, the client's ACK (the harness acknowledges the cookie) opens the session and
    // the director's SYN to the RS, whose SYN/ACK joins the halves; data both ways (sequence
    // numbers shifted); an ACK with a cookie never sent; the RS refusing another connection.
    let mut s = Script::default();
    s.send(WAN, &Frame6::tcp(client6, 42000, VIP6, 443, SYN).build());
    s.reply(WAN, ACK);
    s.reply(LAN, SYN | ACK);
    s.send(
        WAN,
        &Frame6::tcp(client6, 42000, VIP6, 443, ACK | PSH)
            .payload(b"GET /")
            .build(),
    );
    s.reply(LAN, ACK | PSH);
    s.send(WAN, &Frame6::tcp(client6, 42001, VIP6, 443, ACK).build());
    s.send(WAN, &Frame6::tcp(client6, 42002, VIP6, 443, SYN).build());
    s.reply(WAN, ACK);
    s.reply(LAN, RST | ACK);
    add("synproxy_fullnat66", &s);

    let _ = RS_FAR;
    seeds
}

fn key(proto: ProtoName, vip: Ipv4Addr, port: u16) -> SvcKey {
    SvcKey {
        proto,
        vip: vip.into(),
        port,
    }
}

fn dest(addr: Ipv4Addr, port: u16, weight: u32, mode: &str) -> DestSpec {
    DestSpec {
        addr: addr.into(),
        port,
        weight,
        mode: mode.into(),
    }
}

fn framed(reqs: &[Request]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in reqs {
        proto::write_frame(
            &mut out,
            &Envelope {
                version: proto::VERSION,
                request: r.clone(),
            },
        )
        .expect("frame");
    }
    out
}

fn control_seeds() -> Vec<(String, Vec<u8>)> {
    let web = key(ProtoName::Tcp, VIP, 80);
    let new = key(ProtoName::Tcp, Ipv4Addr::new(192, 0, 2, 110), 8443);
    let dns = key(ProtoName::Udp, VIP, 53);
    let ping = key(ProtoName::Icmp, VIP, 0);
    let mut one = vec![
        Request::AddService {
            service: new,
            scheduler: "mh".into(),
            persistence: Some(300),
            synproxy: false,
            proxy_protocol: None,
            toa: false,
        },
        Request::AddService {
            service: ping,
            scheduler: "rr".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false,
        },
        Request::EditService {
            service: web,
            scheduler: "wlc".into(),
            persistence: Some(60),
            synproxy: false,
            proxy_protocol: None,
            toa: false,
        },
        Request::DeleteService { service: dns },
        Request::AddDest {
            service: web,
            dest: dest(RS[2], 8080, 5, "fullnat"),
        },
        Request::AddDest {
            service: web,
            dest: dest(RS[2], 9090, 1, "nat"),
        },
        Request::EditDest {
            service: web,
            dest: dest(RS[0], 8080, 0, "fullnat"),
        },
        Request::DeleteDest {
            service: web,
            addr: RS[1].into(),
            port: 8080,
        },
        Request::Clear,
        Request::Zero { service: None },
        Request::Zero { service: Some(web) },
        Request::SetTimeouts {
            tcp: 900,
            tcpfin: 0,
            udp: 30,
        },
        Request::Reload {
            path: "/etc/rvs/rvsd.toml".into(),
        },
        Request::Reload {
            path: "/etc/rvs/rvs.toml".into(),
        },
        Request::List { service: None },
        Request::List { service: Some(dns) },
        Request::Connections { from: None },
        Request::Timeouts,
        Request::Workers,
        Request::Lips,
        Request::Health,
    ];
    // Every forwarding mode on a new service, as rvsadm -R would send it.
    let mut batch = vec![Request::AddService {
        service: new,
        scheduler: "wrr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    }];
    for (i, mode) in ["nat", "dr", "tun", "fullnat"].iter().enumerate() {
        let port = if matches!(*mode, "dr" | "tun") {
            8443
        } else {
            443
        };
        batch.push(Request::AddDest {
            service: new,
            dest: dest(RS[i % 3], port + i as u16, 1 + i as u32, mode),
        });
    }
    batch.push(Request::Zero { service: None });
    one.push(Request::Batch { requests: batch });
    // A batch that fails in its last step (nothing of it may apply).
    one.push(Request::Batch {
        requests: vec![
            Request::DeleteDest {
                service: web,
                addr: RS[0].into(),
                port: 8080,
            },
            Request::AddService {
                service: web,
                scheduler: "rr".into(),
                persistence: None,
                synproxy: false,
                proxy_protocol: None,
                toa: false,
            },
        ],
    });
    // A later page of -L -c.
    one.push(Request::Connections {
        from: Some(ConnCursor {
            worker: 1,
            slot: 4096,
        }),
    });
    let mut seeds: Vec<(String, Vec<u8>)> = one
        .iter()
        .map(|r| {
            let v = serde_json::to_value(r).expect("json");
            let op = v["op"].as_str().unwrap_or("request").to_string();
            (op, framed(std::slice::from_ref(r)))
        })
        .collect();
    // Numbered, since several share an op.
    for (i, s) in seeds.iter_mut().enumerate() {
        s.0 = format!("{:02}_{}", i, s.0);
    }
    // A session of requests: add, list, change, refuse, delete.
    seeds.push((
        "session".into(),
        framed(&[
            Request::AddService {
                service: new,
                scheduler: "sh".into(),
                persistence: None,
                synproxy: false,
                proxy_protocol: None,
                toa: false,
            },
            Request::AddDest {
                service: new,
                dest: dest(RS[0], 443, 1, "nat"),
            },
            Request::List { service: Some(new) },
            Request::AddDest {
                service: new,
                dest: dest(RS[0], 443, 1, "nat"),
            },
            Request::EditDest {
                service: new,
                dest: dest(RS[0], 443, 3, "fullnat"),
            },
            Request::DeleteService { service: new },
        ]),
    ));
    // Malformed: another version (1, before -L -c was paged), an unknown op, an unknown field,
    // a short frame.
    let raw = |json: &str| {
        let mut v = (json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v
    };
    seeds.push((
        "bad_version".into(),
        raw(r#"{"version":1,"request":{"op":"clear"}}"#),
    ));
    seeds.push((
        "bad_op".into(),
        raw(r#"{"version":2,"request":{"op":"format-disk"}}"#),
    ));
    seeds.push((
        "bad_field".into(),
        raw(r#"{"version":2,"request":{"op":"clear"},"x":1}"#),
    ));
    let mut short = raw(r#"{"version":2,"request":{"op":"timeouts"}}"#);
    short.truncate(20);
    seeds.push(("short".into(), short));
    seeds
}

fn config_seeds(root: &Path) -> Vec<(String, String)> {
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let example = read("examples/rvsd.toml");
    let docker = read("docker/rvsd.toml");
    let lab = r#"[eal]
args = ["--no-pci", "--no-huge", "-m", "512", "--file-prefix", "rvs-lab"]

[daemon]
workers = 1
table_capacity = 65536
mbufs = 8191
socket = "/tmp/rvs-lab/rvsd.sock"
metrics = "off"
kernel_addresses = true

[[port]]
name = "wan"
device = "net_af_packet0,iface=dw"
rss = false

[[port]]
name = "lan"
device = "net_af_packet1,iface=dl"
rss = false
exception = "rvslan"

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"

[fullnat]
lips = ["10.1.0.201"]
"#;
    let mut failover = lab.to_string();
    failover.push_str(
        "\n[[service]]\nproto = \"tcp\"\nvip = \"192.0.2.100\"\nport = 80\nscheduler = \"rr\"\n",
    );
    for a in ["10.1.0.11", "10.1.0.12", "10.1.0.13"] {
        failover.push_str(&format!(
            "  [[service.dest]]\n  addr = \"{a}\"\n  port = 8080\n  mode = \"fullnat\"\n"
        ));
    }
    failover.push_str(
        "  [service.check]\n  type = \"http\"\n  interval = 0.3\n  timeout = 0.3\n  rise = 2\n  fall = 2\n",
    );
    let everything = r#"# Every section and key.
[eal]
args = ["--no-pci", "--no-huge", "-m", "256"]

[daemon]
workers = 4
cores = [1, 2, 3, 4]
table_capacity = 4096
template_capacity = 256
mbufs = 4095
mbuf_cache = 128
rx_desc = 512
tx_desc = 512
slow_every = 32
redirect_depth = 256
socket = "/run/rvs/test.sock"
metrics = "127.0.0.1:9410"
kernel_addresses = false

[[port]]
name = "wan"
device = "0000:01:00.0"
rss = true
mtu = 9000
promiscuous = true
mac = "02:00:00:00:00:01"
exception = "rvs-wan"

[[port]]
name = "lan"
device = "net_tap0,iface=rvs-lan-dev"
mtu = 1500

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24", "198.51.100.1/24"]
mtu = 8000

[[interface]]
name = "lan0"
port = "lan"
addrs = ["10.1.0.1/24"]

[[interface]]
name = "lan0.100"
port = "lan"
vlan = 100
addrs = ["10.2.0.1/24"]
mtu = 1000

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"

[[route]]
dst = "172.16.0.0/16"
via = "10.1.0.254"

[fullnat]
lips = ["10.1.0.201", "10.1.0.202", "10.1.0.203"]
lport_range = "2000-2999"

[timeouts]
tcp = 900
tcpfin = 60
udp = 300
icmp = 10
syn_recv = 30
time_wait = 2
close = 1

[[service]]
proto = "tcp"
vip = "192.0.2.100"
port = 80
scheduler = "wrr"
  [[service.dest]]
  addr = "10.1.0.11"
  port = 8080
  weight = 3
  mode = "fullnat"
  [[service.dest]]
  addr = "10.2.0.11"
  port = 8080
  weight = 0
  mode = "nat"
  [service.check]
  type = "http"
  path = "/health"
  expect = 204
  interval = 1.5
  timeout = 0.5
  rise = 1
  fall = 5
  port = 8081

[[service]]
proto = "udp"
vip = "192.0.2.100"
port = 53
scheduler = "sh"
persistence = 600
  [[service.dest]]
  addr = "10.1.0.13"
  mode = "dr"
  [service.check]
  type = "udp"

[[service]]
proto = "TCP"
vip = "192.0.2.101"
port = 443
scheduler = "mh"
  [[service.dest]]
  addr = "172.16.0.11"
  mode = "tun"
  [service.check]
  type = "tcp"
  interval = 5

[[service]]
proto = "icmp"
vip = "192.0.2.101"
scheduler = "lc"
  [[service.dest]]
  addr = "10.1.0.12"
  mode = "fullnat"
  [service.check]
  type = "none"

[[service]]
proto = "tcp"
vip = "192.0.2.102"
port = 8443
persistence = 60
scheduler = "wlc"

[[neighbour]]
ip = "10.1.0.254"
mac = "02:00:00:01:fe:fe"

[[neighbour]]
ip = "192.0.2.254"
mac = "02-00-00-00-fe-fe"
"#;
    let mut seeds = vec![
        ("example".to_string(), example.clone()),
        ("docker_template".to_string(), docker.clone()),
        (
            "docker_rendered".to_string(),
            docker
                .replace("@WAN_DEVICE@", "net_af_packet0,iface=eth0")
                .replace("@LAN_DEVICE@", "net_af_packet1,iface=eth1"),
        ),
        ("lab".to_string(), lab.to_string()),
        ("lab_failover".to_string(), failover),
        ("everything".to_string(), everything.to_string()),
        ("empty".to_string(), String::new()),
    ];
    // Refusals at every level: syntax, unknown key, values, the service model, the snapshot.
    let broken = [
        ("syntax", "[daemon\nworkers = 1\n"),
        ("unknown_key", "[daemon]\nworkerz = 2\n"),
        ("bad_value", "[[port]]\nname = \"a\"\ndevice = \"x\"\nmtu = 100\n"),
        (
            "second_service_bad",
            "[[service]]\nproto = \"tcp\"\nvip = \"192.0.2.1\"\nport = 80\n\n[[service]]\nproto = \"sctp\"\nvip = \"192.0.2.1\"\n",
        ),
        (
            "dr_port_mapping",
            "[[service]]\nproto = \"tcp\"\nvip = \"192.0.2.1\"\nport = 80\n  [[service.dest]]\n  addr = \"10.0.0.1\"\n  port = 8080\n  mode = \"dr\"\n",
        ),
        ("unicode", "# é ü ☃\n[daemon]\nsocket = \"/run/ȓvs.sock\"\nworkers = 0\n"),
    ];
    for (name, text) in broken {
        seeds.push((format!("broken_{name}"), text.to_string()));
    }
    seeds
}

fn write_dir(dir: &Path, files: impl IntoIterator<Item = (String, Vec<u8>)>) -> usize {
    std::fs::create_dir_all(dir).expect("corpus dir");
    let mut n = 0;
    for (name, bytes) in files {
        std::fs::write(dir.join(format!("seed_{name}")), bytes).expect("write seed");
        n += 1;
    }
    n
}

/// A sync datagram of `records` (valid ones) in a buffer of `size` bytes; the records that
/// do not fit are left out.
fn sync_datagram(seq: u32, records: &[SyncRecord], size: usize) -> Vec<u8> {
    let h = SyncHeader {
        sync_id: 1,
        flags: 0,
        sender: u32::from(Ipv4Addr::new(192, 0, 2, 1)),
        seq,
    };
    let mut buf = vec![0u8; size];
    let mut w = DatagramWriter::new(&mut buf, &h).expect("room for the header");
    for r in records {
        if w.push(r).is_err() {
            break;
        }
    }
    w.datagram().to_vec()
}

/// Sessions of every protocol, mode, state and SYN proxy state.
fn sync_sessions() -> Vec<SyncRecord> {
    let (cip, vip, rip, lip) = (CIP, VIP, RS[0], LIP1);
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        let states: Vec<SessionState> = match proto {
            Proto::Tcp => TcpState::ALL
                .iter()
                .map(|&t| SessionState::Tcp(t))
                .collect(),
            Proto::Udp => vec![SessionState::Udp],
            Proto::Icmp => vec![SessionState::Icmp],
        };
        for m in [
            ForwardMode::Nat,
            ForwardMode::Tun,
            ForwardMode::Dr,
            ForwardMode::FullNat,
        ] {
            let mut proxies = vec![SyncProxy::Off];
            if proto == Proto::Tcp && m.maps_ports() {
                proxies.push(SyncProxy::Pending {
                    client_isn: 0x0102_0304,
                    mss: 3,
                    epoch: 17,
                });
                proxies.push(SyncProxy::On { shift: 0x8000_0001 });
            }
            let (vport, rport) = match (proto, m.maps_ports()) {
                (Proto::Icmp, _) => (0, 0),
                (_, true) => (80, 8080),
                (_, false) => (80, 80),
            };
            for &state in &states {
                for &synproxy in &proxies {
                    out.push(SyncRecord::Session(SyncSession {
                        proto,
                        client: (cip, 40000),
                        vip: (vip, vport),
                        rip,
                        rport,
                        mode: m,
                        lip: (m == ForwardMode::FullNat).then_some((lip, 1024)),
                        state,
                        expires_in_ms: 900_000,
                        persist_ms: if proto == Proto::Udp { 300_000 } else { 0 },
                        synproxy,
                        preamble: None,
                    }));
                }
            }
        }
    }
    out
}

/// IPv6 sessions of every mode (the fuzz target's IPv6 services: FullNAT66 and DR on
/// [VIP6]:80, NAT66 and TUN on [VIP6]:81, NAT64 on [VIP6]:8064), TCP in every state and UDP,
/// each its own client port and LIP port.
fn sync_sessions6() -> Vec<SyncRecord> {
    use std::net::IpAddr;
    let rs6 = pipeline::RS6;
    let lip6 = pipeline::LIP6;
    let client6 = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
    let modes: [(u16, IpAddr, u16, ForwardMode, Option<IpAddr>); 5] = [
        (
            80,
            rs6[0].into(),
            8080,
            ForwardMode::FullNat,
            Some(lip6.into()),
        ),
        (80, rs6[0].into(), 80, ForwardMode::Dr, None),
        (81, rs6[1].into(), 8081, ForwardMode::Nat, None),
        (81, rs6[1].into(), 81, ForwardMode::Tun, None),
        (
            8064,
            RS[0].into(),
            8080,
            ForwardMode::FullNat,
            Some(LIP1.into()),
        ),
    ];
    let mut out = Vec::new();
    let mut n = 0u16;
    for (vport, rip, rport, m, lip) in modes {
        let states = TcpState::ALL
            .iter()
            .map(|&t| (Proto::Tcp, SessionState::Tcp(t)))
            .chain([(Proto::Udp, SessionState::Udp)]);
        for (proto, state) in states {
            // NAT66 and TUN serve TCP only.
            if proto == Proto::Udp && vport == 81 {
                continue;
            }
            n += 1;
            out.push(SyncRecord::Session6(SyncSession6 {
                proto,
                client: (client6, 41000 + n),
                vip: (VIP6, vport),
                rip,
                rport,
                mode: m,
                lip: lip.map(|l| (l, 1024 + n)),
                state,
                expires_in_ms: 900_000,
                persist_ms: 0,
                synproxy: SyncProxy::Off,
                preamble: None,
            }));
        }
    }
    // A joined SYN-proxied FullNAT66 session (record type 6), its shift with it.
    let proxied = out.iter().find_map(|r| match r {
        SyncRecord::Session6(x)
            if x.mode == ForwardMode::FullNat
                && x.rip.is_ipv6()
                && x.state == SessionState::Tcp(TcpState::Established) =>
        {
            Some(*x)
        }
        _ => None,
    });
    if let Some(x) = proxied {
        n += 1;
        // Not last: the last is NAT64's (the mixed and refused seeds take it).
        out.insert(
            1,
            SyncRecord::Session6(SyncSession6 {
                client: (client6, 41000 + n),
                lip: x.lip.map(|(l, _)| (l, 1024 + n)),
                synproxy: SyncProxy::On { shift: 0x6000_0001 },
                ..x
            }),
        );
        // IPv6 sessions with a header (record type 7): that one SYN-proxied with a v2
        // header sent, and a NAT64 one with TOA.
        n += 1;
        out.insert(
            2,
            SyncRecord::Session6(SyncSession6 {
                client: (client6, 41000 + n),
                lip: x.lip.map(|(l, _)| (l, 1024 + n)),
                synproxy: SyncProxy::On { shift: 0x6000_0002 },
                preamble: Some(SyncPreamble {
                    carrier: Carrier::Proxy(sched::ProxyProtocol::V2),
                    phase: Phase::Sent,
                    first_seq: 0x00ab_cdef,
                }),
                ..x
            }),
        );
    }
    let nat64 = out.iter().find_map(|r| match r {
        SyncRecord::Session6(x) if x.rip.is_ipv4() && x.proto == Proto::Tcp => Some(*x),
        _ => None,
    });
    if let Some(x) = nat64 {
        n += 1;
        out.insert(
            3,
            SyncRecord::Session6(SyncSession6 {
                client: (client6, 41000 + n),
                lip: x.lip.map(|(l, _)| (l, 1024 + n)),
                preamble: Some(SyncPreamble {
                    carrier: Carrier::Toa,
                    phase: Phase::Pending,
                    first_seq: 0x0012_3456,
                }),
                ..x
            }),
        );
    }
    out
}

fn sync_templates() -> Vec<SyncRecord> {
    [Proto::Tcp, Proto::Udp, Proto::Icmp]
        .into_iter()
        .map(|proto| {
            let port = if proto == Proto::Icmp { 0 } else { 443 };
            SyncRecord::Template(SyncTemplate {
                proto,
                client: CIP,
                vip: (VIP, port),
                rip: RS[1],
                rport: port,
                timeout_ms: 360_000,
                expires_in_ms: 360_000,
            })
        })
        .collect()
}

/// Sync datagrams: every kind of record, batches, and one refusal of each kind.
fn sync_seeds() -> Vec<(String, Vec<u8>)> {
    let sessions = sync_sessions();
    let templates = sync_templates();
    let mut seeds = Vec::new();
    let per = (MTU_1500_DATAGRAM_LEN - header::LEN) / session::LEN;
    for (i, chunk) in sessions.chunks(per).enumerate() {
        seeds.push((
            format!("sessions_{i}"),
            sync_datagram(i as u32, chunk, MTU_1500_DATAGRAM_LEN),
        ));
    }
    seeds.push((
        "templates".into(),
        sync_datagram(100, &templates, MTU_1500_DATAGRAM_LEN),
    ));
    let mixed: Vec<SyncRecord> = sessions
        .iter()
        .step_by(7)
        .chain(templates.iter())
        .copied()
        .collect();
    seeds.push((
        "mixed".into(),
        sync_datagram(101, &mixed, MTU_1500_DATAGRAM_LEN),
    ));
    seeds.push((
        "empty".into(),
        sync_datagram(102, &[], MTU_1500_DATAGRAM_LEN),
    ));
    seeds.push(("jumbo".into(), sync_datagram(103, &sessions, 9000)));

    // A datagram of two sessions and a template, then broken in one place each.
    let base = sync_datagram(
        200,
        &[sessions[0], sessions[sessions.len() - 1], templates[0]],
        MTU_1500_DATAGRAM_LEN,
    );
    let s1 = header::LEN;
    let t1 = header::LEN + 2 * session::LEN;
    let set16 =
        |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    let len = base.len();
    let broken: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", base[..len - 5].to_vec()),
        ("bad_magic", edit(&|b| b[0] = b'X')),
        ("unknown_version", edit(&|b| b[header::VERSION] = 2)),
        ("bad_length", edit(&|b| b.push(0))),
        (
            "bad_framing",
            edit(&|b| set16(b, s1 + record_header::LENGTH, 2)),
        ),
        ("bad_record_count", edit(&|b| set16(b, header::COUNT, 4))),
        (
            "unknown_record_type",
            edit(&|b| set16(b, s1 + record_header::TYPE, 9)),
        ),
        ("bad_proto", edit(&|b| b[s1 + session::PROTO] = 47)),
        ("bad_mode", edit(&|b| b[s1 + session::MODE] = 4)),
        ("bad_state", edit(&|b| b[s1 + session::STATE] = 11)),
        ("bad_synproxy", edit(&|b| b[s1 + session::SYNPROXY] = 3)),
        (
            "bad_lip",
            edit(&|b| {
                b[s1 + session::MODE] = mode::NAT;
                b[s1 + session::LIP] = 10;
            }),
        ),
        ("bad_port", edit(&|b| set16(b, s1 + session::VIP_PORT, 0))),
        (
            "bad_address",
            edit(&|b| b[s1 + session::RIP..s1 + session::RIP + 4].fill(0)),
        ),
        (
            "bad_timeout",
            edit(&|b| b[t1 + template::TIMEOUT_MS..t1 + template::TIMEOUT_MS + 4].fill(0)),
        ),
    ];
    for (name, b) in broken {
        seeds.push((format!("refused_{name}"), b));
    }

    // Sessions with a PROXY protocol header or TOA (record type 4) in every phase, and a
    // view of the sender's services (type 3); then a header on an ICMP session, refused.
    let mut headed = Vec::new();
    for (proto, carrier) in [
        (Proto::Tcp, Carrier::Proxy(sched::ProxyProtocol::V1)),
        (Proto::Tcp, Carrier::Proxy(sched::ProxyProtocol::V2)),
        (Proto::Tcp, Carrier::Toa),
        (Proto::Udp, Carrier::Proxy(sched::ProxyProtocol::V2)),
    ] {
        for phase in [Phase::Pending, Phase::Sent, Phase::Done] {
            let state = if proto == Proto::Tcp {
                SessionState::Tcp(TcpState::Established)
            } else {
                SessionState::Udp
            };
            headed.push(SyncRecord::Session(SyncSession {
                proto,
                client: (CIP, 40001),
                vip: (VIP, 80),
                rip: RS[0],
                rport: 8080,
                mode: ForwardMode::FullNat,
                lip: Some((LIP1, 2048)),
                state,
                expires_in_ms: 900_000,
                persist_ms: 0,
                synproxy: SyncProxy::Off,
                preamble: Some(SyncPreamble {
                    carrier,
                    phase,
                    first_seq: 0x1111_0001,
                }),
            }));
        }
    }
    headed.push(SyncRecord::View(ServiceView {
        services: 3,
        digest: 0x0123_4567_89ab_cdef,
    }));
    seeds.push((
        "headers_and_view".into(),
        sync_datagram(300, &headed, MTU_1500_DATAGRAM_LEN),
    ));
    // IPv6 sessions (record type 5), 16 to a datagram, one beside IPv4 records, and refusals
    // of their own.
    let sessions6 = sync_sessions6();
    let per6 = (MTU_1500_DATAGRAM_LEN - header::LEN) / session6::LEN;
    for (i, chunk) in sessions6.chunks(per6).enumerate() {
        seeds.push((
            format!("sessions6_{i}"),
            sync_datagram(400 + i as u32, chunk, MTU_1500_DATAGRAM_LEN),
        ));
    }
    let nat64 = sessions6[sessions6.len() - 1];
    let both = [sessions[0], sessions6[0], templates[0], nat64];
    seeds.push((
        "mixed6".into(),
        sync_datagram(410, &both, MTU_1500_DATAGRAM_LEN),
    ));
    let one6 = sync_datagram(411, &[nat64], MTU_1500_DATAGRAM_LEN);
    let r6 = header::LEN;
    let edit6 = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = one6.clone();
        f(&mut b);
        b
    };
    let broken6: Vec<(&str, Vec<u8>)> = vec![
        ("bad_family", edit6(&|b| b[r6 + session6::FAMILY] = 6)),
        ("bad_proto", edit6(&|b| b[r6 + session6::PROTO] = 1)),
        ("bad_synproxy", edit6(&|b| b[r6 + session6::SYNPROXY] = 2)),
        ("bad_port", edit6(&|b| set16(b, r6 + session6::RPORT, 0))),
        (
            "bad_lip",
            edit6(&|b| b[r6 + session6::LIP..r6 + session6::LIP + 16].fill(0)),
        ),
    ];
    for (name, b) in broken6 {
        seeds.push((format!("refused6_{name}"), b));
    }
    // A persistent service's session: the backup holds its client's template from it.
    seeds.push((
        "persistent6".into(),
        edit6(&|b| b[r6 + session6::PERSIST_MS + 2] = 0x75),
    ));

    let one = sync_datagram(301, &headed[..1], MTU_1500_DATAGRAM_LEN);
    let mut icmp = one.clone();
    icmp[header::LEN + session::PROTO] = 1;
    icmp[header::LEN + session::STATE] = 0;
    set16(&mut icmp, header::LEN + session::VIP_PORT, 0);
    set16(&mut icmp, header::LEN + session::RPORT, 0);
    seeds.push(("refused_bad_preamble".into(), icmp));
    seeds
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz.parent().expect("repo root").to_path_buf();
    let corpus = fuzz.join("corpus");
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |t: &str| only.is_empty() || only.iter().any(|o| o == t);
    let mut written = Vec::new();
    if wanted("pipeline") {
        let n = write_dir(
            &corpus.join("pipeline"),
            pipeline_seeds()
                .into_iter()
                .map(|(n, b)| (n.to_string(), b)),
        );
        written.push(format!("pipeline {n}"));
    }
    if wanted("control_request") {
        let n = write_dir(&corpus.join("control_request"), control_seeds());
        written.push(format!("control_request {n}"));
    }
    if wanted("config") {
        let n = write_dir(
            &corpus.join("config"),
            config_seeds(&root)
                .into_iter()
                .map(|(n, t)| (n, t.into_bytes())),
        );
        written.push(format!("config {n}"));
    }
    if wanted("sync_decode") {
        let n = write_dir(&corpus.join("sync_decode"), sync_seeds());
        written.push(format!("sync_decode {n}"));
    }
    println!("seeds: {}", written.join(", "));
}
