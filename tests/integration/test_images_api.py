"""POST /images, GET and DELETE /images/{id} through the running gateway."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.support.stack import Stack

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 50).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


def member(stack: Stack, prefix: str) -> httpx.Client:
    workspace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return stack.client(stack.create_key(workspace, "user-1", "member"))


def post_image(
    client: httpx.Client,
    content: bytes | Iterator[bytes],
    content_type: str = "image/png",
    **params: str,
) -> httpx.Response:
    return client.post(
        "/images",
        params={"consent": "true", **params},
        content=content,
        headers={"Content-Type": content_type},
    )


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    detail: str = body["detail"]
    return detail


def test_upload_then_read_back(stack: Stack) -> None:
    client = member(stack, "images")
    data = image_bytes("PNG")
    created = post_image(client, data, retention_days="7")
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["image_id"].startswith("img_")
    assert view["media_type"] == "image/png"
    assert (view["width"], view["height"]) == (32, 24)
    assert view["size_bytes"] == len(data)
    assert view["sha256"] == hashlib.sha256(data).hexdigest()
    assert (view["consent"], view["retention_days"]) == (True, 7)
    assert view["expires_at"] > view["created_at"]

    fetched = client.get(f"/images/{view['image_id']}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == view
    assert client.get(f"/images/image:{view['image_id']}").json() == view


@pytest.mark.parametrize(("fmt", "content_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_jpeg_and_webp_without_consent(stack: Stack, fmt: str, content_type: str) -> None:
    client = member(stack, "images")
    created = post_image(client, image_bytes(fmt), content_type, consent="false")
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["media_type"] == content_type
    assert (view["consent"], view["retention_days"], view["expires_at"]) == (False, None, None)


def test_another_workspace_cannot_see_or_delete_an_image(stack: Stack) -> None:
    owner, other = member(stack, "images-owner"), member(stack, "images-other")
    image_id = post_image(owner, image_bytes()).json()["image_id"]
    assert "no image" in problem(other.get(f"/images/{image_id}"), 404)
    problem(other.delete(f"/images/{image_id}"), 404)
    assert owner.get(f"/images/{image_id}").status_code == 200
    problem(owner.get(f"/images/img_{uuid.uuid4().hex}"), 404)


def test_delete_then_gone(stack: Stack) -> None:
    client = member(stack, "images")
    image_id = post_image(client, image_bytes()).json()["image_id"]
    deleted = client.delete(f"/images/{image_id}")
    assert deleted.status_code == 204, deleted.text
    assert "deleted with DELETE /images" in problem(client.get(f"/images/{image_id}"), 410)
    problem(client.delete(f"/images/{image_id}"), 410)


def test_bad_images_are_refused_with_the_reason(stack: Stack) -> None:
    client = member(stack, "images")
    text = post_image(client, b"Slide notes: mitochondria\n", "image/png")
    assert "not a PNG, JPEG or WebP image (it starts with the text" in problem(text, 422)

    jpeg = image_bytes("JPEG")
    assert "cannot be decoded (truncated" in problem(post_image(client, jpeg[:-200]), 422)
    mismatch = post_image(client, jpeg, "image/png")
    assert "a JPEG image but Content-Type says image/png" in problem(mismatch, 422)
    assert "the upload is empty" in problem(post_image(client, b""), 422)

    for content_type in ("text/plain", "multipart/form-data; boundary=x", "image/gif"):
        detail = problem(post_image(client, image_bytes(), content_type), 415)
        assert "Content-Type image/png, image/jpeg or image/webp" in detail


def test_consent_and_retention_must_fit_together(stack: Stack) -> None:
    client = member(stack, "images")
    data = image_bytes()
    unconsented = post_image(client, data, consent="false", retention_days="30")
    assert "kept only until the jobs that use it finish" in problem(unconsented, 422)
    assert "between 1 and 365" in problem(post_image(client, data, retention_days="366"), 422)
    assert "consent" in problem(client.post("/images", content=data), 422)
    default = post_image(client, data)
    assert default.status_code == 201 and default.json()["retention_days"] == 30


def test_oversize_is_refused_with_the_limit(stack: Stack) -> None:
    client = member(stack, "images")
    header = image_bytes()[:64]
    big = header + bytes(8 * MiB + 1 - len(header))
    detail = problem(post_image(client, big), 413)
    assert detail == "the image is 8,388,609 bytes; the limit is 8,388,608 bytes"

    # Without Content-Length (chunked), the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        yield header
        for _ in range(9):
            yield bytes(MiB)

    assert "over the limit of 8 MiB" in problem(post_image(client, chunks()), 413)


def test_ids_must_look_like_image_ids_and_keys_are_needed(stack: Stack) -> None:
    client = member(stack, "images")
    assert "not valid" in problem(client.get("/images/not-an-id"), 422)
    problem(stack.client(None).post("/images?consent=true", content=image_bytes()), 401)
