"""Differential test: STS AssumeRole (providers/sts.c, through tests/differential/sts_dump)
against botocore, the independent implementation.

For each case (a few fixed ones, then seeded random ones):
  - botocore's own STS client makes the AssumeRole call with the clock frozen; a
    before-send handler captures the request it would send (nothing leaves the process).
    Its body must equal sts_assume_role_body's byte for byte, its host sts_endpoint_host's,
    and its Authorization, X-Amz-Date, X-Amz-Security-Token, Content-Type and
    Content-Length those of the head sts_sign_request writes for that body;
  - botocore's SigV4Auth (service "sts") recomputes the signature over the method, URL,
    headers and body of our head, and must get our Authorization.
botocore's client also parses answers: the same AssumeRoleResponse and ErrorResponse
documents are given to its parser (as the before-send handler's response) and to
sts_parse_answer, which must read the same credentials, expiration, code and message.

Environment:
  STS_DUMP               path of the sts_dump binary (set by CTest; required)
  SIGV4D_DIFF_SEED       replay a run: the seed every run prints
  SIGV4D_STS_DIFF_COUNT  random cases per test (default 150)
"""
import calendar
import datetime
import os
import random
import subprocess
import sys
import time
from unittest import mock
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

CONTENT_TYPE = b"application/x-www-form-urlencoded; charset=utf-8"
CRED_ERR_FETCH = 208
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-"
EXTERNAL_ID_CHARS = NAME_CHARS + ":/"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2",
           "sa-east-1", "cn-north-1", "cn-northwest-1", "us-gov-west-1", "zz-test-9"]


def sts_dump(*args, stdin=b""):
    path = os.environ.get("STS_DUMP")
    if not path:
        pytest.fail("STS_DUMP must name the sts_dump binary (CTest sets it)")
    r = subprocess.run([path, *args], input=stdin, capture_output=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


# ---- botocore's client, offline and with a frozen clock ---------------------------------

class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def _frozen_datetime(unix_time):
    fixed = datetime.datetime.utcfromtimestamp(unix_time)

    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed

    return Frozen


_SESSION = []


def _session():
    """One botocore session for the whole run (its loader caches the service model)."""
    if not _SESSION:
        session = botocore.session.get_session()
        session.set_config_variable("sts_regional_endpoints", "regional")
        _SESSION.append(session)
    return _SESSION[0]


def botocore_assume_role(case, answer_status=200, answer=None):
    """botocore's STS client calls AssumeRole for `case`; returns (request, result or
    ClientError). The answer defaults to a minimal valid document."""
    client = _session().create_client(
        "sts", region_name=case["region"], aws_access_key_id=case["akid"],
        aws_secret_access_key=case["secret"], aws_session_token=case["token"] or None,
        config=Config(retries={"total_max_attempts": 1}))
    if answer is None:
        answer = answer_xml("ASIAX", "S", "T", "2030-01-01T00:00:00Z")
    captured = []

    def before_send(request, **kwargs):
        captured.append(request)
        return AWSResponse(request.url, answer_status, {}, _Raw(answer))

    client.meta.events.register("before-send.sts.AssumeRole", before_send)
    # The members in the order of botocore's input shape (what sts.c writes).
    members = client.meta.service_model.operation_model("AssumeRole").input_shape.members
    given = {"RoleArn": case["arn"], "RoleSessionName": case["session"],
             "DurationSeconds": case["duration"]}
    if case["external_id"]:
        given["ExternalId"] = case["external_id"]
    kwargs = {name: given[name] for name in members if name in given}
    with mock.patch.object(botocore.auth.datetime, "datetime",
                           _frozen_datetime(case["unix_time"])):
        try:
            result = client.assume_role(**kwargs)
        except ClientError as e:
            result = e
    assert len(captured) == 1
    return captured[0], result


# ---- our side ------------------------------------------------------------------------------

def our_request(case):
    host = sts_dump("host", case["region"]).decode()
    body = sts_dump("body", case["arn"], case["session"], case["external_id"],
                    str(case["duration"]))
    head = sts_dump("sign", host, case["region"], str(case["unix_time"]), case["akid"],
                    case["secret"], case["token"], stdin=body)
    return host, body, parse_head(head)


def parse_head(head):
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1, head
    lines = head[:-4].split(b"\r\n")
    assert lines[0] == b"POST / HTTP/1.1", lines[0]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b": ")
        assert sep and name.lower() not in headers, line
        headers[name.lower()] = value
    return headers


def sigv4auth_authorization(case, host, body, headers):
    """botocore's SigV4Auth over our head: same method, URL, signed headers and body."""
    creds = Credentials(case["akid"], case["secret"], case["token"] or None)
    auth = SigV4Auth(creds, "sts", case["region"])
    req = AWSRequest(method="POST", url=f"https://{host}/", data=body,
                     headers={"Content-Type": headers[b"content-type"].decode()})
    req.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(case["unix_time"]))
    auth._modify_request_before_signing(req)
    cr = auth.canonical_request(req)
    sig = auth.signature(auth.string_to_sign(req, cr), req)
    auth._inject_signature_to_request(req, sig)
    return req.headers["Authorization"].encode()


def check_case(case):
    host, body, headers = our_request(case)
    boto, _ = botocore_assume_role(case)
    problems = []

    def same(what, ours, theirs):
        if ours != theirs:
            problems.append(f"{what}: ours {ours!r} botocore {theirs!r}")

    same("host", host, urlsplit(boto.url).hostname)
    same("body", body, boto.body.encode() if isinstance(boto.body, str) else boto.body)
    same("host header", headers.get(b"host"), host.encode())
    same("content-length", headers.get(b"content-length"), str(len(body)).encode())
    for name in ("Content-Type", "X-Amz-Date", "Authorization", "Content-Length"):
        theirs = boto.headers.get(name)
        theirs = theirs.encode() if isinstance(theirs, str) else theirs
        same(name, headers.get(name.lower().encode()), theirs)
    token = boto.headers.get("X-Amz-Security-Token")
    same("X-Amz-Security-Token", headers.get(b"x-amz-security-token"), token)
    same("accept-encoding", headers.get(b"accept-encoding"), b"identity")
    same("connection", headers.get(b"connection"), b"close")
    same("SigV4Auth", headers.get(b"authorization"),
         sigv4auth_authorization(case, host, body, headers))
    return problems


# ---- cases ---------------------------------------------------------------------------------

FIXED = [
    dict(region="us-east-1", arn="arn:aws:iam::123456789012:role/team/ops/Deploy+Bot=1,a.b@c_d-e",
         session="sigv4d@host=1+x", external_id="", duration=3600, unix_time=1795939200,
         akid="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
         token="BASETOKEN/abc+def=="),
    dict(region="eu-west-1", arn="arn:aws:iam::000000000001:role/r", session="ab",
         external_id="", duration=900, unix_time=1440938160, akid="AKIDEXAMPLE",
         secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token=""),
    dict(region="cn-north-1", arn="arn:aws-cn:iam::210987654321:role/service-role/x",
         session="s.e-s_s,i=o+n@1", external_id="ext:id/1=+,.@_-", duration=43200,
         unix_time=4102444799, akid="AKIAIOSFODNN7EXAMPLE",
         secret="je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", token="FwoGZXIvYXdzEBYaD+tok/en=="),
]


def rand_str(rng, chars, lo, hi):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def gen_case(rng):
    region = rng.choice(REGIONS)
    partition = "aws-cn" if region.startswith("cn-") else (
        "aws-us-gov" if region.startswith("us-gov-") else "aws")
    path = "".join(rand_str(rng, NAME_CHARS, 1, 12) + "/" for _ in range(rng.randint(0, 3)))
    return dict(
        region=region,
        arn=f"arn:{partition}:iam::{rng.randrange(10**12):012d}:role/{path}"
            + rand_str(rng, NAME_CHARS, 1, 64),
        session=rand_str(rng, NAME_CHARS, 2, 64),
        external_id=rand_str(rng, EXTERNAL_ID_CHARS, 2, 64) if rng.random() < 0.4 else "",
        duration=rng.randint(900, 43200),
        unix_time=rng.randint(946684800, 4102444799),  # 2000..2099
        akid=rng.choice(["AKIA", "ASIA"]) + rand_str(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                                     16, 16),
        secret=rand_str(rng, B64, 40, 40),
        token=rand_str(rng, B64 + "=", 16, 900) if rng.random() < 0.6 else "",
    )


def seeded():
    seed = int(os.environ.get("SIGV4D_DIFF_SEED") or random.SystemRandom().randrange(2**32))
    count = int(os.environ.get("SIGV4D_STS_DIFF_COUNT") or 150)
    print(f"sts differential: seed={seed} count={count}", file=sys.stderr)
    return seed, count, random.Random(seed)


@pytest.mark.parametrize("index", range(len(FIXED)))
def test_fixed_requests_match_botocore(index):
    problems = check_case(FIXED[index])
    assert not problems, "\n".join(problems)


def test_random_requests_match_botocore():
    seed, count, rng = seeded()
    failures = []
    for i in range(count):
        case = gen_case(rng)
        problems = check_case(case)
        if problems:
            failures.append(f"case {i} (seed={seed}): {case}\n  " + "\n  ".join(problems))
    assert not failures, "\n\n".join(failures[:3]) + f"\n\n{len(failures)} of {count} differ"


def test_the_check_can_fail():
    """A one-byte change in the body changes the signature botocore computes: the
    comparison above is not vacuous."""
    case = FIXED[0]
    host, body, headers = our_request(case)
    other = sigv4auth_authorization(case, host, body.replace(b"3600", b"3601"), headers)
    assert headers[b"authorization"] != other


# ---- answers -------------------------------------------------------------------------------

def answer_xml(akid, secret, token, expiration, namespace=True):
    ns = ' xmlns="https://sts.amazonaws.com/doc/2011-06-15/"' if namespace else ""
    return (f"<AssumeRoleResponse{ns}>\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n"
            "      <Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>\n"
            "      <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId>\n    </AssumedRoleUser>\n"
            f"    <Credentials>\n      <AccessKeyId>{escape(akid)}</AccessKeyId>\n"
            f"      <SecretAccessKey>{escape(secret)}</SecretAccessKey>\n"
            f"      <SessionToken>{escape(token)}</SessionToken>\n"
            f"      <Expiration>{expiration}</Expiration>\n    </Credentials>\n"
            "  </AssumeRoleResult>\n  <ResponseMetadata><RequestId>1</RequestId>"
            "</ResponseMetadata>\n</AssumeRoleResponse>\n").encode()


def error_xml(code, message):
    return ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
            f"  <Error>\n    <Type>Sender</Type>\n    <Code>{escape(code)}</Code>\n"
            f"    <Message>{escape(message)}</Message>\n  </Error>\n"
            "  <RequestId>2</RequestId>\n</ErrorResponse>\n").encode()


def test_answers_parse_like_botocore():
    seed, count, rng = seeded()
    printable = "".join(chr(c) for c in range(0x21, 0x7f))
    failures = []
    for i in range(count):
        akid = rand_str(rng, printable, 1, 40)
        secret = rand_str(rng, printable, 1, 80)
        token = rand_str(rng, printable, 1, 1200)
        t = rng.randint(0, 253402300799)
        frac = rng.choice(["", ".0", ".5", "." + str(rng.randrange(10**6)).zfill(6)])
        expiration = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + frac + "Z"
        doc = answer_xml(akid, secret, token, expiration, namespace=rng.random() < 0.8)
        ours = sts_dump("parse", "200", stdin=doc).decode().rstrip("\n").split("\t")
        _, result = botocore_assume_role(FIXED[0], 200, doc)
        c = result["Credentials"]
        # botocore gives an aware datetime (local zone); whole seconds since the epoch.
        exp = calendar.timegm(c["Expiration"].utctimetuple())
        theirs = ["OK", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], str(exp)]
        if ours != theirs:
            failures.append(f"case {i} (seed={seed}): ours {ours} botocore {theirs}")
    assert not failures, "\n".join(failures[:3]) + f"\n{len(failures)} of {count} differ"


def test_errors_parse_like_botocore():
    seed, count, rng = seeded()
    text = "".join(chr(c) for c in range(0x20, 0x7f)) + "é€"
    failures = []
    for i in range(min(count, 50)):
        code = rand_str(rng, NAME_CHARS, 1, 40)
        message = rand_str(rng, text, 1, 80).strip() or "x"  # under 255 bytes
        status = rng.choice([400, 403])
        doc = error_xml(code, message)
        ours = sts_dump("parse", str(status), stdin=doc).decode().rstrip("\n").split("\t")
        _, result = botocore_assume_role(FIXED[0], status, doc)
        assert isinstance(result, ClientError)
        err = result.response["Error"]
        theirs = ["ERR", str(CRED_ERR_FETCH), err["Code"], err["Message"]]
        if ours != theirs:
            failures.append(f"case {i} (seed={seed}): ours {ours} botocore {theirs}")
    assert not failures, "\n".join(failures[:3]) + f"\n{len(failures)} differ"
