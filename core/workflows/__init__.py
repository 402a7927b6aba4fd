"""Workflows: one module per workflow (the registry lists them), and each tenant's settings of them."""
