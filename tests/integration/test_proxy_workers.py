"""Workers: the main thread hands each accepted connection to the least loaded worker.

With keep-alive clients a connection stays on its worker for its whole life, so the split of
connections between workers decides how evenly the load falls on them. Per-worker SO_REUSEPORT
sockets leave it to a hash of the client's address (10 connections split 5/5 only about a
quarter of the time); sigv4d balances exactly.
"""
import re
import socket
import time

from sv4h import config as C

TOOK = re.compile(r"worker (\d+): took a connection \((\d+) open\)")


def took_lines(p):
    return [(int(w), int(n)) for w, n in TOOK.findall(p.output())]


def wait_for_took(p, count, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = took_lines(p)
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return took_lines(p)


def test_connections_are_split_evenly_between_workers(start_proxy, stub):
    p = start_proxy(C.FLAG_REGION, "us-east-1", C.FLAG_WORKERS, "2", "-v", "-v")
    time.sleep(0.3)  # the start-up probe's connection is closed and counted out by now
    before = len(took_lines(p))
    conns = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(10)]
    try:
        lines = wait_for_took(p, before + 10)[before:]
        assert len(lines) == 10, p.output()[-2000:]
        per_worker = [sum(1 for w, _ in lines if w == k) for k in (0, 1)]
        assert per_worker == [5, 5], (per_worker, lines)
        # Every connection went to a worker with no more open than the other had.
        assert max(n for _, n in lines) == 5, lines
        # And each is served (a request on every one of them).
        for s in conns:
            s.sendall(f"GET /{C.BUCKET}/x HTTP/1.1\r\nHost: {C.S3_HOST}\r\n\r\n".encode())
        for s in conns:
            assert s.recv(64).startswith(b"HTTP/1.1 404")
    finally:
        for s in conns:
            s.close()
    assert p.alive()
