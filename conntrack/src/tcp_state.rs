//! The LVS TCP state machine: states, events, and the const transition table.
//!
//! The director does not terminate TCP; it only watches the flags of the segments it forwards
//! and keeps a coarse state per session so that each session gets a sensible idle timeout
//! (long while established, short once closing). The states, the event priority and the
//! transition table are those of Linux IPVS (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, table
//! `tcp_states`, i.e. with `secure_tcp` off), which DPVS also follows.
//!
//! The table is indexed `[direction][event][state]`:
//! - [`StateDir::Input`]: a packet from the client (the session's original direction), when the
//!   director also sees the replies (NAT, FullNAT);
//! - [`StateDir::Output`]: a packet from the real server (reply direction);
//! - [`StateDir::InputOnly`]: a client packet of a session whose replies bypass the director
//!   (DR, TUN).

use core::fmt;

/// The state of a TCP session as tracked by the director (IPVS `IP_VS_TCP_S_*`).
///
/// The discriminants are the IPVS state numbers, which index the columns of [`TRANSITIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No segment that moves the state machine seen yet (new session).
    None = 0,
    /// Data flowing both ways.
    Established = 1,
    /// The real server sent a SYN (active open from the server side).
    SynSent = 2,
    /// The client sent a SYN; waiting for the handshake to complete.
    SynRecv = 3,
    /// One side sent a FIN.
    FinWait = 4,
    /// Both sides closed; lingering for stray segments.
    TimeWait = 5,
    /// Reset or closed; lingering briefly.
    Close = 6,
    /// The client sent a FIN while established.
    CloseWait = 7,
    /// Waiting for the last ACK after both FINs.
    LastAck = 8,
    /// Listening (IPVS uses it for sessions created by the sync daemon / FTP helper).
    Listen = 9,
    /// The server's SYN/ACK seen, the client's ACK not yet (IPVS's `secure_tcp` state):
    /// still half-open.
    SynAck = 10,
}

/// Number of TCP states (columns of the transition table).
pub const TCP_STATE_COUNT: usize = 11;

impl TcpState {
    /// Every state, in IPVS numbering order.
    pub const ALL: [TcpState; TCP_STATE_COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The IPVS state number (`IP_VS_TCP_S_*`), `0..TCP_STATE_COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// SYN_RECV or SYNACK: a handshake the client has not completed. These states keep the
    /// short SYN_RECV timeout, and the server's segments do not extend it while the state
    /// stays (a spoofed SYN's session ends on time whatever the server retransmits).
    #[inline]
    pub const fn half_open(self) -> bool {
        matches!(self, TcpState::SynRecv | TcpState::SynAck)
    }

    /// The upper-case name IPVS prints (`ipvsadm -lc`): `"ESTABLISHED"`, `"SYN_RECV"`, ...
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a segment's flags mean to the state machine (rows of the transition table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpEvent {
    /// SYN set (and RST clear).
    Syn = 0,
    /// FIN set (SYN and RST clear).
    Fin = 1,
    /// Only ACK among SYN/FIN/ACK/RST.
    Ack = 2,
    /// RST set, whatever else is.
    Rst = 3,
}

impl TcpEvent {
    /// The event for a segment's flags, with the IPVS priority (`tcp_state_idx`):
    /// RST, then SYN, then FIN, then ACK. A segment with none of them set moves nothing and
    /// gives `None`.
    #[inline]
    pub const fn from_flags(syn: bool, fin: bool, ack: bool, rst: bool) -> Option<TcpEvent> {
        if rst {
            Some(TcpEvent::Rst)
        } else if syn {
            Some(TcpEvent::Syn)
        } else if fin {
            Some(TcpEvent::Fin)
        } else if ack {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

/// Which third of the transition table applies to a packet (IPVS `TCP_DIR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StateDir {
    /// Client → server, on a session whose replies also cross the director.
    Input = 0,
    /// Server → client.
    Output = 1,
    /// Client → server, on a session whose replies bypass the director (DR, TUN).
    InputOnly = 2,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// The TCP transition table, `TRANSITIONS[dir][event][state]` gives the next state.
///
/// Rows follow [`TcpEvent`] order (syn, fin, ack, rst), columns [`TcpState`] order
/// (NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK,
/// LISTEN, SYNACK). The values are those of Linux `tcp_states` (not `tcp_states_dos`) in current
/// kernels, where a bare ACK in NONE gives ESTABLISHED (older kernels gave CLOSE), except the
/// cells of [`IPVS_DEVIATIONS`] (see the module notes).
#[rustfmt::skip]
pub const TRANSITIONS: [[[TcpState; TCP_STATE_COUNT]; 4]; 3] = [
    // Input.
    [
        //   NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // Output.
    [
        //   NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        /* syn */ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, SR, FW, TW, CL, CW, LA, ES, SA],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // InputOnly.
    [
        //   NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The cells where [`TRANSITIONS`] differs from IPVS's `tcp_states`:
/// `(direction, event, state, IPVS's next state, ours)`.
pub const IPVS_DEVIATIONS: [(StateDir, TcpEvent, TcpState, TcpState, TcpState); 5] = [
    (StateDir::Input, TcpEvent::Ack, SR, ES, SR),
    (StateDir::Output, TcpEvent::Syn, SR, SR, SA),
    (StateDir::Output, TcpEvent::Syn, SA, SR, SA),
    (StateDir::Output, TcpEvent::Ack, SR, ES, SR),
    (StateDir::Output, TcpEvent::Ack, SA, ES, SA),
];

/// The state after a segment carrying `event` goes by in direction `dir` (one table lookup).
#[inline]
pub const fn next_state(dir: StateDir, event: TcpEvent, state: TcpState) -> TcpState {
    TRANSITIONS[dir as usize][event as usize][state as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::None as NO;

    /// The kernel's `tcp_states` rows as text, transcribed independently of [`TRANSITIONS`].
    const KERNEL_ROWS: &str = "
        sSR sES sES sSR sSR sSR sSR sSR sSR sSR sSR
        sCL sCW sSS sTW sTW sTW sCL sCW sLA sLI sTW
        sES sES sSS sES sFW sTW sCL sCW sCL sLI sES
        sCL sCL sCL sSR sCL sCL sCL sCL sLA sLI sSR
        sSS sES sSS sSR sSS sSS sSS sSS sSS sLI sSR
        sTW sFW sSS sTW sFW sTW sCL sTW sLA sLI sTW
        sES sES sSS sES sFW sTW sCL sCW sLA sES sES
        sCL sCL sSS sCL sCL sTW sCL sCL sCL sCL sCL
        sSR sES sES sSR sSR sSR sSR sSR sSR sSR sSR
        sCL sFW sSS sTW sFW sTW sCL sCW sLA sLI sTW
        sES sES sSS sES sFW sTW sCL sCW sCL sLI sES
        sCL sCL sCL sSR sCL sCL sCL sCL sLA sLI sCL";

    fn abbrev(s: TcpState) -> &'static str {
        [
            "sNO", "sES", "sSS", "sSR", "sFW", "sTW", "sCL", "sCW", "sLA", "sLI", "sSA",
        ][s.index()]
    }

    #[test]
    fn table_matches_kernel_text_but_for_the_listed_deviations() {
        let mut kernel: Vec<&str> = KERNEL_ROWS.split_whitespace().collect();
        for (dir, ev, st, ipvs, ours) in IPVS_DEVIATIONS {
            let cell = &mut kernel[(dir as usize * 4 + ev as usize) * TCP_STATE_COUNT + st.index()];
            assert_eq!(*cell, abbrev(ipvs), "{dir:?} {ev:?} {st}");
            assert_ne!(ipvs, ours);
            *cell = abbrev(ours);
        }
        let ours: Vec<&str> = TRANSITIONS
            .iter()
            .flatten()
            .flatten()
            .map(|s| abbrev(*s))
            .collect();
        assert_eq!(kernel, ours);
    }

    /// Every sequence of segments through the director (both directions seen) that reaches
    /// ESTABLISHED from NONE passes through SYNACK by the server's SYN and then a client ACK:
    /// no ACK or RST from the server alone establishes a session.
    #[test]
    fn established_needs_the_servers_synack_then_the_clients_ack() {
        use StateDir::*;
        use TcpEvent::*;
        let mut s = next_state(Input, Syn, NO);
        assert_eq!(s, SR);
        // The server answers with a bare ACK (TIME_WAIT met) or RST: never ESTABLISHED.
        assert_eq!(next_state(Output, Ack, s), SR);
        assert_eq!(next_state(Output, Rst, s), CL);
        // A blind client ACK without the server's SYN/ACK: still half-open.
        assert_eq!(next_state(Input, Ack, s), SR);
        s = next_state(Output, Syn, s);
        assert_eq!(s, SA);
        assert!(s.half_open());
        // Retransmitted SYN/ACK or a server ACK: still waiting for the client.
        assert_eq!(next_state(Output, Syn, s), SA);
        assert_eq!(next_state(Output, Ack, s), SA);
        // The client retransmits its SYN (its SYN/ACK was lost): back to SYN_RECV.
        assert_eq!(next_state(Input, Syn, s), SR);
        assert_eq!(next_state(Input, Ack, s), ES);
        // From NONE (the half-open states included), no sequence of server segments and
        // client segments other than SYN…SYN/ACK…ACK reaches ESTABLISHED in three steps.
        let evs = [Syn, Fin, Ack, Rst];
        for a in evs {
            for b in evs {
                let s1 = next_state(Input, Syn, NO);
                let s2 = next_state(Output, a, s1);
                let s3 = next_state(Output, b, s2);
                assert_ne!(s3, ES, "server {a:?} then {b:?}");
                let s3 = next_state(Input, b, s2);
                if s3 == ES {
                    assert_eq!((a, b), (Syn, Ack));
                }
            }
        }
    }

    #[test]
    fn names_match_ipvs() {
        let names: Vec<String> = TcpState::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn event_priority_is_rst_syn_fin_ack() {
        assert_eq!(
            TcpEvent::from_flags(true, true, true, true),
            Some(TcpEvent::Rst)
        );
        assert_eq!(
            TcpEvent::from_flags(true, true, true, false),
            Some(TcpEvent::Syn)
        );
        assert_eq!(
            TcpEvent::from_flags(false, true, true, false),
            Some(TcpEvent::Fin)
        );
        assert_eq!(
            TcpEvent::from_flags(false, false, true, false),
            Some(TcpEvent::Ack)
        );
        assert_eq!(TcpEvent::from_flags(false, false, false, false), None);
    }

    #[test]
    fn three_way_handshake_through_the_director() {
        let s = next_state(StateDir::Input, TcpEvent::Syn, TcpState::None);
        assert_eq!(s, TcpState::SynRecv);
        // SYN/ACK from the server: SYN has priority over ACK.
        let s = next_state(StateDir::Output, TcpEvent::Syn, s);
        assert_eq!(s, TcpState::SynAck);
        let s = next_state(StateDir::Input, TcpEvent::Ack, s);
        assert_eq!(s, TcpState::Established);
    }

    #[test]
    fn spot_checks_against_the_kernel_table() {
        use StateDir::*;
        use TcpEvent::*;
        // A few cells that differ between the three directions.
        assert_eq!(next_state(Input, Fin, ES), CW);
        assert_eq!(next_state(Output, Fin, ES), FW);
        assert_eq!(next_state(InputOnly, Fin, ES), FW);
        assert_eq!(next_state(Input, Rst, SA), SR);
        assert_eq!(next_state(InputOnly, Rst, SA), CL);
        assert_eq!(next_state(Output, Rst, TW), TW);
        assert_eq!(next_state(Output, Ack, LI), ES);
        assert_eq!(next_state(Input, Ack, LA), CL);
        assert_eq!(next_state(Output, Ack, LA), LA);
        assert_eq!(next_state(Input, Ack, NO), ES);
        assert_eq!(next_state(InputOnly, Ack, NO), ES);
    }

    #[test]
    fn listen_only_leaves_on_output() {
        for ev in [TcpEvent::Syn, TcpEvent::Fin, TcpEvent::Ack, TcpEvent::Rst] {
            if ev != TcpEvent::Syn {
                assert_eq!(next_state(StateDir::Input, ev, LI), LI);
                assert_eq!(next_state(StateDir::InputOnly, ev, LI), LI);
            }
        }
    }
}
