//! The slow jobs, every `slow_every` loops (never per packet): session and template expiry,
//! neighbour aging and ARP retries, publishing the counters, and the control plane's mailbox.

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

/// A request from the control plane, handled by the worker's slow jobs.
#[derive(Debug)]
pub enum MailRequest {
    /// List up to `max` sessions.
    DumpSessions {
        /// How many at most.
        max: usize,
        /// Where to send them.
        reply: std::sync::mpsc::SyncSender<Vec<SessionInfo>>,
    },
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
        self.counters
            .add_drops(DropReason::NeighbourUnresolved, gave_up);
        self.tx.flush_all(&mut self.counters);
        self.publish();
        while let Some(req) = self.mailbox.queue.pop() {
            match req {
                MailRequest::DumpSessions { max, reply } => {
                    let list: Vec<SessionInfo> = self
                        .table
                        .iter()
                        .take(max)
                        .map(|(_, s)| SessionInfo {
                            original: s.original,
                            forward: s.data,
                            state: s.state,
                            expires_in: s.deadline.saturating_sub(now),
                        })
                        .collect();
                    // The asker may have given up waiting; that is fine.
                    let _ = reply.try_send(list);
                }
            }
        }
    }

    /// Copies the whole-worker counters into the shared block (a slow job).
    pub(super) fn publish(&mut self) {
        use core::sync::atomic::Ordering::Relaxed;
        let w = &self.stats.worker;
        w.publish(&self.counters);
        w.sessions.store(self.table.len() as u64, Relaxed);
        if let Some(p) = &mut self.lips {
            w.lip_available.store(p.available() as u64, Relaxed);
            w.lip_capacity.store(p.capacity() as u64, Relaxed);
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
