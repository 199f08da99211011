"""Every error path of issue 3: each answer has the specified status and a one-line reason,
and a refused request is never signed, forwarded or (where it says so) even connected."""
import hashlib
import os
import socket
import subprocess
import time

import pytest

from sv4h import behaviours as B
from sv4h import config as C
from sv4h.client import RawConn, via
from sv4h.pki import UNCOVERED_NAME
from sv4h.proxyproc import free_port
from sv4h.tools import curl


def raw_exchange(proxy, payload, timeout=10.0):
    """Send exact bytes, return the response (tolerating a close while still sending)."""
    with RawConn(proxy.port, timeout=timeout) as c:
        try:
            c.send(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return c.read_response()


def assert_not_forwarded(stub):
    time.sleep(0.2)
    assert stub.requests == [], [r.describe() for r in stub.requests]


# -- command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--no-such-flag"], ["--port", "not-a-port"],
                                  ["--upstream-url-scheme", "ftp"], ["--workers", "many"],
                                  ["--max-buffer-bytes", "-5"], ["--transport.idle-conn-timeout", "soon"]])
def test_wrong_flag_or_value_exits_2_with_one_line(sigv4d_bin, argv):
    r = subprocess.run([sigv4d_bin, *argv], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr


# -- 403: the allow-list ----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["host-header", "absolute-form", "proxy-address"])
def test_host_outside_allow_list_is_refused_and_never_contacted(start_proxy, stub, how):
    p = start_proxy(upstreams=(C.S3_HOST, "example.com"))
    if how == "absolute-form":
        r = curl("-w", "\n%{http_code}", "-x", p.url, "http://example.com/anything")
        body, status = r.stdout.rsplit(b"\n", 1)
        assert status == b"403", r.stderr
        assert b"example.com" in body
    else:
        host = "example.com" if how == "host-header" else f"127.0.0.1:{p.port}"
        r = via(p, "GET", "/anything", host=host)
        assert r.status == 403 and host.split(":")[0].encode() in r.body, r
    time.sleep(0.3)
    assert not stub.contacted, "a refused host must never be contacted"


def test_allow_host_admits_a_custom_host(start_proxy, stub):
    p = start_proxy(C.FLAG_ALLOW_HOST, "api.example.test", C.FLAG_NAME, "execute-api",
                    C.FLAG_REGION, "us-east-1", upstreams=("api.example.test",))
    r = via(p, "POST", "/v1/thing", host="api.example.test", body=b'{"a":1}')
    assert r.status == 200, r.text
    req = stub.assert_all_verified(1)[0]
    assert (req.auth.service, req.auth.region, req.host) == ("execute-api", "us-east-1",
                                                             "api.example.test")


# -- 400: malformed and ambiguous ----------------------------------------------------------------

HOST = f"Host: {C.S3_HOST}\r\n"


@pytest.mark.parametrize("payload", [
    b"GARBAGE\r\n\r\n",
    b"GET /x HTTP/9.9\r\n" + HOST.encode() + b"\r\n",
    b"GET /x HTTP/1.1\r\n" + HOST.encode() + b"Bad Header Line\r\n\r\n",
    b"GET /x HTTP/1.1\r\n" + HOST.encode() + b"X-Folded: a\r\n  continued\r\n\r\n",  # obs-fold
    b"PUT /x HTTP/1.1\r\n" + HOST.encode() + b"Content-Length: 12abc\r\n\r\n",
    b"GET /x HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
], ids=["request-line", "version", "header-line", "obs-fold", "content-length", "no-host"])
def test_malformed_request_is_400_and_not_forwarded(proxy, stub, payload):
    r = raw_exchange(proxy, payload)
    # An unknown HTTP version may also get 505 (RFC 9110 section 15.6.6).
    assert r.status == 400 or (r.status == 505 and b"HTTP/9.9" in payload), r
    assert r.body.strip(), "the refusal carries a reason"
    assert_not_forwarded(stub)


@pytest.mark.parametrize("head,body", [
    ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    ("Content-Length: 5, 6\r\n", b"hello!"),
    ("Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\n", b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
    ("Transfer-Encoding: gzip\r\n", b"hello"),
], ids=["cl-then-te", "te-then-cl", "two-cl", "cl-list", "bad-chunk-size", "chunk-size-overflow",
        "missing-chunk-crlf", "te-not-chunked"])
def test_ambiguous_framing_is_rejected_and_never_forwarded(proxy, stub, head, body):
    payload = f"PUT /{C.BUCKET}/amb HTTP/1.1\r\n{HOST}{head}\r\n".encode() + body
    r = raw_exchange(proxy, payload)
    # An unknown transfer coding may also be refused as not implemented (RFC 9112 6.1).
    assert r.status in ((400, 501) if "gzip" in head else (400,)), r
    assert_not_forwarded(stub)
    assert stub.store.object(C.BUCKET, "amb") is None


# Leniencies of llhttp 8.1.0 (Debian's) that a proxy must not share: each of these reaches
# llhttp's on_message_complete with some bytes read differently from RFC 9112, so a peer that
# reads them strictly sees another message boundary. The proxy checks the framing itself.
CHUNKED = "Transfer-Encoding: chunked\r\n"
CL5 = "Content-Length: 5\r\n"


@pytest.mark.parametrize("head,body", [
    (CHUNKED, b"5\r\nhello\n0\r\n\r\n"),
    (CHUNKED, b"5\rXhello\r\n0\r\n\r\n"),
    (CHUNKED, b"5\nhello\r\n0\r\n\r\n"),
    (CHUNKED, b"5\r\nhello\r\n0\rX\r\n"),
    (CHUNKED, b"5\r\nhello\r\n0\r\n\n"),
    (CHUNKED, b"5\r\nhello\r\n0\r\n\rX"),
    (CHUNKED, b"5\r\nhello\r\n0\r\nX-T: y\r\n\n"),
    (CHUNKED, b"5\r\nhello\r\n0\r\nX-T: y\nZ\r\n\r\n"),
    (CHUNKED, b"5;a\x01b\r\nhello\r\n0\r\n\r\n"),
    (CHUNKED, b"5;a=b\rXhello\r\n0\r\n\r\n"),
    (CHUNKED, b"5;a\rXhello\r\n0\r\n\r\n"),
    (CHUNKED, b'5;a="b"\rXhello\r\n0\r\n\r\n'),
    (CHUNKED, b"5;a=b\nc\r\nhello\r\n0\r\n\r\n"),
    (CHUNKED, b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
    (CL5 + "\n", b"hello"),
    (CL5 + "\rX", b"hello"),
    ("X-A: 1\n" + CL5, b"hello"),
    ("Content-Length : 5\r\n", b"hello"),
    ("Content-Length\t: 5\r\n", b"hello"),
    (": v\r\n" + CL5, b"hello"),
    ("X-A: a\x7fb\r\n" + CL5, b"hello"),
], ids=["chunk-data-then-lf", "size-line-cr-then-x", "size-line-bare-lf", "last-chunk-cr-then-x",
        "final-bare-lf", "final-cr-then-x", "trailer-then-bare-lf", "trailer-bare-lf",
        "ext-control-byte", "ext-value-cr-then-x", "ext-name-cr-then-x", "ext-quoted-cr-then-x",
        "ext-bare-lf", "ext-space-in-value", "head-end-bare-lf", "head-end-cr-then-x",
        "header-bare-lf", "space-before-colon", "tab-before-colon", "empty-field-name",
        "del-in-value"])
def test_lenient_framing_is_rejected_and_never_forwarded(proxy, stub, head, body):
    payload = f"PUT /{C.BUCKET}/amb HTTP/1.1\r\n{HOST}{head}\r\n".encode() + body
    r = raw_exchange(proxy, payload)
    assert r.status == 400, r
    assert_not_forwarded(stub)
    assert stub.store.object(C.BUCKET, "amb") is None


@pytest.mark.parametrize("payload", [
    f"PUT /{C.BUCKET}/amb HTTP/1.1\n{HOST}{CL5}\r\nhello".encode(),
    f"PUT /{C.BUCKET}/amb HTTP/1.0\r\n{HOST}{CHUNKED}\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
    f"\nPUT /{C.BUCKET}/amb HTTP/1.1\r\n{HOST}{CL5}\r\nhello".encode(),
], ids=["request-line-bare-lf", "http10-transfer-encoding", "bare-lf-before-request"])
def test_lenient_request_line_is_rejected_and_never_forwarded(proxy, stub, payload):
    r = raw_exchange(proxy, payload)
    assert r.status == 400, r
    assert_not_forwarded(stub)
    assert stub.store.object(C.BUCKET, "amb") is None


@pytest.mark.parametrize("pieces", [
    [b"5\r\nhel", b"loX", b"X0\r\n\r\n"],       # the bad bytes in the next segment
    [b"5\r\nhello", b"\r", b"X0\r\n\r\n"],       # split between the CR and the LF
    [b"5\r\nhello\r\n5\r", b"Xworld\r\n0\r\n\r\n"],
], ids=["data-then-xx", "cr-then-x", "size-cr-then-x"])
def test_chunk_framing_checked_across_segments(proxy, stub, pieces):
    """The framing check keeps its place across reads: each piece arrives separately."""
    with RawConn(proxy.port) as c:
        c.send(f"PUT /{C.BUCKET}/amb HTTP/1.1\r\n{HOST}{CHUNKED}\r\n".encode())
        for piece in pieces:
            time.sleep(0.1)
            try:
                c.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        r = c.read_response()
    assert r.status == 400, r
    assert_not_forwarded(stub)


def test_strict_framing_still_accepts_valid_chunked_and_pipelined(proxy, stub):
    """What the check allows: empty lines before a request, chunk extensions (token and quoted
    values), upper-case hex, trailers, and a second pipelined request right after."""
    # (Every RFC 9112 7.1.1 form, including those llhttp 8.1 alone refuses, is in
    # test_proxy_chunkext.py.)
    body = (b"5;name=tok\r\nhello\r\nA;q=\"a b\"\r\n0123456789\r\n"
            b"0;x;y\r\nX-Trailer: 1\r\n\r\n")
    payload = (b"\r\n" + f"PUT /{C.BUCKET}/ok HTTP/1.1\r\n{HOST}{CHUNKED}\r\n".encode() + body
               + f"GET /{C.BUCKET}/ok HTTP/1.1\r\n{HOST}\r\n".encode())
    with RawConn(proxy.port) as c:
        c.send(payload)
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200, (r1, r1.body)
    assert (r2.status, r2.body) == (200, b"hello0123456789"), r2
    stub.assert_all_verified(2)


def test_chunked_trailers_are_not_merged_into_the_signed_head(proxy, stub):
    """Trailer fields of a de-chunked body are dropped (RFC 9112 7.1.2), never sent and
    signed as header fields (RFC 9110 6.5.1)."""
    with RawConn(proxy.port) as c:
        c.send(f"PUT /{C.BUCKET}/tr HTTP/1.1\r\n{HOST}{CHUNKED}\r\n5\r\nhello\r\n"
               "0\r\nX-Amz-Meta-Trailer: 1\r\nContent-Type: text/evil\r\n\r\n".encode())
        r = c.read_response()
    assert r.status == 200, r
    req = stub.assert_all_verified(1)[0]
    names = {k.lower() for (k, _) in req.headers}
    assert "x-amz-meta-trailer" not in names and "content-type" not in names, req.headers
    assert stub.store.object(C.BUCKET, "tr") is not None


# -- 411 / 413 / 431 ------------------------------------------------------------------------------

def test_unsigned_payload_chunked_upload_to_s3_gets_a_length(start_proxy, stub):
    """S3 refuses a body without a length (411 MissingContentLength). With --unsigned-payload a
    known-length body streams straight through; an unknown-length (chunked) one is held only
    until it ends, within --max-body-bytes, and then sent with its Content-Length, instead of
    failing the upload."""
    stub.allow_unsigned_payload = True
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_UNSIGNED_PAYLOAD)
    body = os.urandom(300_000)
    with RawConn(p.port) as c:
        r = c.request("PUT", f"/{C.BUCKET}/nolen", [("Host", C.S3_HOST)],
                      [body[i:i + 70_000] for i in range(0, len(body), 70_000)], chunked=True)
    assert r.status == 200, r
    req = stub.assert_all_verified(1)[0]
    assert req.content_sha256 == "UNSIGNED-PAYLOAD"
    assert req.header("content-length") == str(len(body))
    assert not req.has_header("transfer-encoding")
    assert req.decoded_sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_413_body_over_the_spool_limit(start_proxy, stub, chunked):
    """A non-S3 body must be hashed before sending; beyond --max-buffer-bytes it is spooled, and
    beyond the spool limit it is refused with 413 and nothing is forwarded."""
    p = start_proxy(C.FLAG_MAX_BUFFER, "65536", C.FLAG_MAX_SPOOL, "262144",
                    upstreams=(C.APIGW_HOST,))
    with RawConn(p.port) as c:
        try:
            c.send_head("POST", "/prod/upload", [("Host", C.APIGW_HOST)] + (
                [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(C.MiB))]))
            c.send_body([b"y" * 65536] * 16, chunked=chunked)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r.status == 413, r
    assert_not_forwarded(stub)


@pytest.mark.parametrize("shape", ["one-huge-header", "many-headers"])
def test_431_request_header_too_large(proxy, stub, shape):
    if shape == "one-huge-header":
        extra = "X-Huge: " + "h" * (256 * 1024) + "\r\n"
    else:
        extra = "".join(f"X-Many-{i}: {'v' * 40}\r\n" for i in range(5000))
    r = raw_exchange(proxy, f"GET /{C.BUCKET}/k HTTP/1.1\r\n{HOST}{extra}\r\n".encode())
    assert r.status == 431, r
    assert_not_forwarded(stub)


# -- 502 ---------------------------------------------------------------------------------------------

def test_502_upstream_connection_refused(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", stub_port=free_port())
    r = via(p, "GET", f"/{C.BUCKET}/k")
    assert r.status == 502, r
    assert C.S3_HOST.encode() in r.body or b"connect" in r.body.lower(), r.body


@pytest.mark.parametrize("trust", ["system-store", "other-ca"])
def test_502_tls_verification_failure_names_the_host(start_proxy, stub, pki, trust):
    if trust == "system-store":
        p = start_proxy(C.FLAG_REGION, "us-east-1", ca=False)
    else:
        p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_CA_FILE, pki.other_ca_file, ca=False)
    r = via(p, "GET", f"/{C.BUCKET}/k")
    assert r.status == 502, r
    text = r.text.lower()
    assert C.S3_HOST in text and "verif" in text, r.text
    stub.wait_connections(1, timeout=5)  # the stub notes the failed handshake asynchronously
    assert stub.requests == [] and stub.handshake_failures, "no request on an unverified connection"


def test_502_certificate_name_mismatch(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "eu-west-3", C.FLAG_NAME, "ec2", upstreams=(UNCOVERED_NAME,))
    r = via(p, "GET", "/", host=UNCOVERED_NAME)
    assert r.status == 502, r
    assert UNCOVERED_NAME in r.text, r.text
    assert stub.requests == []


@pytest.mark.parametrize("behaviour", [B.Garbage, B.CloseWithoutResponse])
def test_502_upstream_protocol_failure(proxy, stub, behaviour):
    stub.on(behaviour(), path="/broken")
    r = via(proxy, "GET", "/broken")
    assert r.status == 502, r
    assert via(proxy, "GET", f"/{C.BUCKET}/k").status == 404, "the proxy still works afterwards"


def test_upstream_reset_mid_response_truncates_client_response(proxy, stub):
    stub.on(B.ResetAfter(10 * C.MiB, C.MiB), path="/reset")
    t0 = time.monotonic()
    with RawConn(proxy.port, timeout=20) as c:
        r = c.request("GET", "/reset", [("Host", C.S3_HOST)], keep_limit=0)
    assert r.status == 200 and not r.complete and r.body_len < 10 * C.MiB, r
    assert time.monotonic() - t0 < 10, "the client learns about the reset promptly"
    assert via(proxy, "GET", f"/{C.BUCKET}/k").status == 404


# -- 503 / 504 ---------------------------------------------------------------------------------------

def test_503_without_credentials(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", creds=None)
    r = via(p, "GET", f"/{C.BUCKET}/k")
    assert r.status == 503, r
    assert b"credential" in r.body.lower(), r.body
    time.sleep(0.2)
    assert stub.requests == []


def test_504_upstream_first_byte_timeout(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_UPSTREAM_FIRST_BYTE_TIMEOUT, "1s")
    stub.on(B.Hang(30), path="/hang")
    t0 = time.monotonic()
    r = via(p, "GET", "/hang", timeout=20)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.9 <= took < 6, took
    assert r.body.strip()


# -- slow clients -----------------------------------------------------------------------------------

def test_slowloris_client_is_closed_and_others_are_served(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_CLIENT_HEADER_TIMEOUT, "1s")
    slow = []
    for _ in range(50):
        c = RawConn(p.port)
        c.send(f"GET /{C.BUCKET}/k HTTP/1.1\r\nHost: {C.S3_HOST}\r\nX-Slow: ".encode())
        slow.append(c)
    t0 = time.monotonic()
    assert via(p, "GET", f"/{C.BUCKET}/k").status == 404
    assert time.monotonic() - t0 < 2, "a slow client must not hold up others"
    for c in slow:
        c.send(b"a")
    deadline = time.monotonic() + 5.0
    closed = 0
    for c in slow:
        if c.peer_closed(max(0.05, deadline - time.monotonic())):
            closed += 1
        c.close()
    assert closed == 50, f"only {closed}/50 slowloris connections were closed"
    assert p.alive()
    assert [r.path for r in stub.requests] == [f"/{C.BUCKET}/k"]


def test_max_connections_pauses_accepting_until_one_closes(start_proxy, stub):
    """--max-connections bounds client connections per worker: at the limit the worker stops
    accepting (the next connection waits in the kernel's backlog, costing sigv4d nothing) and
    resumes as soon as one closes."""
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1", "--max-connections", "2")
    held = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(2)]
    time.sleep(0.3)  # both accepted: the listener is now off
    waiting = socket.create_connection(("127.0.0.1", p.port), timeout=5)  # kernel backlog
    waiting.sendall(f"GET /{C.BUCKET}/x HTTP/1.1\r\nHost: {C.S3_HOST}\r\n"
                    "Connection: close\r\n\r\n".encode())
    waiting.settimeout(1.0)
    with pytest.raises(socket.timeout):
        waiting.recv(1)  # not accepted yet, so not answered
    held[0].close()
    waiting.settimeout(10.0)
    answer = waiting.recv(64)
    assert answer.startswith(b"HTTP/1.1 404"), answer  # served once a slot was free
    waiting.close()
    held[1].close()
