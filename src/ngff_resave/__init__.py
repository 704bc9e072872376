"""ngff-resave: convert OME-Zarr 0.4 (Zarr v2) hierarchies to OME-Zarr 0.5 (Zarr v3, sharded)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ngff-resave")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
