"""``python -m ptydask.recipe``: print the generated recipe reference (``docs/recipe.md``)."""

import sys

from .docs import render_docs

sys.stdout.write(render_docs())
