"""playbook runs and their actions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "playbook_run",
        sa.Column("id", _ID, nullable=False),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.Column("playbook", sa.String(length=100), nullable=False),
        sa.Column("playbook_sha256", sa.String(length=64), nullable=False),
        sa.Column("trigger_key", sa.String(length=200), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("incident_id", _ID, nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("approval_due_at", _AT, nullable=True),
        sa.Column("started_at", _AT, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"],
                                name=op.f("fk_playbook_run_incident_id_incident"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"],
                                name=op.f("fk_playbook_run_workspace_id_workspace"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_run")),
        sa.UniqueConstraint("workspace_id", "playbook", "trigger_key",
                            name=op.f("uq_playbook_run_workspace_id")),
    )
    op.create_index(op.f("ix_playbook_run_workspace_id"), "playbook_run", ["workspace_id"])
    op.create_index(op.f("ix_playbook_run_incident_id"), "playbook_run", ["incident_id"])
    op.create_table(
        "playbook_action",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("started_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["playbook_run.id"],
                                name=op.f("fk_playbook_action_run_id_playbook_run"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_action")),
        sa.UniqueConstraint("run_id", "phase", "step", name=op.f("uq_playbook_action_run_id")),
    )
    op.create_index(op.f("ix_playbook_action_run_id"), "playbook_action", ["run_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_playbook_action_run_id"), table_name="playbook_action")
    op.drop_table("playbook_action")
    op.drop_index(op.f("ix_playbook_run_incident_id"), table_name="playbook_run")
    op.drop_index(op.f("ix_playbook_run_workspace_id"), table_name="playbook_run")
    op.drop_table("playbook_run")
