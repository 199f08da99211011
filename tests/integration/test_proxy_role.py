"""sigv4d --role-arn: STS AssumeRole at start-up and ahead of expiry.

The fake STS (sv4h/sts.py) is a behaviour of the TLS upstream stub on STS's regional host,
so the AssumeRole call crosses --connect-to, --ca-file and TLS verification like any upstream
request, and its SigV4 signature is re-verified with botocore against the *base*
credentials. Every other host accepts only credentials the fake issued (and only until their
Expiration): a proxy that signed with its base keys, or ignored the role, gets 403 from the
stub, which these tests see as a failed request.

The first tests check the fake itself against botocore's STS model (no sigv4d involved).
"""
import re
import subprocess
import time
import urllib.parse

import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.parsers import ResponseParserError, create_parser
from botocore.serialize import create_serializer

from conftest import proxy_env
from test_proxy_profile import write_files
from sv4h import behaviours as B
from sv4h import config as C
from sv4h import sts
from sv4h.client import RawConn, via
from sv4h.proxyproc import free_port
from sv4h.signing import botocore_sign

FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
CHECK_PATH = "/role-check"  # answered 200 by the stub once the signature verifies


# -- helpers ----------------------------------------------------------------------------------

def start_role(start_proxy, stub, fake, *flags, creds="static", env=None, region="us-east-1",
               upstreams=(C.S3_HOST, C.STS_REGION_HOST), ca=True):
    """The fake installed on the stub, then sigv4d --role-arn in front of it."""
    fake.install(stub)
    stub.on(B.Respond(200, b"role ok"), path=CHECK_PATH)
    args = [C.FLAG_ROLE_ARN, C.ROLE_ARN] + ([C.FLAG_REGION, region] if region else [])
    return start_proxy(*args, *flags, upstreams=upstreams, creds=creds, env=env, ca=ca)


def data_request(p, stub, host=C.S3_HOST, timeout=20.0):
    """GET CHECK_PATH through sigv4d; returns (response, what the stub received or None)."""
    before = len(stub.requests)
    r = via(p, "GET", CHECK_PATH, host=host, timeout=timeout)
    got = [q for q in stub.requests[before:] if q.host == host and q.path == CHECK_PATH]
    return r, (got[-1] if got else None)


def describe(r):
    return f"status {r.status} body {r.body[:300]!r} error {r.error}"


def assert_signed_with(r, req, issued):
    """The request went through, signed with the credentials of `issued` (an sts.Issued)."""
    assert r.status == 200, f"request through sigv4d failed: {describe(r)}; stub saw " + (
        req.describe() if req else "nothing")
    assert req is not None and req.ok, req and req.describe()
    assert req.auth.akid == issued.access_key_id, (
        f"signed with {req.auth.akid}, not the assumed role's key {issued.access_key_id}")
    assert req.header("x-amz-security-token") == issued.token, \
        "X-Amz-Security-Token is not the session token STS issued"
    assert req.token_signed, "X-Amz-Security-Token is not in SignedHeaders"


def wait_for_status(p, stub, status, timeout_s):
    """Repeats the data request until it answers `status`; returns (response, request)."""
    deadline = time.monotonic() + timeout_s
    while True:
        r, req = data_request(p, stub)
        if r.status == status or time.monotonic() > deadline:
            return r, req
        time.sleep(0.2)


def first_call(fake, timeout=10.0):
    calls = fake.wait_calls(1, timeout)
    assert calls, ("sigv4d never called STS AssumeRole at " + ", ".join(fake.hosts) +
                   f"; other STS hosts got: {fake.elsewhere()}")
    return calls[0]


def assert_well_formed_call(call, base_akid, region="us-east-1", host=C.STS_REGION_HOST):
    assert call.verified, f"the AssumeRole request did not verify: {call.errors}"
    assert (call.method, call.target) == ("POST", "/"), (call.method, call.target)
    assert call.host == host and call.sni == host, (call.host, call.sni)
    assert call.content_type == FORM_TYPE, call.content_type
    assert (call.service, call.region) == ("sts", region), (call.service, call.region)
    assert call.signing_akid == base_akid, "AssumeRole not signed with the base credentials"
    assert call.param("Action") == "AssumeRole"
    assert call.param("Version") == "2011-06-15"
    assert call.param("DurationSeconds") == "3600"
    assert call.param("RoleArn") == C.ROLE_ARN
    session = call.param("RoleSessionName")
    assert isinstance(session, str), f"RoleSessionName {session!r}: want exactly one"
    # The whole body, byte for byte, as botocore's Query serializer writes it for the same
    # parameters: its parameter order and its percent-encoding.
    want, want_type = botocore_form(session)
    assert call.raw_form == want, f"form body {call.raw_form!r}\n     botocore: {want!r}"
    assert call.content_type == want_type


def log_lines(p, *needles):
    return [ln for ln in p.output().splitlines() if all(n in ln for n in needles)]


# -- the fake STS itself, checked against botocore (no sigv4d) -----------------------------------

STS_MODEL = botocore.session.get_session().get_service_model("sts")


def botocore_form(session_name):
    """(body, Content-Type) of AssumeRole as botocore sends it, DurationSeconds 3600."""
    op = STS_MODEL.operation_model("AssumeRole")
    ser = create_serializer("query").serialize_to_request(
        {"RoleArn": C.ROLE_ARN, "RoleSessionName": session_name, "DurationSeconds": 3600}, op)
    body = AWSRequest(method="POST", url="https://sts/", data=ser["body"]).prepare().body
    return body.encode() if isinstance(body, str) else body, ser["headers"]["Content-Type"]


def botocore_parse(status, body):
    """What an AWS SDK reads from an AssumeRole answer (botocore's query protocol parser)."""
    op = STS_MODEL.operation_model("AssumeRole")
    return create_parser("query").parse({"status_code": status, "headers": {}, "body": body},
                                        op.output_shape)


def call_fake_directly(stub, pki, secret=C.SECRET, session="direct"):
    form = urllib.parse.urlencode({"Action": "AssumeRole", "DurationSeconds": "3600",
                                   "RoleArn": C.ROLE_ARN, "RoleSessionName": session,
                                   "Version": "2011-06-15"}).encode()
    headers = botocore_sign("POST", C.STS_REGION_HOST, "/", body=form, service="sts",
                            headers={"Content-Type": FORM_TYPE}, secret=secret)
    with RawConn(stub.port, tls_ca=pki.ca_file, server_hostname=C.STS_REGION_HOST) as c:
        return c.request("POST", "/", headers, form)


def s3_direct(stub, pki, akid, secret, token):
    headers = botocore_sign("GET", C.S3_HOST, CHECK_PATH, akid=akid, secret=secret, token=token)
    with RawConn(stub.port, tls_ca=pki.ca_file, server_hostname=C.S3_HOST) as c:
        return c.request("GET", CHECK_PATH, headers)


def test_fake_sts_answer_is_what_botocore_reads_and_its_keys_work(stub, pki):
    fake = sts.FakeSts(steps=[sts.Issue(lifetime_s=900)]).install(stub)
    stub.on(B.Respond(200, b"role ok"), path=CHECK_PATH)
    t0 = time.time()
    r = call_fake_directly(stub, pki)
    assert r.status == 200, r.text
    creds = botocore_parse(200, r.body)["Credentials"]
    call = first_call(fake)
    assert call.verified and call.param("RoleSessionName") == "direct", call
    assert creds["AccessKeyId"] == call.issued.access_key_id
    assert creds["SecretAccessKey"] == call.issued.secret
    assert creds["SessionToken"] == call.issued.token
    assert abs(creds["Expiration"].timestamp() - (t0 + 900)) < 5, creds["Expiration"]
    # Issued keys work on a data host; base keys no longer do; a wrong STS signature is refused.
    assert s3_direct(stub, pki, creds["AccessKeyId"], creds["SecretAccessKey"],
                     creds["SessionToken"]).status == 200
    assert s3_direct(stub, pki, C.AKID, C.SECRET, None).status == 403
    assert s3_direct(stub, pki, creds["AccessKeyId"], creds["SecretAccessKey"], None).status == 403
    bad = call_fake_directly(stub, pki, secret=C.SECRET[:-1] + "X")
    assert bad.status == 403
    assert botocore_parse(403, bad.body)["Error"]["Code"] == "SignatureDoesNotMatch"
    assert [c.verified for c in fake.snapshot()] == [True, False]


def test_fake_sts_scripted_failures(stub, pki):
    fake = sts.FakeSts(steps=[sts.Fail(), sts.Malformed(), sts.Close()],
                       then=sts.Issue(lifetime_s=1)).install(stub)
    stub.on(B.Respond(200, b"role ok"), path=CHECK_PATH)
    r = call_fake_directly(stub, pki)
    assert r.status == 403
    err = botocore_parse(403, r.body)["Error"]
    assert (err["Code"], err["Message"]) == ("AccessDenied", sts.ACCESS_DENIED_MESSAGE)
    r = call_fake_directly(stub, pki)
    assert r.status == 200
    with pytest.raises(ResponseParserError):
        botocore_parse(200, r.body)
    assert call_fake_directly(stub, pki).status is None  # closed without an answer
    r = call_fake_directly(stub, pki)
    assert r.status == 200
    creds = botocore_parse(200, r.body)["Credentials"]
    time.sleep(max(0.0, creds["Expiration"].timestamp() - time.time()) + 0.2)
    assert s3_direct(stub, pki, creds["AccessKeyId"], creds["SecretAccessKey"],
                     creds["SessionToken"]).status == 403, "expired keys must be refused"
    assert len(fake.snapshot()) == 4 and all(c.verified for c in fake.snapshot())


# -- the AssumeRole call and signing with its answer ----------------------------------------------

@pytest.mark.parametrize("creds", ["static", "token"])
def test_assume_role_at_start_up_and_sign_with_the_answer(start_proxy, stub, creds):
    fake = sts.FakeSts()
    t0 = time.time()
    p = start_role(start_proxy, stub, fake, creds=creds)
    r, req = data_request(p, stub)
    call = first_call(fake)
    assert_well_formed_call(call, C.AKID if creds == "static" else C.TOKEN_AKID)
    if creds == "token":
        assert call.token_header == C.TOKEN and call.token_signed, \
            "the base session token must be sent (and signed) as X-Amz-Security-Token"
    else:
        assert call.token_header is None, "X-Amz-Security-Token without a base session token"
    m = re.fullmatch(r"sigv4d-(\d+)", call.param("RoleSessionName"))
    assert m, f"default RoleSessionName {call.param('RoleSessionName')!r} is not sigv4d-<seconds>"
    assert t0 - 2 <= int(m.group(1)) <= call.at + 2, (m.group(1), t0)
    assert_signed_with(r, req, call.issued)
    assert len(fake.snapshot()) == 1, "one AssumeRole call at start-up"
    assert p.alive()


def test_role_session_name_from_the_environment(start_proxy, stub):
    fake = sts.FakeSts()
    p = start_role(start_proxy, stub, fake, env={"AWS_ROLE_SESSION_NAME": "ci-run@build.42,x=y"})
    r, req = data_request(p, stub)
    call = first_call(fake)
    assert call.param("RoleSessionName") == "ci-run@build.42,x=y"
    assert_well_formed_call(call, C.AKID)  # '@', ',' and '=' encoded as botocore does
    assert_signed_with(r, req, call.issued)


def test_region_chooses_the_sts_host(start_proxy, stub):
    # No --region: AWS_REGION resolves it, and the call goes to that region's STS endpoint.
    s3_eu = "s3.eu-central-1.amazonaws.com"
    fake = sts.FakeSts(hosts=(C.STS_EU_HOST,))
    p = start_role(start_proxy, stub, fake, region=None, env={"AWS_REGION": "eu-central-1"},
                   upstreams=(s3_eu, C.STS_EU_HOST, C.STS_REGION_HOST))
    r, req = data_request(p, stub, host=s3_eu)
    call = first_call(fake)
    assert_well_formed_call(call, C.AKID, region="eu-central-1", host=C.STS_EU_HOST)
    assert_signed_with(r, req, call.issued)


def test_base_credentials_from_the_profile(start_proxy, stub, tmp_path):
    d = tmp_path / "aws"
    d.mkdir()
    (d / "config").write_text("[default]\nregion = us-east-1\n")
    (d / "credentials").write_text(f"[default]\naws_access_key_id = {C.TOKEN_AKID}\n"
                                   f"aws_secret_access_key = {C.TOKEN_SECRET}\n"
                                   f"aws_session_token = {C.TOKEN}\n")
    fake = sts.FakeSts()
    p = start_role(start_proxy, stub, fake, creds=None,
                   env={"AWS_CONFIG_FILE": str(d / "config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(d / "credentials")})
    r, req = data_request(p, stub)
    call = first_call(fake)
    assert_well_formed_call(call, C.TOKEN_AKID)
    assert call.token_header == C.TOKEN
    assert_signed_with(r, req, call.issued)


def test_sts_certificate_is_verified(start_proxy, stub):
    # No --ca-file: the system's CAs do not know the test CA, so STS's certificate (like any
    # upstream's) must be refused, and no AssumeRole request may be sent.
    fake = sts.FakeSts()
    p = start_role(start_proxy, stub, fake, ca=False)
    r, req = data_request(p, stub)
    assert r.status == 503, describe(r)
    assert b"credential" in r.body.lower(), r.body
    assert req is None
    assert stub.wait_connections(1, timeout=3) == [] and stub.handshake_failures, \
        "sigv4d did not try STS over TLS, or completed a handshake it should have refused"
    assert fake.snapshot() == [] and p.alive()


def test_request_sent_right_after_start_waits_for_the_first_answer(start_proxy, stub):
    fake = sts.FakeSts(steps=[sts.Issue(delay_s=2.0)])
    p = start_role(start_proxy, stub, fake)
    t0 = time.monotonic()
    r, req = data_request(p, stub)
    took = time.monotonic() - t0
    call = first_call(fake)
    assert_signed_with(r, req, call.issued)
    assert took >= 1.0, f"answered after {took:.2f}s, before STS answered (2 s delay)"
    assert req.received_at >= call.mono, "the request reached upstream before STS answered"


def test_without_an_answer_connections_are_accepted_after_5s(start_proxy, stub):
    fake = sts.FakeSts(steps=[sts.Hang(limit_s=9.0)])
    p = start_role(start_proxy, stub, fake)
    t0 = time.monotonic()
    r, _ = data_request(p, stub, timeout=20)
    took = time.monotonic() - t0
    assert r.status == 503, describe(r)
    # Accepting before any answer would be a 503 at once; waiting for the hung call would
    # mean no answer before the fake gives up at 9 s.
    assert 1.0 <= took <= 8.0, f"503 after {took:.1f}s: sigv4d should start accepting at 5 s"
    # The hung call ends (the fake closes at 9 s); a retry then gets credentials.
    r, req = wait_for_status(p, stub, 200, timeout_s=25)
    issued = fake.wait_issued(1, timeout=1)
    assert issued, "no AssumeRole call answered after the hung one"
    assert_signed_with(r, req, issued[-1].issued)


# -- one call per refresh, refresh ahead of expiry --------------------------------------------

@pytest.mark.parametrize("workers", [1, 4])
def test_one_call_per_refresh_whatever_the_workers(start_proxy, stub, workers):
    fake = sts.FakeSts(then=sts.Issue(lifetime_s=8))
    p = start_role(start_proxy, stub, fake, C.FLAG_WORKERS, str(workers))
    first = first_call(fake)
    for _ in range(2 * workers):  # separate connections: spread over the workers
        assert_signed_with(*data_request(p, stub), first.issued)
    calls = fake.wait_issued(2, timeout=10)
    assert len(calls) >= 2, "no refresh within 10 s of credentials that expire after 8 s"
    second = calls[1]
    gap = second.mono - first.mono
    # lifetime 8 s (7-8 with whole-second Expiration): refresh at Expiration - lifetime/2.
    assert 2.5 <= gap <= 6.5, f"refresh {gap:.1f}s after the first answer, expected about 4 s"
    time.sleep(0.5)  # the proxy installs the answer after the fake records it
    for _ in range(2 * workers):
        assert_signed_with(*data_request(p, stub), second.issued)
    time.sleep(max(0.0, second.mono + 2.5 - time.monotonic()))
    n = len(fake.snapshot())
    assert n == 2, f"{n} AssumeRole calls with --workers {workers}: want one per refresh"


# -- failures -------------------------------------------------------------------------------------

def test_refusal_gives_503_and_retries_with_back_off(start_proxy, stub):
    fake = sts.FakeSts(steps=[sts.Fail(), sts.Fail(), sts.Fail()])
    p = start_role(start_proxy, stub, fake)
    r, req = data_request(p, stub)
    assert r.status == 503, describe(r)
    assert b"refused" in r.body and b"AccessDenied" in r.body, r.body
    assert req is None, "a request was forwarded without credentials"
    calls = fake.wait_issued(1, timeout=15)
    assert calls, f"no successful call after 3 refusals: {len(fake.snapshot())} calls"
    monos = [c.mono for c in fake.snapshot()[:4]]
    gaps = [b - a for a, b in zip(monos, monos[1:])]
    for got, want in zip(gaps, (1, 2, 4)):
        assert want * 0.7 <= got <= want * 1.5 + 0.7, f"retry gaps {gaps}, want about 1, 2, 4 s"
    time.sleep(0.5)
    assert_signed_with(*data_request(p, stub), calls[0].issued)
    lines = log_lines(p, "AccessDenied", "is not authorized to perform: sts:AssumeRole")
    assert len(lines) == 3, f"want one log line per refused call (3), got {lines}"
    assert p.alive()


def test_unreachable_sts_gives_503(start_proxy, stub):
    fake = sts.FakeSts()
    dead = free_port()  # nothing listens there
    p = start_role(start_proxy, stub, fake, C.FLAG_CONNECT_TO,
                   f"{C.STS_REGION_HOST}:443:127.0.0.1:{dead}", upstreams=(C.S3_HOST,))
    r, req = data_request(p, stub)
    assert r.status == 503, describe(r)
    assert b"cannot be reached" in r.body, r.body
    assert req is None
    r2, _ = data_request(p, stub)
    assert r2.status == 503 and b"cannot be reached" in r2.body, describe(r2)
    assert fake.snapshot() == [] and p.alive()


@pytest.mark.parametrize("step,says", [(sts.Malformed(), b"malformed"),
                                       (sts.Close(), b"credential")])
def test_bad_answer_gives_503_then_a_retry_succeeds(start_proxy, stub, step, says):
    fake = sts.FakeSts(steps=[step])
    p = start_role(start_proxy, stub, fake)
    r, req = data_request(p, stub)
    assert r.status == 503, describe(r)
    assert says in r.body.lower(), r.body
    assert req is None
    r, req = wait_for_status(p, stub, 200, timeout_s=10)
    calls = fake.wait_issued(1, timeout=1)
    assert calls, "no AssumeRole call after the bad answer"
    assert_signed_with(r, req, calls[0].issued)
    assert 0.6 <= calls[0].mono - fake.snapshot()[0].mono <= 4, "retry about 1 s later"


def test_expired_credentials_with_failing_refreshes_give_503(start_proxy, stub):
    fake = sts.FakeSts(steps=[sts.Issue(lifetime_s=4)],
                       then=sts.Fail(503, "ServiceUnavailable", "try later"))
    p = start_role(start_proxy, stub, fake)
    first = first_call(fake)
    assert_signed_with(*data_request(p, stub), first.issued)
    time.sleep(max(0.0, first.issued.expiration - time.time()) + 0.5)
    calls = fake.snapshot()
    assert len(calls) >= 2 and calls[1].at < first.issued.expiration, \
        "no refresh attempt before the credentials expired"
    r, req = data_request(p, stub)
    assert r.status == 503, describe(r)
    assert b"expired" in r.body, r.body
    assert req is None, "a request signed with expired credentials was forwarded"
    assert p.alive()


# -- start-up refusals -----------------------------------------------------------------------------

def run_sigv4d(sigv4d_bin, pki, stub, tmp_path, *flags, creds="static", env=None):
    argv = [sigv4d_bin, "--port", f"127.0.0.1:{free_port()}", C.FLAG_CA_FILE, pki.ca_file,
            C.FLAG_CONNECT_TO, f"{C.STS_REGION_HOST}:443:127.0.0.1:{stub.port}",
            C.FLAG_CONNECT_TO, f"{C.S3_HOST}:443:127.0.0.1:{stub.port}",
            C.FLAG_REGION, "us-east-1", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=15,
                          env=proxy_env(tmp_path, creds, env))


def one_line(r):
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line, got: {r.stdout + r.stderr}"
    return lines[0]


def test_without_base_credentials_start_up_stops(sigv4d_bin, pki, stub, tmp_path):
    sts.FakeSts().install(stub)
    r = run_sigv4d(sigv4d_bin, pki, stub, tmp_path, C.FLAG_ROLE_ARN, C.ROLE_ARN, creds=None)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "credential" in one_line(r).lower(), "the reason must say the base credentials are missing"
    assert not stub.contacted


@pytest.mark.parametrize("name", ["x", "has space", "a" * 65, "semi;colon"])
def test_invalid_session_name_stops_start_up(sigv4d_bin, pki, stub, tmp_path, name):
    sts.FakeSts().install(stub)
    r = run_sigv4d(sigv4d_bin, pki, stub, tmp_path, C.FLAG_ROLE_ARN, C.ROLE_ARN,
                   env={"AWS_ROLE_SESSION_NAME": name})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "session" in one_line(r).lower()
    assert not stub.contacted


@pytest.mark.parametrize("arn", ["arn:aws:iam::123456789012:user/x", "not-an-arn"])
def test_malformed_role_arn_exits_2(sigv4d_bin, pki, stub, tmp_path, arn):
    r = run_sigv4d(sigv4d_bin, pki, stub, tmp_path, C.FLAG_ROLE_ARN, arn)
    assert r.returncode == 2, (r.returncode, r.stderr)
    one_line(r)
    assert not stub.contacted


# -- secrets ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("verbosity", [["-v"], ["-v", "-v"]])
def test_no_secret_in_the_output(start_proxy, stub, verbosity):
    # A refusal, then short-lived credentials so a refresh happens too: every path logs.
    fake = sts.FakeSts(steps=[sts.Fail()], then=sts.Issue(lifetime_s=6))
    p = start_role(start_proxy, stub, fake, *verbosity, creds="token")
    r, _ = data_request(p, stub)
    assert r.status == 503, describe(r)
    issued = fake.wait_issued(2, timeout=12)
    assert len(issued) == 2, "want an answer and a refresh"
    time.sleep(0.5)
    assert_signed_with(*data_request(p, stub), issued[1].issued)
    out = p.output()
    assert out.strip(), "verbose sigv4d wrote nothing: the check below would prove nothing"
    secrets = [("base secret", C.TOKEN_SECRET), ("base session token", C.TOKEN)]
    secrets += fake.secrets_issued()
    leaked = [name for name, value in secrets if value in out]
    assert not leaked, f"sigv4d output contains {leaked}"


# -- profile roles ----------------------------------------------------------------------------

PROFILE_ROLE = (f"role_arn = {C.ROLE_ARN}\nexternal_id = ext-1234\n"
                "role_session_name = reader-session\nduration_seconds = 1800\n")
BASE_KEYS = f"aws_access_key_id = {C.AKID}\naws_secret_access_key = {C.SECRET}\n"


@pytest.mark.parametrize("source", ["another profile", "itself"])
def test_profile_role_is_assumed(start_proxy, stub, tmp_path, source):
    # The SDKs' profile role: role_arn with source_profile (another profile's keys, or the
    # profile's own when it names itself); external_id, role_session_name and
    # duration_seconds go to STS as given, and requests are signed with the role's keys.
    if source == "itself":
        env = write_files(tmp_path, f"[profile reader]\n{PROFILE_ROLE}source_profile = reader\n",
                              f"[reader]\n{BASE_KEYS}")
    else:
        env = write_files(tmp_path, "[profile base]\nregion = us-east-1\n"
                              f"[profile reader]\n{PROFILE_ROLE}source_profile = base\n",
                              f"[base]\n{BASE_KEYS}")
    env["AWS_PROFILE"] = "reader"
    fake = sts.FakeSts()
    fake.install(stub)
    stub.on(B.Respond(200, b"role ok"), path=CHECK_PATH)
    p = start_proxy(C.FLAG_REGION, "us-east-1", upstreams=(C.S3_HOST, C.STS_REGION_HOST),
                    creds=None, env=env)
    r, req = data_request(p, stub)
    call = first_call(fake)
    assert call.verified, f"the AssumeRole request did not verify: {call.errors}"
    assert call.signing_akid == C.AKID, "AssumeRole not signed with the source profile's keys"
    assert call.param("RoleArn") == C.ROLE_ARN
    assert call.param("ExternalId") == "ext-1234"
    assert call.param("RoleSessionName") == "reader-session"
    assert call.param("DurationSeconds") == "1800"
    assert_signed_with(r, req, call.issued)


def test_profile_role_from_an_empty_environment_stops_start_up(sigv4d_bin, tmp_path):
    # credential_source = Environment: keys in the environment would win over any profile (the
    # SDKs' order), so reaching the profile means there are none: say so, do not start.
    env = proxy_env(tmp_path, creds=None, extra=write_files(
        tmp_path, f"[profile reader]\n{PROFILE_ROLE}credential_source = Environment\n", ""))
    env["AWS_PROFILE"] = "reader"
    r = subprocess.run([sigv4d_bin, "--port", "127.0.0.1:1"], capture_output=True, text=True,
                       timeout=20, env=env)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "credential_source is Environment but the environment has no keys" in r.stderr, r.stderr


# -- secrets in memory ------------------------------------------------------------------------

def test_replaced_role_credentials_are_wiped_from_memory(start_proxy, stub):
    # After a refresh the first role credentials are dropped: nothing of them may stay in
    # sigv4d's memory (the cred itself, STS's answer in libevent's and OpenSSL's buffers, our
    # copy, libxml2's nodes). The current ones must be found: the scan sees the heap.
    from test_proxy_secrets import memory_pieces
    fake = sts.FakeSts(steps=[sts.Issue(lifetime_s=4)], then=sts.Issue(lifetime_s=3600))
    p = start_role(start_proxy, stub, fake, C.FLAG_WORKERS, "1")
    r, req = data_request(p, stub)
    first = fake.wait_issued(1)[0].issued
    assert_signed_with(r, req, first)
    second_calls = fake.wait_issued(2, timeout=15.0)
    assert len(second_calls) >= 2, "no refresh of 4 s credentials within 15 s"
    second = second_calls[1].issued
    # STS's answer is written before sigv4d has read and published it: allow it a moment.
    deadline = time.monotonic() + 5.0
    while True:
        r, req = data_request(p, stub)
        if (req is not None and req.auth.akid == second.access_key_id) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_signed_with(r, req, second)
    time.sleep(0.3)
    marks = {"the first secret": first.secret.encode(), "the first token": first.token.encode(),
             "the current secret": second.secret.encode()}
    seen = set()
    for piece in memory_pieces(p.pid):
        seen |= {name for name, mark in marks.items() if mark in piece}
    assert "the current secret" in seen, "the scan did not find the credentials in use"
    assert seen == {"the current secret"}, f"left in memory after the refresh: {sorted(seen)}"
