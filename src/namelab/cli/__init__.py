"""The ``namelab`` command line: the parser, one function per subcommand, output formats.

    parser.py   build_parser: every subcommand and option, with help and defaults
    hints.py    "did you mean" on a typo; a name where the run folder goes
    formats.py  names files in; text, CSV and JSON out
    commands.py the commands and main(argv); main() here imports it

Top of the stack: may import anything in namelab.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .hints import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """The ``namelab`` command (the console script's entry point).

    The commands' imports (torch, numpy, …) take most of a second: they happen here, so
    that a Ctrl-C during them ends the command with one line and status 130, as a Ctrl-C
    during any command does, instead of a traceback through torch's import machinery.
    """
    try:
        from .commands import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run(argv)


__all__ = ["main"]
