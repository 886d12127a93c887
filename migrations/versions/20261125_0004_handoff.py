"""sales hand-off: pipeline, outbox, follow-ups, booking events

Revision ID: 0004_handoff
Revises: 0003_bookings
Create Date: 2026-11-25 03:19:49.308567

The pipeline lives in columns of `leads`, written only by the hand-off store. `outbox` holds CRM webhooks and
lead-card posts written in the transaction of the change; `booking_events` is the booking side's record of each
change, relayed to the outbox once; `followups` allows one follow-up of each kind per lead.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_handoff"
down_revision: str | Sequence[str] | None = "0003_bookings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("lead_ref", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_booking_events_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_events")),
    )
    with op.batch_alter_table("booking_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_booking_events_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index("ix_booking_events_relayed_at_id", ["relayed_at", "id"], unique=False)

    op.create_table(
        "followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_followups_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
        sa.UniqueConstraint("lead_id", "kind", name=op.f("uq_followups_lead_id")),
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_followups_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_outbox_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index("ix_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pipeline", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("owner_user_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("owner_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("routed_user_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("lost_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("pipeline_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("card_chat_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("card_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("consultation_uid", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("consultation_expert", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("consultation_starts_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("consultation_ends_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("consultation_status", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_leads_pipeline_completed_at", ["pipeline", "completed_at"], unique=False)

    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("followups_stopped_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.drop_column("followups_stopped_at")

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_pipeline_completed_at")
        batch_op.drop_column("consultation_status")
        batch_op.drop_column("consultation_ends_at")
        batch_op.drop_column("consultation_starts_at")
        batch_op.drop_column("consultation_expert")
        batch_op.drop_column("consultation_uid")
        batch_op.drop_column("card_message_id")
        batch_op.drop_column("card_chat_id")
        batch_op.drop_column("pipeline_changed_at")
        batch_op.drop_column("lost_reason")
        batch_op.drop_column("routed_user_id")
        batch_op.drop_column("owner_name")
        batch_op.drop_column("owner_user_id")
        batch_op.drop_column("pipeline")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_next_attempt_at")
        batch_op.drop_index(batch_op.f("ix_outbox_lead_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followups_lead_id"))

    op.drop_table("followups")
    with op.batch_alter_table("booking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_events_relayed_at_id")
        batch_op.drop_index(batch_op.f("ix_booking_events_booking_id"))

    op.drop_table("booking_events")
