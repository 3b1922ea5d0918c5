"""dlvm dump on the PVs of a shared VG: the lease area is decoded along with
the metadata (docs/format/lease.md): the header, the delta lease of each
host id in use, every resource's leader and ballots, and the lock table."""
import json
import re

from conftest import Dlvmd, dlvm_ok, stop_clean


def test_dump_decodes_the_lease_area(tmp_path, pv):
    a = pv("pv0.img", size="512M")
    b = pv("pv1.img", size="512M")
    offline = dict(socket=tmp_path / "no-daemon.sock", state_dir=tmp_path / "offline")
    dlvm_ok("--devices", f"{a},{b}", "vgcreate", "--shared", "--max-hosts", "8", "vgs", a, b,
            **offline)

    # before any host joined: a formatted area, no delta lease, a free VG lease
    out, _ = dlvm_ok("dump", a, **offline)
    assert re.search(r"^lease area in vgs/\[lvmlock\] at offset \d+", out, re.M), out
    assert re.search(r"^  max_hosts +8$", out, re.M), out
    assert re.search(r"^Delta leases at offset \d+:\n  \(no host id ever used\)\n"
                     r"Resource 0 \(VG lease\)", out, re.M), out
    assert re.search(r"^  leader +owner=0 generation=0 lver=0 timestamp=0 \(free\) writer=0$",
                     out, re.M), out

    d = Dlvmd(tmp_path / "h1", devices=[a, b],
              extra=["--io-timeout", "1", "--host-id", "1"])
    d.start()
    try:
        d.cli_ok("lvcreate", "-n", "l1", "-L", "8m", "vgs")
        rows, _ = d.cli_ok("hosts", "vgs", "--reportformat", "json", "-o",
                           "host_id,host_name,host_generation")
        me = json.loads(rows)["report"][0]["host"][0]
        assert me["host_id"] == "1"
        gen = int(me["host_generation"])

        # the dump runs beside the daemon: read-only, no lock
        out, _ = dlvm_ok("dump", a, **offline)
        host = re.search(r"^  host 1 +name=(\S+) generation=(\d+) timestamp=(\d+) "
                         r"io_timeout=1$", out, re.M)
        assert host, out
        assert host.group(1) == me["host_name"]
        assert int(host.group(2)) == gen and int(host.group(3)) > 0
        # the VG lease was last taken by host 1 (lvcreate) and given back
        leader = re.search(r"^Resource 0 \(VG lease\) at offset \d+:\n  leader +owner=1 "
                           r"generation=(\d+) lver=(\d+) timestamp=\d+ \((held|free)\) "
                           r"writer=1$", out, re.M)
        assert leader, out
        assert int(leader.group(1)) == gen and int(leader.group(2)) >= 1
        assert re.search(r"^  ballot host 1 +lver=\d+ mbal=\d+ bal=\d+ inp=1/", out, re.M), out
        # the lock table: l1 active here, exclusively
        assert re.search(rf"^Lock table .*\n(  .*\n)*  vgs/l1 \[host 1 ex gen {gen}\]$",
                         out, re.M), out
    finally:
        stop_clean(d)

    # released at stop: the delta lease shows it
    out, _ = dlvm_ok("dump", a, **offline)
    assert re.search(r"^  host 1 +released: name=", out, re.M), out


def test_dump_decodes_properties(tmp_path, pv):
    """PROPERTY_SET edits show their LV, key and value (escaped), and deletes."""
    a = pv("pv0.img", size="256M")
    offline = dict(socket=tmp_path / "no-daemon.sock", state_dir=tmp_path / "offline")
    dlvm_ok("--devices", str(a), "vgcreate", "vg1", a, **offline)
    dlvm_ok("--devices", str(a), "lvcreate", "-n", "l1", "-L", "8m", "-an", "vg1", **offline)
    dlvm_ok("--devices", str(a), "lvchange", "--property", "owner=team a\"b",
            "--addtag", "gold", "vg1/l1", **offline)
    dlvm_ok("--devices", str(a), "lvchange", "--deltag", "gold", "vg1/l1", **offline)
    out, _ = dlvm_ok("dump", a, **offline)
    assert re.search(r'PROPERTY_SET.*id=\d+ key=owner value="team a\\x22b"$', out, re.M), out
    assert re.search(r"PROPERTY_SET.*id=\d+ key=tag\.gold value=\"\"$", out, re.M), out
    assert re.search(r"PROPERTY_SET.*id=\d+ key=tag\.gold deleted$", out, re.M), out
    assert "ignorable," not in out, out
