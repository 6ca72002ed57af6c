"""email tables: subscribers, lists, memberships, suppression, consent records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"], ["workspace.id"], name=op.f(f"fk_{table}_workspace_id_workspace"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "subscriber",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _workspace_fk("subscriber"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber")),
        sa.UniqueConstraint("workspace_id", "email", name=op.f("uq_subscriber_workspace_id")),
    )
    op.create_table(
        "mailing_list",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("double_opt_in", sa.Boolean(), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _workspace_fk("mailing_list"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailing_list")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_mailing_list_workspace_id")),
    )
    op.create_table(
        "list_membership",
        sa.Column("list_id", ID, nullable=False),
        sa.Column("subscriber_id", ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["mailing_list.id"],
            name=op.f("fk_list_membership_list_id_mailing_list"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscriber.id"],
            name=op.f("fk_list_membership_subscriber_id_subscriber"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "subscriber_id", name=op.f("pk_list_membership")),
    )
    with op.batch_alter_table("list_membership", schema=None) as batch_op:
        batch_op.create_index("ix_list_membership_subscriber", ["subscriber_id"], unique=False)

    op.create_table(
        "suppression",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _workspace_fk("suppression"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression")),
        sa.UniqueConstraint("workspace_id", "email", name=op.f("uq_suppression_workspace_id")),
    )
    op.create_table(
        "consent_record",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("subscriber_id", ID, nullable=False),
        sa.Column("list_id", ID, nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("text_shown", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _workspace_fk("consent_record"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscriber.id"],
            name=op.f("fk_consent_record_subscriber_id_subscriber"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["mailing_list.id"],
            name=op.f("fk_consent_record_list_id_mailing_list"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_record_subscriber", ["workspace_id", "subscriber_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_record", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_record_subscriber")
    op.drop_table("consent_record")
    op.drop_table("suppression")
    with op.batch_alter_table("list_membership", schema=None) as batch_op:
        batch_op.drop_index("ix_list_membership_subscriber")
    op.drop_table("list_membership")
    op.drop_table("mailing_list")
    op.drop_table("subscriber")
