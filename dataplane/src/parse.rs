//! From raw frame to a flat summary the classifier can act on.
//!
//! Every frame goes through [`parse`] first. It validates each layer with `new_checked` views
//! (smoltcp's, and our own for 802.1Q) plus the checks those views leave out, so that after
//! `Ok` the offsets it returns can be used without further bounds surprises. Any failure is a
//! [`DropReason`], never a panic.

use crate::drop::DropReason;
use crate::wire::ipv4::{field as ip, FLAG_DF, FLAG_MF, FRAG_OFFSET, VER_IHL_NO_OPTIONS};
use crate::wire::{
    icmp, tcp, udp, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpProto, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket, VlanPacket, ETHERNET_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPV4_MIN_HEADER_LEN, VLAN_TAG_LEN,
};
use core::net::{Ipv4Addr, Ipv6Addr};

/// What the Ethernet frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// ARP, at `l3_off`.
    Arp,
    /// IPv4, summarised in [`Ipv4Meta`].
    Ipv4(Ipv4Meta),
    /// IPv6, summarised in [`Ipv6Meta`].
    Ipv6(Ipv6Meta),
}

/// A parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// VLAN id of the 802.1Q tag, if the frame had one.
    pub vlan: Option<u16>,
    /// Offset of the L3 header (14, or 18 with a tag).
    pub l3_off: usize,
    /// The L3 summary.
    pub l3: L3,
}

/// An IPv4 packet's fields the data path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Meta {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// IP protocol.
    pub proto: IpProto,
    /// IPv4 header length in bytes (20..=60).
    pub header_len: usize,
    /// IPv4 total length (header + payload), ≤ the frame's L3 bytes; any Ethernet padding
    /// beyond it is not part of the packet.
    pub total_len: usize,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// The flags/fragment-offset word's more-fragments bit and offset (DF masked out): zero
    /// for a whole datagram; see [`Ipv4Meta::is_fragment`].
    pub frag: u16,
    /// L4 summary: for a first fragment the L4 header it carries whole, `L4::None` for later
    /// fragments and protocols not parsed.
    pub l4: L4,
}

impl Ipv4Meta {
    /// A fragment: more-fragments set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag != 0
    }

    /// A fragment other than the first: no L4 header at all.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        self.frag & FRAG_OFFSET != 0
    }

    /// The fragment's offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u32 {
        u32::from(self.frag & FRAG_OFFSET) * 8
    }

    /// More fragments follow this one.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.frag & FLAG_MF != 0
    }
}

/// An IPv6 packet's fields the data path needs. The addresses stay in the packet (read them
/// with [`ipv6_addrs`]): kept out, the summary is no bigger than IPv4's, which every parsed
/// frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Meta {
    /// Hop limit.
    pub hop_limit: u8,
    /// The extension headers the packet carries (`EXT_*` bits).
    pub ext: u8,
    /// The upper-layer protocol, after the extension headers (59: no next header); for a
    /// fragment, the fragment header's next header.
    pub upper: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header (40 without
    /// extension headers).
    pub l4_off: u16,
    /// The packet's length: the 40-byte fixed header and the payload length, ≤ the frame's L3
    /// bytes; any Ethernet padding beyond it is not part of the packet.
    pub total_len: usize,
    /// L4 summary of TCP, UDP or ICMPv6 (for ICMPv6: type, code, and bytes 4..6 — the echo
    /// identifier); for a first fragment, its TCP or UDP header; `L4::None` for other
    /// protocols and for other fragments.
    pub l4: L4,
}

impl Ipv6Meta {
    /// A fragment (not an atomic one: offset 0 without more fragments is a whole packet).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.ext & EXT_FRAGMENT != 0
    }

    /// A fragment's fragment header (RFC 8200 4.5), read from `pkt`, the packet this is the
    /// summary of: the walk ends right after it, so it is the 8 bytes before the upper-layer
    /// header. `None` for a whole packet.
    #[inline]
    pub fn fragment(&self, pkt: &[u8]) -> Option<Ipv6Fragment> {
        if !self.is_fragment() {
            return None;
        }
        let at = usize::from(self.l4_off).checked_sub(8)?;
        let h = pkt.get(at..at + 8)?;
        let word = u16::from_be_bytes([h[2], h[3]]);
        Some(Ipv6Fragment {
            offset: u32::from(word & 0xfff8),
            more: word & 1 != 0,
            ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ident_at: at + 4,
        })
    }
}

/// Where an IPv6 fragment belongs in its datagram: its fragment header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Offset of its fragmentable part in the datagram's, in bytes (a multiple of 8).
    pub offset: u32,
    /// More fragments follow (the M flag).
    pub more: bool,
    /// The datagram's identification.
    pub ident: u32,
    /// Where the identification is, from the start of the IPv6 header.
    pub ident_at: usize,
}

/// [`Ipv6Meta::ext`]: a hop-by-hop options header.
pub const EXT_HOP_BY_HOP: u8 = 1;
/// [`Ipv6Meta::ext`]: a routing header (with no segments left).
pub const EXT_ROUTING: u8 = 2;
/// [`Ipv6Meta::ext`]: a fragment header of a real fragment.
pub const EXT_FRAGMENT: u8 = 4;
/// [`Ipv6Meta::ext`]: a destination options header.
pub const EXT_DEST_OPTS: u8 = 8;

/// At most this many extension headers are walked; more is `malformed_ipv6`.
pub const MAX_EXT_HEADERS: usize = 8;

/// The source and destination addresses of the IPv6 packet at `pkt[0]` (parsed already).
#[inline]
pub fn ipv6_addrs(pkt: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&pkt[8..24]);
    dst.copy_from_slice(&pkt[24..40]);
    (Ipv6Addr::from(src), Ipv6Addr::from(dst))
}

/// The L4 fields the data path needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP ports and flags byte.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte (see [`crate::wire::tcp::flags`]).
        flags: u8,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP type, code and (for echo) identifier.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Bytes 4..6 of the message: the identifier for echo request/reply.
        ident: u16,
    },
    /// Not parsed (fragment, or a protocol the director does not track).
    None,
}

/// Parses Ethernet (with at most one 802.1Q tag), then ARP / IPv4 (+ TCP/UDP/ICMP) / IPv6.
///
/// # Errors
/// The drop reason of the first layer that is truncated or inconsistent.
#[inline]
pub fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
    match parse_fast(frame) {
        Some(p) => Ok(p),
        None => parse_full(frame),
    }
}

/// The common case read straight from fixed offsets: an untagged IPv4 packet without options
/// (IHL 5), not a fragment, with a valid header checksum, carrying TCP or UDP. `None` for
/// anything else — every error included — which [`parse_full`] then handles and reports. For
/// every frame it accepts it returns exactly what [`parse_full`] returns (a property test
/// checks this on valid and mutated frames).
#[inline]
pub fn parse_fast(frame: &[u8]) -> Option<Parsed> {
    const L3: usize = ETHERNET_HEADER_LEN;
    const L4: usize = L3 + IPV4_MIN_HEADER_LEN;
    let head: &[u8; L4] = frame.get(..L4)?.try_into().ok()?;
    let [t0, t1] = ETHERTYPE_IPV4.to_be_bytes();
    if head[12..15] != [t0, t1, VER_IHL_NO_OPTIONS] {
        return None;
    }
    let h: &[u8; IPV4_MIN_HEADER_LEN] = head[L3..L4].try_into().ok()?;
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let total_len = usize::from(be16(h, ip::LENGTH));
    // Fragments (MF or an offset) take the full path.
    if total_len < IPV4_MIN_HEADER_LEN
        || frame.len() - L3 < total_len
        || be16(h, ip::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET) != 0
    {
        return None;
    }
    if crate::checksum::fold(crate::checksum::sum_bytes(0, h)) != 0xffff {
        return None;
    }
    let proto = IpProto::from(h[ip::PROTOCOL]);
    let l4 = fast_l4(proto, &frame[L4..L3 + total_len])?;
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&head[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&head[6..12]);
    let addr = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    Some(Parsed {
        dst_mac,
        src_mac,
        vlan: None,
        l3_off: ETHERNET_HEADER_LEN,
        l3: L3::Ipv4(Ipv4Meta {
            src: addr(ip::SRC),
            dst: addr(ip::DST),
            ttl: h[ip::TTL],
            proto,
            header_len: IPV4_MIN_HEADER_LEN,
            total_len,
            dont_frag: be16(h, ip::FLAGS_FRAG) & FLAG_DF != 0,
            frag: 0,
            l4,
        }),
    })
}

/// The TCP or UDP header `l4` (the rest of the packet from it) as [`parse_l4`] reads it, for
/// the fast paths: `None` for another protocol or a header that [`parse_l4`] would refuse.
#[inline(always)]
fn fast_l4(proto: IpProto, l4: &[u8]) -> Option<L4> {
    let be16 = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    match proto {
        IpProto::Tcp => {
            if l4.len() < tcp::HEADER_LEN {
                return None;
            }
            let doff = usize::from(l4[tcp::field::DATA_OFF] >> 4) * 4;
            if doff < tcp::HEADER_LEN || doff > l4.len() {
                return None;
            }
            Some(L4::Tcp {
                sport: be16(tcp::field::SRC_PORT),
                dport: be16(tcp::field::DST_PORT),
                flags: l4[tcp::field::FLAGS],
            })
        }
        IpProto::Udp => {
            if l4.len() < udp::HEADER_LEN {
                return None;
            }
            let len = usize::from(be16(udp::field::LENGTH));
            if len < udp::HEADER_LEN || len > l4.len() {
                return None;
            }
            Some(L4::Udp {
                sport: be16(udp::field::SRC_PORT),
                dport: be16(udp::field::DST_PORT),
            })
        }
        _ => None,
    }
}

/// [`parse_fast`] for IPv6: an untagged IPv6 packet whose fixed header is followed straight
/// by TCP or UDP (no extension header). `None` for anything else, which [`parse_full`] then
/// handles; for every frame it accepts it returns exactly what [`parse_full`] returns (a
/// property test checks this too).
#[inline]
pub fn parse_fast6(frame: &[u8]) -> Option<Parsed> {
    const L3: usize = ETHERNET_HEADER_LEN;
    const L4: usize = L3 + IPV6_HEADER_LEN;
    let head: &[u8; L4] = frame.get(..L4)?.try_into().ok()?;
    if head[12..14] != ETHERTYPE_IPV6.to_be_bytes() || head[L3] >> 4 != 6 {
        return None;
    }
    let total_len = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([head[L3 + 4], head[L3 + 5]]));
    if frame.len() - L3 < total_len {
        return None;
    }
    let upper = head[L3 + 6];
    let l4 = fast_l4(IpProto::from(upper), &frame[L4..L3 + total_len])?;
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&head[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&head[6..12]);
    Some(Parsed {
        dst_mac,
        src_mac,
        vlan: None,
        l3_off: ETHERNET_HEADER_LEN,
        l3: L3::Ipv6(Ipv6Meta {
            hop_limit: head[L3 + 7],
            ext: 0,
            upper,
            l4_off: IPV6_HEADER_LEN as u16,
            total_len,
            l4,
        }),
    })
}

/// Parses any frame layer by layer with checked views; see [`parse`].
///
/// # Errors
/// The drop reason of the first layer that is truncated or inconsistent.
pub fn parse_full(frame: &[u8]) -> Result<Parsed, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::TruncatedEthernet)?;
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    let mut ethertype = u16::from(eth.ethertype());
    let mut l3_off = ETHERNET_HEADER_LEN;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        let tag = VlanPacket::new_checked(&frame[l3_off..]).map_err(|_| DropReason::BadVlan)?;
        ethertype = u16::from(tag.ethertype());
        l3_off += VLAN_TAG_LEN;
        // One tag only: stacked tags (QinQ) are not configured on any interface.
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            return Err(DropReason::BadVlan);
        }
        vlan = Some(tag.vid());
    }
    let payload = &frame[l3_off..];
    let l3 = match EthernetProtocol::from(ethertype) {
        EthernetProtocol::Arp => L3::Arp,
        EthernetProtocol::Ipv4 => L3::Ipv4(parse_ipv4(payload)?),
        EthernetProtocol::Ipv6 => L3::Ipv6(parse_ipv6(payload)?),
        _ => return Err(DropReason::UnknownEthertype),
    };
    Ok(Parsed {
        dst_mac,
        src_mac,
        vlan,
        l3_off,
        l3,
    })
}

/// Parses an IPv4 packet starting at `pkt[0]` (trailing bytes past total length are ignored).
///
/// # Errors
/// [`DropReason::MalformedIpv4`], [`DropReason::BadIpv4Checksum`], or the L4 reason.
pub fn parse_ipv4(pkt: &[u8]) -> Result<Ipv4Meta, DropReason> {
    let ip = Ipv4Packet::new_checked(pkt).map_err(|_| DropReason::MalformedIpv4)?;
    if ip.version() != 4 {
        return Err(DropReason::MalformedIpv4);
    }
    let header_len = ip.header_len() as usize;
    let total_len = ip.total_len() as usize;
    // smoltcp checks IHL >= 5 only against the buffer; insist on it and on a sane total length.
    if header_len < IPV4_MIN_HEADER_LEN || total_len < header_len {
        return Err(DropReason::MalformedIpv4);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpv4Checksum);
    }
    let frag = u16::from_be_bytes([pkt[ip::FLAGS_FRAG], pkt[ip::FLAGS_FRAG + 1]])
        & (FLAG_MF | FRAG_OFFSET);
    let proto = IpProto::from(u8::from(ip.next_header()));
    let l4_bytes = &pkt[header_len..total_len];
    let l4 = if frag == 0 {
        parse_l4(proto, l4_bytes)?
    } else if frag & FRAG_OFFSET == 0 {
        parse_first_fragment(proto, l4_bytes)?
    } else if frag & FRAG_OFFSET == 1 && proto == IpProto::Tcp {
        // RFC 1858: an offset of 8 bytes can only serve to overwrite the TCP header's flags.
        return Err(DropReason::FragmentTiny);
    } else {
        L4::None
    };
    Ok(Ipv4Meta {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.hop_limit(),
        proto,
        header_len,
        total_len,
        dont_frag: ip.dont_frag(),
        frag,
        l4,
    })
}

/// The L4 header of a first fragment (offset 0, more fragments set), whose L4 length field
/// and checksum cover the whole datagram, not this fragment. The header the session needs must
/// be whole in it (RFC 1858: a first fragment too short to hold the TCP header with its
/// options, or 8 bytes of UDP or ICMP, is refused as `fragment_tiny`).
fn parse_first_fragment(proto: IpProto, l4: &[u8]) -> Result<L4, DropReason> {
    let be16 = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    Ok(match proto {
        IpProto::Tcp => {
            if l4.len() < tcp::HEADER_LEN {
                return Err(DropReason::FragmentTiny);
            }
            let doff = usize::from(l4[tcp::field::DATA_OFF] >> 4) * 4;
            if doff < tcp::HEADER_LEN {
                return Err(DropReason::MalformedTcp);
            }
            if doff > l4.len() {
                return Err(DropReason::FragmentTiny);
            }
            L4::Tcp {
                sport: be16(tcp::field::SRC_PORT),
                dport: be16(tcp::field::DST_PORT),
                flags: l4[tcp::field::FLAGS],
            }
        }
        IpProto::Udp | IpProto::Icmp if l4.len() < udp::HEADER_LEN => {
            return Err(DropReason::FragmentTiny)
        }
        IpProto::Udp => L4::Udp {
            sport: be16(udp::field::SRC_PORT),
            dport: be16(udp::field::DST_PORT),
        },
        IpProto::Icmp => L4::Icmp {
            ty: l4[icmp::field::TYPE],
            code: l4[icmp::field::CODE],
            ident: be16(icmp::field::IDENT),
        },
        _ => L4::None,
    })
}

/// Parses an IPv6 packet starting at `pkt[0]` (trailing bytes past the payload length are
/// ignored): the fixed header, the extension headers (each policy in docs/robustness.md), and
/// the upper-layer header.
///
/// Hop-by-hop options only right after the fixed header; a routing header with segments left
/// is refused (rvs is no segment's endpoint; RFC 5095's type 0 among them), one with none is
/// passed over; destination options are passed over; a fragment header ends the walk unless
/// the fragment is atomic (RFC 6946: offset 0, no more fragments — a whole packet). A first
/// fragment's TCP or UDP header must be whole in it (RFC 7112: the first fragment holds the
/// whole header chain; `fragment_tiny` otherwise); its L4 length and checksum are the
/// datagram's.
///
/// # Errors
/// [`DropReason::MalformedIpv6`] (truncated, version not 6, payload length beyond the frame,
/// an extension header cut short, hop-by-hop options not first, more than
/// [`MAX_EXT_HEADERS`] headers), [`DropReason::Ipv6RoutingHeader`], or the L4 reason.
pub fn parse_ipv6(pkt: &[u8]) -> Result<Ipv6Meta, DropReason> {
    const MALFORMED: DropReason = DropReason::MalformedIpv6;
    let ip = Ipv6Packet::new_checked(pkt).map_err(|_| MALFORMED)?;
    if ip.version() != 6 {
        return Err(MALFORMED);
    }
    let total_len = IPV6_HEADER_LEN + usize::from(ip.payload_len());
    let pkt = &pkt[..total_len];
    let mut next = u8::from(ip.next_header());
    let mut off = IPV6_HEADER_LEN;
    let mut ext = 0;
    let mut walked = 0;
    let mut first_fragment = false;
    loop {
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let h = pkt.get(off..off + 2).ok_or(MALFORMED)?;
                (usize::from(h[1]) + 1) * 8
            }
            FRAGMENT => 8,
            _ => break,
        };
        walked += 1;
        let h = pkt.get(off..off + len).ok_or(MALFORMED)?;
        if walked > MAX_EXT_HEADERS || (next == HOP_BY_HOP && off != IPV6_HEADER_LEN) {
            return Err(MALFORMED);
        }
        match next {
            HOP_BY_HOP => ext |= EXT_HOP_BY_HOP,
            DEST_OPTS => ext |= EXT_DEST_OPTS,
            ROUTING if h[3] != 0 => return Err(DropReason::Ipv6RoutingHeader),
            ROUTING => ext |= EXT_ROUTING,
            _ => {
                // Fragment: offset and M flag in bytes 2..4.
                let word = u16::from_be_bytes([h[2], h[3]]);
                if word & 0xfff9 != 0 {
                    ext |= EXT_FRAGMENT;
                    first_fragment = word & 0xfff8 == 0;
                }
            }
        }
        next = h[0];
        off += len;
        if ext & EXT_FRAGMENT != 0 {
            break;
        }
    }
    let l4_bytes = &pkt[off..];
    let l4 = if ext & EXT_FRAGMENT != 0 {
        match IpProto::from(next) {
            p @ (IpProto::Tcp | IpProto::Udp) if first_fragment => {
                parse_first_fragment(p, l4_bytes)?
            }
            _ => L4::None,
        }
    } else {
        match next {
            ICMPV6 => {
                if l4_bytes.len() < icmp::HEADER_LEN {
                    return Err(DropReason::MalformedIcmp);
                }
                L4::Icmp {
                    ty: l4_bytes[icmp::field::TYPE],
                    code: l4_bytes[icmp::field::CODE],
                    ident: u16::from_be_bytes([l4_bytes[4], l4_bytes[5]]),
                }
            }
            n => parse_l4(IpProto::from(n), l4_bytes)?,
        }
    };
    Ok(Ipv6Meta {
        hop_limit: ip.hop_limit(),
        ext,
        upper: next,
        l4_off: off as u16,
        total_len,
        l4,
    })
}

/// IPv6 extension header numbers (RFC 8200).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

/// ICMPv6's next-header number (RFC 4443).
pub const ICMPV6: u8 = 58;

/// Length of the IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;

fn parse_l4(proto: IpProto, l4: &[u8]) -> Result<L4, DropReason> {
    Ok(match proto {
        IpProto::Tcp => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| DropReason::MalformedTcp)?;
            if usize::from(tcp.header_len()) < tcp::HEADER_LEN {
                return Err(DropReason::MalformedTcp);
            }
            L4::Tcp {
                sport: tcp.src_port(),
                dport: tcp.dst_port(),
                flags: l4[tcp::field::FLAGS],
            }
        }
        IpProto::Udp => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| DropReason::MalformedUdp)?;
            L4::Udp {
                sport: udp.src_port(),
                dport: udp.dst_port(),
            }
        }
        IpProto::Icmp => {
            let view = Icmpv4Packet::new_checked(l4).map_err(|_| DropReason::MalformedIcmp)?;
            if l4.len() < icmp::HEADER_LEN {
                return Err(DropReason::MalformedIcmp);
            }
            let at = icmp::field::IDENT;
            L4::Icmp {
                ty: u8::from(view.msg_type()),
                code: view.msg_code(),
                ident: u16::from_be_bytes([l4[at], l4[at + 1]]),
            }
        }
        _ => L4::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv6 packet: the fixed header, then `exts` (each `(next header of the header,
    /// its bytes)` chained in order), then an 8-byte ICMPv6 echo request.
    fn ipv6(first: u8, exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = first;
        p[7] = 64;
        for (next, bytes) in exts {
            let mut h = bytes.clone();
            h[0] = *next;
            p.extend_from_slice(&h);
        }
        p.extend_from_slice(&[128, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p
    }

    /// An 8-byte options header (hop-by-hop or destination options: PadN).
    fn opts() -> Vec<u8> {
        vec![0, 0, 1, 4, 0, 0, 0, 0]
    }

    fn routing(left: u8) -> Vec<u8> {
        vec![0, 0, 0, left, 0, 0, 0, 0]
    }

    fn fragment(offset: u16, more: bool) -> Vec<u8> {
        let w = (offset << 3) | u16::from(more);
        let [a, b] = w.to_be_bytes();
        vec![0, 0, a, b, 0, 0, 0, 7]
    }

    const ECHO: L4 = L4::Icmp {
        ty: 128,
        code: 0,
        ident: 0x1234,
    };

    #[test]
    fn extension_headers_are_walked_to_the_upper_layer() {
        let m = parse_ipv6(&ipv6(ICMPV6, &[])).unwrap();
        assert_eq!((m.ext, m.upper, m.l4_off, m.l4), (0, ICMPV6, 40, ECHO));
        let p = ipv6(
            HOP_BY_HOP,
            &[(DEST_OPTS, opts()), (ROUTING, opts()), (ICMPV6, routing(0))],
        );
        let m = parse_ipv6(&p).unwrap();
        assert_eq!(m.ext, EXT_HOP_BY_HOP | EXT_DEST_OPTS | EXT_ROUTING);
        assert_eq!((m.upper, m.l4_off, m.l4), (ICMPV6, 64, ECHO));
        // An atomic fragment is a whole packet; a real one ends the walk.
        let m = parse_ipv6(&ipv6(FRAGMENT, &[(ICMPV6, fragment(0, false))])).unwrap();
        assert_eq!((m.ext, m.l4, m.is_fragment()), (0, ECHO, false));
        for (off, more) in [(0, true), (100, false), (100, true)] {
            let m = parse_ipv6(&ipv6(FRAGMENT, &[(ICMPV6, fragment(off, more))])).unwrap();
            assert_eq!((m.ext, m.upper, m.l4), (EXT_FRAGMENT, ICMPV6, L4::None));
            assert!(m.is_fragment());
        }
        // No next header.
        let m = parse_ipv6(&ipv6(DEST_OPTS, &[(59, opts())])).unwrap();
        assert_eq!((m.upper, m.l4), (59, L4::None));
    }

    #[test]
    fn a_first_fragment_carries_its_udp_or_tcp_header_whole() {
        // The 8 bytes after the fragment header, read as UDP: ports 0x8000 and 0.
        let p = ipv6(FRAGMENT, &[(17, fragment(0, true))]);
        let m = parse_ipv6(&p).unwrap();
        let udp = L4::Udp {
            sport: 0x8000,
            dport: 0,
        };
        assert_eq!(
            (m.ext, m.upper, m.l4_off, m.l4),
            (EXT_FRAGMENT, 17, 48, udp)
        );
        let f = m.fragment(&p).unwrap();
        assert_eq!((f.offset, f.more, f.ident, f.ident_at), (0, true, 7, 44));
        // 8 bytes cannot hold a TCP header: the header chain is not whole (RFC 7112).
        let p = ipv6(FRAGMENT, &[(6, fragment(0, true))]);
        assert_eq!(parse_ipv6(&p), Err(DropReason::FragmentTiny));
        // A later fragment: no L4 header, its place from the fragment header.
        let p = ipv6(FRAGMENT, &[(6, fragment(100, false))]);
        let m = parse_ipv6(&p).unwrap();
        assert_eq!(m.l4, L4::None);
        let f = m.fragment(&p).unwrap();
        assert_eq!((f.offset, f.more, f.ident), (800, false, 7));
        // A whole packet has none.
        let p = ipv6(ICMPV6, &[]);
        assert_eq!(parse_ipv6(&p).unwrap().fragment(&p), None);
    }

    #[test]
    fn extension_header_policy() {
        let malformed = Err(DropReason::MalformedIpv6);
        // Hop-by-hop options anywhere but first.
        let p = ipv6(DEST_OPTS, &[(HOP_BY_HOP, opts()), (ICMPV6, opts())]);
        assert_eq!(parse_ipv6(&p), malformed);
        // Segments left to visit (type 0 or any other): refused.
        let p = ipv6(ROUTING, &[(ICMPV6, routing(1))]);
        assert_eq!(parse_ipv6(&p), Err(DropReason::Ipv6RoutingHeader));
        // More than MAX_EXT_HEADERS.
        let many: Vec<(u8, Vec<u8>)> = (0..=MAX_EXT_HEADERS)
            .map(|i| {
                let next = if i == MAX_EXT_HEADERS {
                    ICMPV6
                } else {
                    DEST_OPTS
                };
                (next, opts())
            })
            .collect();
        assert_eq!(parse_ipv6(&ipv6(DEST_OPTS, &many)), malformed);
        let fine = &many[1..];
        assert!(parse_ipv6(&ipv6(DEST_OPTS, fine)).is_ok());
        // A header longer than the packet; cut at every byte.
        let mut p = ipv6(DEST_OPTS, &[(ICMPV6, opts())]);
        p[41] = 9;
        assert_eq!(parse_ipv6(&p), malformed);
        let p = ipv6(HOP_BY_HOP, &[(ROUTING, opts()), (ICMPV6, routing(0))]);
        for cut in 40..56 {
            let mut q = p[..cut].to_vec();
            q[4..6].copy_from_slice(&((cut - 40) as u16).to_be_bytes());
            assert!(parse_ipv6(&q).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_ipv6_summary_is_no_bigger_than_ipv4s() {
        assert!(core::mem::size_of::<Ipv6Meta>() <= core::mem::size_of::<Ipv4Meta>());
    }
}
