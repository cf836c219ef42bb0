//! In-memory device and buffer pool, for tests and benches.
//!
//! [`MemPool`] preallocates fixed-size buffers and recycles them through a lock-free queue, so
//! a steady stream of packets through a [`MemDevice`] allocates nothing. A test puts frames in
//! with [`MemDevice::inject`] and takes what the worker sent with [`MemDevice::take_tx`].

use crate::buf::PacketBuf;
use crate::device::{Burst, Device};
use crate::wire::EthernetAddress;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::Arc;

/// Bytes reserved in front of every frame (as DPDK's RTE_PKTMBUF_HEADROOM).
pub const HEADROOM: usize = 128;
/// Data room of one buffer after the headroom.
pub const DATA_ROOM: usize = 2048;

/// A fixed pool of packet buffers.
#[derive(Clone, Debug)]
pub struct MemPool {
    free: Arc<ArrayQueue<Box<[u8]>>>,
}

impl MemPool {
    /// A pool of `n` buffers, all allocated now.
    pub fn new(n: usize) -> MemPool {
        let free = ArrayQueue::new(n.max(1));
        for _ in 0..n {
            let _ = free.push(vec![0u8; HEADROOM + DATA_ROOM].into_boxed_slice());
        }
        MemPool {
            free: Arc::new(free),
        }
    }

    /// An empty buffer (length 0, full headroom), or None if the pool is empty.
    pub fn alloc(&self) -> Option<MemBuf> {
        self.free.pop().map(|mem| MemBuf {
            mem,
            start: HEADROOM as u32,
            len: 0,
            pool: self.free.clone(),
        })
    }

    /// A buffer holding a copy of `frame`, or None if the pool is empty or the frame too long.
    pub fn alloc_from(&self, frame: &[u8]) -> Option<MemBuf> {
        if frame.len() > DATA_ROOM {
            return None;
        }
        let mut b = self.alloc()?;
        b.append(frame.len());
        b.data_mut().copy_from_slice(frame);
        Some(b)
    }

    /// Buffers currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

/// A buffer of a [`MemPool`]; dropping it gives the memory back.
#[derive(Debug)]
pub struct MemBuf {
    mem: Box<[u8]>,
    start: u32,
    len: u32,
    pool: Arc<ArrayQueue<Box<[u8]>>>,
}

impl Drop for MemBuf {
    fn drop(&mut self) {
        let mem = std::mem::take(&mut self.mem);
        // The pool was sized for every buffer it made, so the push cannot fail.
        let _ = self.pool.push(mem);
    }
}

impl PacketBuf for MemBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.mem[self.start as usize..(self.start + self.len) as usize]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start as usize..(self.start + self.len) as usize]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.mem.len() - (self.start + self.len) as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u32;
        self.len += n as u32;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.start += n as u32;
        self.len -= n as u32;
        true
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        if len < self.len as usize {
            self.len = len as u32;
        }
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n as u32;
        true
    }
}

/// An in-memory port queue: frames injected by a test come out of `rx_burst`, frames the
/// worker transmits collect in a TX list the test reads.
#[derive(Debug)]
pub struct MemDevice {
    mac: EthernetAddress,
    pool: MemPool,
    rx: VecDeque<MemBuf>,
    tx: VecDeque<MemBuf>,
    tx_limit: usize,
}

impl MemDevice {
    /// A device with `mac`, taking buffers from `pool`; RX and TX queues hold up to `depth`.
    pub fn new(mac: EthernetAddress, pool: MemPool, depth: usize) -> MemDevice {
        MemDevice {
            mac,
            pool,
            rx: VecDeque::with_capacity(depth),
            tx: VecDeque::with_capacity(depth),
            tx_limit: depth,
        }
    }

    /// Queues a copy of `frame` for reception. Returns false if the pool or the RX queue is full.
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if self.rx.len() == self.rx.capacity() {
            return false;
        }
        match self.pool.alloc_from(frame) {
            Some(b) => {
                self.rx.push_back(b);
                true
            }
            None => false,
        }
    }

    /// Queues an owned buffer for reception (no copy). Returns it back if the RX queue is full.
    pub fn inject_buf(&mut self, buf: MemBuf) -> Result<(), MemBuf> {
        if self.rx.len() == self.rx.capacity() {
            return Err(buf);
        }
        self.rx.push_back(buf);
        Ok(())
    }

    /// Takes every transmitted frame, as byte vectors (test helper; allocates).
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        self.tx.drain(..).map(|b| b.data().to_vec()).collect()
    }

    /// Takes one transmitted buffer, oldest first (no copy).
    pub fn pop_tx(&mut self) -> Option<MemBuf> {
        self.tx.pop_front()
    }

    /// Frames waiting in the TX list.
    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    /// Frames waiting for reception.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Limits how many frames the TX list accepts (to simulate a full TX ring).
    pub fn set_tx_limit(&mut self, limit: usize) {
        self.tx_limit = limit.min(self.tx.capacity());
    }

    /// The device's pool.
    pub fn pool(&self) -> &MemPool {
        &self.pool
    }
}

impl Device for MemDevice {
    type Buf = MemBuf;

    fn rx_burst(&mut self, out: &mut Burst<MemBuf>) {
        while !out.is_full() {
            match self.rx.pop_front() {
                Some(b) => out.push(b),
                None => break,
            }
        }
    }

    fn tx_burst(&mut self, pkts: &mut Burst<MemBuf>) -> usize {
        let room = self.tx_limit.saturating_sub(self.tx.len());
        let n = room.min(pkts.len());
        for b in pkts.drain(..n) {
            self.tx.push_back(b);
        }
        n
    }

    fn alloc(&mut self) -> Option<MemBuf> {
        self.pool.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_the_pool() {
        let pool = MemPool::new(2);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        drop(a);
        assert_eq!(pool.available(), 1);
        drop(b);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn prepend_adj_truncate_append() {
        let pool = MemPool::new(1);
        let mut b = pool.alloc_from(&[1, 2, 3, 4]).unwrap();
        assert_eq!(b.headroom(), HEADROOM);
        assert!(b.prepend(2));
        assert_eq!(b.len(), 6);
        b.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(b.adj(3));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(!b.adj(4));
        b.truncate(2);
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.prepend(HEADROOM + 2));
        assert!(b.append(1));
        assert_eq!(b.len(), 3);
        assert!(!b.append(DATA_ROOM + HEADROOM));
    }

    #[test]
    fn device_rx_tx() {
        let pool = MemPool::new(8);
        let mut d = MemDevice::new(EthernetAddress([2, 0, 0, 0, 0, 1]), pool, 4);
        assert!(d.inject(&[1; 60]));
        let mut burst = Burst::new();
        d.rx_burst(&mut burst);
        assert_eq!(burst.len(), 1);
        d.set_tx_limit(0);
        assert_eq!(d.tx_burst(&mut burst), 0);
        assert_eq!(burst.len(), 1);
        d.set_tx_limit(4);
        assert_eq!(d.tx_burst(&mut burst), 1);
        assert_eq!(d.take_tx(), vec![vec![1u8; 60]]);
    }
}
