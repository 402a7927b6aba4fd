"""The console's blueprints, one per area; the view modules attach their routes to them."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint

from console import errors, guard

HERE = Path(__file__).parent

assets = Blueprint("console_assets", __name__, url_prefix="/console", static_folder=str(HERE / "static"),
                   static_url_path="/static", template_folder=str(HERE / "templates"))
auth = Blueprint("console_auth", __name__, url_prefix="/console")
tenant = Blueprint("console_tenant", __name__, url_prefix="/console")
staff = Blueprint("console_staff", __name__, url_prefix="/console/staff")

tenant.before_request(guard.tenant_area)
tenant.teardown_request(guard.clear_tenant)
staff.before_request(guard.staff_area)
ALL = (assets, auth, tenant, staff)

for _blp in ALL:
    _blp.register_error_handler(Exception, errors.handle)
