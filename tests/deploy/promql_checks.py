"""Which metrics and labels alert rules and dashboard queries use, checked against prometheus/metric_names.txt
(the list the code must export). promtool checks the syntax; this checks the names, which promtool cannot."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRIC_NAMES = ROOT / "prometheus" / "metric_names.txt"
# Series Prometheus makes itself for every scrape target (not exported by any Zixly code).
PROMETHEUS_OWN = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}  # Prometheus adds these to every scraped series
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
            "unless", "inf", "nan", "atan2"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: frozenset[str]


def load_contract(path: Path = METRIC_NAMES) -> dict[str, Metric]:
    metrics = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, kind, labels = line.split()
        metrics[name] = Metric(name, kind, frozenset() if labels == "-" else frozenset(labels.split(",")))
    return metrics


def series_labels(contract: dict[str, Metric]) -> dict[str, set[str]]:
    """Every series name a query may use, with the labels it carries."""
    out = {name: set(labels) for name, labels in PROMETHEUS_OWN.items()}
    for m in contract.values():
        labels = set(m.labels) | TARGET_LABELS
        if m.type == "histogram":
            out[f"{m.name}_bucket"] = labels | {"le"}
            out[f"{m.name}_sum"] = labels
            out[f"{m.name}_count"] = labels
        else:
            out[m.name] = labels
    return out


def references(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """The (metric, matcher labels) pairs an expression selects, and the labels it groups or matches on."""
    text = _STRING.sub('""', expr)
    for var, value in GRAFANA_VARIABLES.items():
        text = text.replace(var, value)
    selected = []
    for name, matchers in _SELECTOR.findall(text):
        selected.append((name or "", set(_MATCHER_LABEL.findall(matchers))))
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    grouping = {label.strip() for _, labels in _GROUPING.findall(text) for label in labels.split(",") if label.strip()}
    text = _GROUPING.sub(" ", _RANGE.sub(" ", text))
    bare = {m.group() for m in _IDENT.finditer(text)  # a name followed by "(" is a function or an aggregation
            if m.group().lower() not in KEYWORDS and not text[m.end():].lstrip().startswith("(")}
    already = {name for name, _ in selected}
    selected += [(name, set()) for name in sorted(bare - already)]
    return selected, grouping


def expression_problems(expr: str, known: dict[str, set[str]], where: str) -> list[str]:
    selected, grouping = references(expr)
    problems, available = [], set()
    for name, labels in selected:
        if name not in known:
            problems.append(f"{where}: {name or '{…} without a metric name'} is not a metric the code exports")
            continue
        available |= known[name]
        problems += [f"{where}: {name} has no label {label}" for label in sorted(labels - known[name])]
    if available:
        problems += [f"{where}: no metric in the expression has the label {label} it groups by"
                     for label in sorted(grouping - available)]
    return problems


def rule_expressions(rules: dict) -> list[tuple[str, str]]:
    """(name, expr) of every alerting or recording rule in a parsed rules file."""
    return [(r.get("alert") or r.get("record"), r["expr"]) for group in rules.get("groups", [])
            for r in group.get("rules", [])]


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, and the metric part of every `label_values(...)` variable."""
    out = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"{dashboard.get('uid')} panel {panel.get('title')!r} {target.get('refId')}", target["expr"]))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query or "")
        if m:  # label_values(selector, label): the selector must be real and carry the label
            where = f"{dashboard.get('uid')} variable {var.get('name')}"
            out.append((where, f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # rows may hold panels


def dashboard_problems(dashboard: dict, datasource_uids: set[str]) -> list[str]:
    """Panels have unique ids, at least one query each, and name a provisioned data source."""
    problems, seen = [], set()
    uid = dashboard.get("uid")
    if not uid:
        problems.append(f"dashboard {dashboard.get('title')!r} has no uid (links to it would break on re-import)")
    for panel in _panels(dashboard):
        if panel.get("type") == "row":
            continue
        if panel.get("id") in seen:
            problems.append(f"{uid}: panel id {panel.get('id')} is used twice")
        seen.add(panel.get("id"))
        if not panel.get("targets"):
            problems.append(f"{uid}: panel {panel.get('title')!r} has no query")
        for source in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
            if source and source.get("uid") not in datasource_uids:
                problems.append(f"{uid}: panel {panel.get('title')!r} uses data source {source.get('uid')!r}, "
                                "which is not provisioned")
    return problems


def load_dashboards(folder: Path = ROOT / "grafana" / "dashboards") -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def as_recording_rules(queries: list[tuple[str, str]]) -> dict:
    """Dashboard queries as a rules file, so `promtool check rules` parses each one (Grafana's variables
    replaced by plain values first)."""
    rules = []
    for i, (_, expr) in enumerate(queries):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", "x", expr)})
    return {"groups": [{"name": "dashboard-queries", "rules": rules}]}
