//! A control server over several real workers (in-memory ports) filled with many UDP
//! sessions, for the listing tests and the `list_sessions` example (which includes this file).
//!
//! Session `i` (counted over all the workers) is the UDP flow from [`client`]`(i)` to VIP:53,
//! forwarded by DR to RS 0, so that a listing can be checked for every session exactly once.
#![allow(dead_code)]

use control::model::Model;
use control::server::Server;
use control::state::ControlState;
use control::Change;
use dataplane::mem::{MemDevice, MemPool};
use dataplane::snapshot::{Cidr, DirectorConfig, InterfaceConfig, RouteConfig};
use dataplane::wire::EthernetAddress;
use dataplane::worker::{Worker, WorkerConfig};
use proto::{DestSpec, ProtoName, Request, SvcKey};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use testkit::*;

/// Client ports used per client address.
const PORTS_PER_CLIENT: u32 = 50_000;
/// The first client port.
const FIRST_PORT: u32 = 1024;
/// The first client address (198.18.0.0, benchmarking space).
const FIRST_CLIENT: u32 = 0xc612_0000;

/// The client address and port of session `i`.
pub fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(FIRST_CLIENT + i / PORTS_PER_CLIENT),
        (FIRST_PORT + i % PORTS_PER_CLIENT) as u16,
    )
}

/// The session number of a client address and port, if it is one of [`client`]'s.
pub fn session_of(addr: std::net::IpAddr, port: u16) -> Option<u32> {
    let std::net::IpAddr::V4(addr) = addr else {
        return None;
    };
    let a = u32::from(addr).checked_sub(FIRST_CLIENT)?;
    let p = u32::from(port).checked_sub(FIRST_PORT)?;
    (p < PORTS_PER_CLIENT).then(|| a * PORTS_PER_CLIENT + p)
}

/// The service every session belongs to: UDP VIP:53.
pub fn service() -> SvcKey {
    SvcKey {
        proto: ProtoName::Udp,
        vip: VIP.into(),
        port: 53,
    }
}

/// A director with a WAN and a LAN interface and a default route (the control tests' base).
pub fn director() -> DirectorConfig {
    DirectorConfig {
        interfaces: vec![
            InterfaceConfig {
                addrs6: Vec::new(),
                name: "wan0".into(),
                port: WAN,
                vlan: None,
                addrs: vec![Cidr::new(DIP_WAN, 24)],
                mtu: 1500,
            },
            InterfaceConfig {
                addrs6: Vec::new(),
                name: "lan0".into(),
                port: LAN,
                vlan: None,
                addrs: vec![Cidr::new(DIP_LAN, 24)],
                mtu: 1500,
            },
        ],
        routes: vec![RouteConfig {
            dst: Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: ROUTER,
        }],
        ..DirectorConfig::default()
    }
}

/// Workers filled with sessions, running their slow jobs on threads of their own, behind a
/// control server on a Unix socket.
pub struct Fleet {
    /// The control socket.
    pub sock: PathBuf,
    dir: PathBuf,
    server: Option<Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Sessions per worker, in worker order.
    pub sizes: Vec<u32>,
}

impl Fleet {
    /// Workers holding `sizes[w]` sessions each (numbered on from one worker to the next);
    /// each runs its slow jobs (which answer the listings) every `pause`, or as often as it
    /// can with a zero pause, as rvsd's busy-polling workers do.
    pub fn start(sizes: &[u32], pause: Duration) -> Fleet {
        let mut model = Model::new(director()).expect("model");
        for req in [
            Request::AddService {
                service: service(),
                scheduler: "rr".into(),
                persistence: None,
                synproxy: false,
                proxy_protocol: None,
                toa: false,
            },
            Request::AddDest {
                service: service(),
                dest: DestSpec {
                    addr: RS[0].into(),
                    port: 53,
                    weight: 1,
                    mode: "dr".into(),
                },
            },
        ] {
            let change = Change::try_from(req).expect("a change");
            model.apply(change).expect("applied");
        }
        let mut stats = Vec::new();
        let mut boxes = Vec::new();
        let mut workers = Vec::new();
        let mut first = 0;
        for (id, &n) in sizes.iter().enumerate() {
            let pool = MemPool::new(256);
            let ports = vec![
                MemDevice::new(EthernetAddress(WAN_MAC), pool.clone(), 64),
                MemDevice::new(EthernetAddress(LAN_MAC), pool, 64),
            ];
            let cfg = WorkerConfig {
                id: id as u16,
                workers: sizes.len() as u16,
                table_capacity: (n as usize).max(1024),
                template_capacity: 64,
                ..WorkerConfig::default()
            };
            let mut w = Worker::new(cfg, ports, model.cell()).expect("worker");
            w.neighbours_mut()
                .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
            w.neighbours_mut()
                .insert_static(RS[0], EthernetAddress(rs_mac(0)));
            fill(&mut w, first, n);
            first += n;
            stats.push(w.stats_handle());
            boxes.push(w.mailbox_handle());
            workers.push(w);
        }
        let state = Arc::new(Mutex::new(ControlState::new(model, stats, boxes)));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = workers
            .into_iter()
            .map(|mut w| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // The clock of the fill goes on: sessions are 300 s from expiry.
                    let start = Instant::now();
                    while !stop.load(Ordering::Acquire) {
                        w.slow_jobs(1 + start.elapsed().as_millis() as u64);
                        if pause.is_zero() {
                            std::thread::yield_now();
                        } else {
                            std::thread::sleep(pause);
                        }
                    }
                })
            })
            .collect();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rvs-listing-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let sock = dir.join("rvsd.sock");
        let server = Server::start(&sock, None, state, &[]).expect("control server");
        Fleet {
            sock,
            dir,
            server: Some(server),
            stop,
            threads,
            sizes: sizes.to_vec(),
        }
    }

    /// Sessions in all.
    pub fn total(&self) -> u32 {
        self.sizes.iter().sum()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(s) = self.server.take() {
            s.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Opens sessions `first..first + n` on `w`: one UDP datagram each, at time 1.
fn fill(w: &mut Worker<MemDevice>, first: u32, n: u32) {
    let (src, sport) = client(first);
    let mut frame = Frame::udp(src, sport, VIP, 53);
    frame.l4 = L4Spec::Udp {
        sport,
        dport: 53,
        zero_csum: true,
    };
    let mut bytes = frame.build();
    let mut i = first;
    while i < first + n {
        let burst = (first + n - i).min(32);
        for _ in 0..burst {
            let (src, sport) = client(i);
            // Ethernet (14) + IPv4 (20, no options): source address, then the UDP source
            // port; the UDP checksum is zero (none), the IPv4 one is recomputed.
            bytes[26..30].copy_from_slice(&src.octets());
            bytes[34..36].copy_from_slice(&sport.to_be_bytes());
            refresh_ip_checksum(&mut bytes, 14);
            assert!(w.port_mut(WAN).inject(&bytes));
            i += 1;
        }
        w.poll(1);
        while w.port_mut(LAN).pop_tx().is_some() {}
    }
    assert_eq!(
        w.sessions().len(),
        n as usize,
        "every datagram opened a session"
    );
}

/// The rvsadm binary `cargo test --workspace` built beside the test binaries (rvsadm is its own
/// crate); `cargo build -p rvsadm` builds it.
pub fn rvsadm_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir");
    let bin = dir.join("rvsadm");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p rvsadm` (cargo test --workspace does)",
        bin.display()
    );
    bin
}
