"""Research sessions through the running system: the gateway, the real broker and store, the
insights worker and the session projector; Crossref and arXiv answered by recorded real
responses (tests/fixtures/research)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.consumers.insights_worker.on_insights_requested import InsightsRunner
from studio_ai.domain.inference_job import InferenceJob
from studio_ai.runtime.broker import EventPublisher, new_broker
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import EngineName, EngineTarget
from studio_ai.schemas.models import ModelTask
from studio_ai.schemas.research import InsightKind, InsightsRequested, ResearchSource
from tests.integration.test_governance import ops as ops  # the fixture
from tests.integration.test_governance import set_plan, used
from tests.integration.test_inference_jobs import wait_job
from tests.integration.test_inference_resilience import ServedModel, _group_caught_up, serve
from tests.integration.test_openai_compatible_server import (
    served_tiny_llama as served_tiny_llama,
)
from tests.support.flows import new_workspace
from tests.support.stack import Stack, free_port, kafka_bootstrap, mongo_url, wait_until

FIXTURE_IDS = ("llm-clinical-summaries", "medgemma-radiology-eval")


@pytest.fixture(autouse=True)
def _research_server_reset(stack: Stack) -> Iterator[None]:
    stack.research.reset()
    yield
    stack.research.reset()


def create_session(client: httpx.Client, title: str = "Clinical LLMs", **extra: Any) -> str:
    response = client.post("/research/sessions", json={"title": title, **extra})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def attach(client: httpx.Client, session_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/research/sessions/{session_id}/attach", json=body)


def session(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/research/sessions/{session_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def generate(client: httpx.Client, session_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/research/sessions/{session_id}/generate-insights", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def insights_of(client: httpx.Client, session_id: str, job_id: str) -> list[dict[str, Any]]:
    """The job's insights once the session projector has kept them."""

    def found() -> list[dict[str, Any]] | None:
        mine = [i for i in session(client, session_id)["insights"] if i["job_id"] == job_id]
        return mine or None

    return wait_until(found, timeout=60, what=f"the insights of job {job_id}")


def fixture_session(client: httpx.Client) -> tuple[str, set[str]]:
    session_id = create_session(client)
    for fixture_id in FIXTURE_IDS:
        response = attach(client, session_id, provider="fixture", id=fixture_id)
        assert response.status_code == 200, response.text
    return session_id, {f"fixture:{f}" for f in FIXTURE_IDS}


def test_offline_insights_cite_only_attached_sources_and_export_markdown(
    stack: Stack,
) -> None:
    _, client = new_workspace(stack, "research")
    session_id, attached = fixture_session(client)
    again = attach(client, session_id, provider="fixture", id=FIXTURE_IDS[0])
    assert again.status_code == 200, again.text
    assert again.json()["attached"] == []
    assert again.json()["already_attached"] == [f"fixture:{FIXTURE_IDS[0]}"]
    assert len(session(client, session_id)["sources"]) == 2

    accepted = generate(client, session_id, kinds=["summary", "bullets", "references"])
    job = wait_job(client, accepted["job_id"])
    assert job["status"] == "completed", job
    insights = insights_of(client, session_id, accepted["job_id"])
    assert [i["kind"] for i in insights] == ["summary", "bullets", "references"]
    texts = {s["source"]["source_id"]: s["source"] for s in session(client, session_id)["sources"]}
    for insight in insights:
        assert insight["generator"] == "extractive"
        assert insight["items"], insight
        assert insight["flagged_citations"] == []
        for item in insight["items"]:
            assert item["citations"], item
            assert set(item["citations"]) <= attached
        assert {r["source_id"] for r in insight["references"]} <= attached
    # Extractive sentences are the sources' own words.
    for item in insights[0]["items"]:
        source = texts[item["citations"][0]]
        assert item["text"].rstrip(".") in f"{source['title']}. {source['abstract']}"

    # The job's signed receipt names the sources its output cites.
    receipt = client.post(f"/ai/jobs/{accepted['job_id']}/receipt")
    assert receipt.status_code == 201, receipt.text
    cited = {c for insight in insights for c in insight["citations"]}
    assert {c["ref"] for c in receipt.json()["citations"]} == cited
    assert all(c["title"] for c in receipt.json()["citations"])

    export = client.get(f"/research/sessions/{session_id}/export", params={"format": "markdown"})
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("text/markdown")
    markdown = export.text
    assert "## References" in markdown
    numbers = set(re.findall(r"\[(\d+)\]", markdown.split("## References")[0]))
    listed = re.findall(r"^(\d+)\. ", markdown.split("## References")[1], re.M)
    assert numbers and numbers <= set(listed)


def test_crossref_and_arxiv_sources_from_recorded_responses(stack: Stack) -> None:
    _, client = new_workspace(stack, "research")
    session_id = create_session(client, "Parkinson's disease")
    by_doi = attach(client, session_id, provider="crossref", id="https://doi.org/10.1038/SREP16696")
    assert by_doi.status_code == 200, by_doi.text
    source = by_doi.json()["attached"][0]["source"]
    assert source["source_id"] == "crossref:10.1038/srep16696"
    assert source["title"].startswith("Single-molecule FRET studies on alpha-synuclein")
    assert "<" not in (source["abstract"] or "") and source["year"] == 2015
    assert any("mailto:studio-tests@databiomics.example" in ua for ua in stack.research.user_agents)

    by_id = attach(client, session_id, provider="arxiv", id="arXiv:1605.08386v1")
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["attached"][0]["source"]["source_id"] == "arxiv:1605.08386"

    searched = attach(
        client, session_id, provider="crossref", query="pooled prime editing", limit=1
    )
    assert searched.status_code == 200, searched.text
    assert searched.json()["attached"][0]["source"]["source_id"] == (
        "crossref:10.1101/2024.04.01.587366"
    )
    sources = [s["source"]["source_id"] for s in session(client, session_id)["sources"]]
    assert sources == [
        "crossref:10.1038/srep16696",
        "arxiv:1605.08386",
        "crossref:10.1101/2024.04.01.587366",
    ]

    # Any spelling of an attached source detaches it.
    assert (
        client.delete(f"/research/sessions/{session_id}/sources/arxiv:1605.08386v1").status_code
        == 204
    )
    again = attach(client, session_id, provider="arxiv", id="1605.08386")
    assert again.status_code == 200, again.text
    assert [a["source"]["source_id"] for a in again.json()["attached"]] == ["arxiv:1605.08386"]

    missing = attach(client, session_id, provider="crossref", id="10.1234/does-not-exist")
    assert missing.status_code == 404, missing.text
    assert "crossref" in missing.json()["detail"]
    bad = attach(client, session_id, provider="arxiv", id="not an id")
    assert bad.status_code == 422, bad.text


@pytest.mark.parametrize(
    ("knobs", "status", "error"),
    [
        ({"fail_status": 503}, 503, "provider_unavailable"),
        ({"fail_status": 429, "retry_after": "30"}, 503, "provider_rate_limited"),
        ({"malformed": True}, 502, "provider_bad_response"),
    ],
)
def test_a_failing_provider_gives_a_clear_error_and_leaves_the_session_as_it_was(
    stack: Stack, knobs: dict[str, Any], status: int, error: str
) -> None:
    _, client = new_workspace(stack, "research")
    session_id, _ = fixture_session(client)
    before = session(client, session_id)
    stack.research.configure(**knobs)
    response = attach(client, session_id, provider="crossref", id="10.1038/srep16696")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["provider"] == "crossref"
    assert "crossref" in body["detail"]
    if status == 503:
        assert int(response.headers["Retry-After"]) >= 1
    assert session(client, session_id) == before


def test_an_llm_citing_an_unattached_source_is_flagged(stack: Stack) -> None:
    for served in serve(stack, "insight"):
        _check_flagged(served)


def _check_flagged(served: ServedModel) -> None:
    client = served.client
    session_id, attached = fixture_session(client)
    cited, invented = sorted(attached)[0], "arxiv:2401.99999"
    served.chat.configure(
        tokens=1,
        token_text=f"- Summaries by LLMs were rated accurate [{cited}]\n"
        f"- A model cured every patient [{invented}]\n",
    )
    accepted = generate(client, session_id, kinds=["bullets"], model_id=served.model_id)
    assert wait_job(client, accepted["job_id"])["status"] == "completed"
    (insight,) = insights_of(client, session_id, accepted["job_id"])
    assert insight["generator"] == "pool" and insight["engine"] == "vllm"
    assert insight["model_id"] == served.model_id
    assert [f["citation"] for f in insight["flagged_citations"]] == [invented]
    assert insight["citations"] == [cited]
    assert all(invented not in item["text"] for item in insight["items"])


def test_cancelling_a_running_insights_job_stops_its_llm_calls(stack: Stack) -> None:
    for served in serve(stack, "insight-cancel"):
        client = served.client
        session_id, _ = fixture_session(client)
        served.chat.configure(latency_ms=120_000)
        accepted = generate(
            client, session_id, kinds=["summary", "bullets"], model_id=served.model_id
        )
        served.chat.wait_for(lambda c: c.in_flight == 2, timeout=30)
        cancel = client.post(f"/ai/jobs/{accepted['job_id']}/cancel")
        assert cancel.status_code == 202, cancel.text
        assert wait_job(client, accepted["job_id"], timeout=30)["status"] == "cancelled"
        # The worker noticed and closed both LLM requests; nothing reached the session.
        counters = served.chat.wait_for(lambda c: c.cancelled == 2, timeout=30)
        assert counters.completed == 0
        assert session(client, session_id)["insights"] == []


def test_a_remote_openai_compatible_llm_is_recorded_as_the_generator(
    stack: Stack, served_tiny_llama: tuple[str, str]
) -> None:
    """The insights worker with LLM_BASE_URL set, against `transformers serve` on the tiny
    Llama: its request is handed to it directly (the stack's own worker has no LLM set), and
    its insights go through the real broker to the stack's session projector."""
    url, model = served_tiny_llama
    workspace, client = new_workspace(stack, "research")
    session_id, attached = fixture_session(client)
    sources = [
        ResearchSource.model_validate(s["source"]) for s in session(client, session_id)["sources"]
    ]
    job_id = uuid.uuid4()
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap(),
        mongo_url=mongo_url(),
        mongo_db=stack.env["STUDIO_MONGO_DB"],
        llm_base_url=url,
        llm_api_key="sk-test-not-a-secret",
        llm_model=model,
        inference_backoff_s=0.1,
    )
    request = Envelope[InsightsRequested](
        event_type="research.insights-requested",
        correlation_id=str(uuid.uuid4()),
        workspace_id=workspace,
        user_id="admin-1",
        payload=InsightsRequested(
            job_id=job_id,
            session_id=session_id,
            kinds=[InsightKind.SUMMARY],
            sources=sources,
            model_id="studio-ai/extractive",
            pool="builtin",
            target=EngineTarget(engine=EngineName.EXTRACTIVE),
            max_tokens=8,
            remote_llm=True,
            queued_at=datetime.now(UTC),
        ),
    )

    async def run() -> None:
        broker = new_broker(settings, client_id="research-test", registry=CollectorRegistry())
        await broker.start()
        store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
        runner = InsightsRunner(
            settings=settings,
            store=store,
            publisher=EventPublisher(broker),
            worker_id="test-remote",
        )
        try:
            # The job document admission would have made, so its end is projected.
            await store.jobs.insert_job(
                InferenceJob(
                    job_id=job_id,
                    workspace_id=workspace,
                    user_id="admin-1",
                    task=ModelTask.FAST_TEXT,
                    requested_model_id="studio-ai/extractive",
                    model_id="studio-ai/extractive",
                    pool="builtin",
                    engine=EngineName.EXTRACTIVE,
                )
            )
            await runner.handle(request)
        finally:
            await runner.aclose()
            await broker.stop()
            await store.close()

    asyncio.run(run())
    (insight,) = insights_of(client, session_id, str(job_id))
    assert insight["kind"] == "summary"
    # The tiny random model cites nothing, so its answer is replaced by cited sentences, and
    # the insight says so; the job records that the remote LLM was asked.
    assert insight["generator"] == "extractive"
    assert "cited none of the attached sources" in insight["note"]
    assert all(set(i["citations"]) <= attached and i["citations"] for i in insight["items"])
    assert f"remote_llm {model!r} was asked" in insight["fallback_reason"]
    job = wait_job(client, str(job_id))
    assert job["status"] == "completed", job
    # It spent tokens (they count), but what the job kept the extractive engine wrote.
    assert job["usage"]["completion_tokens"] > 0
    assert job["engine"] == "extractive" and job["resolved_model_id"] == "studio-ai/extractive"


def test_sessions_are_invisible_across_workspaces(stack: Stack) -> None:
    _, a = new_workspace(stack, "a")
    _, b = new_workspace(stack, "b")
    session_id, _ = fixture_session(a)
    assert b.get(f"/research/sessions/{session_id}").status_code == 404
    assert attach(b, session_id, provider="fixture", id=FIXTURE_IDS[0]).status_code == 404
    denied = b.post(
        f"/research/sessions/{session_id}/generate-insights", json={"kinds": ["summary"]}
    )
    assert denied.status_code == 404, denied.text
    assert b.get(f"/research/sessions/{session_id}/export").status_code == 404
    assert b.delete(f"/research/sessions/{session_id}").status_code == 404
    detach = b.delete(f"/research/sessions/{session_id}/sources/fixture:{FIXTURE_IDS[0]}")
    assert detach.status_code == 404
    listed = {s["session_id"] for s in b.get("/research/sessions").json()["sessions"]}
    assert session_id not in listed
    assert b.get("/research/sessions/rs_not-an-id").status_code == 422
    assert len(session(a, session_id)["sources"]) == 2


def test_sessions_page_newest_first(stack: Stack) -> None:
    _, client = new_workspace(stack, "research")
    made = [create_session(client, f"deck {n}") for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/research/sessions", params=params).json()
        seen += [s["session_id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert client.get("/research/sessions", params={"cursor": "nonsense"}).status_code == 422


def test_generation_counts_against_the_quota_and_is_audited(
    stack: Stack,
    ops: httpx.Client,
) -> None:
    workspace, client = new_workspace(stack, "research")
    set_plan(ops, workspace, "pro", jobs_per_day=1)
    session_id, _ = fixture_session(client)
    accepted = generate(client, session_id, kinds=["summary"])
    wait_job(client, accepted["job_id"])
    assert used(client, "jobs_per_day") == 1
    refused = client.post(
        f"/research/sessions/{session_id}/generate-insights", json={"kinds": ["bullets"]}
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["quota"] == "jobs_per_day"

    def audited() -> list[dict[str, Any]] | None:
        response = client.get("/admin/audit", params={"action": "research.generated"})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
        return records if len(records) == 2 else None

    records = wait_until(audited, timeout=30, what="both research.generated records")
    assert sorted(r["outcome"] for r in records) == ["accepted", "denied"]
    accepted_record = next(r for r in records if r["outcome"] == "accepted")
    refs = {i["ref"] for i in accepted_record["inputs_refs"]}
    assert f"job:{accepted['job_id']}" in refs and f"research:{session_id}" in refs
    assert {f"fixture:{f}" for f in FIXTURE_IDS} <= refs


def test_detached_sources_keep_their_references_and_deleted_sessions_are_gone(
    stack: Stack,
) -> None:
    _, client = new_workspace(stack, "research")
    session_id, attached = fixture_session(client)
    accepted = generate(client, session_id, kinds=["references"])
    wait_job(client, accepted["job_id"])
    insights_of(client, session_id, accepted["job_id"])
    gone = sorted(attached)[0]
    assert client.delete(f"/research/sessions/{session_id}/sources/{gone}").status_code == 204
    assert client.delete(f"/research/sessions/{session_id}/sources/{gone}").status_code == 404
    view = session(client, session_id)
    assert gone not in {s["source"]["source_id"] for s in view["sources"]}
    (references,) = view["insights"]
    detached = [r for r in references["references"] if r["source_id"] == gone]
    assert detached and not detached[0]["attached"] and detached[0]["reference"] != gone
    empty = create_session(client)
    nothing = client.post(
        f"/research/sessions/{empty}/generate-insights", json={"kinds": ["summary"]}
    )
    assert nothing.status_code == 409, nothing.text
    assert client.delete(f"/research/sessions/{session_id}").status_code == 204
    assert client.get(f"/research/sessions/{session_id}").status_code == 404


def test_replaying_the_research_topics_changes_nothing(stack: Stack) -> None:
    _, client = new_workspace(stack, "research")
    session_id, _ = fixture_session(client)
    accepted = generate(client, session_id, kinds=["summary", "outline"])
    wait_job(client, accepted["job_id"])
    insights_of(client, session_id, accepted["job_id"])
    before = session(client, session_id)
    # The worker, replayed, republishes each recorded outcome (same event ids) instead of
    # writing anew; the projector, replayed, keeps each insight once.
    replays = {
        "insights-worker": ["research.insights-requested.v1"],
        "session-projector": ["research.insight-generated.v1"],
    }
    groups = {name: f"replay-{uuid.uuid4().hex[:6]}" for name in replays}
    for name, group in groups.items():
        stack.start(
            f"replay-{name}",
            "worker",
            "run",
            "--group",
            name,
            "--group-id",
            group,
            "--metrics-port",
            str(free_port()),
        )
    try:
        for name, topics in replays.items():
            wait_until(
                lambda name=name, topics=topics: _group_caught_up(groups[name], topics),
                timeout=90,
                what=f"the replay of {name}",
            )
    finally:
        for name in replays:
            stack.kill(f"replay-{name}")
    assert session(client, session_id) == before
    assert wait_job(client, accepted["job_id"])["status"] == "completed"
