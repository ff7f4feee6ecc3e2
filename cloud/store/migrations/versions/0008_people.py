"""people (issue 13): a shopper's earnings survive a lost phone. A person holds a recovery code
(only its SHA-256 is kept) and any number of phones, each a visitor id (person_phones).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recovery_hash", sa.String(64), nullable=False),
        sa.Column("recovery_made_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("recovery_hash", name=op.f("uq_people_recovery_hash")),
    )
    op.create_table(
        "person_phones",
        sa.Column("visitor", sa.String(64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("linked_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_person_phones_person_id_people")),
        sa.PrimaryKeyConstraint("visitor", name=op.f("pk_person_phones")),
    )
    op.create_index(op.f("ix_person_phones_person_id"), "person_phones", ["person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_person_phones_person_id"), table_name="person_phones")
    op.drop_table("person_phones")
    op.drop_table("people")
