"""Live pages over Server-Sent Events: a change is pushed without the page asking, a finished job closes its
stream, and streams are bounded (a time limit each, and a cap per process answered with a `retry` hint)."""
from __future__ import annotations

import time

import pytest

from console import live
from core.jobs import service as jobs
from core.platform.actors import Actor
from tenancy.context import tenant_context
from tests.console.conftest import dev_sign_in

PYTEST = Actor("staff", "pytest")


@pytest.fixture()
def all_streams_free(site):
    """Wait until no stream of an earlier test holds a slot of the per-process cap (a browser page's EventSource
    keeps its stream until the server's next tick notices the page is gone, or the stream's time is up)."""
    slots, cap = live._semaphore(), site.settings.console_max_streams
    deadline = time.monotonic() + site.settings.console_stream_seconds + 30
    while True:
        held = 0
        while held < cap and slots.acquire(blocking=False):
            held += 1
        for _ in range(held):
            slots.release()
        if held == cap or time.monotonic() > deadline:
            assert held == cap, f"{cap - held} stream slot(s) still held by an earlier test"
            return
        time.sleep(0.1)


@pytest.fixture()
def viewer(site, browser_client, make_tenant, all_streams_free):
    t = make_tenant("live")
    return t, dev_sign_in(browser_client(), tenant=t.slug, role="VIEWER")


def events_of(response):
    """Yield (event, data) as the stream sends them."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            lines = block.split("\n")
            event = next((line[7:] for line in lines if line.startswith("event: ")), None)
            data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
            yield event, data, block


def test_a_job_page_is_pushed_the_change_and_its_stream_closes_when_the_job_is_final(site, viewer):
    t, browser = viewer
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={"n": 1}, actor=PYTEST)
    r = browser.get(f"/console/jobs/{job.id}/stream", buffered=False)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    stream = events_of(r)
    retry = next(stream)
    assert retry[2].startswith("retry: ")
    event, data, _ = next(stream)
    assert event == "job" and 'data-job-status="QUEUED"' in data
    with tenant_context(t.ref):
        jobs.cancel_job(job.id)
    event, data, _ = next(stream)
    assert event == "job" and 'data-job-status="CANCELLED"' in data
    assert next(stream)[0] == "done"
    assert list(stream) == []
    r.close()


def test_the_jobs_list_streams_its_rows_until_the_stream_time_is_up(site, viewer):
    t, browser = viewer
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={}, actor=PYTEST)
    r = browser.get("/console/jobs/stream?status=QUEUED", buffered=False)
    received = list(events_of(r))  # ends by itself after console_stream_seconds
    rows = [data for event, data, _ in received if event == "rows"]
    assert rows and str(job.id)[:8] in rows[0]


def test_beyond_the_cap_a_stream_answers_only_a_retry_hint(site, viewer):
    t, browser = viewer
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={}, actor=PYTEST)
        jobs.cancel_job(job.id)
    slots = live._semaphore()
    held = 0
    while slots.acquire(blocking=False):
        held += 1
    try:
        assert held == site.settings.console_max_streams
        r = browser.get(f"/console/jobs/{job.id}/stream")
        assert r.status_code == 200 and r.get_data(as_text=True) == f"retry: {live.BUSY_RETRY_MS}\n\n"
    finally:
        for _ in range(held):
            slots.release()
    r = browser.get(f"/console/jobs/{job.id}/stream")  # a slot is free again: the (final) job and done
    assert "event: job" in r.get_data(as_text=True) and "event: done" in r.get_data(as_text=True)


def test_a_stream_ends_when_the_tenant_is_suspended(site, viewer):
    from core.tenants import service as tenants

    t, browser = viewer
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={}, actor=PYTEST)
    r = browser.get(f"/console/jobs/{job.id}/stream", buffered=False)
    stream = events_of(r)
    next(stream)  # retry
    assert next(stream)[0] == "job"
    tenants.update_tenant(t.slug, actor=PYTEST, status="suspended")
    with tenant_context(t.ref):
        jobs.cancel_job(job.id)  # a change an open stream would push
    assert list(stream) == []  # ended at once: nothing more reaches a suspended tenant's page
    assert browser.get(f"/console/jobs/{job.id}/stream").status_code == 302  # the reconnect: signed out
