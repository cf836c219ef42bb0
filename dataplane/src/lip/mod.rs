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
//! **Port pools and quarantine.** A server that closed a connection first keeps its 4-tuple
//! in TIME_WAIT (60 s on Linux); a new SYN from the same `LIP:lport` meets it and is answered
//! with a bare ACK instead of a SYN/ACK, and the client must retransmit. FIFO reuse alone
//! does not prevent that once a LIP's ports come round faster than the servers' TIME_WAIT.
//! So each LIP's ports are kept in [`PortReuse::pools`] independent pools (DPVS's `sa_pool`
//! splits its ports by destination hash the same way): a dest `RIP:rport` always draws from
//! the pool its hash picks, so one lport serves dests of different pools at once, and a pair
//! freed by a connection stays out of its pool for [`PortReuse::quarantine_ms`] — it is never
//! handed out toward the same `RIP:rport` again before the server's TIME_WAIT is over.
//! The reply key `RIP:rport → LIP:lport` stays unique: a dest's pool holds each lport once.
//! Memory: 2 bytes (ring) + 4 bytes (quarantine end) + 1 bit (in use) per
//! (pool, LIP, port), e.g. 16 pools × 1 LIP × 32,256 ports = 3.2 MB per worker
//! ([`LipPool::allocation_size`]).
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

mod ipv6;
pub use ipv6::LipPool6;

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
    /// The same IPv6 LIP was listed twice.
    #[error("local address {0} is listed twice")]
    DuplicateLip6(core::net::Ipv6Addr),
    /// The number of port pools is 0 or over [`PortReuse::MAX_POOLS`].
    #[error("{0} LIP port pools: 1 to 256 are possible")]
    BadPools(u16),
}

/// Why [`LipPool::take`] could not take a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeError {
    /// The LIP is not this pool's, or the port is outside its range.
    Foreign,
    /// The pair is already handed out toward that dest's pool.
    InUse,
}

/// How freed ports come back into use (see the module notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortReuse {
    /// Independent pools of each LIP's ports; a dest `RIP:rport` draws from the pool its hash
    /// picks. `1..=`[`PortReuse::MAX_POOLS`].
    pub pools: u16,
    /// How long a freed (LIP, lport) stays out of its pool, in milliseconds (0: not at all).
    pub quarantine_ms: u64,
}

impl PortReuse {
    /// One pool, no quarantine: a freed port is the last in line, and that is all.
    pub const NONE: PortReuse = PortReuse {
        pools: 1,
        quarantine_ms: 0,
    };
    /// The most pools a LIP's ports may be split into.
    pub const MAX_POOLS: u16 = 256;
}

impl Default for PortReuse {
    /// 16 pools (DPVS's `sa_pool` default), 60 s quarantine (Linux's TIME_WAIT).
    fn default() -> PortReuse {
        PortReuse {
            pools: 16,
            quarantine_ms: 60_000,
        }
    }
}

/// Where a FullNAT connection goes, and when: the dest picks the port pool, `now` (ms) is
/// checked against quarantines and starts the one a freed port enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Toward {
    /// The dest's address.
    pub rip: Ipv4Addr,
    /// The dest's port.
    pub rport: u16,
    /// The worker's clock, in milliseconds.
    pub now: u64,
}

/// One LIP's pressure in one worker's pool: (pool, port) pairs in use, in quarantine, free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LipUsage {
    /// The LIP.
    pub addr: Ipv4Addr,
    /// Pairs held by sessions.
    pub in_use: u64,
    /// Pairs freed less than the quarantine ago (at one-second granularity).
    pub quarantined: u64,
    /// All pairs: pools × ports.
    pub capacity: u64,
}

/// One (pool, LIP) ring of free ports: `ring[r * nports ..][..nports]`, `r = pool × LIPs +
/// LIP index`.
#[derive(Clone, Copy)]
struct Ring {
    /// Ring position of the next port to hand out.
    head: u32,
    /// Free ports in the ring.
    free: u32,
}

/// The (LIP, port) pairs one worker may use as FullNAT source addresses.
pub struct LipPool {
    /// LIPs in the order given (the round-robin order).
    lips: Box<[Ipv4Addr]>,
    /// LIP address → index into `lips`, sorted by address.
    by_addr: Box<[(u32, u32)]>,
    /// One ring per (pool, LIP).
    rings: Box<[Ring]>,
    /// Free-port rings, `nports` slots per (pool, LIP).
    ring: Box<[u16]>,
    /// Per (pool, LIP, port): where a free port sits in its ring (what [`LipPool::take`]
    /// needs to take it in O(1)); meaningless while it is handed out.
    pos: Box<[u16]>,
    /// One bit per (pool, LIP, port): set while the port is handed out.
    in_use: Box<[u64]>,
    /// Per (pool, LIP, port): the second (of the worker's clock) its quarantine ends.
    until: Box<[u32]>,
    /// Pairs in use, per LIP.
    used: Box<[u32]>,
    /// Pairs entering quarantine, per LIP and by the second it ends (a ring of `window`
    /// seconds), for [`LipPool::usage`].
    released: Box<[u32]>,
    window: u32,
    /// The last second whose `released` buckets were cleared.
    released_through: u64,
    first_port: u16,
    nports: u32,
    reuse: PortReuse,
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
            .field("lips", &self.lips)
            .field("ports", &(self.first_port..=last as u16))
            .field("reuse", &self.reuse)
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
        Self::build(lips, ports, None, PortReuse::NONE)
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
        Self::build(lips, ports, Some(seed), PortReuse::NONE)
    }

    /// The pool a worker uses: [`new`](Self::new) or, with a seed,
    /// [`new_shuffled`](Self::new_shuffled), with `reuse`'s pools and quarantine (each
    /// pool's ring in its own order).
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`LipError::BadPools`] if `reuse.pools` is 0 or over
    /// [`PortReuse::MAX_POOLS`].
    pub fn with_reuse(
        lips: &[Ipv4Addr],
        ports: RangeInclusive<u16>,
        seed: Option<u64>,
        reuse: PortReuse,
    ) -> Result<LipPool, LipError> {
        Self::build(lips, ports, seed, reuse)
    }

    /// [`new`](Self::new), with the rings shuffled when a seed is given.
    fn build(
        lips: &[Ipv4Addr],
        ports: RangeInclusive<u16>,
        seed: Option<u64>,
        reuse: PortReuse,
    ) -> Result<LipPool, LipError> {
        if lips.is_empty() {
            return Err(LipError::NoLips);
        }
        if reuse.pools == 0 || reuse.pools > PortReuse::MAX_POOLS {
            return Err(LipError::BadPools(reuse.pools));
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
        let rings = usize::from(reuse.pools) * lips.len();
        let mut ring: Box<[u16]> = (0..rings).flat_map(|_| ports.clone()).collect();
        let mut rng = SplitMix64(seed.unwrap_or(SCATTER_SEED));
        if seed.is_some() {
            for lip_ring in ring.chunks_mut(nports as usize) {
                // Fisher–Yates.
                for i in (1..lip_ring.len()).rev() {
                    lip_ring.swap(i, rng.below(i as u32 + 1) as usize);
                }
            }
        }
        let bits = rings * nports as usize;
        let mut pos = vec![0u16; bits].into_boxed_slice();
        for (r, lip_ring) in ring.chunks(nports as usize).enumerate() {
            for (at, &port) in lip_ring.iter().enumerate() {
                pos[r * nports as usize + usize::from(port - first_port)] = at as u16;
            }
        }
        // Quarantines end within (now, now + quarantine]: that many seconds, plus the one
        // being rounded up into and the current one.
        let window = (reuse.quarantine_ms.div_ceil(1000) + 2).min(u64::from(u32::MAX)) as u32;
        Ok(LipPool {
            lips: lips.into(),
            by_addr: by_addr.into_boxed_slice(),
            rings: vec![
                Ring {
                    head: 0,
                    free: nports
                };
                rings
            ]
            .into_boxed_slice(),
            ring,
            pos,
            in_use: vec![0u64; bits.div_ceil(64)].into_boxed_slice(),
            until: if reuse.quarantine_ms > 0 {
                vec![0u32; bits].into_boxed_slice()
            } else {
                Box::default()
            },
            used: vec![0u32; lips.len()].into_boxed_slice(),
            released: if reuse.quarantine_ms > 0 {
                vec![0u32; lips.len() * window as usize].into_boxed_slice()
            } else {
                Box::default()
            },
            window,
            released_through: 0,
            first_port,
            nports,
            reuse,
            next: 0,
            available: bits,
            rng,
        })
    }

    /// The pool of dest `rip:rport`: a hash of both, so every session to one dest draws
    /// from the same pool (its reply keys stay unique) and dests spread over the pools.
    #[inline]
    fn pool_of(&self, rip: Ipv4Addr, rport: u16) -> usize {
        // Fibonacci hashing of address and port, then the high bits scaled to the pools.
        let z = (u64::from(u32::from(rip)) << 16 | u64::from(rport))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (((z >> 32) * u64::from(self.reuse.pools)) >> 32) as usize
    }

    /// The ring of (pool `pool`, LIP `i`).
    #[inline]
    fn ring_of(&self, pool: usize, i: usize) -> usize {
        pool * self.lips.len() + i
    }

    /// Whether `port`, at the head of ring `r`, is out of quarantine at `now` (ms).
    #[inline]
    fn cooled(&self, r: usize, port: u16, now: u64) -> bool {
        self.until.is_empty() || now / 1000 >= u64::from(self.until[self.bit(r, port)])
    }

    /// A free (LIP, port) from the pool of the dest `to` names, marked in use until
    /// [`free`](Self::free)d. LIPs take turns (round-robin, skipping exhausted ones); within
    /// a LIP the port freed longest ago comes first, if its quarantine is over (the ports
    /// behind it were freed later). `None` when every LIP of that pool is exhausted or in
    /// quarantine.
    #[inline]
    pub fn alloc(&mut self, to: Toward) -> Option<(Ipv4Addr, u16)> {
        if self.available == 0 {
            return None;
        }
        let n = self.lips.len();
        let base = self.pool_of(to.rip, to.rport) * n;
        let mut i = self.next;
        for _ in 0..n {
            let r = base + i;
            if self.rings[r].free > 0 && self.cooled(r, self.head_port(r), to.now) {
                let port = self.pop_head(r);
                return Some(self.hand_out(r, i, port));
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
        to: Toward,
        mut pred: impl FnMut(Ipv4Addr, u16) -> bool,
        max_tries: usize,
    ) -> Option<(Ipv4Addr, u16)> {
        let pool = self.pool_of(to.rip, to.rport);
        let n = self.lips.len();
        let mut tries = max_tries;
        // Round `r` examines the head of every LIP with more than `r` free ports. A rejected
        // port goes at least half the free ports back, so a call sees it again only after
        // that many rounds (possible on a nearly exhausted LIP, and bounded by the tries).
        // A LIP whose head is in quarantine is passed over (what is behind it was freed
        // later), without costing a try.
        let mut round = 0u32;
        while tries > 0 {
            let mut examined = false;
            let mut i = self.next;
            for _ in 0..n {
                if tries == 0 {
                    return None;
                }
                let r = self.ring_of(pool, i);
                if self.rings[r].free > round && self.cooled(r, self.head_port(r), to.now) {
                    examined = true;
                    tries -= 1;
                    let port = self.pop_head(r);
                    if pred(self.lips[i], port) {
                        return Some(self.hand_out(r, i, port));
                    }
                    self.put_back(r, port);
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

    /// Returns `port` on `lip`, handed out for a connection to `to`'s dest, to its pool,
    /// behind every port already free there, in quarantine until `to.now` + the quarantine.
    /// Returns `false` and changes nothing if the pair is not currently handed out (unknown
    /// LIP, port outside the range, or already free), so a double free never lists a port
    /// twice.
    pub fn free(&mut self, lip: Ipv4Addr, port: u16, to: Toward) -> bool {
        self.give_back(lip, port, to, true)
    }

    /// Like [`free`](Self::free), without quarantine: for a pair that never reached the wire
    /// (its session could not be stored), or whose protocol leaves nothing behind on the
    /// server (UDP, ICMP: no TIME_WAIT).
    pub fn free_now(&mut self, lip: Ipv4Addr, port: u16, to: Toward) -> bool {
        self.give_back(lip, port, to, false)
    }

    /// Takes the given pair for a connection to `to`'s dest, as if [`alloc`](Self::alloc) had
    /// handed it out: a session a peer director opened with it is installed here (session
    /// sync), and this pool must not hand the pair out again while the session lives. A pair
    /// in quarantine is taken all the same (the peer's connection already uses it; its
    /// quarantine stays counted in [`usage`](Self::usage) until it would have ended). O(1):
    /// the pair's place in its ring is kept for this. The round-robin position does not move.
    ///
    /// # Errors
    /// [`TakeError::Foreign`] for a LIP or port this pool does not have, [`TakeError::InUse`]
    /// if the pair is already handed out toward that dest's pool; nothing changes then.
    pub fn take(&mut self, lip: Ipv4Addr, port: u16, to: Toward) -> Result<(), TakeError> {
        let i = self.index_of(lip).ok_or(TakeError::Foreign)?;
        if port < self.first_port || u32::from(port - self.first_port) >= self.nports {
            return Err(TakeError::Foreign);
        }
        let r = self.ring_of(self.pool_of(to.rip, to.rport), i);
        let bit = self.bit(r, port);
        if self.in_use[bit / 64] & (1 << (bit % 64)) != 0 {
            return Err(TakeError::InUse);
        }
        // A free pair sits in its ring: swap it to the head, then take the head.
        let base = r * self.nports as usize;
        let head = self.rings[r].head as usize;
        let at = usize::from(self.pos[bit]);
        if at != head {
            let moved = self.ring[base + head];
            self.ring.swap(base + head, base + at);
            let moved_bit = self.bit(r, moved);
            self.pos[moved_bit] = at as u16;
        }
        let got = self.pop_head(r);
        debug_assert_eq!(got, port);
        self.in_use[bit / 64] |= 1 << (bit % 64);
        self.used[i] += 1;
        self.available -= 1;
        Ok(())
    }

    fn give_back(&mut self, lip: Ipv4Addr, port: u16, to: Toward, quarantine: bool) -> bool {
        let Some(i) = self.index_of(lip) else {
            return false;
        };
        if port < self.first_port || u32::from(port - self.first_port) >= self.nports {
            return false;
        }
        let r = self.ring_of(self.pool_of(to.rip, to.rport), i);
        let bit = self.bit(r, port);
        let mask = 1u64 << (bit % 64);
        if self.in_use[bit / 64] & mask == 0 {
            return false;
        }
        self.in_use[bit / 64] &= !mask;
        if !self.until.is_empty() {
            let until = if quarantine {
                (to.now + self.reuse.quarantine_ms).div_ceil(1000)
            } else {
                0
            };
            self.until[bit] = until.min(u64::from(u32::MAX)) as u32;
            self.advance_released(to.now / 1000);
            if quarantine && until > self.released_through {
                let w = self.window as usize;
                self.released[i * w + (until % u64::from(self.window)) as usize] += 1;
            }
        }
        self.push_tail(r, port);
        self.used[i] -= 1;
        self.available += 1;
        true
    }

    /// Clears the `released` buckets of the seconds up to `now_s`, whose quarantines are
    /// over.
    fn advance_released(&mut self, now_s: u64) {
        if self.released.is_empty() || now_s <= self.released_through {
            return;
        }
        let w = u64::from(self.window);
        let from = self.released_through.max(now_s.saturating_sub(w)) + 1;
        for sec in from..=now_s {
            let b = (sec % w) as usize;
            for lip in self.released.chunks_mut(w as usize) {
                lip[b] = 0;
            }
        }
        self.released_through = now_s;
    }

    /// Each LIP's pairs in use, in quarantine and in all, at `now` (ms; the slow jobs).
    pub fn usage(&mut self, now: u64) -> impl Iterator<Item = LipUsage> + '_ {
        self.advance_released(now / 1000);
        let this = &*self;
        let w = this.window as usize;
        let capacity = u64::from(this.reuse.pools) * u64::from(this.nports);
        this.lips
            .iter()
            .enumerate()
            .map(move |(i, &addr)| LipUsage {
                addr,
                in_use: u64::from(this.used[i]),
                quarantined: this
                    .released
                    .get(i * w..(i + 1) * w)
                    .map_or(0, |b| b.iter().map(|&n| u64::from(n)).sum()),
                capacity,
            })
    }

    /// How freed ports come back into use.
    pub fn reuse(&self) -> PortReuse {
        self.reuse
    }

    /// Bytes allocated by the pool (rings, quarantine ends, in-use bits, counts).
    pub fn allocation_size(&self) -> usize {
        self.ring.len() * 2
            + self.pos.len() * 2
            + self.until.len() * 4
            + self.in_use.len() * 8
            + self.released.len() * 4
            + self.rings.len() * core::mem::size_of::<Ring>()
            + self.used.len() * 4
            + self.lips.len() * 4
            + self.by_addr.len() * 8
    }

    /// The LIPs, in round-robin order.
    pub fn lips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.lips.iter().copied()
    }

    /// Whether `addr` is one of this pool's LIPs (a packet to it may be a FullNAT reply).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.index_of(addr).is_some()
    }

    /// (pool, LIP, port) not in use now (free or in quarantine).
    pub fn available(&self) -> usize {
        self.available
    }

    /// All (pool, LIP, port) of the pool: pools × LIPs × ports.
    pub fn capacity(&self) -> usize {
        self.rings.len() * self.nports as usize
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

    /// The port at the head of ring `r` (the one freed longest ago); the ring must have a
    /// free port.
    #[inline]
    fn head_port(&self, r: usize) -> u16 {
        self.ring[r * self.nports as usize + self.rings[r].head as usize]
    }

    /// Takes the port at the head of ring `r`; the ring must have a free port.
    #[inline]
    fn pop_head(&mut self, r: usize) -> u16 {
        let port = self.head_port(r);
        let l = &mut self.rings[r];
        l.head += 1;
        if l.head == self.nports {
            l.head = 0;
        }
        l.free -= 1;
        port
    }

    /// Puts `port` behind the free ports of ring `r`.
    #[inline]
    fn push_tail(&mut self, r: usize, port: u16) {
        let l = &mut self.rings[r];
        let mut tail = l.head + l.free;
        if tail >= self.nports {
            tail -= self.nports;
        }
        self.ring[r * self.nports as usize + tail as usize] = port;
        l.free += 1;
        let bit = self.bit(r, port);
        self.pos[bit] = tail as u16;
    }

    /// Returns `port`, just taken from ring `r`'s head and rejected, to a random place among
    /// the newer half of the free ports (`m` of them, offsets `ceil(m/2) ..= m` from the
    /// head, `m` being the tail); the port it displaces goes to the tail.
    #[inline]
    fn put_back(&mut self, r: usize, port: u16) {
        let m = self.rings[r].free;
        let lo = m.div_ceil(2);
        let j = lo + self.rng.below(m - lo + 1);
        if j < m {
            let mut at = self.rings[r].head + j;
            if at >= self.nports {
                at -= self.nports;
            }
            let slot = &mut self.ring[r * self.nports as usize + at as usize];
            let displaced = core::mem::replace(slot, port);
            let bit = self.bit(r, port);
            self.pos[bit] = at as u16;
            self.push_tail(r, displaced);
        } else {
            self.push_tail(r, port);
        }
    }

    /// Marks `port` of ring `r` (LIP `i`), just taken from it, in use; the next allocation
    /// starts at the LIP after `i`.
    #[inline]
    fn hand_out(&mut self, r: usize, i: usize, port: u16) -> (Ipv4Addr, u16) {
        let bit = self.bit(r, port);
        self.in_use[bit / 64] |= 1 << (bit % 64);
        self.used[i] += 1;
        self.available -= 1;
        self.next = if i + 1 == self.lips.len() { 0 } else { i + 1 };
        (self.lips[i], port)
    }

    /// The index of (ring `r`, `port`) in the in-use bits and quarantine ends; `port` must
    /// lie in the range.
    #[inline]
    fn bit(&self, r: usize, port: u16) -> usize {
        r * self.nports as usize + usize::from(port - self.first_port)
    }
}

#[cfg(test)]
mod quarantine;
#[cfg(test)]
mod steered;
#[cfg(test)]
mod take;
#[cfg(test)]
mod tests;
