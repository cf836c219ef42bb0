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
//! The client side alone keeps state: which flows completed (a bit per flow id, the flow id
//! being the client address and port).
//!
//! Every segment is real (valid IPv4 and TCP checksums, its own 5-tuple) and cheap: each of
//! the five kinds (SYN, SYN/ACK, ACK, data, FIN/ACK) is a prebuilt frame with the sums of its
//! fixed bytes precomputed, so a segment is a copy of 54 or 118 bytes, the MACs, addresses,
//! ports and sequence numbers stored, and two checksums finished from the stored words. An
//! answer is written over the frame it answers (no allocation); a frame that needs no answer
//! is kept to carry a later one (a second answer, a new SYN); the pool is the last resort.
//! Frames go out in whole bursts per side, at most once per side per round.
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
//! does not count. It prints `trial rate=.. offered=.. started=.. completed=.. failed=..
//! no_mbuf=.. tx_full=.. busy=..%` per trial (`tx_full`: frames the DUT's rings refused, over
//! the run so far; `busy`: the share of the trial R spent in rounds that moved frames, the
//! rest it polled empty rings) and `result best=..` (connections per second; 0 if no trial
//! passed).

use arrayvec::ArrayVec;
use dataplane::checksum::{fold, pseudo_header_sum, sum_bytes};
use dpdk::mbuf::ol;
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

/// The TX offload requests an mbuf can carry.
const TX_OFFLOADS: u64 = ol::TX_IPV4 | ol::TX_IP_CKSUM | ol::TX_TCP_CKSUM | ol::TX_UDP_CKSUM;

/// Frame bytes before the TCP payload: Ethernet, IPv4 and TCP headers, no options.
const HDRS: usize = 14 + 20 + 20;
/// The longest frame R sends (a data segment).
const MAX_FRAME: usize = HDRS + PAYLOAD as usize;

/// The segment kinds R sends: each is a prebuilt frame (a [`Template`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// SYN, client → VIP.
    Syn,
    /// SYN/ACK, server → client.
    SynAck,
    /// A bare ACK (the client's third segment, the server's last).
    Ack,
    /// PSH/ACK with 64 bytes of payload (request or response).
    Data,
    /// FIN/ACK.
    FinAck,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Syn, Kind::SynAck, Kind::Ack, Kind::Data, Kind::FinAck];

    fn flags(self) -> u8 {
        match self {
            Kind::Syn => SYN,
            Kind::SynAck => SYN | ACK,
            Kind::Ack => ACK,
            Kind::Data => PSH | ACK,
            Kind::FinAck => FIN | ACK,
        }
    }

    fn payload(self) -> u32 {
        if self == Kind::Data {
            PAYLOAD
        } else {
            0
        }
    }

    fn frame_len(self) -> usize {
        HDRS + self.payload() as usize
    }
}

/// One segment for R to send: its kind and the fields that vary per flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Out {
    kind: Kind,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
}

impl Out {
    /// The segment as the other end receives it.
    #[cfg(test)]
    fn as_seg(&self) -> Seg {
        Seg {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            seq: self.seq,
            ack: self.ack,
            flags: self.kind.flags(),
            payload: self.kind.payload(),
        }
    }
}

/// A segment kind's frame, built once: every byte but the MACs, addresses, ports, sequence
/// numbers and the two checksums, with the ones' complement sums of its fixed parts (the
/// pseudo-header's protocol and length included), so that writing a segment is a copy, a few
/// stores and two short sums.
#[derive(Clone, Debug)]
struct Template {
    bytes: [u8; MAX_FRAME],
    len: usize,
    /// Sum of the IPv4 header with its addresses and checksum zero.
    ip_sum: u32,
    /// Sum of the TCP header and payload with ports, sequence numbers and checksum zero,
    /// plus the pseudo-header's protocol and TCP length.
    tcp_sum: u32,
}

impl Template {
    fn new(kind: Kind) -> Template {
        let len = kind.frame_len();
        let mut b = [0u8; MAX_FRAME];
        b[12..14].copy_from_slice(&[0x08, 0x00]);
        b[14..34].copy_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        b[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        b[34 + 12] = 5 << 4;
        b[34 + 13] = kind.flags();
        b[34 + 14..34 + 16].copy_from_slice(&65535u16.to_be_bytes());
        b[HDRS..len].fill(b'r');
        let ip_sum = u32::from(fold(sum_bytes(0, &b[14..34])));
        let tcp_sum = u32::from(fold(sum_bytes(
            pseudo_header_sum(0, 0, 6, (len - 34) as u16),
            &b[34..len],
        )));
        Template {
            bytes: b,
            len,
            ip_sum,
            tcp_sum,
        }
    }
}

/// The five templates, indexed by [`Kind`].
#[derive(Clone, Debug)]
struct Templates([Template; 5]);

impl Templates {
    fn new() -> Templates {
        Templates(Kind::ALL.map(Template::new))
    }

    /// Writes `o` into `f` (exactly its kind's frame length) as a frame dst_mac ← src_mac
    /// with valid IPv4 and TCP checksums; false, writing nothing, if `f` has another length.
    #[inline]
    fn write(&self, f: &mut [u8], dst_mac: [u8; 6], src_mac: [u8; 6], o: &Out) -> bool {
        let t = &self.0[o.kind as usize];
        if f.len() != t.len {
            return false;
        }
        f.copy_from_slice(&t.bytes[..t.len]);
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        let (src, dst) = (u32::from(o.src), u32::from(o.dst));
        f[26..30].copy_from_slice(&src.to_be_bytes());
        f[30..34].copy_from_slice(&dst.to_be_bytes());
        let addrs = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
        f[24..26].copy_from_slice(&(!fold(t.ip_sum + addrs)).to_be_bytes());
        f[34..36].copy_from_slice(&o.sport.to_be_bytes());
        f[36..38].copy_from_slice(&o.dport.to_be_bytes());
        f[38..42].copy_from_slice(&o.seq.to_be_bytes());
        f[42..46].copy_from_slice(&o.ack.to_be_bytes());
        let tcp = t.tcp_sum
            + addrs
            + u32::from(o.sport)
            + u32::from(o.dport)
            + (o.seq >> 16)
            + (o.seq & 0xffff)
            + (o.ack >> 16)
            + (o.ack & 0xffff);
        f[50..52].copy_from_slice(&(!fold(tcp)).to_be_bytes());
        true
    }

    /// Makes `m` (any mbuf: a fresh one or a received frame) the frame of `o`.
    #[inline]
    fn build(&self, m: &mut Mbuf, dst_mac: [u8; 6], src_mac: [u8; 6], o: &Out) -> bool {
        let len = o.kind.frame_len();
        let cur = m.pkt_len() as usize;
        if cur > len {
            m.truncate(len);
        } else if cur < len && !m.append(len - cur) {
            return false;
        }
        // A received frame may carry checksum requests for its sender (net_vhost's legacy
        // offload flags): R's checksums are whole, nothing is left to finish.
        if m.ol_flags() & TX_OFFLOADS != 0 {
            m.set_tx_offload(0, 0, 0);
        }
        m.is_contiguous() && self.write(m.data_mut(), dst_mac, src_mac, o)
    }
}

/// The answer's addressing: `rx` with ends swapped.
#[inline]
fn swapped(rx: &Seg, kind: Kind, seq: u32, ack: u32) -> Out {
    Out {
        kind,
        src: rx.dst,
        dst: rx.src,
        sport: rx.dport,
        dport: rx.sport,
        seq,
        ack,
    }
}

/// The server's answers to a segment from the client (through the DUT).
#[inline]
fn server_answers(rx: &Seg) -> ArrayVec<Out, 2> {
    let mut out = ArrayVec::new();
    let f = rx.flags;
    if f & RST != 0 {
    } else if f & SYN != 0 && f & ACK == 0 {
        out.push(swapped(rx, Kind::SynAck, ISN_S, rx.seq.wrapping_add(1)));
    } else if rx.payload > 0 {
        let ack = rx.seq.wrapping_add(rx.payload);
        out.push(swapped(rx, Kind::Data, rx.ack, ack));
        out.push(swapped(rx, Kind::FinAck, rx.ack.wrapping_add(PAYLOAD), ack));
    } else if f & FIN != 0 {
        out.push(swapped(rx, Kind::Ack, rx.ack, rx.seq.wrapping_add(1)));
    }
    out
}

/// What the client does with a segment from the server (through the DUT).
#[derive(Debug, PartialEq, Eq)]
enum ClientStep {
    /// Answers with these segments.
    Send(ArrayVec<Out, 2>),
    /// The flow's last ACK: it is complete.
    Complete,
    /// Nothing to do (the response data, or a stray segment).
    Nothing,
}

#[inline]
fn client_step(rx: &Seg) -> ClientStep {
    let f = rx.flags;
    let mut out = ArrayVec::new();
    if f & RST != 0 {
        ClientStep::Nothing
    } else if f & (SYN | ACK) == SYN | ACK {
        let ack = rx.seq.wrapping_add(1);
        out.push(swapped(rx, Kind::Ack, rx.ack, ack));
        out.push(swapped(rx, Kind::Data, rx.ack, ack));
        ClientStep::Send(out)
    } else if f & FIN != 0 {
        let ack = rx.seq.wrapping_add(rx.payload + 1);
        out.push(swapped(rx, Kind::FinAck, rx.ack, ack));
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
    /// The fraction of the trial R spent in loop rounds that moved frames (the rest it
    /// polled empty rings): how near R itself is to its limit.
    busy: f64,
    /// The longest round: R away from its rings that long (preempted, mostly).
    stall: Duration,
}

/// Received mbufs kept to carry later segments (a second answer, a SYN) instead of going
/// back to the pool: about as many frames need no answer as need a second one.
const SPARES: usize = 256;
/// Most bursts taken from a side per round. One a round would let a side's ring fill: each
/// frame from the server side can ask for two from the client side, and after R was
/// preempted the SYNs due meanwhile come on top; a ring drained as it fills does not overflow.
const RX_BURSTS: usize = 8;

struct Gen<'a> {
    a: &'a Args,
    pool: &'a Mempool,
    queues: [Queue; 2],
    macs: [[u8; 6]; 2],
    tpl: Templates,
    /// Frames to send on each side, sent when a burst is full and at the end of each round.
    out: [ArrayVec<Mbuf, BURST>; 2],
    spares: Vec<Mbuf>,
    next_flow: u64,
    /// One bit per flow: completed.
    done: Vec<u64>,
    /// The current trial's flows: [lo, next_flow); completions counted in `completed`.
    lo: u64,
    completed: u64,
    no_mbuf: u64,
    tx_full: u64,
}

impl Gen<'_> {
    fn send(&mut self, side: usize) {
        let out = &mut self.out[side];
        self.queues[side].tx_burst(out);
        self.tx_full += out.len() as u64;
        out.clear();
    }

    /// An mbuf for a segment: `reuse` (the frame it answers) if there is one, else a spare,
    /// else a fresh one from the pool.
    #[inline]
    fn mbuf(&mut self, reuse: &mut Option<Mbuf>) -> Option<Mbuf> {
        let m = reuse
            .take()
            .or_else(|| self.spares.pop())
            .or_else(|| self.pool.alloc());
        if m.is_none() {
            self.no_mbuf += 1;
        }
        m
    }

    /// Builds `o` in `m` and queues it on `side` toward `dst_mac`, sending the burst when
    /// it is full.
    #[inline]
    fn push(&mut self, side: usize, mut m: Mbuf, dst_mac: [u8; 6], o: &Out) {
        if !self.tpl.build(&mut m, dst_mac, self.macs[side], o) {
            return;
        }
        self.out[side].push(m);
        if self.out[side].is_full() {
            self.send(side);
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

    /// Answers what waits on both sides, up to [`RX_BURSTS`] bursts a side, each answer
    /// written over the frame it answers where it can; returns how many frames arrived.
    fn poll(&mut self, rx: &mut ArrayVec<Mbuf, BURST>) -> usize {
        let mut got = 0;
        for side in 0..2 {
            for _ in 0..RX_BURSTS {
                rx.clear();
                let n = self.queues[side].rx_burst(rx);
                got += n;
                self.answer(side, rx);
                if n < BURST {
                    break;
                }
            }
        }
        got
    }

    /// Answers the frames of `rx`, received on `side`.
    #[inline]
    fn answer(&mut self, side: usize, rx: &mut ArrayVec<Mbuf, BURST>) {
        for m in rx.drain(..) {
            let Some(r) = parse(m.data()) else {
                continue;
            };
            let answers = if side == 1 {
                server_answers(&r.seg)
            } else {
                match client_step(&r.seg) {
                    ClientStep::Send(segs) => segs,
                    ClientStep::Complete => {
                        if let Some(n) = flow_of(r.seg.dst, r.seg.dport) {
                            self.complete(n);
                        }
                        ArrayVec::new()
                    }
                    ClientStep::Nothing => ArrayVec::new(),
                }
            };
            let mut reuse = Some(m);
            for o in &answers {
                let Some(m) = self.mbuf(&mut reuse) else {
                    break;
                };
                self.push(side, m, r.src_mac, o);
            }
            if let Some(m) = reuse {
                if self.spares.len() < SPARES {
                    self.spares.push(m);
                }
            }
        }
    }

    /// Opens flows at `rate` per second for `seconds`, then answers for the grace period.
    fn trial(&mut self, rate: f64, seconds: f64) -> Trial {
        let mut rx = ArrayVec::new();
        self.lo = self.next_flow;
        self.completed = 0;
        let start = Instant::now();
        let open = Duration::from_secs_f64(seconds);
        let end = open + Duration::from_secs_f64(self.a.grace);
        let mut opening = true;
        let (mut busy, mut last, mut worked) = (Duration::ZERO, Duration::ZERO, false);
        let mut stall = Duration::ZERO;
        loop {
            let t = start.elapsed();
            if worked {
                busy += t - last;
            }
            stall = stall.max(t - last);
            last = t;
            if opening && t >= open {
                opening = false;
            }
            let mut n = 0;
            if opening {
                let due = self.lo + (rate * t.as_secs_f64()) as u64;
                n = due
                    .saturating_sub(self.next_flow)
                    .min(BURST as u64)
                    .min(MAX_FLOWS - self.next_flow);
                for _ in 0..n {
                    let (client, sport) = flow_addr(self.next_flow);
                    let syn = Out {
                        kind: Kind::Syn,
                        src: client,
                        dst: self.a.vip,
                        sport,
                        dport: self.a.c.vport,
                        seq: ISN_C,
                        ack: 0,
                    };
                    self.next_flow += 1;
                    let Some(m) = self.mbuf(&mut None) else {
                        continue;
                    };
                    self.push(0, m, self.a.c.peer_mac, &syn);
                }
            } else if t >= end {
                break;
            }
            let got = self.poll(&mut rx);
            self.send(0);
            self.send(1);
            worked = n > 0 || got > 0;
        }
        let started = self.next_flow - self.lo;
        Trial {
            started,
            completed: self.completed,
            offered: started as f64 / seconds,
            busy: busy.as_secs_f64() / start.elapsed().as_secs_f64(),
            stall,
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
        tpl: Templates::new(),
        out: [ArrayVec::new(), ArrayVec::new()],
        spares: Vec::with_capacity(SPARES),
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
            "trial rate={rate:.0} offered={:.0} started={} completed={} failed={failed} no_mbuf={} tx_full={} busy={:.0}% stall={:.1}ms",
            t.offered, t.started, t.completed, g.no_mbuf, g.tx_full, 100.0 * t.busy,
            1e3 * t.stall.as_secs_f64()
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
    use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, TcpPacket};

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
        let syn = Out {
            kind: Kind::Syn,
            src: client,
            dst: Ipv4Addr::new(192, 0, 2, 100),
            sport,
            dport: 80,
            seq: ISN_C,
            ack: 0,
        };
        let mut to_server = vec![syn.as_seg()];
        let mut complete = false;
        let mut exchanged = 1;
        for _ in 0..10 {
            let to_client: Vec<Seg> = to_server
                .iter()
                .flat_map(server_answers)
                .map(|o| o.as_seg())
                .collect();
            exchanged += to_client.len();
            to_server.clear();
            for s in &to_client {
                match client_step(s) {
                    ClientStep::Send(v) => to_server.extend(v.iter().map(Out::as_seg)),
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

    /// Segments of every kind with fields that carry in the ones' complement sums.
    fn outs() -> Vec<Out> {
        let mut v = Vec::new();
        for kind in Kind::ALL {
            for (src, dst, sport, dport, seq, ack) in [
                ([172, 16, 0, 1], [192, 0, 2, 100], 1024, 80, ISN_C, 0),
                ([255; 4], [255; 4], 0xffff, 0xffff, u32::MAX, u32::MAX),
                (
                    [10, 1, 0, 11],
                    [10, 1, 3, 201],
                    80,
                    65_023,
                    0x2000_0001,
                    0x1000_0042,
                ),
                ([0, 0, 0, 1], [0, 0, 0, 0], 1, 0, 0, 1),
                (
                    [172, 31, 255, 254],
                    [10, 255, 0, 255],
                    0xff00,
                    0x00ff,
                    0xfffe_0001,
                    0x8000_7fff,
                ),
            ] {
                v.push(Out {
                    kind,
                    src: Ipv4Addr::from(src),
                    dst: Ipv4Addr::from(dst),
                    sport,
                    dport,
                    seq,
                    ack,
                });
            }
        }
        v
    }

    /// Every kind of segment, written by its template over a dirty buffer (as R writes over
    /// the frame it answers), is a valid frame by smoltcp's reading: IPv4 and TCP checksums,
    /// lengths, flags, payload; and parses back to what was asked.
    #[test]
    fn templates_build_valid_segments() {
        let tpl = Templates::new();
        let (dst_mac, src_mac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        for o in outs() {
            let len = o.kind.frame_len();
            for dirt in [0x00, 0xa5, 0xff] {
                let mut f = vec![dirt; len];
                assert!(tpl.write(&mut f, dst_mac, src_mac, &o), "{o:?}");
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                assert_eq!(eth.dst_addr().0, dst_mac);
                assert_eq!(eth.src_addr().0, src_mac);
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum(), "IPv4 checksum of {o:?}");
                assert_eq!(usize::from(ip.total_len()), len - 14);
                assert_eq!((ip.src_addr(), ip.dst_addr()), (o.src, o.dst));
                assert_eq!(ip.hop_limit(), 64);
                let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(
                    tcp.verify_checksum(&IpAddress::Ipv4(o.src), &IpAddress::Ipv4(o.dst)),
                    "TCP checksum of {o:?}"
                );
                assert_eq!((tcp.src_port(), tcp.dst_port()), (o.sport, o.dport));
                assert_eq!(tcp.seq_number().0 as u32, o.seq);
                assert_eq!(tcp.ack_number().0 as u32, o.ack);
                assert_eq!(tcp.syn(), o.kind.flags() & SYN != 0);
                assert_eq!(tcp.ack(), o.kind.flags() & ACK != 0);
                assert_eq!(tcp.fin(), o.kind.flags() & FIN != 0);
                assert_eq!(tcp.psh(), o.kind.flags() & PSH != 0);
                assert!(!tcp.rst());
                assert_eq!(tcp.payload().len() as u32, o.kind.payload());
                let rx = parse(&f).unwrap();
                assert_eq!(rx.seg, o.as_seg());
                assert_eq!(rx.src_mac, src_mac);
            }
        }
    }

    /// A changed field after the write breaks the checksum it is under: the sums cover every
    /// field (a template that left one out of its sums would pass only by chance).
    #[test]
    fn every_varying_field_is_under_its_checksum() {
        let tpl = Templates::new();
        let o = outs()[17];
        let mut f = vec![0u8; o.kind.frame_len()];
        assert!(tpl.write(&mut f, [2; 6], [4; 6], &o));
        let verifies = |f: &[u8]| {
            let ip = Ipv4Packet::new_unchecked(&f[14..]);
            let tcp = TcpPacket::new_unchecked(ip.payload());
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            (
                ip.verify_checksum(),
                tcp.verify_checksum(&IpAddress::Ipv4(s), &IpAddress::Ipv4(d)),
            )
        };
        assert_eq!(verifies(&f), (true, true));
        // Addresses: under both checksums. Ports, sequence numbers, flags, payload: TCP's.
        for (at, both) in [
            (27, true),
            (33, true),
            (35, false),
            (36, false),
            (40, false),
        ] {
            let mut g = f.clone();
            g[at] ^= 0x10;
            let (ip, tcp) = verifies(&g);
            assert!(!tcp, "byte {at}");
            assert_eq!(ip, !both, "byte {at}");
        }
        for at in [45, 47, 60] {
            let mut g = f.clone();
            g[at] ^= 0x01;
            assert_eq!(verifies(&g), (true, false), "byte {at}");
        }
    }

    #[test]
    fn a_buffer_of_another_length_is_refused() {
        let tpl = Templates::new();
        for o in outs() {
            let len = o.kind.frame_len();
            for wrong in [len - 1, len + 1] {
                let mut f = vec![7u8; wrong];
                assert!(!tpl.write(&mut f, [0; 6], [0; 6], &o));
                assert!(f.iter().all(|&b| b == 7), "nothing written");
            }
        }
    }

    #[test]
    fn parse_refuses_what_is_not_ipv4_tcp() {
        let tpl = Templates::new();
        let o = outs()[15];
        let mut f = vec![0u8; o.kind.frame_len()];
        assert!(tpl.write(&mut f, [2; 6], [4; 6], &o));
        assert!(parse(&f).is_some());
        assert!(parse(&f[..50]).is_none());
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(parse(&arp).is_none());
        let mut udp = f.clone();
        udp[23] = 17;
        assert!(parse(&udp).is_none());
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
