"""A fake AWS STS (AssumeRole over the Query API) as a behaviour of the upstream stub.

The stub already does TLS (SNI, the test CA), HTTP parsing and SigV4 re-verification with
botocore; FakeSts adds what STS does on top:

- install(stub) routes the STS host(s) to the fake and replaces the stub's credential table
  with one that depends on the host: requests to an STS host verify against the *base*
  credentials (what sigv4d reads from its environment), every other host accepts only
  credentials this fake has issued, each until its Expiration. A proxy that signed data
  requests with its base keys, or ignored the role, is refused with 403.
- each call answers per a script of steps (Issue, Fail, Malformed, Close, Hang), then
  `then` for every further call. Issue answers the AssumeRoleResponse of the AWS API
  reference (namespace https://sts.amazonaws.com/doc/2011-06-15/) with fresh random keys
  and Expiration = now + lifetime_s; Fail answers an ErrorResponse with a status.
- every call is recorded as a StsCall: time, form parameters, signature verdict, SNI,
  which step answered, what was issued.

Spec: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
"""
import datetime
import secrets
import string
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from . import config as C
from . import sigv4
from .behaviours import Handler, _sleep

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_FORM_BYTES = 64 * 1024
ACCESS_DENIED_MESSAGE = ("User: arn:aws:iam::123456789012:user/x is not authorized to perform: "
                         "sts:AssumeRole on resource: " + C.ROLE_ARN)


# -- script steps --------------------------------------------------------------------------

@dataclass
class Issue:
    """Answer 200 with new random credentials valid for lifetime_s from the answer,
    after delay_s."""
    lifetime_s: float = 3600
    delay_s: float = 0.0


@dataclass
class Fail:
    """Answer `status` with an ErrorResponse (Type Sender for 4xx, Receiver for 5xx)."""
    status: int = 403
    code: str = "AccessDenied"
    message: str = ACCESS_DENIED_MESSAGE


@dataclass
class Malformed:
    """Answer 200 with a body that is not a valid AssumeRoleResponse."""
    body: bytes = (b'<AssumeRoleResponse xmlns="' + STS_NS.encode() +
                   b'"><AssumeRoleResult><Credentials><AccessKeyId>ASIA')


@dataclass
class Close:
    """Read the request, then close the connection without answering."""


@dataclass
class Hang:
    """Read the request and answer nothing for limit_s (or until the stub stops), then close."""
    limit_s: float = 30.0


# -- records -------------------------------------------------------------------------------

@dataclass
class Issued:
    access_key_id: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    expiration: int  # seconds since the epoch, as written in the answer
    answered_at: float  # time.time() when the answer was written


@dataclass
class StsCall:
    at: float  # time.time() when the request was complete
    mono: float  # time.monotonic() at the same moment
    method: str
    target: str
    host: str
    sni: str
    content_type: str
    form: dict  # name -> [values], parsed strictly
    raw_form: bytes = field(repr=False)
    verified: bool = False
    errors: list = field(default_factory=list)
    signing_akid: str = None
    service: str = None
    region: str = None
    token_header: str = field(default=None, repr=False)  # X-Amz-Security-Token as received
    token_signed: bool = False
    step: object = None  # the script step that answered (None: signature refused)
    issued: Issued = None

    def param(self, name):
        vals = self.form.get(name, [])
        return vals[0] if len(vals) == 1 else vals


def _random_key(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _xml_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_body(code, message, kind="Sender"):
    return (f'<ErrorResponse xmlns="{STS_NS}">\n  <Error>\n    <Type>{kind}</Type>\n'
            f'    <Code>{_xml_text(code)}</Code>\n    <Message>{_xml_text(message)}</Message>\n'
            f'  </Error>\n  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n').encode()


def assume_role_body(issued, role_arn, session_name):
    role_name = role_arn.rsplit("/", 1)[-1]
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else "123456789012"
    return (f'<AssumeRoleResponse xmlns="{STS_NS}">\n'
            f'  <AssumeRoleResult>\n'
            f'    <AssumedRoleUser>\n'
            f'      <Arn>arn:aws:sts::{account}:assumed-role/{_xml_text(role_name)}/'
            f'{_xml_text(session_name)}</Arn>\n'
            f'      <AssumedRoleId>AROA{_random_key(string.ascii_uppercase + string.digits, 17)}:'
            f'{_xml_text(session_name)}</AssumedRoleId>\n'
            f'    </AssumedRoleUser>\n'
            f'    <Credentials>\n'
            f'      <AccessKeyId>{issued.access_key_id}</AccessKeyId>\n'
            f'      <SecretAccessKey>{issued.secret}</SecretAccessKey>\n'
            f'      <SessionToken>{issued.token}</SessionToken>\n'
            f'      <Expiration>{_iso(issued.expiration)}</Expiration>\n'
            f'    </Credentials>\n'
            f'  </AssumeRoleResult>\n'
            f'  <ResponseMetadata>\n    <RequestId>{uuid.uuid4()}</RequestId>\n'
            f'  </ResponseMetadata>\n'
            f'</AssumeRoleResponse>\n').encode()


class FakeSts(Handler):
    """The fake STS. `steps` answer the first calls in order, `then` every later one."""

    # The stub must hand every call to the fake, even one whose signature failed, so the call
    # is recorded (verified=False) and answered as STS would (SignatureDoesNotMatch).
    auth_exempt = True

    def __init__(self, steps=(), then=None, hosts=(C.STS_REGION_HOST,),
                 base=((C.AKID, C.SECRET, None), (C.TOKEN_AKID, C.TOKEN_SECRET, C.TOKEN))):
        self.steps = list(steps)
        self.then = then or Issue()
        self.hosts = tuple(hosts)
        self.base = {akid: (secret, token) for (akid, secret, token) in base}
        self.calls = []
        self.issued = {}  # access key id -> Issued
        self._lock = threading.Condition()
        self._answered = 0  # calls answered by a step (verified ones)
        self.stub = None  # set by install()

    # -- wiring ---------------------------------------------------------------------------
    def install(self, stub):
        """Route the STS hosts to this fake and make the stub's credentials host-dependent."""
        for host in self.hosts:
            stub.on(self, method=None, host=host)
        stub.credential_lookup = self.lookup
        self.stub = stub
        # The conftest teardown fails the test if any of these reaches sigv4d's output.
        stub.more_secrets = self.secrets_issued
        return self

    def lookup(self, akid, host):
        """The stub's credential table: base keys at STS, issued ones everywhere else."""
        if host in self.hosts:
            return self.base.get(akid)
        with self._lock:
            issued = self.issued.get(akid)
        if issued is None:
            if akid in self.base:
                raise sigv4.SigError(f"InvalidAccessKeyId: {akid} is a base key: requests must be "
                                     "signed with the assumed role's credentials")
            return None
        if time.time() >= issued.expiration:
            raise sigv4.SigError(f"ExpiredToken: the credentials {akid} expired at "
                                 f"{_iso(issued.expiration)}")
        return issued.secret, issued.token

    def secrets_issued(self):
        """(name, value) of every secret and token issued so far."""
        with self._lock:
            out = []
            for i in self.issued.values():
                out += [(f"assumed secret ({i.access_key_id})", i.secret),
                        (f"assumed session token ({i.access_key_id})", i.token)]
            return out

    # -- observation ----------------------------------------------------------------------
    def _wait(self, select, n, timeout):
        """select(calls) once it holds at least n calls, or when timeout passes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = select(self.calls)
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._lock.wait(left)

    def wait_calls(self, n, timeout=10.0):
        """The calls once there are at least n (or whatever there is after timeout)."""
        return self._wait(list, n, timeout)

    def wait_issued(self, n, timeout=10.0):
        """The calls that issued credentials, once there are at least n."""
        return self._wait(lambda calls: [c for c in calls if c.issued is not None], n, timeout)

    def elsewhere(self):
        """What the stub received on STS-looking hosts this fake does not serve (a call to
        the wrong region's endpoint, say), for assertion messages."""
        if self.stub is None:
            return []
        return [r.describe() + f" host={r.host}" for r in list(self.stub.requests)
                if r.host.startswith("sts") and r.host not in self.hosts]

    def snapshot(self):
        with self._lock:
            return list(self.calls)

    # -- the handler ----------------------------------------------------------------------
    def sink(self, req):
        req.sts_form = bytearray()

        def take(d):
            if len(req.sts_form) + len(d) <= MAX_FORM_BYTES:
                req.sts_form.extend(d)

        return take

    def __call__(self, req, w):
        raw = bytes(getattr(req, "sts_form", b""))
        call = StsCall(time.time(), time.monotonic(), req.method, req.target, req.host,
                       req.conn.sni, req.header("content-type"), {}, raw,
                       token_header=req.header("x-amz-security-token"),
                       token_signed=req.token_signed)
        if req.auth is not None:
            call.signing_akid, call.service, call.region = (
                req.auth.akid, req.auth.service, req.auth.region)
        try:
            call.form = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                              strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as e:
            call.errors.append(f"form body does not parse: {e}")
        call.errors += req.errors
        if req.auth is not None and req.auth.service != "sts":
            call.errors.append(f"signed for service {req.auth.service}, not sts")
        call.verified = not req.errors and req.auth is not None
        if not call.verified:
            self._record(call)
            w.respond(req, 403, error_body("SignatureDoesNotMatch", "; ".join(req.errors)
                                           or "not signed"), content_type="text/xml")
            return
        with self._lock:
            step = self.steps[self._answered] if self._answered < len(self.steps) else self.then
            self._answered += 1
        call.step = step
        self._answer(call, step, req, w)

    def _record(self, call):
        with self._lock:
            self.calls.append(call)
            self._lock.notify_all()

    def _answer(self, call, step, req, w):
        if isinstance(step, Issue):
            if step.delay_s:
                _sleep(w.stub.stopping, step.delay_s)
            now = time.time()
            issued = Issued(
                "ASIA" + _random_key(string.ascii_uppercase + string.digits, 16),
                _random_key(string.ascii_letters + string.digits + "/+", 40),
                "FwoGZXIvYXdzE" + _random_key(string.ascii_letters + string.digits + "/+", 300),
                int(now + step.lifetime_s), now)
            call.issued = issued
            with self._lock:
                self.issued[issued.access_key_id] = issued
            # Recorded before the answer goes out: a test that sees the proxy use the new
            # key finds the call already there.
            self._record(call)
            w.respond(req, 200, assume_role_body(issued, str(call.param("RoleArn")),
                                                 str(call.param("RoleSessionName"))),
                      content_type="text/xml")
        elif isinstance(step, Fail):
            self._record(call)
            w.respond(req, step.status, error_body(
                step.code, step.message, "Sender" if step.status < 500 else "Receiver"),
                content_type="text/xml")
        elif isinstance(step, Malformed):
            self._record(call)
            w.respond(req, 200, step.body, content_type="text/xml")
        elif isinstance(step, Close):
            self._record(call)
            req.status = 0
            w.hard_close()
        elif isinstance(step, Hang):
            self._record(call)
            req.status = 0
            _sleep(w.stub.stopping, step.limit_s)
            w.hard_close()
        else:
            raise ValueError(step)
