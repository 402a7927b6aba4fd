"""Schemathesis over every operation of the committed spec, against the API as production serves it (gunicorn
with api/gunicorn_conf.py and its worker class, tests/contract/gunicorn_server.py): as a real tenant ADMIN (API
key), and as staff for staff operations. Every check schemathesis has runs (its defaults, with
negative_data_rejection and response_headers_conformance among them; `use_after_free` aside, see CONFIG): no 5xx,
every response conforms to the spec — status code, content type, headers and body; schema-valid requests are
accepted and invalid ones rejected. Nothing here names an operation: what is fuzzed is what the spec has.

Bounded for CI (ZIXLY_FUZZ_EXAMPLES examples per operation, ZIXLY_FUZZ_SCENARIOS stateful scenarios, 30 s per
request) and derandomized, so a run is repeatable; `make fuzz` runs a longer, random campaign (ZIXLY_FUZZ_RANDOM=1).
"""
import os
import re
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.core.failures import FailureGroup

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
EXAMPLES = int(os.environ.get("ZIXLY_FUZZ_EXAMPLES", "50"))
SCENARIOS = int(os.environ.get("ZIXLY_FUZZ_SCENARIOS", "30"))
RANDOM = os.environ.get("ZIXLY_FUZZ_RANDOM") == "1"
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)
# 422 answers that name something which does not exist (like a 404 for a reference in the body): a schema-valid
# request may get them. Any other 422 to a schema-valid request means the spec and the code disagree.
UNKNOWN_REFERENCE = {"unknown-plan", "unknown-shard"}
# 422s that depend on something a JSON schema cannot say: the provider's own option rules (a Shopify shop must be
# x.myshopify.com and resolve to a public address), which provider apps this deployment has, which connections and
# mappings a tenant has (workflow settings), whether a webhook-only connection takes options, and where a
# subscription's URL resolves.
STATE_DEPENDENT = {"invalid-connection-options", "provider-not-configured", "invalid-workflow-settings",
                   # a subscription URL must resolve to public addresses (and be https where the deployment says
                   # so); its connection filters must name the tenant's connections
                   "unsafe-subscription-url", "unknown-connection"}

# Checks that are not run, and why. Everything else schemathesis registers runs (test_every_check_is_enabled).
DISABLED_CHECKS = {"use_after_free"}

CONFIG = schemathesis.Config.from_dict({
    "request-timeout": 30,  # a request the server never answers fails the test instead of hanging the suite
    # PostgreSQL cannot store NUL in text (U+0000): such input gets 422 `unstorable-value`, shown by
    # test_no_server_errors.py; here it would only hide the rest.
    # Credentials are the real ones, sent by `prepare` (schemathesis still checks a request without them is
    # refused). Unknown query parameters are ignored, as the spec's description says, so none are added.
    "generation": {"max-examples": EXAMPLES, "deterministic": not RANDOM, "allow-x00": False,
                   "with-security-parameters": False, "allow-extra-parameters": False},
    # A cursor is opaque: any string fits its schema but only one the API issued is accepted (400 otherwise).
    # 422 is judged by `schema_valid_input_is_not_invalid` below, by its problem type. 414 and 431 are the server's
    # request-line and header limits (api/gunicorn_conf.py, in bytes once percent-encoded, over all parameters
    # together: nothing a JSON schema's maxLength can say), documented on every operation.
    # DELETE archives a tenant (restorable, still readable with status `archived`) and revokes a key (still
    # listed with include_revoked): by design nothing deleted here becomes a 404, so `use_after_free` is off.
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 414, 422,
                                                                  429, 431]},
               # schemathesis's own list of rejections, with the server layer's (413 body, 414 line, 431 headers);
               # a 5xx is never a rejection (`not_a_server_error`)
               "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 414, 415,
                                                                 422, 428, 429, 431]},
               **{name: {"enabled": False} for name in DISABLED_CHECKS}},
})
schema = schemathesis.openapi.from_path(str(SPEC_FILE), config=CONFIG)  # the committed contract itself


def test_every_check_is_enabled():
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    names = {check.__name__ for check in CHECKS.get_all()}
    assert {"negative_data_rejection", "response_headers_conformance", "positive_data_acceptance"} <= names
    assert {name for name in names if not CONFIG.projects.default.checks.get_by_name(name=name).enabled} \
        == DISABLED_CHECKS


@schemathesis.check
def schema_valid_input_is_not_invalid(ctx, response, case):
    from schemathesis.generation import GenerationMode

    if response.status_code != 422 or case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return None
    kind = (response.json() or {}).get("type", "").rsplit("/", 1)[-1]
    if kind not in UNKNOWN_REFERENCE | STATE_DEPENDENT:
        raise AssertionError(f"a schema-valid request got 422 {kind}: {response.text[:300]}")
    return None


@pytest.fixture(scope="module")
def fuzz_auth(app, settings, jwt_keys):
    """A real tenant (enterprise plan, so the fuzz is not mostly 429s) and a staff token."""
    from api.tokens import mint
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from tests.conftest import unique_slug

    tenant, key, secret = tenants.create_tenant(slug=unique_slug("fuzz"), name="Fuzz Ltd", plan="enterprise",
                                                actor=Actor("staff", "pytest"))
    staff = mint(jwt_keys / "jwt-private.pem", issuer=settings.jwt_issuer, audience=settings.jwt_staff_audience,
                 subject="staff-fuzz", staff=True, ttl=3600)
    # Staff operations found in list answers must not archive the fuzzer or the other tests' tenants.
    existing = {t.slug for t in tenants.list_tenants(limit=100_000, after_id=None, status=None)}
    return {"tenant": {"X-API-Key": secret}, "staff": {"Authorization": f"Bearer {staff}"},
            "protected": existing | {str(key.id)}}


_VALID_KEY = re.compile(r"[ -~]{1,255}")


def prepare(case, auth: dict) -> dict:
    """The caller's credentials. A valid Idempotency-Key is made unique, since hypothesis repeats short values and a
    repeat with another body is rightly a 422 (an invalid key is left alone, to be rejected)."""
    for name, value in (case.path_parameters or {}).items():
        if value in auth["protected"]:  # never archive a tenant or revoke a key the fuzz did not create
            case.path_parameters[name] = "not-made-by-the-fuzz"
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and _VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    access = case.operation.definition.raw.get("x-zixly-access")
    return {} if access == "public" else dict(auth["staff" if access == "staff" else "tenant"])


@schema.parametrize()
@SETTINGS
def test_every_operation_conforms(case, live_server, fuzz_auth):
    case.call_and_validate(base_url=live_server, headers=prepare(case, fuzz_auth),
                           additional_checks=[schema_valid_input_is_not_invalid])


def test_create_read_delete_sequences_conform(live_server, fuzz_auth):
    """Stateful: follow the spec's links (create → get / cancel / retry / delete) with real ids."""
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from tests.conftest import unique_slug

    failures = []

    class Flow(schema.as_state_machine()):
        def setup(self):
            # Each scenario starts from a tenant of its own: what a step answers depends only on the scenario's
            # own steps, never on what earlier scenarios left (hypothesis requires that to replay a prefix).
            tenant, key, secret = tenants.create_tenant(slug=unique_slug("fuzzflow"), name="Fuzz Flow Ltd",
                                                        plan="enterprise", actor=Actor("staff", "pytest"))
            self.auth = {**fuzz_auth, "tenant": {"X-API-Key": secret},
                         "protected": fuzz_auth["protected"] | {tenant.slug, str(key.id)}}

        def get_call_kwargs(self, case):
            return {"base_url": live_server, "headers": prepare(case, self.auth)}

        def validate_response(self, response, case, **kwargs):
            # Collected, not raised: hypothesis would replay the scenario to shrink it, and against a database
            # that has moved on the replay cannot be the same (FlakyStrategyDefinition hides the finding).
            try:
                super().validate_response(response, case, **kwargs)
            except (AssertionError, FailureGroup) as exc:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}")

    # Generation only: no shrinking, whose replays against a database that has moved on cannot match the first run
    # (hypothesis would then report FlakyStrategyDefinition instead of what failed).
    Flow.run(settings=settings(max_examples=SCENARIOS, stateful_step_count=6, deadline=None,
                               derandomize=not RANDOM, database=None, suppress_health_check=list(HealthCheck),
                               phases=[Phase.explicit, Phase.generate]))
    assert not failures, "\n\n".join(failures[:5])
