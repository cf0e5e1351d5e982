"""What else runs beside a lane: /proc/stat and /proc/<pid>/stat parsing and the window
arithmetic on recorded /proc text (a real llama-server decoding beside a CPU burner), and
nvidia-smi pmon parsing on recorded output (tests/fixtures/proc, tests/fixtures/gpu_pmon)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanebench.busy.cpu import (
    TOLERANCE_CORES,
    Snapshot,
    busy_threshold,
    describe,
    parse_proc_stat,
    split_ticks,
    window_load,
)
from lanebench.busy.gpu import gpu_others, parse_pmon
from lanebench.busy.meter import LoadMeter
from lanebench.memory.proc import PidStat, live_group_pids, parse_pid_stat

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = FIXTURES / "proc" / "llama-server-beside-burner"
META = json.loads((RECORDED / "meta.json").read_text())
LANE, BURNER, SELF, HZ = META["lane_pgid"], META["burner_pid"], META["self_pid"], META["hz"]


def sections(name: str) -> tuple[float, str, list[str]]:
    """(monotonic time, /proc/stat text, /proc/<pid>/stat lines) of one recorded reading."""
    lines = (RECORDED / name).read_text().splitlines()
    t = float(lines[0].split()[2])
    at = lines.index("# /proc/<pid>/stat")
    return t, "\n".join(lines[2:at]) + "\n", lines[at + 1 :]


def recorded(name: str) -> Snapshot:
    t, stat, pids = sections(name)
    parsed = {int(line.split()[0]): parse_pid_stat(line) for line in pids}
    return Snapshot(t, parse_proc_stat(stat), {p: s for p, s in parsed.items() if s is not None})


def as_proc_tree(name: str, root: Path) -> Path:
    """The recorded reading as a /proc-like folder (what ``LoadMeter`` reads)."""
    _, stat, pids = sections(name)
    root.mkdir(parents=True)
    (root / "stat").write_text(stat)
    for line in pids:
        (root / line.split()[0]).mkdir()
        (root / line.split()[0] / "stat").write_text(line + "\n")
    return root


def test_proc_stat_is_read_from_the_recorded_text() -> None:
    _, stat, _ = sections("t0.txt")
    cpu = parse_proc_stat(stat)
    # cpu  728968 0 48360 165229 1040 0 563 2267 0 0: user+nice+system+irq+softirq; steal
    assert (cpu.busy, cpu.steal, cpu.cpus) == (728968 + 48360 + 563, 2267, 2)
    assert parse_proc_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\n").busy == 6  # an old kernel: 4 fields
    with pytest.raises(ValueError, match="no 'cpu' line"):
        parse_proc_stat("intr 1 2 3\n")


def test_pid_stat_fields_are_counted_after_the_command_name() -> None:
    _, _, pids = sections("t0.txt")
    server = next(line for line in pids if line.startswith(f"{LANE} "))
    st = parse_pid_stat(server)
    assert st is not None and st.comm == "llama-server" and st.pgrp == LANE
    assert (st.ticks, st.child_ticks, st.start) == (252 + 7, 0, 472851)
    odd = "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 5 3 1 20 0 1 0 999 0 0"
    assert parse_pid_stat(odd) == PidStat("a (b) c", 42, 12, 4, 999, "R")
    assert parse_pid_stat("10 (llama server) S 1 7 7 0") == PidStat("llama server", 7, state="S")  # cut short
    assert parse_pid_stat("garbage") is None and parse_pid_stat("1 (x) S 1 notanumber") is None


def test_the_burner_and_the_lane_are_told_apart_in_the_recorded_window() -> None:
    a, b = recorded("t0.txt"), recorded("t1.txt")
    split = split_ticks(a, b, [LANE], SELF)
    assert split.lane == (315 + 8) - (252 + 7)  # llama-server's utime+stime, 2 s apart
    assert split.own == (10 + 4) - (8 + 3) and split.children == 0  # the recorder itself
    burner = next(t for t in split.top if t[0] == BURNER)
    assert burner == (BURNER, "python3", (325 + 2) - (259 + 2))
    assert all(pid not in (LANE, SELF) for pid, _, _ in split.top)
    assert split.machine == (729367 + 48375 + 563) - (728968 + 48360 + 563)

    load = window_load(a, b, [LANE], SELF, HZ, busy_threshold(2, 2))
    seconds = b.t - a.t
    assert load.lane_cores == pytest.approx(split.lane / HZ / seconds, abs=1e-3)
    others = (split.machine - split.lane - split.own) / HZ / seconds
    assert load.other_cores == pytest.approx(others, abs=1e-3)
    assert load.other_cores > load.threshold_cores == TOLERANCE_CORES and load.busy and load.why == "CPU"
    assert load.other_share == pytest.approx((load.other_cores + load.steal_cores) / 2, abs=1e-3)
    assert "of 2 cores" in describe(load) and "used by other processes" in describe(load)


def test_the_meter_reads_a_proc_tree(tmp_path: Path) -> None:
    """The I/O path over the recorded text laid out as /proc: the same ticks as the pure one."""
    t0, t1 = as_proc_tree("t0.txt", tmp_path / "t0"), as_proc_tree("t1.txt", tmp_path / "t1")
    meter = LoadMeter([LANE], 2, proc=t0, self_pid=SELF)
    start = meter.snapshot()
    meter.proc = t1
    end = meter.snapshot()
    assert start is not None and end is not None and meter.active and meter.threshold == 0.25
    assert split_ticks(start, end, [LANE], SELF) == split_ticks(
        recorded("t0.txt"), recorded("t1.txt"), [LANE], SELF
    )
    assert LoadMeter(proc=tmp_path / "absent").start() is None  # no /proc/stat: the meter is off


def test_llama_benchs_time_is_the_lanes_when_it_runs_as_lanebenchs_child() -> None:
    a, b = recorded("t0.txt"), recorded("t1.txt")
    me = b.pids[SELF]
    grown = {**b.pids, SELF: PidStat(me.comm, me.pgrp, me.ticks, me.child_ticks + 150, me.start)}
    c = Snapshot(b.t, b.cpu, grown)
    as_lane = window_load(a, c, [], SELF, HZ, 0.25, children_are_lane=True)
    as_self = window_load(a, c, [], SELF, HZ, 0.25)
    assert as_lane.lane_cores == pytest.approx(150 / HZ / (b.t - a.t), abs=1e-3)
    assert as_self.lane_cores is None and as_self.self_cores > as_lane.self_cores


def test_a_reused_pid_counts_from_zero_and_a_renamed_worker_does_not() -> None:
    cpu = parse_proc_stat("cpu  0 0 0 0\ncpu0 0 0 0 0\n")
    before = Snapshot(0.0, cpu, {9: PidStat("kworker/0:1-events", 9, 100, 0, 5)})
    renamed = Snapshot(1.0, cpu, {9: PidStat("kworker/0:1-mm_percpu_wq", 9, 130, 0, 5)})
    reused = Snapshot(1.0, cpu, {9: PidStat("other", 9, 40, 0, 77)})
    assert split_ticks(before, renamed, [], 1).top == [(9, "kworker/0:1-mm_percpu_wq", 30)]
    assert split_ticks(before, reused, [], 1).top == [(9, "other", 40)]


@pytest.mark.parametrize(
    ("cores", "threads", "threshold"),
    [
        (2, 2, 0.25),  # the 2-core EPYC: every core is the lane's, a quarter of a core is too much
        (2, 1, 1.0),  # one idle core, but at most half the machine
        (16, 8, 8.0),
        (64, 8, 32.0),  # plenty of idle cores: half the machine (memory bandwidth is shared)
        (4, 8, 0.25),  # more threads than cores
        (1, 1, 0.25),
    ],
)
def test_busy_threshold(cores: int, threads: int, threshold: float) -> None:
    assert busy_threshold(cores, threads) == threshold


def test_pmon_rows_and_other_processes_on_the_lanes_gpu() -> None:
    pmon = FIXTURES / "gpu_pmon"
    assert parse_pmon((pmon / "pmon-idle.txt").read_text()) == []
    two = parse_pmon((pmon / "pmon-two-spin.txt").read_text())
    assert [(r.gpu, r.pid, r.sm, r.fb_mib) for r in two] == [(0, 566, 44.0, 1030.0), (0, 567, 55.0, 1030.0)]
    no_fb = parse_pmon((pmon / "pmon-two-spin-u.txt").read_text())
    assert [(r.pid, r.sm, r.fb_mib) for r in no_fb] == [(566, 59.0, None), (567, 39.0, None)]
    assert gpu_others(two, {566}) == (1030.0, 55.0)  # the lane is 566: 567 takes 55% of the SMs
    assert gpu_others(two, {12345}) is None  # the lane is not on a GPU: nothing to say
    one = parse_pmon((pmon / "pmon-one-spin.txt").read_text())
    assert gpu_others(one, {566}) == (0.0, 0.0)


def fake_pmon(folder: Path, recorded: str) -> Path:
    """A fake nvidia-smi (tests/fakes' kind: a script) that answers ``pmon`` with recorded output
    and counts its calls in ``calls``."""
    exe = folder / "nvidia-smi"
    exe.write_text(f'#!/bin/sh\necho x >> "{folder}/calls"\ncat "{FIXTURES / "gpu_pmon" / recorded}"\n')
    exe.chmod(0o755)
    return exe


def test_another_process_on_the_lanes_gpu_makes_a_window_busy(tmp_path: Path) -> None:
    """The recorded pmon of two busy loops sharing an H200 (pids 566 and 567); here 566 is the
    lane (process group 523) and 567 another process (group 600): 55% of the SMs went to it."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  100 0 0 1000\ncpu0 50 0 0 500\ncpu1 50 0 0 500\n")
    for pid, pgrp in ((566, 523), (567, 600)):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(
            f"{pid} (spin) R 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0\n"
        )
    smi = fake_pmon(tmp_path, "pmon-two-spin.txt")
    meter = LoadMeter([523], 2, proc=proc, self_pid=1, smi=str(smi))
    load = meter.stop(meter.start())
    assert load is not None and load.other_cores == 0.0  # the CPU was idle: busy by the GPU alone
    assert (load.gpu_other_sm, load.gpu_other_mib, load.busy, load.why) == (55.0, 1030.0, True, "GPU")
    cpu_lane = LoadMeter([777], 2, proc=proc, self_pid=1, smi=str(smi))  # not on any GPU
    for _ in range(3):
        load = cpu_lane.stop(cpu_lane.start())
        assert load is not None and load.gpu_other_sm is None and not load.busy
    assert len((tmp_path / "calls").read_text().split()) == 2  # asked once for the CPU lane, then never


def test_doctor_and_run_see_a_busy_gpu_before_anything_starts(tmp_path: Path) -> None:
    from lanebench.busy.gpu import busiest_gpu
    from lanebench.busy.meter import machine_load

    rows = parse_pmon((FIXTURES / "gpu_pmon" / "pmon-two-spin.txt").read_text())
    assert busiest_gpu(rows) == (2060.0, 99.0) and busiest_gpu([]) is None
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  100 0 0 1000\ncpu0 50 0 0 500\ncpu1 50 0 0 500\n")
    load = machine_load(0.01, 2, proc=proc, smi=str(fake_pmon(tmp_path, "pmon-one-spin.txt")))
    assert load is not None and load.busy and load.why == "GPU" and load.gpu_other_sm == 99.0
    idle = machine_load(0.01, 2, proc=proc, smi=str(fake_pmon(tmp_path, "pmon-idle.txt")))
    assert idle is not None and not idle.busy and idle.gpu_other_sm is None


def test_a_groups_live_processes_leave_out_the_exited_ones_awaiting_their_reaper(tmp_path: Path) -> None:
    # a fake /proc: the server (7) and its child (8) in group 7, a zombie of it (9), another group (10)
    for pid, state, pgrp in [(7, "S", 7), (8, "R", 7), (9, "Z", 7), (10, "S", 10)]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (p{pid}) {state} 1 {pgrp} {pgrp} 0")
    assert sorted(live_group_pids(7, tmp_path)) == [7, 8]
    assert live_group_pids(10, tmp_path) == [10] and live_group_pids(11, tmp_path) == []
    assert live_group_pids(7, tmp_path / "absent") == []  # no /proc (not Linux): nothing to wait for
