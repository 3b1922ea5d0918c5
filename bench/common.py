"""Shared pieces of the dlvm benchmarks: knobs, processes, cleanup, dlvm.

Everything here is plain standard-library Python for Debian's
/usr/bin/python3; the benchmarks drive real binaries (fio, nbdkit,
qemu-nbd, lvm, dlvm, dlvmd) and never import a project module.
"""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GiB = 1 << 30


class BenchError(Exception):
    """A benchmark step could not run; the message says which and why."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BenchError(f"{name}={raw!r}: not an integer")


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [x.strip() for x in raw.split(",") if x.strip()]


class Knobs:
    """Scale and selection of a run, read from the environment.

    BENCH_QUICK=1        smoke run: short fio runs, 1 GiB target, 100 and
                         1,000 LVs, LVM2 filled only to 1,000 + samples
    BENCH_RUNTIME=S      seconds per fio run (default 10; quick: 3)
    BENCH_REPEAT=N       rounds of every fio run; the median counts
                         (default 3; quick: 1)
    BENCH_SIZE_GIB=N     I/O target size in GiB (default 2; quick: 1)
    BENCH_ONLY=a,b       parts to run: io, lvcreate, shared, thin, tls
                         (default all)
    BENCH_TARGETS=a,b    I/O targets (default dlvm,dlvm-any,nbdkit-file,
                         qemu-nbd,qemu-nbd-direct,nbdkit-null,raw,raw-irq;
                         also serve-file,
                         serve-file-fence; NAME@BUILD_DIR for another
                         build tree, see bench/iops.py)
    BENCH_LV_COUNTS=...  LV counts for lvcreate (default 100,1000,10000)
    BENCH_SAMPLES=N      creates timed around each count (default 50)
    BENCH_LVM_MAX=N      stop filling LVM2 here even if it still accepts
                         (default 4000; quick: 1000 + samples)
    BENCH_QEMU_NBD_OPTS  qemu-nbd cache/aio options
                         (default "--cache=writeback --aio=threads")
    BENCH_TMPDIR=DIR     where the scratch directory is made (default
                         /var/tmp: a disk, not tmpfs; never inside the
                         repository, which others may copy or scan)
    BENCH_KEEP=1         keep the scratch directory afterwards
    DLVM_BUILD=DIR       build tree with cli/dlvm and daemon/dlvmd
    """

    def __init__(self):
        self.quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        self.runtime = env_int("BENCH_RUNTIME", 3 if self.quick else 10)
        self.repeat = max(1, env_int("BENCH_REPEAT", 1 if self.quick else 3))
        self.size_gib = env_int("BENCH_SIZE_GIB", 1 if self.quick else 2)
        self.parts = env_list("BENCH_ONLY", ["io", "lvcreate", "shared", "thin", "tls"])
        self.targets = env_list(
            "BENCH_TARGETS",
            ["dlvm", "dlvm-any", "nbdkit-file", "qemu-nbd", "qemu-nbd-direct",
             "nbdkit-null", "raw", "raw-irq"])
        self.samples = env_int("BENCH_SAMPLES", 20 if self.quick else 50)
        counts = env_list("BENCH_LV_COUNTS",
                          ["100", "1000"] if self.quick
                          else ["100", "1000", "10000"])
        try:
            self.lv_counts = sorted(int(c) for c in counts)
        except ValueError:
            raise BenchError(f"BENCH_LV_COUNTS={counts}: not integers")
        lvm_default = (max(self.lv_counts) + self.samples if self.quick
                       else 4000)
        self.lvm_max = env_int("BENCH_LVM_MAX", lvm_default)
        self.qemu_nbd_opts = os.environ.get(
            "BENCH_QEMU_NBD_OPTS", "--cache=writeback --aio=threads").split()
        self.tmpdir = os.path.abspath(os.environ.get("BENCH_TMPDIR",
                                                     "/var/tmp"))
        self.workdir = None     # made by the driver, see make_workdir()
        self.keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
        self.build = os.path.abspath(os.environ.get(
            "DLVM_BUILD", os.path.join(ROOT, "build")))

    def make_workdir(self):
        self.workdir = tempfile.mkdtemp(prefix="dlvm-bench-",
                                        dir=self.tmpdir)
        return self.workdir

    def as_dict(self):
        return dict(vars(self))


class Cleanup:
    """A stack of undo actions, run last-in first-out, errors logged.

    Use as a context manager so processes, loop devices and mounts go
    away even when a benchmark step raises.
    """

    def __init__(self):
        self._stack = []

    def push(self, what, fn, *args):
        self._stack.append((what, fn, args))

    def run(self):
        while self._stack:
            what, fn, args = self._stack.pop()
            try:
                fn(*args)
            except Exception as e:  # keep undoing the rest
                log(f"cleanup: {what}: {e}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.run()
        return False


def run(cmd, timeout=600, env=None, check=True):
    """Run cmd to completion; return CompletedProcess with text output."""
    try:
        cp = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            timeout=timeout, env=env)
    except FileNotFoundError:
        raise BenchError(f"{cmd[0]}: not installed (run scripts/deps)")
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(cmd)}: no answer in {timeout} s")
    if check and cp.returncode != 0:
        tail = (cp.stderr.strip() or cp.stdout.strip()).splitlines()[-3:]
        raise BenchError(f"{' '.join(cmd)}: exit {cp.returncode}: "
                         + " | ".join(tail))
    return cp


def stop_process(proc, name, grace=10):
    """SIGTERM, then SIGKILL after grace seconds; reap."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM for {grace} s, killing it")
        proc.kill()
        proc.wait()


def start_server(cmd, sockets, name, cleanup, log_path, timeout=30):
    """Start a foreground server, wait until every Unix socket accepts.

    The server is stopped by cleanup; its output goes to log_path.
    """
    for s in sockets:
        if os.path.exists(s):
            os.unlink(s)
    out = open(log_path, "w")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    except FileNotFoundError:
        out.close()
        raise BenchError(f"{cmd[0]}: not installed (run scripts/deps)")
    cleanup.push(f"stop {name}", stop_process, proc, name)
    cleanup.push(f"close {name} log", out.close)
    deadline = time.monotonic() + timeout
    waiting = list(sockets)
    while waiting:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} before "
                             f"listening: {tail_of(log_path)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{name}: {waiting[0]} not accepting after "
                             f"{timeout} s: {tail_of(log_path)}")
        if can_connect(waiting[0]):
            waiting.pop(0)
        else:
            time.sleep(0.05)
    return proc


def tail_of(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def can_connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_tcp_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def median_ms(seconds):
    return round(statistics.median(seconds) * 1000, 3) if seconds else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix stream socket (dlvmd's control socket)."""

    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Dlvm:
    """The dlvm binaries from a build tree, and one dlvmd state directory."""

    def __init__(self, build, state):
        self.cli = os.path.join(build, "cli", "dlvm")
        self.daemon = os.path.join(build, "daemon", "dlvmd")
        self.state = state
        self.ctl_sock = os.path.join(state, "dlvmd.sock")
        self.nbd_sock = os.path.join(state, "nbd.sock")
        for b in (self.cli, self.daemon):
            if not os.access(b, os.X_OK):
                raise BenchError(f"{b}: not built (run: make build)")

    def offline(self, *args, timeout=300):
        """Run a CLI command directly on the devices (no daemon up)."""
        return run([self.cli, "--state-dir", self.state, *args],
                   timeout=timeout)

    def setup_vg(self, pv_size, vg="vg0"):
        os.makedirs(self.state, exist_ok=True)
        pv = os.path.join(self.state, "pv0.img")
        self.offline("pvcreate", "--size", pv_size, pv)
        self.offline("vgcreate", vg, pv)
        return pv

    def start(self, cleanup, log_path, extra=()):
        """Start dlvmd; its TCP listener (self.port) is plain (--tls off)
        unless extra names a --tls mode (or the build predates --tls)."""
        self.port = free_tcp_port()
        tls = [] if "--tls" in extra or not self.has_tls() else ["--tls", "off"]
        cmd = [self.daemon, "--state-dir", self.state,
               "--nbd-listen", f"127.0.0.1:{self.port}", *tls, *extra]
        return start_server(cmd, [self.ctl_sock, self.nbd_sock], "dlvmd",
                            cleanup, log_path)

    def has_tls(self):
        """Does this build's dlvmd know --tls (bench/iops.py compares builds)?"""
        p = subprocess.run([self.daemon, "--help"], capture_output=True, text=True)
        return "--tls " in p.stdout

    def api(self, conn, command, opts, args):
        """POST one command to the native API; return the decoded reply."""
        body = json.dumps({"opts": opts, "args": args})
        conn.request("POST", f"/v1/cmd/{command}", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status // 100 != 2:
            raise BenchError(f"dlvmd {command} {args}: HTTP {resp.status}: "
                             f"{data[:200].decode(errors='replace')}")
        return data
