//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is a cheap, cloneable handle (`Send + Sync`): the pool's default ops
//! (`ring_mp_mc`) let any thread allocate and free. A thread with an lcore id (the main
//! thread, EAL workers, threads given one by [`crate::register_thread`]) goes through its
//! own per-lcore cache; other threads use the shared ring directly (correct, slower).
//!
//! When the last handle goes, the pool is freed only if every mbuf is back and no port
//! receives into it (a configured port holds a handle until it is closed). If mbufs are
//! still out, the pool is leaked on purpose — they point into it — and the [`crate::Eal`]
//! then stays up at drop.

use crate::error::{self, libc_errno, DpdkError};
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::registry;
use core::ptr::NonNull;
use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A pool of packet buffers.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
    data_room: u16,
}

// Safety: an rte_mempool created with the default "ring_mp_mc" ops is multi-producer /
// multi-consumer safe: any thread may allocate from or free to it; per-lcore caches are only
// touched by the thread owning that lcore id. The handle itself is an immutable pointer.
unsafe impl Send for Inner {}
// Safety: as above; every method takes &self and DPDK synchronizes internally.
unsafe impl Sync for Inner {}

impl Mempool {
    /// Data room of a default mbuf, headroom included (`RTE_MBUF_DEFAULT_BUF_SIZE`, 2176 B:
    /// 128 B headroom + 2048 B for the frame).
    pub const DEFAULT_DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    /// Bytes reserved in front of the frame in each mbuf (`RTE_PKTMBUF_HEADROOM`).
    pub const HEADROOM: u16 = ffi::RTE_PKTMBUF_HEADROOM as u16;
    /// Largest per-lcore cache (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
    pub const MAX_CACHE: u32 = ffi::RTE_MEMPOOL_CACHE_MAX_SIZE;

    /// Creates a pool of `n` mbufs named `name` (unique in the process), each with
    /// `data_room` bytes (headroom included: see [`Mempool::DEFAULT_DATA_ROOM`]), a
    /// per-lcore cache of `cache_size` mbufs, on NUMA `socket` (None: any).
    ///
    /// DPDK's advice: `n` a power of two minus one, `cache_size` a divisor of `n` and at
    /// most `n / 1.5`.
    ///
    /// # Errors
    /// [`DpdkError::NotInitialized`] before [`crate::Eal::init`]; [`DpdkError::Mempool`] with
    /// the reason (name taken, out of memory, bad cache size).
    pub fn new(
        name: &str,
        n: u32,
        cache_size: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Mempool, DpdkError> {
        let fail = |errno: i32, hint: &'static str| DpdkError::Mempool {
            name: name.to_owned(),
            n,
            cache_size,
            data_room,
            errno,
            msg: error::strerror(errno),
            hint,
        };
        if cache_size > Self::MAX_CACHE || u64::from(cache_size) * 3 > u64::from(n) * 2 {
            return Err(fail(
                libc_errno::EINVAL,
                "the cache must be at most 512 and at most n / 1.5: lower cache_size",
            ));
        }
        if data_room <= Self::HEADROOM {
            return Err(fail(
                libc_errno::EINVAL,
                "data_room includes the 128 B headroom: use Mempool::DEFAULT_DATA_ROOM (2176)",
            ));
        }
        let Ok(cname) = CString::new(name) else {
            return Err(DpdkError::InvalidArgument {
                arg: name.to_owned(),
                reason: "a pool name cannot contain NUL bytes",
            });
        };
        if name.len() >= ffi::RTE_MEMPOOL_NAMESIZE as usize {
            return Err(DpdkError::InvalidArgument {
                arg: name.to_owned(),
                reason: "a pool name has at most 25 bytes (RTE_MEMPOOL_NAMESIZE - 1)",
            });
        }
        // Count the pool before checking the EAL, so Eal's drop (which flips the state and
        // then reads the count) either sees this pool or makes us see that it is gone.
        registry::POOLS_LIVE.fetch_add(1, Ordering::SeqCst);
        if !registry::eal_running() {
            registry::POOLS_LIVE.fetch_sub(1, Ordering::SeqCst);
            return Err(DpdkError::NotInitialized {
                what: "creating a mempool",
            });
        }
        let socket_id = socket.map_or(-1, |s| s as i32);
        // Safety: the EAL runs (checked above, and it cannot be cleaned up while this pool
        // is counted); cname is a valid C string for the duration of the call.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache_size, 0, data_room, socket_id)
        };
        let Some(raw) = NonNull::new(raw) else {
            registry::POOLS_LIVE.fetch_sub(1, Ordering::SeqCst);
            let errno = error::errno();
            let hint = match errno {
                libc_errno::EEXIST => "a pool with this name exists: pick another name",
                libc_errno::ENOMEM => {
                    "not enough EAL memory: lower n or data_room, or raise -m / hugepages"
                }
                libc_errno::ENOSPC => "too many memzones: create fewer pools",
                _ => "check the sizes",
            };
            return Err(fail(errno, hint));
        };
        Ok(Mempool {
            inner: Arc::new(Inner {
                raw,
                name: name.to_owned(),
                size: n,
                data_room,
            }),
        })
    }

    /// A fresh mbuf (length 0, full headroom), or None when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // Safety: the pool is alive (this handle keeps it); rte_pktmbuf_alloc is safe from
        // any thread and returns either NULL or an mbuf we now own alone (refcnt 1).
        let m = unsafe { ffi::rvs_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        // Safety: a non-NULL result is a freshly allocated, exclusively owned mbuf.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Mbufs in the pool now, per-lcore caches included.
    pub fn available(&self) -> u32 {
        // Safety: the pool is alive; the count is read without side effects.
        unsafe { ffi::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Mbufs out of the pool now (held by the application, a driver's rings, or a port).
    pub fn in_use(&self) -> u32 {
        // Safety: the pool is alive; the count is read without side effects.
        unsafe { ffi::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    /// Number of mbufs the pool was created with.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Data room per mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// True if both handles are the same pool.
    pub fn same_pool(&self, other: &Mempool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The raw pool, for queue setup.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.inner.raw.as_ptr()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Safety: the pool is alive until freed below; reading the count has no effect.
        let out = unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if out > 0 {
            tracing::warn!(
                pool = %self.name,
                mbufs = out,
                "mempool dropped with mbufs still out: leaking it (drop mbufs before pools)"
            );
            return;
        }
        // Safety: this is the last handle (Arc), so no one can allocate from it; no mbuf is
        // out (checked above), and no port receives into it (a configured port holds a
        // handle). The EAL still runs: it is not cleaned up while POOLS_LIVE counts us.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) };
        registry::POOLS_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}
