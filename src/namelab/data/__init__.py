"""Names in: the verified download, normalization, the corpus and its split, batches, tables.

    download.py  the official archive: download, sha256 of every file, clear errors
    corpus.py    normalize, Vocab, Corpus (deduplicated, name-disjoint split), batches
    tables.py    CSV / TSV / Parquet readers for labelled and unlabelled tables

May import the model core; nothing above it.
"""
