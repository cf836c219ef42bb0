//! Checksum costs on the rewrite path: RFC 1624 incremental updates for one address and one
//! port, the whole FullNAT rewrite of a TCP packet (two addresses, two ports, IP and TCP
//! checksums), and a full RFC 1071 sum over an MSS of payload for contrast.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::checksum::{checksum, pseudo_header_sum, sum_bytes, update16, update32};
use dataplane::wire::{Ipv4Packet, TcpPacket};

const IP: usize = 0;
const TCP: usize = 20;

/// A FullNAT translation: the addresses and ports a packet is rewritten to.
#[derive(Clone, Copy)]
struct Nat {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
}

// Client → VIP as received, and LIP → RIP as sent: the bench flips between the two so the
// packet stays valid and every iteration does the full work.
const CLIENT_SIDE: Nat = Nat {
    src: 0xc633_6407, // 198.51.100.7
    dst: 0xcb00_710a, // 203.0.113.10 (VIP)
    sport: 51234,
    dport: 80,
};
const RS_SIDE: Nat = Nat {
    src: 0x0a00_0101, // 10.0.1.1 (LIP)
    dst: 0x0a00_0214, // 10.0.2.20 (RIP)
    sport: 20001,
    dport: 8080,
};

/// An IPv4/TCP packet (no options) with `payload` bytes of payload and correct checksums.
fn tcp_packet(payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&CLIENT_SIDE.src.to_be_bytes());
    p[16..20].copy_from_slice(&CLIENT_SIDE.dst.to_be_bytes());
    p[TCP..TCP + 2].copy_from_slice(&CLIENT_SIDE.sport.to_be_bytes());
    p[TCP + 2..TCP + 4].copy_from_slice(&CLIENT_SIDE.dport.to_be_bytes());
    p[TCP + 12] = 5 << 4;
    p[TCP + 13] = 0x18;
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let l4 = (20 + payload) as u16;
    let c = !dataplane::checksum::fold(sum_bytes(
        pseudo_header_sum(CLIENT_SIDE.src, CLIENT_SIDE.dst, 6, l4),
        &p[TCP..],
    ));
    p[TCP + 16..TCP + 18].copy_from_slice(&c.to_be_bytes());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn rd16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

fn rd32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// The FullNAT rewrite on raw bytes: four fields, both checksums updated incrementally.
#[inline(never)]
fn fullnat_rewrite(p: &mut [u8], to: Nat) {
    let (old_src, old_dst) = (rd32(p, IP + 12), rd32(p, IP + 16));
    let (old_sport, old_dport) = (rd16(p, TCP), rd16(p, TCP + 2));
    let mut ipc = rd16(p, IP + 10);
    let mut tcpc = rd16(p, TCP + 16);
    ipc = update32(update32(ipc, old_src, to.src), old_dst, to.dst);
    tcpc = update32(update32(tcpc, old_src, to.src), old_dst, to.dst);
    tcpc = update16(update16(tcpc, old_sport, to.sport), old_dport, to.dport);
    p[IP + 12..IP + 16].copy_from_slice(&to.src.to_be_bytes());
    p[IP + 16..IP + 20].copy_from_slice(&to.dst.to_be_bytes());
    p[IP + 10..IP + 12].copy_from_slice(&ipc.to_be_bytes());
    p[TCP..TCP + 2].copy_from_slice(&to.sport.to_be_bytes());
    p[TCP + 2..TCP + 4].copy_from_slice(&to.dport.to_be_bytes());
    p[TCP + 16..TCP + 18].copy_from_slice(&tcpc.to_be_bytes());
}

/// The same rewrite through smoltcp's checked views, as the data path would parse it.
#[inline(never)]
fn fullnat_rewrite_views(p: &mut [u8], to: Nat) -> Option<()> {
    let mut ip = Ipv4Packet::new_checked(&mut *p).ok()?;
    let (old_src, old_dst) = (u32::from(ip.src_addr()), u32::from(ip.dst_addr()));
    let ipc = update32(update32(ip.checksum(), old_src, to.src), old_dst, to.dst);
    ip.set_src_addr(Ipv4Addr::from(to.src));
    ip.set_dst_addr(Ipv4Addr::from(to.dst));
    ip.set_checksum(ipc);
    let mut tcp = TcpPacket::new_checked(ip.payload_mut()).ok()?;
    let mut c = update32(update32(tcp.checksum(), old_src, to.src), old_dst, to.dst);
    c = update16(c, tcp.src_port(), to.sport);
    c = update16(c, tcp.dst_port(), to.dport);
    tcp.set_src_port(to.sport);
    tcp.set_dst_port(to.dport);
    tcp.set_checksum(c);
    Some(())
}

/// Both checksums of `p` still verify (checked with smoltcp after the runs).
fn assert_valid(p: &[u8]) {
    let ip = Ipv4Packet::new_checked(p).expect("IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    let tcp = TcpPacket::new_checked(ip.payload()).expect("TCP");
    assert!(tcp.verify_checksum(&src, &dst), "TCP checksum");
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");

    g.bench_function("update32_address", |b| {
        b.iter(|| {
            update32(
                black_box(0x1c46),
                black_box(CLIENT_SIDE.dst),
                black_box(RS_SIDE.dst),
            )
        })
    });

    g.bench_function("update16_port", |b| {
        b.iter(|| update16(black_box(0x1c46), black_box(80), black_box(8080)))
    });

    let mut pkt = tcp_packet(6); // a 60-byte frame's worth of IPv4/TCP
    let mut flip = false;
    g.bench_function("fullnat_rewrite_4_fields", |b| {
        b.iter(|| {
            flip = !flip;
            let to = if flip { RS_SIDE } else { CLIENT_SIDE };
            fullnat_rewrite(black_box(&mut pkt), to);
        })
    });
    assert_valid(&pkt);

    let mut pkt = tcp_packet(6);
    let mut flip = false;
    g.bench_function("fullnat_rewrite_4_fields_smoltcp_views", |b| {
        b.iter(|| {
            flip = !flip;
            let to = if flip { RS_SIDE } else { CLIENT_SIDE };
            fullnat_rewrite_views(black_box(&mut pkt), to)
        })
    });
    assert_valid(&pkt);

    let data: Vec<u8> = (0..1460u32).map(|i| (i * 7) as u8).collect();
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("full_checksum_1460", |b| {
        b.iter(|| checksum(black_box(&data)))
    });
    g.finish();
}

criterion_group!(checksum_benches, benches);
criterion_main!(checksum_benches);
