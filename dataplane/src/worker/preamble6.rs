//! Step 8 for an IPv6 session whose service tells the RS who the client is, as
//! [`super::preamble`] does it for IPv4: a PROXY protocol header (`TCP6`, `AF_INET6`) ahead
//! of the client's first data with the sequence numbers moved both ways, a UDP flow's v2
//! header once, or TOA (kind 254, length 20: the port and the IPv6 address). The header names
//! the IPv6 client and VIP whatever the RS is: NAT64's goes into the translated IPv4 segment
//! ([`Out6::V4`]), FullNAT66's and NAT66's into the IPv6 one ([`Out6::V6`]).
//!
//! An IPv6 session keeps the low 24 bits of the client's first data byte
//! ([`Forward6::first_seq`]); the whole number is found again near the segment at hand
//! ([`proxy_protocol::near24`]): only segments around the header's place need it, and only
//! until the RS acknowledges the header. From then on every segment moves by the header's
//! length (acknowledged, it cannot be needed again).

use super::service6::{local6, Forward6, Via6};
use super::session::{Phase, SynProxy};
use super::tx::Emit;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmpv6;
use crate::local::{self, TcpSegment, TcpSegment6, L2_ROOM};
use crate::parse::Ipv6Meta;
use crate::proxy_protocol::{self as pp, Carrier, Ends6};
use crate::rewrite;
use crate::synproxy::Shift;
use crate::wire::be32;
use crate::wire::tcp::{self, flags as tcp_flags};
use conntrack::{Dir, FlowKey6, SessionId};

/// The packet a header step works on: the one that leaves toward the RS, or the RS's that
/// comes back, before its addresses change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Out6 {
    /// FullNAT66 and NAT66: an IPv6 packet, its TCP or UDP header at this offset.
    V6 {
        /// The L4 header's offset (extension headers included).
        l4_off: usize,
    },
    /// NAT64: the IPv4 packet (translated toward the RS, or the RS's reply), its header this
    /// long.
    V4 {
        /// The IPv4 header's length.
        header_len: usize,
    },
}

impl Out6 {
    #[inline]
    fn l4(self) -> usize {
        match self {
            Out6::V6 { l4_off } => l4_off,
            Out6::V4 { header_len } => header_len,
        }
    }

    fn payload_len(self, pkt: &[u8]) -> usize {
        match self {
            Out6::V6 { l4_off } => pp::payload_len6(pkt, l4_off),
            Out6::V4 { header_len } => pp::payload_len(pkt, header_len),
        }
        .unwrap_or(0)
    }

    fn insert<B: PacketBuf>(self, buf: &mut B, l3: usize, total: usize, h: &[u8]) -> bool {
        match self {
            Out6::V6 { l4_off } => pp::insert6(buf, l3, l4_off, total, h),
            Out6::V4 { header_len } => pp::insert(buf, l3, header_len, total, h),
        }
    }

    fn insert_option<B: PacketBuf>(self, buf: &mut B, l3: usize, total: usize, o: &[u8]) -> bool {
        match self {
            Out6::V6 { l4_off } => pp::insert_option6(buf, l3, l4_off, total, o),
            Out6::V4 { header_len } => pp::insert_option(buf, l3, header_len, total, o),
        }
    }

    fn insert_udp<B: PacketBuf>(self, buf: &mut B, l3: usize, total: usize, h: &[u8]) -> bool {
        match self {
            Out6::V6 { l4_off } => pp::insert_udp6(buf, l3, l4_off, total, h),
            Out6::V4 { header_len } => pp::insert_udp(buf, l3, header_len, total, h),
        }
    }
}

/// Where a step's packet goes: the egress MTU and how a segment of the director's own gets
/// there.
#[derive(Clone, Copy, Debug)]
pub(super) enum Toward6 {
    /// An IPv6 hop.
    V6(crate::snapshot::Hop6),
    /// An IPv4 hop (NAT64).
    V4(crate::snapshot::Hop),
}

impl Toward6 {
    fn iface(self) -> u16 {
        match self {
            Toward6::V6(h) => h.iface,
            Toward6::V4(h) => h.iface,
        }
    }
}

impl<D: Device> Worker<D> {
    /// The header step of IPv6 session `id`'s TCP segment (`flags`) at `l3` in `buf`,
    /// `total` bytes as `out` says, going in `dir` (toward the RS over `hop`), before its
    /// addresses change. Returns its total length, grown when the header or the option went
    /// into it.
    ///
    /// # Errors
    /// [`DropReason::NoBuffer`] if the header must go as a segment of its own and no buffer
    /// is left for it (the client's retransmission tries again).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn preamble6(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        (l3, total, out): (usize, usize, Out6),
        flags: u8,
        f: &Forward6,
        orig: &FlowKey6,
        hop: Toward6,
    ) -> Result<usize, DropReason> {
        let version = match f.preamble().carrier() {
            Some(Carrier::Proxy(v)) => v,
            Some(Carrier::Toa) => {
                return Ok(self.toa6(id, dir, buf, (l3, total, out), flags, f, orig, hop))
            }
            None => return Ok(total),
        };
        let ends = Ends6::of(orig);
        let n = pp::len6(version, &ends) as u32;
        let (phase, l4) = (f.preamble().phase(), out.l4());
        let end = l3 + total;
        match dir {
            Dir::Original => {
                if flags & tcp_flags::SYN != 0 {
                    return Ok(total);
                }
                let pkt = &buf.data()[l3..end];
                let seq = be32(pkt, l4 + tcp::field::SEQ);
                if phase == Phase::Done {
                    rewrite::shift_tcp(&mut buf.data_mut()[l3..end], l4, n, 0);
                    return Ok(total);
                }
                let base = pp::near24(seq, f.first_seq());
                if seq == base && (out.payload_len(pkt) > 0 || flags & tcp_flags::FIN != 0) {
                    let mut hb = [0u8; pp::MAX_LEN6];
                    let hn = pp::write6(version, &ends, &mut hb);
                    let h = &hb[..hn];
                    let mtu = usize::from(self.snap.iface(hop.iface()).mtu);
                    if total + h.len() <= mtu && out.insert(buf, l3, total, h) {
                        self.header_sent6(id, phase);
                        return Ok(total + h.len());
                    }
                    self.header_segment6(id, buf, (l3, out), f, orig, (base, h), hop)?;
                    self.header_sent6(id, phase);
                }
                if pp::at_or_after(seq, base) {
                    rewrite::shift_tcp(&mut buf.data_mut()[l3..end], l4, n, 0);
                }
            }
            Dir::Reply => {
                if flags & tcp_flags::ACK == 0 {
                    return Ok(total);
                }
                let pkt = &mut buf.data_mut()[l3..end];
                let ack = be32(pkt, l4 + tcp::field::ACK);
                let (done, first) = (phase == Phase::Done, f.first_seq());
                let map = |a: u32| {
                    if done {
                        a.wrapping_sub(n)
                    } else {
                        pp::ack_to_client(a, pp::near24(a, first), n)
                    }
                };
                rewrite::shift_tcp(pkt, l4, 0, map(ack).wrapping_sub(ack));
                pp::map_sack(pkt, l4, map);
                let past = ack.wrapping_sub(pp::near24(ack, first));
                if !done && past >= n && past < 1 << 31 {
                    self.set_phase6(id, Phase::Done);
                    self.counters.count(Counter::ProxyHeadersAcked);
                }
            }
        }
        Ok(total)
    }

    /// An IPv6 UDP flow's v2 header (`AF_INET6`, `DGRAM`), once, in front of the payload of
    /// the first datagram toward the RS (at `l3`, `total` bytes as `out` says), which has
    /// room for it under the egress MTU (the caller checked). Returns its total length.
    ///
    /// # Errors
    /// [`DropReason::NoHeadroom`] if the buffer has no room for the header.
    pub(super) fn udp_header6(
        &mut self,
        id: SessionId,
        buf: &mut D::Buf,
        (l3, total, out): (usize, usize, Out6),
        f: &Forward6,
        orig: &FlowKey6,
    ) -> Result<usize, DropReason> {
        if f.preamble().phase() == Phase::Done {
            return Ok(total);
        }
        let mut hb = [0u8; pp::MAX_LEN6];
        let hn = pp::write_udp6(&Ends6::of(orig), &mut hb);
        if !out.insert_udp(buf, l3, total, &hb[..hn]) {
            return Err(DropReason::NoHeadroom);
        }
        self.set_phase6(id, Phase::Done);
        self.counters.count(Counter::ProxyHeadersSent);
        Ok(total + hn)
    }

    /// Whether the first datagram of IPv6 session `f`'s UDP flow (`len` bytes once it leaves,
    /// before the header) has no room for its v2 header under `mtu`: then the client gets a
    /// Packet Too Big about its datagram (`meta` at `l3`) naming the room left, `grow` (what
    /// the datagram gains leaving: NAT64's translation shrinks it) taken back, and the
    /// datagram is dropped (the next one carries the header).
    pub(super) fn udp_too_big6(
        &mut self,
        buf: &D::Buf,
        (l3, meta): (usize, &Ipv6Meta),
        f: &Forward6,
        (len, mtu, shrink): (usize, usize, usize),
    ) -> bool {
        let proxied = matches!(f.preamble().carrier(), Some(Carrier::Proxy(_)));
        if !proxied || f.preamble().phase() == Phase::Done || len + pp::V2_TCP6_LEN <= mtu {
            return false;
        }
        let room = ((mtu + shrink - pp::V2_TCP6_LEN) as u32).max(crate::nat64::IPV6_MIN_MTU);
        self.icmpv6_error_back(buf, l3, meta, (icmpv6::PACKET_TOO_BIG, 0, room));
        true
    }

    /// TOA for an IPv6 client: option 254 of length 20 (the port, the 16-byte address) in
    /// the segments toward the RS that start at the client's first data byte, until the RS
    /// acknowledges data, as IPv4's. Returns the segment's total length.
    #[allow(clippy::too_many_arguments)]
    fn toa6(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        (l3, total, out): (usize, usize, Out6),
        flags: u8,
        f: &Forward6,
        orig: &FlowKey6,
        hop: Toward6,
    ) -> usize {
        let (phase, l4, first) = (f.preamble().phase(), out.l4(), f.first_seq());
        if phase == Phase::Done {
            return total;
        }
        let pkt = &buf.data()[l3..l3 + total];
        match dir {
            Dir::Original => {
                let seq = be32(pkt, l4 + tcp::field::SEQ);
                if flags & (tcp_flags::SYN | tcp_flags::RST) != 0 || seq & 0xff_ffff != first {
                    return total;
                }
                let opt = pp::toa_option6((orig.src, orig.sport));
                let mtu = usize::from(self.snap.iface(hop.iface()).mtu);
                if total + opt.len() <= mtu && out.insert_option(buf, l3, total, &opt) {
                    self.counters.count(Counter::ToaInserted);
                    if phase == Phase::Pending {
                        self.set_phase6(id, Phase::Sent);
                    }
                    return total + opt.len();
                }
                self.counters.count(Counter::ToaNoRoom);
            }
            Dir::Reply => {
                let ack = be32(pkt, l4 + tcp::field::ACK);
                let past = ack.wrapping_sub(pp::near24(ack, first));
                if flags & tcp_flags::ACK != 0 && past > 0 && past < 1 << 31 {
                    self.set_phase6(id, Phase::Done);
                }
            }
        }
        total
    }

    /// The header went out (again, for a retransmission of the first data).
    fn header_sent6(&mut self, id: SessionId, phase: Phase) {
        if phase == Phase::Pending {
            self.set_phase6(id, Phase::Sent);
            self.counters.count(Counter::ProxyHeadersSent);
        } else {
            self.counters.count(Counter::ProxyHeadersResent);
        }
    }

    fn set_phase6(&mut self, id: SessionId, phase: Phase) {
        if let Some(d) = self.table6.data_mut(id) {
            d.set_preamble(d.preamble().at(phase));
        }
        self.sync_changed6(id);
    }

    /// Sends the header `h` as a segment of its own toward the RS at `base` (the client's
    /// first data byte), ahead of the client's segment at `l3` in `buf` (its
    /// acknowledgement and window), in the RS's addresses: IPv6 from the LIP (FullNAT66) or
    /// the client (NAT66), IPv4 from the IPv4 LIP (NAT64).
    #[allow(clippy::too_many_arguments)]
    fn header_segment6(
        &mut self,
        id: SessionId,
        buf: &D::Buf,
        (l3, out): (usize, Out6),
        f: &Forward6,
        orig: &FlowKey6,
        (base, h): (u32, &[u8]),
        hop: Toward6,
    ) -> Result<(), DropReason> {
        let t = &buf.data()[l3 + out.l4()..];
        let (ack, window) = (
            be32(t, tcp::field::ACK),
            u16::from_be_bytes([t[tcp::field::WINDOW], t[tcp::field::WINDOW + 1]]),
        );
        // A SYN-proxied session's client acknowledges in the cookie's space.
        let ack = match f.synproxy() {
            SynProxy::On => Shift(self.proxy_words6[id.index()]).to_rs(ack),
            _ => ack,
        };
        let port = self.snap.iface(hop.iface()).port;
        let Some(mut b) = self.tx.ports[usize::from(port)].alloc() else {
            return Err(DropReason::NoBuffer);
        };
        let flags = tcp_flags::ACK | tcp_flags::PSH;
        let emit = match (hop, f.via) {
            (Toward6::V4(hop), Via6::Nat64 { lip, lport, .. }) => {
                let seg = TcpSegment {
                    src: lip,
                    dst: f.rip.to_ipv4_mapped().ok_or(DropReason::NoRoute)?,
                    sport: lport,
                    dport: f.rport,
                    seq: base,
                    ack,
                    flags,
                    window,
                    mss: None,
                    ident: self.next_ident(),
                };
                if !local::write_tcp_data(&mut b, &seg, h) {
                    return Err(DropReason::NoBuffer);
                }
                Emit::route(b, L2_ROOM, hop)
            }
            (Toward6::V6(hop), _) => {
                let (src, sport) = local6(&self.lips6, f).unwrap_or((orig.src, orig.sport));
                let seg = TcpSegment6 {
                    src,
                    dst: f.rip,
                    sport,
                    dport: f.rport,
                    seq: base,
                    ack,
                    flags,
                    window,
                    mss: None,
                };
                if !local::write_tcp6_data(&mut b, &seg, h) {
                    return Err(DropReason::NoBuffer);
                }
                Emit::route6(b, L2_ROOM, hop)
            }
            (Toward6::V4(_), _) => return Err(DropReason::NoRoute),
        };
        self.counters.count(Counter::ProxyHeaderSegments);
        self.settle(Ok(emit));
        Ok(())
    }
}
