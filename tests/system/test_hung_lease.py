# SPDX-License-Identifier: MIT
"""A lease device that hangs for one host: its lease I/O times out instead of
blocking, its renewals stop, it fences itself within its deadline, another
host takes over after the dead-host time, nothing the hung host had queued
lands afterwards, and its dlvmd stops in bounded time.

The first PV (which holds the lease area) is a file served by
tests/tools/hangfs, a FUSE file system whose I/O hangs on command for one
process only, as a SAN path fails for one host and not the others. Two
dlvmd (host ids 1 and 2, io_timeout 1 s) share the PVs."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BUILD, Dlvmd, dlvm_ok, stop_clean
from test_fence_meta import lv_names, wait_for
from test_shared import IO_TIMEOUT, hosts

HANGFS = BUILD / "tests" / "tools" / "hangfs"


@pytest.fixture
def hung_pv(tmp_path, pv):
    """(pvs, ctl, log): the shared VG vgs on mnt/pv0.img (hangfs, backed by
    b0.img) and pv1.img; ctl(cmd) sends hangfs a command."""
    if not HANGFS.exists():
        pytest.fail(f"{HANGFS} not built (libfuse3-dev: scripts/deps)")
    back = pv("b0.img", size="512M")
    other = pv("pv1.img", size="512M")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "hangfs.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([str(HANGFS), str(mnt), str(back), "pv0.img"], stderr=f)
    try:
        wait_for(lambda: "hangfs: ready" in log.read_text() and (mnt / "pv0.img").exists(),
                 "hangfs mounted", timeout=10)
        pvs = [mnt / "pv0.img", other]
        dlvm_ok("--devices", ",".join(map(str, pvs)), "vgcreate", "--shared", "--max-hosts",
                "8", "vgs", *pvs, socket=tmp_path / "no-daemon.sock",
                state_dir=tmp_path / "offline")

        def ctl(cmd):
            with open(mnt / "ctl", "w") as c:
                c.write(cmd + "\n")
        yield pvs, ctl, log
    finally:
        try:
            ctl("ok")
            ctl("drop")
        except (OSError, NameError):
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def start(tmp_path, pvs, host_id):
    d = Dlvmd(tmp_path / f"h{host_id}", devices=pvs,
              extra=["--io-timeout", str(IO_TIMEOUT), "--host-id", str(host_id)])
    return d.start()


def test_hung_lease_device(tmp_path, hung_pv):
    pvs, ctl, log = hung_pv
    a = start(tmp_path, pvs, 1)
    b = start(tmp_path, pvs, 2)
    a.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vgs", str(pvs[1]))
    assert hosts(b)[1]["host_state"] == "live"

    t0 = time.monotonic()
    ctl(f"hang {a.proc.pid}")
    # host 1's lease I/O times out (T), its renewals fail, and it is past its
    # deadline (at most F = 3T after the hang began) within F plus a renewal
    wait_for(lambda: "did not complete in 1000 ms (the I/O timeout)" in a.read_log(),
             "host 1's lease I/O times out", timeout=10)
    assert "renewal failed" in a.read_log()
    # a change on host 1 fails instead of hanging: every lease I/O is bounded
    t1 = time.monotonic()
    rc, _, err = a.cli("lvcreate", "-n", "x", "-L", "4m", "vgs", timeout=60)
    assert rc != 0, err
    assert time.monotonic() - t1 < 15, err

    # host 2 sees host 1 dead after D and takes its volume over
    wait_for(lambda: hosts(b)[1]["host_state"] == "dead", "host 1 seen dead", timeout=20)
    assert time.monotonic() - t0 < 5.5 * IO_TIMEOUT + 5
    b.cli_ok("lvchange", "-aey", "vgs/a")
    b.cli_ok("lvcreate", "-n", "b", "-L", "4m", "vgs")
    wait_for(lambda: "lost its lockspace lease" in a.read_log() or
             "lease expired" in a.read_log(), "host 1 says its lease is lost", timeout=10)

    # whatever host 1 had queued is performed now, as by a path that comes
    # back with its queue intact: none of it may be a write
    ctl("go")
    time.sleep(0.5)
    text = log.read_text()
    pid = a.proc.pid
    held = re.findall(rf"hangfs: held (\w+) .* pid {pid}$", text, re.M)
    assert held, text  # the hang was real
    late = re.findall(rf"hangfs: performed write .* pid {pid}$", text, re.M)
    assert not late, "writes of the hung host landed after the takeover: " + "\n".join(late)
    assert sorted(lv_names(b)) == ["a", "b"]
    out, _ = b.cli_ok("check", "vgs")

    # host 1 stops in bounded time although its device still hangs
    ctl(f"hang {pid}")
    t2 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    a.proc.wait(timeout=30)
    assert time.monotonic() - t2 < 4 * (IO_TIMEOUT + 0.5) + 5, time.monotonic() - t2
    ctl("ok")
    ctl("drop")
    assert sorted(lv_names(b)) == ["a", "b"]
    out, _ = b.cli_ok("check", "vgs")
    stop_clean(b)
