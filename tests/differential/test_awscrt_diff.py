"""Differential test: our signer (through tests/tools/sig_cli) against aws-c-auth, AWS's C
signer, as Debian's python3-awscrt (0.16.8) bundles it. A second opinion, independent of
botocore: other code, other authors, and it also does SigV4a.

SigV4 (header and query form): random requests are signed by both; the signatures must be
identical, and so must everything each adds (headers; or X-Amz-* query parameters, compared
decoded).

SigV4a: ECDSA signatures are randomized, so they cannot be compared. Instead the public key of
the credentials is derived here in Python, independently of both signers, following AWS's
published algorithm (v4a_public_key), and awscrt's signature must verify over OUR string to
sign: that holds only if the strings to sign, hence the canonical requests, are identical.
Our own signature must verify with the same key, and the rest of what both add
(Authorization without its signature, the X-Amz-* parameters) must be identical.

aws-c-auth does not return its canonical request, but logs it at INFO level: on a mismatch the
first few requests are signed again in a child process with logging on, to show it.

Environment:
  SIG_CLI                    path of the sig_cli binary (set by CTest; required)
  SIGV4D_DIFF_SEED           replay a run: the seed every run prints
  SIGV4D_AWSCRT_COUNT        SigV4 requests per run (default 10000)
  SIGV4D_AWSCRT_V4A_COUNT    SigV4a requests per run (default 2000)

The random pieces (paths, queries, header names and values) come from test_botocore_diff.
Where aws-c-auth and our signer differ by design, or awscrt cannot take an input, the
generator only produces inputs on which the two can agree, and says so here:

* S3 paths: aws-c-auth with use_double_uri_encode and should_normalize_uri_path both off
  (what S3 needs) signs the wire path verbatim: it trusts the caller to have encoded it
  canonically. Our SIG_URI_S3 decodes the wire path once and encodes it once, as S3 does. The
  two agree when the wire path is the canonical encoding, so awscrt gets that, and our signer
  an equivalent wire form (random hex case, needless escapes, raw sub-delimiters, dot and
  empty segments, which neither normalizes for S3). Where they part is an encoded slash in a
  segment: for "/b/a%2Fb" aws-c-auth signs "/b/a%2Fb", our signer decodes it into "/b/a/b"
  (the key S3 sees is "a/b" either way). gen_s3_path never puts a '/' inside a segment.
* Other services' paths: both get the same wire path; both drop "." and ".." segments and
  empty segments (a path ending in a dot segment loses its trailing slash in both), then
  encode the result once more.
* awscrt parses the request target with aws-c-io's URI parser, which refuses an empty path
  and takes the first ':' followed by '/' for the end of a scheme ("a:/b" fails with
  AWS_ERROR_MALFORMED_INPUT_STRING); to check that, it reads the byte after the ':', past the
  end of the string when the ':' is last, so a trailing ':' fails at random. Paths with an
  empty value, ":/" or a trailing ':' are not generated; in the query awscrt gets those
  colons as %3A (equivalent: both decode the query).
* Query strings: both decode each name and value and re-encode it, so otherwise both get the
  same wire query, lowercase hex and needless escapes included. A raw '+' is a literal plus
  to both (tests/unit/sig_canonical_test.c covers it; the generator always sends %2B).
* Headers: aws-c-auth signs everything but user-agent, x-amzn-trace-id, connection, upgrade
  and sec-websocket-{key,protocol,version}; as a proxy our signer also leaves expect and the
  hop-by-hop headers (te, trailer, keep-alive, transfer-encoding, proxy-*) unsigned. None of
  those are generated.
* Inputs our signer refuses and aws-c-auth signs (a malformed %-escape in an S3 path,
  control bytes in header values, no or two Host headers, spaces in the region or session
  token, X-Amz-Expires above 604800, STREAMING-AWS4-HMAC-SHA256-EVENTS) are not generated:
  refusing them is our signer's choice (sig_sign.h), not a disagreement on a signature.
"""

import datetime
import hashlib
import hmac
import io
import os
import pickle
import random
import subprocess
import sys
import time
from urllib.parse import unquote_to_bytes

import pytest
from awscrt.auth import (AwsCredentialsProvider, AwsSignatureType, AwsSignedBodyHeaderType,
                         AwsSigningAlgorithm, AwsSigningConfig, aws_sign_request)
from awscrt.http import HttpHeaders, HttpRequest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# The botocore test's generator and sig_cli driver, reused as a library. pytest already puts
# this directory on sys.path for a test file it collects; the explicit insert keeps
# `python3 test_awscrt_diff.py --explain` (run below for diagnostics) working too.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_botocore_diff as bd  # noqa: E402

SIG_OK = bd.SIG_OK

# Never signed by one of the two, or added by the signers themselves (see the docstring).
EXCLUDED_HEADERS = bd.EXCLUDED_HEADERS | {
    "expect", "user-agent", "x-amzn-trace-id", "sec-websocket-key", "sec-websocket-protocol",
    "sec-websocket-version",
}
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# The S3 streaming literals our signer accepts (it refuses STREAMING-AWS4-HMAC-SHA256-EVENTS).
STREAMING_LITERALS = ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"]
V4A_REGION_SETS = ["*", "us-east-1", "us-east-1,us-west-2", "eu-*", "us-*,ap-southeast-2"]


# ---- random requests ---------------------------------------------------------------------


def gen_header_name(rng):
    name = bd.gen_header_name(rng)
    low = name.lower()
    if low in EXCLUDED_HEADERS or low.startswith("proxy-"):
        name = "X-" + name
    return name


def gen_normalized_path(rng):
    while True:
        path = bd.gen_normalized_path(rng)
        # See the docstring: awscrt refuses an empty path, and a raw ':' before '/' or at
        # the end of its request target.
        if path and b":/" not in path and not path.endswith(b":"):
            return path


def crt_safe_query(query):
    """An equivalent wire query without the ':' that aws-c-io's URI parser misreads (see the
    docstring): before a '/' or at the very end."""
    query = query.replace(b":/", b"%3A/")
    return query[:-1] + b"%3A" if query.endswith(b":") else query


def gen_payload(rng, r):
    """Sets the body, the payload hash each side gets, and whether x-amz-content-sha256 is
    added. awscrt either hashes the body itself (signed_body_value None) or is told the
    value; our sig_cli is always told (empty: the hash of no bytes)."""
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 64])))
    r["body"] = body
    s3 = r["mode"] == "s3"
    k = rng.random()
    if (s3 and r["form"] == "query") or k < 0.2:
        literal = "UNSIGNED-PAYLOAD"
        if s3 and r["form"] == "header" and rng.random() < 0.3:
            literal = rng.choice(STREAMING_LITERALS)
        r["crt_body_value"] = r["payload_hash"] = literal
    elif k < 0.6:
        r["crt_body_value"] = None  # awscrt reads the body stream and hashes it
        r["payload_hash"] = hashlib.sha256(body).hexdigest() if body or k < 0.4 else ""
    else:
        r["crt_body_value"] = r["payload_hash"] = hashlib.sha256(body).hexdigest()
    # S3 requires x-amz-content-sha256 on header-signed requests; elsewhere it is optional.
    # In query form neither signer adds it (both add no header then: checked by compare).
    r["flags"] = "c" if (s3 and r["form"] == "header") or rng.random() < 0.3 else ""


def gen_request(rng, alg):
    s3 = rng.random() < 0.4
    form = "query" if rng.random() < 0.35 else "header"
    if alg == "v4a":
        region = rng.choice(V4A_REGION_SETS)
    else:
        region = rng.choice(bd.REGIONS) if rng.random() < 0.8 else bd.rand_word(
            rng, 1, 20, "abc-123")
    r = {
        "alg": alg,
        "form": form,
        "mode": "s3" if s3 else "normalize",
        "region": region,
        "service": "s3" if s3 else (rng.choice(bd.SERVICES) if rng.random() < 0.8
                                    else bd.rand_word(rng, 1, 20, "abcxyz-09")),
        "unix_time": bd.gen_unix_time(rng),
        "akid": "AKIA" + bd.rand_word(rng, 12, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "secret": bd.rand_word(rng, 20, 60, bd.WORD_CHARS + "/+="),
        "token": bd.rand_word(rng, 8, 300, bd.WORD_CHARS + "/+=") if rng.random() < 0.4
        else None,
        "method": rng.choice(bd.METHODS),
        "expires": rng.randint(1, 604800),
    }
    if s3:
        crt_path, r["cli_path"] = bd.gen_s3_path(rng)
        r["crt_path"] = crt_path.encode()
    else:
        r["cli_path"] = r["crt_path"] = gen_normalized_path(rng)
    # Both decode and re-encode the query (see the docstring): the same wire form for both,
    # but for the colons aws-c-io misparses, which awscrt gets %-encoded.
    _, r["cli_query"], _ = bd.gen_query(rng, unique_names=False)
    r["crt_query"] = crt_safe_query(r["cli_query"])
    host = rng.choice(["example.amazonaws.com", "bucket.s3.us-east-1.amazonaws.com",
                       "127.0.0.1:8080", "[::1]:443"])
    headers = [(rng.choice(["Host", "host", "HOST"]), host)]
    for _ in range(rng.choice([0, 1, 2, 3, 5, 10])):
        if len(headers) > 1 and rng.random() < 0.25:
            # A repeated header, in any case: both join the values with ',' in order.
            prev = rng.choice(headers[1:])[0]
            name = "".join(c.swapcase() if rng.random() < 0.5 else c for c in prev)
        else:
            name = gen_header_name(rng)
        headers.append((name, bd.gen_header_value(rng)))
    r["headers"] = [(n.encode(), v.encode()) for n, v in headers]
    gen_payload(rng, r)
    if r["token"] and rng.random() < 0.3:
        r["flags"] += "o"
    return r


# ---- aws-c-auth --------------------------------------------------------------------------


def crt_sign(r):
    """Signs r with aws-c-auth; returns the signed awscrt HttpRequest."""
    creds = AwsCredentialsProvider.new_static(r["akid"], r["secret"], r["token"])
    path = r["crt_path"].decode("utf-8")
    if r["crt_query"]:
        path += "?" + r["crt_query"].decode("utf-8")
    headers = HttpHeaders([(n.decode(), v.decode("utf-8")) for n, v in r["headers"]])
    req = HttpRequest(r["method"], path, headers, body_stream=io.BytesIO(r["body"]))
    s3 = r["mode"] == "s3"
    config = AwsSigningConfig(
        algorithm=AwsSigningAlgorithm.V4 if r["alg"] == "v4" else
        AwsSigningAlgorithm.V4_ASYMMETRIC,
        signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS if r["form"] == "header" else
        AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=creds,
        region=r["region"],
        service=r["service"],
        date=datetime.datetime.fromtimestamp(r["unix_time"], datetime.timezone.utc),
        use_double_uri_encode=not s3,
        should_normalize_uri_path=not s3,
        signed_body_value=r["crt_body_value"],
        signed_body_header_type=AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256
        if "c" in r["flags"] else AwsSignedBodyHeaderType.NONE,
        expiration_in_seconds=r["expires"] if r["form"] == "query" else None,
        omit_session_token="o" in r["flags"],
    )
    return aws_sign_request(req, config).result(timeout=30)


def crt_added(r, signed):
    """What aws-c-auth added: sorted (lowercase name, value) headers in header form, sorted
    decoded X-Amz-* parameters in query form; and its signature (hex, as text)."""
    if r["form"] == "header":
        n_orig = len(r["headers"])
        got = list(signed.headers)
        added = sorted((n.lower().encode(), v.encode()) for n, v in got[n_orig:])
        auth = dict(added).get(b"authorization", b"")
        sig = auth.rpartition(b"Signature=")[2]
        return added, sig
    path, _, query = signed.path.partition("?")
    assert path == r["crt_path"].decode("utf-8"), f"awscrt changed the path: {signed.path!r}"
    pairs = bd.decoded_pairs(query.encode())
    sig = dict(pairs).get(b"X-Amz-Signature", b"")
    # Query form adds no header: any that was added shows up as a difference.
    extra = list(signed.headers)[len(r["headers"]):]
    return pairs + [(b"added header " + n.encode(), v.encode()) for n, v in extra], sig


def our_added(r, ours):
    """What our signer added, in crt_added's form."""
    if r["form"] == "header":
        return sorted((n.lower(), v) for n, v in ours["add_headers"])
    return bd.decoded_pairs(ours["query"]) + [
        (b"added header " + n, v) for n, v in ours["add_headers"]]


def without_signature(added):
    """added (from crt_added/our_added) with the signature removed: the Authorization value
    cut at "Signature=", the X-Amz-Signature parameter dropped."""
    out = []
    for name, value in added:
        if name == b"authorization":
            out.append((name, value.rpartition(b"Signature=")[0]))
        elif name != b"X-Amz-Signature":
            out.append((name, value))
    return out


# ---- SigV4a public key, derived here independently of both signers ----------------------

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_v4a_keys = {}


def v4a_public_key(akid, secret):
    """AWS's SigV4a key derivation: NIST SP 800-108 KDF in counter mode, PRF HMAC-SHA256 keyed
    with "AWS4A" + secret, label "AWS4-ECDSA-P256-SHA256", context access key id + one counter
    byte, L = 256 bits (so a single PRF block, i = 1). The output read as a big-endian number c
    is retried with the next counter while c > n - 2; the private scalar is c + 1."""
    cached = _v4a_keys.get((akid, secret))
    if cached is not None:
        return cached
    key = b"AWS4A" + secret.encode()
    for counter in range(1, 255):
        fixed = ((1).to_bytes(4, "big") + b"AWS4-ECDSA-P256-SHA256" + b"\x00" + akid.encode()
                 + bytes([counter]) + (256).to_bytes(4, "big"))
        c = int.from_bytes(hmac.new(key, fixed, hashlib.sha256).digest(), "big")
        if c <= P256_N - 2:
            pub = ec.derive_private_key(c + 1, ec.SECP256R1()).public_key()
            _v4a_keys[(akid, secret)] = pub
            return pub
    raise AssertionError("no valid counter: cannot happen for HMAC output (p < 2^-8000)")


def ecdsa_verifies(pub, sig_hex, message):
    try:
        pub.verify(bytes.fromhex(sig_hex.decode()), message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


# ---- comparison --------------------------------------------------------------------------


def compare(r, ours, signed):
    """Empty if ours and aws-c-auth's agree on r; otherwise what differs."""
    if ours["status"] != SIG_OK:
        return [f"sig_cli error {ours['status']}: {ours['message']}"]
    crt, crt_sig = crt_added(r, signed)
    mine = our_added(r, ours)
    problems = []
    if r["alg"] == "v4":
        if crt_sig != ours["signature"]:
            problems.append(f"signature: awscrt {crt_sig.decode()} ours "
                            f"{ours['signature'].decode()}")
        if crt != mine:
            problems.append(f"added headers/parameters differ:\n    awscrt {crt!r}\n"
                            f"    ours   {mine!r}")
    else:
        pub = v4a_public_key(r["akid"], r["secret"])
        if not ecdsa_verifies(pub, crt_sig, ours["string_to_sign"]):
            problems.append("awscrt's ECDSA signature does not verify over our string to "
                            "sign: the canonical requests differ")
        if not ecdsa_verifies(pub, ours["signature"], ours["string_to_sign"]):
            problems.append("our ECDSA signature does not verify with the key derived in "
                            "Python")
        if without_signature(crt) != without_signature(mine):
            problems.append(f"added headers/parameters differ (signatures aside):\n"
                            f"    awscrt {without_signature(crt)!r}\n"
                            f"    ours   {without_signature(mine)!r}")
    return problems


def crt_canonical_request(r):
    """aws-c-auth's canonical request for r, which it logs at INFO level: signs r again in a
    child process (logging can be initialized once per process, and costs time) and cuts the
    text out of its log. For diagnostics only; None if it cannot be found."""
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--explain"],
                              input=pickle.dumps(r), capture_output=True, timeout=60)
    except subprocess.SubprocessError as e:
        return f"(could not run the child: {e})"
    log = proc.stderr.decode("utf-8", "replace")
    marker = "built canonical request for algorithm"
    start = log.find(marker)
    if start < 0:
        return f"(not in awscrt's log; child exit {proc.returncode}):\n{log[-2000:]}"
    start = log.index("\n", start) + 1
    end = log.find("\n[INFO]", start)
    return log[start:end if end >= 0 else len(log)]


def describe(seed, index, r, ours, signed, problems, with_crt_canonical):
    lines = [f"mismatch: seed={seed} {r['alg']} request #{index} "
             f"(replay: SIGV4D_DIFF_SEED={seed})",
             f"  form={r['form']} mode={r['mode']} service={r['service']!r} "
             f"region={r['region']!r} time={r['unix_time']} token="
             f"{'yes' if r['token'] else 'no'} flags={r['flags']!r} expires={r['expires']}",
             f"  method={r['method']!r}",
             f"  our path={r['cli_path']!r} awscrt path={r['crt_path']!r}",
             f"  our query={r['cli_query']!r} awscrt query={r['crt_query']!r}",
             f"  headers={r['headers']!r}",
             f"  payload: ours {r['payload_hash']!r} awscrt {r['crt_body_value']!r} "
             f"body={r['body']!r}"]
    lines += ["  " + p for p in problems]
    if ours["status"] == SIG_OK:
        lines.append(f"  our signed headers:    {ours['signed_headers'].decode()}")
        if signed is not None:
            if r["form"] == "header":
                auth = dict(crt_added(r, signed)[0]).get(b"authorization", b"").decode()
                crt_signed = auth.partition("SignedHeaders=")[2].partition(",")[0]
            else:
                crt_signed = dict(crt_added(r, signed)[0]).get(
                    b"X-Amz-SignedHeaders", b"").decode()
            lines.append(f"  awscrt signed headers: {crt_signed}")
        lines.append("  our canonical request:")
        lines += ["    | " + ln for ln in ours["canonical_request"].decode(
            "utf-8", "replace").split("\n")]
        lines.append("  our string to sign:")
        lines += ["    | " + ln for ln in ours["string_to_sign"].decode().split("\n")]
    if with_crt_canonical:
        lines.append("  awscrt's canonical request (from its INFO log, signed again):")
        lines += ["    | " + ln for ln in crt_canonical_request(r).split("\n")]
    return "\n".join(lines)


def features(r):
    """The properties of r worth counting, to show what a run covered."""
    names = [n.lower() for n, _ in r["headers"]]
    keys = [unquote_to_bytes(p.partition(b"=")[0]) for p in r["cli_query"].split(b"&")]
    return {
        "session token": bool(r["token"]),
        "omit_session_token": "o" in r["flags"],
        "x-amz-content-sha256": "c" in r["flags"],
        "UNSIGNED-PAYLOAD": r["payload_hash"] == "UNSIGNED-PAYLOAD",
        "streaming literal": r["payload_hash"] in STREAMING_LITERALS,
        "body hashed by awscrt": r["crt_body_value"] is None and bool(r["body"]),
        "repeated header": len(set(names)) < len(names),
        "folded header": any(b"\n" in v for _, v in r["headers"]),
        "reserved char in query key": any(any(c not in bd.UNRESERVED for c in k) for k in keys),
        "dot segment": any(seg in (b".", b"..") for seg in r["cli_path"].split(b"/")),
    }


def run_differential(alg, count, seed):
    rng = random.Random(f"{seed}-{alg}")
    requests = [gen_request(rng, alg) for _ in range(count)]
    start = time.monotonic()
    results = bd.run_sig_cli(requests)
    mismatches = []
    kinds = {}
    covered = {}
    for i, (r, ours) in enumerate(zip(requests, results)):
        kind = f"{r['form']}/{r['mode']}"
        kinds[kind] = kinds.get(kind, 0) + 1
        for name, present in features(r).items():
            covered[name] = covered.get(name, 0) + present
        try:
            signed = crt_sign(r)
        except Exception as e:  # an awscrt refusal is a disagreement too
            mismatches.append(describe(seed, i, r, ours, None, [f"awscrt failed: {e!r}"],
                                       False))
            continue
        problems = compare(r, ours, signed)
        if problems:
            # The child process that recovers awscrt's canonical request costs ~0.2 s: only
            # for the first few.
            mismatches.append(describe(seed, i, r, ours, signed, problems,
                                       len(mismatches) < 3))
    elapsed = time.monotonic() - start
    summary = (f"awscrt differential {alg}: seed={seed} {count} requests {kinds}, "
               f"{len(mismatches)} mismatches, {elapsed:.1f} s\n  covering {covered}")
    print(summary)
    print(summary, file=sys.stderr)
    assert not mismatches, "\n\n".join(mismatches[:5]) + (
        f"\n\n... {len(mismatches)} mismatches in all (seed={seed})")


def get_seed():
    return int(os.environ.get("SIGV4D_DIFF_SEED") or random.SystemRandom().randrange(2**32))


def test_awscrt_sigv4_differential():
    run_differential("v4", int(os.environ.get("SIGV4D_AWSCRT_COUNT") or 10000), get_seed())


def test_awscrt_sigv4a_differential():
    run_differential("v4a", int(os.environ.get("SIGV4D_AWSCRT_V4A_COUNT") or 2000), get_seed())


# Each changes one input on our side only; the comparison must then report a mismatch.
PERTURBATIONS = [
    ("a header value", lambda r: r.update(headers=r["headers"] + [(b"X-Perturbed", b"1")])),
    ("the time, one day", lambda r: r.update(unix_time=r["unix_time"] + 86400)),
    ("the secret", lambda r: r.update(secret=r["secret"] + "x")),
    ("the path", lambda r: r.update(cli_path=r["cli_path"] + b"x")),
    ("the query", lambda r: r.update(cli_query=r["cli_query"] + b"&perturbed=1")),
    ("the method", lambda r: r.update(method=r["method"] + "X")),
    ("the payload hash", lambda r: r.update(payload_hash="0" * 64)),
]


@pytest.mark.parametrize("alg", ["v4", "v4a"])
def test_comparison_detects_a_difference(alg):
    """The comparison is not vacuous: with one input changed on our side only, every request
    must be reported (for v4a: neither signature may verify over the other's text). The
    secret is not perturbed for v4a: that changes the key, which compare reads from the
    credentials both sides were given."""
    seed = get_seed()
    rng = random.Random(f"{seed}-perturb-{alg}")
    cases = []
    for what, change in PERTURBATIONS:
        if alg == "v4a" and what == "the secret":
            continue
        for _ in range(10):
            r = gen_request(rng, alg)
            if what == "the payload hash" and r["payload_hash"] == "0" * 64:
                continue
            mine = dict(r)
            change(mine)
            cases.append((what, r, mine))
    results = bd.run_sig_cli([mine for _, _, mine in cases])
    missed = []
    for (what, r, mine), ours in zip(cases, results):
        assert ours["status"] == SIG_OK, (what, ours)
        if not compare(r, ours, crt_sign(r)):
            missed.append(f"{what} (seed={seed}): not detected\n  {r!r}")
    assert not missed, "\n".join(missed)


def test_v4a_key_derivation_matches_awscrt():
    """The Python derivation of the public key is what awscrt uses: its signature over a
    fixed request verifies; with another access key id or secret it does not."""
    r = {"alg": "v4a", "form": "header", "mode": "normalize", "region": "*",
         "service": "service", "unix_time": 1440938160, "akid": "AKIDEXAMPLE",
         "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token": None, "method": "GET",
         "expires": 60, "crt_path": b"/", "cli_path": b"/", "cli_query": b"", "crt_query": b"",
         "headers": [(b"Host", b"example.amazonaws.com")], "body": b"",
         "crt_body_value": None, "payload_hash": "", "flags": ""}
    ours = bd.run_sig_cli([r])[0]
    assert ours["status"] == SIG_OK
    _, crt_sig = crt_added(r, crt_sign(r))
    sts = ours["string_to_sign"]
    assert ecdsa_verifies(v4a_public_key(r["akid"], r["secret"]), crt_sig, sts)
    assert not ecdsa_verifies(v4a_public_key("AKIDEXAMPLF", r["secret"]), crt_sig, sts)
    assert not ecdsa_verifies(v4a_public_key(r["akid"], r["secret"] + "x"), crt_sig, sts)


if __name__ == "__main__" and sys.argv[1:] == ["--explain"]:
    # Child of crt_canonical_request: sign the pickled request with INFO logging on stderr.
    from awscrt.io import LogLevel, init_logging
    init_logging(LogLevel.Info, "stderr")
    crt_sign(pickle.loads(sys.stdin.buffer.read()))
