"""bench/scale.py: its synthetic tables, and a quick run end to end (real data, slow).

    .venv/bin/python -m pytest tests/test_bench_scale.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pytest
from helpers import REAL_NAMES, SEPARABLE_ALPHABETS, load_bench, make_names_folder, requires_real_data, separable_names

from namelab.data.corpus import Corpus


def test_synthetic_names_follow_their_language(tmp_path: Path) -> None:
    scale = load_bench("scale", "bench_scale")
    corpus = Corpus.from_folder(make_names_folder(tmp_path / "names", separable_names(per_class=30)))
    model = scale.TrigramNames(corpus)
    table = tmp_path / "names.csv"
    facts = scale.write_table(table, 5_000, model, seed=1, chunk=1_200)
    rows = pa_csv.read_csv(table).to_pylist()
    assert [row["id"] for row in rows] == list(range(5_000))
    assert facts["rows"] == 5_000 and 1 < facts["distinct_names_first_2M"] <= 5_000
    for row in rows:  # a trigram model of separable names only writes its language's letters
        assert row["name"] and set(row["name"].lower()) <= set(SEPARABLE_ALPHABETS[row["language"]])
    counts = {label: sum(row["language"] == label for row in rows) for label in corpus.labels}
    assert all(abs(n / 5_000 - 1 / 3) < 0.05 for n in counts.values())  # the real class shares (equal here)
    again = scale.TrigramNames(corpus).sample(50, np.random.default_rng(1))
    assert again == model.sample(50, np.random.default_rng(1))  # seeded


@pytest.mark.slow
@requires_real_data
def test_quick_run_writes_figures_and_a_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMELAB_DATA", str(REAL_NAMES))
    scale = load_bench("scale", "bench_scale")
    out, plot = tmp_path / "scale.json", tmp_path / "scale.png"
    argv = ["--quick", "--sizes", "1000,3000", "--modes", "one", "--out", str(out), "--plot", str(plot)]
    assert scale.main(argv) == 0
    results = json.loads(out.read_text())
    assert [e["rows"] for e in results["predict"]["one process"]] == [1000, 3000]
    assert all(e["names_per_second"] > 0 and e["peak_rss_mib"] > 50 for e in results["predict"]["one process"])
    assert [e["rows"] for e in results["train"]["one process"]] == [1000, 3000]
    assert plot.stat().st_size > 10_000
