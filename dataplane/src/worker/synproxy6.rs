//! The SYN proxy for IPv6 services (NAT66 and FullNAT66), as [`super::synproxy`] does it for
//! IPv4: the client's SYN answered from the VIP with a cookie over the IPv6 4-tuple and no
//! state kept, the session opened by an ACK whose cookie checks, the director's SYN to the
//! RS, and the RS's SYN/ACK joining the halves. The IPv6 table's per-session words
//! (`proxy_words6`) hold the client's initial sequence number, then the [`Shift`].
//!
//! [`Shift`]: crate::synproxy::Shift

use super::service6::{Forward6, Via6};
use super::session::{is_active, SynProxy};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmpv6;
use crate::local::{self, TcpSegment, TcpSegment6, L2_ROOM};
use crate::parse::{Ipv4Meta, Ipv6Meta, IPV6_HEADER_LEN, L4};
use crate::synproxy::{self, CookieInfo};
use crate::wire::be32;
use crate::wire::tcp::{self, flags as tcp_flags};
use conntrack::{Dir, FlowKey6, SessionId, TcpEvent};

impl<D: Device> Worker<D> {
    /// A TCP packet `key` for IPv6 service `si`, which proxies its handshake, without a
    /// session: a SYN is answered with a cookie from the VIP (no state kept); an ACK whose
    /// cookie checks opens the session and sends the RS a SYN with the client's sequence
    /// number and MSS; anything else has no session.
    pub(super) fn synproxy_new6(
        &mut self,
        si: usize,
        key: FlowKey6,
        mut buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
    ) -> Verdict<D::Buf> {
        let L4::Tcp { flags, .. } = meta.l4 else {
            return Err(DropReason::NoSession);
        };
        let seg = &buf.data()[l3 + usize::from(meta.l4_off)..l3 + meta.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        let core = flags & tcp_flags::HANDSHAKE;
        if core == tcp_flags::SYN {
            let mss = synproxy::syn_mss(seg).unwrap_or(synproxy::MSS_TABLE[0]);
            let cookie = self.cookies.make(&key, seq, mss, self.now);
            // Back toward the client as the director's other IPv6 answers go.
            let hop = self.snap.route6(key.src).ok_or(DropReason::NoRoute)?;
            let room = IPV6_HEADER_LEN + tcp::HEADER_LEN;
            let ours = usize::from(self.snap.iface(hop.iface).mtu).saturating_sub(room);
            let seg = TcpSegment6 {
                src: key.dst,
                dst: key.src,
                sport: key.dport,
                dport: key.sport,
                seq: cookie,
                ack: seq.wrapping_add(1),
                flags: tcp_flags::SYN | tcp_flags::ACK,
                window: u16::MAX,
                mss: Some(ours.min(usize::from(synproxy::MSS_TABLE[3])) as u16),
            };
            if !local::write_tcp6(&mut buf, &seg) {
                return Err(DropReason::NoBuffer);
            }
            self.counters.count(Counter::SynproxyCookies);
            return Ok(Emit::route6(buf, L2_ROOM, hop));
        }
        if core != tcp_flags::ACK {
            return Err(DropReason::NoSession);
        }
        let isn = seq.wrapping_sub(1);
        let Some(info) = self.cookies.check(&key, isn, ack.wrapping_sub(1), self.now) else {
            return Err(DropReason::BadCookie);
        };
        // The client's first data byte follows its ISN, as its ACK says.
        let id = match self.open6(si, key, meta, (SynProxy::Pending(info), seq)) {
            Ok(id) => id,
            Err(DropReason::TtlExceeded) => {
                self.icmpv6_error_back(&buf, l3, meta, (icmpv6::TIME_EXCEEDED, 0, 0));
                return Err(DropReason::TtlExceeded);
            }
            Err(e) => return Err(e),
        };
        self.proxy_words6[id.index()] = isn;
        self.table6
            .on_packet(id, Dir::Original, Some(TcpEvent::Syn), self.now);
        self.counters.count(Counter::SynproxyOpened);
        self.proxy_syn6(id, buf)
    }

    /// Sends proxied IPv6 session `id`'s SYN to its RS in `buf` (the client's packet that
    /// caused it).
    fn proxy_syn6(&mut self, id: SessionId, buf: D::Buf) -> Verdict<D::Buf> {
        let Some(s) = self.table6.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let SynProxy::Pending(info) = f.synproxy() else {
            return Err(DropReason::NoSession);
        };
        let seq = self.proxy_words6[id.index()];
        let mss = Some(synproxy::MSS_TABLE[usize::from(info.mss)]);
        self.segment_to_rs6(buf, &f, &orig, (seq, 0, tcp_flags::SYN, mss))
    }

    /// Sends the segment (`seq`, `ack`, `flags`, the MSS option) from the client's side of
    /// `f`'s session to its RS, as the RS sees that side: from the LIP in FullNAT66, the
    /// client in NAT66; in NAT64 an IPv4 segment from the IPv4 LIP.
    fn segment_to_rs6(
        &mut self,
        buf: D::Buf,
        f: &Forward6,
        orig: &FlowKey6,
        (seq, ack, flags, mss): (u32, u32, u8, Option<u16>),
    ) -> Verdict<D::Buf> {
        if let Via6::Nat64 { lip, lport, .. } = f.via {
            let rip = f.rip.to_ipv4_mapped().ok_or(DropReason::NoRoute)?;
            let seg = TcpSegment {
                src: lip,
                dst: rip,
                sport: lport,
                dport: f.rport,
                seq,
                ack,
                flags,
                window: u16::MAX,
                mss,
                ident: self.next_ident(),
            };
            return self.send_segment(buf, &seg, None);
        }
        let (src, sport) =
            super::service6::local6(&self.lips6, f).unwrap_or((orig.src, orig.sport));
        let seg = TcpSegment6 {
            src,
            dst: f.rip,
            sport,
            dport: f.rport,
            seq,
            ack,
            flags,
            window: u16::MAX,
            mss,
        };
        self.send_segment6(buf, &seg)
    }

    /// Writes `seg` into `buf` and routes it toward its destination.
    fn send_segment6(&mut self, mut buf: D::Buf, seg: &TcpSegment6) -> Verdict<D::Buf> {
        let hop = self.snap.route6(seg.dst).ok_or(DropReason::NoRoute)?;
        if !local::write_tcp6(&mut buf, seg) {
            return Err(DropReason::NoBuffer);
        }
        Ok(Emit::route6(buf, L2_ROOM, hop))
    }

    /// A packet of a proxied IPv6 session whose RS has not answered the director's SYN yet,
    /// as [`Worker::synproxy_pending`] for IPv4: from the client, the SYN goes again; the
    /// RS's SYN/ACK joins the halves (the shift recorded, the RS's handshake completed with
    /// an ACK, the session ESTABLISHED); its RST resets the client's connection. Anything
    /// else waits (dropped and counted).
    pub(super) fn synproxy_pending6(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        info: CookieInfo,
    ) -> Verdict<D::Buf> {
        let L4::Tcp { flags, .. } = meta.l4 else {
            return Err(DropReason::SynProxyPending);
        };
        if dir == Dir::Original {
            if flags & (tcp_flags::SYN | tcp_flags::RST | tcp_flags::FIN) != 0 {
                return Err(DropReason::SynProxyPending);
            }
            self.counters.count(Counter::SynproxySynRetries);
            return self.proxy_syn6(id, buf);
        }
        let seg = &buf.data()[l3 + usize::from(meta.l4_off)..l3 + meta.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        self.synproxy_answer6(id, buf, (flags, seq, ack), info)
    }

    /// A NAT64 proxied session's packet from its RS (IPv4, header at `l3`) while the RS has
    /// not answered the director's SYN: as [`Worker::synproxy_pending6`]'s RS side.
    pub(super) fn synproxy_pending64(
        &mut self,
        id: SessionId,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        info: CookieInfo,
    ) -> Verdict<D::Buf> {
        let L4::Tcp { flags, .. } = m.l4 else {
            return Err(DropReason::SynProxyPending);
        };
        let seg = &buf.data()[l3 + m.header_len..l3 + m.total_len];
        let (seq, ack) = (be32(seg, tcp::field::SEQ), be32(seg, tcp::field::ACK));
        self.synproxy_answer6(id, buf, (flags, seq, ack), info)
    }

    /// The RS's answer (`flags`, `seq`, `ack`) to the director's SYN of proxied IPv6 session
    /// `id`: a SYN/ACK joins the halves, a RST resets the client, anything else waits.
    fn synproxy_answer6(
        &mut self,
        id: SessionId,
        buf: D::Buf,
        (flags, seq, ack): (u8, u32, u32),
        info: CookieInfo,
    ) -> Verdict<D::Buf> {
        let Some(s) = self.table6.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let isn = self.proxy_words6[id.index()];
        let core = flags & tcp_flags::HANDSHAKE;
        let now = self.now;
        if core == tcp_flags::SYN | tcp_flags::ACK && ack == isn.wrapping_add(1) {
            let cookie = self.cookies.remake(&orig, isn, info, now);
            self.proxy_words6[id.index()] = seq.wrapping_sub(cookie);
            if let Some(d) = self.table6.data_mut(id) {
                d.set_synproxy(SynProxy::On);
            }
            // The RS's SYN/ACK, then the ACK the director sends for the client.
            self.table6
                .on_packet(id, Dir::Reply, Some(TcpEvent::Syn), now);
            if let Some(state) = self
                .table6
                .on_packet(id, Dir::Original, Some(TcpEvent::Ack), now)
            {
                self.stats
                    .session_moved(u32::from(f.slot), false, is_active(state));
            }
            self.counters.count(Counter::SynproxyJoined);
            self.sync_changed6(id);
            let answer = (
                isn.wrapping_add(1),
                seq.wrapping_add(1),
                tcp_flags::ACK,
                None,
            );
            return self.segment_to_rs6(buf, &f, &orig, answer);
        }
        if flags & tcp_flags::RST != 0 {
            // The RS refused: the client's connection is reset where it stands.
            let cookie = self.cookies.remake(&orig, isn, info, now);
            self.table6
                .on_packet(id, Dir::Reply, Some(TcpEvent::Rst), now);
            let seg = TcpSegment6 {
                src: orig.dst,
                dst: orig.src,
                sport: orig.dport,
                dport: orig.sport,
                seq: cookie.wrapping_add(1),
                ack: 0,
                flags: tcp_flags::RST,
                window: 0,
                mss: None,
            };
            return self.send_segment6(buf, &seg);
        }
        Err(DropReason::SynProxyPending)
    }
}
