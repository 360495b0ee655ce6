"""The audit log end to end: every audited action -> audit.recorded.v1 -> audit-recorder ->
GET /admin/audit and `studio-ai audit export`, with the real broker and store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from bson import encode
from PIL import Image
from pymongo import MongoClient

from studio_ai.domain.identity import hash_api_key
from studio_ai.domain.images import DELETED_BY_CALLER, JOBS_FINISHED, RETENTION_ENDED
from studio_ai.runtime.audit import audit_event
from studio_ai.runtime.topic_admin import current_ranges, group_caught_up
from studio_ai.schemas.audit import AuditAction, AuditOutcome
from tests.support.flows import (
    add_private_model,
    download,
    new_workspace,
    read_topic,
    wait_status,
)
from tests.support.stack import (
    TINY_GEMMA,
    TINY_LLAMA,
    Stack,
    free_port,
    kafka_bootstrap,
    wait_until,
)

TOPIC = "audit.recorded.v1"


# --- helpers ----------------------------------------------------------------------------------


def png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((32, 32), 40 + seed).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def upload(client: httpx.Client, data: bytes, **params: str) -> str:
    response = client.post(
        "/images",
        content=data,
        headers={"Content-Type": "image/png"},
        params={"consent": "true", **params},
    )
    assert response.status_code == 201, response.text
    image_id: str = response.json()["image_id"]
    return image_id


def all_records(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every record the caller may see (all pages), newest first."""
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/admin/audit", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["records"]
        cursor = body["next_cursor"]
        if cursor is None:
            return records


def wait_records(
    client: httpx.Client, count: int, timeout: float = 30, **params: str
) -> list[dict[str, Any]]:
    """The records matching `params` once there are `count` of them (and no more)."""
    found = wait_until(
        lambda: (records := all_records(client, **params)) and len(records) >= count and records,
        timeout=timeout,
        what=f"{count} audit record(s) matching {params}",
    )
    assert len(found) == count, found
    return found


def refs(record: dict[str, Any]) -> dict[str, str | None]:
    return {ref["ref"]: ref["sha256"] for ref in record["inputs_refs"]}


def raw_documents(stack: Stack, workspace: str) -> list[bytes]:
    """The workspace's stored audit documents as BSON, to search for content that must not be
    in them."""
    with MongoClient(stack.env["STUDIO_MONGO_URL"]) as mongo:
        db = mongo[stack.env["STUDIO_MONGO_DB"]]
        return [encode(doc) for doc in db.audit_records.find({"workspace_id": workspace})]


def raw_messages(workspace: str) -> list[bytes]:
    return [
        json.dumps(body).encode()
        for _, headers, body in read_topic(TOPIC)
        if headers.get("workspace_id") == workspace
    ]


def assert_nowhere(stack: Stack, workspace: str, *secrets: bytes) -> None:
    stored, published = raw_documents(stack, workspace), raw_messages(workspace)
    assert stored and published
    for blob in stored + published:
        for secret in secrets:
            assert secret not in blob


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/ai/jobs/{job_id}").json()
        return body if body["status"] in {"completed", "failed", "cancelled"} else None

    return wait_until(ended, timeout=timeout, what=f"job {job_id} to end")


def wait_gone(client: httpx.Client, image_id: str) -> str:
    response = wait_until(
        lambda: (r := client.get(f"/images/{image_id}")).status_code == 410 and r,
        timeout=30,
        what=f"image {image_id} to be gone",
    )
    detail: str = response.json()["detail"]
    return detail


def wait_caught_up(group_id: str, timeout: float = 60) -> None:
    ends = asyncio.run(current_ranges(kafka_bootstrap(), [TOPIC]))
    wait_until(
        lambda: asyncio.run(group_caught_up(kafka_bootstrap(), group_id, [TOPIC], targets=ends)),
        timeout=timeout,
        what=f"consumer group {group_id} to reach the end of {TOPIC}",
        every=0.5,
    )


# --- each audited action leaves one record ------------------------------------------------


def test_a_model_download_and_its_cancellation_are_audited_once(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "audit-models")
    model_id = "tests-audit/tiny-llama"
    add_private_model(client, model_id, TINY_LLAMA)
    stack.hub.configure(bytes_per_second=20_000)
    try:
        accepted = download(client, model_id)
        wait_status(stack, client, model_id, {"downloading"})
        cancel = client.delete(f"/admin/models/{model_id}/download")
        assert cancel.status_code == 202, cancel.text
        wait_status(stack, client, model_id, {"available", "installed", "failed"}, timeout=30)
    finally:
        stack.hub.configure(bytes_per_second=None)

    download_ref = f"download:{accepted['download_id']}"
    (requested,) = wait_records(client, 1, action="model.install_requested")
    assert requested["workspace_id"] == workspace and requested["user_id"] == "admin-1"
    assert requested["model_id"] == model_id and requested["outcome"] == "accepted"
    assert {f"model:{model_id}", download_ref} <= set(refs(requested))
    (cancelled,) = wait_records(client, 1, action="model.install_cancelled")
    assert cancelled["model_id"] == model_id and cancelled["user_id"] == "admin-1"
    assert set(refs(cancelled)) == {f"model:{model_id}", download_ref}
    assert all_records(client, model_id=model_id) == [cancelled, requested]


def test_an_upload_and_a_deletion_are_audited_with_the_hash_never_the_bytes(stack: Stack) -> None:
    workspace, admin = new_workspace(stack, "audit-images")
    member = stack.client(stack.create_key(workspace, "user-1", "member"))
    data = png(1)
    image_id = upload(member, data, retention_days="7")
    assert member.delete(f"/images/{image_id}").status_code == 204
    assert member.delete(f"/images/{image_id}").status_code == 410

    sha = hashlib.sha256(data).hexdigest()
    (uploaded,) = wait_records(admin, 1, action="image.uploaded")
    assert uploaded["user_id"] == "user-1" and uploaded["outcome"] == "done"
    assert refs(uploaded) == {f"image:{image_id}": sha}
    (deleted,) = wait_records(admin, 1, action="image.deleted")
    assert deleted["user_id"] == "user-1" and deleted["reason"] == DELETED_BY_CALLER
    assert refs(deleted) == {f"image:{image_id}": sha}
    assert_nowhere(stack, workspace, data, base64.b64encode(data), data[100:164])


def test_a_key_creation_is_audited_by_key_id_only(stack: Stack) -> None:
    workspace, admin = new_workspace(stack, "audit-keys")
    done = stack.cli(
        "keys", "create", "--workspace", workspace, "--user", "bob", "--operator", "carol"
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    key_id = done.stderr.split("created key ", 1)[1].split()[0]

    created = wait_records(admin, 2, action="key.created")
    (record,) = [r for r in created if f"key:{key_id}" in refs(r)]
    assert record["user_id"] == "operator:carol" and "'bob'" in record["reason"]
    assert refs(record) == {f"key:{key_id}": None}
    assert_nowhere(stack, workspace, key.encode(), hash_api_key(key).encode())


def test_an_unconsented_image_is_deleted_when_its_job_ends_and_audited_once(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "audit-release")
    download(client, TINY_GEMMA, "mirror")
    assert wait_status(stack, client, TINY_GEMMA, {"installed", "failed"})["status"] == "installed"
    data = png(2)
    image_id = upload(client, data, consent="false")
    prompt = f"Describe the slide image {uuid.uuid4().hex}"
    response = client.post(
        "/ai/generate-multimodal",
        json={"model_id": TINY_GEMMA, "prompt": prompt, "image_refs": [image_id], "max_tokens": 4},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert wait_job(client, job_id)["status"] == "completed"
    assert JOBS_FINISHED in wait_gone(client, image_id)

    (deleted,) = wait_records(client, 1, action="image.deleted")
    assert deleted["user_id"] == "system:job-projector"
    assert deleted["reason"] == JOBS_FINISHED
    assert refs(deleted) == {
        f"image:{image_id}": hashlib.sha256(data).hexdigest(),
        f"job:{job_id}": None,
    }
    assert_nowhere(stack, workspace, prompt.encode(), data, base64.b64encode(data))


def test_a_consented_image_is_swept_after_its_retention_and_audited_once(stack: Stack) -> None:
    _, client = new_workspace(stack, "audit-sweep")
    image_id = upload(client, png(3), retention_days="1")
    tomorrow = (datetime.now(UTC) + timedelta(hours=23)).isoformat()
    kept = stack.cli("images", "sweep", "--now", tomorrow)
    assert kept.returncode == 0, kept.stderr
    assert client.get(f"/images/{image_id}").status_code == 200

    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    for _ in range(2):  # the second sweep finds nothing more to delete
        swept = stack.cli("images", "sweep", "--now", later)
        assert swept.returncode == 0, swept.stderr
    assert RETENTION_ENDED in wait_gone(client, image_id)
    (deleted,) = wait_records(client, 1, action="image.deleted")
    assert deleted["user_id"] == "system:image-sweeper" and deleted["reason"] == RETENTION_ENDED
    assert refs(deleted) == {f"image:{image_id}": None}
    assert deleted["created_at"].startswith(later[:16])


# --- reading the log ------------------------------------------------------------------------


def test_the_log_is_scoped_paged_and_filtered(stack: Stack) -> None:
    workspace, admin = new_workspace(stack, "audit-read")
    member = stack.client(stack.create_key(workspace, "user-1", "member"))
    images = [upload(member, png(10 + i)) for i in range(5)]
    everything = wait_records(admin, 7)  # 2 keys, 5 uploads

    assert [r["created_at"] for r in everything] == sorted(
        (r["created_at"] for r in everything), reverse=True
    )
    pages, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = admin.get("/admin/audit", params=params).json()
        pages.append(body["records"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [r for page in pages for r in page] == everything

    uploads = all_records(admin, action="image.uploaded", user_id="user-1")
    assert {next(iter(refs(r))) for r in uploads} == {f"image:{i}" for i in images}
    assert all_records(admin, user_id="nobody") == []
    oldest = everything[-1]["created_at"]
    assert all_records(admin, until=oldest) == []
    assert all_records(admin, since=oldest) == everything

    _, other = new_workspace(stack, "audit-other")
    seen = all_records(other)
    assert seen and all(r["workspace_id"] != workspace for r in seen)
    assert all_records(other, user_id="user-1") == []

    refused = member.get("/admin/audit")
    assert refused.status_code == 403, refused.text
    bad = admin.get("/admin/audit", params={"action": "image.stolen"})
    assert bad.status_code == 422 and "image.deleted" in bad.json()["detail"]
    for params in ({"limit": "0"}, {"limit": "501"}, {"cursor": "nope"}, {"since": "yesterday"}):
        assert admin.get("/admin/audit", params=params).status_code == 422, params


def test_export_writes_the_records_the_api_answers_as_json_lines(stack: Stack) -> None:
    workspace, admin = new_workspace(stack, "audit-export")
    upload(admin, png(20))
    everything = wait_records(admin, 2)
    done = stack.cli("audit", "export", "--workspace", workspace)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == everything
    assert "exported 2 audit record(s)" in done.stderr

    path = stack.workdir / f"{workspace}.jsonl"
    only = stack.cli(
        "audit", "export", "--workspace", workspace, "--action", "image.uploaded",
        "--output", str(path),
    )  # fmt: skip
    assert only.returncode == 0, only.stderr
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [r for r in everything if r["action"] == "image.uploaded"]

    wrong = stack.cli("audit", "export", "--workspace", workspace, "--since", "last week")
    assert wrong.returncode == 1 and "ISO 8601" in wrong.stderr


# --- delivery ---------------------------------------------------------------------------------


def test_replaying_the_audit_topic_keeps_each_record_once(stack: Stack) -> None:
    _, client = new_workspace(stack, "audit-replay")
    upload(client, png(30))
    wait_records(client, 2)
    wait_caught_up(stack.env["STUDIO_CONSUMER_GROUP_PREFIX"] + "audit-recorder")
    with MongoClient(stack.env["STUDIO_MONGO_URL"], tz_aware=True) as mongo:
        collection = mongo[stack.env["STUDIO_MONGO_DB"]].audit_records
        before = {doc["_id"]: doc for doc in collection.find()}
        workspaces = {doc["workspace_id"] for doc in before.values()}

        group_id = f"audit-replay-{uuid.uuid4().hex[:8]}"
        stack.start(
            "replay", "worker", "run", "--group", "audit-recorder", "--group-id", group_id,
            "--metrics-port", str(free_port()),
        )  # fmt: skip
        try:
            wait_caught_up(group_id, timeout=90)
        finally:
            stack.kill("replay")
        # The topic may also hold other test sessions' records; this session's are unchanged.
        after = {
            doc["_id"]: doc
            for doc in collection.find({"workspace_id": {"$in": sorted(workspaces)}})
        }
    assert after == before


def test_a_malformed_audit_message_is_dead_lettered_and_recording_goes_on(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "audit-poison")
    key = f"poison-{uuid.uuid4().hex}".encode()
    mismatched = audit_event(
        workspace_id="someone-else",
        user_id="mallory",
        action=AuditAction.KEY_CREATED,
        outcome=AuditOutcome.DONE,
        correlation_id="c",
    ).model_dump(mode="json")
    mismatched["workspace_id"] = workspace

    async def publish_poison() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap())
        await producer.start()
        try:
            for body in (b"{not json", b'{"event_type": "audit.recorded"}'):
                await producer.send_and_wait(TOPIC, body, key=key)
            await producer.send_and_wait(TOPIC, json.dumps(mismatched).encode(), key=key)
        finally:
            await producer.stop()

    asyncio.run(publish_poison())
    dead = wait_until(
        lambda: (
            len(found := [h for k, h, _ in read_topic(f"{TOPIC}.dlq") if k == key]) >= 3 and found
        ),
        timeout=60,
        what="three dead letters on audit.recorded.v1.dlq",
    )
    reasons = [d["dlq_reason"] for d in dead]
    assert sum("does not match the event schema" in r for r in reasons) == 2, reasons
    assert sum("'someone-else'" in r for r in reasons) == 1, reasons

    upload(client, png(40))
    wait_records(client, 1, action="image.uploaded")
    assert all_records(client, user_id="mallory") == []
