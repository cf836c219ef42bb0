//! IPv6 services: a TCP or UDP packet for an IPv6 VIP finds its session in the worker's
//! IPv6 table, or opens one (a SYN, a datagram) with the service's scheduler (sh and mh hash
//! the client as IPVS folds an IPv6 address). The session follows the TCP handshake and close
//! as an IPv4 one does and counts in its dest's counters and loads. Its packets go on in the
//! dest's mode:
//! - Route (DR): the frame re-addressed to the RS's MAC on the link, the IPv6 packet untouched
//!   (hop limit included, as IPVS's DR leaves it);
//! - TUN: the packet, untouched, in an outer IPv6 header toward the RS (IPv6-in-IPv6, RFC
//!   2473), which answers the client directly;
//! - NAT66: routed (hop limit decremented, the egress MTU respected), the destination
//!   rewritten to `RIP:rport`; the RS's reply (its gateway is the director) found by its
//!   reply key `RIP:rport → CIP:cport` and sent back from `VIP:vport`. With several workers
//!   a NAT66 service's sessions live on the client endpoint's home worker
//!   ([`redirect::home6`]), which both directions are handed to;
//! - FullNAT66: routed (hop limit decremented, the egress MTU respected), the client's
//!   `CIP:cport → VIP:vport` leaving as `LIP:lport → RIP:rport` from the worker's IPv6 LIP
//!   pool ([`LipPool6`]), the RS's reply to `LIP:lport` found by its reply key and sent back
//!   as `VIP:vport → CIP:cport`, the TCP/UDP checksum updated incrementally
//!   ([`Ipv6Rewrite`]). A reply that reaches another worker goes to the one whose slice of
//!   the port range holds its LIP port, as IPv4 FullNAT replies do.

use super::preamble6::{Out6, Toward6};
use super::session::{
    give_back_lip, hold_template, insert_refused, is_active, release_template, tcp_event,
    template_dest, Carrier, Phase, Preamble, SynProxy, Template, STEER_TRIES_PER_QUEUE,
};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmpv6;
use crate::lip::{LipPool, LipPool6};
use crate::local;
use crate::nat64;
use crate::parse::{self, Ipv6Meta, L4};
use crate::redirect;
use crate::rewrite::{self, Ipv6Rewrite};
use crate::snapshot::Homing;
use crate::stats::WorkerStats;
use crate::synproxy::Shift;
use crate::wire::tcp::flags as tcp_flags;
use conntrack::{
    Dir, FlowKey6, Proto, Session, SessionId, SessionState, Table, TcpEvent, TcpState,
};
use core::net::Ipv6Addr;
use sched::{FlowHint, ForwardMode};

/// What an IPv6 session needs to forward its packets, whatever the configuration does later.
/// 32 bytes: its flags and its PROXY protocol header's state share one byte, and of the
/// client's first data byte it keeps the low 24 bits ([`Forward6::first_seq`]), so that an
/// IPv6 session's slot stays 136 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward6 {
    /// Real server address.
    pub rip: Ipv6Addr,
    /// Real server port.
    pub rport: u16,
    /// How its packets reach the RS.
    pub via: Via6,
    /// The dest's counter slot (below [`MAX_DEST_SLOTS`](crate::snapshot::MAX_DEST_SLOTS)).
    pub slot: u16,
    /// [`PERSISTENT`], [`PEER`], [`SYNC_NOTED`], and the [`Preamble`]'s bits from
    /// [`PREAMBLE_SHIFT`] on.
    marks: u8,
    /// The low 24 bits of the client's first data byte (its ISN + 1), big-endian: where the
    /// header starts in the RS's sequence space (sessions with a header or TOA).
    first: [u8; 3],
}

/// [`Forward6`]'s mark: it holds its client's persistence template.
const PERSISTENT: u8 = 1;
/// [`Forward6`]'s mark: installed from a peer director's sync record.
const PEER: u8 = 2;
/// [`Forward6`]'s mark: noted for session sync since the last export.
const SYNC_NOTED: u8 = 4;
/// Where a [`Forward6`]'s [`Preamble`] starts in its marks.
const PREAMBLE_SHIFT: u8 = 4;

impl Forward6 {
    /// A session toward `rip`:`rport` `via`, counted in dest slot `slot`, holding its
    /// client's template if `persistent`; no header, not a peer's, not noted.
    pub fn new(rip: Ipv6Addr, rport: u16, via: Via6, slot: u16, persistent: bool) -> Forward6 {
        Forward6 {
            rip,
            rport,
            via,
            slot,
            marks: if persistent { PERSISTENT } else { 0 },
            first: [0; 3],
        }
    }

    /// It holds its client's persistence template (a persistent service's session).
    #[inline]
    pub fn persistent(&self) -> bool {
        self.marks & PERSISTENT != 0
    }

    /// Installed from a peer director's sync record, and not moved by this director since.
    #[inline]
    pub fn peer(&self) -> bool {
        self.marks & PEER != 0
    }

    /// Sets [`Forward6::peer`].
    #[inline]
    pub fn set_peer(&mut self, on: bool) {
        self.mark(PEER, on);
    }

    /// Noted for session sync since the last export (one record however many changes).
    #[inline]
    pub fn sync_noted(&self) -> bool {
        self.marks & SYNC_NOTED != 0
    }

    /// Sets [`Forward6::sync_noted`].
    #[inline]
    pub fn set_sync_noted(&mut self, on: bool) {
        self.mark(SYNC_NOTED, on);
    }

    #[inline]
    fn mark(&mut self, bit: u8, on: bool) {
        if on {
            self.marks |= bit;
        } else {
            self.marks &= !bit;
        }
    }

    /// The PROXY protocol header (or TOA) its service sends, and how far it got.
    #[inline]
    pub fn preamble(&self) -> Preamble {
        Preamble::from_bits(self.marks >> PREAMBLE_SHIFT)
    }

    /// Sets [`Forward6::preamble`].
    #[inline]
    pub fn set_preamble(&mut self, p: Preamble) {
        self.marks = (self.marks & ((1 << PREAMBLE_SHIFT) - 1)) | p.bits() << PREAMBLE_SHIFT;
    }

    /// With a header: the low 24 bits of the client's first data byte. Until the header is
    /// acknowledged the segments that need it lie within a few windows of that byte, where
    /// [`proxy_protocol::near24`](crate::proxy_protocol::near24) finds the whole number
    /// again; afterwards it is not needed.
    #[inline]
    pub fn first_seq(&self) -> u32 {
        let [a, b, c] = self.first;
        u32::from_be_bytes([0, a, b, c])
    }

    /// Sets [`Forward6::first_seq`] from the client's first data byte (its low 24 bits kept).
    #[inline]
    pub fn set_first_seq(&mut self, seq: u32) {
        let [_, a, b, c] = seq.to_be_bytes();
        self.first = [a, b, c];
    }

    /// The forwarding mode (NAT64 is FullNAT toward an IPv4 RS).
    pub fn mode(&self) -> ForwardMode {
        match self.via {
            Via6::Dr => ForwardMode::Dr,
            Via6::Nat { .. } => ForwardMode::Nat,
            Via6::Tun => ForwardMode::Tun,
            Via6::FullNat { .. } | Via6::Nat64 { .. } => ForwardMode::FullNat,
        }
    }

    /// Whether the director proxied the handshake ([`crate::synproxy`]), and how far it got.
    #[inline]
    pub fn synproxy(&self) -> SynProxy {
        match self.via {
            Via6::Nat { proxy } | Via6::FullNat { proxy, .. } | Via6::Nat64 { proxy, .. } => proxy,
            Via6::Dr | Via6::Tun => SynProxy::Off,
        }
    }

    /// Moves a proxied session's handshake on (NAT66, FullNAT66 and NAT64 only: DR and TUN
    /// are never proxied).
    pub(super) fn set_synproxy(&mut self, to: SynProxy) {
        if let Via6::Nat { proxy } | Via6::FullNat { proxy, .. } | Via6::Nat64 { proxy, .. } =
            &mut self.via
        {
            *proxy = to;
        }
    }
}

/// An IPv6 session's forwarding mode and what only that mode has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via6 {
    /// DR: only the destination MAC changes.
    Dr,
    /// NAT66: the destination becomes the RS; its replies come back through the director.
    Nat {
        /// Whether the director proxied the handshake, and how far it got.
        proxy: SynProxy,
    },
    /// TUN: IPv6-in-IPv6 toward the RS (RFC 2473); it answers the client directly.
    Tun,
    /// FullNAT66: the source becomes this LIP and port.
    FullNat {
        /// The LIP, by its index in the worker's [`LipPool6`].
        lip: u16,
        /// The local port.
        lport: u16,
        /// Whether the director proxied the handshake, and how far it got (in the variant:
        /// the slot has no byte to spare, and only the routed modes can be proxied).
        proxy: SynProxy,
    },
    /// NAT64: FullNAT toward an IPv4 RS (its address kept IPv4-mapped in `rip`), the packet
    /// translated to IPv4 from this IPv4 LIP and port of the worker's [`LipPool`].
    Nat64 {
        /// The IPv4 LIP.
        lip: core::net::Ipv4Addr,
        /// The local port.
        lport: u16,
        /// Whether the director proxied the handshake, and how far it got (its SYN to the
        /// RS and the RS's SYN/ACK are IPv4).
        proxy: SynProxy,
    },
}

/// An IPv6 service's persistence template (a NAT64 dest's address IPv4-mapped), in the
/// worker's IPv6 template table.
pub type Template6 = Template<Ipv6Addr>;

/// The template key of an IPv6 session's client packets (`key` is client → VIP).
#[inline]
pub(super) fn template_key6(key: &FlowKey6) -> FlowKey6 {
    FlowKey6::new(key.proto, key.src, 0, key.dst, key.dport)
}

/// A dest's address as an IPv6 session keeps it (an IPv4 dest's IPv4-mapped: NAT64).
fn dest_rip6(addr: core::net::IpAddr) -> Ipv6Addr {
    match addr {
        core::net::IpAddr::V6(a) => a,
        core::net::IpAddr::V4(a) => nat64::mapped(a),
    }
}

/// The TCP/UDP summary of an IPv6 packet for its session: protocol, ports, TCP event, and
/// whether it may open one.
fn l4_of(meta: &Ipv6Meta) -> Result<(Proto, u16, u16, Option<TcpEvent>, bool), DropReason> {
    match meta.l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
        } => Ok((
            Proto::Tcp,
            sport,
            dport,
            tcp_event(flags),
            flags & tcp_flags::HANDSHAKE == tcp_flags::SYN,
        )),
        L4::Udp { sport, dport } => Ok((Proto::Udp, sport, dport, None, true)),
        // A later fragment has no ports to find its session by.
        L4::None if meta.is_fragment() => Err(DropReason::Fragment),
        _ => Err(DropReason::NotForUs),
    }
}

/// Where an IPv6 packet of a session goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found6 {
    /// Its session on this worker, the packet's direction in it, and its TCP event.
    Session(SessionId, Dir, Option<TcpEvent>),
    /// The worker that holds (or would open) its session.
    Owner(u16),
    /// No session, and service `si` proxies its handshake: the SYN proxy answers a TCP
    /// packet of flow key (client → VIP) itself.
    Proxy(usize, FlowKey6),
}

impl<D: Device> Worker<D> {
    /// A packet from `src` for one of the director's IPv6 VIPs or (`lip`) LIPs `dst`, its
    /// IPv6 header at `l3`, received on `port` (`redirected`: handed over by another worker):
    /// on through its session, to the worker owning a LIP port's session, or into a new
    /// session of the service on its protocol and port.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn service6(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        addrs: (Ipv6Addr, Ipv6Addr),
        lip: bool,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        match self.find6(&buf, l3, meta, addrs, lip, redirected)? {
            Found6::Session(id, dir, event) => self.forward6(id, dir, event, buf, l3, meta, None),
            Found6::Owner(owner) => Ok(Emit::Handoff { owner, port, buf }),
            Found6::Proxy(si, key) => self.synproxy_new6(si, key, buf, l3, meta),
        }
    }

    /// The session of a packet for a VIP or (`lip`) LIP (see [`Worker::service6`]): found,
    /// opened, or another worker's. A packet whose hop limit runs out opening a routed
    /// session gets its Time Exceeded here.
    pub(super) fn find6(
        &mut self,
        buf: &D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        lip: bool,
        redirected: bool,
    ) -> Result<Found6, DropReason> {
        let (proto, sport, dport, event, opens) = l4_of(meta)?;
        let l4_off = l3 + usize::from(meta.l4_off);
        if proto == Proto::Udp && buf.data().get(l4_off + 6..l4_off + 8) == Some(&[0, 0][..]) {
            // IPv6 UDP without a checksum is no datagram (RFC 8200 8.1).
            return Err(DropReason::MalformedUdp);
        }
        let key = FlowKey6::new(proto, src, sport, dst, dport);
        let found = self.table6.lookup(&key);
        let found = match found {
            Some((id, Dir::Original)) if opens && proto == Proto::Tcp && self.closing6(id) => {
                // A new connection on the 4-tuple of one that is closing: like IPVS's
                // conn_reuse_mode (and IPv4's), the old session ends and the SYN is scheduled
                // afresh.
                if let Some(s) = self.table6.remove(id) {
                    let lips = (&mut self.lips6, &mut self.lips);
                    session6_ended(&self.stats, lips, &mut self.templates6, self.now, &s);
                    self.counters.count(Counter::SessionsReused);
                }
                None
            }
            found => found,
        };
        let (id, dir) = match found {
            Some(found) => found,
            None if lip => {
                // A reply whose session another worker holds: its LIP port's slice says which.
                let workers = self.cfg.workers;
                if !redirected && workers > 1 && self.redirect.is_some() {
                    let owner = LipPool::worker_of(self.snap.lport_range(), workers, dport);
                    if let Some(owner) = owner.filter(|&o| o != self.cfg.id) {
                        return Ok(Found6::Owner(owner));
                    }
                }
                return Err(DropReason::NoSession);
            }
            None => {
                let si = self.snap.service_index6(proto, dst, dport);
                // NAT66 services' sessions live on the client endpoint's home worker, a
                // persistent service's on the client's (one template for all its connections).
                let home = match si.map(|si| self.snap.service_homing(si)) {
                    Some(Homing::Endpoint) => Some(sport),
                    Some(Homing::Client) => Some(0),
                    _ => None,
                };
                if let (Some(port), false) = (home, redirected) {
                    if let Some(owner) = self.home_elsewhere(src, port) {
                        return Ok(Found6::Owner(owner));
                    }
                }
                if let Some(si) =
                    si.filter(|&si| proto == Proto::Tcp && self.snap.services()[si].synproxy())
                {
                    return Ok(Found6::Proxy(si, key));
                }
                // A VIP's port that no service has: refused as the kernel refuses a port
                // with no socket (a fragment is left alone: the whole datagram is not here;
                // an address that is also a DIP keeps its old way).
                let Some(si) = si else {
                    if !meta.is_fragment() && self.snap.dip6(dst).is_none() {
                        return Err(self.refuse6(buf, l3, meta, (src, dst)));
                    }
                    return Err(if opens {
                        DropReason::NotForUs
                    } else {
                        DropReason::NoSession
                    });
                };
                if !opens {
                    return Err(DropReason::NoSession);
                }
                let first_seq = first_seq6(buf, l4_off, meta);
                match self.open6(si, key, meta, (SynProxy::Off, first_seq)) {
                    Ok(id) => (id, Dir::Original),
                    Err(DropReason::TtlExceeded) => {
                        self.icmpv6_error_back(buf, l3, meta, (icmpv6::TIME_EXCEEDED, 0, 0));
                        return Err(DropReason::TtlExceeded);
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Found6::Session(id, dir, event))
    }

    /// Whether IPv6 TCP session `id` is closing (TIME_WAIT or CLOSE): a SYN on its 4-tuple
    /// starts a new connection.
    fn closing6(&self, id: SessionId) -> bool {
        matches!(
            self.table6.get(id).map(|s| s.state),
            Some(SessionState::Tcp(TcpState::TimeWait | TcpState::Close))
        )
    }

    /// A packet from `src` to `dst`, neither of them the director's, received on `port`: a
    /// NAT66 reply (from a NAT dest to its client) when its session knows it; with several
    /// workers, handed to the client endpoint's home worker when that holds it.
    pub(super) fn nat_reply6(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        addrs: (Ipv6Addr, Ipv6Addr),
        redirected: bool,
    ) -> Verdict<D::Buf> {
        match self.find_reply6(meta, addrs, redirected)? {
            Found6::Session(id, dir, event) => self.forward6(id, dir, event, buf, l3, meta, None),
            Found6::Owner(owner) => Ok(Emit::Handoff { owner, port, buf }),
            // Replies find sessions only.
            Found6::Proxy(..) => Err(DropReason::NoSession),
        }
    }

    /// The session of a packet through the director (see [`Worker::nat_reply6`]): a NAT66
    /// reply's, here or on the client endpoint's home worker.
    pub(super) fn find_reply6(
        &self,
        meta: &Ipv6Meta,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        redirected: bool,
    ) -> Result<Found6, DropReason> {
        let Ok((proto, sport, dport, event, _)) = l4_of(meta) else {
            return Err(DropReason::Ipv6NotSupported);
        };
        let key = FlowKey6::new(proto, src, sport, dst, dport);
        if let Some((id, Dir::Reply)) = self.table6.lookup(&key) {
            return Ok(Found6::Session(id, Dir::Reply, event));
        }
        let port = match self.snap.nat_dest6_homing(proto, src, sport) {
            None => return Err(DropReason::Ipv6NotSupported),
            Some(Homing::Client) => 0,
            Some(_) => dport,
        };
        if !redirected {
            if let Some(owner) = self.home_elsewhere(dst, port) {
                return Ok(Found6::Owner(owner));
            }
        }
        Err(DropReason::NoSession)
    }

    /// The home worker of the client endpoint `addr`:`port` when it is another one (several
    /// workers and the redirect rings).
    fn home_elsewhere(&self, addr: Ipv6Addr, port: u16) -> Option<u16> {
        let workers = self.cfg.workers;
        if workers <= 1 || self.redirect.is_none() {
            return None;
        }
        let owner = redirect::home6(addr, port, workers);
        (owner != self.cfg.id).then_some(owner)
    }

    /// A packet of IPv6 session `id` going in direction `dir`: DR on the link, TUN
    /// encapsulated, NAT66 and FullNAT66 routed and rewritten, NAT64 translated. A fragment
    /// (`frag`: where its identification is and the one it leaves with) is rewritten at L3
    /// only unless it is the first, which carries the L4 header.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward6(
        &mut self,
        id: SessionId,
        dir: Dir,
        event: Option<TcpEvent>,
        mut buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        frag: Option<(usize, u32)>,
    ) -> Verdict<D::Buf> {
        let Some(s) = self.table6.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig, before) = (s.data, s.original, s.state);
        let proxy = f.synproxy();
        if let SynProxy::Pending(info) = proxy {
            if frag.is_some() {
                return Err(DropReason::Fragment);
            }
            return self.synproxy_pending6(id, dir, buf, l3, meta, info);
        }
        if let Via6::Nat64 { lip, lport, .. } = f.via {
            // Replies come back as IPv4 (`nat64_back`): nothing else matches the reply key.
            if dir == Dir::Reply {
                return Err(DropReason::NotForUs);
            }
            return self.nat64_out(id, event, buf, l3, meta, (lip, lport));
        }
        let routed = match (f.via, dir) {
            (Via6::Dr | Via6::Tun, Dir::Original) => None,
            (Via6::Nat { .. } | Via6::FullNat { .. }, _) => {
                if meta.hop_limit <= 1 {
                    self.icmpv6_error_back(&buf, l3, meta, (icmpv6::TIME_EXCEEDED, 0, 0));
                    return Err(DropReason::TtlExceeded);
                }
                let toward = if dir == Dir::Original {
                    f.rip
                } else {
                    orig.src
                };
                let hop = self.snap.route6(toward).ok_or(DropReason::NoRoute)?;
                let mtu = self.snap.iface(hop.iface).mtu;
                if meta.total_len > usize::from(mtu) {
                    let ptb = (icmpv6::PACKET_TOO_BIG, 0, u32::from(mtu));
                    self.icmpv6_error_back(&buf, l3, meta, ptb);
                    return Err(DropReason::TooBig);
                }
                let local = match f.via {
                    Via6::FullNat { lip, lport, .. } => Some((
                        self.lips6
                            .as_ref()
                            .and_then(|p| p.lip(lip))
                            .ok_or(DropReason::NoRoute)?,
                        lport,
                    )),
                    _ => None,
                };
                Some((hop, local))
            }
            // DR and TUN sessions have no reply key: nothing comes back through them.
            (Via6::Dr | Via6::Tun, Dir::Reply) => return Err(DropReason::NotForUs),
            (Via6::Nat64 { .. }, _) => return Err(DropReason::NotForUs),
        };
        let l4_off = usize::from(meta.l4_off);
        let tcp = orig.proto == Proto::Tcp;
        self.session6_packet(id, dir, event, (f.slot, before), meta.total_len);
        let Some((hop, local)) = routed else {
            if f.via == Via6::Tun {
                return self.tunnel6(buf, l3, meta, f.rip);
            }
            return match self.snap.route6(f.rip) {
                Some(hop) if hop.on_link => Ok(Emit::route6(buf, l3, hop)),
                _ => Err(DropReason::NoRoute),
            };
        };
        let total = if f.preamble().is_on() {
            let at = (l3, usize::from(meta.l4_off), meta);
            self.preamble_step6(id, dir, &mut buf, at, frag.is_some(), hop)?
        } else {
            meta.total_len
        };
        let pkt = &mut buf.data_mut()[l3..l3 + total];
        if let Some((at, ident)) = frag {
            pkt[at..at + 4].copy_from_slice(&ident.to_be_bytes());
        }
        if meta.l4 == L4::None {
            // A later fragment: the addresses only (the first fragment's L4 checksum covers
            // the whole datagram and took the change).
            let (src, dst) = ends6(&f, &orig, dir, local);
            rewrite::rewrite_fragment6(pkt, src.map(|a| a.0), dst.map(|a| a.0));
            return Ok(Emit::route6(buf, l3, hop));
        }
        let at = (meta, l4_off, tcp);
        rewrite_session6(pkt, at, id, (&f, &orig), dir, local, &self.proxy_words6);
        Ok(Emit::route6(buf, l3, hop))
    }

    /// The header step of a routed IPv6 session that tells its RS who the client is (its
    /// packet at `l3`, the L4 header at `l4_off` from it; `fragment`: one of a datagram's
    /// fragments): a TCP segment through [`Worker::preamble6`], a UDP flow's first datagram
    /// given its header. Returns the packet's total length. Out of line: sessions without a
    /// header do not carry it.
    ///
    /// # Errors
    /// `fragment` for a fragment while the header or option is still to go (it cannot go
    /// into one); `too_big` for a first datagram with no room for the header (the client gets
    /// a Packet Too Big); what [`Worker::preamble6`] and [`Worker::udp_header6`] return.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn preamble_step6(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        (l3, l4_off, meta): (usize, usize, &Ipv6Meta),
        fragment: bool,
        hop: crate::snapshot::Hop6,
    ) -> Result<usize, DropReason> {
        // Read again here: the common path does not hold the session's copy in memory.
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig) = (&{ s.data }, &{ s.original });
        let pending = f.preamble().phase() != Phase::Done;
        let at = (l3, meta.total_len, Out6::V6 { l4_off });
        match meta.l4 {
            L4::Tcp { .. } | L4::Udp { .. } if fragment && pending => Err(DropReason::Fragment),
            L4::Tcp { flags, .. } => {
                self.preamble6(id, dir, buf, at, flags, f, orig, Toward6::V6(hop))
            }
            L4::Udp { .. } if dir == Dir::Original => {
                let mtu = usize::from(self.snap.iface(hop.iface).mtu);
                if self.udp_too_big6(buf, (l3, meta), f, (meta.total_len, mtu, 0)) {
                    return Err(DropReason::TooBig);
                }
                self.udp_header6(id, buf, at, f, orig)
            }
            _ => Ok(meta.total_len),
        }
    }

    /// A packet of IPv6 session `id` (counter slot and state `before` it) going in
    /// direction `dir`, `len` bytes: the session's TCP state and deadline move, the dest's
    /// counters and loads follow; a new state is noted for session sync.
    pub(super) fn session6_packet(
        &mut self,
        id: SessionId,
        dir: Dir,
        event: Option<TcpEvent>,
        (slot, before): (u16, SessionState),
        len: usize,
    ) {
        let slot = u32::from(slot);
        // A state that did not change moves no counter and nothing to sync.
        let moved = self.table6.on_packet(id, dir, event, self.now);
        if let Some(state) = moved.filter(|&s| s != before) {
            self.stats
                .session_moved(slot, is_active(before), is_active(state));
            self.sync_changed6(id);
        }
        self.stats.packet(slot, dir == Dir::Original, len as u64);
    }

    /// Opens a session of IPv6 service `si` for the client of `key` (`proxy`: how far the SYN
    /// proxy got, for NAT66 and FullNAT66 dests): the scheduler's dest
    /// (least-connection schedulers weigh this worker's sessions per dest), and for FullNAT
    /// a (LIP, port) from the worker's IPv6 pool and the reply key it makes (not for a packet
    /// whose hop limit runs out here).
    ///
    /// # Errors
    /// The drop reason when no session could be opened; nothing is left taken then.
    pub(super) fn open6(
        &mut self,
        si: usize,
        key: FlowKey6,
        meta: &Ipv6Meta,
        (proxy, first_seq): (SynProxy, u32),
    ) -> Result<SessionId, DropReason> {
        let id = self.open6_session(si, key, meta, proxy)?;
        // A service that tells the RS who the client is: the carrier, and where the client's
        // data starts (its ISN + 1; TCP only).
        let svc = &self.snap.services()[si];
        let carrier = if svc.toa() {
            Some(Carrier::Toa)
        } else {
            svc.proxy_protocol().map(Carrier::Proxy)
        };
        if carrier.is_some() {
            if let Some(d) = self.table6.data_mut(id) {
                if matches!(
                    d.via,
                    Via6::Nat { .. } | Via6::FullNat { .. } | Via6::Nat64 { .. }
                ) {
                    d.set_preamble(Preamble::new(carrier));
                    d.set_first_seq(first_seq);
                }
            }
        }
        Ok(id)
    }

    /// [`Worker::open6`]'s session, before its carrier.
    fn open6_session(
        &mut self,
        si: usize,
        key: FlowKey6,
        meta: &Ipv6Meta,
        proxy: SynProxy,
    ) -> Result<SessionId, DropReason> {
        if self.table6.len() >= self.table6.capacity() {
            return Err(DropReason::TableFull);
        }
        let persist_ms = self.snap.services()[si]
            .persistence()
            .map_or(0, |s| s.saturating_mul(1000));
        let (di, template) = self.pick_dest6(si, &key, persist_ms)?;
        let dest = self.snap.services()[si].dests()[di];
        let slot = u16::try_from(self.snap.dest_slot(si, di)).map_err(|_| DropReason::NoDest)?;
        if matches!(dest.mode, ForwardMode::Nat | ForwardMode::FullNat) && meta.hop_limit <= 1 {
            // Routed: a packet that cannot be forwarded opens nothing (its Time Exceeded goes
            // back from `service6`).
            return Err(DropReason::TtlExceeded);
        }
        let rip = match dest.addr {
            core::net::IpAddr::V6(rip) => rip,
            // NAT64 (the snapshot took IPv4 dests in FullNAT mode only): an IPv4 LIP and
            // port toward the RS, the reply key IPv4-mapped.
            core::net::IpAddr::V4(rip4) => {
                let hop = self.snap.route(rip4);
                let (lip, lport) = self.take_lip(hop, rip4, dest.port)?;
                let rip = nat64::mapped(rip4);
                let reply = FlowKey6::new(key.proto, rip, dest.port, nat64::mapped(lip), lport);
                let via = Via6::Nat64 { lip, lport, proxy };
                let id = self.store6(key, Some(reply), (rip, dest.port, via, slot), persist_ms)?;
                self.hold_template6(&key, template, (rip, dest.port), persist_ms);
                return Ok(id);
            }
        };
        let (via, reply) = match dest.mode {
            ForwardMode::Nat => {
                let reply = FlowKey6::new(key.proto, rip, dest.port, key.src, key.sport);
                (Via6::Nat { proxy }, Some(reply))
            }
            ForwardMode::FullNat => {
                // When the RS-facing port does RSS, a port whose reply hashes to this
                // worker's queue (as IPv4 FullNAT's `take_lip`).
                let steer = self
                    .snap
                    .route6(rip)
                    .map(|h| self.snap.iface(h.iface).port as usize)
                    .and_then(|p| self.cfg.steering.get(p))
                    .and_then(Option::as_ref);
                let tries = STEER_TRIES_PER_QUEUE * self.cfg.workers.max(1) as usize;
                let pool = self.lips6.as_mut().ok_or(DropReason::LipExhausted)?;
                let to = (rip, dest.port, self.now);
                let (lip, lport) = match steer {
                    Some(s) => pool.alloc_where(to, s.selector6(rip, dest.port), tries),
                    None => pool.alloc(rip, dest.port, self.now),
                }
                .ok_or(DropReason::LipExhausted)?;
                let addr = pool.lip(lip).ok_or(DropReason::LipExhausted)?;
                let reply = FlowKey6::new(key.proto, rip, dest.port, addr, lport);
                (Via6::FullNat { lip, lport, proxy }, Some(reply))
            }
            // The snapshot takes the SYN proxy for NAT and FullNAT dests only.
            _ if proxy != SynProxy::Off => return Err(DropReason::NoDest),
            ForwardMode::Tun => (Via6::Tun, None),
            ForwardMode::Dr => (Via6::Dr, None),
        };
        let id = self.store6(key, reply, (rip, dest.port, via, slot), persist_ms)?;
        self.hold_template6(&key, template, (rip, dest.port), persist_ms);
        Ok(id)
    }

    /// The dest of IPv6 service `si` a new session of the client of `key` goes to: the one
    /// its persistence template names while that dest is still in the service (as IPv4's
    /// `pick_dest`), else the scheduler's pick (least-connection schedulers weigh this
    /// worker's sessions per dest). Returns the dest's index and the template that chose it.
    fn pick_dest6(
        &mut self,
        si: usize,
        key: &FlowKey6,
        persist_ms: u32,
    ) -> Result<(usize, Option<SessionId>), DropReason> {
        if persist_ms > 0 {
            let dests = self.snap.services()[si].dests();
            let tkey = template_key6(key);
            let same = |addr, rip| dest_rip6(addr) == rip;
            if let Some((di, tid)) = template_dest(&mut self.templates6, &tkey, dests, same) {
                return Ok((di, Some(tid)));
            }
        }
        let hint = FlowHint::from_ipv6(key.src, key.sport);
        self.schedule(si, &hint).map(|di| (di, None))
    }

    /// A new session of a persistent service (`persist_ms` > 0) holds its client's
    /// template: the one that chose its dest, or a new one for `(rip, rport)`. A full
    /// template table only costs this client its persistence.
    pub(super) fn hold_template6(
        &mut self,
        key: &FlowKey6,
        template: Option<SessionId>,
        (rip, rport): (Ipv6Addr, u16),
        persist_ms: u32,
    ) {
        if persist_ms > 0 {
            let (tkey, now) = (template_key6(key), self.now);
            hold_template(
                &mut self.templates6,
                tkey,
                template,
                (rip, rport),
                (persist_ms, now),
            );
        }
    }

    /// Stores the new session of `key` (its reply key `reply`: none for DR and TUN),
    /// forwarding to `rip`:`rport` `via` with counter slot `slot` (`persist_ms` > 0: it
    /// holds its client's template); a (LIP, port) it took goes back when it cannot be
    /// stored.
    fn store6(
        &mut self,
        key: FlowKey6,
        reply: Option<FlowKey6>,
        (rip, rport, via, slot): (Ipv6Addr, u16, Via6, u16),
        persist_ms: u32,
    ) -> Result<SessionId, DropReason> {
        let fwd = Forward6::new(rip, rport, via, slot, persist_ms > 0);
        let id = match self.table6.insert(key, reply, fwd, self.now) {
            Ok(id) => id,
            Err(e) => {
                // The pair never reached the wire: no quarantine.
                release_lip6(&mut self.lips6, &mut self.lips, &fwd, self.now, false);
                return Err(insert_refused(e));
            }
        };
        self.counters.count(Counter::SessionsCreated);
        if key.proto != Proto::Tcp {
            // A TCP session's first packet moves its state, which notes it for sync then.
            self.sync_changed6(id);
        }
        // TCP starts inactive (SYN_RECV after this packet); UDP is active.
        self.stats
            .session_opened(u32::from(slot), key.proto != Proto::Tcp);
        Ok(id)
    }
}

/// The client's first data byte, from its SYN (its TCP header at `l4` in `buf`): the
/// sequence number + 1; 0 for UDP.
#[cold]
fn first_seq6<B: PacketBuf>(buf: &B, l4: usize, meta: &Ipv6Meta) -> u32 {
    match meta.l4 {
        L4::Tcp { .. } => buf
            .data()
            .get(l4 + 4..l4 + 8)
            .map_or(0, |s| crate::wire::be32(s, 0).wrapping_add(1)),
        _ => 0,
    }
}

/// Moves a proxied IPv6 session's TCP segment `pkt` (from its IPv6 header) into the sequence
/// space of the side it goes to, as IPv4's `shift_proxied`: the RS's `seq` toward the
/// client, the client's `ack` (when it has one) toward the RS; the checksum follows.
#[inline]
pub(super) fn shift_proxied6(pkt: &mut [u8], meta: &Ipv6Meta, dir: Dir, shift: Shift) {
    let L4::Tcp { flags, .. } = meta.l4 else {
        return;
    };
    let l4 = usize::from(meta.l4_off);
    match dir {
        Dir::Reply => rewrite::shift_tcp(pkt, l4, shift.to_client(0), 0),
        Dir::Original if flags & tcp_flags::ACK != 0 => {
            rewrite::shift_tcp(pkt, l4, 0, shift.to_rs(0))
        }
        Dir::Original => {}
    }
}

/// An IPv6 endpoint: address and port.
type End6 = (Ipv6Addr, u16);

/// The new source and destination of a routed IPv6 session's packet going in direction `dir`
/// (`local`: FullNAT66's LIP and port); `None`: unchanged.
#[inline(always)]
fn ends6(
    f: &Forward6,
    orig: &FlowKey6,
    dir: Dir,
    local: Option<End6>,
) -> (Option<End6>, Option<End6>) {
    match dir {
        Dir::Original => (local, Some((f.rip, f.rport))),
        Dir::Reply => (
            Some((orig.dst, orig.dport)),
            local.map(|_| (orig.src, orig.sport)),
        ),
    }
}

/// The NAT66 or FullNAT66 rewrite of session `id`'s whole packet `pkt` (its TCP (`tcp`) or
/// UDP header at `l4_off`) going in direction `dir`: addresses and ports, the hop limit, the
/// L4 checksum, and a proxied session's sequence shift (its word in `proxy_words6`).
#[inline(always)]
pub(super) fn rewrite_session6(
    pkt: &mut [u8],
    (meta, l4_off, tcp): (&Ipv6Meta, usize, bool),
    id: SessionId,
    (f, orig): (&Forward6, &FlowKey6),
    dir: Dir,
    local: Option<End6>,
    proxy_words6: &[u32],
) {
    let (src, dst) = ends6(f, orig, dir, local);
    let mut r = Ipv6Rewrite::new(pkt, l4_off, tcp);
    if let Some((addr, port)) = src {
        r.set_src(addr);
        r.set_sport(port);
    }
    if let Some((addr, port)) = dst {
        r.set_dst(addr);
        r.set_dport(port);
    }
    r.dec_hop_limit();
    drop(r);
    if f.synproxy() == SynProxy::On {
        shift_proxied6(pkt, meta, dir, Shift(proxy_words6[id.index()]));
    }
}

/// What an IPv6 session's end (at `now`) gives back: its counts in its dest's load, its
/// FullNAT (LIP, port) — a TCP session's into quarantine —, its template's hold (the
/// client's next connection within the timeout still goes to the same dest).
pub(super) fn session6_ended(
    stats: &WorkerStats,
    (lips6, lips): (&mut Option<LipPool6>, &mut Option<LipPool>),
    templates6: &mut Table<Template6, FlowKey6>,
    now: u64,
    s: &Session<Forward6, FlowKey6>,
) {
    stats.session_closed(u32::from(s.data.slot), is_active(s.state));
    release_lip6(lips6, lips, &s.data, now, s.original.proto == Proto::Tcp);
    if s.data.persistent() {
        release_template(templates6, &template_key6(&s.original), now, None);
    }
}

/// Gives a FullNAT66 session's (LIP, port) back to the IPv6 pool, a NAT64 session's to the
/// IPv4 one.
pub(super) fn release_lip6(
    lips6: &mut Option<LipPool6>,
    lips: &mut Option<LipPool>,
    f: &Forward6,
    now: u64,
    quarantine: bool,
) {
    match (f.via, lips6.as_mut(), lips.as_mut()) {
        (Via6::FullNat { lip, lport, .. }, Some(p), _) => {
            p.free(lip, lport, f.rip, f.rport, now, quarantine);
        }
        (Via6::Nat64 { lip, lport, .. }, _, Some(p)) => {
            if let Some(rip) = f.rip.to_ipv4_mapped() {
                give_back_lip(p, (lip, lport), (rip, f.rport), now, quarantine);
            }
        }
        _ => {}
    }
}

/// The LIP address of an IPv6 session: its IPv6 LIP (FullNAT66).
pub(super) fn local6(lips6: &Option<LipPool6>, f: &Forward6) -> Option<(Ipv6Addr, u16)> {
    match f.via {
        Via6::FullNat { lip, lport, .. } => Some((lips6.as_ref()?.lip(lip)?, lport)),
        Via6::Dr | Via6::Nat { .. } | Via6::Tun | Via6::Nat64 { .. } => None,
    }
}

/// What an IPv6 session is listed with: its RS (IPv4 for NAT64) and its LIP, if any.
pub(super) fn listed6(
    lips6: &Option<LipPool6>,
    f: &Forward6,
) -> (core::net::IpAddr, Option<(core::net::IpAddr, u16)>) {
    match f.via {
        Via6::Nat64 { lip, lport, .. } => (
            f.rip.to_ipv4_mapped().map_or(f.rip.into(), Into::into),
            Some((lip.into(), lport)),
        ),
        _ => (f.rip.into(), local6(lips6, f).map(|(a, p)| (a.into(), p))),
    }
}

impl<D: Device> Worker<D> {
    /// TUN: the untouched IPv6 packet at `l3` (`meta`) in an outer IPv6 header toward `rip`
    /// (RFC 2473), from the director's address on the interface toward it. One that no
    /// longer fits the egress MTU is dropped (`too_big`) and its source gets a Packet Too Big
    /// naming the room left (the MTU less the outer header), as a tunnel entry point does.
    pub(super) fn tunnel6(
        &mut self,
        buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        rip: Ipv6Addr,
    ) -> Verdict<D::Buf> {
        let hop = self.snap.route6(rip).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        if meta.total_len + parse::IPV6_HEADER_LEN > mtu {
            let room = (mtu - parse::IPV6_HEADER_LEN) as u32;
            self.icmpv6_error_back(&buf, l3, meta, (icmpv6::PACKET_TOO_BIG, 0, room));
            return Err(DropReason::TooBig);
        }
        Ok(Emit::Route6 {
            buf,
            l3,
            hop,
            tunnel: Some(rip),
        })
    }

    /// Sends the source of the IPv6 packet at `l3` of `offending` (`meta`) an ICMPv6 error
    /// (`ty`, `code`, `rest`: the MTU of Packet Too Big), from the director's IPv6 address
    /// on the interface toward it, rate-limited with the IPv4 errors; `icmp_errors`, else
    /// `icmp_unsent`.
    #[cold]
    #[inline(never)]
    pub(super) fn icmpv6_error_back(
        &mut self,
        offending: &D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (ty, code, rest): (u8, u8, u32),
    ) {
        let pkt = &offending.data()[l3..l3 + meta.total_len];
        let (to, _) = parse::ipv6_addrs(pkt);
        let hop = self
            .snap
            .route6(to)
            .filter(|_| self.icmp_limit.allow(self.now));
        let from = hop.and_then(|h| Some((h, self.snap.source_addr6(h.iface, h.nexthop)?)));
        let Some((hop, from)) = from else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[port as usize].alloc() else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        if !local::write_icmpv6_error(&mut b, (from, to), (ty, code, rest), pkt) {
            self.counters.count(Counter::IcmpUnsent);
            return;
        }
        self.counters.count(Counter::IcmpErrors);
        // The offending packet's own drop is its caller's verdict; this is a frame of its own.
        self.settle(Ok(Emit::route6(b, local::L2_ROOM, hop)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NAT64's IPv4 LIP and SYN proxy state fit the session's spare room (`MssIndex`'s
    /// unused values hold `Via6`'s tag): an IPv6 session's slot is as big as before (the
    /// IPv6 per-session figure depends on it).
    #[test]
    fn an_ipv6_session_does_not_grow() {
        assert_eq!(core::mem::size_of::<Forward6>(), 32);
        assert_eq!(core::mem::size_of::<Session<Forward6, FlowKey6>>(), 136);
    }
}
