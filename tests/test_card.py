"""The model card every run folder carries (namelab.runs.card): its contents, and its place in the manifest.

    .venv/bin/python -m pytest tests/test_card.py -q
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
from helpers import train_tiny_run

from namelab.cli.commands import main
from namelab.data.corpus import Corpus
from namelab.data.download import dataset_checksum
from namelab.runs.card import model_card, official_checksum, reproduce_command
from namelab.runs.checkpoint import MANIFEST, METRICS, MODEL_CARD, CheckpointError, load_run, read_json, save_run
from namelab.train.ngram import train_ngram


@pytest.fixture(scope="module")
def run_dir(tiny_names_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "gru"
    train_tiny_run(tiny_names_dir, out, cell="gru", epochs=3)
    return out


def test_a_training_writes_a_card_with_per_language_metrics_and_the_command(run_dir: Path, tiny_names_dir: Path):
    card = (run_dir / MODEL_CARD).read_text(encoding="utf-8")
    meta, metrics = read_json(run_dir / "config.json"), read_json(run_dir / METRICS)
    assert card.startswith("# Model card: GRU")
    for label, row in metrics["per_class"].items():
        line = f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        assert line in card
    assert f"accuracy **{100 * metrics['accuracy']:.1f} %**" in card
    assert f"**{100 * metrics['ece_after']:.1f} %** after" in card
    assert f"Temperature **{metrics['temperature']:.3f}**" in card
    # The command that trains the run again (not the resume command) is in config.json and in the card.
    command = meta["command"]
    assert "--resume" not in command and shlex.split(command)[:2] == ["namelab", "train"]
    assert ["--data", str(tiny_names_dir)] == shlex.split(command)[-4:-2]
    assert f"```\n{command}\n```" in card
    assert meta["dataset_sha256"] in card and "not the official names folder" in card
    assert "not a person's nationality, ethnicity" in card and "Not for decisions about people" in card


def test_the_caveats_carry_the_runs_own_prior(run_dir: Path) -> None:
    metrics = read_json(run_dir / METRICS)
    support = {label: row["support"] for label, row in metrics["per_class"].items()}
    top = max(support, key=support.get)
    share = support[top] / sum(support.values())
    card = (run_dir / MODEL_CARD).read_text(encoding="utf-8")
    assert f"{top} is {100 * share:.0f} % of the test names" in card
    assert f"{len(support)} labels and no \"other\"" in card


def test_the_manifest_lists_the_card_and_a_damaged_card_is_refused(run_dir: Path, tmp_path: Path) -> None:
    manifest = read_json(run_dir / MANIFEST)
    assert MODEL_CARD in manifest["files"]
    load_run(run_dir)
    damaged = Path(shutil.copytree(run_dir, tmp_path / "run"))
    card = damaged / MODEL_CARD
    card.write_text(card.read_text(encoding="utf-8").replace("Not for decisions", "Fine for decisions"))
    with pytest.raises(CheckpointError, match="model-card.md does not match its checksum"):
        load_run(damaged)
    card.unlink()
    with pytest.raises(CheckpointError, match="model-card.md is missing"):
        load_run(damaged)


def test_a_folder_written_before_cards_still_loads(run_dir: Path, tmp_path: Path) -> None:
    model, meta = load_run(run_dir)
    save_run(tmp_path / "old", model, meta, read_json(run_dir / "history.json"), read_json(run_dir / METRICS))
    assert not (tmp_path / "old" / MODEL_CARD).exists()
    assert MODEL_CARD not in read_json(tmp_path / "old" / MANIFEST)["files"]
    load_run(tmp_path / "old")


def test_the_cli_records_the_users_command(tiny_names_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli-run"
    argv = ["train", "--data-dir", str(tiny_names_dir), "--out", str(out), "--cell", "rnn", "--epochs", "1",
            "--hidden-size", "8", "--threads", "1", "--device", "cpu"]
    assert main(argv) == 0
    capsys.readouterr()
    assert read_json(out / "config.json")["command"] == shlex.join(["namelab", *argv])
    assert shlex.join(["namelab", *argv]) in (out / MODEL_CARD).read_text(encoding="utf-8")


def test_an_ngram_folder_gets_a_card(tiny_names_dir: Path, tmp_path: Path) -> None:
    corpus = Corpus.from_folder(tiny_names_dir)
    metrics = train_ngram(corpus.split(seed=0), corpus.labels, tmp_path / "ngram", meta={"config": {"split_seed": 0}})
    card = (tmp_path / "ngram" / MODEL_CARD).read_text(encoding="utf-8")
    assert "n-gram (TF-IDF) logistic regression" in card
    assert f"accuracy **{100 * metrics['accuracy']:.1f} %**" in card
    assert "No command is recorded" in card


def test_a_card_from_sparse_files_still_reads() -> None:
    card = model_card({"config": {"model": "lstm"}, "labels": ["A", "B"]}, None)
    assert "No test metrics were recorded" in card and "Not calibrated" in card and "A, B." in card


def test_reproduce_command_drops_resume_and_force() -> None:
    assert reproduce_command("namelab train --out 'a b' --force --resume") == "namelab train --out 'a b'"
    assert reproduce_command(None) is None and reproduce_command("") is None


def test_the_official_checksum_is_the_official_folders() -> None:
    folder = os.environ.get("NAMELAB_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("NAMELAB_DATA does not name the official names folder here")
    assert official_checksum() == dataset_checksum(Path(folder))
    card = model_card({"dataset_sha256": official_checksum(), "labels": ["A"]}, None)
    assert "the official names folder" in card


def test_an_ensemble_and_each_member_get_a_card(tiny_names_dir: Path, tmp_path: Path) -> None:
    from helpers import one_thread, tiny_config

    from namelab.train.presets import train_ensemble

    corpus = Corpus.from_folder(tiny_names_dir)
    with one_thread():
        train_ensemble([tiny_config(cell="gru", epochs=2)], corpus, tmp_path / "ens", ngram=True,
                       data_dir=tiny_names_dir, meta={"preset": "best", "description": "a recipe"}, log=lambda line: None)
    card = (tmp_path / "ens" / MODEL_CARD).read_text(encoding="utf-8")
    assert card.startswith("# Model card: ensemble (--preset best)")
    assert "`members/gru-h16-seed0`, `members/ngram`" in card
    assert "namelab train --preset best --split-seed 0 --out RUN_DIR" in card
    assert {p.parent.name for p in (tmp_path / "ens" / "members").glob(f"*/{MODEL_CARD}")} == {"gru-h16-seed0", "ngram"}
