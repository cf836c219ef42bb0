//! The Environment Abstraction Layer: start DPDK once per process, shut it down at the end,
//! and the per-thread helpers (TSC clock, lcore ids, registering worker threads).
//!
//! # Life cycle
//! 1. [`Eal::init`] runs `rte_eal_init` (once per process: after a failure DPDK keeps half
//!    of its parsed state, so a retry is refused with [`DpdkError::CleanedUp`]). It loads the PMDs from the plugin directory
//!    (`RTE_EAL_PMD_PATH`, on Debian `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`), probes the
//!    devices and checks that every `--vdev net_*` device really came up: the EAL only logs a
//!    failed probe and carries on, so a typo would otherwise leave a port missing.
//! 2. The calling thread becomes the main lcore and is pinned to its core (see `-l` /
//!    `--lcores`). Other threads that use mempool caches call [`register_thread`] first.
//! 3. Drop order at the end: flows, queues, ports ([`crate::Port::close`]), mbufs, pools,
//!    then the [`Eal`]. Its drop stops and closes the ports nobody holds, then runs
//!    `rte_eal_cleanup` — but only if no pool, port handle, queue or flow is left. Otherwise
//!    it logs a warning and leaves DPDK running (the memory goes back at process exit);
//!    cleaning up under a live object would leave it dangling.

use crate::error::{self, DpdkError};
use crate::ffi;
use crate::port;
use crate::registry::{self, EAL_DEAD, EAL_RUNNING, EAL_STARTING, EAL_UNINIT};
use core::ffi::c_char;
use std::ffi::CString;
use std::sync::atomic::Ordering;

/// `lcore_id()` of a thread that is neither an EAL thread nor registered (`LCORE_ID_ANY`).
pub const LCORE_ID_ANY: u32 = u32::MAX;

/// The running EAL. Exactly one exists per process; dropping it shuts DPDK down (see the
/// module docs for the order).
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Starts DPDK with `args` (EAL options only, without the program name: `argv[0]` is
    /// supplied). If it fails, DPDK cannot be started again in this process (only the
    /// arguments refused before DPDK sees them, [`DpdkError::InvalidArgument`], allow a retry). Typical test flags: `--no-pci --no-huge -m 512 --no-shconf --no-telemetry
    /// -l 0 --file-prefix <unique> --vdev net_ring0`.
    ///
    /// The argument strings are leaked on purpose: the EAL may keep pointers into argv.
    ///
    /// # Errors
    /// [`DpdkError::AlreadyInitialized`] on a second call, [`DpdkError::CleanedUp`] after a
    /// failed init or after the EAL was shut down, [`DpdkError::InvalidArgument`] for a NUL byte or `-h`/`--help` (the
    /// EAL would print its usage and exit the process), [`DpdkError::EalInit`] when
    /// `rte_eal_init` fails, and [`DpdkError::DeviceMissing`] when a `--vdev net_*` device did
    /// not come up (the EAL is shut down again in that case).
    pub fn init(args: &[&str]) -> Result<Eal, DpdkError> {
        for a in args {
            if a.contains('\0') {
                return Err(DpdkError::InvalidArgument {
                    arg: (*a).to_owned(),
                    reason: "EAL arguments cannot contain NUL bytes",
                });
            }
            if *a == "-h" || *a == "--help" {
                return Err(DpdkError::InvalidArgument {
                    arg: (*a).to_owned(),
                    reason: "the EAL prints its usage and exits the process on --help; \
                             run dpdk-testpmd --help to read it",
                });
            }
        }
        let claimed = registry::EAL_STATE.compare_exchange(
            EAL_UNINIT,
            EAL_STARTING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        match claimed {
            Ok(_) => {}
            Err(EAL_DEAD) => return Err(DpdkError::CleanedUp),
            Err(_) => return Err(DpdkError::AlreadyInitialized),
        }

        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 2);
        for a in std::iter::once("rvs").chain(args.iter().copied()) {
            match CString::new(a) {
                Ok(c) => argv.push(c.into_raw()),
                Err(_) => {
                    // Checked above; keep the state consistent anyway.
                    registry::EAL_STATE.store(EAL_UNINIT, Ordering::SeqCst);
                    return Err(DpdkError::InvalidArgument {
                        arg: a.to_owned(),
                        reason: "EAL arguments cannot contain NUL bytes",
                    });
                }
            }
        }
        let argc = argv.len() as i32;
        argv.push(core::ptr::null_mut());
        let argv: &'static mut [*mut c_char] = argv.leak();

        // Safety: argv holds argc valid NUL-terminated strings followed by a NULL, all leaked
        // so they outlive the EAL (which may keep pointers into them and permutes the array).
        // The state machine above guarantees no other thread is inside rte_eal_init.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = error::errno();
            // DPDK 22.11 resets its run-once guard after some failures, but not the options
            // it already parsed ("Option -l is ignored, because (-l) is set"), so a retry
            // fails in confusing ways: a failed init is final.
            registry::EAL_STATE.store(EAL_DEAD, Ordering::SeqCst);
            return Err(DpdkError::EalInit {
                errno,
                msg: error::strerror(errno),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
            });
        }
        registry::EAL_STATE.store(EAL_RUNNING, Ordering::SeqCst);

        for name in vdev_names(args) {
            if (name.starts_with("net_") || name.starts_with("eth_"))
                && port::port_id_by_name(&name).is_none()
            {
                registry::EAL_STATE.store(EAL_DEAD, Ordering::SeqCst);
                // Safety: the EAL was initialized above and nothing else has been created
                // from it yet (this function has not returned).
                unsafe { ffi::rte_eal_cleanup() };
                return Err(DpdkError::DeviceMissing { name });
            }
        }
        Ok(Eal { _private: () })
    }

    /// True while the EAL runs in this process.
    pub fn is_running() -> bool {
        registry::eal_running()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let mut ports = registry::ports();
        let held = ports
            .iter()
            .filter(|s| s.claimed || s.queue_count() > 0 || s.flows > 0)
            .count();
        if held > 0 {
            tracing::warn!(
                ports = held,
                "DPDK left running: ports, queues or flows are still held; drop them before the Eal"
            );
            return;
        }
        // Close every port: a configured one releases its RX pool, a vdev removes its
        // socket or interface.
        for id in port::port_ids() {
            let started = ports.get(id as usize).is_some_and(|s| s.started);
            port::stop_and_close(id, started);
            if let Some(slot) = ports.get_mut(id as usize) {
                slot.started = false;
                slot.rx = 0;
                slot.tx = 0;
                slot.pools.clear();
            }
        }
        if registry::EAL_STATE
            .compare_exchange(EAL_RUNNING, EAL_DEAD, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let pools = registry::POOLS_LIVE.load(Ordering::SeqCst);
        if pools > 0 {
            registry::EAL_STATE.store(EAL_RUNNING, Ordering::SeqCst);
            tracing::warn!(
                pools,
                "DPDK left running: mempools are alive or still have mbufs out; drop every \
                 Mbuf and Mempool before the Eal"
            );
            return;
        }
        // Safety: the EAL runs (state was RUNNING), and no DPDK object of this crate is left:
        // no port/queue/flow handle (checked under the port lock, which also blocks new
        // ones), every port is closed, and no pool exists (a new one cannot be made now that
        // the state is DEAD).
        unsafe { ffi::rte_eal_cleanup() };
    }
}

/// The device names of the `--vdev` arguments (the part before the first comma).
fn vdev_names(args: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let spec = if *a == "--vdev" {
            it.next().copied()
        } else {
            a.strip_prefix("--vdev=")
        };
        if let Some(spec) = spec {
            let name = spec.split(',').next().unwrap_or(spec).trim();
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The TSC (time-stamp counter) now, in cycles (`rte_rdtsc`).
#[inline]
pub fn tsc() -> u64 {
    // Safety: reads the CPU's time-stamp counter; no preconditions.
    unsafe { ffi::rvs_rdtsc() }
}

/// TSC cycles per second, measured by the EAL at init (0 before [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // Safety: reads a value the EAL set at init (0 before); no preconditions.
    unsafe { ffi::rvs_get_tsc_hz() }
}

/// This thread's lcore id, or [`LCORE_ID_ANY`] for a thread the EAL does not know.
#[inline]
pub fn lcore_id() -> u32 {
    // Safety: reads a per-thread variable; no preconditions.
    unsafe { ffi::rvs_lcore_id() }
}

/// NUMA socket of the calling thread's core.
pub fn socket_id() -> u32 {
    // Safety: reads per-thread EAL state; returns a default before init.
    unsafe { ffi::rte_socket_id() }
}

/// Gives the calling thread an lcore id (`rte_thread_register`), so it gets its own mempool
/// cache and counts as an lcore. Call it once in each worker thread, after pinning the thread
/// yourself (DPDK records the current affinity; it does not pin). A thread that already has
/// an lcore id (the main thread, or one registered before) gets that id back.
///
/// # Errors
/// [`DpdkError::NotInitialized`] before [`Eal::init`]; [`DpdkError::ThreadRegister`] when no
/// lcore id is free.
pub fn register_thread() -> Result<u32, DpdkError> {
    if !registry::eal_running() {
        return Err(DpdkError::NotInitialized {
            what: "registering a thread",
        });
    }
    let id = lcore_id();
    if id != LCORE_ID_ANY {
        return Ok(id);
    }
    // Safety: the EAL runs; rte_thread_register only touches the calling thread's state and
    // the lcore table under its own lock.
    let rc = unsafe { ffi::rte_thread_register() };
    if rc != 0 {
        let errno = error::errno();
        return Err(DpdkError::ThreadRegister {
            errno,
            msg: error::strerror(errno),
        });
    }
    Ok(lcore_id())
}

/// Gives the calling thread's lcore id back (`rte_thread_unregister`); call it before a
/// registered worker thread exits, so its id can be reused. Does nothing for a thread
/// without an lcore id, or once the EAL is gone.
pub fn unregister_thread() {
    if registry::eal_running() && lcore_id() != LCORE_ID_ANY {
        // Safety: the EAL runs; unregistering affects only the calling thread (an EAL
        // thread's own lcore is left alone by DPDK).
        unsafe { ffi::rte_thread_unregister() };
    }
}

#[cfg(test)]
mod tests {
    use super::vdev_names;

    #[test]
    fn vdev_names_both_spellings() {
        let args = [
            "--no-pci",
            "--vdev",
            "net_ring0",
            "--vdev=net_tap0,iface=t0",
            "--vdev",
        ];
        assert_eq!(vdev_names(&args), vec!["net_ring0", "net_tap0"]);
    }
}
