//! Ethernet ports and their queues.
//!
//! A [`Port`] is this process's one handle on a port id (a second one is refused): it
//! configures, starts, stops and closes the device and reads its state. A [`Queue`] is one
//! RX/TX queue pair of a configured port, owned by one worker thread (also one handle per
//! queue). While queue handles or flow rules exist, the port cannot be reconfigured or
//! closed: a driver would otherwise be called on queues it has freed.
//!
//! The burst calls ([`Queue::rx_burst`], [`Queue::tx_burst`]) allocate nothing and move
//! mbuf pointers straight between DPDK's arrays and an `ArrayVec` of [`Mbuf`].

use crate::error::{self, libc_errno, DpdkError};
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::registry::{self, MAX_PORTS, MAX_QUEUES};
use arrayvec::ArrayVec;
use core::ffi::{c_char, CStr};
use std::ffi::CString;

/// Packets per burst (DPDK's customary 32).
pub const BURST: usize = 32;

/// RSS hash types (`RTE_ETH_RSS_*`) for [`RssConf::hash_functions`].
pub mod rss {
    use crate::ffi;

    /// IPv4 (all kinds).
    pub const IPV4: u64 = ffi::RTE_ETH_RSS_IPV4 as u64;
    /// Non-fragmented IPv4 TCP (addresses and ports).
    pub const NONFRAG_IPV4_TCP: u64 = ffi::RTE_ETH_RSS_NONFRAG_IPV4_TCP as u64;
    /// Non-fragmented IPv4 UDP (addresses and ports).
    pub const NONFRAG_IPV4_UDP: u64 = ffi::RTE_ETH_RSS_NONFRAG_IPV4_UDP as u64;
    /// Every IP type (`RTE_ETH_RSS_IP`).
    pub const IP: u64 = ffi::RTE_ETH_RSS_IP as u64;
    /// Every TCP type (`RTE_ETH_RSS_TCP`).
    pub const TCP: u64 = ffi::RTE_ETH_RSS_TCP as u64;
    /// Every UDP type (`RTE_ETH_RSS_UDP`).
    pub const UDP: u64 = ffi::RTE_ETH_RSS_UDP as u64;
}

/// TX offload capabilities (`RTE_ETH_TX_OFFLOAD_*`) for [`PortConf::tx_offloads`].
pub mod tx_offload {
    use crate::ffi;

    /// IPv4 header checksum.
    pub const IPV4_CKSUM: u64 = ffi::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM as u64;
    /// UDP checksum.
    pub const UDP_CKSUM: u64 = ffi::RTE_ETH_TX_OFFLOAD_UDP_CKSUM as u64;
    /// TCP checksum.
    pub const TCP_CKSUM: u64 = ffi::RTE_ETH_TX_OFFLOAD_TCP_CKSUM as u64;
    /// Multi-segment frames.
    pub const MULTI_SEGS: u64 = ffi::RTE_ETH_TX_OFFLOAD_MULTI_SEGS as u64;
}

/// What a port's driver says it can do (`rte_eth_dev_info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The PMD, e.g. `net_ring`, `net_virtio_user`, `mlx5_pci`.
    pub driver_name: String,
    /// Most RX queues.
    pub max_rx_queues: u16,
    /// Most TX queues.
    pub max_tx_queues: u16,
    /// RSS hash types it can use (`RTE_ETH_RSS_*`); 0: no RSS.
    pub flow_type_rss_offloads: u64,
    /// RSS redirection table entries (0: none to query).
    pub reta_size: u16,
    /// RSS key bytes (0: no key to query or set).
    pub hash_key_size: u8,
    /// RX offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// TX offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// Configured RX queues now.
    pub nb_rx_queues: u16,
    /// Configured TX queues now.
    pub nb_tx_queues: u16,
}

/// RSS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConf {
    /// Hash types (`rss::*` bits); must be a subset of the port's `flow_type_rss_offloads`.
    pub hash_functions: u64,
    /// The Toeplitz key (the port's `hash_key_size` bytes), or None to keep the driver's.
    pub key: Option<Vec<u8>>,
}

/// How to set a port up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConf {
    /// RX queues (one per worker).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue (rounded to what the driver allows).
    pub rx_desc: u16,
    /// TX descriptors per queue (rounded to what the driver allows).
    pub tx_desc: u16,
    /// MTU to set, or None to keep the driver's.
    pub mtu: Option<u16>,
    /// RSS over the RX queues, or None (everything to queue 0 unless rte_flow steers).
    pub rss: Option<RssConf>,
    /// TX offloads to enable (`tx_offload::*`); must be offered by the port.
    pub tx_offloads: u64,
}

impl Default for PortConf {
    fn default() -> PortConf {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            rss: None,
            tx_offloads: 0,
        }
    }
}

/// A port's counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the NIC dropped because RX queues were full.
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures (pool empty).
    pub rx_nombuf: u64,
}

/// A port's link (`rte_eth_link`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// The link is up.
    pub up: bool,
    /// Its speed in Mbit/s (0 when down or unknown).
    pub speed_mbps: u32,
}

/// This process's handle on one port. Dropping it leaves the device as it is (configured,
/// started); [`Port::close`] closes it, and the [`crate::Eal`]'s drop closes what is left.
#[derive(Debug)]
pub struct Port {
    id: u16,
}

/// The ids of the ports that exist now.
pub(crate) fn port_ids() -> Vec<u16> {
    let mut ids = Vec::new();
    if !registry::eal_running() {
        return ids;
    }
    // Safety: the EAL runs; rte_eth_find_next only reads the port table.
    let mut p = unsafe { ffi::rte_eth_find_next(0) };
    while (p as usize) < MAX_PORTS {
        ids.push(p);
        // Safety: as above.
        p = unsafe { ffi::rte_eth_find_next(p + 1) };
    }
    ids
}

/// The id of the port named `name`, if it exists.
pub(crate) fn port_id_by_name(name: &str) -> Option<u16> {
    let cname = CString::new(name).ok()?;
    let mut id = 0u16;
    // Safety: the caller made sure the EAL runs; cname is a valid C string and id a valid
    // out-pointer for the call.
    let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

/// The name of port `id` (empty if it has none).
pub(crate) fn port_name(id: u16) -> String {
    let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // Safety: buf has RTE_ETH_NAME_MAX_LEN bytes, the size DPDK writes at most (NUL
    // included); the EAL runs when this is called.
    let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if rc != 0 {
        return String::new();
    }
    // Safety: on success buf holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `id:name` of every port, for error messages.
fn known_ports() -> String {
    let list: Vec<String> = port_ids()
        .into_iter()
        .map(|id| format!("{id}:{}", port_name(id)))
        .collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// Stops (if `started`) and closes port `id`; returns `rte_eth_dev_close`'s result.
pub(crate) fn stop_and_close(id: u16, started: bool) -> i32 {
    // Safety: the EAL runs (callers hold a Port handle, or the port lock with the state
    // RUNNING); stopping and closing a valid port are allowed in any state, an invalid id
    // only returns an error.
    unsafe {
        if started {
            ffi::rte_eth_dev_stop(id);
        }
        ffi::rte_eth_dev_close(id)
    }
}

impl Port {
    /// Number of ports (`rte_eth_dev_count_avail`); 0 before [`crate::Eal::init`].
    pub fn count() -> u16 {
        if !registry::eal_running() {
            return 0;
        }
        // Safety: the EAL runs; the call only reads the port table.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// The ids of all ports, in order.
    pub fn ids() -> Vec<u16> {
        port_ids()
    }

    /// Takes the handle on port `id`.
    ///
    /// # Errors
    /// [`DpdkError::NotInitialized`], [`DpdkError::NoSuchPort`], or [`DpdkError::PortBusy`] if
    /// a handle on it exists.
    pub fn open(id: u16) -> Result<Port, DpdkError> {
        let mut ports = registry::ports();
        if !registry::eal_running() {
            return Err(DpdkError::NotInitialized {
                what: "opening a port",
            });
        }
        // Safety: the EAL runs; the call only reads the port table.
        let valid = (id as usize) < MAX_PORTS && unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 1;
        if !valid {
            drop(ports);
            return Err(DpdkError::NoSuchPort {
                port: id,
                known: known_ports(),
            });
        }
        let slot = &mut ports[id as usize];
        if slot.claimed {
            return Err(DpdkError::PortBusy { port: id });
        }
        slot.claimed = true;
        Ok(Port { id })
    }

    /// Takes the handle on the port named `name` (the `--vdev` name, or a PCI address).
    ///
    /// # Errors
    /// [`DpdkError::PortNotFound`] (with the names that exist), and those of [`Port::open`].
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        if !registry::eal_running() {
            return Err(DpdkError::NotInitialized {
                what: "looking up a port",
            });
        }
        match port_id_by_name(name) {
            Some(id) => Port::open(id),
            None => Err(DpdkError::PortNotFound {
                name: name.to_owned(),
                known: known_ports(),
            }),
        }
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's name.
    pub fn name(&self) -> String {
        port_name(self.id)
    }

    fn driver(&self) -> String {
        self.info().map(|i| i.driver_name).unwrap_or_default()
    }

    fn port_err(&self, op: &'static str, rc: i32) -> DpdkError {
        let errno = rc.abs();
        DpdkError::Port {
            port: self.id,
            driver: self.driver(),
            op,
            errno,
            msg: error::strerror(errno),
            hint: error::hint(errno),
        }
    }

    fn raw_info(&self) -> Result<ffi::rte_eth_dev_info, DpdkError> {
        let mut info = ffi::rte_eth_dev_info::default();
        // Safety: the port handle exists, so the EAL runs; info is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            let errno = rc.abs();
            return Err(DpdkError::Port {
                port: self.id,
                driver: String::new(),
                op: "rte_eth_dev_info_get",
                errno,
                msg: error::strerror(errno),
                hint: error::hint(errno),
            });
        }
        Ok(info)
    }

    /// What the driver can do.
    ///
    /// # Errors
    /// [`DpdkError::Port`] if the driver cannot report it (the port is gone).
    pub fn info(&self) -> Result<PortInfo, DpdkError> {
        let i = self.raw_info()?;
        let driver_name = if i.driver_name.is_null() {
            String::new()
        } else {
            // Safety: a non-NULL driver_name is the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(i.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver_name,
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            flow_type_rss_offloads: i.flow_type_rss_offloads,
            reta_size: i.reta_size,
            hash_key_size: i.hash_key_size,
            rx_offload_capa: i.rx_offload_capa,
            tx_offload_capa: i.tx_offload_capa,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            nb_rx_queues: i.nb_rx_queues,
            nb_tx_queues: i.nb_tx_queues,
        })
    }

    /// NUMA socket of the device, if known (virtual devices have none).
    pub fn socket(&self) -> Option<u32> {
        // Safety: the port handle exists, so the EAL runs; the call reads the port table.
        let s = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        u32::try_from(s).ok()
    }

    /// Configures the port: queue counts, RSS, TX offloads, descriptors, MTU; RX queues take
    /// mbufs from `pool` (which the port keeps alive until it is closed).
    /// The port must be stopped. On error the port may be left half-configured: fix the
    /// cause and configure again.
    ///
    /// # Errors
    /// [`DpdkError::PortInUse`] while queue handles or flows exist; [`DpdkError::OutOfRange`]
    /// for queue counts or an MTU the port does not take; [`DpdkError::NoRss`],
    /// [`DpdkError::RssHashUnsupported`], [`DpdkError::RssKeyLength`] for RSS it cannot do;
    /// [`DpdkError::TxOffloadUnsupported`]; [`DpdkError::Port`] when DPDK refuses.
    pub fn configure(&mut self, conf: &PortConf, pool: &Mempool) -> Result<(), DpdkError> {
        self.ensure_unused("reconfiguring the port")?;
        let info = self.info()?;
        let range = |what, asked: u16, min: u16, max: u16| {
            if asked < min || asked > max {
                Err(DpdkError::OutOfRange {
                    port: self.id,
                    driver: info.driver_name.clone(),
                    what,
                    asked: asked.into(),
                    min: min.into(),
                    max: max.into(),
                })
            } else {
                Ok(())
            }
        };
        range("rx_queues", conf.rx_queues, 1, info.max_rx_queues)?;
        range("tx_queues", conf.tx_queues, 1, info.max_tx_queues)?;
        if let Some(mtu) = conf.mtu {
            range("mtu", mtu, info.min_mtu, info.max_mtu)?;
        }
        let unsupported = conf.tx_offloads & !info.tx_offload_capa;
        if unsupported != 0 {
            return Err(DpdkError::TxOffloadUnsupported {
                port: self.id,
                driver: info.driver_name,
                unsupported,
                offered: info.tx_offload_capa,
            });
        }

        let mut eth_conf = ffi::rte_eth_conf::default();
        eth_conf.txmode.offloads = conf.tx_offloads;
        let mut key = Vec::new();
        if let Some(rss) = &conf.rss {
            if info.flow_type_rss_offloads == 0 {
                return Err(DpdkError::NoRss {
                    port: self.id,
                    driver: info.driver_name,
                });
            }
            let unsupported = rss.hash_functions & !info.flow_type_rss_offloads;
            if unsupported != 0 {
                return Err(DpdkError::RssHashUnsupported {
                    port: self.id,
                    driver: info.driver_name,
                    unsupported,
                    offered: info.flow_type_rss_offloads,
                });
            }
            if let Some(k) = &rss.key {
                if k.len() != usize::from(info.hash_key_size) || k.len() > usize::from(u8::MAX) {
                    return Err(DpdkError::RssKeyLength {
                        port: self.id,
                        driver: info.driver_name,
                        given: k.len(),
                        expected: info.hash_key_size.into(),
                    });
                }
                key.clone_from(k);
            }
            eth_conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss.hash_functions;
            if !key.is_empty() {
                eth_conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                eth_conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }

        // Safety: the port handle exists (EAL runs); eth_conf is fully initialized and the
        // key it may point to lives until the end of this function (DPDK copies it).
        let rc = unsafe {
            ffi::rte_eth_dev_configure(self.id, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_configure", rc));
        }
        // From here the old queues are gone: forget them before anything else can fail, and
        // keep the new pool alive before any queue can take mbufs from it (old pools stay
        // until close: a queue that failed to set up again may still point to one).
        {
            let mut ports = registry::ports();
            let slot = &mut ports[self.id as usize];
            slot.rx = 0;
            slot.tx = 0;
            if !slot.pools.iter().any(|p| p.same_pool(pool)) {
                slot.pools.push(pool.clone());
            }
        }
        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // Safety: valid port; both pointers are valid for the call.
        let rc =
            unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_adjust_nb_rx_tx_desc", rc));
        }
        let socket = self.socket().map_or(-1i32, |s| s as i32);
        let socket = socket as u32; // SOCKET_ID_ANY is -1 as an unsigned int.
        for q in 0..conf.rx_queues {
            // Safety: the port is configured with rx_queues queues and q is below; a NULL
            // rxconf asks for the driver's defaults; the pool is alive and the slot keeps it
            // alive until the port is closed.
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    rx_desc,
                    socket,
                    core::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(self.port_err("rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..conf.tx_queues {
            // Safety: as above for TX queues; NULL txconf uses the driver's defaults plus
            // the port-level offloads.
            let rc = unsafe {
                ffi::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket, core::ptr::null())
            };
            if rc != 0 {
                return Err(self.port_err("rte_eth_tx_queue_setup", rc));
            }
        }
        if let Some(mtu) = conf.mtu {
            // Safety: valid, configured port.
            let rc = unsafe { ffi::rte_eth_dev_set_mtu(self.id, mtu) };
            if rc != 0 {
                return Err(self.port_err("rte_eth_dev_set_mtu", rc));
            }
        }
        let mut ports = registry::ports();
        let slot = &mut ports[self.id as usize];
        slot.rx = conf.rx_queues;
        slot.tx = conf.tx_queues;
        Ok(())
    }

    fn ensure_unused(&self, what: &'static str) -> Result<(), DpdkError> {
        let ports = registry::ports();
        let slot = &ports[self.id as usize];
        let (queues, flows, monitors) = (slot.queue_count(), slot.flows, slot.monitors);
        if queues > 0 || flows > 0 || monitors > 0 {
            return Err(DpdkError::PortInUse {
                port: self.id,
                queues,
                flows,
                monitors,
                what,
            });
        }
        Ok(())
    }

    /// Starts the port (after [`Port::configure`]).
    ///
    /// # Errors
    /// [`DpdkError::Port`] when the driver refuses.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        // Safety: valid port; starting an unconfigured port only returns an error.
        let rc = unsafe { ffi::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_start", rc));
        }
        registry::ports()[self.id as usize].started = true;
        Ok(())
    }

    /// Stops the port; queue handles stay valid (bursts return nothing until restarted).
    ///
    /// # Errors
    /// [`DpdkError::Port`] when the driver refuses.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        // Safety: valid port; DPDK points the fast-path at dummy functions while stopped,
        // so queue handles stay harmless.
        let rc = unsafe { ffi::rte_eth_dev_stop(self.id) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_stop", rc));
        }
        registry::ports()[self.id as usize].started = false;
        Ok(())
    }

    /// Stops and closes the port and releases its RX pools. The port id is gone afterwards.
    ///
    /// # Errors
    /// [`DpdkError::PortInUse`] while queue handles or flows exist (drop them first);
    /// [`DpdkError::Port`] when the driver refuses.
    pub fn close(self) -> Result<(), DpdkError> {
        self.ensure_unused("closing the port")?;
        let started = registry::ports()[self.id as usize].started;
        // No queue handle or flow refers to the port (checked above; new ones need this
        // handle, which close consumes).
        let rc = stop_and_close(self.id, started);
        let pool = {
            let mut ports = registry::ports();
            let slot = &mut ports[self.id as usize];
            slot.started = false;
            slot.rx = 0;
            slot.tx = 0;
            core::mem::take(&mut slot.pools)
        };
        // Released outside the lock; may free the pool if it was the last handle.
        drop(pool);
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_close", rc));
        }
        Ok(())
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// [`DpdkError::Port`] (e.g. `ENOTSUP` from drivers without it).
    pub fn promiscuous(&mut self, on: bool) -> Result<(), DpdkError> {
        // Safety: valid port.
        let rc = unsafe {
            if on {
                ffi::rte_eth_promiscuous_enable(self.id)
            } else {
                ffi::rte_eth_promiscuous_disable(self.id)
            }
        };
        if rc != 0 {
            return Err(self.port_err("rte_eth_promiscuous_enable/disable", rc));
        }
        Ok(())
    }

    /// True if promiscuous mode is on.
    pub fn is_promiscuous(&self) -> bool {
        // Safety: valid port; the call reads device state.
        unsafe { ffi::rte_eth_promiscuous_get(self.id) == 1 }
    }

    /// Receives frames for every multicast group (`rte_eth_allmulticast_enable`), e.g. VRRP
    /// adverts for the kernel behind the exception path.
    ///
    /// # Errors
    /// [`DpdkError::Port`] (e.g. `ENOTSUP` from drivers without it: try
    /// [`Port::set_multicast_addrs`]).
    pub fn allmulticast(&mut self) -> Result<(), DpdkError> {
        // Safety: valid port.
        let rc = unsafe { ffi::rte_eth_allmulticast_enable(self.id) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_allmulticast_enable", rc));
        }
        Ok(())
    }

    /// True if the port receives every multicast group.
    pub fn is_allmulticast(&self) -> bool {
        // Safety: valid port; the call reads device state.
        unsafe { ffi::rte_eth_allmulticast_get(self.id) == 1 }
    }

    /// Receives frames for exactly these multicast MACs (`rte_eth_dev_set_mc_addr_list`,
    /// which replaces the port's list; an empty list clears it).
    ///
    /// # Errors
    /// [`DpdkError::Port`] (`ENOTSUP` from drivers without a multicast filter, `EINVAL` for a
    /// MAC that is not multicast or more than the driver holds).
    pub fn set_multicast_addrs(&mut self, macs: &[[u8; 6]]) -> Result<(), DpdkError> {
        let mut list: Vec<ffi::rte_ether_addr> = macs
            .iter()
            .map(|m| ffi::rte_ether_addr { addr_bytes: *m })
            .collect();
        let ptr = if list.is_empty() {
            core::ptr::null_mut()
        } else {
            list.as_mut_ptr()
        };
        // Safety: valid port; `ptr` points to `list.len()` addresses that live across the
        // call (or is null with a count of 0, which clears the list); DPDK copies them.
        let rc = unsafe { ffi::rte_eth_dev_set_mc_addr_list(self.id, ptr, list.len() as u32) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_set_mc_addr_list", rc));
        }
        Ok(())
    }

    /// The port's MAC address (all zeros if the driver cannot say, which for a valid port
    /// does not happen).
    pub fn mac(&self) -> [u8; 6] {
        let mut a = ffi::rte_ether_addr::default();
        // Safety: valid port; a is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut a) };
        if rc != 0 {
            tracing::debug!(port = self.id, rc, "rte_eth_macaddr_get failed");
        }
        a.addr_bytes
    }

    /// Sets the port's MAC address.
    ///
    /// # Errors
    /// [`DpdkError::Port`] (some drivers cannot change it).
    pub fn set_mac(&mut self, mac: [u8; 6]) -> Result<(), DpdkError> {
        let mut a = ffi::rte_ether_addr { addr_bytes: mac };
        // Safety: valid port; a is valid for the call.
        let rc = unsafe { ffi::rte_eth_dev_default_mac_addr_set(self.id, &mut a) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_default_mac_addr_set", rc));
        }
        Ok(())
    }

    /// The MTU now.
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        let mut mtu = 0u16;
        // Safety: valid port; mtu is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_get_mtu", rc));
        }
        Ok(mtu)
    }

    fn unsupported(&self, what: &'static str, detail: String) -> DpdkError {
        DpdkError::Unsupported {
            port: self.id,
            driver: self.driver(),
            what,
            detail,
        }
    }

    /// The RSS key in use (`rte_eth_dev_rss_hash_conf_get`), to compute the Toeplitz hash in
    /// software.
    ///
    /// # Errors
    /// [`DpdkError::Unsupported`] for a port without RSS or without a key to report;
    /// [`DpdkError::Port`] otherwise.
    pub fn rss_key(&self) -> Result<Vec<u8>, DpdkError> {
        let info = self.info()?;
        if info.flow_type_rss_offloads == 0 {
            return Err(self.unsupported(
                "RSS",
                "it reports no RSS hash types; steer replies with the redirect rings".into(),
            ));
        }
        // Some drivers report no key size but still return the standard 40-byte key.
        let len = if info.hash_key_size == 0 {
            40
        } else {
            usize::from(info.hash_key_size)
        };
        let mut key = vec![0u8; len];
        let mut conf = ffi::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: len as u8,
            rss_hf: 0,
        };
        // Safety: valid port; conf points to a buffer of rss_key_len bytes, which is what
        // DPDK writes at most.
        let rc = unsafe { ffi::rte_eth_dev_rss_hash_conf_get(self.id, &mut conf) };
        if rc == -libc_errno::ENOTSUP || rc == -libc_errno::ENOSYS {
            return Err(self.unsupported(
                "reading the RSS key",
                format!(
                    "{}; steer replies with the redirect rings",
                    error::strerror(-rc)
                ),
            ));
        }
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_rss_hash_conf_get", rc));
        }
        key.truncate(usize::from(conf.rss_key_len).min(len));
        Ok(key)
    }

    /// The RSS redirection table: entry i is the queue for hash values with `hash % len == i`.
    ///
    /// # Errors
    /// [`DpdkError::Unsupported`] for a port without a table; [`DpdkError::Port`] otherwise.
    pub fn reta(&self) -> Result<Vec<u16>, DpdkError> {
        let info = self.info()?;
        let size = usize::from(info.reta_size);
        if size == 0 || info.flow_type_rss_offloads == 0 {
            return Err(self.unsupported(
                "RSS redirection tables",
                "it reports no table; steer replies with the redirect rings".into(),
            ));
        }
        let group = ffi::RTE_ETH_RETA_GROUP_SIZE as usize;
        let mut groups = vec![ffi::rte_eth_rss_reta_entry64::default(); size.div_ceil(group)];
        for (i, g) in groups.iter_mut().enumerate() {
            let n = (size - i * group).min(group);
            g.mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        }
        // Safety: valid port; groups holds ceil(reta_size / 64) entries, as DPDK requires.
        let rc = unsafe {
            ffi::rte_eth_dev_rss_reta_query(self.id, groups.as_mut_ptr(), info.reta_size)
        };
        if rc == -libc_errno::ENOTSUP || rc == -libc_errno::ENOSYS {
            return Err(self.unsupported(
                "querying the RSS redirection table",
                format!(
                    "{}; steer replies with the redirect rings",
                    error::strerror(-rc)
                ),
            ));
        }
        if rc != 0 {
            return Err(self.port_err("rte_eth_dev_rss_reta_query", rc));
        }
        Ok(groups
            .iter()
            .flat_map(|g| g.reta.iter().copied())
            .take(size)
            .collect())
    }

    /// The port's counters.
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        read_stats(self.id).map_err(|rc| self.port_err("rte_eth_stats_get", rc))
    }

    /// Resets the counters.
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn reset_stats(&mut self) -> Result<(), DpdkError> {
        // Safety: valid port.
        let rc = unsafe { ffi::rte_eth_stats_reset(self.id) };
        if rc != 0 {
            return Err(self.port_err("rte_eth_stats_reset", rc));
        }
        Ok(())
    }

    /// The link's state and speed, without waiting for negotiation.
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn link(&self) -> Result<Link, DpdkError> {
        read_link(self.id).map_err(|rc| self.port_err("rte_eth_link_get_nowait", rc))
    }

    /// A handle that reads this port's counters and link from another thread (rvsd's
    /// once-a-second publisher) while workers own its queues. While it lives the port cannot
    /// be reconfigured or closed ([`DpdkError::PortInUse`]).
    pub fn monitor(&self) -> PortMonitor {
        registry::ports()[self.id as usize].monitors += 1;
        PortMonitor { id: self.id }
    }

    /// True if the link is up (without waiting for negotiation).
    pub fn link_up(&self) -> bool {
        read_link(self.id).is_ok_and(|l| l.up)
    }

    /// Takes the handle on RX/TX queue pair `queue` (both must be configured), for one
    /// worker thread to own.
    ///
    /// # Errors
    /// [`DpdkError::NoSuchQueue`] if the port has no such queue pair (configure first);
    /// [`DpdkError::QueueBusy`] if a handle on it exists.
    pub fn queue(&self, queue: u16) -> Result<Queue, DpdkError> {
        let mut ports = registry::ports();
        let slot = &mut ports[self.id as usize];
        if queue >= slot.rx || queue >= slot.tx || queue as usize >= MAX_QUEUES {
            return Err(DpdkError::NoSuchQueue {
                port: self.id,
                queue,
                rx: slot.rx,
                tx: slot.tx,
            });
        }
        if slot.queue_taken(queue) {
            return Err(DpdkError::QueueBusy {
                port: self.id,
                queue,
            });
        }
        slot.set_queue(queue, true);
        Ok(Queue {
            port: self.id,
            queue,
        })
    }

    /// Marks a flow rule created on this port (it must be destroyed before the port closes).
    pub(crate) fn add_flow(&self) {
        registry::ports()[self.id as usize].flows += 1;
    }
}

/// Reads the link of port `id`; DPDK's negative errno on failure.
fn read_link(id: u16) -> Result<Link, i32> {
    let (mut up, mut speed) = (0i32, 0u32);
    // Safety: the caller holds a Port or PortMonitor of `id`, so the EAL runs and the port is
    // neither closed nor reconfigured meanwhile; up and speed are valid out-pointers.
    let rc = unsafe { ffi::rvs_link_get(id, &mut up, &mut speed) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(Link {
        up: up == 1,
        speed_mbps: speed,
    })
}

/// Reads the counters of port `id`; DPDK's negative errno on failure.
fn read_stats(id: u16) -> Result<PortStats, i32> {
    let mut s = ffi::rte_eth_stats::default();
    // Safety: as in read_link; s is a valid out-pointer.
    let rc = unsafe { ffi::rte_eth_stats_get(id, &mut s) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

/// Reads one port's counters and link from any thread ([`Port::monitor`]): `Send`, `Sync`.
/// The port stays configured and open while one exists.
#[derive(Debug)]
pub struct PortMonitor {
    id: u16,
}

impl PortMonitor {
    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's counters, as [`Port::stats`].
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        read_stats(self.id).map_err(|rc| monitor_err(self.id, "rte_eth_stats_get", rc))
    }

    /// The port's link, as [`Port::link`].
    ///
    /// # Errors
    /// [`DpdkError::Port`].
    pub fn link(&self) -> Result<Link, DpdkError> {
        read_link(self.id).map_err(|rc| monitor_err(self.id, "rte_eth_link_get_nowait", rc))
    }
}

/// A monitor's error, worded as the port's own.
fn monitor_err(id: u16, op: &'static str, rc: i32) -> DpdkError {
    // A view of the port for its error message only: not dropped, so the claim of the real
    // handle stays as it is.
    let port = core::mem::ManuallyDrop::new(Port { id });
    port.port_err(op, rc)
}

impl Drop for PortMonitor {
    fn drop(&mut self) {
        let mut ports = registry::ports();
        let slot = &mut ports[self.id as usize];
        slot.monitors = slot.monitors.saturating_sub(1);
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        registry::ports()[self.id as usize].claimed = false;
    }
}

/// Forgets a destroyed flow rule of port `id`.
pub(crate) fn remove_flow(id: u16) {
    let mut ports = registry::ports();
    let slot = &mut ports[id as usize];
    slot.flows = slot.flows.saturating_sub(1);
}

/// One RX/TX queue pair of a configured port, owned by one thread. `Send`, so it can be
/// moved to the worker thread that polls it.
#[derive(Debug)]
pub struct Queue {
    port: u16,
    queue: u16,
}

impl Queue {
    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives up to `out.remaining_capacity()` frames, appending them to `out`. Returns how
    /// many arrived. Nothing is allocated.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut ArrayVec<Mbuf, BURST>) -> usize {
        let len = out.len();
        let room = out.remaining_capacity();
        if room == 0 {
            return 0;
        }
        // Safety: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so out's spare capacity
        // (room slots after len) is a valid array of *mut rte_mbuf to write. The queue is
        // configured (a handle exists only for configured queues, and reconfiguring needs all
        // handles gone), and this handle is its only user (&mut self, one handle per queue).
        // The driver writes n <= room pointers to valid mbufs whose ownership it hands over.
        let n = unsafe {
            ffi::rvs_rx_burst(
                self.port,
                self.queue,
                out.as_mut_ptr().add(len).cast::<*mut ffi::rte_mbuf>(),
                room as u16,
            )
        };
        let n = usize::from(n).min(room);
        // Safety: the driver initialized slots len..len + n with owned, non-NULL mbufs.
        unsafe { out.set_len(len + n) };
        n
    }

    /// Transmits frames from the front of `pkts`; the driver takes ownership of the ones it
    /// accepts, which leave `pkts`. The rest stay, in order, for the caller to retry or drop.
    /// Returns how many were taken. Nothing is allocated.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut ArrayVec<Mbuf, BURST>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let base = pkts.as_mut_ptr();
        // Safety: as in rx_burst for the queue; base points to len initialized Mbufs, laid
        // out as *mut rte_mbuf. The driver takes the first n and leaves the rest untouched.
        let n = unsafe {
            ffi::rvs_tx_burst(
                self.port,
                self.queue,
                base.cast::<*mut ffi::rte_mbuf>(),
                len as u16,
            )
        };
        let n = usize::from(n).min(len);
        if n > 0 {
            // Safety: the first n mbufs now belong to the driver: forget them (set_len(0)
            // first so nothing can drop them twice), move the unsent len - n down to the
            // front (ptr::copy handles the overlap) and make them the contents again.
            unsafe {
                pkts.set_len(0);
                core::ptr::copy(base.add(n), base, len - n);
                pkts.set_len(len - n);
            }
        }
        n
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        registry::ports()[self.port as usize].set_queue(self.queue, false);
    }
}
