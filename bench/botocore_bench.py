#!/usr/bin/python3
"""botocore_bench.py: botocore's SigV4 signing speed for the requests bench/sig_bench.c signs.

Signs with botocore's own SigV4Auth / S3SigV4Auth.add_auth, the code every boto3 and AWS CLI
request goes through, at a fixed time (botocore reads the clock through its module's
`datetime`, which is replaced by one that always answers that time), and prints one
parseable line per request with signatures per second and the signature, so that
run-sig-bench.sh can check both implementations agree.
Run with Debian's /usr/bin/python3 (python3-botocore).
"""
import datetime
import sys
import time
import types

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# The same 600-byte session token as sig_bench.c's make_session_token().
SESSION_TOKEN = "".join(B64[(i * 7 + 3) % 64] for i in range(600))
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

S3_PUT_HEADERS = [
    ("Host", "my-bucket.s3.us-west-2.amazonaws.com"),
    ("Content-Type", "image/jpeg"),
    ("Content-Length", "1048576"),
    ("Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="),
    ("Cache-Control", "max-age=86400, public"),
    ("Content-Disposition", 'attachment; filename="IMG_0001.jpg"'),
    ("x-amz-acl", "bucket-owner-full-control"),
    ("x-amz-storage-class", "STANDARD_IA"),
    ("x-amz-server-side-encryption", "aws:kms"),
    ("x-amz-server-side-encryption-aws-kms-key-id",
     "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("x-amz-meta-camera", "Pixel 8 Pro"),
    ("x-amz-tagging", "project=sigv4d&env=bench"),
]


def freeze_clock(when):
    class FixedDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

    botocore.auth.datetime = types.SimpleNamespace(datetime=FixedDatetime)


def get_vanilla():
    auth = botocore.auth.SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "service", "us-east-1")

    def make():
        return AWSRequest(method="GET", url="https://example.amazonaws.com/",
                          headers={"Host": "example.amazonaws.com"})

    return auth, make, datetime.datetime(2015, 8, 30, 12, 36, 0)


def s3_put():
    auth = botocore.auth.S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "s3",
                                     "us-west-2")
    # UNSIGNED-PAYLOAD, as sigv4d signs this request: S3 over TLS with payload signing off.
    config = Config(s3={"payload_signing_enabled": False})

    def make():
        req = AWSRequest(method="PUT",
                         url="https://my-bucket.s3.us-west-2.amazonaws.com/photos/2024/11/IMG_0001.jpg",
                         headers=dict(S3_PUT_HEADERS))
        req.context["client_config"] = config
        return req

    return auth, make, datetime.datetime(2024, 11, 29, 0, 0, 0)


def signature_of(req):
    return req.headers["Authorization"].rsplit("Signature=", 1)[1]


def bench(name, setup, rounds=10, round_s=0.15):
    auth, make, when = setup()
    freeze_clock(when)
    req = make()
    auth.add_auth(req)
    sig = signature_of(req)
    # Request construction is outside the timing: only add_auth is measured. A fresh request
    # per signature, because add_auth adds headers to the one it signs.
    per_sig = []
    n = 200
    for _ in range(rounds):
        reqs = [make() for _ in range(n)]
        t0 = time.perf_counter()
        for r in reqs:
            auth.add_auth(r)
        dt = time.perf_counter() - t0
        per_sig.append(dt / n)
        n = max(50, int(n * round_s / dt))
    # The fastest round, as sig_bench reports: the closest to the cost on an idle core.
    ns = min(per_sig) * 1e9
    print(f"{name:<18} {ns:10.0f} {1e9 / ns:12.0f}")
    print(f"result\tbotocore\t{name}\t{1e9 / ns:.0f}\t{ns:.1f}\t{sig}")
    sys.stdout.flush()


def main():
    import botocore
    print(f"botocore_bench: botocore {botocore.__version__} add_auth, Python {sys.version.split()[0]}")
    print(f"{'request':<18} {'ns/sig':>10} {'sigs/s':>12}")
    bench("get-vanilla", get_vanilla)
    bench("s3-put-12-headers", s3_put)


if __name__ == "__main__":
    main()
