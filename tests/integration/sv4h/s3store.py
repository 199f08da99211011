"""An S3-like object store behaviour: enough of the REST API for `aws s3 cp/ls/rm`,
`aws s3api put-object` and multipart uploads. Objects live in files under `root`;
bodies are streamed to disk and hashed, never held in memory.

Supported: ListBuckets, Create/Head/DeleteBucket, GetBucketLocation, ListObjects (v1
and v2, prefix/delimiter/encoding-type=url, no pagination), Put/Get (Range)/Head/
DeleteObject, DeleteObjects, Create/UploadPart/Complete/AbortMultipartUpload.
"""
import base64
import email.utils
import hashlib
import ipaddress
import os
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, unquote

from . import sigv4
from .behaviours import Handler

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 4 << 20


@dataclass
class Obj:
    path: str
    size: int
    etag: str  # with quotes
    sha256: str
    md5: bytes
    mtime: float
    content_type: str = "binary/octet-stream"


def _x(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def _xml(body):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


class _FileSink:
    def __init__(self, directory):
        fd, self.path = tempfile.mkstemp(dir=directory, prefix="body-")
        self.f = os.fdopen(fd, "wb")
        self.md5, self.sha256, self.size = hashlib.md5(), hashlib.sha256(), 0

    def __call__(self, d):
        self.f.write(d)
        self.md5.update(d)
        self.sha256.update(d)
        self.size += len(d)

    def finish(self):
        self.f.close()

    def discard(self):
        self.f.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class _MemSink:
    def __init__(self):
        self.buf, self.too_big = bytearray(), False

    def __call__(self, d):
        if len(self.buf) + len(d) > MAX_XML_BODY:
            self.too_big = True
        else:
            self.buf += d


class S3Store(Handler):
    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.buckets = set()
        self.objects = {}  # (bucket, key) -> Obj
        self.uploads = {}  # upload id -> {"bucket", "key", "parts": {n: Obj}}
        self.lock = threading.Lock()
        self.ops = []  # (operation name, bucket, key) in arrival order

    # -- request parsing ---------------------------------------------------------------
    @staticmethod
    def locate(req):
        """(bucket, key, query dict) for path-style or virtual-hosted-style requests."""
        host = req.host
        path = req.path
        virtual = False
        try:
            ipaddress.ip_address(host)
        except ValueError:
            virtual = not host.startswith("s3.") and not host.startswith("s3-") and (
                ".s3." in host or ".s3-" in host)
        if virtual:
            bucket = host[:host.index(".s3")]
            key = path[1:]
        else:
            parts = path[1:].split("/", 1)
            bucket = parts[0]
            key = parts[1] if len(parts) > 1 else ""
        query = {}
        for k, v in sigv4.query_pairs(req.query):
            query[k] = v
        return unquote(bucket), unquote(key), query

    def _op(self, req):
        bucket, key, q = self.locate(req)
        m = req.method
        if not bucket:
            return "ListBuckets" if m == "GET" else "Unsupported"
        if not key:
            if m == "GET":
                if "location" in q:
                    return "GetBucketLocation"
                return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            if m == "POST" and "delete" in q:
                return "DeleteObjects"
            return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(
                m, "Unsupported")
        if m == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if m == "POST" and "uploadId" in q:
            return "CompleteMultipartUpload"
        if m == "PUT" and "uploadId" in q and "partNumber" in q:
            return "UploadPart"
        if m == "DELETE" and "uploadId" in q:
            return "AbortMultipartUpload"
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
                "DELETE": "DeleteObject"}.get(m, "Unsupported")

    # -- body handling -------------------------------------------------------------
    def sink(self, req):
        op = self._op(req)
        req.s3_op = op
        if op in ("PutObject", "UploadPart"):
            req.s3_sink = _FileSink(self.root)
        elif op in ("CompleteMultipartUpload", "DeleteObjects"):
            req.s3_sink = _MemSink()
        else:
            return None
        return req.s3_sink

    def abort(self, req):
        s = getattr(req, "s3_sink", None)
        if isinstance(s, _FileSink):
            s.discard()

    # -- responses -----------------------------------------------------------------
    def _error(self, req, w, status, code, message):
        w.respond(req, status, _xml(f"<Error><Code>{code}</Code><Message>{_x(message)}</Message>"
                                   f"<RequestId>STUB</RequestId></Error>"))

    def __call__(self, req, w):
        op = getattr(req, "s3_op", None) or self._op(req)
        bucket, key, q = self.locate(req)
        with self.lock:
            self.ops.append((op, bucket, key))
        fn = getattr(self, "_" + op, None)
        if fn is None:
            self.abort(req)
            return self._error(req, w, 501, "NotImplemented", f"stub does not implement {op}")
        return fn(req, w, bucket, key, q)

    def _ListBuckets(self, req, w, bucket, key, q):
        with self.lock:
            names = sorted(self.buckets | {b for (b, _) in self.objects})
        items = "".join(f"<Bucket><Name>{_x(n)}</Name><CreationDate>{_iso(0)}</CreationDate></Bucket>"
                        for n in names)
        w.respond(req, 200, _xml(f'<ListAllMyBucketsResult xmlns="{NS}"><Owner><ID>stub</ID>'
                                 f"</Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>"))

    def _CreateBucket(self, req, w, bucket, key, q):
        with self.lock:
            self.buckets.add(bucket)
        w.respond(req, 200, b"", [("Location", f"/{bucket}")])

    def _HeadBucket(self, req, w, bucket, key, q):
        w.respond(req, 200, b"", [("x-amz-bucket-region", "us-east-1")])

    def _DeleteBucket(self, req, w, bucket, key, q):
        with self.lock:
            self.buckets.discard(bucket)
        w.respond(req, 204)

    def _GetBucketLocation(self, req, w, bucket, key, q):
        w.respond(req, 200, _xml(f'<LocationConstraint xmlns="{NS}"/>'))

    def _list(self, req, w, bucket, q, v2):
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        enc = q.get("encoding-type") == "url"
        e = (lambda s: _x(quote(s, safe="/"))) if enc else _x
        with self.lock:
            keys = sorted((k, o) for (b, k), o in self.objects.items() if b == bucket)
        contents, prefixes = [], []
        for k, o in keys:
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if delim and delim in rest:
                p = prefix + rest[:rest.index(delim) + len(delim)]
                if p not in prefixes:
                    prefixes.append(p)
                continue
            contents.append(f"<Contents><Key>{e(k)}</Key><LastModified>{_iso(o.mtime)}</LastModified>"
                            f"<ETag>{_x(o.etag)}</ETag><Size>{o.size}</Size>"
                            "<StorageClass>STANDARD</StorageClass></Contents>")
        cps = "".join(f"<CommonPrefixes><Prefix>{e(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        extra = f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>" if v2 else "<Marker></Marker>"
        body = (f'<ListBucketResult xmlns="{NS}"><Name>{_x(bucket)}</Name><Prefix>{e(prefix)}</Prefix>'
                f"{extra}<MaxKeys>1000</MaxKeys>"
                + (f"<Delimiter>{e(delim)}</Delimiter>" if delim else "")
                + (f"<EncodingType>url</EncodingType>" if enc else "")
                + "<IsTruncated>false</IsTruncated>" + "".join(contents) + cps + "</ListBucketResult>")
        w.respond(req, 200, _xml(body))

    def _ListObjectsV2(self, req, w, bucket, key, q):
        self._list(req, w, bucket, q, True)

    def _ListObjects(self, req, w, bucket, key, q):
        self._list(req, w, bucket, q, False)

    def _check_digests(self, req, sink):
        """Content-MD5 and x-amz-checksum-* request headers, as S3 checks them."""
        md5 = req.header("content-md5")
        if md5 is not None and md5 != base64.b64encode(sink.md5.digest()).decode():
            return f"Content-MD5 {md5} does not match the body"
        for name, value in req.headers:
            n = name.lower()
            if n.startswith("x-amz-checksum-") and n != "x-amz-checksum-algorithm" and n != "x-amz-checksum-type":
                if n == "x-amz-checksum-sha256":
                    got = base64.b64encode(bytes.fromhex(sink.sha256.hexdigest())).decode()
                    if got != value:
                        return f"{name} {value} does not match the body ({got})"
        return None

    def _store(self, sink):
        sink.finish()
        return Obj(sink.path, sink.size, f'"{sink.md5.hexdigest()}"', sink.sha256.hexdigest(),
                   sink.md5.digest(), time.time())

    def _PutObject(self, req, w, bucket, key, q):
        sink = req.s3_sink
        bad = self._check_digests(req, sink)
        if bad:
            sink.discard()
            return self._error(req, w, 400, "BadDigest", bad)
        obj = self._store(sink)
        obj.content_type = req.header("content-type") or obj.content_type
        with self.lock:
            old = self.objects.get((bucket, key))
            self.objects[(bucket, key)] = obj
        if old and os.path.exists(old.path):
            os.unlink(old.path)
        w.respond(req, 200, b"", [("ETag", obj.etag)])

    def _get(self, bucket, key):
        with self.lock:
            return self.objects.get((bucket, key))

    def _HeadObject(self, req, w, bucket, key, q):
        obj = self._get(bucket, key)
        if obj is None:
            return w.respond(req, 404, b"")
        w.respond(req, 200, b"", self._obj_headers(obj) + [("Content-Length", str(obj.size))])

    @staticmethod
    def _obj_headers(obj):
        return [("ETag", obj.etag), ("Last-Modified", email.utils.formatdate(obj.mtime, usegmt=True)),
                ("Content-Type", obj.content_type), ("Accept-Ranges", "bytes")]

    def _GetObject(self, req, w, bucket, key, q):
        obj = self._get(bucket, key)
        if obj is None:
            return self._error(req, w, 404, "NoSuchKey", f"no object {key}")
        start, end, status = 0, obj.size - 1, 200
        headers = self._obj_headers(obj)
        rng = req.header("range")
        if rng:
            spec = rng.removeprefix("bytes=")
            a, _, b = spec.partition("-")
            if a == "":
                start = max(0, obj.size - int(b))
            else:
                start = int(a)
                end = min(int(b), obj.size - 1) if b else obj.size - 1
            if start >= obj.size or start > end:
                return self._error(req, w, 416, "InvalidRange", rng)
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{obj.size}"))
        length = end - start + 1 if obj.size else 0
        headers.append(("Content-Length", str(length)))
        w.head(status, headers, req=req)
        with open(obj.path, "rb") as f:
            f.seek(start)
            left = length
            while left:
                d = f.read(min(left, 1 << 18))
                if not d:
                    raise OSError("object file shrank")
                w.raw(d)
                left -= len(d)

    def _DeleteObject(self, req, w, bucket, key, q):
        with self.lock:
            obj = self.objects.pop((bucket, key), None)
        if obj and os.path.exists(obj.path):
            os.unlink(obj.path)
        w.respond(req, 204)

    def _DeleteObjects(self, req, w, bucket, key, q):
        sink = req.s3_sink
        try:
            root = ET.fromstring(bytes(sink.buf))
        except ET.ParseError as e:
            return self._error(req, w, 400, "MalformedXML", str(e))
        deleted = []
        for k in root.iter(f"{{{NS}}}Key"):
            with self.lock:
                obj = self.objects.pop((bucket, k.text), None)
            if obj and os.path.exists(obj.path):
                os.unlink(obj.path)
            deleted.append(f"<Deleted><Key>{_x(k.text)}</Key></Deleted>")
        w.respond(req, 200, _xml(f'<DeleteResult xmlns="{NS}">{"".join(deleted)}</DeleteResult>'))

    def _CreateMultipartUpload(self, req, w, bucket, key, q):
        uid = uuid.uuid4().hex
        with self.lock:
            self.uploads[uid] = {"bucket": bucket, "key": key, "parts": {},
                                 "content_type": req.header("content-type")}
        w.respond(req, 200, _xml(f'<InitiateMultipartUploadResult xmlns="{NS}"><Bucket>{_x(bucket)}'
                                 f"</Bucket><Key>{_x(key)}</Key><UploadId>{uid}</UploadId>"
                                 "</InitiateMultipartUploadResult>"))

    def _UploadPart(self, req, w, bucket, key, q):
        sink = req.s3_sink
        with self.lock:
            up = self.uploads.get(q["uploadId"])
        if up is None:
            sink.discard()
            return self._error(req, w, 404, "NoSuchUpload", q["uploadId"])
        bad = self._check_digests(req, sink)
        if bad:
            sink.discard()
            return self._error(req, w, 400, "BadDigest", bad)
        obj = self._store(sink)
        with self.lock:
            old = up["parts"].get(int(q["partNumber"]))
            up["parts"][int(q["partNumber"])] = obj
        if old and os.path.exists(old.path):
            os.unlink(old.path)
        w.respond(req, 200, b"", [("ETag", obj.etag)])

    def _CompleteMultipartUpload(self, req, w, bucket, key, q):
        uid = q["uploadId"]
        with self.lock:
            up = self.uploads.get(uid)
        if up is None:
            return self._error(req, w, 404, "NoSuchUpload", uid)
        try:
            root = ET.fromstring(bytes(req.s3_sink.buf))
        except ET.ParseError as e:
            return self._error(req, w, 400, "MalformedXML", str(e))
        listed, numbers = [], []
        for part in root.iter(f"{{{NS}}}Part"):
            n = int(part.find(f"{{{NS}}}PartNumber").text)
            etag = part.find(f"{{{NS}}}ETag").text
            obj = up["parts"].get(n)
            if obj is None or obj.etag.strip('"') != etag.strip('"'):
                return self._error(req, w, 400, "InvalidPart", f"part {n} etag {etag}")
            listed.append(obj)
            numbers.append(n)
        if not listed or numbers != sorted(set(numbers)):
            return self._error(req, w, 400, "InvalidPartOrder", "parts not ascending")
        fd, path = tempfile.mkstemp(dir=self.root, prefix="obj-")
        md5s, sha, size = hashlib.md5(), hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for p in listed:
                md5s.update(p.md5)
                with open(p.path, "rb") as f:
                    while True:
                        d = f.read(1 << 18)
                        if not d:
                            break
                        out.write(d)
                        sha.update(d)
                        size += len(d)
        obj = Obj(path, size, f'"{md5s.hexdigest()}-{len(listed)}"', sha.hexdigest(), b"", time.time(),
                  up["content_type"] or "binary/octet-stream")
        with self.lock:
            self.uploads.pop(uid, None)
            old = self.objects.get((bucket, key))
            self.objects[(bucket, key)] = obj
        for p in up["parts"].values():
            if os.path.exists(p.path):
                os.unlink(p.path)
        if old and os.path.exists(old.path):
            os.unlink(old.path)
        w.respond(req, 200, _xml(f'<CompleteMultipartUploadResult xmlns="{NS}"><Location>/{_x(bucket)}/'
                                 f"{_x(key)}</Location><Bucket>{_x(bucket)}</Bucket><Key>{_x(key)}</Key>"
                                 f"<ETag>{_x(obj.etag)}</ETag></CompleteMultipartUploadResult>"))

    def _AbortMultipartUpload(self, req, w, bucket, key, q):
        with self.lock:
            up = self.uploads.pop(q["uploadId"], None)
        if up is None:
            return self._error(req, w, 404, "NoSuchUpload", q["uploadId"])
        for p in up["parts"].values():
            if os.path.exists(p.path):
                os.unlink(p.path)
        w.respond(req, 204)

    # -- for tests -----------------------------------------------------------------
    def object(self, bucket, key):
        return self._get(bucket, key)

    def put_file(self, bucket, key, src_path):
        """Seed an object from a local file (for download tests)."""
        sink = _FileSink(self.root)
        with open(src_path, "rb") as f:
            while True:
                d = f.read(1 << 20)
                if not d:
                    break
                sink(d)
        obj = self._store(sink)
        with self.lock:
            self.objects[(bucket, key)] = obj
        return obj
