//! ICMPv6 errors about IPv6 sessions' packets (destination unreachable, packet too big, time
//! exceeded, parameter problem), relayed to the session's other side with their quotes
//! rewritten, as the IPv4 relay does ([`super::icmp`]): a router's Packet Too Big about a
//! reply the director sent from the VIP reaches the RS as an error about the packet it sent,
//! so path-MTU discovery works through NAT66 and FullNAT66.

use super::service6::{Forward6, Via6};
use super::session::{Phase, SynProxy};
use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::checksum;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::lip::LipPool;
use crate::parse::{Ipv6Meta, IPV6_HEADER_LEN};
use crate::proxy_protocol;
use crate::redirect;
use crate::snapshot::Homing;
use crate::synproxy::Shift;
use crate::wire::tcp;
use conntrack::{Dir, FlowKey6, Key, Proto};
use core::net::Ipv6Addr;

/// Whether ICMPv6 type `ty` is an error message about a packet (RFC 4443 2.1: types 1–4).
#[inline]
pub(super) fn is_error(ty: u8) -> bool {
    (1..=4).contains(&ty)
}

/// Where an error's quoted packet starts in the message: after its 8-byte header.
const QUOTE: usize = 8;

/// The 16 bytes at `at` as an address.
fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

impl<D: Device> Worker<D> {
    /// An ICMPv6 error to one of the director's VIPs or LIPs, from `src`, its message at
    /// `meta.l4_off`: relayed to the other side of the session its quote names (a TCP or UDP
    /// packet the director sent), the quote rewritten to that side's own packet, the outer
    /// header addressed like the session's packets that way (toward the RS from the LIP in
    /// FullNAT66, its source kept in NAT66; toward the client from the VIP), the hop limit
    /// decremented and the ICMPv6 checksum recomputed. DR sessions see only the client's
    /// side: an error about the RS's direct reply goes to the RS on the link, untouched.
    /// With several workers, an error whose session this worker does not hold goes to the
    /// worker that does, found as its packets would be (`redirected`: it was handed over
    /// already): by the LIP port's slice, or the client endpoint's home worker for NAT66.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay_icmpv6_error(
        &mut self,
        port: u16,
        mut buf: D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        redirected: bool,
    ) -> Verdict<D::Buf> {
        let off = l3 + usize::from(meta.l4_off);
        let end = l3 + meta.total_len;
        let msg = &buf.data()[off..end];
        if checksum::icmpv6(src, dst, msg) != 0 {
            return Err(DropReason::BadIcmpChecksum);
        }
        // The quoted packet: its fixed header and its ports (no extension headers: the
        // director sends none).
        let q = &msg[QUOTE..];
        let proto = match q.get(6) {
            Some(6) => Proto::Tcp,
            Some(17) => Proto::Udp,
            _ => return Err(DropReason::NotForUs),
        };
        if q.len() < IPV6_HEADER_LEN + 4 {
            return Err(DropReason::MalformedIcmp);
        }
        let be16 = |at: usize| u16::from_be_bytes([q[at], q[at + 1]]);
        let quoted = FlowKey6::new(
            proto,
            addr_at(q, 8),
            be16(IPV6_HEADER_LEN),
            addr_at(q, 24),
            be16(IPV6_HEADER_LEN + 2),
        );
        let key = quoted.mirror();
        let Some((id, dir)) = self.table6.lookup(&key) else {
            if !redirected {
                if let Some(owner) = self.owner6_elsewhere(&key) {
                    return Ok(Emit::Handoff { owner, port, buf });
                }
            }
            return Err(DropReason::NoSession);
        };
        let s = self.table6.get(id).ok_or(DropReason::NoSession)?;
        let (f, orig) = (s.data, s.original);
        if let Via6::Nat64 { lip, lport, .. } = f.via {
            // About a reply the director translated: the RS hears of it in ICMPv4. The quote's
            // headers (all an ICMPv4 error quotes) leave the buffer, which the error is built in.
            if dir != Dir::Original {
                return Err(DropReason::NotForUs);
            }
            let mut quote = [0u8; IPV6_HEADER_LEN + 8];
            let n = q.len().min(quote.len());
            quote[..n].copy_from_slice(&q[..n]);
            if f.synproxy() == SynProxy::On && proto == Proto::Tcp {
                // The reply's seq back into the RS's own space.
                let shift = Shift(self.proxy_words6[id.index()]);
                shift_quoted_tcp6(&mut quote[..n], shift.to_rs(0), 0);
            }
            let error = (
                msg[0],
                msg[1],
                u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]),
            );
            return self.nat64_error_to_server(buf, error, &quote[..n], &f, (lip, lport));
        }
        let (outer, inner, toward) = match (f.via, dir) {
            (Via6::Dr, Dir::Original) => {
                return match self.snap.route6(f.rip) {
                    Some(hop) if hop.on_link => {
                        self.counters.count(Counter::IcmpRelayed);
                        Ok(Emit::route6(buf, l3, hop))
                    }
                    _ => Err(DropReason::NoRoute),
                };
            }
            // TUN: the error about the RS's direct reply goes to it through the tunnel.
            (Via6::Tun, Dir::Original) => {
                self.counters.count(Counter::IcmpRelayed);
                return self.tunnel6(buf, l3, meta, f.rip);
            }
            (Via6::Dr | Via6::Tun, Dir::Reply) => return Err(DropReason::NotForUs),
            // Toward the RS: the quote becomes the RS's own reply as it sent it.
            (via, Dir::Original) => {
                let to = reply_dst(&self.lips6, &f, &orig);
                let from = match via {
                    Via6::FullNat { .. } => to.0,
                    _ => src,
                };
                ((from, f.rip), ((f.rip, f.rport), to), f.rip)
            }
            // Toward the client: the quote becomes the client's packet to the VIP.
            (_, Dir::Reply) => (
                (orig.dst, orig.src),
                ((orig.src, orig.sport), (orig.dst, orig.dport)),
                orig.src,
            ),
        };
        // Never an ICMPv6 error about an ICMPv6 error (RFC 4443 2.4 (e)).
        if meta.hop_limit <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let hop = self.snap.route6(toward).ok_or(DropReason::NoRoute)?;
        let shift = (f.synproxy() == SynProxy::On && proto == Proto::Tcp)
            .then(|| Shift(self.proxy_words6[id.index()]));
        let pkt = &mut buf.data_mut()[l3..end];
        pkt[7] -= 1;
        pkt[8..24].copy_from_slice(&outer.0.octets());
        pkt[24..40].copy_from_slice(&outer.1.octets());
        let msg = &mut pkt[usize::from(meta.l4_off)..];
        let q = &mut msg[QUOTE..];
        q[8..24].copy_from_slice(&inner.0 .0.octets());
        q[24..40].copy_from_slice(&inner.1 .0.octets());
        q[IPV6_HEADER_LEN..IPV6_HEADER_LEN + 2].copy_from_slice(&inner.0 .1.to_be_bytes());
        q[IPV6_HEADER_LEN + 2..IPV6_HEADER_LEN + 4].copy_from_slice(&inner.1 .1.to_be_bytes());
        if let Some(shift) = shift {
            // A proxied session's quote moves into the sequence space of the side it goes to.
            match dir {
                Dir::Original => shift_quoted_tcp6(q, shift.to_rs(0), 0),
                Dir::Reply => shift_quoted_tcp6(q, 0, shift.to_client(0)),
            }
        }
        if let (Some(version), Proto::Tcp) = (f.preamble().version(), proto) {
            // A session with a PROXY protocol header: its quote moves by the header too.
            let n = proxy_protocol::len6(version, &proxy_protocol::Ends6::of(&orig)) as u32;
            let done = f.preamble().phase() == Phase::Done;
            match dir {
                Dir::Reply => quote_to_client6(q, &f, n),
                Dir::Original if done => shift_quoted_tcp6(q, 0, n),
                Dir::Original => {}
            }
        }
        msg[2..4].fill(0);
        let c = checksum::icmpv6(outer.0, outer.1, msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        self.counters.count(Counter::IcmpRelayed);
        Ok(Emit::route6(buf, l3, hop))
    }
}

impl<D: Device> Worker<D> {
    /// The worker holding the IPv6 session of flow `key` when it is another one and can be
    /// told from the flow (several workers and the redirect rings): a reply to a LIP by its
    /// port's slice, a NAT66 session's packets by the client endpoint's home worker.
    fn owner6_elsewhere(&self, key: &FlowKey6) -> Option<u16> {
        let workers = self.cfg.workers;
        if workers <= 1 || self.redirect.is_none() {
            return None;
        }
        let snap = &self.snap;
        let endpoint = |homing: Option<Homing>, addr, port| {
            (homing == Some(Homing::Endpoint)).then(|| redirect::home6(addr, port, workers))
        };
        let owner = if snap.local6(key.dst).is_some_and(|l| l.lip) {
            LipPool::worker_of(snap.lport_range(), workers, key.dport)?
        } else if let Some(si) = snap.service_index6(key.proto, key.dst, key.dport) {
            endpoint(Some(snap.service_homing(si)), key.src, key.sport)?
        } else {
            let homing = snap.nat_dest6_homing(key.proto, key.src, key.sport);
            endpoint(homing, key.dst, key.dport)?
        };
        (owner != self.cfg.id).then_some(owner)
    }
}

/// Where the RS sent its replies: the LIP and port in FullNAT66, the client in NAT66.
fn reply_dst(
    lips6: &Option<crate::lip::LipPool6>,
    f: &Forward6,
    orig: &FlowKey6,
) -> (Ipv6Addr, u16) {
    match super::service6::local6(lips6, f) {
        Some(local) => local,
        None => (orig.src, orig.sport),
    }
}

/// Moves the sequence number of the quote `q` (an IPv6 packet's, from its IPv6 header: a
/// segment sent toward the RS of session `f`, whose PROXY protocol header is `n` bytes) back
/// to the client's own numbers: anything within the header is its first data byte.
pub(super) fn quote_to_client6(q: &mut [u8], f: &Forward6, n: u32) {
    let at = IPV6_HEADER_LEN + tcp::field::SEQ;
    let Some(b) = q.get(at..at + 4) else {
        return;
    };
    let seq = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let to = if f.preamble().phase() == Phase::Done {
        seq.wrapping_sub(n)
    } else {
        let base = proxy_protocol::near24(seq, f.first_seq());
        proxy_protocol::ack_to_client(seq, base, n)
    };
    shift_quoted_tcp6(q, to.wrapping_sub(seq), 0);
}

/// Moves the TCP segment an ICMPv6 error quotes (`q`, from its IPv6 header) by `seq_by` and
/// `ack_by`, as far as the quote holds them; its own checksum follows when quoted.
pub(super) fn shift_quoted_tcp6(q: &mut [u8], seq_by: u32, ack_by: u32) {
    use tcp::field::{ACK, CHECKSUM, SEQ};
    let l4 = &mut q[IPV6_HEADER_LEN..];
    let mut c = l4
        .get(CHECKSUM..CHECKSUM + 2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    for (at, by) in [(SEQ, seq_by), (ACK, ack_by)] {
        let Some(field) = l4.get_mut(at..at + 4) else {
            break;
        };
        let old = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        let new = old.wrapping_add(by);
        field.copy_from_slice(&new.to_be_bytes());
        c = c.map(|c| checksum::update32(c, old, new));
    }
    if let Some(c) = c {
        l4[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}
