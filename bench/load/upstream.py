#!/usr/bin/python3
"""Loopback upstream for the load benchmark's signature check and large-body runs.

It re-verifies the SigV4 signature of every request with botocore (never with sigv4d's own
code), reads and discards the request body as fast as Python can (1 MiB readinto, no
hashing: the upstream must not be the bottleneck of a 1 GiB PUT), and answers 200 with a
one-line JSON summary, or 403 with the reason when the signature does not verify.

The payload hash is taken from X-Amz-Content-SHA256 when the request carries one (S3), exactly
as the signature covers it; run.sh compares that header with the SHA-256 it computed of the
file it sent, so a signed payload is checked end to end without hashing 1 GiB here. Requests
without it (other services) have their body hashed here as it is drained, since the signature
covers that hash. Paths containing /verify-chunks/ with an aws-chunked body get every chunk
signature re-checked (slow; used on a small body before timing).

With --tls-cert and --tls-key it serves HTTPS instead (Python's ssl, the handshake in each
connection's own thread), for the benchmark's TLS upstream mode; without them, plain HTTP.

Only for loopback use: it binds 127.0.0.1.
"""

import argparse
import hashlib
import hmac
import json
import re
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
READ_CHUNK = 1 << 20
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class ExactHeadersAuth(SigV4Auth):
    """botocore's SigV4 with the signed-header set taken from the request as received.

    botocore itself never signs User-Agent or Expect; a proxy may legitimately sign them, so
    the set to verify is the one the Authorization header names, not botocore's choice.
    """

    def __init__(self, creds, service, region, signed):
        super().__init__(creds, service, region)
        self._signed = signed

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                out[name] = value
        return out


def verify(cfg, method, target, headers, body_sha256):
    """Returns (ok, reason). headers is the http.client.HTTPMessage of the request.

    body_sha256 is the hash of the body as received, for requests that carry no
    X-Amz-Content-SHA256 (services other than S3 sign the payload hash without sending it).
    """
    auth = headers.get("Authorization")
    if not auth:
        return False, "no Authorization header"
    m = AUTH_RE.fullmatch(auth)
    if not m:
        return False, "malformed Authorization header"
    if m["akid"] != cfg.access_key:
        return False, "unexpected access key id"
    amz_date = headers.get("X-Amz-Date")
    if not amz_date or amz_date[:8] != m["date"]:
        return False, "X-Amz-Date missing or not matching the credential scope"
    payload_hash = headers.get("X-Amz-Content-SHA256", body_sha256)
    if payload_hash is None:
        return False, "no X-Amz-Content-SHA256 header and the body was not hashed"
    signed = m["signed"].split(";")
    if "host" not in signed:
        return False, "host is not signed"
    hdrs = HTTPHeaders()
    for name in signed:
        values = headers.get_all(name)
        if values is None:
            return False, "signed header %s is missing" % name
        for v in values:
            hdrs[name] = v
    # botocore reads the payload hash from the X-Amz-Content-SHA256 header (HTTPHeaders is an
    # email Message: assignment appends, so replace rather than duplicate it).
    del hdrs["X-Amz-Content-SHA256"]
    hdrs["X-Amz-Content-SHA256"] = payload_hash
    req = AWSRequest(method=method, url="http://" + headers["Host"] + target, headers=hdrs)
    req.context["timestamp"] = amz_date
    signer = ExactHeadersAuth(
        Credentials(cfg.access_key, cfg.secret_key), m["service"], m["region"], signed
    )
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if not hmac.compare_digest(want, m["sig"]):
        return False, "signature mismatch"
    return True, "ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-upstream"

    def log_message(self, fmt, *args):  # quiet: the benchmark reads the JSON answers
        pass

    def setup(self):
        # Over TLS the listening socket accepts without handshaking (see main), so one slow or
        # broken client holds up only its own thread, never the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            finally:
                self.request.settimeout(None)
        super().setup()

    def _drain(self, h):
        """Reads and discards the body; returns the number of body bytes read.

        h: a hashlib object to feed the body to, or None (the fast path: no hashing)."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        buf = memoryview(bytearray(READ_CHUNK))
        total = 0
        upd = h.update if h is not None else (lambda _b: None)
        if te == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                left = size
                while left:
                    n = self.rfile.readinto(buf[: min(left, READ_CHUNK)])
                    if not n:
                        raise ConnectionError("body ended early")
                    upd(buf[:n])
                    left -= n
                total += size
                self.rfile.readline(8)
        left = int(self.headers.get("Content-Length", "0"))
        if left:
            # read1 hands back what the BufferedReader already holds (at most a few KiB past
            # the headers) and leaves it empty; the rest goes straight from the socket into one
            # reused buffer, which is what makes this drain at loopback speed.
            first = self.rfile.read1(min(left, READ_CHUNK))
            upd(first)
            total = len(first)
            left -= total
        while left:
            n = self.connection.recv_into(buf[: min(left, READ_CHUNK)])
            if not n:
                raise ConnectionError("body ended early")
            upd(buf[:n])
            left -= n
            total += n
        return total

    def _verify_chunks(self):
        """Reads an aws-chunked body, checking every chunk signature (slow: for checks only).

        Returns (decoded_bytes, error or None). Spec: the chain of chunk signatures in
        AWS's "signature calculations for the Authorization header: transferring payload in
        multiple chunks" (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), computed here with hashlib.
        """
        cfg = self.server.cfg
        m = AUTH_RE.fullmatch(self.headers.get("Authorization", ""))
        if not m:
            return 0, "no seed signature"
        scope = "%s/%s/%s/aws4_request" % (m["date"], m["region"], m["service"])
        key = ("AWS4" + cfg.secret_key).encode()
        for part in (m["date"], m["region"], m["service"], "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        prev, total, err = m["sig"], 0, None
        left = int(self.headers.get("Content-Length", "0"))
        while True:
            line = self.rfile.readline(4096)
            left -= len(line)
            size_hex, _, ext = line.rstrip(b"\r\n").partition(b";")
            size = int(size_hex, 16)
            if not ext.startswith(b"chunk-signature="):
                return total, "chunk without chunk-signature"
            data = self.rfile.read(size)
            left -= size + len(self.rfile.readline(8))
            sts = "\n".join(
                ("AWS4-HMAC-SHA256-PAYLOAD", self.headers["X-Amz-Date"], scope, prev, EMPTY_SHA256,
                 hashlib.sha256(data).hexdigest()))
            want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            got = ext[len(b"chunk-signature="):].decode()
            if err is None and not hmac.compare_digest(want, got):
                err = "chunk signature mismatch at decoded offset %d" % total
            prev = got
            total += size
            if size == 0:
                break
        if left:
            err = err or "aws-chunked framing does not add up to Content-Length (%d left)" % left
        return total, err

    def _handle(self):
        chunk_err = body_sha256 = None
        if "/verify-chunks/" in self.path and self.headers.get(
            "X-Amz-Content-SHA256") == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
            body_bytes, chunk_err = self._verify_chunks()
        elif "X-Amz-Content-SHA256" in self.headers:
            body_bytes = self._drain(None)
        else:  # the signature covers a hash we were not told: compute it
            h = hashlib.sha256()
            body_bytes = self._drain(h)
            body_sha256 = h.hexdigest()
        ok, why = verify(self.server.cfg, self.command, self.path, self.headers, body_sha256)
        if ok and chunk_err:
            ok, why = False, chunk_err
        elif ok and "/verify-chunks/" in self.path and chunk_err is None and \
                self.headers.get("X-Amz-Content-SHA256") == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
            why = "ok, every chunk signature verified"
        m = AUTH_RE.fullmatch(self.headers.get("Authorization", ""))
        answer = {
            "ok": ok,
            "why": why,
            "method": self.command,
            "path": self.path,
            "body_bytes": body_bytes,
            "content_length": self.headers.get("Content-Length"),
            "transfer_encoding": self.headers.get("Transfer-Encoding"),
            "x_amz_content_sha256": self.headers.get("X-Amz-Content-SHA256"),
            "body_sha256": body_sha256,
            "x_amz_decoded_content_length": self.headers.get("X-Amz-Decoded-Content-Length"),
            "content_encoding": self.headers.get("Content-Encoding"),
            "signed_headers": m["signed"] if m else None,
        }
        data = (json.dumps(answer) + "\n").encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_PUT = _handle
    do_POST = _handle


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key-file", required=True, help="file holding the secret key")
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS instead of HTTP")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    cfg = ap.parse_args()
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    with open(cfg.secret_key_file, encoding="ascii") as f:
        cfg.secret_key = f.read().strip()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    scheme = "http"
    if cfg.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    print("upstream.py listening on %s://127.0.0.1:%d" % (scheme, cfg.port), file=sys.stderr,
          flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
