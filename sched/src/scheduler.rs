//! The scheduler interface: the control side builds a scheduler per worker, the data path asks
//! it for a dest on each new session.
//!
//! A scheduler holds only derived, per-worker state (a cursor, a current weight, a hash table
//! computed from the dests); the dests themselves live in the [`Service`](crate::Service) and
//! are passed in on every call, so one config snapshot can be shared by all workers while each
//! keeps its own position. What a worker knows of each dest's load (its own sessions to it) is
//! passed in the same way, as a [`DestLoad`] slice beside the dests. [`Scheduler::pick`] never
//! allocates, locks or panics, whatever slices it is given.
//!
//! | kind | IPVS module | picks by |
//! | --- | --- | --- |
//! | `rr` | `ip_vs_rr.c` | turn |
//! | `wrr` | `ip_vs_wrr.c` | turn, interleaved by weight |
//! | `lc` | `ip_vs_lc.c` | fewest sessions (`active * 256 + inactive`) |
//! | `wlc` | `ip_vs_wlc.c` | fewest sessions per unit of weight |
//! | `sh` | `ip_vs_sh.c` | hash of the CIP into a 256-bucket table filled by weight |
//! | `mh` | `ip_vs_mh.c` | hash of the CIP into a Maglev table (65537 slots by default) |
//!
//! ```
//! use std::net::Ipv4Addr;
//! use sched::{Dest, DestLoad, FlowHint, ForwardMode, SchedKind, Scheduler};
//!
//! let rip = |n| Dest { addr: Ipv4Addr::new(10, 0, 0, n).into(), port: 80, weight: 1, mode: ForwardMode::Dr };
//! let mut dests = vec![rip(1), rip(2)];
//! dests[0].weight = 2;
//! let kind: SchedKind = "wrr".parse()?;
//! let mut s = kind.build(&dests); // on the control side, once per worker
//! let hint = FlowHint { src: Ipv4Addr::new(198, 51, 100, 7), sport: 40000 };
//! // As IPVS after `-a` of 10.0.0.2 then 10.0.0.1 (a service lists its dests newest first):
//! // the pass at weight 1 first, then 2, then 1 again.
//! let picks: Vec<_> = (0..5).filter_map(|_| s.pick(&dests, &hint, &[])).collect();
//! assert_eq!(picks, [0, 1, 0, 0, 1]);
//!
//! dests[0].weight = 0; // drain 10.0.0.1
//! s.update(&dests);
//! assert_eq!(s.pick(&dests, &hint, &[]), Some(1));
//!
//! // Least connections: this worker has 3 active sessions to 10.0.0.2, none to 10.0.0.3.
//! dests.push(rip(3));
//! let mut lc = SchedKind::Lc.build(&dests);
//! let load = [DestLoad::default(), DestLoad { active: 3, inactive: 0 }];
//! assert_eq!(lc.pick(&dests, &hint, &load), Some(2)); // dests[2] has no load entry: zero
//! # Ok::<(), sched::SchedError>(())
//! ```

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use crate::dest::Dest;
use crate::error::SchedError;
use crate::lc::LeastConnection;
use crate::mh::MaglevHashing;
use crate::rr::RoundRobin;
use crate::sh::SourceHashing;
use crate::wlc::WeightedLeastConnection;
use crate::wrr::WeightedRoundRobin;

/// What the data path knows about a new flow, for schedulers that hash it (sh, mh).
///
/// rr, wrr, lc and wlc ignore it. The default is `0.0.0.0:0`, for callers of schedulers that
/// ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowHint {
    /// The CIP (an IPv6 CIP folded to 32 bits: [`FlowHint::from_ipv6`]).
    pub src: Ipv4Addr,
    /// The client's source port (the echo identifier for ICMP).
    pub sport: u16,
}

impl FlowHint {
    /// The hint of an IPv6 client: its address folded to 32 bits by XOR of its four words, as
    /// IPVS's sh and mh schedulers fold it (`addr_fold`), so a client keeps its dest across
    /// directors and restarts as an IPv4 client does.
    pub fn from_ipv6(src: Ipv6Addr, sport: u16) -> FlowHint {
        FlowHint {
            src: fold_ipv6(src),
            sport,
        }
    }
}

/// An IPv6 address folded to 32 bits, its four words XORed, as IPVS folds one for its
/// IPv4-sized hashes: where the schedulers, the home worker and the LIP port pools file an
/// IPv6 address.
#[inline]
pub fn fold_ipv6(a: Ipv6Addr) -> Ipv4Addr {
    let w = a.to_bits();
    Ipv4Addr::from((w as u32) ^ ((w >> 32) as u32) ^ ((w >> 64) as u32) ^ ((w >> 96) as u32))
}

impl Default for FlowHint {
    fn default() -> FlowHint {
        FlowHint {
            src: Ipv4Addr::UNSPECIFIED,
            sport: 0,
        }
    }
}

/// What one worker knows of a dest's load: its own sessions to it (IPVS's activeconns/inactconns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestLoad {
    /// Sessions to the dest that are established (IPVS `activeconns`: TCP in ESTABLISHED).
    pub active: u32,
    /// Other sessions to the dest (IPVS `inactconns`: TCP in any other state, UDP, ICMP).
    pub inactive: u32,
}

impl DestLoad {
    /// The load as IPVS weighs it: `active * 256 + inactive` (`ip_vs_dest_conn_overhead`,
    /// which deems an active session 256 times the work of an inactive one).
    ///
    /// Computed in `u64`, so no pair of `u32` counts overflows.
    #[inline]
    pub fn overhead(self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// A scheduling algorithm: picks the dest for each new session of one service.
pub trait Scheduler {
    /// The name ipvsadm uses for this algorithm (`rr`, `wrr`, ...).
    fn name(&self) -> &'static str;

    /// Recompute derived state after the dests or their weights changed.
    ///
    /// Call it with the new dests before the next [`pick`](Scheduler::pick); picks with a
    /// changed slice and no `update` stay safe (in range, never a weight-0 dest) but may
    /// stray from the configured proportions.
    fn update(&mut self, dests: &[Dest]);

    /// Index into `dests` of the dest for a new session, or None when no dest can take one.
    ///
    /// `load[i]` is what this worker knows of `dests[i]`'s sessions; a shorter (or empty)
    /// slice means zero load for the dests past its end. Only lc and wlc read it.
    ///
    /// A dest with weight 0 is never picked. Never allocates.
    fn pick(&mut self, dests: &[Dest], hint: &FlowHint, load: &[DestLoad]) -> Option<usize>;
}

/// The scheduling algorithms rvs implements, as chosen with `-s` in ipvsadm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin (`rr`): each dest with a non-zero weight in turn.
    Rr,
    /// Weighted round robin (`wrr`), interleaved as in LVS.
    Wrr,
    /// Least connections (`lc`): the dest with the smallest `active * 256 + inactive`.
    Lc,
    /// Weighted least connections (`wlc`): the smallest `(active * 256 + inactive) / weight`.
    Wlc,
    /// Source hashing (`sh`): the CIP hashed into a 256-bucket table filled by weight.
    Sh,
    /// Maglev hashing (`mh`): the CIP hashed into a Maglev lookup table (65537 slots).
    Mh,
}

impl SchedKind {
    /// Every kind, in the order ipvsadm's man page lists them.
    pub const ALL: [SchedKind; 6] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sh,
        SchedKind::Mh,
    ];

    /// The ipvsadm name: `rr`, `wrr`, `lc`, `wlc`, `sh` or `mh`.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sh => "sh",
            SchedKind::Mh => "mh",
        }
    }

    /// A fresh scheduler of this kind for `dests` (one per worker), with default options (for
    /// mh: 65537 slots, the source port not hashed; see
    /// [`MaglevHashing::with_config`] for others).
    ///
    /// For sh and mh this computes the lookup table, so call it on the control side.
    pub fn build(self, dests: &[Dest]) -> AnyScheduler {
        match self {
            SchedKind::Rr => AnyScheduler::Rr(RoundRobin::new(dests)),
            SchedKind::Wrr => AnyScheduler::Wrr(WeightedRoundRobin::new(dests)),
            SchedKind::Lc => AnyScheduler::Lc(LeastConnection::new(dests)),
            SchedKind::Wlc => AnyScheduler::Wlc(WeightedLeastConnection::new(dests)),
            SchedKind::Sh => AnyScheduler::Sh(SourceHashing::new(dests)),
            SchedKind::Mh => AnyScheduler::Mh(MaglevHashing::new(dests)),
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedKind {
    type Err = SchedError;

    /// Parses `rr`, `wrr`, `lc`, `wlc`, `sh` or `mh` (exactly, as ipvsadm does).
    ///
    /// # Errors
    /// [`SchedError::UnknownScheduler`] for any other name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| SchedError::UnknownScheduler(s.to_owned()))
    }
}

/// Any of rvs's schedulers, dispatched by `match` rather than through a `dyn` pointer.
#[derive(Clone, Debug)]
pub enum AnyScheduler {
    /// Round robin.
    Rr(RoundRobin),
    /// Weighted round robin.
    Wrr(WeightedRoundRobin),
    /// Least connections.
    Lc(LeastConnection),
    /// Weighted least connections.
    Wlc(WeightedLeastConnection),
    /// Source hashing.
    Sh(SourceHashing),
    /// Maglev hashing.
    Mh(MaglevHashing),
}

impl AnyScheduler {
    /// The kind this scheduler was built from.
    pub fn kind(&self) -> SchedKind {
        match self {
            AnyScheduler::Rr(_) => SchedKind::Rr,
            AnyScheduler::Wrr(_) => SchedKind::Wrr,
            AnyScheduler::Lc(_) => SchedKind::Lc,
            AnyScheduler::Wlc(_) => SchedKind::Wlc,
            AnyScheduler::Sh(_) => SchedKind::Sh,
            AnyScheduler::Mh(_) => SchedKind::Mh,
        }
    }
}

impl From<MaglevHashing> for AnyScheduler {
    /// An mh scheduler built with [`MaglevHashing::with_config`], as an `AnyScheduler`.
    fn from(s: MaglevHashing) -> AnyScheduler {
        AnyScheduler::Mh(s)
    }
}

impl Scheduler for AnyScheduler {
    fn name(&self) -> &'static str {
        match self {
            AnyScheduler::Rr(s) => s.name(),
            AnyScheduler::Wrr(s) => s.name(),
            AnyScheduler::Lc(s) => s.name(),
            AnyScheduler::Wlc(s) => s.name(),
            AnyScheduler::Sh(s) => s.name(),
            AnyScheduler::Mh(s) => s.name(),
        }
    }

    fn update(&mut self, dests: &[Dest]) {
        match self {
            AnyScheduler::Rr(s) => s.update(dests),
            AnyScheduler::Wrr(s) => s.update(dests),
            AnyScheduler::Lc(s) => s.update(dests),
            AnyScheduler::Wlc(s) => s.update(dests),
            AnyScheduler::Sh(s) => s.update(dests),
            AnyScheduler::Mh(s) => s.update(dests),
        }
    }

    #[inline]
    fn pick(&mut self, dests: &[Dest], hint: &FlowHint, load: &[DestLoad]) -> Option<usize> {
        match self {
            AnyScheduler::Rr(s) => s.pick(dests, hint, load),
            AnyScheduler::Wrr(s) => s.pick(dests, hint, load),
            AnyScheduler::Lc(s) => s.pick(dests, hint, load),
            AnyScheduler::Wlc(s) => s.pick(dests, hint, load),
            AnyScheduler::Sh(s) => s.pick(dests, hint, load),
            AnyScheduler::Mh(s) => s.pick(dests, hint, load),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::dests;

    #[test]
    fn sched_kind_parses_and_displays() {
        let names = ["rr", "wrr", "lc", "wlc", "sh", "mh"];
        for (kind, name) in SchedKind::ALL.into_iter().zip(names) {
            assert_eq!(name.parse::<SchedKind>(), Ok(kind));
            assert_eq!(kind.to_string(), name);
            assert_eq!(kind.build(&[]).kind(), kind);
            assert_eq!(kind.build(&[]).name(), name);
        }
        assert_eq!("mh".parse::<SchedKind>(), Ok(SchedKind::Mh));
        assert_eq!(SchedKind::Wlc.to_string(), "wlc");
    }

    #[test]
    fn ipv6_clients_are_folded_as_ipvs_folds_them() {
        // 2001:0db8:0000:0042:0000:8a2e:0370:7334: the four words XORed.
        let a: Ipv6Addr = "2001:db8:0:42:0:8a2e:370:7334".parse().unwrap();
        let h = FlowHint::from_ipv6(a, 443);
        let want = 0x2001_0db8u32 ^ 0x0000_0042 ^ 0x0000_8a2e ^ 0x0370_7334;
        assert_eq!((u32::from(h.src), h.sport), (want, 443));
        // Two clients of one /64 differing in their interface id get different hints; sh
        // and mh see a client's hint the same on every director.
        let b: Ipv6Addr = "2001:db8:0:42:0:8a2e:370:7335".parse().unwrap();
        assert_ne!(FlowHint::from_ipv6(b, 443).src, h.src);
        let mut sh = SchedKind::Sh.build(&dests(&[1, 1, 1, 1]));
        let mut mh = SchedKind::Mh.build(&dests(&[1, 1, 1, 1]));
        let d = dests(&[1, 1, 1, 1]);
        let load = [DestLoad::default(); 4];
        let first = (sh.pick(&d, &h, &load), mh.pick(&d, &h, &load));
        for _ in 0..10 {
            assert_eq!((sh.pick(&d, &h, &load), mh.pick(&d, &h, &load)), first);
        }
        assert!(first.0.is_some() && first.1.is_some());
    }

    #[test]
    fn unknown_scheduler_is_refused_with_the_name() {
        let e = "maglev".parse::<SchedKind>().unwrap_err();
        assert_eq!(e, SchedError::UnknownScheduler("maglev".into()));
        assert_eq!(
            e.to_string(),
            "Scheduler or persistence engine not found\n'maglev': rvs knows rr, wrr, lc, wlc, sh and mh"
        );
        // ipvsadm's names are exact: no case folding.
        assert!("RR".parse::<SchedKind>().is_err());
        assert!("".parse::<SchedKind>().is_err());
    }

    #[test]
    fn overhead_is_ipvs_active_times_256_plus_inactive() {
        assert_eq!(DestLoad::default().overhead(), 0);
        let l = DestLoad {
            active: 3,
            inactive: 7,
        };
        assert_eq!(l.overhead(), 3 * 256 + 7);
        let max = DestLoad {
            active: u32::MAX,
            inactive: u32::MAX,
        };
        assert_eq!(
            max.overhead(),
            (u64::from(u32::MAX) << 8) + u64::from(u32::MAX)
        );
    }

    #[test]
    fn build_dispatches_to_the_right_algorithm() {
        let d = dests(&[2, 1]);
        let hint = FlowHint::default();

        let mut rr = SchedKind::Rr.build(&d);
        assert_eq!((rr.name(), rr.kind()), ("rr", SchedKind::Rr));
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&d, &hint, &[])).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(0), Some(1)]);

        // As if dests[1] (1) then dests[0] (2) had been added: cw is left at 1, so the pass at
        // weight 1 (both) comes first, then 2 (dests[0]), 1 (both).
        let mut wrr = SchedKind::Wrr.build(&d);
        assert_eq!((wrr.name(), wrr.kind()), ("wrr", SchedKind::Wrr));
        let picks: Vec<_> = (0..6).map(|_| wrr.pick(&d, &hint, &[])).collect();
        assert_eq!(
            picks,
            [Some(0), Some(1), Some(0), Some(0), Some(1), Some(0)]
        );

        // dests[0] has 1 active session: 256 / 2 > 0 / 1, so both lc and wlc pick dests[1].
        let load = [DestLoad {
            active: 1,
            inactive: 0,
        }];
        let mut lc = SchedKind::Lc.build(&d);
        assert_eq!(lc.pick(&d, &hint, &load), Some(1));
        assert_eq!(lc.pick(&d, &hint, &[]), Some(0));
        let mut wlc = SchedKind::Wlc.build(&d);
        assert_eq!(wlc.pick(&d, &hint, &load), Some(1));

        // The hashing schedulers give the same dest for the same CIP, whatever the load.
        for kind in [SchedKind::Sh, SchedKind::Mh] {
            let mut s = kind.build(&d);
            let first = s.pick(&d, &hint, &[]);
            assert!(first.is_some(), "{kind}");
            assert_eq!(s.pick(&d, &hint, &load), first, "{kind}");
        }

        let none = dests(&[0, 0]);
        for kind in SchedKind::ALL {
            let mut s = kind.build(&d);
            s.update(&none);
            assert_eq!(s.pick(&none, &hint, &[]), None, "{kind}");
        }
    }

    #[test]
    fn a_configured_mh_converts_into_any_scheduler() {
        let d = dests(&[1, 1]);
        let mh = MaglevHashing::with_config(
            &d,
            crate::MaglevConfig {
                table_size: 251,
                port: true,
            },
        )
        .unwrap();
        let any = AnyScheduler::from(mh);
        assert_eq!(any.kind(), SchedKind::Mh);
    }
}
