"""``python -m namelab ...``, as torchrun runs it: ``torchrun --nproc-per-node 2 -m namelab train ...``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
