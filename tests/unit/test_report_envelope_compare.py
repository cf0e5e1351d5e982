"""``compare`` of two runs' envelopes, cell by cell: a change beyond both runs' spread is named
(B better / B worse), one inside it is "no measurable difference", a cell only one run measured
says so, and two plain runs add nothing."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.test_report_envelope import SLOW, lane

from lanebench.cli import results_cmd
from lanebench.report.envelope_compare import envelope_compare_rows, envelope_compare_table


def by(rows: list[dict[str, Any]], figure: str) -> dict[tuple[int, int], dict[str, Any]]:
    return {(r["depth"], r["concurrency"]): r for r in rows if r.get("figure") == figure}


def test_a_faster_cell_is_named_and_one_within_noise_is_not() -> None:
    b = {**SLOW, (4096, 2): 100.0}  # only this cell changed, by 18% (each side ±2%)
    rows = envelope_compare_rows([lane("plain", SLOW)], [lane("plain", b)])
    decode = by(rows, "decode")
    assert decode[(4096, 2)]["verdict"].startswith("B better (min–max ranges apart")
    assert decode[(4096, 2)]["ratio"] == 100.0 / 85.0
    assert decode[(0, 1)]["verdict"].startswith("no measurable difference")
    assert by(rows, "aggregate")[(4096, 2)]["verdict"].startswith("B better")
    # time to first token: lower is better, and it did not change
    assert by(rows, "ttft")[(4096, 2)]["verdict"].startswith("no measurable difference")


def test_slower_is_worse_and_a_cell_in_one_run_only_is_listed() -> None:
    b = {k: v * 0.8 for k, v in SLOW.items() if k != (4096, 2)}
    rows = envelope_compare_rows([lane("plain", SLOW)], [lane("plain", b)])
    assert by(rows, "decode")[(0, 1)]["verdict"].startswith("B worse")
    assert {"lane": "plain", "depth": 4096, "concurrency": 2, "only_in": "A"} in rows
    t = envelope_compare_table("r1", "r2", rows)
    assert t.title == "Envelope: Compare A = r1 with B = r2"
    assert ["plain", "4,096", "2", "–", "–", "–", "–", "only in run A"] in t.rows
    row = next(r for r in t.rows if r[:4] == ["plain", "0", "1", "decode per stream"])
    assert row[4] == "100.0 tok/s (98.0–102.0)" and row[5] == "80.0 tok/s (78.4–81.6)"
    assert row[6].startswith("0.800 (") and row[7].startswith("B worse")


def test_busy_cells_are_marked() -> None:
    rows = envelope_compare_rows([lane("plain", SLOW, busy=3)], [lane("plain", SLOW)])
    t = envelope_compare_table("r1", "r2", rows)
    assert t.rows[0][4].endswith(" [busy 3/3]") and not t.rows[0][5].endswith("]")
    assert "[busy k/n]" in t.caption


def test_plain_runs_have_no_envelope_rows() -> None:
    assert envelope_compare_rows([lane("plain", {(0, 1): 80.0})], [lane("plain", {(0, 1): 90.0})]) == []
    assert envelope_compare_rows([lane("plain", SLOW)], [lane("other", SLOW)]) == []


class StoredLanes:
    """Stands in for the store (which does not keep envelopes yet): run id -> its lanes."""

    def __init__(self, runs: dict[str, list[Any]]) -> None:
        self.runs = runs

    def load_lanes(self, run_id: str) -> list[Any]:
        return self.runs[run_id]


def test_the_compare_command_adds_the_cells(monkeypatch: Any, capsys: Any) -> None:
    runs = {"r1": [lane("plain", SLOW)], "r2": [lane("plain", {**SLOW, (4096, 2): 100.0})]}
    monkeypatch.setattr(results_cmd, "_store", lambda db: StoredLanes(runs))
    results_cmd.compare("r1", "r2", db=None, json_out=True, markdown=False)
    doc = json.loads(capsys.readouterr().out)
    assert by(doc["envelope"], "decode")[(4096, 2)]["verdict"].startswith("B better")
    results_cmd.compare("r1", "r2", db=None, json_out=False, markdown=True)
    assert "### Envelope: Compare A = r1 with B = r2" in capsys.readouterr().out
    plain = {"r1": [lane("plain", {(0, 1): 80.0})], "r2": [lane("plain", {(0, 1): 80.0})]}
    monkeypatch.setattr(results_cmd, "_store", lambda db: StoredLanes(plain))
    results_cmd.compare("r1", "r2", db=None, json_out=True, markdown=False)
    assert "envelope" not in json.loads(capsys.readouterr().out)
