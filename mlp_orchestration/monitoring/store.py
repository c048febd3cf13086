"""Upserts into the monitoring tables, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key_columns: Sequence[str],
) -> None:
    """Insert rows, or update every non-key column of the row with the same key.

    ``key_columns`` must be the columns of one of the table's unique constraints.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        statement = sqlite.insert(table)
    elif dialect == "postgresql":
        statement = postgresql.insert(table)
    else:
        raise NotImplementedError(
            f"upsert supports SQLite and PostgreSQL warehouses, not {dialect!r}"
        )
    updated = {
        column: statement.excluded[column]
        for column in rows[0]
        if column not in key_columns and column != "id"
    }
    conn.execute(
        statement.on_conflict_do_update(index_elements=list(key_columns), set_=updated),
        [dict(row) for row in rows],
    )
