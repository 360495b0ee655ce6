"""Provenance receipts against the running gateway: issued once per job with the job's model,
inputs and output hash, scoped to the workspace, audited, and verifiable (over HTTP and with the
offline CLI holding only the public keys); any change is caught with its reason."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.domain.inference_job import InferenceJob
from studio_ai.domain.receipts import key_id_for, sign
from studio_ai.schemas.inference import EngineName, JobTimings
from studio_ai.schemas.models import ModelTask
from tests.integration.test_inference_jobs import ABSTRACT, note, submit, wait_job
from tests.support.flows import new_workspace, read_topic
from tests.support.stack import STUDIO_AI, TINY_LLAMA, Stack

PROMPT = "Summarise the trial."


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def completed_job(client: httpx.Client) -> tuple[dict[str, Any], str]:
    """A completed job that fell back from the (not installed) tiny Llama to the extractive
    engine, with a note as context; and the note's ref."""
    ref = note(client, ABSTRACT)
    accepted = submit(
        client, model_id=TINY_LLAMA, prompt=PROMPT, task="summary", context_refs=[ref]
    )
    job = wait_job(client, accepted["job_id"])
    assert job["status"] == "completed", job
    return job, ref


def issue(client: httpx.Client, job_id: str, status: int = 201) -> dict[str, Any]:
    response = client.post(f"/ai/jobs/{job_id}/receipt")
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(client: httpx.Client, receipt: dict[str, Any], output: str | None) -> dict[str, Any]:
    response = client.post("/receipts/verify", json={"receipt": receipt, "output": output})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_completed_jobs_receipt_holds_its_provenance_and_is_issued_once(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "rcpt")
    job, ref = completed_job(client)
    output = job["result"]["text"]

    response = client.post(f"/ai/jobs/{job['job_id']}/receipt")
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert response.headers["location"] == f"/receipts/{receipt['receipt_id']}"
    assert receipt["receipt_id"].startswith("rcpt_")
    assert receipt["job_id"] == job["job_id"]
    assert receipt["workspace_id"] == workspace and receipt["user_id"] == "admin-1"
    assert receipt["model_id"] == job["resolved_model_id"] == "studio-ai/extractive"
    assert receipt["requested_model_id"] == TINY_LLAMA
    assert (
        receipt["fallback_reason"] == job["fallback_reason"]
        and "not installed" in (receipt["fallback_reason"])
    )
    assert receipt["model_revision"] == job["model_revision"]
    assert receipt["engine"] == job["engine"] == "extractive"
    assert receipt["inputs"] == [
        {"ref": "prompt", "sha256": sha256(PROMPT)},
        {"ref": ref, "sha256": sha256(ABSTRACT)},
    ]
    assert receipt["output_sha256"] == sha256(output)
    assert receipt["citations"] == []
    assert receipt["created_at"].endswith("Z")
    assert receipt["signature"]["alg"] == "Ed25519"

    # Asking again gives the very same receipt, and so does reading it.
    assert issue(client, job["job_id"], status=200) == receipt
    fetched = client.get(f"/receipts/{receipt['receipt_id']}")
    assert fetched.status_code == 200 and fetched.json() == receipt

    result = verify(client, receipt, output)
    assert result["valid"] is True and result["reason"] is None
    assert result["key_id"] == receipt["signature"]["key_id"]

    audits = [
        body["payload"]
        for _, _, body in read_topic("audit.recorded.v1")
        if body.get("payload", {}).get("action") == "receipt.issued"
        and body["payload"]["workspace_id"] == workspace
    ]
    assert len(audits) == 1, audits  # the second POST issued nothing new
    refs = {r["ref"]: r["sha256"] for r in audits[0]["inputs_refs"]}
    assert refs == {
        f"job:{job['job_id']}": None,
        f"receipt:{receipt['receipt_id']}": None,
        "output": sha256(output),
    }
    assert audits[0]["model_id"] == "studio-ai/extractive"
    assert output not in json.dumps(audits[0])


def test_any_change_to_a_receipt_or_its_output_is_caught_with_the_reason(stack: Stack) -> None:
    _, client = new_workspace(stack, "rcpt-tamper")
    job, _ = completed_job(client)
    output = job["result"]["text"]
    receipt = issue(client, job["job_id"])

    def reason(changed: dict[str, Any], given_output: str | None = output) -> str | None:
        result = verify(client, changed, given_output)
        assert result["valid"] is False, result
        assert result["detail"], result
        return result["reason"]  # type: ignore[no-any-return]

    assert reason(receipt, output + " (edited)") == "output_mismatch"
    assert reason({**receipt, "model_id": TINY_LLAMA}) == "bad_signature"
    assert reason({**receipt, "created_at": "2020-01-01T00:00:00.000000Z"}) == "bad_signature"
    forged = copy.deepcopy(receipt)
    value = forged["signature"]["value"]
    forged["signature"]["value"] = ("A" if value[0] != "A" else "B") + value[1:]
    assert reason(forged) == "bad_signature"
    other = Ed25519PrivateKey.generate()
    foreign = sign(receipt, other, key_id_for(other.public_key()))
    assert reason(foreign) == "unknown_key"
    assert reason({"receipt_id": receipt["receipt_id"]}) == "malformed"


def test_receipts_are_scoped_to_the_workspace_and_need_a_completed_job(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "rcpt-scope")
    _, stranger = new_workspace(stack, "rcpt-other")
    job, _ = completed_job(client)
    receipt = issue(client, job["job_id"])

    response = stranger.post(f"/ai/jobs/{job['job_id']}/receipt")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = stranger.get(f"/receipts/{receipt['receipt_id']}")
    assert response.status_code == 404 and "this workspace" in response.json()["detail"]
    response = client.get("/receipts/receipt-1")
    assert response.status_code == 422 and "rcpt_" in response.json()["detail"]
    assert client.post("/ai/jobs/not-a-uuid/receipt").status_code == 422
    assert stack.client(None).post(f"/ai/jobs/{job['job_id']}/receipt").status_code == 401
    assert stack.client(None).post("/receipts/verify", json={"receipt": {}}).status_code == 401

    queued = insert_queued_job(stack, workspace)
    response = client.post(f"/ai/jobs/{queued}/receipt")
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "job_not_completed"
    assert "queued" in response.json()["detail"]


def insert_queued_job(stack: Stack, workspace: str) -> uuid.UUID:
    """A job that is still queued (no worker will take it: it is only in the store)."""
    job = InferenceJob(
        job_id=uuid.uuid4(),
        workspace_id=workspace,
        user_id="admin-1",
        task=ModelTask.FAST_TEXT,
        requested_model_id=TINY_LLAMA,
        model_id=TINY_LLAMA,
        pool="nobody-serves-this",
        engine=EngineName.TRANSFORMERS,
        timings=JobTimings(queued_at=datetime.now(UTC)),
    )

    async def insert() -> None:
        store = MongoStore.connect(stack.env["STUDIO_MONGO_URL"], stack.env["STUDIO_MONGO_DB"])
        try:
            assert await store.jobs.insert_job(job)
        finally:
            await store.close()

    asyncio.run(insert())
    return job.job_id


def offline_verify(*args: str) -> subprocess.CompletedProcess[str]:
    """`studio-ai receipts verify` with nothing but its files: no gateway, store, broker or
    private key in its environment."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [STUDIO_AI, "receipts", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_verifies_offline_with_only_the_public_keys(stack: Stack, tmp_path: Path) -> None:
    _, client = new_workspace(stack, "rcpt-cli")
    job, _ = completed_job(client)
    output = job["result"]["text"]
    receipt = issue(client, job["job_id"])

    served = stack.client(None).get("/.well-known/studio-ai-keys.json")  # no API key needed
    assert served.status_code == 200, served.text
    jwks = served.json()
    assert [k["kid"] for k in jwks["keys"]] == [receipt["signature"]["key_id"]]
    assert set(jwks["keys"][0]) == {"kty", "crv", "x", "kid", "alg", "use"}
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(json.dumps(jwks))
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps(receipt))
    output_file = tmp_path / "output.txt"
    output_file.write_bytes(output.encode())
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"receipt": receipt, "output": output}))

    for args in (
        [str(receipt_file)],
        [str(receipt_file), "--output-file", str(output_file)],
        [str(bundle)],
    ):
        done = offline_verify(*args, "--keys", str(keys_file))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("valid"), done.stdout
    url = f"{stack.gateway_url}/.well-known/studio-ai-keys.json"
    assert offline_verify(str(bundle), "--keys", url).returncode == 0

    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**receipt, "model_id": TINY_LLAMA}))
    done = offline_verify(str(tampered), "--keys", str(keys_file))
    assert done.returncode == 1 and "bad_signature" in done.stderr, done
    other_output = tmp_path / "other.txt"
    other_output.write_text(output + " (edited)")
    done = offline_verify(
        str(receipt_file), "--output-file", str(other_output), "--keys", str(keys_file)
    )
    assert done.returncode == 1 and "output_mismatch" in done.stderr, done
    other = Ed25519PrivateKey.generate()
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(sign(receipt, other, key_id_for(other.public_key()))))
    done = offline_verify(str(foreign), "--keys", str(keys_file))
    assert done.returncode == 1 and "unknown_key" in done.stderr, done
    done = offline_verify(str(receipt_file))
    assert done.returncode == 2 and "--keys" in done.stderr, done
