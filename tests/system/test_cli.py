# SPDX-License-Identifier: MIT
"""The dlvm CLI and dlvmd's front end, end to end: every volume command and
its errors, report formats, option placement, the routing between daemon
and in-process runs, the control API, and data surviving a restart."""

import json
import os
import signal
import socket
import subprocess
import time

from conftest import (DLVMD, Dlvmd, UnixHTTPConnection, dlvm, dlvm_ok,
                      free_tcp_port, require_tool)

MiB = 1 << 20


def nbd_close(h):
    """Close a libnbd handle whose server may already have hung up."""
    try:
        h.shutdown()
    except Exception:
        pass
    del h


def lvs_json(d, *args):
    out, _ = d.cli_ok("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                      "-o", "lv_name,vg_name,lv_size,lv_attr", *args)
    doc = json.loads(out)
    return {r["lv_name"]: r for r in doc["report"][0]["lv"]}


def lv_size(d, vg, lv):
    return int(lvs_json(d)[lv]["lv_size"])


def export_size(d, name):
    require_tool("nbdinfo")
    p = subprocess.run(["nbdinfo", "--size", d.nbd_uri(name)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def export_names(d):
    require_tool("nbdinfo")
    p = subprocess.run(["nbdinfo", "--list", "--json",
                        f"nbd+unix://?socket={d.nbd_socket}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return {e["export-name"] for e in json.loads(p.stdout)["exports"]}


# ------------------------------------------------------------------ help

def test_version_and_help():
    rc, out, _ = dlvm("--version")
    assert rc == 0 and out.startswith("dlvm ")
    rc, out, _ = dlvm("help")
    assert rc == 0
    for cmd in ("pvcreate", "vgcreate", "lvcreate", "lvs", "lvchange", "check", "dump"):
        assert f"  {cmd} " in out
    rc, out, _ = dlvm("lvcreate", "--help")
    assert rc == 0 and "Usage: dlvm lvcreate" in out
    assert "-n, --name NAME" in out and "-L, --size" in out
    rc, out, _ = dlvm("help", "lvs")
    assert rc == 0 and "--reportformat" in out and "-o, --options" in out
    p = subprocess.run([str(DLVMD), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--state-dir" in p.stdout and "--nbd-listen" in p.stdout
    p = subprocess.run([str(DLVMD), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("dlvmd ")


def test_usage_errors(tmp_path):
    sock = tmp_path / "none.sock"
    cases = [
        (["frobnicate"], "unknown command 'frobnicate'"),
        ([], "no command given"),
        (["lvcreate", "--frobnicate", "vg0"], "unknown option '--frobnicate'"),
        (["lvcreate", "-X", "vg0"], "unknown option '-X'"),
        (["lvcreate", "vg0", "-n"], "option '-n' needs a value"),
        (["lvcreate", "vg0", "--name"], "option '--name' needs a value"),
        (["lvremove", "--force=yes", "vg0/a"], "option '--force' takes no value"),
        (["lvs", "--units", "x"], "--units: 'x'"),
        (["lvs", "--reportformat", "xml"], "--reportformat: 'xml'"),
        (["help", "frobnicate"], "unknown command 'frobnicate'"),
    ]
    for args, msg in cases:
        rc, out, err = dlvm(*args, socket=sock)
        assert rc == 3, (args, rc, err)
        assert msg in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert out == ""


def test_report_field_errors(vg0):
    rc, out, err = vg0.cli("lvs", "-o", "lv_name,frobnicate")
    assert rc == 3
    assert "Unrecognised field: frobnicate" in err
    assert "lv_name" in err and "lv_size" in err   # the valid ones are listed
    rc, _, err = vg0.cli("vgs", "-o", "+lv_size")
    assert rc == 3 and "Unrecognised field: lv_size" in err and "vg_name" in err


# --------------------------------------------------------------- volumes

def test_pv_and_vg_commands(daemon, tmp_path):
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    out, _ = daemon.cli_ok("pvcreate", "--size", "1G", a, b)
    assert "a.img" in out and "b.img" in out
    assert a.stat().st_size == 1 << 30
    # pvcreate refuses a device that already has a label, unless -f
    rc, _, err = daemon.cli("pvcreate", a)
    assert rc == 5 and err.startswith("  ")

    out, _ = daemon.cli_ok("pvs", "--reportformat", "json")
    pvs = json.loads(out)["report"][0]["pv"]
    assert {os.path.basename(p["pv_name"]) for p in pvs} >= {"a.img", "b.img"}

    daemon.cli_ok("vgcreate", "-s", "8m", "vgt", a)
    out, _ = daemon.cli_ok("vgs", "--reportformat", "json", "-o", "vg_name,pv_count",
                           "--units", "b")
    vgs = {r["vg_name"]: r for r in json.loads(out)["report"][0]["vg"]}
    assert vgs["vgt"]["pv_count"] == "1"
    rc, _, err = daemon.cli("vgcreate", "vgt", b)
    assert rc == 5 and "vgt" in err
    daemon.cli_ok("vgextend", "vgt", b)
    out, _ = daemon.cli_ok("vgs", "--noheadings", "-o", "vg_name,pv_count", "vgt")
    assert out.split() == ["vgt", "2"]
    daemon.cli_ok("vgreduce", "vgt", b)
    daemon.cli_ok("vgrename", "vgt", "vgu")
    rc, _, err = daemon.cli("vgs", "vgt")
    assert rc == 5 and "vgt" in err
    daemon.cli_ok("lvcreate", "-n", "x", "-L", "16m", "vgu")
    assert "vgu/x" in export_names(daemon)
    daemon.cli_ok("vgrename", "vgu", "vgv")
    assert "vgv/x" in export_names(daemon) and "vgu/x" not in export_names(daemon)
    rc, _, err = daemon.cli("vgremove", "vgv")     # has an LV: refused without -f
    assert rc == 5
    daemon.cli_ok("vgremove", "-f", "vgv")
    rc, _, _ = daemon.cli("vgs", "vgv")
    assert rc == 5
    daemon.cli_ok("pvremove", a, b)
    out, _ = daemon.cli_ok("pvs", "--reportformat", "json")
    names = {os.path.basename(p["pv_name"]) for p in json.loads(out)["report"][0]["pv"]}
    assert "a.img" not in names and "b.img" not in names


def test_lv_lifecycle(vg0):
    out, _ = vg0.cli_ok("lvcreate", "-n", "disk1", "-L", "256M", "vg0")
    assert "disk1" in out
    assert lv_size(vg0, "vg0", "disk1") == 256 * MiB
    assert export_size(vg0, "vg0/disk1") == 256 * MiB

    vg0.cli_ok("lvextend", "-L", "+128m", "vg0/disk1")
    assert lv_size(vg0, "vg0", "disk1") == 384 * MiB
    assert export_size(vg0, "vg0/disk1") == 384 * MiB   # new connections see it

    rc, _, err = vg0.cli("lvresize", "-L", "128m", "vg0/disk1")   # shrink needs -f
    assert rc == 5 and err.startswith("  ")
    assert lv_size(vg0, "vg0", "disk1") == 384 * MiB
    vg0.cli_ok("lvresize", "-f", "-L", "128m", "vg0/disk1")
    assert lv_size(vg0, "vg0", "disk1") == 128 * MiB

    vg0.cli_ok("lvrename", "vg0/disk1", "disk2")
    assert set(lvs_json(vg0)) == {"disk2"}
    assert "vg0/disk2" in export_names(vg0) and "vg0/disk1" not in export_names(vg0)

    vg0.cli_ok("lvchange", "-p", "r", "vg0/disk2")
    assert lvs_json(vg0)["disk2"]["lv_attr"][1] == "r"
    vg0.cli_ok("lvchange", "-p", "rw", "vg0/disk2")
    assert lvs_json(vg0)["disk2"]["lv_attr"][1] == "w"

    vg0.cli_ok("lvchange", "-an", "vg0/disk2")
    assert "vg0/disk2" not in export_names(vg0)
    assert lvs_json(vg0)["disk2"]["lv_attr"][4] != "a"
    vg0.cli_ok("lvchange", "-a", "y", "vg0/disk2")
    assert "vg0/disk2" in export_names(vg0)
    assert lvs_json(vg0)["disk2"]["lv_attr"][4] == "a"

    vg0.cli_ok("lvremove", "-f", "vg0/disk2")
    assert lvs_json(vg0) == {}
    assert "vg0/disk2" not in export_names(vg0)


def test_striped_lv(vg0):
    vg0.cli_ok("lvcreate", "-n", "st", "-L", "64m", "-i", "2", "-I", "64k", "vg0")
    out, _ = vg0.cli_ok("lvs", "--noheadings", "-o", "lv_name,seg_count,stripes",
                        "vg0/st")
    assert out.split()[0] == "st"
    assert out.split()[-1] == "2"
    # devices as LVM shows them: each stripe's PV and first extent
    vg0.cli_ok("lvcreate", "-n", "lin", "-L", "8m", "vg0")
    out, _ = vg0.cli_ok("lvs", "--reportformat", "json", "-o", "lv_name,devices", "vg0")
    devs = {r["lv_name"]: r["devices"] for r in json.loads(out)["report"][0]["lv"]}
    pvs = {str(p) for p in vg0.pvs}
    st = devs["st"].split(",")
    assert len(st) == 2 and {d.rsplit("(", 1)[0] for d in st} == pvs, devs
    assert all(d.endswith(")") and d.rsplit("(", 1)[1][:-1].isdigit() for d in st), devs
    assert devs["lin"].rsplit("(", 1)[0] in pvs and "," not in devs["lin"], devs


def test_options_anywhere(vg0):
    vg0.cli_ok("lvcreate", "vg0", "-L64M", "--name=a")
    vg0.cli_ok("lvcreate", "-n", "b", "-L", "32m", "vg0")
    vg0.cli_ok("lvcreate", "vg0", "--size", "16m", "-nc")
    vg0.cli_ok("lvcreate", "-l", "2", "vg0", "--name", "d")
    vg0.cli_ok("lvcreate", "-n", "e", "vg0", "-L", "8m", "--", )
    sizes = {k: int(v["lv_size"]) for k, v in lvs_json(vg0).items()}
    assert sizes == {"a": 64 * MiB, "b": 32 * MiB, "c": 16 * MiB, "d": 8 * MiB,
                     "e": 8 * MiB}
    # global options after the command, report options before the arguments
    rc, out, _ = dlvm("lvs", "--units", "m", "vg0", "--socket", vg0.socket,
                      "--noheadings", "-o", "lv_name,lv_size")
    assert rc == 0
    assert ("a", "64.00m") in [tuple(line.split()) for line in out.splitlines()]
    # DLVM_SOCKET finds the daemon too
    rc, out, _ = dlvm("lvs", "--noheadings", "-o", "name", env={"DLVM_SOCKET": str(vg0.socket)})
    assert rc == 0 and sorted(out.split()) == ["a", "b", "c", "d", "e"]


def test_lv_errors(vg0):
    vg0.cli_ok("lvcreate", "-n", "a", "-L", "64m", "vg0")
    cases = [
        (["lvcreate", "-n", "big", "-L", "100g", "vg0"], None),
        (["lvcreate", "-n", "a", "-L", "4m", "vg0"], "a"),
        (["lvcreate", "-n", "bad$name", "-L", "4m", "vg0"], "bad$name"),
        (["lvcreate", "-n", "x", "-L", "4q", "vg0"], "4q"),
        (["lvcreate", "-n", "x", "-L", "99999999999999999999", "vg0"], None),
        (["lvcreate", "-n", "x", "-L", "4m", "nosuchvg"], "nosuchvg"),
        (["lvextend", "-L", "+1m", "vg0/nosuchlv"], "nosuchlv"),
        (["lvextend", "-L", "+100g", "vg0/a"], None),
        (["lvremove", "vg0/nosuchlv"], "nosuchlv"),
        (["lvrename", "vg0/nosuchlv", "b"], "nosuchlv"),
        (["lvchange", "-p", "maybe", "vg0/a"], "maybe"),
        (["check", "nosuchvg"], "nosuchvg"),
    ]
    for args, word in cases:
        rc, out, err = vg0.cli(*args)
        assert rc == 5, (args, rc, out, err)
        assert err.startswith("  ") and err.strip(), (args, err)
        if word:
            assert word in err, (args, err)
    # nothing changed
    assert {k: int(v["lv_size"]) for k, v in lvs_json(vg0).items()} == {"a": 64 * MiB}
    rc, out, err = vg0.cli("check", "vg0")
    assert rc == 0, err


def test_lvremove_duplicate_argument(vg0):
    """The same LV twice (in any spelling) is refused before anything is
    removed, not removed and then reported missing."""
    vg0.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vg0")
    vg0.cli_ok("lvcreate", "-n", "b", "-L", "8m", "vg0")
    for args in (["vg0/a", "vg0/a"], ["vg0/b", "vg0/a", "/dev/vg0/a"]):
        rc, out, err = vg0.cli("lvremove", *args)
        assert rc == 5, (args, rc, out, err)
        assert "vg0/a" in err and "more than once" in err, err
        assert set(lvs_json(vg0)) == {"a", "b"}


def test_lvchange_snapshot_refused_before_any_change(vg0):
    """-p rw on an LV and a snapshot changes neither: the snapshot is
    refused while the arguments are checked."""
    vg0.cli_ok("lvcreate", "-n", "b", "-L", "8m", "-p", "r", "vg0")
    vg0.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "pool", "vg0")
    vg0.cli_ok("lvcreate", "-V", "64m", "-T", "vg0/pool", "-n", "t")
    vg0.cli_ok("lvcreate", "-s", "-n", "s", "vg0/t")
    rc, _, err = vg0.cli("lvchange", "-p", "rw", "vg0/b", "vg0/s")
    assert rc == 5 and "vg0/s is a snapshot and stays read-only" in err, err
    assert lvs_json(vg0)["b"]["lv_attr"][1] == "r"
    assert lvs_json(vg0)["s"]["lv_attr"][1] == "r"


def test_long_names_refused_not_truncated(vg0):
    """A name longer than 127 characters is refused wherever it is given,
    never cut to 127 (which could pick out another VG or LV)."""
    vg0.cli_ok("lvcreate", "-n", "b", "-L", "8m", "vg0")
    long_lv = "x" * 200
    for args in (["lvrename", "vg0", "b", long_lv], ["lvrename", "vg0/b", long_lv],
                 ["lvrename", "vg0", "b" + "y" * 200, "c"]):
        rc, _, err = vg0.cli(*args)
        assert rc == 5 and "longer than 127 characters" in err, (args, err)
    assert set(lvs_json(vg0)) == {"b"}

    vg127 = "v" * 127
    vg0.cli_ok("vgrename", "vg0", vg127)
    for args in (["lvcreate", "-L", "8m", "-n", "c", vg127 + "GARBAGE"],
                 ["lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "p",
                  vg127 + "GARBAGE"],
                 ["lvcreate", "-V", "64m", "--thinpool", "p", "-n", "t",
                  vg127 + "GARBAGE"],
                 ["lvrename", vg127 + "GARBAGE", "b", "c"]):
        rc, _, err = vg0.cli(*args)
        assert rc == 5 and "VG name" in err and "longer than 127" in err, (args, err)
    assert set(lvs_json(vg0)) == {"b"}


def test_cli_refuses_non_utf8(vg0):
    """An argument or option value that is not UTF-8 cannot go into the JSON
    request: the CLI says so and sends nothing, rather than dropping it."""
    vg0.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vg0")
    bad = "vg0/\udcff"   # the byte 0xff once encoded for the command line
    rc, _, err = vg0.cli("lvremove", "vg0/a", bad)
    assert rc == 3 and "argument 2 is not valid UTF-8" in err, (rc, err)
    rc, _, err = vg0.cli("lvcreate", "-L", "8m", "-n", "c", "vg0", str(vg0.pvs[1]) + "\udcff")
    assert rc == 3 and "argument 2 is not valid UTF-8" in err, (rc, err)
    rc, _, err = vg0.cli("lvcreate", "-L", "8m", "-n", "c\udcff", "vg0")
    assert rc == 3 and "option '--name' is not valid UTF-8" in err, (rc, err)
    assert set(lvs_json(vg0)) == {"a"}


def test_lvchange_refuses_with_clients(vg0):
    import nbd
    vg0.cli_ok("lvcreate", "-n", "busy", "-L", "16m", "vg0")
    h = nbd.NBD()
    h.connect_uri(vg0.nbd_uri("vg0/busy"))
    try:
        rc, _, err = vg0.cli("lvchange", "-an", "vg0/busy")
        assert rc == 5 and "busy" in err
        assert "vg0/busy" in export_names(vg0)
        vg0.cli_ok("lvchange", "-an", "--force", "vg0/busy")
        assert "vg0/busy" not in export_names(vg0)
    finally:
        nbd_close(h)


# --------------------------------------------------------------- reports

def test_report_formats(vg0):
    vg0.cli_ok("lvcreate", "-n", "disk1", "-L", "256m", "vg0")
    vg0.cli_ok("lvcreate", "-n", "longer_name", "-L", "1536m", "vg0")

    out, _ = vg0.cli_ok("lvs")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["LV", "VG", "Attr", "LSize"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["disk1"][3] == "256.00m" and rows["longer_name"][3] == "1.50g"
    # aligned columns: every line starts with two spaces, the VG column lines up
    assert all(line.startswith("  ") for line in lines)
    assert len({line.index(" vg0") for line in lines[1:]}) == 1

    out, _ = vg0.cli_ok("lvs", "--reportformat", "json")
    doc = json.loads(out)
    assert list(doc) == ["report"] and list(doc["report"][0]) == ["lv"]
    lv = {r["lv_name"]: r for r in doc["report"][0]["lv"]}
    assert lv["disk1"]["vg_name"] == "vg0"
    assert lv["disk1"]["lv_size"] == "256.00m"
    assert all(isinstance(v, str) for r in lv.values() for v in r.values())
    assert set(lv["disk1"]) == {"lv_name", "vg_name", "lv_attr", "lv_size"}

    out, _ = vg0.cli_ok("lvs", "-o", "+lv_uuid", "--reportformat", "json")
    row = json.loads(out)["report"][0]["lv"][0]
    assert list(row)[:4] == ["lv_name", "vg_name", "lv_attr", "lv_size"]
    assert len(row["lv_uuid"]) >= 32

    out, _ = vg0.cli_ok("lvs", "--units", "b", "-o", "lv_name,lv_size", "--noheadings",
                        "vg0/disk1")
    assert out.split() == ["disk1", "268435456B"]
    out, _ = vg0.cli_ok("lvs", "--units", "k", "--nosuffix", "-o", "lv_size",
                        "--noheadings", "vg0/disk1")
    assert out.split() == ["262144.00"]
    out, _ = vg0.cli_ok("lvs", "--units", "M", "-o", "name,size", "--noheadings",
                        "vg0/disk1")
    assert out.split() == ["disk1", "268.44M"]
    out, _ = vg0.cli_ok("lvs", "--units", "s", "-o", "size", "--noheadings", "vg0/disk1")
    assert out.split() == ["524288S"]
    out, _ = vg0.cli_ok("lvs", "--separator", ":", "--noheadings",
                        "-o", "lv_name,vg_name,lv_size", "vg0/disk1")
    assert out.strip() == "disk1:vg0:256.00m"

    out, _ = vg0.cli_ok("vgs", "--reportformat", "json", "--units", "b", "--nosuffix")
    vg = json.loads(out)["report"][0]["vg"][0]
    assert vg["vg_name"] == "vg0"
    assert int(vg["vg_size"]) <= 2 << 30 and int(vg["vg_free"]) < int(vg["vg_size"])
    out, _ = vg0.cli_ok("pvs", "--reportformat", "json")
    pvs = json.loads(out)["report"][0]["pv"]
    assert {os.path.basename(p["pv_name"]) for p in pvs} == {"pv0.img", "pv1.img"}
    assert {p["vg_name"] for p in pvs} == {"vg0"}


# --------------------------------------------------------------- routing

def test_routing_is_visible(vg0, tmp_path):
    rc, _, err = vg0.cli("-v", "lvs")
    assert rc == 0 and "ran in dlvmd" in err
    rc, _, err = dlvm("-v", "--socket", tmp_path / "nothing.sock", "--devices",
                      ",".join(map(str, vg0.pvs)), "lvs")
    assert "running in-process" in err


def test_offline_without_daemon(vg0, tmp_path):
    vg0.cli_ok("lvcreate", "-n", "online", "-L", "32m", "vg0")
    assert vg0.stop() == 0
    devices = ",".join(map(str, vg0.pvs))
    nosock = tmp_path / "nothing.sock"

    out, _ = dlvm_ok("--devices", devices, "lvs", "--noheadings", "-o", "lv_name",
                     socket=nosock)
    assert out.split() == ["online"]
    # the daemon's socket file is gone after a clean stop: found through the state dir
    assert not vg0.socket.exists()
    out, _ = dlvm_ok("lvs", "--noheadings", "-o", "lv_name", state_dir=vg0.state_dir)
    assert out.split() == ["online"]
    dlvm_ok("--devices", devices, "lvcreate", "-n", "offline", "-L", "16m", "vg0",
            socket=nosock)
    rc, _, err = dlvm("check", "vg0", "--devices", devices, socket=nosock)
    assert rc == 0, err

    vg0.start()
    assert set(lvs_json(vg0)) == {"online", "offline"}
    assert "vg0/offline" in export_names(vg0)   # autoactivated


def test_offline_devices_held_by_daemon(vg0, tmp_path):
    devices = ",".join(map(str, vg0.pvs))
    rc, out, err = dlvm("--devices", devices, "lvcreate", "-n", "x", "-L", "4m", "vg0",
                        socket=tmp_path / "nothing.sock")
    assert rc == 5
    assert any(w in err.lower() for w in ("lock", "in use", "busy", "dlvmd")), err
    assert "x" not in lvs_json(vg0)


def test_dump_runs_in_process(vg0):
    assert vg0.stop() == 0
    rc, out, err = dlvm("dump", vg0.pvs[0], socket=vg0.socket)
    assert rc == 0, err
    assert "vg0" in out
    rc, out, err = dlvm("dump", vg0.pvs[0].parent / "nosuch.img", socket=vg0.socket)
    assert rc == 5 and "nosuch.img" in err


# --------------------------------------------------------------- the API

def test_control_api(vg0, tmp_path):
    not_pv = tmp_path / "not-a-pv"
    not_pv.write_bytes(b"\x01" * 65536)
    status, body = vg0.api("GET", "/v1/health")
    assert status == 200 and body == {"status": "ok", "pid": vg0.proc.pid}

    status, body = vg0.api("POST", "/v1/cmd/lvcreate",
                           {"opts": {"name": "api1", "size": "8m"}, "args": ["vg0"]})
    assert status == 200 and body["messages"]
    status, body = vg0.api("POST", "/v1/cmd/lvs", {"args": ["vg0/api1"]})
    assert status == 200
    assert body["report"]["kind"] == "lv"
    assert body["report"]["rows"][0]["lv_size"] == 8 * MiB

    a_dir = tmp_path / "a_dir"  # in the PV directory conftest gives dlvmd
    a_dir.mkdir()
    expect = [
        ("POST", "/v1/cmd/lvcreate", {"opts": {"name": "api1", "size": "8m"},
                                      "args": ["vg0"]}, 409, "EEXIST"),
        ("POST", "/v1/cmd/lvcreate", {"opts": {"name": "huge", "size": "100g"},
                                      "args": ["vg0"]}, 507, "ENOSPC"),
        ("POST", "/v1/cmd/lvremove", {"args": ["vg0/nosuch"]}, 404, "ENOENT"),
        ("POST", "/v1/cmd/lvcreate", {"opts": {"frobnicate": True}, "args": ["vg0"]},
         400, "EINVAL"),
        ("POST", "/v1/cmd/frobnicate", {}, 404, "ENOENT"),
        # bad paths in the request are the client's error, not the server's
        ("POST", "/v1/cmd/dump", {"args": [str(not_pv)]}, 400, "ENODATA"),
        ("POST", "/v1/cmd/pvcreate", {"args": [str(a_dir)]}, 400, "EISDIR"),
        ("POST", "/v1/cmd/lvs%00x", {}, 404, "ENOENT"),   # no NUL cuts the name short
        ("POST", "/v1/cmd/%6Cvs%00", {}, 404, "ENOENT"),
        ("GET", "/v1/cmd/lvs", None, 405, None),
        ("POST", "/v1/health", {}, 405, None),
        ("GET", "/v2/whatever", None, 404, None),
    ]
    for method, path, req, want, code in expect:
        status, body = vg0.api(method, path, req)
        assert status == want, (path, req, status, body)
        assert body["error"]["message"], body
        if code:
            assert body["error"]["code"] == code, body
            assert body["error"]["errno"] > 0
        assert isinstance(body["warnings"], list)

    status, body = vg0.api("POST", "/v1/cmd/lvs", raw=b'{"opts": ')
    assert status == 400 and "JSON" in body["error"]["message"]
    status, body = vg0.api("POST", "/v1/cmd/lvs", raw=b'[1, 2]')
    assert status == 400 and "object" in body["error"]["message"]

    # a body over 1 MiB is refused without reading it all
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(vg0.socket))
    s.sendall(b"POST /v1/cmd/lvs HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    reply = s.recv(65536).decode()
    s.close()
    assert reply.startswith("HTTP/1.1 413"), reply
    # and a chunked one that grows too large is refused at its end
    conn = UnixHTTPConnection(vg0.socket)
    conn.putrequest("POST", "/v1/cmd/lvs")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 65536
    for _ in range(20):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 413
    conn.close()

    # the daemon still works
    status, _ = vg0.api("GET", "/v1/health")
    assert status == 200


def test_daemon_error_is_not_a_fallback(vg0):
    """An error from a running daemon is reported, never retried in-process."""
    rc, _, err = vg0.cli("-v", "lvremove", "vg0/nosuch")
    assert rc == 5 and "ran in dlvmd" in err and "in-process" not in err


# --------------------------------------------------------------- dlvmd

def test_daemon_state_dir_and_devices(tmp_path, pv):
    a = pv("a.img")
    st = tmp_path / "new" / "state"
    d = Dlvmd(st, devices=[a])
    d.start()
    try:
        assert (st / "devices").read_text().splitlines() == [str(a)]
        # a second daemon on the same state directory is refused
        p = subprocess.run(d.command(), capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "another dlvmd" in p.stderr
    finally:
        assert d.stop() == 0
    # devices persist; giving one again does not duplicate it
    d2 = Dlvmd(st, devices=[a])
    d2.start()
    assert d2.stop() == 0
    assert (st / "devices").read_text().splitlines() == [str(a)]
    log = d.read_log()
    assert "dlvmd: stopped" in log


def test_nbd_tcp_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([str(DLVMD), "--state-dir", tmp_path / "st",
                            "--nbd-listen", f"127.0.0.1:{port}", "--tls", "off"],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "in use" in p.stderr.lower(), p.stderr
    assert not (tmp_path / "st" / "dlvmd.sock").exists()


def test_nbd_over_tcp(vg0, tmp_path):
    require_tool("nbdinfo")
    vg0.cli_ok("lvcreate", "-n", "t", "-L", "12m", "vg0")
    assert vg0.stop() == 0
    port = free_tcp_port()
    d = Dlvmd(vg0.state_dir, nbd_listen=f"127.0.0.1:{port}", extra=["--tls", "off"])
    d.start()
    try:
        p = subprocess.run(["nbdinfo", "--size", f"nbd://127.0.0.1:{port}/vg0/t"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and int(p.stdout) == 12 * MiB, p.stderr
    finally:
        assert d.stop() == 0


def test_config_file(vg0, tmp_path):
    assert vg0.stop() == 0
    cfg = tmp_path / "dlvmd.ini"
    cfg.write_text(f"# dlvmd settings\n[dlvmd]\nstate_dir = {vg0.state_dir}\n"
                   "nbd_listen = none\n")
    p = subprocess.Popen([str(DLVMD), "--config", str(cfg)], stderr=subprocess.PIPE,
                         text=True)
    try:
        for _ in range(200):
            if vg0.socket.exists():
                break
            time.sleep(0.05)
        status, body = vg0.api("GET", "/v1/health")
        assert status == 200 and body["pid"] == p.pid
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 0
    assert "SIGINT" in p.stderr.read()

    bad = tmp_path / "bad.ini"
    bad.write_text("state_dir = /tmp/x\nfrobnicate = 1\n")
    p = subprocess.run([str(DLVMD), "--config", str(bad)], capture_output=True, text=True)
    assert p.returncode != 0 and "bad.ini:2" in p.stderr and "frobnicate" in p.stderr
    p = subprocess.run([str(DLVMD)], capture_output=True, text=True)
    assert p.returncode == 2 and "--state-dir" in p.stderr
    p = subprocess.run([str(DLVMD), "--frobnicate"], capture_output=True, text=True)
    assert p.returncode == 2


def test_dlvmd_refused_startup_exit_status(tmp_path):
    """A refused command line or config file exits 2 or 1, as documented; in
    the sanitizer build a leaked option string would change that."""
    bad = tmp_path / "bad.ini"
    bad.write_text("state_dir = st\nbogus = 1\n")
    for args, want in ((["--state-dir", "st", "--nbd-listen", "none", "--bogus"], 2),
                       (["--state-dir", "st", "--nbd-listen", "none", "extra"], 2),
                       (["--state-dir", ""], 2),
                       (["--config", str(bad)], 1)):
        p = subprocess.run([str(DLVMD), *args], capture_output=True, text=True,
                           cwd=tmp_path)
        assert p.returncode == want, (args, p.returncode, p.stderr)
        assert "Sanitizer" not in p.stderr, (args, p.stderr)


def test_data_survives_restart(vg0, tmp_path):
    require_tool("qemu-io")
    require_tool("nbdcopy")
    vg0.cli_ok("lvcreate", "-n", "data", "-L", "40m", "-i", "2", "vg0")
    uri = vg0.nbd_uri("vg0/data")
    p = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xa5 12345 777777",
                        "-c", "write -P 0x3c 33554431 4097", uri],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "wrote 777777" in p.stdout, p.stdout + p.stderr

    lv_copy = tmp_path / "copy.bin"

    vg0.restart()

    p = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0xa5 12345 777777",
                        "-c", "read -P 0x3c 33554431 4097", "-c", "read -P 0 0 12345",
                        uri], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Pattern verification failed" not in p.stdout + p.stderr
    assert p.stdout.count("read ") == 3

    # a whole-volume round trip through nbdcopy
    img = tmp_path / "img.bin"
    img.write_bytes(os.urandom(40 * MiB))
    subprocess.run(["nbdcopy", img, uri], check=True, timeout=120)
    vg0.restart()
    subprocess.run(["nbdcopy", uri, lv_copy], check=True, timeout=120)
    assert lv_copy.read_bytes() == img.read_bytes()


def test_sigterm_waits_for_clients(vg0, tmp_path):
    import nbd
    vg0.cli_ok("lvcreate", "-n", "w", "-L", "8m", "vg0")
    h = nbd.NBD()
    h.connect_uri(vg0.nbd_uri("vg0/w"))
    h.pwrite(b"\x5a" * 65536, 4096)
    assert vg0.stop() == 0
    log = vg0.read_log()
    assert "SIGTERM" in log and "dlvmd: stopped" in log
    nbd_close(h)
    vg0.start()
    h = nbd.NBD()
    h.connect_uri(vg0.nbd_uri("vg0/w"))
    assert h.pread(65536, 4096) == b"\x5a" * 65536
    nbd_close(h)


def test_sighup_is_logged_and_changes_nothing(vg0):
    """SIGHUP (a closed terminal, a habit from daemons that reload) used to
    end dlvmd at once, without its clean stop; now it is said in the log."""
    vg0.cli_ok("lvcreate", "-n", "h", "-L", "8m", "vg0")
    vg0.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP: nothing to reload" not in vg0.read_log():
        assert time.monotonic() < deadline, vg0.read_log()
        time.sleep(0.05)
    assert vg0.proc.poll() is None
    out, _ = vg0.cli_ok("lvs", "--noheadings", "-o", "lv_name", "vg0/h")
    assert out.strip() == "h"
    assert vg0.stop() == 0
    assert "dlvmd: stopped" in vg0.read_log()
