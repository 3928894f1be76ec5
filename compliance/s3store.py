"""The vault's objects on an S3 server (AWS S3, SeaweedFS, MinIO): path-style, boto3.

Uploads are atomic the way S3 makes them: an object appears only when its single PUT or
its multipart upload completes. The ciphertext is first spooled (in memory up to 8 MiB,
else a temporary file) so its SHA-256 can go into the object's metadata
(``x-amz-meta-sha256``); files over ``MULTIPART_THRESHOLD`` go up in parts, and a failed
multipart upload is aborted before the error is raised. ``abort_stale_uploads`` clears
the ones a killed process left behind (the retention job runs it).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .blobstore import BlobExists, BlobNotFound, BlobStoreError, ObjectInfo, check_key, sha256_of

MULTIPART_THRESHOLD = 16 << 20  # bytes; larger objects are uploaded in parts of this size
_SPOOL_IN_MEMORY = 8 << 20  # bytes of ciphertext spooled in memory before a temp file
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


@dataclass(frozen=True)
class S3Settings:
    bucket: str  # an existing bucket
    prefix: str  # key prefix inside the bucket ("" or ending in "/")
    endpoint: str | None  # https://s3.example.com; None: AWS's own endpoints
    region: str  # e.g. "us-east-1"
    access_key: str | None  # None: boto3's usual chain (environment, instance role)
    secret_key: str | None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Settings:
        """``s3://bucket/prefix`` plus endpoint, region and credentials."""
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ValueError(f"storage URL {url!r} is not s3://bucket[/prefix]")
        bucket, _, prefix = url[5:].partition("/")
        prefix = prefix.strip("/")
        return cls(bucket=bucket, prefix=f"{prefix}/" if prefix else "", **kwargs)


class S3Store:
    """A :class:`compliance.blobstore.BlobStore` in one bucket under one key prefix."""

    def __init__(self, settings: S3Settings):
        self.settings = settings
        self.bucket = settings.bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def _key(self, key: str) -> str:
        return self.settings.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """boto3's errors as :class:`BlobStoreError` with a message that says what to check."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(f"no stored object {key}") from None
            if code in ("PreconditionFailed", "412"):
                raise BlobExists(f"an object already exists under {key}") from None
            if code in _DENIED:
                raise BlobStoreError(
                    f"S3 refused access to bucket {self.bucket!r} ({code}): check "
                    "DHF_S3_ACCESS_KEY and DHF_S3_SECRET_KEY and the key's permissions"
                ) from exc
            if code == "NoSuchBucket":
                raise BlobStoreError(
                    f"S3 bucket {self.bucket!r} does not exist: create it, or fix DHF_STORAGE_URL"
                ) from exc
            raise BlobStoreError(f"S3 {code or 'error'} on {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobStoreError(
                f"cannot reach S3 at {self.settings.endpoint or 'AWS'} ({exc}): "
                "check DHF_S3_ENDPOINT and the network"
            ) from exc

    # -- writes ----------------------------------------------------------------------
    def put(self, key: str, chunks: Iterable[bytes], *, if_absent: bool = False) -> ObjectInfo:
        full = self._key(key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks:
                spool.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            spool.seek(0)
            meta = {"sha256": digest.hexdigest()}
            with self._errors(key):
                if size > MULTIPART_THRESHOLD:
                    self._multipart(full, cast(BinaryIO, spool), meta)
                else:
                    extra = {"IfNoneMatch": "*"} if if_absent else {}
                    self._client.put_object(
                        Bucket=self.bucket, Key=full, Body=spool.read(), Metadata=meta, **extra
                    )
        return ObjectInfo(key, size, meta["sha256"])

    def _multipart(self, full: str, spool: BinaryIO, meta: dict[str, str]) -> None:
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=full, Metadata=meta)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            while data := spool.read(MULTIPART_THRESHOLD):
                number = len(parts) + 1
                got = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"PartNumber": number, "ETag": got["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id
                )
            raise

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Abort multipart uploads under our prefix started over ``older_than_s`` ago."""
        cutoff, count = time.time() - older_than_s, 0
        with self._errors(self.settings.prefix or "/"):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.settings.prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        count += 1
        return count

    # -- reads -----------------------------------------------------------------------
    def get(self, key: str) -> BinaryIO:
        with self._errors(key):
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return cast(BinaryIO, body)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            with self._errors(key):
                head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except BlobNotFound:
            return None
        sha = head.get("Metadata", {}).get("sha256")
        if not sha:  # an object written by another tool: hash its bytes
            with contextlib.closing(self.get(key)) as body:
                sha = sha256_of(body)
        return ObjectInfo(key, int(head["ContentLength"]), str(sha))

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in self._keys(prefix):
            info = self.stat(key)
            if info is not None:
                yield info

    def _keys(self, prefix: str) -> Iterator[str]:
        start = len(self.settings.prefix)
        with self._errors(prefix or "/"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.settings.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[start:]

    # -- deletes ---------------------------------------------------------------------
    def delete(self, key: str, *, shred: bool = False) -> bool:
        if not self.exists(key):
            return False
        full = self._key(key)
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=full)
            if shred and self.versioning() != "Off":  # leave no older version behind
                listed = self._client.list_object_versions(Bucket=self.bucket, Prefix=full)
                for version in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
                    if version["Key"] == full:
                        self._client.delete_object(
                            Bucket=self.bucket, Key=full, VersionId=version["VersionId"]
                        )
        return True

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        check_key(prefix.rstrip("/"))
        count = size = 0
        with self._errors(prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.settings.prefix + prefix
            )
            for page in pages:  # up to 1000 keys a page, the most one DeleteObjects takes
                items = page.get("Contents", [])
                if items:
                    self._client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": i["Key"]} for i in items], "Quiet": True},
                    )
                count += len(items)
                size += sum(int(i["Size"]) for i in items)
        return count, size

    def versioning(self) -> str:
        """The bucket's versioning: "Off", "Enabled" or "Suspended"."""
        with self._errors("/"):
            got = self._client.get_bucket_versioning(Bucket=self.bucket)
        return str(got.get("Status") or "Off")

    def describe(self) -> str:
        where = self.settings.endpoint or f"AWS {self.settings.region}"
        return f"s3://{self.bucket}/{self.settings.prefix} at {where}"
