"""Response behaviours for the upstream stub.

A behaviour is a callable handler(req, w) (req: upstream.Received, w: upstream.Writer);
optional attributes: sink(req) -> callable(bytes) to receive the decoded request body,
abort(req) when the request was rejected, send_continue (answer Expect: 100-continue),
auth_exempt (answer even when the signature check failed).
"""
import json
import socket
import threading
import time

from . import data


class Handler:
    auth_exempt = False
    send_continue = True

    def sink(self, req):
        return None

    def __call__(self, req, w):
        raise NotImplementedError


def _sleep(stub_stopping, seconds):
    """Sleep, but wake when the stub shuts down (bounded in any case)."""
    stub_stopping.wait(seconds)


class Echo(Handler):
    """200 with a JSON description of what the upstream received."""

    def __call__(self, req, w):
        body = json.dumps({
            "method": req.method, "target": req.target, "headers": req.headers,
            "decoded_len": req.decoded_len, "decoded_sha256": req.decoded_sha256,
            "verified": req.ok,
        }).encode()
        w.respond(req, 200, body, content_type="application/json")


class Respond(Handler):
    """A fixed status, body and headers, optionally after a delay."""

    def __init__(self, status=200, body=b"", headers=(), delay_s=0.0, content_type="text/plain",
                 close=False):
        self.status, self.body, self.headers = status, body, list(headers)
        self.delay_s, self.content_type, self.close = delay_s, content_type, close

    def __call__(self, req, w):
        if self.close:  # "Connection: close", then the stub closes the connection
            w.close_after = True
        if self.delay_s:
            _sleep(w.stub.stopping, self.delay_s)
        w.respond(req, self.status, self.body, self.headers, content_type=self.content_type)


class Sink(Handler):
    """Accept any body (hashed by the stub, not stored) and answer 200."""

    def __call__(self, req, w):
        w.respond(req, 200, b"", [("ETag", f'"{req.decoded_sha256[:32]}"')])


class SlowSink(Sink):
    """Like Sink, but the upstream reads the request body slowly: it pauses `pause_s`
    after each piece (at most 256 KiB) it takes from the connection."""

    def __init__(self, pause_s):
        self.pause_s = pause_s

    def sink(self, req):
        return lambda d: time.sleep(self.pause_s)


class Stream(Handler):
    """A generated response body of `size` bytes (data.blocks(seed)).

    framing: "content-length", "chunked" or "close" (no length, end by closing).
    tls_close: how a "close" body ends over TLS: "notify" (close_notify, a clean end) or
    "dirty" (the socket closed without close_notify: a truncation, as far as TLS can tell).
    first_byte_delay_s: wait before the status line. interval_s: pause between pieces of
    `piece` bytes (a trickle). sndbuf: shrink the socket send buffer so the stub feels the
    proxy's backpressure quickly. Progress is in .sent (body bytes) and .done.
    """

    def __init__(self, size, framing="content-length", seed=7, piece=1 << 18,
                 first_byte_delay_s=0.0, interval_s=0.0, sndbuf=None, status=200, headers=(),
                 tls_close="notify"):
        if tls_close not in ("notify", "dirty"):
            raise ValueError(tls_close)
        self.size, self.framing, self.seed, self.piece = size, framing, seed, piece
        self.tls_close = tls_close
        self.first_byte_delay_s, self.interval_s, self.sndbuf = first_byte_delay_s, interval_s, sndbuf
        self.status, self.headers = status, list(headers)
        self.sent = 0
        self.started = threading.Event()
        self.done = threading.Event()
        self.error = None
        self.head_sent_at = None

    def __call__(self, req, w):
        if self.sndbuf:
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        self.started.set()
        if self.first_byte_delay_s:
            _sleep(w.stub.stopping, self.first_byte_delay_s)
        headers = list(self.headers) + [("Content-Type", "application/octet-stream")]
        if self.framing == "content-length":
            headers.append(("Content-Length", str(self.size)))
        elif self.framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        elif self.framing == "close":
            headers.append(("Connection", "close"))
            w.close_after = True
        else:
            raise ValueError(self.framing)
        try:
            w.head(self.status, headers, req=req)
            self.head_sent_at = time.monotonic()
            if req.method != "HEAD":
                for piece in data.blocks(self.size, self.seed, self.piece):
                    if self.framing == "chunked":
                        w.raw(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    else:
                        w.raw(piece)
                    self.sent += len(piece)
                    if self.interval_s:
                        _sleep(w.stub.stopping, self.interval_s)
                    if w.stub.stopping.is_set():
                        raise OSError("stub stopping")
                if self.framing == "chunked":
                    w.raw(b"0\r\n\r\n")
            if self.framing == "close":
                if self.tls_close == "notify":
                    w.close_notify()
                else:
                    w.hard_close()
        except OSError as e:
            self.error = str(e)
            raise
        finally:
            self.done.set()


class ResetAfter(Handler):
    """Announce `declared` bytes, send `after` of them, then abort with a TCP RST."""

    def __init__(self, declared, after, seed=7):
        self.declared, self.after, self.seed = declared, after, seed

    def __call__(self, req, w):
        w.head(200, [("Content-Length", str(self.declared))], req=req)
        for piece in data.blocks(self.after, self.seed):
            w.raw(piece)
        time.sleep(0.05)
        w.reset()


class Garbage(Handler):
    """Answer with bytes that are not HTTP, then close."""

    def __call__(self, req, w):
        req.status = -1
        w.raw(b"SSH-2.0-definitely-not-http\r\n\r\n")
        w.hard_close()


class CloseWithoutResponse(Handler):
    """Close the connection after reading the request, sending nothing."""

    def __call__(self, req, w):
        req.status = 0
        w.hard_close()


class Hang(Handler):
    """Never answer (until the stub stops or `limit_s` passes), then close."""

    def __init__(self, limit_s=60.0):
        self.limit_s = limit_s

    def __call__(self, req, w):
        req.status = 0
        _sleep(w.stub.stopping, self.limit_s)
        w.hard_close()
