"""Facts about the machine and the software, and torch's CPU threading defaults.

    environment()          # {"cpu", "namelab", "torch", "python", "platform", "threads"}: run folders
    machine()              # the same plus CPU count and load: benchmarks
    set_wait_policy()      # before torch is imported: threads sleep instead of spinning while they wait

Why the wait policy: torch's OpenMP threads spin while they wait for each other at every
step. On a machine where another process keeps a core busy, a spinning thread steals the
time slice its partner needs, and a two-thread epoch runs several times slower than a
one-thread one. With ``OMP_WAIT_POLICY=PASSIVE`` a waiting thread yields its core
(bench/threads.py measures both, with and without a busy neighbour).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from . import __version__

WAIT_POLICY = "PASSIVE"


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


def set_wait_policy(environ: dict | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY`` to passive unless the user chose one; True when set here.

    OpenMP reads it once, when torch loads it: call this before ``import torch``.
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ:
        return False
    if "torch" in sys.modules:
        return False  # too late to matter, and changing it now would misreport what runs
    environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True


def environment() -> dict:
    """What a run folder records about where it was trained."""
    import torch

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
