//! The worker: one thread's run loop over its queues, its session table and its state.
//!
//! A packet's walk (docs/architecture.md names the function of each step), one file per step:
//! - `mod.rs`: the worker, [`Worker::poll`] (RX from every port, then the steps below), and
//!   taking a new configuration snapshot;
//! - `classify.rs`: the burst looked up in prefetching stages, the frame parsed and filtered,
//!   then classified — a session's packet, a new session, an ICMP error about a session, the
//!   director's own traffic — and handed to the worker owning its session if that is another;
//! - `fast.rs`: the established fast path — a staged frame of a found session, IPv4 or IPv6,
//!   with nothing about it but the rewrite, straight from the burst to its TX buffer;
//! - `session.rs`: opening a session (dest, LIP port, persistence template) and ending one;
//! - `fragment.rs`: IPv4 fragments — the first one classified like a whole packet and noted
//!   in the fragment table, later ones following it there; TUN's outer fragments;
//! - `forward.rs`: the session's state, then the per-mode rewrite (NAT, FullNAT, DR, TUN);
//! - `synproxy.rs`: SYN cookies and the proxied handshake;
//! - `preamble.rs`: the PROXY protocol header ahead of the client's data, and the sequence
//!   shift around it;
//! - `icmp.rs`: ICMP errors relayed, ICMP errors sent back, echo replies;
//! - `refuse.rs`: a RST or a port unreachable for a VIP's port that no service has;
//! - `ipv6.rs`: IPv6 to the director: neighbour discovery, ICMPv6 echo, the kernel's share;
//! - `local.rs`: ARP, sharing ARP with the peers and the kernel, the exception path;
//! - `announce.rs`: gratuitous ARP for managed addresses the director takes over;
//! - `tx.rs`: the verdict (`Emit` or a drop) carried out — framing, next hop,
//!   parking, TX buffers — and the drop counted, in one place;
//! - `sync.rs`: session sync — changes noted, exported, swept, and peers' records installed;
//! - `slow.rs`: the slow jobs every `slow_every` loops (expiry, neighbour aging, ARP retries,
//!   publishing the counters, the control plane's mailbox); `config.rs`: the settings.
//!
//! Nothing on the per-packet path allocates, locks or makes a syscall. The worker is
//! sans-clock: [`Worker::poll`] takes `now` (milliseconds), so tests drive it on a simulated
//! clock.

mod announce;
mod classify;
mod config;
mod fast;
mod forward;
mod fragment;
mod fragment6;
mod icmp;
mod icmp6;
mod ipv6;
mod local;
mod nat64;
mod preamble;
mod preamble6;
mod refuse;
mod service6;
mod session;
mod slow;
mod sync;
mod synproxy;
mod synproxy6;
mod tx;

pub use announce::{GARP_COUNT, GARP_INTERVAL_MS};
pub use config::{PortRole, WorkerConfig, WorkerError};
pub use service6::{Forward6, Template6, Via6};
pub use session::{Forward, Phase, Preamble, SynProxy, Template, Via};
pub use slow::{MailRequest, Mailbox, SessionDump, SessionInfo, DUMP_SCAN_SLOTS};
pub use tx::Parked;

use crate::buf::PacketBuf;
use crate::counters::{Counter, Counters};
use crate::device::{Burst, Device};
use crate::frag::{FragTable, FragTable6};
use crate::icmp::RateLimit;
use crate::lip::{LipPool, LipPool6};
use crate::neigh::NeighTable;
use crate::redirect::RedirectRings;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::stats::WorkerStats;
use crate::synproxy::Cookies;
use crate::wire::EthernetAddress;
use conntrack::{FlowKey, FlowKey6, Key, Table};
use core::net::{IpAddr, Ipv6Addr};
use sched::{AnyScheduler, DestLoad, SchedKind, Scheduler, WeightedRoundRobin};
use std::sync::Arc;
use tx::Tx;

/// Table memory regions from this size up are advised onto transparent huge pages.
const HUGE_PAGE_MIN: usize = 4 << 20;

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
    /// IPv6 services' sessions.
    table6: Table<Forward6, FlowKey6>,
    templates: Table<Template>,
    template_rearm: Vec<(FlowKey, Template)>,
    /// IPv6 services' persistence templates.
    templates6: Table<Template6, FlowKey6>,
    template6_rearm: Vec<(FlowKey6, Template6)>,
    /// Per-dest loads for least-connection schedulers, sized to the largest service.
    load_scratch: Vec<DestLoad>,
    lips: Option<LipPool>,
    /// IPv6 LIPs (FullNAT66), from the same slice of the port range.
    lips6: Option<LipPool6>,
    neigh: NeighTable<Parked<D::Buf>>,
    /// IPv6 neighbours, resolved by neighbour discovery.
    neigh6: NeighTable<Parked<D::Buf>, Ipv6Addr>,
    redirect: Option<Arc<RedirectRings<D::Buf>>>,
    stats: Arc<WorkerStats>,
    mailbox: Arc<Mailbox>,
    busy_loops: u32,
    loops_since_publish: u32,
    counters: Counters,
    icmp_limit: RateLimit,
    /// The budget of the RSTs and port unreachables for ports no service has (see
    /// [`refuse`]), apart from the ICMP errors' so that a flood to closed ports cannot starve
    /// path MTU discovery.
    refuse_limit: RateLimit,
    cookies: Cookies,
    /// One word per session slot (by [`conntrack::SessionId::index`]) for proxied sessions:
    /// the client's initial sequence number, then the [`Shift`]. Zeroed pages cost nothing
    /// until a proxied session touches them.
    proxy_words: Vec<u32>,
    /// The same for the IPv6 table's slots.
    proxy_words6: Vec<u32>,
    /// Where the later fragments of datagrams seen go.
    frags: FragTable,
    /// The same for IPv6 datagrams.
    frags6: FragTable6,
    /// Session sync, when a sync daemon is connected ([`Worker::with_sync`]).
    sync: Option<sync::SyncState>,
    ident: u16,
    /// The same for IPv6 fragments (32-bit identifications).
    ident6: u32,
    loops: u32,
    now: u64,
    /// Gratuitous ARPs still to send for managed addresses taken over (worker 0 only).
    announcing: Vec<announce::Announce>,
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
            // A shuffled start keeps steered allocation cheap whatever the RSS key.
            let seed = cfg
                .steering
                .iter()
                .any(Option::is_some)
                .then_some(cfg.id as u64 + 1);
            Some(LipPool::with_reuse(
                snap.lips(),
                range,
                seed,
                snap.lport_reuse(),
            )?)
        };
        let lips6 = if snap.lips6().is_empty() {
            None
        } else {
            let range = LipPool::worker_range(snap.lport_range(), cfg.workers, cfg.id)?;
            Some(LipPool6::new(
                snap.lips6(),
                range,
                Some(cfg.id as u64 + 1),
                snap.lport_reuse(),
            )?)
        };
        let stats = WorkerStats::with_lips(snap.lips().len(), snap.lips6().len());
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
        let table6 = Table::with_capacity(cfg.table6_capacity.max(64), *snap.timeouts());
        // As many IPv6 templates as IPv4 ones, but no more than one per 16 IPv6 sessions.
        let templates6 = Table::with_capacity(
            cfg.template_capacity.min(cfg.table6_capacity / 16).max(64),
            conntrack::Timeouts::default(),
        );
        let proxy_slots6 = table6.capacity();
        advise_huge_pages(&table);
        advise_huge_pages(&table6);
        advise_huge_pages(&templates);
        advise_huge_pages(&templates6);
        let neigh = NeighTable::new(cfg.neigh);
        let neigh6 = NeighTable::new(cfg.neigh);
        let bufs = (0..n).map(|_| Burst::new()).collect();
        let mut worker = Worker {
            roles,
            tx: Tx { ports, bufs },
            source,
            refused: Arc::clone(&snap),
            snap,
            scheds,
            lips6,
            table,
            table6,
            templates,
            template_rearm: Vec::with_capacity(1024),
            templates6,
            template6_rearm: Vec::with_capacity(1024),
            load_scratch: Vec::with_capacity(most_dests),
            lips,
            neigh,
            neigh6,
            redirect: None,
            stats,
            mailbox: Arc::new(Mailbox {
                queue: crossbeam_queue::ArrayQueue::new(16),
            }),
            busy_loops: 0,
            loops_since_publish: 0,
            counters: Counters::default(),
            icmp_limit: RateLimit::new(),
            refuse_limit: RateLimit::new(),
            cookies: Cookies::new(),
            proxy_words: vec![0; proxy_slots],
            proxy_words6: vec![0; proxy_slots6],
            frags: match cfg.fragment_seed {
                Some(seed) => FragTable::with_seed(cfg.fragment_capacity, seed),
                None => FragTable::new(cfg.fragment_capacity),
            },
            frags6: match cfg.fragment_seed {
                Some(seed) => FragTable6::with_seed(cfg.fragment_capacity, seed),
                None => FragTable6::new(cfg.fragment_capacity),
            },
            sync: None,
            // The workers' counters start spread over the id space, so that the fresh ids
            // FullNAT gives fragmented datagrams (worker/fragment.rs) stay apart.
            ident: (u32::from(cfg.id) * 0x1_0000 / u32::from(cfg.workers.max(1))) as u16,
            ident6: (u64::from(cfg.id) * 0x1_0000_0000 / u64::from(cfg.workers.max(1))) as u32,
            loops: 0,
            now: 0,
            announcing: Vec::new(),
            cfg,
        };
        // Addresses held from the start are announced like any taken over later.
        let snap = Arc::clone(&worker.snap);
        worker.schedule_announcements(None, &snap);
        Ok(worker)
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

    /// Bytes the IPv6 session, template and fragment tables allocated (all of it at
    /// construction).
    pub fn session_memory6(&self) -> usize {
        self.table6.allocation_size()
            + self.templates6.allocation_size()
            + self.proxy_words6.len() * core::mem::size_of::<u32>()
            + self.frags6.allocation_size()
    }

    /// The IPv6 persistence templates (read-only: tests).
    pub fn templates6(&self) -> &Table<Template6, FlowKey6> {
        &self.templates6
    }

    /// The IPv6 session table (read-only: listing, tests).
    pub fn sessions6(&self) -> &Table<Forward6, FlowKey6> {
        &self.table6
    }

    /// The fragment table (read-only: tests).
    pub fn fragments(&self) -> &FragTable {
        &self.frags
    }

    /// The IPv6 fragment table (read-only: tests).
    pub fn fragments6(&self) -> &FragTable6 {
        &self.frags6
    }

    /// Bytes the IPv4 session and template tables allocated (all of it at construction).
    pub fn session_memory(&self) -> usize {
        self.table.allocation_size()
            + self.templates.allocation_size()
            + self.proxy_words.len() * core::mem::size_of::<u32>()
            + self.frags.allocation_size()
    }

    /// The neighbour table, e.g. to add static entries.
    pub fn neighbours_mut(&mut self) -> &mut NeighTable<Parked<D::Buf>> {
        &mut self.neigh
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &NeighTable<Parked<D::Buf>> {
        &self.neigh
    }

    /// Adds a static neighbour of either family (see [`NeighTable::insert_static`]).
    pub fn insert_static_neighbour(&mut self, ip: IpAddr, mac: EthernetAddress) -> bool {
        match ip {
            IpAddr::V4(ip) => self.neigh.insert_static(ip, mac),
            IpAddr::V6(ip) => self.neigh6.insert_static(ip, mac),
        }
    }

    /// The IPv6 neighbour table, e.g. to add static entries.
    pub fn neighbours6_mut(&mut self) -> &mut NeighTable<Parked<D::Buf>, Ipv6Addr> {
        &mut self.neigh6
    }

    /// The IPv6 neighbour table.
    pub fn neighbours6(&self) -> &NeighTable<Parked<D::Buf>, Ipv6Addr> {
        &self.neigh6
    }

    /// This worker's LIP pool, if FullNAT LIPs are configured.
    pub fn lip_pool(&self) -> Option<&LipPool> {
        self.lips.as_ref()
    }

    /// This worker's IPv6 LIP pool, if FullNAT66 LIPs are configured.
    pub fn lip_pool6(&self) -> Option<&LipPool6> {
        self.lips6.as_ref()
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
            let old_index = self.snap.service_index_of(&key);
            // rr and wrr keep this worker's position, told of a change of the dests as IPVS
            // tells them (wrr's mark back to the head; nothing else moves: an unchanged
            // service's position stays); everything else is taken as the control side built
            // it (a Maglev table is never computed on a worker).
            let kept = old_index
                .and_then(|i| self.scheds.get(i).map(|sched| (i, sched)))
                .filter(|(_, old)| {
                    old.kind() == s.sched() && matches!(s.sched(), SchedKind::Rr | SchedKind::Wrr)
                })
                .map(|(i, old)| (self.snap.services()[i].dests() != s.dests(), old.clone()));
            scheds.push(match kept {
                Some((changed, mut old)) => {
                    if changed {
                        old.update(s.dests());
                    }
                    old
                }
                // A service switched to wrr (`-E -s wrr`) with its dests: IPVS binds the
                // scheduler to them as they stand, its first pass at the top weight.
                None if old_index.is_some() && s.sched() == SchedKind::Wrr => {
                    AnyScheduler::Wrr(WeightedRoundRobin::bound(s.dests()))
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
        self.table6.set_timeouts(*new.timeouts());
        let old = core::mem::replace(&mut self.snap, new);
        let new = Arc::clone(&self.snap);
        self.schedule_announcements(Some(&old), &new);
    }
}

/// Puts a freshly allocated table's large regions (ten million sessions take about a GiB)
/// on transparent huge pages, so that a lookup misses the TLB far less often; their pages
/// must not have been touched yet. A hint: failure is logged and changes nothing.
pub fn advise_huge_pages<T, K: Key>(table: &Table<T, K>) {
    for (addr, len) in table.memory_regions() {
        if len >= HUGE_PAGE_MIN {
            if let Err(e) = dpdk::advise_huge_pages(addr, len) {
                tracing::debug!("session table without transparent huge pages: {e}");
            }
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
