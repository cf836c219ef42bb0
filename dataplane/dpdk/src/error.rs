//! What can go wrong talking to DPDK: one `thiserror` enum whose messages say what failed, on
//! which port, DPDK's own words for it (`rte_strerror`), and what to do about it.

use crate::ffi;
use core::ffi::CStr;

/// An error from the DPDK layer. Control path only: nothing on the packet path returns one.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK object was asked for before [`crate::Eal::init`] succeeded (or after cleanup).
    #[error("the DPDK EAL is not running: call Eal::init before {what}")]
    NotInitialized {
        /// What was being done.
        what: &'static str,
    },
    /// `Eal::init` was called a second time in this process.
    #[error(
        "the DPDK EAL is already initialized in this process (rte_eal_init runs once per \
         process): keep the first Eal and pass it around instead of calling Eal::init again"
    )]
    AlreadyInitialized,
    /// An earlier `rte_eal_init` failed, or the EAL was cleaned up: DPDK cannot start again
    /// in this process (its init leaves global state behind even when it fails).
    #[error(
        "DPDK cannot start again in this process (an earlier Eal::init failed or the EAL was \
         shut down): fix the EAL arguments and restart the process"
    )]
    CleanedUp,
    /// An argument cannot be passed to DPDK (e.g. it holds a NUL byte).
    #[error("invalid argument {arg:?}: {reason}")]
    InvalidArgument {
        /// The argument as given.
        arg: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `rte_eal_init` failed. DPDK cannot be started again in this process.
    #[error(
        "rte_eal_init failed: {msg} (rte_errno {errno}); check the EAL arguments {args:?} \
         (hugepages or --no-huge, -m, a --file-prefix no other process uses, the --vdev \
         strings) and the EAL log lines above, then restart the process"
    )]
    EalInit {
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
        /// The arguments given (without `argv[0]`).
        args: Vec<String>,
    },
    /// The EAL started but a `--vdev` network device did not come up (its probe failed: the
    /// EAL logs the reason and carries on without it). The EAL has been shut down again.
    #[error(
        "the EAL started but device `{name}` did not appear, so the EAL was shut down: check \
         its --vdev arguments and the EAL log above (a wrong path or interface name, a \
         backend that is not listening, a PMD missing from the plugin directory \
         /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0 or RTE_EAL_PMD_PATH); restart the process \
         to try again"
    )]
    DeviceMissing {
        /// The device name from the `--vdev` argument.
        name: String,
    },
    /// `rte_pktmbuf_pool_create` failed.
    #[error(
        "cannot create mbuf pool `{name}` ({n} mbufs of {data_room} B, cache {cache_size}): \
         {msg} (rte_errno {errno}); {hint}"
    )]
    Mempool {
        /// Pool name.
        name: String,
        /// Number of mbufs asked for.
        n: u32,
        /// Per-lcore cache size asked for.
        cache_size: u32,
        /// Data room per mbuf, headroom included.
        data_room: u16,
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// No port has this name.
    #[error(
        "no DPDK port named `{name}` (ports present: {known}); check the --vdev / -a \
         arguments given to Eal::init"
    )]
    PortNotFound {
        /// The name looked up.
        name: String,
        /// The ports that exist, `id:name`, comma-separated.
        known: String,
    },
    /// No port has this id.
    #[error("port {port} does not exist (ports present: {known})")]
    NoSuchPort {
        /// The id asked for.
        port: u16,
        /// The ports that exist, `id:name`, comma-separated.
        known: String,
    },
    /// Another [`crate::Port`] handle for this port is alive.
    #[error(
        "port {port} already has a Port handle in this process: keep one handle per port \
         and pass it (or its Queues) around"
    )]
    PortBusy {
        /// The port.
        port: u16,
    },
    /// Queue handles, flow rules or monitors still use the port.
    #[error(
        "port {port}: {queues} queue handle(s), {flows} flow rule(s) and {monitors} monitor(s) \
         still use it; drop them before {what}"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// Live [`crate::Queue`] handles.
        queues: u32,
        /// Live [`crate::Flow`] rules.
        flows: u32,
        /// Live [`crate::port::PortMonitor`]s.
        monitors: u32,
        /// What was refused.
        what: &'static str,
    },
    /// The queue was not configured.
    #[error(
        "port {port}: queue {queue} is not configured (the port has {rx} RX and {tx} TX \
         queues): configure it with more queues, one RX/TX pair per worker"
    )]
    NoSuchQueue {
        /// The port.
        port: u16,
        /// The queue asked for.
        queue: u16,
        /// Configured RX queues.
        rx: u16,
        /// Configured TX queues.
        tx: u16,
    },
    /// Another [`crate::Queue`] handle owns this queue.
    #[error("port {port}: queue {queue} already has a Queue handle; a queue has one owner thread")]
    QueueBusy {
        /// The port.
        port: u16,
        /// The queue.
        queue: u16,
    },
    /// RSS was asked of a port that has no RSS.
    #[error(
        "port {port} ({driver}) cannot do RSS: use one queue, or set rss = false for it and \
         let the redirect rings balance"
    )]
    NoRss {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
    },
    /// RSS was asked on packet types the port cannot hash.
    #[error(
        "port {port} ({driver}) cannot hash on RSS types {unsupported:#x} (it offers \
         {offered:#x}): ask for a subset of what it offers"
    )]
    RssHashUnsupported {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// Requested hash types the port lacks (`RTE_ETH_RSS_*` bits).
        unsupported: u64,
        /// The port's `flow_type_rss_offloads`.
        offered: u64,
    },
    /// The RSS key has the wrong length.
    #[error(
        "port {port} ({driver}): the RSS key is {given} bytes but the port's is {expected} \
         bytes: give a key of that length, or none to keep the port's"
    )]
    RssKeyLength {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// Length given.
        given: usize,
        /// The port's `hash_key_size`.
        expected: usize,
    },
    /// A count is outside what the port allows.
    #[error("port {port} ({driver}): {what} {asked} is not allowed: the port takes {min}..={max}")]
    OutOfRange {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// Which setting.
        what: &'static str,
        /// Value asked for.
        asked: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// TX offloads asked that the port does not offer.
    #[error(
        "port {port} ({driver}): TX offloads {unsupported:#x} are not offered (the port \
         offers {offered:#x}): drop them from tx_offloads and compute in software"
    )]
    TxOffloadUnsupported {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// Requested offloads the port lacks (`RTE_ETH_TX_OFFLOAD_*` bits).
        unsupported: u64,
        /// The port's `tx_offload_capa`.
        offered: u64,
    },
    /// The port's driver does not implement this operation.
    #[error("port {port} ({driver}) does not support {what}: {detail}")]
    Unsupported {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// The operation.
        what: &'static str,
        /// DPDK's words, and the fallback to use.
        detail: String,
    },
    /// A port operation failed.
    #[error("port {port} ({driver}): {op} failed: {msg} (errno {errno}){hint}")]
    Port {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// The DPDK call.
        op: &'static str,
        /// Positive errno.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
        /// What to do about it (empty or starting with "; ").
        hint: &'static str,
    },
    /// rte_flow refused or failed to create a rule.
    #[error(
        "port {port} ({driver}): rte_flow rejected the rule: {msg} (errno {errno}); the \
         driver may not match this pattern or queue: fall back to the software Toeplitz \
         choice of LIP ports or the redirect rings"
    )]
    Flow {
        /// The port.
        port: u16,
        /// Its driver.
        driver: String,
        /// Positive errno.
        errno: i32,
        /// The driver's message (`rte_flow_error.message`) or `rte_strerror`.
        msg: String,
    },
    /// `rte_thread_register` failed.
    #[error(
        "rte_thread_register failed: {msg} (rte_errno {errno}); a process has at most \
         RTE_MAX_LCORE lcore ids, shared by -l/--lcores and registered threads: use fewer"
    )]
    ThreadRegister {
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(errno)`.
        msg: String,
    },
}

/// `rte_strerror(errno)` as an owned string (DPDK's buffer is per-thread and reused).
pub(crate) fn strerror(errno: i32) -> String {
    // Safety: rte_strerror accepts any int and returns a pointer to a NUL-terminated string
    // (a static one, or a per-thread buffer) that stays valid until the next call on this
    // thread; it is copied out before returning.
    unsafe {
        let p = ffi::rte_strerror(errno);
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// This thread's `rte_errno`.
pub(crate) fn errno() -> i32 {
    // Safety: reads a per-thread integer; no preconditions.
    unsafe { ffi::rvs_errno() }
}

/// Advice for a failed port call, by errno.
pub(crate) fn hint(errno: i32) -> &'static str {
    match errno {
        libc_errno::EBUSY => "; stop the port first",
        libc_errno::ENOTSUP | libc_errno::ENOSYS => "; the driver does not implement it",
        libc_errno::EINVAL => "; check the values against Port::info()",
        libc_errno::ENOMEM => {
            "; give the EAL more memory (-m / hugepages) or use fewer descriptors or mbufs"
        }
        libc_errno::ENODEV => "; the port is gone (closed or unplugged)",
        libc_errno::EIO => "; the device was removed",
        _ => "",
    }
}

/// The errno values the binding tells apart (Linux numbering, which DPDK uses).
pub(crate) mod libc_errno {
    pub const EIO: i32 = 5;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ENOSYS: i32 = 38;
    pub const ENOTSUP: i32 = 95;
}
