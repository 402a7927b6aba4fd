"""Alembic environment for the master catalog (schema `catalog`); run through `zixly db upgrade`."""
from alembic import context
from sqlalchemy import text

import tenancy.models  # noqa: F401  (registers the catalog tables for autogenerate)
from tenancy.base import CATALOG_SCHEMA, CatalogBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=CatalogBase.metadata,
    version_table_schema=CATALOG_SCHEMA,
    include_schemas=True,
    include_name=lambda name, type_, parent: type_ != "schema" or name == CATALOG_SCHEMA,
)
connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{CATALOG_SCHEMA}"'))
with context.begin_transaction():
    context.run_migrations()
