"""Workflows: enable, bind connections by role, and settings whose form comes from the API's own schemas
(WorkflowPutSchema and each workflow's Mappings), validated by them again on the way in."""
from __future__ import annotations

import uuid

import marshmallow as ma

from flask import request

from api.resources.workflows import WorkflowPutSchema
from console import forms, guard
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from core.connections import store
from core.workflows import settings as workflow_settings
from core.workflows.registry import WORKFLOWS
from core.workflows.settings import InvalidWorkflowSettings, WorkflowNotFound

MAPPING_PREFIX = "mapping_"
CONNECTION_PREFIX = "connection_"


@blp.get("/workflows")
@requires("VIEWER")
def workflows():
    return render("workflows.html", workflows=workflow_settings.list_workflows())


def _setting_names(workflow: dict) -> list[str]:
    return ["enabled", "max_attempts"] + (["schedule_seconds"] if workflow["scheduled"] else [])


def _chooses_event_types(workflow: dict) -> bool:
    """Only a workflow triggered by any provider (echo) has its event types chosen per tenant."""
    return bool(workflow["trigger"]) and workflow["trigger"]["provider"] == "*"


def _event_types(workflow: dict, form) -> tuple[dict, dict]:
    if not _chooses_event_types(workflow):
        return {}, {}
    chosen = [t.strip() for t in form.get("event_types", "").split(",") if t.strip()]
    field = WorkflowPutSchema().fields["event_types"]
    try:
        return {"event_types": field.deserialize(chosen)}, {}
    except ma.ValidationError as exc:
        return {}, {"event_types": " ".join(map(str, exc.messages)) if isinstance(exc.messages, list)
                    else str(exc.messages)}


def _form_page(name: str, *, errors=None, values=None, status=200):
    workflow = workflow_settings.get_workflow(name)
    module = WORKFLOWS[name]
    candidates = {role: [c for c in store.list_connections(limit=200, provider=provider) if c.status == "active"]
                  for role, provider in workflow["roles"].items()}
    values = values if values is not None else {
        **{n: workflow[n] for n in _setting_names(workflow)},
        **{MAPPING_PREFIX + k: v for k, v in workflow["mappings"].items()},
        **{CONNECTION_PREFIX + k: v for k, v in workflow["connections"].items()},
        "event_types": ", ".join(workflow["event_types"])}
    return render("workflow.html", status=status, workflow=workflow, candidates=candidates,
                  settings_fields=forms.fields_of(WorkflowPutSchema(), _setting_names(workflow)),
                  mapping_fields=forms.fields_of(module.Mappings()), mapping_prefix=MAPPING_PREFIX,
                  connection_prefix=CONNECTION_PREFIX, errors=errors or {}, values=values,
                  chooses_event_types=_chooses_event_types(workflow))


@blp.get("/workflows/<name>")
@requires("VIEWER")
def workflow(name):
    if name not in WORKFLOWS:
        raise WorkflowNotFound(f"no workflow {name!r}")
    return _form_page(name)


def _bound_connections(workflow: dict, form) -> tuple[dict, dict]:
    bound, errors = {}, {}
    for role in workflow["roles"]:
        value = form.get(CONNECTION_PREFIX + role, "").strip()
        if not value:
            continue
        try:
            bound[role] = str(uuid.UUID(value))
        except ValueError:
            errors[CONNECTION_PREFIX + role] = "Choose a connection from the list."
    return bound, errors


@blp.post("/workflows/<name>")
@requires("ADMIN")
def save_workflow(name):
    if name not in WORKFLOWS:
        raise WorkflowNotFound(f"no workflow {name!r}")
    workflow = workflow_settings.get_workflow(name)
    data, errors = forms.parse(WorkflowPutSchema(), request.form, _setting_names(workflow))
    mappings, mapping_errors = forms.parse(WORKFLOWS[name].Mappings(), request.form, prefix=MAPPING_PREFIX)
    bound, binding_errors = _bound_connections(workflow, request.form)
    event_types, type_errors = _event_types(workflow, request.form)
    errors |= {MAPPING_PREFIX + k: v for k, v in mapping_errors.items()} | binding_errors | type_errors
    if errors:
        return _form_page(name, errors=errors, values=request.form, status=422)
    data |= {"mappings": mappings, "connections": bound, **event_types}
    try:
        workflow_settings.put_workflow(name, data, actor=guard.actor())
    except InvalidWorkflowSettings as exc:
        return _form_page(name, errors={"_schema": str(exc)}, values=request.form, status=422)
    return done(f"Saved {name}" + (" (enabled)." if data.get("enabled") else " (disabled)."),
                "console_tenant.workflow", name=name)
