"""Wait until the local Kafka broker or MongoDB-wire store answers, or give up.

    wait_ready.py kafka 127.0.0.1:9092 --timeout 60 [--pid N] [--log FILE ...]
    wait_ready.py mongo mongodb://127.0.0.1:27017 --timeout 30 [--pid N] [--log FILE ...]

Ready means: an admin client lists topics (Kafka); the server answers `ping` (Mongo).
Exit 0 when ready; 1 on timeout or when the watched process (--pid) exits first, after
printing the last 30 lines of each --log file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections import deque
from pathlib import Path

ATTEMPT_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.5
LOG_TAIL_LINES = 30


async def kafka_ready(bootstrap: str, attempt_timeout: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(attempt_timeout * 1000),
        client_id="studio-local-wait-ready",
    )
    try:
        await asyncio.wait_for(client.start(), attempt_timeout)
        await asyncio.wait_for(client.list_topics(), attempt_timeout)
    finally:
        await client.close()


def mongo_ready(url: str, attempt_timeout: float) -> None:
    from pymongo import MongoClient

    ms = int(attempt_timeout * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def print_log_tails(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            print(f"--- {path}: no such file", file=sys.stderr)
            continue
        with path.open(errors="replace") as f:
            tail = deque(f, maxlen=LOG_TAIL_LINES)
        print(f"--- last {len(tail)} lines of {path}:", file=sys.stderr)
        sys.stderr.writelines(tail)
        print("---", file=sys.stderr)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["kafka", "mongo"])
    parser.add_argument("target", help="bootstrap servers (kafka) or connection URL (mongo)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait in all")
    parser.add_argument("--pid", type=int, help="give up at once if this process exits")
    parser.add_argument("--log", type=Path, action="append", default=[], help="log to show")
    args = parser.parse_args()
    # aiokafka logs every refused connection at ERROR; the outcome is reported below instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    deadline = time.monotonic() + args.timeout
    last_error = "no attempt made"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if args.pid is not None and not process_alive(args.pid):
            print(f"{args.kind}: process {args.pid} exited before it was ready", file=sys.stderr)
            print_log_tails(args.log)
            return 1
        attempt_timeout = max(0.5, min(ATTEMPT_TIMEOUT_S, remaining))
        try:
            if args.kind == "kafka":
                await kafka_ready(args.target, attempt_timeout)
            else:
                await asyncio.to_thread(mongo_ready, args.target, attempt_timeout)
            return 0
        except Exception as exc:  # any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    print(
        f"{args.kind} at {args.target} not ready after {args.timeout:g} s"
        f" (last error: {last_error})",
        file=sys.stderr,
    )
    print_log_tails(args.log)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
