# SPDX-License-Identifier: MIT
"""Where dlvmd runs an NBD connection (--nbd-cpus): by default on the CPUs
that take the completion interrupts of the export's devices, found here from
sysfs on its own; with --nbd-cpus any, wherever the kernel likes."""

import os
import subprocess
import time
from pathlib import Path

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, stop_clean
from test_blockdev import loopdev  # noqa: F401


def cpulist(text):
    """A kernel CPU list ("0-3,8") as a set."""
    cpus = set()
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        cpus.update(range(int(a), int(b or a) + 1))
    return cpus


def irq_count(irq):
    path = Path(f"/sys/kernel/irq/{irq}/per_cpu_count")
    return sum(int(n) for n in path.read_text().split(",")) if path.exists() else 0


def disk_irq_cpus(path):
    """CPUs the I/O interrupts of the disk holding path arrive at, or None:
    the disk's MSI interrupts that fired at least an eighth as often as its
    busiest one, and their effective affinity."""
    st = os.stat(path)
    blk = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not blk.exists():
        return None
    blk = blk.resolve()
    if (blk / "partition").exists():
        blk = blk.parent
    dev = (blk / "device").resolve()
    while not (dev / "msi_irqs").is_dir():
        if dev == Path("/sys/devices") or dev == dev.parent:
            return None
        dev = dev.parent
    counts = {irq: irq_count(irq) for irq in os.listdir(dev / "msi_irqs")}
    top = max(counts.values(), default=0)
    cpus = set()
    for irq, n in counts.items():
        if top and n * 8 >= top:
            cpus |= cpulist(Path(f"/proc/irq/{irq}/effective_affinity_list").read_text())
    return cpus or None


def thread_cpus(pid):
    """{tid: allowed CPUs} of every thread of pid (not io_uring's workers,
    which the kernel starts for I/O that cannot be done without blocking)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        if Path(f"/proc/{pid}/task/{tid}/comm").read_text().startswith("iou-"):
            continue
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[tid] = cpulist(line.split(":", 1)[1])
    return out


def connection_cpus(d, export):
    """Connect to export; the allowed CPUs of the thread that serves it."""
    before = thread_cpus(d.proc.pid)
    h = nbd.NBD()
    h.connect_uri(d.nbd_uri(export))
    try:
        h.pwrite(b"x" * 4096, 0)
        assert h.pread(4096, 0) == b"x" * 4096
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = {t: c for t, c in thread_cpus(d.proc.pid).items() if t not in before}
            if new:
                assert len(new) == 1, new
                return next(iter(new.values()))
            time.sleep(0.02)
        pytest.fail("no thread of dlvmd serves the connection")
    finally:
        h.shutdown()


def vg_on(tmp_path, where, extra=()):
    """dlvmd serving vg0 (an LV "a") on a PV file made in directory where."""
    state = tmp_path / "state"
    state.mkdir()
    pv = Path(where) / "pv0.img"
    dlvm_ok("pvcreate", "--size", "256m", pv, socket=tmp_path / "none.sock",
            state_dir=state)
    dlvm_ok("vgcreate", "vg0", pv, socket=tmp_path / "none.sock", state_dir=state)
    d = Dlvmd(state, devices=[pv], extra=list(extra))
    d.start()
    d.cli_ok("lvcreate", "-n", "a", "-L", "16m", "vg0")
    return d, pv


def test_connection_runs_where_the_disk_completes(tmp_path):
    d, pv = vg_on(tmp_path, tmp_path)
    try:
        allowed = os.sched_getaffinity(0)
        irq = disk_irq_cpus(pv)
        want = (irq & allowed) or allowed if irq else allowed
        got = connection_cpus(d, "vg0/a")
        assert got == want, f"irq CPUs {irq}, allowed {allowed}"
        placed = want != allowed
        assert ("where its devices' I/O completes" in d.read_log()) == placed
        # once the connection is gone, every thread left may run anywhere
        deadline = time.monotonic() + 10
        while any(c != allowed for c in thread_cpus(d.proc.pid).values()):
            assert time.monotonic() < deadline, thread_cpus(d.proc.pid)
            time.sleep(0.02)
    finally:
        stop_clean(d)


def test_nbd_cpus_any_leaves_connections_alone(tmp_path):
    d, pv = vg_on(tmp_path, tmp_path, extra=["--nbd-cpus", "any"])
    try:
        assert connection_cpus(d, "vg0/a") == os.sched_getaffinity(0)
        assert "I/O completes" not in d.read_log()
    finally:
        stop_clean(d)


def test_pv_without_a_disk_is_not_placed(tmp_path):
    """A PV file on tmpfs has no disk, so no interrupts to follow."""
    shm = Path("/dev/shm") / f"dlvm-test-{os.getpid()}-{tmp_path.name}"
    shm.mkdir()
    try:
        d, pv = vg_on(tmp_path, shm)
        try:
            assert disk_irq_cpus(pv) is None
            assert connection_cpus(d, "vg0/a") == os.sched_getaffinity(0)
        finally:
            stop_clean(d)
    finally:
        for f in shm.iterdir():
            f.unlink()
        shm.rmdir()


@pytest.mark.parametrize("how", ["flag", "config"])
def test_bad_nbd_cpus_is_refused(tmp_path, how):
    state = tmp_path / "state"
    state.mkdir()
    cmd = [str(Dlvmd(state).command()[0]), "--state-dir", str(state), "--nbd-listen", "none"]
    if how == "flag":
        cmd += ["--nbd-cpus", "some"]
    else:
        conf = tmp_path / "dlvmd.conf"
        conf.write_text("[dlvmd]\nnbd_cpus = some\n")
        cmd += ["--config", str(conf)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "--nbd-cpus: 'some' is neither 'irq' nor 'any'" in p.stderr
    assert not (state / "nbd.sock").exists()
    assert not (state / "dlvmd.sock").exists()


def test_pv_on_a_loop_device_follows_its_backing_file(tmp_path, loopdev):  # noqa: F811
    """A PV on a loop device: its I/O completes where that of the disk
    under the loop device's backing file does."""
    dev = loopdev("pvloop", 256 << 20, 512)
    backing = tmp_path / "pvloop.img"
    state = tmp_path / "state"
    state.mkdir()
    dlvm_ok("pvcreate", dev, socket=tmp_path / "none.sock", state_dir=state)
    dlvm_ok("vgcreate", "vg0", dev, socket=tmp_path / "none.sock", state_dir=state)
    d = Dlvmd(state, devices=[dev]).start()
    try:
        d.cli_ok("lvcreate", "-n", "a", "-L", "16m", "vg0")
        allowed = os.sched_getaffinity(0)
        irq = disk_irq_cpus(backing)
        assert irq, f"{backing}: no disk with MSI interrupts under it"
        want = (irq & allowed) or allowed
        assert connection_cpus(d, "vg0/a") == want, f"irq CPUs {irq}, allowed {allowed}"
    finally:
        stop_clean(d)
