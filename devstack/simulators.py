"""The provider simulators (`sandbox`) for `zixly dev`, with Zixly's development OAuth apps registered and the
app-level webhook secrets Zixly verifies with set to the ones the simulators sign with."""
from __future__ import annotations

import os

from connectors.registry import APP_HOOK_PROVIDERS, PROVIDERS

DEV_APPS = {p: (f"zixly-dev-{p}", f"zixly-dev-{p}-secret") for p in PROVIDERS}


def _first(listed: str | None) -> str | None:
    return next((s.strip() for s in (listed or "").split(",") if s.strip()), None)


def start_simulators(public_base: str, progress=print):
    """The simulators, in this process (threads), on ZIXLY_SIMULATOR_PORT (default: any free port). Points Zixly
    at them through the environment (an explicit development setting: nothing but `zixly dev` sets it), sets the
    dev apps' client ids and secrets unless the environment names others, and registers the app-level webhook
    secrets both ways: Xero's webhooks key (ZIXLY_XERO_APP_WEBHOOK_SECRETS, which `zixly dev` sets) is given to
    the simulated Xero; HubSpot and Shopify sign with the app's client secret, so Zixly verifies with it.
    Returns the running Simulator."""
    # sandbox (a Flask app of its own) is loaded only with --simulate-providers: start-up time, not a cycle
    from sandbox import Simulator

    simulator = Simulator(port=int(os.environ.get("ZIXLY_SIMULATOR_PORT", 0))).start()
    for provider, (client_id, secret) in DEV_APPS.items():
        client_id = os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_ID", client_id)
        secret = os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_SECRET", secret)
        hook_secrets = f"ZIXLY_{provider.upper()}_APP_WEBHOOK_SECRETS"
        if provider in APP_HOOK_PROVIDERS and provider != "xero":
            os.environ.setdefault(hook_secrets, secret)
        simulator.register_app(provider, client_id, secret, [f"{public_base.rstrip('/')}/v1/oauth/callback"],
                               webhook_key=_first(os.environ.get(hook_secrets)) if provider == "xero" else None)
    os.environ["ZIXLY_PROVIDER_SIMULATOR_URL"] = simulator.url
    progress(f"provider simulators on {simulator.url}")
    return simulator
