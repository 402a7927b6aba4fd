"""Inbound webhooks: public, authenticated only by each provider's own signature on the raw body."""
from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import PUBLIC, access, raw_body
from connectors.base import InboundRequest
from core.inbound import webhooks

blp = Blueprint("hooks", __name__, url_prefix="/v1/hooks",
                description="Webhooks from providers, verified by the provider's signature scheme.")


RECEIVED = ("Received and kept durably (the delivery is committed before this answer; its events and the jobs they "
            "start follow within moments, a duplicate of an event already kept starting nothing). The body is a "
            "`HookReceipt`, except for Xero deliveries: Xero requires a 200 with no "
            "body (its intent-to-receive validation fails otherwise), so those answers have an empty body and no "
            "`Content-Type`.")


class HookReceiptSchema(ma.Schema):
    received = ma.fields.Integer(metadata={"description": "Events of the delivery kept for this endpoint's tenants "
                                                          "(duplicates included: de-duplication follows the answer)."})
    dropped = ma.fields.Integer(metadata={"description": "Verified events that belong to no tenant here (another "
                                                         "account than the connection's, or an unowned one)."})


def _inbound() -> InboundRequest:
    req = request._get_current_object()  # once, not through the proxy at every attribute (bench.hook_profile)
    base = current_app.config.get("PUBLIC_BASE_URL")
    url = base.rstrip("/") + req.full_path.rstrip("?") if base else req.url
    return InboundRequest(method=req.method, url=url, headers=dict(req.headers), body=req.get_data(cache=True))


def _answer(result) -> Response:
    if result.handshake is not None:
        return Response(result.handshake.body, status=result.handshake.status, headers=result.handshake.headers)
    if result.provider == "xero":  # Xero's rules: a 200 with no body (its intent-to-receive check fails otherwise)
        resp = Response(b"", status=200)
        del resp.headers["Content-Type"]  # no body, so no media type (it was an empty text/html)
        return resp
    return jsonify({"received": result.received, "dropped": result.dropped})


@blp.route("/apps/<string:provider>")
class AppHook(MethodView):
    @access(PUBLIC)
    @raw_body
    @blp.response(200, HookReceiptSchema, description=RECEIVED)
    @blp.alt_response(401, description="Signature missing or invalid, or the signed body is too old (Shopify: its "
                      "`updated_at`/`created_at` more than 24 hours ago; HubSpot: v3 timestamp more than 5 minutes "
                      "off, or a legacy v1/v2 signature this deployment does not accept); nothing is stored.")
    @blp.alt_response(422, description="`app-hook-unroutable`: signed, but the body names no account (a Shopify "
                      "topic other than `shop/update`, `app/uninstalled` and the compliance topics), and this URL "
                      "routes only by what the signature covers. Subscribe the connection's own endpoint "
                      "(`POST /v1/hooks/{token}`) for such topics; nothing is stored.")
    @blp.alt_response(503, description="A tenant of the delivery is being moved between servers, or the database "
                      "is away: nothing is kept; deliver again (Retry-After).")
    def post(self, provider):
        """Zixly's own app on Xero, HubSpot or Shopify; each event is routed to the tenant owning the account its
        signed body names (never by a header: Shopify's shop and webhook-id headers are not signed)."""
        return _answer(webhooks.ingest_app_hook(provider, _inbound()))


@blp.route("/<string:token>")
class ConnectionHook(MethodView):
    @access(PUBLIC)
    @raw_body
    @blp.response(200, HookReceiptSchema, description=RECEIVED)
    @blp.alt_response(401, description="Signature missing or invalid; nothing is stored.")
    @blp.alt_response(404, description="Unknown endpoint token.")
    @blp.alt_response(429, description="`webhook-rate-limited`: the tenant's verified deliveries in the last minute "
                      "used its plan's `webhook_requests_per_minute` (one budget across all its endpoints); nothing "
                      "is kept; deliver again after `Retry-After` seconds.")
    @blp.alt_response(503, description="The tenant is being moved between servers, or the database is away: "
                      "nothing is kept; deliver again (Retry-After).")
    def post(self, token):
        """A connection's own hook (a tenant's private app, Asana subscriptions, Standard Webhooks senders)."""
        return _answer(webhooks.ingest_connection_hook(token, _inbound()))
