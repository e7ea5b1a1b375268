"""Names folder -> normalized, deduplicated corpus -> name-disjoint splits -> padded batches.

A dataset is a folder of ``<Language>.txt`` files, one name per line (UTF-8), whose
classes are the file names, or a CSV/TSV/Parquet table with a name and a label column. Typical use::

    corpus = Corpus.from_folder(resolve_data_dir(None))
    corpus = Corpus.load("names.csv", name_column="surname", label_column="country")  # or a table
    split = corpus.split(seed=0)
    for ids, lengths, targets in batches(split.train, corpus.vocab, batch_size=128, shuffle=True, seed=1):
        ...
"""

from __future__ import annotations

import random
import string
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from anyascii import anyascii

from .download import DataError
from .kinds import is_table

# The longest name, once normalized, that namelab classifies (CLI and server alike); a
# raw input longer than MAX_INPUT_LENGTH is refused before normalizing it, which bounds
# what one huge line can cost.
MAX_NAME_LENGTH = 64
MAX_INPUT_LENGTH = 16 * MAX_NAME_LENGTH
UNKNOWN = "?"  # not a vocabulary character, so an unknown is never mistaken for a letter
PAD_ID = 0
UNKNOWN_ID = 1  # Vocab.symbols starts with UNKNOWN
LETTERS = string.ascii_letters + " '-"
CASELESS_LETTERS = string.ascii_lowercase + " '-"


def input_error(name: str) -> str | None:
    """Why a raw ``name`` is refused before it is even normalized, or None.

    The rule every input path shares (names files, tables, the command line): a name that
    is not text, or longer than :data:`MAX_INPUT_LENGTH`, costs normalization for nothing.
    The normalized form's limit, :data:`MAX_NAME_LENGTH`, is checked once it is known.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (an undecodable byte or a lone surrogate); pass the name as UTF-8"
    if len(name) > MAX_INPUT_LENGTH:
        return f"is {len(name):,} characters long; a name may have at most {MAX_NAME_LENGTH} once normalized"
    return None


class UnusableName(ValueError):
    """A name that cannot be classified (empty, or nothing readable once normalized)."""


def normalize(name: str) -> str:
    """Return the ASCII form of a name that the models read.

    Accented Latin letters lose their marks (NFD: ``Bélanger -> Belanger``), other
    letters are transliterated with anyascii (``ß -> ss``, ``ł -> l``, Cyrillic, CJK);
    runs of whitespace become one space and invisible format characters go. Quotes
    around the whole name go (``'Nguyen'`` and ``"Nguyen"`` are Nguyen; an apostrophe
    inside or at one end stays: ``O'Brien``, ``'t Hooft``). Digits, punctuation and
    symbols outside :data:`LETTERS` become :data:`UNKNOWN`, never another letter. Raises
    :class:`UnusableName` when no letter is left.
    """
    # Quotes are taken off before and after the letters: a fancy quote becomes UNKNOWN,
    # and a format character in front of an ASCII quote goes only with the letters.
    text = _unquoted(_to_letters(_unquoted(name)))
    if not any(ch.isalpha() for ch in text):
        shown = repr(name) if name.strip() else "an empty name"
        raise UnusableName(f"{shown} has no letters to classify; give a name with at least one letter")
    return text


@dataclass(frozen=True)
class Vocab:
    """Character vocabulary: id 0 is padding, then :data:`UNKNOWN`, then the letters.

    The default has no capitals and reads names case-insensitively: a surname's
    capitals mostly just mark its start, and folding them gives every letter twice
    the examples (measured: about +0.7 points of validation accuracy for the LSTM).
    A vocabulary with capitals (``Vocab(LETTERS)``) reads case as written.
    """

    chars: str = CASELESS_LETTERS

    @property
    def symbols(self) -> str:
        return UNKNOWN + self.chars

    def __len__(self) -> int:
        return len(self.symbols) + 1  # + padding

    @cached_property
    def _table(self) -> np.ndarray:
        """Id of every code point up to the highest symbol's, then one unknown slot (int64).

        A caseless vocabulary also maps each letter's capital to it, so reading a name
        costs one array lookup per character, whatever its case.
        """
        ids = {ch: i + 1 for i, ch in enumerate(self.symbols)}
        if not any(ch.isupper() for ch in self.chars):
            ids |= {ch.upper(): i for ch, i in ids.items() if len(ch.upper()) == 1 and ch.upper() not in ids}
        table = np.full(max(map(ord, ids)) + 2, UNKNOWN_ID, dtype=np.int64)
        table[[ord(ch) for ch in ids]] = list(ids.values())
        return table

    def ids(self, text: str) -> np.ndarray:
        """The id of each character of ``text``, as an int64 array."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._table.take(codes, mode="clip")  # past the table: its last slot, unknown

    def encode(self, normalized: str) -> list[int]:
        return self.ids(normalized).tolist()

    def key(self, normalized: str) -> str:
        """What the model reads of a name: the lower-case form for a caseless vocabulary, else the name."""
        return normalized if any(ch.isupper() for ch in self.chars) else normalized.lower()


@dataclass(frozen=True)
class Example:
    name: str  # normalized
    label: int


@dataclass
class Split:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


@dataclass
class CorpusStats:
    raw_counts: dict[str, int]
    dedup_counts: dict[str, int]
    shared_names: dict[str, list[str]]  # normalized name -> its languages, for names in several
    changed_chars: dict[str, str]  # original character -> what normalization made of it
    skipped_lines: list[str] = field(default_factory=list)


def read_folder(folder: Path) -> dict[str, list[str]]:
    """Read ``<Language>.txt`` files into ``{language: raw lines}`` (blank lines dropped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist; pass --data-dir DIR or set NAMELAB_DATA")
    files = sorted(folder.glob("*.txt"))
    if len(files) < 2:
        raise DataError(
            f"data folder {folder} holds {len(files)} <Language>.txt file(s); a classifier needs at least two languages"
        )
    out: dict[str, list[str]] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err}); re-download it or fix its encoding") from err
        lines = [line.strip() for line in text.splitlines()]
        out[path.stem] = [line for line in lines if line]
        if not out[path.stem]:
            raise DataError(f"{path} holds no names; remove it or fill it, one name per line")
    return out


class Corpus:
    """Deduplicated (normalized name, language) pairs of a names folder or a labelled table."""

    columns: tuple[str, str] | None = None  # a table's (name, label) columns; None for a folder

    def __init__(self, labels: list[str], pairs: list[tuple[str, int]], stats: CorpusStats, vocab: Vocab = Vocab()):
        self.labels = labels
        self.pairs = pairs
        self.stats = stats
        self.vocab = vocab

    @classmethod
    def from_folder(cls, folder: Path | str) -> "Corpus":
        raw = read_folder(Path(folder))
        lines = {label: [(label, line) for line in raw[label]] for label in raw}

        def no_usable(empty: list[str]) -> str:
            return (
                f"{', '.join(f'{label}.txt' for label in empty)} in {folder} hold no usable names (no line has a "
                "letter); fix or remove the file(s)"
            )

        return cls._build(lines, no_usable)

    @classmethod
    def from_table(cls, path: Path | str, name_column: str = "name", label_column: str = "language") -> "Corpus":
        """The corpus of a CSV, TSV or Parquet table: one name and its language per row.

        The classes are the distinct values of ``label_column``; normalization,
        deduplication and the split are those of a names folder. A name with no letter is
        skipped and listed (with its line) like a folder's; a row with a missing field is
        an error that gives the first few lines.
        """
        from .tables import read_labelled  # pyarrow: imported when a table is read

        rows = read_labelled(path, name_column, label_column)
        lines: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in rows:
            lines[row.label].append((f"{row.where} ({row.label})", row.name))
        if len(lines) < 2:
            raise DataError(
                f"{path} holds {len(lines)} distinct value(s) in column {label_column!r}; a classifier needs at "
                "least two languages (is --label-column the right column?)"
            )

        def no_usable(empty: list[str]) -> str:
            return (
                f"language(s) {', '.join(map(repr, empty))} in {path} have no usable names (no {name_column!r} "
                "has a letter); fix or remove their rows"
            )

        corpus = cls._build(dict(lines), no_usable)
        corpus.columns = (name_column, label_column)
        return corpus

    @classmethod
    def load(cls, path: Path | str, name_column: str = "name", label_column: str = "language") -> "Corpus":
        """A names folder, or a ``.csv``/``.tsv``/``.parquet`` table with the given columns."""

        if Path(path).is_dir() or not is_table(path):
            return cls.from_folder(path)
        return cls.from_table(path, name_column, label_column)

    @classmethod
    def _build(cls, raw: dict[str, list[tuple[str, str]]], no_usable: Callable[[list[str]], str]) -> "Corpus":
        """``raw``: per language, its ``(where, line)`` pairs in reading order."""
        labels = sorted(raw)
        seen: set[tuple[str, int]] = set()
        pairs: list[tuple[str, int]] = []
        changed: dict[str, str] = {}
        skipped: list[str] = []
        dedup_counts: Counter[str] = Counter()
        for label_id, label in enumerate(labels):
            for where, line in raw[label]:
                try:
                    name = normalize(line)
                except UnusableName:
                    skipped.append(f"{where}: {line!r}")
                    continue
                for ch in line:
                    if ch not in LETTERS and ch not in changed:
                        changed[ch] = _to_letters(ch)
                if (name, label_id) not in seen:
                    seen.add((name, label_id))
                    pairs.append((name, label_id))
                    dedup_counts[label] += 1
        empty = [label for label in labels if dedup_counts[label] == 0]
        if empty:
            raise DataError(no_usable(empty))
        languages: dict[str, list[str]] = defaultdict(list)
        for name, label_id in pairs:
            languages[name].append(labels[label_id])
        stats = CorpusStats(
            raw_counts={label: len(raw[label]) for label in labels},
            dedup_counts={label: dedup_counts[label] for label in labels},
            shared_names={name: langs for name, langs in sorted(languages.items()) if len(langs) > 1},
            changed_chars=dict(sorted(changed.items())),
            skipped_lines=skipped,
        )
        return cls(labels, pairs, stats)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def split(self, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
        """Seeded split stratified by language in which no name, as the model reads it, is in two splits.

        Names are grouped by :meth:`Vocab.key` (a caseless vocabulary reads "An" and "an"
        alike: they are one name). A name with several languages or spellings is one unit:
        all its pairs land in the same split, stratified under its rarest language so
        small classes keep their share. A unit is placed by its first spelling in sorted
        order, so a corpus without such spellings splits as it did before they were grouped.
        """
        class_sizes = Counter(label for _, label in self.pairs)
        labels_of: dict[str, list[int]] = defaultdict(list)
        spelling: dict[str, str] = {}  # key -> the unit's first spelling
        for name, label in self.pairs:
            key = self.vocab.key(name)
            labels_of[key].append(label)
            spelling[key] = min(spelling.get(key, name), name)
        strata: dict[int, list[str]] = defaultdict(list)
        for key, key_labels in labels_of.items():
            strata[min(key_labels, key=lambda label: (class_sizes[label], label))].append(spelling[key])
        rng = random.Random(seed)
        assignment: dict[str, str] = {}
        for stratum in sorted(strata):
            names = sorted(strata[stratum])
            rng.shuffle(names)
            n_test = round(len(names) * test_fraction)
            n_val = round(len(names) * val_fraction)
            for i, name in enumerate(names):
                assignment[self.vocab.key(name)] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        parts: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
        for name, label in self.pairs:
            parts[assignment[self.vocab.key(name)]].append(Example(name, label))
        return Split(**parts)


# What _to_letters makes of each ASCII character: NFC changes no ASCII text and no ASCII
# character is a mark or a format character, so ASCII names need one table lookup each.
_ASCII_LETTERS = str.maketrans(
    {chr(i): chr(i) if chr(i) in LETTERS else " " if chr(i).isspace() else UNKNOWN for i in range(128)}
)


# Opening quote -> its closing quote, for names quoted whole (a copy from a table or a sentence).
_QUOTE_PAIRS = {
    "'": "'",
    '"': '"',
    "`": "`",
    "\u2018": "\u2019",  # ‘ ’
    "\u2019": "\u2019",  # ’ ’
    "\u201c": "\u201d",  # “ ”
    "\u201e": "\u201c",  # „ “
    "\u00ab": "\u00bb",  # « »
}


def _unquoted(name: str) -> str:
    text = name.strip()
    while len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def _to_letters(text: str) -> str:
    if text.isascii():  # most names of most tables: the same result, many times faster
        return " ".join(text.translate(_ASCII_LETTERS).split())
    return _to_letters_any(text)


def _to_letters_any(text: str) -> str:
    out = []
    for ch in unicodedata.normalize("NFC", text):
        category = unicodedata.category(ch)
        if ch in LETTERS:
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif category[0] == "M" or category == "Cf":
            continue  # stray combining marks, zero-width and format characters carry no letter
        elif category[0] != "L":
            out.append(UNKNOWN)  # digits, punctuation, symbols, emoji: never transliterated into letters
        else:
            # An accented Latin letter keeps its base (é -> e); other scripts are transliterated whole,
            # before NFD could split them (ガ -> ga, not ka; 김 -> Gim, not jamo).
            base = unicodedata.normalize("NFD", ch)[0]
            out.append(base if base in LETTERS else anyascii(ch))
    text = " ".join("".join(out).split())
    return "".join(ch if ch in LETTERS else UNKNOWN for ch in text)


def encode_batch(names: Sequence[str], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids ``(B, T)`` (int64, padding :data:`PAD_ID`) and lengths ``(B,)``.

    All names are looked up at once, as one string, and scattered into the padded
    array through a mask: no Python work per character.
    """
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    width = int(lengths.max()) if len(names) else 0
    ids = np.full((len(names), width), PAD_ID, dtype=np.int64)
    ids[np.arange(width) < lengths[:, None]] = vocab.ids("".join(names))  # row-major: name by name
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def batches(
    examples: Sequence[Example],
    vocab: Vocab,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(ids, lengths, targets)`` batches of names of similar length.

    Sorting by length makes padding nearly free; with ``shuffle`` the examples are
    shuffled first and the order of the batches is shuffled too, so every epoch
    differs while each batch stays length-homogeneous.
    """
    order = list(range(len(examples)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    order.sort(key=lambda i: len(examples[i].name))  # stable: ties keep the shuffled order
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(chunks)
    for chunk in chunks:
        ids, lengths = encode_batch([examples[i].name for i in chunk], vocab)
        targets = torch.tensor([examples[i].label for i in chunk], dtype=torch.int64)
        yield ids, lengths, targets
