//! Steps 2–5 of a packet's walk: the RX burst looked up in prefetching stages, the frame parsed
//! and filtered, then classified — a session's packet, a new session for a service, an ICMP
//! error about a session, the director's own traffic, or a drop — and handed to the worker
//! that owns its session when that is another one.

use super::session::session_ended;
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::{Burst, Device, BURST};
use crate::drop::DropReason;
use crate::icmp;
use crate::lip::LipPool;
use crate::parse::{self, Ipv4Meta, L3, L4};
use crate::redirect::{self, HandoffKind};
use crate::snapshot::{Homing, Local};
use crate::wire::tcp::flags as tcp_flags;
use crate::wire::{ArpPacket, ArpRepr};
use arrayvec::ArrayVec;
use conntrack::{Candidate, Dir, FlowKey, KeyHash, Proto, SessionState, TcpState};
use core::net::Ipv4Addr;

/// A frame's flow key as read ahead, its hash in the session table and the table's hint.
#[derive(Clone, Copy)]
pub(super) struct Flow {
    pub(super) key: FlowKey,
    pub(super) hash: KeyHash,
    pub(super) cand: Candidate,
}

impl<D: Device> Worker<D> {
    /// A data port's RX burst, in stages so that the cache misses of its lookups overlap (the
    /// session index is sized for the table's capacity, so even a few sessions are spread
    /// over more memory than the caches hold): (1) the flow key of every plain IPv4 TCP/UDP
    /// frame is read from fixed offsets and hashed, and the session index line of that hash
    /// prefetched; (2) the candidate session each index line names is prefetched; (3) each
    /// packet is handled as [`Worker::process`] would, its lookup starting from the hint when
    /// its parsed key is the one stage 1 read. With `prefetch` off only stage 3 runs.
    pub(super) fn process_burst(&mut self, port: u16, rx: &mut Burst<D::Buf>) {
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
            let verdict = self.process(port, buf, hint, false);
            self.settle(verdict);
        }
    }

    /// Decides what becomes of one received frame (`redirected`: handed over by a peer);
    /// `hint` is what [`Worker::process_burst`] read ahead.
    pub(super) fn process(
        &mut self,
        port: u16,
        mut buf: D::Buf,
        hint: Option<Flow>,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        if !buf.is_contiguous() {
            return Err(DropReason::MultiSegment);
        }
        let p = parse::parse(buf.data())?;
        let port_mac = self.tx.ports[port as usize].mac().0;
        let group = p.dst_mac[0] & 1 == 1;
        if p.dst_mac != port_mac && !group {
            return Err(DropReason::OtherHost);
        }
        let Some(iface) = self.snap.iface_index(port, p.vlan) else {
            return Err(DropReason::UnknownVlan);
        };
        match p.l3 {
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
            L3::Ipv6 => Err(DropReason::Ipv6NotSupported),
            L3::Ipv4(m) => {
                if group {
                    return Err(DropReason::OtherHost);
                }
                buf.truncate(p.l3_off + m.total_len);
                self.ipv4(port, buf, p.l3_off, &m, hint, redirected)
            }
        }
    }

    /// Classifies an IPv4 packet (its header at `l3`): a session's packet, a new session for
    /// a service, an ICMP error about a session, the director's own traffic, or a drop; a
    /// packet whose session another worker owns is handed to it.
    pub(super) fn ipv4(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        hint: Option<Flow>,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        if martian(m.src, m.dst) {
            return Err(DropReason::MartianAddress);
        }
        if let Some(key) = flow_key(m) {
            if let L4::Tcp { flags, .. } = m.l4 {
                if !tcp_flags::valid(flags) {
                    return Err(DropReason::BadTcpFlags);
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
                    return Ok(Emit::Handoff { owner, port, buf });
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
                            return Ok(Emit::Handoff { owner, port, buf });
                        }
                    }
                }
            }
        }
        let Some(local) = self.snap.local(m.dst) else {
            return Err(if m.fragment {
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
                None => Err(DropReason::Fragment),
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
        Err(DropReason::NotForUs)
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
/// as a destination (multicast destinations arrive on group MACs, dropped before this).
#[inline]
pub(super) fn martian(src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let (s, d) = (src.octets()[0], dst.octets()[0]);
    s == 0 || s == 127 || s >= 224 || d == 0 || d == 127 || d >= 240
}

/// The flow key of a packet, if it is one rvs tracks (TCP, UDP, ICMP echo; not fragments).
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

/// The flow key of a plain IPv4 TCP/UDP frame (untagged, no IP options), read from fixed
/// offsets without validating anything: only a hint for prefetching, which the parsed key
/// must equal to be used.
#[inline]
pub(super) fn quick_key(frame: &[u8]) -> Option<FlowKey> {
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
pub(super) fn opens_session(m: &Ipv4Meta) -> bool {
    match m.l4 {
        L4::Tcp { flags, .. } => flags & tcp_flags::HANDSHAKE == tcp_flags::SYN,
        L4::Udp { .. } => true,
        L4::Icmp { ty, .. } => ty == icmp::ECHO_REQUEST,
        L4::None => false,
    }
}
