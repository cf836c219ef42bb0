//! The neighbour table: IPv4 → MAC by ARP (IPv6 → MAC by neighbour discovery), with aging, probing and parking of packets that
//! wait for a resolution. One per worker; the data path resolves next hops here, never through
//! the kernel.
//!
//! States follow Linux's neighbour cache (`NUD_*`), reduced to what a forwarder needs:
//!
//! ```text
//!            park (first packet: caller sends ARP request)
//!   (none) ─────────────────────────────────────────────▶ Incomplete ──┐ every retrans_ms: probe;
//!     ▲  ▲                                                  │          │ after max_probes
//!     │  └─────────────────── give up: parked → give_up ◀───┴──────────┘ requests: delete
//!     │                                                     │ learn: parked → release (FIFO)
//!     │                                                     ▼
//!     │                     learn                      Reachable ◀──────────────┐
//!     │                                                     │ reachable_ms      │ learn
//!     │        after max_probes unanswered probes           ▼ without learn     │
//!     └─────────────────────────────────────────────────── Stale ───────────────┘
//!                                          (MAC still used; probe every retrans_ms)
//!   Static: configured, never ages, never overwritten by learn.
//! ```
//!
//! The table is sans-IO like conntrack: `now` is passed in (milliseconds of any monotonic
//! clock), sending ARP is the caller's job (`Park::Parked { send_request: true }` and the
//! `probe` callback of [`NeighTable::tick`]), and items leave through callbacks. The first
//! request sent on `send_request` counts as the first of `max_probes`.
//!
//! Memory is reserved in [`NeighTable::new`]: the hash map is sized for twice the capacity, so
//! that hashbrown always reclaims deleted slots by rehashing in place and never grows (it only
//! reallocates when the live entries exceed half its slots), and each entry parks at most
//! [`PARK_PER_NEIGHBOUR`] items inline. When the table is full, new entries are refused rather
//! than evicting resolved neighbours (an ARP flood must not push out the RS gateways).

use core::cell::Cell;
use core::fmt;
use core::hash::Hash;
use core::net::{Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use hashbrown::HashMap;

use crate::wire::EthernetAddress;

/// How many items (packets) wait per unresolved neighbour; more are refused.
pub const PARK_PER_NEIGHBOUR: usize = 4;

/// Timers and size of a [`NeighTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighConfig {
    /// Most entries held at once (incomplete ones included).
    pub capacity: usize,
    /// How long a confirmation keeps an entry reachable, in ms (Linux `base_reachable_time`).
    pub reachable_ms: u64,
    /// Interval between ARP requests or probes for one neighbour, in ms (Linux `retrans_time`).
    pub retrans_ms: u64,
    /// Unanswered requests (incomplete) or probes (stale) before the entry is deleted.
    pub max_probes: u32,
}

impl Default for NeighConfig {
    /// 1024 entries, reachable for 60 s, a request every second, three tries.
    fn default() -> Self {
        NeighConfig {
            capacity: 1024,
            reachable_ms: 60_000,
            retrans_ms: 1_000,
            max_probes: 3,
        }
    }
}

/// What [`NeighTable::park`] did with an item.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a rejected item must be dropped and counted"]
pub enum Park<P> {
    /// Parked; send an ARP request now if `send_request` (first item for a new entry).
    Parked {
        /// Whether this call created the entry, so the caller must send the first request.
        send_request: bool,
    },
    /// Not parked: the entry's queue or the table is full, or the neighbour is already
    /// resolved (use [`NeighTable::lookup`] first). The caller drops the item and counts it.
    Rejected(P),
}

/// The state of a neighbour entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NeighState {
    /// ARP request sent, no answer yet; items may be parked.
    Incomplete,
    /// Confirmed within `reachable_ms`.
    Reachable,
    /// Not confirmed lately: the MAC is still used while probes ask again.
    Stale,
    /// Configured; never ages.
    Static,
}

impl fmt::Display for NeighState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighState::Incomplete => "incomplete",
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
            NeighState::Static => "static",
        })
    }
}

#[derive(Debug)]
struct Entry<P> {
    state: NeighState,
    /// The neighbour's MAC; meaningless while incomplete.
    mac: EthernetAddress,
    /// Last confirmation (learn), for aging a reachable entry.
    confirmed: u64,
    /// When the next request or probe is due (incomplete and stale).
    next_probe: u64,
    /// Requests or probes sent in the current state.
    probes: u32,
    /// Items waiting for resolution, oldest first (only while incomplete).
    parked: ArrayVec<P, PARK_PER_NEIGHBOUR>,
}

impl<P> Entry<P> {
    fn mac(&self) -> Option<EthernetAddress> {
        match self.state {
            NeighState::Incomplete => None,
            _ => Some(self.mac),
        }
    }
}

/// The neighbours of one address family (`A`: IPv4 by ARP, the default, or IPv6 by neighbour
/// discovery) of one worker, with the items parked while they resolve.
pub struct NeighTable<P, A = Ipv4Addr> {
    cfg: NeighConfig,
    entries: HashMap<A, Entry<P>>,
    /// The MACs [`NeighTable::lookup`] found lately, direct-mapped by address: next hops are
    /// few (the gateways, the on-link RSs), so the data path's lookups mostly end here
    /// instead of hashing into `entries`. An entry holds while its `version` is the table's.
    front: [Cell<Option<Front<A>>>; FRONT_SLOTS],
    /// Moves on every change of an address's MAC or presence, making `front` stale.
    version: u32,
}

impl<P: fmt::Debug, A: fmt::Debug> fmt::Debug for NeighTable<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeighTable")
            .field("cfg", &self.cfg)
            .field("entries", &self.entries)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Slots of [`NeighTable`]'s front cache.
const FRONT_SLOTS: usize = 16;

/// A front cache entry: `ip` had `mac` at table version `version`.
#[derive(Clone, Copy, Debug)]
struct Front<A> {
    ip: A,
    mac: EthernetAddress,
    version: u32,
}

/// A neighbour's address as the front cache places it.
pub trait FrontSlot: Copy + Eq + Hash {
    /// Its slot in the front cache: any number, which the cache takes modulo its slot count.
    fn front_slot(self) -> usize;
}

impl FrontSlot for Ipv4Addr {
    #[inline]
    fn front_slot(self) -> usize {
        (u32::from(self).wrapping_mul(0x9e37_79b1) >> 28) as usize
    }
}

impl FrontSlot for Ipv6Addr {
    #[inline]
    fn front_slot(self) -> usize {
        let b = self.to_bits();
        ((b as u32 ^ (b >> 32) as u32).wrapping_mul(0x9e37_79b1) >> 28) as usize
    }
}

impl<P, A: FrontSlot> NeighTable<P, A> {
    /// An empty table with room for `cfg.capacity` entries, all allocated now.
    ///
    /// # Panics
    /// If `2 × cfg.capacity` entries cannot be allocated (a configuration error).
    pub fn new(cfg: NeighConfig) -> Self {
        NeighTable {
            cfg,
            entries: HashMap::with_capacity(cfg.capacity.saturating_mul(2)),
            front: core::array::from_fn(|_| Cell::new(None)),
            version: 0,
        }
    }

    /// The MAC for `ip` if known (reachable, stale or static); never creates an entry.
    #[inline(always)]
    pub fn lookup(&self, ip: A) -> Option<EthernetAddress> {
        let slot = &self.front[ip.front_slot() % FRONT_SLOTS];
        if let Some(f) = slot.get() {
            if f.ip == ip && f.version == self.version {
                return Some(f.mac);
            }
        }
        let mac = self.entries.get(&ip).and_then(Entry::mac)?;
        slot.set(Some(Front {
            ip,
            mac,
            version: self.version,
        }));
        Some(mac)
    }

    /// Makes every front cache entry stale (a MAC changed, or an address came or went).
    #[inline]
    fn changed(&mut self) {
        self.version = self.version.wrapping_add(1);
        if self.version == 0 {
            // After 2^32 changes an old entry's version could match again: clear them all.
            for f in &self.front {
                f.set(None);
            }
        }
    }

    /// True if there is an entry for `ip` in any state (incomplete ones included).
    #[inline]
    pub fn contains(&self, ip: A) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Parks `item` until `ip` resolves, creating an incomplete entry if there is none (then
    /// the answer says to send the first ARP request). Refused, and handed back, when the
    /// entry already holds [`PARK_PER_NEIGHBOUR`] items, when the table is full, or when `ip`
    /// already has a MAC.
    pub fn park(&mut self, ip: A, item: P, now: u64) -> Park<P> {
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.state != NeighState::Incomplete {
                return Park::Rejected(item);
            }
            return match e.parked.try_push(item) {
                Ok(()) => Park::Parked {
                    send_request: false,
                },
                Err(full) => Park::Rejected(full.element()),
            };
        }
        if self.entries.len() >= self.cfg.capacity {
            return Park::Rejected(item);
        }
        let mut parked = ArrayVec::new();
        parked.push(item);
        self.changed();
        self.entries.insert(
            ip,
            Entry {
                state: NeighState::Incomplete,
                mac: EthernetAddress([0; 6]),
                confirmed: now,
                next_probe: now.saturating_add(self.cfg.retrans_ms),
                probes: 1,
                parked,
            },
        );
        Park::Parked { send_request: true }
    }

    /// An ARP packet from `ip` with `mac` was seen (a reply, or a request to us): the entry
    /// becomes reachable at `now`, taking `mac`, and its parked items go to `release` in FIFO
    /// order with the MAC. Creates the entry if there is none and the table has room (like
    /// Linux on a request to us); a static entry is left as it is.
    ///
    /// Call it only for ARP addressed to one of our addresses, so strangers cannot fill the
    /// table.
    pub fn learn(
        &mut self,
        ip: A,
        mac: EthernetAddress,
        now: u64,
        mut release: impl FnMut(P, EthernetAddress),
    ) {
        self.changed();
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.state == NeighState::Static {
                return;
            }
            e.state = NeighState::Reachable;
            e.mac = mac;
            e.confirmed = now;
            e.probes = 0;
            for item in e.parked.drain(..) {
                release(item, mac);
            }
            return;
        }
        if self.entries.len() < self.cfg.capacity {
            self.entries
                .insert(ip, Self::resolved(NeighState::Reachable, mac, now));
        }
    }

    /// Slow-path tick. Incomplete entries are re-requested every `retrans_ms` (`probe(ip)`);
    /// after `max_probes` unanswered requests their parked items go to `give_up` and the
    /// entry is deleted. Reachable entries not confirmed for `reachable_ms` become stale: the
    /// MAC stays in use and `probe(ip)` is called every `retrans_ms`; a stale entry not
    /// confirmed after `max_probes` probes is deleted. Static entries are left alone.
    ///
    /// Visits every entry: call it every few hundred milliseconds, not per packet.
    pub fn tick(&mut self, now: u64, mut probe: impl FnMut(A), mut give_up: impl FnMut(P)) {
        self.changed();
        let cfg = self.cfg;
        self.entries.retain(|&ip, e| {
            match e.state {
                NeighState::Static => return true,
                NeighState::Reachable => {
                    if now < e.confirmed.saturating_add(cfg.reachable_ms) {
                        return true;
                    }
                    e.state = NeighState::Stale;
                    e.probes = 0;
                    e.next_probe = now;
                }
                NeighState::Incomplete | NeighState::Stale => {}
            }
            if now < e.next_probe {
                return true;
            }
            if e.probes >= cfg.max_probes {
                for item in e.parked.drain(..) {
                    give_up(item);
                }
                return false;
            }
            probe(ip);
            e.probes += 1;
            e.next_probe = now.saturating_add(cfg.retrans_ms);
            true
        });
    }

    /// Adds or replaces a static (permanent) entry that never ages: for configured
    /// neighbours and tests. Items parked on an incomplete entry it replaces are dropped.
    /// Returns `false`, changing nothing, if `ip` is new and the table is full.
    pub fn insert_static(&mut self, ip: A, mac: EthernetAddress) -> bool {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.cfg.capacity {
            return false;
        }
        self.changed();
        self.entries
            .insert(ip, Self::resolved(NeighState::Static, mac, 0));
        true
    }

    /// Entries held, incomplete ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry: address, state, MAC (`None` while incomplete). In no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (A, NeighState, Option<EthernetAddress>)> + '_ {
        self.entries.iter().map(|(&ip, e)| (ip, e.state, e.mac()))
    }

    fn resolved(state: NeighState, mac: EthernetAddress, now: u64) -> Entry<P> {
        Entry {
            state,
            mac,
            confirmed: now,
            next_probe: now,
            probes: 0,
            parked: ArrayVec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const RS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const MAC1: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

    fn table() -> NeighTable<u32> {
        NeighTable::new(NeighConfig::default())
    }

    /// Ticks at `now`, returning the probed addresses and the given-up items.
    fn tick(t: &mut NeighTable<u32>, now: u64) -> (Vec<Ipv4Addr>, Vec<u32>) {
        let (mut probed, mut dropped) = (Vec::new(), Vec::new());
        t.tick(now, |ip| probed.push(ip), |p| dropped.push(p));
        (probed, dropped)
    }

    fn state(t: &NeighTable<u32>, ip: Ipv4Addr) -> Option<NeighState> {
        t.iter().find(|e| e.0 == ip).map(|e| e.1)
    }

    #[test]
    fn resolution_releases_parked_items_in_order() {
        let mut t = table();
        assert_eq!(t.lookup(GW), None);
        assert_eq!(t.park(GW, 1, 0), Park::Parked { send_request: true });
        assert_eq!(
            t.park(GW, 2, 5),
            Park::Parked {
                send_request: false
            }
        );
        assert_eq!(
            t.park(GW, 3, 9),
            Park::Parked {
                send_request: false
            }
        );
        assert_eq!(t.lookup(GW), None, "incomplete has no MAC");
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [(GW, NeighState::Incomplete, None)]
        );

        let mut out = Vec::new();
        t.learn(GW, MAC1, 20, |p, mac| out.push((p, mac)));
        assert_eq!(out, [(1, MAC1), (2, MAC1), (3, MAC1)]);
        assert_eq!(t.lookup(GW), Some(MAC1));
        assert_eq!(state(&t, GW), Some(NeighState::Reachable));
        // Nothing left to release.
        t.learn(GW, MAC1, 30, |_, _| panic!("released twice"));
    }

    #[test]
    fn fifth_parked_item_is_rejected() {
        let mut t = table();
        for i in 0..PARK_PER_NEIGHBOUR as u32 {
            assert!(matches!(t.park(GW, i, 0), Park::Parked { .. }));
        }
        assert_eq!(t.park(GW, 99, 0), Park::Rejected(99));
        // Another neighbour has its own queue.
        assert_eq!(t.park(RS, 7, 0), Park::Parked { send_request: true });
    }

    #[test]
    fn park_on_resolved_neighbour_is_rejected() {
        let mut t = table();
        t.learn(GW, MAC1, 0, |_, _| {});
        assert_eq!(t.park(GW, 1, 0), Park::Rejected(1));
        assert!(t.insert_static(RS, MAC2));
        assert_eq!(t.park(RS, 2, 0), Park::Rejected(2));
    }

    #[test]
    fn retries_then_give_up() {
        let mut t = table(); // retrans 1 s, 3 probes
        assert_eq!(t.park(GW, 1, 0), Park::Parked { send_request: true });
        assert!(matches!(t.park(GW, 2, 100), Park::Parked { .. }));
        assert_eq!(tick(&mut t, 999), (vec![], vec![]));
        assert_eq!(tick(&mut t, 1_000), (vec![GW], vec![]), "second request");
        assert_eq!(tick(&mut t, 1_500), (vec![], vec![]));
        assert_eq!(tick(&mut t, 2_000), (vec![GW], vec![]), "third request");
        assert_eq!(tick(&mut t, 2_999), (vec![], vec![]));
        assert_eq!(tick(&mut t, 3_000), (vec![], vec![1, 2]), "give up, FIFO");
        assert!(t.is_empty());
        assert_eq!(t.lookup(GW), None);
        // A new packet starts over.
        assert_eq!(t.park(GW, 3, 4_000), Park::Parked { send_request: true });
    }

    #[test]
    fn late_answer_after_retries_still_releases() {
        let mut t = table();
        assert!(matches!(t.park(GW, 1, 0), Park::Parked { .. }));
        tick(&mut t, 1_000);
        tick(&mut t, 2_000);
        let mut out = Vec::new();
        t.learn(GW, MAC2, 2_500, |p, m| out.push((p, m)));
        assert_eq!(out, [(1, MAC2)]);
        assert_eq!(tick(&mut t, 3_000), (vec![], vec![]));
        assert_eq!(t.lookup(GW), Some(MAC2));
    }

    #[test]
    fn aging_to_stale_and_reconfirmation() {
        let mut t = table();
        t.learn(GW, MAC1, 0, |_, _| {});
        assert_eq!(tick(&mut t, 59_999), (vec![], vec![]));
        assert_eq!(state(&t, GW), Some(NeighState::Reachable));
        assert_eq!(
            tick(&mut t, 60_000),
            (vec![GW], vec![]),
            "stale: probe at once"
        );
        assert_eq!(state(&t, GW), Some(NeighState::Stale));
        assert_eq!(t.lookup(GW), Some(MAC1), "stale MAC stays in use");
        assert_eq!(tick(&mut t, 60_500), (vec![], vec![]));
        // The answer comes, with a new MAC.
        t.learn(GW, MAC2, 60_700, |_, _| {});
        assert_eq!(state(&t, GW), Some(NeighState::Reachable));
        assert_eq!(t.lookup(GW), Some(MAC2));
        assert_eq!(tick(&mut t, 61_000), (vec![], vec![]));
        assert_eq!(tick(&mut t, 120_699), (vec![], vec![]));
        assert_eq!(tick(&mut t, 120_700), (vec![GW], vec![]));
    }

    #[test]
    fn stale_entry_is_deleted_after_unanswered_probes() {
        let mut t = table();
        t.learn(GW, MAC1, 0, |_, _| {});
        assert_eq!(tick(&mut t, 60_000).0, [GW]);
        assert_eq!(tick(&mut t, 61_000).0, [GW]);
        assert_eq!(tick(&mut t, 62_000).0, [GW]);
        assert_eq!(t.lookup(GW), Some(MAC1));
        assert_eq!(tick(&mut t, 63_000), (vec![], vec![]));
        assert_eq!(t.lookup(GW), None);
        assert!(t.is_empty());
    }

    #[test]
    fn static_never_ages_and_is_not_overwritten() {
        let mut t = table();
        assert!(t.insert_static(GW, MAC1));
        for now in [0, 60_000, 61_000, 1 << 40, u64::MAX] {
            assert_eq!(tick(&mut t, now), (vec![], vec![]));
        }
        t.learn(GW, MAC2, 5, |_, _| {});
        assert_eq!(t.lookup(GW), Some(MAC1));
        assert_eq!(state(&t, GW), Some(NeighState::Static));
        // Reconfiguring it does replace it.
        assert!(t.insert_static(GW, MAC2));
        assert_eq!(t.lookup(GW), Some(MAC2));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn learn_creates_entry_for_unknown_neighbour() {
        let mut t = table();
        t.learn(RS, MAC1, 10, |_, _| panic!("nothing parked"));
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [(RS, NeighState::Reachable, Some(MAC1))]
        );
    }

    #[test]
    fn full_table_refuses_new_entries() {
        let cfg = NeighConfig {
            capacity: 2,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::new(cfg);
        let ip = |i: u8| Ipv4Addr::new(10, 0, 0, i);
        assert!(matches!(t.park(ip(1), 1, 0), Park::Parked { .. }));
        t.learn(ip(2), MAC1, 0, |_, _| {});
        assert_eq!(t.park(ip(3), 3, 0), Park::Rejected(3));
        t.learn(ip(4), MAC2, 0, |_, _| {});
        assert_eq!(t.lookup(ip(4)), None, "no room, not learnt");
        assert!(!t.insert_static(ip(5), MAC2));
        assert!(
            t.insert_static(ip(2), MAC2),
            "replacing an entry needs no room"
        );
        // Existing entries are not evicted; room comes back after give-up.
        assert_eq!(t.len(), 2);
        for now in [1_000, 2_000, 3_000] {
            tick(&mut t, now);
        }
        assert_eq!(t.len(), 1);
        assert!(matches!(
            t.park(ip(3), 3, 3_000),
            Park::Parked { send_request: true }
        ));
    }

    #[test]
    fn zero_capacity_parks_nothing() {
        let mut t = NeighTable::new(NeighConfig {
            capacity: 0,
            ..NeighConfig::default()
        });
        assert_eq!(t.park(GW, 1, 0), Park::Rejected(1));
        assert!(t.is_empty());
    }

    #[test]
    fn churn_never_grows_the_map() {
        let cfg = NeighConfig {
            capacity: 64,
            retrans_ms: 1,
            max_probes: 0,
            ..NeighConfig::default()
        };
        let mut t = NeighTable::new(cfg);
        // `capacity()` shrinks as deleted-entry markers pile up (until an in-place rehash
        // reclaims them): the allocation is what must not change.
        let bytes = t.entries.allocation_size();
        let mut now = 0;
        for round in 0..500u32 {
            for i in 0..64u32 {
                let ip = Ipv4Addr::from(0x0a00_0000 + round * 64 + i);
                assert!(matches!(t.park(ip, i, now), Park::Parked { .. }));
            }
            now += 1;
            tick(&mut t, now); // every entry gives up
            assert!(t.is_empty());
        }
        assert_eq!(t.entries.allocation_size(), bytes, "no reallocation");
    }

    #[test]
    fn state_display() {
        let s: Vec<_> = [
            NeighState::Incomplete,
            NeighState::Reachable,
            NeighState::Stale,
            NeighState::Static,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(s, ["incomplete", "reachable", "stale", "static"]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Park(u8),
        Learn(u8),
        Tick,
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6).prop_map(Op::Park),
            1 => (0u8..6).prop_map(Op::Learn),
            2 => Just(Op::Tick),
            2 => (0u16..1500).prop_map(Op::Wait),
        ]
    }

    proptest! {
        // Every item parked comes out exactly once (released, given up or rejected), released
        // ones in the order they were parked, and the table never exceeds its capacity.
        #[test]
        fn items_are_conserved(ops in proptest::collection::vec(op(), 0..200), capacity in 0usize..5) {
            let cfg = NeighConfig { capacity, reachable_ms: 3_000, retrans_ms: 500, max_probes: 2 };
            let mut t: NeighTable<u32> = NeighTable::new(cfg);
            let (mut now, mut next_id) = (0u64, 0u32);
            let mut out: BTreeMap<u32, &str> = BTreeMap::new();
            let mut released: Vec<(Ipv4Addr, u32)> = Vec::new();
            let ip = |i: u8| Ipv4Addr::new(10, 0, 0, i);
            for op in ops {
                match op {
                    Op::Park(i) => {
                        let id = next_id;
                        next_id += 1;
                        if let Park::Rejected(p) = t.park(ip(i), id, now) {
                            prop_assert_eq!(p, id);
                            out.insert(p, "rejected");
                        }
                    }
                    Op::Learn(i) => {
                        let mut got = Vec::new();
                        t.learn(ip(i), MAC1, now, |p, _| got.push(p));
                        for p in got {
                            prop_assert!(out.insert(p, "released").is_none());
                            released.push((ip(i), p));
                        }
                    }
                    Op::Tick => {
                        let mut gone = Vec::new();
                        t.tick(now, |_| {}, |p| gone.push(p));
                        for p in gone {
                            prop_assert!(out.insert(p, "given up").is_none());
                        }
                    }
                    Op::Wait(ms) => now += u64::from(ms),
                }
                prop_assert!(t.len() <= capacity);
            }
            // Let every incomplete entry run out of retries.
            for _ in 0..=cfg.max_probes {
                now += cfg.retrans_ms;
                let mut gone = Vec::new();
                t.tick(now, |_| {}, |p| gone.push(p));
                for p in gone {
                    prop_assert!(out.insert(p, "given up").is_none());
                }
            }
            prop_assert_eq!(out.len() as u32, next_id, "every item accounted for");
            for i in 0..6 {
                let ids: Vec<u32> =
                    released.iter().filter(|r| r.0 == ip(i)).map(|r| r.1).collect();
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "FIFO release");
            }
        }
    }

    proptest! {
        /// The front cache never answers differently from the table: after any sequence of
        /// parking, learning (a MAC that changes), static entries, aging and deletion, every
        /// address (more than the cache has slots, so they collide) looks up as the table holds it.
        #[test]
        fn the_front_cache_answers_as_the_table(
            ops in proptest::collection::vec((0u8..6, 0u8..40, 0u8..3), 0..300),
        ) {
            let cfg = NeighConfig { capacity: 24, reachable_ms: 3_000, retrans_ms: 500, max_probes: 2 };
            let mut t: NeighTable<u32> = NeighTable::new(cfg);
            let mut now = 0u64;
            let ip = |i: u8| Ipv4Addr::new(10, 0, i / 8, i);
            let mac = |m: u8| EthernetAddress([2, 0, 0, 0, 0, m]);
            for (op, i, m) in ops {
                match op {
                    0 => drop(t.park(ip(i), 0, now)),
                    1 | 2 => t.learn(ip(i), mac(m), now, |_, _| {}),
                    3 => drop(t.insert_static(ip(i), mac(m + 10))),
                    4 => t.tick(now, |_| {}, |_| {}),
                    _ => now += 700,
                }
                for j in 0..40 {
                    let truth = t.entries.get(&ip(j)).and_then(Entry::mac);
                    prop_assert_eq!(t.lookup(ip(j)), truth);
                }
            }
        }
    }
}
