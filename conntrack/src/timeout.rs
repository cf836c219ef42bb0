//! Session states across protocols and their idle timeouts.
//!
//! A session's deadline is `now + timeout(state)`, re-armed on every packet (IPVS
//! `cp->timeout = pd->timeout_table[state]`). The defaults follow Linux IPVS
//! (`tcp_timeouts`, `udp_timeouts`, `icmp_timeouts`) except where rvs chooses
//! otherwise: SYN_RECV and SYNACK 60 s (the half-open states share one timeout), ESTABLISHED
//! 900 s, FIN_WAIT 60 s, UDP 300 s.

use core::fmt;

use crate::tcp_state::{TcpState, TCP_STATE_COUNT};

/// The state that selects a session's timeout: the TCP state, or the protocol for the
/// stateless ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// A TCP session in the given state.
    Tcp(TcpState),
    /// A UDP session (no state machine).
    Udp,
    /// An ICMP echo session (no state machine).
    Icmp,
}

impl SessionState {
    /// The name shown to operators: the IPVS TCP state name, or `"UDP"` / `"ICMP"`.
    pub const fn name(self) -> &'static str {
        match self {
            SessionState::Tcp(s) => s.name(),
            SessionState::Udp => "UDP",
            SessionState::Icmp => "ICMP",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SEC: u64 = 1000;

/// Idle timeouts in milliseconds, one per TCP state plus UDP and ICMP.
///
/// `rvsadm --set TCP TCPFIN UDP` maps to `set(Tcp(Established))`, `set(Tcp(FinWait))` and
/// `set(Udp)`, like `ipvsadm --set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    tcp: [u64; TCP_STATE_COUNT],
    udp: u64,
    icmp: u64,
}

impl Default for Timeouts {
    /// SYN_RECV and SYNACK 60 s, ESTABLISHED 900 s, FIN_WAIT 60 s, UDP 300 s (rvs's choice);
    /// NONE 2 s, SYN_SENT 120 s, TIME_WAIT 120 s, CLOSE 10 s, CLOSE_WAIT 60 s, LAST_ACK 30 s,
    /// LISTEN 120 s, ICMP 60 s (Linux IPVS).
    fn default() -> Timeouts {
        let mut tcp = [0; TCP_STATE_COUNT];
        tcp[TcpState::None.index()] = 2 * SEC;
        tcp[TcpState::Established.index()] = 900 * SEC;
        tcp[TcpState::SynSent.index()] = 120 * SEC;
        tcp[TcpState::SynRecv.index()] = 60 * SEC;
        tcp[TcpState::FinWait.index()] = 60 * SEC;
        tcp[TcpState::TimeWait.index()] = 120 * SEC;
        tcp[TcpState::Close.index()] = 10 * SEC;
        tcp[TcpState::CloseWait.index()] = 60 * SEC;
        tcp[TcpState::LastAck.index()] = 30 * SEC;
        tcp[TcpState::Listen.index()] = 120 * SEC;
        tcp[TcpState::SynAck.index()] = 60 * SEC;
        Timeouts {
            tcp,
            udp: 300 * SEC,
            icmp: 60 * SEC,
        }
    }
}

impl Timeouts {
    /// The timeout of `state`, in milliseconds.
    #[inline]
    pub fn get(&self, state: SessionState) -> u64 {
        match state {
            SessionState::Tcp(s) => self.tcp[s.index()],
            SessionState::Udp => self.udp,
            SessionState::Icmp => self.icmp,
        }
    }

    /// Sets the timeout of `state` to `ms` milliseconds.
    ///
    /// A table applies it to a session the next time that session is re-armed (its next
    /// packet); deadlines already set are not moved.
    pub fn set(&mut self, state: SessionState, ms: u64) {
        match state {
            SessionState::Tcp(s) => self.tcp[s.index()] = ms,
            SessionState::Udp => self.udp = ms,
            SessionState::Icmp => self.icmp = ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let t = Timeouts::default();
        let s = |st| t.get(SessionState::Tcp(st)) / SEC;
        assert_eq!(s(TcpState::SynRecv), 60);
        assert_eq!(s(TcpState::Established), 900);
        assert_eq!(s(TcpState::FinWait), 60);
        assert_eq!(s(TcpState::None), 2);
        assert_eq!(s(TcpState::SynSent), 120);
        assert_eq!(s(TcpState::TimeWait), 120);
        assert_eq!(s(TcpState::Close), 10);
        assert_eq!(s(TcpState::CloseWait), 60);
        assert_eq!(s(TcpState::LastAck), 30);
        assert_eq!(s(TcpState::Listen), 120);
        assert_eq!(s(TcpState::SynAck), 60);
        assert_eq!(t.get(SessionState::Udp), 300 * SEC);
        assert_eq!(t.get(SessionState::Icmp), 60 * SEC);
    }

    #[test]
    fn set_and_get() {
        let mut t = Timeouts::default();
        t.set(SessionState::Tcp(TcpState::Established), 7);
        t.set(SessionState::Udp, 8);
        t.set(SessionState::Icmp, 9);
        assert_eq!(t.get(SessionState::Tcp(TcpState::Established)), 7);
        assert_eq!(t.get(SessionState::Udp), 8);
        assert_eq!(t.get(SessionState::Icmp), 9);
        assert_eq!(t.get(SessionState::Tcp(TcpState::FinWait)), 60 * SEC);
    }

    #[test]
    fn display() {
        assert_eq!(
            SessionState::Tcp(TcpState::Established).to_string(),
            "ESTABLISHED"
        );
        assert_eq!(SessionState::Udp.to_string(), "UDP");
        assert_eq!(SessionState::Icmp.to_string(), "ICMP");
    }
}
