//! Step 8 for a session whose service sends a PROXY protocol header
//! ([`crate::proxy_protocol`]): the header goes ahead of the client's first data, and the
//! sequence numbers move between the client's space and the RS's, where the header takes
//! the first `n` bytes.
//!
//! - **Client → RS.** A segment that starts at the client's first data byte
//!   ([`Forward::first_seq`]) and carries data or a FIN gets the header inserted in front of
//!   its payload, as long as the header is not acknowledged: a retransmission of the first
//!   data carries it again (the bytes are the same, so an RS that had them only sees a
//!   duplicate). If the grown segment would exceed the egress MTU, or the buffer has no room
//!   for it, the header goes as a segment of its own just before. Every other segment from
//!   the first byte on is moved `n` bytes later (the SYN, before it, is not).
//! - **RS → client.** Its acknowledgement and SACK edges move `n` bytes earlier; while the
//!   header is not acknowledged, any of them within the header falls on the first byte (the
//!   client's data is not acknowledged by a header half received). The first one beyond the
//!   header marks it acknowledged ([`Phase::Done`]); from then on no segment gets it again
//!   (sequence numbers wrap after 4 GiB).
//!
//! Phase changes are noted for session sync, which carries the header's state, so a session
//! that moves to a peer neither loses nor repeats it.

use super::session::{Forward, Phase, SynProxy};
use super::tx::Emit;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::local::{self, TcpSegment, L2_ROOM};
use crate::parse::{Ipv4Meta, L4};
use crate::proxy_protocol::{self, Carrier, Ends};
use crate::rewrite;
use crate::snapshot::Hop;
use crate::synproxy::Shift;
use crate::wire::be32;
use crate::wire::tcp::{self, flags as tcp_flags};
use conntrack::{Dir, FlowKey, SessionId};

impl<D: Device> Worker<D> {
    /// The header step of session `id`'s TCP segment `m` (at `l3` in `buf`, going in `dir`,
    /// out over `hop`), before its addresses are rewritten. Returns the segment's total
    /// length, grown when the header went into it.
    ///
    /// # Errors
    /// [`DropReason::NoBuffer`] if the header must go as a segment of its own and no buffer
    /// is left for it (the client's retransmission tries again).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn preamble(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        f: &Forward,
        orig: &FlowKey,
        hop: Hop,
    ) -> Result<usize, DropReason> {
        let flags = match (f.preamble.carrier(), m.l4) {
            (Some(_), L4::Tcp { flags, .. }) => flags,
            (Some(Carrier::Proxy(_)), L4::Udp { .. }) => {
                return self.udp_header(id, dir, buf, l3, m, f, orig, hop)
            }
            _ => return Ok(m.total_len),
        };
        let Some(carrier) = f.preamble.carrier() else {
            return Ok(m.total_len);
        };
        let version = match carrier {
            Carrier::Proxy(v) => v,
            Carrier::Toa => return Ok(self.toa(id, dir, buf, l3, m, f, orig, hop, flags)),
        };
        let ends = Ends::of(orig);
        let n = proxy_protocol::len(version, &ends) as u32;
        let (base, phase, hl) = (f.first_seq, f.preamble.phase(), m.header_len);
        let end = l3 + m.total_len;
        match dir {
            Dir::Original => {
                if flags & tcp_flags::SYN != 0 {
                    return Ok(m.total_len);
                }
                let pkt = &buf.data()[l3..end];
                let seq = be32(pkt, hl + tcp::field::SEQ);
                let payload = proxy_protocol::payload_len(pkt, hl).unwrap_or(0);
                if phase != Phase::Done
                    && seq == base
                    && (payload > 0 || flags & tcp_flags::FIN != 0)
                {
                    let mut hb = [0u8; proxy_protocol::MAX_LEN];
                    let hn = proxy_protocol::write(version, &ends, &mut hb);
                    let h = &hb[..hn];
                    let mtu = usize::from(self.snap.iface(hop.iface).mtu);
                    let fits = m.total_len + h.len() <= mtu;
                    if fits && proxy_protocol::insert(buf, l3, hl, m.total_len, h) {
                        self.header_sent(id, phase);
                        return Ok(m.total_len + h.len());
                    }
                    self.header_segment(id, buf, l3, m, f, orig, h, hop)?;
                    self.header_sent(id, phase);
                }
                if proxy_protocol::at_or_after(seq, base) {
                    rewrite::shift_tcp(&mut buf.data_mut()[l3..end], hl, n, 0);
                }
            }
            Dir::Reply => {
                if flags & tcp_flags::ACK == 0 {
                    return Ok(m.total_len);
                }
                let pkt = &mut buf.data_mut()[l3..end];
                let ack = be32(pkt, hl + tcp::field::ACK);
                let done = phase == Phase::Done;
                let map = |a: u32| {
                    if done {
                        a.wrapping_sub(n)
                    } else {
                        proxy_protocol::ack_to_client(a, base, n)
                    }
                };
                rewrite::shift_tcp(pkt, hl, 0, map(ack).wrapping_sub(ack));
                proxy_protocol::map_sack(pkt, hl, map);
                let past = ack.wrapping_sub(base);
                if !done && past >= n && past < 1 << 31 {
                    self.set_phase(id, Phase::Done);
                    self.counters.count(Counter::ProxyHeadersAcked);
                }
            }
        }
        Ok(m.total_len)
    }

    /// A UDP flow's v2 header, once: in front of the payload of the first datagram toward the
    /// RS (`DGRAM`), after which the flow is [`Phase::Done`]; nothing else changes, in either
    /// direction. A first datagram that the header would make too big for the egress MTU is
    /// dropped (`too_big`, with an ICMP fragmentation needed giving the room left when DF is
    /// set) and the next one tries again.
    #[allow(clippy::too_many_arguments)]
    fn udp_header(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        f: &Forward,
        orig: &FlowKey,
        hop: Hop,
    ) -> Result<usize, DropReason> {
        if dir != Dir::Original || f.preamble.phase() == Phase::Done {
            return Ok(m.total_len);
        }
        let ends = Ends::of(orig);
        let mut hb = [0u8; proxy_protocol::MAX_LEN];
        let hn = proxy_protocol::write_udp(&ends, &mut hb);
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        if m.total_len + hn > mtu {
            if m.dont_frag {
                let room = (mtu - hn) as u32;
                self.icmp_error_back(buf, l3, m, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, room);
            }
            return Err(DropReason::TooBig);
        }
        if !proxy_protocol::insert_udp(buf, l3, m.header_len, m.total_len, &hb[..hn]) {
            return Err(DropReason::NoHeadroom);
        }
        self.set_phase(id, Phase::Done);
        self.counters.count(Counter::ProxyHeadersSent);
        Ok(m.total_len + hn)
    }

    /// TOA: the client's address and port in TCP option 254 of the segments toward the RS
    /// that start at the client's first data byte (the handshake's ACK, the first data and
    /// their retransmissions), until the RS acknowledges data; where the option does not fit
    /// (TCP header at 60 bytes, the MTU, the buffer) the segment goes without it, counted.
    /// Nothing moves in sequence space. Returns the segment's total length.
    #[allow(clippy::too_many_arguments)]
    fn toa(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        f: &Forward,
        orig: &FlowKey,
        hop: Hop,
        flags: u8,
    ) -> usize {
        let (phase, hl) = (f.preamble.phase(), m.header_len);
        if phase == Phase::Done {
            return m.total_len;
        }
        let pkt = &buf.data()[l3..l3 + m.total_len];
        match dir {
            Dir::Original => {
                if flags & (tcp_flags::SYN | tcp_flags::RST) != 0
                    || be32(pkt, hl + tcp::field::SEQ) != f.first_seq
                {
                    return m.total_len;
                }
                let opt = proxy_protocol::toa_option((orig.src, orig.sport));
                let mtu = usize::from(self.snap.iface(hop.iface).mtu);
                if m.total_len + opt.len() <= mtu
                    && proxy_protocol::insert_option(buf, l3, hl, m.total_len, &opt)
                {
                    self.counters.count(Counter::ToaInserted);
                    if phase == Phase::Pending {
                        self.set_phase(id, Phase::Sent);
                    }
                    return m.total_len + opt.len();
                }
                self.counters.count(Counter::ToaNoRoom);
            }
            Dir::Reply => {
                let past = be32(pkt, hl + tcp::field::ACK).wrapping_sub(f.first_seq);
                if flags & tcp_flags::ACK != 0 && past > 0 && past < 1 << 31 {
                    self.set_phase(id, Phase::Done);
                }
            }
        }
        m.total_len
    }

    /// The header went out (again, for a retransmission of the first data).
    fn header_sent(&mut self, id: SessionId, phase: Phase) {
        if phase == Phase::Pending {
            self.set_phase(id, Phase::Sent);
            self.counters.count(Counter::ProxyHeadersSent);
        } else {
            self.counters.count(Counter::ProxyHeadersResent);
        }
    }

    fn set_phase(&mut self, id: SessionId, phase: Phase) {
        if let Some(d) = self.table.data_mut(id) {
            d.preamble = d.preamble.at(phase);
        }
        self.sync_changed(id);
    }

    /// Sends the header `h` as a segment of its own toward the RS, ahead of the client's
    /// segment `m` (its acknowledgement and window), already in the RS's addresses.
    #[allow(clippy::too_many_arguments)]
    fn header_segment(
        &mut self,
        id: SessionId,
        buf: &D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        f: &Forward,
        orig: &FlowKey,
        h: &[u8],
        hop: Hop,
    ) -> Result<(), DropReason> {
        let t = &buf.data()[l3 + m.header_len..l3 + m.total_len];
        let (ack, window) = (
            be32(t, tcp::field::ACK),
            u16::from_be_bytes([t[tcp::field::WINDOW], t[tcp::field::WINDOW + 1]]),
        );
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[usize::from(port)].alloc() else {
            return Err(DropReason::NoBuffer);
        };
        // A SYN-proxied session's client acknowledges in the cookie's space.
        let ack = match f.synproxy {
            SynProxy::On => Shift(self.proxy_words[id.index()]).to_rs(ack),
            _ => ack,
        };
        let seg = TcpSegment {
            seq: f.first_seq,
            ack,
            flags: tcp_flags::ACK | tcp_flags::PSH,
            window,
            ..self.segment_to_rs(f, orig)
        };
        if !local::write_tcp_data(&mut b, &seg, h) {
            return Err(DropReason::NoBuffer);
        }
        self.counters.count(Counter::ProxyHeaderSegments);
        self.settle(Ok(Emit::route(b, L2_ROOM, hop)));
        Ok(())
    }
}
