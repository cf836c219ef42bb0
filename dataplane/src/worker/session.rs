//! Step 6: opening a session — scheduling a dest (or following a persistence template),
//! taking a FullNAT LIP port, inserting both keys — and what a session's end gives back.

use super::classify::opens_session;
use super::forward::routed;
use super::tx::Verdict;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::lip::{LipPool, Toward};
use crate::parse::{Ipv4Meta, L4};
pub use crate::proxy_protocol::{Carrier, Phase};
use crate::snapshot::{Hop, Snapshot};
use crate::stats::WorkerStats;
use crate::synproxy::CookieInfo;
use crate::wire::be32;
use crate::wire::tcp::flags as tcp_flags;
use conntrack::{Dir, FlowKey, Proto, SessionState, Table, TcpEvent, TcpState};
use core::net::{IpAddr, Ipv4Addr};
use sched::{DestLoad, FlowHint, ForwardMode, ProxyProtocol, SchedKind, Scheduler};

/// Candidate LIP ports examined per worker queue before RSS-aware allocation gives up.
pub(super) const STEER_TRIES_PER_QUEUE: usize = 64;

/// What a session needs to forward its packets, whatever the configuration does later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// How its packets reach the RS: the dest's forwarding mode, with what only that mode
    /// needs.
    pub via: Via,
    /// Real server address.
    pub rip: Ipv4Addr,
    /// Real server port (0 for ICMP).
    pub rport: u16,
    /// The dest's counter slot.
    pub slot: u32,
    /// The service's persistence timeout in ms (0: not persistent); the session counts in its
    /// client's template while it lives.
    pub persist_ms: u32,
    /// Whether the director proxied the handshake, and how far it got.
    pub synproxy: SynProxy,
    /// Installed from a peer director's sync record, and not moved by this director since.
    pub peer: bool,
    /// Noted for session sync since the last export (one record however many changes).
    pub sync_noted: bool,
    /// The PROXY protocol header its service sends, and how far it got.
    pub preamble: Preamble,
    /// With a header: the client's first data byte (its ISN + 1), where the header starts in
    /// the RS's sequence space.
    pub first_seq: u32,
}

/// A session's PROXY protocol header ([`crate::proxy_protocol`]): the version its service
/// sends (none for most sessions) and how far the header got. One byte: with
/// [`Forward::first_seq`] it fills what a session had spare, so no session grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Preamble(u8);

impl Preamble {
    /// No header.
    pub const NONE: Preamble = Preamble(0);

    /// A header carried by `carrier`, not sent yet.
    #[inline]
    pub fn new(carrier: Option<Carrier>) -> Preamble {
        match carrier {
            None => Preamble::NONE,
            Some(Carrier::Proxy(ProxyProtocol::V1)) => Preamble(1),
            Some(Carrier::Proxy(ProxyProtocol::V2)) => Preamble(2),
            Some(Carrier::Toa) => Preamble(3),
        }
    }

    /// Whether the session has one.
    #[inline]
    pub fn is_on(self) -> bool {
        self.0 & 3 != 0
    }

    /// How the session tells the RS who the client is, if it does.
    #[inline]
    pub fn carrier(self) -> Option<Carrier> {
        match self.0 & 3 {
            1 => Some(Carrier::Proxy(ProxyProtocol::V1)),
            2 => Some(Carrier::Proxy(ProxyProtocol::V2)),
            3 => Some(Carrier::Toa),
            _ => None,
        }
    }

    /// The PROXY protocol header's version, if the session sends one.
    #[inline]
    pub fn version(self) -> Option<ProxyProtocol> {
        match self.carrier() {
            Some(Carrier::Proxy(v)) => Some(v),
            _ => None,
        }
    }

    /// How far it got.
    #[inline]
    pub fn phase(self) -> Phase {
        match self.0 >> 2 {
            0 => Phase::Pending,
            1 => Phase::Sent,
            _ => Phase::Done,
        }
    }

    /// Its four bits (an IPv6 session keeps them beside its flags).
    #[inline]
    pub(super) fn bits(self) -> u8 {
        self.0 & 0xf
    }

    /// The preamble of [`Preamble::bits`] `b`.
    #[inline]
    pub(super) fn from_bits(b: u8) -> Preamble {
        Preamble(b & 0xf)
    }

    /// The same header at `phase`.
    #[inline]
    pub fn at(self, phase: Phase) -> Preamble {
        let p = match phase {
            Phase::Pending => 0,
            Phase::Sent => 1,
            Phase::Done => 2,
        };
        Preamble((self.0 & 3) | p << 2)
    }
}

/// A session's forwarding mode and the data only that mode has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// NAT: the destination becomes the RS; replies come back through the director.
    Nat,
    /// FullNAT: the source becomes this local address and port as well.
    FullNat {
        /// The LIP.
        lip: Ipv4Addr,
        /// The local port (the echo identifier for ICMP).
        lport: u16,
    },
    /// DR: only the destination MAC changes.
    Dr,
    /// TUN: IPIP-encapsulated toward the RS.
    Tun,
}

impl Forward {
    /// The dest's forwarding mode.
    #[inline]
    pub fn mode(&self) -> ForwardMode {
        match self.via {
            Via::Nat => ForwardMode::Nat,
            Via::FullNat { .. } => ForwardMode::FullNat,
            Via::Dr => ForwardMode::Dr,
            Via::Tun => ForwardMode::Tun,
        }
    }

    /// FullNAT's (LIP, lport); `None` in the other modes.
    #[inline]
    pub fn local(&self) -> Option<(Ipv4Addr, u16)> {
        match self.via {
            Via::FullNat { lip, lport } => Some((lip, lport)),
            _ => None,
        }
    }
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
    /// Both halves are open; the per-session word holds their sequence [`Shift`](crate::synproxy::Shift).
    On,
}

/// An IPVS persistence template: which dest a client of a persistent service goes to.
/// Keyed (proto, CIP, 0, VIP, vport) in the worker's template table of its family; it lives
/// while its client has sessions, and the service's persistence timeout after the last one
/// ends. `A` is the dest's address: IPv4, or IPv6 for IPv6 services
/// ([`Template6`](super::Template6); a NAT64 dest's IPv4-mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template<A = Ipv4Addr> {
    /// The dest's address.
    pub rip: A,
    /// The dest's port.
    pub rport: u16,
    /// Live sessions that used it.
    pub live: u32,
    /// The persistence timeout in ms.
    pub timeout_ms: u32,
}

/// How a newly opened session's packets go.
#[derive(Clone, Copy, Debug)]
pub(super) enum Routing {
    /// DR or TUN: on the link or through the tunnel, the route looked up as they go.
    Direct,
    /// NAT or FullNAT: routed; the route toward the RS as looked up when the session opened
    /// (`None`: there is none).
    Routed(Option<Hop>),
}

/// How a packet met its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Met {
    /// Found in the table: the packet moves the session's state and deadline.
    Found,
    /// Opened by this packet and already in the state it moved to (`Table::open`); for NAT
    /// and FullNAT, the route toward the RS looked up then, and its TTL checked.
    Opened(Option<Hop>),
}

/// A TCP session no packet has moved yet.
const UNMOVED: SessionState = SessionState::Tcp(TcpState::None);

/// The template key of a session's client packets (`key` is client → VIP).
#[inline]
pub(super) fn template_key(key: &FlowKey) -> FlowKey {
    FlowKey::new(key.proto, key.src, 0, key.dst, key.dport)
}

impl<D: Device> Worker<D> {
    /// A packet for service `si` that no session knows: the SYN proxy's when the service has
    /// it; otherwise, if it can open a session (a plain SYN, a UDP datagram, an echo
    /// request), the session is opened and the packet forwarded on the route found for it.
    pub(super) fn new_session(
        &mut self,
        si: usize,
        key: FlowKey,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) -> Verdict<D::Buf> {
        if key.proto == Proto::Tcp && self.snap.services()[si].synproxy() {
            return self.synproxy_new(si, key, buf, l3, m);
        }
        if !opens_session(m) {
            return Err(DropReason::NoSession);
        }
        let first = match m.l4 {
            L4::Tcp { flags, .. } => tcp_event(flags),
            _ => None,
        };
        let (id, routing) = self.open_session(si, key, &buf, l3, m, (SynProxy::Off, first))?;
        // A NAT/FullNAT session's TTL was checked and its route looked up as it opened.
        let opened = match routing {
            Routing::Direct => None,
            Routing::Routed(hop) => Some(hop.ok_or(DropReason::NoRoute)?),
        };
        self.forward(id, Dir::Original, buf, l3, m, Met::Opened(opened))
    }

    /// Opens a session of service `si` for the client packet `m` (in `buf` at `l3`, quoted if
    /// its TTL runs out): schedules a dest (or follows the client's persistence template),
    /// and for NAT and FullNAT checks the TTL and looks the route to the RS up (FullNAT takes
    /// a LIP port whose reply comes back to this worker's queue), then inserts both keys,
    /// the session already moved by the packet's TCP event `first` (`None`: left in NONE).
    /// Returns the session and how it goes: for NAT and FullNAT, its route toward the RS.
    ///
    /// # Errors
    /// The drop reason when no session could be opened; nothing is left taken then.
    pub(super) fn open_session(
        &mut self,
        si: usize,
        key: FlowKey,
        buf: &D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        (synproxy, first): (SynProxy, Option<TcpEvent>),
    ) -> Result<(conntrack::SessionId, Routing), DropReason> {
        // A full table (a SYN flood waiting out SYN_RECV) refuses before the scheduler moves
        // or a LIP port is taken: a flood packet costs as little as it can.
        if self.table.len() >= self.table.capacity() {
            return Err(DropReason::TableFull);
        }
        let svc = &self.snap.services()[si];
        let persist_ms = svc.persistence().map_or(0, |s| s.saturating_mul(1000));
        let preamble = Preamble::new(if svc.toa() {
            Some(Carrier::Toa)
        } else {
            svc.proxy_protocol().map(Carrier::Proxy)
        });
        let (di, template) = self.pick_dest(si, &key, m, persist_ms)?;
        let dest = self.snap.services()[si].dests()[di];
        // An IPv4 service's dests are IPv4 (the snapshot checked it).
        let IpAddr::V4(rip) = dest.addr else {
            return Err(DropReason::NoDest);
        };
        let slot = self.snap.dest_slot(si, di);
        let routing = if routed(dest.mode) {
            if m.ttl <= 1 {
                self.icmp_error_back(buf, l3, m, icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED, 0);
                return Err(DropReason::TtlExceeded);
            }
            Routing::Routed(self.snap.route(rip))
        } else {
            Routing::Direct
        };
        let rport = if key.proto == Proto::Icmp {
            0
        } else {
            dest.port
        };
        let via = match dest.mode {
            ForwardMode::Nat => Via::Nat,
            ForwardMode::Dr => Via::Dr,
            ForwardMode::Tun => Via::Tun,
            ForwardMode::FullNat => {
                let hop = match routing {
                    Routing::Routed(hop) => hop,
                    Routing::Direct => None,
                };
                let (lip, lport) = self.take_lip(hop, rip, rport)?;
                Via::FullNat { lip, lport }
            }
        };
        let fwd = Forward {
            via,
            rip,
            rport,
            slot,
            persist_ms,
            synproxy,
            peer: false,
            sync_noted: false,
            preamble,
            // The SYN's sequence number + 1 (only a service with a header needs it).
            first_seq: if preamble.is_on() {
                tcp_seq(buf, l3, m).map_or(0, |isn| isn.wrapping_add(1))
            } else {
                0
            },
        };
        let reply = match dest.mode {
            ForwardMode::Nat | ForwardMode::FullNat => Some(rewritten_key(&key, &fwd).mirror()),
            ForwardMode::Dr | ForwardMode::Tun => None,
        };
        let id = match self.table.open(key, reply, fwd, self.now, first) {
            Ok(id) => id,
            Err(e) => {
                // The pair never reached the wire: no quarantine.
                release_lip(&mut self.lips, &fwd, self.now, false);
                return Err(insert_refused(e));
            }
        };
        self.counters.count(Counter::SessionsCreated);
        let state = self.table.get(id).map_or(UNMOVED, |s| s.state);
        if state != UNMOVED {
            // Noted for sync as a move out of NONE is (a proxied session's opening is not).
            self.sync_changed(id);
        }
        if persist_ms > 0 {
            self.hold_template(&key, template, rip, dest.port, persist_ms);
        }
        // A SYN's session is inactive (SYN_RECV); UDP and ICMP ones are active.
        self.stats.session_opened(slot, is_active(state));
        Ok((id, routing))
    }

    /// The dest of service `si` a new session of the client of `key` goes to: the one its
    /// persistence template names while that dest is still in the service (even at weight 0,
    /// as IPVS does by default), else the scheduler's pick. Returns the dest's index and the
    /// template that chose it.
    ///
    /// # Errors
    /// [`DropReason::NoDest`] when no dest can take the session.
    fn pick_dest(
        &mut self,
        si: usize,
        key: &FlowKey,
        m: &Ipv4Meta,
        persist_ms: u32,
    ) -> Result<(usize, Option<conntrack::SessionId>), DropReason> {
        // Disjoint fields: the snapshot is read while this worker's scheduler moves its cursor.
        if persist_ms > 0 {
            let dests = self.snap.services()[si].dests();
            let tkey = template_key(key);
            let same = |addr, rip| addr == IpAddr::V4(rip);
            let found = template_dest(&mut self.templates, &tkey, dests, same);
            if let Some((di, tid)) = found {
                return Ok((di, Some(tid)));
            }
        }
        let hint = FlowHint {
            src: m.src,
            sport: key.sport,
        };
        self.schedule(si, &hint).map(|di| (di, None))
    }

    /// The scheduler's pick among service `si`'s dests for `hint` (least-connection
    /// schedulers weigh this worker's own sessions per dest).
    ///
    /// # Errors
    /// [`DropReason::NoDest`] when no dest can take the session.
    pub(super) fn schedule(&mut self, si: usize, hint: &FlowHint) -> Result<usize, DropReason> {
        // Disjoint fields: the snapshot is read while this worker's scheduler moves its cursor.
        let svc = &self.snap.services()[si];
        let loads = &mut self.load_scratch;
        let sched = self.scheds.get_mut(si);
        fill_loads(
            loads,
            &self.stats,
            &self.snap,
            si,
            sched.as_ref().map(|s| s.kind()),
        );
        sched
            .and_then(|s| s.pick(svc.dests(), hint, loads))
            .ok_or(DropReason::NoDest)
    }

    /// A FullNAT (LIP, lport) from this worker's pool for a session to `rip:rport` over
    /// `hop`: when the RS-facing port does RSS, one whose reply comes back to this worker's
    /// queue.
    ///
    /// # Errors
    /// [`DropReason::LipExhausted`] when none is free (or none qualifies within the tries).
    pub(super) fn take_lip(
        &mut self,
        hop: Option<Hop>,
        rip: Ipv4Addr,
        rport: u16,
    ) -> Result<(Ipv4Addr, u16), DropReason> {
        let steer = hop
            .map(|h| self.snap.iface(h.iface).port as usize)
            .and_then(|p| self.cfg.steering.get(p))
            .and_then(Option::as_ref);
        let tries = STEER_TRIES_PER_QUEUE * self.cfg.workers.max(1) as usize;
        let to = Toward {
            rip,
            rport,
            now: self.now,
        };
        let got = match (self.lips.as_mut(), steer) {
            (Some(pool), Some(s)) => pool.alloc_where(to, s.selector(rip, rport), tries),
            (Some(pool), None) => pool.alloc(to),
            (None, _) => None,
        };
        got.ok_or(DropReason::LipExhausted)
    }

    /// A new session of a persistent service holds its client's template: the one that
    /// chose its dest, or a new one for that dest. A full template table only costs the
    /// persistence of this client.
    fn hold_template(
        &mut self,
        key: &FlowKey,
        template: Option<conntrack::SessionId>,
        rip: Ipv4Addr,
        rport: u16,
        persist_ms: u32,
    ) {
        let (tkey, now) = (template_key(key), self.now);
        let made = hold_template(
            &mut self.templates,
            tkey,
            template,
            (rip, rport),
            (persist_ms, now),
        );
        if let Some(tid) = made {
            self.sync_template_made(tid);
        }
    }
}

/// Why a session could not be inserted, as a drop reason.
pub(super) fn insert_refused(e: conntrack::InsertError) -> DropReason {
    match e {
        conntrack::InsertError::Full => DropReason::TableFull,
        conntrack::InsertError::KeyExists => DropReason::SessionConflict,
    }
}

/// The per-dest loads of service `si` (this worker's sessions) into `loads`, for the
/// least-connection schedulers (`kind`); left empty for the others, which need none (the
/// check inlined into the new-session path, the loop not).
#[inline(always)]
pub(super) fn fill_loads(
    loads: &mut Vec<DestLoad>,
    stats: &WorkerStats,
    snap: &Snapshot,
    si: usize,
    kind: Option<SchedKind>,
) {
    loads.clear();
    if matches!(kind, Some(SchedKind::Lc | SchedKind::Wlc)) {
        fill_dest_loads(loads, stats, snap, si);
    }
}

#[inline(never)]
fn fill_dest_loads(loads: &mut Vec<DestLoad>, stats: &WorkerStats, snap: &Snapshot, si: usize) {
    for di in 0..snap.services()[si].dests().len() {
        let c = stats.dest(snap.dest_slot(si, di)).sample();
        loads.push(DestLoad {
            active: c.active.min(u32::MAX as u64) as u32,
            inactive: c.inactive.min(u32::MAX as u64) as u32,
        });
    }
}

/// Everything a session's end (at `ended_at`) gives back: its LIP port, its counts, its
/// template's hold.
pub(super) fn session_ended(
    lips: &mut Option<LipPool>,
    stats: &WorkerStats,
    templates: &mut Table<Template>,
    ended_at: u64,
    s: &conntrack::Session<Forward>,
) {
    stats.session_closed(s.data.slot, is_active(s.state));
    release_lip(lips, &s.data, ended_at, s.original.proto == Proto::Tcp);
    if s.data.persist_ms > 0 {
        let tkey = template_key(&s.original);
        release_template(templates, &tkey, ended_at, Some(s.data.persist_ms));
    }
}

/// The dest among `dests` the template of `tkey` in `templates` names, with the template,
/// while that dest is still in the service (even at weight 0, as IPVS does by default); a
/// template whose dest left is removed. `rip` tells a dest's address from the template's.
pub(super) fn template_dest<A: Copy, K: conntrack::Key>(
    templates: &mut Table<Template<A>, K>,
    tkey: &K,
    dests: &[sched::Dest],
    rip: impl Fn(IpAddr, A) -> bool,
) -> Option<(usize, conntrack::SessionId)> {
    let (tid, _) = templates.lookup(tkey)?;
    let t = templates.get(tid).map(|t| t.data);
    let di = t.and_then(|t| {
        dests
            .iter()
            .position(|d| rip(d.addr, t.rip) && d.port == t.rport)
    });
    if di.is_none() {
        templates.remove(tid);
    }
    di.map(|di| (di, tid))
}

/// A new session (at `now`) of a service persistent for `persist_ms` holds its client's
/// template `tkey`: `template`, the one that chose its dest, or a new one for
/// `(rip, rport)`, which is returned. A full template table only costs this client its
/// persistence.
pub(super) fn hold_template<A: Copy, K: conntrack::Key>(
    templates: &mut Table<Template<A>, K>,
    tkey: K,
    template: Option<conntrack::SessionId>,
    (rip, rport): (A, u16),
    (persist_ms, now): (u32, u64),
) -> Option<conntrack::SessionId> {
    let (tid, made) = match template {
        Some(tid) => {
            if let Some(t) = templates.data_mut(tid) {
                t.live += 1;
            }
            (tid, None)
        }
        None => {
            let t = Template {
                rip,
                rport,
                live: 1,
                timeout_ms: persist_ms,
            };
            let tid = templates.insert(tkey, None, t, now).ok()?;
            (tid, Some(tid))
        }
    };
    templates.refresh_for(tid, now, u64::from(persist_ms));
    made
}

/// A session of template `tkey`'s client ended at `ended_at`: the template holds for one
/// session fewer, and lives on for `timeout_ms` (the session's; `None`: the template's own)
/// — the client's next connection within it still goes to the same dest.
pub(super) fn release_template<A: Copy, K: conntrack::Key>(
    templates: &mut Table<Template<A>, K>,
    tkey: &K,
    ended_at: u64,
    timeout_ms: Option<u32>,
) {
    let Some((tid, _)) = templates.lookup(tkey) else {
        return;
    };
    let timeout = templates.data_mut(tid).map(|t| {
        t.live = t.live.saturating_sub(1);
        timeout_ms.unwrap_or(t.timeout_ms)
    });
    if let Some(ms) = timeout {
        templates.refresh_for(tid, ended_at, u64::from(ms));
    }
}

/// Gives a FullNAT session's (LIP, lport), freed at `now`, back to its dest's pool; with
/// `quarantine` (a TCP session's: the server may hold the 4-tuple in TIME_WAIT; UDP and ICMP
/// have nothing of the kind) it waits out the quarantine there.
fn release_lip(lips: &mut Option<LipPool>, f: &Forward, now: u64, quarantine: bool) {
    if let (Via::FullNat { lip, lport }, Some(p)) = (f.via, lips.as_mut()) {
        give_back_lip(p, (lip, lport), (f.rip, f.rport), now, quarantine);
    }
}

/// Gives `lip`:`lport`, handed out toward `rip`:`rport` and freed at `now`, back to `pool`,
/// into quarantine with `quarantine` (IPv4 FullNAT's and NAT64's sessions alike).
pub(super) fn give_back_lip(
    pool: &mut LipPool,
    (lip, lport): (Ipv4Addr, u16),
    (rip, rport): (Ipv4Addr, u16),
    now: u64,
    quarantine: bool,
) {
    let to = Toward { rip, rport, now };
    if quarantine {
        pool.free(lip, lport, to);
    } else {
        pool.free_now(lip, lport, to);
    }
}

/// The session event of TCP `flags`.
#[inline]
pub(super) fn tcp_event(flags: u8) -> Option<TcpEvent> {
    TcpEvent::from_flags(
        flags & tcp_flags::SYN != 0,
        flags & tcp_flags::FIN != 0,
        flags & tcp_flags::ACK != 0,
        flags & tcp_flags::RST != 0,
    )
}

/// IPVS's ActiveConn: established TCP sessions, and UDP/ICMP ones (which never go inactive).
#[inline]
pub(super) fn is_active(state: SessionState) -> bool {
    match state {
        SessionState::Tcp(t) => t == TcpState::Established,
        SessionState::Udp | SessionState::Icmp => true,
    }
}

/// The key of the client's packet after the forward rewrite (what the RS sees).
#[inline]
pub(super) fn rewritten_key(k: &FlowKey, f: &Forward) -> FlowKey {
    match f.via {
        Via::FullNat { lip, lport } => FlowKey::new(k.proto, lip, lport, f.rip, f.rport),
        _ => FlowKey::new(k.proto, k.src, k.sport, f.rip, f.rport),
    }
}

/// The sequence number of the TCP segment `m` at `l3` in `buf` (None for other protocols).
#[inline]
pub(super) fn tcp_seq<B: PacketBuf>(buf: &B, l3: usize, m: &Ipv4Meta) -> Option<u32> {
    match m.l4 {
        L4::Tcp { .. } => buf
            .data()
            .get(l3 + m.header_len..l3 + m.header_len + 8)
            .map(|t| be32(t, crate::wire::tcp::field::SEQ)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PROXY protocol state took what a session had spare: a session is as big as
    /// before (the per-session memory bar depends on it).
    #[test]
    fn a_session_does_not_grow() {
        assert_eq!(core::mem::size_of::<Forward>(), 32);
        assert_eq!(core::mem::size_of::<conntrack::Session<Forward>>(), 88);
        assert_eq!(core::mem::size_of::<Preamble>(), 1);
    }

    #[test]
    fn a_preamble_keeps_its_carrier_through_its_phases() {
        assert_eq!(Preamble::NONE.carrier(), None);
        assert!(!Preamble::NONE.is_on());
        assert_eq!(Preamble::new(None), Preamble::NONE);
        for c in [
            Carrier::Proxy(ProxyProtocol::V1),
            Carrier::Proxy(ProxyProtocol::V2),
            Carrier::Toa,
        ] {
            let p = Preamble::new(Some(c));
            assert_eq!((p.carrier(), p.phase()), (Some(c), Phase::Pending));
            assert!(p.is_on());
            assert_eq!(p.version().is_some(), c != Carrier::Toa);
            for ph in [Phase::Sent, Phase::Done, Phase::Pending] {
                let q = p.at(ph);
                assert_eq!((q.carrier(), q.phase()), (Some(c), ph));
            }
        }
    }
}
