"""What a data path holds, by its name alone: a table (CSV, TSV, Parquet) or a names file.

    is_table("people.parquet")   # True: read with pyarrow (tables.py)
    is_table("names.txt")        # False: one name per line

Kept apart from tables.py so that the command line can tell without importing pyarrow,
which only tables need.
"""

from __future__ import annotations

from pathlib import Path

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def is_table(path: Path | str) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES
