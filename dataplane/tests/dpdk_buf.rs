//! `dpdk::Mbuf` through the `PacketBuf` trait behaves like the in-memory buffer: the same
//! sequence of prepend / adj / truncate / append as `mem.rs`'s test, plus the first-segment
//! contract for chains.

use dataplane::buf::PacketBuf;
use dpdk::{Eal, Mempool};

const HEADROOM: usize = Mempool::HEADROOM as usize;
const DATA_ROOM: usize = 2048;

fn eal() -> Eal {
    let prefix = format!("rvs-dpdk-buf-{}", std::process::id());
    let args = [
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
    ];
    let eal = Eal::init(&args).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
    eal
}

/// Generic over the trait, so the test exercises PacketBuf and not Mbuf's own methods.
fn exercise<B: PacketBuf>(mut b: B) {
    assert!(b.is_empty());
    assert_eq!(b.headroom(), HEADROOM);
    assert_eq!(b.tailroom(), DATA_ROOM);
    assert!(b.append(4));
    b.data_mut().copy_from_slice(&[1, 2, 3, 4]);
    assert!(b.prepend(2));
    assert_eq!(b.len(), 6);
    b.data_mut()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
    assert!(b.adj(3));
    assert_eq!(b.data(), &[2, 3, 4]);
    assert!(!b.adj(4));
    b.truncate(2);
    assert_eq!(b.data(), &[2, 3]);
    b.truncate(5);
    assert_eq!(b.data(), &[2, 3]);
    assert!(!b.prepend(HEADROOM + 2));
    assert!(b.append(1));
    assert_eq!(b.len(), 3);
    assert!(!b.append(DATA_ROOM + HEADROOM));
    assert_eq!(b.len(), 3);
}

#[test]
fn mbuf_is_a_packet_buf() {
    let _eal = eal();
    let pool = Mempool::new("buf", 127, 0, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    exercise(pool.alloc().expect("mbuf"));
    exercise(dataplane::mem::MemPool::new(1).alloc().expect("membuf"));
    assert_eq!(pool.in_use(), 0);

    // A chain: PacketBuf::data is the first segment, never the whole chain.
    let mut a = pool.alloc().expect("mbuf");
    assert!(a.extend_from_slice(&[1; 60]));
    let mut b = pool.alloc().expect("mbuf");
    assert!(b.extend_from_slice(&[2; 40]));
    assert!(a.chain(b).is_ok());
    assert_eq!(PacketBuf::len(&a), 60);
    assert_eq!(a.pkt_len(), 100);
    assert!(!a.is_contiguous());
    drop(a);
    assert_eq!(pool.in_use(), 0);
}
