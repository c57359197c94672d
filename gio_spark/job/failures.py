"""Java and Spark failures that are the user's to fix, as one-line UserErrors.

Hadoop and Spark report an unreachable namenode, a missing connector, a full disk or a
read-only folder as a Py4J error with a Java stack trace. ``explain`` finds the innermost
cause and says, in one line, what failed on which path; anything it does not recognise is
left to propagate as it is.
"""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urlparse

from ..errors import UserError
from .uri import canonical_file_uri, redact, shown

_READ_FAILED = re.compile(r"FAILED_READ_FILE|[Ee]ncountered error while reading file|[Ee]rror while reading file")
_FILE_IN_MESSAGE = re.compile(r"reading file (\S+?)\.?(?:\s|$)")
_CAUSED_BY = re.compile(r"Caused by: ([\w.$]+)(?::\s*([^\n]*))?")


def causes(exc: BaseException) -> list[tuple[str, str]]:
    """(simple class name, first message line) of each Java cause of a Py4J/Spark error,
    outermost first; from the Java objects while the JVM answers, else from the text."""
    out: list[tuple[str, str]] = []
    # a Py4J error, or the exception pyspark made of it (which keeps the Java one as _origin)
    cause = getattr(exc, "java_exception", None) or getattr(getattr(exc, "_origin", None), "java_exception", None)
    try:
        while cause is not None and len(out) < 50:
            message = str(cause.getMessage() or "").strip().splitlines()
            out.append((str(cause.getClass().getSimpleName()), message[0] if message else ""))
            cause = cause.getCause()
    except Exception:  # the JVM is gone, or not a Java exception
        out = []
    if out:
        return out
    return [(cls.rsplit(".", 1)[-1], (msg or "").strip()) for cls, msg in _CAUSED_BY.findall(str(exc))]


def root_cause(exc: BaseException) -> Optional[str]:
    """``Class: message`` of the innermost Java cause, when there is one."""
    found = causes(exc)
    if not found:
        return None
    cls, message = found[-1]
    return f"{cls}: {message}".rstrip(": ")


# (pattern on "Class: message" of any cause, what it means for the path)
_KINDS = (
    (re.compile(r"UnsupportedFileSystemException|No FileSystem for scheme", re.I), "no_filesystem"),
    (re.compile(r"UnknownStoreException|NoSuchBucket|specified bucket does not exist", re.I), "no_bucket"),
    (re.compile(r"ConnectException|UnknownHostException|NoRouteToHostException|ConnectTimeoutException|"
                r"SocketTimeoutException|Unable to execute HTTP request|Connection refused", re.I), "unreachable"),
    (re.compile(r"No space left on device|DiskOutOfSpace|QuotaExceeded", re.I), "full"),
    (re.compile(r"Read-only file system", re.I), "read_only"),
    (re.compile(r"AccessDenied|AccessControlException|Permission denied|Operation not permitted|\b403\b", re.I),
     "denied"),
    (re.compile(r"NoAuthWithAWS|Unable to load AWS credentials|NoCredentials|No AWS Credentials", re.I), "credentials"),
    (re.compile(r"Illegal file pattern", re.I), "bad_glob"),
)


def kind(exc: BaseException) -> Optional[tuple[str, str]]:
    """(kind, "Class: message" of the matching cause) for a failure this module explains."""
    found = causes(exc) or [(type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")]
    for pattern, name in _KINDS:
        for cls, message in reversed(found):
            text = f"{cls}: {message}"
            if pattern.search(text):
                return name, text.rstrip(": ")
    return None


def _scheme_hint(uri: str) -> str:
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("dbfs:") else ""
    if scheme == "dbfs":
        return " (dbfs:/ paths work on Databricks, whose Spark has that filesystem)"
    if scheme in ("s3", "s3a", "s3n"):
        return " (S3 needs the hadoop-aws connector on the classpath: EMR and Databricks have it)"
    if scheme in ("gs", "abfs", "abfss", "wasb", "wasbs"):
        return " (add the cloud connector of that scheme to Spark's classpath)"
    return ""


def explain(exc: BaseException, uri: str, action: str = "use") -> Optional[UserError]:
    """One line for a failure to ``action`` (read, write, list, ...) ``uri``; None for a
    failure that is not the user's to fix."""
    found = kind(exc)
    if found is None:
        return None
    name, cause = found
    where = redact(shown(uri))
    if name == "no_filesystem":
        scheme = where.split(":", 1)[0]
        return UserError(f"cannot {action} {where}: this Spark has no filesystem for {scheme}:{_scheme_hint(uri)}")
    if name == "no_bucket":
        bucket = urlparse(uri).netloc or where
        return UserError(f"cannot {action} {where}: the bucket {bucket} does not exist (create it, or check the name)")
    if name == "unreachable":
        return UserError(f"cannot {action} {where}: its filesystem cannot be reached ({cause})")
    if name == "full":
        return UserError(f"cannot {action} {where}: no space left ({cause})")
    if name == "read_only":
        return UserError(f"cannot {action} {where}: the filesystem is read-only")
    if name == "denied":
        return UserError(f"cannot {action} {where}: permission denied ({cause})")
    if name == "credentials":
        return UserError(f"cannot {action} {where}: no credentials found ({cause})")
    return UserError(f"{where} is not a valid glob pattern ({cause.split(': ', 1)[-1]}); put a backslash before "
                     f"a literal *, ?, [, ], {{ or }}")


def read_failure(exc: BaseException, name: str) -> Optional[UserError]:
    """A one-line UserError for Spark's failure to read an input file (a corrupt or truncated
    .gz, a file that is not Parquet), naming the file when the message does; None otherwise."""
    text = str(exc)
    if not _READ_FAILED.search(text):
        return None
    match = _FILE_IN_MESSAGE.search(text)
    path = "an input file"
    if match:
        path = shown(canonical_file_uri(unquote(match.group(1))))
    cause = root_cause(exc)
    detail = f" ({cause})" if cause else ""
    return UserError(f"{name}: cannot read {path}{detail}; is the file corrupt or truncated?")
