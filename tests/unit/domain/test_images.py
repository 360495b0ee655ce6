"""What an image upload must be, how long it is kept, and image refs."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from studio_ai.domain.errors import InvalidInput
from studio_ai.domain.images import (
    ImageMeta,
    check_declared_type,
    media_type_of,
    new_image_id,
    new_image_meta,
    sniff_image,
    too_large,
    validate_image_ref,
    validate_retention,
)

MiB = 1024 * 1024


def image_bytes(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    """A real image with some detail, so no format can store it in a few bytes."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_accepts_png_jpeg_and_webp_with_their_size(fmt: str, media_type: str) -> None:
    assert sniff_image(image_bytes(fmt), max_bytes=MiB) == (media_type, 40, 30)


def test_the_type_comes_from_the_bytes_not_a_name() -> None:
    assert sniff_image(image_bytes("JPEG"), max_bytes=MiB)[0] == "image/jpeg"
    with pytest.raises(
        InvalidInput,
        match=r"not a PNG, JPEG or WebP image \(it starts with the "
        r"text 'just some notes\\n",
    ):
        sniff_image(b"just some notes\nrenamed to photo.png\n", max_bytes=MiB)


@pytest.mark.parametrize(
    ("fmt", "what"), [("GIF", "a GIF image"), ("BMP", "a BMP image"), ("TIFF", "a TIFF image")]
)
def test_other_image_formats_are_named(fmt: str, what: str) -> None:
    with pytest.raises(InvalidInput, match=f"not a PNG, JPEG or WebP image .it looks like {what}"):
        sniff_image(image_bytes(fmt), max_bytes=MiB)


def test_binary_junk_shows_its_first_bytes() -> None:
    with pytest.raises(InvalidInput, match="it starts with the bytes 00 01 02 03 fe ff 00 00"):
        sniff_image(b"\x00\x01\x02\x03\xfe\xff\x00\x00" * 4, max_bytes=MiB)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_images_are_refused(fmt: str, keep: float) -> None:
    data = image_bytes(fmt)
    with pytest.raises(InvalidInput, match=r"cannot be decoded \(truncated or corrupt"):
        sniff_image(data[: int(len(data) * keep)], max_bytes=MiB)


def test_a_corrupt_png_chunk_is_refused() -> None:
    data = bytearray(image_bytes("PNG"))
    data[60] ^= 0xFF  # inside the image data: its chunk's CRC no longer matches
    with pytest.raises(InvalidInput, match="starts like a PNG image but cannot be decoded"):
        sniff_image(bytes(data), max_bytes=MiB)


def test_a_header_alone_is_refused_without_echoing_internals() -> None:
    with pytest.raises(InvalidInput) as caught:
        sniff_image(image_bytes("JPEG")[:20], max_bytes=MiB)
    assert "BytesIO" not in caught.value.message
    assert "its header is not valid" in caught.value.message


def test_empty_upload() -> None:
    with pytest.raises(InvalidInput, match="the upload is empty"):
        sniff_image(b"", max_bytes=MiB)


def test_oversize_says_size_and_limit() -> None:
    with pytest.raises(InvalidInput, match=r"^the image is 9.1 MiB; the limit is 8 MiB$"):
        sniff_image(b"\x89PNG\r\n\x1a\n" + bytes(int(9.1 * MiB)), max_bytes=8 * MiB)
    # Where rounding would hide the difference, the bytes are counted.
    assert too_large(8 * MiB + 1, 8 * MiB) == (
        "the image is 8,388,609 bytes; the limit is 8,388,608 bytes"
    )


def test_too_many_pixels_a_side() -> None:
    with pytest.raises(InvalidInput, match="is 100x10 pixels; the limit is 64 pixels a side"):
        sniff_image(image_bytes("PNG", (100, 10)), max_bytes=MiB, max_side_px=64)


def test_content_type_must_name_the_type_of_the_bytes() -> None:
    assert media_type_of("image/png") == "image/png"
    assert media_type_of("IMAGE/JPG; charset=binary") == "image/jpeg"
    assert media_type_of("text/plain") is None
    assert media_type_of(None) is None
    check_declared_type("image/webp", "image/webp")
    with pytest.raises(InvalidInput, match="a JPEG image but Content-Type says image/png"):
        check_declared_type("image/png", "image/jpeg")


def test_retention_with_consent() -> None:
    assert validate_retention(True, 7, 365) == 7
    assert validate_retention(True, 365, 365) == 365
    assert validate_retention(True, None, 365) == 30
    assert validate_retention(True, None, 10) == 10  # the default is capped by the maximum
    assert validate_retention(True, None, 365, default_days=90) == 90
    for days in (0, -1, 366):
        with pytest.raises(InvalidInput, match=f"between 1 and 365 .*; got {days}"):
            validate_retention(True, days, 365)


def test_retention_without_consent() -> None:
    assert validate_retention(False, None, 365) is None
    with pytest.raises(InvalidInput, match="kept only until the jobs that use it finish"):
        validate_retention(False, 30, 365)


def test_new_image_meta_expiry_follows_consent() -> None:
    data = image_bytes("PNG")
    now = datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)

    def meta(consent: bool, retention_days: int | None) -> ImageMeta:
        return new_image_meta(
            workspace_id="ws",
            user_id="u",
            data=data,
            media_type="image/png",
            width=40,
            height=30,
            consent=consent,
            retention_days=retention_days,
            created_at=now,
        )

    kept = meta(True, 30)
    assert kept.created_at == now.replace(microsecond=123000)  # what the store keeps
    assert kept.expires_at == kept.created_at + timedelta(days=30)
    assert kept.sha256 == hashlib.sha256(data).hexdigest()
    assert kept.size_bytes == len(data)
    transient = meta(False, None)
    assert transient.expires_at is None and transient.retention_days is None
    assert kept.image_id != transient.image_id


def test_image_refs() -> None:
    image_id = new_image_id()
    assert validate_image_ref(image_id) == image_id
    assert validate_image_ref(f"image:{image_id}") == image_id
    for bad in (image_id.upper(), image_id[:-1], "img_" + "g" * 32, f"note:{image_id}", ""):
        with pytest.raises(InvalidInput, match="not valid: pass the image_id POST /images"):
            validate_image_ref(bad)


@pytest.mark.parametrize(
    "url", ["https://example.org/cat.png", "data:image/png;base64,iVBORw0KGgo=", "s3://b/k.png"]
)
def test_urls_are_never_fetched(url: str) -> None:
    with pytest.raises(InvalidInput, match="is a URL; URLs are never fetched"):
        validate_image_ref(url)
