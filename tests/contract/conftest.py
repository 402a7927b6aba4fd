"""A real HTTP server for the app (loopback, a free port, a thread), for the fuzz and the generated client."""
import threading

import pytest
from werkzeug.serving import make_server


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
