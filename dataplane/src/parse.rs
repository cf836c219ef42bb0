//! From raw frame to a flat summary the classifier can act on.
//!
//! Every frame goes through [`parse`] first. It validates each layer with `new_checked` views
//! (smoltcp's, and our own for 802.1Q) plus the checks those views leave out, so that after
//! `Ok` the offsets it returns can be used without further bounds surprises. Any failure is a
//! [`DropReason`], never a panic.

use crate::drop::DropReason;
use crate::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
    VlanPacket, ETHERNET_HEADER_LEN, ETHERTYPE_QINQ, ETHERTYPE_VLAN, VLAN_TAG_LEN,
};
use core::net::Ipv4Addr;

/// TCP flag bits as in the header's flags byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// The flags that say where a segment is in a connection's life (PSH, URG, ECE and CWR
    /// do not): mask with it to tell a plain SYN, SYN/ACK, ACK, FIN or RST.
    pub const HANDSHAKE: u8 = SYN | ACK | RST | FIN;

    /// True for the flag combinations a TCP connection uses; the others (SYN with FIN or
    /// RST, FIN without ACK, no flags at all, the "christmas tree") are what scanners and
    /// floods send. The same set as Linux conntrack's `tcp_valid_flags`: PSH, ECE and CWR are
    /// ignored, and what is left must be SYN, SYN+URG, SYN+ACK, RST, RST+ACK, FIN+ACK,
    /// FIN+ACK+URG, ACK or ACK+URG.
    #[inline]
    pub const fn valid(flags: u8) -> bool {
        const SYN_URG: u8 = SYN | URG;
        const SYN_ACK: u8 = SYN | ACK;
        const RST_ACK: u8 = RST | ACK;
        const FIN_ACK: u8 = FIN | ACK;
        const FIN_ACK_URG: u8 = FIN | ACK | URG;
        const ACK_URG: u8 = ACK | URG;
        matches!(
            flags & (HANDSHAKE | URG),
            SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
        )
    }
}

/// ICMP echo request type.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP echo reply type.
pub const ICMP_ECHO_REPLY: u8 = 0;

/// What the Ethernet frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// ARP, at `l3_off`.
    Arp,
    /// IPv4, summarised in [`Ipv4Meta`].
    Ipv4(Ipv4Meta),
    /// IPv6 (fixed header checked; not forwarded).
    Ipv6,
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
    /// IP protocol number.
    pub proto: u8,
    /// IPv4 header length in bytes (20..=60).
    pub header_len: usize,
    /// IPv4 total length (header + payload), ≤ the frame's L3 bytes; any Ethernet padding
    /// beyond it is not part of the packet.
    pub total_len: usize,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// A fragment (MF set or non-zero offset): no complete L4 header to rely on.
    pub fragment: bool,
    /// L4 summary (`L4::None` for fragments and protocols not parsed).
    pub l4: L4,
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
        /// Flags byte (see [`tcp_flags`]).
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
    let head: &[u8; 34] = frame.get(..34)?.try_into().ok()?;
    if head[12..15] != [0x08, 0x00, 0x45] {
        return None;
    }
    let ip: &[u8; 20] = head[14..34].try_into().ok()?;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // Fragments (MF or an offset) take the full path.
    if total_len < 20 || frame.len() - 14 < total_len || ip[6] & 0x3f != 0 || ip[7] != 0 {
        return None;
    }
    if crate::checksum::fold(crate::checksum::sum_bytes(0, ip)) != 0xffff {
        return None;
    }
    let l4 = &frame[34..14 + total_len];
    let be16 = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let l4 = match ip[9] {
        6 => {
            if l4.len() < 20 {
                return None;
            }
            let doff = usize::from(l4[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                return None;
            }
            L4::Tcp {
                sport: be16(0),
                dport: be16(2),
                flags: l4[13],
            }
        }
        17 => {
            if l4.len() < 8 {
                return None;
            }
            let len = usize::from(be16(4));
            if len < 8 || len > l4.len() {
                return None;
            }
            L4::Udp {
                sport: be16(0),
                dport: be16(2),
            }
        }
        _ => return None,
    };
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&head[0..6]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&head[6..12]);
    Some(Parsed {
        dst_mac,
        src_mac,
        vlan: None,
        l3_off: ETHERNET_HEADER_LEN,
        l3: L3::Ipv4(Ipv4Meta {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            ttl: ip[8],
            proto: ip[9],
            header_len: 20,
            total_len,
            dont_frag: ip[6] & 0x40 != 0,
            fragment: false,
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
        EthernetProtocol::Ipv6 => {
            Ipv6Packet::new_checked(payload).map_err(|_| DropReason::MalformedIpv6)?;
            L3::Ipv6
        }
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
    if header_len < 20 || total_len < header_len {
        return Err(DropReason::MalformedIpv4);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpv4Checksum);
    }
    let fragment = ip.more_frags() || ip.frag_offset() != 0;
    let proto = u8::from(ip.next_header());
    let l4_bytes = &pkt[header_len..total_len];
    let l4 = if fragment {
        L4::None
    } else {
        parse_l4(proto, l4_bytes)?
    };
    Ok(Ipv4Meta {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.hop_limit(),
        proto,
        header_len,
        total_len,
        dont_frag: ip.dont_frag(),
        fragment,
        l4,
    })
}

fn parse_l4(proto: u8, l4: &[u8]) -> Result<L4, DropReason> {
    Ok(match proto {
        6 => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| DropReason::MalformedTcp)?;
            if tcp.header_len() < 20 {
                return Err(DropReason::MalformedTcp);
            }
            L4::Tcp {
                sport: tcp.src_port(),
                dport: tcp.dst_port(),
                flags: l4[13],
            }
        }
        17 => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| DropReason::MalformedUdp)?;
            L4::Udp {
                sport: udp.src_port(),
                dport: udp.dst_port(),
            }
        }
        1 => {
            let icmp = Icmpv4Packet::new_checked(l4).map_err(|_| DropReason::MalformedIcmp)?;
            if l4.len() < 8 {
                return Err(DropReason::MalformedIcmp);
            }
            L4::Icmp {
                ty: u8::from(icmp.msg_type()),
                code: icmp.msg_code(),
                ident: u16::from_be_bytes([l4[4], l4[5]]),
            }
        }
        _ => L4::None,
    })
}
