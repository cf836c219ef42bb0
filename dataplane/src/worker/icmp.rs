//! ICMP in the walk: errors about a session's packets relayed to its other side with their
//! quotes rewritten (see [`crate::icmp`]), the errors the director sends back itself (time
//! exceeded, fragmentation needed), and echo replies for the director's addresses.

use super::forward::routed;
use super::session::{rewritten_key, Phase, SynProxy, Via};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::local::{self, IcmpError, L2_ROOM};
use crate::parse::Ipv4Meta;
use crate::proxy_protocol;
use crate::rewrite::Ipv4Rewrite;
use crate::synproxy::Shift;
use crate::wire::{be32, IpProto};
use conntrack::{Dir, Proto};

impl<D: Device> Worker<D> {
    /// Relays an ICMP error about session `id`'s packet to the session's other side, as IPVS
    /// does for NAT (`ip_vs_nat_icmp`): its quote is rewritten to show the packet as that
    /// side sent it ([`icmp::rewrite_quote`]), and the outer header is addressed like the
    /// session's own packets in that direction. Toward the client the error comes from the
    /// VIP; toward the RS it keeps its source in NAT (the RS routes back through the
    /// director anyway) and comes from the session's LIP in FullNAT. DR and TUN sessions
    /// only see the client side: an error about the RS's direct reply goes to the RS as the
    /// client's packets do (on the link, or encapsulated). The session's state and timer do
    /// not change.
    pub(super) fn relay_icmp_error(
        &mut self,
        id: conntrack::SessionId,
        dir: Dir,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        q: &icmp::Quote,
    ) -> Verdict<D::Buf> {
        let Some(s) = self.table.get(id) else {
            return Err(DropReason::NoSession);
        };
        let (f, orig) = (s.data, s.original);
        let end = l3 + m.total_len;
        if !icmp::checksum_valid(&buf.data()[l3..end], m.header_len) {
            return Err(DropReason::BadIcmpChecksum);
        }
        if !routed(f.mode()) {
            return match (f.via, dir) {
                (Via::Dr, Dir::Original) => match self.snap.route(f.rip) {
                    Some(hop) if hop.on_link => {
                        self.counters.count(Counter::IcmpRelayed);
                        Ok(Emit::route(buf, l3, hop))
                    }
                    _ => Err(DropReason::NoRoute),
                },
                (Via::Tun, Dir::Original) => {
                    self.counters.count(Counter::IcmpRelayed);
                    self.tunnel(buf, l3, m, f.rip)
                }
                _ => Err(DropReason::NotForUs),
            };
        }
        // Never an ICMP error about an ICMP error (RFC 1122 3.2.2).
        if m.ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let shift = (f.synproxy == SynProxy::On && q.key.proto == Proto::Tcp)
            .then(|| Shift(self.proxy_words[id.index()]));
        let pkt = &mut buf.data_mut()[l3..end];
        if let Some(shift) = shift {
            // A proxied session's quote moves into the sequence space of the side it goes to.
            match dir {
                Dir::Original => icmp::shift_quoted_tcp(pkt, q, shift.to_rs(0), 0),
                Dir::Reply => icmp::shift_quoted_tcp(pkt, q, 0, shift.to_client(0)),
            }
        }
        if let (Some(version), Proto::Tcp) = (f.preamble.version(), q.key.proto) {
            // A session with a PROXY protocol header: its quote moves by the header too.
            let ends = proxy_protocol::Ends::of(&orig);
            let n = proxy_protocol::len(version, &ends) as u32;
            match dir {
                Dir::Reply => {
                    let seq = be32(pkt, q.at + q.header_len + crate::wire::tcp::field::SEQ);
                    let to = proxy_protocol::ack_to_client(seq, f.first_seq, n);
                    icmp::shift_quoted_tcp(pkt, q, to.wrapping_sub(seq), 0);
                }
                Dir::Original if f.preamble.phase() == Phase::Done => {
                    icmp::shift_quoted_tcp(pkt, q, 0, n);
                }
                Dir::Original => {}
            }
        }
        let toward = match dir {
            // Toward the RS: the quote becomes the RS's own reply as it sent it.
            Dir::Original => {
                let reply = rewritten_key(&orig, &f).mirror();
                icmp::rewrite_quote(pkt, m.header_len, q, &reply);
                let mut r = Ipv4Rewrite::new(pkt, m.header_len, IpProto::Icmp);
                if let Some((lip, _)) = f.local() {
                    r.set_src(lip);
                }
                r.set_dst(f.rip);
                r.dec_ttl();
                f.rip
            }
            // Toward the client: the quote becomes the client's packet to the VIP.
            Dir::Reply => {
                icmp::rewrite_quote(pkt, m.header_len, q, &orig);
                let mut r = Ipv4Rewrite::new(pkt, m.header_len, IpProto::Icmp);
                r.set_src(orig.dst);
                r.set_dst(orig.src);
                r.dec_ttl();
                orig.src
            }
        };
        match self.snap.route(toward) {
            Some(hop) => {
                self.counters.count(Counter::IcmpRelayed);
                Ok(Emit::route(buf, l3, hop))
            }
            None => Err(DropReason::NoRoute),
        }
    }

    /// Sends an ICMP error (`ty`, `code`, `rest`: fragmentation needed with the next-hop MTU,
    /// or time exceeded) about the packet at `l3` back to its sender, quoting it as received.
    /// Within [`icmp::RateLimit`]'s budget; beyond it, or without a route or a buffer, nothing
    /// is sent and `icmp_unsent` counts it. The caller drops the offending packet.
    pub(super) fn icmp_error_back(
        &mut self,
        offending: &D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        ty: u8,
        code: u8,
        rest: u32,
    ) {
        let hop = self.snap.route(m.src);
        let Some(hop) = hop.filter(|_| self.icmp_limit.allow(self.now)) else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[port as usize].alloc() else {
            self.counters.count(Counter::IcmpUnsent);
            return;
        };
        let e = IcmpError {
            src: self.snap.source_addr(hop.iface, m.src),
            dst: m.src,
            ty,
            code,
            rest,
            ident: self.next_ident(),
        };
        let end = l3 + m.total_len;
        if !local::write_icmp_error(&mut b, &e, &offending.data()[l3..end]) {
            self.counters.count(Counter::IcmpUnsent);
            return;
        }
        self.counters.count(Counter::IcmpErrors);
        // The offending packet's own drop is its caller's verdict; this is a frame of its own.
        self.settle(Ok(Emit::route(b, L2_ROOM, hop)))
    }

    /// Answers an ICMP echo request to one of the director's addresses, in place.
    pub(super) fn echo_reply(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
    ) -> Verdict<D::Buf> {
        let end = l3 + m.total_len;
        {
            let mut r = Ipv4Rewrite::new(&mut buf.data_mut()[l3..end], m.header_len, IpProto::Icmp);
            r.set_icmp_type(icmp::ECHO_REPLY);
            r.set_src(m.dst);
            r.set_dst(m.src);
            r.set_ttl(64);
        }
        match self.snap.route(m.src) {
            Some(hop) => {
                self.counters.count(Counter::IcmpEchoReplies);
                Ok(Emit::route(buf, l3, hop))
            }
            None => Err(DropReason::NoRoute),
        }
    }
}
