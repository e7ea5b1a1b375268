"""Data-parallel training: the ranks' shares add up to the single-process batch, and
torchrun with 2 processes trains the weights one process does.

    .venv/bin/python -m pytest tests/test_ddp.py -q
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import torch
import torch.nn.functional as F
from helpers import separable_names
from safetensors.torch import load_file

from namelab.cli.commands import main
from namelab.core.model import CharClassifier, ModelConfig
from namelab.data.corpus import Example, Vocab, batches, normalize
from namelab.train.ddp import ProcessGroup, rank_share, share_batch, share_loss

ROOT = Path(__file__).resolve().parents[1]


def examples() -> list[Example]:
    names = separable_names(per_class=9)
    return [Example(normalize(name), label) for label, group in enumerate(names.values()) for name in group]


def test_rank_shares_are_disjoint_and_cover_everything() -> None:
    items = list(range(11))
    shares = [rank_share(items, ProcessGroup(rank, 3)) for rank in range(3)]
    assert sorted(sum(shares, [])) == items
    assert all(not set(a) & set(b) for i, a in enumerate(shares) for b in shares[i + 1 :])


def test_averaged_share_gradients_equal_the_global_batch_gradient() -> None:
    """What DDP computes (the mean over ranks of each rank's gradient) is the one-process gradient."""
    torch.manual_seed(0)
    model = CharClassifier(ModelConfig(len(Vocab()), 3, "lstm", hidden_size=8)).double()
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    world = 2
    batch_size = 5  # 27 names: the last global batch has 2 names, one per rank
    for ids, lengths, targets in batches(examples(), Vocab(), batch_size, shuffle=True, seed=4):
        model.zero_grad()
        F.cross_entropy(model(ids, lengths), targets, weight=weights, label_smoothing=0.1).backward()
        want = [p.grad.clone() for p in model.parameters()]
        summed = [torch.zeros_like(p) for p in model.parameters()]
        for rank in range(world + 1):  # a third rank too: it gets no name of the last batch
            group = ProcessGroup(rank, world + 1)
            share_ids, share_lengths, share_targets, scale = share_batch(ids, lengths, targets, group)
            model.zero_grad()
            loss = share_loss(model(share_ids, share_lengths), share_targets, targets, weights, 0.1, group, scale)
            loss.backward()
            summed = [s + p.grad / (world + 1) for s, p in zip(summed, model.parameters())]
        for got, expected in zip(summed, want):
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_one_process_share_is_the_batch() -> None:
    ids, lengths = torch.zeros(3, 4, dtype=torch.int64), torch.tensor([4, 2, 1])
    targets = torch.tensor([0, 1, 2])
    got = share_batch(ids, lengths, targets, ProcessGroup())
    assert got[0] is ids and got[1] is lengths and got[2] is targets and got[3] == 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_train_the_weights_of_one(tmp_path: Path) -> None:
    """2 ranks on 127.0.0.1 (gloo, one thread each) against one process, same global batch, 2 epochs."""
    rows = [{"name": name, "language": language} for language, group in separable_names(per_class=30).items()
            for name in group]
    table = tmp_path / "names.csv"
    pa_csv.write_csv(pa.Table.from_pylist(rows), table)
    # Class weights and label smoothing on, dropout off (each rank draws its own masks).
    options = ["--data", str(table), "--cell", "gru", "--epochs", "2", "--hidden-size", "8", "--batch-size", "16",
               "--lr", "0.03", "--dropout", "0", "--label-smoothing", "0.1", "--threads", "1"]
    assert main(["train", *options, "--out", str(tmp_path / "one")]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
              "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "namelab"]
    done = subprocess.run([*launch, "train", *options, "--out", str(tmp_path / "two")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("run written to") == 1  # rank 0 alone reports and writes

    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    history_one = json.loads((tmp_path / "one" / "history.json").read_text())
    history_two = json.loads((tmp_path / "two" / "history.json").read_text())
    for a, b in zip(history_one, history_two):  # all-reduced figures: the same as one process's
        assert a["val_accuracy"] == b["val_accuracy"] and a["train_accuracy"] == b["train_accuracy"]
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5 and abs(a["train_loss"] - b["train_loss"]) < 1e-5
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.csv", "one", "two"]
