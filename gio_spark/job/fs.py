"""The job's one I/O layer: every file it touches goes through the running Spark's Hadoop
FileSystem, so any scheme Spark is configured for (file:, hdfs://, s3:// on EMR, s3a://,
abfss://, gs://, dbfs:/ on Databricks, viewfs://) works with the platform's own connector
and credentials. DataFrames are read and written by Spark itself.

Exclusive creation (the output lock, a stage's publication) needs an atomic create-if-absent:
HDFS, ABFS and GCS give it through Hadoop (``create`` with overwrite off); local files get a
hard link of a complete file; S3 gets a conditional put (``If-None-Match: *``, s3_put.py),
which S3A before Hadoop 3.4 cannot do.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlparse

from ..errors import UserError
from . import failures
from .uri import S3_SCHEMES, absolute, canonical_file_uri, redact, scheme, shown

# object stores: a file written with create() appears whole when it is closed
OBJECT_STORES = (*S3_SCHEMES, "gs", "abfs", "abfss", "wasb", "wasbs", "oss", "dbfs")


@dataclass(frozen=True)
class FileInfo:
    """One version of a file: path (as Hadoop prints it), size, modification time (ms) and,
    where the filesystem reports one (S3), the ETag."""

    path: str
    size: int
    mtime: int
    etag: Optional[str] = None


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


class FileSystem:
    """Files and folders of any URI Spark can reach, through ``spark``'s Hadoop configuration."""

    def __init__(self, spark) -> None:
        self.spark = spark
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    # ---- plumbing

    # Hadoop's classes and the local filesystem, looked up once: py4j resolves a class name one
    # package at a time, a round trip to the JVM each (a job touches files a few hundred times)
    @cached_property
    def _Path(self):
        return self._jvm.org.apache.hadoop.fs.Path

    @cached_property
    def _local(self):
        """The raw local filesystem (no .crc side files)."""
        return self._jvm.org.apache.hadoop.fs.FileSystem.getLocal(self._conf).getRawFileSystem()

    def _path(self, uri: str):
        return self._Path(absolute(uri))

    def _fs(self, uri: str):
        """(Hadoop Path, FileSystem)."""
        path = self._path(uri)
        if scheme(absolute(uri)) in ("", "file"):
            return path, self._local
        return path, path.getFileSystem(self._conf)

    @contextmanager
    def _errors(self, uri: str, action: str) -> Iterator[None]:
        """Hadoop failures the user can fix (no connector, unreachable, denied, full) as one line."""
        from py4j.protocol import Py4JError
        from pyspark.errors.exceptions.captured import CapturedException

        try:
            yield
        except (Py4JError, CapturedException) as exc:
            error = failures.explain(exc, uri, action)
            if error is None:
                raise
            raise error from None

    def hadoop_conf(self, key: str) -> Optional[str]:
        value = self._conf.get(key)
        return None if value is None else str(value)

    # ---- queries

    def exists(self, uri: str) -> bool:
        with self._errors(uri, "check"):
            path, fs = self._fs(uri)
            return bool(fs.exists(path))

    def is_dir(self, uri: str) -> bool:
        with self._errors(uri, "check"):
            path, fs = self._fs(uri)
            return bool(fs.exists(path)) and bool(fs.getFileStatus(path).isDirectory())

    def info(self, uri: str) -> FileInfo:
        with self._errors(uri, "read"):
            path, fs = self._fs(uri)
            return self._info(fs.getFileStatus(path))

    def glob(self, pattern: str) -> list[FileInfo]:
        """Files matching a Hadoop glob pattern (``*``, ``?``, ``[...]``, ``{a,b}``), sorted by path."""
        with self._errors(pattern, "list"):
            path, fs = self._fs(pattern)
            statuses = fs.globStatus(path)
        if statuses is None:
            return []
        return sorted((self._info(s) for s in statuses if s.isFile()), key=lambda f: f.path)

    def glob_dirs(self, pattern: str) -> list[str]:
        with self._errors(pattern, "list"):
            path, fs = self._fs(pattern)
            statuses = fs.globStatus(path)
        return sorted(str(s.getPath().toString()) for s in (statuses or []) if s.isDirectory())

    def files_under(self, folder: str) -> list[FileInfo]:
        """Every file below ``folder``, at any depth, sorted by path, leaving out hidden files
        and folders (names starting with ``_`` or ``.``, such as ``_SUCCESS`` and ``.crc``)."""
        out: list[FileInfo] = []
        with self._errors(folder, "list"):
            path, fs = self._fs(folder)
            pending = [path]
            while pending:
                for status in fs.listStatus(pending.pop()):
                    if _hidden(str(status.getPath().getName())):
                        continue
                    if status.isDirectory():
                        pending.append(status.getPath())
                    else:
                        out.append(self._info(status))
        return sorted(out, key=lambda f: f.path)

    def names(self, folder: str) -> list[str]:
        """Names of the entries of a folder (empty when it does not exist)."""
        with self._errors(folder, "list"):
            path, fs = self._fs(folder)
            if not fs.exists(path):
                return []
            return sorted(str(s.getPath().getName()) for s in fs.listStatus(path))

    @staticmethod
    def _info(status) -> FileInfo:
        path = str(status.getPath().toString())
        etag = None if path.startswith("file:") else _etag(status)
        return FileInfo(path, int(status.getLen()), int(status.getModificationTime()), etag)

    def content_hash(self, info: FileInfo) -> str:
        """What identifies the file's bytes: the S3 ETag, else the filesystem's own checksum
        (HDFS: from its block checksums, no data read), else a SHA-256 of the bytes, computed
        in the JVM (about 1.5 s per GB here)."""
        if info.etag:
            return f"etag:{info.etag}"
        with self._errors(info.path, "read"):
            path, fs = self._fs(info.path)
            checksum = fs.getFileChecksum(path)
            if checksum is not None:
                return str(checksum.toString())
            stream = fs.open(path)
            try:
                return "sha256:" + str(self._jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
            finally:
                stream.close()

    def uri_form(self, path: str) -> str:
        """A listed path as Spark's ``_metadata.file_path`` reports it: percent-encoded
        (a space is %20, ``%`` is %25, ``#`` is %23), local files as ``file:/...``."""
        return canonical_file_uri(str(self._Path(path).toUri().toString()))

    # ---- reading and writing small files

    def read_bytes(self, uri: str) -> bytes:
        with self._errors(uri, "read"):
            path, fs = self._fs(uri)
            if not fs.exists(path):
                raise UserError(f"file not found: {redact(shown(uri))}")
            status = fs.getFileStatus(path)
            if status.isDirectory():
                raise UserError(f"{redact(shown(uri))} is a folder, not a file")
            stream = fs.open(path)
            try:
                return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
            finally:
                stream.close()

    def ends(self, info: FileInfo, n: int) -> tuple[bytes, bytes]:
        """The first and the last ``n`` bytes of a file (e.g. a format's magic numbers)."""
        if info.size < n:
            return b"", b""
        with self._errors(info.path, "read"):
            path, fs = self._fs(info.path)
            stream = fs.open(path)
            try:
                head, tail = bytearray(n), bytearray(n)
                stream.readFully(0, head)
                stream.readFully(info.size - n, tail)
                return bytes(head), bytes(tail)
            finally:
                stream.close()

    def read_text(self, uri: str) -> str:
        data = self.read_bytes(uri)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{redact(shown(uri))} is not UTF-8 text (byte {exc.start})") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a small file whole: readers see the old content or the new, never a part
        (object stores publish on close; elsewhere a temporary file is renamed over it)."""
        with self._errors(uri, "write"):
            path, fs = self._fs(uri)
            if scheme(absolute(uri)) in OBJECT_STORES:
                self._put(fs, path, data, overwrite=True)
                return
            tmp = self._Path(path.getParent(), f".{path.getName()}.{uuid.uuid4().hex[:8]}.tmp")
            self._put(fs, tmp, data, overwrite=False)
            if not fs.rename(tmp, path):  # HDFS refuses to rename over a file: replace it
                fs.delete(path, False)
                if not fs.rename(tmp, path):
                    fs.delete(tmp, False)
                    raise UserError(f"cannot write {redact(shown(uri))}: renaming its temporary file failed")

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode("utf-8"))

    @staticmethod
    def _put(fs, path, data: bytes, overwrite: bool) -> None:
        stream = fs.create(path, overwrite)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        """Write a small file only if nothing is there yet; False when something already is.
        Atomic on local files (a hard link of a complete file), S3 (conditional put), HDFS,
        ABFS and GCS (Hadoop's create without overwrite)."""
        kind = scheme(absolute(uri))
        if kind in S3_SCHEMES:
            from .s3_put import put_if_absent

            return put_if_absent(self, uri, data)
        if kind in ("", "file"):
            try:
                return _link_exclusive(Path(urlparse(absolute(uri)).path), data)
            except OSError as exc:
                raise UserError(f"cannot write {shown(uri)}: {exc.strerror or exc}") from None
        with self._errors(uri, "write"):
            path, fs = self._fs(uri)
            if fs.exists(path):
                return False
            try:
                self._put(fs, path, data, overwrite=False)
            except Exception as exc:
                if "AlreadyExists" in str(exc) or "already exists" in str(exc):
                    return False
                raise
            return True

    # ---- folders

    def mkdirs(self, uri: str) -> None:
        with self._errors(uri, "create"):
            path, fs = self._fs(uri)
            if not fs.mkdirs(path):
                raise UserError(f"cannot create the folder {redact(shown(uri))}")

    def delete(self, uri: str) -> None:
        """Remove a file or a folder with everything in it; nothing there is fine."""
        with self._errors(uri, "delete"):
            path, fs = self._fs(uri)
            if fs.exists(path):
                fs.delete(path, True)

    def move(self, src: str, dst: str) -> None:
        """Rename a folder into place, replacing whatever was at ``dst``."""
        self.delete(dst)
        with self._errors(dst, "write"):
            s, fs = self._fs(src)
            d, _ = self._fs(dst)
            fs.mkdirs(d.getParent())
            if not fs.rename(s, d):
                raise RuntimeError(f"could not move {src} to {dst}")


def _etag(status) -> Optional[str]:
    for getter in ("getEtag", "getETag"):  # EtagSource (Hadoop 3.3.5+), S3AFileStatus (3.3.x)
        try:
            value = getattr(status, getter)()
        except Exception:  # py4j: no such method on this FileStatus class
            continue
        if value:
            return str(value).strip('"')
    return None


def _link_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists: a hard link of a complete temporary file
    (atomic, and never seen half-written); O_CREAT|O_EXCL where links are not supported."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    try:
        os.link(tmp, path)
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
