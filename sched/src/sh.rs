//! Source-hashing scheduling, after Linux IPVS (`net/netfilter/ipvs/ip_vs_sh.c`).
//!
//! A table of [`SH_TABLE_SIZE`] = 256 buckets (IPVS's default `CONFIG_IP_VS_SH_TAB_BITS` of 8)
//! maps a hash of the CIP to a dest, so that a client keeps going to the same dest while the
//! dests do not change:
//! - **filling** (`ip_vs_sh_reassign`): the dests are walked in order, round and round, and
//!   each fills `weight` consecutive buckets before the walk moves on. Weights {2, 1} give
//!   `A A B A A B ... A`. The table depends on the order of the dests, and weights are only
//!   followed while their sum is small beside 256: a dest whose weight is 256 or more fills
//!   the whole table if it comes first.
//! - **hash** (`ip_vs_sh_hashkey`): the CIP as a big-endian number, times 2654435761 (Knuth's
//!   multiplicative constant), modulo 256. Only the low byte of a product depends only on the
//!   low bytes of its factors, so the bucket is chosen by the CIP's last octet alone: the 256
//!   possible last octets hit the 256 buckets once each.
//! - **pick** (`ip_vs_sh_schedule`): the bucket's dest if it can take the session, else None.
//!   As in IPVS without the `sh-fallback` flag, there is no second choice.
//!
//! One deviation, as the design asks: dests with weight 0 are left out of the table. IPVS
//! gives such a dest one bucket (its fill step moves on once a dest has filled at least its
//! weight) and then refuses the sources that hash there, so 1/256 of the clients would find no
//! dest while others can take them. Here pick returns None only when no dest has a weight, or
//! when the dests changed without an [`update`](Scheduler::update) and the bucket's dest is now
//! gone or quiesced. The table is filled in the service's order, newest dest first, as IPVS
//! walks its list. IPVS's `sh-port` flag (hashing the source port too) and overload flag have
//! no counterpart: rvs hashes the CIP only and has no connection thresholds.

use core::fmt;
use core::net::Ipv4Addr;

use crate::dest::Dest;
use crate::scheduler::{DestLoad, FlowHint, Scheduler};

/// The number of buckets: 256, as IPVS's default `CONFIG_IP_VS_SH_TAB_BITS` of 8.
pub const SH_TABLE_SIZE: usize = 256;

/// A bucket with no dest (no dest has a weight, or the dest index does not fit).
const EMPTY: u16 = u16::MAX;

/// Source-hashing scheduler for one service on one worker: the bucket table.
///
/// Buckets hold dest indices as `u16`, so a dest at index 65535 or beyond is never in the
/// table; the table only reaches the dests that fit in its 256 buckets anyway.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceHashing {
    /// The index of the dest of each bucket, or [`EMPTY`].
    buckets: Box<[u16; SH_TABLE_SIZE]>,
}

impl SourceHashing {
    /// A source-hashing scheduler with its table filled from `dests`.
    pub fn new(dests: &[Dest]) -> SourceHashing {
        let mut s = SourceHashing {
            buckets: Box::new([EMPTY; SH_TABLE_SIZE]),
        };
        s.update(dests);
        s
    }

    /// The bucket of a CIP: `(cip * 2654435761) mod 256`, IPVS's `ip_vs_sh_hashkey`.
    #[inline]
    pub fn bucket(cip: Ipv4Addr) -> usize {
        usize::from(u32::from(cip).wrapping_mul(2_654_435_761).to_le_bytes()[0])
    }

    /// The index of the dest that bucket `b` sends to, as of the last update; None for an
    /// empty bucket or one past the table.
    pub fn dest_of_bucket(&self, b: usize) -> Option<usize> {
        self.buckets
            .get(b)
            .filter(|&&i| i != EMPTY)
            .map(|&i| usize::from(i))
    }
}

impl fmt::Debug for SourceHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filled = self.buckets.iter().filter(|&&i| i != EMPTY).count();
        f.debug_struct("SourceHashing")
            .field("filled_buckets", &filled)
            .finish_non_exhaustive()
    }
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    /// Refills the table: dests in order, round and round, `weight` buckets each; dests with
    /// weight 0 (or at an index that does not fit in `u16`) are left out.
    fn update(&mut self, dests: &[Dest]) {
        let mut live = dests
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match u16::try_from(i) {
                Ok(i) if i != EMPTY && d.weight > 0 => Some((i, d.weight)),
                _ => None,
            })
            .cycle();
        let mut current = live.next();
        let mut filled = 0u32;
        for b in self.buckets.iter_mut() {
            let Some((i, weight)) = current else {
                *b = EMPTY;
                continue;
            };
            *b = i;
            filled += 1;
            if filled >= weight {
                current = live.next();
                filled = 0;
            }
        }
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], hint: &FlowHint, _load: &[DestLoad]) -> Option<usize> {
        let i = self.dest_of_bucket(SourceHashing::bucket(hint.src))?;
        dests.get(i).filter(|d| d.weight > 0).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::dests;
    use proptest::prelude::*;

    /// The hint of a client at `a.b.c.d`.
    fn from(a: u8, b: u8, c: u8, d: u8) -> FlowHint {
        FlowHint {
            src: Ipv4Addr::new(a, b, c, d),
            sport: 40000,
        }
    }

    /// The dest of each bucket of a table over `weights`, as letters (A is dests[0]).
    fn letters(weights: &[u32]) -> String {
        let sh = SourceHashing::new(&dests(weights));
        (0..SH_TABLE_SIZE)
            .map(|b| match sh.dest_of_bucket(b) {
                Some(i) => char::from(b'A' + u8::try_from(i).unwrap_or(25)),
                None => '-',
            })
            .collect()
    }

    #[test]
    fn buckets_are_ipvs_hashkey() {
        // 1 * 2654435761 = 0x9E3779B1: low byte 0xB1 = 177.
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(0, 0, 0, 1)), 177);
        // Only the last octet counts.
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(192, 168, 7, 1)), 177);
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(10, 0, 0, 2)), 98); // 354 mod 256
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(10, 0, 0, 3)), 19); // 531 mod 256
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(10, 0, 0, 255)), 79); // 45135 mod 256
        assert_eq!(SourceHashing::bucket(Ipv4Addr::new(10, 9, 8, 0)), 0);
        // The 256 last octets hit the 256 buckets once each.
        let mut seen = [false; SH_TABLE_SIZE];
        for d in 0..=255 {
            seen[SourceHashing::bucket(Ipv4Addr::new(203, 0, 113, d))] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn the_table_is_filled_by_weight_in_order() {
        assert_eq!(letters(&[1, 1, 1]), "ABC".repeat(85) + "A");
        assert_eq!(letters(&[2, 1]), "AAB".repeat(85) + "A");
        assert_eq!(letters(&[1, 0, 3]), "ACCC".repeat(64));
        // A weight of 256 or more takes every bucket when it comes first (as in IPVS).
        assert_eq!(letters(&[300, 1]), "A".repeat(256));
        assert_eq!(letters(&[200, 200]), "A".repeat(200) + &"B".repeat(56));
        assert_eq!(letters(&[0, 0]), "-".repeat(256));
        assert_eq!(letters(&[]), "-".repeat(256));
    }

    #[test]
    fn picks_by_the_clients_bucket() {
        let d = dests(&[1, 1, 1]);
        let mut sh = SourceHashing::new(&d);
        // Buckets 177, 98, 19: dests 177 % 3 = 0, 98 % 3 = 2, 19 % 3 = 1.
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 1), &[]), Some(0));
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 2), &[]), Some(2));
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 3), &[]), Some(1));
        // The source port and the load play no part.
        let other_port = FlowHint {
            sport: 1,
            ..from(10, 0, 0, 2)
        };
        let load = crate::testing::loads(&[(100, 0), (100, 0), (100, 0)]);
        assert_eq!(sh.pick(&d, &other_port, &load), Some(2));
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let d = dests(&[1, 0, 1]);
        let mut sh = SourceHashing::new(&d);
        // Buckets alternate A C: bucket 177 (odd) is C, bucket 98 (even) is A.
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 1), &[]), Some(2));
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 2), &[]), Some(0));
        for last in 0..=255 {
            assert_ne!(sh.pick(&d, &from(10, 0, 0, last), &[]), Some(1));
        }
    }

    #[test]
    fn none_when_no_dest_can_take_a_session() {
        let mut sh = SourceHashing::new(&[]);
        assert_eq!(sh.pick(&[], &from(10, 0, 0, 1), &[]), None);
        let zero = dests(&[0, 0]);
        let mut sh = SourceHashing::new(&zero);
        assert_eq!(sh.pick(&zero, &from(10, 0, 0, 1), &[]), None);
    }

    #[test]
    fn none_without_fallback_when_the_hashed_dest_is_unavailable() {
        let mut d = dests(&[1, 1, 1]);
        let mut sh = SourceHashing::new(&d);
        // Quiesced without an update: the client of dests[2] gets no dest (IPVS: no
        // fallback), the others keep theirs.
        d[2].weight = 0;
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 2), &[]), None);
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 1), &[]), Some(0));
        // Removed without an update: out of range, no dest.
        assert_eq!(sh.pick(&d[..2], &from(10, 0, 0, 2), &[]), None);
        // After the update the table no longer has dests[2].
        sh.update(&d);
        assert_eq!(sh.pick(&d, &from(10, 0, 0, 2), &[]), Some(0)); // bucket 98, "AB": A
    }

    #[test]
    fn debug_is_short() {
        let sh = SourceHashing::new(&dests(&[1]));
        assert_eq!(
            format!("{sh:?}"),
            "SourceHashing { filled_buckets: 256, .. }"
        );
    }

    proptest! {
        /// The same CIP maps to the same dest, pick after pick, from any port, and from a
        /// scheduler built separately over the same dests; there is a pick iff some dest has
        /// a weight, and it has one.
        #[test]
        fn a_source_sticks_to_its_dest(
            weights in prop::collection::vec(prop_oneof![Just(0u32), 1u32..6], 0..20),
            cips in prop::collection::vec(any::<u32>(), 1..40),
        ) {
            let d = dests(&weights);
            let mut a = SourceHashing::new(&d);
            let mut b = SourceHashing::new(&d);
            let live = weights.iter().any(|&w| w > 0);
            for cip in cips {
                let hint = FlowHint { src: Ipv4Addr::from(cip), sport: 1 };
                let first = a.pick(&d, &hint, &[]);
                prop_assert_eq!(first.is_some(), live);
                if let Some(i) = first {
                    prop_assert!(weights[i] > 0);
                }
                for sport in [2, 40000, 65535] {
                    prop_assert_eq!(a.pick(&d, &FlowHint { sport, ..hint }, &[]), first);
                }
                prop_assert_eq!(b.pick(&d, &hint, &[]), first);
                a.update(&d);
                prop_assert_eq!(a.pick(&d, &hint, &[]), first);
            }
        }

        /// While the weights sum to at most 256, each dest has its share of the buckets to
        /// within its weight: |buckets - 256 * w / sum| <= w. Clients spread over the buckets
        /// evenly, so the 256 last octets give each dest exactly its buckets, and random CIPs
        /// give each dest its share of the buckets to within 0.03.
        #[test]
        fn sources_spread_by_weight(
            weights in prop::collection::vec(prop_oneof![Just(0u32), 1u32..=12], 1..=20),
            seed in any::<u64>(),
        ) {
            let sum: u32 = weights.iter().sum();
            prop_assume!(sum > 0);
            let d = dests(&weights);
            let mut sh = SourceHashing::new(&d);
            let mut buckets = vec![0u32; d.len()];
            for b in 0..SH_TABLE_SIZE {
                if let Some(i) = sh.dest_of_bucket(b) {
                    buckets[i] += 1;
                }
            }
            for (&w, &n) in weights.iter().zip(&buckets) {
                let want = 256.0 * f64::from(w) / f64::from(sum);
                prop_assert!((f64::from(n) - want).abs() <= f64::from(w),
                    "weight {} has {} buckets, share {:.1}", w, n, want);
            }

            let mut by_octet = vec![0u32; d.len()];
            for last in 0..=255 {
                let i = sh.pick(&d, &from(198, 51, 100, last), &[]);
                prop_assert!(i.is_some());
                if let Some(i) = i {
                    by_octet[i] += 1;
                }
            }
            prop_assert_eq!(&by_octet, &buckets);

            const CLIENTS: u32 = 20_000;
            let mut by_random = vec![0u32; d.len()];
            let mut x = seed;
            for _ in 0..CLIENTS {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let cip = Ipv4Addr::from(((x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32) as u32);
                if let Some(i) = sh.pick(&d, &FlowHint { src: cip, sport: 1 }, &[]) {
                    by_random[i] += 1;
                }
            }
            for (&n, &b) in by_random.iter().zip(&buckets) {
                let got = f64::from(n) / f64::from(CLIENTS);
                let want = f64::from(b) / 256.0;
                prop_assert!((got - want).abs() < 0.03, "{} vs {}", got, want);
            }
        }
    }
}
