//! Prints what each DPDK port can do: driver, queues, RSS, offloads, MTU, rte_flow.
//!
//! ```sh
//! cargo run -p dpdk --example port_info -- --no-pci --no-huge -m 256 --no-shconf \
//!     --file-prefix info --vdev net_ring0 --vdev net_null0
//! ```

use dpdk::port::PortConf;
use dpdk::{Eal, Flow, L4Proto, Mempool, Port};
use std::net::Ipv4Addr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = match Eal::init(&args) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let pool = match Mempool::new("port_info", 4095, 32, Mempool::DEFAULT_DATA_ROOM, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for id in Port::ids() {
        let mut port = match Port::open(id) {
            Ok(p) => p,
            Err(e) => {
                println!("port {id}: {e}");
                continue;
            }
        };
        println!("port {id} `{}`", port.name());
        match port.info() {
            Ok(i) => println!("  {i:?}"),
            Err(e) => println!("  info: {e}"),
        }
        println!("  mac {:02x?} link_up {}", port.mac(), port.link_up());
        match port.rss_key() {
            Ok(k) => println!("  rss_key {} bytes", k.len()),
            Err(e) => println!("  rss_key: {e}"),
        }
        match port.reta() {
            Ok(r) => println!("  reta {} entries", r.len()),
            Err(e) => println!("  reta: {e}"),
        }
        let conf = PortConf {
            rx_desc: 256,
            tx_desc: 256,
            ..PortConf::default()
        };
        if let Err(e) = port.configure(&conf, &pool) {
            println!("  configure: {e}");
        }
        match Flow::steer_ipv4_dst_port(
            &port,
            Ipv4Addr::new(10, 0, 0, 1),
            L4Proto::Tcp,
            0,
            0xf000,
            0,
        ) {
            Ok(_) => println!("  rte_flow: ETH/IPV4/TCP -> QUEUE accepted"),
            Err(e) => println!("  rte_flow: {e}"),
        }
        if let Err(e) = port.close() {
            println!("  close: {e}");
        }
    }
    drop(pool);
    drop(eal);
    ExitCode::SUCCESS
}
