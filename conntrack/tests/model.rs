//! Property test: the table agrees with a plain model (a map of keys and a list of live
//! sessions with deadlines) under random operations on an advancing clock.

use std::collections::HashMap;

use core::net::Ipv4Addr;

use conntrack::{
    next_state, Dir, FlowKey, InsertError, Proto, SessionId, SessionState, StateDir, Table,
    TcpEvent, TcpState, Timeouts,
};
use proptest::prelude::*;

/// A small pool of keys, so that originals and replies collide often.
const KEYS: usize = 12;

fn pool_key(i: usize) -> FlowKey {
    let proto = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Tcp][i % 4];
    FlowKey::new(
        proto,
        Ipv4Addr::new(10, 0, 0, (i / 2) as u8),
        1000 + (i % 2) as u16,
        Ipv4Addr::new(192, 0, 2, 1),
        80,
    )
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        original: usize,
        reply: Option<usize>,
    },
    Lookup(usize),
    /// On a live session picked by index (modulo), or a stale id if none / `stale`.
    Packet {
        pick: usize,
        stale: bool,
        reply: bool,
        event: Option<TcpEvent>,
    },
    Remove {
        pick: usize,
        stale: bool,
    },
    Expire {
        budget: usize,
    },
    Advance(u64),
    SetTimeout {
        state: SessionState,
        ms: u64,
    },
}

fn state() -> impl Strategy<Value = SessionState> {
    prop_oneof![
        (0..11usize).prop_map(|i| SessionState::Tcp(TcpState::ALL[i])),
        Just(SessionState::Udp),
        Just(SessionState::Icmp),
    ]
}

fn event() -> impl Strategy<Value = Option<TcpEvent>> {
    prop_oneof![
        Just(None),
        Just(Some(TcpEvent::Syn)),
        Just(Some(TcpEvent::Fin)),
        Just(Some(TcpEvent::Ack)),
        Just(Some(TcpEvent::Rst)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, proptest::option::of(0..KEYS))
            .prop_map(|(original, reply)| Op::Insert { original, reply }),
        2 => (0..KEYS).prop_map(Op::Lookup),
        5 => (any::<usize>(), proptest::bool::weighted(0.1), any::<bool>(), event())
            .prop_map(|(pick, stale, reply, event)| Op::Packet { pick, stale, reply, event }),
        1 => (any::<usize>(), proptest::bool::weighted(0.1))
            .prop_map(|(pick, stale)| Op::Remove { pick, stale }),
        3 => prop_oneof![Just(usize::MAX), 0..4usize].prop_map(|budget| Op::Expire { budget }),
        4 => prop_oneof![0..5u64, 0..40u64, 0..400u64, Just(5_000u64)].prop_map(Op::Advance),
        1 => (state(), 0..120u64).prop_map(|(state, ms)| Op::SetTimeout { state, ms }),
    ]
}

#[derive(Clone, Debug)]
struct Live {
    id: SessionId,
    original: FlowKey,
    reply: Option<FlowKey>,
    state: SessionState,
    created: u64,
    deadline: u64,
    data: u64,
}

/// Small timeouts (tens of ms, below and above the wheel's 16 ms tick) so that sessions come
/// and go within a test case.
fn small_timeouts(seed: &[u64; 13]) -> Timeouts {
    let mut t = Timeouts::default();
    for (i, s) in TcpState::ALL.iter().enumerate() {
        t.set(SessionState::Tcp(*s), seed[i]);
    }
    t.set(SessionState::Udp, seed[11]);
    t.set(SessionState::Icmp, seed[12]);
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_model(
        capacity in 0usize..7,
        seed in proptest::array::uniform13(0u64..100),
        ops in proptest::collection::vec(op(), 1..250),
    ) {
        let mut timeouts = small_timeouts(&seed);
        let mut table: Table<u64> = Table::with_capacity(capacity, timeouts);
        let mut keys: HashMap<FlowKey, (SessionId, Dir)> = HashMap::new();
        let mut live: Vec<Live> = Vec::new();
        let mut stale: Vec<SessionId> = Vec::new();
        let mut now = 5_000u64;
        let mut serial = 0u64;

        for op in ops {
            match op {
                Op::Insert { original, reply } => {
                    let o = pool_key(original);
                    let r = reply.map(pool_key);
                    serial += 1;
                    let expect = if live.len() >= capacity {
                        Err(InsertError::Full)
                    } else if keys.contains_key(&o)
                        || r.is_some_and(|r| r == o || keys.contains_key(&r))
                    {
                        Err(InsertError::KeyExists)
                    } else {
                        Ok(())
                    };
                    let got = table.insert(o, r, serial, now);
                    match (expect, got) {
                        (Ok(()), Ok(id)) => {
                            let state = match o.proto {
                                Proto::Tcp => SessionState::Tcp(TcpState::None),
                                Proto::Udp => SessionState::Udp,
                                Proto::Icmp => SessionState::Icmp,
                            };
                            prop_assert!(live.iter().all(|l| l.id != id));
                            keys.insert(o, (id, Dir::Original));
                            if let Some(r) = r {
                                keys.insert(r, (id, Dir::Reply));
                            }
                            live.push(Live {
                                id,
                                original: o,
                                reply: r,
                                state,
                                created: now,
                                deadline: now + timeouts.get(state),
                                data: serial,
                            });
                        }
                        (Err(e), Err(g)) => prop_assert_eq!(e, g),
                        (e, g) => prop_assert!(false, "insert: model {:?}, table {:?}", e, g),
                    }
                }
                Op::Lookup(k) => {
                    let k = pool_key(k);
                    prop_assert_eq!(table.lookup(&k), keys.get(&k).copied());
                }
                Op::Packet { pick, stale: use_stale, reply, event } => {
                    let dir = if reply { Dir::Reply } else { Dir::Original };
                    if use_stale || live.is_empty() {
                        if let Some(id) = stale.get(pick % stale.len().max(1)) {
                            prop_assert_eq!(table.on_packet(*id, dir, event, now), None);
                        }
                    } else {
                        let n = live.len();
                        let l = &mut live[pick % n];
                        let new = match (l.state, event) {
                            (SessionState::Tcp(s), Some(ev)) => {
                                let sd = match (dir, l.reply.is_some()) {
                                    (Dir::Original, true) => StateDir::Input,
                                    (Dir::Original, false) => StateDir::InputOnly,
                                    (Dir::Reply, _) => StateDir::Output,
                                };
                                SessionState::Tcp(next_state(sd, ev, s))
                            }
                            (s, _) => s,
                        };
                        // A server's segment that leaves a half-open session as it was
                        // does not keep it alive.
                        let held = dir == Dir::Reply
                            && new == l.state
                            && matches!(new, SessionState::Tcp(t) if t.half_open());
                        l.state = new;
                        if !held {
                            l.deadline = now + timeouts.get(new);
                        }
                        prop_assert_eq!(table.on_packet(l.id, dir, event, now), Some(new));
                    }
                }
                Op::Remove { pick, stale: use_stale } => {
                    if use_stale || live.is_empty() {
                        if let Some(id) = stale.get(pick % stale.len().max(1)) {
                            prop_assert!(table.remove(*id).is_none());
                        }
                    } else {
                        let l = live.swap_remove(pick % live.len());
                        let s = table.remove(l.id);
                        prop_assert!(s.is_some());
                        let s = s.unwrap();
                        prop_assert_eq!(s.data, l.data);
                        prop_assert_eq!(s.deadline, l.deadline);
                        keys.remove(&l.original);
                        if let Some(r) = l.reply {
                            keys.remove(&r);
                        }
                        stale.push(l.id);
                    }
                }
                Op::Expire { budget } => {
                    let due = live.iter().filter(|l| l.deadline <= now).count();
                    let mut out = Vec::new();
                    let n = table.expire(now, budget, |id, s| out.push((id, s)));
                    prop_assert_eq!(n, out.len());
                    prop_assert_eq!(n, due.min(budget), "due {} budget {}", due, budget);
                    for (id, s) in out {
                        let pos = live.iter().position(|l| l.id == id);
                        prop_assert!(pos.is_some(), "expired an unknown session");
                        let l = live.swap_remove(pos.unwrap());
                        prop_assert!(l.deadline <= now, "expired early: {:?} at {}", l, now);
                        prop_assert_eq!(s.original, l.original);
                        prop_assert_eq!(s.reply, l.reply);
                        prop_assert_eq!(s.state, l.state);
                        prop_assert_eq!(s.deadline, l.deadline);
                        prop_assert_eq!(s.created, l.created);
                        prop_assert_eq!(s.data, l.data);
                        keys.remove(&l.original);
                        if let Some(r) = l.reply {
                            keys.remove(&r);
                        }
                        stale.push(id);
                    }
                }
                Op::Advance(dt) => now += dt,
                Op::SetTimeout { state, ms } => {
                    timeouts.set(state, ms);
                    table.set_timeouts(timeouts);
                }
            }

            // Whole-table agreement after every step.
            prop_assert_eq!(table.len(), live.len());
            prop_assert!(table.len() <= capacity);
            for l in &live {
                let s = table.get(l.id);
                prop_assert!(s.is_some());
                let s = s.unwrap();
                prop_assert_eq!(s.state, l.state);
                prop_assert_eq!(s.deadline, l.deadline);
                prop_assert_eq!(s.data, l.data);
            }
            for id in &stale {
                prop_assert!(table.get(*id).is_none());
            }
            for (k, v) in &keys {
                prop_assert_eq!(table.lookup(k), Some(*v));
            }
            prop_assert_eq!(table.iter().count(), live.len());
        }
    }
}
