//! ICMP errors about a session's packets: reading the packet an error quotes, and rewriting
//! that quote so the error makes sense on the other side of the director.
//!
//! An ICMP error (RFC 792: destination unreachable — fragmentation needed among them, RFC
//! 1191 — source quench, time exceeded, parameter problem) carries the IP header and at least
//! the first 8 bytes of the packet that caused it. When that packet belongs to a NAT or
//! FullNAT session, its sender only recognises the error if the quote shows the packet as
//! *it* sent it: a real server's port-unreachable quotes `LIP:lport → RIP:rport`, which the
//! client must see as `CIP:cport → VIP:vport`. Like IPVS (`ip_vs_nat_icmp`), the director
//! rewrites the quoted addresses and ports, keeps the quoted IP header checksum and (when it
//! is quoted) the quoted TCP/UDP/ICMP checksum consistent by incremental updates, and
//! recomputes the ICMP checksum over the whole message, which it has verified first.
//!
//! The panic contract: [`quote`] reads any bytes without panicking; [`rewrite_quote`] takes
//! only a packet and a [`Quote`] that [`quote`] returned for it.

use crate::checksum;
use crate::wire::ipv4::{field as ip, FRAG_OFFSET};
use crate::wire::{be32, tcp, udp, IpProto, IPV4_MIN_HEADER_LEN};
use conntrack::{FlowKey, Proto};
use core::net::Ipv4Addr;

use crate::wire::icmp::{field as icmp_field, HEADER_LEN as ICMP_HEADER};
pub use crate::wire::icmp::{
    DEST_UNREACH, ECHO_REPLY, ECHO_REQUEST, FRAG_NEEDED, PARAM_PROBLEM, PORT_UNREACH,
    SOURCE_QUENCH, TIME_EXCEEDED, TTL_EXCEEDED,
};

/// The L4 bytes every error quotes (RFC 792): enough for the ports.
const QUOTED_L4_MIN: usize = 8;

/// True for the ICMP types that report an error about a packet and quote it.
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        DEST_UNREACH | SOURCE_QUENCH | TIME_EXCEEDED | PARAM_PROBLEM
    )
}

/// The packet an ICMP error quotes: its flow key and where it lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The quoted packet's flow key, in the direction it was sent.
    pub key: FlowKey,
    /// Offset of the quoted IPv4 header from the start of the error's own IPv4 header.
    pub at: usize,
    /// Length of the quoted IPv4 header.
    pub header_len: usize,
    /// L4 bytes quoted after that header (at least 8).
    pub l4_len: usize,
}

/// Reads the quote of the ICMP error `pkt` (the whole IPv4 packet; its own header is
/// `header_len` bytes). `None` when the quote is not one a session could own: shorter than an
/// IPv4 header and 8 bytes, not IPv4, a non-first fragment, or a protocol other than TCP, UDP
/// or ICMP echo. Such errors are the director's own business (they go where any other packet
/// for that address goes).
pub fn quote(pkt: &[u8], header_len: usize) -> Option<Quote> {
    let at = header_len.checked_add(ICMP_HEADER)?;
    let inner = pkt.get(at..)?;
    let first = *inner.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < IPV4_MIN_HEADER_LEN || inner.len() < ihl + QUOTED_L4_MIN {
        return None;
    }
    // The quoted total length may exceed what was quoted; the L4 bytes are what is here.
    let at_frag = ip::FLAGS_FRAG;
    let frag_offset = u16::from_be_bytes([inner[at_frag], inner[at_frag + 1]]) & FRAG_OFFSET;
    if frag_offset != 0 {
        return None;
    }
    let addr = |i: usize| Ipv4Addr::new(inner[i], inner[i + 1], inner[i + 2], inner[i + 3]);
    let (src, dst) = (addr(ip::SRC), addr(ip::DST));
    let l4 = &inner[ihl..];
    let be16 = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    let (sport, dport) = (be16(tcp::field::SRC_PORT), be16(tcp::field::DST_PORT));
    let key = match IpProto::from(inner[ip::PROTOCOL]) {
        IpProto::Tcp => FlowKey::new(Proto::Tcp, src, sport, dst, dport),
        IpProto::Udp => FlowKey::new(Proto::Udp, src, sport, dst, dport),
        IpProto::Icmp => match l4[icmp_field::TYPE] {
            ECHO_REQUEST => FlowKey::new(Proto::Icmp, src, be16(icmp_field::IDENT), dst, 0),
            ECHO_REPLY => FlowKey::new(Proto::Icmp, src, 0, dst, be16(icmp_field::IDENT)),
            _ => return None,
        },
        _ => return None,
    };
    Some(Quote {
        key,
        at,
        header_len: ihl,
        l4_len: inner.len() - ihl,
    })
}

/// True if the ICMP message of `pkt` (after its `header_len`-byte IPv4 header) has a valid
/// checksum.
#[inline]
pub fn checksum_valid(pkt: &[u8], header_len: usize) -> bool {
    pkt.get(header_len..)
        .is_some_and(|icmp| checksum::checksum(icmp) == 0)
}

/// Rewrites the quote `q` of the ICMP error `pkt` so that it shows the packet `to` (same
/// protocol and direction as `q.key`): the quoted addresses with the quoted IP header
/// checksum, the quoted ports (or echo identifier) with the quoted L4 checksum when it lies
/// within the quoted bytes, then the ICMP checksum recomputed over the whole message.
///
/// # Panics
/// If `q` was not returned by [`quote`] for this `pkt` and `header_len`.
pub fn rewrite_quote(pkt: &mut [u8], header_len: usize, q: &Quote, to: &FlowKey) {
    let end = q.at + q.header_len + q.l4_len;
    let inner = &mut pkt[q.at..end];
    let (hdr, l4) = inner.split_at_mut(q.header_len);
    let (old_src, old_dst) = (be32(hdr, ip::SRC), be32(hdr, ip::DST));
    let (new_src, new_dst) = (u32::from(to.src), u32::from(to.dst));
    hdr[ip::SRC..ip::SRC + 4].copy_from_slice(&new_src.to_be_bytes());
    hdr[ip::DST..ip::DST + 4].copy_from_slice(&new_dst.to_be_bytes());
    let mut c = u16::from_be_bytes([hdr[ip::CHECKSUM], hdr[ip::CHECKSUM + 1]]);
    c = checksum::update32(c, old_src, new_src);
    c = checksum::update32(c, old_dst, new_dst);
    hdr[ip::CHECKSUM..ip::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());

    let port = |l4: &[u8], i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    match to.proto {
        Proto::Tcp | Proto::Udp => {
            let (sp, dp) = (tcp::field::SRC_PORT, tcp::field::DST_PORT);
            let (old_sport, old_dport) = (port(l4, sp), port(l4, dp));
            l4[sp..sp + 2].copy_from_slice(&to.sport.to_be_bytes());
            l4[dp..dp + 2].copy_from_slice(&to.dport.to_be_bytes());
            // TCP's checksum is bytes 16..18, quoted only when the error quotes that much;
            // UDP's is bytes 6..8, always quoted, and 0 means "none" (RFC 768).
            let (at, is_udp) = if to.proto == Proto::Tcp {
                (tcp::field::CHECKSUM, false)
            } else {
                (udp::field::CHECKSUM, true)
            };
            if l4.len() >= at + 2 {
                let mut c = port(l4, at);
                if is_udp {
                    c = checksum::update_udp32(c, old_src, new_src);
                    c = checksum::update_udp32(c, old_dst, new_dst);
                    c = checksum::update_udp16(c, old_sport, to.sport);
                    c = checksum::update_udp16(c, old_dport, to.dport);
                } else {
                    c = checksum::update32(c, old_src, new_src);
                    c = checksum::update32(c, old_dst, new_dst);
                    c = checksum::update16(c, old_sport, to.sport);
                    c = checksum::update16(c, old_dport, to.dport);
                }
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        Proto::Icmp => {
            // An echo's identifier: the request's source "port", the reply's destination one.
            let ident = if l4[icmp_field::TYPE] == ECHO_REQUEST {
                to.sport
            } else {
                to.dport
            };
            let (at, sum) = (icmp_field::IDENT, icmp_field::CHECKSUM);
            let old_ident = port(l4, at);
            l4[at..at + 2].copy_from_slice(&ident.to_be_bytes());
            let c = checksum::update16(port(l4, sum), old_ident, ident);
            l4[sum..sum + 2].copy_from_slice(&c.to_be_bytes());
        }
    }

    let m = &mut pkt[header_len..];
    let sum = icmp_field::CHECKSUM;
    m[sum..sum + 2].fill(0);
    let c = checksum::checksum(m);
    m[sum..sum + 2].copy_from_slice(&c.to_be_bytes());
}

/// Adds `seq_by` to the quoted TCP segment's sequence number and `ack_by` to its
/// acknowledgement number (when that much is quoted), keeping the quoted TCP checksum (when
/// quoted) consistent: a SYN-proxied session's quote moved into the other side's sequence
/// space. Call it before [`rewrite_quote`], which then recomputes the ICMP checksum.
///
/// # Panics
/// If `q` was not returned by [`quote`] for this `pkt`.
pub fn shift_quoted_tcp(pkt: &mut [u8], q: &Quote, seq_by: u32, ack_by: u32) {
    let start = q.at + q.header_len;
    let l4 = &mut pkt[start..start + q.l4_len];
    use tcp::field::{ACK, CHECKSUM, SEQ};
    let mut c =
        (l4.len() >= CHECKSUM + 2).then(|| u16::from_be_bytes([l4[CHECKSUM], l4[CHECKSUM + 1]]));
    let seq = be32(l4, SEQ);
    let new_seq = seq.wrapping_add(seq_by);
    l4[SEQ..SEQ + 4].copy_from_slice(&new_seq.to_be_bytes());
    c = c.map(|c| checksum::update32(c, seq, new_seq));
    if l4.len() >= ACK + 4 {
        let ack = be32(l4, ACK);
        let new_ack = ack.wrapping_add(ack_by);
        l4[ACK..ACK + 4].copy_from_slice(&new_ack.to_be_bytes());
        c = c.map(|c| checksum::update32(c, ack, new_ack));
    }
    if let Some(c) = c {
        l4[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// The budget for the ICMP errors a worker builds itself (time exceeded, fragmentation
/// needed): a token bucket of [`RateLimit::BURST`] refilled at [`RateLimit::PER_SEC`] a second,
/// Linux's `icmp_msgs_burst` and `icmp_msgs_per_sec` defaults. A flood of TTL-1 or oversized
/// packets cannot make the director a flood source. Relayed errors are not limited: they are
/// forwarded packets, one out for one in.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    tokens: u32,
    /// The millisecond up to which tokens have been added.
    refilled: u64,
}

impl RateLimit {
    /// Errors allowed in one go.
    pub const BURST: u32 = 50;
    /// Errors allowed per second after that.
    pub const PER_SEC: u32 = 1000;

    /// A full bucket.
    pub const fn new() -> RateLimit {
        RateLimit {
            tokens: RateLimit::BURST,
            refilled: 0,
        }
    }

    /// Takes a token at time `now` (ms) if there is one.
    #[inline]
    pub fn allow(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.refilled);
        let add = elapsed.saturating_mul(u64::from(RateLimit::PER_SEC)) / 1000;
        if add > 0 {
            self.tokens = (u64::from(self.tokens) + add).min(u64::from(RateLimit::BURST)) as u32;
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP error (type `ty`) quoting a UDP or TCP packet `src:sport → dst:dport` with
    /// `l4_quoted` bytes of its L4 header, all checksums valid.
    fn error(ty: u8, proto: u8, quoted: FlowKey, l4_quoted: usize) -> Vec<u8> {
        let mut inner = vec![0u8; 20 + 20];
        inner[0] = 0x45;
        inner[2..4].copy_from_slice(&40u16.to_be_bytes());
        inner[8] = 63;
        inner[9] = proto;
        inner[12..16].copy_from_slice(&quoted.src.octets());
        inner[16..20].copy_from_slice(&quoted.dst.octets());
        let c = checksum::checksum(&inner[..20]);
        inner[10..12].copy_from_slice(&c.to_be_bytes());
        inner[20..22].copy_from_slice(&quoted.sport.to_be_bytes());
        inner[22..24].copy_from_slice(&quoted.dport.to_be_bytes());
        let csum_at = if proto == 6 { 36 } else { 26 };
        if proto == 17 {
            inner[24..26].copy_from_slice(&20u16.to_be_bytes());
        } else {
            inner[32] = 0x50;
        }
        let mut sum =
            checksum::pseudo_header_sum(u32::from(quoted.src), u32::from(quoted.dst), proto, 20);
        sum = checksum::sum_bytes(sum, &inner[20..40]);
        let c = !checksum::fold(sum);
        inner[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        inner.truncate(20 + l4_quoted);
        let mut pkt = vec![0u8; 20 + 8];
        pkt[0] = 0x45;
        pkt[9] = 1;
        pkt[20] = ty;
        pkt.extend_from_slice(&inner);
        let total = pkt.len() as u16;
        pkt[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum::checksum(&pkt[20..]);
        pkt[22..24].copy_from_slice(&c.to_be_bytes());
        pkt
    }

    fn key(proto: Proto, a: [u8; 4], sport: u16, b: [u8; 4], dport: u16) -> FlowKey {
        FlowKey::new(proto, Ipv4Addr::from(a), sport, Ipv4Addr::from(b), dport)
    }

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let mut l = RateLimit::new();
        let now = 5_000;
        let burst = (0..200).filter(|_| l.allow(now)).count();
        assert_eq!(burst, RateLimit::BURST as usize);
        // One second later: at most a full bucket again, never more.
        let later = (0..5000).filter(|_| l.allow(now + 1000)).count();
        assert_eq!(later, RateLimit::BURST as usize);
        // Spread over a second, one a millisecond: all pass.
        let spread = (1..=1000).filter(|ms| l.allow(now + 1000 + ms)).count();
        assert_eq!(spread, 1000);
        // Time going backwards (a stale clock) adds nothing.
        let mut l = RateLimit::new();
        assert_eq!((0..100).filter(|_| l.allow(now)).count(), 50);
        assert!(!l.allow(now - 10));
    }

    #[test]
    fn reads_the_quoted_key() {
        let k = key(Proto::Udp, [10, 1, 0, 201], 5000, [10, 1, 0, 11], 53);
        let pkt = error(DEST_UNREACH, 17, k, 8);
        let q = quote(&pkt, 20).expect("a quote");
        assert_eq!(q.key, k);
        assert_eq!((q.at, q.header_len, q.l4_len), (28, 20, 8));
        assert!(checksum_valid(&pkt, 20));
    }

    #[test]
    fn short_foreign_or_later_fragment_quotes_are_not_sessions() {
        let k = key(Proto::Tcp, [1, 1, 1, 1], 1, [2, 2, 2, 2], 2);
        let pkt = error(TIME_EXCEEDED, 6, k, 8);
        for cut in 0..pkt.len() - 1 {
            assert_eq!(quote(&pkt[..cut], 20), None, "cut at {cut}");
        }
        let mut gre = pkt.clone();
        gre[28 + 9] = 47;
        assert_eq!(quote(&gre, 20), None);
        let mut later = pkt.clone();
        later[28 + 7] = 1;
        assert_eq!(quote(&later, 20), None);
        let mut v6 = pkt;
        v6[28] = 0x65;
        assert_eq!(quote(&v6, 20), None);
    }

    /// Every checksum of a rewritten error verifies: the ICMP one over the message, the
    /// quoted IP header's, and the quoted L4 checksum (a full TCP header quoted).
    #[test]
    fn rewrite_keeps_every_checksum() {
        for (proto, p, quoted) in [(6u8, Proto::Tcp, 20usize), (17, Proto::Udp, 8)] {
            let from = key(p, [10, 1, 0, 201], 5000, [10, 1, 0, 11], 8080);
            let to = key(p, [198, 51, 100, 7], 40000, [192, 0, 2, 100], 80);
            let mut pkt = error(DEST_UNREACH, proto, from, quoted);
            let q = quote(&pkt, 20).unwrap();
            rewrite_quote(&mut pkt, 20, &q, &to);
            assert!(checksum_valid(&pkt, 20));
            assert_eq!(quote(&pkt, 20).unwrap().key, to);
            let inner = &pkt[28..];
            assert_eq!(checksum::checksum(&inner[..20]), 0, "quoted IP header");
            let expect = error(DEST_UNREACH, proto, to, quoted);
            assert_eq!(&pkt[28..], &expect[28..], "as if the quote had been {to:?}");
        }
    }

    #[test]
    fn rewrite_of_a_quoted_echo_moves_its_identifier() {
        let mut pkt = error(
            TIME_EXCEEDED,
            1,
            key(Proto::Icmp, [1, 0, 0, 1], 0, [1, 0, 0, 2], 0),
            8,
        );
        // Make the quote an echo request with identifier 7 and a valid checksum.
        pkt[48] = ECHO_REQUEST;
        pkt[52..54].copy_from_slice(&7u16.to_be_bytes());
        pkt[50..52].fill(0);
        let c = checksum::checksum(&pkt[48..56]);
        pkt[50..52].copy_from_slice(&c.to_be_bytes());
        pkt[22..24].fill(0);
        let c = checksum::checksum(&pkt[20..]);
        pkt[22..24].copy_from_slice(&c.to_be_bytes());
        let q = quote(&pkt, 20).unwrap();
        assert_eq!(q.key, key(Proto::Icmp, [1, 0, 0, 1], 7, [1, 0, 0, 2], 0));
        let to = key(Proto::Icmp, [9, 0, 0, 1], 4242, [9, 0, 0, 2], 0);
        rewrite_quote(&mut pkt, 20, &q, &to);
        assert_eq!(quote(&pkt, 20).unwrap().key, to);
        assert!(checksum_valid(&pkt, 20));
        assert_eq!(checksum::checksum(&pkt[48..56]), 0, "quoted echo checksum");
    }
}
