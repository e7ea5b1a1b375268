"""How namelab scales with the size of a table: prediction and training, one process against two.

    NAMELAB_DATA=/work/shared/data/names python bench/scale.py                 # 10^4 ... 10^7 rows (hours)
    python bench/scale.py --sizes 10000,100000,1000000 --train-max 1000000      # up to 10^6
    python bench/scale.py --quick --out /tmp/scale.json --plot /tmp/scale.png   # smoke test, a minute

The tables are synthetic but built from the real names: a character trigram model per
language, fitted to the normalized real names, generates names whose language is the
label (languages drawn with the real class frequencies), so they look and spread like
real surnames and repeat about as little as a trigram model allows (the share of
distinct names is recorded: prediction normalizes and predicts each distinct name of a
chunk once). Each table is a CSV of ``id,name,language``.

Every measurement runs the command a user runs, in a child process, and records its
wall time and the peak resident memory of its whole process tree (sampled every 50 ms;
for Dask and torchrun, the sum over every worker and rank):

* prediction, for every size: ``namelab predict RUN --input T.csv --output out.parquet``
  in one process (``--threads 1``), and ``--workers 2`` (a local Dask cluster, output a
  folder of Parquet parts); names per second = rows / wall time (start-up included), and
  for one process also the rate it logs itself (reading, predicting, writing; start-up excluded);
* training, up to ``--train-max`` rows: one epoch of ``namelab train --data T.csv`` in one
  process and under ``torchrun --nproc-per-node 2`` (gloo, one thread per rank); seconds per
  epoch as ``history.json`` records them (batches, forward, backward, steps; validation excluded).

The model predicted with is an LSTM of hidden size 256 (namelab's default) trained for one
epoch on the real names folder (its accuracy is irrelevant to its speed). Nothing passes or
fails on time: figures go to ``bench/scale_results.json`` and a plot to ``docs/figures/scale.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from namelab.data.corpus import Corpus
from namelab.data.download import resolve_data_dir
from namelab.runs.checkpoint import CONFIG, read_history, read_json, run_state

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (2_000, 20_000)
BOUNDARY = 0  # index of the start/end symbol in the trigram model's alphabet
MAX_LENGTH = 24


# -- synthetic tables ------------------------------------------------------------------------


class TrigramNames:
    """Per-language character trigram model of normalized names, sampled many names at a time."""

    def __init__(self, corpus: Corpus):
        self.labels = corpus.labels
        alphabet = sorted({ch for name, _ in corpus.pairs for ch in name})
        self.symbols = np.array(["", *alphabet])
        index = {ch: i + 1 for i, ch in enumerate(alphabet)}
        size = len(self.symbols)
        counts = np.zeros((len(self.labels), size, size, size))
        for name, label in corpus.pairs:
            ids = [BOUNDARY, BOUNDARY, *(index[ch] for ch in name), BOUNDARY]
            for a, b, c in zip(ids, ids[1:], ids[2:]):
                counts[label, a, b, c] += 1
        totals = counts.sum(axis=-1, keepdims=True)
        self.cumulative = np.cumsum(counts / np.where(totals > 0, totals, 1), axis=-1)
        self.cumulative[..., -1] = 1.0  # reached contexts sum to 1; rounding must not leave a gap
        frequency = np.bincount([label for _, label in corpus.pairs], minlength=len(self.labels))
        self.prior = frequency / frequency.sum()

    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """``n`` names and their languages."""
        labels = rng.choice(len(self.labels), size=n, p=self.prior)
        before = np.zeros(n, dtype=np.int64)
        last = np.zeros(n, dtype=np.int64)
        out = np.zeros((n, MAX_LENGTH), dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for t in range(MAX_LENGTH):
            rows = np.flatnonzero(alive)
            if not len(rows):
                break
            cumulative = self.cumulative[labels[rows], before[rows], last[rows]]  # (alive, symbols)
            nxt = (cumulative < rng.random(len(rows))[:, None]).sum(axis=1)
            if t == 0:
                nxt = np.maximum(nxt, 1)  # a name has at least one character
            out[rows, t] = nxt
            alive[rows[nxt == BOUNDARY]] = False
            before[rows], last[rows] = last[rows], nxt
        names = ["".join(chars) for chars in self.symbols[out].tolist()]
        return names, [self.labels[i] for i in labels]


def write_table(path: Path, rows: int, model: TrigramNames, seed: int = 0, chunk: int = 100_000) -> dict:
    """Write ``rows`` synthetic rows to ``path`` (CSV: id, name, language); return their distinct-name share."""
    rng = np.random.default_rng(seed)
    distinct: set[str] = set()
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("language", pa.string())])
    tmp = path.with_suffix(".tmp")
    with pa_csv.CSVWriter(tmp, schema) as writer:
        for start in range(0, rows, chunk):
            names, languages = model.sample(min(chunk, rows - start), rng)
            if len(distinct) < 2_000_000:  # a bounded sample of the distinct share
                distinct.update(names)
            ids = pa.array(np.arange(start, start + len(names)))
            writer.write_table(pa.table([ids, pa.array(names), pa.array(languages)], schema=schema))
    tmp.replace(path)
    return {"rows": rows, "distinct_names_first_2M": len(distinct), "bytes": path.stat().st_size}


# -- measuring a command ---------------------------------------------------------------------


def measure(argv: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``argv``; its wall time and the peak summed RSS of its process tree (MiB)."""
    import psutil  # installed with dask's distributed, not a dependency of namelab itself

    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(child.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = child.communicate(timeout=timeout)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}:\n{output[-3000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(peak[0] / 2**20, 1), "output_tail": output[-400:]}


def namelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "namelab", *args]


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "namelab", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the benchmark ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None, help="comma-separated row counts (default: 10^4,10^5,10^6,10^7)")
    parser.add_argument("--train-max", type=int, default=1_000_000, help="train only on tables up to this many rows")
    parser.add_argument("--modes", default="one,dask,torchrun", help="which of one, dask, torchrun to run")
    parser.add_argument("--hidden-size", type=int, default=256, help="of the models trained and predicted with")
    parser.add_argument("--work", type=Path, default=None, help="folder for the tables and runs (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=HERE / "scale_results.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "figures" / "scale.png")
    parser.add_argument("--note", default="", help="recorded with the figures, e.g. 'measured under load'")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, hidden size 32: a smoke test")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    hidden = 32 if args.quick and args.hidden_size == 256 else args.hidden_size
    modes = set(args.modes.split(","))
    unknown = modes - {"one", "dask", "torchrun"}
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from one, dask, torchrun")

    work = args.work or Path(tempfile.mkdtemp(prefix="namelab-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src

    data_dir = resolve_data_dir(None)
    generator = TrigramNames(Corpus.from_folder(data_dir))
    run = work / "model"
    if run_state(run) != "complete":  # --force: a run a kill left unfinished is started over
        measure(namelab("train", "--data-dir", str(data_dir), "--epochs", "1", "--hidden-size", str(hidden),
                        "--out", str(run), "--threads", "1", "--force"), env)

    results: dict = {
        "note": args.note,
        "sizes": sizes,
        "hidden_size": hidden,
        "cpu_count": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "tables": {},
        "predict": {mode: [] for mode in ("one process", "dask 2 workers") if _mode_key(mode) in modes},
        "train": {mode: [] for mode in ("one process", "torchrun 2 processes") if _mode_key(mode) in modes},
    }
    for rows in sizes:
        table = work / f"names-{rows}.csv"
        if not table.is_file():
            results["tables"][str(rows)] = write_table(table, rows, generator, seed=rows)
        else:
            results["tables"][str(rows)] = {"rows": rows, "bytes": table.stat().st_size}
        predict_args = ["predict", str(run), "--input", str(table), "--name-column", "name", "--threads", "1"]
        if "one" in modes:
            out = work / "out.parquet"
            figures = measure(namelab(*predict_args, "--output", str(out)), env)
            results["predict"]["one process"].append(_rate(rows, figures))
            out.unlink()
            _report("predict, one process", rows, results["predict"]["one process"][-1])
        if "dask" in modes:
            out = work / "out-parts"
            shutil.rmtree(out, ignore_errors=True)
            figures = measure(namelab(*predict_args, "--workers", "2", "--output", str(out)), env)
            results["predict"]["dask 2 workers"].append(_rate(rows, figures))
            shutil.rmtree(out)
            _report("predict, dask 2 workers", rows, results["predict"]["dask 2 workers"][-1])
        if rows > args.train_max:
            continue
        train_args = ["train", "--data", str(table), "--name-column", "name", "--label-column", "language",
                      "--epochs", "1", "--hidden-size", str(hidden), "--threads", "1"]
        for mode, command in (("one process", namelab), ("torchrun 2 processes", lambda *a: torchrun(2, *a))):
            if _mode_key(mode) not in modes:
                continue
            out = work / "train-run"
            shutil.rmtree(out, ignore_errors=True)
            figures = measure(command(*train_args, "--out", str(out)), env)
            history = read_history(out)
            config = read_json(out / CONFIG)
            seconds = history[0]["seconds"]
            entry = {
                "rows": rows,
                "train_rows": config["n_train"],
                "seconds_per_epoch": seconds,
                "microseconds_per_train_row": round(1e6 * seconds / config["n_train"], 2),
                "wall_seconds": figures["seconds"],
                "peak_rss_mib": figures["peak_rss_mib"],
            }
            results["train"][mode].append(entry)
            _report(f"train, {mode}", rows, entry)
            shutil.rmtree(out)
    results["load_average_end"] = list(os.getloadavg())
    for mode, entries in results["train"].items():
        per_row = [e["microseconds_per_train_row"] for e in entries]
        if len(per_row) > 1:
            results.setdefault("train_linearity", {})[mode] = {
                "max_deviation_from_mean_per_row": round(max(abs(v / np.mean(per_row) - 1) for v in per_row), 3)
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot)
    print(f"figures: {args.out}  plot: {args.plot}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _mode_key(mode: str) -> str:
    return {"one process": "one", "dask 2 workers": "dask", "torchrun 2 processes": "torchrun"}[mode]


def _rate(rows: int, figures: dict) -> dict:
    entry = {
        "rows": rows,
        "seconds": figures["seconds"],
        "names_per_second": round(rows / figures["seconds"]),
        "peak_rss_mib": figures["peak_rss_mib"],
    }
    # One process logs its own rate, start-up (imports, model load) excluded.
    match = re.search(r"in ([0-9.]+)s: ([0-9,]+) names/s", figures["output_tail"])
    if match:
        entry["streaming_seconds"] = float(match.group(1))
        entry["streaming_names_per_second"] = int(match.group(2).replace(",", ""))
    return entry


def _report(what: str, rows: int, entry: dict) -> None:
    shown = ", ".join(f"{k} {v}" for k, v in entry.items() if k != "rows")
    print(f"{what:<32} {rows:>11,} rows: {shown}", flush=True)


def plot(results: dict, path: Path) -> None:
    import matplotlib  # the backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for mode, entries in results["predict"].items():
        rows = [e["rows"] for e in entries]
        axes[0].plot(rows, [e["names_per_second"] for e in entries], marker="o", label=mode)
        axes[1].plot(rows, [e["peak_rss_mib"] for e in entries], marker="o", label=mode)
    for mode, entries in results["train"].items():
        axes[2].plot([e["rows"] for e in entries], [e["seconds_per_epoch"] for e in entries], marker="o", label=mode)
    titles = ("prediction: names / s (wall)", "prediction: peak memory (MiB)", "training: seconds / epoch")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlabel("rows in the table")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_ylim(bottom=0)  # flat memory should look flat
    axes[2].set_yscale("log")
    for ax in axes:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if results.get("note"):
        fig.suptitle(results["note"], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
