//! Owned packet buffers.
//!
//! A [`PacketBuf`] owns one frame: dropping it returns the memory to its pool, transmitting
//! it hands it to the device. The same operations exist on a DPDK mbuf (`rte_pktmbuf_prepend`,
//! `_adj`, `_trim`, `_append`), so the data path is written once for every device.

/// One received or built frame, owned.
pub trait PacketBuf {
    /// The frame bytes.
    fn data(&self) -> &[u8];
    /// The frame bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// True if [`PacketBuf::data`] is the whole frame. A chained (multi-segment) DPDK mbuf is
    /// not; the worker drops such frames with a reason instead of misparsing them.
    #[inline]
    fn is_contiguous(&self) -> bool {
        true
    }
    /// Frame length in bytes.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for an empty frame.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the frame.
    fn headroom(&self) -> usize;
    /// Free bytes after the frame.
    fn tailroom(&self) -> usize;
    /// Grows the frame at the front by `n` bytes taken from the headroom (contents unspecified).
    /// Returns false, changing nothing, if the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false, changing nothing, if the frame is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Shortens the frame to `len` bytes; a longer `len` changes nothing.
    fn truncate(&mut self, len: usize);
    /// Grows the frame at the end by `n` bytes taken from the tailroom (contents unspecified).
    /// Returns false, changing nothing, if the tailroom is too small.
    fn append(&mut self, n: usize) -> bool;
}
