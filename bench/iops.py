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

The raw file and the LV are written in full first, so that reads hit
allocated blocks. With the nbd engine each fio job opens its own
connection. The whole set is run Knobs.repeat times, round robin over the
targets, and the median of the rounds is reported.
"""

import json
import os
import statistics

from common import BenchError, Cleanup, Dlvm, GiB, UnixHTTPConnection, \
    log, ratio, run, start_server

PATTERNS = ("randwrite", "randread")
JOBS = (1, 2)
TARGET_LIMIT = 0.9     # dlvm / min(raw, null)
TARGET_OTHERS = 1.5    # dlvm / nbdkit-file, dlvm / qemu-nbd


def nbd_unix_uri(sock, export=""):
    return f"nbd+unix:///{export}?socket={sock}"


def fio_job(name, target_args, rw, numjobs, runtime, size, out):
    """Run one fio job; return (IOPS, mean completion latency in µs)."""
    ramp = 1 if runtime >= 5 else 0
    cmd = ["fio", f"--name={name}", *target_args, f"--rw={rw}", "--bs=4k",
           "--iodepth=32", f"--numjobs={numjobs}", "--group_reporting",
           "--time_based", f"--runtime={runtime}", f"--ramp_time={ramp}",
           f"--size={size}", "--norandommap", "--randrepeat=0",
           "--output-format=json", f"--output={out}"]
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

    def start_raw(self, cleanup):
        self.settings["raw"] = "fio --ioengine=io_uring --direct=1"
        return ["--ioengine=io_uring", "--direct=1",
                f"--filename={self.raw}"]

    def start_nbdkit_file(self, cleanup):
        sock = os.path.join(self.dir, "nbdkit-file.sock")
        cmd = ["nbdkit", "-f", "-U", sock, "file", f"file={self.raw}"]
        self.settings["nbdkit-file"] = "nbdkit file (default threads, cache)"
        start_server(cmd, [sock], "nbdkit file", cleanup,
                     os.path.join(self.dir, "nbdkit-file.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_qemu_nbd(self, cleanup):
        sock = os.path.join(self.dir, "qemu-nbd.sock")
        opts = ["-f", "raw", *self.knobs.qemu_nbd_opts, "--shared=8",
                "--persistent"]
        self.settings["qemu-nbd"] = "qemu-nbd " + " ".join(opts)
        start_server(["qemu-nbd", *opts, "-k", sock, self.raw], [sock],
                     "qemu-nbd", cleanup,
                     os.path.join(self.dir, "qemu-nbd.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_nbdkit_null(self, cleanup):
        sock = os.path.join(self.dir, "nbdkit-null.sock")
        self.settings["nbdkit-null"] = "nbdkit null"
        start_server(["nbdkit", "-f", "-U", sock, "null", str(self.size)],
                     [sock], "nbdkit null", cleanup,
                     os.path.join(self.dir, "nbdkit-null.log"))
        return ["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"]

    def start_dlvm(self, cleanup):
        state = os.path.join(self.dir, "dlvm")
        dlvm = Dlvm(self.knobs.build, state)
        pv_gib = max(8, 2 * self.knobs.size_gib + 1)
        dlvm.setup_vg(f"{pv_gib}G")
        dlvm.start(cleanup, os.path.join(self.dir, "dlvmd.log"))
        conn = UnixHTTPConnection(dlvm.ctl_sock)
        try:
            dlvm.api(conn, "lvcreate",
                     {"name": "bench", "size": f"{self.knobs.size_gib}g"},
                     ["vg0"])
        finally:
            conn.close()
        self.settings["dlvm"] = ("dlvmd, linear LV vg0/bench on a "
                                 f"{pv_gib} GiB sparse PV file")
        args = ["--ioengine=nbd",
                f"--uri={nbd_unix_uri(dlvm.nbd_sock, 'vg0/bench')}"]
        log(f"dlvm: writing vg0/bench in full ({self.knobs.size_gib} GiB)")
        fill(args, self.size, os.path.join(self.dir, "fill-dlvm.json"))
        return args

    STARTERS = {
        "dlvm": start_dlvm,
        "nbdkit-file": start_nbdkit_file,
        "qemu-nbd": start_qemu_nbd,
        "nbdkit-null": start_nbdkit_null,
        "raw": start_raw,
    }

    def prepare_raw(self):
        if os.path.exists(self.raw):
            os.unlink(self.raw)
        log(f"raw: writing {self.raw} in full ({self.knobs.size_gib} GiB)")
        fill(["--ioengine=io_uring", "--direct=1", f"--filename={self.raw}"],
             self.size, os.path.join(self.dir, "fill-raw.json"))

    def measure(self, name, args, rnd):
        """One round of every job on one target: {"rw/jobs": (IOPS, µs)}."""
        res = {}
        for rw in PATTERNS:
            for nj in JOBS:
                out = os.path.join(self.dir,
                                   f"fio-{name}-{rw}-{nj}-{rnd}.json")
                iops, lat = fio_job(name, args, rw, nj, self.knobs.runtime,
                                    self.size, out)
                log(f"round {rnd + 1}: {name:12} {rw:9} jobs={nj}: "
                    f"{iops:10.0f} IOPS, mean latency {lat:7.1f} µs")
                res[f"{rw}/{nj}"] = (iops, lat)
        return res

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        for name in self.knobs.targets:
            if name not in self.STARTERS:
                raise BenchError(f"BENCH_TARGETS: unknown target {name!r}; "
                                 f"known: {', '.join(self.STARTERS)}")
        errors = {}
        rounds = {}     # target -> "rw/jobs" -> [(IOPS, µs) per round]
        if {"raw", "nbdkit-file", "qemu-nbd"} & set(self.knobs.targets):
            self.prepare_raw()
        # Every server stays up for the whole part (idle servers cost no
        # CPU); the rounds go through the targets in turn, so that a
        # change in the load of the machine hits all of them alike.
        with Cleanup() as cleanup:
            args = {}
            for name in self.knobs.targets:
                try:
                    args[name] = self.STARTERS[name](self, cleanup)
                except BenchError as e:
                    log(f"{name}: FAILED: {e}")
                    errors[name] = str(e)
            for rnd in range(self.knobs.repeat):
                for name in args:
                    if name in errors:
                        continue
                    try:
                        for key, v in self.measure(name, args[name],
                                                   rnd).items():
                            rounds.setdefault(name, {}).setdefault(
                                key, []).append(v)
                    except BenchError as e:
                        log(f"{name}: FAILED: {e}")
                        errors[name] = str(e)
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
            limits = [v for v in (iops("raw", key), iops("nbdkit-null", key))
                      if v is not None]
            limit = min(limits) if limits else None
            out[key] = {
                "limit_iops": limit,
                "dlvm/limit": ratio(iops("dlvm", key), limit),
                "dlvm/nbdkit-file": ratio(iops("dlvm", key),
                                          iops("nbdkit-file", key)),
                "dlvm/qemu-nbd": ratio(iops("dlvm", key),
                                       iops("qemu-nbd", key)),
            }
    return out


def report(res):
    """Lines for the summary: an IOPS table, then dlvm's ratios."""
    keys = [f"{rw}/{nj}" for rw in PATTERNS for nj in JOBS]
    lines = [f"I/O: 4k random, iodepth 32, {res['runtime_s']} s per run, "
             f"{res['size_gib']} GiB target (IOPS, median of "
             f"{res['rounds']} rounds)",
             f"  {'target':16}" + "".join(f"{k:>14}" for k in keys)]
    for name, per in res["iops"].items():
        lines.append(f"  {name:16}" + "".join(
            f"{per[k]['iops']:>14}" for k in keys))
    for name, err in res["errors"].items():
        lines.append(f"  {name:16}  FAILED: {err}")
    for name, how in res["settings"].items():
        lines.append(f"  {name:16}  = {how}")
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
        lines.append(f"  {what:16}" + "".join(cells))
    return lines
