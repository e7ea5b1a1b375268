"""The ``namelab`` argument parser: every subcommand, every option, its help and its default.

    parser = build_parser()
    args = parse_args(parser, ["predict", "runs/gru", "Nakamura"])   # "did you mean" on a typo

Every option has help text; the formatter appends its default; every subcommand's help
ends with examples (tests/test_cli.py walks the parser to keep it so). The hints added to
argparse's errors, and the reading of a name where the run folder goes, are in hints.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from ..core.cells import CELLS
from ..core.model import ENGINES, POOLS
from ..data.corpus import MAX_NAME_LENGTH
from ..inference.backends import BACKENDS
from ..inference.priors import TRAIN_PRIOR
from ..inference.schema import DEFAULT_MIN_CONFIDENCE, DEFAULT_TOP_K
from ..inference.unknown import DEFAULT_FALSE_ALARM
from ..runs.config import TrainConfig
from ..train.presets import PRESETS
from ..version import __version__
from .hints import UsageError, choice_hint, no_default_model, option_hint, split_run_and_names

# The hints are re-exported: callers that read a command line's words import them from here too.
__all__ = [
    "HelpFormatter",
    "Parser",
    "UsageError",
    "build_parser",
    "no_default_model",
    "parse_args",
    "split_run_and_names",
    "subcommands",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default appended to its help; epilogs (the examples) kept as written.

    No "(default: None)" or "(default: False)": an option without a fixed default says in
    its own help what happens when it is left out, and a flag is off unless given.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, with the closest valid word suggested when a choice (a subcommand, a cell) is mistyped."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        super().error(message + choice_hint(message))


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser``, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an unknown option is reported by its subcommand with the closest one.

    argparse hands a subcommand's unknown options up to the top parser, whose message
    neither names the subcommand nor knows its options; here the subcommand answers,
    in argparse's own style (its usage line, exit status 2).
    """
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = subcommands(parser).get(getattr(args, "command", None) or "", parser)
        options = [s for action in owner._actions for s in action.option_strings]
        owner.error(f"unrecognized arguments: {' '.join(unknown)}{option_hint(unknown, options)}")
    return args


def _examples(*commands: str, note: str = "") -> str:
    lines = ["examples:", *(f"  {command}" for command in commands)]
    return "\n".join(lines + ([f"\n{note}"] if note else []))


def _add_engine(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    parser.add_argument(
        "--engine", "--impl", dest="engine", choices=list(ENGINES), default=default, help=f"{help} (--impl: its former name)"
    )


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
    parser.add_argument("--name-column", default="name", help="a table's column of names")
    parser.add_argument("--label-column", default="language", help="a table's column of labels")


def _ranged(parse: Callable[[str], float], ok: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse ``type``: ``parse`` the text, then require ``ok`` of the value, else say what was expected."""

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


_positive_int = _ranged(int, lambda v: v >= 1, "a whole number of at least 1")
_port = _ranged(int, lambda v: 0 <= v <= 65535, "a port from 0 to 65535 (0: any free port)")
_probability = _ranged(float, lambda v: 0.0 <= v <= 1.0, "a probability between 0 and 1")
_open_probability = _ranged(float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (exclusive)")


def _add_threads(parser: argparse.ArgumentParser, work: str) -> None:
    """``--threads``; ``work`` says when the free cores are counted again ("and after every training epoch")."""
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help=f"CPU threads for torch (default: one per core that other programs leave free, counted at the start{work}; "
        "OMP_NUM_THREADS, when set, is used as it is)",
    )


_TRAINING_THREADS = (
    " and after every training epoch. A fixed count makes training reproducible bit for bit across machines' loads"
)


def _add_device(parser: argparse.ArgumentParser, default: str, work: str) -> None:
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default=default, help=f"where to {work} (auto: CUDA if present)"
    )


def _add_population(parser: argparse.ArgumentParser) -> None:
    """--prior and --unknown-false-alarm: who the names come from, and how often a known language may be flagged."""
    parser.add_argument(
        "--prior",
        default=TRAIN_PRIOR,
        metavar="PRIOR",
        help="the make-up of the population the names come from: train (the training data's language shares: "
        "52%% Russian), uniform (every language alike; recommended when the make-up is unknown), estimate (fitted "
        "to the input's names by EM; needs a few hundred names or more), or a JSON/CSV file of language shares "
        "(default: train)",
    )
    parser.add_argument(
        "--unknown-false-alarm",
        type=_open_probability,
        default=DEFAULT_FALSE_ALARM,
        metavar="RATE",
        help="flag a name unknown_language when its spelling is less like every training language than all but "
        f"this share of validation names (default: {DEFAULT_FALSE_ALARM})",
    )


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = Parser(
        prog="namelab",
        description="Classify surnames by language with RNN, LSTM and GRU.",
        epilog=_examples(
            "namelab train --cell gru --out runs/gru",
            "namelab predict runs/gru Nakamura Nguyen Schmidt",
            "namelab compare --quick --out reports/smoke",
            note="`namelab COMMAND --help` shows a command's options and examples.",
        ),
    )
    parser.add_argument("--version", action="version", version=f"namelab {__version__}", help="print the version")
    # Not required: bare `namelab` prints the command list (commands.py).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=Parser)

    p = sub.add_parser(
        "data",
        help="describe the dataset: counts, duplicates, normalization, split sizes",
        description="Describe the dataset: names per language, names in two languages, what normalization "
        "changes, and the sizes of the train/validation/test split.",
        epilog=_examples(
            "namelab data",
            "namelab data --data-dir ~/data/names --split-seed 1",
            "namelab data --data people.csv --name-column surname --label-column country",
        ),
    )
    _add_data_dir(p)
    p.add_argument("--split-seed", type=int, default=defaults.split_seed, help="seed of the train/validation/test split")

    p = sub.add_parser(
        "train",
        help="train one model and write a run folder",
        description="Train one model and write a run folder: weights, config, history, test metrics, a model card.",
        epilog=_examples(
            "namelab train --cell gru --out runs/gru",
            "namelab train --preset best --out runs/best",
            "namelab train --cell lstm --epochs 30 --hidden-size 128 --threads 1 --out runs/lstm-small",
        ),
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="train a recipe chosen on the validation split (best: an ensemble; see docs/accuracy.md); "
        "--seed, --split-seed and --device still apply, the other model options are the preset's",
    )
    p.add_argument(
        "--cell",
        "--model",
        dest="cell",
        choices=list(CELLS),
        default=defaults.cell,
        help="the recurrent cell (--model: its former name)",
    )
    _add_engine(
        p,
        defaults.engine,
        "hand: the cells as written in namelab/core/cells.py; fused: torch's nn.RNN/LSTM/GRU kernels "
        "(the same model, faster)",
    )
    _add_data_dir(p)
    p.add_argument("--out", type=Path, default=None, help="run folder to write (default: runs/<cell>-seed<seed>)")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training names")
    p.add_argument("--hidden-size", type=int, default=defaults.hidden_size, help="width of the cell's state")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="names per training step")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate of AdamW (one-cycle schedule)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay")
    p.add_argument("--dropout", type=float, default=defaults.dropout, help="dropout before the output layer")
    p.add_argument(
        "--class-weight-power",
        type=float,
        default=defaults.class_weight_power,
        help="a language's loss weight is (1 / its share of names) to this power; 0: every name counts the same",
    )
    p.add_argument(
        "--label-smoothing", type=float, default=defaults.label_smoothing, help="share of each target spread evenly over the classes"
    )
    p.add_argument(
        "--char-dropout",
        type=float,
        default=defaults.char_dropout,
        help="chance that a training character is read as the unknown symbol",
    )
    p.add_argument(
        "--bidirectional", action="store_true", help="a second cell reads each name right to left; states are joined"
    )
    p.add_argument(
        "--pool", choices=list(POOLS), default=defaults.pool, help="what the output layer reads (last: the last state)"
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
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the weights, dropout and batch order")
    p.add_argument("--split-seed", type=int, default=defaults.split_seed, help="seed of the train/validation/test split")
    _add_device(p, defaults.device, "train")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="go on from the checkpoint of an unfinished run in --out (the same options it was started with); "
        "with nothing to resume, train from the start",
    )
    again.add_argument("--force", action="store_true", help="replace the run in --out, finished or not")
    _add_threads(p, _TRAINING_THREADS)

    p = sub.add_parser(
        "evaluate",
        help="recompute a run's test metrics",
        description="Recompute a run's test metrics on its own split of the dataset (warns if the dataset changed).",
        epilog=_examples("namelab evaluate runs/gru", "namelab evaluate runs/gru --json"),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder written by `namelab train`")
    _add_data_dir(p)
    p.add_argument("--json", action="store_true", help="print the metrics object as JSON")
    p.add_argument(
        "--prior",
        default=TRAIN_PRIOR,
        metavar="PRIOR",
        help="score the answers re-weighted to this population: train, uniform, estimate or a file of shares "
        "(default: train)",
    )
    _add_threads(p, "")

    p = sub.add_parser(
        "predict",
        help="top-k languages of names given as arguments, in a file or in a table",
        description="Top-k languages of each name, with calibrated probabilities.",
        epilog=_examples(
            "namelab predict runs/gru Nakamura Nguyen Schmidt",
            "namelab predict runs/gru Haddad --top-k 5 --format json",
            "namelab predict runs/gru --input people.csv --name-column surname --output predictions.csv",
            note=f"Each line of a text --input is one name and gives one output row, in order; a name longer\n"
            f"than {MAX_NAME_LENGTH} characters, or not valid UTF-8, gets an error row of its own (line endings and\n"
            "escaping: docs/cli.md).",
        ),
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder written by `namelab train`")
    p.add_argument("names", nargs="*", metavar="NAME", help="surnames to classify")
    p.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="file with one name per line, or a .csv, .tsv or .parquet table (streamed in chunks, see --name-column)",
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="write here instead of standard output; for a table, the suffix sets the format (.parquet, .csv, .tsv, "
        ".jsonl), and with --workers/--scheduler a path without one is a folder of Parquet parts. For names, a "
        "file is replaced whole when done (its mode kept), a symlink is followed, a FIFO or device is written "
        "through, and the --input file is refused",
    )
    p.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, help=f"languages per name (default: {DEFAULT_TOP_K}, as the API's)"
    )
    p.add_argument(
        "--format",
        choices=["text", "csv", "tsv", "json", "parquet"],
        default=None,
        help="text, csv or json (JSON lines) for names (default: text); for a table any of them, tsv and parquet too "
        "(default: --output's suffix, CSV on standard output). Columns: namelab.inference.schema",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        default=DEFAULT_MIN_CONFIDENCE,
        help="mark a name uncertain when its top calibrated probability is below P (the ranking is still given; "
        f"default: {DEFAULT_MIN_CONFIDENCE}, as serve's; 0 marks none)",
    )
    p.add_argument(
        "--coverage",
        type=float,
        metavar="L",
        help="also give the smallest set of languages that holds the true one for a fraction L of names "
        "(split-conformal on the validation split, e.g. 0.9; default: no set)",
    )
    p.add_argument("--name-column", default="name", help="the input table's column of names")
    p.add_argument("--chunk-rows", type=_positive_int, default=65_536, help="rows per chunk of a table")
    p.add_argument(
        "--workers", type=_positive_int, help="predict a table on a local Dask cluster of N worker processes"
    )
    p.add_argument("--scheduler", help="predict a table on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    _add_device(p, "cpu", "predict")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="what runs the recurrent models: torch, onnx (onnxruntime; faster for a few names at a time, slower "
        "in bulk on this project's CPU: docs/speed.md) or auto (onnx for LSTMs)",
    )
    _add_population(p)
    _add_threads(p, "")

    p = sub.add_parser(
        "serve",
        help="serve runs over HTTP: a JSON API (docs at /docs) and a web page at /",
        description="Serve runs over HTTP: a JSON API (its docs at /docs) and a web page at /.",
        epilog=_examples(
            "namelab serve",
            "namelab serve reports/compare",
            "namelab serve runs/gru runs/best --port 8080",
        ),
    )
    p.add_argument(
        "run_dirs",
        nargs="*",
        type=Path,
        metavar="RUN_DIR",
        help="a run folder, or a compare output folder (serves its best run of each model by validation accuracy); "
        "none: the model shipped with namelab",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (0: any free port)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="server processes sharing the port, each with its own models and limits "
        "(default: one per free core; 1: a single process)",
    )
    p.add_argument(
        "--min-confidence",
        type=_probability,
        default=DEFAULT_MIN_CONFIDENCE,
        help="mark a model's answer uncertain when its top language's calibrated probability is below this "
        "(a request may send its own min_confidence)",
    )
    _add_population(p)

    p = sub.add_parser(
        "export",
        help="write a run as an ONNX model that onnxruntime runs outside namelab",
        description="Write a recurrent run as one ONNX graph: int64 ids (batch, time) and lengths (batch,) in, "
        "calibrated probabilities and logits (batch, languages) out; the labels, the vocabulary and the encoding "
        "rules in its metadata. An ensemble (--preset best) exports as its recurrent members plus the JSON recipe "
        "of its config.json; the n-gram baseline has no ONNX form.",
        epilog=_examples(
            "namelab export runs/gru --out gru.onnx",
            "namelab export runs/best/members/bigru-emb64-ngram131072-h256-seed0 --out best-gru.onnx",
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a recurrent run folder written by `namelab train`")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="the exchange format")
    p.add_argument("--out", type=Path, required=True, help="the file to write (replaced atomically)")

    p = sub.add_parser(
        "compare",
        help="the experiment: train every model on every seed, write report.html, report.md, figures, summary.json",
        description="The experiment: train every model on every seed, then write report.html, report.md, "
        "figures and summary.json. Finished runs are reused; an interrupted one resumes.",
        epilog=_examples(
            "namelab compare --quick --out reports/smoke",
            "namelab compare --suite seed,accuracy --out reports/compare",
            "namelab compare --models lstm,gru --seeds 5 --engine fused --out reports/gated",
            note="Then: namelab serve reports/compare",
        ),
    )
    p.add_argument(
        "--suite",
        default="seed",
        help="comma-separated experiments to run: seed (every model on every seed), "
        "insights (dropout ablation and hyperparameter grid), accuracy (the n-gram baseline, the best single "
        "model and the best ensemble, calibrated, with a reliability diagram), realworld (every model the other "
        "suites trained, scored on real surnames under each --prior, with the unknown-language ROC)",
    )
    p.add_argument(
        "--benchmark", type=Path, default=None,
        help="the realworld suite's CSV (name,language,in_domain,source; default: the packaged Faker-based "
        "benchmark, docs/realworld.md)",
    )
    p.add_argument("--models", default="rnn,lstm,gru", help="comma-separated cells to compare")
    p.add_argument("--seeds", type=int, default=None, help="training seeds 0..N-1 per model (default: 3; --quick: 1)")
    p.add_argument(
        "--epochs", type=int, default=None,
        help=f"epochs per run (default: {defaults.epochs}; insights alone: 10; --quick: 2)",
    )
    p.add_argument(
        "--hidden-size", type=int, default=None, help=f"width of the cell's state (default: {defaults.hidden_size}; --quick: 32)"
    )
    _add_engine(p, defaults.engine, "hand-written cells or torch's fused kernels")
    _add_data_dir(p)
    p.add_argument("--out", type=Path, default=Path("reports/compare"), help="report folder")
    p.add_argument("--split-seed", type=int, default=defaults.split_seed, help="seed of the train/validation/test split")
    _add_device(p, defaults.device, "train")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, 1 seed, hidden size 32 unless given")
    _add_threads(p, _TRAINING_THREADS)
    return parser
