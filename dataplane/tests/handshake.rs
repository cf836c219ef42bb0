//! ESTABLISHED means a completed handshake: a SYN the server answers with a bare ACK (its
//! TIME_WAIT met the 4-tuple, or the SYN was spoofed) or with a RST never establishes the
//! session, which ends on SYN_RECV's timeout and gives its LIP port back; the real
//! SYN, SYN/ACK, ACK does establish it.

mod common;

use common::*;
use conntrack::{Proto, TcpState};
use core::net::Ipv4Addr;
use sched::{ForwardMode, SchedKind};

fn lab() -> Lab {
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    Lab::new(&cfg)
}

/// Sends the client's SYN from `cport`; returns the (LIP, lport) it left with.
fn syn(lab: &mut Lab, cport: u16) -> (Ipv4Addr, u16) {
    let out = lab.send(WAN, &Frame::tcp(CIP, cport, VIP, 80, SYN).build());
    let (port, f) = out.only();
    assert_eq!(port, LAN);
    let s = decode(f);
    (s.src, s.sport)
}

/// A segment from the RS to (LIP, lport).
fn from_rs(lip: (Ipv4Addr, u16), flags: u8) -> Vec<u8> {
    Frame::tcp(RS[0], 8080, lip.0, lip.1, flags)
        .via_rs(0)
        .build()
}

#[test]
fn a_syn_answered_by_a_bare_ack_stays_half_open_and_expires_on_syn_recvs_timeout() {
    let mut lab = lab();
    let free = lab.worker.lip_pool().unwrap().available();
    let lip = syn(&mut lab, 40000);
    // The server still holds the 4-tuple in TIME_WAIT: it answers with a bare ACK. The ACK
    // goes on to the client (whose RST clears the server's TIME_WAIT), the session stays
    // half-open and the event is counted.
    let out = lab.send(LAN, &from_rs(lip, ACK));
    assert_eq!(out.wan.len(), 1);
    assert_eq!(state_of(&lab), TcpState::SynRecv);
    assert_eq!(lab.worker.counters().syn_answered_ack(), 1);
    // A spoofer's blind ACK does not establish it either, nor do more server ACKs keep it.
    lab.advance(10_000);
    lab.send(WAN, &Frame::tcp(CIP, 40000, VIP, 80, ACK).build());
    assert_eq!(state_of(&lab), TcpState::SynRecv);
    lab.advance(40_000);
    lab.send(LAN, &from_rs(lip, ACK));
    assert_eq!(state_of(&lab), TcpState::SynRecv);
    assert_eq!(lab.worker.counters().syn_answered_ack(), 2);
    // 60 s after the client's last segment (at 10 s) the session is gone, counted
    // half-open, and its LIP port is back.
    lab.advance(19_999);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    lab.advance(1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(lab.worker.counters().half_open_expired(), 1);
    assert_eq!(lab.worker.counters().sessions_expired(), 1);
    assert_eq!(lab.worker.lip_pool().unwrap().available(), free);
}

#[test]
fn a_spoofed_syns_session_ends_60_s_after_the_first_synack_whatever_the_server_retries() {
    let mut lab = lab();
    let lip = syn(&mut lab, 40001);
    lab.advance(5);
    assert_eq!(lab.send(LAN, &from_rs(lip, SYN | ACK)).wan.len(), 1);
    assert_eq!(state_of(&lab), TcpState::SynAck);
    // The server retransmits its SYN/ACK (Linux: 1, 3, 7, 15, 31 s later); nobody answers.
    let mut at = 0;
    for retry in [1_000, 3_000, 7_000, 15_000, 31_000] {
        lab.advance(retry - at);
        at = retry;
        lab.send(LAN, &from_rs(lip, SYN | ACK));
        assert_eq!(state_of(&lab), TcpState::SynAck);
    }
    lab.advance(60_000 - at - 1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 1);
    lab.advance(1);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(lab.worker.counters().half_open_expired(), 1);
    assert_eq!(lab.worker.counters().syn_answered_ack(), 0);
}

#[test]
fn a_real_handshake_establishes_and_outlives_syn_recvs_timeout() {
    let mut lab = lab();
    let lip = syn(&mut lab, 40002);
    lab.send(LAN, &from_rs(lip, SYN | ACK));
    assert_eq!(state_of(&lab), TcpState::SynAck);
    let out = lab.send(WAN, &Frame::tcp(CIP, 40002, VIP, 80, ACK).build());
    assert_eq!(out.lan.len(), 1);
    assert_eq!(state_of(&lab), TcpState::Established);
    lab.advance(600_000);
    lab.slow();
    assert_eq!(state_of(&lab), TcpState::Established);
    assert_eq!(lab.worker.counters().half_open_expired(), 0);
}

#[test]
fn a_syn_answered_by_a_rst_closes_and_is_counted() {
    let mut lab = lab();
    let lip = syn(&mut lab, 40003);
    assert_eq!(lab.send(LAN, &from_rs(lip, RST | ACK)).wan.len(), 1);
    assert_eq!(state_of(&lab), TcpState::Close);
    assert_eq!(lab.worker.counters().syn_answered_rst(), 1);
    lab.advance(10_000);
    lab.slow();
    assert_eq!(lab.worker.sessions().len(), 0);
    assert_eq!(lab.worker.counters().half_open_expired(), 0);
}

#[test]
fn after_a_time_wait_collision_the_clients_retried_syn_completes() {
    let mut lab = lab();
    let lip = syn(&mut lab, 40004);
    lab.send(LAN, &from_rs(lip, ACK));
    // The client answers the stray ACK with a RST (its TIME_WAIT on the server ends), then
    // retransmits its SYN a second later; the session keeps its LIP port.
    lab.send(WAN, &Frame::tcp(CIP, 40004, VIP, 80, RST).build());
    assert_eq!(state_of(&lab), TcpState::SynRecv);
    lab.advance(1_000);
    assert_eq!(syn(&mut lab, 40004), lip);
    lab.send(LAN, &from_rs(lip, SYN | ACK));
    lab.send(WAN, &Frame::tcp(CIP, 40004, VIP, 80, ACK).build());
    assert_eq!(state_of(&lab), TcpState::Established);
    assert_eq!(lab.worker.counters().sessions_created(), 1);
}
