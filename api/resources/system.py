"""Liveness and readiness; which dependencies are up is told only to operators (`api.operators`)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api import operators
from api.auth import PUBLIC, access
from api.problems import Problem
from core.platform import health

blp = Blueprint("system", __name__, url_prefix="/", description="Health and readiness.")


class HealthSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@blp.route("health")
class Health(MethodView):
    @access(PUBLIC)
    @blp.response(200, HealthSchema)
    def get(self):
        """Liveness: the process answers."""
        return {"status": "ok", "checks": {}}


@blp.route("ready")
class Ready(MethodView):
    @access(PUBLIC)
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, description="A dependency is down. Only with the metrics token or a staff bearer "
                                       "token does the problem name it (`checks`, `failing`).")
    def get(self):
        """Readiness: the catalog database, Redis and every shard answer. The public learns only ready or not;
        the metrics token or a staff bearer token (as `Authorization: Bearer …`) also shows each dependency."""
        checks = health.check_dependencies()
        failing = sorted(name for name, state in checks.items() if state != "ok")
        detailed = operators.may_see_details()
        if failing:
            if not detailed:
                raise Problem(503, "not-ready", "Not ready.", title="Service Unavailable")
            raise Problem(503, "not-ready", f"Not ready: {', '.join(failing)} unavailable.",
                          title="Service Unavailable", checks=checks, failing=failing)
        return {"status": "ok", "checks": checks if detailed else {}}
