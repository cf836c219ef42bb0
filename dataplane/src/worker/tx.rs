//! Steps 9–10: framing a packet for its next hop, resolving the next hop's MAC (or parking
//! the packet until ARP or neighbour discovery answers), and the per-port TX buffers.

use super::ipv6::send_neighbour_solicit;
use super::local::send_arp_request;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::{Counter, Counters};
use crate::device::{Burst, Device};
use crate::drop::DropReason;
use crate::neigh::Park;
use crate::parse::IPV6_HEADER_LEN;
use crate::redirect::{Handoff, HandoffKind};
use crate::rewrite;
use crate::snapshot::{Hop, Hop6};
use crate::wire::{Ipv4Header, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_MIN_HEADER_LEN};
use core::net::Ipv6Addr;

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
    /// Queues `buf` for TX on `port`, flushing the port's buffer first when it is full. It
    /// is counted as sent when the flush hands it to the device.
    #[inline(always)]
    pub(super) fn send(&mut self, port: u16, buf: D::Buf, c: &mut Counters) {
        let p = port as usize;
        if self.bufs[p].is_full() {
            self.flush(p, c);
        }
        // After a flush the buffer has room: a device that took nothing had its packets dropped.
        if let Err(e) = self.bufs[p].try_push(buf) {
            drop(e);
            c.count_drop(DropReason::TxFull);
        }
    }

    /// Hands port `p`'s TX buffer to the device: what it took is counted as sent (packets and
    /// bytes, once per burst), what it did not is dropped, counted like a full TX ring.
    #[inline]
    pub(super) fn flush(&mut self, p: usize, c: &mut Counters) {
        if self.bufs[p].is_empty() {
            return;
        }
        let queued = self.bufs[p].len() as u64;
        let mut bytes: u64 = self.bufs[p].iter().map(|b| b.len() as u64).sum();
        self.ports[p].tx_burst(&mut self.bufs[p]);
        let left = self.bufs[p].len() as u64;
        if left > 0 {
            for b in self.bufs[p].drain(..) {
                bytes -= b.len() as u64;
            }
            c.add_drops(DropReason::TxFull, left);
        }
        c.add(Counter::TxPackets, queued - left);
        c.add(Counter::TxBytes, bytes);
    }

    pub(super) fn flush_all(&mut self, c: &mut Counters) {
        for p in 0..self.bufs.len() {
            self.flush(p, c);
        }
    }
}

/// What the per-packet functions decide for a packet the worker keeps; [`Worker::output`]
/// carries it out. A dropped packet is the `Err` of its [`Verdict`] instead, counted once by
/// [`Worker::settle`].
pub(super) enum Emit<B> {
    /// Routed toward `hop`: its L3 packet starts at `l3`; it is framed for the egress
    /// interface (behind `encap`, TUN's outer IPv4 header, when there is one) and sent to the
    /// next hop's MAC, or parked until ARP resolves it.
    Route {
        /// The packet.
        buf: B,
        /// Offset of its L3 header.
        l3: usize,
        /// Where it goes.
        hop: Hop,
        /// An outer header to put in front of it (TUN).
        encap: Option<Ipv4Header>,
    },
    /// An IPv6 packet routed toward `hop`: its L3 packet starts at `l3`; it is framed for the
    /// egress interface and sent to the next hop's MAC, or parked until neighbour discovery
    /// resolves it.
    Route6 {
        /// The packet.
        buf: B,
        /// Offset of its L3 header.
        l3: usize,
        /// Where it goes.
        hop: Hop6,
        /// TUN: the RS to put an outer IPv6 header in front of it for (IPv6-in-IPv6,
        /// RFC 2473), from the director's address toward it.
        tunnel: Option<Ipv6Addr>,
    },
    /// Sent as it is, already framed, out of `port`.
    Port {
        /// The egress port.
        port: u16,
        /// The frame.
        buf: B,
    },
    /// Handed to worker `owner`, which owns the packet's session (received on `port`).
    Handoff {
        /// The worker to hand it to.
        owner: u16,
        /// The port it arrived on.
        port: u16,
        /// The frame.
        buf: B,
    },
    /// Nothing left to do: a peer's copy of an ARP frame, which only fed the neighbour table,
    /// or a packet already sent as several frames (TUN's outer fragments).
    Absorbed,
}

impl<B> Emit<B> {
    /// A packet at `l3` routed toward `hop`, with no encapsulation.
    #[inline]
    pub(super) fn route(buf: B, l3: usize, hop: Hop) -> Emit<B> {
        Emit::Route {
            buf,
            l3,
            hop,
            encap: None,
        }
    }

    /// An IPv6 packet at `l3` routed toward `hop`, with no encapsulation.
    #[inline]
    pub(super) fn route6(buf: B, l3: usize, hop: Hop6) -> Emit<B> {
        Emit::Route6 {
            buf,
            l3,
            hop,
            tunnel: None,
        }
    }
}

/// The outcome of one packet: where it goes, or why it was dropped.
pub(super) type Verdict<B> = Result<Emit<B>, DropReason>;

impl<D: Device> Worker<D> {
    /// Carries out `verdict`, and counts the packet's drop if it was dropped, here or on the
    /// way out: the one place a packet's drop is counted.
    #[inline]
    pub(super) fn settle(&mut self, verdict: Verdict<D::Buf>) {
        if let Err(r) = verdict.and_then(|e| self.output(e)) {
            self.counters.count_drop(r);
        }
    }

    /// Sends, parks or hands over a packet as `emit` says.
    ///
    /// # Errors
    /// [`DropReason::NoHeadroom`] (no room to frame it), [`DropReason::NeighbourUnresolved`]
    /// (its next hop's parking queue is full) or [`DropReason::RedirectFull`] (the owner's ring
    /// is full); the packet is gone then.
    #[inline]
    pub(super) fn output(&mut self, emit: Emit<D::Buf>) -> Result<(), DropReason> {
        match emit {
            Emit::Route {
                buf,
                l3,
                hop,
                encap,
            } => self.route(buf, l3, hop, encap),
            Emit::Route6 {
                buf,
                l3,
                hop,
                tunnel,
            } => self.route6(buf, l3, hop, tunnel),
            Emit::Port { port, buf } => {
                self.tx.send(port, buf, &mut self.counters);
                Ok(())
            }
            Emit::Handoff { owner, port, buf } => self.hand_over(owner, port, buf),
            Emit::Absorbed => Ok(()),
        }
    }

    /// Frames the packet for `hop` (behind `encap`'s header when given), resolves the next
    /// hop's MAC and queues it for TX, or parks it until ARP answers. Always inlined: both
    /// [`Worker::output`] and the fast path call it per packet.
    #[inline(always)]
    pub(super) fn route(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        hop: Hop,
        encap: Option<Ipv4Header>,
    ) -> Result<(), DropReason> {
        let iface = self.snap.iface(hop.iface);
        let (port, vlan) = (iface.port, iface.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let gap = if encap.is_some() {
            IPV4_MIN_HEADER_LEN
        } else {
            0
        };
        let at = rewrite::frame_l2(&mut buf, l3, gap, vlan, mac.0, ETHERTYPE_IPV4)?;
        if let Some(h) = encap {
            if let Ok(out) = (&mut buf.data_mut()[at..at + gap]).try_into() {
                h.emit(out);
            }
        }
        if let Some(dmac) = self.neigh.lookup(hop.nexthop) {
            rewrite::set_dst_mac(&mut buf, dmac.0);
            self.tx.send(port, buf, &mut self.counters);
            return Ok(());
        }
        match self.neigh.park(hop.nexthop, Parked { buf, port }, self.now) {
            Park::Parked { send_request } => {
                self.counters.count(Counter::Parked);
                if send_request {
                    send_arp_request(&self.snap, &mut self.tx, &mut self.counters, hop.nexthop);
                }
                Ok(())
            }
            Park::Rejected(p) => {
                drop(p);
                Err(DropReason::NeighbourUnresolved)
            }
        }
    }

    /// Frames the IPv6 packet for `hop`, resolves the next hop's MAC and queues it for TX, or
    /// parks it until a neighbour advertisement answers. Out of line: inlined beside IPv4's
    /// [`Worker::route`] it would cost IPv4's path its registers; IPv6 packets, the fast
    /// path's ([`Worker::fast6`]) included, pay a call.
    #[inline(never)]
    pub(super) fn route6(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        hop: Hop6,
        tunnel: Option<Ipv6Addr>,
    ) -> Result<(), DropReason> {
        let iface = self.snap.iface(hop.iface);
        let (port, vlan) = (iface.port, iface.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let outer = match tunnel {
            Some(rip) => Some((
                self.snap
                    .source_addr6(hop.iface, rip)
                    .ok_or(DropReason::NoRoute)?,
                rip,
            )),
            None => None,
        };
        let gap = if outer.is_some() { IPV6_HEADER_LEN } else { 0 };
        let at = rewrite::frame_l2(&mut buf, l3, gap, vlan, mac.0, ETHERTYPE_IPV6)?;
        if let Some(addrs) = outer {
            rewrite::write_ip6ip6(&mut buf.data_mut()[at..], addrs);
        }
        if let Some(dmac) = self.neigh6.lookup(hop.nexthop) {
            rewrite::set_dst_mac(&mut buf, dmac.0);
            self.tx.send(port, buf, &mut self.counters);
            return Ok(());
        }
        match self
            .neigh6
            .park(hop.nexthop, Parked { buf, port }, self.now)
        {
            Park::Parked { send_request } => {
                self.counters.count(Counter::Parked);
                if send_request {
                    send_neighbour_solicit(
                        &self.snap,
                        &mut self.tx,
                        &mut self.counters,
                        hop.nexthop,
                    );
                }
                Ok(())
            }
            Park::Rejected(p) => {
                drop(p);
                Err(DropReason::NeighbourUnresolved)
            }
        }
    }

    /// Hands `buf` (received on `port`) to worker `owner`.
    fn hand_over(&mut self, owner: u16, port: u16, buf: D::Buf) -> Result<(), DropReason> {
        let Some(rings) = &self.redirect else {
            return Err(DropReason::RedirectFull);
        };
        let h = Handoff {
            buf,
            port,
            kind: HandoffKind::Owned,
        };
        rings
            .push(self.cfg.id, owner, h)
            .map_err(|_| DropReason::RedirectFull)?;
        self.counters.count(Counter::RedirectedOut);
        Ok(())
    }

    pub(super) fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// The next IPv6 fragment identification of this worker's counter.
    pub(super) fn next_ident6(&mut self) -> u32 {
        self.ident6 = self.ident6.wrapping_add(1);
        self.ident6
    }
}
