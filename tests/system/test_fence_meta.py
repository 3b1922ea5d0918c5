# SPDX-License-Identifier: MIT
"""Fenced metadata writes: a host that stalls (SIGSTOP) after taking the VG
lease or a thin family, right before a metadata write, is taken over by
another host after the dead-host time; when it is continued, its write is
never issued: it fences itself and says so, and what the other host
committed meanwhile is intact on every metadata copy.

The stall comes from the debug pause points (include/dlvm/debug.h):
DLVM_DEBUG_PAUSE names the point, DLVM_DEBUG_PAUSE_ARM a file that must
exist for the pause to happen, so that the host can start and prepare
first. Two dlvmd (host ids 1 and 2, io_timeout 1 s) share the PV files, as
in test_shared.py."""
import json
import os
import signal
import subprocess
import threading
import time

import nbd

from conftest import DLVM, Dlvmd, stop_clean
from test_shared import IO_TIMEOUT, hosts, offline, shared_pvs  # noqa: F401

MiB = 1 << 20
FENCED = "not issued, this host fences itself"


def start_host(tmp_path, pvs, host_id, pause=None):
    """dlvmd with host id host_id; with `pause`, armed by touching the
    returned host's .arm file."""
    d = Dlvmd(tmp_path / f"h{host_id}", devices=pvs,
              extra=["--io-timeout", str(IO_TIMEOUT), "--host-id", str(host_id)])
    d.arm = tmp_path / f"arm-{host_id}"
    old = dict(os.environ)
    if pause:
        os.environ["DLVM_DEBUG_PAUSE"] = pause
        os.environ["DLVM_DEBUG_PAUSE_ARM"] = str(d.arm)
    try:
        d.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return d


def stopped(d):
    """Is d's process stopped (state T)?"""
    with open(f"/proc/{d.proc.pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def wait_for(cond, what, timeout=30):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def lv_names(d):
    out, _ = d.cli_ok("lvs", "--reportformat", "json", "-o", "lv_name", "vgs")
    return sorted(r["lv_name"] for r in json.loads(out)["report"][0]["lv"])


def background_cli(tmp_path, d, *args):
    """Start `dlvm args` against d; returns the process."""
    env = dict(os.environ, DLVM_STATE_DIR=str(tmp_path / "cli-state"))
    env.pop("DLVM_SOCKET", None)
    return subprocess.Popen([str(DLVM), "--socket", str(d.socket), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_everywhere(tmp_path, pvs, survivor):
    """`dlvm check` clean through the survivor and offline after every
    dlvmd stopped, on every metadata copy."""
    out, _ = survivor.cli_ok("check", "vgs")
    stop_clean(survivor)
    rc, out, err = offline(tmp_path, pvs, "check", "vgs")
    # check re-reads every metadata copy (and every thin store): a stale or
    # damaged one is an error
    assert rc == 0 and "metadata and extents are consistent" in out, out + err
    assert "stale" not in out + err and "damaged" not in out + err, out + err


def test_stalled_leader_journal_write(tmp_path, shared_pvs):
    a = start_host(tmp_path, shared_pvs, 1, pause="journal-write")
    b = start_host(tmp_path, shared_pvs, 2)
    a.cli_ok("lvcreate", "-n", "before", "-L", "8m", "vgs")

    a.arm.touch()
    slow = background_cli(tmp_path, a, "lvcreate", "-n", "late", "-L", "8m", "vgs")
    wait_for(lambda: stopped(a), "host 1 pauses before its journal write")
    assert "debug pause at journal-write" in a.read_log()

    # host 2 takes the VG lease over once host 1 is dead, and commits
    waited = wait_for(lambda: hosts(b)[1]["host_state"] == "dead", "host 1 seen dead")
    assert waited < 5.5 * IO_TIMEOUT + 2, waited
    b.cli_ok("lvcreate", "-n", "b1", "-L", "8m", "vgs")
    b.cli_ok("lvcreate", "-n", "b2", "-L", "4m", "vgs")
    b.cli_ok("lvextend", "-L", "+4m", "vgs/b1")
    b.cli_ok("lvremove", "-y", "vgs/before")

    os.kill(a.proc.pid, signal.SIGCONT)
    out, err = slow.communicate(timeout=60)
    assert slow.returncode != 0, out
    # the renewal thread may notice first that the lease is gone (deadline
    # 0) or the commit that the deadline has passed
    assert ("vgs: lease expired" in err or "vgs: this host holds no lease" in err) \
        and "journal write " + FENCED in err, err
    log = a.read_log()
    assert "journal write " + FENCED in log, log
    assert "lockspace: fenced: renewals stopped" in log or "renewal failed" in log, log
    # it changes nothing more
    rc, _, err = a.cli("lvcreate", "-n", "again", "-L", "4m", "vgs")
    assert rc != 0 and ("fenced itself" in err or "lost its lockspace lease" in err), err

    assert lv_names(b) == ["b1", "b2"]
    time.sleep(1)  # whatever host 1 might still write, it would be there now
    assert lv_names(b) == ["b1", "b2"]
    stop_clean(a)
    rc, out, err = offline(tmp_path, shared_pvs, "lvs", "vgs")
    assert rc == 0 and "late" not in out and "b1" in out and "before" not in out, out + err
    check_everywhere(tmp_path, shared_pvs, b)


def pattern(tag, n):
    return (tag.to_bytes(4, "little") * (n // 4))


def connect(d, name):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(str(d.nbd_socket))
    return h


def test_stalled_leader_thin_commit(tmp_path, shared_pvs):
    a = start_host(tmp_path, shared_pvs, 1, pause="thin-commit")
    b = start_host(tmp_path, shared_pvs, 2)
    a.cli_ok("lvcreate", "--type", "thin-pool", "-L", "128m", "--chunksize", "64k", "-n",
             "pool", "vgs")
    a.cli_ok("lvcreate", "-V", "32m", "-T", "vgs/pool", "-n", "t")
    h = connect(a, "vgs/t")
    h.pwrite(pattern(1, MiB), 0)
    h.flush()  # committed: host 2 must see it

    # a write to chunks not mapped yet, then a flush whose commit stalls
    a.arm.touch()
    h.pwrite(pattern(2, MiB), 8 * MiB)
    done = []
    t = threading.Thread(target=lambda: done.append(_flush(h)))
    t.start()
    wait_for(lambda: stopped(a), "host 1 pauses in its thin commit")
    assert "debug pause at thin-commit" in a.read_log()

    # host 2 takes the family over and commits its own writes, which may
    # use the very chunks host 1 had allocated
    wait_for(lambda: hosts(b)[1]["host_state"] == "dead", "host 1 seen dead")
    b.cli_ok("lvchange", "-aey", "vgs/t")
    g = connect(b, "vgs/t")
    assert g.pread(MiB, 0) == pattern(1, MiB)
    assert g.pread(MiB, 8 * MiB) == bytes(MiB)  # never committed by host 1
    g.pwrite(pattern(3, 2 * MiB), 16 * MiB)
    g.flush()

    os.kill(a.proc.pid, signal.SIGCONT)
    t.join(60)
    assert done and done[0] is not None, "host 1's flush was acknowledged: " + repr(done)
    h.shutdown()
    time.sleep(1)  # whatever host 1 might still write, it would be there now
    g.shutdown()
    # a fresh look at the store: host 2 reopens it from the disk
    b.cli_ok("lvchange", "-an", "vgs/t")
    b.cli_ok("lvchange", "-aey", "vgs/t")
    g = connect(b, "vgs/t")
    assert g.pread(MiB, 0) == pattern(1, MiB)
    assert g.pread(MiB, 8 * MiB) == bytes(MiB), "host 1's stalled commit landed"
    assert g.pread(2 * MiB, 16 * MiB) == pattern(3, 2 * MiB), "host 2's commit was lost"
    g.shutdown()
    log = a.read_log()
    assert "thin metadata write " + FENCED in log, log
    stop_clean(a)
    check_everywhere(tmp_path, shared_pvs, b)


def _flush(h):
    """The flush's error number (None: it succeeded)."""
    try:
        h.flush()
        return None
    except nbd.Error as e:
        return e.errnum
