"""Metadata feature flags through the CLI: a PV header or metadata header
slot written by a newer dlvm (unknown read-only-compatible features) makes
its VG read-only and is never rewritten, except by pvcreate -f; nor are the
thin pool stores of such a VG."""

import errno
import json
import os
import struct

import nbd

from conftest import Dlvmd, dlvm, dlvm_ok, stop_clean

PV_HEADER = 4096
MDA_SLOT0 = 8192


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def set_ro_compat(path, off, bits):
    """Set ro_compat bits (u64 at +24) of the 512-byte structure at off and
    store its CRC32C again (bytes 0-507, at +508)."""
    with open(path, "r+b") as f:
        f.seek(off)
        blk = bytearray(f.read(512))
        (old,) = struct.unpack_from("<Q", blk, 24)
        struct.pack_into("<Q", blk, 24, old | bits)
        struct.pack_into("<I", blk, 508, crc32c(bytes(blk[:508])))
        f.seek(off)
        f.write(blk)


def offline(tmp_path, state_dir):
    sock = tmp_path / "no-daemon.sock"
    return (lambda *a: dlvm(*a, socket=sock, state_dir=state_dir),
            lambda *a: dlvm_ok(*a, socket=sock, state_dir=state_dir))


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_pv_of_a_newer_dlvm_makes_the_vg_read_only(tmp_path, state_dir, pv):
    run, ok = offline(tmp_path, state_dir)
    a = pv("pv0.img", size="256M", state_dir=state_dir)
    b = pv("pv1.img", size="256M", state_dir=state_dir)
    ok("vgcreate", "vg0", a, b)
    ok("lvcreate", "-n", "l1", "-L", "8m", "vg0")
    set_ro_compat(b, PV_HEADER, 0x4)
    before = [a.read_bytes(), b.read_bytes()]
    why = ("pv1.img: PV header at offset 4096: unknown read-only-compatible "
           "features 0x4 (written by a newer dlvm): the VG is read-only")

    # reads and reports work, with a warning; the VG shows as read-only
    out, err = ok("vgs", "--noheadings", "-o", "vg_attr", "vg0")
    assert out.strip().startswith("r"), out
    assert err.count(why) == 1, err
    out, _ = ok("lvs", "--noheadings", "-o", "lv_name", "vg0")
    assert out.split() == ["l1"]
    ok("check", "vg0", "--repair")

    # every change is refused with the reason, said once (the error, not
    # also a warning), and nothing is written
    for cmd in (("lvcreate", "-n", "l2", "-L", "8m", "vg0"),
                ("lvremove", "-y", "vg0/l1"),
                ("vgrename", "vg0", "vg1"),
                ("vgreduce", "vg0", b),
                ("vgremove", "-f", "-y", "vg0")):
        rc, _, err = run(*cmd)
        assert rc != 0, cmd
        assert err.count(why) == 1 and "WARNING" not in err, (cmd, err)
    assert [a.read_bytes(), b.read_bytes()] == before

    # dlvmd gives the warnings of its start with its first answer: a
    # refusal says the reason once there too
    d = Dlvmd(state_dir, devices=[a, b])
    d.start()
    try:
        rc, _, err = d.cli("lvcreate", "-n", "l2", "-L", "8m", "vg0")
        assert rc != 0 and err.count(why) == 1 and "WARNING" not in err, err
        _, err = d.cli_ok("vgs", "vg0")
        assert why not in err, err  # said once already
    finally:
        stop_clean(d)
    assert [a.read_bytes(), b.read_bytes()] == before


def test_orphan_pv_of_a_newer_dlvm_is_not_rewritten(tmp_path, state_dir, pv):
    run, ok = offline(tmp_path, state_dir)
    a = pv("pv0.img", size="256M", state_dir=state_dir)
    c = pv("pv2.img", size="256M", state_dir=state_dir)
    ok("vgcreate", "vg0", a)
    set_ro_compat(c, MDA_SLOT0, 0x8)
    before = c.read_bytes()
    why = ("pv2.img: metadata header slot 0 at offset 8192: unknown "
           "read-only-compatible features 0x8 (written by a newer dlvm)")

    for cmd in (("vgcreate", "vg1", c), ("vgextend", "vg0", c)):
        rc, _, err = run(*cmd)
        assert rc != 0, cmd
        assert why + ": it cannot join a VG (pvcreate -f reinitialises it)" in err, err
    rc, _, err = run("pvremove", "-y", c)
    assert rc != 0 and why + ": use -f to wipe it" in err, err
    assert c.read_bytes() == before
    out, _ = ok("vgs", "--noheadings", "-o", "pv_count", "vg0")
    assert out.strip() == "1"

    # an explicit reinitialisation is allowed
    ok("pvcreate", "-f", "-y", c)
    ok("vgextend", "vg0", c)


def test_vgextend_leaves_the_pv_of_an_unloadable_vg_alone(tmp_path, state_dir, pv):
    run, ok = offline(tmp_path, state_dir)
    a = pv("pv0.img", size="256M", state_dir=state_dir)
    c = pv("pv2.img", size="256M", state_dir=state_dir)
    ok("vgcreate", "vg0", a)
    ok("vgcreate", "vg1", c)
    # damage vg1's only checkpoint (region 0 of the metadata area at 8192):
    # vg1 no longer loads, and its PV is no orphan
    with open(c, "r+b") as f:
        f.seek(MDA_SLOT0 + 8192 + 64 + 5)
        b = f.read(1)
        f.seek(MDA_SLOT0 + 8192 + 64 + 5)
        f.write(bytes([b[0] ^ 1]))
    before = c.read_bytes()
    rc, _, err = run("vgextend", "vg0", c)
    assert rc != 0 and "pv2.img: already belongs to a volume group" in err, err
    assert c.read_bytes() == before
    out, _ = ok("vgs", "--noheadings", "-o", "pv_count", "vg0")
    assert out.strip() == "1"


def test_thin_stores_of_a_read_only_vg_are_never_written(tmp_path, state_dir, pv):
    run, ok = offline(tmp_path, state_dir)
    a = pv("pv0.img", size="256M", state_dir=state_dir)
    ok("vgcreate", "vg0", a)
    d = Dlvmd(state_dir, devices=[a])
    d.start()
    try:
        d.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "pool0", "vg0")
        d.cli_ok("lvcreate", "-V", "32m", "-T", "vg0/pool0", "-n", "t1")
        h = nbd.NBD()
        h.set_export_name("vg0/t1")
        h.connect_unix(str(d.nbd_socket))
        h.pwrite(b"\x5a" * 65536, 0)
        h.flush()
        d.cli_ok("lvcreate", "-s", "-n", "s1", "vg0/t1")
        h.pwrite(b"\x6b" * 65536, 0)
        h.pwrite(b"\x6b" * 65536, 1 << 20)
        h.flush()
        h.shutdown()
    finally:
        stop_clean(d)
    set_ro_compat(a, PV_HEADER, 0x4)
    before = a.read_bytes()
    why = ("pv0.img: PV header at offset 4096: unknown read-only-compatible "
           "features 0x4 (written by a newer dlvm): the VG is read-only")

    # every change that would write the pool's store first is refused with
    # the VG's reason, before the store is touched
    for cmd in (("lvcreate", "-V", "32m", "-T", "vg0/pool0", "-n", "t2"),
                ("lvcreate", "-s", "-n", "s2", "vg0/t1"),
                ("lvcreate", "--clone", "-n", "c2", "vg0/t1"),
                ("lvresize", "-f", "-L", "16m", "vg0/t1"),
                ("lvconvert", "--merge", "vg0/s1")):
        rc, _, err = run(*cmd)
        assert rc != 0, cmd
        assert err.count(why) == 1 and "WARNING" not in err, (cmd, err)
        assert a.read_bytes() == before, cmd

    # dlvmd exports its thin LVs read-only: reads and flushes work, writes
    # are refused, and the store is never committed
    d = Dlvmd(state_dir, devices=[a])
    d.start()
    try:
        h = nbd.NBD()
        h.set_export_name("vg0/t1")
        h.connect_unix(str(d.nbd_socket))
        assert h.is_read_only()
        assert h.pread(65536, 0) == b"\x6b" * 65536
        assert h.pread(65536, 1 << 20) == b"\x6b" * 65536
        try:
            h.pwrite(b"\x7c" * 65536, 2 << 20)
            raise AssertionError("a write to a thin LV of a read-only VG went through")
        except nbd.Error as e:
            assert e.errnum == errno.EPERM, e
        h.flush()
        h.shutdown()
        out, _ = d.cli_ok("lvs", "--noheadings", "-o", "lv_name,data_percent", "vg0/t1")
        assert out.split() == ["t1", "0.39"], out  # its 2 chunks of 64 KiB, as before
    finally:
        stop_clean(d)
    assert a.read_bytes() == before


def test_refused_vg_commands_change_nothing(tmp_path, state_dir, pv):
    """vgchange and vgremove check every VG they are given before changing
    any: a name given twice, a VG that does not exist, or LVs with NBD
    clients refuse the whole command. dlvmd stays up (it read past its VG
    list for a name given twice, and died with no VG loaded)."""
    d = Dlvmd(state_dir)
    d.start()
    try:
        rc, _, err = d.cli("vgchange", "-an", "nosuch")     # no VG loaded at all
        assert rc != 0 and "not found" in err, err
        paths = [pv(f"pv{i}.img", state_dir=state_dir) for i in range(2)]
        d.cli_ok("vgcreate", "vga", paths[0])
        d.cli_ok("vgcreate", "vgb", paths[1])
        d.cli_ok("lvcreate", "-n", "l", "-L", "8m", "vga")
        d.cli_ok("lvcreate", "-n", "l", "-L", "8m", "vgb")
        rc, _, err = d.cli("vgchange", "-an", "vga", "vga")
        assert rc != 0 and "named twice" in err, err
        h = nbd.NBD()
        h.set_export_name("vgb/l")
        h.connect_unix(str(d.nbd_socket))
        try:
            rc, _, err = d.cli("vgchange", "-an", "vga", "vgb")
            assert rc != 0 and "NBD clients" in err, err
            rc, _, err = d.cli("vgchange", "-an", "vga", "nosuch")
            assert rc != 0 and "not found" in err, err
        finally:
            h.shutdown()
        out, _ = d.cli_ok("lvs", "-o", "lv_name,vg_name,lv_active", "--reportformat", "json")
        assert all(r["lv_active"] == "active"
                   for r in json.loads(out)["report"][0]["lv"]), out
        rc, _, err = d.cli("vgremove", "-f", "vga", "nosuch")
        assert rc != 0 and "not found" in err, err
        rc, _, err = d.cli("vgremove", "-f", "vga", "vga")
        assert rc != 0 and "named twice" in err, err
        out, _ = d.cli_ok("vgs", "--reportformat", "json")
        assert sorted(r["vg_name"] for r in json.loads(out)["report"][0]["vg"]) == ["vga", "vgb"]
        d.cli_ok("vgchange", "-an", "vga", "vgb")
    finally:
        stop_clean(d)


def test_dump_of_a_fifo_is_refused_not_waited_on(tmp_path, state_dir):
    """Opening a FIFO waits for a writer: dump (through dlvmd, which holds
    its command lock meanwhile) must refuse it at once, and the next
    command must run."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    d = Dlvmd(state_dir)
    d.start()
    try:
        rc, _, err = d.cli("dump", fifo, timeout=20)
        assert rc != 0 and "not a regular file or block device" in err, err
        d.cli_ok("vgs", timeout=20)
    finally:
        stop_clean(d)


def test_check_with_a_thin_pool_keeps_the_vg_problems(tmp_path, state_dir, pv):
    """dlvm check of a VG with a thin pool reports what it found in the VG's
    metadata too: the pool's check appended to the report instead of
    starting it afresh, which hid every problem before it."""
    a = pv("pv0.img", state_dir=state_dir)
    b = pv("pv1.img", state_dir=state_dir)
    _, run = offline(tmp_path, state_dir)
    run("vgcreate", "vg0", a, b)
    run("lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "pool", "vg0")
    with open(b, "r+b") as f:              # both metadata header slots of pv1
        for off in (8192, 12288):
            f.seek(off)
            f.write(b"garbage!")
    rc, out, err = dlvm("check", "vg0", socket=tmp_path / "no-daemon.sock",
                        state_dir=state_dir)
    assert rc != 0, out + err
    assert "metadata header slots" in out + err and "consistent" not in out, out + err


def test_error_quoting_a_non_ascii_name_reaches_the_cli(vg0):
    """A refused name is quoted in the error, cut to a byte: dlvmd sent no
    HTTP reply at all when that left the message invalid UTF-8 (JSON
    takes only UTF-8). Bytes that are not UTF-8 go out as '?'."""
    for args in (("vgcreate", "vgä", vg0.pvs[0]), ("lvcreate", "-n", "lvä", "-L", "4m", "vg0"),
                 ("lvcreate", "-n", "x" + "ä" * 80, "-L", "4m", "vg0")):
        rc, out, err = vg0.cli(*args)
        assert rc != 0, out
        assert "malformed" not in err and "name" in err, err
    vg0.cli_ok("vgs")


def test_refused_pvcreate_leaves_nothing(tmp_path, state_dir):
    """pvcreate checks every device (its size included) before it formats
    any; a refusal (of pvremove, vgcreate and vgextend too) closes what it
    opened, so dlvmd does not keep the file open and locked, and removes the
    files that --size created."""
    ok, small = tmp_path / "ok.img", tmp_path / "small.img"
    with open(ok, "wb") as f:
        f.truncate(64 << 20)
    with open(small, "wb") as f:
        f.truncate(2 << 20)
    d = Dlvmd(state_dir)
    d.start()
    try:
        rc, _, err = d.cli("pvcreate", ok, small)
        assert rc != 0 and "too small" in err, err
        out, _ = d.cli_ok("pvs", "-a", "--reportformat", "json")
        assert json.loads(out)["report"][0]["pv"] == [], out
        rc, _, err = d.cli("pvcreate", "--size", "8m", "--metadatasize", "64m",
                           tmp_path / "new.img")
        assert rc != 0 and "too small" in err, err
        assert not (tmp_path / "new.img").exists()
        # pvremove of a file that is no PV: refused, and not kept either
        rc, _, err = d.cli("pvremove", ok)
        assert rc != 0 and "is not a PV" in err, err
        out, _ = d.cli_ok("pvs", "-a", "--reportformat", "json")
        assert json.loads(out)["report"][0]["pv"] == [], out
        # vgcreate and vgextend with a file that is no PV: the same
        rc, _, err = d.cli("vgcreate", "vgx", ok)
        assert rc != 0 and "is not a PV" in err, err
        out, _ = d.cli_ok("pvs", "-a", "--reportformat", "json")
        assert json.loads(out)["report"][0]["pv"] == [], out
        pv1 = tmp_path / "pv1.img"
        d.cli_ok("pvcreate", "--size", "64m", pv1)
        d.cli_ok("vgcreate", "vg1", pv1)
        rc, _, err = d.cli("vgextend", "vg1", ok)
        assert rc != 0 and "is not a PV" in err, err
        out, _ = d.cli_ok("pvs", "-a", "--reportformat", "json")
        assert [p["pv_name"] for p in json.loads(out)["report"][0]["pv"]] == [str(pv1)], out
        # nobody holds ok.img: another dlvm process may use it
        dlvm_ok("pvcreate", ok, socket=tmp_path / "no-daemon.sock",
                state_dir=tmp_path / "other-state")
    finally:
        stop_clean(d)
