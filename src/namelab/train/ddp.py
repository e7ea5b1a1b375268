"""Training on several processes or machines with DistributedDataParallel, launched by torchrun.

    torchrun --standalone --nproc-per-node 2 -m namelab train --data names.csv --out runs/ddp
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m namelab train --data names.parquet --out runs/ddp

Every rank reads the whole dataset and builds the same seeded split and the same global
batches (``--batch-size`` is the global batch); each rank computes the gradient of its
own disjoint share of every batch, DistributedDataParallel averages the gradients
(gloo on CPU, NCCL on CUDA), and every rank takes the same optimizer step. Each rank's
loss is its share's weighted sum over the global batch's total weight, times the number
of ranks, so the averaged gradient is exactly the single-process gradient of the global
batch: N ranks train the weights one process would, to float rounding (dropout and
character dropout draw different masks, so with them the runs agree in distribution
only). Validation is split across ranks and its sums all-reduced; rank 0 alone writes
the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = ProcessGroup()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_process_group(device: torch.device) -> ProcessGroup:
    """Join the group torchrun's environment describes; without torchrun, a group of one.

    gloo on CPU; NCCL on CUDA, each rank on the GPU of its local rank.
    """
    if not launched_by_torchrun():
        return SINGLE
    group = ProcessGroup(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(group.local_rank)
            dist.init_process_group("nccl", device_id=torch.device("cuda", group.local_rank))
        else:
            dist.init_process_group("gloo")
    return group


def rank_device(device: torch.device, group: ProcessGroup) -> torch.device:
    """This rank's device: its local GPU under torchrun on CUDA."""
    if device.type == "cuda" and group.distributed:
        return torch.device("cuda", group.local_rank)
    return device


def close_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, group: ProcessGroup, device: torch.device) -> torch.nn.Module:
    """The model DistributedDataParallel averages the gradients of (the model itself for one process)."""
    if not group.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rank_share(items: Sequence, group: ProcessGroup) -> list:
    """This rank's disjoint share of ``items``: every ``world_size``-th one, from its rank."""
    return list(items[group.rank :: group.world_size])


def share_batch(
    ids: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, group: ProcessGroup
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """This rank's rows of a global batch, and the factor its loss is scaled by.

    Every rank must run a forward and a backward for every batch (DDP's all-reduce
    waits for all of them): when a batch has fewer names than there are ranks, a rank
    left without one reads the first name with a factor of 0, adding nothing.
    """
    if not group.distributed:
        return ids, lengths, targets, 1.0
    rows = slice(group.rank, None, group.world_size)
    if group.rank >= len(targets):
        rows, scale = slice(0, 1), 0.0
    else:
        scale = 1.0
    share_lengths = lengths[rows]
    return ids[rows, : int(share_lengths.max())], share_lengths, targets[rows], scale


def share_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    batch_targets: torch.Tensor,
    weights: torch.Tensor,
    label_smoothing: float,
    group: ProcessGroup,
    scale: float = 1.0,
) -> torch.Tensor:
    """This rank's part of the global batch's weighted mean cross-entropy, times the world size.

    ``batch_targets``: the whole global batch's targets (every rank has them). DDP
    averages the ranks' gradients, so their sum over ranks is the gradient of
    ``F.cross_entropy(all logits, batch_targets, weight=weights)``.
    """
    total = F.cross_entropy(logits, targets, weight=weights, label_smoothing=label_smoothing, reduction="sum")
    return total * (scale * group.world_size) / weights[batch_targets].sum()


def on_main(group: ProcessGroup, device: torch.device, step: Callable[[], bool]) -> bool:
    """Run ``step`` (one that writes) on rank 0 alone and tell every rank its True/False.

    When it fails on rank 0, every other rank fails too instead of waiting forever.
    """
    if not group.distributed:
        return step()
    flags = torch.zeros(2, dtype=torch.float64, device=device)  # failed, result
    error = None
    if group.is_main:
        try:
            flags[1] = float(bool(step()))
        except Exception as err:  # re-raised below, once the other ranks know
            error, flags[0] = err, 1.0
    dist.broadcast(flags, src=0)
    if error is not None:
        raise error
    if flags[0]:
        raise RuntimeError("rank 0 failed to prepare the run folder (its message says why)")
    return bool(flags[1])


def all_reduce_sums(values: Sequence[float], group: ProcessGroup, device: torch.device) -> list[float]:
    """The sum over ranks of each value (float64), the values themselves for one process."""
    if not group.distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
