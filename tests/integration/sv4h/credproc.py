#!/usr/bin/python3
"""A fake `credential_process` program and the test side's bookkeeping of it.

The same file is both:

- the program sigv4d runs (`/usr/bin/python3 .../credproc.py STATE_DIR [ARGS...]`, or this
  file under another name through its shebang, for a PATH search). It takes no decision of
  its own: STATE_DIR/script.json says what each run does (the runs' steps in order, then
  `then` for every later run). Each run appends a record to STATE_DIR/runs.jsonl (time, pid,
  argv, selected environment variables, what its stdin is) and, when it prints credentials,
  first appends them to STATE_DIR/issued.jsonl, so a test that sees sigv4d use a key finds it
  there already. Only the standard library: it must run without sv4h on its path.
- the test side (FakeProcess): writes the script, makes the command line, reads the records,
  and installs a credential lookup on the upstream stub that accepts only keys a run issued,
  until their Expiration (keys without one never expire), as sts.FakeSts does for STS.

Output format (AWS SDKs and Tools Reference Guide, "Sourcing credentials with an external
process"): {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}
with Expiration in ISO 8601 UTC. The first tests in test_proxy_process.py check that botocore's
ProcessProvider reads exactly what this program issues.
"""
import datetime
import fcntl
import json
import os
import secrets
import select
import shlex
import signal
import stat
import string
import sys
import time
from dataclasses import asdict, dataclass, field

SCRIPT_PATH = os.path.abspath(__file__)
PYTHON = "/usr/bin/python3"
# Environment variables each run records (absent ones as None).
RECORDED_ENV = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HOME", "PATH",
                "SV4H_CREDPROC_MARK")


# -- script steps (what one run does) ---------------------------------------------------------

@dataclass
class Issue:
    """Print new random credentials, after delay_s. lifetime_s None: no Expiration (never
    expire); token False: no SessionToken. size > 0: spaces after the JSON make the output
    (newline included) exactly that many bytes, still valid JSON."""
    lifetime_s: float = 3600
    token: bool = True
    delay_s: float = 0.0
    stderr: str = ""
    size: int = 0


@dataclass
class Exit:
    """Print `stderr` to standard error and exit with `status`, printing nothing."""
    status: int = 1
    stderr: str = ""


@dataclass
class Output:
    """Print `text` (not credentials this fake vouches for) and exit with `status`."""
    text: str = "this is not JSON\n"
    stderr: str = ""
    status: int = 0


@dataclass
class Hang:
    """Print nothing for limit_s (or until killed), then exit 0 without output."""
    limit_s: float = 40.0
    stderr: str = ""


@dataclass
class Kill:
    """Kill itself with `signum` before printing anything."""
    signum: int = signal.SIGKILL
    stderr: str = ""


STEPS = {cls.__name__: cls for cls in (Issue, Exit, Output, Hang, Kill)}


def _step_to_json(step):
    return {"kind": type(step).__name__, **asdict(step)}


def _step_from_json(d):
    d = dict(d)
    return STEPS[d.pop("kind")](**d)


def _random_key(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# -- the program ------------------------------------------------------------------------------

def _fd_kind(fd):
    """What fd is: "/dev/null", "pipe", "socket"..., with " (non-blocking)" when O_NONBLOCK is
    set (a program's standard streams are blocking: many programs fail on EAGAIN)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return "closed"
    null = os.stat("/dev/null")
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev:
        kind = "/dev/null"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "pipe"
    elif stat.S_ISSOCK(st.st_mode):
        kind = "socket"
    else:
        kind = f"other (mode {st.st_mode:o})"
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
        kind += " (non-blocking)"
    return kind


def _write_all(fd, data):
    """Writes all of data, also to a non-blocking fd (waiting until it is writable), so what
    sigv4d receives depends on sigv4d alone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def _append(path, record):
    """One JSON line, written with a single write under the state lock."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _sleep(seconds):
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


def _open_fds():
    """The descriptors open beyond the standard three (fstat opens none itself)."""
    out = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
            out.append(fd)
        except OSError:
            pass
    return out


def program(argv):
    inherited = _open_fds()  # first: before this program opens anything itself
    state = argv[1]
    started, started_mono = time.time(), time.monotonic()
    with open(os.path.join(state, "lock"), "a") as lock:
        # Runs are numbered under the lock: two runs at once (sigv4d running the program
        # twice for one refresh) get different steps and both show in runs.jsonl.
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(os.path.join(state, "script.json")) as f:
            script = json.load(f)
        try:
            with open(os.path.join(state, "runs.jsonl")) as f:
                n = sum(1 for ln in f if ln.strip())
        except FileNotFoundError:
            n = 0
        steps = script["steps"]
        step_json = steps[n] if n < len(steps) else script["then"]
        _append(os.path.join(state, "runs.jsonl"), {
            "run": n, "pid": os.getpid(), "ppid": os.getppid(), "at": started,
            "mono": started_mono, "argv": list(argv),
            "env": {k: os.environ.get(k) for k in RECORDED_ENV}, "stdin": _fd_kind(0),
            "stdout": _fd_kind(1), "fds": inherited, "step": step_json})
    step = _step_from_json(step_json)
    end_path = os.path.join(state, "ends.jsonl")

    def ended(how, **more):
        _append(end_path, {"run": n, "how": how, "at": time.time(), "mono": time.monotonic(),
                           **more})

    # A SIGTERM from sigv4d (a timeout) is recorded; SIGKILL cannot be, and shows as a run
    # without an end whose process is gone.
    signal.signal(signal.SIGTERM, lambda *_: (ended("SIGTERM"), os._exit(128 + 15)))
    if step.stderr:
        sys.stderr.write(step.stderr)
        sys.stderr.flush()
    if isinstance(step, Issue):
        _sleep(step.delay_s)
        now = time.time()
        akid = ("ASIA" if step.token else "AKIA") + _random_key(
            string.ascii_uppercase + string.digits, 16)
        issued = {"run": n, "access_key_id": akid,
                  "secret": _random_key(string.ascii_letters + string.digits + "/+", 40),
                  "token": ("IQoJb3JpZ2luX2VjEFAKE" +
                            _random_key(string.ascii_letters + string.digits + "/+", 300)
                            if step.token else None),
                  "expiration": (int(now + step.lifetime_s)
                                 if step.lifetime_s is not None else None),
                  "answered_at": now, "mono": time.monotonic()}
        out = {"Version": 1, "AccessKeyId": akid, "SecretAccessKey": issued["secret"]}
        if issued["token"] is not None:
            out["SessionToken"] = issued["token"]
        if issued["expiration"] is not None:
            out["Expiration"] = iso(issued["expiration"])
        _append(os.path.join(state, "issued.jsonl"), issued)
        ended("issued")
        text = json.dumps(out)
        text += " " * max(0, step.size - len(text) - 1) + "\n"
        _write_all(1, text.encode())
        return 0
    if isinstance(step, Exit):
        ended("exit", status=step.status)
        return step.status
    if isinstance(step, Output):
        _write_all(1, step.text.encode())
        ended("output", status=step.status)
        return step.status
    if isinstance(step, Hang):
        _sleep(step.limit_s)
        ended("hang over")
        return 0
    if isinstance(step, Kill):
        ended("kill", signum=step.signum)
        os.kill(os.getpid(), step.signum)
        _sleep(5)
        return 99
    raise ValueError(step)


# -- the test side ----------------------------------------------------------------------------

@dataclass
class Issued:
    run: int
    access_key_id: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    expiration: int  # seconds since the epoch, as printed; None: no Expiration
    answered_at: float  # time.time() just before the answer was printed
    mono: float  # time.monotonic() at the same moment (CLOCK_MONOTONIC: one clock for all)


@dataclass
class Run:
    run: int
    pid: int
    ppid: int
    at: float  # time.time() at the program's start
    mono: float
    argv: list
    env: dict = field(repr=False)
    stdin: str
    stdout: str
    fds: list  # descriptors beyond 0-2 the program found open at its start
    step: object
    issued: Issued = None
    ends: list = field(default_factory=list)  # {"how": "issued"|"exit"|"SIGTERM"|...}

    def gone(self):
        """The process has exited (or is a zombie nobody reaped yet)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return True


def _read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


class FakeProcess:
    """The fake program's state directory, seen from the test. `steps` answer the first
    runs in order, `then` every later run."""

    def __init__(self, state_dir, steps=(), then=None):
        self.state = str(state_dir)
        os.makedirs(self.state, exist_ok=True)
        self.steps = list(steps)
        self.then = then or Issue()
        with open(os.path.join(self.state, "script.json"), "w") as f:
            json.dump({"steps": [_step_to_json(s) for s in self.steps],
                       "then": _step_to_json(self.then)}, f)
        self.stub = None

    # -- the command line -----------------------------------------------------------------
    def command(self, *args):
        """`credential_process` value running this program with /usr/bin/python3, quoted
        for the shell-like splitting (the state directory may hold a space)."""
        return shlex.join([PYTHON, SCRIPT_PATH, self.state, *args])

    def install_on_path(self, bin_dir, name="sigv4d-fake-credproc"):
        """Puts the program in bin_dir as `name` (a symlink; the shebang runs it) for a
        bare-name command; returns the name."""
        os.makedirs(bin_dir, exist_ok=True)
        link = os.path.join(str(bin_dir), name)
        if not os.path.lexists(link):
            os.symlink(SCRIPT_PATH, link)
        return name

    # -- the stub ---------------------------------------------------------------------------
    def install(self, stub):
        """Make the stub accept only keys this program issued, until they expire."""
        stub.credential_lookup = self.lookup
        stub.more_secrets = self.secrets_issued
        self.stub = stub
        return self

    def lookup(self, akid, host):
        from . import sigv4  # the program side must not need sv4h
        issued = {i.access_key_id: i for i in self.issued()}.get(akid)
        if issued is None:
            return None
        if issued.expiration is not None and time.time() >= issued.expiration:
            raise sigv4.SigError(f"ExpiredToken: the credentials {akid} expired at "
                                 f"{iso(issued.expiration)}")
        return issued.secret, issued.token

    def secrets_issued(self):
        """(name, value) of every secret and token issued so far."""
        out = []
        for i in self.issued():
            out.append((f"issued secret ({i.access_key_id})", i.secret))
            if i.token:
                out.append((f"issued session token ({i.access_key_id})", i.token))
        return out

    def kill_leftovers(self):
        """SIGKILL any run still alive (a Hang whose sigv4d did not kill it): a test leaves
        no process behind. Only processes whose command line names this state directory."""
        for r in self.runs():
            try:
                with open(f"/proc/{r.pid}/cmdline", "rb") as f:
                    mine = self.state.encode() in f.read().split(b"\0")
                if mine and not r.gone():
                    os.kill(r.pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass

    # -- observation ----------------------------------------------------------------------
    def issued(self):
        return [Issued(**d) for d in _read_jsonl(os.path.join(self.state, "issued.jsonl"))]

    def runs(self):
        issued = {i.run: i for i in self.issued()}
        ends = _read_jsonl(os.path.join(self.state, "ends.jsonl"))
        out = []
        for d in _read_jsonl(os.path.join(self.state, "runs.jsonl")):
            d["step"] = _step_from_json(d["step"])
            r = Run(**d)
            r.issued = issued.get(r.run)
            r.ends = [e for e in ends if e["run"] == r.run]
            out.append(r)
        return out

    def _wait(self, select, n, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = select(self.runs())
            if len(got) >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.05)

    def wait_runs(self, n, timeout=10.0):
        """The runs once there are at least n (or whatever there is after timeout)."""
        return self._wait(list, n, timeout)

    def wait_issued(self, n, timeout=10.0):
        """The runs that printed credentials, once there are at least n."""
        return self._wait(lambda runs: [r for r in runs if r.issued is not None], n, timeout)


if __name__ == "__main__":
    sys.exit(program(sys.argv))
