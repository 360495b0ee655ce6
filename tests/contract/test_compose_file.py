"""deploy/compose (the laptop stack), its Prometheus config and the Grafana dashboard, offline.

The compose file is validated against the Compose Specification's JSON schema (vendored, see
schemas/SOURCES.md) and against the code: every consumer group has its own service, every
studio-ai service runs a command the CLI accepts, every long-running service has a health
check, Prometheus scrapes every process, and the dashboard queries metrics the code exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from studio_ai.consumers.app import GROUPS
from studio_ai.domain.catalog import parse_catalog
from studio_ai.domain.model_ids import default_pool
from studio_ai.runtime.metrics import ConsumerMetrics, GatewayMetrics, InferenceWorkerMetrics
from studio_ai.runtime.settings import PACKAGED_CATALOG, Settings
from studio_ai.schemas.models import CatalogEntry
from tests.contract.deploy_cli import parse_cli_args

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "compose" / "docker-compose.yaml"
PROMETHEUS_FILE = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "studio-ai.json"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose" / "compose-spec.json"

STUDIO_IMAGE = "${STUDIO_IMAGE:-studio-ai:dev}"
# The defaults, not Settings(): the test run's environment may set STUDIO_* variables.
GATEWAY_PORT = Settings.model_fields["gateway_port"].default
METRICS_PORT = Settings.model_fields["metrics_port"].default
KAFKA_EXPORTER_PORT = 9308
# What danielqsj/kafka-exporter exports that the dashboard may use, with their labels.
KAFKA_EXPORTER_METRICS = {
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
    "kafka_consumergroup_current_offset": {"consumergroup", "topic", "partition"},
    "kafka_topic_partition_current_offset": {"topic", "partition"},
    "kafka_topic_partition_oldest_offset": {"topic", "partition"},
    "kafka_topic_partitions": {"topic"},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def studio_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == STUDIO_IMAGE}


def cli_path(service: dict[str, Any]) -> tuple[str, ...]:
    return parse_cli_args(service["command"]).path


def is_one_shot(name: str, services: dict[str, dict[str, Any]]) -> bool:
    """Runs to completion: never restarted, and whoever depends on it waits for its success."""
    if services[name].get("restart", "no") != "no":
        return False
    waits = [
        s["depends_on"][name]
        for s in services.values()
        if isinstance(s.get("depends_on"), dict) and name in s["depends_on"]
    ]
    return bool(waits) and all(
        w.get("condition") == "service_completed_successfully" for w in waits
    )


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_the_schema_refuses_a_broken_service(compose: dict[str, Any]) -> None:
    """The vendored schema is strict enough to catch a misspelt key (so the test above means
    something)."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthchek"] = broken["services"]["gateway"]["healthcheck"]
    validator = jsonschema.Draft202012Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    assert not validator.is_valid(broken)


def test_every_consumer_group_runs_as_its_own_service(
    services: dict[str, dict[str, Any]],
) -> None:
    groups_of: dict[str, list[str]] = {}
    for name, service in studio_services(services).items():
        call = parse_cli_args(service["command"])
        if call.path == ("worker", "run"):
            assert len(call.params["group"]) == 1, f"{name} runs several groups in one process"
            groups_of.setdefault(call.params["group"][0], []).append(name)
    assert sorted(groups_of) == sorted(GROUPS), "consumer groups without a service (or unknown)"
    assert all(len(names) == 1 for names in groups_of.values()), groups_of


def test_every_studio_service_runs_a_real_cli_command(
    services: dict[str, dict[str, Any]],
) -> None:
    studio = studio_services(services)
    paths = {name: cli_path(service) for name, service in studio.items()}
    assert ("gateway",) in paths.values()
    assert ("topics", "create") in paths.values()
    assert ("images", "sweep") in paths.values()
    assert ("worker", "inference") in paths.values()
    # Every service that builds the image builds the same one.
    for name, service in studio.items():
        assert service["build"] == {"context": "../..", "dockerfile": "Dockerfile"}, name
    assert (COMPOSE_FILE.parent / "../../Dockerfile").resolve().is_file()


def test_the_sweeper_repeats_on_its_own(services: dict[str, dict[str, Any]]) -> None:
    sweepers = [
        parse_cli_args(s["command"])
        for s in studio_services(services).values()
        if cli_path(s) == ("images", "sweep")
    ]
    assert [c.params["every"] for c in sweepers] == [300.0]


def test_every_service_has_a_healthcheck_or_is_one_shot(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shot = {name for name in services if is_one_shot(name, services)}
    assert one_shot == {"topics"}
    for name, service in services.items():
        if name in one_shot:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {check['test']}"
        assert service.get("restart") == "unless-stopped", f"{name} is not restarted"


def test_studio_services_wait_for_kafka_mongo_and_their_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in studio_services(services).items():
        if name == "topics":
            assert service["depends_on"] == {"kafka": {"condition": "service_healthy"}}
            continue
        assert service["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
        env = service["environment"]
        assert env["STUDIO_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert env["STUDIO_MONGO_URL"] == "mongodb://mongo:27017", name
        # Reachable from the other containers (the CLI's defaults bind 127.0.0.1).
        assert env["STUDIO_GATEWAY_HOST"] == env["STUDIO_METRICS_HOST"] == "0.0.0.0", name


def test_kafka_runs_kraft_without_topic_auto_creation(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a KRaft cluster id is 22 chars"
    assert services["mongo"]["image"].startswith("mongo:8")


def test_gpu_pools_have_a_vllm_server_on_a_gpu_and_a_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    servers = {name: s for name, s in services.items() if s.get("image", "").startswith("vllm/")}
    assert len(servers) == 3
    catalog_models = {e.model_id for e in _catalog()}
    allowed_hosts = json.loads(
        services["gateway"]["environment"]["STUDIO_INFERENCE_ENDPOINT_HOSTS"]
    )
    worker_pools = {
        parse_cli_args(s["command"]).params["pool"][0]: s
        for s in studio_services(services).values()
        if cli_path(s) == ("worker", "inference")
    }
    assert "builtin" in worker_pools and "profiles" not in worker_pools["builtin"]
    for name, server in servers.items():
        model = server["command"][server["command"].index("--model") + 1]
        assert model in catalog_models, f"{name} serves {model}, which the catalog lacks"
        pool = default_pool(model)
        assert name == f"vllm-{pool}"
        assert name in allowed_hosts, f"{name} is not in STUDIO_INFERENCE_ENDPOINT_HOSTS"
        assert server["profiles"] == ["gpu"]
        devices = server["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices)
        assert server["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
        assert "--port" in server["command"] and "8000" in server["command"]
        worker = worker_pools.get(pool)
        assert worker is not None, f"no inference worker for pool {pool}"
        assert worker["profiles"] == ["gpu"]
        assert "deploy" not in worker, "the pool's worker calls the server: it needs no GPU"


def _scrape_targets() -> dict[str, str]:
    """host:port -> job name."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    return {
        target: job["job_name"]
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }


def test_prometheus_scrapes_every_process(services: dict[str, dict[str, Any]]) -> None:
    targets = _scrape_targets()
    expected = {f"kafka-exporter:{KAFKA_EXPORTER_PORT}"}
    for name, service in studio_services(services).items():
        path = cli_path(service)
        if path == ("gateway",):
            expected.add(f"{name}:{GATEWAY_PORT}")
        elif path[0] == "worker":
            expected.add(f"{name}:{METRICS_PORT}")
    for name, service in services.items():
        if service.get("image", "").startswith("vllm/"):
            expected.add(f"{name}:8000")
    missing = expected - set(targets)
    assert not missing, f"processes Prometheus does not scrape: {sorted(missing)}"
    stale = {t for t in targets if t.split(":")[0] not in services and t != "localhost:9090"}
    assert not stale, f"scrape targets that are no compose service: {sorted(stale)}"
    mounts = services["prometheus"]["volumes"]
    assert "../prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "../grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090")
    ]
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "studio-ai.yaml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    # The Prometheus port the datasource names is the one Prometheus serves.
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]


def _exported_metrics() -> dict[str, set[str]]:
    """Every series name this project's processes export -> its label names: the metrics the
    code registers, and FastStream's, registered the way runtime/broker.py does."""
    registry = CollectorRegistry()
    ConsumerMetrics.create(registry)
    GatewayMetrics.create(registry)
    InferenceWorkerMetrics.create(registry)
    KafkaPrometheusMiddleware(registry=registry, app_name="contract-test")
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    exported: dict[str, set[str]] = {}
    # Labelled metrics without children have no samples yet, so read their declarations.
    for metric in list(registry._collector_to_names):
        (family,) = metric.describe()
        labels = set(metric._labelnames)
        for suffix in suffixes[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            exported[family.name + suffix] = labels | extra
    return exported


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


_METRIC = re.compile(r"\b((?:studio|faststream|kafka)_[a-z0-9_]+)\b")
_GROUPING = re.compile(r"\bby \(([^)]*)\)")
_MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")


def test_dashboard_queries_use_metrics_and_labels_that_exist() -> None:
    known = {**_exported_metrics(), **KAFKA_EXPORTER_METRICS}
    # Sanity: the introspection found the README's metrics.
    assert "studio_inference_jobs_total" in known
    assert "faststream_received_processed_messages_total" in known
    queries = _dashboard_queries()
    assert queries
    for title, expr in queries:
        names = set(_METRIC.findall(expr))
        assert names, f"{title}: {expr} queries none of our metrics"
        unknown = names - set(known)
        assert not unknown, f"{title}: {sorted(unknown)} is exported by nothing we run"
        labels = {
            label.strip() for group in _GROUPING.findall(expr) for label in group.split(",")
        } | set(_MATCHER.findall(expr))
        available = set().union(*(known[n] for n in names))
        assert labels <= available, f"{title}: labels {sorted(labels - available)} not on {names}"


def test_dashboard_covers_what_operators_and_analysts_watch() -> None:
    exprs = " ".join(expr for _, expr in _dashboard_queries())
    titles = " ".join(title.lower() for title, _ in _dashboard_queries())
    for needed in (
        "studio_inference_jobs_total",  # jobs
        "studio_inference_queue_seconds_bucket",  # queue wait
        "studio_inference_total_seconds_bucket",  # latency
        "studio_inference_tokens_total",  # tokens/s
        "studio_inference_cost_usd_total",  # cost per model
        "kafka_consumergroup_lag",  # consumer lag
        "studio_consumer_dead_lettered_total",  # DLQ counts
        "studio_http_requests_total",
    ):
        assert needed in exprs, f"no panel queries {needed}"
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
    assert re.search(r"by \(model\) \(rate\(studio_inference_cost_usd_total", exprs)
    for word in ("lag", "dlq", "cost", "tokens", "queue wait", "latency"):
        assert word in titles, f"no panel titled with {word!r}"


def test_dashboard_panels_name_a_datasource_that_exists() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def _catalog() -> list[CatalogEntry]:
    return parse_catalog(yaml.safe_load(PACKAGED_CATALOG.read_text()), source="packaged")
