"""Shared request pieces: cursor pagination and Idempotency-Key handling for create endpoints.

Idempotency-Key. A request with a key first claims it (a record with no answer yet), then runs, then stores its
answer on the record; a repeat replays the stored answer, and a repeat while the claim is in progress answers 409
with Retry-After. A claim holds for IDEMPOTENCY_LEASE_SECONDS (longer than the slowest request may run): a claim
older than that was left by a crash (the process died between claim and store, or the database failed under
both the store and the release) and is taken over by the next repeat of the same request, which runs it again.

A response that committed but whose answer could not be stored (the database failed just then) is not lost: the
store is retried with backoff on transient errors, and the caller is answered the 2xx it earned either way —
never a 5xx for something that was done, which would invite a retry. The choice for the rare case where the store
fails for longer: the record stays in progress, so a repeat within the lease sees 409 and retries; a repeat after
it runs the request again (a second effect is possible only then, after a committed answer was already given and
the database was away for the whole store window). What a repeat sees, in order of preference: the original
answer (replayed, `Idempotent-Replayed: true`); 409 while the original may still be running; a fresh run once
the original is known to have stopped (its lease lapsed).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import wraps

import marshmallow as ma
from flask import Response, current_app, g, make_response, request
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from api.problems import Problem
from core.platform import crypto
from core.platform.models import TenantIdempotencyRecord
from core.platform.transient import TRANSIENT_ERRORS
from tenancy.db import catalog_transaction, tenant_transaction
from tenancy.models import StaffIdempotencyRecord


class PageArgsSchema(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=200))


def encode_cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type):
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        value = None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Problem(400, "invalid-cursor", "The cursor is not one this API issued.")
    return value


def decode_uuid_cursor(cursor: str | None) -> str | None:
    value = decode_cursor(cursor, str)
    try:
        return None if value is None else str(uuid.UUID(value))
    except ValueError:
        raise Problem(400, "invalid-cursor", "The cursor is not one this API issued.") from None


def decode_time_cursor(cursor: str | None) -> tuple | None:
    """A (timestamp, uuid) keyset cursor, as issued for newest-first lists."""
    value = decode_cursor(cursor, list)
    if value is None:
        return None
    try:
        when, ident = value
        return datetime.fromisoformat(when), uuid.UUID(ident)
    except (ValueError, TypeError):
        raise Problem(400, "invalid-cursor", "The cursor is not one this API issued.") from None


def page(items: list, limit: int, cursor_of) -> dict:
    """Fetch limit+1 rows; answer `limit` of them and a cursor if there were more."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(cursor_of(items[-1])) if more and items else None}


def newest_first_page(list_rows, args: dict, stamp: str) -> dict:
    """One page of a newest-first list (core.platform.pages): `list_rows(limit, before, **filters)` is the
    service's list function, given every query argument but `limit` and `cursor` as a filter of the same name;
    the cursor is the (stamp, id) of the page's last row."""
    filters = {name: value for name, value in args.items() if name not in ("limit", "cursor")}
    rows = list_rows(limit=args["limit"] + 1, before=decode_time_cursor(args["cursor"]), **filters)
    return page(rows, args["limit"], lambda row: [getattr(row, stamp).isoformat(), str(row.id)])


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The schema of one page of `item`s, named `name` in the spec: the items and the cursor of the next page
    (null on the last one)."""
    return type(name, (ma.Schema,), {"items": ma.fields.List(ma.fields.Nested(item)),
                                     "next_cursor": ma.fields.String(allow_none=True)})


log = logging.getLogger("zixly.idempotency")
_IDEMPOTENCY_KEY = re.compile(r"[ -~]{1,255}")  # as the spec says (api/openapi.py)

_STORES = {
    "staff": (StaffIdempotencyRecord, catalog_transaction),
    "tenant": (TenantIdempotencyRecord, tenant_transaction),
}


def idempotent(scope: str):
    """Replay the stored answer when a create is repeated with the same `Idempotency-Key`."""
    model, transaction = _STORES[scope]

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = request.headers.get("Idempotency-Key")
            if key is None:
                return view(*args, **kwargs)
            if not _IDEMPOTENCY_KEY.fullmatch(key):
                raise Problem(400, "invalid-idempotency-key",
                              "Idempotency-Key must be 1–255 printable ASCII characters.")
            principal = f"{g.actor.type}:{g.actor.id}"
            digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\0" +
                                    request.get_data()).hexdigest()
            replay = _claim(model, transaction, key, principal, digest)
            if replay is not None:
                return replay
            try:
                response = make_response(view(*args, **kwargs))
            except BaseException:
                _release(model, transaction, key, principal)
                raise
            if 200 <= response.status_code < 300:
                _store_committed(model, transaction, key, principal, response)
            else:
                _release(model, transaction, key, principal)
            return response

        wrapper._zixly_idempotent = scope
        # a separate dict: the wrapped view's doc must not change under it
        wrapper._apidoc = {**getattr(view, "_apidoc", {})}
        wrapper._apidoc["manual_doc"] = {**wrapper._apidoc.get("manual_doc", {}), "x-zixly-idempotent": True}
        return wrapper

    return decorator


def _claim(model, transaction, key, principal, digest) -> Response | None:
    ttl = timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"])
    with transaction() as session:
        session.execute(delete(model).where(model.key == key, model.principal == principal,
                                            model.created_at < datetime.now(UTC) - ttl))
        claimed = session.execute(insert(model).values(key=key, principal=principal, request_hash=digest)
                                  .on_conflict_do_nothing().returning(model.key)).first()
        claimed = claimed or session.execute(_takeover(model, key, principal, digest)).first()
        existing = None if claimed else session.scalar(
            select(model).where(model.key == key, model.principal == principal))
    if claimed:
        return None
    if existing.request_hash != digest:
        raise Problem(422, "idempotency-key-reused",
                      "This Idempotency-Key was used with a different request.")
    if existing.status_code is None:
        raise Problem(409, "idempotency-key-in-progress",
                      "A request with this Idempotency-Key is still being processed; retry shortly.",
                      headers={"Retry-After": "1"})
    response = current_app.response_class(json.dumps(_opened(existing.response_body, key, principal)),
                                          status=existing.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _takeover(model, key, principal, digest):
    """Claim again a record of the same request left in progress longer than its lease (by the database's clock,
    the one `created_at` was written in); one repeat wins it, the others see it in progress."""
    lease = func.make_interval(0, 0, 0, 0, 0, 0, float(current_app.config["IDEMPOTENCY_LEASE_SECONDS"]))
    return (update(model).where(model.key == key, model.principal == principal, model.request_hash == digest,
                                model.status_code.is_(None), model.created_at < func.now() - lease)
            .values(created_at=func.now()).returning(model.key))


STORE_ATTEMPTS, STORE_BACKOFF = 5, 0.1  # about three seconds in all: a failover's blip, not an outage


def _store_committed(model, transaction, key, principal, response: Response) -> None:
    """Store a committed answer, retrying transient database errors; when it still cannot be stored the caller
    gets the answer anyway (see the module's docstring for what a repeat then sees)."""
    for attempt in range(STORE_ATTEMPTS):
        try:
            return _store(model, transaction, key, principal, response)
        except TRANSIENT_ERRORS as exc:
            if attempt == STORE_ATTEMPTS - 1:
                log.error("the answer for Idempotency-Key %r of %s committed but could not be stored: %s",
                          key, principal, exc)
                return None
            time.sleep(STORE_BACKOFF * 2 ** attempt)


def _store(model, transaction, key, principal, response: Response) -> None:
    """Keep the answer for replays, sealed under the data keys: some answers carry a secret shown once (a new
    API key, a tenant's first key), and a database dump or backup of the next 24 hours must not reveal it."""
    body = response.get_json(silent=True)
    try:
        body = {_SEALED: crypto.keyring().seal_json(body, _context(key, principal))}
    except crypto.KeyringError:  # no data keys configured (a bare development setup): kept as it is
        pass
    with transaction() as session:
        record = session.get(model, (key, principal))
        record.status_code, record.response_body = response.status_code, body


_SEALED = "sealed"


def _context(key: str, principal: str) -> str:
    return f"idempotency:{principal}:{key}"  # a sealed answer opens only for its own key and caller


def _opened(body, key: str, principal: str):
    if not (isinstance(body, dict) and set(body) == {_SEALED}):
        return body  # kept unsealed (no data keys at the time)
    try:
        return crypto.keyring().open_json(body[_SEALED], _context(key, principal))
    except (crypto.KeyringError, crypto.DecryptionFailed):
        raise Problem(409, "idempotency-record-unreadable",
                      "The answer kept for this Idempotency-Key cannot be read (its data key is gone); "
                      "use a new key.") from None


def _release(model, transaction, key, principal) -> None:
    with transaction() as session:
        session.execute(delete(model).where(model.key == key, model.principal == principal))


class JsonBoolean(ma.fields.Boolean):
    """A boolean in a JSON body: true or false only (marshmallow would also take "yes", 1, "on" and 0), as the
    spec says."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class JsonInteger(ma.fields.Integer):
    """An integer in a JSON body: a number, never a numeric string or a boolean."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)
