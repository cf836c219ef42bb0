//! Session sync between directors: rvs's own versioned wire format and its codec, the rings
//! between a worker and the sync daemon ([`SyncLink`]), and which worker installs a peer's
//! flow ([`FlowOwner`]). The worker's side is `worker/sync.rs`; the daemon is in `control`.
//!
//! As with IPVS's sync daemon, a *master* director sends its sessions (and persistence
//! templates) to *backup* peers in UDP datagrams; a backup installs each, so that after a
//! failover the flows go on where they were. This module is the format only: what a record
//! says ([`SyncRecord`], independent of how a worker keeps its sessions), the writer that
//! packs records into a caller's datagram buffer ([`DatagramWriter`]), the reader that checks
//! a received datagram and yields its records ([`Datagram`]), and why a datagram or a record
//! is refused ([`SyncDrop`], a small `Copy` enum with snake_case names, like
//! [`DropReason`](crate::DropReason)). Neither side allocates, and no input makes the reader
//! panic.
//!
//! # Datagram
//!
//! All fields are big-endian. A datagram is a 20-byte header and `count` records, nothing
//! after them:
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 4 | magic | `RVSY` ([`wire::MAGIC`]) |
//! | 4 | 1 | version | 1 ([`wire::VERSION`]); another version is refused whole |
//! | 5 | 1 | sync id | the sync group (IPVS `--syncid`); a receiver takes only its own |
//! | 6 | 2 | flags | bit 0 (`0x0001`): the sender asks for a bulk sync; other bits sent 0, ignored on receipt |
//! | 8 | 4 | sender id | the sending director |
//! | 12 | 4 | sequence | +1 per datagram (wrapping), so a receiver can count losses |
//! | 16 | 2 | count | number of records |
//! | 18 | 2 | length | of the whole datagram in bytes, header included |
//! | 20 | | records | `count` records, back to back |
//!
//! A datagram is at most 65,535 bytes (the length field); a sender sizes its datagrams to its
//! path, e.g. 1472 bytes for a 1500-byte MTU ([`wire::MTU_1500_DATAGRAM_LEN`]), and starts a
//! new one when a record does not fit ([`WriteError::Full`]).
//!
//! # Records
//!
//! Every record starts with its type and its length, so that a receiver can step over a type
//! a newer sender added ([`SyncDrop::UnknownRecordType`], counted, the other records
//! installed):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | type: 1 session, 2 template, 3 view, 4 session with a PROXY protocol header, 5 IPv6 session, 6 SYN-proxied IPv6 session; others are skipped |
//! | 2 | 2 | length of the record in bytes, these 4 included (≥ 4) |
//!
//! A known type has exactly its layout's length ([`SyncDrop::BadRecordLength`] otherwise): a
//! later field comes with a new record type (or version), never by growing a type.
//!
//! **Session** (type 1, 46 bytes; offsets from the record's start, [`wire::session`]):
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 4 | 1 | proto | IP protocol: 1 ICMP, 6 TCP, 17 UDP |
//! | 5 | 1 | mode | IPVS forwarding numbers: 0 NAT (masq), 2 TUN, 3 DR, 5 FullNAT (DPVS's number) |
//! | 6 | 1 | state | TCP: the IPVS state number (`TcpState::index`, 0 NONE … 10 SYNACK); UDP, ICMP: 0 |
//! | 7 | 1 | SYN proxy | 0 off, 1 pending (RS not answered yet), 2 on |
//! | 8 | 4 | client address | |
//! | 12 | 4 | VIP | |
//! | 16 | 4 | RIP | |
//! | 20 | 4 | LIP | FullNAT: the LIP (not 0.0.0.0); other modes: 0 |
//! | 24 | 2 | client port | ICMP: the echo identifier |
//! | 26 | 2 | VIP port | ICMP: 0 |
//! | 28 | 2 | RS port | ICMP: 0; DR, TUN: the VIP port |
//! | 30 | 2 | local port | FullNAT: the LIP's port (ICMP: echo identifier toward the RS); other modes: 0 |
//! | 32 | 4 | expires in | ms until the session expires unless a packet re-arms it |
//! | 36 | 4 | persistence | the service's persistence timeout in ms, 0 if none |
//! | 40 | 4 | SYN proxy word | pending: the client's ISN; on: the shift (RS ISN − cookie); off: 0 |
//! | 44 | 1 | cookie MSS | pending: index into `synproxy::MSS_TABLE` (< 4); otherwise 0 |
//! | 45 | 1 | cookie epoch | pending: low 8 bits of the cookie's epoch; otherwise 0 |
//!
//! **Session with a PROXY protocol header** (type 4, 52 bytes, [`wire::session_preamble`]):
//! a session of a service that sends one; its first 46 bytes are a session record's (type
//! 1's offsets), then:
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 46 | 1 | version | 1 (v1, text), 2 (v2, binary), 3 (TOA: TCP option 254, no shift) |
//! | 47 | 1 | phase | 0 not sent yet, 1 sent and not acknowledged, 2 acknowledged by the RS |
//! | 48 | 4 | first byte | the client's first data byte (ISN + 1): where the header starts in the RS's sequence space |
//!
//! Only TCP sessions in NAT or FullNAT have one, never with a pending SYN proxy
//! (`bad_preamble` otherwise, and for another version or phase). An older receiver skips the type and counts it.
//!
//! **IPv6 session** (type 5, 89 bytes, [`wire::session6`]): a session of an IPv6 service
//! (the worker's IPv6 table: NAT66, DR, TUN, FullNAT66, and NAT64 — FullNAT toward an IPv4
//! RS from an IPv4 LIP). Its first 8 bytes are a session record's; addresses take 16 bytes,
//! and the RS's family says how to read the RIP and LIP:
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 4 | 1 | proto | 6 TCP, 17 UDP (IPv6 services take no ICMP: `bad_proto`) |
//! | 5 | 1 | mode | as for a session: 0 NAT (NAT66), 2 TUN (IPv6-in-IPv6), 3 DR, 5 FullNAT (FullNAT66, NAT64) |
//! | 6 | 1 | state | TCP: the IPVS state number; UDP: 0 |
//! | 7 | 1 | SYN proxy | 0 (a proxied session is type 6: `bad_synproxy` otherwise) |
//! | 8 | 16 | client address | |
//! | 24 | 16 | VIP | |
//! | 40 | 16 | RIP | family 4: the IPv4 RIP IPv4-mapped (`::ffff:a.b.c.d`) |
//! | 56 | 16 | LIP | FullNAT: the LIP, of the RIP's family (family 4: IPv4-mapped); other modes: `::` |
//! | 72 | 2 | client port | |
//! | 74 | 2 | VIP port | |
//! | 76 | 2 | RS port | DR, TUN: the VIP port |
//! | 78 | 2 | local port | FullNAT: the LIP's port; other modes: 0 |
//! | 80 | 4 | expires in | ms until the session expires unless a packet re-arms it |
//! | 84 | 4 | persistence | the service's persistence timeout in ms, 0 if none (a backup holds the client's template from it) |
//! | 88 | 1 | RS family | 6: an IPv6 RS (and LIP); 4: NAT64, an IPv4 RS and LIP ([`wire::family`]) |
//!
//! A NAT64 session is mode 5 with family 4; family 4 in another mode, a LIP of another
//! family than the RIP's, an IPv4-mapped address in a family-6 record, or an unknown family
//! is `bad_family`. An older receiver skips the type and counts it (`unknown_record_type`).
//! A 1472-byte datagram holds 16 of them.
//!
//! **SYN-proxied IPv6 session** (type 6, 93 bytes, [`wire::session6_synproxy`]): a joined
//! session of an IPv6 service with the SYN proxy (NAT66 or FullNAT66, TCP). Its first 89 bytes
//! are an IPv6 session record's (type 5's offsets), its SYN proxy byte 2 (on), then:
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 89 | 4 | shift | RS ISN − cookie, as a type 1 record's SYN proxy word when on |
//!
//! A pending proxied session is never sent (its cookie is the sending worker's), as for IPv4;
//! a SYN proxy byte other than 2, DR, TUN, NAT64 or UDP is `bad_synproxy`. An older receiver
//! skips the type and counts it. A 1472-byte datagram holds 15 of them.
//!
//! **Template** (type 2, 29 bytes, [`wire::template`]): an IPVS persistence template, keyed
//! (proto, client, VIP, VIP port) like the worker's:
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 4 | 1 | proto | as for a session |
//! | 5 | 4 | client address | |
//! | 9 | 4 | VIP | |
//! | 13 | 4 | RIP | |
//! | 17 | 2 | VIP port | ICMP: 0 |
//! | 19 | 2 | RS port | ICMP: 0 |
//! | 21 | 4 | timeout | the persistence timeout in ms, not 0 |
//! | 25 | 4 | expires in | ms until the template expires if no session holds it |
//!
//! **View** (type 3, 16 bytes, [`wire::view`]): the sender's view of its services, sent by
//! the sync daemon every second and whenever its services change, in a datagram of its own;
//! a receiver compares it with its own and counts a difference (its workers never see it):
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 4 | 4 | services | the number of services |
//! | 8 | 8 | digest | [`sched::view_digest`] of the services and their dests |
//!
//! Times are relative (ms left), not absolute: directors do not share a clock.
//!
//! A pending SYN-proxied session carries what the master's worker keeps for it: the client's
//! ISN and the cookie's MSS index and epoch. The worker re-makes the cookie from those with
//! its own random key when the RS answers; a backup's worker has another key and could not
//! join its halves, so workers neither send nor install pending sessions (the fields stay
//! for a sender that would share its key or send the cookie). Sessions already `On`
//! carry their shift and need no key.
//!
//! # What a receiver refuses
//!
//! The whole datagram ([`SyncDrop::refuses_datagram`]), checked in this order: shorter than
//! the header (`truncated`), `bad_magic`, `unknown_version`, `wrong_sync_id`, a length field
//! below the header (`bad_length`), beyond the bytes received (`truncated`) or short of them
//! (`bad_length`), a record shorter than its header or running past the end (`bad_framing`),
//! a count that is not the number of records (`bad_record_count`).
//!
//! One record, the others still installed: `unknown_record_type`, `bad_record_length`, and
//! the semantic rules ([`SyncSession::validate`], [`SyncSession6::validate`],
//! [`SyncTemplate::validate`]), which the
//! writer applies too (it refuses to send what a receiver would refuse):
//!
//! - `bad_proto`, `bad_mode`: values outside the tables above (ICMP in an IPv6 session);
//! - `bad_state`: a TCP state number above 10, a non-zero state for UDP or ICMP (in a
//!   [`SyncSession`]: a state that is not the protocol's);
//! - `bad_synproxy`: an unknown SYN proxy value, a SYN proxy on UDP or ICMP or with a DR or
//!   TUN dest (services refuse both), a cookie MSS index ≥ 4, non-zero fields the state does
//!   not use;
//! - `bad_address`: 0.0.0.0 (IPv6 sessions: `::`, or 0.0.0.0 as a NAT64 RIP) as client, VIP
//!   or RIP;
//! - `bad_port`: a TCP or UDP VIP port or RS port of 0; an ICMP VIP port or RS port other
//!   than 0 (ports make no sense there; the client port and local port, which carry the echo
//!   identifier, are free); a DR or TUN RS port other than the VIP port (those modes do not
//!   rewrite the L4 header, and their dests must use the service port). The client port may
//!   be 0, as the data path accepts it;
//! - `bad_lip`: FullNAT with LIP 0.0.0.0 (IPv6 sessions: `::`), or a LIP or local port in
//!   another mode;
//! - `bad_timeout`: a template with a timeout of 0;
//! - `bad_family`: an IPv6 session's server side of the wrong family ([`SyncSession6::validate`]).
//!
//! An IPv6 session's SYN proxy byte other than 0 is `bad_synproxy`.

#![deny(unsafe_code)]

pub mod link;
pub mod owner;
pub mod record;
pub mod wire;

#[cfg(test)]
mod tests;

pub use link::SyncLink;
pub use owner::FlowOwner;
pub use record::{
    ServiceView, SyncDrop, SyncPreamble, SyncProxy, SyncRecord, SyncSession, SyncSession6,
    SyncTemplate,
};
pub use wire::{
    decode_record, Datagram, DatagramWriter, Records, SyncHeader, WriteError, MAX_DATAGRAM_LEN,
    MAX_RECORD_LEN, MTU_1500_DATAGRAM_LEN,
};
