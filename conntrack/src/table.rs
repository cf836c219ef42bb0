//! The per-worker session table: a slab of sessions, a hash index from flow keys to slab
//! slots, and a timer wheel threaded through the slab.
//!
//! # Layout and memory
//!
//! - The **slab** is a `Vec` reserved for `capacity` sessions at construction; freed slots are
//!   reused through a free list. A slot is exactly one [`Session<T>`] (the vacant variant hides
//!   in a niche of the flow key): 88 bytes for a 32-byte `T`.
//! - A table holds the flow keys of one address family, its `K` ([`crate::Key`]): IPv4's
//!   [`FlowKey`] (14 bytes, the default) or IPv6's [`crate::FlowKey6`] (38 bytes: a slot is
//!   136 bytes for a 32-byte `T`), so that IPv6 sessions, in a table of their own, leave
//!   IPv4's as narrow as they are.
//! - The **index** ([`crate::index`]) maps key hashes to `u32` entries (`slot << 1 |
//!   direction`) in 64-byte buckets of ten; keys are not copied but compared against the
//!   slab. Both keys of a session (original and reply) map to it. It is hashed with foldhash
//!   seeded at random per table (hash-flooding resistance) and sized for 2 × capacity keys at
//!   most 3/4 full, in a power of two of buckets: 17–34 bytes per session (26.8 at ten
//!   million, 32 at 2^20).
//! - The **timer wheel** ([`crate::wheel`]) links sessions through two `u32`s in each slot.
//!   Refreshing a session's deadline later is a single store; see the wheel's docs for why that
//!   is still exact.
//!
//! # Allocation
//!
//! Everything is allocated by [`Table::with_capacity`]; `insert`, `lookup`, `on_packet`,
//! `remove` and `expire` never allocate, and the index has no tombstones, so it never
//! rehashes or grows: removal clears a word and the overflow counts of the buckets its probe
//! passed.
//!
//! In all, a table of 2^20 sessions with a 32-byte `T` takes 88 + 32 bytes per session plus
//! a 512 KiB wheel.
//!
//! # Burst lookups
//!
//! [`Table::hash`] hashes a key once; [`Table::index_line`] names the index line a lookup of
//! that hash reads, and [`Table::candidate`] (reading that line) the entry it will most likely
//! return, whose session [`Table::candidate_slot`] names. A worker prefetches the lines for a
//! whole burst, then the sessions, and only then looks each packet up with
//! [`Table::lookup_hinted`], which checks the candidate first.
//!
//! # Session ids
//!
//! A [`SessionId`] is a slot number plus a 16-bit generation bumped whenever the slot is
//! freed, so an id kept after its session was removed or expired is refused by `get`,
//! `on_packet` and `remove` instead of reaching the slot's next occupant. The generation
//! wraps after 65 536 reuses of one slot: ids are meant to be held for the handling of a
//! packet or a burst, not stored for long.

use core::fmt;
use core::hash::BuildHasher;
use core::ops::Deref;

use foldhash::fast::RandomState;

use crate::index::Index;

use crate::key::{Dir, FlowKey, Key, Proto};
use crate::tcp_state::{next_state, StateDir, TcpEvent, TcpState};
use crate::timeout::{SessionState, Timeouts};
use crate::wheel::{Link, TimerNodes, Wheel};

/// Largest capacity of a [`Table`] (slot numbers must leave a bit for the direction).
pub const MAX_CAPACITY: usize = (1 << 31) - Wheel::MAX_SLOTS - 2;

/// Wheel tick: 2^4 = 16 ms.
const SLOT_SHIFT: u32 = 4;
/// At most 65 536 buckets of 16 ms: one revolution is about 1 048 s, above the default
/// ESTABLISHED timeout.
const MAX_WHEEL_SLOTS: usize = 1 << 16;

const NIL: u32 = u32::MAX;

/// A key's hash in one [`Table`] (from [`Table::hash`]; meaningless in another table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyHash(u64);

/// The index entry a lookup will most likely return (from [`Table::candidate`]); a hint
/// that stays safe to use after the table changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate(u32);

impl Candidate {
    /// No hint.
    pub const NONE: Candidate = Candidate(NIL);
}

/// A handle to a session in a [`Table`]: slot number and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    index: u32,
    gen: u16,
}

impl SessionId {
    /// The slot number, `0..capacity` (e.g. to index per-session side arrays).
    #[inline]
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A tracked session.
///
/// Inside a [`Table`] the fields are read-only (only `data` can be changed, through
/// [`Table::data_mut`] or [`SessionMut::data_mut`]): the keys index the session and the
/// deadline places it on the timer wheel. Sessions handed back by [`Table::remove`] and
/// [`Table::expire`] are plain values.
///
/// The layout is fixed (`repr(C)`) so that everything a lookup reads — both keys (one of
/// which holds the slot's occupied/vacant niche) and the generation — is in the first
/// [`Table::LOOKUP_BYTES`] bytes of the slot.
#[derive(Clone)]
#[repr(C)]
pub struct Session<T, K = FlowKey> {
    /// The key of client packets (LVS "input").
    pub original: K,
    /// The key of real-server packets as they reach the director, if it sees them (NAT,
    /// FullNAT); `None` for DR and TUN.
    pub reply: Option<K>,
    gen: u16,
    /// The state that sets the timeout.
    pub state: SessionState,
    link: Link,
    /// When the session was inserted (ms).
    pub created: u64,
    /// When the session expires unless refreshed (ms): last packet + timeout of its state.
    pub deadline: u64,
    /// Caller data (destination, NAT rewrite, counters...).
    pub data: T,
}

impl<T, K> Session<T, K> {
    /// The key for direction `dir` (`None` for `Reply` on a session without a reply key).
    #[inline]
    pub fn key(&self, dir: Dir) -> Option<&K> {
        match dir {
            Dir::Original => Some(&self.original),
            Dir::Reply => self.reply.as_ref(),
        }
    }

    /// The table third that a packet in direction `dir` uses: Input / Output when the
    /// director sees replies, InputOnly for client packets of a session without a reply key
    /// (IPVS `IP_VS_CONN_F_NOOUTPUT`); a reply packet always uses Output.
    #[inline]
    pub fn state_dir(&self, dir: Dir) -> StateDir {
        match (dir, self.reply.is_some()) {
            (Dir::Original, true) => StateDir::Input,
            (Dir::Original, false) => StateDir::InputOnly,
            (Dir::Reply, _) => StateDir::Output,
        }
    }
}

impl<T, K> Session<T, K> {
    /// Moves the deadline; true if it moved earlier, in which case the wheel must re-file the
    /// session (a later deadline is picked up lazily when its old bucket comes up).
    #[inline]
    fn set_deadline(&mut self, deadline: u64) -> bool {
        let earlier = deadline < self.deadline;
        self.deadline = deadline;
        earlier
    }
}

impl<T: fmt::Debug, K: fmt::Debug> fmt::Debug for Session<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("original", &self.original)
            .field("reply", &self.reply)
            .field("state", &self.state)
            .field("created", &self.created)
            .field("deadline", &self.deadline)
            .field("data", &self.data)
            .finish()
    }
}

/// Mutable access to a session in a table: read everything, write only `data`.
#[derive(Debug)]
pub struct SessionMut<'a, T, K = FlowKey> {
    session: &'a mut Session<T, K>,
}

impl<'a, T, K> SessionMut<'a, T, K> {
    /// The caller data, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.session.data
    }

    /// The caller data, mutably, for the whole borrow of the table.
    #[inline]
    pub fn into_data_mut(self) -> &'a mut T {
        &mut self.session.data
    }
}

impl<T, K> Deref for SessionMut<'_, T, K> {
    type Target = Session<T, K>;

    #[inline]
    fn deref(&self) -> &Session<T, K> {
        self.session
    }
}

/// Why [`Table::insert`] refused a session (nothing was inserted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InsertError {
    /// The table holds `capacity` sessions; nothing is evicted to make room.
    Full,
    /// The original or the reply key already belongs to a session (or both keys are equal).
    KeyExists,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsertError::Full => "session table full",
            InsertError::KeyExists => "flow key already tracked",
        })
    }
}

impl std::error::Error for InsertError {}

enum Slot<T, K = FlowKey> {
    Occupied(Session<T, K>),
    Vacant { next_free: u32, gen: u16 },
}

/// Slab and key index; the timer nodes the wheel links.
struct Store<T, K = FlowKey> {
    slots: Vec<Slot<T, K>>,
    free: u32,
    len: usize,
    index: Index,
    hasher: RandomState,
}

#[inline]
fn entry(slot: u32, dir: Dir) -> u32 {
    (slot << 1) | u32::from(dir == Dir::Reply)
}

#[inline]
fn entry_slot(e: u32) -> u32 {
    e >> 1
}

#[inline]
fn entry_dir(e: u32) -> Dir {
    if e & 1 == 0 {
        Dir::Original
    } else {
        Dir::Reply
    }
}

#[inline(always)]
fn hash_key<K: Key>(hasher: &RandomState, key: &K) -> u64 {
    hasher.hash_one(key.packed())
}

impl<T, K: Key> Store<T, K> {
    #[inline]
    fn session(&self, slot: u32) -> Option<&Session<T, K>> {
        match self.slots.get(slot as usize) {
            Some(Slot::Occupied(s)) => Some(s),
            _ => None,
        }
    }

    #[inline]
    fn session_mut(&mut self, slot: u32) -> Option<&mut Session<T, K>> {
        match self.slots.get_mut(slot as usize) {
            Some(Slot::Occupied(s)) => Some(s),
            _ => None,
        }
    }

    /// The key an index entry stands for.
    #[inline]
    fn entry_key(slots: &[Slot<T, K>], e: u32) -> Option<&K> {
        match slots.get(entry_slot(e) as usize) {
            Some(Slot::Occupied(s)) => s.key(entry_dir(e)),
            _ => None,
        }
    }

    #[inline(always)]
    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        let want = key.packed();
        self.index.find(hash, |e| {
            Self::entry_key(&self.slots, e).is_some_and(|k| k.packed() == want)
        })
    }

    #[inline]
    fn index_remove(&mut self, key: &K, e: u32) {
        let hash = hash_key(&self.hasher, key);
        self.index.remove(hash, e);
    }

    /// Puts a session in a free slot; the caller has checked `len < capacity`.
    fn alloc(&mut self, mut session: Session<T, K>) -> Option<SessionId> {
        let slot = if self.free != NIL {
            let slot = self.free;
            let cell = self.slots.get_mut(slot as usize)?;
            let Slot::Vacant { next_free, gen } = *cell else {
                return None;
            };
            session.gen = gen;
            *cell = Slot::Occupied(session);
            self.free = next_free;
            SessionId { index: slot, gen }
        } else {
            // Within the reserved capacity: no reallocation.
            let slot = u32::try_from(self.slots.len()).ok()?;
            session.gen = 0;
            self.slots.push(Slot::Occupied(session));
            SessionId {
                index: slot,
                gen: 0,
            }
        };
        self.len += 1;
        Some(slot)
    }

    /// Empties a slot (already unlinked from the wheel) and drops its keys from the index.
    fn release(&mut self, slot: u32) -> Option<(SessionId, Session<T, K>)> {
        let cell = self.slots.get_mut(slot as usize)?;
        let gen = match cell {
            Slot::Occupied(s) => s.gen,
            Slot::Vacant { .. } => return None,
        };
        let vacant = Slot::Vacant {
            next_free: self.free,
            gen: gen.wrapping_add(1),
        };
        let Slot::Occupied(session) = core::mem::replace(cell, vacant) else {
            return None;
        };
        self.free = slot;
        self.len -= 1;
        self.index_remove(&session.original, entry(slot, Dir::Original));
        if let Some(reply) = &session.reply {
            self.index_remove(reply, entry(slot, Dir::Reply));
        }
        Some((SessionId { index: slot, gen }, session))
    }
}

impl<T, K: Key> TimerNodes for Store<T, K> {
    #[inline]
    fn link(&self, node: u32) -> Link {
        self.session(node).map(|s| s.link).unwrap_or_default()
    }

    #[inline]
    fn set_link(&mut self, node: u32, link: Link) {
        if let Some(s) = self.session_mut(node) {
            s.link = link;
        }
    }

    #[inline]
    fn deadline(&self, node: u32) -> u64 {
        self.session(node).map_or(u64::MAX, |s| s.deadline)
    }
}

/// The session table of one worker (sans-IO: every call that needs the time takes `now`, in
/// ms since an arbitrary epoch; see the [module docs](self) for layout and guarantees).
pub struct Table<T, K = FlowKey> {
    store: Store<T, K>,
    wheel: Wheel,
    timeouts: Timeouts,
    capacity: usize,
}

impl<T, K> fmt::Debug for Table<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.store.len)
            .field("capacity", &self.capacity)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl<T, K: Key> Table<T, K> {
    /// A table that holds at most `capacity` sessions (clamped to [`MAX_CAPACITY`]), with
    /// everything it will ever need allocated now.
    pub fn with_capacity(capacity: usize, timeouts: Timeouts) -> Table<T, K> {
        let capacity = capacity.min(MAX_CAPACITY);
        let index = Index::with_max_keys(2 * capacity);
        let slots = (capacity / 16).clamp(64, MAX_WHEEL_SLOTS);
        // `capacity <= MAX_CAPACITY < 2^31`, so this conversion and the wheel's ids fit.
        let nodes = u32::try_from(capacity).unwrap_or(MAX_CAPACITY as u32);
        Table {
            store: Store {
                slots: Vec::with_capacity(capacity),
                free: NIL,
                len: 0,
                index,
                hasher: RandomState::default(),
            },
            wheel: Wheel::new(nodes, SLOT_SHIFT, slots),
            timeouts,
            capacity,
        }
    }

    /// The hard limit on the number of sessions.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of sessions.
    #[inline]
    pub fn len(&self) -> usize {
        self.store.len
    }

    /// Whether the table holds no session.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.store.len == 0
    }

    /// The timeouts applied when sessions are (re-)armed.
    #[inline]
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Replaces the timeouts. Each session picks them up at its next re-arm (its next packet);
    /// deadlines already set are kept, as with `ipvsadm --set`.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// The session a packet with `key` belongs to, and which of its keys matched.
    #[inline]
    pub fn lookup(&self, key: &K) -> Option<(SessionId, Dir)> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// This table's hash of `key` (seeded per table), for [`Table::lookup_hashed`] and the
    /// prefetch hints.
    #[inline(always)]
    pub fn hash(&self, key: &K) -> KeyHash {
        KeyHash(hash_key(&self.store.hasher, key))
    }

    /// [`Table::lookup`] with the key's hash already computed by [`Table::hash`]. Always
    /// inlined: with two key families the compiler stopped inlining it into the burst loop,
    /// which cost the new-session path 40 instructions a packet.
    #[inline(always)]
    pub fn lookup_hashed(&self, key: &K, hash: KeyHash) -> Option<(SessionId, Dir)> {
        let e = self.store.find(hash.0, key)?;
        self.found(e)
    }

    /// The session and direction index entry `e` stands for.
    #[inline(always)]
    fn found(&self, e: u32) -> Option<(SessionId, Dir)> {
        let s = self.store.session(entry_slot(e))?;
        Some((
            SessionId {
                index: entry_slot(e),
                gen: s.gen,
            },
            entry_dir(e),
        ))
    }

    /// The index's cache line that a lookup of `hash` reads first: a prefetch hint, not read
    /// here.
    #[inline(always)]
    pub fn index_line(&self, hash: KeyHash) -> &[u32] {
        self.store.index.line(hash.0)
    }

    /// The entry a lookup of `hash` will most likely return: the first tag match in its home
    /// bucket (reads that bucket, not the session).
    #[inline(always)]
    pub fn candidate(&self, hash: KeyHash) -> Candidate {
        Candidate(self.store.index.candidate(hash.0).unwrap_or(NIL))
    }

    /// The bytes at the start of a slab slot that a lookup reads (keys, niche, generation):
    /// what to prefetch of a [`Table::candidate_slot`] before a lookup that needs nothing
    /// else of the session.
    pub const LOOKUP_BYTES: usize = 32;

    /// The slab slot of a candidate, to prefetch (not read here).
    #[inline(always)]
    pub fn candidate_slot(&self, c: Candidate) -> Option<&impl Sized> {
        self.store.slots.get(entry_slot(c.0) as usize)
    }

    /// [`Table::lookup_hashed`] that first tries the entry [`Table::candidate`] named, which
    /// spares the index scan when it holds `key` (it still does after any change to the table
    /// in between: a key belongs to one session at most).
    #[inline]
    pub fn lookup_hinted(&self, key: &K, hash: KeyHash, c: Candidate) -> Option<(SessionId, Dir)> {
        match self.lookup_candidate(key, c) {
            Some((id, dir, _)) => Some((id, dir)),
            None => self.lookup_hashed(key, hash),
        }
    }

    /// The session of `key`, its id and the direction, if it is the one the
    /// [`Table::candidate`] `c` names; `None` when it is not, which does not mean the table
    /// lacks `key` (a tag shared with another key, or `key` further along its probe sequence).
    #[inline(always)]
    pub fn lookup_candidate(
        &self,
        key: &K,
        c: Candidate,
    ) -> Option<(SessionId, Dir, &Session<T, K>)> {
        let s = self.store.session(entry_slot(c.0))?;
        let dir = entry_dir(c.0);
        if s.key(dir).is_none_or(|k| k.packed() != key.packed()) {
            return None;
        }
        let id = SessionId {
            index: entry_slot(c.0),
            gen: s.gen,
        };
        Some((id, dir, s))
    }

    /// The session `id` refers to, if it is still in the table.
    #[inline]
    pub fn get(&self, id: SessionId) -> Option<&Session<T, K>> {
        self.store.session(id.index).filter(|s| s.gen == id.gen)
    }

    /// The session `id` refers to, with write access to its `data` only (keys, state and
    /// deadline are owned by the table).
    #[inline]
    pub fn get_mut(&mut self, id: SessionId) -> Option<SessionMut<'_, T, K>> {
        self.session_mut(id).map(|session| SessionMut { session })
    }

    /// The caller data of session `id`, mutably.
    #[inline]
    pub fn data_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.session_mut(id).map(|s| &mut s.data)
    }

    #[inline]
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session<T, K>> {
        self.store.session_mut(id.index).filter(|s| s.gen == id.gen)
    }

    /// Inserts a new session. TCP starts in NONE, UDP in [`SessionState::Udp`], ICMP in
    /// [`SessionState::Icmp`] (by `original.proto`), armed with that state's timeout from
    /// `now`. `reply` is the key of the real server's packets as they reach the director
    /// (NAT, FullNAT), `None` when they bypass it (DR, TUN).
    ///
    /// # Errors
    ///
    /// [`InsertError::Full`] when the table holds `capacity` sessions (checked first; nothing is
    /// ever evicted), [`InsertError::KeyExists`] when either key already belongs to a session
    /// or `reply == Some(original)`. Nothing is inserted on error.
    pub fn insert(
        &mut self,
        original: K,
        reply: Option<K>,
        data: T,
        now: u64,
    ) -> Result<SessionId, InsertError> {
        self.open(original, reply, data, now, None)
    }

    /// Inserts a new session as its first packet, a client packet with TCP event `first`,
    /// leaves it: [`insert`](Self::insert) then [`on_packet`](Self::on_packet) in the
    /// original direction, but armed once, with the moved state's timeout (a TCP SYN opens
    /// in SYN_RECV). UDP and ICMP ignore `first`.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    #[inline]
    pub fn open(
        &mut self,
        original: K,
        reply: Option<K>,
        data: T,
        now: u64,
        first: Option<TcpEvent>,
    ) -> Result<SessionId, InsertError> {
        let keys = 1 + usize::from(reply.is_some());
        if self.store.len >= self.capacity
            || self.store.index.len() + keys > self.store.index.max_keys()
        {
            return Err(InsertError::Full);
        }
        let h_original = hash_key(&self.store.hasher, &original);
        if self.store.find(h_original, &original).is_some() {
            return Err(InsertError::KeyExists);
        }
        let h_reply = match &reply {
            Some(r) => {
                if *r == original {
                    return Err(InsertError::KeyExists);
                }
                let h = hash_key(&self.store.hasher, r);
                if self.store.find(h, r).is_some() {
                    return Err(InsertError::KeyExists);
                }
                Some(h)
            }
            None => None,
        };
        let state = match original.proto() {
            Proto::Tcp => {
                // The table third of a client packet (see `Session::state_dir`).
                let dir = if reply.is_some() {
                    StateDir::Input
                } else {
                    StateDir::InputOnly
                };
                SessionState::Tcp(
                    first.map_or(TcpState::None, |ev| next_state(dir, ev, TcpState::None)),
                )
            }
            Proto::Udp => SessionState::Udp,
            Proto::Icmp => SessionState::Icmp,
        };
        let id = self
            .store
            .alloc(Session {
                original,
                reply,
                state,
                created: now,
                deadline: now.saturating_add(self.timeouts.get(state)),
                data,
                link: Link::default(),
                gen: 0,
            })
            .ok_or(InsertError::Full)?;
        // Room for both keys was checked above.
        self.store
            .index
            .insert(h_original, entry(id.index, Dir::Original));
        if let Some(h) = h_reply {
            self.store.index.insert(h, entry(id.index, Dir::Reply));
        }
        self.wheel.skip_to(now);
        self.wheel.arm(&mut self.store, id.index);
        Ok(id)
    }

    /// A packet of session `id` went by in direction `dir`: a TCP session moves through the
    /// transition table (`event` `None`: no transition; see [`Session::state_dir`] for the
    /// table third), then the session is re-armed to `now + timeout(new state)` — except that
    /// a reply-direction packet that leaves a [half-open](TcpState::half_open) session in its
    /// state does not re-arm it: a server retransmitting its SYN/ACK (or ACKing from
    /// TIME_WAIT) to a client that never answers does not keep the session alive. UDP and
    /// ICMP sessions ignore `event`. Returns the new state, or `None` for an unknown or stale
    /// id.
    #[inline(always)]
    pub fn on_packet(
        &mut self,
        id: SessionId,
        dir: Dir,
        event: Option<TcpEvent>,
        now: u64,
    ) -> Option<SessionState> {
        let s = self
            .store
            .session_mut(id.index)
            .filter(|s| s.gen == id.gen)?;
        let (state, rearm) = match (s.state, event) {
            (SessionState::Tcp(st), ev) => {
                let next = match ev {
                    Some(ev) => next_state(s.state_dir(dir), ev, st),
                    None => st,
                };
                let held = dir == Dir::Reply && next == st && next.half_open();
                (SessionState::Tcp(next), !held)
            }
            (st, _) => (st, true),
        };
        s.state = state;
        if !rearm {
            return Some(state);
        }
        if s.set_deadline(now.saturating_add(self.timeouts.get(state))) {
            self.wheel.rearm(&mut self.store, id.index);
        }
        Some(state)
    }

    /// Forces the state of session `id` and re-arms it to `now + timeout(state)`, as IPVS
    /// does outside the packet path (`ip_vs_tcp_conn_listen` puts a session in LISTEN;
    /// connection sync installs the peer's state). Returns `None` for an unknown or stale id.
    pub fn set_state(&mut self, id: SessionId, state: SessionState, now: u64) -> Option<()> {
        let deadline = now.saturating_add(self.timeouts.get(state));
        let s = self.session_mut(id)?;
        s.state = state;
        if s.set_deadline(deadline) {
            self.wheel.rearm(&mut self.store, id.index);
        }
        Some(())
    }

    /// Re-arms session `id` to expire `ms` milliseconds after `now`, whatever its state's
    /// timeout (IPVS persistence templates carry their service's own timeout). The state is
    /// unchanged. Returns `None` for an unknown or stale id.
    pub fn refresh_for(&mut self, id: SessionId, now: u64, ms: u64) -> Option<()> {
        let s = self.session_mut(id)?;
        if s.set_deadline(now.saturating_add(ms)) {
            self.wheel.rearm(&mut self.store, id.index);
        }
        Some(())
    }

    /// Removes session `id` and returns it (`None` for an unknown or stale id).
    pub fn remove(&mut self, id: SessionId) -> Option<Session<T, K>> {
        self.get(id)?;
        self.wheel.cancel(&mut self.store, id.index);
        self.store.release(id.index).map(|(_, s)| s)
    }

    /// Removes every session whose deadline is `<= now`, at most `budget` of them per call (the
    /// rest stay due for the next call), and hands each to `f`. Returns how many expired.
    ///
    /// A session is expired by the first call whose `now >= deadline` (budget permitting) and
    /// never by one with `now < deadline`.
    pub fn expire(
        &mut self,
        now: u64,
        budget: usize,
        mut f: impl FnMut(SessionId, Session<T, K>),
    ) -> usize {
        self.wheel
            .expire(&mut self.store, now, budget, |store, slot| {
                if let Some((id, s)) = store.release(slot) {
                    f(id, s);
                }
            })
    }

    /// Every session, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session<T, K>)> {
        self.iter_slots(0..self.slot_bound())
    }

    /// One past the highest slot any session has occupied: every [`SessionId::index`] is
    /// below it. It only grows (up to the capacity), so a walk of the table in slot order can
    /// stop and resume with [`Table::iter_slots`] at any slot number.
    #[inline]
    pub fn slot_bound(&self) -> usize {
        self.store.slots.len()
    }

    /// The sessions in the slots `slots` (clamped to [`Table::slot_bound`]), in slot order:
    /// it reads `slots.len()` slots at most, whatever the sessions in them, so a long walk can
    /// be done in bounded steps. A session stays in its slot for its whole life: walking
    /// consecutive ranges visits each session that lived throughout exactly once, and a session
    /// inserted or removed in between at most once.
    pub fn iter_slots(
        &self,
        slots: core::ops::Range<usize>,
    ) -> impl Iterator<Item = (SessionId, &Session<T, K>)> {
        let end = slots.end.min(self.store.slots.len());
        let start = slots.start.min(end);
        self.store.slots[start..end]
            .iter()
            .zip(start..)
            .filter_map(|(slot, i)| match slot {
                Slot::Occupied(s) => Some((
                    SessionId {
                        index: i as u32,
                        gen: s.gen,
                    },
                    s,
                )),
                Slot::Vacant { .. } => None,
            })
    }

    /// Bytes allocated by the table (slab, index and wheel), for capacity planning.
    pub fn allocation_size(&self) -> usize {
        self.store.slots.capacity() * core::mem::size_of::<Slot<T, K>>()
            + self.store.index.allocation_size()
            + (self.wheel.slots() + 1) * core::mem::size_of::<Link>()
    }

    /// Number of buckets of the key index (fixed at construction).
    pub fn index_buckets(&self) -> usize {
        self.store.index.buckets()
    }

    /// The memory regions of the slab and the index, as (start address, length in bytes), for
    /// advising the kernel about their pages (e.g. transparent huge pages).
    pub fn memory_regions(&self) -> [(usize, usize); 2] {
        let slots = &self.store.slots;
        let words = self.store.index.memory();
        [
            (
                slots.as_ptr() as usize,
                slots.capacity() * core::mem::size_of::<Slot<T, K>>(),
            ),
            (words.as_ptr() as usize, core::mem::size_of_val(words)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        FlowKey::new(
            Proto::Tcp,
            Ipv4Addr::from(0x0a00_0000 + i),
            (i % 50_000) as u16 + 1024,
            Ipv4Addr::new(192, 0, 2, 1),
            80,
        )
    }

    #[test]
    fn lookup_reads_the_first_32_bytes() {
        use core::mem::offset_of;
        type S = Session<[u8; 32]>;
        assert_eq!(offset_of!(S, original), 0);
        assert_eq!(offset_of!(S, reply), 14);
        assert_eq!(offset_of!(S, gen), 28);
        assert_eq!(offset_of!(S, state), 30);
        assert!(offset_of!(S, state) < Table::<[u8; 32]>::LOOKUP_BYTES);
        // The vacant variant lives in the niche of the first key: an occupied slot and its
        // session start at the same address.
        let slot = Slot::Occupied(Session {
            original: key(1),
            reply: None,
            gen: 0,
            state: SessionState::Udp,
            link: Link::default(),
            created: 0,
            deadline: 0,
            data: [0u8; 32],
        });
        let Slot::Occupied(s) = &slot else {
            unreachable!()
        };
        assert_eq!(
            s as *const S as usize,
            &slot as *const Slot<[u8; 32]> as usize
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 14);
        assert_eq!(core::mem::size_of::<Option<FlowKey>>(), 14);
        assert_eq!(core::mem::size_of::<SessionState>(), 1);
        assert_eq!(core::mem::size_of::<Session<[u8; 32]>>(), 88);
        assert_eq!(core::mem::size_of::<Slot<[u8; 32]>>(), 88);
        assert_eq!(core::mem::size_of::<Slot<[u64; 4]>>(), 88);
    }

    #[test]
    fn ipv6_sizes() {
        use crate::key::FlowKey6;
        // An IPv6 table's sessions are wider by their keys only; an IPv4 table's are not
        // touched by the family parameter (`sizes` above).
        assert_eq!(core::mem::size_of::<FlowKey6>(), 38);
        assert_eq!(core::mem::size_of::<Option<FlowKey6>>(), 38);
        assert_eq!(core::mem::size_of::<Session<[u8; 32], FlowKey6>>(), 136);
        assert_eq!(core::mem::size_of::<Slot<[u8; 32], FlowKey6>>(), 136);
    }

    #[test]
    fn an_ipv6_table_tracks_sessions_by_both_keys_and_expires_them() {
        use crate::key::FlowKey6;
        use crate::tcp_state::TcpEvent;
        let c: core::net::Ipv6Addr = "2001:db8:99::7".parse().unwrap();
        let vip: core::net::Ipv6Addr = "2001:db8:2::100".parse().unwrap();
        let rs: core::net::Ipv6Addr = "2001:db8:10:1::11".parse().unwrap();
        let lip: core::net::Ipv6Addr = "2001:db8:10:1::201".parse().unwrap();
        let mut t: Table<u32, FlowKey6> = Table::with_capacity(64, Timeouts::default());
        let original = FlowKey6::new(Proto::Tcp, c, 40000, vip, 80);
        let reply = FlowKey6::new(Proto::Tcp, rs, 8080, lip, 1025);
        let id = t.insert(original, Some(reply), 7, 1_000).unwrap();
        assert_eq!(t.lookup(&original), Some((id, Dir::Original)));
        assert_eq!(t.lookup(&reply), Some((id, Dir::Reply)));
        assert_eq!(t.lookup(&original.mirror()), None);
        // Keys that differ only above the low 64 bits of an address are different flows.
        let other = FlowKey6::new(
            Proto::Tcp,
            "2001:db9:99::7".parse().unwrap(),
            40000,
            vip,
            80,
        );
        assert_eq!(t.lookup(&other), None);
        assert_eq!(
            t.insert(original, None, 8, 1_000),
            Err(InsertError::KeyExists)
        );
        let hash = t.hash(&reply);
        assert_eq!(t.lookup_hashed(&reply, hash), Some((id, Dir::Reply)));
        t.on_packet(id, Dir::Original, Some(TcpEvent::Syn), 1_001);
        assert_eq!(
            t.get(id).map(|s| (s.state, s.data)),
            Some((SessionState::Tcp(crate::TcpState::SynRecv), 7))
        );
        let mut gone = Vec::new();
        t.expire(10_000_000, usize::MAX, |_, s| gone.push(s.original));
        assert_eq!(gone, vec![original]);
        assert_eq!((t.len(), t.lookup(&reply)), (0, None));
    }

    #[test]
    fn index_is_sized_at_construction() {
        let t: Table<()> = Table::with_capacity(1000, Timeouts::default());
        assert_eq!(t.index_buckets(), 512);
        let t: Table<()> = Table::with_capacity(1500, Timeouts::default());
        assert_eq!(t.index_buckets(), 512);
        for cap in [0, 1, 7, 1000, 4096, 917_504, 917_505, 1_000_000] {
            let t: Table<()> = Table::with_capacity(cap, Timeouts::default());
            // Two keys per session fill at most 3/4 of the ten words per bucket.
            assert!(2 * cap * 4 <= t.index_buckets() * 10 * 3, "capacity {cap}");
            assert_eq!(t.store.index.max_keys(), 2 * cap);
        }
        let t: Table<()> = Table::with_capacity(1 << 20, Timeouts::default());
        assert_eq!(t.index_buckets(), 1 << 19);
        let t: Table<()> = Table::with_capacity(10_000_000, Timeouts::default());
        assert_eq!(t.index_buckets(), 1 << 22);
        let t: Table<()> = Table::with_capacity(0, Timeouts::default());
        assert_eq!(t.capacity(), 0);
    }

    #[test]
    fn stale_ids_are_refused() {
        let mut t = Table::with_capacity(1, Timeouts::default());
        let a = t.insert(key(1), None, 1u8, 0).unwrap();
        assert!(t.remove(a).is_some());
        let b = t.insert(key(2), None, 2u8, 0).unwrap();
        assert_eq!(a.index(), b.index());
        assert_ne!(a, b);
        assert!(t.get(a).is_none());
        assert!(t.on_packet(a, Dir::Original, None, 0).is_none());
        assert!(t.remove(a).is_none());
        assert_eq!(t.get(b).map(|s| s.data), Some(2));
    }

    #[test]
    fn churn_at_capacity_never_allocates() {
        let cap = 4096;
        let mut t: Table<u32> = Table::with_capacity(cap, Timeouts::default());
        let size = t.allocation_size();
        let buckets = t.index_buckets();
        let mut ids = Vec::with_capacity(cap);
        let mut next = 0u32;
        let two = |n: u32| (key(n), Some(key(n).mirror()));
        for _ in 0..cap {
            let (o, r) = two(next);
            ids.push(t.insert(o, r, next, 0).unwrap());
            next += 1;
        }
        assert_eq!(t.insert(key(next), None, 0, 0), Err(InsertError::Full));
        // Replace sessions one by one, many times over.
        for round in 0..200_000usize {
            let i = round.wrapping_mul(2_654_435_761) % cap;
            assert!(t.remove(ids[i]).is_some());
            let (o, r) = two(next);
            ids[i] = t.insert(o, r, next, 0).unwrap();
            next += 1;
        }
        assert_eq!(t.len(), cap);
        assert_eq!(t.allocation_size(), size);
        assert_eq!(t.index_buckets(), buckets);
    }

    #[test]
    fn a_walk_in_slot_ranges_sees_each_lasting_session_once() {
        let mut t: Table<u32> = Table::with_capacity(1000, Timeouts::default());
        let ids: Vec<SessionId> = (0..600)
            .map(|i| t.insert(key(i), None, i, 0).unwrap())
            .collect();
        // Holes: every third session is gone before the walk.
        for id in ids.iter().step_by(3) {
            t.remove(*id).unwrap();
        }
        assert_eq!(t.slot_bound(), 600);
        let mut seen = Vec::new();
        let mut from = 0;
        let mut steps = 0;
        while from < t.slot_bound() {
            let to = from + 7;
            seen.extend(t.iter_slots(from..to).map(|(id, s)| {
                assert!((from..to).contains(&id.index()));
                assert_eq!(t.get(id).map(|g| g.data), Some(s.data));
                s.data
            }));
            // Churn between steps: a session ends ahead of the walk and one behind it; the
            // new sessions reuse their slots.
            if steps == 20 {
                t.remove(ids[500]).unwrap();
                t.remove(ids[4]).unwrap();
                t.insert(key(10_000), None, 10_000, 0).unwrap();
                t.insert(key(10_001), None, 10_001, 0).unwrap();
            }
            from = to;
            steps += 1;
        }
        let lasting: Vec<u32> = (0..600).filter(|i| i % 3 != 0 && *i != 500).collect();
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "a session seen twice");
        for i in &lasting {
            assert!(seen.contains(i), "session {i} missed");
        }
        assert!(!seen.contains(&500), "ended ahead of the walk");
        assert!(
            seen.contains(&4),
            "ended behind the walk, after it was seen"
        );
        // One of the new sessions took the slot ahead of the walk and is seen; the one behind
        // it is not.
        assert_eq!(seen.iter().filter(|d| **d >= 10_000).count(), 1);
        // Out-of-range and empty ranges read nothing.
        assert_eq!(t.iter_slots(600..10_000).count(), 0);
        let backwards = core::ops::Range { start: 50, end: 10 };
        assert_eq!(t.iter_slots(backwards).count(), 0);
        assert_eq!(t.iter_slots(0..usize::MAX).count(), t.len());
        assert_eq!(t.iter().count(), t.len());
    }

    #[test]
    fn get_mut_writes_data_only() {
        let mut t = Table::with_capacity(4, Timeouts::default());
        let id = t.insert(key(1), None, 0u32, 5).unwrap();
        {
            let mut s = t.get_mut(id).unwrap();
            assert_eq!(s.created, 5);
            *s.data_mut() += 7;
        }
        *t.data_mut(id).unwrap() += 1;
        assert_eq!(t.get(id).unwrap().data, 8);
    }
}
