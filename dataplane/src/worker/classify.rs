//! Steps 2–5 of a packet's walk: the RX burst looked up in prefetching stages, the frame parsed
//! and filtered, then classified — a session's packet, a new session for a service, an ICMP
//! error about a session, the director's own traffic, or a drop — and handed to the worker
//! that owns its session when that is another one.

use super::nat64::mapped_key;
use super::session::{session_ended, Met};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::{Burst, Device, BURST};
use crate::drop::DropReason;
use crate::icmp;
use crate::lip::LipPool;
use crate::parse::{self, Ipv4Meta, Ipv6Meta, Parsed, L3, L4};
use crate::redirect::{self, HandoffKind};
use crate::snapshot::{Homing, Local};
use crate::wire::tcp::flags as tcp_flags;
use crate::wire::{ArpPacket, ArpRepr, ETHERNET_HEADER_LEN};
use arrayvec::ArrayVec;
use conntrack::{Candidate, Dir, FlowKey, FlowKey6, KeyHash, Proto, SessionState, TcpState};
use core::net::Ipv4Addr;

/// What the first stages of a burst learnt about a frame: its parse (the common frame, by
/// the parser's fast path for its family), its session key's hash and the likely entry for
/// it, both of its family's table (the IPv6 table's for an IPv6 frame).
#[derive(Clone, Copy)]
pub(super) struct Staged {
    pub(super) parsed: Parsed,
    pub(super) hash: KeyHash,
    pub(super) cand: Candidate,
}

/// Where a flow's packet goes ([`Worker::step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// On through its session, in this direction.
    Session(conntrack::SessionId, Dir),
    /// To the worker that owns (or must open) its session.
    Owner(u16),
    /// Into a new session of this service.
    Open(usize),
    /// No session, no owner elsewhere, no service to open one.
    Unknown,
}

/// A session lookup begun ahead: the key's hash and the table's likely entry.
#[derive(Clone, Copy)]
pub(super) struct Hint {
    hash: KeyHash,
    cand: Candidate,
}

impl<D: Device> Worker<D> {
    /// A data port's RX burst, in stages so that the cache misses of its lookups overlap (the
    /// session index is sized for the table's capacity, so even a few sessions are spread
    /// over more memory than the caches hold): (1) every common frame (untagged IPv4 TCP or
    /// UDP without options; else untagged IPv6 with TCP or UDP right after the fixed header)
    /// is parsed by the parser's fast path, its flow key hashed and the session index line of
    /// that hash prefetched; (2) the candidate session each index line names is prefetched;
    /// (3) each staged packet is offered to the established fast path ([`Worker::fast`],
    /// [`Worker::fast6`]), and each one it gives back, like each unstaged one, is handled by
    /// [`Worker::process`], with its parse and its lookup begun. With `prefetch` off only
    /// [`Worker::process`] runs.
    pub(super) fn process_burst(&mut self, port: u16, rx: &mut Burst<D::Buf>) {
        let mut staged: ArrayVec<Option<Staged>, BURST> = ArrayVec::new();
        if self.cfg.prefetch {
            for buf in rx.iter() {
                if !buf.is_contiguous() {
                    staged.push(None);
                    continue;
                }
                let s = match parse::parse_fast(buf.data()) {
                    Some(parsed) => {
                        let L3::Ipv4(m) = &parsed.l3 else {
                            staged.push(None);
                            continue;
                        };
                        flow_key(m).map(|key| {
                            let hash = self.table.hash(&key);
                            dpdk::prefetch(self.table.index_line(hash));
                            Staged {
                                parsed,
                                hash,
                                cand: Candidate::NONE,
                            }
                        })
                    }
                    None => self.stage6(buf.data()),
                };
                staged.push(s);
            }
            for s in staged.iter_mut().flatten() {
                if let L3::Ipv6(_) = s.parsed.l3 {
                    s.cand = self.table6.candidate(s.hash);
                    if let Some(slot) = self.table6.candidate_slot(s.cand) {
                        dpdk::prefetch_all(slot);
                    }
                    continue;
                }
                s.cand = self.table.candidate(s.hash);
                if let Some(slot) = self.table.candidate_slot(s.cand) {
                    dpdk::prefetch_all(slot);
                }
            }
        }
        self.counters.add(Counter::RxPackets, rx.len() as u64);
        // The fast path's checks of the port, once per burst: its MAC is a unicast one, and
        // it has an untagged interface (the stager parses untagged frames only).
        let port_mac = self.tx.ports[port as usize].mac().0;
        let fast = port_mac[0] & 1 == 0 && self.snap.iface_index(port, None).is_some();
        let mut bytes = 0;
        // Drained in place: `for buf in rx` would move the whole burst array (a memcpy of its
        // full capacity on every poll, empty or not). Each frame's stages are read where they
        // lie, not moved.
        for (i, buf) in rx.drain(..).enumerate() {
            bytes += buf.len() as u64;
            let s = staged.get(i).and_then(Option::as_ref);
            let taken = match s {
                Some(s) if fast => match s.parsed.l3 {
                    L3::Ipv6(_) => self.fast6(port_mac, buf, s),
                    _ => self.fast(port_mac, buf, s),
                },
                _ => Err(buf),
            };
            let Err(buf) = taken else {
                continue;
            };
            let verdict = self.process(port, buf, s, false);
            self.settle(verdict);
        }
        self.counters.add(Counter::RxBytes, bytes);
    }

    /// Stage 1 for a frame that is not common IPv4: a common IPv6 one (untagged, TCP or UDP
    /// right after the fixed header) parsed by the parser's IPv6 fast path, its flow key
    /// hashed for the IPv6 table and that index line prefetched. Out of line, so that IPv4's
    /// stage keeps its registers.
    #[inline(never)]
    fn stage6(&self, data: &[u8]) -> Option<Staged> {
        let parsed = parse::parse_fast6(data)?;
        let L3::Ipv6(m) = &parsed.l3 else {
            return None;
        };
        let hash = self.table6.hash(&flow_key6(data, m)?);
        dpdk::prefetch(self.table6.index_line(hash));
        Some(Staged {
            parsed,
            hash,
            cand: Candidate::NONE,
        })
    }

    /// Decides what becomes of one received frame (`redirected`: handed over by a peer);
    /// `staged` is what [`Worker::process_burst`] learnt of it ahead.
    pub(super) fn process(
        &mut self,
        port: u16,
        mut buf: D::Buf,
        staged: Option<&Staged>,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        if !buf.is_contiguous() {
            return Err(DropReason::MultiSegment);
        }
        let parsed;
        let (p, hint) = match staged {
            Some(s) => (
                &s.parsed,
                Some(Hint {
                    hash: s.hash,
                    cand: s.cand,
                }),
            ),
            None => {
                parsed = parse::parse(buf.data())?;
                (&parsed, None)
            }
        };
        let port_mac = self.tx.ports[port as usize].mac().0;
        let group = p.dst_mac[0] & 1 == 1;
        if p.dst_mac != port_mac && !group {
            return Err(DropReason::OtherHost);
        }
        let Some(iface) = self.snap.iface_index(port, p.vlan) else {
            return Err(DropReason::UnknownVlan);
        };
        match &p.l3 {
            L3::Arp => {
                let repr = ArpPacket::new_checked(&buf.data()[p.l3_off..])
                    .and_then(|a| ArpRepr::parse(&a));
                let Ok(repr) = repr else {
                    return Err(DropReason::MalformedArp);
                };
                // Only well-formed ARP is shared with the peers and the kernel.
                if !redirected {
                    self.share_arp(port, &buf);
                }
                self.arp(iface, buf, p.src_mac, repr, redirected)
            }
            L3::Ipv6(m) => self.ipv6(port, iface, buf, p, m, group, redirected),
            L3::Ipv4(m) => {
                buf.truncate(p.l3_off + m.total_len);
                if group {
                    // VRRP adverts (and the rest of the link-local groups) are the kernel's.
                    if !link_local_multicast(p.dst_mac, m.dst) {
                        return Err(DropReason::OtherHost);
                    }
                    self.counters.count(Counter::MulticastToKernel);
                    return self.exception(port, buf);
                }
                self.ipv4(port, buf, p.l3_off, m, hint, redirected)
            }
        }
    }

    /// Classifies an IPv4 packet (its header at `l3`): a session's packet, a new session for
    /// a service, an ICMP error about a session, the director's own traffic, or a drop; a
    /// packet whose session another worker owns is handed to it. Fragments go to
    /// [`Worker::fragment`].
    pub(super) fn ipv4(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        hint: Option<Hint>,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        if martian(m.src, m.dst) {
            return Err(DropReason::MartianAddress);
        }
        if m.is_fragment() {
            return self.fragment(port, buf, l3, m, redirected);
        }
        if let Some(key) = flow_key(m) {
            if let L4::Tcp { flags, .. } = m.l4 {
                if !tcp_flags::valid(flags) {
                    return Err(DropReason::BadTcpFlags);
                }
            }
            match self.step(m, &key, hint, redirected, true)? {
                Step::Unknown => {}
                step => return self.take(step, port, buf, l3, m, key),
            }
            // A NAT64 session's reply: to an IPv4 LIP, its session in the IPv6 table.
            if self.snap.has_nat64() {
                if let Some((id, Dir::Reply)) = self.table6.lookup(&mapped_key(&key)) {
                    return self.nat64_back(id, buf, l3, m);
                }
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
                            return Ok(Emit::Handoff { owner, port, buf });
                        }
                    }
                    if self.snap.has_nat64() {
                        if let Some((id, Dir::Reply)) = self.table6.lookup(&mapped_key(&key)) {
                            return self.nat64_error_to_client(id, buf, l3, m, &q);
                        }
                    }
                }
            }
        }
        let local = self.local_target(m.dst, DropReason::NotForUs)?;
        if let L4::Icmp { ty, .. } = m.l4 {
            if ty == icmp::ECHO_REQUEST {
                return self.echo_reply(buf, l3, m);
            }
        }
        // A VIP's port that no service has (a DIP's ports are the kernel's, a LIP is no
        // service's address): refused as the kernel refuses a port with no socket.
        if local.vip && local.dip.is_none() && !local.lip {
            if let L4::Tcp { .. } | L4::Udp { .. } = m.l4 {
                return Err(self.refuse(&buf, l3, m));
            }
        }
        // The director's own traffic that rvs does not handle (a LIP is rvs's alone).
        if local.dip.is_some() || local.vip {
            return self.exception(port, buf);
        }
        Err(DropReason::NotForUs)
    }

    /// Where the packet of flow `key` (a TCP, UDP or ICMP echo packet, or a first fragment)
    /// goes: its session, the worker owning the session, or — when `open` and the flow is a
    /// service's — a new session; `Unknown` when none of that applies. Decided apart from the
    /// packet's buffer, which [`Worker::take`] then moves once.
    #[inline(always)]
    pub(super) fn step(
        &mut self,
        m: &Ipv4Meta,
        key: &FlowKey,
        hint: Option<Hint>,
        redirected: bool,
        open: bool,
    ) -> Result<Step, DropReason> {
        // A staged frame's hint is for this very key: it came from the same parse.
        let (hash, cand) = match hint {
            Some(h) => (h.hash, h.cand),
            None => (self.table.hash(key), Candidate::NONE),
        };
        if let Some((id, dir)) = self.table.lookup_hinted(key, hash, cand) {
            let reopen = dir == Dir::Original
                && opens_session(m)
                && key.proto == Proto::Tcp
                && matches!(
                    self.table.get(id).map(|s| s.state),
                    Some(SessionState::Tcp(TcpState::TimeWait | TcpState::Close))
                );
            if !reopen {
                return Ok(Step::Session(id, dir));
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
            if let Some(owner) = self.owner_elsewhere(key, self.snap.local(m.dst)) {
                return Ok(Step::Owner(owner));
            }
        }
        if open {
            if let Some(si) = self.snap.service_index(key.proto, m.dst, key.dport) {
                // Ownership comes with the service lookup: no lookup of its own.
                if self.snap.service_standby(si) {
                    return Err(DropReason::StandbyAddress);
                }
                return Ok(Step::Open(si));
            }
        }
        Ok(Step::Unknown)
    }

    /// Carries out a [`Worker::step`] other than `Unknown` for the packet in `buf`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn take(
        &mut self,
        step: Step,
        port: u16,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        key: FlowKey,
    ) -> Verdict<D::Buf> {
        match step {
            Step::Session(id, dir) => self.forward(id, dir, buf, l3, m, Met::Found),
            Step::Owner(owner) => Ok(Emit::Handoff { owner, port, buf }),
            Step::Open(si) => self.new_session(si, key, buf, l3, m),
            Step::Unknown => Err(DropReason::NotForUs),
        }
    }

    /// The director's own address `dst` that a packet no session or service took is for:
    /// `Err(otherwise)` when it is none of them, the standby or peer reason when the director
    /// does not serve it now.
    pub(super) fn local_target(
        &self,
        dst: Ipv4Addr,
        otherwise: DropReason,
    ) -> Result<Local, DropReason> {
        let Some(local) = self.snap.local(dst) else {
            return Err(otherwise);
        };
        if local.standby {
            return Err(DropReason::StandbyAddress);
        }
        if local.peer {
            return Err(DropReason::PeerLip);
        }
        Ok(local)
    }

    /// The worker that owns (or must create) the session of a packet this worker's table does
    /// not know, when it is another one: FullNAT replies by their LIP port's slice; packets of
    /// services with NAT dests, and NAT replies, by the client endpoint's home worker;
    /// persistent services by the client address's home worker.
    pub(super) fn owner_elsewhere(&self, key: &FlowKey, local: Option<Local>) -> Option<u16> {
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

    /// Processes up to a burst of packets from each peer's ring to this worker.
    pub(super) fn drain_redirects(&mut self) -> usize {
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
                if h.kind == HandoffKind::Owned {
                    self.counters.count(Counter::RedirectedIn);
                }
                let verdict = self.process(h.port, h.buf, None, true);
                self.settle(verdict);
            }
        }
        self.redirect = Some(rings);
        n
    }
}

/// True if `src` may not appear as a packet's source or `dst` as its destination on the
/// wire (RFC 1122 3.2.1.3, RFC 5735): "this network" 0/8 and loopback 127/8 either way;
/// multicast and reserved 224/3 (the limited broadcast included) as a source; reserved 240/4
/// as a destination (multicast destinations arrive on group MACs: link-local groups go to the
/// kernel before this, others are dropped).
#[inline]
pub(super) fn martian(src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let (s, d) = (src.octets()[0], dst.octets()[0]);
    s == 0 || s == 127 || s >= 224 || d == 0 || d == 127 || d >= 240
}

/// True for an IPv4 packet to a link-local multicast group (224.0.0.0/24: VRRP's 224.0.0.18,
/// all-hosts, routing protocols) on its group MAC (RFC 1112: 01:00:5e and the group's low 23
/// bits), which the director hands to the kernel.
#[inline]
pub(super) fn link_local_multicast(dst_mac: [u8; 6], dst: Ipv4Addr) -> bool {
    let o = dst.octets();
    o[..3] == [224, 0, 0] && dst_mac == [0x01, 0x00, 0x5e, 0x00, 0x00, o[3]]
}

/// The flow key of a packet, if it is one rvs tracks (TCP, UDP, ICMP echo; a first fragment
/// of one too).
#[inline]
pub(super) fn flow_key(m: &Ipv4Meta) -> Option<FlowKey> {
    let (proto, sport, dport) = match m.l4 {
        L4::Tcp { sport, dport, .. } => (Proto::Tcp, sport, dport),
        L4::Udp { sport, dport } => (Proto::Udp, sport, dport),
        L4::Icmp { ty, ident, .. } if ty == icmp::ECHO_REQUEST => (Proto::Icmp, ident, 0),
        L4::Icmp { ty, ident, .. } if ty == icmp::ECHO_REPLY => (Proto::Icmp, 0, ident),
        _ => return None,
    };
    Some(FlowKey::new(proto, m.src, sport, m.dst, dport))
}

/// The flow key of a staged IPv6 frame `data` (its TCP or UDP right after the fixed
/// header, `m` its parse), for the IPv6 table.
#[inline]
pub(super) fn flow_key6(data: &[u8], m: &Ipv6Meta) -> Option<FlowKey6> {
    let (proto, sport, dport) = match m.l4 {
        L4::Tcp { sport, dport, .. } => (Proto::Tcp, sport, dport),
        L4::Udp { sport, dport } => (Proto::Udp, sport, dport),
        _ => return None,
    };
    let (src, dst) = parse::ipv6_addrs(data.get(ETHERNET_HEADER_LEN..)?);
    Some(FlowKey6::new(proto, src, sport, dst, dport))
}

/// Can this packet open a session? TCP: a plain SYN (no ACK, RST or FIN); UDP: any datagram;
/// ICMP: an echo request.
#[inline]
pub(super) fn opens_session(m: &Ipv4Meta) -> bool {
    match m.l4 {
        L4::Tcp { flags, .. } => flags & tcp_flags::HANDSHAKE == tcp_flags::SYN,
        L4::Udp { .. } => true,
        L4::Icmp { ty, .. } => ty == icmp::ECHO_REQUEST,
        L4::None => false,
    }
}
