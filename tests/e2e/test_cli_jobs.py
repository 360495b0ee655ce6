"""`studio-ai jobs submit` and `jobs watch`: a person follows a job from the terminal."""

from __future__ import annotations

import re

from tests.integration.test_inference_jobs import ABSTRACT, note
from tests.support.flows import new_workspace
from tests.support.stack import Stack


def test_submit_and_watch_a_job_from_the_command_line(stack: Stack) -> None:
    _, client = new_workspace(stack, "cli-jobs")
    key = client.headers["Authorization"].split(" ", 1)[1]
    env = {"STUDIO_API_URL": stack.gateway_url, "STUDIO_API_KEY": key}
    ref = note(client, ABSTRACT)

    done = stack.cli(
        "jobs",
        "submit",
        "What did semaglutide do to body weight?",
        "--task",
        "qa",
        "--context",
        ref,
        extra_env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "14.9 percent" in done.stdout
    assert "completed" in done.stderr and "completion tokens" in done.stderr

    queued = stack.cli(
        "jobs",
        "submit",
        "Summarise this.",
        "--task",
        "summary",
        "--context",
        ref,
        "--no-watch",
        extra_env=env,
    )
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", job_id)
    watched = stack.cli("jobs", "watch", job_id, extra_env=env)
    assert watched.returncode == 0, watched.stderr
    assert "Semaglutide" in watched.stdout

    missing = stack.cli("jobs", "watch", "00000000-0000-0000-0000-000000000000", extra_env=env)
    assert missing.returncode == 1
    assert "no job" in missing.stderr
