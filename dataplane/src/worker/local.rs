//! The director's own traffic: ARP answered and learnt, ARP shared with the other workers
//! and the kernel, and the exception path to the kernel for everything else.

use super::tx::Tx;
use super::tx::{Emit, Verdict};
use super::{PortRole, Worker};
use crate::buf::PacketBuf;
use crate::counters::{Counter, Counters};
use crate::device::Device;
use crate::drop::DropReason;
use crate::local::{self};
use crate::redirect::{Handoff, HandoffKind};
use crate::rewrite::{self};
use crate::snapshot::Snapshot;
use crate::wire::{ArpOperation, ArpRepr, EthernetAddress};
use core::net::Ipv4Addr;

impl<D: Device> Worker<D> {
    /// An ARP frame on interface `iface`: its sender is learnt when it concerns the director
    /// (parked packets waiting for it leave), and a request for one of the director's
    /// addresses is answered in place. `copy`: a peer's copy, for the neighbour table only.
    pub(super) fn arp(
        &mut self,
        iface: u16,
        mut buf: D::Buf,
        src_mac: [u8; 6],
        repr: ArpRepr,
        copy: bool,
    ) -> Verdict<D::Buf> {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        } = repr
        else {
            return Err(DropReason::MalformedArp);
        };
        let for_us = self.snap.answers_arp(iface, tpa);
        // Learn the sender when the ARP concerns us, or refresh an entry we already have.
        if (for_us || self.neigh.contains(spa)) && !spa.is_unspecified() && sha.0[0] & 1 == 0 {
            let tx = &mut self.tx;
            let counters = &mut self.counters;
            self.neigh.learn(spa, sha, self.now, |p, mac| {
                let mut b = p.buf;
                rewrite::set_dst_mac(&mut b, mac.0);
                tx.send(p.port, b, counters);
            });
        }
        if copy {
            // Another worker answered it already; this copy only fed the neighbour table.
            return Ok(Emit::Absorbed);
        }
        if operation != ArpOperation::Request || !for_us {
            return Err(DropReason::ArpNotForUs);
        }
        let i = self.snap.iface(iface);
        let (port, vlan) = (i.port, i.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: tpa,
            target_hardware_addr: sha,
            target_protocol_addr: spa,
        };
        if !local::write_arp(&mut buf, vlan, mac.0, src_mac, &reply) {
            return Err(DropReason::NoBuffer);
        }
        self.counters.count(Counter::ArpReplies);
        Ok(Emit::Port { port, buf })
    }

    /// Shares an ARP frame received on `port` with the other workers and the kernel. The
    /// copies are frames of their own: a copy that cannot be made or sent is counted as a
    /// drop of its own, and the frame itself goes on.
    pub(super) fn share_arp(&mut self, port: u16, buf: &D::Buf) {
        self.share_with_peers(port, buf, Counter::ArpToPeers);
        self.copy_to_kernel(port, buf, Counter::ArpToKernel);
    }

    /// Copies a frame received on `port` to the kernel through the port's exception path,
    /// if it has one, counting the copy in `sent`. The copy is a frame of its own: one that
    /// cannot be made or sent is counted as a drop of its own.
    pub(super) fn copy_to_kernel(&mut self, port: u16, buf: &D::Buf, sent: Counter) {
        if let Some(PortRole::Data { exception: Some(e) }) = self.roles.get(port as usize).copied()
        {
            let copy = Self::copy_buf(&mut self.tx, port, buf).ok_or(DropReason::NoBuffer);
            if copy.is_ok() {
                self.counters.count(sent);
            }
            self.settle(copy.map(|buf| Emit::Port { port: e, buf }));
        }
    }

    /// Copies a frame received on `port` that feeds the neighbour tables (ARP, neighbour
    /// discovery) to every other worker, counting each copy sent in `sent`.
    pub(super) fn share_with_peers(&mut self, port: u16, buf: &D::Buf, sent: Counter) {
        // Taken out while the copies go (and put back): settling a copy needs the worker.
        if let Some(rings) = self.redirect.take() {
            let me = self.cfg.id;
            let mut out_of_buffers = false;
            for peer in (0..self.cfg.workers).filter(|&w| w != me) {
                let Some(copy) = Self::copy_buf(&mut self.tx, port, buf) else {
                    out_of_buffers = true;
                    break;
                };
                let h = Handoff {
                    buf: copy,
                    port,
                    kind: HandoffKind::ArpCopy,
                };
                if rings.push(me, peer, h).is_err() {
                    self.settle(Err(DropReason::RedirectFull));
                } else {
                    self.counters.count(sent);
                }
            }
            self.redirect = Some(rings);
            if out_of_buffers {
                self.settle(Err(DropReason::NoBuffer));
            }
        }
    }

    /// A copy of `src` in a fresh buffer from `port`'s pool.
    pub(super) fn copy_buf(tx: &mut Tx<D>, port: u16, src: &D::Buf) -> Option<D::Buf> {
        let mut b = tx.ports[port as usize].alloc()?;
        if !b.append(src.len()) {
            return None;
        }
        b.data_mut().copy_from_slice(src.data());
        Some(b)
    }

    /// Hands a frame for the director that rvs does not handle to the kernel, through the
    /// exception path of the port it came in on.
    pub(super) fn exception(&mut self, port: u16, buf: D::Buf) -> Verdict<D::Buf> {
        match self.roles.get(port as usize) {
            Some(&PortRole::Data { exception: Some(e) }) => {
                self.counters.count(Counter::Exception);
                Ok(Emit::Port { port: e, buf })
            }
            _ => Err(DropReason::NoExceptionPath),
        }
    }
}

/// Sends an ARP request for `ip` out of the interface its route uses.
pub(super) fn send_arp_request<D: Device>(
    snap: &Snapshot,
    tx: &mut Tx<D>,
    c: &mut Counters,
    ip: Ipv4Addr,
) {
    let Some(hop) = snap.route(ip) else {
        c.count_drop(DropReason::NoRoute);
        return;
    };
    let iface = snap.iface(hop.iface);
    let src = snap.source_addr(hop.iface, hop.nexthop);
    send_built(tx, c, iface.port, Counter::ArpRequests, |b, mac| {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: src,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: hop.nexthop,
        };
        local::write_arp(b, iface.vlan, mac, [0xff; 6], &req)
    });
}

/// Sends a frame the director builds itself out of `port`, counting it in `sent`: `write`
/// fills a fresh buffer from the port's pool, given the port's MAC. A buffer that cannot be
/// had or filled is a counted `no_buffer` drop.
pub(super) fn send_built<D: Device>(
    tx: &mut Tx<D>,
    c: &mut Counters,
    port: u16,
    sent: Counter,
    write: impl FnOnce(&mut D::Buf, [u8; 6]) -> bool,
) {
    let mac = tx.ports[port as usize].mac().0;
    let Some(mut b) = tx.ports[port as usize].alloc() else {
        c.count_drop(DropReason::NoBuffer);
        return;
    };
    if !write(&mut b, mac) {
        c.count_drop(DropReason::NoBuffer);
        return;
    }
    c.count(sent);
    tx.send(port, b, c);
}
