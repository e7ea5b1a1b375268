"""The ``namelab`` command line.

    namelab data --data-dir ../shared/data/names
    namelab train --model lstm --out runs/lstm
    namelab evaluate runs/lstm
    namelab predict runs/lstm Nakamura Schmidt --top-k 3 --format json
    namelab predict runs/lstm --input names.txt --output predictions.csv --format csv
    namelab train --data people.csv --name-column surname --label-column country --out runs/mine
    namelab predict runs/mine --input people.parquet --name-column surname --output out.parquet
    namelab predict runs/mine --input people.csv --name-column surname --workers 2 --output out/
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Sequence

import torch

from ..core.cells import CELLS
from ..core.metrics import format_metrics
from ..core.model import IMPLS, POOLS
from ..data.corpus import MAX_INPUT_LENGTH, MAX_NAME_LENGTH, Corpus
from ..data.download import DataError, dataset_checksum, is_official, resolve_data_dir
from ..predict.evaluate import evaluate_run
from ..predict.load import load_predictor
from ..predict.output import open_output
from ..runs.checkpoint import CheckpointError, checkpoint_info
from ..runs.config import TrainConfig, resolve_device
from ..runs.env import AdaptiveThreads
from ..train.loop import train
from ..train.presets import PRESETS, train_preset
from ..version import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder of <Language>.txt files (default: $NAMELAB_DATA, else the verified download in the user cache)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="the dataset: a folder of <Language>.txt files, or a .csv, .tsv or .parquet table of names and labels",
    )
    parser.add_argument("--name-column", default="name", help="a table's column of names (default: name)")
    parser.add_argument("--label-column", default="language", help="a table's column of labels (default: language)")


def _data_path(args) -> Path:
    """``--data``, else ``--data-dir``, else $NAMELAB_DATA, else the verified download."""
    if args.data is not None and args.data_dir is not None:
        raise DataError("give --data or --data-dir, not both (--data takes a folder too)")
    if args.data is not None:
        from ..data.tables import is_table  # pyarrow: imported when a table is read

        if not args.data.exists():
            raise DataError(f"--data {args.data} does not exist; give a names folder or a .csv, .tsv or .parquet file")
        if args.data.is_file() and is_table(args.data):
            return args.data
    return resolve_data_dir(args.data if args.data is not None else args.data_dir)


def _load_corpus(args) -> tuple[Corpus, Path]:
    path = _data_path(args)
    return Corpus.load(path, name_column=args.name_column, label_column=args.label_column), path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return value


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads for torch (default: one per core that other programs leave free, checked at the start "
        "and after every training epoch; OMP_NUM_THREADS, when set, is used as it is). A fixed count makes "
        "training reproducible bit for bit across machines' loads",
    )


def build_parser() -> argparse.ArgumentParser:
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
        "--label-smoothing", type=float, default=defaults.label_smoothing, help="share of each target spread evenly over the classes (default: 0)"
    )
    p.add_argument(
        "--char-dropout",
        type=float,
        default=defaults.char_dropout,
        help="chance that a training character is read as the unknown symbol (default: 0)",
    )
    p.add_argument(
        "--bidirectional", action="store_true", help="a second cell reads each name right to left; states are joined"
    )
    p.add_argument(
        "--pool", choices=list(POOLS), default=defaults.pool, help="what the output layer reads (default: last state)"
    )
    p.add_argument(
        "--embedding-dim", type=int, default=defaults.embedding_dim, help="learned character embedding (0: one-hot)"
    )
    p.add_argument(
        "--ngram-buckets",
        type=int,
        default=defaults.ngram_buckets,
        help="a character 1-4-gram channel hashed into this many buckets, learned with the model (0: none)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--split-seed", type=int, default=defaults.split_seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="go on from the checkpoint of an unfinished run in --out (the same options it was started with); "
        "with nothing to resume, train from the start",
    )
    again.add_argument("--force", action="store_true", help="replace the run in --out, finished or not")
    _add_threads(p)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics")
    p.add_argument("run_dir", type=Path)
    _add_data_dir(p)
    p.add_argument("--json", action="store_true", help="print the metrics object as JSON")
    _add_threads(p)

    p = sub.add_parser(
        "predict",
        help="top-k languages of names given as arguments, in a file or in a table",
        description="Top-k languages of each name. " + LINE_RULE + f" A name longer than {MAX_NAME_LENGTH} "
        "characters once normalized, or not valid UTF-8, gets an error row of its own.",
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("names", nargs="*")
    p.add_argument(
        "--input",
        type=Path,
        help="file with one name per line, or a .csv, .tsv or .parquet table (streamed in chunks, see --name-column)",
    )
    p.add_argument(
        "--output",
        type=Path,
        help="write here instead of standard output; for a table, the suffix sets the format (.parquet, .csv, .tsv, "
        ".jsonl), and with --workers/--scheduler a path without one is a folder of Parquet parts. For names, a "
        "file is replaced whole when done (its mode kept), a symlink is followed, a FIFO or device is written "
        "through, and the --input file is refused",
    )
    p.add_argument("--top-k", type=int, default=None, help="languages per name (default: 3; for a table: 1)")
    p.add_argument("--format", choices=["text", "csv", "json"], default=None, help="for names (default: text)")
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
    p.add_argument("--name-column", default="name", help="the input table's column of names (default: name)")
    p.add_argument("--chunk-rows", type=_positive_int, default=65_536, help="rows per chunk of a table")
    p.add_argument(
        "--workers", type=_positive_int, help="predict a table on a local Dask cluster of N worker processes"
    )
    p.add_argument("--scheduler", help="predict a table on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
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
    p.add_argument(
        "--min-confidence",
        type=_probability,
        default=0.5,
        help="mark a model's answer uncertain when its top language's calibrated probability is below this "
        "(default 0.5; a request may send its own min_confidence)",
    )

    p = sub.add_parser(
        "compare",
        help="the experiment: train every model on every seed, write report.html, report.md, figures, summary.json",
    )
    p.add_argument(
        "--suite",
        default="seed",
        help="comma-separated experiments to run: seed (every model on every seed, the default), "
        "insights (dropout ablation and hyperparameter grid), accuracy (the n-gram baseline, the best single "
        "model and the best ensemble, calibrated, with a reliability diagram)",
    )
    p.add_argument("--models", default="rnn,lstm,gru", help="comma-separated cells to compare (default: rnn,lstm,gru)")
    p.add_argument("--seeds", type=int, default=None, help="training seeds 0..N-1 per model (default: 3; --quick: 1)")
    p.add_argument(
        "--epochs", type=int, default=None,
        help=f"epochs per run (default: {defaults.epochs}; insights alone: 10; --quick: 2)",
    )
    p.add_argument("--hidden-size", type=int, default=None, help=f"(default: {defaults.hidden_size}; --quick: 32)")
    p.add_argument("--impl", choices=list(IMPLS), default=defaults.impl)
    _add_data_dir(p)
    p.add_argument("--out", type=Path, default=Path("reports/compare"), help="report folder (default: reports/compare)")
    p.add_argument("--split-seed", type=int, default=defaults.split_seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device)
    p.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, 1 seed, hidden size 32 unless given")
    _add_threads(p)
    return parser


def cmd_data(args) -> int:
    corpus, folder = _load_corpus(args)
    stats = corpus.stats
    split = corpus.split(seed=args.split_seed)
    if folder.is_dir():
        print(f"data folder: {folder}")
        print(f"dataset sha256: {dataset_checksum(folder)}  (official archive: {'yes' if is_official(folder) else 'no'})")
    else:
        print(f"data table: {folder}  (names: {args.name_column!r}, languages: {args.label_column!r})")
        print(f"dataset sha256: {dataset_checksum(folder)}")
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
        skipped = stats.skipped_lines
        more = f" … and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(f"\nlines with no usable letters, skipped ({len(skipped)}): {', '.join(skipped[:10])}{more}")
    sizes = split.sizes()
    print(
        f"\nsplit (seed {args.split_seed}, name-disjoint): train {sizes['n_train']}, "
        f"validation {sizes['n_val']}, test {sizes['n_test']}"
    )
    return 0


def cmd_train(args) -> int:
    if args.preset:
        return _train_preset(args)
    # Every TrainConfig field the parser declares, under the same name; the rest keep their defaults.
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    corpus, folder = _load_corpus(args)
    out = args.out or Path("runs") / f"{args.model}-seed{args.seed}"
    try:
        result = train(
            config, corpus, out, data_dir=folder, resume=args.resume, force=args.force,
            between_epochs=args.adapt_threads, command=resume_command(args.argv, out),
        )  # fmt: skip
    except KeyboardInterrupt:
        info = checkpoint_info(out)
        if info is None:
            print(f"interrupted before the first epoch ended: nothing kept in {out}", file=sys.stderr)
        else:
            print(
                f"interrupted: {out} keeps epoch {info['epoch']} of {config.epochs}; resume with `{info['command']}`",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    if not result.is_main:
        return 0  # under torchrun, rank 0 reports
    m = result.metrics
    print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (best epoch {result.meta['best_epoch']})")
    print(f"run written to {out}")
    return 0


def _train_preset(args) -> int:
    corpus, folder = _load_corpus(args)
    out = args.out or Path("runs") / f"{args.preset}-seed{args.seed}"
    overrides = {"seed": args.seed, "split_seed": args.split_seed, "device": args.device}
    m = train_preset(args.preset, corpus, out, data_dir=folder, overrides=overrides, force=args.force)
    print(f"test accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(
        f"calibration: temperature {m['temperature']:.3f}, ECE {m['ece_before']:.4f} -> {m['ece_after']:.4f}; "
        f"{m['coverage_level']:.0%} sets cover {m['coverage']:.1%} of test names, "
        f"{m['mean_set_size']:.2f} languages on average"
    )
    print(f"run written to {out}")
    return 0


def cmd_evaluate(args) -> int:
    metrics, warning = evaluate_run(
        args.run_dir, _data_path(args), name_column=args.name_column, label_column=args.label_column
    )
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def read_names_file(path: Path) -> list[str]:
    """One name per line (see :data:`LINE_RULE`), every line kept, blank ones too, so rows line up with lines."""
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
    return [line.removesuffix("\r") for line in lines]


LINE_RULE = (
    "A line of --input ends at LF (\\n) only; one CR just before it is dropped (CRLF files), and any other "
    "character (a lone CR, U+2028, U+0085, form feed) stays part of the name. Every line gives exactly one "
    "output row, in order: csv follows RFC 4180 (CRLF records, fields with CR, LF, quotes or commas quoted); "
    "json gives one object per LF-ended line, with U+2028, U+2029 and U+0085 escaped; text escapes tabs and "
    "line-breaking characters as \\t, \\r, \\u2028 and so on."
)


def _shown(name: str) -> str:
    """``name`` as printable text: bytes that were not UTF-8 (or lone surrogates) as backslash escapes."""
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def name_error(name: str) -> str | None:
    """Why ``name`` is refused before it is even normalized, or None (the predictor checks the normalized form)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (an undecodable byte or a lone surrogate); pass the name as UTF-8"
    if len(name) > MAX_INPUT_LENGTH:
        return f"is {len(name):,} characters long; a name may have at most {MAX_NAME_LENGTH} once normalized"
    return None


def predict_rows(predictor, names: Sequence[str], top_k: int, **options) -> list[dict]:
    """One row per name, in order: its prediction, or an error for that name alone (``options``: Predictor.predict's)."""
    rows: list[dict | None] = [None] * len(names)
    todo = []
    for i, name in enumerate(names):
        error = name_error(name)
        if error:
            rows[i] = {"name": _shown(name), "error": error}
        else:
            todo.append(i)
    predicted = predictor.predict([names[i] for i in todo], top_k=top_k, max_length=MAX_NAME_LENGTH, **options)
    for i, row in zip(todo, predicted):
        rows[i] = row
    return rows


# Characters that str.splitlines() (and many readers) take as the end of a line.
_LINE_BREAKS = {
    "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x0b": "\\x0b", "\x0c": "\\x0c", "\x1c": "\\x1c",
    "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029",
}  # fmt: skip
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", **_LINE_BREAKS})
# JSON leaves these three unescaped, and JavaScript and str.splitlines() break lines at them.
_JSON_ESCAPES = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def format_predictions(results: list[dict], fmt: str, top_k: int) -> str:
    """JSON lines, CSV or text; ``uncertain`` and ``coverage_set`` columns appear when the rows hold them."""
    out = io.StringIO()
    flags = [key for key in ("uncertain", "coverage_set") if any(key in row for row in results)]
    if fmt == "json":
        for row in results:
            out.write(json.dumps(row, ensure_ascii=False).translate(_JSON_ESCAPES) + "\n")
    elif fmt == "csv":
        # RFC 4180: CRLF ends a record, so a field holding CR or LF is quoted.
        writer = csv.writer(out, lineterminator="\r\n")
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
            name = row["name"].translate(_TEXT_ESCAPES)
            if "error" in row:
                out.write(f"{name}\terror: {row['error'].translate(_TEXT_ESCAPES)}\n")
            else:
                ranked = ", ".join(f"{p['language']} {p['probability']:.3f}" for p in row["predictions"])
                extra = "\tuncertain" if row.get("uncertain") else ""
                if "coverage_set" in row:
                    extra += "\tset: " + " | ".join(row["coverage_set"])
                out.write(f"{name}\t({row['normalized']})\t{ranked}{extra}\n")
    return out.getvalue()


def cmd_predict(args) -> int:
    from ..data.tables import is_table  # pyarrow: imported when a file is read

    if bool(args.names) == bool(args.input):
        print("error: give names as arguments or --input FILE (one of the two)", file=sys.stderr)
        return EXIT_USAGE
    if args.top_k is not None and args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        print(f"error: --min-confidence must be between 0 and 1, got {args.min_confidence}", file=sys.stderr)
        return EXIT_USAGE
    if args.coverage is not None and not 0.0 < args.coverage < 1.0:
        print(f"error: --coverage must be between 0 and 1 (exclusive), e.g. 0.9; got {args.coverage}", file=sys.stderr)
        return EXIT_USAGE
    if args.input and is_table(args.input):
        return _predict_table(args)
    if args.workers or args.scheduler:
        print("error: --workers and --scheduler need a table: --input FILE.csv|.tsv|.parquet", file=sys.stderr)
        return EXIT_USAGE
    top_k = args.top_k or 3
    names = read_names_file(args.input) if args.input else args.names
    predictor = load_predictor(args.run_dir, device=resolve_device(args.device))
    with open_output(args.output, input_path=args.input) as output:
        results = predict_rows(
            predictor, names, top_k, min_confidence=args.min_confidence, coverage=args.coverage
        )
        output.write(format_predictions(results, args.format or "text", min(top_k, len(predictor.labels))))
    return 0


def _predict_table(args) -> int:
    """A table in, the same rows with their predictions out: streamed, or on Dask."""
    from ..predict.stream import TableOptions, predict_table  # pyarrow: imported for tables only

    if args.format is not None:
        print("error: --format is for names; a table's output format follows --output's suffix", file=sys.stderr)
        return EXIT_USAGE
    if args.workers and args.scheduler:
        print("error: give --workers (a local cluster) or --scheduler (an existing one), not both", file=sys.stderr)
        return EXIT_USAGE
    options = TableOptions(args.name_column, args.top_k or 1, args.min_confidence, args.coverage)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731  standard output may hold the table
    if args.workers or args.scheduler:
        from ..predict.distributed import predict_table_dask  # dask: imported when asked for

        predict_table_dask(
            args.run_dir, args.input, args.output, options, workers=args.workers, scheduler=args.scheduler, log=log
        )
        return 0
    predictor = load_predictor(args.run_dir, device=resolve_device(args.device))
    predict_table(predictor, args.input, args.output, options, chunk_rows=args.chunk_rows, log=log)
    return 0


def cmd_serve(args) -> int:
    from ..serve import serve  # fastapi and uvicorn: imported for the server only

    serve(args.run_dirs, host=args.host, port=args.port, min_confidence=args.min_confidence)
    return 0


def cmd_compare(args) -> int:
    from ..experiment.compare import (  # matplotlib (through the report): imported for the experiment only
        DEFAULT_SEEDS,
        QUICK_EPOCHS,
        QUICK_HIDDEN_SIZE,
        QUICK_SEEDS,
        CompareSettings,
        default_epochs,
        parse_models,
        parse_suites,
    )
    from ..experiment.runner import run_compare

    def pick(given, quick, default):
        return given if given is not None else quick if args.quick else default

    defaults = TrainConfig()
    suites = parse_suites(args.suite)
    config = replace(
        defaults,
        impl=args.impl,
        epochs=pick(args.epochs, QUICK_EPOCHS, default_epochs(suites)),
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
        suites=suites,
    )
    corpus, folder = _load_corpus(args)
    try:
        summary = run_compare(settings, folder, corpus=corpus, between_epochs=args.adapt_threads)
    except KeyboardInterrupt:
        print(
            f"interrupted: the finished runs in {args.out / 'runs'} are kept and the report is gone; "
            "run the same command again to go on (finished runs are reused, an unfinished one resumes)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
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


def resume_command(argv: Sequence[str], out: Path) -> str:
    """The user's own ``namelab train`` command, with ``--resume`` (and ``--out``, if it was left to its default)."""
    words = [word for word in argv if word not in ("--resume", "--force")]
    if not any(word == "--out" or word.startswith("--out=") for word in words):
        words += ["--out", str(out)]
    return shlex.join(["namelab", *words, "--resume"])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.adapt_threads = lambda: None
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    elif hasattr(args, "threads"):
        threads = AdaptiveThreads()
        threads.start()
        args.adapt_threads = threads.update
    try:
        return COMMANDS[args.command](args)
    except (DataError, CheckpointError, ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
