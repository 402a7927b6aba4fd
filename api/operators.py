"""Who may see operational detail (`/ready`'s dependency checks, `/metrics`, whose labels name tenants): the
holder of the metrics token (`ZIXLY_METRICS_TOKEN`, sent as `Authorization: Bearer …`) or Zixly staff (a bearer
token for the staff audience).

Invariant: anyone else learns only ready / not ready, and `/metrics` is never served to the public unless the
deployment says so explicitly (`ZIXLY_METRICS_PUBLIC=true`, which `zixly dev` sets for local use).
"""
from __future__ import annotations

import hmac

from flask import current_app, request

from api.jwks import KeysUnavailable
from api.tokens import InvalidToken, TokenVerifier


def bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def holds_metrics_token(metrics_token: str | None) -> bool:
    sent = bearer()
    return bool(metrics_token and sent and hmac.compare_digest(sent.encode(), metrics_token.encode()))


def is_staff() -> bool:
    token = bearer()
    if token is None:
        return False
    verifier: TokenVerifier = current_app.extensions["zixly_tokens"]
    try:
        return verifier.verify(token).staff
    except (InvalidToken, KeysUnavailable):  # not proven staff: the public answer, never an error
        return False


def may_see_details() -> bool:
    """This request shows the app's metrics token (`METRICS_TOKEN` in its config) or a staff bearer token."""
    return holds_metrics_token(current_app.config.get("METRICS_TOKEN")) or is_staff()
