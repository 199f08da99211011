"""credential_process profiles: sigv4d runs the profile's program for its credentials.

The program is sv4h/credproc.py, scripted per test through a state directory (what each run
does, in order); it records every run (time, argv, environment, stdin) and the keys it
prints. The stub accepts only keys a run issued, until their Expiration, so a request that
verifies was signed with the program's answer; base keys are refused.

The first tests check the fake program against botocore's ProcessProvider (no sigv4d).
"""
import os
import shlex
import subprocess
import time

import botocore.session
import pytest
from botocore.exceptions import CredentialRetrievalError

from conftest import proxy_env
from test_proxy_profile import write_files
from test_proxy_role import CHECK_PATH, data_request, describe, s3_direct, wait_for_status
from test_proxy_role import assert_signed_with as role_assert_signed_with
from sv4h import behaviours as B
from sv4h import config as C
from sv4h import credproc as P
from sv4h.proxyproc import free_port

PROFILE = "tool"
MARK = "credproc-mark-7f3a"  # in sigv4d's environment: the program must see it


# -- helpers ----------------------------------------------------------------------------------

@pytest.fixture
def fake_process(tmp_path):
    """fake_process(steps=(), then=Issue(), name=...) -> FakeProcess; its state directory's
    name holds a space, so the command line needs quoting. Runs still alive at the end (a
    Hang sigv4d did not kill) are killed."""
    made = []

    def make(steps=(), then=None, name="cred proc"):
        made.append(P.FakeProcess(tmp_path / name, steps, then))
        return made[-1]

    yield make
    for f in made:
        f.kill_leftovers()


def profile_env(tmp_path, command, profile=PROFILE, extra=None):
    """Config file with `credential_process = command` in `profile`; AWS_PROFILE set unless
    the profile is the default one."""
    section = "[default]" if profile == "default" else f"[profile {profile}]"
    env = write_files(tmp_path, f"{section}\nregion = us-east-1\ncredential_process = {command}\n",
                      "")
    if profile != "default":
        env["AWS_PROFILE"] = profile
    env["SV4H_CREDPROC_MARK"] = MARK
    env.update(extra or {})
    return env


def start_process(start_proxy, stub, tmp_path, fake, *flags, command=None, profile=PROFILE,
                  env=None, creds=None, install=True):
    """sigv4d with a credential_process profile running `fake` (or `command`)."""
    if install:
        fake.install(stub)
    stub.on(B.Respond(200, b"process ok"), path=CHECK_PATH)
    return start_proxy(C.FLAG_REGION, "us-east-1", *flags, creds=creds,
                       env=profile_env(tmp_path, command or fake.command(), profile, env))


def assert_signed_with(r, req, issued):
    """The request went through, signed with `issued` (a credproc.Issued) and its token, or
    without X-Amz-Security-Token when the program answered no SessionToken."""
    if issued.token is not None:
        role_assert_signed_with(r, req, issued)  # what holds for an assumed role holds here
        return
    assert r.status == 200 and req is not None and req.ok, describe(r)
    assert req.auth.akid == issued.access_key_id, (req.auth.akid, issued.access_key_id)
    assert req.header("x-amz-security-token") is None, \
        "X-Amz-Security-Token sent, but the program answered no SessionToken"


def assert_no_credentials(r, req, *more):
    """503 whose body starts "no credentials:", names credential_process (and `more`), and
    nothing was forwarded."""
    assert r.status == 503, describe(r)
    assert r.body.startswith(b"no credentials:"), r.body
    assert b"credential_process" in r.body, r.body
    for m in more:
        assert m in r.body, r.body
    assert req is None, "a request was forwarded without credentials"


def assert_waiting_503(r, req):
    """503 while the first run has not answered yet (the contract leaves the reason open)."""
    assert r.status == 503, describe(r)
    assert r.body.startswith(b"no credentials:"), r.body
    assert req is None, "a request was forwarded without credentials"


def first_run(fake, timeout=10.0):
    runs = fake.wait_runs(1, timeout)
    assert runs, "sigv4d never ran the credential_process program"
    return runs[0]


def first_issued(fake, timeout=10.0):
    runs = fake.wait_issued(1, timeout)
    assert runs, f"no run of the program printed credentials: {fake.runs()}"
    return runs[0].issued


def failure_lines(p, *needles):
    """Log lines holding all needles, without the access-log lines of 503 answers."""
    return [ln for ln in p.output().splitlines()
            if all(n in ln for n in needles) and " 503 in=" not in ln]


# -- the fake program itself, checked against botocore (no sigv4d) ----------------------------

# In the failing outputs: a secret that must not reach the log or a 503 body either.
BAD_SECRET = "wJalrBADOUTPUTs3cr3tNEVERLOGGED0123456789"
BAD_JSON = ('{"Version": 1, "AccessKeyId": "AKIAFAKEFAKEFAKE0000", '
            f'"SecretAccessKey": "{BAD_SECRET}"}}')
FAILURES = {
    "exit status": (P.Exit(3, stderr="credproc: refusing\n"), b"", "exited with status 3"),
    "good output, exit 1": (P.Output(BAD_JSON + "\n", status=1), b"", "exited with status 1"),
    "killed": (P.Kill(), b"", None),
    "not JSON": (P.Output(f"AccessKeyId=AKIAFAKE SecretAccessKey={BAD_SECRET}\n"),
                 b"malformed", None),
    "trailing text": (P.Output(BAD_JSON + " and more\n"), b"malformed", None),
    "no secret key": (P.Output('{"Version": 1, "AccessKeyId": "AKIAFAKEFAKEFAKE0000"}\n'),
                      b"malformed", None),
    "no key id": (P.Output(f'{{"Version": 1, "SecretAccessKey": "{BAD_SECRET}"}}\n'),
                  b"malformed", None),
    "Version 2": (P.Output(BAD_JSON.replace('"Version": 1', '"Version": 2') + "\n"), b"", None),
}


def botocore_credentials(monkeypatch, tmp_path, command):
    """What botocore's credential chain makes of a credential_process profile."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    for k, v in profile_env(tmp_path, command).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return botocore.session.Session(profile=PROFILE).get_credentials()


@pytest.mark.parametrize("token,lifetime", [(True, 3600), (False, None)])
def test_fake_program_answer_is_what_botocore_reads(monkeypatch, tmp_path, stub, pki,
                                                    fake_process, token, lifetime):
    fake = fake_process([P.Issue(lifetime_s=lifetime, token=token)])
    fake.install(stub)
    stub.on(B.Respond(200, b"process ok"), path=CHECK_PATH)
    t0 = time.time()
    creds = botocore_credentials(monkeypatch, tmp_path, fake.command("--flag", "two words"))
    # (an hour: botocore itself runs the program again when fewer than 15 minutes are left)
    assert creds.method == "custom-process"
    run = first_run(fake)
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        run.issued.access_key_id, run.issued.secret, run.issued.token)
    if lifetime is None:
        assert run.issued.expiration is None and not hasattr(creds, "_expiry_time")
    else:
        assert abs(creds._expiry_time.timestamp() - (t0 + lifetime)) < 5, creds._expiry_time
    assert run.argv[1:] == [fake.state, "--flag", "two words"]
    assert run.stdout == "pipe", run.stdout  # botocore's subprocess: a blocking pipe
    assert run.env["SV4H_CREDPROC_MARK"] == MARK and run.env["AWS_PROFILE"] == PROFILE
    # Issued keys work on a data host (with their token, or without one); base keys do not.
    assert s3_direct(stub, pki, frozen.access_key, frozen.secret_key, frozen.token).status == 200
    assert s3_direct(stub, pki, C.AKID, C.SECRET, None).status == 403
    wrong = frozen.secret_key[:-1] + ("A" if frozen.secret_key[-1] != "A" else "B")
    assert s3_direct(stub, pki, frozen.access_key, wrong, frozen.token).status == 403
    assert len(fake.runs()) == 1


def botocore_process_answer(command):
    """botocore's ProcessProvider run and read `command` (no refresh logic around it)."""
    from botocore.credentials import ProcessProvider
    provider = ProcessProvider(PROFILE, lambda: {"profiles": {PROFILE: {
        "credential_process": command}}})
    return provider._retrieve_credentials_using(command)


def test_fake_program_failures_are_what_botocore_refuses(stub, pki, fake_process):
    # Every failure sigv4d is tested with (FAILURES) is one for botocore too; then keys that
    # expire after 1-2 s are read as botocore reads them and refused once expired.
    fake = fake_process([step for step, _, _ in FAILURES.values()],
                        then=P.Issue(lifetime_s=2))  # whole seconds: 1-2 s
    fake.install(stub)
    stub.on(B.Respond(200, b"process ok"), path=CHECK_PATH)
    for kind in FAILURES:
        with pytest.raises((CredentialRetrievalError, ValueError)) as e:
            botocore_process_answer(fake.command())
        if kind == "exit status":
            assert "credproc: refusing" in str(e.value)  # botocore shows the stderr
        if kind == "Version 2":
            assert "Unsupported version" in str(e.value)
    got = botocore_process_answer(fake.command())
    issued = fake.wait_issued(1)[0].issued
    assert (got["access_key"], got["secret_key"], got["token"]) == (
        issued.access_key_id, issued.secret, issued.token)
    assert got["expiry_time"] == P.iso(issued.expiration)
    assert s3_direct(stub, pki, issued.access_key_id, issued.secret, issued.token).status == 200
    time.sleep(max(0.0, issued.expiration - time.time()) + 0.2)
    assert s3_direct(stub, pki, issued.access_key_id, issued.secret,
                     issued.token).status == 403, "expired keys must be refused"
    runs = fake.runs()
    assert [r.step for r in runs] == [step for step, _, _ in FAILURES.values()] + [fake.then]
    assert all(len(r.ends) == 1 for r in runs), [r.ends for r in runs]


# -- running the program and signing with its answer --------------------------------------------

@pytest.mark.parametrize("token", [True, False], ids=["with token", "without token"])
def test_program_runs_at_start_up_and_requests_are_signed_with_its_answer(
        start_proxy, stub, tmp_path, fake_process, token):
    fake = fake_process([P.Issue(token=token)])
    t0 = time.monotonic()
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = data_request(p, stub)
    run = first_run(fake)
    assert_signed_with(r, req, run.issued)
    assert run.mono - t0 < 3.0, f"the program ran {run.mono - t0:.1f}s after start, not at once"
    assert run.stdin == "/dev/null", f"the program's stdin is {run.stdin}, want /dev/null"
    # A blocking pipe, as the SDKs' subprocess gives: with O_NONBLOCK on the program's end
    # (shared through the open file) a write that fills the pipe fails with EAGAIN.
    assert run.stdout == "pipe", f"the program's stdout is {run.stdout}, want a blocking pipe"
    # Nothing of sigv4d's leaks into the program: no client or upstream socket, no eventfd.
    assert run.fds == [], f"the program inherited descriptors {run.fds} from sigv4d"
    # The environment is inherited: sigv4d's own variables reach the program.
    assert run.env["SV4H_CREDPROC_MARK"] == MARK
    assert run.env["AWS_PROFILE"] == PROFILE
    assert run.env["AWS_CONFIG_FILE"] == p.env["AWS_CONFIG_FILE"]
    assert run.env["PATH"] == p.env["PATH"]
    r, req = data_request(p, stub)
    assert_signed_with(r, req, run.issued)
    time.sleep(1.0)
    assert len(fake.runs()) == 1, "one run at start-up (credentials valid for an hour)"
    assert p.alive()


@pytest.mark.parametrize("how", ["absolute path", "PATH search"])
def test_command_line_is_split_into_words_without_a_shell(start_proxy, stub, tmp_path,
                                                          fake_process, how):
    # shlex.split's words (botocore splits the line the same way), and no shell: a shell
    # would expand $HOME and *, and end the command at ';'.
    fake = fake_process()
    args = (r"""'single \ quoted' "double \"q\" \\ x" back\ slash a'b'"c"d '' """
            r"""$HOME a;b * --key=v""")
    env = {}
    if how == "PATH search":
        bin_dir = str(tmp_path / "bin")
        name = fake.install_on_path(bin_dir)
        env["PATH"] = f"{tmp_path / 'empty-bin'}:{bin_dir}:{os.environ['PATH']}"
        command = f"{name} {shlex.quote(fake.state)} {args}"
    else:
        command = f"{fake.command()} {args}"
    p = start_process(start_proxy, stub, tmp_path, fake, command=command, env=env)
    r, req = data_request(p, stub)
    run = first_run(fake)
    assert_signed_with(r, req, run.issued)
    words = shlex.split(command)
    assert words[-9:] == ["single \\ quoted", 'double "q" \\ x', "back slash", "abcd", "",
                          "$HOME", "a;b", "*", "--key=v"]  # what the test means to send
    if how == "PATH search":
        assert run.argv[0] == os.path.join(bin_dir, name), \
            f"argv[0] {run.argv[0]!r}: the program was not found through PATH"
        assert run.argv[1:] == words[1:]
    else:
        assert run.argv == words[1:]  # /usr/bin/python3 ran the script with these words


def test_default_profile(start_proxy, stub, tmp_path, fake_process):
    fake = fake_process()
    p = start_process(start_proxy, stub, tmp_path, fake, profile="default")
    r, req = data_request(p, stub)
    run = first_run(fake)
    assert_signed_with(r, req, run.issued)
    assert run.env["AWS_PROFILE"] is None


def test_environment_keys_win_and_the_program_is_not_run(start_proxy, stub, tmp_path,
                                                         fake_process):
    fake = fake_process()
    # Not installed: the stub accepts the environment's keys (config.AKID).
    p = start_process(start_proxy, stub, tmp_path, fake, creds="static", install=False)
    r, req = data_request(p, stub)
    assert r.status == 200, describe(r)
    assert req.ok and req.auth.akid == C.AKID, req.describe()
    time.sleep(1.0)
    assert fake.runs() == [], "the program ran although the environment has keys"


def test_program_stderr_goes_to_sigv4d_stderr(start_proxy, stub, tmp_path, fake_process):
    said = "credproc says hello on stderr 5e1d\n"
    fake = fake_process([P.Exit(4, stderr=said)], then=P.Issue(stderr=said))
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = wait_for_status(p, stub, 200, timeout_s=10)
    assert_signed_with(r, req, first_issued(fake))
    out = p.output()
    assert out.count(said.strip()) >= 2, f"want the program's stderr (2 runs) in:\n{out}"


# -- start-up ---------------------------------------------------------------------------------

def test_request_sent_right_after_start_waits_for_the_first_answer(start_proxy, stub, tmp_path,
                                                                   fake_process):
    fake = fake_process([P.Issue(delay_s=2.0)])
    t0 = time.monotonic()
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = data_request(p, stub)
    took = time.monotonic() - t0
    issued = first_issued(fake)
    assert_signed_with(r, req, issued)
    assert took >= 1.5, f"answered {took:.2f}s after start, before the program did (2 s delay)"
    assert req.received_at >= issued.mono, "the request reached upstream before the answer"


def test_without_an_answer_connections_are_accepted_after_5s(start_proxy, stub, tmp_path,
                                                             fake_process):
    fake = fake_process([P.Issue(delay_s=9.0)])
    t0 = time.monotonic()
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = data_request(p, stub, timeout=20)
    took = time.monotonic() - t0
    assert_waiting_503(r, req)
    # Before any answer would be a 503 at once; waiting for the program would take 9 s.
    assert 4.0 <= took <= 8.0, f"503 {took:.1f}s after start: want accepting at 5 s"
    r, req = wait_for_status(p, stub, 200, timeout_s=10)
    assert_signed_with(r, req, first_issued(fake, timeout=1))
    assert len(fake.runs()) == 1, "the slow program was started again while it ran"


# -- refresh ----------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 4])
def test_one_run_per_refresh_whatever_the_workers(start_proxy, stub, tmp_path, fake_process,
                                                  workers):
    fake = fake_process(then=P.Issue(lifetime_s=8))
    p = start_process(start_proxy, stub, tmp_path, fake, C.FLAG_WORKERS, str(workers))
    first = first_issued(fake)
    for _ in range(2 * workers):  # separate connections: spread over the workers
        assert_signed_with(*data_request(p, stub), first)
    runs = fake.wait_issued(2, timeout=10)
    assert len(runs) >= 2, "no run within 10 s for credentials that expire after 8 s"
    second = runs[1].issued
    # By now sigv4d holds client and pooled upstream connections: none may reach the program
    # (a leaked socket would keep a connection open for as long as the program runs).
    assert runs[1].fds == [], f"the refresh run inherited descriptors {runs[1].fds}"
    gap = second.mono - first.mono
    # Lifetime 8 s (7-8 with a whole-second Expiration): Expiration - lifetime/2.
    assert 2.5 <= gap <= 6.5, f"run again {gap:.1f}s after the first answer, want about 4 s"
    time.sleep(0.5)  # sigv4d installs the answer after the program printed it
    for _ in range(2 * workers):
        assert_signed_with(*data_request(p, stub), second)
    time.sleep(max(0.0, second.mono + 2.0 - time.monotonic()))
    n = len(fake.runs())
    assert n == 2, f"{n} runs with --workers {workers}: want one per refresh"


def test_without_expiration_the_program_never_runs_again(start_proxy, stub, tmp_path,
                                                         fake_process):
    fake = fake_process(then=P.Issue(lifetime_s=None))
    p = start_process(start_proxy, stub, tmp_path, fake, C.FLAG_WORKERS, "2")
    issued = first_issued(fake)
    assert issued.expiration is None
    assert_signed_with(*data_request(p, stub), issued)
    time.sleep(6.0)
    assert_signed_with(*data_request(p, stub), issued)
    assert len(fake.runs()) == 1, "credentials without Expiration were fetched again"


def test_valid_credentials_stay_in_use_while_the_refresh_fails(start_proxy, stub, tmp_path,
                                                               fake_process):
    fake = fake_process([P.Issue(lifetime_s=8)], then=P.Exit(2))
    p = start_process(start_proxy, stub, tmp_path, fake)
    first = first_issued(fake)
    runs = fake.wait_runs(2, timeout=8)
    assert len(runs) >= 2 and runs[1].at < first.expiration, "no refresh before expiry"
    time.sleep(0.3)
    assert time.time() < first.expiration - 0.5, "too slow to check the still valid keys"
    assert_signed_with(*data_request(p, stub), first)  # the refresh failed: keys still valid
    assert failure_lines(p, "exited with status 2"), "the failed refresh was not logged"
    time.sleep(max(0.0, first.expiration - time.time()) + 0.5)
    assert_no_credentials(*data_request(p, stub))
    assert p.alive()


# -- failures -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(FAILURES))
def test_failure_gives_503_then_a_retry_succeeds(start_proxy, stub, tmp_path, fake_process,
                                                 kind):
    step, says, logged = FAILURES[kind]
    fake = fake_process([step])
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = data_request(p, stub)
    assert_no_credentials(r, req, says)  # the retry comes 1 s later
    assert BAD_SECRET.encode() not in r.body
    r, req = wait_for_status(p, stub, 200, timeout_s=10)
    runs = fake.runs()
    assert len(runs) == 2 and runs[1].issued, f"want one failed run and one retry: {runs}"
    assert_signed_with(r, req, runs[1].issued)
    assert 0.6 <= runs[1].mono - runs[0].mono <= 4, "retry about 1 s later"
    if logged:
        assert len(failure_lines(p, logged)) == 1, f"want one line with {logged!r}"
    if kind == "killed":
        lines = [ln for ln in p.output().splitlines() if "signal" in ln.lower() or "SIGKILL" in ln]
        assert lines, "the program killed by a signal was not logged"
    assert BAD_SECRET not in p.output(), "a secret of the refused output reached the log"


def test_failing_program_is_retried_after_1_2_4_s(start_proxy, stub, tmp_path, fake_process):
    fake = fake_process([P.Exit(1), P.Exit(1), P.Exit(1)])
    p = start_process(start_proxy, stub, tmp_path, fake)
    assert_no_credentials(*data_request(p, stub))
    issued = fake.wait_issued(1, timeout=15)
    assert issued, f"no successful run after 3 failures: {len(fake.runs())} runs"
    monos = [r.mono for r in fake.runs()[:4]]
    gaps = [b - a for a, b in zip(monos, monos[1:])]
    assert len(gaps) == 3, gaps
    for got, want in zip(gaps, (1, 2, 4)):
        assert want * 0.7 <= got <= want * 1.5 + 0.7, f"retry gaps {gaps}, want about 1, 2, 4 s"
    time.sleep(0.5)
    assert_signed_with(*data_request(p, stub), issued[0].issued)
    lines = failure_lines(p, "exited with status 1")
    assert len(lines) == 3, f"want one log line per failed run (3), got {lines}"
    assert p.alive()


CANNOT_RUN = {
    "missing file": lambda d: str(d / "no-such-dir" / "get-creds-xyz"),
    "not on PATH": lambda d: "sigv4d-no-such-credproc-xyz",
    "not executable": lambda d: str(d / "get-creds-noexec"),
}


@pytest.mark.parametrize("kind", list(CANNOT_RUN))
def test_program_that_cannot_be_started_gives_503(start_proxy, stub, tmp_path, fake_process,
                                                  kind):
    fake = fake_process()
    program = CANNOT_RUN[kind](tmp_path)
    if kind == "not executable":
        with open(program, "w") as f:
            f.write("#!/bin/sh\necho nope\n")
        os.chmod(program, 0o644)
    # The argument stands for a secret on the command line: it is never logged.
    command = f"{program} --token-s3cr3t-value"
    p = start_process(start_proxy, stub, tmp_path, fake, command=command)
    assert_no_credentials(*data_request(p, stub))
    time.sleep(3.5)  # first attempt, retries 1 s and 2 s later
    lines = failure_lines(p, "cannot run", os.path.basename(program))
    assert len(lines) >= 2, f"want a 'cannot run' line per attempt naming the program: {lines}"
    assert_no_credentials(*data_request(p, stub))
    assert "s3cr3t" not in p.output(), "the program's arguments reached the log"
    assert fake.runs() == [] and p.alive()


def test_no_output_within_20s_kills_the_program(start_proxy, stub, tmp_path, fake_process):
    fake = fake_process([P.Hang(limit_s=60)])
    p = start_process(start_proxy, stub, tmp_path, fake)
    run = first_run(fake)
    assert_waiting_503(*data_request(p, stub))
    time.sleep(max(0.0, run.mono + 19.0 - time.monotonic()))
    assert not run.gone(), "the program was stopped before 20 s"
    r, req = wait_for_status(p, stub, 200, timeout_s=8)
    runs = fake.runs()
    assert run.gone(), "the program that printed nothing for 20 s is still running"
    assert all(e["how"] != "hang over" for e in runs[0].ends)
    assert len(runs) == 2 and runs[1].issued, runs
    assert 20.0 <= runs[1].mono - run.mono <= 24.0, "not run again about 1 s after the kill"
    assert_signed_with(r, req, runs[1].issued)
    assert len(failure_lines(p, "within 20 s")) == 1, "the timeout was not logged once"


@pytest.mark.parametrize("size,ok", [(64 * 1024, True), (64 * 1024 + 1, False),
                                     (100 * 1024, False)])
def test_output_size_limit(start_proxy, stub, tmp_path, fake_process, size, ok):
    # Valid JSON padded with spaces to `size` bytes: up to 64 KiB it is read, past that it
    # is refused and its keys are never used.
    fake = fake_process(then=P.Issue(size=size))
    p = start_process(start_proxy, stub, tmp_path, fake)
    r, req = data_request(p, stub)
    run = first_run(fake)
    if ok:
        assert_signed_with(r, req, run.issued)
    else:
        assert_no_credentials(r, req)
    assert p.alive()


@pytest.mark.parametrize("line", ["/usr/bin/get-creds --key 'hunter2 s3cr3t",
                                  '/usr/bin/get-creds --key "hunter2 s3cr3t'])
def test_unterminated_quote_stops_start_up(sigv4d_bin, tmp_path, fake_process, line):
    env = proxy_env(tmp_path, creds=None, extra=profile_env(tmp_path, line))
    r = subprocess.run([sigv4d_bin, "--port", f"127.0.0.1:{free_port()}"], capture_output=True,
                       text=True, timeout=20, env=env)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line, got: {r.stdout + r.stderr}"
    assert PROFILE in lines[0] and "credential_process" in lines[0], lines[0]
    for part in ("s3cr3t", "get-creds", "hunter2"):
        assert part not in lines[0], f"the command line is echoed: {lines[0]}"


# -- secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("verbosity", [["-v"], ["-v", "-v"]])
def test_no_secret_in_the_output(start_proxy, stub, tmp_path, fake_process, verbosity):
    # A failure, then short-lived credentials so a refresh happens too: every path logs.
    fake = fake_process([P.Exit(1, stderr="credproc: first run fails\n")],
                        then=P.Issue(lifetime_s=6))
    p = start_process(start_proxy, stub, tmp_path, fake, *verbosity)
    assert_no_credentials(*data_request(p, stub))  # the retry comes 1 s later
    runs = fake.wait_issued(2, timeout=12)
    assert len(runs) == 2, "want an answer and a refresh"
    time.sleep(0.5)
    assert_signed_with(*data_request(p, stub), runs[1].issued)
    out = p.output()
    assert out.strip(), "verbose sigv4d wrote nothing: the check below would prove nothing"
    leaked = [name for name, value in fake.secrets_issued() if value in out]
    assert not leaked, f"sigv4d output contains {leaked}"
    # The teardown (conftest) checks the same through stub.more_secrets, and the signatures.
