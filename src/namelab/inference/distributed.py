"""Prediction over partitioned tables on Dask: a local cluster of worker processes, or an existing one.

    namelab predict runs/lstm --input people.parquet --name-column surname --workers 2 --output out/
    namelab predict runs/lstm --input people.csv --name-column surname --scheduler tcp://10.0.0.5:8786 \\
        --output s3-or-shared-disk/out/

    predict_table_dask("runs/lstm", "people.csv", "out/", TableOptions("surname"), workers=2)

The input is read as partitions (Parquet row groups, CSV blocks; a CSV whose quoted
fields span lines is read whole, then cut: :func:`read_partitions`); every partition goes
through stream.annotate, the function the single-process path uses, on a worker that
has loaded the model once (:class:`PredictorPlugin` ships the run folder's files to
each worker, so workers need no shared disk to read the model). The output is a
folder of Parquet parts ``part-00000.parquet``, ... in input order, written by the
workers (on a real cluster, give a path every worker can write: a shared disk or an
object store); or, when ``--output`` names a ``.parquet``/``.csv``/``.tsv``/``.jsonl``
file, one file written here, partitions gathered in order a few at a time.

Training on several processes or machines is torchrun's job (ddp.py).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import torch
from dask.utils import parse_bytes
from distributed import Client, LocalCluster, WorkerPlugin, get_worker

from ..data.download import DataError
from ..data.tables import DELIMITERS, column_names, spans_lines, table_kind
from ..runs.checkpoint import CHECKPOINT, CONFIG, read_json, run_kind
from .ensemble import KIND as ENSEMBLE
from .ensemble import member_folders
from .load import load_predictor
from .output import check_not_input
from .priors import ESTIMATE_PRIOR, PRIORS, read_prior
from .stream import OUTPUT_SUFFIXES, TableOptions, annotate, check_input_columns, output_kind, rounded, write_tables

DEFAULT_BLOCKSIZE = "16MB"  # a CSV partition (a 10^6-row table of names is ~27 MB); Parquet: its row groups

def run_files(run_dir: Path | str) -> dict[str, bytes]:
    """The files a Predictor loads, by path relative to the run folder.

    A run's top-level files; for an ensemble also each member folder's (its weights,
    config and checksums), never the training checkpoints, which a prediction never reads.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} does not exist; train one with `namelab train --out {run_dir}`")
    folders = [run_dir.resolve()]
    if run_kind(run_dir) == ENSEMBLE:
        folders += member_folders(run_dir, read_json(run_dir / CONFIG))
    files = {}
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name != CHECKPOINT:
                files[path.relative_to(folders[0]).as_posix()] = path.read_bytes()
    return files


class PredictorPlugin(WorkerPlugin):
    """Loads a run's Predictor once in each worker process, from the run's files shipped with the plugin."""

    def __init__(self, files: dict[str, bytes], threads: int = 1):
        self.files = files
        self.threads = threads
        self.key = hashlib.sha256(b"".join(files[name] for name in sorted(files))).hexdigest()[:16]
        self.name = f"namelab-predictor-{self.key}"
        self.predictor = None
        self.loads = 0

    def setup(self, worker) -> None:
        torch.set_num_threads(self.threads)  # a worker per core: torch's own threads would only compete
        folder = Path(worker.local_directory) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.predictor = load_predictor(folder)
        self.loads += 1


def _annotate_frame(frame, options: TableOptions, plugin_name: str, round_flat: bool = False):
    """One partition (pandas) with its predictions, as Arrow-typed pandas columns (the same in every partition).

    ``round_flat``: probabilities to the flat surfaces' 4 decimals (for Parquet parts written by the workers).
    """
    predictor = None
    if len(frame):
        predictor = get_worker().plugins[plugin_name].predictor
    table = annotate(predictor, pa.Table.from_pandas(frame, preserve_index=False), options)
    if round_flat:
        table = rounded(table)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def read_partitions(path: Path | str, *, blocksize: str | int | None = DEFAULT_BLOCKSIZE):
    """A dask DataFrame of the table: every CSV/TSV column as text (as stream.py reads them), Parquet as typed.

    A CSV/TSV is cut into blocks of ``blocksize`` bytes, except one whose quoted fields span
    lines: Dask cuts at any line break, which would split such a row in two, so that file is
    read whole (by one worker, into its memory) and its rows then cut into as many partitions.
    """
    kind = table_kind(path)
    if kind == "parquet":
        return dd.read_parquet(str(path), split_row_groups=True)
    whole = spans_lines(path)
    frame = dd.read_csv(
        str(path),
        sep=DELIMITERS[f".{kind}"],
        dtype=str,
        keep_default_na=False,  # an empty field is an empty name, as in the single-process reader
        na_filter=False,
        blocksize=None if whole else blocksize,
    )
    if whole and blocksize is not None:
        # The prediction, not the reading, is the work: it still spreads over the workers.
        frame = frame.repartition(npartitions=max(1, math.ceil(Path(path).stat().st_size / parse_bytes(blocksize))))
    return frame


@dataclass
class DaskSummary:
    partitions: int
    output: str


def start_client(workers: int | None = None, scheduler: str | None = None, threads: int = 1):
    """A dask Client: of an existing scheduler, or of a new LocalCluster of worker processes on 127.0.0.1."""
    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        # The scheduler's HTTP server always starts; None would put it on the default port 8787
        # (of every interface), taken by any other cluster on the machine.
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    return Client(cluster)


def _shipped_prior(prior, labels: list[str]):
    """The prior as the workers get it: a file is read here, once (a worker may not see the path)."""
    if isinstance(prior, str) and prior == ESTIMATE_PRIOR:
        raise DataError(
            "--prior estimate needs every row's probabilities before the first is written, which a Dask run "
            "does not gather; run it without --workers/--scheduler (one pass over the table), or estimate the "
            "shares on a sample and pass them as a file: --prior shares.json"
        )
    if isinstance(prior, str) and prior not in PRIORS:
        return read_prior(prior, labels)
    return prior


def predict_table_dask(
    run_dir: Path | str,
    input_path: Path | str,
    output: Path | str | None,
    options: TableOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    blocksize: str | int = DEFAULT_BLOCKSIZE,
    log: Callable[[str], None] | None = None,
    kind: str | None = None,
) -> DaskSummary:
    """Predict every row of a table on Dask and write the annotated rows to ``output``.

    ``output``: a folder (no table suffix) for a partitioned Parquet dataset, a file for
    one table, ``None`` for CSV on standard output. ``client``: an open Client to use
    (then ``workers`` and ``scheduler`` are ignored and the client is left open).
    ``kind``: a single file's format (stream.output_kind); a folder always gets Parquet parts.
    """
    labels = read_json(Path(run_dir) / CONFIG)["labels"]
    options = replace(options, top_k=max(1, min(options.top_k, len(labels))), prior=_shipped_prior(options.prior, labels))
    check_input_columns(input_path, column_names(input_path), options)
    single_file = _check_output(output, input_path, kind)
    plugin = PredictorPlugin(run_files(run_dir))
    own_client = client is None
    client = client or start_client(workers, scheduler)
    try:
        client.register_plugin(plugin, name=plugin.name)
        frame = read_partitions(input_path, blocksize=blocksize)
        round_flat = not single_file
        annotated = frame.map_partitions(
            _annotate_frame, options, plugin.name, round_flat,
            meta=_annotate_frame(frame._meta, options, plugin.name, round_flat),
        )
        partitions = annotated.npartitions
        if single_file:
            _write_gathered(client, annotated, output, options, input_path, kind)
        else:
            annotated.to_parquet(
                str(output), write_index=False, name_function=lambda i: f"part-{i:05d}.parquet", compute=True
            )
        client.unregister_worker_plugin(plugin.name)
    finally:
        if own_client:
            _close_client(client, scheduler)
    if log is not None:
        log(f"{partitions} partition(s) predicted on Dask -> {output if output is not None else 'standard output'}")
    return DaskSummary(partitions=partitions, output=str(output))


def _check_output(output: Path | str | None, input_path: Path | str, kind: str | None) -> bool:
    """Whether ``output`` is one file (else a folder of parts), refusing a bad one before a cluster starts."""
    single_file = output is None or Path(output).suffix.lower() in OUTPUT_SUFFIXES
    if single_file:
        output_kind(output, kind)  # a --format that contradicts the suffix fails before a cluster starts
    elif kind not in (None, "parquet"):
        raise DataError(f"--output {output} is a folder of Parquet parts; --format {kind} needs a file name")
    if single_file and output is not None:
        check_not_input(output, input_path)  # before a cluster starts; write_tables applies the other rules
    if not single_file:
        out_dir = Path(output)
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise DataError(f"--output {out_dir} exists and is not an empty folder; remove it or choose another")
    return single_file


def _write_gathered(
    client, annotated, output: Path | str | None, options: TableOptions, input_path: Path | str, kind: str | None
) -> None:
    """Gather the annotated partitions here, in order, into one file (or standard output)."""
    schema = pa.Table.from_pandas(annotated._meta, preserve_index=False).schema
    # Two partitions per worker in flight: every worker stays busy, and what waits here stays bounded.
    window = 2 * max(1, len(client.scheduler_info()["workers"]))
    tables = _in_order(client, annotated.to_delayed(), window=window)
    write_tables((pa.Table.from_pandas(part, preserve_index=False).cast(schema) for part in tables), output,
                 schema, options, input_path=input_path, kind=kind)


def _close_client(client, scheduler: str | None) -> None:
    """Close a client this module opened, and the local cluster it started (never a scheduler's)."""
    cluster = client.cluster
    client.close()
    if cluster is not None and not scheduler:
        cluster.close()


def _in_order(client, delayed_parts: Sequence, window: int) -> Iterator:
    """Results of ``delayed_parts`` in order, with at most ``window`` computed or running at once."""
    pending: deque = deque()
    for part in delayed_parts:
        pending.append(client.compute(part))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
