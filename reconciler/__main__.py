"""`python -m reconciler`: the same entry point as the `wnr` script."""

import sys

from reconciler.cli import main

sys.exit(main())
