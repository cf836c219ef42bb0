//! Shutdown in the documented order: queues and port handles dropped, the pool dropped, then
//! the Eal. Its drop closes the port nobody closed (releasing the pool the port kept alive)
//! and runs `rte_eal_cleanup`; afterwards DPDK objects are refused, not dangling.

mod common;

use arrayvec::ArrayVec;
use dpdk::{DpdkError, Eal, Mbuf, Mempool, Port, PortConf, BURST};

#[test]
fn eal_drop_closes_ports_and_cleans_up() {
    let eal = common::init("eal-cleanup", &["net_ring0"]);
    let pool = Mempool::new("cleanup", 1023, 32, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut port = Port::by_name("net_ring0").unwrap_or_else(|e| panic!("{e}"));
    port.configure(&PortConf::default(), &pool)
        .unwrap_or_else(|e| panic!("{e}"));
    port.start().unwrap_or_else(|e| panic!("{e}"));
    let mut q = port.queue(0).unwrap_or_else(|e| panic!("{e}"));
    let mut b: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    b.push(pool.alloc().expect("mbuf"));
    assert_eq!(q.tx_burst(&mut b), 1);
    let mut out: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    assert_eq!(q.rx_burst(&mut out), 1);
    drop(out);

    // Left for the Eal to close: the started port (its handle dropped, not closed), which
    // still holds the pool.
    drop(q);
    drop(port);
    drop(pool);
    drop(eal);

    assert!(!Eal::is_running());
    assert_eq!(Port::count(), 0);
    assert!(matches!(
        Mempool::new("after", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None),
        Err(DpdkError::NotInitialized { .. })
    ));
    assert!(matches!(
        Port::by_name("net_ring0"),
        Err(DpdkError::NotInitialized { .. })
    ));
    assert!(matches!(Eal::init(&[]), Err(DpdkError::CleanedUp)));
}
