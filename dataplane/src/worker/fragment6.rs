//! IPv6 fragments of sessions, as IPv4's (`fragment.rs`): the first fragment, which carries
//! the TCP or UDP header (the parser checked it is whole there), finds its session as a whole
//! packet would — it may open a UDP session, never a TCP one — and is noted in the IPv6
//! fragment table by (source, destination, identification); later fragments follow it to
//! its session, rewritten at L3 only, or to the worker it was handed to. Nothing is
//! reassembled. FullNAT66 gives a datagram toward the RS a fresh identification (clients
//! share the LIP there). A NAT64 session's fragments leave as IPv4 fragments (RFC 7915 5.1.1,
//! [`Worker::nat64_fragment_out`]), with a fresh IPv4 identification per datagram, which the
//! table notes beside the flow for the later ones.

use super::service6::{Found6, Via6};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::frag::{FragKey6, FragTarget};
use crate::parse::{Ipv6Meta, L4};
use crate::wire::tcp::flags as tcp_flags;
use conntrack::{Dir, FlowKey6, Proto};
use core::net::Ipv6Addr;

impl<D: Device> Worker<D> {
    /// An IPv6 fragment from `src` to `dst`, its header at `l3`: for a VIP or LIP
    /// (`service`: `Some(lip)`) or through the director (`None`: a NAT66 reply). Out of line:
    /// whole packets do not pay for it.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn fragment6(
        &mut self,
        port: u16,
        buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        service: Option<bool>,
        redirected: bool,
    ) -> Verdict<D::Buf> {
        let Some(f) = meta.fragment(&buf.data()[l3..]) else {
            return Err(DropReason::Fragment);
        };
        let key = FragKey6 {
            src,
            dst,
            ident: f.ident,
        };
        let payload = (meta.total_len - usize::from(meta.l4_off)) as u32;
        let now = self.now;
        if f.offset != 0 {
            let followed = self.frags6.follow(&key, f.offset, payload, !f.more, now);
            let Some((target, ident)) = followed else {
                return Err(DropReason::FragmentUnmatched);
            };
            self.counters.count(Counter::FragmentsFollowed);
            return match target {
                FragTarget::Flow(flow) => match self.table6.lookup(&flow) {
                    Some((id, dir)) => {
                        let frag = Some((f.ident_at, ident));
                        self.forward6(id, dir, None, buf, l3, meta, frag)
                    }
                    None => Err(DropReason::FragmentUnmatched),
                },
                FragTarget::Nat64(flow) => match self.table6.lookup(&flow) {
                    Some((id, Dir::Original)) => {
                        self.nat64_fragment_out(id, None, buf, l3, meta, f, ident as u16)
                    }
                    _ => Err(DropReason::FragmentUnmatched),
                },
                FragTarget::Worker(owner) if !redirected && owner != self.cfg.id => {
                    Ok(Emit::Handoff { owner, port, buf })
                }
                FragTarget::Worker(_) => Err(DropReason::FragmentUnmatched),
            };
        }
        let (proto, sport, dport) = match meta.l4 {
            L4::Tcp { flags, .. } if flags & tcp_flags::SYN != 0 => {
                // No TCP stack fragments a SYN: one that is has been made so. It opens nothing.
                return Err(DropReason::Fragment);
            }
            L4::Tcp { sport, dport, .. } => (Proto::Tcp, sport, dport),
            L4::Udp { sport, dport } => (Proto::Udp, sport, dport),
            // ICMPv6 and protocols rvs does not track.
            _ => return Err(DropReason::Fragment),
        };
        let flow = FlowKey6::new(proto, src, sport, dst, dport);
        let Some(slot) = self.frags6.reserve(&key, now) else {
            return Err(DropReason::FragmentTableFull);
        };
        let found = match service {
            Some(lip) => self.find6(&buf, l3, meta, (src, dst), lip, redirected)?,
            None => self.find_reply6(meta, (src, dst), redirected)?,
        };
        let (target, ident, verdict) = match found {
            Found6::Session(id, Dir::Original, event)
                if matches!(
                    self.table6.get(id).map(|s| s.data.via),
                    Some(Via6::Nat64 { .. })
                ) =>
            {
                // Toward an IPv4 RS: the datagram's IPv4 identification is the worker's.
                let ident = self.next_ident();
                let verdict = self.nat64_fragment_out(id, event, buf, l3, meta, f, ident)?;
                (FragTarget::Nat64(flow), u32::from(ident), verdict)
            }
            Found6::Session(id, dir, event) => {
                let via = self.table6.get(id).map(|s| s.data.via);
                let ident = match via {
                    Some(Via6::FullNat { .. }) if dir == Dir::Original => self.next_ident6(),
                    _ => f.ident,
                };
                let frag = Some((f.ident_at, ident));
                let verdict = self.forward6(id, dir, event, buf, l3, meta, frag)?;
                (FragTarget::Flow(flow), ident, verdict)
            }
            // A proxied handshake's segments are not fragmented by any TCP stack either.
            Found6::Proxy(..) => return Err(DropReason::Fragment),
            Found6::Owner(owner) => {
                let handoff = Emit::Handoff { owner, port, buf };
                (FragTarget::Worker(owner), f.ident, handoff)
            }
        };
        self.frags6.fill(slot, key, (target, ident), payload, now);
        self.counters.count(Counter::FragmentsTracked);
        Ok(verdict)
    }
}
