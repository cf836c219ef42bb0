//! NAT64 translation (FullNAT from IPv6 clients to IPv4 servers): the IP header of a TCP or
//! UDP packet rewritten from one family to the other in place, after RFC 7915, with the
//! session's addresses and ports and the transport checksum carried over incrementally; and
//! the ICMP errors that make path-MTU discovery work across it, translated both ways with
//! their quotes.
//!
//! What carries over (RFC 7915 4.1, 5.1): traffic class ↔ type of service, hop limit ↔ TTL
//! (less one: the director routes), next header ↔ protocol, the payload. IPv6 → IPv4: the
//! identification is the director's, DF is set on packets over 1260 bytes (smaller ones may
//! be fragmented on the IPv4 side; a larger one's Packet Too Big stays ≥ 1280), extension
//! headers are dropped with the fixed header. IPv4 → IPv6: options are dropped, the flow
//! label is 0, and a UDP datagram without a checksum gets one computed (RFC 7915 4.5).
//!
//! Fragments translate into fragments (RFC 7915 4.1, 5.1.1): an IPv6 fragment's Fragment
//! Header gives the IPv4 fragment its offset, MF and protocol (DF clear), an IPv4 fragment
//! becomes an IPv6 one behind a Fragment Header with the IPv4 identification, offset and
//! MF. Only the first fragment carries the transport header: its ports are rewritten and its
//! checksum, which covers the whole datagram, takes the pseudo-header's change; later
//! fragments change at L3 only. A fragment of a UDP datagram without a checksum cannot get
//! one and is dropped (RFC 7915 4.5).
//!
//! The addresses are the session's, not an algorithmic mapping: the IPv6 client talks to an
//! IPv6 VIP, the IPv4 server to an IPv4 LIP. In the IPv6 session table a NAT64 session's
//! reply key holds the IPv4 server and LIP as IPv4-mapped addresses ([`mapped`]).

use crate::checksum::{self, Delta};
use crate::parse::IPV6_HEADER_LEN;
use crate::wire::ipv4::{FLAG_MF, FRAG_OFFSET};
use crate::wire::{IpProto, Ipv4Header, IPV4_MIN_HEADER_LEN};
use core::net::{Ipv4Addr, Ipv6Addr};

/// How much longer the fixed IPv6 header is than an IPv4 header without options.
pub const GROWTH: usize = IPV6_HEADER_LEN - IPV4_MIN_HEADER_LEN;

/// IPv4 packets up to this size leave without DF (RFC 7915 5.1): an IPv6 packet of the
/// minimum MTU (1280) translates to 1260 bytes, and IPv4 links may be narrower.
pub const DF_ABOVE: usize = 1280 - GROWTH;

/// The smallest MTU an IPv6 link has (RFC 8200 5): Packet Too Big never names less.
pub const IPV6_MIN_MTU: u32 = 1280;

/// The IPv4-mapped IPv6 address of `a` (`::ffff:a.b.c.d`), under which a NAT64 session's IPv4
/// side is kept in the IPv6 session table.
#[inline]
pub fn mapped(a: Ipv4Addr) -> Ipv6Addr {
    a.to_ipv6_mapped()
}

/// An address and port.
pub type Endpoint<A> = (A, u16);

/// Offset of the transport checksum: TCP's at 16, UDP's at 6.
#[inline]
fn checksum_at(tcp: bool) -> usize {
    if tcp {
        16
    } else {
        6
    }
}

/// The checksum change of an address pair `old` → `new` (the rest of the two pseudo-headers
/// sums the same: the upper-layer length and the protocol).
#[inline]
fn pseudo_delta(d: &mut Delta, old: &[u8], new: &[u8]) {
    for w in old.chunks_exact(2) {
        d.add16(u16::from_be_bytes([w[0], w[1]]), 0);
    }
    for w in new.chunks_exact(2) {
        d.add16(0, u16::from_be_bytes([w[0], w[1]]));
    }
}

/// The ports of the transport header `l4` set to `sport`, `dport`, their change added to `d`.
#[inline]
fn set_ports(l4: &mut [u8], d: &mut Delta, sport: u16, dport: u16) {
    d.add16(u16::from_be_bytes([l4[0], l4[1]]), sport);
    d.add16(u16::from_be_bytes([l4[2], l4[3]]), dport);
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
}

/// What the IPv4 header of a translated packet gets that the IPv6 one does not say.
#[derive(Clone, Copy, Debug)]
pub struct To4 {
    /// Source (the LIP) and port.
    pub src: Endpoint<Ipv4Addr>,
    /// Destination (the RS) and port.
    pub dst: Endpoint<Ipv4Addr>,
    /// The IPv4 identification.
    pub ident: u16,
}

/// Translates the IPv6 TCP (`tcp`) or UDP packet `pkt` (exactly the packet: fixed header to
/// payload end), whose transport header is at `l4_off`, into an IPv4 packet from `t.src` to
/// `t.dst`, in place: the IPv4 header is written over the end of the IPv6 headers, right in
/// front of the transport header, whose ports and checksum follow. Returns the offset of the
/// IPv4 header in `pkt`. The caller checked that the hop limit allows forwarding.
pub fn to_ipv4(pkt: &mut [u8], l4_off: usize, tcp: bool, t: &To4) -> usize {
    let tclass = (pkt[0] << 4) | (pkt[1] >> 4);
    let ttl = pkt[7].saturating_sub(1);
    let mut d = Delta::ZERO;
    let mut new_addrs = [0u8; 8];
    new_addrs[..4].copy_from_slice(&t.src.0.octets());
    new_addrs[4..].copy_from_slice(&t.dst.0.octets());
    pseudo_delta(&mut d, &pkt[8..40], &new_addrs);
    let total = pkt.len() - l4_off + IPV4_MIN_HEADER_LEN;
    let (head, l4) = pkt.split_at_mut(l4_off);
    set_ports(l4, &mut d, t.src.1, t.dst.1);
    let at = checksum_at(tcp);
    let c = u16::from_be_bytes([l4[at], l4[at + 1]]);
    let c = if tcp { d.apply(c) } else { d.apply_udp(c) };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let h = Ipv4Header {
        src: t.src.0,
        dst: t.dst.0,
        proto: if tcp { IpProto::Tcp } else { IpProto::Udp },
        tos: tclass,
        ttl,
        ident: t.ident,
        dont_frag: total > DF_ABOVE,
        frag: 0,
        total_len: total as u16,
    };
    let o = l4_off - IPV4_MIN_HEADER_LEN;
    if let Ok(out) = (&mut head[o..]).try_into() {
        h.emit(out);
    }
    o
}

/// Translates the IPv4 TCP (`tcp`) or UDP packet at `at` in `area` (to the end of `area`:
/// exactly the packet), header length `ihl`, into an IPv6 packet from `src` to `dst`, in
/// place: the IPv6 header is written right in front of the transport header, so `area` must
/// start at least [`GROWTH`] bytes before the packet when it has no options. Returns the
/// offset of the IPv6 header in `area`. The caller checked that the TTL allows forwarding.
pub fn to_ipv6(
    area: &mut [u8],
    at: usize,
    ihl: usize,
    tcp: bool,
    (src, dst): (Endpoint<Ipv6Addr>, Endpoint<Ipv6Addr>),
) -> usize {
    let ip = &area[at..];
    let tos = ip[1];
    let ttl = ip[8].saturating_sub(1);
    let proto = ip[9];
    let mut old_addrs = [0u8; 8];
    old_addrs.copy_from_slice(&ip[12..20]);
    let l4_at = at + ihl;
    let payload = area.len() - l4_at;
    let o = l4_at - IPV6_HEADER_LEN;
    let (head, l4) = area.split_at_mut(l4_at);
    let mut d = Delta::ZERO;
    let mut new_addrs = [0u8; 32];
    new_addrs[..16].copy_from_slice(&src.0.octets());
    new_addrs[16..].copy_from_slice(&dst.0.octets());
    pseudo_delta(&mut d, &old_addrs, &new_addrs);
    set_ports(l4, &mut d, src.1, dst.1);
    let c_at = checksum_at(tcp);
    let c = u16::from_be_bytes([l4[c_at], l4[c_at + 1]]);
    let c = match (tcp, c) {
        (false, 0) => {
            // No checksum in IPv4; IPv6 requires one (RFC 7915 4.5): computed in full.
            let c = checksum::ipv6_l4(src.0, dst.0, IpProto::Udp.number(), l4);
            if c == 0 {
                0xffff
            } else {
                c
            }
        }
        (true, c) => d.apply(c),
        (false, c) => d.apply_udp(c),
    };
    l4[c_at..c_at + 2].copy_from_slice(&c.to_be_bytes());
    let h = &mut head[o..];
    h[0] = 0x60 | (tos >> 4);
    h[1] = tos << 4;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    h[6] = proto;
    h[7] = ttl;
    h[8..24].copy_from_slice(&src.0.octets());
    h[24..40].copy_from_slice(&dst.0.octets());
    o
}

/// The length of an IPv6 Fragment Header (RFC 8200 4.5).
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The fixed IPv6 header and a Fragment Header: what an IPv4 fragment's header becomes.
pub const FRAGMENT_HEADERS_LEN: usize = IPV6_HEADER_LEN + FRAGMENT_HEADER_LEN;

/// Where a fragment sits in its datagram, on either side of the translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Offset of its payload in the datagram's, in bytes (a multiple of 8).
    pub offset: u32,
    /// More fragments follow (IPv4's MF, IPv6's M).
    pub more: bool,
    /// The upper-layer protocol (IPv4's protocol, the Fragment Header's next header).
    pub proto: u8,
}

/// Translates the IPv6 fragment `pkt` (exactly the packet: fixed header to payload end),
/// whose fragmentable part starts at `l4_off` (right after its Fragment Header), into an IPv4
/// fragment from `t.src` to `t.dst` with identification `t.ident`, in place, after RFC 7915
/// 5.1.1: offset and MF carried over, DF clear, the protocol the Fragment Header's next
/// header, the total length this fragment's. The first fragment (`first`: `Some(tcp)`)
/// carries the TCP or UDP header: its ports are the session's and its checksum, which covers
/// the whole datagram, takes the pseudo-header's and ports' change only; later fragments are
/// payload and change at L3 only. Returns the offset of the IPv4 header in `pkt`. The caller
/// checked that the hop limit allows forwarding.
pub fn fragment_to_ipv4(
    pkt: &mut [u8],
    l4_off: usize,
    first: Option<bool>,
    piece: Piece,
    t: &To4,
) -> usize {
    let tclass = (pkt[0] << 4) | (pkt[1] >> 4);
    let ttl = pkt[7].saturating_sub(1);
    let total = pkt.len() - l4_off + IPV4_MIN_HEADER_LEN;
    if let Some(tcp) = first {
        let mut d = Delta::ZERO;
        let mut new_addrs = [0u8; 8];
        new_addrs[..4].copy_from_slice(&t.src.0.octets());
        new_addrs[4..].copy_from_slice(&t.dst.0.octets());
        let mut old_addrs = [0u8; 32];
        old_addrs.copy_from_slice(&pkt[8..40]);
        pseudo_delta(&mut d, &old_addrs, &new_addrs);
        let l4 = &mut pkt[l4_off..];
        set_ports(l4, &mut d, t.src.1, t.dst.1);
        let at = checksum_at(tcp);
        let c = u16::from_be_bytes([l4[at], l4[at + 1]]);
        let c = if tcp { d.apply(c) } else { d.apply_udp(c) };
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let more = if piece.more { FLAG_MF } else { 0 };
    let h = Ipv4Header {
        src: t.src.0,
        dst: t.dst.0,
        proto: IpProto::from_number(piece.proto),
        tos: tclass,
        ttl,
        ident: t.ident,
        dont_frag: false,
        frag: more | ((piece.offset / 8) as u16 & FRAG_OFFSET),
        total_len: total as u16,
    };
    let o = l4_off - IPV4_MIN_HEADER_LEN;
    if let Ok(out) = (&mut pkt[o..l4_off]).try_into() {
        h.emit(out);
    }
    o
}

/// The transport header of the first fragment of an IPv4 datagram (or of a whole one: `l4`
/// runs to the datagram's end then, `whole`), sent from `old_addrs` (the IPv4 source and
/// destination, 8 bytes), translated for IPv6 from `src` to `dst`: ports set, the checksum
/// carried over by the pseudo-headers' and ports' change. A UDP datagram without a checksum
/// gets one computed when it is whole; a fragment of one cannot (the checksum covers bytes
/// the director never holds at once), and RFC 7915 4.5 drops it: `false`.
pub fn first_to_ipv6(
    l4: &mut [u8],
    old_addrs: &[u8],
    tcp: bool,
    whole: bool,
    (src, dst): (Endpoint<Ipv6Addr>, Endpoint<Ipv6Addr>),
) -> bool {
    let mut d = Delta::ZERO;
    let mut new_addrs = [0u8; 32];
    new_addrs[..16].copy_from_slice(&src.0.octets());
    new_addrs[16..].copy_from_slice(&dst.0.octets());
    pseudo_delta(&mut d, old_addrs, &new_addrs);
    set_ports(l4, &mut d, src.1, dst.1);
    let c_at = checksum_at(tcp);
    let c = u16::from_be_bytes([l4[c_at], l4[c_at + 1]]);
    let c = match (tcp, c) {
        (false, 0) if !whole => return false,
        (false, 0) => match checksum::ipv6_l4(src.0, dst.0, IpProto::Udp.number(), l4) {
            0 => 0xffff,
            c => c,
        },
        (true, c) => d.apply(c),
        (false, c) => d.apply_udp(c),
    };
    l4[c_at..c_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Writes into `h` the fixed IPv6 header and Fragment Header of a translated IPv4 fragment
/// (RFC 7915 4.1): traffic class `tos`, hop limit `hop_limit`, from `src` to `dst`, `len`
/// bytes of fragment payload after the two headers, at `piece`'s place in datagram `ident`.
pub fn write_fragment_headers(
    h: &mut [u8; FRAGMENT_HEADERS_LEN],
    (tos, hop_limit): (u8, u8),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    len: usize,
    piece: Piece,
    ident: u32,
) {
    h[0] = 0x60 | (tos >> 4);
    h[1] = tos << 4;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&((len + FRAGMENT_HEADER_LEN) as u16).to_be_bytes());
    h[6] = FRAGMENT_NEXT_HEADER;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    let word = (piece.offset as u16 & 0xfff8) | u16::from(piece.more);
    h[40] = piece.proto;
    h[41] = 0;
    h[42..44].copy_from_slice(&word.to_be_bytes());
    h[44..48].copy_from_slice(&ident.to_be_bytes());
}

/// The next header number of an IPv6 Fragment Header.
const FRAGMENT_NEXT_HEADER: u8 = 44;

/// ICMPv4 type 3, destination unreachable.
const V4_UNREACH: u8 = 3;
/// ICMPv4 type 11, time exceeded.
const V4_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 type 1, destination unreachable.
const V6_UNREACH: u8 = 1;
/// ICMPv6 type 2, packet too big.
const V6_TOO_BIG: u8 = 2;
/// ICMPv6 type 3, time exceeded.
const V6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 type 4, parameter problem.
const V6_PARAM_PROBLEM: u8 = 4;

/// The ICMPv6 error (type, code, the word after the checksum) that ICMPv4 error `ty`/`code`
/// (`rest`: its word after the checksum) becomes (RFC 7915 4.2), `v6_mtu` the MTU of the
/// IPv6 link it leaves by; `None` for those RFC 7915 drops (source quench, parameter problem
/// with its pointer, redirect, and unreachable codes 14 and up but 15).
pub fn error_to_icmpv6(ty: u8, code: u8, rest: u32, v6_mtu: u32) -> Option<(u8, u8, u32)> {
    Some(match (ty, code) {
        (V4_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => (V6_UNREACH, 0, 0),
        (V4_UNREACH, 2) => (V6_PARAM_PROBLEM, 1, 6),
        (V4_UNREACH, 3) => (V6_UNREACH, 4, 0),
        (V4_UNREACH, 4) => {
            // The next-hop MTU (low 16 bits) plus the header difference, no more than the
            // IPv6 side takes, never under IPv6's minimum.
            let mtu = (rest & 0xffff) + GROWTH as u32;
            (V6_TOO_BIG, 0, mtu.min(v6_mtu).max(IPV6_MIN_MTU))
        }
        (V4_UNREACH, 9 | 10 | 13 | 15) => (V6_UNREACH, 1, 0),
        (V4_TIME_EXCEEDED, c @ (0 | 1)) => (V6_TIME_EXCEEDED, c, 0),
        _ => return None,
    })
}

/// The ICMPv4 error (type, code, the word after the checksum) that ICMPv6 error `ty`/`code`
/// (`rest`: its word after the checksum, the MTU of Packet Too Big) becomes (RFC 7915 5.2),
/// `v4_mtu` the MTU of the IPv4 link it leaves by; `None` for those RFC 7915 drops (unknown
/// codes, parameter problems other than an unknown next header).
pub fn error_to_icmpv4(ty: u8, code: u8, rest: u32, v4_mtu: u32) -> Option<(u8, u8, u32)> {
    Some(match (ty, code) {
        (V6_UNREACH, 0 | 2 | 3) => (V4_UNREACH, 1, 0),
        (V6_UNREACH, 1) => (V4_UNREACH, 10, 0),
        (V6_UNREACH, 4) => (V4_UNREACH, 3, 0),
        (V6_TOO_BIG, 0) => {
            let mtu = rest.saturating_sub(GROWTH as u32).min(v4_mtu).min(0xffff);
            (V4_UNREACH, 4, mtu)
        }
        (V6_TIME_EXCEEDED, c @ (0 | 1)) => (V4_TIME_EXCEEDED, c, 0),
        (V6_PARAM_PROBLEM, 1) => (V4_UNREACH, 2, 0),
        _ => return None,
    })
}

/// The packet an ICMPv4 error quotes (`q`: its IPv4 header and as much of its TCP/UDP header
/// as was quoted, at least the ports), written into `out` as the IPv6 packet it stands for:
/// from `src` to `dst`, its ports and (when quoted) transport checksum carried over. Returns
/// the length written (at most `out.len()`), `None` for a quote too short or not TCP/UDP.
pub fn quote_to_ipv6(
    q: &[u8],
    out: &mut [u8],
    (src, dst): (Endpoint<Ipv6Addr>, Endpoint<Ipv6Addr>),
) -> Option<usize> {
    let ihl = usize::from(*q.first()? & 0x0f) * 4;
    let tcp = match q.get(9)? {
        6 => true,
        17 => false,
        _ => return None,
    };
    if ihl < IPV4_MIN_HEADER_LEN || q.len() < ihl + 4 || out.len() < IPV6_HEADER_LEN + 4 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([q[2], q[3]]));
    let l4 = &q[ihl..];
    let n = l4.len().min(out.len() - IPV6_HEADER_LEN);
    let (h, o4) = out.split_at_mut(IPV6_HEADER_LEN);
    let o4 = &mut o4[..n];
    o4.copy_from_slice(&l4[..n]);
    let mut d = Delta::ZERO;
    let mut new_addrs = [0u8; 32];
    new_addrs[..16].copy_from_slice(&src.0.octets());
    new_addrs[16..].copy_from_slice(&dst.0.octets());
    pseudo_delta(&mut d, &q[12..20], &new_addrs);
    set_ports(o4, &mut d, src.1, dst.1);
    fix_quoted_checksum(o4, tcp, d);
    h[0] = 0x60 | (q[1] >> 4);
    h[1] = q[1] << 4;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&(total.saturating_sub(ihl) as u16).to_be_bytes());
    h[6] = q[9];
    h[7] = q[8];
    h[8..24].copy_from_slice(&src.0.octets());
    h[24..40].copy_from_slice(&dst.0.octets());
    Some(IPV6_HEADER_LEN + n)
}

/// The packet an ICMPv6 error quotes (`q`: its fixed IPv6 header directly followed by as
/// much of its TCP/UDP header as was quoted, at least the ports), written into `out` as the
/// IPv4 packet it stands for: from `src` to `dst`, identification `ident`, its ports and
/// (when quoted) transport checksum carried over. Returns the length written (at most
/// `out.len()`), `None` for a quote too short or not TCP/UDP.
pub fn quote_to_ipv4(
    q: &[u8],
    out: &mut [u8],
    (src, dst): (Endpoint<Ipv4Addr>, Endpoint<Ipv4Addr>),
    ident: u16,
) -> Option<usize> {
    let tcp = match q.get(6)? {
        6 => true,
        17 => false,
        _ => return None,
    };
    if q.len() < IPV6_HEADER_LEN + 4 || out.len() < IPV4_MIN_HEADER_LEN + 4 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([q[4], q[5]]));
    let l4 = &q[IPV6_HEADER_LEN..];
    let n = l4.len().min(out.len() - IPV4_MIN_HEADER_LEN);
    let (h, o4) = out.split_at_mut(IPV4_MIN_HEADER_LEN);
    let o4 = &mut o4[..n];
    o4.copy_from_slice(&l4[..n]);
    let mut d = Delta::ZERO;
    let mut new_addrs = [0u8; 8];
    new_addrs[..4].copy_from_slice(&src.0.octets());
    new_addrs[4..].copy_from_slice(&dst.0.octets());
    pseudo_delta(&mut d, &q[8..40], &new_addrs);
    set_ports(o4, &mut d, src.1, dst.1);
    fix_quoted_checksum(o4, tcp, d);
    let total = payload + IPV4_MIN_HEADER_LEN;
    let header = Ipv4Header {
        src: src.0,
        dst: dst.0,
        proto: if tcp { IpProto::Tcp } else { IpProto::Udp },
        tos: (q[0] << 4) | (q[1] >> 4),
        ttl: q[7],
        ident,
        dont_frag: total > DF_ABOVE,
        frag: 0,
        total_len: total.min(0xffff) as u16,
    };
    header.emit(h.try_into().ok()?);
    Some(IPV4_MIN_HEADER_LEN + n)
}

/// A quoted transport header's checksum, when the quote reaches it, updated by `d`.
fn fix_quoted_checksum(l4: &mut [u8], tcp: bool, d: Delta) {
    let at = checksum_at(tcp);
    if let Some(b) = l4.get_mut(at..at + 2) {
        let c = u16::from_be_bytes([b[0], b[1]]);
        let c = if tcp { d.apply(c) } else { d.apply_udp(c) };
        b.copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
