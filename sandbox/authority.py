"""The simulated authorization server's memory: registered apps, codes, grants and the tokens issued from them."""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    webhook_key: str | None = None  # Xero: the app's webhooks key (the others sign with the client secret)


@dataclass
class Grant:
    """What one consent created: the account it reaches and the tokens minted from it."""
    provider: str
    client_id: str
    account: dict
    scope: str
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    revoked: bool = False


@dataclass
class Code:
    grant_account: dict
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    expires_at: float
    used: bool = False
    grant: Grant | None = None


@dataclass
class Issued:
    grant: Grant
    expires_at: float | None   # None: valid until revoked (rotated-out refresh tokens get a deadline)


class Authority:
    CODE_TTL = 600.0

    def __init__(self):
        self.lock = threading.RLock()
        self.apps: dict[tuple[str, str], App] = {}
        self.codes: dict[str, Code] = {}
        self.access: dict[str, Issued] = {}
        self.refresh: dict[str, Issued] = {}
        self.token_requests: Counter = Counter()
        self.refusals: dict[str, list[tuple[str, str]]] = {}  # provider -> the next consents' (error, description)
        self.code_refusals: Counter = Counter()  # provider -> how many next code exchanges get invalid_grant

    def refuse_consents(self, provider: str, error: str, description: str, count: int) -> None:
        with self.lock:
            self.refusals.setdefault(provider, []).extend([(error, description)] * count)

    def take_refusal(self, provider: str) -> tuple[str, str] | None:
        with self.lock:
            queue = self.refusals.get(provider) or []
            return queue.pop(0) if queue else None

    def take_code_refusal(self, provider: str) -> bool:
        with self.lock:
            if self.code_refusals[provider] <= 0:
                return False
            self.code_refusals[provider] -= 1
            return True

    def register(self, provider: str, app: App) -> None:
        with self.lock:
            self.apps[(provider, app.client_id)] = app

    def app(self, provider: str, client_id: str | None) -> App | None:
        return self.apps.get((provider, client_id or ""))

    def new_code(self, provider: str, code: Code) -> str:
        value = f"{provider[:2]}c_{secrets.token_urlsafe(24)}"
        with self.lock:
            self.codes[value] = code
        return value

    def issue(self, grant: Grant, access_ttl: float, with_refresh: bool = True) -> tuple[str, str | None]:
        access = f"{grant.provider[:2]}a_{secrets.token_urlsafe(32)}"
        refresh = f"{grant.provider[:2]}r_{secrets.token_urlsafe(32)}" if with_refresh else None
        with self.lock:
            self.access[access] = Issued(grant, time.time() + access_ttl)
            if refresh:
                self.refresh[refresh] = Issued(grant, None)
        return access, refresh

    def retire_refresh(self, token: str, grace: float) -> None:
        with self.lock:
            issued = self.refresh.get(token)
            if issued is not None:
                issued.expires_at = time.time() + grace if grace > 0 else 0.0

    def live_access(self, provider: str, token: str | None) -> Grant | None:
        return self._live(self.access.get(token or ""), provider)

    def live_refresh(self, provider: str, token: str | None) -> Grant | None:
        return self._live(self.refresh.get(token or ""), provider)

    def _live(self, issued: Issued | None, provider: str) -> Grant | None:
        if issued is None or issued.grant.provider != provider or issued.grant.revoked:
            return None
        if issued.expires_at is not None and issued.expires_at <= time.time():
            return None
        return issued.grant

    def expire_access(self, provider: str) -> None:
        with self.lock:
            for issued in self.access.values():
                if issued.grant.provider == provider:
                    issued.expires_at = 0.0

    def revoke(self, provider: str, refresh_token: str | None = None, where=None) -> int:
        """Revoke the grant behind `refresh_token`, or every grant of the provider matching `where(grant)`."""
        with self.lock:
            if refresh_token is not None:
                issued = self.refresh.get(refresh_token) or self.access.get(refresh_token)
                grants = {issued.grant.id: issued.grant} if issued and issued.grant.provider == provider else {}
            else:
                grants = {i.grant.id: i.grant for i in [*self.refresh.values(), *self.access.values()]
                          if i.grant.provider == provider and (where is None or where(i.grant))}
            for grant in grants.values():
                grant.revoked = True
            return len(grants)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
