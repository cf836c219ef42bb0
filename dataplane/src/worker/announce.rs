//! Gratuitous ARP for managed addresses the director takes over.
//!
//! When a snapshot makes a managed VIP or LIP owned (keepalived put it on a kernel interface of
//! the director), worker 0 announces it: [`GARP_COUNT`] gratuitous ARP requests (sender and
//! target the address, RFC 5227's announcement) [`GARP_INTERVAL_MS`] apart from the data port
//! of the interface that holds it, as keepalived's `garp_master_repeat` does for its own
//! interfaces. Adopting the snapshot only schedules them; the slow jobs send them, never the
//! per-packet path. An address released before its announcements are done has the rest
//! cancelled: a standby director just stops answering for it.

use super::Worker;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::local;
use crate::snapshot::Snapshot;
use crate::wire::{ArpOperation, ArpRepr, EthernetAddress};
use core::net::Ipv4Addr;

/// Gratuitous ARPs sent each time an address becomes owned.
pub const GARP_COUNT: u8 = 3;
/// Milliseconds between two of them.
pub const GARP_INTERVAL_MS: u64 = 500;

/// Announcements still to send for one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Announce {
    addr: Ipv4Addr,
    iface: u16,
    left: u8,
    due: u64,
}

impl<D: Device> Worker<D> {
    /// Schedules the announcements `new` calls for over `old` (a snapshot being adopted, or
    /// none at start): every managed address owned in `new` that was not in `old`, or was on
    /// another interface. Cancels those of addresses `new` no longer owns. Worker 0 only.
    pub(super) fn schedule_announcements(&mut self, old: Option<&Snapshot>, new: &Snapshot) {
        if self.cfg.id != 0 {
            return;
        }
        let now = self.now;
        self.announcing.retain(|a| {
            new.managed()
                .iter()
                .any(|m| m.addr == a.addr && m.owned && m.iface == Some(a.iface))
        });
        for m in new.managed().iter().filter(|m| m.owned) {
            let Some(iface) = m.iface else { continue };
            let before = old.and_then(|o| o.managed().iter().find(|o| o.addr == m.addr));
            if before.is_some_and(|b| b.owned && b.iface == m.iface) {
                continue;
            }
            self.announcing.retain(|a| a.addr != m.addr);
            self.announcing.push(Announce {
                addr: m.addr,
                iface,
                left: GARP_COUNT,
                due: now,
            });
        }
    }

    /// Sends the announcements due at `now` (a slow job).
    pub(super) fn announce(&mut self, now: u64) {
        for i in 0..self.announcing.len() {
            let a = self.announcing[i];
            if a.due > now {
                continue;
            }
            self.send_garp(a.iface, a.addr);
            let a = &mut self.announcing[i];
            a.left -= 1;
            a.due = now + GARP_INTERVAL_MS;
        }
        self.announcing.retain(|a| a.left > 0);
    }

    /// One gratuitous ARP request for `addr` out of interface `iface`: broadcast, from the
    /// port's MAC, sender and target address both `addr`, target MAC zero.
    fn send_garp(&mut self, iface: u16, addr: Ipv4Addr) {
        // Jobs are kept in step with the snapshot on adoption; this only guards that.
        let Some(i) = self.snap.ifaces().get(iface as usize) else {
            return;
        };
        let (port, vlan) = (i.port, i.vlan);
        let dev = &mut self.tx.ports[port as usize];
        let mac = dev.mac();
        let Some(mut b) = dev.alloc() else {
            self.counters.count_drop(DropReason::NoBuffer);
            return;
        };
        let garp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: addr,
        };
        if !local::write_arp(&mut b, vlan, mac.0, [0xff; 6], &garp) {
            self.counters.count_drop(DropReason::NoBuffer);
            return;
        }
        self.counters.count(Counter::GratuitousArps);
        self.tx.send(port, b, &mut self.counters);
    }
}
