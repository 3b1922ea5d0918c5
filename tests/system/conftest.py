# SPDX-License-Identifier: MIT
"""Shared fixtures of the system tests.

The binaries come from $DLVM_BUILD (default ./build). A missing binary or
client tool is a failure, not a skip: a test that cannot run hides a bug.

  dlvm(*args, socket=..., state_dir=..., env=...) -> (rc, stdout, stderr)
  Dlvmd(state_dir, ...)   a dlvmd process: start(), stop() -> exit code,
                          restart(), cli(*args), api(method, path, body),
                          nbd_uri(name)
  fixtures: state_dir, pv (factory of sparse 1 GiB PV files),
            daemon (dlvmd on state_dir, no VG), vg0 (dlvmd serving vg0
            on two 1 GiB PVs: daemon.pvs holds their paths)
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DLVM_BUILD", ROOT / "build")).resolve()
DLVM = BUILD / "cli" / "dlvm"
DLVMD = BUILD / "daemon" / "dlvmd"

CMD_TIMEOUT = 120


def require_tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (scripts/deps installs it)")
    return path


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ISOLATED = []


def _isolated_root():
    if not _ISOLATED:
        _ISOLATED.append(tempfile.mkdtemp(prefix="dlvm-test-"))
        atexit.register(shutil.rmtree, _ISOLATED[0], True)
    return _ISOLATED[0]


def dlvm(*args, socket=None, state_dir=None, env=None, timeout=CMD_TIMEOUT):
    """Run the CLI; returns (rc, stdout, stderr)."""
    if not DLVM.exists():
        pytest.fail(f"{DLVM} not built (run: make build)")
    cmd = [str(DLVM)]
    if socket is not None:
        cmd += ["--socket", str(socket)]
    if state_dir is not None:
        cmd += ["--state-dir", str(state_dir)]
    cmd += [str(a) for a in args]
    e = dict(os.environ)
    e.pop("DLVM_SOCKET", None)
    e.pop("DLVM_STATE_DIR", None)
    if state_dir is None:
        # Never the machine's default /var/lib/dlvm: a command without a
        # state dir gets an empty one of its own, so tests cannot see (or
        # lock) each other's devices through a shared devices file.
        e["DLVM_STATE_DIR"] = tempfile.mkdtemp(prefix="state-", dir=_isolated_root())
    if env:
        e.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def dlvm_ok(*args, **kw):
    """Run the CLI and fail the test unless it exits 0."""
    rc, out, err = dlvm(*args, **kw)
    assert rc == 0, f"dlvm {' '.join(map(str, args))}: rc={rc}\n{out}\n{err}"
    return out, err


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Dlvmd:
    """One dlvmd process on a state directory."""

    def __init__(self, state_dir, devices=None, nbd_listen="none", extra=()):
        self.state_dir = Path(state_dir)
        self.devices = devices
        self.nbd_listen = nbd_listen
        self.extra = list(extra)
        # The tests make their PV files next to the state directory: that
        # is where the API may use files. None: dlvmd's default, DIR/pv.
        self.pv_dir = self.state_dir.parent
        self.proc = None
        self.log_path = self.state_dir.parent / f"{self.state_dir.name}-dlvmd.log"
        self.pvs = []

    @property
    def socket(self):
        return self.state_dir / "dlvmd.sock"

    @property
    def nbd_socket(self):
        return self.state_dir / "nbd.sock"

    def nbd_uri(self, name):
        return f"nbd+unix:///{name}?socket={self.nbd_socket}"

    def command(self):
        if not DLVMD.exists():
            pytest.fail(f"{DLVMD} not built (run: make build)")
        cmd = [str(DLVMD), "--state-dir", str(self.state_dir)]
        if self.devices:
            cmd += ["--devices", ",".join(map(str, self.devices))]
        if self.nbd_listen is not None:
            cmd += ["--nbd-listen", self.nbd_listen]
        if self.pv_dir is not None and "--pv-dir" not in self.extra:
            cmd += ["--pv-dir", str(self.pv_dir)]
        return cmd + self.extra

    def start(self, timeout=30):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.command(), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dlvmd exited with {self.proc.returncode} at start:\n"
                            f"{self.read_log()}")
            try:
                status, body = self.api("GET", "/v1/health")
                if status == 200 and body.get("pid") == self.proc.pid:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"dlvmd did not answer /v1/health in {timeout} s:\n{self.read_log()}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stop with sig; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"dlvmd did not stop in {timeout} s after {sig!r}")
        self.log.close()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"dlvmd exited {rc} on SIGTERM:\n{self.read_log()}"
        return self.start()

    def read_log(self):
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def api(self, method, path, body=None, raw=None, headers=None):
        """One HTTP request to the control socket: (status, parsed JSON)."""
        conn = UnixHTTPConnection(self.socket)
        try:
            data = raw if raw is not None else (
                json.dumps(body).encode() if body is not None else None)
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            text = resp.read()
            return resp.status, json.loads(text) if text else None
        finally:
            conn.close()

    def cli(self, *args, **kw):
        return dlvm(*args, socket=self.socket, **kw)

    def cli_ok(self, *args, **kw):
        return dlvm_ok(*args, socket=self.socket, **kw)


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def pv(tmp_path):
    """make(name, size="1G") -> path of a new sparse PV file (offline pvcreate)."""
    def make(name, size="1G", state_dir=None):
        path = tmp_path / name
        args = ["pvcreate", "--size", size, path]
        dlvm_ok(*args, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
        assert path.exists() and path.stat().st_size > 0
        return path
    return make


def stop_clean(d):
    """End of a test: dlvmd must stop cleanly on SIGTERM (exit 0). In the
    sanitizer build a leak or undefined behaviour changes the exit status,
    so this is also where those are caught."""
    rc = d.stop()
    if rc not in (0, None):
        pytest.fail(f"dlvmd exited {rc} on SIGTERM:\n{d.read_log()[-4000:]}")


@pytest.fixture
def daemon(state_dir):
    d = Dlvmd(state_dir)
    d.start()
    yield d
    stop_clean(d)


@pytest.fixture
def vg0(tmp_path, state_dir, pv):
    """dlvmd serving vg0 made offline on two 1 GiB PVs."""
    a = pv("pv0.img", state_dir=state_dir)
    b = pv("pv1.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, b, socket=tmp_path / "no-daemon.sock",
            state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a, b])
    d.pvs = [a, b]
    d.start()
    yield d
    stop_clean(d)
