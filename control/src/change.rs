//! Every way the director's configuration changes, as one [`Change`].
//!
//! rvsadm's requests (converted from the protocol's [`Request`] with [`Change::try_from`]), a
//! reloaded configuration file (SIGHUP or `rvsadm --reload`) and a health check's verdict all
//! become a `Change`, and [`Model::apply`](crate::Model::apply) is the one place that applies
//! them: to a copy, validated as a whole, then published — or refused with nothing changed.

use crate::convert::service_key;
use crate::model::{ControlError, DownSet, SorryServers};
use conntrack::{SessionState, TcpState};
use dataplane::snapshot::DirectorConfig;
use proto::{Request, SvcKey};
use sched::{
    Dest, ForwardMode, ProxyProtocol, SchedError, SchedKind, Service, ServiceKey, ServiceTable,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// One change to the director model. A [`Change::Batch`] is applied whole or not at all.
#[derive(Clone, Debug)]
pub enum Change {
    /// `ipvsadm -A`: adds a service (scheduler, persistence and SYN proxy set; no dests yet).
    AddService(Service),
    /// `ipvsadm -E`: sets a service's scheduler, persistence and SYN proxy.
    EditService {
        /// The service.
        key: ServiceKey,
        /// Its scheduler.
        sched: SchedKind,
        /// Its persistence timeout in seconds (None: not persistent).
        persistence: Option<u32>,
        /// Its SYN proxy.
        synproxy: bool,
        /// Its PROXY protocol header.
        proxy_protocol: Option<ProxyProtocol>,
        /// Its TOA.
        toa: bool,
    },
    /// `ipvsadm -D`: deletes a service. Its sessions keep forwarding until they expire.
    DeleteService {
        /// The service.
        key: ServiceKey,
    },
    /// `ipvsadm -a`: adds a dest to a service.
    AddDest {
        /// The service.
        key: ServiceKey,
        /// The dest.
        dest: Dest,
    },
    /// `ipvsadm -e`: changes a dest's weight or mode (found by address and port). Weight 0
    /// drains it.
    EditDest {
        /// The service.
        key: ServiceKey,
        /// The dest as it is to be.
        dest: Dest,
    },
    /// `ipvsadm -d`: removes a dest. Its sessions keep forwarding until they expire.
    DeleteDest {
        /// The service.
        key: ServiceKey,
        /// The dest's RIP.
        addr: IpAddr,
        /// The dest's port.
        port: u16,
    },
    /// `ipvsadm -C`: removes every service.
    Clear,
    /// `ipvsadm --set TCP TCPFIN UDP`, in milliseconds; 0 keeps the current value.
    SetTimeouts {
        /// TCP ESTABLISHED.
        tcp: u64,
        /// TCP FIN_WAIT.
        tcpfin: u64,
        /// UDP.
        udp: u64,
    },
    /// A reloaded configuration file: services, addresses, routes, LIPs and timeouts are
    /// replaced. Dests a health check has down stay down until they rise.
    Replace(Box<DirectorConfig>),
    /// The addresses the exception TAPs hold now, each with its port (the address
    /// follower's view, [`crate::ownership`]): the managed ones among them are owned.
    Held(BTreeMap<Ipv4Addr, u16>),
    /// A health check's verdict on a dest: down publishes it with weight 0 (no new sessions;
    /// its sessions drain) while the model keeps its configured weight; up restores it.
    Health {
        /// The service.
        key: ServiceKey,
        /// The dest's RIP.
        addr: IpAddr,
        /// The dest's port.
        port: u16,
        /// Whether the dest passes its check.
        up: bool,
    },
    /// The services' sorry servers (a configuration's, at start or reload): each published as
    /// a dest of its service (weight 1) while none of the service's dests is up.
    SetSorry(SorryServers),
    /// Several changes in order, applied all together or not at all (`rvsadm -R`).
    Batch(Vec<Change>),
}

impl Change {
    /// The services an rvsadm change names (every service for `-C` is not listed here: the
    /// caller knows them); none for timeouts and the daemon's own changes.
    pub fn services(&self) -> Vec<ServiceKey> {
        match self {
            Change::AddService(s) => vec![s.key()],
            Change::EditService { key, .. }
            | Change::DeleteService { key }
            | Change::AddDest { key, .. }
            | Change::EditDest { key, .. }
            | Change::DeleteDest { key, .. } => vec![*key],
            Change::Batch(changes) => changes.iter().flat_map(Change::services).collect(),
            Change::Clear
            | Change::SetTimeouts { .. }
            | Change::Replace(_)
            | Change::Held(_)
            | Change::Health { .. }
            | Change::SetSorry(_) => Vec::new(),
        }
    }

    /// Applies the change to `config`, `down` and `sorry` (copies, which the model commits only
    /// if the result is valid as a whole). Returns whether there is anything to publish: a
    /// health verdict that changes nothing publishes nothing; every other change publishes.
    /// A service deleted (or cleared) loses its sorry server.
    pub(crate) fn edit(
        self,
        config: &mut DirectorConfig,
        down: &mut DownSet,
        sorry: &mut SorryServers,
    ) -> Result<bool, ControlError> {
        match self {
            Change::AddService(s) => config.services.add(s)?,
            Change::EditService {
                key,
                sched,
                persistence,
                synproxy,
                proxy_protocol,
                toa,
            } => {
                // ipvsadm's words for `-E` on a missing service.
                let s = config
                    .services
                    .get_mut(&key)
                    .ok_or(SchedError::NoSuchService { key })?;
                s.set_persistence(persistence)?;
                s.set_synproxy(synproxy)?;
                // Off first, so that one may replace the other in one edit.
                s.set_toa(false)?;
                s.set_proxy_protocol(proxy_protocol)?;
                s.set_toa(toa)?;
                s.set_sched(sched);
            }
            Change::DeleteService { key } => {
                config.services.remove(&key)?;
                sorry.remove(&key);
            }
            Change::AddDest { key, dest } => service_mut(config, key)?.add_dest(dest)?,
            Change::EditDest { key, dest } => service_mut(config, key)?.edit_dest(dest)?,
            Change::DeleteDest { key, addr, port } => {
                service_mut(config, key)?.remove_dest(addr, port)?;
            }
            Change::Clear => {
                config.services = ServiceTable::new();
                sorry.clear();
            }
            Change::SetTimeouts { tcp, tcpfin, udp } => {
                for (state, ms) in [
                    (SessionState::Tcp(TcpState::Established), tcp),
                    (SessionState::Tcp(TcpState::FinWait), tcpfin),
                    (SessionState::Udp, udp),
                ] {
                    if ms != 0 {
                        config.timeouts.set(state, ms);
                    }
                }
            }
            Change::Replace(new) => {
                // A file says nothing of what the kernel holds: the follower's view stays.
                let held = core::mem::take(&mut config.held);
                *config = *new;
                config.held = held;
            }
            Change::Held(held) => {
                if config.held == held {
                    return Ok(false);
                }
                config.held = held;
            }
            Change::Health {
                key,
                addr,
                port,
                up,
            } => {
                let id = (key, addr, port);
                let changed = if up {
                    down.remove(&id)
                } else {
                    down.insert(id)
                };
                return Ok(changed);
            }
            Change::SetSorry(new) => *sorry = new,
            Change::Batch(changes) => {
                for c in changes {
                    c.edit(config, down, sorry)?;
                }
            }
        }
        Ok(true)
    }
}

/// An rvsadm request as a change. Zeroing counters (`-Z`) changes no configuration: inside a
/// batch it is left out here (the control state zeroes once the batch has applied).
///
/// # Errors
/// An unknown scheduler or forwarding-mode name, an invalid service (port, persistence, SYN
/// proxy), or [`ControlError::Unsupported`] for a request that is not a change (a listing, a
/// A request's `proxy_protocol` (`v1`, `v2`; None or `disable`: off).
fn proxy_protocol_of(name: Option<&str>) -> Result<Option<ProxyProtocol>, ControlError> {
    name.map_or(Ok(None), |n| {
        ProxyProtocol::parse(n).map_err(ControlError::from)
    })
}

/// reload, a `-Z` alone).
impl TryFrom<Request> for Change {
    type Error = ControlError;

    fn try_from(req: Request) -> Result<Change, ControlError> {
        let sched_of = |name: &str| SchedKind::from_str(name).map_err(ControlError::from);
        Ok(match req {
            Request::AddService {
                service,
                scheduler,
                persistence,
                synproxy,
                proxy_protocol,
                toa,
            } => {
                let mut s = Service::new(service_key(service), sched_of(&scheduler)?)?;
                s.set_persistence(persistence)?;
                s.set_synproxy(synproxy)?;
                s.set_proxy_protocol(proxy_protocol_of(proxy_protocol.as_deref())?)?;
                s.set_toa(toa)?;
                Change::AddService(s)
            }
            Request::EditService {
                service,
                scheduler,
                persistence,
                synproxy,
                proxy_protocol,
                toa,
            } => Change::EditService {
                key: service_key(service),
                sched: sched_of(&scheduler)?,
                persistence,
                synproxy,
                proxy_protocol: proxy_protocol_of(proxy_protocol.as_deref())?,
                toa,
            },
            Request::DeleteService { service } => Change::DeleteService {
                key: service_key(service),
            },
            Request::AddDest { service, dest } => Change::AddDest {
                key: service_key(service),
                dest: dest_of(&dest)?,
            },
            Request::EditDest { service, dest } => Change::EditDest {
                key: service_key(service),
                dest: dest_of(&dest)?,
            },
            Request::DeleteDest {
                service,
                addr,
                port,
            } => Change::DeleteDest {
                key: service_key(service),
                addr,
                port,
            },
            Request::Clear => Change::Clear,
            Request::SetTimeouts { tcp, tcpfin, udp } => Change::SetTimeouts {
                tcp: u64::from(tcp) * 1000,
                tcpfin: u64::from(tcpfin) * 1000,
                udp: u64::from(udp) * 1000,
            },
            Request::Batch { requests } => Change::Batch(
                requests
                    .into_iter()
                    .filter(|r| !matches!(r, Request::Zero { .. }))
                    .map(Change::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(ControlError::Unsupported(format!(
                    "{} cannot be part of a change",
                    serde_json::to_value(&other)
                        .ok()
                        .and_then(|v| v.get("op").and_then(|o| o.as_str().map(str::to_string)))
                        .unwrap_or_else(|| "this request".into())
                )))
            }
        })
    }
}

/// The services whose counters a batch zeroes once it has applied (its `-Z` lines; None for
/// all services).
pub fn zeroed_by(req: &Request) -> Vec<Option<SvcKey>> {
    match req {
        Request::Batch { requests } => requests
            .iter()
            .filter_map(|r| match r {
                Request::Zero { service } => Some(*service),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A dest as the protocol gives it.
fn dest_of(d: &proto::DestSpec) -> Result<Dest, ControlError> {
    Ok(Dest {
        addr: d.addr,
        port: d.port,
        weight: d.weight,
        mode: ForwardMode::from_str(&d.mode)?,
    })
}

fn service_mut(c: &mut DirectorConfig, key: ServiceKey) -> Result<&mut Service, SchedError> {
    c.services
        .get_mut(&key)
        .ok_or(SchedError::ServiceNotFound { key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{DestSpec, ProtoName};

    fn svc() -> SvcKey {
        SvcKey {
            proto: ProtoName::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 100).into(),
            port: 80,
        }
    }

    fn add(scheduler: &str) -> Request {
        Request::AddService {
            service: svc(),
            scheduler: scheduler.into(),
            persistence: Some(60),
            synproxy: true,
            proxy_protocol: None,
            toa: false,
        }
    }

    #[test]
    fn a_request_becomes_the_change_it_names() {
        let Ok(Change::AddService(s)) = Change::try_from(add("wlc")) else {
            panic!("not an added service");
        };
        assert_eq!(
            (s.key(), s.sched(), s.persistence(), s.synproxy()),
            (service_key(svc()), SchedKind::Wlc, Some(60), true)
        );
        let Ok(Change::SetTimeouts { tcp, tcpfin, udp }) = Change::try_from(Request::SetTimeouts {
            tcp: 600,
            tcpfin: 0,
            udp: 30,
        }) else {
            panic!("not timeouts");
        };
        assert_eq!((tcp, tcpfin, udp), (600_000, 0, 30_000), "seconds to ms");
    }

    #[test]
    fn a_batch_leaves_its_zeroing_to_the_state() {
        let batch = Request::Batch {
            requests: vec![
                Request::Clear,
                Request::Zero { service: None },
                add("rr"),
                Request::Zero {
                    service: Some(svc()),
                },
            ],
        };
        assert_eq!(zeroed_by(&batch), vec![None, Some(svc())]);
        let Ok(Change::Batch(changes)) = Change::try_from(batch) else {
            panic!("not a batch");
        };
        assert!(
            matches!(changes.as_slice(), [Change::Clear, Change::AddService(_)]),
            "{changes:?}"
        );
        assert!(zeroed_by(&Request::Zero { service: None }).is_empty());
    }

    #[test]
    fn requests_that_change_nothing_or_name_nothing_are_refused() {
        let e = Change::try_from(add("fastest")).unwrap_err();
        assert_eq!(e, SchedError::UnknownScheduler("fastest".into()).into());
        let e = Change::try_from(Request::AddDest {
            service: svc(),
            dest: DestSpec {
                addr: Ipv4Addr::new(10, 1, 0, 11).into(),
                port: 80,
                weight: 1,
                mode: "snat".into(),
            },
        })
        .unwrap_err();
        assert_eq!(e, SchedError::UnknownForwardMode("snat".into()).into());
        let e = Change::try_from(Request::Batch {
            requests: vec![Request::Clear, Request::List { service: None }],
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "list cannot be part of a change");
        let e = Change::try_from(Request::Reload {
            path: "/etc/rvs/rvsd.toml".into(),
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "reload cannot be part of a change");
    }
}
