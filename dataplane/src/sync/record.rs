//! What a sync record says, independent of how a worker keeps its sessions, the rules a record
//! must keep to be installed, and why a datagram or a record is refused ([`SyncDrop`]).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrack::{Proto, SessionState};
use sched::ForwardMode;

use crate::proxy_protocol::{Carrier, Phase};
use crate::synproxy::MSS_TABLE;

/// One session or persistence template, as a master director sends it and a backup installs
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRecord {
    /// A session.
    Session(SyncSession),
    /// A session of an IPv6 service (FullNAT66, NAT66, DR, TUN, NAT64).
    Session6(SyncSession6),
    /// An IPVS persistence template.
    Template(SyncTemplate),
    /// The sender's view of the services (for the sync daemon; workers install nothing).
    View(ServiceView),
}

/// What a director's services say about where new flows go: how many services it has and
/// the digest of them ([`sched::view_digest`]). Directors with the same digest pick the same
/// dest for the same new flow with `sh` and `mh`; a peer whose digest differs from this
/// director's has another configuration (an edit not made everywhere yet, or a stale file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceView {
    /// The number of services.
    pub services: u32,
    /// The digest of the services and their dests.
    pub digest: u64,
}

/// A session: enough for a backup to forward the flow's next packet exactly as the master
/// would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSession {
    /// The L4 protocol.
    pub proto: Proto,
    /// The client's address and port (ICMP: the echo identifier).
    pub client: (Ipv4Addr, u16),
    /// The service's VIP and port (ICMP: port 0).
    pub vip: (Ipv4Addr, u16),
    /// The real server's address.
    pub rip: Ipv4Addr,
    /// The real server's port (ICMP: 0; DR and TUN: the VIP's port).
    pub rport: u16,
    /// How packets reach the RS.
    pub mode: ForwardMode,
    /// FullNAT's LIP and local port (ICMP: the echo identifier toward the RS); present in
    /// FullNAT, absent in every other mode.
    pub lip: Option<(Ipv4Addr, u16)>,
    /// The state that selects the session's timeout: `Tcp(_)` for TCP, `Udp` for UDP, `Icmp`
    /// for ICMP.
    pub state: SessionState,
    /// Time left until the session expires unless a packet re-arms it, in ms.
    pub expires_in_ms: u32,
    /// The service's persistence timeout in ms (0: not persistent).
    pub persist_ms: u32,
    /// The SYN proxy's state (TCP with NAT or FullNAT only).
    pub synproxy: SyncProxy,
    /// The PROXY protocol header its service sends (TCP with NAT or FullNAT only).
    pub preamble: Option<SyncPreamble>,
}

/// A session of an IPv6 service: what a backup needs to forward the flow's next packet in
/// the IPv6 table, and a persistent service's timeout (the backup holds the client's template
/// from it). IPv6 services have no PROXY protocol header, so none is carried; their protocols
/// are TCP and UDP. A joined SYN-proxied session carries its shift (record type 6); a pending
/// one is not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSession6 {
    /// The L4 protocol (TCP or UDP).
    pub proto: Proto,
    /// The client's address and port.
    pub client: (Ipv6Addr, u16),
    /// The service's VIP and port.
    pub vip: (Ipv6Addr, u16),
    /// The real server's address: IPv6, or IPv4 for NAT64 (a FullNAT dest of an IPv6
    /// service that is an IPv4 server).
    pub rip: IpAddr,
    /// The real server's port (DR and TUN: the VIP's port).
    pub rport: u16,
    /// How packets reach the RS (NAT64 is `FullNat` with an IPv4 RIP and LIP).
    pub mode: ForwardMode,
    /// FullNAT's LIP and local port, of the RIP's family (FullNAT66: an IPv6 LIP; NAT64: an
    /// IPv4 one); absent in every other mode.
    pub lip: Option<(IpAddr, u16)>,
    /// The state that selects the session's timeout: `Tcp(_)` for TCP, `Udp` for UDP.
    pub state: SessionState,
    /// Time left until the session expires unless a packet re-arms it, in ms.
    pub expires_in_ms: u32,
    /// The service's persistence timeout in ms (0: not persistent).
    pub persist_ms: u32,
    /// `Off`, or `On` with the shift of a joined SYN-proxied TCP session in NAT66 or
    /// FullNAT66 (never `Pending`: its cookie is the sending worker's).
    pub synproxy: SyncProxy,
    /// The session's PROXY protocol header or TOA, if its service has one (its first data
    /// byte's low 24 bits: an IPv6 session keeps no more).
    pub preamble: Option<SyncPreamble>,
}

/// A session's PROXY protocol header (or TOA): which, how far it got, and where it sits in the RS's
/// sequence space, so that a session that moves to another director mid-handshake neither
/// loses nor repeats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPreamble {
    /// A PROXY protocol header of a version, or TOA.
    pub carrier: Carrier,
    /// How far it got.
    pub phase: Phase,
    /// The client's first data byte (its ISN + 1).
    pub first_seq: u32,
}

/// A SYN-proxied session's state and the per-session sequence word that goes with it
/// ([`crate::synproxy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncProxy {
    /// Not proxied.
    Off,
    /// The client's cookie checked and the director's SYN went to the RS, which has not
    /// answered yet.
    Pending {
        /// The client's initial sequence number.
        client_isn: u32,
        /// The cookie's MSS, an index into [`MSS_TABLE`].
        mss: u8,
        /// The low 8 bits of the cookie's epoch.
        epoch: u8,
    },
    /// Both halves are open.
    On {
        /// RS ISN − cookie: the [`Shift`](crate::synproxy::Shift) between the halves.
        shift: u32,
    },
}

/// An IPVS persistence template: which dest the client's next sessions of a persistent
/// service go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTemplate {
    /// The L4 protocol of the service.
    pub proto: Proto,
    /// The client's address (a template has no client port).
    pub client: Ipv4Addr,
    /// The service's VIP and port (ICMP: port 0).
    pub vip: (Ipv4Addr, u16),
    /// The dest's address.
    pub rip: Ipv4Addr,
    /// The dest's port (ICMP: 0).
    pub rport: u16,
    /// The service's persistence timeout in ms (never 0: a service without persistence has
    /// no templates).
    pub timeout_ms: u32,
    /// Time left until the template expires if no session holds it, in ms.
    pub expires_in_ms: u32,
}

macro_rules! sync_drops {
    ($( $(#[$doc:meta])* $name:ident => $text:literal, )*) => {
        /// Why a received sync datagram, or one record of it, was not installed. The first
        /// seven refuse the whole datagram ([`SyncDrop::refuses_datagram`]); the others one
        /// record, the datagram's other records being installed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum SyncDrop {
            $( $(#[$doc])* $name, )*
        }

        impl SyncDrop {
            /// Every reason, in counter order.
            pub const ALL: &'static [SyncDrop] = &[$(SyncDrop::$name,)*];
            /// How many reasons there are (the length of a per-reason counter array).
            pub const COUNT: usize = SyncDrop::ALL.len();

            /// A stable snake_case name, used in counters and logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(SyncDrop::$name => $text,)*
                }
            }

            /// The index of this reason in a per-reason counter array.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

sync_drops! {
    /// Shorter than the datagram header, or than the header's length field says.
    Truncated => "truncated",
    /// The first four bytes are not `RVSY`.
    BadMagic => "bad_magic",
    /// A format version this director does not read.
    UnknownVersion => "unknown_version",
    /// Another sync group's datagram (its sync id is not the one expected).
    WrongSyncId => "wrong_sync_id",
    /// The header's length field is below the header's length, or bytes follow it.
    BadLength => "bad_length",
    /// A record's length is below the record header's, or runs past the datagram's end.
    BadFraming => "bad_framing",
    /// The header's record count is not the number of records the datagram holds.
    BadRecordCount => "bad_record_count",
    /// A record type this director does not know (a newer sender's): skipped.
    UnknownRecordType => "unknown_record_type",
    /// A known record type whose length is not its layout's.
    BadRecordLength => "bad_record_length",
    /// An IP protocol that is not TCP, UDP or ICMP.
    BadProto => "bad_proto",
    /// An unknown forwarding mode.
    BadMode => "bad_mode",
    /// An unknown TCP state, or a state that is not the protocol's (TCP for a UDP session).
    BadState => "bad_state",
    /// An unknown SYN proxy state, a SYN proxy on a UDP or ICMP session or in DR or TUN, an
    /// MSS index out of the table, or a value in a field the state does not use.
    BadSynProxy => "bad_synproxy",
    /// FullNAT without a LIP, or a LIP or local port in another mode.
    BadLip => "bad_lip",
    /// A TCP or UDP service or RS port of 0, an ICMP service or RS port other than 0, or an
    /// RS port other than the service's in DR or TUN.
    BadPort => "bad_port",
    /// The unspecified address (0.0.0.0) as a client, VIP or RIP.
    BadAddress => "bad_address",
    /// A persistence template with a timeout of 0.
    BadTimeout => "bad_timeout",
    /// A PROXY protocol header on a session that cannot have one (not TCP, DR or TUN, a
    /// pending SYN proxy), or an unknown version or phase.
    BadPreamble => "bad_preamble",
    /// An IPv6 session whose server side is of the wrong family: an unknown family, an IPv4
    /// RIP (NAT64) in a mode other than FullNAT, a LIP of another family than the RIP's, an
    /// IPv6 RIP or LIP that is IPv4-mapped, or a NAT64 RIP or LIP that is not.
    BadFamily => "bad_family",
}

impl SyncDrop {
    /// Whether this reason refuses the whole datagram (the header or the records' framing is
    /// wrong, so no record can be trusted) rather than one record.
    #[inline]
    pub fn refuses_datagram(self) -> bool {
        (self as u8) <= SyncDrop::BadRecordCount as u8
    }
}

impl fmt::Display for SyncDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SyncRecord {
    /// Checks the rules a record must keep to be sent or installed (see
    /// [`SyncSession::validate`] and [`SyncTemplate::validate`]).
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), SyncDrop> {
        match self {
            SyncRecord::Session(s) => s.validate(),
            SyncRecord::Session6(s) => s.validate(),
            SyncRecord::Template(t) => t.validate(),
            SyncRecord::View(_) => Ok(()),
        }
    }
}

impl SyncSession {
    /// Checks, in this order:
    ///
    /// - [`SyncDrop::BadState`]: `state` is the protocol's (`Tcp(_)` for TCP, `Udp`, `Icmp`);
    /// - [`SyncDrop::BadSynProxy`]: a SYN proxy state other than `Off` only on TCP in NAT or
    ///   FullNAT, and a pending session's MSS index within [`MSS_TABLE`];
    /// - [`SyncDrop::BadAddress`]: client, VIP and RIP are not 0.0.0.0;
    /// - [`SyncDrop::BadPort`]: TCP and UDP have a non-zero VIP port and RS port, ICMP has
    ///   both 0; in DR and TUN the RS port is the VIP's (the packet's L4 header is not
    ///   rewritten). The client port is free (ICMP: the echo identifier, 0 included);
    /// - [`SyncDrop::BadLip`]: FullNAT has a LIP other than 0.0.0.0 (its port is free, as a
    ///   LIP port range may include any port), the other modes have none;
    /// - [`SyncDrop::BadPreamble`]: a PROXY protocol header (or TOA) only on TCP, or a v2
    ///   header on UDP, in NAT or FullNAT, not on a SYN-proxied session still waiting for its
    ///   RS.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), SyncDrop> {
        let state_ok = matches!(
            (self.proto, self.state),
            (Proto::Tcp, SessionState::Tcp(_))
                | (Proto::Udp, SessionState::Udp)
                | (Proto::Icmp, SessionState::Icmp)
        );
        if !state_ok {
            return Err(SyncDrop::BadState);
        }
        if self.synproxy != SyncProxy::Off {
            let mss_ok = match self.synproxy {
                SyncProxy::Pending { mss, .. } => usize::from(mss) < MSS_TABLE.len(),
                SyncProxy::Off | SyncProxy::On { .. } => true,
            };
            if self.proto != Proto::Tcp || !self.mode.maps_ports() || !mss_ok {
                return Err(SyncDrop::BadSynProxy);
            }
        }
        if [self.client.0, self.vip.0, self.rip]
            .iter()
            .any(Ipv4Addr::is_unspecified)
        {
            return Err(SyncDrop::BadAddress);
        }
        check_ports(self.proto, self.vip.1, self.rport)?;
        if !self.mode.maps_ports() && self.rport != self.vip.1 {
            return Err(SyncDrop::BadPort);
        }
        match (self.mode, self.lip) {
            (ForwardMode::FullNat, Some((lip, _))) if !lip.is_unspecified() => {}
            (ForwardMode::Nat | ForwardMode::Dr | ForwardMode::Tun, None) => {}
            _ => return Err(SyncDrop::BadLip),
        }
        let udp_v2 = Some(Carrier::Proxy(sched::ProxyProtocol::V2));
        if let Some(p) = self.preamble {
            let proto_ok = match self.proto {
                Proto::Tcp => true,
                Proto::Udp => Some(p.carrier) == udp_v2,
                Proto::Icmp => false,
            };
            if !proto_ok
                || !self.mode.maps_ports()
                || matches!(self.synproxy, SyncProxy::Pending { .. })
            {
                return Err(SyncDrop::BadPreamble);
            }
        }
        Ok(())
    }
}

impl SyncSession6 {
    /// Checks, in this order:
    ///
    /// - [`SyncDrop::BadProto`]: TCP or UDP (IPv6 services take no ICMP);
    /// - [`SyncDrop::BadState`]: `state` is the protocol's (`Tcp(_)` for TCP, `Udp`);
    /// - [`SyncDrop::BadSynProxy`]: a SYN proxy state other than `Off` is `On`, of a TCP
    ///   session in NAT or FullNAT (NAT64 among them);
    /// - [`SyncDrop::BadAddress`]: client, VIP and RIP are not unspecified (`::`, or
    ///   0.0.0.0 for an IPv4 RIP);
    /// - [`SyncDrop::BadPort`]: a non-zero VIP port and RS port; in DR and TUN the RS port
    ///   is the VIP's. The client port is free;
    /// - [`SyncDrop::BadLip`]: FullNAT has a LIP that is not unspecified (its port is free),
    ///   the other modes have none;
    /// - [`SyncDrop::BadFamily`]: an IPv4 RIP only in FullNAT (NAT64), the LIP of the RIP's
    ///   family, and no IPv6 RIP or LIP IPv4-mapped (the wire's way of writing NAT64's
    ///   IPv4 addresses);
    /// - [`SyncDrop::BadPreamble`]: a header only in NAT and FullNAT (NAT64 too), TCP's of
    ///   any kind, UDP's v2, its first data byte within 24 bits.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), SyncDrop> {
        let state_ok = matches!(
            (self.proto, self.state),
            (Proto::Tcp, SessionState::Tcp(_)) | (Proto::Udp, SessionState::Udp)
        );
        if self.proto == Proto::Icmp {
            return Err(SyncDrop::BadProto);
        }
        if !state_ok {
            return Err(SyncDrop::BadState);
        }
        let proxy_ok = match self.synproxy {
            SyncProxy::Off => true,
            SyncProxy::On { .. } => self.proto == Proto::Tcp && self.mode.maps_ports(),
            SyncProxy::Pending { .. } => false,
        };
        if !proxy_ok {
            return Err(SyncDrop::BadSynProxy);
        }
        if self.client.0.is_unspecified()
            || self.vip.0.is_unspecified()
            || self.rip.is_unspecified()
        {
            return Err(SyncDrop::BadAddress);
        }
        check_ports(self.proto, self.vip.1, self.rport)?;
        if !self.mode.maps_ports() && self.rport != self.vip.1 {
            return Err(SyncDrop::BadPort);
        }
        match (self.mode, self.lip) {
            (ForwardMode::FullNat, Some((lip, _))) if !lip.is_unspecified() => {}
            (ForwardMode::Nat | ForwardMode::Dr | ForwardMode::Tun, None) => {}
            _ => return Err(SyncDrop::BadLip),
        }
        let mapped = |a: IpAddr| matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        let lip = self.lip.map(|(a, _)| a);
        let family_ok = match self.rip {
            IpAddr::V4(_) => matches!(lip, Some(IpAddr::V4(_))),
            IpAddr::V6(_) => !lip.is_some_and(|l| l.is_ipv4() || mapped(l)),
        };
        if !family_ok || mapped(self.rip) {
            return Err(SyncDrop::BadFamily);
        }
        if let Some(p) = self.preamble {
            let proto_ok = match self.proto {
                Proto::Tcp => true,
                Proto::Udp => p.carrier == Carrier::Proxy(sched::ProxyProtocol::V2),
                Proto::Icmp => false,
            };
            if !proto_ok || !self.mode.maps_ports() || p.first_seq > 0xff_ffff {
                return Err(SyncDrop::BadPreamble);
            }
        }
        Ok(())
    }
}

impl SyncTemplate {
    /// Checks, in this order: [`SyncDrop::BadAddress`] (client, VIP or RIP 0.0.0.0),
    /// [`SyncDrop::BadPort`] (as for a session: TCP and UDP non-zero VIP and RS ports, ICMP
    /// both 0) and [`SyncDrop::BadTimeout`] (a timeout of 0).
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), SyncDrop> {
        if [self.client, self.vip.0, self.rip]
            .iter()
            .any(Ipv4Addr::is_unspecified)
        {
            return Err(SyncDrop::BadAddress);
        }
        check_ports(self.proto, self.vip.1, self.rport)?;
        if self.timeout_ms == 0 {
            return Err(SyncDrop::BadTimeout);
        }
        Ok(())
    }
}

/// A service's port and its RS's port: non-zero for TCP and UDP, zero for ICMP (the rule
/// services and dests already keep).
fn check_ports(proto: Proto, vport: u16, rport: u16) -> Result<(), SyncDrop> {
    let ok = match proto {
        Proto::Tcp | Proto::Udp => vport != 0 && rport != 0,
        Proto::Icmp => vport == 0 && rport == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(SyncDrop::BadPort)
    }
}
