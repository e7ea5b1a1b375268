"""The unknown-language score: its threshold's false-alarm rate, its ranking, its storage."""

import math
import random

import pytest
import torch

from namelab.inference.unknown import UnknownScorer
from namelab.runs.checkpoint import CheckpointError

STEMS = {0: ["ov", "ev", "in", "sky"], 1: ["son", "ton", "ley", "er"]}


def training_like(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    names, labels = [], []
    for _ in range(n):
        label = rng.randrange(2)
        root = "".join(rng.choice("bdgkmnprstv") + rng.choice("aeiou") for _ in range(rng.randint(1, 3)))
        names.append(root.capitalize() + rng.choice(STEMS[label]))
        labels.append(label)
    return names, labels


def foreign(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("qxzjwyh") for _ in range(rng.randint(4, 9))).capitalize() for _ in range(n)]


@pytest.fixture(scope="module")
def scorer():
    names, labels = training_like(2000, seed=0)
    return UnknownScorer.fit(names, labels, order=4)


def test_foreign_names_score_above_training_like_names(scorer):
    known = scorer.score(training_like(300, seed=1)[0])
    strange = scorer.score(foreign(300, seed=2))
    assert known.shape == (300,) and strange.shape == (300,)
    assert float(strange.min()) > float(known.max())


def test_per_language_models_do_not_punish_a_small_language():
    names, labels = training_like(4000, seed=0)
    # keep one name in 20 of language 1: its suffixes become rare among all names
    kept = [(n, y) for i, (n, y) in enumerate(zip(names, labels)) if y == 0 or i % 20 == 0]
    names, labels = [n for n, _ in kept], [y for _, y in kept]
    per_language = UnknownScorer.fit(names, labels, order=4)
    pooled = UnknownScorer.fit(names, order=4)
    small = [n for n, y in zip(*training_like(200, seed=6)) if y == 1]
    assert float(per_language.score(small).mean()) < float(pooled.score(small).mean())
    ll, counts = per_language.log_likelihoods(["Bakov", "Bakson"])
    assert counts.tolist() == [6, 7]  # the characters, then the end
    assert ll[0, 0] > ll[0, 1] and ll[1, 1] > ll[1, 0]  # each name is best explained by its own language


def test_probabilities_sum_to_one():
    """A unigram model: p(name) = prod p(ch) * p(end), and sum_ch p(ch) + p(end) must be 1."""
    from namelab.inference.unknown import ALPHABET

    unigram = UnknownScorer.fit(["Bak", "Bek", "Ab"], order=1)
    one = torch.stack([unigram.log_likelihoods([ch])[0][0, 0] for ch in ALPHABET]).exp()  # p(ch) p(end)
    p_a = float(unigram.log_likelihoods(["aa"])[0][0, 0].exp() / one[0])  # p(a)^2 p(end) / (p(a) p(end))
    p_end = float(one[0]) / p_a
    assert float(one.sum()) == pytest.approx(p_end * (1 - p_end), rel=1e-6)
    assert 0 < p_end < 1


def test_threshold_gives_its_false_alarm_rate(scorer):
    val = scorer.score(training_like(1000, seed=3)[0])
    for rate in (0.01, 0.05, 0.2):
        threshold = scorer.threshold_at(val, false_alarm=rate)
        assert int((val > threshold).sum()) == pytest.approx(rate * 1000, abs=1)
    assert int((val > UnknownScorer.threshold_at(val, 0.0)).sum()) == 0
    distinct = torch.arange(100, dtype=torch.float64)
    assert int((distinct > UnknownScorer.threshold_at(distinct, 0.05)).sum()) == 5  # exactly, without ties


def test_threshold_flags_at_most_the_false_alarm_share_when_it_is_not_a_whole_number():
    for n in (30, 37, 99):
        distinct = torch.arange(n, dtype=torch.float64)
        for rate in (0.05, 0.1):
            threshold = UnknownScorer.threshold_at(distinct, rate)
            assert int((distinct > threshold).sum()) == math.floor(rate * n), (n, rate)


def test_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="false_alarm"):
        UnknownScorer.threshold_at(torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="no validation scores"):
        UnknownScorer.threshold_at(torch.empty(0))
    with pytest.raises(ValueError, match="NaN"):
        UnknownScorer.threshold_at(torch.tensor([1.0, float("nan")]))


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="no training names"):
        UnknownScorer.fit([])
    with pytest.raises(ValueError, match="one label per name"):
        UnknownScorer.fit(["Abe", "Ito"], [0])
    with pytest.raises(ValueError, match="order"):
        UnknownScorer.fit(["Abe"], order=9)


def test_save_load_round_trip(scorer, tmp_path):
    scorer.save(tmp_path, threshold=2.5, meta={"fitted_on": "train"})
    loaded, info = UnknownScorer.load(tmp_path)
    assert info["threshold"] == 2.5 and info["fitted_on"] == "train" and info["order"] == 4
    names = training_like(50, seed=4)[0] + foreign(50, seed=5) + ["O'Neil-Smith", "a?b"]
    assert torch.equal(loaded.score(names), scorer.score(names))
    assert not list(tmp_path.glob("*.pkl"))


def test_load_refuses_a_modified_file(scorer, tmp_path):
    scorer.save(tmp_path)
    path = tmp_path / "unknown.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum"):
        UnknownScorer.load(tmp_path)
    with pytest.raises(CheckpointError, match="holds no"):
        UnknownScorer.load(tmp_path / "nowhere")


def test_empty_input_scores_nothing(scorer):
    assert scorer.score([]).shape == (0,)


def test_scores_equal_the_reference_implementation():
    """The regrouped lookup (one row of all languages per distinct window) changes no score."""
    from helpers import load_bench

    reference = load_bench("unknown_reference")
    names, labels = training_like(1500, seed=3)
    scorer = UnknownScorer.fit(names + ["Ab-c d'e"], labels + [2])  # order 5, three groups
    queries = training_like(300, seed=4)[0] + foreign(100, seed=5) + ["A", "O'brien", "Zoë", "x-y z", "Müller?"]
    fast, slow = scorer.score(queries), reference.reference_score(scorer, queries)
    assert fast.shape == slow.shape == (len(queries),)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-6)
    ll_fast, counts_fast = scorer.log_likelihoods(queries, chunk=7)  # chunks end mid-batch
    ll_slow, counts_slow = reference.reference_log_likelihoods(scorer, queries)
    assert torch.equal(counts_fast, counts_slow)
    assert torch.allclose(ll_fast, ll_slow, rtol=0, atol=1e-6)
