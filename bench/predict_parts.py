"""Where ``predict()`` spends its time, part by part, and each rewritten part against the code it replaced.

    NAMELAB_DATA=/work/shared/data/names python bench/predict_parts.py --run runs/lstm --ngram-run runs/ngram
    python bench/predict_parts.py --run runs/lstm --names 20000 --repeats 5 --threads 1

In one run, on ``--names`` names drawn with repeats from the names folder's test split
(tables repeat names), at ``--threads`` torch threads (default 1, as the server runs):

* the unknown-language score: the first implementation (bench/unknown_reference.py,
  one table lookup per window and language) against ``UnknownScorer.score`` (one per
  distinct window), names/s, their ratio and the largest difference of their scores;
* the n-gram baseline's TF-IDF rows: scikit-learn's CountVectorizer per call, as the
  baseline first did, against ``NgramModel.transform`` (a dict lookup per n-gram);
* ``prepare`` (normalizing) without and with the per-call cache of distinct names;
* the parts of ``Predictor.predict`` of ``--run``: prepare, the model's probabilities,
  the unknown score, ``describe`` (building the rows), and the whole call; and the n-gram
  run's whole call when ``--ngram-run`` is given;
* each of ``--backends`` (namelab.inference.backends: torch, onnx) side by side on the same
  run: the model's probabilities of ``--names`` distinct names (no repeats to skip), the
  whole ``predict`` call, the median one-name and ten-name calls (the server's request
  size), with each one's ratio to the first.

Each figure is the median of ``--repeats``; the 1-minute load average is printed
before and after: on a shared machine compare the ratios, measured side by side, rather
than the rates. Nothing passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unknown_reference import reference_score  # noqa: E402

from namelab.data.corpus import Corpus, UnusableName, normalize  # noqa: E402
from namelab.data.download import resolve_data_dir  # noqa: E402
from namelab.inference.base import prepare  # noqa: E402
from namelab.inference.load import load_predictor  # noqa: E402
from namelab.inference.ngram import ANALYZER, NGRAM_RANGE  # noqa: E402


def timed(call, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` (after one warm-up call)."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def prepare_uncached(names):
    """``prepare`` as it was: every name normalized, repeats included (no max_length)."""
    results, usable, normalized = [], [], []
    for i, name in enumerate(names):
        try:
            text = normalize(name)
        except UnusableName as err:
            results.append({"name": name, "error": str(err)})
            continue
        results.append({"name": name, "normalized": text})
        usable.append(i)
        normalized.append(text)
    return results, usable, normalized


def sklearn_transform(model, counter, names):
    """The n-gram baseline's TF-IDF rows as it first computed them: CountVectorizer, then the weighting."""
    counts = counter.transform(names).astype(np.float64)
    counts.data = 1.0 + np.log(counts.data)
    x = counts.multiply(model.idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return x.multiply(1.0 / norms[:, None]).tocsr()


def line(what: str, count: int, before: float | None, after: float) -> str:
    rate = f"{count / after:>10,.0f} names/s"
    if before is None:
        return f"  {what:<34}{rate}   ({after * 1e6 / count:6.2f} us/name)"
    return f"  {what:<34}{count / before:>10,.0f} -> {count / after:>10,.0f} names/s   x{before / after:5.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a recurrent run folder with an unknown-language scorer")
    parser.add_argument("--ngram-run", type=Path, help="an n-gram baseline run folder (optional)")
    parser.add_argument("--data-dir", help="the names folder (default: NAMELAB_DATA)")
    parser.add_argument("--names", type=int, default=20_000, help="names per call (default 20000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure; the median is kept")
    parser.add_argument("--backends", default="torch,onnx", help="backends to compare (default torch,onnx)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the server)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    corpus = Corpus.from_folder(resolve_data_dir(args.data_dir))
    test = [e.name for e in corpus.split(seed=0).test]
    rng = random.Random(0)
    raw = [rng.choice(test) for _ in range(args.names)]
    n = len(raw)
    print(f"{n} names ({len(set(raw))} distinct), {args.threads} thread(s), load average {load_start:.2f}")

    _, _, normalized = prepare(raw)
    predictor = load_predictor(args.run)
    if predictor.unknown is None:
        parser.error(f"{args.run} has no unknown-language scorer; train it again")
    scorer = predictor.unknown.scorer
    print("rewritten parts (before -> after, measured side by side):")
    before = timed(lambda: reference_score(scorer, normalized), args.repeats)
    after = timed(lambda: scorer.score(normalized), args.repeats)
    diff = float((scorer.score(normalized) - reference_score(scorer, normalized)).abs().max())
    print(line("unknown score", n, before, after) + f"   max |diff| {diff:.1e}")
    one = normalized[:200]
    before = timed(lambda: [reference_score(scorer, [x]) for x in one], args.repeats) / len(one)
    after = timed(lambda: [scorer.score([x]) for x in one], args.repeats) / len(one)
    print(f"  {'unknown score, one name':<34}{before * 1e3:10.3f} -> {after * 1e3:10.3f} ms        x{before / after:5.1f}")
    before = timed(lambda: prepare_uncached(raw), args.repeats)
    after = timed(lambda: prepare(raw), args.repeats)
    print(line("prepare (normalize)", n, before, after))
    if args.ngram_run:
        from sklearn.feature_extraction.text import CountVectorizer

        ngram = load_predictor(args.ngram_run)
        model = ngram.ngram
        vocabulary = {gram: i for i, gram in enumerate(model.features)}
        counter = CountVectorizer(analyzer=ANALYZER, ngram_range=NGRAM_RANGE, lowercase=True, vocabulary=vocabulary)
        before = timed(lambda: sklearn_transform(model, counter, normalized), args.repeats)
        after = timed(lambda: model.transform(normalized), args.repeats)
        diff = abs(sklearn_transform(model, counter, normalized) - model.transform(normalized)).max()
        print(line("n-gram TF-IDF rows", n, before, after) + f"   max |diff| {diff:.1e}")

    print(f"parts of predict() of {args.run}:")
    probs = predictor.probabilities(normalized)
    scores = predictor.unknown_scores(normalized)
    parts = {
        "prepare": lambda: prepare(raw),
        "probabilities (model)": lambda: predictor.probabilities(normalized),
        "unknown score": lambda: predictor.unknown_scores(normalized),
        "describe (rows)": lambda: predictor.describe(probs, 3, unknown_scores=scores),
        "predict() whole": lambda: predictor.predict(raw),
    }
    for what, call in parts.items():
        print(line(what, n, None, timed(call, args.repeats)))
    if args.ngram_run:
        print(line("n-gram run predict() whole", n, None, timed(lambda: ngram.predict(raw), args.repeats)))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    distinct_names = list(dict.fromkeys(e.name for e in corpus.split(seed=0).train))[:n]
    print(f"backends of {args.run} ({len(distinct_names)} distinct train names for the model alone):")
    first = None
    for backend in backends:
        runner = load_predictor(args.run, backend=backend)
        model = timed(lambda: runner.probabilities(distinct_names), args.repeats) / len(distinct_names)
        whole = timed(lambda: runner.predict(raw), args.repeats) / n
        single = statistics.median(timed(lambda: runner.predict([x]), 1) for x in raw[:200])
        ten = statistics.median(timed(lambda: runner.predict(raw[i : i + 10]), 1) for i in range(0, min(n, 2000), 10))
        first = first or (model, whole, single, ten)
        print(
            f"  {backend:<6} model {1 / model:>9,.0f} names/s (x{first[0] / model:4.2f})   "
            f"predict() {1 / whole:>9,.0f} names/s (x{first[1] / whole:4.2f})   "
            f"one name {single * 1e3:6.3f} ms (x{first[2] / single:4.2f})   "
            f"ten names {ten * 1e3:6.3f} ms (x{first[3] / ten:4.2f})"
        )
    print(f"load average: {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
