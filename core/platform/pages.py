"""Listing rows a page at a time: newest first by (timestamp, id), a unique order that an index serves, and the
next page continuing strictly after the last row of the previous one (a keyset, not an offset, so rows added
meanwhile neither repeat nor hide one). Filters: equality on the columns given a value, and a time range."""
from __future__ import annotations

from sqlalchemy import Select, tuple_


def newest_first(query: Select, stamp, ident, *, limit: int, before: tuple | None = None) -> Select:
    """`limit` rows of `query`, newest first, after the keyset `before` (the previous page's last (stamp, id))."""
    if before:
        query = query.where(tuple_(stamp, ident) < tuple_(*before))
    return query.order_by(stamp.desc(), ident.desc()).limit(limit)


def matching(query: Select, *pairs) -> Select:
    """Rows whose column equals the value, for each (column, value) given a value (a list or tuple: any of them)."""
    for column, value in pairs:
        if isinstance(value, (list, tuple)):
            query = query.where(column.in_(value))
        elif value is not None:
            query = query.where(column == value)
    return query


def between(query: Select, column, since=None, until=None) -> Select:
    """Rows with `since` <= column < `until`, each bound when given."""
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query
