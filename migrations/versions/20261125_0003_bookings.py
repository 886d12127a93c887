"""consultations, reminders, calendar writes, booking chats, expert feeds

Revision ID: 0003_bookings
Revises: 0002_calendar_feeds
Create Date: 2026-11-25 00:44:12.656318

No two confirmed consultations of one expert overlap, buffers included, whatever the code above the database
does: on PostgreSQL an exclusion constraint over the blocked time range (btree_gist lets it compare the expert
key with =), on SQLite triggers that refuse an overlapping insert or update.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_bookings"
down_revision: str | Sequence[str] | None = "0002_calendar_feeds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_key", sa.String(length=64), nullable=False),
        sa.Column(
            "state", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("last_update_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_chats")),
        sa.UniqueConstraint("chat_key", name=op.f("uq_booking_chats_chat_key")),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("expert_key", sa.String(length=24), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prospect_ref", sa.Integer(), nullable=False),
        sa.Column("lead_ref", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("attendee_name", sa.String(length=200), nullable=False),
        sa.Column("attendee_email", sa.String(length=254), nullable=True),
        sa.Column("attendee_zone", sa.String(length=64), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("uid", name=op.f("uq_bookings_uid")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index("ix_bookings_expert_key_blocked_until", ["expert_key", "blocked_until"], unique=False)
        batch_op.create_index("ix_bookings_prospect_ref_starts_at", ["prospect_ref", "starts_at"], unique=False)

    op.create_table(
        "expert_feeds",
        sa.Column("expert_key", sa.String(length=24), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("expert_key", name=op.f("pk_expert_feeds")),
        sa.UniqueConstraint("token", name=op.f("uq_expert_feeds_token")),
    )
    op.create_table(
        "calendar_writes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("expert_key", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_calendar_writes_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_writes")),
    )
    with op.batch_alter_table("calendar_writes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_writes_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index("ix_calendar_writes_status_next_attempt_at", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_reminders_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
    )
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reminders_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index("ix_reminders_status_due_at", ["status", "due_at"], unique=False)

    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_expert_key_blocked "
            "EXCLUDE USING gist (expert_key WITH =, tstzrange(blocked_from, blocked_until, '[)') WITH &&) "
            "WHERE (status = 'confirmed')"
        )
    else:
        for event in ("INSERT", "UPDATE"):
            op.execute(_SQLITE_NO_OVERLAP.format(event=event, name=event.lower()))


# Instants are stored as UTC text of one fixed width, so comparing the text compares the instants.
_SQLITE_NO_OVERLAP = """
CREATE TRIGGER tr_bookings_no_overlap_on_{name} BEFORE {event} ON bookings
WHEN NEW.status = 'confirmed' AND EXISTS (
    SELECT 1 FROM bookings AS other
    WHERE other.expert_key = NEW.expert_key
      AND other.status = 'confirmed'
      AND other.id IS NOT NEW.id
      AND other.blocked_from < NEW.blocked_until
      AND NEW.blocked_from < other.blocked_until
)
BEGIN
    SELECT RAISE(ABORT, 'bookings overlap: the expert already has a consultation at that time');
END
"""


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE bookings DROP CONSTRAINT ex_bookings_expert_key_blocked")
    else:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER tr_bookings_no_overlap_on_{event}")
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.drop_column("timezone")

    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index("ix_reminders_status_due_at")
        batch_op.drop_index(batch_op.f("ix_reminders_booking_id"))

    op.drop_table("reminders")
    with op.batch_alter_table("calendar_writes", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_writes_status_next_attempt_at")
        batch_op.drop_index(batch_op.f("ix_calendar_writes_booking_id"))

    op.drop_table("calendar_writes")
    op.drop_table("expert_feeds")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_prospect_ref_starts_at")
        batch_op.drop_index("ix_bookings_expert_key_blocked_until")

    op.drop_table("bookings")
    op.drop_table("booking_chats")
