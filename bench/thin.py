"""Thin pools: write, copy-on-write and read IOPS, snapshot and activation
times, against a linear LV, a plain thin volume and a qcow2 backing chain.

I/O (one dlvmd, one VG on a sparse PV file; every run is iops.fio_job:
fio ioengine=nbd, 4k, iodepth 32, 1 job, Knobs.runtime seconds; the whole
set is run Knobs.repeat times, each target in turn within a round, and the
median of the rounds is reported; ratios are ratios of those medians):

  linear        a linear LV of Knobs.size_gib GiB, written in full first
  linear-new    a new linear LV of LINEAR_NEW_GIB GiB for each round, on
                extents never written (the LVs of earlier rounds are kept
                until the end): a first write lands in a hole of the sparse
                PV file, which the file system allocates, as thin-new's do.
                No target of its own: linear-new / linear is what a write
                into a hole costs this file system
  thin          a thin volume of the same size in pool "pool0" (64 KiB
                chunks), written in full first: randwrite is an overwrite of
                mapped chunks. Target: thin / linear randwrite >= 0.9
  thin-new      a new thin volume in pool "poolnew" (64 KiB chunks) for
                each round, of a virtual size large enough that nearly every
                write lands in a chunk not mapped yet. The volume is removed
                after its round. The pool's data area is written in full
                once, before the first round (through a thin volume that is
                removed again): its chunks lie on blocks the PV file holds,
                as every block of a disk or a LUN exists, so a first write
                costs what the pool does to map a chunk, not what the file
                system does to fill a hole. Its size is what the disk has
                room for (NEW_WRITTEN_MAX_GIB at most), and it is never
                grown: the allocator hands chunks out round robin over the
                whole pool, and every chunk is free again when a round
                starts. So that a run cannot fill it, fio stops after
                NEW_WRITTEN_USE of its chunks (less what the ramp may map)
                if the time has not ended the run first; IOPS are over the
                run's own time, which the report gives.
                Target: thin-new / linear randwrite >= 0.6
  thin-new-sparse
                the same in pool "poolsparse", whose data area is never
                written first: a first write lands in a hole of the PV
                file, as linear-new's do; the pool is grown before a round
                so that the run cannot fill it. Target: thin-new-sparse /
                linear-new randwrite >= 0.6, a first write against a first
                write; against linear it shows what holes cost, no target
  thin-cow      a thin volume written in full, then snapshotted right before
                each round (the previous round's snapshot removed first): a
                write to a chunk still shared copies the chunk. Against thin
                randwrite, no target.

                For these three, the report gives the chunks mapped
                (copied) in a round, from the pool's usage, and the share of
                writes that mapped (copied) one, from the share of the
                volume's chunks touched (fresh_share: fio does not count its
                ramp's writes), and those chunks per second of the run and
                its ramp: for
                thin-cow, whose later writes find more and more chunks
                already copied, the rate of copying writes is at least that
  thin-Nsnap    a thin volume written in full, then N snapshots, each
                followed by 64 random 4k writes to the volume (so that its
                tree and the snapshots' trees part ways as a VM's would);
                randread of the volume. Targets: thin-Nsnap / thin-Nsnap-gone
                randread >= 0.95, and / qcow2-N >= 2; thin-Nsnap / thin
                is reported too
  thin-Nsnap-gone
                a thin volume that took the same history: written in full,
                then N times a snapshot, the same 64 random writes (so the
                same chunks are copied and move), and the snapshot removed
                again. It has no snapshot, and its data lies where
                thin-Nsnap's does: against it, thin-Nsnap measures what
                holding the snapshots costs a read, not where the copies
                put the chunks in the PV file (against thin, whose chunks
                lie in the order they were written, both count)
  qcow2-N       qemu-nbd (read-only, Knobs.qemu_nbd_opts) on the top of a
                qcow2 chain: a base image of the same size and 64 KiB
                clusters written in full through qemu-nbd, then N empty
                overlays (qemu-img create -b ... -F qcow2), so every read
                goes down the whole chain
  qcow2         qemu-nbd on the base image alone: what the chain costs qemu
  thin-beside-flush
                randread of the "thin" volume while another volume of its
                pool, new for each round (1 GiB, removed after it), takes
                4k random first writes each followed by a FLUSH (fio
                fsync=1, iodepth FLUSHER_DEPTH): every FLUSH commits the
                pool. Against thin randread alone, no target: what the
                pool's commits cost its other volumes' requests
  linear-beside-flush
                the same for the linear volume beside a new linear LV of
                1 GiB (whose writes land in holes of the PV file, as the
                thin writer's do): what the flushes cost on this disk
                whatever the volume. thin-beside-flush / linear-beside-flush
                is what is left for the pool

Metadata (another dlvmd, fresh VGs):

  activation    the time from starting dlvmd to its NBD socket accepting,
                for a VG whose thin volume has BENCH_THIN_MAPPED_MIB of 4 KiB
                chunks mapped (written in random order, 64 KiB at a time), and
                for the same VG with nothing mapped. dlvmd activates every LV
                before it listens, and activating the first thin volume of a
                pool opens the pool's store, which reads every node
                (docs/thin.md); the difference is that open. Target: <= 100
                ms at 1,048,576 mapped chunks (the default).
  snapshot      lvcreate -s through the native API (POST on dlvmd.sock, a
                kept-alive connection, as bench/lvcreate.py), BENCH_THIN_SNAPS
                times for each of: a 1 GiB volume in 64 KiB chunks, a
                BENCH_THIN_BIG_GIB volume in 1 MiB chunks, and the 4 KiB-chunk
                volume above (the most mappings), all fully mapped; the
                creates take turns. Target: median <= 1 ms for each, and flat
                (the others / the 1 GiB one ~1). The median time of an
                fdatasync on the same file system is given as the floor of
                anything that commits.

Knobs of this part (besides those of bench/common.py):

  BENCH_THIN_MAPPED_MIB=N  data of the 4 KiB-chunk volume (default 4096:
                           1,048,576 chunks; quick: 256)
  BENCH_THIN_BIG_GIB=N     the 1 MiB-chunk volume (default 8; quick: 2)
  BENCH_THIN_SNAPS=N       snapshot creates timed per volume (default 20)
  BENCH_THIN_STARTS=N      timed dlvmd starts per VG (default 10; quick: 3)
  BENCH_THIN_CHAIN=N       snapshots and qcow2 overlays (default 100)
"""

import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import time

from common import BenchError, Cleanup, Dlvm, GiB, UnixHTTPConnection, \
    can_connect, env_int, log, median_ms, ratio, run, start_server, \
    stop_process, tail_of
from iops import fill, fio_job, nbd_unix_uri, summarize

MiB = 1 << 20
CHUNK = 64 << 10
BURST_WRITES = 64        # random 4k writes after each snapshot of thin-Nsnap
NEW_HEADROOM = 1.5       # pool room for thin-new: this x writes of a run
NEW_DISK_SHARE = 0.5     # poolsparse: at most this share of the free disk
NEW_SPREAD = 32          # thin-new virtual chunks: this x pool room
NEW_WRITTEN_MAX_GIB = 48 # poolnew's data area, written in full first
NEW_WRITTEN_MIN_GIB = 4
NEW_WRITTEN_USE = 0.8    # a thin-new run maps at most this share of poolnew
LINEAR_NEW_GIB = 32      # each round's new linear LV (sparse: mostly holes)
FLUSHER_DEPTH = 4        # thin-beside-flush: the flushing writer's iodepth
NEW_POOLS = {"thin-new": "poolnew", "thin-new-sparse": "poolsparse"}

TARGET_OVERWRITE = 0.9
TARGET_FIRST_WRITE = 0.6
TARGET_SNAP_READ = 0.95
TARGET_VS_QCOW2 = 2.0
TARGET_SNAPSHOT_MS = 1.0
TARGET_ACTIVATION_MS = 100.0
TARGET_ACTIVATION_CHUNKS = 1 << 20


def verdict(ok):
    return "PASS" if ok else "MISS"


class Daemon:
    """One dlvmd on a VG of its own, driven through the native API."""

    def __init__(self, build, state):
        self.dlvm = Dlvm(build, state)
        self.state = state
        self.log_path = state + ".log"
        self.proc = None
        self.conn = None

    def create_vg(self, pv_gib):
        self.dlvm.setup_vg(f"{pv_gib}G")

    def start(self, cleanup):
        self.proc = self.dlvm.start(cleanup, self.log_path)

    def timed_start(self, cleanup, timeout=300):
        """Start dlvmd; return the seconds until its NBD socket accepts.

        dlvmd activates every LV of a local VG before it listens on NBD."""
        for s in (self.dlvm.ctl_sock, self.dlvm.nbd_sock):
            if os.path.exists(s):
                os.unlink(s)
        cmd = [self.dlvm.daemon, "--state-dir", self.state,
               "--nbd-listen", "none"]
        with open(self.log_path, "a") as out:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        cleanup.push("stop dlvmd", stop_process, self.proc, "dlvmd")
        deadline = t0 + timeout
        while not can_connect(self.dlvm.nbd_sock):
            self.check_alive()
            if time.perf_counter() > deadline:
                raise BenchError(f"dlvmd: NBD socket not accepting after "
                                 f"{timeout} s: {tail_of(self.log_path)}")
            time.sleep(0.001)
        took = time.perf_counter() - t0
        while not can_connect(self.dlvm.ctl_sock):
            self.check_alive()
            time.sleep(0.01)
        return took

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"dlvmd exited with {self.proc.returncode}: "
                             f"{tail_of(self.log_path)}")

    def stop(self):
        self.close()
        if self.proc:
            stop_process(self.proc, "dlvmd")
            if self.proc.returncode != 0:
                raise BenchError(f"dlvmd stopped with {self.proc.returncode}"
                                 f": {tail_of(self.log_path)}")
            self.proc = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def api(self, command, opts, args):
        """One command on a kept-alive connection, reopened once if dlvmd
        closed it; returns the decoded reply."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.dlvm.ctl_sock,
                                               timeout=600)
            try:
                data = self.dlvm.api(self.conn, command, opts, args)
                break
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        return json.loads(data) if data else {}

    def lvs(self, vg="vg0"):
        rows = self.api("lvs", {}, [vg])["report"]["rows"]
        return {r["lv_name"]: r for r in rows}

    def pool_used_chunks(self, pool, vg="vg0"):
        """Data chunks in use in a pool (from its data_percent: to within
        0.005% of the pool)."""
        r = self.lvs(vg)[pool]
        chunks = r["lv_size"] // r["chunk_size"]
        return round(float(r["data_percent"]) / 100 * chunks)

    def pool_chunks(self, pool, vg="vg0"):
        r = self.lvs(vg)[pool]
        return r["lv_size"] // r["chunk_size"]

    def make_pool(self, name, size, chunk, meta=None, vg="vg0"):
        opts = {"type": "thin-pool", "size": size, "chunksize": chunk,
                "name": name}
        if meta:
            opts["poolmetadatasize"] = meta
        self.api("lvcreate", opts, [vg])

    def make_thin(self, name, vsize, pool, vg="vg0"):
        self.api("lvcreate", {"virtualsize": vsize, "thinpool": pool,
                              "name": name}, [vg])

    def snapshot(self, origin, name, vg="vg0"):
        self.api("lvcreate", {"snapshot": True, "name": name},
                 [f"{vg}/{origin}"])

    def remove(self, name, vg="vg0"):
        self.api("lvremove", {"force": True}, [f"{vg}/{name}"])

    def fio_args(self, lv, vg="vg0"):
        return ["--ioengine=nbd",
                f"--uri={nbd_unix_uri(self.dlvm.nbd_sock, f'{vg}/{lv}')}"]


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def fresh_share(hit, chunks):
    """The share of uniformly random writes that found their chunk still
    untouched, when they touched `hit` of `chunks` chunks: after n writes
    hit = chunks * (1 - exp(-n / chunks)), so the share hit / n is
    f / -ln(1 - f) with f = hit / chunks. It needs no count of the writes
    (fio does not count those of its ramp)."""
    f = min(hit / chunks, 0.999999) if chunks else 0
    return f / -math.log1p(-f) if f > 0 else 1.0


def gib(nbytes):
    return f"{math.ceil(nbytes / GiB)}g"


def fill_random(args, size, bs, out):
    """Write the whole target once, in random order, bs at a time."""
    run(["fio", "--name=fill-random", *args, "--rw=randwrite", f"--bs={bs}",
         "--iodepth=32", f"--size={size}", "--output-format=json",
         f"--output={out}"], timeout=7200)


def burst(args, size, n, out, seed):
    """n random 4k writes, at the offsets that seed gives."""
    run(["fio", "--name=burst", *args, "--rw=randwrite", "--bs=4k",
         "--iodepth=8", f"--number_ios={n}", f"--size={size}",
         "--norandommap", f"--randseed={seed + 1}", "--output-format=json",
         f"--output={out}"], timeout=300)


def flush_floor(directory, samples=20):
    """Median ms of a 4 KiB write and fdatasync to a file in directory."""
    path = os.path.join(directory, "fdatasync.probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        block = b"\xa5" * 4096
        took = []
        for _ in range(samples):
            os.pwrite(fd, block, 0)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - t0)
        return median_ms(took)
    finally:
        os.close(fd)
        os.unlink(path)


# ---- I/O --------------------------------------------------------------------

class ThinIo:
    """The I/O targets on one dlvmd and two qemu-nbd; each fails on its own."""

    def __init__(self, knobs):
        self.knobs = knobs
        self.dir = os.path.join(knobs.workdir, "thin-io")
        self.size = knobs.size_gib * GiB
        self.chain = env_int("BENCH_THIN_CHAIN", 100)
        if self.chain < 1:
            raise BenchError("BENCH_THIN_CHAIN: at least 1")
        self.snap = f"thin-{self.chain}snap"
        self.gone = f"thin-{self.chain}snap-gone"
        self.qchain = f"qcow2-{self.chain}"
        self.ramp = 1 if knobs.runtime >= 5 else 0
        self.d = None
        self.args = {}
        self.settings = {}
        self.errors = {}
        # per round: chunks mapped during the run (its ramp included),
        # writes fio counted (after the ramp), chunks of the volume
        self.new = {name: {"new_chunks": [], "writes_counted": [],
                           "volume_chunks": [], "runtime_ms": []}
                    for name in NEW_POOLS}
        self.cow = {"copied_chunks": [], "writes_counted": [],
                    "volume_chunks": []}
        self.fastest_write = 0.0
        self.new_rates = {name: [] for name in NEW_POOLS}
        self.new_max_gib = {name: 4 for name in NEW_POOLS}
        self.new_written_chunks = 0
        self.cow_snap = None
        self.last_ios = 0
        self.last_runtime_ms = 0
        self.flusher_rates = {}

    def runs(self, rnd):
        """The (target, pattern) runs of round rnd, in order: the writes,
        then the reads, each group rotated by one target per round so that
        no target always runs first after the other group (the disk may
        still be busy with what the writes left) or right after
        thin-cow (which writes 64 KiB per 4 KiB written). Round 0 starts
        with linear randwrite, whose rate sizes thin-new's pool."""
        writes = ["linear", "linear-new", "thin", "thin-new",
                  "thin-new-sparse", "thin-cow"]
        reads = ["linear", "thin", self.snap, self.gone, self.qchain, "qcow2",
                 "thin-beside-flush", "linear-beside-flush"]
        return ([(n, "randwrite") for n in rotate(writes, rnd)]
                + [(n, "randread") for n in rotate(reads, rnd)])

    def setup_dlvm(self, cleanup):
        s = self.knobs.size_gib
        # The PV file is sparse; what the disk must hold: linear, pool0
        # (thin, thin-cow, thin-Nsnap and their copies, up to 5 s + 2 GiB),
        # the qcow2 base (s GiB), per round a 4 KiB block per write of
        # linear-new and of thin-new-sparse and 1 GiB of each flusher
        # (about 4 GiB), and poolnew's written data area, which gets what
        # is left. poolsparse maps a 64 KiB chunk per 4 KiB write, the rest
        # of it a hole: its room is capped at a share of the free disk all
        # the same.
        st = os.statvfs(self.knobs.workdir)
        free_gib = st.f_bavail * st.f_frsize // GiB
        reserve = s + (5 * s + 2) + s + 4 * self.knobs.repeat + 4
        written = min(NEW_WRITTEN_MAX_GIB,
                      max(NEW_WRITTEN_MIN_GIB, free_gib - reserve))
        self.new_written_chunks = written * GiB // CHUNK
        self.new_max_gib["thin-new"] = written
        self.new_max_gib["thin-new-sparse"] = max(
            4, int(free_gib * NEW_DISK_SHARE))
        pv_gib = (s + (5 * s + 2) + sum(self.new_max_gib.values()) + 5
                  + LINEAR_NEW_GIB * self.knobs.repeat)
        self.d = Daemon(self.knobs.build, os.path.join(self.dir, "dlvm"))
        self.d.create_vg(pv_gib)
        self.d.start(cleanup)
        cleanup.push("close API connection", self.d.close)
        d = self.d
        d.api("lvcreate", {"name": "linear", "size": f"{s}g"}, ["vg0"])
        # + 2 GiB: thin-beside-flush's writer maps up to 1 GiB a round
        d.make_pool("pool0", f"{5 * s + 2}g", "64k", meta="256m")
        d.make_pool("poolnew", f"{written}g", "64k", meta="128m")
        d.make_pool("poolsparse", "4g", "64k", meta="64m")
        for lv in ("thin", "cow", "snaps", "gone"):
            d.make_thin(lv, f"{s}g", "pool0")
        log(f"thin: writing the data area of vg0/poolnew in full "
            f"({written} GiB, through vg0/prewrite)")
        t0 = time.monotonic()
        d.make_thin("prewrite", f"{written}g", "poolnew")
        fill(d.fio_args("prewrite"), written * GiB,
             os.path.join(self.dir, "fill-prewrite.json"))
        d.remove("prewrite")
        if d.pool_used_chunks("poolnew"):
            raise BenchError("vg0/poolnew: chunks still in use after "
                             "vg0/prewrite was removed")
        log(f"thin: vg0/poolnew written in {time.monotonic() - t0:.1f} s")
        self.settings["linear"] = f"linear LV, {s} GiB"
        self.settings["linear-new"] = (f"a new linear LV per round, "
                                       f"{LINEAR_NEW_GIB} GiB, never "
                                       "written")
        self.settings["thin"] = (f"thin LV, {s} GiB, 64 KiB chunks, mapped "
                                 "in full")
        self.settings["thin-new"] = (
            "a new thin LV per round, 64 KiB chunks, nothing mapped, in a "
            f"pool whose {written} GiB were written once (chunks on blocks "
            "the PV file holds)")
        self.settings["thin-new-sparse"] = (
            "the same in a pool never written (chunks on holes of the PV "
            "file)")
        self.settings["thin-cow"] = (f"thin LV, {s} GiB, mapped in full, "
                                     "snapshotted before each round")
        self.settings["thin-beside-flush"] = (
            "the thin LV while a new LV of its pool takes 4k first "
            f"writes, a FLUSH after each (fio fsync=1, iodepth "
            f"{FLUSHER_DEPTH})")
        self.settings["linear-beside-flush"] = (
            "the linear LV while a new linear LV takes the same writes")
        self.settings[self.snap] = (
            f"thin LV, {s} GiB, mapped in full, {self.chain} snapshots "
            f"each followed by {BURST_WRITES} random 4k writes")
        self.settings[self.gone] = (
            f"thin LV, {s} GiB, mapped in full, the same history with each "
            "snapshot removed after its writes")
        for name, lv in (("linear", "linear"), ("thin", "thin"),
                         ("thin-cow", "cow"), (self.snap, "snaps"),
                         (self.gone, "gone")):
            log(f"thin: writing vg0/{lv} in full ({s} GiB)")
            self.args[name] = d.fio_args(lv)
            t0 = time.monotonic()
            fill(self.args[name], self.size,
                 os.path.join(self.dir, f"fill-{lv}.json"))
            log(f"thin: vg0/{lv} written in {time.monotonic() - t0:.1f} s")
        log(f"thin: {self.chain} snapshots of vg0/snaps, each followed by "
            f"{BURST_WRITES} random writes")
        t0 = time.monotonic()
        for i in range(self.chain):
            d.snapshot("snaps", f"snaps-s{i}")
            burst(self.args[self.snap], self.size, BURST_WRITES,
                  os.path.join(self.dir, "burst.json"), seed=i)
        log(f"thin: snapshots made in {time.monotonic() - t0:.1f} s")
        log(f"thin: the same for vg0/gone, each snapshot removed after its "
            "writes")
        for i in range(self.chain):
            d.snapshot("gone", "gone-s")
            burst(self.args[self.gone], self.size, BURST_WRITES,
                  os.path.join(self.dir, "burst.json"), seed=i)
            d.remove("gone-s")

    def setup_qcow2(self, cleanup):
        qdir = os.path.join(self.dir, "qcow2")
        os.makedirs(qdir, exist_ok=True)
        base = os.path.join(qdir, "base.qcow2")
        opts = ["-o", "cluster_size=65536"]
        run(["qemu-img", "create", "-q", "-f", "qcow2", *opts, base,
             str(self.size)])
        sock = os.path.join(qdir, "fill.sock")
        proc = start_server(
            ["qemu-nbd", "-f", "qcow2", *self.knobs.qemu_nbd_opts,
             "--shared=8", "--persistent", "-k", sock, base], [sock],
            "qemu-nbd (fill)", cleanup, os.path.join(qdir, "fill.log"))
        log(f"thin: writing the qcow2 base image in full "
            f"({self.knobs.size_gib} GiB)")
        fill(["--ioengine=nbd", f"--uri={nbd_unix_uri(sock)}"], self.size,
             os.path.join(qdir, "fill.json"))
        stop_process(proc, "qemu-nbd (fill)")
        prev = "base.qcow2"
        for i in range(1, self.chain + 1):
            # -u with the size: the backing chain is not opened once per
            # overlay
            top = f"top{i}.qcow2"
            run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", *opts,
                 "-b", prev, "-F", "qcow2", os.path.join(qdir, top),
                 str(self.size)])
            prev = top
        serve = ["-f", "qcow2", *self.knobs.qemu_nbd_opts, "--shared=8",
                 "--persistent", "--read-only"]
        for name, image in ((self.qchain, prev), ("qcow2", "base.qcow2")):
            sock = os.path.join(qdir, f"{name}.sock")
            start_server(["qemu-nbd", *serve, "-k", sock,
                          os.path.join(qdir, image)], [sock], name, cleanup,
                         os.path.join(qdir, f"{name}.log"))
            self.args[name] = ["--ioengine=nbd",
                               f"--uri={nbd_unix_uri(sock)}"]
        how = "qemu-nbd " + " ".join(serve)
        self.settings[self.qchain] = (
            f"{how}, top of {self.chain} empty overlays on a base of "
            f"{self.knobs.size_gib} GiB written in full, 64 KiB clusters")
        self.settings["qcow2"] = f"{how}, the base image alone"

    def fio(self, name, args, rw, size, rnd, last=()):
        out = os.path.join(self.dir, f"fio-{name}-{rw}-{rnd}.json")
        iops, lat = fio_job(name, args, rw, 1, self.knobs.runtime, size, out,
                            last)
        with open(out) as f:
            job = json.load(f)["jobs"][0]
        side = job["write"] if rw.endswith("write") else job["read"]
        self.last_ios = side["total_ios"]
        self.last_runtime_ms = side["runtime"]
        log(f"round {rnd + 1}: {name:12} {rw:9}: {iops:10.0f} IOPS, mean "
            f"latency {lat:7.1f} µs")
        if rw == "randwrite":
            self.fastest_write = max(self.fastest_write, iops)
        return iops, lat

    def run_new(self, rnd, name):
        """Randwrite to a new thin LV of the pool of target name.

        thin-new: poolnew is never grown, so that every chunk it hands out
        lies on its written data area (the allocator goes round robin over
        the pool, and each round starts with every chunk free); fio stops
        after NEW_WRITTEN_USE of the pool's chunks minus what its ramp may
        take, if the time does not end the run first.

        thin-new-sparse: poolsparse is grown first if a run as fast as its
        fastest round so far (before the first: the fastest write so far)
        could fill it, up to new_max_gib."""
        d = self.d
        pool = NEW_POOLS[name]
        last = []
        used = d.pool_used_chunks(pool)
        have = d.pool_chunks(pool)
        if used:
            raise BenchError(f"vg0/{pool}: {used} chunks in use before the "
                             "round")
        rate = max(self.new_rates[name] or [self.fastest_write, 1000])
        if name == "thin-new":
            ramp_writes = math.ceil(NEW_HEADROOM * rate * self.ramp)
            cap = int(have * NEW_WRITTEN_USE) - ramp_writes
            if cap < 1000:
                raise BenchError(f"vg0/{pool}: {have} chunks are too few "
                                 "for a run")
            # fio ignores number_ios in a time based job
            last = ["--time_based=0", f"--number_ios={cap}"]
            room = have
        else:
            room = math.ceil(NEW_HEADROOM * rate
                             * (self.knobs.runtime + self.ramp))
            if have < room:
                most = self.new_max_gib[name] * GiB // CHUNK
                want = min(room, most)
                if want < room:
                    log(f"thin: pool vg0/{pool} kept to "
                        f"{self.new_max_gib[name]} GiB (for the free disk); "
                        "a run faster than "
                        f"{want / (self.knobs.runtime + self.ramp):.0f}"
                        " new chunks/s fills it")
                if want > have:
                    mib = math.ceil(want * CHUNK / (64 * MiB)) * 64
                    d.api("lvextend", {"size": f"{mib}m"}, [f"vg0/{pool}"])
                    log(f"thin: pool vg0/{pool} grown to {mib} MiB")
        vsize = max(256 * GiB, NEW_SPREAD * room * CHUNK)
        lv = f"new{rnd}" if name == "thin-new" else f"sparse{rnd}"
        d.make_thin(lv, gib(vsize), pool)
        iops, lat = self.fio(name, d.fio_args(lv), "randwrite",
                             math.ceil(vsize / GiB) * GiB, rnd, last)
        new = d.pool_used_chunks(pool)
        self.new_rates[name].append(iops)
        d.remove(lv)
        r = self.new[name]
        r["new_chunks"].append(new)
        r["writes_counted"].append(self.last_ios)
        r["volume_chunks"].append(math.ceil(vsize / GiB) * GiB // CHUNK)
        r["runtime_ms"].append(self.last_runtime_ms)
        return iops, lat

    def run_linear_new(self, rnd):
        """Randwrite to a new linear LV on extents no round wrote: the
        LVs of earlier rounds stay, so the allocator cannot hand the same
        extents out again."""
        lv = f"linnew{rnd}"
        self.d.api("lvcreate", {"name": lv, "size": f"{LINEAR_NEW_GIB}g"},
                   ["vg0"])
        return self.fio("linear-new", self.d.fio_args(lv), "randwrite",
                        LINEAR_NEW_GIB * GiB, rnd)

    def run_cow(self, rnd):
        d = self.d
        if self.cow_snap:
            d.remove(self.cow_snap)
            self.cow_snap = None
        self.cow_snap = f"cow-s{rnd}"
        d.snapshot("cow", self.cow_snap)
        before = d.pool_used_chunks("pool0")
        iops, lat = self.fio("thin-cow", self.args["thin-cow"], "randwrite",
                             self.size, rnd)
        self.cow["copied_chunks"].append(d.pool_used_chunks("pool0") - before)
        self.cow["writes_counted"].append(self.last_ios)
        self.cow["volume_chunks"].append(self.size // CHUNK)
        return iops, lat

    def run_beside_flush(self, rnd, name):
        """Randread of vg0/thin (vg0/linear) while a new LV of pool0 (a new
        linear LV) takes flushed first writes; the writer starts first and
        runs longer."""
        d = self.d
        thin = name == "thin-beside-flush"
        lv = f"flusher{rnd}" if thin else f"lflusher{rnd}"
        if thin:
            d.make_thin(lv, "1g", "pool0")
        else:
            d.api("lvcreate", {"name": lv, "size": "1g"}, ["vg0"])
        out = os.path.join(self.dir, f"fio-{lv}.json")
        runtime = self.knobs.runtime + self.ramp + 5
        cmd = ["fio", "--name=flusher", *d.fio_args(lv), "--rw=randwrite",
               "--bs=4k", f"--iodepth={FLUSHER_DEPTH}", "--fsync=1",
               "--size=1g", "--time_based", f"--runtime={runtime}",
               "--randrepeat=0", "--output-format=json", f"--output={out}"]
        with open(os.path.join(self.dir, "flusher.log"), "a") as errs:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errs)
        try:
            time.sleep(1)
            if proc.poll() is not None:
                raise BenchError(f"fio flusher exited with {proc.returncode}"
                                 f": {tail_of(errs.name)}")
            v = self.fio(name, self.args["thin" if thin else "linear"],
                         "randread", self.size, rnd)
        finally:
            try:
                proc.wait(timeout=runtime + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise BenchError(f"fio flusher exited with {proc.returncode}: "
                             f"{tail_of(errs.name)}")
        with open(out) as f:
            rate = json.load(f)["jobs"][0]["write"]["iops"]
        self.flusher_rates.setdefault(name, []).append(round(rate))
        log(f"round {rnd + 1}: the flusher beside it: {rate:.0f} flushed "
            "writes/s")
        d.remove(lv)
        return v

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        rounds = {}
        with Cleanup() as cleanup:
            if not self.knobs.keep:
                cleanup.push("remove thin-io files", shutil.rmtree, self.dir,
                             True)
            try:
                self.setup_dlvm(cleanup)
            except BenchError as e:
                log(f"thin dlvm: FAILED: {e}")
                for name in ("linear", "linear-new", "thin", *NEW_POOLS,
                             "thin-cow", self.snap, self.gone,
                             "thin-beside-flush",
                             "linear-beside-flush"):
                    self.errors[name] = str(e)
            try:
                self.setup_qcow2(cleanup)
            except BenchError as e:
                log(f"thin qcow2: FAILED: {e}")
                self.errors[self.qchain] = self.errors["qcow2"] = str(e)
            for rnd in range(self.knobs.repeat):
                for name, rw in self.runs(rnd):
                    if name in self.errors:
                        continue
                    try:
                        if name in NEW_POOLS:
                            v = self.run_new(rnd, name)
                        elif name == "linear-new":
                            v = self.run_linear_new(rnd)
                        elif name == "thin-cow":
                            v = self.run_cow(rnd)
                        elif name.endswith("-beside-flush"):
                            v = self.run_beside_flush(rnd, name)
                        else:
                            v = self.fio(name, self.args[name], rw,
                                         self.size, rnd)
                    except BenchError as e:
                        log(f"{name}: FAILED: {e}")
                        self.errors[name] = str(e)
                        continue
                    rounds.setdefault(name, {}).setdefault(rw, []).append(v)
        iops = {name: {rw: summarize(v) for rw, v in per.items()}
                for name, per in rounds.items() if name not in self.errors}
        return {"size_gib": self.knobs.size_gib,
                "runtime_s": self.knobs.runtime,
                "ramp_s": self.ramp,
                "rounds": self.knobs.repeat,
                "chain": self.chain,
                "job": "fio ioengine=nbd bs=4k iodepth=32 numjobs=1 "
                       "time_based norandommap",
                "settings": self.settings,
                "iops": iops,
                "thin_new": self.new,
                "thin_new_written_chunks": self.new_written_chunks,
                "thin_cow": self.cow,
                "flusher_writes_per_s": self.flusher_rates,
                "errors": self.errors,
                "ratios": io_ratios(iops, self.chain)}


def io_ratios(iops, chain):
    """Each comparison as the ratio of the medians (the verdict) and as the
    median of the ratios of the rounds (runs of one round are close in
    time, so this one is less moved by a change in the machine's load)."""
    snap, qchain = f"thin-{chain}snap", f"qcow2-{chain}"
    gone = f"{snap}-gone"
    pairs = (("thin", "linear", "randwrite"),
             ("thin-new", "linear", "randwrite"),
             ("thin-new-sparse", "linear-new", "randwrite"),
             ("thin-new-sparse", "linear", "randwrite"),
             ("thin-new", "thin-new-sparse", "randwrite"),
             ("linear-new", "linear", "randwrite"),
             ("thin-cow", "thin", "randwrite"),
             ("thin", "linear", "randread"),
             (snap, gone, "randread"),
             (snap, "thin", "randread"),
             (gone, "thin", "randread"),
             (snap, qchain, "randread"),
             (qchain, "qcow2", "randread"),
             ("thin-beside-flush", "thin", "randread"),
             ("linear-beside-flush", "linear", "randread"),
             ("thin-beside-flush", "linear-beside-flush", "randread"))
    out = {}
    for a, b, rw in pairs:
        sa = iops.get(a, {}).get(rw, {})
        sb = iops.get(b, {}).get(rw, {})
        rounds = [ratio(x, y) for x, y in zip(sa.get("rounds_iops", []),
                                              sb.get("rounds_iops", []))]
        out[f"{a}/{b} {rw}"] = {
            "of_medians": ratio(sa.get("iops"), sb.get("iops")),
            "median_of_rounds": (round(statistics.median(rounds), 3)
                                 if rounds else None),
            "rounds": rounds}
    return out


# ---- metadata: activation and snapshots -------------------------------------

class ThinMeta:
    """Activation of a pool with many mapped chunks, snapshot creation."""

    def __init__(self, knobs):
        self.knobs = knobs
        self.dir = os.path.join(knobs.workdir, "thin-meta")
        self.mapped_mib = env_int("BENCH_THIN_MAPPED_MIB",
                                  256 if knobs.quick else 4096)
        self.big_gib = env_int("BENCH_THIN_BIG_GIB", 2 if knobs.quick else 8)
        self.snaps = env_int("BENCH_THIN_SNAPS", 20)
        self.starts = env_int("BENCH_THIN_STARTS", 3 if knobs.quick else 10)
        if min(self.mapped_mib, self.big_gib, self.snaps, self.starts) < 1:
            raise BenchError("BENCH_THIN_MAPPED_MIB, BENCH_THIN_BIG_GIB, "
                             "BENCH_THIN_SNAPS, BENCH_THIN_STARTS: at least 1")
        self.errors = {}

    def pool_size(self, nbytes):
        return f"{nbytes // MiB + 64}m"

    def setup_activation(self, cleanup):
        """Two VGs: "mapped" with the 4 KiB-chunk volume written in full,
        "empty" with the same pool and volume and nothing written."""
        data = self.mapped_mib * MiB
        pv_gib = math.ceil(data / GiB) + self.big_gib + 4
        mapped = Daemon(self.knobs.build, os.path.join(self.dir, "mapped"))
        empty = Daemon(self.knobs.build, os.path.join(self.dir, "empty"))
        for d in (mapped, empty):
            d.create_vg(pv_gib)
            d.start(cleanup)
            d.make_pool("pool4k", self.pool_size(data), "4k")
            d.make_thin("big", f"{self.mapped_mib}m", "pool4k")
        empty.stop()
        log(f"thin: writing vg0/big in full in random order, 64 KiB at a "
            f"time ({self.mapped_mib} MiB in 4 KiB chunks: "
            f"{data // 4096} chunks)")
        t0 = time.monotonic()
        fill_random(mapped.fio_args("big"), data, "64k",
                    os.path.join(self.dir, "fill-big.json"))
        log(f"thin: vg0/big written in {time.monotonic() - t0:.1f} s")
        chunks = round(float(mapped.lvs()["big"]["data_percent"]) / 100
                       * (data // 4096))
        mapped.stop()
        return mapped, empty, chunks

    def activation(self, cleanup, mapped, empty, chunks):
        took = {"mapped": [], "empty": []}
        for i in range(self.starts):
            for label, d in (("empty", empty), ("mapped", mapped)):
                t = d.timed_start(cleanup)
                took[label].append(t)
                # the export is there, with its size
                size = run(["nbdinfo", "--size",
                            nbd_unix_uri(d.dlvm.nbd_sock, "vg0/big")]
                           ).stdout.strip()
                if size != str(self.mapped_mib * MiB):
                    raise BenchError(f"{label}: vg0/big: nbdinfo --size "
                                     f"{size}, not {self.mapped_mib * MiB}")
                d.stop()
                log(f"start {i + 1}: dlvmd with {label:6} vg0/big: NBD "
                    f"served after {t * 1000:7.1f} ms")
        res = {"mapped_chunks": chunks, "chunk_size": 4096,
               "data_mib": self.mapped_mib, "starts": self.starts,
               "fill": "random order, 64 KiB writes",
               "mapped_median_ms": median_ms(took["mapped"]),
               "empty_median_ms": median_ms(took["empty"]),
               "mapped_all_ms": [round(x * 1000, 1) for x in took["mapped"]],
               "empty_all_ms": [round(x * 1000, 1) for x in took["empty"]],
               "target_ms": TARGET_ACTIVATION_MS,
               "target_chunks": TARGET_ACTIVATION_CHUNKS}
        res["open_ms"] = round(res["mapped_median_ms"]
                               - res["empty_median_ms"], 1)
        res["target_met"] = res["mapped_median_ms"] <= TARGET_ACTIVATION_MS
        return res

    def snapshot_times(self, cleanup, d):
        """Snapshots of three fully mapped volumes, taking turns."""
        d.start(cleanup)
        cleanup.push("close API connection", d.close)
        big = self.big_gib * GiB
        d.make_pool("pool64k", self.pool_size(GiB), "64k")
        d.make_thin("small", "1g", "pool64k")
        d.make_pool("pool1m", self.pool_size(big), "1m")
        d.make_thin("large", f"{self.big_gib}g", "pool1m")
        for lv, size in (("small", GiB), ("large", big)):
            log(f"thin: writing vg0/{lv} in full ({size // GiB} GiB)")
            t0 = time.monotonic()
            fill(d.fio_args(lv), size, os.path.join(self.dir,
                                                    f"fill-{lv}.json"))
            log(f"thin: vg0/{lv} written in {time.monotonic() - t0:.1f} s")
        vols = {"small": {"size": GiB, "chunk_size": CHUNK},
                "large": {"size": big, "chunk_size": MiB},
                "big": {"size": self.mapped_mib * MiB, "chunk_size": 4096}}
        lvs = d.lvs()
        for lv, v in vols.items():
            v["mapped_chunks"] = round(float(lvs[lv]["data_percent"]) / 100
                                       * (v["size"] // v["chunk_size"]))
        took = {lv: [] for lv in vols}
        for i in range(self.snaps):
            for lv in vols:
                t0 = time.perf_counter()
                d.snapshot(lv, f"{lv}-s{i}")
                took[lv].append(time.perf_counter() - t0)
        for lv, v in vols.items():
            v["median_ms"] = median_ms(took[lv])
            v["max_ms"] = round(max(took[lv]) * 1000, 2)
            v["all_ms"] = [round(x * 1000, 2) for x in took[lv]]
            log(f"thin: lvcreate -s of vg0/{lv} ({v['size'] // MiB} MiB, "
                f"{v['mapped_chunks']} chunks): median {v['median_ms']} ms")
        d.stop()
        return {"samples": self.snaps, "volumes": vols,
                "flush_floor_ms": flush_floor(self.dir),
                "target_ms": TARGET_SNAPSHOT_MS,
                "ratios": {f"{lv}/small": ratio(v["median_ms"],
                                                vols["small"]["median_ms"])
                           for lv, v in vols.items() if lv != "small"}}

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        out = {}
        with Cleanup() as cleanup:
            if not self.knobs.keep:
                cleanup.push("remove thin-meta files", shutil.rmtree,
                             self.dir, True)
            try:
                mapped, empty, chunks = self.setup_activation(cleanup)
            except BenchError as e:
                log(f"thin activation setup: FAILED: {e}")
                self.errors["activation"] = self.errors["snapshot"] = str(e)
                return {"errors": self.errors}
            try:
                out["activation"] = self.activation(cleanup, mapped, empty,
                                                    chunks)
            except BenchError as e:
                log(f"thin activation: FAILED: {e}")
                self.errors["activation"] = str(e)
            for d in (mapped, empty):
                if d.proc:
                    stop_process(d.proc, "dlvmd")
                    d.proc = None
            try:
                out["snapshot"] = self.snapshot_times(cleanup, mapped)
            except BenchError as e:
                log(f"thin snapshot: FAILED: {e}")
                self.errors["snapshot"] = str(e)
        out["errors"] = self.errors
        return out


def run_thin(knobs):
    """Both halves; a failure of one does not lose the other."""
    out = {"errors": {}}
    for key, cls in (("io", ThinIo), ("meta", ThinMeta)):
        try:
            res = cls(knobs).run()
        except BenchError as e:
            log(f"thin {key}: FAILED: {e}")
            out["errors"][key] = str(e)
            continue
        out[key] = res
        for name, err in res.get("errors", {}).items():
            out["errors"][f"{key}/{name}"] = err
    return out


def report(out):
    lines = ["Thin pools"]
    io = out.get("io")
    if io:
        lines.append(f"  I/O: fio nbd 4k, iodepth 32, 1 job, "
                     f"{io['runtime_s']} s per run, {io['size_gib']} GiB "
                     f"volumes, median of {io['rounds']} rounds (IOPS):")
        w = max(len(n) for n in io["settings"]) + 2
        lines.append(f"    {'target':{w}}{'randwrite':>12}{'randread':>12}"
                     "   rounds")
        for name in io["settings"]:
            per = io["iops"].get(name)
            if per is None:
                continue
            cells = "".join(f"{per[rw]['iops']:>12}" if rw in per
                            else f"{'':>12}"
                            for rw in ("randwrite", "randread"))
            rr = "; ".join(f"{rw[4:]} " + " ".join(str(i) for i in
                                                   per[rw]["rounds_iops"])
                           for rw in ("randwrite", "randread") if rw in per)
            lines.append(f"    {name:{w}}{cells}   {rr}")
        for name, how in io["settings"].items():
            lines.append(f"    {name:{w}}= {how}")
        for name, err in io["errors"].items():
            lines.append(f"    {name:{w}}FAILED: {err}")
        for r, field, what in (
                *((io["thin_new"][n], "new_chunks", f"{n}: chunks mapped")
                  for n in NEW_POOLS),
                (io["thin_cow"], "copied_chunks", "thin-cow: chunks copied")):
            if not r["writes_counted"]:
                continue
            secs = io["runtime_s"] + io["ramp_s"]
            cells = [f"{c:,} of {v:,} ({fresh_share(c, v):.1%}; "
                     f"{c / secs:,.0f}/s)"
                     for c, v in zip(r[field], r["volume_chunks"])]
            lines.append(f"    {what} per round (share of writes that did; "
                         f"per second of the run and its ramp): "
                         f"{', '.join(cells)}; fio counted "
                         + ", ".join(f"{n:,}" for n in r["writes_counted"])
                         + " writes after the ramp")
            if "runtime_ms" in r:
                lines.append(f"    {what.split(':')[0]}: fio's run time "
                             "after the ramp per round (ms; a thin-new run "
                             "ends early at its chunk cap): "
                             + ", ".join(f"{n:,}" for n in r["runtime_ms"]))
        for name, rates in io.get("flusher_writes_per_s", {}).items():
            lines.append(f"    {name}: the writer's flushed writes per "
                         "second per round: "
                         + ", ".join(f"{n:,}" for n in rates))
        r = io["ratios"]
        snap, qchain = f"thin-{io['chain']}snap", f"qcow2-{io['chain']}"
        goals = {"thin/linear randwrite": TARGET_OVERWRITE,
                 "thin-new/linear randwrite": TARGET_FIRST_WRITE,
                 "thin-new-sparse/linear-new randwrite": TARGET_FIRST_WRITE,
                 f"{snap}/{snap}-gone randread": TARGET_SNAP_READ,
                 f"{snap}/{qchain} randread": TARGET_VS_QCOW2}
        nw = max([32] + [len(n) for n in r])
        lines.append(f"  ratios: {'':{nw - 8}}of medians  median of the "
                     "rounds' ratios (rounds)")
        for name, v in r.items():
            m, mr = v["of_medians"], v["median_of_rounds"]
            if m is None:
                lines.append(f"    {name:{nw}} -")
                continue
            goal = goals.get(name)
            tail = (f"  target >= {goal:g}: {verdict(m >= goal)}"
                    if goal is not None else "  (no target)")
            rounds = " ".join(f"{x:.2f}" for x in v["rounds"])
            lines.append(f"    {name:{nw}} {m:6.3f}  {mr:6.3f} ({rounds})"
                         f"{tail}")
    meta = out.get("meta", {})
    act = meta.get("activation")
    if act:
        note = ("" if act["mapped_chunks"] >= act["target_chunks"] else
                f" (the target is for {act['target_chunks']:,} chunks: "
                "BENCH_THIN_MAPPED_MIB=4096)")
        lines.append(
            f"  activation: dlvmd start to NBD served, median of "
            f"{act['starts']} starts: {act['mapped_median_ms']} ms with "
            f"{act['mapped_chunks']:,} mapped 4 KiB chunks "
            f"({act['data_mib']} MiB, {act['fill']}), "
            f"{act['empty_median_ms']} ms with none: the store's open "
            f"~{act['open_ms']} ms")
        lines.append(f"    target <= {act['target_ms']:g} ms: "
                     f"{verdict(act['target_met'])}{note}")
    snap = meta.get("snapshot")
    if snap:
        lines.append(f"  snapshot (lvcreate -s through the API), median of "
                     f"{snap['samples']} (ms); fdatasync on this file "
                     f"system: {snap['flush_floor_ms']} ms")
        for lv, v in snap["volumes"].items():
            m = v["median_ms"]
            lines.append(
                f"    {v['size'] // MiB:>7} MiB in {v['chunk_size'] // 1024:>4}"
                f" KiB chunks, {v['mapped_chunks']:>9,} mapped: median "
                f"{m:7.2f}, max {v['max_ms']:7.2f}  target <= "
                f"{snap['target_ms']:g}: {verdict(m <= snap['target_ms'])}")
        for name, v in snap["ratios"].items():
            lines.append(f"    {name:14} {v}  (flat is ~1)")
        lines.append("    (a 100 GiB volume in 64 KiB chunks maps 1,638,400 "
                     "chunks: not measured; the largest mapping measured is "
                     "the 4 KiB-chunk volume above)")
    for name, err in out["errors"].items():
        lines.append(f"  {name}: FAILED: {err}")
    return lines
