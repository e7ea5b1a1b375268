"""python -m namelab.cli: the same as the namelab command."""

import sys

from . import main

sys.exit(main())
