"""Results that last: runs, lanes, every raw sample, failures and fingerprints.

``open_store(None)`` opens the SQLite file in the user data directory (or ``$LANEBENCH_DB``);
a path opens that SQLite file; ``postgresql://...`` opens a PostgreSQL database, so a team can
pool results from many hosts.
"""

from __future__ import annotations

from lanebench.store.db import DEFAULT_BUSY_TIMEOUT_S, StoreBusy, guarded, make_engine, migrate, resolve_url
from lanebench.store.store import Store

__all__ = ["Store", "StoreBusy", "open_store"]


def open_store(url: str | None = None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
    """Open (creating or upgrading the schema) the results database at ``url``.

    ``busy_timeout_s``: how long a writer waits for another one to release a SQLite lock.
    """
    sa_url, label = resolve_url(url)
    engine = make_engine(sa_url, busy_timeout_s)
    with guarded(label):
        migrate(engine, label)
    return Store(engine, label)
