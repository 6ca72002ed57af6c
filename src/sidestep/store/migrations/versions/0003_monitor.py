"""monitor tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observation_minute",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("signal", sa.String(length=20), nullable=False),
        sa.Column("vantage", sa.String(length=100), nullable=False),
        sa.Column("feature", sa.String(length=40), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("timed", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_max_ms", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observation_minute")),
    )
    with op.batch_alter_table("observation_minute", schema=None) as batch_op:
        batch_op.create_index(
            "ix_observation_minute_key",
            ["platform", "minute", "signal", "vantage", "feature"], unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("observation_minute", schema=None) as batch_op:
        batch_op.drop_index("ix_observation_minute_key")
    op.drop_table("observation_minute")
