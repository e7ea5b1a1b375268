"""One schema on every surface: the CLI's names, tables (CSV, TSV, Parquet, JSON lines) and the API.

    .venv/bin/python -m pytest tests/test_schema.py -q

Each surface's columns are read back as a user would get them and compared with
namelab.inference.schema.flat_columns; the page's download is checked the same way in
tests/test_browser.py (test_batch_from_an_uploaded_csv).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from namelab.cli.commands import main
from namelab.inference.schema import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_TOP_K,
    RESULT_FIELDS,
    flat_columns,
    flat_row,
    json_record,
    model_result,
    text_line,
)
from namelab.serve import create_app, load_served_models
from namelab.serve.schemas import PredictRequest

NAMES = ["Aeiou", "Bdkgt", "1234"]


def cli(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def api(tiny_runs: dict[str, Path]) -> TestClient:
    return TestClient(create_app(load_served_models([tiny_runs["gru"]])))


def flattened(result: dict, model: str) -> list[str]:
    """The API's field names for one model, in the order it sends them, lists spread as ``field_K``."""
    columns = []
    for key, value in result.items():
        value = value[model] if isinstance(value, dict) else value
        if isinstance(value, list):
            columns += [f"{field}_{k}" for k, entry in enumerate(value, 1) for field in entry]
        else:
            columns.append(key)
    return columns + ([] if "error" in result else ["error"])  # the API leaves out empty fields


def test_every_surface_has_the_same_columns(capsys, tiny_runs, api: TestClient, tmp_path: Path):
    run = tiny_runs["gru"]
    want_names = flat_columns(["name"], DEFAULT_TOP_K, coverage=False)
    surfaces: dict[str, list[str]] = {}
    surfaces["cli names csv"] = next(csv.reader(io.StringIO(cli(capsys, "predict", run, *NAMES, "--format", "csv"))))

    table = tmp_path / "people.csv"
    table.write_text("id,surname\n" + "".join(f"{i},{n}\n" for i, n in enumerate(NAMES)), encoding="utf-8")
    want_table = flat_columns(["id", "surname"], DEFAULT_TOP_K, coverage=False)
    base = ("predict", run, "--input", table, "--name-column", "surname", "--threads", "1")
    for suffix in ("csv", "tsv", "parquet"):
        cli(capsys, *base, "--output", tmp_path / f"out.{suffix}")
    surfaces["table csv"] = next(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    surfaces["table tsv"] = (tmp_path / "out.tsv").read_text().splitlines()[0].split("\t")
    surfaces["table parquet"] = pq.read_schema(tmp_path / "out.parquet").names
    surfaces["table csv on stdout"] = next(csv.reader(io.StringIO(cli(capsys, *base))))

    # The API keeps its per-model answers; one model's answer, flattened by the same row builder.
    answer = api.post("/api/predict", json={"names": NAMES}).json()
    (model,) = answer["models"]
    surfaces["api flattened"] = flattened(answer["results"][0], model)
    for result in answer["results"]:
        row = model_result(result, model)
        assert set(row) == set(RESULT_FIELDS)
        assert len(flat_row(row, DEFAULT_TOP_K, want_names)) == len(want_names)

    differences = {
        surface: columns
        for surface, columns in surfaces.items()
        if columns != (want_table if surface.startswith("table") else want_names)
    }
    assert differences == {}


def test_json_records_have_the_same_fields_on_every_surface(capsys, tiny_runs, api: TestClient, tmp_path: Path):
    run = tiny_runs["gru"]
    names_json = [json.loads(line) for line in cli(capsys, "predict", run, *NAMES, "--format", "json").splitlines()]
    table = tmp_path / "people.csv"
    table.write_text("surname\n" + "".join(f"{n}\n" for n in NAMES), encoding="utf-8")
    out = cli(capsys, "predict", run, "--input", table, "--name-column", "surname", "--format", "json")
    table_json = [json.loads(line) for line in out.splitlines()]
    answer = api.post("/api/predict", json={"names": NAMES}).json()
    api_json = [json_record(model_result(r, answer["models"][0])) for r in answer["results"]]
    assert [list(r) for r in names_json] == [list(RESULT_FIELDS)] * 3
    assert [list(r) for r in table_json] == [["input", *RESULT_FIELDS]] * 3
    assert [r["input"] for r in table_json] == [{"surname": n} for n in NAMES]
    # the same answers, 6 decimals in JSON on every surface; the API's per-model fields carry the same names
    assert [{k: r[k] for k in RESULT_FIELDS} for r in table_json] == names_json
    for got, want in zip(api_json, names_json):
        assert got.keys() == want.keys() and got["uncertain"] == want["uncertain"]
        assert [p["language"] for p in got["predictions"] or []] == [p["language"] for p in want["predictions"] or []]


def test_defaults_are_the_same_everywhere(capsys, tiny_runs, api: TestClient):
    from namelab.cli.commands import build_parser

    args = build_parser().parse_args(["predict", "run", "Aeiou"])
    assert (args.top_k, args.min_confidence) == (DEFAULT_TOP_K, DEFAULT_MIN_CONFIDENCE)
    serve = build_parser().parse_args(["serve", "run"])
    assert serve.min_confidence == DEFAULT_MIN_CONFIDENCE
    assert PredictRequest(names=["x"]).top_k == DEFAULT_TOP_K
    assert api.get("/api/models").json()["settings"]["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    answer = api.post("/api/predict", json={"names": ["Aeiou"]}).json()["results"][0]
    assert len(next(iter(answer["predictions"].values()))) == DEFAULT_TOP_K


def test_flat_surfaces_write_4_decimals_and_json_keeps_6():
    result = {"name": "A\tb", "normalized": "Ab", "predictions": [{"language": "X", "probability": 0.123456}],
              "uncertain": True, "unknown_language": False, "unknown_score": 2.345678, "coverage_set": ["X", "Y"]}
    columns = flat_columns(["name"], 1, coverage=True)
    assert flat_row(result, 1, columns) == ["A\tb", "Ab", "X", "0.1235", "true", "false", "2.3457", "X|Y", ""]
    assert text_line(result) == "A\\tb\t(Ab)\tX 0.1235\tuncertain\tset: X|Y"
    assert json_record(result)["predictions"] == [{"language": "X", "probability": 0.123456}]
    error = {"name": "1", "error": "has no letters"}
    assert flat_row(error, 1, columns) == ["1", "", "", "", "", "", "", "", "has no letters"]
    assert text_line(error) == "1\terror: has no letters"
