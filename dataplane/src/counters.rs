//! What a worker counts besides drops: one enum-indexed array, the way [`DropReason`] works.
//!
//! Each [`Counter`] has a snake_case name (in `rvsadm --workers` and the logs) and a
//! Prometheus metric name. The worker bumps its plain [`Counters`] on the data path and copies
//! all of them into its shared [`crate::stats::WorkerCounters`] in its slow jobs; the control
//! plane lists and exports every one of them by walking [`Counter::ALL`]. Adding a counter is
//! one line in the table below.

use crate::drop::DropReason;
use crate::stats::WorkerCounters;
use core::fmt;
use core::sync::atomic::AtomicU64;

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident $method:ident => $metric:literal, )*) => {
        /// A whole-worker event counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Counter {
            $( $(#[doc = $doc])* $name, )*
        }

        impl Counter {
            /// Every counter, in array order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// How many counters there are (the length of a counter array).
            pub const COUNT: usize = Counter::ALL.len();

            /// A stable snake_case name, used in listings and logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Counter::$name => stringify!($method),)*
                }
            }

            /// The Prometheus metric (a counter, labelled by worker) that exports it.
            pub fn metric(self) -> &'static str {
                match self {
                    $(Counter::$name => $metric,)*
                }
            }

            /// What it counts: its doc comment, the metric's `# HELP` text.
            pub fn help(self) -> &'static str {
                match self {
                    $(Counter::$name => concat!($($doc),*).trim_ascii_start(),)*
                }
            }

            /// The index of this counter in a counter array.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl Counters {
            $(
                $(#[doc = $doc])*
                #[inline]
                pub fn $method(&self) -> u64 {
                    self.values[Counter::$name as usize]
                }
            )*
        }

        impl WorkerCounters {
            $(
                $(#[doc = $doc])*
                #[inline]
                pub fn $method(&self) -> &AtomicU64 {
                    &self.counters[Counter::$name as usize]
                }
            )*
        }
    };
}

counters! {
    /// Frames received on data and exception ports.
    RxPackets rx_packets => "rvs_worker_rx_packets_total",
    /// Bytes received.
    RxBytes rx_bytes => "rvs_worker_rx_bytes_total",
    /// Frames handed to devices.
    TxPackets tx_packets => "rvs_worker_tx_packets_total",
    /// Bytes handed to devices.
    TxBytes tx_bytes => "rvs_worker_tx_bytes_total",
    /// Sessions created.
    SessionsCreated sessions_created => "rvs_worker_sessions_created_total",
    /// Sessions expired by their timers.
    SessionsExpired sessions_expired => "rvs_worker_sessions_expired_total",
    /// TCP sessions expired half-open (SYN_RECV or SYNACK): the client never completed the
    /// handshake (a spoofed SYN, or a client that gave up).
    HalfOpenExpired half_open_expired => "rvs_worker_half_open_expired_total",
    /// SYNs a server answered with a bare ACK instead of a SYN/ACK (it still held the 4-tuple
    /// in TIME_WAIT, or the SYN was spoofed): the session stays half-open, not established.
    SynAnsweredAck syn_answered_ack => "rvs_worker_syn_answered_ack_total",
    /// SYNs a server answered with a RST (nothing listening): the session closes.
    SynAnsweredRst syn_answered_rst => "rvs_worker_syn_answered_rst_total",
    /// Sessions replaced by a new SYN in TIME_WAIT/CLOSE.
    SessionsReused sessions_reused => "rvs_worker_sessions_reused_total",
    /// Frames handed to the exception path (the kernel).
    Exception exception => "rvs_worker_exception_total",
    /// Link-local IPv4 multicast (224.0.0.0/24: VRRP adverts, IGMP...) handed to the kernel
    /// (also counted in `exception`).
    MulticastToKernel multicast_to_kernel => "rvs_worker_multicast_to_kernel_total",
    /// ARP replies sent for the director's addresses.
    ArpReplies arp_replies => "rvs_worker_arp_replies_total",
    /// ARP requests sent to resolve next hops.
    ArpRequests arp_requests => "rvs_worker_arp_requests_total",
    /// Gratuitous ARPs sent for managed addresses the director took over.
    GratuitousArps gratuitous_arps => "rvs_worker_gratuitous_arps_total",
    /// ICMP and ICMPv6 echo replies sent for the director's addresses.
    IcmpEchoReplies icmp_echo_replies => "rvs_worker_icmp_echo_replies_total",
    /// Neighbour advertisements sent for the director's IPv6 addresses (answers to
    /// neighbour solicitations).
    NeighbourAdverts neighbour_adverts => "rvs_worker_neighbour_adverts_total",
    /// IPv6 packets received with a hop-by-hop options header.
    Ipv6HopByHop ipv6_hop_by_hop => "rvs_worker_ipv6_hop_by_hop_total",
    /// IPv6 packets received with a routing header (none left to visit: passed over).
    Ipv6Routing ipv6_routing => "rvs_worker_ipv6_routing_total",
    /// IPv6 fragments received (atomic fragments, whole packets, not counted).
    Ipv6Fragments ipv6_fragments => "rvs_worker_ipv6_fragments_total",
    /// IPv6 packets received with a destination options header.
    Ipv6DestOpts ipv6_destination_options => "rvs_worker_ipv6_destination_options_total",
    /// Neighbour solicitations sent to resolve IPv6 next hops (and probe stale ones).
    NeighbourSolicits neighbour_solicits => "rvs_worker_neighbour_solicits_total",
    /// First fragments of datagrams entered in the fragment table (their later fragments
    /// follow them).
    FragmentsTracked fragments_tracked => "rvs_worker_fragments_tracked_total",
    /// Later fragments that followed their datagram's first fragment.
    FragmentsFollowed fragments_followed => "rvs_worker_fragments_followed_total",
    /// TUN: packets whose encapsulation no longer fit the MTU, sent as outer IPv4 fragments
    /// (the packet had DF clear).
    TunnelFragmented tunnel_fragmented => "rvs_worker_tunnel_fragmented_total",
    /// TUN: the frames those packets became beyond the first (built by the director).
    TunnelFragmentFrames tunnel_fragment_frames => "rvs_worker_tunnel_fragment_frames_total",
    /// NAT64: IPv4 packets from RSes (fragments, or whole without DF) too big for the IPv6
    /// side once translated, sent as several IPv6 fragments (RFC 7915 4).
    Nat64Fragmented nat64_fragmented => "rvs_worker_nat64_fragmented_total",
    /// NAT64: the IPv6 fragments those packets became beyond the first (built by the director).
    Nat64FragmentFrames nat64_fragment_frames => "rvs_worker_nat64_fragment_frames_total",
    /// ICMP errors the director built and sent (fragmentation needed, time exceeded).
    IcmpErrors icmp_errors => "rvs_worker_icmp_errors_sent_total",
    /// Answers to packets for a VIP on a port no service has (their drop reason is
    /// `no_service`): TCP RSTs and ICMP / ICMPv6 port unreachables the director built and
    /// sent, within their own rate limit.
    NoServiceAnswers no_service_answers => "rvs_worker_no_service_answers_total",
    /// ICMP errors not sent: over the rate limit ([`crate::icmp::RateLimit`]), no route back
    /// to the sender, or no buffer. (The offending packet's drop is counted by its own reason.)
    IcmpUnsent icmp_unsent => "rvs_worker_icmp_errors_unsent_total",
    /// ICMP errors about a session's packet relayed to the session's other side.
    IcmpRelayed icmp_relayed => "rvs_worker_icmp_errors_relayed_total",
    /// SYN proxy: SYN/ACKs with a cookie sent to clients.
    SynproxyCookies synproxy_cookies => "rvs_worker_synproxy_cookies_total",
    /// SYN proxy: ACKs with a valid cookie, each opening a session and a SYN to its RS.
    SynproxyOpened synproxy_opened => "rvs_worker_synproxy_opened_total",
    /// SYN proxy: SYNs sent to an RS again (a client packet came while it had not answered).
    SynproxySynRetries synproxy_syn_retries => "rvs_worker_synproxy_syn_retries_total",
    /// SYN proxy: RS handshakes completed (the session's two halves joined).
    SynproxyJoined synproxy_joined => "rvs_worker_synproxy_joined_total",
    /// PROXY protocol: headers sent ahead of a connection's first data.
    ProxyHeadersSent proxy_headers_sent => "rvs_worker_proxy_headers_sent_total",
    /// PROXY protocol: headers sent again with a retransmission of the first data.
    ProxyHeadersResent proxy_headers_resent => "rvs_worker_proxy_headers_resent_total",
    /// PROXY protocol: headers sent as a segment of their own (the first data segment had
    /// no room for them under the MTU, or its buffer none).
    ProxyHeaderSegments proxy_header_segments => "rvs_worker_proxy_header_segments_total",
    /// TOA: segments that got the client's address in option 254.
    ToaInserted toa_inserted => "rvs_worker_toa_inserted_total",
    /// TOA: segments that should have had it but had no room (TCP options full, MTU,
    /// buffer): sent without.
    ToaNoRoom toa_no_room => "rvs_worker_toa_no_room_total",
    /// PROXY protocol: headers the RS acknowledged.
    ProxyHeadersAcked proxy_headers_acked => "rvs_worker_proxy_headers_acked_total",
    /// Packets parked while their next hop resolved.
    Parked parked => "rvs_worker_parked_total",
    /// Configuration snapshots this worker could not adopt (see the log).
    SnapshotsRefused snapshots_refused => "rvs_worker_snapshots_refused_total",
    /// Packets handed to the worker owning their session.
    RedirectedOut redirected_out => "rvs_worker_redirected_out_total",
    /// Packets other workers handed to this one.
    RedirectedIn redirected_in => "rvs_worker_redirected_in_total",
    /// ARP frames copied to the other workers (so that every neighbour table learns).
    ArpToPeers arp_to_peers => "rvs_worker_arp_to_peers_total",
    /// Neighbour discovery frames copied to the other workers (so that every IPv6 neighbour
    /// table learns).
    NdToPeers nd_to_peers => "rvs_worker_nd_to_peers_total",
    /// ARP frames copied to the kernel through the exception path (so that it learns too).
    ArpToKernel arp_to_kernel => "rvs_worker_arp_to_kernel_total",
    /// Neighbour solicitations the director answered, copied to the kernel through the
    /// exception path so that it learns the soliciting neighbour too.
    NdToKernel nd_to_kernel => "rvs_worker_nd_to_kernel_total",
    /// Session sync: records queued for the sync daemon (births, state changes, sweeps).
    SyncQueued sync_queued => "rvs_worker_sync_queued_total",
    /// Session sync: records not queued, the daemon's ring or the worker's list of changes
    /// being full (the next refresh sweep carries them).
    SyncUnqueued sync_unqueued => "rvs_worker_sync_unqueued_total",
    /// Session sync: peers' sessions and templates installed.
    SyncInstalled sync_installed => "rvs_worker_sync_installed_total",
    /// Session sync: peers' records that refreshed a session or template they had sent
    /// before.
    SyncUpdated sync_updated => "rvs_worker_sync_updated_total",
    /// Session sync: peers' records for a session this director drives itself (kept as it
    /// is).
    SyncKept sync_kept => "rvs_worker_sync_kept_total",
    /// Session sync: peers' records that disagree with a local session or template (another
    /// dest or LIP port, a key in use): refused, nothing local replaced.
    SyncConflicts sync_conflicts => "rvs_worker_sync_conflicts_total",
    /// Session sync: peers' sessions of a service or dest this director does not have.
    SyncUnknownService sync_unknown_service => "rvs_worker_sync_unknown_service_total",
    /// Session sync: peers' FullNAT sessions on a LIP or port outside this worker's share.
    SyncForeignLip sync_foreign_lip => "rvs_worker_sync_foreign_lip_total",
    /// Session sync: peers' records refused for a full session or template table.
    SyncTableFull sync_table_full => "rvs_worker_sync_table_full_total",
    /// Session sync: peers' records not installable as they are (a SYN-proxied session still
    /// waiting for its RS).
    SyncRefused sync_refused => "rvs_worker_sync_refused_total",
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-worker counters. Plain integers: only the owning worker writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Events, indexed by [`Counter::index`].
    values: [u64; Counter::COUNT],
    /// Drops, indexed by [`DropReason::index`].
    drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            values: [0; Counter::COUNT],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// One counter's value.
    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c.index()]
    }

    /// Adds `n` to counter `c`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c.index()] += n;
    }

    /// Takes `n` back from counter `c` (frames a device refused after they were counted).
    #[inline]
    pub fn sub(&mut self, c: Counter, n: u64) {
        self.values[c.index()] -= n;
    }

    /// One more event `c`.
    #[inline]
    pub fn count(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// One more drop for reason `r`.
    #[inline]
    pub fn count_drop(&mut self, r: DropReason) {
        self.drops[r.index()] += 1;
    }

    /// `n` more drops for reason `r`.
    #[inline]
    pub fn add_drops(&mut self, r: DropReason, n: u64) {
        self.drops[r.index()] += n;
    }

    /// Every counter's value, by [`Counter::index`].
    pub fn values(&self) -> &[u64; Counter::COUNT] {
        &self.values
    }

    /// Every drop count, by [`DropReason::index`].
    pub fn drops(&self) -> &[u64; DropReason::COUNT] {
        &self.drops
    }

    /// Drops for one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }

    /// Drops for every reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Frames sent that came from a port or a peer (not built or copied by the director).
    pub fn forwarded(&self) -> u64 {
        self.tx_packets()
            - self.arp_requests()
            - self.neighbour_solicits()
            - self.gratuitous_arps()
            - self.icmp_errors()
            - self.no_service_answers()
            - self.arp_to_kernel()
            - self.nd_to_kernel()
            - self.proxy_header_segments()
            - self.tunnel_fragment_frames()
            - self.nat64_fragment_frames()
    }

    /// The accounting identity: every frame received from a port or handed over by a peer
    /// was sent on, dropped for a reason, parked, or handed to another worker — exactly once.
    /// Parked frames that later leave are counted again by `tx_packets`, so this holds while
    /// nothing parked has been released: tests use it on static neighbours.
    pub fn balanced(&self) -> bool {
        self.rx_packets() + self.redirected_in()
            == self.forwarded() + self.total_drops() + self.parked() + self.redirected_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT);
        let mut metrics: Vec<_> = Counter::ALL.iter().map(|c| c.metric()).collect();
        metrics.sort();
        metrics.dedup();
        assert_eq!(metrics.len(), Counter::COUNT);
        assert!(metrics
            .iter()
            .all(|m| m.starts_with("rvs_worker_") && m.ends_with("_total")));
    }

    #[test]
    fn accessors_read_their_own_slot() {
        let mut c = Counters::default();
        c.add(Counter::SynproxySynRetries, 3);
        c.count(Counter::ArpToKernel);
        assert_eq!(c.synproxy_syn_retries(), 3);
        assert_eq!(c.arp_to_kernel(), 1);
        assert_eq!(c.get(Counter::ArpToKernel), 1);
        assert_eq!(c.values().iter().sum::<u64>(), 4);
    }
}
