"""Differential test: providers/profile.c (through tests/tools/prof_dump) against botocore's
configloader, on the same config and credentials files.

What botocore sees is built the way botocore.session.Session.full_config builds it: the
config file through configloader.load_config, then each section of the credentials file
(configloader.raw_config_parse) merged into the profile of the same name, key by key, the
credentials file winning. Nested values ("s3 =" plus indented lines) are flattened to
"s3" (empty) and "s3.KEY", which is how prof_get names them.

Three groups:
  - AGREE: hand-written tricky files on which both must give exactly the same profiles,
    keys and values;
  - generated files (seeded; SIGV4D_DIFF_SEED replays, SIGV4D_PROFILE_DIFF_COUNT sizes it)
    built only from constructs both parsers define the same way;
  - DIVERGE: the known places where sigv4d follows the SDKs' shared file format (the AWS SDKs
    and Tools Reference Guide, and the cross-SDK parser test suite) rather than Python's
    configparser. Each case asserts both sides' actual answers, so a change in either one
    shows up here.
"""
import os
import random
import re
import shlex
import subprocess

import pytest
from botocore import configloader
from botocore.exceptions import ConfigParseError

PROF_DUMP = os.environ.get("PROF_DUMP", "")


def unescape(field):
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 1 < len(field):
            out.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[field[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def ours(config_path, creds_path, names=()):
    """{(kind, name, key): value} and {name: bool} from prof_dump, or ("error", message)."""
    assert PROF_DUMP and os.access(PROF_DUMP, os.X_OK), "set PROF_DUMP to tests/tools/prof_dump"
    r = subprocess.run([PROF_DUMP, config_path, creds_path, *names], capture_output=True,
                       timeout=30)
    lines = r.stdout.decode("utf-8", "surrogateescape").splitlines()
    if r.returncode == 1 and lines and lines[0].startswith("E\t"):
        return "error", lines[0]
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    props, has = {}, {}
    for line in lines:
        f = line.split("\t")
        if f[0] == "P":
            key = (f[1], unescape(f[2]), unescape(f[3]))
            assert key not in props, f"prof_dump reported {key} twice"
            props[key] = unescape(f[4])
        elif f[0] == "H":
            has[unescape(f[1])] = f[2] == "1"
        else:
            raise AssertionError(line)
    return props, has


def flatten(kind, name, values, out):
    for key, value in values.items():
        if isinstance(value, dict):
            out[(kind, name, key)] = ""
            for sub, v in value.items():
                out[(kind, name, f"{key}.{sub}")] = v
        else:
            out[(kind, name, key)] = value


def botocores(config_path, creds_path):
    """The same view from botocore, or ("error", message)."""
    try:
        if os.path.isfile(config_path):
            cfg = configloader.load_config(config_path)
        else:
            cfg = {"profiles": {}, "sso_sessions": {}}
        profiles = cfg["profiles"]
        if os.path.isfile(creds_path):
            for name, values in configloader.raw_config_parse(creds_path).items():
                profiles.setdefault(name, {}).update(values)
    except ConfigParseError as e:
        return "error", str(e)
    props = {}
    for name, values in profiles.items():
        flatten("profile", name, values, props)
    for name, values in cfg.get("sso_sessions", {}).items():
        flatten("sso-session", name, values, props)
    # This botocore keeps [services NAME] as a top-level section, not yet split out the way
    # it splits [sso-session NAME]: take the name the same way (shlex, two parts).
    for section, values in cfg.items():
        if isinstance(section, str) and section.startswith("services"):
            parts = shlex.split(section)
            if len(parts) == 2 and parts[0] == "services":
                flatten("services", parts[1], values, props)
    return props, set(profiles)


def candidate_names(*texts):
    """Every name-like word in the section headers, to ask prof_has_profile about."""
    names = {"default", "nope"}
    for text in texts:
        for header in re.findall(r"^\s*\[([^\]\n]*)", text, re.M):
            names.update(header.split())
            names.add(header.strip())
    return sorted(n for n in names if n)


def write(tmp_path, config, creds):
    c, k = tmp_path / "config", tmp_path / "credentials"
    if config is not None:
        c.write_bytes(config.encode())
    if creds is not None:
        k.write_bytes(creds.encode())
    return str(c), str(k)


def compare(tmp_path, config, creds):
    c, k = write(tmp_path, config, creds)
    mine = ours(c, k, candidate_names(config or "", creds or ""))
    theirs = botocores(c, k)
    if theirs[0] == "error" or mine[0] == "error":
        assert mine[0] == theirs[0] == "error", (mine, theirs)
        return
    props, has = mine
    bprops, bprofiles = theirs
    assert props == bprops
    for name, present in has.items():
        assert present == (name in bprofiles), name


AGREE = {
    "empty": ("", ""),
    "no files": (None, None),
    "basic": ("[default]\nregion = us-west-2\noutput = json\n",
              "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalr/K7+x=\n"),
    "profiles and ignored sections": (
        "[profile dev]\nregion=eu-west-1\n[plain]\nx = 1\n[profilefoo]\ny = 2\n"
        "[profile two words]\nz = 3\n[profile  spaced]\nw = 4\n[profile\ttab]\nv = 5\n", ""),
    "credentials file wins key by key": (
        "[profile dev]\naws_access_key_id = CFG\nregion = eu-west-1\n",
        "[dev]\naws_access_key_id = CREDS\naws_secret_access_key = S\n"),
    "keys are case-insensitive": ("[default]\nRegion = us-east-2\nAWS_ACCESS_KEY_ID = AK\n", ""),
    "comment lines": ("# a\n; b\n[default]\n# c\n   ; indented\nregion = r1\n\t# tab\n", ""),
    "comments after section headers": ("[default] # x\na = 1\n[profile p]; y\nb = 2\n", ""),
    "adjacent comment characters stay in values": ("[default]\na = v#1\nb = v;2\nc=#x\n", ""),
    "whitespace and equals": ("[default]\nname \t=  \tvalue \t\nb64=aGk=\nurl = a=b=c\nempty =\n",
                              ""),
    "continuations": ("[default]\na = value\n -continued\n\t-more  \n   # comment\n  last # kept\n",
                      ""),
    "sub-properties": ("[default]\ns3 =\n  addressing_style = path\n  Max_Concurrent = 4\n"
                       "\n  odd = a = b # kept\nregion = us-west-2\n", ""),
    "sso-session and services": (
        "[sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://x/start\n"
        "[services api]\ns3 =\n  endpoint_url = http://localhost:9000\n"
        "[profile p]\nsso_session = corp\nservices = api\n", ""),
    "crlf": ("[default]\r\nregion = us-west-1\r\na = 1\r\n  b\r\n", "[default]\r\nk = v\r\n"),
    "property before any section": ("region = x\n[default]\n", ""),
    "sub-property without equals": ("[default]\ns3 =\n  broken\n", ""),
    "credentials file error": ("", "stray line\n"),
    "unterminated header is an error": ("[profile p\na = 1\n", ""),
}


@pytest.mark.parametrize("name", sorted(AGREE))
def test_agrees_with_botocore(tmp_path, name):
    config, creds = AGREE[name]
    compare(tmp_path, config, creds)


# -- generated files ---------------------------------------------------------------------------

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@"
VALUE_CHARS = NAME_CHARS + "/+=:#;,!$%&*()?~"


def word(rng, chars=NAME_CHARS, lo=1, hi=12):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def value(rng):
    v = word(rng, VALUE_CHARS, 0, 30)
    # No blank before '#' or ';' (an inline comment for the SDKs, text for configparser),
    # and no leading comment character (configparser would see a comment line).
    v = re.sub(r"[ \t]+(?=[#;])", "", v)
    return v.lstrip("#;")


def blank(rng):
    return rng.choice(["", " ", "  ", "\t", " \t"])


def gen_section_body(rng, lines):
    for key in rng.sample(["region", "aws_access_key_id", "aws_secret_access_key",
                           "aws_session_token", "output", "s3", "role_arn", "x"],
                          rng.randint(0, 6)):
        key = "".join(c.upper() if rng.random() < 0.2 else c for c in key)
        if rng.random() < 0.3:  # comment or blank lines between properties
            lines.append(rng.choice(["# c", "; c", blank(rng), "  # indented"]))
        if rng.random() < 0.2:  # sub-properties
            lines.append(f"{key}{blank(rng)}={blank(rng)}")
            for sub in rng.sample(["addressing_style", "Max_Concurrent", "endpoint_url", "y"],
                                  rng.randint(1, 3)):
                lines.append(f"{blank(rng) or ' '}{sub}{blank(rng)}={blank(rng)}{value(rng)}")
                if rng.random() < 0.2:
                    lines.append(rng.choice(["", "  # c"]))
            continue
        v = value(rng) or "v"
        lines.append(f"{key}{blank(rng)}={blank(rng)}{v}{blank(rng)}")
        for _ in range(rng.choice([0, 0, 0, 1, 2])):  # continuation lines
            indent = rng.choice([" ", "  ", "\t"])
            lines.append(f"{indent}{value(rng) or 'c'}{blank(rng)}")


def gen_file(rng, credentials):
    lines = []
    used = set()
    for _ in range(rng.randint(0, 5)):
        name = word(rng)
        if name in used or name.lower() == "default" or name == "DEFAULT":
            continue
        used.add(name)
        if credentials:
            header = f"[{name}]"
        else:
            header = rng.choice([f"[profile {name}]", f"[profile  {name}]", f"[sso-session {name}]",
                                 f"[services {name}]", f"[{name}]", f"[profile\t{name}]"])
        if rng.random() < 0.2:
            header += rng.choice([" # c", "; c", "#c"])
        lines.append(header)
        gen_section_body(rng, lines)
    if rng.random() < 0.5 and "default" not in used:
        lines.insert(0, "[default]")
    nl = "\r\n" if rng.random() < 0.2 else "\n"
    return nl.join(lines) + (nl if rng.random() < 0.7 else "")


def test_generated_files_agree_with_botocore(tmp_path):
    seed = int(os.environ.get("SIGV4D_DIFF_SEED") or random.SystemRandom().randrange(1 << 32))
    count = int(os.environ.get("SIGV4D_PROFILE_DIFF_COUNT", "150"))
    rng = random.Random(seed)
    for i in range(count):
        config, creds = gen_file(rng, False), gen_file(rng, True)
        try:
            compare(tmp_path, config, creds)
        except AssertionError as e:
            raise AssertionError(f"case {i} (replay with SIGV4D_DIFF_SEED={seed}):\n"
                                 f"config:\n{config!r}\ncredentials:\n{creds!r}\n{e}") from None


# -- known divergences -----------------------------------------------------------------------------

DIVERGE = {
    # name: (config, creds, key, ours, botocore's); "error" means the load fails.
    "inline comment after a blank (SDK rule; configparser keeps it)": (
        "[default]\nregion = us-west-2 # comment\n", "", ("profile", "default", "region"),
        "us-west-2", "us-west-2 # comment"),
    "a value that starts with '#' after a blank is a comment (configparser keeps it)": (
        "[default]\nc = #x\n", "", ("profile", "default", "c"), "", "#x"),
    "duplicate key in a section: last wins (configparser: error)": (
        "[default]\na = 1\na = 2\n", "", ("profile", "default", "a"), "2", "error"),
    "duplicate section in a file: merged (configparser: error)": (
        "[default]\na = 1\n[default]\nb = 2\n", "", ("profile", "default", "b"), "2", "error"),
    "':' is not a delimiter (configparser accepts key: value)": (
        "[default]\na: 1\n", "", ("profile", "default", "a"), "error", "1"),
    "blank line inside a continuation is skipped (configparser keeps it)": (
        "[default]\na = x\n\n  y\n", "", ("profile", "default", "a"), "x\ny", "x\n\ny"),
    "[profile default] beats [default] (configparser: the later section)": (
        "[profile default]\na = 1\n[default]\na = 2\n", "", ("profile", "default", "a"), "1",
        "2"),
    "blanks inside the brackets are trimmed (configparser: not a profile)": (
        "[ profile p ]\na = 1\n", "", ("profile", "p", "a"), "1", None),
    "[profile NAME] in the credentials file is ignored (botocore: a profile 'profile NAME')": (
        "", "[profile p]\na = 1\n", ("profile", "profile p", "a"), None, "1"),
    "a key with a blank is ignored (configparser keeps it)": (
        "[default]\nin valid = 1\n", "", ("profile", "default", "in valid"), None, "1"),
}


@pytest.mark.parametrize("name", sorted(DIVERGE))
def test_known_divergences_from_botocore(tmp_path, name):
    config, creds, key, want_ours, want_botocore = DIVERGE[name]
    c, k = write(tmp_path, config, creds)
    for got, want in ((ours(c, k), want_ours), (botocores(c, k), want_botocore)):
        if want == "error":
            assert got[0] == "error", got
        else:
            assert got[0] != "error", got
            assert got[0].get(key) == want, got[0]
