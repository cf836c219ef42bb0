//! The example configurations (examples/*.toml): `rvsd --check-config` accepts every one, and
//! each shows what its name says (DR dests in dr.toml, a keepalived pair in ha.toml...).

use control::config::RvsConfig;
use sched::ForwardMode;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn example(name: &str) -> RvsConfig {
    let path = examples_dir().join(name);
    RvsConfig::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every dest of every service, with its service's VIP.
fn dests(c: &RvsConfig) -> Vec<(IpAddr, IpAddr, ForwardMode)> {
    c.director
        .services
        .iter()
        .flat_map(|s| s.dests().iter().map(move |d| (s.key().vip, d.addr, d.mode)))
        .collect()
}

#[test]
fn rvsd_checks_every_example_as_valid() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "cluster.toml",
        "dr.toml",
        "fullnat.toml",
        "ha.toml",
        "ipv6.toml",
        "nat.toml",
        "nat64.toml",
        "rvsd.toml",
        "tun.toml",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing: {names:?}"
        );
    }
    for (path, name) in files.iter().zip(&names) {
        let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--check-config")
            .arg(path)
            .output()
            .expect("run rvsd");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && stdout.contains(": configuration OK ("),
            "{name}: {}{stdout}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn each_mode_example_forwards_in_its_mode() {
    for (file, mode) in [
        ("dr.toml", ForwardMode::Dr),
        ("tun.toml", ForwardMode::Tun),
        ("nat.toml", ForwardMode::Nat),
        ("fullnat.toml", ForwardMode::FullNat),
    ] {
        let d = dests(&example(file));
        assert!(
            !d.is_empty() && d.iter().all(|(_, _, m)| *m == mode),
            "{file}: {d:?}"
        );
    }
    let c = example("fullnat.toml");
    assert!(!c.director.lips.is_empty(), "FullNAT needs LIPs");
}

#[test]
fn the_ipv6_example_has_nat66_and_fullnat66_and_the_nat64_one_translates() {
    let six = dests(&example("ipv6.toml"));
    for mode in [ForwardMode::Nat, ForwardMode::FullNat] {
        assert!(
            six.iter()
                .any(|(vip, rip, m)| vip.is_ipv6() && rip.is_ipv6() && *m == mode),
            "ipv6.toml has no IPv6 {mode:?} service: {six:?}"
        );
    }
    assert!(!example("ipv6.toml").director.lips6.is_empty());
    let c = example("nat64.toml");
    let d = dests(&c);
    assert!(
        !d.is_empty()
            && d.iter()
                .all(|(vip, rip, m)| vip.is_ipv6() && rip.is_ipv4() && *m == ForwardMode::FullNat),
        "nat64.toml: {d:?}"
    );
    assert!(!c.director.lips.is_empty(), "NAT64 takes IPv4 LIPs");
}

#[test]
fn the_ha_and_cluster_examples_sync_and_manage_their_addresses() {
    let ha = example("ha.toml");
    assert!(ha.sync.master && ha.sync.backup, "a pair syncs both ways");
    assert_eq!(ha.director.managed.len(), 2, "the VIP and the LIP");
    assert!(ha.cluster.is_none());
    let cl = example("cluster.toml");
    assert!(cl.sync.master && cl.sync.backup, "all-to-all sync");
    let settings = cl.cluster.as_ref().expect("[cluster]");
    assert_eq!(settings.table, 100);
    assert_eq!(cl.director.peer_lips.len(), 2);
    assert!(
        cl.director
            .services
            .iter()
            .all(|s| s.sched().to_string() == "mh"),
        "the directors agree on new flows"
    );
}
