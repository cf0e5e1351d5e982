"""Which cells of an interrupted envelope lane a resume keeps: every cell before the one the lane
was measuring (it had moved on from them), their batches, and the fills of depths it finished
whole; nothing when it finished no cell; the standard job keeps nothing."""

from __future__ import annotations

from lanebench.analysis.finished_cells import cell_order, kept_cells
from lanebench.config.job import JobSpec
from lanebench.config.lanes import LaneSpec
from lanebench.orchestration.resume_step import kept_lanes, other_machine
from lanebench.records.lane import LaneResult
from lanebench.records.samples import AggregateRecord, RequestRecord, SampleKind

Records = tuple[list[RequestRecord], list[AggregateRecord]]
JOB = JobSpec(n_in=32, n_out=8, reps=2, depths=[0, 512], concurrency=[1, 2])


def req(kind: SampleKind, depth: int, streams: int, rep: int = 0) -> RequestRecord:
    return RequestRecord(kind=kind, rep=rep, n_in=32, n_out=8, depth=depth, concurrency=streams)


def cell(depth: int, streams: int, reps: int = 2) -> tuple[list[RequestRecord], list[AggregateRecord]]:
    samples = [req("cell", depth, streams, r) for r in range(reps) for _ in range(streams)]
    return samples, [
        AggregateRecord(rep=r, streams=streams, wall_s=1.0, tokens=8, depth=depth) for r in range(reps)
    ]


def lane_until(cells: list[tuple[int, int]], partial: tuple[int, int] | None = None) -> Records:
    samples: list[RequestRecord] = [req("warmup", 0, 1)]
    batches: list[AggregateRecord] = []
    filled: set[int] = set()
    for d, c in [*cells, *([partial] if partial else [])]:
        if d > 0 and d not in filled:
            samples += [req("fill", d, 1), req("fill", d, 1)]
            filled.add(d)
        s, b = cell(d, c, 1 if (d, c) == partial else 2)
        samples, batches = samples + s, batches + b
    return samples, batches


def test_cells_are_measured_depth_by_depth() -> None:
    assert cell_order(JOB) == [(0, 1), (0, 2), (512, 1), (512, 2)]


def test_interrupted_in_the_third_cell_keeps_the_two_before_it_and_no_fill() -> None:
    samples, batches = lane_until([(0, 1), (0, 2)], partial=(512, 1))
    kept = kept_cells(samples, batches, JOB)
    assert kept is not None and kept.cells == {(0, 1), (0, 2)} and kept.of == 4
    assert sorted((r.kind, r.depth, r.concurrency) for r in kept.samples) == sorted(
        [("cell", 0, 1)] * 2 + [("cell", 0, 2)] * 4
    )  # no warm-up (the resumed server warms up again), no fill of the depth it was inside
    assert [(a.depth, a.streams) for a in kept.aggregates] == [(0, 1), (0, 1), (0, 2), (0, 2)]
    assert "resumed: 2 of 4 cells kept" in kept.flag()


def test_a_depth_finished_whole_keeps_its_fills() -> None:
    job = JobSpec(n_in=32, n_out=8, depths=[0, 512, 1024], concurrency=[1])
    samples, batches = lane_until([(0, 1), (512, 1)], partial=(1024, 1))
    kept = kept_cells(samples, batches, job)
    assert kept is not None and kept.cells == {(0, 1), (512, 1)}
    assert [r.depth for r in kept.samples if r.kind == "fill"] == [512, 512]


def test_nothing_finished_keeps_nothing() -> None:
    samples, batches = lane_until([], partial=(0, 1))
    assert kept_cells(samples, batches, JOB) is None
    assert kept_cells([req("warmup", 0, 1)], [], JOB) is None


class FakeStore:
    """A fake results store: one finished lane and one interrupted in its third cell."""

    def __init__(self) -> None:
        samples, batches = lane_until([(0, 1), (0, 2)], partial=(512, 1))
        spec = LaneSpec(name="x", model="/m.gguf")
        self.lanes = [
            LaneResult(name="done", lane=spec, samples=list(samples), aggregates=list(batches)),
            LaneResult(name="cut", lane=spec, samples=list(samples), aggregates=list(batches)),
        ]

    def finished_lane_names(self, run_id: str) -> set[str]:
        return {"done"}

    def load_lanes(self, run_id: str) -> list[LaneResult]:
        return self.lanes


def test_only_unfinished_lanes_of_an_envelope_run_keep_cells() -> None:
    store = FakeStore()
    assert set(kept_lanes(store, "r", JOB, ["done", "cut"])) == {"cut"}
    assert kept_lanes(store, "r", JOB, ["done"]) == {}
    assert kept_lanes(store, "r", JobSpec(n_in=32, n_out=8), ["done", "cut"]) == {}  # the standard job


def test_a_lane_filling_the_next_depth_had_finished_the_cell_before() -> None:
    samples, batches = lane_until([(0, 1), (0, 2)])
    samples += [req("fill", 512, 1)]  # interrupted while filling depth 512
    kept = kept_cells(samples, batches, JOB)
    assert kept is not None and kept.cells == {(0, 1), (0, 2)}
    assert not [r for r in kept.samples if r.kind == "fill"]  # depth 512 was not finished: filled anew


def test_a_report_shows_the_finished_cells_of_a_lane_that_never_finished() -> None:
    from lanebench.records.lane import LaneStatus, RunStatus
    from lanebench.records.run import RunInfo
    from lanebench.report.data import RunData, finished_cells

    samples, batches = lane_until([(0, 1), (0, 2)], partial=(512, 1))
    spec = LaneSpec(name="x", model="/m.gguf")
    cut = LaneResult(name="cut", lane=spec, status=LaneStatus.FAILED, samples=samples, aggregates=batches)
    done = LaneResult(name="done", lane=spec, samples=list(samples), aggregates=list(batches))
    info = RunInfo(run_id="r", started_at="2026-12-04T00:00:00+00:00", lanebench_version="0", job=JOB,
                   status=RunStatus.INTERRUPTED)  # fmt: skip
    finished_cells(RunData(run=info, lanes=[cut, done]), {"done"})
    assert [c.key for c in cut.envelope] == [(0, 1), (0, 2)]  # not the cell it was inside
    assert cut.flags == [
        "never finished: the 2 of 4 envelope cells it finished before it stopped are shown, from its "
        "stored samples (the server log is not read here: no KV in use)"
    ]
    assert done.envelope == [] and done.flags == []  # a finished lane keeps what it stored


HOST = {"hostname": "vm", "machine": "x86_64", "cpu": "Intel(R) Xeon(R) Processor", "cpus": 16,
        "kernel": "6.18.44", "os": "Linux-6.18.44-x86_64", "ram_bytes": 135129063424,
        "python": "3.12.3"}  # fmt: skip
BUILDS = {"/b/llama-server": {"build": 11434, "commit": "unknown", "can_mtp": True}}


def test_a_resume_continues_only_on_the_host_and_build_that_began_the_run() -> None:
    run = {"host": HOST, "builds": BUILDS}
    assert other_machine("R", run, {"host": dict(HOST), "builds": BUILDS}) is None
    # what may move on one machine: memory by a little, Python, a build this run did not use
    same = {**HOST, "ram_bytes": HOST["ram_bytes"] - 2**20, "python": "3.12.4"}
    assert other_machine("R", run, {"host": same, "builds": {"/other/llama-server": {"build": 1}}}) is None
    kernel = other_machine("R", run, {"host": {**HOST, "kernel": "6.8.0"}, "builds": BUILDS})
    assert kernel is not None and "--resume R" in kernel and "kernel" in kernel and "'6.8.0'" in kernel
    cores = other_machine("R", run, {"host": {**HOST, "cpus": 2}, "builds": BUILDS})
    assert cores is not None and "cpus" in cores
    ram = other_machine("R", run, {"host": {**HOST, "ram_bytes": 2**34}, "builds": BUILDS})
    assert ram is not None and "125.8 GiB" in ram and "16.0 GiB" in ram
    rebuilt = {"/b/llama-server": {"build": 11500, "commit": "unknown"}}
    build = other_machine("R", run, {"host": HOST, "builds": rebuilt})
    assert build is not None and "/b/llama-server" in build and "11434" in build and "11500" in build


def test_a_run_stored_before_hosts_were_recorded_resumes() -> None:
    assert other_machine("R", {"host": {}, "builds": {}}, {"host": HOST, "builds": BUILDS}) is None
