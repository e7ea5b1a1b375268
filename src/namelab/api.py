"""The Python API: a model that answers right after install, for names and for DataFrames.

    import namelab
    namelab.predict(["Nakamura", "Nguyen"])                  # the shipped model
    namelab.predict("Dvořák", prior="uniform")               # one name: one row
    predictor = namelab.load("runs/gru")                     # any run folder
    namelab.predict_df(df, "surname")                        # df with the prediction columns appended

Rows follow the one schema of every surface (inference/schema.py): ``name``,
``normalized``, ``predictions`` (top-k ``{"language", "probability"}``), ``uncertain``,
``unknown_language``, ``unknown_score`` (and ``coverage_set`` when asked), or ``error``
for a name that cannot be classified. The defaults are the command line's.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from .data.corpus import MAX_NAME_LENGTH
from .inference.base import Predictor
from .inference.load import load_predictor
from .inference.priors import TRAIN_PRIOR
from .inference.schema import DEFAULT_MIN_CONFIDENCE, DEFAULT_TOP_K, flat_values, prediction_columns
from .inference.unknown import DEFAULT_FALSE_ALARM
from .runs.checkpoint import MANIFEST

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"


def default_model() -> Path:
    """The run folder shipped in the package (``make default-model`` trains it)."""
    if not (DEFAULT_MODEL / MANIFEST).is_file():
        raise FileNotFoundError(
            f"this install of namelab has no default model ({DEFAULT_MODEL} holds no finished run); "
            "pass a run folder, or train one: `namelab train --cell gru --engine fused --out runs/gru`"
        )
    return DEFAULT_MODEL


def load(run: Path | str | None = None, *, device: str = "cpu", backend: str = "torch") -> Predictor:
    """The predictor of ``run`` (any run folder), or of the shipped model; loaded once per process."""
    path = Path(run).resolve() if run is not None else default_model()
    return _load(path, str(device), backend)


@lru_cache(maxsize=8)
def _load(path: Path, device: str, backend: str) -> Predictor:
    return load_predictor(path, device=torch.device(device), backend=backend)


def predict(
    names: str | Sequence[str],
    *,
    run: Path | str | None = None,
    top_k: int = DEFAULT_TOP_K,
    prior: str | Path = TRAIN_PRIOR,
    min_confidence: float | None = DEFAULT_MIN_CONFIDENCE,
    coverage: float | None = None,
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> list[dict] | dict:
    """The languages of ``names`` (a list: one row each, in order; one string: its row).

    ``prior``: train, uniform (recommended for a population of unknown make-up), estimate
    (EM over ``names``) or a JSON/CSV file of shares; see priors.py.
    """
    single = isinstance(names, str)
    rows = load(run).predict(
        [names] if single else list(names),
        top_k,
        min_confidence=min_confidence,
        coverage=coverage,
        max_length=MAX_NAME_LENGTH,
        prior=prior,
        false_alarm=false_alarm,
    )
    return rows[0] if single else rows


def predict_df(df, column: str = "name", *, run: Path | str | None = None, top_k: int = DEFAULT_TOP_K, **options):
    """A copy of the pandas DataFrame ``df`` with the prediction columns appended after its own.

    The columns are the flat schema's (``normalized``, ``language_1``, ``probability_1``,
    ..., ``uncertain``, ``unknown_language``, ``unknown_score``, ``error``), typed; each
    distinct name is predicted once. ``options``: :func:`predict`'s.
    """
    import pandas as pd  # the caller's: namelab does not need pandas otherwise

    if column not in df.columns:
        raise KeyError(f"the DataFrame has no column {column!r}; its columns are {list(df.columns)}")
    predictor = load(run)
    top_k = max(1, min(top_k, len(predictor.labels)))
    coverage = options.get("coverage") is not None
    added = prediction_columns(top_k, coverage=coverage)
    clashes = [name for name in added if name in df.columns]
    if clashes:
        raise ValueError(f"the DataFrame already has column(s) {clashes}, which prediction appends; rename them")
    texts = ["" if value is None or (isinstance(value, float) and value != value) else str(value) for value in df[column]]
    distinct = list(dict.fromkeys(texts))
    rows = predict(distinct, run=run, top_k=top_k, **options)
    values = {name: flat_values(row, top_k, coverage=coverage, decimals=None) for name, row in zip(distinct, rows)}
    columns = {name: [values[text][name] for text in texts] for name in added}
    return pd.concat([df, pd.DataFrame(columns, index=df.index)], axis=1)
