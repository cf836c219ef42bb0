//! Dropping the Eal while a DPDK object is alive does not clean up under it: the EAL stays
//! up (with a warning in the log) and the object stays usable.

mod common;

use dpdk::{Eal, Mempool};

#[test]
fn eal_drop_with_an_mbuf_out_keeps_dpdk_up() {
    let eal = common::init("eal-drop-early", &[]);
    let pool = Mempool::new("early", 127, 0, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut m = pool.alloc().expect("mbuf");
    // The last pool handle goes while the mbuf is out: the pool is leaked, not freed.
    drop(pool);
    drop(eal);
    assert!(Eal::is_running(), "cleanup must wait for the pool's mbufs");
    // The mbuf and its memory are still valid.
    assert!(m.extend_from_slice(&[1, 2, 3]));
    assert_eq!(m.data(), &[1, 2, 3]);
    drop(m);
    // DPDK is still usable.
    let p2 = Mempool::new("later", 127, 0, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p2.alloc().is_some());
}
