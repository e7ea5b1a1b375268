"""The model card of a run folder (``model-card.md``): what the model is, on what data, for what, how well.

    text = model_card(meta, metrics, history)             # config.json, metrics.json, history.json
    save_run(run_dir, model, meta, history, metrics, card=text)   # listed in the manifest
    write_model_card("runs/ngram", meta, metrics, history)        # folders without a manifest

Written from the run's own files, so every figure in it is one the folder holds. A
recurrent run's card is a run file (checkpoint.RUN_FILES): the manifest lists its sha256,
and a card edited or cut short makes the folder fail its check like any other file.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from ..data.download import NAMES_SHA256
from .checkpoint import MODEL_CARD, atomic_write_bytes
from .config import current_names

KINDS = {
    "recurrent": "a character-level recurrent classifier",
    "ngram": "a character n-gram (TF-IDF) logistic regression",
    "ensemble": "an ensemble: the members' calibrated probabilities averaged",
}
# What docs/realworld.md measured for one GRU (8 epochs): its own test split, then in-domain
# names from another public source (Faker's surname lists).
REALWORLD_TEST_ACCURACY, REALWORLD_ACCURACY = 0.809, 0.391


def official_checksum() -> str:
    """``dataset_checksum`` of the official names folder, from the per-file checksums the download verifies."""
    digest = hashlib.sha256()
    for name, sha256 in sorted(NAMES_SHA256.items()):
        digest.update(f"{name}\0{sha256}\n".encode())
    return digest.hexdigest()


def reproduce_command(command: str | None) -> str | None:
    """A recorded ``namelab train`` line (often the resume command) as the line that trains the run from scratch."""
    if not command:
        return None
    return shlex.join(word for word in shlex.split(command) if word not in ("--resume", "--force"))


def _percent(value) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "not recorded"


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "not recorded"


def _what(meta: dict) -> list[str]:
    kind = meta.get("kind", "recurrent")
    config = current_names(meta.get("config") or {})
    lines = [f"- **Kind**: {KINDS.get(kind, kind)}."]
    if kind == "recurrent":
        cell = str(config.get("cell", "?")).upper()
        shape = [f"hidden size {config.get('hidden_size')}"]
        shape += ["bidirectional"] if config.get("bidirectional") else []
        shape += [f"{config.get('embedding_dim')}-dimensional character embedding"] if config.get("embedding_dim") else []
        shape += [f"a {config.get('ngram_buckets')}-bucket n-gram channel"] if config.get("ngram_buckets") else []
        shape += [f"output reads the {config.get('pool', 'last')} state(s)"]
        lines.append(f"- **Cell**: {cell} ({config.get('engine', 'hand')} engine), " + ", ".join(shape) + ".")
        lines.append(
            f"- **Training**: {config.get('epochs')} epoch{'s' if config.get('epochs') != 1 else ''} (kept: epoch {meta.get('best_epoch', '?')}, the best on "
            f"validation), batch {config.get('batch_size')}, learning rate {config.get('lr')}, dropout "
            f"{config.get('dropout')}, class-weight power {config.get('class_weight_power')}, label smoothing "
            f"{config.get('label_smoothing', 0)}, character dropout {config.get('char_dropout', 0)}, seed {config.get('seed')}."
        )
    elif kind == "ngram":
        lines.append(
            f"- **Features**: {config.get('analyzer', 'char')} n-grams {config.get('ngram_range')}, "
            f"regularisation C = {config.get('C')} (chosen on validation)."
        )
    elif kind == "ensemble":
        members = meta.get("members") or []
        lines.append(f"- **Members**: {', '.join(f'`{m}`' for m in members) or 'not recorded'} (each with its own card).")
        if meta.get("preset"):
            lines.append(f"- **Recipe**: `--preset {meta['preset']}`: {meta.get('description', '')}.")
    lines.append(f"- **Parameters**: {meta['parameters']:,}." if isinstance(meta.get("parameters"), int) else "")
    return [line for line in lines if line]


def _data(meta: dict) -> list[str]:
    checksum = meta.get("dataset_sha256")
    if checksum is None:
        source = "not recorded (trained on an in-memory corpus)"
    elif checksum == official_checksum():
        source = f"the official names folder of the PyTorch tutorial (18 files; sha256 `{checksum}`)"
    else:
        source = f"a dataset of its own (sha256 `{checksum}`), not the official names folder"
    split_seed = (meta.get("config") or {}).get("split_seed")
    sizes = ", ".join(f"{part} {meta[key]:,}" for part, key in
                      (("train", "n_train"), ("validation", "n_val"), ("test", "n_test")) if isinstance(meta.get(key), int))
    return [
        f"- **Dataset**: {source}.",
        f"- **Split**: name-disjoint (a name never appears in two parts), seed {split_seed}: {sizes or 'sizes not recorded'} "
        "names. Temperature, thresholds and weights were fitted on validation; the test split was read once, at the end.",
    ]


def _use(labels: list[str]) -> list[str]:
    return [
        "## Intended use",
        "",
        "Guessing which of the languages below a **surname's spelling** comes from: teaching and studying "
        "character-level models, exploring name lists, grouping names for transliteration or "
        "pronunciation work, with the probabilities read as probabilities.",
        "",
        "## Out of scope",
        "",
        "- A surname's language of origin is **not a person's nationality, ethnicity, religion or identity**: "
        "names are inherited, married into, transliterated and changed. Do not use this model to infer "
        "any of these.",
        "- **Not for decisions about people**: hiring, lending, housing, policing, border control, access to "
        "services, or any screening or profiling.",
        f"- Names from a language outside these {len(labels)} still get one of them (see caveats).",
    ]


def _metrics(metrics: dict) -> list[str]:
    if not metrics:
        return ["No test metrics were recorded for this folder."]
    lines = [
        f"On {metrics.get('n', '?'):,} test names: accuracy **{_percent(metrics.get('accuracy'))}**, "
        f"macro-F1 **{_percent(metrics.get('macro_f1'))}** (the mean over languages: it weighs small "
        "languages as much as Russian).",
        "",
        "| language | precision | recall | F1 | test names |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in (metrics.get("per_class") or {}).items():
        lines.append(
            f"| {label} | {_number(row.get('precision'), 3)} | {_number(row.get('recall'), 3)} | "
            f"{_number(row.get('f1'), 3)} | {row.get('support', '?')} |"
        )
    return lines


def _calibration(meta: dict, metrics: dict) -> list[str]:
    if "ece_after" not in metrics:
        return ["Not calibrated: the probabilities are the model's softmax as it is."]
    fitted = (meta.get("calibration") or {}).get("temperature_fitted", True)
    return [
        f"- Temperature **{_number(metrics.get('temperature'), 3)}**, fitted on the validation split"
        + ("" if fitted else " (too few validation names to fit one: kept at 1)") + ".",
        f"- Expected calibration error on test: {_percent(metrics.get('ece_before'))} before scaling, "
        f"**{_percent(metrics.get('ece_after'))}** after.",
        f"- {_percent(metrics.get('coverage_level'))} conformal sets (`--coverage {metrics.get('coverage_level')}`) "
        f"hold the true language for **{_percent(metrics.get('coverage'))}** of test names, with "
        f"{_number(metrics.get('mean_set_size'), 2)} languages on average.",
    ]


def _caveats(metrics: dict, labels: list[str]) -> list[str]:
    support = {label: row.get("support", 0) for label, row in (metrics.get("per_class") or {}).items()}
    total = sum(support.values())
    lines = []
    if total:
        top = max(support, key=support.get)
        share = support[top] / total
        lines.append(
            f"- **The training prior**: {top} is {100 * share:.0f} % of the test names (the split keeps the folder's "
            f"proportions), so the model leans towards it; always answering {top} would already score "
            f"{_percent(share)}."
        )
    lines += [
        f"- **Unknown languages**: there are {len(labels)} labels and no \"other\"; a Turkish, Hindi or "
        "Swahili surname still gets one of them, often with a high probability (docs/realworld.md: 64 % of "
        "out-of-domain names got 0.5 or more).",
        f"- **Real-world names score lower** than this test split: in docs/realworld.md a GRU with "
        f"{_percent(REALWORLD_TEST_ACCURACY)} test accuracy scored {_percent(REALWORLD_ACCURACY)} on in-domain surnames from "
        "another public source (other spellings and romanizations). The figures above are in-domain only.",
        "- Names are normalized before they are read (accents dropped, other scripts transliterated); a "
        "character outside the vocabulary is read as the unknown symbol.",
    ]
    return lines


def _reproduce(meta: dict) -> list[str]:
    command = reproduce_command(meta.get("command"))
    if command is None and meta.get("preset"):
        split_seed = (meta.get("config") or {}).get("split_seed")
        command = f"namelab train --preset {meta['preset']} --split-seed {split_seed} --out RUN_DIR"
    versions = meta.get("versions") or {}
    shown = ", ".join(f"{name} {versions[name]}" for name in ("namelab", "torch", "python") if versions.get(name))
    where = ", ".join(f"{versions[name]}" for name in ("cpu", "platform") if versions.get(name))
    if command is None:
        return [
            "No command is recorded: this folder was written as part of a larger run "
            "(`namelab train --preset best`, or `namelab compare --suite accuracy`)."
        ]
    words = shlex.split(command)
    lines = ["```", command, "```"]
    if not {"--data", "--data-dir"} & set(words):
        lines.append("\nwith `NAMELAB_DATA` naming the dataset above (unset: the verified download of the official one).")
    if shown:
        lines.append(f"\nTrained with {shown}" + (f" on {where}" if where else "") + ".")
    return lines


def model_card(meta: dict, metrics: dict | None, history: list | None = None) -> str:
    """The Markdown card of a run: ``meta`` is config.json's object, ``metrics`` metrics.json's."""
    meta, metrics = meta or {}, metrics or {}
    labels = list(meta.get("labels") or metrics.get("labels") or [])
    kind = meta.get("kind", "recurrent")
    config = current_names(meta.get("config") or {})
    titles = {"recurrent": str(config.get("cell", "?")).upper(), "ngram": "character n-gram baseline",
              "ensemble": "ensemble" + (f" (--preset {meta['preset']})" if meta.get("preset") else "")}
    title = titles.get(kind, kind)
    files = "config.json and metrics.json"
    if kind == "recurrent" and history:
        files = f"config.json, metrics.json and history.json ({len(history)} epoch{'s' if len(history) != 1 else ''})"
    sections = [
        [f"# Model card: {title}", "",
         f"Classifies a surname into one of {len(labels)} languages by its spelling. Written by namelab "
         f"from this folder's {files}."],
        ["## The model", "", *_what(meta)],
        ["## Data and split", "", *_data(meta)],
        _use(labels),
        ["## Labels", "", ", ".join(labels) + "." if labels else "Not recorded."],
        ["## Test metrics (per language)", "", *_metrics(metrics)],
        ["## Calibration", "", *_calibration(meta, metrics)],
        ["## Caveats", "", *_caveats(metrics, labels)],
        ["## How to reproduce", "", *_reproduce(meta)],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write_model_card(run_dir: Path | str, meta: dict, metrics: dict | None, history: list | None = None) -> Path:
    """Write ``run_dir/model-card.md`` (atomically); for folders that :func:`~namelab.runs.checkpoint.save_run` does not write."""
    path = Path(run_dir) / MODEL_CARD
    atomic_write_bytes(path, model_card(meta, metrics, history).encode("utf-8"))
    return path
