"""Who is acting: passed by entry points into services so the audit log can say who did what."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    type: str  # api_key | user | staff | system
    id: str
    request_id: str | None = None


SYSTEM = Actor(type="system", id="zixly")
