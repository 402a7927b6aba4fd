"""Per-tenant workflow settings: enabled, which connections it binds (by role), field mappings, schedule."""
from __future__ import annotations

from datetime import UTC, datetime

import marshmallow as ma

from core.connections import store
from core.platform import audit
from core.platform.actors import Actor
from core.platform.errors import Invalid, NotFound
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from core.workflows.schedule import next_run
from tenancy.db import tenant_session, tenant_transaction

MIN_SCHEDULE, MAX_SCHEDULE = 60, 86400


class WorkflowNotFound(NotFound):
    code = "workflow-not-found"


class InvalidWorkflowSettings(Invalid):
    code = "invalid-workflow-settings"


def _module(name: str):
    module = WORKFLOWS.get(name)
    if module is None:
        raise WorkflowNotFound(f"no workflow {name!r}; known: {', '.join(sorted(WORKFLOWS))}")
    return module


def _scheduled(module) -> bool:
    return getattr(module, "TRIGGER", None) is None


def _view(module, setting: WorkflowSetting | None) -> dict:
    mappings = dict(setting.mappings or {}) if setting else {}
    try:
        effective = module.Mappings().load(mappings)
    except ma.ValidationError:  # required mappings not set yet: show what is stored
        effective = mappings
    trigger = getattr(module, "TRIGGER", None)
    return {
        "name": module.NAME, "description": module.DESCRIPTION, "roles": dict(getattr(module, "ROLES", {})),
        "trigger": None if trigger is None else {"provider": trigger["provider"],
                                                 "event_types": sorted(trigger["event_types"])},
        "scheduled": _scheduled(module),
        "enabled": bool(setting and setting.enabled),
        "connections": {k: str(v) for k, v in ((setting.connections or {}) if setting else {}).items()},
        "mappings": effective,
        "event_types": list(setting.event_types or []) if setting else [],
        "schedule_seconds": setting.schedule_seconds if setting else None,
        "next_run_at": setting.next_run_at if setting else None,
        "max_attempts": setting.max_attempts if setting else 4,
        "updated_at": setting.updated_at if setting else None,
    }


def list_workflows() -> list[dict]:
    with tenant_session() as session:
        settings = {s.name: s for s in session.query(WorkflowSetting).all()}
    return [_view(module, settings.get(name)) for name, module in sorted(WORKFLOWS.items())]


def get_workflow(name: str) -> dict:
    module = _module(name)
    with tenant_session() as session:
        return _view(module, session.get(WorkflowSetting, name))


def _check_connections(module, bound: dict) -> dict:
    roles = getattr(module, "ROLES", {})
    errors, checked = {}, {}
    for role, conn_id in bound.items():
        if role not in roles:
            errors[role] = f"this workflow has no {role!r} role (roles: {', '.join(roles) or 'none'})"
            continue
        try:
            conn = store.get_connection(conn_id)
        except NotFound:
            errors[role] = f"no connection {conn_id}"
            continue
        if conn.provider != roles[role]:
            errors[role] = f"the {role} connection must be a {roles[role]} connection, not {conn.provider}"
            continue
        checked[role] = str(conn.id)
    if errors:
        raise InvalidWorkflowSettings("connections: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return checked


def put_workflow(name: str, data: dict, *, actor: Actor) -> dict:
    """Replace the given settings (fields left out keep their value); enabling needs every role bound and the
    workflow's required mappings set."""
    module = _module(name)
    with tenant_transaction() as session:
        setting = session.get(WorkflowSetting, name, with_for_update=True)
        if setting is None:
            setting = WorkflowSetting(name=name, enabled=False, event_types=[], max_attempts=4, connections={},
                                      mappings={})
            session.add(setting)
        bound = dict(setting.connections or {})
        if "connections" in data:
            bound = _check_connections(module, data["connections"])
        mappings = dict(setting.mappings or {})
        if "mappings" in data:
            mappings = data["mappings"]
        enabled = data.get("enabled", setting.enabled)
        try:
            module.Mappings().load(mappings)
        except ma.ValidationError as exc:
            if enabled or "mappings" in data:
                raise InvalidWorkflowSettings(f"mappings: {exc.messages}") from None
        if enabled:
            missing = [role for role in getattr(module, "ROLES", {}) if role not in bound]
            if missing:
                raise InvalidWorkflowSettings(f"bind the {', '.join(missing)} connection(s) before enabling "
                                              "this workflow")
        if "event_types" in data:
            if module.TRIGGER is None or module.TRIGGER["provider"] != "*":
                raise InvalidWorkflowSettings("event_types can only be chosen for the echo workflow; others have "
                                              "fixed triggers")
            setting.event_types = list(data["event_types"])
        schedule = setting.schedule_seconds
        if _scheduled(module):
            schedule = data.get("schedule_seconds", schedule) or getattr(module, "DEFAULT_SCHEDULE", 900)
            if not MIN_SCHEDULE <= schedule <= MAX_SCHEDULE:
                raise InvalidWorkflowSettings(f"schedule_seconds must be between {MIN_SCHEDULE} and {MAX_SCHEDULE}")
        elif data.get("schedule_seconds") is not None:
            raise InvalidWorkflowSettings("this workflow runs on events, not on a schedule")
        if _scheduled(module) and enabled and (not setting.enabled or schedule != setting.schedule_seconds
                                               or setting.next_run_at is None):
            setting.next_run_at = next_run(schedule, first=True)
        setting.enabled, setting.connections, setting.mappings = enabled, bound, mappings
        setting.schedule_seconds = schedule if _scheduled(module) else None
        if "max_attempts" in data:
            setting.max_attempts = data["max_attempts"]
        setting.updated_at = datetime.now(UTC)
    audit.record_now(actor=actor, action="workflow.updated", target_type="workflow", target_id=name,
                     details={"fields": sorted(data), "enabled": enabled})
    return get_workflow(name)
