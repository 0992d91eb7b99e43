"""The ``.ptyd`` format: h5rw-tagged encoding, options, plan, sink, writer, lazy reader, xarray backend."""

from .live_writer import LiveWriter
from .options import SAVE_MODES, WriteOptions
from .reader import open_ptyd
from .sink import PtydSink
from .writer import to_ptyd

__all__ = ["open_ptyd", "to_ptyd", "LiveWriter", "SAVE_MODES", "WriteOptions", "PtydSink"]
