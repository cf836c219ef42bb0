//! The rate estimator behind `rvsadm -L --rate`, after IPVS's `ip_vs_est.c`.
//!
//! Every [`ESTIMATOR_PERIOD`] the control server samples each dest's counters (summed over
//! the workers); the per-second rate of each counter since the last sample is folded into a
//! moving average with weight 1/4, in fixed point (×2^10 for counts, ×2^5 for bytes), exactly
//! as IPVS smooths its rates.

use dataplane::stats::DestSample;
use proto::Rates;
use std::collections::HashMap;
use std::time::Duration;

/// The estimator's period (IPVS's is 2 s).
pub const ESTIMATOR_PERIOD: Duration = Duration::from_secs(2);

/// The smoothed rates of every dest counter slot.
#[derive(Debug, Default)]
pub struct Estimator {
    slots: HashMap<u32, Est>,
}

impl Estimator {
    /// One period: folds each slot's new sample into its averages. A slot seen for the first
    /// time only records its sample (its rates start at 0).
    pub fn tick(&mut self, samples: impl IntoIterator<Item = (u32, DestSample)>, period: Duration) {
        for (slot, now) in samples {
            self.slots
                .entry(slot)
                .or_insert_with(|| Est {
                    last: now,
                    ..Est::default()
                })
                .update(&now, period);
        }
    }

    /// The rates of a slot (all 0 before its first period).
    pub fn rates(&self, slot: u32) -> Rates {
        self.slots.get(&slot).map(Est::rates).unwrap_or_default()
    }
}

/// One slot's averages, in fixed point, and the sample they were last updated from.
#[derive(Clone, Copy, Debug, Default)]
struct Est {
    last: DestSample,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// `avg + (rate - avg) / 4`, never below 0.
fn ewma(avg: u64, rate: u64) -> u64 {
    let (a, r) = (avg as i64, rate as i64);
    (a + ((r - a) >> 2)).max(0) as u64
}

impl Est {
    fn update(&mut self, now: &DestSample, period: Duration) {
        let secs_x2 = (period.as_millis().max(1) as u64 * 2).div_ceil(1000).max(1);
        let per =
            |new: u64, old: u64, shift: u32| ((new.saturating_sub(old)) << shift) * 2 / secs_x2;
        self.cps = ewma(self.cps, per(now.conns, self.last.conns, 10));
        self.inpps = ewma(self.inpps, per(now.inpkts, self.last.inpkts, 10));
        self.outpps = ewma(self.outpps, per(now.outpkts, self.last.outpkts, 10));
        self.inbps = ewma(self.inbps, per(now.inbytes, self.last.inbytes, 5));
        self.outbps = ewma(self.outbps, per(now.outbytes, self.last.outbytes, 5));
        self.last = *now;
    }

    fn rates(&self) -> Rates {
        Rates {
            cps: (self.cps + 0x1ff) >> 10,
            inpps: (self.inpps + 0x1ff) >> 10,
            outpps: (self.outpps + 0x1ff) >> 10,
            inbps: (self.inbps + 0xf) >> 5,
            outbps: (self.outbps + 0xf) >> 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_is_reached_and_a_new_slot_starts_at_zero() {
        let mut est = Estimator::default();
        let mut s = DestSample::default();
        est.tick([(7, s)], ESTIMATOR_PERIOD);
        assert_eq!(est.rates(7), Rates::default(), "first sample: no rate yet");
        for _ in 0..100 {
            // 1000 connections and 2 MB in each 2 s period.
            s.conns += 1000;
            s.inbytes += 2_000_000;
            est.tick([(7, s)], ESTIMATOR_PERIOD);
        }
        let r = est.rates(7);
        assert_eq!((r.cps, r.inbps, r.inpps), (500, 1_000_000, 0));
        assert_eq!(est.rates(8), Rates::default(), "unknown slot");
    }
}
