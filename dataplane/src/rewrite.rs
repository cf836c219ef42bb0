//! Header rewrites with incremental checksums (RFC 1624), and L2 framing.
//!
//! [`Ipv4Rewrite`] edits addresses, ports, the ICMP echo identifier and the TTL of one IPv4
//! packet in place. Every setter records its checksum change; the IPv4 header checksum and the
//! TCP/UDP/ICMP checksum are fixed once when the rewrite is dropped, so a caller cannot forget
//! them and the payload is never rescanned. UDP's zero checksum is kept (RFC 768).
//!
//! [`frame_l2`] then puts the Ethernet header (with or without an 802.1Q tag) in front of the
//! L3 packet, with room for an encapsulation header between them (TUN's outer IPv4 header,
//! written by [`crate::wire::Ipv4Header::emit`]).

use crate::buf::PacketBuf;
use crate::checksum::{self, Delta};
use crate::drop::DropReason;
use crate::wire::ipv4::field as ip_field;
use crate::wire::{
    be32, icmp, tcp, udp, IpProto, ETHERNET_HEADER_LEN, ETHERTYPE_VLAN, IPV4_MIN_HEADER_LEN,
    VLAN_TAG_LEN,
};
use core::net::{Ipv4Addr, Ipv6Addr};

/// The `N` bytes of `bytes` at `at`, as an array (so that indexing it needs no bounds checks).
///
/// # Panics
/// If `bytes` is shorter than `at + N`; [`Ipv4Rewrite::new`] says why it is not.
#[inline]
fn field<const N: usize>(bytes: &mut [u8], at: usize) -> &mut [u8; N] {
    (&mut bytes[at..at + N])
        .try_into()
        .expect("header field within the packet")
}

/// An in-place rewrite of one IPv4 packet that keeps its checksums right.
///
/// `pkt` starts at the IPv4 header and holds at least the whole L4 header (the caller parsed
/// it with [`crate::parse::parse_ipv4`], which guarantees this for unfragmented TCP, UDP and
/// ICMP). Checksums are written when the value is dropped.
///
/// The fixed parts are split off once, as arrays (the first 20 bytes of the IP header, the
/// first 8 of the L4 header, and for TCP its checksum), so the setters index them with
/// constants and carry no bounds checks.
pub struct Ipv4Rewrite<'a> {
    ip: &'a mut [u8; IPV4_MIN_HEADER_LEN],
    l4: &'a mut [u8; 8],
    /// TCP's checksum field (bytes 16..18 of its header); None for UDP and ICMP.
    tcp_csum: Option<&'a mut [u8; 2]>,
    proto: IpProto,
    ip_delta: Delta,
    l4_delta: Delta,
}

impl<'a> Ipv4Rewrite<'a> {
    /// Starts a rewrite of the IPv4 packet `pkt` whose header is `header_len` bytes.
    ///
    /// # Panics
    /// If `pkt` is shorter than its headers (`header_len` ≥ 20, then 8 bytes of L4 header,
    /// 20 for TCP): [`crate::parse::parse_ipv4`] has checked that for every packet it passes.
    #[inline]
    pub fn new(pkt: &'a mut [u8], header_len: usize, proto: IpProto) -> Ipv4Rewrite<'a> {
        let (hdr, rest) = pkt.split_at_mut(header_len);
        let ip: &mut [u8; IPV4_MIN_HEADER_LEN] = field(hdr, 0);
        let (l4, tail) = rest.split_at_mut(8);
        let l4: &mut [u8; 8] = field(l4, 0);
        let tcp_csum = (proto == IpProto::Tcp).then(|| field(tail, tcp::field::CHECKSUM - 8));
        Ipv4Rewrite {
            ip,
            l4,
            tcp_csum,
            proto,
            ip_delta: Delta::ZERO,
            l4_delta: Delta::ZERO,
        }
    }

    #[inline]
    fn set_addr(&mut self, at: usize, addr: Ipv4Addr) {
        let bytes: &mut [u8; 4] = field(self.ip, at);
        let old = u32::from_be_bytes(*bytes);
        let new = u32::from(addr);
        *bytes = new.to_be_bytes();
        self.ip_delta.add32(old, new);
        // TCP and UDP checksums cover the addresses through the pseudo-header; ICMP does not.
        if self.proto != IpProto::Icmp {
            self.l4_delta.add32(old, new);
        }
    }

    #[inline]
    fn set_l4_u16(&mut self, at: usize, value: u16) {
        let bytes: &mut [u8; 2] = field(self.l4, at);
        let old = u16::from_be_bytes(*bytes);
        *bytes = value.to_be_bytes();
        self.l4_delta.add16(old, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.set_addr(ip_field::SRC, addr);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.set_addr(ip_field::DST, addr);
    }

    /// Sets the TCP/UDP source port.
    #[inline]
    pub fn set_sport(&mut self, port: u16) {
        self.set_l4_u16(tcp::field::SRC_PORT, port);
    }

    /// Sets the TCP/UDP destination port.
    #[inline]
    pub fn set_dport(&mut self, port: u16) {
        self.set_l4_u16(tcp::field::DST_PORT, port);
    }

    /// Sets the ICMP echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        self.set_l4_u16(icmp::field::IDENT, ident);
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        let t = ip_field::TTL;
        let old = u16::from_be_bytes([self.ip[t], self.ip[t + 1]]);
        self.ip[t] = ttl;
        self.ip_delta
            .add16(old, u16::from_be_bytes([ttl, self.ip[t + 1]]));
    }

    /// Decrements the TTL (the caller has checked it is above 1).
    #[inline]
    pub fn dec_ttl(&mut self) {
        let ttl = self.ip[ip_field::TTL];
        self.set_ttl(ttl.wrapping_sub(1));
    }

    /// Sets the ICMP type byte (echo request → echo reply).
    #[inline]
    pub fn set_icmp_type(&mut self, ty: u8) {
        let t = icmp::field::TYPE;
        let old = u16::from_be_bytes([self.l4[t], self.l4[t + 1]]);
        self.l4[t] = ty;
        self.l4_delta
            .add16(old, u16::from_be_bytes([ty, self.l4[t + 1]]));
    }

    #[inline]
    fn finish(&mut self) {
        if !self.ip_delta.is_zero() {
            let sum: &mut [u8; 2] = field(self.ip, ip_field::CHECKSUM);
            *sum = self.ip_delta.apply(u16::from_be_bytes(*sum)).to_be_bytes();
        }
        if !self.l4_delta.is_zero() {
            let delta = self.l4_delta;
            let (sum, udp): (&mut [u8; 2], bool) = match (self.proto, self.tcp_csum.as_deref_mut())
            {
                (IpProto::Tcp, Some(f)) => (f, false),
                (IpProto::Udp, _) => (field(self.l4, udp::field::CHECKSUM), true),
                (IpProto::Icmp, _) => (field(self.l4, icmp::field::CHECKSUM), false),
                _ => return,
            };
            let c = u16::from_be_bytes(*sum);
            let c = if udp {
                delta.apply_udp(c)
            } else {
                delta.apply(c)
            };
            *sum = c.to_be_bytes();
        }
        self.ip_delta = Delta::ZERO;
        self.l4_delta = Delta::ZERO;
    }
}

impl Drop for Ipv4Rewrite<'_> {
    #[inline]
    fn drop(&mut self) {
        self.finish();
    }
}

/// A TCP or UDP packet's addresses and ports after a NAT or FullNAT rewrite: the four
/// fields [`rewrite_tuple`] sets at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Rewrites the IPv4 TCP or UDP packet `pkt` (its header `header_len` bytes, `tcp` telling
/// which) to `to` and decrements its TTL, with both checksums updated: what [`Ipv4Rewrite`]
/// does with four setters and [`Ipv4Rewrite::dec_ttl`], in one straight line. The addresses'
/// change is summed once for both checksums, and the two ports as one 32-bit word. A field
/// that keeps its value changes nothing. UDP's zero checksum is kept (RFC 768).
///
/// # Panics
/// If `pkt` is shorter than its headers (`header_len` ≥ 20, then 8 bytes of UDP or 20 of
/// TCP header), as [`Ipv4Rewrite::new`].
#[inline]
pub fn rewrite_tuple(pkt: &mut [u8], header_len: usize, tcp: bool, to: Tuple) {
    // An edit `old` → `new` of a 32-bit word adds `!old` and `new` ([`Delta::from_sum64`]).
    let (hdr, l4) = pkt.split_at_mut(header_len);
    let ip: &mut [u8; IPV4_MIN_HEADER_LEN] = field(hdr, 0);
    let addrs: &mut [u8; 8] = field(ip, ip_field::SRC);
    let old = u64::from_be_bytes(*addrs);
    let new = u64::from(u32::from(to.src)) << 32 | u64::from(u32::from(to.dst));
    *addrs = new.to_be_bytes();
    let a =
        u64::from(!(old >> 32) as u32) + u64::from(!old as u32) + (new >> 32) + (new & 0xffff_ffff);
    let t = ip_field::TTL;
    let word = u16::from_be_bytes([ip[t], ip[t + 1]]);
    ip[t] = ip[t].wrapping_sub(1);
    let ip_delta = Delta::from_sum64(a + u64::from(!word) + u64::from(word.wrapping_sub(0x100)));
    // As `Ipv4Rewrite::finish`: edits that add up to nothing leave a checksum as it is.
    if !ip_delta.is_zero() {
        let sum: &mut [u8; 2] = field(ip, ip_field::CHECKSUM);
        *sum = ip_delta.apply(u16::from_be_bytes(*sum)).to_be_bytes();
    }
    let ports: &mut [u8; 4] = field(l4, tcp::field::SRC_PORT);
    let old = u32::from_be_bytes(*ports);
    let new = u32::from(to.sport) << 16 | u32::from(to.dport);
    *ports = new.to_be_bytes();
    let l4_delta = Delta::from_sum64(a + u64::from(!old) + u64::from(new));
    if l4_delta.is_zero() {
        return;
    }
    if tcp {
        let sum: &mut [u8; 2] = field(l4, tcp::field::CHECKSUM);
        *sum = l4_delta.apply(u16::from_be_bytes(*sum)).to_be_bytes();
    } else {
        let sum: &mut [u8; 2] = field(l4, udp::field::CHECKSUM);
        *sum = l4_delta.apply_udp(u16::from_be_bytes(*sum)).to_be_bytes();
    }
}

/// An in-place rewrite of one IPv6 TCP or UDP packet that keeps its L4 checksum right (IPv6
/// has no header checksum; the addresses count in the L4 checksum through its pseudo-header).
/// The checksum is written when the value is dropped.
pub struct Ipv6Rewrite<'a> {
    ip: &'a mut [u8; IPV6_HEADER_LEN],
    l4: &'a mut [u8; 8],
    /// TCP's checksum field; None for UDP (whose checksum is in `l4`).
    tcp_csum: Option<&'a mut [u8; 2]>,
    delta: Delta,
}

/// Writes an outer IPv6 header for IPv6-in-IPv6 (RFC 2473) at the front of `pkt`, in front
/// of the inner IPv6 packet that fills the rest of it: from `src` to `dst`, next header 41,
/// the inner packet's hop limit (as IPVS's tunnel copies the inner TTL), no traffic class or
/// flow label.
///
/// # Panics
/// If `pkt` is shorter than two IPv6 headers (the caller framed the inner packet behind a
/// 40-byte gap).
pub fn write_ip6ip6(pkt: &mut [u8], (src, dst): (Ipv6Addr, Ipv6Addr)) {
    let inner_len = pkt.len() - IPV6_HEADER_LEN;
    let hop_limit = pkt[IPV6_HEADER_LEN + 7];
    let h: &mut [u8; IPV6_HEADER_LEN] = field(pkt, 0);
    h.fill(0);
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(inner_len as u16).to_be_bytes());
    h[6] = 41;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
}

/// The length of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

impl<'a> Ipv6Rewrite<'a> {
    /// Starts a rewrite of the IPv6 packet `pkt` whose TCP (`tcp`) or UDP header starts at
    /// `l4_off`.
    ///
    /// # Panics
    /// If `pkt` is shorter than its headers: [`crate::parse::parse_ipv6`] has checked that
    /// for every TCP or UDP packet it passes.
    #[inline]
    pub fn new(pkt: &'a mut [u8], l4_off: usize, tcp: bool) -> Ipv6Rewrite<'a> {
        let (hdr, rest) = pkt.split_at_mut(l4_off);
        let ip: &mut [u8; IPV6_HEADER_LEN] = field(hdr, 0);
        let (l4, tail) = rest.split_at_mut(8);
        let l4: &mut [u8; 8] = field(l4, 0);
        let tcp_csum = tcp.then(|| field(tail, tcp::field::CHECKSUM - 8));
        Ipv6Rewrite {
            ip,
            l4,
            tcp_csum,
            delta: Delta::ZERO,
        }
    }

    #[inline]
    fn set_addr(&mut self, at: usize, addr: Ipv6Addr) {
        let bytes: &mut [u8; 16] = field(self.ip, at);
        let new = addr.octets();
        for (o, n) in bytes.chunks_exact(4).zip(new.chunks_exact(4)) {
            let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            self.delta.add32(word(o), word(n));
        }
        *bytes = new;
    }

    #[inline]
    fn set_l4_u16(&mut self, at: usize, value: u16) {
        let bytes: &mut [u8; 2] = field(self.l4, at);
        let old = u16::from_be_bytes(*bytes);
        *bytes = value.to_be_bytes();
        self.delta.add16(old, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, addr: Ipv6Addr) {
        self.set_addr(8, addr);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, addr: Ipv6Addr) {
        self.set_addr(24, addr);
    }

    /// Sets the source port.
    #[inline]
    pub fn set_sport(&mut self, port: u16) {
        self.set_l4_u16(tcp::field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dport(&mut self, port: u16) {
        self.set_l4_u16(tcp::field::DST_PORT, port);
    }

    /// Decrements the hop limit (the caller has checked it is above 1); no checksum covers it.
    #[inline]
    pub fn dec_hop_limit(&mut self) {
        self.ip[7] = self.ip[7].wrapping_sub(1);
    }
}

impl Drop for Ipv6Rewrite<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.delta.is_zero() {
            return;
        }
        let delta = self.delta;
        match self.tcp_csum.as_deref_mut() {
            Some(sum) => *sum = delta.apply(u16::from_be_bytes(*sum)).to_be_bytes(),
            None => {
                // IPv6 UDP always has a checksum (RFC 8200 8.1): a computed 0 is sent as 0xffff.
                let sum: &mut [u8; 2] = field(self.l4, udp::field::CHECKSUM);
                *sum = delta.apply_udp(u16::from_be_bytes(*sum)).to_be_bytes();
            }
        }
        self.delta = Delta::ZERO;
    }
}

/// The NAT66 or FullNAT66 rewrite of a later IPv6 fragment `pkt` (from its header): the
/// source and destination addresses given (None: unchanged), the hop limit decremented. No
/// checksum covers them here: the L4 checksum, which covers the whole datagram, was updated in
/// the first fragment.
///
/// # Panics
/// If `pkt` is shorter than an IPv6 header ([`crate::parse`] has checked it).
#[inline]
pub fn rewrite_fragment6(pkt: &mut [u8], src: Option<Ipv6Addr>, dst: Option<Ipv6Addr>) {
    let h: &mut [u8; IPV6_HEADER_LEN] = field(pkt, 0);
    if let Some(a) = src {
        h[8..24].copy_from_slice(&a.octets());
    }
    if let Some(a) = dst {
        h[24..40].copy_from_slice(&a.octets());
    }
    h[7] = h[7].wrapping_sub(1);
}

/// The NAT or FullNAT rewrite of a later IPv4 fragment `pkt` (from its header): new source
/// and destination addresses and the TTL decremented, the header checksum updated (RFC 1624).
/// A later fragment holds no L4 header: the ports and the L4 checksum, which covers the whole
/// datagram, were rewritten in the first fragment.
///
/// # Panics
/// If `pkt` is shorter than an IPv4 header ([`crate::parse`] has checked it).
#[inline]
pub fn rewrite_fragment(pkt: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let h: &mut [u8; IPV4_MIN_HEADER_LEN] = field(pkt, 0);
    let mut delta = Delta::ZERO;
    for (at, addr) in [(ip_field::SRC, src), (ip_field::DST, dst)] {
        let bytes: &mut [u8; 4] = field(h, at);
        let old = u32::from_be_bytes(*bytes);
        *bytes = u32::from(addr).to_be_bytes();
        delta.add32(old, u32::from(addr));
    }
    let t = ip_field::TTL;
    let old = u16::from_be_bytes([h[t], h[t + 1]]);
    h[t] = h[t].wrapping_sub(1);
    delta.add16(old, u16::from_be_bytes([h[t], h[t + 1]]));
    let sum: &mut [u8; 2] = field(h, ip_field::CHECKSUM);
    *sum = delta.apply(u16::from_be_bytes(*sum)).to_be_bytes();
}

/// Adds `seq_by` to the sequence number and `ack_by` to the acknowledgement number of the
/// TCP segment `pkt` (from its IPv4 header of `header_len` bytes; wrapping, as sequence
/// numbers do), updating the TCP checksum (RFC 1624). The SYN proxy's shift between the
/// client's and the RS's sequence spaces.
///
/// # Panics
/// If `pkt` holds less than a TCP header after `header_len` ([`crate::parse`] has checked it).
#[inline]
pub fn shift_tcp(pkt: &mut [u8], header_len: usize, seq_by: u32, ack_by: u32) {
    use tcp::field::{ACK, CHECKSUM, SEQ};
    let t: &mut [u8; tcp::HEADER_LEN] = field(pkt, header_len);
    let (seq, ack) = (be32(t, SEQ), be32(t, ACK));
    let (new_seq, new_ack) = (seq.wrapping_add(seq_by), ack.wrapping_add(ack_by));
    t[SEQ..SEQ + 4].copy_from_slice(&new_seq.to_be_bytes());
    t[ACK..ACK + 4].copy_from_slice(&new_ack.to_be_bytes());
    let mut c = u16::from_be_bytes([t[CHECKSUM], t[CHECKSUM + 1]]);
    c = checksum::update32(c, seq, new_seq);
    c = checksum::update32(c, ack, new_ack);
    t[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// Length of the Ethernet header with or without an 802.1Q tag.
#[inline]
pub fn l2_len(vlan: Option<u16>) -> usize {
    if vlan.is_some() {
        ETHERNET_HEADER_LEN + VLAN_TAG_LEN
    } else {
        ETHERNET_HEADER_LEN
    }
}

/// Re-frames the packet whose L3 header is at `l3_off`: afterwards the frame is an Ethernet
/// header (tagged with `vlan` if set; source `src_mac`, destination all-zero until
/// [`set_dst_mac`]), then `gap` free bytes (for an encapsulation header), then the L3 packet.
/// `ethertype` is the type after the (optional) tag. Returns the new offset of the gap.
///
/// # Errors
/// [`DropReason::NoHeadroom`] if the buffer cannot grow at the front by what is needed.
#[inline(always)]
pub fn frame_l2<B: PacketBuf>(
    buf: &mut B,
    l3_off: usize,
    gap: usize,
    vlan: Option<u16>,
    src_mac: [u8; 6],
    ethertype: u16,
) -> Result<usize, DropReason> {
    let l2 = l2_len(vlan);
    let front = l2 + gap;
    if front > l3_off {
        if !buf.prepend(front - l3_off) {
            return Err(DropReason::NoHeadroom);
        }
    } else if front < l3_off && !buf.adj(l3_off - front) {
        return Err(DropReason::NoHeadroom);
    }
    let d = buf.data_mut();
    d[0..6].fill(0);
    d[6..12].copy_from_slice(&src_mac);
    match vlan {
        Some(vid) => {
            d[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            d[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            d[16..18].copy_from_slice(&ethertype.to_be_bytes());
        }
        None => d[12..14].copy_from_slice(&ethertype.to_be_bytes()),
    }
    Ok(l2)
}

/// Writes the destination MAC of a framed packet.
#[inline]
pub fn set_dst_mac<B: PacketBuf>(buf: &mut B, mac: [u8; 6]) {
    buf.data_mut()[0..6].copy_from_slice(&mac);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemPool;

    /// The full TCP/UDP checksum of the IPv6 packet `p` (fixed header, then L4 at 40).
    fn full6(p: &[u8]) -> u16 {
        let l4 = &p[40..];
        let mut sum = checksum::sum_bytes(0, &p[8..40]);
        sum = checksum::sum_bytes(sum, &(l4.len() as u32).to_be_bytes());
        sum = checksum::sum_bytes(sum, &[0, 0, 0, p[6]]);
        !checksum::fold(checksum::sum_bytes(sum, l4))
    }

    /// An IPv6 packet 2001:db8::1:40000 -> 2001:db8::10:80, TCP (or UDP), 5 payload bytes,
    /// its checksum right.
    fn packet6(tcp: bool) -> Vec<u8> {
        let l4_len = if tcp { 20 } else { 8 } + 5;
        let mut p = vec![0u8; 40 + l4_len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        p[6] = if tcp { 6 } else { 17 };
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().unwrap().octets());
        p[40..42].copy_from_slice(&40000u16.to_be_bytes());
        p[42..44].copy_from_slice(&80u16.to_be_bytes());
        if tcp {
            p[52] = 5 << 4;
            p[53] = 0x02;
        } else {
            p[44..46].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        let n = p.len();
        p[n - 5..].copy_from_slice(b"hello");
        let at = if tcp { 56 } else { 46 };
        let c = full6(&p);
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
        assert_eq!(full6(&p), 0, "built with a valid checksum");
        p
    }

    #[test]
    fn an_ipv6_rewrite_keeps_the_l4_checksum_right() {
        for tcp in [true, false] {
            let mut p = packet6(tcp);
            {
                let mut r = Ipv6Rewrite::new(&mut p, 40, tcp);
                r.set_src("2001:db8:10:1::201".parse().unwrap());
                r.set_dst("2001:db8:10:1::11".parse().unwrap());
                r.set_sport(1025);
                r.set_dport(8080);
                r.dec_hop_limit();
            }
            assert_eq!(
                full6(&p),
                0,
                "tcp {tcp}: checksum verifies after the rewrite"
            );
            assert_eq!(p[7], 63);
            assert_eq!(&p[40..44], &[0x04, 0x01, 0x1f, 0x90]);
            assert_eq!(
                Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap()),
                "2001:db8:10:1::11".parse::<Ipv6Addr>().unwrap()
            );
        }
    }

    fn tcp_packet() -> Vec<u8> {
        // IPv4 10.0.0.1:40000 -> 192.0.2.10:80, TCP SYN, 4 bytes payload, valid checksums.
        let mut p = vec![0u8; 20 + 20 + 4];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(44u16).to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[192, 0, 2, 10]);
        let c = checksum::checksum(&p[0..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x02;
        p[40..44].copy_from_slice(b"abcd");
        fill_l4(&mut p, 6, 16);
        p
    }

    fn fill_l4(p: &mut [u8], proto: u8, csum_at: usize) {
        let src = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
        let dst = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
        p[20 + csum_at..22 + csum_at].fill(0);
        let len = (p.len() - 20) as u16;
        let sum = checksum::sum_bytes(checksum::pseudo_header_sum(src, dst, proto, len), &p[20..]);
        let c = !checksum::fold(sum);
        p[20 + csum_at..22 + csum_at].copy_from_slice(&c.to_be_bytes());
    }

    fn verify(p: &[u8]) {
        assert_eq!(checksum::checksum(&p[0..20]), 0, "ip checksum");
        let src = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
        let dst = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
        let len = (p.len() - 20) as u16;
        let sum = checksum::sum_bytes(checksum::pseudo_header_sum(src, dst, p[9], len), &p[20..]);
        assert_eq!(checksum::fold(sum), 0xffff, "l4 checksum");
    }

    #[test]
    fn fullnat_style_rewrite_keeps_checksums_valid() {
        let mut p = tcp_packet();
        verify(&p);
        {
            let mut r = Ipv4Rewrite::new(&mut p, 20, IpProto::Tcp);
            r.set_src(Ipv4Addr::new(10, 9, 0, 1));
            r.set_sport(5001);
            r.set_dst(Ipv4Addr::new(10, 2, 0, 11));
            r.set_dport(8080);
            r.dec_ttl();
        }
        verify(&p);
        assert_eq!(p[8], 63);
        assert_eq!(&p[12..16], &[10, 9, 0, 1]);
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), 8080);
    }

    /// An IPv4 TCP or UDP packet from `src` to `dst` with `payload`, TTL `ttl`, its checksums
    /// right (a UDP one left 0 when `zero`).
    fn packet4(
        tcp: bool,
        (src, dst): ([u8; 4], [u8; 4]),
        ports: (u16, u16),
        ttl: u8,
        payload: &[u8],
        zero: bool,
    ) -> Vec<u8> {
        let l4 = if tcp { 20 } else { 8 };
        let mut p = vec![0u8; 20 + l4 + payload.len()];
        let total = p.len() as u16;
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = ttl;
        p[9] = if tcp { 6 } else { 17 };
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let c = checksum::checksum(&p[0..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        p[20 + l4..].copy_from_slice(payload);
        if tcp {
            p[32] = 0x50;
            p[33] = 0x10;
            fill_l4(&mut p, 6, 16);
        } else {
            p[24..26].copy_from_slice(&(total - 20).to_be_bytes());
            if !zero {
                fill_l4(&mut p, 17, 6);
            }
        }
        p
    }

    proptest::proptest! {
        /// The one-line rewrite is byte for byte what the setters make, zero UDP checksums
        /// and fields that keep their values included.
        #[test]
        fn the_tuple_rewrite_is_the_setters_rewrite(
            tcp: bool,
            zero: bool,
            from: ([u8; 4], [u8; 4]),
            ports: (u16, u16),
            ttl in 2u8..=255,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            to: ([u8; 4], [u8; 4]),
            to_ports: (u16, u16),
            keep in 0u8..16,
        ) {
            let p = packet4(tcp, from, ports, ttl, &payload, zero);
            // Each bit of `keep` leaves one field as it was.
            fn pick<T>(keep: u8, bit: u8, old: T, new: T) -> T {
                if keep & bit != 0 {
                    old
                } else {
                    new
                }
            }
            let t = Tuple {
                src: Ipv4Addr::from(pick(keep, 1, from.0, to.0)),
                dst: Ipv4Addr::from(pick(keep, 2, from.1, to.1)),
                sport: pick(keep, 4, ports.0, to_ports.0),
                dport: pick(keep, 8, ports.1, to_ports.1),
            };
            let mut a = p.clone();
            {
                let proto = if tcp { IpProto::Tcp } else { IpProto::Udp };
                let mut r = Ipv4Rewrite::new(&mut a, 20, proto);
                r.set_src(t.src);
                r.set_dst(t.dst);
                r.set_sport(t.sport);
                r.set_dport(t.dport);
                r.dec_ttl();
            }
            let mut b = p.clone();
            rewrite_tuple(&mut b, 20, tcp, t);
            proptest::prop_assert_eq!(&a, &b);
            if tcp || !zero {
                verify(&b);
            }
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut p = tcp_packet();
        p[9] = 17;
        p.truncate(28);
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[10..12].fill(0);
        let c = checksum::checksum(&p[0..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[24..26].copy_from_slice(&8u16.to_be_bytes());
        p[26..28].fill(0);
        {
            let mut r = Ipv4Rewrite::new(&mut p, 20, IpProto::Udp);
            r.set_dst(Ipv4Addr::new(10, 2, 0, 11));
            r.set_dport(53);
        }
        assert_eq!(&p[26..28], &[0, 0]);
        assert_eq!(checksum::checksum(&p[0..20]), 0);
    }

    #[test]
    fn framing_pushes_and_pops_vlan_and_makes_room() {
        let pool = MemPool::new(1);
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&tcp_packet());
        let mut b = pool.alloc_from(&frame).unwrap();
        let gap = frame_l2(&mut b, 14, 0, Some(100), [2, 0, 0, 0, 0, 1], 0x0800).unwrap();
        assert_eq!(gap, 18);
        assert_eq!(&b.data()[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
        assert_eq!(b.data()[18], 0x45);
        let gap = frame_l2(&mut b, 18, 20, None, [2, 0, 0, 0, 0, 1], 0x0800).unwrap();
        assert_eq!(gap, 14);
        assert_eq!(b.len(), 14 + 20 + 44);
        assert_eq!(b.data()[34], 0x45);
        set_dst_mac(&mut b, [1, 2, 3, 4, 5, 6]);
        assert_eq!(&b.data()[0..6], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_later_fragment_gets_its_addresses_and_ttl() {
        let mut p = tcp_packet();
        p[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        p[10..12].fill(0);
        let c = checksum::checksum(&p[0..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let ttl = p[8];
        let payload = p[20..].to_vec();
        rewrite_fragment(
            &mut p,
            Ipv4Addr::new(10, 2, 0, 1),
            Ipv4Addr::new(10, 2, 0, 11),
        );
        assert_eq!(&p[12..20], &[10, 2, 0, 1, 10, 2, 0, 11]);
        assert_eq!(p[8], ttl - 1);
        assert_eq!(checksum::checksum(&p[0..20]), 0);
        assert_eq!(&p[20..], &payload[..], "the payload is not touched");
    }

    #[test]
    fn ipip_header_is_valid() {
        let mut out = [0u8; 20];
        crate::wire::Ipv4Header {
            src: Ipv4Addr::new(10, 2, 0, 1),
            dst: Ipv4Addr::new(10, 2, 0, 11),
            proto: IpProto::Ipip,
            tos: 0x10,
            ttl: 64,
            dont_frag: true,
            frag: 0,
            ident: 7,
            total_len: 20 + 44,
        }
        .emit(&mut out);
        assert_eq!(checksum::checksum(&out), 0);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 64);
        assert_eq!(out[9], 4);
        assert_eq!(out[6] & 0x40, 0x40);
    }
}
