//! The throughput harness's reflector (R): two `net_vhost` ports, the client side and the
//! server side of a device under test (DUT) that connects to them with virtio_user. R seeds
//! UDP flows client → VIP on the client side, then answers every frame of its flows on the
//! port it came in on with its 5-tuple swapped: the client side's VIP → client replies become
//! client → VIP again, the server side's LIP → RIP requests become RIP → LIP replies. So the
//! frames circulate through the DUT in both directions for as long as it forwards them.
//!
//! Unlike testpmd's 5tswap, R also sets the TTL back to 64 (fixing the header checksum), so a
//! DUT that decrements TTL, as a director must, does not wear the circulating frames out.
//!
//! With `--dr`, for a DUT in DR mode (which forwards one way only, to the RS's MAC): a frame
//! that arrives on the server side is the client's request as the RS sees it, and R sends it
//! back into the client side unchanged but for its MACs (to the DUT's client side) and TTL, as
//! if the client had sent it again. Each loop then crosses the DUT once.
//!
//! R reflects only the frames of its own flows: on the client side UDP from VIP:vport to one
//! of the seeded clients and ports, on the server side UDP to port vport (LIP → RIP through
//! rvsd's FullNAT, client → RIP through NAT, client → VIP through DR and testpmd io); both
//! with R's payload (a marker, [`MARK`]), the UDP length it sent and a UDP checksum that is
//! not 0 and verifies over the pseudo-header. Any other frame (a wrong checksum from a broken
//! rewrite, an unknown tuple, ARP, neighbour discovery) is dropped and counted in `other`.
//! Every seed carries a valid UDP checksum, so the DUT pays for the incremental update of the
//! L4 checksum a real flow costs, and a rewrite that breaks it stops the loop instead of
//! looking fast. Swapping the addresses and ports leaves the checksum as it is (the
//! pseudo-header's sum does not depend on their order), and the TTL or hop limit is not in
//! it, so what R sends back stays valid.
//!
//! With an IPv6 `--vip` (FullNAT66), R seeds IPv6 UDP frames and sets the hop limit back to
//! 64 instead of the TTL.
//!
//! With `--udp-zero-checksum` (IPv4 only, an extra row), the IPv4 seeds carry UDP checksum 0
//! ("none", RFC 768): the DUT has no L4 checksum to update and R verifies none, but it still
//! reflects only its own flows with its payload, and refuses a frame whose checksum is no
//! longer 0.
//!
//! ```text
//! rvs-reflector --wan SOCK --lan SOCK --peer-mac MAC --vip IP --vport N [--flows N]
//!               [--inflight N] [--warmup S] [--seconds S] [--core N] [--prefix P] [--dr]
//!               [--sessions N] [--udp-zero-checksum]
//! ```
//!
//! `--inflight` frames circulate, each its own flow: client `i % flows` (host `1 + i % flows`
//! of 172.16.0.0/16, or of 2001:db8:99::/64 for an IPv6 VIP), source port `1024 + i / flows`.
//!
//! `--sessions N` first sends N frames of N other flows (clients in 172.20.0.0/14, or
//! 2001:db8:99:20::/64 for an IPv6 VIP, one frame each, taken back and not reflected), so that
//! the DUT's session table holds N more sessions while the circulating frames are measured. It
//! checks the frames it takes back as it does the circulating ones (on the server side) and
//! prints `warm sent=.. back=.. other=..`, `other` the frames it refused.
//!
//! It prints `mac wan ..`, `mac lan ..` and `ready` once its ports exist, waits for a line on
//! standard input (the DUT is up), seeds, forwards for warmup + seconds and prints
//! `result rx_pps=.. wan_pps=.. lan_pps=.. other=..`: frames of its flows received per second
//! over the measured seconds (every one of them crossed the DUT once), and how many frames it
//! received in all that it refused.

use arrayvec::ArrayVec;
use dataplane::checksum::{checksum, fold, ipv6_l4, pseudo_header_sum, sum_bytes};
use dpdk::{Mbuf, Mempool, BURST};
use rvs_benches::peer::{is_ipv4, reflect, reflect6, restore_ttl, value, Common};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    c: Common,
    flows: u32,
    inflight: u32,
    warmup: f64,
    seconds: f64,
    dr: bool,
    sessions: u32,
    /// `--udp-zero-checksum`: IPv4 seeds without a UDP checksum (0).
    udp_zero: bool,
}

fn parse_args() -> Result<Args, String> {
    let (mut flows, mut inflight, mut warmup, mut seconds) = (1024, 512, 2.0, 5.0);
    let (mut dr, mut sessions, mut udp_zero) = (false, 0, false);
    let switches = ["--dr", "--udp-zero-checksum"];
    let c = Common::parse("rvs-reflector", &switches, |flag, v| {
        let v = v.unwrap_or_default();
        match flag {
            "--dr" => dr = true,
            "--udp-zero-checksum" => udp_zero = true,
            "--flows" => flows = value(flag, v, "a count")?,
            "--inflight" => inflight = value(flag, v, "a count")?,
            "--warmup" => warmup = value(flag, v, "seconds")?,
            "--seconds" => seconds = value(flag, v, "seconds")?,
            "--sessions" => sessions = value(flag, v, "a count")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if flows == 0 || flows > 65_000 || inflight == 0 {
        return Err("--flows must be 1..=65000 and --inflight at least 1".into());
    }
    if dr && c.vip.is_ipv6() {
        return Err("--dr reflects IPv4 only".into());
    }
    if udp_zero && c.vip.is_ipv6() {
        return Err("--udp-zero-checksum is IPv4 only (IPv6 requires a UDP checksum)".into());
    }
    Ok(Args {
        c,
        flows,
        inflight,
        warmup,
        seconds,
        dr,
        sessions,
        udp_zero,
    })
}

/// The IPv6 clients of the circulating flows: host `1..=flows` of this /64.
const CLIENTS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0);

/// The IPv6 clients of the `--sessions` warm-up: host `j % 2^18` of this /64.
const WARM6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0x20, 0, 0, 0, 0);

/// Every seed's UDP payload (18 bytes: a 60-byte IPv4 frame), which starts with [`MARK`]; R
/// checks it on every frame it receives.
const PAYLOAD: usize = 18;
const MARK: [u8; 8] = *b"rvs-refl";

/// Host `host` of the /64 `net`.
fn host6(net: Ipv6Addr, host: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net) | u128::from(host))
}

/// The seed frame `i`: UDP from client `i % flows` to the VIP.
fn seed(m: &mut Mbuf, i: u32, a: &Args, src_mac: [u8; 6]) -> bool {
    let host = 1 + i % a.flows;
    let sport = 1024 + (i / a.flows) as u16;
    match a.c.vip {
        IpAddr::V4(_) => {
            let client = Ipv4Addr::new(172, 16, (host >> 8) as u8, host as u8);
            udp_frame(m, client, sport, a, src_mac)
        }
        IpAddr::V6(vip) => udp6_frame(m, host6(CLIENTS6, host), sport, vip, a, src_mac),
    }
}

/// The warm-up frame `j`: one frame of its own flow, client 172.20.0.0 (2001:db8:99:20::)
/// + j % 2^18.
fn warm(m: &mut Mbuf, j: u32, a: &Args, src_mac: [u8; 6]) -> bool {
    let host = j % (1 << 18);
    let sport = 2000 + (j >> 18) as u16;
    match a.c.vip {
        IpAddr::V4(_) => {
            let client = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 20, 0, 0)) + host);
            udp_frame(m, client, sport, a, src_mac)
        }
        IpAddr::V6(vip) => udp6_frame(m, host6(WARM6, host), sport, vip, a, src_mac),
    }
}

/// The length of R's IPv4 frames.
const LEN4: usize = 14 + 20 + 8 + PAYLOAD;

/// A UDP frame client:sport → VIP:vport, from R's client side to the DUT's.
fn udp_frame(m: &mut Mbuf, client: Ipv4Addr, sport: u16, a: &Args, src_mac: [u8; 6]) -> bool {
    let IpAddr::V4(vip) = a.c.vip else {
        return false;
    };
    if !m.append(LEN4) {
        return false;
    }
    fill_udp4(
        m.data_mut(),
        (a.c.peer_mac, src_mac),
        (client, sport),
        (vip, a.c.vport),
        !a.udp_zero,
    );
    true
}

/// Writes into `f` (`LEN4` bytes) the IPv4 UDP frame `src` → `dst` between MACs
/// `(dst, src)`, TTL 64, R's payload, its header checksum and, if `with_checksum`, its UDP
/// checksum filled in (else 0: none).
fn fill_udp4(
    f: &mut [u8],
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    with_checksum: bool,
) {
    f.fill(0);
    f[0..6].copy_from_slice(&macs.0);
    f[6..12].copy_from_slice(&macs.1);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((LEN4 - 14) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = (LEN4 - 34) as u16;
    let udp = &mut f[34..LEN4];
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[8..16].copy_from_slice(&MARK);
    if with_checksum {
        let pseudo = pseudo_header_sum(src.0.into(), dst.0.into(), 17, udp_len);
        let sum = match !fold(sum_bytes(pseudo, udp)) {
            0 => 0xffff,
            s => s,
        };
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The length of R's IPv6 frames.
const LEN6: usize = 14 + 40 + 8 + PAYLOAD;

/// An IPv6 UDP frame client:sport → VIP:vport, from R's client side to the DUT's.
fn udp6_frame(
    m: &mut Mbuf,
    client: Ipv6Addr,
    sport: u16,
    vip: Ipv6Addr,
    a: &Args,
    src_mac: [u8; 6],
) -> bool {
    if !m.append(LEN6) {
        return false;
    }
    fill_udp6(
        m.data_mut(),
        (a.c.peer_mac, src_mac),
        (client, sport),
        (vip, a.c.vport),
    );
    true
}

/// Writes into `f` (`LEN6` bytes) the IPv6 UDP frame `src` → `dst` between MACs
/// `(dst, src)`, hop limit 64, R's payload, UDP checksum filled in.
fn fill_udp6(f: &mut [u8], macs: ([u8; 6], [u8; 6]), src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16)) {
    f.fill(0);
    f[0..6].copy_from_slice(&macs.0);
    f[6..12].copy_from_slice(&macs.1);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((LEN6 - 54) as u16).to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.0.octets());
    ip[24..40].copy_from_slice(&dst.0.octets());
    let udp = &mut f[54..LEN6];
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&((LEN6 - 54) as u16).to_be_bytes());
    udp[8..16].copy_from_slice(&MARK);
    let sum = match ipv6_l4(src.0, dst.0, 17, udp) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// The IPv6 frames R takes back from the DUT (see the module's documentation).
struct Expect6 {
    vip: Ipv6Addr,
    vport: u16,
    /// The seeded clients' hosts in [`CLIENTS6`].
    hosts: RangeInclusive<u32>,
    /// Their source ports.
    sports: RangeInclusive<u16>,
}

impl Expect6 {
    fn new(vip: Ipv6Addr, vport: u16, flows: u32, inflight: u32) -> Expect6 {
        let hosts = 1..=flows.min(inflight);
        let sports = 1024..=1024 + ((inflight - 1) / flows) as u16;
        Expect6 {
            vip,
            vport,
            hosts,
            sports,
        }
    }

    /// True for a frame of R's flows that arrived on `side` (0 client, 1 server) with its
    /// UDP checksum valid.
    #[inline]
    fn accepts(&self, f: &[u8], side: usize) -> bool {
        if f.len() < LEN6 || f[12..14] != [0x86, 0xdd] || f[14] >> 4 != 6 || f[20] != 17 {
            return false;
        }
        let udp_len = (LEN6 - 54) as u16;
        if f[18..20] != udp_len.to_be_bytes() || f[58..60] != udp_len.to_be_bytes() {
            return false;
        }
        if f[62..70] != MARK || f[60..62] == [0, 0] {
            return false;
        }
        let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        let flow = if side == 0 {
            let dst = u128::from_be_bytes(f[38..54].try_into().unwrap_or_default());
            let host = (dst & 0xffff_ffff) as u32;
            f[22..38] == self.vip.octets()
                && port(54) == self.vport
                && dst >> 32 == u128::from(CLIENTS6) >> 32
                && self.hosts.contains(&host)
                && self.sports.contains(&port(56))
        } else {
            port(56) == self.vport
        };
        // Over the pseudo-header (addresses, length, next header) and the UDP message with
        // its checksum, a valid checksum sums to 0xffff.
        let sum = sum_bytes(0, &f[22..54]) + u32::from(udp_len) + 17;
        flow && fold(sum_bytes(sum, &f[54..LEN6])) == 0xffff
    }
}

/// The IPv4 frames R takes back from the DUT (see the module's documentation).
struct Expect4 {
    vip: [u8; 4],
    vport: u16,
    /// The seeded clients' hosts in 172.16.0.0/16.
    hosts: RangeInclusive<u32>,
    /// Their source ports.
    sports: RangeInclusive<u16>,
    /// The frames carry a UDP checksum (false with `--udp-zero-checksum`: they carry 0).
    checksum: bool,
}

impl Expect4 {
    fn new(vip: Ipv4Addr, vport: u16, flows: u32, inflight: u32, checksum: bool) -> Expect4 {
        Expect4 {
            vip: vip.octets(),
            vport,
            hosts: 1..=flows.min(inflight),
            sports: 1024..=1024 + ((inflight - 1) / flows) as u16,
            checksum,
        }
    }

    /// True for a frame of R's flows that arrived on `side` (0 client, 1 server) with its
    /// UDP checksum valid (or, without checksums, still 0).
    #[inline]
    fn accepts(&self, f: &[u8], side: usize) -> bool {
        if f.len() < LEN4 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
            return false;
        }
        let udp_len = (LEN4 - 34) as u16;
        if f[16..18] != ((LEN4 - 14) as u16).to_be_bytes() || f[38..40] != udp_len.to_be_bytes() {
            return false;
        }
        if f[42..50] != MARK {
            return false;
        }
        let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        let flow = if side == 0 {
            f[26..30] == self.vip
                && port(34) == self.vport
                && f[30..32] == [172, 16]
                && self.hosts.contains(&u32::from(port(32)))
                && self.sports.contains(&port(36))
        } else {
            port(36) == self.vport
        };
        if !flow {
            return false;
        }
        if !self.checksum {
            return f[40..42] == [0, 0];
        }
        // The addresses (the pseudo-header's), the UDP header and the payload lie end to end
        // (f[26..LEN4], 34 bytes); with the pseudo-header's protocol and length, a valid
        // checksum sums to 0xffff.
        f[40..42] != [0, 0] && fold(sum_bytes(17 + u32::from(udp_len), &f[26..LEN4])) == 0xffff
    }
}

/// What R accepts back: IPv4 or IPv6 frames of its flows.
enum Expect {
    V4(Expect4),
    V6(Expect6),
}

impl Expect {
    fn new(a: &Args) -> Expect {
        match a.c.vip {
            IpAddr::V4(vip) => Expect::V4(Expect4::new(
                vip,
                a.c.vport,
                a.flows,
                a.inflight,
                !a.udp_zero,
            )),
            IpAddr::V6(vip) => Expect::V6(Expect6::new(vip, a.c.vport, a.flows, a.inflight)),
        }
    }

    #[inline]
    fn accepts(&self, f: &[u8], side: usize) -> bool {
        match self {
            Expect::V4(e) => e.accepts(f, side),
            Expect::V6(e) => e.accepts(f, side),
        }
    }
}

/// DR: the frame goes back to the DUT's client side as it is, but for its MACs and TTL.
#[inline]
fn resend(f: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> bool {
    if !is_ipv4(f) {
        return false;
    }
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    restore_ttl(f);
    true
}

/// Sends `a.sessions` frames of distinct flows, a burst at a time, taking back (and freeing)
/// whatever the DUT forwards; waits until the DUT has been quiet for 200 ms. Returns how many
/// were sent, how many came back and how many of those `expect` refused.
fn warm_up(
    pool: &Mempool,
    queues: &mut [dpdk::Queue; 2],
    a: &Args,
    src: [u8; 6],
    expect: &Expect,
) -> Result<(u32, u64, u64), String> {
    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let (mut sent, mut back, mut other) = (0u32, 0u64, 0u64);
    let mut drain = |queues: &mut [dpdk::Queue; 2], burst: &mut ArrayVec<Mbuf, BURST>| {
        let mut n = 0;
        for (side, q) in queues.iter_mut().enumerate() {
            burst.clear();
            n += q.rx_burst(burst);
            let refused = burst.iter().filter(|m| !expect.accepts(m.data(), side));
            other += refused.count() as u64;
        }
        burst.clear();
        back += n as u64;
        n
    };
    while sent < a.sessions {
        let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
        while out.len() < BURST && sent + (out.len() as u32) < a.sessions {
            let mut m = pool.alloc().ok_or("the mempool ran dry while warming up")?;
            if !warm(&mut m, sent + out.len() as u32, a, src) {
                return Err("a warm-up frame does not fit an mbuf".into());
            }
            out.push(m);
        }
        let n = out.len();
        queues[0].tx_burst(&mut out);
        sent += (n - out.len()) as u32;
        drain(queues, &mut burst);
    }
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(200) {
        if drain(queues, &mut burst) > 0 {
            quiet = Instant::now();
        }
    }
    Ok((sent, back, other))
}

fn run(a: &Args) -> Result<(), String> {
    let peer = a.c.open("rvs-reflector")?;
    let mut out = std::io::stdout().lock();
    let mut queues = peer.handshake(&mut out)?;
    let (pool, ports) = (&peer.pool, &peer.ports);

    let src = ports[0].mac();
    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let expect = Expect::new(a);
    if a.sessions > 0 {
        let (sent, back, other) = warm_up(pool, &mut queues, a, src, &expect)?;
        let _ = writeln!(out, "warm sent={sent} back={back} other={other}");
        let _ = out.flush();
    }

    // Seed, a burst at a time.
    let mut sent = 0;
    while sent < a.inflight {
        while burst.len() < BURST && sent + (burst.len() as u32) < a.inflight {
            let mut m = pool.alloc().ok_or("the mempool ran dry while seeding")?;
            if !seed(&mut m, sent + burst.len() as u32, a, src) {
                return Err("a seed frame does not fit an mbuf".into());
            }
            burst.push(m);
        }
        let n = burst.len();
        queues[0].tx_burst(&mut burst);
        sent += (n - burst.len()) as u32;
    }

    let mut rx = [0u64; 2];
    let mut other = 0u64;
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let mut at_warm: Option<[u64; 2]> = None;
    let mut polls = 0u32;
    let (dut_wan, r_wan) = (a.c.peer_mac, ports[0].mac());
    loop {
        for side in 0..2 {
            burst.clear();
            let n = queues[side].rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            let dr_resend = a.dr && side == 1;
            burst.retain(|m| {
                let ok = expect.accepts(m.data(), side)
                    && match &expect {
                        _ if dr_resend => resend(m.data_mut(), dut_wan, r_wan),
                        Expect::V4(_) => reflect(m.data_mut()),
                        Expect::V6(_) => reflect6(m.data_mut()),
                    };
                other += u64::from(!ok);
                ok
            });
            rx[side] += burst.len() as u64;
            queues[if dr_resend { 0 } else { side }].tx_burst(&mut burst);
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) {
            let now = Instant::now();
            if at_warm.is_none() && now >= warm_end {
                at_warm = Some(rx);
            }
            if now >= end {
                break;
            }
        }
    }
    burst.clear();
    let w = at_warm.unwrap_or([0, 0]);
    let (wan_n, lan_n) = (rx[0] - w[0], rx[1] - w[1]);
    let pps = |n: u64| (n as f64 / a.seconds) as u64;
    let _ = writeln!(
        out,
        "result rx_pps={} wan_pps={} lan_pps={} other={}",
        pps(wan_n + lan_n),
        pps(wan_n),
        pps(lan_n),
        other
    );
    let _ = out.flush();
    drop(queues);
    peer.close();
    Ok(())
}

fn main() -> ExitCode {
    rvs_benches::peer::main("rvs-reflector", parse_args, run)
}

#[cfg(test)]
mod tests {
    use super::{reflect, reflect6};

    #[test]
    fn reflect_swaps_the_five_tuple_and_restores_the_ttl_with_a_valid_checksum() {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = [
            0x45, 0, 0, 46, 0, 0, 0, 0, 61, 17, 0, 0, 10, 1, 0, 11, 10, 1, 0, 201,
        ];
        f[14..34].copy_from_slice(&ip);
        let csum = dataplane::checksum::checksum;
        let c = csum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..38].copy_from_slice(&[0x00, 0x50, 0x04, 0x00]);
        assert!(reflect(&mut f));
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[26..30], &[10, 1, 0, 201]);
        assert_eq!(&f[30..34], &[10, 1, 0, 11]);
        assert_eq!(&f[34..38], &[0x04, 0x00, 0x00, 0x50]);
        assert_eq!(f[22], 64);
        assert_eq!(csum(&f[14..34]), 0, "header checksum must verify");
        let mut g = f.clone();
        g[22] = 3;
        let c = {
            g[24] = 0;
            g[25] = 0;
            csum(&g[14..34])
        };
        g[24..26].copy_from_slice(&c.to_be_bytes());
        assert!(super::resend(&mut g, [9; 6], [8; 6]));
        assert_eq!(
            (&g[0..6], &g[6..12], g[22]),
            (&[9u8; 6][..], &[8u8; 6][..], 64)
        );
        assert_eq!(
            &g[26..38],
            &f[26..38],
            "DR resend keeps the addresses and ports"
        );
        assert_eq!(
            csum(&g[14..34]),
            0,
            "header checksum must verify after resend"
        );
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!reflect(&mut arp));
    }

    /// The IPv6 checksum as smoltcp verifies it (a reference independent of R's own sum).
    fn smoltcp_valid(f: &[u8]) -> bool {
        use smoltcp::wire::{IpAddress, Ipv6Packet, UdpPacket};
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        udp.checksum() != 0 && udp.verify_checksum(&IpAddress::Ipv6(s), &IpAddress::Ipv6(d))
    }

    #[test]
    fn ipv6_frames_of_the_flows_are_reflected_and_anything_else_is_refused() {
        use super::{fill_udp6, host6, Expect6, CLIENTS6, LEN6};
        use std::net::Ipv6Addr;
        let vip: Ipv6Addr = "2001:db8:2::100".parse().unwrap();
        let (lip, rip): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:10:1::201".parse().unwrap(),
            "2001:db8:10:1::11".parse().unwrap(),
        );
        // 10 flows, 25 frames: hosts 1..=10, source ports 1024..=1026.
        let e = Expect6::new(vip, 80, 10, 25);
        let frame = |src, dst| {
            let mut f = vec![0u8; LEN6];
            fill_udp6(&mut f, ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]), src, dst);
            f
        };
        let seed = frame((host6(CLIENTS6, 10), 1026), (vip, 80));
        assert!(smoltcp_valid(&seed), "the seed's UDP checksum verifies");
        assert_eq!(seed[21], 64);
        // Through testpmd io the seed reaches the server side as it is; through rvsd as
        // LIP → RIP (checksum updated by the rewrite).
        assert!(e.accepts(&seed, 1));
        assert!(!e.accepts(&seed, 0), "not from the VIP");
        let mut fwd = frame((lip, 40000), (rip, 80));
        fwd[21] = 63;
        assert!(e.accepts(&fwd, 1));
        assert!(reflect6(&mut fwd));
        assert!(smoltcp_valid(&fwd), "the swap keeps the checksum valid");
        assert_eq!(
            (&fwd[22..38], &fwd[38..54], fwd[21]),
            (&rip.octets()[..], &lip.octets()[..], 64)
        );
        assert_eq!(&fwd[54..58], &[0, 80, 0x9c, 0x40]);
        // The client side's reply VIP → client, reflected into client → VIP again.
        let mut reply = frame((vip, 80), (host6(CLIENTS6, 1), 1024));
        assert!(e.accepts(&reply, 0));
        assert!(reflect6(&mut reply));
        assert_eq!(&reply[38..54], &vip.octets()[..]);
        assert!(smoltcp_valid(&reply) && e.accepts(&reply, 1));
        // Not R's flows: a client host or source port it did not seed, another service port.
        for f in [
            frame((vip, 80), (host6(CLIENTS6, 11), 1024)),
            frame((vip, 80), (host6(CLIENTS6, 0), 1024)),
            frame((vip, 80), (host6(CLIENTS6, 1), 1027)),
            frame((vip, 81), (host6(CLIENTS6, 1), 1024)),
            frame((vip, 80), ("2001:db8:98::1".parse().unwrap(), 1024)),
        ] {
            assert!(smoltcp_valid(&f) && !e.accepts(&f, 0));
        }
        assert!(!e.accepts(&frame((lip, 40000), (rip, 81)), 1));
        // A rewrite that broke the checksum (an address or port changed without its update,
        // the payload damaged), or the checksum left out.
        let good = frame((vip, 80), (host6(CLIENTS6, 3), 1025));
        for at in [25, 50, 56, 70, 75] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(!smoltcp_valid(&bad) && !e.accepts(&bad, 0), "byte {at}");
        }
        let mut none = good.clone();
        none[60..62].copy_from_slice(&[0, 0]);
        assert!(!e.accepts(&none, 0));
        // Not R's payload, not UDP, not IPv6.
        let mut unmarked = good.clone();
        unmarked.swap(62, 64);
        unmarked.swap(63, 65);
        assert!(smoltcp_valid(&unmarked), "two words swapped: the sum holds");
        assert!(!e.accepts(&unmarked, 0));
        let mut icmp = good.clone();
        icmp[20] = 58;
        assert!(!e.accepts(&icmp, 0));
        let mut short = good.clone();
        short.truncate(LEN6 - 1);
        assert!(!e.accepts(&short, 0));
        let mut v4 = good;
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!e.accepts(&v4, 0));
    }

    /// The IPv4 UDP checksum as smoltcp verifies it (a reference independent of R's own sum).
    fn smoltcp_valid4(f: &[u8]) -> bool {
        use smoltcp::wire::{IpAddress, Ipv4Packet, UdpPacket};
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        ip.verify_checksum()
            && udp.checksum() != 0
            && udp.verify_checksum(&IpAddress::Ipv4(s), &IpAddress::Ipv4(d))
    }

    /// An IPv4 frame of R's (`fill_udp4`) from `src` to `dst`.
    fn frame4(src: (&str, u16), dst: (&str, u16), with_checksum: bool) -> Vec<u8> {
        let mut f = vec![0u8; super::LEN4];
        let (s, d) = (src.0.parse().unwrap(), dst.0.parse().unwrap());
        let macs = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        super::fill_udp4(&mut f, macs, (s, src.1), (d, dst.1), with_checksum);
        f
    }

    /// Rewrites the IPv4 address at `at` (26 source, 30 destination) to `to`, updating the
    /// header checksum and, if `l4`, the UDP checksum incrementally, as a director does.
    fn set_addr(f: &mut [u8], at: usize, to: &str, l4: bool) {
        use dataplane::checksum::{update32, update_udp32};
        let new = u32::from(to.parse::<std::net::Ipv4Addr>().unwrap());
        let old = u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
        f[at..at + 4].copy_from_slice(&new.to_be_bytes());
        let hc = update32(u16::from_be_bytes([f[24], f[25]]), old, new);
        f[24..26].copy_from_slice(&hc.to_be_bytes());
        if l4 {
            let c = update_udp32(u16::from_be_bytes([f[40], f[41]]), old, new);
            f[40..42].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// Rewrites the UDP port at `at` (34 source, 36 destination) to `to`, updating the UDP
    /// checksum incrementally if `l4`.
    fn set_port(f: &mut [u8], at: usize, to: u16, l4: bool) {
        let old = u16::from_be_bytes([f[at], f[at + 1]]);
        f[at..at + 2].copy_from_slice(&to.to_be_bytes());
        if l4 {
            let c = dataplane::checksum::update_udp16(u16::from_be_bytes([f[40], f[41]]), old, to);
            f[40..42].copy_from_slice(&c.to_be_bytes());
        }
    }

    #[test]
    fn ipv4_seeds_carry_a_udp_checksum_that_verifies() {
        // Client 172.16.0.10 (host 10), as `seed` builds it.
        let f = frame4(("172.16.0.10", 1026), ("192.0.2.100", 80), true);
        assert!(smoltcp_valid4(&f), "smoltcp verifies the seed's checksums");
        assert_ne!(&f[40..42], &[0, 0]);
        assert_eq!(&f[42..50], &super::MARK);
        assert_eq!(f[22], 64);
        let e = super::Expect4::new("192.0.2.100".parse().unwrap(), 80, 10, 25, true);
        assert!(
            e.accepts(&f, 1),
            "through testpmd io or DR: the seed as it is"
        );
        // A seed whose sum is 0 is sent as 0xffff (0 is "none" in IPv4): the checksum field
        // never leaves the seed 0, whatever the flow.
        for host in 1..=255u8 {
            for sport in [1024, 1025, 40000, 65535] {
                let client = format!("172.16.0.{host}");
                let f = frame4((&client, sport), ("192.0.2.100", 80), true);
                assert!(smoltcp_valid4(&f), "{client}:{sport}");
            }
        }
        // Without checksums (the extra row): 0, and smoltcp takes 0 for "none".
        let z = frame4(("172.16.0.10", 1026), ("192.0.2.100", 80), false);
        assert_eq!(&z[40..42], &[0, 0]);
        assert!(!smoltcp_valid4(&z));
    }

    #[test]
    fn ipv4_fullnat_rewrites_with_the_checksum_updated_pass_and_without_are_refused() {
        use super::{reflect, Expect4};
        // 10 flows, 25 frames: clients 172.16.0.1..=10, source ports 1024..=1026.
        let e = Expect4::new("192.0.2.100".parse().unwrap(), 80, 10, 25, true);
        let seed = frame4(("172.16.0.3", 1025), ("192.0.2.100", 80), true);
        // FullNAT: client:1025 → VIP:80 becomes LIP:40000 → RIP:80 on the server side.
        let mut fwd = seed.clone();
        set_addr(&mut fwd, 26, "10.1.1.1", true);
        set_addr(&mut fwd, 30, "10.1.0.11", true);
        set_port(&mut fwd, 34, 40000, true);
        assert!(smoltcp_valid4(&fwd));
        assert!(
            e.accepts(&fwd, 1),
            "the rewrite with its update is R's flow"
        );
        // Each address and port changed without the UDP checksum's update: refused, where
        // the same change with its update passes (so the refusal is the checksum's). The
        // server side takes any frame to port 80, the client side any to a seeded client
        // and port: the destination port is changed on a client-side frame, VIP:80 →
        // 172.16.0.3:1024 becoming :1026.
        let reply_in = frame4(("192.0.2.100", 80), ("172.16.0.3", 1024), true);
        assert!(e.accepts(&reply_in, 0));
        for (what, side) in [("saddr", 1), ("daddr", 1), ("sport", 1), ("dport", 0)] {
            for update in [true, false] {
                let mut f = if side == 1 {
                    fwd.clone()
                } else {
                    reply_in.clone()
                };
                match what {
                    "saddr" => set_addr(&mut f, 26, "10.1.1.2", update),
                    "daddr" => set_addr(&mut f, 30, "10.1.0.12", update),
                    "sport" => set_port(&mut f, 34, 40001, update),
                    _ => set_port(&mut f, 36, 1026, update),
                }
                assert_eq!(e.accepts(&f, side), update, "{what}, updated {update}");
                assert_eq!(smoltcp_valid4(&f), update, "{what}, updated {update}");
            }
        }
        // R's reply: RIP:80 → LIP:40000, valid as it is; rvsd turns it into VIP:80 →
        // client:1025 with the update, which R takes back on the client side.
        let mut reply = fwd.clone();
        assert!(reflect(&mut reply));
        assert!(smoltcp_valid4(&reply), "the swap keeps the checksum valid");
        set_addr(&mut reply, 26, "192.0.2.100", true);
        set_addr(&mut reply, 30, "172.16.0.3", true);
        set_port(&mut reply, 36, 1025, true);
        assert!(smoltcp_valid4(&reply));
        assert!(e.accepts(&reply, 0));
        let mut broken = reply.clone();
        set_addr(&mut broken, 30, "172.16.0.4", false);
        assert!(
            !e.accepts(&broken, 0),
            "client address changed without the update"
        );
        set_addr(&mut broken, 30, "172.16.0.3", false);
        assert!(e.accepts(&broken, 0), "and back: the sum holds again");
        // The loop closes: swapped, it is the seed again (but for the MACs).
        assert!(reflect(&mut reply));
        assert_eq!(&reply[12..], &seed[12..]);
    }

    #[test]
    fn ipv4_frames_without_a_checksum_or_not_of_the_flows_are_refused() {
        use super::{fold, sum_bytes, Expect4, LEN4};
        let e = Expect4::new("192.0.2.100".parse().unwrap(), 80, 10, 25, true);
        let z = Expect4::new("192.0.2.100".parse().unwrap(), 80, 10, 25, false);
        let good = frame4(("192.0.2.100", 80), ("172.16.0.3", 1025), true);
        assert!(e.accepts(&good, 0));
        // Checksum 0, "none": refused in the main mode, the extra row's frames.
        let mut none = good.clone();
        none[40..42].copy_from_slice(&[0, 0]);
        assert!(!e.accepts(&none, 0));
        let zero = frame4(("192.0.2.100", 80), ("172.16.0.3", 1025), false);
        assert!(!e.accepts(&zero, 0) && z.accepts(&zero, 0));
        // A frame whose checksum is 0xffff (its sum was 0) still sums right with 0 in its
        // place (0 and 0xffff are both zero in ones' complement): only R's "not 0" refuses
        // it. The source port that makes it, on the server side's LIP → RIP:80.
        let ffff = (0..=u16::MAX)
            .map(|sport| frame4(("10.1.1.1", sport), ("10.1.0.11", 80), true))
            .find(|f| f[40..42] == [0xff, 0xff])
            .unwrap();
        assert!(smoltcp_valid4(&ffff) && e.accepts(&ffff, 1));
        let mut ffff_none = ffff.clone();
        ffff_none[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(fold(sum_bytes(17 + 26, &ffff_none[26..LEN4])), 0xffff);
        assert!(
            !e.accepts(&ffff_none, 1),
            "checksum 0 is none, not a valid one"
        );
        assert!(z.accepts(&ffff_none, 1));
        // The extra row takes no checksum, and refuses one.
        assert!(!z.accepts(&good, 0));
        // Not R's flows, in either mode: a client or source port it did not seed, another
        // service port or VIP, a client outside 172.16.0.0/16.
        for (src, dst) in [
            (("192.0.2.100", 80), ("172.16.0.11", 1024)),
            (("192.0.2.100", 80), ("172.16.0.0", 1024)),
            (("192.0.2.100", 80), ("172.16.0.1", 1027)),
            (("192.0.2.100", 80), ("172.16.0.1", 1023)),
            (("192.0.2.100", 81), ("172.16.0.1", 1024)),
            (("192.0.2.101", 80), ("172.16.0.1", 1024)),
            (("192.0.2.100", 80), ("172.17.0.1", 1024)),
        ] {
            let f = frame4(src, dst, true);
            assert!(smoltcp_valid4(&f) && !e.accepts(&f, 0), "{src:?} → {dst:?}");
            assert!(!z.accepts(&frame4(src, dst, false), 0), "{src:?} → {dst:?}");
        }
        let to81 = frame4(("10.1.1.1", 40000), ("10.1.0.11", 81), true);
        assert!(!e.accepts(&to81, 1));
        // The payload damaged (the sum too), or not R's (two words swapped: the sum holds).
        for at in [45, 52, 59] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(!smoltcp_valid4(&bad) && !e.accepts(&bad, 0), "byte {at}");
        }
        let mut unmarked = good.clone();
        unmarked.swap(42, 44);
        unmarked.swap(43, 45);
        assert!(
            smoltcp_valid4(&unmarked),
            "two words swapped: the sum holds"
        );
        assert!(!e.accepts(&unmarked, 0));
        let mut zero_unmarked = zero.clone();
        zero_unmarked[42] ^= 1;
        assert!(!z.accepts(&zero_unmarked, 0));
        // Not UDP, not IPv4, IP options, short.
        let mut tcp = good.clone();
        tcp[23] = 6;
        assert!(!e.accepts(&tcp, 0));
        let mut v6 = good.clone();
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(!e.accepts(&v6, 0));
        let mut ihl6 = good.clone();
        ihl6[14] = 0x46;
        assert!(!e.accepts(&ihl6, 0));
        let mut short = good;
        short.truncate(LEN4 - 1);
        assert!(!e.accepts(&short, 0));
    }
}
