//! LIP ports that don't meet a server's TIME_WAIT: a (LIP, lport) a TCP session used toward
//! `RIP:rport` is not handed out toward that dest again within the quarantine, while the
//! same lport serves another dest at once; UDP ports come back at once; the pressure shows
//! in the published per-LIP gauges.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::DropReason;
use sched::{ForwardMode, SchedKind};

/// One LIP with one port: every FullNAT session of a dest needs the same (LIP, lport).
fn one_port(proto: Proto, dests: &[sched::Dest]) -> Lab {
    let mut cfg = config(proto, 80, SchedKind::Rr, dests);
    cfg.lips = vec![LIP1];
    cfg.lport_range = 10_000..=10_000;
    cfg.lport_reuse.pools = 256;
    Lab::new(&cfg)
}

/// A client's SYN from `cport`: where it went (RS index and lport), if anywhere.
fn open(lab: &mut Lab, cport: u16) -> Option<(usize, u16)> {
    let out = lab.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
    out.lan.first().map(|f| {
        let s = decode(f);
        (RS.iter().position(|r| *r == s.dst).unwrap(), s.sport)
    })
}

/// RS `rs` resets the connection it has on LIP1:10000 (CLOSE: 10 s), which then expires.
fn close(lab: &mut Lab, rs: usize) {
    lab.send(
        LAN,
        &Frame::tcp(RS[rs], 80, LIP1, 10_000, RST | ACK)
            .via_rs(rs)
            .build(),
    );
    lab.advance(10_000);
    lab.slow();
}

#[test]
fn a_port_waits_out_the_quarantine_toward_its_dest_only() {
    let mut lab = one_port(
        Proto::Tcp,
        &[
            dest(0, 80, 1, ForwardMode::FullNat),
            dest(1, 80, 1, ForwardMode::FullNat),
        ],
    );
    // rr: RS 0, then RS 1 — both on LIP1:10000 at once (their dests use different pools).
    assert_eq!(open(&mut lab, 40000), Some((0, 10_000)));
    assert_eq!(open(&mut lab, 40001), Some((1, 10_000)));
    close(&mut lab, 0);
    assert_eq!(lab.worker.sessions().len(), 1);
    // RS 0's turn: its only port is in quarantine, so the SYN is refused and counted ...
    assert_eq!(open(&mut lab, 40002), None);
    assert_eq!(
        lab.worker.counters().drop_count(DropReason::LipExhausted),
        1
    );
    lab.slow();
    let stats = lab.worker.stats_handle();
    let g = &stats.lips[0];
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(g.addr.load(Relaxed), u64::from(u32::from(LIP1)));
    assert_eq!(g.in_use.load(Relaxed), 1);
    assert_eq!(g.quarantined.load(Relaxed), 1);
    assert_eq!(g.capacity.load(Relaxed), 256);
    // ... until 60 s after the release (at 10 s, when the CLOSE session expired).
    lab.advance(50_000);
    close(&mut lab, 1);
    // rr's turn is RS 1's, whose port was released just now: refused; then RS 0's, whose
    // quarantine is over.
    assert_eq!(open(&mut lab, 40003), None);
    assert_eq!(open(&mut lab, 40004), Some((0, 10_000)));
}

#[test]
fn udp_ports_come_back_at_once() {
    let mut cfg = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(0, 53, 1, ForwardMode::FullNat)],
    );
    cfg.lips = vec![LIP1];
    cfg.lport_range = 10_000..=10_000;
    let mut lab = Lab::new(&cfg);
    let out = lab.send(WAN, &Frame::udp(CIP, 6000, VIP, 53).build());
    assert_eq!(decode(&out.lan[0]).sport, 10_000);
    lab.advance(300_000);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    let out = lab.send(WAN, &Frame::udp(CIP, 6001, VIP, 53).build());
    assert_eq!(decode(&out.lan[0]).sport, 10_000);
}
