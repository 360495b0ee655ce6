"""Provenance receipts: what is signed, Ed25519 signing and verification, and key handling.

What is signed (reimplement this to verify a receipt anywhere else):

1. Take the receipt JSON object exactly as it was served and remove its `signature` member.
2. Serialise the rest as JSON with every object's keys sorted by code point, no whitespace
   (separators `,` and `:`), characters outside ASCII written as themselves (no `\\u` escapes)
   and the result encoded as UTF-8. Strings are escaped only as JSON requires: `\\"`, `\\\\`,
   `\\b \\f \\n \\r \\t`, other control characters as `\\u00xx` (lowercase hex). A receipt holds
   only strings, integers, booleans, null, arrays and objects, never a float, and its keys are
   ASCII; for such documents this is exactly RFC 8785 (the JSON Canonicalization Scheme), so a
   JCS library gives the same bytes. Times are strings: UTC, ISO 8601, six fractional digits
   and a `Z` (`2025-01-31T09:30:00.123456Z`).
3. `signature.value` is an Ed25519 signature (RFC 8032) of those bytes, base64url without
   padding; `signature.key_id` is the `kid` of the public key in the JWK set served at
   /.well-known/studio-ai-keys.json (`x`: the raw 32-byte public key, base64url).
4. An output is the one the receipt covers when the hex sha256 of its UTF-8 bytes equals
   `output_sha256`.

Because the signature covers the JSON as served rather than this code's model of it, fields
added to receipts later are signed like the rest and older receipts keep verifying.

Key ids default to the first 16 hex digits of the sha256 of the raw public key. Rotation: a
new signing key gets a new id; the old public key stays in the served set (and accepted for
verification) as a retired key, so receipts signed with it remain valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from studio_ai.domain.errors import Conflict
from studio_ai.domain.inference_job import InferenceJob
from studio_ai.schemas.inference import JobStatus
from studio_ai.schemas.receipts import (
    KEY_ID_PATTERN,
    RECEIPT_ID_PATTERN,
    Citation,
    Jwks,
    PublicJwk,
    Receipt,
    ReceiptBody,
    VerifyFailure,
    VerifyResult,
    receipt_timestamp,
)

_KEY_ID = re.compile(KEY_ID_PATTERN)
_RECEIPT_ID = re.compile(RECEIPT_ID_PATTERN)
_SEED_BYTES = 32
_SIGNATURE_BYTES = 64


class KeyConfigError(ValueError):
    """A configured key cannot be used. The message never contains key material."""


class JobNotCompleted(Conflict):
    code = "job_not_completed"


# --- canonical form -----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("object keys must be strings")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return receipt_timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float):
        raise ValueError("a receipt holds no floats: they have no single canonical form")
    if value is None or isinstance(value, str | int):
        return value
    raise ValueError(f"a receipt cannot hold a {type(value).__name__}")


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The canonical UTF-8 JSON of `document` (see the module docstring).

    Raises ValueError for what has no canonical form (floats, non-string keys, lone
    surrogates in strings)."""
    text = json.dumps(_plain(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("a string holds a lone surrogate, which UTF-8 cannot encode") from exc


def signed_bytes(receipt: Mapping[str, Any]) -> bytes:
    """The bytes a receipt's signature covers: its canonical JSON without `signature`."""
    return canonical_json({k: v for k, v in receipt.items() if k != "signature"})


def output_sha256(output: str | bytes) -> str:
    data = output.encode("utf-8") if isinstance(output, str) else output
    return hashlib.sha256(data).hexdigest()


def receipt_id_for(job_id: uuid.UUID, key_id: str) -> str:
    """The one receipt id of a job under a signing key: asking twice gives the same receipt."""
    return "rcpt_" + hashlib.sha256(f"{job_id}:{key_id}".encode()).hexdigest()[:32]


def is_receipt_id(value: str) -> bool:
    return _RECEIPT_ID.match(value) is not None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)


def _signature_bytes(value: str) -> bytes:
    """The 64 signature bytes of `value`, which must be their one canonical base64url form:
    base64 has spare bits in its last character, and a signature changed only there would
    otherwise still decode to the same bytes and verify."""
    raw = _b64decode(value)
    if len(raw) != _SIGNATURE_BYTES or _b64url(raw) != value:
        raise ValueError("not the canonical base64url of a 64-byte Ed25519 signature")
    return raw


# --- issuing and signing ------------------------------------------------------------------


def check_issuable(job: InferenceJob) -> str:
    """The job's output text; JobNotCompleted unless the job completed with one."""
    if job.status is not JobStatus.COMPLETED or job.result is None:
        hint = (
            f"wait until it completes (GET /ai/jobs/{job.job_id})"
            if not job.status.terminal
            else "only a completed job's output can get a receipt"
        )
        raise JobNotCompleted(f"job {job.job_id} is {job.status.value}: {hint}")
    return job.result.text


def receipt_body_for(
    job: InferenceJob,
    *,
    receipt_id: str,
    issued_by: str,
    created_at: datetime,
    citations: Sequence[Citation] = (),
) -> ReceiptBody:
    """The unsigned receipt of a completed job (`citations`: the research sources its output
    cites, for an insights job)."""
    return ReceiptBody(
        receipt_id=receipt_id,
        job_id=job.job_id,
        workspace_id=job.workspace_id,
        user_id=issued_by,
        model_id=job.model_id,
        requested_model_id=job.requested_model_id,
        fallback_reason=job.fallback_reason,
        model_revision=job.revision_sha,
        engine=job.engine.value,
        inputs=list(job.inputs),
        output_sha256=output_sha256(check_issuable(job)),
        citations=list(citations),
        created_at=created_at,
    )


def sign(
    receipt_unsigned: ReceiptBody | Mapping[str, Any], private_key: Ed25519PrivateKey, key_id: str
) -> dict[str, Any]:
    """The signed receipt as a JSON-ready dict: serve and store exactly this."""
    body = (
        receipt_unsigned.model_dump(mode="json")
        if isinstance(receipt_unsigned, ReceiptBody)
        else dict(receipt_unsigned)
    )
    body.pop("signature", None)
    value = private_key.sign(signed_bytes(body))
    return {**body, "signature": {"alg": "Ed25519", "key_id": key_id, "value": _b64url(value)}}


# --- verification -------------------------------------------------------------------------


def verify(
    receipt: Receipt | Mapping[str, Any],
    public_keys: Mapping[str, Ed25519PublicKey],
    output: str | bytes | None = None,
) -> VerifyResult:
    """Whether `receipt` was signed by one of `public_keys` and is unchanged since, and (when
    `output` is given) whether it covers that output."""
    document = receipt.model_dump(mode="json") if isinstance(receipt, Receipt) else receipt
    try:
        parsed = Receipt.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "receipt"
        return _invalid(VerifyFailure.MALFORMED, f"not a receipt: {where}: {first['msg']}")
    key_id, receipt_id = parsed.signature.key_id, parsed.receipt_id
    key = public_keys.get(key_id)
    if key is None:
        known = ", ".join(public_keys) or "none"
        return _invalid(
            VerifyFailure.UNKNOWN_KEY,
            f"signed with key {key_id!r}, which is not one of this deployment's keys (known: "
            f"{known}); it was not issued here, or its key was never published",
            key_id,
            receipt_id,
        )
    try:
        data = signed_bytes(document)
    except ValueError as exc:
        return _invalid(VerifyFailure.MALFORMED, f"not a receipt: {exc}", key_id, receipt_id)
    try:
        signature = _signature_bytes(parsed.signature.value)
        key.verify(signature, data)
    except (InvalidSignature, binascii.Error, ValueError):
        return _invalid(
            VerifyFailure.BAD_SIGNATURE,
            "the signature does not match: a signed field or the signature was changed after "
            "the receipt was issued",
            key_id,
            receipt_id,
        )
    if output is not None and output_sha256(output) != parsed.output_sha256:
        return _invalid(
            VerifyFailure.OUTPUT_MISMATCH,
            "the receipt is authentic, but the output given is not the one it covers (its "
            "sha256 differs from output_sha256)",
            key_id,
            receipt_id,
        )
    return VerifyResult(valid=True, key_id=key_id, receipt_id=receipt_id)


def _invalid(
    reason: VerifyFailure, detail: str, key_id: str | None = None, receipt_id: str | None = None
) -> VerifyResult:
    return VerifyResult(
        valid=False, reason=reason, detail=detail, key_id=key_id, receipt_id=receipt_id
    )


# --- keys ---------------------------------------------------------------------------------


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_seed(private_key: Ed25519PrivateKey) -> str:
    """The key's 32-byte seed, base64: what STUDIO_RECEIPT_SIGNING_KEY holds."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode("ascii")


def load_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from the base64 of its 32-byte seed, or from an unencrypted PEM
    (PKCS#8) private key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyConfigError(
                "the PEM private key cannot be read: use an unencrypted PKCS#8 Ed25519 key "
                "(`openssl genpkey -algorithm ed25519`)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyConfigError("the PEM private key is not an Ed25519 key; use an Ed25519 key")
        return key
    try:
        seed = _b64decode(text)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != _SEED_BYTES:
        raise KeyConfigError(
            "the signing key must be the base64 of a 32-byte Ed25519 seed (`studio-ai receipts "
            "keygen` makes one) or a PEM private key"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """The default key id: the first 16 hex digits of the sha256 of the raw public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise KeyConfigError(
            f"key id {key_id[:80]!r} is not valid: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return key_id


def public_jwk(public_key: Ed25519PublicKey, key_id: str) -> PublicJwk:
    return PublicJwk(x=_b64url(_raw_public(public_key)), kid=key_id)


def public_key_from_jwk(jwk: Mapping[str, Any]) -> tuple[str, Ed25519PublicKey]:
    """(kid, key) of an Ed25519 JWK; a JWK without `kid` gets the default key id."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyConfigError("a public key must be an Ed25519 JWK (kty OKP, crv Ed25519)")
    if jwk.get("alg", "EdDSA") != "EdDSA":
        raise KeyConfigError(f"JWK alg {jwk.get('alg')!r} is not EdDSA")
    x = jwk.get("x")
    try:
        raw = _b64decode(x) if isinstance(x, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _SEED_BYTES:
        raise KeyConfigError("the JWK's x must be the 32-byte public key, base64url")
    key = Ed25519PublicKey.from_public_bytes(raw)
    kid = jwk.get("kid")
    if kid is None:
        return key_id_for(key), key
    if not isinstance(kid, str):
        raise KeyConfigError("the JWK's kid must be a string")
    return check_key_id(kid), key


def load_public_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """(kid, key) from a JWK (JSON), a PEM public key, or the base64 of the raw 32 bytes."""
    text = text.strip()
    if text.startswith("{"):
        try:
            jwk = json.loads(text)
        except ValueError:
            raise KeyConfigError("the public key looks like a JWK but is not valid JSON") from None
        if not isinstance(jwk, dict):
            raise KeyConfigError("a JWK must be a JSON object")
        return public_key_from_jwk(jwk)
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise KeyConfigError("the PEM public key cannot be read") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyConfigError("the PEM public key is not an Ed25519 key")
        return key_id_for(key), key
    try:
        raw = _b64decode(text)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _SEED_BYTES:
        raise KeyConfigError(
            "a public key must be a JWK, a PEM public key, or the base64 of its 32 raw bytes"
        )
    key = Ed25519PublicKey.from_public_bytes(raw)
    return key_id_for(key), key


def public_keys_from_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The keys of a JWK set ({"keys": [...]}) or of a single JWK, by kid. Keys that are not
    Ed25519 are skipped (a set may hold others); a set with none is refused."""
    entries = document.get("keys") if "keys" in document else [document]
    if not isinstance(entries, list):
        raise KeyConfigError("a JWK set's `keys` must be a list")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        kid, key = public_key_from_jwk(entry)
        keys[kid] = key
    if not keys:
        raise KeyConfigError("the key set holds no Ed25519 public key")
    return keys


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class Keyring:
    """The key receipts are signed with (None: issuing is off) and every public key receipts
    are verified with: the active one first, then the retired ones."""

    signing: SigningKey | None
    public_keys: dict[str, Ed25519PublicKey]

    def jwks(self) -> Jwks:
        return Jwks(keys=[public_jwk(key, kid) for kid, key in self.public_keys.items()])


def build_keyring(
    signing_key: str | None, key_id: str | None, retired_public_keys: Iterable[str]
) -> Keyring:
    """The keyring from configuration text; KeyConfigError says which part is wrong."""
    signing: SigningKey | None = None
    public_keys: dict[str, Ed25519PublicKey] = {}
    if signing_key:
        private_key = load_private_key(signing_key)
        kid = check_key_id(key_id) if key_id else key_id_for(private_key.public_key())
        signing = SigningKey(kid, private_key)
        public_keys[kid] = signing.public_key
    for number, text in enumerate(retired_public_keys, start=1):
        try:
            kid, key = load_public_key(text)
        except KeyConfigError as exc:
            raise KeyConfigError(f"retired public key #{number}: {exc}") from None
        known = public_keys.get(kid)
        if known is not None and _raw_public(known) != _raw_public(key):
            raise KeyConfigError(
                f"retired public key #{number}: key id {kid!r} already names another key; "
                "give each key its own id"
            )
        public_keys.setdefault(kid, key)
    return Keyring(signing=signing, public_keys=public_keys)
