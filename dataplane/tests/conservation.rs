//! Property tests over the whole worker: any input, valid or mangled, is either forwarded,
//! answered, handed to the kernel, or dropped with a reason — exactly one of them, never a
//! panic — and every IPv4 frame the worker emits has valid checksums.

mod common;

use common::*;
use conntrack::Proto;
use dataplane::Counters;
use proptest::prelude::*;
use sched::{ForwardMode, SchedKind};

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
