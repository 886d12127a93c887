"""follow-ups: indexes for finding the leads a follow-up is due for

Revision ID: 0005_followups
Revises: 0004_handoff
Create Date: 2026-11-25 05:05:00

The follow-up sender looks, every round, for active conversations untouched since a cutoff and for leads that
finished with an outcome before one; without these indexes each round would scan every conversation and lead.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_followups"
down_revision: str | Sequence[str] | None = "0004_handoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index("ix_conversations_status_updated_at", ["status", "updated_at"], unique=False)
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index("ix_leads_outcome_completed_at", ["outcome", "completed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_outcome_completed_at")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_status_updated_at")
