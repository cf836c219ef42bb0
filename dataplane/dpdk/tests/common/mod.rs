//! Shared setup of the DPDK integration tests: each test file is its own process and starts
//! the EAL once, with flags that need no hugepages, no PCI, and leave no shared files.
#![allow(dead_code)]

use dpdk::Eal;

/// EAL flags for a test process named `name` with the given `--vdev` devices: no PCI, no
/// hugepages (IOVA as VA), 512 MB, no shared config files, no telemetry socket, one lcore,
/// and a file prefix unique to this process.
pub fn eal_args(name: &str, vdevs: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--file-prefix",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    a.push(prefix(name));
    for v in vdevs {
        a.push("--vdev".to_owned());
        a.push((*v).to_owned());
    }
    a
}

/// The file prefix of this test process.
pub fn prefix(name: &str) -> String {
    format!("rvs-{name}-{}", std::process::id())
}

/// Starts the EAL with [`eal_args`], then removes the (empty, with `--no-shconf`) runtime
/// directory the EAL made for the prefix.
pub fn init(name: &str, vdevs: &[&str]) -> Eal {
    let args = eal_args(name, vdevs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = match Eal::init(&args) {
        Ok(eal) => eal,
        Err(e) => panic!("EAL init failed: {e}"),
    };
    remove_runtime_dir(name);
    eal
}

/// Removes the EAL's runtime directory for this process's prefix, if it is empty.
pub fn remove_runtime_dir(name: &str) {
    let p = prefix(name);
    let mut dirs = vec![format!("/var/run/dpdk/{p}"), format!("/tmp/dpdk/{p}")];
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        dirs.push(format!("{x}/dpdk/{p}"));
    }
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}
