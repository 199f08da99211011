"""A raw HTTP/1.1 client for tests that need exact bytes on the wire (malformed framing,
pipelining, HTTP/1.0, Expect: 100-continue, slow reads and writes). Bodies are sent from
iterables and received through a hash, so sizes are not limited by memory.
"""
import hashlib
import socket
import ssl
import time
from dataclasses import dataclass, field

from . import data


@dataclass
class Response:
    status: int = None
    reason: str = ""
    version: str = ""
    headers: list = field(default_factory=list)
    body: bytes = b""  # kept only up to keep_limit bytes
    body_len: int = 0
    body_sha256: str = ""
    complete: bool = False  # the framing said the body ended (vs. connection lost)
    first_byte_at: float = None
    error: str = None

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def headers_named(self, name):
        return [v for (n, v) in self.headers if n.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


class RawConn:
    def __init__(self, port, host="127.0.0.1", timeout=15.0, rcvbuf=None, sndbuf=None,
                 tls_ca=None, server_hostname=None):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            ctx.set_alpn_protocols(["http/1.1"])
            s = ctx.wrap_socket(s, server_hostname=server_hostname or host)
        self.sock = s
        self.f = s.makefile("rb", buffering=1 << 16)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data_bytes):
        self.sock.sendall(data_bytes)

    def send_head(self, method, target, headers, version="HTTP/1.1"):
        lines = [f"{method} {target} {version}"] + [f"{k}: {v}" for (k, v) in headers]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_body(self, body, chunked=False, interval_s=0.0):
        pieces = [body] if isinstance(body, (bytes, bytearray)) else body
        for piece in pieces:
            if chunked:
                if piece:
                    self.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            else:
                self.send(piece)
            if interval_s:
                time.sleep(interval_s)
        if chunked:
            self.send(b"0\r\n\r\n")

    def read_response(self, method="GET", keep_limit=16 << 20, skip_1xx=True, on_piece=None):
        r = Response()
        try:
            while True:
                line = self.f.readline(65536)
                if r.first_byte_at is None and line:
                    r.first_byte_at = time.monotonic()
                if not line:
                    r.error = "connection closed before a status line"
                    return r
                parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                    r.error = f"not an HTTP status line: {line[:60]!r}"
                    return r
                r.version, r.status = parts[0], int(parts[1])
                r.reason = parts[2] if len(parts) > 2 else ""
                r.headers = []
                while True:
                    hl = self.f.readline(65536)
                    if not hl:
                        r.error = "connection closed inside the response head"
                        return r
                    hl = hl.decode("latin-1").rstrip("\r\n")
                    if not hl:
                        break
                    n, _, v = hl.partition(":")
                    r.headers.append((n.strip(), v.strip()))
                if 100 <= r.status < 200 and skip_1xx:
                    continue
                break
            if 100 <= r.status < 200:
                r.complete = True
                return r
            h = hashlib.sha256()
            kept = bytearray()

            def take(d):
                r.body_len += len(d)
                h.update(d)
                if on_piece:
                    on_piece(d)
                if len(kept) + len(d) <= keep_limit:
                    kept.extend(d)

            te = (r.header("transfer-encoding") or "").lower()
            if method == "HEAD" or r.status in (204, 304):
                r.complete = True
            elif "chunked" in te:
                while True:
                    size_line = self.f.readline(4096)
                    if not size_line:
                        break
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.f.readline(4096) not in (b"\r\n", b""):
                            pass
                        r.complete = True
                        break
                    left = size
                    while left:
                        d = self.f.read(min(left, 1 << 18))
                        if not d:
                            break
                        take(d)
                        left -= len(d)
                    if left or self.f.read(2) != b"\r\n":
                        break
            elif r.header("content-length") is not None:
                left = int(r.header("content-length"))
                while left:
                    d = self.f.read1(min(left, 1 << 18))
                    if not d:
                        break
                    take(d)
                    left -= len(d)
                r.complete = left == 0
            else:
                while True:
                    d = self.f.read1(1 << 18)
                    if not d:
                        break
                    take(d)
                r.complete = True
            r.body = bytes(kept)
            r.body_sha256 = h.hexdigest()
        except (OSError, ValueError) as e:
            r.error = f"{type(e).__name__}: {e}"
        return r

    def request(self, method, target, headers=(), body=None, version="HTTP/1.1", chunked=False,
                **kw):
        headers = list(headers)
        names = {k.lower() for (k, _) in headers}
        if isinstance(body, (bytes, bytearray)) and not chunked and "content-length" not in names:
            headers.append(("Content-Length", str(len(body))))
        if chunked and "transfer-encoding" not in names:
            headers.append(("Transfer-Encoding", "chunked"))
        self.send_head(method, target, headers, version)
        if body is not None:
            self.send_body(body, chunked=chunked)
        return self.read_response(method, **kw)

    def peer_closed(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within `timeout`; anything it still sends
        first (e.g. a 408 before closing) is read and discarded."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if self.f.read1(65536) == b"":
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, TimeoutError):
            return False

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(port, method, target, headers=(), body=None, timeout=15.0, **kw):
    with RawConn(port, timeout=timeout) as c:
        return c.request(method, target, headers, body, **kw)


def generated(size, seed=1, block=data.BLOCK):
    """A body iterable for RawConn.send_body: data.blocks(size, seed)."""
    return data.blocks(size, seed, block)


def via(proxy, method, target, host=None, headers=(), body=None, timeout=30.0, **kw):
    """One request through the proxy on a fresh connection, Host defaulting to the S3
    endpoint (origin-form, as a local client configured with the AWS host would send)."""
    from . import config as C
    hdrs = [("Host", host or C.S3_HOST)] + list(headers)
    with RawConn(proxy.port, timeout=timeout) as c:
        return c.request(method, target, hdrs, body, **kw)
