"""Operators' commands: dead letters (`studio-ai dlq ...`), topics with partitions and consumer
lag (`studio-ai topics describe`), and rebuilding a projection from its topics
(`studio-ai replay GROUP`). They talk to Kafka (and, for replays, the store) directly.

Every failure the operator can act on (broker or store unreachable, unknown topic, bad offset)
prints one `error:` line and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from studio_ai.runtime.dead_letters import (
    REPLAYED_FROM_HEADER,
    DeadLetter,
    DeadLetterError,
    DlqSummary,
    ReplayInterrupted,
    ReplayLedger,
    ReplayMark,
    ReplayOutcome,
    ReplayResult,
    ReplayState,
    dlq_topic_for,
    list_dlq_topics,
    parse_position,
    read_dead_letters,
    replay_dead_letters,
)
from studio_ai.runtime.settings import Settings
from studio_ai.runtime.topic_admin import TopicsReport, UnknownTopics, describe

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_EPOCH = datetime.fromtimestamp(0, UTC)

dlq_app = typer.Typer(
    help="Dead letters: messages a consumer could never process, parked in <topic>.dlq.",
    no_args_is_help=True,
)

_wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
console = Console(width=_wide, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# Command help, one line per paragraph: typer keeps the line breaks of a docstring's later
# paragraphs (and of the first, in command lists).
LIST_HELP = (
    "The DLQ topics with their record counts, or one topic's dead letters: position, time, "
    "reason, error type, source topic/partition/offset, key and whether it was replayed."
)
SHOW_HELP = (
    "One dead letter in full: its headers and its value (pretty JSON; a value that is not "
    "JSON is printed as text, or as escaped bytes)."
)
REPLAY_DLQ_HELP = (
    "Republish dead letters to their source topic (the dlq_source_topic header) with the "
    "same key, value and headers, so the consumers process them again once the cause is fixed."
    "\n\n"
    "Each dead letter is replayed once: its <dlq topic>:<partition>:<offset> is inserted into "
    "the store's dlq_replays collection (a unique id) before it is published, so a second "
    "replay skips it and says so. A dead letter whose source topic is unknown is refused "
    "(exit 1)."
)
DESCRIBE_HELP = (
    "Partitions, replication, end offsets, and each consumer group's committed offsets and "
    "lag (a partition a group never committed on counts from the log start)."
)
REPLAY_HELP = (
    "Rebuild a projection from its topics: run the consumer group in this process under a "
    "fresh group id, from offset 0, until it has caught up with the end offsets its topics "
    "had when it started; then stop and print what it consumed."
    "\n\n"
    "Projections are idempotent (each event is applied once, keyed by its id), so a replay "
    "changes nothing in an up-to-date projection and restores a lost or damaged one. Messages "
    "that failed before fail again: they are counted (the failed-again column) and logged, "
    "not dead-lettered a second time. Only projections may be replayed: model-projector, "
    "job-projector, metrics-recorder, audit-recorder, usage-meter, session-projector. "
    "The replay's group id keeps its offsets until Kafka expires them "
    "(offsets.retention.minutes)."
)


def _doc(text: str) -> Callable[[F], F]:
    """Give a command its help text."""

    def give(command: F) -> F:
        command.__doc__ = text
        return command

    return give


def _fail(message: str) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code=1)


def _run(settings: Settings, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async step; errors an operator can act on become one line and exit 1."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(make())
    except (UnknownTopics, DeadLetterError) as exc:
        raise _fail(str(exc)) from exc
    except KafkaConnectionError as exc:
        raise _fail(
            f"Kafka is not reachable at {settings.kafka_bootstrap} (STUDIO_KAFKA_BOOTSTRAP): {exc}"
        ) from exc
    except KafkaError as exc:
        raise _fail(f"Kafka at {settings.kafka_bootstrap} refused the request: {exc}") from exc
    except PyMongoError as exc:
        raise _fail(
            f"the store is not reachable (STUDIO_MONGO_URL, database {settings.mongo_db!r}): {exc}"
        ) from exc


async def _with_ledger(settings: Settings, use: Callable[[ReplayLedger], Awaitable[T]]) -> T:
    from studio_ai.adapters.mongo_store import MongoStore

    store = MongoStore.connect(settings.mongo_url.get_secret_value(), settings.mongo_db)
    try:
        return await use(ReplayLedger(store.db))
    finally:
        await store.close()


def _shown(data: bytes | None, limit: int | None = None) -> str:
    """Bytes as text when they are UTF-8, else escaped; cut to `limit` characters."""
    if data is None:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = repr(data)[2:-1]
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _when(letter: DeadLetter) -> str:
    return letter.timestamp.isoformat(timespec="seconds") if letter.timestamp else ""


def _replayed(letter: DeadLetter, mark: ReplayMark | None) -> str:
    notes = []
    if mark is not None and mark.state is ReplayState.REPLAYED:
        notes.append(f"yes, to {mark.replayed_to}")
    elif mark is not None:
        notes.append("interrupted (see dlq replay)")
    if origin := letter.header(REPLAYED_FROM_HEADER):
        notes.append(f"failed again after replay of {origin}")
    return "; ".join(notes)


# --- dlq list -----------------------------------------------------------------------------


@dlq_app.command("list")
@_doc(LIST_HELP)
def dlq_list(
    topic: Annotated[
        str | None,
        typer.Argument(
            help="A source topic or its .dlq name: list its dead letters. Without it: every "
            "DLQ topic with its record count.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the most recent N records.")] = 100,
    as_json: AsJson = False,
) -> None:
    settings = Settings()
    if topic is None:
        summaries = _run(settings, lambda: list_dlq_topics(settings.kafka_bootstrap))
        _print_summaries(summaries, as_json)
        return
    dlq = dlq_topic_for(topic)

    async def read() -> tuple[list[DeadLetter], dict[str, ReplayMark] | None]:
        letters = await read_dead_letters(settings.kafka_bootstrap, dlq)
        shown = sorted(letters, key=lambda d: (d.timestamp or _EPOCH, d.partition, d.offset))
        shown = shown[-limit:]
        try:
            marks = await _with_ledger(
                settings, lambda ledger: ledger.marks(d.replay_id for d in shown)
            )
        except PyMongoError as exc:
            err.print(f"note: replays unknown, the store is not reachable: {exc}", markup=False)
            marks = None
        return shown, marks

    shown, marks = _run(settings, read)
    if as_json:
        rows = [
            {
                **_letter_json(d),
                "replayed": None if marks is None else _mark_json(marks.get(d.replay_id)),
            }
            for d in shown
        ]
        console.print_json(json.dumps(rows))
        return
    if not shown:
        err.print(f"no dead letters in {dlq}", markup=False)
        return
    table = Table(title=f"dead letters in {dlq}")
    for column in ("position", "time", "reason", "error", "source", "key", "replayed"):
        table.add_column(column, overflow="fold")
    for d in shown:
        table.add_row(
            Text(str(d.position)),
            Text(_when(d)),
            Text(_cut(d.reason or "", 160)),
            Text(d.error_type or ""),
            Text(f"{d.source_topic or '?'} {d.source_position or ''}".strip()),
            Text(_shown(d.key, 40)),
            Text("?" if marks is None else _replayed(d, marks.get(d.replay_id))),
        )
    console.print(table)
    err.print(
        f"{len(shown)} dead letter(s); `studio-ai dlq show {dlq} P:O` prints one in full, "
        f"`studio-ai dlq replay {dlq} --offset P:O` republishes it",
        markup=False,
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_summaries(summaries: list[DlqSummary], as_json: bool) -> None:
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "topic": s.topic,
                        "source_topic": s.source,
                        "exists": s.exists,
                        "partitions": s.partitions,
                        "records": s.records,
                    }
                    for s in summaries
                ]
            )
        )
        return
    table = Table(title="dead-letter topics")
    for column in ("dead-letter topic", "records", "partitions"):
        table.add_column(column, justify="right" if column != "dead-letter topic" else "left")
    for s in summaries:
        records = Text(str(s.records), style="yellow" if s.records else "")
        table.add_row(
            Text(s.topic),
            records if s.exists else Text("missing", style="red"),
            Text(str(s.partitions) if s.exists else "-"),
        )
    console.print(table)
    total = sum(s.records for s in summaries)
    missing = [s.topic for s in summaries if not s.exists]
    err.print(
        f"{total} dead letter(s) in {sum(1 for s in summaries if s.records)} topic(s); "
        "`studio-ai dlq list TOPIC` lists a topic's records",
        markup=False,
    )
    if missing:
        err.print(
            f"{len(missing)} DLQ topic(s) missing: run `studio-ai topics create`", markup=False
        )


def _letter_json(d: DeadLetter) -> dict[str, Any]:
    return {
        "topic": d.topic,
        "position": str(d.position),
        "partition": d.partition,
        "offset": d.offset,
        "time": d.timestamp.isoformat() if d.timestamp else None,
        "reason": d.reason,
        "error_type": d.error_type,
        "source_topic": d.source_topic,
        "source_position": d.source_position,
        "key": _shown(d.key),
    }


def _mark_json(mark: ReplayMark | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    return {
        "state": mark.state.value,
        "claimed_at": mark.claimed_at.isoformat(),
        "replayed_at": mark.replayed_at.isoformat() if mark.replayed_at else None,
        "replayed_to": mark.replayed_to,
    }


# --- dlq show -----------------------------------------------------------------------------


@dlq_app.command("show")
@_doc(SHOW_HELP)
def dlq_show(
    topic: Annotated[str, typer.Argument(help="A source topic or its .dlq name.")],
    position: Annotated[str, typer.Argument(help="PARTITION:OFFSET of the dead letter, e.g. 0:7.")],
    as_json: AsJson = False,
) -> None:
    settings = Settings()
    dlq = dlq_topic_for(topic)
    try:
        where = parse_position(position)
    except DeadLetterError as exc:
        raise _fail(str(exc)) from exc
    letter = _run(settings, lambda: read_dead_letters(settings.kafka_bootstrap, dlq, [where]))[0]
    value, encoding = _decoded(letter.value)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    **_letter_json(letter),
                    "headers": {k: v.decode("utf-8", "replace") for k, v in letter.headers},
                    "value_encoding": encoding,
                    "value": value,
                }
            )
        )
        return
    console.print(Text(f"{dlq} {letter.position}  {_when(letter)}", style="bold"))
    console.print(Text(f"key: {_shown(letter.key)}"), soft_wrap=True)
    console.print(Text("headers:"))
    for name, raw in letter.headers:
        console.print(Text(f"  {name}: {_shown(raw)}"), soft_wrap=True)
    console.print(Text(f"value ({encoding}, {len(letter.value or b'')} bytes):"))
    if encoding == "json":
        console.print(Text(json.dumps(value, indent=2, ensure_ascii=False)), soft_wrap=True)
    else:
        console.print(Text(str(value)), soft_wrap=True)


def _decoded(data: bytes | None) -> tuple[Any, str]:
    if data is None:
        return None, "empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)[2:-1], "bytes"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


# --- dlq replay ---------------------------------------------------------------------------


@dlq_app.command("replay")
@_doc(REPLAY_DLQ_HELP)
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="A source topic or its .dlq name.")],
    offset: Annotated[
        list[str] | None,
        typer.Option(
            "--offset",
            help="PARTITION:OFFSET of a dead letter to replay; repeat. Default: every dead "
            "letter of the topic not replayed yet.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; publish nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replay even dead letters recorded as replayed (or as interrupted).",
        ),
    ] = False,
) -> None:
    settings = Settings()
    dlq = dlq_topic_for(topic)
    try:
        positions = [parse_position(p) for p in offset] if offset else None
    except DeadLetterError as exc:
        raise _fail(str(exc)) from exc

    async def replay() -> list[ReplayResult]:
        letters = await read_dead_letters(settings.kafka_bootstrap, dlq, positions)
        if not letters:
            return []
        return await _with_ledger(
            settings,
            lambda ledger: replay_dead_letters(
                settings.kafka_bootstrap, letters, ledger, dry_run=dry_run, force=force
            ),
        )

    try:
        results = _run(settings, replay)
    except ReplayInterrupted as exc:
        _print_replay(exc.done)
        raise _fail(str(exc)) from exc
    if not results:
        err.print(f"no dead letters in {dlq}: nothing to replay", markup=False)
        return
    _print_replay(results)
    counts = {o: sum(1 for r in results if r.outcome is o) for o in ReplayOutcome}
    err.print(
        ", ".join(
            f"{n} {o.value}"
            for o, n in counts.items()
            if n or (o is ReplayOutcome.REPLAYED and not dry_run)
        )
        + (" (dry run: nothing published)" if dry_run else ""),
        markup=False,
    )
    if counts[ReplayOutcome.REFUSED]:
        raise _fail(f"{counts[ReplayOutcome.REFUSED]} dead letter(s) refused; see the table")


def _print_replay(results: list[ReplayResult]) -> None:
    table = Table(title="dead-letter replay")
    for column in ("dead letter", "outcome", "key", "detail"):
        table.add_column(column, overflow="fold")
    styles = {
        ReplayOutcome.REPLAYED: "green",
        ReplayOutcome.WOULD_REPLAY: "cyan",
        ReplayOutcome.SKIPPED: "yellow",
        ReplayOutcome.REFUSED: "red",
    }
    for r in results:
        table.add_row(
            Text(r.letter.replay_id),
            Text(r.outcome.value, style=styles[r.outcome]),
            Text(_shown(r.letter.key, 40)),
            Text(r.detail),
        )
    console.print(table)


# --- topics describe ----------------------------------------------------------------------


@_doc(DESCRIBE_HELP)
def topics_describe(
    topics: Annotated[
        list[str] | None,
        typer.Argument(
            help="Topics to describe (default: every topic of this system).", show_default=False
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="Only consumer groups matching this pattern (shell-style, e.g. 'prod.*'); repeat.",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    settings = Settings()
    report = _run(
        settings, lambda: describe(settings.kafka_bootstrap, topics or None, group_patterns=group)
    )
    if as_json:
        console.print_json(json.dumps(_report_json(report)))
        return
    table = Table(title=f"topics at {settings.kafka_bootstrap}")
    for column in ("topic", "partitions", "replication", "records", "end offsets", "notes"):
        table.add_column(column, overflow="fold")
    for info in report.topics:
        notes = []
        if info.under_replicated:
            notes.append("under-replicated")
        if any(p.leader < 0 for p in info.partitions):
            notes.append("partition without leader")
        table.add_row(
            Text(info.name),
            Text(str(len(info.partitions))),
            Text(str(info.replication)),
            Text(str(info.records)),
            Text(" ".join(f"{p.partition}:{p.end}" for p in info.partitions)),
            Text(", ".join(notes), style="red"),
        )
    console.print(table)
    if not report.groups:
        err.print("no consumer group has committed offsets on these topics", markup=False)
    lags = Table(title="consumer groups")
    for column in ("group", "topic", "lag", "committed/end per partition"):
        lags.add_column(column, overflow="fold")
    for lag in report.groups:
        lags.add_row(
            Text(lag.group),
            Text(lag.topic),
            Text(str(lag.lag), style="yellow" if lag.lag else "green"),
            Text(
                " ".join(
                    f"{p}:{'-' if lag.committed.get(p) is None else lag.committed[p]}/{end}"
                    for p, end in lag.ends.items()
                )
            ),
        )
    if report.groups:
        console.print(lags)
    if report.missing:
        err.print(
            f"missing topics: {', '.join(report.missing)} (run `studio-ai topics create`)",
            markup=False,
        )


def _report_json(report: TopicsReport) -> dict[str, Any]:
    return {
        "topics": [
            {
                "topic": info.name,
                "replication": info.replication,
                "records": info.records,
                "partitions": [
                    {
                        "partition": p.partition,
                        "leader": p.leader,
                        "replicas": list(p.replicas),
                        "isr": list(p.isr),
                        "start": p.start,
                        "end": p.end,
                    }
                    for p in info.partitions
                ],
            }
            for info in report.topics
        ],
        "missing": list(report.missing),
        "groups": [
            {
                "group": lag.group,
                "topic": lag.topic,
                "lag": lag.lag,
                "partitions": [
                    {
                        "partition": p,
                        "committed": lag.committed.get(p),
                        "end": end,
                        "lag": lag.partition_lag(p),
                    }
                    for p, end in lag.ends.items()
                ],
            }
            for lag in report.groups
        ],
    }


# --- replay -------------------------------------------------------------------------------


@_doc(REPLAY_HELP)
def replay_projection(
    group: Annotated[
        str,
        typer.Argument(
            help="The consumer group to replay, e.g. audit-recorder or model-projector "
            "(`studio-ai worker groups` lists them).",
            show_default=False,
        ),
    ],
    group_id: Annotated[
        str | None,
        typer.Option(
            help="Kafka group id to replay under; it must be new (default: "
            "<prefix><group>.replay-<UTC time>).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (exit 1) after this many seconds.")
    ] = 600.0,
) -> None:
    from studio_ai.consumers.app import GROUPS, PROJECTION_GROUPS
    from studio_ai.consumers.replay import ReplayError, replay_group
    from studio_ai.runtime.logging import configure_logging

    if group not in GROUPS:
        raise _fail(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
    if group not in PROJECTION_GROUPS:
        raise _fail(
            f"{group!r} is not a projection: replaying it would repeat its work (downloads, LLM "
            f"calls); projections: {', '.join(PROJECTION_GROUPS)}"
        )
    settings = Settings()
    level = "WARNING" if settings.log_level.upper() == "INFO" else settings.log_level
    configure_logging(level, json_logs=settings.log_json)
    if level == "WARNING":  # FastStream's start-up notices; failures are logged elsewhere
        logging.getLogger("studio_ai.broker").setLevel(logging.ERROR)
    try:
        result = _run(
            settings, lambda: replay_group(settings, group, group_id=group_id, timeout_s=timeout)
        )
    except ReplayError as exc:
        raise _fail(str(exc)) from exc
    table = Table(title=f"replay of {group} under group id {result.group_id}")
    for column in ("topic", "partitions", "records", "consumed", "failed again"):
        table.add_column(column)
    for t in result.topics:
        table.add_row(
            Text(t.topic),
            Text(str(t.partitions)),
            Text(str(t.records)),
            Text(str(t.consumed)),
            Text(str(t.dead_lettered), style="yellow" if t.dead_lettered else ""),
        )
    console.print(table)
    if not result.caught_up:
        raise _fail(
            f"the replay did not catch up within {timeout:.0f} s ({result.lag} record(s) left); "
            "run it again with a longer --timeout (a new group id starts from offset 0 again)"
        )
    err.print(
        f"replayed {result.consumed} record(s) of {len(result.topics)} topic(s) in "
        f"{result.seconds:.1f} s; {group} has caught up",
        markup=False,
    )
