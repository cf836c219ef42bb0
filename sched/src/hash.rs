//! SipHash-1-3 with fixed keys: the hash mh places dests and looks up clients with.
//!
//! Several directors must send a flow to the same dest, so the hash has to be the same in
//! every process on every machine: fixed keys, no random seed, bytes fed in a fixed order
//! (addresses and ports big-endian, as on the wire). SipHash (Aumasson and Bernstein, 2012)
//! with one compression and three finalization rounds is what Linux calls `hsiphash` on 64-bit
//! machines and uses for IPVS mh; it is also what Rust's `std` hashes with. The keys being
//! public, this is not a defence against an attacker who picks CIPs to load one dest, and it
//! does not need to be: whoever picks the CIPs of many flows can load a dest with any
//! consistent hash.
//!
//! The output is the full 64 bits; callers reduce it to a range with [`reduce`]
//! (multiply-shift, Lemire 2019) rather than a division.

/// A SipHash key: two 64-bit words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SipKey(pub(crate) u64, pub(crate) u64);

/// SipHash-1-3 of `msg` under `key`.
#[inline]
pub(crate) fn siphash13(key: SipKey, msg: &[u8]) -> u64 {
    siphash::<1, 3>(key, msg)
}

/// SipHash-c-d of `msg` under `key`, with `C` compression and `D` finalization rounds.
#[inline]
fn siphash<const C: usize, const D: usize>(key: SipKey, msg: &[u8]) -> u64 {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    let blocks = msg.chunks_exact(8);
    let tail = blocks.remainder();
    for block in blocks {
        compress::<C>(&mut v, le_u64(block));
    }
    // The last block: the remaining bytes, and the message length (mod 256) in the top byte.
    let len = (msg.len() & 0xff) as u64;
    compress::<C>(&mut v, le_u64(tail) | (len << 56));
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Mixes one 8-byte message word into the state.
#[inline]
fn compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        sip_round(v);
    }
    v[0] ^= m;
}

/// One SipRound.
#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// Up to 8 bytes as a little-endian number (SipHash reads its message little-endian).
#[inline]
fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// `h` mapped onto `0..n` by multiply-shift: `(h * n) >> 64`. As even as `h % n` for a
/// uniform `h` (each value gets `2^64 / n` hashes, give or take one) without a division.
#[inline]
pub(crate) fn reduce(h: u64, n: usize) -> usize {
    // n <= usize::MAX, and the result is < n, so both conversions are exact.
    ((u128::from(h) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::Hasher;

    /// The key of the SipHash paper's test vectors: bytes 00 01 .. 0f.
    const PAPER_KEY: SipKey = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);

    #[test]
    fn siphash24_matches_the_reference_vectors() {
        // vectors.h of the reference implementation: the empty message, and 00 .. 0e.
        assert_eq!(siphash::<2, 4>(PAPER_KEY, &[]), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash::<2, 4>(PAPER_KEY, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)] // std's SipHasher is SipHash-2-4, deprecated but fixed.
    fn siphash24_matches_std_for_every_length() {
        let msg: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for len in 0..=msg.len() {
            let mut std = std::hash::SipHasher::new_with_keys(PAPER_KEY.0, PAPER_KEY.1);
            std.write(&msg[..len]);
            assert_eq!(
                siphash::<2, 4>(PAPER_KEY, &msg[..len]),
                std.finish(),
                "{len}"
            );
        }
    }

    #[test]
    fn siphash13_is_pinned() {
        // Values this implementation gave when written; they matched std's SipHasher13 (what
        // DefaultHasher::new() was then) for messages of 0, 4, 6 and 40 bytes. They must never
        // change: directors that disagree on them send a flow to different dests.
        assert_eq!(siphash13(SipKey(0, 0), &[]), 0xd1fb_a762_150c_532c);
        assert_eq!(siphash13(PAPER_KEY, &[10, 0, 0, 1]), PINNED_4);
        assert_eq!(siphash13(PAPER_KEY, &[10, 0, 0, 1, 0, 80]), PINNED_6);
    }

    /// SipHash-1-3 of 10.0.0.1 under the paper key.
    const PINNED_4: u64 = 0x60fa_1b7d_35ba_05af;
    /// SipHash-1-3 of 10.0.0.1 and port 80 under the paper key.
    const PINNED_6: u64 = 0x2690_751d_74c7_c42f;

    #[test]
    fn reduce_stays_in_range_and_covers_it() {
        assert_eq!(reduce(0, 65537), 0);
        assert_eq!(reduce(u64::MAX, 65537), 65536);
        assert_eq!(reduce(u64::MAX, 1), 0);
        assert_eq!(reduce(1 << 63, 251), 125);
        assert_eq!(reduce(12345, 0), 0);
    }
}
