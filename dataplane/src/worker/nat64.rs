//! NAT64 sessions (an IPv6 service's IPv4 FullNAT dests): the client's IPv6 packets leave
//! translated to IPv4 from an IPv4 LIP toward the RS, the RS's IPv4 replies to that LIP come
//! back translated to IPv6 from the VIP ([`crate::nat64`]). The session lives in the IPv6
//! table; its reply key holds the RS and the LIP IPv4-mapped, which is how an IPv4 packet to
//! a LIP that no IPv4 session takes finds it. Both ways the packet is routed: hop limit or
//! TTL checked and decremented, the egress MTU respected (a translated packet grows or
//! shrinks by 20 bytes, and the errors sent back say so: Packet Too Big to the client names
//! the IPv4 room plus 20, never under 1280; fragmentation needed to the RS names the IPv6
//! room less 20). ICMP errors about a session's packets cross over too: an IPv4 router's
//! error about a packet toward the RS reaches the client as the ICMPv6 error RFC 7915 maps
//! it to, about the client's own packet; an ICMPv6 error about a reply reaches the RS as
//! ICMPv4 about the reply it sent — so path-MTU discovery works through the translation.
//! Fragments of a session's datagrams cross as fragments: the client's leave as IPv4
//! fragments with a fresh identification per datagram (the fragment table notes it), the RS's
//! come back as IPv6 fragments; an RS's packet without DF that no longer fits the IPv6 side
//! (a fragment, or a whole packet) is cut into IPv6 fragments that do (RFC 7915 4).

use super::forward::shift_proxied;
use super::icmp6::shift_quoted_tcp6;
use super::preamble6::{Out6, Toward6};
use super::service6::{shift_proxied6, Forward6, Via6};
use super::session::{tcp_event, Phase, SynProxy};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::icmpv6;
use crate::local::{self, IcmpError, L2_ROOM};
use crate::nat64::{self, Piece, To4};
use crate::parse::{Ipv4Meta, Ipv6Fragment, Ipv6Meta, IPV6_HEADER_LEN, L4};
use crate::proxy_protocol;
use crate::snapshot::Hop;
use crate::synproxy::Shift;
use crate::wire::IPV4_MIN_HEADER_LEN;
use arrayvec::ArrayVec;
use conntrack::{Dir, FlowKey, FlowKey6, Proto, SessionId, TcpEvent};
use core::net::Ipv4Addr;

/// The room for a translated quote: an ICMPv6 error's whole quote (RFC 4443 2.4 (c)).
const QUOTE6_MAX: usize = icmpv6::ERROR_MAX - IPV6_HEADER_LEN - 8;

/// The most IPv6 fragments one IPv4 packet is cut into (a 9000-byte frame onto a 1280-byte
/// link).
const MAX_FRAGMENTS6: usize = 8;

/// An ICMPv4 error quotes the IP header and 8 bytes of the packet (RFC 792).
const QUOTE4_MAX: usize = IPV4_MIN_HEADER_LEN + 8;

/// The IPv6 session key of an IPv4 flow: its addresses IPv4-mapped (a NAT64 reply key).
#[inline]
pub(super) fn mapped_key(k: &FlowKey) -> FlowKey6 {
    FlowKey6::new(
        k.proto,
        nat64::mapped(k.src),
        k.sport,
        nat64::mapped(k.dst),
        k.dport,
    )
}

/// The IPv4 RS of a NAT64 session (kept IPv4-mapped).
#[inline]
fn rs4(f: &Forward6) -> Option<Ipv4Addr> {
    f.rip.to_ipv4_mapped()
}

impl<D: Device> Worker<D> {
    /// The client's packet of NAT64 session `id` (TCP `event`), its IPv6 header at `l3`:
    /// translated to IPv4 from `lip`:`lport` toward the RS and routed there.
    pub(super) fn nat64_out(
        &mut self,
        id: SessionId,
        event: Option<TcpEvent>,
        mut buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (lip, lport): (Ipv4Addr, u16),
    ) -> Verdict<D::Buf> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, tcp, before) = (s.data, s.original.proto == Proto::Tcp, s.state);
        let (rip, hop, mtu, shrink) = self.nat64_route_out(&buf, l3, meta, &f)?;
        let l4_off = usize::from(meta.l4_off);
        if f.preamble().is_on() && !tcp && self.udp_too_big64(id, &buf, (l3, meta), (mtu, shrink)) {
            return Err(DropReason::TooBig);
        }
        self.session6_packet(id, Dir::Original, event, (f.slot, before), meta.total_len);
        if f.synproxy() == SynProxy::On {
            // The client's acknowledgements into the RS's sequence space, before the
            // translation (which moves the checksum by the pseudo-header only).
            let shift = Shift(self.proxy_words6[id.index()]);
            let pkt = &mut buf.data_mut()[l3..l3 + meta.total_len];
            shift_proxied6(pkt, meta, Dir::Original, shift);
        }
        let t = To4 {
            src: (lip, lport),
            dst: (rip, f.rport),
            ident: self.next_ident(),
        };
        let pkt = &mut buf.data_mut()[l3..l3 + meta.total_len];
        let at = nat64::to_ipv4(pkt, l4_off, tcp, &t);
        if f.preamble().is_on() {
            let out = (
                l3 + at,
                meta.total_len - shrink,
                meta.l4,
                IPV4_MIN_HEADER_LEN,
            );
            self.preamble64(id, Dir::Original, &mut buf, out, Toward6::V4(hop))?;
        }
        Ok(Emit::route(buf, l3 + at, hop))
    }

    /// Where NAT64 session `f`'s client packet `meta` (at `l3` in `buf`) goes: its IPv4 RS,
    /// the route and egress MTU there, and `shrink`, what the packet loses in translation
    /// (its fixed header less IPv4's, and any extension headers). A packet whose hop limit
    /// runs out gets Time Exceeded; one too big for the IPv4 side, Packet Too Big naming the
    /// room plus `shrink` (never under 1280).
    #[inline(always)]
    fn nat64_route_out(
        &mut self,
        buf: &D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        f: &Forward6,
    ) -> Result<(Ipv4Addr, Hop, usize, usize), DropReason> {
        if meta.hop_limit <= 1 {
            self.icmpv6_error_back(buf, l3, meta, (icmpv6::TIME_EXCEEDED, 0, 0));
            return Err(DropReason::TtlExceeded);
        }
        let rip = rs4(f).ok_or(DropReason::NoRoute)?;
        let hop = self.snap.route(rip).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        let shrink = usize::from(meta.l4_off) - IPV4_MIN_HEADER_LEN;
        if meta.total_len - shrink > mtu {
            let room = ((mtu + shrink) as u32).max(nat64::IPV6_MIN_MTU);
            self.icmpv6_error_back(buf, l3, meta, (icmpv6::PACKET_TOO_BIG, 0, room));
            return Err(DropReason::TooBig);
        }
        Ok((rip, hop, mtu, shrink))
    }

    /// NAT64's header step, out of line (sessions without a header do not carry it): the
    /// client's segment or datagram translated to IPv4 at `l3` (`total` bytes, `l4` its
    /// summary, its IPv4 header `header_len` bytes) gets the header (or TOA) naming the IPv6
    /// client; the RS's IPv4 reply (`dir` Reply) has its acknowledgements moved back.
    #[inline(never)]
    fn preamble64(
        &mut self,
        id: SessionId,
        dir: Dir,
        buf: &mut D::Buf,
        (l3, total, l4, header_len): (usize, usize, L4, usize),
        hop: Toward6,
    ) -> Result<usize, DropReason> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig) = (s.data, s.original);
        let out = Out6::V4 { header_len };
        match l4 {
            L4::Tcp { flags, .. } => {
                self.preamble6(id, dir, buf, (l3, total, out), flags, &f, &orig, hop)
            }
            L4::Udp { .. } if dir == Dir::Original => {
                self.udp_header6(id, buf, (l3, total, out), &f, &orig)
            }
            _ => Ok(total),
        }
    }

    /// [`Worker::udp_too_big6`] for NAT64 session `id`'s client datagram (`meta` at `l3`),
    /// which leaves `shrink` bytes shorter under `mtu`.
    #[inline(never)]
    fn udp_too_big64(
        &mut self,
        id: SessionId,
        buf: &D::Buf,
        (l3, meta): (usize, &Ipv6Meta),
        (mtu, shrink): (usize, usize),
    ) -> bool {
        let Some(f) = self.table6.get(id).map(|s| s.data) else {
            return false;
        };
        self.udp_too_big6(buf, (l3, meta), &f, (meta.total_len - shrink, mtu, shrink))
    }

    /// The RS's IPv4 reply (header at `l3`) of NAT64 session `id`: translated to IPv6 from
    /// the VIP to the client and routed there.
    pub(super) fn nat64_back(
        &mut self,
        id: SessionId,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) -> Verdict<D::Buf> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig, before) = (s.data, s.original, s.state);
        let proxy = f.synproxy();
        if let SynProxy::Pending(info) = proxy {
            if m.is_fragment() {
                return Err(DropReason::Fragment);
            }
            return self.synproxy_pending64(id, buf, l3, m, info);
        }
        let (tcp, event) = match m.l4 {
            L4::Tcp { flags, .. } => (true, tcp_event(flags)),
            L4::Udp { .. } => (false, None),
            _ => return Err(DropReason::NotForUs),
        };
        if m.ttl <= 1 {
            let (ty, code) = (icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED);
            self.icmp_error_back(&buf, l3, m, ty, code, 0);
            return Err(DropReason::TtlExceeded);
        }
        let hop = self.snap.route6(orig.src).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        // The IPv4 header (options included) gives way to the 40-byte IPv6 one.
        if m.total_len - m.header_len + IPV6_HEADER_LEN > mtu {
            if m.dont_frag {
                let (ty, code) = (icmp::DEST_UNREACH, icmp::FRAG_NEEDED);
                let room = (mtu + m.header_len).saturating_sub(IPV6_HEADER_LEN);
                self.icmp_error_back(&buf, l3, m, ty, code, room as u32);
                return Err(DropReason::TooBig);
            }
            // Without DF the director fragments it on the IPv6 side (RFC 7915 4.1).
            return self.nat64_fragment_back(id, event, buf, l3, m);
        }
        self.session6_packet(id, Dir::Reply, event, (f.slot, before), m.total_len);
        if f.preamble().is_on() {
            // The RS's acknowledgements move back to the client's numbers (no size change).
            let at = (l3, m.total_len, m.l4, m.header_len);
            self.preamble64(id, Dir::Reply, &mut buf, at, Toward6::V6(hop))?;
        }
        buf.truncate(l3 + m.total_len);
        if proxy == SynProxy::On {
            // The RS's sequence numbers into the client's (on the IPv4 segment: the
            // translation then moves its checksum by the pseudo-header only).
            let shift = Shift(self.proxy_words6[id.index()]);
            shift_proxied(
                &mut buf.data_mut()[l3..l3 + m.total_len],
                m,
                Dir::Reply,
                shift,
            );
        }
        // The IPv6 header goes right before the transport header: room in front if needed.
        let need = IPV6_HEADER_LEN.saturating_sub(l3 + m.header_len);
        if need > 0 && !buf.prepend(need) {
            return Err(DropReason::NoHeadroom);
        }
        let at = l3 + need;
        let ends = ((orig.dst, orig.dport), (orig.src, orig.sport));
        let l3 = nat64::to_ipv6(buf.data_mut(), at, m.header_len, tcp, ends);
        Ok(Emit::route6(buf, l3, hop))
    }

    /// A fragment (Fragment Header `frag`) of the client's datagram of NAT64 session `id`
    /// (TCP `event` for the first), its IPv6 header at `l3`: an IPv4 fragment with
    /// identification `ident` (the datagram's, noted in the fragment table) from the session's
    /// LIP toward the RS (RFC 7915 5.1.1). It shrinks by 28 bytes or more, so it fits where the
    /// whole packets of the session do; when it does not, the client gets Packet Too Big as for
    /// them. Out of line: fragments are rare.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_fragment_out(
        &mut self,
        id: SessionId,
        event: Option<TcpEvent>,
        mut buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        frag: Ipv6Fragment,
        ident: u16,
    ) -> Verdict<D::Buf> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, tcp, before) = (s.data, s.original.proto == Proto::Tcp, s.state);
        let Via6::Nat64 { lip, lport, .. } = f.via else {
            return Err(DropReason::FragmentUnmatched);
        };
        if matches!(f.synproxy(), SynProxy::Pending(_)) {
            // A proxied handshake is whole segments.
            return Err(DropReason::Fragment);
        }
        if f.preamble().is_on() && f.preamble().phase() != Phase::Done {
            // A header or option still to go cannot go into a fragment (as `forward6`).
            return Err(DropReason::Fragment);
        }
        let (rip, hop, _, shrink) = self.nat64_route_out(&buf, l3, meta, &f)?;
        let l4_off = usize::from(meta.l4_off);
        self.session6_packet(id, Dir::Original, event, (f.slot, before), meta.total_len);
        if f.synproxy() == SynProxy::On {
            // The first fragment's ack, as a whole segment's (later ones have no L4 header).
            let shift = Shift(self.proxy_words6[id.index()]);
            let pkt = &mut buf.data_mut()[l3..l3 + meta.total_len];
            shift_proxied6(pkt, meta, Dir::Original, shift);
        }
        let piece = Piece {
            offset: frag.offset,
            more: frag.more,
            proto: meta.upper,
        };
        let t = To4 {
            src: (lip, lport),
            dst: (rip, f.rport),
            ident,
        };
        let first = (frag.offset == 0).then_some(tcp);
        let pkt = &mut buf.data_mut()[l3..l3 + meta.total_len];
        let at = nat64::fragment_to_ipv4(pkt, l4_off, first, piece, &t);
        if f.preamble().is_on() && frag.offset == 0 {
            // The header went before: the first fragment's seq moves past it.
            let out = (
                l3 + at,
                meta.total_len - shrink,
                meta.l4,
                IPV4_MIN_HEADER_LEN,
            );
            self.preamble64(id, Dir::Original, &mut buf, out, Toward6::V4(hop))?;
        }
        Ok(Emit::route(buf, l3 + at, hop))
    }

    /// The RS's IPv4 fragment (header at `l3`) of NAT64 session `id` (TCP `event` for the
    /// first), or a whole reply without DF too big for the IPv6 side: translated to IPv6
    /// fragments from the VIP to the client (RFC 7915 4.1), the Fragment Header's
    /// identification the IPv4 one, offset and M carried over. The first fragment's ports and
    /// checksum are the session's (the pseudo-headers' change only: the checksum covers the
    /// whole datagram). A packet that does not fit the IPv6 egress once it has grown by the
    /// two headers is cut into fragments that do (its own buffer carries the first, fresh ones
    /// the others), as RFC 7915 4 has the translator do for IPv4 packets without DF; one with
    /// DF gets fragmentation needed, as whole packets do. Out of line: fragments are rare.
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_fragment_back(
        &mut self,
        id: SessionId,
        event: Option<TcpEvent>,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) -> Verdict<D::Buf> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig, before) = (s.data, s.original, s.state);
        let tcp = orig.proto == Proto::Tcp;
        if matches!(f.synproxy(), SynProxy::Pending(_)) {
            return Err(DropReason::Fragment);
        }
        if f.preamble().is_on() && f.preamble().phase() != Phase::Done && m.is_fragment() {
            // The RS's acknowledgements of a header are mapped in whole segments only.
            return Err(DropReason::Fragment);
        }
        if m.ttl <= 1 {
            // RFC 792: about the first fragment only.
            if !m.is_later_fragment() {
                let (ty, code) = (icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED);
                self.icmp_error_back(&buf, l3, m, ty, code, 0);
            }
            return Err(DropReason::TtlExceeded);
        }
        let hop = self.snap.route6(orig.src).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        let ihl = m.header_len;
        let len = m.total_len - ihl;
        let headers = nat64::FRAGMENT_HEADERS_LEN;
        // Every piece but the last carries `chunk` bytes, a multiple of 8.
        let chunk = mtu.saturating_sub(headers) & !7;
        if len + headers > mtu {
            if m.dont_frag {
                if !m.is_later_fragment() {
                    let (ty, code) = (icmp::DEST_UNREACH, icmp::FRAG_NEEDED);
                    let room = (mtu + ihl).saturating_sub(headers);
                    self.icmp_error_back(&buf, l3, m, ty, code, room as u32);
                }
                return Err(DropReason::TooBig);
            }
            if chunk == 0 || len.div_ceil(chunk) > MAX_FRAGMENTS6 {
                return Err(DropReason::TooBig);
            }
        }
        let offset = m.frag_offset() as usize;
        if offset + len > usize::from(u16::MAX) {
            // Past the end of any datagram: no Fragment Header can say where it goes.
            return Err(DropReason::Untranslatable);
        }
        let d = buf.data();
        let ip = &d[l3..l3 + ihl];
        let (tos, ttl) = (ip[1], ip[8] - 1);
        let ident = u32::from(u16::from_be_bytes([ip[4], ip[5]]));
        let mut old_addrs = [0u8; 8];
        old_addrs.copy_from_slice(&ip[12..20]);
        let (src, dst) = ((orig.dst, orig.dport), (orig.src, orig.sport));
        let proto = m.proto.number();
        buf.truncate(l3 + m.total_len);
        if f.preamble().is_on() && offset == 0 {
            // The RS's acknowledgements back to the client's numbers (no size change).
            let at = (l3, m.total_len, m.l4, m.header_len);
            self.preamble64(id, Dir::Reply, &mut buf, at, Toward6::V6(hop))?;
        }
        if f.synproxy() == SynProxy::On {
            // The first fragment's (or the whole segment's) seq, before the translation.
            let shift = Shift(self.proxy_words6[id.index()]);
            shift_proxied(
                &mut buf.data_mut()[l3..l3 + m.total_len],
                m,
                Dir::Reply,
                shift,
            );
        }
        if offset == 0 {
            let l4 = &mut buf.data_mut()[l3 + ihl..];
            let whole = !m.more_fragments();
            if !nat64::first_to_ipv6(l4, &old_addrs, tcp, whole, (src, dst)) {
                return Err(DropReason::Untranslatable);
            }
        }
        self.session6_packet(id, Dir::Reply, event, (f.slot, before), m.total_len);
        // The pieces after the first, built before the first is cut short.
        let port = self.snap.iface(hop.iface).port as usize;
        let mut rest: ArrayVec<D::Buf, MAX_FRAGMENTS6> = ArrayVec::new();
        let first_len = if len + headers > mtu { chunk } else { len };
        let mut at = first_len;
        while at < len {
            let n = (len - at).min(chunk);
            let Some(mut b) = self.tx.ports[port].alloc() else {
                return Err(DropReason::NoBuffer);
            };
            b.truncate(0);
            if !b.append(L2_ROOM + headers + n) {
                return Err(DropReason::NoBuffer);
            }
            let piece = Piece {
                offset: (offset + at) as u32,
                more: at + n < len || m.more_fragments(),
                proto,
            };
            let (h, body) = b.data_mut()[L2_ROOM..].split_at_mut(headers);
            if let Ok(h) = h.try_into() {
                let addrs = (src.0, dst.0);
                nat64::write_fragment_headers(h, (tos, ttl), addrs, n, piece, ident);
            }
            let from = l3 + ihl + at;
            body.copy_from_slice(&buf.data()[from..from + n]);
            rest.push(b);
            at += n;
        }
        // The first piece in the packet's own buffer: the two headers right before its
        // payload, room made in front if the IPv4 header (and what preceded it) is shorter.
        buf.truncate(l3 + ihl + first_len);
        let need = headers.saturating_sub(l3 + ihl);
        if need > 0 && !buf.prepend(need) {
            return Err(DropReason::NoHeadroom);
        }
        let start = l3 + ihl + need - headers;
        let piece = Piece {
            offset: offset as u32,
            more: first_len < len || m.more_fragments(),
            proto,
        };
        if let Ok(h) = (&mut buf.data_mut()[start..start + headers]).try_into() {
            nat64::write_fragment_headers(h, (tos, ttl), (src.0, dst.0), first_len, piece, ident);
        }
        if rest.is_empty() {
            return Ok(Emit::route6(buf, start, hop));
        }
        self.counters.count(Counter::Nat64Fragmented);
        self.settle(Ok(Emit::route6(buf, start, hop)));
        for b in rest {
            self.counters.count(Counter::Nat64FragmentFrames);
            self.settle(Ok(Emit::route6(b, L2_ROOM, hop)));
        }
        Ok(Emit::Absorbed)
    }

    /// An ICMPv4 error (header at `l3`, quote `q`) about a packet NAT64 session `id` sent
    /// toward its RS: the client gets the ICMPv6 error RFC 7915 maps it to, from the VIP,
    /// quoting its own packet to the VIP, built in the error's buffer.
    pub(super) fn nat64_error_to_client(
        &mut self,
        id: SessionId,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        q: &icmp::Quote,
    ) -> Verdict<D::Buf> {
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig) = (s.data, s.original);
        let pkt = &buf.data()[l3..l3 + m.total_len];
        if !icmp::checksum_valid(pkt, m.header_len) {
            return Err(DropReason::BadIcmpChecksum);
        }
        let hop = self.snap.route6(orig.src).ok_or(DropReason::NoRoute)?;
        let mtu = u32::from(self.snap.iface(hop.iface).mtu);
        let msg = &pkt[m.header_len..];
        let rest = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let error =
            nat64::error_to_icmpv6(msg[0], msg[1], rest, mtu).ok_or(DropReason::Untranslatable)?;
        let mut quote = [0u8; QUOTE6_MAX];
        let ends = ((orig.src, orig.sport), (orig.dst, orig.dport));
        let n = nat64::quote_to_ipv6(&pkt[q.at..], &mut quote, ends)
            .ok_or(DropReason::Untranslatable)?;
        if f.synproxy() == SynProxy::On && orig.proto == Proto::Tcp {
            // The client's ack, as far as quoted, back into its own space.
            let shift = Shift(self.proxy_words6[id.index()]);
            shift_quoted_tcp6(&mut quote[..n], 0, shift.to_client(0));
        }
        if let (Some(version), Proto::Tcp) = (f.preamble().version(), orig.proto) {
            // The quoted segment carried (or followed) the PROXY protocol header: the client
            // gets it in its own numbers.
            let hn = proxy_protocol::len6(version, &proxy_protocol::Ends6::of(&orig)) as u32;
            super::icmp6::quote_to_client6(&mut quote[..n], &f, hn);
        }
        if !local::write_icmpv6_error(&mut buf, (orig.dst, orig.src), error, &quote[..n]) {
            return Err(DropReason::NoBuffer);
        }
        self.counters.count(Counter::IcmpRelayed);
        Ok(Emit::route6(buf, L2_ROOM, hop))
    }

    /// An ICMPv6 error (`ty`, `code`, `rest`, its quote `q`: the reply the director sent the
    /// client) about NAT64 session `f`'s reply going from `lip`:`lport`: the RS gets the
    /// ICMPv4 error RFC 7915 maps it to, from the LIP, quoting the reply as it sent it, built
    /// in the error's buffer.
    pub(super) fn nat64_error_to_server(
        &mut self,
        mut buf: D::Buf,
        (ty, code, rest): (u8, u8, u32),
        q: &[u8],
        f: &Forward6,
        (lip, lport): (Ipv4Addr, u16),
    ) -> Verdict<D::Buf> {
        let rip = rs4(f).ok_or(DropReason::NoRoute)?;
        let hop = self.snap.route(rip).ok_or(DropReason::NoRoute)?;
        let mtu = u32::from(self.snap.iface(hop.iface).mtu);
        let (ty, code, rest) =
            nat64::error_to_icmpv4(ty, code, rest, mtu).ok_or(DropReason::Untranslatable)?;
        let mut quote = [0u8; QUOTE4_MAX];
        let ident = self.next_ident();
        let n = nat64::quote_to_ipv4(q, &mut quote, ((rip, f.rport), (lip, lport)), ident)
            .ok_or(DropReason::Untranslatable)?;
        let e = IcmpError {
            src: lip,
            dst: rip,
            ty,
            code,
            rest,
            ident,
        };
        if !local::write_icmp_error(&mut buf, &e, &quote[..n]) {
            return Err(DropReason::NoBuffer);
        }
        self.counters.count(Counter::IcmpRelayed);
        Ok(Emit::route(buf, L2_ROOM, hop))
    }
}
