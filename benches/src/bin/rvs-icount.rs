//! Runs one fixed packet trace through the in-memory pipeline for `benches/instructions`,
//! which runs it under callgrind with `--toggle-collect` on [`rvs_icount_counted_poll`]: only the
//! worker's polls of the measured steps are counted, not building or reflecting frames.
//!
//! ```text
//! rvs-icount SCENARIO [STEPS]     (fullnat_established, fullnat_new_session,
//!                                  nat_established, dr_established,
//!                                  fullnat_proxy_established, fullnat6_established,
//!                                  nat64_established; STEPS default 2000)
//! ```
//!
//! It warms up (500 steps, not counted), runs STEPS counted steps and prints
//! `packets N`: the frames the counted polls processed, the divisor for the instruction total.

use dataplane::mem::MemDevice;
use dataplane::worker::Worker;
use rvs_benches::trace::{Scenario, Trace};
use std::process::ExitCode;

/// The counted region: callgrind collects between entry and exit of this function.
#[inline(never)]
fn rvs_icount_counted_poll(w: &mut Worker<MemDevice>, now: u64) -> usize {
    w.poll(now)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().and_then(|s| Scenario::by_name(s));
    let steps = args.get(1).map(|s| s.parse::<usize>());
    let (Some(scenario), None | Some(Ok(_))) = (scenario, &steps) else {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        eprintln!("usage: rvs-icount {{{}}} [STEPS]", names.join("|"));
        return ExitCode::from(2);
    };
    let steps = steps.and_then(Result::ok).unwrap_or(2000);
    let mut trace = Trace::new(scenario);
    for _ in 0..500 {
        trace.step_plain();
    }
    let drops = trace.worker.counters().total_drops();
    let mut packets = 0;
    for _ in 0..steps {
        packets += trace.step(rvs_icount_counted_poll, |w, now| w.slow_jobs(now));
    }
    let drops = trace.worker.counters().total_drops() - drops;
    if drops != 0 {
        eprintln!("rvs-icount: {drops} frames dropped in the counted steps");
        return ExitCode::FAILURE;
    }
    println!("packets {packets}");
    ExitCode::SUCCESS
}
