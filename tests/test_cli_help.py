"""The command line's help, suggestions and misplaced names: what a new user meets first.

    .venv/bin/python -m pytest tests/test_cli_help.py -q
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest

from namelab.cli.commands import COMMANDS, main
from namelab.cli.parser import build_parser, split_run_and_names, subcommands


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return {"namelab": parser, **{f"namelab {name}": sub for name, sub in subcommands(parser).items()}}


def flat(text: str) -> str:
    return " ".join(text.split())  # help is wrapped at the terminal's width


def test_every_subcommand_is_in_the_parser() -> None:
    assert set(subcommands(build_parser())) == set(COMMANDS)


def test_no_option_lacks_help_text() -> None:
    missing = [
        f"{prog} {'/'.join(action.option_strings) or action.dest}"
        for prog, parser in all_parsers().items()
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and (not action.help or action.help == argparse.SUPPRESS or not action.help.strip())
    ]
    assert missing == []


def test_every_fixed_default_is_shown_and_no_empty_one() -> None:
    checked = 0
    for prog, parser in all_parsers().items():
        text = flat(parser.format_help())
        assert "(default: None)" not in text and "(default: False)" not in text, prog
        for action in parser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
                continue
            assert f"(default: {action.default})" in text, f"{prog} {action.option_strings}"
            checked += 1
    assert checked > 20  # train alone has more than 15 options with a default


def test_every_subcommand_ends_with_two_or_three_examples() -> None:
    for name, parser in subcommands(build_parser()).items():
        epilog = parser.epilog or ""
        assert epilog.startswith("examples:\n"), name
        examples = [line for line in epilog.splitlines() if line.startswith(f"  namelab {name}")]
        assert 2 <= len(examples) <= 3, (name, examples)
        assert parser.format_help().rstrip().endswith(epilog.rstrip().splitlines()[-1].rstrip()), name


def test_predict_help_gives_examples_not_line_ending_rules() -> None:
    predict = subcommands(build_parser())["predict"]
    assert "LF" not in (predict.description or "") and "RFC 4180" not in predict.format_help()
    assert "namelab predict runs/gru Nakamura" in predict.format_help()
    assert Path(__file__).parents[1].joinpath("docs", "cli.md").read_text().count("RFC 4180") == 1


def test_threads_help_speaks_of_each_commands_work() -> None:
    parsers = subcommands(build_parser())

    def threads_help(name: str) -> str:
        return next(a.help for a in parsers[name]._actions if "--threads" in a.option_strings)

    assert "epoch" not in threads_help("predict") and "training" not in threads_help("predict")
    assert "epoch" in threads_help("train")


def test_bare_namelab_prints_the_command_list(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: namelab")
    assert all(f"\n    {name} " in out for name in COMMANDS)


def test_a_mistyped_command_suggests_the_closest(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predcit", "runs/gru", "Nakamura"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "namelab: error: argument COMMAND: invalid choice: 'predcit'" in err
    assert err.rstrip().endswith("did you mean 'predict'?")


def test_a_word_far_from_every_command_gets_no_suggestion(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "words",
    [
        ["train", "--cell", "gru", "--engine", "fused"],
        ["train", "--model", "gru", "--impl", "fused"],  # the names before the cell and the engine were so called
    ],
)
def test_the_cell_and_the_engine_answer_to_their_old_flags_too(words: list[str]) -> None:
    args = build_parser().parse_args(words)
    assert (args.cell, args.engine) == ("gru", "fused")
    assert not hasattr(args, "model") and not hasattr(args, "impl")


@pytest.mark.parametrize("flag", ["--engine", "--impl"])
def test_compare_takes_the_engine_under_both_names(flag: str) -> None:
    assert build_parser().parse_args(["compare", flag, "fused"]).engine == "fused"


def test_a_mistyped_choice_suggests_the_closest(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--cell", "lstn"])
    assert info.value.code == 2
    assert "did you mean 'lstm'?" in capsys.readouterr().err


def test_a_mistyped_option_is_reported_by_its_subcommand_with_the_closest(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", "runs/gru", "Nakamura", "--topk", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: namelab predict")
    assert "namelab predict: error: unrecognized arguments: --topk 3; did you mean '--top-k'?" in err


def test_two_mistyped_options_each_get_their_suggestion(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--epohcs", "3", "--hiden-size=8"])
    err = capsys.readouterr().err
    assert "'--epochs' for '--epohcs'" in err and "'--hidden-size' for '--hiden-size'" in err


def test_a_name_where_the_run_folder_goes_says_what_to_run(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # "Nakamura" is no folder here
    monkeypatch.setattr("namelab.api.DEFAULT_MODEL", tmp_path / "no-default-model")  # an install without one
    assert main(["predict", "Nakamura"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'Nakamura' is not a run folder" in captured.err
    assert "`namelab predict RUN_DIR Nakamura`" in captured.err
    assert "`namelab train --cell gru --engine fused --out runs/gru`" in captured.err


def test_a_name_alone_is_answered_by_the_shipped_model(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "Nakamura", "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith("Nakamura\t(Nakamura)\tJapanese ")


def test_a_run_folder_after_the_name_shows_the_right_order(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "gru"
    run.mkdir(parents=True)
    assert main(["predict", "Nakamura", str(run), "Nguyen"]) == 2
    err = capsys.readouterr().err
    assert f"`{shlex.join(['namelab', 'predict', str(run), 'Nakamura', 'Nguyen'])}`" in err
    assert "the run folder goes first" in err


def test_split_run_and_names_leaves_none_for_the_default_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gru").mkdir()
    parser = subcommands(build_parser())["predict"]

    def split(*words: str):
        return split_run_and_names(parser.parse_args(list(words)))

    assert split("Nakamura", "Nguyen") == (None, ["Nakamura", "Nguyen"])  # names only: the default model
    assert split() == (None, [])
    assert split("gru", "Nakamura") == (Path("gru"), ["Nakamura"])  # an existing folder
    assert split("runs/absent", "Nakamura") == (Path("runs/absent"), ["Nakamura"])  # a path: its own error later
