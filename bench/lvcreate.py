"""lvcreate latency as a volume group fills up: dlvm against LVM2.

dlvm: one dlvmd on a sparse PV file. The VG is filled through the native
API (HTTP POST over dlvmd.sock) up to each LV count; there, the benchmark
times `samples` creates through the API (one request each, from Python,
on a kept-alive connection) and `samples` creates through the CLI (one
`dlvm --socket … lvcreate` process each).

LVM2: `lvm lvcreate --driverloaded n` on a loop device over a sparse file,
with an lvm.conf of its own (LVM_SYSTEM_DIR) that makes LVM look at that
loop device only and keep its backup and archive files in the scratch
directory; everything else is LVM's default, so the metadata area fills up
near 1,850 LVs. Every create is a timed process; the median at a count is
taken over the `samples` creates around it. The run stops where LVM2
refuses a new LV (or at Knobs.lvm_max).
"""

import http.client
import os
import subprocess
import time

from common import BenchError, Cleanup, Dlvm, GiB, UnixHTTPConnection, \
    log, median_ms, ratio, run

LV_SIZE = "4m"
LV_BYTES = 4 << 20
TARGET_API_MS = 1.0
TARGET_CLI_MS = 5.0
TARGET_SPEEDUP = 20.0   # LVM2 median / dlvm median at 1,000 LVs
SPEEDUP_AT = 1000


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def window(latencies, count, samples):
    """The latencies of the creates around LV number `count`."""
    lo = max(0, count - samples // 2)
    return latencies[lo:lo + samples]


class DlvmSeries:
    """dlvm lvcreate latencies at each LV count, through API and CLI."""

    def __init__(self, knobs, workdir, cleanup):
        self.knobs = knobs
        self.dlvm = Dlvm(knobs.build, os.path.join(workdir, "dlvm"))
        self.cleanup = cleanup
        self.log_path = os.path.join(workdir, "dlvmd.log")
        self.next = 0
        self.conn = None

    def create_api(self):
        name = f"lv{self.next}"
        self.next += 1
        opts = {"name": name, "size": LV_SIZE}
        try:
            self.dlvm.api(self.conn, "lvcreate", opts, ["vg0"])
        except (http.client.HTTPException, ConnectionError):
            # The server closed a kept-alive connection: retry once on a
            # new one (the time of the retry counts).
            self.conn.close()
            self.dlvm.api(self.conn, "lvcreate", opts, ["vg0"])

    def create_cli(self):
        name = f"lv{self.next}"
        self.next += 1
        run([self.dlvm.cli, "--socket", self.dlvm.ctl_sock, "lvcreate",
             "-n", name, "-L", LV_SIZE, "vg0"], timeout=60)

    def run(self):
        counts, samples = self.knobs.lv_counts, self.knobs.samples
        total = max(counts) + 2 * samples * len(counts)
        pv_gib = max(8, (total * LV_BYTES * 5 // 4) // GiB + 1)
        self.dlvm.setup_vg(f"{pv_gib}G")
        self.dlvm.start(self.cleanup, self.log_path)
        self.conn = UnixHTTPConnection(self.dlvm.ctl_sock)
        self.cleanup.push("close API connection", self.conn.close)

        res = {"pv_gib": pv_gib, "counts": {}}
        for count in counts:
            t0 = time.perf_counter()
            filled = self.next
            while self.next < count:
                self.create_api()
            if self.next > filled:
                fill_s = time.perf_counter() - t0
                log(f"dlvm: filled to {self.next} LVs through the API in "
                    f"{fill_s:.1f} s ({fill_s / (self.next - filled) * 1000:.2f}"
                    " ms each)")
            api = [timed(self.create_api) for _ in range(samples)]
            cli = [timed(self.create_cli) for _ in range(samples)]
            entry = {"api_median_ms": median_ms(api),
                     "api_max_ms": round(max(api) * 1000, 3),
                     "cli_median_ms": median_ms(cli),
                     "cli_max_ms": round(max(cli) * 1000, 3),
                     "samples": samples}
            log(f"dlvm: at {count:6} LVs: API median "
                f"{entry['api_median_ms']} ms, CLI median "
                f"{entry['cli_median_ms']} ms")
            res["counts"][str(count)] = entry
        res["lvs_created"] = self.next
        return res


LVM_CONF = """\
devices {{
    global_filter = [ "a|^{dev}$|", "r|.*|" ]
    filter = [ "a|^{dev}$|", "r|.*|" ]
    use_devicesfile = 0
    obtain_device_list_from_udev = 0
    hints = "none"
}}
activation {{
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}}
global {{
    locking_dir = "{dir}/lock"
}}
backup {{
    backup_dir = "{dir}/backup"
    archive_dir = "{dir}/archive"
}}
"""


class Lvm2Series:
    """LVM2 lvcreate latencies, every create timed, until LVM2 refuses."""

    def __init__(self, knobs, workdir, cleanup):
        self.knobs = knobs
        self.dir = workdir
        self.cleanup = cleanup
        self.env = None
        self.loop = None

    def lvm(self, *args, check=True):
        return run(["lvm", *args], env=self.env, timeout=120, check=check)

    def setup(self):
        img = os.path.join(self.dir, "lvm-pv.img")
        with open(img, "wb") as f:
            f.truncate(16 * GiB)
        self.cleanup.push("remove LVM2 PV file", os.unlink, img)
        self.loop = run(["losetup", "--find", "--show", img]).stdout.strip()
        self.cleanup.push(f"detach {self.loop}", run,
                          ["losetup", "-d", self.loop])
        etc = os.path.join(self.dir, "lvm-etc")
        os.makedirs(etc, exist_ok=True)
        with open(os.path.join(etc, "lvm.conf"), "w") as f:
            f.write(LVM_CONF.format(dev=self.loop, dir=etc))
        self.env = dict(os.environ, LVM_SYSTEM_DIR=etc,
                        LVM_SUPPRESS_FD_WARNINGS="1")
        self.lvm("pvcreate", "--driverloaded", "n", self.loop)
        self.lvm("vgcreate", "--driverloaded", "n", "vgbench", self.loop)

    def run(self):
        self.setup()
        latencies = []
        stopped_at, reason = None, None
        t0 = time.monotonic()
        while len(latencies) < self.knobs.lvm_max:
            n = len(latencies)
            cmd = ["lvm", "lvcreate", "--driverloaded", "n", "-an", "-Zn",
                   "-n", f"lv{n}", "-L", LV_SIZE, "vgbench"]
            t = time.perf_counter()
            cp = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=120)
            dt = time.perf_counter() - t
            if cp.returncode != 0:
                stopped_at = n
                lines = [ln.strip() for ln in cp.stderr.splitlines()
                         if ln.strip() and "WARNING" not in ln]
                reason = " | ".join(lines[-2:])
                log(f"LVM2: lvcreate refused at {n} LVs: {reason}")
                break
            latencies.append(dt)
            if (n + 1) % 250 == 0:
                log(f"LVM2: {n + 1} LVs, last 50 median "
                    f"{median_ms(latencies[-50:])} ms, "
                    f"{time.monotonic() - t0:.0f} s so far")
        res = {"created": len(latencies), "stopped_at": stopped_at,
               "stop_reason": reason, "counts": {},
               "median_ms_per_500": [median_ms(latencies[i:i + 500])
                                     for i in range(0, len(latencies), 500)]}
        if stopped_at is None:
            res["stop_reason"] = (f"not refused; the run stopped at "
                                  f"BENCH_LVM_MAX={self.knobs.lvm_max}")
        for count in self.knobs.lv_counts:
            w = window(latencies, count, self.knobs.samples)
            if count <= len(latencies) and w:
                res["counts"][str(count)] = {"median_ms": median_ms(w),
                                             "samples": len(w)}
        return res


def spawn_floor(samples):
    """Median time to run /bin/true from here: the floor of any CLI time."""
    return median_ms([timed(subprocess.run, ["/bin/true"])
                      for _ in range(samples)])


def run_lvcreate(knobs):
    """Run both series; a failure of one does not lose the other."""
    workdir = os.path.join(knobs.workdir, "lvcreate")
    os.makedirs(workdir, exist_ok=True)
    out = {"lv_size": LV_SIZE, "samples": knobs.samples, "errors": {},
           "spawn_true_median_ms": spawn_floor(knobs.samples)}
    for name, series in (("lvm2", Lvm2Series), ("dlvm", DlvmSeries)):
        with Cleanup() as cleanup:
            try:
                out[name] = series(knobs, workdir, cleanup).run()
            except BenchError as e:
                log(f"lvcreate {name}: FAILED: {e}")
                out["errors"][name] = str(e)
    out["ratios"] = lvcreate_ratios(out, knobs.lv_counts)
    return out


def lvcreate_ratios(out, counts):
    dl = out.get("dlvm", {}).get("counts", {})
    lv = out.get("lvm2", {}).get("counts", {})
    res = {}
    at = str(SPEEDUP_AT)
    if at in lv and at in dl:
        res[f"lvm2/dlvm-api@{at}"] = ratio(lv[at]["median_ms"],
                                           dl[at]["api_median_ms"])
        res[f"lvm2/dlvm-cli@{at}"] = ratio(lv[at]["median_ms"],
                                           dl[at]["cli_median_ms"])
    lo, hi = str(min(counts)), str(max(counts))
    if lo in dl and hi in dl and lo != hi:
        res[f"dlvm-api {hi}/{lo}"] = ratio(dl[hi]["api_median_ms"],
                                          dl[lo]["api_median_ms"])
        res[f"dlvm-cli {hi}/{lo}"] = ratio(dl[hi]["cli_median_ms"],
                                          dl[lo]["cli_median_ms"])
    return res


def report(out):
    lines = [f"lvcreate latency, median of {out['samples']} creates around "
             f"each count (ms)",
             f"  {'LVs':>8} {'dlvm API':>10} {'dlvm CLI':>10} {'LVM2':>10}"]
    dl = out.get("dlvm", {}).get("counts", {})
    lv = out.get("lvm2", {}).get("counts", {})

    def cell(d, key, field):
        v = d.get(key, {}).get(field)
        return f"{v:>10.3f}" if v is not None else f"{'-':>10}"

    for key in sorted(set(dl) | set(lv), key=int):
        lines.append(f"  {int(key):>8} {cell(dl, key, 'api_median_ms')} "
                     f"{cell(dl, key, 'cli_median_ms')} "
                     f"{cell(lv, key, 'median_ms')}")
    lines.append(f"  (starting /bin/true takes {out['spawn_true_median_ms']}"
                 " ms: the floor of every CLI time)")
    if "lvm2" in out:
        l2 = out["lvm2"]
        lines.append(f"  LVM2 made {l2['created']} LVs; stop: "
                     f"{l2['stop_reason']}")
    for name, err in out["errors"].items():
        lines.append(f"  {name}: FAILED: {err}")
    hi = str(max((int(k) for k in dl), default=0))
    if hi in dl:
        api, cli = dl[hi]["api_median_ms"], dl[hi]["cli_median_ms"]
        lines.append(f"  dlvm at {hi} LVs: API {api} ms (target <= "
                     f"{TARGET_API_MS}: {'ok' if api <= TARGET_API_MS else 'NO'})"
                     f", CLI {cli} ms (target <= {TARGET_CLI_MS}: "
                     f"{'ok' if cli <= TARGET_CLI_MS else 'NO'})")
    for name, r in out["ratios"].items():
        goal = ""
        if name.startswith("lvm2/") and r is not None:
            goal = (f"  (target >= {TARGET_SPEEDUP:g}: "
                    f"{'ok' if r >= TARGET_SPEEDUP else 'NO'})")
        elif r is not None:
            goal = "  (flat is ~1)"
        lines.append(f"  {name:20} {r}{goal}")
    return lines
