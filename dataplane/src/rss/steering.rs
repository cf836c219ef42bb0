//! FullNAT reply steering: which LIP ports make a reply land on a given RX queue.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{hash_ipv6_dport, hash_ipv6_l4, Reta, RssError, RssKey, ToeplitzTable};

/// Chooses lports whose FullNAT reply reaches one RX queue: the reply `RIP:rport →
/// LIP:lport` is hashed as the NIC will hash it (Toeplitz with the port's key, then the RETA),
/// and the lport is accepted if the RETA sends that hash to `queue`. One per worker, built on
/// the control path from the key and RETA of the port the LIPs live on (the RS-facing port).
///
/// The reply hash is linear in its input, so it splits into a part fixed for the connection
/// and a part that depends only on the lport:
/// `hash(RIP, LIP, rport, lport) == hash(RIP, LIP, rport, 0) ^ hash(0, 0, 0, lport)`.
/// [`prepare`](Self::prepare) computes the first once; each candidate lport then costs two
/// table loads, an XOR and a RETA load ([`accepts_prepared`](Self::accepts_prepared)).
/// With a RETA spreading evenly over `q` queues, about one lport in `q` qualifies.
#[derive(Debug, Clone)]
pub struct ReplySteering {
    table: ToeplitzTable,
    reta: Reta,
    queue: u16,
}

/// The lport-independent part of a reply's RSS hash: `hash(RIP, LIP, rport, 0)`, from
/// [`ReplySteering::prepare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialReplyHash(u32);

impl ReplySteering {
    /// Steering of replies to `queue`, for a port with RSS key `key` and redirection table
    /// `reta`. Allocates the key's 12 KiB of tables.
    ///
    /// # Errors
    /// [`RssError::QueueNotInReta`] if no RETA entry names `queue`: no lport would ever do.
    pub fn new(key: &RssKey, reta: Reta, queue: u16) -> Result<ReplySteering, RssError> {
        if !reta.contains(queue) {
            return Err(RssError::QueueNotInReta(queue));
        }
        Ok(ReplySteering {
            table: ToeplitzTable::new(key),
            reta,
            queue,
        })
    }

    /// The RX queue replies are steered to.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The part of the reply hash that does not depend on the lport, to reuse over the
    /// candidate lports of one connection on one LIP.
    #[inline]
    pub fn prepare(&self, rip: Ipv4Addr, rport: u16, lip: Ipv4Addr) -> PartialReplyHash {
        PartialReplyHash(self.table.hash_ipv4_l4(rip, lip, rport, 0))
    }

    /// Whether the reply to `lport`, whose other fields `partial` summarises, reaches the
    /// steered queue.
    #[inline]
    pub fn accepts_prepared(&self, partial: PartialReplyHash, lport: u16) -> bool {
        self.reta.queue(partial.0 ^ self.table.hash_dport(lport)) == self.queue
    }

    /// Whether the reply `rip:rport → lip:lport` reaches the steered queue.
    #[inline]
    pub fn accepts(&self, rip: Ipv4Addr, rport: u16, lip: Ipv4Addr, lport: u16) -> bool {
        self.accepts_prepared(self.prepare(rip, rport, lip), lport)
    }

    /// The RX queue the reply `rip:rport → lip:lport` arrives on.
    #[inline]
    pub fn reply_queue(&self, rip: Ipv4Addr, rport: u16, lip: Ipv4Addr, lport: u16) -> u16 {
        self.reta
            .queue(self.table.hash_ipv4_l4(rip, lip, rport, lport))
    }

    /// The RX queue the IPv6 reply `rip:rport → lip:lport` arrives on.
    #[inline]
    pub fn reply_queue6(&self, rip: Ipv6Addr, rport: u16, lip: Ipv6Addr, lport: u16) -> u16 {
        self.reta
            .queue(hash_ipv6_l4(self.table.key(), rip, lip, rport, lport))
    }

    /// [`selector`](Self::selector) for an IPv6 connection to `rip:rport` (FullNAT66), for
    /// [`crate::lip::LipPool6::alloc_where`]: the reply's 36-byte tuple hashed as the NIC
    /// will, its LIP-dependent part once per LIP, the lport's share (its last word) per
    /// candidate. Table-free: new sessions only.
    pub fn selector6(&self, rip: Ipv6Addr, rport: u16) -> impl FnMut(Ipv6Addr, u16) -> bool + '_ {
        let key = self.table.key();
        let mut last: Option<(Ipv6Addr, u32)> = None;
        move |lip, lport| {
            let partial = match last {
                Some((l, p)) if l == lip => p,
                _ => {
                    let p = hash_ipv6_l4(key, rip, lip, rport, 0);
                    last = Some((lip, p));
                    p
                }
            };
            self.reta.queue(partial ^ hash_ipv6_dport(key, lport)) == self.queue
        }
    }

    /// The predicate for [`crate::lip::LipPool::alloc_where`] on a connection to `rip:rport`: accepts the
    /// (LIP, lport) pairs whose reply reaches the steered queue. It keeps the partial hash of
    /// the last LIP asked about, so a run of candidates on one LIP costs two table loads each.
    pub fn selector(&self, rip: Ipv4Addr, rport: u16) -> impl FnMut(Ipv4Addr, u16) -> bool + '_ {
        let mut last: Option<(Ipv4Addr, PartialReplyHash)> = None;
        move |lip, lport| {
            let partial = match last {
                Some((l, p)) if l == lip => p,
                _ => {
                    let p = self.prepare(rip, rport, lip);
                    last = Some((lip, p));
                    p
                }
            };
            self.accepts_prepared(partial, lport)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    #[test]
    fn reply_steering_follows_the_nic() {
        let key = RssKey::MICROSOFT;
        let reta = Reta::round_robin(128, 4).unwrap();
        // First row of the Microsoft suite, read as a reply RIP:rport → LIP:lport: hash
        // 0x51ccc178, RETA index 0x78 = 120 → queue 0.
        let (rip, lip) = (
            Ipv4Addr::new(66, 9, 149, 187),
            Ipv4Addr::new(161, 142, 100, 80),
        );
        let steer = ReplySteering::new(&key, reta.clone(), 0).unwrap();
        assert_eq!(steer.queue(), 0);
        assert!(steer.accepts(rip, 2794, lip, 1766));
        assert_eq!(steer.reply_queue(rip, 2794, lip, 1766), 0);
        let other = ReplySteering::new(&key, reta.clone(), 1).unwrap();
        assert!(!other.accepts(rip, 2794, lip, 1766));
        assert_eq!(
            ReplySteering::new(&key, reta, 4).unwrap_err(),
            RssError::QueueNotInReta(4)
        );
        // The selector agrees with `accepts` across LIP changes (its one-entry cache).
        let mut sel = steer.selector(rip, 2794);
        for (i, lport) in (1000..1400u16).enumerate() {
            let l = [A, B, A, C][i % 4];
            assert_eq!(sel(l, lport), steer.accepts(rip, 2794, l, lport));
        }
    }
}
