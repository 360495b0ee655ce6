"""Model server URLs that workspace admins give (`endpoint_url`): workers will call them, so
they are checked like any caller input. Credentials never go in the URL (it travels in events);
an operator can restrict the hosts (STUDIO_INFERENCE_ENDPOINT_HOSTS) so that no workspace can
point a worker at another internal service."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from studio_ai.domain.errors import InvalidInput


def check_endpoint_url(url: str, allowed_hosts: Collection[str] = ()) -> str:
    """Return `url` if it is an http(s) base URL of an allowed host, else raise InvalidInput."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InvalidInput(f"endpoint_url {url[:200]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"endpoint_url {url[:200]!r} must be an http:// or https:// URL with a host, "
            "e.g. http://vllm-llama:8000"
        )
    if parts.username or parts.password:
        raise InvalidInput(
            "endpoint_url must not carry credentials; the operator sets the servers' token "
            "with STUDIO_INFERENCE_API_KEY"
        )
    if parts.query or parts.fragment:
        raise InvalidInput("endpoint_url is a base URL: drop its query string and fragment")
    allowed = {h.lower() for h in allowed_hosts}
    if allowed and parts.hostname.lower() not in allowed:
        raise InvalidInput(
            f"host {parts.hostname!r} is not one of the model server hosts this deployment "
            f"allows ({', '.join(sorted(allowed))}); an operator adds it to "
            "STUDIO_INFERENCE_ENDPOINT_HOSTS"
        )
    return url
