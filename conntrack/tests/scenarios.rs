//! Scenario tests on a simulated clock: TCP flows through the table, exact timeouts, capacity.

use core::net::Ipv4Addr;

use conntrack::{
    Dir, FlowKey, InsertError, Proto, SessionId, SessionState, Table, TcpEvent, TcpState, Timeouts,
};

const S: u64 = 1000;
const T0: u64 = 1_700_000_000_000; // any epoch works; use a Unix-like one

const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const RS: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 3);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);

/// A FullNAT-style session: client → VIP, reply RS → LIP.
fn nat_keys(proto: Proto, cport: u16) -> (FlowKey, FlowKey) {
    (
        FlowKey::new(proto, CIP, cport, VIP, 80),
        FlowKey::new(proto, RS, 8080, LIP, cport),
    )
}

fn tcp(cport: u16) -> (FlowKey, FlowKey) {
    nat_keys(Proto::Tcp, cport)
}

const SYN: Option<TcpEvent> = TcpEvent::from_flags(true, false, false, false);
const SYN_ACK: Option<TcpEvent> = TcpEvent::from_flags(true, false, true, false);
const ACK: Option<TcpEvent> = TcpEvent::from_flags(false, false, true, false);
const FIN_ACK: Option<TcpEvent> = TcpEvent::from_flags(false, true, true, false);
const RST: Option<TcpEvent> = TcpEvent::from_flags(false, false, false, true);
const RST_ACK: Option<TcpEvent> = TcpEvent::from_flags(false, false, true, true);
const IN: Dir = Dir::Original;
const OUT: Dir = Dir::Reply;

fn st(s: TcpState) -> Option<SessionState> {
    Some(SessionState::Tcp(s))
}

fn table() -> Table<u32> {
    Table::with_capacity(64, Timeouts::default())
}

/// Asserts the only session of `t` survives `expire(deadline - 1)` and goes at `deadline`.
fn expires_exactly_at(t: &mut Table<u32>, id: SessionId, deadline: u64) {
    assert_eq!(t.get(id).map(|s| s.deadline), Some(deadline));
    let mut gone = Vec::new();
    assert_eq!(t.expire(deadline - 1, usize::MAX, |i, _| gone.push(i)), 0);
    assert!(t.get(id).is_some(), "expired before its deadline");
    assert_eq!(t.expire(deadline, usize::MAX, |i, _| gone.push(i)), 1);
    assert_eq!(gone, [id]);
    assert!(t.get(id).is_none());
    assert!(t.is_empty());
}

/// Runs `packets` (direction, flags, ms after T0) on a fresh NAT session, checks the final
/// state, and that the session then expires exactly after that state's default timeout.
fn flow_then_timeout(
    packets: &[(Dir, Option<TcpEvent>, u64)],
    last: TcpState,
    timeout_s: u64,
    reply_key: bool,
) {
    let mut t = table();
    let (o, r) = tcp(40000);
    let id = t.insert(o, reply_key.then_some(r), 0, T0).unwrap();
    let mut state = Some(SessionState::Tcp(TcpState::None));
    let mut at = T0;
    for &(dir, ev, dt) in packets {
        at = T0 + dt;
        // Nothing expires between packets.
        assert_eq!(t.expire(at, usize::MAX, |_, _| ()), 0);
        state = t.on_packet(id, dir, ev, at);
    }
    assert_eq!(state, st(last), "after {packets:?}");
    assert_eq!(t.get(id).unwrap().state.to_string(), last.to_string());
    expires_exactly_at(&mut t, id, at + timeout_s * S);
}

#[test]
fn every_default_timeout_is_exact() {
    // NONE: no packet at all.
    flow_then_timeout(&[], TcpState::None, 2, true);
    // SYN_RECV: client SYN.
    flow_then_timeout(&[(IN, SYN, 5)], TcpState::SynRecv, 60, true);
    // SYNACK after the server's SYN/ACK: still half-open, on SYN_RECV's timeout.
    flow_then_timeout(
        &[(IN, SYN, 5), (OUT, SYN_ACK, 6)],
        TcpState::SynAck,
        60,
        true,
    );
    // A server's bare ACK (TIME_WAIT met) leaves SYN_RECV, and does not re-arm it.
    let mut t = table();
    let (o, r) = tcp(40000);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    assert_eq!(t.on_packet(id, IN, SYN, T0 + 5), st(TcpState::SynRecv));
    assert_eq!(t.on_packet(id, OUT, ACK, T0 + 9 * S), st(TcpState::SynRecv));
    assert_eq!(
        t.on_packet(id, OUT, ACK, T0 + 30 * S),
        st(TcpState::SynRecv)
    );
    expires_exactly_at(&mut t, id, T0 + 5 + 60 * S);
    // Nor do the server's retransmitted SYN/ACKs re-arm SYNACK: a spoofed SYN's session
    // ends SYN_RECV's timeout after the first SYN/ACK.
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.on_packet(id, IN, SYN, T0);
    assert_eq!(t.on_packet(id, OUT, SYN_ACK, T0 + 7), st(TcpState::SynAck));
    for retry in [1, 3, 7, 15, 31] {
        assert_eq!(
            t.on_packet(id, OUT, SYN_ACK, T0 + 7 + retry * S),
            st(TcpState::SynAck)
        );
    }
    expires_exactly_at(&mut t, id, T0 + 7 + 60 * S);
    // ESTABLISHED: three-way handshake.
    flow_then_timeout(
        &[(IN, SYN, 5), (OUT, SYN_ACK, 6), (IN, ACK, 7)],
        TcpState::Established,
        900,
        true,
    );
    // SYN_SENT: the server opens (output SYN on a new session).
    flow_then_timeout(&[(OUT, SYN, 5)], TcpState::SynSent, 120, true);
    // FIN_WAIT: the server closes.
    flow_then_timeout(
        &[
            (IN, SYN, 5),
            (OUT, SYN_ACK, 6),
            (IN, ACK, 7),
            (OUT, FIN_ACK, 3_000),
        ],
        TcpState::FinWait,
        60,
        true,
    );
    // CLOSE_WAIT: the client closes.
    flow_then_timeout(
        &[
            (IN, SYN, 5),
            (OUT, SYN_ACK, 6),
            (IN, ACK, 7),
            (IN, FIN_ACK, 3_000),
        ],
        TcpState::CloseWait,
        60,
        true,
    );
    // TIME_WAIT: server FIN, then client FIN.
    flow_then_timeout(
        &[
            (IN, SYN, 5),
            (OUT, SYN_ACK, 6),
            (IN, ACK, 7),
            (OUT, FIN_ACK, 3_000),
            (IN, FIN_ACK, 3_001),
        ],
        TcpState::TimeWait,
        120,
        true,
    );
    // CLOSE: reset.
    flow_then_timeout(
        &[
            (IN, SYN, 5),
            (OUT, SYN_ACK, 6),
            (IN, ACK, 7),
            (OUT, RST, 50),
        ],
        TcpState::Close,
        10,
        true,
    );
}

/// LAST_ACK, LISTEN and SYNACK are not reachable from NONE through the (non-secure_tcp) IPVS
/// table: IPVS enters them from outside the packet path, as `set_state` does.
#[test]
fn states_entered_outside_the_packet_path() {
    for (state, timeout_s) in [
        (TcpState::LastAck, 30),
        (TcpState::Listen, 120),
        (TcpState::SynAck, 60),
    ] {
        let mut t = table();
        let (o, r) = tcp(40000);
        let id = t.insert(o, Some(r), 0, T0).unwrap();
        t.set_state(id, SessionState::Tcp(state), T0 + 10).unwrap();
        expires_exactly_at(&mut t, id, T0 + 10 + timeout_s * S);
    }
    // LAST_ACK then the client's ACK: CLOSE.
    let mut t = table();
    let (o, r) = tcp(40000);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.set_state(id, SessionState::Tcp(TcpState::LastAck), T0);
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 1), st(TcpState::Close));
    expires_exactly_at(&mut t, id, T0 + 1 + 10 * S);
}

#[test]
fn udp_and_icmp_timeouts() {
    for (proto, state, timeout_s) in [
        (Proto::Udp, SessionState::Udp, 300),
        (Proto::Icmp, SessionState::Icmp, 60),
    ] {
        let mut t = table();
        let (o, r) = nat_keys(proto, 5353);
        let id = t.insert(o, Some(r), 0, T0).unwrap();
        assert_eq!(t.get(id).unwrap().state, state);
        expires_exactly_at(&mut t, id, T0 + timeout_s * S);

        // Traffic refreshes; flags mean nothing.
        let id = t.insert(o, Some(r), 0, T0).unwrap();
        assert_eq!(t.on_packet(id, OUT, SYN, T0 + 7 * S), Some(state));
        assert_eq!(t.on_packet(id, IN, RST, T0 + 9 * S), Some(state));
        expires_exactly_at(&mut t, id, T0 + 9 * S + timeout_s * S);
    }
}

#[test]
fn refreshed_session_survives_then_expires_900s_after_last_packet() {
    let mut t = table();
    let (o, r) = tcp(40000);
    let id = t.insert(o, Some(r), 7, T0).unwrap();
    t.on_packet(id, IN, SYN, T0);
    t.on_packet(id, OUT, SYN_ACK, T0 + 1);
    t.on_packet(id, IN, ACK, T0 + 2);
    let mut now = T0 + 2;
    while now < T0 + 10_000 * S {
        now += 100 * S;
        assert_eq!(t.expire(now, usize::MAX, |_, _| ()), 0);
        assert_eq!(t.on_packet(id, IN, ACK, now), st(TcpState::Established));
    }
    // Keep ticking every second, silently, until it goes.
    let last = now;
    loop {
        now += S;
        let mut gone = None;
        if t.expire(now, usize::MAX, |i, s| gone = Some((i, s.data))) == 1 {
            assert_eq!(gone, Some((id, 7)));
            break;
        }
    }
    assert_eq!(now, last + 900 * S);
}

#[test]
fn normal_open_and_client_close() {
    let mut t = table();
    let (o, r) = tcp(40001);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    assert_eq!(t.lookup(&o), Some((id, IN)));
    assert_eq!(t.lookup(&r), Some((id, OUT)));
    assert_eq!(t.on_packet(id, IN, SYN, T0), st(TcpState::SynRecv));
    assert_eq!(t.on_packet(id, OUT, SYN_ACK, T0 + 1), st(TcpState::SynAck));
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 2), st(TcpState::Established));
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 3), st(TcpState::Established));
    assert_eq!(t.on_packet(id, OUT, ACK, T0 + 4), st(TcpState::Established));
    // Client closes; server ACKs, then closes; client ACKs.
    assert_eq!(
        t.on_packet(id, IN, FIN_ACK, T0 + 5),
        st(TcpState::CloseWait)
    );
    assert_eq!(t.on_packet(id, OUT, ACK, T0 + 6), st(TcpState::CloseWait));
    assert_eq!(
        t.on_packet(id, OUT, FIN_ACK, T0 + 7),
        st(TcpState::TimeWait)
    );
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 8), st(TcpState::TimeWait));
    expires_exactly_at(&mut t, id, T0 + 8 + 120 * S);
}

#[test]
fn server_close() {
    let mut t = table();
    let (o, r) = tcp(40002);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.on_packet(id, IN, SYN, T0);
    t.on_packet(id, OUT, SYN_ACK, T0);
    t.on_packet(id, IN, ACK, T0);
    assert_eq!(t.on_packet(id, OUT, FIN_ACK, T0 + 1), st(TcpState::FinWait));
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 2), st(TcpState::FinWait));
    assert_eq!(t.on_packet(id, IN, FIN_ACK, T0 + 3), st(TcpState::TimeWait));
    assert_eq!(t.on_packet(id, OUT, ACK, T0 + 4), st(TcpState::TimeWait));
    expires_exactly_at(&mut t, id, T0 + 4 + 120 * S);
}

#[test]
fn simultaneous_close_reaches_time_wait() {
    for first in [IN, OUT] {
        let mut t = table();
        let (o, r) = tcp(40003);
        let id = t.insert(o, Some(r), 0, T0).unwrap();
        t.on_packet(id, IN, SYN, T0);
        t.on_packet(id, OUT, SYN_ACK, T0);
        t.on_packet(id, IN, ACK, T0);
        let second = if first == IN { OUT } else { IN };
        t.on_packet(id, first, FIN_ACK, T0 + 1);
        assert_eq!(
            t.on_packet(id, second, FIN_ACK, T0 + 1),
            st(TcpState::TimeWait)
        );
        assert_eq!(t.on_packet(id, first, ACK, T0 + 2), st(TcpState::TimeWait));
        assert_eq!(t.on_packet(id, second, ACK, T0 + 2), st(TcpState::TimeWait));
        expires_exactly_at(&mut t, id, T0 + 2 + 120 * S);
    }
}

#[test]
fn reset_closes_for_ten_seconds() {
    for (dir, flags) in [(IN, RST), (OUT, RST), (IN, RST_ACK), (OUT, RST_ACK)] {
        let mut t = table();
        let (o, r) = tcp(40004);
        let id = t.insert(o, Some(r), 0, T0).unwrap();
        t.on_packet(id, IN, SYN, T0);
        t.on_packet(id, OUT, SYN_ACK, T0);
        t.on_packet(id, IN, ACK, T0);
        assert_eq!(t.on_packet(id, dir, flags, T0 + 500), st(TcpState::Close));
        expires_exactly_at(&mut t, id, T0 + 500 + 10 * S);
    }
}

#[test]
fn retransmitted_syn_stays_syn_recv() {
    let mut t = table();
    let (o, r) = tcp(40005);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    assert_eq!(t.on_packet(id, IN, SYN, T0), st(TcpState::SynRecv));
    assert_eq!(t.on_packet(id, IN, SYN, T0 + S), st(TcpState::SynRecv));
    assert_eq!(t.on_packet(id, IN, SYN, T0 + 3 * S), st(TcpState::SynRecv));
    // Each retransmission re-arms.
    expires_exactly_at(&mut t, id, T0 + 3 * S + 60 * S);
}

#[test]
fn packets_without_flags_only_refresh() {
    let mut t = table();
    let (o, r) = tcp(40006);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.on_packet(id, IN, SYN, T0);
    assert_eq!(t.on_packet(id, IN, None, T0 + 5 * S), st(TcpState::SynRecv));
    expires_exactly_at(&mut t, id, T0 + 65 * S);
}

#[test]
fn established_to_fin_wait_shortens_the_deadline() {
    let mut t = table();
    let (o, r) = tcp(40007);
    // Another long-lived session keeps the wheel busy around it.
    let (o2, r2) = tcp(40008);
    let other = t.insert(o2, Some(r2), 0, T0).unwrap();
    t.on_packet(other, IN, ACK, T0);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.on_packet(id, IN, SYN, T0);
    t.on_packet(id, OUT, SYN_ACK, T0);
    t.on_packet(id, IN, ACK, T0 + 10);
    assert_eq!(t.get(id).unwrap().deadline, T0 + 10 + 900 * S);
    // 300 s later the server closes: the deadline moves from +900 s to +60 s.
    let fin_at = T0 + 300 * S + 3;
    assert_eq!(t.expire(fin_at, usize::MAX, |_, _| ()), 0);
    assert_eq!(t.on_packet(id, OUT, FIN_ACK, fin_at), st(TcpState::FinWait));
    assert_eq!(t.get(id).unwrap().deadline, fin_at + 60 * S);
    assert_eq!(t.expire(fin_at + 60 * S - 1, usize::MAX, |_, _| ()), 0);
    let mut gone = Vec::new();
    assert_eq!(
        t.expire(fin_at + 60 * S, usize::MAX, |i, _| gone.push(i)),
        1
    );
    assert_eq!(gone, [id]);
    assert!(t.get(other).is_some());
}

#[test]
fn input_only_flows_for_dr_and_tun() {
    // Open, then the client's FIN gives FIN_WAIT (Input would give CLOSE_WAIT); the director
    // never sees the server's FIN, so the session stays in FIN_WAIT.
    let mut t = table();
    let (o, _) = tcp(40009);
    let id = t.insert(o, None, 0, T0).unwrap();
    assert_eq!(t.lookup(&o), Some((id, IN)));
    assert_eq!(t.on_packet(id, IN, SYN, T0), st(TcpState::SynRecv));
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 1), st(TcpState::Established));
    assert_eq!(t.on_packet(id, IN, FIN_ACK, T0 + 2), st(TcpState::FinWait));
    assert_eq!(t.on_packet(id, IN, FIN_ACK, T0 + 3), st(TcpState::FinWait));
    assert_eq!(t.on_packet(id, IN, ACK, T0 + 4), st(TcpState::FinWait));
    expires_exactly_at(&mut t, id, T0 + 4 + 60 * S);

    // A bare ACK on a new session (mid-stream pickup) is ESTABLISHED.
    let id = t.insert(o, None, 0, T0).unwrap();
    assert_eq!(t.on_packet(id, IN, ACK, T0), st(TcpState::Established));
    // RST from SYNACK differs from Input: CLOSE.
    t.set_state(id, SessionState::Tcp(TcpState::SynAck), T0);
    assert_eq!(t.on_packet(id, IN, RST, T0 + 1), st(TcpState::Close));
    expires_exactly_at(&mut t, id, T0 + 1 + 10 * S);

    // Same sequence with a reply key uses Input: SYNACK + RST is SYN_RECV, ES + FIN is CW.
    let (o, r) = tcp(40010);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.set_state(id, SessionState::Tcp(TcpState::SynAck), T0);
    assert_eq!(t.on_packet(id, IN, RST, T0), st(TcpState::SynRecv));
    // A client ACK alone does not establish it (the director sees both sides here) ...
    assert_eq!(t.on_packet(id, IN, ACK, T0), st(TcpState::SynRecv));
    // ... the server's SYN/ACK and then the client's ACK do.
    assert_eq!(t.on_packet(id, OUT, SYN_ACK, T0), st(TcpState::SynAck));
    assert_eq!(t.on_packet(id, IN, ACK, T0), st(TcpState::Established));
    assert_eq!(t.on_packet(id, IN, FIN_ACK, T0), st(TcpState::CloseWait));
}

#[test]
fn set_timeouts_applies_at_next_rearm() {
    let mut t = table();
    let (o, r) = tcp(40011);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    t.on_packet(id, IN, ACK, T0);
    assert_eq!(t.get(id).unwrap().deadline, T0 + 900 * S);
    let mut to = *t.timeouts();
    to.set(SessionState::Tcp(TcpState::Established), 30 * S);
    t.set_timeouts(to);
    // Existing deadline untouched.
    assert_eq!(t.get(id).unwrap().deadline, T0 + 900 * S);
    assert_eq!(t.expire(T0 + 100 * S, usize::MAX, |_, _| ()), 0);
    // The next packet re-arms with the new (shorter) timeout, honoured exactly.
    t.on_packet(id, IN, ACK, T0 + 100 * S);
    expires_exactly_at(&mut t, id, T0 + 130 * S);

    // And longer timeouts (several wheel revolutions) work too.
    to.set(SessionState::Udp, 5_000 * S);
    t.set_timeouts(to);
    let (o, r) = nat_keys(Proto::Udp, 53);
    let id = t.insert(o, Some(r), 0, T0).unwrap();
    expires_exactly_at(&mut t, id, T0 + 5_000 * S);
}

#[test]
fn full_table_refuses_and_changes_nothing() {
    let cap = 8;
    let mut t: Table<u32> = Table::with_capacity(cap, Timeouts::default());
    let mut ids = Vec::new();
    for i in 0..cap as u16 {
        let (o, r) = tcp(1000 + i);
        ids.push(t.insert(o, Some(r), u32::from(i), T0).unwrap());
    }
    assert_eq!(t.len(), cap);
    let before: Vec<_> = t.iter().map(|(i, s)| (i, s.original, s.deadline)).collect();
    let (o, r) = tcp(2000);
    assert_eq!(t.insert(o, Some(r), 99, T0), Err(InsertError::Full));
    assert_eq!(t.insert(o, None, 99, T0), Err(InsertError::Full));
    assert_eq!(t.len(), cap);
    assert_eq!(t.lookup(&o), None);
    assert_eq!(t.lookup(&r), None);
    let after: Vec<_> = t.iter().map(|(i, s)| (i, s.original, s.deadline)).collect();
    assert_eq!(before, after);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(t.get(*id).unwrap().data, n as u32);
    }

    // Keep half of them alive with traffic; the rest go after NONE's 2 s.
    for id in &ids[..cap / 2] {
        t.on_packet(*id, IN, ACK, T0 + S);
    }
    let mut gone = Vec::new();
    assert_eq!(
        t.expire(T0 + 2 * S, usize::MAX, |i, _| gone.push(i)),
        cap / 2
    );
    gone.sort_by_key(|i| i.index());
    let mut expected = ids[cap / 2..].to_vec();
    expected.sort_by_key(|i| i.index());
    assert_eq!(gone, expected);
    // Room came back.
    for i in 0..cap as u16 / 2 {
        let (o, r) = tcp(3000 + i);
        t.insert(o, Some(r), 0, T0 + 2 * S).unwrap();
    }
    assert_eq!(t.insert(o, Some(r), 0, T0), Err(InsertError::Full));
    for id in &ids[..cap / 2] {
        assert!(t.get(*id).is_some(), "a live session was evicted");
    }
}

#[test]
fn existing_keys_are_refused_and_nothing_is_inserted() {
    let mut t = table();
    let (o, r) = tcp(1);
    let id = t.insert(o, Some(r), 1, T0).unwrap();
    let (o2, r2) = tcp(2);
    // Original taken.
    assert_eq!(t.insert(o, Some(r2), 2, T0), Err(InsertError::KeyExists));
    // Reply taken (e.g. a FullNAT local port still in use).
    assert_eq!(t.insert(o2, Some(r), 2, T0), Err(InsertError::KeyExists));
    // A new original equal to an existing reply key.
    assert_eq!(t.insert(r, None, 2, T0), Err(InsertError::KeyExists));
    // Both keys equal.
    assert_eq!(t.insert(o2, Some(o2), 2, T0), Err(InsertError::KeyExists));
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&o2), None);
    assert_eq!(t.lookup(&r2), None);
    assert_eq!(t.lookup(&o), Some((id, IN)));
    assert_eq!(t.lookup(&r), Some((id, OUT)));
    // After removal both keys are free again.
    let s = t.remove(id).unwrap();
    assert_eq!((s.original, s.reply, s.data), (o, Some(r), 1));
    assert_eq!(t.lookup(&o), None);
    assert_eq!(t.lookup(&r), None);
    t.insert(o2, Some(r), 3, T0).unwrap();
}

#[test]
fn budgeted_expire_leaves_the_rest_due() {
    let mut t = table();
    for i in 0..50 {
        let (o, r) = nat_keys(Proto::Udp, 100 + i);
        t.insert(o, Some(r), 0, T0 + u64::from(i)).unwrap();
    }
    let end = T0 + 49 + 300 * S;
    assert_eq!(t.expire(end - 50, 10, |_, _| ()), 0);
    let mut total = 0;
    for _ in 0..5 {
        let n = t.expire(end, 10, |_, s| assert!(s.deadline <= end));
        assert_eq!(n, 10);
        total += n;
    }
    assert_eq!(total, 50);
    assert!(t.is_empty());
    assert_eq!(t.expire(end + 10 * S, 10, |_, _| ()), 0);
}

#[test]
fn iter_lists_every_session() {
    let mut t = table();
    let mut ids = Vec::new();
    for i in 0..10 {
        let (o, r) = tcp(500 + i);
        ids.push(t.insert(o, Some(r), u32::from(i), T0).unwrap());
    }
    t.remove(ids[3]);
    let mut seen: Vec<_> = t.iter().map(|(i, s)| (i, s.data)).collect();
    seen.sort_by_key(|(_, d)| *d);
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != 3)
        .map(|(n, id)| (*id, n as u32))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn refresh_for_uses_its_own_timeout_exactly() {
    use conntrack::{FlowKey, Proto, Table, Timeouts};
    use std::net::Ipv4Addr;
    let mut t: Table<u8> = Table::with_capacity(8, Timeouts::default());
    let k = FlowKey::new(
        Proto::Tcp,
        Ipv4Addr::new(10, 0, 0, 1),
        0,
        Ipv4Addr::new(10, 0, 0, 2),
        80,
    );
    let id = t.insert(k, None, 7, 1_000).unwrap();
    t.refresh_for(id, 2_000, 300_000).unwrap();
    assert_eq!(t.expire(301_999, 16, |_, _| ()), 0);
    assert_eq!(t.expire(302_000, 16, |_, _| ()), 1);
    assert!(t.refresh_for(id, 0, 1).is_none(), "stale id");
}

#[test]
fn open_is_insert_then_the_first_packet() {
    // Every first event, with and without a reply key (Input vs InputOnly thirds), and the
    // other protocols: the same state and deadline as insert + on_packet, and the session
    // expires exactly then.
    let events = [None, SYN, SYN_ACK, ACK, FIN_ACK, RST, RST_ACK];
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        for ev in events {
            for reply_key in [true, false] {
                let (o, r) = nat_keys(proto, 40000);
                let reply = reply_key.then_some(r);
                let mut a = table();
                let ia = a.insert(o, reply, 7, T0).unwrap();
                a.on_packet(ia, IN, ev, T0);
                let mut b = table();
                let ib = b.open(o, reply, 7, T0, ev).unwrap();
                let (sa, sb) = (a.get(ia).unwrap(), b.get(ib).unwrap());
                let what = format!("{proto:?} {ev:?} reply key {reply_key}");
                assert_eq!(sb.state, sa.state, "{what}");
                assert_eq!(sb.deadline, sa.deadline, "{what}");
                assert_eq!(sb.data, 7);
                assert_eq!(b.lookup(&o).map(|(id, _)| id), Some(ib), "{what}");
                let deadline = sb.deadline;
                expires_exactly_at(&mut b, ib, deadline);
            }
        }
    }
    // A SYN opens in SYN_RECV, on its 60 s, not NONE's 2 s.
    let mut t = table();
    let (o, r) = tcp(40001);
    let id = t.open(o, Some(r), 0, T0, SYN).unwrap();
    assert_eq!(t.get(id).map(|s| s.state), st(TcpState::SynRecv));
    expires_exactly_at(&mut t, id, T0 + 60 * S);
    // Refused as insert refuses: the key is taken.
    let mut t = table();
    t.open(o, Some(r), 0, T0, SYN).unwrap();
    assert_eq!(t.open(o, None, 0, T0, SYN), Err(InsertError::KeyExists));
}
