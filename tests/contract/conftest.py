"""The API on a real gunicorn (the production config and worker class, two workers of four threads), for the
fuzz, the server-layer checks, tenant isolation across workers and the generated client: one per session."""
import pytest

from tests.contract.gunicorn_server import GunicornServer


@pytest.fixture(scope="session")
def gunicorn_server(app, settings, tmp_path_factory):
    """`app` first: the catalog is migrated and the queues and bucket exist before any worker starts."""
    server = GunicornServer(settings, tmp_path_factory.mktemp("gunicorn"), workers=2, threads=4).start()
    yield server
    code = server.stop()
    assert code == 0, f"gunicorn did not stop cleanly ({code}):\n{server.log_tail()}"


@pytest.fixture(scope="session")
def live_server(gunicorn_server):
    return gunicorn_server.url
