//! FullNAT local addresses (LIPs) and their ports: one [`LipPool`] per worker.
//!
//! In FullNAT a client connection `CIP:cport → VIP:vport` leaves the director as
//! `LIP:lport → RIP:rport`, and the RS answers to `LIP:lport`. Every worker owns a disjoint
//! slice of the LIP port range ([`LipPool::worker_range`]), so the `(LIP, lport)` of a reply
//! names the worker that holds the session (DPVS `sa_pool` does the same per lcore).
//!
//! Allocation is round-robin over the LIPs, so connections spread over the source addresses,
//! and within one LIP ports are reused first-in first-out: the port freed longest ago is
//! handed out next. That keeps a port away from its last use as long as possible, so a new
//! connection rarely meets the old one's TIME_WAIT on the RS (RFC 6056 §2.3 discusses the
//! hazard). Both [`LipPool::alloc`] and [`LipPool::free`] are O(1) in the number of ports and
//! never allocate: each LIP has a preallocated ring of its free ports, and an "in use" bitmap
//! lets `free` ignore a port it did not hand out instead of listing it twice. With several
//! LIPs, `alloc` may step over exhausted ones: O(number of LIPs) in the worst case, a handful.
//!
//! With RSS, the reply must also arrive on the RX queue of the worker that owns the session.
//! [`LipPool::alloc_where`] hands out only pairs a predicate accepts, and [`ReplySteering`](crate::rss::ReplySteering)
//! is the predicate that accepts an lport when the NIC will hash the reply `RIP:rport →
//! LIP:lport` to this worker's queue (Toeplitz and RETA computed in software, [`crate::rss`]).
//! A reply that lands elsewhere anyway (IP fragments, a NIC hashing differently) is handed to
//! the worker [`LipPool::worker_of`] names for its lport.
//!
//! Where a rejected port goes matters. Moved to the tail, each run of rejected ports moves
//! whole, and under churn the ring sorts itself into long runs of ports that reply to the same
//! queue: measured (a worker's slice of 1024..=65535, RETA of 128 round-robin over `q` queues,
//! 8 RSes, 1000–2000 connections open, `max_tries = 64 × q`), after ~10^6 allocations a
//! worker examined 9–20 ports per allocation for q = 2, 15–40 for q = 4, and gave up on
//! 0.3–1 % of them. `alloc_where` therefore puts a rejected port at a random place among the
//! newer half of the LIP's free ports (the port there moves to the tail), which keeps the
//! classes mixed: about `q` ports examined per allocation, flat over 2 × 10^6 allocations
//! (2.0 for q = 2, 4.3 for q = 4, where held connections thin out the wanted class), none
//! given up. No port ever moves forward in its ring: the rejected one and the one it
//! displaces both move back.
//! The initial order matters too: the reply's RETA index is linear in the lport bits, and
//! about one RSS key in a hundred ignores the lowest six or more, so ascending ports come in
//! blocks of 64+ that all reply to one queue. Over 500 keys (random, Microsoft's, mlx5's,
//! symmetric `6d5a…`) × 2 × 10^4 allocations, [`LipPool::new_shuffled`] gave up on none for
//! q = 1..=4; [`LipPool::new`] on up to 10^-3 (a few keys, early on).

use core::fmt;
use core::net::Ipv4Addr;
use core::ops::RangeInclusive;

/// Why a LIP pool or a worker's port slice could not be built (control path).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LipError {
    /// No LIPs were given.
    #[error("no local addresses (LIPs) given: FullNAT needs at least one")]
    NoLips,
    /// The port range is empty, contains port 0, has fewer ports than workers, or the worker
    /// index is not below the worker count.
    #[error("bad LIP port range {start}-{end} for {workers} worker(s): {reason}")]
    BadRange {
        /// First port of the range given.
        start: u16,
        /// Last port of the range given.
        end: u16,
        /// Number of workers the range was to be split over (1 for [`LipPool::new`]).
        workers: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same LIP was listed twice.
    #[error("local address {0} is listed twice")]
    DuplicateLip(Ipv4Addr),
}

/// One LIP's place in the pool: its ring of free ports is `ring[index * nports ..][..nports]`.
#[derive(Clone, Copy)]
struct Lip {
    addr: Ipv4Addr,
    /// Ring position of the next port to hand out.
    head: u32,
    /// Free ports in the ring.
    free: u32,
}

/// The (LIP, port) pairs one worker may use as FullNAT source addresses.
pub struct LipPool {
    /// LIPs in the order given (the round-robin order).
    lips: Box<[Lip]>,
    /// LIP address → index into `lips`, sorted by address.
    by_addr: Box<[(u32, u32)]>,
    /// Free-port rings, `nports` slots per LIP.
    ring: Box<[u16]>,
    /// One bit per (LIP, port): set while the port is handed out.
    in_use: Box<[u64]>,
    first_port: u16,
    nports: u32,
    /// LIP to try first on the next `alloc`.
    next: usize,
    available: usize,
    /// Where `alloc_where` puts rejected ports.
    rng: SplitMix64,
}

impl fmt::Debug for LipPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = u32::from(self.first_port) + self.nports - 1;
        f.debug_struct("LipPool")
            .field("lips", &Addrs(&self.lips))
            .field("ports", &(self.first_port..=last as u16))
            .field("available", &self.available)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Seed of the generator placing rejected ports in a pool made by [`LipPool::new`].
const SCATTER_SEED: u64 = 0x6c69_7070_6f6f_6c21;

/// SplitMix64 (Steele, Lea, Flood 2014): a seedable generator for the initial port order of
/// [`LipPool::new_shuffled`] and the place of rejected ports, free of dependencies.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Uniform in `0..n` (multiply-shift; `n` at most 2^16 here, so the bias is below 2^-16).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Debug-prints the LIP addresses as a list.
struct Addrs<'a>(&'a [Lip]);

impl fmt::Debug for Addrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|l| l.addr))
            .finish()
    }
}

fn bad_range(range: &RangeInclusive<u16>, workers: u16, reason: &'static str) -> LipError {
    LipError::BadRange {
        start: *range.start(),
        end: *range.end(),
        workers,
        reason,
    }
}

impl LipPool {
    /// The slice of `range` that worker `worker` of `workers` owns: the range is cut into
    /// `workers` contiguous, disjoint slices of equal size, and the last worker also takes the
    /// remainder. Together the slices cover `range` exactly.
    ///
    /// # Errors
    /// [`LipError::BadRange`] if `range` is empty or contains port 0, if `workers` is 0 or
    /// larger than the number of ports, or if `worker >= workers`.
    pub fn worker_range(
        range: RangeInclusive<u16>,
        workers: u16,
        worker: u16,
    ) -> Result<RangeInclusive<u16>, LipError> {
        if range.is_empty() {
            return Err(bad_range(&range, workers, "the range is empty"));
        }
        if *range.start() == 0 {
            return Err(bad_range(
                &range,
                workers,
                "port 0 is not a usable source port",
            ));
        }
        if workers == 0 {
            return Err(bad_range(&range, workers, "there are no workers"));
        }
        if worker >= workers {
            return Err(bad_range(
                &range,
                workers,
                "the worker index is out of range",
            ));
        }
        let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
        let per = (end - start + 1) / u32::from(workers);
        if per == 0 {
            return Err(bad_range(
                &range,
                workers,
                "it has fewer ports than there are workers",
            ));
        }
        let first = start + per * u32::from(worker);
        let last = if worker + 1 == workers {
            end
        } else {
            first + per - 1
        };
        // Both lie within `range`, so they fit in u16.
        Ok(first as u16..=last as u16)
    }

    /// An exact cover of `range` by (value, mask) blocks of aligned power-of-two size, as a
    /// NIC's flow rules match ports: a port `p` is in the range iff `p & mask == value` for
    /// exactly one block. At most 2 × 16 blocks. Used to steer each worker's LIP-port slice
    /// to its queue with one rte_flow rule per block.
    pub fn port_blocks(range: RangeInclusive<u16>) -> Vec<(u16, u16)> {
        let (mut lo, hi) = (*range.start() as u32, *range.end() as u32);
        let mut out = Vec::new();
        while lo <= hi {
            // The largest aligned block starting at `lo` that stays inside the range.
            let mut size: u32 = if lo == 0 {
                1 << 16
            } else {
                lo & lo.wrapping_neg()
            };
            while lo + size - 1 > hi {
                size >>= 1;
            }
            out.push((lo as u16, (0xffff_u32 & !(size - 1)) as u16));
            lo += size;
        }
        out
    }

    /// Which worker of `workers` owns `port` when `range` is split by
    /// [`worker_range`](Self::worker_range): its inverse. A FullNAT reply that arrived on the
    /// wrong worker (the NIC hashed it differently, or the port has no RSS) is handed to this
    /// one. `None` if `port` is outside `range` or `worker_range` would refuse the split.
    pub fn worker_of(range: RangeInclusive<u16>, workers: u16, port: u16) -> Option<u16> {
        Self::worker_range(range.clone(), workers, 0).ok()?;
        if !range.contains(&port) {
            return None;
        }
        let start = u32::from(*range.start());
        // `worker_range` succeeded: `workers` > 0 and `per` > 0.
        let per = (u32::from(*range.end()) - start + 1) / u32::from(workers);
        let worker = ((u32::from(port) - start) / per).min(u32::from(workers) - 1);
        Some(worker as u16)
    }

    /// A pool handing out every port of `ports` on every LIP of `lips`. All memory is
    /// allocated here (2 bytes and 1 bit per (LIP, port)); nothing allocates afterwards.
    /// Ports are first handed out in ascending order.
    ///
    /// # Errors
    /// [`LipError::NoLips`] if `lips` is empty, [`LipError::DuplicateLip`] if an address is
    /// listed twice, [`LipError::BadRange`] if `ports` is empty or contains port 0.
    pub fn new(lips: &[Ipv4Addr], ports: RangeInclusive<u16>) -> Result<LipPool, LipError> {
        Self::build(lips, ports, None)
    }

    /// Like [`new`](Self::new), but each LIP's ports are first handed out in a pseudo-random
    /// order drawn from `seed` (a different order per LIP) instead of ascending; after that,
    /// reuse is FIFO as always. Unpredictable source ports are what RFC 6056 §3.2 asks of an
    /// ephemeral port selector, and the pool to use with [`alloc_where`](Self::alloc_where)
    /// and [`ReplySteering`](crate::rss::ReplySteering): the reply's RETA index is a linear function of the lport bits,
    /// and for some RSS keys it ignores the lowest few, so in ascending order aligned blocks
    /// of 64 to 1024 consecutive ports all reply to the same queue and a worker meets runs of
    /// rejections longer than any sensible `max_tries` until `alloc_where` has mixed them
    /// (see the module notes).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_shuffled(
        lips: &[Ipv4Addr],
        ports: RangeInclusive<u16>,
        seed: u64,
    ) -> Result<LipPool, LipError> {
        Self::build(lips, ports, Some(seed))
    }

    /// [`new`](Self::new), with the rings shuffled when a seed is given.
    fn build(
        lips: &[Ipv4Addr],
        ports: RangeInclusive<u16>,
        seed: Option<u64>,
    ) -> Result<LipPool, LipError> {
        if lips.is_empty() {
            return Err(LipError::NoLips);
        }
        let ports = Self::worker_range(ports, 1, 0)?;
        let mut by_addr: Vec<(u32, u32)> = lips
            .iter()
            .enumerate()
            .map(|(i, a)| (u32::from(*a), i as u32))
            .collect();
        by_addr.sort_unstable();
        if let Some(w) = by_addr.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LipError::DuplicateLip(Ipv4Addr::from(w[0].0)));
        }
        let first_port = *ports.start();
        let nports = u32::from(*ports.end()) - u32::from(first_port) + 1;
        let mut ring: Box<[u16]> = lips.iter().flat_map(|_| ports.clone()).collect();
        let mut rng = SplitMix64(seed.unwrap_or(SCATTER_SEED));
        if seed.is_some() {
            for lip_ring in ring.chunks_mut(nports as usize) {
                // Fisher–Yates.
                for i in (1..lip_ring.len()).rev() {
                    lip_ring.swap(i, rng.below(i as u32 + 1) as usize);
                }
            }
        }
        let bits = lips.len() * nports as usize;
        Ok(LipPool {
            lips: lips
                .iter()
                .map(|&addr| Lip {
                    addr,
                    head: 0,
                    free: nports,
                })
                .collect(),
            by_addr: by_addr.into_boxed_slice(),
            ring,
            in_use: vec![0u64; bits.div_ceil(64)].into_boxed_slice(),
            first_port,
            nports,
            next: 0,
            available: bits,
            rng,
        })
    }

    /// A free (LIP, port), marked in use until [`free`](Self::free)d. LIPs take turns
    /// (round-robin, skipping exhausted ones); within a LIP the port freed longest ago comes
    /// first. `None` when every LIP is exhausted.
    pub fn alloc(&mut self) -> Option<(Ipv4Addr, u16)> {
        if self.available == 0 {
            return None;
        }
        let n = self.lips.len();
        let mut i = self.next;
        for _ in 0..n {
            if self.lips[i].free > 0 {
                let port = self.pop_head(i);
                return Some(self.hand_out(i, port));
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        None
    }

    /// Like [`alloc`](Self::alloc), but only hands out a (LIP, port) that `pred` accepts: the
    /// FullNAT path passes [`ReplySteering::selector`](crate::rss::ReplySteering::selector) so that the reply of the new connection
    /// arrives on this worker's RX queue.
    ///
    /// LIPs take turns one examined port at a time, starting where `alloc` would; on each LIP
    /// the candidate is the port freed longest ago. A rejected port goes back among the newer
    /// half of that LIP's free ports, at a random place (the port there moves to the tail), so
    /// it stays available (to a later call whose predicate accepts it, or to `alloc`),
    /// [`available`](Self::available) does not change, and runs of rejected ports do not
    /// build up (see the module notes for why not simply the tail). No port moves forward.
    /// At most `max_tries` ports are examined in all, and never more than `available()`:
    /// then `None`, and the caller falls back (another LIP set, or a plain `alloc` and a
    /// hand-over of the reply). `pred` is called once per examined port. O(1) per examined
    /// port, plus stepping over exhausted LIPs; never allocates.
    pub fn alloc_where(
        &mut self,
        mut pred: impl FnMut(Ipv4Addr, u16) -> bool,
        max_tries: usize,
    ) -> Option<(Ipv4Addr, u16)> {
        let n = self.lips.len();
        let mut tries = max_tries;
        // Round `r` examines the head of every LIP with more than `r` free ports. A rejected
        // port goes at least half the free ports back, so a call sees it again only after
        // that many rounds (possible on a nearly exhausted LIP, and bounded by the tries).
        let mut round = 0u32;
        while tries > 0 {
            let mut examined = false;
            let mut i = self.next;
            for _ in 0..n {
                if tries == 0 {
                    return None;
                }
                if self.lips[i].free > round {
                    examined = true;
                    tries -= 1;
                    let port = self.pop_head(i);
                    if pred(self.lips[i].addr, port) {
                        return Some(self.hand_out(i, port));
                    }
                    self.put_back(i, port);
                }
                i = if i + 1 == n { 0 } else { i + 1 };
            }
            if !examined {
                return None;
            }
            round += 1;
        }
        None
    }

    /// Returns `port` on `lip` to the pool, behind every port already free on that LIP.
    /// Returns `false` and changes nothing if the pair is not currently handed out (unknown
    /// LIP, port outside the range, or already free), so a double free never lists a port
    /// twice.
    pub fn free(&mut self, lip: Ipv4Addr, port: u16) -> bool {
        let Some(i) = self.index_of(lip) else {
            return false;
        };
        if port < self.first_port || u32::from(port - self.first_port) >= self.nports {
            return false;
        }
        let bit = self.bit(i, port);
        let mask = 1u64 << (bit % 64);
        if self.in_use[bit / 64] & mask == 0 {
            return false;
        }
        self.in_use[bit / 64] &= !mask;
        self.push_tail(i, port);
        self.available += 1;
        true
    }

    /// The LIPs, in round-robin order.
    pub fn lips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.lips.iter().map(|l| l.addr)
    }

    /// Whether `addr` is one of this pool's LIPs (a packet to it may be a FullNAT reply).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.index_of(addr).is_some()
    }

    /// (LIP, port) pairs free now.
    pub fn available(&self) -> usize {
        self.available
    }

    /// All (LIP, port) pairs of the pool: LIPs × ports.
    pub fn capacity(&self) -> usize {
        self.lips.len() * self.nports as usize
    }

    /// The index in `lips` of `addr` (binary search over the sorted addresses).
    #[inline]
    fn index_of(&self, addr: Ipv4Addr) -> Option<usize> {
        let key = u32::from(addr);
        self.by_addr
            .binary_search_by_key(&key, |&(a, _)| a)
            .ok()
            .map(|k| self.by_addr[k].1 as usize)
    }

    /// Takes the port at the head of LIP `i`'s ring (the one freed longest ago); the LIP must
    /// have a free port.
    #[inline]
    fn pop_head(&mut self, i: usize) -> u16 {
        let l = &mut self.lips[i];
        let port = self.ring[i * self.nports as usize + l.head as usize];
        l.head += 1;
        if l.head == self.nports {
            l.head = 0;
        }
        l.free -= 1;
        port
    }

    /// Puts `port` behind the free ports of LIP `i`'s ring.
    #[inline]
    fn push_tail(&mut self, i: usize, port: u16) {
        let l = &mut self.lips[i];
        let mut tail = l.head + l.free;
        if tail >= self.nports {
            tail -= self.nports;
        }
        self.ring[i * self.nports as usize + tail as usize] = port;
        l.free += 1;
    }

    /// Returns `port`, just taken from LIP `i`'s head and rejected, to a random place among
    /// the newer half of the free ports (`m` of them, offsets `ceil(m/2) ..= m` from the
    /// head, `m` being the tail); the port it displaces goes to the tail.
    #[inline]
    fn put_back(&mut self, i: usize, port: u16) {
        let m = self.lips[i].free;
        let lo = m.div_ceil(2);
        let j = lo + self.rng.below(m - lo + 1);
        if j < m {
            let mut at = self.lips[i].head + j;
            if at >= self.nports {
                at -= self.nports;
            }
            let slot = &mut self.ring[i * self.nports as usize + at as usize];
            let displaced = core::mem::replace(slot, port);
            self.push_tail(i, displaced);
        } else {
            self.push_tail(i, port);
        }
    }

    /// Marks `port` of LIP `i`, just taken from its ring, in use; the next allocation starts
    /// at the LIP after `i`.
    #[inline]
    fn hand_out(&mut self, i: usize, port: u16) -> (Ipv4Addr, u16) {
        let bit = self.bit(i, port);
        self.in_use[bit / 64] |= 1 << (bit % 64);
        self.available -= 1;
        self.next = if i + 1 == self.lips.len() { 0 } else { i + 1 };
        (self.lips[i].addr, port)
    }

    /// The in-use bit of (LIP index `i`, `port`); `port` must lie in the range.
    #[inline]
    fn bit(&self, i: usize, port: u16) -> usize {
        i * self.nports as usize + usize::from(port - self.first_port)
    }
}

#[cfg(test)]
mod steered;
#[cfg(test)]
mod tests;
