"""Try one training recipe and score it on the VALIDATION split (never test).

    python bench/accuracy_search.py --name bigru-meanmax --set cell=gru bidirectional=true pool=meanmax

Each trial trains a normal run folder under ``--runs`` and appends one JSON line (the
recipe, validation accuracy and macro-F1, seconds per epoch) to ``--log``; the table in
docs/accuracy.md is made from that log. The test split is not read here.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from namelab.core.metrics import classification_metrics
from namelab.data.corpus import Corpus
from namelab.data.download import resolve_data_dir
from namelab.experiment.compare import predictions_in_order
from namelab.runs.config import TrainConfig
from namelab.train.loop import train


def parse_value(field_type, text: str):
    if field_type in (bool, "bool"):
        return text.lower() in ("1", "true", "yes")
    if field_type in (int, "int"):
        return int(text)
    if field_type in (float, "float"):
        return float(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--set", nargs="*", default=[], help="TrainConfig fields as key=value")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/acc"))
    parser.add_argument("--log", type=Path, default=Path("docs/accuracy-search.jsonl"))
    args = parser.parse_args(argv)
    types = {f.name: f.type for f in fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        key = OLD_NAMES.get(key, key)  # the rows of docs/accuracy-search.jsonl were run with the old names
        overrides[key] = parse_value(types[key], value)
    config = replace(TrainConfig(device="cpu"), **overrides)
    folder = resolve_data_dir(args.data_dir)
    corpus = Corpus.from_folder(folder)
    split = corpus.split(seed=config.split_seed)
    start = time.perf_counter()
    result = train(config, corpus, args.runs / args.name, data_dir=folder, split=split, log=lambda line: None)
    seconds = time.perf_counter() - start
    predicted, _ = predictions_in_order(result.model, split.val, corpus.vocab, corpus.labels)
    val = classification_metrics([e.label for e in split.val], predicted, corpus.labels)
    row = {
        "name": args.name,
        "set": overrides,
        "val_accuracy": round(val["accuracy"], 4),
        "val_macro_f1": round(val["macro_f1"], 4),
        "best_epoch": result.meta["best_epoch"],
        "epochs": config.epochs,
        "s_per_epoch_under_load": round(sum(r["seconds"] for r in result.history) / config.epochs, 2),
        "total_s_under_load": round(seconds, 1),
        "parameters": result.model.num_parameters(),
        "threads": torch.get_num_threads(),
    }
    with args.log.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
