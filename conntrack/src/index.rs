//! The key index of a [`crate::Table`]: 64-bit key hashes to 32-bit slab entries, in buckets
//! of one cache line each.
//!
//! # Layout
//!
//! A bucket is sixteen `u32` words, 64-byte aligned: ten entry words (the entry plus one, so
//! that 0 is a free word; used words come first, removal moves the last one into the hole,
//! so a scan stops at the first free word), five words holding the ten entries' 16-bit *tags* (the top bits of
//! the key's hash) and one overflow word, which counts the entries that were placed beyond
//! this bucket because it was full when their probe passed it. The probe starts at the
//! *home* bucket (the hash's low bits) and steps by an odd stride taken from the hash's upper
//! half. A lookup reads the home bucket, compares tags (a false match costs one needless key
//! comparison, about once in 9 000 lookups of a full bucket), and only moves on to the next
//! bucket when the overflow word is not zero.
//!
//! Removal clears the entry's word and decrements the overflow words of the buckets its
//! probe passed, so there are no tombstones: the index never rehashes and never grows. It is
//! sized at construction for its maximum number of keys at a load of at most 3/4 of the
//! entry words, in a power of two of buckets (so 3/8 to 3/4 full when every key is present):
//! 8.5 to 17 bytes per key.
//!
//! # Why not a general hash map
//!
//! A worker looks up a whole RX burst: it hashes every key first and prefetches each
//! [`Index::line`], then each candidate session (the entry of the first tag match,
//! [`Index::candidate`]), and only then looks up for real, so the cache misses of 32 lookups
//! overlap instead of following one another. That needs the address a lookup will read
//! before the lookup, which a general map does not expose. The zeroed word array is
//! allocated by `calloc`, so the kernel maps its pages as they are first touched (and can
//! back them with transparent huge pages, see [`Index::memory`]).

/// Words per bucket (one 64-byte cache line).
const WORDS: usize = 16;
/// Entry words per bucket.
const SLOTS: usize = 10;
/// First of the five words holding the entries' tags, two per word.
const TAGS: usize = 10;
/// The overflow word.
const OVERFLOW: usize = 15;

/// The tag of a hash: its top 16 bits.
#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 48) as u32
}

/// The tag of entry word `i` of a bucket.
#[inline]
fn tag_at(bucket: &[u32], i: usize) -> u32 {
    (bucket[TAGS + i / 2] >> ((i & 1) * 16)) & 0xffff
}

#[inline]
fn set_tag(bucket: &mut [u32], i: usize, tag: u32) {
    let shift = (i & 1) * 16;
    let w = &mut bucket[TAGS + i / 2];
    *w = (*w & !(0xffff << shift)) | (tag << shift);
}

/// The first used word of `bucket` tagged `tag` whose entry satisfies `eq`. Used words come
/// first, so the first free one ends the scan.
#[inline(always)]
fn scan(bucket: &[u32; WORDS], tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
    for i in 0..SLOTS {
        let w = bucket[i];
        if w == 0 {
            break;
        }
        if tag_at(bucket, i) == tag && eq(w - 1) {
            return Some(i);
        }
    }
    None
}

/// Largest entry value an index can hold (`u32::MAX` would wrap to the free word).
pub const MAX_ENTRY: u32 = u32::MAX - 1;

/// Hash → entry index with one cache line per bucket (see the module docs).
pub struct Index {
    words: Vec<u32>,
    /// First word of bucket 0 (the allocation is 8-aligned; buckets are 64-aligned).
    base: usize,
    /// Buckets − 1 (a power of two minus one).
    mask: usize,
    len: usize,
    max_keys: usize,
}

impl Index {
    /// An index for at most `max_keys` entries, allocated now.
    pub fn with_max_keys(max_keys: usize) -> Index {
        let buckets = max_keys
            .saturating_mul(4)
            .div_ceil(SLOTS * 3)
            .max(2)
            .next_power_of_two();
        // One bucket's worth of spare words so that bucket 0 can start on a 64-byte boundary.
        let words = vec![0u32; buckets * WORDS + WORDS - 1];
        let base = words.as_ptr().align_offset(64).min(WORDS - 1);
        Index {
            words,
            base,
            mask: buckets - 1,
            len: 0,
            max_keys,
        }
    }

    /// Number of buckets.
    #[inline]
    pub fn buckets(&self) -> usize {
        self.mask + 1
    }

    /// Entries held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries it was sized for; [`Index::insert`] refuses more.
    #[inline]
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Bytes allocated.
    pub fn allocation_size(&self) -> usize {
        self.words.capacity() * core::mem::size_of::<u32>()
    }

    /// The word array (for advising the kernel about its pages).
    pub fn memory(&self) -> &[u32] {
        &self.words
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// The probe stride of `hash`: odd, so the sequence visits every bucket of the power-of-two
    /// table, and taken from the tag, so keys sharing a home bucket part ways (no primary
    /// clustering as with linear probing).
    #[inline]
    fn stride(hash: u64) -> usize {
        ((hash >> 32) as usize).wrapping_mul(2) | 1
    }

    #[inline]
    fn next(&self, b: usize, stride: usize) -> usize {
        b.wrapping_add(stride) & self.mask
    }

    #[inline]
    fn bucket(&self, b: usize) -> &[u32; WORDS] {
        let at = self.base + b * WORDS;
        self.words[at..at + WORDS]
            .try_into()
            .expect("a bucket is WORDS words")
    }

    #[inline]
    fn bucket_mut(&mut self, b: usize) -> &mut [u32; WORDS] {
        let at = self.base + b * WORDS;
        (&mut self.words[at..at + WORDS])
            .try_into()
            .expect("a bucket is WORDS words")
    }

    /// The cache line a lookup of `hash` reads first (to prefetch).
    #[inline]
    pub fn line(&self, hash: u64) -> &[u32; WORDS] {
        self.bucket(self.home(hash))
    }

    /// The entry of the first tag match in `hash`'s home bucket, if any: almost always the
    /// entry a lookup will return (to prefetch what it points to).
    #[inline(always)]
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        let bucket = self.line(hash);
        scan(bucket, tag_of(hash), |_| true).map(|i| bucket[i] - 1)
    }

    /// The first entry stored under `hash` for which `eq` holds.
    #[inline(always)]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let stride = Self::stride(hash);
        let mut b = self.home(hash);
        // Bounded by the bucket count; the overflow words end it long before.
        for _ in 0..=self.mask {
            let bucket = self.bucket(b);
            if let Some(i) = scan(bucket, tag, &mut eq) {
                return Some(bucket[i] - 1);
            }
            if bucket[OVERFLOW] == 0 {
                return None;
            }
            b = self.next(b, stride);
        }
        None
    }

    /// Stores `entry` under `hash` (the caller knows it is not there yet). Returns false, and
    /// stores nothing, when the index already holds [`Index::max_keys`] entries or `entry`
    /// exceeds [`MAX_ENTRY`].
    pub fn insert(&mut self, hash: u64, entry: u32) -> bool {
        if self.len >= self.max_keys || entry > MAX_ENTRY {
            return false;
        }
        let stride = Self::stride(hash);
        let mut b = self.home(hash);
        // At most 3/4 of the entry words are ever used, so a free one is always found.
        for _ in 0..=self.mask {
            let bucket = self.bucket_mut(b);
            if let Some(i) = bucket[..SLOTS].iter().position(|&w| w == 0) {
                bucket[i] = entry + 1;
                set_tag(bucket, i, tag_of(hash));
                self.len += 1;
                return true;
            }
            bucket[OVERFLOW] += 1;
            b = self.next(b, stride);
        }
        false
    }

    /// Removes `entry` stored under `hash`; returns whether it was there.
    pub fn remove(&mut self, hash: u64, entry: u32) -> bool {
        let Some((b, i, probe)) = self.locate(hash, entry) else {
            return false;
        };
        // The bucket's last used word fills the hole, so that used words stay in front.
        let bucket = self.bucket_mut(b);
        let last = bucket[..SLOTS].iter().rposition(|&w| w != 0).unwrap_or(i);
        bucket[i] = bucket[last];
        let moved = tag_at(bucket, last);
        set_tag(bucket, i, moved);
        bucket[last] = 0;
        set_tag(bucket, last, 0);
        self.len -= 1;
        // The buckets it overflowed past no longer count it.
        let stride = Self::stride(hash);
        let mut c = self.home(hash);
        for _ in 0..probe {
            let o = &mut self.bucket_mut(c)[OVERFLOW];
            *o = o.saturating_sub(1);
            c = self.next(c, stride);
        }
        true
    }

    /// Where `entry` stored under `hash` is: bucket, word and how many buckets its probe read
    /// beyond the home one.
    fn locate(&self, hash: u64, entry: u32) -> Option<(usize, usize, usize)> {
        if entry > MAX_ENTRY {
            return None;
        }
        let tag = tag_of(hash);
        let stride = Self::stride(hash);
        let mut b = self.home(hash);
        for probe in 0..=self.mask {
            let bucket = self.bucket(b);
            if let Some(i) = scan(bucket, tag, |e| e == entry) {
                return Some((b, i, probe));
            }
            if bucket[OVERFLOW] == 0 {
                return None;
            }
            b = self.next(b, stride);
        }
        None
    }

    /// Buckets a lookup of `entry` under `hash` reads beyond the home bucket (`None` if it is
    /// not there).
    pub fn probe_length(&self, hash: u64, entry: u32) -> Option<usize> {
        self.locate(hash, entry).map(|(_, _, probe)| probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Every bucket's used words come before its free ones, and free words have tag 0.
    fn compact(ix: &Index) -> bool {
        (0..ix.buckets()).all(|b| {
            let bucket = ix.bucket(b);
            let used = bucket[..SLOTS].iter().take_while(|&&w| w != 0).count();
            bucket[used..SLOTS].iter().all(|&w| w == 0)
                && (used..SLOTS).all(|i| tag_at(bucket, i) == 0)
        })
    }

    /// A hash whose home bucket is `home`, with tag and stride from `tag`.
    fn h(home: usize, tag: u32) -> u64 {
        (u64::from(tag) << 48) | home as u64
    }

    #[test]
    fn buckets_are_cache_lines() {
        for keys in [0, 1, 10, 1000, 1 << 20] {
            let ix = Index::with_max_keys(keys);
            assert!(ix.buckets().is_power_of_two());
            assert!(keys * 4 <= ix.buckets() * SLOTS * 3, "{keys} keys");
            let line = ix.line(0).as_ptr() as usize;
            assert_eq!(line % 64, 0);
            assert_eq!(ix.line(h(ix.mask, 0)).len(), WORDS);
        }
        // 2^21 keys (2^20 two-key sessions): 2^19 buckets, 32 MiB.
        let ix = Index::with_max_keys(1 << 21);
        assert_eq!(ix.buckets(), 1 << 19);
        assert_eq!(ix.allocation_size(), ((1 << 19) * 16 + 15) * 4);
    }

    #[test]
    fn overflow_chains_and_removal_without_tombstones() {
        let mut ix = Index::with_max_keys(64);
        let n = ix.buckets();
        let home = h(n - 1, 7);
        // Thirteen entries homed in bucket n-1: ten there, three in the next bucket of
        // their probe.
        for e in 0..13 {
            assert!(ix.insert(home, e));
        }
        assert_eq!(ix.bucket(n - 1)[OVERFLOW], 3);
        for e in 0..13 {
            assert_eq!(ix.find(home, |x| x == e), Some(e));
            assert_eq!(ix.probe_length(home, e), Some(usize::from(e >= 10)));
        }
        // The bucket after n-1 in that probe, and a key homed there with the same tag.
        let next = (n - 1 + Index::stride(home)) & ix.mask;
        let there = h(next, 7);
        assert_eq!(
            ix.bucket(next)[..SLOTS].iter().filter(|&&w| w != 0).count(),
            3
        );
        assert!(ix.insert(there, 99));
        assert_eq!(ix.find(there, |x| x == 99), Some(99));
        assert_eq!(ix.probe_length(there, 99), Some(0));
        // Removing an overflowed entry decrements the count it raised.
        assert!(ix.remove(home, 12));
        assert_eq!(ix.bucket(n - 1)[OVERFLOW], 2);
        assert!(!ix.remove(home, 12));
        // A free word in the home bucket is reused before the probe goes on; used words stay
        // in front (the last one moved into the hole).
        assert!(ix.remove(home, 0));
        assert_eq!(
            ix.bucket(n - 1)[0],
            10,
            "entry 9 (stored as 10) moved to word 0"
        );
        assert_eq!(ix.bucket(n - 1)[9], 0);
        assert!(ix.insert(home, 50));
        assert_eq!(ix.probe_length(home, 50), Some(0));
        assert_eq!(ix.bucket(n - 1)[OVERFLOW], 2);
        for e in (1..12).chain([50]) {
            assert!(ix.remove(home, e), "{e}");
        }
        assert_eq!(ix.bucket(n - 1)[OVERFLOW], 0);
        assert_eq!(ix.find(there, |x| x == 99), Some(99));
        assert!(ix.remove(there, 99));
        assert!(ix.is_empty());
        assert!(ix.words.iter().all(|&w| w == 0), "back to all zero");
    }

    #[test]
    fn full_index_refuses_and_entry_limits_hold() {
        let mut ix = Index::with_max_keys(3);
        assert!(ix.insert(1, 0));
        assert!(ix.insert(2, 1));
        assert!(ix.insert(3, 2));
        assert!(!ix.insert(4, 3), "max_keys reached");
        assert_eq!(ix.len(), 3);
        assert!(!ix.insert(5, u32::MAX));
        assert!(!ix.remove(5, u32::MAX));
        assert!(ix.remove(1, 0));
        assert!(ix.insert(9, MAX_ENTRY));
        assert_eq!(ix.find(9, |x| x == MAX_ENTRY), Some(MAX_ENTRY));
    }

    #[test]
    fn tag_mismatch_skips_the_comparison() {
        let mut ix = Index::with_max_keys(16);
        assert!(ix.insert(h(1, 1), 5));
        let mut compared = 0;
        assert_eq!(
            ix.find(h(1, 2), |_| {
                compared += 1;
                true
            }),
            None
        );
        assert_eq!(compared, 0);
        assert_eq!(ix.candidate(h(1, 1)), Some(5));
        assert_eq!(ix.candidate(h(1, 2)), None);
    }

    #[test]
    fn probes_stay_short_at_full_load() {
        // Hashes from splitmix64, as a real keyed hash spreads them; the index at its limit.
        let mut ix = Index::with_max_keys(3 * SLOTS * (1 << 14) / 4);
        let mut x = 1u64;
        let mut hashes = Vec::new();
        for e in 0..ix.max_keys() as u32 {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            assert!(ix.insert(z, e));
            hashes.push(z);
        }
        let mut max = 0;
        let mut sum = 0;
        for (e, &z) in hashes.iter().enumerate() {
            assert_eq!(ix.find(z, |x| x == e as u32), Some(e as u32));
            let d = ix.probe_length(z, e as u32).expect("stored");
            max = max.max(d);
            sum += d;
        }
        let mean = sum as f64 / hashes.len() as f64;
        eprintln!("at 3/4 load: mean extra buckets {mean:.3}, longest probe {max}");
        assert!(mean < 0.1, "mean extra buckets {mean}");
        assert!(max < 10, "longest probe {max}");
    }

    proptest! {
        /// Against a model map, with a tiny index (many collisions, wrap-around, overflow).
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u32..40, 0u64..8), 1..400)) {
            let mut ix = Index::with_max_keys(24);
            let mut model: HashMap<u32, u64> = HashMap::new();
            // Hashes with few distinct homes and tags: entry e hashes to hash_of[e].
            for (op, e, spread) in ops {
                let hash = (spread << 48) | (spread << 32) | (spread.wrapping_mul(e as u64) & 3);
                match op {
                    0 => {
                        if model.contains_key(&e) {
                            continue;
                        }
                        let ok = ix.insert(hash, e);
                        prop_assert_eq!(ok, model.len() < 24);
                        if ok {
                            model.insert(e, hash);
                        }
                    }
                    1 => {
                        let had = model.get(&e).copied();
                        let removed = match had {
                            Some(hh) => ix.remove(hh, e),
                            None => ix.remove(hash, e),
                        };
                        prop_assert_eq!(removed, had.is_some());
                        model.remove(&e);
                    }
                    _ => {}
                }
                prop_assert_eq!(ix.len(), model.len());
                prop_assert!(compact(&ix));
                for (&me, &mh) in &model {
                    prop_assert_eq!(ix.find(mh, |x| x == me), Some(me));
                }
                prop_assert_eq!(ix.find(hash, |x| x == e), model.get(&e).filter(|&&mh| mh == hash).map(|_| e));
            }
        }
    }
}
