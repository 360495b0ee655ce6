"""At-least-once delivery: classify handler failures, retry transient ones, dead-letter the rest.

FastStream's NACK_ON_ERROR redelivers a failed message at once and forever, and ACK commits a
message whose handler raised (see DESIGN.md). So every subscriber runs with NACK_ON_ERROR and
this middleware decides: a message that can never succeed (bad schema, a rule it breaks, a bug)
goes to `<topic>.dlq` with the reason and is acknowledged; a transient failure (store or broker
unreachable) is retried with backoff, then raised so the message stays uncommitted and is
redelivered, with an error logged and counted each time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from pydantic import ValidationError
from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout

from studio_ai.domain.errors import DomainError
from studio_ai.runtime.logging import correlation_id_var, workspace_id_var
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.schemas.topics import dead_letter_topic

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The message can never be processed; it goes to the DLQ with this reason."""


class TransientError(Exception):
    """Processing may succeed later (a dependency is down); retry."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionFailure,
    AutoReconnect,
    NetworkTimeout,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TimeoutError,
    ConnectionError,
)

DeadLetterPublish = Callable[[str, bytes | None, bytes, dict[str, str]], Awaitable[None]]


@dataclass
class DeliveryPolicy:
    attempts: int
    backoff_s: float
    metrics: ConsumerMetrics
    dead_letter: DeadLetterPublish | None = field(default=None)
    # A replay of a projection counts and logs what fails, rather than dead-lettering the same
    # messages a second time (they are in the DLQ from their first delivery).
    publish_dead_letters: bool = True


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        return f"message does not match the event schema: {problems}"
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return f"message body is not JSON: {exc}"
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, PermanentError):
        return str(exc)
    return f"unexpected {type(exc).__name__} while handling the message: {exc}"


def delivery_guard(policy: DeliveryPolicy) -> type[BaseMiddleware]:
    """A broker middleware class bound to `policy`."""

    class DeliveryGuard(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            _bind_log_context(msg)
            record = _record(self.msg)
            topic = record.topic if record is not None else "?"
            for attempt in range(1, policy.attempts + 1):
                try:
                    return await call_next(msg)
                except TRANSIENT_ERRORS as exc:
                    policy.metrics.transient_failures.labels(topic=topic).inc()
                    if attempt == policy.attempts:
                        log.error(
                            "transient failure persisted; message left uncommitted for redelivery",
                            extra={"topic": topic, "attempts": attempt, "error": repr(exc)},
                        )
                        raise
                    await asyncio.sleep(policy.backoff_s * 2 ** (attempt - 1))
            raise AssertionError("unreachable")

        async def after_processed(
            self,
            exc_type: type[BaseException] | None = None,
            exc_val: BaseException | None = None,
            exc_tb: TracebackType | None = None,
        ) -> bool | None:
            if exc_val is None or isinstance(exc_val, (*TRANSIENT_ERRORS, asyncio.CancelledError)):
                return False
            if not isinstance(exc_val, Exception):
                return False
            record = _record(self.msg)
            if record is None or policy.dead_letter is None:
                return False
            reason = failure_reason(exc_val)
            if not policy.publish_dead_letters:
                policy.metrics.dead_lettered.labels(topic=record.topic).inc()
                log.warning(
                    "message failed again during a replay; not dead-lettered again",
                    extra={"topic": record.topic, "offset": record.offset, "reason": reason},
                )
                return True
            headers = dead_letter_headers(record, reason, type(exc_val).__name__)
            await policy.dead_letter(
                dead_letter_topic(record.topic), record.key, record.value or b"", headers
            )
            policy.metrics.dead_lettered.labels(topic=record.topic).inc()
            log.warning(
                "message dead-lettered",
                extra={"topic": record.topic, "offset": record.offset, "reason": reason},
                exc_info=not isinstance(exc_val, ValidationError | DomainError | PermanentError),
            )
            return True

    return DeliveryGuard


def dead_letter_headers(
    record: ConsumerRecord[Any, Any], reason: str, error_type: str
) -> dict[str, str]:
    """The headers of a dead letter: why, where it came from, and the source's own headers."""
    headers = {
        "dlq_reason": reason[:2000],
        "dlq_source_topic": record.topic,
        "dlq_source_partition": str(record.partition),
        "dlq_source_offset": str(record.offset),
        "dlq_failed_at": datetime.now(UTC).isoformat(),
        "dlq_error_type": error_type,
    }
    for name, value in record.headers or ():
        headers.setdefault(name, value.decode("utf-8", "replace"))
    return headers


def _record(raw: Any) -> ConsumerRecord[Any, Any] | None:
    return raw if isinstance(raw, ConsumerRecord) else None


def _bind_log_context(msg: StreamMessage[Any]) -> None:
    headers = msg.headers or {}
    correlation_id_var.set(headers.get("correlation_id") or None)
    workspace_id_var.set(headers.get("workspace_id") or None)
