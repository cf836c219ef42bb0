//! Steps 9–10: framing a packet for its next hop, resolving the next hop's MAC (or parking
//! the packet until ARP answers), and the per-port TX buffers.

use super::local::send_arp_request;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::{Counter, Counters};
use crate::device::{Burst, Device};
use crate::drop::DropReason;
use crate::neigh::Park;
use crate::rewrite::{self};
use crate::snapshot::Hop;
use crate::wire::ETHERTYPE_IPV4;

/// A packet waiting for its next hop's MAC: already framed, destination MAC still zero.
#[derive(Debug)]
pub struct Parked<B> {
    pub(super) buf: B,
    pub(super) port: u16,
}

/// The output side of a worker: its port handles and their TX buffers.
pub(super) struct Tx<D: Device> {
    pub(super) ports: Vec<D>,
    pub(super) bufs: Vec<Burst<D::Buf>>,
}

impl<D: Device> Tx<D> {
    #[inline]
    pub(super) fn send(&mut self, port: u16, buf: D::Buf, c: &mut Counters) {
        let p = port as usize;
        if self.bufs[p].is_full() {
            self.flush(p, c);
        }
        c.count(Counter::TxPackets);
        c.add(Counter::TxBytes, buf.len() as u64);
        // After a flush the buffer has room: a device that took nothing had its packets dropped.
        if let Err(e) = self.bufs[p].try_push(buf) {
            drop(e);
            c.count_drop(DropReason::TxFull);
        }
    }

    #[inline]
    pub(super) fn flush(&mut self, p: usize, c: &mut Counters) {
        if self.bufs[p].is_empty() {
            return;
        }
        self.ports[p].tx_burst(&mut self.bufs[p]);
        // What the device did not take is dropped (counted), like a full TX ring.
        let left = self.bufs[p].len() as u64;
        if left > 0 {
            for b in self.bufs[p].drain(..) {
                c.sub(Counter::TxPackets, 1);
                c.sub(Counter::TxBytes, b.len() as u64);
            }
            c.add_drops(DropReason::TxFull, left);
        }
    }

    pub(super) fn flush_all(&mut self, c: &mut Counters) {
        for p in 0..self.bufs.len() {
            self.flush(p, c);
        }
    }
}

impl<D: Device> Worker<D> {
    #[inline]
    pub(super) fn emit(&mut self, buf: D::Buf, l3: usize, gap: usize, hop: Hop) {
        self.emit_with(buf, l3, gap, hop, |_| {})
    }

    /// Frames the packet for `hop` (with `gap` bytes before L3 that `fill` writes), resolves
    /// the next hop's MAC and queues it for TX, or parks it until ARP answers.
    #[inline]
    pub(super) fn emit_with(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        gap: usize,
        hop: Hop,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let iface = self.snap.iface(hop.iface);
        let (port, vlan) = (iface.port, iface.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let at = match rewrite::frame_l2(&mut buf, l3, gap, vlan, mac.0, ETHERTYPE_IPV4) {
            Ok(at) => at,
            Err(r) => return self.drop_pkt(r),
        };
        fill(&mut buf.data_mut()[at..at + gap]);
        if let Some(dmac) = self.neigh.lookup(hop.nexthop) {
            rewrite::set_dst_mac(&mut buf, dmac.0);
            return self.tx.send(port, buf, &mut self.counters);
        }
        match self.neigh.park(hop.nexthop, Parked { buf, port }, self.now) {
            Park::Parked { send_request } => {
                self.counters.count(Counter::Parked);
                if send_request {
                    send_arp_request(&self.snap, &mut self.tx, &mut self.counters, hop.nexthop);
                }
            }
            Park::Rejected(p) => {
                drop(p);
                self.drop_pkt(DropReason::NeighbourUnresolved)
            }
        }
    }

    pub(super) fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }
}
