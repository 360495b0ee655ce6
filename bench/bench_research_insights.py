"""Research insights through the whole system: `generate-insights` to the insights on the session.

Runs the real gateway, the consumers (insights worker, session and job projectors, usage meter,
audit and metrics recorders) and an inference worker for the `builtin` pool as subprocesses
against the Kafka broker and MongoDB-wire store named by STUDIO_KAFKA_BOOTSTRAP /
STUDIO_MONGO_URL (exit status 2 if either is unreachable); offline: fixture sources and the
extractive engine, no model weights. Each run uses a fresh session with --sources fixture
sources, POSTs generate-insights (summary and bullets, studio-ai/extractive) and polls
GET /research/sessions/{id} every 20 ms until the job's insights of both kinds are there.

Baseline, same run: the same text (the sources' titles and abstracts) saved as a note, then
POST /ai/generate-text (extractive summary with the note as context) and GET /ai/jobs/{id}
polled until `completed`: the same depth of pipeline (gateway -> Kafka -> worker -> Kafka ->
projector -> store) for a plain text job. Research and baseline runs alternate, so that the
machine's load falls on both alike.

The first run of each (consumer group join, connections, imports) is reported apart as the
cold run and left out of the figures. Everything started is stopped at the end (also on
Ctrl-C), the temporary folder is removed and the bench database dropped; consumer groups get
a unique prefix.

    .venv/bin/python bench/bench_research_insights.py [--sources 4] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

# The script's folder is on sys.path when it runs as a script (as `make bench` runs it).
from bench_install_latency import (
    Processes,
    check_services,
    create_admin_key,
    drop_database,
    free_port,
    kafka_bootstrap,
    mongo_url,
    sigterm_as_interrupt,
)

FIXTURE_IDS = (
    "llm-clinical-summaries",
    "medgemma-radiology-eval",
    "prime-editing-variant-screen",
    "convalescent-plasma-meta-analysis",
    "protein-language-model-fitness",
    "ai-radiology-workflow",
)
EXTRACTIVE = "studio-ai/extractive"
KINDS = ("summary", "bullets")
CONSUMER_GROUPS = (
    "job-projector",
    "usage-meter",
    "audit-recorder",
    "insights-worker",
    "session-projector",
    "metrics-recorder",
)
PLANS = Path(__file__).resolve().parents[1] / "deploy" / "local" / "plans.dev.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sources",
        type=int,
        default=int(os.environ.get("BENCH_SOURCES") or 4),
        help=f"fixture sources per session (1-{len(FIXTURE_IDS)}); env BENCH_SOURCES",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_RUNS") or 10),
        help="measured runs of the research case and of the baseline; env BENCH_RUNS",
    )
    parser.add_argument(
        "--poll-ms",
        type=float,
        default=20.0,
        help="interval of the GETs while waiting (resolution of the figures)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=float(os.environ.get("BENCH_RUN_TIMEOUT_S") or 30),
        help="give up on one job after this many seconds; env BENCH_RUN_TIMEOUT_S",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=Path(os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()),
        help="parent of the work area; env BENCH_TMPDIR",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work area (logs) and the bench database, for debugging",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not 1 <= args.sources <= len(FIXTURE_IDS):
        parser.error(f"--sources must be between 1 and {len(FIXTURE_IDS)}")
    return args


@dataclass
class Run:
    accepted_s: float  # the POST answered 202
    done_s: float  # the result visible in the GET


class StuckRun(Exception):
    """The result did not show in time (the system is still up)."""


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def prepare(client: httpx.Client, sources: int) -> tuple[str, str, int]:
    """A session with the fixture sources and a note of their text: (session, note ref, chars)."""
    session = expect(
        client.post("/research/sessions", json={"title": "bench", "providers": ["fixture"]}), 201
    )
    session_id: str = session["session_id"]
    for fixture_id in FIXTURE_IDS[:sources]:
        body = {"provider": "fixture", "id": fixture_id}
        expect(client.post(f"/research/sessions/{session_id}/attach", json=body), 200)
    view = expect(client.get(f"/research/sessions/{session_id}"), 200)
    text = "\n\n".join(
        f"{s['source']['title']}. {s['source']['abstract'] or ''}".strip() for s in view["sources"]
    )
    note = expect(client.post("/notes", json={"title": "bench", "text": text}), 201)
    return session_id, note["ref"], len(text)


def timed(
    client: httpx.Client,
    post: Callable[[], httpx.Response],
    done: Callable[[str], bool],
    *,
    poll_s: float,
    timeout: float,
) -> Run:
    """POST, then call `done(job_id)` every poll_s until it is true."""
    t0 = time.perf_counter()
    job_id = str(expect(post(), 202)["job_id"])
    accepted = time.perf_counter() - t0
    while not done(job_id):
        if time.perf_counter() - t0 > timeout:
            job = client.get(f"/ai/jobs/{job_id}").json()
            raise StuckRun(f"job {job_id} is {job.get('status')!r} ({job.get('error')})")
        time.sleep(poll_s)
    return Run(accepted, time.perf_counter() - t0)


def research_once(client: httpx.Client, session_id: str, *, poll_s: float, timeout: float) -> Run:
    def post() -> httpx.Response:
        body = {"kinds": list(KINDS), "model_id": EXTRACTIVE}
        return client.post(f"/research/sessions/{session_id}/generate-insights", json=body)

    def done(job_id: str) -> bool:
        view = expect(client.get(f"/research/sessions/{session_id}"), 200)
        mine = [i for i in view["insights"] if i["job_id"] == job_id]
        if {i["kind"] for i in mine} < set(KINDS):
            return False  # one GET per poll, as for the baseline; a failed job shows at timeout
        if generators := {i["generator"] for i in mine} - {"extractive"}:
            raise RuntimeError(f"the insights were written by {generators}, not extractive")
        return True

    return timed(client, post, done, poll_s=poll_s, timeout=timeout)


def baseline_once(client: httpx.Client, note_ref: str, *, poll_s: float, timeout: float) -> Run:
    def post() -> httpx.Response:
        body = {
            "model_id": EXTRACTIVE,
            "task": "summary",
            "prompt": "Summarise",
            "context_refs": [note_ref],
        }
        return client.post("/ai/generate-text", json=body)

    def done(job_id: str) -> bool:
        job = expect(client.get(f"/ai/jobs/{job_id}"), 200)
        if job["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"text job {job_id} {job['status']}: {job.get('error')}")
        if job["status"] == "completed" and job["resolved_model_id"] != EXTRACTIVE:
            raise RuntimeError(f"the text job ran on {job['resolved_model_id']}, not extractive")
        return bool(job["status"] == "completed")

    return timed(client, post, done, poll_s=poll_s, timeout=timeout)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def report(
    args: argparse.Namespace,
    chars: int,
    cold: dict[str, Run],
    runs: dict[str, list[Run]],
) -> None:
    print(
        f"\nresearch insights ({', '.join(KINDS)}; {EXTRACTIVE}) on {args.sources} fixture "
        f"sources ({chars} chars)\n{len(runs['research'])} research / "
        f"{len(runs['baseline'])} baseline runs, seconds from the POST, poll {args.poll_ms:.0f} ms"
    )
    print(f"{'':<54}{'cold':>8}{'p50':>8}{'p90':>8}{'max':>8}")
    rows = [
        ("research: POST generate-insights answered 202", "research", "accepted_s"),
        ("research: insights visible on GET /research/sessions", "research", "done_s"),
        ("baseline: POST /ai/generate-text answered 202", "baseline", "accepted_s"),
        ("baseline: job completed on GET /ai/jobs/{id}", "baseline", "done_s"),
    ]
    for label, case, attr in rows:
        values = [getattr(r, attr) for r in runs[case]]
        cold_text = f"{getattr(cold[case], attr):>8.3f}" if case in cold else f"{'-':>8}"
        figures = "".join(f"{percentile(values, q):>8.3f}" for q in (50, 90, 100))
        print(f"  {label:<52}{cold_text}{figures}")
    research = statistics.median(r.done_s for r in runs["research"])
    baseline = statistics.median(r.done_s for r in runs["baseline"])
    print(
        f"\nratio research p50 / baseline p50: {research / baseline:.2f}x "
        f"(p50 difference {research - baseline:+.3f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if problem := check_services():
        print(
            f"bench_research_insights: {problem}.\nStart them (`make services-up`, or run "
            "`make bench`, which starts them) or point STUDIO_KAFKA_BOOTSTRAP / "
            "STUDIO_MONGO_URL at running ones.",
            file=sys.stderr,
        )
        return 2

    tag = uuid.uuid4().hex[:8]
    database = f"bench_{tag}"
    work = Path(tempfile.mkdtemp(prefix="bench-research-", dir=args.tmp_dir))
    procs: Processes | None = None
    db_used = False
    try:
        with sigterm_as_interrupt():
            gateway_port, consumers_port, inference_port = free_port(), free_port(), free_port()
            env = {
                **os.environ,
                "STUDIO_KAFKA_BOOTSTRAP": kafka_bootstrap(),
                "STUDIO_MONGO_URL": mongo_url(),
                "STUDIO_MONGO_DB": database,
                "STUDIO_CONSUMER_GROUP_PREFIX": f"bench-{tag}-",
                "STUDIO_GATEWAY_PORT": str(gateway_port),
                "STUDIO_MODELS_DIR": str(work / "models"),
                "STUDIO_PLANS_PATH": str(PLANS),
                "STUDIO_DEFAULT_PLAN": "enterprise",
                "STUDIO_WORKER_HEARTBEAT_S": "0.5",
                "STUDIO_WORKER_LIVE_TTL_S": "3",
                "PYTHONUNBUFFERED": "1",
            }
            for name in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL", "HF_TOKEN"):
                env.pop(name, None)  # offline: no remote LLM, no hub
            procs = Processes(work, env)
            print(f"work area {work}; database {database}; Kafka {kafka_bootstrap()}", flush=True)
            db_used = True
            started = time.perf_counter()
            procs.start("gateway", "gateway")
            groups = [a for g in CONSUMER_GROUPS for a in ("--group", g)]
            procs.start(
                "consumers", "worker", "run", *groups, "--metrics-port", str(consumers_port)
            )
            procs.start(
                "inference",
                "worker",
                "inference",
                "--pool",
                "builtin",
                "--metrics-port",
                str(inference_port),
            )
            gateway = f"http://127.0.0.1:{gateway_port}"
            procs.wait_http(f"{gateway}/healthz", timeout=120)
            procs.wait_http(f"http://127.0.0.1:{consumers_port}/healthz", timeout=120)
            procs.wait_http(f"http://127.0.0.1:{inference_port}/healthz", timeout=120)
            print(
                f"gateway, consumers and inference worker up in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            key = create_admin_key(procs, f"bench-{tag}")
            headers = {"Authorization": f"Bearer {key}"}
            poll_s, timeout = args.poll_ms / 1000, args.run_timeout
            cold: dict[str, Run] = {}
            runs: dict[str, list[Run]] = {"research": [], "baseline": []}
            stuck: list[str] = []
            chars = 0
            with httpx.Client(base_url=gateway, headers=headers, timeout=10) as client:
                for i in range(args.runs + 1):
                    label = "cold" if i == 0 else f"run {i}/{args.runs}"
                    # A fresh session and note each run: the GET stays the same size.
                    session_id, note_ref, chars = prepare(client, args.sources)
                    cases = {
                        "research": partial(research_once, client, session_id),
                        "baseline": partial(baseline_once, client, note_ref),
                    }
                    order = list(cases) if i % 2 == 0 else list(reversed(cases))
                    shown = []
                    for case in order:
                        try:
                            run = cases[case](poll_s=poll_s, timeout=timeout)
                        except StuckRun as exc:
                            print(f"{label} {case}: NOT done after {timeout:.0f} s: {exc}")
                            stuck.append(f"{label} {case}")
                            continue
                        if i == 0:
                            cold[case] = run
                        else:
                            runs[case].append(run)
                        shown.append(f"{case} {run.done_s:.3f} s")
                    print(f"{label}: {', '.join(shown)}", flush=True)
            if not runs["research"] or not runs["baseline"]:
                raise RuntimeError(
                    "no measured run finished for one of the cases; consumers log:\n"
                    + procs.log_tail("consumers", 60)
                )
            report(args, chars, cold, runs)
        if stuck:
            print(
                f"\n{len(stuck)} jobs never showed their result ({', '.join(stuck)}): left out "
                "of the figures above; this is a failure of the system under test, not of the "
                "benchmark",
                file=sys.stderr,
            )
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=sys.stderr)
        return 130
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"bench_research_insights: {exc}", file=sys.stderr)
        return 1
    finally:
        # Cleanup runs to its end: a second Ctrl-C or a TERM must not leave processes behind.
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        if procs is not None:
            procs.stop_all()
        if args.keep:
            print(f"kept {work} and database {database}", file=sys.stderr)
        else:
            if db_used:
                try:
                    drop_database(database)
                except Exception as exc:  # cleanup is best effort; say what was left
                    print(f"could not drop database {database}: {exc}", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
