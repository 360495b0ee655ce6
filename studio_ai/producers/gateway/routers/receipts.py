"""Provenance receipts: issue a signed receipt for a completed job's output, read it, verify
one, and the public keys that verify them (served without authentication)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from studio_ai.producers import receipt_commands
from studio_ai.producers.gateway.context import AnyCaller, State
from studio_ai.schemas.api import ErrorBody
from studio_ai.schemas.receipts import Jwks, Receipt, VerifyRequest, VerifyResult

router = APIRouter(tags=["receipts"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key."},
    404: {"model": ErrorBody, "description": "No such job or receipt in the caller's workspace."},
    422: {"model": ErrorBody, "description": "Invalid input; the detail says what to change."},
    503: {
        "model": ErrorBody,
        "description": "No signing key is configured, the keys are misconfigured, or the "
        "store or broker is not answering.",
    },
}

JobId = Annotated[str, Path(description="The job_id POST /ai/generate-* returned.")]
ReceiptId = Annotated[str, Path(description="The receipt_id POST .../receipt returned.")]


@router.post(
    "/ai/jobs/{job_id}/receipt",
    response_model=Receipt,
    status_code=201,
    responses={
        200: {"model": Receipt, "description": "The job already had a receipt: the same one."},
        409: {"model": ErrorBody, "description": "The job has not completed."},
        **ERRORS,
    },
)
async def issue_receipt(
    job_id: JobId, request: Request, state: State, caller: AnyCaller
) -> JSONResponse:
    """Issue the signed provenance receipt of a completed job's output (once per job)."""
    receipt, created = await receipt_commands.issue_receipt(
        state, caller, job_id, request.state.correlation_id
    )
    # Served as the very JSON that was signed, not re-serialised through the model.
    return JSONResponse(
        receipt,
        status_code=201 if created else 200,
        headers={"Location": f"/receipts/{receipt['receipt_id']}"},
    )


@router.get("/receipts/{receipt_id}", response_model=Receipt, responses=ERRORS)
async def get_receipt(receipt_id: ReceiptId, state: State, caller: AnyCaller) -> JSONResponse:
    """A receipt of the caller's workspace, exactly as it was signed."""
    return JSONResponse(await receipt_commands.get_receipt(state, caller, receipt_id))


@router.post("/receipts/verify", response_model=VerifyResult, responses=ERRORS)
async def verify_receipt(body: VerifyRequest, state: State, caller: AnyCaller) -> VerifyResult:
    """Whether a receipt is authentic and unchanged (and, given the output, covers it); the
    reason when not: malformed, unknown_key, bad_signature or output_mismatch."""
    return receipt_commands.verify_receipt(state, body)


@router.get("/.well-known/studio-ai-keys.json", response_model=Jwks)
async def receipt_keys(state: State) -> JSONResponse:
    """The public keys receipts are verified with, as a JWK set: the active signing key, then
    retired ones. No API key needed."""
    jwks = receipt_commands.public_keys(state)
    return JSONResponse(
        jwks.model_dump(mode="json"), headers={"Cache-Control": "public, max-age=300"}
    )
