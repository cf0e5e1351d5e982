"""The results schema (SQLAlchemy Core) and its migrations.

Plain portable types only (Text, Integer, Float, Boolean; JSON kept as text), so the same
schema runs unchanged on SQLite and PostgreSQL. ``meta.schema_version`` says which migrations
have run; a database from a newer lanebench is refused, an older one is brought up to date.
A table's columns are named after its record's fields (``store.rows`` maps them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator


class JsonText(TypeDecorator[Any]):
    """JSON stored as text: the same bytes on every database."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, default=str, sort_keys=True)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("lanebench_version", sa.String(40), nullable=False),
    sa.Column("hostname", sa.Text),
    sa.Column("job", JsonText, nullable=False),
    sa.Column("host", JsonText),
    sa.Column("builds", JsonText),
    sa.Column("lanes_file", sa.Text),
)

lanes = sa.Table(
    "lanes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.String(40)),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("lane", JsonText, nullable=False),
    sa.Column("argv", JsonText),
    sa.Column("server_bin", sa.Text),
    sa.Column("load_s", sa.Float),
    sa.Column("metrics_delta", JsonText),
    sa.Column("summary", JsonText),
    sa.Column("per_position", JsonText),
    sa.Column("flags", JsonText),
    sa.Column("backends", JsonText),
    sa.Column("error", sa.Text),
    sa.Column("log_path", sa.Text),
    sa.Column("memory", JsonText),  # schema 3: records.memory.MemoryRecord
    sa.Column("baseline", JsonText),  # schema 4: records.baseline.BaselineRecord
    sa.Column("placement", JsonText),  # schema 5: records.placement.PlacementRecord
    sa.Column("request", JsonText),  # schema 6: records.request.SentRequest
    sa.Column("attribution", JsonText),  # schema 7: records.attribution.AttributionRecord, raw samples too
    sa.Column("busy", JsonText),  # schema 9: records.busy.BusyRecord
    sa.Column("envelope", JsonText),  # schema 10: records.envelope.CellSummary per cell
    sa.UniqueConstraint("run_id", "name", name="uq_lanes_run_name"),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane_id", sa.Integer, sa.ForeignKey("lanes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("rep", sa.Integer, nullable=False),
    sa.Column("stream_index", sa.Integer, nullable=False),
    sa.Column("n_in", sa.Integer, nullable=False),
    sa.Column("n_out", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("t_start", sa.Float),
    sa.Column("ttft_s", sa.Float),
    sa.Column("wall_s", sa.Float),
    sa.Column("stream_tokens", sa.Integer),
    sa.Column("decode_stream_s", sa.Float),
    sa.Column("prompt_n", sa.Integer),
    sa.Column("prompt_ms", sa.Float),
    sa.Column("predicted_n", sa.Integer),
    sa.Column("predicted_ms", sa.Float),
    sa.Column("draft_n", sa.Integer),
    sa.Column("draft_n_accepted", sa.Integer),
    sa.Column("timings", JsonText),
    sa.Column("content_sha", sa.String(64)),
    sa.Column("tokens_sha", sa.String(64)),  # schema 2
    sa.Column("stream_chunks", sa.Integer),  # schema 6: tokens told from chunks
    sa.Column("first_tokens", sa.Integer),  # schema 6
    sa.Column("token_count", sa.String(20)),  # schema 6: records.samples.TokenCount
    sa.Column("token_ids", JsonText),  # schema 8: a sequential request's generated ids (greedy check)
    # schema 9: what else ran during the request (records.busy.LoadRecord); the two figures a
    # query wants as columns, the whole record as JSON
    sa.Column("other_cores", sa.Float),
    sa.Column("busy", sa.Boolean),
    sa.Column("load", JsonText),
    # schema 10: the envelope's cell (depth, concurrency), the request's start after its batch's,
    # and its token arrivals ([seconds after its start, tokens]) for the steady-state window
    sa.Column("depth", sa.Integer),
    sa.Column("concurrency", sa.Integer),
    sa.Column("start_offset_s", sa.Float),
    sa.Column("arrivals", JsonText),
)

aggregates = sa.Table(
    "aggregates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane_id", sa.Integer, sa.ForeignKey("lanes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("rep", sa.Integer, nullable=False),
    sa.Column("streams", sa.Integer, nullable=False),
    sa.Column("wall_s", sa.Float, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("other_cores", sa.Float),  # schema 6, as for samples
    sa.Column("busy", sa.Boolean),
    sa.Column("load", JsonText),
    sa.Column("depth", sa.Integer),  # schema 10: an envelope cell's batch (NULL: the standard job's)
)

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane_id", sa.Integer, sa.ForeignKey("lanes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("log_tail", sa.Text),
)

fingerprints = sa.Table(
    "fingerprints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("data", JsonText, nullable=False),
    sa.UniqueConstraint("run_id", "kind", "key", name="uq_fingerprints_run_kind_key"),
)

# schema 2: a lane's quality against the reference lane (llama-perplexity --kl-divergence); the
# figures reports query as columns (records.quality.QualityRecord's fields of the same names)
QUALITY_FIGURES = ("ppl", "ppl_err", "kld_mean", "kld_err", "kld_p99", "same_top1", "same_top1_err")
quality = sa.Table(
    "quality",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lane_id", sa.Integer, sa.ForeignKey("lanes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reference", sa.Text),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("ctx", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float) for name in QUALITY_FIGURES),
    sa.Column("greedy", sa.Boolean),
    sa.Column("fingerprint", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("data", JsonText, nullable=False),  # the whole QualityRecord
    sa.UniqueConstraint("lane_id", name="uq_quality_lane"),
)

sa.Index("ix_lanes_run", lanes.c.run_id)
sa.Index("ix_samples_lane", samples.c.lane_id)
sa.Index("ix_aggregates_lane", aggregates.c.lane_id)
sa.Index("ix_fingerprints_run", fingerprints.c.run_id)
sa.Index("ix_quality_lane", quality.c.lane_id)


Migration = Callable[[Connection], None]


# A fresh database gets ``metadata.create_all`` and the latest version. An older database gets
# MIGRATIONS[v - 1:] in order: MIGRATIONS[i] brings schema i + 1 to i + 2 (ALTER TABLE and
# friends, in SQL that SQLite and PostgreSQL both accept). Append, never edit.
def _v1_to_v2(conn: Connection) -> None:
    """Quality per lane: the ``quality`` table and the samples' ``tokens_sha`` (greedy checks)."""
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN tokens_sha VARCHAR(64)"))
    quality.create(conn)  # with its index


def _v2_to_v3(conn: Connection) -> None:
    """Memory per lane: the lanes' ``memory`` column (JSON text, like the other JSON columns)."""
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN memory TEXT"))


def _v3_to_v4(conn: Connection) -> None:
    """The kernel view per lane: the lanes' ``baseline`` column (llama-bench's record, JSON text)."""
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN baseline TEXT"))


def _v4_to_v5(conn: Connection) -> None:
    """Lanes across devices and hosts: the lanes' ``placement`` column (split, devices, RPC
    endpoints with their round-trip times; JSON text)."""
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN placement TEXT"))


def _v5_to_v6(conn: Connection) -> None:
    """Tokens, not chunks: each sample's ``stream_chunks``, ``first_tokens`` and ``token_count``
    (how its stream's tokens were counted), and the lanes' ``request`` (what was sent, JSON)."""
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN stream_chunks INTEGER"))
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN first_tokens INTEGER"))
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN token_count VARCHAR(20)"))
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN request TEXT"))


def _v6_to_v7(conn: Connection) -> None:
    """The attribution experiment per lane (run --attribute): the lanes' ``attribution`` column
    (every arm's argv and raw requests, JSON text)."""
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN attribution TEXT"))


def _v7_to_v8(conn: Connection) -> None:
    """Speculative lanes get a verdict, not a figure: the samples' ``token_ids`` (the generated
    ids of sequential requests, JSON text), from which the first divergence is found."""
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN token_ids TEXT"))


def _v8_to_v9(conn: Connection) -> None:
    """A busy machine, noticed: each sample's and batch's load from other processes
    (``other_cores``, ``busy``, the whole record as ``load``) and each lane's ``busy`` record
    (which figures were measured while the machine was busy, and how busy)."""
    for table in ("samples", "aggregates"):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN other_cores FLOAT"))
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN busy BOOLEAN"))
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN load TEXT"))
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN busy TEXT"))


def _v9_to_v10(conn: Connection) -> None:
    """The operating envelope: each sample's cell (``depth``, ``concurrency``), its
    ``start_offset_s`` in its batch and token ``arrivals`` (JSON); each batch's ``depth``; each
    lane's ``envelope`` (its cells' summaries, JSON)."""
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN depth INTEGER"))
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN concurrency INTEGER"))
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN start_offset_s FLOAT"))
    conn.execute(sa.text("ALTER TABLE samples ADD COLUMN arrivals TEXT"))
    conn.execute(sa.text("ALTER TABLE aggregates ADD COLUMN depth INTEGER"))
    conn.execute(sa.text("ALTER TABLE lanes ADD COLUMN envelope TEXT"))


MIGRATIONS: list[Migration] = [
    _v1_to_v2,
    _v2_to_v3,
    _v3_to_v4,
    _v4_to_v5,
    _v5_to_v6,
    _v6_to_v7,
    _v7_to_v8,
    _v8_to_v9,
    _v9_to_v10,
]


def latest_version() -> int:
    """The schema version this lanebench writes: 1 plus one per migration."""
    return 1 + len(MIGRATIONS)
