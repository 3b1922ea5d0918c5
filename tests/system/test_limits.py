# SPDX-License-Identifier: MIT
"""Limits of dlvmd's NBD server: connections in all and per client, the
handshake deadline, the idle timeout, request buffers per connection and in
all (back-pressure, nothing dropped), and no memory pinned by an idle
connection. Clients are raw sockets (test_nbd_protocol.Raw), libnbd and fio."""
import json
import os
import resource
import socket
import subprocess
import time

import nbd
import pytest

from conftest import Dlvmd, dlvm_ok, free_tcp_port, require_tool, stop_clean
from test_nbd_protocol import CMD_READ, Raw

MiB = 1 << 20


def status(pid, key):
    """A field of /proc/PID/status in KiB (or a count)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def wait_for(pred, timeout, step=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@pytest.fixture
def served(tmp_path, state_dir, pv):
    """start(*extra) -> dlvmd serving vg0/lv (64 MiB), its TCP listener plain
    on 127.0.0.1 (--tls off) at d.port; stopped cleanly at the end."""
    a = pv("pv0.img", state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, socket=tmp_path / "no-daemon.sock", state_dir=state_dir)
    started = []

    def start(*extra):
        port = free_tcp_port()
        d = Dlvmd(state_dir, devices=[a], nbd_listen=f"127.0.0.1:{port}",
                  extra=["--tls", "off", *extra])
        d.port = port
        d.start()
        started.append(d)
        if not d.cli("lvs", "vg0/lv")[0] == 0:
            d.cli_ok("lvcreate", "-n", "lv", "-L", "64m", "vg0")
        return d
    yield start
    for d in started:
        stop_clean(d)


def tcp_connect(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def ended(s):
    """The server closed s (after its greeting, if it sent one)."""
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_ten_thousand_connections(served, tmp_path):
    """10,000 connections held: at most --nbd-max-connections are served,
    threads stay within that, a fio job on a connection opened before goes
    on, the log stays short, and the handshake deadline frees the rest."""
    require_tool("fio")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 12000:
        pytest.fail(f"the hard limit of open files is {hard}: 10,000 connections need more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = served("--nbd-max-connections", "300", "--nbd-max-client-connections", "200",
               "--nbd-handshake-timeout", "6")
    pid = d.proc.pid
    threads0 = status(pid, "Threads")
    fio_out = tmp_path / "fio.json"
    fio = subprocess.Popen(
        ["fio", "--name=busy", "--ioengine=nbd", f"--uri={d.nbd_uri('vg0/lv')}",
         "--rw=randrw", "--bs=4k", "--iodepth=8", "--runtime=14", "--time_based",
         "--output-format=json", f"--output={fio_out}"])
    socks = []
    try:
        time.sleep(1)  # fio has its connection
        # from 50 source addresses: 200 each, so the cap that refuses most
        # is the total one; the first address also goes over its own cap
        t0 = time.monotonic()
        for i in range(10000):
            src = f"127.0.0.{2 + (i % 50) if i >= 250 else 2}"
            socks.append(tcp_connect(d.port, src))
        # never more than the cap served at once (a thread each)
        threads = status(pid, "Threads")
        assert threads <= threads0 + 300 + 5, (threads0, threads)
        # a connect may return before the server's accept queue took the
        # connection: each ends as the server gets to it, refused over the
        # caps or closed at the handshake deadline
        left = set(range(len(socks)))
        peak = threads

        def all_ended():
            nonlocal peak
            peak = max(peak, status(pid, "Threads"))
            for i in [i for i in left if ended(socks[i])]:
                left.discard(i)
            return not left
        assert wait_for(all_ended, 60, step=0.5), f"{len(left)} connections still open"
        assert peak <= threads0 + 300 + 5, (threads0, peak)
        assert wait_for(lambda: status(pid, "Threads") <= threads0 + 5, 15), \
            status(pid, "Threads")
        assert fio.wait(timeout=60) == 0
    finally:
        for s in socks:
            s.close()
        if fio.poll() is None:
            fio.kill()
    job = json.loads(fio_out.read_text())["jobs"][0]
    assert job["error"] == 0 and job["read"]["io_bytes"] > 0 and job["write"]["io_bytes"] > 0
    log = d.read_log()
    lines = [ln for ln in log.splitlines() if "refused" in ln or "closed" in ln]
    # one line a second at most for each kind, whatever the number of clients
    elapsed = time.monotonic() - t0
    assert 1 <= len(lines) <= 3 * (elapsed + 1), (len(lines), elapsed)
    assert "connections already, the limit" in log
    assert "connections of one client already" in log
    assert "handshake not done in time" in log


def test_handshake_deadline_and_idle_timeout(served):
    d = served("--nbd-handshake-timeout", "2", "--nbd-idle-timeout", "2")
    silent = tcp_connect(d.port, "127.0.0.1")
    t0 = time.monotonic()
    assert wait_for(lambda: ended(silent), 6), "handshake never timed out"
    assert 1.5 <= time.monotonic() - t0 <= 5
    # an open connection that does nothing is closed; a busy one is not
    idle = nbd.NBD()
    idle.connect_uri(f"nbd://127.0.0.1:{d.port}/vg0/lv")
    busy = nbd.NBD()
    busy.connect_uri(f"nbd://127.0.0.1:{d.port}/vg0/lv")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        busy.pread(4096, 0)
        time.sleep(0.2)
    busy.pwrite(b"x" * 4096, 0)
    with pytest.raises(nbd.Error):
        idle.pread(4096, 0)
    busy.shutdown()
    assert "1 connection: idle for too long" in d.read_log()


def test_unread_large_reads_stay_within_the_buffers(served):
    """100 clients each send eight 32 MiB reads and read no reply: the
    daemon holds no more than --nbd-buffers for them, keeps serving others,
    and answers every request once the clients read."""
    d = served("--nbd-buffers", "256", "--nbd-conn-buffers", "64")
    pid = d.proc.pid
    rss0 = status(pid, "VmRSS")
    clients = []
    try:
        for _ in range(100):
            r = Raw(str(d.nbd_socket))
            r.go("vg0/lv")
            r.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            for k in range(8):
                r.request(CMD_READ, 0, 32 * MiB, cookie=k + 1)
            clients.append(r)
        time.sleep(3)
        rss = status(pid, "VmRSS")
        assert rss - rss0 <= (256 + 96) * 1024, (rss0, rss)
        assert status(pid, "VmPin") <= 256 * 1024
        # another client is still served (small requests need no buffers)
        h = nbd.NBD()
        h.connect_uri(d.nbd_uri("vg0/lv"))
        h.pwrite(b"y" * 4096, 4096)
        assert h.pread(4096, 4096) == b"y" * 4096
        h.shutdown()
        # nothing was dropped: every reply comes once a client reads (the
        # others go, and give back what they held)
        for r in clients[5:]:
            r.close()
        for r in clients[:5]:
            r.s.settimeout(60)
            got = set()
            for _ in range(8):
                err, cookie = r.simple_reply()
                assert err == 0
                total = 0
                while total < 32 * MiB:
                    chunk = r.s.recv(min(1 << 20, 32 * MiB - total))
                    assert chunk
                    total += len(chunk)
                got.add(cookie)
            assert got == set(range(1, 9))
    finally:
        for r in clients:
            r.close()
    # closed connections give everything back
    assert wait_for(lambda: status(pid, "VmRSS") - rss0 <= 96 * 1024, 20), \
        (rss0, status(pid, "VmRSS"))


def test_idle_connections_pin_nothing(served):
    """A connection that did I/O and went idle lets go of its pinned arena."""
    d = served()
    pid = d.proc.pid
    hs = []
    for _ in range(20):
        h = nbd.NBD()
        h.connect_uri(d.nbd_uri("vg0/lv"))
        h.pwrite(b"z" * 65536, 0)
        hs.append(h)
    assert status(pid, "VmPin") > 0
    assert wait_for(lambda: status(pid, "VmPin") == 0, 5), status(pid, "VmPin")
    # and takes it again at the next request
    assert hs[0].pread(65536, 0) == b"z" * 65536
    for h in hs:
        h.shutdown()
