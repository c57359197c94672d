"""Paths and URIs as text: joining, comparing, credentials, globs. Nothing here touches a
filesystem (see fs.py for that)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from ..errors import UserError

S3_SCHEMES = ("s3", "s3a", "s3n")
GLOB_CHARS = "*?[]{}"
_URI_HEAD = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


def plain(uri: str) -> str:
    """The same location written one way: without trailing slashes (``out/`` is ``out``); a
    root (``/``, ``s3://``, ``file:///``) stays as it is."""
    stripped = uri.rstrip("/")
    return uri if not stripped or stripped.endswith(":") else stripped


def scheme(uri: str) -> str:
    return urlparse(uri).scheme.lower()


def is_local(uri: str) -> bool:
    """A plain path or a file: URI."""
    return scheme(uri) in ("", "file")


def _userinfo_end(uri: str) -> int:
    """The index of the '@' that ends credentials in ``uri``, or -1 when it holds none.

    Credentials are ``NAME:SECRET@`` right after ``scheme://`` in any scheme, whatever the
    secret's characters (``/``, ``+``, ``%2F``), and any ``NAME@`` there in s3://, s3a:// and
    s3n:// (abfss://container@account... names a container, not a user)."""
    head = _URI_HEAD.match(uri)
    if not head:
        return -1
    rest = head.group("rest")
    at = rest.find("@")
    if at < 0:
        return -1
    before = rest[:at]
    slash = before.find("/")
    authority = before if slash < 0 else before[:slash]
    s3 = head.group("scheme").lower() in S3_SCHEMES
    colon = authority.find(":")
    if slash < 0:
        found = colon >= 0 or s3  # NAME:SECRET@host, or NAME@bucket
    elif colon < 0:
        found = False  # bucket/path/with@sign
    else:
        # NAME:SEC/RET@bucket; in other schemes host:8020/path/with@sign is a port
        found = s3 or not before[colon + 1:slash].isdigit()
    return len(uri) - len(rest) + at if found else -1


def redact(uri: str) -> str:
    """The URI with any user information replaced by ``***``."""
    end = _userinfo_end(uri)
    if end < 0:
        return uri
    head = _URI_HEAD.match(uri)
    return f"{head.group('scheme')}://***{uri[end:]}"


def check_no_credentials(uri: str, what: str) -> None:
    """Refuse user information in a URI (``s3a://KEY:SECRET@bucket/...``) without repeating it:
    credentials belong in the platform's credential chain, not in paths that get logged."""
    if _userinfo_end(uri) >= 0:
        raise UserError(
            f"{what}: {redact(uri)} holds credentials in the URI; remove them and use the platform's credential "
            f"chain (environment, profile, instance role or the cluster's configuration)"
        )


def absolute(uri: str) -> str:
    """The URI to give Spark and Hadoop: a relative local path made absolute (against the
    working directory), everything else as given."""
    if scheme(uri) == "" and not uri.startswith("/"):
        return str(Path(uri).expanduser().absolute())
    return uri


def location(uri: str) -> tuple[str, tuple[str, ...]]:
    """A comparable form of a path or URI: (filesystem, path components). Local paths are
    made absolute with symlinks resolved; s3://, s3a:// and s3n:// are one filesystem."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else uri
        return "file", Path(os.path.realpath(Path(path).expanduser())).parts
    fs = "s3" if parsed.scheme in S3_SCHEMES else f"{parsed.scheme}://{parsed.netloc}"
    head = (parsed.netloc,) if parsed.scheme in S3_SCHEMES else ()
    return fs, head + tuple(p for p in parsed.path.split("/") if p)


def is_within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or lies under it (compared by location())."""
    (fs_in, parts_in), (fs_out, parts_out) = location(inner), location(outer)
    return fs_in == fs_out and parts_in[: len(parts_out)] == parts_out


def same(a: str, b: str) -> bool:
    return location(a) == location(b)


def parent(uri: str) -> str:
    """The folder above a path (``.`` for a bare relative name)."""
    head, sep, _ = uri.rstrip("/").rpartition("/")
    if not sep:
        return "."
    return head or "/"


def ancestors(uri: str) -> list[str]:
    """``uri`` and every folder above it, up to the filesystem's root (``/``, or a bucket)."""
    parsed = urlparse(absolute(uri))
    top = f"{parsed.scheme}://{parsed.netloc}" if parsed.netloc else (f"{parsed.scheme}:" if parsed.scheme else "")
    parts = [p for p in parsed.path.split("/") if p]
    out = [top + "/" + "/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return out + [top + "/"]


def has_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


def static_prefix(pattern: str) -> str:
    """The part of a path before its first glob character, cut back to a whole folder."""
    cut = min([pattern.index(c) for c in GLOB_CHARS if c in pattern] or [len(pattern)])
    if cut == len(pattern):
        return pattern
    return pattern[:cut].rsplit("/", 1)[0] or "/"


def escape_glob(path: str) -> str:
    """``path`` with Hadoop's glob characters escaped, so a glob of it matches itself alone
    (Spark's readers glob every path they are given)."""
    return re.sub(r"([*?\[\]{}\\])", r"\\\1", path)


def canonical_file_uri(uri: str) -> str:
    """``file:///x`` and ``file:/x`` are the same file; Spark and Hadoop differ in which they print."""
    return "file:/" + uri[len("file:///"):] if uri.startswith("file:///") else uri


def shown(uri: str) -> str:
    """A listed path as users wrote it: local files without ``file:``."""
    return uri[len("file:"):] if uri.startswith("file:/") else uri
