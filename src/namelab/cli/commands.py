"""The ``namelab`` command line.

    namelab data --data-dir ../shared/data/names
    namelab train --cell lstm --out runs/lstm
    namelab evaluate runs/lstm
    namelab predict runs/lstm Nakamura Schmidt --top-k 3 --format json
    namelab predict runs/lstm --input names.txt --output predictions.csv --format csv
    namelab train --data people.csv --name-column surname --label-column country --out runs/mine
    namelab predict runs/mine --input people.parquet --name-column surname --output out.parquet
    namelab predict runs/mine --input people.csv --name-column surname --workers 2 --output out/
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Sequence

import torch

from ..api import default_model
from ..core.metrics import format_metrics
from ..data.corpus import Corpus, UnusableName, normalize
from ..data.download import DataError, dataset_checksum, is_official, resolve_data_dir
from ..data.kinds import is_table
from ..inference.evaluate import evaluate_run
from ..inference.load import load_predictor
from ..inference.output import open_output
from ..inference.priors import ESTIMATE_PRIOR
from ..runs.checkpoint import CheckpointError, checkpoint_info
from ..runs.config import TrainConfig, resolve_device
from ..runs.env import AdaptiveThreads
from ..train.loop import train
from ..train.presets import train_preset
from .formats import format_predictions, predict_rows, read_names_file
from .hints import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, no_default_model, split_run_and_names
from .parser import build_parser, parse_args


def _data_path(args) -> Path:
    """``--data``, else ``--data-dir``, else $NAMELAB_DATA, else the verified download."""
    if args.data is not None and args.data_dir is not None:
        raise DataError("give --data or --data-dir, not both (--data takes a folder too)")
    if args.data is not None:

        if not args.data.exists():
            raise DataError(f"--data {args.data} does not exist; give a names folder or a .csv, .tsv or .parquet file")
        if args.data.is_file() and is_table(args.data):
            return args.data
    return resolve_data_dir(args.data if args.data is not None else args.data_dir)


def _load_corpus(args) -> tuple[Corpus, Path]:
    path = _data_path(args)
    return Corpus.load(path, name_column=args.name_column, label_column=args.label_column), path


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
    out = args.out or Path("runs") / f"{args.cell}-seed{args.seed}"
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
    command = resume_command(args.argv, out)
    try:
        m = train_preset(
            args.preset, corpus, out, data_dir=folder, overrides=overrides, force=args.force, resume=args.resume,
            command=command,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"interrupted: the finished members in {out} are kept; resume with `{command}`", file=sys.stderr)
        return EXIT_INTERRUPTED
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
        args.run_dir, _data_path(args), name_column=args.name_column, label_column=args.label_column, prior=args.prior
    )
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def cmd_predict(args) -> int:
    args.run_dir, args.names = split_run_and_names(args)
    if args.run_dir is None:
        try:
            args.run_dir = default_model()
        except FileNotFoundError:
            raise no_default_model(args.names) from None
    if bool(args.names) == bool(args.input):
        print("error: give names as arguments or --input FILE (one of the two)", file=sys.stderr)
        return EXIT_USAGE
    if args.top_k < 1:
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
    if args.format not in (None, "text", "csv", "json"):
        print(f"error: --format {args.format} is for tables; names are written as text, csv or json", file=sys.stderr)
        return EXIT_USAGE
    if args.workers or args.scheduler:
        print("error: --workers and --scheduler need a table: --input FILE.csv|.tsv|.parquet", file=sys.stderr)
        return EXIT_USAGE
    top_k = args.top_k
    names = read_names_file(args.input) if args.input else args.names
    predictor = load_predictor(args.run_dir, device=resolve_device(args.device), backend=args.backend)
    prior = _estimated_prior(predictor, names) if args.prior == ESTIMATE_PRIOR else args.prior
    with open_output(args.output, input_path=args.input) as output:
        results = predict_rows(
            predictor, names, top_k, min_confidence=args.min_confidence, coverage=args.coverage, prior=prior,
            false_alarm=args.unknown_false_alarm,
        )
        output.write(
            format_predictions(
                results, args.format or "text", min(top_k, len(predictor.labels)), coverage=args.coverage is not None
            )
        )
    return 0


def _estimated_prior(predictor, names) -> torch.Tensor:
    """EM over the names' probabilities, reported on standard error.

    A model pass of its own, before the answers' (a command line holds few names; a table's
    prior reuses its one pass, stream.py).
    """
    usable = [text for text in (_normalized_or_none(name) for name in names) if text is not None]
    if not usable:
        raise ValueError("no usable name to estimate a prior from; use --prior train or uniform")
    target = predictor.target_prior(ESTIMATE_PRIOR, predictor.probabilities(usable))
    print("estimated prior: " + _shares_text(predictor.labels, target.tolist()), file=sys.stderr)
    return target


def _normalized_or_none(name: str) -> str | None:
    try:
        return normalize(name)
    except UnusableName:
        return None


def _shares_text(labels, shares) -> str:
    """The largest shares first, as ``Russian 31.2%, English 20.0%, ...``."""
    pairs = sorted(zip(labels, shares), key=lambda pair: -pair[1])
    return ", ".join(f"{label} {100 * share:.1f}%" for label, share in pairs if share >= 0.0005)


def _predict_table(args) -> int:
    """A table in, the same rows with their predictions out: streamed, or on Dask."""
    from ..inference.stream import TableOptions, predict_table  # pyarrow: imported for tables only

    if args.workers and args.scheduler:
        print("error: give --workers (a local cluster) or --scheduler (an existing one), not both", file=sys.stderr)
        return EXIT_USAGE
    options = TableOptions(
        args.name_column, args.top_k, args.min_confidence, args.coverage, args.prior, args.unknown_false_alarm
    )
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731  standard output may hold the table
    if args.workers or args.scheduler:
        from ..inference.distributed import predict_table_dask  # dask: imported when asked for

        predict_table_dask(
            args.run_dir, args.input, args.output, options, workers=args.workers, scheduler=args.scheduler, log=log,
            kind=args.format,
        )
        return 0
    predictor = load_predictor(args.run_dir, device=resolve_device(args.device), backend=args.backend)
    summary = predict_table(
        predictor, args.input, args.output, options, chunk_rows=args.chunk_rows, log=log, kind=args.format
    )
    if summary.prior is not None:
        log("estimated prior: " + _shares_text(predictor.labels, summary.prior))
    return 0


def cmd_serve(args) -> int:
    from ..serve import serve  # fastapi and uvicorn: imported for the server only

    runs = args.run_dirs or [default_model()]
    serve(
        runs, host=args.host, port=args.port, min_confidence=args.min_confidence, prior=args.prior,
        workers=args.workers,
    )
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
        engine=args.engine,
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
        benchmark=args.benchmark,
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


def cmd_export(args) -> int:
    from ..inference.export import export_onnx  # onnx: imported for export only

    path = export_onnx(args.run_dir, args.out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes); run it with onnxruntime, inputs and labels in its metadata")
    return 0


COMMANDS = {
    "data": cmd_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "serve": cmd_serve,
    "export": cmd_export,
    "compare": cmd_compare,
}


def resume_command(argv: Sequence[str], out: Path) -> str:
    """The user's own ``namelab train`` command, with ``--resume`` (and ``--out``, if it was left to its default)."""
    words = [word for word in argv if word not in ("--resume", "--force")]
    if not any(word == "--out" or word.startswith("--out=") for word in words):
        words += ["--out", str(out)]
    return shlex.join(["namelab", *words, "--resume"])


# Optional dependencies and the extra (pyproject.toml) that installs each: the core predicts
# with torch, numpy, safetensors and anyascii alone.
EXTRAS = {
    "fastapi": "serve", "fastapi_offline": "serve", "uvicorn": "serve", "httptools": "serve",
    "pyarrow": "tables", "dask": "dask", "distributed": "dask", "pandas": "dask",
    "matplotlib": "report", "sklearn": "train", "pooch": "train", "onnx": "onnx", "onnxruntime": "onnx",
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.command is None:
        # Bare `namelab` asks what there is: the command list, on standard output, exit 0
        # (as `--help`); a mistyped command is still an error (status 2, from argparse).
        parser.print_help()
        return 0
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
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: `namelab {args.command}` needs {err.name}, an optional part of namelab: "
              f"pip install 'namelab[{extra}]'", file=sys.stderr)
        return 1
    except (DataError, CheckpointError, ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
