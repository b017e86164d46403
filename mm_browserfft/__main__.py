"""``python -m mm_browserfft``: the same as the ``mm-browserfft`` console script."""

import sys

from .cli import main

sys.exit(main())
