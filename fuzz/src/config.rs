//! The `config` target: bytes as UTF-8 text through `RvsConfig::parse` (what `rvsd --config`
//! and `--check-config` run), then what rvsd builds from a configuration that parses.
//!
//! Invariants:
//!
//! - No panic in parsing, nor in formatting the error (`locate` computes a line and column
//!   from byte offsets in arbitrary text).
//! - A configuration that parses builds: `Model::new` accepts its director (the parser ran
//!   `Snapshot::build` already, so a refusal here would be a disagreement between the two).
//! - Building what rvsd builds at start returns `Ok` or an error, never panics: each
//!   worker's LIP-port slice (`LipPool::worker_range`), the redirect rings, and worker 0 and
//!   the last worker on in-memory ports with rvsd's port roles (data ports, then one
//!   exception port per `exception`) and the static neighbours, which then takes one packet
//!   to every service. Sizes the file sets are capped for the harness (table and template
//!   capacity 4096, redirect depth 64: the file may ask for gigabytes, which rvsd would
//!   allocate at start; that is a resource question, not a parser bug).
//! - A control state over the model lists it, renders metrics, and reloads it.

use control::config::RvsConfig;
use control::model::Model;
use control::state::ControlState;
use dataplane::lip::LipPool;
use dataplane::mem::{MemBuf, MemDevice, MemPool};
use dataplane::redirect::RedirectRings;
use dataplane::wire::EthernetAddress;
use dataplane::worker::{PortRole, Worker, WorkerConfig};
use proto::Request;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use testkit::{Frame, Frame6, CIP, SYN};

/// Runs one fuzz input (see the module doc). Panics on any broken invariant.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match RvsConfig::parse(text) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let model = match Model::new(cfg.director.clone()) {
        Ok(m) => m,
        Err(e) => panic!("parsed, but the model refuses it: {e}"),
    };
    let workers = cfg.daemon.workers;
    for w in 0..workers {
        let _ = LipPool::worker_range(cfg.director.lport_range.clone(), workers, w);
    }
    let rings: Arc<RedirectRings<MemBuf>> = Arc::new(RedirectRings::new(
        workers as usize,
        cfg.daemon.redirect_depth.min(64),
    ));
    // rvsd's port list: data ports in order, then one TAP per port with an exception path.
    let mut roles: Vec<PortRole> = cfg
        .ports
        .iter()
        .map(|_| PortRole::Data { exception: None })
        .collect();
    for (i, p) in cfg.ports.iter().enumerate() {
        if p.exception.is_some() {
            roles[i] = PortRole::Data {
                exception: Some(roles.len() as u16),
            };
            roles.push(PortRole::Exception { data: i as u16 });
        }
    }
    let pool = MemPool::new(64);
    let mac = |i: usize| {
        cfg.ports
            .get(i)
            .and_then(|p| p.mac)
            .unwrap_or([0x02, 0, 0, 0, (i >> 8) as u8, i as u8])
    };
    let ids: Vec<u16> = if workers > 1 {
        vec![0, workers - 1]
    } else {
        vec![0]
    };
    for id in ids {
        let ports = (0..roles.len())
            .map(|i| MemDevice::new(EthernetAddress(mac(i)), pool.clone(), 8))
            .collect();
        let wcfg = WorkerConfig {
            id,
            workers,
            table_capacity: cfg.daemon.table_capacity.min(4096),
            template_capacity: cfg.daemon.template_capacity.min(4096),
            fragment_capacity: cfg.daemon.fragment_capacity.min(4096),
            slow_every: cfg.daemon.slow_every,
            ports: roles.clone(),
            ..WorkerConfig::default()
        };
        let worker =
            Worker::new(wcfg, ports, model.cell()).and_then(|w| w.with_redirect(rings.clone()));
        let Ok(mut worker) = worker else {
            continue;
        };
        for n in &cfg.neighbours {
            worker.insert_static_neighbour(n.ip, EthernetAddress(n.mac));
        }
        // One packet to every service, on the port of the first interface.
        let Some(iface) = cfg.director.interfaces.first() else {
            continue;
        };
        let port = iface.port;
        for s in cfg.director.services.iter().take(16) {
            let k = s.key();
            let frame = match k.vip {
                IpAddr::V4(vip) => {
                    let mut f = match k.proto {
                        conntrack::Proto::Tcp => Frame::tcp(CIP, 40000, vip, k.port, SYN),
                        conntrack::Proto::Udp => Frame::udp(CIP, 40000, vip, k.port),
                        conntrack::Proto::Icmp => Frame::echo(CIP, vip, true, 7),
                    };
                    f.dst_mac = mac(port as usize);
                    f.vlan = iface.vlan;
                    f.build()
                }
                IpAddr::V6(vip) => {
                    let cip = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 7);
                    let mut f = match k.proto {
                        conntrack::Proto::Udp => Frame6::udp(cip, 40000, vip, k.port),
                        _ => Frame6::tcp(cip, 40000, vip, k.port, SYN),
                    };
                    f.dst_mac = mac(port as usize);
                    f.build()
                }
            };
            let _ = worker.port_mut(port).inject(&frame);
            worker.poll(1_000);
            for p in 0..roles.len() {
                let _ = worker.port_mut(p as u16).take_tx();
            }
        }
    }
    let mut state = ControlState::new(model, Vec::new(), Vec::new());
    let _ = state.handle(Request::List { service: None });
    let _ = state.metrics();
    if let Err(e) = state.reload(&cfg) {
        panic!("a configuration that built a model does not reload onto it: {e}");
    }
}
