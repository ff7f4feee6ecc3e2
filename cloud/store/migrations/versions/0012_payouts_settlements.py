"""payouts settlements: due payouts per sharer, batches marked paid (issue 14 part 5).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # placeholder, filled in by the part's work


def downgrade() -> None:
    pass
