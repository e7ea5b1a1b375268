"""Tests for namelab.data.corpus: reading a names folder, normalization, the corpus, splits and batches.

    .venv/bin/python -m pytest tests/test_data.py -q

Unit tests build tiny names folders in tmp_path; the tests on the real dataset skip when
/work/shared/data/names is absent.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import make_names_folder, requires_real_data
from hypothesis import given, settings
from hypothesis import strategies as st

from namelab.data.corpus import (
    LETTERS,
    PAD_ID,
    UNKNOWN,
    UNKNOWN_ID,
    Corpus,
    Example,
    Split,
    UnusableName,
    Vocab,
    batches,
    encode_batch,
    normalize,
)
from namelab.data.download import DataError

# --- reading a folder ---------------------------------------------------------------------


def test_missing_folder_is_a_data_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as info:
        Corpus.from_folder(missing)
    assert str(missing) in str(info.value)


def test_folder_without_txt_files_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not names\n")
    with pytest.raises(DataError, match="0 <Language>.txt"):
        Corpus.from_folder(tmp_path)


def test_a_single_language_is_not_enough(tmp_path: Path) -> None:
    make_names_folder(tmp_path, {"Alpha": ["Abe"]})
    with pytest.raises(DataError, match="at least two"):
        Corpus.from_folder(tmp_path)


def test_non_utf8_file_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    make_names_folder(tmp_path, {"Alpha": ["Abe"]})
    make_names_folder(tmp_path, {"Beta": ["B\u00f6hm"]}, encoding="latin-1")
    with pytest.raises(DataError, match="not UTF-8") as info:
        Corpus.from_folder(tmp_path)
    assert "Beta.txt" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \n\t\n"], ids=["empty", "newlines", "blanks"])
def test_file_without_names_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    make_names_folder(tmp_path, {"Alpha": ["Abe"]})
    (tmp_path / "Beta.txt").write_bytes(content)
    with pytest.raises(DataError, match="holds no names") as info:
        Corpus.from_folder(tmp_path)
    assert "Beta.txt" in str(info.value)


def test_file_with_only_unusable_lines_is_a_data_error(tmp_path: Path) -> None:
    make_names_folder(tmp_path, {"Alpha": ["Abe"], "Beta": ["123", "--", "42"]})
    with pytest.raises(DataError, match="Beta"):
        Corpus.from_folder(tmp_path)


def test_classes_are_the_sorted_file_names_any_number(tmp_path: Path) -> None:
    languages = ["Zulu", "Alpha", "Mid", "Beta", "Omega"]
    make_names_folder(tmp_path, {lang: [f"{lang}son"] for lang in languages})
    (tmp_path / "notes.md").write_text("Not a class\n")
    corpus = Corpus.from_folder(tmp_path)
    assert corpus.labels == sorted(languages)
    assert corpus.num_classes == 5
    assert sorted(corpus.pairs) == sorted((f"{lang}son", corpus.labels.index(lang)) for lang in languages)


def test_crlf_and_byte_order_mark_read_like_plain_utf8(tmp_path: Path) -> None:
    plain = make_names_folder(tmp_path / "plain", {"Alpha": ["Abe", "Adams"], "Beta": ["Brown"]})
    windows = make_names_folder(tmp_path / "windows", {"Alpha": ["Abe", "Adams"], "Beta": ["Brown"]}, newline="\r\n")
    bom = tmp_path / "windows" / "Alpha.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    assert Corpus.from_folder(windows).pairs == Corpus.from_folder(plain).pairs


# --- normalization ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("B\u00e9langer", "Belanger"),  # precomposed é
        ("Be\u0301langer", "Belanger"),  # e + combining acute
        ("Dvo\u0159\u00e1k", "Dvorak"),
        ("Stra\u00dfe", "Strasse"),  # ß has no decomposition: anyascii
        ("\u0141ukasz", "Lukasz"),  # Ł has no decomposition either
        ("\u0418\u0432\u0430\u043d\u043e\u0432", "Ivanov"),  # Cyrillic
        ("\u4e2d\u6751", "ZhongCun"),  # CJK
        ("\u00c6r\u00f8", "Aero"),
        ("O'Neil", "O'Neil"),
        ("Smith-Jones", "Smith-Jones"),
        ("  Van   der\tBerg ", "Van der Berg"),
        ("Van\u00a0Berg", "Van Berg"),  # no-break space is whitespace too
        ("Smith2", "Smith?"),  # a digit is outside the vocabulary: unknown, not dropped
        ("Sm!th", "Sm?th"),
        # Quotes around the whole name are no part of it; an apostrophe in it or at one end is.
        ("'Nguyen'", "Nguyen"),
        ('"Nguyen"', "Nguyen"),
        (" \u201cM\u00fcller\u201d ", "Muller"),
        ("\u00abIvanov\u00bb", "Ivanov"),
        ("\"'Li'\"", "Li"),
        ("\u200b'Li'", "Li"),  # a zero-width space before the quote
        ("'t Hooft", "'t Hooft"),
        ("D'Angelo'", "D'Angelo'"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalized_text_uses_only_vocabulary_symbols() -> None:
    raw = "\u00c5ngstr\u00f6m 42 \u0413\u043e\u0440\u0431\u0430\u0447\u0451\u0432 \u5c71\u7530 #@! \u00df\u0142"
    assert set(normalize(raw)) <= set(LETTERS + UNKNOWN)


@pytest.mark.parametrize(("raw", "expected"), [("Ab\U0001f600", "Ab?"), ("Ab\u2122", "Ab?")])
def test_symbols_become_unknown_not_letters(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("\u30ac", "ga"), ("\u0410\u043d\u0434\u0440\u0435\u0439", "Andrey"), ("\uae40", "Gim")],
    ids=["kana-voicing", "cyrillic-short-i", "hangul"],
)
def test_mark_stripping_keeps_non_latin_transliteration(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Van \u200b Berg", "Van Berg"), ("Abe \u200b", "Abe"), ("Van \u0301 Berg", "Van Berg")],
    ids=["zero-width-space", "trailing-zero-width-space", "lone-combining-mark"],
)
def test_whitespace_is_collapsed_after_invisible_characters_vanish(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", "123", "--", "'", "?", "4-2"])
def test_name_without_letters_is_unusable_with_a_message(raw: str) -> None:
    with pytest.raises(UnusableName, match="no letters") as info:
        normalize(raw)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still catch it


# --- vocabulary ---------------------------------------------------------------------------


def test_vocab_reserves_padding_and_maps_unknowns_to_the_unknown_symbol() -> None:
    vocab = Vocab(LETTERS)
    assert len(vocab) == len(LETTERS) + 2  # padding + unknown + letters
    ids = vocab.encode(LETTERS)
    assert sorted(ids) == list(range(2, len(vocab)))  # every letter its own id, none is padding
    unknown_id = vocab.encode(UNKNOWN)[0]
    assert unknown_id != PAD_ID and unknown_id not in ids
    assert vocab.encode("A\u00e9") == [vocab.encode("A")[0], unknown_id]


def test_default_vocab_reads_names_case_insensitively() -> None:
    vocab = Vocab()
    assert not any(ch.isupper() for ch in vocab.chars)
    assert vocab.encode("McDonald") == vocab.encode("mcdonald")
    assert vocab.encode("O'Brien-Ng") == vocab.encode("o'brien-ng")
    assert len(set(vocab.encode("abcdefghijklmnopqrstuvwxyz '-"))) == len(vocab) - 2
    assert Vocab(LETTERS).encode("A") != Vocab(LETTERS).encode("a")



@pytest.mark.parametrize("caseless", [True, False], ids=["caseless", "cased"])
def test_encode_batch_pads_each_name_as_encode_reads_it(caseless: bool) -> None:
    vocab = Vocab() if caseless else Vocab(LETTERS)
    rng = random.Random(5)
    # Letters of both cases, the unknown symbol, accented and non-Latin characters, an
    # emoji beyond the basic plane and a lone surrogate: each is one id, in order.
    pool = LETTERS + UNKNOWN + "\u00e9\u00df\u0416\u6f22\U0001f600\ud800"
    names = ["".join(rng.choices(pool, k=rng.randint(1, 12))) for _ in range(200)]

    def expected(ch: str) -> int:
        key = ch.lower() if caseless else ch
        return vocab.symbols.index(key) + 1 if key in vocab.symbols else UNKNOWN_ID

    ids, lengths = encode_batch(names, vocab)
    assert ids.dtype == lengths.dtype == torch.int64
    assert lengths.tolist() == [len(name) for name in names]
    assert ids.shape == (len(names), max(lengths.tolist()))
    for row, name in zip(ids.tolist(), names):
        assert row == [expected(ch) for ch in name] + [PAD_ID] * (ids.shape[1] - len(name))
        assert vocab.encode(name) == [expected(ch) for ch in name]

# --- corpus -------------------------------------------------------------------------------


@pytest.fixture()
def corpus(tmp_path: Path) -> Corpus:
    return Corpus.from_folder(
        make_names_folder(
            tmp_path,
            {
                "Alpha": ["Abe", "Abe", "Ab\u00e9", "Adams", "123"],
                "Beta": ["Abe", "Stra\u00dfe", "Brown"],
                "Gamma": ["Gold", "Grey"],
            },
        )
    )


def test_corpus_deduplicates_normalized_name_language_pairs(corpus: Corpus) -> None:
    alpha, beta, gamma = (corpus.labels.index(lang) for lang in ("Alpha", "Beta", "Gamma"))
    assert sorted(corpus.pairs) == sorted(
        [
            ("Abe", alpha),
            ("Adams", alpha),
            ("Abe", beta),
            ("Strasse", beta),
            ("Brown", beta),
            ("Gold", gamma),
            ("Grey", gamma),
        ]
    )


def test_corpus_stats(corpus: Corpus) -> None:
    stats = corpus.stats
    assert stats.raw_counts == {"Alpha": 5, "Beta": 3, "Gamma": 2}
    assert stats.dedup_counts == {"Alpha": 2, "Beta": 3, "Gamma": 2}
    assert stats.shared_names == {"Abe": ["Alpha", "Beta"]}
    assert stats.changed_chars["\u00e9"] == "e"
    assert stats.changed_chars["\u00df"] == "ss"
    assert any("123" in line for line in stats.skipped_lines)


# --- split --------------------------------------------------------------------------------


def _names(examples: list[Example]) -> set[str]:
    return {e.name for e in examples}


def assert_name_disjoint_partition(corpus: Corpus, split: Split) -> None:
    train, val, test = _names(split.train), _names(split.val), _names(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    everything = split.train + split.val + split.test
    assert Counter((e.name, e.label) for e in everything) == Counter(corpus.pairs)  # each pair exactly once


@pytest.fixture()
def medium_corpus(tmp_path: Path) -> Corpus:
    # 40 names per class; every fifth Alpha name is also a Beta name, to exercise shared names.
    def forty(prefix: str) -> list[str]:
        return [f"{prefix}{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]

    names = {"Alpha": forty("Al"), "Beta": forty("Be"), "Gamma": forty("Ga")}
    names["Beta"][:8] = names["Alpha"][::5]
    return Corpus.from_folder(make_names_folder(tmp_path, names))


def test_split_is_name_disjoint_and_keeps_shared_names_together(medium_corpus: Corpus) -> None:
    assert len(medium_corpus.stats.shared_names) == 8
    for seed in range(3):
        split = medium_corpus.split(seed)
        assert_name_disjoint_partition(medium_corpus, split)
        parts_of: dict[str, set[str]] = {}
        for part, rows in (("train", split.train), ("val", split.val), ("test", split.test)):
            for e in rows:
                parts_of.setdefault(e.name, set()).add(part)
        assert all(len(parts) == 1 for parts in parts_of.values())
        for shared in medium_corpus.stats.shared_names:
            languages = {e.label for e in split.train + split.val + split.test if e.name == shared}
            assert len(languages) == 2  # both pairs of a shared name are kept, in the one split


def test_split_is_stratified(medium_corpus: Corpus) -> None:
    split = medium_corpus.split(0)
    for part, expected_share in ((split.val, 0.1), (split.test, 0.1), (split.train, 0.8)):
        counts = Counter(e.label for e in part)
        for label in range(medium_corpus.num_classes):
            total = sum(1 for _, lab in medium_corpus.pairs if lab == label)
            assert abs(counts[label] - expected_share * total) <= 2, (medium_corpus.labels[label], counts)


def test_a_shared_name_is_split_with_its_rarest_language(tmp_path: Path) -> None:
    # Rare has 10 names, 6 of them also Common names. Stratified under its rarest language,
    # each shared name counts in Rare's stratum, so Rare keeps exactly its 10 % + 10 % for
    # every seed; counted under Common, the six would land wherever Common's 106 names do.
    def names(prefix: str, count: int) -> list[str]:
        return [f"{prefix}{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(count)]

    common = names("Co", 100)
    folder = make_names_folder(tmp_path, {"Common": common, "Rare": common[::17] + names("Ra", 4)})
    corpus = Corpus.from_folder(folder)
    assert len(corpus.stats.shared_names) == 6 and corpus.labels == ["Common", "Rare"]
    rare = corpus.labels.index("Rare")
    for seed in range(5):
        split = corpus.split(seed)
        assert_name_disjoint_partition(corpus, split)
        counts = [sum(e.label == rare for e in part) for part in (split.train, split.val, split.test)]
        assert counts == [8, 1, 1], (seed, counts)


def test_split_is_seeded(medium_corpus: Corpus) -> None:
    first, again, other = medium_corpus.split(7), medium_corpus.split(7), medium_corpus.split(8)
    assert first == again
    assert _names(first.test) != _names(other.test)


# --- batches ------------------------------------------------------------------------------


def _decode(ids: torch.Tensor, lengths: torch.Tensor, vocab: Vocab) -> list[str]:
    return ["".join(vocab.symbols[i - 1] for i in row[:n].tolist()) for row, n in zip(ids, lengths.tolist())]


@pytest.fixture()
def examples() -> list[Example]:
    # Lengths 1..12, several names per length, labels cycling over three classes.
    names = [("Ab" + "c" * k)[: 1 + (k % 12)] + str(k) for k in range(60)]
    return [Example(normalize(name), k % 3) for k, name in enumerate(names)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_example_once_padded_and_length_homogeneous(
    examples: list[Example], shuffle: bool
) -> None:
    vocab, batch_size = Vocab(LETTERS), 7  # with capitals, so ids decode back to the names
    seen: list[tuple[str, int]] = []
    spans: list[tuple[int, int]] = []
    produced = list(batches(examples, vocab, batch_size, shuffle=shuffle, seed=3))
    assert len(produced) == math.ceil(len(examples) / batch_size)
    for ids, lengths, targets in produced:
        assert ids.dtype == lengths.dtype == targets.dtype == torch.int64
        assert ids.shape == (len(lengths), int(lengths.max())) and len(targets) == len(lengths) <= batch_size
        positions = torch.arange(ids.shape[1])
        padding = positions[None, :] >= lengths[:, None]
        assert torch.all(ids[padding] == PAD_ID) and torch.all(ids[~padding] != PAD_ID)
        seen += list(zip(_decode(ids, lengths, vocab), targets.tolist()))
        spans.append((int(lengths.min()), int(lengths.max())))
    assert Counter(seen) == Counter((e.name, e.label) for e in examples)
    # Length-homogeneous: batches are consecutive runs of the length-sorted names, so no
    # two batches' length ranges overlap (they may touch at one length).
    for i, (low_a, high_a) in enumerate(spans):
        for low_b, high_b in spans[i + 1 :]:
            assert high_a <= low_b or high_b <= low_a, spans


def test_batches_shuffle_is_deterministic_by_seed(examples: list[Example]) -> None:
    def order(seed: int) -> list[str]:
        produced = batches(examples, Vocab(), 7, shuffle=True, seed=seed)
        return [name for ids, lengths, _ in produced for name in _decode(ids, lengths, Vocab())]

    assert order(1) == order(1)
    assert order(1) != order(2)
    unshuffled = [name for ids, lengths, _ in batches(examples, Vocab(), 7) for name in _decode(ids, lengths, Vocab())]
    assert [len(name) for name in unshuffled] == sorted(len(name) for name in unshuffled)


# --- the real dataset ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_corpus(real_names: Path) -> Corpus:
    return Corpus.from_folder(real_names)


@requires_real_data
def test_real_data_counts(real_corpus: Corpus) -> None:
    assert real_corpus.num_classes == 18
    assert real_corpus.stats.raw_counts["Arabic"] == 2000
    assert real_corpus.stats.dedup_counts["Arabic"] == 108
    assert len(real_corpus.pairs) == sum(real_corpus.stats.dedup_counts.values())
    assert real_corpus.stats.shared_names  # e.g. names both English and Scottish


@requires_real_data
def test_real_data_split(real_corpus: Corpus) -> None:
    split = real_corpus.split(0)
    assert_name_disjoint_partition(real_corpus, split)
    total = len(real_corpus.pairs)
    for part, share in ((split.train, 0.8), (split.val, 0.1), (split.test, 0.1)):
        assert abs(len(part) / total - share) < 0.01
        assert {e.label for e in part} == set(range(18))  # every language in every split
    assert split == real_corpus.split(0)
    other = real_corpus.split(1)
    assert _names(other.test) != _names(split.test)
    assert_name_disjoint_partition(real_corpus, other)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=30))
def test_ascii_fast_path_normalizes_like_the_general_path(text: str) -> None:
    from namelab.data.corpus import _to_letters, _to_letters_any

    assert _to_letters(text) == _to_letters_any(text)
