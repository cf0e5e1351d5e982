"""Deleting lanes with everything under them: used by the store (unfinished lanes after a kill)
and by its sink (a stale lane of the same name).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from lanebench.store import schema as T


def delete_lanes(conn: Connection, ids: list[int]) -> None:
    """Delete lanes and everything under them (explicitly: not every SQLite enforces cascades)."""
    if not ids:
        return
    for table in (T.samples, T.aggregates, T.failures, T.quality):
        conn.execute(table.delete().where(table.c.lane_id.in_(ids)))
    conn.execute(T.lanes.delete().where(T.lanes.c.id.in_(ids)))
