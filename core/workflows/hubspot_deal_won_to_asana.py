"""`hubspot-deal-won-to-asana`: a HubSpot deal moves to `closedwon` → an onboarding task in the configured
Asana project."""
from __future__ import annotations

import marshmallow as ma

from core.platform.errors import PermanentError
from core.platform.validation import FullMatch

NAME = "hubspot-deal-won-to-asana"
DESCRIPTION = "A won HubSpot deal creates an onboarding task in an Asana project."
ROLES = {"source": "hubspot", "target": "asana"}
TRIGGER = {"provider": "hubspot", "event_types": {"deal.propertyChange"}}


class Mappings(ma.Schema):
    project_gid = ma.fields.String(required=True, validate=FullMatch(r"^\d{1,32}$"))
    won_stage = ma.fields.String(load_default="closedwon", validate=ma.validate.Length(min=1, max=100))
    task_name = ma.fields.String(load_default="Onboard {dealname}", validate=ma.validate.Length(min=1, max=500))


def matches(setting, event_type: str, payload: dict) -> bool:
    won = (setting.mappings or {}).get("won_stage", "closedwon")
    return payload.get("propertyName") == "dealstage" and payload.get("propertyValue") == won


def run(ctx, data: dict) -> dict:
    event = data.get("event") or {}
    deal_id = event.get("objectId") or data.get("deal_id")
    if not deal_id:
        raise PermanentError("the event names no deal")
    project = ctx.mappings.get("project_gid")
    if not project:
        raise PermanentError("set mappings.project_gid for this workflow")
    deal = ctx.step("read-deal", lambda: ctx.call("source", "get_deal", str(deal_id),
                                                  ("dealname", "amount", "dealstage")))
    props = deal.get("properties") or {}
    ctx.related("hubspot", "deal", deal_id, "read", dealstage=props.get("dealstage"))
    name = ctx.mappings.get("task_name", "Onboard {dealname}").format(dealname=props.get("dealname", deal_id))
    task = ctx.deliver("create-task", "target", record_key=f"deal:{deal_id}", operation="create_task",
                       args={"name": name, "notes": f"HubSpot deal {deal_id} won ({props.get('amount')}).",
                             "projects": [project]})
    ctx.related("asana", "task", task.get("gid"), "created", project=project)
    return {"deal": deal_id, "task": task.get("gid")}
