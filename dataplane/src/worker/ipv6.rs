//! IPv6 to the director itself: neighbour solicitations for its IPv6 DIPs answered (and
//! copied to the kernel), ICMPv6 echo to them answered, the rest of their traffic and the
//! link-local groups' handed to the kernel. IPv6 is not forwarded: other IPv6 is dropped.

use super::tx::{Emit, Verdict};
use super::Worker;
use crate::buf::PacketBuf;
use crate::checksum;
use crate::counters::Counter;
use crate::device::Device;
use crate::drop::DropReason;
use crate::icmpv6::{self, Nd};
use crate::local::{self, NeighbourAdvert};
use crate::parse::{Ipv6Meta, Parsed, IPV6_HEADER_LEN, L4};
use core::net::Ipv6Addr;

impl<D: Device> Worker<D> {
    /// Classifies an IPv6 packet received on interface `iface` (`group`: sent to a group
    /// MAC): neighbour discovery (checked, then a solicitation for one of the interface's
    /// DIPs answered), echo requests to a DIP answered, the DIPs' other traffic and the
    /// link-local groups' to the kernel; anything else is dropped.
    pub(super) fn ipv6(
        &mut self,
        port: u16,
        iface: u16,
        mut buf: D::Buf,
        p: &Parsed,
        m: &Ipv6Meta,
        group: bool,
    ) -> Verdict<D::Buf> {
        if m.src.is_multicast() || m.src.is_loopback() || m.dst.is_unspecified() {
            return Err(DropReason::MartianAddress);
        }
        let l3 = p.l3_off;
        buf.truncate(l3 + m.total_len);
        let nd = match m.l4 {
            L4::Icmp { ty, .. } if icmpv6::is_nd(ty) => {
                let msg = &buf.data()[l3 + IPV6_HEADER_LEN..];
                Some(icmpv6::neighbour_discovery(m.src, m.dst, m.hop_limit, msg)?)
            }
            _ => None,
        };
        if group {
            // Only a link-local group, at its own group MAC (33:33 and its low 32 bits).
            if !icmpv6::is_link_local_group(m.dst) || icmpv6::group_mac(m.dst) != p.dst_mac {
                return Err(DropReason::OtherHost);
            }
        } else if m.src.is_unspecified() || self.snap.dip6(m.dst).is_none() {
            return Err(DropReason::Ipv6NotSupported);
        }
        if let Some(Nd::Solicit { target, source_mac }) = nd {
            if self.snap.dip6(target) == Some(iface) {
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
            return self.echo6_reply(port, buf, l3, m);
        }
        self.exception(port, buf)
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
        m: &Ipv6Meta,
        target: Ipv6Addr,
        source_mac: Option<[u8; 6]>,
    ) -> Verdict<D::Buf> {
        if let Some(super::PortRole::Data { exception: Some(e) }) =
            self.roles.get(port as usize).copied()
        {
            let copy = Self::copy_buf(&mut self.tx, port, &buf).ok_or(DropReason::NoBuffer);
            if copy.is_ok() {
                self.counters.count(Counter::NdToKernel);
            }
            self.settle(copy.map(|buf| Emit::Port { port: e, buf }));
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

    /// Answers an ICMPv6 echo request to one of the director's IPv6 addresses in place, back
    /// to the frame's sender (its source MAC): addresses swapped (which leaves the checksum's
    /// pseudo-header sum as it was), type 129, hop limit 64.
    fn echo6_reply(
        &mut self,
        port: u16,
        mut buf: D::Buf,
        l3: usize,
        m: &Ipv6Meta,
    ) -> Verdict<D::Buf> {
        let port_mac = self.tx.ports[port as usize].mac().0;
        let d = buf.data_mut();
        let (eth, rest) = d.split_at_mut(6);
        eth.copy_from_slice(&rest[0..6]);
        rest[0..6].copy_from_slice(&port_mac);
        let ip = &mut d[l3..];
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
        Ok(Emit::Port { port, buf })
    }
}
