"""Tests for namelab.runs.env: environment facts and the thread count that adapts to busy neighbours.

    .venv/bin/python -m pytest tests/test_env.py -q
"""

from __future__ import annotations

import itertools

import pytest
import torch

from namelab.runs import env


@pytest.fixture()
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class FakeMachine:
    """``/proc/stat`` busy seconds, this process's CPU seconds and a clock, advanced by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.now, self.busy, self.own = 0.0, 100.0, 5.0
        monkeypatch.setattr(env, "_busy_seconds", lambda cpus: self.busy)
        monkeypatch.setattr(env, "_own_seconds", lambda: self.own)
        monkeypatch.setattr(env.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(env.time, "sleep", lambda seconds: self.advance(seconds, others=0.0, own=0.0))
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def advance(self, seconds: float, *, others: float, own: float) -> None:
        """``seconds`` pass; other processes keep ``others`` CPUs busy, this one ``own``."""
        self.now += seconds
        self.busy += (others + own) * seconds
        self.own += own * seconds


def two_cpu_threads() -> env.AdaptiveThreads:
    threads = env.AdaptiveThreads()
    threads.cpus, threads.most = {0, 1}, 2  # the machine this test pretends to run on
    return threads


@pytest.mark.parametrize(
    ("others", "own", "expected"),
    [(0.0, 2.0, 2), (0.1, 1.9, 2), (1.0, 1.0, 1), (0.5, 1.5, 1), (2.0, 0.0, 1)],
)
def test_threads_leave_cpus_busy_with_other_processes(monkeypatch, threads_restored, others, own, expected) -> None:
    machine = FakeMachine(monkeypatch)
    threads = two_cpu_threads()
    torch.set_num_threads(2)
    assert threads.start() == 2  # the start sample saw an idle machine
    machine.advance(1.5, others=others, own=own)  # an epoch
    assert threads.update() == expected == torch.get_num_threads()
    assert threads.neighbours == pytest.approx(others)


def test_threads_come_back_when_the_neighbour_stops(monkeypatch, threads_restored) -> None:
    machine = FakeMachine(monkeypatch)
    threads = two_cpu_threads()
    threads.start()
    counts = []
    for others in itertools.chain([1.0] * 2, [0.0] * 2):
        machine.advance(2.0, others=others, own=2.0 - others)
        counts.append(threads.update())
    assert counts == [1, 1, 2, 2]


def test_a_user_thread_count_is_left_alone(monkeypatch, threads_restored) -> None:
    machine = FakeMachine(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads = two_cpu_threads()
    torch.set_num_threads(2)
    threads.start()
    machine.advance(1.0, others=1.0, own=1.0)
    assert threads.update() == 2


def test_without_proc_stat_torch_keeps_its_count(monkeypatch, threads_restored) -> None:
    monkeypatch.setattr(env, "_busy_seconds", lambda cpus: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = two_cpu_threads()
    torch.set_num_threads(2)
    assert threads.start() == 2 and threads.update() == 2


def test_proc_stat_is_read_where_there_is_one() -> None:
    busy = env._busy_seconds({0})
    assert busy is None or busy > 0


def test_environment_and_machine_facts() -> None:
    facts = env.machine()
    assert facts["torch"] == torch.__version__ and facts["threads"] == torch.get_num_threads()
    assert facts["usable_cpus"] >= 1 and len(facts["load_average"]) == 3 and facts["cpu"]
