//! Finds the system DPDK through pkg-config, generates bindings with bindgen and compiles the
//! C shim that wraps DPDK's static-inline fast-path functions.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

const INSTALL_HINT: &str = "rvs needs DPDK >= 22.11 found through pkg-config (libdpdk). \
On Debian: apt-get install -y dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev \
(or run scripts/install-deps)";

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (-lrte_eal ... as shared libraries) are emitted by the pkg-config crate.
    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .statik(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("error: {INSTALL_HINT}\n\npkg-config said: {e}");
            std::process::exit(1);
        }
    };
    println!("cargo:version={}", lib.version);

    // The raw cflags: the pkg-config crate keeps only -I and -D, but DPDK's also carry
    // `-include rte_config.h` and `-march=...`, which the headers need.
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {pkg_config} --cflags libdpdk ({e}). {INSTALL_HINT}")
        });
    if !out.status.success() {
        panic!(
            "{pkg_config} --cflags libdpdk failed: {}. {INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cflags = split_flags(&String::from_utf8_lossy(&out.stdout));

    let mut build = cc::Build::new();
    build.file("csrc/shim.c").include("csrc").warnings(true);
    for f in &cflags {
        build.flag(f);
    }
    // DPDK's headers use some GNU extensions and unused parameters.
    build.flag_if_supported("-Wno-unused-parameter");
    build.compile("rvs_dpdk_shim");

    let Ok(out_dir) = env::var("OUT_DIR") else {
        eprintln!("error: OUT_DIR is not set: build this crate with cargo");
        std::process::exit(1);
    };
    let out_dir = PathBuf::from(out_dir);
    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // The shim, and the exported (non-inline) DPDK functions rvs calls.
        .allowlist_function("rvs_.*")
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_lcore_count")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_find_next")
        .allowlist_function("rte_eth_dev_is_valid_port")
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_get_name_by_port")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_set_mtu")
        .allowlist_function("rte_eth_dev_get_mtu")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_promiscuous_disable")
        .allowlist_function("rte_eth_promiscuous_get")
        .allowlist_function("rte_eth_allmulticast_enable")
        .allowlist_function("rte_eth_allmulticast_get")
        .allowlist_function("rte_eth_dev_set_mc_addr_list")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_dev_default_mac_addr_set")
        .allowlist_function("rte_eth_dev_rss_hash_conf_get")
        .allowlist_function("rte_eth_dev_rss_reta_query")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_stats_reset")
        .allowlist_function("rte_flow_destroy")
        .clang_macro_fallback()
        .allowlist_var("RTE_ETH_RSS_.*")
        .allowlist_var("RTE_MBUF_F_.*")
        .allowlist_var("RTE_ETH_RETA_GROUP_SIZE")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("RTE_ETH_MQ_RX_.*")
        .allowlist_var("RTE_ETH_TX_OFFLOAD_.*")
        .allowlist_var("RTE_ETH_RX_OFFLOAD_.*")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_QUEUES_PER_PORT")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_ETHER_ADDR_LEN")
        .allowlist_var("RTE_MEMPOOL_NAMESIZE")
        .allowlist_var("RTE_MEMPOOL_CACHE_MAX_SIZE")
        .allowlist_var("E_RTE_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_flow_error")
        .generate()
        .unwrap_or_else(|e| {
            panic!(
                "bindgen failed on DPDK's headers ({e}); is libclang-dev installed? {INSTALL_HINT}"
            )
        });
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .unwrap_or_else(|e| panic!("cannot write bindings.rs to {}: {e}", out_dir.display()));
}

/// Splits a pkg-config flag line on whitespace, keeping `-include <file>` as two arguments.
fn split_flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}
