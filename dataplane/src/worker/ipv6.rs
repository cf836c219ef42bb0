//! IPv6 to the director itself: neighbour discovery (solicitations for its IPv6 DIPs and
//! VIPs answered, those for DIPs copied to the kernel; solicitors and advertised neighbours
//! learnt into the IPv6 neighbour table, shared with the other workers; IPv6 next hops
//! resolved by solicitations), ICMPv6 echo to the DIPs and VIPs answered, the DIPs' other
//! traffic and the link-local groups' handed to the kernel, a VIP's to its service
//! ([`super::service6`]). Other IPv6 is dropped.

use super::icmp6;
use super::local::send_built;
use super::tx::{Emit, Parked, Tx, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::checksum;
use crate::counters::{Counter, Counters};
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmpv6::{self, Nd};
use crate::local::{self, NeighbourAdvert};
use crate::parse::{self, Ipv6Meta, Parsed, IPV6_HEADER_LEN, L4};
use crate::rewrite;
use crate::snapshot::Snapshot;
use crate::wire::EthernetAddress;
use core::net::Ipv6Addr;

impl<D: Device> Worker<D> {
    /// Classifies an IPv6 packet received on interface `iface` (`group`: sent to a group
    /// MAC; `copy`: a peer's copy of neighbour discovery, for the neighbour table only):
    /// neighbour discovery (checked, learnt from, then a solicitation for one of the
    /// interface's DIPs answered), echo requests to a DIP answered, the DIPs' other traffic
    /// and the link-local groups' to the kernel; anything else is dropped.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn ipv6(
        &mut self,
        port: u16,
        iface: u16,
        mut buf: D::Buf,
        p: &Parsed,
        meta: &Ipv6Meta,
        group: bool,
        copy: bool,
    ) -> Verdict<D::Buf> {
        let l3 = p.l3_off;
        let (src, dst) = parse::ipv6_addrs(&buf.data()[l3..]);
        let m = &Ip6 {
            src,
            dst,
            hop_limit: meta.hop_limit,
            // ND and echo are handled only right after the fixed header.
            l4: if usize::from(meta.l4_off) == IPV6_HEADER_LEN {
                meta.l4
            } else {
                L4::None
            },
        };
        if !copy {
            self.count_extension_headers(meta.ext);
        }
        if m.src.is_multicast() || m.src.is_loopback() || m.dst.is_unspecified() {
            return Err(DropReason::MartianAddress);
        }
        buf.truncate(l3 + meta.total_len);
        let nd = match m.l4 {
            L4::Icmp { ty, .. } if icmpv6::is_nd(ty) => {
                let msg = &buf.data()[l3 + IPV6_HEADER_LEN..];
                Some(icmpv6::neighbour_discovery(m.src, m.dst, m.hop_limit, msg)?)
            }
            _ => None,
        };
        if let Some(nd) = nd {
            if self.learn6(iface, m.src, nd) && !copy {
                self.share_with_peers(port, &buf, Counter::NdToPeers);
            }
        }
        if copy && nd.is_some() {
            // Another worker handled it; this copy only fed the neighbour table.
            return Ok(Emit::Absorbed);
        }
        // Anything else handed over by another worker is a session's packet for a VIP or
        // LIP (below).
        let local = if group { None } else { self.snap.local6(m.dst) };
        let (vip, lip) = local.map_or((false, false), |l| (l.vip, l.lip));
        if group {
            // Only a link-local group, at its own group MAC (33:33 and its low 32 bits).
            if !icmpv6::is_link_local_group(m.dst) || icmpv6::group_mac(m.dst) != p.dst_mac {
                return Err(DropReason::OtherHost);
            }
        } else if m.src.is_unspecified() {
            return Err(DropReason::Ipv6NotSupported);
        } else if local.is_none() {
            // Through the director: a NAT66 reply, if NAT66 services exist.
            if self.snap.has_nat6() && nd.is_none() {
                if meta.is_fragment() {
                    return self.fragment6(port, buf, l3, meta, (m.src, m.dst), None, copy);
                }
                return self.nat_reply6(port, buf, l3, meta, (m.src, m.dst), copy);
            }
            return Err(DropReason::Ipv6NotSupported);
        }
        if let Some(Nd::Solicit { target, source_mac }) = nd {
            if self.snap.answers_nd(iface, target) {
                return self.neighbour_advert(port, iface, buf, p, m, target, source_mac);
            }
        }
        if group {
            self.counters.count(Counter::MulticastToKernel);
            return self.exception(port, buf);
        }
        if let L4::Icmp {
            ty: icmpv6::ECHO_REQUEST,
            code: 0,
            ..
        } = m.l4
        {
            return self.echo6_reply(buf, l3, m);
        }
        if let L4::Icmp { ty, .. } = meta.l4 {
            if (vip || lip) && icmp6::is_error(ty) {
                return self.relay_icmpv6_error(port, buf, l3, meta, (m.src, m.dst), copy);
            }
        }
        if vip || lip {
            if meta.is_fragment() {
                return self.fragment6(port, buf, l3, meta, (m.src, m.dst), Some(lip), copy);
            }
            return self.service6(port, buf, l3, meta, (m.src, m.dst), lip, copy);
        }
        self.exception(port, buf)
    }

    /// Counts the extension headers an IPv6 packet carried (`parse::EXT_*` bits).
    fn count_extension_headers(&mut self, ext: u8) {
        for (bit, c) in [
            (parse::EXT_HOP_BY_HOP, Counter::Ipv6HopByHop),
            (parse::EXT_ROUTING, Counter::Ipv6Routing),
            (parse::EXT_FRAGMENT, Counter::Ipv6Fragments),
            (parse::EXT_DEST_OPTS, Counter::Ipv6DestOpts),
        ] {
            if ext & bit != 0 {
                self.counters.count(c);
            }
        }
    }

    /// Learns from a valid neighbour discovery message from `src` received on interface
    /// `iface`, as Linux does: the source link-layer address of a solicitation for one of the
    /// interface's DIPs (the solicitor will talk to us), and the target link-layer address of
    /// an advertisement for a neighbour already in the table (an answer to a solicitation, or
    /// an update). Parked packets waiting for it leave. True if the message should reach the
    /// other workers' tables too (such a solicitation; any advertisement with an address:
    /// another worker may be the one waiting for it).
    fn learn6(&mut self, iface: u16, src: Ipv6Addr, nd: Nd) -> bool {
        let (ip, mac, known) = match nd {
            Nd::Solicit {
                target,
                source_mac: Some(mac),
            } if !src.is_unspecified() && self.snap.answers_nd(iface, target) => (src, mac, true),
            Nd::Advert {
                target,
                target_mac: Some(mac),
            } => (target, mac, self.neigh6.contains(target)),
            _ => return false,
        };
        if mac[0] & 1 == 1 {
            return false;
        }
        if known {
            let tx = &mut self.tx;
            let counters = &mut self.counters;
            self.neigh6.learn(
                ip,
                EthernetAddress(mac),
                self.now,
                |p: Parked<D::Buf>, mac| {
                    let mut b = p.buf;
                    rewrite::set_dst_mac(&mut b, mac.0);
                    tx.send(p.port, b, counters);
                },
            );
        }
        true
    }

    /// Answers a neighbour solicitation for `target`, a DIP of interface `iface`, in the
    /// solicitation's buffer: to its source at the MAC of its source link-layer option (else
    /// the frame's source), or — a duplicate address detection probe, from the unspecified
    /// address — to all-nodes. The kernel gets a copy first, to learn the solicitor as ARP
    /// requests teach it.
    #[allow(clippy::too_many_arguments)]
    fn neighbour_advert(
        &mut self,
        port: u16,
        iface: u16,
        mut buf: D::Buf,
        p: &Parsed,
        m: &Ip6,
        target: Ipv6Addr,
        source_mac: Option<[u8; 6]>,
    ) -> Verdict<D::Buf> {
        // The kernel holds the DIPs, not the VIPs.
        if self.snap.dip6(target).is_some() {
            self.copy_to_kernel(port, &buf, Counter::NdToKernel);
        }
        let (dst, dst_mac, solicited) = if m.src.is_unspecified() {
            let all = icmpv6::ALL_NODES;
            (all, icmpv6::group_mac(all), false)
        } else {
            (m.src, source_mac.unwrap_or(p.src_mac), true)
        };
        let vlan = self.snap.iface(iface).vlan;
        let na = NeighbourAdvert {
            target,
            dst,
            mac: self.tx.ports[port as usize].mac().0,
            solicited,
        };
        if !local::write_neighbour_advert(&mut buf, vlan, dst_mac, &na) {
            return Err(DropReason::NoBuffer);
        }
        self.counters.count(Counter::NeighbourAdverts);
        Ok(Emit::Port { port, buf })
    }

    /// Answers an ICMPv6 echo request to one of the director's IPv6 addresses in place,
    /// routed back to its source: addresses swapped (which leaves the checksum's pseudo-header
    /// sum as it was), type 129, hop limit 64.
    fn echo6_reply(&mut self, mut buf: D::Buf, l3: usize, m: &Ip6) -> Verdict<D::Buf> {
        let hop = self.snap.route6(m.src).ok_or(DropReason::NoRoute)?;
        let ip = &mut buf.data_mut()[l3..];
        ip[7] = 64;
        ip[8..24].copy_from_slice(&m.dst.octets());
        ip[24..40].copy_from_slice(&m.src.octets());
        let msg = &mut ip[IPV6_HEADER_LEN..];
        let old = u16::from_be_bytes([msg[0], msg[1]]);
        msg[0] = icmpv6::ECHO_REPLY;
        let new = u16::from_be_bytes([msg[0], msg[1]]);
        let c = checksum::update16(u16::from_be_bytes([msg[2], msg[3]]), old, new);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        self.counters.count(Counter::IcmpEchoReplies);
        Ok(Emit::route6(buf, l3, hop))
    }
}

/// Sends a neighbour solicitation for `ip` out of the interface its IPv6 route uses, from the
/// interface's IPv6 DIP on its subnet. With no such route any more (a new configuration took
/// the subnet away) nothing is sent: the entry is given up after its probes like an
/// unanswered one (a solicitation is no received frame, so nothing is counted as dropped).
pub(super) fn send_neighbour_solicit<D: Device>(
    snap: &Snapshot,
    tx: &mut Tx<D>,
    c: &mut Counters,
    ip: Ipv6Addr,
) {
    let Some((hop, src)) = snap
        .route6(ip)
        .and_then(|hop| Some((hop, snap.source_addr6(hop.iface, hop.nexthop)?)))
    else {
        return;
    };
    let iface = snap.iface(hop.iface);
    send_built(tx, c, iface.port, Counter::NeighbourSolicits, |b, mac| {
        local::write_neighbour_solicit(b, iface.vlan, mac, src, hop.nexthop)
    });
}

/// What the IPv6 paths here read of a packet: its addresses (from the packet: the parse keeps
/// them out of its summary), hop limit, and its ICMPv6 header when that follows the fixed
/// header directly (`L4::None` otherwise: neighbour discovery and echo behind extension
/// headers are the kernel's).
struct Ip6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    l4: L4,
}
