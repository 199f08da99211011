"""sigv4d's data path (issue 3) with curl and raw HTTP clients: every request the upstream
receives must verify with botocore, and every body must arrive intact."""
import hashlib
import json
import os
import socket
import time

import pytest

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data, sigv4
from sv4h.client import RawConn, via
from sv4h.signing import unsigned_trailer_body
from sv4h.tools import curl


def put_object(stub, tmp_path, key, size, seed=11):
    path = data.write_file(str(tmp_path / f"seed-{seed}.bin"), size, seed)
    return stub.store.put_file(C.BUCKET, key, path)


# -- curl ----------------------------------------------------------------------------------

def test_curl_plain_get_is_signed_and_forwarded(proxy, stub, tmp_path):
    obj = put_object(stub, tmp_path, "hello.bin", 300_000)
    out = tmp_path / "out.bin"
    r = curl("-o", str(out), "-w", "%{http_code}", "-H", f"Host: {C.S3_HOST}",
             f"{proxy.url}/{C.BUCKET}/hello.bin")
    assert r.stdout == b"200", r.stderr
    assert data.file_sha256(str(out)) == obj.sha256
    req = stub.assert_all_verified(1)[0]
    assert (req.auth.akid, req.auth.service, req.auth.region) == (C.AKID, "s3", "us-east-1")
    assert req.host == C.S3_HOST and req.target == f"/{C.BUCKET}/hello.bin"
    # --connect-to: the logical host is used for SNI and the certificate.
    assert req.conn.sni == C.S3_HOST
    assert req.conn.alpn == "http/1.1"


def test_curl_absolute_form_through_x(proxy, stub, tmp_path):
    obj = put_object(stub, tmp_path, "abs.bin", 5000)
    out = tmp_path / "out.bin"
    r = curl("-o", str(out), "-w", "%{http_code}", "-x", proxy.url,
             f"http://{C.S3_HOST}/{C.BUCKET}/abs.bin?versionId=null")
    assert r.stdout == b"200", r.stderr
    assert data.file_sha256(str(out)) == obj.sha256
    req = stub.assert_all_verified(1)[0]
    assert req.target == f"/{C.BUCKET}/abs.bin?versionId=null"  # origin-form upstream
    assert req.host == C.S3_HOST


def test_curl_upload_with_T(proxy, stub, tmp_path):
    src = data.write_file(str(tmp_path / "up.bin"), 3 * C.MiB + 7, seed=12)
    r = curl("-T", src, "-w", "%{http_code}", "-o", "/dev/null", "-H", f"Host: {C.S3_HOST}",
             f"{proxy.url}/{C.BUCKET}/up.bin")
    assert r.stdout == b"200", r.stderr
    req = stub.assert_all_verified(1)[0]
    assert req.method == "PUT" and req.decoded_len == 3 * C.MiB + 7
    assert req.content_sha256 == data.file_sha256(src)  # body hashed and signed
    assert stub.store.object(C.BUCKET, "up.bin").sha256 == data.file_sha256(src)


def test_curl_chunked_upload_is_dechunked_counted_and_signed(proxy, stub, tmp_path):
    src = data.write_file(str(tmp_path / "chunked.bin"), 2 * C.MiB + 3, seed=13)
    r = curl("-T", src, "-H", "Transfer-Encoding: chunked", "-w", "%{http_code}", "-o", "/dev/null",
             "-H", f"Host: {C.S3_HOST}", f"{proxy.url}/{C.BUCKET}/chunked.bin")
    assert r.stdout == b"200", r.stderr
    req = stub.assert_all_verified(1)[0]
    # S3 needs a length: the proxy de-chunks, counts and sends a Content-Length body.
    assert req.framing == "content-length" and not req.has_header("transfer-encoding")
    assert int(req.header("content-length")) == 2 * C.MiB + 3
    assert req.content_sha256 == data.file_sha256(src)
    assert stub.store.object(C.BUCKET, "chunked.bin").sha256 == data.file_sha256(src)


# -- headers -------------------------------------------------------------------------------

def test_client_credentials_and_hop_by_hop_headers_are_replaced(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_STRIP, "X-Internal-Secret",
                    C.FLAG_CUSTOM_HEADERS, "X-Team=blue,X-Env=test",
                    C.FLAG_DUPLICATE_HEADERS, "Authorization")
    r = via(p, "GET", f"/{C.BUCKET}/missing", headers=[
        ("Authorization", "Bearer client-token-123"),
        ("X-Amz-Date", "19990101T000000Z"),
        ("X-Amz-Security-Token", "client-session-token"),
        ("X-Amz-Content-Sha256", "0" * 64),
        ("Connection", "X-Hop-Header"), ("X-Hop-Header", "1"),
        ("Keep-Alive", "timeout=5"), ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("TE", "trailers"), ("X-Internal-Secret", "do-not-forward"),
    ])
    assert r.status == 404  # the store's NoSuchKey: the request itself verified
    req = stub.assert_all_verified(1)[0]
    for gone in ("x-hop-header", "keep-alive", "proxy-authorization", "te", "x-internal-secret",
                 "x-amz-security-token"):
        assert not req.has_header(gone), gone
    assert req.header("x-amz-date") != "19990101T000000Z"
    assert req.content_sha256 == sigv4.EMPTY_SHA256
    assert req.header("x-original-authorization") == "Bearer client-token-123"
    assert (req.header("x-team"), req.header("x-env")) == ("blue", "test")
    # --custom-headers apply before signing: what is sent is what is signed.
    assert {"x-team", "x-env"} <= set(req.auth.signed_headers)


def test_session_token_is_sent_and_verified(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", creds="token")
    assert via(p, "GET", f"/{C.BUCKET}/missing").status == 404
    req = stub.assert_all_verified(1)[0]
    assert req.auth.akid == C.TOKEN_AKID and req.header("x-amz-security-token") == C.TOKEN


def test_fixed_upstream_host_flag(start_proxy, stub, tmp_path):
    obj = put_object(stub, tmp_path, "fixed.bin", 1000)
    p = start_proxy(C.FLAG_HOST, C.S3_HOST, C.FLAG_REGION, "us-east-1")
    r = via(p, "GET", f"/{C.BUCKET}/fixed.bin", host=f"127.0.0.1:{p.port}")
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == obj.sha256
    req = stub.assert_all_verified(1)[0]
    assert req.host == C.S3_HOST and req.conn.sni == C.S3_HOST


def test_ssl_cert_file_environment_is_honoured(start_proxy, stub, pki):
    p = start_proxy(C.FLAG_REGION, "us-east-1", ca=False, env={"SSL_CERT_FILE": pki.ca_file})
    assert via(p, "GET", f"/{C.BUCKET}/missing").status == 404
    stub.assert_all_verified(1)


# -- connection handling ---------------------------------------------------------------------

def test_keep_alive_one_upstream_connection_for_many_requests(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1")
    with RawConn(p.port) as c:
        for i in range(20):
            r = c.request("GET", f"/{C.BUCKET}/k{i}", [("Host", C.S3_HOST)])
            assert r.status == 404 and r.complete
    for i in range(10):  # new client connections reuse the pooled upstream connection
        assert via(p, "GET", f"/{C.BUCKET}/n{i}").status == 404
    reqs = stub.assert_all_verified(30)
    assert len(stub.connections) == 1, [(c.id, c.requests) for c in stub.connections]
    assert [r.seq for r in reqs] == list(range(30))


def test_keep_alive_with_default_workers_bounded_upstream_connections(proxy, stub):
    for i in range(20):
        assert via(proxy, "GET", f"/{C.BUCKET}/n{i}").status == 404
    stub.assert_all_verified(20)
    assert len(stub.connections) <= os.cpu_count()


def test_pipelined_requests_answer_in_order(proxy, stub, tmp_path):
    objs = [put_object(stub, tmp_path, f"p{i}", 1000 + i, seed=20 + i) for i in range(3)]
    with RawConn(proxy.port) as c:
        c.send(b"".join(f"GET /{C.BUCKET}/p{i} HTTP/1.1\r\nHost: {C.S3_HOST}\r\n\r\n".encode()
                        for i in range(3)))
        for i in range(3):
            r = c.read_response()
            assert r.status == 200 and r.complete
            assert hashlib.sha256(r.body).hexdigest() == objs[i].sha256
    stub.assert_all_verified(3)


def test_http10_request_is_answered_and_closed(proxy, stub, tmp_path):
    obj = put_object(stub, tmp_path, "old.bin", 4321)
    with RawConn(proxy.port) as c:
        c.send(f"GET /{C.BUCKET}/old.bin HTTP/1.0\r\nHost: {C.S3_HOST}\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == obj.sha256
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert c.peer_closed(5.0), "an HTTP/1.0 request without keep-alive ends the connection"
    body = os.urandom(5000)
    with RawConn(proxy.port) as c:
        r = c.request("PUT", f"/{C.BUCKET}/old-put", [("Host", C.S3_HOST)], body, version="HTTP/1.0")
        assert r.status == 200
    assert stub.store.object(C.BUCKET, "old-put").sha256 == hashlib.sha256(body).hexdigest()
    stub.assert_all_verified(2)


def test_expect_100_continue(proxy, stub):
    body = os.urandom(C.MiB)
    with RawConn(proxy.port) as c:
        c.send_head("PUT", f"/{C.BUCKET}/expect", [("Host", C.S3_HOST), ("Expect", "100-continue"),
                                                   ("Content-Length", str(len(body)))])
        c.settimeout(5)
        interim = c.read_response(skip_1xx=False)
        assert interim.status == 100, f"no 100 Continue within 5 s: {interim}"
        c.send(body)
        r = c.read_response()
    assert r.status == 200
    req = stub.assert_all_verified(1)[0]
    assert req.decoded_sha256 == hashlib.sha256(body).hexdigest()


def test_retry_once_when_pooled_connection_closes_before_response(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1")
    assert via(p, "GET", f"/{C.BUCKET}/warm").status == 404  # pools one connection
    stub.on(B.CloseWithoutResponse(), path=f"/{C.BUCKET}/retry", times=1)
    r = via(p, "GET", f"/{C.BUCKET}/retry")
    assert r.status == 404, "the replayable GET should be retried on a fresh connection"
    reqs = stub.wait_requests(3)
    retry = [q for q in reqs if q.path.endswith("/retry")]
    assert len(retry) == 2 and retry[0].conn.id != retry[1].conn.id
    assert all(q.ok for q in reqs)


# -- responses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_response_framings_stream_back(proxy, stub, framing):
    size = 8 * C.MiB + 5
    stub.on(B.Stream(size, framing=framing, seed=31), path="/stream")
    with RawConn(proxy.port) as c:
        r = c.request("GET", "/stream", [("Host", C.S3_HOST)], keep_limit=0)
        assert r.status == 200 and r.complete, r.error
        assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=31))
        if framing != "close":  # the client connection stays usable
            assert c.request("GET", f"/{C.BUCKET}/x", [("Host", C.S3_HOST)]).status == 404
    stub.assert_all_verified(1)


@pytest.mark.parametrize("tls_close", ["notify", "dirty"])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_close_delimited_response_to_a_slow_client(proxy, stub, version, tls_close):
    """The upstream sends a close-delimited body and closes while the proxy is holding back
    for a client that does not read yet. With TLS close_notify, the bytes still buffered when
    the close is seen must all reach the client, followed by the end of the response; without
    it (a possible truncation, test_proxy_truncation.py) the response must not end cleanly."""
    size = 1 * C.MiB + 5  # small enough for the socket buffers to take it all
    h = B.Stream(size, framing="close", seed=32, tls_close=tls_close)
    stub.on(h, path="/slowclose")
    with RawConn(proxy.port, rcvbuf=64 * 1024) as c:
        c.send_head("GET", "/slowclose", [("Host", C.S3_HOST)], version=version)
        assert h.done.wait(10), "the stub should finish sending while the client is idle"
        time.sleep(0.5)  # the close reaches the proxy with body bytes still held back
        r = c.read_response("GET", keep_limit=0)
        if tls_close == "dirty":
            assert r.status == 200 and not r.complete and r.body_len <= size, r
        else:
            assert r.status == 200 and r.complete, r.error
            assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=32))
            if version == "HTTP/1.1":  # re-chunked, so the client connection stays usable
                assert c.request("GET", f"/{C.BUCKET}/x", [("Host", C.S3_HOST)]).status == 404
            else:
                assert c.peer_closed()
    stub.assert_all_verified(1)


def test_head_204_304_have_no_body(proxy, stub):
    stub.on(B.Stream(123456), path="/head")
    stub.on(B.Respond(204), path="/nocontent")
    stub.on(B.Respond(304, headers=[("ETag", '"abc"')]), path="/notmodified")
    with RawConn(proxy.port) as c:
        r = c.request("HEAD", "/head", [("Host", C.S3_HOST)])
        assert (r.status, r.header("content-length"), r.body_len) == (200, "123456", 0)
        r = c.request("GET", "/nocontent", [("Host", C.S3_HOST)])
        assert (r.status, r.body_len) == (204, 0)
        r = c.request("GET", "/notmodified", [("Host", C.S3_HOST)])
        assert (r.status, r.body_len, r.header("etag")) == (304, 0, '"abc"')
        assert c.request("GET", f"/{C.BUCKET}/x", [("Host", C.S3_HOST)]).status == 404
    stub.assert_all_verified(4)


def test_upstream_status_and_body_pass_through(proxy, stub):
    stub.on(B.Respond(409, b"<Error><Code>Conflict</Code></Error>", [("x-amz-request-id", "R1")]),
            path="/conflict")
    r = via(proxy, "GET", "/conflict")
    assert r.status == 409 and r.body == b"<Error><Code>Conflict</Code></Error>"


# -- request bodies ------------------------------------------------------------------------------

def test_unsigned_payload_mode_streams_through(start_proxy, stub):
    stub.allow_unsigned_payload = True
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_UNSIGNED_PAYLOAD)
    body = os.urandom(2 * C.MiB)
    assert via(p, "PUT", f"/{C.BUCKET}/unsigned", body=body).status == 200
    req = stub.assert_all_verified(1)[0]
    assert req.content_sha256 == sigv4.UNSIGNED_PAYLOAD
    assert req.decoded_sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("algo", ["crc32", "sha256"])
def test_client_aws_chunked_trailer_body_forwarded_intact(proxy, stub, algo):
    payload = os.urandom(300_000)
    h = sigv4.checksum_for(algo)
    h.update(payload)
    body = unsigned_trailer_body([payload[i:i + 65536] for i in range(0, len(payload), 65536)],
                                 [(f"x-amz-checksum-{algo}", sigv4.checksum_b64(h))])
    r = via(proxy, "PUT", f"/{C.BUCKET}/sdk-{algo}", body=body, headers=[
        ("Content-Encoding", "aws-chunked"), ("X-Amz-Content-Sha256", sigv4.STREAMING_UNSIGNED_TRAILER),
        ("X-Amz-Decoded-Content-Length", str(len(payload))),
        ("X-Amz-Trailer", f"x-amz-checksum-{algo}")])
    assert r.status == 200, r.text
    req = stub.assert_all_verified(1)[0]
    assert req.content_sha256 == sigv4.STREAMING_UNSIGNED_TRAILER
    assert req.aws_chunked.trailers == {f"x-amz-checksum-{algo}": sigv4.checksum_b64(h)}
    assert stub.store.object(C.BUCKET, f"sdk-{algo}").sha256 == hashlib.sha256(payload).hexdigest()


def test_chunked_upload_beyond_buffer_is_spooled_and_unlinked(start_proxy, stub, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_MAX_BUFFER, str(C.MiB),
                    C.FLAG_SPOOL_DIR, str(spool))
    size = 24 * C.MiB + 1
    with RawConn(p.port, timeout=60) as c:
        r = c.request("PUT", f"/{C.BUCKET}/spooled", [("Host", C.S3_HOST)],
                      data.blocks(size, 41, 65536), chunked=True)
    assert r.status == 200, r.text
    req = stub.assert_all_verified(1)[0]
    assert req.decoded_len == size and req.decoded_sha256 == data.sha256(size, 41)
    assert os.listdir(spool) == []  # the spool file is unlinked
    assert p.peak_rss_kib() < C.rss_limit_kib()


# -- service and region inference ----------------------------------------------------------------

@pytest.mark.parametrize("host,service,region", [
    (C.S3_HOST, "s3", "us-east-1"),
    (f"{C.BUCKET}.s3.eu-central-1.amazonaws.com", "s3", "eu-central-1"),
    ("s3.amazonaws.com", "s3", "us-east-1"),
    ("s3.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2"),
    ("s3.cn-north-1.amazonaws.com.cn", "s3", "cn-north-1"),
    (C.STS_HOST, "sts", "us-east-1"),
    ("iam.amazonaws.com", "iam", "us-east-1"),
    (C.APIGW_HOST, "execute-api", "eu-west-1"),
    ("abcdefghijkl.lambda-url.us-west-2.on.aws", "lambda", "us-west-2"),
    ("search-logs-abc.eu-west-1.es.amazonaws.com", "es", "eu-west-1"),
    ("runtime.sagemaker.us-east-1.amazonaws.com", "sagemaker", "us-east-1"),
    ("aps-workspaces.us-east-1.amazonaws.com", "aps", "us-east-1"),
])
def test_service_and_region_inferred_from_host(start_proxy, stub, host, service, region):
    p = start_proxy(upstreams=(host,))
    r = via(p, "GET", "/", host=host)
    assert r.status == 200, r.text
    req = stub.assert_all_verified(1)[0]
    assert (req.auth.service, req.auth.region) == (service, region)
    assert req.host == host and req.conn.sni == host


def test_each_request_is_routed_by_its_own_host(start_proxy, stub):
    """The worker remembers its last route (struct px_route): requests that change Host on one
    keep-alive connection, including back to a host seen before and to one the allow-list
    refuses, are each routed and signed for their own host."""
    hosts = [(C.S3_HOST, "s3", "us-east-1"), (C.STS_HOST, "sts", "us-east-1"),
             (C.APIGW_HOST, "execute-api", "eu-west-1"), (C.S3_HOST, "s3", "us-east-1")]
    p = start_proxy(C.FLAG_WORKERS, "1", upstreams=tuple({h for h, _, _ in hosts}))
    with RawConn(p.port) as c:
        for host, _, _ in hosts:
            assert c.request("GET", "/", [("Host", host)]).status == 200
        r = c.request("GET", "/", [("Host", "example.com")])
        assert r.status == 403, r.text
    with RawConn(p.port) as c:
        assert c.request("GET", "/", [("Host", C.S3_HOST)]).status == 200
    reqs = stub.assert_all_verified(len(hosts) + 1)
    seen = [(r.host, r.auth.service, r.auth.region) for r in reqs]
    assert seen == hosts + [hosts[0]], seen
    assert [r.conn.sni for r in reqs] == [h for h, _, _ in hosts] + [C.S3_HOST]


def test_logs_never_contain_secrets(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_VERBOSE, C.FLAG_LOG_FAILED, creds="token")
    stub.on(B.Respond(403, b"<Error><Code>AccessDenied</Code></Error>"), path="/denied")
    assert via(p, "GET", "/denied").status == 403
    assert via(p, "GET", f"/{C.BUCKET}/x").status == 404
    time.sleep(0.2)
    out = p.output()
    for secret in (C.TOKEN_SECRET, C.TOKEN):
        assert secret not in out
    for req in stub.requests:
        assert req.auth.signature not in out


def test_upstream_tls_session_is_resumed(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1")
    stub.on(B.Respond(200, b"bye", close=True), path="/closing")
    assert via(p, "GET", "/closing").status == 200  # the upstream closes this connection
    assert via(p, "GET", f"/{C.BUCKET}/x").status == 404  # so this needs a new one
    conns = stub.wait_connections(2)
    assert len(conns) == 2 and conns[1].session_reused, "TLS session resumption"


def test_upstream_url_scheme_http(start_proxy, plain_stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", "--upstream-url-scheme", "http", ca=False,
                    stub_port=plain_stub.port, connect_port=80)
    assert via(p, "GET", f"/{C.BUCKET}/x").status == 404
    req = plain_stub.assert_all_verified(1)[0]
    assert req.host == C.S3_HOST and req.auth.service == "s3"


def test_idle_upstream_connection_closed_after_idle_conn_timeout(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_IDLE_CONN_TIMEOUT, "1s")
    assert via(p, "GET", f"/{C.BUCKET}/x").status == 404
    conn = stub.wait_connections(1)[0]
    deadline = time.monotonic() + 5
    while conn.closed is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert conn.closed is not None, "the pooled connection outlived --transport.idle-conn-timeout"
    assert conn.closed - conn.opened >= 0.9
    assert via(p, "GET", f"/{C.BUCKET}/y").status == 404  # a fresh connection works
