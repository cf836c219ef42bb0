//! SYN proxy for a service (DPVS's and Alibaba LVS's `-j enable`): the director answers a
//! client's SYN itself with a SYN/ACK whose sequence number is a SYN cookie (RFC 4987 §3.6),
//! keeps no state for it, and opens the real server's connection only when the client's ACK
//! brings a valid cookie back. A spoofed SYN flood then costs the director one reply each and
//! never reaches a real server or fills the session table.
//!
//! The client's connection has the cookie as the server's initial sequence number; the real
//! server picks its own. From the RS's SYN/ACK on, the session shifts every sequence number
//! between the two by the difference ([`Shift`]): RS → client `seq`, client → RS `ack`.
//!
//! A cookie carries only the client's MSS (one of [`MSS_TABLE`], two bits). Like Linux's
//! cookies without TCP timestamps, the director's SYN/ACK offers no window scaling, selective
//! acknowledgements or timestamps, and its SYN to the RS asks for none, so both halves agree:
//! windows are at most 64 KiB. The cookie's other 30 bits are an 8-bit epoch (64 s) and 22 bits
//! of check: a keyed hash (SipHash with a random per-worker key) of the 4-tuple, the client's
//! initial sequence number and the epoch, to which the MSS index is added in the low 24 bits.
//! A cookie is accepted up to two epochs old; a blind guess passes once in 2^22.

use conntrack::{FlowKey, FlowKey6};
use std::hash::{BuildHasher, Hasher, RandomState};

/// A client's flow a cookie is made for: an IPv4 or an IPv6 4-tuple (client → VIP), fed to
/// the cookie's keyed hash (the IPv6 addresses whole, all 16 bytes).
pub trait CookieFlow {
    /// Writes the 4-tuple into `h`.
    fn mix(&self, h: &mut impl Hasher);
}

impl CookieFlow for FlowKey {
    #[inline]
    fn mix(&self, h: &mut impl Hasher) {
        h.write_u32(u32::from(self.src));
        h.write_u32(u32::from(self.dst));
        h.write_u16(self.sport);
        h.write_u16(self.dport);
    }
}

impl CookieFlow for FlowKey6 {
    #[inline]
    fn mix(&self, h: &mut impl Hasher) {
        h.write(&self.src.octets());
        h.write(&self.dst.octets());
        h.write_u16(self.sport);
        h.write_u16(self.dport);
    }
}

/// The MSS values a cookie can carry (Linux's IPv4 table): the client's MSS is rounded down
/// to one of them.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Length of a cookie epoch, in ms.
pub const EPOCH_MS: u64 = 64_000;
/// How many epochs old a cookie may be when its ACK comes back.
pub const MAX_AGE: u32 = 2;

const HASH_BITS: u32 = 24;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
const EPOCH_MASK: u32 = 0xff;

/// What a valid cookie tells: the client's MSS (an index into [`MSS_TABLE`]) and the epoch it
/// was made in (its low 8 bits), so that the cookie can be made again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieInfo {
    /// Index into [`MSS_TABLE`].
    pub mss: MssIndex,
    /// The low 8 bits of the cookie's epoch.
    pub epoch: u8,
}

/// An index into [`MSS_TABLE`]: a type of its own, whose unused values leave a session's
/// SYN-proxy state room for the tags of the enums around it (an IPv6 session's forwarding
/// stays 8 bytes with the state in every routed variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MssIndex {
    /// 536.
    Mss536 = 0,
    /// 1300.
    Mss1300 = 1,
    /// 1440.
    Mss1440 = 2,
    /// 1460.
    Mss1460 = 3,
}

impl MssIndex {
    /// Index `i` into [`MSS_TABLE`], if it is one.
    pub const fn new(i: u32) -> Option<MssIndex> {
        match i {
            0 => Some(MssIndex::Mss536),
            1 => Some(MssIndex::Mss1300),
            2 => Some(MssIndex::Mss1440),
            3 => Some(MssIndex::Mss1460),
            _ => None,
        }
    }
}

impl From<MssIndex> for usize {
    fn from(i: MssIndex) -> usize {
        i as usize
    }
}

/// One worker's SYN cookie maker and checker.
#[derive(Clone, Debug)]
pub struct Cookies {
    key: RandomState,
}

impl Default for Cookies {
    fn default() -> Cookies {
        Cookies::new()
    }
}

impl Cookies {
    /// A cookie maker with a fresh random key.
    pub fn new() -> Cookies {
        Cookies {
            key: RandomState::new(),
        }
    }

    fn hash(&self, client: &impl CookieFlow, isn: u32, epoch: u32) -> u32 {
        let mut h = self.key.build_hasher();
        client.mix(&mut h);
        h.write_u32(isn);
        h.write_u32(epoch);
        h.finish() as u32 & HASH_MASK
    }

    fn cookie(&self, client: &impl CookieFlow, isn: u32, mss: u8, epoch: u32) -> u32 {
        let data = self.hash(client, isn, epoch).wrapping_add(u32::from(mss)) & HASH_MASK;
        (epoch & EPOCH_MASK) << HASH_BITS | data
    }

    /// The cookie for the SYN `client` (its key, client → VIP, IPv4 or IPv6) with initial
    /// sequence number `isn` and MSS `mss`, at time `now` (ms).
    pub fn make(&self, client: &impl CookieFlow, isn: u32, mss: u16, now: u64) -> u32 {
        self.cookie(client, isn, mss_index(mss), epoch(now))
    }

    /// Checks the cookie an ACK acknowledges (its `ack` − 1), `isn` being the ACK's `seq` − 1.
    pub fn check(
        &self,
        client: &impl CookieFlow,
        isn: u32,
        cookie: u32,
        now: u64,
    ) -> Option<CookieInfo> {
        let e = epoch(now);
        let age = e.wrapping_sub(cookie >> HASH_BITS) & EPOCH_MASK;
        if age > MAX_AGE || age > e {
            return None;
        }
        let made = e - age;
        let mss = (cookie & HASH_MASK).wrapping_sub(self.hash(client, isn, made)) & HASH_MASK;
        MssIndex::new(mss).map(|mss| CookieInfo {
            mss,
            epoch: (made & EPOCH_MASK) as u8,
        })
    }

    /// The cookie [`Cookies::check`] accepted as `info`, made again at a time `now` up to
    /// [`MAX_AGE`] epochs (plus the RS's answer) later.
    pub fn remake(&self, client: &impl CookieFlow, isn: u32, info: CookieInfo, now: u64) -> u32 {
        let e = epoch(now);
        let made = e.wrapping_sub(e.wrapping_sub(u32::from(info.epoch)) & EPOCH_MASK);
        self.cookie(client, isn, info.mss as u8, made)
    }
}

fn epoch(now: u64) -> u32 {
    (now / EPOCH_MS) as u32
}

/// The index of the largest [`MSS_TABLE`] value not above `mss` (the smallest if none is).
pub fn mss_index(mss: u16) -> u8 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8
}

/// The MSS option of a SYN's TCP header `tcp` (options within its data offset), if any.
pub fn syn_mss(tcp: &[u8]) -> Option<u16> {
    use crate::wire::tcp::{field, HEADER_LEN, OPT_END, OPT_MSS, OPT_NOP};
    let doff = usize::from(*tcp.get(field::DATA_OFF)? >> 4) * 4;
    let mut opts = tcp.get(HEADER_LEN..doff)?;
    while let [kind, rest @ ..] = opts {
        match *kind {
            OPT_END => return None,
            OPT_NOP => opts = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if *kind == OPT_MSS && len == 4 {
                    return Some(u16::from_be_bytes([opts[2], opts[3]]));
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

/// How a proxied session's sequence numbers differ between its two halves: the RS's initial
/// sequence number minus the cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift(pub u32);

impl Shift {
    /// An RS → client `seq` as the client knows it.
    #[inline]
    pub fn to_client(self, seq: u32) -> u32 {
        seq.wrapping_sub(self.0)
    }

    /// A client → RS `ack` as the RS knows it.
    #[inline]
    pub fn to_rs(self, ack: u32) -> u32 {
        ack.wrapping_add(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::Proto;
    use core::net::Ipv4Addr;

    fn client(port: u16) -> FlowKey {
        FlowKey::new(
            Proto::Tcp,
            Ipv4Addr::new(198, 51, 100, 7),
            port,
            Ipv4Addr::new(192, 0, 2, 100),
            80,
        )
    }

    #[test]
    fn a_cookie_checks_for_its_flow_and_isn_within_its_age() {
        let c = Cookies::new();
        let now = 10 * EPOCH_MS + 5;
        for (i, mss) in [1460u16, 1400, 1300, 536, 9000, 100]
            .into_iter()
            .enumerate()
        {
            let k = client(40000 + i as u16);
            let isn = 0xdead_0000 + i as u32;
            let cookie = c.make(&k, isn, mss, now);
            let info = c.check(&k, isn, cookie, now).expect("valid");
            assert_eq!(
                MSS_TABLE[usize::from(info.mss)],
                MSS_TABLE[mss_index(mss) as usize]
            );
            // Still valid two epochs later, not three.
            assert!(c.check(&k, isn, cookie, now + 2 * EPOCH_MS).is_some());
            assert!(c.check(&k, isn, cookie, now + 3 * EPOCH_MS).is_none());
            // Another flow, ISN or key: refused.
            assert!(c.check(&client(1), isn, cookie, now).is_none());
            assert!(c.check(&k, isn + 1, cookie, now).is_none());
            assert!(Cookies::new().check(&k, isn, cookie, now).is_none());
            // Made again later, it is the same cookie.
            assert_eq!(c.remake(&k, isn, info, now + 2 * EPOCH_MS + 100), cookie);
        }
    }

    /// IPv6 cookies: over the whole 16-byte addresses, checked and made again as IPv4's.
    #[test]
    fn ipv6_cookies_check_for_their_flow_only() {
        use core::net::Ipv6Addr;
        let c = Cookies::new();
        let now = 7 * EPOCH_MS;
        let client: Ipv6Addr = "2001:db8:1::7".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let k = FlowKey6::new(Proto::Tcp, client, 40000, vip, 80);
        let cookie = c.make(&k, 99, 1440, now);
        let info = c.check(&k, 99, cookie, now).expect("valid");
        assert_eq!(MSS_TABLE[usize::from(info.mss)], 1440);
        assert_eq!(c.remake(&k, 99, info, now + EPOCH_MS), cookie);
        // Another client differing in the address's last byte only, or in its high half.
        let other: Ipv6Addr = "2001:db8:1::8".parse().unwrap();
        let high: Ipv6Addr = "2001:db9:1::7".parse().unwrap();
        for a in [other, high] {
            let k2 = FlowKey6::new(Proto::Tcp, a, 40000, vip, 80);
            assert!(c.check(&k2, 99, cookie, now).is_none());
        }
        assert!(c.check(&k, 100, cookie, now).is_none());
        assert!(c.check(&k, 99, cookie, now + 3 * EPOCH_MS).is_none());
    }

    /// A blind ACK guessing the cookie, even with the right epoch, gets through about once in
    /// 2^22 tries.
    #[test]
    fn guessed_cookies_fail() {
        let c = Cookies::new();
        let k = client(40000);
        let now = 100 * EPOCH_MS;
        let passed = (0..200_000u32)
            .filter(|&g| {
                let guess = 100 << 24 | (g.wrapping_mul(2_654_435_761) & HASH_MASK);
                c.check(&k, 7, guess, now).is_some()
            })
            .count();
        assert!(passed <= 2, "{passed} of 200000 random cookies passed");
    }

    #[test]
    fn mss_index_rounds_down() {
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(1459), 2);
        assert_eq!(mss_index(65535), 3);
        assert_eq!(mss_index(536), 0);
        assert_eq!(mss_index(0), 0);
    }

    #[test]
    fn syn_mss_reads_the_option_among_others() {
        let mut tcp = vec![0u8; 20];
        tcp[12] = 10 << 4;
        // MSS 1400, SACK permitted, timestamps, NOP, window scale 7.
        tcp.extend_from_slice(&[
            2, 4, 0x05, 0x78, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        assert_eq!(syn_mss(&tcp), Some(1400));
        // Options after the MSS, MSS last, none, truncated, a zero length: no panic.
        tcp[20..24].copy_from_slice(&[1, 1, 1, 1]);
        assert_eq!(syn_mss(&tcp), None);
        tcp[12] = 5 << 4;
        assert_eq!(syn_mss(&tcp), None);
        let mut bad = vec![0u8; 24];
        bad[12] = 6 << 4;
        bad[20..24].copy_from_slice(&[3, 0, 2, 4]);
        assert_eq!(syn_mss(&bad), None);
        bad[20..24].copy_from_slice(&[2, 9, 0, 0]);
        assert_eq!(syn_mss(&bad), None);
        assert_eq!(syn_mss(&bad[..10]), None);
    }

    #[test]
    fn shift_moves_numbers_between_the_halves() {
        let cookie = 0x1000_0000u32;
        let rs_isn = 0x0800_0000u32;
        let s = Shift(rs_isn.wrapping_sub(cookie));
        assert_eq!(s.to_client(rs_isn + 1), cookie + 1);
        assert_eq!(s.to_rs(cookie + 1), rs_isn + 1);
    }
}
