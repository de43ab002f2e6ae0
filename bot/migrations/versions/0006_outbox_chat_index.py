"""outbox: index by chat, for the per-chat order check of every claim

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 18:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_chat_status", "outbox", ["chat_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_chat_status", table_name="outbox")
