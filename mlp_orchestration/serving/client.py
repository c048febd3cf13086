"""A small HTTP client of the scoring service, for replay, rollout checks and tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from mlp_orchestration.errors import ErrorCategory, MlpError


class ScoringServiceError(MlpError):
    """The scoring service returned an error status or could not be reached."""

    category = ErrorCategory.UNAVAILABLE

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ScoringClient:
    """Calls ``/v1`` routes of one scoring service; use as a context manager or call close()."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def score(
        self,
        model: str,
        entity_id: str,
        features: Mapping[str, float | None],
        *,
        explain: bool = False,
        event_time: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Score one record and return the response document.

        Raises:
            ScoringServiceError: with the service's status and message.
        """
        body = _record(entity_id, features, explain, event_time)
        return self._request("POST", f"/v1/models/{model}/score", json=body)

    def score_batch(self, model: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Score records shaped like score request bodies; return one result per record."""
        body = {"records": [_jsonable(record) for record in records]}
        return self._request("POST", f"/v1/models/{model}/score/batch", json=body)["results"]

    def model_info(self, model: str) -> dict[str, Any]:
        """Return the routing config, loaded versions and last load error of a model."""
        return self._request("GET", f"/v1/models/{model}")

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ScoringServiceError(
                f"scoring service at {self.base_url} unreachable ({method} {path}): {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ScoringServiceError(
                f"{method} {path} failed with {response.status_code}: {detail}",
                status=response.status_code,
            )
        return response.json()


def _record(
    entity_id: str,
    features: Mapping[str, float | None],
    explain: bool,
    event_time: datetime | str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"entity_id": entity_id, "features": dict(features), "explain": explain}
    if event_time is not None:
        body["event_time"] = event_time
    return _jsonable(body)


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(record)
    if isinstance(body.get("event_time"), datetime):
        body["event_time"] = body["event_time"].isoformat()
    if "features" in body:
        features = body["features"]
        body["features"] = {
            name: None if value is None else float(value) for name, value in features.items()
        }
    return body
