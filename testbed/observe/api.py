"""A small client of the Prometheus HTTP API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from testbed.observe.errors import ObserveError

TIMEOUT_S = 10.0


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _open(self, path: str, params: dict[str, str] | None, method: str = "GET") -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.url}{path}{query}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            try:
                detail = str(json.loads(body).get("error", body))
            except ValueError:
                detail = body.strip()
            raise ObserveError(
                f"Prometheus at {self.url} answered {exc.code} to {path}: {detail[:300]}",
                "check the query; the Prometheus log: `testbed logs prometheus`",
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ObserveError(
                f"Prometheus at {self.url} does not answer: {exc}",
                "is the run up? `testbed status` lists its prometheus node",
            ) from exc

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        raw = self._open(path, params)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise ObserveError(f"Prometheus sent no JSON for {path}", "is it Prometheus?") from exc
        if answer.get("status") != "success":
            raise ObserveError(
                f"Prometheus: {answer.get('errorType', 'error')}: {answer.get('error', '')}",
                "check the query",
            )
        return answer.get("data")

    def ready(self) -> bool:
        try:
            self._open("/-/ready", None)
        except ObserveError:
            return False
        return True

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.get("/api/v1/query", params)
        result = data.get("result", []) if isinstance(data, dict) else []
        return list(result) if isinstance(result, list) else []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.get(
            "/api/v1/query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        result = data.get("result", []) if isinstance(data, dict) else []
        return list(result) if isinstance(result, list) else []

    def targets(self) -> list[dict[str, Any]]:
        data = self.get("/api/v1/targets", {"state": "active"})
        return list(data.get("activeTargets", [])) if isinstance(data, dict) else []

    def alerts(self) -> list[dict[str, Any]]:
        data = self.get("/api/v1/alerts")
        return list(data.get("alerts", [])) if isinstance(data, dict) else []

    def rule_groups(self) -> list[dict[str, Any]]:
        data = self.get("/api/v1/rules")
        return list(data.get("groups", [])) if isinstance(data, dict) else []
