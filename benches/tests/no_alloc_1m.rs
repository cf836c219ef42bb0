//! Zero heap allocations per packet in steady state, over a million packets: every trace of
//! `rvs_benches::trace` (FullNAT established both ways, FullNAT new sessions with their
//! expiry, NAT both ways, DR) is warmed up, then run with a counting global allocator armed
//! around each `Worker::poll` and `Worker::slow_jobs` on this thread until the traces together have processed over
//! 1 000 000 frames. The allocator proves first that it sees an allocation when there is one.

use rvs_benches::trace::{Scenario, Trace};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // Safety: forwarding the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(|a| a.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // Safety: `ptr` came from `System.alloc` with `layout` (see `alloc`).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with the counter armed; returns its result and the allocations it made.
fn armed<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, ALLOCS.load(Ordering::Relaxed) - before)
}

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
    while packets < 1_000_000 {
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
    assert!(new.worker.counters().sessions_created > 100_000);
    assert_eq!(allocs, 0, "allocations over {packets} packets");
}
