//! Frames the director builds itself: ARP requests and replies, neighbour advertisements,
//! ICMP errors.
//!
//! Builders write into a buffer the caller owns (a fresh one from the device pool, or the
//! received frame being answered); they never allocate.

use crate::buf::PacketBuf;
use crate::checksum;
use crate::icmpv6;
use crate::parse::{ICMPV6, IPV6_HEADER_LEN};
use crate::rewrite::l2_len;
use crate::wire::{
    icmp, tcp, ArpPacket, ArpRepr, IpProto, Ipv4Header, ETHERTYPE_ARP, ETHERTYPE_IPV6,
    ETHERTYPE_VLAN, IPV4_MIN_HEADER_LEN,
};
use core::net::{Ipv4Addr, Ipv6Addr};

/// The hop limit of neighbour discovery messages, sent and required (RFC 4861 7.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// Minimum Ethernet frame length without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;
/// Room left in front of a built L3 packet for the largest L2 header (tagged Ethernet).
pub const L2_ROOM: usize = 18;
/// Bytes of the offending packet an ICMP error quotes: its IP header plus 8 bytes (RFC 792).
pub const ICMP_QUOTE_L4: usize = 8;

/// Overwrites `buf` with an Ethernet (optionally 802.1Q-tagged) ARP frame.
/// Returns false, leaving `buf` unusable, if the buffer has no room.
pub fn write_arp<B: PacketBuf>(
    buf: &mut B,
    vlan: Option<u16>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    repr: &ArpRepr,
) -> bool {
    let l2 = l2_len(vlan);
    let len = (l2 + repr.buffer_len()).max(MIN_FRAME);
    buf.truncate(0);
    if !buf.append(len) {
        return false;
    }
    let d = buf.data_mut();
    d.fill(0);
    write_ethernet(d, vlan, src_mac, dst_mac, ETHERTYPE_ARP);
    let mut arp = ArpPacket::new_unchecked(&mut d[l2..l2 + repr.buffer_len()]);
    repr.emit(&mut arp);
    true
}

/// Writes an Ethernet header (802.1Q-tagged with `vlan` if set) at the front of `d`.
fn write_ethernet(
    d: &mut [u8],
    vlan: Option<u16>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ethertype: u16,
) {
    d[0..6].copy_from_slice(&dst_mac);
    d[6..12].copy_from_slice(&src_mac);
    match vlan {
        Some(v) => {
            d[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            d[14..16].copy_from_slice(&(v & 0x0fff).to_be_bytes());
            d[16..18].copy_from_slice(&ethertype.to_be_bytes());
        }
        None => d[12..14].copy_from_slice(&ethertype.to_be_bytes()),
    }
}

/// A neighbour advertisement to build (RFC 4861 4.4): always with the target link-layer
/// address option, never with the router flag (the director answers for its own addresses,
/// not as a router hosts should pick).
#[derive(Clone, Copy, Debug)]
pub struct NeighbourAdvert {
    /// The address advertised (the director's), also the packet's source.
    pub target: Ipv6Addr,
    /// Destination: the solicitation's source, or all-nodes (ff02::1) for an answer to a
    /// duplicate address detection probe.
    pub dst: Ipv6Addr,
    /// The link-layer address advertised (the port's MAC), also the frame's source.
    pub mac: [u8; 6],
    /// The solicited flag: set when answering a solicitation from an address.
    pub solicited: bool,
}

/// Length of a neighbour solicitation or advertisement with its link-layer address option.
const ND_LEN: usize = 24 + 8;

/// Overwrites `buf` with an Ethernet frame (tagged with `vlan` if set) to `dst_mac` carrying
/// the IPv6 neighbour advertisement `na` (hop limit 255, override flag set, ICMPv6 checksum).
/// Returns false, leaving `buf` unusable, if the buffer has no room.
pub fn write_neighbour_advert<B: PacketBuf>(
    buf: &mut B,
    vlan: Option<u16>,
    dst_mac: [u8; 6],
    na: &NeighbourAdvert,
) -> bool {
    let flags = if na.solicited {
        icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE
    } else {
        icmpv6::NA_OVERRIDE
    };
    let nd = Nd {
        ty: icmpv6::NEIGHBOUR_ADVERT,
        flags,
        addrs: (na.target, na.dst),
        target: na.target,
        option: icmpv6::OPT_TARGET_LLADDR,
        mac: na.mac,
    };
    write_nd(buf, vlan, dst_mac, &nd)
}

/// Overwrites `buf` with an Ethernet frame (tagged with `vlan` if set) carrying a neighbour
/// solicitation for `target` from `src` (a DIP of the interface) with `mac` as its source
/// link-layer address, to `target`'s solicited-node group and its group MAC. Returns false,
/// leaving `buf` unusable, if the buffer has no room.
pub fn write_neighbour_solicit<B: PacketBuf>(
    buf: &mut B,
    vlan: Option<u16>,
    mac: [u8; 6],
    src: Ipv6Addr,
    target: Ipv6Addr,
) -> bool {
    let group = icmpv6::solicited_node(target);
    let nd = Nd {
        ty: icmpv6::NEIGHBOUR_SOLICIT,
        flags: 0,
        addrs: (src, group),
        target,
        option: icmpv6::OPT_SOURCE_LLADDR,
        mac,
    };
    write_nd(buf, vlan, icmpv6::group_mac(group), &nd)
}

/// A neighbour solicitation or advertisement with one link-layer address option.
struct Nd {
    ty: u8,
    flags: u8,
    addrs: (Ipv6Addr, Ipv6Addr),
    target: Ipv6Addr,
    option: u8,
    mac: [u8; 6],
}

fn write_nd<B: PacketBuf>(buf: &mut B, vlan: Option<u16>, dst_mac: [u8; 6], nd: &Nd) -> bool {
    let l2 = l2_len(vlan);
    let len = (l2 + IPV6_HEADER_LEN + ND_LEN).max(MIN_FRAME);
    buf.truncate(0);
    if !buf.append(len) {
        return false;
    }
    let d = buf.data_mut();
    d.fill(0);
    write_ethernet(d, vlan, nd.mac, dst_mac, ETHERTYPE_IPV6);
    let (src, dst) = nd.addrs;
    let ip = &mut d[l2..l2 + IPV6_HEADER_LEN + ND_LEN];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(ND_LEN as u16).to_be_bytes());
    ip[6] = ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let m = &mut ip[IPV6_HEADER_LEN..];
    m[0] = nd.ty;
    m[4] = nd.flags;
    m[8..24].copy_from_slice(&nd.target.octets());
    m[24] = nd.option;
    m[25] = 1;
    m[26..32].copy_from_slice(&nd.mac);
    let c = checksum::icmpv6(src, dst, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Overwrites `buf` with an ICMPv6 error (`ty`, `code`, the 32-bit word after the checksum)
/// from `src` to `dst` quoting as much of `offending` (from its IPv6 header) as fits in
/// [`icmpv6::ERROR_MAX`] bytes (RFC 4443 2.4 (c)), hop limit 64, placed at offset
/// [`L2_ROOM`] so the caller can frame it. Returns false if the buffer has no room.
pub fn write_icmpv6_error<B: PacketBuf>(
    buf: &mut B,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    (ty, code, rest): (u8, u8, u32),
    offending: &[u8],
) -> bool {
    let quote = &offending[..offending.len().min(icmpv6::ERROR_MAX - IPV6_HEADER_LEN - 8)];
    let payload = 8 + quote.len();
    buf.truncate(0);
    if !buf.append(L2_ROOM + IPV6_HEADER_LEN + payload) {
        return false;
    }
    let ip = &mut buf.data_mut()[L2_ROOM..];
    ip[..IPV6_HEADER_LEN].fill(0);
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[6] = ICMPV6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let m = &mut ip[IPV6_HEADER_LEN..];
    m[0] = ty;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    m[8..].copy_from_slice(quote);
    let c = checksum::icmpv6(src, dst, m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Overwrites `buf` with `total` bytes of IPv4 packet at offset [`L2_ROOM`]: a 20-byte
/// header (TTL 64, DF as given, protocol `proto`, `src` → `dst`, its checksum) and room for the
/// payload after it, which it returns (header included). `None` if the buffer has no room.
fn ipv4_packet<B: PacketBuf>(
    buf: &mut B,
    total: usize,
    ident: u16,
    dont_frag: bool,
    proto: IpProto,
    (src, dst): (Ipv4Addr, Ipv4Addr),
) -> Option<&mut [u8]> {
    buf.truncate(0);
    if !buf.append(L2_ROOM + total) {
        return None;
    }
    let d = &mut buf.data_mut()[L2_ROOM..L2_ROOM + total];
    let header = Ipv4Header {
        src,
        dst,
        proto,
        tos: 0,
        ttl: crate::wire::ipv4::DEFAULT_TTL,
        ident,
        dont_frag,
        frag: 0,
        total_len: total as u16,
    };
    header.emit((&mut d[..IPV4_MIN_HEADER_LEN]).try_into().ok()?);
    Some(d)
}

/// An ICMP error to build (RFC 792): type, code, the 32-bit "rest of header" word.
#[derive(Clone, Copy, Debug)]
pub struct IcmpError {
    /// Source address (the director's address toward `dst`).
    pub src: Ipv4Addr,
    /// Destination: the sender of the offending packet.
    pub dst: Ipv4Addr,
    /// ICMP type (3 destination unreachable, 11 time exceeded).
    pub ty: u8,
    /// ICMP code (for type 3: 4 = fragmentation needed and DF set).
    pub code: u8,
    /// Rest of header (for fragmentation needed: next-hop MTU in the low 16 bits).
    pub rest: u32,
    /// IPv4 identification.
    pub ident: u16,
}

/// Overwrites `buf` with an IPv4 ICMP error quoting `offending` (its IP header and the first
/// 8 bytes after it), placed at offset [`L2_ROOM`] so the caller can frame it with
/// [`crate::rewrite::frame_l2`]. Returns false if the buffer has no room.
pub fn write_icmp_error<B: PacketBuf>(buf: &mut B, e: &IcmpError, offending: &[u8]) -> bool {
    let ihl = match offending.first() {
        Some(b) => ((b & 0x0f) as usize) * 4,
        None => return false,
    };
    let quote = &offending[..(ihl + ICMP_QUOTE_L4).min(offending.len())];
    let total = IPV4_MIN_HEADER_LEN + icmp::HEADER_LEN + quote.len();
    let Some(d) = ipv4_packet(buf, total, e.ident, false, IpProto::Icmp, (e.src, e.dst)) else {
        return false;
    };
    use icmp::field::{CHECKSUM, CODE, REST, TYPE};
    let m = &mut d[IPV4_MIN_HEADER_LEN..];
    m[TYPE] = e.ty;
    m[CODE] = e.code;
    m[CHECKSUM..CHECKSUM + 2].fill(0);
    m[REST..REST + 4].copy_from_slice(&e.rest.to_be_bytes());
    m[icmp::HEADER_LEN..].copy_from_slice(quote);
    let c = checksum::checksum(m);
    m[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// A TCP segment the director sends itself (the SYN proxy's SYN/ACK to a client, its SYN and
/// ACK to a real server, a RST): no payload, at most an MSS option.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent with the ACK flag only).
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window (unscaled: the SYN proxy negotiates no window scaling).
    pub window: u16,
    /// The MSS option, for SYNs.
    pub mss: Option<u16>,
    /// IPv4 identification.
    pub ident: u16,
}

/// Overwrites `buf` with the IPv4/TCP segment `s` (DF set, TTL 64, both checksums), placed at
/// offset [`L2_ROOM`] so the caller can frame it with [`crate::rewrite::frame_l2`]. The buffer
/// may be the received frame being answered: the caller reads what it needs first. Returns
/// false if the buffer has no room.
pub fn write_tcp<B: PacketBuf>(buf: &mut B, s: &TcpSegment) -> bool {
    write_tcp_data(buf, s, &[])
}

/// [`write_tcp`] with `data` as the segment's payload (a PROXY protocol header sent as a
/// segment of its own).
pub fn write_tcp_data<B: PacketBuf>(buf: &mut B, s: &TcpSegment, data: &[u8]) -> bool {
    use tcp::field::CHECKSUM;
    let header_len = tcp_header_len(s.mss);
    let tcp_len = header_len + data.len();
    let total = IPV4_MIN_HEADER_LEN + tcp_len;
    let Some(d) = ipv4_packet(buf, total, s.ident, true, IpProto::Tcp, (s.src, s.dst)) else {
        return false;
    };
    let t = &mut d[IPV4_MIN_HEADER_LEN..];
    fill_tcp_header(
        t,
        (s.sport, s.dport),
        (s.seq, s.ack, s.flags),
        s.window,
        s.mss,
    );
    t[header_len..tcp_len].copy_from_slice(data);
    let proto = IpProto::Tcp.number();
    let pseudo =
        checksum::pseudo_header_sum(u32::from(s.src), u32::from(s.dst), proto, tcp_len as u16);
    let c = !checksum::fold(checksum::sum_bytes(pseudo, t));
    t[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    true
}

const MSS_OPTION_LEN: usize = 4;

/// The length of a TCP header the director writes: with its MSS option or none.
fn tcp_header_len(mss: Option<u16>) -> usize {
    tcp::HEADER_LEN + if mss.is_some() { MSS_OPTION_LEN } else { 0 }
}

/// Writes a TCP header (ports, sequence numbers, flags, window, the MSS option if any) at the
/// start of `t`, its checksum zero for the caller to fill.
fn fill_tcp_header(
    t: &mut [u8],
    (sport, dport): (u16, u16),
    (seq, ack, flags): (u32, u32, u8),
    window: u16,
    mss: Option<u16>,
) {
    use tcp::field::{ACK, CHECKSUM, DATA_OFF, DST_PORT, FLAGS, SEQ, SRC_PORT, URGENT, WINDOW};
    let header_len = tcp_header_len(mss);
    t[SRC_PORT..SRC_PORT + 2].copy_from_slice(&sport.to_be_bytes());
    t[DST_PORT..DST_PORT + 2].copy_from_slice(&dport.to_be_bytes());
    t[SEQ..SEQ + 4].copy_from_slice(&seq.to_be_bytes());
    let ack = if flags & tcp::flags::ACK != 0 { ack } else { 0 };
    t[ACK..ACK + 4].copy_from_slice(&ack.to_be_bytes());
    t[DATA_OFF] = (header_len as u8 / 4) << 4;
    t[FLAGS] = flags;
    t[WINDOW..WINDOW + 2].copy_from_slice(&window.to_be_bytes());
    t[CHECKSUM..URGENT + 2].fill(0);
    if let Some(mss) = mss {
        let o = tcp::HEADER_LEN;
        t[o..o + 2].copy_from_slice(&[tcp::OPT_MSS, MSS_OPTION_LEN as u8]);
        t[o + 2..o + 4].copy_from_slice(&mss.to_be_bytes());
    }
}

/// An IPv6 TCP segment the director sends itself (the SYN proxy's SYN/ACK to a client of an
/// IPv6 VIP, its SYN and ACK to an IPv6 RS, a RST): no payload, at most an MSS option.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent with the ACK flag only).
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window (unscaled: the SYN proxy negotiates no window scaling).
    pub window: u16,
    /// The MSS option, for SYNs.
    pub mss: Option<u16>,
}

/// Overwrites `buf` with the IPv6/TCP segment `s` (hop limit 64, the TCP checksum over the
/// IPv6 pseudo-header), placed at offset [`L2_ROOM`] so the caller can frame it. The buffer
/// may be the received frame being answered: the caller reads what it needs first. Returns
/// false if the buffer has no room.
pub fn write_tcp6<B: PacketBuf>(buf: &mut B, s: &TcpSegment6) -> bool {
    write_tcp6_data(buf, s, &[])
}

/// [`write_tcp6`] with `data` as the segment's payload (a PROXY protocol header sent as a
/// segment of its own).
pub fn write_tcp6_data<B: PacketBuf>(buf: &mut B, s: &TcpSegment6, data: &[u8]) -> bool {
    use tcp::field::CHECKSUM;
    let header_len = tcp_header_len(s.mss);
    let tcp_len = header_len + data.len();
    buf.truncate(0);
    if !buf.append(L2_ROOM + IPV6_HEADER_LEN + tcp_len) {
        return false;
    }
    let ip = &mut buf.data_mut()[L2_ROOM..L2_ROOM + IPV6_HEADER_LEN + tcp_len];
    ip[..IPV6_HEADER_LEN].fill(0);
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    ip[6] = IpProto::Tcp.number();
    ip[7] = 64;
    ip[8..24].copy_from_slice(&s.src.octets());
    ip[24..40].copy_from_slice(&s.dst.octets());
    let t = &mut ip[IPV6_HEADER_LEN..];
    fill_tcp_header(
        t,
        (s.sport, s.dport),
        (s.seq, s.ack, s.flags),
        s.window,
        s.mss,
    );
    t[header_len..].copy_from_slice(data);
    let c = checksum::ipv6_l4(s.src, s.dst, IpProto::Tcp.number(), t);
    t[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    true
}
