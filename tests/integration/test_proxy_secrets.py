"""Secrets do not linger in sigv4d's memory once a request is done.

The signed request head carries the session token (X-Amz-Security-Token) and the request's
signature (Authorization). It must live only in memory sigv4d wipes: a head left in a freed
libevent buffer chain stays readable in the heap (core dumps, swap, a later over-read). The
client's own Authorization and X-Amz-Security-Token, which sigv4d strips, are wiped the same way.

The test reads the whole address space of the running (stopped) proxy through /proc/PID/mem,
as a core dump would show it, and looks for those values. The credentials themselves must
stay in memory (the provider caches them): finding the bare token proves the scan sees the
heap, so a clean result is not an artefact of a scan that read nothing.
"""
import os
import re
import secrets
import signal
import time

import pytest
from sv4h import config as C
from sv4h.client import RawConn
from sv4h.s3store import S3Store
from sv4h.upstream import Stub

TOKEN_IN_HEAD = re.compile(rb"(?i)x-amz-security-token: ?" + re.escape(C.TOKEN.encode()))
SIGNATURE = re.compile(rb"Signature=[0-9a-f]{64}")


# Larger mappings are the sanitizer's shadow and reserved address space, not heap or stacks.
MAX_MAPPING = 1 << 32
PIECE = 64 << 20
OVERLAP = 4096  # longer than anything searched for, so no match is cut in two


def memory_pieces(pid):
    """Yields every readable mapping of pid in pieces, read while the process is stopped."""
    os.kill(pid, signal.SIGSTOP)
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for line in maps.read().splitlines():
                fields = line.split()
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if (not fields[1].startswith("r") or hi - lo > MAX_MAPPING
                        or (len(fields) > 5 and fields[5] == "[vvar]")):
                    continue
                for start in range(lo, hi, PIECE):
                    try:
                        mem.seek(start)
                        yield mem.read(min(hi, start + PIECE + OVERLAP) - start)
                    except OSError:
                        break  # e.g. a guard page or a mapping that went away
    finally:
        os.kill(pid, signal.SIGCONT)


def scan(pid, client_marks):
    """(whether the bare session token was seen, what was found that must not be there)"""
    token_seen, found = False, set()
    for piece in memory_pieces(pid):
        token_seen = token_seen or C.TOKEN.encode() in piece
        if TOKEN_IN_HEAD.search(piece):
            found.add("a signed head's X-Amz-Security-Token line")
        m = SIGNATURE.search(piece)
        if m:
            found.add(f"a request signature ({m.group(0)[:18].decode()}...)")
        found |= {f"the client's {name}" for name, mark in client_marks.items() if mark in piece}
    return token_seen, sorted(found)


@pytest.fixture
def token_stub(pki, tmp_path, request):
    tls = request.param == "https"
    s = Stub(pki, {C.TOKEN_AKID: (C.TOKEN_SECRET, C.TOKEN)},
             store=S3Store(str(tmp_path / "s3secrets")), tls=tls)
    s.start()
    yield s
    s.close()


@pytest.mark.parametrize("token_stub", ["https", "http"], indirect=True)
def test_no_token_or_signature_left_in_memory_after_requests(start_proxy, token_stub):
    tls = token_stub.tls
    flags = [C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1",
             C.FLAG_DUPLICATE_HEADERS, "Authorization"]
    kw = {}
    if not tls:
        flags += ["--upstream-url-scheme", "http"]
        kw = {"ca": False, "connect_port": 80}
    p = start_proxy(*flags, creds="token", stub_port=token_stub.port, **kw)
    # What a client might send and sigv4d strips (or keeps as X-Original-Authorization).
    client_sig = secrets.token_hex(32)
    client_token = "CLIENTTOKEN" + secrets.token_hex(24)
    client_marks = {"Authorization": client_sig.encode(),
                    "X-Amz-Security-Token": client_token.encode()}
    client_headers = [("Host", C.S3_HOST),
                      ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20260101/"
                       f"us-east-1/s3/aws4_request, SignedHeaders=host, Signature={client_sig}"),
                      ("X-Amz-Security-Token", client_token)]
    body = os.urandom(3000)
    with RawConn(p.port) as c:
        for i in range(4):  # keep-alive: the pooled upstream connection is reused
            r = c.request("PUT", f"/{C.BUCKET}/s{i}", client_headers, body)
            assert r.status == 200, r
            r = c.request("GET", f"/{C.BUCKET}/s{i}", client_headers)
            assert (r.status, r.body) == (200, body), r
        time.sleep(0.3)  # the proxy finishes the last exchange's bookkeeping
        # Requests done, client connection still open.
        assert scan(p.pid, client_marks) == (True, [])  # True: the scan sees the credentials
    time.sleep(0.3)  # the client connection is closed and freed
    assert scan(p.pid, client_marks) == (True, [])
    reqs = token_stub.assert_all_verified(8)
    assert all(q.token_signed for q in reqs)
    # The client's Authorization reached the upstream as a signed header, as configured.
    assert all(client_sig in (q.header("x-original-authorization") or "") for q in reqs)
