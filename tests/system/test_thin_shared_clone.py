"""Clones in a shared VG: a clone of a snapshot is a family of its own that
reads through to the snapshot, so it is written on another host than the
snapshot's family; chunks it TRIMs or zeroes read as zeros, not as the
origin's data; its snapshots read through too; flatten copies what it still
reads from the snapshot and lets the snapshot go. Reads are compared with an
in-memory model."""
import json
import random
import re
import time
import threading

import nbd
import pytest

from test_shared import cluster, shared_pvs  # noqa: F401
from test_thin_shared import CHUNK, MiB, Model, check_all, connect, lvs, writer


def test_clone_written_on_another_host(cluster):
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "256m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "32m", "-T", "vgs/pool", "-n", "a")
    ma, errors = Model(32 * MiB), []
    writer(h1, "a", ma, 11, 600, errors)
    assert not errors, errors
    h1.cli_ok("lvcreate", "-s", "-n", "s1", "vgs/a")
    snap = ma.copy()

    # a clone of a live volume snapshots it first: on the host that writes it
    rc, _, err = h2.cli("lvcreate", "--clone", "-n", "x", "vgs/a")
    assert rc != 0 and "its thin family is written elsewhere" in err, err
    assert "active on host id 1" in err, err
    assert "x" not in lvs(h2) and "[x_clonesrc]" not in lvs(h2)
    h2.cli_ok("lvcreate", "--clone", "-n", "c", "vgs/s1")
    r = lvs(h2)
    assert r["c"]["origin"] == "s1" and r["c"]["active_hosts"] == "2", r["c"]
    check_all(h2, "c", snap)

    # the clone is written on h2 while h1 writes a, the snapshot's family
    mc = snap.copy()
    t = threading.Thread(target=writer, args=(h1, "a", ma, 12, 600, errors))
    t.start()
    writer(h2, "c", mc, 13, 600, errors)
    t.join()
    assert not errors, errors
    check_all(h2, "c", mc)
    check_all(h1, "a", ma)

    # TRIM and WRITE_ZEROES of whole chunks read as zeros, not as s1's data
    rnd = random.Random(14)
    c = connect(h2, "vgs/c")
    for _ in range(20):
        off = rnd.randrange(0, 32 * MiB // CHUNK - 4) * CHUNK
        n = rnd.choice((CHUNK, 3 * CHUNK, CHUNK + 4096))
        if rnd.random() < 0.5:
            c.trim(n, off)  # whole chunks read as zeros; the rest is left
            mc.write(off, bytes(n - n % CHUNK))
        else:
            c.zero(n, off)
            mc.write(off, bytes(n))
    c.flush()
    c.shutdown()
    check_all(h2, "c", mc)

    # s1 cannot go while c reads through to it
    rc, _, err = h1.cli("lvremove", "-y", "vgs/s1")
    assert rc != 0 and "snapshot has clones: c" in err, err

    # a snapshot of the clone, read on h1
    h2.cli_ok("lvcreate", "-s", "-n", "c-s1", "vgs/c")
    csnap = mc.copy()
    h1.cli_ok("lvchange", "-asy", "vgs/c-s1")
    check_all(h1, "c-s1", csnap)
    rc, _, err = h2.cli("lvconvert", "--flatten", "vgs/c")
    assert rc != 0 and "remove c-s1 first" in err, err
    h1.cli_ok("lvchange", "-an", "vgs/c-s1")
    h2.cli_ok("lvremove", "-y", "vgs/c-s1")

    # flatten while c is active on h2, then s1 and a can go
    out, _ = h2.cli_ok("lvconvert", "--flatten", "vgs/c")
    assert "no longer depends on s1" in out, out
    assert lvs(h2)["c"]["origin"] == ""
    check_all(h2, "c", mc)
    h1.cli_ok("lvremove", "-y", "vgs/s1")
    h1.cli_ok("lvchange", "-an", "vgs/a")
    h1.cli_ok("lvremove", "-y", "vgs/a")
    check_all(h2, "c", mc)
    # the clone changes hands and keeps its data
    h2.cli_ok("lvchange", "-an", "vgs/c")
    h1.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h1, "c", mc)
    h1.cli_ok("lvchange", "-an", "vgs/c")
    out, _ = h2.cli_ok("check", "vgs")
    assert "consistent" in out, out


def test_clone_of_a_live_volume(cluster):
    """A clone of a live volume reads through to a hidden snapshot taken by
    the same command on the host that writes the volume; the clone is then
    written on another host while the volume goes on being written. The
    hidden snapshot goes with the clone's removal, or after a flatten once
    a host that may write its family removes it."""
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "--type", "thin-pool", "-L", "256m", "--chunksize", "64k", "-n",
              "pool", "vgs")
    h1.cli_ok("lvcreate", "-V", "16m", "-T", "vgs/pool", "-n", "a")
    ma, errors = Model(16 * MiB), []
    writer(h1, "a", ma, 21, 300, errors)
    assert not errors, errors
    out, _ = h1.cli_ok("lvcreate", "--clone", "-n", "c", "vgs/a")
    assert 'Logical volume "c" created.' in out, out
    at_clone = ma.copy()
    r = lvs(h1)
    assert r["c"]["origin"] == "c_clonesrc", r["c"]
    assert r["[c_clonesrc]"]["origin"] == "a" and r["[c_clonesrc]"]["lv_attr"][1] == "r", r
    rc, _, err = h1.cli("lvchange", "-asy", "vgs/c_clonesrc")
    assert rc != 0 and "clones of a live volume read through" in err, err
    rc, _, err = h1.cli("lvremove", "-y", "vgs/c_clonesrc")
    assert rc != 0 and "snapshot has clones: c" in err, err

    # the clone moves to h2 and is written there while h1 writes a
    h1.cli_ok("lvchange", "-an", "vgs/c")
    h2.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h2, "c", at_clone)
    mc = at_clone.copy()
    t = threading.Thread(target=writer, args=(h1, "a", ma, 22, 300, errors))
    t.start()
    writer(h2, "c", mc, 23, 300, errors)
    t.join()
    assert not errors, errors
    check_all(h2, "c", mc)
    check_all(h1, "a", ma)

    # flattened on h2: the hidden snapshot's family is written on h1, so it
    # stays, with a warning, until h1 removes it
    out, err = h2.cli_ok("lvconvert", "--flatten", "vgs/c")
    assert "no longer depends on c_clonesrc" in out, out
    assert "c_clonesrc: the snapshot the clone read through stays" in err, err
    assert "[c_clonesrc]" in lvs(h2)
    h1.cli_ok("lvremove", "-y", "vgs/c_clonesrc")
    assert "[c_clonesrc]" not in lvs(h2)
    check_all(h2, "c", mc)

    # a second clone, removed on the host that writes a: its snapshot goes too
    h1.cli_ok("lvcreate", "--clone", "-n", "d", "vgs/a")
    md = ma.copy()
    check_all(h1, "d", md)
    h1.cli_ok("lvchange", "-an", "vgs/d")
    h1.cli_ok("lvremove", "-y", "vgs/d")
    r = lvs(h2)
    assert "d" not in r and "[d_clonesrc]" not in r, r
    check_all(h1, "a", ma)
    out, _ = h2.cli_ok("check", "vgs")
    assert "consistent" in out, out


def filled_clone(h, size, seed, clones, pool="256m", active=False):
    """Thin volume a of `size` written in full, snapshot s1, and clones of
    it, inactive unless `active`; returns the model of s1."""
    h.cli_ok("lvcreate", "--type", "thin-pool", "-L", pool, "--chunksize", "64k", "-n",
             "pool", "vgs")
    h.cli_ok("lvcreate", "-V", f"{size // MiB}m", "-T", "vgs/pool", "-n", "a")
    m, rnd = Model(size), random.Random(seed)
    a = connect(h, "vgs/a")
    for off in range(0, size, 4 * MiB):
        data = rnd.randbytes(4 * MiB)
        a.pwrite(data, off)
        m.write(off, data)
    a.flush()
    a.shutdown()
    h.cli_ok("lvcreate", "-s", "-n", "s1", "vgs/a")
    for c in clones:
        h.cli_ok("lvcreate", "--clone", "-n", c, "vgs/s1")
        if not active:
            h.cli_ok("lvchange", "-an", f"vgs/{c}")
    return m


def test_clone_serves_while_it_is_flattened(cluster):
    """Flatten copies a chunk at a time without holding up the clone's
    requests meanwhile: reads and writes of the active clone complete while
    the flatten runs, and the clone ends up with the snapshot's data and
    its own writes."""
    (h1,) = cluster(1)
    size = 256 * MiB
    m = filled_clone(h1, size, 31, ["c"], pool="640m", active=True)
    rnd = random.Random(32)
    c = connect(h1, "vgs/c")
    out = []
    flatten = threading.Thread(target=lambda: out.append(
        h1.cli_ok("lvconvert", "--flatten", "vgs/c")))
    flatten.start()
    served = 0
    while flatten.is_alive():
        off = rnd.randrange(0, size // 4096) * 4096
        if served % 4 == 3:
            data = rnd.randbytes(4096)
            c.pwrite(data, off)
            m.write(off, data)
        else:
            assert c.pread(4096, off) == m.read(off, 4096), off
        served += 1
    flatten.join()
    assert out and "no longer depends on s1" in out[0][0], out
    # the flatten took long enough for many requests, which did not wait for it
    assert served >= 20, f"only {served} requests completed during the flatten"
    c.flush()
    c.shutdown()
    check_all(h1, "c", m)
    out, _ = h1.cli_ok("check", "vgs")
    assert "consistent" in out, out

    # the family store stays this host's while the clone is active here: a
    # change after the flatten, without a FLUSH, is committed within about
    # a second and survives a kill
    c = connect(h1, "vgs/c")
    c.trim(4 * CHUNK, 0)
    m.write(0, bytes(4 * CHUNK))
    time.sleep(2.5)
    h1.kill()
    h1.start()
    check_all(h1, "c", m)


def job(h, job_id):
    out, _ = h.cli_ok("jobs", "--reportformat", "json", str(job_id))
    rows = json.loads(out)["report"][0]["job"]
    assert len(rows) == 1, rows
    return rows[0]


def test_flatten_is_a_background_job(cluster):
    """The copy of a flatten runs in dlvmd without the VG lease: another
    host changes the VG meanwhile; the clone's family stays this host's
    until the job ends; commands that would change the clone are refused
    while it runs; then the clone moves to the other host with its data."""
    h1, h2 = cluster(2)
    m = filled_clone(h1, 32 * MiB, 41, ["c"])
    out, _ = h1.cli_ok("lvconvert", "--flatten", "-b", "--maxrecoveryrate", "4m", "vgs/c")
    assert "vgs/c: flattening from s1 (job 1): dlvm jobs shows its progress." in out, out
    r = job(h1, 1)
    assert r["job_state"] == "running" and r["job_lv"] == "vgs/c", r
    assert 0 <= float(r["copy_percent"]) < 100, r
    out, _ = h1.cli_ok("lvs", "--reportformat", "json", "-o", "lv_name,copy_percent", "vgs")
    cp = {x["lv_name"]: x["copy_percent"] for x in json.loads(out)["report"][0]["lv"]}
    assert cp["a"] == "" and 0 <= float(cp["c"]) < 100, cp
    t0 = time.monotonic()
    h2.cli_ok("lvcreate", "-V", "8m", "-T", "vgs/pool", "-n", "other")
    assert time.monotonic() - t0 < 5, "the other host waited for the VG lease"
    rc, _, err = h2.cli("lvchange", "-aey", "vgs/c")
    assert rc != 0 and "its thin family is written on host id 1" in err, err
    for args in (["lvremove", "-y", "vgs/c"], ["lvcreate", "-s", "-n", "cs", "vgs/c"],
                 ["lvrename", "vgs", "c", "d"], ["lvconvert", "--flatten", "vgs/c"],
                 ["vgchange", "-an", "vgs"]):
        rc, _, err = h1.cli(*args)
        assert rc != 0 and "vgs/c: a flatten job runs on it (job 1" in err, (args, err)
    assert job(h1, 1)["job_state"] == "running", "the job ended before the refusals"
    seen = set()
    deadline = time.monotonic() + 60
    while (r := job(h1, 1))["job_state"] == "running":
        seen.add(float(r["copy_percent"]))
        assert time.monotonic() < deadline, r
        time.sleep(0.2)
    assert r["job_state"] == "done", r
    assert r["job_message"] == "vgs/c no longer depends on s1 (512 chunks copied).", r
    assert len(seen) >= 3, seen  # progress moved while it ran
    assert lvs(h2)["c"]["origin"] == ""
    # the family is let go at the end: the clone activates on the other host
    h2.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h2, "c", m)
    h1.cli_ok("lvremove", "-y", "vgs/s1")
    out, _ = h2.cli_ok("check", "vgs")
    assert "consistent" in out, out


def ready_log(h, timeout=30):
    """h's log once its last start has ended: dlvmd answers /v1/health
    before it goes on with the flattens left unfinished, and logs "ready"
    after them."""
    deadline = time.monotonic() + timeout
    while (log := h.read_log()).count("dlvmd: ready") < log.count("dlvmd: api: listening"):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    return log


def wait_job(h, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while (r := job(h, job_id))["job_state"] == "running":
        assert time.monotonic() < deadline, r
        time.sleep(0.1)
    return r


def test_flatten_waits_and_stops_with_dlvmd(cluster):
    """Without -b the command waits and prints progress; a job stopped by
    dlvmd's SIGTERM keeps what it copied, and the next start of dlvmd goes
    on with it from there."""
    (h1,) = cluster(1)
    m = filled_clone(h1, 32 * MiB, 42, ["c", "d"])
    for bad, msg in ((["--flatten", "--interval", "0"], "--interval takes seconds"),
                     (["--flatten", "--maxrecoveryrate", "x"], "--maxrecoveryrate"),
                     (["--merge", "-b"], "go with --flatten")):
        rc, _, err = h1.cli("lvconvert", *bad, "vgs/c")
        assert rc != 0 and msg in err, (bad, err)
    assert lvs(h1)["c"]["origin"] == "s1"
    for bad, msg in ((["abc"], 'jobs: "abc" is not a job id'), (["0"], "is not a job id"),
                     (["99"], "jobs: no job 99")):
        rc, _, err = h1.cli("jobs", *bad)
        assert rc == 5 and msg in err, (bad, rc, err)
    out, _ = h1.cli_ok("jobs")
    assert out.split() == ["ID", "Type", "LV", "State", "Cpy%Sync", "Message"], out

    out, _ = h1.cli_ok("lvconvert", "--flatten", "-i", "0.2", "--maxrecoveryrate", "16m",
                       "vgs/c")
    assert "vgs/c: Flattened: " in out, out
    assert out.rstrip().endswith("vgs/c no longer depends on s1 (512 chunks copied)."), out

    h1.cli_ok("lvconvert", "--flatten", "-b", "--maxrecoveryrate", "4m", "vgs/d")
    time.sleep(1.5)
    assert job(h1, 2)["job_state"] == "running"
    t0 = time.monotonic()
    assert h1.stop() == 0
    assert time.monotonic() - t0 < 10
    assert "job 2: flatten of vgs/d failed: vgs/d: flatten: stopped with dlvmd" in \
        h1.read_log()
    h1.start()
    assert "dlvmd: vgs/d: going on with the flatten left unfinished" in ready_log(h1)
    r = wait_job(h1, 1)
    assert r["job_state"] == "done" and r["job_lv"] == "vgs/d", r
    n = int(re.search(r"no longer depends on s1 \((\d+) chunks copied\)",
                      r["job_message"]).group(1))
    assert 0 < n < 512, r
    assert lvs(h1)["d"]["origin"] == ""
    # done: the next start has nothing to go on with
    assert h1.stop() == 0
    h1.start()
    assert ready_log(h1).count("going on with the flatten") == 1
    out, _ = h1.cli_ok("jobs")
    assert len(out.splitlines()) == 1, out
    for c in ("c", "d"):
        h1.cli_ok("lvchange", "-aey", f"vgs/{c}")
        check_all(h1, c, m)
    h1.cli_ok("lvremove", "-y", "vgs/s1")
    out, _ = h1.cli_ok("check", "vgs")
    assert "consistent" in out, out


def test_flatten_goes_on_at_its_rate(cluster, shared_pvs):  # noqa: F811
    """A flatten left unfinished goes on, at dlvmd's next start, at the
    --maxrecoveryrate it was started with: the journal keeps the rate with
    the clone's mark. `dlvm jobs -o job_rate` shows it; the copy left takes
    as long as that rate says; once done the clone has no rate left."""
    (h1,) = cluster(1)
    m = filled_clone(h1, 32 * MiB, 46, ["c"])
    h1.cli_ok("lvconvert", "--flatten", "-b", "--maxrecoveryrate", "4m", "vgs/c")
    out, _ = h1.cli_ok("jobs", "-o", "job_id,job_rate", "--units", "b", "--nosuffix")
    assert out.split() == ["ID", "MaxRate", "1", str(4 * MiB)], out
    time.sleep(1)
    h1.kill()
    h1.start()
    t0 = time.monotonic()
    assert "dlvmd: vgs/c: going on with the flatten left unfinished" in ready_log(h1)

    def row():
        out, _ = h1.cli_ok("jobs", "--reportformat", "json", "-o",
                           "job_state,job_rate,job_copied", "--units", "b", "--nosuffix", "1")
        return json.loads(out)["report"][0]["job"][0]

    r = row()
    assert r["job_state"] == "running", r
    assert int(r["job_rate"]) == 4 * MiB, r
    assert wait_job(h1, 1)["job_state"] == "done"
    took = time.monotonic() - t0
    r = row()
    # what was left (at least 16 MiB after a second at 4 MiB/s) at 4 MiB/s
    left = int(r["job_copied"])
    assert left >= 16 * MiB, r
    assert took >= left / (4 * MiB) - 1, (took, r)
    h1.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h1, "c", m)
    # the journal recorded the rate with the mark, and took it away with it
    out, _ = h1.cli_ok("dump", str(shared_pvs[0]))
    rates = re.findall(r"LV_SET_COPY_RATE.*copy_rate=(\d+)", out)
    assert rates and rates[0] == str(4 * MiB) and rates[-1] == "0", rates


def test_flatten_killed_goes_on_and_lets_the_family_go(cluster):
    """dlvmd killed during the flatten of an inactive clone: when it comes
    back it goes on with the flatten, and once that ends it does not keep
    the family the job held (the record the killed run left), so another
    host activates the clone; the data is the snapshot's. A host whose
    flatten cannot go on (the clone is active elsewhere) says so."""
    h1, h2 = cluster(2)
    m = filled_clone(h1, 32 * MiB, 43, ["c", "d"])
    h1.cli_ok("lvconvert", "--flatten", "-b", "--maxrecoveryrate", "4m", "vgs/c")
    time.sleep(1)
    assert job(h1, 1)["job_state"] == "running"
    rc, _, err = h2.cli("lvchange", "-aey", "vgs/c")
    assert rc != 0 and "its thin family is written on host id 1" in err, err
    h1.kill()
    h1.start()
    assert "dlvmd: vgs/c: going on with the flatten left unfinished" in ready_log(h1)
    r = wait_job(h1, 1)
    assert r["job_state"] == "done", r
    assert "vgs/c no longer depends on s1" in r["job_message"], r
    h2.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h2, "c", m)

    # d: marked, then h1 killed before it copied much; h2 activates d
    # once h1 is gone, so h1's next start cannot take the family
    h1.cli_ok("lvconvert", "--flatten", "-b", "--maxrecoveryrate", "1m", "vgs/d")
    time.sleep(0.5)
    h1.kill()
    deadline = time.monotonic() + 20  # h1's family lease goes stale
    while (res := h2.cli("lvchange", "-aey", "vgs/d"))[0] != 0:
        assert time.monotonic() < deadline, res
        time.sleep(0.25)
    h1.start()
    log = ready_log(h1)
    assert "dlvmd: vgs/d: the flatten left unfinished cannot go on: " in log, log
    assert lvs(h1)["d"]["origin"] == "s1"
    out, _ = h2.cli_ok("lvconvert", "--flatten", "vgs/d")
    assert "vgs/d no longer depends on s1" in out, out
    check_all(h2, "d", m)
    h2.cli_ok("lvchange", "-an", "vgs/d")
    h1.cli_ok("lvremove", "-y", "vgs/s1")
    h2.cli_ok("lvchange", "-an", "vgs/c")
    h1.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h1, "c", m)
    out, _ = h2.cli_ok("check", "vgs")
    assert "consistent" in out, out


def test_flatten_without_space_fails_and_is_not_tried_again(cluster):
    """A flatten whose copy finds no slab left fails with ENOSPC, keeps
    the clone reading through to its origin, and takes the clone's mark
    away: the next start of dlvmd does not try it again. Once there is
    room, the flatten runs."""
    (h1,) = cluster(1)
    m = filled_clone(h1, 32 * MiB, 44, ["c"], pool="96m")
    # b takes every slab left
    h1.cli_ok("lvcreate", "-V", "96m", "-T", "vgs/pool", "-n", "b")
    b, rnd = connect(h1, "vgs/b"), random.Random(45)
    with pytest.raises(nbd.Error, match="ENOSPC"):
        for off in range(0, 96 * MiB, MiB):
            b.pwrite(rnd.randbytes(MiB), off)
    assert off >= 8 * MiB, off
    b.flush()
    b.shutdown()
    rc, out, err = h1.cli("lvconvert", "--flatten", "vgs/c")
    assert rc != 0 and "vgs/c: flatten: Thin pool vgs/pool (96.00m) has no free slab " \
        "left: extend it (lvextend -L +SIZE vgs/pool)" in err, err
    assert lvs(h1)["c"]["origin"] == "s1"
    assert h1.stop() == 0
    h1.start()
    assert "going on with the flatten" not in ready_log(h1)
    out, _ = h1.cli_ok("jobs")
    assert len(out.splitlines()) == 1, out
    h1.cli_ok("lvchange", "-aey", "vgs/c")
    check_all(h1, "c", m)
    h1.cli_ok("lvremove", "-y", "vgs/b")
    out, _ = h1.cli_ok("lvconvert", "--flatten", "vgs/c")
    assert "vgs/c no longer depends on s1" in out, out
    check_all(h1, "c", m)
    out, _ = h1.cli_ok("check", "vgs")
    assert "consistent" in out, out
