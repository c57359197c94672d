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
from pathlib import Path
from typing import Optional
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


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def exists(uri: str) -> bool:
    """Whether a file, or a folder with anything in it, is at uri."""
    path = local_path(uri)
    if path is not None:
        return path.exists()
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        client = _s3_client()
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
            return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {uri}") from exc
    except Exception as exc:
        if type(exc).__name__ in ("NoSuchKey", "NoSuchBucket", "ClientError"):
            raise UserError(f"cannot read {uri}: {exc}") from exc
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
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


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
        for candidate in (prefix, prefix + "/"):
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=candidate)
            for page in pages:
                objs = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"] == prefix or o["Key"].startswith(prefix + "/")]
                if objs:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": objs})
        return
    raise UserError(f"unsupported URI scheme for {uri}: use a local path, s3://, s3a:// or dbfs:/")


def spark_uri(uri: str) -> str:
    """The URI to give Spark: relative local paths made absolute, everything else as given
    (s3:// is EMR's own filesystem there; local sessions map it to S3A, see session.py)."""
    if urlparse(uri).scheme == "" and not uri.startswith("/"):
        return str(Path(uri).resolve())
    return uri


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
        path, fs = self._fs(pattern)
        statuses = fs.globStatus(path)
        if statuses is None:
            return []
        return sorted(str(s.getPath().toString()) for s in statuses if s.isFile())

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
