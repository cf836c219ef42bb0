//! The per-worker fragment tables: how later IPv4 and IPv6 fragments follow their datagram's
//! first one.
//!
//! Only a datagram's first fragment (offset 0) carries the ports that name its session; the
//! later ones carry the same (source, destination, protocol, IP identification) and nothing
//! else to go by (RFC 791; IPv6: source, destination and the fragment header's
//! identification, RFC 8200 4.5). The worker looks the first fragment up (or opens its session) like
//! any packet and notes here where it went: the session's flow key, or the worker it was
//! handed to. Later fragments find that note by their (src, dst, proto, ident) and go the same
//! way, rewritten at L3 only. Nothing is reassembled: a fragment leaves as soon as it arrives,
//! and the real server (or the client) reassembles, as behind IPVS.
//!
//! The table is fixed at start: `capacity` entries in buckets of [`WAYS`], allocated once.
//! An entry is freed once the datagram's bytes have all been seen (the last fragment gives its
//! length) or [`FRAGMENT_TIMEOUT_MS`] after its latest fragment; a first fragment that finds
//! its bucket full of live entries is refused (`fragment_table_full`), so a flood of first
//! fragments fills the table to its bound, is counted, and expires on its own. The bucket
//! hash is seeded at random per table (foldhash), so a sender cannot aim a flood at one bucket.
//! It is foldhash's quality variant: the fast one has no final mix, and with some seeds the
//! low bits that pick the bucket left half of a small table's buckets unreachable.
//!
//! Later fragments that arrive before their first fragment are not held: they are dropped as
//! `fragment_unmatched`, like fragments of a datagram the director never saw. Holding them
//! would need buffers per datagram for a case that on the director's links (one hop from the
//! client's router, no reordering paths) is rare; the sender's datagram is lost as if a
//! fragment had been, and UDP protocols retry.

use conntrack::{FlowKey, FlowKey6};
use core::hash::{BuildHasher, Hash};
use core::net::{Ipv4Addr, Ipv6Addr};
use foldhash::quality::SeedableRandomState;
use foldhash::SharedSeed;

/// How long an entry lives after its datagram's latest fragment (Linux's `ipfrag_time` is
/// 30 s for reassembly; fragments of one datagram leave a sender back to back, so a short
/// bound keeps a flood's entries from holding the table).
pub const FRAGMENT_TIMEOUT_MS: u64 = 2_000;

/// Entries per bucket.
pub const WAYS: usize = 8;

/// What identifies the fragments of one datagram (RFC 791: source, destination, protocol,
/// identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// IP identification.
    pub ident: u16,
}

/// What identifies the fragments of one IPv6 datagram (RFC 8200 4.5: source, destination,
/// the fragment header's identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Fragment identification.
    pub ident: u32,
}

/// Where a datagram's first fragment went, so its later fragments go there too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragTarget<F = FlowKey> {
    /// The session of this flow key (in the packet's direction) on this worker.
    Flow(F),
    /// A NAT64 session on this worker, the datagram translated to the other family (RFC 7915
    /// 4.1, 5.1.1). In the IPv6 table: the client's flow key, and the datagram leaves as IPv4
    /// fragments with the identification noted beside it (the worker's, fresh per datagram,
    /// as FullNAT's toward the RS). In the IPv4 table: the RS's flow key to the LIP (its
    /// session under the key IPv4-mapped), and the datagram leaves as IPv6 fragments whose
    /// Fragment Header has the identification noted (the RS's own).
    Nat64(F),
    /// Handed to this worker, which owns the session.
    Worker(u16),
}

/// The IPv6 fragment table: where each datagram went and the identification it leaves with.
pub type FragTable6 = FragTable<FragKey6, (FragTarget<FlowKey6>, u32)>;

#[derive(Clone, Copy)]
struct Entry<K, T> {
    key: K,
    /// Where the datagram goes and the identification it leaves with (FullNAT gives it a
    /// new one).
    target: T,
    /// Milliseconds after which the entry is free.
    deadline: u64,
    /// Payload bytes seen so far (first fragment included).
    seen: u32,
    /// The datagram's payload length, once its last fragment has been seen.
    total: Option<u32>,
}

/// A free slot found for a first fragment by [`FragTable::reserve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(usize);

/// A per-worker fragment table (see the module docs): datagrams by key `K` (IPv4's
/// [`FragKey`] or IPv6's [`FragKey6`]), each noted with a `T` — where it goes and the
/// identification it leaves with.
pub struct FragTable<K = FragKey, T = (FragTarget, u16)> {
    entries: Vec<Option<Entry<K, T>>>,
    buckets: usize,
    hasher: SeedableRandomState,
    in_use: usize,
}

impl<K: Copy + Eq + Hash, T: Copy> FragTable<K, T> {
    /// A table of at least `capacity` entries (rounded up to whole buckets; at least one).
    pub fn new(capacity: usize) -> Self {
        FragTable::with_hasher(capacity, SeedableRandomState::random())
    }

    /// A table whose bucket hash has the fixed `seed`: the same keys meet in the same buckets
    /// every run (reproducible tests and fuzzing; a director's tables are seeded at random).
    pub fn with_seed(capacity: usize, seed: u64) -> Self {
        let hasher = SeedableRandomState::with_seed(seed, SharedSeed::global_fixed());
        FragTable::with_hasher(capacity, hasher)
    }

    fn with_hasher(capacity: usize, hasher: SeedableRandomState) -> Self {
        let buckets = capacity.div_ceil(WAYS).max(1);
        FragTable {
            entries: vec![None; buckets * WAYS],
            buckets,
            hasher,
            in_use: 0,
        }
    }

    /// How many entries the table holds at most.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Live entries (expired ones count until they are reused).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Bytes the table occupies.
    pub fn allocation_size(&self) -> usize {
        self.entries.len() * core::mem::size_of::<Option<Entry<K, T>>>()
    }

    #[inline]
    fn bucket(&self, key: &K) -> core::ops::Range<usize> {
        let b = (self.hasher.hash_one(key) % self.buckets as u64) as usize;
        b * WAYS..(b + 1) * WAYS
    }

    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        self.bucket(key)
            .find(|&i| self.entries[i].is_some_and(|e| e.key == *key))
    }

    /// A slot for `key`'s first fragment: its own entry if it has one (the first fragment
    /// sent again), else a free or expired one of its bucket; `None` when every entry of the
    /// bucket is live. Nothing changes until [`FragTable::fill`].
    #[inline]
    pub fn reserve(&self, key: &K, now: u64) -> Option<Slot> {
        let range = self.bucket(key);
        let mut free = None;
        for i in range {
            match self.entries[i] {
                Some(e) if e.key == *key => return Some(Slot(i)),
                Some(e) if e.deadline > now => {}
                _ => {
                    free.get_or_insert(i);
                }
            }
        }
        free.map(Slot)
    }

    /// Notes in `slot` (from [`FragTable::reserve`] for `key`) that `key`'s datagram goes to
    /// `target` (where, and the identification it leaves with); `payload` is the first
    /// fragment's payload length (IP header excluded; IPv6: its fragmentable part).
    #[inline]
    pub fn fill(&mut self, slot: Slot, key: K, target: T, payload: u32, now: u64) {
        let e = &mut self.entries[slot.0];
        let seen = match e {
            // The first fragment again: what later fragments added still counts.
            Some(old) if old.key == key && old.deadline > now => old.seen.max(payload),
            _ => payload,
        };
        let total = match e {
            Some(old) if old.key == key && old.deadline > now => old.total,
            _ => None,
        };
        if e.is_none() {
            self.in_use += 1;
        }
        *e = Some(Entry {
            key,
            target,
            deadline: now + FRAGMENT_TIMEOUT_MS,
            seen,
            total,
        });
    }

    /// Where a later fragment of `key`'s datagram goes, and the identification it leaves
    /// with: `offset` is its offset in bytes, `payload` its payload length, `last` whether it
    /// is the last (MF clear). The entry is freed once the datagram's bytes add up. `None` if
    /// no live entry has the key.
    #[inline]
    pub fn follow(
        &mut self,
        key: &K,
        offset: u32,
        payload: u32,
        last: bool,
        now: u64,
    ) -> Option<T> {
        let i = self.find(key)?;
        let e = self.entries[i].as_mut()?;
        if e.deadline <= now {
            self.entries[i] = None;
            self.in_use -= 1;
            return None;
        }
        let found = e.target;
        e.seen = e.seen.saturating_add(payload);
        e.deadline = now + FRAGMENT_TIMEOUT_MS;
        if last {
            e.total = Some(offset.saturating_add(payload));
        }
        if e.total.is_some_and(|t| e.seen >= t) {
            self.entries[i] = None;
            self.in_use -= 1;
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::Proto;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(10, 0, 0, 10),
            proto: 17,
            ident,
        }
    }

    fn flow() -> FragTarget {
        FragTarget::Flow(FlowKey::new(
            Proto::Udp,
            Ipv4Addr::new(192, 0, 2, 1),
            4000,
            Ipv4Addr::new(10, 0, 0, 10),
            53,
        ))
    }

    #[test]
    fn later_fragments_follow_and_the_entry_ends_with_the_datagram() {
        let mut t = FragTable::new(64);
        let s = t.reserve(&key(1), 0).unwrap();
        t.fill(s, key(1), (flow(), 1), 1480, 0);
        assert_eq!(t.in_use(), 1);
        assert_eq!(t.follow(&key(1), 1480, 1480, false, 1), Some((flow(), 1)));
        assert_eq!(t.in_use(), 1);
        assert_eq!(t.follow(&key(1), 2960, 1048, true, 2), Some((flow(), 1)));
        assert_eq!(t.in_use(), 0, "all 4008 bytes seen");
        assert_eq!(t.follow(&key(1), 2960, 1048, true, 3), None);
        assert_eq!(t.follow(&key(2), 1480, 8, true, 3), None, "never seen");
    }

    #[test]
    fn the_last_fragment_first_waits_for_the_middle() {
        let mut t: FragTable = FragTable::new(64);
        let s = t.reserve(&key(1), 0).unwrap();
        t.fill(s, key(1), (FragTarget::Worker(1), 1), 1480, 0);
        assert_eq!(
            t.follow(&key(1), 2960, 100, true, 0),
            Some((FragTarget::Worker(1), 1))
        );
        assert_eq!(t.in_use(), 1, "1480 + 100 of 3060 bytes");
        t.follow(&key(1), 1480, 1480, false, 0);
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn entries_expire_and_their_slots_are_reused() {
        let mut t = FragTable::new(8);
        for i in 0..8 {
            let s = t.reserve(&key(i), 0).unwrap();
            t.fill(s, key(i), (flow(), i), 8, 0);
        }
        assert_eq!(t.capacity(), 8);
        assert_eq!(t.reserve(&key(100), 10), None, "bucket full");
        assert!(t.reserve(&key(3), 10).is_some(), "its own entry");
        assert_eq!(t.follow(&key(1), 8, 8, false, FRAGMENT_TIMEOUT_MS), None);
        assert_eq!(t.in_use(), 7, "an expired entry a fragment finds is freed");
        let s = t.reserve(&key(100), FRAGMENT_TIMEOUT_MS).unwrap();
        t.fill(s, key(100), (flow(), 100), 8, FRAGMENT_TIMEOUT_MS);
        assert!(t
            .follow(&key(100), 8, 8, true, FRAGMENT_TIMEOUT_MS)
            .is_some());
    }

    #[test]
    fn ipv6_datagrams_are_told_apart_by_their_32_bit_identification() {
        let src: Ipv6Addr = "2001:db8:99::10".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:2::100".parse().unwrap();
        let k = |ident| FragKey6 { src, dst, ident };
        let flow = FragTarget::Flow(FlowKey6::new(Proto::Udp, src, 4000, dst, 53));
        let mut t = FragTable6::new(64);
        let s = t.reserve(&k(0x1_0007), 0).unwrap();
        t.fill(s, k(0x1_0007), (flow, 9), 1232, 0);
        assert_eq!(t.follow(&k(7), 1232, 8, true, 1), None, "another datagram");
        assert_eq!(t.follow(&k(0x1_0007), 1232, 100, true, 1), Some((flow, 9)));
        assert_eq!(t.in_use(), 0, "1232 + 100 bytes seen");
    }

    #[test]
    fn a_flood_fills_the_table_to_its_bound() {
        let mut t = FragTable::new(4096);
        let mut taken = 0;
        for i in 0..20_000u32 {
            let k = FragKey {
                ident: i as u16,
                src: Ipv4Addr::from(0xc000_0200 + (i >> 16)),
                ..key(0)
            };
            if let Some(s) = t.reserve(&k, 5) {
                t.fill(s, k, (flow(), k.ident), 8, 5);
                taken += 1;
            }
        }
        assert_eq!(taken, 4096);
        assert_eq!(t.in_use(), 4096);
        assert!(t.reserve(&key(60_000), 5 + FRAGMENT_TIMEOUT_MS).is_some());
    }
}
