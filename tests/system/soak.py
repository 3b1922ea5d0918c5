# SPDX-License-Identifier: MIT
"""Soak test of a shared VG under faults: several hosts, verified writes,
metadata changes, and hosts killed or stopped at random.

Run by `make soak` (SOAK_SECONDS, default 1800) and, for two minutes, by
tests/system/test_soak.py in `make check`:

    /usr/bin/python3 tests/system/soak.py --seconds 1800 [--hosts 4] [--dir D]

What runs, all at once, for the given time:

- HOSTS dlvmd processes (host ids 1..HOSTS) on one shared VG of two PVs,
  with a thin pool;
- per host, a data worker: a thin volume d<h> written by fio with
  verify=crc32c in rounds of 16 MiB of random 4 KiB writes (a round writes
  one of two regions, alternately, and ends with a flush); a round that
  fio finished is "good". When the host serving d<h> dies, the worker takes
  the volume over on a live host (lvchange -aey, retried until the dead
  host's lease has expired) and first re-reads the last good round with
  fio --verify_only: it must be intact;
- per host, a metadata worker: on any live host, creates an inactive thin
  volume (a family nobody holds, so any host may change it), snapshots it,
  extends it, removes the snapshot and sometimes a volume; every change
  a command acknowledged is recorded, one whose command died with its host
  is "uncertain" (either outcome is right);
- a fault thread: every few seconds one host (never the last live one) is
  killed with SIGKILL, or stopped with SIGSTOP for longer than the
  dead-host time and then continued (it must have fenced itself; it is
  then restarted), and restarted after a while.

At the end every host is brought back, every data volume's last good round
is verified once more, every acknowledged metadata change is checked in
`lvs`, the hosts stop, and `dlvm check` of the VG must be clean. The counts
are printed as one JSON line ("soak: {...}"); the exit status is 0 only
when nothing was lost.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Dlvmd, dlvm  # noqa: E402

IO_TIMEOUT = 2
DEAD = 5 * IO_TIMEOUT          # dead-host time
REGION = 16 << 20              # bytes a data round writes
VOLUME = 2 * REGION            # size of a data volume
FENCED = re.compile(r"renewal refused|lost its lockspace lease|fenced")


class Soak:
    def __init__(self, workdir, hosts, seconds, seed):
        self.dir = Path(workdir)
        self.nhosts = hosts
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = []
        self.counts = dict(rounds=0, writes_verified=0, takeovers=0, kills=0, stops=0,
                           metadata_changes=0, uncertain=0, fenced=0)
        self.hosts = []
        self.alive = set()
        self.serving = {}      # data volume -> host index serving it
        self.good = {}         # data volume -> (region, seed) of its last good round
        self.expected = {}     # LV name -> size in bytes, or None when removed
        self.uncertain = set()

    # ---------------------------------------------------------------- hosts
    def setup(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        offline = self.dir / "offline"
        pvs = []
        for i in range(2):
            p = self.dir / f"pv{i}.img"
            self.must(dlvm("pvcreate", "--size", "1G", p, socket=self.dir / "none.sock",
                           state_dir=offline), "pvcreate")
            pvs.append(p)
        self.must(dlvm("--devices", ",".join(map(str, pvs)), "vgcreate", "--shared",
                       "--max-hosts", "8", "vgs", *pvs, socket=self.dir / "none.sock",
                       state_dir=offline), "vgcreate")
        self.pvs = pvs
        for h in range(1, self.nhosts + 1):
            d = Dlvmd(self.dir / f"h{h}", devices=pvs,
                      extra=["--io-timeout", str(IO_TIMEOUT), "--host-id", str(h)])
            d.start(timeout=60)
            self.hosts.append(d)
            self.alive.add(h)
        self.must(self.host(1).cli("lvcreate", "--type", "thin-pool", "-L", "1200m",
                                   "--chunksize", "64k", "-n", "pool", "vgs"), "pool")
        for h in range(1, self.nhosts + 1):
            self.must(self.host(h).cli("lvcreate", "-V", str(VOLUME) + "b", "-T", "vgs/pool",
                                       "-n", f"d{h}"), f"d{h}")
            self.serving[f"d{h}"] = h

    def host(self, h):
        return self.hosts[h - 1]

    def must(self, res, what):
        rc, out, err = res
        if rc != 0:
            raise RuntimeError(f"{what}: rc={rc}: {err.strip()}")
        return out

    def live_host(self, avoid=None):
        with self.lock:
            choice = sorted(self.alive - {avoid}) or sorted(self.alive)
        return self.rng.choice(choice) if choice else None

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)
        print(f"soak: FAIL {msg}", flush=True)

    # ------------------------------------------------------------------ fio
    def fio(self, h, lv, region, seed, verify_only=False):
        """One fio run on host h's NBD socket; returns (ok, output)."""
        args = ["fio", "--name=soak", "--ioengine=nbd",
                f"--uri={self.host(h).nbd_uri('vgs/' + lv)}", "--rw=randwrite", "--bs=4k",
                f"--offset={region * REGION}", f"--size={REGION}", "--iodepth=8",
                "--verify=crc32c", "--verify_fatal=1", f"--randseed={seed}",
                "--end_fsync=1", "--output-format=normal"]
        if verify_only:
            args.append("--verify_only")
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return False, "fio timed out"
        return p.returncode == 0, p.stdout + p.stderr

    @staticmethod
    def bad_data(out):
        return re.search(r"verify|bad magic|crc32c|bad header", out, re.I) and \
            not re.search(r"connect|Connection|transport|server|I/O error|EIO", out)

    def take_over(self, lv, final=False):
        """Serve lv on a live host: the one serving it, if alive, or the
        first that can take it over. Gives up when the run stops, unless
        final."""
        t0 = time.monotonic()
        while (final or not self.stop.is_set()) and time.monotonic() - t0 < 6 * DEAD:
            with self.lock:
                cur = self.serving[lv]
                alive = cur in self.alive
            if alive:
                rc, _, _ = self.host(cur).cli("lvchange", "-aey", f"vgs/{lv}")
                if rc == 0:
                    return cur
            h = self.live_host(avoid=cur)
            if h is None:
                time.sleep(0.5)
                continue
            rc, _, err = self.host(h).cli("lvchange", "-aey", f"vgs/{lv}")
            if rc == 0:
                with self.lock:
                    self.serving[lv] = h
                    self.counts["takeovers"] += 1
                return h
            time.sleep(0.5)
        return None

    def data_worker(self, lv):
        needs_check = False
        while not self.stop.is_set():
            h = self.take_over(lv) if needs_check else self.serving[lv]
            if h is None:
                if not self.stop.is_set():
                    self.fail(f"{lv}: no live host could take it over in {6 * DEAD} s")
                return
            if needs_check and lv in self.good:
                region, seed = self.good[lv]
                ok, out = self.fio(h, lv, region, seed, verify_only=True)
                if ok:
                    with self.lock:
                        self.counts["writes_verified"] += REGION // 4096
                    needs_check = False
                elif self.bad_data(out):
                    self.fail(f"{lv}: last good round (region {region}, seed {seed}) "
                              f"lost on host {h}:\n{out[-2000:]}")
                    return
                else:
                    continue  # the host died meanwhile: again
            needs_check = False
            # never the region of the last good round: an interrupted round
            # must not spoil what is checked after it
            region = 1 - self.good[lv][0] if lv in self.good else 0
            seed = self.rng.randrange(1, 1 << 30)
            ok, out = self.fio(h, lv, region, seed)
            if ok:
                with self.lock:
                    self.good[lv] = (region, seed)
                    self.counts["rounds"] += 1
                    self.counts["writes_verified"] += REGION // 4096
            elif self.bad_data(out) and h in self.alive:
                self.fail(f"{lv}: fio round on host {h} found bad data:\n{out[-2000:]}")
                return
            else:
                needs_check = True

    # -------------------------------------------------------------- metadata
    def meta_cmd(self, h, name, size, *args):
        """Run a metadata command on host h; record what it changed."""
        rc, _, err = self.host(h).cli(*args)
        with self.lock:
            if rc == 0:
                self.expected[name] = size
                self.uncertain.discard(name)
                self.counts["metadata_changes"] += 1
            elif h not in self.alive or self.host(h).proc.poll() is not None or \
                    "fenced" in err or "lease" in err:
                self.uncertain.add(name)
                self.counts["uncertain"] += 1
        return rc == 0

    def meta_worker(self, w):
        i = 0
        kept = []  # this worker's volumes, oldest first
        while not self.stop.is_set():
            h = self.live_host()
            if h is None:
                time.sleep(0.5)
                continue
            i += 1
            m, s = f"m{w}_{i}", f"s{w}_{i}"
            if not self.meta_cmd(h, m, 8 << 20, "lvcreate", "-V", "8m", "-T", "vgs/pool",
                                 "-an", "-n", m):
                continue
            self.meta_cmd(h, s, 8 << 20, "lvcreate", "-s", "-an", "-n", s, f"vgs/{m}")
            self.meta_cmd(h, m, 12 << 20, "lvextend", "-L", "12m", f"vgs/{m}")
            self.meta_cmd(h, s, None, "lvremove", "-y", f"vgs/{s}")
            kept.append(m)
            if self.rng.random() < 0.5 or len(kept) > 20:
                old = kept.pop(0)
                if not self.meta_cmd(h, old, None, "lvremove", "-y", f"vgs/{old}"):
                    kept.insert(0, old)
            time.sleep(self.rng.uniform(0.1, 0.5))

    # ---------------------------------------------------------------- faults
    def fault_worker(self):
        down = {}  # host -> when to bring it back
        while not self.stop.wait(self.rng.uniform(4, 8)):
            now = time.monotonic()
            for h, when in list(down.items()):
                if now >= when:
                    self.restart(h)
                    del down[h]
            with self.lock:
                candidates = sorted(self.alive)
            if len(candidates) <= 2:
                continue
            h = self.rng.choice(candidates)
            if self.rng.random() < 0.5:
                self.kill(h)
            else:
                self.pause(h)
            down[h] = time.monotonic() + self.rng.uniform(DEAD, 2 * DEAD)
        for h in list(down):
            self.restart(h)

    def kill(self, h):
        with self.lock:
            self.alive.discard(h)
            self.counts["kills"] += 1
        self.host(h).kill()

    def pause(self, h):
        d = self.host(h)
        with self.lock:
            self.alive.discard(h)
            self.counts["stops"] += 1
        os.kill(d.proc.pid, signal.SIGSTOP)
        self.stop.wait(DEAD + IO_TIMEOUT)
        os.kill(d.proc.pid, signal.SIGCONT)
        # its lease ran out while it was stopped: it must see so and stop
        # using it (its renewal is refused, its I/O fenced)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3 * IO_TIMEOUT and not FENCED.search(d.read_log()):
            time.sleep(0.1)
        if FENCED.search(d.read_log()):
            with self.lock:
                self.counts["fenced"] += 1
        d.kill()

    def restart(self, h):
        d = self.host(h)
        d.kill()
        try:
            d.start(timeout=60)
        except BaseException as e:  # Dlvmd.start fails through pytest
            self.fail(f"host {h} did not restart: {e}")
            return
        with self.lock:
            self.alive.add(h)

    # ----------------------------------------------------------------- check
    def final_check(self):
        for h in range(1, self.nhosts + 1):
            if self.host(h).proc.poll() is not None:
                self.restart(h)
        for lv in sorted(self.serving):
            if lv not in self.good:
                continue
            h = self.take_over(lv, final=True)
            region, seed = self.good[lv]
            ok, out = self.fio(h, lv, region, seed, verify_only=True) if h else (False, "")
            if not ok:
                self.fail(f"{lv}: final verify of region {region} on host {h}:\n"
                          f"{out[-2000:]}")
            else:
                self.counts["writes_verified"] += REGION // 4096
        rc, out, err = self.host(1).cli("lvs", "--reportformat", "json", "-o",
                                        "lv_name,lv_size", "--units", "b", "vgs")
        if rc != 0:
            self.fail(f"lvs: {err}")
            return
        rows = {r["lv_name"]: r["lv_size"] for r in json.loads(out)["report"][0]["lv"]}
        for name, size in sorted(self.expected.items()):
            if name in self.uncertain:
                continue
            have = rows.get(name)
            want = None if size is None else f"{size}B"
            if have != want:
                self.fail(f"{name}: acknowledged as {want or 'removed'}, lvs shows "
                          f"{have or 'nothing'}")
        for d in self.hosts:
            d.stop()
        rc, out, err = dlvm("--devices", ",".join(map(str, self.pvs)), "check", "vgs",
                            socket=self.dir / "none.sock", state_dir=self.dir / "offline")
        if rc != 0:
            self.fail(f"dlvm check: rc={rc}\n{out}\n{err}")

    # ------------------------------------------------------------------- run
    def run(self):
        t0 = time.monotonic()
        self.setup()
        threads = [threading.Thread(target=self.data_worker, args=(f"d{h}",), daemon=True)
                   for h in range(1, self.nhosts + 1)]
        threads += [threading.Thread(target=self.meta_worker, args=(w,), daemon=True)
                    for w in range(1, self.nhosts + 1)]
        threads.append(threading.Thread(target=self.fault_worker, daemon=True))
        for t in threads:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(timeout=300)
            if t.is_alive():
                self.fail(f"{t.name} did not stop")
        self.final_check()
        self.counts["seconds"] = round(time.monotonic() - t0)
        self.counts["errors"] = len(self.errors)
        print("soak: " + json.dumps(self.counts), flush=True)
        return not self.errors

    def cleanup(self):
        for d in self.hosts:
            if d.proc and d.proc.poll() is None:
                try:
                    os.kill(d.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                d.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", 1800)))
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--dir", help="work directory (default: a new one under /var/tmp)")
    a = ap.parse_args()
    workdir = a.dir or tempfile.mkdtemp(prefix="dlvm-soak-", dir="/var/tmp")
    print(f"soak: {a.hosts} hosts, {a.seconds} s, seed {a.seed}, in {workdir}", flush=True)
    s = Soak(workdir, a.hosts, a.seconds, a.seed)
    try:
        ok = s.run()
    finally:
        s.cleanup()
    if ok and not a.dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
