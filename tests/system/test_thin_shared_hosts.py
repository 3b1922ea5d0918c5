"""Thin pools in a shared VG with more hosts and with faults: four hosts
each write a family at once while every other host reads their snapshots
and a clone is written on a host of its own; a host killed while writing
its family is taken over after the dead-host time with every flushed write
intact; a pool shared by two hosts runs out of space and grows online, by
hand or by autoextend. Reads are compared with an in-memory model."""
import errno
import threading
import time

import nbd
import pytest

from test_shared import cluster, host, shared_pvs  # noqa: F401
from test_thin_shared import MiB, Model, check_all, connect, lvs, writer
from conftest import stop_clean

D = 5    # dead-host time: 5 × io_timeout (1 s in these tests)
R = 0.5  # renew interval


def run_all(jobs):
    ts = [threading.Thread(target=f, args=a) for f, a in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def consistent(d):
    out, _ = d.cli_ok("check", "vgs")
    assert "consistent" in out, out


def test_four_hosts_families_snapshots_and_a_clone(cluster):
    hs = cluster(4)
    hs[0].cli_ok("lvcreate", "--type", "thin-pool", "-L", "512m", "--chunksize", "64k",
                 "-n", "pool", "vgs")
    size = 24 * MiB
    models, errors = {}, []
    for i, h in enumerate(hs):
        h.cli_ok("lvcreate", "-V", "24m", "-T", "vgs/pool", "-n", f"v{i}")
        models[f"v{i}"] = Model(size)
    r = lvs(hs[0])
    assert [r[f"v{i}"]["active_hosts"] for i in range(4)] == ["1", "2", "3", "4"], r

    # all four families written at once, each from its own host
    run_all([(writer, (h, f"v{i}", models[f"v{i}"], 100 + i, 500, errors))
             for i, h in enumerate(hs)])
    assert not errors, errors

    # every host snapshots its volume; every other host reads the snapshot
    # while the owner goes on writing the origin
    snaps = {}
    for i, h in enumerate(hs):
        h.cli_ok("lvcreate", "-s", "-n", f"v{i}-s", f"vgs/v{i}")
        snaps[f"v{i}-s"] = models[f"v{i}"].copy()
    for i in range(4):
        for j, h in enumerate(hs):
            h.cli_ok("lvchange", "-asy", f"vgs/v{i}-s")
    r = lvs(hs[2])
    assert [r[f"v{i}-s"]["active_hosts"] for i in range(4)] == ["1(sh),2(sh),3(sh),4(sh)"] * 4, \
        [r[f"v{i}-s"] for i in range(4)]

    def read_others(j, h):
        try:
            for i in range(4):
                if i != j:
                    check_all(h, f"v{i}-s", snaps[f"v{i}-s"])
        except AssertionError as e:
            errors.append(f"host {j + 1}: {e}")
    jobs = [(writer, (h, f"v{i}", models[f"v{i}"], 200 + i, 300, errors))
            for i, h in enumerate(hs)]
    jobs += [(read_others, (j, h)) for j, h in enumerate(hs)]
    run_all(jobs)
    assert not errors, errors

    # a clone of host 1's snapshot, written on host 4 while host 1 writes v0
    hs[3].cli_ok("lvcreate", "--clone", "-n", "c", "vgs/v0-s")
    mc = snaps["v0-s"].copy()
    run_all([(writer, (hs[3], "c", mc, 300, 400, errors)),
             (writer, (hs[0], "v0", models["v0"], 301, 400, errors))])
    assert not errors, errors
    check_all(hs[3], "c", mc)
    check_all(hs[1], "v0-s", snaps["v0-s"])

    # every volume read back where it is written, every snapshot everywhere
    for i, h in enumerate(hs):
        check_all(h, f"v{i}", models[f"v{i}"])
        check_all(h, "v0-s", snaps["v0-s"])
    # the families change hands in a ring and keep their data
    for i, h in enumerate(hs):
        h.cli_ok("lvchange", "-an", f"vgs/v{i}")
    for i in range(4):
        h = hs[(i + 1) % 4]
        h.cli_ok("lvchange", "-aey", f"vgs/v{i}")
        check_all(h, f"v{i}", models[f"v{i}"])
        h.cli_ok("lvchange", "-an", f"vgs/v{i}")
    for h in hs:
        h.cli_ok("lvchange", "-an", *[f"vgs/v{i}-s" for i in range(4)])
    hs[3].cli_ok("lvchange", "-an", "vgs/c")
    consistent(hs[1])


def test_takeover_of_a_killed_writer(cluster):
    h1, h2 = cluster(2)
    h2.cli_ok("lvcreate", "--type", "thin-pool", "-L", "256m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h2.cli_ok("lvcreate", "-V", "32m", "-T", "vgs/pool", "-n", "a")
    ma, errors = Model(32 * MiB), []
    writer(h2, "a", ma, 21, 400, errors)
    assert not errors, errors
    h2.cli_ok("lvcreate", "-s", "-n", "a-s", "vgs/a")
    snap = ma.copy()
    writer(h2, "a", ma, 22, 300, errors)  # ends with a FLUSH
    assert not errors, errors
    # writes after the last FLUSH: each block reads old or new afterwards
    c = connect(h2, "vgs/a")
    unflushed = {}
    for k in range(40):
        off = (k * 389 % (32 * MiB // 4096)) * 4096
        data = bytes([k + 1]) * 4096
        unflushed[off // 4096] = (ma.read(off, 4096), data)
        c.pwrite(data, off)
    time.sleep(1)  # a few renewals: the kill is what stops h2
    t0 = time.monotonic()
    h2.kill()
    took = None
    while time.monotonic() - t0 < 15:
        rc, _, err = h1.cli("lvchange", "-aey", "vgs/a")
        if rc == 0:
            took = time.monotonic() - t0
            break
        assert "on host id 2" in err, err
        time.sleep(0.1)
    assert took is not None and D - R - 0.2 <= took <= 8, took
    r = lvs(h1)
    assert r["a"]["active_hosts"] == "1", r["a"]

    got = connect(h1, "vgs/a")
    for off in range(0, 32 * MiB, MiB):
        data = got.pread(MiB, off)
        for b in range(0, MiB, 4096):
            blk = (off + b) // 4096
            have = data[b:b + 4096]
            if blk in unflushed:
                assert have in unflushed[blk], f"block {blk}: neither old nor new"
                ma.write(blk * 4096, have)
            else:
                assert have == ma.read(off + b, 4096), f"block {blk} lost a flushed write"
    got.shutdown()
    # the snapshot is intact, and h1 goes on writing the family
    h1.cli_ok("lvchange", "-asy", "vgs/a-s")
    check_all(h1, "a-s", snap)
    writer(h1, "a", ma, 23, 300, errors)
    assert not errors, errors
    check_all(h1, "a", ma)
    h1.cli_ok("lvchange", "-an", "vgs/a", "vgs/a-s")
    consistent(h1)


def fill(d, lv, model, start, end, step=MiB):
    """Write [start, end) in step pieces; returns where it stopped (the
    first write that failed, with ENOSPC) or end."""
    c = connect(d, f"vgs/{lv}")
    try:
        for off in range(start, end, step):
            data = bytes([(off // step) % 251 + 1]) * step
            try:
                c.pwrite(data, off)
            except nbd.Error as e:
                assert e.errnum == errno.ENOSPC, e
                return off
            model.write(off, data)
        c.flush()
        return end
    finally:
        c.shutdown()


def test_pool_exhaustion_and_growth_across_hosts(cluster):
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    # virtual sizes past the pool's: a warning, not an error
    _, err = h1.cli_ok("lvcreate", "-V", "48m", "-T", "vgs/pool", "-n", "a")
    h2.cli_ok("lvcreate", "-V", "48m", "-T", "vgs/pool", "-n", "b")
    ma, mb = Model(48 * MiB), Model(48 * MiB)
    stop = {}
    run_all([(lambda: stop.__setitem__("a", fill(h1, "a", ma, 0, 48 * MiB)), ()),
             (lambda: stop.__setitem__("b", fill(h2, "b", mb, 0, 48 * MiB)), ())])
    # the pool ran out: both stopped short, together past most of the pool
    assert stop["a"] < 48 * MiB and stop["b"] < 48 * MiB, stop
    assert stop["a"] + stop["b"] >= 48 * MiB, stop
    r = lvs(h1)
    assert float(r["pool"]["data_percent"]) > 90, r["pool"]
    # what was written stays readable; overwrites of mapped chunks go on
    check_all(h1, "a", ma)
    check_all(h2, "b", mb)
    c = connect(h2, "vgs/b")
    c.pwrite(b"o" * 4096, 0)
    mb.write(0, b"o" * 4096)
    c.flush()
    c.shutdown()

    # grown on one host, both families go on
    h2.cli_ok("lvextend", "-L", "+64m", "vgs/pool")
    assert lvs(h1)["pool"]["lv_size"] == f"{128 * MiB}B"
    stop2 = {}
    run_all([(lambda: stop2.__setitem__("a", fill(h1, "a", ma, stop["a"], 48 * MiB)), ()),
             (lambda: stop2.__setitem__("b", fill(h2, "b", mb, stop["b"], 48 * MiB)), ())])
    assert stop2 == {"a": 48 * MiB, "b": 48 * MiB}, stop2
    check_all(h1, "a", ma)
    check_all(h2, "b", mb)
    h1.cli_ok("lvchange", "-an", "vgs/a")
    h2.cli_ok("lvchange", "-an", "vgs/b")
    consistent(h1)


@pytest.fixture
def autoextend_cluster(tmp_path, shared_pvs):
    hs = [host(tmp_path, shared_pvs, i + 1,
               ("--thin-pool-autoextend-threshold", "70",
                "--thin-pool-autoextend-percent", "50")) for i in range(2)]
    for h in hs:
        h.start()
    yield hs
    for h in hs:
        stop_clean(h)


def test_shared_pool_autoextend(autoextend_cluster):
    h1, h2 = autoextend_cluster
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "64m", "-T", "vgs/pool", "-n", "a")
    h2.cli_ok("lvcreate", "-V", "64m", "-T", "vgs/pool", "-n", "b")
    ma, mb = Model(64 * MiB), Model(64 * MiB)
    stop = {}
    # 128 MiB written into a 64 MiB pool: it grows as it fills, no write fails
    run_all([(lambda: stop.__setitem__("a", fill(h1, "a", ma, 0, 64 * MiB)), ()),
             (lambda: stop.__setitem__("b", fill(h2, "b", mb, 0, 64 * MiB)), ())])
    assert stop == {"a": 64 * MiB, "b": 64 * MiB}, stop
    size = int(lvs(h1)["pool"]["lv_size"].rstrip("B"))
    assert size >= 128 * MiB, size
    check_all(h1, "a", ma)
    check_all(h2, "b", mb)
    h1.cli_ok("lvchange", "-an", "vgs/a")
    h2.cli_ok("lvchange", "-an", "vgs/b")
    consistent(h2)


def test_sigterm_commits_the_family(cluster):
    """Writes acknowledged without a FLUSH are committed at a clean stop,
    while the host still holds the VG's lease, and are there after a
    restart on the same host or a handover to another."""
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "128m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "16m", "-T", "vgs/pool", "-n", "a")
    ma = Model(16 * MiB)
    c = connect(h1, "vgs/a")
    for k in range(64):
        data = bytes([k + 1]) * 8192
        c.pwrite(data, k * 256 * 1024)
        ma.write(k * 256 * 1024, data)
    c.shutdown()  # no FLUSH
    stop_clean(h1)
    assert "commit:" not in h1.read_log(), h1.read_log()[-2000:]
    h1.start()
    check_all(h1, "a", ma)
    h1.cli_ok("lvchange", "-an", "vgs/a")
    h2.cli_ok("lvchange", "-aey", "vgs/a")
    check_all(h2, "a", ma)
    h2.cli_ok("lvchange", "-an", "vgs/a")
    consistent(h2)


def test_reader_follows_the_growth_of_a_family(cluster):
    """A host that reads a family's snapshots keeps its view of the family
    while the writer adds slabs: a snapshot taken later, whose chunks are in
    the new slabs, reads right there too."""
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "128m", "--chunksize", "64k", "-n",
              "pool", "vgs")  # slabs of 8 MiB
    h1.cli_ok("lvcreate", "-V", "64m", "-T", "vgs/pool", "-n", "a")
    ma = Model(64 * MiB)
    fill(h1, "a", ma, 0, 4 * MiB)
    h1.cli_ok("lvcreate", "-s", "-n", "s1", "vgs/a")
    s1 = ma.copy()
    h2.cli_ok("lvchange", "-asy", "vgs/s1")
    check_all(h2, "s1", s1)
    # the family grows by several slabs while h2 keeps s1 open
    fill(h1, "a", ma, 4 * MiB, 48 * MiB)
    data = [n for n in lvs(h1) if n.endswith("_tdata]")]
    assert len(data) == 1, data
    assert int(lvs(h1)[data[0]]["lv_size"].rstrip("B")) >= 48 * MiB
    h1.cli_ok("lvcreate", "-s", "-n", "s2", "vgs/a")
    s2 = ma.copy()
    h2.cli_ok("lvchange", "-asy", "vgs/s2")
    check_all(h2, "s2", s2)
    check_all(h2, "s1", s1)
    h2.cli_ok("lvchange", "-an", "vgs/s1", "vgs/s2")
    h1.cli_ok("lvchange", "-an", "vgs/a")
    consistent(h2)


def test_family_metadata_grows(cluster):
    """Snapshots each followed by writes spread over the whole volume copy a
    leaf of the tree per write: the family's metadata (4 MiB to start) fills
    up, and the host that writes the family grows its metadata LV before
    writes fail. A host reading an older snapshot meanwhile follows."""
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "160m", "--chunksize", "4k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "64m", "-T", "vgs/pool", "-n", "a")
    meta = [n for n in lvs(h1) if n.endswith("_tmeta]")]
    assert len(meta) == 1, meta
    meta = meta[0]
    assert lvs(h1)[meta]["lv_size"] == f"{4 * MiB}B"
    ma = Model(64 * MiB)
    fill(h1, "a", ma, 0, 64 * MiB)
    snaps = {}
    c = connect(h1, "vgs/a")
    for k in range(14):
        h1.cli_ok("lvcreate", "-s", "-n", f"s{k}", "vgs/a")
        snaps[f"s{k}"] = ma.copy()
        if k == 0:
            h2.cli_ok("lvchange", "-asy", "vgs/s0")
            check_all(h2, "s0", snaps["s0"])
        for j in range(0, 16384, 64):
            data = bytes([k + 1, j % 251]) * 2048
            c.pwrite(data, (j + k) * 4096)
            ma.write((j + k) * 4096, data)
        c.flush()
        time.sleep(0.3)  # the agent looks every 250 ms
    c.shutdown()
    assert int(lvs(h1)[meta]["lv_size"].rstrip("B")) > 4 * MiB, lvs(h1)[meta]
    assert "thin family metadata extended to" in h1.read_log()
    check_all(h1, "a", ma)
    check_all(h2, "s0", snaps["s0"])
    h2.cli_ok("lvchange", "-asy", "vgs/s13")
    check_all(h2, "s13", snaps["s13"])
    h2.cli_ok("lvchange", "-an", "vgs/s0", "vgs/s13")
    h1.cli_ok("lvchange", "-an", "vgs/a")
    consistent(h2)
