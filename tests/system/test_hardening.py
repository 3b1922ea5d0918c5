# SPDX-License-Identifier: MIT
"""Hardening of dlvmd against what its clients and its environment can do:
a permission switch that reaches open connections, paths the API may touch,
a state directory others can plant links in, lock waits that block nobody,
bad bytes in URLs and names that reach the log."""

import errno
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, stop_clean
from test_shared import cluster, shared_pvs  # noqa: F401

MiB = 1 << 20


def lv_connect(d, name):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(str(d.nbd_socket))
    return h


def nbd_errnum(fn, *args):
    with pytest.raises(nbd.Error) as e:
        fn(*args)
    return e.value.errnum


# ------------------------------------------------- read-only means now

@pytest.mark.parametrize("kind", ["linear", "thin"])
def test_lvchange_permission_reaches_open_connections(vg0, kind):
    d = vg0
    if kind == "linear":
        d.cli_ok("lvcreate", "-n", "v", "-L", "8m", "vg0")
    else:
        d.cli_ok("lvcreate", "--type", "thin-pool", "-L", "64m", "-n", "pool", "vg0")
        d.cli_ok("lvcreate", "-V", "8m", "-T", "vg0/pool", "-n", "v")
    h = lv_connect(d, "vg0/v")
    try:
        assert not h.is_read_only()
        h.pwrite(b"\x11" * 4096, 0)

        out, err = d.cli_ok("lvchange", "-p", "r", "vg0/v")
        assert "keep write access" not in err
        # the connection opened writable: past libnbd's checks, the server
        # itself refuses from the first request after the command returned
        assert nbd_errnum(h.pwrite, b"\x22" * 4096, 0) == errno.EPERM
        assert nbd_errnum(h.zero, 4096, 4096) == errno.EPERM
        assert nbd_errnum(h.trim, 4096, 0) == errno.EPERM
        assert h.pread(4096, 0) == b"\x11" * 4096
        assert h.pread(4096, 4096) == b"\x00" * 4096
        h.flush()

        d.cli_ok("lvchange", "-p", "rw", "vg0/v")
        h.pwrite(b"\x33" * 4096, 0)
        h.zero(4096, 4096)
        assert h.pread(8192, 0) == b"\x33" * 4096 + b"\x00" * 4096
    finally:
        h.shutdown()
    assert "disconnected" not in d.read_log()


# ------------------------------------------------- what the API may touch

NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
REFUSED = "not a device dlvmd manages"


def api_as_nobody(d, cmd, args, opts=None):
    """POST /v1/cmd/CMD as user nobody: (status, body)."""
    script = (
        "import http.client, json, socket, sys\n"
        "class C(http.client.HTTPConnection):\n"
        "    def connect(self):\n"
        "        self.sock = socket.socket(socket.AF_UNIX)\n"
        "        self.sock.connect(sys.argv[1])\n"
        "c = C('localhost', timeout=30)\n"
        "c.request('POST', '/v1/cmd/' + sys.argv[2], body=sys.argv[3])\n"
        "r = c.getresponse()\n"
        "print(json.dumps([r.status, json.loads(r.read())]))\n")
    body = json.dumps({"args": [str(a) for a in args], "opts": opts or {}})
    p = subprocess.run(NOBODY + ["/usr/bin/python3", "-c", script, str(d.socket), cmd, body],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def confined(tmp_path, state_dir):
    """dlvmd with its default PV directory, STATE_DIR/pv."""
    d = Dlvmd(state_dir)
    d.pv_dir = None
    d.start()
    yield d
    stop_clean(d)


@pytest.fixture
def reachable():
    """dlvmd on a state directory that other users may traverse (tmp_path
    is the owner's only), with its default PV directory."""
    base = Path(tempfile.mkdtemp(prefix="dlvm-hardening-"))
    os.chmod(base, 0o711)
    d = Dlvmd(base / "state")
    d.pv_dir = None
    d.start()
    yield d
    stop_clean(d)
    shutil.rmtree(base)


def test_api_paths_are_confined(tmp_path, state_dir, confined):
    d = confined
    pvdir = state_dir / "pv"
    st = os.stat(pvdir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700

    # outside the PV directory: refused, nothing created
    for path in (tmp_path / "x.img", pvdir / ".." / "x.img", Path("/etc/dlvm-x.img")):
        rc, _, err = d.cli("pvcreate", "--size", "64m", path)
        assert rc != 0 and REFUSED in err, (path, err)
        assert not os.path.lexists(os.path.normpath(path)), path
    # a link in it to a directory elsewhere does not widen it
    (pvdir / "elsewhere").symlink_to(tmp_path)
    rc, _, err = d.cli("pvcreate", "--size", "64m", pvdir / "elsewhere" / "y.img")
    assert rc != 0 and REFUSED in err, err
    assert not (tmp_path / "y.img").exists()
    # a directory is no entry
    rc, _, err = d.cli("pvcreate", "--size", "64m", str(pvdir) + "/")
    assert rc != 0 and REFUSED in err, err

    # in it: created
    d.cli_ok("pvcreate", "--size", "64m", pvdir / "a.img")
    (pvdir / "sub").mkdir()
    d.cli_ok("pvcreate", "--size", "64m", pvdir / "sub" / "b.img")
    d.cli_ok("vgcreate", "vga", pvdir / "a.img", pvdir / "sub" / "b.img")
    # an admin's link in it to a device elsewhere: the way to hand dlvmd a
    # new disk while it runs
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    (pvdir / "disk1").symlink_to(disk)
    d.cli_ok("pvcreate", pvdir / "disk1")
    d.cli_ok("vgextend", "vga", pvdir / "disk1")

    # dump: a PV of a loaded VG, by any of its names, is fine; another file
    # gets the same answer whether it exists or not, without its size
    status, body = d.api("POST", "/v1/cmd/dump", {"args": [str(disk)]})
    assert status == 200 and "bytes, regular file" in body["text"], body
    answers = {}
    for path in ("/etc/shadow", "/etc/no-such-file", "/etc/../etc/shadow", "etc/shadow"):
        status, body = d.api("POST", "/v1/cmd/dump", {"args": [path]})
        assert status == 403 and body["error"]["code"] == "EACCES", body
        msg = body["error"]["message"]
        assert msg.startswith(f"{path}: {REFUSED}"), msg
        answers[path] = msg[len(path):]
        assert "bytes" not in msg and "size" not in msg, msg
    assert len(set(answers.values())) == 1, answers
    # vgcreate on a PV made elsewhere (offline) is refused too
    other = tmp_path / "other.img"
    dlvm_ok("pvcreate", "--size", "64m", other, socket=tmp_path / "none.sock")
    rc, _, err = d.cli("vgcreate", "vgo", other)
    assert rc != 0 and REFUSED in err, err
    rc, _, err = d.cli("pvremove", other)
    assert rc != 0 and REFUSED in err, err
    assert "Current metadata header" in dlvm_ok("dump", other)[0]  # untouched
    d.cli_ok("lvcreate", "-n", "l", "-L", "8m", "vga")


def test_api_paths_for_another_user(reachable):
    """A user who may reach the socket (a member of group dlvm; here the
    socket is opened to all) cannot make dlvmd create or read files."""
    d = reachable
    os.chmod(d.socket, 0o666)
    victim = d.state_dir.parent / "victim"
    target = f"/tmp/dlvm-nobody-{os.getpid()}.img"
    status, body = api_as_nobody(d, "pvcreate", [target], {"size": "64m"})
    assert status == 403 and REFUSED in body["error"]["message"], body
    assert not os.path.exists(target)
    status, body = api_as_nobody(d, "dump", ["/etc/shadow"])
    assert status == 403 and REFUSED in body["error"]["message"], body
    victim.write_bytes(b"secret" * 1000)
    status, body = api_as_nobody(d, "pvcreate", [victim], {"force": True})
    assert status == 403, body
    assert victim.read_bytes() == b"secret" * 1000


def test_pv_dir_others_may_write_is_refused(tmp_path, state_dir):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)
    d = Dlvmd(state_dir, extra=["--pv-dir", str(open_dir)])
    p = subprocess.run(d.command(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert f"--pv-dir {open_dir}: owned by uid 0, mode 1777: it must belong to uid 0 and " \
        "be writable by its owner only" in p.stderr, p.stderr
    os.chmod(open_dir, 0o755)
    d.start()
    try:
        d.cli_ok("pvcreate", "--size", "64m", open_dir / "a.img")
    finally:
        stop_clean(d)


# ------------------------------------------------- state directory

def start_fails(d, why):
    p = subprocess.run(d.command(), capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and why in p.stderr, (p.returncode, p.stderr)


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim"
    v.write_bytes(b"precious\n")
    os.chmod(v, 0o600)
    yield v
    assert v.read_bytes() == b"precious\n"
    assert stat.S_IMODE(os.stat(v).st_mode) == 0o600


def test_links_planted_in_the_state_dir_are_not_followed(tmp_path, state_dir, pv, victim):
    a = pv("a.img")
    for name in ("dlvmd.pid", "dlvmd.sock", "nbd.sock"):
        link = state_dir / name
        link.symlink_to(victim)
        d = Dlvmd(state_dir)
        start_fails(d, "is a symbolic link" if name == "dlvmd.pid" else
                    f"{link}: exists and is not a socket")
        assert link.is_symlink()
        link.unlink()
    # a link at devices.tmp is replaced, not written through: at start
    # (--devices adds to the devices file) and when a command adds a PV
    (state_dir / "devices.tmp").symlink_to(victim)
    d = Dlvmd(state_dir, devices=[a])
    d.start()
    try:
        assert str(a) in (state_dir / "devices").read_text()
        assert not os.path.lexists(state_dir / "devices.tmp")
        (state_dir / "devices.tmp").symlink_to(victim)
        d.cli_ok("pvcreate", "--size", "64m", tmp_path / "b.img")
        assert str(tmp_path / "b.img") in (state_dir / "devices").read_text()
        assert not os.path.lexists(state_dir / "devices.tmp")
        # what replaced a socket is left alone at stop
        os.unlink(d.socket)
        os.symlink(victim, d.socket)
    finally:
        stop_clean(d)
    assert os.path.islink(d.socket)


def test_state_dir_others_may_write(tmp_path, state_dir, victim):
    d = Dlvmd(state_dir)
    os.chmod(state_dir, 0o777)
    start_fails(d, f"{state_dir}: state directory owned by uid 0, mode 0777: it must belong "
                "to uid 0 and be writable by others only with the sticky bit")
    os.chown(state_dir, 65534, -1)
    os.chmod(state_dir, 0o755)
    start_fails(d, "owned by uid 65534, mode 0755")
    os.chown(state_dir, 0, -1)
    # sticky, as /tmp: others cannot remove or replace dlvmd's files there,
    # but may leave their own: a pid file of another user is not used
    os.chmod(state_dir, 0o1777)
    (state_dir / "dlvmd.pid").write_text("1\n")
    os.chown(state_dir / "dlvmd.pid", 65534, -1)
    start_fails(d, "dlvmd.pid: not a regular file of uid 0: not used")
    os.unlink(state_dir / "dlvmd.pid")
    d.start()
    stop_clean(d)


# ------------------------------------------------- --lock-wait

def test_lock_wait_blocks_no_other_command(cluster):
    """A command waiting for another host's activation (--lock-wait) held
    dlvmd's command lock: every other command on that host waited as long."""
    import threading
    import time
    from test_shared import report
    h1, h2 = cluster(2)
    h1.cli_ok("lvcreate", "-n", "a", "-L", "8m", "vgs")
    rc, _, err = h2.cli("lvchange", "-aey", "--lock-wait", "301", "vgs/a")
    assert rc != 0 and "--lock-wait takes seconds (0 to 300), not \"301\"" in err, err
    result = []
    waiter = threading.Thread(target=lambda: result.append(
        h2.cli("lvchange", "-aey", "--lock-wait", "30", "vgs/a")))
    waiter.start()
    try:
        time.sleep(0.5)
        assert waiter.is_alive()
        for _ in range(3):
            t0 = time.monotonic()
            rows = report(h2, "lvs", "vgs")["lv"]
            assert time.monotonic() - t0 < 3, "lvs waited for the --lock-wait"
            assert [r["lv_name"] for r in rows] == ["a"]
        # a change on the same host goes through meanwhile too
        t0 = time.monotonic()
        h2.cli_ok("lvcreate", "-n", "b", "-L", "4m", "vgs")
        assert time.monotonic() - t0 < 5
        assert waiter.is_alive()
        h1.cli_ok("lvchange", "-an", "vgs/a")
    finally:
        waiter.join(timeout=40)
    assert result and result[0][0] == 0, result
    rows = {r["lv_name"]: r for r in report(h1, "lvs", "-o", "lv_name,active_hosts",
                                                  "vgs")["lv"]}
    assert rows["a"]["active_hosts"] == "2" and rows["b"]["active_hosts"] == "2", rows


# ------------------------------------------------- bytes in API URLs

def raw_request(d, request):
    """Send raw bytes to the API socket: (status, parsed JSON body)."""
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(d.socket))
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data, f"no response to {request!r}: connection closed"
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


@pytest.mark.parametrize("bad", [
    "%ED%A0%80",            # a surrogate (U+D800)
    "%ED%BF%BF",            # another (U+DFFF)
    "%C0%AF",               # overlong '/'
    "%E0%80%AF",            # overlong '/', three bytes
    "%F0%80%80%AF",         # and four
    "%F4%90%80%80",         # above U+10FFFF
    "%80",                  # a continuation byte alone
    "%E2%82",               # a sequence cut short
])
def test_bad_utf8_in_url_gets_400(daemon, bad):
    close = b"Connection: close\r\n\r\n"
    for req in (f"POST /v1/cmd/lvs{bad} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n",
                f"POST /v1/cmd/{bad} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n",
                f"GET /v1/{bad}log HTTP/1.1\r\nHost: x\r\n"):
        status, body = raw_request(daemon, req.encode() + close)
        assert status == 400, (req, body)
        assert body["error"]["code"] == "EILSEQ", body
        assert "not valid UTF-8" in body["error"]["message"], body
    # in a query argument: quoted in the error, the bad bytes as '?'
    for arg in ("since", "level"):
        req = f"GET /v1/log?{arg}=1{bad} HTTP/1.1\r\nHost: x\r\n".encode() + close
        status, body = raw_request(daemon, req)
        assert status == 400 and body["error"]["code"] == "EINVAL", body
        assert body["error"]["message"].startswith(f"{arg}=1?"), body


def test_good_utf8_and_raw_bytes_in_url(daemon):
    close = b"Connection: close\r\n\r\n"
    status, body = raw_request(
        daemon, b"POST /v1/cmd/%C3%A9%F0%9F%92%BE HTTP/1.1\r\nContent-Length: 0\r\n" + close)
    assert status == 404 and body["error"]["message"] == "Unknown command \"\u00e9\U0001f4be\""
    # undecoded bytes in the request line are checked the same way
    status, body = raw_request(
        daemon, b"POST /v1/cmd/\xed\xa0\x80 HTTP/1.1\r\nContent-Length: 0\r\n" + close)
    assert status == 400 and body["error"]["code"] == "EILSEQ", body
    status, body = daemon.api("GET", "/v1/health")
    assert status == 200, body


# ------------------------------------------------- client names in the log

FORGED = "vg0/x\n dlvmd: forged line \x1b[31mred\x1b[0m"
ESCAPED = "vg0/x\\x0a dlvmd: forged line \\x1b[31mred\\x1b[0m"


def lines_with(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


def test_client_names_are_escaped_in_the_log(tmp_path, state_dir, pv):
    """A name a client chose (an NBD export name, a name or a URL sent to
    the API) reaches the log as one line, its control bytes as \\xNN."""
    a = pv("a.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "none.sock", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--debug", "api"])
    d.start()
    try:
        # NBD: plain newstyle makes libnbd ask with NBD_OPT_EXPORT_NAME,
        # which the server logs when the export does not exist
        h = nbd.NBD()
        h.set_handshake_flags(0)
        h.set_export_name(FORGED)
        with pytest.raises(nbd.Error):
            h.connect_unix(str(d.nbd_socket))
        del h
        # API: a refused LV name is logged with the failure; a URL with the
        # debug line of the request
        status, body = d.api("POST", "/v1/cmd/lvcreate",
                             {"opts": {"name": FORGED[4:], "size": "4m"}, "args": ["vg0"]})
        assert status == 400, body
        status, body = d.api("POST", "/v1/cmd/x%0Ay%1B%5B2J", {})
        assert status == 404, body

        def logged():
            log = d.read_log()
            return "NBD_OPT_EXPORT_NAME" in log and "x\\x0ay\\x1b[2J" in log and log
        log = None
        for _ in range(100):
            log = logged()
            if log:
                break
            time.sleep(0.05)
        assert log, d.read_log()
        assert "forged line" not in log.replace(ESCAPED[4:], ""), log
        assert "\x1b" not in log, log
        nbd_lines = lines_with(log, "NBD_OPT_EXPORT_NAME")
        assert len(nbd_lines) == 1 and nbd_lines[0].endswith(
            f"NBD_OPT_EXPORT_NAME: {ESCAPED}: no such export"), nbd_lines
        api_lines = lines_with(log, "lvcreate: failed")
        assert len(api_lines) == 1 and ESCAPED[4:] in api_lines[0], api_lines
        url_lines = lines_with(log, "POST /v1/cmd/x")
        assert url_lines == ["dlvmd: debug: api: POST /v1/cmd/x\\x0ay\\x1b[2J: 404"], url_lines
        # the ring holds the same escaped lines
        msgs = [ln["message"] for ln in d.api("GET", "/v1/log")[1]["lines"]]
        assert any(m.endswith(f"{ESCAPED}: no such export") for m in msgs), msgs
    finally:
        stop_clean(d)
