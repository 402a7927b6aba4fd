"""Asana: OAuth with PKCE (1-hour tokens, a long-lived refresh token), /users/me and task creation."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Grant
from sandbox.provider import Provider, json_response, route

USER = {"gid": "1200000000000100", "name": "Demo Admin", "email": "admin@zixly-demo.example"}
WORKSPACES = ({"gid": "1200000000000001", "name": "Zixly Demo Workspace"},
              {"gid": "1200000000000002", "name": "Personal Projects"})
PROJECT = {"gid": "1200000000000010", "name": "Onboarding", "workspace": "1200000000000001"}


def _errors(message: str, status: int) -> Response:
    return json_response({"errors": [{"message": message}]}, status)


class Asana(Provider):
    name = "asana"
    access_ttl = 3600.0
    rotate_refresh = False
    routes = (
        route("GET", r"app\.asana\.com/-/oauth_authorize", "authorize", api=False),
        route("POST", r"app\.asana\.com/-/oauth_token", "token", api=False),
        route("POST", r"app\.asana\.com/-/oauth_revoke", "revoke", api=False),
        route("GET", r"app\.asana\.com/api/1\.0/users/me", "me"),
        route("POST", r"app\.asana\.com/api/1\.0/tasks", "create_task"),
    )

    def seed(self) -> None:
        self.projects = {PROJECT["gid"]: dict(PROJECT)}
        self.tasks: dict[str, dict] = {}
        self.ids = itertools.count(1200000000001000)
        self.hook_secrets: dict[str, str] = {}  # target URL -> the X-Hook-Secret its handshake agreed

    def consent(self, request: Request, host: str, app: App) -> dict:
        return {"user_gid": USER["gid"]}

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        body = {"access_token": access, "expires_in": int(self.access_ttl), "token_type": "bearer",
                "data": {"id": int(USER["gid"]), "gid": USER["gid"], "name": USER["name"], "email": USER["email"]}}
        if refresh:
            body["refresh_token"] = refresh
        return body

    def unauthorized(self) -> Response:
        return _errors("Not Authorized", 401)

    def rate_limited(self, retry_after: float) -> Response:
        response = _errors("You have made too many requests recently. Please, be chill.", 429)
        response.headers["Retry-After"] = str(int(retry_after))
        return response

    def me(self, request: Request, grant: Grant, **_) -> Response:
        return json_response({"data": {**USER, "resource_type": "user",
                                       "workspaces": [{**w, "resource_type": "workspace"} for w in WORKSPACES]}})

    def create_task(self, request: Request, grant: Grant, **_) -> Response:
        data = (request.get_json(silent=True) or {}).get("data")
        if not isinstance(data, dict) or not data.get("name"):
            return _errors("name: Missing input", 400)
        projects = [self.projects.get(str(p)) for p in data.get("projects") or []]
        if None in projects:
            return _errors("projects: Unknown object", 400)
        workspace = data.get("workspace") or (projects[0]["workspace"] if projects else None)
        if workspace not in {w["gid"] for w in WORKSPACES}:
            return _errors("workspace: Missing input", 400)
        task = self.add_task(data["name"], workspace, data.get("notes", ""), projects)
        return json_response({"data": task}, 201)

    def add_task(self, name: str, workspace: str, notes: str = "", projects: list[dict] | tuple = ()) -> dict:
        gid = str(next(self.ids))
        task = {"gid": gid, "resource_type": "task", "name": name, "notes": notes,
                "completed": False, "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                "assignee": None, "workspace": {"gid": workspace, "resource_type": "workspace"},
                "projects": [{"gid": p["gid"], "name": p["name"], "resource_type": "project"} for p in projects]}
        self.tasks[gid] = task
        return task
