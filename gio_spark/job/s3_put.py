"""The one thing Hadoop's S3A (before 3.4) cannot do: create an object only if it is absent.

A conditional put (``If-None-Match: *``) is atomic on AWS S3. The client is set up from the
session's S3A settings (endpoint, path-style access, region), so S3 is configured once, in
Spark; credentials come from the standard AWS chain, as for the instance role on EMR. A server
that does not implement the condition gets a check for the key and a plain put: the lock then
reads the object back to see whose it is.
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlparse

from ..errors import UserError
from .uri import redact

REFUSED = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
NOT_IMPLEMENTED = ("NotImplemented", "501")


def _endpoint(fs, bucket: str) -> Optional[str]:
    endpoint = fs.hadoop_conf(f"fs.s3a.bucket.{bucket}.endpoint") or fs.hadoop_conf("fs.s3a.endpoint")
    if not endpoint:
        return None  # boto3's own resolution (AWS_ENDPOINT_URL, the region's endpoint)
    if "://" not in endpoint:
        ssl = (fs.hadoop_conf("fs.s3a.connection.ssl.enabled") or "true").lower() == "true"
        endpoint = f"{'https' if ssl else 'http'}://{endpoint}"
    return endpoint


def client_for(fs, bucket: str):
    import boto3
    from botocore.config import Config

    path_style = (fs.hadoop_conf(f"fs.s3a.bucket.{bucket}.path.style.access")
                  or fs.hadoop_conf("fs.s3a.path.style.access") or "false").lower() == "true"
    region = fs.hadoop_conf(f"fs.s3a.bucket.{bucket}.endpoint.region") or fs.hadoop_conf("fs.s3a.endpoint.region")
    config = Config(s3={"addressing_style": "path" if path_style else "auto"}, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=_endpoint(fs, bucket), region_name=region or None, config=config)


def put_if_absent(fs, uri: str, data: bytes) -> bool:
    """Create the object at ``uri`` with ``data``; False when one is already there."""
    from botocore import exceptions as bx

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    client = client_for(fs, bucket)
    try:
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except client.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REFUSED:
                return False
            if code not in NOT_IMPLEMENTED:
                raise UserError(f"cannot write {redact(uri)}: {code or exc}") from None
        if fs.exists(uri):
            return False
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return True
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
        raise UserError(f"cannot write {redact(uri)}: the S3 endpoint cannot be reached ({exc})") from None
    except bx.NoCredentialsError:
        raise UserError(f"cannot write {redact(uri)}: no AWS credentials found (environment, profile or "
                        f"instance role)") from None
