"""The HA pair in the container lab (docker/compose.ha.yml): two directors, each rvsd plus
Debian's keepalived, a client and three nginx servers. Directors are really killed (docker
kill) and restarted; the client's workload (docker/ha-client) checks every byte.

    ha-failover  20 downloads of 24 MiB (FullNAT and NAT) at 1.5 MB/s, keep-alive HTTP and UDP
                 flows; the master is killed mid-transfer. Every download completes with the
                 right sha256, nothing is reset, keep-alive sessions and UDP flows stay on
                 their server, new connections work; the interruption (the longest time no
                 stream received a byte) is within keepalived's detection time + 1 s. Then the
                 old master comes back (BACKUP, nopreempt), bulk-syncs while new downloads run,
                 and the other director is killed: again nothing is lost.
    ha-sync-cut  the backup stops receiving sync datagrams (iptables) while downloads open;
                 when the link is back, the lost datagrams are counted and the backup
                 converges by bulk sync; then the master is killed and those downloads
                 complete.
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab"))
import labkit  # noqa: E402

PROJECT = "rvslab"
VIP = "198.51.100.100"
DIRECTORS = ["dir-a", "dir-b"]
# keepalived: advert_int 1, priority 100 for the lower one: 3 adverts + skew (256-100)/256.
DETECTION_S = 3 * 1.0 + (256 - 100) / 256
SCENARIOS = ["ha-failover", "ha-sync-cut"]


class LabError(Exception):
    pass


class Log:
    def log(self, msg):
        print(msg, flush=True)


def Checks():
    """The lab's pass/fail bookkeeping (labkit.Checks), printing as it goes."""
    return labkit.Checks(Log())


def container(service):
    return f"{PROJECT}_{service}_1"


def sh(args, check=True, timeout=600, stdin=None):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(args)}: {(r.stderr or r.stdout or '').strip()[-2000:]}")
    return r


class Pair:
    """The running HA lab (and the base of docker/cluster.py's Cluster)."""

    vip = VIP

    def __init__(self, compose, checks):
        self.compose = compose
        self.ck = checks

    def log(self, msg):
        print(msg, flush=True)

    def exec(self, service, args, check=True, timeout=120):
        return sh(["docker", "exec", "-i", container(service)] + list(args), check=check, timeout=timeout)

    def rvsadm(self, d, args, check=True, timeout=120):
        return self.exec(d, ["rvsadm", "--socket", "/run/lab/rvsd.sock"] + list(args), check=check, timeout=timeout)

    def alive(self, d):
        r = sh(["docker", "inspect", "-f", "{{.State.Running}}", container(d)], check=False)
        return r.stdout.strip() == "true"

    def up(self, d):
        """Whether d's rvsd answers."""
        return self.alive(d) and self.rvsadm(d, ["-L", "-n"], check=False).returncode == 0

    def holds_vip(self, d):
        r = self.exec(d, ["ip", "-4", "-o", "addr", "show", "dev", "rvswan"], check=False)
        return f" {VIP}/" in r.stdout

    def wait(self, what, cond, timeout=60, step=0.1):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise LabError(f"timed out waiting for {what}")
            time.sleep(step)

    def start(self, d):
        sh(self.compose + ["up", "-d", "--no-recreate", d])
        sh(["docker", "start", container(d)])
        self.wait(f"{d}'s rvsd", lambda: self.up(d))

    def kill(self, d):
        sh(["docker", "kill", container(d)])

    def master(self):
        held = [d for d in DIRECTORS if self.alive(d) and self.holds_vip(d)]
        if len(held) != 1:
            raise LabError(f"not exactly one director holds the VIP: {held}")
        return held[0]

    def other(self, d):
        return DIRECTORS[1 - DIRECTORS.index(d)]

    def sessions(self, d):
        workers = json.loads(self.rvsadm(d, ["--workers", "--json"]).stdout)
        return sum(w["sessions"] for w in workers)

    def counters(self, d):
        v = json.loads(self.rvsadm(d, ["-L", "--daemon", "--json"]).stdout)
        return dict((k, n) for k, n in v["counters"])

    def wait_files(self):
        """The servers generate their 24 MiB file at start: waits until each has it."""
        self.wait("the servers' files", lambda: all(
            self.exec(f"rs{i}", ["test", "-s", f"/tmp/rs{i}/files/big.bin"], check=False).returncode == 0
            for i in (1, 2, 3)), timeout=60)

    def set_rs_gateway(self):
        for i in (1, 2, 3):
            self.exec(f"rs{i}", ["ip", "route", "replace", "default", "via", "10.1.0.201"])

    def workload(self, **kw):
        """Starts docker/ha-client in the client; returns a function that waits for its JSON."""
        args = ["python3", "/opt/rvs/docker/ha-client", self.vip] + [
            f"--{k.replace('_', '-')}={v}" for k, v in kw.items()
        ]
        box = {}

        def run():
            box["r"] = self.exec("client", args, check=False, timeout=300)

        t = threading.Thread(target=run)
        t.start()
        started = time.monotonic()

        def result():
            t.join()
            r = box["r"]
            if r.returncode != 0:
                raise LabError(f"ha-client failed: {r.stderr.strip()[-2000:]}")
            out = json.loads(r.stdout)
            out["started"] = started
            return out

        return result

    def check_workload(self, name, r, kill_at=None, flow_limit=None):
        """Every download whole, nothing reset, every session and flow on one server; with
        `kill_at`, the longest silence of all streams within keepalived's detection time + 1
        s; with `flow_limit`, the longest stall of any one download within it."""
        dl = r["downloads"]
        bad = [d for d in dl if d["error"] or d["sha256"] != r["expected_sha256"]]
        resets = sum(1 for d in dl + r["keepalive"] if d["error"] == "reset")
        self.ck.expect(
            f"{name}: downloads",
            not bad and len(dl) > 0,
            f"{len(dl) - len(bad)}/{len(dl)} complete, {r['expected_bytes']} bytes each, sha256 "
            f"{'right' if not bad else 'WRONG or missing: ' + json.dumps(bad)[:600]}",
        )
        self.ck.expect(f"{name}: connections reset", resets == 0, f"{resets}")
        ka = r["keepalive"]
        ka_bad = [k for k in ka if k["error"] or len(k["servers"]) != 1]
        self.ck.expect(
            f"{name}: keep-alive sessions on the same server",
            not ka_bad,
            ", ".join(f"{k['port']}:{'/'.join(k['servers'])}×{k['requests']}" for k in ka)
            + (f" BAD {ka_bad}" if ka_bad else ""),
        )
        ud = r["udp"]
        ud_bad = [u for u in ud if len(u["servers"]) != 1 or u["answered"] == 0]
        self.ck.expect(
            f"{name}: UDP flows on the same server",
            not ud_bad,
            ", ".join(f"{'/'.join(u['servers'])} {u['answered']}/{u['sent']}" for u in ud),
        )
        if flow_limit is not None:
            gaps = sorted((d["gap_s"] for d in dl), reverse=True)
            worst = gaps[0] if gaps else 0.0
            self.ck.expect(
                f"{name}: interruption",
                worst <= flow_limit,
                f"longest stall of a download {worst:.2f} s (longest six: "
                f"{' '.join(f'{g:.2f}' for g in gaps[:6])}), limit {flow_limit:.2f} s",
            )
        if kill_at is not None:
            limit = DETECTION_S + 1.0
            killed = kill_at - r["started"]
            self.ck.expect(
                f"{name}: interruption",
                r["gap_s"] <= limit,
                f"{r['gap_s']:.2f} s without a byte (at {r['gap_at_s']} s; kill at {killed:.2f} s), "
                f"limit {limit:.2f} s (3 adverts + skew + 1 s)",
            )

    def new_connections(self, name):
        ok = 0
        for port in (80, 8080):
            out = self.exec(
                "client",
                ["sh", "-c", f"for i in $(seq 10); do curl -s -m 2 http://{VIP}:{port}/ || echo ERR; done"],
                check=False,
                timeout=60,
            ).stdout.split()
            ok += sum(1 for w in out if w.startswith("rs"))
        self.ck.expect(f"{name}: new connections", ok == 20, f"{ok}/20 answered")

    def failover(self, name, survivor, timeout=20):
        """Waits for `survivor` to hold the VIP; returns when it did."""
        self.wait(f"{survivor} to take the VIP", lambda: self.holds_vip(survivor), timeout=timeout, step=0.05)
        return time.monotonic()


def ha_failover(p):
    a = p.master()
    b = p.other(a)
    p.log(f"\n== ha-failover: {a} MASTER, {b} BACKUP; 20 downloads, keep-alive and UDP; kill {a}")
    res = p.workload(downloads=10, rate=1.5e6, keepalive=2, udp=2, seconds=22)
    time.sleep(5)
    synced = p.sessions(b)
    p.ck.expect(f"ha-failover: {b} holds the sessions before the kill", synced >= 24, f"{synced} sessions on {b}")
    kill_at = time.monotonic()
    p.kill(a)
    took = p.failover("ha-failover", b)
    p.log(f"{b} took the VIP {took - kill_at:.2f} s after the kill")
    r = res()
    p.check_workload("ha-failover", r, kill_at)
    p.new_connections("ha-failover")
    # The old master comes back: BACKUP (nopreempt), bulk sync, then it carries the flows.
    p.log(f"\n== ha-failover: {a} back while new downloads run; then kill {b}")
    res = p.workload(downloads=5, rate=1.0e6, keepalive=1, udp=1, seconds=24)
    time.sleep(2)
    p.start(a)
    time.sleep(3)
    p.ck.expect(f"ha-failover: {a} back as BACKUP", not p.holds_vip(a) and p.holds_vip(b), "the VIP stays on " + b)
    want = p.sessions(b)
    p.wait(f"{a} to bulk-sync", lambda: p.sessions(a) >= want, timeout=15)
    c = p.counters(a)
    p.ck.expect(
        f"ha-failover: {a} bulk-synced",
        c.get("rvs_sync_bulk_requests_sent_total", 0) >= 1 and c.get("rvs_worker_sync_installed_total", 0) >= want,
        f"{p.sessions(a)} sessions (of {want} on {b}), bulk requests {c.get('rvs_sync_bulk_requests_sent_total')}, "
        f"installed {c.get('rvs_worker_sync_installed_total')}",
    )
    kill_at = time.monotonic()
    p.kill(b)
    took = p.failover("ha-failover", a)
    p.log(f"{a} took the VIP {took - kill_at:.2f} s after the kill")
    r = res()
    p.check_workload("ha-failover (back)", r, kill_at)
    p.new_connections("ha-failover (back)")
    p.start(b)


def ha_sync_cut(p):
    m = p.master()
    k = p.other(m)
    p.log(f"\n== ha-sync-cut: {k} receives no sync datagrams for 8 s while downloads open on {m}")
    before = p.counters(k)
    cut = ["iptables", "-I", "INPUT", "-i", "rvslan", "-p", "udp", "--dport", "8848", "-j", "DROP"]
    p.exec(k, cut)
    res = p.workload(downloads=4, rate=1.0e6, keepalive=1, udp=1, seconds=24)
    time.sleep(8)
    during = p.sessions(k)
    p.exec(k, ["iptables", "-D"] + cut[2:])
    # The next datagram shows the gap; a new connection makes one now.
    p.new_connections("ha-sync-cut")
    want = p.sessions(m)
    p.wait(f"{k} to converge", lambda: p.sessions(k) >= want, timeout=15)
    after = p.counters(k)
    lost = after.get("rvs_sync_datagrams_lost_total", 0) - before.get("rvs_sync_datagrams_lost_total", 0)
    bulk = after.get("rvs_sync_bulk_requests_sent_total", 0) - before.get("rvs_sync_bulk_requests_sent_total", 0)
    p.ck.expect(
        "ha-sync-cut: counted and converged",
        lost > 0 and bulk > 0,
        f"{k}: {during} sessions during the cut, {p.sessions(k)} after (of {want} on {m}); "
        f"{lost} datagrams lost, {bulk} bulk requests",
    )
    kill_at = time.monotonic()
    p.kill(m)
    p.failover("ha-sync-cut", k)
    r = res()
    p.check_workload("ha-sync-cut", r, kill_at)
    p.start(m)


RUN = {"ha-failover": ha_failover, "ha-sync-cut": ha_sync_cut}


def bring_up(compose, checks):
    """dir-a first, so that it becomes MASTER; then dir-b; the servers' gateway is the VIP
    pair's LIP, 10.1.0.201."""
    p = Pair(compose, checks)
    sh(compose + ["up", "-d", "client", "rs1", "rs2", "rs3", "dir-a"])
    p.wait("dir-a's rvsd", lambda: p.up("dir-a"))
    p.wait("dir-a to become MASTER", lambda: p.holds_vip("dir-a"), timeout=30)
    sh(compose + ["up", "-d", "dir-b"])
    p.wait("dir-b's rvsd", lambda: p.up("dir-b"))
    p.set_rs_gateway()
    p.wait_files()
    time.sleep(2)
    if p.holds_vip("dir-b"):
        raise LabError("dir-b took the VIP from a working MASTER")
    return p


def run_all(compose, checks, names):
    p = bring_up(compose, checks)
    for name in names:
        RUN[name](p)
    return checks
