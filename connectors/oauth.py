"""What a connector is: OAuth 2.0 settings and flows (through authlib), account discovery, and a cheap test call.

Values in, values out: credentials, tokens and options arrive as arguments and leave as plain dataclasses, so
the caller decides where they are stored (encrypted) and which tenant they belong to.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from authlib.integrations.base_client import OAuthError

from connectors.base import WebhookScheme
from connectors.env import ConnectorEnv
from connectors.errors import (
    ConnectorError,
    InvalidOptions,
    Permanent,
    RateLimited,
    ReauthRequired,
    Transient,
)
from connectors.http import HttpClient, error_detail
from connectors.ratelimits import Quota, RateLimitInfo, parse_rate_limit

# Token-endpoint error codes that mean the grant itself is gone (HubSpot v1 also sends its own status codes).
GRANT_GONE = frozenset({"invalid_grant", "BAD_REFRESH_TOKEN", "invalid_token", "unauthorized_client"})
_TOKEN_FIELDS = ("access_token", "refresh_token", "expires_in", "expires_at", "token_type", "scope")


@dataclass(frozen=True)
class AppCredentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    token_type: str = "Bearer"
    scope: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at - (now or time.time()) <= seconds

    def to_dict(self) -> dict:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": self.expires_at, "token_type": self.token_type, "scope": self.scope,
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        expires_at = data.get("expires_at")
        return cls(access_token=str(data["access_token"]), refresh_token=data.get("refresh_token"),
                   expires_at=None if expires_at is None else float(expires_at),
                   token_type=data.get("token_type") or "Bearer", scope=data.get("scope"),
                   extra=dict(data.get("extra") or {}))


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    name: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ApiContext:
    tokens: TokenSet
    options: dict = field(default_factory=dict)
    account_id: str | None = None


class Connector:
    provider: ClassVar[str]
    display_name: ClassVar[str]
    scheme: ClassVar[WebhookScheme]
    account_kind: ClassVar[str]
    supports_pkce: ClassVar[bool] = False
    scopes: ClassVar[tuple[str, ...]] = ()
    scope_separator: ClassVar[str] = " "
    token_auth_method: ClassVar[str] = "client_secret_post"
    revocation_endpoint: ClassVar[str | None] = None
    option_fields: ClassVar[tuple[str, ...]] = ()
    # The provider's documented limit per connected account; outbound writes are paced to stay under it.
    quota: ClassVar[Quota] = Quota.per_window(60, 60)

    def __init__(self, env: ConnectorEnv | None = None):
        self.env = env or ConnectorEnv()
        self.http = HttpClient(self.provider, self.env, classify=self.classify)

    # --- settings a subclass provides -------------------------------------------------------------------------
    def authorize_endpoint(self, options: dict) -> str:
        raise NotImplementedError

    def token_endpoint(self, options: dict) -> str:
        raise NotImplementedError

    def validate_options(self, options: Mapping[str, Any] | None) -> dict:
        """Normalised options; unknown fields and wrong types are refused so nothing odd is stored."""
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise InvalidOptions({"options": "must be an object"})
        unknown = {k: "unknown option" for k in options if k not in self.option_fields}
        if unknown:
            raise InvalidOptions(unknown)
        return {}

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        raise NotImplementedError

    def test(self, ctx: ApiContext) -> dict:
        raise NotImplementedError

    def classify(self, response: requests.Response, info: RateLimitInfo) -> ConnectorError | None:
        """Recognise a provider-specific failure before the generic status mapping; None to fall through."""
        return None

    # --- OAuth flows --------------------------------------------------------------------------------------------
    def authorization_url(self, app: AppCredentials, *, redirect_uri: str, state: str,
                          code_verifier: str | None = None, options: dict | None = None) -> str:
        options = self.validate_options(options)
        session = self._oauth_session(app, redirect_uri=redirect_uri)
        url, _ = session.create_authorization_url(
            self.http.url(self.authorize_endpoint(options)), state=state,
            code_verifier=code_verifier if self.supports_pkce else None,
            scope=self.scope_separator.join(self.scopes), **self.authorize_params(options))
        return url

    def authorize_params(self, options: dict) -> dict:
        return {}

    def exchange_code(self, app: AppCredentials, *, code: str, redirect_uri: str, code_verifier: str | None = None,
                      options: dict | None = None, params: Mapping[str, str] | None = None) -> TokenSet:
        options = self.validate_options(options)
        self.verify_callback(app, dict(params or {}), options)
        session = self._oauth_session(app, redirect_uri=redirect_uri)
        session.register_compliance_hook("access_token_response", self._token_response_check(refreshing=False))
        extra = {"code_verifier": code_verifier} if self.supports_pkce and code_verifier else {}
        with _oauth_errors(self.provider, refreshing=False):
            token = session.fetch_token(self.http.url(self.token_endpoint(options)), code=code,
                                        grant_type="authorization_code", **extra, **self.token_params(options))
        return self.to_tokenset(dict(token), app, options)

    def verify_callback(self, app: AppCredentials, params: dict, options: dict) -> None:
        """Check what the provider added to the callback (Shopify signs it); the state is the caller's job."""

    def token_params(self, options: dict) -> dict:
        return {}

    def refresh(self, app: AppCredentials, tokens: TokenSet, options: dict | None = None) -> TokenSet:
        options = self.validate_options(options)
        if not tokens.refresh_token:
            raise ReauthRequired(self.provider, "no refresh token was issued; connect again")
        session = self._oauth_session(app)
        session.register_compliance_hook("refresh_token_response", self._token_response_check(refreshing=True))
        with _oauth_errors(self.provider, refreshing=True):
            token = session.refresh_token(self.http.url(self.token_endpoint(options)),
                                          refresh_token=tokens.refresh_token, **self.refresh_params(options))
        return self.to_tokenset(dict(token), app, options, previous=tokens)

    def refresh_params(self, options: dict) -> dict:
        return {}

    def revoke(self, app: AppCredentials, tokens: TokenSet, options: dict | None = None) -> bool:
        """Revoke the grant at the provider (RFC 7009 style by default). False when there is no such endpoint."""
        if self.revocation_endpoint is None:
            return False
        self.validate_options(options)
        session = self._oauth_session(app)
        token = tokens.refresh_token or tokens.access_token
        hint = "refresh_token" if tokens.refresh_token else "access_token"
        response = session.revoke_token(self.http.url(self.revocation_endpoint), token=token, token_type_hint=hint)
        return self.revoked(response)

    def revoked(self, response: requests.Response) -> bool:
        # A token the provider no longer knows is as revoked as it gets.
        if response.status_code in (400, 401) and _error_code(response) in GRANT_GONE:
            return True
        self.http.raise_for(response)
        return True

    def to_tokenset(self, token: dict, app: AppCredentials, options: dict,
                    previous: TokenSet | None = None) -> TokenSet:
        if not token.get("access_token"):
            raise Permanent(self.provider, 502, "token response has no access_token")
        extra = dict(previous.extra) if previous else {}
        extra.update({k: v for k, v in token.items() if k not in _TOKEN_FIELDS})
        scope = token.get("scope")
        return TokenSet(
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token") or (previous.refresh_token if previous else None),
            expires_at=float(token["expires_at"]) if token.get("expires_at") else None,
            token_type=str(token.get("token_type") or "Bearer"),
            scope=" ".join(scope) if isinstance(scope, list) else scope,
            extra=extra,
        )

    # --- helpers for subclasses -----------------------------------------------------------------------------------
    def _oauth_session(self, app: AppCredentials, **kwargs):
        return self.http.oauth_session(
            client_id=app.client_id, client_secret=app.client_secret,
            token_endpoint_auth_method=self.token_auth_method,
            revocation_endpoint_auth_method=self.token_auth_method,
            code_challenge_method="S256" if self.supports_pkce else None, **kwargs)

    def _token_response_check(self, refreshing: bool):
        def check(response: requests.Response) -> requests.Response:
            if response.status_code >= 400:
                raise token_error(self.provider, response, refreshing)
            return response
        return check

    def api(self, method: str, url: str, ctx: ApiContext | TokenSet, **kwargs):
        """An authenticated JSON call; `url` is the real provider URL."""
        tokens = ctx.tokens if isinstance(ctx, ApiContext) else ctx
        headers = {"Accept": "application/json", **self.auth_headers(tokens), **kwargs.pop("headers", {})}
        return self.http.json(method, url, headers=headers, **kwargs)

    def auth_headers(self, tokens: TokenSet) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.access_token}"}


def token_error(provider: str, response: requests.Response, refreshing: bool) -> ConnectorError:
    status = response.status_code
    if status == 429:
        info = parse_rate_limit(response.headers)
        return RateLimited(provider, info.wait_seconds(), info=info)
    if status >= 500:
        return Transient(provider, f"token endpoint answered HTTP {status}", status=status)
    code = _error_code(response)
    detail = error_detail(response) or code or f"HTTP {status}"
    if refreshing and code in GRANT_GONE:
        return ReauthRequired(provider, detail)
    return Permanent(provider, status, detail)


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("error") or body.get("status")
    return code if isinstance(code, str) else None


class _oauth_errors:
    """authlib raises OAuthError for an `error` in a 200 answer and ValueError for a body it cannot read."""

    def __init__(self, provider: str, refreshing: bool):
        self.provider, self.refreshing = provider, refreshing

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OAuthError):
            if self.refreshing and exc.error in GRANT_GONE:
                raise ReauthRequired(self.provider, exc.description or exc.error) from None
            raise Permanent(self.provider, 400, exc.description or exc.error or "token request refused") from None
        if isinstance(exc, requests.HTTPError):
            raise Transient(self.provider, "token endpoint failed") from None
        if isinstance(exc, ValueError) and not isinstance(exc, InvalidOptions):
            raise Transient(self.provider, "token endpoint answered with a body that is not JSON") from None
        return False
