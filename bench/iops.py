"""I/O benchmark: fio 4k random writes and reads over NBD, with baselines.

Every target is measured with the same fio job (4 KiB blocks, iodepth 32,
1 and 2 jobs, time based) in the same run:

  dlvm         a linear LV served by dlvmd on its Unix NBD socket (PV
               and VG made offline with the CLI, the LV through the API)
  nbdkit-file  nbdkit's file plugin on a raw file of the same size
  qemu-nbd     qemu-nbd on that raw file (options in Knobs.qemu_nbd_opts)
  nbdkit-null  nbdkit's null plugin: the ceiling of the protocol and of
               fio's NBD client on this machine
  raw          fio with io_uring and O_DIRECT on the raw file: the disk
  dlvm-any     dlvm with --nbd-cpus any: its connections are not kept to
               the CPUs of the disk's interrupts (dlvm-any / dlvm is what
               that placement gains)
  raw-irq      raw, with fio kept to the CPUs of the disk's interrupts as
               dlvmd keeps its connections. The disk's limit is the better
               of raw and raw-irq: a submitter placed so may get more out
               of the disk

Targets that are not run by default:

  serve-file        tests/tools/nbd_serve_file on the raw file: dlvmd's NBD
                    server without a VG
  serve-file-fence  the same with a fence whose deadline is far in the
                    future, as a shared VG's maps have: the cost of the
                    fence checks

A target name may end in @DIR to take the binaries from another build tree
("dlvm@/tmp/build-old"), to compare two builds in the same run.

The raw file and the LV are written in full first, so that reads hit
allocated blocks. With the nbd engine each fio job opens its own
connection. The whole set is run Knobs.repeat times; within a round each
job runs on every target in turn before the next job. The median of the
rounds is reported; comparisons between targets of one kind (builds, fence)
are the median of the ratios of the rounds.
"""

import itertools
import json
import os
import statistics

from common import BenchError, Cleanup, Dlvm, GiB, UnixHTTPConnection, \
    log, ratio, run, start_server

PATTERNS = ("randwrite", "randread")
JOBS = (1, 2)
TARGET_LIMIT = 0.9     # dlvm / min(max(raw, raw-irq), null)
TARGET_OTHERS = 1.5    # dlvm / nbdkit-file, dlvm / qemu-nbd


def nbd_unix_uri(sock, export=""):
    return f"nbd+unix:///{export}?socket={sock}"


def fio_job(name, target_args, rw, numjobs, runtime, size, out, last=()):
    """Run one fio job; return (IOPS, mean completion latency in µs).
    The options in last come after the job's own (and so override them)."""
    ramp = 1 if runtime >= 5 else 0
    # Dirty pages that a page-cache target (nbdkit file, qemu-nbd) left
    # behind are written back now, not during the next target's run.
    os.sync()
    cmd = ["fio", f"--name={name}", *target_args, f"--rw={rw}", "--bs=4k",
           "--iodepth=32", f"--numjobs={numjobs}", "--group_reporting",
           "--time_based", f"--runtime={runtime}", f"--ramp_time={ramp}",
           f"--size={size}", "--norandommap", "--randrepeat=0",
           "--output-format=json", f"--output={out}", *last]
    run(cmd, timeout=runtime + ramp + 120)
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    if job.get("error"):
        raise BenchError(f"fio {name} {rw}: error {job['error']}")
    side = job["write"] if rw.endswith("write") else job["read"]
    return side["iops"], side.get("clat_ns", {}).get("mean", 0) / 1000


def fill(target_args, size, out):
    """Write the whole target once, sequentially, in 1 MiB blocks."""
    run(["fio", "--name=fill", *target_args, "--rw=write", "--bs=1m",
         "--iodepth=8", f"--size={size}", "--output-format=json",
         f"--output={out}"], timeout=1800)


class IoBench:
    """One run of the I/O benchmark over the selected targets."""

    def __init__(self, knobs):
        self.knobs = knobs
        self.dir = os.path.join(knobs.workdir, "io")
        self.size = knobs.size_gib * GiB
        self.raw = os.path.join(self.dir, "raw.img")
        self.settings = {}

    # Each start_* starts what the target needs under cleanup and returns
    # the fio arguments that name the target.

    def start_raw(self, cleanup, build, name):
        self.settings["raw"] = "fio --ioengine=io_uring --direct=1"
        return ["--ioengine=io_uring", "--direct=1",
                f"--filename={self.raw}"]

    def start_raw_irq(self, cleanup, build, name):
        cpus = disk_irq_cpus(self.raw)
        if not cpus:
            raise BenchError(f"{self.raw}: no disk with MSI interrupts under it")
        cpulist = ",".join(map(str, sorted(cpus)))
        self.settings[name] = ("fio --ioengine=io_uring --direct=1 "
                               f"--cpus_allowed={cpulist}")
        return ["--ioengine=io_uring", "--direct=1", f"--cpus_allowed={cpulist}",
                f"--filename={self.raw}"]

    def start_nbdkit_file(self, cleanup, build, name):
        sock = os.path.join(self.dir, "nbdkit-file.sock")
        cmd = ["nbdkit", "-f", "-U", sock, "file", f"file={self.raw}"]
        self.settings["nbdkit-file"] = "nbdkit file (default threads, cache)"
        start_server(cmd, [sock], "nbdkit file", cleanup,
                     os.path.join(self.dir, "nbdkit-file.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_qemu_nbd(self, cleanup, build, name):
        sock = os.path.join(self.dir, "qemu-nbd.sock")
        opts = ["-f", "raw", *self.knobs.qemu_nbd_opts, "--shared=8",
                "--persistent"]
        self.settings["qemu-nbd"] = "qemu-nbd " + " ".join(opts)
        start_server(["qemu-nbd", *opts, "-k", sock, self.raw], [sock],
                     "qemu-nbd", cleanup,
                     os.path.join(self.dir, "qemu-nbd.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_qemu_nbd_direct(self, cleanup, build, name):
        """qemu-nbd with O_DIRECT and native AIO: a server that, like
        dlvmd, sends every write to the disk before it replies (no page
        cache), so the NBD round trip is the only difference from raw."""
        sock = os.path.join(self.dir, "qemu-nbd-direct.sock")
        opts = ["-f", "raw", "--cache=none", "--aio=native", "--shared=8",
                "--persistent"]
        self.settings[name] = "qemu-nbd " + " ".join(opts)
        start_server(["qemu-nbd", *opts, "-k", sock, self.raw], [sock],
                     name, cleanup,
                     os.path.join(self.dir, "qemu-nbd-direct.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_nbdkit_null(self, cleanup, build, name):
        sock = os.path.join(self.dir, "nbdkit-null.sock")
        self.settings["nbdkit-null"] = "nbdkit null"
        start_server(["nbdkit", "-f", "-U", sock, "null", str(self.size)],
                     [sock], "nbdkit null", cleanup,
                     os.path.join(self.dir, "nbdkit-null.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_serve_file(self, cleanup, build, name, fence=False):
        tool = os.path.join(build, "tests", "tools", "nbd_serve_file")
        if not os.access(tool, os.X_OK):
            raise BenchError(f"{tool}: not built (run: make build)")
        sock = os.path.join(self.dir, safe_name(name) + ".sock")
        extra = ["--fence-after-ms", str(10 * 365 * 86400 * 1000)] if fence \
            else []
        self.settings[name] = ("nbd_serve_file" + (" " + " ".join(extra)
                                                   if extra else "")
                               + " on the raw file")
        start_server([tool, "-U", sock, *extra, f"bench={self.raw}"], [sock],
                     name, cleanup,
                     os.path.join(self.dir, safe_name(name) + ".log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock, 'bench')}"]

    def start_serve_file_fence(self, cleanup, build, name):
        return self.start_serve_file(cleanup, build, name, fence=True)

    def start_dlvm(self, cleanup, build, name, extra=()):
        state = os.path.join(self.dir, safe_name(name))
        dlvm = Dlvm(build, state)
        pv_gib = max(8, 2 * self.knobs.size_gib + 1)
        dlvm.setup_vg(f"{pv_gib}G")
        dlvm.start(cleanup, os.path.join(self.dir, f"{safe_name(name)}.log"),
                   extra)
        conn = UnixHTTPConnection(dlvm.ctl_sock)
        try:
            dlvm.api(conn, "lvcreate",
                     {"name": "bench", "size": f"{self.knobs.size_gib}g"},
                     ["vg0"])
        finally:
            conn.close()
        self.settings[name] = (" ".join(["dlvmd", *extra]) +
                               ", linear LV vg0/bench on a "
                               f"{pv_gib} GiB sparse PV file")
        args = ["--ioengine=nbd",
                f"--uri={nbd_unix_uri(dlvm.nbd_sock, 'vg0/bench')}"]
        log(f"{name}: writing vg0/bench in full ({self.knobs.size_gib} GiB)")
        fill(args, self.size,
             os.path.join(self.dir, f"fill-{safe_name(name)}.json"))
        return args

    def start_dlvm_any(self, cleanup, build, name):
        return self.start_dlvm(cleanup, build, name, ["--nbd-cpus", "any"])

    STARTERS = {
        "dlvm": start_dlvm,
        "dlvm-any": start_dlvm_any,
        "raw-irq": start_raw_irq,
        "nbdkit-file": start_nbdkit_file,
        "qemu-nbd": start_qemu_nbd,
        "qemu-nbd-direct": start_qemu_nbd_direct,
        "nbdkit-null": start_nbdkit_null,
        "raw": start_raw,
        "serve-file": start_serve_file,
        "serve-file-fence": start_serve_file_fence,
    }

    def prepare_raw(self):
        if os.path.exists(self.raw):
            os.unlink(self.raw)
        log(f"raw: writing {self.raw} in full ({self.knobs.size_gib} GiB)")
        fill(["--ioengine=io_uring", "--direct=1", f"--filename={self.raw}"],
             self.size, os.path.join(self.dir, "fill-raw.json"))

    def measure(self, name, args, rw, nj, rnd):
        """One fio job on one target: (IOPS, µs)."""
        out = os.path.join(self.dir,
                           f"fio-{safe_name(name)}-{rw}-{nj}-{rnd}.json")
        iops, lat = fio_job(name, args, rw, nj, self.knobs.runtime,
                            self.size, out)
        log(f"round {rnd + 1}: {name:12} {rw:9} jobs={nj}: "
            f"{iops:10.0f} IOPS, mean latency {lat:7.1f} µs")
        return iops, lat

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        for name in self.knobs.targets:
            if kind(name) not in self.STARTERS:
                raise BenchError(f"BENCH_TARGETS: unknown target {name!r}; "
                                 f"known: {', '.join(self.STARTERS)}")
        errors = {}
        rounds = {}     # target -> "rw/jobs" -> [(IOPS, µs) per round]
        if {"raw", "raw-irq", "nbdkit-file", "qemu-nbd", "serve-file",
                "serve-file-fence"} & {kind(t) for t in self.knobs.targets}:
            self.prepare_raw()
        # Every server stays up for the whole part (idle servers cost no
        # CPU); each job is run on every target in turn before the next
        # job, so that a change in the load of the machine hits all of
        # them alike.
        with Cleanup() as cleanup:
            args = {}
            for name in self.knobs.targets:
                build = name.partition("@")[2] or self.knobs.build
                try:
                    args[name] = self.STARTERS[kind(name)](
                        self, cleanup, os.path.abspath(build), name)
                except BenchError as e:
                    log(f"{name}: FAILED: {e}")
                    errors[name] = str(e)
            for rnd, rw, nj in itertools.product(range(self.knobs.repeat),
                                                 PATTERNS, JOBS):
                for name in args:
                    if name in errors:
                        continue
                    try:
                        v = self.measure(name, args[name], rw, nj, rnd)
                    except BenchError as e:
                        log(f"{name}: FAILED: {e}")
                        errors[name] = str(e)
                        continue
                    rounds.setdefault(name, {}).setdefault(
                        f"{rw}/{nj}", []).append(v)
        if not self.knobs.keep and os.path.exists(self.raw):
            os.unlink(self.raw)
        results = {name: {key: summarize(v) for key, v in per.items()}
                   for name, per in rounds.items() if name not in errors}
        return {"size_gib": self.knobs.size_gib,
                "runtime_s": self.knobs.runtime,
                "rounds": self.knobs.repeat,
                "job": "fio bs=4k iodepth=32 time_based norandommap",
                "settings": self.settings,
                "iops": results,
                "errors": errors,
                "ratios": io_ratios(results)}


def disk_irq_cpus(path):
    """The CPUs that take the I/O interrupts of the disk holding path (as
    dlvmd finds them, docs/daemon.md, CPU placement), or None."""
    st = os.stat(path)
    blk = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if not os.path.exists(blk):
        return None
    blk = os.path.realpath(blk)
    if os.path.exists(os.path.join(blk, "partition")):
        blk = os.path.dirname(blk)
    dev = os.path.realpath(os.path.join(blk, "device"))
    while not os.path.isdir(os.path.join(dev, "msi_irqs")):
        if dev in ("/", "/sys/devices"):
            return None
        dev = os.path.dirname(dev)
    counts = {}
    for irq in os.listdir(os.path.join(dev, "msi_irqs")):
        try:
            with open(f"/sys/kernel/irq/{irq}/per_cpu_count") as f:
                counts[irq] = sum(int(n) for n in f.read().split(","))
        except OSError:
            counts[irq] = 0
    top = max(counts.values(), default=0)
    cpus = set()
    for irq, n in counts.items():
        if top and n * 8 >= top:
            with open(f"/proc/irq/{irq}/effective_affinity_list") as f:
                for part in filter(None, f.read().strip().split(",")):
                    a, _, b = part.partition("-")
                    cpus.update(range(int(a), int(b or a) + 1))
    return cpus & os.sched_getaffinity(0) or None


def kind(target):
    """The kind of a target name: "dlvm" for "dlvm@/tmp/build-old"."""
    return target.partition("@")[0]


def safe_name(target):
    """A target name usable in a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in target)


def summarize(samples):
    """The median of the rounds, and every round for the record."""
    return {"iops": round(statistics.median(i for i, _ in samples)),
            "clat_mean_us": round(statistics.median(u for _, u in samples),
                                  1),
            "rounds_iops": [round(i) for i, _ in samples]}


def io_ratios(results):
    """dlvm against the limits and the other servers, per pattern and jobs."""
    def iops(target, key):
        return results.get(target, {}).get(key, {}).get("iops")

    out = {}
    for rw in PATTERNS:
        for nj in JOBS:
            key = f"{rw}/{nj}"
            disk = [v for v in (iops("raw", key), iops("raw-irq", key))
                    if v is not None]
            limits = [v for v in (max(disk, default=None),
                                  iops("nbdkit-null", key)) if v is not None]
            limit = min(limits) if limits else None
            out[key] = {
                "limit_iops": limit,
                "dlvm/limit": ratio(iops("dlvm", key), limit),
                "dlvm/nbdkit-file": ratio(iops("dlvm", key),
                                          iops("nbdkit-file", key)),
                "dlvm/qemu-nbd": ratio(iops("dlvm", key),
                                       iops("qemu-nbd", key)),
                # no target: the same data path without the page cache
                "dlvm/qemu-nbd-direct": ratio(iops("dlvm", key),
                                              iops("qemu-nbd-direct", key)),
            }
    return out


def report(res):
    """Lines for the summary: an IOPS table, then dlvm's ratios."""
    keys = [f"{rw}/{nj}" for rw in PATTERNS for nj in JOBS]
    w = max([16] + [len(n) for n in res["settings"]])
    lines = [f"I/O: 4k random, iodepth 32, {res['runtime_s']} s per run, "
             f"{res['size_gib']} GiB target (IOPS, median of "
             f"{res['rounds']} rounds)",
             f"  {'target':{w}}" + "".join(f"{k:>14}" for k in keys)]
    for name, per in res["iops"].items():
        lines.append(f"  {name:{w}}" + "".join(
            f"{per[k]['iops']:>14}" for k in keys))
    for name, err in res["errors"].items():
        lines.append(f"  {name:{w}}  FAILED: {err}")
    for name, how in res["settings"].items():
        lines.append(f"  {name:{w}}  = {how}")
    lines.append("  ratios (target: limit >= "
                 f"{TARGET_LIMIT}, others >= {TARGET_OTHERS}):")
    for what, goal in (("dlvm/limit", TARGET_LIMIT),
                       ("dlvm/nbdkit-file", TARGET_OTHERS),
                       ("dlvm/qemu-nbd", TARGET_OTHERS)):
        cells = []
        for k in keys:
            r = res["ratios"][k][what]
            cells.append(f"{'-':>14}" if r is None else
                         f"{r:>10.2f} {'ok' if r >= goal else 'NO':>3}")
        lines.append(f"  {what:{w}}" + "".join(cells))
    what = "dlvm/qemu-nbd-direct"
    if any(res["ratios"][k].get(what) is not None for k in keys):
        lines.append(f"  {what:{w}}" + "".join(
            f"{'-':>14}" if res["ratios"][k].get(what) is None else
            f"{res['ratios'][k][what]:>14.2f}" for k in keys))
    # Every other target against the first one of its kind (build
    # comparisons, serve-file-fence against serve-file): the median of the
    # ratios of the rounds, each round's runs of a job being close in time.
    def family(name):
        return kind(name).replace("-fence", "").replace("-any", "") \
            .replace("-irq", "")

    base = {}
    for name in res["iops"]:
        base.setdefault(family(name), name)
    for name, per in res["iops"].items():
        ref = base[family(name)]
        if ref == name:
            continue
        cells = []
        for k in keys:
            r = [ratio(a, b) for a, b in zip(per[k]["rounds_iops"],
                                            res["iops"][ref][k]["rounds_iops"])]
            cells.append(f"{statistics.median(r):>14.3f}")
        lines.append(f"  {name + ' / ' + ref:{w}}" + "".join(cells))
    return lines
