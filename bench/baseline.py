"""Character n-gram logistic regression on namelab's split: the bar the RNNs must clear.

    python bench/baseline.py --data-dir ../shared/data/names [--runs runs/lstm runs/gru]

TF-IDF of character 1- to 4-grams (scikit-learn), trained on the train split, C chosen
on the validation split, scored once on the test split with namelab's own metrics. With
``--runs``, the same table lists those run folders' test metrics (same split seed).
The model is namelab.inference.ngram's, the one ``namelab compare --accuracy`` trains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from namelab.core.metrics import classification_metrics
from namelab.data.corpus import Corpus, Split
from namelab.data.download import resolve_data_dir
from namelab.inference.ngram import C_GRID, NgramModel
from namelab.runs.checkpoint import (
    CONFIG,
    HISTORY,
    CheckpointError,
    check_complete,
    read_history,
    read_json,
    read_metrics,
    run_kind,
)
from namelab.runs.config import cell_or_kind


def baseline_metrics(split: Split, labels: list[str], c_grid=C_GRID) -> dict:
    model = NgramModel.fit(split, labels, c_grid)
    predicted = model.log_probs([e.name for e in split.test]).argmax(dim=1).tolist()
    test = classification_metrics([e.label for e in split.test], predicted, labels)
    return {"C": model.c, **test}


def run_row(run: Path, split_seed: int) -> tuple[str, float, float, float]:
    """A run folder's line of the table: its name, test accuracy, macro-F1 and training seconds."""
    if run_kind(run) == "recurrent":
        check_complete(run)  # an unfinished run's files may be an older run's: refuse, saying how to resume
    config = read_json(run / CONFIG)
    seed = config.get("config", {}).get("split_seed") if isinstance(config, dict) else None
    if seed != split_seed:
        raise CheckpointError(f"{run} used split seed {seed}, not {split_seed}: its test names are other names")
    metrics = read_metrics(run)
    # ensembles and the n-gram baseline train no epochs: no history, no seconds to show
    seconds = sum(row.get("seconds", 0.0) for row in read_history(run)) if (run / HISTORY).is_file() else 0.0
    return f"{run} ({cell_or_kind(config)})", metrics["accuracy"], metrics["macro_f1"], seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders to list beside the baseline")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    try:  # before the baseline's fit, so a bad folder is named at once
        run_rows = [run_row(run, args.split_seed) for run in args.runs]
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    split = corpus.split(seed=args.split_seed)
    start = time.perf_counter()
    base = baseline_metrics(split, corpus.labels)
    rows = [("char 1-4-gram logistic regression", base["accuracy"], base["macro_f1"], time.perf_counter() - start)]
    majority = max(range(corpus.num_classes), key=[e.label for e in split.train].count)
    always = classification_metrics([e.label for e in split.test], [majority] * len(split.test), corpus.labels)
    rows.append((f"always {corpus.labels[majority]!r}", always["accuracy"], always["macro_f1"], 0.0))
    rows += run_rows
    print(f"test split: {len(split.test)} names, split seed {args.split_seed}")
    print(f"{'model':<44} {'accuracy':>8} {'macro-F1':>8} {'train s':>8}")
    for name, acc, f1, seconds in rows:
        print(f"{name:<44} {acc:>8.4f} {f1:>8.4f} {seconds:>8.1f}")
    for name, acc, f1, _ in rows[2:]:
        print(f"{name}: accuracy {acc - base['accuracy']:+.4f}, macro-F1 {f1 - base['macro_f1']:+.4f} vs baseline")
    if args.json:
        args.json.write_text(json.dumps([dict(zip(("model", "accuracy", "macro_f1", "seconds"), r)) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
