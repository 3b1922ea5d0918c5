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
