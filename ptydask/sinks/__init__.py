"""Sinks other than ``.ptyd`` (:mod:`ptydask.ptyd`), on the same protocol: ``open / write_block /
commit(meta, weights) / abort``, driven by :func:`ptydask.execution.passes.run_blocks`."""

from .cxi import CxiSink, to_cxi

__all__ = ["CxiSink", "to_cxi"]
