"""The names of concurrent requests go through each model in one forward pass."""

from __future__ import annotations

import asyncio
from typing import Sequence

import torch

from .runs import ServedModel


class Batcher:
    """Runs the names of concurrent requests through each model in one forward pass.

    A request's names wait for the next pass, which starts on the event loop's next turn
    and takes every request that arrived meanwhile (in particular while the previous pass
    ran): under load the batches grow by themselves, and a lone request waits for
    nothing. One pass of 300 names costs far less than thirty passes of 10.

    The pass runs on the event loop itself. A worker thread was measured to be no faster
    (bench/load.py, 2 cores): the GIL serializes the model's time loop with the request
    handling, and handing the GIL back and forth only adds cost.
    """

    def __init__(self, models: Sequence[ServedModel], chunk: int = 256):
        self.models = {m.name: m for m in models}
        # Names per forward call (the predictor sorts them by length first). From 64 to
        # 1024 the CPU time per name hardly changed; 256 was never worse.
        self.chunk = chunk
        self.pending: list[tuple[list[str], tuple[str, ...], asyncio.Future]] = []
        self.scheduled_on: asyncio.AbstractEventLoop | None = None  # the loop a pass is scheduled on
        self.passes = 0  # forward passes run: how well requests coalesce

    async def probabilities(self, normalized: list[str], model_names: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{model: (N, C) probabilities}`` of already normalized names."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((normalized, tuple(model_names), future))
        if self.scheduled_on is not loop:  # not yet scheduled on this loop (a closed loop's pass never ran)
            self.scheduled_on = loop
            loop.call_soon(self._run_pass, loop)
        return await future

    def _run_pass(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scheduled_on = None
        # A request of another event loop (a test client's, since closed) can never be answered.
        batch = [entry for entry in self.pending if entry[2].get_loop() is loop and not entry[2].done()]
        self.pending = []
        work: dict[str, list[str]] = {}
        for names, model_names, _ in batch:
            for name in model_names:
                work.setdefault(name, []).extend(names)
        if not work:
            return
        self.passes += 1
        try:
            probs = {name: self.models[name].predictor.probabilities(names, self.chunk) for name, names in work.items()}
        except Exception as err:  # noqa: BLE001 - handed to every waiting request
            for _, _, future in batch:
                future.set_exception(err)
            return
        offsets = dict.fromkeys(work, 0)
        for names, model_names, future in batch:
            answer = {}
            for name in model_names:
                answer[name] = probs[name][offsets[name] : offsets[name] + len(names)]
                offsets[name] += len(names)
            future.set_result(answer)
