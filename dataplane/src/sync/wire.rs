//! The sync datagram's layout (named offsets, as [`crate::wire`] names header fields), the
//! writer that appends records into a caller's buffer, and the reader that checks a datagram
//! and yields its records. Neither allocates; the layout is documented in [`super`].

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrack::{Proto, SessionState, TcpState};
use sched::ForwardMode;

use super::record::{
    ServiceView, SyncDrop, SyncPreamble, SyncProxy, SyncRecord, SyncSession, SyncSession6,
    SyncTemplate,
};
use crate::proxy_protocol::{Carrier, Phase};
use sched::ProxyProtocol;

/// The first four bytes of every sync datagram.
pub const MAGIC: [u8; 4] = *b"RVSY";
/// The format version this module writes and reads.
pub const VERSION: u8 = 1;
/// The largest datagram (the header's length field is 16 bits); a writer's buffer beyond it
/// is not used.
pub const MAX_DATAGRAM_LEN: usize = u16::MAX as usize;
/// The datagram size for a 1500-byte MTU: 1500 − 20 (IPv4 header) − 8 (UDP header).
pub const MTU_1500_DATAGRAM_LEN: usize = 1472;

/// Byte offsets of the datagram header's fields.
pub mod header {
    /// [`MAGIC`](super::MAGIC), 4 bytes.
    pub const MAGIC: usize = 0;
    /// Format version, u8.
    pub const VERSION: usize = 4;
    /// Sync id (the sync group), u8.
    pub const SYNC_ID: usize = 5;
    /// Flags, u16 (none defined in version 1).
    pub const FLAGS: usize = 6;
    /// Sender id (the sending director), u32.
    pub const SENDER: usize = 8;
    /// Sequence number of the datagram, u32.
    pub const SEQ: usize = 12;
    /// Number of records, u16.
    pub const COUNT: usize = 16;
    /// Length of the datagram in bytes, header included, u16.
    pub const LENGTH: usize = 18;
    /// Length of the header.
    pub const LEN: usize = 20;
}

/// Byte offsets of the header every record starts with.
pub mod record_header {
    /// Record type, u16 ([`record_type`](super::record_type)).
    pub const TYPE: usize = 0;
    /// Length of the record in bytes, this header included, u16.
    pub const LENGTH: usize = 2;
    /// Length of the record header.
    pub const LEN: usize = 4;
}

/// Record types.
pub mod record_type {
    /// A session ([`session`](super::session)).
    pub const SESSION: u16 = 1;
    /// A persistence template ([`template`](super::template)).
    pub const TEMPLATE: u16 = 2;
    /// The sender's view of its services ([`view`](super::view)).
    pub const VIEW: u16 = 3;
    /// A session with a PROXY protocol header ([`session_preamble`](super::session_preamble)).
    pub const SESSION_PREAMBLE: u16 = 4;
    /// A session of an IPv6 service ([`session6`](super::session6)).
    pub const SESSION6: u16 = 5;
    /// A joined SYN-proxied session of an IPv6 service
    /// ([`session6_synproxy`](super::session6_synproxy)).
    pub const SESSION6_SYNPROXY: u16 = 6;
    /// A session of an IPv6 service with a PROXY protocol header or TOA
    /// ([`session6_preamble`](super::session6_preamble)), SYN-proxied or not.
    pub const SESSION6_PREAMBLE: u16 = 7;
}

/// The longest record this version writes (an IPv6 session with a header): a datagram of
/// the header and this many bytes holds any record.
pub const MAX_RECORD_LEN: usize = session6_preamble::LEN;

/// Byte offsets of an IPv6 session record with a PROXY protocol header or TOA: an IPv6
/// session record's ([`session6`], its SYN proxy byte 0 or 2), the SYN proxy's shift (0 when
/// off), then the header's state as [`session_preamble`] has it for IPv4.
pub mod session6_preamble {
    /// RS ISN − cookie, u32 (SYN proxy on; 0 otherwise).
    pub const SHIFT: usize = super::session6::LEN;
    /// The header's version, u8 (1, 2; 3: TOA).
    pub const VERSION: usize = SHIFT + 4;
    /// How far it got, u8 (0 not sent, 1 sent, 2 acknowledged).
    pub const PHASE: usize = VERSION + 1;
    /// The client's first data byte, u32: its low 24 bits (an IPv6 session keeps no more;
    /// the sender writes the high byte 0 and a receiver ignores it).
    pub const FIRST_SEQ: usize = PHASE + 1;
    /// Length of the record.
    pub const LEN: usize = FIRST_SEQ + 4;
}

/// Byte offsets of a joined SYN-proxied IPv6 session's record: an IPv6 session record's
/// ([`session6`], its SYN proxy byte 2, on) and the shift after it.
pub mod session6_synproxy {
    /// RS ISN − cookie, u32: the sequence shift between the session's halves.
    pub const SHIFT: usize = super::session6::LEN;
    /// Length of a SYN-proxied IPv6 session record.
    pub const LEN: usize = SHIFT + 4;
}

/// Byte offsets of an IPv6 session record's fields (from the record's start). The first
/// eight bytes are a session record's ([`session`]); addresses are 16 bytes, a NAT64
/// session's IPv4 RIP and LIP written IPv4-mapped (`::ffff:a.b.c.d`).
pub mod session6 {
    /// IP protocol number, u8 (6 TCP, 17 UDP).
    pub const PROTO: usize = 4;
    /// Forwarding mode, u8 ([`mode`](super::mode)); NAT64 is FullNAT.
    pub const MODE: usize = 5;
    /// State, u8: the IPVS TCP state number for TCP, 0 for UDP.
    pub const STATE: usize = 6;
    /// SYN proxy state, u8: 0 in a type 5 record, 2 (on) in a type 6 one.
    pub const SYNPROXY: usize = 7;
    /// Client address, 16 bytes.
    pub const CLIENT_ADDR: usize = 8;
    /// VIP, 16 bytes.
    pub const VIP_ADDR: usize = 24;
    /// RIP, 16 bytes (NAT64: IPv4-mapped).
    pub const RIP: usize = 40;
    /// LIP, 16 bytes (FullNAT; NAT64: IPv4-mapped; `::` otherwise).
    pub const LIP: usize = 56;
    /// Client port, u16.
    pub const CLIENT_PORT: usize = 72;
    /// VIP port, u16.
    pub const VIP_PORT: usize = 74;
    /// RS port, u16.
    pub const RPORT: usize = 76;
    /// Local port (FullNAT; 0 otherwise), u16.
    pub const LPORT: usize = 78;
    /// Time left until expiry in ms, u32.
    pub const EXPIRES_IN_MS: usize = 80;
    /// The service's persistence timeout in ms, u32: 0 if none.
    pub const PERSIST_MS: usize = 84;
    /// The RS's family, u8 ([`family`](super::family)).
    pub const FAMILY: usize = 88;
    /// Length of an IPv6 session record.
    pub const LEN: usize = 89;
}

/// An IPv6 session's RS family values (its LIP's too).
pub mod family {
    /// NAT64: an IPv4 RS and LIP, written IPv4-mapped.
    pub const IPV4: u8 = 4;
    /// An IPv6 RS (and LIP).
    pub const IPV6: u8 = 6;
}

/// Byte offsets of a session-with-header record's fields after the session's own
/// ([`session`]'s offsets hold for its first 46 bytes).
pub mod session_preamble {
    /// The header's version, u8 (1, 2; 3: TOA).
    pub const VERSION: usize = 46;
    /// How far it got, u8 (0 not sent, 1 sent, 2 acknowledged).
    pub const PHASE: usize = 47;
    /// The client's first data byte, u32.
    pub const FIRST_SEQ: usize = 48;
    /// Length of the record.
    pub const LEN: usize = 52;
}

/// Byte offsets of a session record's fields (from the record's start).
pub mod session {
    /// IP protocol number, u8 (1 ICMP, 6 TCP, 17 UDP).
    pub const PROTO: usize = 4;
    /// Forwarding mode, u8 ([`mode`](super::mode)).
    pub const MODE: usize = 5;
    /// State, u8: the IPVS TCP state number for TCP, 0 for UDP and ICMP.
    pub const STATE: usize = 6;
    /// SYN proxy state, u8 ([`synproxy`](super::synproxy)).
    pub const SYNPROXY: usize = 7;
    /// Client address.
    pub const CLIENT_ADDR: usize = 8;
    /// VIP.
    pub const VIP_ADDR: usize = 12;
    /// RIP.
    pub const RIP: usize = 16;
    /// LIP (FullNAT; 0.0.0.0 otherwise).
    pub const LIP: usize = 20;
    /// Client port (ICMP: echo identifier), u16.
    pub const CLIENT_PORT: usize = 24;
    /// VIP port, u16.
    pub const VIP_PORT: usize = 26;
    /// RS port, u16.
    pub const RPORT: usize = 28;
    /// Local port (FullNAT; 0 otherwise), u16.
    pub const LPORT: usize = 30;
    /// Time left until expiry in ms, u32.
    pub const EXPIRES_IN_MS: usize = 32;
    /// Persistence timeout in ms, u32.
    pub const PERSIST_MS: usize = 36;
    /// SYN proxy sequence word, u32: the client's ISN (pending), the shift (on), 0 (off).
    pub const PROXY_WORD: usize = 40;
    /// SYN proxy cookie MSS index, u8 (pending; 0 otherwise).
    pub const PROXY_MSS: usize = 44;
    /// SYN proxy cookie epoch, u8 (pending; 0 otherwise).
    pub const PROXY_EPOCH: usize = 45;
    /// Length of a session record.
    pub const LEN: usize = 46;
}

/// Byte offsets of a template record's fields (from the record's start).
pub mod template {
    /// IP protocol number, u8.
    pub const PROTO: usize = 4;
    /// Client address.
    pub const CLIENT_ADDR: usize = 5;
    /// VIP.
    pub const VIP_ADDR: usize = 9;
    /// RIP.
    pub const RIP: usize = 13;
    /// VIP port, u16.
    pub const VIP_PORT: usize = 17;
    /// RS port, u16.
    pub const RPORT: usize = 19;
    /// Persistence timeout in ms, u32.
    pub const TIMEOUT_MS: usize = 21;
    /// Time left until expiry in ms, u32.
    pub const EXPIRES_IN_MS: usize = 25;
    /// Length of a template record.
    pub const LEN: usize = 29;
}

/// Byte offsets of a view record's fields (from the record's start).
pub mod view {
    /// Number of services, u32.
    pub const SERVICES: usize = 4;
    /// Digest of the services and dests, u64.
    pub const DIGEST: usize = 8;
    /// Length of a view record.
    pub const LEN: usize = 16;
}

/// Forwarding mode values: IPVS's `IP_VS_CONN_F_*` forwarding numbers, FullNAT as DPVS
/// numbers it.
pub mod mode {
    /// NAT (IPVS `MASQ`).
    pub const NAT: u8 = 0;
    /// TUN (IPVS `TUNNEL`).
    pub const TUN: u8 = 2;
    /// DR (IPVS `DROUTE`).
    pub const DR: u8 = 3;
    /// FullNAT (DPVS `FNAT`).
    pub const FULLNAT: u8 = 5;
}

/// SYN proxy state values.
pub mod synproxy {
    /// Not proxied.
    pub const OFF: u8 = 0;
    /// Waiting for the RS's SYN/ACK.
    pub const PENDING: u8 = 1;
    /// Both halves open.
    pub const ON: u8 = 2;
}

/// The header fields a sender chooses; the record count and the length follow from the
/// records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncHeader {
    /// The sync group (IPVS `--syncid`): a receiver takes only its own group's datagrams.
    pub sync_id: u8,
    /// Flags: none is defined in version 1; senders write 0, receivers ignore them.
    pub flags: u16,
    /// The sending director.
    pub sender: u32,
    /// The datagram's sequence number (one more per datagram, wrapping), so that a receiver
    /// can count the datagrams it lost.
    pub seq: u32,
}

/// Why [`DatagramWriter`] did not take a record (or a buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The buffer is shorter than the datagram header.
    BufferTooSmall,
    /// The record does not fit in what is left of the datagram: send it and start another.
    Full,
    /// The record breaks a rule a receiver would refuse it for.
    Invalid(SyncDrop),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BufferTooSmall => f.write_str("buffer shorter than a sync header"),
            WriteError::Full => f.write_str("sync datagram full"),
            WriteError::Invalid(d) => write!(f, "invalid sync record: {d}"),
        }
    }
}

/// Appends records to a datagram in a caller's buffer. The buffer always holds a complete
/// datagram: the header's count and length follow every record taken.
#[derive(Debug)]
pub struct DatagramWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    count: u16,
}

impl<'a> DatagramWriter<'a> {
    /// Starts a datagram with `header` and no record in `buf`, which bounds its size (give
    /// it [`MTU_1500_DATAGRAM_LEN`] bytes for a 1500-byte MTU; beyond [`MAX_DATAGRAM_LEN`]
    /// is not used).
    ///
    /// # Errors
    /// [`WriteError::BufferTooSmall`] if `buf` cannot hold the header.
    pub fn new(buf: &'a mut [u8], header: &SyncHeader) -> Result<DatagramWriter<'a>, WriteError> {
        let cap = buf.len().min(MAX_DATAGRAM_LEN);
        let (buf, _) = buf.split_at_mut(cap);
        if cap < header::LEN {
            return Err(WriteError::BufferTooSmall);
        }
        buf[header::MAGIC..header::MAGIC + 4].copy_from_slice(&MAGIC);
        buf[header::VERSION] = VERSION;
        buf[header::SYNC_ID] = header.sync_id;
        put16(buf, header::FLAGS, header.flags);
        put32(buf, header::SENDER, header.sender);
        put32(buf, header::SEQ, header.seq);
        let mut w = DatagramWriter {
            buf,
            len: header::LEN,
            count: 0,
        };
        w.seal();
        Ok(w)
    }

    /// Appends `rec`. Nothing is written when it is refused.
    ///
    /// # Errors
    /// [`WriteError::Invalid`] if `rec` breaks a rule ([`SyncRecord::validate`]);
    /// [`WriteError::Full`] if it does not fit.
    pub fn push(&mut self, rec: &SyncRecord) -> Result<(), WriteError> {
        rec.validate().map_err(WriteError::Invalid)?;
        let end = self.len + rec.wire_len();
        let count = self.count.checked_add(1).ok_or(WriteError::Full)?;
        let out = self.buf.get_mut(self.len..end).ok_or(WriteError::Full)?;
        match rec {
            SyncRecord::Session(s) => encode_session(s, out),
            SyncRecord::Session6(s) => encode_session6(s, out),
            SyncRecord::Template(t) => encode_template(t, out),
            SyncRecord::View(v) => encode_view(v, out),
        }
        self.len = end;
        self.count = count;
        self.seal();
        Ok(())
    }

    /// The records taken so far.
    #[inline]
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Bytes left for records.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The datagram as it stands, ready to send.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The datagram as it stands, for as long as the buffer is borrowed.
    #[inline]
    pub fn into_datagram(self) -> &'a [u8] {
        &self.buf[..self.len]
    }

    fn seal(&mut self) {
        put16(self.buf, header::COUNT, self.count);
        // `len` ≤ the buffer ≤ MAX_DATAGRAM_LEN.
        put16(self.buf, header::LENGTH, self.len as u16);
    }
}

impl SyncRecord {
    /// The record's length on the wire, its record header included.
    #[inline]
    pub fn wire_len(&self) -> usize {
        match self {
            SyncRecord::Session(s) if s.preamble.is_some() => session_preamble::LEN,
            SyncRecord::Session(_) => session::LEN,
            SyncRecord::Session6(s) if s.preamble.is_some() => session6_preamble::LEN,
            SyncRecord::Session6(s) => match s.synproxy {
                SyncProxy::On { .. } => session6_synproxy::LEN,
                SyncProxy::Off | SyncProxy::Pending { .. } => session6::LEN,
            },
            SyncRecord::Template(_) => template::LEN,
            SyncRecord::View(_) => view::LEN,
        }
    }
}

fn carrier_number(c: Carrier) -> u8 {
    match c {
        Carrier::Proxy(ProxyProtocol::V1) => 1,
        Carrier::Proxy(ProxyProtocol::V2) => 2,
        Carrier::Toa => 3,
    }
}

fn phase_number(p: Phase) -> u8 {
    match p {
        Phase::Pending => 0,
        Phase::Sent => 1,
        Phase::Done => 2,
    }
}

/// A header's version and phase bytes.
fn preamble_of(version: u8, phase: u8, first_seq: u32) -> Result<SyncPreamble, SyncDrop> {
    let carrier = match version {
        1 => Carrier::Proxy(ProxyProtocol::V1),
        2 => Carrier::Proxy(ProxyProtocol::V2),
        3 => Carrier::Toa,
        _ => return Err(SyncDrop::BadPreamble),
    };
    let phase = match phase {
        0 => Phase::Pending,
        1 => Phase::Sent,
        2 => Phase::Done,
        _ => return Err(SyncDrop::BadPreamble),
    };
    Ok(SyncPreamble {
        carrier,
        phase,
        first_seq,
    })
}

fn mode_number(m: ForwardMode) -> u8 {
    match m {
        ForwardMode::Nat => mode::NAT,
        ForwardMode::Tun => mode::TUN,
        ForwardMode::Dr => mode::DR,
        ForwardMode::FullNat => mode::FULLNAT,
    }
}

fn forward_mode(n: u8) -> Result<ForwardMode, SyncDrop> {
    match n {
        mode::NAT => Ok(ForwardMode::Nat),
        mode::TUN => Ok(ForwardMode::Tun),
        mode::DR => Ok(ForwardMode::Dr),
        mode::FULLNAT => Ok(ForwardMode::FullNat),
        _ => Err(SyncDrop::BadMode),
    }
}

fn tcp_or_state(proto: Proto, n: u8) -> Result<SessionState, SyncDrop> {
    match (proto, n) {
        (Proto::Tcp, n) => TcpState::ALL
            .get(usize::from(n))
            .map(|&t| SessionState::Tcp(t))
            .ok_or(SyncDrop::BadState),
        (Proto::Udp, 0) => Ok(SessionState::Udp),
        (Proto::Icmp, 0) => Ok(SessionState::Icmp),
        _ => Err(SyncDrop::BadState),
    }
}

fn encode_session(s: &SyncSession, out: &mut [u8]) {
    match s.preamble {
        None => {
            put16(out, record_header::TYPE, record_type::SESSION);
            put16(out, record_header::LENGTH, session::LEN as u16);
        }
        Some(p) => {
            put16(out, record_header::TYPE, record_type::SESSION_PREAMBLE);
            put16(out, record_header::LENGTH, session_preamble::LEN as u16);
            out[session_preamble::VERSION] = carrier_number(p.carrier);
            out[session_preamble::PHASE] = phase_number(p.phase);
            put32(out, session_preamble::FIRST_SEQ, p.first_seq);
        }
    }
    out[session::PROTO] = s.proto.ip_proto();
    out[session::MODE] = mode_number(s.mode);
    out[session::STATE] = match s.state {
        SessionState::Tcp(t) => t as u8,
        SessionState::Udp | SessionState::Icmp => 0,
    };
    let (kind, word, mss, epoch) = match s.synproxy {
        SyncProxy::Off => (synproxy::OFF, 0, 0, 0),
        SyncProxy::Pending {
            client_isn,
            mss,
            epoch,
        } => (synproxy::PENDING, client_isn, mss, epoch),
        SyncProxy::On { shift } => (synproxy::ON, shift, 0, 0),
    };
    out[session::SYNPROXY] = kind;
    let (lip, lport) = s.lip.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    put_addr(out, session::CLIENT_ADDR, s.client.0);
    put_addr(out, session::VIP_ADDR, s.vip.0);
    put_addr(out, session::RIP, s.rip);
    put_addr(out, session::LIP, lip);
    put16(out, session::CLIENT_PORT, s.client.1);
    put16(out, session::VIP_PORT, s.vip.1);
    put16(out, session::RPORT, s.rport);
    put16(out, session::LPORT, lport);
    put32(out, session::EXPIRES_IN_MS, s.expires_in_ms);
    put32(out, session::PERSIST_MS, s.persist_ms);
    put32(out, session::PROXY_WORD, word);
    out[session::PROXY_MSS] = mss;
    out[session::PROXY_EPOCH] = epoch;
}

/// An address of an IPv6 session's server side as the wire writes it: IPv4 IPv4-mapped.
fn wire_addr6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn encode_session6(s: &SyncSession6, out: &mut [u8]) {
    match (s.preamble, s.synproxy) {
        (Some(p), synproxy) => {
            put16(out, record_header::TYPE, record_type::SESSION6_PREAMBLE);
            put16(out, record_header::LENGTH, session6_preamble::LEN as u16);
            let (kind, shift) = match synproxy {
                SyncProxy::On { shift } => (synproxy::ON, shift),
                // Validated: Pending is never written.
                SyncProxy::Off | SyncProxy::Pending { .. } => (synproxy::OFF, 0),
            };
            out[session6::SYNPROXY] = kind;
            put32(out, session6_preamble::SHIFT, shift);
            out[session6_preamble::VERSION] = carrier_number(p.carrier);
            out[session6_preamble::PHASE] = phase_number(p.phase);
            put32(out, session6_preamble::FIRST_SEQ, p.first_seq & 0xff_ffff);
        }
        (None, SyncProxy::On { shift }) => {
            put16(out, record_header::TYPE, record_type::SESSION6_SYNPROXY);
            put16(out, record_header::LENGTH, session6_synproxy::LEN as u16);
            out[session6::SYNPROXY] = synproxy::ON;
            put32(out, session6_synproxy::SHIFT, shift);
        }
        // Validated: Pending is never written.
        (None, SyncProxy::Off | SyncProxy::Pending { .. }) => {
            put16(out, record_header::TYPE, record_type::SESSION6);
            put16(out, record_header::LENGTH, session6::LEN as u16);
            out[session6::SYNPROXY] = synproxy::OFF;
        }
    }
    out[session6::PROTO] = s.proto.ip_proto();
    out[session6::MODE] = mode_number(s.mode);
    out[session6::STATE] = match s.state {
        SessionState::Tcp(t) => t as u8,
        SessionState::Udp | SessionState::Icmp => 0,
    };
    let (lip, lport) = s.lip.unwrap_or((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
    put_addr6(out, session6::CLIENT_ADDR, s.client.0);
    put_addr6(out, session6::VIP_ADDR, s.vip.0);
    put_addr6(out, session6::RIP, wire_addr6(s.rip));
    put_addr6(out, session6::LIP, wire_addr6(lip));
    put16(out, session6::CLIENT_PORT, s.client.1);
    put16(out, session6::VIP_PORT, s.vip.1);
    put16(out, session6::RPORT, s.rport);
    put16(out, session6::LPORT, lport);
    put32(out, session6::EXPIRES_IN_MS, s.expires_in_ms);
    put32(out, session6::PERSIST_MS, s.persist_ms);
    out[session6::FAMILY] = match s.rip {
        IpAddr::V4(_) => family::IPV4,
        IpAddr::V6(_) => family::IPV6,
    };
}

fn encode_template(t: &SyncTemplate, out: &mut [u8]) {
    put16(out, record_header::TYPE, record_type::TEMPLATE);
    put16(out, record_header::LENGTH, template::LEN as u16);
    out[template::PROTO] = t.proto.ip_proto();
    put_addr(out, template::CLIENT_ADDR, t.client);
    put_addr(out, template::VIP_ADDR, t.vip.0);
    put_addr(out, template::RIP, t.rip);
    put16(out, template::VIP_PORT, t.vip.1);
    put16(out, template::RPORT, t.rport);
    put32(out, template::TIMEOUT_MS, t.timeout_ms);
    put32(out, template::EXPIRES_IN_MS, t.expires_in_ms);
}

fn encode_view(v: &ServiceView, out: &mut [u8]) {
    put16(out, record_header::TYPE, record_type::VIEW);
    put16(out, record_header::LENGTH, view::LEN as u16);
    put32(out, view::SERVICES, v.services);
    out[view::DIGEST..view::DIGEST + 8].copy_from_slice(&v.digest.to_be_bytes());
}

/// A received datagram whose header and framing checked: its records can be read one by one.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    header: SyncHeader,
    count: u16,
    records: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Checks `buf` as a datagram of sync group `sync_id`, in this order: at least a header
    /// ([`SyncDrop::Truncated`]), magic, version, sync id, the length field (below the
    /// header: [`SyncDrop::BadLength`]; beyond `buf`: [`SyncDrop::Truncated`]; short of it:
    /// [`SyncDrop::BadLength`]), the records' framing (each at least a record header and
    /// within the datagram, the last ending at its end: [`SyncDrop::BadFraming`]), and their
    /// number against the count ([`SyncDrop::BadRecordCount`]). The records' contents are
    /// checked as they are read ([`Datagram::records`]).
    ///
    /// # Errors
    /// The first check that fails; the datagram is then refused whole.
    pub fn parse(buf: &'a [u8], sync_id: u8) -> Result<Datagram<'a>, SyncDrop> {
        if buf.len() < header::LEN {
            return Err(SyncDrop::Truncated);
        }
        if buf[header::MAGIC..header::MAGIC + 4] != MAGIC {
            return Err(SyncDrop::BadMagic);
        }
        if buf[header::VERSION] != VERSION {
            return Err(SyncDrop::UnknownVersion);
        }
        if buf[header::SYNC_ID] != sync_id {
            return Err(SyncDrop::WrongSyncId);
        }
        let length = usize::from(get16(buf, header::LENGTH));
        if length < header::LEN {
            return Err(SyncDrop::BadLength);
        }
        if length > buf.len() {
            return Err(SyncDrop::Truncated);
        }
        if length < buf.len() {
            return Err(SyncDrop::BadLength);
        }
        let count = get16(buf, header::COUNT);
        let records = &buf[header::LEN..];
        let mut rest = records;
        let mut framed = 0usize;
        while !rest.is_empty() {
            let n = record_len(rest).ok_or(SyncDrop::BadFraming)?;
            rest = &rest[n..];
            framed += 1;
        }
        if framed != usize::from(count) {
            return Err(SyncDrop::BadRecordCount);
        }
        Ok(Datagram {
            header: SyncHeader {
                sync_id,
                flags: get16(buf, header::FLAGS),
                sender: get32(buf, header::SENDER),
                seq: get32(buf, header::SEQ),
            },
            count,
            records,
        })
    }

    /// The header's fields.
    #[inline]
    pub fn header(&self) -> SyncHeader {
        self.header
    }

    /// How many records the datagram holds.
    #[inline]
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The records in order, each decoded and checked ([`decode_record`]): exactly
    /// [`Datagram::count`] results.
    #[inline]
    pub fn records(&self) -> Records<'a> {
        Records {
            rest: self.records,
            left: self.count,
        }
    }
}

/// The records of a [`Datagram`], see [`Datagram::records`].
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u16,
}

impl Iterator for Records<'_> {
    type Item = Result<SyncRecord, SyncDrop>;

    fn next(&mut self) -> Option<Self::Item> {
        // The datagram's framing checked: every step finds a whole record.
        let n = record_len(self.rest)?;
        let (rec, rest) = self.rest.split_at(n);
        self.rest = rest;
        self.left = self.left.saturating_sub(1);
        Some(decode_record(rec))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// The length of the record `rest` starts with, if it has a whole record header, a length of
/// at least that header, and that many bytes.
fn record_len(rest: &[u8]) -> Option<usize> {
    if rest.len() < record_header::LEN {
        return None;
    }
    let n = usize::from(get16(rest, record_header::LENGTH));
    (record_header::LEN..=rest.len()).contains(&n).then_some(n)
}

/// Decodes one record, `rec` being exactly its bytes (record header included), and checks
/// it: the fields' values (protocol, mode, state, SYN proxy state, unused fields 0, LIP only
/// in FullNAT), then the record's rules ([`SyncRecord::validate`]).
///
/// # Errors
/// [`SyncDrop::BadFraming`] if `rec` is not one framed record; [`SyncDrop::UnknownRecordType`]
/// for a type this version does not know (a receiver skips it); otherwise the first rule the
/// record breaks.
pub fn decode_record(rec: &[u8]) -> Result<SyncRecord, SyncDrop> {
    if record_len(rec) != Some(rec.len()) {
        return Err(SyncDrop::BadFraming);
    }
    match get16(rec, record_header::TYPE) {
        record_type::SESSION => {
            let b: &[u8; session::LEN] = rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            decode_session(b).map(SyncRecord::Session)
        }
        record_type::TEMPLATE => {
            let b: &[u8; template::LEN] = rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            decode_template(b).map(SyncRecord::Template)
        }
        record_type::SESSION_PREAMBLE => {
            let b: &[u8; session_preamble::LEN] =
                rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            let preamble = preamble_of(
                b[session_preamble::VERSION],
                b[session_preamble::PHASE],
                get32(b, session_preamble::FIRST_SEQ),
            )?;
            let head: &[u8; session::LEN] = b[..session::LEN]
                .try_into()
                .map_err(|_| SyncDrop::BadRecordLength)?;
            let mut s = decode_session(head)?;
            s.preamble = Some(preamble);
            s.validate()?;
            Ok(SyncRecord::Session(s))
        }
        record_type::SESSION6 => {
            let b: &[u8; session6::LEN] = rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            decode_session6(b, None).map(SyncRecord::Session6)
        }
        record_type::SESSION6_SYNPROXY => {
            let b: &[u8; session6_synproxy::LEN] =
                rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            let head: &[u8; session6::LEN] = b[..session6::LEN]
                .try_into()
                .map_err(|_| SyncDrop::BadRecordLength)?;
            let shift = get32(b, session6_synproxy::SHIFT);
            decode_session6(head, Some(shift)).map(SyncRecord::Session6)
        }
        record_type::SESSION6_PREAMBLE => {
            let b: &[u8; session6_preamble::LEN] =
                rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            let head: &[u8; session6::LEN] = b[..session6::LEN]
                .try_into()
                .map_err(|_| SyncDrop::BadRecordLength)?;
            let shift = get32(b, session6_preamble::SHIFT);
            let shift = match b[session6::SYNPROXY] {
                synproxy::ON => Some(shift),
                synproxy::OFF if shift == 0 => None,
                _ => return Err(SyncDrop::BadSynProxy),
            };
            let first_seq = get32(b, session6_preamble::FIRST_SEQ);
            if first_seq > 0xff_ffff {
                return Err(SyncDrop::BadPreamble);
            }
            let preamble = preamble_of(
                b[session6_preamble::VERSION],
                b[session6_preamble::PHASE],
                first_seq,
            )?;
            let mut s = decode_session6(head, shift)?;
            s.preamble = Some(preamble);
            s.validate()?;
            Ok(SyncRecord::Session6(s))
        }
        record_type::VIEW => {
            let b: &[u8; view::LEN] = rec.try_into().map_err(|_| SyncDrop::BadRecordLength)?;
            let mut digest = [0; 8];
            digest.copy_from_slice(&b[view::DIGEST..]);
            Ok(SyncRecord::View(ServiceView {
                services: get32(b, view::SERVICES),
                digest: u64::from_be_bytes(digest),
            }))
        }
        _ => Err(SyncDrop::UnknownRecordType),
    }
}

fn decode_session(b: &[u8; session::LEN]) -> Result<SyncSession, SyncDrop> {
    let proto = Proto::from_ip_proto(b[session::PROTO]).ok_or(SyncDrop::BadProto)?;
    let mode = forward_mode(b[session::MODE])?;
    let state = tcp_or_state(proto, b[session::STATE])?;
    let word = get32(b, session::PROXY_WORD);
    let (mss, epoch) = (b[session::PROXY_MSS], b[session::PROXY_EPOCH]);
    let synproxy = match b[session::SYNPROXY] {
        synproxy::OFF if word == 0 && mss == 0 && epoch == 0 => SyncProxy::Off,
        synproxy::PENDING => SyncProxy::Pending {
            client_isn: word,
            mss,
            epoch,
        },
        synproxy::ON if mss == 0 && epoch == 0 => SyncProxy::On { shift: word },
        _ => return Err(SyncDrop::BadSynProxy),
    };
    let (lip, lport) = (get_addr(b, session::LIP), get16(b, session::LPORT));
    let lip = if mode == ForwardMode::FullNat {
        Some((lip, lport))
    } else if lip.is_unspecified() && lport == 0 {
        None
    } else {
        return Err(SyncDrop::BadLip);
    };
    let s = SyncSession {
        proto,
        client: (
            get_addr(b, session::CLIENT_ADDR),
            get16(b, session::CLIENT_PORT),
        ),
        vip: (get_addr(b, session::VIP_ADDR), get16(b, session::VIP_PORT)),
        rip: get_addr(b, session::RIP),
        rport: get16(b, session::RPORT),
        mode,
        lip,
        state,
        expires_in_ms: get32(b, session::EXPIRES_IN_MS),
        persist_ms: get32(b, session::PERSIST_MS),
        synproxy,
        preamble: None,
    };
    s.validate()?;
    Ok(s)
}

/// An IPv6 session record's first [`session6::LEN`] bytes; `shift`: a type 6 record's (its
/// SYN proxy byte must say on), none for type 5 (off).
fn decode_session6(b: &[u8; session6::LEN], shift: Option<u32>) -> Result<SyncSession6, SyncDrop> {
    let proto = match Proto::from_ip_proto(b[session6::PROTO]) {
        Some(p @ (Proto::Tcp | Proto::Udp)) => p,
        _ => return Err(SyncDrop::BadProto),
    };
    let mode = forward_mode(b[session6::MODE])?;
    let state = tcp_or_state(proto, b[session6::STATE])?;
    let synproxy = match (b[session6::SYNPROXY], shift) {
        (synproxy::OFF, None) => SyncProxy::Off,
        (synproxy::ON, Some(shift)) => SyncProxy::On { shift },
        _ => return Err(SyncDrop::BadSynProxy),
    };
    // The server side's addresses as the family byte says to read them: NAT64's IPv4 ones
    // come IPv4-mapped (an IPv6 one that is mapped is refused by the rules).
    let server = |at: usize| -> Result<IpAddr, SyncDrop> {
        let a = get_addr6(b, at);
        match b[session6::FAMILY] {
            family::IPV6 => Ok(IpAddr::V6(a)),
            family::IPV4 => a
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .ok_or(SyncDrop::BadFamily),
            _ => Err(SyncDrop::BadFamily),
        }
    };
    let rip = server(session6::RIP)?;
    let lport = get16(b, session6::LPORT);
    let lip = if mode == ForwardMode::FullNat {
        if get_addr6(b, session6::LIP).is_unspecified() {
            // No LIP, whatever the family.
            return Err(SyncDrop::BadLip);
        }
        Some((server(session6::LIP)?, lport))
    } else if get_addr6(b, session6::LIP).is_unspecified() && lport == 0 {
        None
    } else {
        return Err(SyncDrop::BadLip);
    };
    let s = SyncSession6 {
        proto,
        client: (
            get_addr6(b, session6::CLIENT_ADDR),
            get16(b, session6::CLIENT_PORT),
        ),
        vip: (
            get_addr6(b, session6::VIP_ADDR),
            get16(b, session6::VIP_PORT),
        ),
        rip,
        rport: get16(b, session6::RPORT),
        mode,
        lip,
        state,
        expires_in_ms: get32(b, session6::EXPIRES_IN_MS),
        persist_ms: get32(b, session6::PERSIST_MS),
        synproxy,
        preamble: None,
    };
    s.validate()?;
    Ok(s)
}

fn decode_template(b: &[u8; template::LEN]) -> Result<SyncTemplate, SyncDrop> {
    let proto = Proto::from_ip_proto(b[template::PROTO]).ok_or(SyncDrop::BadProto)?;
    let t = SyncTemplate {
        proto,
        client: get_addr(b, template::CLIENT_ADDR),
        vip: (
            get_addr(b, template::VIP_ADDR),
            get16(b, template::VIP_PORT),
        ),
        rip: get_addr(b, template::RIP),
        rport: get16(b, template::RPORT),
        timeout_ms: get32(b, template::TIMEOUT_MS),
        expires_in_ms: get32(b, template::EXPIRES_IN_MS),
    };
    t.validate()?;
    Ok(t)
}

// Field accessors: callers pass offsets within a slice whose length they checked.

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get_addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(get32(b, at))
}

fn get_addr6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn put_addr6(b: &mut [u8], at: usize, a: Ipv6Addr) {
    b[at..at + 16].copy_from_slice(&a.octets());
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_addr(b: &mut [u8], at: usize, a: Ipv4Addr) {
    put32(b, at, a.to_bits());
}
