"""Memory stays bounded whatever the body size or speed (issue 3): a 1 GiB upload and a
1 GiB download arrive intact with sigv4d's peak RSS (VmHWM) under 64 MiB, and slow
clients or slow upstreams do not make it buffer."""
import threading
import time

import pytest

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data, sigv4
from sv4h.client import RawConn


def rss_line(p, what, size, seconds):
    print(f"{what}: {size / C.MiB:.0f} MiB in {seconds:.1f}s ({size / C.MiB / seconds:.0f} MiB/s), "
          f"sigv4d peak RSS {p.peak_rss_kib() / 1024:.1f} MiB")


@pytest.mark.large
def test_1gib_upload_intact_with_bounded_rss(proxy, stub):
    stub.on(B.Sink(), method="PUT", path=f"/{C.BUCKET}/huge-up")
    t0 = time.monotonic()
    with RawConn(proxy.port, timeout=120) as c:
        r = c.request("PUT", f"/{C.BUCKET}/huge-up",
                      [("Host", C.S3_HOST), ("Content-Length", str(C.GiB))],
                      data.blocks(C.GiB, seed=61))
    took = time.monotonic() - t0
    assert r.status == 200, r
    req = stub.assert_all_verified(1)[0]
    assert req.decoded_len == C.GiB
    assert req.decoded_sha256 == data.sha256(C.GiB, seed=61)
    # Above --max-buffer-bytes with a known length, S3 uploads go out aws-chunked and signed.
    assert req.content_sha256 == sigv4.STREAMING_SIGNED and req.aws_chunked.chunks > 1
    rss_line(proxy, "1 GiB PUT", C.GiB, took)
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


@pytest.mark.large
def test_1gib_download_intact_with_bounded_rss(proxy, stub):
    stub.on(B.Stream(C.GiB, seed=62), path="/huge-down")
    t0 = time.monotonic()
    with RawConn(proxy.port, timeout=120) as c:
        r = c.request("GET", "/huge-down", [("Host", C.S3_HOST)], keep_limit=0)
    took = time.monotonic() - t0
    assert r.status == 200 and r.complete, r
    assert (r.body_len, r.body_sha256) == (C.GiB, data.sha256(C.GiB, seed=62))
    stub.assert_all_verified(1)
    rss_line(proxy, "1 GiB GET", C.GiB, took)
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_slow_client_download_applies_backpressure(proxy, stub):
    size = 256 * C.MiB
    stream = B.Stream(size, seed=63, sndbuf=256 * 1024)
    stub.on(stream, path="/slow-reader")
    seen = {"n": 0}

    def stall_once(d):
        """After the first MiB, the client stops reading for 3 s while we watch the upstream."""
        seen["n"] += len(d)
        if "a" not in seen and seen["n"] >= C.MiB:
            time.sleep(2.0)
            seen["a"] = stream.sent
            time.sleep(1.0)
            seen["b"], seen["done"] = stream.sent, stream.done.is_set()
            seen["rss"] = proxy.peak_rss_kib()

    with RawConn(proxy.port, timeout=60, rcvbuf=64 * 1024) as c:
        r = c.request("GET", "/slow-reader", [("Host", C.S3_HOST)], keep_limit=0, on_piece=stall_once)
    assert r.status == 200 and r.complete, r
    assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=63))
    assert not seen["done"], "the upstream was not slowed down by the stalled client"
    assert seen["b"] - seen["a"] < 4 * C.MiB, "the upstream kept flowing while the client stalled"
    assert seen["b"] < 128 * C.MiB, f"{seen['b'] / C.MiB:.0f} MiB in flight for a stalled client"
    assert seen["rss"] < C.rss_limit_kib()
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_slow_upstream_is_streamed_as_it_arrives(proxy, stub):
    stream = B.Stream(2 * C.MiB, piece=64 * 1024, interval_s=0.05, seed=64)
    stub.on(stream, path="/trickle")
    first_piece_at = []

    def note(d):
        if not first_piece_at:
            first_piece_at.append((time.monotonic(), stream.sent, stream.done.is_set()))

    with RawConn(proxy.port, timeout=30) as c:
        r = c.request("GET", "/trickle", [("Host", C.S3_HOST)], on_piece=note, keep_limit=0)
    assert r.status == 200 and (r.body_len, r.body_sha256) == (2 * C.MiB, data.sha256(2 * C.MiB, 64))
    at, sent_then, done_then = first_piece_at[0]
    assert not done_then and sent_then < C.MiB, "body bytes were held until the upstream finished"
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_slow_upstream_first_byte_within_timeouts(proxy, stub):
    stub.on(B.Respond(200, b"eventually", delay_s=2.0), path="/late")
    with RawConn(proxy.port, timeout=30) as c:
        r = c.request("GET", "/late", [("Host", C.S3_HOST)])
    assert (r.status, r.body) == (200, b"eventually")


def test_slow_client_upload_without_memory_growth(proxy, stub):
    size = 4 * C.MiB
    with RawConn(proxy.port, timeout=60) as c:
        c.send_head("PUT", f"/{C.BUCKET}/slow-up", [("Host", C.S3_HOST), ("Content-Length", str(size))])
        c.send_body(data.blocks(size, 65, 64 * 1024), interval_s=0.04)  # ~2.5 s
        r = c.read_response()
    assert r.status == 200, r
    req = stub.assert_all_verified(1)[0]
    assert req.decoded_sha256 == data.sha256(size, 65)
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_many_concurrent_transfers_bounded_memory(proxy, stub):
    stub.on(B.Stream(32 * C.MiB, seed=66), path="/parallel")
    results = []

    def one():
        with RawConn(proxy.port, timeout=60) as c:
            results.append(c.request("GET", "/parallel", [("Host", C.S3_HOST)], keep_limit=0))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    want = data.sha256(32 * C.MiB, 66)
    assert len(results) == 8 and all(r.status == 200 and r.body_sha256 == want for r in results)
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_slow_upstream_reader_upload_without_memory_growth(proxy, stub):
    size = 48 * C.MiB
    stub.on(B.SlowSink(0.02), method="PUT", path=f"/{C.BUCKET}/slow-sink")  # ~12 MiB/s
    with RawConn(proxy.port, timeout=60) as c:
        r = c.request("PUT", f"/{C.BUCKET}/slow-sink",
                      [("Host", C.S3_HOST), ("Content-Length", str(size))], data.blocks(size, 67))
    assert r.status == 200, r
    req = stub.assert_all_verified(1)[0]
    assert (req.decoded_len, req.decoded_sha256) == (size, data.sha256(size, 67))
    assert proxy.peak_rss_kib() < C.rss_limit_kib()


def test_client_gone_mid_aws_chunked_upload(proxy, stub):
    """A client that disconnects in the middle of an aws-chunked upload leaves chunks out on
    the hasher thread (px_hash.c): they are given up without harm, the upstream request is cut,
    and the next upload on the same worker is intact (under ASan: no leak, no use after free)."""
    stub.on(B.Sink(), method="PUT")
    size = 32 * C.MiB  # above --max-buffer-bytes: aws-chunked
    for i in range(5):
        c = RawConn(proxy.port, timeout=30)
        c.send_head("PUT", f"/{C.BUCKET}/cut-{i}",
                    [("Host", C.S3_HOST), ("Content-Length", str(size))])
        c.send_body(data.blocks(9 * C.MiB + i * 70001, 70 + i))
        c.close()
    time.sleep(0.3)
    assert proxy.alive()
    with RawConn(proxy.port, timeout=60) as c:
        r = c.request("PUT", f"/{C.BUCKET}/whole", [("Host", C.S3_HOST),
                      ("Content-Length", str(size))], data.blocks(size, 79))
    assert r.status == 200, r
    whole = [q for q in stub.requests if q.path == f"/{C.BUCKET}/whole"]
    assert len(whole) == 1 and whole[0].ok, [q.describe() for q in whole]
    assert (whole[0].decoded_len, whole[0].decoded_sha256) == (size, data.sha256(size, 79))
    assert whole[0].content_sha256 == sigv4.STREAMING_SIGNED
