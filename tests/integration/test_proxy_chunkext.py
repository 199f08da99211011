"""Chunk extensions in chunked request bodies (RFC 9112 7.1.1).

Debian's llhttp 8.1 refuses some valid forms: whitespace (BWS) around ';' and '=', a second
extension after one with a token value, any quoted-pair. sigv4d checks every extension itself
and drops it (it de-chunks and never forwards extensions), so each valid form must reach the
upstream as the exact de-chunked body under a valid signature, and each invalid one must get a
400 with a one-line reason, be forwarded nowhere, and leave the proxy serving.
"""
import hashlib
import os
import time

import pytest

from sv4h import config as C
from sv4h.client import RawConn, via

HOST = f"Host: {C.S3_HOST}\r\n"
CHUNKED = "Transfer-Encoding: chunked\r\n"
MAX_EXT = 4096  # PX_FRAME_MAX_CHUNK_EXT_BYTES

# Valid forms; the first group is what llhttp 8.1 refuses on its own.
VALID = [
    b";a=b;c=d",
    b";a=b;c",
    b';a=b;c="d"',
    b';name="q\\"x"',
    b';a="x\\\\"',
    b';a="\\\x80"',
    b" ;a=b",
    b"\t;a=b",
    b"; a=b",
    b";a =b",
    b";a= b",
    b";a = b",
    b" ; a = b ; c = d",
    b' \t ;\t a \t=\t "v" \t; b',
    b";a ;b",
    b';a="q" ;b',
    # accepted by llhttp too: they must still work
    b";a",
    b";a=b",
    b';a="x y;z"',
    b";a;b",
    b";chunk-signature=" + b"0" * 64,
]

INVALID = [
    (b";", "empty or invalid chunk extension name"),
    (b";=b", "empty or invalid chunk extension name"),
    (b";a=", "empty or invalid chunk extension value"),
    (b';a="x', "invalid character in a quoted chunk extension value"),
    (b";a=b=c", "invalid character in a chunk extension value"),
    (b";a b", "invalid character after a chunk extension name"),
    (b';a="x"y', "invalid character after a quoted chunk extension value"),
    (b';a="\x01"', "invalid character in a quoted chunk extension value"),
    (b';a="\\\x7f"', "invalid escaped character in a chunk extension value"),
    (b";a=b ", "whitespace not followed by ';' in a chunk-size line"),
    (b" ", "whitespace not followed by ';' in a chunk-size line"),
    (b";a=b\nc", "invalid character in a chunk extension value"),
    (b";a=" + b"b" * (MAX_EXT - 2), "chunk extensions too long"),
]


def chunked_body(pieces, ext, last_ext=None):
    """pieces as HTTP chunks, each size line carrying ext; the last chunk carries last_ext."""
    out = b"".join(b"%x" % len(p) + ext + b"\r\n" + p + b"\r\n" for p in pieces)
    return out + b"0" + (ext if last_ext is None else last_ext) + b"\r\n\r\n"


def put_head(key):
    return f"PUT /{C.BUCKET}/{key} HTTP/1.1\r\n{HOST}{CHUNKED}\r\n".encode()


def assert_stored(proxy, stub, key, body):
    """The upstream got exactly body, de-chunked and validly signed; reading it back agrees."""
    req = [r for r in stub.assert_all_verified(1) if r.path == f"/{C.BUCKET}/{key}"][-1]
    assert req.method == "PUT"
    assert req.framing == "content-length" and req.header("content-length") == str(len(body))
    assert req.decoded_sha256 == hashlib.sha256(body).hexdigest()
    r = via(proxy, "GET", f"/{C.BUCKET}/{key}", host=C.S3_HOST)
    assert r.status == 200 and r.body == body, r


@pytest.mark.parametrize("ext", VALID, ids=[repr(e)[2:-1] for e in VALID])
def test_valid_extension_is_dropped_and_body_signed(proxy, stub, ext):
    pieces = [b"hello", os.urandom(3000), b"!"]
    with RawConn(proxy.port) as c:
        c.send(put_head("ext") + chunked_body(pieces, ext))
        r = c.read_response()
    assert r.status == 200, (r, r.body)
    assert_stored(proxy, stub, "ext", b"".join(pieces))


def test_extensions_split_across_reads(proxy, stub):
    """The check keeps its place across segments: each piece arrives in its own read, cutting
    the extensions inside a quoted pair, between BWS and ';', and right before the CR."""
    ext = b' ; a = "q\\"x" ;b=c'
    wire = put_head("split") + chunked_body([b"hello", b"world"], ext, last_ext=b";z")
    cuts = sorted({wire.index(b'\\"') + 1, wire.index(b" ;b"), wire.index(b";b") - 1,
                   wire.index(b"b=c") + 3, wire.index(b"0;z") + 2, wire.index(b"world")})
    with RawConn(proxy.port) as c:
        start = 0
        for cut in cuts + [len(wire)]:
            c.send(wire[start:cut])
            start = cut
            time.sleep(0.05)
        r = c.read_response()
    assert r.status == 200, (r, r.body)
    assert_stored(proxy, stub, "split", b"helloworld")


def test_extension_at_the_limit_and_pipelined_request(proxy, stub):
    """An extension of exactly the limit passes, and the request pipelined after a body with
    extensions is read as its own request."""
    ext = b";a=" + b"b" * (MAX_EXT - 3)
    with RawConn(proxy.port) as c:
        c.send(put_head("pipe") + chunked_body([b"abc"], ext, last_ext=b";x=\"y\"")
               + f"GET /{C.BUCKET}/pipe HTTP/1.1\r\n{HOST}\r\n".encode())
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200, (r1, r1.body)
    assert (r2.status, r2.body) == (200, b"abc"), r2
    stub.assert_all_verified(2)


def test_large_body_with_extensions_on_every_chunk(proxy, stub):
    """Many chunks, each with a different valid extension, hashed and signed in one body."""
    body = os.urandom(256 * 1024)
    pieces = [body[i:i + 8000] for i in range(0, len(body), 8000)]
    exts = [VALID[i % len(VALID)] for i in range(len(pieces))]
    wire = b"".join(b"%x" % len(p) + e + b"\r\n" + p + b"\r\n" for p, e in zip(pieces, exts))
    with RawConn(proxy.port) as c:
        c.send(put_head("large") + wire + b"0 ;last\r\nX-Trailer: 1\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, (r, r.body)
    assert_stored(proxy, stub, "large", body)


@pytest.mark.parametrize("ext,reason", INVALID, ids=[repr(e)[2:40] for e, _ in INVALID])
@pytest.mark.parametrize("where", ["data-chunk", "last-chunk"])
def test_invalid_extension_is_400_one_line_and_proxy_keeps_serving(proxy, stub, ext, reason,
                                                                     where):
    if where == "data-chunk":
        wire = chunked_body([b"hello"], ext, last_ext=b"")
    else:
        wire = chunked_body([b"hello"], b"", last_ext=ext)
    with RawConn(proxy.port) as c:
        try:
            c.send(put_head("bad") + wire)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r.status == 400, (r, r.body)
    assert r.body == f"malformed request: {reason}\n".encode(), r.body
    time.sleep(0.2)
    assert stub.requests == [], [q.describe() for q in stub.requests]
    assert stub.store.object(C.BUCKET, "bad") is None
    # Still serving: a valid request with extensions on a new connection.
    with RawConn(proxy.port) as c:
        c.send(put_head("after") + chunked_body([b"fine"], b";a=b;c=d"))
        r = c.read_response()
    assert r.status == 200, (r, r.body)
    assert_stored(proxy, stub, "after", b"fine")
    assert proxy.alive()
