"""k8s/: the dev and prod overlays, built with kustomize and checked offline.

Every object is validated against the Kubernetes OpenAPI schemas (the `kubernetes-validate`
package, strict: unknown fields are errors, as `kubectl apply --validate=strict` makes them) and
every KEDA ScaledObject against KEDA's CRD (vendored, see schemas/SOURCES.md). Then what an
operator relies on: one Deployment and one ScaledObject per consumer group, scaling on the lag
of exactly the topics that group reads, under the group id the code uses; inference pools on
their dedicated topics; GPUs where the model servers run and nowhere else; probes and resource
requests everywhere; no secret values; NetworkPolicies that let the right traffic in.

kustomize is built once from the Go module proxy by deploy/local/kustomize.sh (about 90 s on a
cold cache; the session fixture below does it).
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import jsonschema
import kubernetes_validate
import pytest
import yaml

from studio_ai.consumers.app import GROUPS
from studio_ai.consumers.inference_worker.process import GROUP_PREFIX as INFERENCE_GROUP_PREFIX
from studio_ai.domain.catalog import parse_catalog
from studio_ai.domain.model_ids import default_pool
from studio_ai.runtime.settings import PACKAGED_CATALOG, Settings
from studio_ai.schemas.topics import INFERENCE_REQUESTED_PATTERN
from tests.contract.deploy_cli import CliCall, parse_cli_args

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE_SCRIPT = REPO / "deploy" / "local" / "kustomize.sh"
KEDA_CRD = Path(__file__).parent / "schemas" / "keda" / "keda.sh_scaledobjects.yaml"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes these manifests are meant for, and the newest the package knows.
K8S_VERSIONS = ("1.32", kubernetes_validate.latest_version())
SECRET_NAME = "studio-ai-secrets"
STUDIO_IMAGE_NAMES = {"studio-ai", "registry.example.com/databiomics/studio-ai"}
GPU = "nvidia.com/gpu"

pytestmark = pytest.mark.timeout(900)  # the first test may build kustomize


# ---------------------------------------------------------------- building the overlays


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The kustomize binary, installed into .local/cache/bin once."""
    result = subprocess.run(
        [str(KUSTOMIZE_SCRIPT)], capture_output=True, text=True, timeout=840, check=False
    )
    assert result.returncode == 0, f"deploy/local/kustomize.sh failed:\n{result.stderr}"
    return Path(result.stdout.strip().splitlines()[-1])


_built: dict[str, list[dict[str, Any]]] = {}


def build(kustomize: Path, overlay: str) -> list[dict[str, Any]]:
    if overlay not in _built:
        result = subprocess.run(
            [str(kustomize), "build", str(REPO / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"kustomize build {overlay} failed:\n{result.stderr}"
        _built[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return copy.deepcopy(_built[overlay])


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(kustomize: Path, overlay: str) -> list[dict[str, Any]]:
    return build(kustomize, overlay)


@pytest.fixture
def prod(kustomize: Path) -> list[dict[str, Any]]:
    return build(kustomize, "prod")


@pytest.fixture
def dev(kustomize: Path) -> list[dict[str, Any]]:
    return build(kustomize, "dev")


# ---------------------------------------------------------------- helpers


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    (configmap,) = of_kind(objects, "ConfigMap").values()
    return dict(configmap["data"])


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(workload["spec"]["template"]["spec"])


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "CronJob")]


def is_studio(container: dict[str, Any]) -> bool:
    return container["image"].rsplit(":", 1)[0] in STUDIO_IMAGE_NAMES


def studio_calls(objects: list[dict[str, Any]]) -> dict[str, CliCall]:
    """Deployment name -> the parsed `studio-ai` command of its (single) studio container."""
    calls = {}
    for name, deployment in of_kind(objects, "Deployment").items():
        studio = [c for c in pod_spec(deployment)["containers"] if is_studio(c)]
        if studio:
            (container,) = studio
            assert "command" not in container, f"{name} overrides the image's ENTRYPOINT"
            calls[name] = parse_cli_args(container["args"])
    return calls


def group_topics() -> dict[str, set[str]]:
    """The topics each consumer group subscribes to, read from the routers the code builds."""
    deps = MagicMock()
    deps.settings = Settings()
    return {
        group: {t.name for sub in factory(deps, group_id=group).subscribers for t in sub.topics}
        for group, factory in GROUPS.items()
    }


def scaled_object_for(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    matches = [
        so
        for so in of_kind(objects, "ScaledObject").values()
        if so["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    assert len(matches) == 1, f"{deployment}: {len(matches)} ScaledObjects scale it"
    return matches[0]


def kafka_triggers(scaled_object: dict[str, Any]) -> list[dict[str, str]]:
    triggers = scaled_object["spec"]["triggers"]
    assert triggers and all(t["type"] == "kafka" for t in triggers)
    return [t["metadata"] for t in triggers]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        value = labels.get(expr["key"])
        op = expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and value in expr["values"])
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def strict_crd_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's structural schema with unknown fields refused (the API server prunes them;
    `kubectl apply --validate=strict` refuses them)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def keda_validator() -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "ScaledObject"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = strict_crd_schema(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft4Validator(schema)


# ---------------------------------------------------------------- schemas


def test_overlay_builds(objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ConfigMap", "Deployment", "ScaledObject", "NetworkPolicy"} <= kinds
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        "studio-ai"
    }


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(
    objects: list[dict[str, Any]], k8s_version: str
) -> None:
    errors = []
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: the next test
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.absolute_path))
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(exc.message)
    assert not errors, "\n".join(errors)


def test_scaled_objects_validate_against_the_keda_crd(
    objects: list[dict[str, Any]], keda_validator: jsonschema.protocols.Validator
) -> None:
    scaled = [o for o in objects if o["apiVersion"].startswith("keda.sh/")]
    assert scaled and {(o["apiVersion"], o["kind"]) for o in scaled} == {
        ("keda.sh/v1alpha1", "ScaledObject")
    }
    errors = [
        f"{o['metadata']['name']} {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for o in scaled
        for e in keda_validator.iter_errors(o)
    ]
    assert not errors, "\n".join(errors)


def test_the_schemas_refuse_broken_manifests(
    prod: list[dict[str, Any]], keda_validator: jsonschema.protocols.Validator
) -> None:
    """So that the two tests above mean something."""
    deployment = of_kind(prod, "Deployment")["gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    scaled = of_kind(prod, "ScaledObject")["downloader"]
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5  # must be a string
    assert not keda_validator.is_valid(scaled)
    scaled = of_kind(prod, "ScaledObject")["downloader"]
    scaled["spec"]["maxReplicas"] = 3  # not a ScaledObject field
    assert not keda_validator.is_valid(scaled)


# ---------------------------------------------------------------- consumer groups and pools


def test_every_consumer_group_has_a_deployment_and_scales_on_its_own_lag(
    objects: list[dict[str, Any]],
) -> None:
    settings = config(objects)
    prefix = settings.get("STUDIO_CONSUMER_GROUP_PREFIX", "")
    calls = studio_calls(objects)
    runs = {
        name: call.params["group"] for name, call in calls.items() if call.path == ("worker", "run")
    }
    assert all(len(groups) == 1 for groups in runs.values()), "one group per Deployment"
    by_group = {groups[0]: name for name, groups in runs.items()}
    assert sorted(by_group) == sorted(GROUPS), "consumer groups without a Deployment"
    assert len(by_group) == len(runs), "a group runs in two Deployments"
    for group, topics in group_topics().items():
        triggers = kafka_triggers(scaled_object_for(objects, by_group[group]))
        assert {t["consumerGroup"] for t in triggers} == {prefix + group}, group
        assert {t["topic"] for t in triggers} == topics, f"{group} reads {sorted(topics)}"
        assert {t["bootstrapServers"] for t in triggers} == {settings["STUDIO_KAFKA_BOOTSTRAP"]}
        assert all(int(t["lagThreshold"]) >= 1 for t in triggers)


def test_every_inference_pool_scales_on_its_dedicated_topic(
    objects: list[dict[str, Any]],
) -> None:
    settings = config(objects)
    prefix = settings.get("STUDIO_CONSUMER_GROUP_PREFIX", "")
    pools = {
        name: call.params["pool"]
        for name, call in studio_calls(objects).items()
        if call.path == ("worker", "inference")
    }
    assert any(p == ["builtin"] for p in pools.values()), "the CPU pool `builtin` runs"
    for name, (pool, *more) in pools.items():
        assert not more, f"{name}: one pool per Deployment, so each pool scales alone"
        scaled = scaled_object_for(objects, name)
        (trigger,) = kafka_triggers(scaled)
        assert trigger["topic"] == INFERENCE_REQUESTED_PATTERN.format(pool=pool)
        assert trigger["consumerGroup"] == prefix + INFERENCE_GROUP_PREFIX + pool
        assert trigger["bootstrapServers"] == settings["STUDIO_KAFKA_BOOTSTRAP"]
        # A pool is live only while a worker beats: at zero workers, jobs fall back elsewhere
        # and the lag that would wake it never grows.
        assert scaled["spec"]["minReplicaCount"] >= 1, name


def test_consumers_never_outnumber_partitions(objects: list[dict[str, Any]]) -> None:
    partitions = int(config(objects)["STUDIO_TOPIC_PARTITIONS"])
    consumers = {
        name
        for name, call in studio_calls(objects).items()
        if call.path in (("worker", "run"), ("worker", "inference"))
    }
    for name in consumers:
        spec = scaled_object_for(objects, name)["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, name


def test_gpu_pools_run_a_model_server_per_pinned_model(prod: list[dict[str, Any]]) -> None:
    settings = config(prod)
    allowed_hosts = set(json.loads(settings["STUDIO_INFERENCE_ENDPOINT_HOSTS"]))
    deployments = of_kind(prod, "Deployment")
    services = of_kind(prod, "Service")
    calls = studio_calls(prod)
    worker_of_pool = {
        call.params["pool"][0]: name
        for name, call in calls.items()
        if call.path == ("worker", "inference")
    }
    catalog = parse_catalog(yaml.safe_load(PACKAGED_CATALOG.read_text()), source="packaged")
    for entry in catalog:
        pool = default_pool(entry.model_id)
        server_name = f"model-server-{pool}"
        assert pool in worker_of_pool, f"no inference worker for {entry.model_id} (pool {pool})"
        server = deployments.get(server_name)
        assert server is not None, f"no model server for {entry.model_id}"
        spec = pod_spec(server)
        (container,) = spec["containers"]
        args = container["args"]
        assert args[args.index("--model") + 1] == entry.model_id
        resources = container["resources"]
        gpus = int(resources["requests"][GPU])
        assert gpus >= 1, f"{server_name} must request a GPU"
        assert int(resources["limits"][GPU]) == gpus, f"{server_name}: GPU limit != request"
        assert spec["nodeSelector"], f"{server_name} is not pinned to GPU nodes"
        assert any(t["key"] == GPU for t in spec["tolerations"]), server_name
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
        assert "value" not in env["HF_TOKEN"]
        # Reachable under the name an admin gives as endpoint_url, and allowed there.
        service = services[server_name]
        assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(server))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert [ports[p["targetPort"]] for p in service["spec"]["ports"]] == [
            int(args[args.index("--port") + 1])
        ]
        assert server_name in allowed_hosts, f"{server_name} not in STUDIO_INFERENCE_ENDPOINT_HOSTS"
        # GPU capacity follows the pool's backlog.
        (trigger,) = kafka_triggers(scaled_object_for(prod, server_name))
        assert trigger["consumerGroup"] == INFERENCE_GROUP_PREFIX + pool
        # The worker only calls the server: a GPU there would sit idle.
        worker = pod_spec(deployments[worker_of_pool[pool]])
        for c in worker["containers"]:
            assert GPU not in c["resources"].get("limits", {}), worker_of_pool[pool]


def test_dev_is_small_and_cpu_only(dev: list[dict[str, Any]]) -> None:
    for workload in workloads(dev):
        for c in pod_spec(workload)["containers"]:
            assert GPU not in c["resources"].get("requests", {}), workload["metadata"]["name"]
            assert GPU not in c["resources"].get("limits", {}), workload["metadata"]["name"]
    for scaled in of_kind(dev, "ScaledObject").values():
        assert scaled["spec"]["maxReplicaCount"] == 1, scaled["metadata"]["name"]
    for hpa in of_kind(dev, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1
    pools = [c.params["pool"] for c in studio_calls(dev).values() if c.path[-1] == "inference"]
    assert pools == [["builtin"]]


def test_prod_runs_the_released_image(prod: list[dict[str, Any]]) -> None:
    images = {
        c["image"] for w in workloads(prod) for c in pod_spec(w)["containers"] if is_studio(c)
    }
    assert len(images) == 1, images
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and tag not in ("", "latest", "dev"), image
    assert config(prod)["STUDIO_TOPIC_REPLICATION"] == "3"


def test_the_gateway_scales_on_cpu(objects: list[dict[str, Any]]) -> None:
    assert [c.path for c in studio_calls(objects).values()].count(("gateway",)) == 1
    hpa = of_kind(objects, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_the_image_sweep_runs_on_a_schedule_one_at_a_time(objects: list[dict[str, Any]]) -> None:
    cronjobs = of_kind(objects, "CronJob")
    sweeps = [
        (name, parse_cli_args(c["args"]))
        for name, cronjob in cronjobs.items()
        for c in pod_spec(cronjob)["containers"]
    ]
    assert [call.path for _, call in sweeps] == [("images", "sweep")]
    # The CronJob repeats it: a sweep that loops itself (--every) would never finish.
    assert sweeps[0][1].params["every"] is None
    assert cronjobs[sweeps[0][0]]["spec"]["concurrencyPolicy"] == "Forbid"


# ---------------------------------------------------------------- what every pod needs


def test_every_long_running_container_has_probes_and_resources(
    objects: list[dict[str, Any]],
) -> None:
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        for c in pod_spec(workload)["containers"]:
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{name}: requests"
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), f"{name}: limits"
            if workload["kind"] == "CronJob":
                continue  # runs to completion
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in c, f"{name} has no {probe}"
                get = c[probe]["httpGet"]
                assert get["port"] in ports or get["port"] in ports.values(), f"{name} {probe}"
                if is_studio(c):
                    assert get["path"] == "/healthz", f"{name} {probe}"


def test_probes_and_scrapes_use_the_port_of_the_command(objects: list[dict[str, Any]]) -> None:
    """The gateway serves on STUDIO_GATEWAY_PORT, the others on STUDIO_METRICS_PORT."""
    settings = config(objects)
    for name, call in studio_calls(objects).items():
        deployment = of_kind(objects, "Deployment")[name]
        (container,) = pod_spec(deployment)["containers"]
        key = "STUDIO_GATEWAY_PORT" if call.path == ("gateway",) else "STUDIO_METRICS_PORT"
        expected = int(settings[key])
        assert [p["containerPort"] for p in container["ports"]] == [expected], name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert int(annotations["prometheus.io/port"]) == expected, name
    assert settings["STUDIO_GATEWAY_HOST"] == settings["STUDIO_METRICS_HOST"] == "0.0.0.0"


def test_pods_run_locked_down(objects: list[dict[str, Any]]) -> None:
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        mounts_of = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            if not is_studio(c):
                continue
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in mounts_of[tmp[0]["name"]], f"{name}: no writable /tmp"


def test_no_secret_values_in_the_manifests(objects: list[dict[str, Any]]) -> None:
    for secret in of_kind(objects, "Secret").values():
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]
    for key in config(objects):
        assert not any(w in key for w in ("TOKEN", "API_KEY", "PASSWORD", "SIGNING_KEY")), key
        assert key != "STUDIO_MONGO_URL", "the Mongo URL carries credentials: it is a secret"
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        for c in pod_spec(workload)["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET_NAME, name
                else:
                    assert not any(w in e["name"] for w in ("TOKEN", "KEY", "PASSWORD")), name
            for source in c.get("envFrom", []):
                assert "secretRef" not in source or source["secretRef"]["name"] == SECRET_NAME
            if is_studio(c):
                ref = env["STUDIO_MONGO_URL"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": SECRET_NAME, "key": "STUDIO_MONGO_URL"}, name


def test_configmap_names_only_settings_that_exist(objects: list[dict[str, Any]]) -> None:
    """Settings ignore unknown variables, so a misspelt key would silently do nothing."""
    known = {f"STUDIO_{name.upper()}" for name in Settings.model_fields}
    for key in config(objects):
        if key.startswith("STUDIO_"):
            assert key in known, f"{key} is no setting"
    for workload in workloads(objects):
        for c in pod_spec(workload)["containers"]:
            if is_studio(c):
                assert c["envFrom"] == [
                    {"configMapRef": {"name": of_kind(objects, "ConfigMap").popitem()[0]}}
                ]


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(
    objects: list[dict[str, Any]],
) -> None:
    scaled = {
        so["spec"]["scaleTargetRef"]["name"] for so in of_kind(objects, "ScaledObject").values()
    }
    scaled |= {
        hpa["spec"]["scaleTargetRef"]["name"]
        for hpa in of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    deployments = of_kind(objects, "Deployment")
    # The metrics exporter is a single replica of its own, outside the autoscaled workloads.
    singletons = {
        name for name, d in deployments.items() if pod_labels(d).get("studio-ai/role") == "exporter"
    }
    assert singletons == {"kafka-exporter"}
    assert scaled == set(deployments) - singletons, "every workload is autoscaled, by one owner"
    for name, deployment in deployments.items():
        if name in singletons:
            assert deployment["spec"]["replicas"] == 1, name
            continue
        # Otherwise every `kubectl apply` resets the count the autoscaler chose.
        assert "replicas" not in deployment["spec"], name


def test_a_read_write_once_volume_is_mounted_by_one_pod(objects: list[dict[str, Any]]) -> None:
    claims = of_kind(objects, "PersistentVolumeClaim")
    for name, deployment in of_kind(objects, "Deployment").items():
        for volume in pod_spec(deployment).get("volumes", []):
            claim = volume.get("persistentVolumeClaim")
            if (
                not claim
                or "ReadWriteOnce" not in claims[claim["claimName"]]["spec"]["accessModes"]
            ):
                continue
            # A rolling update would start a second pod that cannot attach the volume.
            assert deployment["spec"].get("strategy", {}).get("type") == "Recreate", name
            assert scaled_object_for(objects, name)["spec"]["maxReplicaCount"] == 1, name


def test_every_deployment_has_a_disruption_budget(objects: list[dict[str, Any]]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget").values()
    for name, deployment in of_kind(objects, "Deployment").items():
        covering = [
            b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(deployment))
        ]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        # A budget that allows no eviction would block every node drain at one replica.
        assert covering[0]["spec"].get("maxUnavailable", 0) >= 1, name


# ---------------------------------------------------------------- network policies


def ingress_allowed(
    objects: list[dict[str, Any]],
    *,
    source_labels: dict[str, str],
    source_namespace: str,
    target: dict[str, str],
    port: int,
) -> bool:
    """Whether the NetworkPolicies let a pod with `source_labels` in `source_namespace` reach
    port `port` of pods labelled `target` in the studio-ai namespace."""
    namespace_labels = {"kubernetes.io/metadata.name": source_namespace}
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy").values()
        if selector_matches(p["spec"]["podSelector"], target)
        and "Ingress" in p["spec"]["policyTypes"]
    ]
    assert policies, f"pods {target} are not isolated: no policy selects them"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                ns_ok = (
                    selector_matches(peer["namespaceSelector"], namespace_labels)
                    if "namespaceSelector" in peer
                    else source_namespace == "studio-ai"
                )
                pod_ok = selector_matches(peer.get("podSelector", {}), source_labels)
                if ns_ok and pod_ok:
                    return True
    return False


def test_network_policies_let_in_only_the_expected_traffic(
    objects: list[dict[str, Any]],
) -> None:
    default_deny = [
        p
        for p in of_kind(objects, "NetworkPolicy").values()
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]
    assert default_deny and default_deny[0]["spec"]["policyTypes"] == ["Ingress"]
    stranger = {"source_labels": {"app": "x"}, "source_namespace": "default"}
    prometheus = {
        "source_labels": {"app.kubernetes.io/name": "prometheus"},
        "source_namespace": "monitoring",
    }
    deployments = of_kind(objects, "Deployment")
    gateway = pod_labels(deployments["gateway"])
    assert ingress_allowed(objects, target=gateway, port=8000, **stranger)
    for name, deployment in deployments.items():
        labels = pod_labels(deployment)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        scrape_port = int(annotations["prometheus.io/port"])
        assert ingress_allowed(objects, target=labels, port=scrape_port, **prometheus), name
        if name != "gateway":
            assert not ingress_allowed(objects, target=labels, port=scrape_port, **stranger), name
    workers = [
        pod_labels(d)
        for d in deployments.values()
        if d["metadata"]["name"].startswith("inference-")
    ]
    servers = [pod_labels(d) for n, d in deployments.items() if n.startswith("model-server-")]
    for server in servers:
        for worker in workers:
            assert ingress_allowed(
                objects,
                source_labels=worker,
                source_namespace="studio-ai",
                target=server,
                port=8000,
            )
        assert ingress_allowed(
            objects,
            source_labels=pod_labels(deployments["insights-worker"]),
            source_namespace="studio-ai",
            target=server,
            port=8000,
        )
        assert not ingress_allowed(
            objects, source_labels=gateway, source_namespace="studio-ai", target=server, port=8000
        )
