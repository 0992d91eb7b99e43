"""xarray backend: ``xr.open_dataset("scan.ptyd", engine="ptyd")`` returns the lazy Scan."""

from __future__ import annotations

import os
from typing import Any, Iterable

import xarray as xr
from xarray.backends import BackendEntrypoint

from .reader import open_ptyd


class PtydBackendEntrypoint(BackendEntrypoint):
    """Open ptypy/ptydask ``.ptyd`` files lazily (frames stay on disk as Dask arrays)."""

    description = "Open ptypy .ptyd files as a lazy ptydask Scan"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "allow_external_links")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        allow_external_links: bool = False,
    ) -> xr.Dataset:
        scan = open_ptyd(filename_or_obj, allow_external_links=allow_external_links)
        if drop_variables:
            scan = scan.drop_vars(drop_variables, errors="ignore")
        return scan

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            return os.fspath(filename_or_obj).endswith(".ptyd")
        except TypeError:
            return False
