//! Services (a VIP, port and protocol with a scheduler and its dests) and the table of them.
//!
//! This is the control side's authoritative model. Every change is validated first and applied
//! only if valid, so a refused change leaves the service or table exactly as it was. The rules
//! are ipvsadm's, with one difference the design asks for: where ipvsadm silently replaces the
//! port of a DR or TUN dest by the service port, rvs refuses the dest.

use core::fmt;
use core::net::IpAddr;
#[cfg(test)]
use core::net::Ipv4Addr;
use std::collections::BTreeMap;

use crate::addr::{push_octets, AddrPort};
use crate::dest::{Dest, MAX_WEIGHT};
use crate::error::SchedError;
use crate::scheduler::SchedKind;
use crate::Proto;

/// A version of the PROXY protocol (haproxy's specification): v1 is a line of text
/// (`PROXY TCP4 <client> <vip> <cport> <vport>\r\n`), v2 a binary header. Named as DPVS's
/// `--proxy-protocol` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// The text header.
    V1,
    /// The binary header.
    V2,
}

impl ProxyProtocol {
    /// `v1` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }

    /// Parses `v1`, `v2`, or `disable` (None).
    ///
    /// # Errors
    /// [`SchedError::UnknownProxyProtocol`] for anything else.
    pub fn parse(s: &str) -> Result<Option<ProxyProtocol>, SchedError> {
        match s {
            "v1" => Ok(Some(ProxyProtocol::V1)),
            "v2" => Ok(Some(ProxyProtocol::V2)),
            "disable" => Ok(None),
            other => Err(SchedError::UnknownProxyProtocol(other.to_owned())),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What identifies a service: protocol, VIP and port. Displayed as `tcp 192.0.2.1:80`.
///
/// ICMP services have port 0. Keys order by protocol, then VIP, then port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The L4 protocol.
    pub proto: Proto,
    /// The VIP.
    pub vip: IpAddr,
    /// The service port (0 for ICMP).
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto, AddrPort(self.vip, self.port))
    }
}

/// The longest persistence timeout, in seconds (31 days, ipvsadm's limit).
pub const MAX_PERSISTENCE: u32 = 31 * 24 * 3600;

/// Whether `port` is a valid service or dest port for `proto`: 1..=65535 for TCP and UDP, 0
/// for ICMP.
fn check_port(proto: Proto, port: u16) -> Result<(), SchedError> {
    let valid = match proto {
        Proto::Icmp => port == 0,
        Proto::Tcp | Proto::Udp => port != 0,
    };
    if valid {
        Ok(())
    } else {
        Err(SchedError::InvalidPort { proto, port })
    }
}

/// A virtual service: a VIP, port and protocol, the scheduler that spreads its new sessions,
/// and its dests, newest first (IPVS's order: `ip_vs_ctl.c` puts a new dest at the head of the
/// service's list, and the schedulers and `ipvsadm -L --nosort` walk it from there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Protocol, VIP and port.
    key: ServiceKey,
    /// The scheduling algorithm.
    sched: SchedKind,
    /// Persistence timeout in seconds (ipvsadm `-p`).
    persistence: Option<u32>,
    /// SYN proxy (DPVS and Alibaba LVS `-j enable`): the director answers SYNs with SYN
    /// cookies and opens the RS connection only after the client's valid ACK.
    synproxy: bool,
    /// The PROXY protocol header the director puts ahead of the client's data toward the
    /// dest (DPVS's `--proxy-protocol`), so that the RS learns the client's address.
    proxy_protocol: Option<ProxyProtocol>,
    /// TOA (Alibaba's TCP option 254): the client's address and port in an option of the
    /// connection's first segments toward the dest, for a kernel module on the RS.
    toa: bool,
    /// The dests, unique by `(addr, port)`, newest first.
    dests: Vec<Dest>,
}

impl Service {
    /// A service with no dests.
    ///
    /// # Errors
    /// [`SchedError::InvalidPort`] if a TCP or UDP service has port 0, or an ICMP service a
    /// port other than 0.
    pub fn new(key: ServiceKey, sched: SchedKind) -> Result<Service, SchedError> {
        check_port(key.proto, key.port)?;
        Ok(Service {
            key,
            sched,
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false,
            dests: Vec::new(),
        })
    }

    /// Protocol, VIP and port.
    pub fn key(&self) -> ServiceKey {
        self.key
    }

    /// The scheduling algorithm.
    pub fn sched(&self) -> SchedKind {
        self.sched
    }

    /// Changes the scheduling algorithm (ipvsadm `-E -s`); the dests stay.
    pub fn set_sched(&mut self, s: SchedKind) {
        self.sched = s;
    }

    /// The persistence timeout in seconds, if the service is persistent (ipvsadm `-p`): new
    /// connections from a client go to the dest its previous ones went to, until that many
    /// seconds after its last connection ended (IPVS's persistence templates).
    pub fn persistence(&self) -> Option<u32> {
        self.persistence
    }

    /// Makes the service persistent for `secs` seconds, or not (None).
    ///
    /// # Errors
    /// [`SchedError::PersistenceOutOfRange`] outside 1..=[`MAX_PERSISTENCE`].
    pub fn set_persistence(&mut self, secs: Option<u32>) -> Result<(), SchedError> {
        if let Some(s) = secs {
            if !(1..=MAX_PERSISTENCE).contains(&s) {
                return Err(SchedError::PersistenceOutOfRange(s));
            }
        }
        self.persistence = secs;
        Ok(())
    }

    /// Whether the director proxies this service's TCP handshakes with SYN cookies.
    pub fn synproxy(&self) -> bool {
        self.synproxy
    }

    /// Turns SYN proxy on or off (`-j enable|disable`). Sessions already open keep the way
    /// they were opened.
    ///
    /// # Errors
    /// Nothing changes if refused: [`SchedError::SynProxyNotTcp`] on a UDP or ICMP service,
    /// [`SchedError::SynProxyNeedsReplies`] if a dest is DR or TUN.
    pub fn set_synproxy(&mut self, on: bool) -> Result<(), SchedError> {
        if on {
            if self.key.proto != Proto::Tcp {
                return Err(SchedError::SynProxyNotTcp { key: self.key });
            }
            if let Some(d) = self.dests.iter().find(|d| !d.mode.maps_ports()) {
                return Err(SchedError::SynProxyNeedsReplies { mode: d.mode });
            }
        }
        self.synproxy = on;
        Ok(())
    }

    /// The PROXY protocol version this service sends its dests, if any.
    pub fn proxy_protocol(&self) -> Option<ProxyProtocol> {
        self.proxy_protocol
    }

    /// Sends the PROXY protocol header of `version` ahead of each connection's data, or not
    /// (`--proxy-protocol v1|v2|disable`). Sessions already open keep the way they were
    /// opened.
    ///
    /// # Errors
    /// Nothing changes if refused: [`SchedError::ProxyProtocolNotTcp`] on an ICMP service,
    /// [`SchedError::ProxyProtocolV1Udp`] for v1 on UDP (v1 has no UDP),
    /// [`SchedError::ProxyProtocolNeedsReplies`] if a dest is DR or TUN,
    /// [`SchedError::ToaWithProxyProtocol`] with TOA on.
    pub fn set_proxy_protocol(&mut self, v: Option<ProxyProtocol>) -> Result<(), SchedError> {
        if let Some(version) = v {
            match (self.key.proto, version) {
                (Proto::Tcp, _) | (Proto::Udp, ProxyProtocol::V2) => {}
                (Proto::Udp, ProxyProtocol::V1) => {
                    return Err(SchedError::ProxyProtocolV1Udp { key: self.key })
                }
                (Proto::Icmp, _) => return Err(SchedError::ProxyProtocolNotTcp { key: self.key }),
            }
            if let Some(d) = self.dests.iter().find(|d| !d.mode.maps_ports()) {
                return Err(SchedError::ProxyProtocolNeedsReplies { mode: d.mode });
            }
            if self.toa {
                return Err(SchedError::ToaWithProxyProtocol);
            }
        }
        self.proxy_protocol = v;
        Ok(())
    }

    /// Whether the service puts the client's address in a TOA option (`--toa`).
    pub fn toa(&self) -> bool {
        self.toa
    }

    /// Turns TOA on or off. Sessions already open keep the way they were opened.
    ///
    /// # Errors
    /// Nothing changes if refused: [`SchedError::ToaNotTcp`] on a UDP or ICMP service,
    /// [`SchedError::ToaNeedsReplies`] if a dest is DR or TUN,
    /// [`SchedError::ToaWithProxyProtocol`] with a PROXY protocol header (one or the other).
    pub fn set_toa(&mut self, on: bool) -> Result<(), SchedError> {
        if on {
            if self.key.proto != Proto::Tcp {
                return Err(SchedError::ToaNotTcp { key: self.key });
            }
            if let Some(d) = self.dests.iter().find(|d| !d.mode.maps_ports()) {
                return Err(SchedError::ToaNeedsReplies { mode: d.mode });
            }
            if self.proxy_protocol.is_some() {
                return Err(SchedError::ToaWithProxyProtocol);
            }
        }
        self.toa = on;
        Ok(())
    }

    /// The dests, newest first, as IPVS lists a service's dests: the dest added last is
    /// `dests()[0]`. Schedulers index into this slice and walk it in this order; a dest's
    /// index changes as others are added or removed (sessions and counters name a dest by its
    /// address and port, never by its index).
    pub fn dests(&self) -> &[Dest] {
        &self.dests
    }

    /// The dest with this RIP and port, if it belongs to the service.
    pub fn dest(&self, addr: IpAddr, port: u16) -> Option<&Dest> {
        self.dests.iter().find(|d| d.addr == addr && d.port == port)
    }

    /// Adds a dest at the head of the list (ipvsadm `-a`): it becomes `dests()[0]` and the
    /// others move down by one, as `list_add_rcu(&dest->n_list, &svc->destinations)` puts it
    /// in IPVS. Dests from rvsd's configuration file are added in the file's order, so a
    /// service lists them last first, as if `ipvsadm -a` had added them in that order.
    ///
    /// # Errors
    /// Nothing changes if the dest is refused:
    /// - [`SchedError::WeightOutOfRange`] if its weight is above [`MAX_WEIGHT`];
    /// - [`SchedError::InvalidPort`] if its port is 0 on a TCP/UDP service, or not 0 on ICMP;
    /// - [`SchedError::PortMapNotAllowed`] if it is DR or TUN with a port other than the
    ///   service port;
    /// - [`SchedError::DuplicateDest`] if a dest with the same address and port exists.
    pub fn add_dest(&mut self, d: Dest) -> Result<(), SchedError> {
        self.check_dest(&d)?;
        if self.dest(d.addr, d.port).is_some() {
            return Err(SchedError::DuplicateDest {
                addr: d.addr,
                port: d.port,
            });
        }
        self.dests.insert(0, d);
        Ok(())
    }

    /// Replaces the weight and mode of the dest with `d`'s address and port (ipvsadm `-e`);
    /// it keeps its place in the list.
    ///
    /// # Errors
    /// Nothing changes if the edit is refused: the same validation errors as
    /// [`add_dest`](Service::add_dest), and [`SchedError::DestNotFound`] if no dest has this
    /// address and port.
    pub fn edit_dest(&mut self, d: Dest) -> Result<(), SchedError> {
        self.check_dest(&d)?;
        let slot = self
            .dests
            .iter_mut()
            .find(|x| x.addr == d.addr && x.port == d.port)
            .ok_or(SchedError::DestNotFound {
                addr: d.addr,
                port: d.port,
            })?;
        *slot = d;
        Ok(())
    }

    /// Removes the dest with this RIP and port (ipvsadm `-d`) and returns it; the dests after
    /// it move up by one.
    ///
    /// # Errors
    /// [`SchedError::DestNotFound`] if no dest has this address and port.
    pub fn remove_dest(&mut self, addr: IpAddr, port: u16) -> Result<Dest, SchedError> {
        let index = self
            .dests
            .iter()
            .position(|d| d.addr == addr && d.port == port)
            .ok_or(SchedError::DestNotFound { addr, port })?;
        Ok(self.dests.remove(index))
    }

    /// Checks a dest's weight, port and mode against this service.
    fn check_dest(&self, d: &Dest) -> Result<(), SchedError> {
        if d.weight > MAX_WEIGHT {
            return Err(SchedError::WeightOutOfRange { weight: d.weight });
        }
        check_port(self.key.proto, d.port)?;
        // NAT64: an IPv6 service's FullNAT dest may be IPv4 (its LIP is IPv4 then).
        let nat64 =
            self.key.vip.is_ipv6() && d.addr.is_ipv4() && d.mode == crate::ForwardMode::FullNat;
        if d.addr.is_ipv4() != self.key.vip.is_ipv4() && !nat64 {
            return Err(SchedError::FamilyMismatch {
                vip: self.key.vip,
                dest: d.addr,
            });
        }
        if self.synproxy && !d.mode.maps_ports() {
            return Err(SchedError::SynProxyNeedsReplies { mode: d.mode });
        }
        if self.proxy_protocol.is_some() && !d.mode.maps_ports() {
            return Err(SchedError::ProxyProtocolNeedsReplies { mode: d.mode });
        }
        if self.toa && !d.mode.maps_ports() {
            return Err(SchedError::ToaNeedsReplies { mode: d.mode });
        }
        if !d.mode.maps_ports() && d.port != self.key.port {
            return Err(SchedError::PortMapNotAllowed {
                mode: d.mode,
                dest_port: d.port,
                service_port: self.key.port,
            });
        }
        Ok(())
    }
}

/// All services of the director, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {
    /// The services, sorted by key.
    services: BTreeMap<ServiceKey, Service>,
}

impl ServiceTable {
    /// An empty table.
    pub fn new() -> ServiceTable {
        ServiceTable::default()
    }

    /// Adds a service (ipvsadm `-A`).
    ///
    /// # Errors
    /// [`SchedError::DuplicateService`] if a service with the same key exists; the table is
    /// unchanged.
    pub fn add(&mut self, service: Service) -> Result<(), SchedError> {
        use std::collections::btree_map::Entry;
        match self.services.entry(service.key()) {
            Entry::Occupied(e) => Err(SchedError::DuplicateService { key: *e.key() }),
            Entry::Vacant(e) => {
                e.insert(service);
                Ok(())
            }
        }
    }

    /// The service with this key.
    pub fn get(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key)
    }

    /// The service with this key, to change its scheduler or dests.
    pub fn get_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.get_mut(key)
    }

    /// Removes the service with this key (ipvsadm `-D`) and returns it.
    ///
    /// # Errors
    /// [`SchedError::NoSuchService`] if there is no such service.
    pub fn remove(&mut self, key: &ServiceKey) -> Result<Service, SchedError> {
        self.services
            .remove(key)
            .ok_or(SchedError::NoSuchService { key: *key })
    }

    /// The services, sorted by key (protocol, then VIP, then port).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Service> + ExactSizeIterator + '_ {
        self.services.values()
    }

    /// The number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether there are no services.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// The key of [`view_digest`]'s hash: the next two words of SHA-512's initial hash value
/// after those mh uses.
const VIEW_KEY: crate::hash::SipKey =
    crate::hash::SipKey(0x510e_527f_ade6_82d1, 0x9b05_688c_2b3e_6c1f);

/// A digest of everything that decides where a new flow goes: each service's key, scheduler,
/// persistence and SYN proxy, and its dests in order (mh's table depends on the order) with
/// port, weight and mode. Directors whose services give the same digest send a new flow to
/// the same dest with `sh` and `mh`; session sync sends it so that directors that disagree
/// are noticed. The same in every process (fixed-key SipHash over big-endian fields).
pub fn view_digest<'a>(services: impl IntoIterator<Item = &'a Service>) -> u64 {
    let mut sorted: Vec<&Service> = services.into_iter().collect();
    sorted.sort_by_key(|s| (s.key.proto.ip_proto(), s.key.vip, s.key.port));
    let mut b = Vec::with_capacity(sorted.iter().map(|s| 24 + 20 * s.dests.len()).sum());
    for s in sorted {
        b.push(s.key.proto.ip_proto());
        push_octets(&mut b, s.key.vip);
        b.extend_from_slice(&s.key.port.to_be_bytes());
        let name = s.sched.name().as_bytes();
        b.push(name.len() as u8);
        b.extend_from_slice(name);
        b.extend_from_slice(
            &s.persistence
                .map_or(0, |p| p.saturating_add(1))
                .to_be_bytes(),
        );
        b.push(u8::from(s.synproxy));
        b.extend_from_slice(&(s.dests.len() as u32).to_be_bytes());
        for d in &s.dests {
            push_octets(&mut b, d.addr);
            b.extend_from_slice(&d.port.to_be_bytes());
            b.extend_from_slice(&d.weight.to_be_bytes());
            let mode = d.mode.ipvsadm_name().as_bytes();
            b.push(mode.len() as u8);
            b.extend_from_slice(mode);
        }
    }
    crate::hash::siphash13(VIEW_KEY, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_digest_follows_what_schedules_and_nothing_else() {
        let key = |port| ServiceKey {
            proto: Proto::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 1).into(),
            port,
        };
        let dest = |last, weight| Dest {
            addr: Ipv4Addr::new(10, 1, 0, last).into(),
            port: 80,
            weight,
            mode: crate::ForwardMode::FullNat,
        };
        let service = |port, sched, dests: &[Dest]| {
            let mut s = Service::new(key(port), sched).unwrap();
            for d in dests {
                s.add_dest(*d).unwrap();
            }
            s
        };
        let a = service(80, SchedKind::Mh, &[dest(11, 1), dest(12, 1)]);
        let b = service(443, SchedKind::Mh, &[dest(11, 1)]);
        let base = view_digest([&a, &b]);
        assert_eq!(base, view_digest([&b, &a]), "services in any order");
        assert_eq!(base, 0x0a32_cb8c_8ee1_daf0, "the same in every build");
        for other in [
            service(80, SchedKind::Sh, &[dest(11, 1), dest(12, 1)]),
            service(80, SchedKind::Mh, &[dest(11, 1), dest(12, 2)]),
            service(80, SchedKind::Mh, &[dest(12, 1), dest(11, 1)]),
            service(80, SchedKind::Mh, &[dest(11, 1)]),
            service(81, SchedKind::Mh, &[dest(11, 1), dest(12, 1)]),
        ] {
            assert_ne!(base, view_digest([&other, &b]), "{other:?}");
        }
        let mut p = a.clone();
        p.set_persistence(Some(300)).unwrap();
        assert_ne!(base, view_digest([&p, &b]));
        assert_ne!(base, view_digest([&a]));
        assert_ne!(view_digest([]), base);
    }
    use crate::dest::ForwardMode;
    use proptest::prelude::*;

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const RIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn key(proto: Proto, port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            vip: VIP,
            port,
        }
    }

    fn tcp80() -> Service {
        Service::new(key(Proto::Tcp, 80), SchedKind::Wrr).unwrap()
    }

    fn dest(port: u16, weight: u32, mode: ForwardMode) -> Dest {
        Dest {
            addr: RIP,
            port,
            weight,
            mode,
        }
    }

    #[test]
    fn synproxy_is_for_tcp_with_nat_or_fullnat_dests() {
        let mut udp = Service::new(key(Proto::Udp, 53), SchedKind::Rr).unwrap();
        assert!(matches!(
            udp.set_synproxy(true),
            Err(SchedError::SynProxyNotTcp { .. })
        ));
        assert!(!udp.synproxy());
        let mut s = tcp80();
        s.add_dest(dest(80, 1, ForwardMode::Dr)).unwrap();
        assert_eq!(
            s.set_synproxy(true),
            Err(SchedError::SynProxyNeedsReplies {
                mode: ForwardMode::Dr
            })
        );
        assert!(!s.synproxy());
        let mut s = tcp80();
        s.add_dest(dest(8080, 1, ForwardMode::FullNat)).unwrap();
        s.set_synproxy(true).unwrap();
        assert!(s.synproxy());
        let tun = Dest {
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            ..dest(80, 1, ForwardMode::Tun)
        };
        assert_eq!(
            s.add_dest(tun),
            Err(SchedError::SynProxyNeedsReplies {
                mode: ForwardMode::Tun
            })
        );
        assert_eq!(s.dests().len(), 1, "nothing changed");
        s.set_synproxy(false).unwrap();
        s.add_dest(tun).unwrap();
    }

    #[test]
    fn proxy_protocol_is_for_tcp_with_nat_or_fullnat_dests() {
        assert_eq!(ProxyProtocol::parse("v1"), Ok(Some(ProxyProtocol::V1)));
        assert_eq!(ProxyProtocol::parse("v2"), Ok(Some(ProxyProtocol::V2)));
        assert_eq!(ProxyProtocol::parse("disable"), Ok(None));
        assert_eq!(
            ProxyProtocol::parse("v3"),
            Err(SchedError::UnknownProxyProtocol("v3".into()))
        );
        let mut udp = Service::new(key(Proto::Udp, 53), SchedKind::Rr).unwrap();
        assert!(matches!(
            udp.set_proxy_protocol(Some(ProxyProtocol::V1)),
            Err(SchedError::ProxyProtocolV1Udp { .. })
        ));
        udp.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap();
        let mut icmp = Service::new(key(Proto::Icmp, 0), SchedKind::Rr).unwrap();
        assert!(matches!(
            icmp.set_proxy_protocol(Some(ProxyProtocol::V2)),
            Err(SchedError::ProxyProtocolNotTcp { .. })
        ));
        let mut s = tcp80();
        s.add_dest(dest(80, 1, ForwardMode::Dr)).unwrap();
        assert_eq!(
            s.set_proxy_protocol(Some(ProxyProtocol::V1)),
            Err(SchedError::ProxyProtocolNeedsReplies {
                mode: ForwardMode::Dr
            })
        );
        assert_eq!(s.proxy_protocol(), None);
        let mut s = tcp80();
        s.add_dest(dest(8080, 1, ForwardMode::FullNat)).unwrap();
        s.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap();
        assert_eq!(s.proxy_protocol(), Some(ProxyProtocol::V2));
        let tun = Dest {
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            ..dest(80, 1, ForwardMode::Tun)
        };
        assert_eq!(
            s.add_dest(tun),
            Err(SchedError::ProxyProtocolNeedsReplies {
                mode: ForwardMode::Tun
            })
        );
        // With the SYN proxy, both ways round.
        s.set_synproxy(true).unwrap();
        s.set_proxy_protocol(Some(ProxyProtocol::V1)).unwrap();
        assert!(s.synproxy());
        assert_eq!(ProxyProtocol::V2.to_string(), "v2");
    }

    #[test]
    fn toa_is_for_tcp_with_nat_or_fullnat_dests_and_not_with_a_proxy_header() {
        let mut udp = Service::new(key(Proto::Udp, 53), SchedKind::Rr).unwrap();
        assert!(matches!(
            udp.set_toa(true),
            Err(SchedError::ToaNotTcp { .. })
        ));
        let mut s = tcp80();
        s.add_dest(dest(80, 1, ForwardMode::Tun)).unwrap();
        assert_eq!(
            s.set_toa(true),
            Err(SchedError::ToaNeedsReplies {
                mode: ForwardMode::Tun
            })
        );
        let mut s = tcp80();
        s.add_dest(dest(8080, 1, ForwardMode::FullNat)).unwrap();
        s.set_toa(true).unwrap();
        assert!(s.toa());
        assert_eq!(
            s.add_dest(dest(80, 1, ForwardMode::Dr)),
            Err(SchedError::ToaNeedsReplies {
                mode: ForwardMode::Dr
            })
        );
        assert_eq!(
            s.set_proxy_protocol(Some(ProxyProtocol::V2)),
            Err(SchedError::ToaWithProxyProtocol)
        );
        s.set_toa(false).unwrap();
        s.set_proxy_protocol(Some(ProxyProtocol::V2)).unwrap();
        assert_eq!(s.set_toa(true), Err(SchedError::ToaWithProxyProtocol));
        assert!(!s.toa());
    }

    #[test]
    fn key_displays_proto_vip_and_port() {
        assert_eq!(key(Proto::Tcp, 80).to_string(), "tcp 192.0.2.1:80");
        assert_eq!(key(Proto::Icmp, 0).to_string(), "icmp 192.0.2.1:0");
    }

    #[test]
    fn keys_sort_by_proto_then_vip_then_port() {
        let a = key(Proto::Tcp, 443);
        let b = ServiceKey {
            vip: Ipv4Addr::new(192, 0, 2, 2).into(),
            ..key(Proto::Tcp, 80)
        };
        let c = key(Proto::Udp, 53);
        assert!(key(Proto::Tcp, 80) < a && a < b && b < c);
    }

    #[test]
    fn service_ports_are_checked() {
        assert!(Service::new(key(Proto::Udp, 53), SchedKind::Rr).is_ok());
        assert!(Service::new(key(Proto::Icmp, 0), SchedKind::Rr).is_ok());
        let e = Service::new(key(Proto::Tcp, 0), SchedKind::Rr).unwrap_err();
        assert_eq!(
            e,
            SchedError::InvalidPort {
                proto: Proto::Tcp,
                port: 0
            }
        );
        assert_eq!(
            e.to_string(),
            "port 0 is not valid for tcp: tcp and udp services and dests need a port in 1..=65535"
        );
        let e = Service::new(key(Proto::Icmp, 8), SchedKind::Rr).unwrap_err();
        assert_eq!(
            e.to_string(),
            "port 8 is not valid for icmp: icmp services and dests have no port, use 0"
        );
    }

    #[test]
    fn accessors_and_set_sched() {
        let mut s = tcp80();
        assert_eq!(s.key(), key(Proto::Tcp, 80));
        assert_eq!(s.sched(), SchedKind::Wrr);
        s.set_sched(SchedKind::Rr);
        assert_eq!(s.sched(), SchedKind::Rr);
        assert!(s.dests().is_empty());
    }

    #[test]
    fn add_find_edit_remove_a_dest() {
        let mut s = tcp80();
        let d = dest(8080, 3, ForwardMode::Nat);
        s.add_dest(d).unwrap();
        s.add_dest(dest(80, 1, ForwardMode::Dr)).unwrap(); // modes may be mixed
        assert_eq!(s.dest(RIP, 8080), Some(&d));
        assert_eq!(s.dest(RIP, 9999), None);

        // Newest first, as IPVS lists them.
        assert_eq!(s.dests(), [dest(80, 1, ForwardMode::Dr), d]);

        let edited = dest(8080, 0, ForwardMode::FullNat);
        s.edit_dest(edited).unwrap();
        assert_eq!(s.dests()[1], edited); // keeps its place

        assert_eq!(s.remove_dest(RIP, 8080), Ok(edited));
        assert_eq!(s.dests(), [dest(80, 1, ForwardMode::Dr)]);
    }

    #[test]
    fn weight_above_max_is_refused() {
        let mut s = tcp80();
        s.add_dest(dest(80, MAX_WEIGHT, ForwardMode::Dr)).unwrap();
        let e = s
            .add_dest(dest(81, MAX_WEIGHT + 1, ForwardMode::Nat))
            .unwrap_err();
        assert_eq!(e, SchedError::WeightOutOfRange { weight: 65536 });
        assert_eq!(
            e.to_string(),
            "weight 65536 is out of range: a dest weight must be in 0..=65535"
        );
        let e = s.edit_dest(dest(80, 70000, ForwardMode::Dr)).unwrap_err();
        assert_eq!(e, SchedError::WeightOutOfRange { weight: 70000 });
        assert_eq!(s.dests(), [dest(80, MAX_WEIGHT, ForwardMode::Dr)]);
    }

    #[test]
    fn dr_and_tun_cannot_map_ports() {
        let mut s = tcp80();
        let e = s.add_dest(dest(8080, 1, ForwardMode::Dr)).unwrap_err();
        assert_eq!(
            e,
            SchedError::PortMapNotAllowed {
                mode: ForwardMode::Dr,
                dest_port: 8080,
                service_port: 80
            }
        );
        assert_eq!(
            e.to_string(),
            "dest port 8080 is not allowed in Route mode: Route cannot map ports \
             (service port is 80)"
        );
        let e = s.add_dest(dest(8080, 1, ForwardMode::Tun)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dest port 8080 is not allowed in Tunnel mode: Tunnel cannot map ports \
             (service port is 80)"
        );
        assert!(s.dests().is_empty());

        // Switching an existing NAT dest on another port to DR is refused too.
        s.add_dest(dest(8080, 1, ForwardMode::Nat)).unwrap();
        let e = s.edit_dest(dest(8080, 1, ForwardMode::Dr)).unwrap_err();
        assert!(matches!(e, SchedError::PortMapNotAllowed { .. }));
        assert_eq!(s.dests()[0].mode, ForwardMode::Nat);
    }

    #[test]
    fn dest_ports_are_checked() {
        let mut s = tcp80();
        let e = s.add_dest(dest(0, 1, ForwardMode::Nat)).unwrap_err();
        assert_eq!(
            e,
            SchedError::InvalidPort {
                proto: Proto::Tcp,
                port: 0
            }
        );
        let mut icmp = Service::new(key(Proto::Icmp, 0), SchedKind::Rr).unwrap();
        icmp.add_dest(dest(0, 1, ForwardMode::Dr)).unwrap();
        let e = icmp.add_dest(dest(7, 1, ForwardMode::Nat)).unwrap_err();
        assert_eq!(
            e,
            SchedError::InvalidPort {
                proto: Proto::Icmp,
                port: 7
            }
        );
    }

    #[test]
    fn duplicate_dest_is_refused() {
        let mut s = tcp80();
        s.add_dest(dest(8080, 1, ForwardMode::Nat)).unwrap();
        let e = s.add_dest(dest(8080, 5, ForwardMode::FullNat)).unwrap_err();
        assert_eq!(
            e,
            SchedError::DuplicateDest {
                addr: RIP,
                port: 8080
            }
        );
        assert_eq!(
            e.to_string(),
            "Destination already exists: 10.0.0.1:8080 (edit it instead of adding it again)"
        );
        assert_eq!(s.dests(), [dest(8080, 1, ForwardMode::Nat)]);
        // Same RIP, another port: a different dest.
        s.add_dest(dest(8081, 1, ForwardMode::Nat)).unwrap();
    }

    #[test]
    fn missing_dest_is_reported() {
        let mut s = tcp80();
        let e = s.edit_dest(dest(8080, 1, ForwardMode::Nat)).unwrap_err();
        assert_eq!(
            e,
            SchedError::DestNotFound {
                addr: RIP,
                port: 8080
            }
        );
        assert_eq!(
            e.to_string(),
            "No such destination: 10.0.0.1:8080 is not a dest of this service"
        );
        assert_eq!(s.remove_dest(RIP, 8080), Err(e));
    }

    #[test]
    fn table_add_get_remove() {
        let mut t = ServiceTable::new();
        assert!(t.is_empty());
        t.add(tcp80()).unwrap();
        t.add(Service::new(key(Proto::Udp, 53), SchedKind::Rr).unwrap())
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&key(Proto::Tcp, 80)), Some(&tcp80()));
        t.get_mut(&key(Proto::Tcp, 80))
            .unwrap()
            .add_dest(dest(80, 1, ForwardMode::Dr))
            .unwrap();
        assert_eq!(t.get(&key(Proto::Tcp, 80)).unwrap().dests().len(), 1);
        let removed = t.remove(&key(Proto::Udp, 53)).unwrap();
        assert_eq!(removed.key(), key(Proto::Udp, 53));
        assert_eq!(t.len(), 1);
        assert!(t.get(&key(Proto::Udp, 53)).is_none());
        assert!(t.get_mut(&key(Proto::Udp, 53)).is_none());
    }

    #[test]
    fn duplicate_service_is_refused() {
        let mut t = ServiceTable::new();
        t.add(tcp80()).unwrap();
        let mut other = Service::new(key(Proto::Tcp, 80), SchedKind::Rr).unwrap();
        other.add_dest(dest(80, 1, ForwardMode::Dr)).unwrap();
        let e = t.add(other).unwrap_err();
        assert_eq!(
            e,
            SchedError::DuplicateService {
                key: key(Proto::Tcp, 80)
            }
        );
        assert_eq!(
            e.to_string(),
            "Service already exists: tcp 192.0.2.1:80 (edit it instead of adding it again)"
        );
        assert_eq!(t.get(&key(Proto::Tcp, 80)), Some(&tcp80()));
    }

    #[test]
    fn missing_service_is_reported() {
        let mut t = ServiceTable::new();
        let e = t.remove(&key(Proto::Udp, 53)).unwrap_err();
        assert_eq!(
            e,
            SchedError::NoSuchService {
                key: key(Proto::Udp, 53)
            }
        );
        assert_eq!(
            e.to_string(),
            "No such service\nudp 192.0.2.1:53 is not configured"
        );
    }

    /// A service key from small numbers, so that random ones collide.
    fn small_key() -> impl Strategy<Value = ServiceKey> {
        (
            prop_oneof![Just(Proto::Tcp), Just(Proto::Udp), Just(Proto::Icmp)],
            0u8..3,
            1u16..4,
        )
            .prop_map(|(proto, host, port)| ServiceKey {
                proto,
                vip: Ipv4Addr::new(192, 0, 2, host).into(),
                port: if proto == Proto::Icmp { 0 } else { port },
            })
    }

    proptest! {
        /// The table behaves like a set of keys: add fails iff present, remove fails iff
        /// absent, and iter() is sorted and complete.
        #[test]
        fn table_matches_a_model(ops in prop::collection::vec((any::<bool>(), small_key()), 0..60)) {
            let mut t = ServiceTable::new();
            let mut model = std::collections::BTreeSet::new();
            for (add, k) in ops {
                if add {
                    let r = t.add(Service::new(k, SchedKind::Rr).unwrap());
                    if model.insert(k) {
                        prop_assert_eq!(r, Ok(()));
                    } else {
                        prop_assert_eq!(r, Err(SchedError::DuplicateService { key: k }));
                    }
                } else {
                    let r = t.remove(&k).map(|s| s.key());
                    if model.remove(&k) {
                        prop_assert_eq!(r, Ok(k));
                    } else {
                        prop_assert_eq!(r, Err(SchedError::NoSuchService { key: k }));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                let keys: Vec<_> = t.iter().map(Service::key).collect();
                let want: Vec<_> = model.iter().copied().collect();
                prop_assert_eq!(keys, want);
            }
        }

        /// A refused dest change leaves the service as it was.
        #[test]
        fn refused_dest_changes_change_nothing(
            changes in prop::collection::vec(
                (0u8..3, 0u8..4, 0u16..3, prop_oneof![Just(0u32), 1u32..10, Just(70000u32)],
                 prop_oneof![Just(ForwardMode::Nat), Just(ForwardMode::Dr),
                             Just(ForwardMode::Tun), Just(ForwardMode::FullNat)]),
                0..40),
        ) {
            let mut s = Service::new(key(Proto::Tcp, 1), SchedKind::Wrr).unwrap();
            for (op, host, port, weight, mode) in changes {
                let d = Dest { addr: Ipv4Addr::new(10, 0, 0, host).into(), port, weight, mode };
                let before = s.clone();
                let r = match op {
                    0 => s.add_dest(d),
                    1 => s.edit_dest(d),
                    _ => s.remove_dest(d.addr, d.port).map(|_| ()),
                };
                if r.is_err() {
                    prop_assert_eq!(&s, &before);
                }
                for x in s.dests() {
                    prop_assert!(x.weight <= MAX_WEIGHT && x.port != 0);
                    prop_assert!(x.mode.maps_ports() || x.port == 1);
                }
            }
        }
    }
}
