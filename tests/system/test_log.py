# SPDX-License-Identifier: MIT
"""dlvmd's log: GET /v1/log, --debug, and the option table behind --help,
--man and the configuration file."""

import re
import subprocess
import time

from conftest import DLVMD, Dlvmd, require_tool, stop_clean

# Every option dlvmd has had: none may go missing from --help or --man.
OPTIONS = [
    "--state-dir", "--devices", "--pv-dir", "--nbd-listen", "--host-id", "--io-timeout",
    "--thin-pool-autoextend-threshold", "--thin-pool-autoextend-percent",
    "--nbd-cpus", "--debug", "--config", "--foreground", "--help", "--version", "--man",
    "--tls", "--tls-psk", "--tls-certificates", "--tls-access",
    "--nbd-max-connections", "--nbd-max-client-connections", "--nbd-handshake-timeout",
    "--nbd-idle-timeout", "--nbd-conn-buffers", "--nbd-buffers",
    # the Cinder API
    "--cinder-pool", "--cinder-listen", "--cinder-type", "--cinder-auth-strategy",
    "--cinder-noauth-network",
]
CONFIG_KEYS = [
    "state_dir", "devices", "pv_dir", "nbd_listen", "nbd_cpus", "host_id", "io_timeout",
    "thin_pool_autoextend_threshold", "thin_pool_autoextend_percent", "debug",
    "tls", "tls_psk", "tls_certificates", "tls_access",
    "nbd_max_connections", "nbd_max_client_connections", "nbd_handshake_timeout",
    "nbd_idle_timeout", "nbd_conn_buffers", "nbd_buffers",
    # the Cinder API
    "cinder_pool", "cinder_listen", "cinder_type", "cinder_auth_strategy",
    "cinder_noauth_network",
]


def run_dlvmd(*args):
    p = subprocess.run([str(DLVMD), *map(str, args)], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def log_lines(d, query=""):
    status, body = d.api("GET", "/v1/log" + query)
    assert status == 200, body
    return body


def test_log_lines_and_since(vg0):
    body = log_lines(vg0)
    msgs = [ln["message"] for ln in body["lines"]]
    assert "ready" in msgs and "vg0: loaded (2 PVs, 0 LVs)" in msgs, msgs
    first = body["lines"][0]
    assert first["seq"] == 1 and first["level"] == "info" and first["subsystem"] == "main"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    seqs = [ln["seq"] for ln in body["lines"]]
    assert seqs == sorted(seqs) and body["last"] == seqs[-1]

    # since: only what came after
    last = body["last"]
    vg0.cli_ok("lvcreate", "-n", "l1", "-L", "8m", "vg0")
    later = log_lines(vg0, f"?since={last}")
    assert later["lines"] and all(ln["seq"] > last for ln in later["lines"])
    assert any(ln["message"].startswith("vg0/l1: activated") for ln in later["lines"]), later
    assert log_lines(vg0, f"?since={later['last']}")["lines"] == []

    # level: that level or more severe
    vg0.api("POST", "/v1/cmd/lvcreate", {"opts": {"name": "l1", "size": "8m"}, "args": ["vg0"]})
    errors = log_lines(vg0, "?level=error")["lines"]
    assert errors and all(ln["level"] == "error" for ln in errors)
    assert any("lvcreate: failed" in ln["message"] for ln in errors), errors

    for bad in ("?since=x", "?since=-1", "?level=loud"):
        status, body = vg0.api("GET", "/v1/log" + bad)
        assert status == 400 and body["error"]["code"] == "EINVAL", (bad, body)
    status, _ = vg0.api("POST", "/v1/log", {})
    assert status == 405


def test_log_name_cannot_forge_a_line(vg0):
    """A name the client chooses is escaped: it cannot start a line."""
    name = "a\nnbd: vg0: fenced\x1b[31m"
    status, _ = vg0.api("POST", "/v1/cmd/lvcreate",
                        {"opts": {"name": name, "size": "8m"}, "args": ["vg0"]})
    assert status == 400
    failed = [ln for ln in log_lines(vg0)["lines"] if "lvcreate: failed" in ln["message"]]
    assert failed, log_lines(vg0)
    msg = failed[-1]["message"]
    assert "\n" not in msg and "\x1b" not in msg
    assert "a\\x0anbd: vg0: fenced\\x1b[31m" in msg, msg
    log = vg0.read_log()
    assert not any(ln.startswith("nbd: vg0: fenced") for ln in log.splitlines()), log
    assert "dlvmd: lvcreate: failed: " in log and "a\\x0anbd: vg0: fenced" in log


def test_debug_unknown_subsystem_refused(state_dir):
    rc, _, err = run_dlvmd("--state-dir", state_dir, "--nbd-listen", "none",
                           "--debug", "nbd,disks")
    assert rc == 1
    assert err == ("dlvmd: --debug: unknown subsystem 'disks' (known: main, lease, thin, "
                   "nbd, journal, api, jobs, agent, all)\n")
    cfg = state_dir.parent / "dlvmd.ini"
    cfg.write_text(f"state_dir = {state_dir}\ndebug = bogus\n")
    rc, _, err = run_dlvmd("--config", cfg)
    assert rc == 1 and "unknown subsystem 'bogus'" in err


def test_debug_nbd_shows_connections(tmp_path, state_dir, pv):
    require_tool("nbdinfo")
    a = pv("pv0.img", state_dir=state_dir)
    d = Dlvmd(state_dir, devices=[a], extra=["--debug", "nbd,api"])
    d.start()
    try:
        d.cli_ok("vgcreate", "vgd", a)
        d.cli_ok("lvcreate", "-n", "l", "-L", "8m", "vgd")
        subprocess.run(["nbdinfo", "--size", d.nbd_uri("vgd/l")], check=True,
                       capture_output=True, timeout=30)
        wait_for(lambda: "vgd/l: client: closed" in d.read_log(), "the close line")
        log = d.read_log()
        assert "dlvmd: debug: nbd: client: connected" in log, log
        assert "dlvmd: debug: nbd: vgd/l: client: opened" in log, log
        assert re.search(r"dlvmd: debug: api: POST /v1/cmd/lvcreate: 200", log), log
        debug = log_lines(d, "?level=debug")["lines"]
        assert any(ln["level"] == "debug" and ln["subsystem"] == "nbd" for ln in debug)
        info = log_lines(d, "?level=info")["lines"]
        assert all(ln["level"] != "debug" for ln in info)
    finally:
        stop_clean(d)


def test_debug_off_prints_no_debug_line(vg0):
    vg0.cli_ok("lvs")
    assert "debug:" not in vg0.read_log()


def test_help_and_man_list_every_option():
    rc, out, _ = run_dlvmd("--help")
    assert rc == 0
    listed = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", out, re.M))
    assert listed == set(OPTIONS), listed ^ set(OPTIONS)
    for key in CONFIG_KEYS:
        assert key in out, key
    assert all(len(line) <= 80 for line in out.splitlines()), out

    rc, man, _ = run_dlvmd("--man")
    assert rc == 0 and man.startswith(".TH DLVMD 8")
    in_man = set(o.replace("\\-", "-") for o in re.findall(r"^\.B (?:\\-\w, )?((?:\\-)+[\w\\-]+)",
                                                             man, re.M))
    assert set(OPTIONS) <= in_man, set(OPTIONS) - in_man
    for key in CONFIG_KEYS:
        assert key in man.replace("\\-", "-"), key


def test_every_option_is_accepted_on_the_command_line():
    """Each option of --help is known to getopt: with --help after it,
    dlvmd prints the help instead of refusing the option."""
    args = {"--state-dir": "x", "--devices": "x", "--pv-dir": "x", "--nbd-listen": "none",
            "--host-id": "1",
            "--io-timeout": "5", "--thin-pool-autoextend-threshold": "80",
            "--thin-pool-autoextend-percent": "10", "--nbd-cpus": "any", "--debug": "all",
            "--config": "x", "--tls": "on", "--tls-psk": "x", "--tls-certificates": "x",
            "--tls-access": "x", "--nbd-max-connections": "10",
            "--nbd-max-client-connections": "5", "--nbd-handshake-timeout": "3",
            "--nbd-idle-timeout": "0", "--nbd-conn-buffers": "64", "--nbd-buffers": "512",
            "--cinder-pool": "vg0/pool0", "--cinder-listen": "none",
            "--cinder-type": "x", "--cinder-auth-strategy": "noauth",
            "--cinder-noauth-network": "no"}
    for opt in OPTIONS:
        if opt in ("--help", "--version", "--man"):
            continue
        argv = [opt] + ([args[opt]] if opt in args else []) + ["--help"]
        rc, out, err = run_dlvmd(*argv)
        assert rc == 0 and out.startswith("Usage: dlvmd"), (opt, err)


def test_config_keys_accepted_and_refused(tmp_path, state_dir):
    cfg = tmp_path / "dlvmd.ini"
    cfg.write_text("[dlvmd]\nstate_dir = %s\nnbd_listen = none\ndebug = api\n"
                   "io_timeout = 5\nnbd_cpus = any\n" % state_dir)
    d = Dlvmd(state_dir, nbd_listen=None)
    d.command = lambda: [str(DLVMD), "--config", str(cfg)]
    d.start()
    try:
        d.api("GET", "/v1/health")
        wait_for(lambda: "dlvmd: debug: api: GET /v1/health: 200" in d.read_log(),
                 "the api debug line")
    finally:
        stop_clean(d)
    cfg.write_text("state_dir = %s\nfrobnicate = 1\n" % state_dir)
    rc, _, err = run_dlvmd("--config", cfg)
    assert rc == 1 and err == f"dlvmd: {cfg}:2: unknown key 'frobnicate'\n"
    cfg.write_text("state_dir = %s\nio_timeout = 0\n" % state_dir)
    rc, _, err = run_dlvmd("--config", cfg)
    assert rc == 1 and err == "dlvmd: --io-timeout 0: must be a number from 1 to 300\n"


def test_journal_stream_gets_priorities(tmp_path, state_dir):
    """Under systemd (JOURNAL_STREAM names stderr) lines start with their
    syslog priority; another stderr gets the plain lines."""
    import os
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as f:
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        rc = subprocess.run([str(DLVMD), "--state-dir", str(state_dir), "--host-id", "0"],
                            stderr=f, env=env, timeout=30).returncode
    assert rc == 1
    assert err_path.read_text() == "<3>dlvmd: --host-id 0: must be a number from 1 to 2000\n"
    env = dict(os.environ, JOURNAL_STREAM="1:1")
    p = subprocess.run([str(DLVMD), "--state-dir", str(state_dir), "--host-id", "0"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.stderr == "dlvmd: --host-id 0: must be a number from 1 to 2000\n"
