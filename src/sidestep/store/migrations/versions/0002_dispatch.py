"""dispatch tables: pauses, breakers, quotas, deliverables; failover columns on post/delivery

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_max_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reroute_grace_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_age_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("catch_up", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_since", _WHEN, nullable=True))
        batch_op.add_column(sa.Column("origin_delivery_id", sa.BigInteger(), nullable=True))

    op.create_table(
        "dispatch_pause",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("channel_id", _ID, nullable=True),
        sa.Column("paused_by", sa.String(length=320), nullable=False),
        sa.Column("paused_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE",
                                name=op.f("fk_dispatch_pause_workspace_id_workspace")),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"], ondelete="CASCADE",
                                name=op.f("fk_dispatch_pause_channel_id_channel")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_dispatch_pause")),
    )
    with op.batch_alter_table("dispatch_pause", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatch_pause_workspace_id"), ["workspace_id"],
                              unique=False)

    op.create_table(
        "channel_breaker",
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", _WHEN, nullable=True),
        sa.Column("probe_at", _WHEN, nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"], ondelete="CASCADE",
                                name=op.f("fk_channel_breaker_channel_id_channel")),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_breaker")),
    )

    op.create_table(
        "quota_lock",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_quota_lock")),
    )

    op.create_table(
        "send_slot",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_slot")),
    )
    with op.batch_alter_table("send_slot", schema=None) as batch_op:
        batch_op.create_index("ix_send_slot_key_at", ["key", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_send_slot_at"), ["at"], unique=False)

    op.create_table(
        "deliverable",
        sa.Column("id", _ID, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("partner_name", sa.String(length=200), nullable=False),
        sa.Column("partner_email", sa.String(length=320), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("due_at", _WHEN, nullable=False),
        sa.Column("post_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE",
                                name=op.f("fk_deliverable_workspace_id_workspace")),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], ondelete="SET NULL",
                                name=op.f("fk_deliverable_post_id_post")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliverable")),
    )
    with op.batch_alter_table("deliverable", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliverable_workspace_id"), ["workspace_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_deliverable_post_id"), ["post_id"], unique=False)


def downgrade() -> None:
    op.drop_table("deliverable")
    op.drop_table("send_slot")
    op.drop_table("quota_lock")
    op.drop_table("channel_breaker")
    op.drop_table("dispatch_pause")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("origin_delivery_id")
        batch_op.drop_column("held_since")
    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_column("catch_up")
        batch_op.drop_column("max_age_s")
        batch_op.drop_column("reroute_grace_s")
        batch_op.drop_column("hold_max_s")
