# SPDX-License-Identifier: MIT
"""Fencing in the NBD data path: once the fence of an export's map (a shared
VG's lease deadline) has passed, every request that touches the devices
(READ, WRITE, WRITE_ZEROES, TRIM, FLUSH) gets EIO without any device I/O,
and a change that completes after the deadline is not acknowledged.

Run against tests/tools/nbd_serve_file --fence-after-ms N, which gives the
exports' maps a fence whose deadline is N ms after its start and prints
that deadline (CLOCK_BOOTTIME ms, the clock of boottime() below).
"""

import errno
import os
import re
import signal
import time

import nbd
import pytest

# The server, its binary and the files served are those of the protocol
# tests.
from test_nbd_protocol import MiB, Server, make_file, serve_file  # noqa: F401

FENCED_LOG = "nbd: vg0: fenced: this host's lease deadline has passed; I/O refused"
BS = 4096


def boottime():
    """Seconds of CLOCK_BOOTTIME, the clock of the fence's deadline."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@pytest.fixture
def fenced(serve_file, tmp_path):
    """Start a server with --fence-after-ms; killed after the test if the
    test did not stop it."""
    servers = []

    def start(fence_ms, size=64 * MiB):
        d = str(tmp_path)
        path = os.path.join(d, "lv.img")
        make_file(path, size)
        srv = Server(serve_file, d, ["vg0/lv=lv.img"],
                     extra=["--fence-after-ms", str(fence_ms)])
        servers.append(srv)
        m = re.search(r"fence deadline (\d+) ms", srv.stderr())
        assert m, srv.stderr()
        srv.deadline = int(m.group(1)) / 1000
        srv.path = path
        return srv

    yield start
    for srv in servers:
        if srv.alive():
            srv.proc.kill()
            srv.proc.wait()


def stop(srv):
    """SIGTERM: the server must drain and exit 0, fenced or not."""
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0, srv.stderr()


def connect(srv):
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.set_export_name("vg0/lv")
    h.connect_unix(srv.sock)
    return h


def errnum(fn, *args, **kw):
    with pytest.raises(nbd.Error) as e:
        fn(*args, **kw)
    return e.value.errnum


def file_bytes(srv, off, n):
    with open(srv.path, "rb") as f:
        f.seek(off)
        return f.read(n)


def block_status_ok(h, off, length):
    seen = []

    def cb(ctx, o, entries, err):
        seen.append(ctx)
        return 0

    h.block_status(length, off, cb)
    return seen == [nbd.CONTEXT_BASE_ALLOCATION]


def refused_everything(h):
    """Every device command fails with EIO; block status still works."""
    assert errnum(h.pread, BS, 0) == errno.EIO
    assert errnum(h.pwrite, b"\xee" * BS, 0) == errno.EIO
    assert errnum(h.pwrite, b"\xee" * 100, 7) == errno.EIO  # unaligned path
    assert errnum(h.pwrite, b"\xee" * BS, BS, nbd.CMD_FLAG_FUA) == errno.EIO
    assert errnum(h.zero, BS, 0) == errno.EIO
    assert errnum(h.zero, 100, 3) == errno.EIO
    assert errnum(h.trim, BS, 0) == errno.EIO
    assert errnum(h.flush) == errno.EIO
    assert block_status_ok(h, 0, BS)


def test_far_deadline_changes_nothing(fenced):
    srv = fenced(3600 * 1000)
    h = connect(srv)
    h.pwrite(b"\x11" * 3 * BS, 5 * BS)
    h.pwrite(b"\x22" * 10, 7)
    h.zero(BS, 6 * BS)
    h.trim(BS, 7 * BS)
    h.flush()
    assert h.pread(3 * BS, 5 * BS) == b"\x11" * BS + bytes(2 * BS)
    assert h.pread(10, 7) == b"\x22" * 10
    assert block_status_ok(h, 0, BS)
    h.shutdown()
    assert file_bytes(srv, 5 * BS, BS) == b"\x11" * BS
    stop(srv)
    assert "fenced" not in srv.stderr()


def test_fenced_from_the_start(fenced):
    srv = fenced(0)
    for _ in range(2):
        h = connect(srv)
        assert h.get_size() == 64 * MiB  # the handshake needs no device I/O
        refused_everything(h)
        h.shutdown()
    assert file_bytes(srv, 0, 2 * BS) == bytes(2 * BS)
    assert os.stat(srv.path).st_blocks == 0  # nothing was ever written
    stop(srv)
    # logged once per connection, not once per request
    assert srv.stderr().count(FENCED_LOG) == 2, srv.stderr()


def test_deadline_passes(fenced):
    srv = fenced(3000)
    h = connect(srv)
    old = bytes(range(256)) * 16
    for i in range(8):
        h.pwrite(old, i * MiB)
    h.pwrite(b"\x33" * 100, 10 * MiB + 1)  # unaligned: read-modify-write
    h.flush()
    for i in range(8):
        assert h.pread(BS, i * MiB) == old
    assert boottime() < srv.deadline, \
        "the machine is too slow for this test: the deadline passed first"
    assert "fenced" not in srv.stderr()

    time.sleep(max(0, srv.deadline - boottime()) + 0.05)
    refused_everything(h)
    for i in range(8):
        assert errnum(h.pwrite, b"\xff" * BS, i * MiB) == errno.EIO
    # Many writes in flight at once: every one fails.
    new = bytearray(b"\xff" * BS)
    cookies = [h.aio_pwrite(new, i * BS) for i in range(64)]
    while h.aio_in_flight():
        h.poll(-1)
    for c in cookies:
        assert errnum(h.aio_command_completed, c) == errno.EIO
    h2 = connect(srv)  # a new connection is refused all the same
    refused_everything(h2)
    h2.shutdown()
    h.shutdown()

    # On disk: what was written before the deadline, nothing after.
    for i in range(8):
        assert file_bytes(srv, i * MiB, BS) == old
    assert file_bytes(srv, 10 * MiB, 102) == b"\0" + b"\x33" * 100 + b"\0"
    assert file_bytes(srv, 64 * BS, BS) == bytes(BS)
    stop(srv)
    assert srv.stderr().count(FENCED_LOG) == 2, srv.stderr()


def test_writes_across_the_deadline(fenced):
    """A stream of pipelined writes, each to a block of its own, running
    across the deadline: every write acknowledged is on disk, and no write
    sent after the deadline reached the disk."""
    size = 512 * MiB
    srv = fenced(1500, size=size)
    h = connect(srv)
    nblocks = size // BS
    sent = {}       # block -> send time
    done = {}       # block -> errnum (0: success)
    inflight = {}   # cookie -> block
    bufs = {}
    nxt = 0
    stop_at = srv.deadline + 0.5
    while boottime() < stop_at or inflight:
        while (len(inflight) < 16 and boottime() < stop_at
               and nxt < nblocks):
            buf = bytearray(nxt.to_bytes(8, "little") * (BS // 8))
            sent[nxt] = boottime()
            inflight[h.aio_pwrite(buf, nxt * BS)] = nxt
            bufs[nxt] = buf
            nxt += 1
        h.poll(-1)
        for c in list(inflight):
            try:
                if not h.aio_command_completed(c):
                    continue
                done[inflight[c]] = 0
            except nbd.Error as e:
                done[inflight[c]] = e.errnum
            del inflight[c]
            if boottime() > stop_at + 30:
                pytest.fail("writes did not complete")
    h.shutdown()
    assert nxt < nblocks, "ran out of blocks before the deadline passed"

    ok = [b for b, e in done.items() if e == 0]
    late = [b for b in done if sent[b] >= srv.deadline]
    assert ok and late, (len(ok), len(late))
    assert {done[b] for b in done if done[b]} == {errno.EIO}
    assert not [b for b in late if done[b] == 0]
    with open(srv.path, "rb") as f:
        for b in ok:
            f.seek(b * BS)
            assert f.read(BS) == bufs[b], f"acknowledged write {b} is not on disk"
        for b in late:
            f.seek(b * BS)
            assert f.read(BS) == bytes(BS), f"write {b}, sent after the deadline, reached the disk"
    stop(srv)
    assert srv.stderr().count(FENCED_LOG) == 1, srv.stderr()
