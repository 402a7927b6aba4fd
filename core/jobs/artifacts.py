"""Job artifacts in S3: large payloads and documents, under `{tenant}/{job}/{name}`, encrypted at rest.

The key prefix always comes from the tenant context and the job id (never from input), so an artifact of
one tenant can never be named, listed or served for another.
"""
from __future__ import annotations

import re
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from core.platform.errors import Unavailable
from core.platform.runtime import aws_client, settings
from tenancy.context import current_tenant

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\Z")
URL_TTL = 300


def _prefix(job_id) -> str:
    return f"{current_tenant().slug}/{uuid.UUID(str(job_id))}/"


def put(job_id, name: str, body: bytes, content_type: str = "application/json") -> str:
    if not NAME.match(name):
        raise ValueError(f"artifact name {name!r} is not a plain file name")
    key = _prefix(job_id) + name
    aws_client("s3").put_object(Bucket=settings().artifacts_bucket, Key=key, Body=body, ContentType=content_type,
                                ServerSideEncryption="AES256")
    return key


class StorageUnavailable(Unavailable):
    code = "artifact-storage-unavailable"


def list_for_job(job_id) -> list[dict]:
    """The job's artifacts with short-lived download links (the caller has already checked the job is theirs)."""
    try:
        return _list(job_id)
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"artifact storage cannot be read right now ({type(exc).__name__})") from None


def _list(job_id) -> list[dict]:
    s3, bucket, prefix = aws_client("s3"), settings().artifacts_bucket, _prefix(job_id)
    items, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        for obj in page.get("Contents") or []:
            items.append({"name": obj["Key"][len(prefix):], "size": obj["Size"], "modified_at": obj["LastModified"],
                          "url": s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": obj["Key"]},
                                                           ExpiresIn=URL_TTL),
                          "expires_in": URL_TTL})
        if not page.get("IsTruncated"):
            return items
        token = page.get("NextContinuationToken")
