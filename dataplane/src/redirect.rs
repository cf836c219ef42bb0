//! Hand-over of packets between workers: one lock-free ring per ordered worker pair.
//!
//! Each worker owns the sessions it created. A packet that reaches another worker's queue
//! (a FullNAT reply whose LIP port belongs to another worker's slice, a NAT-mode packet whose
//! client endpoint is homed elsewhere, a single-queue port) is pushed onto the ring from the
//! receiving worker to the owner, which processes it as if it had received it on the same port.
//! ARP is shared the same way so that every worker's neighbour table learns every answer.
//!
//! The rings are bounded `crossbeam_queue::ArrayQueue`s, allocated up front: pushing and
//! popping never allocate or lock. A full ring is a counted drop, never a wait.

use crossbeam_queue::ArrayQueue;

/// Why a packet travels between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffKind {
    /// The receiver owns the packet's session (or will create it): process it fully.
    Owned,
    /// A copy of an ARP or neighbour discovery frame another worker already handled: only
    /// learn from it.
    ArpCopy,
}

/// A packet on its way to another worker, with the port it arrived on.
#[derive(Debug)]
pub struct Handoff<B> {
    /// The frame.
    pub buf: B,
    /// Index of the port it was received on (the same on every worker).
    pub port: u16,
    /// What the receiver should do with it.
    pub kind: HandoffKind,
}

/// The rings between `workers` workers: ring `from * workers + to` carries `from` → `to`.
#[derive(Debug)]
pub struct RedirectRings<B> {
    workers: usize,
    rings: Vec<ArrayQueue<Handoff<B>>>,
}

impl<B> RedirectRings<B> {
    /// Rings for `workers` workers, each holding up to `depth` packets (at least 1).
    pub fn new(workers: usize, depth: usize) -> RedirectRings<B> {
        let rings = (0..workers * workers)
            .map(|_| ArrayQueue::new(depth.max(1)))
            .collect();
        RedirectRings { workers, rings }
    }

    /// How many workers the rings connect.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Pushes `h` from worker `from` to worker `to`; gives it back if the ring is full.
    #[inline]
    pub fn push(&self, from: u16, to: u16, h: Handoff<B>) -> Result<(), Handoff<B>> {
        match self.ring(from, to) {
            Some(r) => r.push(h),
            None => Err(h),
        }
    }

    /// Takes the oldest packet on the ring from `from` to `to`.
    #[inline]
    pub fn pop(&self, from: u16, to: u16) -> Option<Handoff<B>> {
        self.ring(from, to)?.pop()
    }

    /// Packets waiting on the ring from `from` to `to`.
    pub fn len(&self, from: u16, to: u16) -> usize {
        self.ring(from, to).map_or(0, |r| r.len())
    }

    /// True if no ring holds a packet.
    pub fn is_empty(&self) -> bool {
        self.rings.iter().all(|r| r.is_empty())
    }

    #[inline]
    fn ring(&self, from: u16, to: u16) -> Option<&ArrayQueue<Handoff<B>>> {
        let (from, to) = (from as usize, to as usize);
        if from >= self.workers || to >= self.workers {
            return None;
        }
        self.rings.get(from * self.workers + to)
    }
}

/// The home worker of a client endpoint: where sessions of services with NAT dests live, so
/// that the RS's reply (addressed to the client endpoint) can be sent to the same worker.
#[inline]
pub fn home(addr: core::net::Ipv4Addr, port: u16, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let x = ((u32::from(addr) as u64) << 16) | port as u64;
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (h % workers as u64) as u16
}

/// The home worker of an IPv6 client endpoint ([`home`] of the address folded to 32 bits,
/// as the schedulers fold it).
#[inline]
pub fn home6(addr: core::net::Ipv6Addr, port: u16, workers: u16) -> u16 {
    home(sched::fold_ipv6(addr), port, workers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn rings_are_per_ordered_pair_and_bounded() {
        let r: RedirectRings<u32> = RedirectRings::new(3, 2);
        let h = |v| Handoff {
            buf: v,
            port: 0,
            kind: HandoffKind::Owned,
        };
        assert!(r.push(0, 1, h(1)).is_ok());
        assert!(r.push(0, 1, h(2)).is_ok());
        assert_eq!(r.push(0, 1, h(3)).map_err(|h| h.buf), Err(3));
        assert!(r.pop(1, 0).is_none());
        assert!(r.pop(0, 2).is_none());
        assert_eq!(r.pop(0, 1).map(|h| h.buf), Some(1));
        assert_eq!(r.len(0, 1), 1);
        assert!(r.push(3, 0, h(9)).is_err(), "no such worker");
    }

    #[test]
    fn home_spreads_and_is_stable() {
        let mut counts = [0u32; 4];
        for i in 0..4000u32 {
            let w = home(Ipv4Addr::from(0xc633_6400 + i), 40000 + i as u16, 4);
            assert_eq!(
                w,
                home(Ipv4Addr::from(0xc633_6400 + i), 40000 + i as u16, 4)
            );
            counts[w as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(home(Ipv4Addr::LOCALHOST, 1, 1), 0);
    }
}
