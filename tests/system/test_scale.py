# SPDX-License-Identifier: MIT
"""Scale: 10,000 LVs in one VG, created through the native API over one
persistent HTTP connection; they are all reported, survive a restart, pass
`dlvm check`, and creating one more costs about what it cost at 100."""

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


def test_ten_thousand_lvs(tmp_path, pv, state_dir):
    a = pv("pv0.img", size="16G", state_dir=state_dir)
    dlvm_ok("vgcreate", "-s", "1m", "vg0", a, socket=tmp_path / "no-daemon.sock",
            state_dir=state_dir)
    d = Dlvmd(state_dir)
    d.start()
    api = ApiSession(d.socket)
    try:
        def create(i):
            t = time.perf_counter()
            api.ok("lvcreate", {"name": f"lv{i:05d}", "size": "1m"}, ["vg0"])
            return time.perf_counter() - t

        start = time.monotonic()
        for i in range(SAMPLE):
            create(i)
        at_100 = [create(i) for i in range(SAMPLE, 2 * SAMPLE)]
        for i in range(2 * SAMPLE, COUNT - SAMPLE):
            create(i)
        at_10k = [create(i) for i in range(COUNT - SAMPLE, COUNT)]
        elapsed = time.monotonic() - start
        med_100 = statistics.median(at_100)
        med_10k = statistics.median(at_10k)
        ratio = med_10k / med_100
        print(f"scale: {COUNT} lvcreate through the API in {elapsed:.1f} s "
              f"({api.reconnects} reconnects); median lvcreate at {SAMPLE} LVs "
              f"{med_100 * 1000:.2f} ms, at {COUNT} LVs {med_10k * 1000:.2f} ms "
              f"(ratio {ratio:.2f}); p90 at {COUNT}: "
              f"{sorted(at_10k)[int(0.9 * SAMPLE)] * 1000:.2f} ms")

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
        d.kill()

    assert ratio <= MAX_RATIO, (
        f"lvcreate at {COUNT} LVs takes {med_10k * 1000:.2f} ms, {ratio:.1f}x the "
        f"{med_100 * 1000:.2f} ms at {SAMPLE} LVs (bound {MAX_RATIO}x)")
