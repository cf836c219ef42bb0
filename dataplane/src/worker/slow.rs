//! The slow jobs, every `slow_every` loops (never per packet): session and template expiry,
//! neighbour aging and ARP retries, publishing the counters, and the control plane's mailbox.

use super::ipv6::send_neighbour_solicit;
use super::local::send_arp_request;
use super::session::session_ended;
use super::session::Forward;
use super::Worker;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use conntrack::{FlowKey, SessionState};

/// One session, as listed for the operator (`rvsadm -L -c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The client's packets' key (client → VIP).
    pub original: FlowKey,
    /// Where it forwards.
    pub forward: Forward,
    /// Its state.
    pub state: SessionState,
    /// Milliseconds until it expires (0 if due).
    pub expires_in: u64,
}

/// Slots of the session table one [`MailRequest::DumpSessions`] reads at most, occupied or
/// not: the pause a listing adds to one slow job stays small whatever the table's size.
pub const DUMP_SCAN_SLOTS: usize = 1 << 16;

/// A request from the control plane, handled by the worker's slow jobs.
#[derive(Debug)]
pub enum MailRequest {
    /// List sessions in slot order from slot `from` on: at most `max` of them, read from at
    /// most [`DUMP_SCAN_SLOTS`] slots. The answer says where to resume.
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

    /// Sessions from slot `from` on, into `into` (up to `max` and its capacity), reading at
    /// most [`DUMP_SCAN_SLOTS`] slots.
    fn dump_sessions(
        &self,
        from: u32,
        max: usize,
        mut into: Vec<SessionInfo>,
        now: u64,
    ) -> SessionDump {
        into.clear();
        let room = max.min(into.capacity());
        let bound = self.table.slot_bound();
        let end = (from as usize).saturating_add(DUMP_SCAN_SLOTS).min(bound);
        let mut next = (end < bound).then_some(end);
        for (id, s) in self.table.iter_slots(from as usize..end) {
            if into.len() == room {
                next = Some(id.index());
                break;
            }
            into.push(SessionInfo {
                original: s.original,
                forward: s.data,
                state: s.state,
                expires_in: s.deadline.saturating_sub(now),
            });
        }
        SessionDump {
            sessions: into,
            // Slot numbers are below the table's capacity, itself below 2^31.
            next: next.map(|n| n as u32),
        }
    }

    /// Copies the whole-worker counters into the shared block (a slow job).
    pub(super) fn publish(&mut self) {
        use core::sync::atomic::Ordering::Relaxed;
        let w = &self.stats.worker;
        w.publish(&self.counters);
        w.sessions.store(self.table.len() as u64, Relaxed);
        if let Some(p) = &mut self.lips {
            for (g, u) in self.stats.lips.iter().zip(p.usage(self.now)) {
                g.addr.store(u64::from(u32::from(u.addr)), Relaxed);
                g.in_use.store(u.in_use, Relaxed);
                g.quarantined.store(u.quarantined, Relaxed);
                g.capacity.store(u.capacity, Relaxed);
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
