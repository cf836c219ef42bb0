//! Health checks: each dest of a checked service is probed every interval; after `fall`
//! failures in a row it is marked down (published with weight 0: no new sessions, its
//! sessions drain), after `rise` successes it is up again with its configured weight.
//! Transitions are logged.
//!
//! The probes are keepalived's checkers: a TCP connection (TCP_CHECK), an HTTP or HTTPS `GET`
//! with its status, Host header and body digest ([`http`]: HTTP_GET, SSL_GET; [`tls`] for the
//! TLS client), a UDP datagram (UDP_CHECK), and a program's exit status ([`script`]:
//! MISC_CHECK).
//!
//! Probes are ordinary kernel sockets of the rvsd process. With kernel bypass they reach the
//! real servers through the exception path — kernel → TAP → rvsd → data port, and back the
//! same way — so the kernel needs the DIPs on the TAPs (`[daemon] kernel_addresses = true`
//! does that) as with DPVS's KNI and keepalived. Each dest gets its own thread, which sleeps
//! between probes; nothing spins and nothing here touches a worker. A slow probe (a server
//! that does not answer, a script running to its timeout) holds up its own dest only.
//!
//! The checks know nothing of the control state: they are given their [`Target`]s and report
//! each up or down to a [`HealthSink`], which the control state implements (and which puts a
//! service's sorry server in while none of its dests is up).

pub mod http;
pub mod script;
pub mod tls;

pub use http::{HttpCheck, StatusSet};
pub use script::ScriptCheck;
pub use tls::Tls;

use sched::ServiceKey;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{info, warn};

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection must be accepted (keepalived's TCP_CHECK).
    Tcp,
    /// `GET path` over HTTP, or HTTPS with [`HttpCheck::tls`], must answer with an expected
    /// status (and body digest, if given): keepalived's HTTP_GET and SSL_GET.
    Http(HttpCheck),
    /// A datagram is sent; an ICMP port-unreachable (connection refused) is a failure, a
    /// reply or silence is a success (keepalived's UDP_CHECK without a required reply).
    Udp,
    /// A program must exit with status 0 within the timeout (keepalived's MISC_CHECK).
    Script(ScriptCheck),
}

/// The health check of one service (applied to each of its dests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The service.
    pub service: ServiceKey,
    /// The probe.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Time a probe may take (a script is killed after it).
    pub timeout: Duration,
    /// Successes in a row that bring a down dest back.
    pub rise: u32,
    /// Failures in a row that take a dest down.
    pub fall: u32,
    /// Port to probe instead of the dest's.
    pub port: Option<u16>,
}

/// One dest to probe, with its service's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The check of the dest's service.
    pub check: HealthCheck,
    /// The dest's RIP.
    pub addr: IpAddr,
    /// The dest's port (probed unless the check names another).
    pub port: u16,
    /// Whether the dest starts up (a dest already down starts down, so a restarted check
    /// does not flap it).
    pub up: bool,
}

/// Where the checks report: a dest went down after `fall` failed probes, or up again after
/// `rise` good ones.
pub trait HealthSink: Send + Sync {
    /// The dest `addr:port` of `service` is now up (`true`) or down.
    fn dest_health(&self, service: ServiceKey, addr: IpAddr, port: u16, up: bool);
}

/// Runs one probe of `check` against `addr`; a script is killed early once `stop` is set.
///
/// # Errors
/// Why the dest failed it, for the log.
pub fn probe(check: &HealthCheck, addr: SocketAddr, stop: &AtomicBool) -> Result<(), String> {
    let timeout = check.timeout;
    match &check.kind {
        CheckKind::Tcp => TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|e| format!("TCP connect: {e}")),
        CheckKind::Http(h) => http::probe(h, addr, timeout),
        CheckKind::Udp => {
            let any: IpAddr = if addr.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let s = UdpSocket::bind((any, 0)).map_err(|e| format!("UDP: {e}"))?;
            s.connect(addr).map_err(|e| format!("UDP: {e}"))?;
            let _ = s.set_read_timeout(Some(timeout));
            s.send(b"rvs-health")
                .map_err(|e| format!("UDP send: {e}"))?;
            let mut buf = [0u8; 512];
            match s.recv(&mut buf) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Err("UDP: port unreachable".into())
                }
                Err(_) => Ok(()),
            }
        }
        CheckKind::Script(s) => s.run(check.service, addr, timeout, stop),
    }
}

/// The running checks.
pub struct Checker {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Checker {
    /// Starts one thread per target, each reporting its dest's changes to `sink`.
    pub fn start(targets: Vec<Target>, sink: Arc<dyn HealthSink>) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for target in targets {
            let (sink, sp) = (sink.clone(), stop.clone());
            let addr = target.addr;
            let spawned = std::thread::Builder::new()
                .name(format!("rvs-check-{addr}"))
                .spawn(move || run(target, sink.as_ref(), &sp));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => warn!(%addr, "could not start a health check thread: {e}"),
            }
        }
        Checker { stop, threads }
    }

    /// Stops every check thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Probes one dest every interval until `stop`, reporting each change of state to `sink`.
fn run(target: Target, sink: &dyn HealthSink, stop: &AtomicBool) {
    let Target {
        check,
        addr,
        port,
        mut up,
    } = target;
    let probed = SocketAddr::from((addr, check.port.unwrap_or(port)));
    let (mut oks, mut fails) = (0u32, 0u32);
    while !stop.load(Ordering::Acquire) {
        match probe(&check, probed, stop) {
            Ok(()) => {
                oks += 1;
                fails = 0;
                if !up && oks >= check.rise {
                    up = true;
                    info!(service = %check.service, dest = %probed, "dest is UP again: configured weight restored");
                    sink.dest_health(check.service, addr, port, true);
                }
            }
            Err(why) => {
                fails += 1;
                oks = 0;
                if up && fails >= check.fall {
                    up = false;
                    warn!(service = %check.service, dest = %probed, reason = %why, "dest is DOWN: weight 0, its sessions drain");
                    sink.dest_health(check.service, addr, port, false);
                }
            }
        }
        std::thread::park_timeout(check.interval);
    }
}

#[cfg(test)]
mod tests;
