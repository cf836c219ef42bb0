//! Dests (real servers) of a service and the forwarding mode each one is reached by.
//!
//! A dest is a RIP and port with a weight and a [`ForwardMode`]. Weight 0 means the dest takes
//! no new sessions but keeps the ones it has: that is how a dest is drained (LVS quiescing).

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use crate::error::SchedError;

/// The largest dest weight, as in ipvsadm (weights are 0..=65535).
pub const MAX_WEIGHT: u32 = 65535;

/// How packets reach a dest (the table of modes is in the README and docs/architecture.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// NAT (ipvsadm `-m`, masquerading): dst VIP:vport → RIP:rport; replies pass the director.
    Nat,
    /// Direct routing (ipvsadm `-g`, gatewaying): only the dst MAC changes; RS replies directly.
    Dr,
    /// IPIP tunnelling (ipvsadm `-i`): encapsulated DIP → RIP; RS replies directly.
    Tun,
    /// Full NAT: both src (CIP:cport → LIP:lport) and dst (VIP:vport → RIP:rport) rewritten.
    FullNat,
}

impl ForwardMode {
    /// The name ipvsadm prints in its `Forward` column: `Masq`, `Route`, `Tunnel`, `FullNat`.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMode::Nat => "Masq",
            ForwardMode::Dr => "Route",
            ForwardMode::Tun => "Tunnel",
            ForwardMode::FullNat => "FullNat",
        }
    }

    /// Whether a dest in this mode may listen on a port other than the service port.
    ///
    /// NAT and FullNAT rewrite the destination port; DR and TUN leave the L4 header alone, so
    /// their dests must use the service port.
    #[inline]
    pub fn maps_ports(self) -> bool {
        matches!(self, ForwardMode::Nat | ForwardMode::FullNat)
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ipvsadm_name())
    }
}

impl FromStr for ForwardMode {
    type Err = SchedError;

    /// Parses a mode name, case-insensitively: `nat`/`masq`, `dr`/`route`/`gate`,
    /// `tun`/`tunnel`/`ipip`, `fullnat`/`fnat`.
    ///
    /// # Errors
    /// [`SchedError::UnknownForwardMode`] for any other name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const NAMES: [(&str, ForwardMode); 10] = [
            ("nat", ForwardMode::Nat),
            ("masq", ForwardMode::Nat),
            ("dr", ForwardMode::Dr),
            ("route", ForwardMode::Dr),
            ("gate", ForwardMode::Dr),
            ("tun", ForwardMode::Tun),
            ("tunnel", ForwardMode::Tun),
            ("ipip", ForwardMode::Tun),
            ("fullnat", ForwardMode::FullNat),
            ("fnat", ForwardMode::FullNat),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, mode)| mode)
            .ok_or_else(|| SchedError::UnknownForwardMode(s.to_owned()))
    }
}

/// A real server of a service: where sessions go, how much of them, and how.
///
/// A dest is identified within its service by `(addr, port)`. The fields are plain data;
/// [`Service::add_dest`](crate::Service::add_dest) and
/// [`Service::edit_dest`](crate::Service::edit_dest) validate them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dest {
    /// The RIP.
    pub addr: IpAddr,
    /// The port on the RS (equal to the service port in DR and TUN mode; 0 for ICMP).
    pub port: u16,
    /// The relative share of new sessions, 0..=[`MAX_WEIGHT`]; 0 takes none (drain).
    pub weight: u32,
    /// How packets reach this dest.
    pub mode: ForwardMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvsadm_names_and_display() {
        assert_eq!(ForwardMode::Nat.ipvsadm_name(), "Masq");
        assert_eq!(ForwardMode::Dr.ipvsadm_name(), "Route");
        assert_eq!(ForwardMode::Tun.ipvsadm_name(), "Tunnel");
        assert_eq!(ForwardMode::FullNat.ipvsadm_name(), "FullNat");
        assert_eq!(ForwardMode::Dr.to_string(), "Route");
    }

    #[test]
    fn from_str_accepts_every_alias_in_any_case() {
        for (s, m) in [
            ("nat", ForwardMode::Nat),
            ("MASQ", ForwardMode::Nat),
            ("dr", ForwardMode::Dr),
            ("Route", ForwardMode::Dr),
            ("gate", ForwardMode::Dr),
            ("tun", ForwardMode::Tun),
            ("Tunnel", ForwardMode::Tun),
            ("IPIP", ForwardMode::Tun),
            ("fullnat", ForwardMode::FullNat),
            ("FNAT", ForwardMode::FullNat),
            ("FullNat", ForwardMode::FullNat),
        ] {
            assert_eq!(s.parse::<ForwardMode>(), Ok(m), "{s}");
        }
        // Every mode's Display form parses back to it.
        for m in [
            ForwardMode::Nat,
            ForwardMode::Dr,
            ForwardMode::Tun,
            ForwardMode::FullNat,
        ] {
            assert_eq!(m.to_string().parse::<ForwardMode>(), Ok(m));
        }
    }

    #[test]
    fn from_str_rejects_unknown_names() {
        let e = "snat".parse::<ForwardMode>().unwrap_err();
        assert_eq!(e, SchedError::UnknownForwardMode("snat".into()));
        assert_eq!(
            e.to_string(),
            "forwarding mode 'snat' not known: use nat (masq), dr (route, gate), \
             tun (tunnel, ipip) or fullnat (fnat)"
        );
        assert!("".parse::<ForwardMode>().is_err());
    }

    #[test]
    fn only_nat_and_fullnat_map_ports() {
        assert!(ForwardMode::Nat.maps_ports());
        assert!(ForwardMode::FullNat.maps_ports());
        assert!(!ForwardMode::Dr.maps_ports());
        assert!(!ForwardMode::Tun.maps_ports());
    }
}
