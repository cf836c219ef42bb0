//! What the harness's DPDK programs (rvs-reflector, rvs-connrate) share: two `net_vhost`
//! ports, the client side and the server side of a device under test that connects to them
//! with virtio_user, and the start-up handshake with the Python driver. Also the reflection of
//! a frame into its reply, which the in-memory traces (`crate::trace`) use too.
//!
//! The program prints `mac wan ..`, `mac lan ..` and `ready` once its ports exist, waits for a
//! line on standard input (the DUT is up), then for both links.

use dataplane::checksum::update16;
use dpdk::{Eal, Mempool, Port, PortConf, Queue};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The EAL, the packet pool and the two vhost ports (0: client side, 1: server side).
pub struct Peer {
    /// The packet pool.
    pub pool: Mempool,
    /// The client-side and server-side ports.
    pub ports: Vec<Port>,
    _eal: Eal,
}

impl Peer {
    /// Starts the EAL on `core` (file prefix `prefix`) with vhost-user servers on the `wan`
    /// and `lan` socket paths, and both ports.
    pub fn open(
        program: &str,
        wan: &str,
        lan: &str,
        core: u32,
        prefix: &str,
    ) -> Result<Peer, String> {
        let core = core.to_string();
        let wan = format!("net_vhost0,iface={wan},queues=1");
        let lan = format!("net_vhost1,iface={lan},queues=1");
        let eal_args = [
            "-l",
            &core,
            "--no-pci",
            "--no-huge",
            "-m",
            "1024",
            "--single-file-segments",
            "--file-prefix",
            prefix,
            "--vdev",
            &wan,
            "--vdev",
            &lan,
        ];
        let eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
        let pool = Mempool::new(program, 16383, 256, 2176, None).map_err(|e| e.to_string())?;
        let mut ports = Vec::new();
        for name in ["net_vhost0", "net_vhost1"] {
            let mut p = Port::by_name(name).map_err(|e| e.to_string())?;
            p.configure(&PortConf::default(), &pool)
                .map_err(|e| e.to_string())?;
            p.start().map_err(|e| e.to_string())?;
            ports.push(p);
        }
        Ok(Peer {
            pool,
            ports,
            _eal: eal,
        })
    }

    /// Prints the MACs and `ready`, waits for the driver's line and for both links; returns
    /// the two queues.
    pub fn handshake(&self, out: &mut impl Write) -> Result<[Queue; 2], String> {
        let _ = writeln!(out, "mac wan {}", fmt_mac(self.ports[0].mac()));
        let _ = writeln!(out, "mac lan {}", fmt_mac(self.ports[1].mac()));
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self.ports[0].link_up() && self.ports[1].link_up()) {
            if Instant::now() > deadline {
                return Err("the DUT never connected to both vhost-user sockets".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok([
            self.ports[0].queue(0).map_err(|e| e.to_string())?,
            self.ports[1].queue(0).map_err(|e| e.to_string())?,
        ])
    }

    /// Stops both ports (the queues must be dropped first).
    pub fn close(mut self) {
        for p in &mut self.ports {
            let _ = p.stop();
        }
    }
}

/// A peer program's `main`: parses its arguments (exit 2 on a usage error), runs it (exit 1
/// on failure), each error on standard error after the program's name.
pub fn main<A>(
    program: &str,
    parse: fn() -> Result<A, String>,
    run: fn(&A) -> Result<(), String>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{program}: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The options every peer program takes.
#[derive(Clone, Debug)]
pub struct Common {
    /// The client side's vhost-user socket.
    pub wan: String,
    /// The server side's vhost-user socket.
    pub lan: String,
    /// The DUT's client-side MAC.
    pub peer_mac: [u8; 6],
    /// The service's VIP (IPv4, or IPv6 for the reflector's FullNAT66 mode).
    pub vip: std::net::IpAddr,
    /// The service's port.
    pub vport: u16,
    /// The core the program runs on.
    pub core: u32,
    /// The EAL file prefix.
    pub prefix: String,
}

/// Parses `v`, the value of `flag`, or says it is not `what`.
pub fn value<T: std::str::FromStr>(flag: &str, v: &str, what: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag} {v}: not {what}"))
}

impl Common {
    /// Parses the command line: `--wan --lan --peer-mac --vip --vport --core --prefix` here,
    /// every other flag through `own(flag, value)` (value None for the names in `switches`),
    /// which returns false for a flag it does not know.
    pub fn parse(
        program: &str,
        switches: &[&str],
        mut own: impl FnMut(&str, Option<&str>) -> Result<bool, String>,
    ) -> Result<Common, String> {
        let mut c = Common {
            wan: String::new(),
            lan: String::new(),
            peer_mac: [0; 6],
            vip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            vport: 0,
            core: 0,
            prefix: program.into(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let flag = flag.as_str();
            if switches.contains(&flag) {
                own(flag, None)?;
                continue;
            }
            let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag {
                "--wan" => c.wan = v,
                "--lan" => c.lan = v,
                "--peer-mac" => {
                    c.peer_mac = parse_mac(&v).ok_or_else(|| format!("{flag} {v}: not a MAC"))?
                }
                "--vip" => c.vip = value(flag, &v, "an IP address")?,
                "--vport" => c.vport = value(flag, &v, "a port")?,
                "--core" => c.core = value(flag, &v, "a core")?,
                "--prefix" => c.prefix = v,
                _ => {
                    if !own(flag, Some(&v))? {
                        return Err(format!("unknown option {flag}"));
                    }
                }
            }
        }
        if c.wan.is_empty() || c.lan.is_empty() || c.vport == 0 || c.vip.is_unspecified() {
            return Err("--wan, --lan, --peer-mac, --vip and --vport are required".into());
        }
        Ok(c)
    }

    /// Starts the EAL and the ports these options name.
    pub fn open(&self, program: &str) -> Result<Peer, String> {
        Peer::open(program, &self.wan, &self.lan, self.core, &self.prefix)
    }
}

/// An Ethernet frame carrying at least a minimal IPv4 header.
#[inline]
pub fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= 14 + 20 && f[12..14] == [0x08, 0x00] && f[14] >> 4 == 4
}

/// Sets the IPv4 TTL back to 64, folding the change into the header checksum (RFC 1624).
#[inline]
pub fn restore_ttl(f: &mut [u8]) {
    let old = u16::from_be_bytes([f[22], f[23]]);
    let new = (64u16 << 8) | u16::from(f[23]);
    if old != new {
        f[22] = 64;
        let hc = update16(u16::from_be_bytes([f[24], f[25]]), old, new);
        f[24..26].copy_from_slice(&hc.to_be_bytes());
    }
}

/// Swaps the IPv6 frame's MACs, addresses and L4 ports and sets its hop limit back to 64
/// (no checksum covers it); false for any other frame.
#[inline]
pub fn reflect6(f: &mut [u8]) -> bool {
    if f.len() < 14 + 40 + 4 || f[12..14] != [0x86, 0xdd] {
        return false;
    }
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..16 {
        f.swap(22 + i, 38 + i);
    }
    for i in 0..2 {
        f.swap(54 + i, 56 + i);
    }
    f[21] = 64;
    true
}

/// Swaps the frame's MACs, IPv4 addresses and L4 ports and sets its TTL back to 64. None of
/// the swaps changes a checksum; the TTL is folded into the IPv4 one (RFC 1624).
#[inline]
pub fn reflect(f: &mut [u8]) -> bool {
    if !is_ipv4(f) {
        return false;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if ihl < 20 || f.len() < 14 + ihl + 4 {
        return false;
    }
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    let l4 = 14 + ihl;
    for i in 0..2 {
        f.swap(l4 + i, l4 + 2 + i);
    }
    restore_ttl(f);
    true
}
