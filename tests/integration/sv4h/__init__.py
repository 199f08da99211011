"""sv4h: the sigv4d integration-test harness.

Modules:
  pki        a per-session test CA and upstream server certificate (openssl CLI)
  sigv4      independent SigV4 verification (botocore for the request signature,
             hashlib/hmac for aws-chunked chunk signatures and checksums)
  upstream   the threaded HTTPS upstream stub that re-verifies and records requests
  behaviours response behaviours for the stub (echo, stream, reset, slow, ...)
  s3store    an S3-like object store handler (enough for the AWS CLI, multipart)
  sts        a fake STS (AssumeRole) behaviour for --role-arn, with host-dependent credentials
  proxyproc  runs the real sigv4d binary and reads its peak RSS
  client     a raw HTTP/1.1 client for exact-byte tests, and data generators
"""
