"""probe agents, their nonces, team alert targets and sent alerts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probe_agent",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("last_seen_at", _AT, nullable=True),
        sa.Column("revoked_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_agent")),
        sa.UniqueConstraint("key_id", name=op.f("uq_probe_agent_key_id")),
        sa.UniqueConstraint("name", name=op.f("uq_probe_agent_name")),
    )
    op.create_table(
        "agent_nonce",
        sa.Column("id", _ID, nullable=False),
        sa.Column("agent_id", _ID, nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["probe_agent.id"],
                                name=op.f("fk_agent_nonce_agent_id_probe_agent"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_nonce")),
        sa.UniqueConstraint("agent_id", "nonce", name=op.f("uq_agent_nonce_agent_id")),
    )
    op.create_index("ix_agent_nonce_seen_at", "agent_nonce", ["seen_at"], unique=False)
    op.create_table(
        "alert_target",
        sa.Column("id", _ID, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("url_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"],
                                name=op.f("fk_alert_target_workspace_id_workspace"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_target")),
        sa.UniqueConstraint("workspace_id", "label", name=op.f("uq_alert_target_workspace_id")),
    )
    op.create_table(
        "alert_sent",
        sa.Column("id", _ID, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("target_id", _ID, nullable=False),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=80), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"],
                                name=op.f("fk_alert_sent_event_id_event"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_id"], ["alert_target.id"],
                                name=op.f("fk_alert_sent_target_id_alert_target"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"],
                                name=op.f("fk_alert_sent_workspace_id_workspace"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_sent")),
        sa.UniqueConstraint("target_id", "event_id", name=op.f("uq_alert_sent_target_id")),
    )
    op.create_index("ix_alert_sent_target_time", "alert_sent", ["target_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alert_sent_target_time", table_name="alert_sent")
    op.drop_table("alert_sent")
    op.drop_table("alert_target")
    op.drop_index("ix_agent_nonce_seen_at", table_name="agent_nonce")
    op.drop_table("agent_nonce")
    op.drop_table("probe_agent")
