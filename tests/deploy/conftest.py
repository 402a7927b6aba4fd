"""Shared fixtures of the deployment tests: the parsed files and the external tools."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy import tools

ROOT = Path(__file__).resolve().parents[2]


def load_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="session")
def promtool() -> str:
    try:
        return tools.promtool()
    except tools.ToolUnavailable as exc:
        pytest.fail(f"promtool is needed and could not be installed: {exc}")


@pytest.fixture(scope="session")
def checkov() -> list[str]:
    try:
        return tools.checkov()
    except tools.ToolUnavailable as exc:
        pytest.fail(f"checkov is needed and could not be installed: {exc}")
