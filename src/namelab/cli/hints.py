"""What the command line says when a user's words are almost right: a typo, or words out of order.

    did_you_mean("predcit", ["train", "predict"])        # "; did you mean 'predict'?"
    run_dir, names = split_run_and_names(args)          # a name where the run goes: (None, names)

The parser (parser.py) adds these hints to argparse's own errors; commands.py turns a
:class:`UsageError` into the same exit status as argparse's. Nothing here builds a parser.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
from pathlib import Path
from typing import Sequence

EXIT_USAGE = 2  # as argparse exits on words it cannot parse
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

# -- a mistyped word ----------------------------------------------------------------------

_INVALID_CHOICE = re.compile(r"invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)$")


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'predict'?"`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def choice_hint(message: str) -> str:
    """The closest valid word to the one that argparse's ``invalid choice`` ``message`` names, or ``""``."""
    match = _INVALID_CHOICE.search(message)
    if not match:
        return ""
    choices = [word.strip().strip("'\"") for word in match["choices"].split(",")]
    return did_you_mean(match["value"].strip("'\""), choices)


def option_hint(unknown: Sequence[str], options: Sequence[str]) -> str:
    """The closest of a subcommand's ``options`` to each ``unknown`` option that has one, or ``""``."""
    suggestions = {}
    for word in unknown:
        flag = word.split("=", 1)[0]
        close = difflib.get_close_matches(flag, list(options), n=1) if flag.startswith("-") else []
        if close:
            suggestions[flag] = close[0]
    if len(suggestions) == 1:
        return f"; did you mean {next(iter(suggestions.values()))!r}?"
    if suggestions:
        return "; did you mean " + ", ".join(f"{close!r} for {flag!r}" for flag, close in suggestions.items()) + "?"
    return ""


# -- a name where the run folder goes --------------------------------------------------


class UsageError(ValueError):
    """A command line that parses but asks for something else than it means; the message shows the right one."""


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith(".") or Path(text).exists()


def split_run_and_names(args: argparse.Namespace) -> tuple[Path | None, list[str]]:
    """``predict``'s positionals as ``(run folder, names)``; ``None`` for the folder means "the default model".

    The first word is the run folder when it is a folder or looks like a path (a slash, a
    leading dot); otherwise it is a name. A run folder given after a name is refused with
    the command in the right order.
    """
    first, rest = args.run_dir, list(args.names)
    if first is None:
        return None, rest
    if _looks_like_path(first):
        return Path(first), rest
    folders = [word for word in rest if Path(word).is_dir()]
    if folders:
        names = [first, *(word for word in rest if word not in folders)]
        raise UsageError(
            f"{folders[0]!r} is a folder and {first!r} is not: the run folder goes first, "
            f"`{shlex.join(['namelab', 'predict', folders[0], *names])}`"
        )
    return None, [first, *rest]


def no_default_model(names: Sequence[str]) -> UsageError:
    """What ``predict`` says when no run folder is given and no default model is installed."""
    shown = " ".join(shlex.quote(name) for name in names[:3]) or "--input names.txt"
    taken = f"{names[0]!r} is not a run folder (no such folder); " if names else ""
    return UsageError(
        f"{taken}give the run folder first, then the names: `namelab predict RUN_DIR {shown}`. "
        "No run folder yet? Train one: `namelab train --cell gru --engine fused --out runs/gru`, "
        f"then `namelab predict runs/gru {shown}`"
    )
