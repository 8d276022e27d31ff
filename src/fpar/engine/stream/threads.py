"""How many threads a stream computes with: the cores other processes leave it (docs/streaming.md).

A push is hundreds of small operations, each ending in a barrier where PyTorch's threads wait for
each other. On a CPU other processes use, one descheduled thread holds every barrier up, so two
threads on two busy cores made each push several times slower than one thread (measured: 1.8
against 9.0 frames/s on a loaded 2-core AVX2 machine). A stream that uses only the cores that are
free slows in proportion to the load instead. :class:`ThreadChooser` reads the machine's idle time
(``/proc/stat``) and the process's own CPU time at most once a second and sets the thread count
to the cores idle or used by this process (at least one, at most PyTorch's default) while a push
computes; elsewhere (no ``/proc/stat``) it keeps PyTorch's default.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Iterator

import torch

from fpar.errors import FparError

AUTO = "auto"
REVIEW_SECONDS = 1.0  # how often the free cores are looked at again


def _cpu_times() -> tuple[float, float] | None:
    """``(idle, total)`` jiffies of all cores together, from /proc/stat; None where unavailable."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [float(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is already counted in user time


class ThreadChooser:
    """The thread count a push uses (``count``); :meth:`chosen` sets it while a push computes."""

    def __init__(self, most: int, fixed: bool) -> None:
        self.most, self.fixed, self.count = most, fixed, most
        self._since: tuple[float, float, tuple[float, float]] | None = None  # wall, process CPU, /proc/stat

    @classmethod
    def for_setting(cls, threads: int | str) -> "ThreadChooser":
        """``"auto"`` (follow the free cores, up to PyTorch's default) or a fixed positive count."""
        if threads == AUTO:
            return cls(torch.get_num_threads(), fixed=False)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise FparError(f"stream threads must be 'auto' or a positive number, got {threads!r}")
        return cls(threads, fixed=True)

    def review(self) -> None:
        """Look at the free cores again if a second has passed since the last look."""
        if self.fixed or self.most == 1:
            return
        now, cpu, stat = time.perf_counter(), time.process_time(), _cpu_times()
        if stat is None:
            return
        if self._since is None:
            self._since = (now, cpu, stat)
            return
        wall = now - self._since[0]
        if wall < REVIEW_SECONDS:
            return
        idle, total = stat[0] - self._since[2][0], stat[1] - self._since[2][1]
        if total > 0:
            free = (os.cpu_count() or 1) * idle / total + (cpu - self._since[1]) / wall  # idle + our own share
            # rounded to the nearest core, a little towards fewer: a thread short of a core costs
            # a fraction of a push, a thread too many stalls every barrier
            self.count = max(1, min(self.most, math.floor(free + 0.4)))
        self._since = (now, cpu, stat)

    @contextlib.contextmanager
    def chosen(self) -> Iterator[None]:
        self.review()
        saved = torch.get_num_threads()
        if saved != self.count:
            torch.set_num_threads(self.count)
        try:
            yield
        finally:
            if saved != self.count:
                torch.set_num_threads(saved)
