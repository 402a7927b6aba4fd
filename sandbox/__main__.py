"""`python -m sandbox --port N`: run every provider simulator until interrupted, printing its URL."""
from __future__ import annotations

import argparse
import threading

from sandbox import Simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--app", action="append", default=[], metavar="PROVIDER:CLIENT_ID:CLIENT_SECRET[:KEY]",
                        help="register an OAuth app (repeatable); KEY: Xero's webhooks key for it")
    args = parser.parse_args(argv)
    simulator = Simulator(args.host, args.port).start()
    for spec in args.app:
        provider, client_id, secret, *key = spec.split(":", 3)
        simulator.register_app(provider, client_id, secret, webhook_key=key[0] if key else None)
    print(simulator.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
