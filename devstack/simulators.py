"""The provider simulators (`sandbox`) for `zixly dev`, with Zixly's development OAuth apps registered."""
from __future__ import annotations

import os

from connectors.registry import PROVIDERS

DEV_APPS = {p: (f"zixly-dev-{p}", f"zixly-dev-{p}-secret") for p in PROVIDERS}


def start_simulators(public_base: str, progress=print):
    """The simulators, in this process (threads), on ZIXLY_SIMULATOR_PORT (default: any free port). Points Zixly
    at them through the environment (an explicit development setting: nothing but `zixly dev` sets it) and sets
    the dev apps' client ids and secrets unless the environment names others. Returns the running Simulator."""
    # sandbox (a Flask app of its own) is loaded only with --simulate-providers: start-up time, not a cycle
    from sandbox import Simulator

    simulator = Simulator(port=int(os.environ.get("ZIXLY_SIMULATOR_PORT", 0))).start()
    for provider, (client_id, secret) in DEV_APPS.items():
        simulator.register_app(provider, client_id, secret, [f"{public_base.rstrip('/')}/v1/oauth/callback"])
        os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_ID", client_id)
        os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_SECRET", secret)
    os.environ["ZIXLY_PROVIDER_SIMULATOR_URL"] = simulator.url
    progress(f"provider simulators on {simulator.url}")
    return simulator
