//! Zero heap allocations per packet in steady state, over a million packets: every trace of
//! `rvs_benches::trace` (FullNAT established both ways, FullNAT new sessions with their
//! expiry, NAT both ways, DR, the PROXY protocol, FullNAT66 and NAT64 both ways) is warmed up,
//! then run with a counting global allocator (`testkit::alloc`) armed around each
//! `Worker::poll` and `Worker::slow_jobs` on this thread until the traces together have
//! processed over 1 000 000 frames and each over 100 000. The allocator proves first
//! that it sees an allocation and a reallocation.

use rvs_benches::trace::{Scenario, Trace};
use testkit::alloc::{armed, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_million_packets_after_warm_up_allocate_nothing() {
    let ((), n) = armed(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1, "the counting allocator counts");
    let ((), n) = armed(|| {
        let mut v = std::hint::black_box(Vec::<u8>::with_capacity(1));
        v.extend_from_slice(&[1, 2, 3]);
    });
    assert!(n >= 2, "and sees reallocations");

    let mut traces: Vec<Trace> = Scenario::ALL.into_iter().map(Trace::new).collect();
    for t in &mut traces {
        for _ in 0..200 {
            t.step_plain();
        }
    }
    let mut packets = 0u64;
    let mut allocs = 0u64;
    let mut per_scenario = vec![0u64; traces.len()];
    while packets < 1_000_000 || per_scenario.iter().any(|&n| n <= 100_000) {
        for (t, seen) in traces.iter_mut().zip(&mut per_scenario) {
            for _ in 0..64 {
                let mut polled = 0;
                let mut slow = 0;
                let n = t.step(
                    |w, now| {
                        let (n, a) = armed(|| w.poll(now));
                        polled += a;
                        n
                    },
                    |w, now| slow += armed(|| w.slow_jobs(now)).1,
                );
                allocs += polled + slow;
                packets += n as u64;
                *seen += n as u64;
            }
        }
    }
    for (t, seen) in traces.iter().zip(&per_scenario) {
        let c = t.worker.counters();
        assert_eq!(c.total_drops(), 0, "{:?} dropped frames", t.scenario());
        assert!(*seen > 100_000, "{:?}: {seen} packets", t.scenario());
    }
    let new = &traces[1];
    assert_eq!(new.scenario(), Scenario::FullNatNew);
    assert!(new.worker.counters().sessions_created() > 100_000);
    assert_eq!(allocs, 0, "allocations over {packets} packets");
}
