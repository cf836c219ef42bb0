//! The listings rvsd answers with: services and dests with their counters and rates (`-L`),
//! LIPs (`--lips`), health-checked dests (`--health`), managed addresses (`--addresses`),
//! workers (`--workers`) and sessions (`-L -c`).
//!
//! A listing reads the model, the workers' published counters (summed over the workers), the
//! `-Z` baselines and the estimator's rates through a [`Readings`]; nothing here changes them.

use crate::convert::{proto_name, service_key, svc_key};
use crate::estimator::Estimator;
use crate::health::{CheckKind, HealthCheck};
use crate::model::Model;
use dataplane::counters::Counter;
use dataplane::drop::DropReason;
use dataplane::stats::{DestSample, WorkerStats};
use dataplane::worker::{MailRequest, Mailbox, SessionDump, SessionInfo};
use proto::{
    AddressView, ConnCursor, ConnView, DestView, ErrorKind, HealthView, LipUsageView,
    LipWorkerView, Rates, Response, ServiceView, Stats, SvcKey, WorkerView, CONNECTIONS_PAGE,
};
use sched::{Dest, SchedError, ServiceKey};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// How long a worker may take to answer one request for sessions.
pub const WORKER_ANSWER: Duration = Duration::from_secs(2);

/// What the listings read.
pub struct Readings<'a> {
    /// The model.
    pub model: &'a Model,
    /// Each worker's published counters, in worker order.
    pub workers: &'a [Arc<WorkerStats>],
    /// The dest counters at the last `-Z`, by counter slot.
    pub baseline: &'a HashMap<u32, DestSample>,
    /// The rates.
    pub estimator: &'a Estimator,
    /// The health checks in force.
    pub checks: &'a [HealthCheck],
    /// Session sync, if rvsd has it.
    pub sync: Option<&'a crate::sync::SyncPlane>,
    /// The ports' link state and counters.
    pub ports: &'a crate::metrics::PortStatsBoard,
}

/// An error answer for a refused request.
pub(crate) fn refused(e: impl ToString) -> Response {
    Response::Error {
        kind: ErrorKind::Refused,
        message: e.to_string(),
    }
}

impl Readings<'_> {
    /// The sum over the workers of one dest slot's counters.
    pub fn sample(&self, slot: u32) -> DestSample {
        let mut s = DestSample::default();
        for w in self.workers {
            s.add(&w.dest(slot).sample());
        }
        s
    }

    /// `-L`: every service (or the one asked for) with its dests, counters and rates.
    pub fn services(&self, service: Option<SvcKey>) -> Response {
        let cfg = self.model.config();
        let wanted: Option<ServiceKey> = service.map(service_key);
        if let Some(k) = wanted {
            if cfg.services.get(&k).is_none() {
                return refused(SchedError::NoSuchService { key: k });
            }
        }
        let mut services = Vec::new();
        for s in cfg
            .services
            .iter()
            .filter(|s| wanted.is_none_or(|k| k == s.key()))
        {
            let key = s.key();
            // With the sorry server while it stands in, as IPVS lists keepalived's.
            let dests: Vec<DestView> = self
                .model
                .published_dests(key)
                .iter()
                .map(|d| self.dest(key, d))
                .collect();
            let mut stats = Stats::default();
            let mut rates = Rates::default();
            for d in &dests {
                stats.conns += d.stats.conns;
                stats.inpkts += d.stats.inpkts;
                stats.outpkts += d.stats.outpkts;
                stats.inbytes += d.stats.inbytes;
                stats.outbytes += d.stats.outbytes;
                rates.cps += d.rates.cps;
                rates.inpps += d.rates.inpps;
                rates.outpps += d.rates.outpps;
                rates.inbps += d.rates.inbps;
                rates.outbps += d.rates.outbps;
            }
            services.push(ServiceView {
                key: svc_key(key),
                scheduler: s.sched().to_string(),
                persistence: s.persistence(),
                synproxy: s.synproxy(),
                proxy_protocol: s.proxy_protocol().map(|v| v.name().to_owned()),
                toa: s.toa(),
                stats,
                rates,
                dests,
            });
        }
        Response::Services { services }
    }

    /// One dest: its published weight, session gauges, counters since `-Z`, and rates.
    fn dest(&self, key: ServiceKey, d: &Dest) -> DestView {
        let slot = self.model.slots().get(key, d.addr, d.port);
        let (now, base, rates) = match slot {
            Some(s) => (
                self.sample(s),
                self.baseline.get(&s).copied().unwrap_or_default(),
                self.estimator.rates(s),
            ),
            None => Default::default(),
        };
        DestView {
            addr: d.addr,
            port: d.port,
            forward: d.mode.ipvsadm_name().to_string(),
            weight: self.model.effective_weight(key, d),
            active: now.active,
            inactive: now.inactive,
            stats: Stats {
                conns: now.conns.saturating_sub(base.conns),
                inpkts: now.inpkts.saturating_sub(base.inpkts),
                outpkts: now.outpkts.saturating_sub(base.outpkts),
                inbytes: now.inbytes.saturating_sub(base.inbytes),
                outbytes: now.outbytes.saturating_sub(base.outbytes),
            },
            rates,
        }
    }

    /// `--addresses`: each managed address, what it is and whether it is owned, as the
    /// snapshot the workers run has it.
    pub fn addresses(&self) -> Response {
        Response::Addresses {
            addresses: managed_addresses(self.model),
        }
    }

    /// `--lips`: the LIPs, the local port range, each worker's free share of it, and each
    /// LIP's pairs in use, in quarantine and free per worker.
    pub fn lips(&self) -> Response {
        let cfg = self.model.config();
        Response::Lips {
            lips: cfg.lips.clone(),
            lips6: cfg.lips6.clone(),
            first_port: *cfg.lport_range.start(),
            last_port: *cfg.lport_range.end(),
            pools: cfg.lport_reuse.pools,
            quarantine_secs: cfg.lport_reuse.quarantine_ms / 1000,
            usage: lip_usage(self.workers, &cfg.lips6),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let (in_use, capacity) = w.lip_pairs();
                    LipWorkerView {
                        id: i as u16,
                        available: capacity.saturating_sub(in_use),
                        capacity,
                    }
                })
                .collect(),
        }
    }

    /// `--health`: each dest of a checked service, its check, and whether it is up.
    pub fn health(&self) -> Response {
        let cfg = self.model.config();
        let mut dests = Vec::new();
        for c in self.checks {
            let Some(s) = cfg.services.get(&c.service) else {
                continue;
            };
            for d in s.dests() {
                dests.push(HealthView {
                    service: svc_key(c.service),
                    addr: d.addr,
                    port: d.port,
                    check: describe_check(c),
                    up: !self.model.is_down(c.service, d.addr, d.port),
                    weight: d.weight,
                });
            }
        }
        Response::Health { dests }
    }

    /// `--workers`: each worker's packet, session, redirect, drop and event counters.
    pub fn workers(&self) -> Response {
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = &w.worker;
                WorkerView {
                    id: i as u16,
                    rx_packets: c.get(Counter::RxPackets),
                    tx_packets: c.get(Counter::TxPackets),
                    sessions: c.sessions.load(Relaxed),
                    redirected_out: c.get(Counter::RedirectedOut),
                    redirected_in: c.get(Counter::RedirectedIn),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.as_str().to_string(), c.drop_count(*r)))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    busy_permille: c.busy_permille.load(Relaxed) as u32,
                    counters: Counter::ALL
                        .iter()
                        .map(|k| (k.as_str().to_string(), c.get(*k)))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                }
            })
            .collect();
        Response::Workers { workers }
    }
}

/// Each worker's LIPs, as its slow jobs last published them: the IPv4 ones, then the IPv6
/// ones (`lips6`, the configuration's: a worker's IPv6 gauges name them by index).
pub(crate) fn lip_usage(
    workers: &[Arc<WorkerStats>],
    lips6: &[std::net::Ipv6Addr],
) -> Vec<LipUsageView> {
    let mut out = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let v4 = w.lips.iter().map(|g| {
            (
                std::net::Ipv4Addr::from(g.addr.load(Relaxed) as u32).into(),
                g,
            )
        });
        let v6 = w.lips6.iter().filter_map(|g| {
            let lip = lips6.get(g.addr.load(Relaxed) as usize)?;
            Some(((*lip).into(), g))
        });
        for (lip, g) in v4.chain(v6) {
            let (in_use, quarantined) = (g.in_use.load(Relaxed), g.quarantined.load(Relaxed));
            out.push(LipUsageView {
                worker: i as u16,
                lip,
                in_use,
                quarantined,
                free: g
                    .capacity
                    .load(Relaxed)
                    .saturating_sub(in_use + quarantined),
            });
        }
    }
    out
}

/// A check in one line, e.g. `http GET / = 200-299 every 2s timeout 1s rise 2 fall 3`,
/// `https GET /health = 200,301 host www.example.org md5 9e10…19d6 ca /etc/rvs/ca.pem ...`,
/// `script /usr/local/bin/check-db {addr} ...`.
fn describe_check(c: &HealthCheck) -> String {
    let what = match &c.kind {
        CheckKind::Tcp => "tcp connect".to_string(),
        CheckKind::Udp => "udp".to_string(),
        CheckKind::Http(h) => {
            let mut w = format!(
                "{} GET {} = {}",
                if h.tls.is_some() { "https" } else { "http" },
                h.path,
                h.expect
            );
            if let Some(v) = &h.virtualhost {
                w += &format!(" host {v}");
            }
            if let Some(d) = &h.digest {
                w += &format!(" md5 {}", crate::health::http::hex(d));
            }
            if let Some(ca) = h.tls.as_ref().and_then(|t| t.ca_file()) {
                w += &format!(" ca {ca}");
            }
            w
        }
        CheckKind::Script(s) => format!("script {}", s.command()),
    };
    let port = c.port.map(|p| format!(" port {p}")).unwrap_or_default();
    format!(
        "{what}{port} every {:?} timeout {:?} rise {} fall {}",
        c.interval, c.timeout, c.rise, c.fall
    )
}

/// `-L -c`: one page of the sessions, from `from` (the start when none) on: up to
/// [`CONNECTIONS_PAGE`] of them, asked of the workers in order (answered in their slow jobs, a
/// bounded stretch of their table at a time), with the cursor of the next page. Waits for the
/// workers, so it is called without holding the control state. Memory: one page.
pub fn connections(
    mailboxes: &[Arc<Mailbox>],
    workers: &[Arc<WorkerStats>],
    from: Option<ConnCursor>,
) -> Response {
    let mut at = from.unwrap_or(ConnCursor { worker: 0, slot: 0 });
    if usize::from(at.worker) >= mailboxes.len() && (at.worker, at.slot) != (0, 0) {
        return refused(format!(
            "no worker {} to list sessions from (rvsd has {})",
            at.worker,
            mailboxes.len()
        ));
    }
    let mut conns = Vec::with_capacity(CONNECTIONS_PAGE);
    // The buffer the workers fill, passed from one to the next.
    let mut buf = Vec::with_capacity(CONNECTIONS_PAGE);
    while conns.len() < CONNECTIONS_PAGE {
        let w = usize::from(at.worker);
        let Some(mailbox) = mailboxes.get(w) else {
            break;
        };
        let dump = match ask(mailbox, w, at.slot, CONNECTIONS_PAGE - conns.len(), buf) {
            Ok(dump) => dump,
            Err(e) => return e,
        };
        conns.extend(dump.sessions.iter().map(|s| conn_view(s, at.worker)));
        at = match dump.next {
            Some(slot) => ConnCursor {
                worker: at.worker,
                slot,
            },
            None => ConnCursor {
                worker: at.worker.saturating_add(1),
                slot: 0,
            },
        };
        buf = dump.sessions;
    }
    let next = (usize::from(at.worker) < mailboxes.len()).then_some(at);
    let local = workers.iter().any(|w| w.lip_pairs().0 > 0);
    Response::Connections { conns, next, local }
}

/// Asks worker `w` for at most `max` sessions from slot `from` on, in `buf`.
fn ask(
    mailbox: &Mailbox,
    w: usize,
    from: u32,
    max: usize,
    mut buf: Vec<SessionInfo>,
) -> Result<SessionDump, Response> {
    let internal = |message: String| Response::Error {
        kind: ErrorKind::Internal,
        message,
    };
    buf.clear();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let posted = mailbox.post(MailRequest::DumpSessions {
        from,
        max,
        into: buf,
        reply: tx,
    });
    if posted.is_err() {
        return Err(internal(format!(
            "worker {w} is busy with other requests: try again"
        )));
    }
    rx.recv_timeout(WORKER_ANSWER).map_err(|_| {
        internal(format!(
            "worker {w} did not answer within {} s",
            WORKER_ANSWER.as_secs()
        ))
    })
}

/// One session as `-c` lists it. The only place that reads a session's forwarding fields. A
/// persistence template is listed as ipvsadm lists IPVS's: state `NONE`, the client's port 0,
/// the service's port and the dest's (`TCP 05:59  NONE  CIP:0  VIP:80  RIP:8080`).
fn conn_view(s: &SessionInfo, worker: u16) -> ConnView {
    ConnView {
        proto: proto_name(s.proto),
        expire_secs: s.expires_in.div_ceil(1000),
        state: if s.template {
            "NONE".to_owned()
        } else {
            s.state.to_string()
        },
        source: s.client.0,
        sport: s.client.1,
        vip: s.vip.0,
        vport: s.vip.1,
        dest: s.rip.0,
        dport: s.rip.1,
        local: s.local,
        worker,
    }
}

/// The managed addresses as the published snapshot has them (what the workers do).
pub fn managed_addresses(model: &Model) -> Vec<AddressView> {
    let snap = model.cell().load_full();
    snap.managed()
        .iter()
        .map(|m| {
            let local = snap.local(m.addr).unwrap_or_default();
            let role = if local.vip {
                "vip"
            } else if local.lip {
                "lip"
            } else {
                "none"
            };
            AddressView {
                addr: m.addr,
                role: role.to_string(),
                owned: m.owned,
                interface: m
                    .iface
                    .filter(|_| m.owned)
                    .map(|i| snap.iface(i).name.clone()),
            }
        })
        .collect()
}
