"""link files: the master a .link entry points to

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("link_target", sa.String(255), nullable=True))
    op.create_index("ix_files_link_target", "files", ["link_target"])


def downgrade() -> None:
    op.drop_index("ix_files_link_target", table_name="files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("link_target")
