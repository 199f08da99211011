"""Differential test: credential_process (providers/process.c, through
tests/differential/proc_dump) against independent implementations.

  - proc_split against Python's shlex.split, which botocore's compat_shell_split uses outside
    Windows: for fixed and seeded random command lines both succeed with the same words, or
    both refuse (an empty list counts as a refusal: botocore's Popen([]) fails).
  - proc_parse_output against botocore's ProcessProvider: its Popen is replaced by a fake
    program that prints the output, and the credentials it loads (key id, secret, token,
    expiration) must be ours, or both must refuse.

Where sigv4d is deliberately stricter than botocore, the case must be one of the documented
differences below (`stricter`), and then sigv4d must refuse it; nothing else may differ.

Environment:
  PROC_DUMP               path of the proc_dump binary (set by CTest; required)
  SIGV4D_DIFF_SEED        replay a run: the seed every run prints
  SIGV4D_PROC_DIFF_COUNT  random cases per test (default 3000)
"""
import calendar
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys

import pytest
from botocore.credentials import ProcessProvider, RefreshableCredentials

CRED_ERR_BAD_ANSWER = 209
HEADER_SAFE = re.compile(r"[\x21-\x7e]+\Z")
STRICT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z\Z")


def records(items):
    return b"".join(b"%d\n" % len(x) + x for x in items)


def proc_dump(mode, items):
    path = os.environ.get("PROC_DUMP")
    if not path:
        pytest.fail("PROC_DUMP must name the proc_dump binary (CTest sets it)")
    r = subprocess.run([path, mode], input=records(items), capture_output=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    lines = r.stdout.decode().split("\n")
    assert lines[-1] == "" and len(lines) == len(items) + 1, r.stdout[-200:]
    return lines[:-1]


def seeded():
    seed = int(os.environ.get("SIGV4D_DIFF_SEED") or random.SystemRandom().randrange(2**32))
    count = int(os.environ.get("SIGV4D_PROC_DIFF_COUNT") or 3000)
    print(f"process differential: seed={seed} count={count}", file=sys.stderr)
    return seed, count, random.Random(seed)


# ---- the command line --------------------------------------------------------------------

def shlex_words(line):
    """shlex.split's words as UTF-8 bytes, or None where botocore could not run anything."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    return [w.encode() for w in words] if words else None


def our_words(out_line):
    fields = out_line.split("\t")
    if fields[0] == "ERR":
        return None
    assert fields[0] == "OK", out_line
    return [bytes.fromhex(f) for f in fields[1:]]


FIXED_LINES = [
    "/bin/get-creds", "  /bin/get-creds   --profile  x  ", "a\tb\nc\rd", "a\vb\fc",
    "'a b' \"c d\"", "a'b'c\"d\"e", "''", "\"\"", "'' ''", "a '' b", "x''", "'a\\b'",
    "\"a\\\"b\"", "\"a\\\\b\"", "\"a\\$b\"", "\"a\\`b\"", "\"a\\\nb\"", "\"a\\nb\"", "a\\ b",
    "a\\\\b", "a\\'b", "a\\\"b", "a\\\nb", "a\\", "\"a\\", "'abc", "\"abc", "abc'", "",
    "   ", "\t\n", "# not a comment", "a #b", "$HOME `id` *.txt | x; y && z > f",
    "'it'\\''s'", "\"\\\"\"", "'\"'", "\"'\"", "é 'ü' \"ß\"", "\\é",
]


def test_split_fixed():
    ours = proc_dump("split", [s.encode() for s in FIXED_LINES])
    for line, out in zip(FIXED_LINES, ours):
        assert our_words(out) == shlex_words(line), (line, out)


def test_split_random():
    seed, count, rng = seeded()
    alphabet = [" ", " ", "\t", "\n", "\r", "'", "'", '"', '"', "\\", "\\", "a", "b", "c", "$",
                "`", "#", "\v", "é", "-", "/"]
    lines = []
    for _ in range(count):
        n = rng.randrange(0, 40)
        lines.append("".join(rng.choice(alphabet) for _ in range(n)))
    ours = proc_dump("split", [s.encode() for s in lines])
    failures = []
    for i, (line, out) in enumerate(zip(lines, ours)):
        if our_words(out) != shlex_words(line):
            failures.append(f"case {i} (seed={seed}): {line!r}: ours {out} shlex "
                            f"{shlex_words(line)}")
    assert not failures, "\n".join(failures[:20])


def test_split_limits():
    """Limits botocore does not have: sigv4d refuses, with the code the contract names."""
    at_limit = ("a" * 4096).encode()
    over = ("a" * 4097).encode()
    words_64 = " ".join(["w"] * 64).encode()
    words_65 = " ".join(["w"] * 65).encode()
    nul = b"a\0b"
    out = proc_dump("split", [at_limit, over, words_64, words_65, nul])
    assert our_words(out[0]) == [at_limit]
    assert out[1] == "ERR\t202"
    assert our_words(out[2]) == [b"w"] * 64
    assert out[3] == "ERR\t202"
    assert out[4] == "ERR\t201"


# ---- the program's output ----------------------------------------------------------------

class FakePopen:
    """What ProcessProvider sees of the program: exit status 0 and the output."""
    output = b""

    def __init__(self, args, stdout=None, stderr=None):
        self.returncode = 0

    def communicate(self):
        return FakePopen.output, b""


def botocore_answer(output):
    """(key id, secret, token, expiration seconds or 0) as botocore loads them, or None."""
    FakePopen.output = output
    provider = ProcessProvider(
        "default", lambda: {"profiles": {"default": {"credential_process": "fake"}}},
        popen=FakePopen)
    try:
        creds = provider.load()
    except Exception:  # botocore refuses with several exception types; all are refusals
        return None
    if isinstance(creds, RefreshableCredentials):
        # The private fields: the properties would refresh (run the program again) once the
        # time is past.
        key, secret, token, expiry = (creds._access_key, creds._secret_key, creds._token,
                                      creds._expiry_time)
        if expiry.tzinfo is None:
            return ("naive-time",)
        expiration = math.floor(calendar.timegm(expiry.utctimetuple()) +
                                expiry.microsecond / 1e6)
    else:
        key, secret, token, expiration = creds.access_key, creds.secret_key, creds.token, 0
    # botocore signs with X-Amz-Security-Token only when the token is truthy.
    return (key, secret, token or "", expiration)


def our_answer(out_line):
    fields = out_line.split("\t")
    if fields[0] == "ERR":
        assert fields[1] == str(CRED_ERR_BAD_ANSWER), out_line
        return None
    assert fields[0] == "OK", out_line
    return (bytes.fromhex(fields[1]).decode(), bytes.fromhex(fields[2]).decode(),
            bytes.fromhex(fields[3]).decode(), int(fields[4]))


def _depth(v):
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _strings(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)
    elif isinstance(v, str):
        yield v


def stricter(output):
    """Why sigv4d refuses an output botocore accepts, if the output is one of the documented
    differences; else None."""
    pairs = json.loads(output.decode("utf-8"), object_pairs_hook=lambda p: p)
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        return "duplicate keys (json.loads keeps the last one)"
    if len(keys) > 64:
        return "over 64 keys"
    if any(len(k) > 1000 for k in keys):
        return "a long key (libyaml limits simple keys to 1024 characters)"
    doc = json.loads(output.decode("utf-8"))
    if _depth(doc) > 64:
        return "nesting over 64"
    if re.search(rb"\bNaN\b|\bInfinity\b", output):
        return "NaN or Infinity (not JSON)"
    for s in _strings(doc):
        if any(0xD800 <= ord(ch) <= 0xDFFF or 0x7f <= ord(ch) <= 0x9f or
               ord(ch) in (0xFEFF, 0xFFFE, 0xFFFF) for ch in s):
            return "a character libyaml refuses (surrogate, DEL/C1 control, non-character)"
    version = doc.get("Version")
    if not (type(version) is int and version == 1):
        return "Version 1.0 or true (equal to 1 in Python)"
    for name in ("AccessKeyId", "SecretAccessKey"):
        v = doc.get(name)
        if not isinstance(v, str) or not HEADER_SAFE.match(v) or len(v) > 4096:
            return f"{name} not a non-empty header-safe string"
    token = doc.get("SessionToken")
    if token is not None and not isinstance(token, str):
        return "SessionToken not a string"
    if token and (not HEADER_SAFE.match(token) or len(token) > 4096):
        return "SessionToken not header-safe"
    expiration = doc.get("Expiration")
    if expiration is not None and not STRICT_TIME.match(expiration):
        return "Expiration in a format dateutil reads but STS does not write"
    if expiration is not None and expiration.startswith("1970-01-01T00:00:00"):
        return "Expiration at the epoch"
    return None


def compare_outputs(outputs, seed=None):
    ours = proc_dump("parse", outputs)
    failures = []
    for i, (output, out) in enumerate(zip(outputs, ours)):
        mine, theirs = our_answer(out), botocore_answer(output)
        if mine == theirs:
            continue
        why = stricter(output) if mine is None and theirs is not None else None
        if why is None:
            failures.append(f"case {i} (seed={seed}): {output[:300]!r}\n  ours {out[:200]} "
                            f"botocore {theirs}")
    assert not failures, "\n".join(failures[:20])


def doc(*members):
    return ("{" + ", ".join(members) + "}").encode()


FULL = ['"Version": 1', '"AccessKeyId": "AKIDEXAMPLE"',
        '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"',
        '"SessionToken": "IQoJb3JpZ2luX2VjEXAMPLE/+="', '"Expiration": "2026-11-29T08:00:00Z"']
BASE = FULL[:3]

FIXED_OUTPUTS = [
    doc(*FULL),
    doc(*BASE),
    doc(*BASE, '"SessionToken": "tok"'),
    doc(*BASE, '"Expiration": "2026-11-29T08:00:00.123456Z"'),
    doc(*BASE, '"SessionToken": null', '"Expiration": null'),
    doc(*BASE, '"SessionToken": ""'),
    doc(*BASE, '"Expiration": ""'),
    doc(*BASE, '"Expiration": "soon"'),
    doc(*BASE, '"Expiration": 1795939200'),
    doc('"Version": 2', *BASE[1:]),
    doc('"Version": "1"', *BASE[1:]),
    doc(*BASE[1:]),
    doc('"Version": null', *BASE[1:]),
    doc('"Version": 1.0', *BASE[1:]),
    doc('"Version": true', *BASE[1:]),
    doc(BASE[0], BASE[2]),
    doc(BASE[0], BASE[1]),
    doc(BASE[0], '"AccessKeyId": ""', BASE[2]),
    doc(BASE[0], BASE[1], '"SecretAccessKey": ""'),
    doc(BASE[0], '"AccessKeyId": 12', BASE[2]),
    doc(BASE[0], '"AccessKeyId": null', BASE[2]),
    doc(BASE[0], '"AccessKeyId": ["A"]', BASE[2]),
    doc(BASE[0], '"AccessKeyId": "A B"', BASE[2]),
    doc(BASE[0], '"AccessKeyId": "A\\u0042"', BASE[2]),
    doc(BASE[0], '"AccessKeyId": "A\\/B"', BASE[2]),
    doc(BASE[0], '"AccessKeyId": "A\\nB"', BASE[2]),
    doc(*BASE, '"AccessKeyId": "OTHER"'),
    doc(*BASE, '"Extra": {"a": [1, 2, {"b": null}], "c": -0.5e+3}', '"More": false'),
    doc(*BASE, '"Extra": {"a": 1, "a": 2}'),
    b"[1, 2]", b'"text"', b"1", b"null", b"", b"   ", b"{}",
    b'\xef\xbb\xbf' + doc(*BASE),
    doc(*BASE) + b" trailing",
    doc(*BASE) + b"\n" + doc(*BASE),
    doc(*BASE) + b"\n---\n",
    b"---\n" + doc(*BASE),
    doc(*BASE) + b"\n...\n",
    doc(*BASE, '"x": 1,').replace(b",}", b", }"),
    doc(*BASE).replace(b"{", b"{ # comment\n"),
    doc(*BASE).replace(b'"Version"', b"Version"),
    doc(*BASE).replace(b'"Version"', b"'Version'"),
    doc(*BASE).replace(b"1,", b"!!int 1,"),
    doc(*BASE).replace(b"1,", b"&a 1,"),
    doc(*BASE, '"x": 01'),
    doc(*BASE, '"x": .5'),
    doc(*BASE, '"x": "\\x41"'),
    doc(*BASE, '"x": "a\tb"'),
    b"Version: 1\nAccessKeyId: A\nSecretAccessKey: S\n",
    b"\n\t{\r\n" + b",\n\t".join(m.encode() for m in FULL) + b"\n}\n\n",
    doc(*BASE)[:-1],
    doc(*BASE) + b"}",
    doc(*BASE, '"Expiration": "1970-01-01T00:00:00Z"'),
    doc(*BASE, '"Expiration": "2026-11-29T08:00:00+00:00"'),
    doc(*BASE, '"Expiration": "2026-13-29T08:00:00Z"'),
]


def test_output_fixed():
    compare_outputs(FIXED_OUTPUTS)


def test_output_fixed_outcomes():
    """The fixed cases that should parse do parse (so that 'both refuse' cannot hide a parser
    that refuses everything)."""
    ours = proc_dump("parse", FIXED_OUTPUTS[:6])
    assert [o.split("\t")[0] for o in ours] == ["OK"] * 6


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def random_time(rng):
    t = rng.randrange(1, 253402300800)
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % tuple(__import__("time").gmtime(t)[:6])
    if rng.random() < 0.3:
        s += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 10)))
    return s + "Z"


def random_value(rng, kind):
    r = rng.random()
    if kind == "version":
        return rng.choice(['1'] * 8 + ['"1"', '2', '0', '1.0', 'true', 'null', '-1', '1e0'])
    if kind == "time":
        if r < 0.75:
            return json.dumps(random_time(rng))
        return rng.choice(['""', 'null', '"2026-11-29"', '"soon"', '12', '"2026-11-29T08:00Z"',
                           '"2026-11-29T08:00:00+02:00"', '"2026-02-30T00:00:00Z"'])
    if r < 0.75:
        return json.dumps("".join(rng.choice(B64) for _ in range(rng.randrange(1, 60))))
    return rng.choice(['""', 'null', '17', 'true', '["x"]', '{"a": "b"}', '"a b"', '"\\u00e9"',
                       '"a\\/b"', '"\\u0041\\u0042"', '"x\\ty"', '"%s"' % ("k" * 5000)])


def random_output(rng):
    members = []
    for name, kind, p in (("Version", "version", 0.95), ("AccessKeyId", "str", 0.95),
                          ("SecretAccessKey", "str", 0.95), ("SessionToken", "str", 0.6),
                          ("Expiration", "time", 0.6)):
        if rng.random() < p:
            members.append((name, random_value(rng, kind)))
    for _ in range(rng.choice([0, 0, 1, 2])):
        members.append((rng.choice(["Extra", "x", "", "Ünicode", "version"]),
                        rng.choice(['1', '"v"', '[1, [2, {"z": null}]]', '{}', '[]', 'false'])))
    if members and rng.random() < 0.05:
        members.append(rng.choice(members))  # a duplicate key
    rng.shuffle(members)
    ws = lambda: rng.choice(["", " ", "\n", "\t", " \r\n  "])  # noqa: E731
    text = ws() + "{" + ws() + ("," + ws()).join(
        json.dumps(k) + ws() + ":" + ws() + v for k, v in members) + ws() + "}" + ws()
    data = text.encode()
    r = rng.random()
    if r < 0.04:
        data = data[:rng.randrange(len(data))]  # truncated
    elif r < 0.08:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice([b",", b"}", b"#", b"'", b"\0", b"\xff", b"x"]) + data[at:]
    return data


def test_output_random():
    seed, count, rng = seeded()
    compare_outputs([random_output(rng) for _ in range(count)], seed)


def test_output_size_limit():
    """botocore reads any size; sigv4d refuses over PROC_MAX_OUTPUT_BYTES (65536)."""
    base = doc(*BASE, '"Pad": ""')
    pad = 65536 - len(base)
    at_limit = base.replace(b'"Pad": ""', b'"Pad": "' + b"p" * pad + b'"')
    over = base.replace(b'"Pad": ""', b'"Pad": "' + b"p" * (pad + 1) + b'"')
    assert len(at_limit) == 65536 and len(over) == 65537
    ours = proc_dump("parse", [at_limit, over])
    assert our_answer(ours[0]) == botocore_answer(at_limit)
    assert ours[1].startswith("ERR\t209\t") and botocore_answer(over) is not None
