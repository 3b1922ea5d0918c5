"""Shared VGs, phase 1: several dlvmd processes (different state dirs and
host ids, io_timeout 1 s) on the same PV files join the VG's lockspace and
change its metadata under the VG lease."""
import fcntl
import json
import random
import subprocess
import threading
import time

import pytest

from conftest import DLVMD, Dlvmd, dlvm, dlvm_ok, stop_clean

IO_TIMEOUT = 1


@pytest.fixture
def shared_pvs(tmp_path, pv):
    """Two PVs holding the shared VG vgs, made offline."""
    a = pv("pv0.img", size="512M")
    b = pv("pv1.img", size="512M")
    dlvm_ok("--devices", f"{a},{b}", "vgcreate", "--shared", "--max-hosts", "8", "vgs", a, b,
            socket=tmp_path / "no-daemon.sock", state_dir=tmp_path / "offline")
    return [a, b]


def host(tmp_path, pvs, host_id, extra=()):
    args = ["--io-timeout", str(IO_TIMEOUT)]
    if host_id:
        args += ["--host-id", str(host_id)]
    return Dlvmd(tmp_path / f"h{host_id}", devices=pvs, extra=args + list(extra))


@pytest.fixture
def cluster(tmp_path, shared_pvs):
    """start(n) -> n joined hosts (host ids 1..n); all stopped at the end."""
    started = []

    def start(n):
        hs = [host(tmp_path, shared_pvs, i + 1) for i in range(n)]
        for h in hs:
            h.start()
            started.append(h)
        return hs
    yield start
    for h in started:
        if h.proc and h.proc.poll() is None:
            stop_clean(h)


def report(d, cmd, *args):
    out, _ = d.cli_ok(cmd, "--reportformat", "json", *args)
    return json.loads(out)["report"][0]


def hosts(d):
    return {int(r["host_id"]): r for r in report(d, "hosts", "vgs", "-o",
                                                   "host_id,host_name,host_state,"
                                                   "host_generation,host_this")["host"]}


def lv_sizes(d):
    rows = report(d, "lvs", "-o", "lv_name,lv_size", "--units", "b", "vgs")["lv"]
    return {r["lv_name"]: r["lv_size"] for r in rows}


def offline(tmp_path, pvs, *args):
    return dlvm("--devices", ",".join(map(str, pvs)), *args,
                socket=tmp_path / "no-daemon.sock", state_dir=tmp_path / "offline")


def test_join_and_see_changes(cluster, shared_pvs, tmp_path):
    hs = cluster(3)
    for i, h in enumerate(hs):
        view = hosts(h)
        assert sorted(view) == [1, 2, 3]
        assert all(r["host_state"] == "live" for r in view.values())
        assert [k for k, r in view.items() if r["host_this"] == "yes"] == [i + 1]
        assert view[i + 1]["host_name"].endswith(f"h{i + 1}")
    out, _ = hs[0].cli_ok("lvcreate", "-n", "a", "-L", "8m", "vgs")
    assert "not activated" not in out
    assert lv_sizes(hs[1]) == {"a": "8388608B"}
    hs[2].cli_ok("lvextend", "-L", "+4m", "vgs/a")
    assert lv_sizes(hs[0]) == {"a": "12582912B"}
    # the lockspace LV: hidden unless -a, and left alone
    out, _ = hs[1].cli_ok("lvs", "-a", "vgs")
    assert "[lvmlock]" in out
    out, _ = hs[1].cli_ok("lvs", "vgs")
    assert "lvmlock" not in out
    for args in (["lvremove", "-f", "vgs/lvmlock"], ["lvrename", "vgs/lvmlock", "x"],
                 ["lvextend", "-L", "+4m", "vgs/lvmlock"]):
        rc, _, err = hs[0].cli(*args)
        assert rc != 0 and "holds the lease area of shared VG vgs" in err, err
    # created active, exclusively on host 1
    rc, _, err = hs[1].cli("lvchange", "-ay", "vgs/a")
    assert rc != 0 and "vgs/a: active exclusively on host id 1" in err, err
    rc, _, err = hs[0].cli("vgremove", "-f", "vgs")
    assert rc != 0 and "still in the lockspace" in err
    out, _ = hs[0].cli_ok("check", "vgs")


def churn(h, idx, nops, seed, acked, errors):
    rnd = random.Random(seed)
    mine = {}
    for k in range(nops):
        op = rnd.choice(["create", "create", "extend", "remove"]) if mine else "create"
        if op == "create":
            name = f"h{idx}_{k}"
            req = {"opts": {"name": name, "size": "4m"}, "args": ["vgs"]}
            status, body = h.api("POST", "/v1/cmd/lvcreate", req)
            if status == 200:
                mine[name] = 4
        elif op == "extend":
            name = rnd.choice(sorted(mine))
            status, body = h.api("POST", "/v1/cmd/lvextend",
                                 {"opts": {"size": "+4m"}, "args": [f"vgs/{name}"]})
            if status == 200:
                mine[name] += 4
        else:
            name = rnd.choice(sorted(mine))
            status, body = h.api("POST", "/v1/cmd/lvremove",
                                 {"opts": {"force": True}, "args": [f"vgs/{name}"]})
            if status == 200:
                del mine[name]
        if status != 200:
            errors.append((idx, op, status, body))
    acked[idx] = mine


def test_concurrent_changes_lose_nothing(cluster):
    hs = cluster(4)
    acked, errors = {}, []
    threads = [threading.Thread(target=churn, args=(h, i, 125, 1000 + i, acked, errors))
               for i, h in enumerate(hs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:5]
    want = {name: f"{mb << 20}B" for m in acked.values() for name, mb in m.items()}
    views = [lv_sizes(h) for h in hs]
    for v in views:
        assert v == want
    for h in hs:
        out, _ = h.cli_ok("check", "vgs")  # exits non-zero on any problem
        assert "metadata and extents" in out, out


def test_host_id_in_use(cluster, shared_pvs, tmp_path):
    cluster(1)
    other = host(tmp_path, shared_pvs, 1)
    other.state_dir = tmp_path / "other"
    p = subprocess.run(other.command(), capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "host id 1 is held by host" in p.stderr and "h1" in p.stderr, p.stderr


def test_dead_host_and_rejoin(cluster):
    h1, h2 = cluster(2)
    gen = hosts(h1)[2]["host_generation"]
    time.sleep(1.5)  # h2 renews a few times: the kill is what stops it
    t0 = time.monotonic()
    h2.kill()
    seen = {}
    while time.monotonic() - t0 < 10 and "dead" not in seen:
        state = hosts(h1)[2]["host_state"]
        seen.setdefault(state, time.monotonic() - t0)
        time.sleep(0.1)
    assert "fail" in seen and "dead" in seen, seen
    # F = 3T, D = 5T after h1 first saw h2's last renewal, which landed up
    # to one renew interval (T/2) before the kill and was seen up to T/2 after
    assert 2.0 <= seen["fail"] <= 4.0, seen
    assert 4.0 <= seen["dead"] <= 6.0, seen
    # the same state dir rejoins at once: no wait for the dead-host time
    t1 = time.monotonic()
    h2.start()
    assert time.monotonic() - t1 < 4.5
    view = hosts(h1)
    time.sleep(1)
    view = hosts(h1)
    assert view[2]["host_state"] == "live" and view[2]["host_generation"] > gen
    h2.cli_ok("lvcreate", "-n", "after", "-L", "4m", "vgs")
    assert "after" in lv_sizes(h1)


def test_without_host_id_and_offline(cluster, shared_pvs, tmp_path):
    # offline: reports work, changes are refused
    rc, out, err = offline(tmp_path, shared_pvs, "lvcreate", "-n", "x", "-L", "4m", "vgs")
    assert rc != 0 and "shared VG vgs: needs a running dlvmd with --host-id" in err
    rc, out, err = offline(tmp_path, shared_pvs, "vgs", "vgs")
    assert rc == 0 and "vgs" in out
    # a dlvmd without a host id loads the VG read-only
    ro = host(tmp_path, shared_pvs, 0)
    ro.start()
    try:
        rc, _, err = ro.cli("lvcreate", "-n", "x", "-L", "4m", "vgs")
        assert rc != 0 and "vgs: shared VG: start dlvmd with --host-id to change it" in err
        ro.cli_ok("lvs", "vgs")
    finally:
        stop_clean(ro)
    # a host that stops releases its host id
    (h1,) = cluster(1)
    stop_clean(h1)
    rc, out, err = offline(tmp_path, shared_pvs, "hosts", "vgs", "--reportformat", "json")
    assert rc == 0, err
    rows = json.loads(out)["report"][0]["host"]
    assert [(int(r["host_id"]), r["host_state"]) for r in rows] == [(1, "free")]


def test_vgremove_shared(cluster):
    (h1,) = cluster(1)
    h1.cli_ok("lvcreate", "-n", "a", "-L", "4m", "vgs")
    h1.cli_ok("vgremove", "-f", "vgs")
    out, _ = h1.cli_ok("vgs")
    assert "vgs" not in out


def lease_area_offset(path):
    data = path.read_bytes()
    off = data.find(b"dlvm.lsa")
    assert off > 0 and off % 4096 == 0
    return off


def test_damaged_lease_area_is_refused(tmp_path, shared_pvs):
    a = shared_pvs[0]
    off = lease_area_offset(a)
    with open(a, "r+b") as f:
        f.seek(off + 200)  # a reserved byte: the CRC no longer matches
        f.write(b"\x01")
        f.seek(off)
        before = f.read(1 << 20)
    h = host(tmp_path, shared_pvs, 1)
    h.start()
    try:
        assert f"lease area at offset {off}" in h.read_log()
        rc, _, err = h.cli("lvcreate", "-n", "x", "-L", "4m", "vgs")
        assert rc != 0 and f"lease area at offset {off}" in err, err
        assert "refused" in err
    finally:
        stop_clean(h)
    with open(a, "rb") as f:
        f.seek(off)
        assert f.read(1 << 20) == before


def test_vgextend_shared_drops_the_flock(tmp_path, shared_pvs, pv):
    c = pv("pv2.img", size="256M")
    h1 = host(tmp_path, shared_pvs + [c], 1)
    h1.start()
    try:
        h1.cli_ok("vgextend", "vgs", c)
        # every host opens the PVs of a shared VG: this one holds no flock
        # on the new PV any more
        with open(c, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        out, _ = h1.cli_ok("vgs", "-o", "pv_count", "--noheadings", "vgs")
        assert out.strip() == "3"
    finally:
        stop_clean(h1)


def test_sigterm_while_joining(tmp_path, shared_pvs):
    """A dlvmd told to stop while it joins a lockspace (a join waits 2T,
    20 s at io_timeout 10) stops at once, exits 0 and gives back the host
    id it wrote: another dlvmd takes that id without waiting for it to be
    dead (5T)."""
    d = Dlvmd(tmp_path / "h1", devices=shared_pvs,
              extra=["--io-timeout", "10", "--host-id", "1"])
    d.state_dir.mkdir(parents=True, exist_ok=True)
    d.log = open(d.log_path, "a")
    d.proc = subprocess.Popen(d.command(), stdout=d.log, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    assert d.proc.poll() is None, d.read_log()
    t0 = time.monotonic()
    assert d.stop(timeout=15) == 0
    assert time.monotonic() - t0 < 3, "the join was not interrupted"
    log = d.read_log()
    assert "SIGTERM: shutting down while starting" in log and "dlvmd: stopped" in log, log
    assert "joined as host id 1" not in log, log
    h2 = Dlvmd(tmp_path / "other", devices=shared_pvs,
               extra=["--io-timeout", str(IO_TIMEOUT), "--host-id", "1"])
    t1 = time.monotonic()
    h2.start(timeout=30)
    assert time.monotonic() - t1 < 10, "the host id was not given back"
    stop_clean(h2)
