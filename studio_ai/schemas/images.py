"""Images uploaded for multimodal inference jobs: the HTTP view of one image."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ImageMediaType = Literal["image/png", "image/jpeg", "image/webp"]


class ImageView(BaseModel):
    """An uploaded image's metadata; the bytes are never served back."""

    image_id: str = Field(description="Id to pass in a job's image_refs (img_ + 32 hex digits).")
    media_type: ImageMediaType = Field(description="The type found in the bytes.")
    size_bytes: int = Field(description="Size of the stored bytes.")
    sha256: str = Field(description="sha256 of the stored bytes, hex.")
    width: int = Field(description="Width in pixels.")
    height: int = Field(description="Height in pixels.")
    consent: bool = Field(
        description="True: kept for retention_days. False: kept only until the jobs that use "
        "it finish, then deleted."
    )
    retention_days: int | None = Field(
        description="Days a consented image is kept; null for an image without consent."
    )
    expires_at: datetime | None = Field(
        description="When a consented image is deleted; null without consent (deleted when "
        "its jobs finish)."
    )
    created_at: datetime = Field(description="When it was uploaded.")
