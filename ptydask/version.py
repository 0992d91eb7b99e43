"""The version of ptydask, written once (setuptools reads it from here: ``[tool.setuptools.dynamic]``)."""

__version__ = "0.1.0"
