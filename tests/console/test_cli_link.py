"""`zixly console link`: a one-time sign-in link, only where development links are on."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from core import bootstrap
from zixly_cli.main import main


@pytest.fixture()
def cli(site, monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, getattr(site.settings, name.lower()))
    monkeypatch.setenv("ZIXLY_HOME", str(tmp_path))  # no running `make run` here: the environment names it all
    monkeypatch.setenv("ZIXLY_PUBLIC_BASE_URL", site.url)
    monkeypatch.delenv("ZIXLY_CONSOLE_DEV_LOGIN", raising=False)
    yield CliRunner()
    bootstrap.init(site.settings)


def test_a_printed_link_signs_in_once(site, cli, browser_client, make_tenant, monkeypatch):
    t = make_tenant("cli")
    refused = cli.invoke(main, ["console", "link", "--tenant", t.slug])
    assert refused.exit_code != 0 and "ZIXLY_CONSOLE_DEV_LOGIN=1" in refused.output
    monkeypatch.setenv("ZIXLY_CONSOLE_DEV_LOGIN", "1")
    r = cli.invoke(main, ["console", "link", "--tenant", t.slug, "--role", "VIEWER"])
    assert r.exit_code == 0, r.output
    link = urlsplit(r.output.strip())
    assert f"{link.scheme}://{link.netloc}" == site.url and link.path.startswith("/console/dev-login/")
    bootstrap.init(site.settings)
    browser = browser_client()
    assert browser.get(link.path).status_code == 303
    assert "VIEWER" in browser.get("/console/overview").get_data(as_text=True)
    assert browser_client().get(link.path).status_code == 404  # once
