"""Client-side signing for the harness self-tests: botocore signs requests that go
straight to the stub, and an aws-chunked encoder (chunk signatures from sigv4.py, which
is checked against AWS's published example) builds streaming bodies.
"""
import datetime
import hashlib
import zlib  # noqa: F401  (re-exported for tests that build checksums)

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from . import config as C
from . import sigv4


def botocore_sign(method, host, target, body=b"", headers=(), service="s3", region="us-east-1",
                  akid=C.AKID, secret=C.SECRET, token=None, unsigned_payload=False):
    """Headers (including Host) for a request signed by botocore the way SDKs do it."""
    req = AWSRequest(method=method, url=f"https://{host}{target}", data=body,
                     headers=dict(headers))
    if unsigned_payload:
        req.context["payload_signing_enabled"] = False
    cls = S3SigV4Auth if service == "s3" else SigV4Auth
    cls(Credentials(akid, secret, token), service, region).add_auth(req)
    return [("Host", host)] + list(req.headers.items())


def sign_streaming(method, host, target, decoded_len, encoded_len=None, headers=(),
                   region="us-east-1", akid=C.AKID, secret=C.SECRET, mode=sigv4.STREAMING_SIGNED,
                   trailer=None, timestamp=None):
    """Sign the head of an aws-chunked S3 request with botocore (x-amz-content-sha256 is the
    streaming mode, which botocore uses verbatim). Returns (headers, Verdict-like context
    for chunk signing: signing key, timestamp, scope, seed signature)."""
    ts = timestamp or datetime.datetime.utcnow().strftime(sigv4.AMZ_DATE_FORMAT)
    req = AWSRequest(method=method, url=f"https://{host}{target}", headers=dict(headers))
    req.headers["X-Amz-Date"] = ts
    req.headers["X-Amz-Content-SHA256"] = mode
    req.headers["Content-Encoding"] = "aws-chunked"
    req.headers["X-Amz-Decoded-Content-Length"] = str(decoded_len)
    if trailer:
        req.headers["X-Amz-Trailer"] = trailer
    if encoded_len is not None:
        req.headers["Content-Length"] = str(encoded_len)
    req.context["timestamp"] = ts
    auth = S3SigV4Auth(Credentials(akid, secret), "s3", region)
    canonical = auth.canonical_request(req)
    seed = auth.signature(auth.string_to_sign(req, canonical), req)
    auth._inject_signature_to_request(req, seed)
    key = sigv4.signing_key(secret, ts[:8], region, "s3")
    scope = f"{ts[:8]}/{region}/s3/aws4_request"
    return [("Host", host)] + list(req.headers.items()), (key, ts, scope, seed)


def signed_chunks(ctx, pieces):
    """Yield the aws-chunked encoding (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) of `pieces`."""
    key, ts, scope, prev = ctx
    for piece in list(pieces) + [b""]:
        prev = sigv4.chunk_signature(key, ts, scope, prev, hashlib.sha256(piece).hexdigest())
        yield b"%x;chunk-signature=%s\r\n" % (len(piece), prev.encode()) + piece + b"\r\n"


def signed_chunked_len(sizes):
    """Encoded length of signed aws-chunked data for chunk sizes `sizes` (+ final chunk)."""
    return sum(len(b"%x" % n) + 17 + 64 + 2 + n + 2 for n in list(sizes) + [0])


def unsigned_trailer_body(pieces, trailers):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER framing: chunks, final 0, trailer lines, CRLF."""
    out = bytearray()
    for piece in pieces:
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n"
    for name, value in trailers:
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)
