"""Many clients at once, every body mode, some leaving mid-request: sigv4d keeps serving.

Two workers (so the main thread's hand-off and both inboxes are used), 24 client threads for
a fixed number of rounds each: GETs, small hashed PUTs, chunked PUTs, S3 PUTs above
--max-buffer-bytes (aws-chunked, hashed on the workers' hasher threads), and the same
uploads cut off midway by the client. Every request that completes is checked: status, and
(for uploads) the body the stub decoded and the signature it verified with botocore. In the
ASan+UBSan build this is where a race or a use after free between connections, their
hashing jobs and the worker hand-off would show.
"""
import random
import threading
import time

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data
from sv4h.client import RawConn

THREADS = 24
ROUNDS = 40
BIG = 3 * C.MiB  # above the 1 MiB --max-buffer-bytes below: aws-chunked


def one_round(port, rng, tid, i, done, problems):
    kind = rng.choice(["get", "put", "chunked", "big", "cut-big", "cut-put"])
    key = f"/{C.BUCKET}/soak-{tid}-{i}"
    seed = tid * 1000 + i
    try:
        if kind == "get":
            with RawConn(port, timeout=30) as c:
                r = c.request("GET", key, [("Host", C.S3_HOST)])
            ok = r.status == 404
        elif kind in ("put", "big", "chunked"):
            size = {"put": 100_000 + i, "chunked": 300_000 + i, "big": BIG + i}[kind]
            with RawConn(port, timeout=60) as c:
                if kind == "chunked":
                    r = c.request("PUT", key, [("Host", C.S3_HOST)],
                                  data.blocks(size, seed, 65536), chunked=True)
                else:
                    r = c.request("PUT", key, [("Host", C.S3_HOST),
                                  ("Content-Length", str(size))], data.blocks(size, seed))
            ok = r.status == 200
            if ok:
                done.append((key, size, seed))
        else:
            size = BIG if kind == "cut-big" else 200_000
            c = RawConn(port, timeout=30)
            c.send_head("PUT", key, [("Host", C.S3_HOST), ("Content-Length", str(size))])
            c.send_body(data.blocks(size // 2 + rng.randrange(65536), seed))
            c.close()
            ok = True
        if not ok:
            problems.append(f"{kind} {key}: {r.status} {r.text[:200]}")
    except Exception as e:  # a socket error is a failure too: nothing here should see one
        problems.append(f"{kind} {key}: {e!r}")


def test_soak_all_body_modes_with_aborts(start_proxy, stub):
    stub.on(B.Sink(), method="PUT")
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "2",
                    C.FLAG_MAX_BUFFER, str(C.MiB))
    done, problems = [], []

    def worker(tid):
        rng = random.Random(tid)
        for i in range(ROUNDS):
            one_round(p.port, rng, tid, i, done, problems)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads), "clients still running after 240 s"
    assert not problems, problems[:10]
    assert p.alive()
    print(f"soak: {THREADS * ROUNDS} rounds, {len(done)} uploads in "
          f"{time.monotonic() - t0:.1f}s, peak RSS {p.peak_rss_kib() / 1024:.1f} MiB")
    assert done, "no upload completed"
    by_path = {}
    for r in stub.requests:
        by_path.setdefault(r.path, []).append(r)
    for key, size, seed in done:
        reqs = [r for r in by_path.get(key, []) if r.ok]
        assert len(reqs) == 1, (key, [r.describe() for r in by_path.get(key, [])])
        assert (reqs[0].decoded_len, reqs[0].decoded_sha256) == (size, data.sha256(size, seed))
    assert p.peak_rss_kib() < C.rss_limit_kib()
