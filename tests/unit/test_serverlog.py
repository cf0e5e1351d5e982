"""The last server run of a log lanebench wrote (fakes: hand-written log lines)."""

from __future__ import annotations

from lanebench.analysis.serverlog import RUN_MARK, last_run


def test_the_last_run_starts_at_its_argv_line() -> None:
    text = f"{RUN_MARK}srv --port 1\nload a\nexit\n{RUN_MARK}srv --port 2\nload b\n"
    assert last_run(text) == f"{RUN_MARK}srv --port 2\nload b\n"


def test_a_log_of_one_run_or_none_is_whole() -> None:
    one = f"{RUN_MARK}srv --port 1\nload a\n"
    assert last_run(one) == one
    assert last_run("load a\nload b\n") == "load a\nload b\n"
    assert last_run("") == ""


def test_a_mark_inside_a_line_does_not_start_a_run() -> None:
    text = f"{RUN_MARK}srv\nprompt: pay {RUN_MARK}5 now\n"
    assert last_run(text) == text
