"""The two declarative bases: catalog tables in schema `catalog`, tenant tables in the placeholder schema
`__tenant__` (tenancy.db writes the tenant's real schema into each statement). One naming convention for both."""
from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

TENANT_SCHEMA = "__tenant__"
CATALOG_SCHEMA = "catalog"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CatalogBase(DeclarativeBase):
    metadata = MetaData(schema=CATALOG_SCHEMA, naming_convention=NAMING)


class TenantBase(DeclarativeBase):
    metadata = MetaData(schema=TENANT_SCHEMA, naming_convention=NAMING)
