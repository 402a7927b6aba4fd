"""Ids from the outside world: a value that is not a UUID names nothing, so it raises the caller's own error
(a not-found for a path id, an invalid for a field) — never a 500, never a query; and reading one row by id."""
from __future__ import annotations

import uuid

from tenancy.db import tenant_session


def parse_uuid(value, error: type[Exception], message: str) -> uuid.UUID:
    """`value` as a UUID (a UUID passes through); otherwise raise `error(message)`."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise error(message) from None


def get_by_id(model, value, error: type[Exception], message: str):
    """The current tenant's `model` row with id `value` (read in its own session, detached); `error(message)`
    when the id is not a UUID or names no row."""
    ident = parse_uuid(value, error, message)
    with tenant_session() as session:
        row = session.get(model, ident)
    if row is None:
        raise error(message)
    return row
