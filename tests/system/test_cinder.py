# SPDX-License-Identifier: MIT
"""The Cinder v3 API of dlvmd (docs/api.md), driven by the real clients:
the cinder CLI (python3-cinderclient) and the openstack CLI
(python3-openstackclient) with noauth, raw HTTP for what the CLIs do not
show (microversions, paging, malformed bodies), nbdcopy through the
connection_info of attachments, and a restart that must keep every name,
metadata and attachment (they are LV properties in the VG journal)."""

import http.client
import json
import os
import re
import subprocess
import uuid

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, free_tcp_port, require_tool, stop_clean

PROJECT = "demo"
INSTANCE = "11111111-2222-3333-4444-555555555555"


class Cinder:
    """dlvmd serving the Cinder API on a free port, volumes in vg0/pool0."""

    def __init__(self, daemon, port):
        self.d = daemon
        self.port = port

    def env(self, project=PROJECT):
        e = dict(os.environ)
        e.update(OS_AUTH_TYPE="noauth", OS_USER_ID="admin", OS_PROJECT_ID=project,
                 CINDER_ENDPOINT=f"http://127.0.0.1:{self.port}/v3")
        return e

    def cli(self, *args, version=None, project=PROJECT):
        cmd = [require_tool("cinder")]
        if version:
            cmd += ["--os-volume-api-version", version]
        p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                           env=self.env(project), timeout=120)
        return p.returncode, p.stdout, p.stderr

    def cli_ok(self, *args, **kw):
        rc, out, err = self.cli(*args, **kw)
        assert rc == 0, f"cinder {' '.join(map(str, args))}: rc={rc}\n{out}\n{err}"
        return out

    def openstack(self, *args, project=PROJECT):
        cmd = [require_tool("openstack"), "--os-auth-type", "none", "--os-endpoint",
               f"http://127.0.0.1:{self.port}/v3/{project}"]
        p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"openstack {args}: {p.stdout}\n{p.stderr}"
        return p.stdout

    def http(self, method, path, body=None, raw=None, version=None, project=PROJECT):
        """(status, headers, parsed JSON or None); path is under /v3/PROJECT
        unless it starts with '/'."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        url = path if path.startswith("/") else f"/v3/{project}/{path}"
        headers = {"Content-Type": "application/json", "X-Auth-Token": "admin:" + project}
        if version:
            headers["OpenStack-API-Version"] = f"volume {version}"
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        try:
            conn.request(method, url, body=data, headers=headers)
            r = conn.getresponse()
            text = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, \
                (json.loads(text) if text else None)
        finally:
            conn.close()

    def create(self, name, size=1, **more):
        st, _, b = self.http("POST", "volumes", {"volume": dict(name=name, size=size, **more)})
        assert st == 202, b
        return b["volume"]

    def show(self, vid, version=None, project=PROJECT):
        st, _, b = self.http("GET", f"volumes/{vid}", version=version, project=project)
        assert st == 200, b
        return b["volume"]


def table_value(out, prop):
    """The value of row `prop` of a cinder property table."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] == prop:
            return cells[2]
    raise AssertionError(f"no {prop} in:\n{out}")


def cinder_error(b, name, code):
    assert list(b) == [name], b
    assert b[name]["code"] == code, b
    return b[name]["message"]


@pytest.fixture
def cinder(tmp_path, state_dir, pv):
    a = pv("pv0.img", state_dir=state_dir)
    nd = tmp_path / "no-daemon.sock"
    dlvm_ok("vgcreate", "vg0", a, socket=nd, state_dir=state_dir)
    dlvm_ok("lvcreate", "--type", "thin-pool", "-L", "512m", "-n", "pool0", "vg0", socket=nd,
            state_dir=state_dir)
    port = free_tcp_port()
    d = Dlvmd(state_dir, devices=[a], extra=["--cinder-pool", "vg0/pool0", "--cinder-listen",
                                             f"127.0.0.1:{port}"])
    d.pvs = [a]
    d.start()
    yield Cinder(d, port)
    stop_clean(d)


def test_versions_and_microversions(cinder):
    st, h, b = cinder.http("GET", "/")
    assert st == 300
    v = b["versions"][0]
    assert (v["id"], v["min_version"], v["version"], v["status"]) == \
        ("v3.0", "3.0", "3.54", "CURRENT")
    st, h, b = cinder.http("GET", "/v3/")
    assert st == 200 and b["versions"][0]["version"] == "3.54"
    st, h, _ = cinder.http("GET", "volumes")
    assert st == 200 and h["openstack-api-version"] == "volume 3.0"
    st, h, _ = cinder.http("GET", "volumes", version="3.27")
    assert h["openstack-api-version"] == "volume 3.27"
    st, h, _ = cinder.http("GET", "volumes", version="latest")
    assert h["openstack-api-version"] == "volume 3.54"
    st, h, b = cinder.http("GET", "volumes", version="3.99")
    assert st == 406 and "maximum is 3.54" in b["computeFault"]["message"]
    st, h, b = cinder.http("GET", "volumes", version="three")
    assert st == 400 and "invalid format" in cinder_error(b, "badRequest", 400)
    # a request id in every answer, each its own, and in the log
    ids = set()
    for path in ("/", "volumes", "nothing-here/x", "types"):
        _, h, _ = cinder.http("GET", path)
        assert re.fullmatch(r"req-[0-9a-f-]{36}", h["x-openstack-request-id"]), h
        ids.add(h["x-openstack-request-id"])
    assert len(ids) == 4
    for i in ids:
        assert i in cinder.d.read_log()
    # the one volume type, found by name, id and as the default
    st, _, b = cinder.http("GET", "types")
    (t,) = b["volume_types"]
    assert t["name"] == "dlvm" and t["extra_specs"]["volume_backend_name"] == "vg0/pool0"
    for key in (t["id"], "dlvm", "default"):
        st, _, b = cinder.http("GET", f"types/{key}")
        assert st == 200 and b["volume_type"]["id"] == t["id"]
    st, _, b = cinder.http("GET", "types/other")
    assert st == 404 and "could not be found" in cinder_error(b, "itemNotFound", 404)
    # URLs without a project id (cinderclient's X-Project-Id) work too
    cinder.create("p1")
    conn = http.client.HTTPConnection("127.0.0.1", cinder.port, timeout=30)
    conn.request("GET", "/v3/volumes", headers={"X-Project-Id": PROJECT})
    r = conn.getresponse()
    assert r.status == 200 and [v["name"] for v in json.loads(r.read())["volumes"]] == ["p1"]
    conn.close()


def test_limits_extensions_zones(cinder):
    cinder.create("a", 2)
    cinder.create("b", 3)
    out = cinder.cli_ok("absolute-limits")
    assert table_value(out, "totalVolumesUsed") == "2"
    assert table_value(out, "totalGigabytesUsed") == "5"
    assert table_value(out, "maxTotalVolumes") == "-1"
    st, _, b = cinder.http("GET", "limits", project="other")
    assert st == 200 and b["limits"]["absolute"]["totalVolumesUsed"] == 0
    assert "nova" in cinder.cli_ok("availability-zone-list")
    assert cinder.http("GET", "extensions")[2] == {"extensions": []}


def test_cinder_cli_volume_lifecycle(cinder):
    out = cinder.cli_ok("create", "--name", "data1", "2")
    vid = table_value(out, "id")
    assert table_value(out, "status") == "available" and table_value(out, "size") == "2"
    out = cinder.cli_ok("list")
    assert vid in out and "data1" in out and "available" in out
    out = cinder.cli_ok("show", "data1")
    assert table_value(out, "os-vol-tenant-attr:tenant_id") == PROJECT
    assert table_value(out, "volume_type") == "dlvm"
    assert table_value(out, "os-vol-host-attr:host").endswith("@dlvm#vg0/pool0")
    cinder.cli_ok("rename", "data1", "data-one", "--description", "first volume")
    cinder.cli_ok("metadata", "data-one", "set", "k1=v1", "k2=v two")
    cinder.cli_ok("metadata", "data-one", "unset", "k1")
    v = cinder.show(vid)
    assert (v["name"], v["description"], v["metadata"]) == \
        ("data-one", "first volume", {"k2": "v two"})
    cinder.cli_ok("extend", "data-one", "3")
    assert cinder.show(vid)["size"] == 3
    rc, out, err = cinder.cli("extend", "data-one", "2")
    assert rc != 0 and "must be greater than current size" in out + err

    out = cinder.cli_ok("snapshot-create", "--name", "s1", "data-one")
    sid = table_value(out, "id")
    assert table_value(out, "volume_id") == vid and table_value(out, "size") == "3"
    assert "s1" in cinder.cli_ok("snapshot-list")
    cinder.cli_ok("snapshot-rename", "s1", "s1b")
    cinder.cli_ok("snapshot-metadata", "s1b", "set", "sk=sv")
    st, _, b = cinder.http("GET", f"snapshots/{sid}", version="3.41")
    s = b["snapshot"]
    assert (s["name"], s["metadata"], s["user_id"], s["status"]) == \
        ("s1b", {"sk": "sv"}, "admin", "available")
    # a volume from the snapshot, larger; a volume from a volume
    out = cinder.cli_ok("create", "--snapshot-id", sid, "--name", "data2", "4")
    v2 = table_value(out, "id")
    assert table_value(out, "snapshot_id") == sid and cinder.show(v2)["size"] == 4
    out = cinder.cli_ok("create", "--source-volid", vid, "--name", "data3", "3")
    assert table_value(out, "source_volid") == vid

    # a volume with snapshots is kept unless cascade
    rc, out, err = cinder.cli("delete", "data-one")
    assert rc != 0 and "dependent snapshots" in out + err, err
    rc, out, err = cinder.cli("snapshot-delete", "s1b")
    assert rc != 0, "a snapshot a clone reads through must stay"
    cinder.cli_ok("delete", "data2")
    cinder.cli_ok("snapshot-delete", "s1b")
    cinder.cli_ok("delete", "data-one", "data3")
    assert cinder.http("GET", "volumes")[2]["volumes"] == []
    assert cinder.http("GET", "snapshots")[2]["snapshots"] == []
    out, _ = cinder.d.cli_ok("lvs", "vg0")
    assert "volume-" not in out and "snap-" not in out


def test_openstack_cli(cinder):
    out = cinder.openstack("volume", "create", "--size", "1", "--description", "d",
                           "--property", "a=b", "osvol", "-f", "json")
    v = json.loads(out)
    assert (v["name"], v["size"], v["status"], v["properties"]) == ("osvol", 1, "available",
                                                                     {"a": "b"})
    assert "osvol" in cinder.openstack("volume", "list")
    cinder.openstack("volume", "set", "--name", "osvol2", "--property", "c=d", "osvol")
    v = json.loads(cinder.openstack("volume", "show", "osvol2", "-f", "json"))
    assert v["properties"] == {"a": "b", "c": "d"}
    cinder.openstack("volume", "snapshot", "create", "--volume", "osvol2", "ossnap")
    assert "ossnap" in cinder.openstack("volume", "snapshot", "list")
    cinder.openstack("volume", "snapshot", "delete", "ossnap")
    cinder.openstack("volume", "delete", "osvol2")
    assert "osvol2" not in cinder.openstack("volume", "list")


def test_attachments_ro_and_rw_with_data(cinder, tmp_path):
    nbdcopy = require_tool("nbdcopy")
    rw = cinder.create("rw-vol")["id"]
    ro = cinder.create("ro-vol")["id"]
    out = cinder.cli_ok("attachment-create", "--connect", "True", rw, INSTANCE,
                        version="3.54")
    rw_att = table_value(out, "id")
    assert table_value(out, "attach_mode") == "rw"
    out = cinder.cli_ok("attachment-create", "--connect", "True", "--mode", "ro", ro,
                        INSTANCE, version="3.54")
    ro_att = table_value(out, "id")
    assert table_value(out, "attach_mode") == "ro"
    assert table_value(out, "driver_volume_type") == "nbd"

    infos = {}
    for att in (rw_att, ro_att):
        st, _, b = cinder.http("GET", f"attachments/{att}", version="3.54")
        assert st == 200, b
        ci = b["attachment"]["connection_info"]
        assert ci["driver_volume_type"] == "nbd"
        assert ci["data"]["socket"] == str(cinder.d.nbd_socket)
        infos[att] = ci["data"]
    assert infos[ro_att]["access_mode"] == "ro" and infos[ro_att]["read_only"] is True
    assert infos[rw_att]["export_name"] == f"vg0/volume-{rw}"

    data = tmp_path / "data"
    data.write_bytes(os.urandom(4 << 20))
    subprocess.run([nbdcopy, str(data), infos[rw_att]["uri"]], check=True, timeout=60)
    h = nbd.NBD()
    h.connect_uri(infos[rw_att]["uri"])
    assert h.pread(4 << 20, 0) == data.read_bytes()
    assert not h.is_read_only()
    h.shutdown()
    h = nbd.NBD()
    h.connect_uri(infos[ro_att]["uri"])
    assert h.is_read_only()
    h.shutdown()
    # the storage refuses writes through the read-only attachment
    p = subprocess.run([nbdcopy, str(data), infos[ro_att]["uri"]], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "read-only" in p.stderr, p.stderr

    out = cinder.cli_ok("attachment-list", version="3.54")
    assert rw_att in out and ro_att in out
    v = cinder.show(ro, version="3.54")
    assert v["status"] == "attaching" and v["attachments"][0]["attachment_id"] == ro_att
    # complete (3.44): attached, in-use
    st, _, _ = cinder.http("POST", f"attachments/{ro_att}/action", {"os-complete": {}},
                           version="3.44")
    assert st == 202
    assert cinder.show(ro)["status"] == "in-use"
    # no second attachment (no multiattach), no delete while attached
    st, _, b = cinder.http("POST", "attachments", {"attachment": {
        "volume_uuid": ro, "instance_uuid": INSTANCE, "connector": {"host": "h"}}},
        version="3.54")
    assert st == 400 and "multiattach" in cinder_error(b, "badRequest", 400)
    rc, out, err = cinder.cli("delete", "ro-vol")
    assert rc != 0 and "attached" in out + err
    # extend in-use: from 3.42 only
    st, _, b = cinder.http("POST", f"volumes/{ro}/action", {"os-extend": {"new_size": 2}},
                           version="3.41")
    assert st == 400 and "3.42" in cinder_error(b, "badRequest", 400)
    st, _, b = cinder.http("POST", f"volumes/{ro}/action", {"os-extend": {"new_size": 2}},
                           version="3.42")
    assert st == 202, b

    cinder.cli_ok("attachment-delete", ro_att, version="3.54")
    assert cinder.show(ro)["status"] == "available"
    subprocess.run([nbdcopy, str(data), f"nbd+unix:///vg0/volume-{ro}?socket="
                    f"{cinder.d.nbd_socket}"], check=True, timeout=60)
    cinder.cli_ok("attachment-delete", rw_att, version="3.54")
    assert rw_att not in cinder.cli_ok("attachment-list", version="3.54")
    cinder.cli_ok("delete", "ro-vol", "rw-vol")


def test_concurrent_creates_and_deletes(cinder):
    """8 clients at once: every request succeeds, every id is its own, and
    the journal holds each volume's record (requests run one at a time
    under the command lock)."""
    import threading
    made, errors = [], []

    def client(k):
        try:
            for i in range(5):
                st, h, b = cinder.http("POST", "volumes", {"volume": {
                    "size": 1, "name": f"c{k}-{i}", "metadata": {"k": str(k)}}})
                if st != 202:
                    errors.append((st, b))
                    return
                made.append(b["volume"]["id"])
        except Exception as e:  # noqa: BLE001 - reported to the test
            errors.append(e)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    assert len(set(made)) == 40
    st, _, b = cinder.http("GET", "volumes/detail?with_count=true", version="3.45")
    assert b["count"] == 40
    assert sorted(v["name"] for v in b["volumes"]) == \
        sorted(f"c{k}-{i}" for k in range(8) for i in range(5))
    assert all(v["metadata"] == {"k": v["name"][1]} for v in b["volumes"])

    def deleter(ids):
        for vid in ids:
            st, _, b = cinder.http("DELETE", f"volumes/{vid}")
            if st != 202:
                errors.append((st, b))

    ts = [threading.Thread(target=deleter, args=(made[k::8],)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    assert cinder.http("GET", "volumes")[2]["volumes"] == []


def test_readonly_flag_bootable_and_reset_status(cinder, tmp_path):
    nbdcopy = require_tool("nbdcopy")
    vid = cinder.create("flags")["id"]
    uri = f"nbd+unix:///vg0/volume-{vid}?socket={cinder.d.nbd_socket}"
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1 << 20))

    cinder.cli_ok("readonly-mode-update", "flags", "True")
    p = subprocess.run([nbdcopy, str(data), uri], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "read-only" in p.stderr
    # attached read-only whatever is asked; rw is refused
    att = {"attachment": {"volume_uuid": vid, "connector": {"host": "h"}, "mode": "rw"}}
    st, _, b = cinder.http("POST", "attachments", att, version="3.54")
    assert st == 400 and "read-only" in cinder_error(b, "badRequest", 400)
    del att["attachment"]["mode"]
    st, _, b = cinder.http("POST", "attachments", att, version="3.54")
    assert st == 202 and b["attachment"]["attach_mode"] == "ro"
    cinder.cli_ok("attachment-delete", b["attachment"]["id"], version="3.54")
    p = subprocess.run([nbdcopy, str(data), uri], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, "still read-only without attachments"
    cinder.cli_ok("readonly-mode-update", "flags", "False")
    subprocess.run([nbdcopy, str(data), uri], check=True, timeout=60)

    assert cinder.show(vid)["bootable"] == "false"
    cinder.cli_ok("set-bootable", "flags", "true")
    assert cinder.show(vid)["bootable"] == "true"
    st, _, b = cinder.http("POST", f"volumes/{vid}/action", {"os-set_bootable": {"bootable": 3}})
    assert st == 400

    cinder.cli_ok("reset-state", "--state", "error", "flags")
    assert cinder.show(vid)["status"] == "error"
    st, _, b = cinder.http("POST", f"volumes/{vid}/action",
                           {"os-reset_status": {"status": "bogus"}})
    assert st == 400 and cinder.show(vid)["status"] == "error"
    cinder.cli_ok("delete", "flags")
    assert cinder.http("GET", "volumes")[2]["volumes"] == []


def test_legacy_attach_actions(cinder, tmp_path):
    """The attach flow before 3.27 (os-reserve, os-initialize_connection,
    os-attach, os-begin_detaching, os-detach...) on the same records."""
    nbdcopy = require_tool("nbdcopy")
    vid = cinder.create("old-flow")["id"]

    def act(name, body=None, code=202):
        st, _, b = cinder.http("POST", f"volumes/{vid}/action", {name: body or {}})
        assert st == code, (name, st, b)
        return b

    act("os-reserve")
    assert cinder.show(vid)["status"] == "reserved"
    act("os-reserve", code=400)
    info = act("os-initialize_connection", {"connector": {"host": "h1"}}, 200)["connection_info"]
    assert info["driver_volume_type"] == "nbd" and info["data"]["attachment_id"]
    act("os-attach", {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb", "mode": "ro"})
    v = cinder.show(vid)
    assert v["status"] == "in-use"
    (a,) = v["attachments"]
    assert (a["attachment_id"], a["server_id"], a["device"]) == \
        (info["data"]["attachment_id"], INSTANCE, "/dev/vdb")
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1 << 20))
    p = subprocess.run([nbdcopy, str(data), info["data"]["uri"]], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0 and "read-only" in p.stderr
    act("os-attach", {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdc"}, 400)
    act("os-begin_detaching")
    assert cinder.show(vid)["status"] == "detaching"
    act("os-roll_detaching")
    assert cinder.show(vid)["status"] == "in-use"
    act("os-detach", {"attachment_id": str(uuid.uuid4())}, 404)
    act("os-detach", {})
    act("os-terminate_connection", {"connector": {"host": "h1"}})
    assert cinder.show(vid)["status"] == "available"
    subprocess.run([nbdcopy, str(data), info["data"]["uri"]], check=True, timeout=60)
    act("os-detach", {}, 400)
    act("os-unreserve")
    act("os-attach", {"instance_uuid": INSTANCE}, 400)  # no mountpoint
    act("os-attach", {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb", "mode": "x"}, 400)
    act("os-initialize_connection", {"connector": "h1"}, 400)
    assert cinder.show(vid)["status"] == "available"


def test_restart_keeps_names_metadata_attachments(cinder):
    v = cinder.create("keep", 2, description="kept", metadata={"a": "1", "b": "two"})
    st, _, b = cinder.http("POST", "snapshots", {"snapshot": {
        "volume_id": v["id"], "name": "snap", "metadata": {"s": "x"}}})
    assert st == 202, b
    st, _, b = cinder.http("POST", "attachments", {"attachment": {
        "volume_uuid": v["id"], "instance_uuid": INSTANCE, "connector": {"host": "h1"},
        "mode": "ro"}}, version="3.54")
    assert st == 202, b
    att = b["attachment"]["id"]
    before = [cinder.http("GET", p, version="3.54")[2] for p in
              (f"volumes/{v['id']}", "snapshots/detail", "attachments/detail")]
    cinder.d.restart()
    after = [cinder.http("GET", p, version="3.54")[2] for p in
             (f"volumes/{v['id']}", "snapshots/detail", "attachments/detail")]
    assert after == before
    assert after[0]["volume"]["metadata"] == {"a": "1", "b": "two"}
    assert after[2]["attachments"][0]["id"] == att
    assert after[2]["attachments"][0]["attach_mode"] == "ro"
    # the read-only mode is still enforced after the restart
    out, _ = cinder.d.cli_ok("lvs", "-o", "lv_name,lv_permissions", f"vg0/volume-{v['id']}")
    assert "read-only" in out


def test_pagination_sort_and_count(cinder):
    ids = [cinder.create(f"v{i}")["id"] for i in range(5)]
    st, _, b = cinder.http("GET", "volumes?limit=2")
    assert st == 200 and len(b["volumes"]) == 2
    assert [v["id"] for v in b["volumes"]] == ids[::-1][:2]  # newest first
    nxt = b["volumes_links"][0]
    assert nxt["rel"] == "next" and f"marker={ids[3]}" in nxt["href"]
    st, _, b = cinder.http("GET", f"volumes/detail?limit=2&marker={ids[3]}")
    assert [v["id"] for v in b["volumes"]] == [ids[2], ids[1]]
    assert b["volumes"][0]["status"] == "available"  # detail
    st, _, b = cinder.http("GET", f"volumes?marker={ids[1]}")
    assert [v["id"] for v in b["volumes"]] == [ids[0]] and "volumes_links" not in b
    st, _, b = cinder.http("GET", "volumes?sort=name:asc&limit=3")
    assert [v["name"] for v in b["volumes"]] == ["v0", "v1", "v2"]
    st, _, b = cinder.http("GET", "volumes?sort_key=name&sort_dir=desc")
    assert [v["name"] for v in b["volumes"]] == ["v4", "v3", "v2", "v1", "v0"]
    st, _, b = cinder.http("GET", "volumes?with_count=true&limit=1", version="3.45")
    assert b["count"] == 5 and len(b["volumes"]) == 1
    st, _, b = cinder.http("GET", "volumes?with_count=true", version="3.44")
    assert "count" not in b
    st, _, b = cinder.http("GET", "volumes/detail?name=v3")
    assert [v["id"] for v in b["volumes"]] == [ids[3]]
    st, _, b = cinder.http("GET", "volumes/detail?status=in-use")
    assert b["volumes"] == []
    for bad in ("limit=-1", "limit=x", f"marker={uuid.uuid4()}", "sort=name:sideways"):
        st, _, b = cinder.http("GET", f"volumes?{bad}")
        assert st == 400, (bad, b)
        cinder_error(b, "badRequest", 400)
    # another project sees none of them
    st, _, b = cinder.http("GET", "volumes", project="other")
    assert b["volumes"] == []
    st, _, b = cinder.http("GET", f"volumes/{ids[0]}", project="other")
    assert st == 404


def test_bad_requests_change_nothing(cinder):
    v = cinder.create("base")
    cases = [
        ("POST", "volumes", b"{not json", 400, "badRequest"),
        ("POST", "volumes", b"[1, 2]", 400, "badRequest"),
        ("POST", "volumes", b'{"volume": 5}', 400, "badRequest"),
        ("POST", "volumes", b'{"size": 1}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": 0}}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": -3}}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": "abc"}}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": 1.5}}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": 99999999999999}}', 400, "badRequest"),
        ("POST", "volumes", b'{"volume": {"size": 1, "name": 7}}', 400, "badRequest"),
        ("POST", "volumes", json.dumps({"volume": {"size": 1, "name": "x" * 256}}).encode(),
         400, "badRequest"),
        ("POST", "volumes", json.dumps({"volume": {"size": 1, "metadata": {
            f"k{i}": "v" * 200 for i in range(30)}}}).encode(), 413, "overLimit"),
        ("POST", "volumes", b'{"volume": {"size": 1, "volume_type": "gold"}}', 404,
         "itemNotFound"),
        ("POST", "volumes", json.dumps({"volume": {"size": 1, "snapshot_id": str(
            uuid.uuid4())}}).encode(), 404, "itemNotFound"),
        ("POST", "volumes", b'{"volume": {"size": 1, "multiattach": true}}', 400,
         "badRequest"),
        ("GET", f"volumes/{uuid.uuid4()}", None, 404, "itemNotFound"),
        ("GET", "volumes/not-a-uuid", None, 404, "itemNotFound"),
        ("PUT", f"volumes/{v['id']}", b'{"volume": {"name": ["x"]}}', 400, "badRequest"),
        ("POST", f"volumes/{v['id']}/action", b'{"os-extend": {"new_size": 0}}', 400,
         "badRequest"),
        ("POST", f"volumes/{v['id']}/action", b'{"os-frobnicate": {}}', 400, "badRequest"),
        ("DELETE", f"volumes/{v['id']}/metadata/nokey", None, 404, "itemNotFound"),
        ("PUT", f"volumes/{v['id']}/metadata/k", b'{"meta": {"j": "v"}}', 400,
         "badRequest"),
        ("POST", "snapshots", b'{"snapshot": {"volume_id": 3}}', 400, "badRequest"),
        ("GET", "nowhere", None, 404, "itemNotFound"),
        ("GET", "/v3/bad%01project/volumes", None, 400, "badRequest"),
        ("GET", "/v3/" + "p" * 256 + "/volumes", None, 400, "badRequest"),
    ]
    for method, path, raw, code, name in cases:
        st, h, b = cinder.http(method, path, raw=raw)
        assert st == code, (method, path, raw, st, b)
        cinder_error(b, name, code)
        assert h["x-openstack-request-id"].startswith("req-")
    # attachments: not before 3.27; the mode from 3.54, rw or ro only
    att = {"attachment": {"volume_uuid": v["id"], "connector": {"host": "h"}, "mode": "ro"}}
    st, _, b = cinder.http("POST", "attachments", att)
    assert st == 404, b
    st, _, b = cinder.http("POST", "attachments", att, version="3.53")
    assert st == 400 and "3.54" in cinder_error(b, "badRequest", 400)
    att["attachment"]["mode"] = "rwx"
    st, _, b = cinder.http("POST", "attachments", att, version="3.54")
    assert st == 400
    st, _, b = cinder.http("GET", f"attachments/{uuid.uuid4()}", version="3.54")
    assert st == 404
    # nothing of it was made
    st, _, b = cinder.http("GET", "volumes/detail")
    assert [(x["id"], x["size"], x["name"], x["status"]) for x in b["volumes"]] == \
        [(v["id"], 1, "base", "available")]
    assert cinder.http("GET", "attachments", version="3.54")[2]["attachments"] == []


def test_noauth_refused_on_a_network_address(tmp_path, state_dir, pv):
    a = pv("pv0.img", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--cinder-pool", "vg0/pool0", "--cinder-listen",
                                             f"0.0.0.0:{free_tcp_port()}"])
    p = subprocess.run(d.command(), capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "not a loopback address" in p.stdout + p.stderr


def test_lv_tags_and_properties_cli(tmp_path, state_dir, pv):
    """The engine feature under the API: lvchange --addtag/--property, lvs
    -o lv_tags,lv_properties, kept across a restart of dlvmd."""
    a = pv("pv0.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a])
    d.start()
    try:
        d.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vg0")
        d.cli_ok("lvchange", "--addtag", "web", "--addtag", "db", "--property", "owner=alice",
                 "vg0/a")
        out, _ = d.cli_ok("lvs", "-o", "lv_name,lv_tags,lv_properties", "--reportformat",
                          "json", "vg0/a")
        row = json.loads(out)["report"][0]["lv"][0]
        assert (row["lv_tags"], row["lv_properties"]) == ("db,web", "owner=alice")
        rc, _, err = d.cli("lvchange", "--property", "bad key=1", "vg0/a")
        assert rc != 0 and "byte 3 (0x20)" in err
        d.cli_ok("lvcreate", "-n", "b", "-L", "8m", "--addtag", "new", "--property", "p=q",
                 "vg0")
        rc, _, err = d.cli("lvcreate", "-n", "c", "-L", "8m", "--addtag", "a,b c", "vg0")
        assert rc != 0 and "is not one of" in err
        rc, _, err = d.cli("lvcreate", "-L", "8m", "--addtag", "t", "vg0")
        assert rc != 0 and "name the new LV" in err
        d.restart()
        d.cli_ok("lvchange", "--deltag", "web", "--delproperty", "owner", "vg0/a")
        out, _ = d.cli_ok("lvs", "-o", "lv_name,lv_tags,lv_properties", "--reportformat",
                          "json", "vg0")
        rows = {r["lv_name"]: r for r in json.loads(out)["report"][0]["lv"]}
        assert sorted(rows) == ["a", "b"]
        assert (rows["a"]["lv_tags"], rows["a"]["lv_properties"]) == ("db", "")
        assert (rows["b"]["lv_tags"], rows["b"]["lv_properties"]) == ("new", "p=q")
    finally:
        stop_clean(d)



@pytest.fixture
def two_hosts(tmp_path, pv):
    """Two dlvmd (host ids 1, 2) on the shared VG vgs, each serving the
    Cinder API on its own port, volumes in vgs/pool0."""
    a = pv("pv0.img", size="768M")
    nd = tmp_path / "no-daemon.sock"
    dlvm_ok("--devices", str(a), "vgcreate", "--shared", "--max-hosts", "4", "vgs", a,
            socket=nd, state_dir=tmp_path / "offline")
    ports = [free_tcp_port(), free_tcp_port()]
    hs = [Dlvmd(tmp_path / f"h{i + 1}", devices=[a],
                extra=["--io-timeout", "1", "--host-id", str(i + 1), "--cinder-pool",
                       "vgs/pool0", "--cinder-listen", f"127.0.0.1:{ports[i]}"])
          for i in range(2)]
    started = []
    try:
        for h in hs:
            h.start()
            started.append(h)
        hs[0].cli_ok("lvcreate", "--type", "thin-pool", "-L", "256m", "-n", "pool0", "vgs")
        yield Cinder(hs[0], ports[0]), Cinder(hs[1], ports[1])
    finally:
        for h in started:
            stop_clean(h)


def test_two_hosts_of_a_shared_vg_answer_the_same(two_hosts):
    """The Cinder state is in the shared VG's journal: a volume made, renamed
    and given metadata through one host's API is seen the same through the
    other's, and a change made on the second is seen on the first."""
    c1, c2 = two_hosts
    hs = [c1.d, c2.d]
    if True:
        v = c1.create("shared-vol", 1, description="on host 1", metadata={"k": "v"})
        # each request reads what the other host committed: no waiting
        seen = [x for x in c2.http("GET", "volumes/detail")[2]["volumes"] if x["id"] == v["id"]]
        assert seen, "host 2 does not see the volume host 1 made"
        mine = c1.show(v["id"])
        for key in ("name", "description", "metadata", "size", "status", "created_at",
                    "os-vol-tenant-attr:tenant_id", "volume_type"):
            assert seen[0][key] == mine[key], key
        st, _, b = c2.http("PUT", f"volumes/{v['id']}", {"volume": {
            "name": "renamed-on-2", "metadata": {"k": "v2", "h": "2"}}})
        assert st == 200, b
        assert c1.show(v["id"])["name"] == "renamed-on-2"
        assert c1.show(v["id"])["metadata"] == {"k": "v2", "h": "2"}

        # attached through host 2: active there only, data written there
        att = {"attachment": {"volume_uuid": v["id"], "connector": {"host": "h2"}}}
        st, _, b = c2.http("POST", "attachments", att, version="3.54")
        assert st == 202, b
        data = b["attachment"]["connection_info"]["data"]
        assert data["socket"] == str(hs[1].nbd_socket)
        payload = os.urandom(1 << 20)
        h = nbd.NBD()
        h.connect_uri(data["uri"])
        h.pwrite(payload, 0)
        h.flush()
        h.shutdown()
        # host 1 sees the attachment; a second one is refused there too
        assert c1.show(v["id"])["status"] == "attaching"
        att["attachment"]["connector"]["host"] = "h1"
        st, _, b = c1.http("POST", "attachments", att, version="3.54")
        assert st == 400, b
        st, _, b = c2.http("DELETE", f"attachments/{data['attachment_id']}", version="3.54")
        assert st == 200, b
        # then through host 1, which now serves the same data
        assert c1.show(v["id"])["status"] == "available"
        st, _, b = c1.http("POST", "attachments", att, version="3.54")
        assert st == 202, b
        data = b["attachment"]["connection_info"]["data"]
        assert data["socket"] == str(hs[0].nbd_socket)
        h = nbd.NBD()
        h.connect_uri(data["uri"])
        assert h.pread(1 << 20, 0) == payload
        h.shutdown()
        st, _, b = c1.http("DELETE", f"attachments/{data['attachment_id']}", version="3.54")
        assert st == 200, b
        st, _, b = c2.http("DELETE", f"volumes/{v['id']}")
        assert st == 202, b
        assert c1.http("GET", f"volumes/{v['id']}")[0] == 404


def test_shared_vg_snapshots_and_clones_across_hosts(two_hosts):
    """A snapshot taken through one host, volumes made from it and from the
    volume through the other, data read back through a third attachment."""
    c1, c2 = two_hosts
    v = c1.create("origin", 1)
    att = {"attachment": {"volume_uuid": v["id"], "connector": {"host": "h1"}}}
    st, _, b = c1.http("POST", "attachments", att, version="3.54")
    assert st == 202, b
    payload = os.urandom(1 << 20)
    h = nbd.NBD()
    h.connect_uri(b["attachment"]["connection_info"]["data"]["uri"])
    h.pwrite(payload, 0)
    h.flush()
    h.shutdown()
    st, _, _ = c1.http("POST", f"attachments/{b['attachment']['id']}/action",
                       {"os-complete": {}}, version="3.54")
    assert st == 202
    # a snapshot of an in-use volume needs force, and the host that serves
    # it (its thin family is written there)
    st, _, b2 = c1.http("POST", "snapshots", {"snapshot": {"volume_id": v["id"], "name": "s"}})
    assert st == 400, b2
    snap = {"snapshot": {"volume_id": v["id"], "name": "s", "force": True}}
    st, _, b2 = c2.http("POST", "snapshots", snap)
    assert st == 409 and "active on host id 1" in cinder_error(b2, "conflictingRequest", 409)
    st, _, s = c1.http("POST", "snapshots", snap)
    assert st == 202, s
    sid = s["snapshot"]["id"]
    st, _, b2 = c1.http("DELETE", f"attachments/{b['attachment']['id']}", version="3.54")
    assert st == 200, b2
    st, _, fs = c1.http("POST", "volumes", {"volume": {"snapshot_id": sid, "name": "from-s"}})
    assert st == 202 and fs["volume"]["size"] == 1, fs
    st, _, fv = c2.http("POST", "volumes", {"volume": {"source_volid": v["id"], "size": 2}})
    assert st == 202 and fv["volume"]["size"] == 2, fv
    for c, vol in ((c2, fs["volume"]), (c1, fv["volume"])):
        st, _, a = c.http("POST", "attachments", {"attachment": {
            "volume_uuid": vol["id"], "connector": {"host": "x"}, "mode": "ro"}},
            version="3.54")
        assert st == 202, a
        h = nbd.NBD()
        h.connect_uri(a["attachment"]["connection_info"]["data"]["uri"])
        assert h.is_read_only() and h.pread(1 << 20, 0) == payload
        h.shutdown()
        st, _, b2 = c.http("DELETE", f"attachments/{a['attachment']['id']}", version="3.54")
        assert st == 200, b2
    for c, vid in ((c1, fs["volume"]["id"]), (c2, fv["volume"]["id"])):
        st, _, b2 = c.http("DELETE", f"volumes/{vid}")
        assert st == 202, b2
    st, _, b2 = c2.http("DELETE", f"volumes/{v['id']}?cascade=true")
    assert st == 202, b2
    assert c1.http("GET", "volumes")[2]["volumes"] == []
    assert c1.http("GET", "snapshots")[2]["snapshots"] == []


def test_clone_from_snapshot_read_only_attachment_and_back(cinder, tmp_path):
    """A volume made from a snapshot is a thin clone: a ro attachment makes
    it read-only and deleting the attachment makes it writable again (lvchange
    marks a clone made read-only, so it is not taken for a snapshot), while
    the snapshot itself stays read-only."""
    nbdcopy = require_tool("nbdcopy")
    v = cinder.create("src")
    st, _, s = cinder.http("POST", "snapshots", {"snapshot": {"volume_id": v["id"]}})
    assert st == 202, s
    c = cinder.create("clone", snapshot_id=s["snapshot"]["id"])
    st, _, a = cinder.http("POST", "attachments", {"attachment": {
        "volume_uuid": c["id"], "connector": {"host": "h"}, "mode": "ro"}}, version="3.54")
    assert st == 202, a
    uri = a["attachment"]["connection_info"]["data"]["uri"]
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1 << 20))
    p = subprocess.run([nbdcopy, str(data), uri], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "read-only" in p.stderr
    st, _, b = cinder.http("DELETE", f"attachments/{a['attachment']['id']}", version="3.54")
    assert st == 200, b
    subprocess.run([nbdcopy, str(data), uri], check=True, timeout=60)
    rc, _, err = cinder.d.cli("lvchange", "-p", "rw", f"vg0/snap-{s['snapshot']['id']}")
    assert rc != 0 and "is a snapshot and stays read-only" in err
