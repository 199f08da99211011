"""Self-tests of the harness, with no proxy involved: requests signed by botocore (or the
AWS CLI) go straight to the upstream stub over TLS, and must verify; tampered ones must
be rejected. These pass on their own, before the proxy exists."""
import base64
import hashlib
import os
import socket
import ssl
import stat
import subprocess
import time
import zlib

import pytest

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data, sigv4
from sv4h.client import RawConn
from sv4h.pki import UNCOVERED_NAME
from sv4h.proxyproc import Proxy, ProxyStartError
from sv4h.signing import (botocore_sign, sign_streaming, signed_chunked_len, signed_chunks,
                          unsigned_trailer_body)


def direct(stub, pki, host=C.S3_HOST):
    return RawConn(stub.port, tls_ca=pki.ca_file, server_hostname=host)


def send(stub, pki, method, target, headers, body=None, host=C.S3_HOST, **kw):
    with direct(stub, pki, host) as c:
        return c.request(method, target, headers, body, **kw)


# -- PKI ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [C.S3_HOST, f"{C.BUCKET}.{C.S3_HOST}", C.STS_HOST, C.APIGW_HOST])
def test_server_certificate_verifies_for_upstream_names(stub, pki, name):
    with direct(stub, pki, name):
        pass
    conn = stub.wait_connections(1)[0]
    assert conn.sni == name
    assert conn.alpn == "http/1.1"


def test_server_certificate_rejected_for_uncovered_name_and_other_ca(stub, pki):
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        RawConn(stub.port, tls_ca=pki.ca_file, server_hostname=UNCOVERED_NAME)
    with pytest.raises(ssl.SSLCertVerificationError, match="issuer"):
        RawConn(stub.port, tls_ca=pki.other_ca_file, server_hostname=C.S3_HOST)
    assert len(stub.wait_connections(2)) == 0
    assert len(stub.handshake_failures) == 2


# -- request signatures ----------------------------------------------------------------

def test_botocore_signed_get_with_query_verifies(stub, pki):
    target = "/sigv4d-test-bucket?list-type=2&prefix=a%2Fb%20c&delimiter=%2F"
    r = send(stub, pki, "GET", target, botocore_sign("GET", C.S3_HOST, target))
    assert r.status == 200, r.text
    req = stub.assert_all_verified()[0]
    assert (req.auth.akid, req.auth.region, req.auth.service) == (C.AKID, "us-east-1", "s3")
    assert req.content_sha256 == sigv4.EMPTY_SHA256


def test_botocore_signed_put_with_body_verifies_and_is_stored(stub, pki):
    body = os.urandom(100_000)
    target = f"/{C.BUCKET}/dir/obj%20one"
    r = send(stub, pki, "PUT", target, botocore_sign("PUT", C.S3_HOST, target, body), body)
    assert r.status == 200, r.text
    req = stub.assert_all_verified()[0]
    assert req.decoded_sha256 == hashlib.sha256(body).hexdigest()
    assert stub.store.object(C.BUCKET, "dir/obj one").sha256 == req.decoded_sha256


def test_non_s3_service_payload_hash_from_body(stub, pki):
    """SigV4Auth (not S3) sends no x-amz-content-sha256: the stub hashes what it received,
    and the path is double-encoded as for every service but S3."""
    body = b'{"Action": "test"}'
    target = "/prod/some%20path/x?b=2&a=1"
    hdrs = botocore_sign("POST", C.APIGW_HOST, target, body, service="execute-api",
                         region="eu-west-1")
    assert not any(k.lower() == "x-amz-content-sha256" for k, _ in hdrs)
    r = send(stub, pki, "POST", target, hdrs, body, host=C.APIGW_HOST)
    assert r.status == 200, r.text
    req = stub.assert_all_verified()[0]
    assert (req.auth.service, req.auth.region) == ("execute-api", "eu-west-1")


def test_session_token_verifies_and_missing_token_is_rejected(stub, pki):
    target = f"/{C.BUCKET}/k"
    hdrs = botocore_sign("GET", C.S3_HOST, target, akid=C.TOKEN_AKID, secret=C.TOKEN_SECRET,
                         token=C.TOKEN)
    assert send(stub, pki, "GET", target, hdrs).status in (200, 404)
    assert stub.requests[0].ok and stub.requests[0].token_signed
    no_token = [(k, v) for (k, v) in hdrs if k.lower() != "x-amz-security-token"]
    r = send(stub, pki, "GET", target, no_token)
    assert r.status == 403
    assert any("Security-Token" in e or "absent" in e for e in stub.requests[1].errors)


def _tampered(stub, pki, mutate):
    body = b"hello world" * 100
    target = f"/{C.BUCKET}/tamper"
    hdrs = botocore_sign("PUT", C.S3_HOST, target, body, headers={"x-amz-meta-color": "blue"})
    hdrs, body = mutate(hdrs, body)
    r = send(stub, pki, "PUT", target, hdrs, body)
    req = stub.wait_requests(1)[0]
    assert r.status == 403 and not req.ok
    assert stub.store.object(C.BUCKET, "tamper") is None
    return req


def test_changed_signed_header_is_rejected(stub, pki):
    req = _tampered(stub, pki, lambda h, b: ([(k, "red" if k == "x-amz-meta-color" else v)
                                               for k, v in h], b))
    assert any("SignatureDoesNotMatch" in e for e in req.errors)


def test_changed_body_is_rejected(stub, pki):
    req = _tampered(stub, pki, lambda h, b: (h, b[:-1] + b"X"))
    assert any("XAmzContentSHA256Mismatch" in e for e in req.errors)


def test_wrong_secret_is_rejected(stub, pki):
    target = f"/{C.BUCKET}/k"
    r = send(stub, pki, "GET", target, botocore_sign("GET", C.S3_HOST, target, secret="x" * 40))
    assert r.status == 403
    assert any("SignatureDoesNotMatch" in e for e in stub.requests[0].errors)


def test_unknown_key_and_stale_date_are_rejected(stub, pki):
    target = f"/{C.BUCKET}/k"
    send(stub, pki, "GET", target, botocore_sign("GET", C.S3_HOST, target, akid="AKIDUNKNOWN"))
    assert any("InvalidAccessKeyId" in e for e in stub.requests[0].errors)
    stale = [(k, "20200101T000000Z" if k.lower() == "x-amz-date" else v)
             for k, v in botocore_sign("GET", C.S3_HOST, target)]
    send(stub, pki, "GET", target, stale)
    assert any("Skewed" in e or "scope date" in e for e in stub.requests[1].errors)


def test_unsigned_payload_only_when_allowed(stub, pki):
    body = b"x" * 1000
    target = f"/{C.BUCKET}/u"
    hdrs = botocore_sign("PUT", C.S3_HOST, target, body, unsigned_payload=True,
                         headers={"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()})
    assert ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD") in hdrs
    assert send(stub, pki, "PUT", target, hdrs, body).status == 403
    stub.allow_unsigned_payload = True
    assert send(stub, pki, "PUT", target, hdrs, body).status == 200
    assert stub.requests[1].ok


def test_unsigned_request_is_rejected(stub, pki):
    r = send(stub, pki, "GET", f"/{C.BUCKET}/k", [("Host", C.S3_HOST)])
    assert r.status == 403
    assert "no Authorization header" in stub.requests[0].errors


# -- aws-chunked -------------------------------------------------------------------------
# AWS's published example ("Signature Calculations for the Authorization Header:
# Transferring Payload in Multiple Chunks", Example: PUT Object): 66560 bytes of 'a'.
DOC_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_CHUNK_SIGS = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]


def _doc_request(chunk_sigs=DOC_CHUNK_SIGS, corrupt_at=None):
    sizes = [65536, 1024, 0]
    body = bytearray()
    for size, sig in zip(sizes, chunk_sigs):
        piece = bytearray(b"a" * size)
        if corrupt_at is not None and size == 1024:
            piece[corrupt_at] = ord("b")
        body += b"%x;chunk-signature=%s\r\n" % (size, sig.encode()) + piece + b"\r\n"
    headers = [
        ("Host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
         "aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;"
         f"x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature={DOC_SEED}"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", str(len(body)))]
    return headers, bytes(body)


def test_chunk_signature_matches_aws_published_example():
    key = sigv4.signing_key(C.SECRET, "20130524", "us-east-1", "s3")
    prev = DOC_SEED
    for size, want in zip([65536, 1024, 0], DOC_CHUNK_SIGS):
        prev = sigv4.chunk_signature(key, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request",
                                     prev, hashlib.sha256(b"a" * size).hexdigest())
        assert prev == want


def test_aws_published_streaming_put_verifies(stub, pki):
    stub.max_skew_s = None  # the example is dated 2013
    headers, body = _doc_request()
    assert len(body) == 66824  # the Content-Length AWS documents
    r = send(stub, pki, "PUT", "/examplebucket/chunkObject.txt", headers, body,
             host="s3.amazonaws.com")
    assert r.status == 200, r.text
    req = stub.assert_all_verified()[0]
    assert req.aws_chunked.chunk_sizes == [65536, 1024, 0]
    assert stub.store.object("examplebucket", "chunkObject.txt").sha256 == \
        hashlib.sha256(b"a" * 66560).hexdigest()


@pytest.mark.parametrize("how", ["data", "signature", "order", "truncated", "decoded-length"])
def test_tampered_aws_chunked_body_is_rejected(stub, pki, how):
    stub.max_skew_s = None
    if how == "data":
        headers, body = _doc_request(corrupt_at=10)
    elif how == "signature":
        headers, body = _doc_request([DOC_CHUNK_SIGS[0], DOC_CHUNK_SIGS[0], DOC_CHUNK_SIGS[2]])
    elif how == "order":
        headers, body = _doc_request([DOC_CHUNK_SIGS[1], DOC_CHUNK_SIGS[0], DOC_CHUNK_SIGS[2]])
    else:
        headers, body = _doc_request()
    if how == "decoded-length":
        headers = [(k, "66561" if k == "x-amz-decoded-content-length" else v) for k, v in headers]
    if how == "truncated":
        with direct(stub, pki, "s3.amazonaws.com") as c:
            c.send_head("PUT", "/examplebucket/chunkObject.txt", headers)
            c.send(body[:40000])
            c.sock.shutdown(socket.SHUT_WR)
            c.read_response()
    else:
        r = send(stub, pki, "PUT", "/examplebucket/chunkObject.txt", headers, body,
                 host="s3.amazonaws.com")
        assert r.status in (400, 403)
    req = stub.wait_requests(1)[0]
    assert not req.ok, req.describe()
    assert stub.store.object("examplebucket", "chunkObject.txt") is None


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_harness_signed_aws_chunked_upload_verifies(stub, pki, framing):
    size = (1 << 20) + 100
    pieces = list(data.blocks(size, seed=3, block=65536))
    target = f"/{C.BUCKET}/streamed"
    enc_len = signed_chunked_len(len(p) for p in pieces) if framing == "content-length" else None
    extra = {} if enc_len else {"Transfer-Encoding": "chunked"}
    headers, ctx = sign_streaming("PUT", C.S3_HOST, target, size, enc_len, headers=extra)
    with direct(stub, pki) as c:
        c.send_head("PUT", target, headers)
        c.send_body(signed_chunks(ctx, pieces), chunked=enc_len is None)
        r = c.read_response()
    assert r.status == 200, r.text
    req = stub.assert_all_verified()[0]
    assert req.framing == framing
    assert req.aws_chunked.chunks == 18 and req.decoded_len == size
    assert req.decoded_sha256 == data.sha256(size, seed=3)


def test_crc32c_known_answer():
    c = sigv4.checksum_for("x-amz-checksum-crc32c")
    c.update(b"123456789")
    assert c.digest() == bytes.fromhex("e3069283")


@pytest.mark.parametrize("algo", ["crc32", "crc32c", "sha256", "sha1"])
def test_unsigned_trailer_body_verifies(stub, pki, algo):
    payload = os.urandom(200_000)
    pieces = [payload[i:i + 65536] for i in range(0, len(payload), 65536)]
    h = sigv4.checksum_for(algo)
    h.update(payload)
    if algo == "crc32":
        assert h.digest() == zlib.crc32(payload).to_bytes(4, "big")
    body = unsigned_trailer_body(pieces, [(f"x-amz-checksum-{algo}", sigv4.checksum_b64(h))])
    target = f"/{C.BUCKET}/trailer-{algo}"
    hdrs = botocore_sign("PUT", C.S3_HOST, target, headers={
        "Content-Encoding": "aws-chunked", "X-Amz-Trailer": f"x-amz-checksum-{algo}",
        "X-Amz-Decoded-Content-Length": str(len(payload)),
        "X-Amz-Content-SHA256": sigv4.STREAMING_UNSIGNED_TRAILER})
    # botocore overwrote x-amz-content-sha256 with the empty-body hash: re-sign honestly.
    assert send(stub, pki, "PUT", target, hdrs, body).status == 403
    headers, _ = sign_streaming("PUT", C.S3_HOST, target, len(payload), len(body),
                                mode=sigv4.STREAMING_UNSIGNED_TRAILER,
                                trailer=f"x-amz-checksum-{algo}")
    r = send(stub, pki, "PUT", target, headers, body)
    assert r.status == 200, r.text
    req = stub.requests[1]
    assert req.ok, req.describe()
    assert req.aws_chunked.trailers == {f"x-amz-checksum-{algo}": sigv4.checksum_b64(h)}
    assert stub.store.object(C.BUCKET, f"trailer-{algo}").sha256 == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("fault", ["wrong-checksum", "missing-trailer", "bad-size", "no-final-crlf"])
def test_unsigned_trailer_faults_are_rejected(stub, pki, fault):
    payload = b"z" * 70000
    h = sigv4.checksum_for("x-amz-checksum-crc32")
    h.update(payload + (b"!" if fault == "wrong-checksum" else b""))
    trailers = [] if fault == "missing-trailer" else [("x-amz-checksum-crc32", sigv4.checksum_b64(h))]
    body = unsigned_trailer_body([payload], trailers)
    if fault == "bad-size":
        body = body.replace(b"%x\r\n" % len(payload), b"zz\r\n", 1)
    if fault == "no-final-crlf":
        body = body[:-2]
    target = f"/{C.BUCKET}/bad-trailer"
    headers, _ = sign_streaming("PUT", C.S3_HOST, target, len(payload), len(body),
                                mode=sigv4.STREAMING_UNSIGNED_TRAILER, trailer="x-amz-checksum-crc32")
    with direct(stub, pki) as c:
        c.send_head("PUT", target, headers)
        c.send(body)
        if fault == "no-final-crlf":
            c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
    assert r.status in (400, 403, None)
    req = stub.wait_requests(1)[0]
    assert not req.ok
    assert stub.store.object(C.BUCKET, "bad-trailer") is None


# -- behaviours ---------------------------------------------------------------------------

def _get(stub, pki, target, method="GET", **kw):
    with direct(stub, pki) as c:
        return c.request(method, target, botocore_sign(method, C.S3_HOST, target), **kw)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_stream_behaviour_framings(stub, pki, framing):
    size = 3 * (1 << 20) + 17
    stub.on(B.Stream(size, framing=framing, seed=5), path="/big")
    r = _get(stub, pki, "/big", keep_limit=0)
    assert r.status == 200 and r.complete
    assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=5))


@pytest.mark.parametrize("tls_close", ["notify", "dirty"])
def test_stream_close_ends_tls_with_or_without_close_notify(stub, pki, tls_close):
    """A close-delimited Stream ends TLS with close_notify ("notify") or by closing the
    socket without it ("dirty"); a client that does not forgive ragged EOFs tells them apart."""
    size = 100 * 1024 + 3
    stub.on(B.Stream(size, framing="close", seed=6, tls_close=tls_close), path="/end")
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Python sets it by default
    raw = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=C.S3_HOST, suppress_ragged_eofs=False) as s:
        head = ["GET /end HTTP/1.1"] + [f"{k}: {v}" for k, v in
                                         botocore_sign("GET", C.S3_HOST, "/end")]
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        got, ending = bytearray(), None
        while ending is None and len(got) < 2 * size:
            try:
                d = s.recv(65536)
            except ssl.SSLError as e:  # SSLEOFError, or this reason on Python 3.11
                assert isinstance(e, ssl.SSLEOFError) or e.reason == "UNEXPECTED_EOF_WHILE_READING"
                ending = "dirty"
                break
            if not d:
                ending = "notify"
            got += d
    assert ending == tls_close
    body = bytes(got).split(b"\r\n\r\n", 1)[1]
    assert (len(body), hashlib.sha256(body).hexdigest()) == (size, data.sha256(size, seed=6))


def test_head_204_304_behaviours(stub, pki):
    stub.on(B.Stream(12345), path="/head")
    stub.on(B.Respond(204), path="/nocontent")
    stub.on(B.Respond(304, headers=[("ETag", '"x"')]), path="/notmodified")
    with direct(stub, pki) as c:
        for method, target, status in (("HEAD", "/head", 200), ("GET", "/nocontent", 204),
                                       ("GET", "/notmodified", 304)):
            r = c.request(method, target, botocore_sign(method, C.S3_HOST, target))
            assert (r.status, r.body_len, r.complete) == (status, 0, True)
        assert r.status == 304
    assert len(stub.connections) == 1 and stub.connections[0].requests == 3


def test_reset_and_garbage_and_silent_close(stub, pki):
    stub.on(B.ResetAfter(1 << 20, 100_000), path="/reset")
    stub.on(B.Garbage(), path="/garbage")
    stub.on(B.CloseWithoutResponse(), path="/silent")
    r = _get(stub, pki, "/reset", keep_limit=0)
    assert r.status == 200 and not r.complete and r.body_len < (1 << 20)
    r = _get(stub, pki, "/garbage")
    assert r.error or r.status is None or r.version.startswith("SSH")
    r = _get(stub, pki, "/silent")
    assert r.status is None and r.error


def test_slow_first_byte_and_trickle(stub, pki):
    stub.on(B.Respond(200, b"late", delay_s=1.0), path="/late")
    stub.on(B.Stream(8 * 4096, piece=4096, interval_s=0.1), path="/trickle")
    t0 = time.monotonic()
    r = _get(stub, pki, "/late")
    assert r.body == b"late" and time.monotonic() - t0 >= 0.9
    t0 = time.monotonic()
    r = _get(stub, pki, "/trickle")
    assert r.body_len == 8 * 4096 and time.monotonic() - t0 >= 0.7


def test_keep_alive_connections_are_recorded(stub, pki):
    with direct(stub, pki) as c:
        for i in range(5):
            t = f"/{C.BUCKET}/k{i}"
            assert c.request("GET", t, botocore_sign("GET", C.S3_HOST, t)).status == 404
    with direct(stub, pki) as c:
        t = f"/{C.BUCKET}/k"
        c.request("GET", t, botocore_sign("GET", C.S3_HOST, t))
    reqs = stub.assert_all_verified(6)
    assert [r.seq for r in reqs] == [0, 1, 2, 3, 4, 0]
    assert len({r.conn.id for r in reqs}) == 2


def test_ambiguous_framing_to_stub_is_flagged(stub, pki):
    t = f"/{C.BUCKET}/amb"
    hdrs = botocore_sign("PUT", C.S3_HOST, t, b"abc")
    with direct(stub, pki) as c:
        c.send_head("PUT", t, hdrs + [("Content-Length", "3"), ("Transfer-Encoding", "chunked")])
        c.send(b"3\r\nabc\r\n0\r\n\r\n")
        r = c.read_response()
    assert r.status == 400
    assert "both Transfer-Encoding and Content-Length" in stub.wait_requests(1)[0].errors


# -- the S3 store, driven by the real AWS CLI with real signatures --------------------

def test_aws_cli_against_stub_directly(stub, pki, aws_cli, tmp_path):
    stub.allow_unsigned_payload = True  # the CLI may send UNSIGNED-PAYLOAD over TLS (+MD5)
    src = data.write_file(str(tmp_path / "src.bin"), 12 * C.MiB + 123, seed=9)
    env = {"AWS_ACCESS_KEY_ID": C.AKID, "AWS_SECRET_ACCESS_KEY": C.SECRET}
    base = ["--endpoint-url", f"https://127.0.0.1:{stub.port}", "--ca-bundle", pki.ca_file]
    r = aws_cli(*base, "s3", "cp", src, f"s3://{C.BUCKET}/dir/big.bin", extra_env=env)
    assert r.returncode == 0, r.stderr
    ops = [op for op, _, _ in stub.store.ops]
    assert ops.count("UploadPart") == 3 and "CompleteMultipartUpload" in ops
    r = aws_cli(*base, "s3api", "put-object", "--bucket", C.BUCKET, "--key", "small.txt",
                "--body", src, extra_env=env)
    assert r.returncode == 0, r.stderr
    r = aws_cli(*base, "s3", "ls", f"s3://{C.BUCKET}/", extra_env=env)
    assert r.returncode == 0 and "dir/" in r.stdout and "small.txt" in r.stdout, r.stderr
    out = str(tmp_path / "back.bin")
    r = aws_cli(*base, "s3", "cp", f"s3://{C.BUCKET}/dir/big.bin", out, extra_env=env)
    assert r.returncode == 0, r.stderr
    assert data.file_sha256(out) == data.file_sha256(src)
    r = aws_cli(*base, "s3", "rm", f"s3://{C.BUCKET}/dir/big.bin", extra_env=env)
    assert r.returncode == 0, r.stderr
    assert stub.store.object(C.BUCKET, "dir/big.bin") is None
    stub.assert_all_verified(8)


# -- the process runner -----------------------------------------------------------------

FAKE = """#!/usr/bin/python3
import socket, sys, time
port = int(sys.argv[sys.argv.index('--port') + 1].rsplit(':', 1)[1])
if '--fail' in sys.argv:
    print('fake: bad flag --fail', file=sys.stderr); sys.exit(2)
ballast = bytearray(48 << 20)
for i in range(0, len(ballast), 4096): ballast[i] = 1
del ballast
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(8)
print('fake: listening', file=sys.stderr, flush=True)
time.sleep(60)
"""


def test_proxy_runner_starts_measures_and_stops(tmp_path):
    fake = tmp_path / "fake-sigv4d"
    fake.write_text(FAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    p = Proxy(str(fake), [], dict(os.environ), str(tmp_path / "log")).start()
    try:
        assert p.alive()
        with socket.create_connection(("127.0.0.1", p.port), timeout=2):
            pass
        assert p.peak_rss_kib() >= 48 * 1024 > p.rss_kib()
        assert "fake: listening" in p.output()
    finally:
        p.stop()
    assert not p.alive() and p.exit_code_before_stop is None
    bad = Proxy(str(fake), ["--fail"], dict(os.environ), str(tmp_path / "log2"))
    with pytest.raises(ProxyStartError, match="bad flag --fail"):
        bad.start()
    bad.stop()


def test_sigv4d_binary_runs(sigv4d_bin):
    r = subprocess.run([sigv4d_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("sigv4d ")


def test_tls_session_resumption_is_recorded(stub, pki):
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    target = f"/{C.BUCKET}/k"
    session = None
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=C.S3_HOST, session=session) as s:
            hdrs = botocore_sign("GET", C.S3_HOST, target)
            s.sendall((f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs)
                       + "\r\n").encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 404")  # also reads the session tickets
            session = s.session
    conns = stub.wait_connections(2)
    assert [c.session_reused for c in conns] == [False, True]


def test_plain_http_stub_verifies(plain_stub):
    target = f"/{C.BUCKET}/plain"
    body = b"plain body"
    with RawConn(plain_stub.port) as c:
        r = c.request("PUT", target, botocore_sign("PUT", C.S3_HOST, target, body), body)
    assert r.status == 200
    req = plain_stub.assert_all_verified(1)[0]
    assert req.conn.sni is None and req.decoded_sha256 == hashlib.sha256(body).hexdigest()
