"""Independent SigV4 verification, the way the AWS service side would do it.

The request signature is recomputed with botocore (S3SigV4Auth for s3, SigV4Auth
otherwise) from what was received on the wire: the credential scope and SignedHeaders
come from the Authorization header and the timestamp from X-Amz-Date, so nothing the
signer chose is trusted except what AWS itself would take from the request.

botocore has no aws-chunked support, so chunk signatures (STREAMING-AWS4-HMAC-SHA256-
PAYLOAD) are computed here with hashlib/hmac from the published algorithm; the harness
self-tests check this code against AWS's documented example (66560 bytes of 'a').
"""
import base64
import datetime
import hashlib
import hmac
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CHUNK_LINE = 4096


class SigError(Exception):
    """The request would be rejected by AWS: the message says why."""


class FramingError(SigError):
    """The body framing (HTTP or aws-chunked) is broken; the connection cannot continue."""


@dataclass
class Authorization:
    akid: str
    date: str
    region: str
    service: str
    signed_headers: list
    signature: str

    @property
    def scope(self):
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_authorization(value):
    prefix = "AWS4-HMAC-SHA256 "
    if not value.startswith(prefix):
        raise SigError(f"Authorization algorithm is not AWS4-HMAC-SHA256: {value[:24]!r}")
    fields = {}
    for part in value[len(prefix):].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep or key in fields:
            raise SigError(f"malformed Authorization component {part.strip()[:40]!r}")
        fields[key] = val
    for key in ("Credential", "SignedHeaders", "Signature"):
        if key not in fields:
            raise SigError(f"Authorization lacks {key}")
    cred = fields["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request" or not all(cred):
        raise SigError(f"malformed credential scope {fields['Credential']!r}")
    signed = fields["SignedHeaders"].split(";")
    if signed != sorted(set(signed)) or any(h != h.lower() or not h for h in signed):
        raise SigError(f"SignedHeaders not lowercase, sorted and unique: {fields['SignedHeaders']}")
    sig = fields["Signature"]
    if len(sig) != 64 or any(c not in "0123456789abcdef" for c in sig):
        raise SigError("Signature is not 64 lowercase hex digits")
    return Authorization(cred[0], cred[1], cred[2], cred[3], signed, sig)


def signing_key(secret, date, region, service):
    """kSigning from the SigV4 documentation ("Derive a signing key")."""
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _header_all(headers, name):
    name = name.lower()
    return [v for (n, v) in headers if n.lower() == name]


def _header_one(headers, name):
    vals = _header_all(headers, name)
    if len(vals) > 1:
        raise SigError(f"header {name} appears {len(vals)} times")
    return vals[0] if vals else None


def _verifier_class(service):
    base = S3SigV4Auth if service == "s3" else SigV4Auth

    class _ReceivedSideAuth(base):
        """botocore's signer, fed with exactly the headers the client said it signed and
        the payload hash of the body actually received."""

        def __init__(self, creds, region, signed_names, payload_hash):
            super().__init__(creds, service, region)
            self._signed_names = set(signed_names)
            self._payload_hash = payload_hash

        def headers_to_sign(self, request):
            hm = HTTPHeaders()
            for name, value in request.headers.items():
                if name.lower() in self._signed_names:
                    hm[name.lower()] = value
            return hm

        def payload(self, request):
            return self._payload_hash

    return _ReceivedSideAuth


def query_pairs(query):
    """Decoded (key, value) pairs of a raw query string, as AWS decodes them before it
    re-encodes them for the canonical query string."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, val = part.partition("=")
        pairs.append((unquote(key), unquote(val)))
    return pairs


@dataclass
class Verdict:
    auth: Authorization = None
    timestamp: str = None
    content_sha256: str = None  # the x-amz-content-sha256 header, if any
    key: bytes = None  # kSigning, for chunk signatures
    errors: list = field(default_factory=list)
    token_signed: bool = False
    secret: str = field(default=None, repr=False)
    token: str = field(default=None, repr=False)


def verify_head(method, target, headers, lookup, now=None, max_skew_s=900):
    """Check everything in the request head that does not need the body.

    headers: list of (name, value) as received. lookup(akid) -> (secret, token or None)
    or None. Returns a Verdict; the signature itself is checked by verify_signature once
    the payload hash is known (it may depend on the body).
    """
    v = Verdict()
    try:
        auth_vals = _header_all(headers, "authorization")
        if not auth_vals:
            raise SigError("no Authorization header")
        if len(auth_vals) > 1:
            raise SigError("more than one Authorization header")
        v.auth = parse_authorization(auth_vals[0])
        amz_date = _header_one(headers, "x-amz-date")
        if amz_date is None:
            raise SigError("no X-Amz-Date header")
        try:
            when = datetime.datetime.strptime(amz_date, AMZ_DATE_FORMAT)
        except ValueError:
            raise SigError(f"X-Amz-Date {amz_date!r} is not YYYYMMDDTHHMMSSZ") from None
        v.timestamp = amz_date
        if amz_date[:8] != v.auth.date:
            raise SigError(f"credential scope date {v.auth.date} != X-Amz-Date {amz_date}")
        if max_skew_s is not None:
            skew = abs(((now or datetime.datetime.utcnow()) - when).total_seconds())
            if skew > max_skew_s:
                raise SigError(f"RequestTimeTooSkewed: X-Amz-Date {amz_date} is {skew:.0f}s off")
        for needed in ("host", "x-amz-date"):
            if needed not in v.auth.signed_headers:
                raise SigError(f"{needed} is not in SignedHeaders")
        present = {n.lower() for (n, _) in headers}
        for name in v.auth.signed_headers:
            if name not in present:
                raise SigError(f"signed header {name} is absent")
        v.content_sha256 = _header_one(headers, "x-amz-content-sha256")
        if v.auth.service == "s3":
            if v.content_sha256 is None:
                raise SigError("s3 request without x-amz-content-sha256")
            # S3 requires every x-amz-* header that is sent to be signed.
            for name in present:
                if name.startswith("x-amz-") and name not in v.auth.signed_headers:
                    raise SigError(f"s3 header {name} is sent but not signed")
        creds = lookup(v.auth.akid)
        if creds is None:
            raise SigError(f"InvalidAccessKeyId: {v.auth.akid}")
        secret, token = creds
        got_token = _header_one(headers, "x-amz-security-token")
        if token is not None:
            if got_token is None or not hmac.compare_digest(got_token.encode(), token.encode()):
                raise SigError("X-Amz-Security-Token missing or wrong")
            v.token_signed = "x-amz-security-token" in v.auth.signed_headers
        elif got_token is not None:
            raise SigError("X-Amz-Security-Token sent with long-term credentials")
        v.key = signing_key(secret, v.auth.date, v.auth.region, v.auth.service)
        v.secret, v.token = secret, token
    except SigError as e:
        v.errors.append(str(e))
    return v


def verify_signature(v, method, target, headers, body_sha256):
    """Recompute the request signature with botocore; append an error on mismatch.

    body_sha256: hex SHA-256 of the (HTTP-decoded) body received, used when the request
    carries no x-amz-content-sha256 header (botocore then hashes the payload itself).
    """
    if v.errors:
        return
    split = urlsplit(target)
    host = _header_all(headers, "host")
    url = f"https://{host[0] if host else 'invalid'}{split.path or '/'}"
    req = AWSRequest(method=method, url=url, params=query_pairs(split.query))
    hh = HTTPHeaders()
    for name, value in headers:
        hh[name] = value
    req.headers = hh
    req.context["timestamp"] = v.timestamp
    cls = _verifier_class(v.auth.service)
    signer = cls(Credentials(v.auth.akid, v.secret, v.token), v.auth.region,
                 v.auth.signed_headers, body_sha256)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if not hmac.compare_digest(expected, v.auth.signature):
        v.errors.append("SignatureDoesNotMatch: request signature differs from botocore's "
                        f"(scope {v.auth.scope}, SignedHeaders {';'.join(v.auth.signed_headers)})")


def chunk_signature(key, timestamp, scope, previous, chunk_sha256_hex):
    """Signature of one aws-chunked chunk (S3 "Transferring payload in multiple chunks")."""
    sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previous, EMPTY_SHA256,
                     chunk_sha256_hex])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) for x-amz-checksum-crc32c.
_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


class _Crc:
    def __init__(self, kind):
        self.kind, self.value = kind, 0xFFFFFFFF if kind == "crc32c" else 0

    def update(self, data):
        if self.kind == "crc32":
            self.value = zlib.crc32(data, self.value)
        else:
            c, t = self.value, _CRC32C_TABLE
            for b in data:
                c = t[(c ^ b) & 0xFF] ^ (c >> 8)
            self.value = c

    def digest(self):
        v = self.value ^ 0xFFFFFFFF if self.kind == "crc32c" else self.value
        return v.to_bytes(4, "big")


def checksum_for(name):
    """A hasher for an x-amz-checksum-* header name, or None if unsupported."""
    algo = name.lower().removeprefix("x-amz-checksum-")
    if algo in ("crc32", "crc32c"):
        return _Crc(algo)
    if algo in ("sha1", "sha256"):
        return hashlib.new(algo)
    return None


def checksum_b64(hasher):
    return base64.b64encode(hasher.digest()).decode()


def _read_line(reader):
    line = reader.readline(MAX_CHUNK_LINE)
    if not line.endswith(b"\r\n"):
        raise FramingError(f"aws-chunked line not CRLF-terminated or too long: {line[:60]!r}")
    return line[:-2]


def _parse_size(text):
    if not text or len(text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in text):
        raise FramingError(f"bad aws-chunked chunk size {text[:20]!r}")
    return int(text, 16)


@dataclass
class AwsChunkedResult:
    decoded_len: int = 0
    decoded_sha256: str = ""
    chunks: int = 0
    chunk_sizes: list = field(default_factory=list)
    trailers: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)


def decode_aws_chunked(reader, mode, sink, verdict=None, trailer_names=(), piece=1 << 18):
    """Decode an aws-chunked body from `reader` (read(n)/readline(limit)), feeding the
    decoded bytes to sink(bytes) and checking chunk signatures (signed mode, needs the
    Verdict of the head) or the trailing checksums (unsigned-trailer mode).

    Signature and checksum mismatches are collected in .errors; broken framing raises
    FramingError because nothing after it can be trusted.
    """
    res = AwsChunkedResult()
    total = hashlib.sha256()
    previous = verdict.auth.signature if verdict is not None and verdict.auth else None
    checks = {}
    for name in trailer_names:
        h = checksum_for(name)
        if h is None:
            res.errors.append(f"unsupported trailer checksum {name}")
        else:
            checks[name.lower()] = h
    while True:
        line = _read_line(reader)
        if mode == STREAMING_SIGNED:
            size_text, sep, ext = line.partition(b";")
            if not sep or not ext.startswith(b"chunk-signature="):
                raise FramingError(f"chunk {res.chunks} has no chunk-signature: {line[:80]!r}")
            claimed = ext[len(b"chunk-signature="):].decode("latin-1")
        else:
            size_text, claimed = line, None
        size = _parse_size(size_text)
        h = hashlib.sha256()
        left = size
        while left:
            data = reader.read(min(left, piece))
            if not data:
                raise FramingError(f"body ended inside aws-chunked chunk {res.chunks}")
            left -= len(data)
            h.update(data)
            total.update(data)
            for c in checks.values():
                c.update(data)
            sink(data)
        res.decoded_len += size
        res.chunk_sizes.append(size)
        if mode == STREAMING_SIGNED and verdict is not None and verdict.key is not None:
            expected = chunk_signature(verdict.key, verdict.timestamp, verdict.auth.scope,
                                       previous, h.hexdigest())
            if not hmac.compare_digest(expected, claimed):
                res.errors.append(f"chunk {res.chunks} ({size} bytes) signature mismatch")
            previous = expected
        res.chunks += 1
        if size == 0:
            break
        if reader.read(2) != b"\r\n":
            raise FramingError(f"aws-chunked chunk {res.chunks - 1} not followed by CRLF")
    if mode == STREAMING_SIGNED:
        if reader.read(2) != b"\r\n":
            raise FramingError("aws-chunked final chunk not followed by CRLF")
    else:
        while True:
            line = _read_line(reader)
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise FramingError(f"malformed trailer line {line[:60]!r}")
            res.trailers[name.strip().lower()] = value.strip()
        want = {n.lower() for n in trailer_names}
        if set(res.trailers) != want:
            res.errors.append(f"trailers {sorted(res.trailers)} != x-amz-trailer {sorted(want)}")
        for name, c in checks.items():
            got = res.trailers.get(name)
            if got is not None and got != checksum_b64(c):
                res.errors.append(f"trailer {name}={got} but the body's is {checksum_b64(c)}")
    if reader.read(1):
        raise FramingError("bytes after the end of the aws-chunked body")
    res.decoded_sha256 = total.hexdigest()
    return res
