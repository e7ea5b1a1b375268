"""Score every 1-, 2- and 3-member ensemble of trial run folders on the VALIDATION split.

    python bench/ensemble_search.py /tmp/acc/gru-base /tmp/acc/bigru-last /tmp/acc/ngram

Each member's scores are temperature-scaled on validation (as training calibrates a
run), then averaged as namelab.inference.ensemble averages them; the best combinations by
validation accuracy are printed. The test split is not read.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from namelab.core.metrics import classification_metrics
from namelab.data.corpus import Corpus
from namelab.data.download import resolve_data_dir
from namelab.inference.calibrate import fit_temperature
from namelab.inference.load import load_predictor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    split = corpus.split(seed=0)
    names, targets = [e.name for e in split.val], torch.tensor([e.label for e in split.val])
    probs = {}
    for run in args.runs:
        scores = load_predictor(run).scores(names)
        probs[run.name] = torch.softmax(scores / fit_temperature(scores, targets), dim=1)
    rows = []
    for k in (1, 2, 3):
        for combo in itertools.combinations(probs, k):
            mean = sum(probs[name] for name in combo) / k
            m = classification_metrics(targets.tolist(), mean.argmax(1).tolist(), corpus.labels)
            rows.append((m["accuracy"], m["macro_f1"], combo))
    for accuracy, f1, combo in sorted(rows, reverse=True)[: args.top]:
        print(f"{accuracy:.4f} {f1:.4f}  {' + '.join(combo)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
