"""A real-world surname benchmark from Faker's per-locale surname lists: evaluation only, never training data.

Each Faker locale's raw surname list is labelled with the language its locale stands for
(:data:`LOCALE_LANGUAGES`); names of namelab's 18 languages are in-domain, the others test how
the models answer for a language they were never taught. The packaged ``realworld.csv`` was
built from faker 40.63.0 (MIT) by::

    python -m namelab.data.realworld --out src/namelab/data/realworld.csv

and is read back with ``rows = read_benchmark()``. See docs/realworld.md for the choices.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .corpus import UNKNOWN, UnusableName, normalize

PACKAGED_CSV = Path(__file__).with_name("realworld.csv")
FAKER_VERSION = "40.63.0"  # the version the packaged CSV was built from; another may list other names
IN_DOMAIN = frozenset({
    "Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek", "Irish", "Italian",
    "Japanese", "Korean", "Polish", "Portuguese", "Russian", "Scottish", "Spanish", "Vietnamese",
})  # namelab's 18 classes; Faker has no Scottish list (no en_SC or gd_GB locale), so 17 are covered

LOCALE_LANGUAGES: dict[str, str] = {
    # In-domain. Arabic comes from fr_DZ, Algeria's surnames in Latin (French) spelling; see EXCLUDED for ar_*.
    "fr_DZ": "Arabic",
    "zh_CN": "Chinese", "zh_TW": "Chinese",  # romanized lists: pinyin (zh_CN), Wade-Giles (zh_TW)
    "cs_CZ": "Czech",
    "nl_NL": "Dutch", "nl_BE": "Dutch",
    "en_GB": "English",
    "fr_FR": "French", "fr_CA": "French", "fr_BE": "French", "fr_CH": "French",
    "de_DE": "German", "de_AT": "German", "de_CH": "German", "de_LI": "German",
    "el_GR": "Greek",  # Greek script, transliterated by normalize (anyascii)
    "en_IE": "Irish", "ga_IE": "Irish",  # English spellings (en_IE) and Irish-language forms (ga_IE)
    "it_IT": "Italian",
    "ja_JP": "Japanese",  # romanized list (Hepburn without long vowels: Sato)
    "ko_KR": "Korean",  # Hangul only: normalize gives Revised Romanization (Gim, I, Bag), not Kim, Lee, Park
    "pl_PL": "Polish",
    "pt_PT": "Portuguese", "pt_BR": "Portuguese",
    "ru_RU": "Russian",  # Cyrillic, transliterated by normalize
    "es_ES": "Spanish", "es_MX": "Spanish", "es_AR": "Spanish", "es_CL": "Spanish", "es_CO": "Spanish",
    "vi_VN": "Vietnamese",
    # Out-of-domain: each locale's own language; a list that mixes a country's languages is labelled by the country.
    "fi_FI": "Finnish", "hu_HU": "Hungarian", "tr_TR": "Turkish", "sv_SE": "Swedish", "no_NO": "Norwegian",
    "da_DK": "Danish", "ro_RO": "Romanian", "et_EE": "Estonian", "lv_LV": "Latvian", "lt_LT": "Lithuanian",
    "hr_HR": "Croatian", "sl_SI": "Slovene", "id_ID": "Indonesian", "ka_GE": "Georgian", "hy_AM": "Armenian",
    "en_TH": "Thai", "en_IN": "Indian", "en_KE": "Kenyan", "sw": "Swahili", "tw_GH": "Twi", "yo_NG": "Yoruba",
    "ig_NG": "Igbo", "ha_NG": "Hausa", "zu_ZA": "Zulu",
}

EXCLUDED: dict[str, str] = {
    "uk_UA": "Ukrainian surnames (-enko, -chuk) fill much of the names folder's Russian file",
    "bg_BG": "Bulgarian -ov/-ova surnames are spelled as Russian ones",
    "mk_MK": "Macedonian -ov/-ovski surnames are too close to Russian and Bulgarian ones",
    "sk_SK": "Slovak surnames share Czech spelling and endings (-ová, -ák); many are the same names",
    "uz_UZ": "Russified -ov/-yev forms, which the names folder's Russian file also holds",
    "az_AZ": "many are Russified -ov forms, which the names folder's Russian file also holds",
    "de_LU": "Luxembourg's list mixes German, French and Portuguese surnames (Da silva, Ferreira)",
    "en_US": "the US census list mixes every origin (Garcia, Nguyen, Kim, Patel) under one locale",
    "en": "Faker's generic list is US-derived and mixes origins (Altenwerth, Bartoletti, Bashirian)",
    "en_NZ": "New Zealand's list mixes British, Scandinavian and German origins",
    "en_NG": "its 20 names are taken from the Yoruba, Igbo and Hausa lists",
    "en_PK": "Pakistani surnames there are mostly Arabic in origin (Aarif, Jalil): Arabic or not cannot be told",
    "ar_AA": "unvowelled Arabic script transliterates to consonant skeletons (أشجع -> 'shj`), no real spelling",
    "ar_DZ": "as ar_AA", "ar_PS": "as ar_AA", "ar_SA": "as ar_AA",
    "fa_IR": "as ar_AA (Persian in Arabic script)",
    "he_IL": "as ar_AA (unvowelled Hebrew), and Israel's list holds Arabic surnames too",
    "hi_IN": "anyascii drops Indic scripts' inherent vowels (शर्मा -> srma)",
    "bn_BD": "as hi_IN", "gu_IN": "as hi_IN", "mr_IN": "as hi_IN", "ne_NP": "as hi_IN", "or_IN": "as hi_IN",
    "si_LK": "as hi_IN", "ta_IN": "as hi_IN, and its list holds given names",
    "th_TH": "anyascii of Thai script is no usable spelling; en_TH gives Thai surnames in Latin script",
    "is_IS": "Icelanders use patronymics; Faker lists first-name stems, not surnames",
    "es": "a placeholder list (Doe)", "es_CA": "inherits es_ES's list", "fr_QC": "inherits fr_CA's list",
}

# Which raw provider attributes hold a locale's surnames, where last_names is not the whole or the right list.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "ja_JP": ("last_romanized_names",),
    "zh_CN": ("last_romanized_names",),
    "zh_TW": ("last_romanized_names",),
    "pl_PL": ("male_last_names", "unisex_last_names"),  # last_names is a placeholder there
    "et_EE": ("last_names_est",),  # last_names adds Russian names in Estonian spelling (last_names_rus)
}


@dataclass(frozen=True)
class Row:
    name: str  # spelled as in the source list (accents, native script)
    language: str
    in_domain: bool
    source: str  # the locales that list the name, space-separated


def faker_lists(locales: Sequence[str] = tuple(LOCALE_LANGUAGES)) -> dict[str, list[str]]:
    """``{locale: surnames}`` read from Faker's raw person providers, in their listed order (no sampling)."""
    try:
        import faker
    except ImportError as error:
        raise RuntimeError("building the benchmark needs Faker: pip install faker==" + FAKER_VERSION) from error
    if faker.VERSION != FAKER_VERSION:
        print(f"warning: faker {faker.VERSION} installed; the packaged CSV was built from {FAKER_VERSION}", file=sys.stderr)
    lists = {}
    for locale in locales:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        names: list[str] = []
        for attribute in ATTRIBUTES.get(locale, ("last_names",)):
            names.extend(getattr(provider, attribute))  # a dict (name -> weight) gives its names
        # zh_TW spells names in capitals (CHEN); the names folder and everyday use write Chen.
        lists[locale] = [name.title() if name.isupper() and len(name) > 1 else name for name in names]
    return lists


def rows_from_lists(
    lists: Mapping[str, Sequence[str]], languages: Mapping[str, str] = LOCALE_LANGUAGES
) -> tuple[list[Row], Counter]:
    """Label, deduplicate and filter surname lists; also return what was dropped, counted by reason.

    A name is compared by its normalized, case-folded form. One kept per (name, language),
    spelled as its first listing (locales in sorted order); a name that two languages claim
    is dropped ("ambiguous"), as is one that does not normalize to letters ("unusable").
    """
    dropped: Counter = Counter()
    claims: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for locale in sorted(lists):
        language = languages[locale]
        for name in lists[locale]:
            try:
                key = normalize(name).casefold()
            except UnusableName:
                key = UNKNOWN
            if UNKNOWN in key:  # a digit or symbol the models cannot read (Sa’idu's curly apostrophe)
                dropped["unusable"] += 1
                continue
            claims[key][language].append((name, locale))
    rows = []
    for key, by_language in claims.items():
        if len(by_language) > 1:
            dropped["ambiguous"] += 1
            continue
        ((language, listings),) = by_language.items()
        dropped["duplicate"] += len(listings) - 1
        locales = " ".join(sorted({locale for _, locale in listings}))
        rows.append(Row(listings[0][0], language, language in IN_DOMAIN, locales))
    rows.sort(key=lambda row: (not row.in_domain, row.language, normalize(row.name).casefold(), row.name))
    return rows, dropped


def build_benchmark() -> list[Row]:
    """The benchmark's rows, rebuilt from the installed Faker."""
    return rows_from_lists(faker_lists())[0]


FIELDS = ("name", "language", "in_domain", "source")


def write_benchmark(path: str | Path, rows: Sequence[Row] | None = None) -> Path:
    """Write ``rows`` (default: :func:`build_benchmark`) as a UTF-8 CSV with header name,language,in_domain,source."""
    path = Path(path)
    rows = build_benchmark() if rows is None else rows
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows((row.name, row.language, "true" if row.in_domain else "false", row.source) for row in rows)
    return path


def read_benchmark(path: str | Path | None = None) -> list[Row]:
    """Read a benchmark CSV (default: the packaged one) back into rows."""
    path = PACKAGED_CSV if path is None else Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {','.join(FIELDS)}; "
                             "rebuild it with python -m namelab.data.realworld --out PATH")
        rows = []
        for line, record in enumerate(reader, start=2):
            if record["in_domain"] not in ("true", "false"):
                raise ValueError(f"{path}:{line}: in_domain is {record['in_domain']!r}; write true or false")
            rows.append(Row(record["name"], record["language"], record["in_domain"] == "true", record["source"]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m namelab.data.realworld",
        description="Rebuild the real-world surname benchmark from Faker's surname lists and print its counts.",
        epilog="example: python -m namelab.data.realworld --out src/namelab/data/realworld.csv",
    )
    parser.add_argument("--out", required=True, type=Path, help="the CSV to write (name,language,in_domain,source)")
    args = parser.parse_args(argv)
    rows, dropped = rows_from_lists(faker_lists())
    write_benchmark(args.out, rows)
    counts = Counter((row.in_domain, row.language) for row in rows)
    for in_domain in (True, False):
        print("in-domain:" if in_domain else "out-of-domain:")
        for (flag, language), count in sorted(counts.items()):
            if flag == in_domain:
                print(f"  {language:<12} {count:>5}")
        print(f"  {'total':<12} {sum(c for (flag, _), c in counts.items() if flag == in_domain):>5}")
    print("dropped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(dropped.items())))
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
