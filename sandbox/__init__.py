"""Provider simulators for development and tests: an independent implementation of what the connectors call.

Nothing here imports the rest of Zixly, so signatures and request shapes are checked against a second opinion.
Layout: `{url}/{provider}/{real host}/{real path}`, e.g. `/xero/identity.xero.com/connect/token`.
"""
from sandbox.server import Call, Simulator

__all__ = ["Call", "Simulator"]
