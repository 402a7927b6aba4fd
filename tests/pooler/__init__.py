"""Pooler safety against a real PgBouncer in transaction-pooling mode (devstack.pgbouncer)."""
