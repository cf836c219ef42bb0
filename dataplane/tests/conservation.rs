//! Property tests over the whole worker: any input, valid or mangled, is either forwarded,
//! answered, handed to the kernel, or dropped with a reason — exactly one of them, never a
//! panic — and every frame the worker emits for a valid one has valid checksums: IPv4, and
//! IPv6 in every IPv6 mode and NAT64.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::Counters;
use proptest::prelude::*;
use sched::{Dest, ForwardMode, SchedKind, Service};
use smoltcp::wire::Icmpv6Repr;
use testkit::{checksums_valid6, frame_checksums_valid, icmpv6_frame, Frame6};

fn accounted(c: &Counters) -> bool {
    c.balanced()
}

fn seed_frames() -> Vec<Vec<u8>> {
    vec![
        Frame::tcp(CIP, 40000, VIP, 80, SYN).build(),
        Frame::tcp(CIP, 40000, VIP, 80, ACK | PSH)
            .payload(b"GET /")
            .build(),
        Frame::tcp(RS[0], 8080, LIP1, 1024, SYN | ACK)
            .via_rs(0)
            .build(),
        Frame::udp(CIP, 5000, VIP, 53).payload(b"q").build(),
        Frame::echo(CIP, VIP, true, 9).build(),
        Frame::echo(CIP, DIP_WAN, true, 9).build(),
        Frame::tcp(CIP, 40001, DIP_WAN, 22, SYN).build(),
    ]
}

/// Rewrites keep checksums: a frame that came in with valid checksums goes out with valid
/// ones (a bad one stays bad: the end host drops it, rvs does not repair it).
fn check_emitted(input: &[u8], out: &Out) {
    if !checksums_valid(input) {
        return;
    }
    for f in out.wan.iter().chain(out.lan.iter()) {
        if f.len() >= 14 && f[12..14] == [0x08, 0x00] {
            assert!(
                checksums_valid(f),
                "valid in, invalid out: {input:02x?} -> {f:02x?}"
            );
        }
    }
}

/// IPv6 frames of each kind the IPv6 services see: a client's SYN and data to the VIP, a
/// reply from an IPv6 RS to the LIP, a UDP query, an echo request and a TCP SYN to the DIP, a
/// client's SYN to the NAT64 service, an IPv4 reply from its RS to the IPv4 LIP, and the first
/// and last fragments of a client's UDP datagram.
fn seed_frames6() -> Vec<Vec<u8>> {
    let echo = Icmpv6Repr::EchoRequest {
        ident: 7,
        seq_no: 1,
        data: b"ping",
    };
    let big = Frame6::udp(CLIENT6, 5001, VIP6, 53)
        .payload(&[0x33; 2000])
        .build();
    let pieces = testkit::fragment6(&big, 1280, 0x1234);
    vec![
        Frame6::tcp(CLIENT6, 40000, VIP6, 80, SYN).build(),
        Frame6::tcp(CLIENT6, 40000, VIP6, 80, ACK | PSH)
            .payload(b"GET /")
            .build(),
        from_lan6(Frame6::tcp(RS6[0], 80, LIP6, 1024, SYN | ACK)),
        Frame6::udp(CLIENT6, 5000, VIP6, 53).payload(b"q").build(),
        icmpv6_frame(ROUTER_MAC, WAN_MAC, (ROUTER6, DIP6_WAN), 64, &echo),
        Frame6::tcp(CLIENT6, 40001, DIP6_WAN, 22, SYN).build(),
        Frame6::tcp(CLIENT6, 40002, VIP6, 8000, SYN).build(),
        Frame::tcp(RS[1], 8080, LIP1, 1024, SYN | ACK)
            .via_rs(1)
            .build(),
        pieces[0].clone(),
        pieces[pieces.len() - 1].clone(),
    ]
}

/// `f` as an RS sends it to the director's LAN port.
fn from_lan6(mut f: Frame6) -> Vec<u8> {
    f.dst_mac = LAN_MAC;
    f.src_mac = testkit::rs_mac(0);
    f.build()
}

/// The IPv6 lab with TCP [VIP6]:80 and UDP [VIP6]:53 in `mode` toward the IPv6 RSs, and
/// NAT64's TCP [VIP6]:8000 toward the IPv4 RS[1].
fn config6(mode: ForwardMode) -> dataplane::snapshot::DirectorConfig {
    let mut cfg = config_with_ipv6();
    cfg.lips6 = vec![LIP6];
    let v6 = |i: usize, port: u16| Dest {
        addr: RS6[i].into(),
        port,
        weight: 1,
        mode,
    };
    let port = if mode.maps_ports() { 8080 } else { 80 };
    let mut web = Service::new(key6(Proto::Tcp, 80), SchedKind::Rr).unwrap();
    web.add_dest(v6(0, port)).unwrap();
    web.add_dest(v6(1, port)).unwrap();
    cfg.services.add(web).unwrap();
    let mut dns = Service::new(key6(Proto::Udp, 53), SchedKind::Rr).unwrap();
    dns.add_dest(v6(0, 53)).unwrap();
    cfg.services.add(dns).unwrap();
    let mut nat64 = Service::new(key6(Proto::Tcp, 8000), SchedKind::Rr).unwrap();
    nat64
        .add_dest(dest(1, 8080, 1, ForwardMode::FullNat))
        .unwrap();
    cfg.services.add(nat64).unwrap();
    cfg
}

/// [`check_emitted`] for IPv6 inputs: a valid one's outputs (IPv6, or IPv4 after NAT64)
/// all have valid checksums.
fn check_emitted6(input: &[u8], out: &Out) {
    let ipv4 = input.get(12..14) == Some(&[0x08, 0x00][..]);
    if !frame_checksums_valid(input) || !(ipv4 || checksums_valid6(input)) {
        return;
    }
    for f in out.wan.iter().chain(out.lan.iter()) {
        assert!(
            frame_checksums_valid(f),
            "valid in, invalid out: {input:02x?} -> {f:02x?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_accounted(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..32)) {
        let mut lab = Lab::new(&config(Proto::Tcp, 80, SchedKind::Rr, &[dest(0, 8080, 1, ForwardMode::FullNat)]));
        for f in &frames {
            let out = lab.send(WAN, f);
            check_emitted(f, &out);
        }
        prop_assert!(accounted(lab.worker.counters()), "{:?}", lab.worker.counters());
    }

    #[test]
    fn mutated_valid_frames_never_panic_and_are_accounted(
        picks in proptest::collection::vec((0usize..7, 0usize..80, any::<u8>(), 0usize..4), 1..64),
        mode in prop_oneof![Just(ForwardMode::FullNat), Just(ForwardMode::Nat), Just(ForwardMode::Dr), Just(ForwardMode::Tun)],
    ) {
        let port = if mode.maps_ports() { 8080 } else { 80 };
        let mut cfg = config(Proto::Tcp, 80, SchedKind::Rr, &[dest(0, port, 1, mode), dest(1, port, 2, mode)]);
        let udp = config(Proto::Udp, 53, SchedKind::Rr, &[dest(2, 53, 1, mode)]);
        for s in udp.services.iter() {
            cfg.services.add(s.clone()).unwrap();
        }
        let mut lab = Lab::new(&cfg);
        let seeds = seed_frames();
        for (which, at, byte, cut) in picks {
            let mut f = seeds[which].clone();
            // Flip one byte (headers mostly), and sometimes cut the frame short.
            let i = at % f.len();
            f[i] ^= byte;
            if cut == 0 {
                f.truncate(at.min(f.len()));
            }
            let out = lab.send(if which == 2 { LAN } else { WAN }, &f);
            check_emitted(&f, &out);
            lab.advance(1_000);
        }
        lab.advance(1_000_000);
        lab.slow();
        prop_assert!(accounted(lab.worker.counters()), "{:?}", lab.worker.counters());
        prop_assert_eq!(lab.worker.sessions().len(), 0, "every session expires in the end");
        let pool = lab.worker.lip_pool().map(|p| (p.available(), p.capacity()));
        if let Some((avail, cap)) = pool {
            prop_assert_eq!(avail, cap, "every LIP port came back");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_ipv6_frames_never_panic_and_are_accounted(
        picks in proptest::collection::vec((0usize..10, 0usize..120, any::<u8>(), 0usize..4), 1..64),
        mode in prop_oneof![Just(ForwardMode::FullNat), Just(ForwardMode::Nat), Just(ForwardMode::Dr), Just(ForwardMode::Tun)],
    ) {
        let mut lab = Lab::new(&config6(mode));
        know_ipv6_neighbours(&mut lab);
        let seeds = seed_frames6();
        for (which, at, byte, cut) in picks {
            let mut f = seeds[which].clone();
            let i = at % f.len();
            f[i] ^= byte;
            if cut == 0 {
                f.truncate(at.min(f.len()));
            }
            let port = if which == 2 || which == 7 { LAN } else { WAN };
            let out = lab.send(port, &f);
            check_emitted6(&f, &out);
            lab.advance(1_000);
        }
        lab.advance(1_000_000);
        lab.slow();
        prop_assert!(accounted(lab.worker.counters()), "{:?}", lab.worker.counters());
        prop_assert_eq!(lab.worker.sessions6().len(), 0, "every session expires in the end");
        for (avail, cap) in [
            lab.worker.lip_pool6().map(|p| (p.available(), p.capacity())),
            lab.worker.lip_pool().map(|p| (p.available(), p.capacity())),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert_eq!(avail, cap, "every LIP port came back");
        }
    }

    /// The unmutated seeds, each valid: what they cause is valid too, and the ones that open
    /// or answer something (the SYNs, the query, the echo, the first fragment) do send
    /// frames — a guard that the property above judges real outputs.
    #[test]
    fn valid_ipv6_seeds_give_valid_frames(which in 0usize..10) {
        let mut lab = Lab::new(&config6(ForwardMode::FullNat));
        know_ipv6_neighbours(&mut lab);
        let seeds = seed_frames6();
        let f = &seeds[which];
        prop_assert!(frame_checksums_valid(f));
        let port = if which == 2 || which == 7 { LAN } else { WAN };
        let out = lab.send(port, f);
        check_emitted6(f, &out);
        if [0, 3, 4, 6, 8].contains(&which) {
            prop_assert!(out.wan.len() + out.lan.len() > 0, "seed {} sent nothing", which);
        }
    }
}
