"""Receipt commands behind the receipts API: issue a job's receipt, read one, verify one, and
the public key set.

A receipt is issued once per job and signing key (its id derives from both), so asking again
returns the stored receipt. Its audit record (receipt.issued, with a stable id) is published
before the receipt is stored: a receipt that exists always has its record, and a retried
publish is kept once by the audit recorder.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from studio_ai.domain.errors import InvalidInput, NotFound
from studio_ai.domain.identity import Caller
from studio_ai.domain.inference_job import InferenceJob
from studio_ai.domain.receipts import (
    KeyConfigError,
    Keyring,
    SigningKey,
    build_keyring,
    check_issuable,
    is_receipt_id,
    receipt_body_for,
    receipt_id_for,
    sign,
    verify,
)
from studio_ai.producers.gateway.context import GatewayState, HttpProblem
from studio_ai.producers.inference_commands import parse_job_id
from studio_ai.runtime.audit import audit_id_for, publish_audit
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.audit import AuditAction, AuditOutcome, InputRef
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.receipts import Citation, Jwks, VerifyRequest, VerifyResult
from studio_ai.schemas.research import InsightsGenerated, ResearchSource

log = logging.getLogger(__name__)


def keyring(settings: Settings) -> Keyring:
    """The configured keys; 503 naming the setting when one cannot be used."""
    secret = settings.receipt_signing_key
    try:
        return build_keyring(
            secret.get_secret_value() if secret else None,
            settings.receipt_key_id,
            settings.receipt_retired_public_keys,
        )
    except KeyConfigError as exc:
        raise HttpProblem(
            503,
            "receipts_misconfigured",
            f"the receipt keys are misconfigured (STUDIO_RECEIPT_SIGNING_KEY, "
            f"STUDIO_RECEIPT_KEY_ID, STUDIO_RECEIPT_RETIRED_PUBLIC_KEYS): {exc}",
        ) from None


def _signing_key(settings: Settings) -> SigningKey:
    signing = keyring(settings).signing
    if signing is None:
        raise HttpProblem(
            503,
            "receipts_not_configured",
            "this deployment has no receipt signing key: an operator runs `studio-ai receipts "
            "keygen` and sets STUDIO_RECEIPT_SIGNING_KEY to the seed it prints",
        )
    return signing


async def issue_receipt(
    state: GatewayState, caller: Caller, job_id: str, correlation_id: str
) -> tuple[dict[str, Any], bool]:
    """(the job's signed receipt, whether this call created it)."""
    job = await state.store.jobs.get_job(parse_job_id(job_id), caller.workspace_id)
    if job is None:
        raise NotFound(f"no job {job_id} in this workspace")
    check_issuable(job)
    signing = _signing_key(state.settings)
    receipt_id = receipt_id_for(job.job_id, signing.key_id)
    existing = await state.store.receipts.get(caller.workspace_id, receipt_id)
    if existing is not None:
        return existing, False
    now = datetime.now(UTC)
    body = receipt_body_for(
        job,
        receipt_id=receipt_id,
        issued_by=caller.user_id,
        created_at=now,
        citations=await _citations(state, job),
    )
    receipt = sign(body, signing.private_key, signing.key_id)
    try:
        await publish_audit(
            state.publisher,
            workspace_id=caller.workspace_id,
            user_id=caller.user_id,
            action=AuditAction.RECEIPT_ISSUED,
            outcome=AuditOutcome.DONE,
            correlation_id=correlation_id,
            model_id=body.model_id,
            inputs_refs=[
                InputRef(ref=f"job:{job.job_id}"),
                InputRef(ref=f"receipt:{receipt_id}"),
                InputRef(ref="output", sha256=body.output_sha256),
            ],
            audit_id=audit_id_for(AuditAction.RECEIPT_ISSUED, receipt_id),
            created_at=now,
        )
    except Exception as exc:
        log.exception("could not publish the receipt's audit record")
        raise HttpProblem(
            503,
            "broker_unavailable",
            "the receipt was not issued: the event broker did not accept its audit record; "
            "try again",
            {"Retry-After": "5"},
        ) from exc
    return await state.store.receipts.insert_or_get(receipt, stored_at=now)


async def _citations(state: GatewayState, job: InferenceJob) -> list[Citation]:
    """The sources an insights job's output cites, from its recorded outcome (so they are
    there as soon as the job is, even if its session is deleted); none for other jobs."""
    if not any(ref.startswith("research:") for ref in job.context_refs):
        return []
    outcome = await state.store.jobs.get_outcome(job.job_id)
    if not outcome or not outcome.get("insights"):
        return []
    generated = Envelope[InsightsGenerated].model_validate_json(outcome["insights"]).payload
    cited = {s.source_id: s for s in generated.cited_sources}
    order = dict.fromkeys(c for insight in generated.insights for c in insight.citations)
    return [
        Citation(
            ref=source_id, title=_clip(cited[source_id].title, 500), url=_url(cited[source_id])
        )
        for source_id in order
        if source_id in cited and len(source_id) <= 200
    ]


def _url(source: ResearchSource) -> str | None:
    return source.url if source.url and len(source.url) <= 2000 else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def get_receipt(state: GatewayState, caller: Caller, receipt_id: str) -> dict[str, Any]:
    if not is_receipt_id(receipt_id):
        raise InvalidInput(
            f"receipt id {receipt_id[:80]!r} is not valid: it looks like rcpt_ and 32 hex digits"
        )
    receipt = await state.store.receipts.get(caller.workspace_id, receipt_id)
    if receipt is None:
        raise NotFound(f"no receipt {receipt_id} in this workspace")
    return receipt


def verify_receipt(state: GatewayState, body: VerifyRequest) -> VerifyResult:
    return verify(body.receipt, keyring(state.settings).public_keys, body.output)


def public_keys(state: GatewayState) -> Jwks:
    return keyring(state.settings).jwks()
