"""Pure metadata migration: Zarr v2 array documents and OME-Zarr 0.4 attributes to v3 / 0.5."""
