"""JSON request bodies are bounded in nesting before anything parses them.

Invariant: a JSON body nesting deeper than `MAX_JSON_DEPTH` arrays/objects is refused (400 `json-too-deep`)
before authentication and parsing, so no parser, schema, serializer or database adapter down the line can
hit Python's recursion limit (a 500) on hostile input. The scan is linear and runs in C for the common case.
"""
from __future__ import annotations

import re

MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included: brackets inside don't count
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body`, read as JSON, nests more than `limit` levels (malformed JSON is left to the parser)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPEN else -1
        if depth > limit:
            return True
    return False
