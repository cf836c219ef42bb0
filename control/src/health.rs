//! Health checks: each dest of a checked service is probed every interval; after `fall`
//! failures in a row it is marked down (published with weight 0: no new sessions, its
//! sessions drain), after `rise` successes it is up again with its configured weight.
//! Transitions are logged.
//!
//! Probes are ordinary kernel sockets of the rvsd process. With kernel bypass they reach the
//! real servers through the exception path — kernel → TAP → rvsd → data port, and back the
//! same way — so the kernel needs the DIPs on the TAPs (`[daemon] kernel_addresses = true`
//! does that) as with DPVS's KNI and keepalived. Each dest gets its own thread, which sleeps
//! between probes; nothing spins and nothing here touches a worker.
//!
//! The checks know nothing of the control state: they are given their [`Target`]s and report
//! each up or down to a [`HealthSink`], which the control state implements.

use sched::ServiceKey;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{info, warn};

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection must be accepted.
    Tcp,
    /// `GET path` must answer with status `expect`.
    Http {
        /// Request path.
        path: String,
        /// Expected status code.
        expect: u16,
    },
    /// A datagram is sent; an ICMP port-unreachable (connection refused) is a failure, a
    /// reply or silence is a success (keepalived's UDP_CHECK without a required reply).
    Udp,
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
    /// Time a probe may take.
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

/// Runs one probe against `addr`.
///
/// # Errors
/// Why the dest failed it, for the log.
pub fn probe(kind: &CheckKind, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match kind {
        CheckKind::Tcp => TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|e| format!("TCP connect: {e}")),
        CheckKind::Http { path, expect } => {
            let mut s = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| format!("TCP connect: {e}"))?;
            let _ = s.set_read_timeout(Some(timeout));
            let _ = s.set_write_timeout(Some(timeout));
            // One write (one segment): `write!` on the stream would send each piece apart.
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: rvs-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(request.as_bytes())
                .map_err(|e| format!("HTTP request: {e}"))?;
            let mut head = [0u8; 64];
            let mut n = 0;
            while n < 12 {
                match s.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(format!("HTTP response: {e}")),
                }
            }
            let line = String::from_utf8_lossy(&head[..n]);
            let status = line
                .strip_prefix("HTTP/1.")
                .and_then(|r| r.get(2..5))
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| format!("HTTP response: not a status line: {line:?}"))?;
            if status == *expect {
                Ok(())
            } else {
                Err(format!("HTTP status {status}, expected {expect}"))
            }
        }
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
        match probe(&check.kind, probed, check.timeout) {
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
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tcp_and_http_probes_against_real_sockets() {
        /// A listener answering one HTTP request with `status`, after reading the whole
        /// request head (closing with request bytes unread would make the kernel send a reset
        /// that can overtake the answer).
        fn http_once(status: &'static str) -> (SocketAddr, std::thread::JoinHandle<()>) {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let t = std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 256];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = c.shutdown(std::net::Shutdown::Write);
                // Wait for the prober to close first.
                let _ = c.read(&mut buf);
            });
            (addr, t)
        }
        let t1 = Duration::from_secs(2);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(probe(&CheckKind::Tcp, addr, t1).is_ok());
        drop(l);
        assert!(probe(&CheckKind::Tcp, addr, t1)
            .unwrap_err()
            .starts_with("TCP connect"));
        let http = CheckKind::Http {
            path: "/".into(),
            expect: 200,
        };
        let (ok, t) = http_once("200 OK");
        assert!(probe(&http, ok, t1).is_ok());
        t.join().unwrap();
        let (busy, t) = http_once("503 Busy");
        assert_eq!(
            probe(&http, busy, t1).unwrap_err(),
            "HTTP status 503, expected 200"
        );
        t.join().unwrap();
    }

    /// Records every verdict.
    #[derive(Default)]
    struct Verdicts(std::sync::Mutex<Vec<(IpAddr, u16, bool)>>);

    impl HealthSink for Verdicts {
        fn dest_health(&self, _: ServiceKey, addr: IpAddr, port: u16, up: bool) {
            self.0.lock().unwrap().push((addr, port, up));
        }
    }

    #[test]
    fn a_checker_reports_rises_and_falls_to_its_sink() {
        rises_and_falls(Ipv4Addr::LOCALHOST.into());
    }

    #[test]
    fn ipv6_dests_are_checked_over_ipv6() {
        rises_and_falls(Ipv6Addr::LOCALHOST.into());
        let closed = UdpSocket::bind("[::1]:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = probe(&CheckKind::Udp, addr, Duration::from_millis(500)).unwrap_err();
        assert_eq!(e, "UDP: port unreachable");
    }

    /// A TCP check of two dests on loopback address `lo`: one that answers rises, one that
    /// refuses falls.
    fn rises_and_falls(lo: IpAddr) {
        let live = TcpListener::bind((lo, 0)).unwrap();
        let closed = TcpListener::bind((lo, 0)).unwrap();
        let (live_port, closed_port) = (
            live.local_addr().unwrap().port(),
            closed.local_addr().unwrap().port(),
        );
        drop(closed);
        let check = HealthCheck {
            service: ServiceKey {
                proto: conntrack::Proto::Tcp,
                vip: Ipv4Addr::new(192, 0, 2, 100).into(),
                port: 80,
            },
            kind: CheckKind::Tcp,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
            port: None,
        };
        let target = |port, up| Target {
            check: check.clone(),
            addr: lo,
            port,
            up,
        };
        let sink = Arc::new(Verdicts::default());
        // A down dest that answers rises; an up dest that refuses falls; each says so once.
        let checker = Checker::start(
            vec![target(live_port, false), target(closed_port, true)],
            sink.clone(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        checker.stop();
        let mut got = sink.0.lock().unwrap().clone();
        got.sort();
        let mut want = vec![(lo, live_port, true), (lo, closed_port, false)];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn udp_probe_sees_port_unreachable() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = probe(&CheckKind::Udp, addr, Duration::from_millis(500)).unwrap_err();
        assert_eq!(e, "UDP: port unreachable");
        let open = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(probe(
            &CheckKind::Udp,
            open.local_addr().unwrap(),
            Duration::from_millis(200)
        )
        .is_ok());
    }
}
