"""Credentials and region from the AWS shared config and credentials files (issue 3's region
fallback: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1; the profile's
static keys when the environment has none). The stub upstream re-verifies every signature
with botocore, so a request that arrives verified was signed with the profile's keys."""
import os
import subprocess

from sv4h import config as C
from sv4h.client import via

CUSTOM_HOST = "api.example.test"  # no region in the name: the fallback region applies


def write_files(tmp_path, config, credentials):
    d = tmp_path / "aws"
    d.mkdir(exist_ok=True)
    (d / "config").write_text(config)
    (d / "credentials").write_text(credentials)
    return {"AWS_CONFIG_FILE": str(d / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(d / "credentials")}


def start_custom(start_proxy, env, *flags):
    """sigv4d with no AWS_* variables but `env`, in front of a host that names no region."""
    return start_proxy(C.FLAG_ALLOW_HOST, CUSTOM_HOST, C.FLAG_NAME, "execute-api",
                       C.FLAG_VERBOSE, *flags, upstreams=(CUSTOM_HOST,), creds=None, env=env)


def signed_by(stub, p):
    r = via(p, "POST", "/v1/thing", host=CUSTOM_HOST, body=b'{"a":1}')
    assert r.status == 200, r.text
    req = stub.assert_all_verified(1)[-1]
    return req.auth.akid, req.auth.region, req.headers


CONFIG = ("[default]\nregion = us-west-1\n"
          "[profile dev]\n# the region comes from the config file\nregion = eu-west-3 # Paris\n"
          "s3 =\n  addressing_style = path\n")
CREDENTIALS = (f"[default]\naws_access_key_id = {C.AKID}\naws_secret_access_key = {C.SECRET}\n"
               f"[dev]\nAWS_ACCESS_KEY_ID = {C.TOKEN_AKID}\n"
               f"aws_secret_access_key = {C.TOKEN_SECRET}\naws_session_token = {C.TOKEN}\n")


def test_profile_keys_and_region_are_used(start_proxy, stub, tmp_path):
    env = write_files(tmp_path, CONFIG, CREDENTIALS)
    env["AWS_PROFILE"] = "dev"
    p = start_custom(start_proxy, env)
    akid, region, headers = signed_by(stub, p)
    assert (akid, region) == (C.TOKEN_AKID, "eu-west-3")
    assert dict((k.lower(), v) for k, v in headers).get("x-amz-security-token") == C.TOKEN
    out = p.output()
    assert "credentials from profile dev" in out and "..." + C.TOKEN_AKID[-4:] in out
    assert C.TOKEN_AKID not in out  # the key id only redacted


def test_default_profile_from_the_default_locations(start_proxy, stub, tmp_path):
    # No AWS_PROFILE: "default". The files are found through "~" (HOME) in the variables.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "cfg").write_text(CONFIG)
    (home / "creds").write_text(CREDENTIALS)
    p = start_custom(start_proxy, {"AWS_CONFIG_FILE": "~/cfg",
                                   "AWS_SHARED_CREDENTIALS_FILE": "~/creds"})
    assert signed_by(stub, p)[:2] == (C.AKID, "us-west-1")


def test_environment_comes_before_the_profile(start_proxy, stub, tmp_path):
    env = write_files(tmp_path, CONFIG, CREDENTIALS)
    env.update(AWS_PROFILE="dev", AWS_DEFAULT_REGION="ap-south-1",
               AWS_ACCESS_KEY_ID=C.AKID, AWS_SECRET_ACCESS_KEY=C.SECRET)
    p = start_custom(start_proxy, env)
    assert signed_by(stub, p)[:2] == (C.AKID, "ap-south-1")
    assert "credentials from the environment" in p.output()


def test_profile_region_with_environment_keys(start_proxy, stub, tmp_path):
    # Keys in the environment, no region there: the region still comes from the profile.
    env = write_files(tmp_path, CONFIG, "")
    env.update(AWS_PROFILE="dev", AWS_ACCESS_KEY_ID=C.AKID, AWS_SECRET_ACCESS_KEY=C.SECRET)
    p = start_custom(start_proxy, env)
    assert signed_by(stub, p)[:2] == (C.AKID, "eu-west-3")


def test_no_region_anywhere_is_us_east_1(start_proxy, stub, tmp_path):
    env = write_files(tmp_path, "[profile dev]\noutput = json\n", CREDENTIALS)
    env["AWS_PROFILE"] = "dev"
    p = start_custom(start_proxy, env)
    assert signed_by(stub, p)[:2] == (C.TOKEN_AKID, "us-east-1")


def test_profile_without_keys_serves_503(start_proxy, stub, tmp_path):
    env = write_files(tmp_path, "[default]\nregion = us-west-2\n", "")
    p = start_custom(start_proxy, env)
    r = via(p, "POST", "/v1/thing", host=CUSTOM_HOST, body=b"{}")
    assert r.status == 503 and b"credential" in r.body.lower(), r
    assert stub.requests == []


# -- start-up refuses what it cannot use, in one line --------------------------------------------

def run_sigv4d(sigv4d_bin, tmp_path, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "HOME"}
    env["HOME"] = str(tmp_path)
    env.update(env_extra)
    return subprocess.run([sigv4d_bin, "--port", "127.0.0.1:1"], capture_output=True, text=True,
                          timeout=20, env=env)


def assert_one_line_exit(r, *fragments, absent=()):
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    for a in absent:
        assert a not in r.stderr


def test_chained_role_profile_stops_start_up(sigv4d_bin, tmp_path):
    # Profile roles are assumed (test_proxy_role.py); a role whose source assumes a role too
    # is not supported yet, and says so instead of signing with the wrong identity.
    env = write_files(tmp_path, "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/x\n"
                                "source_profile = q\n[profile q]\n"
                                "role_arn = arn:aws:iam::123456789012:role/q\n"
                                "source_profile = default\n", CREDENTIALS)
    env["AWS_PROFILE"] = "r"
    r = run_sigv4d(sigv4d_bin, tmp_path, env)
    assert_one_line_exit(r, "profile r", "chained roles are not supported yet",
                         absent=(C.SECRET,))


def test_role_profile_without_a_source_stops_start_up(sigv4d_bin, tmp_path):
    env = write_files(tmp_path, "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/x\n",
                      CREDENTIALS)
    env["AWS_PROFILE"] = "r"
    r = run_sigv4d(sigv4d_bin, tmp_path, env)
    assert_one_line_exit(r, "profile r", "source_profile", "credential_source",
                         absent=(C.SECRET,))


def test_unknown_AWS_PROFILE_stops_start_up(sigv4d_bin, tmp_path):
    env = write_files(tmp_path, CONFIG, CREDENTIALS)
    env["AWS_PROFILE"] = "nope"
    r = run_sigv4d(sigv4d_bin, tmp_path, env)
    assert_one_line_exit(r, "profile nope", "AWS_PROFILE")


def test_key_without_secret_stops_start_up(sigv4d_bin, tmp_path):
    env = write_files(tmp_path, "", f"[default]\naws_access_key_id = {C.AKID}\n")
    r = run_sigv4d(sigv4d_bin, tmp_path, env)
    assert_one_line_exit(r, "profile default", "aws_secret_access_key", absent=(C.AKID,))


def test_malformed_file_names_file_and_line_never_the_value(sigv4d_bin, tmp_path):
    env = write_files(tmp_path, "", f"[default]\naws_access_key_id = {C.AKID}\n{C.SECRET}\n")
    r = run_sigv4d(sigv4d_bin, tmp_path, env)
    assert_one_line_exit(r, env["AWS_SHARED_CREDENTIALS_FILE"] + " line 3:",
                         absent=(C.SECRET, C.AKID))
