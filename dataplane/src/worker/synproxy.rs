//! The SYN proxy's part of the walk: SYN cookies answered without state, the RS handshake
//! opened on a valid ACK, and the two halves joined (see [`crate::synproxy`] for the cookies
//! and the sequence shift).

use super::session::{is_active, Forward, Routing, SynProxy};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::local::{self, TcpSegment, L2_ROOM};
use crate::parse::{Ipv4Meta, L4};
use crate::snapshot::Hop;
use crate::synproxy::{self, CookieInfo};
use crate::wire::be32;
use crate::wire::tcp::{self, flags as tcp_flags};
use conntrack::{Dir, FlowKey, TcpEvent};

impl<D: Device> Worker<D> {
    /// A packet for a SYN-proxied service without a session: a SYN is answered with a cookie
    /// (no state kept); an ACK whose cookie checks opens the session and sends the RS the
    /// client's SYN as it was (its sequence number and MSS); anything else has no session.
    pub(super) fn synproxy_new(
        &mut self,
        si: usize,
        key: FlowKey,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) -> Verdict<D::Buf> {
        let L4::Tcp { flags, .. } = m.l4 else {
            return Err(DropReason::NoSession);
        };
        let seg = &buf.data()[l3 + m.header_len..l3 + m.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        let core = flags & tcp_flags::HANDSHAKE;
        if core == tcp_flags::SYN {
            let mss = synproxy::syn_mss(seg).unwrap_or(synproxy::MSS_TABLE[0]);
            let cookie = self.cookies.make(&key, seq, mss, self.now);
            let Some(hop) = self.snap.route(m.src) else {
                return Err(DropReason::NoRoute);
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
                return Err(DropReason::NoBuffer);
            }
            self.counters.count(Counter::SynproxyCookies);
            return Ok(Emit::route(buf, L2_ROOM, hop));
        }
        if core != tcp_flags::ACK {
            return Err(DropReason::NoSession);
        }
        let isn = seq.wrapping_sub(1);
        let Some(info) = self.cookies.check(&key, isn, ack.wrapping_sub(1), self.now) else {
            return Err(DropReason::BadCookie);
        };
        let (id, routing) =
            self.open_session(si, key, &buf, l3, m, (SynProxy::Pending(info), None))?;
        // A proxied service's dests are NAT or FullNAT: routed.
        let hop = match routing {
            Routing::Routed(hop) => hop,
            Routing::Direct => None,
        };
        self.proxy_words[id.index()] = isn;
        if let Some(d) = self.table.data_mut(id) {
            // Opened by the client's ACK, not its SYN: its first data byte is this one.
            d.first_seq = seq;
        }
        self.table
            .on_packet(id, Dir::Original, Some(TcpEvent::Syn), self.now);
        self.counters.count(Counter::SynproxyOpened);
        self.proxy_syn(id, buf, hop)
    }

    /// Sends proxied session `id`'s SYN to its RS in `buf` (the client's packet that caused
    /// it), over `hop` when the session's opening looked the route up.
    pub(super) fn proxy_syn(
        &mut self,
        id: conntrack::SessionId,
        buf: D::Buf,
        hop: Option<Hop>,
    ) -> Verdict<D::Buf> {
        let Some(s) = self.table.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let SynProxy::Pending(info) = f.synproxy else {
            return Err(DropReason::NoSession);
        };
        let seg = TcpSegment {
            seq: self.proxy_words[id.index()],
            ack: 0,
            flags: tcp_flags::SYN,
            mss: Some(synproxy::MSS_TABLE[usize::from(info.mss)]),
            ..self.segment_to_rs(&f, &orig)
        };
        self.send_segment(buf, &seg, hop)
    }

    /// A segment from the client's side of `f`'s session to its RS, as the RS sees that side
    /// (the LIP in FullNAT, the client in NAT); sequence numbers and flags to fill in.
    pub(super) fn segment_to_rs(&mut self, f: &Forward, orig: &FlowKey) -> TcpSegment {
        let (src, sport) = f.local().unwrap_or((orig.src, orig.sport));
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

    /// Writes `seg` into `buf` and sends it toward its destination, over `hop` if the caller
    /// has the route already.
    pub(super) fn send_segment(
        &mut self,
        mut buf: D::Buf,
        seg: &TcpSegment,
        hop: Option<Hop>,
    ) -> Verdict<D::Buf> {
        let hop = match hop {
            Some(hop) => hop,
            None => self.snap.route(seg.dst).ok_or(DropReason::NoRoute)?,
        };
        if !local::write_tcp(&mut buf, seg) {
            return Err(DropReason::NoBuffer);
        }
        Ok(Emit::route(buf, L2_ROOM, hop))
    }

    /// A packet of a proxied session whose RS has not answered the director's SYN yet. From
    /// the client: the SYN goes again (the client's retransmissions pace the retries). From
    /// the RS: its SYN/ACK joins the halves — the shift is recorded, the RS gets the ACK that
    /// completes its handshake, and the session is ESTABLISHED; its RST resets the client's
    /// connection. Anything else waits (dropped and counted).
    pub(super) fn synproxy_pending(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        info: CookieInfo,
    ) -> Verdict<D::Buf> {
        let L4::Tcp { flags, .. } = m.l4 else {
            return Err(DropReason::SynProxyPending);
        };
        let Some(s) = self.table.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        if dir == Dir::Original {
            if flags & (tcp_flags::SYN | tcp_flags::RST | tcp_flags::FIN) != 0 {
                return Err(DropReason::SynProxyPending);
            }
            self.counters.count(Counter::SynproxySynRetries);
            return self.proxy_syn(id, buf, None);
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
            self.sync_changed(id);
            let seg = TcpSegment {
                seq: isn.wrapping_add(1),
                ack: seq.wrapping_add(1),
                flags: tcp_flags::ACK,
                ..self.segment_to_rs(&f, &orig)
            };
            return self.send_segment(buf, &seg, None);
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
            return self.send_segment(buf, &seg, None);
        }
        Err(DropReason::SynProxyPending)
    }
}
