"""Named training recipes, and the ensembles they may be: ``namelab train --preset best``.

    metrics = train_preset("best", corpus, "runs/best")      # a run folder Predictor.from_run reads

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

from .calibrate import calibrate_predictor
from .checkpoint import CONFIG, read_json, write_json
from .data import Corpus, Split
from .download import dataset_checksum
from .ensemble import EnsemblePredictor, write_ensemble
from .metrics import classification_metrics
from .ngram import train_ngram
from .train import TrainConfig, train

MEMBERS = "members"


@dataclass(frozen=True)
class Preset:
    description: str
    members: tuple[TrainConfig, ...]  # recurrent members (one and no n-gram: a single run, not an ensemble)
    ngram: bool = False  # the n-gram baseline joins as a member


PRESETS: dict[str, Preset] = {
    "best": Preset(
        description="bidirectional GRU (last states) + character 1-4-gram logistic regression, "
        "calibrated probabilities averaged",
        members=(TrainConfig(model="gru", bidirectional=True),),
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
    return f"{shape}{config.model}{pool}-h{config.hidden_size}-seed{config.seed}"


def train_ensemble(
    members: Sequence[TrainConfig],
    corpus: Corpus,
    out_dir: Path | str,
    *,
    ngram: bool = True,
    data_dir: Path | None = None,
    split: Split | None = None,
    meta: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every member into ``out_dir/members``, write the ensemble, calibrate it; returns its metrics."""
    if not members and not ngram:
        raise ValueError("an ensemble needs at least one member")
    out = Path(out_dir)
    split_seed = members[0].split_seed if members else 0
    split = split or corpus.split(seed=split_seed)
    checksum = dataset_checksum(data_dir) if data_dir else None
    folders = []
    for i, config in enumerate(members, 1):
        folder = out / MEMBERS / member_name(config)
        log(f"[ensemble] member {i}/{len(members) + int(ngram)}: {folder.name}")
        train(config, corpus, folder, data_dir=data_dir, split=split, log=log)
        folders.append(folder)
    if ngram:
        folder = out / MEMBERS / "ngram"
        log(f"[ensemble] member {len(folders) + 1}/{len(members) + 1}: character n-gram logistic regression")
        base = {"config": {"split_seed": split_seed}, "vocab": corpus.vocab.chars, "dataset_sha256": checksum}
        train_ngram(split, corpus.labels, folder, meta={**base, **split.sizes()})
        folders.append(folder)
    write_ensemble(out, folders, {**(meta or {}), "vocab": corpus.vocab.chars, **split.sizes()})
    predictor = EnsemblePredictor.from_folder(out)
    config = read_json(out / CONFIG)
    config["calibration"], calibration = calibrate_predictor(predictor, split)
    write_json(out / CONFIG, config)
    predicted = predictor.scores([e.name for e in split.test]).argmax(dim=1).tolist()
    metrics = {**classification_metrics([e.label for e in split.test], predicted, corpus.labels), **calibration}
    write_json(out / "metrics.json", metrics)
    return metrics


def train_preset(
    name: str,
    corpus: Corpus,
    out_dir: Path | str,
    *,
    data_dir: Path | None = None,
    overrides: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train preset ``name`` (``overrides`` replace fields of every member's TrainConfig); returns its metrics."""
    recipe = preset(name)
    members = tuple(replace(config, **(overrides or {})) for config in recipe.members)
    if len(members) == 1 and not recipe.ngram:
        return train(members[0], corpus, out_dir, data_dir=data_dir, log=log).metrics
    meta = {"preset": name, "description": recipe.description}
    return train_ensemble(members, corpus, out_dir, ngram=recipe.ngram, data_dir=data_dir, meta=meta, log=log)
