"""The S3 archives adapter on the moto server: what it reports of an upload in progress."""

from __future__ import annotations

from typing import Any

from pgbackups.adapters.archives import ArchiveStore
from tests.conftest import AwsStack


def test_uploaded_so_far_counts_the_parts_of_an_upload_in_progress(aws: AwsStack) -> None:
    bucket, key = aws.settings.bucket_name, "db/2026/archive.dump"
    archives = ArchiveStore(aws.s3, bucket)
    assert archives.uploaded_so_far(key) is None  # not started

    upload_id = aws.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = aws.s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 5 * 2**20
    )
    assert archives.uploaded_so_far(key) == 5 * 2**20

    aws.s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert archives.uploaded_so_far(key) is None  # complete


def test_an_upload_completed_between_listing_and_counting_is_none_in_progress(
    aws: AwsStack,
) -> None:
    bucket, key = aws.settings.bucket_name, "db/2026/archive.dump"
    upload_id = aws.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def abort_first(**_: Any) -> None:
        # The backup finishes its upload just after the API listed it as in progress.
        aws.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    aws.s3.meta.events.register_first("before-call.s3.ListParts", abort_first)
    try:
        assert ArchiveStore(aws.s3, bucket).uploaded_so_far(key) is None
    finally:
        aws.s3.meta.events.unregister("before-call.s3.ListParts", abort_first)
