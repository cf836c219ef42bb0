//! Frames the director builds itself: ARP requests and replies, ICMP errors.
//!
//! Builders write into a buffer the caller owns (a fresh one from the device pool, or the
//! received frame being answered); they never allocate.

use crate::buf::PacketBuf;
use crate::checksum;
use crate::rewrite::l2_len;
use crate::wire::{ArpPacket, ArpRepr, ETHERTYPE_VLAN};
use core::net::Ipv4Addr;

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
    d[0..6].copy_from_slice(&dst_mac);
    d[6..12].copy_from_slice(&src_mac);
    match vlan {
        Some(v) => {
            d[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            d[14..16].copy_from_slice(&(v & 0x0fff).to_be_bytes());
            d[16..18].copy_from_slice(&0x0806u16.to_be_bytes());
        }
        None => d[12..14].copy_from_slice(&0x0806u16.to_be_bytes()),
    }
    let mut arp = ArpPacket::new_unchecked(&mut d[l2..l2 + repr.buffer_len()]);
    repr.emit(&mut arp);
    true
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
    let l4_len = 8 + quote.len();
    let total = 20 + l4_len;
    buf.truncate(0);
    if !buf.append(L2_ROOM + total) {
        return false;
    }
    let d = &mut buf.data_mut()[L2_ROOM..];
    d[0] = 0x45;
    d[1] = 0;
    d[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    d[4..6].copy_from_slice(&e.ident.to_be_bytes());
    d[6..8].fill(0);
    d[8] = 64;
    d[9] = 1;
    d[10..12].fill(0);
    d[12..16].copy_from_slice(&e.src.octets());
    d[16..20].copy_from_slice(&e.dst.octets());
    let c = checksum::checksum(&d[0..20]);
    d[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = &mut d[20..total];
    icmp[0] = e.ty;
    icmp[1] = e.code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&e.rest.to_be_bytes());
    icmp[8..].copy_from_slice(quote);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
}
