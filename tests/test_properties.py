"""Property tests: any Unicode text through normalize, encode, the Predictor and the CLI's rows.

    .venv/bin/python -m pytest tests/test_properties.py -q

Whatever the text (lone surrogates, control characters, combining marks, characters that
normalize into many letters), each name gets a prediction or a clear error, never an
exception, and every output format encodes to UTF-8.
"""

from __future__ import annotations

import pytest
import torch
from helpers import make_names_folder, separable_names, train_tiny_run
from hypothesis import given, settings
from hypothesis import strategies as st

from namelab import Predictor
from namelab.cli.formats import format_predictions, predict_rows
from namelab.data.corpus import LETTERS, MAX_NAME_LENGTH, UNKNOWN, UnusableName, Vocab, encode_batch, normalize
from namelab.inference.load import load_predictor

ANY_TEXT = st.text(alphabet=st.characters(), max_size=40)  # every code point, surrogates included
PROPERTY = settings(max_examples=80, deadline=None)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    names = make_names_folder(tmp_path_factory.mktemp("names"), separable_names(per_class=20))
    out = tmp_path_factory.mktemp("runs") / "lstm"
    train_tiny_run(names, out, epochs=1)
    return load_predictor(out)


@PROPERTY
@given(ANY_TEXT)
def test_normalize_gives_known_letters_or_a_clear_error(text: str) -> None:
    try:
        normalized = normalize(text)
    except UnusableName as err:
        assert "no letters" in str(err)
        return
    assert normalized and set(normalized) <= set(LETTERS) | {UNKNOWN}
    assert any(ch.isalpha() for ch in normalized)
    assert normalize(normalized) == normalized  # normalizing twice changes nothing


@PROPERTY
@given(st.lists(ANY_TEXT, min_size=1, max_size=5))
def test_encode_maps_every_character_into_the_vocabulary(texts: list[str]) -> None:
    vocab = Vocab()
    ids, lengths = encode_batch(texts, vocab)
    assert lengths.tolist() == [len(t) for t in texts]
    assert ids.shape == (len(texts), max(map(len, texts)))
    if ids.numel():
        assert int(ids.min()) >= 0 and int(ids.max()) < len(vocab)


@PROPERTY
@given(st.lists(ANY_TEXT, max_size=6))
def test_predictor_gives_each_name_a_prediction_or_an_error(predictor: Predictor, names: list[str]) -> None:
    rows = predictor.predict(names, top_k=2)
    assert [row["name"] for row in rows] == names
    for row in rows:
        if "error" in row:
            assert isinstance(row["error"], str) and row["error"]
        else:
            probabilities = [p["probability"] for p in row["predictions"]]
            assert len(probabilities) == 2 and 0 <= sum(probabilities) <= 1 + 1e-5
            assert torch.isfinite(torch.tensor(probabilities)).all()


@PROPERTY
@given(st.lists(st.one_of(ANY_TEXT, st.just("\ufdfa" * 3), st.just("x" * (MAX_NAME_LENGTH + 1))), max_size=6))
def test_cli_rows_cover_every_name_and_encode_as_utf8(predictor: Predictor, names: list[str]) -> None:
    rows = predict_rows(predictor, names, 2)
    assert len(rows) == len(names)
    for row, name in zip(rows, names):
        assert "predictions" in row or row["error"]
        if "predictions" in row:
            assert len(row["normalized"]) <= MAX_NAME_LENGTH
    for fmt in ("csv", "json", "text"):
        format_predictions(rows, fmt, 2).encode("utf-8")  # no lone surrogate reaches the output
