"""Differential test: our signer (through tests/tools/sig_cli) against botocore's SigV4.

Random requests are signed by both; the canonical request, string to sign and signature must
be identical, and so must the headers (header form) or X-Amz-* query parameters (query form)
that each adds. One sig_cli process signs the whole batch.

Environment:
  SIG_CLI               path of the sig_cli binary (set by CTest; required)
  SIGV4D_DIFF_SEED      replay a run: the seed every run prints
  SIGV4D_DIFF_COUNT     requests per run (default 10000)

Where botocore is not what AWS services do, the generator only produces inputs on which the
two agree, and says so where it does:

* Query strings: botocore signs the query exactly as given (it splits, sorts, and joins, but
  never decodes or re-encodes), while the services decode each name and value and re-encode
  it (RFC 3986 unreserved kept, everything else %XX uppercase). So botocore always gets the
  canonical encoding of the logical parameters, and our signer gets an equivalent wire form:
  lowercase hex, unreserved bytes needlessly %-encoded, sub-delimiters raw, "k" for "k=", a
  raw '=' inside a value.
* S3 paths: botocore's S3SigV4Auth uses the path as given; S3 decodes it and encodes it once.
  botocore gets the canonical encoding, our signer (SIG_URI_S3) an equivalent one, including
  a raw '=' (signs as %3D) and a raw '+' (a literal plus in a path).
* Other services' paths (SIG_URI_NORMALIZE): both get the same wire path, which is normalized
  and then encoded once more. Dot segments are only the literal "." and ".." ("%2E" is an
  ordinary segment, double-encoded). A path ending in a dot segment loses its trailing slash
  in both ("/a/b/.." gives "/a", where RFC 3986 5.2.4 gives "/a/"): the signer follows
  botocore there, so such paths are generated too. An empty path is "/" for both; an empty
  S3 path is never generated (botocore would sign "", we sign "/").
* Empty query pairs ("a&&b"): botocore signs an extra "=" pair, we skip it; never generated.
* Headers: botocore signs every header but expect, user-agent and x-amzn-trace-id; we also
  never sign hop-by-hop headers (connection, te, proxy-*, ...), which a proxy rewrites. Those
  are not generated, nor Date (botocore then signs Date instead of X-Amz-Date) nor the
  headers the signers add themselves. botocore trims with Python's str.split(), which also
  splits on Unicode and C0 whitespace that HTTP does not fold, so values hold only visible
  ASCII, non-whitespace UTF-8, SP, HT and obs-fold line breaks.
* Presigned URLs (query form): botocore rebuilds the query through parse_qs, which keeps only
  the first value of a repeated name, so query-form requests have unique names and no body.
"""

import difflib
import hashlib
import os
import random
import subprocess
import sys
import time
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# enum sig_err (signer/sig_types.h)
SIG_OK = 0
SIG_ERR_BAD_PERCENT_ENCODING = 101
SIG_ERR_BAD_HEADER_NAME = 102
SIG_ERR_BAD_HEADER_VALUE = 103
SIG_ERR_TOO_MANY_HEADERS = 104
SIG_ERR_TOO_MANY_QUERY_PARAMS = 105

SIG_MAX_HEADERS = 256
SIG_MAX_QUERY_PARAMS = 512

UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# RFC 3986 sub-delims and the other pchar extras that may appear raw in a path or query.
SUB_DELIMS = b"!$&'()*+,;=:@"
HEX = "0123456789ABCDEF"


def sig_cli_path():
    path = os.environ.get("SIG_CLI")
    if not path:
        pytest.fail("SIG_CLI must name the sig_cli binary (CTest sets it)")
    return path


# ---- sig_cli wire format (documented in tests/tools/sig_cli.c) ---------------------------


def netstring(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return str(len(b)).encode() + b":" + b + b","


def encode_request(r):
    fields = [
        r["alg"],
        r["form"],
        r["mode"],
        r["region"],
        r["service"],
        str(r["unix_time"]),
        r["payload_hash"],
        r["flags"],
        str(r["expires"]),
        r["akid"],
        r["secret"],
        r["token"] or b"",
        r["method"],
        r["cli_path"],
        r["cli_query"],
        str(len(r["headers"])),
    ]
    for name, value in r["headers"]:
        fields += [name, value]
    return b"".join(netstring(f) for f in fields)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def field(self):
        colon = self.data.index(b":", self.pos)
        n = int(self.data[self.pos : colon])
        start = colon + 1
        assert self.data[start + n : start + n + 1] == b",", "bad netstring from sig_cli"
        self.pos = start + n + 1
        return self.data[start : start + n]

    def result(self):
        status = int(self.field())
        if status != SIG_OK:
            return {"status": status, "message": self.field().decode()}
        res = {"status": status}
        for key in ("canonical_request", "string_to_sign", "signature", "signed_headers",
                    "credential_scope", "query"):
            res[key] = self.field()
        res["add_headers"] = [(self.field(), self.field()) for _ in range(int(self.field()))]
        return res

    def at_end(self):
        return self.pos == len(self.data)


def run_sig_cli(requests):
    stdin = b"".join(encode_request(r) for r in requests)
    proc = subprocess.run([sig_cli_path()], input=stdin, capture_output=True, timeout=300)
    assert proc.returncode == 0, (
        f"sig_cli exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    reader = Reader(proc.stdout)
    results = [reader.result() for _ in requests]
    assert reader.at_end(), "sig_cli wrote more results than requests"
    return results


# ---- encodings ---------------------------------------------------------------------------


def canon_encode(b):
    """The SigV4 canonical encoding of raw bytes: unreserved kept, others %XX uppercase."""
    return "".join(chr(c) if c in UNRESERVED else "%{:02X}".format(c) for c in b)


def pct(rng, c):
    s = "%{:02X}".format(c)
    return s.lower() if rng.random() < 0.5 else s


def alt_encode(rng, b, raw_ok):
    """An equivalent wire encoding of raw bytes for a server that decodes before it
    canonicalizes: random hex case, unreserved bytes sometimes %-encoded, bytes in raw_ok
    sometimes left raw."""
    out = []
    for c in b:
        if c in UNRESERVED:
            out.append(chr(c) if rng.random() < 0.8 else pct(rng, c))
        elif c in raw_ok and rng.random() < 0.5:
            out.append(chr(c))
        else:
            out.append(pct(rng, c))
    return "".join(out).encode("latin-1")


# ---- random requests ---------------------------------------------------------------------

CHAR_POOL = [
    b"a", b"Z", b"0", b"-", b".", b"_", b"~", b" ", b"%", b"+", b"=", b"&", b"/", b"?",
    b"#", b"!", b"$", b"'", b"(", b")", b"*", b",", b";", b":", b"@", b"\"", b"<", b"[",
    "\u00e9".encode(), "\u1234".encode(), "\u20ac".encode(), "\U0001f600".encode(),
]
WORD_CHARS = UNRESERVED.decode()
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH"]
REGIONS = ["us-east-1", "eu-west-3", "ap-southeast-2", "cn-north-1", "us-gov-west-1"]
SERVICES = ["execute-api", "sqs", "service", "dynamodb", "es", "lambda", "sts", "iam"]
TCHAR_SPECIALS = "!#$%&'*+-.^_`|~"
# Never signed by us, or added by the signers, or handled differently (see the docstring).
EXCLUDED_HEADERS = {
    "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "date",
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
    "proxy-authorization", "proxy-connection", "x-amz-region-set",
}


def rand_bytes(rng, lo, hi):
    return b"".join(rng.choice(CHAR_POOL) for _ in range(rng.randint(lo, hi)))


def rand_word(rng, lo, hi, chars=WORD_CHARS):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def gen_s3_path(rng):
    """(botocore wire path, our wire path). Logical segments may be empty, dot segments or
    any bytes; S3 keeps them all (no normalization)."""
    segs = []
    for _ in range(rng.randint(0, 6)):
        k = rng.random()
        if k < 0.1:
            segs.append(b"")
        elif k < 0.2:
            segs.append(rng.choice([b".", b".."]))
        else:
            segs.append(rand_bytes(rng, 1, 8).replace(b"/", b"_"))
    if rng.random() < 0.2:
        segs.append(b"")  # trailing slash
    boto = "/" + "/".join(canon_encode(s) for s in segs)
    # A raw '=' signs as %3D and a raw '+' is a literal plus in an S3 path.
    ours = b"/" + b"/".join(alt_encode(rng, s, SUB_DELIMS) for s in segs)
    return boto, ours


def gen_normalized_path(rng):
    """One wire path for both: segments of unreserved text, raw sub-delimiters, valid
    %-escapes in either hex case (including %2E and %2F), raw UTF-8, dot, encoded-dot and
    empty segments."""
    if rng.random() < 0.03:
        return b""
    segs = []
    for _ in range(rng.randint(0, 6)):
        k = rng.random()
        if k < 0.1:
            segs.append(b"")
        elif k < 0.25:
            segs.append(rng.choice([b".", b"..", b"%2E", b"%2e%2E"]))
        else:
            parts = []
            for _ in range(rng.randint(1, 6)):
                j = rng.random()
                if j < 0.4:
                    parts.append(rand_word(rng, 1, 4).encode())
                elif j < 0.6:
                    parts.append(bytes([rng.choice(SUB_DELIMS)]))
                elif j < 0.8:
                    parts.append(pct(rng, rng.choice([0x2E, 0x2F, 0x25, 0x41, 0x7E, 0xE2,
                                                      rng.randrange(256)])).encode())
                elif j < 0.95:
                    parts.append(rng.choice(CHAR_POOL[-4:]))
                else:
                    parts.append(b" ")
            segs.append(b"".join(parts))
    if rng.random() < 0.3:
        segs.append(b"")
    return b"/" + b"/".join(segs)


def gen_query(rng, unique_names):
    """(botocore wire query, our wire query, logical pairs)."""
    pairs = []
    names = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8])):
        if names and not unique_names and rng.random() < 0.25:
            key = rng.choice(names)
        elif rng.random() < 0.05:
            key = b""
        else:
            key = rand_bytes(rng, 1, 6)
        if unique_names and key in names:
            continue
        names.append(key)
        k = rng.random()
        value = None if k < 0.1 and key else (b"" if k < 0.2 else rand_bytes(rng, 1, 8))
        pairs.append((key, value))
    boto, ours = [], []
    for key, value in pairs:
        boto.append(canon_encode(key) + "=" + canon_encode(value or b""))
        # Raw in a name: sub-delimiters but '&', '=' and '+' (form encoding reads '+' as a
        # space; AWS reads it as a plus: neither side should be asked to guess). In a value
        # a raw '=' is fine: a pair splits at its first '='.
        k_raw = b"!$'()*,;:@/?"
        v_raw = k_raw + b"="
        enc_key = alt_encode(rng, key, k_raw)
        if value is None:
            ours.append(enc_key if rng.random() < 0.5 else enc_key + b"=")
        else:
            ours.append(enc_key + b"=" + alt_encode(rng, value, v_raw))
    return "&".join(boto), b"&".join(ours), pairs


def gen_header_value(rng):
    parts = []
    for _ in range(rng.randint(0, 6)):
        k = rng.random()
        if k < 0.45:
            parts.append("".join(chr(rng.randint(0x21, 0x7E)) for _ in range(rng.randint(1, 6))))
        elif k < 0.7:
            parts.append(rng.choice([" ", "  ", "\t", " \t "]))
        elif k < 0.85:
            parts.append(rng.choice(["\r\n ", "\r\n\t", "\n ", "\r\n   "]))
        else:
            parts.append(rng.choice(["\u00e9", "\u1234", "\u20ac", "\U0001f600"]))
    value = "".join(parts)
    # A line break must be followed by SP or HT (obs-fold), never end the value.
    while value.endswith(("\r\n", "\n", "\r")):
        value = value.rstrip("\r\n")
    return value


def gen_header_name(rng):
    k = rng.random()
    if k < 0.3:
        name = "X-Amz-Meta-" + rand_word(rng, 1, 8)
    elif k < 0.5:
        name = rng.choice(["Content-Type", "My-Header1", "X-Custom", "Accept", "Content-Length",
                           "Expect", "User-Agent", "X-Amzn-Trace-Id", "Range", "If-Match"])
    else:
        name = rand_word(rng, 1, 10, WORD_CHARS + TCHAR_SPECIALS)
    if name.lower() in EXCLUDED_HEADERS or name.lower().startswith("proxy-"):
        name = "X-" + name
    return "".join(c.upper() if rng.random() < 0.3 else c for c in name)


def gen_unix_time(rng):
    return rng.randint(0, 253402300799)  # 1970-01-01 .. 9999-12-31T23:59:59Z


def amz_date(t):
    tm = time.gmtime(t)
    return "{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}Z".format(
        tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)


def gen_request(rng):
    s3 = rng.random() < 0.5
    query_form = rng.random() < 0.15
    r = {
        "alg": "v4",
        "form": "query" if query_form else "header",
        "mode": "s3" if s3 else "normalize",
        "region": rng.choice(REGIONS) if rng.random() < 0.8 else rand_word(rng, 1, 20,
                                                                            "abc-123"),
        "service": "s3" if s3 else (rng.choice(SERVICES) if rng.random() < 0.8
                                    else rand_word(rng, 1, 20, "abcxyz-09")),
        "unix_time": gen_unix_time(rng),
        "akid": "AKIA" + rand_word(rng, 12, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "secret": rand_word(rng, 20, 60, WORD_CHARS + "/+="),
        "token": rand_word(rng, 8, 300, WORD_CHARS + "/+=") if rng.random() < 0.4 else None,
        "method": rng.choice(METHODS),
        "expires": rng.randint(1, 604800),
        "flags": "",
        "payload_hash": "",
    }
    if s3:
        r["boto_path"], r["cli_path"] = gen_s3_path(rng)
    else:
        r["cli_path"] = gen_normalized_path(rng)
        r["boto_path"] = r["cli_path"].decode("utf-8")
    r["boto_query"], r["cli_query"], r["pairs"] = gen_query(rng, unique_names=query_form)
    host = rng.choice(["example.amazonaws.com", "bucket.s3.us-east-1.amazonaws.com",
                       "127.0.0.1:8080", "[::1]:443"])
    headers = [(rng.choice(["Host", "host", "HOST"]), host)]
    for _ in range(rng.choice([0, 1, 2, 3, 5, 10])):
        if len(headers) > 1 and rng.random() < 0.2:
            prev = rng.choice(headers[1:])[0]
            name = "".join(c.swapcase() if rng.random() < 0.5 else c for c in prev)
        else:
            name = gen_header_name(rng)
        headers.append((name, gen_header_value(rng)))
    r["headers"] = [(n.encode(), v.encode()) for n, v in headers]
    r["boto_headers"] = headers
    r["host"] = host
    body = b"" if query_form else bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 64])))
    r["body"] = body
    if query_form:
        # Presigned URLs sign no body: S3's is UNSIGNED-PAYLOAD, others the hash of nothing
        # (which our signer defaults to when the payload hash is empty).
        r["payload_hash"] = "UNSIGNED-PAYLOAD" if s3 else ""
        r["unsigned"] = s3
    elif s3:
        r["unsigned"] = rng.random() < 0.2
        r["payload_hash"] = "UNSIGNED-PAYLOAD" if r["unsigned"] else hashlib.sha256(body).hexdigest()
        r["flags"] = "c"  # S3 requires x-amz-content-sha256
    else:
        r["unsigned"] = False
        r["payload_hash"] = hashlib.sha256(body).hexdigest() if body or rng.random() < 0.5 else ""
    return r


# ---- botocore ----------------------------------------------------------------------------


class _S3Config:
    def __init__(self, sign_payload):
        self.s3 = {"payload_signing_enabled": sign_payload}


def botocore_sign(r):
    """botocore's signer with the clock fixed: the steps of add_auth, in order, with the
    timestamp botocore would take from the clock set beforehand."""
    creds = Credentials(r["akid"], r["secret"], r["token"])
    s3 = r["mode"] == "s3"
    if r["form"] == "query":
        cls = S3SigV4QueryAuth if s3 else SigV4QueryAuth
        auth = cls(creds, r["service"], r["region"], expires=r["expires"])
    else:
        auth = (S3SigV4Auth if s3 else SigV4Auth)(creds, r["service"], r["region"])
    url = "http://" + r["host"] + r["boto_path"]
    if r["boto_query"] or r["pairs"]:
        url += "?" + r["boto_query"]
    req = AWSRequest(method=r["method"], url=url, data=r["body"])
    for name, value in r["boto_headers"]:
        req.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    req.context["timestamp"] = amz_date(r["unix_time"])
    if s3 and r["form"] == "header":
        req.context["client_config"] = _S3Config(not r["unsigned"])
    auth._modify_request_before_signing(req)
    cr = auth.canonical_request(req)
    sts = auth.string_to_sign(req, cr)
    sig = auth.signature(sts, req)
    auth._inject_signature_to_request(req, sig)
    return {"canonical_request": cr.encode("utf-8"), "string_to_sign": sts.encode("utf-8"),
            "signature": sig.encode(), "request": req}


def added_headers_botocore(req, r):
    names = ["X-Amz-Date", "Authorization"]
    if r["token"]:
        names.append("X-Amz-Security-Token")
    if r["mode"] == "s3":
        names.append("X-Amz-Content-SHA256")
    return sorted((n.lower().encode(), req.headers[n].encode()) for n in names)


def decoded_pairs(query):
    out = []
    for pair in query.split(b"&") if query else []:
        k, _, v = pair.partition(b"=")
        out.append((unquote_to_bytes(k), unquote_to_bytes(v)))
    return sorted(out)


def describe(seed, index, r, ours, boto):
    lines = [f"mismatch: seed={seed} request #{index} (replay: SIGV4D_DIFF_SEED={seed})",
             f"  form={r['form']} mode={r['mode']} service={r['service']!r} "
             f"region={r['region']!r} time={r['unix_time']} token={'yes' if r['token'] else 'no'}",
             f"  method={r['method']!r}",
             f"  our path={r['cli_path']!r} query={r['cli_query']!r}",
             f"  botocore url path={r['boto_path']!r} query={r['boto_query']!r}",
             f"  headers={r['headers']!r}",
             f"  payload_hash={r['payload_hash']!r} flags={r['flags']!r}"]
    if ours["status"] != SIG_OK:
        lines.append(f"  sig_cli error {ours['status']}: {ours['message']}")
    else:
        for key in ("canonical_request", "string_to_sign", "signature"):
            if ours[key] != boto[key]:
                diff = difflib.unified_diff(
                    boto[key].decode("utf-8", "replace").split("\n"),
                    ours[key].decode("utf-8", "replace").split("\n"),
                    "botocore", "sigv4d", lineterm="")
                lines.append(f"  {key} differs:")
                lines += ["    " + d for d in diff]
    return "\n".join(lines)


def test_botocore_differential():
    seed = int(os.environ.get("SIGV4D_DIFF_SEED") or random.SystemRandom().randrange(2**32))
    count = int(os.environ.get("SIGV4D_DIFF_COUNT") or 10000)
    print(f"botocore differential: seed={seed} count={count}", file=sys.stderr)
    print(f"botocore differential: seed={seed} count={count}")
    rng = random.Random(seed)
    requests = [gen_request(rng) for _ in range(count)]
    results = run_sig_cli(requests)

    mismatches = []
    forms = {"header": 0, "query": 0}
    for i, (r, ours) in enumerate(zip(requests, results)):
        boto = botocore_sign(r)
        ok = ours["status"] == SIG_OK and all(
            ours[k] == boto[k] for k in ("canonical_request", "string_to_sign", "signature"))
        if ok and r["form"] == "header":
            got = sorted((n.lower(), v) for n, v in ours["add_headers"])
            ok = got == added_headers_botocore(boto["request"], r)
        elif ok:
            # Same parameters (decoded), X-Amz-Signature included; and no headers added.
            boto_query = urlsplit(boto["request"].url).query.encode()
            ok = (decoded_pairs(ours["query"]) == decoded_pairs(boto_query)
                  and ours["add_headers"] == [])
        if not ok:
            mismatches.append(describe(seed, i, r, ours, boto))
        forms[r["form"]] += 1
    print(f"botocore differential: {count} requests ({forms}), {len(mismatches)} mismatches")
    assert not mismatches, "\n\n".join(mismatches[:5]) + (
        f"\n\n... {len(mismatches)} mismatches in all (seed={seed})")


# ---- malformed input -----------------------------------------------------------------------


def base_request(**over):
    r = {
        "alg": "v4", "form": "header", "mode": "s3", "region": "us-east-1", "service": "s3",
        "unix_time": 1440938160, "payload_hash": "UNSIGNED-PAYLOAD", "flags": "c",
        "expires": 3600, "akid": "AKIDEXAMPLE",
        "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token": None, "method": "GET",
        "cli_path": b"/bucket/key", "cli_query": b"",
        "headers": [(b"Host", b"example.amazonaws.com")],
    }
    r.update(over)
    return r


MALFORMED = [
    ("s3 path: %zz", dict(cli_path=b"/bucket/a%zz"), SIG_ERR_BAD_PERCENT_ENCODING),
    ("s3 path: truncated %4", dict(cli_path=b"/bucket/a%4"), SIG_ERR_BAD_PERCENT_ENCODING),
    ("s3 path: lone % at end", dict(cli_path=b"/bucket/%"), SIG_ERR_BAD_PERCENT_ENCODING),
    ("s3 query: %G1 in a value", dict(cli_query=b"a=%G1"), SIG_ERR_BAD_PERCENT_ENCODING),
    ("s3 query: % in a name", dict(cli_query=b"x=1&%=2"), SIG_ERR_BAD_PERCENT_ENCODING),
    ("header name with a space", dict(headers=[(b"Host", b"h"), (b"My Header", b"v")]),
     SIG_ERR_BAD_HEADER_NAME),
    ("header name with a control byte", dict(headers=[(b"Host", b"h"), (b"X-\x01", b"v")]),
     SIG_ERR_BAD_HEADER_NAME),
    ("empty header name", dict(headers=[(b"Host", b"h"), (b"", b"v")]),
     SIG_ERR_BAD_HEADER_NAME),
    ("NUL in a header value", dict(headers=[(b"Host", b"h"), (b"X-A", b"a\x00b")]),
     SIG_ERR_BAD_HEADER_VALUE),
    ("too many headers",
     dict(headers=[(b"Host", b"h")] + [(b"X-H%d" % i, b"v") for i in range(SIG_MAX_HEADERS)]),
     SIG_ERR_TOO_MANY_HEADERS),
    ("too many query parameters",
     dict(cli_query=b"&".join(b"p%d=1" % i for i in range(SIG_MAX_QUERY_PARAMS + 1))),
     SIG_ERR_TOO_MANY_QUERY_PARAMS),
]


@pytest.mark.parametrize("form", ["header", "query"])
def test_malformed_input_codes(form):
    """Each malformed request gets its specific error code, sig_cli keeps going (a valid
    request after each one signs), and exits cleanly: no crash."""
    requests = []
    for _, over, _ in MALFORMED:
        requests.append(base_request(form=form, **over))
        requests.append(base_request(form=form))
    # Below the limits all is well. The signer counts the headers and parameters it adds
    # itself (x-amz-date..., X-Amz-Algorithm...) against the same limits, so "below" leaves
    # room for those.
    requests.append(base_request(form=form, headers=[(b"Host", b"h")] + [
        (b"X-H%d" % i, b"v") for i in range(SIG_MAX_HEADERS - 8)]))
    requests.append(base_request(form=form, cli_query=b"&".join(
        b"p%d=1" % i for i in range(SIG_MAX_QUERY_PARAMS - 8))))
    results = run_sig_cli(requests)
    failures = []
    for i, (what, _, code) in enumerate(MALFORMED):
        bad, good = results[2 * i], results[2 * i + 1]
        if bad["status"] != code:
            failures.append(f"{what}: expected error {code}, got {bad['status']}"
                            f" {bad.get('message', '')}")
        if good["status"] != SIG_OK:
            failures.append(f"{what}: the valid request after it failed: {good}")
    if results[-2]["status"] != SIG_OK:
        failures.append(f"{SIG_MAX_HEADERS - 7} headers refused: {results[-2]}")
    if results[-1]["status"] != SIG_OK:
        failures.append(f"{SIG_MAX_QUERY_PARAMS - 8} query parameters refused: {results[-1]}")
    assert not failures, "\n".join(failures)


def test_sig_cli_rejects_a_malformed_stream():
    """A broken netstring stops sig_cli with status 2 and a message, not a crash."""
    good = encode_request(base_request())
    for bad in (b"x", b"3:v4,", b"99999999999:", b"2:v4;", b"02:v4,"):
        proc = subprocess.run([sig_cli_path()], input=good + bad, capture_output=True,
                              timeout=30)
        assert proc.returncode == 2, (bad, proc.returncode, proc.stderr)
        assert b"sig_cli: request 1" in proc.stderr, proc.stderr
        reader = Reader(proc.stdout)
        assert reader.result()["status"] == SIG_OK
        assert reader.at_end()


def test_key_cache_confusion():
    """The signer caches derived keys by (secret, date, region, service): requests whose
    fields concatenate alike ("ab"+"c" vs "a"+"bc"), secrets that are prefixes of one another
    and more distinct keys than cache slots, interleaved, must each match botocore."""
    base = dict(mode="normalize", flags="", payload_hash="", cli_path=b"/", cli_query=b"",
                boto_path="/", boto_query="", pairs=[], host="h", body=b"", unsigned=False,
                headers=[(b"Host", b"h")], boto_headers=[("Host", "h")])
    variants = []
    for secret in ("k", "kk", "kkk", "k" * 40, "k" * 41, "K" * 40):
        for region, service in (("ab", "c"), ("a", "bc"), ("abc", "x"), ("ab", "cx")):
            for t in (0, 86399, 86400):  # same day twice, then the next day
                variants.append(base_request(**base, secret=secret, region=region,
                                             service=service, unix_time=t))
    requests = variants + variants[::-1] + variants[::3]
    results = run_sig_cli(requests)
    failures = []
    for i, (r, ours) in enumerate(zip(requests, results)):
        boto = botocore_sign(r)
        if ours["status"] != SIG_OK or ours["signature"] != boto["signature"]:
            failures.append(describe("fixed", i, r, ours, boto))
    assert not failures, "\n\n".join(failures[:3]) + f"\n\n{len(failures)} failures"
