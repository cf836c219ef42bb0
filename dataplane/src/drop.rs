//! Why the data path dropped a packet: a small `Copy` enum, counted per reason by each worker.

use core::fmt;

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident => $text:literal, )*) => {
        /// The reason a packet was dropped. Every drop on the data path has exactly one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// How many reasons there are (the length of a per-reason counter array).
            pub const COUNT: usize = DropReason::ALL.len();

            /// A stable snake_case name, used in counters and logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }

            /// The index of this reason in a per-reason counter array.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// A chained (multi-segment) buffer: the data path parses one contiguous frame only.
    MultiSegment => "multi_segment",
    /// Frame shorter than an Ethernet header.
    TruncatedEthernet => "truncated_ethernet",
    /// 802.1Q tag cut short, or more tags than the data path handles.
    BadVlan => "bad_vlan",
    /// Unicast frame for another host's MAC (promiscuous port), or IP to a group MAC.
    OtherHost => "other_host",
    /// Frame on a port/VLAN with no interface configured.
    UnknownVlan => "unknown_vlan",
    /// Ethertype the director does not handle (not IPv4, IPv6 or ARP).
    UnknownEthertype => "unknown_ethertype",
    /// ARP packet truncated, or not Ethernet/IPv4 ARP.
    MalformedArp => "malformed_arp",
    /// ARP that needs no answer from the director (not a request for one of its addresses).
    ArpNotForUs => "arp_not_for_us",
    /// IPv4 header truncated, IHL < 5, version not 4, or total length inconsistent with the frame.
    MalformedIpv4 => "malformed_ipv4",
    /// IPv4 header checksum does not verify.
    BadIpv4Checksum => "bad_ipv4_checksum",
    /// Source or destination address no host may use on the wire (RFC 1122 3.2.1.3, RFC
    /// 5735): 0.0.0.0/8, 127.0.0.0/8, multicast or reserved (224.0.0.0/3, broadcast included)
    /// as the source; 0.0.0.0/8, 127.0.0.0/8 or 240.0.0.0/4 as the destination.
    MartianAddress => "martian_address",
    /// IPv4 fragment rvs does not forward: a TCP SYN in fragments, an ICMP error in
    /// fragments, a first fragment of a session whose PROXY protocol header is still to be
    /// inserted, or a fragment to a VIP or LIP that no service or session takes.
    Fragment => "fragment",
    /// First fragment too short to hold the L4 header whole (RFC 1858: the TCP header with
    /// its options, 8 bytes of UDP or ICMP), or a TCP fragment at offset 8 bytes.
    FragmentTiny => "fragment_tiny",
    /// Later fragment whose datagram's first fragment was not seen (or its entry expired):
    /// nothing says which session it belongs to (see [`crate::frag`]).
    FragmentUnmatched => "fragment_unmatched",
    /// First fragment refused because its bucket of the fragment table is full of live
    /// entries (a fragment flood; entries expire after [`crate::frag::FRAGMENT_TIMEOUT_MS`]).
    FragmentTableFull => "fragment_table_full",
    /// IPv6 header truncated or inconsistent.
    MalformedIpv6 => "malformed_ipv6",
    /// IPv6 packet not addressed to one of the director's IPv6 addresses (nor to a
    /// link-local group): the data path does not forward IPv6 yet.
    Ipv6NotSupported => "ipv6_not_supported",
    /// IPv6 routing header with segments left (RFC 5095's type 0 among them): rvs is no
    /// segment's endpoint and does not forward by source route.
    Ipv6RoutingHeader => "ipv6_routing_header",
    /// Neighbour discovery message that fails RFC 4861's validity checks (hop limit not 255,
    /// code not 0, ICMPv6 checksum, too short, an option of length 0, a multicast target, a
    /// source link-layer option from the unspecified address).
    BadNeighbourDiscovery => "bad_neighbour_discovery",
    /// TCP header truncated or data offset out of range.
    MalformedTcp => "malformed_tcp",
    /// UDP header truncated or length field inconsistent.
    MalformedUdp => "malformed_udp",
    /// ICMP header truncated.
    MalformedIcmp => "malformed_icmp",
    /// TCP flag combination no connection uses (the invalid ones of Linux conntrack's
    /// table: SYN with FIN or RST, FIN without ACK, no flags): dropped before any lookup.
    BadTcpFlags => "bad_tcp_flags",
    /// An ICMP error about a session's packet whose ICMP checksum does not verify (the
    /// director rewrites its quote, so it checks first, as IPVS does).
    BadIcmpChecksum => "bad_icmp_checksum",
    /// TTL would reach zero on a routed (NAT/FullNAT) forward (an ICMP time exceeded goes
    /// back to the sender, within the ICMP rate limit).
    TtlExceeded => "ttl_exceeded",
    /// Not addressed to the director and no session matches.
    NotForUs => "not_for_us",
    /// Addressed to a managed VIP or LIP the director does not hold now (standby: keepalived
    /// has it on another director), and no session matches.
    StandbyAddress => "standby_address",
    /// Addressed to a peer director's LIP (a cluster's `peer_lips`) and no session matches:
    /// only sessions synced from that peer are served on it.
    PeerLip => "peer_lip",
    /// Addressed to a service but no session matches and the packet cannot open one
    /// (TCP without SYN, ICMP that is not an echo request).
    NoSession => "no_session",
    /// Addressed to a VIP (not also a DIP or LIP) on a TCP or UDP port no service has: a
    /// segment without RST is answered with a RST, a datagram with an ICMP (ICMPv6) port
    /// unreachable, within their rate limit, as the kernel answers for a port with no socket
    /// (`no_service_answers` counts the answers).
    NoService => "no_service",
    /// An ACK to a SYN-proxy service without a session whose SYN cookie does not check (a
    /// guess, a stale or a spoofed ACK).
    BadCookie => "bad_cookie",
    /// A packet of a SYN-proxied session whose real server has not answered the director's
    /// SYN yet (the client retransmits it).
    SynProxyPending => "synproxy_pending",
    /// The service has no dest that can take a new session (none, or all weight 0).
    NoDest => "no_dest",
    /// The session table is at its hard capacity; new sessions are refused.
    TableFull => "table_full",
    /// Every LIP of the FullNAT pool has no free port left on this worker.
    LipExhausted => "lip_exhausted",
    /// A new session's key collides with a live session's key.
    SessionConflict => "session_conflict",
    /// No route to the destination or next hop.
    NoRoute => "no_route",
    /// Next-hop MAC unresolved and the packet could not be parked (queue full or ARP gave up).
    NeighbourUnresolved => "neighbour_unresolved",
    /// Packet (encapsulated for TUN) exceeds the egress MTU: with DF set an ICMP
    /// fragmentation needed goes back to the sender; the director does not fragment.
    TooBig => "too_big",
    /// No buffer could be had to build a packet (ARP, ICMP reply).
    NoBuffer => "no_buffer",
    /// Addressed to the director, but there is no exception path to hand it to.
    NoExceptionPath => "no_exception_path",
    /// The device did not accept the packet (TX queue full).
    TxFull => "tx_full",
    /// The ring to the worker owning the packet's session was full.
    RedirectFull => "redirect_full",
    /// Frame does not fit the buffer headroom for the rewrite (encapsulation, VLAN push).
    NoHeadroom => "no_headroom",
    /// An ICMP error about a NAT64 session that RFC 7915 does not translate to the other
    /// family (source quench, redirect, a parameter problem other than an unknown next
    /// header, unknown codes), or whose quote is not a TCP/UDP packet.
    Untranslatable => "untranslatable",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
