"""The ``namelab`` command line.

    namelab data --data-dir ../shared/data/names
    namelab train --model lstm --out runs/lstm
    namelab evaluate runs/lstm
    namelab predict runs/lstm Nakamura Schmidt --top-k 3 --format json
    namelab predict runs/lstm --input names.txt --output predictions.csv --format csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .cells import CELLS
from .checkpoint import CheckpointError
from .data import Corpus
from .download import DataError, resolve_data_dir
from .model import IMPLS, POOLS
from .presets import PRESETS

EXIT_USAGE = 2


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder of <Language>.txt files (default: $NAMELAB_DATA, else the verified download in the user cache)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads for torch (default: torch's, one per core). When other programs keep a core busy, "
        "--threads 1 is often faster: torch's threads wait for each other at every step",
    )


def build_parser() -> argparse.ArgumentParser:
    from .train import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="namelab", description="Classify surnames by language with RNN, LSTM and GRU.")
    parser.add_argument("--version", action="version", version=f"namelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="describe the dataset: counts, duplicates, normalization, split sizes")
    _add_data_dir(p)
    p.add_argument("--split-seed", type=int, default=defaults.split_seed)

    p = sub.add_parser("train", help="train one model and write a run folder")
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="train a recipe chosen on the validation split (best: an ensemble; see docs/accuracy.md); "
        "--seed, --split-seed and --device still apply, the other model options are the preset's",
    )
    p.add_argument("--model", choices=list(CELLS), default=defaults.model)
    p.add_argument("--impl", choices=list(IMPLS), default=defaults.impl)
    _add_data_dir(p)
    p.add_argument("--out", type=Path, default=None, help="run folder to write (default: runs/<model>-seed<seed>)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--dropout", type=float, default=defaults.dropout)
    p.add_argument("--class-weight-power", type=float, default=defaults.class_weight_power)
    p.add_argument(
        "--bidirectional", action="store_true", help="a second cell reads each name right to left; states are joined"
    )
    p.add_argument(
        "--pool", choices=list(POOLS), default=defaults.pool, help="what the output layer reads (default: last state)"
    )
    p.add_argument(
        "--embedding-dim", type=int, default=defaults.embedding_dim, help="learned character embedding (0: one-hot)"
    )
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--split-seed", type=int, default=defaults.split_seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    _add_threads(p)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics")
    p.add_argument("run_dir", type=Path)
    _add_data_dir(p)
    p.add_argument("--json", action="store_true", help="print the metrics object as JSON")
    _add_threads(p)

    p = sub.add_parser("predict", help="top-k languages of names given as arguments or in a file")
    p.add_argument("run_dir", type=Path)
    p.add_argument("names", nargs="*")
    p.add_argument("--input", type=Path, help="file with one name per line")
    p.add_argument("--output", type=Path, help="write here instead of standard output")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="mark a name uncertain when its top calibrated probability is below P (the ranking is still given)",
    )
    p.add_argument(
        "--coverage",
        type=float,
        metavar="L",
        help="also give the smallest set of languages that holds the true one for a fraction L of names "
        "(split-conformal on the validation split, e.g. 0.9)",
    )
    p.add_argument("--format", choices=["text", "csv", "json"], default="text")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _add_threads(p)

    p = sub.add_parser("serve", help="serve runs over HTTP: a JSON API (docs at /docs) and a web page at /")
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="a run folder, or a compare output folder (serves its best run of each model by validation accuracy)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")

    p = sub.add_parser(
        "compare",
        help="the experiment: train every model on every seed, write report.html, report.md, figures, summary.json",
    )
    p.add_argument("--models", default="rnn,lstm,gru", help="comma-separated cells to compare (default: rnn,lstm,gru)")
    p.add_argument("--seeds", type=int, default=None, help="training seeds 0..N-1 per model (default: 3; --quick: 1)")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs per run (default: {defaults.epochs}; --quick: 2)")
    p.add_argument("--hidden-size", type=int, default=None, help=f"(default: {defaults.hidden_size}; --quick: 32)")
    p.add_argument("--impl", choices=list(IMPLS), default=defaults.impl)
    _add_data_dir(p)
    p.add_argument("--out", type=Path, default=Path("reports/compare"), help="report folder (default: reports/compare)")
    p.add_argument("--split-seed", type=int, default=defaults.split_seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    p.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, 1 seed, hidden size 32 unless given")
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="also train the accuracy suite on the same split and seeds: the n-gram baseline, the best single "
        "model and the best ensemble, with calibration and a reliability diagram",
    )
    _add_threads(p)
    return parser


def cmd_data(args) -> int:
    folder = resolve_data_dir(args.data_dir)
    corpus = Corpus.from_folder(folder)
    stats = corpus.stats
    split = corpus.split(seed=args.split_seed)
    from .download import dataset_checksum, is_official

    print(f"data folder: {folder}")
    print(f"dataset sha256: {dataset_checksum(folder)}  (official archive: {'yes' if is_official(folder) else 'no'})")
    print(f"\n{'language':<12} {'lines':>7} {'distinct':>9}")
    for label in corpus.labels:
        print(f"{label:<12} {stats.raw_counts[label]:>7} {stats.dedup_counts[label]:>9}")
    print(f"{'total':<12} {sum(stats.raw_counts.values()):>7} {len(corpus.pairs):>9}")
    shared = stats.shared_names
    print(f"\nnames in more than one language: {len(shared)}")
    for name, langs in list(shared.items())[:10]:
        print(f"  {name}: {', '.join(langs)}")
    if len(shared) > 10:
        print(f"  … and {len(shared) - 10} more")
    print("\ncharacters changed by normalization (? = unknown symbol):")
    print("  " + "  ".join(f"{ch!r}->{out!r}" for ch, out in stats.changed_chars.items()))
    if stats.skipped_lines:
        print(f"\nlines with no usable letters, skipped: {', '.join(stats.skipped_lines)}")
    sizes = split.sizes()
    print(
        f"\nsplit (seed {args.split_seed}, name-disjoint): train {sizes['n_train']}, "
        f"validation {sizes['n_val']}, test {sizes['n_test']}"
    )
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    if args.preset:
        return _train_preset(args)
    config = TrainConfig(
        model=args.model,
        impl=args.impl,
        hidden_size=args.hidden_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        class_weight_power=args.class_weight_power,
        bidirectional=args.bidirectional,
        pool=args.pool,
        embedding_dim=args.embedding_dim,
        seed=args.seed,
        split_seed=args.split_seed,
        device=args.device,
    )
    folder = resolve_data_dir(args.data_dir)
    out = args.out or Path("runs") / f"{args.model}-seed{args.seed}"
    result = train(config, Corpus.from_folder(folder), out, data_dir=folder)
    m = result.metrics
    print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (best epoch {result.meta['best_epoch']})")
    print(f"run written to {out}")
    return 0


def _train_preset(args) -> int:
    from .presets import train_preset

    folder = resolve_data_dir(args.data_dir)
    out = args.out or Path("runs") / f"{args.preset}-seed{args.seed}"
    overrides = {"seed": args.seed, "split_seed": args.split_seed, "device": args.device}
    m = train_preset(args.preset, Corpus.from_folder(folder), out, data_dir=folder, overrides=overrides)
    print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(
        f"calibration: temperature {m['temperature']:.3f}, ECE {m['ece_before']:.4f} -> {m['ece_after']:.4f}; "
        f"{m['coverage_level']:.0%} sets cover {m['coverage']:.1%} of test names, {m['mean_set_size']:.2f} languages on average"
    )
    print(f"run written to {out}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run
    from .metrics import format_metrics

    metrics, warning = evaluate_run(args.run_dir, args.data_dir)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def read_names_file(path: Path) -> list[str]:
    """One name per line, every line kept (blank ones too) so output rows line up with input lines."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"input file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise DataError(f"input file {path} is not UTF-8 text ({err}); save it as UTF-8") from None
    except OSError as err:
        raise DataError(f"cannot read input file {path}: {err.strerror}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    return [line.rstrip("\r") for line in lines]


def format_predictions(results: list[dict], fmt: str, top_k: int) -> str:
    """JSON lines, CSV or text; ``uncertain`` and ``coverage_set`` columns appear when the rows hold them."""
    out = io.StringIO()
    flags = [key for key in ("uncertain", "coverage_set") if any(key in row for row in results)]
    if fmt == "json":
        for row in results:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        header = ["name", "normalized"]
        for k in range(1, top_k + 1):
            header += [f"language_{k}", f"probability_{k}"]
        writer.writerow(header + flags + ["error"])
        for row in results:
            cells = [row["name"], row.get("normalized", "")]
            preds = row.get("predictions", [])
            for k in range(top_k):
                cells += [preds[k]["language"], f"{preds[k]['probability']:.4f}"] if k < len(preds) else ["", ""]
            if "uncertain" in flags:
                cells.append("" if "uncertain" not in row else str(row["uncertain"]).lower())
            if "coverage_set" in flags:
                cells.append("|".join(row.get("coverage_set", [])))  # languages joined by |
            writer.writerow(cells + [row.get("error", "")])
    else:
        for row in results:
            if "error" in row:
                out.write(f"{row['name']}\terror: {row['error']}\n")
            else:
                ranked = ", ".join(f"{p['language']} {p['probability']:.3f}" for p in row["predictions"])
                extra = "\tuncertain" if row.get("uncertain") else ""
                if "coverage_set" in row:
                    extra += "\tset: " + " | ".join(row["coverage_set"])
                out.write(f"{row['name']}\t({row['normalized']})\t{ranked}{extra}\n")
    return out.getvalue()


def cmd_predict(args) -> int:
    from .checkpoint import atomic_write_bytes
    from .predict import Predictor
    from .train import resolve_device

    if bool(args.names) == bool(args.input):
        print("error: give names as arguments or --input FILE (one of the two)", file=sys.stderr)
        return EXIT_USAGE
    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    names = read_names_file(args.input) if args.input else args.names
    predictor = Predictor.from_run(args.run_dir, device=resolve_device(args.device))
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        print(f"error: --min-confidence must be between 0 and 1, got {args.min_confidence}", file=sys.stderr)
        return EXIT_USAGE
    if args.coverage is not None and not 0.0 < args.coverage < 1.0:
        print(f"error: --coverage must be between 0 and 1 (exclusive), e.g. 0.9; got {args.coverage}", file=sys.stderr)
        return EXIT_USAGE
    results = predictor.predict(
        names, top_k=args.top_k, min_confidence=args.min_confidence, coverage=args.coverage
    )
    text = format_predictions(results, args.format, min(args.top_k, len(predictor.labels)))
    if args.output:
        atomic_write_bytes(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0


def cmd_serve(args) -> int:
    from .serve import serve

    serve(args.run_dirs, host=args.host, port=args.port)
    return 0


def cmd_compare(args) -> int:
    from dataclasses import replace

    from .compare import (
        DEFAULT_SEEDS,
        QUICK_EPOCHS,
        QUICK_HIDDEN_SIZE,
        QUICK_SEEDS,
        CompareSettings,
        parse_models,
        run_compare,
    )
    from .train import TrainConfig

    def pick(given, quick, default):
        return given if given is not None else quick if args.quick else default

    defaults = TrainConfig()
    config = replace(
        defaults,
        impl=args.impl,
        epochs=pick(args.epochs, QUICK_EPOCHS, defaults.epochs),
        hidden_size=pick(args.hidden_size, QUICK_HIDDEN_SIZE, defaults.hidden_size),
        split_seed=args.split_seed,
        device=args.device,
    )
    settings = CompareSettings(
        models=parse_models(args.models),
        seeds=pick(args.seeds, QUICK_SEEDS, DEFAULT_SEEDS),
        config=config,
        out=args.out,
        quick=args.quick,
        accuracy=args.accuracy,
    )
    folder = resolve_data_dir(args.data_dir)
    summary = run_compare(settings, folder)
    for finding in summary["findings"]:
        print(f"{finding['verdict']:>13}  {finding['claim']}")
    print(f"report: {args.out / 'report.html'}")
    return 0


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "serve": cmd_serve,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args)
    except (DataError, CheckpointError, ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
