//! Where the fields of the TCP, UDP and ICMP headers lie, and the values the director reads
//! in them: one home for every offset the data path's fixed-offset readers and in-place
//! rewrites use.

/// TCP (RFC 9293).
pub mod tcp {
    /// Byte offsets of the fixed header's fields.
    pub mod field {
        /// Source port.
        pub const SRC_PORT: usize = 0;
        /// Destination port.
        pub const DST_PORT: usize = 2;
        /// Sequence number.
        pub const SEQ: usize = 4;
        /// Acknowledgement number.
        pub const ACK: usize = 8;
        /// Data offset (high nibble, in 32-bit words).
        pub const DATA_OFF: usize = 12;
        /// Flags.
        pub const FLAGS: usize = 13;
        /// Window.
        pub const WINDOW: usize = 14;
        /// Checksum.
        pub const CHECKSUM: usize = 16;
        /// Urgent pointer.
        pub const URGENT: usize = 18;
    }

    /// Length of the header without options.
    pub const HEADER_LEN: usize = 20;
    /// Option kind: end of the option list.
    pub const OPT_END: u8 = 0;
    /// Option kind: no operation (padding).
    pub const OPT_NOP: u8 = 1;
    /// Option kind: maximum segment size (length 4).
    pub const OPT_MSS: u8 = 2;

    /// Flag bits as in the header's flags byte.
    pub mod flags {
        /// FIN.
        pub const FIN: u8 = 0x01;
        /// SYN.
        pub const SYN: u8 = 0x02;
        /// RST.
        pub const RST: u8 = 0x04;
        /// PSH.
        pub const PSH: u8 = 0x08;
        /// ACK.
        pub const ACK: u8 = 0x10;
        /// URG.
        pub const URG: u8 = 0x20;
        /// The flags that say where a segment is in a connection's life (PSH, URG, ECE and
        /// CWR do not): mask with it to tell a plain SYN, SYN/ACK, ACK, FIN or RST.
        pub const HANDSHAKE: u8 = SYN | ACK | RST | FIN;

        /// True for the flag combinations a TCP connection uses; the others (SYN with FIN or
        /// RST, FIN without ACK, no flags at all, the "christmas tree") are what scanners and
        /// floods send. The same set as Linux conntrack's `tcp_valid_flags`: PSH, ECE and CWR
        /// are ignored, and what is left must be SYN, SYN+URG, SYN+ACK, RST, RST+ACK, FIN+ACK,
        /// FIN+ACK+URG, ACK or ACK+URG.
        #[inline]
        pub const fn valid(flags: u8) -> bool {
            const SYN_URG: u8 = SYN | URG;
            const SYN_ACK: u8 = SYN | ACK;
            const RST_ACK: u8 = RST | ACK;
            const FIN_ACK: u8 = FIN | ACK;
            const FIN_ACK_URG: u8 = FIN | ACK | URG;
            const ACK_URG: u8 = ACK | URG;
            matches!(
                flags & (HANDSHAKE | URG),
                SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
            )
        }
    }
}

/// UDP (RFC 768).
pub mod udp {
    /// Byte offsets of the header's fields.
    pub mod field {
        /// Source port.
        pub const SRC_PORT: usize = 0;
        /// Destination port.
        pub const DST_PORT: usize = 2;
        /// Length, header included.
        pub const LENGTH: usize = 4;
        /// Checksum (0: none).
        pub const CHECKSUM: usize = 6;
    }

    /// Length of the header.
    pub const HEADER_LEN: usize = 8;
}

/// ICMP for IPv4 (RFC 792, RFC 1191).
pub mod icmp {
    /// Byte offsets of the header's fields.
    pub mod field {
        /// Type.
        pub const TYPE: usize = 0;
        /// Code.
        pub const CODE: usize = 1;
        /// Checksum over the whole message.
        pub const CHECKSUM: usize = 2;
        /// Echo identifier (echo request and reply).
        pub const IDENT: usize = 4;
        /// The 32-bit "rest of header" word (the next-hop MTU of fragmentation needed).
        pub const REST: usize = 4;
    }

    /// Length of the header in front of the data (an error's quote).
    pub const HEADER_LEN: usize = 8;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated by RFC 6633, still relayed).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Code of destination unreachable: fragmentation needed and DF set (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Code of destination unreachable: port unreachable (RFC 792; RFC 1122 3.2.2.1).
    pub const PORT_UNREACH: u8 = 3;
    /// Code of time exceeded: TTL exceeded in transit.
    pub const TTL_EXCEEDED: u8 = 0;
}
