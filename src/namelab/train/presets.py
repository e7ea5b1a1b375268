"""Named training recipes, and the ensembles they may be: ``namelab train --preset best``.

    metrics = train_preset("best", corpus, "runs/best")      # a run folder load_predictor reads

Every recipe here was chosen on the validation split, never on test (docs/accuracy.md
lists every configuration tried, with its validation figures and the command that
reproduces it). An ensemble preset trains each member as a normal run folder under
``RUN/members/``, then writes the ensemble's ``config.json`` (see ensemble.py), fits
the ensemble's temperature and conformal scores on validation and writes its
``metrics.json`` on test, like a single run's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..data.corpus import Corpus, Split
from ..data.download import dataset_checksum
from ..inference.calibrate import calibrate_predictor
from ..inference.ensemble import EnsemblePredictor, fit_weight, write_ensemble
from ..inference.evaluate import evaluate_examples
from ..inference.ngram import C_GRID
from ..inference.priors import class_shares
from ..inference.unknown import UnknownCheck
from ..runs.card import write_model_card
from ..runs.checkpoint import (
    CONFIG,
    HISTORY,
    METRICS,
    read_json,
    run_kind,
    run_lock,
    run_state,
    start_writing,
    write_json,
    write_manifest,
)
from ..runs.config import TrainConfig
from .loop import train
from .ngram import train_ngram

MEMBERS = "members"


@dataclass(frozen=True)
class Preset:
    description: str
    members: tuple[TrainConfig, ...]  # recurrent members (one and no n-gram: a single run, not an ensemble)
    ngram: bool = False  # the n-gram baseline joins as a member
    # C of the n-gram member: the grid's validation choice on the project's split (docs/accuracy.md),
    # fixed because fitting the whole grid costs more than the recurrent member's training.
    ngram_c: tuple[float, ...] = (10.0,)


PRESETS: dict[str, Preset] = {
    "best": Preset(
        description="bidirectional GRU (character embeddings 64, an n-gram channel of 2^17 buckets, "
        "character dropout 0.2) + character 1-4-gram logistic regression, "
        "calibrated probabilities averaged with the n-gram share chosen on validation",
        members=(
            TrainConfig(
                cell="gru",
                bidirectional=True,
                embedding_dim=64,
                ngram_buckets=2**17,
                char_dropout=0.2,
            ),
        ),
        ngram=True,
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def member_name(config: TrainConfig) -> str:
    shape = "bi" if config.bidirectional else ""
    pool = "" if config.pool == "last" else f"-{config.pool}"
    embedding = f"-emb{config.embedding_dim}" if config.embedding_dim else ""
    ngram = f"-ngram{config.ngram_buckets}" if config.ngram_buckets else ""
    return f"{shape}{config.cell}{pool}{embedding}{ngram}-h{config.hidden_size}-seed{config.seed}"


def train_ensemble(
    members: Sequence[TrainConfig],
    corpus: Corpus,
    out_dir: Path | str,
    *,
    ngram: bool = True,
    data_dir: Path | None = None,
    split: Split | None = None,
    meta: dict | None = None,
    members_ready: Sequence[Path] = (),
    force: bool = False,
    resume: bool = False,
    command: str | None = None,
    c_grid: Sequence[float] = C_GRID,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every member into ``out_dir/members``, write the ensemble, calibrate it; returns its metrics.

    ``members_ready`` are run folders already trained inside ``out_dir``; they join as they are.
    With ``resume``, a member that finished is kept and an unfinished one resumes (``command``
    is what its messages tell the user to run to resume: the user's own command).
    """
    if not members and not ngram and not members_ready:
        raise ValueError("an ensemble needs at least one member")
    out = Path(out_dir)
    with run_lock(out):  # one writer per folder; each member locks its own
        return _train_ensemble(
            members, corpus, out, ngram, data_dir, split, meta, members_ready, force, resume, command, c_grid, log
        )


def _train_ensemble(
    members, corpus, out, ngram, data_dir, split, meta, members_ready, force, resume, command, c_grid, log
) -> dict:
    # A config.json from the start marks the folder as one unfinished run (not a compare folder of its members).
    start_writing(out)
    write_json(out / CONFIG, {"kind": "ensemble", "members": [], **(meta or {})})
    split_seed = members[0].split_seed if members else 0
    split = split or corpus.split(seed=split_seed)
    checksum = dataset_checksum(data_dir) if data_dir else None
    folders = [Path(folder) for folder in members_ready]
    for i, config in enumerate(members, 1):
        folder = out / MEMBERS / member_name(config)
        if resume and run_state(folder) == "complete":
            log(f"[ensemble] member {i}/{len(members) + int(ngram)}: {folder.name} is finished; kept")
        else:
            log(f"[ensemble] member {i}/{len(members) + int(ngram)}: {folder.name}")
            train(
                config, corpus, folder, data_dir=data_dir, split=split, log=log, force=force, resume=resume,
                command=command,
            )  # fmt: skip
        folders.append(folder)
    if ngram:
        folder = out / MEMBERS / "ngram"
        if resume and run_state(folder) == "complete":
            log(f"[ensemble] member {len(folders) + 1}/{len(members) + 1}: the n-gram baseline is finished; kept")
        else:
            log(f"[ensemble] member {len(folders) + 1}/{len(members) + 1}: character n-gram logistic regression")
            base = {"config": {"split_seed": split_seed}, "vocab": corpus.vocab.chars, "dataset_sha256": checksum}
            train_ngram(split, corpus.labels, folder, meta={**base, **split.sizes()}, c_grid=c_grid)
        folders.append(folder)
    write_ensemble(out, folders, {**(meta or {}), "vocab": corpus.vocab.chars, **split.sizes()}, complete=False)
    config = read_json(out / CONFIG)
    config["train_prior"] = class_shares([e.label for e in split.train], corpus.num_classes)
    UnknownCheck.fit(split).save(out)
    if len(folders) > 1 and run_kind(folders[-1]) == "ngram":
        # The n-gram member's share, chosen on the validation split (the members keep their own temperatures).
        members = EnsemblePredictor.from_meta(out, config).members
        val_probs = [member.probabilities([e.name for e in split.val]) for member in members]
        config["weights"] = fit_weight(val_probs, torch.tensor([e.label for e in split.val]))
        write_json(out / CONFIG, config)
    predictor = EnsemblePredictor.from_meta(out, config)
    config["calibration"], calibration = calibrate_predictor(predictor, split)
    write_json(out / CONFIG, config)
    metrics = {**evaluate_examples(predictor, split.test, corpus.labels), **calibration}
    write_json(out / METRICS, metrics)
    # One "epoch": what the server reads to pick a compare folder's best run of each kind.
    write_json(out / HISTORY, [{"epoch": 1, "val_accuracy": config["calibration"]["val_accuracy"]}])
    write_model_card(out, config, metrics)
    write_manifest(out)  # last: until here every reader refuses the folder as unfinished
    return metrics


def train_preset(
    name: str,
    corpus: Corpus,
    out_dir: Path | str,
    *,
    data_dir: Path | None = None,
    overrides: dict | None = None,
    force: bool = False,
    resume: bool = False,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train preset ``name`` (``overrides`` replace fields of every member's TrainConfig); returns its metrics.

    ``resume`` goes on after a kill (finished members kept, an unfinished one resumed);
    ``command`` is the command messages give for that (default: a ``namelab train`` line per member).
    """
    recipe = preset(name)
    members = tuple(replace(config, **(overrides or {})) for config in recipe.members)
    if len(members) == 1 and not recipe.ngram:
        return train(
            members[0], corpus, out_dir, data_dir=data_dir, log=log, force=force, resume=resume, command=command
        ).metrics
    meta = {"preset": name, "description": recipe.description}
    return train_ensemble(
        members, corpus, out_dir, ngram=recipe.ngram, data_dir=data_dir, meta=meta, force=force, resume=resume,
        command=command, c_grid=recipe.ngram_c, log=log,
    )  # fmt: skip
