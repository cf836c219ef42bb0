//! The established fast path: a staged frame of a session this worker holds, with nothing
//! about it that needs more than the rewrite, goes from the RX burst straight to its TX
//! buffer. Any frame it does not take — or any it has doubts about — goes on to
//! [`Worker::process`] untouched, which then decides as it always does; so the fast path
//! changes no outcome, only how many steps the common packet takes.
//!
//! A frame is taken when, before anything is changed:
//! - it came to the port's own unicast MAC on a port with an untagged interface (the
//!   burst's check), and its addresses are not martian;
//! - it is TCP without SYN and with valid flags, or UDP (the stager's parse: untagged IPv4
//!   without options, not a fragment); IPv6 ([`Worker::fast6`]): TCP without SYN or UDP
//!   with a checksum right after the fixed header, to one of the director's VIPs or LIPs;
//! - its session is the one the stager's candidate names (any other lookup is the full
//!   path's), with no SYN proxy handshake pending;
//! - NAT or FullNAT: its TTL is above 1, a route leads where it goes and the packet fits that
//!   interface's MTU; DR: toward the RS, on a connected subnet. TUN is never taken.
//!
//! Then it moves the session as [`Worker::forward`] does (the same
//! [`Worker::on_session_packet`], and for NAT and FullNAT [`Worker::rewrite_session`] after a
//! PROXY protocol or TOA header's step) and leaves through [`Worker::route`], whose drops are
//! counted here as [`Worker::settle`] counts them.

use super::classify::{flow_key, flow_key6, martian, Staged};
use super::forward::{rewrite_session_plain, routed};
use super::service6::{local6, rewrite_session6, Via6};
use super::session::{tcp_event, SynProxy, Via};
use super::Worker;
use crate::buf::PacketBuf;
use crate::device::Device;
use crate::parse::{L3, L4};
use crate::wire::tcp::flags as tcp_flags;
use conntrack::{Candidate, Dir, Proto};

impl<D: Device> Worker<D> {
    /// Takes `buf` (staged as `s`, received on a port whose MAC is `port_mac`) through the
    /// fast path, or gives it back untouched.
    #[inline(always)]
    pub(super) fn fast(
        &mut self,
        port_mac: [u8; 6],
        buf: D::Buf,
        s: &Staged,
    ) -> Result<(), D::Buf> {
        // No candidate, no session to take it through (a new flow, a NAT64 reply).
        if s.cand == Candidate::NONE {
            return Err(buf);
        }
        let L3::Ipv4(m) = &s.parsed.l3 else {
            return Err(buf);
        };
        // A SYN next: the new session's packet is declined at once.
        let event = match m.l4 {
            L4::Tcp { flags, .. } if flags & tcp_flags::SYN == 0 && tcp_flags::valid(flags) => {
                tcp_event(flags)
            }
            L4::Udp { .. } => None,
            _ => return Err(buf),
        };
        if s.parsed.dst_mac != port_mac || martian(m.src, m.dst) {
            return Err(buf);
        }
        let Some(key) = flow_key(m) else {
            return Err(buf);
        };
        // Only the session the stager's candidate names: any other lookup is the full path's.
        let Some((id, dir, sess)) = self.table.lookup_candidate(&key, s.cand) else {
            return Err(buf);
        };
        let f = &sess.data;
        if matches!(f.synproxy, SynProxy::Pending(_)) {
            return Err(buf);
        }
        let hop = match (f.via, dir) {
            (Via::Nat | Via::FullNat { .. }, _) => {
                let toward = if dir == Dir::Original {
                    f.rip
                } else {
                    sess.original.src
                };
                let hop = match self.snap.route(toward) {
                    Some(hop) if m.ttl > 1 => hop,
                    _ => return Err(buf),
                };
                if m.total_len > usize::from(self.snap.iface(hop.iface).mtu) {
                    return Err(buf);
                }
                hop
            }
            (Via::Dr, Dir::Original) => match self.snap.route(f.rip) {
                Some(hop) if hop.on_link => hop,
                _ => return Err(buf),
            },
            _ => return Err(buf),
        };
        // Taken: from here on the packet's outcome is this path's.
        let l3 = s.parsed.l3_off;
        let end = l3 + m.total_len;
        let mut buf = buf;
        buf.truncate(end);
        let (slot, before, routed) = (f.slot, sess.state, routed(f.mode()));
        // Without a header to insert, the rewrite reads the session where it lies, before the
        // packet moves it (which changes nothing the rewrite reads).
        let header = routed && f.preamble.is_on();
        if routed && !header {
            let pkt = &mut buf.data_mut()[l3..end];
            rewrite_session_plain(pkt, m, id, f, &sess.original, dir, &self.proxy_words);
        }
        // With one, the header's step needs the worker, so the session's forwarding data is
        // copied out first (the rare case).
        let header = match header {
            true => Some((*f, sess.original)),
            false => None,
        };
        self.on_session_packet(id, dir, event, slot, before);
        self.stats
            .packet(slot, dir == Dir::Original, m.total_len as u64);
        if let Some((f, orig)) = header {
            if let Err(r) = self.rewrite_session(&mut buf, l3, m, id, &f, &orig, dir, hop) {
                self.counters.count_drop(r);
                return Ok(());
            }
        }
        if let Err(r) = self.route(buf, l3, hop, None) {
            self.counters.count_drop(r);
        }
        Ok(())
    }

    /// [`Worker::fast`] for IPv6: a staged frame of a found NAT66, FullNAT66 or DR session,
    /// to one of the director's VIPs or LIPs, taken on the same terms as IPv4's (no SYN, no
    /// handshake pending, a hop limit above 1, a route and room in its MTU, DR on a
    /// connected subnet) and the IPv6 path's own (no UDP datagram without a checksum, no
    /// PROXY protocol or TOA header); a NAT64 client's packet goes on to its translation.
    /// Any other frame is given back untouched.
    /// Out of line: inlined beside [`Worker::fast`] it would cost IPv4's path its registers.
    #[inline(never)]
    pub(super) fn fast6(
        &mut self,
        port_mac: [u8; 6],
        buf: D::Buf,
        s: &Staged,
    ) -> Result<(), D::Buf> {
        if s.cand == Candidate::NONE {
            return Err(buf);
        }
        let L3::Ipv6(meta) = &s.parsed.l3 else {
            return Err(buf);
        };
        let l3 = s.parsed.l3_off;
        let l4_off = l3 + usize::from(meta.l4_off);
        let event = match meta.l4 {
            L4::Tcp { flags, .. } if flags & tcp_flags::SYN == 0 => tcp_event(flags),
            L4::Udp { .. } if buf.data().get(l4_off + 6..l4_off + 8) != Some(&[0, 0][..]) => None,
            _ => return Err(buf),
        };
        if s.parsed.dst_mac != port_mac {
            return Err(buf);
        }
        let Some(key) = flow_key6(buf.data(), meta) else {
            return Err(buf);
        };
        let (src, dst) = (key.src, key.dst);
        if src.is_multicast() || src.is_loopback() || src.is_unspecified() || dst.is_unspecified() {
            return Err(buf);
        }
        let Some((id, dir, sess)) = self.table6.lookup_candidate(&key, s.cand) else {
            return Err(buf);
        };
        let f = &sess.data;
        if matches!(f.synproxy(), SynProxy::Pending(_)) || f.preamble().is_on() {
            return Err(buf);
        }
        // The full path takes only a VIP's or a LIP's packets to their sessions (a session
        // outlives its VIP's removal).
        if !self.snap.local6(dst).is_some_and(|l| l.vip || l.lip) {
            return Err(buf);
        }
        let (hop, local) = match (f.via, dir) {
            (Via6::Nat { .. } | Via6::FullNat { .. }, _) => {
                let toward = if dir == Dir::Original {
                    f.rip
                } else {
                    sess.original.src
                };
                let hop = match self.snap.route6(toward) {
                    Some(hop) if meta.hop_limit > 1 => hop,
                    _ => return Err(buf),
                };
                if meta.total_len > usize::from(self.snap.iface(hop.iface).mtu) {
                    return Err(buf);
                }
                let local = local6(&self.lips6, f);
                if matches!(f.via, Via6::FullNat { .. }) && local.is_none() {
                    return Err(buf);
                }
                (hop, local)
            }
            (Via6::Dr, Dir::Original) => match self.snap.route6(f.rip) {
                Some(hop) if hop.on_link => (hop, None),
                _ => return Err(buf),
            },
            // NAT64's client side: translated and routed by the full path's own step, which
            // is all the full path does with it once its session is found.
            (Via6::Nat64 { lip, lport, .. }, Dir::Original) => {
                let mut buf = buf;
                buf.truncate(l3 + meta.total_len);
                let verdict = self.nat64_out(id, event, buf, l3, meta, (lip, lport));
                self.settle(verdict);
                return Ok(());
            }
            _ => return Err(buf),
        };
        // Taken: from here on the packet's outcome is this path's.
        let end = l3 + meta.total_len;
        let mut buf = buf;
        buf.truncate(end);
        if f.via != Via6::Dr {
            let pkt = &mut buf.data_mut()[l3..end];
            let at = (meta, usize::from(meta.l4_off), key.proto == Proto::Tcp);
            let session = (f, &sess.original);
            rewrite_session6(pkt, at, id, session, dir, local, &self.proxy_words6);
        }
        let before = (f.slot, sess.state);
        self.session6_packet(id, dir, event, before, meta.total_len);
        if let Err(r) = self.route6(buf, l3, hop, None) {
            self.counters.count_drop(r);
        }
        Ok(())
    }
}
