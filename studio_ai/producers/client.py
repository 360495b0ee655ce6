"""A small Python client of the HTTP API (used by the CLI, tests and app backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from studio_ai.schemas.api import DownloadAccepted, DownloadCancelAccepted, ModelList, ModelView
from studio_ai.schemas.inference_api import CancelAccepted, JobAccepted, JobView
from studio_ai.schemas.research_api import (
    AttachResult,
    InsightsAccepted,
    SessionPage,
    SessionView,
)

V = TypeVar("V", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


class StudioClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StudioClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        self._raise_for(response)
        return response.json()

    def list_models(self) -> ModelList:
        return ModelList.model_validate(self._call("GET", "/admin/models"))

    def get_model(self, model_id: str) -> ModelView:
        return ModelView.model_validate(self._call("GET", f"/admin/models/{model_id}"))

    def download(
        self, model_id: str, transport: str = "hf_api", revision: str | None = None
    ) -> DownloadAccepted:
        body: dict[str, Any] = {"model_id": model_id, "transport": transport}
        if revision:
            body["revision"] = revision
        return DownloadAccepted.model_validate(
            self._call("POST", "/admin/models/download", json=body)
        )

    def cancel(self, model_id: str) -> DownloadCancelAccepted:
        return DownloadCancelAccepted.model_validate(
            self._call("DELETE", f"/admin/models/{model_id}/download")
        )

    def follow_download(self, model_id: str) -> Iterator[tuple[str, ModelView]]:
        """(event, model) pairs from the SSE stream until the download ends."""
        return self._follow(f"/admin/models/{model_id}/download/events", ModelView)

    def _follow(self, path: str, view: type[V]) -> Iterator[tuple[str, V]]:
        """(event, view) pairs from a server-sent event stream until its `status` event."""
        with self._http.stream("GET", path, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                body = response.json()
                raise ApiError(response.status_code, body.get("error", ""), body.get("detail", ""))
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    yield event, view.model_validate(json.loads(line[5:]))
                    if event == "status":
                        return

    # --- inference jobs --------------------------------------------------------------------

    def generate_text(self, body: dict[str, Any]) -> JobAccepted:
        return JobAccepted.model_validate(self._call("POST", "/ai/generate-text", json=body))

    def generate_multimodal(self, body: dict[str, Any]) -> JobAccepted:
        return JobAccepted.model_validate(self._call("POST", "/ai/generate-multimodal", json=body))

    def get_job(self, job_id: str) -> JobView:
        return JobView.model_validate(self._call("GET", f"/ai/jobs/{job_id}"))

    def cancel_job(self, job_id: str) -> CancelAccepted:
        return CancelAccepted.model_validate(self._call("POST", f"/ai/jobs/{job_id}/cancel"))

    def follow_job(self, job_id: str) -> Iterator[tuple[str, JobView]]:
        """(event, job) pairs from the SSE stream until the job ends."""
        return self._follow(f"/ai/jobs/{job_id}/events", JobView)

    # --- research sessions -----------------------------------------------------------------

    def create_session(
        self, title: str, *, query: str | None = None, providers: list[str] | None = None
    ) -> SessionView:
        body: dict[str, Any] = {"title": title, "query": query}
        if providers:
            body["providers"] = providers
        return SessionView.model_validate(self._call("POST", "/research/sessions", json=body))

    def list_sessions(self, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return SessionPage.model_validate(self._call("GET", "/research/sessions", params=params))

    def get_session(self, session_id: str) -> SessionView:
        return SessionView.model_validate(self._call("GET", f"/research/sessions/{session_id}"))

    def attach(self, session_id: str, body: dict[str, Any]) -> AttachResult:
        return AttachResult.model_validate(
            self._call("POST", f"/research/sessions/{session_id}/attach", json=body)
        )

    def detach(self, session_id: str, source_id: str) -> None:
        quoted = quote(source_id, safe=":/")  # a DOI may hold '#', '?' or '%'
        self._call_no_body("DELETE", f"/research/sessions/{session_id}/sources/{quoted}")

    def generate_insights(self, session_id: str, body: dict[str, Any]) -> InsightsAccepted:
        return InsightsAccepted.model_validate(
            self._call("POST", f"/research/sessions/{session_id}/generate-insights", json=body)
        )

    def export_session(self, session_id: str) -> str:
        response = self._http.get(
            f"/research/sessions/{session_id}/export", params={"format": "markdown"}
        )
        self._raise_for(response)
        return response.text

    def _call_no_body(self, method: str, path: str) -> None:
        self._raise_for(self._http.request(method, path))

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": "http_error", "detail": response.text[:500]}
            raise ApiError(response.status_code, body.get("error", "error"), body.get("detail", ""))
