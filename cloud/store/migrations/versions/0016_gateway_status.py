"""gateway status: the gateways' retained status, ingested (issue 14 part 2).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # placeholder, filled in by the part's work


def downgrade() -> None:
    pass
