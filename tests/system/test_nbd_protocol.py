# SPDX-License-Identifier: MIT
"""NBD protocol tests of dlvmd's NBD server, with real clients.

Most tests run against tests/tools/nbd_serve_file, which serves plain files
through the same code as dlvmd (daemon/nbd/, daemon/exports.c): set
NBD_SERVE_FILE to a built binary, or it is taken from the build tree, or
built with gcc. The test_dlvmd_* tests run against a real dlvmd (conftest.py).

Exports of the shared server:
  vg0/lv   linear over one 64 MiB file
  vg0/str  striped over two 16 MiB files (64 KiB stripes), 32 MiB
  vg0/ro   read-only, 8 MiB

Errors are checked by number (nbd.Error.errnum), data against a model.
"""

import errno
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, stop_clean

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20

NBD_MAGIC = 0x4E42444D41474943
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERR_UNSUP = 2**31 + 1
REP_ERR_INVALID = 2**31 + 3
REP_ERR_UNKNOWN = 2**31 + 6
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_GO = 1, 2, 3, 7
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def serve_file(tmp_path_factory):
    """$NBD_SERVE_FILE, else the one in the meson build tree (a missing
    tool fails the tests: build it with make build)."""
    path = os.environ.get("NBD_SERVE_FILE")
    if path:
        return path
    build = os.environ.get("DLVM_BUILD", os.path.join(ROOT, "build"))
    built = os.path.join(build, "tests", "tools", "nbd_serve_file")
    if not os.access(built, os.X_OK):
        pytest.fail(f"{built} not built (run: make build)")
    return built


class Server:
    """nbd_serve_file on a Unix socket in `workdir`."""

    def __init__(self, tool, workdir, exports, extra=()):
        self.dir = workdir
        self.sock = os.path.join(workdir, "nbd.sock")
        self.log = os.path.join(workdir, "server.log")
        self.proc = subprocess.Popen(
            [tool, "-U", self.sock, *extra, *exports], cwd=workdir,
            stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"server did not start: {self.stderr()}"

    def uri(self, name):
        return f"nbd+unix:///{name}?socket={self.sock}"

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def signal(self, sig, expect):
        self.proc.send_signal(sig)
        line = self.proc.stdout.readline().strip()
        assert line.startswith(expect), line
        return line

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise


def make_file(path, size, data=None):
    with open(path, "wb") as f:
        if data is not None:
            f.write(data)
        f.truncate(size)


@pytest.fixture(scope="module")
def srv(serve_file, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("nbd"))
    for name, size in (("lv.img", 64 * MiB), ("s1.img", 16 * MiB),
                       ("s2.img", 16 * MiB)):
        make_file(os.path.join(d, name), size)
    make_file(os.path.join(d, "ro.img"), 8 * MiB, bytes(range(256)) * 16)
    s = Server(serve_file, d, ["vg0/lv=lv.img", "vg0/str=s1.img,s2.img",
                               "vg0/ro=ro.img:ro"])
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.stderr()


@pytest.fixture
def own_srv(serve_file, tmp_path):
    """A server of its own for tests that change exports or stop it."""
    make_file(str(tmp_path / "a.img"), 8 * MiB)
    s = Server(serve_file, str(tmp_path), ["vg1/a=a.img"])
    yield s
    s.stop()


def connect(srv, name, structured=True, meta=False):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.set_export_name(name)
    h.connect_unix(srv.sock)
    return h


def nbd_errnum(fn, *args, **kw):
    with pytest.raises(nbd.Error) as e:
        fn(*args, **kw)
    return e.value.errnum


# ---------------------------------------------------------- a raw client

def recvn(s, n):
    buf = bytearray()  # appends in place: large replies take linear time
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class Raw:
    """Just enough of an NBD client to send what real clients refuse to."""

    def __init__(self, sock_path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(sock_path)
        magic, opts, flags = struct.unpack(">QQH", recvn(self.s, 18))
        assert (magic, opts) == (NBD_MAGIC, OPTS_MAGIC)
        assert flags & 3 == 3
        self.s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES

    def opt(self, code, data=b""):
        self.s.sendall(struct.pack(">QII", OPTS_MAGIC, code, len(data)) + data)

    def reply(self):
        magic, opt, typ, ln = struct.unpack(">QIII", recvn(self.s, 20))
        assert magic == REP_MAGIC
        return opt, typ, recvn(self.s, ln)

    def go(self, name):
        n = name.encode()
        self.opt(OPT_GO, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
        while True:
            opt, typ, data = self.reply()
            assert opt == OPT_GO
            if typ == REP_INFO:
                if struct.unpack(">H", data[:2])[0] == 0:
                    self.size, self.tflags = struct.unpack(">QH", data[2:])
                continue
            assert typ == REP_ACK, hex(typ)
            return

    def request(self, typ, off, length, flags=0, cookie=1, payload=b""):
        self.s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, typ,
                                   cookie, off, length) + payload)

    def simple_reply(self):
        magic, err, cookie = struct.unpack(">IIQ", recvn(self.s, 16))
        assert magic == SIMPLE_REPLY_MAGIC
        return err, cookie

    def closed(self):
        """True if the server closed the connection."""
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


# ------------------------------------------------------------- handshake

def test_list_shows_every_export(srv):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    names = []
    h.opt_list(lambda name, desc: names.append(name))
    h.opt_abort()
    assert sorted(names) == ["vg0/lv", "vg0/ro", "vg0/str"]


def test_nbdinfo_size_and_flags(srv):
    out = subprocess.run(["nbdinfo", "--json", srv.uri("vg0/str")],
                         check=True, capture_output=True, text=True).stdout
    import json
    info = json.loads(out)["exports"][0]
    assert info["export-size"] == 32 * MiB
    assert info["can_multi_conn"] and info["can_flush"] and info["can_fua"]
    assert info["can_trim"] and info["can_zero"]
    assert info["block_size_minimum"] == 1
    assert info["block_size_preferred"] == 4096
    assert info["block_size_maximum"] == 32 * MiB
    h = connect(srv, "vg0/ro")
    assert h.is_read_only() and h.get_size() == 8 * MiB
    assert not h.can_trim() and not h.can_zero()


def test_info_then_go(srv):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.set_full_info(True)
    h.connect_unix(srv.sock)
    h.set_export_name("vg0/lv")
    h.opt_info()
    assert h.get_size() == 64 * MiB
    assert h.get_canonical_export_name() == "vg0/lv"
    assert "vg0/lv" in h.get_export_description()
    h.opt_go()
    assert h.get_size() == 64 * MiB
    assert h.pread(16, 0) is not None
    h.shutdown()


def test_empty_and_unknown_names_are_refused(srv):
    for name in ("", "vg0/nope", "vg0"):
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_unix(srv.sock)
        h.set_export_name(name)
        assert nbd_errnum(h.opt_go) == errno.ENOENT, name
        h.set_export_name("vg0/lv")  # the handshake goes on
        h.opt_go()
        assert h.get_size() == 64 * MiB
        h.shutdown()


def test_unknown_option_then_go(srv):
    r = Raw(srv.sock)
    r.opt(0x4242, b"some data")
    opt, typ, _ = r.reply()
    assert (opt, typ) == (0x4242, REP_ERR_UNSUP)
    r.opt(OPT_LIST, b"x")  # LIST takes no data
    assert r.reply()[1] == REP_ERR_INVALID
    r.opt(OPT_GO, b"\0\0")  # truncated
    assert r.reply()[1] == REP_ERR_INVALID
    r.go("vg0/lv")
    assert r.size == 64 * MiB
    r.request(CMD_FLUSH, 0, 0, cookie=7)
    assert r.simple_reply() == (0, 7)
    r.request(CMD_DISC, 0, 0)
    assert r.closed()


def test_export_name_option_and_abort(srv):
    r = Raw(srv.sock)
    r.opt(OPT_EXPORT_NAME, b"vg0/str")
    size, flags = struct.unpack(">QH", recvn(r.s, 10))  # no zeroes: negotiated
    assert size == 32 * MiB and flags & 1
    r.request(CMD_READ, 0, 512, cookie=3)
    assert r.simple_reply() == (0, 3)
    assert len(recvn(r.s, 512)) == 512
    r.close()
    r = Raw(srv.sock)
    r.opt(OPT_EXPORT_NAME, b"")  # no default export: the session ends
    assert r.closed()
    r = Raw(srv.sock)
    r.opt(OPT_ABORT)
    assert r.reply()[1] == REP_ACK
    assert r.closed()


def test_list_meta_context(srv):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    h.set_export_name("vg0/lv")
    ctx = []
    h.opt_list_meta_context(lambda name: ctx.append(name))
    assert ctx == ["base:allocation"]
    h.opt_abort()


# ---------------------------------------------------------- data path

@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("export,size", [("vg0/lv", 64 * MiB), ("vg0/str", 32 * MiB)])
def test_random_writes_read_back(srv, export, size, structured):
    rng = random.Random(f"{export}{structured}")
    h = connect(srv, export, structured=structured)
    assert h.get_structured_replies_negotiated() == structured
    model = bytearray(h.pread(size, 0) if size <= 32 * MiB else
                      h.pread(32 * MiB, 0) + h.pread(size - 32 * MiB, 32 * MiB))
    for i in range(300):
        # aligned, odd and stripe-crossing requests, some with FUA
        if i % 3 == 0:
            off, ln = rng.randrange(0, size // 4096) * 4096, rng.choice([4096, 65536, 131072])
        else:
            off, ln = rng.randrange(0, size - 1), rng.randrange(1, 200000)
        ln = min(ln, size - off)
        data = rng.randbytes(ln)
        h.pwrite(data, off, nbd.CMD_FLAG_FUA if i % 7 == 0 else 0)
        model[off:off + ln] = data
    h.flush()
    for _ in range(100):
        off = rng.randrange(0, size - 1)
        ln = min(rng.randrange(1, 300000), size - off)
        assert h.pread(ln, off) == model[off:off + ln]
    h.shutdown()
    # a new connection sees the same
    h = connect(srv, export)
    assert h.pread(min(size, 32 * MiB), 0) == model[:min(size, 32 * MiB)]
    h.shutdown()


def test_pipelined_requests_out_of_order(srv):
    h = connect(srv, "vg0/lv")
    bufs = {}
    for i in range(64):
        data = bytes([i]) * (4096 + i)  # unaligned lengths too
        h.aio_pwrite(data, i * 16384 + i)
        bufs[i] = data
    while h.aio_in_flight():
        h.poll(-1)
    reads = []
    for i in range(64):
        b = nbd.Buffer(len(bufs[i]))
        reads.append((i, b, h.aio_pread(b, i * 16384 + i)))
    while h.aio_in_flight():
        h.poll(-1)
    for i, b, c in reads:
        assert h.aio_command_completed(c)
        assert bytes(b.to_bytearray()) == bufs[i]
    h.shutdown()


def test_unaligned_writes_sharing_a_sector(srv):
    """Writes of a few bytes each, side by side in one sector, from several
    connections at once: none may be lost (read-modify-write is serialized)."""
    hs = [connect(srv, "vg0/lv") for _ in range(4)]
    base = 40 * MiB
    for h in hs:
        h.pwrite(b"\0" * 8192, base)
    expect = bytearray(8192)
    for rnd in range(20):
        for k, h in enumerate(hs):
            for j in range(8):
                off = (rnd * 37 + k * 8 + j) * 3 % 8190
                val = bytes([(rnd + k + j) % 255 + 1]) * 2
                h.aio_pwrite(val, base + off)
        for h in hs:
            while h.aio_in_flight():
                h.poll(-1)
    got = hs[0].pread(8192, base)
    # every byte written at least once must be nonzero
    written = set()
    for rnd in range(20):
        for k in range(4):
            for j in range(8):
                off = (rnd * 37 + k * 8 + j) * 3 % 8190
                written.update((off, off + 1))
    for i in range(8192):
        assert (got[i] != 0) == (i in written), i
    for h in hs:
        h.shutdown()


def test_zero_and_trim_read_back_zeros(srv):
    h = connect(srv, "vg0/lv", meta=True)
    rng = random.Random(5)
    for flags in (0, nbd.CMD_FLAG_NO_HOLE, nbd.CMD_FLAG_FUA):
        for off, ln in ((0, 1 * MiB), (12345, 70001), (3 * MiB + 1, 4095), (5 * MiB, 1)):
            h.pwrite(rng.randbytes(ln + 8192), max(off - 4096, 0))
            before = h.pread(ln + 8192, max(off - 4096, 0))
            h.zero(ln, off, flags)
            got = h.pread(ln + 8192, max(off - 4096, 0))
            lo = off - max(off - 4096, 0)
            assert got[lo:lo + ln] == b"\0" * ln
            assert got[:lo] == before[:lo] and got[lo + ln:] == before[lo + ln:]
    # trim is a hint, but must not touch data around the range
    h.pwrite(b"\x77" * 3 * 4096, 8 * MiB)
    h.trim(4096 + 100, 8 * MiB + 2000)
    got = h.pread(3 * 4096, 8 * MiB)
    assert got[:2000] == b"\x77" * 2000 and got[2 * 4096 + 2100:] == b"\x77" * (4096 - 2100)
    h.shutdown()


def test_block_status_reports_allocated_data(srv):
    h = connect(srv, "vg0/str", meta=True)
    assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    seen = []

    def cb(ctx, off, entries, err):
        seen.append((ctx, off, list(entries)))
        return 0
    h.block_status(1 * MiB, 4096, cb)
    assert seen == [("base:allocation", 4096, [1 * MiB, 0])]
    seen.clear()
    h.block_status(8192, 32 * MiB - 8192, cb, nbd.CMD_FLAG_REQ_ONE)
    assert seen == [("base:allocation", 32 * MiB - 8192, [8192, 0])]
    h.shutdown()
    # without a negotiated context the command is refused
    h = connect(srv, "vg0/str")
    h.set_strict_mode(0)
    assert nbd_errnum(h.block_status, 4096, 0, cb) == errno.EINVAL
    h.shutdown()


# --------------------------------------------------------- bad requests

def test_out_of_range_requests(srv):
    h = connect(srv, "vg0/lv")
    h.set_strict_mode(0)
    size = h.get_size()
    assert nbd_errnum(h.pread, 4096, size) == errno.EINVAL
    assert nbd_errnum(h.pread, 4097, size - 4096) == errno.EINVAL
    assert nbd_errnum(h.pread, 512, 2**64 - 256) == errno.EINVAL  # offset overflow
    assert nbd_errnum(h.pwrite, b"x" * 4096, size - 1) == errno.ENOSPC
    assert nbd_errnum(h.zero, 4096, size) == errno.ENOSPC
    assert nbd_errnum(h.trim, 4096, size) == errno.EINVAL
    # the connection is still usable
    h.pwrite(b"ok", size - 2)
    assert h.pread(2, size - 2) == b"ok"
    h.shutdown()


def test_zero_length_requests(srv):
    h = connect(srv, "vg0/lv")
    h.set_strict_mode(0)
    assert h.pread(0, 0) == b""
    assert h.pread(0, h.get_size()) == b""
    h.pwrite(b"", 4096)
    h.zero(0, 4096)
    h.trim(0, 4096)
    h.shutdown()
    h = connect(srv, "vg0/lv", structured=False)
    h.set_strict_mode(0)
    assert h.pread(0, 100) == b""
    h.shutdown()


def test_read_only_export_refuses_writes(srv):
    h = connect(srv, "vg0/ro")
    h.set_strict_mode(0)
    before = h.pread(8192, 0)
    assert before[:256] == bytes(range(256))
    assert nbd_errnum(h.pwrite, b"x" * 512, 0) == errno.EPERM
    assert nbd_errnum(h.zero, 512, 0) == errno.EPERM
    assert nbd_errnum(h.trim, 512, 0) == errno.EPERM
    h.flush()
    assert h.pread(8192, 0) == before
    h.shutdown()


def test_bad_flags_are_refused(srv):
    h = connect(srv, "vg0/lv")
    h.set_strict_mode(0)
    assert nbd_errnum(h.pread, 512, 0, nbd.CMD_FLAG_NO_HOLE) == errno.EINVAL
    assert nbd_errnum(h.pwrite, b"x" * 512, 0, nbd.CMD_FLAG_REQ_ONE) == errno.EINVAL
    assert nbd_errnum(h.zero, 512, 0, nbd.CMD_FLAG_FAST_ZERO) == errno.EINVAL
    assert h.pread(512, 0, nbd.CMD_FLAG_DF) is not None  # DF is advertised
    h.shutdown()


def test_unknown_command_and_flags_raw(srv):
    r = Raw(srv.sock)
    r.go("vg0/lv")
    r.request(42, 0, 0, cookie=11)
    assert r.simple_reply() == (errno.EINVAL, 11)
    r.request(CMD_READ, 0, 512, flags=0x8000, cookie=12)
    assert r.simple_reply() == (errno.EINVAL, 12)
    # a refused write: its payload is skipped, the stream stays in sync
    r.request(CMD_WRITE, 0, 4096, flags=0x4000, cookie=13, payload=b"\x11" * 4096)
    assert r.simple_reply() == (errno.EINVAL, 13)
    r.request(CMD_WRITE, 2**40, 8192, cookie=14, payload=b"\x12" * 8192)
    assert r.simple_reply() == (errno.ENOSPC, 14)
    # larger than the maximum payload (32 MiB): refused, payload skipped
    big = 33 * MiB
    r.request(CMD_WRITE, 0, big, cookie=15, payload=b"\x13" * big)
    assert r.simple_reply() == (errno.EINVAL, 15)
    r.request(CMD_READ, 0, big, cookie=16)
    assert r.simple_reply() == (errno.EINVAL, 16)
    r.request(CMD_READ, 0, 16, cookie=17)
    assert r.simple_reply() == (0, 17)
    assert len(recvn(r.s, 16)) == 16
    # an absurd payload: the server disconnects rather than read 4 GiB
    r.request(CMD_WRITE, 0, 0xFFFFFFFF, flags=0x4000, cookie=18)
    assert r.closed()
    r.close()
    # bad magic: disconnect
    r = Raw(srv.sock)
    r.go("vg0/lv")
    r.s.sendall(b"\xde\xad\xbe\xef" + b"\0" * 24)
    assert r.closed()
    assert "bad request magic" in srv.stderr()


def test_disconnect_mid_request_harms_nothing(srv):
    h = connect(srv, "vg0/lv")
    h.pwrite(b"\x55" * 8192, 20 * MiB)
    for cut in (10, 28, 28 + 100, 28 + 4095):
        r = Raw(srv.sock)
        r.go("vg0/lv")
        msg = struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 20 * MiB, 8192) + b"\xaa" * 8192
        r.s.sendall(msg[:cut])
        r.close()
    time.sleep(0.3)
    assert srv.alive()
    assert "vg0/lv: client disconnected mid-request" in srv.stderr()
    # the partial write was not applied, and the server still serves
    assert h.pread(8192, 20 * MiB) == b"\x55" * 8192
    h.shutdown()
    # many requests in flight, then a vanishing client
    r = Raw(srv.sock)
    r.go("vg0/lv")
    for i in range(100):
        r.request(CMD_READ, i * 65536, 65536, cookie=i)
    r.close()
    time.sleep(0.3)
    assert srv.alive()
    h = connect(srv, "vg0/lv")
    assert h.pread(8192, 20 * MiB) == b"\x55" * 8192
    h.shutdown()


# ------------------------------------------------------------- clients

def test_qemu_io_odd_offsets(srv):
    uri = srv.uri("vg0/lv")
    out = subprocess.run(
        ["qemu-io", "-f", "raw", uri,
         "-c", "write -P 0x5a 1 1000", "-c", "read -P 0x5a 1 1000",
         "-c", "write -P 0x33 4095 2", "-c", "read -P 0x33 4095 2",
         "-c", "write -P 0x44 1048575 70000", "-c", "read -P 0x44 1048575 70000",
         "-c", "write -z 4097 3", "-c", "read -P 0 4097 3",
         "-c", "read -P 0x5a 1 1000"],
        capture_output=True, text=True, check=True).stdout
    assert "Pattern verification failed" not in out, out
    assert out.count("read ") == 5


def test_nbdcopy_and_qemu_img_compare(srv, tmp_path):
    src = tmp_path / "src.img"
    for export, size in (("vg0/lv", 64 * MiB), ("vg0/str", 32 * MiB)):
        src.write_bytes(random.Random(export).randbytes(size))
        subprocess.run(["nbdcopy", str(src), srv.uri(export)], check=True)
        out = tmp_path / "out.img"
        subprocess.run(["nbdcopy", srv.uri(export), str(out)], check=True)
        assert out.read_bytes() == src.read_bytes()
        subprocess.run(["qemu-img", "compare", "-s", "-f", "raw", "-F", "raw",
                        str(src), srv.uri(export)], check=True)
    src.write_bytes(random.Random(9).randbytes(32 * MiB)[:20 * MiB] + bytes(12 * MiB))
    # qemu-img convert writes (zero detection, flush)
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw",
                    str(src), srv.uri("vg0/str")], check=True)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw",
                    str(src), srv.uri("vg0/str")], check=True)


def test_fio_verify(srv, tmp_path):
    subprocess.run(["fio", "--name=v", "--ioengine=nbd", f"--uri={srv.uri('vg0/str')}",
                    "--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=16M",
                    "--verify=crc32c", "--do_verify=1", "--numjobs=1",
                    f"--output={tmp_path / 'fio.out'}"], check=True, cwd=tmp_path)
    assert " err= 0" in (tmp_path / "fio.out").read_text()


def test_small_stripes_large_requests(serve_file, tmp_path):
    """4 KiB stripes: a 32 MiB request is 8192 pieces on two files."""
    for n in ("x.img", "y.img"):
        make_file(str(tmp_path / n), 16 * MiB)
    srv = Server(serve_file, str(tmp_path), ["vg3/s=x.img,y.img"], extra=["-s", "4096"])
    try:
        data = random.Random(3).randbytes(32 * MiB)
        h = connect(srv, "vg3/s")
        h.pwrite(data, 0)
        assert h.pread(32 * MiB, 0) == data
        h.zero(32 * MiB - 8192, 4096)
        assert h.pread(32 * MiB, 0) == data[:4096] + bytes(32 * MiB - 8192) + data[-4096:]
        h.flush()
        h.shutdown()
        with open(tmp_path / "x.img", "rb") as f:
            assert f.read(4096) == data[:4096]  # stripe 0 is on the first file
        with open(tmp_path / "y.img", "rb") as f:  # the last stripe: on y, last row
            f.seek(16 * MiB - 4096)
            assert f.read(4096) == data[-4096:]
    finally:
        srv.stop()
    assert srv.proc.returncode == 0

# ------------------------------------------------------ export changes

def test_extend_shows_to_new_connections(own_srv):
    old = connect(own_srv, "vg1/a")
    assert old.get_size() == 8 * MiB
    os.truncate(os.path.join(own_srv.dir, "a.img"), 12 * MiB)
    own_srv.signal(signal.SIGUSR1, "remapped")
    new = connect(own_srv, "vg1/a")
    assert new.get_size() == 12 * MiB
    new.pwrite(b"\x01" * 4096, 11 * MiB)
    assert old.get_size() == 8 * MiB
    old.set_strict_mode(0)
    assert nbd_errnum(old.pread, 4096, 11 * MiB) == errno.EINVAL
    old.pwrite(b"\x02" * 4096, 0)
    assert new.pread(4096, 0) == b"\x02" * 4096
    old.shutdown()
    new.shutdown()


def test_force_remove_disconnects_clients(own_srv):
    h = connect(own_srv, "vg1/a")
    h.pwrite(b"\x03" * 4096, 0)
    bufs = [nbd.Buffer(65536) for _ in range(32)]
    assert all(h.aio_pread(b, i * 65536) for i, b in enumerate(bufs))
    line = own_srv.signal(signal.SIGUSR2, "removed")
    assert line == "removed vg1/a: 0"
    with pytest.raises(nbd.Error):
        for _ in range(100):
            h.pread(4096, 0)
            time.sleep(0.01)
    h2 = nbd.NBD()
    h2.set_export_name("vg1/a")
    with pytest.raises(nbd.Error):
        h2.connect_unix(own_srv.sock)
    assert own_srv.alive()


def test_graceful_stop_with_clients_writing(own_srv):
    fio = subprocess.Popen(
        ["fio", "--name=s", "--ioengine=nbd", f"--uri={own_srv.uri('vg1/a')}",
         "--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=8M",
         "--time_based", "--runtime=30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=own_srv.dir)
    time.sleep(1.5)
    t0 = time.monotonic()
    own_srv.stop()
    assert time.monotonic() - t0 < 15
    assert own_srv.proc.returncode == 0
    assert own_srv.proc.stdout.read().strip() == "stopped"
    fio.wait(timeout=30)
    assert not os.path.exists(own_srv.sock)


def test_tcp_listener(serve_file, tmp_path):
    make_file(str(tmp_path / "t.img"), 4 * MiB)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = Server(serve_file, str(tmp_path), ["vg2/t=t.img"],
                 extra=["-T", f"127.0.0.1:{port}"])
    try:
        h = nbd.NBD()
        h.connect_uri(f"nbd://127.0.0.1:{port}/vg2/t")
        assert h.get_size() == 4 * MiB
        h.pwrite(b"tcp" * 1000, 7)
        assert h.pread(3000, 7) == b"tcp" * 1000
        h.shutdown()
    finally:
        srv.stop()
    assert srv.proc.returncode == 0


def test_required_tools_exist():
    for tool in ("nbdinfo", "nbdcopy", "qemu-io", "qemu-img", "fio", "gcc"):
        assert shutil.which(tool), f"{tool} is required"


# ------------------------------------------------- through a real dlvmd
# These use conftest.py's vg0 fixture: dlvmd serving vg0 on two PVs, its
# LVs exported as "vg0/LV" on its Unix NBD socket.

def lv_connect(vg0, name, **kw):
    h = nbd.NBD()
    h.set_request_structured_replies(kw.get("structured", True))
    h.set_export_name(name)
    h.connect_unix(str(vg0.nbd_socket))
    return h


def test_dlvmd_lv_data_and_odd_offsets(vg0):
    vg0.cli_ok("lvcreate", "-n", "lv1", "-L", "64m", "vg0")
    h = lv_connect(vg0, "vg0/lv1")
    assert h.get_size() == 64 * MiB and h.can_multi_conn()
    rng = random.Random(1)
    model = bytearray(64 * MiB)
    h.zero(64 * MiB, 0)
    for _ in range(200):
        off = rng.randrange(0, 64 * MiB - 1)
        data = rng.randbytes(min(rng.randrange(1, 100000), 64 * MiB - off))
        h.pwrite(data, off)
        model[off:off + len(data)] = data
    h.flush()
    assert h.pread(32 * MiB, 0) + h.pread(32 * MiB, 32 * MiB) == model
    h.shutdown()
    out = subprocess.run(["qemu-io", "-f", "raw", vg0.nbd_uri("vg0/lv1"),
                          "-c", "write -P 0x5a 1 1000", "-c", "read -P 0x5a 1 1000"],
                         capture_output=True, text=True, check=True).stdout
    assert "Pattern verification failed" not in out


def test_dlvmd_striped_lv_copy(vg0, tmp_path):
    vg0.cli_ok("lvcreate", "-n", "st", "-L", "64m", "-i", "2", "-I", "64k", "vg0")
    src = tmp_path / "src.img"
    src.write_bytes(random.Random(2).randbytes(64 * MiB))
    subprocess.run(["nbdcopy", str(src), vg0.nbd_uri("vg0/st")], check=True)
    subprocess.run(["qemu-img", "compare", "-s", "-f", "raw", "-F", "raw",
                    str(src), vg0.nbd_uri("vg0/st")], check=True)


def test_dlvmd_extend_and_remove(vg0):
    vg0.cli_ok("lvcreate", "-n", "ext", "-L", "16m", "vg0")
    old = lv_connect(vg0, "vg0/ext")
    old.pwrite(b"\x42" * 4096, 0)
    vg0.cli_ok("lvextend", "-L", "+16m", "vg0/ext")
    new = lv_connect(vg0, "vg0/ext")
    assert (old.get_size(), new.get_size()) == (16 * MiB, 32 * MiB)
    assert new.pread(4096, 0) == b"\x42" * 4096
    new.shutdown()
    # in use: lvremove refuses, then -f disconnects the client
    rc, _, err = vg0.cli("lvremove", "vg0/ext")
    assert rc != 0 and "in use" in err
    assert old.pread(4096, 0) == b"\x42" * 4096
    vg0.cli_ok("lvremove", "-f", "vg0/ext")
    with pytest.raises(nbd.Error):
        old.pread(4096, 0)
    h = nbd.NBD()
    h.set_export_name("vg0/ext")
    with pytest.raises(nbd.Error):
        h.connect_unix(str(vg0.nbd_socket))


def test_dlvmd_read_only_lv(vg0):
    vg0.cli_ok("lvcreate", "-n", "ro", "-L", "8m", "vg0")
    vg0.cli_ok("lvchange", "-p", "r", "vg0/ro")
    h = lv_connect(vg0, "vg0/ro")
    h.set_strict_mode(0)
    assert h.is_read_only()
    assert nbd_errnum(h.pwrite, b"x" * 4096, 0) == errno.EPERM
    assert nbd_errnum(h.zero, 4096, 0) == errno.EPERM
    h.shutdown()


def test_dlvmd_closed_connections_give_their_buffers_back(tmp_path, state_dir, pv):
    """Found by tests/fuzz/fuzz_nbd.c: a connection that ended while its
    request arena (8 MiB) was pinned left it counted in the server's buffer
    total, so after a few such connections (128 at the default
    --nbd-buffers) every request over 64 KiB waited forever for room."""
    a = pv("pv0.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--nbd-buffers", "32"])
    d.start()
    try:
        d.cli_ok("lvcreate", "-n", "lv1", "-L", "16m", "vg0")
        for i in range(8):  # each pins its arena at its first request
            r = Raw(str(d.nbd_socket))
            r.go("vg0/lv1")
            r.request(CMD_READ, 0, 4096, cookie=i)
            assert r.simple_reply() == (0, i)
            recvn(r.s, 4096)
            r.request(CMD_DISC, 0, 0)
            assert r.closed()
            r.close()
        time.sleep(0.5)  # the server's side of the last one ends
        r = Raw(str(d.nbd_socket))
        r.s.settimeout(10)
        r.go("vg0/lv1")
        r.request(CMD_READ, 0, MiB, cookie=99)
        assert r.simple_reply() == (0, 99)
        assert len(recvn(r.s, MiB)) == MiB
        r.close()
    finally:
        stop_clean(d)


def test_dlvmd_own_pinned_arena_does_not_block_a_large_request(tmp_path, state_dir, pv):
    """Found by tests/fuzz/fuzz_nbd.c: a connection's pinned arena (8 MiB)
    counts in the server's buffer total, and a connection with nothing in
    flight waited for room for a large request until others freed theirs:
    alone, with --nbd-buffers 32, a read of more than 24 MiB right after
    another request waited forever for its own arena."""
    a = pv("pv0.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--nbd-buffers", "32"])
    d.start()
    try:
        d.cli_ok("lvcreate", "-n", "lv1", "-L", "64m", "vg0")
        r = Raw(str(d.nbd_socket))
        r.s.settimeout(10)
        r.go("vg0/lv1")
        r.request(CMD_READ, 0, 4096, cookie=1)  # pins the arena
        assert r.simple_reply() == (0, 1)
        recvn(r.s, 4096)
        r.request(CMD_READ, 0, 32 * MiB, cookie=2)
        assert r.simple_reply() == (0, 2)
        assert len(recvn(r.s, 32 * MiB)) == 32 * MiB
        r.request(CMD_DISC, 0, 0)
        assert r.closed()
        r.close()
    finally:
        stop_clean(d)
