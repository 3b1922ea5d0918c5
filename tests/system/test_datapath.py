# SPDX-License-Identifier: MIT
"""The data path of dlvmd, with real NBD clients against real LVs: nbdinfo,
nbdcopy, qemu-img, qemu-io, fio and python3-libnbd on linear and striped
LVs, across restarts, extension, read-only, deactivation and removal."""

import errno
import json
import subprocess

import pytest

from conftest import require_tool

MiB = 1 << 20


# ------------------------------------------------------------------ helpers

def run(*cmd, timeout=300, cwd=None):
    """Run a client tool; fail the test unless it exits 0. Returns stdout."""
    require_tool(str(cmd[0]))
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    assert p.returncode == 0, (f"{' '.join(map(str, cmd))}: rc={p.returncode}\n"
                               f"{p.stdout}\n{p.stderr}")
    return p.stdout


def run_rc(*cmd, timeout=300):
    require_tool(str(cmd[0]))
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def qemu_io(uri, *cmds, read_only=False):
    """qemu-io commands on uri; fails on a non-zero exit or a failed command
    (a pattern mismatch prints "Pattern verification failed")."""
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else [])
    for c in cmds:
        args += ["-c", c]
    out = run(*args, uri)
    assert "failed" not in out.lower(), out
    return out


def lvs(d):
    out, _ = d.cli_ok("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                      "-o", "lv_name,lv_size,lv_attr", "vg0")
    return {r["lv_name"]: r for r in json.loads(out)["report"][0]["lv"]}


def nbd_size(d, name):
    return int(run("nbdinfo", "--size", d.nbd_uri(name)))


def nbd_exports(d):
    out = run("nbdinfo", "--list", "--json", f"nbd+unix://?socket={d.nbd_socket}")
    return {e["export-name"]: e for e in json.loads(out)["exports"]}


def nbd_connect(d, name):
    import nbd
    h = nbd.NBD()
    h.connect_uri(d.nbd_uri(name))
    return h


def nbd_close(h):
    try:
        h.shutdown()
    except Exception:
        pass


def random_file(path, size, seed):
    import random
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


@pytest.fixture
def lvs3(vg0):
    """vg0 with a linear LV "lin" (40 MiB), a striped LV "str" (2 stripes of
    64 KiB over both PVs, 64 MiB) and a small LV "odd" (12 MiB)."""
    d = vg0
    d.cli_ok("lvcreate", "-n", "lin", "-L", "40m", "vg0")
    d.cli_ok("lvcreate", "-n", "str", "-L", "64m", "-i", "2", "-I", "64k", "vg0")
    d.cli_ok("lvcreate", "-n", "odd", "-L", "12m", "vg0")
    return d


# ------------------------------------------------------------ nbdinfo

def test_nbdinfo_size_and_list(lvs3):
    d = lvs3
    report = lvs(d)
    assert set(report) == {"lin", "str", "odd"}
    for name, row in report.items():
        assert nbd_size(d, f"vg0/{name}") == int(row["lv_size"])
    assert nbd_size(d, "vg0/lin") == 40 * MiB
    assert nbd_size(d, "vg0/str") == 64 * MiB
    exports = nbd_exports(d)
    assert set(exports) == {"vg0/lin", "vg0/str", "vg0/odd"}
    for name, e in exports.items():
        assert e["export-size"] == int(report[name.split("/")[1]]["lv_size"])
        assert e["is_read_only"] is False

    # Only active LVs are listed.
    d.cli_ok("lvchange", "-an", "vg0/odd")
    assert set(nbd_exports(d)) == {"vg0/lin", "vg0/str"}
    rc, _ = run_rc("nbdinfo", "--size", d.nbd_uri("vg0/odd"))
    assert rc != 0, "an inactive LV is still served"
    d.cli_ok("lvchange", "-ay", "vg0/odd")
    assert set(nbd_exports(d)) == {"vg0/lin", "vg0/str", "vg0/odd"}
    d.cli_ok("lvcreate", "-n", "late", "-L", "4m", "vg0")
    assert set(nbd_exports(d)) == {"vg0/lin", "vg0/str", "vg0/odd", "vg0/late"}
    assert nbd_size(d, "vg0/late") == 4 * MiB


# ------------------------------------------------------- copy round trips

@pytest.mark.parametrize("lv,size", [("lin", 40 * MiB), ("str", 64 * MiB)])
def test_nbdcopy_round_trip(lvs3, tmp_path, lv, size):
    d = lvs3
    uri = d.nbd_uri(f"vg0/{lv}")
    src = random_file(tmp_path / "src.img", size, lv)
    run("nbdcopy", src, uri)
    back = tmp_path / "back.img"
    run("nbdcopy", uri, back)
    assert back.stat().st_size == size
    assert same_bytes(src, back), f"{lv}: nbdcopy read back other bytes"
    run("qemu-img", "compare", "-s", "-f", "raw", "-F", "raw", src, uri)


@pytest.mark.parametrize("lv,size", [("lin", 40 * MiB), ("str", 64 * MiB)])
def test_qemu_img_convert_round_trip(lvs3, tmp_path, lv, size):
    d = lvs3
    uri = d.nbd_uri(f"vg0/{lv}")
    # Data, a hole of zeros (qemu-img writes zeroes or trims for it) and data.
    import random
    r = random.Random(f"convert-{lv}")
    third = size // 3
    src = tmp_path / "src.img"
    src.write_bytes(r.randbytes(third) + bytes(third) + r.randbytes(size - 2 * third))
    # Junk first, so the zero range has to be written.
    run("nbdcopy", random_file(tmp_path / "junk.img", size, "junk"), uri)
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, uri)
    run("qemu-img", "compare", "-s", "-f", "raw", "-F", "raw", src, uri)
    # And back out, to qcow2 and raw.
    q = tmp_path / "back.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", uri, q)
    run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, q)
    raw = tmp_path / "back.raw"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, raw)
    assert same_bytes(src, raw)


# ------------------------------------------------------------ qemu-io

def test_qemu_io_odd_offsets(lvs3):
    d = lvs3
    for lv in ("lin", "str"):
        uri = d.nbd_uri(f"vg0/{lv}")
        # A known background, so "neighbours unchanged" means something.
        qemu_io(uri, "write -P 0xee 0 12m")
        qemu_io(uri,
                "write -P 0x5a 1 1000", "read -P 0x5a 1 1000",
                "read -P 0xee 0 1", "read -P 0xee 1001 4095",
                # across a 64 KiB stripe boundary
                "write -P 0x33 65535 3", "read -P 0x33 65535 3",
                "read -P 0xee 65534 1", "read -P 0xee 65538 1",
                # across a 4 MiB extent boundary, odd length
                "write -P 0x44 4194000 70001", "read -P 0x44 4194000 70001",
                "read -P 0xee 4193999 1", "read -P 0xee 4264001 1",
                # one byte, then zeroes at an odd place
                "write -P 0x01 8388607 1", "read -P 0x01 8388607 1",
                "read -P 0xee 8388606 1", "read -P 0xee 8388608 1",
                "write -z 9000001 4099", "read -P 0 9000001 4099",
                "read -P 0xee 9000000 1", "read -P 0xee 9004100 1")
        # A new connection sees the same bytes.
        qemu_io(uri, "read -P 0x5a 1 1000", "read -P 0x33 65535 3",
                "read -P 0x44 4194000 70001", "read -P 0 9000001 4099",
                "read -P 0xee 1001 4095", read_only=True)
        # The last byte of the LV, and one past the end is refused.
        end = 64 * MiB if lv == "str" else 40 * MiB
        qemu_io(uri, f"write -P 0x77 {end - 1} 1", f"read -P 0x77 {end - 1} 1")
        rc, out = run_rc("qemu-io", "-f", "raw", "-c", f"write -P 0x77 {end - 1} 2", uri)
        assert rc != 0 or "error" in out.lower() or "failed" in out.lower(), out


# ---------------------------------------------------------------- fio

def test_fio_verify_striped(vg0, tmp_path):
    d = vg0
    d.cli_ok("lvcreate", "-n", "fio", "-L", "64m", "-i", "2", "-I", "64k", "vg0")
    out = lvs(d)["fio"]
    assert int(out["lv_size"]) == 64 * MiB
    log = tmp_path / "fio.out"
    out = run("fio", "--name=dlvm", "--ioengine=nbd", f"--uri={d.nbd_uri('vg0/fio')}",
              "--rw=randrw", "--bs=4k", "--iodepth=16", "--size=48M",
              "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=4242",
              f"--output={log}", timeout=600, cwd=tmp_path)
    text = log.read_text() + out
    assert " err= 0" in text, text
    assert "verify failed" not in text and "bad magic" not in text, text

    # The same blocks verify again after a daemon restart.
    d.restart()
    log2 = tmp_path / "fio2.out"
    out = run("fio", "--name=dlvm", "--ioengine=nbd", f"--uri={d.nbd_uri('vg0/fio')}",
              "--rw=randrw", "--bs=4k", "--iodepth=16", "--size=48M",
              "--verify=crc32c", "--verify_only", "--verify_fatal=1", "--randseed=4242",
              f"--output={log2}", timeout=600, cwd=tmp_path)
    text = log2.read_text() + out
    assert " err= 0" in text, text
    assert "verify failed" not in text and "bad magic" not in text, text
    # It did read something back.
    assert "READ: bw=" in text, text


# ------------------------------------------------------------ restart

def test_data_survives_restart(lvs3, tmp_path):
    d = lvs3
    srcs = {}
    for lv, size in (("lin", 40 * MiB), ("str", 64 * MiB)):
        srcs[lv] = random_file(tmp_path / f"{lv}.img", size, f"restart-{lv}")
        run("nbdcopy", srcs[lv], d.nbd_uri(f"vg0/{lv}"))
    qemu_io(d.nbd_uri("vg0/odd"), "write -P 0xab 7 12345", "write -P 0xcd 11m 1m")
    d.restart()  # SIGTERM, exit 0, start
    assert set(nbd_exports(d)) == {"vg0/lin", "vg0/str", "vg0/odd"}
    for lv, src in srcs.items():
        back = tmp_path / f"{lv}.back"
        run("nbdcopy", d.nbd_uri(f"vg0/{lv}"), back)
        assert same_bytes(src, back), f"vg0/{lv}: data changed across a restart"
    qemu_io(d.nbd_uri("vg0/odd"), "read -P 0xab 7 12345", "read -P 0xcd 11m 1m",
            "read -P 0 0 7", read_only=True)


# ------------------------------------------------------------- extend

def test_lvextend_shows_to_new_connections(lvs3):
    import nbd
    d = lvs3
    old = nbd_connect(d, "vg0/odd")
    try:
        assert old.get_size() == 12 * MiB
        old.pwrite(b"\x5a" * 4096, 12 * MiB - 4096)
        d.cli_ok("lvextend", "-L", "+8m", "vg0/odd")
        assert int(lvs(d)["odd"]["lv_size"]) == 20 * MiB
        assert nbd_size(d, "vg0/odd") == 20 * MiB
        assert nbd_exports(d)["vg0/odd"]["export-size"] == 20 * MiB
        new = nbd_connect(d, "vg0/odd")
        try:
            assert new.get_size() == 20 * MiB
            new.pwrite(b"\xa5" * 8192, 20 * MiB - 8192)
            assert new.pread(8192, 20 * MiB - 8192) == b"\xa5" * 8192
            assert new.pread(4096, 12 * MiB - 4096) == b"\x5a" * 4096
        finally:
            nbd_close(new)
        # The old connection still works within what it was told.
        assert old.pread(4096, 12 * MiB - 4096) == b"\x5a" * 4096
    finally:
        nbd_close(old)

    # A striped LV grows by whole stripes and shows it too.
    d.cli_ok("lvextend", "-L", "+8m", "vg0/str")
    assert nbd_size(d, "vg0/str") == 72 * MiB
    qemu_io(d.nbd_uri("vg0/str"), "write -P 0x66 71m 1m", "read -P 0x66 71m 1m")
    with pytest.raises(nbd.Error):
        h = nbd_connect(d, "vg0/str")
        try:
            h.set_strict_mode(0)
            h.pread(4096, 72 * MiB)
        finally:
            nbd_close(h)


# ---------------------------------------------------------- read-only

def test_read_only_lv_refuses_writes(lvs3):
    import nbd
    d = lvs3
    uri = d.nbd_uri("vg0/odd")
    qemu_io(uri, "write -P 0x42 0 64k")
    d.cli_ok("lvchange", "-p", "r", "vg0/odd")
    assert lvs(d)["odd"]["lv_attr"][1] == "r"
    assert nbd_exports(d)["vg0/odd"]["is_read_only"] is True

    rc, out = run_rc("qemu-io", "-f", "raw", "-c", "write -P 0x99 0 4k", uri)
    assert rc != 0, f"qemu-io wrote to a read-only LV:\n{out}"
    # Past libnbd's own checks: the server must refuse with EPERM.
    h = nbd_connect(d, "vg0/odd")
    try:
        assert h.is_read_only()
        h.set_strict_mode(0)
        with pytest.raises(nbd.Error) as e:
            h.pwrite(b"\x99" * 4096, 0)
        assert e.value.errnum == errno.EPERM, e.value
        assert h.pread(65536, 0) == b"\x42" * 65536
        # A large refused write: its error comes once its payload is in,
        # which libnbd, still sending it, needs; the connection goes on.
        for n in (300000, 4 * MiB):
            with pytest.raises(nbd.Error) as e:
                h.pwrite(b"\x99" * n, 0)
            assert e.value.errnum == errno.EPERM, e.value
            assert h.pread(65536, 0) == b"\x42" * 65536
    finally:
        nbd_close(h)
    qemu_io(uri, "read -P 0x42 0 64k", read_only=True)
    # and past the end of a writable LV
    h = nbd_connect(d, "vg0/lin")
    try:
        h.set_strict_mode(0)
        with pytest.raises(nbd.Error) as e:
            h.pwrite(b"\x99" * (4 * MiB), 40 * MiB - 4096)
        assert e.value.errnum == errno.ENOSPC, e.value
        assert len(h.pread(4096, 0)) == 4096
    finally:
        nbd_close(h)

    # Writable again.
    d.cli_ok("lvchange", "-p", "rw", "vg0/odd")
    qemu_io(uri, "write -P 0x99 0 4k", "read -P 0x99 0 4k", "read -P 0x42 4k 60k")


# ---------------------------------------------------------- deactivate

def test_lvchange_an_refuses_with_client(lvs3):
    import nbd
    d = lvs3
    h = nbd_connect(d, "vg0/odd")
    try:
        h.pwrite(b"\x17" * 4096, 8192)
        rc, out, err = d.cli("lvchange", "-an", "vg0/odd")
        assert rc != 0, f"lvchange -an with a client connected succeeded:\n{out}\n{err}"
        assert "client" in (out + err).lower(), out + err
        assert "vg0/odd" in nbd_exports(d)
        assert lvs(d)["odd"]["lv_attr"][4] == "a"
        # The connection was not disturbed.
        assert h.pread(4096, 8192) == b"\x17" * 4096
        h.pwrite(b"\x18" * 4096, 12288)

        d.cli_ok("lvchange", "-an", "-f", "vg0/odd")
        assert "vg0/odd" not in nbd_exports(d)
        assert lvs(d)["odd"]["lv_attr"][4] != "a"
        with pytest.raises(nbd.Error):
            h.pread(4096, 8192)
    finally:
        nbd_close(h)
    rc, _ = run_rc("nbdinfo", "--size", d.nbd_uri("vg0/odd"))
    assert rc != 0

    d.cli_ok("lvchange", "-ay", "vg0/odd")
    qemu_io(d.nbd_uri("vg0/odd"), "read -P 0x17 8192 4096", "read -P 0x18 12288 4096",
            read_only=True)


# -------------------------------------------------------------- remove

def test_lvremove_removes_export(lvs3):
    d = lvs3
    assert nbd_size(d, "vg0/lin") == 40 * MiB
    d.cli_ok("lvremove", "-f", "vg0/lin")
    assert "lin" not in lvs(d)
    rc, out = run_rc("nbdinfo", d.nbd_uri("vg0/lin"))
    assert rc != 0, f"nbdinfo still reaches a removed LV:\n{out}"
    assert set(nbd_exports(d)) == {"vg0/str", "vg0/odd"}
    # A new LV of the same name is a new, empty export (first 4 KiB zeroed).
    d.cli_ok("lvcreate", "-n", "lin", "-L", "8m", "vg0")
    assert nbd_size(d, "vg0/lin") == 8 * MiB
    qemu_io(d.nbd_uri("vg0/lin"), "read -P 0 0 4k", read_only=True)
