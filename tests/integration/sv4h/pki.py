"""A throw-away PKI for one test session, made with the openssl CLI.

Python's ssl module can use certificates but cannot make them, so the CA and the
upstream server certificate are generated with `openssl` into a temporary directory.
"""
import os
import subprocess
from dataclasses import dataclass

# Names the stub answers for. Wildcards match exactly one label (RFC 6125), so each
# endpoint shape used by the tests is listed; 127.0.0.1 lets clients talk to the stub
# directly in the harness self-tests.
UPSTREAM_NAMES = (
    "s3.us-east-1.amazonaws.com",
    "*.s3.us-east-1.amazonaws.com",
    "s3.amazonaws.com",
    "*.s3.amazonaws.com",
    "s3.eu-central-1.amazonaws.com",
    "*.s3.eu-central-1.amazonaws.com",
    "s3.dualstack.us-west-2.amazonaws.com",
    "s3.cn-north-1.amazonaws.com.cn",
    "*.amazonaws.com",
    "*.execute-api.us-east-1.amazonaws.com",
    "*.execute-api.eu-west-1.amazonaws.com",
    "*.lambda-url.us-west-2.on.aws",
    "*.us-east-1.es.amazonaws.com",
    "*.eu-west-1.es.amazonaws.com",
    "runtime.sagemaker.us-east-1.amazonaws.com",
    "aps-workspaces.us-east-1.amazonaws.com",
    # STS's regional endpoints (one label too deep for *.amazonaws.com), for --role-arn.
    "sts.us-east-1.amazonaws.com",
    "sts.eu-central-1.amazonaws.com",
    "example.com",
    "api.example.test",
)
# Deliberately NOT covered (one label too deep for *.amazonaws.com), for the
# certificate-name-mismatch test.
UNCOVERED_NAME = "ec2.eu-west-3.amazonaws.com"


@dataclass
class Pki:
    directory: str
    ca_file: str
    cert_file: str
    key_file: str
    other_ca_file: str  # a second CA that signed nothing the stub presents


def _run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")


def _make_ca(directory, stem, cn):
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.pem", "-days", "3",
          "-subj", f"/CN={cn}",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)


def make_pki(directory):
    """Create a CA and a server certificate for UPSTREAM_NAMES in `directory`."""
    os.makedirs(directory, exist_ok=True)
    _make_ca(directory, "ca", "sigv4d integration test CA")
    _make_ca(directory, "other-ca", "sigv4d unrelated test CA")
    _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-keyout", "server.key", "-out", "server.csr",
          "-subj", f"/CN={UPSTREAM_NAMES[0]}"], directory)
    san = ",".join([f"DNS:{n}" for n in UPSTREAM_NAMES] + ["IP:127.0.0.1"])
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "server.pem", "-days", "3", "-extfile", "server.ext"],
         directory)
    j = lambda n: os.path.join(directory, n)  # noqa: E731
    return Pki(directory, j("ca.pem"), j("server.pem"), j("server.key"), j("other-ca.pem"))
