# ruff: noqa: E501  (the log lines are the server's, kept whole)
"""The server's prompt-cache work from its log (``server.cachelog``), laid beside the envelope's
cells (``analysis.cachework``) and named only by the rule. The log lines are b11434's, copied from
a real 270M run's log (the ``update:    - prompt`` listing shortened to one line)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lanebench.analysis import metrics as m
from lanebench.analysis.attribution import outside_ms
from lanebench.analysis.cachework import (
    MIN_BEYOND_S,
    SHARE,
    add_cache_work,
    align,
    cache_note,
    work_inside,
)
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.orchestration.envelope_step import cache_flag, summarize_envelope
from lanebench.records.envelope import CellSummary
from lanebench.records.lane import LaneResult
from lanebench.records.samples import RequestRecord
from lanebench.server.cachelog import read_cache_log

LOG = """\
$ llama-server -m old.gguf --port 1
0.00.500.000 I slot launch_slot_: id  0 | task 1 | processing task, is_child = 0
$ llama-server -m gemma-3-270m-q4_k_m.gguf --host 127.0.0.1 --port 42051 -c 12544 -np 2 --metrics -lv 4
0.01.719.604 I srv  server_strea: conv_id= (empty=1)
0.01.722.052 I slot get_availabl: id  0 | task -1 | selected slot by id (0)
0.01.722.072 I srv  get_availabl: updating prompt cache
0.01.722.113 I srv   prompt_save:  - saving prompt with length 159, total state size = 2.799 MiB (draft: 0.000 MiB)
0.01.724.648 I srv  get_availabl: prompt cache update took 2.58 ms
0.01.724.705 I slot launch_slot_: id  0 | task 35 | processing task, is_child = 0
0.01.724.710 I slot process_sing: id  1 | task -1 | saving idle slot to prompt cache
0.01.724.730 I slot   operator(): id  0 | task 35 | new prompt, n_ctx_slot = 6400, n_keep = 0, task.n_tokens = 128
0.34.008.475 I slot launch_slot_: id  1 | task 356 | processing task, is_child = 0
0.34.008.475 I slot process_sing: id  0 | task -1 | saving idle slot to prompt cache
0.34.008.652 I srv   prompt_save:  - saving prompt with length 6159, total state size = 25.621 MiB (draft: 0.000 MiB)
0.34.008.705 I srv  server_strea: conv_id= (empty=1)
0.34.146.752 I srv        update:  - cache state: 12 prompts, 173.686 MiB (limits: 8192.000 MiB, 12800 tokens, 924352 est)
0.34.146.753 I srv        update:    - prompt 0x55b3338ef970:     159 tokens, checkpoints:  1,     4.617 MiB
0.34.146.803 I slot get_availabl: id  0 | task -1 | selected slot by id (0)
0.34.146.878 I slot launch_slot_: id  0 | task 357 | processing task, is_child = 0
"""


def test_the_log_of_the_last_server_run_gives_its_saves_updates_and_launches() -> None:
    got = read_cache_log(LOG)
    assert got.launches == pytest.approx([1.724705, 34.008475, 34.146878])  # not the old run's
    update, empty_save, big_save = got.events
    # the update the server timed itself, ending at its "took" line
    assert update.kind == "update" and update.seconds == pytest.approx(0.00258)
    assert update.start == pytest.approx(1.724648 - 0.00258)
    # an idle slot with nothing in it: over at the loop's next slot line
    assert empty_save.kind == "idle_save" and empty_save.seconds == pytest.approx(0.00002)
    # the 6,159-token save ran until the loop's next slot line, 138 ms later; the HTTP thread's
    # line in between does not end it
    assert big_save.kind == "idle_save" and big_save.mib == pytest.approx(25.621)
    assert big_save.seconds == pytest.approx(34.146803 - 34.008475)


def test_a_log_without_a_server_run_or_stamps_has_nothing() -> None:
    assert read_cache_log("").events == [] and read_cache_log("no stamps here\n").launches == []


def test_the_logs_clock_is_laid_beside_the_requests_only_when_each_request_launched_a_task() -> None:
    launches = [1.0, 2.0, 3.0]
    starts = [101.001, 102.003, 103.2]  # the last launched late (the loop was busy)
    assert align(launches, starts) == pytest.approx(100.003)
    assert align(launches, starts[:2]) is None  # a request that launched no task, or a stranger's
    assert align([], []) is None


def test_work_counts_inside_a_batch_from_the_slack_before_its_start() -> None:
    events = [(10.0, 0.5), (19.99, 0.25), (30.0, 9.0)]
    assert work_inside(events, [(10.0, 12.0), (20.0, 22.0)]) == (0.75, 2)
    assert work_inside(events, []) == (0.0, 0)


def _rec(
    rep: int, t: float, ttft: float, prompt_ms: float, depth: int = 6000, streams: int = 1
) -> RequestRecord:
    return RequestRecord(
        kind="cell", rep=rep, n_in=64, n_out=16, t_start=t, ttft_s=ttft, wall_s=1.0,
        timings={"prompt_ms": prompt_ms}, depth=depth, concurrency=streams,
    )  # fmt: skip


def test_beyond_the_prompt_timer_needs_both_times() -> None:
    assert outside_ms(_rec(0, 0.0, 0.5, 100.0)) == pytest.approx(400.0)
    r = _rec(0, 0.0, 0.5, 100.0)
    r.timings = {}
    assert outside_ms(r) is None


def _cell(beyond: list[float], cache_s: float | None, reps: int = 3) -> CellSummary:
    c = CellSummary(6000, 1, reps=reps, requests=len(beyond))
    c.ttft_beyond, c.cache_s, c.cache_events = m.stat(beyond), cache_s, reps
    return c


def test_the_prompt_cache_is_named_only_when_its_work_covers_the_wait() -> None:
    wait = [0.4, 0.4, 0.4]
    assert cache_note(_cell(wait, 3 * 0.4 * SHARE)) is not None  # at the share: named
    assert cache_note(_cell(wait, 3 * 0.4 * SHARE * 0.9)) is None  # below it: not
    assert cache_note(_cell(wait, None)) is None  # the log's work could not be placed
    small = [MIN_BEYOND_S / 2] * 3
    assert cache_note(_cell(small, 10.0)) is None  # nothing worth explaining


def test_cells_get_the_work_of_their_own_batches_and_a_flag_names_where() -> None:
    recs = [_rec(0, 100.0, 0.5, 100.0), _rec(1, 110.0, 0.5, 100.0), _rec(0, 200.0, 0.11, 100.0, depth=0)]
    deep, shallow = CellSummary(6000, 1, reps=2, requests=2), CellSummary(0, 1, reps=1, requests=1)
    named = add_cache_work([deep, shallow], recs, [(100.001, 0.38), (110.0, 0.36), (150.0, 5.0)])
    assert named == [deep] and deep.cache_events == 2 and deep.cache_s == pytest.approx(0.74)
    assert deep.notes and "named, the host-RAM prompt cache" in deep.notes[0]
    assert shallow.cache_s == 0 and shallow.notes == []
    flag = cache_flag(named)
    assert flag is not None and "6,000 x 1" in flag and "cache_ram = 0" in flag
    assert cache_flag([]) is None


def test_without_placed_work_the_cells_keep_the_wait_and_no_cache_figure() -> None:
    cell = CellSummary(6000, 1, reps=1, requests=1)
    assert add_cache_work([cell], [_rec(0, 1.0, 0.5, 100.0)], None) == []
    assert cell.ttft_beyond is not None and cell.cache_s is None and cell.notes == []


def test_a_mangled_log_never_raises() -> None:
    rng = random.Random(7)
    lines = LOG.splitlines()
    for _ in range(300):
        mangled = [
            "".join(c if rng.random() > 0.05 else rng.choice(" .0123456789x|") for c in line)
            for line in rng.sample(lines, k=rng.randint(0, len(lines)))
        ]
        got = read_cache_log("\n".join(mangled))
        assert all(e.seconds >= 0 for e in got.events)


def _resumed(tmp_path: Path) -> tuple[LaneResult, list[RequestRecord]]:
    """A resumed lane: two kept requests an earlier server measured (depth 0), three this log's
    last run launched (depth 6000, one per batch); its log holds both runs."""
    log = tmp_path / "lane.log"
    log.write_text(LOG)
    kept = [_rec(0, 500.0, 0.2, 100.0, depth=0), _rec(1, 510.0, 0.2, 100.0, depth=0)]
    own = [_rec(0, 1001.7248, 0.5, 100.0), _rec(1, 1034.0085, 0.5, 100.0), _rec(2, 1034.1469, 0.5, 100.0)]
    lane = LaneResult(name="L", lane=LaneSpec(name="L"), samples=kept + own, log_path=str(log))
    return lane, kept


def test_a_resumed_lanes_log_is_laid_beside_the_requests_its_last_server_run_measured(tmp_path: Path) -> None:
    job = JobSpec(n_in=64, n_out=16, depths=[0, 6000], concurrency=[1])
    lane, kept = _resumed(tmp_path)
    summarize_envelope(lane, job, None, kept)
    cells = {(c.depth, c.concurrency): c for c in lane.envelope}
    assert cells[(6000, 1)].cache_s is not None and cells[(6000, 1)].cache_events > 0
    assert cells[(0, 1)].cache_s is None  # an earlier server's cell: its log run is not this one
    assert cells[(0, 1)].ttft_beyond is not None  # its wait is still the requests' own figure
    lane, _ = _resumed(tmp_path)
    summarize_envelope(lane, job)  # every request taken as this run's: five against three launches
    assert all(c.cache_s is None for c in lane.envelope)
