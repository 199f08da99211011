"""The request path allocates nothing of its own once a connection is warm.

sv4h/alloc_count.c (an LD_PRELOAD shim compiled here) counts heap allocations made by code in
the sigv4d executable itself (proxy, providers, signer, llhttp): per-connection setup shows up,
per-request allocations would too. Allocations inside libevent (its buffer chains) and OpenSSL
are not counted.
"""
import os
import subprocess
import time

import pytest
from sv4h import config as C
from sv4h.client import RawConn

from conftest import ASAN_OPTIONS

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def alloc_shim(tmp_path):
    so = tmp_path / "alloc_count.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(so),
                    os.path.join(HERE, "sv4h", "alloc_count.c"), "-ldl"], check=True, timeout=60)
    return str(so)


def read_count(path, settle_s=0.3):
    time.sleep(settle_s)  # the proxy finishes the last exchange's bookkeeping
    with open(path) as f:
        text = f.read().strip()
    return int(text) if text else 0


def test_requests_on_a_warm_connection_allocate_nothing(start_proxy, stub, alloc_shim, tmp_path):
    count_file = str(tmp_path / "allocs")
    env = {"LD_PRELOAD": alloc_shim, "SIGV4D_ALLOC_COUNT_FILE": count_file}
    if os.environ.get("SIGV4D_SANITIZE"):
        # The shim comes before the sanitizer runtime and forwards to it.
        env["ASAN_OPTIONS"] = ASAN_OPTIONS + ":verify_asan_link_order=0"
    # A small buffer limit so that the 200 KiB upload goes out as signed aws-chunked.
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1",
                    C.FLAG_MAX_BUFFER, str(64 * 1024), env=env)
    small = os.urandom(1000)
    big = os.urandom(200 * 1024)

    def round_trip(c, i):
        r = c.request("PUT", f"/{C.BUCKET}/small{i % 3}", [("Host", C.S3_HOST)], small)
        assert r.status == 200, r
        r = c.request("PUT", f"/{C.BUCKET}/big{i % 3}", [("Host", C.S3_HOST)], big)
        assert r.status == 200, r
        r = c.request("GET", f"/{C.BUCKET}/small{i % 3}", [("Host", C.S3_HOST)])
        assert (r.status, r.body) == (200, small), r
        r = c.request("GET", f"/{C.BUCKET}/missing", [("Host", C.S3_HOST)])
        assert r.status == 404, r

    with RawConn(p.port) as c:
        for i in range(3):  # warm-up: connection buffers, upstream connection, TLS session
            round_trip(c, i)
        warm = read_count(count_file)
        for i in range(20):
            round_trip(c, i)
        after = read_count(count_file)
    assert warm > 0, "the shim counts sigv4d's own allocations (connection setup at least)"
    assert after == warm, f"{after - warm} allocations in 80 requests on a warm connection"
    reqs = stub.assert_all_verified(92)
    assert len({q.conn.id for q in reqs}) == 1, "one pooled upstream connection throughout"
    assert any(q.content_sha256 == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" for q in reqs)
