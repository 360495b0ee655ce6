"""Receipts: the canonical form is deterministic, a signed receipt verifies with the public key
alone, and any change to it (or a foreign key) is detected with the right reason."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from studio_ai.domain.inference_job import InferenceJob, JobResult
from studio_ai.domain.receipts import (
    JobNotCompleted,
    KeyConfigError,
    build_keyring,
    canonical_json,
    check_issuable,
    key_id_for,
    load_private_key,
    load_public_key,
    public_jwk,
    public_key_from_jwk,
    public_keys_from_jwks,
    receipt_body_for,
    receipt_id_for,
    sign,
    signed_bytes,
    verify,
)
from studio_ai.schemas.audit import InputRef
from studio_ai.schemas.inference import EngineName, JobStatus
from studio_ai.schemas.models import ModelTask
from studio_ai.schemas.receipts import Receipt, VerifyFailure

# RFC 8032, section 7.1, test 1.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b"
)
OUTPUT = "Semaglutide reduced body weight by 14.9 percent [note:note_1]."
JOB_ID = uuid.UUID("6f1c2a4e-8d2b-4c1e-9f3a-0b5d3f4e39c1")


def completed_job(**changes: Any) -> InferenceJob:
    job = InferenceJob(
        job_id=JOB_ID,
        workspace_id="acme",
        user_id="alice",
        status=JobStatus.COMPLETED,
        task=ModelTask.FAST_TEXT,
        requested_model_id="meta-llama/Llama-3.2-1B-Instruct",
        model_id="studio-ai/extractive",
        fallback_reason="model 'meta-llama/Llama-3.2-1B-Instruct' is not installed",
        pool="builtin",
        engine=EngineName.EXTRACTIVE,
        revision_sha=None,
        inputs=[
            InputRef(ref="prompt", sha256=hashlib.sha256(b"Summarise.").hexdigest()),
            InputRef(ref="note:note_1", sha256=hashlib.sha256(b"Abstract.").hexdigest()),
        ],
        result=JobResult(text=OUTPUT, finish_reason="stop"),
    )
    return job.model_copy(update=changes)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(RFC_SEED)


@pytest.fixture
def signed(key: Ed25519PrivateKey) -> dict[str, Any]:
    kid = key_id_for(key.public_key())
    body = receipt_body_for(
        completed_job(),
        receipt_id=receipt_id_for(JOB_ID, kid),
        issued_by="bob",
        created_at=datetime(2025, 1, 31, 9, 30, 0, 123456, tzinfo=UTC),
    )
    return sign(body, key, kid)


def keys_of(key: Ed25519PrivateKey) -> dict[str, Any]:
    return {key_id_for(key.public_key()): key.public_key()}


# --- canonical form -----------------------------------------------------------------------


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_utf8() -> None:
    document = {"b": [1, {"z": None, "a": True}], "a": "Grüße\n\u2028", "c": "\x01"}
    assert canonical_json(document) == (
        '{"a":"Grüße\\n\u2028","b":[1,{"a":true,"z":null}],"c":"\\u0001"}'.encode()
    )


def test_canonical_json_writes_times_in_utc_with_microseconds_and_z() -> None:
    paris = timezone(timedelta(hours=1))
    same_instant = [
        datetime(2025, 1, 31, 10, 30, tzinfo=paris),
        datetime(2025, 1, 31, 9, 30, tzinfo=UTC),
    ]
    assert {canonical_json({"t": t}) for t in same_instant} == {
        b'{"t":"2025-01-31T09:30:00.000000Z"}'
    }
    assert canonical_json({"id": JOB_ID}) == f'{{"id":"{JOB_ID}"}}'.encode()


@pytest.mark.parametrize("bad", [{"x": 1.5}, {"x": "\ud800"}, {"x": {1: "a"}}, {"x": object()}])
def test_what_has_no_canonical_form_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        canonical_json(bad)


def test_the_signed_bytes_are_the_served_json_without_its_signature(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    expected = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert signed_bytes(signed) == expected.encode()
    # What an outside verifier does, with nothing of ours but the public key's bytes.
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    value = signed["signature"]["value"]
    raw_signature = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    Ed25519PublicKey.from_public_bytes(public).verify(raw_signature, expected.encode())


def test_ed25519_matches_the_rfc_8032_test_vector(key: Ed25519PrivateKey) -> None:
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert public.hex() == RFC_PUBLIC
    assert key.sign(b"").hex() == RFC_SIGNATURE


# --- issuing ------------------------------------------------------------------------------


def test_a_receipt_holds_the_jobs_model_inputs_output_hash_and_fallback(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    receipt = Receipt.model_validate(signed)
    assert receipt.receipt_id == receipt_id_for(JOB_ID, key_id_for(key.public_key()))
    assert receipt.receipt_id.startswith("rcpt_") and len(receipt.receipt_id) == 37
    assert receipt.job_id == JOB_ID and receipt.workspace_id == "acme"
    assert receipt.user_id == "bob"
    assert receipt.model_id == "studio-ai/extractive"
    assert receipt.requested_model_id == "meta-llama/Llama-3.2-1B-Instruct"
    assert receipt.fallback_reason and "not installed" in receipt.fallback_reason
    assert receipt.engine == "extractive" and receipt.model_revision is None
    assert [i.ref for i in receipt.inputs] == ["prompt", "note:note_1"]
    assert receipt.output_sha256 == hashlib.sha256(OUTPUT.encode()).hexdigest()
    assert receipt.citations == []
    assert signed["created_at"] == "2025-01-31T09:30:00.123456Z"
    assert signed["signature"]["alg"] == "Ed25519"
    assert signed["signature"]["key_id"] == key_id_for(key.public_key())


def test_receipt_ids_are_stable_per_job_and_key() -> None:
    assert receipt_id_for(JOB_ID, "k1") == receipt_id_for(JOB_ID, "k1")
    assert receipt_id_for(JOB_ID, "k1") != receipt_id_for(JOB_ID, "k2")
    assert receipt_id_for(JOB_ID, "k1") != receipt_id_for(uuid.uuid4(), "k1")


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED])
def test_only_a_completed_job_gets_a_receipt(status: JobStatus) -> None:
    with pytest.raises(JobNotCompleted, match=status.value):
        check_issuable(completed_job(status=status, result=None))


# --- verification -------------------------------------------------------------------------


def test_a_signed_receipt_verifies_with_only_the_public_key(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    result = verify(signed, keys_of(key), OUTPUT)
    assert result.valid and result.reason is None
    assert result.key_id == key_id_for(key.public_key())
    assert verify(signed, keys_of(key)).valid  # without the output: the signature alone
    assert verify(Receipt.model_validate(signed), keys_of(key), OUTPUT.encode()).valid


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_id", "meta-llama/Llama-3.2-1B-Instruct"),
        ("created_at", "2025-01-31T09:30:00.123457Z"),
        ("output_sha256", "0" * 64),
        ("workspace_id", "other"),
        ("model_revision", "a" * 40),
        ("fallback_reason", None),
        ("inputs", [{"ref": "prompt", "sha256": "1" * 64}]),
        ("citations", [{"ref": "doi:10.1000/x", "title": None, "url": None}]),
    ],
)
def test_a_changed_field_breaks_the_signature(
    signed: dict[str, Any], key: Ed25519PrivateKey, field: str, value: Any
) -> None:
    tampered = {**copy.deepcopy(signed), field: value}
    result = verify(tampered, keys_of(key))
    assert not result.valid and result.reason is VerifyFailure.BAD_SIGNATURE
    assert "changed" in (result.detail or "")


def test_an_added_field_breaks_the_signature(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    result = verify({**signed, "approved": True}, keys_of(key))
    assert result.reason is VerifyFailure.BAD_SIGNATURE


def test_a_changed_signature_is_detected(signed: dict[str, Any], key: Ed25519PrivateKey) -> None:
    tampered = copy.deepcopy(signed)
    value = tampered["signature"]["value"]
    tampered["signature"]["value"] = ("B" if value[0] == "A" else "A") + value[1:]
    assert verify(tampered, keys_of(key)).reason is VerifyFailure.BAD_SIGNATURE


def test_another_output_is_a_mismatch(signed: dict[str, Any], key: Ed25519PrivateKey) -> None:
    result = verify(signed, keys_of(key), OUTPUT + " Edited.")
    assert not result.valid and result.reason is VerifyFailure.OUTPUT_MISMATCH


def test_a_receipt_from_another_key_is_refused(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    forged = sign(signed, other, key_id_for(other.public_key()))
    result = verify(forged, keys_of(key), OUTPUT)
    assert not result.valid and result.reason is VerifyFailure.UNKNOWN_KEY
    # Another key claiming our key id is caught by the signature.
    impostor = sign(signed, other, key_id_for(key.public_key()))
    assert verify(impostor, keys_of(key), OUTPUT).reason is VerifyFailure.BAD_SIGNATURE


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: {k: v for k, v in r.items() if k != "signature"},
        lambda r: {**r, "receipt_id": "rcpt_nothex"},
        lambda r: {**r, "signature": {**r["signature"], "value": "short"}},
        lambda r: {**r, "version": 2},
        lambda r: {**r, "extra": 1.5},
    ],
)
def test_a_malformed_receipt_says_so(
    signed: dict[str, Any], key: Ed25519PrivateKey, mangle: Any
) -> None:
    result = verify(mangle(signed), keys_of(key))
    assert not result.valid and result.reason is VerifyFailure.MALFORMED
    assert result.detail


# --- keys ---------------------------------------------------------------------------------


def test_a_private_key_loads_from_its_base64_seed_or_pem(key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    for text in (
        base64.b64encode(RFC_SEED).decode(),
        base64.urlsafe_b64encode(RFC_SEED).decode().rstrip("="),
        pem,
    ):
        loaded = load_private_key(text)
        assert loaded.sign(b"x") == key.sign(b"x")


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_an_unusable_private_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(KeyConfigError, match="32-byte") as caught:
        load_private_key(text)
    assert not text or text not in str(caught.value)


def test_a_jwk_round_trips(key: Ed25519PrivateKey) -> None:
    kid = key_id_for(key.public_key())
    jwk = public_jwk(key.public_key(), kid).model_dump()
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(bytes.fromhex(RFC_PUBLIC)).decode().rstrip("="),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert kid == hashlib.sha256(bytes.fromhex(RFC_PUBLIC)).hexdigest()[:16]
    loaded_kid, loaded = public_key_from_jwk(jwk)
    assert loaded_kid == kid and loaded.public_bytes_raw() == bytes.fromhex(RFC_PUBLIC)
    assert load_public_key(json.dumps(jwk))[0] == kid
    raw = base64.b64encode(bytes.fromhex(RFC_PUBLIC)).decode()
    assert load_public_key(raw)[0] == kid
    with pytest.raises(KeyConfigError):
        public_key_from_jwk({**jwk, "crv": "X25519"})


def test_rotation_keeps_old_receipts_verifiable(
    signed: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    new_key = Ed25519PrivateKey.generate()
    old_jwk = json.dumps(public_jwk(key.public_key(), signed["signature"]["key_id"]).model_dump())
    ring = build_keyring(
        base64.b64encode(new_key.private_bytes_raw()).decode(), "2025-02", [old_jwk]
    )
    assert ring.signing is not None and ring.signing.key_id == "2025-02"
    assert [k.kid for k in ring.jwks().keys] == ["2025-02", signed["signature"]["key_id"]]
    assert verify(signed, ring.public_keys, OUTPUT).valid
    # Keys from the served set alone verify it too (what `receipts verify --keys` does).
    served = public_keys_from_jwks(ring.jwks().model_dump())
    assert verify(signed, served, OUTPUT).valid


def test_a_keyring_without_a_signing_key_still_verifies(signed: dict[str, Any]) -> None:
    old = base64.b64encode(bytes.fromhex(RFC_PUBLIC)).decode()
    ring = build_keyring(None, None, [old])
    assert ring.signing is None
    assert verify(signed, ring.public_keys).valid


def test_a_bad_keyring_says_which_key_is_wrong() -> None:
    with pytest.raises(KeyConfigError, match="retired public key #2"):
        build_keyring(None, None, [base64.b64encode(bytes.fromhex(RFC_PUBLIC)).decode(), "{x"])
    other = Ed25519PrivateKey.generate()
    clash = json.dumps(public_jwk(other.public_key(), "k1").model_dump())
    with pytest.raises(KeyConfigError, match="already names another key"):
        build_keyring(base64.b64encode(RFC_SEED).decode(), "k1", [clash])
    with pytest.raises(KeyConfigError, match="key id"):
        build_keyring(base64.b64encode(RFC_SEED).decode(), "bad id!", [])


def test_a_signature_changed_only_in_its_spare_bits_is_refused() -> None:
    """The last base64url character of a 64-byte signature carries 4 unused bits; any other
    spelling of the signature must fail, not decode to the same bytes."""
    import string

    from studio_ai.domain import receipts as rc

    key = rc.Ed25519PrivateKey.generate()
    signature = key.sign(b"x")
    value = rc._b64url(signature)
    alphabet = string.ascii_letters + string.digits + "-_"
    for variant in (value[:-1] + c for c in alphabet if c != value[-1]):
        try:
            decoded = rc._signature_bytes(variant)
        except ValueError:
            continue
        assert decoded != signature, f"{variant!r} decodes to the signature of {value!r}"
