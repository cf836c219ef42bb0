//! Errors of the control side: why a service or dest change was refused.
//!
//! Every change is all-or-nothing: when one of these is returned, nothing was changed. The
//! messages start with ipvsadm's wording where ipvsadm has one ("Service already exists",
//! "No such destination", ...) and then say what to do about it.

use core::net::IpAddr;

use thiserror::Error;

use crate::addr::AddrPort;
use crate::dest::{ForwardMode, MAX_WEIGHT};
use crate::mh::MH_TABLE_SIZES;
use crate::service::ServiceKey;
use crate::service::MAX_PERSISTENCE;
use crate::Proto;

/// Why a change to a service, its dests or its scheduler was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchedError {
    /// A persistence timeout outside 1 s ..= 31 days.
    #[error(
        "invalid timeout value `{0}' specified: persistence must be 1..={MAX_PERSISTENCE} seconds"
    )]
    PersistenceOutOfRange(u32),

    /// A dest weight above [`MAX_WEIGHT`] (ipvsadm's range is 0..=65535).
    #[error("weight {weight} is out of range: a dest weight must be in 0..={MAX_WEIGHT}")]
    WeightOutOfRange {
        /// The weight that was asked for.
        weight: u32,
    },

    /// A DR or TUN dest whose port differs from the service port: these modes leave the
    /// packet's L4 header untouched, so they cannot map ports.
    #[error(
        "dest port {dest_port} is not allowed in {mode} mode: {mode} cannot map ports \
         (service port is {service_port})"
    )]
    PortMapNotAllowed {
        /// The forwarding mode of the dest.
        mode: ForwardMode,
        /// The port the dest was given.
        dest_port: u16,
        /// The port of the service, the only one this mode can use.
        service_port: u16,
    },

    /// A dest with this address and port is already part of the service.
    #[error("Destination already exists: {} (edit it instead of adding it again)", AddrPort(*addr, *port))]
    DuplicateDest {
        /// The dest's RIP.
        addr: IpAddr,
        /// The dest's port.
        port: u16,
    },

    /// No dest with this address and port is part of the service.
    #[error("No such destination: {} is not a dest of this service", AddrPort(*addr, *port))]
    DestNotFound {
        /// The RIP that was asked for.
        addr: IpAddr,
        /// The port that was asked for.
        port: u16,
    },

    /// A dest whose address family differs from its service's VIP.
    #[error(
        "Address family of destination {dest} differs from the service's VIP {vip}: a \
         service's dests are of its VIP's family, but for IPv4 FullNAT dests of an IPv6 \
         service (NAT64)"
    )]
    FamilyMismatch {
        /// The service's VIP.
        vip: IpAddr,
        /// The dest's RIP.
        dest: IpAddr,
    },

    /// A service with this protocol, VIP and port already exists.
    #[error("Service already exists: {key} (edit it instead of adding it again)")]
    DuplicateService {
        /// The key of the existing service.
        key: ServiceKey,
    },

    /// No service with this protocol, VIP and port exists, for a dest change (ipvsadm's
    /// words for `-a`, `-e`, `-d`).
    #[error("Service not defined: {key}")]
    ServiceNotFound {
        /// The key that was asked for.
        key: ServiceKey,
    },

    /// No service with this protocol, VIP and port exists, for a change or a listing of the
    /// service itself: ipvsadm's words for `-D`, `-E`, `-L -t` and `-Z -t` on the first line
    /// (scripts grep for them), the service on the second.
    #[error("No such service\n{key} is not configured")]
    NoSuchService {
        /// The key that was asked for.
        key: ServiceKey,
    },

    /// A TCP or UDP port of 0, or a non-zero port on an ICMP service or dest.
    #[error("port {port} is not valid for {proto}: {}", port_rule(*proto))]
    InvalidPort {
        /// The protocol of the service.
        proto: Proto,
        /// The port that was given.
        port: u16,
    },

    /// SYN proxy asked for on a UDP or ICMP service: it answers TCP handshakes.
    #[error("synproxy is for tcp services only: {key} is not tcp")]
    SynProxyNotTcp {
        /// The service.
        key: ServiceKey,
    },

    /// SYN proxy with a DR or TUN dest: the proxy shifts the sequence numbers of the real
    /// server's packets, which in DR and TUN do not pass through the director.
    #[error(
        "synproxy cannot be used with {} dests: the real server's replies must pass through \
         the director (use NAT or FullNAT, or disable synproxy)",
        mode_switch(*mode)
    )]
    SynProxyNeedsReplies {
        /// The dest's (or an existing dest's) forwarding mode.
        mode: ForwardMode,
    },

    /// PROXY protocol asked for on an ICMP service.
    #[error("proxy-protocol is for tcp and udp services: {key} is neither")]
    ProxyProtocolNotTcp {
        /// The service.
        key: ServiceKey,
    },

    /// PROXY protocol v1 on a UDP service: v1 names TCP connections only.
    #[error("proxy-protocol v1 has no udp: use v2 for {key}")]
    ProxyProtocolV1Udp {
        /// The service.
        key: ServiceKey,
    },

    /// PROXY protocol with a DR or TUN dest: the header shifts the client's sequence numbers,
    /// and the RS's acknowledgements must be shifted back on their way through the director.
    #[error(
        "proxy-protocol cannot be used with {} dests: the real server's replies must pass \
         through the director (use FullNAT or NAT, or disable proxy-protocol)",
        mode_switch(*mode)
    )]
    ProxyProtocolNeedsReplies {
        /// The dest's (or an existing dest's) forwarding mode.
        mode: ForwardMode,
    },

    /// TOA asked for on a UDP or ICMP service.
    #[error("toa is for tcp services: {key} is not tcp")]
    ToaNotTcp {
        /// The service.
        key: ServiceKey,
    },

    /// TOA with a DR or TUN dest: the option goes into segments the director rewrites.
    #[error(
        "toa cannot be used with {} dests: use FullNAT or NAT, or disable toa",
        mode_switch(*mode)
    )]
    ToaNeedsReplies {
        /// The dest's (or an existing dest's) forwarding mode.
        mode: ForwardMode,
    },

    /// TOA and a PROXY protocol header on one service.
    #[error("toa and proxy-protocol tell the server the same thing: use one of them")]
    ToaWithProxyProtocol,

    /// A PROXY protocol version rvs does not know.
    #[error("illegal proxy-protocol value '{0}': use v1, v2 or disable")]
    UnknownProxyProtocol(String),

    /// A scheduler name rvs does not know.
    #[error(
        "Scheduler or persistence engine not found\n'{0}': rvs knows rr, wrr, lc, wlc, sh and mh"
    )]
    UnknownScheduler(String),

    /// An mh table size that is not one of [`MH_TABLE_SIZES`]: the Maglev permutation needs a
    /// prime size, and rvs takes IPVS's primes and the Maglev paper's 65537.
    #[error(
        "mh table size {size} is not supported: use one of {} (65537 is the default)",
        table_sizes()
    )]
    MhTableSize {
        /// The size that was asked for.
        size: usize,
    },

    /// A forwarding mode name rvs does not know.
    #[error(
        "forwarding mode '{0}' not known: use nat (masq), dr (route, gate), \
         tun (tunnel, ipip) or fullnat (fnat)"
    )]
    UnknownForwardMode(String),
}

/// A forwarding mode as an operator names it, with its ipvsadm switch.
fn mode_switch(mode: ForwardMode) -> &'static str {
    match mode {
        ForwardMode::Dr => "DR (-g)",
        ForwardMode::Tun => "TUN (-i)",
        ForwardMode::Nat => "NAT (-m)",
        ForwardMode::FullNat => "FullNAT (--fullnat)",
    }
}

/// What a valid port is for `proto`, as the end of an [`SchedError::InvalidPort`] message.
fn port_rule(proto: Proto) -> &'static str {
    match proto {
        Proto::Icmp => "icmp services and dests have no port, use 0",
        Proto::Tcp | Proto::Udp => "tcp and udp services and dests need a port in 1..=65535",
    }
}

/// [`MH_TABLE_SIZES`] as a list for an [`SchedError::MhTableSize`] message.
fn table_sizes() -> String {
    let sizes: Vec<String> = MH_TABLE_SIZES.iter().map(ToString::to_string).collect();
    sizes.join(", ")
}
