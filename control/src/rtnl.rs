//! rtnetlink messages: the part of the route netlink protocol (`rtnetlink(7)`) rvsd speaks —
//! IPv4 `RTM_NEWADDR`/`RTM_DELADDR` read from a dump or from the `RTMGRP_IPV4_IFADDR`
//! multicast group, the `RTM_GETADDR` dump request (the address follower), and the
//! `RTM_NEWROUTE`/`RTM_DELROUTE` requests of the announcer's host routes.
//!
//! Layout (`netlink(7)`, `linux/if_addr.h`), every integer in the host's byte order: a
//! message is a 16-byte `nlmsghdr` (length, type, flags, sequence, port id) and its payload,
//! padded to 4 bytes; an address message's payload is an 8-byte `ifaddrmsg` (family, prefix
//! length, flags, scope, interface index) followed by attributes, each a 4-byte `rtattr`
//! (length, type) and its data padded to 4. For IPv4, `IFA_LOCAL` is the interface's own
//! address (`IFA_ADDRESS` is the peer's on a point-to-point link, else the same).
//!
//! [`Messages`] reads a buffer of messages without ever panicking: a length that runs past the
//! buffer or under a header is a [`NetlinkError`], and reading stops there.

use std::net::Ipv4Addr;

/// `NLMSG_ERROR`: an error (or, with error 0, an acknowledgement).
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `RTM_NEWADDR`: an address was added (or is listed by a dump).
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_DELADDR`: an address was removed.
pub const RTM_DELADDR: u16 = 21;
/// `RTM_GETADDR`: asks for the addresses.
pub const RTM_GETADDR: u16 = 22;
/// The multicast group of IPv4 address changes (`RTMGRP_IPV4_IFADDR`, a bind mask).
pub const RTMGRP_IPV4_IFADDR: u32 = 0x10;

const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
const AF_INET: u8 = 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// Attribute type bits (without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

const HEADER_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTATTR_LEN: usize = 4;

/// What an address message says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrChange {
    /// Added, or listed by a dump.
    New,
    /// Removed.
    Del,
}

/// An IPv4 address on an interface, as an `RTM_NEWADDR`/`RTM_DELADDR` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrMessage {
    /// Added or removed.
    pub change: AddrChange,
    /// The interface's index.
    pub ifindex: u32,
    /// The address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// One netlink message, as far as the follower cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// An IPv4 address message.
    Addr(AddrMessage),
    /// The end of a dump (sequence number of the request).
    Done(u32),
    /// An error answer: the errno (positive; 0 is an acknowledgement) and the sequence number.
    Error {
        /// The errno.
        errno: i32,
        /// The sequence number of the request it answers.
        seq: u32,
    },
    /// Anything else (other families' addresses, other message types): skipped.
    Other,
}

/// Why a buffer of netlink messages could not be read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    /// Fewer bytes left than a message header.
    #[error("netlink message truncated: {left} bytes left, a header needs 16")]
    Truncated {
        /// Bytes left in the buffer.
        left: usize,
    },
    /// A message length under its header or past the end of the buffer.
    #[error("netlink message length {len} does not fit: {left} bytes left")]
    BadLength {
        /// The length field.
        len: usize,
        /// Bytes left in the buffer.
        left: usize,
    },
    /// An address or error message whose payload is shorter than its fixed part.
    #[error("netlink message type {ty}: payload of {len} bytes is too short")]
    ShortPayload {
        /// Message type.
        ty: u16,
        /// Payload length.
        len: usize,
    },
    /// An attribute whose length is under its header, past its message, or wrong for its type.
    #[error("address message attribute type {ty}: bad length {len}")]
    BadAttribute {
        /// Attribute type.
        ty: u16,
        /// Its length field.
        len: usize,
    },
    /// An IPv4 address message with neither `IFA_LOCAL` nor `IFA_ADDRESS`.
    #[error("IPv4 address message for interface {ifindex} without an address")]
    NoAddress {
        /// The interface index.
        ifindex: u32,
    },
}

/// The messages of one received buffer, in order; after an error, nothing more.
pub struct Messages<'a> {
    buf: &'a [u8],
    failed: bool,
}

/// Reads the netlink messages in `buf` (what one `recv` returned).
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf, failed: false }
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, NetlinkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let r = self.read_one();
        self.failed = r.is_err();
        Some(r)
    }
}

impl Messages<'_> {
    fn read_one(&mut self) -> Result<Message, NetlinkError> {
        let left = self.buf.len();
        if left < HEADER_LEN {
            return Err(NetlinkError::Truncated { left });
        }
        let len = u32_at(self.buf, 0) as usize;
        if len < HEADER_LEN || len > left {
            return Err(NetlinkError::BadLength { len, left });
        }
        let ty = u16_at(self.buf, 4);
        let seq = u32_at(self.buf, 8);
        let payload = &self.buf[HEADER_LEN..len];
        // The next message starts at the padded length (the last one may lack its padding).
        self.buf = &self.buf[align4(len).min(left)..];
        match ty {
            NLMSG_DONE => Ok(Message::Done(seq)),
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(NetlinkError::ShortPayload {
                        ty,
                        len: payload.len(),
                    });
                }
                let error = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                Ok(Message::Error {
                    errno: error.saturating_neg(),
                    seq,
                })
            }
            RTM_NEWADDR | RTM_DELADDR => {
                let change = if ty == RTM_NEWADDR {
                    AddrChange::New
                } else {
                    AddrChange::Del
                };
                addr_message(change, payload)
            }
            _ => Ok(Message::Other),
        }
    }
}

/// The payload of an `RTM_NEWADDR`/`RTM_DELADDR`: `ifaddrmsg` and its attributes.
fn addr_message(change: AddrChange, payload: &[u8]) -> Result<Message, NetlinkError> {
    if payload.len() < IFADDRMSG_LEN {
        return Err(NetlinkError::ShortPayload {
            ty: if change == AddrChange::New {
                RTM_NEWADDR
            } else {
                RTM_DELADDR
            },
            len: payload.len(),
        });
    }
    if payload[0] != AF_INET {
        return Ok(Message::Other);
    }
    let prefix_len = payload[1];
    let ifindex = u32_at(payload, 4);
    let (mut local, mut address) = (None, None);
    let mut attrs = &payload[IFADDRMSG_LEN..];
    while attrs.len() >= RTATTR_LEN {
        let len = usize::from(u16_at(attrs, 0));
        let ty = u16_at(attrs, 2) & NLA_TYPE_MASK;
        if len < RTATTR_LEN || len > attrs.len() {
            return Err(NetlinkError::BadAttribute { ty, len });
        }
        let data = &attrs[RTATTR_LEN..len];
        if ty == IFA_LOCAL || ty == IFA_ADDRESS {
            let Ok(octets) = <[u8; 4]>::try_from(data) else {
                return Err(NetlinkError::BadAttribute { ty, len });
            };
            let a = Some(Ipv4Addr::from(octets));
            if ty == IFA_LOCAL {
                local = a;
            } else {
                address = a;
            }
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    let addr = local
        .or(address)
        .ok_or(NetlinkError::NoAddress { ifindex })?;
    Ok(Message::Addr(AddrMessage {
        change,
        ifindex,
        addr,
        prefix_len,
    }))
}

/// An `RTM_GETADDR` dump request for the IPv4 addresses of every interface, sequence `seq`.
pub fn dump_request(seq: u32) -> [u8; HEADER_LEN + IFADDRMSG_LEN] {
    let mut m = [0u8; HEADER_LEN + IFADDRMSG_LEN];
    m[0..4].copy_from_slice(&((HEADER_LEN + IFADDRMSG_LEN) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_GETADDR.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m[HEADER_LEN] = AF_INET;
    m
}

/// `RTM_NEWROUTE`: add (or, with `NLM_F_REPLACE`, replace) a route.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`: remove a route.
pub const RTM_DELROUTE: u16 = 25;
/// The routing protocol number rvsd's announcement routes carry (`rtm_protocol`): not
/// `kernel`, `boot` or `bird`, so BIRD's kernel protocol learns them as alien routes, and
/// `ip route show proto 250` lists them.
pub const RTPROT_RVS: u8 = 250;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTMSG_LEN: usize = 12;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
/// Length of a route message: header, `rtmsg`, four 8-byte attributes.
pub const ROUTE_MSG_LEN: usize = HEADER_LEN + RTMSG_LEN + 4 * 8;

/// A host route (`addr/32 dev ifindex`, scope link) in table `table` with metric `metric`,
/// protocol [`RTPROT_RVS`], asking for an acknowledgement: `RTM_NEWROUTE` that creates or
/// replaces it (`new`), or `RTM_DELROUTE` that removes it. Sequence `seq`.
pub fn route_request(
    new: bool,
    seq: u32,
    addr: Ipv4Addr,
    ifindex: u32,
    table: u32,
    metric: u32,
) -> [u8; ROUTE_MSG_LEN] {
    let mut m = [0u8; ROUTE_MSG_LEN];
    let (ty, flags) = if new {
        (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    };
    m[0..4].copy_from_slice(&(ROUTE_MSG_LEN as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    let r = HEADER_LEN;
    m[r] = AF_INET; // rtm_family
    m[r + 1] = 32; // rtm_dst_len
    m[r + 4] = if table < 256 { table as u8 } else { 252 }; // rtm_table (RT_TABLE_COMPAT)
    m[r + 5] = RTPROT_RVS;
    m[r + 6] = RT_SCOPE_LINK;
    m[r + 7] = RTN_UNICAST;
    let attrs: [(u16, [u8; 4]); 4] = [
        (RTA_TABLE, table.to_ne_bytes()),
        (RTA_DST, addr.octets()),
        (RTA_OIF, ifindex.to_ne_bytes()),
        (RTA_PRIORITY, metric.to_ne_bytes()),
    ];
    for (i, (ty, data)) in attrs.iter().enumerate() {
        let at = HEADER_LEN + RTMSG_LEN + i * 8;
        m[at..at + 2].copy_from_slice(&8u16.to_ne_bytes());
        m[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
        m[at + 4..at + 8].copy_from_slice(data);
    }
    m
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn route_request_layout() {
        let m = route_request(true, 7, Ipv4Addr::new(198, 51, 100, 1), 5, 100, 32);
        assert_eq!(u32_at(&m, 0) as usize, ROUTE_MSG_LEN);
        assert_eq!(u16_at(&m, 4), RTM_NEWROUTE);
        assert_eq!(u16_at(&m, 6), 0x1 | 0x4 | 0x400 | 0x100);
        assert_eq!(u32_at(&m, 8), 7);
        assert_eq!(&m[16..24], &[2, 32, 0, 0, 100, RTPROT_RVS, 253, 1]);
        // Attributes: table, dst, oif, priority.
        assert_eq!(u16_at(&m, 28), 8);
        assert_eq!(u16_at(&m, 30), 15);
        assert_eq!(u32_at(&m, 32), 100);
        assert_eq!(&m[40..44], &[198, 51, 100, 1]);
        assert_eq!(u32_at(&m, 48), 5);
        assert_eq!(u32_at(&m, 56), 32);
        let d = route_request(false, 8, Ipv4Addr::new(198, 51, 100, 1), 5, 1000, 32);
        assert_eq!(u16_at(&d, 4), RTM_DELROUTE);
        assert_eq!(u16_at(&d, 6), 0x1 | 0x4);
        assert_eq!(d[20], 252);
        assert_eq!(u32_at(&d, 32), 1000);
    }

    /// An attribute: header and data, padded.
    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((RTATTR_LEN + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    /// A message of type `ty` with `payload`, padded.
    fn msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    /// An address message's payload: `ifaddrmsg` then `attrs`.
    fn ifaddr(family: u8, prefix: u8, ifindex: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![family, prefix, 0x80, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        for a in attrs {
            p.extend_from_slice(a);
        }
        p
    }

    /// What `ip addr add 192.0.2.100/32 dev rvswan` makes the kernel send (index 7, with the
    /// label and cache info it adds).
    fn new_vip() -> Vec<u8> {
        let vip = [192, 0, 2, 100];
        msg(
            RTM_NEWADDR,
            0,
            &ifaddr(
                AF_INET,
                32,
                7,
                &[
                    attr(IFA_ADDRESS, &vip),
                    attr(IFA_LOCAL, &vip),
                    attr(3, b"rvswan\0"),
                    attr(8, &[0u8; 4]),
                    attr(6, &[0u8; 16]),
                ],
            ),
        )
    }

    fn all(buf: &[u8]) -> Vec<Result<Message, NetlinkError>> {
        messages(buf).collect()
    }

    #[test]
    fn new_and_del_address_messages() {
        let mut buf = new_vip();
        let lip = [10, 1, 0, 201];
        buf.extend(msg(
            RTM_DELADDR,
            0,
            &ifaddr(AF_INET, 32, 8, &[attr(IFA_LOCAL, &lip)]),
        ));
        assert_eq!(
            all(&buf),
            vec![
                Ok(Message::Addr(AddrMessage {
                    change: AddrChange::New,
                    ifindex: 7,
                    addr: Ipv4Addr::new(192, 0, 2, 100),
                    prefix_len: 32
                })),
                Ok(Message::Addr(AddrMessage {
                    change: AddrChange::Del,
                    ifindex: 8,
                    addr: Ipv4Addr::new(10, 1, 0, 201),
                    prefix_len: 32
                })),
            ]
        );
    }

    #[test]
    fn local_wins_over_the_peer_address() {
        // A point-to-point address: IFA_ADDRESS is the peer, IFA_LOCAL ours, in any order.
        let buf = msg(
            RTM_NEWADDR,
            0,
            &ifaddr(
                AF_INET,
                32,
                3,
                &[
                    attr(IFA_LOCAL, &[192, 0, 2, 1]),
                    attr(IFA_ADDRESS, &[192, 0, 2, 9]),
                ],
            ),
        );
        let Ok(Message::Addr(a)) = all(&buf)[0] else {
            panic!("{:?}", all(&buf))
        };
        assert_eq!(a.addr, Ipv4Addr::new(192, 0, 2, 1));
        // Only IFA_ADDRESS: that is the address.
        let buf = msg(
            RTM_NEWADDR,
            0,
            &ifaddr(AF_INET, 24, 3, &[attr(IFA_ADDRESS, &[192, 0, 2, 1])]),
        );
        assert!(
            matches!(all(&buf)[0], Ok(Message::Addr(a)) if a.addr == Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn dump_end_errors_and_other_families() {
        let mut buf = msg(
            RTM_NEWADDR,
            5,
            &ifaddr(10, 64, 7, &[attr(IFA_ADDRESS, &[0xfe; 16])]),
        );
        buf.extend(msg(16, 5, &[0; 16])); // RTM_NEWLINK
        buf.extend(msg(NLMSG_ERROR, 5, &(-13i32).to_ne_bytes()));
        buf.extend(msg(NLMSG_DONE, 5, &0i32.to_ne_bytes()));
        assert_eq!(
            all(&buf),
            vec![
                Ok(Message::Other),
                Ok(Message::Other),
                Ok(Message::Error { errno: 13, seq: 5 }),
                Ok(Message::Done(5)),
            ]
        );
    }

    #[test]
    fn malformed_input_is_an_error_and_reading_stops() {
        let good = new_vip();
        // Truncated header.
        assert_eq!(
            all(&good[..10]),
            vec![Err(NetlinkError::Truncated { left: 10 })]
        );
        // Length past the buffer, and under the header.
        let mut long = good.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            all(&long),
            vec![Err(NetlinkError::BadLength {
                len: 1000,
                left: good.len()
            })]
        );
        let mut short = good.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        short.extend(new_vip());
        assert_eq!(all(&short).len(), 1, "nothing after an error");
        // An ifaddrmsg cut short.
        let cut = msg(RTM_NEWADDR, 0, &[AF_INET, 32, 0]);
        assert_eq!(
            all(&cut),
            vec![Err(NetlinkError::ShortPayload {
                ty: RTM_NEWADDR,
                len: 3
            })]
        );
        // An attribute running past its message, and an address of the wrong size.
        let mut p = ifaddr(AF_INET, 32, 7, &[attr(IFA_LOCAL, &[10, 0, 0, 1])]);
        p[IFADDRMSG_LEN..IFADDRMSG_LEN + 2].copy_from_slice(&40u16.to_ne_bytes());
        assert_eq!(
            all(&msg(RTM_NEWADDR, 0, &p)),
            vec![Err(NetlinkError::BadAttribute {
                ty: IFA_LOCAL,
                len: 40
            })]
        );
        let p = ifaddr(AF_INET, 32, 7, &[attr(IFA_LOCAL, &[10, 0, 0])]);
        assert_eq!(
            all(&msg(RTM_NEWADDR, 0, &p)),
            vec![Err(NetlinkError::BadAttribute {
                ty: IFA_LOCAL,
                len: 7
            })]
        );
        // No address at all.
        let p = ifaddr(AF_INET, 32, 7, &[attr(3, b"x\0")]);
        assert_eq!(
            all(&msg(RTM_NEWADDR, 0, &p)),
            vec![Err(NetlinkError::NoAddress { ifindex: 7 })]
        );
        let e = NetlinkError::NoAddress { ifindex: 7 }.to_string();
        assert_eq!(e, "IPv4 address message for interface 7 without an address");
    }

    #[test]
    fn the_dump_request() {
        let r = dump_request(42);
        assert_eq!(r.len(), 24);
        assert_eq!(u32_at(&r, 0), 24);
        assert_eq!(u16_at(&r, 4), RTM_GETADDR);
        assert_eq!(u16_at(&r, 6), 0x301, "request, dump");
        assert_eq!(u32_at(&r, 8), 42);
        assert_eq!(r[16], AF_INET);
    }

    #[test]
    fn a_longer_first_length_reads_into_the_second_message() {
        // The first message claims 81 bytes: the reader goes on at 84, inside the second.
        let mut buf = new_vip();
        buf.extend(new_vip());
        buf[0] = 81;
        let all: Vec<_> = messages(&buf).collect();
        assert!(all.len() > 2, "{all:?}");
        assert!(all.len() <= buf.len() / HEADER_LEN + 1);
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for m in messages(&bytes) {
                let _ = m;
            }
        }

        #[test]
        fn mutated_messages_never_panic(at in 0usize..64, byte in any::<u8>()) {
            let mut buf = new_vip();
            buf.extend(new_vip());
            let i = at % buf.len();
            buf[i] = byte;
            // A changed length may split the two messages differently, but every
            // message read takes at least a header, and reading stops at the first error.
            let n = messages(&buf).count();
            prop_assert!(n <= buf.len() / HEADER_LEN + 1, "{} messages from {} bytes", n, buf.len());
        }
    }
}
