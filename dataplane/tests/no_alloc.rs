//! The per-packet path does not allocate: a counting global allocator, armed only around
//! `Worker::poll` on this thread, sees zero allocations over many thousands of packets of every
//! kind after warm-up (established flows, new sessions with FullNAT ports, replies, ARP and
//! ICMP answers, fragments, IPv6 neighbour solicitations and echoes, drops) — and the test proves it can see one when there is one.

mod common;

use common::*;
use conntrack::Proto;
use sched::{ForwardMode, SchedKind};
use smoltcp::wire::{Icmpv6Repr, NdiscRepr, RawHardwareAddress};
use testkit::alloc::{armed, Counting};

const ROUTER6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x254);

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_processing_does_not_allocate() {
    // The counter works.
    let ((), n) = armed(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);

    let mut cfg = config(
        Proto::Tcp,
        80,
        SchedKind::Wrr,
        &[
            dest(0, 8080, 3, ForwardMode::FullNat),
            dest(1, 8080, 1, ForwardMode::FullNat),
        ],
    );
    let nat = config(
        Proto::Udp,
        53,
        SchedKind::Rr,
        &[dest(2, 53, 1, ForwardMode::Nat)],
    );
    for s in nat.services.iter() {
        cfg.services.add(s.clone()).unwrap();
    }
    let dip6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
    cfg.interfaces[WAN as usize].addrs6 = vec![dataplane::snapshot::Cidr6::new(dip6, 64)];
    let mut lab = Lab::new(&cfg);
    // Frames prepared up front (building them allocates; processing them must not).
    let flows = 512u16;
    let syns: Vec<Vec<u8>> = (0..flows)
        .map(|i| Frame::tcp(CIP, 20000 + i, VIP, 80, SYN).build())
        .collect();
    let acks: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            Frame::tcp(CIP, 20000 + i, VIP, 80, ACK | PSH)
                .payload(b"data")
                .build()
        })
        .collect();
    let udp: Vec<Vec<u8>> = (0..flows)
        .map(|i| Frame::udp(CIP, 30000 + i, VIP, 53).payload(b"q").build())
        .collect();
    // Fragmented datagrams: first fragments open sessions and enter the fragment table,
    // later ones follow.
    let frags: Vec<Vec<u8>> = (0..64u16)
        .flat_map(|i| {
            let mut f = Frame::udp(CIP, 31000 + i, VIP, 53).payload(&[1; 3000]);
            f.df = false;
            f.ident = i;
            fragment(&f.build(), 1500)
        })
        .collect();
    let others = [
        Frame::echo(CIP, VIP, true, 1).build(),
        Frame::tcp(CIP, 1, DIP_WAN, 22, SYN).build(),
        Frame::tcp(CIP, 1, std::net::Ipv4Addr::new(203, 0, 113, 9), 80, SYN).build(),
        vec![0u8; 20],
        // IPv6 to the director: a neighbour solicitation (answered, copied to the kernel)
        // and an echo request.
        icmpv6_frame(
            ROUTER_MAC,
            [0x33, 0x33, 0xff, 0, 0, 1],
            (ROUTER6, "ff02::1:ff00:1".parse().unwrap()),
            255,
            &Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr: dip6,
                lladdr: Some(RawHardwareAddress::from_bytes(&ROUTER_MAC)),
            }),
        ),
        icmpv6_frame(
            ROUTER_MAC,
            WAN_MAC,
            (ROUTER6, dip6),
            64,
            &Icmpv6Repr::EchoRequest {
                ident: 1,
                seq_no: 1,
                data: b"ping6",
            },
        ),
    ];

    let run = |lab: &mut Lab, frames: &[Vec<u8>], port: u16| -> u64 {
        let mut allocs = 0;
        for chunk in frames.chunks(32) {
            for f in chunk {
                assert!(lab.worker.port_mut(port).inject(f));
            }
            let (_, n) = armed(|| lab.worker.poll(lab.now));
            allocs += n;
            for p in [WAN, LAN, TAP] {
                while lab.worker.port_mut(p).pop_tx().is_some() {}
            }
        }
        allocs
    };

    // Warm-up: one of everything.
    run(&mut lab, &syns[..32], WAN);
    run(&mut lab, &acks[..32], WAN);
    run(&mut lab, &udp[..32], WAN);
    run(&mut lab, &frags[..6], WAN);
    run(&mut lab, &others, WAN);

    let mut total = 0;
    for round in 0..20u64 {
        total += run(&mut lab, &syns, WAN);
        total += run(&mut lab, &acks, WAN);
        total += run(&mut lab, &udp, WAN);
        total += run(&mut lab, &frags, WAN);
        total += run(&mut lab, &others, WAN);
        // Sessions expire (slow jobs, armed too) and the next round opens them afresh.
        lab.advance(1_000_000 + round);
        let (_, n) = armed(|| lab.worker.slow_jobs(lab.now));
        total += n;
        assert_eq!(lab.worker.sessions().len(), 0);
    }
    let c = lab.worker.counters();
    assert!(c.rx_packets() > 30_000, "{}", c.rx_packets());
    assert!(c.sessions_created() >= 20 * 2 * flows as u64);
    assert_eq!((c.neighbour_adverts(), c.icmp_echo_replies()), (21, 42));
    assert_eq!(
        c.fragments_followed(),
        2 * 2 + 20 * 64 * 2,
        "every later fragment followed"
    );
    assert_eq!(total, 0, "allocations on the packet path");
}
