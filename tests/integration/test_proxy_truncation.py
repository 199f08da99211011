"""Truncated upstream responses over TLS: a body delimited by the connection's close is
complete only if the upstream ended TLS with close_notify. A bare TCP close (no
close_notify) may be a cut connection or a truncation attack, so the client must not see a
complete response: an HTTP/1.1 client gets no last chunk, an HTTP/1.0 client a reset.
Length- and chunk-framed responses, and plain-http upstreams, keep their old behaviour."""
import socket
import time

import pytest

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data
from sv4h.client import RawConn, via
from sv4h.tools import curl

TRUNCATED_LOG = "closed TLS without close_notify mid-response: body may be truncated"


def _generated(size, seed):
    return b"".join(data.blocks(size, seed))


def _curl_get(proxy, path, out):
    return curl("-o", str(out), "-w", "%{http_code}", "-H", f"Host: {C.S3_HOST}",
                f"{proxy.url}{path}", timeout=20)


def _wait_for_log(proxy, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while text not in proxy.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in proxy.output()


def test_clean_close_completes_for_curl(start_proxy, stub, tmp_path):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_LOG_FAILED)
    size = 2 * C.MiB + 11
    stub.on(B.Stream(size, framing="close", seed=41, tls_close="notify"), path="/clean")
    out = tmp_path / "clean.bin"
    r = _curl_get(p, "/clean", out)
    assert (r.returncode, r.stdout) == (0, b"200"), r.stderr
    assert data.file_sha256(str(out)) == data.sha256(size, seed=41)
    stub.assert_all_verified(1)
    assert TRUNCATED_LOG not in p.output()


def test_dirty_close_is_a_truncation_for_curl(start_proxy, stub, tmp_path):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_LOG_FAILED)
    size = 300 * 1024 + 7
    stub.on(B.Stream(size, framing="close", seed=42, tls_close="dirty"), path="/dirty")
    out = tmp_path / "dirty.bin"
    r = _curl_get(p, "/dirty", out)
    # 18: "transfer closed with outstanding read data remaining" (no last chunk)
    assert r.returncode == 18, (r.returncode, r.stderr)
    assert r.stdout == b"200"
    got = out.read_bytes()
    assert _generated(size, 42).startswith(got), "what arrived is a prefix of the body"
    assert _wait_for_log(p, TRUNCATED_LOG), p.output()[-2000:]
    assert C.S3_HOST in p.output()
    # The proxy goes on serving, on a fresh upstream connection.
    assert via(p, "GET", f"/{C.BUCKET}/k").status == 404
    stub.assert_all_verified(2)


@pytest.mark.parametrize("tls_close", ["notify", "dirty"])
def test_http10_client_sees_a_clean_end_only_after_close_notify(proxy, stub, tls_close):
    size = 200 * 1024 + 3
    stub.on(B.Stream(size, framing="close", seed=43, tls_close=tls_close), path="/h10")
    with RawConn(proxy.port) as c:
        r = c.request("GET", "/h10", [("Host", C.S3_HOST)], version="HTTP/1.0", keep_limit=0)
    assert r.status == 200
    assert r.header("content-length") is None and r.header("transfer-encoding") is None
    if tls_close == "notify":
        assert r.complete and r.error is None, r.error
        assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=43))
    else:
        # A FIN would end the body as if it were whole: the proxy resets instead.
        assert not r.complete and "ConnectionResetError" in (r.error or ""), r
        assert r.body_len <= size


def test_content_length_response_then_dirty_close_is_complete(start_proxy, stub, tmp_path):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_LOG_FAILED, C.FLAG_WORKERS, "1")
    body = _generated(64 * 1024 + 9, 45)
    # Respond(close=True): Content-Length, "Connection: close", then a close without
    # close_notify. The length already said where the body ends.
    stub.on(B.Respond(200, body, close=True), path="/cl")
    out = tmp_path / "cl.bin"
    r = _curl_get(p, "/cl", out)
    assert (r.returncode, r.stdout) == (0, b"200"), r.stderr
    assert out.read_bytes() == body
    with RawConn(p.port) as c:
        r = c.request("GET", "/cl", [("Host", C.S3_HOST)], version="HTTP/1.0")
    assert r.complete and r.body == body
    assert TRUNCATED_LOG not in p.output()


def test_truncation_keeps_tls_session_resumable(start_proxy, stub):
    """A close without close_notify is not a TLS error for the proxy: the cached session
    stays usable, so the next connection resumes it."""
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1")
    stub.on(B.Stream(1000, framing="close", seed=46, tls_close="dirty"), path="/cut")
    with RawConn(p.port) as c:
        r = c.request("GET", "/cut", [("Host", C.S3_HOST)])
    assert r.status == 200 and not r.complete
    assert via(p, "GET", f"/{C.BUCKET}/x").status == 404
    conns = stub.wait_connections(2)
    assert len(conns) == 2 and conns[1].session_reused, "TLS session resumption"


def test_idle_pooled_connection_closed_without_close_notify_is_dropped(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1")
    stub.idle_timeout_s = 0.3  # the stub closes idle connections (no close_notify)
    assert via(p, "GET", f"/{C.BUCKET}/a").status == 404
    first = stub.wait_connections(1)[0]
    deadline = time.monotonic() + 5
    while first.closed is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.closed is not None
    time.sleep(0.2)  # let the proxy see the close of its pooled connection
    assert via(p, "GET", f"/{C.BUCKET}/b").status == 404
    conns = stub.wait_connections(2)
    assert len(conns) == 2 and conns[1].requests == 1
    assert [q.conn.id for q in stub.assert_all_verified(2)] == [1, 2]


def test_plain_http_upstream_close_ends_the_body(start_proxy, plain_stub, tmp_path):
    """No TLS, so no close_notify: the close itself ends a close-delimited body."""
    p = start_proxy(C.FLAG_REGION, "us-east-1", "--upstream-url-scheme", "http", ca=False,
                    stub_port=plain_stub.port, connect_port=80)
    size = 300 * 1024 + 1
    plain_stub.on(B.Stream(size, framing="close", seed=47, tls_close="dirty"), path="/plain")
    out = tmp_path / "plain.bin"
    r = _curl_get(p, "/plain", out)
    assert (r.returncode, r.stdout) == (0, b"200"), r.stderr
    assert data.file_sha256(str(out)) == data.sha256(size, seed=47)
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(f"GET /plain HTTP/1.0\r\nHost: {C.S3_HOST}\r\n\r\n".encode())
        got = bytearray()
        while d := s.recv(1 << 16):
            got += d
    assert got.split(b"\r\n\r\n", 1)[1] == _generated(size, 47)
