"""The real-world benchmark: its locale mapping, the dedup/ambiguity rule, the packaged CSV and its rebuild."""

from __future__ import annotations

import pytest

from namelab.data import realworld
from namelab.data.corpus import normalize
from namelab.data.realworld import IN_DOMAIN, LOCALE_LANGUAGES, Row, read_benchmark, rows_from_lists, write_benchmark

LANGUAGES = {"aa_AA": "German", "bb_BB": "German", "cc_CC": "Polish", "dd_DD": "Finnish"}


def test_mapping_labels_locales_by_language():
    assert LOCALE_LANGUAGES["de_AT"] == "German"
    assert LOCALE_LANGUAGES["ja_JP"] == "Japanese" and realworld.ATTRIBUTES["ja_JP"] == ("last_romanized_names",)
    assert LOCALE_LANGUAGES["fi_FI"] == "Finnish" and "Finnish" not in IN_DOMAIN
    assert "uk_UA" not in LOCALE_LANGUAGES and "uk_UA" in realworld.EXCLUDED
    assert not set(LOCALE_LANGUAGES) & set(realworld.EXCLUDED)
    assert len(IN_DOMAIN) == 18 and "Scottish" not in set(LOCALE_LANGUAGES.values())


def test_a_name_two_languages_claim_is_dropped():
    lists = {"aa_AA": ["Müller", "Nowak"], "cc_CC": ["Nowak", "Kowalski"], "dd_DD": ["Virtanen"]}
    rows, dropped = rows_from_lists(lists, LANGUAGES)
    assert [(row.name, row.language) for row in rows] == [
        ("Müller", "German"), ("Kowalski", "Polish"), ("Virtanen", "Finnish")]
    assert dropped["ambiguous"] == 1
    assert [row.in_domain for row in rows] == [True, True, False]


def test_one_row_per_name_and_language_with_every_locale_that_lists_it():
    # Müller and MULLER are one name once normalized and case-folded; the first spelling is kept.
    lists = {"bb_BB": ["MULLER", "Weber"], "aa_AA": ["Müller", "Müller"]}
    rows, dropped = rows_from_lists(lists, LANGUAGES)
    assert rows == [Row("Müller", "German", True, "aa_AA bb_BB"), Row("Weber", "German", True, "bb_BB")]
    assert dropped["duplicate"] == 2 and dropped["ambiguous"] == 0


def test_names_that_do_not_normalize_are_dropped():
    rows, dropped = rows_from_lists({"aa_AA": ["Bourgondië, van", "123", "Sa’idu", "Braun"]}, LANGUAGES)
    assert [row.name for row in rows] == ["Braun"]
    assert dropped["unusable"] == 3


def test_packaged_csv_reads_back_with_only_the_18_labels_in_domain(tmp_path):
    rows = read_benchmark()
    in_domain = {row.language for row in rows if row.in_domain}
    assert in_domain <= IN_DOMAIN and len(in_domain) == 17  # Faker has no Scottish list
    assert not {row.language for row in rows if not row.in_domain} & IN_DOMAIN
    assert sum(not row.in_domain for row in rows) > 1000
    keys = [normalize(row.name).casefold() for row in rows]
    assert len(keys) == len(set(keys))  # no name under two labels, none twice
    assert read_benchmark(write_benchmark(tmp_path / "copy.csv", rows)) == rows


def test_a_csv_without_the_header_is_refused(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("surname,label\nSmith,English\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        read_benchmark(path)


def test_every_faker_locale_is_mapped_or_excluded():
    pytest.importorskip("faker", reason="faker is not installed: the benchmark cannot be rebuilt here")
    import pkgutil

    import faker.providers.person

    locales = {module.name for module in pkgutil.iter_modules(faker.providers.person.__path__)}
    assert locales == set(LOCALE_LANGUAGES) | set(realworld.EXCLUDED)


def test_rebuilding_from_faker_gives_the_committed_csv(tmp_path):
    faker = pytest.importorskip("faker", reason="faker is not installed: the benchmark cannot be rebuilt here")
    if faker.VERSION != realworld.FAKER_VERSION:
        pytest.skip(f"faker {faker.VERSION} installed; the CSV was built from {realworld.FAKER_VERSION}")
    rebuilt = write_benchmark(tmp_path / "realworld.csv")
    assert rebuilt.read_bytes() == realworld.PACKAGED_CSV.read_bytes()
