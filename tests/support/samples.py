"""Real published OME-Zarr 0.4 metadata from ``../shared/ngff-samples/``, made into datasets.

Every ``.zgroup``/``.zattrs``/``.zarray`` is copied byte for byte; each array then receives
synthetic pixels written through zarr-python *into the recorded ``.zarray``* (never re-created),
so shape, chunks, dtype, compressor, fill_value, dimension_separator, order and filters are
exactly what was published. By default only a sparse subset of chunks is written (the rest are
missing and mean ``fill_value``); ``full_size=True`` writes every chunk (for benchmarks).

Pixels are a function of the global pixel coordinate (see :func:`pattern_block`), so a chunk
written to the wrong place, a transposed axis or a lost chunk shows up as a value mismatch.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tests.support.builders import (
    chunk_aligned_regions,
    image_label_metadata,
    ome_xml_document,
    read_json,
    write_anndata_table,
    write_group,
    write_json,
    write_ome_group,
)

#: ``/work/shared`` next to the repository (``../shared`` seen from the repo root).
SHARED: Path = Path(__file__).resolve().parents[2].parent / "shared"
SAMPLES: Path = SHARED / "ngff-samples"
IDR_IMAGE = SAMPLES / "idr/v0.4/idr0076A/10501752.zarr"
IDR_BF2RAW = SAMPLES / "idr/v0.4/idr0079A/idr0079_images.zarr"
FRACTAL_HCS = SAMPLES / "fractal_hcs_v04/hcs_example.ome.zarr"
METADATA_NAMES = (".zgroup", ".zattrs", ".zarray")
_PRIMES = (7919, 104729, 31, 3, 1)


def require_shared() -> Path:
    """Return :data:`SAMPLES`, or skip the calling test when ``../shared`` is absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES} (they live in ../shared)")
    return SAMPLES


def pattern_block(
    dtype: np.dtype[Any], start: Sequence[int], shape: Sequence[int], salt: int = 0
) -> np.ndarray:
    """Synthetic pixels of a region: a weighted sum of the global coordinates, wrapped.

    ``start``/``shape`` give the region in array coordinates; ``salt`` separates arrays.
    Built by broadcasting one axis at a time in int32 (inner axes first, length-1 axes folded
    into a scalar), so a large block costs a few passes, not one per axis.
    """
    ndim = len(shape)
    weights = _PRIMES[-ndim:] if ndim <= len(_PRIMES) else (1,) * ndim
    if dtype.kind in "iu":
        modulus = min(int(np.iinfo(dtype).max), 65521)
    elif dtype.kind == "f":
        modulus = 4093
    else:
        raise ValueError(f"no synthetic pattern for dtype {dtype}")
    offset = salt % modulus
    for s, n, w in zip(start, shape, weights, strict=True):
        if n == 1:
            offset = (offset + s * w) % modulus
    total = np.full((1,) * ndim, offset, dtype=np.int32)
    for axis in range(ndim - 1, -1, -1):
        n = shape[axis]
        if n == 1:
            continue
        coord = (np.arange(start[axis], start[axis] + n, dtype=np.int64) * weights[axis]) % modulus
        total = total + coord.astype(np.int32).reshape([n if i == axis else 1 for i in range(ndim)])
        np.subtract(total, modulus, out=total, where=total >= modulus)
    total = np.broadcast_to(total, tuple(shape))
    if dtype.kind == "f":
        return (total * 0.25).astype(dtype)
    return total.astype(dtype)


def sparse_chunk_indices(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """The chunks written by default: first and last along leading axes, a checkerboard in y/x.

    Leaves many chunks missing (they read as fill_value) while touching every level, the first
    and last plane/channel, and the array's ragged edge chunks.
    """
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)]
    lead = [sorted({0, n - 1}) for n in counts[:-2]]
    plane = [(iy, ix) for iy in range(counts[-2]) for ix in range(counts[-1]) if (iy + ix) % 2 == 0]
    for head in itertools.product(*lead):
        for tail in plane:
            yield (*head, *tail)


def fill_array(array_dir: Path, *, full_size: bool, salt: int = 0) -> int:
    """Write synthetic pixels into the existing v2 array at ``array_dir``; return chunks written.

    The array is opened (not re-created), so its recorded ``.zarray`` is left as it stands.
    """
    arr = zarr.open_array(str(array_dir), mode="r+", zarr_format=2)
    shape, chunks = arr.shape, arr.chunks
    regions: Iterator[tuple[slice, ...]]
    if full_size:
        # whole-chunk slabs of up to 64 MiB: one call encodes many chunks (in parallel)
        regions = chunk_aligned_regions(shape, chunks, 4, budget=32 * 2**20)
    else:
        regions = (
            tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(idx, chunks, shape, strict=True)
            )
            for idx in sparse_chunk_indices(shape, chunks)
        )
    written = 0
    for region in regions:
        start = [r.start for r in region]
        size = [r.stop - r.start for r in region]
        arr[region] = pattern_block(arr.dtype, start, size, salt)
        written += math.prod(math.ceil(n / c) for n, c in zip(size, chunks, strict=True))
    return written


def copy_metadata_tree(src: Path, dest: Path) -> list[Path]:
    """Copy every ``.zgroup/.zattrs/.zarray`` of ``src`` to ``dest``; return the array dirs."""
    arrays: list[Path] = []
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.name in METADATA_NAMES:
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # contents only: the shared copies are read-only
            if path.name == ".zarray":
                arrays.append(target.parent)
    return arrays


def materialize(src: Path, dest: Path, *, full_size: bool) -> Path:
    """Copy a recorded tree's metadata to ``dest`` and give every array synthetic pixels."""
    require_shared()
    for salt, array_dir in enumerate(copy_metadata_tree(src, dest)):
        fill_array(array_dir, full_size=full_size, salt=salt)
    return dest


def add_missing_label_images(image_dir: Path, *, full_size: bool) -> list[Path]:
    """Create label images that ``labels/.zattrs`` lists but the recording lacks.

    Each gets ``image-label`` metadata and a ``multiscales`` with the parent's axes and number
    of levels; arrays copy the parent level's ``.zarray`` with the channel axis set to 1 and
    dtype ``<u2`` (labels are unsigned integers).
    """
    labels_attrs = image_dir / "labels" / ".zattrs"
    if not labels_attrs.exists():
        return []
    parent = read_json(image_dir / ".zattrs")["multiscales"][0]
    axes = [a["name"] for a in parent["axes"]]
    created: list[Path] = []
    for name in read_json(labels_attrs)["labels"]:
        label_dir = image_dir / "labels" / name
        if (label_dir / ".zattrs").exists():
            continue
        multiscales = {k: v for k, v in parent.items() if k != "name"}
        multiscales["name"] = f"label {name}"
        write_group(
            label_dir,
            {"image-label": image_label_metadata([1, 2, 3]), "multiscales": [multiscales]},
        )
        for ds in parent["datasets"]:
            meta = read_json(image_dir / ds["path"] / ".zarray")
            meta["dtype"] = "<u2"
            meta["fill_value"] = 0
            for i, a in enumerate(axes):
                if a == "c":
                    meta["shape"][i] = 1
                    meta["chunks"][i] = 1
            write_json(label_dir / ds["path"] / ".zarray", meta)
            fill_array(label_dir / ds["path"], full_size=full_size, salt=len(created) + 17)
        created.append(label_dir)
    return created


def materialize_idr_image(dest: Path, *, full_size: bool = False) -> Path:
    """IDR idr0076A/10501752: 0.4 image, f8, 50 channels, chunks 1,494,464, 4 levels + label."""
    materialize(IDR_IMAGE, dest, full_size=full_size)
    add_missing_label_images(dest, full_size=full_size)
    return dest


def materialize_idr_bf2raw(dest: Path, *, full_size: bool = False) -> Path:
    """IDR idr0079A: bioformats2raw.layout 3, series 0-2 × 6 levels (chunk > shape at level 0).

    Adds what the recording lacks: label images ``0`` of series 0 and 2, and an ``OME/`` group
    with ``series`` ["0","1","2"] and a METADATA.ome.xml.
    """
    materialize(IDR_BF2RAW, dest, full_size=full_size)
    series = sorted((p.name for p in dest.iterdir() if p.is_dir() and p.name.isdigit()), key=int)
    for s in series:
        add_missing_label_images(dest / s, full_size=full_size)
    if not (dest / "OME").exists():
        write_ome_group(dest, series, xml=ome_xml_document(len(series)))
    return dest


def materialize_fractal_hcs(dest: Path, *, full_size: bool = False) -> Path:
    """Fractal HCS plate (well B/03, field 0, 5 levels, uint16 chunk 1,1,2160,2560).

    The recording has no ``tables/`` group, so a small AnnData-like one is added under the
    field image (where Fractal writes it): ``B/03/0/tables/nuclei``.
    """
    materialize(FRACTAL_HCS, dest, full_size=full_size)
    field = dest / "B" / "03" / "0"
    if not (field / "tables").exists():
        write_anndata_table(field / "tables", "nuclei")
    return dest
