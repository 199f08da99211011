#!/usr/bin/python3
"""Loopback upstream for the load benchmark's signature check and large-body runs.

It re-verifies the SigV4 signature of every request with botocore (never with sigv4d's own
code), reads and discards the request body as fast as Python can (1 MiB readinto, no
hashing: the upstream must not be the bottleneck of a 1 GiB PUT), and answers 200 with a
one-line JSON summary, or 403 with the reason when the signature does not verify.

The payload hash is taken from X-Amz-Content-SHA256, exactly as the signature covers it;
run.sh compares that header with the SHA-256 it computed of the file it sent, so a signed
payload is checked end to end without hashing 1 GiB here.

Only for loopback use: it binds 127.0.0.1.
"""

import argparse
import hmac
import json
import re
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


def verify(cfg, method, target, headers):
    """Returns (ok, reason). headers is the http.client.HTTPMessage of the request."""
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
    if "X-Amz-Content-SHA256" not in headers:
        return False, "no X-Amz-Content-SHA256 header"
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
    hdrs["X-Amz-Content-SHA256"] = headers["X-Amz-Content-SHA256"]
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

    def _drain(self):
        """Reads and discards the body; returns the number of body bytes read."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        buf = memoryview(bytearray(READ_CHUNK))
        total = 0
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
                    left -= n
                total += size
                self.rfile.readline(8)
        left = int(self.headers.get("Content-Length", "0"))
        if left:
            # read1 hands back what the BufferedReader already holds (at most a few KiB past
            # the headers) and leaves it empty; the rest goes straight from the socket into one
            # reused buffer, which is what makes this drain at loopback speed.
            total = len(self.rfile.read1(min(left, READ_CHUNK)))
            left -= total
        while left:
            n = self.connection.recv_into(buf[: min(left, READ_CHUNK)])
            if not n:
                raise ConnectionError("body ended early")
            left -= n
            total += n
        return total

    def _handle(self):
        body_bytes = self._drain()
        ok, why = verify(self.server.cfg, self.command, self.path, self.headers)
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
    cfg = ap.parse_args()
    with open(cfg.secret_key_file, encoding="ascii") as f:
        cfg.secret_key = f.read().strip()
    srv = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    srv.daemon_threads = True
    srv.cfg = cfg
    print("upstream.py listening on 127.0.0.1:%d" % cfg.port, file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
