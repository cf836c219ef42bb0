//! Receive-side scaling in software: the NIC's Toeplitz hash and redirection table (RETA).
//!
//! A NIC doing RSS hashes each received packet's tuple with the port's secret key (the
//! Toeplitz hash of the Microsoft RSS specification), then uses the low bits of the hash to
//! index its redirection table, whose entry names the RX queue. Computing the same thing here
//! lets a worker predict which queue a packet *will* arrive on, before it exists: FullNAT picks
//! an lport whose reply tuple `RIP:rport → LIP:lport` lands on the worker's own queue (see
//! [`ReplySteering`], in `steering.rs`), so the reply finds the session without a hand-over
//! between workers.
//!
//! The hash input is the packet's fields in network byte order, in the order the specification
//! gives: source address, destination address, then for TCP/UDP source port, destination port
//! (12 bytes for the IPv4 4-tuple, 8 for the address pair). Bit `i` of the input, counted from
//! the most significant bit of the first byte, XORs key bits `i .. i + 32` into the result; the
//! key is read as zeros past its end. The hash is therefore linear over GF(2):
//! `hash(a ^ b) == hash(a) ^ hash(b)` for inputs of equal length, which is what makes the
//! per-byte tables of [`ToeplitzTable`] and the per-port split of the FullNAT reply hash work.
//!
//! What the software model assumes of the port's RSS setup (the data path must program it so):
//! the plain Toeplitz function (not the "symmetric" or XOR variants some NICs offer), the
//! 4-tuple enabled for TCP and UDP over IPv4, and the key and RETA read back from the device.
//! Packets the NIC hashes differently (IP fragments hash the address pair only, non-TCP/UDP
//! protocols likewise) may land on another queue; the hand-over ring is the fallback for them.
//!
//! [`toeplitz`] is the bitwise reference, kept simple for tests; [`hash_ipv4_l4`] and
//! [`hash_ipv4`] are table-free fast paths; [`ToeplitzTable`] trades 12 KiB per key for a hash
//! in twelve table loads. None of the hash functions allocate.
//!
//! Test vectors: the RSS verification suite of Microsoft's "Verifying the RSS Hash Calculation"
//! (also in the Intel 82599 datasheet, §7.1.2.8.3, and DPDK's `app/test/test_thash.c`).

mod steering;

pub use steering::{PartialReplyHash, ReplySteering};

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// The longest RSS key any NIC uses (Intel i40e/ice: 52 bytes).
pub const MAX_KEY_LEN: usize = 52;

/// The shortest key accepted: enough to hash the 12-byte IPv4 4-tuple without running off the
/// key's end (input length + 4 bytes).
pub const MIN_KEY_LEN: usize = 16;

/// Length of the hash input for the IPv4 address pair plus ports.
const IPV4_L4_LEN: usize = 12;

/// Why an RSS key or redirection table was refused (control path).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RssError {
    /// The key is shorter than [`MIN_KEY_LEN`] or longer than [`MAX_KEY_LEN`].
    #[error("RSS key of {0} bytes: expected {MIN_KEY_LEN} to {MAX_KEY_LEN} (40 on most NICs)")]
    KeyLength(usize),
    /// The redirection table has no entries.
    #[error("the RSS redirection table (RETA) has no entries")]
    EmptyReta,
    /// A round-robin RETA over zero queues was asked for.
    #[error("an RSS redirection table needs at least one RX queue")]
    NoQueues,
    /// The queue a worker steers to appears nowhere in the RETA, so no packet would ever reach
    /// it.
    #[error("RX queue {0} has no entry in the RSS redirection table: no packet can reach it")]
    QueueNotInReta(u16),
}

/// A port's RSS secret key: 16 to 52 bytes (40 on most NICs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RssKey {
    /// The key, zero-padded past `len` (the hash reads the key as zeros past its end).
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl RssKey {
    /// The 40-byte key of the Microsoft RSS verification suite, also the default key of many
    /// NIC drivers and of DPDK's test suite.
    pub const MICROSOFT: RssKey = RssKey::from_array([
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]);

    /// A 40-byte key, usable in constants.
    pub const fn from_array(key: [u8; 40]) -> RssKey {
        let mut bytes = [0u8; MAX_KEY_LEN];
        let mut i = 0;
        while i < key.len() {
            bytes[i] = key[i];
            i += 1;
        }
        RssKey { bytes, len: 40 }
    }

    /// The key `bytes`, as read back from the device.
    ///
    /// # Errors
    /// [`RssError::KeyLength`] unless `bytes` has [`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<RssKey, RssError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(RssError::KeyLength(bytes.len()));
        }
        let mut key = RssKey {
            bytes: [0; MAX_KEY_LEN],
            len: bytes.len() as u8,
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Key bits `8 * at .. 8 * at + 64` as a big-endian word, zeros past the key's end.
    /// Callers pass `at <= 35` (a byte of the 36-byte IPv6 tuple), inside the array.
    #[inline]
    fn word64(&self, at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.bytes[at..at + 8]);
        u64::from_be_bytes(w)
    }
}

impl fmt::Debug for RssKey {
    /// Hex, as `ethtool -x` and DPDK's `show port rss-hash key` print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RssKey(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The Toeplitz hash of `input` under `key`, bit by bit as the Microsoft specification writes
/// it: for each input bit, most significant first, XOR the 32-bit key window starting at that
/// bit into the result, then slide the window one bit. The reference the fast paths are tested
/// against; any input length (the key reads as zeros past its end).
pub fn toeplitz(key: &RssKey, input: &[u8]) -> u32 {
    let k = key.as_bytes();
    let byte = |i: usize| k.get(i).copied().unwrap_or(0);
    let mut window = u32::from_be_bytes([byte(0), byte(1), byte(2), byte(3)]);
    let mut hash = 0u32;
    for (i, &b) in input.iter().enumerate() {
        let next = byte(i + 4);
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The Toeplitz hash of up to three big-endian input words: bit `j` of word `i` selects the
/// key window `key[32 i + j ..][..32]`, taken out of a 64-bit slice of the key. Branch-free
/// (a mask per bit) so that the cost does not depend on the tuple.
#[inline]
fn hash_words(key: &RssKey, words: &[u32]) -> u32 {
    words
        .iter()
        .enumerate()
        .fold(0, |hash, (i, &w)| hash ^ hash_word_at(key, i, w))
}

/// Word `i` of the input's share of the hash (the other words zero): its set bits select
/// key windows starting at bit `32 i`.
#[inline]
fn hash_word_at(key: &RssKey, i: usize, w: u32) -> u32 {
    let k = key.word64(4 * i);
    let mut hash = 0;
    for j in 0..32 {
        let window = ((k << j) >> 32) as u32;
        let bit = (w >> (31 - j)) & 1;
        hash ^= window & bit.wrapping_neg();
    }
    hash
}

/// The RSS hash of a TCP or UDP over IPv6 packet from `src:sport` to `dst:dport`, as a NIC with
/// the IPv6 4-tuple enabled computes it (the 36-byte input: addresses, then ports).
#[inline]
pub fn hash_ipv6_l4(key: &RssKey, src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> u32 {
    let mut words = [0u32; 9];
    let (s, d) = (src.octets(), dst.octets());
    for (i, c) in s.chunks_exact(4).chain(d.chunks_exact(4)).enumerate() {
        words[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    words[8] = (u32::from(sport) << 16) | u32::from(dport);
    hash_words(key, &words)
}

/// The destination port's share of [`hash_ipv6_l4`]:
/// `hash_ipv6_l4(s, d, sp, dp) == hash_ipv6_l4(s, d, sp, 0) ^ hash_ipv6_dport(dp)`.
#[inline]
pub fn hash_ipv6_dport(key: &RssKey, dport: u16) -> u32 {
    hash_word_at(key, 8, u32::from(dport))
}

/// The RSS hash of a TCP or UDP over IPv4 packet from `src:sport` to `dst:dport`, as a NIC with
/// the 4-tuple enabled computes it. Table-free: one step per set bit of the tuple.
#[inline]
pub fn hash_ipv4_l4(key: &RssKey, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let ports = (u32::from(sport) << 16) | u32::from(dport);
    hash_words(key, &[u32::from(src), u32::from(dst), ports])
}

/// The RSS hash of an IPv4 packet over its address pair only (fragments, or protocols without
/// ports).
#[inline]
pub fn hash_ipv4(key: &RssKey, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    hash_words(key, &[u32::from(src), u32::from(dst)])
}

/// Per-byte lookup tables for one key: entry `[i][b]` is the hash of a 12-byte input that is
/// zero except for byte `i`, which is `b`. By linearity the hash of the IPv4 4-tuple is the XOR
/// of twelve entries. 12 KiB, built once per key on the control path.
#[derive(Clone)]
pub struct ToeplitzTable {
    key: RssKey,
    table: Box<[[u32; 256]; IPV4_L4_LEN]>,
}

impl fmt::Debug for ToeplitzTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToeplitzTable")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ToeplitzTable {
    /// The tables of `key` (allocates 12 KiB).
    pub fn new(key: &RssKey) -> ToeplitzTable {
        let mut table = Box::new([[0u32; 256]; IPV4_L4_LEN]);
        for (i, row) in table.iter_mut().enumerate() {
            // Key window of each of the byte's eight bits, most significant first.
            let k = key.word64(i);
            let windows: [u32; 8] = core::array::from_fn(|bit| ((k << bit) >> 32) as u32);
            for (b, entry) in row.iter_mut().enumerate() {
                *entry = windows
                    .iter()
                    .enumerate()
                    .filter(|&(bit, _)| b & (0x80 >> bit) != 0)
                    .fold(0, |h, (_, w)| h ^ w);
            }
        }
        ToeplitzTable { key: *key, table }
    }

    /// The key the tables were built from.
    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// XOR of the table entries of `bytes`, which sit at input positions `at ..`.
    #[inline]
    fn sum(&self, at: usize, bytes: [u8; 4]) -> u32 {
        self.table[at][usize::from(bytes[0])]
            ^ self.table[at + 1][usize::from(bytes[1])]
            ^ self.table[at + 2][usize::from(bytes[2])]
            ^ self.table[at + 3][usize::from(bytes[3])]
    }

    /// Same as [`hash_ipv4_l4`] with this table's key, in twelve table loads.
    #[inline]
    pub fn hash_ipv4_l4(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let [s0, s1] = sport.to_be_bytes();
        let [d0, d1] = dport.to_be_bytes();
        self.sum(0, src.octets()) ^ self.sum(4, dst.octets()) ^ self.sum(8, [s0, s1, d0, d1])
    }

    /// Same as [`hash_ipv4`] with this table's key, in eight table loads.
    #[inline]
    pub fn hash_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        self.sum(0, src.octets()) ^ self.sum(4, dst.octets())
    }

    /// The destination port's share of the 4-tuple hash, in two table loads:
    /// `hash_ipv4_l4(s, d, sp, dp) == hash_ipv4_l4(s, d, sp, 0) ^ hash_dport(dp)`.
    #[inline]
    pub fn hash_dport(&self, dport: u16) -> u32 {
        let [hi, lo] = dport.to_be_bytes();
        self.table[10][usize::from(hi)] ^ self.table[11][usize::from(lo)]
    }
}

/// A port's RSS redirection table: hash → RX queue.
#[derive(Clone, PartialEq, Eq)]
pub struct Reta {
    entries: Box<[u16]>,
    /// `entries.len() - 1` when the length is a power of two (the usual case), so the index is
    /// a mask instead of a division.
    mask: Option<usize>,
}

impl fmt::Debug for Reta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reta").field(&self.entries).finish()
    }
}

impl Reta {
    /// A table with these entries (queue numbers), as read back from the device.
    ///
    /// # Errors
    /// [`RssError::EmptyReta`] if `entries` is empty.
    pub fn new(entries: Vec<u16>) -> Result<Reta, RssError> {
        if entries.is_empty() {
            return Err(RssError::EmptyReta);
        }
        let len = entries.len();
        Ok(Reta {
            entries: entries.into_boxed_slice(),
            mask: len.is_power_of_two().then(|| len - 1),
        })
    }

    /// The table most drivers program by default: `size` entries, entry `i` → queue
    /// `i % queues`.
    ///
    /// # Errors
    /// [`RssError::EmptyReta`] if `size` is 0, [`RssError::NoQueues`] if `queues` is 0.
    pub fn round_robin(size: usize, queues: u16) -> Result<Reta, RssError> {
        if queues == 0 {
            return Err(RssError::NoQueues);
        }
        Reta::new(
            (0..size)
                .map(|i| (i % usize::from(queues)) as u16)
                .collect(),
        )
    }

    /// The RX queue a packet with RSS hash `hash` is delivered to: entry `hash % size`, i.e.
    /// the low bits of the hash for a power-of-two size, as the NIC indexes it.
    #[inline]
    pub fn queue(&self, hash: u32) -> u16 {
        let h = hash as usize;
        let i = match self.mask {
            Some(mask) => h & mask,
            None => h % self.entries.len(),
        };
        self.entries[i]
    }

    /// Number of entries (never 0).
    pub fn size(&self) -> usize {
        self.entries.len()
    }

    /// The entries: queue number per index.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// Whether some entry sends packets to `queue`.
    pub fn contains(&self, queue: u16) -> bool {
        self.entries.contains(&queue)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One IPv4 row of the RSS verification suite: source, destination, both hashes.
    struct Vector {
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        /// Over the address pair only.
        ipv4: u32,
        /// Over the address pair and the ports.
        ipv4_l4: u32,
    }

    /// Microsoft, "Verifying the RSS Hash Calculation", IPv4 table (the same five rows are in
    /// the Intel 82599 datasheet §7.1.2.8.3 and DPDK `app/test/test_thash.c`). The suite lists
    /// destination before source; the hash input is source first.
    const SUITE: [Vector; 5] = [
        Vector {
            src: [66, 9, 149, 187],
            sport: 2794,
            dst: [161, 142, 100, 80],
            dport: 1766,
            ipv4: 0x323e_8fc2,
            ipv4_l4: 0x51cc_c178,
        },
        Vector {
            src: [199, 92, 111, 2],
            sport: 14230,
            dst: [65, 69, 140, 83],
            dport: 4739,
            ipv4: 0xd718_262a,
            ipv4_l4: 0xc626_b0ea,
        },
        Vector {
            src: [24, 19, 198, 95],
            sport: 12898,
            dst: [12, 22, 207, 184],
            dport: 38024,
            ipv4: 0xd2d0_a5de,
            ipv4_l4: 0x5c2b_394a,
        },
        Vector {
            src: [38, 27, 205, 30],
            sport: 48228,
            dst: [209, 142, 163, 6],
            dport: 2217,
            ipv4: 0x8298_9176,
            ipv4_l4: 0xafc7_327f,
        },
        Vector {
            src: [153, 39, 163, 191],
            sport: 44251,
            dst: [202, 188, 127, 2],
            dport: 1303,
            ipv4: 0x5d18_09c5,
            ipv4_l4: 0x10e8_28a2,
        },
    ];

    fn tuple(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> [u8; 12] {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&src.octets());
        t[4..8].copy_from_slice(&dst.octets());
        t[8..10].copy_from_slice(&sport.to_be_bytes());
        t[10..].copy_from_slice(&dport.to_be_bytes());
        t
    }

    #[test]
    fn microsoft_verification_suite() {
        let key = RssKey::MICROSOFT;
        let table = ToeplitzTable::new(&key);
        for v in &SUITE {
            let (src, dst) = (Ipv4Addr::from(v.src), Ipv4Addr::from(v.dst));
            let t = tuple(src, dst, v.sport, v.dport);
            assert_eq!(
                toeplitz(&key, &t),
                v.ipv4_l4,
                "reference, {src}:{}",
                v.sport
            );
            assert_eq!(toeplitz(&key, &t[..8]), v.ipv4, "reference, {src}");
            assert_eq!(hash_ipv4_l4(&key, src, dst, v.sport, v.dport), v.ipv4_l4);
            assert_eq!(hash_ipv4(&key, src, dst), v.ipv4);
            assert_eq!(table.hash_ipv4_l4(src, dst, v.sport, v.dport), v.ipv4_l4);
            assert_eq!(table.hash_ipv4(src, dst), v.ipv4);
        }
    }

    /// Microsoft, "Verifying the RSS Hash Calculation", IPv6 table: (source, sport,
    /// destination, dport, hash over addresses and ports).
    const SUITE6: [(&str, u16, &str, u16, u32); 3] = [
        (
            "3ffe:2501:200:1fff::7",
            2794,
            "3ffe:2501:200:3::1",
            1766,
            0x4020_7d3d,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            "ff02::1",
            4739,
            0xdde5_1bbf,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            "fe80::200:f8ff:fe21:67cf",
            38024,
            0x02d1_feef,
        ),
    ];

    #[test]
    fn microsoft_ipv6_verification_suite() {
        let key = RssKey::MICROSOFT;
        for (src, sport, dst, dport, want) in SUITE6 {
            let (s, d): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut t = [0u8; 36];
            t[..16].copy_from_slice(&s.octets());
            t[16..32].copy_from_slice(&d.octets());
            t[32..34].copy_from_slice(&sport.to_be_bytes());
            t[34..].copy_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&key, &t), want, "reference, {src}");
            assert_eq!(hash_ipv6_l4(&key, s, d, sport, dport), want, "{src}");
            assert_eq!(
                hash_ipv6_l4(&key, s, d, sport, 0) ^ hash_ipv6_dport(&key, dport),
                want,
                "the port's share splits off"
            );
        }
    }

    #[test]
    fn microsoft_key_matches_the_published_hex() {
        let hex =
            "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(RssKey::new(&bytes), Ok(RssKey::MICROSOFT));
        assert_eq!(format!("{:?}", RssKey::MICROSOFT), format!("RssKey({hex})"));
        assert_eq!(RssKey::MICROSOFT.as_bytes().len(), 40);
    }

    #[test]
    fn key_lengths() {
        assert_eq!(RssKey::new(&[1; 15]), Err(RssError::KeyLength(15)));
        assert_eq!(RssKey::new(&[1; 53]), Err(RssError::KeyLength(53)));
        assert_eq!(RssKey::new(&[1; 16]).map(|k| k.as_bytes().len()), Ok(16));
        assert_eq!(RssKey::new(&[1; 52]).map(|k| k.as_bytes().len()), Ok(52));
        assert_eq!(
            RssError::KeyLength(8).to_string(),
            "RSS key of 8 bytes: expected 16 to 52 (40 on most NICs)"
        );
    }

    #[test]
    fn reta_indexes_by_low_bits() {
        let reta = Reta::round_robin(128, 4).unwrap();
        assert_eq!(reta.size(), 128);
        assert_eq!(reta.queue(0), 0);
        assert_eq!(reta.queue(5), 1);
        assert_eq!(reta.queue(0xffff_ff80 | 7), 3);
        // 128 entries: only the low seven bits count.
        assert_eq!(reta.queue(0x51cc_c178), reta.entries()[0x78]);
        let reta = Reta::round_robin(128, 3).unwrap();
        assert_eq!(reta.queue(127 + 128), 127 % 3);
        assert!(reta.contains(2) && !reta.contains(3));
        // Not a power of two: hash % size.
        let reta = Reta::new(vec![0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(reta.queue(13), 1);
        assert_eq!(reta.queue(u32::MAX), (u32::MAX % 6) as u16);
        assert_eq!(Reta::new(vec![]), Err(RssError::EmptyReta));
        assert_eq!(Reta::round_robin(0, 2), Err(RssError::EmptyReta));
        assert_eq!(Reta::round_robin(128, 0), Err(RssError::NoQueues));
    }

    #[test]
    fn round_robin_spreads_evenly() {
        for queues in 1..=8u16 {
            let reta = Reta::round_robin(128, queues).unwrap();
            let mut count = vec![0usize; usize::from(queues)];
            for &q in reta.entries() {
                count[usize::from(q)] += 1;
            }
            let (min, max) = (count.iter().min(), count.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{count:?}");
        }
    }

    fn key() -> impl Strategy<Value = RssKey> {
        proptest::collection::vec(any::<u8>(), MIN_KEY_LEN..=MAX_KEY_LEN)
            .prop_map(|b| RssKey::new(&b).unwrap())
    }

    fn addr() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        #[test]
        fn fast_paths_equal_the_reference(
            key in key(),
            src in addr(),
            dst in addr(),
            sport in any::<u16>(),
            dport in any::<u16>(),
        ) {
            let t = tuple(src, dst, sport, dport);
            let want = toeplitz(&key, &t);
            let table = ToeplitzTable::new(&key);
            prop_assert_eq!(hash_ipv4_l4(&key, src, dst, sport, dport), want);
            prop_assert_eq!(table.hash_ipv4_l4(src, dst, sport, dport), want);
            let want = toeplitz(&key, &t[..8]);
            prop_assert_eq!(hash_ipv4(&key, src, dst), want);
            prop_assert_eq!(table.hash_ipv4(src, dst), want);
            prop_assert_eq!(
                table.hash_ipv4_l4(src, dst, sport, 0) ^ table.hash_dport(dport),
                table.hash_ipv4_l4(src, dst, sport, dport)
            );
        }

        #[test]
        fn toeplitz_is_linear(
            key in key(),
            ab in proptest::collection::vec(any::<(u8, u8)>(), 0..64),
        ) {
            // Up to 64 bytes: past the key's end too, where it reads as zeros.
            let a: Vec<u8> = ab.iter().map(|p| p.0).collect();
            let b: Vec<u8> = ab.iter().map(|p| p.1).collect();
            let x: Vec<u8> = ab.iter().map(|p| p.0 ^ p.1).collect();
            prop_assert_eq!(toeplitz(&key, &x), toeplitz(&key, &a) ^ toeplitz(&key, &b));
            prop_assert_eq!(toeplitz(&key, &vec![0; ab.len()]), 0);
        }

        #[test]
        fn single_bit_picks_the_key_window(key in key(), bit in 0usize..96) {
            // Input bit `bit` alone hashes to key bits bit .. bit + 32.
            let mut input = [0u8; 12];
            input[bit / 8] = 0x80 >> (bit % 8);
            let k = key.as_bytes();
            let window = (0..32).fold(0u32, |w, j| {
                let i = bit + j;
                let b = k.get(i / 8).map_or(0, |byte| (byte >> (7 - i % 8)) & 1);
                (w << 1) | u32::from(b)
            });
            prop_assert_eq!(toeplitz(&key, &input), window);
        }
    }
}
