"""Datastore storage in an S3 bucket (AWS or any S3-compatible endpoint), through boto3.

Clients upload parts straight to S3 with presigned ``UploadPart`` URLs and download with presigned
``GetObject`` URLs, so data never passes through the control plane. Credentials come from boto3's usual
chain (environment, shared files, instance roles).

An object of one part (most files of a dataset) is not a multipart upload: the client PUTs it with a
presigned ``PutObject`` URL and completing it only checks its size and ETag, one request instead of
three. Such an upload abandoned after its PUT leaves the object at its content address, where the next
upload of the same content replaces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, cast

from grid_ops.server.storage.base import MIB, Assembled, BlobStore, PartInfo, StorageError, UploadRef, clean_etag


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client (path-style addressing for custom endpoints, SigV4 signatures)."""
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
        raise StorageError("the s3 storage backend needs boto3: pip install 'grid-ops[s3]'") from exc
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store(BlobStore):
    """Objects under ``s3://bucket/prefix/``."""

    kind = "s3"
    min_part_size = 5 * MIB

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.client = s3_client(endpoint_url, region)

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, exc: Exception) -> StorageError:
        detail = str(exc)
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            detail = f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ") or detail
        return StorageError(f"S3 storage {self.describe()} failed to {action}: {detail}")

    def _call(self, action: str, method: str, **params: Any) -> Any:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**params)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise self._fail(action, exc) from exc

    @staticmethod
    def _code(exc: BaseException) -> str:
        cause = exc.__cause__
        response = getattr(cause, "response", None)
        return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""

    # ------------------------------------------------------------------ multipart uploads

    def start_upload(self, object_key: str, upload_id: str, part_count: int) -> str:
        if part_count == 1:
            return ""  # one PutObject, no multipart upload
        answer = self._call("start an upload", "create_multipart_upload", Bucket=self.bucket, Key=self._key(object_key))
        return str(answer["UploadId"])

    def part_urls(self, ref: UploadRef, part_numbers: list[int], expires_in: int, base_url: str) -> dict[int, str]:
        key = self._key(ref.object_key)
        if not ref.backend_upload_id:
            url = self._call(
                "sign an upload URL",
                "generate_presigned_url",
                ClientMethod="put_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=expires_in,
            )
            return {n: str(url) for n in part_numbers if n == 1}
        return {
            n: str(
                self._call(
                    "sign an upload URL",
                    "generate_presigned_url",
                    ClientMethod="upload_part",
                    Params={"Bucket": self.bucket, "Key": key, "UploadId": ref.backend_upload_id, "PartNumber": n},
                    ExpiresIn=expires_in,
                )
            )
            for n in part_numbers
        }

    def _single(self, ref: UploadRef) -> dict[int, PartInfo]:
        """The object PUT in one request, as its only part (nothing if it has not arrived)."""
        try:
            answer = self._call(
                "read an uploaded object", "head_object", Bucket=self.bucket, Key=self._key(ref.object_key)
            )
        except StorageError as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return {}
            raise
        return {1: PartInfo(number=1, size=int(answer["ContentLength"]), etag=clean_etag(answer["ETag"]))}

    def list_parts(self, ref: UploadRef) -> dict[int, PartInfo]:
        if not ref.backend_upload_id:
            return self._single(ref)
        parts: dict[int, PartInfo] = {}
        marker = 0
        while True:
            try:
                answer = self._call(
                    "list the parts of an upload",
                    "list_parts",
                    Bucket=self.bucket,
                    Key=self._key(ref.object_key),
                    UploadId=ref.backend_upload_id,
                    PartNumberMarker=marker,
                )
            except StorageError as exc:
                if self._code(exc) == "NoSuchUpload":
                    return {}
                raise
            for p in answer.get("Parts", []):
                n = int(p["PartNumber"])
                parts[n] = PartInfo(number=n, size=int(p["Size"]), etag=clean_etag(p["ETag"]))
            if not answer.get("IsTruncated"):
                return parts
            marker = int(answer["NextPartNumberMarker"])

    def complete_upload(self, ref: UploadRef, parts: list[PartInfo], expect_blake3: str | None = None) -> Assembled:
        expected = sum(p.size for p in parts)
        if not ref.backend_upload_id:  # in place since its PUT; its size and ETag were checked from list_parts
            return Assembled(size=expected, blake3=None)
        try:
            self._call(
                "complete an upload",
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=self._key(ref.object_key),
                UploadId=ref.backend_upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]},
            )
        except StorageError as exc:
            # completed by an earlier call whose answer was lost: the object is there with its size
            if self._code(exc) != "NoSuchUpload" or self.object_size(ref.object_key) != expected:
                raise
        return Assembled(size=expected, blake3=None)

    def abort_upload(self, ref: UploadRef) -> None:
        if not ref.backend_upload_id:
            if ref.object_key.startswith("staging/"):  # its own key; a content address may be another's too
                self.delete_object(ref.object_key)
            return
        try:
            self._call(
                "abort an upload",
                "abort_multipart_upload",
                Bucket=self.bucket,
                Key=self._key(ref.object_key),
                UploadId=ref.backend_upload_id,
            )
        except StorageError as exc:
            if self._code(exc) != "NoSuchUpload":
                raise

    # ------------------------------------------------------------------ whole objects

    def object_size(self, key: str) -> int | None:
        try:
            answer = self._call("read an object's size", "head_object", Bucket=self.bucket, Key=self._key(key))
        except StorageError as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(answer["ContentLength"])

    def open_object(self, key: str) -> BinaryIO:
        answer = self._call("read an object", "get_object", Bucket=self.bucket, Key=self._key(key))
        return cast(BinaryIO, answer["Body"])

    def put_file(self, key: str, path: Path) -> None:
        self._call("store a file", "upload_file", Filename=str(path), Bucket=self.bucket, Key=self._key(key))

    def copy_object(self, source_key: str, key: str) -> None:
        self._call(
            "copy an object",
            "copy",
            CopySource={"Bucket": self.bucket, "Key": self._key(source_key)},
            Bucket=self.bucket,
            Key=self._key(key),
        )

    def delete_object(self, key: str) -> None:
        self._call("delete an object", "delete_object", Bucket=self.bucket, Key=self._key(key))

    def download_url(self, key: str, expires_in: int, base_url: str) -> str:
        return str(
            self._call(
                "sign a download URL",
                "generate_presigned_url",
                ClientMethod="get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=expires_in,
            )
        )
