//! The authoritative model of the director, and how its changes reach the workers.
//!
//! [`Model`] owns the [`DirectorConfig`] and the [`SnapshotCell`] the workers read. Every
//! [`Change`] goes through [`Model::apply`], which works on a copy, builds the [`Snapshot`]
//! from it (which validates the whole configuration), and only then commits the copy and
//! publishes the snapshot: a refused change leaves both the model and what the workers see
//! exactly as they were. Workers pick up a new snapshot at their next burst; sessions keep their
//! dest across any change because a session carries everything it needs to forward (see
//! `dataplane::worker::Forward`).

use crate::change::Change;
use arc_swap::ArcSwap;
use dataplane::snapshot::{ConfigError, DestSlots, DirectorConfig, Snapshot, SnapshotCell};
use sched::{Dest, SchedError, ServiceKey};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The dests a health check has down, by service, RIP and port.
pub(crate) type DownSet = BTreeSet<(ServiceKey, IpAddr, u16)>;

/// The services' sorry servers (keepalived's `sorry_server`), each published as a dest of its
/// service while none of the service's own dests is up.
pub type SorryServers = BTreeMap<ServiceKey, Dest>;

/// Why a change was refused. Nothing of a refused change is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The service or dest change itself is invalid (ipvsadm's errors).
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// The change is valid alone but the director could not run it (no LIP, no route...).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A feature this rvsd does not have.
    #[error("{0}")]
    Unsupported(String),
}

/// The director model and the snapshot cell it publishes to.
#[derive(Debug)]
pub struct Model {
    config: DirectorConfig,
    slots: DestSlots,
    /// Dests a health check found down: published with weight 0 (their sessions drain), while
    /// `config` keeps the weight the operator gave, restored when they come back.
    down: DownSet,
    /// Sorry servers: not in `config` (they are not the operator's dests), added to what is
    /// published while their service has no dest up.
    sorry: SorryServers,
    cell: Arc<SnapshotCell>,
    generation: u64,
}

impl Model {
    /// A model starting from `config`, with the cell its workers will read.
    ///
    /// # Errors
    /// [`ControlError::Config`] if `config` is not valid.
    pub fn new(config: DirectorConfig) -> Result<Model, ControlError> {
        let mut slots = DestSlots::default();
        let snap = Snapshot::build_with_slots(&config, &mut slots)?;
        Ok(Model {
            config,
            slots,
            down: Default::default(),
            sorry: Default::default(),
            cell: Arc::new(ArcSwap::from_pointee(snap)),
            generation: 0,
        })
    }

    /// The cell to hand to workers.
    pub fn cell(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.cell)
    }

    /// The current configuration.
    pub fn config(&self) -> &DirectorConfig {
        &self.config
    }

    /// The counter slots of the dests.
    pub fn slots(&self) -> &DestSlots {
        &self.slots
    }

    /// How many changes have been published.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies `change`: to a copy of the configuration (and of the set of dests a health
    /// check has down), then builds the snapshot from the copy, which validates the whole
    /// configuration; commits the copy and publishes the snapshot only if both succeed. A
    /// health verdict that changes nothing publishes nothing.
    ///
    /// # Errors
    /// The change's own error (ipvsadm's: service or dest missing or duplicate, invalid
    /// weight...), or the configuration's (FullNAT without LIPs, DR dest off-link, no route);
    /// nothing is changed then.
    pub fn apply(&mut self, change: Change) -> Result<(), ControlError> {
        let mut config = self.config.clone();
        let mut down = self.down.clone();
        let mut sorry = self.sorry.clone();
        if !change.edit(&mut config, &mut down, &mut sorry)? {
            return Ok(());
        }
        let mut slots = self.slots.clone();
        let snap = Snapshot::build_with_slots(&effective(&config, &down, &sorry), &mut slots)?;
        self.config = config;
        self.down = down;
        self.sorry = sorry;
        self.slots = slots;
        self.cell.store(Arc::new(snap));
        self.generation += 1;
        Ok(())
    }

    /// True if a health check has the dest down.
    pub fn is_down(&self, key: ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.down.contains(&(key, addr, port))
    }

    /// The sorry server of service `key` if it is in service now (none of the service's
    /// dests is up), as published.
    pub fn sorry_server(&self, key: ServiceKey) -> Option<Dest> {
        let d = *self.sorry.get(&key)?;
        sorry_active(&self.config, &self.down, key, &d).then_some(d)
    }

    /// Every dest the workers have for a service: the configured ones, then the sorry server
    /// while it is in service.
    pub fn published_dests(&self, key: ServiceKey) -> Vec<Dest> {
        let mut dests: Vec<Dest> = self
            .config
            .services
            .get(&key)
            .map(|s| s.dests().to_vec())
            .unwrap_or_default();
        dests.extend(self.sorry_server(key));
        dests
    }

    /// The weight the workers use for a dest (0 while it is down).
    pub fn effective_weight(&self, key: ServiceKey, d: &Dest) -> u32 {
        if self.is_down(key, d.addr, d.port) {
            0
        } else {
            d.weight
        }
    }
}

/// True if the sorry server `d` of service `key` stands in: the service is there and none of
/// its dests is up (a health check has them all down, or it has none). A dest at the sorry
/// server's own address and port (the operator added it) leaves it out.
fn sorry_active(config: &DirectorConfig, down: &DownSet, key: ServiceKey, d: &Dest) -> bool {
    config.services.get(&key).is_some_and(|s| {
        s.dest(d.addr, d.port).is_none()
            && s.dests()
                .iter()
                .all(|x| down.contains(&(key, x.addr, x.port)))
    })
}

/// `config` as published: dests that are `down` get weight 0, and the services with no dest
/// up get their sorry server.
fn effective(config: &DirectorConfig, down: &DownSet, sorry: &SorryServers) -> DirectorConfig {
    let mut c = config.clone();
    for (key, d) in sorry {
        if sorry_active(config, down, *key, d) {
            if let Some(s) = c.services.get_mut(key) {
                // Not one of its dests (sorry_active): only the family can refuse it, which
                // the configuration checked.
                let _ = s.add_dest(*d);
            }
        }
    }
    for (key, addr, port) in down {
        if let Some(s) = c.services.get_mut(key) {
            if let Some(d) = s.dest(*addr, *port).copied() {
                // Weight 0 is always valid: the edit cannot fail.
                let _ = s.edit_dest(Dest { weight: 0, ..d });
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::Proto;
    use conntrack::SessionState;
    use dataplane::snapshot::{Cidr, InterfaceConfig};
    use sched::{ForwardMode, SchedKind, Service};
    use std::net::Ipv4Addr;

    fn base() -> DirectorConfig {
        DirectorConfig {
            interfaces: vec![InterfaceConfig {
                addrs6: Vec::new(),
                name: "lan0".into(),
                port: 0,
                vlan: None,
                addrs: vec![Cidr::new(Ipv4Addr::new(10, 1, 0, 1), 24)],
                mtu: 1500,
            }],
            ..DirectorConfig::default()
        }
    }

    fn key() -> ServiceKey {
        ServiceKey {
            proto: Proto::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 100).into(),
            port: 80,
        }
    }

    fn add_service(sched: SchedKind) -> Change {
        Change::AddService(Service::new(key(), sched).unwrap())
    }

    fn add_dest(dest: Dest) -> Change {
        Change::AddDest { key: key(), dest }
    }

    /// Applies a health verdict; true if it changed anything (it published a snapshot then).
    fn set_health(
        m: &mut Model,
        key: ServiceKey,
        addr: IpAddr,
        port: u16,
        up: bool,
    ) -> Result<bool, ControlError> {
        let before = m.generation();
        m.apply(Change::Health {
            key,
            addr,
            port,
            up,
        })?;
        Ok(m.generation() != before)
    }

    fn dest(last: u8, mode: ForwardMode) -> Dest {
        Dest {
            addr: Ipv4Addr::new(10, 1, 0, last).into(),
            port: 80,
            weight: 1,
            mode,
        }
    }

    #[test]
    fn changes_are_published() {
        let mut m = Model::new(base()).unwrap();
        let cell = m.cell();
        m.apply(add_service(SchedKind::Wrr)).unwrap();
        m.apply(add_dest(dest(11, ForwardMode::Dr))).unwrap();
        let snap = cell.load();
        assert_eq!(snap.services().len(), 1);
        assert_eq!(snap.services()[0].dests().len(), 1);
        assert_eq!(m.generation(), 2);
    }

    #[test]
    fn refused_changes_change_nothing() {
        let mut m = Model::new(base()).unwrap();
        let cell = m.cell();
        m.apply(add_service(SchedKind::Rr)).unwrap();
        let before = Arc::as_ptr(&cell.load_full());
        let cfg_before = format!("{:?}", m.config());

        // FullNAT without LIPs: valid for the service model, refused by the director.
        let e = m
            .apply(add_dest(dest(11, ForwardMode::FullNat)))
            .unwrap_err();
        assert!(
            matches!(
                e,
                ControlError::Config(ConfigError::FullNatWithoutLips { .. })
            ),
            "{e}"
        );
        // DR dest off-link.
        let mut off = dest(11, ForwardMode::Dr);
        off.addr = Ipv4Addr::new(10, 9, 0, 1).into();
        let e = m.apply(add_dest(off)).unwrap_err();
        assert!(
            matches!(e, ControlError::Config(ConfigError::DestNotOnLink { .. })),
            "{e}"
        );
        // DR with a mapped port.
        let mut mapped = dest(11, ForwardMode::Dr);
        mapped.port = 8080;
        let e = m.apply(add_dest(mapped)).unwrap_err();
        assert!(e.to_string().contains("cannot map ports"), "{e}");
        // Duplicate service, unknown service.
        assert!(m.apply(add_service(SchedKind::Rr)).is_err());
        let mut other = key();
        other.port = 81;
        let e = m.apply(Change::DeleteService { key: other }).unwrap_err();
        assert!(e.to_string().starts_with("No such service\n"), "{e}");

        assert_eq!(Arc::as_ptr(&cell.load_full()), before, "nothing published");
        assert_eq!(format!("{:?}", m.config()), cfg_before, "model unchanged");
        assert_eq!(m.generation(), 1);
    }

    #[test]
    fn held_addresses_make_managed_ones_owned_and_outlive_a_reload() {
        let lip = Ipv4Addr::new(10, 1, 0, 201);
        let mut cfg = base();
        cfg.lips = vec![lip];
        cfg.managed = vec![lip];
        let mut m = Model::new(cfg.clone()).unwrap();
        let cell = m.cell();
        assert!(cell.load().local(lip).unwrap().standby);
        let held: std::collections::BTreeMap<_, _> = [(lip, 0)].into_iter().collect();
        m.apply(Change::Held(held.clone())).unwrap();
        assert_eq!(m.generation(), 1);
        assert!(!cell.load().local(lip).unwrap().standby);
        assert!(cell.load().managed()[0].owned);
        m.apply(Change::Held(held)).unwrap();
        assert_eq!(m.generation(), 1, "the same view publishes nothing");
        // A reload knows nothing of the kernel's addresses: ownership stays.
        m.apply(Change::Replace(Box::new(cfg))).unwrap();
        assert!(cell.load().managed()[0].owned);
        let state = crate::state::ControlState::new(m, Vec::new(), Vec::new());
        let text = state.metrics();
        assert!(
            text.contains(
                "# TYPE rvs_address_owned gauge\nrvs_address_owned{address=\"10.1.0.201\",role=\"lip\"} 1\n"
            ),
            "{text}"
        );
        let mut state = state;
        assert_eq!(
            state.handle(proto::Request::Addresses),
            proto::Response::Addresses {
                addresses: vec![proto::AddressView {
                    addr: lip,
                    role: "lip".into(),
                    owned: true,
                    interface: Some("lan0".into()),
                }]
            }
        );
        // Through the follower's sink, as rvsd does it: released.
        let state = std::sync::Mutex::new(state);
        crate::ownership::HeldSink::held(&state, Default::default());
        let text = crate::state::lock(&state).metrics();
        assert!(
            text.contains("rvs_address_owned{address=\"10.1.0.201\",role=\"lip\"} 0\n"),
            "{text}"
        );
        let plain = crate::state::ControlState::new(Model::new(base()).unwrap(), vec![], vec![]);
        assert!(
            !plain.metrics().contains("rvs_address_owned"),
            "no managed addresses"
        );
    }

    #[test]
    fn set_timeouts_keeps_zero_fields() {
        let mut m = Model::new(base()).unwrap();
        m.apply(Change::SetTimeouts {
            tcp: 0,
            tcpfin: 30_000,
            udp: 0,
        })
        .unwrap();
        let t = *m.cell().load().timeouts();
        assert_eq!(
            t.get(SessionState::Tcp(conntrack::TcpState::FinWait)),
            30_000
        );
        assert_eq!(
            t.get(SessionState::Tcp(conntrack::TcpState::Established)),
            900_000
        );
        assert_eq!(t.get(SessionState::Udp), 300_000);
    }

    #[test]
    fn health_quiesces_without_losing_the_configured_weight() {
        let mut m = Model::new(base()).unwrap();
        let cell = m.cell();
        m.apply(add_service(SchedKind::Wrr)).unwrap();
        let mut d = dest(11, ForwardMode::Dr);
        d.weight = 5;
        m.apply(add_dest(d)).unwrap();
        assert!(set_health(&mut m, key(), d.addr, d.port, false).unwrap());
        assert!(
            !set_health(&mut m, key(), d.addr, d.port, false).unwrap(),
            "no change twice"
        );
        assert_eq!(
            cell.load().services()[0].dests()[0].weight,
            0,
            "published weight 0"
        );
        assert_eq!(
            m.config().services.get(&key()).unwrap().dests()[0].weight,
            5,
            "configured kept"
        );
        // An operator edit while down keeps it down and remembers the new weight.
        m.apply(Change::EditDest {
            key: key(),
            dest: Dest { weight: 7, ..d },
        })
        .unwrap();
        assert_eq!(cell.load().services()[0].dests()[0].weight, 0);
        assert!(set_health(&mut m, key(), d.addr, d.port, true).unwrap());
        assert_eq!(cell.load().services()[0].dests()[0].weight, 7);
    }

    /// The dests the workers have for the service: (last byte of the RIP, port, weight).
    fn published(cell: &SnapshotCell) -> Vec<(u8, u16, u32)> {
        cell.load().services()[0]
            .dests()
            .iter()
            .map(|d| match d.addr {
                IpAddr::V4(a) => (a.octets()[3], d.port, d.weight),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn the_sorry_server_stands_in_while_no_dest_is_up() {
        let mut m = Model::new(base()).unwrap();
        let cell = m.cell();
        m.apply(add_service(SchedKind::Wrr)).unwrap();
        let (a, b) = (
            dest(11, ForwardMode::Dr),
            Dest {
                weight: 3,
                ..dest(12, ForwardMode::Dr)
            },
        );
        m.apply(add_dest(a)).unwrap();
        m.apply(add_dest(b)).unwrap();
        let sorry = dest(99, ForwardMode::Dr);
        m.apply(Change::SetSorry([(key(), sorry)].into_iter().collect()))
            .unwrap();
        assert_eq!(
            published(&cell),
            [(12, 80, 3), (11, 80, 1)],
            "dests up: not in"
        );
        assert_eq!(m.sorry_server(key()), None);
        assert!(set_health(&mut m, key(), a.addr, 80, false).unwrap());
        assert_eq!(
            published(&cell),
            [(12, 80, 3), (11, 80, 0)],
            "one dest up: not in"
        );
        assert!(set_health(&mut m, key(), b.addr, 80, false).unwrap());
        assert_eq!(
            published(&cell),
            [(99, 80, 1), (12, 80, 0), (11, 80, 0)],
            "none up: in, weight 1"
        );
        assert_eq!(m.sorry_server(key()), Some(sorry));
        assert_eq!(m.published_dests(key()).len(), 3);
        assert_eq!(
            m.config().services.get(&key()).unwrap().dests().len(),
            2,
            "never one of the configured dests"
        );
        // A reload of the same configuration keeps the verdicts, hence the sorry server.
        let cfg = m.config().clone();
        m.apply(Change::Batch(vec![
            Change::Replace(Box::new(cfg.clone())),
            Change::SetSorry([(key(), sorry)].into_iter().collect()),
        ]))
        .unwrap();
        assert_eq!(published(&cell), [(99, 80, 1), (12, 80, 0), (11, 80, 0)]);
        // One dest back: out (its sessions drain as a removed dest's).
        assert!(set_health(&mut m, key(), b.addr, 80, true).unwrap());
        assert_eq!(published(&cell), [(12, 80, 3), (11, 80, 0)]);
        assert_eq!(m.sorry_server(key()), None);
        // A dest the operator adds is up: the sorry server stays out even with the others down.
        assert!(set_health(&mut m, key(), b.addr, 80, false).unwrap());
        assert_eq!(published(&cell).len(), 3);
        m.apply(add_dest(dest(13, ForwardMode::Dr))).unwrap();
        assert_eq!(published(&cell), [(13, 80, 1), (12, 80, 0), (11, 80, 0)]);
        // A reload without it, and a deleted service, leave no sorry server.
        m.apply(Change::DeleteDest {
            key: key(),
            addr: dest(13, ForwardMode::Dr).addr,
            port: 80,
        })
        .unwrap();
        assert_eq!(published(&cell).len(), 3, "back in");
        m.apply(Change::Batch(vec![
            Change::Replace(Box::new(cfg)),
            Change::SetSorry(SorryServers::new()),
        ]))
        .unwrap();
        assert_eq!(published(&cell), [(12, 80, 0), (11, 80, 0)]);
        m.apply(Change::SetSorry([(key(), sorry)].into_iter().collect()))
            .unwrap();
        m.apply(Change::DeleteService { key: key() }).unwrap();
        m.apply(add_service(SchedKind::Wrr)).unwrap();
        assert_eq!(m.sorry_server(key()), None, "deleted with its service");
    }

    #[test]
    fn the_control_state_lists_the_sorry_server_while_it_stands_in() {
        let mut m = Model::new(base()).unwrap();
        m.apply(add_service(SchedKind::Wrr)).unwrap();
        let a = dest(11, ForwardMode::Dr);
        m.apply(add_dest(a)).unwrap();
        m.apply(Change::SetSorry(
            [(key(), dest(99, ForwardMode::Dr))].into_iter().collect(),
        ))
        .unwrap();
        let state = std::sync::Mutex::new(crate::state::ControlState::new(m, vec![], vec![]));
        let listed =
            |st: &std::sync::Mutex<crate::state::ControlState>| match crate::state::lock(st)
                .handle(proto::Request::List { service: None })
            {
                proto::Response::Services { services } => services[0]
                    .dests
                    .iter()
                    .map(|d| (d.addr.to_string(), d.weight, d.forward.clone()))
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            };
        assert_eq!(
            listed(&state),
            [("10.1.0.11".to_string(), 1, "Route".to_string())]
        );
        // Through the checks' sink, as rvsd does it.
        crate::health::HealthSink::dest_health(&state, key(), a.addr, 80, false);
        assert_eq!(
            listed(&state),
            [
                ("10.1.0.11".to_string(), 0, "Route".to_string()),
                ("10.1.0.99".to_string(), 1, "Route".to_string())
            ]
        );
        let text = crate::state::lock(&state).metrics();
        assert!(
            text.contains("rvs_dest_connections_total{local_address=\"192.0.2.100\",local_port=\"80\",remote_address=\"10.1.0.99\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 0"),
            "{text}"
        );
        crate::health::HealthSink::dest_health(&state, key(), a.addr, 80, true);
        assert_eq!(
            listed(&state),
            [("10.1.0.11".to_string(), 1, "Route".to_string())]
        );
    }
}
