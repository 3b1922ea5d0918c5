# SPDX-License-Identifier: MIT
"""PVs on block devices (loop devices) with 512- and 4096-byte sectors.

Loop devices need root, as CI has; a machine without them fails here rather
than skipping, since block devices are what dlvm is for.
"""

import os
import re
import subprocess

import pytest

from conftest import Dlvmd, dlvm, dlvm_ok, require_tool, stop_clean


@pytest.fixture
def loopdev(tmp_path):
    """Factory: a loop device over a sparse file, with a given sector size."""
    require_tool("losetup")
    made = []

    def make(name, size, sector_size):
        backing = tmp_path / f"{name}.img"
        with open(backing, "wb") as f:
            f.truncate(size)
        p = subprocess.run(["losetup", "--find", "--show", "--sector-size",
                            str(sector_size), "--direct-io=on", str(backing)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            pytest.fail(f"losetup failed: {p.stderr}")
        dev = p.stdout.strip()
        made.append(dev)
        return dev

    yield make
    for dev in made:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_vg_on_loop_devices(tmp_path, loopdev, sector_size):
    require_tool("qemu-io")
    require_tool("nbdinfo")
    a = loopdev("a", 512 << 20, sector_size)
    b = loopdev("b", 512 << 20, sector_size)
    state = tmp_path / "state"

    dlvm_ok("pvcreate", a, b, state_dir=state)
    out, _ = dlvm_ok("dump", a)
    assert f"sector_size        {sector_size}" in out
    assert "block device" in out
    # a smaller sector size than the device's is refused
    if sector_size == 4096:
        rc, _, err = dlvm("pvcreate", "-f", "--sectorsize", "512", a, state_dir=state)
        assert rc == 5 and "smaller than the device's 4096" in err, err
    dlvm_ok("vgcreate", "vg0", a, b, state_dir=state)

    d = Dlvmd(state).start()
    try:
        d.cli_ok("lvcreate", "-n", "lin", "-L", "64m", "vg0")
        d.cli_ok("lvcreate", "-n", "str", "-L", "64m", "-i", "2", "-I", "64k", "vg0")
        for lv in ("lin", "str"):
            uri = d.nbd_uri(f"vg0/{lv}")
            p = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True)
            assert p.returncode == 0 and int(p.stdout) == 64 << 20, p.stderr
            # aligned and unaligned writes, read back through a new connection
            w = subprocess.run(["qemu-io", "-f", "raw", uri,
                                "-c", "write -P 0x5a 0 1m",
                                "-c", "write -P 0xa5 4097 3000",
                                "-c", "flush"], capture_output=True, text=True)
            assert w.returncode == 0 and "error" not in w.stdout.lower(), w.stdout + w.stderr
            r = subprocess.run(["qemu-io", "-f", "raw", uri,
                                "-c", "read -P 0x5a 0 4097",
                                "-c", "read -P 0xa5 4097 3000",
                                "-c", "read -P 0x5a 7097 100000"],
                               capture_output=True, text=True)
            assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, \
                r.stdout + r.stderr
        # the metadata survives a restart on block devices too
        d.restart()
        out, _ = d.cli_ok("lvs", "--reportformat", "json", "-o", "lv_name,lv_size",
                          "--units", "b")
        assert re.search(r'"lv_name": "str",\s*"lv_size": "67108864B"', out), out
    finally:
        stop_clean(d)
    out, _ = dlvm_ok("check", "vg0", "--devices", f"{a},{b}")
    assert "consistent" in out


@pytest.fixture
def fs_4k(tmp_path, loopdev):
    """An ext4 file system on a loop device of 4096-byte sectors, mounted:
    O_DIRECT on its files needs 4096-byte offsets and lengths."""
    require_tool("mkfs.ext4")
    dev = loopdev("fs", 1 << 30, 4096)
    p = subprocess.run(["mkfs.ext4", "-q", "-F", dev], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(["mount", dev, str(mnt)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_file_pvs_on_a_4k_sector_file_system(tmp_path, fs_4k):
    """File PVs took 512-byte O_DIRECT alignment for granted: on a file
    system over 4096-byte sectors their smaller I/O failed (EINVAL)."""
    require_tool("qemu-io")
    a, b = fs_4k / "a.img", fs_4k / "b.img"
    state = tmp_path / "state"
    dlvm_ok("pvcreate", "--size", "256m", a, state_dir=state)
    dlvm_ok("pvcreate", "--size", "256m", b, state_dir=state)
    out, _ = dlvm_ok("dump", a)
    assert "sector_size        4096" in out, out
    dlvm_ok("vgcreate", "--shared", "--max-hosts", "4", "vg0", a, b, state_dir=state)
    d = Dlvmd(state, extra=["--host-id", "1", "--io-timeout", "1"])
    d.pv_dir = fs_4k
    d.start()
    try:
        d.cli_ok("lvcreate", "-n", "lin", "-L", "64m", "vg0")
        d.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "pool", "vg0")
        d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool", "-n", "thin")
        for lv in ("lin", "thin"):
            uri = d.nbd_uri(f"vg0/{lv}")
            w = subprocess.run(["qemu-io", "-f", "raw", uri,
                                "-c", "write -P 0x5a 0 1m",
                                "-c", "write -P 0xa5 512 512",
                                "-c", "write -P 0x33 4097 3000",
                                "-c", "flush"], capture_output=True, text=True)
            assert w.returncode == 0 and "error" not in w.stdout.lower(), w.stdout + w.stderr
            r = subprocess.run(["qemu-io", "-f", "raw", uri,
                                "-c", "read -P 0x5a 0 512",
                                "-c", "read -P 0xa5 512 512",
                                "-c", "read -P 0x5a 1024 3073",
                                "-c", "read -P 0x33 4097 3000",
                                "-c", "read -P 0x5a 7097 100000"],
                               capture_output=True, text=True)
            assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, \
                r.stdout + r.stderr
        d.restart()
        d.cli_ok("check", "vg0")
    finally:
        stop_clean(d)
    out, _ = dlvm_ok("check", "vg0", "--devices", f"{a},{b}")
    assert "consistent" in out
