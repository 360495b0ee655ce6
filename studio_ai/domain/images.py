"""Images for multimodal jobs: what an upload must be, how long it is kept, and image refs.

Pure: the bytes are checked in memory (magic bytes, then Pillow decodes them); storing them is
the image store's job. No URL is ever fetched: an image ref names an uploaded image only.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import warnings
from datetime import datetime, timedelta
from typing import Final

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from studio_ai.domain.errors import InvalidInput
from studio_ai.schemas.images import ImageMediaType

ACCEPTED = "PNG, JPEG or WebP"
MEDIA_TYPES: Final[tuple[ImageMediaType, ...]] = ("image/png", "image/jpeg", "image/webp")
DEFAULT_MAX_SIDE_PX = 8192
DEFAULT_RETENTION_DAYS = 30

# Why an image was deleted, told to a caller who asks for it afterwards (410 Gone).
DELETED_BY_CALLER = "deleted with DELETE /images/{image_id}"
RETENTION_ENDED = "retention ended"
JOBS_FINISHED = "uploaded without consent; deleted when the jobs that used it finished"
NEVER_USED = "uploaded without consent and not used by any job in time"

_IMAGE_ID = re.compile(r"^img_[0-9a-f]{32}$")
_NAMES: dict[ImageMediaType, str] = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WebP",
}
_ALIASES: dict[str, ImageMediaType] = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/webp": "image/webp",
}
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"),
)


class ImageMeta(BaseModel):
    """An uploaded image without its bytes."""

    image_id: str
    workspace_id: str
    user_id: str
    media_type: ImageMediaType
    size_bytes: int
    sha256: str
    width: int
    height: int
    consent: bool
    retention_days: int | None
    created_at: datetime
    expires_at: datetime | None


class ImageTombstone(BaseModel):
    """What is left of a deleted image: enough to answer 410 Gone with the reason."""

    image_id: str
    workspace_id: str
    deleted_at: datetime
    reason: str


def new_image_id() -> str:
    return f"img_{secrets.token_hex(16)}"


def new_image_meta(
    *,
    workspace_id: str,
    user_id: str,
    data: bytes,
    media_type: ImageMediaType,
    width: int,
    height: int,
    consent: bool,
    retention_days: int | None,
    created_at: datetime,
) -> ImageMeta:
    """The metadata of an upload that passed `sniff_image` and `validate_retention`."""
    # Stores keep milliseconds: the upload's answer then matches every later read.
    created_at = created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)
    return ImageMeta(
        image_id=new_image_id(),
        workspace_id=workspace_id,
        user_id=user_id,
        media_type=media_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        consent=consent,
        retention_days=retention_days if consent else None,
        created_at=created_at,
        expires_at=(
            created_at + timedelta(days=retention_days)
            if consent and retention_days is not None
            else None
        ),
    )


def media_type_of(content_type: str | None) -> ImageMediaType | None:
    """The accepted media type a Content-Type header names (parameters ignored), else None."""
    if not content_type:
        return None
    return _ALIASES.get(content_type.split(";", 1)[0].strip().lower())


def sniff_image(
    data: bytes, *, max_bytes: int, max_side_px: int = DEFAULT_MAX_SIDE_PX
) -> tuple[ImageMediaType, int, int]:
    """(media type, width, height) of an accepted image; InvalidInput saying why otherwise.

    The type comes from the bytes, never from a name or header; Pillow then decodes the whole
    image, so a truncated or corrupt file is refused here rather than failing a job later.
    """
    if not data:
        raise InvalidInput(f"the upload is empty: send the image's bytes ({ACCEPTED}) as the body")
    if len(data) > max_bytes:
        raise InvalidInput(too_large(len(data), max_bytes))
    media_type = _magic(data)
    name = _NAMES[media_type]
    try:
        with warnings.catch_warnings():
            # The side limit below refuses what Pillow would only warn about.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[name.upper()]) as image:
                width, height = image.size
                image.verify()
            _check_sides(width, height, max_side_px)
            with Image.open(io.BytesIO(data), formats=[name.upper()]) as image:
                if media_type == "image/jpeg":
                    # Decoding at 1/8 scale still reads every byte but keeps memory small.
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInput(
            f"the {name} image is too large to decode ({exc}); the limit is {max_side_px} "
            "pixels a side"
        ) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        # UnidentifiedImageError's message names the in-memory file object: say it plainly.
        why = (
            "its header is not valid"
            if isinstance(exc, UnidentifiedImageError)
            else _short(str(exc) or type(exc).__name__)
        )
        raise InvalidInput(
            f"the upload starts like a {name} image but cannot be decoded (truncated or "
            f"corrupt: {why}); send the complete file"
        ) from exc
    return media_type, width, height


def check_declared_type(declared: ImageMediaType, found: ImageMediaType) -> None:
    """The Content-Type a caller sent must name the type the bytes are."""
    if declared != found:
        raise InvalidInput(
            f"the body is a {_NAMES[found]} image but Content-Type says {declared}; send "
            f"Content-Type {found}"
        )


def validate_retention(
    consent: bool,
    retention_days: int | None,
    max_days: int,
    *,
    default_days: int = DEFAULT_RETENTION_DAYS,
) -> int | None:
    """Days a consented image is kept (default `default_days`, capped at `max_days`); None
    without consent, where an image is kept only while the jobs that use it run."""
    if not consent:
        if retention_days is not None:
            raise InvalidInput(
                "retention_days applies only with consent=true: an image uploaded without "
                "consent is kept only until the jobs that use it finish, then deleted; drop "
                "retention_days or send consent=true"
            )
        return None
    if retention_days is None:
        return max(1, min(default_days, max_days))
    if not 1 <= retention_days <= max_days:
        raise InvalidInput(
            f"retention_days must be between 1 and {max_days} for an image uploaded with "
            f"consent; got {retention_days}"
        )
    return retention_days


def validate_image_ref(ref: str) -> str:
    """The image id an image ref names: `img_<32 hex>` or `image:img_<32 hex>`."""
    image_id = ref.removeprefix("image:")
    if _IMAGE_ID.match(image_id):
        return image_id
    if "://" in ref or ref.startswith("data:"):
        raise InvalidInput(
            f"image ref {_short(ref)!r} is a URL; URLs are never fetched: upload the image with "
            "POST /images and pass the image_id it returns"
        )
    raise InvalidInput(
        f"image ref {_short(ref)!r} is not valid: pass the image_id POST /images returned "
        "('img_' and 32 lowercase hex digits)"
    )


def _magic(data: bytes) -> ImageMediaType:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise InvalidInput(f"the upload is not a {ACCEPTED} image ({_looks_like(data)})")


def _looks_like(data: bytes) -> str:
    for magic, what in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"it looks like {what}"
    if data[4:8] == b"ftyp" and data[8:11] in (b"hei", b"hev", b"mif", b"avi"):
        return "it looks like a HEIC or AVIF image"
    for cut in (24, 23, 22, 21):  # a UTF-8 character may be cut at the end
        try:
            text = data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return f"it starts with the text {text!r}"
        break
    return f"it starts with the bytes {data[:8].hex(' ')}"


def _check_sides(width: int, height: int, max_side_px: int) -> None:
    if width < 1 or height < 1:
        raise InvalidInput(f"the image is {width}x{height} pixels; it has no pixels")
    if width > max_side_px or height > max_side_px:
        raise InvalidInput(
            f"the image is {width}x{height} pixels; the limit is {max_side_px} pixels a side"
        )


def too_large(size_bytes: int, max_bytes: int) -> str:
    """Says an upload of `size_bytes` is over the limit."""
    size, limit = format_size(size_bytes), format_size(max_bytes)
    if size == limit:
        size, limit = f"{size_bytes:,} bytes", f"{max_bytes:,} bytes"
    return f"the image is {size}; the limit is {limit}"


def format_size(n: int) -> str:
    """Bytes as a person reads them: 512 bytes, 12.5 KiB, 8 MiB."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{_num(n / 1024)} KiB"
    return f"{_num(n / (1024 * 1024))} MiB"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
