"""The ``.ptyd`` format: h5rw-tagged encoding, writer, lazy reader, xarray backend."""

from .reader import open_ptyd
from .writer import SAVE_MODES, to_ptyd

__all__ = ["open_ptyd", "to_ptyd", "SAVE_MODES"]
