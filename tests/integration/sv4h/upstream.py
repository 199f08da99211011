"""A threaded HTTPS upstream stub that stands in for AWS.

It accepts TLS on 127.0.0.1 (random port) with the test CA's server certificate, parses
each HTTP/1.1 request itself (so framing faults are visible), re-verifies the SigV4
signature (sigv4.py), the payload hash and any aws-chunked body, records what it
received, and answers with a configurable behaviour (behaviours.py, s3store.py).
Bodies are streamed through hashes and sinks, never held whole.
"""
import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from . import sigv4

MAX_HEAD_BYTES = 256 * 1024
READ_PIECE = 1 << 18


class HeadError(Exception):
    pass


class BodyTruncated(sigv4.FramingError):
    pass


@dataclass
class ConnInfo:
    """One TCP/TLS connection accepted by the stub."""
    id: int
    peer: tuple
    opened: float
    sni: str = None
    alpn: str = None
    tls_version: str = None
    session_reused: bool = False
    handshake_error: str = None
    requests: int = 0
    closed: float = None


@dataclass
class Received:
    """One request as the stub received it."""
    conn: ConnInfo
    seq: int  # index of this request on its connection (0 = first)
    method: str
    target: str
    version: str
    headers: list  # [(name, value)] in wire order, names as sent
    framing: str = "none"  # content-length | chunked | none
    wire_len: int = 0  # body bytes after HTTP de-framing (aws-chunked framing included)
    decoded_len: int = 0  # body bytes after aws-chunked decoding (== wire_len otherwise)
    decoded_sha256: str = sigv4.EMPTY_SHA256
    content_sha256: str = None  # x-amz-content-sha256 as received
    aws_chunked: object = None  # sigv4.AwsChunkedResult for aws-chunked bodies
    http_trailers: dict = field(default_factory=dict)
    expect_continue: bool = False
    sent_continue: bool = False
    auth: object = None  # sigv4.Authorization
    token_signed: bool = False
    errors: list = field(default_factory=list)
    status: int = None  # status the stub answered with
    received_at: float = field(default_factory=time.monotonic)

    @property
    def ok(self):
        return not self.errors

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def host(self):
        h = self.header("host") or ""
        if h.startswith("["):
            return h[1:h.index("]")]
        return h.rsplit(":", 1)[0] if h.count(":") == 1 else h

    def headers_named(self, name):
        name = name.lower()
        return [v for (n, v) in self.headers if n.lower() == name]

    def header(self, name):
        vals = self.headers_named(name)
        return vals[0] if vals else None

    def has_header(self, name):
        return bool(self.headers_named(name))

    def describe(self):
        return f"{self.method} {self.target} (conn {self.conn.id}#{self.seq}) errors={self.errors}"


class _CLReader:
    def __init__(self, f, length):
        self.f, self.left = f, length

    def read(self, n):
        if self.left == 0:
            return b""
        d = self.f.read(min(n, self.left))
        if not d:
            raise BodyTruncated(f"connection closed with {self.left} body bytes missing")
        self.left -= len(d)
        return d

    def readline(self, limit):
        if self.left == 0:
            return b""
        d = self.f.readline(min(limit, self.left))
        if not d:
            raise BodyTruncated(f"connection closed with {self.left} body bytes missing")
        self.left -= len(d)
        return d


class _ChunkedReader:
    """HTTP/1.1 chunked transfer coding (RFC 9112 section 7.1), strict."""

    def __init__(self, f, trailers):
        self.f, self.left, self.done, self.trailers = f, 0, False, trailers

    def _line(self):
        line = self.f.readline(4096)
        if not line.endswith(b"\r\n"):
            raise sigv4.FramingError(f"chunk line not CRLF-terminated: {line[:60]!r}")
        return line[:-2]

    def _next_chunk(self):
        size_text = self._line().split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or any(
                c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise sigv4.FramingError(f"bad HTTP chunk size {size_text[:20]!r}")
        self.left = int(size_text, 16)
        if self.left == 0:
            self.done = True
            while True:
                line = self._line()
                if not line:
                    break
                name, sep, value = line.decode("latin-1").partition(":")
                if not sep:
                    raise sigv4.FramingError(f"bad HTTP trailer {line[:60]!r}")
                self.trailers[name.strip().lower()] = value.strip()

    def read(self, n):
        if self.done:
            return b""
        if self.left == 0:
            self._next_chunk()
            if self.done:
                return b""
        d = self.f.read(min(n, self.left))
        if not d:
            raise BodyTruncated("connection closed inside an HTTP chunk")
        self.left -= len(d)
        if self.left == 0 and self.f.read(2) != b"\r\n":
            raise sigv4.FramingError("HTTP chunk data not followed by CRLF")
        return d

    def readline(self, limit):
        out = bytearray()
        while len(out) < limit:
            b = self.read(1)
            if not b:
                break
            out += b
            if out.endswith(b"\r\n"):
                break
        return bytes(out)


class _HashingReader:
    def __init__(self, inner):
        self.inner, self.n, self.h = inner, 0, hashlib.sha256()

    def _count(self, d):
        self.n += len(d)
        self.h.update(d)
        return d

    def read(self, n):
        return self._count(self.inner.read(n))

    def readline(self, limit):
        return self._count(self.inner.readline(limit))


class Writer:
    """Writes a response on a stub connection; counts bytes for the tests."""

    def __init__(self, sock, stub):
        self.sock, self.stub = sock, stub
        self.sent = 0
        self.close_after = False
        self.closed = False

    def raw(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def head(self, status, headers=(), reason=None, req=None):
        if req is not None:
            req.status = status
        lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for (k, v) in headers]
        self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def respond(self, req, status, body=b"", headers=(), content_type="application/xml"):
        headers = list(headers)
        names = {k.lower() for (k, _) in headers}
        if content_type and body and "content-type" not in names:
            headers.append(("Content-Type", content_type))
        if status not in (204, 304) and "content-length" not in names:
            headers.append(("Content-Length", str(len(body))))
        headers.append(("x-amz-request-id", f"STUB{req.conn.id}-{req.seq}"))
        if self.close_after:
            headers.append(("Connection", "close"))
        self.head(status, headers, req=req)
        if req.method != "HEAD" and status not in (204, 304) and body:
            self.raw(body)

    def reject(self, req=None):
        """Answer 400 and close gracefully: drain what the peer is still sending for a
        moment so the close does not turn into a RST that destroys the response."""
        if req is not None:
            req.status = 400
        try:
            self.raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.sock.settimeout(0.5)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and self.sock.recv(65536):
                pass
        except (OSError, ValueError):
            pass
        self.hard_close()

    def reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.hard_close()

    def close_notify(self, wait_s=1.0):
        """End TLS cleanly: send close_notify (ssl unwrap), then close. unwrap also waits for
        the peer's close_notify, which a proxy may never send (it just closes), so that wait
        is bounded by `wait_s`. On a plain socket this is hard_close."""
        if isinstance(self.sock, ssl.SSLSocket):
            try:
                self.sock.settimeout(wait_s)
                self.sock.unwrap()
            except (OSError, ValueError):
                pass
        self.hard_close()

    def hard_close(self):
        """Close the socket; over TLS without close_notify (an unclean TLS close)."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


_REASONS = {100: "Continue", 200: "OK", 204: "No Content", 206: "Partial Content",
            304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 411: "Length Required", 416: "Range Not Satisfiable",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Slow Down"}


def _read_head(f):
    """Return (method, target, version, headers) or None on a clean EOF."""
    total = 0
    lines = []
    while True:
        line = f.readline(MAX_HEAD_BYTES + 1)
        if not line:
            if not lines:
                return None
            raise HeadError("connection closed inside the request head")
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise HeadError("request head too large")
        if not line.endswith(b"\r\n"):
            raise HeadError(f"head line not CRLF-terminated: {line[:60]!r}")
        line = line[:-2]
        if not lines and not line:
            continue  # RFC 9112 section 2.2: ignore leading empty lines
        if not line:
            break
        lines.append(line.decode("latin-1"))
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HeadError(f"bad request line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise HeadError("obs-fold in request head")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HeadError(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip(" \t")))
    return parts[0], parts[1], parts[2], headers


class Route:
    def __init__(self, handler, method=None, path=None, host=None, times=None):
        self.handler, self.method, self.path, self.host, self.times = (
            handler, method, path, host, times)
        self.hits = 0

    def matches(self, req):
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and req.method != self.method:
            return False
        if self.path and not req.path.startswith(self.path):
            return False
        if self.host and req.host != self.host:
            return False
        return True


class Stub:
    """The upstream stub. Use as a context manager or call start()/close().

    credentials: {access_key_id: (secret, session_token or None)} it accepts.
    Attributes tests may change: max_skew_s (None disables the clock check),
    allow_unsigned_payload, require_signature (False: record errors but still answer
    with the route's behaviour instead of 403), credential_lookup (None: `credentials`;
    else (akid, host) -> (secret, token) or None, may raise sigv4.SigError, so the keys
    accepted can depend on the host: see sts.FakeSts), more_secrets (() -> [(name, value)]:
    further secrets the conftest teardown looks for in sigv4d's output).
    """

    def __init__(self, pki, credentials, store=None, tls=True):
        self.pki = pki
        self.tls = tls  # False: plain HTTP (for --upstream-url-scheme http)
        self.credentials = dict(credentials)
        self.max_skew_s = 900
        self.allow_unsigned_payload = False
        self.require_signature = True
        self.credential_lookup = None
        self.more_secrets = list
        self.idle_timeout_s = 60.0
        self.store = store
        self.routes = []
        self.requests = []
        self.connections = []
        self.handshake_failures = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads = []
        self._socks = set()
        self._tls_local = threading.local()
        self.port = None
        self._listener = None

    # -- configuration -------------------------------------------------------------
    def on(self, handler, method=None, path=None, host=None, times=None):
        """Answer matching requests with `handler` (first matching route wins)."""
        route = Route(handler, method, path, host, times)
        with self._lock:
            self.routes.append(route)
        return route

    # -- observation ----------------------------------------------------------------
    def wait_requests(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self.requests)

    def wait_connections(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.connections) + len(self.handshake_failures) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self.connections)

    @property
    def contacted(self):
        """True if anything ever connected to the stub."""
        with self._lock:
            return bool(self.connections or self.handshake_failures)

    def failures(self):
        return [r.describe() for r in self.requests if not r.ok]

    def assert_all_verified(self, at_least=1):
        with self._lock:
            reqs = list(self.requests)
        assert len(reqs) >= at_least, f"stub received {len(reqs)} requests, expected >= {at_least}"
        bad = [r.describe() for r in reqs if not r.ok]
        assert not bad, "upstream rejected: " + "; ".join(bad)
        return reqs

    # -- lifecycle -----------------------------------------------------------------
    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.sni_callback = self._on_sni
        self._ctx = ctx
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(128)
        ls.settimeout(0.2)
        self._listener = ls
        self.port = ls.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="stub-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def close(self):
        self._stop.set()
        if self._listener:
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def stopping(self):
        return self._stop

    # -- internals -------------------------------------------------------------------
    def _on_sni(self, sslobj, server_name, ctx):
        self._tls_local.sni = server_name

    def _accept_loop(self):
        next_id = 0
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            next_id += 1
            with self._lock:
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, peer, next_id),
                                 name=f"stub-conn-{next_id}", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock, peer, conn_id):
        info = ConnInfo(conn_id, peer, time.monotonic())
        self._tls_local.sni = None
        tls = None
        try:
            sock.settimeout(10)
            if self.tls:
                tls = self._ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                try:
                    tls.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    info.handshake_error = str(e)
                    with self._lock:
                        self.handshake_failures.append(info)
                        self._lock.notify_all()
                    return
                info.sni = self._tls_local.sni
                info.alpn = tls.selected_alpn_protocol()
                info.tls_version = tls.version()
                info.session_reused = tls.session_reused
            else:
                tls = sock
            with self._lock:
                self.connections.append(info)
                self._socks.add(tls)
                self._lock.notify_all()
            tls.settimeout(self.idle_timeout_s)
            f = tls.makefile("rb", buffering=1 << 16)
            w = Writer(tls, self)
            seq = 0
            while not self._stop.is_set() and not w.closed:
                try:
                    head = _read_head(f)
                except HeadError as e:
                    self._record_bad_head(info, seq, str(e))
                    w.reject()
                    break
                except (socket.timeout, OSError, ValueError):
                    break
                if head is None:
                    break
                info.requests += 1
                keep = self._handle(info, seq, head, f, w)
                seq += 1
                if not keep or w.close_after:
                    break
        except (OSError, ValueError):
            pass  # the peer went away mid-response: the tests look at what was recorded
        finally:
            info.closed = time.monotonic()
            with self._lock:
                self._socks.discard(sock)
                self._socks.discard(tls)
                self._lock.notify_all()
            try:
                (tls or sock).close()
            except OSError:
                pass

    def _record_bad_head(self, info, seq, why):
        rec = Received(info, seq, "?", "?", "?", [], errors=[f"bad request head: {why}"], status=400)
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()

    def _lookup(self, akid):
        return self.credentials.get(akid)

    def _lookup_for(self, host):
        if self.credential_lookup is None:
            return self._lookup
        return lambda akid: self.credential_lookup(akid, host)

    def _route_for(self, req):
        with self._lock:
            for route in self.routes:
                if route.matches(req):
                    route.hits += 1
                    return route.handler
        if self.store is not None and self._looks_like_s3(req):
            return self.store
        from .behaviours import Echo
        return Echo()

    @staticmethod
    def _looks_like_s3(req):
        if req.auth is not None:
            return req.auth.service == "s3"
        host = req.host
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            pass
        return host.startswith("s3.") or host.startswith("s3-") or ".s3." in host or ".s3-" in host

    def _handle(self, info, seq, head, f, w):
        """Read, verify and answer one request. Returns whether the connection may be reused."""
        method, target, version, headers = head
        req = Received(info, seq, method, target, version, headers)
        conn_tokens = {t.strip().lower() for v in req.headers_named("connection") for t in v.split(",")}
        keep = version == "HTTP/1.1" and "close" not in conn_tokens
        if version == "HTTP/1.0" and "keep-alive" in conn_tokens:
            keep = True

        verdict = None
        if req.has_header("authorization") or self.require_signature:
            verdict = sigv4.verify_head(method, target, headers, self._lookup_for(req.host),
                                        max_skew_s=self.max_skew_s)
            req.auth, req.token_signed = verdict.auth, verdict.token_signed
        req.content_sha256 = req.header("x-amz-content-sha256")
        handler = self._route_for(req)

        # Framing (RFC 9112 section 6): both headers, or conflicting lengths, are errors.
        te = ",".join(req.headers_named("transfer-encoding")).lower()
        cls = req.headers_named("content-length")
        try:
            if te and cls:
                raise sigv4.FramingError("both Transfer-Encoding and Content-Length")
            if te:
                codings = [c.strip() for c in te.split(",")]
                if codings[-1] != "chunked":
                    raise sigv4.FramingError(f"Transfer-Encoding {te!r} does not end in chunked")
                req.framing = "chunked"
                reader = _ChunkedReader(f, req.http_trailers)
            elif cls:
                if len(set(cls)) != 1 or not cls[0].isdigit():
                    raise sigv4.FramingError(f"bad Content-Length {cls}")
                req.framing = "content-length"
                reader = _CLReader(f, int(cls[0]))
            else:
                reader = _CLReader(f, 0)
        except sigv4.FramingError as e:
            req.errors.append(str(e))
            self._publish(req)
            w.reject(req)
            return False

        if "100-continue" in (req.header("expect") or "").lower():
            req.expect_continue = True
            if getattr(handler, "send_continue", True):
                w.raw(b"HTTP/1.1 100 Continue\r\n\r\n")
                req.sent_continue = True

        sink = handler.sink(req) if hasattr(handler, "sink") else None
        sink = sink or (lambda d: None)
        wire = _HashingReader(reader)
        encodings = [e.strip().lower() for v in req.headers_named("content-encoding") for e in v.split(",")]
        try:
            if req.content_sha256 in sigv4.STREAMING_MODES:
                if "aws-chunked" not in encodings:
                    req.errors.append(f"{req.content_sha256} without Content-Encoding: aws-chunked")
                trailer_names = [t.strip() for v in req.headers_named("x-amz-trailer")
                                 for t in v.split(",") if t.strip()]
                if req.content_sha256 == sigv4.STREAMING_SIGNED and trailer_names:
                    req.errors.append("x-amz-trailer with a non-trailer streaming mode")
                res = sigv4.decode_aws_chunked(
                    wire, req.content_sha256, sink,
                    verdict if req.content_sha256 == sigv4.STREAMING_SIGNED else None,
                    trailer_names if req.content_sha256 == sigv4.STREAMING_UNSIGNED_TRAILER else ())
                req.aws_chunked = res
                req.errors += res.errors
                req.decoded_len, req.decoded_sha256 = res.decoded_len, res.decoded_sha256
                declared = req.header("x-amz-decoded-content-length")
                if declared is None or not declared.isdigit() or int(declared) != res.decoded_len:
                    req.errors.append(f"x-amz-decoded-content-length {declared} != decoded "
                                      f"{res.decoded_len}")
            else:
                h = hashlib.sha256()
                while True:
                    d = wire.read(READ_PIECE)
                    if not d:
                        break
                    h.update(d)
                    sink(d)
                req.decoded_len, req.decoded_sha256 = wire.n, h.hexdigest()
        except sigv4.FramingError as e:
            req.wire_len = wire.n
            req.errors.append(f"body framing: {e}")
            self._publish(req)
            if not isinstance(e, BodyTruncated):
                w.reject(req)
            if hasattr(handler, "abort"):
                handler.abort(req)
            return False
        req.wire_len = wire.n

        # The payload hash: what AWS compares x-amz-content-sha256 with.
        claimed = req.content_sha256
        if claimed is None or claimed in sigv4.STREAMING_MODES:
            pass
        elif claimed == sigv4.UNSIGNED_PAYLOAD:
            if not self.allow_unsigned_payload:
                req.errors.append("UNSIGNED-PAYLOAD where a signed payload was expected")
        elif claimed != req.decoded_sha256:
            req.errors.append(f"XAmzContentSHA256Mismatch: header {claimed} != body "
                              f"{req.decoded_sha256} ({req.decoded_len} bytes)")
        if verdict is not None:
            sigv4.verify_signature(verdict, method, target, headers, req.decoded_sha256)
            req.errors = verdict.errors + req.errors
        self._publish(req)

        if req.errors and self.require_signature and not getattr(handler, "auth_exempt", False):
            if hasattr(handler, "abort"):
                handler.abort(req)
            req.status = 403
            msg = "; ".join(req.errors).replace("&", "&amp;").replace("<", "&lt;")
            w.respond(req, 403, ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
                                 f"SignatureDoesNotMatch</Code><Message>{msg}</Message></Error>"
                                 ).encode())
            return keep
        handler(req, w)
        return keep and not w.closed

    def _publish(self, req):
        with self._lock:
            self.requests.append(req)
            self._lock.notify_all()
