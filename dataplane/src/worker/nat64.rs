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

use super::preamble6::{Out6, Toward6};
use super::service6::Forward6;
use super::session::tcp_event;
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::icmpv6;
use crate::local::{self, IcmpError, L2_ROOM};
use crate::nat64::{self, To4};
use crate::parse::{Ipv4Meta, Ipv6Meta, IPV6_HEADER_LEN, L4};
use crate::proxy_protocol;
use crate::wire::IPV4_MIN_HEADER_LEN;
use conntrack::{Dir, FlowKey, FlowKey6, Proto, SessionId, TcpEvent};
use core::net::Ipv4Addr;

/// The room for a translated quote: an ICMPv6 error's whole quote (RFC 4443 2.4 (c)).
const QUOTE6_MAX: usize = icmpv6::ERROR_MAX - IPV6_HEADER_LEN - 8;

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
        if meta.is_fragment() {
            return Err(DropReason::Fragment);
        }
        if meta.hop_limit <= 1 {
            self.icmpv6_error_back(&buf, l3, meta, (icmpv6::TIME_EXCEEDED, 0, 0));
            return Err(DropReason::TtlExceeded);
        }
        let rip = rs4(&f).ok_or(DropReason::NoRoute)?;
        let hop = self.snap.route(rip).ok_or(DropReason::NoRoute)?;
        let mtu = usize::from(self.snap.iface(hop.iface).mtu);
        let l4_off = usize::from(meta.l4_off);
        // What the IPv6 packet loses: its fixed header less IPv4's, and any extension headers.
        let shrink = l4_off - IPV4_MIN_HEADER_LEN;
        if meta.total_len - shrink > mtu {
            let room = ((mtu + shrink) as u32).max(nat64::IPV6_MIN_MTU);
            self.icmpv6_error_back(&buf, l3, meta, (icmpv6::PACKET_TOO_BIG, 0, room));
            return Err(DropReason::TooBig);
        }
        if f.preamble().is_on() && !tcp && self.udp_too_big64(id, &buf, (l3, meta), (mtu, shrink)) {
            return Err(DropReason::TooBig);
        }
        self.session6_packet(id, Dir::Original, event, (f.slot, before), meta.total_len);
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
            // RFC 7915 would send a DF-clear packet on in IPv6 fragments; rvs sends no
            // fragments (`too_big`, as for any packet without DF).
            if m.dont_frag {
                let (ty, code) = (icmp::DEST_UNREACH, icmp::FRAG_NEEDED);
                let room = (mtu + m.header_len).saturating_sub(IPV6_HEADER_LEN);
                self.icmp_error_back(&buf, l3, m, ty, code, room as u32);
            }
            return Err(DropReason::TooBig);
        }
        self.session6_packet(id, Dir::Reply, event, (f.slot, before), m.total_len);
        if f.preamble().is_on() {
            // The RS's acknowledgements move back to the client's numbers (no size change).
            let at = (l3, m.total_len, m.l4, m.header_len);
            self.preamble64(id, Dir::Reply, &mut buf, at, Toward6::V6(hop))?;
        }
        buf.truncate(l3 + m.total_len);
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
