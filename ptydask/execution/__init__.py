"""Where the blocks of a pass are computed: one :class:`Runner` chosen once per call and passed down."""

from .runner import DistributedRunner, Runner, ThreadRunner, resolve_runner

__all__ = ["Runner", "ThreadRunner", "DistributedRunner", "resolve_runner"]
