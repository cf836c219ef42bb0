//! Owned packet buffers: [`Mbuf`] is the one owner of an `rte_mbuf` chain; dropping it frees
//! every segment to its pool, transmitting it hands it to the driver.
//!
//! # Segments
//! A received frame larger than one mbuf's data room arrives as a chain (`nb_segs > 1`).
//! [`Mbuf::data`] and [`Mbuf::data_mut`] are the *first segment only*; they never pretend a
//! chain is contiguous. Check [`Mbuf::is_contiguous`] (or walk [`Mbuf::segments`]) before
//! reading a frame as one slice. `pkt_len` is the whole chain; `data_len` the first segment.
//! [`Mbuf::prepend`] and [`Mbuf::adj`] act on the first segment, [`Mbuf::append`] on the
//! last, [`Mbuf::truncate`] anywhere (freeing the segments it cuts off).
//!
//! Hot accessors read the mbuf's fields directly (the layout comes from bindgen over the
//! same headers); the operations that change lengths call DPDK's own inline functions
//! through the C shim.

use crate::ffi;
use core::fmt;
use core::ptr::NonNull;

/// `ol_flags` bits (`RTE_MBUF_F_*`).
pub mod ol {
    use crate::ffi;

    /// RX: the driver stored the RSS hash in the mbuf.
    pub const RX_RSS_HASH: u64 = ffi::RTE_MBUF_F_RX_RSS_HASH as u64;
    /// RX: the IPv4 header checksum was checked and is wrong.
    pub const RX_IP_CKSUM_BAD: u64 = ffi::RTE_MBUF_F_RX_IP_CKSUM_BAD as u64;
    /// RX: the IPv4 header checksum was checked and is right.
    pub const RX_IP_CKSUM_GOOD: u64 = ffi::RTE_MBUF_F_RX_IP_CKSUM_GOOD as u64;
    /// RX: the L4 checksum was checked and is wrong.
    pub const RX_L4_CKSUM_BAD: u64 = ffi::RTE_MBUF_F_RX_L4_CKSUM_BAD as u64;
    /// RX: the L4 checksum was checked and is right.
    pub const RX_L4_CKSUM_GOOD: u64 = ffi::RTE_MBUF_F_RX_L4_CKSUM_GOOD as u64;
    /// TX: the packet is IPv4 (needed with the checksum requests below).
    pub const TX_IPV4: u64 = ffi::RTE_MBUF_F_TX_IPV4;
    /// TX: let the NIC compute the IPv4 header checksum.
    pub const TX_IP_CKSUM: u64 = ffi::RTE_MBUF_F_TX_IP_CKSUM;
    /// TX: let the NIC compute the TCP checksum (the field holds the pseudo-header sum).
    pub const TX_TCP_CKSUM: u64 = ffi::RTE_MBUF_F_TX_TCP_CKSUM;
    /// TX: let the NIC compute the UDP checksum (the field holds the pseudo-header sum).
    pub const TX_UDP_CKSUM: u64 = ffi::RTE_MBUF_F_TX_UDP_CKSUM;
}

/// One owned packet (an `rte_mbuf` chain). `Send`: it may move to another thread (to a TX
/// queue, a redirect ring) and be freed there.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// Safety: an Mbuf is the only owner of its chain (refcnt 1, see from_raw), so moving it to
// another thread moves the only access; DPDK lets any thread free an mbuf to its pool.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf chain.
    ///
    /// # Safety
    /// `raw` must point to a valid packet mbuf (the head of its chain) allocated from a pool
    /// that outlives this value; the caller gives up its reference (nothing else frees or
    /// uses it afterwards); it must be a direct mbuf with reference count 1, so writes
    /// through [`Mbuf::data_mut`] are seen by no one else.
    #[inline]
    pub unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership: the caller must free the chain (or hand it to DPDK).
    #[inline]
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        core::mem::forget(self);
        raw
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *const ffi::rte_mbuf {
        self.raw.as_ptr()
    }

    #[inline]
    fn head(&self) -> &ffi::rte_mbuf {
        // Safety: raw is a valid mbuf we own for as long as self lives (from_raw's contract).
        unsafe { self.raw.as_ref() }
    }

    /// The first segment's bytes (the whole frame when [`Mbuf::is_contiguous`]).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.head();
        // Safety: buf_addr points to the mbuf's buffer of buf_len bytes, and DPDK keeps
        // data_off + data_len <= buf_len; we own the mbuf (refcnt 1), so nothing writes to
        // these bytes while the shared borrow of self lives.
        unsafe {
            core::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The first segment's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.head();
            (m.buf_addr.cast::<u8>(), m.data_off, m.data_len)
        };
        // Safety: as in data(); the exclusive borrow of self makes this the only access to
        // the bytes (refcnt 1: no other owner sees them).
        unsafe { core::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Frame length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.head().pkt_len
    }

    /// Length of the first segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.head().data_len
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.head().nb_segs
    }

    /// True when the whole frame is in the first segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.head().nb_segs == 1
    }

    /// Free bytes in front of the first segment's data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.head().data_off)
    }

    /// Free bytes after the last segment's data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let mut m = self.head();
        // The head's nb_segs is on the first cache line; `next` (on the second) is read only
        // for a chain, walked to its end (only the head's nb_segs is meaningful).
        if m.nb_segs != 1 {
            while !m.next.is_null() {
                // Safety: a chain's next pointers are valid mbufs of the chain we own.
                m = unsafe { &*m.next };
            }
        }
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// Grows the frame at the front by `n` bytes of the first segment's headroom (contents
    /// unspecified). Returns false, changing nothing, if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // Safety: we own the mbuf; rte_pktmbuf_prepend checks the headroom and changes
        // nothing (returning NULL) when it is too small.
        !unsafe { ffi::rvs_pktmbuf_prepend(self.raw.as_ptr(), n) }.is_null()
    }

    /// Removes `n` bytes from the front of the first segment. Returns false, changing
    /// nothing, if the first segment is shorter than `n`.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // Safety: we own the mbuf; rte_pktmbuf_adj checks the length and changes nothing
        // (returning NULL) when the first segment is too short.
        !unsafe { ffi::rvs_pktmbuf_adj(self.raw.as_ptr(), n) }.is_null()
    }

    /// Shortens the frame to `len` bytes, freeing segments past the new end; a `len` at or
    /// beyond [`Mbuf::pkt_len`] changes nothing.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len >= self.pkt_len() as usize {
            return;
        }
        // Safety: we own the chain; the shim walks it, shortens the segment holding the new
        // end and frees the rest (segments only this chain references). len < pkt_len fits
        // in u32.
        unsafe { ffi::rvs_pktmbuf_truncate(self.raw.as_ptr(), len as u32) }
    }

    /// Grows the frame at the end by `n` bytes of the last segment's tailroom (contents
    /// unspecified). Returns false, changing nothing, if the tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // Safety: we own the chain; rte_pktmbuf_append checks the last segment's tailroom and
        // changes nothing (returning NULL) when it is too small.
        !unsafe { ffi::rvs_pktmbuf_append(self.raw.as_ptr(), n) }.is_null()
    }

    /// Appends a copy of `bytes` at the end of a contiguous frame. Returns false, changing
    /// nothing, if the frame is chained or the tailroom is too small.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        if !self.is_contiguous() || !self.append(bytes.len()) {
            return false;
        }
        let d = self.data_mut();
        let start = d.len() - bytes.len();
        d[start..].copy_from_slice(bytes);
        true
    }

    /// Links `tail` (a whole chain) after this chain's last segment. Gives `tail` back if the
    /// result would have too many segments.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        // Safety: we own both chains and they are distinct (tail was moved in); on success
        // rte_pktmbuf_chain links tail's segments into ours, so ours now owns them.
        let rc = unsafe { ffi::rvs_pktmbuf_chain(self.raw.as_ptr(), tail.raw.as_ptr()) };
        if rc == 0 {
            core::mem::forget(tail);
            Ok(())
        } else {
            Err(tail)
        }
    }

    /// The chain's segments' bytes, first to last.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: Some(self.head()),
        }
    }

    /// Offload flags (`RTE_MBUF_F_*`, see [`ol`]).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.head().ol_flags
    }

    /// The RSS hash the driver computed, if it stored one ([`ol::RX_RSS_HASH`]).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & ol::RX_RSS_HASH != 0 {
            // Safety: reads a plain u32 of the mbuf we own; the flag says it holds the hash.
            Some(unsafe { ffi::rvs_mbuf_rss_hash(self.raw.as_ptr()) })
        } else {
            None
        }
    }

    /// The port the frame was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.head().port
    }

    /// Requests TX checksum offload: replaces the TX bits of `ol_flags` with `flags`
    /// (`ol::TX_*`) and sets the header lengths the NIC needs. Returns false, changing
    /// nothing, if `l2_len` >= 128 or `l3_len` >= 512 (the fields' widths). The port must
    /// have been configured with the matching `tx_offloads`.
    pub fn set_tx_offload(&mut self, flags: u64, l2_len: u16, l3_len: u16) -> bool {
        if l2_len >= 128 || l3_len >= 512 {
            return false;
        }
        // Safety: we own the mbuf; the shim writes ol_flags and two bitfields.
        unsafe { ffi::rvs_mbuf_set_tx_offload(self.raw.as_ptr(), flags, l2_len, l3_len) };
        true
    }

    /// The L2 and L3 header lengths set for TX offload.
    pub fn tx_offload_lens(&self) -> (u16, u16) {
        // Safety: reads two bitfields of the mbuf we own.
        unsafe {
            (
                ffi::rvs_mbuf_l2_len(self.raw.as_ptr()),
                ffi::rvs_mbuf_l3_len(self.raw.as_ptr()),
            )
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // Safety: we own the chain (from_raw's contract) and give it up here, exactly once;
        // rte_pktmbuf_free returns every segment to its pool.
        unsafe { ffi::rvs_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("pkt_len", &self.pkt_len())
            .field("data_len", &self.data_len())
            .field("nb_segs", &self.nb_segs())
            .field("headroom", &self.headroom())
            .finish()
    }
}

/// Iterator over an mbuf chain's segments (see [`Mbuf::segments`]).
pub struct Segments<'a> {
    next: Option<&'a ffi::rte_mbuf>,
}

impl fmt::Debug for Segments<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segments")
            .field("done", &self.next.is_none())
            .finish()
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let m = self.next.take()?;
        // Safety: a chain's next pointers are NULL or valid mbufs of the chain, which the
        // borrowed Mbuf owns for 'a.
        self.next = unsafe { m.next.as_ref() };
        // Safety: as in Mbuf::data, for this segment.
        Some(unsafe {
            core::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        })
    }
}
