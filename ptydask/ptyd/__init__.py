"""The ``.ptyd`` format: h5rw-tagged encoding, writer, lazy reader, xarray backend."""

from .live_writer import LiveWriter
from .reader import open_ptyd
from .writer import SAVE_MODES, to_ptyd

__all__ = ["open_ptyd", "to_ptyd", "LiveWriter", "SAVE_MODES"]
