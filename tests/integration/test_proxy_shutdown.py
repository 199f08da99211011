"""Graceful shutdown (STYLE.md section 7): on SIGTERM sigv4d stops accepting, lets requests
in flight finish within --shutdown-timeout, and exits 0; past the deadline it exits anyway."""
import socket
import threading
import time

from sv4h import behaviours as B
from sv4h import config as C
from sv4h import data
from sv4h.client import RawConn


def fetch_in_background(port, path, out):
    def run():
        try:
            with RawConn(port) as c:
                out["r"] = c.request("GET", path, [("Host", C.S3_HOST)], keep_limit=0)
        except OSError as e:  # recorded, asserted by the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except OSError:
        return True


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(start_proxy, stub):
    size = 4 * C.MiB
    # About 1.5 s of trickle: long enough to signal the proxy in the middle of it.
    stream = B.Stream(size, seed=5, piece=256 * 1024, interval_s=0.1)
    stub.on(stream, path="/slow")
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1", "--shutdown-timeout", "20s")
    out = {}
    t = fetch_in_background(p.port, "/slow", out)
    assert stream.started.wait(10), "the request never reached the upstream"
    p.sigterm()
    deadline = time.monotonic() + 5
    while not refuses_connections(p.port):
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.05)
    t.join(30)
    assert "error" not in out, out.get("error")
    r = out["r"]
    assert r.status == 200 and r.complete, r.error
    assert (r.body_len, r.body_sha256) == (size, data.sha256(size, seed=5))
    assert p.proc.wait(15) == 0


def test_sigterm_past_the_deadline_exits_anyway(start_proxy, stub):
    stub.on(B.Stream(C.MiB, piece=64 * 1024, interval_s=1.0), path="/very-slow")  # ~16 s
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "1", "--shutdown-timeout", "1s")
    out = {}
    fetch_in_background(p.port, "/very-slow", out)
    time.sleep(0.5)
    started = time.monotonic()
    p.sigterm()
    code = p.proc.wait(10)
    assert time.monotonic() - started < 6, "the drain deadline was not enforced"
    assert code == 0
