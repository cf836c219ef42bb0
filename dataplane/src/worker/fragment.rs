//! IPv4 fragments (step 5's branch for them): the first fragment, which carries the L4 header,
//! is classified like a whole packet and noted in the fragment table ([`crate::frag`]); later
//! fragments follow it there to its session (rewritten at L3 only) or to the worker it was
//! handed to. A NAT64 session's reply fragments, from the RS to a LIP, are noted as NAT64's and
//! leave as IPv6 fragments ([`Worker::nat64_fragment_back`]). And TUN's outer fragments, when an encapsulated packet without DF no longer fits
//! the egress MTU.

use super::classify::{flow_key, Step};
use super::nat64::mapped_key;
use super::session::{tcp_event, Met, Via};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::checksum;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::frag::{FragKey, FragTarget};
use crate::local::L2_ROOM;
use crate::parse::{Ipv4Meta, L4};
use crate::snapshot::Hop;
use crate::wire::ipv4::{field as ip, FLAG_MF};
use crate::wire::tcp::flags as tcp_flags;
use crate::wire::{Ipv4Header, IPV4_MIN_HEADER_LEN};
use arrayvec::ArrayVec;
use conntrack::{Dir, FlowKey, Proto};

/// The most outer fragments a TUN packet is cut into (a 9000-byte frame over a 576-byte path).
const MAX_TUNNEL_FRAGMENTS: usize = 17;

impl<D: Device> Worker<D> {
    /// An IPv4 fragment (its header at `l3`). The first one finds its session (or the worker
    /// that owns it) as a whole packet would — it may open a UDP or ICMP echo session, never a
    /// TCP one — and is noted in the fragment table; a later one goes where the table says
    /// its first one went. A fragment of the director's own traffic goes to the kernel, which
    /// reassembles it. Out of line: whole packets' classification does not pay for it.
    #[cold]
    #[inline(never)]
    pub(super) fn fragment(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        let d = buf.data();
        let key = FragKey {
            src: m.src,
            dst: m.dst,
            proto: m.proto.number(),
            ident: u16::from_be_bytes([d[l3 + ip::IDENT], d[l3 + ip::IDENT + 1]]),
        };
        let payload = (m.total_len - m.header_len) as u32;
        let now = self.now;
        if m.is_later_fragment() {
            let last = !m.more_fragments();
            let followed = self.frags.follow(&key, m.frag_offset(), payload, last, now);
            let Some((target, ident)) = followed else {
                return self.unfollowed(port, buf, m, DropReason::FragmentUnmatched);
            };
            self.counters.count(Counter::FragmentsFollowed);
            return match target {
                FragTarget::Flow(flow) => match self.table.lookup(&flow) {
                    Some((id, dir)) => {
                        let mut verdict = self.forward(id, dir, buf, l3, m, Met::Found);
                        renumber(&mut verdict, key.ident, ident);
                        verdict
                    }
                    None => Err(DropReason::FragmentUnmatched),
                },
                FragTarget::Nat64(flow) => match self.table6.lookup(&mapped_key(&flow)) {
                    Some((id, Dir::Reply)) => self.nat64_fragment_back(id, None, buf, l3, m),
                    _ => Err(DropReason::FragmentUnmatched),
                },
                FragTarget::Worker(owner) if !redirected && owner != self.cfg.id => {
                    Ok(Emit::Handoff { owner, port, buf })
                }
                FragTarget::Worker(_) => Err(DropReason::FragmentUnmatched),
            };
        }
        let Some(flow) = flow_key(m) else {
            // ICMP errors and protocols rvs does not track.
            return self.unfollowed(port, buf, m, DropReason::Fragment);
        };
        if let L4::Tcp { flags, .. } = m.l4 {
            if !tcp_flags::valid(flags) {
                return Err(DropReason::BadTcpFlags);
            }
            // No TCP stack fragments a SYN: one that is has been made so (RFC 1858). It opens
            // nothing; the kernel judges one to a DIP.
            if flags & tcp_flags::SYN != 0 {
                return self.unfollowed(port, buf, m, DropReason::Fragment);
            }
        }
        let Some(slot) = self.frags.reserve(&key, now) else {
            return Err(DropReason::FragmentTableFull);
        };
        let open = flow.proto != Proto::Tcp;
        let step = self.step(m, &flow, None, redirected, open)?;
        let target = match step {
            Step::Unknown => {
                // A NAT64 session's reply: to an IPv4 LIP, its session in the IPv6 table.
                let nat64 = match self.snap.has_nat64() {
                    true => self.table6.lookup(&mapped_key(&flow)),
                    false => None,
                };
                let Some((id, Dir::Reply)) = nat64 else {
                    return self.unfollowed(port, buf, m, DropReason::Fragment);
                };
                let event = match m.l4 {
                    L4::Tcp { flags, .. } => tcp_event(flags),
                    _ => None,
                };
                let verdict = self.nat64_fragment_back(id, event, buf, l3, m)?;
                let target = (FragTarget::Nat64(flow), key.ident);
                self.frags.fill(slot, key, target, payload, now);
                self.counters.count(Counter::FragmentsTracked);
                return Ok(verdict);
            }
            Step::Owner(owner) => FragTarget::Worker(owner),
            Step::Session(..) | Step::Open(_) => FragTarget::Flow(flow),
        };
        let mut verdict = Ok(self.take(step, port, buf, l3, m, flow)?);
        let ident = match target {
            FragTarget::Flow(_) => self.outgoing_ident(&flow, key.ident),
            FragTarget::Worker(_) | FragTarget::Nat64(_) => key.ident,
        };
        renumber(&mut verdict, key.ident, ident);
        self.frags.fill(slot, key, (target, ident), payload, now);
        self.counters.count(Counter::FragmentsTracked);
        verdict
    }

    /// The IP identification the fragments of a datagram of `flow` (whose own is `own`) leave
    /// with: a fresh one from the worker's counter for FullNAT toward the RS — clients'
    /// datagrams share the LIP there, and the RS reassembles by (LIP, RIP, protocol, id), so
    /// two clients' ids could meet — and their own everywhere else.
    fn outgoing_ident(&mut self, flow: &FlowKey, own: u16) -> u16 {
        let fullnat_out = self.table.lookup(flow).is_some_and(|(id, dir)| {
            dir == Dir::Original
                && matches!(
                    self.table.get(id).map(|s| s.data.via),
                    Some(Via::FullNat { .. })
                )
        });
        if fullnat_out {
            self.next_ident()
        } else {
            own
        }
    }

    /// A fragment that belongs to no session rvs knows: the kernel's if it is for one of the
    /// director's own addresses (it reassembles its own traffic), else dropped for `reason`.
    fn unfollowed(
        &mut self,
        port: u16,
        buf: D::Buf,
        m: &Ipv4Meta,
        reason: DropReason,
    ) -> Verdict<D::Buf> {
        let local = self.local_target(m.dst, reason)?;
        match local.dip {
            Some(_) => self.exception(port, buf),
            None => Err(reason),
        }
    }

    /// TUN: sends the packet at `l3` (`m`, DF clear) encapsulated behind `outer` as outer
    /// IPv4 fragments that fit `mtu` (RFC 2003 section 5.1: the encapsulator fragments when
    /// the inner packet allows it, as Linux's IPIP does). The packet's own buffer carries the
    /// first; the others are built from fresh buffers.
    #[cold]
    #[inline(never)]
    pub(super) fn tunnel_fragments(
        &mut self,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv4Meta,
        hop: Hop,
        outer: Ipv4Header,
        mtu: usize,
    ) -> Verdict<D::Buf> {
        let chunk = (mtu - IPV4_MIN_HEADER_LEN) & !7;
        if chunk == 0 {
            return Err(DropReason::TooBig);
        }
        let total = m.total_len;
        if total.div_ceil(chunk) > MAX_TUNNEL_FRAGMENTS {
            return Err(DropReason::TooBig);
        }
        let port = self.snap.iface(hop.iface).port as usize;
        // Every fragment but the first, built before the first is cut short.
        let mut rest: ArrayVec<D::Buf, MAX_TUNNEL_FRAGMENTS> = ArrayVec::new();
        let mut at = chunk;
        while at < total {
            let n = (total - at).min(chunk);
            let Some(mut b) = self.tx.ports[port].alloc() else {
                return Err(DropReason::NoBuffer);
            };
            b.truncate(0);
            if !b.append(L2_ROOM + IPV4_MIN_HEADER_LEN + n) {
                return Err(DropReason::NoBuffer);
            }
            let more = if at + n < total { FLAG_MF } else { 0 };
            let h = Ipv4Header {
                frag: more | (at / 8) as u16,
                total_len: (IPV4_MIN_HEADER_LEN + n) as u16,
                ..outer
            };
            let (head, body) = b.data_mut()[L2_ROOM..].split_at_mut(IPV4_MIN_HEADER_LEN);
            if let Ok(head) = head.try_into() {
                h.emit(head);
            }
            body[..n].copy_from_slice(&buf.data()[l3 + at..l3 + at + n]);
            rest.push(b);
            at += n;
        }
        buf.truncate(l3 + chunk);
        let first = Ipv4Header {
            frag: FLAG_MF,
            total_len: (IPV4_MIN_HEADER_LEN + chunk) as u16,
            ..outer
        };
        self.counters.count(Counter::TunnelFragmented);
        self.settle(Ok(Emit::Route {
            buf,
            l3,
            hop,
            encap: Some(first),
        }));
        for b in rest {
            self.counters.count(Counter::TunnelFragmentFrames);
            self.settle(Ok(Emit::route(b, L2_ROOM, hop)));
        }
        Ok(Emit::Absorbed)
    }
}

/// Gives the routed fragment of `verdict` the IP identification `to` instead of `from`
/// (header checksum updated, RFC 1624).
fn renumber<B: PacketBuf>(verdict: &mut Verdict<B>, from: u16, to: u16) {
    if from == to {
        return;
    }
    if let Ok(Emit::Route {
        buf,
        l3,
        encap: None,
        ..
    }) = verdict
    {
        let h = &mut buf.data_mut()[*l3..*l3 + IPV4_MIN_HEADER_LEN];
        h[ip::IDENT..ip::IDENT + 2].copy_from_slice(&to.to_be_bytes());
        let sum = u16::from_be_bytes([h[ip::CHECKSUM], h[ip::CHECKSUM + 1]]);
        let sum = checksum::update16(sum, from, to);
        h[ip::CHECKSUM..ip::CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
    }
}
