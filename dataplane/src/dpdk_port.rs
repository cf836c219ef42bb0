//! DPDK devices for the worker: [`dpdk::Mbuf`] is a [`PacketBuf`], and [`DpdkQueue`] (one
//! RX/TX queue pair of a DPDK port, with the pool it allocates from) is a [`Device`].
//!
//! # Multi-segment frames
//! The data path reads a frame as one slice, and [`PacketBuf::data`] on an mbuf is its
//! *first segment only*: it never pretends a chain is contiguous. A chained mbuf (a frame
//! bigger than one mbuf, e.g. a jumbo frame on a port with scatter RX) reports
//! `is_contiguous() == false`, and the worker drops it first thing, counted as
//! `multi_segment`. With the default data room (2048 B after the headroom) and MTU ≤ 2000, no
//! frame arrives chained. Buffers the worker allocates itself are always one segment.
//!
//! # Threads
//! A `DpdkQueue` is `Send`: build it on the control thread, move it (inside the worker) to
//! the worker thread. That thread should call [`dpdk::register_thread`] once after pinning
//! itself, so its allocations and frees use the pool's per-lcore cache.

use crate::buf::PacketBuf;
use crate::device::{Burst, Device, BURST};
use crate::wire::EthernetAddress;
use dpdk::{DpdkError, Mbuf, Mempool, Port, Queue};

// The worker's burst and the binding's burst are the same ArrayVec type.
const _: () = assert!(BURST == dpdk::BURST);

impl PacketBuf for Mbuf {
    #[inline]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }

    /// The first segment (the whole frame for any mbuf a [`DpdkQueue`] hands out).
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }
    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }
    #[inline]
    fn truncate(&mut self, len: usize) {
        Mbuf::truncate(self, len)
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        Mbuf::append(self, n)
    }
}

/// One worker's queue pair on a DPDK port, with the pool it builds frames from.
#[derive(Debug)]
pub struct DpdkQueue {
    queue: Queue,
    pool: Mempool,
    mac: EthernetAddress,
}

impl DpdkQueue {
    /// A device over `queue`, allocating from `pool`, answering for `mac`.
    pub fn new(queue: Queue, pool: Mempool, mac: EthernetAddress) -> DpdkQueue {
        DpdkQueue { queue, pool, mac }
    }

    /// A device over queue pair `queue` of `port` (configured), with the port's own MAC.
    ///
    /// # Errors
    /// Those of [`Port::queue`]: the queue is not configured or already has an owner.
    pub fn from_port(port: &Port, queue: u16, pool: Mempool) -> Result<DpdkQueue, DpdkError> {
        let q = port.queue(queue)?;
        Ok(DpdkQueue::new(q, pool, EthernetAddress(port.mac())))
    }

    /// The DPDK queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The pool this device allocates from.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }
}

impl Device for DpdkQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) {
        self.queue.rx_burst(out);
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Burst<Mbuf>) -> usize {
        self.queue.tx_burst(pkts)
    }

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }
}

#[cfg(test)]
mod tests {
    use super::DpdkQueue;

    fn assert_send<T: Send>() {}

    #[test]
    fn a_worker_thread_can_own_a_queue() {
        assert_send::<DpdkQueue>();
        assert_send::<crate::worker::Worker<DpdkQueue>>();
    }
}
