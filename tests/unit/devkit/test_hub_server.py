"""The devkit hub server against the real huggingface_hub client, CLI and transformers loaders."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile

from studio_ai.devkit.hub_server import HubServer, RepoIndex
from studio_ai.devkit.tiny_models import (
    TINY_GEMMA3,
    TINY_LLAMA,
    create_tiny_gemma3,
    create_tiny_llama,
)

WEIGHTS = "model.safetensors"


def _disk_files(folder: Path) -> dict[str, bytes]:
    """Repo-relative path -> content, leaving out huggingface_hub's .cache metadata."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def _download(hub: HubServer, repo_id: str, dest: Path, **kwargs: Any) -> Path:
    kwargs.setdefault("token", False)
    # An explicit cache_dir keeps the user's ~/.cache out of it (refs are written there even
    # with local_dir, and a cached copy would be used instead of downloading).
    kwargs.setdefault("cache_dir", dest.parent / f"{dest.name}-cache")
    return Path(snapshot_download(repo_id, endpoint=hub.url, local_dir=dest, **kwargs))


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


@pytest.fixture
def hub(hub_server: HubServer) -> Iterator[HubServer]:
    """The session hub, with its knobs and request log reset after the test."""
    hub_server.reset()
    try:
        yield hub_server
    finally:
        hub_server.reset()


@pytest.fixture(scope="module")
def downloaded(hub_server: HubServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny repos fetched once with snapshot_download(revision="main")."""
    root = tmp_path_factory.mktemp("downloaded")
    return {
        repo_id: _download(hub_server, repo_id, root / repo_id.replace("/", "--"), revision="main")
        for repo_id in (TINY_LLAMA, TINY_GEMMA3)
    }


def test_tiny_models_are_byte_identical_run_to_run(tiny_repos_dir: Path, tmp_path: Path) -> None:
    llama = create_tiny_llama(tmp_path / "llama")
    gemma = create_tiny_gemma3(tmp_path / "gemma")
    assert _disk_files(llama) == _disk_files(tiny_repos_dir / TINY_LLAMA)
    assert _disk_files(gemma) == _disk_files(tiny_repos_dir / TINY_GEMMA3)


@pytest.mark.parametrize("repo_id", [TINY_LLAMA, TINY_GEMMA3])
def test_snapshot_download_gives_identical_files(
    repo_id: str, downloaded: dict[str, Path], tiny_repos_dir: Path, hub_server: HubServer
) -> None:
    assert _disk_files(downloaded[repo_id]) == _disk_files(tiny_repos_dir / repo_id)
    check = HfApi(endpoint=hub_server.url).verify_repo_checksums(
        repo_id, local_dir=downloaded[repo_id], token=False
    )
    assert (check.mismatches, check.missing_paths, check.extra_paths) == ([], [], [])


def test_downloaded_tiny_llama_chats(downloaded: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = downloaded[TINY_LLAMA]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    conversations = [
        [{"role": "user", "content": "Hello!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarize."}],
    ]
    inputs: Any = tokenizer.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        padding=True,
        return_dict=True,
        return_tensors="pt",
    )
    prompt_len = inputs["input_ids"].shape[1]
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[0] == 2
    assert prompt_len < output.shape[1] <= prompt_len + 4
    assert tokenizer.padding_side == "left"
    assert isinstance(tokenizer.decode(output[0, prompt_len:]), str)


def test_downloaded_tiny_gemma3_describes_an_image(downloaded: dict[str, Path]) -> None:
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = downloaded[TINY_GEMMA3]
    auto_processor: Any = AutoProcessor  # from_pretrained is untyped
    processor = auto_processor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    image = Image.new("RGB", (32, 32), (180, 40, 40))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "Describe."}],
        }
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 32, 32)
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_dry_run_lists_files_with_sizes(
    hub: HubServer, tiny_repos_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dry"
    infos = snapshot_download(
        TINY_GEMMA3,
        endpoint=hub.url,
        local_dir=dest,
        cache_dir=tmp_path / "cache",
        token=False,
        dry_run=True,
    )
    on_disk = {p: len(b) for p, b in _disk_files(tiny_repos_dir / TINY_GEMMA3).items()}
    assert {i.filename: i.file_size for i in infos} == on_disk
    assert all(i.will_download and not i.is_cached for i in infos)
    assert not any(hub.iter_requests("GET", "/resolve/"))
    assert not dest.exists() or _disk_files(dest) == {}


def test_model_info_and_tree_report_hashes(hub: HubServer, tiny_repos_dir: Path) -> None:
    api = HfApi(endpoint=hub.url)
    repo = tiny_repos_dir / TINY_LLAMA
    weights_sha256 = hashlib.sha256((repo / WEIGHTS).read_bytes()).hexdigest()

    info = api.model_info(TINY_LLAMA, revision="main", files_metadata=True)
    assert info.sha is not None
    assert len(info.sha) == 40
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(_disk_files(repo))
    lfs = siblings[WEIGHTS].lfs
    assert lfs is not None
    assert lfs.sha256 == weights_sha256
    assert lfs.size == (repo / WEIGHTS).stat().st_size
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == _git_blob_sha1((repo / "config.json").read_bytes())
    assert info.safetensors is not None
    assert 90_000 < info.safetensors.total < 110_000
    assert api.model_info(TINY_LLAMA, revision=info.sha).sha == info.sha

    tree = api.list_repo_tree(TINY_LLAMA, revision=info.sha, recursive=True)
    files = {f.path: f for f in tree if isinstance(f, RepoFile)}
    assert set(files) == set(siblings)
    tree_lfs = files[WEIGHTS].lfs
    assert tree_lfs is not None
    assert tree_lfs.sha256 == weights_sha256
    assert files["tokenizer.json"].size == (repo / "tokenizer.json").stat().st_size


def test_patterns_filter_files(hub: HubServer, tmp_path: Path) -> None:
    folder = _download(
        hub, TINY_LLAMA, tmp_path / "d", allow_patterns=["*.json"], ignore_patterns=["tokenizer*"]
    )
    assert set(_disk_files(folder)) == {"config.json", "generation_config.json"}


def test_gated_repo_needs_a_valid_token(
    hub: HubServer, tiny_repos_dir: Path, tmp_path: Path
) -> None:
    hub.configure(gated={TINY_LLAMA}, valid_tokens={"hf_valid"})
    # As on the hub, a gated repo's metadata stays public; only its files are gated.
    assert HfApi(endpoint=hub.url).model_info(TINY_LLAMA, token=False).gated == "manual"

    with pytest.raises(GatedRepoError) as anonymous:
        _download(hub, TINY_LLAMA, tmp_path / "anonymous")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as wrong:
        _download(hub, TINY_LLAMA, tmp_path / "wrong", token="hf_wrong")
    assert wrong.value.response.status_code == 403

    folder = _download(hub, TINY_LLAMA, tmp_path / "ok", token="hf_valid")
    assert _disk_files(folder) == _disk_files(tiny_repos_dir / TINY_LLAMA)
    assert all(r.authorization for r in hub.iter_requests("GET", "/resolve/"))


def test_unknown_repo_revision_and_file(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        _download(hub, "studio-ai-test/no-such-model", tmp_path / "a")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url).model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        _download(hub, TINY_LLAMA, tmp_path / "b", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(
            TINY_LLAMA,
            "missing.txt",
            endpoint=hub.url,
            cache_dir=tmp_path / "cache",
            token=False,
        )


def test_corrupt_file_fails_the_checksum(hub: HubServer, tmp_path: Path) -> None:
    hub.configure(corrupt={(TINY_LLAMA, WEIGHTS)})
    api = HfApi(endpoint=hub.url)
    folder = _download(hub, TINY_LLAMA, tmp_path / "d", allow_patterns=[WEIGHTS])
    data = (folder / WEIGHTS).read_bytes()
    tree = api.list_repo_tree(TINY_LLAMA, recursive=True)
    lfs = next(f.lfs for f in tree if isinstance(f, RepoFile) and f.path == WEIGHTS)
    assert lfs is not None
    assert len(data) == lfs.size
    assert hashlib.sha256(data).hexdigest() != lfs.sha256
    check = api.verify_repo_checksums(TINY_LLAMA, local_dir=folder, token=False)
    assert [m["path"] for m in check.mismatches] == [WEIGHTS]


def test_fail_first_answers_503_then_recovers(hub: HubServer) -> None:
    hub.configure(fail_first=2)
    api = HfApi(endpoint=hub.url)
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as failure:
            api.model_info(TINY_LLAMA)
        assert failure.value.response.status_code == 503
    assert api.model_info(TINY_LLAMA).sha is not None
    assert [r.status for r in hub.requests] == [503, 503, 200]


def test_control_endpoint_changes_knobs_at_runtime(hub: HubServer) -> None:
    with httpx.Client(base_url=hub.url) as client:
        answer = client.post("/_control", json={"gated": [TINY_GEMMA3], "bytes_per_second": 1000})
        assert answer.status_code == 200
        assert answer.json()["knobs"]["gated"] == [TINY_GEMMA3]
        assert hub.knobs.gated == frozenset({TINY_GEMMA3})
        assert hub.knobs.bytes_per_second == 1000
        gated = client.get(f"/{TINY_GEMMA3}/resolve/main/config.json")
        assert gated.status_code == 401
        assert gated.headers["X-Error-Code"] == "GatedRepo"
        assert client.get("/_control").json()["requests"][-1]["status"] == 401
        client.post("/_control/reset")
    assert hub.knobs.gated == frozenset()
    assert hub.knobs.bytes_per_second is None


def test_resolve_headers_and_ranges(hub: HubServer, tiny_repos_dir: Path) -> None:
    repo = tiny_repos_dir / TINY_LLAMA
    weights = (repo / WEIGHTS).read_bytes()
    config = (repo / "config.json").read_bytes()
    commit = HfApi(endpoint=hub.url).model_info(TINY_LLAMA).sha
    url = f"/{TINY_LLAMA}/resolve/main/{WEIGHTS}"
    with httpx.Client(base_url=hub.url) as client:
        head = client.head(url)
        assert head.status_code == 200
        assert head.headers["X-Repo-Commit"] == commit
        assert head.headers["ETag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
        assert head.headers["X-Linked-Etag"] == head.headers["ETag"]
        assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == str(len(weights))
        assert head.headers["Accept-Ranges"] == "bytes"

        plain = client.head(f"/{TINY_LLAMA}/resolve/{commit}/config.json")
        assert plain.headers["ETag"] == f'"{_git_blob_sha1(config)}"'
        assert "X-Linked-Etag" not in plain.headers

        part = client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(weights)}"
        assert part.content == weights[100:200]
        tail = client.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206
        assert tail.content == weights[-10:]
        rest = client.get(url, headers={"Range": "bytes=400000-"})
        assert rest.content == weights[400000:]
        beyond = client.get(url, headers={"Range": f"bytes={len(weights)}-"})
        assert beyond.status_code == 416

        missing = client.get(f"/{TINY_LLAMA}/resolve/main/nope.bin")
        assert missing.status_code == 404
        assert missing.headers["X-Error-Code"] == "EntryNotFound"
        assert missing.headers["X-Repo-Commit"] == commit
        bad_rev = client.get(f"/{TINY_LLAMA}/resolve/v9/config.json")
        assert bad_rev.headers["X-Error-Code"] == "RevisionNotFound"
        no_repo = client.get("/nobody/nothing/resolve/main/config.json")
        assert no_repo.headers["X-Error-Code"] == "RepoNotFound"


def test_client_resumes_a_broken_stream_with_range(tmp_path: Path) -> None:
    # huggingface_hub 2.4 reads bodies in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces and resumes from
    # the last whole piece, so the cut must come after the first piece to produce a Range.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    repo = tmp_path / "repos" / "studio-ai-test" / "big-file"
    repo.mkdir(parents=True)
    payload = random.Random(0).randbytes(chunk + 2 * 1024 * 1024)
    (repo / "weights.bin").write_bytes(payload)

    with HubServer(tmp_path / "repos", drop_after_bytes=chunk + 1024 * 1024) as hub:
        folder = _download(hub, "studio-ai-test/big-file", tmp_path / "d")
        gets = list(hub.iter_requests("GET", "/resolve/"))
    assert (folder / "weights.bin").read_bytes() == payload
    assert [(r.range, r.status) for r in gets] == [(None, 200), (f"bytes={chunk}-", 206)]


_KILLABLE_DOWNLOAD = """
import sys
from huggingface_hub import snapshot_download

snapshot_download(
    sys.argv[1], endpoint=sys.argv[2], local_dir=sys.argv[3], cache_dir=sys.argv[4],
    token=False, allow_patterns=["*.safetensors"],
)
"""


def test_killed_download_can_be_restarted(
    hub: HubServer, tiny_repos_dir: Path, tmp_path: Path
) -> None:
    weights = (tiny_repos_dir / TINY_LLAMA / WEIGHTS).read_bytes()
    hub.configure(bytes_per_second=100_000)
    dest, cache = tmp_path / "d", tmp_path / "cache"
    args = [TINY_LLAMA, hub.url, str(dest), str(cache)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_DOWNLOAD, *args],
        env=_clean_env(tmp_path, HF_HUB_DISABLE_PROGRESS_BARS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while hub.bytes_served < 100_000:
            assert proc.poll() is None, "downloader ended before it was killed"
            assert time.monotonic() < deadline, "download never started"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert hub.bytes_served < len(weights)
    assert not (dest / WEIGHTS).exists()

    # huggingface_hub 2.4 keeps partial data in a process-unique temp file, so a new process
    # starts the file over (no Range); what matters is that it completes correctly.
    hub.configure(bytes_per_second=None)
    folder = _download(hub, TINY_LLAMA, dest, cache_dir=cache, allow_patterns=["*.safetensors"])
    assert (folder / WEIGHTS).read_bytes() == weights


def test_hf_cli_downloads_from_the_local_hub(
    hub: HubServer, tiny_repos_dir: Path, tmp_path: Path
) -> None:
    hf = Path(sys.executable).with_name("hf")
    dest = tmp_path / "cli"
    result = subprocess.run(
        [str(hf), "download", TINY_GEMMA3, "--local-dir", str(dest), "--revision", "main"],
        env=_clean_env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_PROGRESS_BARS="1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _disk_files(dest) == _disk_files(tiny_repos_dir / TINY_GEMMA3)


def test_commit_sha_is_stable_and_follows_content(tiny_repos_dir: Path, tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    shutil.copytree(tiny_repos_dir / TINY_LLAMA, repos / TINY_LLAMA)
    first = RepoIndex(repos).get(TINY_LLAMA)
    again = RepoIndex(repos).get(TINY_LLAMA)
    assert first is not None
    assert again is not None
    assert first.sha == again.sha

    index = RepoIndex(repos)
    (repos / TINY_LLAMA / ".cache").mkdir()
    (repos / TINY_LLAMA / ".cache" / "junk").write_text("not repo content")
    same = index.get(TINY_LLAMA)
    assert same is not None
    assert same.sha == first.sha
    assert ".cache/junk" not in same.files
    (repos / TINY_LLAMA / "README.md").write_text("changed\n")
    changed = index.get(TINY_LLAMA)
    assert changed is not None
    assert changed.sha != first.sha
    assert index.get("studio-ai-test/absent") is None
    assert index.get("../etc") is None
