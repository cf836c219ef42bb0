"""Scenarios and checks shared by rvs's two labs: the network-namespace lab (lab/run) and the
container lab (docker/run). Both exercise the same checks on their own topology.

A *site* is a topology with rvsd running on it. It provides:

    site.vip, site.rs (RIPs of rs1..rs3), site.dip_lan, site.router_lan (or None),
    site.workers, site.slack (seconds of scheduling slack for timing checks)
    site.client_sh(script, timeout) -> stdout    run a shell script on the client
    site.rvsadm(args, check=True) -> CompletedProcess
    site.reload(extra_toml)                      rvsadm --reload with the base config + extra
    site.set_rs_routes(via)                      real servers' default route (None: none)
    site.set_dr_vip(on)                          VIP on the servers' loopback + ARP sysctls
    site.stop_http(i) / site.start_http(i)       stop/start rs<i>'s HTTP server
    site.capture_ipip(i, seconds) -> [dict]      IPIP frames seen on rs<i>
    site.set_tun_decap(on) -> str                servers decapsulate IPIP (VIP on loopback);
                                                 returns how: the kernel's tunl0, or a
                                                 userspace decapsulator where it has no IPIP
    site.log(msg)

and, for the scenarios only the network-namespace lab runs (pmtu-*, udp-unreachable,
synproxy, proxy-protocol, time-wait, fragments, prometheus):

    site.cip, site.lip                           the client's address, the FullNAT LIP
    site.big_path, site.big_size, site.big_sha256   a large file every server serves
    site.rs_sh(i, script) -> stdout              run a shell script on rs<i>
    site.rs_home(i)                              rs<i>'s nginx directory (its pp.log: the
                                                 access log of its PROXY protocol port 8081)
    site.set_client_path_mtu(mtu)                the router's route to the client gets a
                                                 locked MTU (None: removed again)
    site.drop_router_icmp(on)                    the router's own ICMP to the VIP blackholed
    site.restart_rvsd(extra, wan_tap=False, pcap=False, metrics="off")
                                                 rvsd restarted with the base config + extra
                                                 (time-wait; vrrp with a TAP on the wan port;
                                                 fragments on net_pcap ports, which hand rvsd
                                                 IPv4 fragments as they came; prometheus with
                                                 its metrics listener on the director's
                                                 loopback)

and for vrrp: site.tmp, site.dip_wan, site.router_wan, site.dir_ns, site.dir_sh(script),
site.router_sh(script), site.spawn_in(where, args, tag) (where "host": the lab's own
namespace), site.stop_proc(tag), site.rvsd_pid().

ipv6-director uses those too, and site.dip6_wan, site.dip6_lan (the director's IPv6 DIPs, in
rvsd's config beside the IPv4 ones), site.router_wan6 (the router's IPv6 address on the wan
link) and site.rs1_6 (rs1's on the lan); the director's kernel has IPv6 off on its data veths.

ipv6-dr, ipv6-fullnat, ipv6-synproxy and ipv6-proxy-protocol use site.vip6, site.cip6, site.rs6 and site.lip6 (the IPv6 VIP,
client, servers and LIP),
site.router_lan6, site.set_rs_routes6(via, vip_on_lo=False) (the servers' IPv6 default route,
None: none; with the IPv6 VIP on their loopback for DR), site.rvsadm(args, check, stdin) and
site.big_path/big_size/big_sha256. ipv6-nat uses them too, ipv6-tun also
site.set_tun_decap6(on) (the servers decapsulate IPv6-in-IPv6 and hold the VIP); pmtu-fullnat6 also
site.set_client_path_mtu6(mtu) (the router's IPv6 route to the client with a locked MTU).
nat64 and pmtu-nat64 use site.rs and site.lip (the servers' IPv4 addresses and the IPv4 LIP)
with the IPv6 ones.
"""

import json
import math
import re
import os
import shlex
import shutil
import subprocess
import threading
import time


class Checks:
    """Traffic, tables and pass/fail bookkeeping, over a site."""

    def __init__(self, site):
        self.site = site
        self.results = []
        # UDP clients bind explicit source ports, never the same twice in a run: a port the
        # kernel picked again would hit a session that (rightly) outlived its scenario.
        self.next_udp_port = 20000

    def http_timed(self, n, port=80, timeout=2):
        """n sequential curl requests from the client: [(unix time, "rsN" or "ERR")]."""
        s = self.site
        out = s.client_sh(
            f"for i in $(seq {n}); do t=$(date +%s.%N); "
            f"r=$(curl -s -m {timeout} http://{s.vip}:{port}/ || echo ERR); echo \"$t $r\"; done",
            timeout=n * (timeout + 1) + 30,
        )
        got = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                got.append((float(parts[0]), parts[1] if parts[1].startswith("rs") else "ERR"))
        got += [(0.0, "ERR")] * max(0, n - len(got))
        return got

    def http(self, n, port=80, timeout=2):
        """n sequential curl requests from the client: (per-RS counts, errors)."""
        counts, errors = {}, 0
        for _, name in self.http_timed(n, port, timeout):
            if name == "ERR":
                errors += 1
            else:
                counts[name] = counts.get(name, 0) + 1
        return counts, errors

    def udp(self, n, port=53, timeout=1.0):
        """n UDP requests from distinct client ports: (per-RS counts, errors)."""
        first = self.next_udp_port
        self.next_udp_port += n
        code = (
            "import socket,json\n"
            "c,e={},0\n"
            f"for i in range({n}):\n"
            "    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"    s.bind(('0.0.0.0',{first}+i))\n"
            f"    s.settimeout({timeout})\n"
            f"    s.sendto(b'hello',('{self.site.vip}',{port}))\n"
            "    try:\n"
            "        d,_=s.recvfrom(64); k=d.decode().strip(); c[k]=c.get(k,0)+1\n"
            "    except OSError:\n"
            "        e+=1\n"
            "    s.close()\n"
            "print(json.dumps([c,e]))\n"
        )
        out = self.site.client_sh(f"python3 -c \"{code}\"", timeout=n * timeout + 30)
        counts, errors = json.loads(out.strip().splitlines()[-1])
        return counts, errors

    def table(self, title, weights, rows):
        s = self.site
        s.log(f"\n== {title}")
        total = sum(weights)
        s.log("RS         weight  expected " + "".join(f"{k:>8}" for k, _ in rows))
        for i, w in enumerate(weights):
            name = f"rs{i + 1}"
            line = f"{s.rs[i]:<10} {w:>6} {100 * w / total:>8.1f}% "
            line += "".join(f"{c.get(name, 0):>8}" for _, (c, _) in rows)
            s.log(line)
        s.log("errors               " + "".join(f"{e:>8}" for _, (_, e) in rows))

    def expect(self, name, ok, detail):
        self.results.append((name, ok, detail))
        self.site.log(("PASS " if ok else "FAIL ") + f"{name}: {detail}")

    def check_split(self, name, counts, errors, weights):
        """Counts per RS against the weights. With one worker the scheduler's sequence is
        IPVS's: exact over whole cycles (sum of weights / gcd), off by at most one request
        otherwise. With several workers each has its own position: within 25 %. Never an
        error."""
        n = sum(counts.values()) + errors
        want = {f"rs{i + 1}": n * w / sum(weights) for i, w in enumerate(weights)}
        g = 0
        for w in weights:
            g = math.gcd(g, w)
        cycle = sum(weights) // max(g, 1)
        if self.site.workers == 1:
            slack = 0 if n % cycle == 0 else 1
            ok = errors == 0 and all(abs(counts.get(k, 0) - v) <= slack for k, v in want.items())
        else:
            ok = errors == 0 and all(
                abs(counts.get(k, 0) - v) <= max(2, 0.25 * v) for k, v in want.items()
            )
        shown = {k: round(v, 1) for k, v in want.items()}
        self.expect(name, ok, f"{counts} errors={errors} expected {shown}")

    def summary(self):
        passed = sum(1 for _, ok, _ in self.results if ok)
        return passed, len(self.results) - passed


def service(site, sched, mode, weights, vport=80, rport=8080, udp=False):
    proto = "-u" if udp else "-t"
    site.rvsadm(["-A", proto, f"{site.vip}:{vport}", "-s", sched])
    for addr, w in zip(site.rs, weights):
        site.rvsadm(["-a", proto, f"{site.vip}:{vport}", "-r", f"{addr}:{rport}", mode, "-w", str(w)])


def check_order(site, ck, name, want):
    """With one worker, the next len(want) requests go to the RSs in `want`'s order: the pick
    sequence of a Linux director with the same dests added in the same order (the service
    lists them newest first; sched/src/wrr.rs and rr.rs work the sequences out)."""
    if site.workers != 1:
        return
    got = [r for _, r in ck.http_timed(len(want))]
    ck.expect(name, got == want, f"{got}, a Linux director's {want}")


def fullnat_rr(site, ck, n):
    """FullNAT, rr, HTTP and UDP; the servers have no route back to clients. rs1, rs2, rs3
    added in that order are picked rs3, rs2, rs1 (newest first), as by IPVS."""
    site.set_rs_routes(None)
    service(site, "rr", "--fullnat", [1, 1, 1])
    service(site, "rr", "--fullnat", [1, 1, 1], vport=53, rport=53, udp=True)
    check_order(site, ck, "fullnat-rr order", ["rs3", "rs2", "rs1"])
    h, u = ck.http(n), ck.udp(n)
    ck.table("FullNAT, rr (servers have no route to the client subnet)", [1, 1, 1], [("http", h), ("udp", u)])
    ck.check_split("fullnat-rr http", *h, [1, 1, 1])
    ck.check_split("fullnat-rr udp", *u, [1, 1, 1])


def fullnat_wrr(site, ck, n):
    """FullNAT, wrr 3:2:1. rs1 (3), rs2 (2), rs3 (1) added in that order leave IPVS's wrr at
    cw 1 (adding rs1: di 3, mw 1; then di 1, mw 3, cw stays 1), so a cycle from the list head
    is rs3 rs2 rs1 (cw 1), rs1 (cw 3), rs2 rs1 (cw 2)."""
    site.set_rs_routes(None)
    service(site, "wrr", "--fullnat", [3, 2, 1])
    check_order(site, ck, "fullnat-wrr order", ["rs3", "rs2", "rs1", "rs1", "rs2", "rs1"])
    h = ck.http(n)
    ck.table("FullNAT, wrr 3:2:1", [3, 2, 1], [("http", h)])
    ck.check_split("fullnat-wrr http", *h, [3, 2, 1])


def nat(site, ck, n):
    """NAT: the servers' gateway is the director."""
    site.set_rs_routes(site.dip_lan)
    service(site, "wrr", "-m", [1, 1, 2])
    service(site, "rr", "-m", [1, 1, 1], vport=53, rport=53, udp=True)
    h, u = ck.http(n), ck.udp(n)
    ck.table("NAT, wrr 1:1:2 (servers' gateway is the director)", [1, 1, 2], [("http", h), ("udp", u)])
    ck.check_split("nat-wrr http", *h, [1, 1, 2])
    ck.check_split("nat-rr udp", *u, [1, 1, 1])


def dr(site, ck, n):
    """DR: VIP on the servers' loopback, replies straight back through the router."""
    site.set_rs_routes(site.router_lan)
    site.set_dr_vip(True)
    try:
        service(site, "rr", "-g", [1, 1, 1], vport=80, rport=80)
        h = ck.http(n)
        ck.table("DR, rr (VIP on the servers' loopback, arp_ignore=1/arp_announce=2)", [1, 1, 1], [("http", h)])
        ck.check_split("dr-rr http", *h, [1, 1, 1])
    finally:
        site.set_dr_vip(False)


def tun(site, ck, n):
    """TUN: IPIP frames captured and decoded on each server (no IPIP module here)."""
    site.set_rs_routes(site.router_lan)
    service(site, "rr", "-i", [1, 1, 1], vport=80, rport=80)
    caps = {}
    threads = [
        threading.Thread(target=lambda i=i: caps.__setitem__(i, site.capture_ipip(i, 4))) for i in range(1, 4)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    ck.http(min(n, 9), timeout=1)  # unanswered: the servers cannot decapsulate
    for t in threads:
        t.join()
    site.log("\n== TUN, rr: IPIP frames captured on each server (this kernel cannot decapsulate)")
    for i in range(1, 4):
        site.log(f"{site.rs[i - 1]:<10} {len(caps.get(i, [])):>4} frames")
    good = all(
        c["osrc"] == site.dip_lan
        and c["odst"] == site.rs[i - 1]
        and c["idst"] == site.vip
        and c["iproto"] == 6
        and c["dport"] == 80
        for i in range(1, 4)
        for c in caps.get(i, [])
    )
    counts = {f"rs{i}": len(caps.get(i, [])) for i in range(1, 4)}
    ck.expect(
        "tun-rr ipip",
        good and all(v > 0 for v in counts.values()),
        f"{counts}; outer {site.dip_lan}->RIP, inner ->{site.vip}:80 untouched: {good}",
    )


def tun_roundtrip(site, ck, n):
    """TUN: the full round trip, the servers decapsulating and answering the client directly."""
    site.set_rs_routes(site.router_lan)
    how = site.set_tun_decap(True)
    try:
        service(site, "rr", "-i", [1, 1, 1], vport=80, rport=80)
        h = ck.http(n)
        ck.table(f"TUN, rr: full round trip (servers decapsulate with {how})", [1, 1, 1], [("http", h)])
        ck.check_split("tun-rr http", *h, [1, 1, 1])
    finally:
        site.set_tun_decap(False)


def failover(site, ck, n):
    """A server stops mid-run: the health check takes it out; errors only while detecting."""
    site.set_rs_routes(None)
    extra = f'\n[[service]]\nproto = "tcp"\nvip = "{site.vip}"\nport = 80\nscheduler = "rr"\n'
    for a in site.rs:
        extra += f'  [[service.dest]]\n  addr = "{a}"\n  port = 8080\n  mode = "fullnat"\n'
    extra += '  [service.check]\n  type = "http"\n  interval = 0.3\n  timeout = 0.3\n  rise = 2\n  fall = 2\n'
    site.reload(extra)
    time.sleep(1.5)
    before, e0 = ck.http(n // 2)
    site.stop_http(2)
    stopped = time.time()
    # Requests go on while the check detects it: fall × interval, plus a probe's timeout,
    # plus the site's scheduling slack (busy-polling DPDK processes share the cores). Errors
    # are allowed in that window only.
    window = 2 * 0.3 + 0.3 + site.slack
    during = []
    while time.time() < stopped + window + 0.5:  # keep asking through the whole window
        during += ck.http_timed(10, timeout=1)
    errs = [t - stopped for t, r in during if r == "ERR"]
    late = [round(d, 2) for d in errs if d > window]
    after, e2 = ck.http(n // 2)
    site.log("\n== failover: rs2's HTTP server stops mid-run (check: http every 0.3 s, fall 2)")
    site.log(f"before: {before} errors={e0}")
    site.log(f"during: {len(errs)} errors, the last {max(errs, default=0):.2f} s after the stop")
    site.log(f"after:  {after} errors={e2}")
    site.log(site.rvsadm(["--health"]).stdout.rstrip())
    ck.expect("failover before", e0 == 0 and len(before) == 3, f"{before} errors={e0}")
    ck.expect(
        "failover detection",
        not late,
        f"{len(errs)} errors, all within {window:.1f} s of the stop (late: {late})",
    )
    ck.expect("failover after", e2 == 0 and "rs2" not in after, f"{after} errors={e2}")
    site.start_http(2)
    time.sleep(1.5)
    back, e3 = ck.http(n // 2)
    site.log(f"back:   {back} errors={e3}")
    ck.expect("failover return", e3 == 0 and "rs2" in back, f"{back} errors={e3}")


def reload_under_load(site, ck, n):
    """Weight change and reload while a keep-alive connection is open: no reset."""
    site.set_rs_routes(None)
    service(site, "wrr", "--fullnat", [1, 1, 1])
    code = (
        "import socket,time,sys\n"
        f"s=socket.create_connection(('{site.vip}',80),timeout=3)\n"
        "names=[]\n"
        "for i in range(6):\n"
        "    s.sendall(b'GET / HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n')\n"
        "    d=b''\n"
        "    while not (b'\\r\\n\\r\\n' in d and d.endswith(b'\\n') and d.split(b'\\r\\n\\r\\n',1)[1]):\n"
        "        c=s.recv(512)\n"
        "        if not c:\n"
        "            print('RESET'); sys.exit(1)\n"
        "        d+=c\n"
        "    names.append(d.split(b'\\r\\n\\r\\n',1)[1].decode().strip())\n"
        "    time.sleep(0.5)\n"
        "print(' '.join(names))\n"
    )
    holder = threading.Thread(target=lambda: held.append(site.client_sh(f"python3 -c \"{code}\"", timeout=60)))
    held = []
    holder.start()
    time.sleep(0.8)
    site.rvsadm(["-e", "-t", f"{site.vip}:80", "-r", f"{site.rs[0]}:8080", "--fullnat", "-w", "5"])
    extra = f'\n[[service]]\nproto = "tcp"\nvip = "{site.vip}"\nport = 80\nscheduler = "wrr"\n'
    for a, w in zip(site.rs, [1, 0, 3]):
        extra += f'  [[service.dest]]\n  addr = "{a}"\n  port = 8080\n  weight = {w}\n  mode = "fullnat"\n'
    site.reload(extra)
    holder.join()
    names = held[0].split() if held else []
    same = len(names) == 6 and len(set(names)) == 1 and names[0].startswith("rs")
    h = ck.http(n)
    ck.table("reload under load: weights 1:1:1 → (edit 5:1:1) → reload 1:0:3", [1, 0, 3], [("http", h)])
    ck.expect("reload keeps the open connection", same, f"keep-alive answers: {' '.join(names)}")
    ck.check_split("reload new weights", *h, [1, 0, 3])


def downloads(site, k, timeout):
    """k sequential downloads of the large file from the client: [(curl exit, size, sha256)]."""
    out = site.client_sh(
        f"f=$(mktemp); for i in $(seq {k}); do rm -f $f; "
        f"curl -sf -m {timeout} -o $f http://{site.vip}{site.big_path}; rc=$?; "
        "echo $rc $(stat -c %s $f 2>/dev/null || echo 0) $(sha256sum < $f 2>/dev/null | cut -c1-64); "
        "done; rm -f $f",
        timeout=k * (timeout + 2) + 30,
    )
    got = []
    for line in out.splitlines():
        parts = line.split() + ["", "", ""]
        got.append((int(parts[0]), int(parts[1] or 0), parts[2]))
    return got


def pmtu(site, ck, mode):
    """Path-MTU discovery through the director: the router's link to the client takes 1280
    bytes, the servers send 1500-byte DF segments. The router's fragmentation-needed (sent to
    the VIP) must reach the server with its quote rewritten to the server's own segment
    (RIP:rport → LIP:lport in FullNAT, RIP:rport → CIP:cport in NAT), from which the server
    learns the path MTU (its route cache shows `mtu 1280` toward the LIP or the client).
    Control: with the router's ICMP blackholed (what the servers see when nothing is
    relayed) a download stalls and times out: a PMTU black hole."""
    nat = mode == "-m"
    label = "pmtu-nat" if nat else "pmtu-fullnat"
    peer = site.cip if nat else site.lip  # whom the servers send to
    site.set_rs_routes(site.dip_lan if nat else None)
    service(site, "rr", mode, [1, 1, 1])
    for i in range(1, 4):
        site.rs_sh(i, "ip route flush cache")
    site.set_client_path_mtu(1280)
    try:
        site.drop_router_icmp(True)
        try:
            blackholed = downloads(site, 1, 3)
        finally:
            site.drop_router_icmp(False)
        for i in range(1, 4):
            site.rs_sh(i, "ip route flush cache")
        got = downloads(site, 6, 10)
        learned = {}
        for i in range(1, 4):
            route = site.rs_sh(i, f"ip route get {peer}")
            learned[f"rs{i}"] = "mtu 1280" in route
    finally:
        site.set_client_path_mtu(None)
    good = [g for g in got if g == (0, site.big_size, site.big_sha256)]
    kind = "NAT" if nat else "FullNAT"
    site.log(f"\n== {kind}: path MTU 1280 between router and client, servers send 1500-byte DF segments")
    site.log(f"blackholed ICMP: curl exit {blackholed[0][0] if blackholed else '?'} after "
             f"{blackholed[0][1] if blackholed else 0} of {site.big_size} bytes")
    for rc, size, digest in got:
        site.log(f"download: curl exit {rc}, {size} bytes, sha256 {digest[:16]}...")
    site.log(f"servers' route to {peer} learned mtu 1280: {learned}")
    ck.expect(
        f"{label} control",
        len(blackholed) == 1 and blackholed[0][0] != 0,
        f"without the ICMP the download stalls: curl exit {blackholed[0][0] if blackholed else '?'}",
    )
    ck.expect(
        f"{label} downloads",
        len(good) == 6,
        f"{len(good)}/6 downloads of {site.big_size} bytes complete with the right sha256",
    )
    ck.expect(f"{label} learned", all(learned.values()), f"route cache mtu 1280 toward {peer}: {learned}")


def pmtu_fullnat(site, ck, n):
    """FullNAT: a router's fragmentation-needed reaches the server as an error from the LIP."""
    pmtu(site, ck, "--fullnat")


def pmtu_nat(site, ck, n):
    """NAT: a router's fragmentation-needed reaches the server about its segment to the client."""
    pmtu(site, ck, "-m")


def udp_unreachable(site, ck, n):
    """UDP to a closed port: the server's port unreachable reaches the client (ECONNREFUSED).

    FullNAT and NAT, a connected client socket each time; a working UDP service still answers."""
    site.set_rs_routes(site.dip_lan)  # NAT needs it; FullNAT goes to the LIP on the link
    service(site, "rr", "--fullnat", [1, 1, 1], vport=5300, rport=5399, udp=True)
    service(site, "rr", "-m", [1, 1, 1], vport=5301, rport=5399, udp=True)
    service(site, "rr", "--fullnat", [1, 1, 1], vport=53, rport=53, udp=True)
    k = 6
    first = ck.next_udp_port
    ck.next_udp_port += 3 * k
    code = (
        "import socket,json,time\n"
        "out={}\n"
        "for j,port in enumerate((5300,5301,53)):\n"
        "    r=out.setdefault(str(port),{})\n"
        f"    for i in range({k}):\n"
        "        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"        s.bind(('0.0.0.0',{first}+j*{k}+i))\n"
        "        s.settimeout(2)\n"
        f"        s.connect(('{site.vip}',port))\n"
        "        s.send(b'hello')\n"
        "        try:\n"
        "            a=s.recv(64).decode().strip()\n"
        "        except ConnectionRefusedError:\n"
        "            a='refused'\n"
        "        except OSError as e:\n"
        "            a=type(e).__name__\n"
        "        r[a]=r.get(a,0)+1\n"
        "        s.close()\n"
        "        time.sleep(0.05)\n"
        "print(json.dumps(out))\n"
    )
    out = site.client_sh(f"python3 -c \"{code}\"", timeout=3 * k * 3 + 30)
    try:
        got = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        got = {}
    site.log("\n== UDP to a port without a listener (5399 on every server): connected client sockets")
    for port, what in (("5300", "FullNAT 5300 -> 5399"), ("5301", "NAT     5301 -> 5399"), ("53", "FullNAT 53 -> 53")):
        site.log(f"{what:<22} {got.get(port, {})}")
    ck.expect("udp-unreachable fullnat", got.get("5300") == {"refused": k}, f"{got.get('5300')}: ECONNREFUSED on all {k}")
    ck.expect("udp-unreachable nat", got.get("5301") == {"refused": k}, f"{got.get('5301')}: ECONNREFUSED on all {k}")
    answered = got.get("53", {})
    ck.expect(
        "udp-unreachable working service",
        sum(answered.values()) == k and all(a.startswith("rs") for a in answered),
        f"{answered}",
    )

# ICMPv6 echo from this namespace (no `ping` needed): argv[2] echo requests to argv[1],
# argv[3] seconds apart, then argv[4] seconds for the last replies. Prints JSON: requests
# sent, replies (distinct sequence numbers answered), duplicates, destination unreachables
# about them, round-trip times in ms.
PING6_PY = r"""
import json, os, select, socket, struct, sys, time
dst, count, interval, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
want = socket.inet_pton(socket.AF_INET6, dst)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # the kernel sums it
ident = os.getpid() & 0xFFFF
out = {"sent": 0, "replies": 0, "dups": 0, "unreachable": 0, "send_errors": 0, "rtt_ms": []}
sent_at, seen = {}, set()
def receive(until):
    while True:
        left = until - time.time()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return
        d, a = s.recvfrom(2048)
        if len(d) < 8:
            continue
        if d[0] == 129 and socket.inet_pton(socket.AF_INET6, a[0].split("%")[0]) == want:
            i, q = struct.unpack("!HH", d[4:8])
            if i != ident or q not in sent_at:
                continue
            if q in seen:
                out["dups"] += 1
            else:
                seen.add(q)
                out["replies"] += 1
                out["rtt_ms"].append(round(1000 * (time.time() - sent_at[q]), 2))
        elif d[0] == 1 and len(d) >= 56 and d[48] == 128 and struct.unpack("!H", d[52:54])[0] == ident:
            out["unreachable"] += 1
for q in range(1, count + 1):
    sent_at[q] = time.time()
    try:
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, q) + bytes(range(56)), (dst, 0))
        out["sent"] += 1
    except OSError:
        out["send_errors"] += 1
    receive(time.time() + interval)
receive(time.time() + wait)
print(json.dumps(out))
"""

# A TCP echo listener on [argv[1]]:argv[2] for argv[3] seconds (the bind retried until the
# address is usable): each connection's bytes, read to the client's FIN, are sent back
# whole. Prints "listening", then a JSON line per connection: peer address and byte count.
ECHO6_SERVER_PY = r"""
import json, socket, sys, time
addr, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
while True:
    try:
        s.bind((addr, port))
        break
    except OSError:
        if time.time() > end:
            raise
        time.sleep(0.1)
s.listen(4)
print("listening", flush=True)
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        c, peer = s.accept()
    except OSError:
        break
    c.settimeout(5)
    data = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
        c.sendall(data)
    except OSError:
        pass
    c.close()
    print(json.dumps({"peer": peer[0], "bytes": len(data)}), flush=True)
"""

# A TCP client: argv[3] random bytes to [argv[1]]:argv[2], its write side shut, the echo read
# to the end. Prints JSON: bytes sent and received, whether they came back intact, the
# client's own address, seconds taken, or the error.
ECHO6_CLIENT_PY = r"""
import json, os, socket, sys, time
addr, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
out = {"sent": size, "received": 0, "intact": False}
t = time.time()
try:
    c = socket.create_connection((addr, port), timeout=5)
    out["local"] = c.getsockname()[0]
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        back += d
    out.update(received=len(back), intact=back == data)
except OSError as e:
    out["error"] = f"{type(e).__name__}: {e}"
out["secs"] = round(time.time() - t, 3)
print(json.dumps(out))
"""


def ipv6_director(site, ck, n):
    """IPv6 to the director's own addresses: neighbour discovery, echo, the kernel path.

    The DIP6s sit beside the IPv4 DIPs on both interfaces. Restarted with empty tables, rvsd
    answers 3 echoes from a router that does not solicit it (a permanent entry) by
    soliciting the router first (neighbour_solicits grows). rvsd answers the neighbour
    solicitations for them with its port's MAC and their echo requests itself — 5 ICMPv6 echoes from the router to the wan DIP6 and from
    rs1 to the lan DIP6 all answered, the neighbour entries name the port's MAC,
    neighbour_adverts and icmp_echo_replies grow. An address on the link that nobody has
    gets no neighbour advert and no reply; echoes sent to it at the director's MAC anyway
    are dropped (ipv6_not_supported or not_for_us) and rvsd goes on answering. The kernel
    path: a TCP echo listener in the director's namespace on each DIP6 (on rvsd's TAPs,
    kernel_addresses; rvsd restarted with a wan TAP for the wan one) takes 100000 bytes from
    rs1 and from the router and sends them back intact; exception grows, and the neighbours'
    entries for the DIP6s still name the port's MAC afterwards."""
    helpers = {}
    for name, code in (("ping6", PING6_PY), ("echo6d", ECHO6_SERVER_PY), ("echo6", ECHO6_CLIENT_PY)):
        helpers[name] = os.path.join(site.tmp, f"ipv6-{name}.py")
        with open(helpers[name], "w") as f:
            f.write(code)
    wan_mac = site.dir_sh("cat /sys/class/net/dw/address").strip()
    lan_mac = site.dir_sh("cat /sys/class/net/dl/address").strip()
    unknown6 = site.dip6_wan.rsplit(":", 1)[0] + ":99"  # on the wan link; nobody has it
    counted = ("neighbour_adverts", "nd_to_kernel", "icmp_echo_replies", "exception",
               "ipv6_not_supported", "not_for_us", "neighbour_solicits")

    def on(where):
        return site.router_sh if where == "router" else (lambda script, timeout=30: site.rs_sh(1, script, timeout))

    def ping6(where, dst, count, interval=0.2, wait=1.5):
        out = on(where)(f"python3 {helpers['ping6']} {dst} {count} {interval} {wait}", timeout=count * interval + wait + 20)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"sent": 0, "replies": 0, "dups": 0, "unreachable": 0, "rtt_ms": [], "raw": out[-300:]}

    def neigh(where, addr, dev):
        """The neighbour entry for addr: (MAC or None, state)."""
        parts = on(where)(f"ip -6 neigh show {addr} dev {dev}").split()
        mac = parts[parts.index("lladdr") + 1] if "lladdr" in parts else None
        return mac, (parts[-1] if parts else "none")

    def delta(c0, c1):
        return {k: c1.get(k, 0) - c0.get(k, 0) for k in counted}

    def shown(d, keys):
        return ", ".join(f"{k} +{d[k]}" for k in keys)

    def echoes(where, dst, dev, mac, label):
        on(where)(f"ip -6 neigh del {dst} dev {dev} 2>/dev/null")
        c0 = worker_counts(site)
        got = ping6(where, dst, 5)
        c1 = worker_counts(site)
        lladdr, state = neigh(where, dst, dev)
        d = delta(c0, c1)
        rtt = got["rtt_ms"]
        site.log(
            f"{label}: {where} -> {dst}: {got['replies']}/{got['sent']} replies, {got['dups']} duplicates"
            + (f", rtt {min(rtt):.2f}/{sum(rtt) / len(rtt):.2f}/{max(rtt):.2f} ms" if rtt else "")
            + f"; {where}'s neighbour entry {lladdr} {state} (port {mac}); "
            + shown(d, ("neighbour_adverts", "icmp_echo_replies", "nd_to_kernel"))
        )
        ck.expect(
            f"ipv6-director {label} echo",
            got["sent"] == 5 and got["replies"] == 5 and got["dups"] == 0 and lladdr == mac
            and d["neighbour_adverts"] >= 1 and d["icmp_echo_replies"] >= 5,
            f"{got['replies']}/5 echo replies from {dst} ({got['dups']} duplicates), neighbour entry {lladdr} "
            f"(port {mac}), " + shown(d, ("neighbour_adverts", "icmp_echo_replies")) + (f" {got['raw']!r}" if "raw" in got else ""),
        )

    def kernel_path(where, dst, dev, mac, label, size=100000):
        tag = f"ipv6-echo6d-{label}"
        log = os.path.join(site.tmp, tag + ".log")
        site.spawn_in("dir", ["python3", helpers["echo6d"], dst, "7000", "15"], tag)
        try:
            ready = wait_for(lambda: os.path.exists(log) and "listening" in open(log).read(), 5, step=0.1)
            c0 = worker_counts(site)
            got = on(where)(f"python3 {helpers['echo6']} {dst} 7000 {size}", timeout=30)
            c1 = worker_counts(site)
        finally:
            site.stop_proc(tag)
        try:
            got = json.loads(got.strip().splitlines()[-1])
        except (IndexError, ValueError):
            got = {"sent": size, "received": 0, "intact": False, "error": got[-300:]}
        peers = []
        for line in open(log).read().splitlines():
            if line.startswith("{"):
                peers.append(json.loads(line))
        lladdr, state = neigh(where, dst, dev)
        d = delta(c0, c1)
        where_addr = site.router_wan6 if where == "router" else site.rs1_6
        site.log(
            f"{label} kernel path: TCP {where} -> [{dst}]:7000 (listener in the director's namespace, "
            f"{'listening' if ready else 'NOT listening'}): sent {got['sent']}, back {got['received']} "
            f"intact {got['intact']} in {got.get('secs', '?')} s" + (f", error {got['error']}" if "error" in got else "")
            + f"; the listener saw {peers}; {shown(d, ('exception', 'nd_to_kernel', 'neighbour_adverts'))}; "
            f"{where}'s neighbour entry {lladdr} {state}"
        )
        ck.expect(
            f"ipv6-director {label} kernel path",
            ready and got["intact"] and got["received"] == size
            and [p["peer"] for p in peers] == [where_addr] and d["exception"] >= 3 and lladdr == mac,
            f"{got['received']}/{size} bytes back intact {got['intact']} from a TCP listener on [{dst}]:7000 in the "
            f"director's namespace, which saw {[p['peer'] for p in peers]}; exception +{d['exception']}; "
            f"{where}'s entry for {dst} afterwards {lladdr} (port {mac})",
        )

    try:
        site.log(
            f"\n== IPv6 to the director's own addresses: {site.dip6_wan} (wan, port {wan_mac}), "
            f"{site.dip6_lan} (lan, port {lan_mac})"
        )
        # (0) rvsd resolves a neighbour itself: restarted (empty tables), it hears echoes
        # from a router that knows its MAC already (a permanent entry, so no solicitation
        # from the router teaches rvsd its MAC): the replies wait while rvsd solicits the
        # router, whose advert releases them.
        site.restart_rvsd()
        site.router_sh(f"ip -6 neigh replace {site.dip6_wan} lladdr {wan_mac} dev rw nud permanent")
        c0 = worker_counts(site)
        got = ping6("router", site.dip6_wan, 3)
        c1 = worker_counts(site)
        site.router_sh(f"ip -6 neigh del {site.dip6_wan} dev rw 2>/dev/null")
        d = delta(c0, c1)
        site.log(
            f"rvsd resolving the router: {got['replies']}/{got['sent']} replies "
            f"(rtt {got['rtt_ms']} ms); " + shown(d, ("neighbour_solicits", "icmp_echo_replies"))
        )
        ck.expect(
            "ipv6-director resolves its neighbour",
            got["sent"] == 3 and got["replies"] == 3 and d["neighbour_solicits"] >= 1
            and d["icmp_echo_replies"] >= 3,
            f"{got['replies']}/3 replies to the router, which rvsd had to solicit first: "
            + shown(d, ("neighbour_solicits", "icmp_echo_replies")),
        )

        # (a), (b): neighbour discovery and echo, answered by rvsd.
        echoes("router", site.dip6_wan, "rw", wan_mac, "wan")
        echoes("rs1", site.dip6_lan, "eth0", lan_mac, "lan")

        # (d) An address on the wan link that nobody has: no advert, no reply. Then echoes
        # sent to it at the director's MAC anyway (a static entry on the router): dropped.
        site.router_sh(f"ip -6 neigh del {unknown6} dev rw 2>/dev/null")
        c0 = worker_counts(site)
        lost = ping6("router", unknown6, 2, interval=0.5, wait=1.5)
        c1 = worker_counts(site)
        lladdr, state = neigh("router", unknown6, "rw")
        d = delta(c0, c1)
        site.log(
            f"unknown {unknown6}: {lost['replies']}/{lost['sent']} replies; router's neighbour entry "
            f"{lladdr} {state}; " + shown(d, counted)
        )
        # (deleted first: replacing the INCOMPLETE entry would release the echoes it queued)
        site.router_sh(f"ip -6 neigh del {unknown6} dev rw 2>/dev/null; "
                       f"ip -6 neigh replace {unknown6} lladdr {wan_mac} dev rw nud permanent")
        c2 = worker_counts(site)
        forced = ping6("router", unknown6, 3, wait=1.0)
        c3 = worker_counts(site)
        d2 = delta(c2, c3)
        site.router_sh(f"ip -6 neigh del {unknown6} dev rw 2>/dev/null")
        after = ping6("router", site.dip6_wan, 2, wait=1.0)
        alive = site.rvsd_pid() is not None and site.rvsadm(["-L", "-n"], check=False).returncode == 0
        which = [k for k in ("ipv6_not_supported", "not_for_us") if d2[k] > 0]
        site.log(
            f"unknown {unknown6} at the director's MAC: {forced['replies']}/{forced['sent']} replies; "
            + shown(d2, counted) + f" (dropped as {' and '.join(which) or 'nothing'}); then {site.dip6_wan}: "
            f"{after['replies']}/{after['sent']} replies, rvsd up {alive}"
        )
        ck.expect(
            "ipv6-director unknown address",
            lost["sent"] == 2 and lost["replies"] == 0 and lladdr is None
            and forced["sent"] == 3 and forced["replies"] == 0
            and d2["ipv6_not_supported"] + d2["not_for_us"] >= 3
            and after["replies"] == 2 and alive,
            f"{unknown6}: {lost['replies']}/2 replies, neighbour entry {lladdr} {state}; at the director's MAC "
            f"{forced['replies']}/3 replies, dropped as {', '.join(f'{k} +{d2[k]}' for k in ('ipv6_not_supported', 'not_for_us'))}; "
            f"{site.dip6_wan} still answers {after['replies']}/2, rvsd up {alive}",
        )

        # (c) The kernel path: lan (rvslan exists in the lab's configuration), then wan with
        # rvsd restarted with a TAP on its wan port too.
        kernel_path("rs1", site.dip6_lan, "eth0", lan_mac, "lan")
        site.restart_rvsd(wan_tap=True)
        on_tap = wait_for(
            lambda: (lambda a: f"{site.dip6_wan}/64" in a and "tentative" not in a)(
                site.dir_sh("ip -6 -o addr show dev rvswan")), 5)
        site.log(f"rvsd restarted with a wan TAP: {site.dip6_wan} on rvswan (not tentative) {bool(on_tap)}")
        kernel_path("router", site.dip6_wan, "rw", wan_mac, "wan")
    finally:
        site.router_sh(f"ip -6 neigh del {unknown6} dev rw 2>/dev/null")
        for tag in ("ipv6-echo6d-lan", "ipv6-echo6d-wan"):
            site.stop_proc(tag)
        site.restart_rvsd()


# A spoofed SYN flood from the client's namespace: raw IPv4/TCP SYNs to VIP:port with
# sources 198.51.100.100-199 (the client's own subnet, so the router's reverse-path filter
# lets them through) and random ports; nobody answers the director's SYN/ACKs.
SYN_FLOOD_PY = r"""
import random, socket, struct, sys
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_aton(vip)
for i in range(n):
    src = socket.inet_aton('198.51.100.%d' % (100 + i % 100))
    sport = random.randint(1024, 65535)
    tcp = struct.pack('!HHIIBBHHH', sport, port, random.getrandbits(32), 0, 5 << 4, 2, 65535, 0, 0)
    c = csum(src + d + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i & 0xffff, 0x4000, 64, 6, 0, src, d)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    r.sendto(ip + tcp, (vip, 0))
print(n)
"""


HAPROXY_CFG = """global
  pidfile {home}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend pp
  bind :8082 accept-proxy
  http-request return status 200 content-type text/plain lf-string "rs3-haproxy %[src]:%[src_port]" if {{ path / }}
  default_backend files
backend files
  server local 127.0.0.1:80
"""


def proxy_protocol(site, ck, n):
    """FullNAT with the PROXY protocol: the servers see the LIP, and learn the client from
    the header rvs puts ahead of its data. rs1 and rs2 run nginx with `listen 8081
    proxy_protocol` (it answers, and logs, `$proxy_protocol_addr:$proxy_protocol_port`); rs3
    runs Debian's haproxy with `accept-proxy` (it answers `%[src]:%[src_port]`). For v2, v1,
    and v2 with the SYN proxy: 30 requests, each answered with the client's own address and port as curl saw
    them; 3 downloads of the large file with the right sha256; every nginx log line names
    the client."""
    site.set_rs_routes(None)
    home3 = site.rs_home(3)
    site.rs_sh(3, f"cat > {home3}/haproxy.cfg <<'EOF'\n{HAPROXY_CFG.format(home=home3)}EOF\n"
                  f"haproxy -D -f {home3}/haproxy.cfg")
    try:
        for version, synproxy in (("v2", False), ("v1", False), ("v2", True)):
            site.rvsadm(["-C"])
            svc = f"{site.vip}:80"
            proxy = ["-j", "enable"] if synproxy else []
            site.rvsadm(["-A", "-t", svc, "-s", "rr", "--proxy-protocol", version] + proxy)
            if synproxy:
                version += " with synproxy"
            for addr, port in zip(site.rs, (8081, 8081, 8082)):
                site.rvsadm(["-a", "-t", svc, "-r", f"{addr}:{port}", "--fullnat"])
            for i in (1, 2):
                site.rs_sh(i, f": > {site.rs_home(i)}/pp.log")
            before = worker_total(site, "proxy_headers_sent")
            out = site.client_sh(
                f"for i in $(seq 30); do curl -s -m 3 -w '|%{{local_ip}}:%{{local_port}}\\n' "
                f"http://{site.vip}/ || echo ERR; done",
                timeout=150,
            )
            seen, right, servers = 0, 0, {}
            for line in out.splitlines():
                body, _, local = line.partition("|")
                parts = body.split()
                if len(parts) != 2:
                    continue
                seen += 1
                servers[parts[0]] = servers.get(parts[0], 0) + 1
                right += parts[1] == local.strip()
            got = downloads(site, 3, 30)
            good = [g for g in got if g == (0, site.big_size, site.big_sha256)]
            logs = [site.rs_sh(i, f"cat {site.rs_home(i)}/pp.log").splitlines() for i in (1, 2)]
            lines = [l for log in logs for l in log]
            named = [l for l in lines if l.split(":")[0] == site.cip and l.split()[1] == site.lip]
            sent = worker_total(site, "proxy_headers_sent") - before
            site.log(f"\n== PROXY protocol {version}: FullNAT to nginx (rs1, rs2) and haproxy (rs3)")
            site.log(f"answers naming the client as curl saw it: {right}/{seen} ({servers})")
            site.log("nginx log lines: " + "; ".join(lines[:3]) + (" ..." if len(lines) > 3 else ""))
            ck.expect(
                f"proxy-protocol {version} answers",
                seen == 30 and right == 30 and len(servers) == 3,
                f"{right}/30 answers name the client's own address:port, from {servers}",
            )
            ck.expect(
                f"proxy-protocol {version} downloads",
                len(good) == 3,
                f"{len(good)}/3 downloads of {site.big_size} bytes with the right sha256",
            )
            ck.expect(
                f"proxy-protocol {version} nginx logs",
                len(lines) >= 20 and len(named) == len(lines) and sent >= 33,
                f"{len(named)}/{len(lines)} log lines name {site.cip}:port (the peer being the LIP "
                f"{site.lip}); headers sent {sent}",
            )
        udp_proxy_protocol(site, ck)
        toa(site, ck)
    finally:
        site.rs_sh(3, f"kill $(cat {home3}/haproxy.pid) 2>/dev/null")


DNSDIST_CONF = """setLocal("0.0.0.0:5300")
setACL({{"0.0.0.0/0"}})
setProxyProtocolACL({{"10.1.0.0/16"}})
setSecurityPollSuffix("")
addAction(AllRule(), LogAction("{home}/dns.log", false, true, false, false, false))
addAction(AllRule(), SpoofAction("192.0.2.53"))
"""


def ipv6_proxy_protocol(site, ck, n):
    """The PROXY protocol for IPv6 clients: curl -6 to the IPv6 VIP through FullNAT66 (the
    servers' nginx on [RS6]:8081, reached from the IPv6 LIP) and NAT64 (their nginx on
    RS:8081, reached from the IPv4 LIP), v2 then v1, and both v2 with the SYN proxy;
    nginx listens with `proxy_protocol` and answers and logs `$proxy_protocol_addr:
    $proxy_protocol_port`. Each run: n requests, every answer naming the IPv6 client's own
    address and port as curl saw them, from the three servers; 3 downloads of the large file
    with the right sha256; every nginx log line naming the IPv6 client while the connection's
    peer is the LIP; the headers counted; `-L -n` and `-S` show the option on the IPv6
    service. Then TOA (`ipv6_toa`)."""
    site.set_rs_routes(None)
    site.set_rs_routes6(None)
    vip = f"[{site.vip6}]:80"
    runs = (
        ("FullNAT66", "v2", False),
        ("FullNAT66", "v1", False),
        ("NAT64", "v2", False),
        ("NAT64", "v1", False),
        ("FullNAT66", "v2", True),
        ("NAT64", "v2", True),
    )
    for mode, version, synproxy in runs:
        label = f"ipv6-proxy-protocol {mode} {version}" + (" synproxy" if synproxy else "")
        site.rvsadm(["-C"])
        proxy = ["-j", "enable"] if synproxy else []
        site.rvsadm(["-A", "-t", vip, "-s", "rr", "--proxy-protocol", version] + proxy)
        if mode == "NAT64":
            rips, peer = [f"{a}:8081" for a in site.rs], site.lip
        else:
            rips, peer = [f"[{a}]:8081" for a in site.rs6], site.lip6
        for r in rips:
            site.rvsadm(["-a", "-t", vip, "-r", r, "--fullnat"])
        listing = site.rvsadm(["-L", "-n"]).stdout
        saved = site.rvsadm(["-S", "-n"]).stdout
        shown = (
            any(vip in l and f"proxy-protocol {version}" in l for l in listing.splitlines())
            and any(vip in l and f"--proxy-protocol {version}" in l for l in saved.splitlines())
        )
        for i in (1, 2, 3):
            site.rs_sh(i, f": > {site.rs_home(i)}/pp.log")
        before = worker_total(site, "proxy_headers_sent")
        out = site.client_sh(
            f"for i in $(seq {n}); do curl -6 -g -s -m 3 -w '|%{{local_ip}}:%{{local_port}}\\n' "
            f"'http://[{site.vip6}]/' || echo ERR; done",
            timeout=n * 4 + 30,
        )
        seen, right, servers = 0, 0, {}
        for line in out.splitlines():
            body, _, local = line.partition("|")
            parts = body.split()
            if len(parts) != 2:
                continue
            seen += 1
            servers[parts[0]] = servers.get(parts[0], 0) + 1
            right += parts[1] == local.strip() and parts[1].rsplit(":", 1)[0] == site.cip6
        got = site.client_sh(
            "f=$(mktemp); for i in 1 2 3; do rm -f $f; "
            f"curl -6 -g -sf -m 10 -o $f 'http://[{site.vip6}]{site.big_path}'; rc=$?; "
            "echo $rc $(stat -c %s $f 2>/dev/null || echo 0) $(sha256sum < $f 2>/dev/null | cut -c1-64); "
            "done; rm -f $f",
            timeout=60,
        )
        whole = [l for l in got.splitlines() if l.split() == ["0", str(site.big_size), site.big_sha256]]
        lines = [l for i in (1, 2, 3) for l in site.rs_sh(i, f"cat {site.rs_home(i)}/pp.log").splitlines()]
        named = [
            l for l in lines
            if l.split()[0].rsplit(":", 1)[0] == site.cip6 and l.split()[1] == peer
        ]
        sent = worker_total(site, "proxy_headers_sent") - before
        site.log(f"\n== PROXY protocol {version} for IPv6 clients: {mode}"
                 + (" with the SYN proxy" if synproxy else "") + f" to nginx on {', '.join(rips)}")
        site.log(f"answers naming the client as curl saw it: {right}/{seen} ({servers})")
        site.log("nginx log lines: " + "; ".join(lines[:2]) + (" ..." if len(lines) > 2 else ""))
        ck.expect(f"{label} listed", shown, "-L -n and -S show the option on the IPv6 service")
        ck.expect(
            f"{label} answers",
            seen == n and right == n and len(servers) == 3,
            f"{right}/{n} answers name the IPv6 client's own address:port, from {servers}",
        )
        ck.expect(f"{label} downloads", len(whole) == 3,
                  f"{len(whole)}/3 downloads of {site.big_size} bytes with the right sha256")
        ck.expect(
            f"{label} nginx logs",
            len(lines) >= n and len(named) == len(lines) and sent >= n + 3,
            f"{len(named)}/{len(lines)} log lines name [{site.cip6}]:port (the peer being the LIP "
            f"{peer}); headers sent {sent}",
        )
    ipv6_toa(site, ck)


def toa6_in(pkt):
    """The [address]:port a TCP segment's IPv6 TOA option names (kind 254, length 20: the port,
    then the 16-byte address), in an IPv6 or IPv4 (NAT64) packet, or None; None for a SYN."""
    import ipaddress
    if len(pkt) >= 60 and pkt[0] >> 4 == 6 and pkt[6] == 6:
        t = pkt[40:]
    elif len(pkt) >= 40 and pkt[0] >> 4 == 4 and pkt[9] == 6:
        t = pkt[(pkt[0] & 15) * 4:]
    else:
        return None
    if t[13] & 2:
        return None
    doff = (t[12] >> 4) * 4
    i = 20
    while i + 1 < doff <= len(t):
        kind = t[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 254 and t[i + 1] == 20:
            port = int.from_bytes(t[i + 2:i + 4], "big")
            return f"{ipaddress.IPv6Address(bytes(t[i + 4:i + 20]))}:{port}"
        i += max(t[i + 1], 2)
    return None


def ipv6_toa(site, ck):
    """TOA for IPv6 clients: FullNAT66 (to rs1's nginx on [RS6]:80) and NAT64 (on RS:8080)
    with `--toa`; tcpdump on rs1 decodes option 254 of length 20 in the segments that reach
    it (the handshake's ACK and the first data): the IPv6 client's address and port, as
    curl -6 saw them, in the IPv6 and in the translated IPv4 segments alike."""
    vip = f"[{site.vip6}]:80"
    for mode, rip, port in (("FullNAT66", f"[{site.rs6[0]}]:80", 80),
                            ("NAT64", f"{site.rs[0]}:8080", 8080)):
        site.rvsadm(["-C"])
        site.rvsadm(["-A", "-t", vip, "-s", "rr", "--toa"])
        site.rvsadm(["-a", "-t", vip, "-r", rip, "--fullnat"])
        before = worker_total(site, "toa_inserted")
        cap = f"{site.rs_home(1)}/toa6.txt"
        site.rs_sh(1, f"rm -f {cap}; (timeout 20 tcpdump -i any -nn -x -c 5 "
                      f"'tcp dst port {port}' > {cap} 2>&1 &)")
        wait_for(lambda: "listening on" in site.rs_sh(1, f"cat {cap}"), 10)
        local = site.client_sh(
            f"curl -6 -g -s -m 3 -o /dev/null -w '%{{local_ip}}:%{{local_port}}' 'http://[{site.vip6}]/'"
        ).strip()
        wait_for(lambda: "packets captured" in site.rs_sh(1, f"cat {cap}"), 10)
        named = [n for n in map(toa6_in, tcpdump_packets(site.rs_sh(1, f"cat {cap}"))) if n]
        inserted = worker_total(site, "toa_inserted") - before
        site.log(f"\n== TOA for IPv6 clients: {mode} with --toa; rs1's tcpdump decodes option 254 "
                 f"(length 20) of {len(named)} segments: {named}; curl's own address {local}")
        ck.expect(
            f"ipv6-proxy-protocol toa {mode}",
            len(named) >= 2 and all(n == local for n in named) and inserted >= 2,
            f"option 254 names {sorted(set(named))} in {len(named)} segments (the handshake's ACK, "
            f"the first data); curl was {local}; toa_inserted {inserted}",
        )


def udp_proxy_protocol(site, ck):
    """UDP with the v2 header: rs1 and rs2 run Debian's dnsdist (`setProxyProtocolACL` for
    the LIPs' network), which answers every query and logs where it came from; 10 dig
    queries from known source ports through a FullNAT service with `--proxy-protocol v2`:
    every answer comes, every log line names the client's address and that port."""
    site.rvsadm(["-C"])
    svc = f"{site.vip}:5300"
    site.rvsadm(["-A", "-u", svc, "-s", "rr", "--proxy-protocol", "v2"])
    for i in (1, 2):
        home = site.rs_home(i)
        site.rs_sh(i, f"cat > {home}/dnsdist.conf <<'EOF'\n{DNSDIST_CONF.format(home=home)}EOF\n"
                      f"rm -f {home}/dns.log; (dnsdist --supervised --disable-syslog "
                      f"-C {home}/dnsdist.conf > {home}/dnsdist.out 2>&1 &)")
        site.rvsadm(["-a", "-u", svc, "-r", f"{site.rs[i - 1]}:5300", "--fullnat"])
    try:
        for i in (1, 2):
            wait_for(lambda i=i: ":5300 " in site.rs_sh(i, "ss -lun"), 10)
        ports = list(range(40301, 40311))
        out = site.client_sh(
            " ; ".join(
                f"echo {p} $(dig -b {site.cip}#{p} @{site.vip} -p 5300 +short +tries=1 +time=3 example.com)"
                for p in ports
            ),
            timeout=60,
        )
        answered = [l for l in out.splitlines() if l.endswith(" 192.0.2.53")]
        logs = [l for i in (1, 2) for l in site.rs_sh(i, f"cat {site.rs_home(i)}/dns.log").splitlines()]
        named = sorted(int(m.group(1)) for l in logs
                       for m in [re.match(rf"Packet from {re.escape(site.cip)}:(\d+) ", l)] if m)
        site.log(f"\n== PROXY protocol v2 over UDP: FullNAT to dnsdist on rs1, rs2")
        site.log(f"answered {len(answered)}/10; dnsdist logged {len(logs)} queries, from ports {named}")
        ck.expect(
            "proxy-protocol v2 udp",
            len(answered) == 10 and named == ports,
            f"{len(answered)}/10 queries answered; dnsdist's {len(logs)} log lines name "
            f"{site.cip} at exactly the clients' ports {named[:3]}...",
        )
    finally:
        for i in (1, 2):
            site.rs_sh(i, "pkill -x dnsdist")


def toa(site, ck):
    """TOA: a FullNAT service with `--toa` to rs1's nginx; tcpdump on rs1 decodes TCP option
    254 of the segments that reach it (the handshake's ACK and the first data): the client's
    address and port, as curl saw them."""
    site.rvsadm(["-C"])
    svc = f"{site.vip}:80"
    site.rvsadm(["-A", "-t", svc, "-s", "rr", "--toa"])
    site.rvsadm(["-a", "-t", svc, "-r", f"{site.rs[0]}:8080", "--fullnat"])
    cap = f"{site.rs_home(1)}/toa.txt"
    site.rs_sh(1, f"rm -f {cap}; (timeout 20 tcpdump -i any -nn -x -c 4 "
                  f"'tcp dst port 8080 and tcp[tcpflags] & tcp-syn == 0' > {cap} 2>&1 &)")
    wait_for(lambda: "listening on" in site.rs_sh(1, f"cat {cap}"), 10)
    local = site.client_sh(
        f"curl -s -m 3 -o /dev/null -w '%{{local_ip}}:%{{local_port}}' http://{site.vip}/"
    ).strip()
    wait_for(lambda: "packets captured" in site.rs_sh(1, f"cat {cap}"), 10)
    named = [n for n in map(toa_in, tcpdump_packets(site.rs_sh(1, f"cat {cap}"))) if n]
    site.log(f"\n== TOA: FullNAT with --toa; rs1's tcpdump decodes option 254 of {len(named)} "
             f"segments: {named}; curl's own address {local}")
    ck.expect(
        "toa on the wire",
        len(named) >= 2 and all(n == local for n in named) and worker_total(site, "toa_inserted") >= 2,
        f"option 254 names {sorted(set(named))} in {len(named)} segments (the handshake's ACK, "
        f"the first data); curl was {local}",
    )


def tcpdump_packets(text):
    """The IPv4 packets of `tcpdump -x` output, as bytes."""
    packets, cur = [], None
    for line in text.splitlines():
        m = re.match(r"\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{2,4}\s?)+)", line)
        if m:
            cur = cur if cur is not None else bytearray()
            cur += bytes.fromhex(m.group(1).replace(" ", ""))
        elif cur is not None:
            packets.append(bytes(cur))
            cur = None
    if cur is not None:
        packets.append(bytes(cur))
    return packets


def toa_in(pkt):
    """The address:port a TCP segment's option 254 (TOA) names, or None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    t = pkt[(pkt[0] & 15) * 4:]
    doff = (t[12] >> 4) * 4
    i = 20
    while i + 1 < doff <= len(t):
        kind = t[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 254 and t[i + 1] == 8:
            port = int.from_bytes(t[i + 2:i + 4], "big")
            return ".".join(str(b) for b in t[i + 4:i + 8]) + f":{port}"
        i += max(t[i + 1], 2)
    return None


def worker_total(site, name):
    """A worker event counter (`rvsadm --workers`), summed over the workers."""
    workers = json.loads(site.rvsadm(["--workers", "--json"]).stdout)
    return sum(dict(w.get("counters", [])).get(name, 0) for w in workers)


def flood_sessions(site):
    """Sessions whose client is one of the flood's spoofed addresses (rvsadm -L -c)."""
    out = site.rvsadm(["-L", "-n", "-c"]).stdout
    return sum(1 for line in out.splitlines() if "198.51.100.1" in line.replace("198.51.100.10:", ""))


def dest_conns(site):
    """Connections the servers have been given (the Conns column of rvsadm -L --stats)."""
    out = site.rvsadm(["-L", "-n", "--stats"]).stdout
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("->")]
    return sum(int(r[2]) for r in rows if len(r) > 2 and r[2].isdigit())


def synproxy(site, ck, n):
    """SYN proxy (-j enable) on a FullNAT and a NAT service: the director answers SYNs with
    cookies and opens the server's connection on the client's ACK, shifting sequence numbers
    from then on — real curl requests complete and spread as scheduled. A spoofed SYN flood
    against the proxied VIP gets SYN/ACKs only: no session, no connection to any server; a
    real client still gets through during and after it."""
    site.set_rs_routes(site.dip_lan)
    service(site, "rr", "--fullnat", [1, 1, 1])
    service(site, "rr", "-m", [1, 1, 1], vport=81, rport=8080)
    for vport in (80, 81):
        site.rvsadm(["-E", "-t", f"{site.vip}:{vport}", "-s", "rr", "-j", "enable"])
    listing = site.rvsadm(["-L", "-n"]).stdout
    ck.expect("synproxy listed", listing.count(" rr synproxy") == 2, listing.strip().splitlines()[2])
    h, m = ck.http(n), ck.http(n, port=81)
    ck.table("SYN proxy: FullNAT :80 and NAT :81, rr (-j enable)", [1, 1, 1], [("fullnat", h), ("nat", m)])
    ck.check_split("synproxy fullnat http", *h, [1, 1, 1])
    ck.check_split("synproxy nat http", *m, [1, 1, 1])
    got = downloads(site, 2, 10)
    ck.expect(
        "synproxy download",
        all(g == (0, site.big_size, site.big_sha256) for g in got),
        f"{site.big_size}-byte downloads through the proxied FullNAT service: {got}",
    )
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(SYN_FLOOD_PY)
    # Control: the same flood against a service without the proxy opens sessions (each one
    # a connection handed to a server), so the checks below can see a flood when there is one.
    service(site, "rr", "--fullnat", [1, 1, 1], vport=82)
    site.client_sh(f"python3 {f.name} {site.vip} 82 300", timeout=60)
    time.sleep(0.5)
    unproxied = flood_sessions(site)
    ck.expect(
        "synproxy control: an unproxied flood opens sessions",
        unproxied >= 270,
        f"{unproxied} sessions of spoofed clients after 300 SYNs to :82",
    )
    before = dest_conns(site)
    k = 3000
    flood = threading.Thread(
        target=lambda: site.client_sh(f"python3 {f.name} {site.vip} 80 {k}", timeout=120)
    )
    flood.start()
    during = ck.http(max(3, n // 3))
    flood.join()
    os.unlink(f.name)
    time.sleep(0.5)
    spoofed, after_conns = flood_sessions(site) - unproxied, dest_conns(site)
    given = after_conns - before - sum(during[0].values())
    site.log(
        f"spoofed SYN flood: {k} SYNs to the proxied VIP; sessions of spoofed clients: {spoofed}; "
        f"connections given to servers beyond the real requests: {given}; "
        f"real requests during the flood: {during}"
    )
    ck.expect("synproxy flood keeps no state", spoofed == 0, f"{spoofed} sessions of spoofed clients")
    ck.expect("synproxy flood reaches no server", given == 0, f"{given} connections beyond the real ones")
    ck.expect("synproxy serves during a flood", during[1] == 0, f"{during}")


# A spoofed IPv6 SYN flood from the client's namespace: raw IPv6/TCP SYNs to [VIP6]:port
# from addresses of the client's /64 that nobody holds (2001:db8:99::1:0 to ::1:ff), random
# ports and sequence numbers, the TCP checksum over the IPv6 pseudo-header.
SYN_FLOOD6_PY = r"""
import random, socket, struct, sys
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_pton(socket.AF_INET6, vip)
for i in range(n):
    src = socket.inet_pton(socket.AF_INET6, '2001:db8:99::1:%x' % (i % 256))
    sport = random.randint(1024, 65535)
    tcp = struct.pack('!HHIIBBHHH', sport, port, random.getrandbits(32), 0, 5 << 4, 2, 65535, 0, 0)
    c = csum(src + d + struct.pack('!I3xB', len(tcp), 6) + tcp)
    tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
    ip = struct.pack('!IHBB16s16s', 6 << 28, len(tcp), 6, 64, src, d)
    r.sendto(ip + tcp, (vip, 0))
print(n)
"""

SPOOFED6 = "[2001:db8:99::1:"


def ipv6_synproxy(site, ck, n):
    """The SYN proxy (-j enable) on a FullNAT66 service: rvsd answers the client's IPv6 SYNs
    from the VIP with cookies and opens the server's connection from the IPv6 LIP on the
    client's ACK, shifting sequence numbers from then on. n `curl -6` requests split evenly
    with no error; 3 downloads of the large file arrive whole with the right sha256; the
    synproxy counters moved by at least one cookie, one opened and one joined session per
    connection. A spoofed IPv6 SYN flood against the VIP gets SYN/ACKs only (counted): no
    session, no connection to any server, and a real client still gets through during it (the
    same flood against an unproxied FullNAT66 port opens sessions: the control)."""
    site.set_rs_routes6(None)
    vip = service6(site, "--fullnat")
    site.rvsadm(["-E", "-t", vip, "-s", "rr", "-j", "enable"])
    listing = site.rvsadm(["-L", "-n"]).stdout
    ck.expect("ipv6-synproxy listed", f"TCP  {vip} rr synproxy" in listing,
              next((l for l in listing.splitlines() if vip in l), listing.strip()))
    keys = ("synproxy_cookies", "synproxy_opened", "synproxy_joined", "bad_cookie")
    # One connection first, untimed: on a director fresh from its start the first IPv6
    # connection waits for a SYN retransmission (1 s) while the neighbours resolve — FullNAT66
    # without the proxy too — and a proxied one then also waits for its first data segment's
    # retransmission (the proxy drops data until the RS has answered), more than curl's 2 s.
    warm = site.client_sh(f"curl -6 -g -s -m 10 'http://[{site.vip6}]/' || echo ERR", timeout=30)
    ck.expect("ipv6-synproxy first connection", warm.strip().startswith("rs"), warm.strip())
    c0 = worker_counts(site)
    http6(site, ck, n, "ipv6-synproxy", "FullNAT66 with the SYN proxy, rr (-j enable)")
    downloads6(site, ck, "ipv6-synproxy")
    c1 = worker_counts(site)
    d = {k: c1.get(k, 0) - c0.get(k, 0) for k in keys}
    site.log(f"synproxy counters: {d}")
    ck.expect(
        "ipv6-synproxy counters",
        min(d["synproxy_cookies"], d["synproxy_opened"], d["synproxy_joined"]) >= n + 3,
        f"{d} over {n} requests and 3 downloads",
    )
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(SYN_FLOOD6_PY)
    # Control: the same flood against a FullNAT66 service without the proxy opens sessions,
    # so the checks below can see a flood when there is one.
    plain = f"[{site.vip6}]:82"
    site.rvsadm(["-A", "-t", plain, "-s", "rr"])
    for a in site.rs6:
        site.rvsadm(["-a", "-t", plain, "-r", f"[{a}]:80", "--fullnat", "-w", "1"])
    site.client_sh(f"python3 {f.name} {site.vip6} 82 300", timeout=60)
    time.sleep(0.5)
    conns = site.rvsadm(["-L", "-n", "-c"]).stdout
    unproxied = sum(1 for line in conns.splitlines() if SPOOFED6 in line)
    ck.expect(
        "ipv6-synproxy control: an unproxied flood opens sessions",
        unproxied >= 270,
        f"{unproxied} sessions of spoofed clients after 300 SYNs to {plain}",
    )
    c1 = worker_counts(site)
    before = dest_conns(site)
    k = 3000
    flood = threading.Thread(
        target=lambda: site.client_sh(f"python3 {f.name} {site.vip6} 80 {k}", timeout=120)
    )
    flood.start()
    m = max(3, n // 3)
    got = site.client_sh(
        f"for i in $(seq {m}); do curl -6 -g -s -m 2 'http://[{site.vip6}]/' || echo ERR; done",
        timeout=m * 3 + 30,
    ).split()
    flood.join()
    os.unlink(f.name)
    time.sleep(0.5)
    served = sum(1 for line in got if line.startswith("rs"))
    c2 = worker_counts(site)
    conns = site.rvsadm(["-L", "-n", "-c"]).stdout
    spoofed = sum(1 for line in conns.splitlines() if SPOOFED6 in line) - unproxied
    given = dest_conns(site) - before - served
    cookies = c2.get("synproxy_cookies", 0) - c1.get("synproxy_cookies", 0)
    site.log(
        f"spoofed IPv6 SYN flood: {k} SYNs to [{site.vip6}]:80; SYN/ACKs sent {cookies}; sessions "
        f"of spoofed clients: {spoofed}; connections given to servers beyond the real requests: "
        f"{given}; real requests during the flood: {served}/{m}"
    )
    # The veths drop some of a raw flood's SYNs before rvsd sees them; most are answered.
    ck.expect("ipv6-synproxy flood answered", cookies >= k // 2 + m,
              f"{cookies} cookies sent for {k} spoofed SYNs and {m} real ones")
    ck.expect("ipv6-synproxy flood keeps no state", spoofed == 0, f"{spoofed} sessions of spoofed clients")
    ck.expect("ipv6-synproxy flood reaches no server", given == 0, f"{given} connections beyond the real ones")
    ck.expect("ipv6-synproxy serves during a flood", served == m, f"{served}/{m} requests answered")


# Short HTTP/1.0 connections from the client at a steady rate: the server closes first, so
# it keeps each 4-tuple in TIME_WAIT for 60 s. Prints the outcomes, the connections slower
# than 0.9 s (a SYN retransmitted: 1 s) and the client's TCPSynRetrans over the run.
TW_LOAD_PY = r"""
import json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor
vip, port, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def syn_retrans():
    lines = open('/proc/net/netstat').read().splitlines()
    for h, v in zip(lines[::2], lines[1::2]):
        if h.startswith('TcpExt:'):
            return int(dict(zip(h.split()[1:], v.split()[1:]))['TCPSynRetrans'])
def one(_):
    t = time.time()
    try:
        s = socket.create_connection((vip, port), timeout=10)
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        d = b''
        while True:
            c = s.recv(4096)
            if not c:
                break
            d += c
        s.close()
        return ('ok' if d.startswith(b'HTTP/1.1 200') else 'bad', time.time() - t)
    except OSError as e:
        return (type(e).__name__, time.time() - t)
before = syn_retrans()
t0 = time.time()
with ThreadPoolExecutor(32) as ex:
    futs = []
    for i in range(int(rate * secs)):
        d = t0 + i / rate - time.time()
        if d > 0:
            time.sleep(d)
        futs.append(ex.submit(one, i))
    res = [f.result() for f in futs]
out = {}
for r, _ in res:
    out[r] = out.get(r, 0) + 1
print(json.dumps({'results': out, 'slow': sum(1 for _, dt in res if dt > 0.9),
                  'syn_retrans': syn_retrans() - before}))
"""


def worker_counts(site):
    """Every worker counter and drop, summed over the workers (rvsadm --workers --json)."""
    got = {}
    for w in json.loads(site.rvsadm(["--workers", "--json"]).stdout):
        for name, v in w.get("counters", []) + w.get("drops", []):
            got[name] = got.get(name, 0) + v
    return got


def lip_usage(site):
    """(in use, in quarantine) over the LIPs and workers (rvsadm --lips --json)."""
    usage = json.loads(site.rvsadm(["--lips", "--json"]).stdout).get("usage", [])
    return sum(u["in_use"] for u in usage), sum(u["quarantined"] for u in usage)


def time_wait(site, ck, n):
    """LIP ports and the servers' TIME_WAIT: short connections (the servers close first)
    through one LIP at a rate that brings a shared FIFO of 450 ports round in 30 s, less than
    the servers' 60 s TIME_WAIT. Without quarantine (control) new SYNs meet TIME_WAIT: the
    servers answer with bare ACKs and the client retransmits its SYNs; a spoofed SYN flood then
    leaves no session ESTABLISHED and is gone after SYN_RECV's timeout. With the default port
    pools and quarantine, zero SYN retransmissions. The client sends no TCP timestamps (as
    clients behind other hosts' clocks look to a server), so TIME_WAIT does not take the new
    SYN by its timestamp."""
    rate, secs, syn_recv = 15, 40, 10
    timeouts = f"\n[timeouts]\ntime_wait = 1\nclose = 1\nsyn_recv = {syn_recv}\n"
    site.client_sh("sysctl -qw net.ipv4.tcp_timestamps=0")
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(TW_LOAD_PY)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as g:
        g.write(SYN_FLOOD_PY)

    def load():
        out = site.client_sh(f"python3 {f.name} {site.vip} 80 {rate} {secs}", timeout=secs + 60)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"results": {}, "slow": -1, "syn_retrans": -1, "raw": out[-300:]}

    try:
        site.set_rs_routes(None)
        # Control: one pool, no quarantine (a FIFO of ports shared by the three servers).
        site.restart_rvsd('lport_range = "40000-40449"\nlport_quarantine = 0\nlport_pools = 1\n' + timeouts)
        service(site, "rr", "--fullnat", [1, 1, 1])
        a, ca = load(), worker_counts(site)
        site.log(
            f"\n== TIME_WAIT: {rate} connections/s for {secs} s through one LIP, 450 ports, servers close first"
        )
        site.log(f"control, no quarantine: {a}; director: syn_answered_ack={ca.get('syn_answered_ack', 0)}")
        ck.expect(
            "time-wait control: a shared FIFO meets TIME_WAIT",
            a["syn_retrans"] > 0 and ca.get("syn_answered_ack", 0) > 0,
            f"client SYN retransmissions {a['syn_retrans']}, bare ACKs from servers "
            f"{ca.get('syn_answered_ack', 0)}, slow connections {a['slow']}",
        )
        # A spoofed flood right after: its SYNs get ports the servers still hold in TIME_WAIT.
        k = 600
        site.client_sh(f"python3 {g.name} {site.vip} 80 {k}", timeout=60)
        time.sleep(0.5)
        conns = site.rvsadm(["-L", "-n", "-c"]).stdout.splitlines()
        spoofed = [line for line in conns if "198.51.100.1" in line.replace("198.51.100.10:", "")]
        est = sum(1 for line in spoofed if "ESTABLISHED" in line)
        acks = worker_counts(site).get("syn_answered_ack", 0) - ca.get("syn_answered_ack", 0)
        site.log(
            f"spoofed flood: {k} SYNs, {len(spoofed)} sessions, {est} ESTABLISHED, "
            f"{acks} answered by a bare ACK"
        )
        ck.expect(
            "time-wait flood: no spoofed session ESTABLISHED",
            len(spoofed) > 0 and est == 0,
            f"{len(spoofed)} sessions of spoofed clients, {est} ESTABLISHED, {acks} bare ACKs",
        )
        time.sleep(syn_recv + 2 + site.slack)
        conns = site.rvsadm(["-L", "-n", "-c"]).stdout.splitlines()
        left = sum(1 for line in conns if "198.51.100.1" in line.replace("198.51.100.10:", ""))
        used, _ = lip_usage(site)
        c = worker_counts(site)
        site.log(
            f"{syn_recv + 2} s later: {left} spoofed sessions, LIP pairs in use {used}, "
            f"half_open_expired={c.get('half_open_expired', 0)}"
        )
        ck.expect(
            "time-wait flood gone after SYN_RECV's timeout",
            left == 0 and used == 0,
            f"{left} spoofed sessions and {used} LIP pairs in use {syn_recv + 2} s after the flood",
        )
        # Default pools and quarantine, fresh ports (the control's are still in TIME_WAIT).
        site.restart_rvsd('lport_range = "41000-41449"\n' + timeouts)
        service(site, "rr", "--fullnat", [1, 1, 1])
        b, cb = load(), worker_counts(site)
        _, quarantined = lip_usage(site)
        site.log(
            f"pools and quarantine: {b}; director: syn_answered_ack={cb.get('syn_answered_ack', 0)}, "
            f"lip_exhausted={cb.get('lip_exhausted', 0)}, pairs in quarantine {quarantined}"
        )
        ck.expect(
            "time-wait: no SYN meets TIME_WAIT with pools and quarantine",
            b["results"] == {"ok": rate * secs}
            and b["syn_retrans"] == 0
            and b["slow"] == 0
            and cb.get("syn_answered_ack", 0) == 0
            and cb.get("lip_exhausted", 0) == 0
            and quarantined > 0,
            f"{b['results']}, client SYN retransmissions {b['syn_retrans']}, slow {b['slow']}, "
            f"bare ACKs {cb.get('syn_answered_ack', 0)}, lip_exhausted {cb.get('lip_exhausted', 0)}, "
            f"in quarantine {quarantined}",
        )
    finally:
        os.unlink(f.name)
        os.unlink(g.name)
        site.client_sh("sysctl -qw net.ipv4.tcp_timestamps=1")
        site.restart_rvsd()


# An ARP request for argv[2] from argv[3] out of interface argv[1]; prints the MAC that
# answers within argv[4] seconds, or "none".
ARP_PROBE_PY = r"""
import socket, struct, sys, time
iface, target, src, wait = sys.argv[1], socket.inet_aton(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((iface, 0))
mac = s.getsockname()[4]
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(src) + bytes(6) + target
s.send((b"\xff" * 6 + mac + b"\x08\x06" + arp).ljust(60, b"\0"))
s.settimeout(0.1)
end = time.time() + wait
while time.time() < end:
    try:
        f = s.recv(2048)
    except OSError:
        continue
    if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" and f[28:32] == target:
        print(f[22:28].hex(":"))
        sys.exit(0)
print("none")
"""

# Watches interface argv[1] for argv[3] seconds or until file argv[4] exists: gratuitous ARPs
# for argv[2] (sender = target = it) and VRRP adverts (IP protocol 112 to 224.0.0.18) that
# arrive there; prints them as JSON.
VRRP_SNIFF_PY = r"""
import json, os, socket, sys, time
iface, vip, secs, stop = sys.argv[1], socket.inet_aton(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
s.settimeout(0.2)
garps, vrrp = [], []
end = time.time() + secs
while time.time() < end and not os.path.exists(stop):
    try:
        f, addr = s.recvfrom(2048)
    except OSError:
        continue
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    if f[12:14] == b"\x08\x06" and len(f) >= 42 and f[20:22] == b"\x00\x01" and f[28:32] == vip and f[38:42] == vip:
        garps.append(f[6:12].hex(":"))
    elif f[12:14] == b"\x08\x00" and len(f) >= 42 and f[23] == 112 and f[30:34] == bytes([224, 0, 0, 18]):
        v = f[14 + (f[14] & 15) * 4:]
        vrrp.append({"mac": f[6:12].hex(":"), "src": socket.inet_ntoa(f[26:30]), "vrid": v[1], "prio": v[2]})
print(json.dumps({"garps": garps, "vrrp": vrrp}))
"""

# A VRRP peer for argv[3] seconds: VRRPv2 adverts (RFC 3768) from argv[2] out of interface
# argv[1], priority argv[4], VRID argv[5], the addresses argv[6:], one a second.
VRRP_PEER_PY = r"""
import socket, struct, sys, time
iface, src, secs, prio, vrid = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
addrs = b"".join(socket.inet_aton(a) for a in sys.argv[6:])
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
v = bytes([0x21, vrid, prio, len(addrs) // 4, 0, 1, 0, 0]) + addrs + bytes(8)
v = v[:6] + struct.pack("!H", csum(v)) + v[8:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(v), 0, 0, 255, 112, 0, socket.inet_aton(src), bytes([224, 0, 0, 18]))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
frame = bytes([1, 0, 0x5E, 0, 0, 18]) + s.getsockname()[4] + b"\x08\x00" + ip + v
end = time.time() + secs
while time.time() < end:
    s.send(frame)
    time.sleep(1)
"""

# keepalived.conf of the vrrp scenario (Debian's keepalived, unmodified): one instance on rvsd's
# wan TAP holding the VIP there and the LIP on the lan TAP; the instance is in FAULT (holds
# nothing) while no process named rvsd runs.
KEEPALIVED_CONF = """global_defs {{
    router_id rvs-lab
}}

vrrp_track_process rvsd {{
    process rvsd
    quorum 1
}}

vrrp_instance rvs {{
    state BACKUP
    interface rvswan
    virtual_router_id 51
    priority 100
    advert_int 1
    track_process {{
        rvsd
    }}
    virtual_ipaddress {{
        {vip}/32 dev rvswan
        {lip}/32 dev rvslan
    }}
}}
"""


def wait_for(cond, secs, step=0.2):
    """Polls cond() until it is true or secs pass; returns its last value."""
    end = time.time() + secs
    while True:
        v = cond()
        if v or time.time() > end:
            return v
        time.sleep(step)


def vrrp(site, ck, n):
    """VIP and LIP ownership follows stock keepalived on rvsd's TAPs (track_process rvsd):
    standby before it is MASTER (no ARP answer, SYNs dropped as standby_address), owned once
    it holds the VIP (gratuitous ARPs, ARP answered, HTTP works, its adverts on the wire), a
    peer's higher-priority adverts through rvsd make it BACKUP, and its stop releases both."""
    vip, lip = site.vip, site.lip
    dests = "".join(
        f'  [[service.dest]]\n  addr = "{rs}"\n  port = 8080\n  mode = "fullnat"\n' for rs in site.rs
    )
    extra = (
        f'\n[ha]\nmanaged_addresses = ["{vip}", "{lip}"]\n\n'
        f'[[service]]\nproto = "tcp"\nvip = "{vip}"\nport = 80\nscheduler = "rr"\n{dests}'
    )
    conf = os.path.join(site.tmp, "keepalived.conf")
    with open(conf, "w") as f:
        f.write(KEEPALIVED_CONF.format(vip=vip, lip=lip))
    helpers = {}
    for name, code in (("arp", ARP_PROBE_PY), ("sniff", VRRP_SNIFF_PY), ("peer", VRRP_PEER_PY)):
        helpers[name] = os.path.join(site.tmp, f"vrrp-{name}.py")
        with open(helpers[name], "w") as f:
            f.write(code)
    stop_sniff = os.path.join(site.tmp, "vrrp-sniff.stop")

    def on_tap():
        return f" {vip}/32 " in site.dir_sh("ip -4 -o addr show dev rvswan")

    def owned():
        out = json.loads(site.rvsadm(["--addresses", "--json"]).stdout)
        return {a["addr"]: a["owned"] for a in out}

    def arp():
        site.router_sh(f"ip neigh del {vip} dev rw 2>/dev/null")
        return site.router_sh(f"python3 {helpers['arp']} rw {vip} {site.router_wan} 1.0").strip()

    try:
        site.set_rs_routes(None)
        site.restart_rvsd(extra, wan_tap=True)
        mac = site.dir_sh("cat /sys/class/net/dw/address").strip()
        comm = site.dir_sh(f"cat /proc/{site.rvsd_pid()}/comm").strip()
        ck.expect("vrrp: rvsd's process name is rvsd (track_process)", comm == "rvsd", f"comm {comm!r}")
        site.log("\n== VRRP: keepalived on rvsd's TAPs drives VIP and LIP ownership")

        # Before keepalived: standby.
        a0, who = owned(), arp()
        h0 = ck.http(2, timeout=1)
        site.router_sh(f"ip neigh replace {vip} lladdr {mac} dev rw nud permanent")
        c0 = worker_counts(site)
        h1 = ck.http(2, timeout=1)
        c1 = worker_counts(site)
        site.router_sh(f"ip neigh del {vip} dev rw")
        dropped = c1.get("standby_address", 0) - c0.get("standby_address", 0)
        site.log(f"before keepalived: owned {a0}, ARP answer {who}, http {h0}; with a static ARP entry {h1}, standby_address +{dropped}")
        ck.expect(
            "vrrp: standby before keepalived is MASTER",
            a0 == {vip: False, lip: False} and who == "none" and h0[1] == 2 and h1[1] == 2 and dropped > 0,
            f"owned {a0}, ARP {who}, HTTP errors {h0[1]} (and {h1[1]} past ARP, {dropped} SYNs dropped standby_address)",
        )

        # keepalived: BACKUP, then MASTER after three silent advert intervals.
        site.spawn_in("router", ["python3", helpers["sniff"], "rw", vip, "60", stop_sniff], "vrrp-sniff")
        time.sleep(0.3)
        base = worker_counts(site)
        # Started from the lab's own namespace into the director's (--namespace): keepalived
        # opens the kernel's process-events connector, which track_process needs and only the
        # initial network namespace has, before it enters the director's.
        site.spawn_in(
            "host",
            [shutil.which("keepalived") or "/usr/sbin/keepalived", "-n", "-l", "-D", "-P",
             "--namespace", site.dir_ns, "-f", conf,
             "-p", os.path.join(site.tmp, "keepalived.pid"), "-r", os.path.join(site.tmp, "keepalived-vrrp.pid")],
            "keepalived",
        )
        t0 = time.time()
        master = wait_for(on_tap, 15)
        took = time.time() - t0
        held = wait_for(lambda: owned() == {vip: True, lip: True}, 3)
        who = arp()
        h = ck.http(6)
        # rvsd announces each address it takes over 3 times, 0.5 s apart.
        wait_for(lambda: worker_counts(site).get("gratuitous_arps", 0) - base.get("gratuitous_arps", 0) >= 6, 3)
        c = worker_counts(site)
        replies = c.get("arp_replies", 0) - base.get("arp_replies", 0)
        garps = c.get("gratuitous_arps", 0) - base.get("gratuitous_arps", 0)
        site.log(f"keepalived MASTER after {took:.1f} s: owned {owned()}, ARP answer {who}, http {h}, rvsd ARP replies +{replies}, gratuitous ARPs +{garps}")
        ck.expect(
            "vrrp: MASTER owns the VIP and LIP",
            master and held and who == mac and h[1] == 0 and replies > 0 and garps >= 6,
            f"VIP on rvswan {master} after {took:.1f} s, owned {held}, ARP answer {who} (rvsd {mac}), "
            f"HTTP {h}, rvsd ARP replies +{replies}, gratuitous ARPs +{garps}",
        )

        # A peer with a higher priority, heard only through rvsd: keepalived becomes BACKUP.
        mc0 = c.get("multicast_to_kernel", 0)
        site.spawn_in(
            "router",
            ["python3", helpers["peer"], "rw", site.router_wan, "5", "200", "51", vip, lip],
            "vrrp-peer",
        )
        released = wait_for(lambda: not on_tap(), 5)
        standby = wait_for(lambda: owned() == {vip: False, lip: False}, 3)
        who = arp()
        mc = worker_counts(site).get("multicast_to_kernel", 0) - mc0
        site.log(f"peer adverts (priority 200): VIP released {released}, owned {owned()}, ARP answer {who}, multicast_to_kernel +{mc}")
        ck.expect(
            "vrrp: a peer's adverts reach keepalived through rvsd",
            released and standby and who == "none" and mc > 0,
            f"VIP released {released}, standby {standby}, ARP answer {who}, adverts to the kernel +{mc}",
        )
        site.stop_proc("vrrp-peer")
        back = wait_for(on_tap, 10)
        h = ck.http(3)
        site.log(f"peer gone: VIP back {back}, http {h}")
        ck.expect("vrrp: MASTER again once the peer is silent", back and h[1] == 0, f"VIP back {back}, HTTP {h}")

        # On the wire: keepalived's adverts left through rvsd's data port, and the takeovers
        # were announced (rvsd's gratuitous ARPs, and keepalived's own through the TAP).
        open(stop_sniff, "w").close()
        site.stop_proc("keepalived")
        released = wait_for(lambda: not on_tap(), 5)
        standby = wait_for(lambda: owned() == {vip: False, lip: False}, 3)
        who = arp()
        site.log(f"keepalived stopped: VIP released {released}, owned {owned()}, ARP answer {who}")
        ck.expect(
            "vrrp: stopping keepalived releases the VIP and LIP",
            released and standby and who == "none",
            f"VIP released {released}, standby {standby}, ARP answer {who}",
        )
        time.sleep(0.5)
        seen = {"garps": [], "vrrp": []}
        with open(os.path.join(site.tmp, "vrrp-sniff.log")) as f:
            lines = f.read().strip().splitlines()
        if lines:
            try:
                seen = json.loads(lines[-1])
            except ValueError:
                pass
        ours = [v for v in seen["vrrp"] if v["mac"] == mac and v["src"] == site.dip_wan and v["vrid"] == 51]
        garps_seen = [g for g in seen["garps"] if g == mac]
        site.log(f"on the wire (router side): {len(ours)} adverts from the director, {len(garps_seen)} gratuitous ARPs for {vip}")
        ck.expect(
            "vrrp: adverts and gratuitous ARPs on the director's segment",
            len(ours) >= 2 and len(garps_seen) >= 3,
            f"{len(ours)} VRRP adverts from {mac} ({site.dip_wan}), {len(garps_seen)} gratuitous ARPs for {vip}",
        )
    finally:
        site.stop_proc("keepalived")
        site.stop_proc("vrrp-peer")
        site.stop_proc("vrrp-sniff")
        site.router_sh(f"ip neigh del {vip} dev rw 2>/dev/null")
        site.restart_rvsd()


# The client of the fragments scenario: argv[3] UDP datagrams of argv[4] random bytes to
# argv[1]:argv[2], each from its own connected socket on source port argv[5] + i, without DF
# (IP_PMTUDISC_DONT: the client's 1500-byte MTU makes its kernel fragment the large ones),
# 5 ms apart; the echoes are then awaited for up to argv[6] seconds. Prints JSON: echoes
# byte-identical to what was sent, echoes that differ, errors (ICMP on a connected socket),
# datagrams never echoed, and when the last echo came (time.time()).
FRAG_ECHO_PY = r"""
import json, os, select, socket, sys, time
vip, port, n, size, first, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
v6 = ":" in vip
pending = {}
for i in range(n):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    if not v6:
        s.setsockopt(socket.SOL_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
    s.bind(("::" if v6 else "0.0.0.0", first + i))
    s.connect((vip, port))
    data = os.urandom(size)
    s.send(data)
    pending[s] = data
    time.sleep(0.005)
out = {"ok": 0, "wrong": 0, "error": 0}
end = time.time() + wait
while pending and time.time() < end:
    ready, _, _ = select.select(list(pending), [], [], max(0.0, end - time.time()))
    for s in ready:
        data = pending.pop(s)
        try:
            out["ok" if s.recv(65535) == data else "wrong"] += 1
        except OSError:
            out["error"] += 1
        out["at"] = time.time()
out["lost"] = len(pending)
print(json.dumps(out))
"""

# A flood of first fragments from the client: argv[3] IPv4 packets to argv[1] with MF set,
# offset 0 and distinct IP identifications (1, 2, ...), each holding a UDP header to port argv[2]
# (source ports argv[4] + i % 64; its length claims a 4000-byte datagram) and 16 bytes of the
# datagram, from the client's own address: every one opens an entry in the director's
# fragment table, none is ever completed. Sent in bursts of 500, 10 ms apart. Prints JSON:
# packets sent, seconds taken, the time the last one left (time.time()).
FRAG_FLOOD_PY = r"""
import json, socket, struct, sys, time
vip, port, n, sport0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
r.connect((vip, 0))
src, dst = socket.inet_aton(r.getsockname()[0]), socket.inet_aton(vip)
t0, sent = time.time(), 0
for i in range(n):
    udp = struct.pack("!HHHH", sport0 + i % 64, port, 8 + 4000, 0) + bytes(16)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i + 1, 0x2000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    while True:
        try:
            r.sendto(ip + udp, (vip, 0))
            sent += 1
            break
        except BlockingIOError:
            time.sleep(0.001)
        except OSError as e:
            if e.errno != 105:  # ENOBUFS: the qdisc is full for a moment
                raise
            time.sleep(0.001)
    if i % 500 == 499:
        time.sleep(0.01)
print(json.dumps({"sent": sent, "secs": time.time() - t0, "end": time.time()}))
"""

# Entries of a worker's fragment table (rvsd's default `[daemon] fragment_capacity`), and how
# long an entry outlives its datagram's latest fragment (dataplane::frag::FRAGMENT_TIMEOUT_MS).
FRAG_TABLE = 4096
FRAG_TIMEOUT = 2.0


def frag_echo(site, ck, echo_py, to, count, size, wait=3.0):
    """`count` UDP datagrams of `size` random bytes from the client to `to` (VIP, port), each
    from its own port, through FRAG_ECHO_PY at `echo_py`: {"ok", "wrong", "error", "lost"}."""
    first = ck.next_udp_port
    ck.next_udp_port += count
    out = site.client_sh(
        f"python3 {echo_py} {to[0]} {to[1]} {count} {size} {first} {wait}", timeout=count * 0.01 + wait + 30
    )
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": 0, "wrong": 0, "error": 0, "lost": count, "raw": out[-300:]}


def echo_shown(got):
    """A frag_echo result in words."""
    return ", ".join(f"{key} {got[key]}" for key in ("ok", "wrong", "error", "lost")) + (
        f" ({got['raw']!r})" if "raw" in got else "")


def fragments(site, ck, n):
    """IPv4 fragments of UDP datagrams cross rvs in every mode. rvsd runs on net_pcap ports
    for the scenario (net_af_packet's fanout has the kernel reassemble fragments first). The
    servers echo on 9000 from the address the datagram was sent to, without DF. For FullNAT
    (9001 -> 9000), NAT (9001 -> 9000), DR and TUN (9000): 50 datagrams of 4000 bytes of random
    content from the client (MTU 1500: three fragments each, and three back) come back
    byte-identical, and so do 5 of 1000 bytes (the control: no fragment); fragments_followed
    counts the later fragments (TUN: tunnel_fragmented, the IPIP packets the director split
    again). Then a flood of 20000 first fragments that never complete fills the table
    (FRAG_TABLE entries: fragments_tracked), the rest are refused (fragment_table_full), and
    a 4000-byte echo works again once the entries expire (FRAG_TIMEOUT)."""
    import tempfile

    big, small, k = 50, 5, 20000
    tmp = []
    for code in (FRAG_ECHO_PY, FRAG_FLOOD_PY):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(code)
        tmp.append(f.name)
    echo_py, flood_py = tmp

    def echo(port, count, size, wait=3.0):
        return frag_echo(site, ck, echo_py, (site.vip, port), count, size, wait)

    modes = [
        ("FullNAT", "--fullnat", 9001, None),
        ("NAT", "-m", 9001, site.dip_lan),
        ("DR", "-g", 9000, site.router_lan),
        ("TUN", "-i", 9000, site.router_lan),
    ]
    frag_time = {}
    try:
        site.restart_rvsd(pcap=True)
        site.log(
            f"\n== IPv4 fragments through rvsd on net_pcap ports: {big} UDP datagrams of 4000 bytes "
            f"(three fragments each way) and {small} of 1000 per mode, echoed by the servers"
        )
        site.log("mode      4000 B ok  1000 B ok   followed  tracked  unmatched  tiny  fragment  tunnel_fragmented")
        for label, flag, vport, via in modes:
            site.rvsadm(["-C"])
            site.set_rs_routes(via)
            how = None
            if label == "DR":
                site.set_dr_vip(True)
            elif label == "TUN":
                how = site.set_tun_decap(True)
            try:
                service(site, "rr", flag, [1, 1, 1], vport=vport, rport=9000, udp=True)
                c0 = worker_counts(site)
                got = echo(vport, big, 4000)
                ctl = echo(vport, small, 1000)
                c1 = worker_counts(site)
            finally:
                if label == "DR":
                    site.set_dr_vip(False)
                elif label == "TUN":
                    site.set_tun_decap(False)
            d = {key: c1.get(key, 0) - c0.get(key, 0) for key in (
                "fragments_followed", "fragments_tracked", "fragment_unmatched", "fragment_tiny", "fragment",
                "tunnel_fragmented")}
            site.log(
                f"{label:<8} {got['ok']:>6}/{big:<4} {ctl['ok']:>6}/{small:<3} {d['fragments_followed']:>9} "
                f"{d['fragments_tracked']:>8} {d['fragment_unmatched']:>10} {d['fragment_tiny']:>5} "
                f"{d['fragment']:>9} {d['tunnel_fragmented']:>18}" + (f"   (servers decapsulate with {how})" if how else "")
            )
            # Each 4000-byte datagram is three fragments: two follow the first (and two more
            # on the way back in FullNAT and NAT; DR and TUN answer past the director). TUN:
            # 1500-byte fragments + 20 bytes of IPIP exceed the MTU, two a datagram.
            follow = 2 * big * (2 if via != site.router_lan else 1)
            ok = (
                got["ok"] == big
                and ctl["ok"] == small
                and d["fragments_followed"] >= follow
                and (label != "TUN" or d["tunnel_fragmented"] >= 2 * big)
            )
            ck.expect(
                f"fragments {label.lower()}",
                ok,
                f"4000-byte echoes: {echo_shown(got)}; 1000-byte: {echo_shown(ctl)}; fragments_followed +{d['fragments_followed']} "
                f"(want >= {follow})" + (f", tunnel_fragmented +{d['tunnel_fragmented']} (want >= {2 * big})"
                                         if label == "TUN" else ""),
            )

        # The flood, against a FullNAT service; the servers give up their reassembly queues
        # after 1 s instead of 30 (each keeps the first fragments it was handed).
        site.rvsadm(["-C"])
        site.set_rs_routes(None)
        service(site, "rr", "--fullnat", [1, 1, 1], vport=9001, rport=9000, udp=True)
        for i in range(1, 4):
            frag_time[i] = site.rs_sh(i, "sysctl -n net.ipv4.ipfrag_time").strip() or "30"
            site.rs_sh(i, "sysctl -qw net.ipv4.ipfrag_time=1")
        before = echo(9001, 1, 4000)
        c0 = worker_counts(site)
        out = site.client_sh(f"python3 {flood_py} {site.vip} 9001 {k} 61000", timeout=120)
        c1 = worker_counts(site)
        try:
            flood = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            flood = {"sent": 0, "secs": 0.0, "end": time.time(), "raw": out[-300:]}
        tracked = c1.get("fragments_tracked", 0) - c0.get("fragments_tracked", 0)
        full = c1.get("fragment_table_full", 0) - c0.get("fragment_table_full", 0)
        other = c1.get("fragment", 0) - c0.get("fragment", 0)
        # Then one 4000-byte echo after another (0.25 s each) until one comes back.
        tries, back = 0, None
        while time.time() < flood["end"] + FRAG_TIMEOUT + 3 + site.slack:
            tries += 1
            got = echo(9001, 1, 4000, wait=0.25)
            if got["ok"] == 1:
                back = got["at"] - flood["end"]
                break
        cap = FRAG_TABLE
        site.log(
            f"flood: {flood['sent']} first fragments in {flood['secs']:.2f} s; fragments_tracked +{tracked} "
            f"(table {cap} per worker), fragment_table_full +{full}, dropped as fragment +{other}"
        )
        site.log(
            f"4000-byte echo before the flood: {echo_shown(before)}; after it: "
            + (f"back {back:.2f} s after its last fragment (echo {tries} answered, {tries - 1} before it not)"
               if back is not None else f"no answer to {tries} echoes")
        )
        ck.expect(
            "fragments flood fills the table",
            before["ok"] == 1
            and flood["sent"] == k
            and flood["secs"] < FRAG_TIMEOUT
            and 0.95 * cap <= tracked <= cap * site.workers
            and tracked + full >= 0.97 * k,
            f"{flood['sent']} first fragments in {flood['secs']:.2f} s: fragments_tracked +{tracked} "
            f"(table {cap}), fragment_table_full +{full} (together {tracked + full} of {k}); "
            f"a 4000-byte echo before it: {echo_shown(before)}",
        )
        limit = FRAG_TIMEOUT + 1 + site.slack
        ck.expect(
            "fragments flood expires",
            back is not None and back <= limit,
            (f"a 4000-byte echo answered {back:.2f} s after the flood" if back is not None else "no echo answered")
            + f" (entries live {FRAG_TIMEOUT:.0f} s; allowed {limit:.1f} s)",
        )
    finally:
        for i, v in frag_time.items():
            site.rs_sh(i, f"sysctl -qw net.ipv4.ipfrag_time={v}")
        for path in tmp:
            os.unlink(path)
        site.restart_rvsd()


def ipv6_fragments(site, ck, n):
    """IPv6 fragments through FullNAT66 and NAT66: 50 UDP datagrams of 4000 bytes of random
    content from the client to [VIP6]:9001, which the client's kernel sends in three IPv6
    fragments (MTU 1500), echoed by the servers' IPv6 echo on 9000 (three fragments back),
    come back byte-identical, and so do 5 of 1000 bytes (the control: no fragment);
    fragments_followed counts the later fragments both ways (the director's af_packet ports
    hand it IPv6 fragments as they came: the kernel's defragmentation there is IPv4's only).
    Then NAT64, on net_pcap ports (the servers answer in IPv4 fragments, which net_af_packet
    would reassemble): the same echoes to the servers' IPv4 echo on 9000 through the IPv4
    LIP, the client's IPv6 fragments sent on as IPv4 fragments and the servers' IPv4
    fragments as IPv6 ones, each 1500-byte IPv4 fragment cut in two to fit the IPv6 side
    (nat64_fragmented), all answered byte-identical."""
    import tempfile

    big, small = 50, 5
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(FRAG_ECHO_PY)
    echo_py = f.name
    vip = f"[{site.vip6}]:9001"
    try:
        site.log(
            f"\n== IPv6 fragments: {big} UDP datagrams of 4000 bytes (three fragments each way) and "
            f"{small} of 1000 per mode, echoed by the servers"
        )
        site.log("mode        4000 B ok  1000 B ok   followed  tracked  unmatched  tiny  fragment")
        for label, flag, via in [("FullNAT66", "--fullnat", None), ("NAT66", "-m", site.dip6_lan)]:
            site.rvsadm(["-C"])
            site.set_rs_routes6(via)
            site.rvsadm(["-A", "-u", vip, "-s", "rr"])
            for a in site.rs6:
                site.rvsadm(["-a", "-u", vip, "-r", f"[{a}]:9000", flag, "-w", "1"])
            # Small datagrams first, unchecked: rvsd resolves the servers and the router (a
            # burst to an unresolved neighbour overflows its parking, as Linux's unres_qlen).
            frag_echo(site, ck, echo_py, (site.vip6, 9001), 6, 100, wait=1.0)
            c0 = worker_counts(site)
            got = frag_echo(site, ck, echo_py, (site.vip6, 9001), big, 4000)
            ctl = frag_echo(site, ck, echo_py, (site.vip6, 9001), small, 1000)
            c1 = worker_counts(site)
            d = {key: c1.get(key, 0) - c0.get(key, 0) for key in (
                "fragments_followed", "fragments_tracked", "fragment_unmatched", "fragment_tiny", "fragment")}
            site.log(
                f"{label:<10} {got['ok']:>6}/{big:<4} {ctl['ok']:>6}/{small:<3} {d['fragments_followed']:>9} "
                f"{d['fragments_tracked']:>8} {d['fragment_unmatched']:>10} {d['fragment_tiny']:>5} {d['fragment']:>9}"
            )
            # Two later fragments a datagram each way.
            follow = 2 * big * 2
            ck.expect(
                f"ipv6-fragments {label.lower()}",
                got["ok"] == big and ctl["ok"] == small and d["fragments_followed"] >= follow,
                f"4000-byte echoes: {echo_shown(got)}; 1000-byte: {echo_shown(ctl)}; "
                f"fragments_followed +{d['fragments_followed']} (want >= {follow})",
            )
        # NAT64: the servers' IPv4 echo, from the IPv4 LIP, rvsd on net_pcap ports.
        site.restart_rvsd(pcap=True)
        site.rvsadm(["-C"])
        site.set_rs_routes(None)
        site.set_rs_routes6(None)
        site.rvsadm(["-A", "-u", vip, "-s", "rr"])
        for a in site.rs:
            site.rvsadm(["-a", "-u", vip, "-r", f"{a}:9000", "--fullnat", "-w", "1"])
        frag_echo(site, ck, echo_py, (site.vip6, 9001), 6, 100, wait=1.0)
        c0 = worker_counts(site)
        got = frag_echo(site, ck, echo_py, (site.vip6, 9001), big, 4000)
        ctl = frag_echo(site, ck, echo_py, (site.vip6, 9001), small, 1000)
        c1 = worker_counts(site)
        d = {key: c1.get(key, 0) - c0.get(key, 0) for key in (
            "fragments_followed", "fragments_tracked", "fragment_unmatched", "fragment_tiny", "fragment",
            "nat64_fragmented", "nat64_fragment_frames")}
        site.log(
            f"{'NAT64':<10} {got['ok']:>6}/{big:<4} {ctl['ok']:>6}/{small:<3} {d['fragments_followed']:>9} "
            f"{d['fragments_tracked']:>8} {d['fragment_unmatched']:>10} {d['fragment_tiny']:>5} {d['fragment']:>9}"
            f"   nat64_fragmented +{d['nat64_fragmented']}, nat64_fragment_frames +{d['nat64_fragment_frames']}"
        )
        # Two later fragments a datagram each way; the servers' two 1500-byte fragments of
        # each answer are 1528 bytes in IPv6: each cut in two.
        follow = 2 * big * 2
        ck.expect(
            "ipv6-fragments nat64",
            got["ok"] == big
            and ctl["ok"] == small
            and d["fragments_followed"] >= follow
            and d["nat64_fragmented"] >= 2 * big,
            f"4000-byte echoes: {echo_shown(got)}; 1000-byte: {echo_shown(ctl)}; "
            f"fragments_followed +{d['fragments_followed']} (want >= {follow}), "
            f"nat64_fragmented +{d['nat64_fragmented']} (want >= {2 * big})",
        )
    finally:
        os.unlink(echo_py)
        site.rvsadm(["-C"])
        site.set_rs_routes6(None)
        site.restart_rvsd()


def http6(site, ck, n, label, title, dests=None):
    """n `curl -6` requests from the client to [VIP6]:80, split over the servers as rr should
    (`dests`: how the servers are listed, their IPv6 addresses unless given)."""
    out = site.client_sh(
        f"for i in $(seq {n}); do curl -6 -g -s -m 2 'http://[{site.vip6}]/' || echo ERR; done",
        timeout=n * 3 + 30,
    )
    counts, errors = {}, 0
    for line in out.split():
        if line.startswith("rs"):
            counts[line] = counts.get(line, 0) + 1
        else:
            errors += 1
    errors += max(0, n - sum(counts.values()) - errors)
    site.log(f"\n== {title}")
    for i, a in enumerate(dests or [f"[{a}]:80" for a in site.rs6], 1):
        site.log(f"{a}  {counts.get(f'rs{i}', 0):>4} requests")
    site.log(f"errors  {errors}")
    ck.check_split(f"{label} http", counts, errors, [1, 1, 1])


def downloads6(site, ck, label):
    """3 downloads of the large file over IPv6, checked by size and sha256."""
    got = site.client_sh(
        "f=$(mktemp); for i in 1 2 3; do rm -f $f; "
        f"curl -6 -g -sf -m 10 -o $f 'http://[{site.vip6}]{site.big_path}'; rc=$?; "
        "echo $rc $(stat -c %s $f 2>/dev/null || echo 0) $(sha256sum < $f 2>/dev/null | cut -c1-64); "
        "done; rm -f $f",
        timeout=60,
    )
    dl = [tuple(line.split()) for line in got.splitlines()]
    whole = [d for d in dl if d == ("0", str(site.big_size), site.big_sha256)]
    site.log(f"downloads: {[(d[0], d[1], d[2][:16] if len(d) > 2 else '') for d in dl]}")
    ck.expect(f"{label} downloads", len(whole) == 3,
              f"{len(whole)}/3 downloads of {site.big_size} bytes with the right sha256")


def service6(site, mode):
    """rr over the three servers' IPv6 addresses, port 80, in `mode` (an rvsadm flag)."""
    vip = f"[{site.vip6}]:80"
    site.rvsadm(["-A", "-t", vip, "-s", "rr"])
    for a in site.rs6:
        site.rvsadm(["-a", "-t", vip, "-r", f"[{a}]:80", mode, "-w", "1"])
    return vip


def ipv6_dr(site, ck, n):
    """IPv6 DR: an IPv6 VIP on the wan link (rvsd answers the router's neighbour solicitations
    for it), an rr service over the three servers' IPv6 addresses given in ipvsadm's bracketed
    syntax, the VIP on the servers' loopback and their replies straight back through the
    router. n `curl -6` requests from the client split evenly with no error; 3 downloads of
    the large file arrive whole with the right sha256; `-L -n` lists the service and its
    dests as ipvsadm does ([addr]:port), `-L -n -c` the sessions; `-S` output restores to the
    same listing after `-C`."""
    site.set_rs_routes6(site.router_lan6, vip_on_lo=True)
    try:
        vip = service6(site, "-g")
        http6(site, ck, n, "ipv6-dr", "IPv6 DR, rr (the IPv6 VIP on the servers' loopback)")
        downloads6(site, ck, "ipv6-dr")
        listing = site.rvsadm(["-L", "-n"]).stdout
        conns = site.rvsadm(["-L", "-n", "-c"]).stdout
        site.log(listing.rstrip())
        site.log("\n".join(conns.splitlines()[:4]))
        lines = [l.split() for l in listing.splitlines()]
        svc_ok = ["TCP", vip, "rr"] in [l[:3] for l in lines]
        dests_ok = all(["->", f"[{a}]:80", "Route"] in [l[:3] for l in lines] for a in site.rs6)
        conn_ok = any(f"[{site.cip6}]:" in l and vip in l for l in conns.splitlines())
        saved = site.rvsadm(["-S", "-n"]).stdout
        site.rvsadm(["-C"])
        r = site.rvsadm(["-R"], check=False, stdin=saved)
        restored = site.rvsadm(["-L", "-n"]).stdout
        ck.expect(
            "ipv6-dr listing",
            svc_ok and dests_ok and conn_ok and r.returncode == 0 and restored == listing,
            f"-L -n lists TCP {vip} rr {svc_ok} and its Route dests [addr]:80 {dests_ok}; -L -n -c "
            f"shows [{site.cip6}]:port -> {vip} {conn_ok}; -S | -R after -C gives the same listing "
            f"{restored == listing} (rvsadm -R exit {r.returncode} {r.stderr.strip()})",
        )
    finally:
        site.set_rs_routes6(None)


def ipv6_nat(site, ck, n):
    """NAT66: the servers' IPv6 gateway is the director's lan DIP6; their replies to the
    client come back through rvsd, which sends them on from the VIP. n `curl -6` requests
    split evenly with no error; 3 downloads of the large file arrive whole with the right
    sha256."""
    site.set_rs_routes6(site.dip6_lan)
    try:
        service6(site, "-m")
        http6(site, ck, n, "ipv6-nat", "NAT66, rr (the servers' IPv6 gateway is the director)")
        downloads6(site, ck, "ipv6-nat")
    finally:
        site.set_rs_routes6(None)


def ipv6_fullnat(site, ck, n):
    """FullNAT66: an IPv6 VIP whose rr service sends the client's connections to the three
    servers' nginx from the IPv6 LIP (the servers have no IPv6 route: the LIP is on their
    link). n `curl -6` requests split evenly with no error; 3 downloads of the large file
    arrive whole with the right sha256; `-L -n -c` lists the sessions with their LIP."""
    site.set_rs_routes6(None)
    service6(site, "--fullnat")
    http6(site, ck, n, "ipv6-fullnat", "FullNAT66, rr (from the IPv6 LIP; the servers have no IPv6 route)")
    downloads6(site, ck, "ipv6-fullnat")
    conns = site.rvsadm(["-L", "-n", "-c"]).stdout
    site.log("\n".join(conns.splitlines()[:4]))
    # Sessions to an IPv6 RS with a local address (those of earlier IPv6 scenarios list "-",
    # NAT64's go to IPv4 servers).
    listed = [l.split() for l in conns.splitlines() if f"[{site.cip6}]:" in l]
    listed = [l for l in listed if len(l) > 5 and l[5].startswith("[")]
    local = [l for l in listed if len(l) == 7 and l[6] != "-"]
    from_lip = [l for l in local if l[6].startswith(f"[{site.lip6}]:")]
    ck.expect(
        "ipv6-fullnat sessions",
        len(local) >= n and len(from_lip) == len(local),
        f"{len(local)} sessions of [{site.cip6}] with a local address listed, {len(from_lip)} of them "
        f"from the LIP [{site.lip6}]",
    )
    # --lips: the IPv6 LIP's ports held by those sessions (TIME_WAIT) or in quarantine.
    lips = site.rvsadm(["--lips"]).stdout
    rows = [l.split() for l in lips.splitlines() if l.split()[1:2] == [site.lip6]]
    held = sum(int(r[2]) + int(r[3]) for r in rows if len(r) == 5)
    ck.expect("ipv6-fullnat --lips", site.lip6 in lips.splitlines()[0] and held >= n,
              f"--lips lists {site.lip6} with {held} ports in use or in quarantine")


def ipv6_persistence(site, ck, n):
    """Persistence for an IPv6 service (ipvsadm's -p): FullNAT66 round robin over the three
    servers with -p 300. n `curl -6` requests from the client are all answered by one server,
    and so are n from a second address the client takes in its /64 (each client's template
    names its server; without -p they would split evenly); the second address goes again."""
    site.set_rs_routes6(None)
    vip = f"[{site.vip6}]:80"
    site.rvsadm(["-A", "-t", vip, "-s", "rr", "-p", "300"])
    for a in site.rs6:
        site.rvsadm(["-a", "-t", vip, "-r", f"[{a}]:80", "--fullnat", "-w", "1"])
    other = site.cip6.rsplit(":", 1)[0] + ":77"
    site.client_sh(
        f"dev=$(ip -o -6 addr show | awk '$4 ~ /^{site.cip6}\\// {{print $2}}'); "
        f"ip -6 addr add {other}/64 dev $dev nodad"
    )
    try:
        seen = {}
        for label, src in (("client", site.cip6), ("second", other)):
            out = site.client_sh(
                f"for i in $(seq {n}); do curl -6 -g -s -m 2 --interface {src} 'http://[{site.vip6}]/' "
                "|| echo ERR; done",
                timeout=n * 3 + 30,
            )
            counts = {}
            for line in out.split():
                counts[line] = counts.get(line, 0) + 1
            seen[label] = counts
        site.log("\n== IPv6 persistence: FullNAT66 rr -p 300, two client addresses")
        for label, counts in seen.items():
            site.log(f"{label:<8} {counts}")
        ck.expect(
            "ipv6-persistence",
            all(len(c) == 1 and next(iter(c)).startswith("rs") and sum(c.values()) == n for c in seen.values()),
            f"each client's {n} requests answered by one server: {seen}",
        )
    finally:
        site.client_sh(
            f"dev=$(ip -o -6 addr show | awk '$4 ~ /^{other}\\// {{print $2}}'); "
            f"[ -n \"$dev\" ] && ip -6 addr del {other}/64 dev $dev"
        )
        site.rvsadm(["-D", "-t", vip], check=False)


def ipv6_tun(site, ck, n):
    """TUN for IPv6: the client's packets reach the servers in IPv6-in-IPv6 (RFC 2473) from
    the director's lan DIP6; the servers (a userspace decapsulator: this kernel has no
    ip6_tunnel) take the inner packet for the IPv6 VIP on their loopback and answer the
    client directly through the router. n `curl -6` requests split evenly with no error; 3
    downloads of the large file arrive whole with the right sha256."""
    site.set_tun_decap6(True)
    try:
        service6(site, "-i")
        http6(site, ck, n, "ipv6-tun", "IPv6 TUN, rr (IPv6-in-IPv6; the servers decapsulate and answer directly)")
        downloads6(site, ck, "ipv6-tun")
    finally:
        site.set_tun_decap6(False)


def pmtu_path6(site, ck, label, title, ip, peer, mtu):
    """Downloads of the large file over a 1280-byte IPv6 path to the client (the router's
    route to it locked), their sha256 checked, and what the servers learned from the errors
    the director passed on: `mtu` in their route cache (`ip`: "ip" or "ip -6") toward
    `peer`; at least 3 errors relayed."""
    for i in range(1, 4):
        site.rs_sh(i, f"{ip} route flush cache")
    c0 = worker_counts(site)
    site.set_client_path_mtu6(1280)
    try:
        site.log(f"\n== {title}")
        downloads6(site, ck, label)
        learned = {f"rs{i}": f"mtu {mtu}" in site.rs_sh(i, f"{ip} route get {peer}") for i in range(1, 4)}
    finally:
        site.set_client_path_mtu6(None)
    relayed = worker_counts(site).get("icmp_relayed", 0) - c0.get("icmp_relayed", 0)
    site.log(f"servers' route to {peer} learned mtu {mtu}: {learned}; icmp_relayed +{relayed}")
    ck.expect(f"{label} learned", all(learned.values()) and relayed >= 3,
              f"route cache mtu {mtu} toward the LIP: {learned}; errors relayed +{relayed}")


def pmtu_fullnat6(site, ck, n):
    """Path-MTU discovery through FullNAT66: the router's IPv6 route to the client takes 1280
    bytes, the servers send 1440-byte segments (the client's MSS). The router's Packet Too
    Big, sent to the VIP, must reach the server as an error about its own segment to the LIP
    (from the LIP); the server learns mtu 1280 toward the LIP and the downloads of the large
    file complete with the right sha256."""
    site.set_rs_routes6(None)
    service6(site, "--fullnat")
    pmtu_path6(site, ck, "pmtu-fullnat6", "FullNAT66: path MTU 1280 between router and client",
               "ip -6", site.lip6, 1280)


def service64(site):
    """NAT64: rr over the three servers' IPv4 addresses (nginx on 8080) behind the IPv6 VIP,
    FullNAT from the director's IPv4 LIP."""
    vip = f"[{site.vip6}]:80"
    site.rvsadm(["-A", "-t", vip, "-s", "rr"])
    for a in site.rs:
        site.rvsadm(["-a", "-t", vip, "-r", f"{a}:8080", "--fullnat", "-w", "1"])
    return vip


def nat64(site, ck, n):
    """NAT64: an IPv6 VIP whose rr service sends the IPv6 client's connections to the three
    servers' IPv4 nginx, translated to IPv4 from the IPv4 LIP (the servers have no IPv6
    route and no route to the client). n `curl -6` requests split evenly with no error; 3
    downloads of the large file arrive whole with the right sha256; `-L -n` lists the IPv4
    dests under the IPv6 service and `-L -n -c` the sessions from [client] to the IPv4 RS
    through the IPv4 LIP."""
    site.set_rs_routes(None)
    site.set_rs_routes6(None)
    vip = service64(site)
    http6(site, ck, n, "nat64", "NAT64, rr (IPv6 client, IPv4 servers, from the IPv4 LIP)",
          [f"{a}:8080" for a in site.rs])
    downloads6(site, ck, "nat64")
    listing = site.rvsadm(["-L", "-n"]).stdout
    conns = site.rvsadm(["-L", "-n", "-c"]).stdout
    site.log("\n".join(l for l in listing.splitlines() if vip in l or ":8080" in l))
    lines = [l.split() for l in listing.splitlines()]
    dests_ok = all(["->", f"{a}:8080", "FullNat"] in [l[:3] for l in lines] for a in site.rs)
    # The client's sessions to IPv4 servers (earlier IPv6 scenarios' to IPv6 ones may be
    # listed too, in TIME_WAIT).
    listed = [l.split() for l in conns.splitlines() if f"[{site.cip6}]:" in l and vip in l]
    listed = [l for l in listed if len(l) > 5 and not l[5].startswith("[")]
    site.log("\n".join(" ".join(l) for l in listed[:3]))
    through = [
        l for l in listed
        if len(l) == 7 and l[5].rsplit(":", 1)[0] in site.rs and l[6].startswith(f"{site.lip}:")
    ]
    ck.expect(
        "nat64 listing",
        dests_ok and len(through) >= n and len(through) == len(listed),
        f"-L -n lists the IPv4 dests as FullNat under {vip}: {dests_ok}; {len(through)} of "
        f"{len(listed)} sessions of [{site.cip6}] listed to an IPv4 RS from the LIP {site.lip}",
    )


def nat64_synproxy(site, ck, n):
    """The SYN proxy (-j enable) on a NAT64 service: rvsd answers the IPv6 client's SYNs from
    the VIP with cookies and, on the client's ACK, opens the server's connection in IPv4 from
    the IPv4 LIP, shifting sequence numbers across the translation from then on. n `curl -6`
    requests split evenly with no error; 3 downloads of the large file arrive whole with the
    right sha256; the synproxy counters moved by at least one cookie, one opened and one
    joined session per connection."""
    site.set_rs_routes(None)
    site.set_rs_routes6(None)
    vip = service64(site)
    site.rvsadm(["-E", "-t", vip, "-s", "rr", "-j", "enable"])
    listing = site.rvsadm(["-L", "-n"]).stdout
    ck.expect("nat64-synproxy listed", f"TCP  {vip} rr synproxy" in listing,
              next((l for l in listing.splitlines() if vip in l), listing.strip()))
    # One connection first, untimed, as ipv6-synproxy's (neighbours resolving on a fresh
    # director cost a retransmission the proxy then adds to).
    warm = site.client_sh(f"curl -6 -g -s -m 10 'http://[{site.vip6}]/' || echo ERR", timeout=30)
    ck.expect("nat64-synproxy first connection", warm.strip().startswith("rs"), warm.strip())
    keys = ("synproxy_cookies", "synproxy_opened", "synproxy_joined", "bad_cookie")
    c0 = worker_counts(site)
    http6(site, ck, n, "nat64-synproxy", "NAT64 with the SYN proxy, rr (-j enable)",
          [f"{a}:8080" for a in site.rs])
    downloads6(site, ck, "nat64-synproxy")
    c1 = worker_counts(site)
    d = {k: c1.get(k, 0) - c0.get(k, 0) for k in keys}
    site.log(f"synproxy counters: {d}")
    ck.expect(
        "nat64-synproxy counters",
        min(d["synproxy_cookies"], d["synproxy_opened"], d["synproxy_joined"]) >= n + 3,
        f"{d} over {n} requests and 3 downloads",
    )


def pmtu_nat64(site, ck, n):
    """Path-MTU discovery through NAT64: the router's IPv6 route to the client takes 1280
    bytes; the servers send 1480-byte IPv4 segments (the client's MSS), 1500 bytes once
    translated. The router's Packet Too Big (1280), sent to the VIP, must reach the server as
    ICMPv4 fragmentation needed (1260) about its own segment to the LIP, from the LIP; the
    servers learn mtu 1260 toward the LIP and the downloads complete with the right
    sha256."""
    site.set_rs_routes(None)
    site.set_rs_routes6(None)
    service64(site)
    pmtu_path6(site, ck, "pmtu-nat64", "NAT64: IPv6 path MTU 1280 between router and client",
               "ip", site.lip, 1260)



HC_VHOST = "www.rvs.test"


def hc_servers(site):
    """A second nginx on each server for the health-checks scenario: HTTPS on 8443 (a
    self-signed certificate made now with openssl) and plain HTTP on 8090, both serving
    /health.txt from rs<i>/hc/www for the virtual host HC_VHOST only (any other Host: 404,
    nginx's default server), logging SNI|Host|status|URI. Returns each server's www dir."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    cert, key = os.path.join(site.tmp, "hc-cert.pem"), os.path.join(site.tmp, "hc-key.pem")
    site.spawn_in("host", ["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-keyout", key, "-out", cert, "-days", "1",
                           "-subj", f"/CN={HC_VHOST}"], "hc-openssl").wait(30)
    if not (os.path.exists(cert) and os.path.exists(key)):
        raise RuntimeError("openssl made no certificate: " + open(os.path.join(site.tmp, "hc-openssl.log")).read())
    wwws = []
    for i in range(1, 4):
        home = os.path.join(site.rs_home(i), "hc")
        www = os.path.join(home, "www")
        os.makedirs(www, exist_ok=True)
        os.chmod(home, 0o755)
        os.chmod(www, 0o755)
        with open(os.path.join(www, "health.txt"), "w") as f:
            f.write("ok\n")
        os.chmod(os.path.join(www, "health.txt"), 0o644)
        conf = os.path.join(home, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {home}/body;
  proxy_temp_path {home}/proxy;
  fastcgi_temp_path {home}/fastcgi;
  uwsgi_temp_path {home}/uwsgi;
  scgi_temp_path {home}/scgi;
  log_format hc '$ssl_server_name|$http_host|$status|$request_uri';
  access_log {home}/access.log hc;
  ssl_certificate {cert};
  ssl_certificate_key {key};
  server {{
    listen 8443 ssl default_server;
    listen 8090 default_server;
    server_name _;
    return 404;
  }}
  server {{
    listen 8443 ssl;
    listen 8090;
    server_name {HC_VHOST};
    root {www};
  }}
}}
""")
        site.spawn_in(f"rs{i}", [nginx, "-p", home, "-c", conf], f"rs{i}-hc")
        wwws.append(www)
    for i in range(1, 4):
        up = wait_for(lambda i=i: site.rs_sh(i, f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve {HC_VHOST}:8443:127.0.0.1 https://{HC_VHOST}:8443/health.txt").strip() == "200", 10)
        if not up:
            raise RuntimeError(f"rs{i}: the health-check nginx did not come up")
    return wwws


def hc_weights(site, port):
    """{"addr:port": (forward, weight)} of the service on the VIP's `port` (rvsadm -L -n)."""
    r = site.rvsadm(["-L", "-n", "-t", f"{site.vip}:{port}"], check=False)
    rows = [line.split() for line in r.stdout.splitlines() if line.strip().startswith("->")]
    return {row[1]: (row[2], int(row[3])) for row in rows if len(row) > 3 and row[3].isdigit()}


def health_checks(site, ck, n):
    """keepalived's checkers against real servers: HTTPS to nginx with a self-signed
    certificate, its virtual host (Host and SNI) and the body's MD5, a status range (404 goes
    down, back on 200), a script's exit status, and a sorry server taking the traffic while
    every dest is down, handing it back (its open connection still served) when one returns
    and staying through a reload."""
    site.set_rs_routes(None)
    wwws = hc_servers(site)
    flags = os.path.join(site.tmp, "hc-flags")
    os.makedirs(flags, exist_ok=True)
    ok_md5 = "eff5bc1ef8ec9d03e640fc4370f5eacd"  # md5("ok\n"): printf 'ok\n' | md5sum
    timing = "  interval = 0.3\n  timeout = 0.3\n  rise = 1\n  fall = 2\n"

    def svc(port, rport, check, more=""):
        t = f'\n[[service]]\nproto = "tcp"\nvip = "{site.vip}"\nport = {port}\nscheduler = "rr"\n{more}'
        for a in site.rs:
            t += f'  [[service.dest]]\n  addr = "{a}"\n  port = {rport}\n  mode = "fullnat"\n'
        return t + "  [service.check]\n" + check + timing

    https = (f'  type = "https"\n  path = "/health.txt"\n  expect = "200-299"\n'
             f'  virtualhost = "{HC_VHOST}"\n  digest = "{ok_md5}"\n')
    extra = svc(8443, 8443, https)
    # The same check without virtualhost: Host is the dest's address, nginx's default server 404s.
    extra += svc(8444, 8443, '  type = "https"\n  path = "/health.txt"\n')
    extra += svc(8080, 8080, f'  type = "script"\n  script = "/bin/sh -c \'test \\"$1\\" = 8080 && test ! -e {flags}/down-\\"$RVS_DEST_ADDR\\"\' check {{port}}"\n')
    # rs1 and rs2 behind their HTTP check on 8090 (same virtual host and file), rs3 the sorry server.
    sorry = svc(80, 8080, f'  type = "http"\n  port = 8090\n  path = "/health.txt"\n  virtualhost = "{HC_VHOST}"\n',
                more=f'sorry_server = "{site.rs[2]}:8080"\n')
    sorry = sorry.replace(f'  [[service.dest]]\n  addr = "{site.rs[2]}"\n  port = 8080\n  mode = "fullnat"\n', "")
    extra += sorry
    site.reload(extra)
    rs = [f"{a}:8443" for a in site.rs]
    rs8080 = [f"{a}:8080" for a in site.rs]

    def weights_are(port, want, secs=4):
        """Waits until the listed dests of the service on `port` have the weights in `want`:
        (True or False, the weights last seen)."""
        def now():
            w = hc_weights(site, port)
            return all(w.get(k, (None, None))[1] == v for k, v in want.items())
        ok = wait_for(now, secs)
        return ok, hc_weights(site, port)

    def rm(i):
        os.remove(os.path.join(wwws[i - 1], "health.txt"))

    def put(i, text="ok\n"):
        path = os.path.join(wwws[i - 1], "health.txt")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    site.log("\n== health-checks: https (self-signed, virtualhost, digest), status range, script, sorry server")
    ok, w = weights_are(8443, {k: 1 for k in rs})
    ck.expect("health-checks https up", ok, f"https {HC_VHOST} /health.txt md5 ok, self-signed: {w}")
    ok, w = weights_are(8444, {k: 0 for k in rs})
    log = open(os.path.join(site.rs_home(1), "hc", "access.log")).read()
    sni = f"{HC_VHOST}|{HC_VHOST}|200|/health.txt" in log
    ck.expect("health-checks sni and host", sni, f"rs1's nginx logged SNI|Host|status|URI {HC_VHOST}|{HC_VHOST}|200: {sni}")
    by_addr = f"|{site.rs[0]}:8443|404|/health.txt" in log
    ck.expect("health-checks host", ok and by_addr,
              f"without virtualhost (Host {site.rs[0]}:8443 logged: {by_addr}; nginx's default server answers 404) all down: {w}")
    ok, w = weights_are(8080, {k: 1 for k in rs8080})
    ck.expect("health-checks script up", ok, f"script exits 0: {w}")
    h = ck.http(9, port=80)
    ck.expect("health-checks sorry idle", h[1] == 0 and set(h[0]) == {"rs1", "rs2"}
              and f"{site.rs[2]}:8080" not in hc_weights(site, 80), f"rs1, rs2 serve, no sorry server listed: {h}")

    # A status range: rs2 answers 404 (its file gone): down with expect 200-299; back on 200.
    rm(2)
    ok, w = weights_are(8443, {rs[0]: 1, rs[1]: 0, rs[2]: 1})
    ck.expect("health-checks status 404 down", ok, f"rs2 404: {w}")
    put(2)
    ok, w = weights_are(8443, {k: 1 for k in rs})
    ck.expect("health-checks status 200 up", ok, f"rs2 200 again: {w}")

    # The body's digest: rs3 still answers 200, with another body.
    put(3, "not ok\n")
    ok, w = weights_are(8443, {rs[0]: 1, rs[1]: 1, rs[2]: 0})
    ck.expect("health-checks digest down", ok, f"rs3's body changed (200 still): {w}")
    put(3)
    ok, w = weights_are(8443, {k: 1 for k in rs})
    ck.expect("health-checks digest up", ok, f"rs3's body right again: {w}")

    # The script: exit 1 for rs2 while its flag exists.
    flag = os.path.join(flags, f"down-{site.rs[1]}")
    open(flag, "w").close()
    ok, w = weights_are(8080, {rs8080[0]: 1, rs8080[1]: 0, rs8080[2]: 1})
    ck.expect("health-checks script down", ok, f"script exits 1 for rs2: {w}")
    os.remove(flag)
    ok, w = weights_are(8080, {k: 1 for k in rs8080})
    ck.expect("health-checks script up again", ok, f"script exits 0 again: {w}")

    # The sorry server: rs1 and rs2 down, rs3 takes the traffic.
    rm(1)
    rm(2)
    ok, w = weights_are(80, {rs8080[0]: 0, rs8080[1]: 0, rs8080[2]: 1})
    listed = w.get(rs8080[2]) == ("FullNat", 1)
    h = ck.http(6, port=80)
    ck.expect("health-checks sorry in", ok and listed and h == ({"rs3": 6}, 0),
              f"rs1, rs2 down: sorry server {rs8080[2]} listed {w.get(rs8080[2])}, answers {h}")
    # A reload keeps the verdicts, hence the sorry server.
    site.reload(extra)
    time.sleep(1.0)
    w = hc_weights(site, 80)
    h = ck.http(3, port=80)
    ck.expect("health-checks sorry through a reload", w.get(rs8080[2]) == ("FullNat", 1) and h == ({"rs3": 3}, 0),
              f"after the reload: {w}, answers {h}")
    # A keep-alive connection to the sorry server outlives its leaving.
    code = (
        "import socket,time,sys\n"
        f"s=socket.create_connection(('{site.vip}',80),timeout=5)\n"
        "names=[]\n"
        "for i in range(2):\n"
        "    s.sendall(b'GET / HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n')\n"
        "    d=b''\n"
        "    while not (b'\\r\\n\\r\\n' in d and d.endswith(b'\\n') and d.split(b'\\r\\n\\r\\n',1)[1]):\n"
        "        c=s.recv(512)\n"
        "        if not c:\n"
        "            print('RESET'); sys.exit(1)\n"
        "        d+=c\n"
        "    names.append(d.split(b'\\r\\n\\r\\n',1)[1].decode().strip())\n"
        "    if i == 0:\n"
        "        open(sys.argv[1] + '.first', 'w').write(names[0])\n"
        "        while not __import__('os').path.exists(sys.argv[1]): time.sleep(0.05)\n"
        "print(' '.join(names))\n"
    )
    go = os.path.join(flags, "go")
    held = []
    holder = threading.Thread(target=lambda: held.append(site.client_sh(f"python3 -c \"{code}\" {go}", timeout=40)))
    holder.start()
    wait_for(lambda: os.path.exists(go + ".first"), 10, 0.05)
    put(1)
    ok, w = weights_are(80, {rs8080[0]: 1, rs8080[1]: 0})
    gone = rs8080[2] not in w
    open(go, "w").close()
    holder.join()
    last = held[0].split()[-2:] if held else []
    h = ck.http(6, port=80)
    ck.expect("health-checks sorry out", ok and gone and h == ({"rs1": 6}, 0),
              f"rs1 back: sorry server unlisted {gone} ({w}), answers {h}")
    ck.expect("health-checks sorry session drains", last == ["rs3", "rs3"],
              f"a keep-alive connection to the sorry server, asked again after it left: {' '.join(last)}")
    put(2)
    ok, w = weights_are(80, {rs8080[0]: 1, rs8080[1]: 1})
    site.log(site.rvsadm(["--health"]).stdout.rstrip())
    # No checks left running into the next scenario.
    site.reload("")
    for i in range(1, 4):
        site.stop_proc(f"rs{i}-hc")


def prometheus(site, ck, n):
    """A real Prometheus (Debian's) in the director's namespace scrapes rvsd's metrics
    endpoint ([daemon] metrics on that namespace's loopback) every second, with
    monitoring/rvs-alerts.yml loaded: connections through a FullNAT service show as a positive
    rate of rvs_service_connections_total for that service, its three dests as up, every
    alert rule evaluates without error and none fires, and every query of
    monitoring/grafana-dashboard.json is valid PromQL that Prometheus answers."""
    monitoring = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "monitoring")
    rules = os.path.join(monitoring, "rvs-alerts.yml")
    checked = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    ck.expect("prometheus: promtool check rules", checked.returncode == 0, (checked.stdout + checked.stderr).strip())
    metrics, web = "127.0.0.1:9811", "127.0.0.1:9812"
    home = os.path.join(site.tmp, "prometheus")
    os.makedirs(home, exist_ok=True)
    conf = os.path.join(home, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: [\"{rules}\"]\n"
            "scrape_configs:\n  - job_name: rvsd\n"
            f"    static_configs:\n      - targets: [\"{metrics}\"]\n"
        )
    site.restart_rvsd(metrics=metrics)
    try:
        site.spawn_in(
            "dir",
            ["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={home}/data",
             f"--web.listen-address={web}", "--log.level=warn"],
            "prometheus",
        )

        def api(path, query=None):
            arg = f" --data-urlencode {shlex.quote('query=' + query)}" if query is not None else ""
            out = site.dir_sh(f"curl -s -G http://{web}{path}{arg}")
            try:
                return json.loads(out)
            except ValueError:
                return {"status": "unreachable", "error": out[-200:]}

        site.set_rs_routes(None)
        service(site, "rr", "--fullnat", [1, 1, 1])
        # Scraping starts a few seconds after Prometheus (its target discovery's first update).
        deadline = time.time() + 30
        while time.time() < deadline:
            if api("/api/v1/query", 'up{job="rvsd"} == 1').get("data", {}).get("result"):
                break
            time.sleep(0.3)
        # Connections over a few scrapes.
        total = (0, 0)
        for _ in range(4):
            counts, errors = ck.http(max(n // 4, 10))
            total = (total[0] + sum(counts.values()), total[1] + errors)
            time.sleep(1)
        time.sleep(2)
        sel = f'local_address="{site.vip}",local_port="80",proto="TCP"'
        r = api("/api/v1/query", f"sum(rate(rvs_service_connections_total{{{sel}}}[15s]))")
        res = r.get("data", {}).get("result", [])
        rate = float(res[0]["value"][1]) if res else 0.0
        samples = api("/api/v1/query", f"rvs_service_connections_total{{{sel}}}[30s]").get("data", {}).get("result", [])
        seen = [v for _, v in samples[0]["values"]] if samples else []
        ck.expect(
            "prometheus: connection rate of the service",
            r.get("status") == "success" and rate > 0 and total[1] == 0,
            f"{total[0]} connections ({total[1]} errors), rate(rvs_service_connections_total[15s]) = {rate:.2f}/s"
            + ("" if rate > 0 else f"; scraped {seen}"),
        )
        up = api("/api/v1/query", f'count(rvs_dest_up{{{sel}}} == 1) and on() up{{job="rvsd"}} == 1')
        res = up.get("data", {}).get("result", [])
        dests = int(float(res[0]["value"][1])) if res else 0
        ck.expect("prometheus: rvsd up, its three dests up", dests == 3, f"{dests} dests up" + ("" if dests == 3 else f": {up}"))
        groups = api("/api/v1/rules").get("data", {}).get("groups", [])
        rule_list = [x for g in groups for x in g.get("rules", [])]
        bad = [(x["name"], x.get("health"), x.get("lastError")) for x in rule_list if x.get("health") != "ok"]
        firing = [x["name"] for x in rule_list if x.get("state") not in (None, "inactive")]
        ck.expect(
            "prometheus: alert rules evaluate, none fires",
            len(rule_list) >= 10 and not bad and not firing,
            f"{len(rule_list)} rules; unhealthy {bad}; pending or firing {firing}",
        )
        with open(os.path.join(monitoring, "grafana-dashboard.json")) as f:
            dashboard = json.load(f)

        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    if k == "expr" and isinstance(x, str):
                        yield x
                    else:
                        yield from walk(x)
            elif isinstance(v, list):
                for x in v:
                    yield from walk(x)

        exprs = [e.replace("$__rate_interval", "10s").replace("$instance", ".*") for e in walk(dashboard)]
        failed = [(e, r.get("error")) for e in exprs for r in [api("/api/v1/query", e)] if r.get("status") != "success"]
        answered = sum(1 for e in exprs if api("/api/v1/query", e).get("data", {}).get("result"))
        ck.expect(
            "prometheus: the dashboard's queries",
            exprs and not failed,
            f"{len(exprs)} queries valid, {answered} with data; failed: {failed}",
        )
    finally:
        site.stop_proc("prometheus")
        shutil.rmtree(home, ignore_errors=True)
        site.restart_rvsd()


# Tries argv[3] connections to argv[1] (an address, IPv6 in brackets or not) port argv[2] over
# argv[4] ("tcp": a connect; "udp": a connected socket sends one datagram and waits for an
# answer). Prints JSON: each try's outcome ("refused": ECONNREFUSED; "answered"; the name of
# another error, a timeout among them) and its time in seconds.
REFUSED_PY = r"""
import json, socket, sys, time
host, port, k, proto = sys.argv[1].strip("[]"), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
out = []
for i in range(k):
    s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(3)
    t = time.time()
    try:
        s.connect((host, port))
        if proto == "udp":
            s.send(b"hello")
            s.recv(64)
        what = "answered"
    except ConnectionRefusedError:
        what = "refused"
    except OSError as e:
        what = type(e).__name__
    out.append([what, round(time.time() - t, 3)])
    s.close()
    time.sleep(0.05)
print(json.dumps(out))
"""


def no_service(site, ck, n):
    """A VIP's port that no service has is refused at once, as an IPVS director's kernel
    refuses a port with no socket: `curl http://VIP:81/` fails with "Connection refused"
    (exit 7) well under a second, a TCP connect gets ECONNREFUSED, and a connected UDP
    socket's datagram to VIP:5353 an ICMP port unreachable (ECONNREFUSED on its recv); the
    same over IPv6 to the IPv6 VIP. The service's own port still answers, and the workers
    count the refused packets (no_service) and the answers (no_service_answers)."""
    site.set_rs_routes(None)
    service(site, "rr", "--fullnat", [1, 1, 1])
    six = getattr(site, "vip6", None) is not None
    if six:
        # An IPv6 service makes the IPv6 VIP a VIP; its own port is not probed here.
        service6(site, "-g")
    before = worker_counts(site)
    k = 5
    out = site.client_sh(
        f"for i in $(seq {k}); do s=$(date +%s.%N); "
        f"err=$(curl -sS -v -m 5 http://{site.vip}:81/ 2>&1 >/dev/null); rc=$?; "
        "e=$(date +%s.%N); r=$(echo \"$err\" | grep -c 'Connection refused'); "
        "echo \"$rc $s $e $r\"; done",
        timeout=k * 6 + 30,
    )
    tries = [l.split() for l in out.splitlines() if len(l.split()) == 4]
    took = [round(float(e) - float(s), 3) for _, s, e, _ in tries]
    site.log(f"\n== no service on {site.vip}:81 and :5353 (a service on :80)")
    site.log(f"curl http://{site.vip}:81/: exit codes {[t[0] for t in tries]}, seconds {took}")
    ck.expect(
        "no-service curl",
        len(tries) == k and all(t[0] == "7" and t[3] != "0" for t in tries) and max(took) < 0.5,
        f"{k} curls exit 7 with 'Connection refused', each in under 0.5 s: exits "
        f"{[t[0] for t in tries]}, seconds {took}",
    )
    tried = k
    for name, addr in [("ipv4", site.vip)] + ([("ipv6", f"[{site.vip6}]")] if six else []):
        for proto, port in (("tcp", 81), ("udp", 5353)):
            got = site.client_sh(
                f"python3 - {addr} {port} {k} {proto} <<'EOF'\n{REFUSED_PY}\nEOF", timeout=4 * k + 30
            )
            lines = [l for l in got.splitlines() if l.startswith("[")]
            try:
                r = json.loads(lines[-1])
            except (IndexError, ValueError):
                r = []
            tried += k
            site.log(f"{name} {proto} {addr}:{port}: {r}")
            ck.expect(
                f"no-service {name} {proto}",
                len(r) == k and all(w == "refused" and t < 0.5 for w, t in r),
                f"ECONNREFUSED at once on all {k}: {r}",
            )
    after = worker_counts(site)
    refused = after.get("no_service", 0) - before.get("no_service", 0)
    answers = after.get("no_service_answers", 0) - before.get("no_service_answers", 0)
    site.log(f"workers: no_service +{refused}, no_service_answers +{answers} for {tried} tries")
    ck.expect(
        "no-service counters",
        answers >= tried and refused >= answers,
        f"no_service +{refused}, no_service_answers +{answers} for {tried} refused tries",
    )
    h = ck.http(6)
    ck.expect("no-service the service's port", h[1] == 0 and sum(h[0].values()) == 6, f"{h}")


def persistence_templates(site, ck, n):
    """`rvsadm -L -n -c` lists a persistent service's templates as ipvsadm lists IPVS's: after
    curl requests through a FullNAT service with -p 360, one line per client, `TCP mm:ss  NONE
    CIP:0  VIP:80  RIP:8080`, its RIP the one every request of the client went to, and the
    sessions beside it."""
    site.set_rs_routes(None)
    site.rvsadm(["-A", "-t", f"{site.vip}:80", "-s", "rr", "-p", "360"])
    for addr in site.rs:
        site.rvsadm(["-a", "-t", f"{site.vip}:80", "-r", f"{addr}:8080", "--fullnat", "-w", "1"])
    h = ck.http(4)
    out = site.rvsadm(["-L", "-n", "-c"]).stdout
    site.log(f"\n== persistence templates (-p 360): {h}")
    site.log("\n".join(out.splitlines()[:8]))
    rows = [l.split() for l in out.splitlines()[2:]]
    templates = [r for r in rows if len(r) >= 6 and r[2] == "NONE"]
    sessions = [r for r in rows if len(r) >= 6 and r[2] != "NONE"]
    one_rs = len(h[0]) == 1 and h[1] == 0
    rs = next(iter(h[0]), "rs?")
    rip = site.rs[int(rs[2:]) - 1] if rs[2:].isdigit() else "?"
    want = ["TCP", "NONE", f"{site.cip}:0", f"{site.vip}:80", f"{rip}:8080"]
    ok = (
        one_rs
        and len(templates) == 1
        and [templates[0][0]] + templates[0][2:6] == want
        and re.fullmatch(r"0[56]:\d\d", templates[0][1]) is not None
        and any(r[3].startswith(f"{site.cip}:") and r[5] == f"{rip}:8080" for r in sessions)
    )
    ck.expect(
        "persistence-templates listing",
        ok,
        f"all {sum(h[0].values())} requests to one RS {one_rs}; template rows {templates} "
        f"(want {want}, expiry 05:xx-06:00); sessions {len(sessions)}",
    )

SCENARIOS = {
    "fullnat-rr": fullnat_rr,
    "fullnat-wrr": fullnat_wrr,
    "nat": nat,
    "dr": dr,
    "tun": tun,
    "tun-roundtrip": tun_roundtrip,
    "failover": failover,
    "reload": reload_under_load,
    "pmtu-fullnat": pmtu_fullnat,
    "pmtu-nat": pmtu_nat,
    "udp-unreachable": udp_unreachable,
    "ipv6-director": ipv6_director,
    "ipv6-dr": ipv6_dr,
    "ipv6-nat": ipv6_nat,
    "ipv6-tun": ipv6_tun,
    "ipv6-fullnat": ipv6_fullnat,
    "pmtu-fullnat6": pmtu_fullnat6,
    "ipv6-fragments": ipv6_fragments,
    "ipv6-persistence": ipv6_persistence,
    "nat64": nat64,
    "pmtu-nat64": pmtu_nat64,
    "nat64-synproxy": nat64_synproxy,
    "synproxy": synproxy,
    "ipv6-synproxy": ipv6_synproxy,
    "proxy-protocol": proxy_protocol,
    "ipv6-proxy-protocol": ipv6_proxy_protocol,
    "time-wait": time_wait,
    "vrrp": vrrp,
    "fragments": fragments,
    "health-checks": health_checks,
    "prometheus": prometheus,
    "no-service": no_service,
    "persistence-templates": persistence_templates,
}


def run_all(site, names, n):
    """Runs `names` on `site` (clearing services before each); returns the Checks."""
    ck = Checks(site)
    for name in names:
        site.rvsadm(["-C"])
        SCENARIOS[name](site, ck, n)
    return ck
