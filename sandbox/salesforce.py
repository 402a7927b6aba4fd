"""Salesforce (a Revenova org): web-server OAuth flow with signed identity, REST sObjects, upsert, SOQL paging."""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import secrets
import time
from datetime import datetime, timedelta, timezone

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Grant
from sandbox.provider import Provider, json_response, route

ORG_ID = "00D5g000004XyZ1EAK"
USER_ID = "0055g00000AbCdEAAV"
INSTANCE_HOST = "zixly-demo.my.salesforce.com"
INVOICE = "rtms__CustomerInvoice__c"
EXTERNAL_ID = "Zixly_Invoice_Key__c"
DAILY_MAX = 15000
_LOGIN = r"(?P<login>(?:login|test)\.salesforce\.com|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.my\.salesforce\.com)"
_DATA = re.escape(INSTANCE_HOST) + r"/services/data/(?P<version>v\d+\.\d)"
_SOQL = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
                   r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
                   re.IGNORECASE | re.DOTALL)
_CONDITION = re.compile(r"^(?P<field>\w+)\s*(?P<op>=|!=|>=|<=|>|<)\s*(?P<value>.+)$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)$")
FIELDS = ("Id", "Name", "rtms__Invoice_Date__c", "rtms__Total__c", "rtms__Status__c", EXTERNAL_ID,
          "CreatedDate", "LastModifiedDate", "SystemModstamp")


def sf_datetime(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _parse_datetime(value: str) -> datetime:
    value = value.replace("Z", "+0000")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(value)


def _errors(status: int, code: str, message: str) -> Response:
    return json_response([{"message": message, "errorCode": code}], status)


class Salesforce(Provider):
    name = "salesforce"
    access_ttl = 7200.0           # the org's session timeout; token responses carry no expires_in
    rotate_refresh = False        # refresh token rotation is an opt-in connected-app setting
    query_batch_size = 2000
    routes = (
        route("GET", _LOGIN + r"/services/oauth2/authorize", "authorize", api=False),
        route("POST", _LOGIN + r"/services/oauth2/token", "token", api=False),
        route("POST", _LOGIN + r"/services/oauth2/revoke", "revoke_token", api=False),
        route("GET", _DATA + r"/limits", "limits"),
        route("GET", _DATA + r"/query", "query"),
        route("GET", _DATA + r"/query/(?P<locator>[\w]+)-(?P<offset>\d+)", "query_more"),
        route("GET", _DATA + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>\w+)", "get_record"),
        route("PATCH", _DATA + r"/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/(?P<value>[^/]+)", "upsert"),
    )

    def seed(self) -> None:
        self.records: dict[str, dict[str, dict]] = {INVOICE: {}}
        self.subscriptions: dict[str, str] = {}  # outbound webhook target URL -> the secret its subscriber gave
        self.cursors: dict[str, list[dict]] = {}
        self.ids = itertools.count(10001)
        self.used = 0
        start = datetime.now(timezone.utc) - timedelta(days=10)
        for n in range(1, 6):
            self.create(INVOICE, {"Name": f"INV-{n:06}", "rtms__Invoice_Date__c": (start + timedelta(days=n)).date()
                                  .isoformat(), "rtms__Total__c": 250.0 * n, "rtms__Status__c": "Open",
                                  EXTERNAL_ID: f"zx-{n}"}, modified=start + timedelta(days=n))

    def create(self, sobject: str, fields: dict, modified: datetime | None = None) -> dict:
        record_id = f"a0B5g00000{next(self.ids):05}AAA"
        stamp = sf_datetime(modified or datetime.now(timezone.utc))
        record = {field: None for field in FIELDS}
        record.update(fields, Id=record_id, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        self.records[sobject][record_id] = record
        return record

    # --- OAuth shapes -------------------------------------------------------------------------------------------
    def consent(self, request: Request, host: str, app: App) -> dict:
        return {"org_id": ORG_ID, "user_id": USER_ID, "login": host}

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        identity = f"https://{grant.account['login']}/id/{ORG_ID}/{USER_ID}"
        issued_at = str(int(time.time() * 1000))
        signature = base64.b64encode(hmac.new(app.client_secret.encode(), f"{identity}{issued_at}".encode(),
                                              hashlib.sha256).digest()).decode()
        body = {"access_token": f"{ORG_ID}!{access}", "signature": signature, "scope": grant.scope,
                "instance_url": f"https://{INSTANCE_HOST}", "id": identity, "token_type": "Bearer",
                "issued_at": issued_at}
        if refresh:
            body["refresh_token"] = refresh
        # The access token carries the org id prefix, as Salesforce session ids do.
        self.authority.access[body["access_token"]] = self.authority.access.pop(access)
        return body

    def oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        return json_response({"error": error, "error_description": description}, status)

    def refresh_refused(self) -> Response:
        return self.oauth_error("invalid_grant", "expired access/refresh token")

    def revoke_token(self, request: Request, **_) -> Response:
        if not self.authority.revoke(self.name, request.form.get("token") or ""):
            return self.oauth_error("invalid_token", "invalid token")
        return Response(status=200)

    def unauthorized(self) -> Response:
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def rate_limited(self, retry_after: float) -> Response:
        # Salesforce answers an exhausted daily allocation with 403, not 429, and no Retry-After.
        response = _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        response.headers["Sforce-Limit-Info"] = f"api-usage={DAILY_MAX}/{DAILY_MAX}"
        return response

    def quota_headers(self, grant: Grant | None) -> dict[str, str]:
        self.used += 1
        return {"Sforce-Limit-Info": f"api-usage={self.used}/{DAILY_MAX}"}

    # --- REST API -----------------------------------------------------------------------------------------------
    def limits(self, request: Request, grant: Grant, **_) -> Response:
        return json_response({"DailyApiRequests": {"Max": DAILY_MAX, "Remaining": DAILY_MAX - self.used - 1},
                              "DataStorageMB": {"Max": 5, "Remaining": 5}})

    def get_record(self, request: Request, grant: Grant, version: str, sobject: str, record_id: str,
                   **_) -> Response:
        record = self.records.get(sobject, {}).get(record_id)
        if record is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        fields = [f for f in request.args.get("fields", "").split(",") if f] or list(FIELDS)
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject}")
        return json_response(self._shape(version, sobject, record, fields))

    def upsert(self, request: Request, grant: Grant, version: str, sobject: str, field: str, value: str,
               **_) -> Response:
        table = self.records.get(sobject)
        if table is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if field not in (EXTERNAL_ID, "Id"):
            return _errors(400, "INVALID_FIELD", f"Provided external ID field does not exist or is not accessible: "
                           f"{field}")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        unknown = [k for k in body if k not in FIELDS or k in ("Id", "CreatedDate", "LastModifiedDate")]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject}")
        matches = [r for r in table.values() if str(r.get(field)) == value]
        if len(matches) > 1:
            return json_response([r["Id"] for r in matches], 300)
        if matches:
            stamp = sf_datetime(datetime.now(timezone.utc))
            matches[0].update(body, LastModifiedDate=stamp, SystemModstamp=stamp)
            return json_response({"id": matches[0]["Id"], "success": True, "errors": [], "created": False}, 200)
        record = self.create(sobject, {**body, field: value} if field != "Id" else body)
        return json_response({"id": record["Id"], "success": True, "errors": [], "created": True}, 201)

    def query(self, request: Request, grant: Grant, version: str, **_) -> Response:
        try:
            records = self._run(request.args.get("q") or "")
        except ValueError as exc:
            return _errors(400, "MALFORMED_QUERY", str(exc))
        shaped = [self._shape(version, INVOICE, r, list(r)) for r in records]
        locator = f"01g{secrets.token_hex(6)}"
        self.cursors[locator] = shaped
        return self._page(version, locator, 0)

    def query_more(self, request: Request, grant: Grant, version: str, locator: str, offset: str,
                   **_) -> Response:
        if locator not in self.cursors:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, locator, int(offset))

    def _page(self, version: str, locator: str, offset: int) -> Response:
        rows = self.cursors[locator]
        end = offset + self.query_batch_size
        body = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[offset:end]}
        if end < len(rows):
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        return json_response(body)

    def _run(self, soql: str) -> list[dict]:
        parsed = _SOQL.match(soql)
        if not parsed:
            raise ValueError("unexpected token in SOQL")
        if parsed["sobject"] not in self.records:
            raise ValueError(f"sObject type '{parsed['sobject']}' is not supported.")
        fields = [f.strip() for f in parsed["fields"].split(",")]
        if any(f not in FIELDS for f in fields):
            raise ValueError(f"No such column on entity '{parsed['sobject']}'")
        conditions = [_condition(c) for c in re.split(r"\s+AND\s+", parsed["where"], flags=re.IGNORECASE)] \
            if parsed["where"] else []
        rows = [r for r in self.records[parsed["sobject"]].values() if all(test(r) for test in conditions)]
        if parsed["order"]:
            rows.sort(key=lambda r: (r.get(parsed["order"]) is None, str(r.get(parsed["order"]))),
                      reverse=(parsed["dir"] or "").upper() == "DESC")
        if parsed["limit"]:
            rows = rows[: int(parsed["limit"])]
        return [{f: r.get(f) for f in fields} for r in rows]

    def _shape(self, version: str, sobject: str, record: dict, fields: list[str]) -> dict:
        shaped = {"attributes": {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/"
                                                         f"{record.get('Id') or ''}"}}
        shaped.update({f: record.get(f) for f in fields if f != "attributes"})
        return shaped


def _condition(text: str):
    parsed = _CONDITION.match(text.strip())
    if not parsed or parsed["field"] not in FIELDS:
        raise ValueError(f"unexpected condition: {text[:40]}")
    field, op, raw = parsed["field"], parsed["op"], parsed["value"].strip()
    if _DATETIME.match(raw):
        wanted, convert = _parse_datetime(raw), lambda v: _parse_datetime(v) if v else None
    elif raw.startswith("'") and raw.endswith("'"):
        wanted, convert = raw[1:-1], lambda v: v
    else:
        try:
            wanted, convert = float(raw), lambda v: float(v) if v is not None else None
        except ValueError:
            raise ValueError(f"unexpected value: {raw[:40]}") from None
    compare = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
               "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}[op]

    def test(record: dict) -> bool:
        value = convert(record.get(field))
        return value is not None and compare(value, wanted)
    return test
