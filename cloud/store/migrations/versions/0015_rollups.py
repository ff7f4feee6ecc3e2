"""rollups: hourly pre-aggregates for the dashboard (issue 14 part 7).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # placeholder, filled in by the part's work


def downgrade() -> None:
    pass
