# SPDX-License-Identifier: MIT
"""Hardening of dlvmd against what its clients and its environment can do:
a permission switch that reaches open connections, paths the API may touch,
a state directory others can plant links in, lock waits that block nobody,
bad bytes in URLs and names that reach the log."""

import errno

import nbd
import pytest

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
