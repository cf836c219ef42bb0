//! Fixed packet traces through the in-memory director, shared by the instruction counter
//! (`rvs-icount` under callgrind) and the long allocation proof (`tests/no_alloc_1m.rs`).
//!
//! A trace is a loop of steps. Each step queues one burst of client frames on the WAN port
//! and polls the worker; for the two-way modes (FullNAT, NAT) it then reflects what the
//! worker sent to the real-server side — MACs, addresses and ports swapped, TTL back to 64,
//! as a real server's reply and the throughput harness's reflector would look — into the LAN
//! port and polls again, so both directions of the session are on the measured path. The
//! polls go through a caller-supplied function: the instruction counter counts inside it,
//! the allocation proof arms its allocator inside it.

use crate::peer::{reflect, reflect6};
use crate::{
    client, client6, director, director6, proxy_protocol_director, tcp6_frame, tcp_frame,
    tcp_frame_seq, LAN, VIP, VIP6, WAN, WAN_MAC,
};
use dataplane::buf::PacketBuf;
use dataplane::mem::MemDevice;
use dataplane::worker::Worker;
use sched::ForwardMode;
use std::hint::black_box;

/// Frames per burst (the worker's RX burst).
pub const BURST: usize = 32;
/// Established flows a trace cycles over.
pub const FLOWS: u32 = 4096;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;

/// What a trace sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// FullNAT, established flows, client → RS and RS → client.
    FullNatEstablished,
    /// FullNAT, every frame the SYN of a new flow (schedule, LIP port, insert).
    FullNatNew,
    /// NAT, established flows, both directions.
    NatEstablished,
    /// DR, established flows (one way: replies bypass the director).
    DrEstablished,
    /// FullNAT with a PROXY protocol v2 header, established flows whose header the RS has
    /// acknowledged: both directions shifted by it.
    FullNatProxyEstablished,
    /// FullNAT66: IPv6 clients to IPv6 RSs from an IPv6 LIP, established flows, both ways.
    FullNat6Established,
    /// NAT64: IPv6 clients to IPv4 RSs from IPv4 LIPs, established flows, both ways (each
    /// packet translated).
    Nat64Established,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 7] = [
        Scenario::FullNatEstablished,
        Scenario::FullNatNew,
        Scenario::NatEstablished,
        Scenario::DrEstablished,
        Scenario::FullNatProxyEstablished,
        Scenario::FullNat6Established,
        Scenario::Nat64Established,
    ];

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FullNatEstablished => "fullnat_established",
            Scenario::FullNatNew => "fullnat_new_session",
            Scenario::NatEstablished => "nat_established",
            Scenario::DrEstablished => "dr_established",
            Scenario::FullNatProxyEstablished => "fullnat_proxy_established",
            Scenario::FullNat6Established => "fullnat6_established",
            Scenario::Nat64Established => "nat64_established",
        }
    }

    /// The scenario called `name`.
    pub fn by_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    fn mode(self) -> ForwardMode {
        match self {
            Scenario::FullNatEstablished
            | Scenario::FullNatNew
            | Scenario::FullNatProxyEstablished
            | Scenario::FullNat6Established
            | Scenario::Nat64Established => ForwardMode::FullNat,
            Scenario::NatEstablished => ForwardMode::Nat,
            Scenario::DrEstablished => ForwardMode::Dr,
        }
    }

    fn two_way(self) -> bool {
        matches!(
            self,
            Scenario::FullNatEstablished
                | Scenario::NatEstablished
                | Scenario::FullNatProxyEstablished
                | Scenario::FullNat6Established
                | Scenario::Nat64Established
        )
    }

    /// IPv6 clients.
    fn ipv6(self) -> bool {
        matches!(
            self,
            Scenario::FullNat6Established | Scenario::Nat64Established
        )
    }
}

/// A director and the state of one trace through it.
pub struct Trace {
    /// The worker under test.
    pub worker: Worker<MemDevice>,
    scenario: Scenario,
    /// Client frames of the established flows (empty for the new-session scenario).
    frames: Vec<Vec<u8>>,
    next: usize,
    /// New-session scenario: the next flow number.
    flow: u32,
    now: u64,
}

impl Trace {
    /// A director for `scenario`; the established scenarios open their `FLOWS` sessions
    /// (SYN one way, then for the two-way modes the reply, so they are past SYN_RECV).
    pub fn new(scenario: Scenario) -> Trace {
        let new = scenario == Scenario::FullNatNew;
        let worker = if scenario == Scenario::FullNatProxyEstablished {
            proxy_protocol_director(1 << 20)
        } else if scenario.ipv6() {
            director6(scenario == Scenario::Nat64Established, 1 << 20)
        } else {
            director(scenario.mode(), 1 << 20, if new { 1 } else { 600_000 })
        };
        let mut t = Trace {
            worker,
            scenario,
            frames: Vec::new(),
            next: 0,
            flow: 0,
            now: 10,
        };
        if !new {
            let six = scenario.ipv6();
            let flow = |i: u32, flags, len| {
                if six {
                    tcp6_frame(WAN_MAC, (client6(i), sport(i)), (VIP6, 80), flags, len)
                } else {
                    tcp_frame(WAN_MAC, client(i), sport(i), VIP, 80, flags, len)
                }
            };
            for chunk in (0..FLOWS).collect::<Vec<_>>().chunks(BURST) {
                for &i in chunk {
                    assert!(t.worker.port_mut(WAN).inject(&flow(i, SYN, 0)));
                }
                t.step_with(|w, now| w.poll(now), |w, now| w.slow_jobs(now));
            }
            let opened = if six {
                t.worker.sessions6().len()
            } else {
                t.worker.sessions().len()
            };
            assert_eq!(opened, FLOWS as usize);
            t.frames = (0..FLOWS).map(|i| flow(i, ACK, 64)).collect();
            if scenario == Scenario::FullNatProxyEstablished {
                // Past the header's place (the SYNs had sequence number 0, so the first data
                // byte is 1), acknowledging what the reflected replies carry back: the RS's
                // acknowledgement then lies beyond the header, which counts as acknowledged.
                t.frames = (0..FLOWS)
                    .map(|i| {
                        let (c, p) = (client(i), sport(i));
                        tcp_frame_seq(WAN_MAC, (c, p), (VIP, 80), ACK, (100, 1000), 64)
                    })
                    .collect();
            }
        }
        t
    }

    /// The scenario this trace runs.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// One step with plain polls.
    pub fn step_plain(&mut self) -> usize {
        self.step(|w, now| w.poll(now), |w, now| w.slow_jobs(now))
    }

    /// One step: a burst of client frames in, through `poll` (and back through it for the
    /// two-way modes), the output dropped; for the new-session scenario the clock then moves
    /// on and `slow` runs the expiry. Returns the frames `poll` processed.
    pub fn step(
        &mut self,
        poll: impl FnMut(&mut Worker<MemDevice>, u64) -> usize,
        slow: impl FnMut(&mut Worker<MemDevice>, u64),
    ) -> usize {
        if self.scenario == Scenario::FullNatNew {
            for _ in 0..BURST {
                let f = self.flow;
                let syn = tcp_frame(WAN_MAC, client(f / 50_000), sport(f), VIP, 80, SYN, 0);
                assert!(self.worker.port_mut(WAN).inject(&syn));
                self.flow = self.flow.wrapping_add(1);
            }
        } else {
            for _ in 0..BURST {
                let f = &self.frames[self.next % self.frames.len()];
                assert!(self.worker.port_mut(WAN).inject(f));
                self.next += 1;
            }
        }
        self.step_with(poll, slow)
    }

    /// Polls what is queued on WAN, reflects the LAN output for two-way modes, polls again,
    /// drops the output; for the new-session scenario moves the clock on and expires.
    fn step_with(
        &mut self,
        mut poll: impl FnMut(&mut Worker<MemDevice>, u64) -> usize,
        mut slow: impl FnMut(&mut Worker<MemDevice>, u64),
    ) -> usize {
        let mut n = poll(&mut self.worker, self.now);
        if self.scenario.two_way() {
            while let Some(mut b) = self.worker.port_mut(LAN).pop_tx() {
                let f = b.data_mut();
                assert!(reflect(f) || reflect6(f), "the worker sent an IP frame");
                assert!(self.worker.port_mut(LAN).inject_buf(b).is_ok());
            }
            n += poll(&mut self.worker, self.now);
        }
        for port in [WAN, LAN] {
            while let Some(b) = self.worker.port_mut(port).pop_tx() {
                black_box(&b);
            }
        }
        if self.scenario == Scenario::FullNatNew {
            self.now += 2;
            slow(&mut self.worker, self.now);
        }
        n
    }
}

/// Client source port of flow `i`.
fn sport(i: u32) -> u16 {
    10_000 + (i % 50_000) as u16
}
