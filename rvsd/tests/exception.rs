//! The exception path through a real kernel: rvsd's TAP for its client-side port is moved into
//! a network namespace this test creates and given the DIP. A TCP SYN from the peer to DIP:22
//! (no service there) must reach that kernel through rvsd, and the kernel's answer (a RST, since
//! nothing listens) must come back out of rvsd's data port — after the kernel resolved its
//! gateway with ARP through rvsd too (its request out, the peer's answer copied back in).

mod common;

use common::{is_arp_request_for, Peer, Rvsd};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::*;

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

#[test]
fn director_traffic_goes_through_the_kernel_and_back() {
    let pid = std::process::id();
    let tap = format!("rvsx{}", pid % 100_000);
    let config = |dir: &std::path::Path| {
        format!(
            r#"
[eal]
args = ["--no-pci", "--no-huge", "-m", "512", "--single-file-segments", "--file-prefix", "rvsd-x{pid}"]

[daemon]
table_capacity = 1024
mbufs = 4095
socket = "{dir}/rvsd.sock"
metrics = "off"

[[port]]
name = "wan"
device = "net_vhost0,iface={dir}/wan.sock,queues=1"
exception = "{tap}"

[[interface]]
name = "wan0"
port = "wan"
addrs = ["192.0.2.1/24"]

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"
"#,
            dir = dir.display()
        )
    };
    let rvsd = Rvsd::start("exception", config, &["wan.sock"]);
    let mut p = Peer::start(
        "exception",
        &[(rvsd.dir.join("wan.sock"), "02:00:00:00:fe:fe")],
        1,
    );
    // rvsd is fully up once it answers ARP for its DIP; the TAP carries its data port's MAC.
    let mac = p.resolve(0, ROUTER_MAC, ROUTER, DIP_WAN);

    // The kernel side: the TAP in a namespace of ours, with the DIP and a default route.
    let ns = Netns(format!("rvsx{pid}"));
    ip(&["netns", "add", &ns.0]);
    ip(&["link", "set", &tap, "netns", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", &tap]);
    ip(&["-n", &ns.0, "link", "set", &tap, "up"]);
    ip(&["-n", &ns.0, "route", "add", "default", "via", "192.0.2.254"]);
    let out = Command::new("ip")
        .args(["-n", &ns.0, "link", "show", &tap])
        .output()
        .expect("ip");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        shown.contains(&mac_text),
        "TAP should carry the port MAC {mac_text}: {shown}"
    );

    let mut syn = Frame::tcp(CIP, 40000, DIP_WAN, 22, SYN);
    syn.dst_mac = mac;
    syn.src_mac = ROUTER_MAC;
    let syn = syn.build();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked_gateway = false;
    let rst = 'wait: loop {
        assert!(
            Instant::now() < deadline,
            "no answer from the kernel (gateway ARP seen: {asked_gateway})"
        );
        p.send(0, 0, &syn);
        for f in p.recv(0, 1, Duration::from_millis(500)) {
            if is_arp_request_for(&f, ROUTER) {
                // The kernel resolving its gateway: answer as the router would.
                asked_gateway = true;
                let mut kernel_mac = [0u8; 6];
                kernel_mac.copy_from_slice(&f[22..28]);
                let sender = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
                p.send(
                    0,
                    0,
                    &arp_frame(2, ROUTER_MAC, kernel_mac, ROUTER, kernel_mac, sender),
                );
            } else if f[12..14] == [0x08, 0x00] {
                break 'wait decode(&f);
            }
        }
    };
    assert!(asked_gateway, "the kernel's ARP went out through rvsd");
    assert_eq!(
        (rst.src, rst.sport, rst.dst, rst.dport),
        (DIP_WAN, 22, CIP, 40000)
    );
    assert_eq!(rst.flags & RST, RST, "the kernel refuses the connection");
    assert_eq!((rst.src_mac, rst.dst_mac), (mac, ROUTER_MAC));

    let st = rvsd.stop();
    assert!(st.status.success(), "{}", st.err);
    assert!(st.counter(0, "exception") >= 1, "{}", st.out);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/peer-exception-{pid}"));
}
