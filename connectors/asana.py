"""Asana: webhooks (X-Hook-Secret handshake, then hex HMAC-SHA256 of the body), OAuth with PKCE, tasks API."""
from __future__ import annotations

from datetime import timedelta

from connectors.base import (
    BodyHmacScheme,
    Handshake,
    InboundRequest,
    MalformedPayload,
    WebhookEvent,
    optional_str,
    parse_json,
    stable_id,
)
from connectors.oauth import AccountInfo, ApiContext, Connector, TokenSet
from connectors.ratelimits import Quota


class AsanaScheme(BodyHmacScheme):
    provider = "asana"
    dedup_horizon = timedelta(hours=24)
    signature_header = "X-Hook-Signature"
    hex_digest = True

    def handshake(self, request: InboundRequest) -> Handshake | None:
        secret = request.header("X-Hook-Secret")
        if not secret:
            return None
        # Echoing the secret confirms the subscription; the caller stores it to verify later deliveries.
        return Handshake(status=200, headers={"X-Hook-Secret": secret})

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise MalformedPayload("expected an object with an events list")
        return [_event(item) for item in body["events"]]


def _event(item: object) -> WebhookEvent:
    resource = item.get("resource") if isinstance(item, dict) else None
    if not isinstance(resource, dict) or not resource.get("gid") or not item.get("action"):
        raise MalformedPayload("event lacks resource gid or action")
    return WebhookEvent(
        event_id=stable_id(resource["gid"], item["action"], item.get("created_at"),
                           _gid(item.get("user")), _field(item.get("change"))),
        event_type=f"{item['action']}:{resource.get('resource_type') or 'unknown'}",
        account_id=None,
        resource_id=str(resource["gid"]),
        occurred_at=optional_str(item.get("created_at")),
        payload=item,
    )


def _gid(ref: object) -> str | None:
    return ref.get("gid") if isinstance(ref, dict) else None


def _field(change: object) -> str | None:
    return change.get("field") if isinstance(change, dict) else None


AUTHORIZE_URL = "https://app.asana.com/-/oauth_authorize"
TOKEN_URL = "https://app.asana.com/-/oauth_token"
REVOCATION_URL = "https://app.asana.com/-/oauth_revoke"
API_URL = "https://app.asana.com/api/1.0"


class AsanaConnector(Connector):
    provider = "asana"
    display_name = "Asana"
    scheme = AsanaScheme()
    account_kind = "workspace"
    supports_pkce = True
    scopes = ("tasks:write", "users:read", "workspaces:read", "projects:read")
    quota = Quota.per_window(150, 60)  # 150 requests per minute on free plans (1,500 on paid ones)
    revocation_endpoint = REVOCATION_URL

    def authorize_endpoint(self, options: dict) -> str:
        return AUTHORIZE_URL

    def token_endpoint(self, options: dict) -> str:
        return TOKEN_URL

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        me = self._me(ctx_or_tokens)
        return [AccountInfo(str(w["gid"]), w.get("name"), {"user_gid": me.get("gid")})
                for w in me.get("workspaces") or [] if isinstance(w, dict) and w.get("gid")]

    def test(self, ctx: ApiContext) -> dict:
        me = self._me(ctx)
        return {"account_id": ctx.account_id, "user": me.get("gid"), "name": me.get("name")}

    def create_task(self, ctx: ApiContext, *, name: str, notes: str | None = None,
                    projects: list[str] | None = None, workspace: str | None = None, **fields) -> dict:
        data = {"name": name, **fields}
        if notes is not None:
            data["notes"] = notes
        if projects:
            data["projects"] = list(projects)
        elif workspace or ctx.account_id:
            data["workspace"] = workspace or ctx.account_id
        return (self.api("POST", f"{API_URL}/tasks", ctx, json={"data": data}) or {}).get("data") or {}

    def _me(self, ctx_or_tokens: ApiContext | TokenSet) -> dict:
        body = self.api("GET", f"{API_URL}/users/me", ctx_or_tokens,
                        params={"opt_fields": "name,email,workspaces.name"}) or {}
        return body.get("data") or {}
