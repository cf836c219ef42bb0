//! The PROXY protocol header (haproxy's specification, versions 1 and 2) that a service can
//! put ahead of each connection's data toward its dest, so that a real server behind FullNAT
//! learns the client's address and port; and the TCP surgery that carries it: the header
//! inserted at the start of a segment's payload, and sequence numbers moved between the
//! client's space and the RS's, where the header occupies the first bytes.
//!
//! The header names the connection as the client's packets do: source the client's address
//! and port, destination the VIP and the service port. It is built from the session's own
//! key, never from anything the client sends, so a client cannot claim another address.
//!
//! - **v1**: one line of text, `PROXY TCP4 <client> <vip> <cport> <vport>\r\n`, 32 to 56
//!   bytes for IPv4.
//! - **v2**: 16 bytes of fixed header (the 12-byte signature, version 2 and the PROXY
//!   command, family `AF_INET` and protocol `STREAM`, the address block's length) and the
//!   12-byte IPv4 address block (source and destination addresses, then ports): 28 bytes.
//!
//! Nothing here allocates: headers are written into a caller's buffer (at most
//! [`MAX_LEN`] bytes).

use core::net::{Ipv4Addr, Ipv6Addr};

use sched::ProxyProtocol;

use crate::buf::PacketBuf;
use crate::checksum;
use crate::parse::IPV6_HEADER_LEN;
use crate::wire::be32;
use crate::wire::ipv4::field as ip;
use crate::wire::tcp::{self, field as tcpf};

/// The signature a v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
pub const V2_VERSION_PROXY: u8 = 0x21;
/// Family `AF_INET`, protocol `STREAM`.
pub const V2_TCP4: u8 = 0x11;
/// Family `AF_INET`, protocol `DGRAM`.
pub const V2_UDP4: u8 = 0x12;
/// The length of a v2 header for TCP over IPv4.
pub const V2_TCP4_LEN: usize = 28;
/// The longest header for IPv4: v1 with four three-digit octets twice and two five-digit
/// ports.
pub const MAX_LEN: usize = 56;

/// How a session tells the RS who the client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// A PROXY protocol header of this version ahead of the client's data.
    Proxy(ProxyProtocol),
    /// TOA: TCP option 254 in the connection's first segments toward the RS (no sequence
    /// shift).
    Toa,
}

/// TOA's option kind (Alibaba's `TCPOPT_TOA`), as the RS's kernel module reads it.
pub const TOA_KIND: u8 = 254;
/// TOA's option length: kind, length, port, IPv4 address.
pub const TOA_LEN: usize = 8;

/// The TOA option naming `client`: kind 254, length 8, the port, the address (network
/// order).
#[inline]
pub fn toa_option((addr, port): (Ipv4Addr, u16)) -> [u8; TOA_LEN] {
    let [p0, p1] = port.to_be_bytes();
    let [a, b, c, d] = addr.octets();
    [TOA_KIND, TOA_LEN as u8, p0, p1, a, b, c, d]
}

/// How far a session's header got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not sent: the client has sent no data yet.
    Pending,
    /// Sent ahead of the client's first data; the RS has not acknowledged it yet, so a
    /// retransmission of that data carries it again.
    Sent,
    /// Acknowledged by the RS: only the sequence shift remains.
    Done,
}

/// The two ends a header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    /// The client's address and port.
    pub client: (Ipv4Addr, u16),
    /// The VIP and the service port.
    pub vip: (Ipv4Addr, u16),
}

impl Ends {
    /// The ends of the connection whose client packets have `key` (client → VIP).
    #[inline]
    pub fn of(key: &conntrack::FlowKey) -> Ends {
        Ends {
            client: (key.src, key.sport),
            vip: (key.dst, key.dport),
        }
    }
}

/// The length of `version`'s header for `ends`.
#[inline]
pub fn len(version: ProxyProtocol, ends: &Ends) -> usize {
    match version {
        ProxyProtocol::V2 => V2_TCP4_LEN,
        // "PROXY TCP4 " + client + " " + vip + " " + cport + " " + vport + "\r\n"
        ProxyProtocol::V1 => {
            11 + addr_digits(ends.client.0)
                + 1
                + addr_digits(ends.vip.0)
                + 1
                + digits(ends.client.1)
                + 1
                + digits(ends.vip.1)
                + 2
        }
    }
}

/// Writes the v2 header of a UDP flow for `ends` (protocol `DGRAM`) at the start of `out`;
/// returns its length, [`V2_TCP4_LEN`] like TCP's. (v1 has no UDP.)
///
/// # Panics
/// If `out` is shorter than that.
pub fn write_udp(ends: &Ends, out: &mut [u8]) -> usize {
    let n = write(ProxyProtocol::V2, ends, out);
    out[13] = V2_UDP4;
    n
}

/// Writes `version`'s header for `ends` at the start of `out`; returns its length.
///
/// # Panics
/// If `out` is shorter than [`len`] (callers size it to [`MAX_LEN`]).
pub fn write(version: ProxyProtocol, ends: &Ends, out: &mut [u8]) -> usize {
    match version {
        ProxyProtocol::V2 => {
            out[..12].copy_from_slice(&V2_SIGNATURE);
            out[12] = V2_VERSION_PROXY;
            out[13] = V2_TCP4;
            out[14..16].copy_from_slice(&12u16.to_be_bytes());
            out[16..20].copy_from_slice(&ends.client.0.octets());
            out[20..24].copy_from_slice(&ends.vip.0.octets());
            out[24..26].copy_from_slice(&ends.client.1.to_be_bytes());
            out[26..28].copy_from_slice(&ends.vip.1.to_be_bytes());
            V2_TCP4_LEN
        }
        ProxyProtocol::V1 => {
            let mut w = Writer { out, at: 0 };
            w.bytes(b"PROXY TCP4 ");
            w.addr(ends.client.0);
            w.bytes(b" ");
            w.addr(ends.vip.0);
            w.bytes(b" ");
            w.number(ends.client.1);
            w.bytes(b" ");
            w.number(ends.vip.1);
            w.bytes(b"\r\n");
            w.at
        }
    }
}

/// Decimal text into a slice, without allocating.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }

    fn number(&mut self, n: u16) {
        let d = digits(n);
        let mut v = n;
        for i in (0..d).rev() {
            self.out[self.at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.at += d;
    }

    fn hex(&mut self, n: u16) {
        let d = match n {
            0..=0xf => 1,
            0x10..=0xff => 2,
            0x100..=0xfff => 3,
            _ => 4,
        };
        for i in 0..d {
            let nibble = (n >> (4 * (d - 1 - i))) & 0xf;
            self.out[self.at + i] = b"0123456789abcdef"[usize::from(nibble)];
        }
        self.at += d;
    }

    /// RFC 5952's text form: lowercase hex without leading zeros, the longest run of two or
    /// more zero groups (the first of equal ones) as `::`; an IPv4-mapped address as
    /// `::ffff:a.b.c.d`.
    fn addr6(&mut self, a: Ipv6Addr) {
        let g = a.segments();
        if let Some(v4) = a.to_ipv4_mapped() {
            self.bytes(b"::ffff:");
            return self.addr(v4);
        }
        // The longest run of zero groups.
        let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
        for (i, &x) in g.iter().enumerate() {
            if x == 0 {
                if run_len == 0 {
                    run = i;
                }
                run_len += 1;
                if run_len > best_len {
                    (best, best_len) = (run, run_len);
                }
            } else {
                run_len = 0;
            }
        }
        if best_len < 2 {
            best_len = 0;
        }
        let mut i = 0;
        while i < 8 {
            if best_len > 0 && i == best {
                self.bytes(b"::");
                i += best_len;
                continue;
            }
            if i > 0 && !(best_len > 0 && i == best + best_len) {
                self.bytes(b":");
            }
            self.hex(g[i]);
            i += 1;
        }
    }

    fn addr(&mut self, a: Ipv4Addr) {
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                self.bytes(b".");
            }
            self.number(u16::from(o));
        }
    }
}

#[inline]
fn digits(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

#[inline]
fn addr_digits(a: Ipv4Addr) -> usize {
    let [a, b, c, d] = a.octets();
    3 + digits(a.into()) + digits(b.into()) + digits(c.into()) + digits(d.into())
}

/// The TCP header length of the segment at `l4` in `pkt` (the data offset), if it is a
/// sane one within the segment.
#[inline]
fn tcp_header_len(pkt: &[u8], l4: usize) -> Option<usize> {
    let doff = usize::from(pkt.get(l4 + tcpf::DATA_OFF)? >> 4) * 4;
    (doff >= tcp::HEADER_LEN && l4 + doff <= pkt.len()).then_some(doff)
}

/// The TCP payload length of the IPv4 packet `pkt` (exactly its total length) whose header
/// is `header_len` bytes, or None if its TCP header is not sane.
#[inline]
pub fn payload_len(pkt: &[u8], header_len: usize) -> Option<usize> {
    tcp_header_len(pkt, header_len).map(|t| pkt.len() - header_len - t)
}

/// Inserts `header` at the start of the TCP payload of the IPv4 packet at `l3` in `buf`
/// (`total_len` bytes, IPv4 header `header_len` bytes): the headers move toward the front
/// into the headroom, or else the payload toward the back into the tailroom. The IPv4 total
/// length and checksum follow, and the TCP checksum is computed afresh (the insertion may
/// move the payload by an odd number of bytes). Ethernet padding after the packet is cut.
/// Returns false, changing nothing, when the buffer has no room for it or the TCP header is
/// not sane.
pub fn insert<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    header_len: usize,
    total_len: usize,
    header: &[u8],
) -> bool {
    grow(buf, l3, header_len, total_len, header, false)
}

/// Inserts the TCP option `opt` (a whole number of 32-bit words) after the options of the
/// TCP segment of the IPv4 packet at `l3`, as [`insert`] does a header (the data offset grows
/// with it). Returns false, changing nothing, when the TCP header would exceed 60 bytes, the
/// buffer has no room, or the TCP header is not sane.
pub fn insert_option<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    header_len: usize,
    total_len: usize,
    opt: &[u8],
) -> bool {
    opt.len().is_multiple_of(4) && grow(buf, l3, header_len, total_len, opt, true)
}

/// [`insert`] and [`insert_option`]: `bytes` at the end of the TCP header; with `option`,
/// inside it.
fn grow<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    header_len: usize,
    total_len: usize,
    bytes: &[u8],
    option: bool,
) -> bool {
    let n = bytes.len();
    let end = l3 + total_len;
    if buf.len() < end || total_len + n > usize::from(u16::MAX) {
        return false;
    }
    let Some(thl) = tcp_header_len(&buf.data()[l3..end], header_len) else {
        return false;
    };
    if option && thl + n > 60 {
        return false;
    }
    if !make_room(buf, l3 + header_len + thl, end, bytes) {
        return false;
    }
    let pkt = &mut buf.data_mut()[l3..end + n];
    if option {
        let flags_nibble = pkt[header_len + tcpf::DATA_OFF] & 0x0f;
        pkt[header_len + tcpf::DATA_OFF] = (((thl + n) / 4) as u8) << 4 | flags_nibble;
    }
    set_total_len(pkt, total_len + n);
    tcp_checksum(pkt, header_len);
    true
}

/// Puts `bytes` at offset `at` of the frame in `buf`, cut to `end` first (Ethernet padding
/// goes): what is before `at` moves toward the front into the headroom, or else what is after
/// it toward the back into the tailroom. False, changing nothing, without room.
fn make_room<B: PacketBuf>(buf: &mut B, at: usize, end: usize, bytes: &[u8]) -> bool {
    let n = bytes.len();
    buf.truncate(end);
    if buf.headroom() >= n {
        if !buf.prepend(n) {
            return false;
        }
        buf.data_mut().copy_within(n..n + at, 0);
    } else if buf.tailroom() >= n {
        if !buf.append(n) {
            return false;
        }
        buf.data_mut().copy_within(at..end, at + n);
    } else {
        return false;
    }
    buf.data_mut()[at..at + n].copy_from_slice(bytes);
    true
}

/// Sets the IPv4 total length of `pkt` to `len`, its header checksum following.
fn set_total_len(pkt: &mut [u8], len: usize) {
    let new_total = len as u16;
    let old_total = u16::from_be_bytes([pkt[ip::LENGTH], pkt[ip::LENGTH + 1]]);
    pkt[ip::LENGTH..ip::LENGTH + 2].copy_from_slice(&new_total.to_be_bytes());
    let c = u16::from_be_bytes([pkt[ip::CHECKSUM], pkt[ip::CHECKSUM + 1]]);
    let c = checksum::update16(c, old_total, new_total);
    pkt[ip::CHECKSUM..ip::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// Inserts `header` at the start of the UDP payload of the IPv4 packet at `l3` in `buf`, as
/// [`insert`] does for TCP: the UDP length and the IPv4 length and checksum follow, and the
/// UDP checksum is computed afresh (a datagram sent without one stays without). Returns false,
/// changing nothing, when the buffer has no room or the UDP length is not the packet's.
// Always inlined: the IPv4 header step's code stays as it was with one caller.
#[inline(always)]
pub fn insert_udp<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    header_len: usize,
    total_len: usize,
    header: &[u8],
) -> bool {
    use crate::wire::udp;
    let n = header.len();
    let end = l3 + total_len;
    let l4 = l3 + header_len;
    if buf.len() < end || total_len < header_len + udp::HEADER_LEN || total_len + n > 65535 {
        return false;
    }
    let d = buf.data();
    let ulen = usize::from(u16::from_be_bytes([
        d[l4 + udp::field::LENGTH],
        d[l4 + udp::field::LENGTH + 1],
    ]));
    if ulen != total_len - header_len {
        return false;
    }
    if !make_room(buf, l4 + udp::HEADER_LEN, end, header) {
        return false;
    }
    let pkt = &mut buf.data_mut()[l3..end + n];
    set_total_len(pkt, total_len + n);
    let seg_len = (pkt.len() - header_len) as u16;
    let (len_at, sum_at) = (
        header_len + udp::field::LENGTH,
        header_len + udp::field::CHECKSUM,
    );
    pkt[len_at..len_at + 2].copy_from_slice(&seg_len.to_be_bytes());
    let had = pkt[sum_at] != 0 || pkt[sum_at + 1] != 0;
    let c = match had.then(|| l4_checksum(pkt, header_len, 17, udp::field::CHECKSUM)) {
        None => 0,
        Some(0) => 0xffff,
        Some(c) => c,
    };
    pkt[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Computes the TCP checksum of the IPv4 packet `pkt` (exactly its total length) afresh.
pub fn tcp_checksum(pkt: &mut [u8], header_len: usize) {
    let c = l4_checksum(pkt, header_len, 6, tcpf::CHECKSUM);
    let at = header_len + tcpf::CHECKSUM;
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The L4 checksum of the IPv4 packet `pkt` (exactly its total length, protocol `proto`),
/// computed afresh over the pseudo-header and the segment with its checksum field (at
/// `field` in the L4 header) zeroed.
fn l4_checksum(pkt: &mut [u8], header_len: usize, proto: u8, field: usize) -> u16 {
    let seg_len = (pkt.len() - header_len) as u16;
    let (src, dst) = (be32(pkt, ip::SRC), be32(pkt, ip::DST));
    let seg = &mut pkt[header_len..];
    seg[field..field + 2].fill(0);
    let sum = checksum::pseudo_header_sum(src, dst, proto, seg_len);
    !checksum::fold(checksum::sum_bytes(sum, seg))
}

/// Where an acknowledgement (or a SACK edge) of the RS, which counts the header, falls in
/// the client's space: `n` bytes earlier, except that anything within the header (the RS
/// has not had all of it) is the client's first byte, `base`.
#[inline]
pub fn ack_to_client(ack: u32, base: u32, n: u32) -> u32 {
    if ack.wrapping_sub(base) < n {
        base
    } else {
        ack.wrapping_sub(n)
    }
}

/// Whether `seq` is at or after `base` in sequence space (within half the space).
#[inline]
pub fn at_or_after(seq: u32, base: u32) -> bool {
    seq.wrapping_sub(base) < 1 << 31
}

/// Moves the SACK blocks of the TCP segment at `l4` in `pkt` with `edge` (each left and
/// right edge mapped), keeping its checksum right. Other options, and malformed option
/// lists (left as they are from where they stop making sense), are untouched.
pub fn map_sack(pkt: &mut [u8], l4: usize, mut edge: impl FnMut(u32) -> u32) {
    let Some(thl) = tcp_header_len(pkt, l4) else {
        return;
    };
    let seg = &mut pkt[l4..l4 + thl];
    let mut c = u16::from_be_bytes([seg[tcpf::CHECKSUM], seg[tcpf::CHECKSUM + 1]]);
    let mut i = tcp::HEADER_LEN;
    while i < thl {
        match seg[i] {
            tcp::OPT_END => break,
            tcp::OPT_NOP => i += 1,
            kind => {
                let Some(&olen) = seg.get(i + 1) else { break };
                let olen = usize::from(olen);
                if olen < 2 || i + olen > thl {
                    break;
                }
                if kind == OPT_SACK && (olen - 2) % 8 == 0 {
                    let mut e = i + 2;
                    while e < i + olen {
                        let old = be32(seg, e);
                        let new = edge(old);
                        seg[e..e + 4].copy_from_slice(&new.to_be_bytes());
                        c = checksum::update32(c, old, new);
                        e += 4;
                    }
                }
                i += olen;
            }
        }
    }
    seg[tcpf::CHECKSUM..tcpf::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// Family `AF_INET6`, protocol `STREAM`.
pub const V2_TCP6: u8 = 0x21;
/// Family `AF_INET6`, protocol `DGRAM`.
pub const V2_UDP6: u8 = 0x22;
/// The length of a v2 header for IPv6 (TCP or UDP): the 16 fixed bytes and the 36-byte
/// IPv6 address block.
pub const V2_TCP6_LEN: usize = 52;
/// The longest header for IPv6: v1 with two 39-character addresses and two five-digit
/// ports.
pub const MAX_LEN6: usize = 104;

/// TOA's option length for an IPv6 client (DPVS's convention): kind, length, port, the
/// 16-byte address.
pub const TOA6_LEN: usize = 20;

/// The TOA option naming the IPv6 `client`: kind 254, length 20, the port, the address
/// (network order), as DPVS writes it for IPv6 clients (FullNAT66 and NAT64 alike).
#[inline]
pub fn toa_option6((addr, port): (Ipv6Addr, u16)) -> [u8; TOA6_LEN] {
    let mut o = [0u8; TOA6_LEN];
    o[0] = TOA_KIND;
    o[1] = TOA6_LEN as u8;
    o[2..4].copy_from_slice(&port.to_be_bytes());
    o[4..].copy_from_slice(&addr.octets());
    o
}

/// The two ends an IPv6 connection's header names (FullNAT66, NAT66 and NAT64 alike: the
/// client and the VIP are IPv6 whatever the RS is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends6 {
    /// The client's address and port.
    pub client: (Ipv6Addr, u16),
    /// The VIP and the service port.
    pub vip: (Ipv6Addr, u16),
}

impl Ends6 {
    /// The ends of the IPv6 connection whose client packets have `key` (client → VIP).
    #[inline]
    pub fn of(key: &conntrack::FlowKey6) -> Ends6 {
        Ends6 {
            client: (key.src, key.sport),
            vip: (key.dst, key.dport),
        }
    }
}

/// The length of `version`'s header for the IPv6 `ends`.
#[inline]
pub fn len6(version: ProxyProtocol, ends: &Ends6) -> usize {
    match version {
        ProxyProtocol::V2 => V2_TCP6_LEN,
        ProxyProtocol::V1 => write6(version, ends, &mut [0u8; MAX_LEN6]),
    }
}

/// Writes `version`'s header for the IPv6 `ends` at the start of `out`; returns its length.
/// v1's addresses are written as text the way RFC 5952 puts them (and `::ffff:a.b.c.d` for
/// an IPv4-mapped one), as `inet_ntop` does.
///
/// # Panics
/// If `out` is shorter than [`len6`] (callers size it to [`MAX_LEN6`]).
pub fn write6(version: ProxyProtocol, ends: &Ends6, out: &mut [u8]) -> usize {
    match version {
        ProxyProtocol::V2 => {
            out[..12].copy_from_slice(&V2_SIGNATURE);
            out[12] = V2_VERSION_PROXY;
            out[13] = V2_TCP6;
            out[14..16].copy_from_slice(&36u16.to_be_bytes());
            out[16..32].copy_from_slice(&ends.client.0.octets());
            out[32..48].copy_from_slice(&ends.vip.0.octets());
            out[48..50].copy_from_slice(&ends.client.1.to_be_bytes());
            out[50..52].copy_from_slice(&ends.vip.1.to_be_bytes());
            V2_TCP6_LEN
        }
        ProxyProtocol::V1 => {
            let mut w = Writer { out, at: 0 };
            w.bytes(b"PROXY TCP6 ");
            w.addr6(ends.client.0);
            w.bytes(b" ");
            w.addr6(ends.vip.0);
            w.bytes(b" ");
            w.number(ends.client.1);
            w.bytes(b" ");
            w.number(ends.vip.1);
            w.bytes(b"\r\n");
            w.at
        }
    }
}

/// Writes the v2 header of an IPv6 UDP flow for `ends` (protocol `DGRAM`) at the start of
/// `out`; returns its length, [`V2_TCP6_LEN`].
///
/// # Panics
/// If `out` is shorter than that.
pub fn write_udp6(ends: &Ends6, out: &mut [u8]) -> usize {
    let n = write6(ProxyProtocol::V2, ends, out);
    out[13] = V2_UDP6;
    n
}

/// The TCP payload length of the IPv6 packet `pkt` (exactly its length) whose TCP header is
/// at `l4_off`, or None if that header is not sane.
#[inline]
pub fn payload_len6(pkt: &[u8], l4_off: usize) -> Option<usize> {
    tcp_header_len(pkt, l4_off).map(|t| pkt.len() - l4_off - t)
}

/// [`insert`] for the IPv6 packet at `l3` in `buf` (`total_len` bytes, its TCP header at
/// `l4_off`): the payload length follows, and the TCP checksum is computed afresh over the
/// IPv6 pseudo-header.
pub fn insert6<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    l4_off: usize,
    total_len: usize,
    header: &[u8],
) -> bool {
    grow6(buf, l3, l4_off, total_len, header, false)
}

/// [`insert_option`] for the IPv6 packet at `l3` in `buf` (its TCP header at `l4_off`).
pub fn insert_option6<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    l4_off: usize,
    total_len: usize,
    opt: &[u8],
) -> bool {
    opt.len().is_multiple_of(4) && grow6(buf, l3, l4_off, total_len, opt, true)
}

/// [`grow`] for IPv6.
fn grow6<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    l4_off: usize,
    total_len: usize,
    bytes: &[u8],
    option: bool,
) -> bool {
    let n = bytes.len();
    let end = l3 + total_len;
    if buf.len() < end || total_len < IPV6_HEADER_LEN || total_len + n - IPV6_HEADER_LEN > 65535 {
        return false;
    }
    let Some(thl) = tcp_header_len(&buf.data()[l3..end], l4_off) else {
        return false;
    };
    if option && thl + n > 60 {
        return false;
    }
    if !make_room(buf, l3 + l4_off + thl, end, bytes) {
        return false;
    }
    let pkt = &mut buf.data_mut()[l3..end + n];
    if option {
        let flags_nibble = pkt[l4_off + tcpf::DATA_OFF] & 0x0f;
        pkt[l4_off + tcpf::DATA_OFF] = (((thl + n) / 4) as u8) << 4 | flags_nibble;
    }
    set_payload_len6(pkt);
    let c = l4_checksum6(pkt, l4_off, 6, tcpf::CHECKSUM);
    pkt[l4_off + tcpf::CHECKSUM..l4_off + tcpf::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// [`insert_udp`] for the IPv6 packet at `l3` in `buf` (its UDP header at `l4_off`): the
/// UDP length and the payload length follow, and the UDP checksum (never 0 over IPv6) is
/// computed afresh.
pub fn insert_udp6<B: PacketBuf>(
    buf: &mut B,
    l3: usize,
    l4_off: usize,
    total_len: usize,
    header: &[u8],
) -> bool {
    use crate::wire::udp;
    let n = header.len();
    let end = l3 + total_len;
    let l4 = l3 + l4_off;
    if buf.len() < end
        || total_len < l4_off + udp::HEADER_LEN
        || total_len + n - IPV6_HEADER_LEN > 65535
    {
        return false;
    }
    let d = buf.data();
    let ulen = usize::from(u16::from_be_bytes([
        d[l4 + udp::field::LENGTH],
        d[l4 + udp::field::LENGTH + 1],
    ]));
    if ulen != total_len - l4_off {
        return false;
    }
    if !make_room(buf, l4 + udp::HEADER_LEN, end, header) {
        return false;
    }
    let pkt = &mut buf.data_mut()[l3..end + n];
    set_payload_len6(pkt);
    let seg_len = (pkt.len() - l4_off) as u16;
    let len_at = l4_off + udp::field::LENGTH;
    pkt[len_at..len_at + 2].copy_from_slice(&seg_len.to_be_bytes());
    let c = match l4_checksum6(pkt, l4_off, 17, udp::field::CHECKSUM) {
        0 => 0xffff,
        c => c,
    };
    let sum_at = l4_off + udp::field::CHECKSUM;
    pkt[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Sets the payload length of the IPv6 packet `pkt` (exactly its length).
fn set_payload_len6(pkt: &mut [u8]) {
    let len = (pkt.len() - IPV6_HEADER_LEN) as u16;
    pkt[4..6].copy_from_slice(&len.to_be_bytes());
}

/// The L4 checksum of the IPv6 packet `pkt` (exactly its length, the L4 header at `l4_off`,
/// protocol `proto`), computed afresh with its checksum field (at `field`) zeroed.
fn l4_checksum6(pkt: &mut [u8], l4_off: usize, proto: u8, field: usize) -> u16 {
    let (src, dst) = crate::parse::ipv6_addrs(pkt);
    let seg = &mut pkt[l4_off..];
    seg[field..field + 2].fill(0);
    checksum::ipv6_l4(src, dst, proto, seg)
}

/// The sequence number nearest to `seq` whose low 24 bits are `low` (an IPv6 session keeps
/// only those of the client's first data byte: until the header is acknowledged, the
/// client's segments and the RS's acknowledgements lie within a few windows of it).
#[inline]
pub fn near24(seq: u32, low: u32) -> u32 {
    let d = seq.wrapping_sub(low) & 0xff_ffff;
    if d < 1 << 23 {
        seq.wrapping_sub(d)
    } else {
        seq.wrapping_add((1 << 24) - d)
    }
}

/// Option kind: selective acknowledgement blocks (RFC 2018).
pub const OPT_SACK: u8 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(c: [u8; 4], cport: u16, v: [u8; 4], vport: u16) -> Ends {
        Ends {
            client: (Ipv4Addr::from(c), cport),
            vip: (Ipv4Addr::from(v), vport),
        }
    }

    #[test]
    fn v1_is_the_spec_line_and_its_length_is_known_before() {
        for e in [
            ends([198, 51, 100, 7], 40000, [192, 0, 2, 100], 80),
            ends([1, 2, 3, 4], 0, [5, 6, 7, 8], 9),
            ends([255, 255, 255, 255], 65535, [255, 255, 255, 255], 65535),
            ends([10, 0, 0, 1], 100, [10, 20, 30, 40], 1000),
        ] {
            let mut out = [0u8; MAX_LEN];
            let n = write(ProxyProtocol::V1, &e, &mut out);
            let want = format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                e.client.0, e.vip.0, e.client.1, e.vip.1
            );
            assert_eq!(&out[..n], want.as_bytes());
            assert_eq!(n, len(ProxyProtocol::V1, &e));
            assert!(n <= MAX_LEN);
        }
        let longest = ends([255; 4], 65535, [255; 4], 65535);
        assert_eq!(len(ProxyProtocol::V1, &longest), MAX_LEN);
    }

    #[test]
    fn v2_is_the_spec_layout() {
        let e = ends([198, 51, 100, 7], 40000, [192, 0, 2, 100], 80);
        let mut out = [0u8; MAX_LEN];
        assert_eq!(write(ProxyProtocol::V2, &e, &mut out), 28);
        let want: Vec<u8> = [
            &b"\r\n\r\n\x00\r\nQUIT\n"[..],
            &[0x21, 0x11, 0, 12],
            &[198, 51, 100, 7, 192, 0, 2, 100],
            &40000u16.to_be_bytes(),
            &80u16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&out[..28], &want[..]);
        assert_eq!(len(ProxyProtocol::V2, &e), 28);
    }

    fn ends6(c: &str, cport: u16, v: &str, vport: u16) -> Ends6 {
        Ends6 {
            client: (c.parse().unwrap(), cport),
            vip: (v.parse().unwrap(), vport),
        }
    }

    #[test]
    fn v1_for_ipv6_writes_addresses_as_rfc_5952_does() {
        let addrs = [
            "2001:db8::7",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "::",
            "::1",
            "1::",
            "fe80::1:2:3:4",
            "2001:db8:1:2:3:4:5:6",
            "2001:db8::1:0:0:1",
            "0:1:0:1:0:1:0:1",
            "::ffff:192.0.2.1",
            "64:ff9b::c000:201",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for c in addrs {
            for v in ["2001:db8:2::100", "::ffff:10.0.0.1"] {
                let e = ends6(c, 40000, v, 443);
                let mut out = [0u8; MAX_LEN6];
                let n = write6(ProxyProtocol::V1, &e, &mut out);
                let want = format!(
                    "PROXY TCP6 {} {} {} {}\r\n",
                    e.client.0, e.vip.0, e.client.1, e.vip.1
                );
                assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), want);
                assert_eq!(n, len6(ProxyProtocol::V1, &e));
            }
        }
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let longest = ends6(f, 65535, f, 65535);
        assert_eq!(len6(ProxyProtocol::V1, &longest), MAX_LEN6);
    }

    #[test]
    fn v2_for_ipv6_is_the_spec_layout() {
        let e = ends6("2001:db8:99::7", 40000, "2001:db8:2::100", 80);
        let mut out = [0u8; MAX_LEN6];
        assert_eq!(write6(ProxyProtocol::V2, &e, &mut out), 52);
        let want: Vec<u8> = [
            &b"\r\n\r\n\x00\r\nQUIT\n"[..],
            &[0x21, 0x21, 0, 36],
            &e.client.0.octets(),
            &e.vip.0.octets(),
            &40000u16.to_be_bytes(),
            &80u16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&out[..52], &want[..]);
        assert_eq!(write_udp6(&e, &mut out), 52);
        assert_eq!(out[13], 0x22, "AF_INET6, DGRAM");
        let toa = toa_option6(e.client);
        assert_eq!(&toa[..4], &[254, 20, 0x9c, 0x40]);
        assert_eq!(&toa[4..], &e.client.0.octets());
    }

    #[test]
    fn the_low_24_bits_find_the_nearest_number() {
        for base in [0u32, 5, 0x00ff_fff0, 0xffff_fff0, 0x1234_5678] {
            let low = base & 0xff_ffff;
            for d in [0u32, 1, 27, 104, 1 << 20, (1 << 23) - 1] {
                assert_eq!(near24(base.wrapping_add(d), low), base);
                assert_eq!(near24(base.wrapping_sub(d), low), base);
            }
        }
    }

    #[test]
    fn acks_map_back_and_stay_at_the_first_byte_within_the_header() {
        let (base, n) = (u32::MAX - 5, 28);
        assert_eq!(ack_to_client(base, base, n), base);
        assert_eq!(ack_to_client(base.wrapping_add(27), base, n), base);
        assert_eq!(ack_to_client(base.wrapping_add(28), base, n), base);
        assert_eq!(
            ack_to_client(base.wrapping_add(1028), base, n),
            base.wrapping_add(1000)
        );
        assert!(at_or_after(base.wrapping_add(10), base));
        assert!(at_or_after(base, base));
        assert!(!at_or_after(base.wrapping_sub(1), base));
    }
}
