//! rvs's thin, safe binding to the system DPDK (22.11, found through pkg-config and linked as
//! shared libraries; PMDs load as plugins from the EAL's plugin directory).
//!
//! - [`eal`]: start DPDK once per process, shut it down; TSC clock, lcore ids, thread
//!   registration.
//! - [`mempool`]: packet-buffer pools.
//! - [`mbuf`]: the owned packet buffer, its segments and offload flags.
//! - [`port`]: ports (configure, start, RSS key and table, stats) and their queues (bursts).
//! - [`flow`]: rte_flow rules steering a destination address and port range to a queue.
//! - [`error`]: what went wrong, where, and what to do.
//! - [`prefetch`], [`prefetch_all`], [`prefetch_head`]: DPDK's `rte_prefetch0`, for the
//!   worker's burst stages;
//!   [`advise_huge_pages`]: transparent huge pages for the session tables.
//! - [`ffi`]: the raw bindings and the C shim (unsafe; for `Mbuf::from_raw` and the like).
//!
//! Unsafe code lives only in this crate; each block says why it holds. The process-wide
//! rules that keep the safe API sound (one handle per port and per queue, pools that outlive
//! their mbufs, no cleanup under live objects) are kept by a small registry, touched on the
//! control path only.

pub mod eal;
pub mod error;
pub mod ffi;
pub mod flow;
pub mod mbuf;
pub mod mempool;
pub mod port;
mod registry;

pub use eal::{lcore_id, register_thread, tsc, tsc_hz, unregister_thread, Eal, LCORE_ID_ANY};
pub use error::DpdkError;
pub use flow::{Flow, L4Proto};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConf, PortInfo, PortMonitor, PortStats, Queue, RssConf, BURST};

/// Asks the CPU to bring the cache line holding `*r` into all cache levels (DPDK's
/// `rte_prefetch0`) without waiting for it. A hint: it has no effect on the program's state.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    prefetch_ptr((r as *const T).cast::<u8>());
}

/// [`prefetch`] of every cache line `*r` spans (an 80-byte session straddles two lines).
#[inline(always)]
pub fn prefetch_all<T>(r: &T) {
    prefetch_head(r, core::mem::size_of::<T>());
}

/// [`prefetch`] of the cache lines that the first `bytes` bytes of `*r` span (what a lookup
/// reads of a session, say).
#[inline(always)]
pub fn prefetch_head<T>(r: &T, bytes: usize) {
    let p = (r as *const T).cast::<u8>();
    let skew = p as usize & 63;
    let lines = (skew + bytes).div_ceil(64).max(1);
    let first = p.wrapping_sub(skew);
    for i in 0..lines {
        prefetch_ptr(first.wrapping_add(i * 64));
    }
}

#[inline(always)]
fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // Safety: PREFETCHT0 reads nothing architecturally and never faults, whatever the
    // address; it needs only SSE, which every x86_64 CPU has.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the whole pages inside `[addr, addr + len)` with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`), for large tables allocated but not yet touched: their
/// pages then fault in 2 MiB at a time and a lookup costs fewer TLB misses. A hint: the
/// contents are unchanged, and an error (THP disabled, a kernel without it) changes nothing.
///
/// # Errors
/// The `madvise` error.
pub fn advise_huge_pages(addr: usize, len: usize) -> std::io::Result<()> {
    const PAGE: usize = 4096;
    let start = addr.div_ceil(PAGE) * PAGE;
    let end = addr.saturating_add(len) / PAGE * PAGE;
    if end <= start {
        return Ok(());
    }
    // Safety: MADV_HUGEPAGE only changes how the kernel backs the range's pages, never their
    // contents or permissions; a range that is not mapped makes madvise fail with ENOMEM
    // and do nothing.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
