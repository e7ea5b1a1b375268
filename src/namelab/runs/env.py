"""Facts about the machine and the software, and how many CPU threads torch should use.

    environment()          # {"cpu", "namelab", "torch", "python", "platform", "threads"}: run folders
    machine()              # the same plus CPU count and load: benchmarks
    threads = AdaptiveThreads(); threads.start(); ...; threads.update()   # between epochs

Why adapt: torch's OpenMP threads spin while they wait for each other at every step.
When another process keeps a core busy, a spinning thread takes the time slice its
partner needs, and a two-thread epoch runs several times slower than a one-thread one.
So, unless ``--threads`` is given, namelab measures how many CPUs other processes keep
busy (from ``/proc/stat``, less its own CPU time) and runs torch on the CPUs left: all of
them on an idle machine, fewer beside a busy neighbour, re-checked after every epoch.
bench/threads.py measures this against torch's default, idle and beside a busy process.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch

from ..version import __version__


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def environment() -> dict:
    """What a run folder records about where it was trained."""
    return {
        "cpu": cpu_name(),
        "namelab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def machine() -> dict:
    """What a benchmark records: :func:`environment` plus the CPUs and the load when it started."""
    return {
        **environment(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# -- threads that leave busy CPUs to their owners ---------------------------------------------


def _busy_seconds(cpus: set[int]) -> float | None:
    """CPU-seconds the CPUs in ``cpus`` have spent busy since boot, from ``/proc/stat``; None elsewhere."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = 0
    found = False
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
            busy += user + nice + system + irq + softirq + steal
            found = True
    return busy / os.sysconf("SC_CLK_TCK") if found else None


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class AdaptiveThreads:
    """Sets torch's thread count to the CPUs that other processes leave free.

    ``start()`` samples the machine for ``window`` seconds; ``update()`` measures what
    others used since the last call (nothing to wait for: call it between epochs). The
    count never exceeds torch's own default (one per core) nor drops below one. A
    neighbour counts from a quarter of a CPU: beside even a part-time spinner, two
    threads that must meet at every step lose more than one thread alone.
    """

    def __init__(self, window: float = 0.1):
        self.window = window
        self.cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        self.most = max(1, min(torch.get_num_threads(), len(self.cpus)))
        self._mark: tuple[float, float, float] | None = None
        self.neighbours = 0.0

    def _sample(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self.cpus)
        return None if busy is None else (time.monotonic(), busy, _own_seconds())

    def start(self) -> int:
        if self.most == 1 or "OMP_NUM_THREADS" in os.environ:
            return torch.get_num_threads()  # one CPU, or the user chose: nothing to adapt
        self._mark = self._sample()
        if self._mark is not None:
            time.sleep(self.window)
        return self.update()

    def update(self) -> int:
        now = self._sample()
        if now is None or self._mark is None:
            return torch.get_num_threads()  # nothing to measure with: leave torch's choice
        wall = now[0] - self._mark[0]
        if wall > 0:
            others = (now[1] - self._mark[1]) - (now[2] - self._mark[2])
            self.neighbours = max(0.0, others / wall)
        self._mark = now
        threads = max(1, min(self.most, math.floor(len(self.cpus) - self.neighbours + 0.25)))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        return threads
