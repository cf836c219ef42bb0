//! The address follower: which addresses the kernel interfaces behind rvsd's exception paths
//! (the TAPs) hold, learnt over rtnetlink, for the model to publish as ownership.
//!
//! keepalived (or any VRRP daemon) runs on a TAP and adds its `virtual_ipaddress`es there when
//! it becomes MASTER, and removes them when it leaves that state. A managed VIP or LIP is
//! owned exactly while a TAP holds it (see `dataplane::snapshot::DirectorConfig::managed`).
//! [`AddressFollower::start`] subscribes to `RTMGRP_IPV4_IFADDR` first and then dumps the
//! addresses (`RTM_GETADDR`) on a second socket, so that no change falls between the two:
//! changes queued before the dump was taken replay onto it harmlessly (adding a present
//! address or removing an absent one changes nothing). Its thread then applies each
//! `RTM_NEWADDR`/`RTM_DELADDR` of a TAP, and hands the result to its [`HeldSink`] whenever it
//! changes — after draining every message already queued, so a quick add-and-remove never
//! flaps ownership. A lost message (the socket's buffer overran: `ENOBUFS`) or one it cannot
//! read makes it dump again. The thread blocks in `recv` (with a timeout, to see its stop
//! flag), never spins.

use crate::rtnl::{self, AddrChange, Message, NetlinkError};
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketType, {self},
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How long the thread blocks in `recv` before it looks at its stop flag.
const POLL: Duration = Duration::from_millis(250);
/// How long a dump may take before it is given up (and tried again later).
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer: netlink messages are small, a dump of a few hundred addresses fits.
const RECV_BUF: usize = 64 * 1024;

/// Where the follower's view goes: every address the TAPs hold, with the port whose TAP holds
/// it (the lowest, if several do).
pub trait HeldSink: Send + Sync + 'static {
    /// The TAPs now hold `held` (called at start and after each change).
    fn held(&self, held: BTreeMap<Ipv4Addr, u16>);
}

/// Why the follower could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// An exception interface that does not exist (yet): the TAP is made by the EAL.
    #[error("exception interface \"{name}\" (port {port}): no such interface: {source}")]
    UnknownInterface {
        /// Its name.
        name: String,
        /// The port it belongs to.
        port: u16,
        /// The lookup's error.
        source: std::io::Error,
    },
    /// A netlink socket could not be opened, bound or used.
    #[error("rtnetlink {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel's answer to the dump could not be read.
    #[error("rtnetlink address dump: {0}")]
    Message(#[from] NetlinkError),
    /// The kernel refused the dump.
    #[error("rtnetlink address dump refused: {0}")]
    Refused(std::io::Error),
    /// The dump did not end in time.
    #[error("rtnetlink address dump: no end within {0:?}")]
    Timeout(Duration),
    /// The thread could not be started.
    #[error("cannot start the address follower thread: {0}")]
    Thread(std::io::Error),
}

/// A `NETLINK_ROUTE` socket (protocol 0, hence no protocol given).
fn route_socket() -> Result<OwnedFd, Errno> {
    net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
}

fn sock_err(op: &'static str) -> impl FnOnce(Errno) -> FollowError {
    move |e| FollowError::Socket {
        op,
        source: e.into(),
    }
}

/// The set of (interface index, address) pairs the TAPs hold, and how it maps to ports.
#[derive(Debug, Default)]
pub struct Held {
    /// Interface index → port, for the TAPs followed.
    ports: BTreeMap<u32, u16>,
    present: BTreeSet<(u32, Ipv4Addr)>,
}

impl Held {
    /// Following the interfaces `ports` (interface index → port).
    pub fn new(ports: BTreeMap<u32, u16>) -> Held {
        Held {
            ports,
            present: BTreeSet::new(),
        }
    }

    /// Applies one message; addresses of other interfaces are ignored.
    pub fn apply(&mut self, m: &Message) {
        let Message::Addr(a) = m else { return };
        if !self.ports.contains_key(&a.ifindex) {
            return;
        }
        match a.change {
            AddrChange::New => self.present.insert((a.ifindex, a.addr)),
            AddrChange::Del => self.present.remove(&(a.ifindex, a.addr)),
        };
    }

    /// Forgets everything (before a new dump is applied).
    pub fn clear(&mut self) {
        self.present.clear();
    }

    /// Each address held, with the lowest port whose TAP holds it.
    pub fn by_addr(&self) -> BTreeMap<Ipv4Addr, u16> {
        let mut out = BTreeMap::new();
        for (ifindex, addr) in &self.present {
            if let Some(&port) = self.ports.get(ifindex) {
                let p = out.entry(*addr).or_insert(port);
                *p = (*p).min(port);
            }
        }
        out
    }
}

/// The running follower.
pub struct AddressFollower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AddressFollower {
    /// Follows the addresses of the interfaces `taps` (name, port), handing them to `sink`:
    /// once before returning (the dump), then at every change, from a thread of its own.
    ///
    /// # Errors
    /// An interface that does not exist, a netlink socket that cannot be opened, or a first
    /// dump that fails.
    pub fn start(taps: &[(String, u16)], sink: Arc<dyn HeldSink>) -> Result<Self, FollowError> {
        let inet = net::socket(AddressFamily::INET, SocketType::DGRAM, None)
            .map_err(sock_err("socket for interface lookups"))?;
        let mut ports = BTreeMap::new();
        for (name, port) in taps {
            let index = net::netdevice::name_to_index(&inet, name).map_err(|e| {
                FollowError::UnknownInterface {
                    name: name.clone(),
                    port: *port,
                    source: e.into(),
                }
            })?;
            ports.insert(index, *port);
        }
        // Subscribed before the dump: nothing can fall between the two.
        let events = route_socket().map_err(sock_err("socket"))?;
        net::bind(
            &events,
            &SocketAddrNetlink::new(0, rtnl::RTMGRP_IPV4_IFADDR),
        )
        .map_err(sock_err("bind to the IPv4 address group"))?;
        net::sockopt::set_socket_timeout(&events, net::sockopt::Timeout::Recv, Some(POLL))
            .map_err(sock_err("receive timeout"))?;
        let mut held = Held::new(ports);
        let mut buf = vec![0u8; RECV_BUF];
        dump(&mut held, &mut buf, 1)?;
        let mut last = held.by_addr();
        info!(
            taps = ?taps.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            held = ?last.keys().collect::<Vec<_>>(),
            "following the exception interfaces' addresses"
        );
        sink.held(last.clone());

        let stop = Arc::new(AtomicBool::new(false));
        let sp = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-addresses".into())
            .spawn(move || {
                let mut seq = 1u32;
                let mut resync = false;
                while !sp.load(Ordering::Acquire) {
                    if resync {
                        seq = seq.wrapping_add(1);
                        match dump(&mut held, &mut buf, seq) {
                            Ok(()) => resync = false,
                            Err(e) => {
                                warn!("address follower: {e}; trying again");
                                std::thread::sleep(POLL);
                                continue;
                            }
                        }
                    } else {
                        match receive(&events, &mut held, &mut buf) {
                            Ok(false) => continue,
                            Ok(true) => {}
                            Err(why) => {
                                warn!("address follower: {why}: reading the addresses again");
                                resync = true;
                                continue;
                            }
                        }
                    }
                    let now = held.by_addr();
                    if now != last {
                        debug!(held = ?now.keys().collect::<Vec<_>>(), "exception interfaces' addresses changed");
                        sink.held(now.clone());
                        last = now;
                    }
                }
            })
            .map_err(FollowError::Thread)?;
        Ok(AddressFollower {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (within [`POLL`]).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Receives what is queued on `events` (waiting up to [`POLL`] for the first message) and
/// applies it: Ok(true) if anything was applied, Ok(false) on a timeout, Err (with why) when
/// a message was lost or unreadable and the state must be dumped again.
fn receive(events: &OwnedFd, held: &mut Held, buf: &mut [u8]) -> Result<bool, String> {
    let mut flags = RecvFlags::empty();
    let mut got = false;
    loop {
        match net::recv(events, &mut *buf, flags) {
            Ok((n, _)) => {
                for m in rtnl::messages(&buf[..n]) {
                    match m {
                        Ok(m) => held.apply(&m),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                got = true;
                // Drain what else is queued before anyone sees the result.
                flags = RecvFlags::DONTWAIT;
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) => return Ok(got),
            Err(Errno::NOBUFS) => return Err("netlink messages were lost (ENOBUFS)".into()),
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

/// Replaces `held`'s addresses by a fresh dump, asked with sequence number `seq` on a socket
/// of its own (not subscribed: only the dump's answer comes).
fn dump(held: &mut Held, buf: &mut [u8], seq: u32) -> Result<(), FollowError> {
    let s = route_socket().map_err(sock_err("socket"))?;
    net::bind(&s, &SocketAddrNetlink::new(0, 0)).map_err(sock_err("bind"))?;
    net::sockopt::set_socket_timeout(&s, net::sockopt::Timeout::Recv, Some(DUMP_TIMEOUT))
        .map_err(sock_err("receive timeout"))?;
    net::sendto(
        &s,
        &rtnl::dump_request(seq),
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )
    .map_err(sock_err("send the dump request"))?;
    let mut fresh = Held::new(core::mem::take(&mut held.ports));
    let result = loop {
        let n = match net::recv(&s, &mut *buf, RecvFlags::empty()) {
            Ok((n, _)) => n,
            Err(Errno::AGAIN) => break Err(FollowError::Timeout(DUMP_TIMEOUT)),
            Err(Errno::INTR) => continue,
            Err(e) => break Err(sock_err("receive the dump")(e)),
        };
        let mut done = None;
        for m in rtnl::messages(&buf[..n]) {
            match m {
                Ok(Message::Done(s)) if s == seq => done = Some(Ok(())),
                Ok(Message::Error { errno, seq: s }) if s == seq && errno != 0 => {
                    done = Some(Err(FollowError::Refused(
                        std::io::Error::from_raw_os_error(errno),
                    )))
                }
                Ok(m) => fresh.apply(&m),
                Err(e) => done = Some(Err(e.into())),
            }
            if done.is_some() {
                break;
            }
        }
        if let Some(r) = done {
            break r;
        }
    };
    // Whatever happened, the interfaces followed stay.
    held.ports = core::mem::take(&mut fresh.ports);
    if result.is_ok() {
        held.present = fresh.present;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::AddrMessage;
    use std::sync::Mutex;

    fn addr(change: AddrChange, ifindex: u32, a: [u8; 4]) -> Message {
        Message::Addr(AddrMessage {
            change,
            ifindex,
            addr: Ipv4Addr::from(a),
            prefix_len: 32,
        })
    }

    #[test]
    fn held_follows_adds_and_removes_on_the_taps_only() {
        let mut h = Held::new([(7, 0), (8, 1)].into_iter().collect());
        let vip = Ipv4Addr::new(192, 0, 2, 100);
        h.apply(&addr(AddrChange::New, 7, [192, 0, 2, 100]));
        h.apply(&addr(AddrChange::New, 8, [10, 1, 0, 201]));
        h.apply(&addr(AddrChange::New, 9, [198, 51, 100, 1])); // not a TAP
        h.apply(&Message::Done(1));
        assert_eq!(
            h.by_addr(),
            [(vip, 0), (Ipv4Addr::new(10, 1, 0, 201), 1)]
                .into_iter()
                .collect()
        );
        // On both TAPs: the lowest port; removed from one, still held by the other.
        h.apply(&addr(AddrChange::New, 8, [192, 0, 2, 100]));
        assert_eq!(h.by_addr()[&vip], 0);
        h.apply(&addr(AddrChange::Del, 7, [192, 0, 2, 100]));
        assert_eq!(h.by_addr()[&vip], 1);
        h.apply(&addr(AddrChange::Del, 8, [192, 0, 2, 100]));
        assert!(!h.by_addr().contains_key(&vip));
        // Replayed changes from before a dump change nothing.
        h.apply(&addr(AddrChange::Del, 8, [192, 0, 2, 100]));
        assert_eq!(h.by_addr().len(), 1);
        h.clear();
        assert!(h.by_addr().is_empty());
    }

    struct Record(Mutex<Vec<BTreeMap<Ipv4Addr, u16>>>);
    impl HeldSink for Record {
        fn held(&self, held: BTreeMap<Ipv4Addr, u16>) {
            self.0.lock().unwrap().push(held);
        }
    }

    #[test]
    fn an_unknown_interface_is_an_error() {
        let sink = Arc::new(Record(Mutex::new(Vec::new())));
        let e = AddressFollower::start(&[("rvs-no-such0".into(), 0)], sink.clone())
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .starts_with("exception interface \"rvs-no-such0\" (port 0): no such interface"),
            "{e}"
        );
        assert!(sink.0.lock().unwrap().is_empty());
    }

    #[test]
    fn the_loopback_addresses_are_dumped() {
        // Every namespace has lo with 127.0.0.1 (once it is up; the test environment's is).
        let sink = Arc::new(Record(Mutex::new(Vec::new())));
        let f = AddressFollower::start(&[("lo".into(), 3)], sink.clone()).expect("follower");
        f.stop();
        let seen = sink.0.lock().unwrap();
        assert_eq!(seen.len(), 1, "the dump, once");
        assert_eq!(seen[0].get(&Ipv4Addr::LOCALHOST), Some(&3), "{seen:?}");
    }
}
