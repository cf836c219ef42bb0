//! Steps 7–8: a session's packet — state transition, then the per-mode rewrite (NAT and
//! FullNAT addresses and ports, DR's MAC only, TUN's IPIP encapsulation) — on its way out.

use super::session::{is_active, tcp_event, Forward, Met, Phase, SynProxy, Via};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::parse::{Ipv4Meta, L4};
use crate::rewrite::{self, Ipv4Rewrite, Tuple};
use crate::snapshot::Hop;
use crate::synproxy::Shift;
use crate::wire::tcp::flags as tcp_flags;
use crate::wire::{IpProto, Ipv4Header, IPV4_MIN_HEADER_LEN};
use conntrack::{Dir, FlowKey, SessionState, TcpEvent, TcpState};
use core::net::Ipv4Addr;
use sched::ForwardMode;

/// What TUN's encapsulation adds: an outer IPv4 header (RFC 2003).
pub(super) const IPIP_OVERHEAD: usize = IPV4_MIN_HEADER_LEN;

impl<D: Device> Worker<D> {
    /// A packet of session `id` going in direction `dir`: on through the SYN proxy's
    /// handshake, routed (NAT, FullNAT: TTL, route and egress MTU settled first, then the
    /// state moves and the addresses and ports are rewritten) or sent on the link or the
    /// tunnel (DR, TUN). `met`: found, or just opened by this packet (already in the state
    /// it moves to; a NAT/FullNAT one with its route, whose TTL was checked then).
    #[inline(always)]
    pub(super) fn forward(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        met: Met,
    ) -> Verdict<D::Buf> {
        let event = match m.l4 {
            L4::Tcp { flags, .. } => tcp_event(flags),
            _ => None,
        };
        let Some(s) = self.table.get(id) else {
            return Err(DropReason::NoSession);
        };
        let f = s.data;
        let orig = s.original;
        let before = s.state;
        if let SynProxy::Pending(info) = f.synproxy {
            if m.is_fragment() {
                return Err(DropReason::Fragment);
            }
            return self.synproxy_pending(id, dir, buf, l3, m, info);
        }
        // A header still to insert goes into a segment, which a fragment is only part of.
        if m.is_fragment() && f.preamble.is_on() && f.preamble.phase() != Phase::Done {
            return Err(DropReason::Fragment);
        }
        // NAT and FullNAT route: where to, whether the TTL allows it and whether it fits the
        // egress MTU are settled before the session sees the packet.
        let routed_hop = if routed(f.mode()) {
            let hop = match met {
                Met::Opened(Some(hop)) => hop,
                _ => {
                    if m.ttl <= 1 {
                        // RFC 792: about the first fragment only.
                        if !m.is_later_fragment() {
                            let (ty, code) = (icmp::TIME_EXCEEDED, icmp::TTL_EXCEEDED);
                            self.icmp_error_back(&buf, l3, m, ty, code, 0);
                        }
                        return Err(DropReason::TtlExceeded);
                    }
                    let toward = if dir == Dir::Original {
                        f.rip
                    } else {
                        orig.src
                    };
                    self.snap.route(toward).ok_or(DropReason::NoRoute)?
                }
            };
            let mtu = self.snap.iface(hop.iface).mtu as usize;
            if m.total_len > mtu {
                if m.dont_frag {
                    let (ty, code) = (icmp::DEST_UNREACH, icmp::FRAG_NEEDED);
                    self.icmp_error_back(&buf, l3, m, ty, code, mtu as u32);
                }
                return Err(DropReason::TooBig);
            }
            Some(hop)
        } else {
            None
        };
        // An opened session is already where this packet moved it.
        if met == Met::Found {
            self.on_session_packet(id, dir, event, f.slot, before);
        }
        self.stats
            .packet(f.slot, dir == Dir::Original, m.total_len as u64);
        match (routed_hop, f.via, dir) {
            (Some(hop), _, _) if m.is_later_fragment() => {
                let mut buf = buf;
                let pkt = &mut buf.data_mut()[l3..l3 + m.total_len];
                rewrite_later_fragment(pkt, m, &f, &orig, dir);
                Ok(Emit::route(buf, l3, hop))
            }
            (Some(hop), _, _) => {
                let mut buf = buf;
                self.rewrite_session(&mut buf, l3, m, id, &f, &orig, dir, hop)?;
                Ok(Emit::route(buf, l3, hop))
            }
            (None, Via::Dr, Dir::Original) => match self.snap.route(f.rip) {
                Some(hop) if hop.on_link => Ok(Emit::route(buf, l3, hop)),
                _ => Err(DropReason::NoRoute),
            },
            (None, Via::Tun, Dir::Original) => self.tunnel(buf, l3, m, f.rip),
            // DR and TUN sessions have no reply key, so no packet matches them this way.
            _ => Err(DropReason::NotForUs),
        }
    }

    /// Session `id`'s state moved (or not) by a packet found in direction `dir` with TCP
    /// event `event`, from `before`: the state, deadline, the dest's active/inactive counters
    /// and the sync note when it changed, and a half-open session's answer counted.
    #[inline(always)]
    pub(super) fn on_session_packet(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        event: Option<TcpEvent>,
        slot: u32,
        before: SessionState,
    ) {
        let moved = self.table.on_packet(id, dir, event, self.now);
        // A state that did not change moves no counter and nothing to sync.
        if let Some(state) = moved.filter(|&s| s != before) {
            self.stats
                .session_moved(slot, is_active(before), is_active(state));
            self.sync_changed(id);
        }
        if dir == Dir::Reply && before == SessionState::Tcp(TcpState::SynRecv) {
            match event {
                Some(TcpEvent::Ack) => self.counters.count(Counter::SynAnsweredAck),
                Some(TcpEvent::Rst) => self.counters.count(Counter::SynAnsweredRst),
                _ => {}
            }
        }
    }

    /// The NAT or FullNAT rewrite of session `id`'s packet in `buf` (its IPv4 header at
    /// `l3`) on its way toward `hop`: the PROXY protocol or TOA header's step when the
    /// session has one, addresses and ports, and a proxied session's sequence shift.
    ///
    /// # Errors
    /// The header's step's drop ([`Worker::preamble`]); nothing is rewritten then.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn rewrite_session(
        &mut self,
        buf: &mut D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        id: conntrack::SessionId,
        f: &Forward,
        orig: &FlowKey,
        dir: Dir,
        hop: Hop,
    ) -> Result<(), DropReason> {
        let total = if f.preamble.is_on() {
            self.preamble(id, dir, buf, l3, m, f, orig, hop)?
        } else {
            m.total_len
        };
        let pkt = &mut buf.data_mut()[l3..l3 + total];
        rewrite_session_plain(pkt, m, id, f, orig, dir, &self.proxy_words);
        Ok(())
    }

    /// TUN: IPIP-encapsulates the untouched packet toward the RS (RFC 2003); one that then
    /// exceeds the egress MTU gets an ICMP fragmentation needed back when it has DF set, and
    /// is sent as outer fragments when it has not.
    pub(super) fn tunnel(
        &mut self,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        rip: Ipv4Addr,
    ) -> Verdict<D::Buf> {
        let Some(hop) = self.snap.route(rip) else {
            return Err(DropReason::NoRoute);
        };
        let mtu = self.snap.iface(hop.iface).mtu as usize;
        let too_big = m.total_len + IPIP_OVERHEAD > mtu;
        if too_big && m.dont_frag {
            let room = (mtu - IPIP_OVERHEAD) as u32;
            self.icmp_error_back(&buf, l3, m, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, room);
            return Err(DropReason::TooBig);
        }
        let outer = Ipv4Header {
            src: self.snap.source_addr(hop.iface, rip),
            dst: rip,
            proto: IpProto::Ipip,
            tos: buf.data()[l3 + crate::wire::ipv4::field::TOS],
            ttl: m.ttl,
            dont_frag: m.dont_frag,
            frag: 0,
            ident: self.next_ident(),
            total_len: (m.total_len + IPIP_OVERHEAD) as u16,
        };
        if too_big {
            return self.tunnel_fragments(buf, l3, m, hop, outer, mtu);
        }
        Ok(Emit::Route {
            buf,
            l3,
            hop,
            encap: Some(outer),
        })
    }
}

/// NAT and FullNAT route the packet (TTL decremented); DR and TUN leave the IP header alone.
#[inline]
pub(super) fn routed(mode: ForwardMode) -> bool {
    matches!(mode, ForwardMode::Nat | ForwardMode::FullNat)
}

/// The NAT or FullNAT rewrite of a session's packet `pkt` (from its IPv4 header to its end)
/// going in direction `dir`: addresses, ports (the echo identifier for ICMP), TTL, checksums.
#[inline]
pub(super) fn rewrite_routed(pkt: &mut [u8], m: &Ipv4Meta, f: &Forward, orig: &FlowKey, dir: Dir) {
    let icmp = m.proto == IpProto::Icmp;
    if !icmp {
        // TCP and UDP: the four fields in one straight line. Toward the RS the source stays
        // the client's under NAT; back to the client both modes restore the original's.
        let to = match (f.via, dir) {
            (Via::FullNat { lip, lport }, Dir::Original) => Tuple {
                src: lip,
                dst: f.rip,
                sport: lport,
                dport: f.rport,
            },
            (_, Dir::Original) => Tuple {
                src: orig.src,
                dst: f.rip,
                sport: orig.sport,
                dport: f.rport,
            },
            (_, Dir::Reply) => Tuple {
                src: orig.dst,
                dst: orig.src,
                sport: orig.dport,
                dport: orig.sport,
            },
        };
        rewrite::rewrite_tuple(pkt, m.header_len, m.proto == IpProto::Tcp, to);
        return;
    }
    let mut r = Ipv4Rewrite::new(pkt, m.header_len, m.proto);
    match (f.via, dir) {
        (Via::FullNat { lip, lport }, Dir::Original) => {
            r.set_src(lip);
            r.set_dst(f.rip);
            if icmp {
                r.set_echo_ident(lport);
            } else {
                r.set_sport(lport);
                r.set_dport(f.rport);
            }
        }
        (Via::FullNat { .. }, Dir::Reply) => {
            r.set_src(orig.dst);
            r.set_dst(orig.src);
            if icmp {
                r.set_echo_ident(orig.sport);
            } else {
                r.set_sport(orig.dport);
                r.set_dport(orig.sport);
            }
        }
        (_, Dir::Original) => {
            r.set_dst(f.rip);
            if !icmp {
                r.set_dport(f.rport);
            }
        }
        (_, Dir::Reply) => {
            r.set_src(orig.dst);
            if !icmp {
                r.set_sport(orig.dport);
            }
        }
    }
    r.dec_ttl();
}

/// [`Worker::rewrite_session`] past the header's step: the NAT or FullNAT rewrite of
/// session `id`'s packet `pkt`, then a proxied session's sequence shift (its word in
/// `proxy_words`).
#[inline(always)]
pub(super) fn rewrite_session_plain(
    pkt: &mut [u8],
    m: &Ipv4Meta,
    id: conntrack::SessionId,
    f: &Forward,
    orig: &FlowKey,
    dir: Dir,
    proxy_words: &[u32],
) {
    rewrite_routed(pkt, m, f, orig, dir);
    if f.synproxy == SynProxy::On {
        shift_proxied(pkt, m, dir, Shift(proxy_words[id.index()]));
    }
}

/// The NAT or FullNAT rewrite of a later fragment of a session's datagram: its addresses as
/// [`rewrite_routed`] sets them, and the TTL; the ports went with the first fragment.
#[cold]
#[inline(never)]
pub(super) fn rewrite_later_fragment(
    pkt: &mut [u8],
    m: &Ipv4Meta,
    f: &Forward,
    orig: &FlowKey,
    dir: Dir,
) {
    let (src, dst) = match (f.via, dir) {
        (Via::FullNat { lip, .. }, Dir::Original) => (lip, f.rip),
        (Via::FullNat { .. }, Dir::Reply) => (orig.dst, orig.src),
        (_, Dir::Original) => (m.src, f.rip),
        (_, Dir::Reply) => (orig.dst, m.dst),
    };
    rewrite::rewrite_fragment(pkt, src, dst);
}

/// Moves a proxied session's TCP segment `pkt` into the sequence space of the side it goes
/// to: the RS's `seq` back to the cookie's space toward the client, the client's `ack` (when
/// it has one) into the RS's space toward the RS.
#[inline]
pub(super) fn shift_proxied(pkt: &mut [u8], m: &Ipv4Meta, dir: Dir, shift: Shift) {
    let L4::Tcp { flags, .. } = m.l4 else {
        return;
    };
    match dir {
        Dir::Reply => rewrite::shift_tcp(pkt, m.header_len, shift.to_client(0), 0),
        Dir::Original if flags & tcp_flags::ACK != 0 => {
            rewrite::shift_tcp(pkt, m.header_len, 0, shift.to_rs(0))
        }
        Dir::Original => {}
    }
}
