"""prometheus/ and grafana/: promtool accepts the config and the rules and runs the alert unit tests; every
metric and label an alert or a panel uses is in prometheus/metric_names.txt (the code's export contract)."""
from __future__ import annotations

import copy
import re
import subprocess

import pytest
import yaml

from tests.deploy import promql_checks as pq
from tests.deploy.conftest import ROOT

PROM = ROOT / "prometheus"
GRAFANA = ROOT / "grafana"
REQUIRED_ALERTS = {"ZixlyHighErrorRate", "ZixlyQueueBacklog", "ZixlyWorkerDown", "ZixlySlowJobs",
                   "ZixlyDeadLettersPresent", "ZixlyTokenRefreshFailures", "ZixlyRateLimitStorageDown",
                   "ZixlyJobsStranded", "ZixlyWebhookDeliveryLag"}


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def rules():
    return yaml.safe_load((PROM / "alerts.yml").read_text())


@pytest.fixture(scope="module")
def known():
    return pq.series_labels(pq.load_contract())


def checkable_config(config: dict, tmp_path) -> dict:
    """The config as promtool can check it here: the rule files by absolute path, and the compose secrets
    (mounted under /run/secrets/ in the container) stood in by files, since promtool reads them."""
    config = copy.deepcopy(config)
    config["rule_files"] = [str(PROM / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        auth = job.get("authorization") or {}
        if "credentials_file" in auth:
            stand_in = tmp_path / auth["credentials_file"].removeprefix("/run/secrets/")
            stand_in.write_text("token")
            auth["credentials_file"] = str(stand_in)
    return config


def test_promtool_accepts_the_config(promtool, tmp_path):
    config = checkable_config(yaml.safe_load((PROM / "prometheus.yml").read_text()), tmp_path)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules(promtool):
    result = run([promtool, "check", "rules", str(PROM / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_its_unit_test(promtool, rules):
    result = run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
              for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert {name for name, _ in pq.rule_expressions(rules)} == tested


def test_promtool_rejects_a_broken_rule_and_a_config_naming_a_missing_rule_file(promtool, tmp_path):
    bad_rules = tmp_path / "rules.yml"
    bad_rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "Broken", "expr": "sum(rate(zixly_jobs_failed_total[5m]) > "}]}]}))
    assert run([promtool, "check", "rules", str(bad_rules)]).returncode != 0
    config = checkable_config(yaml.safe_load((PROM / "prometheus.yml").read_text()), tmp_path)
    config["rule_files"] = ["alerts-missing.yml"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode != 0 and "alerts-missing.yml" in result.stdout + result.stderr


def test_the_alerts_cover_what_operators_need(rules):
    assert REQUIRED_ALERTS <= {name for name, _ in pq.rule_expressions(rules)}
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"page", "ticket"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_scrapes_the_api_the_workers_and_the_outbound_consumer(compose):
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"api", "worker", "outbound"} <= set(jobs)
    for name in ("api", "worker", "outbound"):
        for sd in jobs[name]["dns_sd_configs"]:
            assert set(sd["names"]) <= set(compose["services"])  # Docker DNS resolves service names


def test_prometheus_scrapes_the_api_with_the_token_the_api_is_given(compose):
    """The API refuses /metrics without ZIXLY_METRICS_TOKEN: Prometheus must send the same value, from a compose
    secret (never a literal in prometheus.yml), and the API must be given it."""
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    api = next(job for job in config["scrape_configs"] if job["job_name"] == "api")
    assert api["authorization"]["type"] == "Bearer" and "credentials" not in api["authorization"]
    path = api["authorization"]["credentials_file"]
    secret = path.removeprefix("/run/secrets/")
    assert path == f"/run/secrets/{secret}" and secret in compose["services"]["prometheus"]["secrets"]
    source = compose["secrets"][secret]["environment"]
    assert compose["services"]["api"]["environment"][source].startswith("${" + source + ":?")


def test_the_metric_contract_is_well_formed():
    contract = pq.load_contract()
    assert len(contract) == 34  # 26 + retention, the raw inbox (3), event subscriptions (4)
    for metric in contract.values():
        assert metric.type in {"counter", "gauge", "histogram"}
        assert metric.name.endswith("_total") == (metric.type == "counter"), metric.name
        assert not metric.name.endswith(("_bucket", "_sum", "_count")), metric.name
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", metric.name)
    histograms = {m.name for m in contract.values() if m.type == "histogram"}
    assert all("tenant" not in contract[h].labels for h in histograms)  # tenant only where series stay bounded


def test_alerts_use_only_metrics_and_labels_the_code_exports(rules, known):
    assert [p for name, expr in pq.rule_expressions(rules) for p in pq.expression_problems(expr, known, name)] == []


def _dashboards():
    return pq.load_dashboards(GRAFANA / "dashboards")


def test_dashboards_use_only_metrics_and_labels_the_code_exports(known):
    dashboards = _dashboards()
    assert set(dashboards) == {"pipeline-overview.json", "tenants.json", "providers-outbound.json"}
    problems = [p for d in dashboards.values() for where, expr in pq.dashboard_queries(d)
                for p in pq.expression_problems(expr, known, where)]
    assert problems == []


@pytest.mark.parametrize("expr, expected", [
    ("rate(zixly_jobs_total[5m])", "zixly_jobs_total is not a metric the code exports"),
    ('sum(rate(zixly_jobs_failed_total{provider="xero"}[5m]))', "zixly_jobs_failed_total has no label provider"),
    ("sum by (tenant) (rate(zixly_job_duration_seconds_bucket[5m]))",
     "no metric in the expression has the label tenant it groups by"),
    ("histogram_quantile(0.95, rate(zixly_job_duration_seconds[5m]))",
     "zixly_job_duration_seconds is not a metric the code exports"),  # a histogram is read through _bucket
])
def test_the_metric_check_catches(expr, expected, known):
    assert any(expected in p for p in pq.expression_problems(expr, known, "probe"))


def test_the_metric_check_reads_grafana_variables(known):
    broken = copy.deepcopy(_dashboards()["tenants.json"])
    broken["templating"]["list"][0]["query"]["query"] = "label_values(zixly_tenant_jobs_total, workflow)"
    assert [p for where, expr in pq.dashboard_queries(broken) for p in pq.expression_problems(expr, known, where)] \
        == ["zixly-tenants variable tenant: no metric in the expression has the label workflow it groups by"]


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    queries = [q for d in _dashboards().values() for q in pq.dashboard_queries(d)]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump(pq.as_recording_rules(queries)))
    result = run([promtool, "check", "rules", str(rules_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(pq.as_recording_rules([("x", "sum by (provider (rate(x[$__rate_interval]))")])))
    assert run([promtool, "check", "rules", str(broken)]).returncode != 0


def _provisioned_datasource_uids() -> set[str]:
    return {ds["uid"] for f in (GRAFANA / "provisioning" / "datasources").glob("*.yml")
            for ds in yaml.safe_load(f.read_text())["datasources"]}


def test_dashboards_are_well_formed_and_name_the_provisioned_data_source():
    uids = _provisioned_datasource_uids()
    assert uids == {"zixly-prometheus"}
    dashboards = _dashboards()
    assert [p for d in dashboards.values() for p in pq.dashboard_problems(d, uids)] == []
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)


def test_the_dashboard_check_catches_a_wrong_data_source_and_a_repeated_panel_id():
    broken = copy.deepcopy(_dashboards()["pipeline-overview.json"])
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    broken["panels"][2]["datasource"] = {"type": "prometheus", "uid": "prom"}
    broken["panels"][3]["targets"] = []
    assert pq.dashboard_problems(broken, _provisioned_datasource_uids()) == [
        "zixly-pipeline: panel id 1 is used twice",
        "zixly-pipeline: panel 'Jobs by stage' uses data source 'prom', which is not provisioned",
        "zixly-pipeline: panel 'Job success ratio by workflow' has no query"]


def test_grafana_loads_dashboards_from_the_folder_compose_mounts(compose):
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "zixly.yml").read_text())["providers"][0]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
