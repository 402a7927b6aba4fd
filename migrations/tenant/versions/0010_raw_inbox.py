"""raw inbox: each verified webhook delivery kept as one row before the provider gets its 2xx, fanned out to events
and jobs behind the answer (core.inbound.processor) and deleted in the transaction that does it

Revision ID: t0010
Revises: t0009
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0010"
down_revision = "t0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # no foreign key on connection_id: a row lives for milliseconds, and the processor checks the connection is
    # still there when it creates the events (as the inbox always did); no index beyond the key, which is the
    # processor's claim order
    op.create_table(
        "raw_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("connection_id", pg.UUID(as_uuid=True)),
        sa.Column("headers", pg.JSONB, nullable=False),
        sa.Column("events", pg.JSONB, nullable=False),
        sa.Column("raw_body", sa.LargeBinary),
        sa.Column("request_id", sa.String(128)),  # of the request that kept it: its jobs' log lines name it
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("error", sa.Text),  # set aside: its fan-out failed; the processor's claims skip it
    )


def downgrade() -> None:
    op.drop_table("raw_deliveries")
