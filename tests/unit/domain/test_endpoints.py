"""Model server URLs given by workspace admins."""

from __future__ import annotations

import pytest

from studio_ai.domain.endpoints import check_endpoint_url
from studio_ai.domain.errors import InvalidInput


def test_a_plain_http_base_url_is_accepted() -> None:
    assert check_endpoint_url("http://vllm-llama:8000") == "http://vllm-llama:8000"
    assert check_endpoint_url("https://tgi.internal/v1x", ["TGI.internal"])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://", "with a host"),
        ("http://user:secret@vllm:8000", "must not carry credentials"),
        ("http://vllm:8000/?token=abc", "drop its query"),
        ("http://vllm:99999", "not a valid URL"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        check_endpoint_url(url)
    assert "secret" not in caught.value.message


def test_an_operator_allowlist_keeps_workers_away_from_other_hosts() -> None:
    allowed = ["vllm-llama", "tgi-medgemma"]
    assert check_endpoint_url("http://vllm-llama:8000", allowed)
    with pytest.raises(InvalidInput, match="STUDIO_INFERENCE_ENDPOINT_HOSTS"):
        check_endpoint_url("http://169.254.169.254/latest", allowed)
