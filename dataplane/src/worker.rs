//! The worker: one thread's run loop over its queues, its session table and its state.
//!
//! A packet's walk (see docs/architecture.md): RX burst → [`parse`] → classify (ARP, a session,
//! a new session for a service, the director's own traffic, or a drop) → session lookup and
//! TCP state transition → rewrite per forwarding mode → next-hop MAC from the neighbour table →
//! per-port TX buffer → TX burst. Every N loops the slow jobs run: session expiry, neighbour
//! aging and ARP retries. Nothing on the per-packet path allocates, locks or makes a syscall.
//!
//! The worker is sans-clock: [`Worker::poll`] takes `now` (milliseconds), so tests drive it
//! on a simulated clock.

use crate::buf::PacketBuf;
use crate::counters::{Counter, Counters};
use crate::device::{Burst, Device, BURST};
use crate::drop::DropReason;
use crate::icmp;
use crate::lip::{LipError, LipPool};
use crate::local::{self, IcmpError, TcpSegment, L2_ROOM};
use crate::neigh::{NeighConfig, NeighTable, Park};
use crate::parse::{self, Ipv4Meta, L3, L4};
use crate::redirect::{self, Handoff, HandoffKind, RedirectRings};
use crate::rewrite::{self, Ipv4Rewrite};
use crate::rss::ReplySteering;
use crate::snapshot::{Homing, Hop, Local, Snapshot, SnapshotCell};
use crate::stats::WorkerStats;
use crate::synproxy::{self, CookieInfo, Cookies, Shift};
use crate::wire::tcp::{self, flags as tcp_flags};
use crate::wire::{
    be32, ArpOperation, ArpPacket, ArpRepr, EthernetAddress, IpProto, Ipv4Header, ETHERTYPE_IPV4,
    IPV4_MIN_HEADER_LEN,
};
use arrayvec::ArrayVec;
use conntrack::{Candidate, Dir, FlowKey, KeyHash, Proto, SessionState, Table, TcpEvent, TcpState};
use core::net::Ipv4Addr;
use sched::{AnyScheduler, DestLoad, FlowHint, ForwardMode, SchedKind, Scheduler};
use std::sync::Arc;

/// What TUN's encapsulation adds: an outer IPv4 header (RFC 2003).
const IPIP_OVERHEAD: usize = IPV4_MIN_HEADER_LEN;
/// Table memory regions from this size up are advised onto transparent huge pages.
const HUGE_PAGE_MIN: usize = 4 << 20;
/// Candidate LIP ports examined per worker queue before RSS-aware allocation gives up.
const STEER_TRIES_PER_QUEUE: usize = 64;

/// What a port is to this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// A data port; traffic for the director that rvs doesn't handle goes to `exception`.
    Data {
        /// The exception port paired with this one, if any.
        exception: Option<u16>,
    },
    /// The kernel side of a data port (TAP): what arrives here goes out on `data` unchanged.
    Exception {
        /// The data port it is paired with.
        data: u16,
    },
}

/// Static settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's index, 0-based.
    pub id: u16,
    /// How many workers share the director (for the LIP port split).
    pub workers: u16,
    /// Hard capacity of the session table.
    pub table_capacity: usize,
    /// Hard capacity of the persistence template table (one template per client of a
    /// persistent service; at least 64).
    pub template_capacity: usize,
    /// Neighbour table settings.
    pub neigh: NeighConfig,
    /// Run the slow jobs every this many loops (at least 1).
    pub slow_every: u32,
    /// Sessions expired at most per slow-job run.
    pub expire_budget: usize,
    /// Look RX bursts up in prefetching stages (the default; off only to measure what the
    /// stages save).
    pub prefetch: bool,
    /// Role of each port, by port index; ports beyond the list are data ports without an
    /// exception path.
    pub ports: Vec<PortRole>,
    /// Per port index: how the port's RSS spreads replies over queues, with this worker's
    /// queue, when the port does RSS. FullNAT then picks LIP ports whose replies hash to this
    /// worker's own queue (software Toeplitz with the port's key and RETA); without it, replies
    /// that land on another worker's queue go through the redirect rings.
    pub steering: Vec<Option<ReplySteering>>,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            id: 0,
            workers: 1,
            table_capacity: 1 << 20,
            template_capacity: 1 << 16,
            neigh: NeighConfig::default(),
            slow_every: 64,
            expire_budget: 4096,
            prefetch: true,
            ports: Vec::new(),
            steering: Vec::new(),
        }
    }
}

/// Why a worker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The LIP pool could not be split or built.
    #[error("LIP pool: {0}")]
    Lip(#[from] LipError),
    /// The configuration has an interface on a port the worker does not have.
    #[error("the configuration uses {needed} ports, but the worker was given {count}")]
    MissingPort {
        /// Ports the configuration needs.
        needed: usize,
        /// Ports the worker has.
        count: usize,
    },
    /// The redirect rings connect another number of workers than configured.
    #[error("redirect rings connect {rings} workers, but the worker configuration says {workers}")]
    RingMismatch {
        /// Workers the rings connect.
        rings: usize,
        /// `WorkerConfig::workers`.
        workers: u16,
    },
    /// A port role names a port that does not exist.
    #[error("port role for port {port} names port {other}, but the worker has {count} ports")]
    BadPortRole {
        /// The port whose role is wrong.
        port: u16,
        /// The port it names.
        other: u16,
        /// Ports the worker has.
        count: usize,
    },
}

/// What a session needs to forward its packets, whatever the configuration does later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Forwarding mode of the dest.
    pub mode: ForwardMode,
    /// Real server address.
    pub rip: Ipv4Addr,
    /// Real server port (0 for ICMP).
    pub rport: u16,
    /// FullNAT local address (unspecified otherwise).
    pub lip: Ipv4Addr,
    /// FullNAT local port / ICMP identifier (0 otherwise).
    pub lport: u16,
    /// The dest's counter slot.
    pub slot: u32,
    /// The service's persistence timeout in ms (0: not persistent); the session counts in its
    /// client's template while it lives.
    pub persist_ms: u32,
    /// Whether the director proxied the handshake, and how far it got.
    pub synproxy: SynProxy,
}

/// A session's SYN proxy state ([`crate::synproxy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynProxy {
    /// Not proxied: the client's SYN went to the RS.
    Off,
    /// The client's ACK carried a valid cookie and the director sent its SYN to the RS, which
    /// has not answered yet. The worker's per-session word holds the client's initial
    /// sequence number.
    Pending(CookieInfo),
    /// Both halves are open; the per-session word holds their sequence [`Shift`].
    On,
}

/// An IPVS persistence template: which dest a client of a persistent service goes to.
/// Keyed (proto, CIP, 0, VIP, vport) in the worker's template table; it lives while its
/// client has sessions, and the service's persistence timeout after the last one ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// The dest's address.
    pub rip: Ipv4Addr,
    /// The dest's port.
    pub rport: u16,
    /// Live sessions that used it.
    pub live: u32,
    /// The persistence timeout in ms.
    pub timeout_ms: u32,
}

/// The template key of a session's client packets (`key` is client → VIP).
#[inline]
fn template_key(key: &FlowKey) -> FlowKey {
    FlowKey::new(key.proto, key.src, 0, key.dst, key.dport)
}

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
    queue: crossbeam_queue::ArrayQueue<MailRequest>,
}

impl Mailbox {
    /// Posts a request; gives it back if 16 are already waiting.
    pub fn post(&self, r: MailRequest) -> Result<(), MailRequest> {
        self.queue.push(r)
    }
}

/// A frame's flow key as read ahead, its hash in the session table and the table's hint.
#[derive(Clone, Copy)]
struct Flow {
    key: FlowKey,
    hash: KeyHash,
    cand: Candidate,
}

/// A packet waiting for its next hop's MAC: already framed, destination MAC still zero.
#[derive(Debug)]
pub struct Parked<B> {
    buf: B,
    port: u16,
}

/// The output side of a worker: its port handles and their TX buffers.
struct Tx<D: Device> {
    ports: Vec<D>,
    bufs: Vec<Burst<D::Buf>>,
}

impl<D: Device> Tx<D> {
    #[inline]
    fn send(&mut self, port: u16, buf: D::Buf, c: &mut Counters) {
        let p = port as usize;
        if self.bufs[p].is_full() {
            self.flush(p, c);
        }
        c.count(Counter::TxPackets);
        c.add(Counter::TxBytes, buf.len() as u64);
        // After a flush the buffer has room: a device that took nothing had its packets dropped.
        if let Err(e) = self.bufs[p].try_push(buf) {
            drop(e);
            c.count_drop(DropReason::TxFull);
        }
    }

    #[inline]
    fn flush(&mut self, p: usize, c: &mut Counters) {
        if self.bufs[p].is_empty() {
            return;
        }
        self.ports[p].tx_burst(&mut self.bufs[p]);
        // What the device did not take is dropped (counted), like a full TX ring.
        let left = self.bufs[p].len() as u64;
        if left > 0 {
            for b in self.bufs[p].drain(..) {
                c.sub(Counter::TxPackets, 1);
                c.sub(Counter::TxBytes, b.len() as u64);
            }
            c.add_drops(DropReason::TxFull, left);
        }
    }

    fn flush_all(&mut self, c: &mut Counters) {
        for p in 0..self.bufs.len() {
            self.flush(p, c);
        }
    }
}

/// One worker: its ports' queues, its session table, its share of LIP ports, its neighbours.
pub struct Worker<D: Device> {
    cfg: WorkerConfig,
    roles: Vec<PortRole>,
    tx: Tx<D>,
    /// The configuration cell, through a cache: checking it for a new snapshot on every poll
    /// is one relaxed pointer load.
    source: arc_swap::Cache<Arc<SnapshotCell>, Arc<Snapshot>>,
    snap: Arc<Snapshot>,
    refused: Arc<Snapshot>,
    scheds: Vec<AnyScheduler>,
    table: Table<Forward>,
    templates: Table<Template>,
    template_rearm: Vec<(FlowKey, Template)>,
    /// Per-dest loads for least-connection schedulers, sized to the largest service.
    load_scratch: Vec<DestLoad>,
    lips: Option<LipPool>,
    neigh: NeighTable<Parked<D::Buf>>,
    redirect: Option<Arc<RedirectRings<D::Buf>>>,
    stats: Arc<WorkerStats>,
    mailbox: Arc<Mailbox>,
    busy_loops: u32,
    loops_since_publish: u32,
    counters: Counters,
    icmp_limit: icmp::RateLimit,
    cookies: Cookies,
    /// One word per session slot (by [`conntrack::SessionId::index`]) for proxied sessions:
    /// the client's initial sequence number, then the [`Shift`]. Zeroed pages cost nothing
    /// until a proxied session touches them.
    proxy_words: Vec<u32>,
    ident: u16,
    loops: u32,
    now: u64,
}

impl<D: Device> Worker<D> {
    /// A worker over `ports` (its own queue on each), reading configuration from `source`.
    ///
    /// # Errors
    /// A LIP pool that cannot be split among the workers, or port roles naming missing ports.
    pub fn new(
        cfg: WorkerConfig,
        ports: Vec<D>,
        source: Arc<SnapshotCell>,
    ) -> Result<Worker<D>, WorkerError> {
        let n = ports.len();
        let mut roles = vec![PortRole::Data { exception: None }; n];
        for (i, r) in cfg.ports.iter().enumerate().take(n) {
            let other = match *r {
                PortRole::Data { exception: Some(e) } => e,
                PortRole::Data { exception: None } => i as u16,
                PortRole::Exception { data } => data,
            };
            if other as usize >= n {
                return Err(WorkerError::BadPortRole {
                    port: i as u16,
                    other,
                    count: n,
                });
            }
            roles[i] = *r;
        }
        let mut source = arc_swap::Cache::new(source);
        let snap = Arc::clone(source.load());
        let most_dests = max_dests(&snap);
        if snap.ports_needed() > n {
            return Err(WorkerError::MissingPort {
                needed: snap.ports_needed(),
                count: n,
            });
        }
        let lips = if snap.lips().is_empty() {
            None
        } else {
            let range = LipPool::worker_range(snap.lport_range(), cfg.workers, cfg.id)?;
            if cfg.steering.iter().any(Option::is_some) {
                // A shuffled start keeps steered allocation cheap whatever the RSS key.
                Some(LipPool::new_shuffled(
                    snap.lips(),
                    range,
                    cfg.id as u64 + 1,
                )?)
            } else {
                Some(LipPool::new(snap.lips(), range)?)
            }
        };
        let scheds = snap
            .services()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                snap.scheduler(i)
                    .cloned()
                    .unwrap_or_else(|| s.sched().build(s.dests()))
            })
            .collect();
        let table = Table::with_capacity(cfg.table_capacity, *snap.timeouts());
        let proxy_slots = table.capacity();
        let templates = Table::with_capacity(
            cfg.template_capacity.max(64),
            conntrack::Timeouts::default(),
        );
        advise_huge_pages(&table);
        advise_huge_pages(&templates);
        let neigh = NeighTable::new(cfg.neigh);
        let bufs = (0..n).map(|_| Burst::new()).collect();
        Ok(Worker {
            roles,
            tx: Tx { ports, bufs },
            source,
            refused: Arc::clone(&snap),
            snap,
            scheds,
            table,
            templates,
            template_rearm: Vec::with_capacity(1024),
            load_scratch: Vec::with_capacity(most_dests),
            lips,
            neigh,
            redirect: None,
            stats: WorkerStats::new(),
            mailbox: Arc::new(Mailbox {
                queue: crossbeam_queue::ArrayQueue::new(16),
            }),
            busy_loops: 0,
            loops_since_publish: 0,
            counters: Counters::default(),
            icmp_limit: icmp::RateLimit::new(),
            cookies: Cookies::new(),
            proxy_words: vec![0; proxy_slots],
            ident: 0,
            loops: 0,
            now: 0,
            cfg,
        })
    }

    /// Connects this worker to its peers through `rings` (shared by all workers).
    ///
    /// # Errors
    /// [`WorkerError::RingMismatch`] if the rings are not for `WorkerConfig::workers` workers.
    pub fn with_redirect(mut self, rings: Arc<RedirectRings<D::Buf>>) -> Result<Self, WorkerError> {
        if rings.workers() != self.cfg.workers as usize {
            return Err(WorkerError::RingMismatch {
                rings: rings.workers(),
                workers: self.cfg.workers,
            });
        }
        self.redirect = Some(rings);
        Ok(self)
    }

    /// The counters this worker publishes for the control plane.
    pub fn stats_handle(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.stats)
    }

    /// The mailbox the control plane posts requests to.
    pub fn mailbox_handle(&self) -> Arc<Mailbox> {
        Arc::clone(&self.mailbox)
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The session table (read-only: listing, tests).
    pub fn sessions(&self) -> &Table<Forward> {
        &self.table
    }

    /// Bytes the session and template tables allocated (all of it at construction).
    pub fn session_memory(&self) -> usize {
        self.table.allocation_size()
            + self.templates.allocation_size()
            + self.proxy_words.len() * core::mem::size_of::<u32>()
    }

    /// The neighbour table, e.g. to add static entries.
    pub fn neighbours_mut(&mut self) -> &mut NeighTable<Parked<D::Buf>> {
        &mut self.neigh
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &NeighTable<Parked<D::Buf>> {
        &self.neigh
    }

    /// This worker's LIP pool, if FullNAT LIPs are configured.
    pub fn lip_pool(&self) -> Option<&LipPool> {
        self.lips.as_ref()
    }

    /// Port handle `port` (tests inject and collect frames through it).
    pub fn port_mut(&mut self, port: u16) -> &mut D {
        &mut self.tx.ports[port as usize]
    }

    /// The snapshot this worker currently uses.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// One turn of the run loop at time `now` (ms): picks up a new configuration snapshot,
    /// receives a burst from every port, processes it, flushes TX buffers, and every
    /// `slow_every` loops runs the slow jobs. Returns how many frames were received.
    pub fn poll(&mut self, now: u64) -> usize {
        self.now = now;
        self.refresh_snapshot();
        let mut received = 0;
        for port in 0..self.tx.ports.len() {
            let mut rx: Burst<D::Buf> = Burst::new();
            self.tx.ports[port].rx_burst(&mut rx);
            received += rx.len();
            match self.roles[port] {
                PortRole::Exception { data } => {
                    // Drained in place: `for buf in rx` would move the whole burst array (a
                    // memcpy of its full capacity on every poll, empty or not).
                    for buf in rx.drain(..) {
                        self.counters.count(Counter::RxPackets);
                        self.counters.add(Counter::RxBytes, buf.len() as u64);
                        self.tx.send(data, buf, &mut self.counters);
                    }
                }
                PortRole::Data { .. } => self.process_burst(port as u16, &mut rx),
            }
        }
        received += self.drain_redirects();
        self.tx.flush_all(&mut self.counters);
        self.loops_since_publish = self.loops_since_publish.wrapping_add(1);
        if received > 0 {
            self.busy_loops = self.busy_loops.wrapping_add(1);
        }
        self.loops = self.loops.wrapping_add(1);
        if self.loops.is_multiple_of(self.cfg.slow_every.max(1)) {
            self.slow_jobs(now);
        }
        received
    }

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

    /// Processes up to a burst of packets from each peer's ring to this worker.
    fn drain_redirects(&mut self) -> usize {
        // Taken out for the drain (no refcount traffic per loop) and put back after: packets
        // that were handed over are never handed over again, so nothing needs the rings here.
        let Some(rings) = self.redirect.take() else {
            return 0;
        };
        let me = self.cfg.id;
        let mut n = 0;
        for peer in 0..self.cfg.workers {
            if peer == me {
                continue;
            }
            for _ in 0..BURST {
                let Some(h) = rings.pop(peer, me) else {
                    break;
                };
                n += 1;
                match h.kind {
                    HandoffKind::Owned => {
                        self.counters.count(Counter::RedirectedIn);
                        self.process(h.port, h.buf, None, true)
                    }
                    HandoffKind::ArpCopy => self.process(h.port, h.buf, None, true),
                }
            }
        }
        self.redirect = Some(rings);
        n
    }

    /// Hands `buf` (received on `port`) to worker `owner`.
    fn redirect(&mut self, owner: u16, port: u16, buf: D::Buf) {
        let pushed = match &self.redirect {
            Some(r) => r
                .push(
                    self.cfg.id,
                    owner,
                    Handoff {
                        buf,
                        port,
                        kind: HandoffKind::Owned,
                    },
                )
                .is_ok(),
            None => false,
        };
        if pushed {
            self.counters.count(Counter::RedirectedOut);
        } else {
            self.drop_pkt(DropReason::RedirectFull)
        }
    }

    /// The worker that owns (or must create) the session of a packet this worker's table does
    /// not know, when it is another one: FullNAT replies by their LIP port's slice; packets of
    /// services with NAT dests, and NAT replies, by the client endpoint's home worker;
    /// persistent services by the client address's home worker.
    fn owner_elsewhere(&self, key: &FlowKey, local: Option<Local>) -> Option<u16> {
        let workers = self.cfg.workers;
        if workers <= 1 || self.redirect.is_none() {
            return None;
        }
        let snap = &self.snap;
        let owner = if local.is_some_and(|l| l.lip) {
            LipPool::worker_of(snap.lport_range(), workers, key.dport)?
        } else if let Some(si) = snap.service_index(key.proto, key.dst, key.dport) {
            match snap.service_homing(si) {
                Homing::None => return None,
                Homing::Endpoint => redirect::home(key.src, key.sport, workers),
                Homing::Client => redirect::home(key.src, 0, workers),
            }
        } else {
            match snap.nat_dest_homing(key.proto, key.src, key.sport)? {
                Homing::None => return None,
                Homing::Endpoint => redirect::home(key.dst, key.dport, workers),
                Homing::Client => redirect::home(key.dst, 0, workers),
            }
        };
        (owner != self.cfg.id).then_some(owner)
    }

    /// A copy of `src` in a fresh buffer from `port`'s pool.
    fn copy_buf(tx: &mut Tx<D>, port: u16, src: &D::Buf) -> Option<D::Buf> {
        let mut b = tx.ports[port as usize].alloc()?;
        if !b.append(src.len()) {
            return None;
        }
        b.data_mut().copy_from_slice(src.data());
        Some(b)
    }

    /// Shares an ARP frame received on `port` with the other workers and the kernel.
    fn share_arp(&mut self, port: u16, buf: &D::Buf) {
        if let Some(rings) = self.redirect.as_deref() {
            let me = self.cfg.id;
            for peer in (0..self.cfg.workers).filter(|&w| w != me) {
                let Some(copy) = Self::copy_buf(&mut self.tx, port, buf) else {
                    self.counters.count_drop(DropReason::NoBuffer);
                    return;
                };
                let h = Handoff {
                    buf: copy,
                    port,
                    kind: HandoffKind::ArpCopy,
                };
                if rings.push(me, peer, h).is_err() {
                    self.counters.count_drop(DropReason::RedirectFull);
                } else {
                    self.counters.count(Counter::ArpToPeers);
                }
            }
        }
        if let Some(PortRole::Data { exception: Some(e) }) = self.roles.get(port as usize).copied()
        {
            match Self::copy_buf(&mut self.tx, port, buf) {
                Some(copy) => {
                    self.counters.count(Counter::ArpToKernel);
                    self.tx.send(e, copy, &mut self.counters);
                }
                None => self.drop_pkt(DropReason::NoBuffer),
            }
        }
    }

    /// Copies the whole-worker counters into the shared block (a slow job).
    fn publish(&mut self) {
        use core::sync::atomic::Ordering::Relaxed;
        let w = &self.stats.worker;
        w.publish(&self.counters);
        w.sessions.store(self.table.len() as u64, Relaxed);
        if let Some(p) = &self.lips {
            w.lip_available.store(p.available() as u64, Relaxed);
            w.lip_capacity.store(p.capacity() as u64, Relaxed);
        }
        if self.loops_since_publish > 0 {
            let permille = self.busy_loops as u64 * 1000 / self.loops_since_publish as u64;
            w.busy_permille.store(permille, Relaxed);
        }
        self.busy_loops = 0;
        self.loops_since_publish = 0;
    }

    fn refresh_snapshot(&mut self) {
        let cur = self.source.load();
        if Arc::ptr_eq(cur, &self.snap) {
            return;
        }
        let new = Arc::clone(cur);
        if new.ports_needed() > self.tx.ports.len() {
            // Keep forwarding with the configuration we have; say why the new one is refused.
            if !Arc::ptr_eq(&new, &self.refused) {
                tracing::error!(
                    worker = self.cfg.id,
                    needed = new.ports_needed(),
                    ports = self.tx.ports.len(),
                    "configuration refused: it uses ports this worker does not have"
                );
                self.counters.count(Counter::SnapshotsRefused);
                self.refused = new;
            }
            return;
        }
        // Keep each surviving service's scheduler position; build the others.
        let mut scheds = Vec::with_capacity(new.services().len());
        for (i, s) in new.services().iter().enumerate() {
            let key = s.key();
            // rr and wrr keep this worker's position; everything else is taken as the
            // control side built it (a Maglev table is never computed on a worker).
            let kept = self
                .snap
                .service_index(key.proto, key.vip, key.port)
                .and_then(|i| self.scheds.get(i))
                .filter(|old| {
                    old.kind() == s.sched() && matches!(s.sched(), SchedKind::Rr | SchedKind::Wrr)
                })
                .cloned();
            scheds.push(match kept {
                Some(mut old) => {
                    old.update(s.dests());
                    old
                }
                None => new
                    .scheduler(i)
                    .cloned()
                    .unwrap_or_else(|| s.sched().build(s.dests())),
            });
        }
        self.scheds = scheds;
        // Adopting a snapshot may allocate; packets never do.
        self.load_scratch.reserve(max_dests(&new));
        self.table.set_timeouts(*new.timeouts());
        self.snap = new;
    }

    #[inline]
    fn drop_pkt(&mut self, r: DropReason) {
        self.counters.count_drop(r);
    }

    /// A data port's RX burst, in stages so that the cache misses of its lookups overlap (the
    /// session index is sized for the table's capacity, so even a few sessions are spread
    /// over more memory than the caches hold): (1) the flow key of every plain IPv4 TCP/UDP
    /// frame is read from fixed offsets and hashed, and the session index line of that hash
    /// prefetched; (2) the candidate session each index line names is prefetched; (3) each
    /// packet is handled as [`Worker::process`] would, its lookup starting from the hint when
    /// its parsed key is the one stage 1 read. With `prefetch` off only stage 3 runs.
    fn process_burst(&mut self, port: u16, rx: &mut Burst<D::Buf>) {
        let mut hints: ArrayVec<Option<Flow>, BURST> = ArrayVec::new();
        if self.cfg.prefetch {
            for buf in rx.iter() {
                let hint = quick_key(buf.data()).map(|key| {
                    let hash = self.table.hash(&key);
                    dpdk::prefetch(self.table.index_line(hash));
                    Flow {
                        key,
                        hash,
                        cand: Candidate::NONE,
                    }
                });
                hints.push(hint);
            }
            for f in hints.iter_mut().flatten() {
                f.cand = self.table.candidate(f.hash);
                if let Some(slot) = self.table.candidate_slot(f.cand) {
                    dpdk::prefetch_all(slot);
                }
            }
        }
        // Drained in place: `for buf in rx` would move the whole burst array (a memcpy of its
        // full capacity on every poll, empty or not).
        let hints = hints.drain(..).chain(core::iter::repeat(None));
        for (buf, hint) in rx.drain(..).zip(hints) {
            self.counters.count(Counter::RxPackets);
            self.counters.add(Counter::RxBytes, buf.len() as u64);
            self.process(port, buf, hint, false);
        }
    }

    /// Handles one received frame; `hint` is what [`Worker::process_burst`] read ahead.
    fn process(&mut self, port: u16, mut buf: D::Buf, hint: Option<Flow>, redirected: bool) {
        if !buf.is_contiguous() {
            return self.drop_pkt(DropReason::MultiSegment);
        }
        let p = match parse::parse(buf.data()) {
            Ok(p) => p,
            Err(r) => return self.drop_pkt(r),
        };
        let port_mac = self.tx.ports[port as usize].mac().0;
        let group = p.dst_mac[0] & 1 == 1;
        if p.dst_mac != port_mac && !group {
            return self.drop_pkt(DropReason::OtherHost);
        }
        let Some(iface) = self.snap.iface_index(port, p.vlan) else {
            return self.drop_pkt(DropReason::UnknownVlan);
        };
        match p.l3 {
            L3::Arp => {
                let repr = ArpPacket::new_checked(&buf.data()[p.l3_off..])
                    .and_then(|a| ArpRepr::parse(&a));
                let Ok(repr) = repr else {
                    return self.drop_pkt(DropReason::MalformedArp);
                };
                // Only well-formed ARP is shared with the peers and the kernel.
                if !redirected {
                    self.share_arp(port, &buf);
                }
                self.arp(iface, buf, p.src_mac, repr, redirected)
            }
            L3::Ipv6 => self.drop_pkt(DropReason::Ipv6NotSupported),
            L3::Ipv4(m) => {
                if group {
                    return self.drop_pkt(DropReason::OtherHost);
                }
                buf.truncate(p.l3_off + m.total_len);
                self.ipv4(port, buf, p.l3_off, &m, hint, redirected)
            }
        }
    }

    fn ipv4(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        hint: Option<Flow>,
        redirected: bool,
    ) {
        if martian(m.src, m.dst) {
            return self.drop_pkt(DropReason::MartianAddress);
        }
        if let Some(key) = flow_key(m) {
            if let L4::Tcp { flags, .. } = m.l4 {
                if !tcp_flags::valid(flags) {
                    return self.drop_pkt(DropReason::BadTcpFlags);
                }
            }
            let (hash, cand) = match hint {
                Some(h) if h.key == key => (h.hash, h.cand),
                _ => (self.table.hash(&key), Candidate::NONE),
            };
            if let Some((id, dir)) = self.table.lookup_hinted(&key, hash, cand) {
                let reopen = dir == Dir::Original
                    && opens_session(m)
                    && key.proto == Proto::Tcp
                    && matches!(
                        self.table.get(id).map(|s| s.state),
                        Some(SessionState::Tcp(TcpState::TimeWait | TcpState::Close))
                    );
                if !reopen {
                    return self.forward(id, dir, buf, l3, m);
                }
                // A new connection reusing the 4-tuple of one that is closing: like IPVS's
                // conn_reuse_mode, the old session ends and the SYN is scheduled afresh.
                if let Some(s) = self.table.remove(id) {
                    let now = self.now;
                    session_ended(&mut self.lips, &self.stats, &mut self.templates, now, &s);
                    self.counters.count(Counter::SessionsReused);
                }
            }
            if !redirected {
                if let Some(owner) = self.owner_elsewhere(&key, self.snap.local(m.dst)) {
                    return self.redirect(owner, port, buf);
                }
            }
            if let Some(si) = self.snap.service_index(key.proto, m.dst, key.dport) {
                return self.new_session(si, key, buf, l3, m);
            }
        }
        if let L4::Icmp { ty, .. } = m.l4 {
            if icmp::is_error(ty) {
                let pkt = &buf.data()[l3..l3 + m.total_len];
                if let Some(q) = icmp::quote(pkt, m.header_len) {
                    // The error travels against the quoted packet: its session holds the
                    // quote's mirror.
                    let key = q.key.mirror();
                    if let Some((id, dir)) = self.table.lookup(&key) {
                        return self.relay_icmp_error(id, dir, buf, l3, m, &q);
                    }
                    if !redirected {
                        if let Some(owner) = self.owner_elsewhere(&key, self.snap.local(key.dst)) {
                            return self.redirect(owner, port, buf);
                        }
                    }
                }
            }
        }
        let Some(local) = self.snap.local(m.dst) else {
            return self.drop_pkt(if m.fragment {
                DropReason::Fragment
            } else {
                DropReason::NotForUs
            });
        };
        if m.fragment {
            // The kernel reassembles its own traffic; a VIP's or LIP's fragments carry no
            // complete L4 header to match a session, so they are dropped and counted.
            return match local.dip {
                Some(_) => self.exception(port, buf),
                None => self.drop_pkt(DropReason::Fragment),
            };
        }
        if let L4::Icmp { ty, .. } = m.l4 {
            if ty == icmp::ECHO_REQUEST {
                return self.echo_reply(buf, l3, m);
            }
        }
        // The director's own traffic that rvs does not handle (a LIP is rvs's alone).
        if local.dip.is_some() || local.vip {
            return self.exception(port, buf);
        }
        self.drop_pkt(DropReason::NotForUs)
    }

    fn new_session(&mut self, si: usize, key: FlowKey, buf: D::Buf, l3: usize, m: &Ipv4Meta) {
        if key.proto == Proto::Tcp && self.snap.services()[si].synproxy() {
            return self.synproxy_new(si, key, buf, l3, m);
        }
        if !opens_session(m) {
            return self.drop_pkt(DropReason::NoSession);
        }
        match self.open_session(si, key, &buf, l3, m, SynProxy::Off) {
            Ok(id) => self.forward(id, Dir::Original, buf, l3, m),
            Err(r) => self.drop_pkt(r),
        }
    }

    /// Opens a session of service `si` for the client packet `m` (in `buf` at `l3`, quoted if
    /// its TTL runs out): schedules a dest (or follows the client's persistence template),
    /// takes a FullNAT LIP port and inserts both keys.
    ///
    /// # Errors
    /// The drop reason when no session could be opened; nothing is left taken then.
    fn open_session(
        &mut self,
        si: usize,
        key: FlowKey,
        buf: &D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        synproxy: SynProxy,
    ) -> Result<conntrack::SessionId, DropReason> {
        // A full table (a SYN flood waiting out SYN_RECV) refuses before the scheduler moves
        // or a LIP port is taken: a flood packet costs as little as it can.
        if self.table.len() >= self.table.capacity() {
            return Err(DropReason::TableFull);
        }
        let hint = FlowHint {
            src: m.src,
            sport: key.sport,
        };
        // Disjoint fields: the snapshot is read while this worker's scheduler moves its cursor.
        let svc = &self.snap.services()[si];
        let persist_ms = svc.persistence().map_or(0, |s| s.saturating_mul(1000));
        // A persistent service sends the client where its template says, while that dest is
        // still in the service (even at weight 0, as IPVS does by default).
        let mut template = None;
        if persist_ms > 0 {
            if let Some((tid, _)) = self.templates.lookup(&template_key(&key)) {
                let t = self.templates.get(tid).map(|t| t.data);
                let di = t.and_then(|t| {
                    svc.dests()
                        .iter()
                        .position(|d| d.addr == t.rip && d.port == t.rport)
                });
                match di {
                    Some(di) => template = Some((tid, di)),
                    None => {
                        self.templates.remove(tid);
                    }
                }
            }
        }
        let picked = match template {
            Some((_, di)) => Some(di),
            None => {
                // Least-connection schedulers weigh this worker's own sessions per dest.
                let loads = &mut self.load_scratch;
                loads.clear();
                let sched = self.scheds.get_mut(si);
                if matches!(
                    sched.as_ref().map(|s| s.kind()),
                    Some(SchedKind::Lc | SchedKind::Wlc)
                ) {
                    for di in 0..svc.dests().len() {
                        let c = self.stats.dest(self.snap.dest_slot(si, di)).sample();
                        loads.push(DestLoad {
                            active: c.active.min(u32::MAX as u64) as u32,
                            inactive: c.inactive.min(u32::MAX as u64) as u32,
                        });
                    }
                }
                sched.and_then(|s| s.pick(svc.dests(), &hint, loads))
            }
        }
        .map(|di| (svc.dests()[di], self.snap.dest_slot(si, di)));
        let Some((dest, slot)) = picked else {
            return Err(DropReason::NoDest);
        };
        if routed(dest.mode) && m.ttl <= 1 {
            self.icmp_error_back(buf, l3, m, icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED, 0);
            return Err(DropReason::TtlExceeded);
        }
        let rport = if key.proto == Proto::Icmp {
            0
        } else {
            dest.port
        };
        let (lip, lport) = if dest.mode == ForwardMode::FullNat {
            let steer = self
                .snap
                .route(dest.addr)
                .map(|h| self.snap.iface(h.iface).port as usize)
                .and_then(|p| self.cfg.steering.get(p))
                .and_then(Option::as_ref);
            let tries = STEER_TRIES_PER_QUEUE * self.cfg.workers.max(1) as usize;
            let got = match (self.lips.as_mut(), steer) {
                (Some(pool), Some(s)) => pool.alloc_where(s.selector(dest.addr, rport), tries),
                (Some(pool), None) => pool.alloc(),
                (None, _) => None,
            };
            match got {
                Some(lp) => lp,
                None => return Err(DropReason::LipExhausted),
            }
        } else {
            (Ipv4Addr::UNSPECIFIED, 0)
        };
        let fwd = Forward {
            mode: dest.mode,
            rip: dest.addr,
            rport,
            lip,
            lport,
            slot,
            persist_ms,
            synproxy,
        };
        let reply = match dest.mode {
            ForwardMode::Nat | ForwardMode::FullNat => Some(rewritten_key(&key, &fwd).mirror()),
            ForwardMode::Dr | ForwardMode::Tun => None,
        };
        match self.table.insert(key, reply, fwd, self.now) {
            Ok(id) => {
                self.counters.count(Counter::SessionsCreated);
                if persist_ms > 0 {
                    let now = self.now;
                    match template {
                        Some((tid, _)) => {
                            if let Some(t) = self.templates.data_mut(tid) {
                                t.live += 1;
                            }
                            self.templates.refresh_for(tid, now, persist_ms as u64);
                        }
                        None => {
                            let t = Template {
                                rip: dest.addr,
                                rport: dest.port,
                                live: 1,
                                timeout_ms: persist_ms,
                            };
                            // A full template table only costs the persistence of this client.
                            if let Ok(tid) = self.templates.insert(template_key(&key), None, t, now)
                            {
                                self.templates.refresh_for(tid, now, persist_ms as u64);
                            }
                        }
                    }
                }
                // TCP starts inactive (SYN_RECV after this packet); UDP and ICMP are active.
                self.stats.session_opened(slot, key.proto != Proto::Tcp);
                Ok(id)
            }
            Err(e) => {
                release_lip(&mut self.lips, &fwd);
                Err(match e {
                    conntrack::InsertError::Full => DropReason::TableFull,
                    conntrack::InsertError::KeyExists => DropReason::SessionConflict,
                })
            }
        }
    }

    fn forward(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) {
        let event = match m.l4 {
            L4::Tcp { flags, .. } => TcpEvent::from_flags(
                flags & tcp_flags::SYN != 0,
                flags & tcp_flags::FIN != 0,
                flags & tcp_flags::ACK != 0,
                flags & tcp_flags::RST != 0,
            ),
            _ => None,
        };
        let Some(s) = self.table.get(id) else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let f = s.data;
        let orig = s.original;
        let was_active = is_active(s.state);
        if let SynProxy::Pending(info) = f.synproxy {
            return self.synproxy_pending(id, dir, buf, l3, m, info);
        }
        // NAT and FullNAT route: where to, whether the TTL allows it and whether it fits the
        // egress MTU are settled before the session sees the packet.
        let routed_hop = if routed(f.mode) {
            if m.ttl <= 1 {
                self.icmp_error_back(&buf, l3, m, icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED, 0);
                return self.drop_pkt(DropReason::TtlExceeded);
            }
            let toward = if dir == Dir::Original {
                f.rip
            } else {
                orig.src
            };
            let Some(hop) = self.snap.route(toward) else {
                return self.drop_pkt(DropReason::NoRoute);
            };
            let mtu = self.snap.iface(hop.iface).mtu as usize;
            if m.total_len > mtu {
                if m.dont_frag {
                    let (ty, code) = (icmp::DEST_UNREACH, icmp::FRAG_NEEDED);
                    self.icmp_error_back(&buf, l3, m, ty, code, mtu as u32);
                }
                return self.drop_pkt(DropReason::TooBig);
            }
            Some(hop)
        } else {
            None
        };
        if let Some(state) = self.table.on_packet(id, dir, event, self.now) {
            self.stats
                .session_moved(f.slot, was_active, is_active(state));
        }
        self.stats
            .packet(f.slot, dir == Dir::Original, m.total_len as u64);
        match (routed_hop, f.mode, dir) {
            (Some(hop), _, _) => {
                let mut buf = buf;
                let end = l3 + m.total_len;
                let pkt = &mut buf.data_mut()[l3..end];
                rewrite_routed(pkt, m, &f, &orig, dir);
                if f.synproxy == SynProxy::On {
                    let shift = Shift(self.proxy_words[id.index()]);
                    shift_proxied(pkt, m, dir, shift);
                }
                self.emit(buf, l3, 0, hop)
            }
            (None, ForwardMode::Dr, Dir::Original) => match self.snap.route(f.rip) {
                Some(hop) if hop.on_link => self.emit(buf, l3, 0, hop),
                _ => self.drop_pkt(DropReason::NoRoute),
            },
            (None, ForwardMode::Tun, Dir::Original) => self.tunnel(buf, l3, m, f.rip),
            // DR and TUN sessions have no reply key, so no packet matches them this way.
            _ => self.drop_pkt(DropReason::NotForUs),
        }
    }

    /// A packet for a SYN-proxied service without a session: a SYN is answered with a cookie
    /// (no state kept); an ACK whose cookie checks opens the session and sends the RS the
    /// client's SYN as it was (its sequence number and MSS); anything else has no session.
    fn synproxy_new(&mut self, si: usize, key: FlowKey, mut buf: D::Buf, l3: usize, m: &Ipv4Meta) {
        let L4::Tcp { flags, .. } = m.l4 else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let seg = &buf.data()[l3 + m.header_len..l3 + m.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        let core = flags & tcp_flags::HANDSHAKE;
        if core == tcp_flags::SYN {
            let mss = synproxy::syn_mss(seg).unwrap_or(synproxy::MSS_TABLE[0]);
            let cookie = self.cookies.make(&key, seq, mss, self.now);
            let Some(hop) = self.snap.route(m.src) else {
                return self.drop_pkt(DropReason::NoRoute);
            };
            let ours = (self.snap.iface(hop.iface).mtu as usize).saturating_sub(40);
            let seg = TcpSegment {
                src: m.dst,
                dst: m.src,
                sport: key.dport,
                dport: key.sport,
                seq: cookie,
                ack: seq.wrapping_add(1),
                flags: tcp_flags::SYN | tcp_flags::ACK,
                window: u16::MAX,
                mss: Some(ours.min(usize::from(synproxy::MSS_TABLE[3])) as u16),
                ident: self.next_ident(),
            };
            if !local::write_tcp(&mut buf, &seg) {
                return self.drop_pkt(DropReason::NoBuffer);
            }
            self.counters.count(Counter::SynproxyCookies);
            return self.emit(buf, L2_ROOM, 0, hop);
        }
        if core != tcp_flags::ACK {
            return self.drop_pkt(DropReason::NoSession);
        }
        let isn = seq.wrapping_sub(1);
        let Some(info) = self.cookies.check(&key, isn, ack.wrapping_sub(1), self.now) else {
            return self.drop_pkt(DropReason::BadCookie);
        };
        let id = match self.open_session(si, key, &buf, l3, m, SynProxy::Pending(info)) {
            Ok(id) => id,
            Err(r) => return self.drop_pkt(r),
        };
        self.proxy_words[id.index()] = isn;
        self.table
            .on_packet(id, Dir::Original, Some(TcpEvent::Syn), self.now);
        self.counters.count(Counter::SynproxyOpened);
        self.proxy_syn(id, buf)
    }

    /// Sends proxied session `id`'s SYN to its RS in `buf` (the client's packet that caused it).
    fn proxy_syn(&mut self, id: conntrack::SessionId, buf: D::Buf) {
        let Some(s) = self.table.get(id) else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let SynProxy::Pending(info) = f.synproxy else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let seg = TcpSegment {
            seq: self.proxy_words[id.index()],
            ack: 0,
            flags: tcp_flags::SYN,
            mss: Some(synproxy::MSS_TABLE[usize::from(info.mss)]),
            ..self.segment_to_rs(&f, &orig)
        };
        self.send_segment(buf, &seg)
    }

    /// A segment from the client's side of `f`'s session to its RS, as the RS sees that side
    /// (the LIP in FullNAT, the client in NAT); sequence numbers and flags to fill in.
    fn segment_to_rs(&mut self, f: &Forward, orig: &FlowKey) -> TcpSegment {
        let (src, sport) = match f.mode {
            ForwardMode::FullNat => (f.lip, f.lport),
            _ => (orig.src, orig.sport),
        };
        TcpSegment {
            src,
            dst: f.rip,
            sport,
            dport: f.rport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: u16::MAX,
            mss: None,
            ident: self.next_ident(),
        }
    }

    /// Writes `seg` into `buf` and sends it toward its destination.
    fn send_segment(&mut self, mut buf: D::Buf, seg: &TcpSegment) {
        let Some(hop) = self.snap.route(seg.dst) else {
            return self.drop_pkt(DropReason::NoRoute);
        };
        if !local::write_tcp(&mut buf, seg) {
            return self.drop_pkt(DropReason::NoBuffer);
        }
        self.emit(buf, L2_ROOM, 0, hop)
    }

    /// A packet of a proxied session whose RS has not answered the director's SYN yet. From
    /// the client: the SYN goes again (the client's retransmissions pace the retries). From
    /// the RS: its SYN/ACK joins the halves — the shift is recorded, the RS gets the ACK that
    /// completes its handshake, and the session is ESTABLISHED; its RST resets the client's
    /// connection. Anything else waits (dropped and counted).
    fn synproxy_pending(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        info: CookieInfo,
    ) {
        let L4::Tcp { flags, .. } = m.l4 else {
            return self.drop_pkt(DropReason::SynProxyPending);
        };
        let Some(s) = self.table.get(id) else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        if dir == Dir::Original {
            if flags & (tcp_flags::SYN | tcp_flags::RST | tcp_flags::FIN) != 0 {
                return self.drop_pkt(DropReason::SynProxyPending);
            }
            self.counters.count(Counter::SynproxySynRetries);
            return self.proxy_syn(id, buf);
        }
        let seg = &buf.data()[l3 + m.header_len..l3 + m.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        let isn = self.proxy_words[id.index()];
        let core = flags & tcp_flags::HANDSHAKE;
        let now = self.now;
        if core == tcp_flags::SYN | tcp_flags::ACK && ack == isn.wrapping_add(1) {
            let cookie = self.cookies.remake(&orig, isn, info, now);
            self.proxy_words[id.index()] = seq.wrapping_sub(cookie);
            if let Some(d) = self.table.data_mut(id) {
                d.synproxy = SynProxy::On;
            }
            // The RS's SYN/ACK, then the ACK the director sends for the client.
            self.table
                .on_packet(id, Dir::Reply, Some(TcpEvent::Syn), now);
            if let Some(state) = self
                .table
                .on_packet(id, Dir::Original, Some(TcpEvent::Ack), now)
            {
                self.stats.session_moved(f.slot, false, is_active(state));
            }
            self.counters.count(Counter::SynproxyJoined);
            let seg = TcpSegment {
                seq: isn.wrapping_add(1),
                ack: seq.wrapping_add(1),
                flags: tcp_flags::ACK,
                ..self.segment_to_rs(&f, &orig)
            };
            return self.send_segment(buf, &seg);
        }
        if flags & tcp_flags::RST != 0 {
            // The RS refused: the client's connection is reset where it stands.
            let cookie = self.cookies.remake(&orig, isn, info, now);
            self.table
                .on_packet(id, Dir::Reply, Some(TcpEvent::Rst), now);
            let seg = TcpSegment {
                src: orig.dst,
                dst: orig.src,
                sport: orig.dport,
                dport: orig.sport,
                seq: cookie.wrapping_add(1),
                ack: 0,
                flags: tcp_flags::RST,
                window: 0,
                mss: None,
                ident: self.next_ident(),
            };
            return self.send_segment(buf, &seg);
        }
        self.drop_pkt(DropReason::SynProxyPending)
    }

    /// Relays an ICMP error about session `id`'s packet to the session's other side, as IPVS
    /// does for NAT (`ip_vs_nat_icmp`): its quote is rewritten to show the packet as that
    /// side sent it ([`icmp::rewrite_quote`]), and the outer header is addressed like the
    /// session's own packets in that direction. Toward the client the error comes from the
    /// VIP; toward the RS it keeps its source in NAT (the RS routes back through the
    /// director anyway) and comes from the session's LIP in FullNAT. DR and TUN sessions
    /// only see the client side: an error about the RS's direct reply goes to the RS as the
    /// client's packets do (on the link, or encapsulated). The session's state and timer do
    /// not change.
    fn relay_icmp_error(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        q: &icmp::Quote,
    ) {
        let Some(s) = self.table.get(id) else {
            return self.drop_pkt(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let end = l3 + m.total_len;
        if !icmp::checksum_valid(&buf.data()[l3..end], m.header_len) {
            return self.drop_pkt(DropReason::BadIcmpChecksum);
        }
        if !routed(f.mode) {
            return match (f.mode, dir) {
                (ForwardMode::Dr, Dir::Original) => match self.snap.route(f.rip) {
                    Some(hop) if hop.on_link => {
                        self.counters.count(Counter::IcmpRelayed);
                        self.emit(buf, l3, 0, hop)
                    }
                    _ => self.drop_pkt(DropReason::NoRoute),
                },
                (ForwardMode::Tun, Dir::Original) => {
                    self.counters.count(Counter::IcmpRelayed);
                    self.tunnel(buf, l3, m, f.rip)
                }
                _ => self.drop_pkt(DropReason::NotForUs),
            };
        }
        // Never an ICMP error about an ICMP error (RFC 1122 3.2.2).
        if m.ttl <= 1 {
            return self.drop_pkt(DropReason::TtlExceeded);
        }
        let shift = (f.synproxy == SynProxy::On && q.key.proto == Proto::Tcp)
            .then(|| Shift(self.proxy_words[id.index()]));
        let pkt = &mut buf.data_mut()[l3..end];
        if let Some(shift) = shift {
            // A proxied session's quote moves into the sequence space of the side it goes to.
            match dir {
                Dir::Original => icmp::shift_quoted_tcp(pkt, q, shift.to_rs(0), 0),
                Dir::Reply => icmp::shift_quoted_tcp(pkt, q, 0, shift.to_client(0)),
            }
        }
        let toward = match dir {
            // Toward the RS: the quote becomes the RS's own reply as it sent it.
            Dir::Original => {
                let reply = rewritten_key(&orig, &f).mirror();
                icmp::rewrite_quote(pkt, m.header_len, q, &reply);
                let mut r = Ipv4Rewrite::new(pkt, m.header_len, IpProto::Icmp);
                if f.mode == ForwardMode::FullNat {
                    r.set_src(f.lip);
                }
                r.set_dst(f.rip);
                r.dec_ttl();
                f.rip
            }
            // Toward the client: the quote becomes the client's packet to the VIP.
            Dir::Reply => {
                icmp::rewrite_quote(pkt, m.header_len, q, &orig);
                let mut r = Ipv4Rewrite::new(pkt, m.header_len, IpProto::Icmp);
                r.set_src(orig.dst);
                r.set_dst(orig.src);
                r.dec_ttl();
                orig.src
            }
        };
        match self.snap.route(toward) {
            Some(hop) => {
                self.counters.count(Counter::IcmpRelayed);
                self.emit(buf, l3, 0, hop)
            }
            None => self.drop_pkt(DropReason::NoRoute),
        }
    }

    /// TUN: IPIP-encapsulates the untouched packet toward the RS (RFC 2003).
    fn tunnel(&mut self, buf: D::Buf, l3: usize, m: &Ipv4Meta, rip: Ipv4Addr) {
        let Some(hop) = self.snap.route(rip) else {
            return self.drop_pkt(DropReason::NoRoute);
        };
        let iface = self.snap.iface(hop.iface);
        if m.total_len + IPIP_OVERHEAD > iface.mtu as usize {
            if m.dont_frag {
                let mtu = (iface.mtu as usize - IPIP_OVERHEAD) as u32;
                self.icmp_error_back(&buf, l3, m, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, mtu);
            }
            return self.drop_pkt(DropReason::TooBig);
        }
        let outer = Ipv4Header {
            src: self.snap.source_addr(hop.iface, rip),
            dst: rip,
            proto: IpProto::Ipip,
            tos: buf.data()[l3 + crate::wire::ipv4::field::TOS],
            ttl: m.ttl,
            dont_frag: m.dont_frag,
            ident: self.next_ident(),
            total_len: (m.total_len + IPIP_OVERHEAD) as u16,
        };
        self.emit_with(buf, l3, IPIP_OVERHEAD, hop, |gap| {
            if let Ok(h) = gap.try_into() {
                outer.emit(h);
            }
        })
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Sends an ICMP error (`ty`, `code`, `rest`: fragmentation needed with the next-hop MTU,
    /// or time exceeded) about the packet at `l3` back to its sender, quoting it as received.
    /// Within [`icmp::RateLimit`]'s budget; beyond it, or without a route or a buffer, nothing
    /// is sent and `icmp_unsent` counts it. The caller drops the offending packet.
    fn icmp_error_back(
        &mut self,
        offending: &D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        ty: u8,
        code: u8,
        rest: u32,
    ) {
        let hop = self.snap.route(m.src);
        let Some(hop) = hop.filter(|_| self.icmp_limit.allow(self.now)) else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[port as usize].alloc() else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        let e = IcmpError {
            src: self.snap.source_addr(hop.iface, m.src),
            dst: m.src,
            ty,
            code,
            rest,
            ident: self.next_ident(),
        };
        let end = l3 + m.total_len;
        if !local::write_icmp_error(&mut b, &e, &offending.data()[l3..end]) {
            self.counters.count(Counter::IcmpUnsent);
            return;
        }
        self.counters.count(Counter::IcmpErrors);
        self.emit(b, L2_ROOM, 0, hop)
    }

    /// Answers an ICMP echo request to one of the director's addresses, in place.
    fn echo_reply(&mut self, mut buf: D::Buf, l3: usize, m: &Ipv4Meta) {
        let end = l3 + m.total_len;
        {
            let mut r = Ipv4Rewrite::new(&mut buf.data_mut()[l3..end], m.header_len, IpProto::Icmp);
            r.set_icmp_type(icmp::ECHO_REPLY);
            r.set_src(m.dst);
            r.set_dst(m.src);
            r.set_ttl(64);
        }
        match self.snap.route(m.src) {
            Some(hop) => {
                self.counters.count(Counter::IcmpEchoReplies);
                self.emit(buf, l3, 0, hop)
            }
            None => self.drop_pkt(DropReason::NoRoute),
        }
    }

    fn exception(&mut self, port: u16, buf: D::Buf) {
        match self.roles.get(port as usize) {
            Some(PortRole::Data { exception: Some(e) }) => {
                self.counters.count(Counter::Exception);
                self.tx.send(*e, buf, &mut self.counters)
            }
            _ => self.drop_pkt(DropReason::NoExceptionPath),
        }
    }

    fn arp(&mut self, iface: u16, mut buf: D::Buf, src_mac: [u8; 6], repr: ArpRepr, copy: bool) {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        } = repr
        else {
            return self.drop_pkt(DropReason::MalformedArp);
        };
        let for_us = self.snap.answers_arp(iface, tpa);
        // Learn the sender when the ARP concerns us, or refresh an entry we already have.
        if (for_us || self.neigh.contains(spa)) && !spa.is_unspecified() && sha.0[0] & 1 == 0 {
            let tx = &mut self.tx;
            let counters = &mut self.counters;
            self.neigh.learn(spa, sha, self.now, |p, mac| {
                let mut b = p.buf;
                rewrite::set_dst_mac(&mut b, mac.0);
                tx.send(p.port, b, counters);
            });
        }
        if copy {
            // Another worker answered it already; this copy only fed the neighbour table.
            return;
        }
        if operation != ArpOperation::Request || !for_us {
            return self.drop_pkt(DropReason::ArpNotForUs);
        }
        let i = self.snap.iface(iface);
        let (port, vlan) = (i.port, i.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: tpa,
            target_hardware_addr: sha,
            target_protocol_addr: spa,
        };
        if !local::write_arp(&mut buf, vlan, mac.0, src_mac, &reply) {
            return self.drop_pkt(DropReason::NoBuffer);
        }
        self.counters.count(Counter::ArpReplies);
        self.tx.send(port, buf, &mut self.counters)
    }

    #[inline]
    fn emit(&mut self, buf: D::Buf, l3: usize, gap: usize, hop: Hop) {
        self.emit_with(buf, l3, gap, hop, |_| {})
    }

    /// Frames the packet for `hop` (with `gap` bytes before L3 that `fill` writes), resolves
    /// the next hop's MAC and queues it for TX, or parks it until ARP answers.
    #[inline]
    fn emit_with(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        gap: usize,
        hop: Hop,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let iface = self.snap.iface(hop.iface);
        let (port, vlan) = (iface.port, iface.vlan);
        let mac = self.tx.ports[port as usize].mac();
        let at = match rewrite::frame_l2(&mut buf, l3, gap, vlan, mac.0, ETHERTYPE_IPV4) {
            Ok(at) => at,
            Err(r) => return self.drop_pkt(r),
        };
        fill(&mut buf.data_mut()[at..at + gap]);
        if let Some(dmac) = self.neigh.lookup(hop.nexthop) {
            rewrite::set_dst_mac(&mut buf, dmac.0);
            return self.tx.send(port, buf, &mut self.counters);
        }
        match self.neigh.park(hop.nexthop, Parked { buf, port }, self.now) {
            Park::Parked { send_request } => {
                self.counters.count(Counter::Parked);
                if send_request {
                    send_arp_request(&self.snap, &mut self.tx, &mut self.counters, hop.nexthop);
                }
            }
            Park::Rejected(p) => {
                drop(p);
                self.drop_pkt(DropReason::NeighbourUnresolved)
            }
        }
    }
}

/// Puts a freshly allocated table's large regions (ten million sessions take about a GiB)
/// on transparent huge pages, so that a lookup misses the TLB far less often; their pages
/// must not have been touched yet. A hint: failure is logged and changes nothing.
pub fn advise_huge_pages<T>(table: &Table<T>) {
    for (addr, len) in table.memory_regions() {
        if len >= HUGE_PAGE_MIN {
            if let Err(e) = dpdk::advise_huge_pages(addr, len) {
                tracing::debug!("session table without transparent huge pages: {e}");
            }
        }
    }
}

/// Sends an ARP request for `ip` out of the interface its route uses.
fn send_arp_request<D: Device>(snap: &Snapshot, tx: &mut Tx<D>, c: &mut Counters, ip: Ipv4Addr) {
    let Some(hop) = snap.route(ip) else {
        c.count_drop(DropReason::NoRoute);
        return;
    };
    let iface = snap.iface(hop.iface);
    let port = iface.port;
    let mac = tx.ports[port as usize].mac();
    let Some(mut b) = tx.ports[port as usize].alloc() else {
        c.count_drop(DropReason::NoBuffer);
        return;
    };
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: snap.source_addr(hop.iface, hop.nexthop),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: hop.nexthop,
    };
    if !local::write_arp(&mut b, iface.vlan, mac.0, [0xff; 6], &req) {
        c.count_drop(DropReason::NoBuffer);
        return;
    }
    c.count(Counter::ArpRequests);
    tx.send(port, b, c);
}

/// Everything a session's end (at `ended_at`) gives back: its LIP port, its counts, its
/// template's hold.
fn session_ended(
    lips: &mut Option<LipPool>,
    stats: &WorkerStats,
    templates: &mut Table<Template>,
    ended_at: u64,
    s: &conntrack::Session<Forward>,
) {
    stats.session_closed(s.data.slot, is_active(s.state));
    release_lip(lips, &s.data);
    if s.data.persist_ms > 0 {
        if let Some((tid, _)) = templates.lookup(&template_key(&s.original)) {
            if let Some(t) = templates.data_mut(tid) {
                t.live = t.live.saturating_sub(1);
            }
            // The client's next connection within the timeout still goes to the same dest.
            templates.refresh_for(tid, ended_at, s.data.persist_ms as u64);
        }
    }
}

fn release_lip(lips: &mut Option<LipPool>, f: &Forward) {
    if f.mode == ForwardMode::FullNat {
        if let Some(p) = lips.as_mut() {
            p.free(f.lip, f.lport);
        }
    }
}

/// The most dests any service of `snap` has.
fn max_dests(snap: &Snapshot) -> usize {
    snap.services()
        .iter()
        .map(|s| s.dests().len())
        .max()
        .unwrap_or(0)
}

/// IPVS's ActiveConn: established TCP sessions, and UDP/ICMP ones (which never go inactive).
#[inline]
fn is_active(state: SessionState) -> bool {
    match state {
        SessionState::Tcp(t) => t == TcpState::Established,
        SessionState::Udp | SessionState::Icmp => true,
    }
}

/// The NAT or FullNAT rewrite of a session's packet `pkt` (from its IPv4 header to its end)
/// going in direction `dir`: addresses, ports (the echo identifier for ICMP), TTL, checksums.
#[inline]
fn rewrite_routed(pkt: &mut [u8], m: &Ipv4Meta, f: &Forward, orig: &FlowKey, dir: Dir) {
    let icmp = m.proto == IpProto::Icmp;
    let mut r = Ipv4Rewrite::new(pkt, m.header_len, m.proto);
    match (f.mode, dir) {
        (ForwardMode::FullNat, Dir::Original) => {
            r.set_src(f.lip);
            r.set_dst(f.rip);
            if icmp {
                r.set_echo_ident(f.lport);
            } else {
                r.set_sport(f.lport);
                r.set_dport(f.rport);
            }
        }
        (ForwardMode::FullNat, Dir::Reply) => {
            r.set_src(orig.dst);
            r.set_dst(orig.src);
            if icmp {
                r.set_echo_ident(orig.sport);
            } else {
                r.set_sport(orig.dport);
                r.set_dport(orig.sport);
            }
        }
        (_, Dir::Original) => {
            r.set_dst(f.rip);
            if !icmp {
                r.set_dport(f.rport);
            }
        }
        (_, Dir::Reply) => {
            r.set_src(orig.dst);
            if !icmp {
                r.set_sport(orig.dport);
            }
        }
    }
    r.dec_ttl();
}

/// Moves a proxied session's TCP segment `pkt` into the sequence space of the side it goes
/// to: the RS's `seq` back to the cookie's space toward the client, the client's `ack` (when
/// it has one) into the RS's space toward the RS.
#[inline]
fn shift_proxied(pkt: &mut [u8], m: &Ipv4Meta, dir: Dir, shift: Shift) {
    let L4::Tcp { flags, .. } = m.l4 else {
        return;
    };
    match dir {
        Dir::Reply => rewrite::shift_tcp(pkt, m.header_len, shift.to_client(0), 0),
        Dir::Original if flags & tcp_flags::ACK != 0 => {
            rewrite::shift_tcp(pkt, m.header_len, 0, shift.to_rs(0))
        }
        Dir::Original => {}
    }
}

/// True if `src` may not appear as a packet's source or `dst` as its destination on the
/// wire (RFC 1122 3.2.1.3, RFC 5735): "this network" 0/8 and loopback 127/8 either way;
/// multicast and reserved 224/3 (the limited broadcast included) as a source; reserved 240/4
/// as a destination (multicast destinations arrive on group MACs, dropped before this).
#[inline]
fn martian(src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let (s, d) = (src.octets()[0], dst.octets()[0]);
    s == 0 || s == 127 || s >= 224 || d == 0 || d == 127 || d >= 240
}

/// NAT and FullNAT route the packet (TTL decremented); DR and TUN leave the IP header alone.
#[inline]
fn routed(mode: ForwardMode) -> bool {
    matches!(mode, ForwardMode::Nat | ForwardMode::FullNat)
}

/// The flow key of a packet, if it is one rvs tracks (TCP, UDP, ICMP echo; not fragments).
#[inline]
fn flow_key(m: &Ipv4Meta) -> Option<FlowKey> {
    let (proto, sport, dport) = match m.l4 {
        L4::Tcp { sport, dport, .. } => (Proto::Tcp, sport, dport),
        L4::Udp { sport, dport } => (Proto::Udp, sport, dport),
        L4::Icmp { ty, ident, .. } if ty == icmp::ECHO_REQUEST => (Proto::Icmp, ident, 0),
        L4::Icmp { ty, ident, .. } if ty == icmp::ECHO_REPLY => (Proto::Icmp, 0, ident),
        _ => return None,
    };
    Some(FlowKey::new(proto, m.src, sport, m.dst, dport))
}

/// The flow key of a plain IPv4 TCP/UDP frame (untagged, no IP options), read from fixed
/// offsets without validating anything: only a hint for prefetching, which the parsed key
/// must equal to be used.
#[inline]
fn quick_key(frame: &[u8]) -> Option<FlowKey> {
    let h: &[u8; 38] = frame.get(..38)?.try_into().ok()?;
    if h[12..15] != [0x08, 0x00, 0x45] {
        return None;
    }
    let proto = match h[23] {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        _ => return None,
    };
    let addr = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    let port = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    Some(FlowKey::new(proto, addr(26), port(34), addr(30), port(36)))
}

/// Can this packet open a session? TCP: a plain SYN (no ACK, RST or FIN); UDP: any datagram;
/// ICMP: an echo request.
#[inline]
fn opens_session(m: &Ipv4Meta) -> bool {
    match m.l4 {
        L4::Tcp { flags, .. } => flags & tcp_flags::HANDSHAKE == tcp_flags::SYN,
        L4::Udp { .. } => true,
        L4::Icmp { ty, .. } => ty == icmp::ECHO_REQUEST,
        L4::None => false,
    }
}

/// The key of the client's packet after the forward rewrite (what the RS sees).
#[inline]
fn rewritten_key(k: &FlowKey, f: &Forward) -> FlowKey {
    match f.mode {
        ForwardMode::FullNat => FlowKey::new(k.proto, f.lip, f.lport, f.rip, f.rport),
        _ => FlowKey::new(k.proto, k.src, k.sport, f.rip, f.rport),
    }
}
