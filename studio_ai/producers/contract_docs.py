"""The published contracts: docs/asyncapi.json (events) and docs/openapi.json (HTTP API).

AsyncAPI: FastStream's own generator (`faststream.specification.AsyncAPI`) runs over one broker
per consumer group of consumers/app.py (each group's router built with stub dependencies: nothing
connects to Kafka or the store), one for the inference workers' per-pool topic (they consume it
with their own in-flight consumer, so it is declared here as a pattern subscriber), and one with
a declared publisher for every produced topic and its dead-letter topic. Its output is then
arranged into one channel per topic, one send operation per topic, one receive operation per
consumer group, and messages that carry what FastStream cannot express: the Kafka key (message
binding), the consumer group (operation binding), the headers, the producers and consumers
(`x-` extensions) and the per-pool topic's parameter. Topic -> payload model comes from
studio_ai/schemas/contract.py; a consumer that reads a topic as another model is an error.

OpenAPI: the gateway app's own `openapi()`.

Both are generated from class defaults only (no environment, no .env) and rendered with sorted
keys and a trailing newline, so the same code always gives the same bytes. Like dev_stack.py,
this is tooling that looks at both sides, so it may import the consumers.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import unquote

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from studio_ai.adapters.model_download import ModelDownloader
from studio_ai.adapters.mongo_store import MongoStore
from studio_ai.runtime.broker import EventPublisher
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.contract import PATTERN_PARAMETERS, TopicContract, contracts
from studio_ai.schemas.envelope import Envelope
from studio_ai.schemas.topics import dead_letter_topic

if TYPE_CHECKING:
    from studio_ai.consumers.deps import ConsumerDeps

ASYNCAPI_VERSION = "3.0.0"
ASYNCAPI_FILE = "asyncapi.json"
OPENAPI_FILE = "openapi.json"
DOC_FILES = (ASYNCAPI_FILE, OPENAPI_FILE)
DEFAULT_OUT = Path("docs")

KAFKA_BINDING_VERSION = "0.4.0"
SERVER_ID = "local"
SERVER_HOST = "127.0.0.1:9092"
INFERENCE_GROUP_PATTERN = "inference-{pool}"
# Component, channel and operation ids: what the AsyncAPI spec allows in component keys.
ID_PATTERN = re.compile(r"^[\w.\-]+$")

_HEADERS_SCHEMA = "EventHeaders"
_DLQ_HEADERS_SCHEMA = "DeadLetterHeaders"


class ContractError(RuntimeError):
    """The consumers, the contract module and the registry disagree."""


# -- settings and stub dependencies ------------------------------------------------------------


class _DefaultSettings(Settings):
    """Settings from class defaults only: the documents must not depend on the environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def default_settings() -> Settings:
    return _DefaultSettings()


class _NoStore:
    """Stands in for the store while routers are built; any use of it is a bug here."""

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"the contract generator has no store (asked for {name!r})")


def _doc_broker() -> KafkaBroker:
    return KafkaBroker(SERVER_HOST, description="studio-ai events")


def _stub_deps(settings: Settings, broker: KafkaBroker) -> ConsumerDeps:
    from studio_ai.consumers.deps import ConsumerDeps

    return ConsumerDeps(
        settings=settings,
        store=cast(MongoStore, _NoStore()),
        publisher=EventPublisher(broker),
        downloader=ModelDownloader(settings, ConsumerMetrics.create(CollectorRegistry())),
    )


# -- what FastStream generates -----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One operation of a FastStream-generated document: who sends or receives what, where."""

    owner: str  # the consumer group, or "producers"
    action: str  # "send" or "receive"
    address: str
    schema: str  # key of the payload in the raw document's components.schemas
    description: str | None


def _faststream_document(broker: KafkaBroker) -> dict[str, Any]:
    with warnings.catch_warnings():
        # FastStream warns when one channel or operation overwrites another: information lost.
        warnings.simplefilter("error", RuntimeWarning)
        spec = AsyncAPI(broker, schema_version=ASYNCAPI_VERSION).to_specification()
    return cast(dict[str, Any], json.loads(spec.to_json()))


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (FastStream percent-encodes them) to the object they name."""
    seen = 0
    while "$ref" in node:
        target: Any = document
        for part in unquote(node["$ref"].removeprefix("#/")).split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
        seen += 1
        if seen > 10:
            raise ContractError(f"reference loop at {node!r}")
    return node


def _schema_name(ref: str) -> str:
    return unquote(ref.removeprefix("#/components/schemas/"))


def _endpoints(owner: str, document: dict[str, Any]) -> list[Endpoint]:
    found = []
    for operation in document.get("operations", {}).values():
        channel = _resolve(document, operation["channel"])
        for message_ref in operation["messages"]:
            message = _resolve(document, message_ref)
            found.append(
                Endpoint(
                    owner=owner,
                    action=operation["action"],
                    address=channel["address"],
                    schema=_schema_name(message["payload"]["$ref"]),
                    description=channel.get("description"),
                )
            )
    return found


def _envelope(contract: TopicContract) -> type[BaseModel]:
    """`Envelope[<the topic's payload model>]`."""
    return Envelope[contract.payload]  # type: ignore[name-defined]


def _inference_worker_broker(contract: TopicContract) -> KafkaBroker:
    """The inference workers' subscription, declared for the document only: the workers read
    the per-pool topic with studio_ai.runtime.inflight.InflightConsumer, not FastStream."""
    broker = _doc_broker()

    async def inference_worker(event: Any) -> None:
        raise NotImplementedError("documentation only")

    # FastStream documents the handler's parameter type: the topic's envelope.
    inference_worker.__annotations__["event"] = _envelope(contract)
    broker.subscriber(
        pattern=contract.spec.name,
        group_id=INFERENCE_GROUP_PATTERN,
        ack_policy=AckPolicy.MANUAL,
        description="Runs the pool's jobs with many in flight, commits each partition's "
        "highest contiguous finished offset, and publishes the job's progress, outcome and "
        "metrics.",
    )(inference_worker)
    return broker


def _producer_broker(topic_contracts: Iterable[TopicContract]) -> KafkaBroker:
    broker = _doc_broker()
    for contract in topic_contracts:
        envelope = _envelope(contract)
        broker.publisher(
            contract.spec.name,
            schema=envelope,
            description=f"Produced by: {contract.spec.produced_by}.",
        )
        broker.publisher(
            dead_letter_topic(contract.spec.name),
            schema=envelope,
            description=f"Any consumer of {contract.spec.name}, for a message it can never "
            "process.",
        )
    return broker


def faststream_endpoints() -> tuple[list[Endpoint], dict[str, dict[str, Any]]]:
    """Every endpoint FastStream documents, and the payload schemas they use (raw names)."""
    from studio_ai.consumers.app import GROUPS

    settings = default_settings()
    topic_contracts = contracts()
    documents: list[tuple[str, dict[str, Any]]] = []
    for group, build_router in GROUPS.items():
        broker = _doc_broker()
        broker.include_router(build_router(_stub_deps(settings, broker), group_id=group))
        documents.append((group, _faststream_document(broker)))
    for contract in topic_contracts:
        if contract.pattern:
            documents.append(
                (INFERENCE_GROUP_PATTERN, _faststream_document(_inference_worker_broker(contract)))
            )
    documents.append(("producers", _faststream_document(_producer_broker(topic_contracts))))

    endpoints: list[Endpoint] = []
    schemas: dict[str, dict[str, Any]] = {}
    for owner, document in documents:
        endpoints += _endpoints(owner, document)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ContractError(f"two different JSON schemas are both named {name!r}")
            schemas[name] = schema
    return endpoints, schemas


# -- the AsyncAPI document ---------------------------------------------------------------------


def _component_name(raw: str) -> str:
    """`Envelope[InferenceMetrics]` -> `InferenceMetricsEnvelope` (component keys must match
    ^[\\w.-]+$); in other names, characters outside that set become `_`."""
    if match := re.fullmatch(r"(\w+)\[(\w+)\]", raw):
        return match[2] + match[1]
    return re.sub(r"[^\w.\-]", "_", raw)


def _rename_refs(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                prefix = "#/components/schemas/"
                if value.startswith(prefix):
                    value = prefix + names[_schema_name(value)]
            out[key] = _rename_refs(value, names)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, names) for item in node]
    return node


def channel_id(topic: str) -> str:
    """A channel id for a topic or topic pattern: `{pool}` becomes `per-pool`."""
    return re.sub(r"\{(\w+)\}", r"per-\1", topic)


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _headers_schemas() -> dict[str, dict[str, Any]]:
    def text(description: str) -> dict[str, str]:
        return {"type": "string", "description": description}

    return {
        _HEADERS_SCHEMA: {
            "type": "object",
            "title": _HEADERS_SCHEMA,
            "description": "Kafka headers set by the publisher from the envelope, so a reader "
            "can route or filter without parsing the value.",
            "properties": {
                "event_type": text("The envelope's event_type."),
                "event_id": text("The envelope's event_id (uuid)."),
                "correlation_id": text("The envelope's correlation_id."),
                "workspace_id": text("The envelope's workspace_id."),
                "content-type": text("application/json."),
            },
        },
        _DLQ_HEADERS_SCHEMA: {
            "type": "object",
            "title": _DLQ_HEADERS_SCHEMA,
            "description": "Why and where from a message was dead-lettered, followed by the "
            "headers of the original message (see EventHeaders).",
            "properties": {
                "dlq_reason": text("What was wrong with the message (at most 2,000 characters)."),
                "dlq_source_topic": text("The topic the message was read from."),
                "dlq_source_partition": text("Its partition."),
                "dlq_source_offset": text("Its offset."),
                "dlq_failed_at": text("When it was dead-lettered (ISO 8601, UTC)."),
                "dlq_error_type": text("The kind of error, e.g. ValidationError."),
            },
            "additionalProperties": text("A header of the original message."),
        },
    }


def _message(contract: TopicContract, envelope_schema: str) -> dict[str, Any]:
    spec = contract.spec
    doc = " ".join((contract.payload.__doc__ or "").split())
    return {
        "name": contract.event_type,
        "title": contract.payload.__name__,
        "summary": spec.description,
        "description": (doc + "\n\n" if doc else "")
        + f"The value is an Envelope (event_type `{contract.event_type}`) whose `payload` is "
        f"{contract.payload.__name__}; the key is the `{spec.key}`.",
        "contentType": "application/json",
        "payload": _ref("components", "schemas", envelope_schema),
        "headers": _ref("components", "schemas", _HEADERS_SCHEMA),
        "correlationId": {
            "description": "One id per user request, carried through the whole chain.",
            "location": "$message.header#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"The {spec.key} (UTF-8): one entity's events stay in order.",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "x-event-type": contract.event_type,
        "x-key": spec.key,
    }


def _dead_letter_message(contract: TopicContract, envelope_schema: str) -> dict[str, Any]:
    spec = contract.spec
    return {
        "name": f"{contract.event_type}.dead-letter",
        "title": f"{contract.payload.__name__} dead letter",
        "summary": f"A message of {spec.name} that a consumer could never process.",
        "description": "The original key and value, unchanged, with the reason in the "
        "headers. The value is usually the topic's envelope, but it may not be JSON or may not "
        "match the schema: that is often why it is here.",
        "contentType": "application/json",
        "payload": {
            "anyOf": [
                _ref("components", "schemas", envelope_schema),
                {"description": "Any other value, as it was read from the source topic."},
            ]
        },
        "headers": _ref("components", "schemas", _DLQ_HEADERS_SCHEMA),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The source message's key: {spec.key}."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "x-dead-letter-of": spec.name,
        "x-key": spec.key,
    }


def _channel(
    contract: TopicContract, address: str, message_id: str, *, dead_letter: bool
) -> dict[str, Any]:
    spec = contract.spec
    channel: dict[str, Any] = {
        "address": address,
        "title": address,
        "messages": {message_id: _ref("components", "messages", message_id)},
        "servers": [_ref("servers", SERVER_ID)],
        "x-key": spec.key,
    }
    if dead_letter:
        channel["description"] = (
            f"Dead letters of `{spec.name}`: a consumer of it parks here a message it can never "
            "process (bad schema, a rule it breaks, a bug), with the reason, and moves on. "
            "Operators read, fix and republish them."
        )
        channel["x-produced-by"] = f"any consumer of {spec.name} ({spec.consumed_by})"
        channel["x-consumed-by"] = "operators"
        channel["x-dead-letter-of"] = spec.name
    else:
        channel["description"] = (
            f"{spec.description}\n\nKey: `{spec.key}`. Produced by: {spec.produced_by}. "
            f"Consumed by: {spec.consumed_by}. Dead letters: `{dead_letter_topic(spec.name)}`."
        )
        channel["x-produced-by"] = spec.produced_by
        channel["x-consumed-by"] = spec.consumed_by
        channel["x-dead-letter-topic"] = dead_letter_topic(spec.name)
    if contract.pattern:
        channel["parameters"] = {
            name: {"description": PATTERN_PARAMETERS[name]}
            for name in re.findall(r"\{(\w+)\}", spec.name)
        }
        channel["x-topic-pattern"] = True
    else:
        channel["bindings"] = {"kafka": {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}}
    return channel


def _receive_operation(
    endpoint: Endpoint, contract: TopicContract, cid: str, message_id: str
) -> dict[str, Any]:
    group = endpoint.owner
    what = f"{endpoint.description} " if endpoint.description else ""
    group_id: dict[str, Any] = {
        "type": "string",
        "description": f"`{group}`, after STUDIO_CONSUMER_GROUP_PREFIX (empty by default).",
    }
    if "{" not in group:
        group_id["enum"] = [group]
    return {
        "action": "receive",
        "title": f"{group} reads {contract.spec.name}",
        "description": f"{what}Consumer group `{group}`: commits only after its effects are "
        "durable; a message it can never process goes to the dead-letter topic.",
        "channel": _ref("channels", cid),
        "messages": [_ref("channels", cid, "messages", message_id)],
        "bindings": {"kafka": {"groupId": group_id, "bindingVersion": KAFKA_BINDING_VERSION}},
        "x-consumer-group": group,
    }


def _send_operation(
    contract: TopicContract, cid: str, message_id: str, *, dead_letter: bool
) -> dict[str, Any]:
    spec = contract.spec
    if dead_letter:
        producers = f"any consumer of {spec.name}"
        title = f"Dead-letter a message of {spec.name}"
    else:
        producers = spec.produced_by
        title = f"Publish {spec.name}"
    return {
        "action": "send",
        "title": title,
        "description": f"Produced by: {producers}.",
        "channel": _ref("channels", cid),
        "messages": [_ref("channels", cid, "messages", message_id)],
        "x-produced-by": producers,
    }


def _info_description() -> str:
    return (
        "Every event of studio-ai, the AI model layer of Databiomics Studio, on Apache Kafka.\n\n"
        "Every message value is a JSON **Envelope**: `event_id` (uuid, unique; consumers "
        "deduplicate on it), `event_type`, `schema_version`, `occurred_at` (UTC), "
        "`correlation_id` (one per user request, carried through the chain), `causation_id` "
        "(the parent event), `workspace_id`, `user_id`, and `payload`, the event's own fields. "
        "The Kafka key is the entity id (model_id, job_id, session_id, workspace_id), so one "
        "entity's events stay in order. Headers repeat the envelope's ids (EventHeaders).\n\n"
        "Fields are only ever added; a breaking change is a new topic (`.v2`) published beside "
        "the old one. Delivery is at least once: consumers commit after their effects are "
        "durable and are idempotent on event_id. A message a consumer can never process goes "
        "to `<topic>.dlq` with the reason in its headers. Consumer group ids are the group "
        "names below, prefixed by STUDIO_CONSUMER_GROUP_PREFIX (empty by default).\n\n"
        "Generated from the FastStream apps by `make docs` (studio-ai docs generate); "
        "topic -> payload model: studio_ai/schemas/contract.py."
    )


def _package_version() -> str:
    try:
        return metadata.version("studio-ai")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0.0.0"


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document of every topic, producer and consumer group."""
    endpoints, raw_schemas = faststream_endpoints()
    names = {raw: _component_name(raw) for raw in raw_schemas}
    if len(set(names.values())) != len(names):
        raise ContractError(f"schema names collide once renamed: {sorted(names.values())}")
    schemas = {names[raw]: _rename_refs(schema, names) for raw, schema in raw_schemas.items()}
    schemas.update(_headers_schemas())

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    by_address = {c.spec.name: c for c in contracts()}
    covered: set[tuple[str, str]] = set()
    for endpoint in endpoints:
        dead_letter = endpoint.address.endswith(".dlq")
        topic = endpoint.address.removesuffix(".dlq") if dead_letter else endpoint.address
        contract = by_address.get(topic)
        if contract is None:
            raise ContractError(
                f"{endpoint.owner} {endpoint.action}s {endpoint.address}, which is not in the "
                "topic registry (studio_ai/schemas/topics.py) and contract"
            )
        expected = f"Envelope[{contract.payload.__name__}]"
        # A dead-letter topic holds whatever failed, so its readers may take it as anything.
        if endpoint.schema != expected and not (dead_letter and endpoint.action == "receive"):
            raise ContractError(
                f"{endpoint.owner} reads {endpoint.address} as {endpoint.schema}, but the "
                f"contract (studio_ai/schemas/contract.py) says {expected}"
            )
        envelope_schema = names[expected]
        cid = channel_id(endpoint.address)
        if dead_letter:
            message_id = f"{contract.event_type}.dead-letter"
            messages[message_id] = _dead_letter_message(contract, envelope_schema)
        else:
            message_id = contract.event_type
            messages[message_id] = _message(contract, envelope_schema)
        channels[cid] = _channel(contract, endpoint.address, message_id, dead_letter=dead_letter)
        if endpoint.action == "send":
            operations[f"{cid}.send"] = _send_operation(
                contract, cid, message_id, dead_letter=dead_letter
            )
        else:
            op_id = f"{cid}.receive.{channel_id(endpoint.owner)}"
            if op_id in operations:
                raise ContractError(f"{endpoint.owner} subscribes to {endpoint.address} twice")
            operations[op_id] = _receive_operation(endpoint, contract, cid, message_id)
        covered.add((endpoint.action, endpoint.address))

    for contract in by_address.values():
        for address in (contract.spec.name, dead_letter_topic(contract.spec.name)):
            if ("send", address) not in covered:
                raise ContractError(f"no producer declared for {address}")

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "studio-ai events",
            "version": _package_version(),
            "description": _info_description(),
        },
        "defaultContentType": "application/json",
        "servers": {
            SERVER_ID: {
                "host": SERVER_HOST,
                "protocol": "kafka",
                "description": "The local broker of deploy/local (make run, make services-up); "
                "elsewhere the brokers in STUDIO_KAFKA_BOOTSTRAP.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# -- the OpenAPI document, rendering and drift -------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document (the app is built, not started)."""
    from studio_ai.producers.gateway.app import create_app

    return create_app(default_settings()).openapi()


def render(document: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_documents() -> dict[str, str]:
    """File name -> rendered document."""
    return {
        ASYNCAPI_FILE: render(asyncapi_document()),
        OPENAPI_FILE: render(openapi_document()),
    }


def write_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """Write both documents under `out`; return the files whose content changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in generated_documents().items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def drifted_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """The files under `out` that are missing or differ from freshly generated documents."""
    drifted = []
    for name, text in generated_documents().items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            drifted.append(path)
    return drifted
