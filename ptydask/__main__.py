"""``python -m ptydask``: the ``ptydask`` command."""

import sys

from .cli import main

sys.exit(main())
