"""The one registry of ``scan.data`` parameters (see :mod:`.registry`) and their value kinds (:mod:`.kinds`).

Recipes, :func:`ptydask.steps.prepare`, ``PtyScan``, the ptypy plugin and
``docs/recipe.md`` all take their parameter names, defaults and allowed values
from :data:`PARAMS`.
"""

from .kinds import Invalid, Kind, describe_all, show
from .registry import PARAMS, VOCABULARIES, Param, defaults, defaults_text, param, prepare_only, vocabulary

__all__ = ["PARAMS", "VOCABULARIES", "Param", "Kind", "Invalid", "defaults", "defaults_text", "param",
           "prepare_only", "vocabulary", "describe_all", "show"]
