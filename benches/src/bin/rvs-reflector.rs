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
//! ```text
//! rvs-reflector --wan SOCK --lan SOCK --peer-mac MAC --vip IP --vport N [--flows N]
//!               [--inflight N] [--warmup S] [--seconds S] [--core N] [--prefix P] [--dr]
//! ```
//!
//! `--inflight` frames circulate, each its own flow: client `i % flows` (in 172.16.0.0/16),
//! source port `1024 + i / flows`.
//!
//! `--sessions N` first sends N frames of N other flows (clients in 172.20.0.0/14, one frame
//! each, taken back and not reflected), so that the DUT's session table holds N more
//! sessions while the circulating frames are measured. It prints `warm sent=.. back=..`.
//!
//! It prints `mac wan ..`, `mac lan ..` and `ready` once its ports exist, waits for a line on
//! standard input (the DUT is up), seeds, forwards for warmup + seconds and prints
//! `result rx_pps=.. wan_pps=.. lan_pps=.. other=..`: frames received per second over the
//! measured seconds (every one of them crossed the DUT once).

use arrayvec::ArrayVec;
use dataplane::checksum::checksum;
use dpdk::{Mbuf, Mempool, BURST};
use rvs_benches::peer::{is_ipv4, reflect, restore_ttl, value, Common};
use std::io::Write;
use std::net::Ipv4Addr;
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

/// The seed frame `i`: UDP from client `i % flows` (172.16.0.0/16) to the VIP.
fn seed(m: &mut Mbuf, i: u32, a: &Args, src_mac: [u8; 6]) -> bool {
    let host = 1 + i % a.flows;
    let client = Ipv4Addr::new(172, 16, (host >> 8) as u8, host as u8);
    udp_frame(m, client, 1024 + (i / a.flows) as u16, a, src_mac)
}

/// The warm-up frame `j`: one frame of its own flow, client 172.20.0.0 + j % 2^18.
fn warm(m: &mut Mbuf, j: u32, a: &Args, src_mac: [u8; 6]) -> bool {
    let host = j % (1 << 18);
    let client = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 20, 0, 0)) + host);
    udp_frame(m, client, 2000 + (j >> 18) as u16, a, src_mac)
}

/// A UDP frame client:sport → VIP:vport, from R's client side to the DUT's.
fn udp_frame(m: &mut Mbuf, client: Ipv4Addr, sport: u16, a: &Args, src_mac: [u8; 6]) -> bool {
    const LEN: usize = 14 + 20 + 8 + 18;
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
    ip[16..20].copy_from_slice(&a.c.vip.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&a.c.vport.to_be_bytes());
    udp[4..6].copy_from_slice(&((LEN - 34) as u16).to_be_bytes());
    // UDP checksum 0: none (IPv4).
    true
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
    loop {
        for side in 0..2 {
            burst.clear();
            let n = queues[side].rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            rx[side] += n as u64;
            let dr_resend = a.dr && side == 1;
            burst.retain(|m| {
                let ok = if dr_resend {
                    resend(m.data_mut(), dut_wan, r_wan)
                } else {
                    reflect(m.data_mut())
                };
                other += u64::from(!ok);
                ok
            });
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
    use super::reflect;

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
}
