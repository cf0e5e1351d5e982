"""The seed report's context tables, built from stored runs: Host, Models, setting sweeps,
context against previous rows, failures. Pure functions over ``ReportData`` (no I/O).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from lanebench.analysis.noise import Standing, standing
from lanebench.busy.verdict import any_busy, busy_caption, busy_mark
from lanebench.config.lanes import EMULATED_MARK, LaneSpec
from lanebench.records.figures import FIGURES, Fig
from lanebench.records.lane import LaneResult, LaneStatus
from lanebench.records.run import StoredLane
from lanebench.records.samples import Stat
from lanebench.report.data import ReportData, RunData
from lanebench.report.fmt import Table
from lanebench.report.tables import (
    acceptance_cell,
    basename,
    fig_cell,
    fmt_stat,
    lane_cell,
    lane_notes,
)

GIB = 1024**3
NOT_IDENTITY = {"name", "notes"}  # labels: lanes that differ only here are the same lane
NOT_A_SETTING = {"model", "server_bin", "draft.path", "env"}  # identity, never a swept setting


def fmt_bytes(n: int | None) -> str:
    """``14,439,361,440 bytes / 13.45 GiB``."""
    if n is None:
        return "–"
    return f"{n:,} bytes / {n / GIB:.2f} GiB"


# Host ----------------------------------------------------------------------------------------
def _gpu_lines(gpus: dict[str, Any]) -> list[str]:
    lines = [
        f"{g['name']} ({g.get('memory', '')}, driver {g.get('driver', '')})" for g in gpus.get("nvidia", [])
    ]
    lines += [f"{g['name']} {g.get('gfx', '')}".strip() for g in gpus.get("rocminfo", [])]
    if not gpus.get("rocminfo"):
        lines += [f"{g['name']} {g.get('gfx', '')}".strip() for g in gpus.get("rocm_smi", [])]
    lines += [f"{g['name']} [Vulkan, {g.get('driver', '')}]" for g in gpus.get("vulkan", [])]
    return list(dict.fromkeys(lines))


def _build_text(build: dict[str, Any]) -> str:
    text = str(build.get("version_text") or "?").splitlines()[0]
    if build.get("compiler"):
        text += f"; {build['compiler']}"
    return text


def host_facts(rd: RunData) -> dict[str, str]:
    """The seed's Host block as field → value for one run."""
    host = {**rd.run.host, **(rd.fingerprint("host") or {})}
    gpus = host.get("gpus") or {}
    ram = host.get("ram_bytes")
    cores = host.get("physical_cores")
    builds = [f["data"] for f in rd.fingerprints if f["kind"] == "build"]
    loaded = sorted({b for e in rd.extras.values() for b in (e.get("backends") or [])})
    libs = sorted({lib for b in builds for lib in b.get("backend_libs", [])})
    facts = {
        "Host": str(host.get("hostname") or "–"),
        "System": str(host.get("cpu") or "–"),
        "Cores / threads": f"{cores or '?'} / {host.get('cpus') or '?'}",
        "Memory": f"{ram / GIB:.1f} GiB" if ram else "–",
        "OS": str(host.get("os_name") or host.get("os") or "–"),
        "Kernel": str(host.get("kernel") or "–"),
        "GPUs": "; ".join(_gpu_lines(gpus)) or "none found",
        "Mesa / RADV": str(gpus.get("mesa") or "–"),
        "ROCm": str(gpus.get("rocm_version") or "–"),
        "Build": "; ".join(_build_text(b) for b in builds)
        or "; ".join(str(b.get("version_text", "?")) for b in rd.run.builds.values())
        or "–",
        "Backends": ", ".join(loaded) if loaded else (", ".join(libs) + " (libraries)" if libs else "–"),
        "Flag dialect": ", ".join(sorted({str(b.get("speculative")) for b in rd.run.builds.values()})) or "–",
    }
    return facts


def host_table(data: ReportData) -> Table:
    """One column per run: host, CPU, memory, OS, kernel, GPUs, Mesa, build, backends."""
    facts = [host_facts(r) for r in data.runs]
    headers = ["", *(r.run.run_id for r in data.runs)] if len(facts) > 1 else ["", "Value"]
    table = Table(title="Host", headers=headers)
    for key in facts[0] if facts else []:
        table.rows.append([key, *(f[key] for f in facts)])
    return table


# Models --------------------------------------------------------------------------------------
def _roles(lanes: Sequence[LaneResult]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for lane in lanes:
        if lane.lane.model:
            roles.setdefault(str(lane.lane.model), "main")
        draft = lane.lane.draft
        if draft is not None and draft.path:
            roles.setdefault(str(draft.path), "MTP head" if draft.kind == "mtp" else "draft")
    return roles


def _params(n: Any) -> str:
    if not n:
        return "–"
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


def models_table(data: ReportData) -> Table:
    """Every model file of the runs: role, size in bytes and GiB, architecture, quant, params."""
    table = Table(
        title="Models",
        headers=["Role", "File", "Size", "Architecture", "Quantisation", "Parameters", "sha256"],
        caption="quantisation: file type, then the tensor type holding most bytes",
    )
    seen: set[str] = set()
    for rd in data.runs:
        models = rd.models()
        for path, role in _roles(rd.lanes).items():
            fpr = models.get(path, {})
            key = str(fpr.get("sha256") or path)
            if key in seen:
                continue
            seen.add(key)
            quant = " / ".join(str(q) for q in (fpr.get("file_type_name"), fpr.get("main_quant")) if q)
            table.rows.append(
                [
                    role,
                    basename(path),
                    fmt_bytes(fpr.get("size_bytes")),
                    str(fpr.get("arch") or "–"),
                    quant or "–",
                    _params(fpr.get("n_params")),
                    str(fpr.get("sha256") or "–")[:12],
                ]
            )
    return table


# Sweeps --------------------------------------------------------------------------------------
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"draft": {"block_size": 3}}`` → ``{"draft.block_size": 3}``; lists become tuples."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else (None if v == {} else v)
    return out


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def sweep_groups(lanes: Sequence[LaneResult]) -> list[tuple[str, list[LaneResult]]]:
    """(field, lanes) for every set of ≥2 lanes that differ in exactly that one field."""
    flat = [
        (lane, {k: v for k, v in flatten(lane.lane.model_dump(mode="json")).items() if k not in NOT_IDENTITY})
        for lane in lanes
    ]
    keys = sorted({k for _, f in flat for k in f} - NOT_A_SETTING)
    found = []
    for key in keys:
        groups: dict[tuple[Any, ...], list[tuple[Any, LaneResult]]] = defaultdict(list)
        for lane, f in flat:
            if key in f:
                rest = tuple(sorted((k, repr(v)) for k, v in f.items() if k != key))
                groups[rest].append((f[key], lane))
        for members in groups.values():
            if len({repr(v) for v, _ in members}) >= 2:
                members.sort(key=lambda m: _sort_key(m[0]))
                found.append((key, [lane for _, lane in members]))
    return found


_SWEPT = tuple(FIGURES[k].label for k in (Fig.DECODE, Fig.ACCEPTANCE, Fig.PREFILL, Fig.NORMALIZED_WALL))
SWEEP_RANK_NOTE = (
    "vs fastest: decode against the best median, as decode of this lane / of that one; no measurable "
    "difference unless the min–max ranges are apart with reps enough that this is unlikely by chance "
    "(p = 2 / C(n_a + n_b, n_a) <= 0.10: 3 vs 3 reps give 0.10)"
)


def sweep_tables(lanes: Sequence[LaneResult]) -> list[Table]:
    """One table per swept field: one row per value (the seed's '31B setting | Decode | ...'),
    each lane's decode judged against the fastest of the table (``noise.standing``)."""
    tables = []
    for key, members in sweep_groups(lanes):
        table = Table(
            title=f"Sweep: {key}",
            headers=["Setting", *_SWEPT[:1], "vs fastest", *_SWEPT[1:], "Lane", "Notes"],
            caption=f"lanes identical but for {key}; medians (min–max); {SWEEP_RANK_NOTE}",
        )
        ranks = standing({lane.name: _decode(lane) for lane in members})
        for lane in members:
            value = flatten(lane.lane.model_dump(mode="json")).get(key)
            table.rows.append(
                [
                    f"{key} = {value}",
                    fig_cell(lane, Fig.DECODE),
                    vs_fastest(lane.name, ranks),
                    acceptance_cell(lane),
                    fig_cell(lane, Fig.PREFILL),
                    fig_cell(lane, Fig.NORMALIZED_WALL),
                    lane_cell(lane),
                    lane_notes(lane),
                ]
            )
        table.caption += busy_caption(any_busy(members))
        tables.append(table)
    return tables


def _decode(lane: LaneResult) -> Stat | None:
    return None if lane.status == LaneStatus.FAILED else lane.summary.get(Fig.DECODE)


def vs_fastest(name: str, ranks: Standing) -> str:
    """One lane's cell of a ranking: ``fastest``, ``fastest by median only`` (others tie with
    it), ``no measurable difference: 0.990× (…); <test>``, ``slower: 0.800× (…); <test>``, or ``–``."""
    if name == ranks.leader:
        return "fastest by median only" if ranks.tied else "fastest"
    v = ranks.verdicts.get(name)
    if v is None:
        return "–"
    what = "slower" if v.measurable else "no measurable difference"
    return f"{what}: {v.ratio_text(unit='×')}; {v.test}"


# Context against previous rows ---------------------------------------------------------------
def _setting(lane: LaneSpec) -> str:
    parts = [f"{(lane.kv or 'f16').upper()} KV"]
    draft = lane.draft
    if draft is not None:
        kind = "MTP" if draft.kind == "mtp" else "draft"
        parts.insert(0, f"{kind} {basename(draft.path) or 'self'} B={draft.block_size}")
    if lane.slots:
        parts.append(f"{lane.slots} slots")
    return f"{basename(lane.model) or 'default model'}: " + ", ".join(parts)


_HISTORY = (Fig.PREFILL, Fig.DECODE, Fig.NORMALIZED_WALL)


def _history_cell(row: StoredLane, key: Fig) -> str:
    """A stored lane's figure, marked when it was measured on a busy machine."""
    stat = row.summary.get(key)
    busy = row.busy.figures if row.busy else None
    return fmt_stat(stat, FIGURES[key].unit) + (busy_mark(busy, key) if stat else "")


def context_table(data: ReportData) -> Table | None:
    """The same lane name or model file in earlier runs or on other hosts (plus this run's row)."""
    current = {r.run.run_id for r in data.runs}
    names = {lane.name for r in data.runs for lane in r.lanes}
    models = {basename(lane.lane.model) for r in data.runs for lane in r.lanes}
    rows = [h for h in data.history if h.name in names or basename(h.lane.model) in models]
    if not any(h.run_id not in current for h in rows):
        return None
    table = Table(
        title="Context Against Previous Rows",
        headers=["Model / lane", "Quant / path", "Run", "Host", *(FIGURES[k].label for k in _HISTORY)],
        caption="finished lanes of every stored run with the same lane name or model file; "
        "rows of the reported run(s) are marked ★",
    )
    rows.sort(key=lambda h: (h.name, h.started_at, h.run_id))
    for h in rows:
        mark = " ★" if h.run_id in current else ""
        flags = " ⚠" if h.flags else ""
        emulated = f" {EMULATED_MARK}" if h.lane.emulated else ""
        table.rows.append(
            [
                h.name + emulated + flags,
                _setting(h.lane),
                f"{h.run_id}{mark}",
                str(h.hostname or "–"),
                *(_history_cell(h, key) for key in _HISTORY),
            ]
        )
    table.caption += busy_caption(any(h.busy is not None and h.busy.figures for h in rows))
    return table


# Failures ------------------------------------------------------------------------------------
def failures_table(data: ReportData, tail_lines: int = 6) -> Table | None:
    """Failed lanes with their error and the end of the server log."""
    failed = [
        (rd.run.run_id, lane) for rd in data.runs for lane in rd.lanes if lane.status == LaneStatus.FAILED
    ]
    if not failed:
        return None
    table = Table(title="Failures", headers=["Run", "Lane", "Error", "Log tail"])
    for run_id, lane in failed:
        tail = " ⏎ ".join(lane.log_tail.strip().splitlines()[-tail_lines:]) or "–"
        table.rows.append([run_id, lane.name, lane.error or "unknown error", tail])
    return table
