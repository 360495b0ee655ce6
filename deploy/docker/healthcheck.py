#!/usr/bin/env python3
"""Container health check of the studio-ai image (its HEALTHCHECK).

Healthy when a /healthz of this container answers 200. Which one depends on the command the
container runs, so it asks, in order: STUDIO_HEALTHCHECK_URL when set (one URL, nothing else),
else the consumer / inference worker side port (STUDIO_METRICS_PORT, 9100) and the gateway
(STUDIO_GATEWAY_PORT, 8000) on 127.0.0.1. Exit 0: healthy; 1: not (the reason on stderr).
Standard library only, so it runs in the slim image without curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def candidate_urls(env: dict[str, str]) -> list[str]:
    if url := env.get("STUDIO_HEALTHCHECK_URL"):
        return [url]
    metrics_port = env.get("STUDIO_METRICS_PORT", "9100")
    gateway_port = env.get("STUDIO_GATEWAY_PORT", "8000")
    return [
        f"http://127.0.0.1:{metrics_port}/healthz",
        f"http://127.0.0.1:{gateway_port}/healthz",
    ]


def check(url: str, timeout_s: float) -> str | None:
    """None when `url` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return f"{url}: {exc}"


def main() -> int:
    timeout_s = float(os.environ.get("STUDIO_HEALTHCHECK_TIMEOUT_S", "3"))
    reasons = []
    for url in candidate_urls(dict(os.environ)):
        reason = check(url, timeout_s)
        if reason is None:
            return 0
        reasons.append(reason)
    print("unhealthy: " + "; ".join(reasons), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
