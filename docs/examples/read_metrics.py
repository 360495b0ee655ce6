"""Print analytics.inference-metrics.v1, one line per finished inference job.

    python docs/examples/read_metrics.py [BOOTSTRAP] [--max N]

BOOTSTRAP defaults to 127.0.0.1:9092 (the local broker of `make run`). Reads from the start of
the topic without a consumer group (nothing is committed; give AIOKafkaConsumer a group_id to
resume where you left off). Needs only aiokafka. Each record's key is the model_id and its value
an Envelope whose payload is an InferenceMetrics (see docs/analytics.md and docs/asyncapi.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "analytics.inference-metrics.v1"


def parse_record(key: bytes | None, value: bytes) -> dict[str, Any]:
    """One record -> the InferenceMetrics fields plus the envelope's ids and the key."""
    envelope = json.loads(value)
    return {
        **envelope["payload"],
        "key": key.decode() if key is not None else None,
        "event_id": envelope["event_id"],
        "correlation_id": envelope["correlation_id"],
    }


def format_metrics(m: dict[str, Any]) -> str:
    ttft = "-" if m.get("ttft_ms") is None else f"{m['ttft_ms']:.0f}"
    return (
        f"{m['finished_at']} {m['workspace_id']} {m['model_id']} {m['engine']} {m['outcome']} "
        f"queue={m['queue_ms']:.0f}ms ttft={ttft}ms total={m['total_ms']:.0f}ms "
        f"tokens={m['prompt_tokens']}+{m['completion_tokens']} {m['tokens_per_s']:.1f}tok/s "
        f"gpu={m.get('gpu_seconds', 0.0):.3f}s cost={m['cost']:.8f} {m['cost_currency']} "
        f"({m['cost_basis']})"
    )


async def read_metrics(bootstrap: str, max_records: int | None = None) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen = 0
        async for record in consumer:
            print(format_metrics(parse_record(record.key, record.value)), flush=True)
            seen += 1
            if max_records is not None and seen >= max_records:
                break
    finally:
        await consumer.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", nargs="?", default="127.0.0.1:9092")
    parser.add_argument("--max", type=int, default=None, help="stop after this many records")
    args = parser.parse_args(argv)
    asyncio.run(read_metrics(args.bootstrap, args.max))


if __name__ == "__main__":
    main(sys.argv[1:])
