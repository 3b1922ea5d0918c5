# SPDX-License-Identifier: MIT
"""Who may reach dlvmd: its Unix sockets are for root and group dlvm only,
whatever the umask it was started under."""

import grp
import os
import stat
import subprocess

from conftest import Dlvmd, stop_clean

NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


def test_sockets_are_not_open_to_others_under_umask_0(state_dir):
    """Started under umask 0, the API socket let any local user run
    pvcreate and create root-owned files anywhere."""
    old = os.umask(0)
    try:
        d = Dlvmd(state_dir, nbd_listen="none")
        d.start()
    finally:
        os.umask(old)
    try:
        try:
            group = grp.getgrnam("dlvm").gr_gid
        except KeyError:
            group = None
        for path in (d.socket, d.nbd_socket):
            st = os.stat(path)
            assert stat.S_ISSOCK(st.st_mode)
            if group is None:
                assert stat.S_IMODE(st.st_mode) == 0o600, (path, oct(st.st_mode))
            else:
                assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group
        # another user cannot connect to either
        for path in (d.socket, d.nbd_socket):
            p = subprocess.run(NOBODY + ["/usr/bin/python3", "-c",
                                         "import socket, sys; s = socket.socket(socket.AF_UNIX);"
                                         "s.connect(sys.argv[1])", str(path)],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode != 0 and "PermissionError" in p.stderr, (path, p.stderr)
        # the owner still can
        status, body = d.api("GET", "/v1/health")
        assert status == 200, body
    finally:
        stop_clean(d)


def test_failed_accepts_are_logged_once_a_second(daemon):
    """Out of file descriptors, every refused accept logged a line (ten a
    second while a client kept connecting); now at most one a second, with
    a count. When the clients go, new connections are served again."""
    import resource
    import socket
    import time
    soft, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (64, hard))
    held = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(0.5)
            try:
                s.connect(str(daemon.nbd_socket))  # the backlog takes it
            except (socket.timeout, BlockingIOError):
                s.close()
                break  # the backlog is full too
            held.append(s)
        time.sleep(1)
        before = daemon.read_log().count("server: accept:")
        time.sleep(3)
        lines = daemon.read_log().count("server: accept:") - before
        assert 1 <= lines <= 4, daemon.read_log()
        assert "more failed in the last second" in daemon.read_log()
    finally:
        for s in held:
            s.close()
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 10
    while True:
        p = subprocess.run(["nbdinfo", "--list", f"nbd+unix:///?socket={daemon.nbd_socket}"],
                           capture_output=True, text=True, timeout=30)
        if p.returncode == 0:
            break
        assert time.monotonic() < deadline, p.stderr
        time.sleep(0.2)
