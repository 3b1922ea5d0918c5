# SPDX-License-Identifier: MIT
"""Crash safety: kill -9 of dlvmd or of the CLI in the middle of metadata
changes leaves the VG at the old or the new state of the interrupted change,
every acknowledged change survives, and `dlvm check` passes; data a client
flushed before dlvmd is killed is still there after a restart.

The oracle is a model of the VG's LVs (name -> size in bytes) that follows
every change the tool acknowledged. A change whose outcome is unknown (the
daemon or the CLI died before answering) is resolved by reading the VG: it
must show either the state before or the state after that change, and the
model then follows what the VG shows."""

import filecmp
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from conftest import (DLVM, Dlvmd, UnixHTTPConnection, dlvm, dlvm_ok,
                      require_tool)

MiB = 1 << 20
EXTENT = 4 * MiB
CHANGES = 200
MIN_KILLS = 20


# ------------------------------------------------------------------ helpers

def api_cmd(sock, cmd, opts=None, args=(), timeout=30):
    """POST /v1/cmd/<cmd>; (status, body). Connection errors propagate."""
    conn = UnixHTTPConnection(sock, timeout=timeout)
    try:
        body = json.dumps({"opts": opts or {}, "args": list(args)})
        conn.request("POST", f"/v1/cmd/{cmd}", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, json.loads(text) if text else None
    finally:
        conn.close()


UNCERTAIN = (OSError, http.client.HTTPException, json.JSONDecodeError)


def api_lvs(sock):
    """The LVs of vg0 as the daemon reports them: {name: (size, stripes)}."""
    status, body = api_cmd(sock, "lvs", args=["vg0"])
    assert status == 200, f"lvs: HTTP {status}: {body}"
    return {r["lv_name"]: (int(r["lv_size"]), int(r["stripes"]))
            for r in body["report"]["rows"]}


def offline_cli(devices, *args, timeout=60):
    """The CLI in-process on the given devices (no daemon can answer)."""
    return dlvm("--devices", ",".join(map(str, devices)), *args,
                socket=devices[0].parent / "no-daemon.sock",
                state_dir=devices[0].parent / "no-state", timeout=timeout)


def offline_lvs(devices):
    rc, out, err = offline_cli(devices, "lvs", "--reportformat", "json", "--units", "b",
                               "--nosuffix", "-o", "lv_name,lv_size,stripes", "vg0")
    assert rc == 0, f"offline lvs: rc={rc}\n{out}\n{err}"
    doc = json.loads(out)
    return {r["lv_name"]: (int(r["lv_size"]), int(r["stripes"]))
            for r in doc["report"][0]["lv"]}


def offline_check(devices, when):
    rc, out, err = offline_cli(devices, "check", "vg0")
    assert rc == 0, f"offline check {when}: rc={rc}\n{out}\n{err}"


def make_vg(tmp_path, pv, state_dir, size="1G"):
    a = pv("pv0.img", size=size, state_dir=state_dir)
    b = pv("pv1.img", size=size, state_dir=state_dir)
    dlvm_ok("vgcreate", "vg0", a, b, socket=tmp_path / "no-daemon.sock",
            state_dir=state_dir)
    return [a, b]


class ChangeGen:
    """Random valid metadata changes against a model {name: (size, stripes)}.

    next(model) -> (kind, api_opts, api_args, cli_args, post_model)"""

    def __init__(self, rng, capacity):
        self.rng = rng
        self.capacity = capacity
        self.serial = 0

    def _name(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def next(self, model):
        rng = self.rng
        used = sum(size for size, _ in model.values())
        kinds = ["lvcreate"] * 4 + ["lvextend"] * 2 + ["lvremove"] * 2 + ["lvrename"] * 2
        if not model:
            kinds = ["lvcreate"]
        elif used > self.capacity * 0.5:
            kinds = ["lvremove", "lvrename"]
        kind = rng.choice(kinds)
        post = dict(model)
        if kind == "lvcreate":
            name = self._name("lv")
            if rng.random() < 0.3:
                size, stripes = 2 * EXTENT, 2
                opts = {"name": name, "size": "8m", "stripes": "2", "stripesize": "64k"}
                cli = ["lvcreate", "-n", name, "-L", "8m", "-i", "2", "-I", "64k", "vg0"]
            else:
                size, stripes = rng.choice([1, 2, 3]) * EXTENT, 1
                opts = {"name": name, "size": f"{size // MiB}m"}
                cli = ["lvcreate", "-n", name, "-L", f"{size // MiB}m", "vg0"]
            post[name] = (size, stripes)
            return kind, opts, ["vg0"], cli, post
        victim = rng.choice(sorted(model))
        if kind == "lvextend":
            # a striped LV grows by whole stripes: one extent on each
            size, stripes = post[victim]
            grow = f"+{stripes * EXTENT // MiB}m"
            post[victim] = (size + stripes * EXTENT, stripes)
            return (kind, {"size": grow}, [f"vg0/{victim}"],
                    ["lvextend", "-L", grow, f"vg0/{victim}"], post)
        if kind == "lvremove":
            del post[victim]
            return (kind, {"force": True}, [f"vg0/{victim}"],
                    ["lvremove", "-f", f"vg0/{victim}"], post)
        new = self._name("rn")
        post[new] = post.pop(victim)
        return kind, {}, ["vg0", victim, new], ["lvrename", "vg0", victim, new], post


# ------------------------------------------------- kill -9 of dlvmd

class ChangeClock:
    """Counts the changes the worker has started; the killer waits on it."""

    def __init__(self):
        self.cond = threading.Condition()
        self.started = 0
        self.closed = False

    def tick(self):
        with self.cond:
            self.started += 1
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_for(self, n, timeout=30):
        """Wait until n changes have started; False once closed."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self.started >= n, timeout)
            return not self.closed


class Killer(threading.Thread):
    """Kills dlvmd with SIGKILL at random moments and starts it again.

    Three kills in four are aimed: they let 0-4 changes go by, wait for the
    next one to start and fire 0-10 ms later, inside the daemon's commit
    more often than not (a change takes a few ms). The fourth fires 5-100 ms
    after the last restart, wherever the worker is then. After each restart
    `dlvm check vg0` runs through the daemon before the next change starts
    (the worker passes the gate first); its failures are collected."""

    def __init__(self, d, rng, clock):
        super().__init__(daemon=True)
        self.d = d
        self.rng = rng
        self.clock = clock
        self.gate = threading.Lock()
        self.kills = 0
        self.error = None
        self.checks = 0
        self.check_failures = []

    def hard_kill(self):
        self.d.proc.send_signal(signal.SIGKILL)
        self.d.proc.wait()
        self.d.log.close()

    def run(self):
        try:
            while True:
                if self.kills % 4 != 3:
                    target = self.clock.started + 1 + self.rng.randrange(5)
                    if not self.clock.wait_for(target):
                        break
                    time.sleep(self.rng.uniform(0, 0.010))
                else:
                    time.sleep(self.rng.uniform(0.005, 0.1))
                    if self.clock.closed:
                        break
                with self.gate:
                    self.hard_kill()
                    self.kills += 1
                    self.d.start()
                    rc, out, err = self.d.cli("check", "vg0")
                    self.checks += 1
                if rc != 0:
                    self.check_failures.append(
                        f"check after kill {self.kills}: rc={rc}\n{out.strip()}\n{err.strip()}")
        except BaseException as e:  # pytest.fail inside start() included
            self.error = f"killer: {e!r}"


def wait_lvs(sock, deadline=60):
    """lvs through the daemon, retrying while it is down or restarting."""
    end = time.monotonic() + deadline
    while True:
        try:
            return api_lvs(sock)
        except UNCERTAIN:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


def test_kill_dlvmd_during_metadata_changes(tmp_path, pv, state_dir):
    devices = make_vg(tmp_path, pv, state_dir)
    d = Dlvmd(state_dir)
    d.start()
    seed = int(os.environ.get("DLVM_CRASH_SEED", time.time_ns()))
    rng = random.Random(seed)
    seed_note = f"(seed {seed}, kill times vary; state in {tmp_path})"
    gen = ChangeGen(rng, capacity=2 * 1024 * MiB)
    clock = ChangeClock()
    killer = Killer(d, rng, clock)
    killer.start()
    try:
        run_changes_under_kills(d, devices, gen, killer, clock, seed_note)
    finally:
        clock.close()
        killer.join(60)
        d.kill()


def run_changes_under_kills(d, devices, gen, killer, clock, seed_note):
    empty_state = d.state_dir.parent / "empty-state"
    empty_state.mkdir()
    model = {}
    acked = uncertain = applied_uncertain = 0
    changes = 0
    try:
        # At least CHANGES changes, and on until the killer struck MIN_KILLS
        # times (a loaded machine makes each kill and restart slower), with a
        # hard cap so a broken killer cannot make this run forever.
        for i in range(CHANGES * 4):
            if i >= CHANGES and killer.kills >= MIN_KILLS:
                break
            changes += 1
            assert killer.error is None, killer.error
            kind, opts, args, cli_args, post = gen.next(model)
            via_cli = i % 4 == 3
            with killer.gate:
                pass
            clock.tick()
            if via_cli:
                # An empty state dir: if dlvmd is down the CLI's in-process
                # fallback finds no VG instead of racing the restart.
                rc, out, err = dlvm(*cli_args, socket=d.socket, state_dir=empty_state)
                outcome = "acked" if rc == 0 else "unknown"
                detail = f"rc={rc}\n{out}\n{err}"
            else:
                try:
                    status, body = api_cmd(d.socket, kind, opts, args)
                    outcome = "acked" if status == 200 else "refused"
                    detail = f"HTTP {status}: {body}"
                except UNCERTAIN as e:
                    outcome, detail = "unknown", repr(e)
            if outcome == "refused":
                pytest.fail(f"change {i} {kind} {args} refused though valid: {detail} "
                            f"{seed_note}")
            if outcome == "acked":
                acked += 1
                model = post
            else:
                uncertain += 1
                seen = wait_lvs(d.socket)
                assert seen in (model, post), (
                    f"change {i} {kind} {args} interrupted ({detail}): the VG shows "
                    f"neither the old nor the new state\nold: {model}\nnew: {post}\n"
                    f"seen: {seen} {seed_note}")
                applied_uncertain += seen == post
                model = seen
            if i % 10 == 9:
                seen = wait_lvs(d.socket)
                assert seen == model, (f"after change {i}: acknowledged changes lost\n"
                                       f"expected: {model}\nseen: {seen} {seed_note}")
    finally:
        clock.close()
        killer.join(60)
    assert not killer.is_alive(), "killer thread hung"
    assert killer.error is None, killer.error
    print(f"crash: {changes} changes, {acked} acknowledged, {uncertain} interrupted "
          f"({applied_uncertain} of them applied), {killer.kills} kills, "
          f"{killer.checks} checks ({len(killer.check_failures)} failed), "
          f"{len(model)} LVs at the end")
    assert killer.kills >= MIN_KILLS, f"only {killer.kills} kills: the test did not test much"
    assert uncertain >= 5, f"only {uncertain} changes interrupted"

    # The end: one more kill; the state must hold online and offline.
    failures = list(killer.check_failures)
    killer.hard_kill()
    d.start()
    assert wait_lvs(d.socket) == model, f"after the last kill {seed_note}"
    rc, out, err = d.cli("check", "vg0")
    if rc != 0:
        failures.append(f"check through dlvmd at the end: rc={rc}\n{out}\n{err}")
    assert d.stop() == 0
    assert offline_lvs(devices) == model
    rc, out, err = offline_cli(devices, "check", "vg0")
    if rc != 0:
        failures.append(f"offline check at the end: rc={rc}\n{out}\n{err}")
    assert not failures, (
        f"dlvm check failed {len(failures)} times ({killer.checks} restarts) "
        f"{seed_note}; the first:\n" + "\n".join(failures[:3]))


# ------------------------------------------------- kill -9 of the CLI

def test_kill_cli_during_offline_changes(tmp_path, pv, state_dir):
    devices = make_vg(tmp_path, pv, state_dir)
    seed = int(os.environ.get("DLVM_CRASH_SEED", time.time_ns()))
    rng = random.Random(seed)
    seed_note = f"(DLVM_CRASH_SEED={seed}; state in {tmp_path})"
    gen = ChangeGen(rng, capacity=2 * 1024 * MiB)
    env = dict(os.environ)
    env.pop("DLVM_SOCKET", None)
    env.pop("DLVM_STATE_DIR", None)
    base = [str(DLVM), "--socket", str(tmp_path / "no-daemon.sock"),
            "--state-dir", str(tmp_path / "no-state"),
            "--devices", ",".join(map(str, devices))]

    # The kill comes 0-limit s after the start. limit adapts so that about
    # half the runs finish: it starts at 20 ms, grows after a kill and
    # shrinks after a run that finished, so kills cluster around the commit
    # whatever this machine's speed.
    limit = 0.020
    model = {}
    acked = killed = applied_killed = 0
    failures = []
    for i in range(CHANGES):
        kind, _, _, cli_args, post = gen.next(model)
        p = subprocess.Popen(base + cli_args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)
        time.sleep(rng.uniform(0, limit))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        if p.returncode == 0:
            acked += 1
            model = post
            limit = max(0.002, limit * 0.9)
        elif p.returncode == -signal.SIGKILL:
            killed += 1
            seen = offline_lvs(devices)
            assert seen in (model, post), (
                f"change {i} {kind} {cli_args} killed: the VG shows neither the old "
                f"nor the new state\nold: {model}\nnew: {post}\nseen: {seen} {seed_note}")
            applied_killed += seen == post
            model = seen
            limit = min(2.0, limit * 1.1)
        else:
            pytest.fail(f"change {i} {cli_args} failed by itself: rc={p.returncode}\n"
                        f"{out}\n{err} {seed_note}")
        rc, out, err = offline_cli(devices, "check", "vg0")
        if rc != 0:
            failures.append(f"check after change {i} {cli_args} "
                            f"({'finished' if p.returncode == 0 else 'killed'}): "
                            f"rc={rc}\n{out.strip()}\n{err.strip()}")
        if i % 10 == 9:
            assert offline_lvs(devices) == model, f"after change {i} {seed_note}"
    print(f"crash (CLI): {CHANGES} changes, {acked} finished, {killed} killed "
          f"({applied_killed} of them applied), kill within {limit * 1000:.0f} ms at "
          f"the end, {len(failures)} failed checks, {len(model)} LVs at the end")
    assert killed >= 20, f"only {killed} of {CHANGES} runs were killed"
    assert acked >= 20, f"only {acked} of {CHANGES} runs finished"
    assert offline_lvs(devices) == model

    # The daemon loads what the killed runs left and agrees.
    d = Dlvmd(state_dir)
    d.start()
    try:
        assert wait_lvs(d.socket) == model
        rc, out, err = d.cli("check", "vg0")
        if rc != 0:
            failures.append(f"check through dlvmd at the end: rc={rc}\n{out}\n{err}")
    finally:
        d.kill()
    assert not failures, (
        f"dlvm check failed {len(failures)} times in {CHANGES} changes {seed_note}; "
        f"the first:\n" + "\n".join(failures[:3]))


# ------------------------------------------------- flushed data survives

def nbd_run(*cmd, timeout=120):
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}: rc={p.returncode}\n" \
                              f"{p.stdout}\n{p.stderr}"
    return p.stdout


def qemu_io(uri, *cmds, read_only=False):
    """Run qemu-io commands on uri; fail on a non-zero exit or a failed
    command (pattern mismatch, I/O error)."""
    args = ["qemu-io", "-f", "raw"] + (["-r"] if read_only else [])
    for c in cmds:
        args += ["-c", c]
    out = nbd_run(*args, uri)
    assert "failed" not in out.lower(), out
    return out


def test_flushed_data_survives_kill(vg0, tmp_path):
    require_tool("nbdcopy")
    require_tool("qemu-io")
    import nbd

    d = vg0
    size = 48 * MiB
    for name in ("copy", "qio", "fua"):
        d.cli_ok("lvcreate", "-n", name, "-L", f"{size // MiB}m", "vg0")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))

    # nbdcopy flushes before it exits.
    nbd_run("nbdcopy", src, d.nbd_uri("vg0/copy"))
    # qemu-io: writes at odd places, then an explicit flush.
    qemu_io(d.nbd_uri("vg0/qio"), "write -P 0x5a 1 1000", "write -P 0xc3 12345677 70001",
            "write -P 0x11 47m 1m", "flush")
    # libnbd: writes with FUA, no flush at all.
    h = nbd.NBD()
    h.connect_uri(d.nbd_uri("vg0/fua"))
    blocks = {}
    for off in (0, MiB + 3, 20 * MiB + 511, size - 65536):
        data = os.urandom(65536)
        h.pwrite(data, off, nbd.CMD_FLAG_FUA)
        blocks[off] = data

    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.log.close()
    try:
        h.shutdown()
    except Exception:
        pass
    del h
    d.start()

    back = tmp_path / "back.bin"
    nbd_run("nbdcopy", d.nbd_uri("vg0/copy"), back)
    assert back.stat().st_size == size
    assert filecmp.cmp(src, back, shallow=False), "data nbdcopy flushed was lost"

    qemu_io(d.nbd_uri("vg0/qio"), "read -P 0x5a 1 1000", "read -P 0xc3 12345677 70001",
            "read -P 0x11 47m 1m", "read -P 0 0 1", "read -P 0 1001 4095",
            "read -P 0 12415678 4096", read_only=True)

    h = nbd.NBD()
    h.connect_uri(d.nbd_uri("vg0/fua"))
    try:
        for off, data in blocks.items():
            got = h.pread(len(data), off)
            bad = [o for o in range(0, len(data), 512) if got[o:o + 512] != data[o:o + 512]]
            assert not bad, f"FUA write at {off}: sectors at {bad[:8]}... lost"
    finally:
        h.shutdown()
    rc, out, err = d.cli("check", "vg0")
    assert rc == 0, f"{out}\n{err}"
