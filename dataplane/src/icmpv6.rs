//! ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861): message types, the checks a
//! neighbour discovery message must pass before the director acts on it, and the multicast
//! addresses it is sent to.

use crate::checksum;
use crate::drop::DropReason;
use crate::local::ND_HOP_LIMIT;
use core::net::Ipv6Addr;

/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Destination Unreachable (RFC 4443 3.1).
pub const DEST_UNREACH: u8 = 1;
/// Code of Destination Unreachable: port unreachable.
pub const PORT_UNREACH: u8 = 4;
/// Packet Too Big (RFC 4443 3.2): the MTU of the link the packet could not enter.
pub const PACKET_TOO_BIG: u8 = 2;
/// Time Exceeded (RFC 4443 3.3); code 0: hop limit exceeded in transit.
pub const TIME_EXCEEDED: u8 = 3;
/// The most an ICMPv6 error may take (RFC 4443 2.4 (c)): the minimum IPv6 MTU.
pub const ERROR_MAX: usize = 1280;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// Router advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Neighbour solicitation.
pub const NEIGHBOUR_SOLICIT: u8 = 135;
/// Neighbour advertisement.
pub const NEIGHBOUR_ADVERT: u8 = 136;
/// Redirect.
pub const REDIRECT: u8 = 137;

/// Neighbour advertisement flag: the sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// Neighbour advertisement flag: an answer to a solicitation.
pub const NA_SOLICITED: u8 = 0x40;
/// Neighbour advertisement flag: the receiver should replace a link-layer address it has.
pub const NA_OVERRIDE: u8 = 0x20;

/// Option: source link-layer address.
pub const OPT_SOURCE_LLADDR: u8 = 1;
/// Option: target link-layer address.
pub const OPT_TARGET_LLADDR: u8 = 2;

/// All-nodes, link-local scope (ff02::1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// True for the neighbour discovery message types (router and neighbour solicitations and
/// advertisements, redirects).
#[inline]
pub fn is_nd(ty: u8) -> bool {
    (ROUTER_SOLICIT..=REDIRECT).contains(&ty)
}

/// What a valid neighbour discovery message asks of the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nd {
    /// A neighbour solicitation for `target`; `source_mac` is its source link-layer address
    /// option, if it has one (never from the unspecified address).
    Solicit {
        /// The address whose link-layer address is asked.
        target: Ipv6Addr,
        /// The solicitor's link-layer address, from its option.
        source_mac: Option<[u8; 6]>,
    },
    /// A neighbour advertisement for `target`, with its target link-layer address option if
    /// it has one.
    Advert {
        /// The address advertised.
        target: Ipv6Addr,
        /// Its link-layer address, from the option.
        target_mac: Option<[u8; 6]>,
    },
    /// Any other message (router messages, redirects): the kernel's.
    Other,
}

/// Checks a neighbour discovery message `msg` (the ICMPv6 message, `msg[0]` its type) sent
/// from `src` to `dst` with `hop_limit`, as RFC 4861 (6.1, 7.1, 8.1) asks of a receiver: hop
/// limit 255 (the message cannot have been routed), code 0, a correct ICMPv6 checksum, the
/// fixed part of its type present, every option of non-zero length and within the message;
/// for solicitations and advertisements a unicast target; a solicitation from the unspecified
/// address (duplicate address detection) sent to a solicited-node group and without a source
/// link-layer address; an advertisement to a group not flagged solicited.
///
/// # Errors
/// [`DropReason::BadNeighbourDiscovery`] when a check fails.
pub fn neighbour_discovery(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: &[u8],
) -> Result<Nd, DropReason> {
    const BAD: DropReason = DropReason::BadNeighbourDiscovery;
    if hop_limit != ND_HOP_LIMIT || msg.len() < 8 || msg[1] != 0 {
        return Err(BAD);
    }
    if checksum::icmpv6(src, dst, msg) != 0 {
        return Err(BAD);
    }
    let ty = msg[0];
    let fixed = match ty {
        ROUTER_SOLICIT => 8,
        ROUTER_ADVERT => 16,
        NEIGHBOUR_SOLICIT | NEIGHBOUR_ADVERT => 24,
        REDIRECT => 40,
        _ => return Err(BAD),
    };
    if msg.len() < fixed {
        return Err(BAD);
    }
    let (mut source_mac, mut target_mac) = (None, None);
    let mut opts = &msg[fixed..];
    while !opts.is_empty() {
        let len = opts.get(1).map_or(0, |&l| usize::from(l) * 8);
        if len == 0 || len > opts.len() {
            return Err(BAD);
        }
        if len == 8 {
            let mut mac = [0; 6];
            mac.copy_from_slice(&opts[2..8]);
            match opts[0] {
                OPT_SOURCE_LLADDR => source_mac = Some(mac),
                OPT_TARGET_LLADDR => target_mac = Some(mac),
                _ => {}
            }
        }
        opts = &opts[len..];
    }
    if ty != NEIGHBOUR_SOLICIT && ty != NEIGHBOUR_ADVERT {
        return Ok(Nd::Other);
    }
    let mut t = [0; 16];
    t.copy_from_slice(&msg[8..24]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return Err(BAD);
    }
    if ty == NEIGHBOUR_ADVERT {
        if dst.is_multicast() && msg[4] & NA_SOLICITED != 0 {
            return Err(BAD);
        }
        return Ok(Nd::Advert { target, target_mac });
    }
    if src.is_unspecified() && (dst != solicited_node(target) || source_mac.is_some()) {
        return Err(BAD);
    }
    Ok(Nd::Solicit { target, source_mac })
}

/// The solicited-node multicast group of `addr` (RFC 4291 2.7.1): ff02::1:ff00:0/104 and the
/// address's low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet group MAC of IPv6 multicast group `group` (RFC 2464 7): 33:33 and the
/// group's low 32 bits.
pub fn group_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// True for a multicast group of link-local scope (ff02::/16: all-nodes, solicited-node,
/// MLD, routing protocols' groups) — the groups the director's kernel may need.
#[inline]
pub fn is_link_local_group(group: Ipv6Addr) -> bool {
    group.segments()[0] & 0xff0f == 0xff02
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);
    const DIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0x12, 0x3456);

    /// A neighbour solicitation for `target` with the given options, checksummed.
    fn ns(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, opts: &[u8]) -> Vec<u8> {
        let mut m = vec![NEIGHBOUR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        m.extend_from_slice(opts);
        let c = checksum::icmpv6(src, dst, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    const SLLA: [u8; 8] = [OPT_SOURCE_LLADDR, 1, 2, 0, 0, 0, 0, 9];

    #[test]
    fn groups() {
        assert_eq!(
            solicited_node(DIP),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            group_mac(solicited_node(DIP)),
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
        assert!(is_link_local_group(ALL_NODES));
        assert!(is_link_local_group(solicited_node(DIP)));
        assert!(!is_link_local_group("ff05::2".parse().unwrap()));
        assert!(is_nd(ROUTER_SOLICIT) && is_nd(REDIRECT));
        assert!(!is_nd(ECHO_REQUEST) && !is_nd(138));
    }

    #[test]
    fn a_solicitation_gives_its_target_and_source_mac() {
        let g = solicited_node(DIP);
        let m = ns(A, g, DIP, &SLLA);
        assert_eq!(
            neighbour_discovery(A, g, 255, &m),
            Ok(Nd::Solicit {
                target: DIP,
                source_mac: Some([2, 0, 0, 0, 0, 9])
            })
        );
        // Without the option (a unicast reachability probe), and for DAD.
        let m = ns(A, DIP, DIP, &[]);
        assert_eq!(
            neighbour_discovery(A, DIP, 255, &m),
            Ok(Nd::Solicit {
                target: DIP,
                source_mac: None
            })
        );
        let m = ns(Ipv6Addr::UNSPECIFIED, g, DIP, &[]);
        assert!(neighbour_discovery(Ipv6Addr::UNSPECIFIED, g, 255, &m).is_ok());
    }

    #[test]
    fn invalid_messages_are_refused() {
        let bad = Err(DropReason::BadNeighbourDiscovery);
        let g = solicited_node(DIP);
        let good = ns(A, g, DIP, &SLLA);
        // Routed (hop limit not 255).
        assert_eq!(neighbour_discovery(A, g, 254, &good), bad);
        // Checksum, code, truncation.
        let mut m = good.clone();
        m[30] ^= 1;
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
        let mut m = good.clone();
        m[1] = 1;
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
        assert_eq!(neighbour_discovery(A, g, 255, &good[..20]), bad);
        // A zero-length option (which would loop forever), an option past the end.
        let m = ns(A, g, DIP, &[OPT_SOURCE_LLADDR, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
        let m = ns(A, g, DIP, &[OPT_SOURCE_LLADDR, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
        // A multicast target; DAD with a source link-layer address, or not to the group.
        let m = ns(A, g, ALL_NODES, &SLLA);
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
        let u = Ipv6Addr::UNSPECIFIED;
        let m = ns(u, g, DIP, &SLLA);
        assert_eq!(neighbour_discovery(u, g, 255, &m), bad);
        let m = ns(u, DIP, DIP, &[]);
        assert_eq!(neighbour_discovery(u, DIP, 255, &m), bad);
        // An advertisement to a group flagged solicited; an unknown type.
        let mut m = ns(A, ALL_NODES, DIP, &[]);
        m[0] = NEIGHBOUR_ADVERT;
        m[4] = NA_SOLICITED;
        m[2..4].fill(0);
        let c = checksum::icmpv6(A, ALL_NODES, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(neighbour_discovery(A, ALL_NODES, 255, &m), bad);
        m[4] = NA_OVERRIDE;
        m[2..4].fill(0);
        let c = checksum::icmpv6(A, ALL_NODES, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            neighbour_discovery(A, ALL_NODES, 255, &m),
            Ok(Nd::Advert {
                target: DIP,
                target_mac: None
            })
        );
        let mut m = good;
        m[0] = ECHO_REQUEST;
        m[2..4].fill(0);
        let c = checksum::icmpv6(A, g, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(neighbour_discovery(A, g, 255, &m), bad);
    }
}
