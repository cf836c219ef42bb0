//! The connection-rate generator of the harness (benches/connrate): a DPDK program with two
//! `net_vhost` ports, the client side and the server side of a device under test (DUT) that
//! connects to them with virtio_user. It plays both ends of short TCP connections, each with
//! its own 5-tuple (client 172.16.0.0/12 + port, to VIP:vport):
//!
//! ```text
//!   client                          server (whatever address the DUT sends it to)
//!   SYN                  ──────►
//!                        ◄──────    SYN/ACK
//!   ACK, data (64 B)     ──────►
//!                        ◄──────    data (64 B), FIN/ACK
//!   FIN/ACK              ──────►
//!                        ◄──────    ACK           → the flow is complete
//! ```
//!
//! Both ends are stateless: every answer is derived from the segment it answers (addresses,
//! ports and MACs swapped, sequence numbers from the segment), so the server side works
//! behind FullNAT's LIP:lport as well as behind a plain forwarder (the testpmd io baseline).
//! The client side alone keeps state: which flows completed.
//!
//! It searches for the highest rate of new connections with fewer than 0.1 % failed flows:
//! trials of `--seconds` each open flows at a paced rate, then wait `--grace` seconds for the
//! last ones; a flow that has not completed by then failed. The rate doubles while trials
//! pass, then bisects between the best pass and the lowest failure, for at most `--trials`.
//!
//! ```text
//! rvs-connrate --wan SOCK --lan SOCK --peer-mac MAC --vip IP --vport N [--start RATE]
//!              [--warmup S] [--seconds S] [--grace S] [--trials N] [--core N] [--prefix P]
//! ```
//!
//! A warm-up trial (`--warmup` seconds, default 1, at a quarter of `--start`) comes first and
//! does not count. It prints `trial rate=.. offered=.. started=.. completed=.. failed=..` per trial and
//! `result best=..` (connections per second; 0 if no trial passed).

use arrayvec::ArrayVec;
use dataplane::checksum::{fold, pseudo_header_sum, sum_bytes};
use dpdk::{Mbuf, Mempool, Queue, BURST};
use rvs_benches::peer::{value, Common};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Client and server initial sequence numbers.
const ISN_C: u32 = 0x1000_0000;
const ISN_S: u32 = 0x2000_0000;
/// Request and response payload bytes.
const PAYLOAD: u32 = 64;
/// Flows per client address (source ports 1024..1024 + this).
const PORTS: u32 = 64_000;
/// Most flows in one run (the completion bitmap).
const MAX_FLOWS: u64 = 1 << 26;
/// A trial passes with fewer failed flows than this fraction.
const MAX_FAILED: f64 = 0.001;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

struct Args {
    c: Common,
    vip: Ipv4Addr,
    start: f64,
    warmup: f64,
    seconds: f64,
    grace: f64,
    trials: u32,
}

fn parse_args() -> Result<Args, String> {
    let (mut start, mut warmup, mut seconds, mut grace, mut trials) = (20_000.0, 1.0, 2.0, 0.5, 10);
    let c = Common::parse("rvs-connrate", &[], |flag, v| {
        let v = v.unwrap_or_default();
        match flag {
            "--start" => start = value(flag, v, "a rate")?,
            "--warmup" => warmup = value(flag, v, "seconds")?,
            "--seconds" => seconds = value(flag, v, "seconds")?,
            "--grace" => grace = value(flag, v, "seconds")?,
            "--trials" => trials = value(flag, v, "a count")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let IpAddr::V4(vip) = c.vip else {
        return Err(format!("--vip {}: rvs-connrate speaks IPv4 only", c.vip));
    };
    if !(start >= 1.0 && seconds > 0.0 && warmup >= 0.0 && grace >= 0.0 && trials > 0) {
        return Err("--start must be at least 1, --seconds positive, --trials at least 1".into());
    }
    Ok(Args {
        c,
        vip,
        start,
        warmup,
        seconds,
        grace,
        trials,
    })
}

/// One TCP segment to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: u32,
}

/// The fields of a received TCP segment the two ends answer from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rx {
    src_mac: [u8; 6],
    seg: Seg,
}

/// Parses an Ethernet/IPv4/TCP frame (no options needed; checksums are the DUT's business).
fn parse(f: &[u8]) -> Option<Rx> {
    if f.len() < 14 + 20 + 20 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 || f[23] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let l4 = 14 + ihl;
    if ihl < 20 || total < ihl + 20 || f.len() < 14 + total {
        return None;
    }
    let t = &f[l4..14 + total];
    let doff = usize::from(t[12] >> 4) * 4;
    if doff < 20 || doff > t.len() {
        return None;
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&f[6..12]);
    Some(Rx {
        src_mac,
        seg: Seg {
            src: Ipv4Addr::from(be32(&f[26..30])),
            dst: Ipv4Addr::from(be32(&f[30..34])),
            sport: u16::from_be_bytes([t[0], t[1]]),
            dport: u16::from_be_bytes([t[2], t[3]]),
            seq: be32(&t[4..8]),
            ack: be32(&t[8..12]),
            flags: t[13],
            payload: (t.len() - doff) as u32,
        },
    })
}

/// Appends `seg` to the empty mbuf `m` as a frame dst_mac ← src_mac.
fn build(m: &mut Mbuf, dst_mac: [u8; 6], src_mac: [u8; 6], seg: &Seg) -> bool {
    m.append(frame_len(seg)) && write_frame(m.data_mut(), dst_mac, src_mac, seg)
}

fn frame_len(seg: &Seg) -> usize {
    14 + 20 + 20 + seg.payload as usize
}

/// Writes `seg` into `f` (exactly its length) as a frame dst_mac ← src_mac with valid IPv4
/// and TCP checksums.
fn write_frame(f: &mut [u8], dst_mac: [u8; 6], src_mac: [u8; 6], seg: &Seg) -> bool {
    let len = frame_len(seg);
    if f.len() != len {
        return false;
    }
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&seg.src.octets());
    ip[16..20].copy_from_slice(&seg.dst.octets());
    let c = !fold(sum_bytes(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut f[34..];
    t[0..2].copy_from_slice(&seg.sport.to_be_bytes());
    t[2..4].copy_from_slice(&seg.dport.to_be_bytes());
    t[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    t[8..12].copy_from_slice(&seg.ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = seg.flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[16..20].fill(0);
    t[20..].fill(b'r');
    let ph = pseudo_header_sum(
        u32::from(seg.src),
        u32::from(seg.dst),
        6,
        (20 + seg.payload) as u16,
    );
    let c = !fold(sum_bytes(ph, t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    true
}

/// The answer's addressing: `rx` with ends swapped.
fn swapped(rx: &Seg, seq: u32, ack: u32, flags: u8, payload: u32) -> Seg {
    Seg {
        src: rx.dst,
        dst: rx.src,
        sport: rx.dport,
        dport: rx.sport,
        seq,
        ack,
        flags,
        payload,
    }
}

/// The server's answers to a segment from the client (through the DUT).
fn server_answers(rx: &Seg) -> ArrayVec<Seg, 2> {
    let mut out = ArrayVec::new();
    let f = rx.flags;
    if f & RST != 0 {
    } else if f & SYN != 0 && f & ACK == 0 {
        out.push(swapped(rx, ISN_S, rx.seq.wrapping_add(1), SYN | ACK, 0));
    } else if rx.payload > 0 {
        let ack = rx.seq.wrapping_add(rx.payload);
        out.push(swapped(rx, rx.ack, ack, PSH | ACK, PAYLOAD));
        out.push(swapped(rx, rx.ack.wrapping_add(PAYLOAD), ack, FIN | ACK, 0));
    } else if f & FIN != 0 {
        out.push(swapped(rx, rx.ack, rx.seq.wrapping_add(1), ACK, 0));
    }
    out
}

/// What the client does with a segment from the server (through the DUT).
#[derive(Debug, PartialEq, Eq)]
enum ClientStep {
    /// Answers with these segments.
    Send(ArrayVec<Seg, 2>),
    /// The flow's last ACK: it is complete.
    Complete,
    /// Nothing to do (the response data, or a stray segment).
    Nothing,
}

fn client_step(rx: &Seg) -> ClientStep {
    let f = rx.flags;
    let mut out = ArrayVec::new();
    if f & RST != 0 {
        ClientStep::Nothing
    } else if f & (SYN | ACK) == SYN | ACK {
        let ack = rx.seq.wrapping_add(1);
        out.push(swapped(rx, rx.ack, ack, ACK, 0));
        out.push(swapped(rx, rx.ack, ack, PSH | ACK, PAYLOAD));
        ClientStep::Send(out)
    } else if f & FIN != 0 {
        let ack = rx.seq.wrapping_add(rx.payload + 1);
        out.push(swapped(rx, rx.ack, ack, FIN | ACK, 0));
        ClientStep::Send(out)
    } else if f == ACK && rx.payload == 0 && rx.ack == ISN_C.wrapping_add(PAYLOAD + 2) {
        ClientStep::Complete
    } else {
        ClientStep::Nothing
    }
}

/// Client address and source port of flow `n`.
fn flow_addr(n: u64) -> (Ipv4Addr, u16) {
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 1));
    (
        Ipv4Addr::from(base + (n / u64::from(PORTS)) as u32),
        1024 + (n % u64::from(PORTS)) as u16,
    )
}

/// The flow number of a client address and port, if it is one of ours.
fn flow_of(client: Ipv4Addr, port: u16) -> Option<u64> {
    let host = u32::from(client).checked_sub(u32::from(Ipv4Addr::new(172, 16, 0, 1)))?;
    let p = port.checked_sub(1024)?;
    (u32::from(p) < PORTS && host < (1 << 20))
        .then(|| u64::from(host) * u64::from(PORTS) + u64::from(p))
}

/// The outcome of one trial.
struct Trial {
    started: u64,
    completed: u64,
    offered: f64,
}

struct Gen<'a> {
    a: &'a Args,
    pool: &'a Mempool,
    queues: [Queue; 2],
    macs: [[u8; 6]; 2],
    next_flow: u64,
    done: Vec<u64>,
    /// The current trial's flows: [lo, next_flow); completions counted in `completed`.
    lo: u64,
    completed: u64,
    no_mbuf: u64,
    tx_full: u64,
}

impl Gen<'_> {
    fn send(&mut self, side: usize, out: &mut ArrayVec<Mbuf, BURST>) {
        let n = out.len();
        self.queues[side].tx_burst(out);
        self.tx_full += out.len() as u64;
        debug_assert!(out.len() <= n);
        out.clear();
    }

    /// Queues `seg` on `side` toward `dst_mac`, sending the burst when it is full.
    fn push(&mut self, side: usize, out: &mut ArrayVec<Mbuf, BURST>, dst_mac: [u8; 6], seg: &Seg) {
        let Some(mut m) = self.pool.alloc() else {
            self.no_mbuf += 1;
            return;
        };
        if build(&mut m, dst_mac, self.macs[side], seg) {
            out.push(m);
        }
        if out.is_full() {
            self.send(side, out);
        }
    }

    fn complete(&mut self, n: u64) {
        if n >= MAX_FLOWS {
            return;
        }
        let (w, b) = ((n / 64) as usize, n % 64);
        if self.done[w] & (1 << b) == 0 {
            self.done[w] |= 1 << b;
            if n >= self.lo && n < self.next_flow {
                self.completed += 1;
            }
        }
    }

    /// Answers everything waiting on both sides.
    fn poll(&mut self, rx: &mut ArrayVec<Mbuf, BURST>, out: &mut ArrayVec<Mbuf, BURST>) {
        for side in 0..2 {
            rx.clear();
            if self.queues[side].rx_burst(rx) == 0 {
                continue;
            }
            let got: ArrayVec<Rx, BURST> = rx.iter().filter_map(|m| parse(m.data())).collect();
            rx.clear();
            for r in &got {
                if side == 1 {
                    for s in server_answers(&r.seg) {
                        self.push(1, out, r.src_mac, &s);
                    }
                    continue;
                }
                match client_step(&r.seg) {
                    ClientStep::Send(segs) => {
                        for s in segs {
                            self.push(0, out, r.src_mac, &s);
                        }
                    }
                    ClientStep::Complete => {
                        if let Some(n) = flow_of(r.seg.dst, r.seg.dport) {
                            self.complete(n);
                        }
                    }
                    ClientStep::Nothing => {}
                }
            }
            self.send(side, out);
        }
    }

    /// Opens flows at `rate` per second for `seconds`, then answers for the grace period.
    fn trial(&mut self, rate: f64, seconds: f64) -> Trial {
        let mut rx = ArrayVec::new();
        let mut out = ArrayVec::new();
        self.lo = self.next_flow;
        self.completed = 0;
        let start = Instant::now();
        let open = Duration::from_secs_f64(seconds);
        let end = open + Duration::from_secs_f64(self.a.grace);
        let mut opening = true;
        loop {
            let t = start.elapsed();
            if opening && t >= open {
                opening = false;
            }
            if opening {
                let due = self.lo + (rate * t.as_secs_f64()) as u64;
                let n = due.saturating_sub(self.next_flow).min(BURST as u64);
                for _ in 0..n {
                    if self.next_flow >= MAX_FLOWS {
                        break;
                    }
                    let (client, sport) = flow_addr(self.next_flow);
                    let syn = Seg {
                        src: client,
                        dst: self.a.vip,
                        sport,
                        dport: self.a.c.vport,
                        seq: ISN_C,
                        ack: 0,
                        flags: SYN,
                        payload: 0,
                    };
                    self.next_flow += 1;
                    self.push(0, &mut out, self.a.c.peer_mac, &syn);
                }
                self.send(0, &mut out);
            } else if t >= end {
                break;
            }
            self.poll(&mut rx, &mut out);
        }
        let started = self.next_flow - self.lo;
        Trial {
            started,
            completed: self.completed,
            offered: started as f64 / seconds,
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    let peer = a.c.open("rvs-connrate")?;
    let mut out = std::io::stdout().lock();
    let queues = peer.handshake(&mut out)?;
    let macs = [peer.ports[0].mac(), peer.ports[1].mac()];
    let mut g = Gen {
        a,
        pool: &peer.pool,
        queues,
        macs,
        next_flow: 0,
        done: vec![0; (MAX_FLOWS / 64) as usize],
        lo: 0,
        completed: 0,
        no_mbuf: 0,
        tx_full: 0,
    };
    // The DUT's first packets meet cold caches and a worker still starting: a warm-up trial at
    // a quarter of the first rate, not counted.
    if a.warmup > 0.0 {
        let t = g.trial(a.start / 4.0, a.warmup);
        let _ = writeln!(
            out,
            "warmup started={} completed={}",
            t.started, t.completed
        );
    }
    let (mut best, mut pass, mut fail) = (0f64, 0f64, f64::INFINITY);
    let mut rate = a.start;
    for _ in 0..a.trials {
        if g.next_flow + (rate * a.seconds) as u64 > MAX_FLOWS {
            break;
        }
        let t = g.trial(rate, a.seconds);
        let failed = t.started - t.completed;
        let _ = writeln!(
            out,
            "trial rate={rate:.0} offered={:.0} started={} completed={} failed={failed} no_mbuf={} tx_full={}",
            t.offered, t.started, t.completed, g.no_mbuf, g.tx_full
        );
        let _ = out.flush();
        if t.started > 0 && (failed as f64) < MAX_FAILED * t.started as f64 {
            best = best.max(t.offered);
            pass = rate;
            // The generator could not open flows as fast as asked: no point asking for more.
            if t.offered < 0.95 * rate {
                fail = fail.min(rate);
            }
        } else {
            fail = fail.min(rate);
        }
        rate = if fail.is_infinite() {
            rate * 2.0
        } else {
            (pass + fail) / 2.0
        };
        if fail.is_finite() && fail - pass < 0.05 * fail {
            break;
        }
    }
    let _ = writeln!(out, "result best={best:.0}");
    let _ = out.flush();
    drop(g);
    peer.close();
    Ok(())
}

fn main() -> ExitCode {
    rvs_benches::peer::main("rvs-connrate", parse_args, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, payload: u32) -> Seg {
        Seg {
            src: Ipv4Addr::new(10, 1, 1, 1),
            dst: Ipv4Addr::new(10, 1, 0, 11),
            sport: 5000,
            dport: 80,
            seq,
            ack,
            flags,
            payload,
        }
    }

    /// The two ends talk a whole connection to each other, as through a plain forwarder.
    #[test]
    fn a_connection_runs_to_completion() {
        let (client, sport) = flow_addr(70_123);
        assert_eq!(flow_of(client, sport), Some(70_123));
        let syn = Seg {
            src: client,
            dst: Ipv4Addr::new(192, 0, 2, 100),
            sport,
            dport: 80,
            seq: ISN_C,
            ack: 0,
            flags: SYN,
            payload: 0,
        };
        let mut to_server = vec![syn];
        let mut complete = false;
        let mut exchanged = 1;
        for _ in 0..10 {
            let to_client: Vec<Seg> = to_server.iter().flat_map(server_answers).collect();
            exchanged += to_client.len();
            to_server.clear();
            for s in &to_client {
                match client_step(s) {
                    ClientStep::Send(v) => to_server.extend(v),
                    ClientStep::Complete => {
                        assert_eq!(flow_of(s.dst, s.dport), Some(70_123));
                        complete = true;
                    }
                    ClientStep::Nothing => {}
                }
            }
            exchanged += to_server.len();
        }
        assert!(complete);
        assert_eq!(exchanged, 8, "SYN, SYN/ACK, ACK, data, data, FIN, FIN, ACK");
    }

    #[test]
    fn built_frames_parse_back_with_valid_checksums() {
        let s = seg(PSH | ACK, 7, 9, PAYLOAD);
        let mut f = vec![0u8; frame_len(&s)];
        assert!(write_frame(
            &mut f,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            &s
        ));
        assert!(
            !write_frame(&mut f[1..], [0; 6], [0; 6], &s),
            "wrong length"
        );
        assert_eq!(!fold(sum_bytes(0, &f[14..34])), 0, "IPv4 header checksum");
        let ph = pseudo_header_sum(u32::from(s.src), u32::from(s.dst), 6, 20 + PAYLOAD as u16);
        assert_eq!(!fold(sum_bytes(ph, &f[34..])), 0, "TCP checksum");
        let rx = parse(&f).unwrap();
        assert_eq!(rx.seg, s);
        assert_eq!(rx.src_mac, [2, 0, 0, 0, 0, 2]);
        assert!(parse(&f[..50]).is_none());
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(parse(&arp).is_none());
    }

    #[test]
    fn strays_and_resets_get_no_answer() {
        assert!(server_answers(&seg(RST | ACK, 1, 1, 0)).is_empty());
        assert!(server_answers(&seg(ACK, 1, 1, 0)).is_empty());
        assert_eq!(client_step(&seg(RST, 1, 1, 0)), ClientStep::Nothing);
        assert_eq!(client_step(&seg(ACK, 1, 5, 0)), ClientStep::Nothing);
        assert_eq!(flow_of(Ipv4Addr::new(10, 0, 0, 1), 2000), None);
        assert_eq!(flow_of(Ipv4Addr::new(172, 16, 0, 1), 80), None);
    }
}
