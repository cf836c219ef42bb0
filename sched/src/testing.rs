//! Helpers shared by the unit and property tests.

use core::net::Ipv4Addr;

use crate::dest::{Dest, ForwardMode};
use crate::scheduler::DestLoad;

/// NAT dests 10.0.i.j:80 with the given weights, in order.
pub(crate) fn dests(weights: &[u32]) -> Vec<Dest> {
    weights
        .iter()
        .zip(1u16..)
        .map(|(&weight, i)| {
            let [hi, lo] = i.to_be_bytes();
            Dest {
                addr: Ipv4Addr::new(10, 0, hi, lo).into(),
                port: 80,
                weight,
                mode: ForwardMode::Nat,
            }
        })
        .collect()
}

/// Loads from `(active, inactive)` pairs, in order.
pub(crate) fn loads(pairs: &[(u32, u32)]) -> Vec<DestLoad> {
    pairs
        .iter()
        .map(|&(active, inactive)| DestLoad { active, inactive })
        .collect()
}

/// The greatest common divisor of `a` and `b` (`gcd(0, b) = b`).
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
