//! The director's configuration as workers see it: an immutable snapshot.
//!
//! The control plane describes the director in a [`DirectorConfig`] (interfaces and their
//! addresses, gateway routes, the FullNAT LIP pool, services with their dests, timeouts) and
//! turns it into a [`Snapshot`] with [`Snapshot::build`], which validates the whole and derives
//! the lookup tables the data path uses. A snapshot is published to workers through an
//! `arc_swap::ArcSwap` ([`SnapshotCell`]); a worker loads it once per burst and never locks.
//!
//! Which managed addresses the director holds (see [`DirectorConfig::managed`]) is part of the
//! snapshot too: a managed VIP or LIP that is not held is marked standby in its [`Local`]
//! entry, the entry the data path looks up anyway, so ownership costs no lookup of its own.

use crate::lip::PortReuse;
use conntrack::{Proto, Timeouts};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;
use hashbrown::HashMap;
use sched::{ForwardMode, Service, ServiceKey, ServiceTable};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where snapshots are published: workers `load()` it, the control plane `store()`s new ones.
pub type SnapshotCell = arc_swap::ArcSwap<Snapshot>;

/// An IPv4 prefix such as `10.1.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// An address in the prefix (for an interface: the interface's own address).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Cidr {
    /// A prefix from an address and a length.
    pub const fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        Cidr { addr, len }
    }

    /// The netmask as a host-order integer.
    #[inline]
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len.min(32) as u32)
        }
    }

    /// True if `ip` is inside the prefix.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IPv6 prefix such as `2001:db8:2::/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr6 {
    /// An address in the prefix (for an interface: the interface's own address).
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub len: u8,
}

impl Cidr6 {
    /// A prefix from an address and a length.
    pub const fn new(addr: Ipv6Addr, len: u8) -> Cidr6 {
        Cidr6 { addr, len }
    }
}

impl Cidr6 {
    /// The network mask as a number (0 for /0).
    #[inline]
    pub fn mask(&self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.len.min(128)))
            .unwrap_or(0)
    }

    /// True if `ip` is inside the prefix.
    #[inline]
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        (ip.to_bits() ^ self.addr.to_bits()) & self.mask() == 0
    }

    /// The prefix with its host bits cleared.
    pub fn masked(&self) -> Cidr6 {
        Cidr6::new(
            Ipv6Addr::from_bits(self.addr.to_bits() & self.mask()),
            self.len,
        )
    }
}

impl fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One L3 interface of the director: a port, optionally a VLAN on it, its addresses (DIPs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// A name for logs and errors, e.g. `"wan0"` or `"lan0.100"`.
    pub name: String,
    /// Index of the port (device) in each worker's port list.
    pub port: u16,
    /// 802.1Q VLAN id (1..=4094), or None for untagged frames.
    pub vlan: Option<u16>,
    /// The director's addresses on this interface (DIPs), with their subnets.
    pub addrs: Vec<Cidr>,
    /// The director's IPv6 addresses on this interface (DIPs): answered in neighbour
    /// discovery and ICMPv6 echo, their other traffic the kernel's.
    pub addrs6: Vec<Cidr6>,
    /// IP MTU of the interface (576..=9000).
    pub mtu: u16,
}

/// A route through a gateway; connected subnets come from the interface addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: Cidr,
    /// Gateway; must be inside a connected subnet, whose interface the route then uses.
    pub via: Ipv4Addr,
}

/// An IPv6 route toward a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteConfig6 {
    /// Destination prefix (`::/0` for a default route).
    pub dst: Cidr6,
    /// Gateway; must be inside a connected IPv6 subnet, whose interface the route then uses.
    pub via: Ipv6Addr,
}

/// Everything the data path needs to know about the director, as the control plane holds it.
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// L3 interfaces.
    pub interfaces: Vec<InterfaceConfig>,
    /// Gateway routes.
    pub routes: Vec<RouteConfig>,
    /// IPv6 gateway routes.
    pub routes6: Vec<RouteConfig6>,
    /// FullNAT local addresses (LIPs), shared out among workers by port range.
    pub lips: Vec<Ipv4Addr>,
    /// IPv6 LIPs (FullNAT66), shared out the same way.
    pub lips6: Vec<Ipv6Addr>,
    /// LIP ports to hand out, split into disjoint slices, one per worker.
    pub lport_range: RangeInclusive<u16>,
    /// How freed LIP ports come back: port pools per LIP and the quarantine that keeps a
    /// port from meeting a server's TIME_WAIT. Read when a worker starts.
    pub lport_reuse: PortReuse,
    /// Virtual services and their dests.
    pub services: ServiceTable,
    /// Session timeouts.
    pub timeouts: Timeouts,
    /// Addresses whose ownership is decided outside rvs (VIPs and LIPs that keepalived moves
    /// between directors): each is served only while it is in `held`. Addresses not listed
    /// are always served.
    pub managed: Vec<Ipv4Addr>,
    /// The addresses the director's kernel interfaces hold now, each with the port whose
    /// exception interface holds it (for a managed address: where its gratuitous ARPs leave).
    /// Learnt at run time (rtnetlink), never from the configuration file.
    pub held: BTreeMap<Ipv4Addr, u16>,
    /// LIPs of the other directors of a cluster: sessions synced from them keep their
    /// LIP:lport here, so replies to these addresses are looked up in the session table
    /// (after a router moved them to this director). Never allocated from, never answered
    /// for in ARP, never passed to the kernel.
    pub peer_lips: Vec<Ipv4Addr>,
}

impl Default for DirectorConfig {
    fn default() -> DirectorConfig {
        DirectorConfig {
            interfaces: Vec::new(),
            routes: Vec::new(),
            routes6: Vec::new(),
            lips: Vec::new(),
            lips6: Vec::new(),
            lport_range: 1024..=65535,
            lport_reuse: PortReuse::default(),
            services: ServiceTable::default(),
            timeouts: Timeouts::default(),
            managed: Vec::new(),
            held: BTreeMap::new(),
            peer_lips: Vec::new(),
        }
    }
}

/// Why a configuration was refused. Nothing of a refused configuration is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Two interfaces on the same port and VLAN.
    #[error("interface {name}: port {port} vlan {vlan:?} is already used by interface {other}")]
    DuplicateInterface {
        /// The second interface.
        name: String,
        /// Its port.
        port: u16,
        /// Its VLAN.
        vlan: Option<u16>,
        /// The interface that had it first.
        other: String,
    },
    /// VLAN id outside 1..=4094.
    #[error("interface {name}: vlan {vlan} is out of range (1..=4094)")]
    BadVlan {
        /// The interface.
        name: String,
        /// The id given.
        vlan: u16,
    },
    /// An interface needs at least one address to source ARP and ICMP from.
    #[error("interface {name} has no address: give it at least one DIP")]
    NoAddress {
        /// The interface.
        name: String,
    },
    /// Prefix length above 32.
    #[error("address {addr}/{len}: prefix length must be 0..=32")]
    BadPrefix {
        /// The address.
        addr: Ipv4Addr,
        /// The length given.
        len: u8,
    },
    /// MTU outside 576..=9000.
    #[error("interface {name}: mtu {mtu} is out of range (576..=9000)")]
    BadMtu {
        /// The interface.
        name: String,
        /// The MTU given.
        mtu: u16,
    },
    /// The same address configured twice (as DIP, LIP, or both).
    #[error("address {0} is configured twice (DIPs and LIPs must be distinct)")]
    DuplicateAddress(Ipv4Addr),
    /// An IPv6 address configured twice, or one no interface may have (multicast,
    /// unspecified, loopback, link-local — the link-local address is the kernel's), or a
    /// prefix length above 128.
    #[error("IPv6 address {addr}/{len}: {why}")]
    BadAddress6 {
        /// The address.
        addr: Ipv6Addr,
        /// The length given.
        len: u8,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A LIP is also a VIP of a service.
    #[error("LIP {0} is also a VIP: FullNAT replies to it could not be told from new clients")]
    LipIsVip(Ipv4Addr),
    /// A gateway outside every connected subnet.
    #[error("route {dst} via {via}: the gateway is not inside any interface's subnet")]
    GatewayUnreachable {
        /// The route's prefix.
        dst: Cidr,
        /// The gateway.
        via: Ipv4Addr,
    },
    /// An IPv6 gateway outside every connected IPv6 subnet.
    #[error("route {dst} via {via}: the gateway is not inside any interface's IPv6 subnet")]
    GatewayUnreachable6 {
        /// The route's prefix.
        dst: Cidr6,
        /// The gateway.
        via: Ipv6Addr,
    },
    /// A FullNAT dest but no LIP to source its connections from.
    #[error("service {service}: dest {dest} uses FullNat, but no LIP is configured")]
    FullNatWithoutLips {
        /// The service.
        service: ServiceKey,
        /// The dest address.
        dest: IpAddr,
    },
    /// A DR dest must share a link with the director.
    #[error("service {service}: dest {dest} is not on a connected subnet, and Route (DR) mode only rewrites the MAC")]
    DestNotOnLink {
        /// The service.
        service: ServiceKey,
        /// The dest address.
        dest: IpAddr,
    },
    /// No route to a dest.
    #[error("service {service}: no route to dest {dest}")]
    NoRouteToDest {
        /// The service.
        service: ServiceKey,
        /// The dest address.
        dest: IpAddr,
    },
    /// A service the scheduler model refuses (a dest of the other family than its VIP).
    #[error(transparent)]
    Service(#[from] sched::SchedError),
    /// An IPv6 LIP that is also a VIP of a service.
    #[error("LIP {0} is also a VIP: FullNAT replies to it could not be told from new clients")]
    LipIsVip6(Ipv6Addr),
    /// An IPv6 VIP that is also one of the director's IPv6 DIPs.
    #[error("VIP {0} is also a DIP: a VIP must not be an interface address of the director")]
    VipIsDip6(Ipv6Addr),
    /// More dests than counter slots over the daemon's life.
    #[error("more than {0} dests have been configured since rvsd started: restart it to reuse counter slots")]
    TooManyDests(usize),
    /// An empty LIP port range.
    #[error("LIP port range {start}..={end} is empty")]
    BadPortRange {
        /// Range start.
        start: u16,
        /// Range end.
        end: u16,
    },
    /// A number of LIP port pools out of range.
    #[error("lport_pools = {0}: 1 to {max} pools are possible", max = PortReuse::MAX_POOLS)]
    BadPortPools(u16),
    /// A DIP listed as a managed address.
    #[error("managed address {0} is a DIP: only VIPs and LIPs can be managed (a DIP is always the director's own)")]
    ManagedDip(Ipv4Addr),
    /// The same managed address listed twice.
    #[error("managed address {0} is listed twice")]
    ManagedTwice(Ipv4Addr),
}

/// A configured interface, as the data path uses it.
#[derive(Clone, Debug)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Port index.
    pub port: u16,
    /// VLAN id.
    pub vlan: Option<u16>,
    /// Addresses (DIPs) with their subnets.
    pub addrs: Vec<Cidr>,
    /// IPv6 addresses (DIPs) with their subnets.
    pub addrs6: Vec<Cidr6>,
    /// IP MTU.
    pub mtu: u16,
}

/// What a local address of the director is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Local {
    /// A DIP, on this interface.
    pub dip: Option<u16>,
    /// A VIP of at least one service.
    pub vip: bool,
    /// A FullNAT LIP (this director's, or with `peer` a peer director's).
    pub lip: bool,
    /// A peer director's LIP (see [`DirectorConfig::peer_lips`]): only its sessions' replies
    /// are taken; no ARP answer, no new session, nothing to the kernel.
    pub peer: bool,
    /// A managed VIP or LIP the director does not hold now: no ARP answer, no new session,
    /// nothing to the kernel (sessions in the table go on).
    pub standby: bool,
}

/// A managed address (see [`DirectorConfig::managed`]) as a snapshot has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Managed {
    /// The address (a VIP or LIP, or neither yet: a VIP whose service is still to come).
    pub addr: Ipv4Addr,
    /// True while a kernel interface of the director holds it.
    pub owned: bool,
    /// The interface its gratuitous ARPs leave from while owned: on the port whose kernel
    /// interface holds it, the interface whose subnet contains it, else the port's first
    /// untagged interface, else its first interface; None if the port has no interface.
    pub iface: Option<u16>,
}

/// Which worker holds a service's sessions, when the worker that receives a packet is not
/// free to choose (the design's "Multi-core: who owns a session").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Homing {
    /// Whoever receives the first packet (RSS keeps a flow on one queue).
    None,
    /// The home worker of the client endpoint (CIP, cport): services with NAT dests, whose
    /// replies carry no trace of the VIP but do carry the client endpoint.
    Endpoint,
    /// The home worker of the client address (CIP): persistent services, so that all of a
    /// client's connections meet the one persistence template.
    Client,
}

/// How many dests can have counters over the life of a daemon.
pub const MAX_DEST_SLOTS: usize = 16384;

/// Stable counter slots for dests, kept by the control plane across snapshots: a dest
/// (service, RIP, port) keeps its slot while the daemon runs, so its counters survive weight
/// changes and reloads; a removed and re-added dest gets its old slot back.
#[derive(Clone, Debug, Default)]
pub struct DestSlots {
    map: HashMap<(ServiceKey, IpAddr, u16), u32>,
}

impl DestSlots {
    /// The slot of a dest, assigning the next free one the first time.
    ///
    /// # Errors
    /// [`ConfigError::TooManyDests`] once [`MAX_DEST_SLOTS`] are taken.
    pub fn slot(&mut self, key: ServiceKey, addr: IpAddr, port: u16) -> Result<u32, ConfigError> {
        let next = self.map.len();
        if let Some(&s) = self.map.get(&(key, addr, port)) {
            return Ok(s);
        }
        if next >= MAX_DEST_SLOTS {
            return Err(ConfigError::TooManyDests(MAX_DEST_SLOTS));
        }
        self.map.insert((key, addr, port), next as u32);
        Ok(next as u32)
    }

    /// The slot of a dest, if it has one.
    pub fn get(&self, key: ServiceKey, addr: IpAddr, port: u16) -> Option<u32> {
        self.map.get(&(key, addr, port)).copied()
    }
}

/// The next hop for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Egress interface index.
    pub iface: u16,
    /// Address to resolve with ARP: the destination itself when on-link, else the gateway.
    pub nexthop: Ipv4Addr,
    /// True when the destination is on a connected subnet.
    pub on_link: bool,
}

/// Where an IPv6 packet leaves: the interface, and the neighbour to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop6 {
    /// Egress interface index.
    pub iface: u16,
    /// Address to resolve with neighbour discovery: the destination itself when on-link,
    /// else the gateway.
    pub nexthop: Ipv6Addr,
    /// True when the destination is on a connected subnet.
    pub on_link: bool,
}

/// A prefix of either family, as routes need it.
trait Prefix: Copy {
    /// Its address type.
    type Addr: Copy;
    fn contains(&self, ip: Self::Addr) -> bool;
    fn masked(&self) -> Self;
    fn len(&self) -> u8;
}

impl Prefix for Cidr {
    type Addr = Ipv4Addr;
    fn contains(&self, ip: Ipv4Addr) -> bool {
        Cidr::contains(self, ip)
    }
    fn masked(&self) -> Cidr {
        Cidr::masked(self)
    }
    fn len(&self) -> u8 {
        self.len
    }
}

impl Prefix for Cidr6 {
    type Addr = Ipv6Addr;
    fn contains(&self, ip: Ipv6Addr) -> bool {
        Cidr6::contains(self, ip)
    }
    fn masked(&self) -> Cidr6 {
        Cidr6::masked(self)
    }
    fn len(&self) -> u8 {
        self.len
    }
}

/// A route of either family: a connected subnet (`via` none) or a gateway route.
#[derive(Clone, Copy, Debug)]
struct RouteEntry<P: Prefix = Cidr> {
    net: P,
    iface: u16,
    via: Option<P::Addr>,
}

/// Adds the gateway routes `(dst, via)` to `routes` (which holds the connected subnets so
/// far), each through the interface of the longest connected subnet holding its gateway
/// (`unreachable` is the error for one outside them all), then sorts the table longest
/// prefix first, connected before gateway routes of the same length.
fn add_gateway_routes<P: Prefix>(
    routes: &mut Vec<RouteEntry<P>>,
    gateways: impl IntoIterator<Item = (P, P::Addr)>,
    unreachable: impl Fn(P, P::Addr) -> ConfigError,
) -> Result<(), ConfigError> {
    for (dst, via) in gateways {
        let gw = routes
            .iter()
            .filter(|e| e.via.is_none() && e.net.contains(via))
            .max_by_key(|e| e.net.len())
            .ok_or_else(|| unreachable(dst, via))?;
        let iface = gw.iface;
        routes.push(RouteEntry {
            net: dst.masked(),
            iface,
            via: Some(via),
        });
    }
    routes.sort_by_key(|e| (core::cmp::Reverse(e.net.len()), e.via.is_some()));
    Ok(())
}

/// The IPv6 routes: each interface's IPv6 subnets (connected), then the gateway routes.
fn routes6(ifaces: &[Iface], cfg: &[RouteConfig6]) -> Result<Vec<RouteEntry<Cidr6>>, ConfigError> {
    let mut routes: Vec<RouteEntry<Cidr6>> = ifaces
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            f.addrs6.iter().map(move |a| RouteEntry {
                net: a.masked(),
                iface: i as u16,
                via: None,
            })
        })
        .collect();
    add_gateway_routes(
        &mut routes,
        cfg.iter().map(|r| (r.dst, r.via)),
        |dst, via| ConfigError::GatewayUnreachable6 { dst, via },
    )?;
    Ok(routes)
}

/// No untagged interface on a port ([`Snapshot::iface_index`]).
const NO_IFACE: u16 = u16::MAX;

/// The untagged interface of each port, indexed by port, [`NO_IFACE`] where there is none.
fn untagged_ifaces(by_port: &HashMap<(u16, Option<u16>), u16>) -> Vec<u16> {
    let ports = by_port.keys().map(|&(p, _)| usize::from(p) + 1).max();
    let mut v = vec![NO_IFACE; ports.unwrap_or(0)];
    for (&(port, vlan), &i) in by_port {
        if vlan.is_none() {
            v[usize::from(port)] = i;
        }
    }
    v
}

/// The validated, derived, immutable configuration that workers read.
#[derive(Debug)]
pub struct Snapshot {
    ifaces: Vec<Iface>,
    iface_by_port: HashMap<(u16, Option<u16>), u16>,
    /// The untagged interface of each port ([`NO_IFACE`] for none), indexed by port: the
    /// common frame's interface without a hash lookup.
    untagged: Vec<u16>,
    routes: Vec<RouteEntry>,
    /// Each IPv4 route's (network, mask) as numbers, in `routes`' order: what the lookup
    /// compares, with no mask to compute per entry.
    route_nets: Vec<(u32, u32)>,
    /// The same for the IPv6 routes.
    route6_nets: Vec<(u128, u128)>,
    routes6: Vec<RouteEntry<Cidr6>>,
    local: HashMap<Ipv4Addr, Local>,
    /// The director's IPv6 addresses: DIPs and VIPs.
    local6: HashMap<Ipv6Addr, Local>,
    services: Vec<Service>,
    schedulers: Vec<sched::AnyScheduler>,
    service_by_key: HashMap<ServiceKey, u32>,
    /// The IPv4 services by (protocol, VIP, port): the packet path's lookup, with a key
    /// smaller and cheaper to hash than a [`ServiceKey`].
    service_by_v4: HashMap<(Proto, Ipv4Addr, u16), u32>,
    homed: Vec<Homing>,
    dest_slots: Vec<Vec<u32>>,
    nat_dests: HashMap<(Proto, Ipv4Addr, u16), Homing>,
    /// IPv6 NAT dests (NAT66): a packet from one is a reply.
    nat_dests6: HashMap<(Proto, Ipv6Addr, u16), Homing>,
    /// Some IPv6 service has IPv4 FullNAT dests (NAT64): IPv4 replies to a LIP may belong
    /// to IPv6 sessions.
    nat64: bool,
    lips: Vec<Ipv4Addr>,
    lips6: Vec<Ipv6Addr>,
    peer_lips: Vec<Ipv4Addr>,
    lport_range: RangeInclusive<u16>,
    lport_reuse: PortReuse,
    timeouts: Timeouts,
    managed: Vec<Managed>,
    /// Per service: its VIP is a managed address in standby.
    standby_services: Vec<bool>,
}

impl Snapshot {
    /// Validates `cfg` as a whole and derives the worker-side tables.
    ///
    /// # Errors
    /// The first problem found; nothing is built.
    pub fn build(cfg: &DirectorConfig) -> Result<Snapshot, ConfigError> {
        Snapshot::build_with_slots(cfg, &mut DestSlots::default())
    }

    /// [`Snapshot::build`], taking each dest's counter slot from `slots` (which keeps slots
    /// stable across snapshots, so counters survive configuration changes).
    ///
    /// # Errors
    /// As [`Snapshot::build`], or [`ConfigError::TooManyDests`].
    pub fn build_with_slots(
        cfg: &DirectorConfig,
        slots: &mut DestSlots,
    ) -> Result<Snapshot, ConfigError> {
        let mut ifaces = Vec::with_capacity(cfg.interfaces.len());
        let mut iface_by_port: HashMap<(u16, Option<u16>), u16> = HashMap::new();
        let mut local: HashMap<Ipv4Addr, Local> = HashMap::new();
        let mut local6: HashMap<Ipv6Addr, Local> = HashMap::new();
        let mut routes = Vec::new();
        for (i, ic) in cfg.interfaces.iter().enumerate() {
            if let Some(v) = ic.vlan {
                if !(1..=4094).contains(&v) {
                    return Err(ConfigError::BadVlan {
                        name: ic.name.clone(),
                        vlan: v,
                    });
                }
            }
            if !(576..=9000).contains(&ic.mtu) {
                return Err(ConfigError::BadMtu {
                    name: ic.name.clone(),
                    mtu: ic.mtu,
                });
            }
            if ic.addrs.is_empty() {
                return Err(ConfigError::NoAddress {
                    name: ic.name.clone(),
                });
            }
            if let Some(&other) = iface_by_port.get(&(ic.port, ic.vlan)) {
                return Err(ConfigError::DuplicateInterface {
                    name: ic.name.clone(),
                    port: ic.port,
                    vlan: ic.vlan,
                    other: cfg.interfaces[other as usize].name.clone(),
                });
            }
            iface_by_port.insert((ic.port, ic.vlan), i as u16);
            for a in &ic.addrs {
                if a.len > 32 {
                    return Err(ConfigError::BadPrefix {
                        addr: a.addr,
                        len: a.len,
                    });
                }
                if local.contains_key(&a.addr) {
                    return Err(ConfigError::DuplicateAddress(a.addr));
                }
                local.insert(
                    a.addr,
                    Local {
                        dip: Some(i as u16),
                        ..Local::default()
                    },
                );
                routes.push(RouteEntry {
                    net: a.masked(),
                    iface: i as u16,
                    via: None,
                });
            }
            for a in &ic.addrs6 {
                let why = if a.len > 128 {
                    "prefix length must be 0..=128"
                } else if a.addr.is_multicast()
                    || a.addr.is_unspecified()
                    || a.addr.is_loopback()
                    || a.addr.is_unicast_link_local()
                {
                    "not a unicast address an interface can be given (the link-local address is the kernel's)"
                } else if local6.contains_key(&a.addr) {
                    "configured twice"
                } else {
                    ""
                };
                if !why.is_empty() {
                    return Err(ConfigError::BadAddress6 {
                        addr: a.addr,
                        len: a.len,
                        why,
                    });
                }
                local6.insert(
                    a.addr,
                    Local {
                        dip: Some(i as u16),
                        ..Local::default()
                    },
                );
            }
            ifaces.push(Iface {
                name: ic.name.clone(),
                port: ic.port,
                vlan: ic.vlan,
                addrs: ic.addrs.clone(),
                addrs6: ic.addrs6.clone(),
                mtu: ic.mtu,
            });
        }
        for r in &cfg.routes {
            if r.dst.len > 32 {
                return Err(ConfigError::BadPrefix {
                    addr: r.dst.addr,
                    len: r.dst.len,
                });
            }
        }
        add_gateway_routes(
            &mut routes,
            cfg.routes.iter().map(|r| (r.dst, r.via)),
            |dst, via| ConfigError::GatewayUnreachable { dst, via },
        )?;
        let routes6 = routes6(&ifaces, &cfg.routes6)?;
        for &lip in &cfg.lips6 {
            let l = local6.entry(lip).or_default();
            if l.dip.is_some() || l.lip {
                return Err(ConfigError::BadAddress6 {
                    addr: lip,
                    len: 128,
                    why: "a LIP that is also a DIP or listed twice",
                });
            }
            l.lip = true;
        }

        if cfg.lport_range.is_empty() {
            return Err(ConfigError::BadPortRange {
                start: *cfg.lport_range.start(),
                end: *cfg.lport_range.end(),
            });
        }
        if cfg.lport_reuse.pools == 0 || cfg.lport_reuse.pools > PortReuse::MAX_POOLS {
            return Err(ConfigError::BadPortPools(cfg.lport_reuse.pools));
        }
        let own = cfg.lips.iter().map(|&a| (a, false));
        for (lip, peer) in own.chain(cfg.peer_lips.iter().map(|&a| (a, true))) {
            if local.contains_key(&lip) {
                return Err(ConfigError::DuplicateAddress(lip));
            }
            local.insert(
                lip,
                Local {
                    lip: true,
                    peer,
                    ..Local::default()
                },
            );
        }

        let untagged = untagged_ifaces(&iface_by_port);
        let route_nets = routes
            .iter()
            .map(|e| (u32::from(e.net.addr) & e.net.mask(), e.net.mask()))
            .collect();
        let route6_nets = routes6
            .iter()
            .map(|e| (e.net.addr.to_bits() & e.net.mask(), e.net.mask()))
            .collect();
        let mut snap = Snapshot {
            ifaces,
            iface_by_port,
            untagged,
            routes,
            route_nets,
            route6_nets,
            routes6,
            local,
            local6,
            services: Vec::with_capacity(cfg.services.len()),
            schedulers: Vec::with_capacity(cfg.services.len()),
            service_by_key: HashMap::new(),
            service_by_v4: HashMap::new(),
            homed: Vec::with_capacity(cfg.services.len()),
            dest_slots: Vec::with_capacity(cfg.services.len()),
            nat_dests: HashMap::new(),
            nat_dests6: HashMap::new(),
            nat64: false,
            lips: cfg.lips.clone(),
            lips6: cfg.lips6.clone(),
            peer_lips: cfg.peer_lips.clone(),
            lport_range: cfg.lport_range.clone(),
            lport_reuse: cfg.lport_reuse,
            timeouts: cfg.timeouts,
            managed: Vec::with_capacity(cfg.managed.len()),
            standby_services: Vec::new(),
        };
        for svc in cfg.services.iter() {
            let key = svc.key();
            let vip = match key.vip {
                IpAddr::V4(vip) => vip,
                IpAddr::V6(vip) => {
                    snap.add_service6(svc, vip, slots)?;
                    continue;
                }
            };
            if snap.local(vip).is_some_and(|l| l.lip) {
                return Err(ConfigError::LipIsVip(vip));
            }
            for d in svc.dests() {
                let IpAddr::V4(rip) = d.addr else {
                    return Err(sched::SchedError::FamilyMismatch {
                        vip: key.vip,
                        dest: d.addr,
                    }
                    .into());
                };
                match d.mode {
                    ForwardMode::FullNat if snap.lips.is_empty() => {
                        return Err(ConfigError::FullNatWithoutLips {
                            service: key,
                            dest: d.addr,
                        })
                    }
                    ForwardMode::Dr => match snap.route(rip) {
                        Some(h) if h.on_link => {}
                        _ => {
                            return Err(ConfigError::DestNotOnLink {
                                service: key,
                                dest: d.addr,
                            })
                        }
                    },
                    _ => {
                        if snap.route(rip).is_none() {
                            return Err(ConfigError::NoRouteToDest {
                                service: key,
                                dest: d.addr,
                            });
                        }
                    }
                }
            }
            snap.local.entry(vip).or_default().vip = true;
            let has_nat = svc.dests().iter().any(|d| d.mode == ForwardMode::Nat);
            let homing = if svc.persistence().is_some() {
                Homing::Client
            } else if has_nat {
                Homing::Endpoint
            } else {
                Homing::None
            };
            for d in svc.dests().iter().filter(|d| d.mode == ForwardMode::Nat) {
                let rport = if key.proto == Proto::Icmp { 0 } else { d.port };
                if let IpAddr::V4(rip) = d.addr {
                    snap.nat_dests.insert((key.proto, rip, rport), homing);
                }
            }
            snap.homed.push(homing);
            snap.service_by_key.insert(key, snap.services.len() as u32);
            snap.service_by_v4
                .insert((key.proto, vip, key.port), snap.services.len() as u32);
            let ids = svc
                .dests()
                .iter()
                .map(|d| slots.slot(key, d.addr, d.port))
                .collect::<Result<Vec<_>, _>>()?;
            snap.dest_slots.push(ids);
            // Built here, on the control side: a Maglev table takes ~1 ms to compute, which a
            // worker must not spend; workers clone it (the table itself is shared).
            snap.schedulers.push(svc.sched().build(svc.dests()));
            snap.services.push(svc.clone());
        }
        for &addr in &cfg.managed {
            if snap.managed.iter().any(|m| m.addr == addr) {
                return Err(ConfigError::ManagedTwice(addr));
            }
            let port = cfg.held.get(&addr).copied();
            if let Some(l) = snap.local.get_mut(&addr) {
                if l.dip.is_some() {
                    return Err(ConfigError::ManagedDip(addr));
                }
                l.standby = port.is_none();
            }
            snap.managed.push(Managed {
                addr,
                owned: port.is_some(),
                iface: port.and_then(|p| snap.garp_iface(p, addr)),
            });
        }
        snap.standby_services = snap
            .services
            .iter()
            .map(|s| match s.key().vip {
                IpAddr::V4(vip) => snap.local(vip).is_some_and(|l| l.standby),
                IpAddr::V6(_) => false,
            })
            .collect();
        Ok(snap)
    }

    /// Checks and adds IPv6 service `svc` (VIP `vip`): every dest IPv6 (on a connected
    /// subnet in Route (DR) mode) or IPv4 in FullNAT mode (NAT64: IPv4 LIPs and a route to
    /// it needed), no persistence, the VIP none of the director's DIPs.
    fn add_service6(
        &mut self,
        svc: &Service,
        vip: Ipv6Addr,
        slots: &mut DestSlots,
    ) -> Result<(), ConfigError> {
        let key = svc.key();
        if self.dip6(vip).is_some() {
            return Err(ConfigError::VipIsDip6(vip));
        }
        if self.local6(vip).is_some_and(|l| l.lip) {
            return Err(ConfigError::LipIsVip6(vip));
        }
        for d in svc.dests() {
            let rip = match (d.addr, d.mode) {
                (IpAddr::V6(rip), _) => rip,
                // NAT64: toward the IPv4 RS from an IPv4 LIP.
                (IpAddr::V4(_), ForwardMode::FullNat) if self.lips.is_empty() => {
                    return Err(ConfigError::FullNatWithoutLips {
                        service: key,
                        dest: d.addr,
                    })
                }
                (IpAddr::V4(rip), ForwardMode::FullNat) if self.route(rip).is_none() => {
                    return Err(ConfigError::NoRouteToDest {
                        service: key,
                        dest: d.addr,
                    })
                }
                (IpAddr::V4(_), ForwardMode::FullNat) => {
                    self.nat64 = true;
                    continue;
                }
                (IpAddr::V4(_), _) => {
                    return Err(sched::SchedError::FamilyMismatch {
                        vip: key.vip,
                        dest: d.addr,
                    }
                    .into())
                }
            };
            match d.mode {
                ForwardMode::Dr if !self.route6(rip).is_some_and(|h| h.on_link) => {
                    return Err(ConfigError::DestNotOnLink {
                        service: key,
                        dest: d.addr,
                    })
                }
                ForwardMode::Dr => {}
                ForwardMode::FullNat if self.lips6.is_empty() => {
                    return Err(ConfigError::FullNatWithoutLips {
                        service: key,
                        dest: d.addr,
                    })
                }
                ForwardMode::FullNat if self.route6(rip).is_none() => {
                    return Err(ConfigError::NoRouteToDest {
                        service: key,
                        dest: d.addr,
                    })
                }
                ForwardMode::FullNat => {}
                ForwardMode::Nat if self.route6(rip).is_none() => {
                    return Err(ConfigError::NoRouteToDest {
                        service: key,
                        dest: d.addr,
                    })
                }
                ForwardMode::Nat => {
                    let homing = if svc.persistence().is_some() {
                        Homing::Client
                    } else {
                        Homing::Endpoint
                    };
                    self.nat_dests6.insert((key.proto, rip, d.port), homing);
                }
                ForwardMode::Tun if self.route6(rip).is_none() => {
                    return Err(ConfigError::NoRouteToDest {
                        service: key,
                        dest: d.addr,
                    })
                }
                ForwardMode::Tun => {}
            }
        }
        self.local6.entry(vip).or_default().vip = true;
        let nat = svc.dests().iter().any(|d| d.mode == ForwardMode::Nat);
        // A persistent service's sessions live on the client's home worker (one template for
        // all its connections); NAT66 replies carry the client endpoint, not the VIP: its
        // home worker holds them.
        self.homed.push(if svc.persistence().is_some() {
            Homing::Client
        } else if nat {
            Homing::Endpoint
        } else {
            Homing::None
        });
        self.service_by_key.insert(key, self.services.len() as u32);
        let ids = svc
            .dests()
            .iter()
            .map(|d| slots.slot(key, d.addr, d.port))
            .collect::<Result<Vec<_>, _>>()?;
        self.dest_slots.push(ids);
        self.schedulers.push(svc.sched().build(svc.dests()));
        self.services.push(svc.clone());
        Ok(())
    }

    /// The interface on `port` that announces `addr`: the one whose subnet contains it, else
    /// the first untagged one, else the first one.
    fn garp_iface(&self, port: u16, addr: Ipv4Addr) -> Option<u16> {
        let on_port = || {
            self.ifaces
                .iter()
                .enumerate()
                .filter(move |(_, f)| f.port == port)
        };
        on_port()
            .find(|(_, f)| f.addrs.iter().any(|a| a.contains(addr)))
            .or_else(|| on_port().find(|(_, f)| f.vlan.is_none()))
            .or_else(|| on_port().next())
            .map(|(i, _)| i as u16)
    }

    /// The managed addresses, in configuration order, and whether each is owned now.
    pub fn managed(&self) -> &[Managed] {
        &self.managed
    }

    /// The services, in a stable order (index = position).
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Index of the service for `proto` `vip`:`port`.
    #[inline]
    pub fn service_index(&self, proto: Proto, vip: Ipv4Addr, port: u16) -> Option<usize> {
        self.service_by_v4
            .get(&(proto, vip, port))
            .map(|&i| i as usize)
    }

    /// The scheduler of service `i`, as built for this snapshot (workers clone it).
    #[inline]
    pub fn scheduler(&self, i: usize) -> Option<&sched::AnyScheduler> {
        self.schedulers.get(i)
    }

    /// The counter slot of dest `d` of service `s`.
    #[inline]
    pub fn dest_slot(&self, s: usize, d: usize) -> u32 {
        self.dest_slots
            .get(s)
            .and_then(|v| v.get(d))
            .copied()
            .unwrap_or(0)
    }

    /// True if service `i`'s VIP is a managed address in standby: no new session.
    #[inline]
    pub fn service_standby(&self, i: usize) -> bool {
        self.standby_services.get(i).copied().unwrap_or(false)
    }

    /// Which worker must hold the sessions of service `i` (see [`Homing`]).
    #[inline]
    pub fn service_homing(&self, i: usize) -> Homing {
        self.homed.get(i).copied().unwrap_or(Homing::None)
    }

    /// If `addr`:`port` (`proto`) is a NAT dest of some service, a packet from it is a NAT
    /// reply: how its service homes its sessions (ICMP dests use port 0).
    #[inline]
    pub fn nat_dest_homing(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<Homing> {
        if self.nat_dests.is_empty() {
            return None;
        }
        self.nat_dests.get(&(proto, addr, port)).copied()
    }

    /// If `addr`:`port` (`proto`) is an IPv6 NAT dest, a packet from it is a NAT66 reply:
    /// how its service homes its sessions.
    #[inline]
    pub fn nat_dest6_homing(&self, proto: Proto, addr: Ipv6Addr, port: u16) -> Option<Homing> {
        self.nat_dests6.get(&(proto, addr, port)).copied()
    }

    /// True if some IPv6 service has NAT dests (NAT66 replies may arrive).
    #[inline]
    pub fn has_nat6(&self) -> bool {
        !self.nat_dests6.is_empty()
    }

    /// True if some IPv6 service has IPv4 FullNAT dests (NAT64): an IPv4 packet to a LIP
    /// that no IPv4 session takes may be a NAT64 session's reply.
    #[inline]
    pub fn has_nat64(&self) -> bool {
        self.nat64
    }

    /// What `ip` is to the director, if it is one of its addresses.
    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<Local> {
        self.local.get(&ip).copied()
    }

    /// The interface of IPv6 DIP `ip`, if it is one.
    #[inline]
    pub fn dip6(&self, ip: Ipv6Addr) -> Option<u16> {
        self.local6.get(&ip).and_then(|l| l.dip)
    }

    /// What IPv6 address `ip` is to the director, if it is one of its addresses.
    #[inline]
    pub fn local6(&self, ip: Ipv6Addr) -> Option<Local> {
        self.local6.get(&ip).copied()
    }

    /// Index of the service with this key.
    pub fn service_index_of(&self, key: &ServiceKey) -> Option<usize> {
        self.service_by_key.get(key).map(|&i| i as usize)
    }

    /// True if the director answers neighbour solicitations for `ip` on interface `iface`:
    /// an IPv6 DIP of that interface, an IPv6 VIP or an IPv6 LIP.
    #[inline]
    pub fn answers_nd(&self, iface: u16, ip: Ipv6Addr) -> bool {
        self.local6(ip)
            .is_some_and(|l| l.dip == Some(iface) || l.vip || l.lip)
    }

    /// The IPv6 LIPs, in configuration order.
    pub fn lips6(&self) -> &[Ipv6Addr] {
        &self.lips6
    }

    /// Index of the service for `proto` `[vip]:port`.
    #[inline]
    pub fn service_index6(&self, proto: Proto, vip: Ipv6Addr, port: u16) -> Option<usize> {
        self.service_by_key
            .get(&ServiceKey {
                proto,
                vip: IpAddr::V6(vip),
                port,
            })
            .map(|&i| i as usize)
    }

    /// The interface receiving frames on `port` with `vlan`.
    #[inline]
    pub fn iface_index(&self, port: u16, vlan: Option<u16>) -> Option<u16> {
        match vlan {
            None => self
                .untagged
                .get(usize::from(port))
                .copied()
                .filter(|&i| i != NO_IFACE),
            Some(_) => self.iface_by_port.get(&(port, vlan)).copied(),
        }
    }

    /// Interface `i`.
    #[inline]
    pub fn iface(&self, i: u16) -> &Iface {
        &self.ifaces[i as usize]
    }

    /// All interfaces.
    pub fn ifaces(&self) -> &[Iface] {
        &self.ifaces
    }

    /// Longest-prefix route lookup.
    #[inline]
    pub fn route(&self, dst: Ipv4Addr) -> Option<Hop> {
        let d = u32::from(dst);
        let i = self
            .route_nets
            .iter()
            .position(|&(net, mask)| d & mask == net)?;
        self.routes.get(i).map(|e| Hop {
            iface: e.iface,
            nexthop: e.via.unwrap_or(dst),
            on_link: e.via.is_none(),
        })
    }

    /// The IPv6 route to `dst`: the longest prefix that holds it.
    #[inline]
    pub fn route6(&self, dst: Ipv6Addr) -> Option<Hop6> {
        let d = dst.to_bits();
        let i = self
            .route6_nets
            .iter()
            .position(|&(net, mask)| d & mask == net)?;
        self.routes6.get(i).map(|e| Hop6 {
            iface: e.iface,
            nexthop: e.via.unwrap_or(dst),
            on_link: e.via.is_none(),
        })
    }

    /// The director's IPv6 address on interface `iface` to use toward `peer`: the DIP whose
    /// subnet holds `peer`, else the interface's first; `None` if it has none.
    pub fn source_addr6(&self, iface: u16, peer: Ipv6Addr) -> Option<Ipv6Addr> {
        let addrs = &self.ifaces.get(iface as usize)?.addrs6;
        addrs
            .iter()
            .find(|a| a.contains(peer))
            .or(addrs.first())
            .map(|a| a.addr)
    }

    /// The director's address on interface `iface` to use toward `peer`: the DIP whose subnet
    /// holds `peer`, else the interface's first address.
    #[inline]
    pub fn source_addr(&self, iface: u16, peer: Ipv4Addr) -> Ipv4Addr {
        let addrs = &self.ifaces[iface as usize].addrs;
        addrs
            .iter()
            .find(|a| a.contains(peer))
            .or(addrs.first())
            .map(|a| a.addr)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// True if the director answers ARP for `ip` on interface `iface`: a DIP of that interface,
    /// or any VIP or LIP it owns (not one in standby, not a peer's LIP).
    #[inline]
    pub fn answers_arp(&self, iface: u16, ip: Ipv4Addr) -> bool {
        match self.local(ip) {
            Some(l) => l.dip == Some(iface) || ((l.vip || l.lip) && !l.standby && !l.peer),
            None => false,
        }
    }

    /// How many ports a worker needs for this snapshot: one more than the highest port any
    /// interface uses (0 without interfaces).
    pub fn ports_needed(&self) -> usize {
        self.ifaces
            .iter()
            .map(|i| i.port as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// FullNAT LIPs.
    pub fn lips(&self) -> &[Ipv4Addr] {
        &self.lips
    }

    /// The peer directors' LIPs (see [`DirectorConfig::peer_lips`]).
    pub fn peer_lips(&self) -> &[Ipv4Addr] {
        &self.peer_lips
    }

    /// The LIP port range, before it is split among workers.
    pub fn lport_range(&self) -> RangeInclusive<u16> {
        self.lport_range.clone()
    }

    /// How freed LIP ports come back into use.
    pub fn lport_reuse(&self) -> PortReuse {
        self.lport_reuse
    }

    /// Session timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// An empty snapshot: no interfaces, no services (everything is dropped as not for us).
    pub fn empty() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            ifaces: Vec::new(),
            iface_by_port: HashMap::new(),
            untagged: Vec::new(),
            routes: Vec::new(),
            route_nets: Vec::new(),
            route6_nets: Vec::new(),
            routes6: Vec::new(),
            local: HashMap::new(),
            local6: HashMap::new(),
            services: Vec::new(),
            schedulers: Vec::new(),
            service_by_key: HashMap::new(),
            service_by_v4: HashMap::new(),
            homed: Vec::new(),
            dest_slots: Vec::new(),
            nat_dests: HashMap::new(),
            nat_dests6: HashMap::new(),
            nat64: false,
            lips: Vec::new(),
            lips6: Vec::new(),
            peer_lips: Vec::new(),
            lport_range: 1024..=65535,
            lport_reuse: PortReuse::default(),
            timeouts: Timeouts::default(),
            managed: Vec::new(),
            standby_services: Vec::new(),
        })
    }
}

impl Cidr {
    fn masked(&self) -> Cidr {
        Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 201);
    const DIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn iface(name: &str, port: u16, vlan: Option<u16>, addr: Cidr) -> InterfaceConfig {
        InterfaceConfig {
            addrs6: Vec::new(),
            name: name.into(),
            port,
            vlan,
            addrs: vec![addr],
            mtu: 1500,
        }
    }

    /// wan0 (port 0) and its VLAN 100, lan0 (port 1); a service on VIP; LIP.
    fn cfg() -> DirectorConfig {
        let mut services = ServiceTable::default();
        let key = ServiceKey {
            proto: Proto::Tcp,
            vip: VIP.into(),
            port: 80,
        };
        services
            .add(Service::new(key, sched::SchedKind::Rr).unwrap())
            .unwrap();
        DirectorConfig {
            interfaces: vec![
                iface("wan0", 0, None, Cidr::new(DIP, 24)),
                iface(
                    "wan0.100",
                    0,
                    Some(100),
                    Cidr::new(Ipv4Addr::new(203, 0, 113, 1), 24),
                ),
                iface("lan0", 1, None, Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24)),
            ],
            lips: vec![LIP],
            services,
            managed: vec![VIP, LIP],
            ..DirectorConfig::default()
        }
    }

    #[test]
    fn frames_find_their_interface_and_packets_their_longest_prefix() {
        let mut c = cfg();
        // Port 2 carries only a VLAN: an untagged frame there has no interface.
        c.interfaces.push(iface(
            "lan1.7",
            2,
            Some(7),
            Cidr::new(Ipv4Addr::new(172, 16, 0, 1), 16),
        ));
        c.routes = vec![
            RouteConfig {
                dst: Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
                via: Ipv4Addr::new(192, 0, 2, 254),
            },
            RouteConfig {
                dst: Cidr::new(Ipv4Addr::new(10, 9, 0, 0), 16),
                via: Ipv4Addr::new(10, 1, 0, 254),
            },
        ];
        let s = Snapshot::build(&c).unwrap();
        assert_eq!(s.iface_index(0, None), Some(0));
        assert_eq!(s.iface_index(0, Some(100)), Some(1));
        assert_eq!(s.iface_index(1, None), Some(2));
        assert_eq!(s.iface_index(2, None), None);
        assert_eq!(s.iface_index(2, Some(7)), Some(3));
        assert_eq!(s.iface_index(0, Some(7)), None);
        assert_eq!(s.iface_index(9, None), None);
        let hop = |a: [u8; 4]| {
            s.route(Ipv4Addr::from(a))
                .map(|h| (h.iface, h.nexthop, h.on_link))
        };
        // Connected subnets, on the link.
        assert_eq!(
            hop([10, 1, 0, 11]),
            Some((2, Ipv4Addr::new(10, 1, 0, 11), true))
        );
        assert_eq!(
            hop([203, 0, 113, 9]),
            Some((1, Ipv4Addr::new(203, 0, 113, 9), true))
        );
        assert_eq!(
            hop([172, 16, 3, 4]),
            Some((3, Ipv4Addr::new(172, 16, 3, 4), true))
        );
        // The /16 gateway route before the default; the default for the rest.
        assert_eq!(
            hop([10, 9, 8, 7]),
            Some((2, Ipv4Addr::new(10, 1, 0, 254), false))
        );
        assert_eq!(
            hop([198, 51, 100, 7]),
            Some((0, Ipv4Addr::new(192, 0, 2, 254), false))
        );
        // Without the default route, an address no prefix holds has no route.
        c.routes.truncate(0);
        let s = Snapshot::build(&c).unwrap();
        assert_eq!(s.route(Ipv4Addr::new(198, 51, 100, 7)), None);
    }

    #[test]
    fn a_managed_address_is_standby_until_held() {
        let s = Snapshot::build(&cfg()).unwrap();
        assert!(s.local(VIP).unwrap().standby && s.local(LIP).unwrap().standby);
        assert!(
            s.service_standby(0),
            "the service on the VIP takes no new session"
        );
        assert!(!s.answers_arp(0, VIP) && !s.answers_arp(1, LIP));
        assert!(s.answers_arp(0, DIP), "DIPs are never managed");
        let owned: Vec<bool> = s.managed().iter().map(|m| m.owned).collect();
        assert_eq!(owned, [false, false]);

        let mut c = cfg();
        c.held = [(VIP, 0), (LIP, 1), (DIP, 0)].into_iter().collect();
        let s = Snapshot::build(&c).unwrap();
        assert!(!s.local(VIP).unwrap().standby && s.answers_arp(0, VIP));
        assert!(!s.service_standby(0));
        assert!(s.answers_arp(1, LIP));
        assert_eq!(
            s.managed(),
            &[
                Managed {
                    addr: VIP,
                    owned: true,
                    iface: Some(0)
                },
                Managed {
                    addr: LIP,
                    owned: true,
                    iface: Some(2)
                }
            ]
        );
        // Without managed addresses, nothing is ever standby (today's behaviour).
        c.managed.clear();
        c.held.clear();
        let s = Snapshot::build(&c).unwrap();
        assert!(!s.local(VIP).unwrap().standby && s.answers_arp(0, VIP));
    }

    #[test]
    fn gratuitous_arps_leave_from_the_interface_of_the_address() {
        let mut c = cfg();
        let vlan_vip = Ipv4Addr::new(203, 0, 113, 100);
        let elsewhere = Ipv4Addr::new(198, 18, 0, 1);
        c.managed = vec![vlan_vip, elsewhere, LIP];
        c.held = [(vlan_vip, 0), (elsewhere, 0), (LIP, 2)]
            .into_iter()
            .collect();
        let s = Snapshot::build(&c).unwrap();
        let ifaces: Vec<_> = s.managed().iter().map(|m| m.iface).collect();
        // In the VLAN's subnet: the VLAN; in none: the port's untagged interface; on a port
        // without interfaces: nowhere.
        assert_eq!(ifaces, [Some(1), Some(0), None]);
        assert!(s.managed().iter().all(|m| m.owned));
    }

    #[test]
    fn dips_and_repeats_cannot_be_managed() {
        let mut c = cfg();
        c.managed.push(DIP);
        assert_eq!(
            Snapshot::build(&c).unwrap_err(),
            ConfigError::ManagedDip(DIP)
        );
        let e = ConfigError::ManagedDip(DIP).to_string();
        assert!(e.contains("only VIPs and LIPs can be managed"), "{e}");
        let mut c = cfg();
        c.managed.push(VIP);
        assert_eq!(
            Snapshot::build(&c).unwrap_err(),
            ConfigError::ManagedTwice(VIP)
        );
    }
}
