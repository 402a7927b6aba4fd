"""docker-compose.yml, checked statically (no Docker engine here). Each check also meets a broken input."""
from __future__ import annotations

import copy

import pytest

from tests.deploy import compose_checks as checks
from tests.deploy.conftest import ROOT, load_compose
from tests.deploy.settings_env import LIBRARY_ENV, settings_env_vars
from zixly_cli.main import main as zixly_cli

# Commands the file runs before they exist are marked here (strict xfail: the marker fails the day the command
# arrives, and must then be removed). `zixly outbound` arrived with the outbound queues.
NOT_YET: dict[str, str] = {}


def _service_params(commands: dict[str, object]):
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[name]) if name in NOT_YET else ())
            for name in commands]


ZIXLY_SERVICES = checks.zixly_services(load_compose())


def known_env() -> set[str]:
    return {v.name for v in settings_env_vars()} | set(LIBRARY_ENV)


def test_the_file_loads_with_the_whole_stack(compose):
    assert {"postgres", "redis", "localstack", "init", "api", "worker", "beat", "outbound", "prometheus",
            "grafana"} <= set(compose["services"])
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")
    assert compose["services"]["redis"]["image"].startswith("redis:7")
    assert set(compose["services"]["localstack"]["environment"]["SERVICES"].split(",")) == {
        "sqs", "s3", "secretsmanager"}
    assert compose["services"]["worker"]["deploy"]["replicas"] == 2
    assert "replicas" not in compose["services"]["beat"].get("deploy", {})  # one scheduler, never two


def test_the_file_follows_the_compose_specification(compose):
    assert checks.spec_problems(compose) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["services"]["api"].update(restrat="always"), "extension key `restrat`"),
    (lambda c: c["services"]["api"]["depends_on"]["init"].update(condition="service_completed"), "unknown variant"),
    (lambda c: c["services"]["api"].update(ports=["80OO:8000"]), "error parsing port"),
    (lambda c: c["services"]["worker"]["healthcheck"].update(interval="often"), "duration `often`"),
], ids=["misspelt-key", "unknown-condition", "bad-port", "bad-duration"])
def test_the_specification_check_catches(compose, mutate, expected):
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert any(expected in p for p in checks.spec_problems(broken))


def test_init_migrates_and_bootstraps_before_the_processes_start(compose):
    argvs = checks.command_argvs(compose["services"]["init"]["command"])
    assert argvs == [["zixly", "db", "upgrade"], ["zixly", "aws", "bootstrap"]]
    for name in ("api", "worker", "beat", "outbound"):
        assert compose["services"][name]["depends_on"]["init"]["condition"] == checks.ONE_SHOT_CONDITION


@pytest.mark.parametrize("service", _service_params(ZIXLY_SERVICES))
def test_every_command_is_a_real_zixly_command(service):
    problems = [p for argv in checks.command_argvs(ZIXLY_SERVICES[service]["command"])
                for p in checks.command_problems(argv, zixly_cli, ROOT)]
    assert problems == []


@pytest.mark.parametrize("argv, expected", [
    (["zixly", "wokrer"], "`zixly wokrer` is not a command"),
    (["zixly", "db"], "`zixly db` is a group"),
    (["zixly", "tenants", "create"], "Missing argument 'SLUG'"),
    (["zixly", "worker", "--concurrency", "two"], "'two' is not a valid integer"),
    (["gunicorn", "--bind", "0.0.0.0:8000", "api.wsgi:application"], "api.wsgi defines no `application`"),
    (["gunicorn", "api.nowhere:app"], "api.nowhere does not exist"),
    (["celery", "-A", "workers.app", "worker"], "neither a `zixly` command nor the gunicorn API server"),
])
def test_the_command_check_catches(argv, expected):
    assert any(expected in p for p in checks.command_problems(argv, zixly_cli, ROOT))


def test_sh_c_commands_are_split_into_each_command():
    assert checks.command_argvs(["sh", "-c", "zixly db upgrade && zixly nope"]) == [
        ["zixly", "db", "upgrade"], ["zixly", "nope"]]


def test_every_variable_set_is_one_the_code_reads(compose):
    assert checks.env_problems(compose, known_env()) == []


def test_the_env_check_catches_a_variable_nothing_reads(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["environment"] = {**broken["services"]["api"]["environment"], "ZIXLY_DATABSE_URL": "x"}
    assert checks.env_problems(broken, known_env()) == ["service api sets ZIXLY_DATABSE_URL, which nothing reads"]


def test_no_secret_is_written_in_the_file(compose):
    assert checks.secret_problems(compose) == []


def test_the_secret_check_catches_a_literal_password(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    assert checks.secret_problems(broken) == [
        "service postgres: POSTGRES_PASSWORD is written in the file; take it from .env as ${POSTGRES_PASSWORD}"]


def test_every_variable_taken_from_the_environment_is_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    assert checks.interpolation_problems(text, (ROOT / ".env.example").read_text()) == []


def test_the_env_example_check_catches_an_unlisted_variable():
    example = (ROOT / ".env.example").read_text().replace("GRAFANA_ADMIN_PASSWORD=", "")
    text = (ROOT / "docker-compose.yml").read_text()
    assert checks.interpolation_problems(text, example) == [
        "${GRAFANA_ADMIN_PASSWORD} is used but not listed in .env.example"]


def test_no_two_services_publish_the_same_host_port(compose):
    assert checks.port_problems(compose) == []


def test_the_port_check_catches_collisions(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["ports"] = ["8000:3000"]  # the API's port, on every interface
    broken["services"]["worker"]["ports"] = ["9100:9100"]  # two replicas cannot both publish it
    assert checks.port_problems(broken) == [
        "service worker has 2 replicas but publishes fixed host port 9100/tcp",
        "host port 8000/tcp: api and grafana both publish it"]
    separate = copy.deepcopy(compose)
    separate["services"]["grafana"]["ports"] = ["127.0.0.2:5432:3000"]  # same port, another address: fine
    assert checks.port_problems(separate) == []


def test_every_mounted_file_exists_and_every_volume_is_declared(compose):
    assert checks.mount_problems(compose, ROOT) == []


def test_the_mount_check_catches_a_missing_file_and_an_undeclared_volume(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["prometheus"]["volumes"][0] = "./prometheus/prometheus.yaml:/etc/prometheus/prometheus.yml:ro"
    broken["services"]["beat"]["volumes"] = ["beat-data:/var/lib/zixly/beat"]
    assert checks.mount_problems(broken, ROOT) == [
        "service beat uses volume beat-data, not declared under `volumes:`",
        "service prometheus mounts ./prometheus/prometheus.yaml, which does not exist"]


def test_depends_on_conditions_can_be_met(compose):
    assert checks.dependency_problems(compose) == []


def test_the_dependency_check_catches_conditions_that_never_hold(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["depends_on"] = {"prometheus": {"condition": "service_healthy"},
                                                   "api": {"condition": "service_completed_successfully"},
                                                   "loki": {"condition": "service_started"}}
    del broken["services"]["prometheus"]["healthcheck"]
    broken["services"]["api"]["depends_on"] = ["postgres"]
    assert sorted(checks.dependency_problems(broken)) == [
        "service api: depends_on without conditions (only waits for the container to start)",
        "service grafana depends on loki, which is not a service",
        "service grafana waits for api to complete, but api restarts (never completes)",
        "service grafana waits for prometheus to be healthy, but prometheus has no health check"]


def test_every_long_running_service_has_a_health_check(compose):
    assert checks.healthcheck_problems(compose) == []
    assert checks.one_shot_services(compose) == {"init"}


def test_the_health_check_check_catches_a_missing_one(compose):
    broken = copy.deepcopy(compose)
    del broken["services"]["beat"]["healthcheck"]
    assert checks.healthcheck_problems(broken) == ["service beat has no health check"]
