"""Provider simulators for the API tests that connect real (simulated) providers."""
import dataclasses
import uuid

import pytest
from sqlalchemy import delete

from core import bootstrap
from sandbox import Simulator
from tenancy.db import catalog_transaction
from tenancy.models import AccountIndex

BASE = "https://zixly.test"
PROVIDERS = ("xero", "hubspot", "shopify", "asana", "salesforce")
# Zixly's own apps at the simulated providers (what ZIXLY_<PROVIDER>_CLIENT_ID/SECRET are in production)
APPS = {p: (f"zixly-{p}-client", f"zixly-{p}-secret-{uuid.uuid4().hex}") for p in PROVIDERS}


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    for provider, (cid, secret) in APPS.items():
        simulator.register_app(provider, cid, secret, [f"{BASE}/v1/oauth/callback"])
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def simulated(app, settings, sim):
    local = dataclasses.replace(settings, provider_simulator_url=sim.url, provider_credentials=dict(APPS),
                                public_base_url=BASE)
    bootstrap.init(local)
    yield local
    bootstrap.init(settings)


@pytest.fixture()
def free_accounts(simulated):
    """Use with `pytestmark = pytest.mark.usefixtures("free_accounts")`: Zixly pointed at the simulators, and the
    fixed provider accounts they seed released after each test so the next can connect them afresh."""
    yield
    with catalog_transaction() as session:
        session.execute(delete(AccountIndex).where(AccountIndex.provider.in_(list(PROVIDERS))))


