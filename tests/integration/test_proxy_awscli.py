"""Debian's AWS CLI (/usr/bin/aws) talks unsigned plain HTTP to sigv4d, which signs for
S3: cp (single and multipart upload, ranged download), ls, rm and s3api put-object."""
import pytest

from sv4h import config as C
from sv4h import data


@pytest.fixture
def s3proxy(start_proxy):
    # The CLI addresses the proxy as 127.0.0.1:PORT (path-style), so the upstream is fixed.
    return start_proxy(C.FLAG_HOST, C.S3_HOST, C.FLAG_REGION, "us-east-1")


def cli_args(proxy):
    return ["--endpoint-url", proxy.url, "--no-sign-request"]


def test_cli_cp_ls_rm_with_multipart(s3proxy, stub, aws_cli, tmp_path):
    big = data.write_file(str(tmp_path / "big.bin"), 12 * C.MiB + 321, seed=51)
    small = data.write_file(str(tmp_path / "small.bin"), 70_000, seed=52)
    base = cli_args(s3proxy)

    r = aws_cli(*base, "s3", "cp", big, f"s3://{C.BUCKET}/data/big.bin")
    assert r.returncode == 0, r.stderr
    ops = [op for op, _, key in stub.store.ops if key == "data/big.bin"]
    assert ops.count("UploadPart") == 3, ops  # 5 MiB parts: multipart really happened
    assert "CreateMultipartUpload" in ops and "CompleteMultipartUpload" in ops
    assert stub.store.object(C.BUCKET, "data/big.bin").sha256 == data.file_sha256(big)

    r = aws_cli(*base, "s3", "cp", small, f"s3://{C.BUCKET}/data/small.bin")
    assert r.returncode == 0, r.stderr
    r = aws_cli(*base, "s3api", "put-object", "--bucket", C.BUCKET, "--key", "api/put.bin",
                "--body", small)
    assert r.returncode == 0, r.stderr
    assert '"ETag"' in r.stdout
    for key in ("data/small.bin", "api/put.bin"):
        assert stub.store.object(C.BUCKET, key).sha256 == data.file_sha256(small)

    r = aws_cli(*base, "s3", "ls", f"s3://{C.BUCKET}/data/")
    assert r.returncode == 0, r.stderr
    assert "big.bin" in r.stdout and "small.bin" in r.stdout
    assert str(12 * C.MiB + 321) in r.stdout

    back = str(tmp_path / "back.bin")
    r = aws_cli(*base, "s3", "cp", f"s3://{C.BUCKET}/data/big.bin", back)
    assert r.returncode == 0, r.stderr
    assert data.file_sha256(back) == data.file_sha256(big)

    r = aws_cli(*base, "s3", "rm", f"s3://{C.BUCKET}/data/big.bin")
    assert r.returncode == 0, r.stderr
    assert stub.store.object(C.BUCKET, "data/big.bin") is None
    r = aws_cli(*base, "s3", "ls", f"s3://{C.BUCKET}/data/")
    assert r.returncode == 0 and "big.bin" not in r.stdout and "small.bin" in r.stdout

    reqs = stub.assert_all_verified(12)
    assert all(r.auth.service == "s3" and r.host == C.S3_HOST for r in reqs)
