"""Prediction on a local Dask cluster equals the single-process stream, row for row.

    .venv/bin/python -m pytest tests/test_distributed.py -q

The cluster (2 worker processes on 127.0.0.1, no dashboard) is started by a fixture and
closed when the module's tests end. Marked slow: each worker imports torch when it first
loads the model, about 40 s for the module on a shared 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import trained_run_folder
from test_tables import people, read_rows, write_table

from namelab.cli.commands import main
from namelab.data.download import DataError
from namelab.inference.distributed import PredictorPlugin, predict_table_dask, run_files, start_client
from namelab.inference.ensemble import write_ensemble
from namelab.inference.load import load_predictor
from namelab.inference.stream import TableOptions, predict_table
from namelab.runs.checkpoint import CHECKPOINT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run_folder(tmp_path_factory, "lstm", epochs=6)


@pytest.fixture(scope="module")
def client():
    client = start_client(workers=2)
    try:
        yield client
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def assert_same_rows(got: list[dict], want: list[dict], tol: float = 1.5e-6) -> None:
    """Equal row for row; probabilities to 1e-6, since a float32 sum depends on the batch a name shares
    (to one unit of the 4th decimal where they are rounded to 4: a 1e-6 difference can cross a rounding edge)."""
    assert len(got) == len(want)
    for index, (a, b) in enumerate(zip(got, want)):
        assert a.keys() == b.keys(), index
        for key in a:
            if key.startswith("probability") and a[key] is not None:
                assert math.isclose(a[key], b[key], abs_tol=tol), (index, key, a[key], b[key])
            else:
                assert a[key] == b[key], (index, key, a[key], b[key])


def test_two_workers_equal_one_process(tmp_path: Path, run_dir: Path, client) -> None:
    source = write_table(tmp_path / "people.csv", people(3000, seed=1))
    options = TableOptions("surname", top_k=2, min_confidence=0.6)
    predict_table(load_predictor(run_dir), source, tmp_path / "single.parquet", options, progress=False)
    want = pq.read_table(tmp_path / "single.parquet").to_pylist()

    # A partitioned dataset, CSV read in blocks of 16 kB: several partitions per worker.
    summary = predict_table_dask(run_dir, source, tmp_path / "parts", options, client=client, blocksize=16_000)
    assert summary.partitions >= 4
    parts = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(summary.partitions)]
    assert_same_rows(pq.read_table(tmp_path / "parts").to_pylist(), want, tol=1.01e-4)

    # One file, gathered in order; from a Parquet input whose row groups are the partitions.
    source_pq = write_table(tmp_path / "people.parquet", people(3000, seed=1))
    predict_table_dask(run_dir, source_pq, tmp_path / "one.jsonl", options, client=client)
    predict_table(load_predictor(run_dir), source, tmp_path / "single.jsonl", options, progress=False)
    assert_same_rows(read_rows(tmp_path / "one.jsonl"), read_rows(tmp_path / "single.jsonl"))

    # The model was loaded once in each worker, however many partitions it predicted.
    loads = client.run(lambda dask_worker: [p.loads for p in dask_worker.plugins.values() if hasattr(p, "loads")])
    assert len(loads) == 2 and all(counts == [] for counts in loads.values())  # unregistered after each run


def test_fields_that_span_lines_are_read_as_one_process_reads_them(tmp_path: Path, run_dir: Path, client) -> None:
    rows = people(300, seed=6)
    for row in rows[::4]:  # quoted when written; with blocks of 1 kB, boundaries fall inside some of them
        row["city"] += "\nsecond line\r\nthird line"
    rows[5]["surname"] = "Ae\niou"
    options = TableOptions("surname", top_k=2)
    for suffix in (".csv", ".tsv"):
        source = write_table(tmp_path / f"people{suffix}", rows)
        single = tmp_path / f"single-{suffix[1:]}.parquet"
        predict_table(load_predictor(run_dir), source, single, options, progress=False)
        parts = tmp_path / f"parts-{suffix[1:]}"
        summary = predict_table_dask(run_dir, source, parts, options, client=client, blocksize=1_000)
        assert summary.partitions >= 4  # the prediction is still spread over the workers
        assert_same_rows(pq.read_table(parts).to_pylist(), pq.read_table(single).to_pylist(), tol=1.01e-4)


def test_one_model_load_per_worker(tmp_path: Path, run_dir: Path, client) -> None:
    plugin = PredictorPlugin(run_files(run_dir))
    client.register_plugin(plugin, name=plugin.name)
    try:
        source = write_table(tmp_path / "people.csv", people(2000, seed=2))
        from namelab.inference.distributed import _annotate_frame, read_partitions

        frame = read_partitions(source, blocksize=8_000)
        annotated = frame.map_partitions(
            _annotate_frame, TableOptions("surname"), plugin.name,
            meta=_annotate_frame(frame._meta, TableOptions("surname"), plugin.name),
        )
        assert annotated.npartitions >= 6
        assert len(annotated.compute()) == 2000
        loads = client.run(lambda dask_worker, name=plugin.name: dask_worker.plugins[name].loads)
        assert sorted(loads.values()) == [1, 1]
    finally:
        client.unregister_worker_plugin(plugin.name)


def test_cli_scheduler_uses_an_existing_cluster(tmp_path: Path, run_dir: Path, client, capsys) -> None:
    source = write_table(tmp_path / "people.tsv", people(200, seed=3))
    out = tmp_path / "out.csv"
    address = client.scheduler.address
    argv = ["predict", str(run_dir), "--input", str(source), "--name-column", "surname", "--scheduler", address,
            "--output", str(out)]
    assert main(argv) == 0
    assert "predicted on Dask" in capsys.readouterr().err
    want_path = tmp_path / "want.csv"
    predict_table(load_predictor(run_dir), source, want_path, TableOptions("surname"), progress=False)
    assert_same_rows(read_rows(out), read_rows(want_path))
    assert client.status == "running"  # an existing cluster is used, not closed


def test_dask_refuses_a_non_empty_output_folder_and_both_cluster_options(tmp_path: Path, run_dir: Path, capsys) -> None:
    source = write_table(tmp_path / "people.csv", people(10))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="not an empty folder"):
        predict_table_dask(run_dir, source, tmp_path / "out", TableOptions("surname"), workers=1)
    argv = ["predict", str(run_dir), "--input", str(source), "--name-column", "surname", "--workers", "2",
            "--scheduler", "tcp://127.0.0.1:1"]
    assert main(argv) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "Aeiou", "--workers", "2"]) == 2
    assert "need a table" in capsys.readouterr().err
    assert json.loads((run_dir / "config.json").read_text())["labels"]  # the run is untouched


def test_dask_follows_a_symlinked_output_and_keeps_its_mode(tmp_path: Path, run_dir: Path, client) -> None:
    source = write_table(tmp_path / "people.csv", people(40, seed=5))
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    predict_table_dask(run_dir, source, link, TableOptions("surname"), client=client)
    assert link.is_symlink() and link.resolve() == target
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert [row["surname"] for row in read_rows(target)] == [row["surname"] for row in people(40, seed=5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "people.csv", "real.jsonl"]


def test_dask_refuses_an_output_that_is_its_input_before_starting(tmp_path: Path, run_dir: Path, monkeypatch) -> None:
    source = write_table(tmp_path / "people.csv", people(10))
    before = source.read_bytes()
    alias = tmp_path / "alias.csv"
    alias.symlink_to(source)
    monkeypatch.setattr("namelab.inference.distributed.start_client", lambda *a, **k: pytest.fail("a cluster was started"))
    with pytest.raises(ValueError, match="is the --input file"):
        predict_table_dask(run_dir, source, alias, TableOptions("surname"), workers=2)
    assert source.read_bytes() == before


def test_an_ensemble_runs_on_dask_with_its_members(tmp_path: Path, tiny_runs, client) -> None:
    folder = tmp_path / "ensemble"
    members = []
    for cell in ("gru", "rnn"):
        members.append(folder / "members" / cell)
        shutil.copytree(tiny_runs[cell], members[-1])
    write_ensemble(folder, members)
    files = run_files(folder)
    # The members' weights travel with the ensemble's config; training checkpoints never do.
    assert {"config.json", "members/gru/model.safetensors", "members/rnn/config.json"} <= set(files)
    assert not any(name.endswith(CHECKPOINT) for name in files)
    source = write_table(tmp_path / "people.csv", people(500, seed=4))
    options = TableOptions("surname", top_k=2)
    predict_table(load_predictor(folder), source, tmp_path / "single.parquet", options, progress=False)
    predict_table_dask(folder, source, tmp_path / "dask.parquet", options, client=client, blocksize=4_000)
    want = pq.read_table(tmp_path / "single.parquet").to_pylist()
    assert_same_rows(pq.read_table(tmp_path / "dask.parquet").to_pylist(), want)
