"""The Python API: namelab.predict, namelab.predict_df and namelab.load, on a run folder and on
the shipped model; the shipped model answers with the core dependencies alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import namelab
from namelab.api import DEFAULT_MODEL, default_model
from namelab.inference.schema import prediction_columns

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("fastapi", "uvicorn", "pyarrow", "dask", "pandas", "sklearn", "matplotlib", "pooch", "onnx", "onnxruntime")


def test_predict_gives_one_row_per_name_and_one_row_for_one_name(tiny_runs, known_names):
    names = list(known_names)
    rows = namelab.predict(names, run=tiny_runs["gru"])
    assert [row["name"] for row in rows] == names
    assert {row["name"]: row["predictions"][0]["language"] for row in rows} == known_names
    one = namelab.predict(names[0], run=tiny_runs["gru"], top_k=1)
    assert isinstance(one, dict) and one["predictions"][0]["language"] == known_names[names[0]]
    assert {"uncertain", "unknown_language", "unknown_score"} <= set(one)


def test_load_is_cached_per_run(tiny_runs):
    assert namelab.load(tiny_runs["lstm"]) is namelab.load(str(tiny_runs["lstm"]))


def test_predict_df_appends_the_schema_columns_after_the_frame_own(tiny_runs, known_names):
    names = list(known_names)
    frame = pd.DataFrame({"id": range(len(names) + 2), "surname": [*names, None, "42"], "note": "x"})
    out = namelab.predict_df(frame, "surname", run=tiny_runs["gru"], top_k=2)
    assert list(out.columns) == ["id", "surname", "note", *prediction_columns(2, coverage=False)]
    assert out["language_1"].tolist()[: len(names)] == [known_names[n] for n in names]
    assert out["error"].iloc[-1] and out["error"].iloc[-2] and out["error"].iloc[: len(names)].isna().all()
    assert list(frame.columns) == ["id", "surname", "note"]  # the input is left as it was
    with pytest.raises(KeyError, match="no column 'name'"):
        namelab.predict_df(frame, run=tiny_runs["gru"])
    with pytest.raises(ValueError, match="already has column"):
        namelab.predict_df(out, "surname", run=tiny_runs["gru"], top_k=2)


def test_the_shipped_model_is_a_finished_run_with_a_model_card():
    folder = default_model()
    assert (folder / "manifest.json").is_file() and (folder / "model-card.md").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8  # its test split: the card states the figure


def test_the_shipped_model_answers_with_the_core_dependencies_alone():
    # Every optional dependency made unimportable: the core (torch, numpy, safetensors,
    # anyascii, tqdm) must answer on its own.
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {OPTIONAL!r}:\n"
        "            raise ImportError(f'{name} is blocked: not a core dependency')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from namelab.cli.commands import main\n"
        "sys.exit(main(['predict', 'Nakamura', '--format', 'json']))\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["predictions"][0]["language"] == "Japanese"


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_model_and_stays_small(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("namelab-*.whl")
    assert wheel.stat().st_size <= 15 * 2**20
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(DEFAULT_MODEL.parents[1]).as_posix() for p in DEFAULT_MODEL.rglob("*") if p.is_file()}
    assert shipped and shipped <= names
