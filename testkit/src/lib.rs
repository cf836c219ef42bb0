//! Test support shared by rvs's integration tests and benches: the lab topology's constants,
//! a frame builder (Ethernet / optional 802.1Q / IPv4 / TCP, UDP or ICMP echo, valid
//! checksums) and an independent decoder that verifies checksums with smoltcp's full
//! computation — never with rvs's own code.
#![allow(missing_docs)]

pub mod alloc;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv4Packet, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet,
    Ipv6Repr, TcpPacket, UdpPacket,
};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const WAN: u16 = 0;
pub const LAN: u16 = 1;
pub const TAP: u16 = 2;
pub const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
pub const TAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xfe, 0xfe];
pub const DIP_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const DIP_LAN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const LIP1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 201);
pub const LIP2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 202);
pub const RS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 1, 0, 11),
    Ipv4Addr::new(10, 1, 0, 12),
    Ipv4Addr::new(10, 1, 0, 13),
];

pub fn rs_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0x01, 0, 0x0b + i as u8]
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

#[derive(Clone, Debug)]
pub enum L4Spec {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
        zero_csum: bool,
    },
    Echo {
        request: bool,
        ident: u16,
        seq: u16,
    },
}

/// A frame to build: Ethernet (+ optional tag) / IPv4 / L4 / payload, with valid checksums.
#[derive(Clone, Debug)]
pub struct Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    pub ident: u16,
    pub l4: L4Spec,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Frame {
        Frame {
            dst_mac: WAN_MAC,
            src_mac: ROUTER_MAC,
            vlan: None,
            src,
            dst,
            ttl: 64,
            tos: 0,
            df: true,
            ident: 0x1234,
            l4: L4Spec::Tcp {
                sport,
                dport,
                flags,
                seq: 1000,
                ack: if flags & ACK != 0 { 5000 } else { 0 },
            },
            payload: Vec::new(),
        }
    }

    pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Frame {
        Frame {
            l4: L4Spec::Udp {
                sport,
                dport,
                zero_csum: false,
            },
            ..Frame::tcp(src, sport, dst, dport, 0)
        }
    }

    pub fn echo(src: Ipv4Addr, dst: Ipv4Addr, request: bool, ident: u16) -> Frame {
        Frame {
            l4: L4Spec::Echo {
                request,
                ident,
                seq: 1,
            },
            payload: b"ping-payload".to_vec(),
            ..Frame::tcp(src, 0, dst, 0, 0)
        }
    }

    /// Same frame arriving from a real server on the LAN port.
    pub fn via_rs(mut self, i: usize) -> Frame {
        self.dst_mac = LAN_MAC;
        self.src_mac = rs_mac(i);
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Frame {
        self.payload = p.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let l4_len = match self.l4 {
            L4Spec::Tcp { .. } => 20,
            L4Spec::Udp { .. } => 8,
            L4Spec::Echo { .. } => 8,
        } + self.payload.len();
        let ip_len = 20 + l4_len;
        let l2 = if self.vlan.is_some() { 18 } else { 14 };
        let mut f = vec![0u8; l2 + ip_len];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        if let Some(v) = self.vlan {
            f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            f[14..16].copy_from_slice(&v.to_be_bytes());
            f[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
        } else {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        }
        {
            let l4 = &mut f[l2 + 20..];
            let addrs = (IpAddress::Ipv4(self.src), IpAddress::Ipv4(self.dst));
            match self.l4 {
                L4Spec::Tcp { .. } | L4Spec::Udp { .. } => {
                    write_l4(l4, &self.l4, &self.payload, addrs);
                }
                L4Spec::Echo {
                    request,
                    ident,
                    seq,
                } => {
                    l4[0] = if request { 8 } else { 0 };
                    l4[4..6].copy_from_slice(&ident.to_be_bytes());
                    l4[6..8].copy_from_slice(&seq.to_be_bytes());
                    l4[8..].copy_from_slice(&self.payload);
                    let mut i = Icmpv4Packet::new_unchecked(&mut *l4);
                    i.fill_checksum();
                }
            }
        }
        let mut ip = Ipv4Packet::new_unchecked(&mut f[l2..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_dscp(self.tos >> 2);
        ip.set_ecn(self.tos & 3);
        ip.set_total_len(ip_len as u16);
        ip.set_ident(self.ident);
        ip.clear_flags();
        ip.set_dont_frag(self.df);
        ip.set_hop_limit(self.ttl);
        ip.set_next_header(match self.l4 {
            L4Spec::Tcp { .. } => smoltcp::wire::IpProtocol::Tcp,
            L4Spec::Udp { .. } => smoltcp::wire::IpProtocol::Udp,
            L4Spec::Echo { .. } => smoltcp::wire::IpProtocol::Icmp,
        });
        ip.set_src_addr(self.src);
        ip.set_dst_addr(self.dst);
        ip.fill_checksum();
        f
    }
}

/// An output frame, decoded and checked with smoltcp (independent of rvs's own code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
    pub df: bool,
    pub tos: u8,
    pub ident: u16,
    pub total_len: u16,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub payload: Vec<u8>,
    /// Offset of the IP header in the frame.
    pub l3: usize,
}

/// True if `frame` is Ethernet (optionally tagged) / IPv4 whose header and TCP/UDP/ICMP
/// checksums all verify by smoltcp's full computation. Never panics.
pub fn checksums_valid(frame: &[u8]) -> bool {
    if frame.len() < 14 {
        return false;
    }
    let l3 = if frame[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    if frame.len() < l3 || frame[l3 - 2..l3] != [0x08, 0x00] {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let p = ip.payload();
    if ip.more_frags() || ip.frag_offset() != 0 {
        return true;
    }
    match u8::from(ip.next_header()) {
        6 => TcpPacket::new_checked(p).is_ok_and(|t| t.verify_checksum(&src, &dst)),
        17 => UdpPacket::new_checked(p).is_ok_and(|u| u.verify_checksum(&src, &dst)),
        1 => Icmpv4Packet::new_checked(p).is_ok_and(|i| i.verify_checksum()),
        _ => true,
    }
}

/// True if `frame` is untagged Ethernet / IPv6 whose TCP, UDP or ICMPv6 checksum (the header
/// right after the fixed one) verifies by smoltcp's full computation over the IPv6
/// pseudo-header; other next headers (fragments, IPv6-in-IPv6, options) are not judged here.
/// Never panics.
pub fn checksums_valid6(frame: &[u8]) -> bool {
    if frame.len() < 14 || frame[12..14] != [0x86, 0xdd] {
        return false;
    }
    let Ok(ip) = Ipv6Packet::new_checked(&frame[14..]) else {
        return false;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let (s, d) = (IpAddress::Ipv6(src), IpAddress::Ipv6(dst));
    let p = ip.payload();
    match u8::from(ip.next_header()) {
        6 => TcpPacket::new_checked(p).is_ok_and(|t| t.verify_checksum(&s, &d)),
        17 => {
            UdpPacket::new_checked(p).is_ok_and(|u| u.checksum() != 0 && u.verify_checksum(&s, &d))
        }
        58 => Icmpv6Packet::new_checked(p).is_ok_and(|i| i.verify_checksum(&src, &dst)),
        _ => true,
    }
}

/// [`checksums_valid`] or [`checksums_valid6`] by the frame's ethertype; true for the others
/// (ARP), which carry no checksum.
pub fn frame_checksums_valid(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) | Some([0x81, 0x00]) => checksums_valid(frame),
        Some([0x86, 0xdd]) => checksums_valid6(frame),
        _ => true,
    }
}

/// Decodes an Ethernet/IPv4 frame and asserts that the IPv4 and L4 checksums verify by a
/// full computation (smoltcp's). ICMP echo: sport = ident.
pub fn decode(frame: &[u8]) -> Seen {
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    let (vlan, l3) = if frame[12..14] == [0x81, 0x00] {
        (Some(u16::from_be_bytes([frame[14], frame[15]]) & 0xfff), 18)
    } else {
        (None, 14)
    };
    assert_eq!(&frame[l3 - 2..l3], &[0x08, 0x00], "ethertype IPv4");
    let ip = Ipv4Packet::new_checked(&frame[l3..]).expect("ipv4 header");
    assert!(ip.verify_checksum(), "IPv4 header checksum must verify");
    let src = ip.src_addr();
    let dst = ip.dst_addr();
    let payload_ip = &frame[l3 + ip.header_len() as usize..l3 + ip.total_len() as usize];
    let (sport, dport, flags, payload) = match u8::from(ip.next_header()) {
        6 => {
            let t = TcpPacket::new_checked(payload_ip).expect("tcp");
            assert!(
                t.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)),
                "TCP checksum must verify"
            );
            (
                t.src_port(),
                t.dst_port(),
                payload_ip[13],
                t.payload().to_vec(),
            )
        }
        17 => {
            let u = UdpPacket::new_checked(payload_ip).expect("udp");
            assert!(
                u.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)),
                "UDP checksum must verify"
            );
            (u.src_port(), u.dst_port(), 0, u.payload().to_vec())
        }
        1 => {
            let i = Icmpv4Packet::new_checked(payload_ip).expect("icmp");
            assert!(i.verify_checksum(), "ICMP checksum must verify");
            (
                u16::from_be_bytes([payload_ip[4], payload_ip[5]]),
                0,
                payload_ip[0],
                payload_ip[8..].to_vec(),
            )
        }
        _ => (0, 0, 0, payload_ip.to_vec()),
    };
    Seen {
        dst_mac,
        src_mac,
        vlan,
        src,
        dst,
        ttl: ip.hop_limit(),
        proto: u8::from(ip.next_header()),
        df: ip.dont_frag(),
        tos: frame[l3 + 1],
        ident: ip.ident(),
        total_len: ip.total_len(),
        sport,
        dport,
        flags,
        payload,
        l3,
    }
}

/// An untagged Ethernet/ARP frame (padded to 60 bytes): `op` 1 = request, 2 = reply.
pub fn arp_frame(
    op: u16,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::from(op),
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress(tha),
        target_protocol_addr: tpa,
    };
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    repr.emit(&mut ArpPacket::new_unchecked(&mut f[14..42]));
    f
}

/// An untagged Ethernet/IPv4/ICMP error frame `src → dst` (type `ty`, code `code`, rest of
/// header `rest`) quoting `quoted` (an IPv4 packet, usually an earlier frame's L3 bytes),
/// with valid checksums; addressed from `src_mac` to `dst_mac`.
pub fn icmp_error_frame(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    (ty, code, rest): (u8, u8, u32),
    quoted: &[u8],
) -> Vec<u8> {
    let total = 20 + 8 + quoted.len();
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    {
        let icmp = &mut f[34..];
        icmp[0] = ty;
        icmp[1] = code;
        icmp[4..8].copy_from_slice(&rest.to_be_bytes());
        icmp[8..].copy_from_slice(quoted);
        Icmpv4Packet::new_unchecked(&mut *icmp).fill_checksum();
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(total as u16);
    ip.set_ident(0x4321);
    ip.clear_flags();
    ip.set_hop_limit(64);
    ip.set_next_header(smoltcp::wire::IpProtocol::Icmp);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    f
}

/// Sets the IPv4 total length of an untagged frame (the frame itself is not resized) and
/// refreshes the IPv4 header checksum: for building inconsistent packets on purpose.
pub fn set_ip_total_len(frame: &mut [u8], len: u16) {
    frame[16..18].copy_from_slice(&len.to_be_bytes());
    refresh_ip_checksum(frame, 14);
}

/// Recomputes the IPv4 header checksum of the header at `l3` (after editing the header).
pub fn refresh_ip_checksum(frame: &mut [u8], l3: usize) {
    let hl = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10..l3 + 12].fill(0);
    let mut sum: u32 = 0;
    let end = (l3 + hl.max(20)).min(frame.len());
    for c in frame[l3..end].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[l3 + 10..l3 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// `frame` (untagged Ethernet/IPv4/TCP without options) with the TCP options `opts` (a
/// multiple of 4 bytes) inserted after its TCP header; lengths and checksums made right.
pub fn with_tcp_options(frame: &[u8], opts: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0, "TCP options come in 32-bit words");
    let mut f = frame[..54].to_vec();
    f.extend_from_slice(opts);
    f.extend_from_slice(&frame[54..]);
    let total = (f.len() - 14) as u16;
    set_ip_total_len(&mut f, total);
    f[14 + 20 + 12] = ((20 + opts.len()) as u8 / 4) << 4;
    let (src, dst) = {
        let ip = Ipv4Packet::new_checked(&f[14..]).expect("ipv4");
        (ip.src_addr(), ip.dst_addr())
    };
    TcpPacket::new_unchecked(&mut f[34..])
        .fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
    f
}

/// `frame` (untagged IPv4, DF clear) cut into IPv4 fragments of at most `mtu` bytes of IP
/// packet each, as a host's stack does (the header copied, offsets in 8-byte units, MF on all
/// but the last, checksums refreshed). A frame that fits comes back whole.
pub fn fragment(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let hl = usize::from(frame[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let body = &frame[14 + hl..14 + total];
    if total <= mtu {
        return vec![frame[..14 + total].to_vec()];
    }
    let chunk = (mtu - hl) & !7;
    body.chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let mut f = frame[..14 + hl].to_vec();
            f.extend_from_slice(piece);
            let more = (i + 1) * chunk < body.len();
            let word = u16::from(more) << 13 | (i * chunk / 8) as u16;
            f[20..22].copy_from_slice(&word.to_be_bytes());
            set_ip_total_len(&mut f, (hl + piece.len()) as u16);
            refresh_ip_checksum(&mut f, 14);
            f
        })
        .collect()
}

/// The datagram the IPv4 fragments `frames` (untagged, one datagram, any order) make up,
/// as one untagged frame with the first fragment's Ethernet and IP header (total length and
/// flags fixed, checksum refreshed). Panics on a gap or an overlap: a test's frames must add
/// up exactly.
pub fn reassemble(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, &[u8], &[u8])> = frames
        .iter()
        .map(|f| {
            let hl = usize::from(f[14] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
            let word = u16::from_be_bytes([f[20], f[21]]);
            let off = usize::from(word & 0x1fff) * 8;
            (
                off,
                word & 0x2000 != 0,
                &f[..14 + hl],
                &f[14 + hl..14 + total],
            )
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    assert_eq!(parts[0].0, 0, "the first fragment is there");
    let mut out = parts[0].2.to_vec();
    let hl = out.len() - 14;
    let mut at = 0;
    for (i, (off, more, _, body)) in parts.iter().enumerate() {
        assert_eq!(*off, at, "fragments meet without gap or overlap");
        assert_eq!(*more, i + 1 < parts.len(), "MF on all but the last");
        out.extend_from_slice(body);
        at += body.len();
    }
    out[20..22].copy_from_slice(&0u16.to_be_bytes());
    set_ip_total_len(&mut out, (hl + at) as u16);
    refresh_ip_checksum(&mut out, 14);
    out
}

/// `frame` (untagged IPv6, no extension headers) cut into IPv6 fragments of at most `mtu`
/// bytes of IPv6 packet each, with identification `ident`, as a host's stack does (RFC 8200
/// 4.5: the fixed header copied with next header 44, then a fragment header naming the
/// original next header, offsets in 8-byte units, M on all but the last). A frame that fits
/// comes back whole.
pub fn fragment6(frame: &[u8], mtu: usize, ident: u32) -> Vec<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let next = frame[20];
    let body = &frame[54..54 + len];
    if 40 + len <= mtu {
        return vec![frame[..54 + len].to_vec()];
    }
    let chunk = (mtu - 48) & !7;
    body.chunks(chunk)
        .enumerate()
        .map(|(i, piece)| {
            let mut f = frame[..54].to_vec();
            f[20] = 44;
            f[18..20].copy_from_slice(&((8 + piece.len()) as u16).to_be_bytes());
            let more = (i + 1) * chunk < body.len();
            let word = (i * chunk) as u16 | u16::from(more);
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&word.to_be_bytes());
            f.extend_from_slice(&ident.to_be_bytes());
            f.extend_from_slice(piece);
            f
        })
        .collect()
}

/// An IPv6 fragment's identification (untagged, the fragment header right after the fixed
/// header, as [`fragment6`] makes them).
pub fn fragment6_ident(frame: &[u8]) -> u32 {
    assert_eq!(frame[20], 44, "a fragment header");
    u32::from_be_bytes([frame[58], frame[59], frame[60], frame[61]])
}

/// The datagram the IPv6 fragments `frames` (untagged, the fragment header right after the
/// fixed header; one datagram, any order) make up, as one untagged frame with the first
/// fragment's Ethernet and fixed header (next header and payload length restored). Panics on
/// a gap, an overlap, or fragments of different identifications or next headers.
pub fn reassemble6(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, bool, &[u8])> = frames
        .iter()
        .map(|f| {
            let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
            let word = u16::from_be_bytes([f[56], f[57]]);
            assert_eq!(
                fragment6_ident(f),
                fragment6_ident(&frames[0]),
                "one datagram"
            );
            assert_eq!(f[54], frames[0][54], "one upper-layer protocol");
            (usize::from(word & 0xfff8), word & 1 != 0, &f[62..54 + len])
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    assert_eq!(parts[0].0, 0, "the first fragment is there");
    let first = frames
        .iter()
        .find(|f| u16::from_be_bytes([f[56], f[57]]) & 0xfff8 == 0)
        .expect("first fragment");
    let mut out = first[..54].to_vec();
    out[20] = first[54];
    let mut at = 0;
    for (i, (off, more, body)) in parts.iter().enumerate() {
        assert_eq!(*off, at, "fragments meet without gap or overlap");
        assert_eq!(*more, i + 1 < parts.len(), "M on all but the last");
        out.extend_from_slice(body);
        at += body.len();
    }
    out[18..20].copy_from_slice(&(at as u16).to_be_bytes());
    out
}

/// An Ethernet/IPv6 frame carrying the ICMPv6 message `msg`, its checksum computed by smoltcp.
pub fn icmpv6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    msg: &Icmpv6Repr,
) -> Vec<u8> {
    let len = msg.buffer_len();
    let mut f = vec![0u8; 14 + 40 + len];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: len,
        hop_limit,
    };
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    msg.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut f[54..]),
        &ChecksumCapabilities::default(),
    );
    f
}

/// An IPv6 frame seen on a port: its MACs, addresses, hop limit and ICMPv6 message bytes.
#[derive(Clone, Debug)]
pub struct Seen6 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub next_header: u8,
    /// The payload (the ICMPv6 message for ICMPv6).
    pub payload: Vec<u8>,
}

impl Seen6 {
    /// The ICMPv6 message, parsed by smoltcp, which verifies its checksum.
    pub fn icmpv6(&self) -> Icmpv6Repr<'_> {
        assert_eq!(self.next_header, 58, "ICMPv6");
        Icmpv6Repr::parse(
            &self.src,
            &self.dst,
            &Icmpv6Packet::new_checked(&self.payload[..]).expect("icmpv6"),
            &ChecksumCapabilities::default(),
        )
        .expect("ICMPv6 message with a valid checksum")
    }
}

/// Decodes an untagged Ethernet/IPv6 frame (its fixed header, trailing padding cut).
pub fn decode6(frame: &[u8]) -> Seen6 {
    assert_eq!(&frame[12..14], &[0x86, 0xdd], "ethertype IPv6");
    let ip = Ipv6Packet::new_checked(&frame[14..]).expect("ipv6 header");
    let repr = Ipv6Repr::parse(&ip).expect("ipv6");
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Seen6 {
        dst_mac,
        src_mac,
        src: repr.src_addr,
        dst: repr.dst_addr,
        hop_limit: repr.hop_limit,
        next_header: u8::from(repr.next_header),
        payload: ip.payload().to_vec(),
    }
}

/// Writes the TCP segment or UDP datagram `spec` with `payload` into `l4` (exactly its size),
/// its checksum computed over the pseudo-header of `addrs` (UDP's left 0 if asked).
fn write_l4(l4: &mut [u8], spec: &L4Spec, payload: &[u8], (src, dst): (IpAddress, IpAddress)) {
    match *spec {
        L4Spec::Tcp {
            sport,
            dport,
            flags,
            seq,
            ack,
        } => {
            let mut t = TcpPacket::new_unchecked(&mut *l4);
            t.set_src_port(sport);
            t.set_dst_port(dport);
            t.set_seq_number(smoltcp::wire::TcpSeqNumber(seq as i32));
            t.set_ack_number(smoltcp::wire::TcpSeqNumber(ack as i32));
            t.set_header_len(20);
            t.set_window_len(65535);
            t.payload_mut().copy_from_slice(payload);
            l4[13] = flags;
            TcpPacket::new_unchecked(&mut *l4).fill_checksum(&src, &dst);
        }
        L4Spec::Udp {
            sport,
            dport,
            zero_csum,
        } => {
            let len = l4.len() as u16;
            let mut u = UdpPacket::new_unchecked(&mut *l4);
            u.set_src_port(sport);
            u.set_dst_port(dport);
            u.set_len(len);
            u.payload_mut().copy_from_slice(payload);
            if zero_csum {
                u.set_checksum(0);
            } else {
                u.fill_checksum(&src, &dst);
            }
        }
        L4Spec::Echo { .. } => panic!("ICMP messages are written by their own builders"),
    }
}

/// An IPv6 frame to build: Ethernet / IPv6 / TCP or UDP / payload, checksums by smoltcp. ICMP
/// echo is not offered: ICMPv6 frames are built with [`icmpv6_frame`].
#[derive(Clone, Debug)]
pub struct Frame6 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub l4: L4Spec,
    pub payload: Vec<u8>,
}

impl Frame6 {
    /// A TCP segment from the router to the director's WAN port.
    pub fn tcp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Frame6 {
        Frame6 {
            dst_mac: WAN_MAC,
            src_mac: ROUTER_MAC,
            src,
            dst,
            hop_limit: 64,
            l4: L4Spec::Tcp {
                sport,
                dport,
                flags,
                seq: 1000,
                ack: if flags & ACK != 0 { 5000 } else { 0 },
            },
            payload: Vec::new(),
        }
    }

    /// A UDP datagram from the router to the director's WAN port.
    pub fn udp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Frame6 {
        Frame6 {
            l4: L4Spec::Udp {
                sport,
                dport,
                zero_csum: false,
            },
            ..Frame6::tcp(src, sport, dst, dport, 0)
        }
    }

    pub fn payload(mut self, p: &[u8]) -> Frame6 {
        self.payload = p.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let (src, dst) = (IpAddress::Ipv6(self.src), IpAddress::Ipv6(self.dst));
        let (next, l4_len) = match self.l4 {
            L4Spec::Tcp { .. } => (IpProtocol::Tcp, 20),
            L4Spec::Udp { .. } => (IpProtocol::Udp, 8),
            L4Spec::Echo { .. } => panic!("ICMPv6 frames are built with icmpv6_frame"),
        };
        let l4_len = l4_len + self.payload.len();
        let mut f = vec![0u8; 14 + 40 + l4_len];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        Ipv6Repr {
            src_addr: self.src,
            dst_addr: self.dst,
            next_header: next,
            payload_len: l4_len,
            hop_limit: self.hop_limit,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
        write_l4(&mut f[54..], &self.l4, &self.payload, (src, dst));
        f
    }
}

/// The TCP or UDP header of an IPv6 packet, checked by smoltcp's full checksum computation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Seen {
    pub sport: u16,
    pub dport: u16,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Seen6 {
    /// The TCP segment or UDP datagram, asserting that its checksum verifies.
    pub fn l4(&self) -> L4Seen {
        let (src, dst) = (IpAddress::Ipv6(self.src), IpAddress::Ipv6(self.dst));
        match self.next_header {
            6 => {
                let t = TcpPacket::new_checked(&self.payload[..]).expect("tcp");
                assert!(t.verify_checksum(&src, &dst), "TCP checksum must verify");
                L4Seen {
                    sport: t.src_port(),
                    dport: t.dst_port(),
                    flags: self.payload[13],
                    payload: t.payload().to_vec(),
                }
            }
            17 => {
                let u = UdpPacket::new_checked(&self.payload[..]).expect("udp");
                assert!(u.verify_checksum(&src, &dst), "UDP checksum must verify");
                L4Seen {
                    sport: u.src_port(),
                    dport: u.dst_port(),
                    flags: 0,
                    payload: u.payload().to_vec(),
                }
            }
            other => panic!("next header {other}: not TCP or UDP"),
        }
    }
}
