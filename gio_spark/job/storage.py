"""One place that decides how a URI is read or written.

Small files (configs, markers, manifest, report) go through the local filesystem or boto3
(s3://, s3a://, s3n://; credentials from the standard AWS chain, endpoint from
AWS_ENDPOINT_URL when set). DataFrames are written by Spark; moving and deleting their
folders goes through Hadoop's FileSystem of the running Spark, which knows every scheme
Spark can write.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlparse

from ..errors import UserError

S3_SCHEMES = ("s3", "s3a", "s3n")


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme in S3_SCHEMES


def local_path(uri: str) -> Optional[Path]:
    """The local path of a plain path, file: URI or dbfs:/ URI (through the /dbfs mount)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    if parsed.scheme == "dbfs":
        return Path("/dbfs") / parsed.path.lstrip("/")
    return None


def redact(uri: str) -> str:
    """The URI with any user information (``KEY:SECRET@``) replaced by ``***@``."""
    parsed = urlparse(uri)
    if "@" not in parsed.netloc:
        return uri
    return parsed._replace(netloc="***@" + parsed.netloc.rsplit("@", 1)[1]).geturl()


def check_no_credentials(uri: str, what: str) -> None:
    """Refuse credentials written into a URI (``s3a://KEY:SECRET@bucket/...``), without
    repeating them: they belong in the standard AWS chain, not in paths that get logged."""
    parsed = urlparse(uri)
    if parsed.password is not None or (parsed.scheme in S3_SCHEMES and "@" in parsed.netloc):
        raise UserError(
            f"{what}: {redact(uri)} holds credentials in the URI; remove them and use the AWS credential "
            f"chain (environment, profile or instance role)"
        )


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _bucket_key(uri: str) -> tuple[str, str]:
    check_no_credentials(uri, "path")
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


@contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn an unreachable endpoint or missing credentials into one line naming them."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
        where = urlparse(str(exc.kwargs.get("endpoint_url", "")))
        endpoint = f"{where.scheme}://{where.netloc}" if where.netloc else "the default AWS endpoint"
        raise UserError(f"cannot reach the S3 endpoint {endpoint} (for {redact(uri)}); check AWS_ENDPOINT_URL "
                        f"and the network") from exc
    except bx.NoCredentialsError as exc:
        raise UserError(f"no AWS credentials found for {redact(uri)}: set them in the environment, a profile "
                        f"or an instance role") from exc


def _s3_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def exists(uri: str) -> bool:
    """Whether a file, or a folder with anything in it, is at uri."""
    path = local_path(uri)
    if path is not None:
        return path.exists()
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client()
        with _s3_errors(uri):
            try:
                resp = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            except client.exceptions.NoSuchBucket:
                return False
        return resp.get("KeyCount", 0) > 0
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


GLOB_CHARS = "*?[{"


def any_match(pattern: str) -> bool:
    """Whether a file (or folder) matches a path or glob pattern; cheap, no Spark needed."""
    path = local_path(pattern)
    if path is not None:
        import glob

        return bool(glob.glob(str(path)))
    if is_s3(pattern):
        import fnmatch

        bucket, key = _bucket_key(pattern)
        cut = min([key.index(c) for c in GLOB_CHARS if c in key] or [len(key)])
        client = _s3_client()
        with _s3_errors(pattern):
            try:
                pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key[:cut])
                for page in pages:
                    for obj in page.get("Contents", []):
                        k = obj["Key"]
                        if cut == len(key) and (k == key or k.startswith(key.rstrip("/") + "/")):
                            return True
                        if cut < len(key) and fnmatch.fnmatchcase(k, key):
                            return True
            except client.exceptions.NoSuchBucket:
                return False
        return False
    return True  # other schemes (hdfs:, abfs:, ...) are left to Spark


def read_bytes(uri: str) -> bytes:
    path = local_path(uri)
    try:
        if path is not None:
            return path.read_bytes()
        if is_s3(uri):
            bucket, key = _bucket_key(uri)
            with _s3_errors(uri):
                return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {uri}") from exc
    except Exception as exc:
        if type(exc).__name__ in ("NoSuchKey", "NoSuchBucket", "ClientError"):
            raise UserError(f"cannot read {redact(uri)}: {exc}") from exc
        raise
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        with _s3_errors(uri):
            _s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def create_exclusive(uri: str, data: bytes) -> bool:
    """Write a small file only if nothing is there yet; False when something already is.

    Local paths use a hard link of a complete temporary file (atomic; O_CREAT|O_EXCL where
    links are not supported); S3 a conditional put (``If-None-Match: *``,
    atomic on AWS S3). A server that does not implement the condition gets a check for the
    key followed by a plain put: the caller reads the file back to see whose it is."""
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # atomic, and readers never see a half-written file
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            pass
        finally:
            tmp.unlink()
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client()
        with _s3_errors(uri):
            try:
                client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except client.exceptions.ClientError as exc:
                code = _s3_code(exc)
                if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                    return False
                if code not in ("NotImplemented", "501"):
                    raise
            if exists(uri):
                return False
            client.put_object(Bucket=bucket, Key=key, Body=data)
            return True
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def check_output_location(uri: str) -> None:
    """Refuse an output that is, or lies under, an existing file (Spark would fail late)."""
    path = local_path(uri)
    if path is not None:
        path = path.expanduser().absolute()
        for candidate in (path, *path.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    where = "is" if candidate == path else f"lies under {candidate}, which is"
                    raise UserError(f"output {uri} {where} an existing file, not a folder")
                return
        return
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client()
        parts = [p for p in key.split("/") if p]
        with _s3_errors(uri):
            for n in range(len(parts), 0, -1):
                candidate = "/".join(parts[:n])
                try:
                    client.head_object(Bucket=bucket, Key=candidate)
                except client.exceptions.ClientError as exc:
                    if _s3_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                        continue
                    raise
                where = "is" if n == len(parts) else f"lies under s3://{bucket}/{candidate}, which is"
                raise UserError(f"output {uri} {where} an existing object (a file), not a folder")


def location(uri: str) -> tuple[str, tuple[str, ...]]:
    """A comparable form of a path or URI: (filesystem, path components). Local paths are
    made absolute with symlinks resolved; s3://, s3a:// and s3n:// are one filesystem."""
    path = local_path(uri)
    if path is not None:
        return "file", Path(os.path.realpath(path.expanduser())).parts
    parsed = urlparse(uri)
    fs = "s3" if parsed.scheme in S3_SCHEMES else f"{parsed.scheme}://{parsed.netloc}"
    head = (parsed.netloc,) if parsed.scheme in S3_SCHEMES else ()
    return fs, head + tuple(p for p in parsed.path.split("/") if p)


def is_within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or lies under it (compared by location())."""
    (fs_in, parts_in), (fs_out, parts_out) = location(inner), location(outer)
    return fs_in == fs_out and parts_in[: len(parts_out)] == parts_out


def static_prefix(pattern: str) -> str:
    """The part of a path before its first glob character, cut back to a whole folder."""
    cut = min([pattern.index(c) for c in GLOB_CHARS if c in pattern] or [len(pattern)])
    if cut == len(pattern):
        return pattern
    return pattern[:cut].rsplit("/", 1)[0] or "/"


def delete(uri: str) -> None:
    """Remove a file or everything under a folder/prefix; nothing there is fine."""
    path = local_path(uri)
    if path is not None:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client()
        prefix = key.rstrip("/")
        with _s3_errors(uri):
            for candidate in (prefix, prefix + "/"):
                pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=candidate)
                for page in pages:
                    objs = [{"Key": o["Key"]} for o in page.get("Contents", [])
                            if o["Key"] == prefix or o["Key"].startswith(prefix + "/")]
                    if objs:
                        client.delete_objects(Bucket=bucket, Delete={"Objects": objs})
        return
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def canonical_file_uri(uri: str) -> str:
    """``file:///x`` and ``file:/x`` are the same file; Spark and Hadoop differ in which they print."""
    return "file:/" + uri[len("file:///"):] if uri.startswith("file:///") else uri


def spark_uri(uri: str) -> str:
    """The URI to give Spark: relative local paths made absolute, everything else as given
    (s3:// is EMR's own filesystem there; local sessions map it to S3A, see session.py)."""
    if urlparse(uri).scheme == "" and not uri.startswith("/"):
        return str(Path(uri).resolve())
    return uri


@dataclass(frozen=True)
class FileInfo:
    """What identifies one version of an input file: path, size, modification time (ms)
    and, where the filesystem reports one (S3A), the ETag."""

    path: str
    size: int
    mtime: int
    etag: Optional[str] = None


def _etag(status) -> Optional[str]:
    for getter in ("getEtag", "getETag"):  # EtagSource (Hadoop 3.3.5+), S3AFileStatus (3.3.x)
        try:
            value = getattr(status, getter)()
        except Exception:  # py4j: no such method on this FileStatus class
            continue
        if value:
            return str(value)
    return None


class HadoopFS:
    """Folder moves, deletes and globs through the running Spark's Hadoop FileSystem."""

    def __init__(self, spark) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(spark_uri(uri))
        return path, path.getFileSystem(self._conf)

    def glob(self, pattern: str) -> list[str]:
        """Files matching a glob pattern, sorted."""
        return [f.path for f in self.glob_info(pattern)]

    def glob_info(self, pattern: str) -> list[FileInfo]:
        """Files matching a glob pattern with size, modification time and ETag, sorted by path."""
        path, fs = self._fs(pattern)
        statuses = fs.globStatus(path)
        if statuses is None:
            return []
        return sorted((self._info(s) for s in statuses if s.isFile()), key=lambda f: f.path)

    def info(self, uri: str) -> FileInfo:
        path, fs = self._fs(uri)
        return self._info(fs.getFileStatus(path))

    @staticmethod
    def _info(status) -> FileInfo:
        path = str(status.getPath().toString())
        etag = None if path.startswith("file:") else _etag(status)
        return FileInfo(path, int(status.getLen()), int(status.getModificationTime()), etag)

    def uri_form(self, path: str) -> str:
        """A listed path as Spark's ``_metadata.file_path`` reports it: percent-encoded
        (a space is %20, ``%`` is %25, ``#`` is %23), local files as ``file:/...``."""
        return canonical_file_uri(str(self._jvm.org.apache.hadoop.fs.Path(path).toUri().toString()))

    def exists(self, uri: str) -> bool:
        path, fs = self._fs(uri)
        return bool(fs.exists(path))

    def delete(self, uri: str) -> None:
        path, fs = self._fs(uri)
        if fs.exists(path):
            fs.delete(path, True)

    def move(self, src: str, dst: str) -> None:
        """Rename a folder into place, replacing whatever was at dst."""
        self.delete(dst)
        s, fs = self._fs(src)
        d, _ = self._fs(dst)
        fs.mkdirs(d.getParent())
        if not fs.rename(s, d):
            raise RuntimeError(f"could not move {src} to {dst}")
