"""The ``namelab`` command line: the parser, one function per subcommand, output formats.

    main.py   build_parser, the commands and main(argv)

Top of the stack: may import anything in namelab.
"""

from .main import main

__all__ = ["main"]
