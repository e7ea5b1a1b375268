"""The ``namelab`` argument parser: every subcommand, every option, its help and its default.

    args = build_parser().parse_args(["predict", "runs/gru", "Nakamura"])
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.cells import CELLS
from ..core.model import IMPLS, POOLS
from ..data.corpus import MAX_NAME_LENGTH
from ..runs.config import TrainConfig
from ..train.presets import PRESETS
from ..version import __version__
from .formats import LINE_RULE


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535 (0: any free port), got {text!r}")
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
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (0: any free port)")
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
