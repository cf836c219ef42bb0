//! Shared by rvsd's process tests: starting rvsd on a generated configuration, and this test
//! process as the other end of rvsd's vhost-user ports (virtio-user ports with one handle per
//! queue), sending frames on a chosen queue and collecting what comes back.
#![allow(dead_code)]

use arrayvec::ArrayVec;
use dpdk::{Eal, Mbuf, Mempool, Port, PortConf, Queue};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use testkit::{arp_frame, decode, Seen};

/// A running rvsd, killed (and its directory removed) if the test ends early.
pub struct Rvsd {
    pub child: Child,
    pub dir: PathBuf,
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What rvsd printed when it stopped.
pub struct Stopped {
    pub status: ExitStatus,
    pub out: String,
    pub err: String,
}

impl Stopped {
    /// A counter from worker `w`'s line on stdout (0 if absent).
    pub fn counter(&self, w: usize, name: &str) -> u64 {
        let line = self
            .out
            .lines()
            .find(|l| l.starts_with(&format!("worker {w} ")))
            .unwrap_or_else(|| panic!("no counters for worker {w} in {:?}", self.out));
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Rvsd {
    /// Writes `config(dir)` into a fresh directory and starts rvsd on it; waits until every
    /// socket in `sockets` exists in that directory.
    pub fn start(tag: &str, config: impl Fn(&Path) -> String, sockets: &[&str]) -> Rvsd {
        let dir = std::env::temp_dir().join(format!("rvsd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("rvsd.toml");
        std::fs::write(&path, config(&dir)).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rvsd");
        let mut r = Rvsd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sockets.iter().all(|s| r.dir.join(s).exists()) {
            if let Some(status) = r.child.try_wait().expect("wait") {
                let mut err = String::new();
                let _ = r
                    .child
                    .stderr
                    .take()
                    .map(|mut e| e.read_to_string(&mut err));
                panic!("rvsd exited early ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "rvsd did not create {sockets:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// SIGTERM, then waits (30 s at most) and collects the output.
    pub fn stop(self) -> Stopped {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.stop_exited()
    }

    /// Waits (30 s at most) for rvsd to exit by itself and collects the output.
    pub fn stop_exited(mut self) -> Stopped {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "rvsd did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out).expect("stdout");
        }
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("stderr");
        }
        Stopped { status, out, err }
    }
}

/// The rvsadm binary `cargo test --workspace` built beside these tests.
pub fn rvsadm_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("rvsadm");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p rvsadm` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// This process's end of one of rvsd's ports: the virtio-user port and its queues.
pub struct Side {
    /// Held open for as long as its queues are used.
    _port: Port,
    queues: Vec<Queue>,
}

/// The other end of rvsd's ports.
pub struct Peer {
    sides: Vec<Side>,
    pool: Mempool,
}

impl Peer {
    /// Starts this process's EAL with one virtio-user port per `(socket path, MAC)` and
    /// `queues` queue pairs on each. Only one peer per process: the EAL lives until exit.
    pub fn start(tag: &str, sides: &[(PathBuf, &str)], queues: u16) -> Peer {
        let prefix = format!("peer-{tag}-{}", std::process::id());
        let devs: Vec<String> = sides
            .iter()
            .enumerate()
            .map(|(i, (path, mac))| {
                format!(
                    "net_virtio_user{i},path={},queues={queues},mac={mac}",
                    path.display()
                )
            })
            .collect();
        let mut args = vec![
            "peer",
            "-l",
            "0",
            "--no-pci",
            "--no-huge",
            "-m",
            "512",
            "--single-file-segments",
            "--file-prefix",
            &prefix,
        ];
        for d in &devs {
            args.push("--vdev");
            args.push(d);
        }
        std::mem::forget(Eal::init(&args).expect("peer EAL"));
        let pool =
            Mempool::new("peer_pool", 4095, 0, Mempool::DEFAULT_DATA_ROOM, None).expect("pool");
        let sides = (0..sides.len())
            .map(|i| {
                let mut port = Port::by_name(&format!("net_virtio_user{i}")).expect("peer port");
                port.configure(
                    &PortConf {
                        rx_queues: queues,
                        tx_queues: queues,
                        rx_desc: 256,
                        tx_desc: 256,
                        mtu: None,
                        rss: None,
                        tx_offloads: 0,
                    },
                    &pool,
                )
                .expect("configure peer port");
                port.start().expect("start peer port");
                let queues = (0..queues).map(|q| port.queue(q).expect("queue")).collect();
                Side {
                    _port: port,
                    queues,
                }
            })
            .collect();
        Peer { sides, pool }
    }

    /// Sends `frame` on queue `queue` of `side`.
    pub fn send(&mut self, side: usize, queue: u16, frame: &[u8]) {
        let mut m = self.pool.alloc().expect("mbuf");
        assert!(m.append(frame.len()));
        m.data_mut().copy_from_slice(frame);
        let mut burst: ArrayVec<Mbuf, 32> = ArrayVec::new();
        burst.push(m);
        let q = &mut self.sides[side].queues[queue as usize];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !burst.is_empty() {
            q.tx_burst(&mut burst);
            assert!(Instant::now() < deadline, "could not send");
        }
    }

    /// Frames received on `side` (any queue) within `wait`, stopping early after `want`.
    pub fn recv(&mut self, side: usize, want: usize, wait: Duration) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = Instant::now() + wait;
        while got.len() < want && Instant::now() < deadline {
            for q in &mut self.sides[side].queues {
                let mut burst: ArrayVec<Mbuf, 32> = ArrayVec::new();
                q.rx_burst(&mut burst);
                got.extend(burst.iter().map(|m| m.data().to_vec()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    /// Sends `frame` and returns the single IPv4 frame that comes out on `out`.
    pub fn exchange(&mut self, side: usize, queue: u16, frame: &[u8], out: usize) -> Seen {
        self.send(side, queue, frame);
        let got = self.recv(out, 1, Duration::from_secs(10));
        let ip: Vec<_> = got.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
        assert_eq!(ip.len(), 1, "expected one IPv4 frame, got {got:02x?}");
        decode(ip[0])
    }

    /// Asks rvsd (by ARP on `side`) for the MAC of `target`, retrying while its ports come up.
    pub fn resolve(
        &mut self,
        side: usize,
        asker_mac: [u8; 6],
        asker: Ipv4Addr,
        target: Ipv4Addr,
    ) -> [u8; 6] {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            self.send(
                side,
                0,
                &arp_frame(1, asker_mac, [0xff; 6], asker, [0; 6], target),
            );
            for f in self.recv(side, 1, Duration::from_millis(300)) {
                if is_arp_reply_for(&f, target) {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&f[22..28]);
                    return mac;
                }
            }
            assert!(
                Instant::now() < until,
                "rvsd never answered ARP for {target}"
            );
        }
    }
}

/// True for an untagged ARP reply whose sender address is `target`.
pub fn is_arp_reply_for(f: &[u8], target: Ipv4Addr) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[21] == 2 && f[28..32] == target.octets()
}

/// True for an untagged ARP request asking for `target`.
pub fn is_arp_request_for(f: &[u8], target: Ipv4Addr) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[21] == 1 && f[38..42] == target.octets()
}
