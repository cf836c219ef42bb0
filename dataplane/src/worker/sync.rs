//! Session sync on the worker ([`crate::sync`]): what changed is noted on the packet path (a
//! session id in a preallocated list, nothing more), and the slow jobs turn the notes into
//! records on the [`SyncLink`]'s outbound ring, sweep the whole table now and then (refresh,
//! and a peer's bulk sync), and install the records peers sent.
//!
//! A session installed from a peer is marked ([`Forward::peer`]) until this director moves
//! its state itself: a peer's later record for it updates its state and extends its
//! deadline, while a session this director drives keeps its own state (the record is
//! counted `sync_kept`). A record that disagrees with a session here — another dest, another
//! LIP port, a key already used the other way — is refused (`sync_conflicts`); nothing local
//! is ever replaced.
//!
//! IPv6 sessions (the IPv6 table: FullNAT66, NAT66, DR, TUN, NAT64) go the same way in their
//! own record ([`SyncSession6`]): noted on the same events, swept after the IPv4 sessions,
//! installed into the IPv6 table with the LIP pair taken from the IPv6 pool (FullNAT66) or
//! the IPv4 one (NAT64); a joined SYN-proxied one carries its shift (record type 6), a
//! pending one waits until it joins, as for IPv4.

use core::net::IpAddr;
use std::sync::Arc;

use super::service6::{release_lip6, template_key6, Forward6, Via6};
use super::session::{
    is_active, rewritten_key, template_key, Forward, Preamble, SynProxy, Template, Via,
};
use super::Worker;
use crate::counters::Counter;
use crate::device::Device;
use crate::lip::{TakeError, Toward};
use crate::nat64;
use crate::sync::{
    SyncLink, SyncPreamble, SyncProxy, SyncRecord, SyncSession, SyncSession6, SyncTemplate,
};
use conntrack::{Dir, FlowKey, FlowKey6, InsertError, Proto, Session, SessionId};
use sched::ForwardMode;

/// Changes noted between two slow jobs at most; more wait for the next refresh sweep
/// (counted `sync_unqueued`).
const DIRTY_CAP: usize = 4096;
/// Table slots a sweep reads per slow job.
const SWEEP_SLOTS: usize = 4096;
/// Records installed per slow job at most.
const INSTALL_BUDGET: usize = 2048;

/// What changed, for the slow jobs to export.
#[derive(Clone, Copy, Debug)]
enum Dirty {
    /// A slot of the list not written yet.
    Empty,
    Session(SessionId),
    /// A session of the IPv6 table.
    Session6(SessionId),
    Template(SessionId),
}

/// The tables a sweep reads, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Sessions,
    Sessions6,
    Templates,
}

/// Where a sweep is: the session table, the IPv6 session table, then the template table.
#[derive(Clone, Copy, Debug)]
struct Sweep {
    /// The request it answers (0: a refresh nobody asked for).
    request: u32,
    phase: Phase,
    slot: usize,
}

/// A worker's sync state.
#[derive(Debug)]
pub(super) struct SyncState {
    link: Arc<SyncLink>,
    /// Whether to export (the link's export flag, read in the slow jobs).
    exporting: bool,
    /// Changes noted since the last slow job: `dirty[..noted]`.
    dirty: Box<[Dirty]>,
    noted: usize,
    sweep: Option<Sweep>,
    /// When the last sweep started (ms).
    swept_at: u64,
    /// The last sweep request seen.
    seen_request: u32,
}

impl SyncState {
    pub(super) fn new(link: Arc<SyncLink>) -> SyncState {
        let seen_request = link.sweeps_asked();
        SyncState {
            link,
            exporting: false,
            dirty: vec![Dirty::Empty; DIRTY_CAP].into_boxed_slice(),
            noted: 0,
            sweep: None,
            swept_at: 0,
            seen_request,
        }
    }
}

impl<D: Device> Worker<D> {
    /// Connects this worker to a sync daemon through `link`.
    pub fn with_sync(mut self, link: Arc<SyncLink>) -> Self {
        self.sync = Some(SyncState::new(link));
        self
    }

    /// The packet path: session `id` was opened or changed state. Only its id is noted, in
    /// a preallocated list (the slow jobs do the rest). Out of line: a state change is the
    /// rare packet, and the call keeps the common one's code as it was.
    #[cold]
    #[inline(never)]
    pub(super) fn sync_changed(&mut self, id: SessionId) {
        if let Some(s) = &mut self.sync {
            note(s, &mut self.counters, Dirty::Session(id));
        }
    }

    /// The packet path: IPv6 session `id` was opened or changed state (as
    /// [`sync_changed`](Self::sync_changed)).
    #[cold]
    #[inline(never)]
    pub(super) fn sync_changed6(&mut self, id: SessionId) {
        if let Some(s) = &mut self.sync {
            note(s, &mut self.counters, Dirty::Session6(id));
        }
    }

    /// A persistence template was made for a new session.
    pub(super) fn sync_template_made(&mut self, id: SessionId) {
        if let Some(s) = &mut self.sync {
            note(s, &mut self.counters, Dirty::Template(id));
        }
    }

    /// The slow jobs' part: export what changed, sweep on, install what peers sent.
    pub(super) fn sync_jobs(&mut self, now: u64) {
        let Some(mut s) = self.sync.take() else {
            return;
        };
        // Before the installs: a session this director moved is its own from now on. (Changes
        // noted while no master daemon ran are not sent: a sweep starts with the export.)
        self.export_dirty(&mut s, now);
        let exporting = s.link.exporting();
        if exporting != s.exporting {
            s.exporting = exporting;
            s.sweep = None;
        }
        if s.exporting {
            self.sweep_step(&mut s, now);
        }
        for _ in 0..INSTALL_BUDGET {
            let Some(r) = s.link.pop_in() else {
                break;
            };
            let c = self.install(r, now);
            self.counters.count(c);
        }
        self.sync = Some(s);
    }

    /// The changes noted since the last slow job: each session moved here is no longer the
    /// peer's, and (when exporting) goes out once, as it stands now.
    fn export_dirty(&mut self, s: &mut SyncState, now: u64) {
        let noted = core::mem::take(&mut s.noted);
        for &d in &s.dirty[..noted] {
            let r = match d {
                Dirty::Session(id) => {
                    let Some(f) = self.table.data_mut(id) else {
                        continue;
                    };
                    f.peer = false;
                    if !s.exporting || f.sync_noted {
                        continue;
                    }
                    f.sync_noted = true;
                    self.table
                        .get(id)
                        .and_then(|x| self.session_record(id, x, now))
                }
                Dirty::Session6(id) => {
                    let Some(f) = self.table6.data_mut(id) else {
                        continue;
                    };
                    f.set_peer(false);
                    if !s.exporting || f.sync_noted() {
                        continue;
                    }
                    f.set_sync_noted(true);
                    self.table6
                        .get(id)
                        .and_then(|x| self.session6_record(id, x, now))
                }
                Dirty::Template(id) if s.exporting => {
                    self.templates.get(id).and_then(|t| template_record(t, now))
                }
                Dirty::Template(_) | Dirty::Empty => None,
            };
            if let Some(r) = r {
                queue(&s.link, &mut self.counters, r);
            }
        }
        for &d in &s.dirty[..noted] {
            match d {
                Dirty::Session(id) => {
                    if let Some(f) = self.table.data_mut(id) {
                        f.sync_noted = false;
                    }
                }
                Dirty::Session6(id) => {
                    if let Some(f) = self.table6.data_mut(id) {
                        f.set_sync_noted(false);
                    }
                }
                Dirty::Template(_) | Dirty::Empty => {}
            }
        }
    }

    /// Reads on through the table (then the IPv6 table, then the templates), queueing every
    /// session, while the outbound ring has room; starts a sweep when a peer asked for one
    /// or the refresh period has passed.
    fn sweep_step(&mut self, s: &mut SyncState, now: u64) {
        if s.sweep.is_none() {
            let asked = s.link.sweeps_asked();
            let refresh = s.link.refresh_ms();
            if asked != s.seen_request {
                s.seen_request = asked;
                s.sweep = Some(Sweep {
                    request: asked,
                    phase: Phase::Sessions,
                    slot: 0,
                });
            } else if refresh > 0 && now.saturating_sub(s.swept_at) >= refresh {
                s.sweep = Some(Sweep {
                    request: 0,
                    phase: Phase::Sessions,
                    slot: 0,
                });
            } else {
                return;
            }
            s.swept_at = now;
        }
        let Some(mut w) = s.sweep else {
            return;
        };
        let mut room = s.link.room_out();
        loop {
            let end = w.slot + SWEEP_SLOTS;
            // Where this step stopped for want of room, if it did.
            let mut stopped = None;
            let bound = match w.phase {
                Phase::Sessions => {
                    let bound = self.table.slot_bound();
                    for (id, x) in self.table.iter_slots(w.slot..end.min(bound)) {
                        if room == 0 {
                            stopped = Some(id.index());
                            break;
                        }
                        if let Some(r) = self.session_record(id, x, now) {
                            queue(&s.link, &mut self.counters, r);
                            room -= 1;
                        }
                    }
                    bound
                }
                Phase::Sessions6 => {
                    let bound = self.table6.slot_bound();
                    for (id, x) in self.table6.iter_slots(w.slot..end.min(bound)) {
                        if room == 0 {
                            stopped = Some(id.index());
                            break;
                        }
                        if let Some(r) = self.session6_record(id, x, now) {
                            queue(&s.link, &mut self.counters, r);
                            room -= 1;
                        }
                    }
                    bound
                }
                Phase::Templates => {
                    let bound = self.templates.slot_bound();
                    for (id, t) in self.templates.iter_slots(w.slot..end.min(bound)) {
                        if room == 0 {
                            stopped = Some(id.index());
                            break;
                        }
                        if let Some(r) = template_record(t, now) {
                            queue(&s.link, &mut self.counters, r);
                            room -= 1;
                        }
                    }
                    bound
                }
            };
            if let Some(slot) = stopped {
                w.slot = slot;
                s.sweep = Some(w);
                return;
            }
            if end < bound {
                w.slot = end;
                s.sweep = Some(w);
                return;
            }
            // On to the next table, in this job still.
            w.slot = 0;
            w.phase = match w.phase {
                Phase::Sessions => Phase::Sessions6,
                Phase::Sessions6 => Phase::Templates,
                Phase::Templates => {
                    if w.request != 0 {
                        s.link.finish_sweep(w.request);
                    }
                    s.sweep = None;
                    return;
                }
            };
        }
    }

    /// A session as a sync record; `None` while a SYN-proxied session waits for its RS (its
    /// cookie comes from this worker's secret, so a peer could not join its halves: it is
    /// sent once both halves are open).
    fn session_record(&self, id: SessionId, x: &Session<Forward>, now: u64) -> Option<SyncRecord> {
        let f = &x.data;
        let synproxy = match f.synproxy {
            SynProxy::Off => SyncProxy::Off,
            SynProxy::On => SyncProxy::On {
                shift: self.proxy_words[id.index()],
            },
            SynProxy::Pending(_) => return None,
        };
        let k = &x.original;
        Some(SyncRecord::Session(SyncSession {
            proto: k.proto,
            client: (k.src, k.sport),
            vip: (k.dst, k.dport),
            rip: f.rip,
            rport: f.rport,
            mode: f.mode(),
            lip: f.local(),
            state: x.state,
            expires_in_ms: x.deadline.saturating_sub(now).min(u64::from(u32::MAX)) as u32,
            persist_ms: f.persist_ms,
            synproxy,
            preamble: f.preamble.carrier().map(|carrier| SyncPreamble {
                carrier,
                phase: f.preamble.phase(),
                first_seq: f.first_seq,
            }),
        }))
    }

    /// An IPv6 session as a sync record (`None` if its LIP is no longer in the pool, it would
    /// not validate, or, as for IPv4, it is SYN-proxied and waiting for its RS).
    fn session6_record(
        &self,
        id: SessionId,
        x: &Session<Forward6, FlowKey6>,
        now: u64,
    ) -> Option<SyncRecord> {
        let f = &x.data;
        let k = &x.original;
        let synproxy = match f.synproxy() {
            SynProxy::Off => SyncProxy::Off,
            SynProxy::On => SyncProxy::On {
                shift: self.proxy_words6[id.index()],
            },
            SynProxy::Pending(_) => return None,
        };
        let (rip, lip) = match f.via {
            Via6::Nat64 { lip, lport, .. } => (
                IpAddr::V4(f.rip.to_ipv4_mapped()?),
                Some((IpAddr::V4(lip), lport)),
            ),
            Via6::FullNat { lip, lport, .. } => (
                IpAddr::V6(f.rip),
                Some((IpAddr::V6(self.lips6.as_ref()?.lip(lip)?), lport)),
            ),
            Via6::Dr | Via6::Nat { .. } | Via6::Tun => (IpAddr::V6(f.rip), None),
        };
        let r = SyncRecord::Session6(SyncSession6 {
            proto: k.proto,
            client: (k.src, k.sport),
            vip: (k.dst, k.dport),
            rip,
            rport: f.rport,
            mode: f.mode(),
            lip,
            state: x.state,
            expires_in_ms: x.deadline.saturating_sub(now).min(u64::from(u32::MAX)) as u32,
            persist_ms: if f.persistent() {
                self.templates6
                    .lookup(&template_key6(k))
                    .and_then(|(tid, _)| self.templates6.get(tid))
                    .map_or(0, |t| t.data.timeout_ms)
            } else {
                0
            },
            synproxy,
            preamble: f.preamble().carrier().map(|carrier| SyncPreamble {
                carrier,
                phase: f.preamble().phase(),
                first_seq: f.first_seq(),
            }),
        });
        r.validate().ok().map(|()| r)
    }

    /// Installs a peer's record; returns the counter that says how it went.
    pub(super) fn install(&mut self, r: SyncRecord, now: u64) -> Counter {
        if r.validate().is_err() {
            // The daemon checked it already; a record that slipped through changes nothing.
            return Counter::SyncRefused;
        }
        match r {
            SyncRecord::Session(x) => self.install_session(&x, now),
            SyncRecord::Session6(x) => self.install_session6(&x, now),
            SyncRecord::Template(t) => self.install_template(&t, now),
            // The daemon keeps views; one that reached a worker changes nothing.
            SyncRecord::View(_) => Counter::SyncRefused,
        }
    }

    fn install_session(&mut self, x: &SyncSession, now: u64) -> Counter {
        let synproxy = match x.synproxy {
            SyncProxy::Off => SynProxy::Off,
            SyncProxy::On { .. } => SynProxy::On,
            SyncProxy::Pending { .. } => return Counter::SyncRefused,
        };
        let Some(si) = self.snap.service_index(x.proto, x.vip.0, x.vip.1) else {
            return Counter::SyncUnknownService;
        };
        let icmp = x.proto == Proto::Icmp;
        let Some(di) = self.snap.services()[si]
            .dests()
            .iter()
            .position(|d| d.addr == core::net::IpAddr::V4(x.rip) && (icmp || d.port == x.rport))
        else {
            return Counter::SyncUnknownService;
        };
        let via = match (x.mode, x.lip) {
            (ForwardMode::Nat, _) => Via::Nat,
            (ForwardMode::Dr, _) => Via::Dr,
            (ForwardMode::Tun, _) => Via::Tun,
            (ForwardMode::FullNat, Some((lip, lport))) => Via::FullNat { lip, lport },
            (ForwardMode::FullNat, None) => return Counter::SyncRefused,
        };
        let f = Forward {
            via,
            rip: x.rip,
            rport: x.rport,
            slot: self.snap.dest_slot(si, di),
            persist_ms: x.persist_ms,
            synproxy,
            peer: true,
            sync_noted: false,
            preamble: x.preamble.map_or(Preamble::NONE, |p| {
                Preamble::new(Some(p.carrier)).at(p.phase)
            }),
            first_seq: x.preamble.map_or(0, |p| p.first_seq),
        };
        let key = FlowKey::new(x.proto, x.client.0, x.client.1, x.vip.0, x.vip.1);
        if let Some((id, dir)) = self.table.lookup(&key) {
            return self.refresh_from_peer(id, dir, &f, x, now);
        }
        let to = Toward {
            rip: f.rip,
            rport: f.rport,
            now,
        };
        if let Via::FullNat { lip, lport } = f.via {
            let peer = self.snap.local(lip).is_some_and(|l| l.peer);
            match self.lips.as_mut().map(|p| p.take(lip, lport, to)) {
                Some(Ok(())) => {}
                // A peer director's LIP: its ports are that director's to hand out, none of
                // this one's pool; the session is only served here.
                _ if peer => {}
                Some(Err(TakeError::InUse)) => return Counter::SyncConflicts,
                Some(Err(TakeError::Foreign)) | None => return Counter::SyncForeignLip,
            }
        }
        let reply = match x.mode {
            ForwardMode::Nat | ForwardMode::FullNat => Some(rewritten_key(&key, &f).mirror()),
            ForwardMode::Dr | ForwardMode::Tun => None,
        };
        let id = match self.table.insert(key, reply, f, now) {
            Ok(id) => id,
            Err(e) => {
                if let (Via::FullNat { lip, lport }, Some(p)) = (f.via, self.lips.as_mut()) {
                    p.free_now(lip, lport, to);
                }
                return match e {
                    InsertError::Full => Counter::SyncTableFull,
                    InsertError::KeyExists => Counter::SyncConflicts,
                };
            }
        };
        self.table.set_state(id, x.state, now);
        self.table.refresh_for(id, now, u64::from(x.expires_in_ms));
        if let SyncProxy::On { shift } = x.synproxy {
            self.proxy_words[id.index()] = shift;
        }
        self.stats.session_installed(f.slot, is_active(x.state));
        if x.persist_ms > 0 {
            self.hold_synced_template(&key, &f, now);
        }
        Counter::SyncInstalled
    }

    /// A record for a session this table already has: the same flow forwarded the same way
    /// takes the peer's state if the session is the peer's (this director has not moved it
    /// since), and the later of the two deadlines; anything else is a conflict.
    fn refresh_from_peer(
        &mut self,
        id: SessionId,
        dir: Dir,
        f: &Forward,
        x: &SyncSession,
        now: u64,
    ) -> Counter {
        let Some(cur) = self.table.get(id) else {
            return Counter::SyncConflicts;
        };
        let same = dir == Dir::Original
            && cur.data.via == f.via
            && cur.data.rip == f.rip
            && cur.data.rport == f.rport;
        if !same {
            return Counter::SyncConflicts;
        }
        if !cur.data.peer {
            return Counter::SyncKept;
        }
        let (was, deadline) = (cur.state, cur.deadline);
        let until = deadline.max(now.saturating_add(u64::from(x.expires_in_ms)));
        self.table.set_state(id, x.state, now);
        self.table.refresh_for(id, now, until - now);
        if let SyncProxy::On { shift } = x.synproxy {
            self.proxy_words[id.index()] = shift;
        }
        if let Some(d) = self.table.data_mut(id) {
            // The peer's word on its header: it may have sent it, or seen it acknowledged.
            d.preamble = f.preamble;
            d.first_seq = f.first_seq;
        }
        self.stats
            .session_moved(f.slot, is_active(was), is_active(x.state));
        Counter::SyncUpdated
    }

    /// Installs a peer's IPv6 session into the IPv6 table, its LIP pair taken from the IPv6
    /// pool (FullNAT66: the LIP must be one of this director's) or the IPv4 one (NAT64: a
    /// peer director's LIP is served without its pool, as IPv4 FullNAT's).
    fn install_session6(&mut self, x: &SyncSession6, now: u64) -> Counter {
        let Some(si) = self.snap.service_index6(x.proto, x.vip.0, x.vip.1) else {
            return Counter::SyncUnknownService;
        };
        let Some(di) = self.snap.services()[si]
            .dests()
            .iter()
            .position(|d| d.addr == x.rip && d.port == x.rport)
        else {
            return Counter::SyncUnknownService;
        };
        // A joined proxied session goes on shifting (the rules allow On in NAT and FullNAT
        // only).
        let proxy = match x.synproxy {
            SyncProxy::On { .. } => SynProxy::On,
            SyncProxy::Off | SyncProxy::Pending { .. } => SynProxy::Off,
        };
        let (rip, via) = match (x.mode, x.rip, x.lip) {
            (ForwardMode::Nat, IpAddr::V6(rip), None) => (rip, Via6::Nat { proxy }),
            (ForwardMode::Dr, IpAddr::V6(rip), None) => (rip, Via6::Dr),
            (ForwardMode::Tun, IpAddr::V6(rip), None) => (rip, Via6::Tun),
            (ForwardMode::FullNat, IpAddr::V6(rip), Some((IpAddr::V6(lip), lport))) => {
                let Some(i) = self.lips6.as_ref().and_then(|p| p.index_of(lip)) else {
                    return Counter::SyncForeignLip;
                };
                (
                    rip,
                    Via6::FullNat {
                        lip: i,
                        lport,
                        proxy,
                    },
                )
            }
            (ForwardMode::FullNat, IpAddr::V4(rip), Some((IpAddr::V4(lip), lport))) => {
                (nat64::mapped(rip), Via6::Nat64 { lip, lport, proxy })
            }
            // The rules refused every other combination already.
            _ => return Counter::SyncRefused,
        };
        let Ok(slot) = u16::try_from(self.snap.dest_slot(si, di)) else {
            return Counter::SyncUnknownService;
        };
        let mut f = Forward6::new(rip, x.rport, via, slot, x.persist_ms > 0);
        f.set_peer(true);
        if let Some(p) = x.preamble {
            f.set_preamble(Preamble::new(Some(p.carrier)).at(p.phase));
            f.set_first_seq(p.first_seq);
        }
        let key = FlowKey6::new(x.proto, x.client.0, x.client.1, x.vip.0, x.vip.1);
        if let Some((id, dir)) = self.table6.lookup(&key) {
            return self.refresh_from_peer6(id, dir, &f, x, now);
        }
        let reply = match f.via {
            Via6::Nat { .. } => Some(FlowKey6::new(x.proto, rip, x.rport, key.src, key.sport)),
            Via6::FullNat { lport, .. } => match x.lip {
                Some((IpAddr::V6(lip), _)) => {
                    Some(FlowKey6::new(x.proto, rip, x.rport, lip, lport))
                }
                _ => return Counter::SyncRefused,
            },
            Via6::Nat64 { lip, lport, .. } => Some(FlowKey6::new(
                x.proto,
                rip,
                x.rport,
                nat64::mapped(lip),
                lport,
            )),
            Via6::Dr | Via6::Tun => None,
        };
        match f.via {
            Via6::FullNat { lip, lport, .. } => {
                match self
                    .lips6
                    .as_mut()
                    .map(|p| p.take(lip, lport, (rip, x.rport, now)))
                {
                    Some(Ok(())) => {}
                    Some(Err(TakeError::InUse)) => return Counter::SyncConflicts,
                    Some(Err(TakeError::Foreign)) | None => return Counter::SyncForeignLip,
                }
            }
            Via6::Nat64 { lip, lport, .. } => {
                let to = Toward {
                    rip: rip
                        .to_ipv4_mapped()
                        .unwrap_or(core::net::Ipv4Addr::UNSPECIFIED),
                    rport: x.rport,
                    now,
                };
                let peer = self.snap.local(lip).is_some_and(|l| l.peer);
                match self.lips.as_mut().map(|p| p.take(lip, lport, to)) {
                    Some(Ok(())) => {}
                    // A peer director's LIP: served here, its ports none of this pool's.
                    _ if peer => {}
                    Some(Err(TakeError::InUse)) => return Counter::SyncConflicts,
                    Some(Err(TakeError::Foreign)) | None => return Counter::SyncForeignLip,
                }
            }
            Via6::Nat { .. } | Via6::Dr | Via6::Tun => {}
        }
        let id = match self.table6.insert(key, reply, f, now) {
            Ok(id) => id,
            Err(e) => {
                // The pair was never used here: no quarantine.
                release_lip6(&mut self.lips6, &mut self.lips, &f, now, false);
                return match e {
                    InsertError::Full => Counter::SyncTableFull,
                    InsertError::KeyExists => Counter::SyncConflicts,
                };
            }
        };
        self.table6.set_state(id, x.state, now);
        self.table6.refresh_for(id, now, u64::from(x.expires_in_ms));
        if let SyncProxy::On { shift } = x.synproxy {
            self.proxy_words6[id.index()] = shift;
        }
        self.stats
            .session_installed(u32::from(f.slot), is_active(x.state));
        // A persistent service's session holds its client's template, made from the
        // session when the peer's is not here: the client's next connection after a
        // failover goes where its last ones went.
        if f.persistent() {
            let template = self
                .templates6
                .lookup(&template_key6(&key))
                .map(|(tid, _)| tid);
            self.hold_template6(&key, template, (rip, x.rport), x.persist_ms);
        }
        Counter::SyncInstalled
    }

    /// A record for an IPv6 session this table already has: as
    /// [`refresh_from_peer`](Self::refresh_from_peer) for IPv4.
    fn refresh_from_peer6(
        &mut self,
        id: SessionId,
        dir: Dir,
        f: &Forward6,
        x: &SyncSession6,
        now: u64,
    ) -> Counter {
        let Some(cur) = self.table6.get(id) else {
            return Counter::SyncConflicts;
        };
        let same = dir == Dir::Original
            && cur.data.via == f.via
            && cur.data.rip == f.rip
            && cur.data.rport == f.rport;
        if !same {
            return Counter::SyncConflicts;
        }
        if !cur.data.peer() {
            return Counter::SyncKept;
        }
        let (was, deadline) = (cur.state, cur.deadline);
        let until = deadline.max(now.saturating_add(u64::from(x.expires_in_ms)));
        self.table6.set_state(id, x.state, now);
        self.table6.refresh_for(id, now, until - now);
        if let SyncProxy::On { shift } = x.synproxy {
            self.proxy_words6[id.index()] = shift;
        }
        if let Some(d) = self.table6.data_mut(id) {
            // The peer's word on its header: it may have sent it, or seen it acknowledged.
            d.set_preamble(f.preamble());
            d.set_first_seq(f.first_seq());
        }
        self.stats
            .session_moved(u32::from(f.slot), is_active(was), is_active(x.state));
        Counter::SyncUpdated
    }

    /// A synced session of a persistent service holds its client's template, as a local
    /// one does.
    fn hold_synced_template(&mut self, key: &FlowKey, f: &Forward, now: u64) {
        let tk = template_key(key);
        if let Some((tid, _)) = self.templates.lookup(&tk) {
            if let Some(t) = self.templates.data_mut(tid) {
                t.live += 1;
            }
            return;
        }
        let t = Template {
            rip: f.rip,
            rport: f.rport,
            live: 1,
            timeout_ms: f.persist_ms,
        };
        if let Ok(tid) = self.templates.insert(tk, None, t, now) {
            self.templates
                .refresh_for(tid, now, u64::from(f.persist_ms));
        }
    }

    fn install_template(&mut self, x: &SyncTemplate, now: u64) -> Counter {
        let key = FlowKey::new(x.proto, x.client, 0, x.vip.0, x.vip.1);
        let until = now.saturating_add(u64::from(x.expires_in_ms));
        if let Some((tid, _)) = self.templates.lookup(&key) {
            let Some(t) = self.templates.get(tid) else {
                return Counter::SyncConflicts;
            };
            if (t.data.rip, t.data.rport) != (x.rip, x.rport) {
                return Counter::SyncConflicts;
            }
            let later = t.deadline.max(until);
            self.templates.refresh_for(tid, now, later - now);
            return Counter::SyncUpdated;
        }
        let t = Template {
            rip: x.rip,
            rport: x.rport,
            live: 0,
            timeout_ms: x.timeout_ms,
        };
        match self.templates.insert(key, None, t, now) {
            Ok(tid) => {
                self.templates
                    .refresh_for(tid, now, u64::from(x.expires_in_ms));
                Counter::SyncInstalled
            }
            Err(InsertError::Full) => Counter::SyncTableFull,
            Err(InsertError::KeyExists) => Counter::SyncConflicts,
        }
    }
}

/// Notes a change for the next slow job, or counts it when the list is full (the next
/// refresh sweep carries it).
#[inline(always)]
fn note(s: &mut SyncState, counters: &mut crate::counters::Counters, d: Dirty) {
    if let Some(slot) = s.dirty.get_mut(s.noted) {
        *slot = d;
        s.noted += 1;
    } else {
        counters.count(Counter::SyncUnqueued);
    }
}

/// Queues a record for the daemon, or counts it when the ring is full.
fn queue(link: &SyncLink, counters: &mut crate::counters::Counters, r: SyncRecord) {
    if link.push_out(r).is_ok() {
        counters.count(Counter::SyncQueued);
    } else {
        counters.count(Counter::SyncUnqueued);
    }
}

/// A persistence template as a sync record.
fn template_record(t: &Session<Template>, now: u64) -> Option<SyncRecord> {
    let k = &t.original;
    let r = SyncRecord::Template(SyncTemplate {
        proto: k.proto,
        client: k.src,
        vip: (k.dst, k.dport),
        rip: t.data.rip,
        rport: t.data.rport,
        timeout_ms: t.data.timeout_ms,
        expires_in_ms: t.deadline.saturating_sub(now).min(u64::from(u32::MAX)) as u32,
    });
    // A template of an ICMP service with a port-carrying dest would not validate; skip it.
    r.validate().ok().map(|()| r)
}
