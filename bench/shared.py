"""Shared VGs: takeover time, lvcreate latency and IOPS against a local VG.

Several hosts are several dlvmd processes (their own state directory and
--host-id) on the same sparse PV files, as in tests/system/test_shared.py.
Each VG is made offline (`dlvm vgcreate [--shared --max-hosts N]`) on PV
files of the same size; the hosts of one measurement start in parallel,
since joining a lockspace takes 2T each (T = io_timeout).

takeover   two hosts at io_timeout T; host 2 creates an LV (so it is active
           exclusively there), renews for a second and is killed with
           SIGKILL; host 1 asks for the LV with `lvchange -aey --lock-wait`
           (one API call, retried by dlvmd every 100 ms). The time from the
           kill to the reply is the takeover time. It must not be below the
           dead-host time less one renew interval (D - R = 5T - T/2: host 1
           dates host 2's last renewal from when it read it) and should be
           at most R + D = 5.5T plus a few I/Os. Targets: 8 s at T = 1 and
           60 s at T = 10 (sanlock with lvmlockd at its defaults: 140 s).
lvcreate   creates through the native API (POST /v1/cmd/lvcreate on
           dlvmd.sock, a kept-alive connection per host) on: a local VG;
           a shared VG of 2000 host ids (the default); a shared VG of 8 host
           ids (each ballot reads one block per host id). For each: from 1
           host, the only one joined; from 4 hosts at once (started
           together); from 1 host while the 3 others are joined and idle
           (they poll the VG and reload it after each change). The local
           VG's "hosts" are 4 dlvmd on 4 local VGs of their own: the same
           processes on the same machine, without the sharing. All VGs are
           up together and take turns: `samples` creates per host and case,
           split over Knobs.repeat rounds, each round in another order.
           Each host's first create after its join is timed apart. Target:
           median <= 5 ms from 1 host on the default shared VG.
iops       fio (nbd engine, 4k randwrite and randread, iodepth 32, 1 job)
           on an LV of a shared VG, active exclusively on its host, and on
           an LV of a local VG, each written in full first; the two take
           turns, Knobs.repeat rounds of Knobs.runtime seconds, medians.
           Target: shared / local >= 0.95 (the fence check on every request
           must cost nothing measurable).

Knobs of this part (besides those of bench/common.py):

  BENCH_TAKEOVER_T=1,10   io_timeouts of the takeover runs (default 1,10;
                          quick: 1)
  BENCH_SHARED_T=S        io_timeout of the lvcreate and iops hosts
                          (default 10, dlvmd's default)
"""

import http.client
import json
import math
import os
import statistics
import subprocess
import threading
import time

from common import BenchError, Cleanup, GiB, UnixHTTPConnection, \
    can_connect, env_int, env_list, log, median_ms, ratio, run, tail_of
from iops import fill, fio_job, nbd_unix_uri

VG = "vgs"
LV_SIZE = "4m"
HOSTS = 4
PATTERNS = ("randwrite", "randread")
LVCREATE_VGS = (("local", None), ("shared-2000", 2000), ("shared-8", 8))

TARGET_TAKEOVER_S = {1: 8.0, 10: 60.0}
SANLOCK_TAKEOVER_S = 140
TARGET_LVCREATE_MS = 5.0
TARGET_IOPS = 0.95


class Host:
    """One dlvmd: a state directory, its devices, maybe a host id."""

    def __init__(self, build, state, devices, host_id=None, io_timeout=None):
        self.cli = os.path.join(build, "cli", "dlvm")
        self.daemon = os.path.join(build, "daemon", "dlvmd")
        for b in (self.cli, self.daemon):
            if not os.access(b, os.X_OK):
                raise BenchError(f"{b}: not built (run: make build)")
        self.state = state
        self.devices = list(devices)
        self.host_id = host_id
        self.io_timeout = io_timeout
        self.ctl_sock = os.path.join(state, "dlvmd.sock")
        self.nbd_sock = os.path.join(state, "nbd.sock")
        self.log_path = state + ".log"
        self.tag = os.path.basename(state)
        self.name = (f"host {host_id}" if host_id
                     else f"dlvmd {os.path.basename(state)}")
        self.proc = None

    def launch(self):
        """Start dlvmd; ready() waits for it (it listens once joined)."""
        os.makedirs(self.state, exist_ok=True)
        cmd = [self.daemon, "--state-dir", self.state,
               "--devices", ",".join(self.devices), "--nbd-listen", "none"]
        if self.host_id:
            cmd += ["--host-id", str(self.host_id)]
        if self.io_timeout:
            cmd += ["--io-timeout", f"{self.io_timeout:g}"]
        out = open(self.log_path, "a")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()

    def ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not can_connect(self.ctl_sock):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with "
                                 f"{self.proc.returncode} at start: "
                                 f"{tail_of(self.log_path)}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: not listening after "
                                 f"{timeout} s: {tail_of(self.log_path)}")
            time.sleep(0.05)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def connect(self, timeout=120):
        return UnixHTTPConnection(self.ctl_sock, timeout=timeout)


def start_hosts(hosts, cleanup, io_timeout):
    """Start every host at once and wait until all have joined; cleanup
    stops them."""
    started = []
    cleanup.push("stop dlvmd", stop_hosts, started)
    for h in hosts:
        h.launch()
        started.append(h)
    for h in hosts:
        h.ready(timeout=2 * (io_timeout or 10) + 60)


def stop_hosts(hosts, grace=10):
    """SIGTERM to every host at once (one still joining answers only once
    joined), SIGKILL to those still up after grace seconds."""
    for h in hosts:
        if h.proc.poll() is None:
            h.proc.terminate()
    deadline = time.monotonic() + grace
    for h in hosts:
        try:
            h.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{h.name} ignored SIGTERM for {grace} s, killing it")
            h.proc.kill()
            h.proc.wait()


def post(conn, command, opts, args):
    """POST one command to the native API: (HTTP status, decoded body).

    A kept-alive connection the server closed is reopened once."""
    body = json.dumps({"opts": opts, "args": args})
    for attempt in (0, 1):
        try:
            conn.request("POST", f"/v1/cmd/{command}", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            break
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            if attempt:
                raise
    try:
        reply = json.loads(data) if data else {}
    except ValueError:
        reply = {"raw": data[:200].decode(errors="replace")}
    return resp.status, reply


def post_ok(conn, command, opts, args):
    status, reply = post(conn, command, opts, args)
    if status // 100 != 2:
        raise BenchError(f"dlvmd {command} {' '.join(args)}: HTTP {status}: "
                         f"{json.dumps(reply)[:300]}")
    return reply


def make_pvs(cli, state, paths, size):
    for p in paths:
        run([cli, "--state-dir", state, "pvcreate", "--size", size, p])


def make_vg(cli, state, pvs, size, max_hosts=None, vg=VG):
    """PV files and a VG on them, made offline; max_hosts: a shared VG."""
    make_pvs(cli, state, pvs, size)
    cmd = [cli, "--state-dir", state, "--devices", ",".join(pvs), "vgcreate"]
    if max_hosts:
        cmd += ["--shared", "--max-hosts", str(max_hosts)]
    run(cmd + [vg, *pvs])


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def remove_files(paths):
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def p90_ms(seconds):
    """Nearest-rank 90th percentile, in ms."""
    if not seconds:
        return None
    s = sorted(seconds)
    return round(s[math.ceil(0.9 * len(s)) - 1] * 1000, 3)


def stats(seconds, failed=0):
    return {"median_ms": median_ms(seconds), "p90_ms": p90_ms(seconds),
            "n": len(seconds), "failed": failed,
            "all_ms": [round(x * 1000, 2) for x in seconds]}


def verdict(ok):
    return "PASS" if ok else "MISS"


class SharedBench:
    """One run of the three measurements; each fails on its own."""

    def __init__(self, knobs):
        self.knobs = knobs
        self.dir = os.path.join(knobs.workdir, "shared")
        self.build = knobs.build
        self.pv_gib = max(8, 2 * knobs.size_gib + 1)
        ts = env_list("BENCH_TAKEOVER_T",
                      ["1"] if knobs.quick else ["1", "10"])
        try:
            self.takeover_ts = [float(t) for t in ts]
        except ValueError:
            raise BenchError(f"BENCH_TAKEOVER_T={','.join(ts)}: not numbers")
        self.t = env_int("BENCH_SHARED_T", 10)
        if not all(0 < t <= 300 for t in self.takeover_ts) or \
                not 0 < self.t <= 300:
            raise BenchError("BENCH_TAKEOVER_T, BENCH_SHARED_T: io_timeouts "
                             "take 1 to 300 s")
        self.cli = os.path.join(self.build, "cli", "dlvm")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def files(self, cleanup, *paths):
        """Remove these files at the end of a step (unless BENCH_KEEP)."""
        if not self.knobs.keep:
            cleanup.push("remove PV files", remove_files, paths)
        return list(paths)

    # takeover -------------------------------------------------------------

    def takeover(self, t):
        name = f"takeover-T{t:g}"
        d = self.path(name)
        os.makedirs(d)
        with Cleanup() as cleanup:
            pvs = self.files(cleanup, os.path.join(d, "pv0.img"))
            make_vg(self.cli, os.path.join(d, "offline"), pvs, "1G",
                    max_hosts=2000)
            h1, h2 = (Host(self.build, os.path.join(d, f"h{i}"), pvs, i, t)
                      for i in (1, 2))
            t0 = time.monotonic()
            start_hosts([h1, h2], cleanup, t)
            joined = time.monotonic() - t0
            c2 = h2.connect()
            cleanup.push("close connection", c2.close)
            post_ok(c2, "lvcreate", {"name": "d", "size": LV_SIZE}, [VG])
            time.sleep(1.0)     # normal renewals: the kill is what stops it
            wait = 30 * t
            c1 = h1.connect(timeout=wait + 60)
            cleanup.push("close connection", c1.close)
            t_kill = time.monotonic()
            h2.kill()
            status, reply = post(c1, "lvchange",
                                 {"activate": "ey", "lock-wait": str(wait)},
                                 [f"{VG}/d"])
            took = time.monotonic() - t_kill
            if status != 200:
                raise BenchError(f"T={t:g}: host 1 lvchange -aey {VG}/d: "
                                 f"HTTP {status} after {took:.1f} s: "
                                 f"{json.dumps(reply)[:300]}")
        res = {"io_timeout_s": t, "join_s": round(joined, 2),
               "takeover_s": round(took, 2),
               "dead_host_s": 5 * t, "renew_s": t / 2,
               "lower_bound_s": 5 * t - t / 2,
               "expected_max_s": 5 * t + t / 2,
               "target_s": TARGET_TAKEOVER_S.get(int(t)) if t == int(t)
               else None}
        res["above_bound"] = took >= res["lower_bound_s"]
        res["target_met"] = (None if res["target_s"] is None
                             else took <= res["target_s"]
                             and res["above_bound"])
        log(f"takeover T={t:g}: {took:.2f} s after the kill (bound "
            f"{res['lower_bound_s']:g} s, target {res['target_s']} s)")
        return res

    # lvcreate -------------------------------------------------------------

    def lvcreate_hosts(self, cleanup, label, max_hosts):
        """The HOSTS dlvmd of one VG kind (not started)."""
        d = self.path(f"lvcreate-{label}")
        os.makedirs(d)
        size = f"{self.pv_gib}G"
        if max_hosts:
            pvs = self.files(cleanup, os.path.join(d, "pv0.img"))
            make_vg(self.cli, os.path.join(d, "offline"), pvs, size,
                    max_hosts=max_hosts)
            return [Host(self.build, os.path.join(d, f"h{i}"), pvs, i, self.t)
                    for i in range(1, HOSTS + 1)]
        hosts = []
        for i in range(1, HOSTS + 1):
            state = os.path.join(d, f"h{i}")
            pvs = self.files(cleanup, os.path.join(d, f"pv{i}.img"))
            make_vg(self.cli, state, pvs, size)
            hosts.append(Host(self.build, state, pvs))
        return hosts

    @staticmethod
    def warm_up(hosts):
        """One create per host, untimed in the series: the first change
        after a join reads more. Returns their times in ms."""
        out = []
        for h in hosts:
            conn = h.connect()
            try:
                t0 = time.perf_counter()
                post_ok(conn, "lvcreate",
                        {"name": f"first_{h.tag}", "size": LV_SIZE}, [VG])
                out.append(round((time.perf_counter() - t0) * 1000, 2))
            finally:
                conn.close()
        return out

    @staticmethod
    def series(hosts, tag, n):
        """n creates from each host, all hosts at once, each on its own
        kept-alive connection: ([latencies per host], [failed per host],
        [first few errors])."""
        lat = [[] for _ in hosts]
        failed = [0] * len(hosts)
        errors = []
        barrier = threading.Barrier(len(hosts))

        def worker(i, h):
            conn = h.connect()
            try:
                barrier.wait(timeout=120)
                for k in range(n):
                    opts = {"name": f"{tag}_{h.tag}_{k}", "size": LV_SIZE}
                    t0 = time.perf_counter()
                    status, reply = post(conn, "lvcreate", opts, [VG])
                    dt = time.perf_counter() - t0
                    if status == 200:
                        lat[i].append(dt)
                    else:
                        failed[i] += 1
                        if len(errors) < 3:
                            errors.append(f"{h.name}: HTTP {status}: "
                                          f"{json.dumps(reply)[:200]}")
            except Exception as e:  # counted and reported with the others
                barrier.abort()
                errors.append(f"{h.name}: {e}")
                failed[i] = n - len(lat[i])
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(i, h), daemon=True)
                   for i, h in enumerate(hosts)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return lat, failed, errors

    def lvcreate(self):
        """Every VG kind up at once; the series take turns over the kinds
        (rotating the order each round), so that a change in the load of
        the machine hits all of them alike."""
        labels = [label for label, _ in LVCREATE_VGS]
        rounds = self.knobs.repeat
        n = max(1, math.ceil(self.knobs.samples / rounds))
        cases = ("1", "4", "1+3idle")
        lat = {lb: {c: [[] for _ in range(HOSTS)] for c in cases}
               for lb in labels}
        failed = {lb: {c: [0] * HOSTS for c in cases} for lb in labels}
        errors = {lb: [] for lb in labels}
        first = {lb: [] for lb in labels}

        def run_series(label, hosts, case, rnd):
            tag = {"1": "one", "4": "four", "1+3idle": "idle"}[case]
            got, bad, errs = self.series(hosts, f"{tag}{rnd}", n)
            for i in range(len(hosts)):
                lat[label][case][i] += got[i]
                failed[label][case][i] += bad[i]
            for e in errs:
                log(f"lvcreate {label} {case}: {e}")
            errors[label] += errs[:3 - len(errors[label])]

        with Cleanup() as cleanup:
            groups = {label: self.lvcreate_hosts(cleanup, label, mh)
                      for label, mh in LVCREATE_VGS}
            start_hosts([g[0] for g in groups.values()], cleanup, self.t)
            for label, g in groups.items():
                first[label] += self.warm_up(g[:1])
            for rnd in range(rounds):
                for label in rotate(labels, rnd):
                    run_series(label, groups[label][:1], "1", rnd)
            start_hosts([h for g in groups.values() for h in g[1:]],
                        cleanup, self.t)
            for label, g in groups.items():
                first[label] += self.warm_up(g[1:])
            for rnd in range(rounds):
                for label in rotate(labels, rnd):
                    run_series(label, groups[label], "4", rnd)
                for label in rotate(labels, rnd):
                    run_series(label, groups[label][:1], "1+3idle", rnd)
        out = {}
        for label, max_hosts in LVCREATE_VGS:
            la, fa = lat[label], failed[label]
            r = {"max_hosts": max_hosts,
                 "io_timeout_s": self.t if max_hosts else None,
                 "first_create_ms": first[label],
                 "1": stats(la["1"][0], fa["1"][0]),
                 "1+3idle": stats(la["1+3idle"][0], fa["1+3idle"][0]),
                 "4": stats([x for per in la["4"] for x in per],
                            sum(fa["4"])),
                 "4_per_host": [stats(per, f)
                                for per, f in zip(la["4"], fa["4"])],
                 "errors": errors[label]}
            log(f"lvcreate {label}: 1 host median {r['1']['median_ms']} ms, "
                f"4 hosts {r['4']['median_ms']} ms (p90 {r['4']['p90_ms']}, "
                f"{r['4']['failed']} failed), 1 + 3 idle "
                f"{r['1+3idle']['median_ms']} ms")
            out[label] = r
        return out

    # iops -----------------------------------------------------------------

    def iops(self):
        d = self.path("iops")
        os.makedirs(d)
        size = self.knobs.size_gib * GiB
        pv_size = f"{self.pv_gib}G"
        lv = {"name": "bench", "size": f"{self.knobs.size_gib}g"}
        rounds = {"shared": {}, "local": {}}
        with Cleanup() as cleanup:
            spv = self.files(cleanup, os.path.join(d, "shared-pv0.img"))
            make_vg(self.cli, os.path.join(d, "offline"), spv, pv_size,
                    max_hosts=2000)
            lpv = self.files(cleanup, os.path.join(d, "local-pv0.img"))
            make_vg(self.cli, os.path.join(d, "local"), lpv, pv_size)
            shared = Host(self.build, os.path.join(d, "h1"), spv, 1, self.t)
            local = Host(self.build, os.path.join(d, "local"), lpv)
            start_hosts([shared, local], cleanup, self.t)
            args = {}
            for name, h in (("shared", shared), ("local", local)):
                conn = h.connect()
                try:
                    post_ok(conn, "lvcreate", lv, [VG])
                finally:
                    conn.close()
                args[name] = ["--ioengine=nbd",
                              f"--uri={nbd_unix_uri(h.nbd_sock, VG + '/bench')}"]
                log(f"iops: writing the {name} LV in full "
                    f"({self.knobs.size_gib} GiB)")
                fill(args[name], size, os.path.join(d, f"fill-{name}.json"))
            for rnd in range(self.knobs.repeat):
                order = ("shared", "local") if rnd % 2 == 0 \
                    else ("local", "shared")
                for rw in PATTERNS:
                    for name in order:
                        out = os.path.join(d, f"fio-{name}-{rw}-{rnd}.json")
                        iops, lat = fio_job(f"{name}-{rw}", args[name], rw, 1,
                                            self.knobs.runtime, size, out)
                        log(f"round {rnd + 1}: {name:6} {rw:9}: {iops:10.0f}"
                            f" IOPS, mean latency {lat:7.1f} µs")
                        rounds[name].setdefault(rw, []).append(iops)
        res = {"size_gib": self.knobs.size_gib, "runtime_s": self.knobs.runtime,
               "rounds": self.knobs.repeat, "io_timeout_s": self.t,
               "job": "fio ioengine=nbd bs=4k iodepth=32 numjobs=1",
               "iops": {name: {rw: {"iops": round(statistics.median(v)),
                                    "rounds_iops": [round(x) for x in v]}
                               for rw, v in per.items()}
                        for name, per in rounds.items()}}
        # the two ran one after the other in each round: the median of the
        # rounds' ratios is less hit by a change of load than the ratio of
        # the medians
        res["ratios_rounds"] = {
            rw: [round(a / b, 3) for a, b in zip(rounds["shared"][rw],
                                                 rounds["local"][rw])]
            for rw in PATTERNS}
        res["ratios"] = {rw: round(statistics.median(v), 3)
                         for rw, v in res["ratios_rounds"].items()}
        return res

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        out = empty_result(self.knobs)
        out.update(pv_gib=self.pv_gib, io_timeout_s=self.t)

        def step(key, fn, *args):
            try:
                return fn(*args)
            except BenchError as e:
                log(f"shared {key}: FAILED: {e}")
                out["errors"][key] = str(e)
                return None

        for t in self.takeover_ts:
            r = step(f"takeover T={t:g}", self.takeover, t)
            if r:
                out["takeover"][f"{t:g}"] = r
        r = step("lvcreate", self.lvcreate)
        for label, lr in (r or {}).items():
            out["lvcreate"][label] = lr
            if any(lr[c]["n"] == 0 for c in ("1", "4", "1+3idle")):
                out["errors"][f"lvcreate {label}"] = (
                    "every create of a series failed: "
                    + (lr["errors"][0] if lr["errors"] else "?"))
        out["lvcreate_ratios"] = lvcreate_ratios(out["lvcreate"])
        r = step("iops", self.iops)
        if r:
            out["iops"] = r
        return out


def lvcreate_ratios(lc):
    res = {}
    loc = lc.get("local", {})
    for label in ("shared-2000", "shared-8"):
        sh = lc.get(label, {})
        for case in ("1", "1+3idle", "4"):
            res[f"{label}/local {case}"] = ratio(
                sh.get(case, {}).get("median_ms"),
                loc.get(case, {}).get("median_ms"))
    for case in ("1", "4"):
        res[f"shared-2000/shared-8 {case}"] = ratio(
            lc.get("shared-2000", {}).get(case, {}).get("median_ms"),
            lc.get("shared-8", {}).get(case, {}).get("median_ms"))
    return res


def report(out):
    lines = ["Shared VGs (several dlvmd with their own --host-id on the same "
             "PV files)"]
    lines.append("  takeover of a dead host's LV (kill -9, then lvchange -aey "
                 "--lock-wait on another host):")
    for key, r in out["takeover"].items():
        goal = ("" if r["target_s"] is None else
                f", target <= {r['target_s']:g} s: "
                f"{verdict(r['target_met'])}")
        lines.append(
            f"    T={key:>3} s: {r['takeover_s']:6.2f} s  (must be >= D - R "
            f"= {r['lower_bound_s']:g} s: "
            f"{'ok' if r['above_bound'] else 'EARLY'}; R + D = "
            f"{r['expected_max_s']:g} s{goal}; join {r['join_s']:.1f} s)")
    if out["takeover"]:
        lines.append(f"    (sanlock with lvmlockd at its defaults: "
                     f"{SANLOCK_TAKEOVER_S} s)")
    lc = out["lvcreate"]
    if lc:
        lines.append(f"  lvcreate through the API, {out['samples']} creates "
                     f"per host, median / p90 ms (shared hosts at "
                     f"io_timeout {out['io_timeout_s']} s):")
        lines.append(f"    {'VG':12} {'1 host':>15} {'1 + 3 idle':>15} "
                     f"{'4 at once':>15} {'failed':>7}  per host (4 at once)")

        def cell(s):
            return f"{s['median_ms']:>7.2f} /{s['p90_ms']:>6.2f}" \
                if s.get("median_ms") is not None else f"{'-':>15}"

        for label, r in lc.items():
            per = "  ".join(f"{s['median_ms']}/{s['p90_ms']}"
                            if s["median_ms"] is not None else "-"
                            for s in r["4_per_host"])
            failed = r["1"]["failed"] + r["1+3idle"]["failed"] + \
                r["4"]["failed"]
            lines.append(f"    {label:12} {cell(r['1'])} "
                         f"{cell(r['1+3idle'])} {cell(r['4'])} {failed:>7}  "
                         f"{per}")
        lines.append("    (local: 4 dlvmd on 4 local VGs of their own)")
        for name, r in out["lvcreate_ratios"].items():
            if r is not None:
                lines.append(f"    {name:28} {r:8.2f}")
        for label in ("shared-2000", "shared-8"):
            m = lc.get(label, {}).get("1", {}).get("median_ms")
            if m is not None:
                lines.append(f"    {label} 1 host median {m} ms: target <= "
                             f"{TARGET_LVCREATE_MS:g} ms: "
                             f"{verdict(m <= TARGET_LVCREATE_MS)}"
                             + ("" if label == "shared-2000"
                                else " (not the default max-hosts)"))
    io = out.get("iops")
    if io:
        lines.append(f"  I/O: fio nbd 4k, iodepth 32, 1 job, "
                     f"{io['runtime_s']} s, {io['size_gib']} GiB LV, median "
                     f"of {io['rounds']} rounds (IOPS):")
        lines.append(f"    {'':8}" + "".join(f"{rw:>12}" for rw in PATTERNS))
        for name in ("shared", "local"):
            lines.append(f"    {name:8}" + "".join(
                f"{io['iops'][name][rw]['iops']:>12}" for rw in PATTERNS))
        for rw in PATTERNS:
            r = io["ratios"][rw]
            each = " ".join(f"{x:.2f}" for x in io["ratios_rounds"][rw])
            lines.append(f"    shared/local {rw:9} {r:6.3f}  target >= "
                         f"{TARGET_IOPS}: "
                         f"{verdict(r is not None and r >= TARGET_IOPS)}"
                         f"  (median of the rounds: {each})")
    for key, err in out["errors"].items():
        lines.append(f"  {key}: FAILED: {err}")
    return lines


def empty_result(knobs):
    return {"samples": knobs.samples, "lv_size": LV_SIZE, "pv_gib": None,
            "io_timeout_s": None, "takeover": {}, "lvcreate": {},
            "lvcreate_ratios": {}, "errors": {}}


def run_shared(knobs):
    try:
        bench = SharedBench(knobs)
    except BenchError as e:
        log(f"shared: FAILED: {e}")
        out = empty_result(knobs)
        out["errors"]["setup"] = str(e)
        return out
    return bench.run()
