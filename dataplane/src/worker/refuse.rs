//! The answer to a packet for a VIP on a port no service has, as the kernel of an IPVS
//! director gives it for a port with no socket: a TCP segment without RST gets a RST (RFC 793
//! 3.4's reset generation, the kernel's `tcp_v4_send_reset`), a UDP datagram an ICMP port
//! unreachable (`icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0)`), an IPv6 one an
//! ICMPv6 port unreachable. A client learns at once that nothing is there (curl: "Connection
//! refused", a connected UDP socket: `ECONNREFUSED`) instead of waiting out its timeout.
//!
//! Only for a VIP that is not also a DIP (a DIP's ports are the kernel's, which answers for
//! them itself) and not a LIP, and only for a whole packet (not a fragment). The answer comes
//! from the VIP and port the packet was for, in a buffer of its own; the packet itself is
//! dropped as [`DropReason::NoService`], answered or not. Answers are rate-limited by a token
//! bucket of their own with the ICMP errors' figures ([`crate::icmp::RateLimit`]: 50 at once,
//! 1000 a second), so a flood to closed ports neither makes the director a flood source nor
//! eats the budget of the errors path MTU discovery needs. A RST is never answered (RFC 793).
//! `no_service_answers` counts the answers sent; `drops{reason="no_service"}` minus it is what
//! went unanswered (RSTs, over the limit, no route or buffer).

use super::tx::Emit;
use super::Worker;
use crate::buf::PacketBuf;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmp;
use crate::icmpv6;
use crate::local::{self, IcmpError, TcpSegment, TcpSegment6, L2_ROOM};
use crate::parse::{Ipv4Meta, Ipv6Meta, L4};
use crate::wire::be32;
use crate::wire::tcp::{self, flags as tcp_flags};
use core::net::Ipv6Addr;

/// The RST answering a segment with `flags`, `seq`, `ack` and `data` bytes of payload, as RFC
/// 793 (3.4, "Reset Generation", closed state) builds it: with the segment's ACK set, `SEQ =
/// SEG.ACK` and no ACK; without, `SEQ = 0` and `ACK = SEG.SEQ + SEG.LEN` (SYN and FIN count
/// one each). Returns the RST's sequence number, acknowledgement number and flags.
#[inline]
pub fn reset_for(flags: u8, seq: u32, ack: u32, data: u32) -> (u32, u32, u8) {
    if flags & tcp_flags::ACK != 0 {
        return (ack, 0, tcp_flags::RST);
    }
    let len = data
        .wrapping_add(u32::from(flags & tcp_flags::SYN != 0))
        .wrapping_add(u32::from(flags & tcp_flags::FIN != 0));
    (0, seq.wrapping_add(len), tcp_flags::RST | tcp_flags::ACK)
}

/// The sequence number, acknowledgement number and payload length of the TCP segment `seg`
/// (its header and data; the parser checked its data offset).
fn tcp_numbers(seg: &[u8]) -> Option<(u32, u32, u32)> {
    let header_len = usize::from(*seg.get(tcp::field::DATA_OFF)? >> 4) * 4;
    let data = seg.len().checked_sub(header_len)?;
    Some((
        be32(seg, tcp::field::SEQ),
        be32(seg, tcp::field::ACK),
        data as u32,
    ))
}

impl<D: Device> Worker<D> {
    /// Answers the TCP segment or UDP datagram at `l3` of `offending` (`m`) for a VIP on a port
    /// no service has (see the module's text) and returns its drop reason,
    /// [`DropReason::NoService`].
    #[cold]
    #[inline(never)]
    pub(super) fn refuse(&mut self, offending: &D::Buf, l3: usize, m: &Ipv4Meta) -> DropReason {
        let pkt = &offending.data()[l3..l3 + m.total_len];
        let answer = match m.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } if flags & tcp_flags::RST == 0 => {
                let Some((seq, ack, data)) = tcp_numbers(&pkt[m.header_len..]) else {
                    return DropReason::NoService;
                };
                let (seq, ack, flags) = reset_for(flags, seq, ack, data);
                Some(Answer::Reset(TcpSegment {
                    src: m.dst,
                    dst: m.src,
                    sport: dport,
                    dport: sport,
                    seq,
                    ack,
                    flags,
                    window: 0,
                    mss: None,
                    ident: 0,
                }))
            }
            L4::Udp { .. } => Some(Answer::Unreachable),
            _ => None,
        };
        let Some(answer) = answer else {
            return DropReason::NoService;
        };
        let Some(hop) = self
            .snap
            .route(m.src)
            .filter(|_| self.refuse_limit.allow(self.now))
        else {
            return DropReason::NoService;
        };
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[port as usize].alloc() else {
            return DropReason::NoService;
        };
        let ident = self.next_ident();
        let pkt = &offending.data()[l3..l3 + m.total_len];
        let written = match answer {
            Answer::Reset(seg) => local::write_tcp(&mut b, &TcpSegment { ident, ..seg }),
            Answer::Unreachable => {
                // From the VIP, as the kernel answers from the address the datagram was for.
                let e = IcmpError {
                    src: m.dst,
                    dst: m.src,
                    ty: icmp::DEST_UNREACH,
                    code: icmp::PORT_UNREACH,
                    rest: 0,
                    ident,
                };
                local::write_icmp_error(&mut b, &e, pkt)
            }
        };
        if written {
            self.counters.count(Counter::NoServiceAnswers);
            self.settle(Ok(Emit::route(b, L2_ROOM, hop)));
        }
        DropReason::NoService
    }

    /// [`Worker::refuse`] for an IPv6 packet at `l3` (`meta`) from `src` to VIP `dst`: a RST,
    /// or an ICMPv6 port unreachable (type 1, code 4) quoting as much of the datagram as
    /// RFC 4443 allows.
    #[cold]
    #[inline(never)]
    pub(super) fn refuse6(
        &mut self,
        offending: &D::Buf,
        l3: usize,
        meta: &Ipv6Meta,
        (src, dst): (Ipv6Addr, Ipv6Addr),
    ) -> DropReason {
        let pkt = &offending.data()[l3..l3 + meta.total_len];
        let answer = match meta.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } if flags & tcp_flags::RST == 0 => {
                let Some((seq, ack, data)) = tcp_numbers(&pkt[usize::from(meta.l4_off)..]) else {
                    return DropReason::NoService;
                };
                let (seq, ack, flags) = reset_for(flags, seq, ack, data);
                Some(Answer::Reset(TcpSegment6 {
                    src: dst,
                    dst: src,
                    sport: dport,
                    dport: sport,
                    seq,
                    ack,
                    flags,
                    window: 0,
                    mss: None,
                }))
            }
            L4::Udp { .. } => Some(Answer::Unreachable),
            _ => None,
        };
        let Some(answer) = answer else {
            return DropReason::NoService;
        };
        let Some(hop) = self
            .snap
            .route6(src)
            .filter(|_| self.refuse_limit.allow(self.now))
        else {
            return DropReason::NoService;
        };
        let port = self.snap.iface(hop.iface).port;
        let Some(mut b) = self.tx.ports[port as usize].alloc() else {
            return DropReason::NoService;
        };
        let written = match answer {
            Answer::Reset(seg) => local::write_tcp6(&mut b, &seg),
            Answer::Unreachable => local::write_icmpv6_error(
                &mut b,
                (dst, src),
                (icmpv6::DEST_UNREACH, icmpv6::PORT_UNREACH, 0),
                pkt,
            ),
        };
        if written {
            self.counters.count(Counter::NoServiceAnswers);
            self.settle(Ok(Emit::route6(b, L2_ROOM, hop)));
        }
        DropReason::NoService
    }
}

/// What [`Worker::refuse`] and [`Worker::refuse6`] send.
enum Answer<S> {
    /// A RST, its segment (IPv4's identification filled in once the answer is certain).
    Reset(S),
    /// An ICMP or ICMPv6 port unreachable quoting the datagram.
    Unreachable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_follow_rfc_793() {
        use tcp_flags::{ACK, FIN, PSH, RST, SYN};
        // A SYN: SEQ 0, ACK = its sequence number + 1.
        assert_eq!(reset_for(SYN, 1000, 0, 0), (0, 1001, RST | ACK));
        // An ACK (with data or not): SEQ = its ACK, no ACK flag.
        assert_eq!(reset_for(ACK | PSH, 1000, 77, 5), (77, 0, RST));
        assert_eq!(reset_for(ACK | FIN, 1000, 77, 0), (77, 0, RST));
        // Neither: SEQ 0, ACK = SEQ + data + FIN.
        assert_eq!(reset_for(FIN, 1000, 0, 3), (0, 1004, RST | ACK));
        assert_eq!(reset_for(0, u32::MAX, 0, 2), (0, 1, RST | ACK));
    }
}
