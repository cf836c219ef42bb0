//! The safe API on virtual ports in one EAL process: net_ring ports (TX loops back to RX on
//! the same queue), net_null ports (RX makes frames, TX frees them; they report RSS), pools,
//! mbuf bounds and chains, burst ownership, and the errors for what a port cannot do.
//!
//! Tests run in parallel threads of one process, so each uses its own port and pool.

mod common;

use arrayvec::ArrayVec;
use dpdk::port::{rss, tx_offload};
use dpdk::{
    lcore_id, register_thread, tsc, tsc_hz, unregister_thread, DpdkError, Eal, Flow, L4Proto, Mbuf,
    Mempool, Port, PortConf, RssConf, BURST, LCORE_ID_ANY,
};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

const VDEVS: &[&str] = &[
    "net_ring0",
    "net_ring1",
    "net_ring2",
    "net_null0",
    "net_null1",
];

static EAL: OnceLock<Eal> = OnceLock::new();

fn eal() {
    EAL.get_or_init(|| {
        let eal = common::init("ports", VDEVS);
        // Every vdev came up as a port of the same name (PMDs loaded from the plugin dir).
        assert_eq!(Port::count() as usize, VDEVS.len());
        assert_eq!(Port::ids().len(), VDEVS.len());
        for name in VDEVS {
            let port = Port::by_name(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(port.name(), *name);
        }
        eal
    });
}

fn pool(name: &str, n: u32) -> Mempool {
    eal();
    match Mempool::new(name, n, 0, Mempool::DEFAULT_DATA_ROOM, None) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn open(name: &str) -> Port {
    eal();
    Port::by_name(name).unwrap_or_else(|e| panic!("{e}"))
}

fn small_conf(queues: u16) -> PortConf {
    PortConf {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: 256,
        tx_desc: 256,
        ..PortConf::default()
    }
}

/// A frame of `len` bytes whose bytes all encode `tag`.
fn frame(pool: &Mempool, tag: u8, len: usize) -> Mbuf {
    let mut m = pool.alloc().expect("pool has room");
    let bytes: Vec<u8> = (0..len).map(|i| tag.wrapping_add(i as u8)).collect();
    assert!(m.extend_from_slice(&bytes));
    m
}

#[test]
fn ports_appear_and_names_resolve() {
    eal();
    assert!(Eal::is_running());
    let e = Port::by_name("net_nosuch0").unwrap_err();
    assert!(matches!(e, DpdkError::PortNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("ports present: ") && msg.contains("--vdev"),
        "{msg}"
    );
    let e = Port::open(31).unwrap_err();
    assert!(matches!(e, DpdkError::NoSuchPort { port: 31, .. }), "{e}");
    let e = Port::open(1000).unwrap_err();
    assert!(matches!(e, DpdkError::NoSuchPort { port: 1000, .. }), "{e}");
}

#[test]
fn second_init_is_refused() {
    eal();
    let args = common::eal_args("ports-again", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(matches!(
        Eal::init(&args),
        Err(DpdkError::AlreadyInitialized)
    ));
}

#[test]
fn clock_and_thread_registration() {
    eal();
    assert!(tsc_hz() > 0);
    let a = tsc();
    let b = tsc();
    assert!(b >= a);
    let handle = std::thread::spawn(|| {
        assert_eq!(lcore_id(), LCORE_ID_ANY);
        let id = register_thread().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(id, LCORE_ID_ANY);
        assert_eq!(lcore_id(), id);
        // Registering again gives the same id.
        assert_eq!(register_thread().ok(), Some(id));
        // A registered thread allocates through its lcore cache; counts still add up.
        let p = Mempool::new("regcache", 1023, 32, Mempool::DEFAULT_DATA_ROOM, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let held: Vec<Mbuf> = (0..100).filter_map(|_| p.alloc()).collect();
        assert_eq!(held.len(), 100);
        assert_eq!(p.in_use(), 100);
        drop(held);
        assert_eq!(p.in_use(), 0);
        assert_eq!(p.available(), 1023);
        unregister_thread();
        assert_eq!(lcore_id(), LCORE_ID_ANY);
        id
    });
    let id = handle.join().expect("thread ran");
    assert!(id > 0, "lcore 0 is the main lcore");
}

#[test]
fn mempool_counts_return_to_baseline() {
    let p = pool("baseline", 1023);
    assert_eq!(p.capacity(), 1023);
    assert_eq!(p.name(), "baseline");
    assert_eq!(p.available(), 1023);
    assert_eq!(p.in_use(), 0);
    let held: Vec<Mbuf> = (0..100).filter_map(|_| p.alloc()).collect();
    assert_eq!(p.in_use(), 100);
    assert_eq!(p.available(), 923);
    drop(held);
    assert_eq!(p.in_use(), 0);
    assert_eq!(p.available(), 1023);

    // An empty pool gives None, not a crash.
    let small = pool("small", 63);
    let all: Vec<Mbuf> = std::iter::from_fn(|| small.alloc()).collect();
    assert_eq!(all.len(), 63);
    assert!(small.alloc().is_none());
    drop(all);
    assert_eq!(small.available(), 63);

    // A clone is the same pool.
    let c = p.clone();
    assert!(c.same_pool(&p));
    assert!(!c.same_pool(&small));
}

#[test]
fn mempool_errors_say_what_to_do() {
    let _p = pool("dup", 127);
    let e = Mempool::new("dup", 127, 0, Mempool::DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(matches!(e, DpdkError::Mempool { errno: 17, .. }), "{e}");
    assert!(e.to_string().contains("pick another name"), "{e}");
    let e = Mempool::new(
        "a-name-longer-than-dpdk-allows",
        127,
        0,
        Mempool::DEFAULT_DATA_ROOM,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, DpdkError::InvalidArgument { .. }), "{e}");
    let e = Mempool::new("bigcache", 127, 100, Mempool::DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(e.to_string().contains("lower cache_size"), "{e}");
    let e = Mempool::new("tiny", 127, 0, 100, None).unwrap_err();
    assert!(e.to_string().contains("headroom"), "{e}");
}

#[test]
fn mbuf_bounds() {
    let p = pool("bounds", 127);
    let mut m = p.alloc().expect("mbuf");
    assert_eq!(m.pkt_len(), 0);
    assert_eq!(m.data_len(), 0);
    assert!(m.data().is_empty());
    assert_eq!(m.nb_segs(), 1);
    assert!(m.is_contiguous());
    assert_eq!(m.headroom(), Mempool::HEADROOM as usize);
    assert_eq!(m.tailroom(), 2048);
    assert_eq!(m.ol_flags(), 0);
    assert_eq!(m.rss_hash(), None);

    // append: within the tailroom only.
    assert!(!m.append(2049));
    assert!(!m.append(usize::MAX));
    assert_eq!(m.pkt_len(), 0);
    assert!(m.append(4));
    m.data_mut().copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.data(), &[1, 2, 3, 4]);
    assert_eq!(m.tailroom(), 2044);

    // prepend: within the headroom only.
    assert!(!m.prepend(129));
    assert!(!m.prepend(1 << 20));
    assert!(m.prepend(2));
    m.data_mut()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
    assert_eq!(m.headroom(), 126);
    assert_eq!(m.pkt_len(), 6);

    // adj: at most the frame.
    assert!(!m.adj(7));
    assert!(m.adj(3));
    assert_eq!(m.data(), &[2, 3, 4]);
    assert_eq!(m.headroom(), 129);

    // truncate: only shortens.
    m.truncate(10);
    assert_eq!(m.data(), &[2, 3, 4]);
    m.truncate(2);
    assert_eq!(m.data(), &[2, 3]);
    assert_eq!(m.pkt_len(), 2);
    m.truncate(0);
    assert!(m.data().is_empty());

    // The whole headroom, then none.
    assert!(m.prepend(129));
    assert_eq!(m.headroom(), 0);
    assert!(!m.prepend(1));

    // TX offload fields.
    assert!(!m.set_tx_offload(dpdk::mbuf::ol::TX_IPV4, 128, 20));
    assert!(m.set_tx_offload(
        dpdk::mbuf::ol::TX_IPV4 | dpdk::mbuf::ol::TX_IP_CKSUM | dpdk::mbuf::ol::TX_TCP_CKSUM,
        14,
        20
    ));
    assert_eq!(m.tx_offload_lens(), (14, 20));
    assert_ne!(m.ol_flags() & dpdk::mbuf::ol::TX_IP_CKSUM, 0);

    // into_raw / from_raw keep one owner.
    let raw = m.into_raw();
    assert_eq!(p.in_use(), 1);
    // Safety: raw came from into_raw just above and nothing else owns it.
    let m = unsafe { Mbuf::from_raw(raw) };
    drop(m);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn mbuf_chains_are_never_contiguous() {
    let p = pool("chains", 127);
    let mut a = frame(&p, 0, 60);
    let b = frame(&p, 100, 40);
    assert!(a.chain(b).is_ok());
    assert_eq!(p.in_use(), 2);
    assert_eq!(a.nb_segs(), 2);
    assert!(!a.is_contiguous());
    assert_eq!(a.pkt_len(), 100);
    assert_eq!(a.data_len(), 60);
    // data() is the first segment only.
    assert_eq!(a.data().len(), 60);
    let segs: Vec<&[u8]> = a.segments().collect();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1][0], 100);
    // append grows the last segment; extend_from_slice refuses a chain.
    assert_eq!(a.tailroom(), 2048 - 40);
    assert!(a.append(10));
    assert_eq!(a.pkt_len(), 110);
    assert_eq!(a.segments().nth(1).map(<[u8]>::len), Some(50));
    assert!(!a.extend_from_slice(&[1]));
    // adj works on the first segment only.
    assert!(!a.adj(61));
    // truncate into the first segment frees the second.
    a.truncate(50);
    assert_eq!(a.nb_segs(), 1);
    assert!(a.is_contiguous());
    assert_eq!(a.pkt_len(), 50);
    assert_eq!(p.in_use(), 1);
    // truncate across three segments keeps the ones it needs.
    let mut c = frame(&p, 1, 30);
    assert!(c.chain(frame(&p, 2, 30)).is_ok());
    assert!(c.chain(frame(&p, 3, 30)).is_ok());
    assert_eq!((c.nb_segs(), c.pkt_len()), (3, 90));
    c.truncate(45);
    assert_eq!((c.nb_segs(), c.pkt_len()), (2, 45));
    assert_eq!(
        c.segments().map(<[u8]>::len).collect::<Vec<_>>(),
        vec![30, 15]
    );
    drop(a);
    drop(c);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn mbufs_move_between_threads() {
    let p = pool("moves", 127);
    let m = frame(&p, 7, 64);
    let p2 = p.clone();
    std::thread::spawn(move || {
        assert_eq!(m.data()[0], 7);
        assert_eq!(p2.in_use(), 1);
        drop(m);
    })
    .join()
    .expect("thread ran");
    assert_eq!(p.in_use(), 0);
}

#[test]
fn ring_loops_tx_back_to_rx_with_data_intact() {
    let p = pool("loop", 2047);
    let mut port = open("net_ring0");
    assert_eq!(
        port.info().map(|i| i.driver_name).ok().as_deref(),
        Some("net_ring")
    );
    port.configure(&small_conf(1), &p)
        .unwrap_or_else(|e| panic!("{e}"));
    port.start().unwrap_or_else(|e| panic!("{e}"));
    assert!(port.link_up());
    let mut q = port.queue(0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((q.port(), q.queue()), (port.id(), 0));

    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    for i in 0..BURST {
        burst.push(frame(&p, i as u8, 60 + i));
    }
    assert_eq!(q.tx_burst(&mut burst), BURST);
    assert!(burst.is_empty());
    assert_eq!(p.in_use(), BURST as u32);

    // rx fills only the room left in `out`.
    let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    for _ in 0..30 {
        out.push(p.alloc().expect("mbuf"));
    }
    assert_eq!(q.rx_burst(&mut out), 2);
    assert_eq!(out.len(), BURST);
    assert_eq!(q.rx_burst(&mut out), 0);
    let got: Vec<Mbuf> = out.drain(30..).collect();
    out.clear();
    assert_eq!(got[0].data()[0], 0);
    assert_eq!(got[1].data()[0], 1);
    drop(got);
    assert_eq!(q.rx_burst(&mut out), BURST - 2);
    for (i, m) in out.iter().enumerate() {
        let tag = (i + 2) as u8;
        assert_eq!(m.pkt_len() as usize, 60 + i + 2);
        assert!(m.is_contiguous());
        assert!(m
            .data()
            .iter()
            .enumerate()
            .all(|(j, b)| *b == tag.wrapping_add(j as u8)));
    }
    out.clear();
    assert_eq!(p.in_use(), 0);

    let stats = port.stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.opackets, BURST as u64);
    assert_eq!(stats.ipackets, BURST as u64);
    // A running port's monitor sees the same counters and a link up with its speed.
    let monitor = port.monitor();
    assert_eq!(monitor.stats().ok(), Some(stats));
    let link = monitor.link().unwrap_or_else(|e| panic!("{e}"));
    assert!(link.up && link.speed_mbps > 0, "{link:?}");
    assert_eq!(port.link().ok(), Some(link));
    drop(monitor);

    // A full ring: tx takes what fits and leaves the rest, in order, with the caller.
    let mut sent = 0;
    let mut kept = 0;
    for round in 0..40u8 {
        let mut b: ArrayVec<Mbuf, BURST> = ArrayVec::new();
        for i in 0..BURST {
            b.push(frame(&p, round.wrapping_mul(32).wrapping_add(i as u8), 60));
        }
        let n = q.tx_burst(&mut b);
        sent += n;
        if n < BURST {
            assert_eq!(b.len(), BURST - n);
            let first_unsent = round.wrapping_mul(32).wrapping_add(n as u8);
            assert_eq!(b[0].data()[0], first_unsent);
            kept += b.len();
            assert_eq!(p.in_use() as usize, sent + b.len());
            drop(b);
            assert_eq!(p.in_use() as usize, sent);
        }
    }
    assert!(kept > 0, "the ring filled up");
    assert!(sent < 40 * BURST);
    let mut drained = 0;
    loop {
        let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
        let n = q.rx_burst(&mut out);
        if n == 0 {
            break;
        }
        drained += n;
    }
    assert_eq!(drained, sent);
    assert_eq!(p.in_use(), 0);

    port.stop().unwrap_or_else(|e| panic!("{e}"));
    // A stopped port's queue returns nothing (DPDK's dummy burst functions).
    let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    assert_eq!(q.rx_burst(&mut out), 0);
    drop(q);
    port.close().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        Port::by_name("net_ring0"),
        Err(DpdkError::PortNotFound { .. })
    ));
}

#[test]
fn queues_and_ports_have_one_owner() {
    let p = pool("owners", 1023);
    let mut port = open("net_ring1");
    assert!(matches!(
        Port::by_name("net_ring1"),
        Err(DpdkError::PortBusy { .. })
    ));
    // No queue before configure.
    let e = port.queue(0).unwrap_err();
    assert!(matches!(e, DpdkError::NoSuchQueue { .. }), "{e}");
    port.configure(&small_conf(2), &p)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = port.queue(2).unwrap_err();
    assert!(e.to_string().contains("queue 2 is not configured"), "{e}");
    port.start().unwrap_or_else(|e| panic!("{e}"));
    let q0 = port.queue(0).unwrap_or_else(|e| panic!("{e}"));
    let q1 = port.queue(1).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(port.queue(0), Err(DpdkError::QueueBusy { .. })));
    // Queues are Send: a worker thread can own one.
    let q1 = std::thread::spawn(move || {
        let mut q1 = q1;
        let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
        assert_eq!(q1.rx_burst(&mut out), 0);
        q1
    })
    .join()
    .expect("thread ran");
    // Reconfigure and close wait for the queues.
    let e = port.configure(&small_conf(1), &p).unwrap_err();
    assert!(matches!(e, DpdkError::PortInUse { queues: 2, .. }), "{e}");
    drop(q0);
    drop(q1);
    let e = port.configure(&small_conf(1), &p).unwrap_err();
    assert!(e.to_string().contains("stop the port first"), "{e}");
    port.stop().unwrap_or_else(|e| panic!("{e}"));
    port.configure(&small_conf(1), &p)
        .unwrap_or_else(|e| panic!("{e}"));
    let q = port.queue(0).unwrap_or_else(|e| panic!("{e}"));
    drop(port);
    // A dropped handle frees the claim; the queue stays usable.
    let port = open("net_ring1");
    let e = port.close().unwrap_err();
    assert!(e.to_string().contains("drop them before closing"), "{e}");
    drop(q);
    let port = open("net_ring1");
    port.close().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.in_use(), 0);
}

#[test]
fn port_info_stats_and_what_net_ring_cannot_do() {
    let p = pool("ringinfo", 511);
    let mut port = open("net_ring2");
    let info = port.info().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.driver_name, "net_ring");
    assert_eq!(info.flow_type_rss_offloads, 0);
    assert!(info.max_rx_queues >= 1);
    assert_eq!(port.name(), "net_ring2");
    let _ = port.socket();
    let _ = port.mac();
    assert!(!port.link_up());
    assert_eq!(port.link().ok(), Some(Default::default()));
    assert_eq!(port.stats().ok(), Some(Default::default()));
    // A monitor reads the same from another thread, and holds the port open while it lives.
    let monitor = port.monitor();
    let monitor = std::thread::spawn(move || {
        assert_eq!(monitor.stats().ok(), Some(Default::default()));
        assert_eq!(monitor.link().ok(), Some(Default::default()));
        monitor
    })
    .join()
    .expect("thread ran");
    let e = port.configure(&small_conf(1), &p).unwrap_err();
    assert!(matches!(e, DpdkError::PortInUse { monitors: 1, .. }), "{e}");
    assert!(e.to_string().contains("1 monitor(s)"), "{e}");
    drop(monitor);

    // RSS: a clean Unsupported, and configure says what to do instead.
    let e = port.rss_key().unwrap_err();
    assert!(matches!(e, DpdkError::Unsupported { .. }), "{e}");
    let e = port.reta().unwrap_err();
    assert!(matches!(e, DpdkError::Unsupported { .. }), "{e}");
    let conf = PortConf {
        rss: Some(RssConf {
            hash_functions: rss::IP,
            key: None,
        }),
        ..small_conf(2)
    };
    let e = port.configure(&conf, &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "port {} (net_ring) cannot do RSS: use one queue, or set rss = false for it and \
             let the redirect rings balance",
            port.id()
        )
    );

    // Out-of-range settings.
    let e = port
        .configure(
            &PortConf {
                mtu: Some(10),
                ..small_conf(1)
            },
            &p,
        )
        .unwrap_err();
    assert!(
        matches!(e, DpdkError::OutOfRange { what: "mtu", .. }),
        "{e}"
    );
    let e = port
        .configure(&small_conf(info.max_rx_queues + 1), &p)
        .unwrap_err();
    assert!(
        matches!(
            e,
            DpdkError::OutOfRange {
                what: "rx_queues",
                ..
            }
        ),
        "{e}"
    );
    let e = port.configure(&small_conf(0), &p).unwrap_err();
    assert!(matches!(e, DpdkError::OutOfRange { .. }), "{e}");
    let e = port
        .configure(
            &PortConf {
                tx_offloads: tx_offload::IPV4_CKSUM,
                ..small_conf(1)
            },
            &p,
        )
        .unwrap_err();
    assert!(matches!(e, DpdkError::TxOffloadUnsupported { .. }), "{e}");

    // rte_flow: net_ring has none.
    let e = Flow::steer_ipv4_dst_port(
        &port,
        Ipv4Addr::new(10, 1, 0, 201),
        L4Proto::Tcp,
        0,
        0xf000,
        0,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DpdkError::Unsupported {
                what: "rte_flow",
                ..
            }
        ),
        "{e}"
    );

    // An MTU in range that the driver cannot set: DPDK's reason, and the fix.
    let e = port
        .configure(
            &PortConf {
                mtu: Some(1500),
                ..small_conf(1)
            },
            &p,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            DpdkError::Port {
                op: "rte_eth_dev_set_mtu",
                errno: 95,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("does not implement"), "{e}");
    port.close().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn null_port_reports_rss_and_sinks_tx() {
    let p = pool("null", 1023);
    let mut port = open("net_null0");
    let info = port.info().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.driver_name, "net_null");
    assert_ne!(info.flow_type_rss_offloads, 0);
    let key = port.rss_key().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(key.len(), 40);
    let reta = port.reta().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reta.len(), usize::from(info.reta_size));

    // RSS types it lacks, and a key of the wrong size.
    let e = port
        .configure(
            &PortConf {
                rss: Some(RssConf {
                    hash_functions: 1,
                    key: None,
                }),
                ..small_conf(2)
            },
            &p,
        )
        .unwrap_err();
    assert!(
        matches!(e, DpdkError::RssHashUnsupported { unsupported: 1, .. }),
        "{e}"
    );
    let e = port
        .configure(
            &PortConf {
                rss: Some(RssConf {
                    hash_functions: rss::IP & info.flow_type_rss_offloads,
                    key: Some(vec![0x6d; 41]),
                }),
                ..small_conf(2)
            },
            &p,
        )
        .unwrap_err();
    assert!(
        matches!(e, DpdkError::RssKeyLength { given: 41, .. }),
        "{e}"
    );

    // RSS over 4 queues.
    let conf = PortConf {
        rss: Some(RssConf {
            hash_functions: (rss::IP | rss::TCP | rss::UDP) & info.flow_type_rss_offloads,
            key: None,
        }),
        ..small_conf(4)
    };
    port.configure(&conf, &p).unwrap_or_else(|e| panic!("{e}"));
    port.set_mac([0x02, 0, 0, 0, 0, 0x42])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(port.mac(), [0x02, 0, 0, 0, 0, 0x42]);
    port.promiscuous(true).unwrap_or_else(|e| panic!("{e}"));
    assert!(port.is_promiscuous());
    port.start().unwrap_or_else(|e| panic!("{e}"));

    // rte_flow: net_null has none.
    let e = Flow::steer_ipv4_dst_port(
        &port,
        Ipv4Addr::new(10, 1, 0, 201),
        L4Proto::Udp,
        0x1000,
        0xf000,
        3,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DpdkError::Unsupported {
                what: "rte_flow",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("redirect rings"), "{e}");

    // TX frees what it takes; RX makes frames from the port's pool.
    let mut q = port.queue(3).unwrap_or_else(|e| panic!("{e}"));
    let mut b: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    for i in 0..BURST {
        b.push(frame(&p, i as u8, 64));
    }
    assert_eq!(q.tx_burst(&mut b), BURST);
    assert_eq!(p.in_use(), 0);
    let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    assert_eq!(q.rx_burst(&mut out), BURST);
    assert_eq!(p.in_use(), BURST as u32);
    out.clear();
    assert_eq!(p.in_use(), 0);
    let s = port.stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.ipackets, s.opackets), (BURST as u64, BURST as u64));
    drop(q);
    port.close().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn pool_outlives_its_port_and_handles() {
    // The port keeps the pool alive: dropping every handle of ours does not free memory a
    // driver may still allocate from (net_null's RX allocates from it on every burst).
    let mut port = open("net_null1");
    {
        let p = pool("kept", 255);
        port.configure(&small_conf(1), &p)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    port.start().unwrap_or_else(|e| panic!("{e}"));
    let mut q = port.queue(0).unwrap_or_else(|e| panic!("{e}"));
    let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    assert_eq!(q.rx_burst(&mut out), BURST);
    out.clear();
    drop(q);
    port.close().unwrap_or_else(|e| panic!("{e}"));
}
