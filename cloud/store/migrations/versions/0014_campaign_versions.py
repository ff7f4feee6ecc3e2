"""campaign versions: drafts, published versions, the version on each order (issue 14 part 3).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # placeholder, filled in by the part's work


def downgrade() -> None:
    pass
