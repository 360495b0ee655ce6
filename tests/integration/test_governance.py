"""Plans, feature flags and quotas through the real gateway, broker, workers and store."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.test_inference_jobs import note, png_bytes, submit, wait_job
from tests.integration.test_inference_resilience import ServedModel, _group_caught_up, serve
from tests.support.flows import new_workspace
from tests.support.stack import Stack, free_port, wait_until

EXTRACTIVE = "studio-ai/extractive"


@pytest.fixture(scope="module")
def ops(stack: Stack) -> httpx.Client:
    """An operator's client (role operator, in a workspace of its own)."""
    return stack.client(stack.create_key(f"ops-{uuid.uuid4().hex[:6]}", "op-1", "operator"))


def set_plan(ops: httpx.Client, workspace: str, plan: str, **quotas: float | None) -> None:
    response = ops.put(
        f"/operator/workspaces/{workspace}/plan",
        json={"plan": plan, "overrides": {"quotas": quotas}},
    )
    assert response.status_code == 200, response.text


def usage(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/workspaces/me/usage")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["by_quota"] = {q["quota"]: q for q in body["quotas"]}
    return body


def used(client: httpx.Client, quota: str) -> float:
    return float(usage(client)["by_quota"][quota]["used"])


def test_plans_allow_and_deny_each_task_and_modality(stack: Stack, ops: httpx.Client) -> None:
    free_ws, free = new_workspace(stack, "free")
    pro_ws, pro = new_workspace(stack, "pro")
    set_plan(ops, free_ws, "free")
    set_plan(ops, pro_ws, "pro")
    text = "Aspirin lowers fever. It also thins the blood. Doctors use it after heart attacks."
    free_note, pro_note = note(free, text), note(pro, text)

    for task in ("summary", "bullets", "qa"):
        accepted = submit(
            free,
            model_id=EXTRACTIVE,
            prompt="What does aspirin do?",
            task=task,
            context_refs=[free_note],
            max_tokens=20,
        )
        assert wait_job(free, accepted["job_id"])["status"] == "completed"

    refused = free.post(
        "/ai/generate-text",
        json={"model_id": EXTRACTIVE, "prompt": "Write a poem", "task": "free"},
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "not_in_plan"
    assert "plan 'free'" in refused.json()["detail"] and "plan 'pro'" in refused.json()["detail"]
    accepted = submit(
        pro, model_id=EXTRACTIVE, prompt="Write a poem", task="free", context_refs=[pro_note]
    )
    assert accepted["job_id"]

    bigger_model = free.post(
        "/ai/generate-text",
        json={
            "model_id": "meta-llama/Llama-3.2-3B-Instruct",
            "prompt": "Hi",
            "task": "summary",
            "context_refs": [free_note],
        },
    )
    assert bigger_model.status_code == 403 and "Llama-3.2-3B" in bigger_model.json()["detail"]

    for client, expected in ((free, 403), (pro, 409)):
        image = client.post(
            "/images",
            params={"consent": "false"},
            content=png_bytes(),
            headers={"Content-Type": "image/png"},
        )
        assert image.status_code == 201, image.text
        response = client.post(
            "/ai/generate-multimodal",
            json={
                "model_id": "studio-ai-test/tiny-gemma3",
                "prompt": "Describe",
                "image_refs": [image.json()["image_id"]],
            },
        )
        # free: images are not in the plan; pro: allowed, but no image model is installed.
        assert response.status_code == expected, response.text
        if expected == 403:
            assert "image input" in response.json()["detail"]
    assert usage(free)["plan"] == "free" and usage(pro)["plan"] == "pro"
    # Retention is capped by the plan, and the refusal gives the maximum.
    too_long = pro.post(
        "/images",
        params={"consent": "true", "retention_days": "91"},
        content=png_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert too_long.status_code == 422 and "at most 90 day" in too_long.json()["detail"]
    kept_none = free.post(
        "/images",
        params={"consent": "true"},
        content=png_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert kept_none.status_code == 422 and "consent=false" in kept_none.json()["detail"]


def test_only_operators_assign_plans(stack: Stack, ops: httpx.Client) -> None:
    workspace, admin = new_workspace(stack, "self")
    member = stack.client(stack.create_key(workspace, "member-1", "member"))
    for client in (admin, member):
        response = client.put(f"/operator/workspaces/{workspace}/plan", json={"plan": "enterprise"})
        assert response.status_code == 403 and "operator key" in response.json()["detail"]
    unknown = ops.put(f"/operator/workspaces/{workspace}/plan", json={"plan": "platinum"})
    assert unknown.status_code == 422 and "free, pro, enterprise" in unknown.json()["detail"]
    bad = ops.put(
        f"/operator/workspaces/{workspace}/plan",
        json={"plan": "pro", "overrides": {"quotas": {"jobs_per_week": 3}}},
    )
    assert bad.status_code == 422
    set_plan(ops, workspace, "pro", jobs_per_day=7)
    plan = ops.get(f"/operator/workspaces/{workspace}/plan").json()
    assert plan["name"] == "pro" and plan["quotas"]["jobs_per_day"] == 7
    assert usage(member)["by_quota"]["jobs_per_day"]["limit"] == 7


def test_the_cli_assigns_a_plan_with_overrides(stack: Stack) -> None:
    workspace, client = new_workspace(stack, "cli")
    done = stack.cli(
        "workspaces",
        "set-plan",
        workspace,
        "free",
        "--quota",
        "jobs_per_day=3",
        "--quota",
        "tokens_per_month=unlimited",
        "--operator",
        "alice",
    )
    assert done.returncode == 0, done.stderr
    assert "now on plan 'free'" in done.stderr
    view = usage(client)
    assert view["plan"] == "free"
    assert view["by_quota"]["jobs_per_day"]["limit"] == 3
    assert view["by_quota"]["tokens_per_month"]["limit"] is None
    wrong = stack.cli("workspaces", "set-plan", workspace, "free", "--quota", "jobs=3")
    assert wrong.returncode == 1 and "unknown quota 'jobs'" in wrong.stderr


def test_200_concurrent_requests_against_a_quota_of_50_admit_exactly_50(
    stack: Stack, ops: httpx.Client
) -> None:
    workspace, client = new_workspace(stack, "burst")
    set_plan(ops, workspace, "pro", jobs_per_day=50, concurrent_jobs=None)
    ref = note(client, "Aspirin lowers fever. It also thins the blood.")
    body = {
        "model_id": EXTRACTIVE,
        "prompt": "Summarise",
        "task": "summary",
        "context_refs": [ref],
        "max_tokens": 20,
    }

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.gateway_url, headers=client.headers, timeout=60) as c:
            return c.post("/ai/generate-text", json=body)

    with ThreadPoolExecutor(max_workers=40) as pool:
        responses = list(pool.map(post, range(200)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 50, 429: 150}, statuses
    refusal = next(r for r in responses if r.status_code == 429)
    assert refusal.json()["quota"] == "jobs_per_day" and refusal.json()["limit"] == 50
    assert "50 of 50 jobs today" in refusal.json()["detail"]
    assert int(refusal.headers["Retry-After"]) > 0
    for accepted in (r.json() for r in responses if r.status_code == 202):
        assert wait_job(client, accepted["job_id"])["status"] == "completed"
    wait_until(lambda: used(client, "concurrent_jobs") == 0, timeout=30, what="settlements")
    view = usage(client)["by_quota"]
    assert view["jobs_per_day"]["used"] == 50 and view["jobs_per_day"]["remaining"] == 0
    # The extractive engine is free and runs on CPU: no tokens or GPU time are metered.
    assert view["tokens_per_month"]["used"] == 0 and view["gpu_seconds_per_month"]["used"] == 0


@pytest.fixture
def metered(stack: Stack, ops: httpx.Client) -> Iterator[ServedModel]:
    for served in serve(stack, "metered"):
        workspace = usage(served.client)["workspace_id"]
        set_plan(ops, workspace, "pro", concurrent_jobs=1, tokens_per_month=100_000)
        yield served


def test_usage_settles_to_what_jobs_used_and_failed_or_cancelled_jobs_give_it_back(
    stack: Stack, metered: ServedModel
) -> None:
    client, chat = metered.client, metered.chat
    chat.configure(tokens=5)
    done = wait_job(
        client, submit(client, model_id=metered.model_id, prompt="Hello", max_tokens=5)["job_id"]
    )
    assert done["status"] == "completed"
    spent = done["usage"]["prompt_tokens"] + done["usage"]["completion_tokens"]
    wait_until(lambda: used(client, "tokens_per_month") == spent, timeout=30, what="settlement")
    assert used(client, "gpu_seconds_per_month") > 0
    assert used(client, "jobs_per_day") == 1

    chat.configure(always_fail_status=503)
    failed = wait_job(client, submit(client, model_id=metered.model_id, prompt="Hello")["job_id"])
    assert failed["status"] == "failed"
    wait_until(lambda: used(client, "concurrent_jobs") == 0, timeout=30, what="the release")
    assert used(client, "tokens_per_month") == spent and used(client, "jobs_per_day") == 1

    chat.configure(always_fail_status=None, latency_ms=20_000)
    running = submit(client, model_id=metered.model_id, prompt="Hello", max_tokens=50)
    assert used(client, "concurrent_jobs") == 1
    assert used(client, "tokens_per_month") > spent + 50  # the reservation
    second = client.post("/ai/generate-text", json={"model_id": metered.model_id, "prompt": "Hi"})
    assert second.status_code == 429, second.text
    assert second.json()["quota"] == "concurrent_jobs" and second.headers["Retry-After"] == "5"
    assert client.post(f"/ai/jobs/{running['job_id']}/cancel").status_code == 202
    assert wait_job(client, running["job_id"])["status"] == "cancelled"
    wait_until(lambda: used(client, "concurrent_jobs") == 0, timeout=30, what="the release")
    assert used(client, "tokens_per_month") == spent and used(client, "jobs_per_day") == 1

    # Replaying the meter's topics from offset 0 under a new group changes nothing.
    before = usage(client)["by_quota"]
    group = f"replay-{uuid.uuid4().hex[:6]}"
    stack.start(
        "meter-replay",
        "worker",
        "run",
        "--group",
        "usage-meter",
        "--group-id",
        group,
        "--metrics-port",
        str(free_port()),
    )
    topics = ["ai.inference-completed.v1", "ai.inference-failed.v1", "ai.inference-cancelled.v1"]
    try:
        wait_until(lambda: _group_caught_up(group, topics), timeout=60, what="the replay")
    finally:
        stack.kill("meter-replay")
    assert usage(client)["by_quota"] == before


def test_usage_and_jobs_of_one_workspace_are_invisible_to_another(
    stack: Stack, ops: httpx.Client
) -> None:
    a_ws, a = new_workspace(stack, "a")
    _, b = new_workspace(stack, "b")
    set_plan(ops, a_ws, "enterprise", jobs_per_day=10)
    ref = note(a, "Aspirin lowers fever.")
    job = submit(a, model_id=EXTRACTIVE, prompt="Summarise", task="summary", context_refs=[ref])
    wait_job(a, job["job_id"])
    assert b.get(f"/ai/jobs/{job['job_id']}").status_code == 404
    assert b.post(f"/ai/jobs/{job['job_id']}/cancel").status_code == 404
    assert usage(b)["by_quota"]["jobs_per_day"]["used"] == 0
    assert (
        usage(b)["plan"] == "enterprise" and usage(b)["by_quota"]["jobs_per_day"]["limit"] is None
    )
    assert usage(a)["by_quota"]["jobs_per_day"]["used"] == 1
