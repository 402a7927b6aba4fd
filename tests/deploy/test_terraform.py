"""terraform/, checked without Terraform (it cannot be installed here): python-hcl2 for module wiring, checkov
for security settings, and the queue/bucket settings compared with core/platform/aws.py."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest

from core.platform import aws
from tests.deploy import compose_checks
from tests.deploy import terraform_checks as tf
from tests.deploy.conftest import ROOT
from tests.deploy.settings_env import LIBRARY_ENV, settings_env_vars
from tests.deploy.test_compose import NOT_YET, _service_params
from zixly_cli.main import main as zixly_cli

MODULES = {"queue", "storage", "secrets", "database", "cache", "compute", "network"}


@pytest.fixture(scope="module")
def configs():
    return tf.load_all()


def config(configs, rel: str) -> tf.Config:
    return configs[(tf.TERRAFORM / rel).resolve()]


def test_every_file_parses_into_seven_modules_and_two_environments(configs):
    names = {p.relative_to(tf.TERRAFORM.resolve()).as_posix() for p in configs}
    assert names == {f"modules/{m}" for m in MODULES} | {"environments/local", "environments/aws"}
    assert set(config(configs, "environments/local").modules) == {"queue", "storage", "secrets"}
    assert {c["source"].rsplit("/", 1)[1] for c in config(configs, "environments/aws").modules.values()} == MODULES


def test_module_calls_pass_required_variables_and_use_real_outputs(configs):
    assert tf.module_call_problems(configs) == []


def test_the_module_check_catches_a_missing_variable_an_unknown_one_and_a_missing_output(configs):
    broken = copy.deepcopy(configs)
    env = config(broken, "environments/aws")
    del env.modules["compute"]["certificate_arn"]
    env.modules["queue"]["visibility_timeout"] = 300  # the variable is visibility_timeout_seconds
    env.blocks.append({"output": [{"x": {"value": "${module.database.endpoint}"}}]})
    env.blocks.append({"output": [{"y": {"value": "${module.dns.zone_id}"}}]})
    assert tf.module_call_problems(broken) == [
        "terraform/environments/aws: module compute: required variable certificate_arn is not passed",
        "terraform/environments/aws: module queue: passes visibility_timeout, which the module does not declare",
        "terraform/environments/aws: uses module.database.endpoint, but ../../modules/database has no output "
        "endpoint",
        "terraform/environments/aws: uses module.dns, which is not called here",
    ]
    env.modules["queue"]["source"] = "../../modules/queues"
    assert "terraform/environments/aws: module queue: source '../../modules/queues' is not a module here" in \
        tf.module_call_problems(broken)


def test_every_variable_is_declared_and_used(configs):
    assert tf.variable_problems(configs) == []


def test_the_variable_check_catches_an_undeclared_and_an_unused_variable(configs):
    broken = copy.deepcopy(configs)
    queue = config(broken, "modules/queue")
    queue.blocks.append({"resource": [{"aws_sqs_queue": {"extra": {"delay_seconds": "${var.delay}"}}}]})
    queue.variables["retention"] = {"type": "${number}"}
    assert tf.variable_problems(broken) == ["terraform/modules/queue: var.delay is not declared",
                                            "terraform/modules/queue: variable retention is declared but never used"]


def _default(cfg: tf.Config, name: str):
    return cfg.variables[name]["default"]


def test_the_queue_module_creates_what_zixly_aws_bootstrap_creates(configs):
    queue = config(configs, "modules/queue")
    providers = _default(queue, "providers_list")
    assert tuple(providers) == aws.OUTBOUND_PROVIDERS
    resources = {name: body for block in queue.blocks for r in block.get("resource", [])
                 for kind, named in r.items() for name, body in named.items()}

    def names(resource):
        return sorted(resources[resource]["name"].replace("${each.key}", p) for p in providers)

    assert names("outbound") == sorted(aws.outbound_queue_name(p) for p in providers)
    assert names("outbound_dlq") == sorted(aws.outbound_dlq_name(p) for p in providers)
    assert resources["notification"]["name"] == aws.NOTIFICATION_QUEUE
    assert resources["notification_dlq"]["name"] == aws.NOTIFICATION_DLQ
    for fifo in ("outbound", "outbound_dlq"):
        body = resources[fifo]
        assert (body["fifo_queue"], body["content_based_deduplication"]) == (True, False)
        assert (body["deduplication_scope"], body["fifo_throughput_limit"]) == ("messageGroup", "perMessageGroupId")
    assert "var.max_receive_count" in resources["outbound"]["redrive_policy"]
    assert _default(queue, "max_receive_count") == aws.MAX_RECEIVE_COUNT
    assert _default(queue, "visibility_timeout_seconds") == aws.OUTBOUND_VISIBILITY_TIMEOUT_SECONDS
    worst = aws.OUTBOUND_CALL_TIMEOUT_SECONDS * aws.OUTBOUND_CALLS_PER_MESSAGE
    assert _default(queue, "worst_handling_seconds") == worst
    assert _default(queue, "notification_visibility_timeout_seconds") == aws.NOTIFICATION_VISIBILITY_TIMEOUT_SECONDS


def test_the_storage_module_keeps_what_zixly_aws_bootstrap_keeps(configs):
    storage = config(configs, "modules/storage")
    assert _default(storage, "glacier_after_days") == aws.ARTIFACTS_GLACIER_AFTER_DAYS
    assert _default(storage, "expire_after_days") == aws.ARTIFACTS_EXPIRE_AFTER_DAYS
    assert _default(config(configs, "environments/local"), "bucket_name") == aws.ARTIFACTS_BUCKET


def _ecs(configs) -> dict:
    return config(configs, "modules/compute").locals


ECS_COMMANDS = _ecs(tf.load_all())["commands"]


@pytest.mark.parametrize("service", _service_params(ECS_COMMANDS))
def test_every_ecs_command_is_a_real_zixly_command(service):
    assert compose_checks.command_problems(ECS_COMMANDS[service], zixly_cli, ROOT) == []


def test_ecs_and_compose_run_the_same_commands(compose):
    services = compose_checks.zixly_services(compose)
    assert {name: services[name]["command"] for name in ECS_COMMANDS} == ECS_COMMANDS
    assert set(NOT_YET) <= set(ECS_COMMANDS)


def test_every_variable_ecs_sets_is_one_the_settings_module_reads(configs):
    ecs = _ecs(configs)
    read = {v.name for v in settings_env_vars()} | set(LIBRARY_ENV)
    assert set(ecs["environment"]) | set(ecs["secrets"]) <= read
    assert {"DATABASE_URL", "REDIS_URL", "ZIXLY_METRICS_TOKEN"} <= set(ecs["secrets"])  # never plain environment


def test_ecs_takes_the_metrics_token_from_its_own_secret(configs):
    """/metrics is refused without a token: ECS injects it from the secrets module's metrics-token secret (empty
    in Terraform, put by the operator), and the execution role may read it."""
    assert _ecs(configs)["secrets"]["ZIXLY_METRICS_TOKEN"] == "${var.metrics_token_secret_arn}:token::"
    call = config(configs, "environments/aws").modules["compute"]
    assert call["metrics_token_secret_arn"] == "${module.secrets.metrics_token_secret_arn}"
    secrets = config(configs, "modules/secrets")
    resources = {name for block in secrets.blocks for r in block.get("resource", []) for named in r.values()
                 for name in named}
    assert "metrics_token" in resources
    assert not any("secret_string" in str(block) for block in secrets.blocks)  # no value in Terraform state


CHECKOV_PROBE = """
resource "aws_sqs_queue" "plain" {
  name                    = "unencrypted"
  sqs_managed_sse_enabled = false
}

resource "aws_security_group" "open" {
  name        = "open"
  description = "ssh from anywhere"
  ingress {
    description = "ssh"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
"""


def test_checkov_passes_terraform_and_the_dockerfile_and_fails_a_broken_probe(checkov, tmp_path):
    """One checkov run (it takes ~15 s to start): the repository must pass every check not listed as an
    accepted exception in .checkov.yaml; a probe with an unencrypted queue and SSH open to the world must fail."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "main.tf").write_text(CHECKOV_PROBE)
    image = tmp_path / "image"  # checkov ignores -f next to -d: the Dockerfile goes in as a folder of its own
    image.mkdir()
    shutil.copy(ROOT / "Dockerfile", image / "Dockerfile")
    run = subprocess.run(checkov + ["--config-file", str(ROOT / ".checkov.yaml"), "-d", "terraform", "-d", str(probe),
                                    "-d", str(image), "--framework", "terraform", "dockerfile", "-o", "json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    reports = _json_documents(run.stdout)
    assert {r["check_type"] for r in reports} == {"terraform", "dockerfile"}, run.stderr[-2000:]
    failed = [(c["check_id"], c["resource"], c["file_abs_path"]) for r in reports
              for c in r["results"]["failed_checks"]]
    ours = [f for f in failed if not f[2].startswith(str(probe))]
    assert ours == []
    assert {r["summary"]["parsing_errors"] for r in reports} == {0}
    assert max(r["summary"]["resource_count"] for r in reports if r["check_type"] == "terraform") > 90
    probe_failures = {(check, resource) for check, resource, path in failed if path.startswith(str(probe))}
    assert ("CKV_AWS_27", "aws_sqs_queue.plain") in probe_failures  # unencrypted queue
    assert ("CKV_AWS_24", "aws_security_group.open") in probe_failures  # SSH open to 0.0.0.0/0


def _json_documents(text: str) -> list[dict]:
    """checkov prints one JSON report per scanned root, one after another."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text.rstrip()):
        doc, i = decoder.raw_decode(text, i)
        out += doc if isinstance(doc, list) else [doc]
        while i < len(text) and text[i].isspace():
            i += 1
    return out


SKIP_LINE = re.compile(r"^\s*-\s*(CKV2?_[A-Z]+_\d+)\s*(?:#\s*(.*))?$")
INLINE_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?")


def exception_problems(checkov_yaml: str, tf_sources: dict[str, str]) -> list[str]:
    """Every accepted exception says why: a comment after each `skip-check` entry, a reason after each inline
    `checkov:skip=ID`."""
    problems = []
    for line in checkov_yaml.splitlines():
        m = SKIP_LINE.match(line)
        if m and len((m.group(2) or "").strip()) < 20:
            problems.append(f".checkov.yaml: {m.group(1)} is skipped without a reason")
    for path, text in tf_sources.items():
        for m in INLINE_SKIP.finditer(text):
            if len((m.group(2) or "").strip()) < 20:
                problems.append(f"{path}: {m.group(1)} is skipped without a reason")
    return problems


def _tf_sources():
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(tf.TERRAFORM.rglob("*.tf"))}


def test_every_accepted_checkov_exception_has_a_reason():
    assert exception_problems((ROOT / ".checkov.yaml").read_text(), _tf_sources()) == []
    assert "skip-check" in (ROOT / ".checkov.yaml").read_text()


def test_the_exception_check_catches_a_skip_without_a_reason():
    yaml_text = "skip-check:\n  - CKV_AWS_18\n  - CKV_AWS_91  # because\n"
    sources = {"main.tf": 'resource "aws_lb" "x" {\n  #checkov:skip=CKV2_AWS_76\n}\n'}
    assert exception_problems(yaml_text, sources) == [".checkov.yaml: CKV_AWS_18 is skipped without a reason",
                                                      ".checkov.yaml: CKV_AWS_91 is skipped without a reason",
                                                      "main.tf: CKV2_AWS_76 is skipped without a reason"]
