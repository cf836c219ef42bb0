//! The slow jobs, every `slow_every` loops (never per packet): session and template expiry,
//! neighbour aging and ARP retries, publishing the counters, and the control plane's mailbox.

use super::ipv6::send_neighbour_solicit;
use super::local::send_arp_request;
use super::service6::{listed6, session6_ended};
use super::service6::{Forward6, Template6};
use super::session::session_ended;
use super::session::{Forward, Template};
use super::Worker;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::lip::LipPool6;
use conntrack::{FlowKey6, Key, Proto, Session, SessionState, Table};
use core::net::IpAddr;

/// One session of either family, or a persistence template, as listed for the operator
/// (`rvsadm -L -c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its protocol.
    pub proto: Proto,
    /// The client's address and port (a template's port is 0: it stands for every port).
    pub client: (IpAddr, u16),
    /// The VIP and port the client reached.
    pub vip: (IpAddr, u16),
    /// The RS's address and port.
    pub rip: (IpAddr, u16),
    /// FullNAT's LIP and port.
    pub local: Option<(IpAddr, u16)>,
    /// Its state.
    pub state: SessionState,
    /// Milliseconds until it expires (0 if due).
    pub expires_in: u64,
    /// A persistence template (IPVS's `IP_VS_CONN_F_TEMPLATE`): the client's dest for the
    /// service, `(proto, CIP, 0, VIP, vport) → (RIP, rport)`, as IPVS keys a port service's
    /// template; listed with state `NONE` as ipvsadm shows one.
    pub template: bool,
}

impl SessionInfo {
    /// An IPv4 session as listed at time `now`.
    fn v4(s: &Session<Forward>, now: u64) -> SessionInfo {
        let (k, f) = (&s.original, &s.data);
        SessionInfo {
            proto: k.proto,
            client: (k.src.into(), k.sport),
            vip: (k.dst.into(), k.dport),
            rip: (f.rip.into(), f.rport),
            local: f.local().map(|(a, p)| (a.into(), p)),
            state: s.state,
            expires_in: s.deadline.saturating_sub(now),
            template: false,
        }
    }

    /// An IPv4 persistence template as listed at time `now`.
    fn template(s: &Session<Template>, now: u64) -> SessionInfo {
        let (k, t) = (&s.original, &s.data);
        SessionInfo {
            proto: k.proto,
            client: (k.src.into(), 0),
            vip: (k.dst.into(), k.dport),
            rip: (t.rip.into(), t.rport),
            local: None,
            state: s.state,
            expires_in: s.deadline.saturating_sub(now),
            template: true,
        }
    }

    /// An IPv6 persistence template as listed at time `now` (NAT64's IPv4 dest unmapped).
    fn template6(s: &Session<Template6, FlowKey6>, now: u64) -> SessionInfo {
        let (k, t) = (&s.original, &s.data);
        SessionInfo {
            proto: k.proto,
            client: (k.src.into(), 0),
            vip: (k.dst.into(), k.dport),
            rip: (
                t.rip.to_ipv4_mapped().map_or(t.rip.into(), Into::into),
                t.rport,
            ),
            local: None,
            state: s.state,
            expires_in: s.deadline.saturating_sub(now),
            template: true,
        }
    }

    /// An IPv6 session as listed at time `now` (its LIP from `lips6`).
    fn v6(s: &Session<Forward6, FlowKey6>, lips6: &Option<LipPool6>, now: u64) -> SessionInfo {
        let k = &s.original;
        let (rip, local) = listed6(lips6, &s.data);
        SessionInfo {
            proto: k.proto,
            client: (k.src.into(), k.sport),
            vip: (k.dst.into(), k.dport),
            rip: (rip, s.data.rport),
            local,
            state: s.state,
            expires_in: s.deadline.saturating_sub(now),
            template: false,
        }
    }
}

/// Slots of the session table one [`MailRequest::DumpSessions`] reads at most, occupied or
/// not: the pause a listing adds to one slow job stays small whatever the table's size.
pub const DUMP_SCAN_SLOTS: usize = 1 << 16;

/// A request from the control plane, handled by the worker's slow jobs.
#[derive(Debug)]
pub enum MailRequest {
    /// List sessions in slot order from slot `from` on: at most `max` of them, read from at
    /// most [`DUMP_SCAN_SLOTS`] slots. The answer says where to resume. The IPv4 table's
    /// slots come first, then the IPv6 table's, then the persistence templates' (IPv4, then
    /// IPv6), each numbered on from the end of the one before.
    DumpSessions {
        /// The first slot to read (0 for the start of the table).
        from: u32,
        /// How many sessions at most.
        max: usize,
        /// An empty buffer to fill and send back; the worker never grows it (it stops at its
        /// capacity), so answering allocates nothing.
        into: Vec<SessionInfo>,
        /// Where to send them.
        reply: std::sync::mpsc::SyncSender<SessionDump>,
    },
}

/// A worker's answer to [`MailRequest::DumpSessions`].
#[derive(Debug)]
pub struct SessionDump {
    /// The sessions, in slot order.
    pub sessions: Vec<SessionInfo>,
    /// The slot to ask from next, or `None` when the table was read to its end.
    pub next: Option<u32>,
}

/// The control plane's way into a worker: a bounded lock-free queue of requests the worker
/// answers during its slow jobs (never on the per-packet path).
#[derive(Debug)]
pub struct Mailbox {
    pub(super) queue: crossbeam_queue::ArrayQueue<MailRequest>,
}

impl Mailbox {
    /// Posts a request; gives it back if 16 are already waiting.
    pub fn post(&self, r: MailRequest) -> Result<(), MailRequest> {
        self.queue.push(r)
    }
}

impl<D: Device> Worker<D> {
    /// The slow jobs at time `now`: expire due sessions (returning their LIP ports), age
    /// neighbours and retry ARP. [`Worker::poll`] calls this every `slow_every` loops.
    pub fn slow_jobs(&mut self, now: u64) {
        self.now = now;
        let lips = &mut self.lips;
        let counters = &mut self.counters;
        let stats = &self.stats;
        let templates = &mut self.templates;
        self.table.expire(now, self.cfg.expire_budget, |_, s| {
            counters.count(Counter::SessionsExpired);
            if matches!(s.state, SessionState::Tcp(t) if t.half_open()) {
                counters.count(Counter::HalfOpenExpired);
            }
            // It ended at its deadline, however late this job runs.
            session_ended(lips, stats, templates, s.deadline.min(now), &s);
        });
        let lips6 = &mut self.lips6;
        let templates6 = &mut self.templates6;
        self.table6.expire(now, self.cfg.expire_budget, |_, s| {
            counters.count(Counter::SessionsExpired);
            if matches!(s.state, SessionState::Tcp(t) if t.half_open()) {
                counters.count(Counter::HalfOpenExpired);
            }
            session6_ended(stats, (lips6, lips), templates6, s.deadline.min(now), &s);
        });
        // A template whose timer ran out while its client still has sessions lives on.
        let rearm = &mut self.template_rearm;
        self.templates.expire(now, self.cfg.expire_budget, |_, t| {
            if t.data.live > 0 && rearm.len() < rearm.capacity() {
                rearm.push((t.original, t.data));
            }
        });
        for (k, t) in self.template_rearm.drain(..) {
            if let Ok(id) = self.templates.insert(k, None, t, now) {
                self.templates.refresh_for(id, now, t.timeout_ms as u64);
            }
        }
        let rearm = &mut self.template6_rearm;
        self.templates6.expire(now, self.cfg.expire_budget, |_, t| {
            if t.data.live > 0 && rearm.len() < rearm.capacity() {
                rearm.push((t.original, t.data));
            }
        });
        for (k, t) in self.template6_rearm.drain(..) {
            if let Ok(id) = self.templates6.insert(k, None, t, now) {
                self.templates6
                    .refresh_for(id, now, u64::from(t.timeout_ms));
            }
        }
        let snap = &self.snap;
        let tx = &mut self.tx;
        let mut gave_up = 0;
        self.neigh.tick(
            now,
            |ip| send_arp_request(snap, tx, counters, ip),
            |p| {
                drop(p);
                gave_up += 1;
            },
        );
        self.neigh6.tick(
            now,
            |ip| send_neighbour_solicit(snap, tx, counters, ip),
            |p| {
                drop(p);
                gave_up += 1;
            },
        );
        self.counters
            .add_drops(DropReason::NeighbourUnresolved, gave_up);
        self.announce(now);
        self.tx.flush_all(&mut self.counters);
        self.sync_jobs(now);
        self.publish();
        while let Some(req) = self.mailbox.queue.pop() {
            match req {
                MailRequest::DumpSessions {
                    from,
                    max,
                    into,
                    reply,
                } => {
                    let dump = self.dump_sessions(from, max, into, now);
                    // The asker may have given up waiting; that is fine.
                    let _ = reply.try_send(dump);
                }
            }
        }
    }

    /// Sessions from slot `from` on (IPv4 slots, then IPv6 ones from the IPv4 table's
    /// capacity on, then the IPv4 and the IPv6 templates' after those), into `into` (up to
    /// `max` and its capacity), reading at most [`DUMP_SCAN_SLOTS`] slots.
    fn dump_sessions(
        &self,
        from: u32,
        max: usize,
        mut into: Vec<SessionInfo>,
        now: u64,
    ) -> SessionDump {
        into.clear();
        let room = max.min(into.capacity());
        // Where each table's slots start in the numbering, and where the last one ends.
        let bases = {
            let mut b = [0; 5];
            let sizes = [
                self.table.capacity(),
                self.table6.capacity(),
                self.templates.capacity(),
                self.templates6.capacity(),
            ];
            for (i, n) in sizes.iter().enumerate() {
                b[i + 1] = b[i] + n;
            }
            b
        };
        let empty = [
            self.table.is_empty(),
            self.table6.is_empty(),
            self.templates.is_empty(),
            self.templates6.is_empty(),
        ];
        let from = from as usize;
        let at = (0..4).rev().find(|&i| from >= bases[i]).unwrap_or(0);
        let (f, b) = (from.min(bases[at + 1]) - bases[at], bases[at]);
        let next = match at {
            0 => dump_table(&self.table, f, b, room, &mut into, |s| {
                SessionInfo::v4(s, now)
            }),
            1 => dump_table(&self.table6, f, b, room, &mut into, |s| {
                SessionInfo::v6(s, &self.lips6, now)
            }),
            2 => dump_table(&self.templates, f, b, room, &mut into, |s| {
                SessionInfo::template(s, now)
            }),
            _ => dump_table(&self.templates6, f, b, room, &mut into, |s| {
                SessionInfo::template6(s, now)
            }),
        }
        // Then the next table that has anything.
        .or_else(|| (at + 1..4).find(|&i| !empty[i]).map(|i| bases[i]));
        SessionDump {
            sessions: into,
            // Slot numbers are below the tables' capacities, together below 2^31.
            next: next.map(|n| n as u32),
        }
    }

    /// Copies the whole-worker counters into the shared block (a slow job).
    pub(super) fn publish(&mut self) {
        use core::sync::atomic::Ordering::Relaxed;
        let w = &self.stats.worker;
        w.publish(&self.counters);
        w.sessions
            .store((self.table.len() + self.table6.len()) as u64, Relaxed);
        let store = |g: &crate::stats::LipGauges, u: crate::lip::LipUsage| {
            g.addr.store(u64::from(u32::from(u.addr)), Relaxed);
            g.in_use.store(u.in_use, Relaxed);
            g.quarantined.store(u.quarantined, Relaxed);
            g.capacity.store(u.capacity, Relaxed);
        };
        if let Some(p) = &mut self.lips {
            for (g, u) in self.stats.lips.iter().zip(p.usage(self.now)) {
                store(g, u);
            }
        }
        if let Some(p) = &mut self.lips6 {
            for (g, u) in self.stats.lips6.iter().zip(p.usage(self.now)) {
                store(g, u);
            }
        }
        if self.loops_since_publish > 0 {
            let permille = self.busy_loops as u64 * 1000 / self.loops_since_publish as u64;
            w.busy_permille.store(permille, Relaxed);
        }
        self.busy_loops = 0;
        self.loops_since_publish = 0;
    }
}

/// Lists `table`'s sessions from slot `from` on into `into` until it holds `room`, reading at
/// most [`DUMP_SCAN_SLOTS`] slots; slots are numbered from `base` in the answer. Returns the
/// (numbered) slot to go on from, `None` once the table was read to its end.
fn dump_table<T, K: Key>(
    table: &Table<T, K>,
    from: usize,
    base: usize,
    room: usize,
    into: &mut Vec<SessionInfo>,
    info: impl Fn(&Session<T, K>) -> SessionInfo,
) -> Option<usize> {
    let bound = table.slot_bound();
    let end = from.saturating_add(DUMP_SCAN_SLOTS).min(bound);
    let mut next = (end < bound).then_some(end);
    for (id, s) in table.iter_slots(from.min(end)..end) {
        if into.len() == room {
            next = Some(id.index());
            break;
        }
        into.push(info(s));
    }
    next.map(|n| n + base)
}
