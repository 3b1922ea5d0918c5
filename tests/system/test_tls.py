# SPDX-License-Identifier: MIT
"""NBD over TLS and the access rules of dlvmd (docs/tls.md).

Keys and certificates are made here with psktool and certtool (gnutls-bin);
the clients are the real ones: nbdinfo and nbdcopy with nbds:// URIs,
qemu-img with tls-creds-psk and tls-creds-x509 objects, and a raw socket
for the replies the NBD protocol document prescribes before TLS.

Exports of the dlvmd these tests start (vg0 on two 1 GiB PVs):
  vg0/a1, vg0/a2   alice's (access rule "alice: vg0/a*")
  vg0/b            bob's ("bob: vg0/b")
  vg0/pub          everybody's ("*: vg0/pub")
"""

import json
import os
import pwd
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile

import pytest

from conftest import Dlvmd, free_tcp_port, require_tool, stop_clean

MiB = 1 << 20

NBD_MAGIC = 0x4E42444D41474943
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REP_ACK = 1
REP_SERVER = 2
REP_ERR_POLICY = 2**31 + 2
REP_ERR_INVALID = 2**31 + 3
REP_ERR_TLS_REQD = 2**31 + 5
REP_ERR_UNKNOWN = 2**31 + 6
REP_INFO = 3
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_GO = 1, 2, 3, 5, 7
OPT_STRUCTURED_REPLY = 8

ACCESS = "# who may open what\nalice: vg0/a*\nbob: vg0/b\n*: vg0/pub\n"
LVS = ["a1", "a2", "b", "pub"]


def run(*cmd, user=None, timeout=120, input=None):
    """Run a command (as `user` through runuser); (rc, stdout, stderr)."""
    if user:
        cmd = (require_tool("runuser"), "-u", user, "--", *cmd)
    p = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout,
                       input=input)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def run_ok(*cmd, **kw):
    rc, out, err = run(*cmd, **kw)
    assert rc == 0, f"{' '.join(map(str, cmd))}: rc={rc}\n{out}\n{err}"
    return out


# ---------------------------------------------------------------- keys

def make_psk(path, *users):
    for u in users:
        run_ok(require_tool("psktool"), "-u", u, "-p", path)
    os.chmod(path, 0o600)
    return path


def certtool(*args):
    return run_ok(require_tool("certtool"), *args)


def make_ca(d, name):
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.info").write_text(f"cn = {name}\nca\ncert_signing_key\nexpiration_days = 30\n")
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", d / "ca-key.pem")
    certtool("--generate-self-signed", "--load-privkey", d / "ca-key.pem",
             "--template", d / "ca.info", "--outfile", d / "ca-cert.pem")
    return d


def make_cert(ca, out, kind, cn):
    """kind 'server' or 'client': out/KIND-cert.pem, out/KIND-key.pem, and
    the CA's certificate as out/ca-cert.pem (the layout qemu and libnbd read)."""
    out.mkdir(parents=True, exist_ok=True)
    usage = ("dns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\n"
             if kind == "server" else "tls_www_client\n")
    info = out / f"{kind}.info"
    info.write_text(f"organization = dlvm tests\ncn = {cn}\n{usage}"
                    "encryption_key\nsigning_key\nexpiration_days = 30\n")
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", out / f"{kind}-key.pem")
    certtool("--generate-certificate", "--load-ca-certificate", ca / "ca-cert.pem",
             "--load-ca-privkey", ca / "ca-key.pem", "--load-privkey", out / f"{kind}-key.pem",
             "--template", info, "--outfile", out / f"{kind}-cert.pem")
    shutil.copy(ca / "ca-cert.pem", out / "ca-cert.pem")
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """PSK files and X.509 directories, made once for the module."""
    d = tmp_path_factory.mktemp("keys")
    k = {"psk": make_psk(d / "keys.psk", "alice", "bob", "carol"),
         # alice's name with another key: a guess
         "wrong": make_psk(d / "wrong.psk", "alice")}
    for u in ("alice", "bob", "carol"):
        # one identity per file, for qemu (DIR/keys.psk)
        line = next(ln for ln in k["psk"].read_text().splitlines() if ln.startswith(u + ":"))
        (d / f"psk-{u}").mkdir()
        (d / f"psk-{u}" / "keys.psk").write_text(line + "\n")
    ca = make_ca(d / "ca", "dlvm test CA")
    k["server"] = make_cert(ca, d / "server", "server", "localhost")
    k["alice"] = make_cert(ca, d / "alice", "client", "alice")
    other = make_ca(d / "other-ca", "another CA")
    k["mallory"] = make_cert(other, d / "mallory", "client", "alice")
    shutil.copy(ca / "ca-cert.pem", k["mallory"] / "ca-cert.pem")  # trusts the server
    k["anon"] = d / "anon"  # the CA only: no client certificate
    k["anon"].mkdir()
    shutil.copy(ca / "ca-cert.pem", k["anon"] / "ca-cert.pem")
    k["dir"] = d
    return k


# ---------------------------------------------------------------- daemon

def start_tls(vg0, tmp_path, *args, access=True, listen=True):
    """Stop the vg0 fixture's dlvmd; start one with a TCP listener and args.
    Returns (dlvmd, port)."""
    if vg0.proc and vg0.proc.poll() is None:
        assert vg0.stop() == 0
    extra = list(args)
    if access:
        (tmp_path / "access").write_text(ACCESS)
        extra += ["--tls-access", tmp_path / "access"]
    port = free_tcp_port()
    d = Dlvmd(vg0.state_dir, nbd_listen=f"127.0.0.1:{port}" if listen else "none",
              extra=[str(a) for a in extra])
    d.start()
    return d, port


@pytest.fixture
def lvs(vg0):
    for lv in LVS:
        vg0.cli_ok("lvcreate", "-n", lv, "-L", "16m", "vg0")
    return vg0


@pytest.fixture
def psk_daemon(lvs, tmp_path, keys):
    d, port = start_tls(lvs, tmp_path, "--tls-psk", keys["psk"])
    d.port = port
    yield d
    stop_clean(d)


def nbds(port, name, user="alice", psk=None):
    q = f"?tls-psk-file={psk}" if psk else ""
    return f"nbds://{user}@127.0.0.1:{port}/{name}{q}"


def exports_listed(uri, **kw):
    out = run_ok(require_tool("nbdinfo"), "--list", "--json", uri, **kw)
    return sorted(e["export-name"] for e in json.loads(out)["exports"])


# ---------------------------------------------------------------- raw protocol

class RawClient:
    """Fixed newstyle option haggling on a plain socket."""

    def __init__(self, port=None, path=None):
        if path:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(str(path))
        else:
            self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(10)
        magic, opts, _flags = struct.unpack(">QQH", self.recv(18))
        assert (magic, opts) == (NBD_MAGIC, OPTS_MAGIC)
        self.s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed by the server")
            b += c
        return b

    def option(self, opt, data=b""):
        """Send an option; the replies up to the final one, [(type, data)]."""
        self.s.sendall(struct.pack(">QII", OPTS_MAGIC, opt, len(data)) + data)
        replies = []
        while True:
            magic, o, typ, ln = struct.unpack(">QIII", self.recv(20))
            assert (magic, o) == (REP_MAGIC, opt)
            replies.append((typ, self.recv(ln)))
            if typ == REP_ACK or typ & 2**31:
                return replies

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def go_data(name):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", 0)


# ---------------------------------------------------------------- tests

def test_tcp_without_credentials_refused_at_start(vg0, tmp_path, keys):
    """TLS is required on TCP unless --tls says otherwise: without
    credentials dlvmd does not start, and says what to do."""
    assert vg0.stop() == 0
    port = free_tcp_port()
    base = [str(Dlvmd(vg0.state_dir).command()[0]), "--state-dir", str(vg0.state_dir)]
    rc, _, err = run(*base, "--nbd-listen", f"127.0.0.1:{port}", timeout=30)
    assert rc == 1 and "requires TLS" in err and "--tls-psk" in err and "--tls off" in err, err
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls", "on", timeout=30)
    assert rc == 1 and "--tls on: no credentials" in err, err
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls", "sometimes", timeout=30)
    assert rc == 1 and "'sometimes' is not one of off|on|require" in err, err

    bad = tmp_path / "bad.psk"
    bad.write_text("alice:00112233\nbob:xyz0\n")
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls-psk", bad, timeout=30)
    assert rc == 1 and f"{bad}:2: the key is not hexadecimal" in err, err
    bad.write_text("# keys\nnokey\n")
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls-psk", bad, timeout=30)
    assert rc == 1 and f"{bad}:2: expected 'IDENTITY:HEXKEY'" in err, err
    acc = tmp_path / "bad.access"
    acc.write_text("alice: vg0/*\nbob vg0/b\n")
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls-psk", keys["psk"],
                     "--tls-access", acc, timeout=30)
    assert rc == 1 and f"{acc}:2: expected 'IDENTITY: PATTERN...'" in err, err
    acc.write_text("alice: vg0/a;rm\n")
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls-access", acc, timeout=30)
    assert rc == 1 and "pattern 'vg0/a;rm'" in err, err
    rc, _, err = run(*base, "--nbd-listen", "none", "--tls-certificates", tmp_path, timeout=30)
    assert rc == 1 and "server-cert.pem: No such file" in err, err
    assert not (vg0.state_dir / "dlvmd.sock").exists()


def test_psk_data_reads_back(psk_daemon, keys, tmp_path):
    """nbdcopy writes and reads over TLS-PSK, large and small requests,
    several connections: what is read back is what was written."""
    d, port, psk = psk_daemon, psk_daemon.port, keys["psk"]
    log = d.read_log()
    assert f"nbd: TCP 127.0.0.1:{port}: TLS required; PSK: 3 identities" in log, log
    assert "access rules from" in log
    data = os.urandom(16 * MiB)
    src = tmp_path / "src.img"
    src.write_bytes(data)
    nbdcopy = require_tool("nbdcopy")
    for args in (["--request-size=4096", "--requests=64"], ["--request-size=8388608"], []):
        run_ok(nbdcopy, *args, src, nbds(port, "vg0/a1", psk=psk))
        back = tmp_path / "back.img"
        back.unlink(missing_ok=True)
        run_ok(nbdcopy, *args, nbds(port, "vg0/a1", psk=psk), back)
        assert back.read_bytes() == data, args
    # the same bytes through the Unix socket (no TLS)
    out = tmp_path / "unix.img"
    run_ok(nbdcopy, d.nbd_uri("vg0/a1"), out)
    assert out.read_bytes() == data
    # and over TLS on the Unix socket, which accepts STARTTLS
    out.unlink()
    run_ok(nbdcopy, f"nbds+unix://alice@/vg0/a1?socket={d.nbd_socket}&tls-psk-file={psk}", out)
    assert out.read_bytes() == data
    assert "TLS handshake failed" not in d.read_log()


def test_wrong_key_or_identity_refused(psk_daemon, keys):
    d, port = psk_daemon, psk_daemon.port
    nbdinfo = require_tool("nbdinfo")
    rc, _, err = run(nbdinfo, "--size", nbds(port, "vg0/a1", psk=keys["wrong"]))
    assert rc != 0, "a wrong key was accepted"
    rc, _, err = run(nbdinfo, "--size", nbds(port, "vg0/a1", user="dave", psk=keys["psk"]))
    assert rc != 0, "an identity without a key was accepted"
    assert d.read_log().count("TLS handshake failed") >= 2, d.read_log()
    # the right key still works
    assert run_ok(nbdinfo, "--size", nbds(port, "vg0/a1", psk=keys["psk"])).strip() == \
        str(16 * MiB)


def test_identity_sees_only_its_exports(psk_daemon, keys):
    d, port, psk = psk_daemon, psk_daemon.port, keys["psk"]
    assert exports_listed(nbds(port, "", "alice", psk)) == ["vg0/a1", "vg0/a2", "vg0/pub"]
    assert exports_listed(nbds(port, "", "bob", psk)) == ["vg0/b", "vg0/pub"]
    # carol has a key but no rule of her own: what "*" gives
    assert exports_listed(nbds(port, "", "carol", psk)) == ["vg0/pub"]
    # the Unix socket is not restricted
    assert exports_listed(f"nbd+unix:///?socket={d.nbd_socket}") == \
        ["vg0/a1", "vg0/a2", "vg0/b", "vg0/pub"]
    nbdinfo = require_tool("nbdinfo")
    rc, _, err = run(nbdinfo, "--size", nbds(port, "vg0/b", "alice", psk))
    assert rc != 0 and "no export named 'vg0/b'" in err, err
    rc, _, err = run(nbdinfo, "--size", nbds(port, "vg0/a1", "bob", psk))
    assert rc != 0 and "no export named 'vg0/a1'" in err, err
    assert run_ok(nbdinfo, "--size", nbds(port, "vg0/b", "bob", psk)).strip() == str(16 * MiB)
    # an LV made later falls under the rules as it appears
    d.cli_ok("lvcreate", "-n", "a3", "-L", "4m", "vg0")
    assert "vg0/a3" in exports_listed(nbds(port, "", "alice", psk))
    assert "vg0/a3" not in exports_listed(nbds(port, "", "bob", psk))


def test_plain_tcp_refused_when_tls_required(psk_daemon):
    """FORCEDTLS, as the NBD protocol document describes it."""
    d, port = psk_daemon, psk_daemon.port
    rc, _, err = run(require_tool("nbdinfo"), "--size", f"nbd://127.0.0.1:{port}/vg0/pub")
    assert rc != 0 and "requires TLS" in err, err
    c = RawClient(port)
    for opt, data in ((OPT_LIST, b""), (OPT_GO, go_data("vg0/pub")),
                      (OPT_STRUCTURED_REPLY, b""), (0x4242, b"")):
        [(typ, _)] = c.option(opt, data)
        assert typ == REP_ERR_TLS_REQD, (opt, hex(typ))
    [(typ, _)] = c.option(OPT_STARTTLS, b"x")
    assert typ == REP_ERR_INVALID
    assert c.option(OPT_ABORT)[0][0] == REP_ACK
    c.close()
    # EXPORT_NAME cannot be refused with an error: the connection ends
    c = RawClient(port)
    c.s.sendall(struct.pack(">QII", OPTS_MAGIC, OPT_EXPORT_NAME, 7) + b"vg0/pub")
    assert c.closed()
    c.close()
    # the Unix socket does not require TLS
    c = RawClient(path=d.nbd_socket)
    names = [r[1][4:].decode() for r in c.option(OPT_LIST) if r[0] == REP_SERVER]
    assert "vg0/b" in names
    c.close()


def test_tls_on_and_off(lvs, tmp_path, keys):
    """--tls on: TCP takes plain clients (with the rules of "*") and TLS
    ones; --tls off: STARTTLS is refused by policy, plain TCP serves."""
    d, port = start_tls(lvs, tmp_path, "--tls", "on", "--tls-psk", keys["psk"])
    try:
        assert "TLS offered, not required (--tls on)" in d.read_log()
        assert exports_listed(f"nbd://127.0.0.1:{port}/") == ["vg0/pub"]
        assert exports_listed(nbds(port, "", "alice", keys["psk"])) == \
            ["vg0/a1", "vg0/a2", "vg0/pub"]
    finally:
        stop_clean(d)
    d, port = start_tls(lvs, tmp_path, "--tls", "off", access=False)
    try:
        assert "plain TCP, no TLS (--tls off)" in d.read_log()
        c = RawClient(port)
        assert c.option(OPT_STARTTLS)[0][0] == REP_ERR_POLICY
        names = [r[1][4:].decode() for r in c.option(OPT_LIST) if r[0] == REP_SERVER]
        assert sorted(names) == ["vg0/a1", "vg0/a2", "vg0/b", "vg0/pub"]
        c.close()
    finally:
        stop_clean(d)


def qemu_img(*args):
    return run_ok(require_tool("qemu-img"), *args)


def qemu_nbd_opts(port, name, creds):
    return f"driver=nbd,host=127.0.0.1,port={port},export={name},tls-creds={creds}"


def test_qemu_img_psk(psk_daemon, keys, tmp_path):
    port = psk_daemon.port
    obj = f"tls-creds-psk,id=tls0,endpoint=client,dir={keys['dir'] / 'psk-alice'},username=alice"
    out = qemu_img("info", "--output=json", "--object", obj, "--image-opts",
                   qemu_nbd_opts(port, "vg0/a2", "tls0"))
    assert '"virtual-size": 16777216' in out, out
    data = os.urandom(16 * MiB)
    (tmp_path / "src.raw").write_bytes(data)
    qemu_img("convert", "-n", "-f", "raw", tmp_path / "src.raw", "--object", obj,
             "--target-image-opts", qemu_nbd_opts(port, "vg0/a2", "tls0"))
    qemu_img("convert", "--object", obj, "--image-opts", qemu_nbd_opts(port, "vg0/a2", "tls0"),
             "-O", "raw", tmp_path / "back.raw")
    assert (tmp_path / "back.raw").read_bytes() == data
    # bob's export does not exist for alice
    obj_b = obj.replace("id=tls0", "id=tls1")
    rc, _, err = run(require_tool("qemu-img"), "info", "--object", obj_b, "--image-opts",
                     qemu_nbd_opts(port, "vg0/b", "tls1"))
    assert rc != 0, err


def test_x509(lvs, tmp_path, keys):
    """Certificates: the client's CN is its identity; a certificate of
    another CA is refused; a client without one gets the rules of "*"."""
    d, port = start_tls(lvs, tmp_path, "--tls-certificates", keys["server"])
    try:
        assert "X.509 from" in d.read_log() and "verified against ca-cert.pem" in d.read_log()

        def uri(who, name=""):
            return f"nbds://127.0.0.1:{port}/{name}?tls-certificates={keys[who]}"
        assert exports_listed(uri("alice")) == ["vg0/a1", "vg0/a2", "vg0/pub"]
        assert exports_listed(uri("anon")) == ["vg0/pub"]
        # CN=alice from another CA: not alice (GnuTLS does not even send a
        # certificate the server's CA did not issue)
        assert exports_listed(uri("mallory")) == ["vg0/pub"]
        rc, _, err = run(require_tool("nbdinfo"), "--size", uri("mallory", "vg0/a1"))
        assert rc != 0 and "no export named 'vg0/a1'" in err, err

        data = os.urandom(4 * MiB)
        (tmp_path / "x.img").write_bytes(data)
        run_ok(require_tool("nbdcopy"), tmp_path / "x.img", uri("alice", "vg0/a1"))
        obj = f"tls-creds-x509,id=tls0,endpoint=client,dir={keys['alice']}"
        out = qemu_img("info", "--output=json", "--object", obj, "--image-opts",
                       qemu_nbd_opts(port, "vg0/a1", "tls0"))
        assert '"virtual-size": 16777216' in out, out
        qemu_img("convert", "--object", obj, "--image-opts",
                 qemu_nbd_opts(port, "vg0/a1", "tls0"), "-O", "raw", tmp_path / "back.raw")
        assert (tmp_path / "back.raw").read_bytes()[:4 * MiB] == data
    finally:
        stop_clean(d)


def starttls_x509(c, certdir):
    """STARTTLS on a RawClient, then a TLS handshake (OpenSSL, through
    Python) with the client certificate of certdir."""
    assert c.option(OPT_STARTTLS) == [(REP_ACK, b"")]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certdir / "ca-cert.pem"))
    ctx.load_cert_chain(str(certdir / "client-cert.pem"), str(certdir / "client-key.pem"))
    c.s = ctx.wrap_socket(c.s, server_hostname="localhost")


def test_x509_protocol_after_starttls(lvs, tmp_path, keys):
    """Option haggling under TLS: the identity's view, STARTTLS only once,
    structured replies negotiated before STARTTLS forgotten; a client
    certificate the CA did not issue ends the connection."""
    d, port = start_tls(lvs, tmp_path, "--tls", "on", "--tls-certificates", keys["server"])
    try:
        c = RawClient(port)
        assert c.option(OPT_STRUCTURED_REPLY) == [(REP_ACK, b"")]
        starttls_x509(c, keys["alice"])
        names = [r[1][4:].decode() for r in c.option(OPT_LIST) if r[0] == REP_SERVER]
        assert names == ["vg0/a1", "vg0/a2", "vg0/pub"]
        assert c.option(OPT_STARTTLS)[0][0] == REP_ERR_INVALID
        assert c.option(OPT_GO, go_data("vg0/b"))[0][0] == REP_ERR_UNKNOWN
        # the GO reply goes on in simple replies: structured was reset
        replies = c.option(OPT_GO, go_data("vg0/a1"))
        assert [t for t, _ in replies] == [REP_INFO, REP_INFO, REP_ACK], replies
        c.s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 7, 0, 512))  # READ 512
        magic, err, cookie = struct.unpack(">IIQ", c.recv(16))
        assert (magic, err, cookie) == (0x67446698, 0, 7)
        assert len(c.recv(512)) == 512
        c.close()

        c = RawClient(port)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            starttls_x509(c, keys["mallory"])
            c.option(OPT_LIST)
        c.close()
        assert "client certificate refused" in d.read_log(), d.read_log()
    finally:
        stop_clean(d)


@pytest.fixture
def nobody_dir():
    """A directory user nobody can read, outside pytest's private tmp."""
    d = tempfile.mkdtemp(prefix="dlvm-tls-")
    nobody = pwd.getpwnam("nobody")
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unprivileged_user_cannot_open_over_tcp(psk_daemon, keys, nobody_dir):
    """As user nobody: no export over TCP without the key, whatever the
    client tries; with the key (a copy nobody may read) it works, so the
    refusals are about the key."""
    d, port = psk_daemon, psk_daemon.port
    nobody = pwd.getpwnam("nobody")
    nbdinfo = require_tool("nbdinfo")
    guess = os.path.join(nobody_dir, "guess.psk")
    run_ok(require_tool("psktool"), "-u", "alice", "-p", guess, user="nobody")
    good = os.path.join(nobody_dir, "good.psk")
    shutil.copy(keys["psk"], good)
    os.chown(good, nobody.pw_uid, nobody.pw_gid)

    for uri in (f"nbd://127.0.0.1:{port}/vg0/pub", f"nbd://127.0.0.1:{port}/vg0/a1",
                nbds(port, "vg0/a1", psk=guess), nbds(port, "vg0/pub", psk=guess),
                nbds(port, "vg0/a1", psk=keys["psk"])):  # root's file: unreadable
        rc, out, err = run(nbdinfo, "--size", uri, user="nobody")
        assert rc != 0, f"nobody opened {uri}: {out}"
    rc, out, err = run(nbdinfo, "--list", f"nbd://127.0.0.1:{port}/", user="nobody")
    assert rc != 0 and "vg0/" not in out, out
    # the raw protocol, as nobody: every option but STARTTLS is refused
    probe = ("import socket,struct\n"
             f"s=socket.create_connection(('127.0.0.1',{port}));s.settimeout(10)\n"
             "s.recv(18);s.sendall(struct.pack('>I',3))\n"
             "s.sendall(struct.pack('>QII',0x49484156454F5054,7,10)+struct.pack('>I',4)"
             "+b'vg0/'+struct.pack('>H',0))\n"
             "print(hex(struct.unpack('>QIII',s.recv(20))[2]))\n")
    out = run_ok("/usr/bin/python3", "-c", probe, user="nobody")
    assert out.strip() == hex(REP_ERR_TLS_REQD), out
    # the Unix socket is not for nobody either
    rc, out, err = run(nbdinfo, "--list", f"nbd+unix:///?socket={d.nbd_socket}", user="nobody")
    assert rc != 0 and "vg0/" not in out
    # positive control: with the key, nobody gets alice's export
    assert run_ok(nbdinfo, "--size", nbds(port, "vg0/a1", psk=good), user="nobody").strip() \
        == str(16 * MiB)
