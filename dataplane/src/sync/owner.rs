//! Which worker of *this* director holds a synced flow: the one the flow's packets reach
//! here, by the same rules as a local session's (docs/architecture.md, "who owns a
//! session"), so that after a failover the flow's first packet finds it.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::lip::LipPool;
use crate::redirect;
use crate::rss::{self, Reta, RssKey, ToeplitzTable};
use crate::snapshot::{Homing, Snapshot};
use conntrack::Proto;
use sched::ForwardMode;

use super::record::SyncRecord;

/// One port's RSS: its Toeplitz tables and RETA (worker `k` polls queue `k`).
#[derive(Debug)]
struct PortRss {
    toeplitz: ToeplitzTable,
    reta: Reta,
}

/// The rules a director's workers share out flows by.
#[derive(Debug)]
pub struct FlowOwner {
    workers: u16,
    /// By port index: the port's RSS, when it does RSS.
    rss: Vec<Option<PortRss>>,
}

impl FlowOwner {
    /// The rules for `workers` workers whose ports hash as `rss` says (by port index;
    /// `None` for a port without RSS, whose packets all reach worker 0's queue).
    pub fn new(workers: u16, rss: &[Option<(RssKey, Reta)>]) -> FlowOwner {
        FlowOwner {
            workers: workers.max(1),
            rss: rss
                .iter()
                .map(|r| {
                    r.as_ref().map(|(key, reta)| PortRss {
                        toeplitz: ToeplitzTable::new(key),
                        reta: reta.clone(),
                    })
                })
                .collect(),
        }
    }

    /// How many workers there are.
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The worker that holds `r` here, with the configuration `snap`:
    /// - one worker: that one;
    /// - a FullNAT session: the owner of its local port's slice (where its replies go);
    /// - a session of a service whose sessions are homed (NAT dests, persistence) and any
    ///   template: the client's home worker;
    /// - an IPv6 session: for FullNAT66 and NAT64 the owner of its local port's slice; of a
    ///   service with NAT66 dests, the client endpoint's home worker; otherwise by the
    ///   IPv6 flow's hash, as below;
    /// - otherwise the worker whose queue the client's packets hash to on the port that
    ///   faces the client (worker 0 on a port without RSS).
    pub fn owner(&self, snap: &Snapshot, r: &SyncRecord) -> u16 {
        let workers = self.workers;
        if workers <= 1 {
            return 0;
        }
        let (proto, client, cport, vip, vport) = match r {
            SyncRecord::Template(t) => return redirect::home(t.client, 0, workers),
            SyncRecord::View(_) => return 0,
            SyncRecord::Session6(s) => {
                if let (ForwardMode::FullNat, Some((_, lport))) = (s.mode, s.lip) {
                    if let Some(w) = LipPool::worker_of(snap.lport_range(), workers, lport) {
                        return w;
                    }
                }
                let homed = snap
                    .service_index6(s.proto, s.vip.0, s.vip.1)
                    .is_some_and(|si| snap.service_homing(si) == Homing::Endpoint);
                if homed {
                    return redirect::home6(s.client.0, s.client.1, workers);
                }
                return self.rss_worker6(snap, s.client, s.vip);
            }
            SyncRecord::Session(s) => (s.proto, s.client.0, s.client.1, s.vip.0, s.vip.1),
        };
        if let SyncRecord::Session(s) = r {
            if let (ForwardMode::FullNat, Some((_, lport))) = (s.mode, s.lip) {
                if let Some(w) = LipPool::worker_of(snap.lport_range(), workers, lport) {
                    return w;
                }
            }
        }
        let homing = snap
            .service_index(proto, vip, vport)
            .map_or(Homing::None, |si| snap.service_homing(si));
        match homing {
            Homing::Endpoint => redirect::home(client, cport, workers),
            Homing::Client => redirect::home(client, 0, workers),
            Homing::None => self.rss_worker(snap, proto, client, cport, vip, vport),
        }
    }

    /// The worker polling the queue that the client's IPv6 packet `client → vip` (TCP or
    /// UDP) hashes to on the port its route leaves by.
    fn rss_worker6(&self, snap: &Snapshot, client: (Ipv6Addr, u16), vip: (Ipv6Addr, u16)) -> u16 {
        let port = snap.route6(client.0).map(|h| snap.iface(h.iface).port);
        let Some(rss) = port
            .and_then(|p| self.rss.get(usize::from(p)))
            .and_then(Option::as_ref)
        else {
            return 0;
        };
        let hash = rss::hash_ipv6_l4(rss.toeplitz.key(), client.0, vip.0, client.1, vip.1);
        rss.reta.queue(hash).min(self.workers - 1)
    }

    /// The worker polling the queue that the client's packet `client:cport → vip:vport`
    /// hashes to on the port its route leaves by.
    fn rss_worker(
        &self,
        snap: &Snapshot,
        proto: Proto,
        client: Ipv4Addr,
        cport: u16,
        vip: Ipv4Addr,
        vport: u16,
    ) -> u16 {
        let port = snap.route(client).map(|h| snap.iface(h.iface).port);
        let Some(rss) = port
            .and_then(|p| self.rss.get(usize::from(p)))
            .and_then(Option::as_ref)
        else {
            return 0;
        };
        let hash = match proto {
            Proto::Tcp | Proto::Udp => rss.toeplitz.hash_ipv4_l4(client, vip, cport, vport),
            Proto::Icmp => rss.toeplitz.hash_ipv4(client, vip),
        };
        rss.reta.queue(hash).min(self.workers - 1)
    }
}
