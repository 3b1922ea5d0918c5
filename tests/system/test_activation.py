"""Activation in shared VGs: exclusive and shared locks held as records in
the VG journal, refresh of other hosts' exports, takeover of a dead host's
volumes, fencing of a paused host, re-adoption after a restart. Several
dlvmd processes (host ids 1..n, io_timeout 1 s) share the PV files."""
import os
import signal
import threading
import time

import nbd
import pytest

from test_shared import IO_TIMEOUT, cluster, hosts, report, shared_pvs  # noqa: F401

D = 5 * IO_TIMEOUT   # dead-host time
R = IO_TIMEOUT / 2   # renew interval


def active_hosts(d, lv):
    rows = report(d, "lvs", "-o", "lv_name,active_hosts,lv_active", "vgs")["lv"]
    return {r["lv_name"]: (r["active_hosts"], r["lv_active"]) for r in rows}[lv]


def export_size(d, lv):
    """Size of vgs/LV served by d's NBD socket (a new connection), or None."""
    h = nbd.NBD()
    try:
        h.set_export_name(f"vgs/{lv}")
        h.connect_unix(d.nbd_socket)
        return h.get_size()
    except nbd.Error:
        return None
    finally:
        del h


def deactivate(d, *lvs):
    """lvchange -an, waiting (up to 5 s) for dlvmd to notice that the test's
    own short NBD connections have closed."""
    t0 = time.monotonic()
    while True:
        rc, out, err = d.cli("lvchange", "-an", *lvs)
        if rc == 0 or "in use by" not in err or time.monotonic() - t0 > 5:
            assert rc == 0, err
            return
        time.sleep(0.05)


def wait_for(pred, timeout, step=0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def test_exclusive_and_shared(cluster):
    h1, h2, h3 = cluster(3)
    h1.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vgs")
    assert active_hosts(h2, "a") == ("1", "")
    assert export_size(h1, "a") == 8 << 20
    assert export_size(h2, "a") is None
    for d, mode in ((h2, "-aey"), (h2, "-asy"), (h3, "-ay")):
        rc, _, err = d.cli("lvchange", mode, "vgs/a")
        assert rc != 0 and "vgs/a: active exclusively on host id 1 '" in err, err
    # a conflicting request can wait for the holder to let go
    t0 = time.monotonic()
    rc, _, err = h2.cli("lvchange", "-aey", "--lock-wait", "0.5", "vgs/a")
    assert rc != 0 and "active exclusively on host id 1" in err
    assert time.monotonic() - t0 >= 0.5
    result = []
    waiter = threading.Thread(target=lambda: result.append(
        h2.cli("lvchange", "-asy", "--lock-wait", "20", "vgs/a")))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()
    deactivate(h1, "vgs/a")
    waiter.join(timeout=30)
    assert result and result[0][0] == 0, result
    h3.cli_ok("lvchange", "-asy", "vgs/a")
    assert active_hosts(h1, "a") == ("2(sh),3(sh)", "")
    assert active_hosts(h2, "a") == ("2(sh),3(sh)", "active")
    assert export_size(h2, "a") == 8 << 20 and export_size(h3, "a") == 8 << 20
    rc, _, err = h1.cli("lvchange", "-aey", "vgs/a")
    assert rc != 0 and "vgs/a: active shared on host id 2 '" in err, err
    # remove, rename and reduce need it inactive elsewhere; extend does not
    for args in (["lvremove", "-f", "vgs/a"], ["lvrename", "vgs/a", "b"],
                 ["lvreduce", "-f", "-L", "4m", "vgs/a"], ["vgrename", "vgs", "vgt"]):
        rc, _, err = h1.cli(*args)
        assert rc != 0 and "active on host id 2 '" in err and "deactivate it there" in err, err
    h1.cli_ok("lvextend", "-L", "+4m", "vgs/a")
    # every host where it is active serves the new size within a renew interval
    assert wait_for(lambda: export_size(h2, "a") == 12 << 20, 2 * R + 1) is not None
    assert wait_for(lambda: export_size(h3, "a") == 12 << 20, 2 * R + 1) is not None
    # shared to exclusive works when no other host holds it
    deactivate(h3, "vgs/a")
    h2.cli_ok("lvchange", "-aey", "vgs/a")
    assert active_hosts(h3, "a") == ("2", "")
    # vgchange: only what nobody else holds is locked here
    h3.cli_ok("lvcreate", "-n", "b", "-L", "4m", "-an", "vgs")
    out, err = h3.cli_ok("vgchange", "-ay", "vgs")
    assert "vgs/a: active exclusively on host id 2" in err, err
    assert active_hosts(h1, "b") == ("3", "")
    h3.cli_ok("vgchange", "-an", "vgs")
    assert active_hosts(h1, "b") == ("", "")
    # bad values change nothing
    rc, _, err = h1.cli("lvchange", "-axy", "vgs/b")
    assert rc != 0 and "-a takes y, ey, sy or n" in err
    rc, _, err = h1.cli("lvchange", "-ay", "--lock-wait", "soon", "vgs/b")
    assert rc != 0 and "--lock-wait takes seconds" in err
    assert active_hosts(h1, "b") == ("", "")
    for d in (h1, h2, h3):
        d.cli_ok("check", "vgs")


def test_remove_tears_down_stale_exports(cluster):
    h1, h2 = cluster(2)
    h2.cli_ok("lvcreate", "-n", "c", "-L", "4m", "vgs")
    rc, _, err = h1.cli("lvremove", "-f", "vgs/c")
    assert rc != 0 and "cannot remove: active on host id 2" in err
    # h2 stops (a VM freeze): after the dead-host time its lock is stale
    os.kill(h2.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        took = None
        while time.monotonic() - t0 < 12:
            rc, _, err = h1.cli("lvremove", "-f", "vgs/c")
            if rc == 0:
                took = time.monotonic() - t0
                break
            assert "active on host id 2" in err, err
            time.sleep(0.25)
        assert took is not None and took >= D - R - 0.2, took
    finally:
        os.kill(h2.proc.pid, signal.SIGCONT)
    # h2 resumes, sees the removal and tears its export down
    assert wait_for(lambda: export_size(h2, "c") is None, 3 + R) is not None
    assert "vgs/c: removed on another host: export removed" in h2.read_log()


def test_takeover_after_kill(cluster):
    h1, h2 = cluster(2)
    h2.cli_ok("lvcreate", "-n", "d", "-L", "4m", "vgs")
    time.sleep(1)  # a few renewals: the kill is what stops h2
    t0 = time.monotonic()
    h2.kill()
    took = None
    while time.monotonic() - t0 < 15:
        rc, _, err = h1.cli("lvchange", "-aey", "vgs/d")
        if rc == 0:
            took = time.monotonic() - t0
            break
        assert "active exclusively on host id 2" in err, err
        time.sleep(0.1)
    # never before the dead-host time (less the renew interval: h1 dates
    # the last change from when it read it), within the 8 s target
    assert took is not None and D - R - 0.2 <= took <= 8, took
    assert active_hosts(h1, "d") == ("1", "active")
    assert export_size(h1, "d") == 4 << 20


def test_paused_host_writes_nothing(cluster):
    h1, h2 = cluster(2)
    h2.cli_ok("lvcreate", "-n", "e", "-L", "4m", "vgs")
    c2 = nbd.NBD()
    c2.set_export_name("vgs/e")
    c2.connect_unix(h2.nbd_socket)
    c2.pwrite(b"2" * 4096, 0)
    c2.flush()
    os.kill(h2.proc.pid, signal.SIGSTOP)
    try:
        assert wait_for(lambda: h1.cli("lvchange", "-aey", "vgs/e")[0] == 0, 12,
                        step=0.25) is not None
        c1 = nbd.NBD()
        c1.set_export_name("vgs/e")
        c1.connect_unix(h1.nbd_socket)
        c1.pwrite(b"1" * 4096, 0)
        c1.flush()
    finally:
        os.kill(h2.proc.pid, signal.SIGCONT)
    # the paused host's client tries to write as soon as it resumes: the
    # lease deadline has passed, so nothing reaches the disk
    for _ in range(20):
        with pytest.raises(nbd.Error):
            c2.pwrite(b"X" * 4096, 0)
        time.sleep(0.05)
    c1b = nbd.NBD()
    c1b.set_export_name("vgs/e")
    c1b.connect_unix(h1.nbd_socket)
    assert c1b.pread(4096, 0) == b"1" * 4096
    for c in (c1, c1b):
        c.shutdown()
    del c2
    assert "fenced" in h2.read_log()


def test_restart_readopts(cluster):
    h1, h2 = cluster(2)
    h2.cli_ok("lvcreate", "-n", "f", "-L", "4m", "vgs")
    h2.cli_ok("lvcreate", "-n", "g", "-L", "4m", "-an", "vgs")
    h2.kill()
    h2.start()
    assert active_hosts(h2, "f") == ("2", "active")
    assert active_hosts(h2, "g") == ("", "")
    assert export_size(h2, "f") == 4 << 20
    assert "re-adopted 1 activation" in h2.read_log()
    rc, _, err = h1.cli("lvchange", "-aey", "vgs/f")
    assert rc != 0 and "active exclusively on host id 2" in err
    # a clean stop keeps the records; the restarted host takes them back
    h2.stop()
    h2.start()
    assert active_hosts(h1, "f") == ("2", "")
    assert export_size(h2, "f") == 4 << 20
