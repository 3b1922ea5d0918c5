"""Thin pools in a shared VG: each thin volume's family (the volume and its
snapshots) has its own store and slabs, written by the host that holds the
family; different families are written from different hosts at once, and
snapshots are read on any host while their origin is written elsewhere.
Several dlvmd processes (host ids 1..n, io_timeout 1 s) share the PV files;
every read is compared with an in-memory model."""
import json
import random
import threading

import nbd

from test_shared import cluster, report, shared_pvs  # noqa: F401

MiB = 1 << 20
CHUNK = 64 << 10


def lvs(d):
    out, _ = d.cli_ok("lvs", "-a", "--reportformat", "json", "-o",
                      "lv_name,lv_attr,lv_size,pool_lv,origin,data_percent,active_hosts",
                      "--units", "b", "vgs")
    return {r["lv_name"]: r for r in json.loads(out)["report"][0]["lv"]}


def connect(d, name):
    h = nbd.NBD()
    h.add_meta_context("base:allocation")
    h.set_export_name(name)
    h.connect_unix(d.nbd_socket)
    return h


class Model:
    """A volume's expected bytes, kept in 4 KiB blocks (absent: zeros)."""
    B = 4096

    def __init__(self, size):
        self.size = size
        self.blocks = {}

    def write(self, off, data):
        for i in range(0, len(data), self.B):
            self.blocks[(off + i) // self.B] = data[i:i + self.B]

    def read(self, off, n):
        return b"".join(self.blocks.get((off + i) // self.B, bytes(self.B))
                        for i in range(0, n, self.B))

    def copy(self):
        m = Model(self.size)
        m.blocks = dict(self.blocks)
        return m


def writer(d, lv, model, seed, ops, errors, flush_every=50):
    """Random 4k-aligned writes (some across chunks) and reads through d."""
    rnd = random.Random(seed)
    h = connect(d, f"vgs/{lv}")
    try:
        for i in range(ops):
            n = rnd.choice((4096, 8192, 65536, 131072))
            off = rnd.randrange(0, (model.size - n) // 4096) * 4096
            if rnd.random() < 0.7:
                data = rnd.randbytes(n)
                h.pwrite(data, off)
                model.write(off, data)
            else:
                got = h.pread(n, off)
                if got != model.read(off, n):
                    errors.append(f"{lv}: read at {off} differs from the model")
                    return
            if i % flush_every == 0:
                h.flush()
        h.flush()
    except Exception as e:  # noqa: BLE001 - reported to the test
        errors.append(f"{lv}: {e}")
    finally:
        h.shutdown()


def check_all(h, lv, model):
    c = connect(h, f"vgs/{lv}")
    try:
        for off in range(0, model.size, MiB):
            assert c.pread(MiB, off) == model.read(off, MiB), f"{lv} at {off}"
    finally:
        c.shutdown()


def test_two_hosts_write_their_families(cluster):
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "256m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "48m", "-T", "vgs/pool", "-n", "a")
    h2.cli_ok("lvcreate", "-V", "48m", "-T", "vgs/pool", "-n", "b")
    r = lvs(h1)
    assert r["a"]["active_hosts"] == "1" and r["b"]["active_hosts"] == "2", r
    assert r["pool"]["lv_size"] == f"{256 * MiB}B", r["pool"]
    # one host writes a family at a time
    rc, _, err = h2.cli("lvchange", "-aey", "vgs/a")
    assert rc != 0 and "vgs/a: its thin family is written on host id 1" in err, err
    rc, _, err = h2.cli("lvcreate", "-s", "-n", "x", "vgs/a")
    assert rc != 0 and "its thin family is written elsewhere" in err, err
    rc, _, err = h1.cli("lvchange", "-asy", "vgs/a")
    assert rc != 0 and "written from one host at a time" in err, err

    ma, mb = Model(48 * MiB), Model(48 * MiB)
    errors = []
    ts = [threading.Thread(target=writer, args=(h1, "a", ma, 1, 1500, errors)),
          threading.Thread(target=writer, args=(h2, "b", mb, 2, 1500, errors))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    # each family grew past its first slab (16 MiB) while the other wrote
    r = lvs(h1)
    assert float(r["pool"]["data_percent"]) > 12.5, r["pool"]

    # a snapshot of a, read on h2 while h1 goes on writing a
    h1.cli_ok("lvcreate", "-s", "-n", "a-s1", "vgs/a")
    snap = ma.copy()
    h2.cli_ok("lvchange", "-asy", "vgs/a-s1")
    h1.cli_ok("lvchange", "-asy", "vgs/a-s1")
    t = threading.Thread(target=writer, args=(h1, "a", ma, 3, 800, errors))
    t.start()
    check_all(h2, "a-s1", snap)
    t.join()
    assert not errors, errors
    check_all(h1, "a-s1", snap)
    check_all(h1, "a", ma)
    check_all(h2, "b", mb)
    rc, _, err = h2.cli("lvremove", "-y", "vgs/a-s1")
    assert rc != 0 and "active on host id 1" in err, err

    # hand a family over: h1 lets go of a, h2 takes it and sees every write
    h1.cli_ok("lvchange", "-an", "vgs/a")
    h2.cli_ok("lvchange", "-aey", "vgs/a")
    check_all(h2, "a", ma)
    t = threading.Thread(target=writer, args=(h2, "a", ma, 4, 300, errors))
    t.start()
    t.join()
    assert not errors, errors
    h1.cli_ok("lvchange", "-an", "vgs/a-s1")
    h2.cli_ok("lvchange", "-an", "vgs/a-s1", "vgs/a", "vgs/b")
    out, _ = h1.cli_ok("check", "vgs")
    assert "consistent" in out, out
    h1.cli_ok("lvchange", "-aey", "vgs/a")
    check_all(h1, "a", ma)
    h1.cli_ok("lvchange", "-an", "vgs/a")
    for lv in ("a-s1", "a", "b"):
        h2.cli_ok("lvremove", "-y", f"vgs/{lv}")
    r = lvs(h1)
    assert r["pool"]["data_percent"] == "0.00", r["pool"]
    assert not [n for n in r if "_f" in n], r
    h1.cli_ok("lvremove", "-y", "vgs/pool")
    out, _ = h2.cli_ok("check", "vgs")
    assert "consistent" in out, out
