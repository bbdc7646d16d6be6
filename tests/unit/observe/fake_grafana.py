"""A FAKE Grafana: an in-memory HTTP server on 127.0.0.1 for tests. It is NOT Grafana.

A Grafana server cannot be installed here, so `testbed dashboards push` is tested against this
stand-in. It implements the endpoints grafana-client calls for the push, with the request and
response JSON shapes of Grafana's HTTP API documentation (developers/http_api: dashboard.md,
annotations.md, folder.md, data_source.md, folder_dashboard_search.md, other.md):

    GET  /api/health                    {"commit", "database": "ok", "version"}   (no auth)
    GET  /api/frontend/settings         {"buildInfo": {...}, ...}
    GET  /api/folders/:uid              folder | 404;  POST /api/folders  folder | 409
    GET  /api/datasources/uid/:uid      datasource | 404 {"message": "Data source not found"}
    POST /api/datasources               {"datasource", "id", "message": "Datasource added", "name"}
    POST /api/dashboards/db             {"id", "uid", "url", "status": "success", "version", "slug"}
                                        412 {"status": "name-exists"} without overwrite
    GET  /api/dashboards/uid/:uid       {"dashboard", "meta"}
    GET  /api/search                    [{"id", "uid", "title", "url", "type", "tags", ...}]
    POST /api/annotations               {"message": "Annotation added", "id"}; 400 without text
    GET  /api/annotations               [{"id", "dashboardUID", "time", "timeEnd", "text", "tags",
                                        ...}] filtered by every ``tags`` (AND), type, limit
    PUT  /api/annotations/:id           {"message": "Annotation updated"}

Every other path is 404; a missing or wrong ``Authorization: Bearer <token>`` is 401
{"message": "Unauthorized"}. Requests are recorded (method, path, body) for assertions.

Run as a program (``python3 fake_grafana.py``, the entry point of the FAKE Grafana image that
tests/integration/test_grafana_container.py builds) it stands in for the grafana/grafana-oss
container: it listens on 0.0.0.0:3000, takes Grafana's own settings from the environment
(``GF_SECURITY_ADMIN_USER``, ``GF_SECURITY_ADMIN_PASSWORD__FILE`` for Basic auth,
``GF_AUTH_ANONYMOUS_ENABLED`` with the Viewer role: GET only) and loads the provisioning files
under ``GF_PATHS_PROVISIONING`` as Grafana documents them (datasources/*.yaml; dashboards/*.yaml
providers of type file with ``folder``, ``folderUid`` and ``options.path``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

VERSION = "10.4.0-fake"


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass
class State:
    token: str
    basic: tuple[str, str] | None = None  # (user, password) of the admin, when configured
    anonymous_viewer: bool = False  # GF_AUTH_ANONYMOUS_ENABLED with the Viewer role
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> stored
    annotations: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlparse(self.path)
        body = self._body() if method in ("POST", "PUT") else None
        with self.server.lock:
            state.requests.append((method, url.path, body))
            if url.path == "/api/health":
                self._send(200, {"commit": "fake", "database": "ok", "version": VERSION})
                return
            if not self._authorized(state, method):
                self._send(401, {"message": "Unauthorized"})
                return
            status, answer = route(state, method, url.path, parse_qs(url.query), body)
        self._send(status, answer)

    def _authorized(self, state: State, method: str) -> bool:
        given = self.headers.get("Authorization") or ""
        if state.token and given == f"Bearer {state.token}":
            return True
        if state.basic is not None and given.startswith("Basic "):
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(given[6:]).decode().partition(":")
                if (user, password) == state.basic:
                    return True
        return not given and state.anonymous_viewer and method == "GET"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str, address: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        super().__init__(address, _Handler)
        self.state = State(token)
        self.lock = threading.Lock()


def _folder(state: State, uid: str, title: str, folder_id: int) -> dict[str, Any]:
    return {
        "id": folder_id,
        "uid": uid,
        "title": title,
        "url": f"/dashboards/f/{uid}/{slug(title)}",
        "hasAcl": False,
        "canSave": True,
        "canEdit": True,
        "canAdmin": True,
        "createdBy": "admin",
        "created": "2024-01-01T00:00:00Z",
        "updatedBy": "admin",
        "updated": "2024-01-01T00:00:00Z",
        "version": 1,
    }


def route(
    state: State, method: str, path: str, query: dict[str, list[str]], body: Any
) -> tuple[int, Any]:
    if method == "GET" and path == "/api/frontend/settings":
        return 200, {"buildInfo": {"version": VERSION, "commit": "fake"}, "datasources": {}}
    if method == "GET" and path.startswith("/api/folders/"):
        folder = state.folders.get(path.rsplit("/", 1)[1])
        return (200, folder) if folder else (404, {"message": "folder not found"})
    if method == "POST" and path == "/api/folders":
        uid = body.get("uid") or f"f{state.next_id}"
        if uid in state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        state.folders[uid] = _folder(state, uid, body["title"], state.new_id())
        return 200, state.folders[uid]
    if method == "GET" and path.startswith("/api/datasources/uid/"):
        found = state.datasources.get(path.rsplit("/", 1)[1])
        return (200, found) if found else (404, {"message": "Data source not found"})
    if method == "POST" and path == "/api/datasources":
        return _add_datasource(state, body)
    if method == "POST" and path == "/api/dashboards/db":
        return _save_dashboard(state, body)
    if method == "GET" and path.startswith("/api/dashboards/uid/"):
        stored = state.dashboards.get(path.rsplit("/", 1)[1])
        return (200, stored) if stored else (404, {"message": "Dashboard not found"})
    if method == "GET" and path.rstrip("/") == "/api/search":
        return 200, _search(state, query)
    if method == "POST" and path == "/api/annotations":
        if not isinstance(body, dict) or not body.get("text"):
            return 400, {"message": "Failed to save annotation: text is required"}
        annotation_id = state.new_id()
        state.annotations[annotation_id] = _annotation(annotation_id, body)
        return 200, {"message": "Annotation added", "id": annotation_id}
    if method == "GET" and path == "/api/annotations":
        return 200, _find_annotations(state, query)
    match = re.fullmatch(r"/api/annotations/(\d+)", path)
    if method == "PUT" and match:
        annotation_id = int(match.group(1))
        if annotation_id not in state.annotations:
            return 404, {"message": "Could not find annotation to update"}
        state.annotations[annotation_id].update(
            {k: body[k] for k in ("time", "timeEnd", "text", "tags") if k in body}
        )
        return 200, {"message": "Annotation updated"}
    return 404, {"message": "Not found"}


def _add_datasource(state: State, body: Any) -> tuple[int, Any]:
    if not body.get("name") or not body.get("type"):
        return 400, {"message": "Required field 'name' or 'type' missing"}
    uid = body.get("uid") or f"ds{state.next_id}"
    if uid in state.datasources:
        return 409, {"message": "data source with the same uid already exists"}
    datasource = {
        "id": state.new_id(),
        "uid": uid,
        "orgId": 1,
        "name": body["name"],
        "type": body["type"],
        "typeLogoUrl": "",
        "access": body.get("access", "proxy"),
        "url": body.get("url", ""),
        "user": "",
        "database": "",
        "basicAuth": bool(body.get("basicAuth", False)),
        "isDefault": bool(body.get("isDefault", False)),
        "jsonData": body.get("jsonData") or {},
        "secureJsonFields": {},
        "version": 1,
        "readOnly": False,
    }
    state.datasources[uid] = datasource
    return 200, {
        "datasource": datasource,
        "id": datasource["id"],
        "message": "Datasource added",
        "name": datasource["name"],
    }


def _save_dashboard(state: State, body: Any) -> tuple[int, Any]:
    dashboard = body.get("dashboard") if isinstance(body, dict) else None
    if not isinstance(dashboard, dict) or not dashboard.get("title"):
        return 400, {"message": "Dashboard title cannot be empty"}
    uid = dashboard.get("uid") or f"d{state.next_id}"
    old = state.dashboards.get(uid)
    if old is not None and not body.get("overwrite"):
        return 412, {
            "message": "A dashboard with the same uid already exists",
            "status": "name-exists",
        }
    folder_uid = body.get("folderUid", "")
    if folder_uid and folder_uid not in state.folders:
        return 400, {"message": "folder not found"}
    dashboard_id = old["dashboard"]["id"] if old else state.new_id()
    version = old["dashboard"]["version"] + 1 if old else 1
    stored = {**dashboard, "id": dashboard_id, "uid": uid, "version": version}
    url = f"/d/{uid}/{slug(dashboard['title'])}"
    state.dashboards[uid] = {
        "dashboard": stored,
        "meta": {"isStarred": False, "url": url, "folderUid": folder_uid, "slug": slug(url)},
    }
    return 200, {
        "id": dashboard_id,
        "uid": uid,
        "url": url,
        "status": "success",
        "version": version,
        "slug": slug(dashboard["title"]),
    }


def _search(state: State, query: dict[str, list[str]]) -> list[dict[str, Any]]:
    text = (query.get("query") or [""])[0].lower()
    out = []
    if (query.get("type") or ["dash-db"])[0] == "dash-db":
        for uid, stored in sorted(state.dashboards.items()):
            dashboard = stored["dashboard"]
            if text in dashboard["title"].lower():
                out.append(
                    {
                        "id": dashboard["id"],
                        "uid": uid,
                        "title": dashboard["title"],
                        "url": stored["meta"]["url"],
                        "type": "dash-db",
                        "tags": dashboard.get("tags", []),
                        "isStarred": False,
                        "folderUid": stored["meta"]["folderUid"],
                    }
                )
    return out


def _annotation(annotation_id: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": annotation_id,
        "alertId": 0,
        "dashboardId": body.get("dashboardId") or 0,
        "dashboardUID": body.get("dashboardUID") or "",
        "panelId": body.get("panelId") or 0,
        "userId": 1,
        "userName": "",
        "newState": "",
        "prevState": "",
        "time": int(body.get("time") or 0),
        "timeEnd": int(body.get("timeEnd") or body.get("time") or 0),
        "text": body["text"],
        "metric": "",
        "tags": list(body.get("tags") or []),
        "data": {},
    }


def _find_annotations(state: State, query: dict[str, list[str]]) -> list[dict[str, Any]]:
    tags = set(query.get("tags", []))
    limit = int((query.get("limit") or ["100"])[0])
    kind = (query.get("type") or [""])[0]
    found = [
        a
        for a in state.annotations.values()
        if tags <= set(a["tags"]) and (kind != "alert" or a["alertId"])
    ]
    return sorted(found, key=lambda a: -a["time"])[:limit]


class FakeGrafana:
    """Start with ``with FakeGrafana(token) as grafana:``; ``grafana.url`` is its base URL."""

    def __init__(self, token: str = "fake-token") -> None:
        self.server = _Server(token)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self) -> State:
        return self.server.state

    def __enter__(self) -> FakeGrafana:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def provision(state: State, root: Path) -> None:
    """Load Grafana provisioning files the way Grafana does at start (the subset we write)."""
    import yaml  # the image puts the host's PyYAML on its path

    for path in sorted((root / "datasources").glob("*.yaml")):
        for spec in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []:
            _add_datasource(state, spec)
    for path in sorted((root / "dashboards").glob("*.yaml")):
        for provider in (yaml.safe_load(path.read_text()) or {}).get("providers") or []:
            uid = provider.get("folderUid") or f"f{state.next_id}"
            title = provider.get("folder") or "General"
            state.folders[uid] = _folder(state, uid, title, state.new_id())
            for board in sorted(Path(provider["options"]["path"]).glob("*.json")):
                body = {"dashboard": json.loads(board.read_text()), "folderUid": uid}
                _save_dashboard(state, {**body, "overwrite": True})


def main() -> None:
    """The FAKE Grafana container's process (see the module docstring)."""
    server = _Server("", ("0.0.0.0", 3000))
    password_file = os.environ.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    password = (
        Path(password_file).read_text(encoding="utf-8").strip()
        if password_file
        else os.environ.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
    )
    server.state.basic = (os.environ.get("GF_SECURITY_ADMIN_USER", "admin"), password)
    server.state.anonymous_viewer = (
        os.environ.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
        and os.environ.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer") == "Viewer"
    )
    provision(
        server.state, Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    )
    print(f"FAKE Grafana {VERSION} listening on :3000", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
