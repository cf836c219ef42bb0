"""The ECMP cluster in the container lab (docker/compose.cluster.yml): a router running BIRD 2
(ECMP hashed on the L4 5-tuple), three directors (a fourth joins), each rvsd plus Debian's
BIRD 2 announcing rvsd's routes over BGP with BFD, sessions synced all-to-all, a client and
three nginx servers; a FullNAT service with mh. Directors are really killed (docker kill),
drained (rvsadm --drain) and restarted.

    cluster  spread: 300 short connections, each director carries >= 20 %;
             flap: one director's BGP session flaps three times: out of the router and back,
               rvsd serving throughout;
             agreement: the same clients through each director in turn (policy routes on the
               router) reach the same server on every director (mh);
             views: the directors' views of their services (sent by their sync daemons)
               agree; a weight edited on one director only is counted and shown by the
               others, and agrees again once undone;
             death: 20 long downloads, keep-alive and UDP flows; the director carrying the most
               is killed: every download completes with the right sha256, nothing is reset,
               and the longest stall of any download is within BFD's detection time + 1 s;
             join: a fourth director starts under load, bulk-syncs, then announces; the
               router spreads over it and no connection breaks;
             rolling restart: under a steady curl loop each director in turn is drained,
               restarted and rejoins: zero failed requests.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ha  # noqa: E402
from ha import Checks, LabError, container, sh  # noqa: E402,F401 (Checks, LabError: docker/run)

VIP = "203.0.113.100"
DIRECTORS = ["dir-1", "dir-2", "dir-3"]
JOINER = "dir-4"
WAN = {f"dir-{n}": f"10.2.0.1{n}" for n in (1, 2, 3, 4)}
# Their servers' side, where session sync runs.
LAN = {f"dir-{n}": f"10.1.0.2{n}" for n in (1, 2, 3, 4)}
# BFD: 100 ms intervals, multiplier 3.
DETECTION_S = 0.1 * 3
SCENARIOS = ["cluster"]


class Cluster(ha.Pair):
    """The running cluster lab: ha.Pair's helpers (exec, rvsadm, alive, wait, kill, workload,
    check_workload) on the cluster's VIP."""

    vip = VIP

    def view(self, d):
        r = self.rvsadm(d, ["--cluster", "--json"], check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def serving(self, d):
        v = self.alive(d) and self.view(d)
        return bool(v) and v["phase"] == "serving" and any(r["role"] == "vip" for r in v["routes"])

    def paths(self):
        """The router's next hops for the VIP (directors' fabric addresses)."""
        out = self.exec("router", ["ip", "-4", "route", "show", VIP]).stdout
        return sorted(set(re.findall(r"via (10\.2\.0\.\d+)", out)))

    def wait_paths(self, ds, timeout=30):
        want = sorted(WAN[d] for d in ds)
        self.wait(f"the router's paths to be {want}", lambda: self.paths() == want, timeout=timeout, step=0.05)

    def start(self, d):
        sh(self.compose + ["up", "-d", "--no-recreate", d])
        sh(["docker", "start", container(d)])
        self.wait(f"{d} to announce", lambda: self.serving(d), timeout=60)

    def worker_counter(self, d, name):
        workers = json.loads(self.rvsadm(d, ["--workers", "--json"]).stdout)
        return sum(w.get(name, 0) for w in workers)

    def conns(self, d):
        """Connections this director scheduled itself, for the TCP service."""
        out = json.loads(self.rvsadm(d, ["-L", "-n", "--stats", "--json"]).stdout)
        services = out["services"] if isinstance(out, dict) else out
        return sum(s["stats"]["conns"] for s in services if s["key"]["proto"] == "tcp")

    def client_loop(self, script, timeout=300):
        return self.exec("client", ["sh", "-c", script], check=False, timeout=timeout).stdout


def spread(c, live):
    before = {d: c.conns(d) for d in live}
    out = c.client_loop(
        f"for i in $(seq 300); do curl -s -m 3 http://{VIP}/ || echo ERR; done", timeout=300
    ).split()
    ok = sum(1 for w in out if w.startswith("rs"))
    got = {d: c.conns(d) - before[d] for d in live}
    total = sum(got.values())
    shares = {d: (n / total if total else 0.0) for d, n in got.items()}
    c.ck.expect(
        "cluster spread: every director carries >= 20 %",
        ok == 300 and all(s >= 0.20 for s in shares.values()),
        f"{ok}/300 answered; " + ", ".join(f"{d} {got[d]} ({shares[d]:.0%})" for d in live),
    )


def agreement(c, live):
    """Each client address through each director in turn (the router routes by source port
    range): every director must pick the same server for it."""
    rules = []
    for i, d in enumerate(live):
        lo = 41000 + 1000 * i
        table = str(201 + i)
        c.exec("router", ["ip", "route", "replace", f"{VIP}/32", "via", WAN[d], "table", table])
        rule = ["ipproto", "tcp", "sport", f"{lo}-{lo + 999}", "lookup", table]
        c.exec("router", ["ip", "rule", "add"] + rule)
        rules.append((lo, rule))
    picks = {}
    try:
        for i, (lo, _) in enumerate(rules):
            script = " ; ".join(
                f"echo {a} $(curl -s -m 3 --interface 198.51.100.{a} --local-port {lo}-{lo + 999} http://{VIP}/ || echo ERR)"
                for a in range(50, 74)
            )
            for line in c.client_loop(script).splitlines():
                a, _, server = line.partition(" ")
                picks.setdefault(a, []).append(server.strip())
    finally:
        for _, rule in rules:
            c.exec("router", ["ip", "rule", "del"] + rule, check=False)
    agree = [a for a, s in picks.items() if len(s) == len(live) and len(set(s)) == 1 and s[0].startswith("rs")]
    servers = sorted({s[0] for s in picks.values() if s})
    c.ck.expect(
        "cluster agreement: mh picks the same server on every director",
        len(agree) == 24 and len(servers) >= 2,
        f"{len(agree)}/24 client addresses got one server through all of {', '.join(live)}; "
        f"servers used {servers}"
        + ("" if len(agree) == 24 else f"; differing {[(a, s) for a, s in picks.items() if a not in agree][:5]}"),
    )


def views(c, live):
    """Every director has the same services (the view digests its sync daemon sends agree);
    an edit made on one director only is seen by the others (counted, shown as DIFFER in
    rvsadm --cluster) and clears once the edit is undone."""
    digests = {d: c.view(d)["view_digest"] for d in live}
    agreeing = {d: all(p.get("view_agrees") for p in c.view(d)["peers"]) for d in live}
    c.ck.expect(
        "cluster views: every director has the same services",
        len(set(digests.values())) == 1 and all(agreeing.values()),
        ", ".join(f"{d} view {digests[d]} peers agree {agreeing[d]}" for d in live),
    )
    odd, others = live[0], live[1:]
    addr = LAN[odd]
    edit = ["-e", "-t", f"{VIP}:80", "-r", "10.1.0.13:80", "--fullnat", "-w"]

    def seen_by(d, agrees):
        peers = [p for p in c.view(d)["peers"] if p["addr"].split(":")[0] == addr]
        return bool(peers) and peers[0].get("view_agrees") is agrees

    def mismatches(d):
        counters = json.loads(c.rvsadm(d, ["-L", "--daemon", "--json"]).stdout)["counters"]
        return dict(counters).get("rvs_sync_view_mismatches_total", 0)

    before = {d: mismatches(d) for d in others}
    c.rvsadm(odd, edit + ["2"])
    try:
        c.wait(f"{', '.join(others)} to see {odd}'s other weight", lambda: all(seen_by(d, False) for d in others), timeout=10)
        counted = {d: mismatches(d) - before[d] for d in others}
        text = c.rvsadm(others[0], ["--cluster"]).stdout
        line = next((l for l in text.splitlines() if l.startswith(f"peer {addr}:")), "")
    finally:
        c.rvsadm(odd, edit + ["1"])
    c.wait("the views to agree again", lambda: all(seen_by(d, True) for d in others), timeout=10)
    c.ck.expect(
        "cluster views: an edit made on one director only is counted and shown by the others",
        all(n > 0 for n in counted.values()) and "services DIFFER" in line,
        f"{odd}'s dest weight 2 vs 1: mismatches counted {counted}; {others[0]} shows: {line.strip()}; "
        "agree again once undone",
    )


def flap(c, live):
    """A BGP session that flaps (BIRD's protocol disabled and enabled on one director) takes
    that director out of the router and back, and leaves rvsd serving throughout."""
    d = live[1]
    bird = ["birdc", "-s", "/run/lab/bird.ctl"]
    for _ in range(3):
        c.exec(d, bird + ["disable", "uplink"])
        c.wait_paths([x for x in live if x != d], timeout=15)
        c.exec(d, bird + ["enable", "uplink"])
        c.wait_paths(live, timeout=30)
    v = c.view(d)
    out = c.client_loop(f"for i in $(seq 30); do curl -s -m 3 http://{VIP}/ || echo ERR; done").split()
    ok = sum(1 for w in out if w.startswith("rs"))
    c.ck.expect(
        f"cluster flap: {d}'s BGP session flapped 3 times, rvsd unaffected",
        v is not None and v["phase"] == "serving" and len(v["routes"]) == 5 and ok == 30,
        f"{d}: {v and v['phase']}, {v and len(v['routes'])} routes announced, route errors "
        f"{v and v['route_errors']}; {ok}/30 requests answered after",
    )


def death(c, live):
    c.log(f"\n== cluster: 20 downloads, keep-alive and UDP flows over {', '.join(live)}; kill one")
    before = {d: c.conns(d) for d in live}
    res = c.workload(ports=80, downloads=20, rate=1.5e6, keepalive=2, udp=2, seconds=22)
    time.sleep(5)
    carried = {d: c.conns(d) - before[d] for d in live}
    victim = max(live, key=lambda d: carried[d])
    synced = {d: c.sessions(d) for d in live}
    c.ck.expect(
        "cluster death: every director holds the sessions before the kill",
        all(n >= 24 for n in synced.values()),
        ", ".join(f"{d} {n}" for d, n in synced.items()),
    )
    kill_at = time.monotonic()
    c.kill(victim)
    rest = [d for d in live if d != victim]
    c.wait_paths(rest, timeout=15)
    c.log(f"killed {victim} (it had opened {carried[victim]} of the flows); the router's paths "
          f"were {rest} after {time.monotonic() - kill_at:.2f} s")
    r = res()
    c.check_workload(f"cluster death ({victim} killed)", r, flow_limit=DETECTION_S + 1.0)
    return victim, rest


def join(c, live, joiner):
    c.log(f"\n== cluster: {joiner} joins under load")
    res = c.workload(ports=80, downloads=10, rate=1.0e6, keepalive=2, udp=2, seconds=22)
    time.sleep(4)
    before = {d: c.sessions(d) for d in live}
    t0 = time.monotonic()
    c.start(joiner)
    serving = time.monotonic() - t0
    c.wait_paths(live + [joiner], timeout=30)
    c.log(f"{joiner}: serving {serving:.2f} s after its start (bulk sync first), on the router "
          f"after {time.monotonic() - t0:.2f} s")
    v = c.view(joiner)
    bulk = [p for p in v["peers"] if p["bulk_complete"]]
    synced = c.sessions(joiner)
    c.ck.expect(
        f"cluster join: {joiner} bulk-synced before announcing",
        len(bulk) >= len(live) and synced >= 0.8 * min(before.values()),
        f"{synced} sessions (peers had {before}); bulk sync complete from {len(bulk)} peers",
    )
    r = res()
    c.check_workload(f"cluster join ({joiner})", r)
    moved = c.worker_counter(joiner, "rx_packets")
    c.ck.expect(f"cluster join: {joiner} forwards", moved > 0, f"{moved} packets received")
    return live + [joiner]


def rolling(c, live):
    c.log(f"\n== cluster: rolling restart of {', '.join(live)} under a steady curl loop")
    c.exec("client", ["rm", "-f", "/tmp/stop", "/tmp/loop.log"])
    loop = (
        f"while [ ! -f /tmp/stop ]; do curl -s -m 5 -o /dev/null -w '%{{http_code}}\\n' http://{VIP}/ "
        "|| echo ERR; done > /tmp/loop.log"
    )
    sh(["docker", "exec", "-d", container("client"), "sh", "-c", loop])
    res = c.workload(ports=80, downloads=6, rate=0.4e6, keepalive=1, udp=1, seconds=50)
    reports = []
    for d in live:
        c.rvsadm(d, ["--drain", "20"], check=False, timeout=60)
        c.wait(f"{d} to exit after its drain", lambda: not c.alive(d), timeout=40)
        logs = sh(["docker", "logs", "--tail", "60", container(d)], check=False)
        text = re.sub(r"\x1b\[[0-9;]*m", "", logs.stdout + logs.stderr)
        m = re.findall(r"status=(drain[^\n]*)", text)
        reports.append(f"{d}: {m[-1] if m else 'no drain report'}")
        c.start(d)
        c.wait_paths(live, timeout=30)
    c.exec("client", ["touch", "/tmp/stop"])
    time.sleep(6)
    codes = c.exec("client", ["cat", "/tmp/loop.log"]).stdout.split()
    failed = [x for x in codes if x != "200"]
    c.ck.expect(
        "cluster rolling restart: zero failed requests",
        len(codes) > 50 and not failed,
        f"{len(codes)} requests, {len(failed)} failed; " + "; ".join(reports),
    )
    c.check_workload("cluster rolling restart (long flows)", res())


def cluster(c):
    live = list(DIRECTORS)
    c.log(f"\n== cluster: {', '.join(live)} announce {VIP}; the router has {c.paths()}")
    spread(c, live)
    agreement(c, live)
    views(c, live)
    flap(c, live)
    victim, live = death(c, live)
    live = join(c, live, JOINER)
    c.start(victim)
    live = sorted(live + [victim])
    c.wait_paths(live, timeout=30)
    rolling(c, live)


RUN = {"cluster": cluster}


def bring_up(compose, checks):
    c = Cluster(compose, checks)
    sh(compose + ["up", "-d", "client", "rs1", "rs2", "rs3", "router"] + DIRECTORS)
    for d in DIRECTORS:
        c.wait(f"{d} to announce", lambda d=d: c.serving(d), timeout=90)
    # The client reaches the VIP, the servers reach the LIPs, through the router only.
    c.exec("client", ["ip", "route", "replace", "203.0.113.0/24", "via", "198.51.100.254"])
    for a in range(50, 74):
        c.exec("client", ["ip", "addr", "add", f"198.51.100.{a}/24", "dev", "eth0"], check=False)
    for i in (1, 2, 3):
        c.exec(f"rs{i}", ["ip", "route", "replace", "default", "via", "10.1.0.254"])
    c.wait_paths(DIRECTORS, timeout=30)
    c.wait_files()
    return c


def run_all(compose, checks, names):
    c = bring_up(compose, checks)
    for name in names:
        RUN[name](c)
    return checks
