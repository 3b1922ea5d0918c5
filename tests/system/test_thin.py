"""Thin pools and thin volumes through dlvmd and real NBD clients: holes in
block status (qemu-img map, nbdinfo --map), sparse copies with nbdcopy,
TRIM and WRITE_ZEROES, pool exhaustion and growth, durability across a
kill -9, fio verify, and a seeded random model test of several volumes."""
import errno
import json
import multiprocessing
import os
import random
import struct
import subprocess
import threading
import time

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, stop_clean  # noqa: F401
from test_datapath import lvs, run  # noqa: F401
from test_nbd_protocol import REQUEST_MAGIC, Raw, recvn

MiB = 1 << 20
CHUNK = 64 << 10


def report(d, *args):
    out, _ = d.cli_ok("lvs", "-a", "--reportformat", "json", "-o",
                      "lv_name,lv_attr,lv_size,pool_lv,origin,data_percent,metadata_percent,segtype",
                      "--units", "b", *args)
    return {r["lv_name"]: r for r in json.loads(out)["report"][0]["lv"]}


def nbd_map(uri):
    out = run("nbdinfo", "--map", "--json", uri)
    return [(e["offset"], e["length"], e["type"]) for e in json.loads(out)]


def connect(d, name):
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.set_export_name(name)
    h.connect_unix(d.nbd_socket)
    return h


def make_pool(d, size="256m", chunk="64k", name="pool0", zero=None):
    d.cli_ok("lvcreate", "--type", "thin-pool", "-L", size, "--chunksize", chunk, "-n", name,
             *(["-Z", zero] if zero else []), "vg0")


# the pool that keeps unwritten sub-blocks (default) and the one that zeroes
# each new chunk (lvcreate -Z y)
ZERO_MODES = pytest.mark.parametrize("zero", ["n", "y"])


def test_pool_and_thin_commands(vg0):
    d = vg0
    make_pool(d)
    out, err = d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool0", "-n", "vm1")
    assert "Sum of all thin volume sizes (1.00g) exceeds the size of thin pool" in err
    d.cli_ok("lvcreate", "-V", "8m", "--thinpool", "pool0", "-n", "vm2", "vg0")
    r = report(d)
    assert r["pool0"]["lv_attr"].startswith("t") and r["pool0"]["segtype"] == "thin-pool"
    assert r["[pool0_tmeta]"]["lv_attr"].startswith("e")
    assert r["vm1"]["lv_attr"].startswith("V") and r["vm1"]["pool_lv"] == "pool0"
    assert r["vm1"]["lv_size"] == f"{1 << 30}B" and r["vm1"]["data_percent"] == "0.00"
    assert r["vm2"]["lv_attr"][4] == "a"  # created active
    assert run("nbdinfo", "--size", d.nbd_uri("vg0/vm1")).strip() == str(1 << 30)
    # dump decodes the pool's store from the PV that holds its metadata LV
    dumps = "".join(d.cli_ok("dump", str(p))[0] for p in d.pvs)
    assert "thin store in vg0/[pool0_tmeta]" in dumps and "LV_SET_THIN" in dumps, dumps[-2000:]
    assert "device tree leaf" in dumps and "chunk_size   65536" in dumps
    # bad input changes nothing
    seq = d.cli_ok("check", "vg0")[0]
    for args, msg in (
        (["lvcreate", "--type", "thin-pool", "-L", "64m", "--chunksize", "48k", "-n", "p",
          "vg0"], "--chunksize 48k: must be a power of two from 4k to 1m"),
        (["lvcreate", "--type", "thin-pool", "-L", "64m", "--chunksize", "2m", "-n", "p",
          "vg0"], "must be a power of two"),
        (["lvcreate", "--type", "thin-pool", "-L", "64m", "-Z", "x", "-n", "p", "vg0"],
         "--zero x: use y or n"),
        (["lvcreate", "-V", "1g", "-n", "x", "vg0"], "name the pool"),
        (["lvcreate", "-V", "1g", "-T", "vg0/nopool", "-n", "x"], "Thin pool vg0/nopool not found"),
        (["lvcreate", "-V", "1g", "-T", "vg0/vm1", "-n", "x"], "vg0/vm1 is not a thin pool"),
        (["lvcreate", "-V", "0", "-T", "vg0/pool0", "-n", "x"], "larger than zero"),
        (["lvremove", "-f", "vg0/pool0"], "still holds thin volume"),
        (["lvremove", "-f", "vg0/pool0_tmeta"], "holds the metadata of a thin pool"),
        (["lvreduce", "-f", "-L", "128m", "vg0/pool0"], "thin pools can only grow"),
        (["lvchange", "-ay", "vg0/pool0"], "is a thin pool: activate its thin volumes"),
        (["lvcreate", "--chunksize", "64k", "-L", "4m", "-n", "lin", "vg0"],
         "are for thin pools"),
    ):
        rc, _, e = d.cli(*args)
        assert rc != 0 and msg in e, (args, e)
    assert d.cli_ok("check", "vg0")[0] == seq
    # thin volumes grow and shrink in virtual size
    d.cli_ok("lvextend", "-L", "+8m", "vg0/vm2")
    assert report(d)["vm2"]["lv_size"] == f"{16 * MiB}B"
    assert run("nbdinfo", "--size", d.nbd_uri("vg0/vm2")).strip() == str(16 * MiB)
    d.cli_ok("lvremove", "-f", "vg0/vm1", "vg0/vm2")
    d.cli_ok("lvremove", "-f", "vg0/pool0")
    assert "pool0_tmeta" not in report(d)
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_holes_map_and_sparse_copy(vg0, tmp_path):
    d = vg0
    make_pool(d)
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "src")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "dst")
    src = d.nbd_uri("vg0/src")
    # a fresh thin volume is one hole that reads as zeros
    assert nbd_map(src) == [(0, 64 * MiB, 3)]
    run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 4096 8192", "-c", "write -P 0x6b 40m 100000",
        src)
    # the mapped chunks: what was written as data, their unwritten 4 KiB
    # sub-blocks as zero (a write that ends inside one zeroes the rest of it)
    m = nbd_map(src)
    assert m[:3] == [(0, 4096, 2), (4096, 8192, 0), (12288, CHUNK - 12288, 2)], m
    assert (40 * MiB, 25 * 4096, 0) in m and (40 * MiB + 25 * 4096, 2 * CHUNK - 25 * 4096, 2) in m, m
    assert sum(length for _, length, t in m if t == 0) == 8192 + 25 * 4096
    assert sum(length for _, length, t in m if t != 3) == 3 * CHUNK
    qm = json.loads(run("qemu-img", "map", "-f", "raw", "--output=json", src))
    data = []
    for e in qm:
        if e["data"] and data and data[-1][0] + data[-1][1] == e["start"]:
            data[-1] = (data[-1][0], data[-1][1] + e["length"])
        elif e["data"]:
            data.append((e["start"], e["length"]))
    assert data == [(0, CHUNK), (40 * MiB, 2 * CHUNK)], qm
    run("qemu-io", "-f", "raw", "-c", "read -P 0 0 4096", "-c", "read -P 0x5a 4096 8192",
        "-c", "read -P 0 12288 52k", "-c", "read -P 0 1m 1m", src)
    # nbdcopy skips the holes: the copy maps only what the source maps
    run("nbdcopy", src, d.nbd_uri("vg0/dst"))
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", src, d.nbd_uri("vg0/dst"))
    r = report(d)
    assert r["dst"]["data_percent"] == r["src"]["data_percent"] != "0.00", r
    # TRIM of whole chunks unmaps them; WRITE_ZEROES of a partial chunk zeroes it
    h = connect(d, "vg0/src")
    h.trim(2 * CHUNK, 40 * MiB)
    h.zero(8192, 4096, nbd.CMD_FLAG_NO_HOLE)
    h.flush()
    assert h.pread(8192, 4096) == bytes(8192)
    assert h.pread(CHUNK, 40 * MiB) == bytes(CHUNK)
    h.shutdown()
    assert [t for _, _, t in nbd_map(src)].count(0) == 1
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_pool_full_then_grown(vg0):
    d = vg0
    make_pool(d, size="4m", chunk="64k")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "big")
    d.cli_ok("lvcreate", "-V", "4m", "-T", "vg0/pool0", "-n", "other")
    h = connect(d, "vg0/big")
    pattern = bytes(range(256)) * 256  # one chunk
    written = 0
    full = None
    for i in range(128):
        try:
            h.pwrite(pattern, i * CHUNK)
            written += 1
        except nbd.Error as e:
            full = e
            break
    assert full is not None and full.errnum == 28, full  # ENOSPC
    assert written == 64  # 4 MiB of 64 KiB chunks
    h.flush()
    # what was written stays intact and readable; reads of the rest are zeros
    for i in range(written):
        assert h.pread(CHUNK, i * CHUNK) == pattern
    assert h.pread(CHUNK, (written + 1) * CHUNK) == bytes(CHUNK)
    assert report(d)["pool0"]["data_percent"] == "100.00"
    time.sleep(1.5)  # the daemon's once-a-second look at the pools
    assert "WARNING: thin pool vg0/pool0 data is now 100% full." in d.read_log()
    # overwriting a mapped chunk still works while the pool is full
    h.pwrite(pattern[::-1], 0)
    # grow the pool online: writes continue on the same connection
    d.cli_ok("lvextend", "-L", "+4m", "vg0/pool0")
    h.pwrite(pattern, written * CHUNK)
    h.flush()
    assert h.pread(CHUNK, written * CHUNK) == pattern
    assert h.pread(CHUNK, 0) == pattern[::-1]
    h.shutdown()
    assert report(d)["pool0"]["data_percent"] == "50.78"
    # the metadata area grows online too
    meta = float(report(d)["pool0"]["metadata_percent"])
    d.cli_ok("lvextend", "--poolmetadatasize", "+4m", "vg0/pool0")
    r = report(d)
    assert r["[pool0_tmeta]"]["lv_size"] == f"{8 * MiB}B"
    assert abs(float(r["pool0"]["metadata_percent"]) - meta / 2) < 0.05, (meta, r["pool0"])
    rc, _, err = d.cli("lvextend", "--poolmetadatasize", "+4m", "vg0/big")
    assert rc != 0 and "--poolmetadatasize is for thin pools" in err
    h = connect(d, "vg0/big")
    h.pwrite(pattern, (written + 1) * CHUNK)
    h.flush()
    h.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_flushed_data_survives_kill(vg0):
    d = vg0
    make_pool(d)
    d.cli_ok("lvcreate", "-V", "32m", "-T", "vg0/pool0", "-n", "vm")
    h = connect(d, "vg0/vm")
    rnd = random.Random(7)
    blocks = {}
    for i in range(200):
        off = rnd.randrange(0, 32 * MiB // 4096) * 4096
        data = rnd.randbytes(4096)
        h.pwrite(data, off, nbd.CMD_FLAG_FUA if i % 50 == 0 else 0)
        blocks[off] = data
    h.flush()
    d.kill()
    d.start()
    h2 = connect(d, "vg0/vm")
    for off, data in blocks.items():
        assert h2.pread(4096, off) == data, off
    h2.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_fio_verify_thin(vg0, tmp_path):
    d = vg0
    make_pool(d, chunk="4k")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "fio")
    log = tmp_path / "fio.out"
    out = run("fio", "--name=thin", "--ioengine=nbd", f"--uri={d.nbd_uri('vg0/fio')}",
              "--rw=randrw", "--bs=4k", "--iodepth=16", "--size=48M", "--verify=crc32c",
              "--do_verify=1", "--verify_fatal=1", "--randseed=99", f"--output={log}",
              timeout=600, cwd=tmp_path)
    text = log.read_text() + out
    assert " err= 0" in text and "verify failed" not in text, text


def test_random_model(vg0):
    """Seeded fsx-style run: random writes, reads, TRIM, WRITE_ZEROES and
    FLUSH on three thin volumes of one pool, every read compared with an
    in-memory model; a restart in the middle; check at the end."""
    d = vg0
    make_pool(d, size="128m", chunk="16k")
    size = 8 * MiB
    names = ["m0", "m1", "m2"]
    for n in names:
        d.cli_ok("lvcreate", "-V", "8m", "-T", "vg0/pool0", "-n", n)
    model = {n: bytearray(size) for n in names}
    rnd = random.Random(20261122)
    hs = {n: connect(d, f"vg0/{n}") for n in names}
    ops = 0
    for phase in range(2):
        for _ in range(3000):
            n = rnd.choice(names)
            h, m = hs[n], model[n]
            op = rnd.random()
            off = rnd.randrange(0, size - 1)
            length = min(rnd.choice([1, 512, 4096, 5000, 16384, 40000, 70000]), size - off)
            if op < 0.4:
                data = rnd.randbytes(length)
                h.pwrite(data, off)
                m[off:off + length] = data
            elif op < 0.75:
                assert h.pread(length, off) == bytes(m[off:off + length]), (n, off, length)
            elif op < 0.85:
                h.trim(length, off)
                # TRIM leaves partial chunks as they are; whole chunks read zero
                first = -(-off // 16384) * 16384
                end = (off + length) // 16384 * 16384
                if end > first:
                    m[first:end] = bytes(end - first)
            elif op < 0.95:
                h.zero(length, off)
                m[off:off + length] = bytes(length)
            else:
                h.flush()
            ops += 1
        for n in names:
            hs[n].flush()
            hs[n].shutdown()
        if phase == 0:
            d.restart()
        hs = {n: connect(d, f"vg0/{n}") for n in names}
    for n in names:
        assert hs[n].pread(size, 0) == bytes(model[n]), n
        hs[n].shutdown()
    assert ops == 6000
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_snapshots_clones_merge(vg0, tmp_path):
    d = vg0
    make_pool(d)
    d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "vm1")
    rnd = random.Random(5)
    a = rnd.randbytes(4 * MiB)
    h = connect(d, "vg0/vm1")
    h.pwrite(a, 0)
    h.flush()
    # the snapshot is taken while the connection stays open
    d.cli_ok("lvcreate", "-s", "-n", "s1", "vg0/vm1")
    run("nbdcopy", d.nbd_uri("vg0/vm1"), tmp_path / "at-s1.img")
    b = rnd.randbytes(MiB)
    h.pwrite(b, MiB)
    h.flush()
    r = report(d)
    assert r["s1"]["lv_attr"][:2] == "Vr" and r["s1"]["lv_attr"][4] == "-"
    assert r["s1"]["origin"] == "vm1" and r["s1"]["pool_lv"] == "pool0"
    d.cli_ok("lvchange", "-ay", "vg0/s1")
    s1 = d.nbd_uri("vg0/s1")
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(tmp_path / "at-s1.img"), s1)
    assert h.pread(MiB, MiB) == b
    # a snapshot is read-only, over NBD and as an LV
    c = connect(d, "vg0/s1")
    assert c.is_read_only()
    c.shutdown()
    rc, _, err = d.cli("lvchange", "-p", "rw", "vg0/s1")
    assert rc != 0 and "is a snapshot and stays read-only" in err
    # a writable clone of the snapshot, independent of both
    d.cli_ok("lvcreate", "--clone", "-n", "c1", "vg0/s1")
    cl = connect(d, "vg0/c1")
    cl.pwrite(b"C" * 4096, 0)
    cl.flush()
    assert cl.pread(4096, 4096) == a[4096:8192]
    assert h.pread(4096, 0) == a[:4096]
    cl.shutdown()
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(tmp_path / "at-s1.img"), s1)
    rc, _, err = d.cli("lvremove", "-f", "vg0/s1")
    assert rc != 0 and "vg0/s1: snapshot has clones: c1" in err, err
    d.cli_ok("lvconvert", "--flatten", "vg0/c1")
    assert report(d)["c1"]["origin"] == ""
    d.cli_ok("lvremove", "-f", "vg0/s1")
    cl = connect(d, "vg0/c1")
    assert cl.pread(4096, 0) == b"C" * 4096 and cl.pread(4096, 4096) == a[4096:8192]
    cl.shutdown()
    # merge: revert the origin to a snapshot
    d.cli_ok("lvcreate", "-s", "-n", "s2", "vg0/vm1")
    h.pwrite(bytes(MiB), 0)
    h.flush()
    rc, _, err = d.cli("lvconvert", "--merge", "vg0/s2")
    assert rc != 0 and "the origin is active: deactivate it" in err
    h.shutdown()
    d.cli_ok("lvchange", "-an", "vg0/vm1")
    d.cli_ok("lvconvert", "--merge", "vg0/s2")
    assert "s2" not in report(d)
    d.cli_ok("lvchange", "-ay", "vg0/vm1")
    h = connect(d, "vg0/vm1")
    assert h.pread(MiB, 0) == a[:MiB] and h.pread(MiB, MiB) == b
    h.shutdown()
    # bad input
    d.cli_ok("lvcreate", "-n", "lin", "-L", "4m", "vg0")
    for args, msg in ((["lvcreate", "-s", "-n", "x", "vg0/lin"],
                       "vg0/lin is not a thin volume: a snapshot needs one"),
                      (["lvcreate", "--clone", "-n", "x", "vg0/nothere"], "Failed to find"),
                      (["lvconvert", "--merge", "vg0/vm1"], "vg0/vm1 is not a snapshot"),
                      (["lvconvert", "--flatten", "vg0/vm1"], "vg0/vm1 is not a clone"),
                      (["lvconvert", "vg0/vm1"], "give --merge SNAPSHOT or --flatten")):
        rc, _, err = d.cli(*args)
        assert rc != 0 and msg in err, (args, err)
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_snapshot_frees_what_only_it_held(vg0):
    d = vg0
    make_pool(d)
    d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "vm")
    h = connect(d, "vg0/vm")
    h.pwrite(b"x" * (4 * MiB), 0)
    h.flush()
    d.cli_ok("lvcreate", "-s", "-n", "snap", "vg0/vm")
    before = float(report(d)["pool0"]["data_percent"])
    h.pwrite(b"y" * (4 * MiB), 0)  # every chunk copied on write
    h.flush()
    h.shutdown()
    during = float(report(d)["pool0"]["data_percent"])
    assert during > before * 1.9, (before, during)
    d.cli_ok("lvremove", "-f", "vg0/snap")
    after = float(report(d)["pool0"]["data_percent"])
    assert abs(after - before) < 0.01, (before, after)
    # 50 snapshots: instant, and reads of the origin do not change
    for i in range(50):
        d.cli_ok("lvcreate", "-s", "-n", f"s{i}", "vg0/vm")
    h = connect(d, "vg0/vm")
    assert h.pread(4 * MiB, 0) == b"y" * (4 * MiB)
    h.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_unflushed_writes_committed_within_seconds(vg0):
    """Without a FLUSH the pool still commits its new mappings about once a
    second; a kill -9 after that keeps them (the data went out with
    O_DIRECT)."""
    d = vg0
    make_pool(d)
    d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "vm")
    h = connect(d, "vg0/vm")
    h.pwrite(b"\x77" * 65536, 3 * MiB)
    time.sleep(3)
    d.kill()
    d.start()
    h2 = connect(d, "vg0/vm")
    assert h2.pread(65536, 3 * MiB) == b"\x77" * 65536
    h2.shutdown()


def test_model_snapshots_clones_reverts(vg0):
    """Seeded model test of 100,000 operations: writes, reads, TRIM,
    WRITE_ZEROES and FLUSH on thin volumes through NBD, with snapshots,
    clones, reverts, removals and resizes in between; every read is
    compared with an in-memory model, and every volume in full at the end,
    then dlvm check (which recounts every reference of the pool)."""
    d = vg0
    make_pool(d, size="256m", chunk="16k")
    cs = 16384
    rnd = random.Random(1122)
    model = {}      # name -> bytearray (virtual contents)
    writable = {}   # name -> bool
    handles = {}

    def open_(n):
        handles[n] = connect(d, f"vg0/{n}")

    def close(n):
        h = handles.pop(n, None)
        if h:
            h.shutdown()

    def create(n, size):
        d.cli_ok("lvcreate", "-V", f"{size >> 20}m", "-T", "vg0/pool0", "-n", n)
        model[n] = bytearray(size)
        writable[n] = True
        open_(n)

    create("v0", 4 * MiB)
    create("v1", 4 * MiB)
    serial = 0
    ops = 0
    while ops < 100000:
        if ops % 2500 == 0 and ops:
            kind = rnd.choice(["snap", "snap", "clone", "revert", "remove", "resize"])
            origins = [n for n in model if writable[n]]
            snaps = [n for n in model if not writable[n]]
            if kind == "snap" and origins:
                o = rnd.choice(origins)
                serial += 1
                s = f"s{serial}"
                handles[o].flush()
                d.cli_ok("lvcreate", "-s", "-n", s, "-ay", f"vg0/{o}")
                model[s] = bytearray(model[o])
                writable[s] = False
                open_(s)
            elif kind == "clone" and snaps:
                src = rnd.choice(snaps)
                serial += 1
                c = f"c{serial}"
                d.cli_ok("lvcreate", "--clone", "-n", c, f"vg0/{src}")
                model[c] = bytearray(model[src])
                writable[c] = True
                open_(c)
            elif kind == "revert" and snaps:
                s = rnd.choice(snaps)
                o = next((n for n in model if writable[n] and n != s and
                          report(d)[s]["origin"] == n), None)
                clones = [n for n in model if report(d)[n]["origin"] == s]
                if o is not None and not clones:
                    close(o)
                    close(s)
                    d.cli_ok("lvchange", "-an", f"vg0/{o}", f"vg0/{s}")
                    d.cli_ok("lvconvert", "--merge", f"vg0/{s}")
                    d.cli_ok("lvchange", "-ay", f"vg0/{o}")
                    model[o] = model.pop(s)
                    writable[o] = True
                    del writable[s]
                    open_(o)
            elif kind == "remove" and len(model) > 2:
                n = rnd.choice(sorted(model))
                rep = report(d)
                if not any(rep[m]["origin"] == n and writable[m] for m in model):
                    close(n)
                    d.cli_ok("lvremove", "-f", f"vg0/{n}")
                    del model[n], writable[n]
            elif kind == "resize" and origins:
                o = rnd.choice(origins)
                close(o)
                d.cli_ok("lvextend", "-L", "+4m", f"vg0/{o}")
                model[o].extend(bytes(4 * MiB))
                open_(o)
        n = rnd.choice(sorted(model))
        h, m = handles[n], model[n]
        size = len(m)
        off = rnd.randrange(0, size - 1)
        length = min(rnd.choice([1, 512, 4096, 4096, 9000, 16384, 50000]), size - off)
        op = rnd.random()
        if not writable[n] or op < 0.45:
            assert h.pread(length, off) == bytes(m[off:off + length]), (ops, n, off, length)
        elif op < 0.8:
            data = rnd.randbytes(length)
            h.pwrite(data, off)
            m[off:off + length] = data
        elif op < 0.88:
            h.trim(length, off)
            first, end = -(-off // cs) * cs, (off + length) // cs * cs
            if end > first:
                m[first:end] = bytes(end - first)
        elif op < 0.96:
            h.zero(length, off)
            m[off:off + length] = bytes(length)
        else:
            h.flush()
        ops += 1
    for n in sorted(model):
        assert handles[n].pread(len(model[n]), 0) == bytes(model[n]), n
        close(n)
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_kill_during_writes_keeps_flushed_data(vg0):
    """kill -9 dlvmd at random moments while a client writes new chunks and
    snapshots are taken; after each restart, every block acknowledged before
    a completed FLUSH reads back, and the pool checks clean."""
    d = vg0
    make_pool(d, chunk="16k")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "vm")
    rnd = random.Random(31)
    durable = {}
    for rnd_kill in range(4):
        h = connect(d, "vg0/vm")
        pending = {}
        stop = threading.Event()

        def writer():
            try:
                while not stop.is_set():
                    for _ in range(8):
                        off = rnd.randrange(0, 64 * MiB // 4096) * 4096
                        data = rnd.randbytes(4096)
                        pending[off] = data  # in flight: may or may not land
                        h.pwrite(data, off)
                    h.flush()
                    durable.update(pending)
                    pending.clear()
            except nbd.Error:
                pass  # the server went away

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(rnd.uniform(0.2, 1.0))
        if rnd_kill % 2:
            d.cli("lvcreate", "-s", "-n", f"snap{rnd_kill}", "vg0/vm")
            time.sleep(rnd.uniform(0.0, 0.3))
        d.kill()
        stop.set()
        t.join(timeout=30)
        # blocks rewritten after their last flush may hold either version
        for off in pending:
            durable.pop(off, None)
        d.start()
        h2 = connect(d, "vg0/vm")
        for off, data in durable.items():
            assert h2.pread(4096, off) == data, (rnd_kill, off)
        h2.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out, out
    assert len(durable) > 50


def test_flushes_of_many_connections_keep_their_writes(vg0):
    """Four connections on two volumes of one pool write new chunks and
    FLUSH at once (each FLUSH commits the pool, and one may come while
    another's commit is written); snapshots are taken meanwhile; dlvmd is
    killed at a random moment. After each restart every block a connection
    wrote before one of its completed FLUSHes reads back, and the pool
    checks clean."""
    d = vg0
    make_pool(d, chunk="16k")
    for lv in ("a", "b"):
        d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", lv)
    rnd = random.Random(47)
    # writer k owns the k-th 16 MiB of its volume
    writers = [("a", 0), ("a", 1), ("b", 2), ("b", 3)]
    durable = {w: {} for w in writers}
    flushes = [0]
    errors = []
    for rnd_kill in range(3):
        stop = threading.Event()
        killing = threading.Event()
        pending = {w: {} for w in writers}
        threads = []

        def writer(w, seed):
            lv, k = w
            g = random.Random(seed)
            h = connect(d, f"vg0/{lv}")
            try:
                while not stop.is_set():
                    for _ in range(g.randrange(1, 12)):
                        off = (k % 2) * 16 * MiB + g.randrange(0, 16 * MiB // 4096) * 4096
                        data = g.randbytes(4096)
                        pending[w][off] = data  # in flight: may or may not land
                        h.pwrite(data, off)
                    h.flush()
                    durable[w].update(pending[w])
                    pending[w].clear()
                    flushes[0] += 1
            except nbd.Error as e:
                if not killing.is_set():
                    errors.append((w, str(e)))

        for i, w in enumerate(writers):
            t = threading.Thread(target=writer, args=(w, rnd.random()))
            t.start()
            threads.append(t)
        for s in range(2):
            time.sleep(rnd.uniform(0.2, 0.6))
            d.cli_ok("lvcreate", "-s", "-n", f"snap{rnd_kill}-{s}", "vg0/a")
        time.sleep(rnd.uniform(0.0, 0.5))
        killing.set()
        d.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        assert not errors, errors
        d.start()
        for w in writers:
            # blocks rewritten after their last flush may hold either version
            for off in pending[w]:
                durable[w].pop(off, None)
            h = connect(d, f"vg0/{w[0]}")
            for off, data in durable[w].items():
                assert h.pread(4096, off) == data, (rnd_kill, w, off)
            h.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out, out
    assert min(len(v) for v in durable.values()) > 50, {w: len(v) for w, v in durable.items()}
    assert flushes[0] > 40


def test_pipelined_flushes_of_one_connection_keep_their_writes(vg0):
    """One connection keeps up to 24 writes of new chunks in flight and
    sends a FLUSH now and then without waiting for anything: writes go on
    while the FLUSH commits the pool; one write in ten carries FUA.
    dlvmd is killed at a random moment; every write that had completed
    before a FLUSH was sent, when that FLUSH completed, and every FUA write
    that completed, reads back after the restart, and the pool checks
    clean."""
    d = vg0
    make_pool(d, chunk="16k")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "p")
    durable = {}
    flushed = [0]
    fua_done = [0]
    for round_ in range(3):
        g = random.Random(100 + round_)
        h = connect(d, "vg0/p")
        writes = {}    # cookie -> (off, data) in flight
        flushes = {}   # cookie -> {off: data} it covers
        done = {}      # completed writes no FLUSH sent covers yet
        pending = {}   # off -> data written since its last covering FLUSH
        busy = set()   # offsets with a write in flight
        fuas = set()   # cookies of FUA writes in flight
        deadline = time.monotonic() + g.uniform(0.5, 1.5)
        try:
            while time.monotonic() < deadline:
                while h.aio_in_flight() < 24:
                    if g.random() < 0.15:
                        flushes[h.aio_flush()] = dict(done)
                        done.clear()
                    else:
                        off = g.randrange(0, 64 * MiB // 4096) * 4096
                        if off in busy:
                            # two writes of one block in flight at once
                            # may land in either order (NBD leaves it open)
                            continue
                        busy.add(off)
                        data = g.randbytes(4096)
                        pending[off] = data
                        fua = g.random() < 0.1
                        c = h.aio_pwrite(data, off,
                                         flags=nbd.CMD_FLAG_FUA if fua else 0)
                        writes[c] = (off, data)
                        if fua:
                            fuas.add(c)
                h.poll(-1)
                for c in [c for c in writes if h.aio_command_completed(c)]:
                    off, data = writes.pop(c)
                    busy.discard(off)
                    done[off] = data
                    if c in fuas:
                        fuas.discard(c)
                        durable[off] = data
                        fua_done[0] += 1
                for c in [c for c in flushes if h.aio_command_completed(c)]:
                    for off, data in flushes.pop(c).items():
                        if pending.get(off) == data:
                            durable[off] = data
                    flushed[0] += 1
        finally:
            d.kill()
        del h
        d.start()
        # a block written again since its covering FLUSH may hold either
        for off in pending:
            if durable.get(off) != pending[off]:
                durable.pop(off, None)
        h = connect(d, "vg0/p")
        for off, data in durable.items():
            assert h.pread(4096, off) == data, (round_, off)
        h.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out, out
    assert flushed[0] > 20 and len(durable) > 200, (flushed[0], len(durable))
    assert fua_done[0] > 20, fua_done[0]


@ZERO_MODES
def test_reused_chunks_show_no_old_data(vg0, zero):
    """Chunks freed by one thin volume and handed to another read as zeros
    wherever the new owner has not written."""
    d = vg0
    make_pool(d, size="4m", chunk="64k", zero=zero)
    dumps = "".join(d.cli_ok("dump", str(p))[0] for p in d.pvs)
    assert f"incompat 0x{'0' if zero == 'y' else '1'}\n" in dumps
    d.cli_ok("lvcreate", "-V", "4m", "-T", "vg0/pool0", "-n", "old")
    h = connect(d, "vg0/old")
    h.pwrite(b"\xaa" * (4 * MiB), 0)
    h.flush()
    h.shutdown()
    assert report(d)["pool0"]["data_percent"] == "100.00"
    d.cli_ok("lvremove", "-f", "vg0/old")
    d.cli_ok("lvcreate", "-V", "4m", "-T", "vg0/pool0", "-n", "new")
    h = connect(d, "vg0/new")
    for i in range(64):
        h.pwrite(b"\x01" * 512, i * CHUNK + 4096)
    h.flush()
    for i in range(64):
        got = h.pread(CHUNK, i * CHUNK)
        assert got == bytes(4096) + b"\x01" * 512 + bytes(CHUNK - 4608), i
    h.shutdown()


def test_pool_autoextend(tmp_path, state_dir, pv):
    """dlvmd --thin-pool-autoextend-threshold 70 --thin-pool-autoextend-percent 50: a pool
    grows as it fills, writes that find it full wait for the growth instead of failing, and
    without VG space left a full pool fails writes with ENOSPC again."""
    a = pv("pv0.img", size="320M", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--thin-pool-autoextend-threshold", "70",
                                            "--thin-pool-autoextend-percent", "50"])
    d.start()
    try:
        make_pool(d, size="64m")
        d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool0", "-n", "vm1")
        h = connect(d, "vg0/vm1")
        rnd = random.Random(5)
        data = {}
        for i in range(200):  # 200 MiB: the pool must grow from 64m several times
            buf = rnd.randbytes(MiB)
            h.pwrite(buf, i * MiB)
            data[i] = buf
        h.flush()
        size = int(report(d)["pool0"]["lv_size"].rstrip("B"))
        assert size >= 200 * MiB, size
        for i in (0, 63, 64, 150, 199):
            assert h.pread(MiB, i * MiB) == data[i]
        # the VG has no room left: a full pool fails writes, what is there stays
        got = None
        try:
            for i in range(200, 1024):
                h.pwrite(rnd.randbytes(MiB), i * MiB)
        except nbd.Error as e:
            got = e.errnum
        assert got == errno.ENOSPC, got
        assert h.pread(MiB, 199 * MiB) == data[199]
        assert "autoextend" in d.read_log()
        h.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out
    finally:
        stop_clean(d)


@ZERO_MODES
def test_reused_chunks_never_taken_for_holes(vg0, zero):
    """The pool remembers a run of chunks that lie in a hole of the PV file,
    so that new chunks there need no zeroing. Chunks handed out from that
    run, written, trimmed and handed out again once the pool wrapped around
    must be zeroed all the same: a partial write to them reads zeros around
    the data, not what their earlier owner wrote."""
    make_pool(vg0, size="4m", zero=zero)  # 64 chunks of 64 KiB, in a hole
    vg0.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "t")
    c = connect(vg0, "vg0/t")
    c.pwrite(b"\x11" * 4096, 0)          # the first chunk: a hole run behind it
    for v in range(1, 64):               # the rest of the pool, from that run
        c.pwrite(b"\xdd" * CHUNK, v * CHUNK)
    c.trim(63 * CHUNK, CHUNK)            # all but the first chunk go back
    c.flush()                            # ... and are free after the commit
    for v in range(64, 127):             # handed out again
        c.pwrite(b"\x22" * 4096, v * CHUNK + 4096)
    for v in range(64, 127):
        got = c.pread(CHUNK, v * CHUNK)
        want = bytes(4096) + b"\x22" * 4096 + bytes(CHUNK - 8192)
        assert got == want, f"virtual chunk {v}: old data around a first write"
    assert c.pread(4096, 0) == b"\x11" * 4096
    c.shutdown()
    out, _ = vg0.cli_ok("check", "vg0")


@ZERO_MODES
def test_new_chunks_never_show_old_data(vg0, zero):
    """Extents written by a removed linear LV, then by a removed thin
    volume: partial first writes to chunks of a new thin volume there read
    zeros around the data, whether the chunk lies in a hole of the PV file
    or on old data."""
    vg0.cli_ok("lvcreate", "-n", "old", "-L", "64m", "vg0")
    c = connect(vg0, "vg0/old")
    for off in range(0, 64 << 20, 1 << 20):
        c.pwrite(b"\xee" * (1 << 20), off)
    c.flush()
    c.shutdown()
    vg0.cli_ok("lvremove", "-y", "vg0/old")
    make_pool(vg0, size="128m", zero=zero)
    for round_ in range(2):
        vg0.cli_ok("lvcreate", "-V", "256m", "-T", "vg0/pool0", "-n", "t")
        c = connect(vg0, "vg0/t")
        rnd = random.Random(round_)
        written = {}
        for _ in range(300):
            chunk = rnd.randrange(0, 4096)
            off = chunk * 65536 + rnd.randrange(0, 16) * 4096
            c.pwrite(b"\x11" * 4096, off)
            written[off] = True
        for off in written:
            base = off - off % 65536
            got = c.pread(65536, base)
            for b in range(0, 65536, 4096):
                want = b"\x11" * 4096 if base + b in written else bytes(4096)
                assert got[b:b + 4096] == want, f"round {round_}: offset {base + b}"
        # fill every chunk it has with other data before it goes, so that the
        # next round's chunks hold old data
        for off in written:
            base = off - off % 65536
            c.pwrite(b"\xdd" * 65536, base)
        c.flush()
        c.shutdown()
        vg0.cli_ok("lvremove", "-y", "vg0/t")


def allocated(d):
    """Bytes the PV files of d take on their file system."""
    return sum(os.stat(p).st_blocks * 512 for p in d.pvs)


def wait_allocated_below(d, limit, what, timeout=20):
    t0 = time.monotonic()
    while allocated(d) > limit:
        assert time.monotonic() - t0 < timeout, \
            f"{what}: PV files still take {allocated(d)} bytes, want <= {limit}"
        time.sleep(0.2)


def test_freed_chunks_given_back_to_pv_files(vg0):
    """Chunks that trims and removals free are punched out of the PV files
    once the freeing is committed, and only then: chunks a snapshot still
    holds keep their data, and chunks handed out again read zeros around a
    partial write."""
    d = vg0
    make_pool(d, size="128m")
    d.cli_ok("lvcreate", "-V", "256m", "-T", "vg0/pool0", "-n", "t")
    c = connect(d, "vg0/t")
    data = {v: bytes([v % 251 + 1]) * CHUNK for v in range(0, 1024, 2)}  # 512 chunks
    for v, b in data.items():
        c.pwrite(b, v * CHUNK)
    c.flush()
    full = allocated(d)
    # half of them trimmed: 16 MiB back to the files
    for v in list(data)[:256]:
        c.trim(CHUNK, v * CHUNK)
        del data[v]
    c.flush()
    wait_allocated_below(d, full - 15 * MiB, "after a trim of 256 chunks")
    # a snapshot holds the other half while the volume is written anew
    d.cli_ok("lvcreate", "-s", "-n", "s", "-ay", "vg0/t")
    for v in data:
        c.pwrite(b"\xab" * CHUNK, v * CHUNK)
    c.flush()
    held = allocated(d)
    time.sleep(3)  # several passes of the agent
    s = connect(d, "vg0/s")
    for v, b in data.items():
        assert s.pread(CHUNK, v * CHUNK) == b, f"snapshot, virtual chunk {v}"
    s.shutdown()
    assert allocated(d) >= held - MiB, "chunks the snapshot holds were punched"
    d.cli_ok("lvchange", "-an", "vg0/s")
    d.cli_ok("lvremove", "-f", "vg0/s")
    wait_allocated_below(d, held - 15 * MiB, "after the snapshot went")
    for v in data:
        assert c.pread(CHUNK, v * CHUNK) == b"\xab" * CHUNK, f"volume, virtual chunk {v}"
    # new chunks, some of them punched ones: zeros around a partial write
    for v in range(1, 1024, 2):
        c.pwrite(b"\x5a" * 4096, v * CHUNK + 8192)
    for v in range(1, 1024, 2):
        assert c.pread(CHUNK, v * CHUNK) == bytes(8192) + b"\x5a" * 4096 + bytes(CHUNK - 12288)
    c.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_unwritten_subblocks_read_as_zeros(vg0):
    """A new chunk over old data is not zeroed: the store keeps which of its
    sixteen 4 KiB sub-blocks hold something written, and the others read as
    zeros, through a snapshot, copy-on-write, a clone that copies from its
    origin, and a kill -9 and restart of dlvmd. Writes that fill a sub-block
    only in part leave zeros around them."""
    d = vg0
    SUB = 4096
    d.cli_ok("lvcreate", "-n", "old", "-L", "64m", "vg0")
    c = connect(d, "vg0/old")
    for off in range(0, 64 * MiB, MiB):
        c.pwrite(b"\xee" * MiB, off)
    c.flush()
    c.shutdown()
    d.cli_ok("lvremove", "-y", "vg0/old")
    make_pool(d, size="64m")                # its data area lies on the old LV's data
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "t")

    def put(h, model, data, off):
        h.pwrite(data, off)
        model[off:off + len(data)] = data

    h = connect(d, "vg0/t")
    t = bytearray(4 * CHUNK)
    put(h, t, b"\x11" * SUB, SUB)                            # chunk 0: sub-block 1
    put(h, t, b"\x12" * 512, CHUNK + 3 * SUB + 1024)         # chunk 1: part of one
    put(h, t, b"\x13" * (3 * SUB), 2 * CHUNK + 5 * SUB - 2048)  # chunk 2: parts of two
    h.flush()
    assert h.pread(4 * CHUNK, 0) == t
    dumps = "".join(d.cli_ok("dump", str(p))[0] for p in d.pvs)
    assert "unwritten 0xfffd" in dumps, dumps[-3000:]     # chunk 0: all but sub-block 1
    # block status: unwritten sub-blocks as zero (2), unmapped chunks as holes (3)
    merged = []
    for off, length, kind in nbd_map(d.nbd_uri("vg0/t")):
        if merged and merged[-1][2] == kind:
            merged[-1] = (merged[-1][0], merged[-1][1] + length, kind)
        else:
            merged.append((off, length, kind))
    edges = [0, SUB, 2 * SUB, CHUNK + 3 * SUB, CHUNK + 4 * SUB, 2 * CHUNK + 4 * SUB,
             2 * CHUNK + 8 * SUB, 3 * CHUNK, 64 * MiB]
    want = [(a, b - a, k) for a, b, k in zip(edges, edges[1:], [2, 0, 2, 0, 2, 0, 2, 3])]
    assert merged == want, merged

    d.cli_ok("lvcreate", "-s", "-n", "s", "vg0/t")
    snap = bytes(t)
    put(h, t, b"\x21" * SUB, 8 * SUB)                        # chunk 0: copy-on-write
    put(h, t, b"\x22" * SUB, 3 * CHUNK)                      # chunk 3: a new one
    h.flush()
    assert h.pread(4 * CHUNK, 0) == t
    # WRITE_ZEROES of whole sub-blocks in a chunk: they become unwritten again
    # (block status: zero), and the snapshot sharing the old chunk keeps its data
    assert (0, CHUNK, 0) in nbd_map(d.nbd_uri("vg0/t"))     # chunk 0 was copied whole
    h.zero(2 * SUB, SUB)
    t[SUB:3 * SUB] = bytes(2 * SUB)
    assert nbd_map(d.nbd_uri("vg0/t"))[:3] == [(0, SUB, 0), (SUB, 2 * SUB, 2),
                                               (3 * SUB, CHUNK - 3 * SUB, 0)]
    assert h.pread(4 * CHUNK, 0) == t
    d.cli_ok("lvchange", "-ay", "vg0/s")
    sh = connect(d, "vg0/s")
    assert sh.pread(4 * CHUNK, 0) == snap
    sh.shutdown()
    d.cli_ok("lvcreate", "--clone", "-n", "c", "vg0/s")
    cl = connect(d, "vg0/c")
    cb = bytearray(snap)
    put(cl, cb, b"\x31" * SUB, 2 * CHUNK + 9 * SUB)          # chunk 2, copied from s
    cl.flush()
    assert cl.pread(4 * CHUNK, 0) == cb
    cl.shutdown()
    h.shutdown()

    d.kill()
    d.start()
    for name, want in (("t", t), ("s", snap), ("c", cb)):
        d.cli("lvchange", "-ay", f"vg0/{name}")
        g = connect(d, f"vg0/{name}")
        assert g.pread(4 * CHUNK, 0) == want, name
        g.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_write_zeroes_where_fallocate_cannot_zero(tmp_path):
    """On a tmpfs PV, fallocate(FALLOC_FL_ZERO_RANGE) is refused: WRITE_ZEROES
    with NO_HOLE falls back to writing zeros, on a linear LV (redone after
    the refusal) and on a thin LV (whose pieces come from the pool and are
    zeroed at once). The data around each range stays, and dlvmd keeps
    running and exits cleanly."""
    shm = "/dev/shm"
    assert os.path.isdir(shm), "this test needs a tmpfs at /dev/shm"
    pvdir = os.path.join(shm, f"dlvm-test-{os.getpid()}-{tmp_path.name}")
    os.makedirs(pvdir)
    state = tmp_path / "state"
    state.mkdir()
    pvp = os.path.join(pvdir, "pv0.img")
    nodaemon = tmp_path / "no-daemon.sock"
    d = None
    try:
        dlvm_ok("pvcreate", "--size", "256M", pvp, socket=nodaemon, state_dir=state)
        dlvm_ok("vgcreate", "vg0", pvp, socket=nodaemon, state_dir=state)
        d = Dlvmd(state, devices=[pvp])
        d.start()
        d.cli_ok("lvcreate", "-n", "lin", "-L", "16m", "vg0")
        make_pool(d, size="64m")
        d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "t")
        rnd = random.Random(11)
        models = {}
        for lv in ("lin", "t"):
            h = connect(d, f"vg0/{lv}")
            size = 4 * CHUNK
            model = bytearray(rnd.randbytes(size))
            h.pwrite(bytes(model), 0)
            # NO_HOLE: ZERO_RANGE, refused here; then the plain kind, which
            # may punch (a hole, or an unmapped chunk) where it covers enough
            for count, off, flags in ((8192, 4096, nbd.CMD_FLAG_NO_HOLE),
                                      (CHUNK, CHUNK + 512, nbd.CMD_FLAG_NO_HOLE),
                                      (CHUNK + 4096, 2 * CHUNK - 4096, 0),
                                      (512, 3 * CHUNK + 100, nbd.CMD_FLAG_NO_HOLE)):
                h.zero(count, off, flags)
                model[off:off + count] = bytes(count)
                assert h.pread(size, 0) == model, (lv, count, off, flags)
            h.flush()
            h.shutdown()
            models[lv] = model
        d.restart()
        for lv, model in models.items():
            h = connect(d, f"vg0/{lv}")
            assert h.pread(len(model), 0) == model, lv
            h.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out
    finally:
        if d:
            stop_clean(d)
        for f in os.listdir(pvdir):
            os.unlink(os.path.join(pvdir, f))
        os.rmdir(pvdir)


def test_concurrent_copy_on_write(vg0):
    """Four connections write a just-snapshotted volume at once, each its
    own 4 KiB blocks but the same chunks, so that copies of one chunk are
    asked for from several connections together; readers of the volume
    and of the snapshot run alongside. Every write lands, the snapshot keeps
    what was there before it, and the pool checks clean; twice, with a
    second snapshot taken while the writers run."""
    d = vg0
    make_pool(d, size="64m")
    d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "v")
    size = 16 * MiB
    rnd = random.Random(21)
    base = rnd.randbytes(size)
    h = connect(d, "vg0/v")
    h.pwrite(base, 0)
    h.flush()
    model = bytearray(base)
    blocks = size // 4096
    for rnd_no in range(2):
        snap = f"s{rnd_no}"
        d.cli_ok("lvcreate", "-s", "-n", snap, "-ay", "vg0/v")
        before = bytes(model)
        errors = []
        # the writers take the chunks in the same shuffled order, writer k
        # the blocks k, k + 4, ... of each: they ask for a chunk's copy at
        # nearly the same time
        chunks = list(range(size // CHUNK))
        rnd.shuffle(chunks)
        per = CHUNK // 4096
        plans = [[(c * per + i, rnd.randbytes(4096)) for c in chunks[:160]
                  for i in range(k, per, 4)] for k in range(4)]
        # processes, not threads: a python thread holds the interpreter lock
        # through a libnbd call
        mp = multiprocessing.get_context("fork")
        together = mp.Barrier(4, timeout=60)

        def writer(plan):
            c = connect(d, "vg0/v")
            for j, (b, data) in enumerate(plan):
                if j % (per // 4) == 0:
                    together.wait()     # the next chunk: all at once
                c.pwrite(data, b * 4096)
            c.flush()
            c.shutdown()

        def snap_reader():
            try:
                c = connect(d, f"vg0/{snap}")
                for _ in range(200):
                    off = rnd.randrange(0, blocks) * 4096
                    if c.pread(4096, off) != before[off:off + 4096]:
                        errors.append(f"{snap} changed at {off}")
                        break
                c.shutdown()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        procs = [mp.Process(target=writer, args=(p,)) for p in plans]
        reader = threading.Thread(target=snap_reader)
        for t in procs + [reader]:
            t.start()
        if rnd_no == 1:
            # a snapshot while the copies are under way
            d.cli_ok("lvcreate", "-s", "-n", "mid", "-ay", "vg0/v")
        for t in procs + [reader]:
            t.join()
        assert [t.exitcode for t in procs] == [0] * 4
        assert not errors, errors
        for plan in plans:
            for b, data in plan:
                model[b * 4096:(b + 1) * 4096] = data
        assert h.pread(size, 0) == model
        s = connect(d, f"vg0/{snap}")
        assert s.pread(size, 0) == before
        s.shutdown()
        if rnd_no == 1:
            # each block of the snapshot taken meanwhile: before or after
            # its one write, nothing else
            m = connect(d, "vg0/mid")
            mid = m.pread(size, 0)
            m.shutdown()
            for b in range(blocks):
                got = mid[b * 4096:(b + 1) * 4096]
                assert got in (before[b * 4096:(b + 1) * 4096],
                               bytes(model[b * 4096:(b + 1) * 4096])), b
    h.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_read_of_a_freed_chunk_never_shows_another_volume(vg0):
    """A read looks its chunks up when its request is parsed; its device
    read goes out later, here behind three large reads pipelined after it
    on the same connection (4 KiB chunks: served synchronously). A TRIM of
    those chunks from another connection and a commit free them meanwhile,
    and a write to another volume of the full pool wants them at once. The
    freed chunks must wait for the read (cooling): it returns t1's data,
    never t2's."""
    d = vg0
    make_pool(d, size="40m", chunk="4k")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "t1")
    d.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool0", "-n", "t2")
    a, b, c = connect(d, "vg0/t1"), connect(d, "vg0/t1"), connect(d, "vg0/t2")
    X = 64 << 10
    a.pwrite(b"\x11" * (32 * MiB), 16 * MiB)    # slow to read in 4 KiB pieces
    a.flush()
    off = 0                                     # the rest of the pool to t2
    while True:
        try:
            c.pwrite(b"\x22" * X, off)
            off += X
        except nbd.Error as e:
            assert e.errnum == errno.ENOSPC, e
            break
    c.flush()
    reads = [(0, X)] + [(16 * MiB, 32 * MiB)] * 3
    for _ in range(3):
        c.trim(X, off - X)                      # t1's next X gets these chunks
        c.flush()
        time.sleep(1.2)                         # cooled, let go by the agent
        a.pwrite(b"\xaa" * X, 0)
        a.flush()
        r = Raw(str(d.nbd_socket))
        r.go("vg0/t1")
        r.s.sendall(b"".join(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, 0, k + 1, o, n)
                             for k, (o, n) in enumerate(reads)))
        time.sleep(0.1)
        b.trim(X, 0)                            # X's chunks freed at the commit
        b.flush()
        for _ in range(50):
            try:
                c.pwrite(b"\xcc" * X, off - X)  # t2 takes what is free
                break
            except nbd.Error:
                time.sleep(0.02)
        got = {}
        for _ in reads:
            err, cookie = r.simple_reply()
            assert err == 0, (err, cookie)
            got[cookie] = recvn(r.s, reads[cookie - 1][1])
        r.close()
        assert got[1] == b"\xaa" * X, (got[1].count(0xcc), got[1].count(0xaa))
    for h in (a, b, c):
        h.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_thin_lv_size_limit(vg0):
    """A thin LV is at most 1 EiB, whether made so or extended: lvextend
    took up to 4 EiB, past the store's virtual chunks, and writes beyond
    1 EiB failed."""
    d = vg0
    make_pool(d, size="64m", chunk="4k")
    rc, _, err = d.cli("lvcreate", "-V", "2e", "-T", "vg0/pool0", "-n", "t")
    assert rc != 0 and "at most 1 EiB" in err, err
    # a size near 2^64 wrapped to a small one when rounded to extents
    # (the API answered 500): refused as too large, 400
    status, body = d.api("POST", "/v1/cmd/lvcreate",
                         {"opts": {"virtualsize": "18446744073709551615b",
                                   "thinpool": "pool0", "name": "w"}, "args": ["vg0"]})
    assert status == 400 and "at most 1 EiB" in body["error"]["message"], (status, body)
    d.cli_ok("lvcreate", "-V", "1e", "-T", "vg0/pool0", "-n", "t")
    rc, _, err = d.cli("lvextend", "-L", "4e", "vg0/t")
    assert rc != 0 and "at most 1 EiB" in err, err
    assert report(d)["t"]["lv_size"] == f"{1 << 60}B"
    h = connect(d, "vg0/t")
    h.pwrite(b"\x5a" * 4096, (1 << 60) - 4096)  # the last block works
    assert h.pread(4096, (1 << 60) - 4096) == b"\x5a" * 4096
    h.shutdown()


def test_lvcreate_T_L_short_form_makes_a_pool(vg0):
    """LVM's short form, as docs/cli.md gives it: -T -L SIZE VG/POOL."""
    d = vg0
    d.cli_ok("lvcreate", "-T", "-L", "64m", "vg0/pool1")
    r = report(d)
    assert r["pool1"]["segtype"] == "thin-pool", r["pool1"]
    d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool1", "-n", "t")
    assert report(d)["t"]["pool_lv"] == "pool1"


def test_lvextend_poolmetadatasize_refused_changes_nothing(vg0):
    """lvextend --poolmetadatasize with a bad -L (or -i) grew the metadata
    LV, then refused: everything is checked first now."""
    d = vg0
    make_pool(d, size="64m")

    def meta_size():
        out, _ = d.cli_ok("lvs", "-a", "--reportformat", "json", "--units", "b", "-o",
                          "lv_name,lv_size")
        return {r["lv_name"]: r["lv_size"] for r in json.loads(out)["report"][0]["lv"]}[
            "[pool0_tmeta]"]

    before = meta_size()
    for bad in (["-L", "garbage"], ["-L", "32m"], ["-i", "999"]):
        rc, _, err = d.cli("lvextend", "--poolmetadatasize", "+4m", *bad, "vg0/pool0")
        assert rc != 0, (bad, err)
        assert meta_size() == before, bad
    d.cli_ok("lvextend", "--poolmetadatasize", "+4m", "-L", "+64m", "vg0/pool0")
    assert meta_size() != before


def test_partial_write_beside_a_whole_one_keeps_both(vg0):
    """1 MiB chunks have 64 KiB sub-blocks. A 32 MiB write fills the
    sub-blocks of new chunks whole; they count as written once all of it is
    done. A 4 KiB write from another connection into one of those
    sub-blocks, sent while the large one is under way, must not zero it:
    what the large write put beside the small one stays, whatever the order
    the two land in."""
    d = vg0
    make_pool(d, size="600m", chunk="1m")
    d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool0", "-n", "v")
    b = connect(d, "vg0/v")
    big = 32 * MiB
    rnd = random.Random(5)
    small = b"\x5a" * 4096
    for k in range(16):
        base = k * big
        data = rnd.randbytes(big)
        sub = (k % 4) * MiB + 64 * 1024 * k            # a sub-block inside the write
        a = Raw(str(d.nbd_socket))
        a.go("vg0/v")
        sender = threading.Thread(target=a.s.sendall, args=(
            struct.pack(">IHHQQI", REQUEST_MAGIC, 0, 1, 1, base, big) + data,))
        sender.start()                                 # socket calls let go of the GIL
        time.sleep(0.008 * (k + 1))
        b.pwrite(small, base + sub + 4096)
        sender.join()
        assert a.simple_reply() == (0, 1)
        a.close()
        got = b.pread(64 * 1024, base + sub)
        want = data[sub:sub + 64 * 1024]
        assert got[:4096] == want[:4096], f"round {k}: bytes before the small write lost"
        assert got[8192:] == want[8192:], f"round {k}: bytes after the small write lost"
        assert got[4096:8192] in (small, want[4096:8192]), f"round {k}: overlap is neither"
    b.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_partial_write_beside_a_write_that_finds_the_pool_full(vg0):
    """As above, but the large write fails: the pool runs out of chunks
    half way. What it wrote before is down, so the small write that relied
    on it reads back (or the large one's data, landed after it), never
    zeros; and the pool goes on working (it does not stop as
    it would after a device error)."""
    d = vg0
    make_pool(d, size="24m", chunk="1m")
    d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool0", "-n", "v")
    b = connect(d, "vg0/v")
    big = 32 * MiB
    small = b"\x5a" * 4096
    for k in range(8):
        base = 64 * MiB * (k + 1)
        a = Raw(str(d.nbd_socket))
        a.go("vg0/v")
        sender = threading.Thread(target=a.s.sendall, args=(
            struct.pack(">IHHQQI", REQUEST_MAGIC, 0, 1, 1, base, big) + b"\xa5" * big,))
        sender.start()
        time.sleep(0.004 * (k + 1))
        sub = base + (k % 4) * MiB + 64 * 1024 * k + 4096
        try:
            b.pwrite(small, sub)
            wrote = True
        except nbd.Error as e:                       # sent after the pool filled up
            assert e.errnum == errno.ENOSPC, e
            wrote = False
        sender.join()
        err, cookie = a.simple_reply()
        assert (err, cookie) == (errno.ENOSPC, 1), (err, cookie)
        a.close()
        if wrote:
            # the two overlap: either may land last, but not zeros
            assert b.pread(4096, sub) in (small, b"\xa5" * 4096), f"round {k}: lost"
        b.trim(big, base)                            # room for the next round
        b.flush()
        time.sleep(1.2)                              # cooled chunks let go
    b.pwrite(b"\x77" * 4096, 0)                      # the pool still takes writes
    b.flush()
    assert b.pread(4096, 0) == b"\x77" * 4096
    b.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_snapshot_holds_a_concurrent_write_whole_or_not_at_all(vg0):
    """A snapshot waits for the writes begun before it; one that arrives
    while it is being taken waits for it. Here a slow 32 MiB first write
    keeps the snapshot waiting while a second 32 MiB write overwrites a
    mapped region: the snapshot must hold that second write whole or not
    at all, and must not change once it exists. A write to another volume
    of the pool meanwhile lands where it should."""
    d = vg0
    make_pool(d, size="1200m")
    d.cli_ok("lvcreate", "-V", "1g", "-T", "vg0/pool0", "-n", "v")
    d.cli_ok("lvcreate", "-V", "16m", "-T", "vg0/pool0", "-n", "other")
    big = 32 * MiB
    r2 = 512 * MiB                                    # the mapped region
    h = connect(d, "vg0/v")
    h.pwrite(bytes([0xf0]) * big, r2)
    h.flush()
    o = connect(d, "vg0/other")
    o.pwrite(b"\x01" * (16 * MiB), 0)
    o.flush()
    prev = 0xf0

    def send(off, data, out):
        c = Raw(str(d.nbd_socket))
        c.go("vg0/v")
        c.s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, 1, 1, off, len(data)) + data)
        out.append(c.simple_reply())
        c.close()

    def mapped(c, off):
        flags = []
        c.block_status(4096, off, lambda _m, _o, e, _err: flags.extend(e[1::2]) or 0)
        return not flags[0] & nbd.STATE_HOLE

    def fill_of(name):
        s = connect(d, f"vg0/{name}")
        got = set()
        for off in range(0, big, 4 * MiB):
            got |= set(s.pread(4 * MiB, r2 + off))
        s.shutdown()
        return got

    for k in range(6):
        pat = 0x10 + k
        res1, res2 = [], []
        t1 = threading.Thread(target=send, args=(k * big, bytes([0xaa]) * big, res1))
        t1.start()                                    # slow: new chunks of a sparse PV
        until = time.monotonic() + 10
        while not mapped(h, k * big):                 # under way (its first chunk mapped)
            assert time.monotonic() < until, "the first write never started"
            time.sleep(0.001)
        snap = threading.Thread(target=d.cli_ok, args=("lvcreate", "-s", "-n", f"s{k}",
                                                       "-ay", "vg0/v"))
        snap.start()
        time.sleep(0.01 + 0.005 * k)
        t2 = threading.Thread(target=send, args=(r2, bytes([pat]) * big, res2))
        t2.start()
        o.pwrite(bytes([pat]) * 4096, 4096 * k)
        snap.join()
        first = fill_of(f"s{k}")
        t1.join()
        t2.join()
        assert res1 == [(0, 1)] and res2 == [(0, 1)], (res1, res2)
        again = fill_of(f"s{k}")
        assert first == again, f"round {k}: the snapshot changed: {first} then {again}"
        assert again in ({prev}, {pat}), f"round {k}: the snapshot holds part of a write: {again}"
        assert fill_of("v") == {pat}
        assert o.pread(4096, 4096 * k) == bytes([pat]) * 4096
        prev = pat
    h.shutdown()
    o.shutdown()
    out, _ = d.cli_ok("check", "vg0")
    assert "consistent" in out


def test_write_to_a_chunk_across_a_segment_boundary(tmp_path, state_dir, pv):
    """With 64 KiB extents, a pool grown around another LV has a 1 MiB chunk
    in two segments, so one write to it goes out in two pieces. Each piece
    accounts for the sub-blocks of its own bytes only: once the write is
    done no fill of the chunk is left over, and a 4 KiB write into a
    sub-block that WRITE_ZEROES made unwritten again completes at once (it
    waited forever for the left-over fill before)."""
    a = pv("pv0.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "-s", "64k", "vg0", a, socket=tmp_path / "no-daemon.sock",
            state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a])
    d.start()
    try:
        make_pool(d, size="1088k", chunk="1m")
        d.cli_ok("lvcreate", "-n", "blocker", "-L", "64k", "vg0")
        d.cli_ok("lvextend", "-L", "+2m", "vg0/pool0")
        assert report(d)["pool0"]["lv_size"] == f"{1088 * 1024 + 2 * MiB}B"
        d.cli_ok("lvcreate", "-V", "8m", "-T", "vg0/pool0", "-n", "v")
        h = connect(d, "vg0/v")
        h.pwrite(b"\x33" * (2 * MiB), 0)        # the second chunk lies in both segments
        h.flush()
        sub = MiB + 5 * 65536
        h.zero(65536, sub)                      # a whole sub-block: unwritten again
        h.flush()
        cookie = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\x44" * 4096)), sub + 4096)
        until = time.monotonic() + 10
        while not h.aio_command_completed(cookie):
            assert time.monotonic() < until, "the partial write never completed"
            h.poll(100)
        got = h.pread(65536, sub)
        assert got == bytes(4096) + b"\x44" * 4096 + bytes(65536 - 8192)
        assert h.pread(MiB - 65536, MiB) == b"\x33" * (5 * 65536) + got + \
            b"\x33" * (MiB - 7 * 65536)
        h.shutdown()
        out, _ = d.cli_ok("check", "vg0")
        assert "consistent" in out
    finally:
        stop_clean(d)
