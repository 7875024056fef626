"""S3 storage against the real local S3 server: I/O, error mapping, limits."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from infra import storage as storage_module
from infra.errors import InputMissing, InputTooLarge, InvalidJob, StorageUnavailable
from infra.settings import Settings
from infra.storage import S3Storage, S3Uri


def test_put_get_head_list(storage: S3Storage) -> None:
    storage.ensure_bucket("unit")
    storage.put("unit", "a/1.jpg", b"one", content_type="image/jpeg")
    storage.put("unit", "a/2.png", b"two!", content_type="image/png")
    got = storage.get("unit", "a/1.jpg")
    assert got.data == b"one" and got.etag
    assert storage.head("unit", "a/2.png") == (4, storage.get("unit", "a/2.png").etag, {})
    assert storage.head("unit", "a/none") is None
    storage.put("unit", "a/3.png", b"3", content_type="image/png", metadata={"blurq-x": "0.5"})
    assert storage.head("unit", "a/3.png").metadata == {"blurq-x": "0.5"}  # type: ignore[union-attr]
    assert list(storage.list("unit", "a/")) == ["a/1.jpg", "a/2.png", "a/3.png"]


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


class FakeBody:
    """An object body as boto3 hands it over, counting the bytes it gives out."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)
        self.given = 0
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        data = self.stream.read(amt)
        self.given += len(data)
        return data

    def close(self) -> None:
        self.closed = True


def faked(monkeypatch: pytest.MonkeyPatch, body: FakeBody, content_length: int) -> S3Storage:
    """S3Storage whose get_object answers body with the given ContentLength (no server)."""
    storage = S3Storage(Settings(s3_endpoint_url="http://127.0.0.1:9", s3_max_attempts=1))
    answer = {"Body": body, "ContentLength": content_length, "ETag": '"e"'}
    monkeypatch.setattr(storage.client, "get_object", lambda **_: answer)
    return storage


def test_lines_streams_text_lines(storage: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.ensure_bucket("unit")
    text = "één\r\ntwee\n\n# drie\rvier 😀"
    storage.put("unit", "lines.txt", text.encode(), content_type="text/plain")
    assert list(storage.lines("unit", "lines.txt", max_bytes=1000)) == text.splitlines()
    # One byte a read: multi-byte characters and CRLF cut across reads come out whole.
    monkeypatch.setattr(storage_module, "CHUNK_BYTES", 1)
    assert list(storage.lines("unit", "lines.txt", max_bytes=1000)) == text.splitlines()


def test_lines_refuses_an_object_over_the_cap_before_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = FakeBody(b"x\n" * 1000)
    storage = faked(monkeypatch, body, content_length=2000)
    with pytest.raises(InputTooLarge, match="s3://b/k is 2000 bytes, limit 1000"):
        next(storage.lines("b", "k", max_bytes=1000))
    assert body.given == 0 and body.closed


def test_lines_stops_at_the_cap_whatever_size_was_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = FakeBody(b"s3://b/k.jpg\n" * 100_000)  # 1.3 MB behind a reported 10 bytes
    storage = faked(monkeypatch, body, content_length=10)
    read = storage.lines("b", "k", max_bytes=1000)
    with pytest.raises(InputTooLarge, match=r"s3://b/k is larger than 1000 bytes"):
        list(read)
    assert body.given == 1001 and body.closed


def test_lines_refuses_text_that_is_not_utf8(storage: S3Storage) -> None:
    storage.ensure_bucket("unit")
    storage.put("unit", "bin.txt", b"ok\n" + bytes(range(256)), content_type="text/plain")
    with pytest.raises(InvalidJob, match=r"s3://unit/bin\.txt is not UTF-8 text"):
        list(storage.lines("unit", "bin.txt", max_bytes=1000))
    storage.put("unit", "cut.txt", "ok\né".encode()[:-1], content_type="text/plain")
    with pytest.raises(InvalidJob, match="not UTF-8 text"):  # cut inside its last character
        list(storage.lines("unit", "cut.txt", max_bytes=1000))


def test_lines_maps_s3_errors_as_get_does(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.ensure_bucket("unit")
    with pytest.raises(InputMissing, match="NoSuchKey"):
        list(storage.lines("unit", "does/not/exist.txt", max_bytes=100))
    with pytest.raises(InputMissing, match="NoSuchBucket"):
        list(storage.lines("no-such-bucket-here", "x.txt", max_bytes=100))
    with Stubber(storage.client) as stub:
        stub.add_client_error("get_object", "SlowDown", http_status_code=503)
        with pytest.raises(StorageUnavailable, match="SlowDown"):
            list(storage.lines("unit", "k", max_bytes=100))

    class Breaking(FakeBody):
        def read(self, amt: int | None = None) -> bytes:
            raise ReadTimeoutError(endpoint_url="http://s3")

    broken = faked(monkeypatch, Breaking(b""), content_length=10)
    with pytest.raises(StorageUnavailable, match="s3://b/k"):  # the connection drops mid-read
        list(broken.lines("b", "k", max_bytes=100))
