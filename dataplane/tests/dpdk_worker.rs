//! The worker on DPDK ports: a `Worker<DpdkQueue>` over two net_ring ports (no hugepages),
//! a FullNAT TCP service, a client SYN in, an ARP exchange for the real server, the
//! rewritten SYN out, and the server's SYN/ACK back to the client — every frame decoded and
//! its checksums verified by smoltcp (the decoder of `common`).
//!
//! How frames get in and out: a net_ring vdev created without arguments uses one ring per
//! queue for both directions, so what is transmitted on a queue comes back on that queue's
//! RX. The test feeds a port's RX by transmitting on it through the worker's own device
//! (`worker.port_mut(p).tx_burst`), and reads what the worker sent by receiving from the
//! port (`worker.port_mut(p).rx_burst`) after a poll. The worker's poll receives on every
//! port before it flushes its TX buffers, so it never sees its own output in the same poll.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::buf::PacketBuf;
use dataplane::device::{Burst, Device};
use dataplane::dpdk_port::DpdkQueue;
use dataplane::snapshot::Snapshot;
use dataplane::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
use dataplane::worker::{Worker, WorkerConfig};
use dataplane::DropReason;
use dpdk::{Eal, Mempool, Port, PortConf};
use sched::{ForwardMode, SchedKind};
use std::sync::Arc;

fn eal() -> Eal {
    let prefix = format!("rvs-dpdk-worker-{}", std::process::id());
    let args = [
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
        "--vdev",
        "net_ring0",
        "--vdev",
        "net_ring1",
    ];
    let eal = Eal::init(&args).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
    eal
}

/// Opens, configures (one queue pair) and starts a port.
fn port(name: &str, pool: &Mempool) -> Port {
    let mut p = Port::by_name(name).unwrap_or_else(|e| panic!("{e}"));
    let conf = PortConf {
        rx_desc: 512,
        tx_desc: 512,
        ..PortConf::default()
    };
    p.configure(&conf, pool).unwrap_or_else(|e| panic!("{e}"));
    p.start().unwrap_or_else(|e| panic!("{e}"));
    p
}

/// Puts `frame` on the RX side of `port` (see the module docs).
fn inject(w: &mut Worker<DpdkQueue>, pool: &Mempool, port: u16, frame: &[u8]) {
    let mut m = pool.alloc().expect("pool has room");
    assert!(m.extend_from_slice(frame));
    let mut b: Burst<dpdk::Mbuf> = Burst::new();
    b.push(m);
    assert_eq!(w.port_mut(port).tx_burst(&mut b), 1);
}

/// Everything the worker sent on `port`, as byte vectors.
fn sent(w: &mut Worker<DpdkQueue>, port: u16) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    loop {
        let mut b: Burst<dpdk::Mbuf> = Burst::new();
        w.port_mut(port).rx_burst(&mut b);
        if b.is_empty() {
            return frames;
        }
        frames.extend(b.iter().map(|m| PacketBuf::data(m).to_vec()));
    }
}

fn arp_reply_from_rs() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(rs_mac(0)),
        source_protocol_addr: RS[0],
        target_hardware_addr: EthernetAddress(LAN_MAC),
        target_protocol_addr: DIP_LAN,
    };
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&LAN_MAC);
    f[6..12].copy_from_slice(&rs_mac(0));
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    repr.emit(&mut ArpPacket::new_unchecked(&mut f[14..42]));
    f
}

#[test]
fn fullnat_syn_through_dpdk_ports() {
    let eal = eal();
    let pool = Mempool::new("worker", 4095, 0, Mempool::DEFAULT_DATA_ROOM, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let wan = port("net_ring0", &pool);
    let lan = port("net_ring1", &pool);
    assert_eq!((wan.id(), lan.id()), (WAN, LAN));
    let devices = vec![
        DpdkQueue::new(
            wan.queue(0).unwrap_or_else(|e| panic!("{e}")),
            pool.clone(),
            EthernetAddress(WAN_MAC),
        ),
        DpdkQueue::new(
            lan.queue(0).unwrap_or_else(|e| panic!("{e}")),
            pool.clone(),
            EthernetAddress(LAN_MAC),
        ),
    ];
    let cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Rr,
        &[dest(0, 8080, 1, ForwardMode::FullNat)],
    );
    let snap = Snapshot::build(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let cell = Arc::new(arc_swap::ArcSwap::from_pointee(snap));
    let mut w =
        Worker::new(WorkerConfig::default(), devices, cell).unwrap_or_else(|e| panic!("{e}"));
    // The router is known; the real server's MAC is resolved over the DPDK port.
    w.neighbours_mut()
        .insert_static(ROUTER, EthernetAddress(ROUTER_MAC));
    let now = 1_000;

    // 1. Client SYN to the VIP: parked, and an ARP request for the RS goes out on the LAN
    //    in an mbuf the worker allocated from the port's pool.
    inject(
        &mut w,
        &pool,
        WAN,
        &Frame::tcp(CIP, 40000, VIP, 80, SYN).build(),
    );
    assert_eq!(w.poll(now), 1);
    assert!(sent(&mut w, WAN).is_empty());
    let lan_out = sent(&mut w, LAN);
    assert_eq!(lan_out.len(), 1, "one ARP request");
    let arp =
        ArpRepr::parse(&ArpPacket::new_checked(&lan_out[0][14..]).expect("arp")).expect("arp repr");
    match arp {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            target_protocol_addr,
            ..
        } => {
            assert_eq!(operation, ArpOperation::Request);
            assert_eq!(source_hardware_addr.0, LAN_MAC);
            assert_eq!(target_protocol_addr, RS[0]);
        }
        other => panic!("{other:?}"),
    }

    // 2. The RS answers: the parked SYN leaves, rewritten for FullNAT.
    inject(&mut w, &pool, LAN, &arp_reply_from_rs());
    assert_eq!(w.poll(now + 1), 1);
    let lan_out = sent(&mut w, LAN);
    assert_eq!(lan_out.len(), 1, "the released SYN");
    let s = decode(&lan_out[0]);
    assert_eq!(s.dst_mac, rs_mac(0));
    assert_eq!(s.src_mac, LAN_MAC);
    assert!(s.src == LIP1 || s.src == LIP2, "source is a LIP: {}", s.src);
    let (lip, lport) = (s.src, s.sport);
    assert!(lport >= 1024);
    assert_eq!((s.dst, s.dport), (RS[0], 8080));
    assert_eq!(s.flags, SYN);
    assert_eq!(s.ttl, 63);

    // 3. The RS's SYN/ACK to LIP:lport goes back to the client as VIP:80.
    inject(
        &mut w,
        &pool,
        LAN,
        &Frame::tcp(RS[0], 8080, lip, lport, SYN | ACK)
            .via_rs(0)
            .build(),
    );
    assert_eq!(w.poll(now + 2), 1);
    assert!(sent(&mut w, LAN).is_empty());
    let wan_out = sent(&mut w, WAN);
    assert_eq!(wan_out.len(), 1);
    let s = decode(&wan_out[0]);
    assert_eq!(s.dst_mac, ROUTER_MAC);
    assert_eq!(s.src_mac, WAN_MAC);
    assert_eq!((s.src, s.sport), (VIP, 80));
    assert_eq!((s.dst, s.dport), (CIP, 40000));
    assert_eq!(s.flags, SYN | ACK);

    // 4. A chained (multi-segment) frame is dropped by the worker with its own reason, never
    //    parsed from its first segment.
    let mut head = pool.alloc().expect("mbuf");
    let syn2 = Frame::tcp(CIP, 40001, VIP, 80, SYN).build();
    assert!(head.extend_from_slice(&syn2[..30]));
    let mut tail = pool.alloc().expect("mbuf");
    assert!(tail.extend_from_slice(&syn2[30..]));
    assert!(head.chain(tail).is_ok());
    let mut b: Burst<dpdk::Mbuf> = Burst::new();
    b.push(head);
    assert_eq!(w.port_mut(WAN).tx_burst(&mut b), 1);
    assert_eq!(w.poll(now + 3), 1);
    assert_eq!(w.counters().drop_count(DropReason::MultiSegment), 1);
    assert!(sent(&mut w, LAN).is_empty());

    let c = w.counters();
    assert_eq!(c.rx_packets(), 4);
    assert_eq!(c.sessions_created(), 1);
    assert_eq!(c.arp_requests(), 1);
    // The drops: the ARP reply, consumed once learned (it needs no answer), and the chain.
    assert_eq!(c.drop_count(DropReason::ArpNotForUs), 1);
    assert_eq!(c.total_drops(), 2, "{:?}", c.drops());

    // Shutdown in order: the worker (its queues and buffers), the ports, the pool, the EAL.
    drop(w);
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
    wan.close().unwrap_or_else(|e| panic!("{e}"));
    lan.close().unwrap_or_else(|e| panic!("{e}"));
    drop(pool);
    drop(eal);
    assert!(!Eal::is_running());
}
