"""S3 storage against the real local S3 server: I/O, error mapping, limits."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from infra.errors import InputMissing, InputTooLarge, InvalidJob, StorageUnavailable
from infra.settings import Settings
from infra.storage import S3Storage, S3Uri


def test_put_get_head_list(storage: S3Storage) -> None:
    storage.ensure_bucket("unit")
    storage.put("unit", "a/1.jpg", b"one", content_type="image/jpeg")
    storage.put("unit", "a/2.png", b"two!", content_type="image/png")
    got = storage.get("unit", "a/1.jpg")
    assert got.data == b"one" and got.etag
    assert storage.head("unit", "a/2.png") == (4, storage.get("unit", "a/2.png").etag)
    assert storage.head("unit", "a/none") is None
    assert list(storage.list("unit", "a/")) == ["a/1.jpg", "a/2.png"]


def test_missing_key_is_permanent(storage: S3Storage) -> None:
    storage.ensure_bucket("unit")
    with pytest.raises(InputMissing, match="NoSuchKey"):
        storage.get("unit", "does/not/exist.jpg")
    with pytest.raises(InputMissing):
        storage.get("no-such-bucket-here", "x.jpg")


def test_byte_limit_is_checked_before_reading(storage: S3Storage) -> None:
    storage.ensure_bucket("unit")
    storage.put("unit", "big.bin", b"x" * 2048, content_type="application/octet-stream")
    with pytest.raises(InputTooLarge, match="2048 bytes"):
        storage.get("unit", "big.bin", max_bytes=1024)


def test_unreachable_endpoint_is_transient() -> None:
    dead = Settings(
        s3_endpoint_url="http://127.0.0.1:9",
        s3_max_attempts=2,
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    with pytest.raises(StorageUnavailable):
        S3Storage(dead).get("b", "k")


def test_uri_parsing() -> None:
    assert S3Uri.parse("s3://bucket/a/b.jpg") == S3Uri("bucket", "a/b.jpg")
    assert str(S3Uri("b", "k")) == "s3://b/k"
    for bad in ("http://x/y", "s3:///key", "/local/file.jpg"):
        with pytest.raises(InvalidJob):
            S3Uri.parse(bad)


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",
        "a" * 64,
        "Shop-A",
        "shop_a",
        "-shop",
        "shop-",
        "shop..a",
        "192.168.0.1",
        "xn--shop",
        "shop-s3alias",
        "shop a",
        "shop%2fa",
    ],
)
def test_invalid_bucket_names_are_an_invalid_job(bucket: str) -> None:
    with pytest.raises(InvalidJob, match="not a valid S3 bucket name"):
        S3Uri.parse(f"s3://{bucket}/photos/a.jpg")


def test_valid_bucket_names_parse() -> None:
    for bucket in ("abc", "a" * 63, "shop-a.photos", "1shop", "192.168.0.1a"):
        assert S3Uri.parse(f"s3://{bucket}/k").bucket == bucket


def test_a_bucket_name_s3_refuses_is_permanent_not_retried(storage: S3Storage) -> None:
    # Past our parser (a direct call): botocore refusing the name is an InvalidJob...
    with pytest.raises(InvalidJob):
        storage.get("bad/bucket", "k")
    # ...and so is S3's InvalidBucketName (the local S3 server accepts any name: S3's answer
    # is played by botocore's Stubber).
    with Stubber(storage.client) as stub:
        stub.add_client_error("get_object", "InvalidBucketName", http_status_code=400)
        with pytest.raises(InvalidJob, match="InvalidBucketName"):
            storage.get("Bad_Bucket", "k")
