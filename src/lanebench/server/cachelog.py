"""What llama-server's own log says its host-RAM prompt cache cost, and when.

b11434 at ``-lv 4`` stamps every line with the time since its log started (``M.SS.mmm.uuu``) and
logs two kinds of prompt-cache work, both on the server's one loop (while they run, no slot
prefills or decodes):

- saving idle slots when a new task starts (``--cache-idle-slots``, on by default): a line
  ``saving idle slot to prompt cache``, then the save's own ``srv`` lines; the save took until the
  loop's next ``slot`` line (it goes straight on to the task it launched; the ``srv`` lines the
  HTTP threads write meanwhile do not end it);
- updating the cache when a slot is chosen for a task (``updating prompt cache`` … ``prompt cache
  update took X ms``): the server times this itself.

It also logs each task it launches (``processing task, is_child = 0``): one per completion
request, which is how the log's clock is laid beside the requests' (``analysis.cachework.align``).
Only the last server run in the file counts (``ServerProcess`` starts each with a ``$ argv`` line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lanebench.analysis.serverlog import last_run

_STAMP = re.compile(r"^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) ")
_IDLE = "saving idle slot to prompt cache"
_LAUNCH = "processing task, is_child = 0"
_UPDATE_TOOK = re.compile(r"prompt cache update took (\d+(?:\.\d+)?) ms")
# the server's loop logs per slot ("I slot ..."); its HTTP threads log "srv ..." lines at any time
_SLOT_LINE = re.compile(r"^\S+ \w slot ")
_SIZE = re.compile(r"total state size = (\d+(?:\.\d+)?) MiB")


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One piece of prompt-cache work: when it started (s on the log's clock), how long it took
    (s), what it was (``idle_save`` or ``update``) and the state it saved (MiB, when logged)."""

    start: float
    seconds: float
    kind: str
    mib: float | None = None


@dataclass(slots=True)
class CacheLog:
    """The prompt-cache work of one server run and the times it launched tasks (its log's clock)."""

    events: list[CacheEvent] = field(default_factory=list)
    launches: list[float] = field(default_factory=list)


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    if m is None:
        return None
    minutes, sec, ms, us = (int(g) for g in m.groups())
    return minutes * 60 + sec + ms / 1e3 + us / 1e6


def _last_run(text: str) -> list[tuple[float, str]]:
    """The time-stamped lines of the last server run in the log."""
    return [(t, line) for line in last_run(text).splitlines() if (t := _stamp(line)) is not None]


def _idle_save(rows: list[tuple[float, str]], i: int) -> tuple[float, float | None, int]:
    """The idle save starting at row ``i``: its seconds, the state it saved, the next row's index."""
    start, mib, j = rows[i][0], None, i + 1
    while j < len(rows) and not _SLOT_LINE.match(rows[j][1]):
        if mib is None and (m := _SIZE.search(rows[j][1])):
            mib = float(m.group(1))
        j += 1
    end = rows[j][0] if j < len(rows) else rows[j - 1][0]
    return max(0.0, end - start), mib, j


def read_cache_log(text: str) -> CacheLog:
    """Every prompt-cache save and update, and every task launch, of the log's last server run."""
    rows = _last_run(text)
    out = CacheLog()
    i = 0
    while i < len(rows):
        t, line = rows[i]
        if _IDLE in line:
            seconds, mib, i = _idle_save(rows, i)
            out.events.append(CacheEvent(t, seconds, "idle_save", mib))
            continue
        if _LAUNCH in line:
            out.launches.append(t)
        elif m := _UPDATE_TOOK.search(line):
            seconds = float(m.group(1)) / 1e3
            out.events.append(CacheEvent(t - seconds, seconds, "update"))
        i += 1
    return out
