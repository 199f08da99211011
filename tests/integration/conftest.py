"""Fixtures for the sigv4d integration tests.

  pki          (session) test CA + upstream certificate, made with the openssl CLI
  stub         a fresh HTTPS upstream stub (sv4h.upstream.Stub) with an S3 store
  plain_stub   the same stub over plain HTTP
  start_proxy  factory: start_proxy(*flags, upstreams=(...), ca=True, creds="static",
               env={}, stub_port=None, connect_port=443) runs SIGV4D_BIN on a free
               loopback port in front of the stub
  proxy        start_proxy() with the defaults (S3 host, --region us-east-1)
  aws_cli      runs /usr/bin/aws with an isolated config (small multipart threshold)
"""
import os
import subprocess

import pytest

from sv4h import config as C
from sv4h.pki import make_pki
from sv4h.proxyproc import Proxy
from sv4h.s3store import S3Store
from sv4h.upstream import Stub

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="session")
def sigv4d_bin():
    path = os.environ.get("SIGV4D_BIN") or os.path.join(HERE, "..", "..", "build", "sigv4d")
    path = os.path.abspath(path)
    assert os.access(path, os.X_OK), f"sigv4d binary not found at {path} (set SIGV4D_BIN)"
    return path


@pytest.fixture
def stub(pki, tmp_path):
    s = Stub(pki, {C.AKID: (C.SECRET, None), C.TOKEN_AKID: (C.TOKEN_SECRET, C.TOKEN)},
             store=S3Store(str(tmp_path / "s3store")))
    s.start()
    yield s
    s.close()


ASAN_OPTIONS = "detect_leaks=1:quarantine_size_mb=64"


def proxy_env(tmp_path, creds="static", extra=None):
    """A clean environment: no inherited AWS settings, config files or CA overrides."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SSL_CERT_")) and k not in ("HOME",)}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if creds == "static":
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = C.AKID, C.SECRET
    elif creds == "token":
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = C.TOKEN_AKID, C.TOKEN_SECRET
        env["AWS_SESSION_TOKEN"] = C.TOKEN
    elif creds is not None:
        raise ValueError(creds)
    if os.environ.get("SIGV4D_SANITIZE"):
        # Leak checking at exit (the default on x86-64 Linux, made explicit); reports go to
        # the output the fixture reads. ASan keeps freed memory in a quarantine (256 MiB by
        # default) to catch use-after-free: a 1 GiB transfer cycles far more than that through
        # buffer chains, so the quarantine alone would fill up and count as sigv4d's peak RSS.
        # 64 MiB still catches a use soon after free and keeps the RSS bound meaningful.
        env.setdefault("ASAN_OPTIONS", ASAN_OPTIONS)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(extra or {})
    return env


@pytest.fixture
def plain_stub(pki, tmp_path):
    """The same stub over plain HTTP (for --upstream-url-scheme http)."""
    s = Stub(pki, {C.AKID: (C.SECRET, None)}, store=S3Store(str(tmp_path / "s3plain")), tls=False)
    s.start()
    yield s
    s.close()


@pytest.fixture
def start_proxy(sigv4d_bin, pki, stub, tmp_path):
    started = []

    def start(*flags, upstreams=(C.S3_HOST,), ca=True, creds="static", env=None,
              stub_port=None, connect_port=443, wait_s=10.0):
        args = []
        if ca:
            args += [C.FLAG_CA_FILE, pki.ca_file]
        for host in upstreams:
            args += [C.FLAG_CONNECT_TO, f"{host}:{connect_port}:127.0.0.1:{stub_port or stub.port}"]
        args += list(flags)
        p = Proxy(sigv4d_bin, args, proxy_env(tmp_path, creds, env),
                  str(tmp_path / f"sigv4d-{len(started)}.log"))
        try:
            p.start(wait_s)
        except Exception:
            p.stop()  # already reported by the exception: not a crash to report again
            raise
        started.append(p)
        return p

    yield start

    problems = []
    for p in started:
        if p.proc is None:
            continue
        crashed = not p.alive() and not p.stopped_by_test
        p.stop()
        out = p.output()
        if crashed:
            problems.append(f"sigv4d (pid {p.pid}) died during the test with status "
                            f"{p.exit_code_before_stop}:\n{out[-3000:]}")
        # STYLE.md section 6: secrets, tokens and signatures never reach the logs.
        leaked = [name for name, s in (("secret key", C.SECRET), ("token secret", C.TOKEN_SECRET),
                                       ("session token", C.TOKEN)) if s in out]
        leaked += [name for name, s in stub.more_secrets() if s in out]
        leaked += [f"request signature {r.auth.signature[:8]}..." for r in stub.requests
                   if r.auth is not None and r.auth.signature in out]
        if leaked:
            problems.append(f"sigv4d output contains {', '.join(leaked)}")
        # In a sanitizer build a report may come at exit (LeakSanitizer) or from a thread
        # that does not take the process down: any report fails the test.
        sanitizer = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                 "runtime error:", "WARNING: AddressSanitizer") if m in out]
        if sanitizer:
            problems.append(f"sigv4d (pid {p.pid}) sanitizer report ({', '.join(sanitizer)}):\n"
                            f"{out[-6000:]}")
        if out.strip():
            print(f"---- sigv4d pid {p.pid} output (last 2000 chars) ----\n{out[-2000:]}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def proxy(start_proxy):
    return start_proxy(C.FLAG_REGION, "us-east-1")


@pytest.fixture
def aws_cli(tmp_path):
    """aws_cli(*args, timeout=) runs Debian's AWS CLI with its own config: a 5 MiB
    multipart threshold and chunk size (S3's minimum part size) keep multipart tests small."""
    home = tmp_path / "aws-home"
    home.mkdir(exist_ok=True)
    cfg = home / "config"
    cfg.write_text("[default]\nregion = us-east-1\noutput = json\ns3 =\n"
                   "  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n"
                   "  max_concurrent_requests = 4\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_CONFIG_FILE=str(cfg),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
               AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="", AWS_RETRY_MODE="standard",
               AWS_MAX_ATTEMPTS="1")

    def run(*args, timeout=120, extra_env=None):
        e = dict(env)
        e.update(extra_env or {})
        return subprocess.run(["/usr/bin/aws", *args], capture_output=True, text=True,
                              timeout=timeout, env=e)

    return run

