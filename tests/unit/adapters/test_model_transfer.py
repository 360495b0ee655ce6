"""Planning and verifying transfers against the devkit hub server and staged folders."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download
from prometheus_client import CollectorRegistry

from studio_ai.adapters.model_download import ModelDownloader
from studio_ai.adapters.model_transfer import (
    TransferFailed,
    TransferSource,
    plan_transfer,
    safe_relative,
    verify_files,
    wanted,
)
from studio_ai.devkit.hub_server import HubServer
from studio_ai.runtime.metrics import ConsumerMetrics
from studio_ai.runtime.settings import Settings
from studio_ai.schemas.models import (
    DownloadFailureCode,
    DownloadProgress,
    EngineKind,
    Modality,
    ModelDownloadFailed,
    ModelDownloadRequested,
    ModelInstalled,
    ModelTask,
    Transport,
)

REPO = "studio-ai-test/tiny-llama"


def test_only_weights_config_and_tokenizer_files_are_wanted() -> None:
    for path in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "model-00001-of-00002.safetensors",
        "tokenizer.model",
    ):
        assert wanted(path), path
    for path in (
        "README.md",
        "pytorch_model.bin",
        "original/consolidated.00.pth",
        ".gitattributes",
        "original/params.json",
    ):
        assert not wanted(path), path


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", ""])
def test_unsafe_repo_paths_are_refused(path: str) -> None:
    with pytest.raises(TransferFailed):
        safe_relative(path)


def test_hub_plan_has_the_commit_and_sha256_of_the_weights(hub_server: HubServer) -> None:
    plan = plan_transfer(
        TransferSource(Transport.HF_API, endpoint=hub_server.url),
        REPO,
        None,
        dir_name="x",
        gated=False,
    )
    assert len(plan.commit_sha) == 40
    weights = next(f for f in plan.files if f.path == "model.safetensors")
    assert weights.sha256 and len(weights.sha256) == 64
    assert "README.md" not in {f.path for f in plan.files}


def test_gated_repo_needs_a_token_and_works_with_one(hub_server: HubServer) -> None:
    hub_server.configure(gated={REPO}, valid_tokens={"hf_good"})
    try:
        with pytest.raises(TransferFailed) as no_token:
            plan_transfer(
                TransferSource(Transport.HF_API, endpoint=hub_server.url),
                REPO,
                None,
                dir_name="x",
                gated=False,
            )
        assert no_token.value.code is DownloadFailureCode.GATED_NO_TOKEN
        assert "STUDIO_HF_TOKEN" in no_token.value.reason
        plan = plan_transfer(
            TransferSource(Transport.HF_API, endpoint=hub_server.url, token="hf_good"),
            REPO,
            None,
            dir_name="x",
            gated=True,
        )
        assert plan.files
    finally:
        hub_server.reset()


def test_unknown_repo_and_revision_are_named(hub_server: HubServer) -> None:
    source = TransferSource(Transport.HF_API, endpoint=hub_server.url)
    with pytest.raises(TransferFailed) as missing:
        plan_transfer(source, "studio-ai-test/nope", None, dir_name="x", gated=False)
    assert missing.value.code is DownloadFailureCode.REPO_NOT_FOUND
    assert "studio-ai-test/nope" in missing.value.reason
    with pytest.raises(TransferFailed) as bad_rev:
        plan_transfer(source, REPO, "v9.9", dir_name="x", gated=False)
    assert bad_rev.value.code is DownloadFailureCode.REVISION_NOT_FOUND


def test_staged_folder_from_hf_download_keeps_commit_and_checksums(
    hub_server: HubServer, tmp_path: Path
) -> None:
    staged = tmp_path / "staging" / "org--tiny"
    snapshot_download(REPO, endpoint=hub_server.url, local_dir=staged, cache_dir=tmp_path / "cache")
    source = TransferSource(Transport.LOCAL, staging_path=tmp_path / "staging")
    plan = plan_transfer(source, REPO, None, dir_name="org--tiny", gated=False)
    hub_plan = plan_transfer(
        TransferSource(Transport.HF_API, endpoint=hub_server.url),
        REPO,
        None,
        dir_name="x",
        gated=False,
    )
    assert plan.commit_sha == hub_plan.commit_sha
    assert {f.path: f.sha256 for f in plan.files if f.sha256} == {
        f.path: f.sha256 for f in hub_plan.files if f.sha256
    }
    with pytest.raises(TransferFailed) as unstaged:
        plan_transfer(source, REPO, None, dir_name="org--other", gated=False)
    assert "hf download" in unstaged.value.reason


def test_verification_catches_a_corrupt_file_and_removes_it(
    hub_server: HubServer, tmp_path: Path
) -> None:
    target = tmp_path / "m"
    snapshot_download(REPO, endpoint=hub_server.url, local_dir=target, cache_dir=tmp_path / "cache")
    plan = plan_transfer(
        TransferSource(Transport.HF_API, endpoint=hub_server.url),
        REPO,
        None,
        dir_name="x",
        gated=False,
    )
    assert set(verify_files(target, plan)) == {f.path for f in plan.files}
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(TransferFailed) as mismatch:
        verify_files(target, plan)
    assert mismatch.value.code is DownloadFailureCode.CHECKSUM_MISMATCH
    assert not weights.exists()


def _request(transport: Transport) -> ModelDownloadRequested:
    return ModelDownloadRequested(
        download_id=uuid.uuid4(),
        model_id="org/tiny",
        hub_repo_id=REPO,
        revision=None,
        transport=transport,
        gated=False,
        local_dir="org--tiny",
        modality=Modality.TEXT,
        task=ModelTask.FAST_TEXT,
        default_engine=EngineKind.TRANSFORMERS,
    )


def test_downloader_reports_progress_and_installs(hub_server: HubServer, tmp_path: Path) -> None:
    settings = Settings(
        models_dir=tmp_path / "models", hf_endpoint=hub_server.url, download_progress_interval_s=0.1
    )
    seen: list[DownloadProgress] = []

    async def on_progress(p: DownloadProgress) -> None:
        seen.append(p)

    async def never() -> bool:
        return False

    downloader = ModelDownloader(settings, ConsumerMetrics.create(CollectorRegistry()))
    outcome = asyncio.run(
        downloader.download(
            _request(Transport.HF_API), on_progress=on_progress, cancel_requested=never
        )
    )
    assert isinstance(outcome, ModelInstalled), outcome
    assert seen and seen[-1].percent == 100.0
    assert outcome.verified_files == len(outcome.files)


def test_downloader_retries_a_failing_hub_then_gives_a_retryable_reason(
    hub_server: HubServer, tmp_path: Path
) -> None:
    settings = Settings(
        models_dir=tmp_path / "models",
        hf_endpoint=hub_server.url,
        download_attempts=2,
        download_retry_backoff_s=0.01,
    )
    hub_server.configure(fail_first=1000)

    async def noop(_: DownloadProgress) -> None:
        return None

    async def never() -> bool:
        return False

    try:
        downloader = ModelDownloader(settings, ConsumerMetrics.create(CollectorRegistry()))
        outcome = asyncio.run(
            downloader.download(
                _request(Transport.HF_API), on_progress=noop, cancel_requested=never
            )
        )
    finally:
        hub_server.reset()
    assert isinstance(outcome, ModelDownloadFailed)
    assert outcome.code is DownloadFailureCode.SOURCE_UNREACHABLE
    assert outcome.retryable and "after 2 attempts" in outcome.reason


def test_each_revision_gets_its_own_folder_and_odd_shas_are_refused(tmp_path: Path) -> None:
    downloader = ModelDownloader(
        Settings(models_dir=tmp_path), ConsumerMetrics.create(CollectorRegistry())
    )
    sha = "a" * 40
    assert downloader.target_dir("org--m", sha) == (tmp_path / "org--m" / sha).resolve()
    assert downloader.target_dir("org--m", "b" * 40) != downloader.target_dir("org--m", sha)
    with pytest.raises(TransferFailed, match="not a 40-hex sha"):
        downloader.target_dir("org--m", "../../etc")


def test_models_dir_escape_is_refused(tmp_path: Path) -> None:
    downloader = ModelDownloader(
        Settings(models_dir=tmp_path), ConsumerMetrics.create(CollectorRegistry())
    )
    with pytest.raises(TransferFailed):
        downloader.target_dir("../outside")
