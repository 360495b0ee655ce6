"""The event and HTTP contracts: docs/asyncapi.json and docs/openapi.json are what the code
generates now and valid against their specifications; every topic of the registry is documented
with its envelope, payload schema, key, producer and consumer groups; every field has a
description; and the analysts' example reader parses a record as the publisher writes it.

No broker or store is needed: the documents are generated from the FastStream apps and the
gateway without starting them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from faststream.message import encode_message
from jsonschema import Draft7Validator
from openapi_spec_validator import validate as validate_openapi
from typer.testing import CliRunner

from studio_ai.consumers.app import GROUPS
from studio_ai.consumers.job_outcomes import job_metrics
from studio_ai.producers.cli_docs import docs_app
from studio_ai.producers.contract_docs import (
    ASYNCAPI_FILE,
    DOC_FILES,
    ID_PATTERN,
    INFERENCE_GROUP_PATTERN,
    OPENAPI_FILE,
    ContractError,
    asyncapi_document,
    channel_id,
    default_settings,
    generated_documents,
    render,
)
from studio_ai.runtime.settings import Settings
from studio_ai.schemas import contract, topics
from studio_ai.schemas.contract import MissingPayload, contracts, missing_payloads, payload_for
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.inference import (
    EngineName,
    InferenceCompleted,
    InferenceMetrics,
    InferenceRequested,
    JobTimings,
    Usage,
)
from studio_ai.schemas.models import Pricing, PricingBasis

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ASYNCAPI_SCHEMAS = Path(__file__).parent / "schemas" / "asyncapi"
METRICS_EXAMPLE = DOCS / "examples" / "read_metrics.py"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generated_documents()


@pytest.fixture(scope="module")
def asyncapi(generated: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(generated[ASYNCAPI_FILE])
    return document


@pytest.fixture(scope="module")
def openapi(generated: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(generated[OPENAPI_FILE])
    return document


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"not a local reference: {ref}"
        target: Any = document
        for part in ref[2:].split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]
        node = target
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


# -- the topic -> payload mapping -------------------------------------------------------------


def test_every_registry_topic_has_a_payload_model() -> None:
    assert missing_payloads() == [], (
        "topics without a payload model: add them to TOPIC_PAYLOADS in "
        "studio_ai/schemas/contract.py"
    )
    assert {c.spec.name for c in contracts()} == {
        *(spec.name for spec in topics.ALL_TOPICS),
        topics.INFERENCE_REQUESTED_PATTERN,
    }


def test_a_topic_added_without_a_payload_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = topics.TopicSpec("things.happened.v1", "thing_id", "gateway", "nobody", "A test.")
    monkeypatch.setattr(topics, "ALL_TOPICS", (*topics.ALL_TOPICS, extra))
    assert missing_payloads() == ["things.happened.v1"]
    with pytest.raises(MissingPayload, match=r"things\.happened\.v1.*TOPIC_PAYLOADS"):
        contracts()


def test_payload_for_concrete_topic_names() -> None:
    assert payload_for("analytics.inference-metrics.v1") is InferenceMetrics
    assert payload_for("analytics.inference-metrics.v1.dlq") is InferenceMetrics
    assert payload_for(topics.inference_requested("medgemma-4b-it").name) is InferenceRequested
    assert payload_for("ai.inference-requested.medgemma-4b-it.v1.dlq") is InferenceRequested
    with pytest.raises(MissingPayload):
        payload_for("ai.inference-requested..v1")
    with pytest.raises(MissingPayload):
        payload_for("nobody.knows.v1")


def test_event_types_are_the_topic_names_without_their_generation() -> None:
    by_name = {c.spec.name: c for c in contracts()}
    assert by_name["analytics.inference-metrics.v1"].event_type == "analytics.inference-metrics"
    assert by_name[topics.INFERENCE_REQUESTED_PATTERN].event_type == "ai.inference-requested"


# -- the committed documents ------------------------------------------------------------------


@pytest.mark.parametrize("name", DOC_FILES)
def test_committed_documents_are_current(generated: dict[str, str], name: str) -> None:
    path = DOCS / name
    assert path.exists(), f"docs/{name} is missing: run `make docs` and commit it"
    assert path.read_text(encoding="utf-8") == generated[name], (
        f"docs/{name} differs from what the code generates now (a topic, payload field, "
        "consumer or route changed): run `make docs` and commit the result"
    )


@pytest.mark.parametrize("name", DOC_FILES)
def test_documents_are_rendered_stably(generated: dict[str, str], name: str) -> None:
    text = generated[name]
    assert text.endswith("}\n")
    assert render(json.loads(text)) == text  # sorted keys, fixed indent: nothing order-dependent


def test_documents_do_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_KAFKA_BOOTSTRAP", "elsewhere:9092")
    monkeypatch.setenv("STUDIO_CONSUMER_GROUP_PREFIX", "staging-")
    settings = default_settings()
    for name, field in Settings.model_fields.items():
        if field.default_factory is None:
            assert getattr(settings, name) == field.default, name


def test_docs_cli_generates_and_names_a_drifted_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(docs_app, ["check", "--out", str(tmp_path)]).exit_code == 1
    written = runner.invoke(docs_app, ["generate", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DOC_FILES)
    assert runner.invoke(docs_app, ["check", "--out", str(tmp_path)]).exit_code == 0
    (tmp_path / OPENAPI_FILE).write_text("{}\n", encoding="utf-8")
    drifted = runner.invoke(docs_app, ["check", "--out", str(tmp_path)])
    assert drifted.exit_code == 1
    assert OPENAPI_FILE in drifted.output and ASYNCAPI_FILE not in drifted.output
    assert "make docs" in drifted.output


# -- validity ---------------------------------------------------------------------------------


def test_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    validate_openapi(openapi)
    assert "/healthz" in openapi["paths"]
    assert "/metrics" not in openapi["paths"]


def _asyncapi_validator(version: str) -> Draft7Validator:
    path = ASYNCAPI_SCHEMAS / f"{version}.json"
    assert path.exists(), (
        f"no vendored JSON schema for AsyncAPI {version}: add it to {ASYNCAPI_SCHEMAS} "
        "(see SOURCES.md there)"
    )
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_asyncapi_document_is_valid(asyncapi: dict[str, Any]) -> None:
    errors = sorted(_asyncapi_validator(asyncapi["asyncapi"]).iter_errors(asyncapi), key=str)
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:20]
    )


def test_asyncapi_validation_catches_broken_documents(asyncapi: dict[str, Any]) -> None:
    validator = _asyncapi_validator(asyncapi["asyncapi"])
    bad_action = copy.deepcopy(asyncapi)
    bad_action["operations"]["audit.recorded.v1.send"]["action"] = "publish"
    bad_binding = copy.deepcopy(asyncapi)
    bad_binding["components"]["messages"]["audit.recorded"]["bindings"]["kafka"]["keys"] = {}
    for broken in (bad_action, bad_binding):
        assert any(True for _ in validator.iter_errors(broken))


def test_asyncapi_ids_are_plain_and_references_resolve(asyncapi: dict[str, Any]) -> None:
    names = [
        *asyncapi["channels"],
        *asyncapi["operations"],
        *(key for part in asyncapi["components"].values() for key in part),
    ]
    assert [n for n in names if not ID_PATTERN.match(n)] == []
    for ref in _refs(asyncapi):
        _resolve(asyncapi, {"$ref": ref})


# -- content ----------------------------------------------------------------------------------


def test_every_topic_has_a_channel_with_its_payload_key_and_producers(
    asyncapi: dict[str, Any],
) -> None:
    channels, operations = asyncapi["channels"], asyncapi["operations"]
    schemas = asyncapi["components"]["schemas"]
    for c in contracts():
        cid = channel_id(c.spec.name)
        channel = channels[cid]
        assert channel["address"] == c.spec.name
        assert (channel["x-key"], channel["x-produced-by"], channel["x-consumed-by"]) == (
            c.spec.key,
            c.spec.produced_by,
            c.spec.consumed_by,
        )
        (message_ref,) = channel["messages"].values()
        message = _resolve(asyncapi, message_ref)
        assert message["name"] == c.event_type
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "string" and c.spec.key in key["description"]
        envelope = _resolve(asyncapi, message["payload"])
        assert envelope is schemas[f"{c.payload.__name__}Envelope"]
        assert set(envelope["properties"]) == set(Envelope.model_fields)
        payload = _resolve(asyncapi, envelope["properties"]["payload"])
        assert set(payload["properties"]) == set(c.payload.model_fields)

        send = operations[f"{cid}.send"]
        assert send["action"] == "send" and send["channel"] == {"$ref": f"#/channels/{cid}"}
        assert send["x-produced-by"] == c.spec.produced_by

        dead = channels[f"{cid}.dlq"]
        assert dead["address"] == topics.dead_letter_topic(c.spec.name)
        assert dead["x-dead-letter-of"] == c.spec.name
        assert operations[f"{cid}.dlq.send"]["action"] == "send"
    per_pool = channels[channel_id(topics.INFERENCE_REQUESTED_PATTERN)]
    assert per_pool["address"] == "ai.inference-requested.{pool}.v1"
    assert set(per_pool["parameters"]) == {"pool"}


def test_every_consumer_group_has_its_receive_operations(asyncapi: dict[str, Any]) -> None:
    receives = {
        (op["x-consumer-group"], _resolve(asyncapi, op["channel"])["address"]): op
        for op in asyncapi["operations"].values()
        if op["action"] == "receive"
    }
    assert {group for group, _ in receives} == {*GROUPS, INFERENCE_GROUP_PATTERN}
    for group, topic in [
        ("downloader", "models.download-requested.v1"),
        ("model-projector", "models.download-requested.v1"),
        ("job-projector", "ai.inference-completed.v1"),
        ("usage-meter", "ai.inference-completed.v1"),
        ("metrics-recorder", "analytics.inference-metrics.v1"),
        ("audit-recorder", "audit.recorded.v1"),
        ("insights-worker", "research.insights-requested.v1"),
        ("session-projector", "research.insight-generated.v1"),
        (INFERENCE_GROUP_PATTERN, topics.INFERENCE_REQUESTED_PATTERN),
    ]:
        op = receives[(group, topic)]
        assert op["bindings"]["kafka"]["groupId"]["type"] == "string"
        if "{" not in group:
            assert op["bindings"]["kafka"]["groupId"]["enum"] == [group]


def test_a_consumer_that_reads_another_model_than_the_contract_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(contract.TOPIC_PAYLOADS, topics.INFERENCE_METRICS.name, InferenceCompleted)
    with pytest.raises(ContractError, match=r"reads analytics\.inference-metrics\.v1 as"):
        asyncapi_document()


def test_every_field_of_every_schema_has_a_description(asyncapi: dict[str, Any]) -> None:
    missing = [
        f"{name}.{prop}"
        for name, schema in asyncapi["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert missing == [], "add Field(description=...) in studio_ai/schemas for: " + ", ".join(
        missing
    )
    for model in (InferenceMetrics, Envelope):
        assert [n for n, f in model.model_fields.items() if not f.description] == []


# -- the analysts' example reader -------------------------------------------------------------


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("read_metrics_example", METRICS_EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(*, completed: bool, first_token: bool) -> InferenceMetrics:
    queued = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    return job_metrics(
        job_id=uuid.uuid4(),
        workspace_id="ws-analytics",
        model_id="meta-llama/Llama-3.2-1B-Instruct",
        engine=EngineName.VLLM,
        pool="llama-3-2-1b-instruct",
        completed=completed,
        usage=Usage(prompt_tokens=120, completion_tokens=80 if completed else 0),
        timings=JobTimings(
            queued_at=queued,
            started_at=queued + timedelta(milliseconds=250),
            first_token_at=queued + timedelta(milliseconds=400) if first_token else None,
            finished_at=queued + timedelta(milliseconds=2400),
        ),
        pricing=Pricing(basis=PricingBasis.PER_GPU_SECOND, usd_per_gpu_hour=3.6),
        gpu_seconds=0.5,
        default_usd_per_gpu_hour=0.0,
    )


@pytest.mark.parametrize(("completed", "first_token"), [(True, True), (False, False)])
def test_metrics_example_parses_a_record_as_published(completed: bool, first_token: bool) -> None:
    metrics = _metrics(completed=completed, first_token=first_token)
    event = Envelope[InferenceMetrics](
        event_type="analytics.inference-metrics",
        correlation_id="req-1",
        workspace_id=metrics.workspace_id,
        user_id="u-1",
        payload=metrics,
    )
    # What EventPublisher hands the broker, encoded as FastStream encodes it for Kafka.
    value, content_type = encode_message(event.model_dump(mode="json", serialize_as_any=True), None)
    assert content_type == "application/json"
    example = _example()
    parsed = example.parse_record(metrics.model_id.encode(), value)
    assert (
        InferenceMetrics.model_validate(
            {name: parsed[name] for name in InferenceMetrics.model_fields}
        )
        == metrics
    )
    assert parsed["key"] == metrics.model_id
    assert parsed["event_id"] == str(event.event_id)
    assert parsed["correlation_id"] == "req-1"

    line = example.format_metrics(parsed)
    assert metrics.model_id in line and metrics.cost_basis in line
    assert ("ttft=150ms" if first_token else "ttft=-ms") in line
    assert re.search(r"cost=0\.00050000 USD \(per_gpu_second\)", line)  # 0.5 s at $3.60/h
