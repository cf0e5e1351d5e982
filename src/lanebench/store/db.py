"""Connecting to the results database: where it is, SQLite pragmas, schema checks, and
database errors turned into one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from lanebench.errors import BadInput, LanebenchError
from lanebench.store import schema

ENV_DB = "LANEBENCH_DB"
DEFAULT_BUSY_TIMEOUT_S = 60.0


class StoreBusy(LanebenchError):
    """The database stayed locked by another writer for longer than the timeout."""

    exit_code = 5


def default_db_path() -> Path:
    """``$LANEBENCH_DB`` or ``results.sqlite`` in the user data directory."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("lanebench")) / "results.sqlite"


def resolve_url(url: str | None) -> tuple[str, str]:
    """(SQLAlchemy URL, label for messages) for ``None``, a file path or ``postgresql://``."""
    if url is None:
        url = os.environ.get(ENV_DB) or str(default_db_path())
    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}", _redact(url)
    if url.startswith("postgresql+"):
        return url, _redact(url)
    if "://" in url and not url.startswith("sqlite"):
        raise BadInput(f"--db: unsupported database URL {url!r} (use a file path or postgresql://...)")
    if url.startswith("sqlite"):
        return url, url
    path = Path(url).expanduser()
    if path.is_dir():
        raise BadInput(f"--db: {path} is a directory, expected a SQLite file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}", str(path)


def _redact(url: str) -> str:
    """The URL without its password."""
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def make_engine(sa_url: str, busy_timeout_s: float) -> Engine:
    if sa_url.startswith("sqlite"):
        engine = sa.create_engine(sa_url, connect_args={"timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.close()

        return engine
    return sa.create_engine(sa_url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def translate(exc: SQLAlchemyError, label: str) -> LanebenchError:
    """A database error as one line that names the database."""
    msg = _first_line(exc)
    low = msg.lower()
    if "locked" in low or "busy" in low:
        return StoreBusy(f"database {label} is locked by another writer ({msg}); try again when it is done")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return BadInput(
            f"database {label} is corrupt or not a SQLite file ({msg}); use --db to choose another"
        )
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return LanebenchError(f"database {label}: connection lost ({msg})")
    return LanebenchError(f"database {label}: {msg}")


@contextmanager
def guarded(label: str) -> Iterator[None]:
    """Run a block; any database error leaves as one clear ``LanebenchError`` line."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc, label) from None


def stored_version(conn: Connection, label: str) -> int | None:
    """The schema version of the database, None when it is empty."""
    names = set(sa.inspect(conn).get_table_names())
    if "meta" not in names:
        if names:
            raise BadInput(
                f"database {label} holds other tables ({', '.join(sorted(names)[:5])}) but no "
                "lanebench schema; use --db to choose another file"
            )
        return None
    row = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
    if row is None:
        raise BadInput(f"database {label}: table 'meta' has no schema_version; it is not lanebench's")
    try:
        return int(row[0])
    except ValueError:
        raise BadInput(f"database {label}: schema_version {row[0]!r} is not a number") from None


def migrate(engine: Engine, label: str) -> int:
    """Create or upgrade the schema; refuse a database written by a newer lanebench."""
    latest = schema.latest_version()
    with engine.begin() as conn:
        version = stored_version(conn, label)
        if version is None:
            schema.metadata.create_all(conn)
            conn.execute(schema.meta.insert().values(key="schema_version", value=str(latest)))
            return latest
        if version > latest:
            raise BadInput(
                f"database {label} has schema version {version}, written by a newer lanebench; "
                f"this one knows up to {latest}: upgrade lanebench (pip install -U lanebench)"
            )
        for step in schema.MIGRATIONS[version - 1 :]:
            step(conn)
        if version < latest:
            conn.execute(
                schema.meta.update().where(schema.meta.c.key == "schema_version").values(value=str(latest))
            )
    return latest
