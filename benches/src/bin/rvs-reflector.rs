//! The throughput harness's reflector (R): two `net_vhost` ports, the client side and the
//! server side of a device under test (DUT) that connects to them with virtio_user. R seeds
//! UDP flows client → VIP on the client side, then answers every IPv4 frame on the port it
//! came in on with its 5-tuple swapped: the client side's VIP → client replies become
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
//! With an IPv6 `--vip` (FullNAT66), R seeds IPv6 UDP frames, each with a valid UDP checksum
//! (IPv6 requires one) and a marker in its payload, and sets the hop limit back to 64 instead
//! of the TTL. It reflects only the frames of its own flows: on the client side UDP from
//! VIP:vport to one of the seeded clients and ports, on the server side UDP to port vport
//! (LIP → RIP through rvsd, client → VIP through testpmd io); both with R's payload, the UDP
//! length it sent and a UDP checksum that verifies. Any other frame (a wrong checksum from a
//! broken rewrite, an unknown tuple, neighbour discovery) is dropped and counted in `other`.
//! Swapping the addresses and ports leaves the checksum as it is (the pseudo-header's sum does
//! not depend on their order), so what R sends back stays valid.
//!
//! ```text
//! rvs-reflector --wan SOCK --lan SOCK --peer-mac MAC --vip IP --vport N [--flows N]
//!               [--inflight N] [--warmup S] [--seconds S] [--core N] [--prefix P] [--dr]
//! ```
//!
//! `--inflight` frames circulate, each its own flow: client `i % flows` (host `1 + i % flows`
//! of 172.16.0.0/16, or of 2001:db8:99::/64 for an IPv6 VIP), source port `1024 + i / flows`.
//!
//! `--sessions N` first sends N frames of N other flows (clients in 172.20.0.0/14, or
//! 2001:db8:99:20::/64 for an IPv6 VIP, one frame each, taken back and not reflected), so that
//! the DUT's session table holds N more sessions while the circulating frames are measured. It
//! prints `warm sent=.. back=..`.
//!
//! It prints `mac wan ..`, `mac lan ..` and `ready` once its ports exist, waits for a line on
//! standard input (the DUT is up), seeds, forwards for warmup + seconds and prints
//! `result rx_pps=.. wan_pps=.. lan_pps=.. other=..`: frames of its flows received per second
//! over the measured seconds (every one of them crossed the DUT once), and how many frames it
//! received in all that it did not reflect (IPv4 mode: any that is not IPv4).

use arrayvec::ArrayVec;
use dataplane::checksum::{checksum, fold, ipv6_l4, sum_bytes};
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
}

fn parse_args() -> Result<Args, String> {
    let (mut flows, mut inflight, mut warmup, mut seconds) = (1024, 512, 2.0, 5.0);
    let (mut dr, mut sessions) = (false, 0);
    let c = Common::parse("rvs-reflector", &["--dr"], |flag, v| {
        let v = v.unwrap_or_default();
        match flag {
            "--dr" => dr = true,
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
    Ok(Args {
        c,
        flows,
        inflight,
        warmup,
        seconds,
        dr,
        sessions,
    })
}

/// The IPv6 clients of the circulating flows: host `1..=flows` of this /64.
const CLIENTS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0);

/// The IPv6 clients of the `--sessions` warm-up: host `j % 2^18` of this /64.
const WARM6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0x20, 0, 0, 0, 0);

/// Every seed's UDP payload (18 bytes: a 60-byte IPv4 frame); the IPv6 ones start with
/// [`MARK`], which R checks on every IPv6 frame it receives.
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

/// A UDP frame client:sport → VIP:vport, from R's client side to the DUT's.
fn udp_frame(m: &mut Mbuf, client: Ipv4Addr, sport: u16, a: &Args, src_mac: [u8; 6]) -> bool {
    const LEN: usize = 14 + 20 + 8 + PAYLOAD;
    let IpAddr::V4(vip) = a.c.vip else {
        return false;
    };
    if !m.append(LEN) {
        return false;
    }
    let f = m.data_mut();
    f.fill(0);
    f[0..6].copy_from_slice(&a.c.peer_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((LEN - 14) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&client.octets());
    ip[16..20].copy_from_slice(&vip.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&a.c.vport.to_be_bytes());
    udp[4..6].copy_from_slice(&((LEN - 34) as u16).to_be_bytes());
    // UDP checksum 0: none (IPv4).
    true
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
/// were sent and how many came back.
fn warm_up(
    pool: &Mempool,
    queues: &mut [dpdk::Queue; 2],
    a: &Args,
    src: [u8; 6],
) -> Result<(u32, u64), String> {
    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let (mut sent, mut back) = (0u32, 0u64);
    let mut drain = |queues: &mut [dpdk::Queue; 2], burst: &mut ArrayVec<Mbuf, BURST>| {
        let mut n = 0;
        for q in queues.iter_mut() {
            burst.clear();
            n += q.rx_burst(burst);
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
    Ok((sent, back))
}

fn run(a: &Args) -> Result<(), String> {
    let peer = a.c.open("rvs-reflector")?;
    let mut out = std::io::stdout().lock();
    let mut queues = peer.handshake(&mut out)?;
    let (pool, ports) = (&peer.pool, &peer.ports);

    let src = ports[0].mac();
    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    if a.sessions > 0 {
        let (sent, back) = warm_up(pool, &mut queues, a, src)?;
        let _ = writeln!(out, "warm sent={sent} back={back}");
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
    let expect6 = match a.c.vip {
        IpAddr::V6(vip) => Some(Expect6::new(vip, a.c.vport, a.flows, a.inflight)),
        IpAddr::V4(_) => None,
    };
    loop {
        for side in 0..2 {
            burst.clear();
            let n = queues[side].rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            let dr_resend = a.dr && side == 1;
            burst.retain(|m| {
                let ok = if dr_resend {
                    resend(m.data_mut(), dut_wan, r_wan)
                } else if let Some(e) = &expect6 {
                    e.accepts(m.data(), side) && reflect6(m.data_mut())
                } else {
                    reflect(m.data_mut())
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
}
