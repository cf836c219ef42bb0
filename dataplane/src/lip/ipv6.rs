//! IPv6 LIPs (FullNAT66): [`LipPool6`] hands out (IPv6 LIP, port) pairs with everything
//! [`LipPool`] does — the worker's slice of the port range, round robin over the LIPs, FIFO
//! reuse, port pools per dest, quarantine — by running a `LipPool` over the LIPs' indices.

use super::{LipError, LipPool, PortReuse, TakeError, Toward};
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;

/// One worker's IPv6 (LIP, port) pairs.
#[derive(Debug)]
pub struct LipPool6 {
    /// The LIPs, in configuration order; the inner pool knows each by its index here.
    lips: Box<[Ipv6Addr]>,
    pool: LipPool,
}

/// The inner pool's name for LIP `i`.
fn token(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(i as u32)
}

/// What the inner pool files a dest under: the RIP folded to 32 bits (the dest's port
/// pool; every session to one dest draws from the same one, which is all it needs).
fn toward(rip: Ipv6Addr, rport: u16, now: u64) -> Toward {
    Toward {
        rip: sched::fold_ipv6(rip),
        rport,
        now,
    }
}

impl LipPool6 {
    /// A pool over `lips` and the worker's slice `ports` of the port range, with `reuse`'s
    /// pools and quarantine.
    ///
    /// # Errors
    /// As [`LipPool::with_reuse`]; a LIP listed twice is [`LipError::DuplicateLip6`].
    pub fn new(
        lips: &[Ipv6Addr],
        ports: RangeInclusive<u16>,
        seed: Option<u64>,
        reuse: PortReuse,
    ) -> Result<LipPool6, LipError> {
        let mut sorted = lips.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(LipError::DuplicateLip6(w[0]));
        }
        let tokens: Vec<Ipv4Addr> = (0..lips.len()).map(token).collect();
        Ok(LipPool6 {
            lips: lips.into(),
            pool: LipPool::with_reuse(&tokens, ports, seed, reuse)?,
        })
    }

    /// A free (LIP, port) for a connection to `rip:rport` at `now` (ms), as
    /// [`LipPool::alloc`] hands one out — the LIP by its index ([`LipPool6::lip`]); `None`
    /// when none is free out of quarantine.
    #[inline]
    pub fn alloc(&mut self, rip: Ipv6Addr, rport: u16, now: u64) -> Option<(u16, u16)> {
        let (t, port) = self.pool.alloc(toward(rip, rport, now))?;
        Some((u32::from(t) as u16, port))
    }

    /// Like [`alloc`](Self::alloc), but only a (LIP, port) that `pred` accepts, as
    /// [`LipPool::alloc_where`] examines them (at most `max_tries`): the FullNAT66 path passes
    /// [`ReplySteering::selector6`](crate::rss::ReplySteering::selector6) so that the reply
    /// arrives on this worker's RX queue.
    pub fn alloc_where(
        &mut self,
        (rip, rport, now): (Ipv6Addr, u16, u64),
        mut pred: impl FnMut(Ipv6Addr, u16) -> bool,
        max_tries: usize,
    ) -> Option<(u16, u16)> {
        let lips = &self.lips;
        let (t, port) = self.pool.alloc_where(
            toward(rip, rport, now),
            |t, port| {
                let i = u32::from(t) as usize;
                lips.get(i).is_some_and(|&lip| pred(lip, port))
            },
            max_tries,
        )?;
        Some((u32::from(t) as u16, port))
    }

    /// LIP `i` (an index [`alloc`](Self::alloc) handed out).
    #[inline]
    pub fn lip(&self, i: u16) -> Option<Ipv6Addr> {
        self.lips.get(usize::from(i)).copied()
    }

    /// The index of LIP `addr` in this pool, if it is one of its LIPs.
    pub fn index_of(&self, addr: Ipv6Addr) -> Option<u16> {
        self.lips
            .iter()
            .position(|&l| l == addr)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Takes the pair (LIP `i`, `port`) for a connection to `rip:rport` at `now`, as
    /// [`LipPool::take`] does (session sync installs a peer's FullNAT66 session).
    ///
    /// # Errors
    /// As [`LipPool::take`]: [`TakeError::Foreign`] for a LIP or port this pool does not
    /// have, [`TakeError::InUse`] for a pair handed out already.
    pub fn take(
        &mut self,
        i: u16,
        port: u16,
        (rip, rport, now): (Ipv6Addr, u16, u64),
    ) -> Result<(), TakeError> {
        if usize::from(i) >= self.lips.len() {
            return Err(TakeError::Foreign);
        }
        self.pool
            .take(token(usize::from(i)), port, toward(rip, rport, now))
    }

    /// Gives the pair (LIP `i`, `port`) back (`quarantine`: a TCP connection's, which the
    /// server may keep in TIME_WAIT); false if it was not handed out.
    pub fn free(
        &mut self,
        i: u16,
        port: u16,
        rip: Ipv6Addr,
        rport: u16,
        now: u64,
        quarantine: bool,
    ) -> bool {
        if usize::from(i) >= self.lips.len() {
            return false;
        }
        let to = toward(rip, rport, now);
        if quarantine {
            self.pool.free(token(usize::from(i)), port, to)
        } else {
            self.pool.free_now(token(usize::from(i)), port, to)
        }
    }

    /// Pairs free now (some may be in quarantine).
    pub fn available(&self) -> usize {
        self.pool.available()
    }

    /// Pairs in all: LIPs × the worker's ports × the dest pools.
    pub fn capacity(&self) -> usize {
        self.pool.capacity()
    }

    /// Each LIP's pairs in use, in quarantine and in all at `now`, in the LIPs' order; a
    /// usage's `addr` is the LIP's index as an IPv4 address (`0.0.0.i`): [`lip`](Self::lip)
    /// gives the address.
    pub fn usage(&mut self, now: u64) -> impl Iterator<Item = super::LipUsage> + '_ {
        self.pool.usage(now)
    }

    /// Bytes allocated (all of it at construction).
    pub fn allocation_size(&self) -> usize {
        self.pool.allocation_size() + self.lips.len() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x11);

    fn lips() -> Vec<Ipv6Addr> {
        (1..=2)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0x10, 1, 0, 0, 0, 0x200 + i))
            .collect()
    }

    #[test]
    fn pairs_come_round_robin_and_quarantine_holds_a_freed_tcp_pair() {
        let reuse = PortReuse {
            pools: 1,
            quarantine_ms: 60_000,
        };
        let mut p = LipPool6::new(&lips(), 2000..=2001, None, reuse).unwrap();
        assert_eq!(p.available(), 4);
        let a = p.alloc(RIP, 80, 0).unwrap();
        let b = p.alloc(RIP, 80, 0).unwrap();
        assert_eq!((a, b), ((0, 2000), (1, 2000)));
        assert_eq!(
            (p.lip(0), p.lip(1), p.lip(2)),
            (Some(lips()[0]), Some(lips()[1]), None)
        );
        let c = p.alloc(RIP, 80, 0).unwrap();
        let d = p.alloc(RIP, 80, 0).unwrap();
        assert_eq!((c.1, d.1), (2001, 2001));
        assert_eq!(p.alloc(RIP, 80, 0), None, "exhausted");
        // A TCP pair waits out its quarantine; a UDP one is free at once.
        assert!(p.free(a.0, a.1, RIP, 80, 1_000, true));
        assert!(p.free(b.0, b.1, RIP, 80, 1_000, false));
        assert!(
            !p.free(b.0, b.1, RIP, 80, 1_000, false),
            "a double free changes nothing"
        );
        assert_eq!(p.alloc(RIP, 80, 2_000), Some(b));
        assert_eq!(
            p.alloc(RIP, 80, 2_000),
            None,
            "the TCP pair is in quarantine"
        );
        assert_eq!(p.alloc(RIP, 80, 61_000), Some(a));
        assert!(!p.free(2, 2000, RIP, 80, 0, false), "no such LIP");
    }

    #[test]
    fn a_lip_listed_twice_is_refused() {
        let l = [lips()[0], lips()[0]];
        let e = LipPool6::new(&l, 2000..=2001, None, PortReuse::default()).unwrap_err();
        assert_eq!(e, LipError::DuplicateLip6(lips()[0]));
    }
}
