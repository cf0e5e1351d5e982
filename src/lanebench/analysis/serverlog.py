"""A server's log file as lanebench writes it: ``ServerProcess`` starts every server run with a
``$ argv`` line and appends, so one file can hold several runs (a port retried, a lane resumed
after an interruption). What a run's log says of its server (buffers, prompt-cache work, its
clock) is read from the last run only (pure)."""

from __future__ import annotations

RUN_MARK = "$ "


def last_run(text: str) -> str:
    """The lines of the file's last server run, from its ``$ argv`` line (all of ``text`` when
    no line starts one)."""
    at = text.rfind("\n" + RUN_MARK)
    return text[at + 1 :] if at >= 0 else text
