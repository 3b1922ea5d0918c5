# SPDX-License-Identifier: MIT
"""Scale: 10,000 LVs in one VG, created through the native API over one
persistent HTTP connection; they are all reported, survive a restart, pass
`dlvm check`, and creating one more costs about what it cost at 100.

The latencies are compared under the same load: a second dlvmd serves a VG
of 100 LVs, and the last creates go to the two daemons in turn, so that
other work on the machine weighs on both samples alike."""

import json
import statistics
import time

from conftest import Dlvmd, UnixHTTPConnection, dlvm_ok

MiB = 1 << 20
COUNT = 10_000
SAMPLE = 100
MAX_RATIO = 10.0


class ApiSession:
    """One keep-alive HTTP connection to dlvmd's control socket."""

    def __init__(self, sock):
        self.sock = sock
        self.conn = UnixHTTPConnection(sock, timeout=120)
        self.reconnects = 0

    def cmd(self, name, opts=None, args=()):
        body = json.dumps({"opts": opts or {}, "args": list(args)})
        self.conn.request("POST", f"/v1/cmd/{name}", body=body,
                          headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        text = resp.read()
        if resp.will_close:
            # The server closed the connection: count it, as it defeats
            # the point of keeping one open.
            self.reconnects += 1
            self.conn.close()
            self.conn = UnixHTTPConnection(self.sock, timeout=120)
        return resp.status, json.loads(text) if text else None

    def ok(self, name, opts=None, args=()):
        status, body = self.cmd(name, opts, args)
        assert status == 200, f"{name} {opts} {args}: HTTP {status}: {body}"
        return body

    def close(self):
        self.conn.close()


def lv_names_api(api):
    body = api.ok("lvs", args=["vg0"])
    return [r["lv_name"] for r in body["report"]["rows"]]


def make_vg(tmp_path, pv, state_dir, name, size):
    path = pv(name, size=size, state_dir=state_dir)
    dlvm_ok("vgcreate", "-s", "1m", "vg0", path, socket=tmp_path / "no-daemon.sock",
            state_dir=state_dir)
    return path


def timed_create(api, name):
    t = time.perf_counter()
    api.ok("lvcreate", {"name": name, "size": "1m"}, ["vg0"])
    return time.perf_counter() - t


def ms(x):
    return f"{x * 1000:.2f} ms"


def test_ten_thousand_lvs(tmp_path, pv, state_dir):
    a = make_vg(tmp_path, pv, state_dir, "pv0.img", "16G")
    small_dir = tmp_path / "small"
    small_dir.mkdir()
    make_vg(tmp_path, pv, small_dir, "small.img", "1G")
    d = Dlvmd(state_dir)
    d.start()
    small = Dlvmd(small_dir)
    small.start()
    api = ApiSession(d.socket)
    small_api = ApiSession(small.socket)
    try:
        start = time.monotonic()
        for i in range(SAMPLE):
            timed_create(small_api, f"s{i}")
        early_100 = [timed_create(api, f"lv{i:05d}") for i in range(2 * SAMPLE)][SAMPLE:]
        for i in range(2 * SAMPLE, COUNT - SAMPLE):
            timed_create(api, f"lv{i:05d}")
        at_100, at_10k = [], []
        for i in range(COUNT - SAMPLE, COUNT):
            at_10k.append(timed_create(api, f"lv{i:05d}"))
            at_100.append(timed_create(small_api, f"s{i}"))
        elapsed = time.monotonic() - start
        med_100 = statistics.median(at_100)
        med_10k = statistics.median(at_10k)
        ratio = med_10k / med_100
        print(f"scale: {COUNT} lvcreate through the API in {elapsed:.1f} s "
              f"({api.reconnects} reconnects); median lvcreate at {SAMPLE} LVs "
              f"{ms(med_100)} (at the start {ms(statistics.median(early_100))}), "
              f"at {COUNT} LVs {ms(med_10k)}: ratio {ratio:.2f}; p90 at {COUNT} "
              f"{ms(sorted(at_10k)[int(0.9 * SAMPLE)])}, at {SAMPLE} "
              f"{ms(sorted(at_100)[int(0.9 * SAMPLE)])}")
        small_api.close()
        small.kill()

        expected = {f"lv{i:05d}" for i in range(COUNT)}
        names = lv_names_api(api)
        assert len(names) == COUNT and set(names) == expected

        # The CLI's JSON report lists them all.
        out, _ = d.cli_ok("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                          "-o", "lv_name,lv_size", "vg0", timeout=300)
        rows = json.loads(out)["report"][0]["lv"]
        assert len(rows) == COUNT
        assert {r["lv_name"] for r in rows} == expected
        assert all(int(r["lv_size"]) == MiB for r in rows)
        api.close()

        # They survive a restart and the metadata checks out.
        t = time.monotonic()
        d.restart()
        print(f"scale: restart with {COUNT} LVs took {time.monotonic() - t:.2f} s")
        api = ApiSession(d.socket)
        names = lv_names_api(api)
        assert len(names) == COUNT and set(names) == expected
        out, err = d.cli_ok("check", "vg0", timeout=300)
        assert f"{COUNT} LVs" in out + err, out + err

        # One more, and one removed, after the restart: the journal still
        # takes changes at this size.
        api.ok("lvcreate", {"name": "extra", "size": "1m"}, ["vg0"])
        api.ok("lvremove", {"force": True}, ["vg0/lv00000"])
        names = set(lv_names_api(api))
        assert len(names) == COUNT and "extra" in names and "lv00000" not in names
        api.close()
        assert d.stop() == 0
        out, err = dlvm_ok("--devices", a, "check", "vg0",
                           socket=tmp_path / "no-daemon.sock",
                           state_dir=tmp_path / "no-state", timeout=300)
        assert f"{COUNT} LVs" in out + err, out + err
    finally:
        api.close()
        small_api.close()
        d.kill()
        small.kill()

    assert ratio <= MAX_RATIO, (
        f"lvcreate at {COUNT} LVs takes {med_10k * 1000:.2f} ms, {ratio:.1f}x the "
        f"{med_100 * 1000:.2f} ms at {SAMPLE} LVs (bound {MAX_RATIO}x)")
