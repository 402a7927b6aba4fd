"""`echo`: a diagnostics workflow that returns its input.

It exists to check the pipe end to end (webhook → event → job → worker). Its input may ask it to `sleep`
(seconds, at most 30) or to `fail` ("retryable" | "permanent"), so operators can watch retries and failures.
"""
from __future__ import annotations

import time

import marshmallow as ma

from core.platform.errors import PermanentError, RetryableError

NAME = "echo"
DESCRIPTION = "Returns its input; for checking the pipeline end to end."
ROLES: dict = {}
TRIGGER = {"provider": "*", "event_types": {"*"}}  # which events: the tenant's `event_types` setting


class Mappings(ma.Schema):
    pass


def run(ctx, data: dict) -> dict:
    def body():
        if isinstance(data.get("sleep"), (int, float)):
            time.sleep(min(max(float(data["sleep"]), 0.0), 30.0))
        if data.get("fail") == "retryable" and ctx.attempt <= int(data.get("fail_attempts", 99)):
            raise RetryableError("echo was asked to fail (retryable)")
        if data.get("fail") == "permanent":
            raise PermanentError("echo was asked to fail (permanent)")
        return {"echo": data}

    return ctx.step("echo", body)
