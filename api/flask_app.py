"""The Flask class both of Zixly's WSGI apps are made of (the API, api/app.py, and the hook path, api/hook_app.py)."""
from __future__ import annotations

from flask import Flask


class ZixlyFlask(Flask):
    """Flask, less its per-call check for `async def` views and hooks: every request ran it for each of its ~20
    hooks, some 140 Python calls of a webhook's 2,200 (bench.hook_profile). Zixly has no async views or hooks;
    one added would fail loudly (a coroutine is not a response)."""

    def ensure_sync(self, func):
        return func
