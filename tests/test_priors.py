"""Re-weighting to a prior, EM estimation of a prior, prior files and the label-shift conformal threshold."""

import json

import pytest
import torch

from namelab.inference.priors import estimate_prior, read_prior, resolve_prior, reweight, weighted_conformal_threshold

LABELS = ["English", "Russian", "Spanish"]


def test_reweight_matches_the_formula_by_hand():
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    train = torch.tensor([0.5, 0.25, 0.25])
    uniform = torch.full((3,), 1 / 3)
    # row 1: 0.6/0.5, 0.3/0.25, 0.1/0.25 = 1.2, 1.2, 0.4 -> / 2.8
    expected = torch.tensor([[1.2, 1.2, 0.4], [0.4, 0.8, 2.4]])
    expected = expected / expected.sum(dim=1, keepdim=True)
    assert torch.allclose(reweight(probs, train, uniform), expected, atol=1e-7)
    # a prior of counts is normalized first: [1, 2, 1] -> ratios 0.5, 2, 1
    got = reweight(probs, train, torch.tensor([1.0, 2.0, 1.0]))
    row = torch.tensor([0.6 * 0.5, 0.3 * 2, 0.1 * 1])
    assert torch.allclose(got[0], row / row.sum(), atol=1e-7)


def test_reweight_is_the_identity_for_the_training_prior_and_keeps_dtype():
    probs = torch.softmax(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    train = torch.tensor([0.7, 0.2, 0.1])
    out = reweight(probs, train, train * 5)
    assert out.dtype == probs.dtype
    assert torch.allclose(out, probs, atol=1e-6)


def test_reweight_handles_zero_shares():
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    out = reweight(probs, torch.tensor([0.5, 0.5, 0.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isfinite(out).all()
    # row 0 holds all its mass on a language the target excludes: it becomes the target prior
    assert torch.allclose(out[0], torch.tensor([0.5, 0.0, 0.5]))
    assert torch.allclose(out[1], torch.tensor([1.0, 0.0, 0.0]))


def test_reweight_rejects_bad_priors():
    probs = torch.full((1, 3), 1 / 3)
    with pytest.raises(ValueError, match="all zero"):
        reweight(probs, torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="3 classes"):
        reweight(probs, torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        reweight(probs, torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]))


def test_em_recovers_a_known_prior():
    generator = torch.Generator().manual_seed(0)
    num_classes, num_features = 4, 8
    # class c: 0.4 on each of features 2c and 2c + 1, the other 0.2 spread evenly (overlapping classes)
    likelihood = torch.full((num_classes, num_features), 0.2 / (num_features - 2))
    for c in range(num_classes):
        likelihood[c, 2 * c : 2 * c + 2] = 0.4
    train = torch.tensor([0.55, 0.25, 0.15, 0.05])
    true = torch.tensor([0.05, 0.15, 0.30, 0.50])
    n = 100_000
    labels = torch.multinomial(true, n, replacement=True, generator=generator)
    features = torch.multinomial(likelihood[labels], 1, generator=generator).squeeze(1)
    # the Bayes posterior under the training prior: what a calibrated model trained on it outputs
    posterior = likelihood[:, features].T * train
    posterior = posterior / posterior.sum(dim=1, keepdim=True)
    prior, iterations = estimate_prior(posterior, train)
    assert 1 < iterations < 1000
    assert (prior - true).abs().max() < 0.01
    assert abs(float(prior.sum()) - 1.0) < 1e-9
    assert (estimate_prior(posterior, train, max_iter=1)[0] - true).abs().max() > 0.05  # one step is not enough


def test_em_keeps_the_training_prior_on_names_drawn_like_it():
    train = torch.tensor([0.5, 0.3, 0.2])
    probs = train.expand(10, 3).clone()  # uninformative names
    prior, iterations = estimate_prior(probs, train)
    assert iterations == 1
    assert torch.allclose(prior, train.double())


def test_read_prior_json_and_csv(tmp_path):
    json_path = tmp_path / "shares.json"
    json_path.write_text(json.dumps({"English": 2, "Russian": 1, "Spanish": 1}))
    assert torch.allclose(read_prior(json_path, LABELS), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    csv_path = tmp_path / "shares.csv"
    csv_path.write_text("language,share\nSpanish,0.2\nEnglish,0.8\nRussian,0\n")
    assert torch.allclose(read_prior(csv_path, LABELS), torch.tensor([0.8, 0.0, 0.2], dtype=torch.float64))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"English": 1, "Russian": 1, "Spanish": 1, "Klingon": 1}, "does not know: 'Klingon'"),
        ({"English": 1, "Russian": 1}, "no share to Spanish"),
        ({"English": -1, "Russian": 1, "Spanish": 1}, "0 or more"),
        ({"English": "NaN", "Russian": 1, "Spanish": 1}, "finite"),
        ({"English": "lots", "Russian": 1, "Spanish": 1}, "not a number"),
        ({"English": 0, "Russian": 0, "Spanish": 0}, "at least one must be positive"),
        ([0.3, 0.3, 0.4], "one JSON object"),
    ],
)
def test_read_prior_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        read_prior(path, LABELS)


def test_read_prior_rejects_bad_csv_and_missing_files(tmp_path):
    path = tmp_path / "prior.csv"
    path.write_text("English,0.5,extra\n")
    with pytest.raises(ValueError, match="language,share"):
        read_prior(path, LABELS)
    with pytest.raises(ValueError, match="does not exist"):
        read_prior(tmp_path / "missing.json", LABELS)
    (tmp_path / "prior.yaml").write_text("English: 1\n")
    with pytest.raises(ValueError, match=r"\.json or \.csv"):
        read_prior(tmp_path / "prior.yaml", LABELS)


def test_resolve_prior(tmp_path):
    train = torch.tensor([6.0, 3.0, 1.0])
    assert torch.allclose(resolve_prior("train", LABELS, train), torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64))
    assert torch.allclose(resolve_prior("uniform", LABELS, train), torch.full((3,), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="pass their probabilities"):
        resolve_prior("estimate", LABELS, train)
    probs = torch.tensor([[0.9, 0.05, 0.05]] * 4)
    estimated = resolve_prior("estimate", LABELS, train, probs)
    assert estimated[0] > 0.9  # every name looks English
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"English": 0, "Russian": 1, "Spanish": 1}))
    assert torch.allclose(resolve_prior(str(path), LABELS, train), torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))


def test_weighted_conformal_threshold_equal_weights_is_split_conformal():
    scores = torch.arange(1, 11, dtype=torch.float64) / 10  # 0.1 .. 1.0
    labels = torch.zeros(10, dtype=torch.int64)
    # ceil(11 * 0.8) = 9th smallest
    assert weighted_conformal_threshold(scores, labels, torch.ones(2), 0.8) == pytest.approx(0.9)
    assert weighted_conformal_threshold(scores, labels, torch.ones(2), 0.95) == 1.0  # past the last


def test_weighted_conformal_threshold_follows_the_weights():
    # class 0 has small scores, class 1 large ones; up-weighting class 1 must raise the threshold
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    plain = weighted_conformal_threshold(scores, labels, torch.tensor([1.0, 1.0]), 0.5)
    shifted = weighted_conformal_threshold(scores, labels, torch.tensor([0.25, 1.75]), 0.5)
    assert plain == pytest.approx(0.6)  # ceil((8 + 1) * 0.5) = the 5th smallest
    # weights 0.25 x4 then 1.75 x4, denominator 8 + 1.75 = 9.75: 1.0+1.75=2.75 < 4.875, +1.75=4.5 < 4.875, 6.25 >= 4.875
    assert shifted == pytest.approx(0.8)
    with pytest.raises(ValueError, match="between 0 and 1"):
        weighted_conformal_threshold(scores, labels, torch.ones(2), 1.0)


def test_weighted_conformal_covers_under_label_shift():
    """Sets from the weighted threshold cover the target population at the level asked."""
    generator = torch.Generator().manual_seed(1)
    likelihood = torch.softmax(1.5 * torch.randn(3, 8, generator=generator), dim=1)
    train = torch.tensor([0.7, 0.2, 0.1])
    target = torch.tensor([0.1, 0.2, 0.7])

    def draw(prior, n):
        labels = torch.multinomial(prior, n, replacement=True, generator=generator)
        features = torch.multinomial(likelihood[labels], 1, generator=generator).squeeze(1)
        posterior = likelihood[:, features].T * train
        return reweight(posterior / posterior.sum(dim=1, keepdim=True), train, target), labels

    def mass_above(probs, labels):
        sorted_probs, order = probs.sort(dim=1, descending=True)
        above = sorted_probs.cumsum(dim=1) - sorted_probs
        return above.gather(1, (order == labels[:, None]).long().argmax(dim=1)[:, None]).squeeze(1)

    val_probs, val_labels = draw(train, 4000)
    test_probs, test_labels = draw(target, 20000)
    threshold = weighted_conformal_threshold(mass_above(val_probs, val_labels), val_labels, target / train, 0.9)
    coverage = float((mass_above(test_probs, test_labels) <= threshold + 1e-9).double().mean())
    assert 0.89 <= coverage <= 0.95


def test_em_with_counts_equals_em_over_repeated_rows():
    torch.manual_seed(3)
    probs = torch.softmax(torch.randn(6, 4, dtype=torch.float64), dim=1)
    train = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    counts = torch.tensor([1, 5, 2, 1, 7, 3])
    repeated = probs.repeat_interleave(counts, dim=0)
    assert torch.allclose(estimate_prior(probs, train, counts=counts)[0], estimate_prior(repeated, train)[0], atol=1e-9)
