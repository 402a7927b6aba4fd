"""The SQL Zixly would issue on a Citus shard, checked without Citus (it cannot be installed here)."""
import pytest

from tenancy import citus


class FakeConn:
    """Answers the capability query with a given extversion and records every statement."""

    def __init__(self, version):
        self.version, self.sql = version, []

    def execute(self, statement, params=None):
        self.sql.append(str(statement))
        return self

    def scalar(self):
        return self.version

    def exec_driver_sql(self, statement):
        self.sql.append(statement)


@pytest.mark.parametrize("value, expected", [("12.1-1", (12, 1)), ("13.0", (13, 0)), ("11.3-2", None),
                                             (None, None), ("", None)])
def test_capability_needs_citus_12_or_later(value, expected):
    assert citus.capability(FakeConn(value)) == expected


def test_existing_schemas_are_distributed_one_statement_each():
    conn = FakeConn("12.1-1")
    issued = citus.distribute_existing(conn, ["t_acme", "t_beta_co"])
    assert issued == ["SELECT citus_schema_distribute('\"t_acme\"')",
                      "SELECT citus_schema_distribute('\"t_beta_co\"')"]
    assert conn.sql == [citus.CAPABILITY_SQL, *issued]
    assert citus.undistribute_sql("t_acme") == "SELECT citus_schema_undistribute('\"t_acme\"')"


def test_without_citus_nothing_is_issued():
    conn = FakeConn(None)
    assert citus.distribute_existing(conn, ["t_acme"]) == [] and conn.sql == [citus.CAPABILITY_SQL]


def test_the_prelude_turns_on_schema_based_sharding_for_the_transaction_only():
    assert citus.SCHEMA_PRELUDE == "SET LOCAL citus.enable_schema_based_sharding TO on;\n"
