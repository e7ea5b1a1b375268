"""The ``namelab`` command line: the parser, one function per subcommand, output formats.

    parser.py   build_parser: every subcommand and option, with help and defaults
    hints.py    "did you mean" on a typo; a name where the run folder goes
    formats.py  names files in; text, CSV and JSON out
    main.py     the commands and main(argv)

Top of the stack: may import anything in namelab.
"""

from .main import main

__all__ = ["main"]
