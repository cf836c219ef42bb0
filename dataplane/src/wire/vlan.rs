//! IEEE 802.1Q VLAN tag: a zero-copy view in smoltcp's style.
//!
//! The view covers what follows an outer ethertype of [`ETHERTYPE_VLAN`] (0x8100) or
//! [`ETHERTYPE_QINQ`] (0x88a8): the 2-byte Tag Control Information (PCP, DEI, VID) and the
//! 2-byte inner ethertype, then the payload. Hand it `EthernetFrame::payload()`.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | PCP |D|         VID           |        inner ethertype        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! VID 0 marks a priority-tagged frame (no VLAN, only a PCP); VID 0xfff is reserved and must
//! not be transmitted (802.1Q-2018 table 9-2), so [`Repr::parse`] rejects it while the raw
//! [`Packet::vid`] getter still reports it.
//!
//! Panic contract: as for every view in [`crate::wire`], once [`Packet::new_checked`] (or
//! [`Packet::check_len`]) has succeeded no accessor panics.
//!
//! [`ETHERTYPE_VLAN`]: super::ETHERTYPE_VLAN
//! [`ETHERTYPE_QINQ`]: super::ETHERTYPE_QINQ

use core::fmt;

use smoltcp::wire::{Error, EthernetProtocol, Result};

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of the tag as seen by this view: TCI and inner ethertype.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The reserved VID that must not appear on the wire.
pub const VID_RESERVED: u16 = 0x0fff;

const VID_MASK: u16 = 0x0fff;
const DEI_BIT: u16 = 0x1000;
const PCP_SHIFT: u16 = 13;

/// A read/write wrapper around an 802.1Q tag and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length; accessors may panic on a short buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// `Error` if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds a whole tag (TCI and inner ethertype).
    ///
    /// # Errors
    /// `Error` if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Consumes the view, returning the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Tag Control Information word (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::TCI.start], data[field::TCI.start + 1]])
    }

    /// The Priority Code Point (3 bits, 802.1p class).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> PCP_SHIFT) as u8
    }

    /// The Drop Eligible Indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & DEI_BIT != 0
    }

    /// The VLAN identifier (12 bits; 0 = priority tag only, 0xfff reserved).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// The ethertype of what follows the tag (another tag for stacked VLANs).
    #[inline]
    pub fn ethertype(&self) -> EthernetProtocol {
        let data = self.buffer.as_ref();
        EthernetProtocol::from(u16::from_be_bytes([
            data[field::ETHERTYPE.start],
            data[field::ETHERTYPE.start + 1],
        ]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the whole Tag Control Information word.
    #[inline]
    pub fn set_tci(&mut self, value: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the VLAN identifier; only the low 12 bits of `value` are used.
    #[inline]
    pub fn set_vid(&mut self, value: u16) {
        let tci = (self.tci() & !VID_MASK) | (value & VID_MASK);
        self.set_tci(tci);
    }

    /// Sets the Priority Code Point; only the low 3 bits of `value` are used.
    #[inline]
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & !(0x7 << PCP_SHIFT)) | ((u16::from(value) & 0x7) << PCP_SHIFT);
        self.set_tci(tci);
    }

    /// Sets the Drop Eligible Indicator.
    #[inline]
    pub fn set_dei(&mut self, value: bool) {
        let tci = if value {
            self.tci() | DEI_BIT
        } else {
            self.tci() & !DEI_BIT
        };
        self.set_tci(tci);
    }

    /// Sets the ethertype of what follows the tag.
    #[inline]
    pub fn set_ethertype(&mut self, value: EthernetProtocol) {
        let raw: u16 = value.into();
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&raw.to_be_bytes());
    }

    /// The bytes after the tag, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "802.1Q vid={} pcp={} dei={} type={}",
                self.vid(),
                self.pcp(),
                u8::from(self.dei()),
                self.ethertype()
            ),
            Err(_) => f.write_str("802.1Q (truncated)"),
        }
    }
}

/// A high-level representation of an 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority Code Point (0..=7).
    pub pcp: u8,
    /// Drop Eligible Indicator.
    pub dei: bool,
    /// VLAN identifier (0..=4094; 0 = priority tag only).
    pub vid: u16,
    /// Ethertype of what follows the tag.
    pub ethertype: EthernetProtocol,
}

impl Repr {
    /// Parses a tag.
    ///
    /// # Errors
    /// `Error` if the buffer is too short or the VID is the reserved 0xfff.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        let vid = packet.vid();
        if vid == VID_RESERVED {
            return Err(Error);
        }
        Ok(Repr {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vid,
            ethertype: packet.ethertype(),
        })
    }

    /// The bytes [`emit`](Self::emit) writes: [`HEADER_LEN`].
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag into `packet` (whose buffer must hold [`HEADER_LEN`] bytes). Out-of-range
    /// `pcp` and `vid` are truncated to their 3 and 12 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let tci = ((u16::from(self.pcp) & 0x7) << PCP_SHIFT)
            | if self.dei { DEI_BIT } else { 0 }
            | (self.vid & VID_MASK);
        packet.set_tci(tci);
        packet.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "802.1Q vid={} pcp={} dei={} type={}",
            self.vid,
            self.pcp,
            u8::from(self.dei),
            self.ethertype
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCP 5, DEI 0, VID 100 (0xa064), inner IPv4, then 4 payload bytes.
    static PACKET_BYTES: [u8; 8] = [0xa0, 0x64, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14];
    static PAYLOAD_BYTES: [u8; 4] = [0x45, 0x00, 0x00, 0x14];

    fn repr() -> Repr {
        Repr {
            pcp: 5,
            dei: false,
            vid: 100,
            ethertype: EthernetProtocol::Ipv4,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.tci(), 0xa064);
        assert_eq!(packet.pcp(), 5);
        assert!(!packet.dei());
        assert_eq!(packet.vid(), 100);
        assert_eq!(packet.ethertype(), EthernetProtocol::Ipv4);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_tci(0);
        packet.set_pcp(5);
        packet.set_dei(true);
        packet.set_dei(false);
        packet.set_vid(100);
        packet.set_ethertype(EthernetProtocol::Ipv4);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn setters_keep_other_fields() {
        let mut bytes = [0u8; 4];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_tci(0xffff);
        packet.set_vid(0);
        assert_eq!(packet.tci(), 0xf000);
        packet.set_pcp(0);
        assert_eq!(packet.tci(), 0x1000);
        assert!(packet.dei());
        packet.set_dei(false);
        packet.set_vid(0xffff); // masked to 12 bits
        assert_eq!(packet.tci(), 0x0fff);
        packet.set_pcp(0xff); // masked to 3 bits
        assert_eq!(packet.tci(), 0xefff);
    }

    #[test]
    fn parse_and_emit() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(repr()));

        let mut bytes = [0u8; 8];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr().buffer_len(), 4);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&PACKET_BYTES[..len]), Err(Error));
            let packet = Packet::new_unchecked(&PACKET_BYTES[..len]);
            assert_eq!(Repr::parse(&packet), Err(Error));
        }
        // Exactly a tag and nothing after it is fine: the payload is empty.
        let packet = Packet::new_checked(&PACKET_BYTES[..HEADER_LEN]).unwrap();
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn vid_edges() {
        // VID 4095 (reserved): the view reports it, Repr refuses it.
        let bytes = [0x0f, 0xff, 0x86, 0xdd];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.vid(), 4095);
        assert_eq!(packet.pcp(), 0);
        assert_eq!(packet.ethertype(), EthernetProtocol::Ipv6);
        assert_eq!(Repr::parse(&packet), Err(Error));

        // VID 4094 is the largest usable one; PCP 7 and DEI set share the word.
        let bytes = [0xff, 0xfe, 0x08, 0x06];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr {
                pcp: 7,
                dei: true,
                vid: 4094,
                ethertype: EthernetProtocol::Arp
            })
        );

        // VID 0: a priority-tagged frame, accepted.
        let bytes = [0x60, 0x00, 0x08, 0x00];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr {
                pcp: 3,
                dei: false,
                vid: 0,
                ethertype: EthernetProtocol::Ipv4
            })
        );
    }

    #[test]
    fn stacked_tag_ethertype() {
        // An S-tag carrying a C-tag: the inner ethertype is 0x8100 again.
        let bytes = [0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00];
        let outer = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            outer.ethertype(),
            EthernetProtocol::Unknown(super::super::ETHERTYPE_VLAN)
        );
        let inner = Packet::new_checked(outer.payload()).unwrap();
        assert_eq!(inner.vid(), 20);
        assert_eq!(inner.ethertype(), EthernetProtocol::Ipv4);
    }

    #[test]
    fn display() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.to_string(), "802.1Q vid=100 pcp=5 dei=0 type=IPv4");
        assert_eq!(repr().to_string(), "802.1Q vid=100 pcp=5 dei=0 type=IPv4");
        assert_eq!(
            Packet::new_unchecked(&PACKET_BYTES[..2]).to_string(),
            "802.1Q (truncated)"
        );
    }
}
