//! Reload against rvsadm's changes: the configuration file is authoritative for the services
//! it declares (a reload puts them back as the file has them), services made with rvsadm are
//! kept across reloads, rvsadm's answer notes a change to a file-managed service, and a
//! restore (`-R`) leaves file-managed services as the file has them.

use control::config::RvsConfig;
use control::model::Model;
use control::state::ControlState;
use dataplane::stats::WorkerStats;
use proto::{DestSpec, ProtoName, Request, Response, SvcKey};
use std::net::Ipv4Addr;

const BASE: &str = r#"
[daemon]
workers = 1

[[port]]
name = "wan"
device = "net_null0"

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]
"#;

/// A file with `services` (TOML text) after the base.
fn file(services: &str) -> RvsConfig {
    RvsConfig::parse(&format!("{BASE}{services}")).expect("config")
}

fn service(port: u16, dest_weight: u32) -> String {
    format!(
        r#"
[[service]]
proto = "tcp"
vip = "192.0.2.100"
port = {port}
scheduler = "rr"
  [[service.dest]]
  addr = "192.0.2.11"
  port = {port}
  weight = {dest_weight}
  mode = "dr"
"#
    )
}

fn key(proto: ProtoName, port: u16) -> SvcKey {
    SvcKey {
        proto,
        vip: Ipv4Addr::new(192, 0, 2, 100).into(),
        port,
    }
}

fn add_service(k: SvcKey) -> Request {
    Request::AddService {
        service: k,
        scheduler: "wrr".into(),
        persistence: None,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    }
}

fn dest(k: SvcKey, last: u8, weight: u32) -> (SvcKey, DestSpec) {
    (
        k,
        DestSpec {
            addr: Ipv4Addr::new(192, 0, 2, last).into(),
            port: k.port,
            weight,
            mode: "dr".into(),
        },
    )
}

fn add_dest(k: SvcKey, last: u8, weight: u32) -> Request {
    let (service, dest) = dest(k, last, weight);
    Request::AddDest { service, dest }
}

fn edit_dest(k: SvcKey, last: u8, weight: u32) -> Request {
    let (service, dest) = dest(k, last, weight);
    Request::EditDest { service, dest }
}

/// Each service as "PROTO port: dest/weight ...", sorted.
fn listing(s: &mut ControlState) -> Vec<String> {
    match s.handle(Request::List { service: None }) {
        Response::Services { services } => {
            let mut out: Vec<String> = services
                .iter()
                .map(|v| {
                    let dests: Vec<String> = v
                        .dests
                        .iter()
                        .map(|d| format!("{}/{}", d.addr, d.weight))
                        .collect();
                    format!("{:?} {}: {}", v.key.proto, v.key.port, dests.join(" "))
                })
                .collect();
            out.sort();
            out
        }
        other => panic!("-L answered {other:?}"),
    }
}

fn state(cfg: &RvsConfig) -> ControlState {
    let model = Model::new(cfg.director.clone()).expect("model");
    ControlState::new(model, vec![WorkerStats::new()], Vec::new())
}

fn note(r: Response) -> String {
    match r {
        Response::Noted { note } => note,
        other => panic!("expected a note, got {other:?}"),
    }
}

#[test]
fn the_file_wins_for_its_services_and_rvsadms_services_stay() {
    let mut s = state(&file(&service(80, 1)));
    let udp = key(ProtoName::Udp, 53);
    // A service made with rvsadm: no note.
    assert_eq!(s.handle(add_service(udp)), Response::Done);
    assert_eq!(s.handle(add_dest(udp, 12, 2)), Response::Done);
    // A change to the file's service: applied, with a note.
    let n = note(s.handle(edit_dest(key(ProtoName::Tcp, 80), 11, 7)));
    assert_eq!(
        n,
        "tcp 192.0.2.100:80 is managed by the configuration file: a reload puts the file's version back"
    );
    assert_eq!(
        listing(&mut s),
        ["Tcp 80: 192.0.2.11/7", "Udp 53: 192.0.2.12/2"]
    );

    // Reload: the file's service as the file has it, a new file service, rvsadm's kept.
    s.reload(&file(&(service(80, 1) + &service(443, 4))))
        .expect("reload");
    assert_eq!(
        listing(&mut s),
        [
            "Tcp 443: 192.0.2.11/4",
            "Tcp 80: 192.0.2.11/1",
            "Udp 53: 192.0.2.12/2"
        ]
    );
    // A service the file no longer declares goes; rvsadm's still stays.
    s.reload(&file(&service(80, 1))).expect("reload");
    assert_eq!(
        listing(&mut s),
        ["Tcp 80: 192.0.2.11/1", "Udp 53: 192.0.2.12/2"]
    );
    // An rvsadm service deleted with rvsadm is gone for good.
    assert_eq!(
        s.handle(Request::DeleteService { service: udp }),
        Response::Done
    );
    s.reload(&file(&service(80, 1))).expect("reload");
    assert_eq!(listing(&mut s), ["Tcp 80: 192.0.2.11/1"]);
}

#[test]
fn a_service_the_file_takes_over_is_the_files() {
    let mut s = state(&file(&service(80, 1)));
    let k443 = key(ProtoName::Tcp, 443);
    assert_eq!(s.handle(add_service(k443)), Response::Done);
    assert_eq!(s.handle(add_dest(k443, 13, 9)), Response::Done);
    // The file now declares it: the file's version replaces rvsadm's.
    s.reload(&file(&(service(80, 1) + &service(443, 4))))
        .expect("reload");
    assert_eq!(
        listing(&mut s),
        ["Tcp 443: 192.0.2.11/4", "Tcp 80: 192.0.2.11/1"]
    );
    // From then on it is file-managed: a change is noted, and a file without it removes it.
    note(s.handle(edit_dest(k443, 11, 2)));
    s.reload(&file(&service(80, 1))).expect("reload");
    assert_eq!(listing(&mut s), ["Tcp 80: 192.0.2.11/1"]);
}

#[test]
fn clear_is_noted_and_a_reload_brings_the_files_services_back() {
    let mut s = state(&file(&(service(80, 1) + &service(443, 4))));
    let n = note(s.handle(Request::Clear));
    assert!(
        n.starts_with("tcp 192.0.2.100:80, tcp 192.0.2.100:443 are managed"),
        "{n}"
    );
    assert!(listing(&mut s).is_empty());
    s.reload(&file(&(service(80, 1) + &service(443, 4))))
        .expect("reload");
    assert_eq!(
        listing(&mut s),
        ["Tcp 443: 192.0.2.11/4", "Tcp 80: 192.0.2.11/1"]
    );
}

#[test]
fn a_restore_leaves_file_services_as_the_file_has_them() {
    let mut s = state(&file(&service(80, 1)));
    let tcp80 = key(ProtoName::Tcp, 80);
    let udp = key(ProtoName::Udp, 53);
    // What `rvsadm -S` saved: the file's service (edited since) and one made with rvsadm.
    let saved = Request::Batch {
        requests: vec![
            add_service(tcp80),
            add_dest(tcp80, 11, 5),
            add_service(udp),
            add_dest(udp, 12, 2),
        ],
    };
    let n = note(s.handle(saved.clone()));
    assert_eq!(
        n,
        "2 command(s) for tcp 192.0.2.100:80 left out: the configuration file manages it"
    );
    assert_eq!(
        listing(&mut s),
        ["Tcp 80: 192.0.2.11/1", "Udp 53: 192.0.2.12/2"]
    );
    // The rest is still all or nothing: restoring again finds UDP 53 there, and nothing
    // changes.
    match s.handle(saved) {
        Response::Error { message, .. } => {
            assert!(message.starts_with("Service already exists"), "{message}")
        }
        other => panic!("a duplicate restore answered {other:?}"),
    }
    assert_eq!(
        listing(&mut s),
        ["Tcp 80: 192.0.2.11/1", "Udp 53: 192.0.2.12/2"]
    );
}
