"""Provenance receipts: a signed statement of which model, engine and inputs made a job's output.

A receipt is issued when an output becomes a shareable asset (POST /ai/jobs/{job_id}/receipt)
and signed with Ed25519. The signed bytes are the canonical JSON of the receipt without its
`signature` member (see studio_ai.domain.receipts); public keys are served as a JWK set at
/.well-known/studio-ai-keys.json, so anyone can verify a receipt offline.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from studio_ai.schemas.audit import InputRef

RECEIPT_ID_PATTERN = r"^rcpt_[0-9a-f]{32}$"
KEY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def receipt_timestamp(value: datetime) -> str:
    """UTC, ISO 8601 with microseconds and a 'Z': the one way a receipt writes a time."""
    if value.tzinfo is None:
        raise ValueError("receipt times must carry a time zone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Citation(BaseModel):
    """A research source the output cites (filled by research insights; empty for plain jobs)."""

    ref: str = Field(max_length=200, description="The source's ref, e.g. doi:10.1000/x.")
    title: str | None = Field(default=None, max_length=500, description="The source's title.")
    url: str | None = Field(default=None, max_length=2000, description="Where to read it.")


class ReceiptBody(BaseModel):
    """Every signed field of a receipt: the receipt without its signature."""

    # Unknown fields are ignored, not refused: a newer issuer may add fields (they are signed
    # like the rest, since the signature covers the received JSON, not this model).
    model_config = ConfigDict(protected_namespaces=())

    receipt_id: str = Field(
        pattern=RECEIPT_ID_PATTERN, description="rcpt_ + 32 hex digits; one per job and key."
    )
    version: Literal[1] = Field(default=1, description="Receipt format version.")
    job_id: uuid.UUID = Field(description="The inference job whose output this receipt covers.")
    workspace_id: str = Field(description="The workspace the job ran in.")
    user_id: str = Field(description="Who issued the receipt.")
    model_id: str = Field(description="The model that produced the output (after fallback).")
    requested_model_id: str = Field(description="The model the job asked for.")
    fallback_reason: str | None = Field(
        description="Why the job ran on another model than it asked for; null when it did not."
    )
    model_revision: str | None = Field(
        description="Commit sha of the installed model; null for built-in engines."
    )
    engine: str = Field(description="The engine that ran it: vllm, tgi, transformers, extractive.")
    inputs: list[InputRef] = Field(
        description="Every input by ref with the sha256 of its content (prompt, context, images)."
    )
    output_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the output text, UTF-8 encoded."
    )
    citations: list[Citation] = Field(
        default_factory=list, description="Research sources the output cites; may be empty."
    )
    created_at: datetime = Field(description="When the receipt was issued (UTC).")

    @field_serializer("created_at")
    def _utc_z(self, value: datetime) -> str:
        return receipt_timestamp(value)


class ReceiptSignature(BaseModel):
    """The Ed25519 signature over the canonical JSON of the receipt's other fields."""

    alg: Literal["Ed25519"] = Field(default="Ed25519", description="Signature algorithm.")
    key_id: str = Field(
        pattern=KEY_ID_PATTERN, description="`kid` of the signing key in the served key set."
    )
    value: str = Field(
        pattern=r"^[A-Za-z0-9_-]{86}$",
        description="The 64-byte signature, base64url without padding.",
    )


class Receipt(ReceiptBody):
    """A signed receipt, served exactly as it was signed."""

    signature: ReceiptSignature = Field(description="Signature over every other field.")


class VerifyFailure(StrEnum):
    MALFORMED = "malformed"  # not a receipt: missing or invalid fields
    UNKNOWN_KEY = "unknown_key"  # signed by a key this deployment does not hold
    BAD_SIGNATURE = "bad_signature"  # a signed field or the signature itself was changed
    OUTPUT_MISMATCH = "output_mismatch"  # the given output is not the one the receipt covers


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: dict[str, object] = Field(
        description="A receipt as POST /ai/jobs/{job_id}/receipt returned it (JSON object)."
    )
    output: str | None = Field(
        default=None,
        description="The output text to check against the receipt's output_sha256; "
        "omit it to check the signature only.",
    )


class VerifyResult(BaseModel):
    valid: bool = Field(description="True when the signature holds (and the output matches).")
    reason: VerifyFailure | None = Field(
        default=None, description="Why it is not valid; null when it is."
    )
    detail: str | None = Field(default=None, description="The reason in a sentence.")
    key_id: str | None = Field(default=None, description="The receipt's signing key id.")
    receipt_id: str | None = Field(default=None, description="The receipt's id, when readable.")


class PublicJwk(BaseModel):
    """An Ed25519 public key as a JWK (RFC 8037)."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str = Field(description="The 32-byte public key, base64url without padding.")
    kid: str = Field(pattern=KEY_ID_PATTERN, description="Key id a receipt's signature names.")
    alg: Literal["EdDSA"] = "EdDSA"
    use: Literal["sig"] = "sig"


class Jwks(BaseModel):
    """The public keys receipts are verified with: the active key first, then retired ones."""

    keys: list[PublicJwk] = Field(description="Public keys, by kid.")
