"""The README's research example, as a new user runs it: create a session, attach two sources
from the fixture provider, generate a summary and bullets offline, export markdown."""

from __future__ import annotations

import re

from tests.support.flows import new_workspace
from tests.support.stack import Stack


def test_the_readme_research_example(stack: Stack) -> None:
    _, client = new_workspace(stack, "cli-research")
    key = client.headers["Authorization"].split(" ", 1)[1]
    env = {"STUDIO_API_URL": stack.gateway_url, "STUDIO_API_KEY": key}

    def cli(*args: str) -> str:
        done = stack.cli("research", *args, extra_env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    session_id = cli(
        "create", "LLMs in the clinic", "--query", "How well do LLMs summarise clinical notes?"
    ).strip()
    assert re.fullmatch(r"rs_[0-9a-f]{32}", session_id)
    first = cli("attach", session_id, "--provider", "fixture", "--id", "llm-clinical-summaries")
    assert "attached fixture:llm-clinical-summaries" in first
    cli("attach", session_id, "--provider", "fixture", "--id", "medgemma-radiology-eval")

    shown = cli(
        "generate",
        session_id,
        "--kind",
        "summary",
        "--kind",
        "bullets",
        "--model",
        "studio-ai/extractive",
    )
    assert "summary (extractive" in shown and "bullets (extractive" in shown
    assert "[fixture:llm-clinical-summaries" in shown or "[fixture:medgemma" in shown

    out = stack.workdir / "deck-notes.md"
    cli("export", session_id, "--output", str(out))
    markdown = out.read_text(encoding="utf-8")
    assert markdown.startswith("# LLMs in the clinic")
    assert "## Summary" in markdown and "## References" in markdown
    assert re.search(r"^1\. .+", markdown.split("## References")[1], re.M)

    listed = cli("list")
    assert session_id in listed

    bad = stack.cli(
        "research",
        "attach",
        session_id,
        "--provider",
        "fixture",
        "--id",
        "no-such-sample",
        extra_env=env,
    )
    assert bad.returncode == 1 and "no sample work" in bad.stderr
