"""ptydask benchmarks: ``python -m benchmarks --help``. Results are written to ``benchmarks/RESULTS.md``."""
