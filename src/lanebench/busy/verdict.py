"""A lane's windows, judged: whether to re-measure, and which figures had to come from busy ones
(pure functions over records).

A repetition measured while the machine was busy is re-measured, at most ``remeasure_budget``
extra single requests (the job's ``reps`` unless ``--remeasure-busy`` says otherwise) and as
many extra N-slot batches. The figures come from the quiet windows when there are any, else from
the busy ones, and then each such figure is listed in the lane's ``BusyRecord`` with how busy:
never a silent mix of both (``LaneResult.measured_singles``).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

from lanebench.config.job import JobSpec
from lanebench.records.busy import BusyRecord, LoadRecord
from lanebench.records.figures import KERNEL, Fig
from lanebench.records.lane import LaneResult
from lanebench.records.samples import AggregateRecord, RequestRecord, is_busy

# the figures computed from the single requests (the rest: the aggregate, and acceptance, which
# a busy machine does not change)
SINGLE_FIGURES = (
    Fig.PREFILL, Fig.DECODE, Fig.PREFILL_CLIENT, Fig.DECODE_CLIENT, Fig.WALL, Fig.NORMALIZED_WALL
)  # fmt: skip
KERNEL_FIGURES = tuple(str(f) for f in KERNEL)  # the kernel view's keys in ``figures``


def needs_more(windows: Sequence[RequestRecord | AggregateRecord], reps: int, budget: int) -> bool:
    """Whether to take one more window: some were busy, fewer than ``reps`` were quiet, and fewer
    than ``budget`` extra windows were taken."""
    quiet = sum(1 for w in windows if not is_busy(w))
    return quiet < reps and any(map(is_busy, windows)) and len(windows) < reps + budget


def kernel_load(result: LaneResult) -> LoadRecord | None:
    """The load during the lane's llama-bench run (its kernel view), if measured."""
    return result.baseline.load if result.baseline else None


def _median_load(windows: Sequence[RequestRecord | AggregateRecord]) -> float:
    return round(median(w.load.load_cores for w in windows if w.load is not None), 2)


def busy_record(
    result: LaneResult,
    job: JobSpec,
    chosen_singles: Sequence[RequestRecord],
    chosen_batches: Sequence[AggregateRecord],
) -> BusyRecord | None:
    """Which figures of ``result`` come from busy windows, and how busy; None when nothing was
    measured (an attached endpoint, no /proc). ``chosen_*``: the windows its figures come from
    (``LaneResult.measured_singles``, ``measured_batches``)."""
    singles = [r for r in result.samples if r.kind == "single"]
    windows: list[RequestRecord | AggregateRecord] = [*singles, *result.aggregates]
    loads = [w.load for w in windows if w.load is not None]
    kernel = kernel_load(result)
    if kernel is not None:
        loads.append(kernel)
    if not loads:
        return None
    busy = [w for w in windows if is_busy(w)]
    rec = BusyRecord(
        cores=loads[0].cores,
        threshold_cores=loads[0].threshold_cores,
        busy_windows=len(busy),
        windows=len([w for w in windows if w.load is not None]),
        extra=max(0, len(singles) - job.reps) + max(0, len(result.aggregates) - job.reps),
        max_cores=round(max(load.load_cores for load in loads), 2),
    )
    if chosen_singles and all(map(is_busy, chosen_singles)):
        rec.figures.update({str(f): _median_load(chosen_singles) for f in SINGLE_FIGURES})
    if chosen_batches and all(map(is_busy, chosen_batches)):
        rec.figures[str(Fig.AGGREGATE)] = _median_load(chosen_batches)
    chosen = {id(w) for w in [*chosen_singles, *chosen_batches]}
    rec.excluded = sum(1 for w in busy if w.ok and id(w) not in chosen)
    busy_loads = [w.load for w in busy if w.load is not None]
    if kernel is not None and kernel.busy:
        rec.kernel = round(kernel.load_cores, 2)
        rec.figures.update(dict.fromkeys(KERNEL_FIGURES, rec.kernel))
        busy_loads.append(kernel)
    tops = [t for load in busy_loads for t in load.top]
    rec.top = max(tops, key=lambda t: t[2]) if tops else []
    rec.why = "+".join(sorted({w for load in busy_loads for w in load.why.split("+") if w}))
    return rec


def busy_mark(busy: dict[str, float] | None, key: str) -> str:
    """`` [busy: 1.9 cores]`` when figure ``key`` had to be computed from windows measured while
    the machine was busy (``busy``: ``BusyRecord.figures``); '' otherwise."""
    cores = (busy or {}).get(str(key))
    return "" if cores is None else f" [busy: {cores:.1f} cores]"


BUSY_CAPTION = (
    "[busy: c cores]: every repetition behind the figure ran while other processes used c CPU "
    "cores (median) beside the lane, more than the cores it leaves idle + 0.25 (at most half the "
    "machine), and re-measuring found no quiet one: the figure is the busy machine's, not the lane's"
)


def busy_caption(marked: bool) -> str:
    """``; `` + ``BUSY_CAPTION`` for a table with a figure ``marked`` busy, else ''."""
    return f"; {BUSY_CAPTION}" if marked else ""


def any_busy(lanes: Sequence[LaneResult]) -> bool:
    """Whether any figure of ``lanes`` had to come from a busy machine's windows."""
    return any(lane.busy is not None and lane.busy.figures for lane in lanes)


def busy_note(rec: BusyRecord | None) -> str:
    """The Notes column's word on a busy machine; '' when every window was quiet."""
    if rec is None or not (rec.busy_windows or rec.kernel is not None):
        return ""
    text = f"busy machine: {rec.busy_windows} of {rec.windows} measured windows"
    if rec.kernel is not None:
        text += " and the kernel view" if rec.busy_windows else ""
        text = text if rec.busy_windows else "busy machine during the kernel view"
    text += f" (others used up to {rec.max_cores:.2f} of {rec.cores} cores"
    if len(rec.top) >= 2:
        text += f"; top: {rec.top[1]} pid {rec.top[0]}"
    text += ")"
    if rec.excluded:
        text += f"; {rec.excluded} busy window(s) left out, quiet re-measurements used"
    elif rec.figures:
        text += "; no quiet re-measurement: figures marked [busy]"
    return text
