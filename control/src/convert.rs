//! Between the protocol's names and the model's types: a service key and a protocol as rvsadm
//! sends and lists them ([`SvcKey`], [`ProtoName`]) and as the model has them ([`ServiceKey`],
//! [`Proto`]). Functions rather than `From` impls: both sides belong to other crates.

use conntrack::Proto;
use proto::{ProtoName, SvcKey};
use sched::ServiceKey;

/// The model's protocol of a protocol name.
pub fn proto_of(p: ProtoName) -> Proto {
    match p {
        ProtoName::Tcp => Proto::Tcp,
        ProtoName::Udp => Proto::Udp,
        ProtoName::Icmp => Proto::Icmp,
    }
}

/// The protocol name of a model protocol.
pub fn proto_name(p: Proto) -> ProtoName {
    match p {
        Proto::Tcp => ProtoName::Tcp,
        Proto::Udp => ProtoName::Udp,
        Proto::Icmp => ProtoName::Icmp,
    }
}

/// The model's key of a service named in a request.
pub fn service_key(k: SvcKey) -> ServiceKey {
    ServiceKey {
        proto: proto_of(k.proto),
        vip: k.vip,
        port: k.port,
    }
}

/// A model service key as the protocol names it.
pub fn svc_key(k: ServiceKey) -> SvcKey {
    SvcKey {
        proto: proto_name(k.proto),
        vip: k.vip,
        port: k.port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ForwardName;
    use sched::ForwardMode;
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    #[test]
    fn keys_and_protocols_round_trip() {
        for p in [ProtoName::Tcp, ProtoName::Udp, ProtoName::Icmp] {
            assert_eq!(proto_name(proto_of(p)), p);
            let k = SvcKey {
                proto: p,
                vip: Ipv4Addr::new(192, 0, 2, 1).into(),
                port: 80,
            };
            assert_eq!(svc_key(service_key(k)), k);
        }
        assert_eq!(proto_of(ProtoName::Udp), Proto::Udp);
    }

    #[test]
    fn the_protocol_names_forwarding_methods_as_the_model_does() {
        // rvsadm reads the Forward column and dest modes with the protocol's names; rvsd with
        // the model's. They must agree on every name and on the column they print.
        for (alias, name) in ForwardName::ALIASES {
            let mode = ForwardMode::from_str(alias).expect("the model knows every alias");
            assert_eq!(mode.ipvsadm_name(), name.column(), "{alias}");
        }
        for mode in [
            ForwardMode::Nat,
            ForwardMode::Dr,
            ForwardMode::Tun,
            ForwardMode::FullNat,
        ] {
            let name = ForwardName::parse(mode.ipvsadm_name()).expect("column reads back");
            assert_eq!(name.column(), mode.ipvsadm_name());
        }
        for unknown in ["snat", "local", ""] {
            assert!(ForwardMode::from_str(unknown).is_err());
            assert_eq!(ForwardName::parse(unknown), None);
        }
    }
}
