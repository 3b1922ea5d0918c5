"""TLS benchmark: NBD over TLS-PSK against plain TCP and the Unix socket,
for dlvmd and for qemu-nbd, measured with nbdcopy in the same run.

fio's nbd engine cannot be given a key file (libnbd refuses tls-psk-file
in its URIs unless the program allows local files), so the client is
nbdcopy, which does; every target gets the same copies:

  dlvm-unix     dlvmd's Unix socket (no TLS)
  dlvm-tcp      dlvmd's TCP listener without TLS (dlvmd runs with --tls on:
                TLS offered, not required)
  dlvm-tls      the same listener with TLS-PSK
  qemu-nbd-tcp  qemu-nbd on a raw file of the same size, plain TCP
                (--cache=none --aio=native: like dlvmd, no page cache)
  qemu-nbd-tls  the same with --tls-creds (tls-creds-psk)

Copies, over one connection (nbdcopy -C 1), of the whole SIZE target:
reads in 256 KiB requests to null: and writes in 256 KiB requests from a
file of random data (MB/s), reads in 4 KiB requests (IOPS). The key is
made with psktool. Each copy runs on every target in turn; the median of
the rounds counts.

Ratios: dlvm-tls / qemu-nbd-tls, and what TLS keeps of plain TCP for each
server (X-tls / X-tcp). Target: TLS costs dlvm no more than it costs
qemu-nbd (dlvm's keep >= qemu-nbd's).
"""

import os
import socket
import statistics
import subprocess
import time

from common import BenchError, Cleanup, Dlvm, UnixHTTPConnection, \
    free_tcp_port, log, ratio, run, start_server
from iops import nbd_unix_uri

MiB = 1 << 20
SIZE = 128 * MiB
JOBS = (  # name, direction, request size, requests in flight, unit
    ("read-256k", "read", 256 << 10, 16, "MB/s"),
    ("write-256k", "write", 256 << 10, 16, "MB/s"),
    ("read-4k", "read", 4096, 64, "IOPS"),
)
TARGETS = ("dlvm-unix", "dlvm-tcp", "dlvm-tls", "qemu-nbd-tcp", "qemu-nbd-tls")
USER = "bench"


def wait_tcp(port, proc, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{name}: 127.0.0.1:{port} not accepting after {timeout} s")


class TlsBench:
    def __init__(self, knobs):
        self.knobs = knobs
        self.dir = os.path.join(knobs.workdir, "tls")
        self.rounds = 1 if knobs.quick else 2
        self.psk_dir = os.path.join(self.dir, "psk")
        self.psk = os.path.join(self.psk_dir, "keys.psk")
        self.raw = os.path.join(self.dir, "raw.img")
        self.src = os.path.join(self.dir, "random.img")  # what the writes copy

    def make_key(self):
        os.makedirs(self.psk_dir, exist_ok=True)
        run(["psktool", "-u", USER, "-p", self.psk])
        os.chmod(self.psk, 0o600)

    def start_dlvm(self, cleanup):
        """dlvmd with TLS offered on TCP: the URIs of the three dlvm targets."""
        dlvm = Dlvm(self.knobs.build, os.path.join(self.dir, "dlvm"))
        dlvm.setup_vg("2G")
        dlvm.start(cleanup, os.path.join(self.dir, "dlvm.log"),
                   ["--tls", "on", "--tls-psk", self.psk])
        conn = UnixHTTPConnection(dlvm.ctl_sock)
        try:
            dlvm.api(conn, "lvcreate", {"name": "bench", "size": f"{SIZE // MiB}m"}, ["vg0"])
        finally:
            conn.close()
        unix = nbd_unix_uri(dlvm.nbd_sock, "vg0/bench")
        run(["nbdcopy", "-S", "0", self.src, unix])
        tcp = f"127.0.0.1:{dlvm.port}/vg0/bench"
        return {"dlvm-unix": unix, "dlvm-tcp": f"nbd://{tcp}",
                "dlvm-tls": f"nbds://{USER}@{tcp}?tls-psk-file={self.psk}"}

    def start_qemu(self, cleanup, tls):
        name = "qemu-nbd-tls" if tls else "qemu-nbd-tcp"
        port = free_tcp_port()
        cmd = ["qemu-nbd", "-f", "raw", "--cache=none", "--aio=native", "--shared=8",
               "--persistent", "-b", "127.0.0.1", "-p", str(port)]
        if tls:
            cmd += ["--object", f"tls-creds-psk,id=tls0,endpoint=server,dir={self.psk_dir}",
                    "--tls-creds", "tls0"]
        proc = start_server(cmd + [self.raw], [], name, cleanup,
                            os.path.join(self.dir, f"{name}.log"))
        wait_tcp(port, proc, name)
        uri = f"nbds://{USER}@127.0.0.1:{port}/?tls-psk-file={self.psk}" if tls \
            else f"nbd://127.0.0.1:{port}/"
        return {name: uri}

    def measure(self, name, uri, job, rnd):
        """One copy of the whole target: MB/s or IOPS."""
        jname, direction, bs, depth, unit = job
        copy = [self.src, uri] if direction == "write" else [uri, "null:"]
        t0 = time.monotonic()
        run(["nbdcopy", "-C", "1", "-S", "0", f"--request-size={bs}", f"--requests={depth}",
             *copy], timeout=600)
        dt = time.monotonic() - t0
        v = SIZE / dt / 1e6 if unit == "MB/s" else SIZE / bs / dt
        log(f"round {rnd + 1}: {name:13} {jname:10}: {v:10.0f} {unit}")
        return v

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        self.make_key()
        log(f"tls: writing {self.src} and {self.raw} ({SIZE // MiB} MiB of random data)")
        with open("/dev/urandom", "rb") as r, open(self.src, "wb") as w:
            for _ in range(SIZE // MiB):
                w.write(r.read(MiB))
        run(["cp", self.src, self.raw])
        samples, errors = {}, {}
        with Cleanup() as cleanup:
            args = {}
            for what, start in (("dlvm", lambda: self.start_dlvm(cleanup)),
                                ("qemu-nbd-tcp", lambda: self.start_qemu(cleanup, False)),
                                ("qemu-nbd-tls", lambda: self.start_qemu(cleanup, True))):
                try:
                    args.update(start())
                except (BenchError, subprocess.SubprocessError) as e:
                    log(f"{what}: FAILED: {e}")
                    errors[what] = str(e)
            for rnd in range(self.rounds):
                for job in JOBS:
                    for name in TARGETS:
                        if name not in args:
                            continue
                        try:
                            v = self.measure(name, args[name], job, rnd)
                        except BenchError as e:
                            log(f"{name}: FAILED: {e}")
                            errors[name] = str(e)
                            del args[name]
                            continue
                        samples.setdefault(name, {}).setdefault(job[0], []).append(v)
        if not self.knobs.keep:
            os.unlink(self.raw)
            os.unlink(self.src)
        med = {n: {j: round(statistics.median(v)) for j, v in per.items()}
               for n, per in samples.items()}
        return {"size_mib": SIZE // MiB, "rounds": self.rounds,
                "results": med, "errors": errors, "ratios": tls_ratios(med)}


def tls_ratios(med):
    def get(name, job):
        return med.get(name, {}).get(job)

    out = {}
    for jname, *_ in JOBS:
        out[jname] = {
            "dlvm-tls/qemu-nbd-tls": ratio(get("dlvm-tls", jname), get("qemu-nbd-tls", jname)),
            "dlvm-tls/dlvm-tcp": ratio(get("dlvm-tls", jname), get("dlvm-tcp", jname)),
            "qemu-nbd-tls/qemu-nbd-tcp": ratio(get("qemu-nbd-tls", jname),
                                               get("qemu-nbd-tcp", jname)),
            "dlvm-tcp/dlvm-unix": ratio(get("dlvm-tcp", jname), get("dlvm-unix", jname)),
        }
    return out


def run_tls(knobs):
    return TlsBench(knobs).run()


def report(res):
    names = [j[0] for j in JOBS]
    units = {j[0]: j[-1] for j in JOBS}
    lines = [f"TLS: nbdcopy of a {res['size_mib']} MiB target over one NBD connection "
             f"(median of {res['rounds']} rounds)",
             f"  {'target':26}" + "".join(f"{j + ' ' + units[j]:>20}" for j in names)]
    for name in TARGETS:
        per = res["results"].get(name)
        if per:
            lines.append(f"  {name:26}" + "".join(f"{per.get(j, '-'):>20}" for j in names))
    for what, err in res["errors"].items():
        lines.append(f"  {what:26}  FAILED: {err}")
    lines.append("  ratios (target: dlvm-tls/dlvm-tcp >= qemu-nbd-tls/qemu-nbd-tcp):")
    for what in ("dlvm-tls/qemu-nbd-tls", "dlvm-tls/dlvm-tcp", "qemu-nbd-tls/qemu-nbd-tcp",
                 "dlvm-tcp/dlvm-unix"):
        cells = []
        for j in names:
            r = res["ratios"][j][what]
            mark = ""
            if what == "dlvm-tls/dlvm-tcp" and r is not None:
                q = res["ratios"][j]["qemu-nbd-tls/qemu-nbd-tcp"]
                mark = "" if q is None else (" ok" if r >= q else " NO")
            cells.append(f"{'-':>20}" if r is None else f"{r:>17.2f}{mark:3}")
        lines.append(f"  {what:26}" + "".join(cells))
    return lines
