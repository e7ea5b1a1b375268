"""The names of concurrent requests go through each model in one forward pass, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import torch

from .runs import ServedModel


class Busy(RuntimeError):
    """More work is waiting than the server accepts; the client should retry later."""


@dataclass
class _Waiting:
    texts: list[str]
    model_names: tuple[str, ...]
    future: asyncio.Future
    work: int


def work_of(texts: Sequence[str], models: int = 1) -> int:
    """What a forward pass over ``texts`` costs, in character steps: the unit the server's limits use."""
    return sum(map(len, texts)) * models


class Batcher:
    """Runs the names of concurrent requests through each model in one forward pass.

    A request's names wait for the next pass, which takes every request that arrived
    meanwhile (in particular while the previous pass ran): under load the batches grow by
    themselves, and a lone request waits for nothing. One pass over many names costs far
    less than many passes over a few each (docs/benchmarks.md).

    Passes run one at a time on one worker thread, never on the event loop: while a
    large request is being computed, the loop still answers ``/healthz``, accepts
    connections and queues the next requests. At most ``max_waiting`` character steps
    (see :func:`work_of`) may wait for a pass; beyond that :meth:`probabilities` raises
    :class:`Busy` instead of letting the queue (and every client's wait) grow.
    """

    def __init__(self, models: Sequence[ServedModel], chunk: int = 256, max_waiting: int | None = None):
        self.models = {m.name: m for m in models}
        # Names per forward call (the predictor sorts them by length first): larger chunks
        # gained nothing per name (docs/benchmarks.md).
        self.chunk = chunk
        self.max_waiting = max_waiting
        self.passes = 0  # forward passes run: how well requests coalesce
        self._lock = threading.Lock()  # an app may be driven from several event loops (test clients)
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}
        self._draining: set[asyncio.AbstractEventLoop] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="namelab-model")

    def waiting_work(self) -> int:
        with self._lock:
            return sum(entry.work for entries in self._waiting.values() for entry in entries)

    async def probabilities(self, texts: list[str], model_names: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{model: (N, C) probabilities}`` of already normalized names."""
        loop = asyncio.get_running_loop()
        entry = _Waiting(texts, tuple(model_names), loop.create_future(), work_of(texts, len(model_names)))
        with self._lock:
            if self.max_waiting is not None:
                waiting = sum(e.work for entries in self._waiting.values() for e in entries)
                if waiting and waiting + entry.work > self.max_waiting:
                    raise Busy(f"the server has {waiting} character steps of work waiting; retry in a moment")
            self._waiting.setdefault(loop, []).append(entry)
            start = loop not in self._draining
            self._draining.add(loop)
        if start:
            loop.create_task(self._drain(loop))
        return await entry.future

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run passes on the worker until nothing of this loop is waiting."""
        while True:
            with self._lock:
                batch = [e for e in self._waiting.pop(loop, []) if not e.future.done()]  # done: the client left
                if not batch:
                    self._draining.discard(loop)
                    return
            work: dict[str, list[str]] = {}
            for entry in batch:
                for name in entry.model_names:
                    work.setdefault(name, []).extend(entry.texts)
            self.passes += 1
            try:
                probs = await loop.run_in_executor(self._executor, self._compute, work)
            except Exception as err:  # noqa: BLE001 - handed to every waiting request
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(err)
                continue
            offsets = dict.fromkeys(work, 0)
            for entry in batch:
                answer = {}
                for name in entry.model_names:
                    answer[name] = probs[name][offsets[name] : offsets[name] + len(entry.texts)]
                    offsets[name] += len(entry.texts)
                if not entry.future.done():
                    entry.future.set_result(answer)

    def _compute(self, work: dict[str, list[str]]) -> dict[str, torch.Tensor]:
        return {name: self.models[name].predictor.probabilities(texts, self.chunk) for name, texts in work.items()}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
