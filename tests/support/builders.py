"""Builders of small, deterministic OME-Zarr **0.4** (Zarr v2) inputs, written on disk.

Arrays are written with zarr-python 3 in ``zarr_format=2`` mode, group metadata (``.zgroup``,
``.zattrs``) as plain JSON, so every byte of metadata is under the test's control. Pixels come
from a seeded ``numpy`` generator: two calls with the same arguments write identical trees.

Also here: :func:`hash_tree` (proves an input was not modified) and
:func:`naive_convert`, a deliberately simple 0.4 → 0.5 converter used only to give
the checkers in :mod:`tests.support.checks` a known-good output to pass and then to break.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from numcodecs.abc import Codec

AXIS_TYPES: dict[str, str] = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
AXIS_UNITS: dict[str, str] = {
    "t": "second",
    "z": "micrometer",
    "y": "micrometer",
    "x": "micrometer",
}
SPATIAL_AXES = frozenset("zyx")
COMPRESSORS = ("blosc-lz4", "blosc-zstd", "zstd", "gzip", "zlib", None)
CREATOR = {"name": "ngff-resave-tests", "version": "0"}

#: Default shape per axis letter when ``shape`` is not given.
_DEFAULT_SIZE: dict[str, int] = {"t": 2, "c": 2, "z": 5, "y": 40, "x": 36}
_DEFAULT_CHUNK: dict[str, int] = {"t": 1, "c": 1, "z": 2, "y": 16, "x": 16}


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path``, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    """Read one JSON document."""
    with path.open() as f:
        return json.load(f)


def write_group(path: Path, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a Zarr v2 group: ``.zgroup`` and, when ``attrs`` is given, ``.zattrs``."""
    write_json(path / ".zgroup", {"zarr_format": 2})
    if attrs is not None:
        write_json(path / ".zattrs", dict(attrs))
    return path


def make_compressor(name: str | None) -> Codec | None:
    """Return the numcodecs compressor named by one of :data:`COMPRESSORS`."""
    if name is None:
        return None
    if name == "blosc-lz4":
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    if name == "blosc-zstd":
        return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
    if name == "zstd":
        return numcodecs.Zstd(level=3)
    if name == "gzip":
        return numcodecs.GZip(level=5)
    if name == "zlib":
        return numcodecs.Zlib(level=5)
    raise ValueError(f"unknown compressor {name!r}; use one of {COMPRESSORS}")


def make_filters(names: Sequence[str | Codec], dtype: np.dtype[Any]) -> list[Codec] | None:
    """Return numcodecs filters: ``"delta"`` or ready codec objects; ``None`` when empty."""
    out: list[Codec] = []
    for f in names:
        if isinstance(f, Codec):
            out.append(f)
        elif f == "delta":
            out.append(numcodecs.Delta(dtype=dtype.str))
        else:
            raise ValueError(f"unknown filter {f!r}; use 'delta' or a numcodecs codec")
    return out or None


def random_pixels(shape: Sequence[int], dtype: str | np.dtype[Any], seed: int) -> np.ndarray:
    """Deterministic pixels of ``dtype``: integers in a small range, floats in [0, 100)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    data: np.ndarray
    if dt.kind in "iu":
        high = min(int(np.iinfo(dt).max), 4000)
        data = rng.integers(0, high, size=tuple(shape), endpoint=True)
    elif dt.kind == "f":
        data = rng.random(size=tuple(shape)) * 100.0
    elif dt.kind == "b":
        data = rng.integers(0, 1, size=tuple(shape), endpoint=True).astype(bool)
    else:
        raise ValueError(f"unsupported dtype {dt}")
    return data.astype(dt)


def level_shape(shape: Sequence[int], axes: str, level: int) -> tuple[int, ...]:
    """Shape of pyramid ``level``: spatial axes halved (rounded up) ``level`` times."""
    return tuple(
        math.ceil(n / 2**level) if a in SPATIAL_AXES else n
        for n, a in zip(shape, axes, strict=True)
    )


def downsample(data: np.ndarray, axes: str, level: int) -> np.ndarray:
    """Stride-2**level subsampling of the spatial axes (matches :func:`level_shape`)."""
    step = 2**level
    index = tuple(slice(None, None, step) if a in SPATIAL_AXES else slice(None) for a in axes)
    return data[index]


def axes_metadata(axes: str) -> list[dict[str, str]]:
    """0.4 ``axes`` objects (name, type, unit where it has one) for axis letters."""
    out: list[dict[str, str]] = []
    for a in axes:
        entry = {"name": a, "type": AXIS_TYPES[a]}
        if a in AXIS_UNITS:
            entry["unit"] = AXIS_UNITS[a]
        out.append(entry)
    return out


def multiscales_metadata(axes: str, levels: int, *, name: str = "image") -> dict[str, Any]:
    """One 0.4 ``multiscales`` entry: datasets ``"0".."levels-1"``, scale doubling in space."""
    datasets = []
    for level in range(levels):
        scale = [
            (0.5 * 2**level if a in SPATIAL_AXES else 1.0) for a in axes
        ]  # physical pixel size 0.5 µm at level 0
        datasets.append(
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    return {
        "version": "0.4",
        "name": name,
        "axes": axes_metadata(axes),
        "datasets": datasets,
        "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}],
        "type": "stride-2 subsampling",
        "metadata": {"method": "numpy slicing", "version": numpy_version()},
    }


def numpy_version() -> str:
    """The numpy version string (metadata of the synthetic downsampling)."""
    return str(np.__version__)


def omero_metadata(n_channels: int, dtype: np.dtype[Any]) -> dict[str, Any]:
    """An ``omero`` block like IDR's (with ``"version": "0.4"``, ``id``, ``rdefs``)."""
    dmax = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 100.0
    colors = ["00FF00", "FF0000", "0000FF", "FFFFFF"]
    channels = [
        {
            "active": True,
            "coefficient": 1.0,
            "color": colors[i % len(colors)],
            "family": "linear",
            "inverted": False,
            "label": f"channel {i}",
            "window": {"start": 0.0, "end": dmax / 2, "min": 0.0, "max": dmax},
        }
        for i in range(n_channels)
    ]
    return {
        "id": 1,
        "name": "synthetic",
        "version": "0.4",
        "channels": channels,
        "rdefs": {"defaultT": 0, "defaultZ": 0, "model": "color"},
    }


def chunk_grid(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every chunk grid index of an array, in C order."""
    counts = [math.ceil(s / c) if s else 0 for s, c in zip(shape, chunks, strict=True)]
    yield from np.ndindex(*counts)


def chunk_aligned_regions(
    shape: Sequence[int], chunks: Sequence[int], itemsize: int, budget: int = 64 * 2**20
) -> Iterator[tuple[slice, ...]]:
    """Regions covering an array, each whole along the last two axes and whole input chunks
    along the leading ones, grown from the innermost leading axis up to ``budget`` bytes."""
    ndim = len(shape)
    if ndim == 0:
        yield ()
        return
    lead = max(ndim - 2, 0)
    block = [*chunks[:lead], *shape[lead:]]
    for axis in range(lead - 1, -1, -1):
        per = max(1, math.prod(block) * itemsize)
        block[axis] = min(shape[axis], block[axis] * max(1, budget // per))
        if block[axis] < shape[axis]:
            break
    block = [max(b, 1) for b in block]
    counts = [math.ceil(s / b) for s, b in zip(shape, block, strict=True)]
    for idx in np.ndindex(*counts):
        yield tuple(
            slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(idx, block, shape, strict=True)
        )


def chunk_key(index: Sequence[int], separator: str) -> str:
    """The Zarr v2 chunk key of a grid index (``"0"`` for 0-d arrays)."""
    return separator.join(str(i) for i in index) if len(index) else "0"


def present_chunk_keys(array_dir: Path) -> set[str]:
    """Chunk keys (``/``-joined relative paths, then with the array's separator) on disk."""
    meta = read_json(array_dir / ".zarray")
    sep = meta.get("dimension_separator") or "."
    keys: set[str] = set()
    for p in array_dir.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            keys.add(p.relative_to(array_dir).as_posix().replace("/", sep))
    return keys


def expected_chunk_keys(array_dir: Path) -> set[str]:
    """All chunk keys the array's grid defines (written or not)."""
    meta = read_json(array_dir / ".zarray")
    sep = meta.get("dimension_separator") or "."
    return {chunk_key(i, sep) for i in chunk_grid(meta["shape"], meta["chunks"])}


def remove_some_chunks(array_dir: Path, *, every: int = 3) -> list[str]:
    """Delete the chunk files whose linear grid index ``% every == 1`` (they then mean fill).

    Returns the deleted keys. Arrays with fewer than two chunks are left whole.
    """
    meta = read_json(array_dir / ".zarray")
    sep = meta.get("dimension_separator") or "."
    grid = list(chunk_grid(meta["shape"], meta["chunks"]))
    if len(grid) < 2:
        return []
    removed: list[str] = []
    for n, idx in enumerate(grid):
        if n % every == 1:
            key = chunk_key(idx, sep)
            path = array_dir / key.replace(sep, "/") if sep == "/" else array_dir / key
            if path.exists():
                path.unlink()
                removed.append(key)
    return removed


def write_v2_array(
    path: Path,
    data: np.ndarray,
    *,
    chunks: Sequence[int],
    compressor: str | Codec | None = "blosc-lz4",
    dimension_separator: str = "/",
    fill_value: Any = 0,
    order: str = "C",
    filters: Sequence[str | Codec] = (),
) -> Path:
    """Write ``data`` as a Zarr v2 array at ``path`` (its ``.zarray`` says what was asked)."""
    dt = data.dtype
    codec = compressor if isinstance(compressor, Codec) or compressor is None else None
    if isinstance(compressor, str):
        codec = make_compressor(compressor)
    arr = zarr.create_array(
        store=str(path),
        shape=data.shape,
        chunks=tuple(min(c, max(s, 1)) for c, s in zip(chunks, data.shape, strict=True)),
        dtype=dt,
        zarr_format=2,
        compressors=codec,
        filters=make_filters(filters, dt),
        fill_value=fill_value,
        order=order,  # type: ignore[arg-type]
        chunk_key_encoding={"name": "v2", "separator": dimension_separator},
        overwrite=True,
    )
    arr[...] = data
    return path


def build_image(
    root: Path,
    *,
    axes: str = "czyx",
    shape: Sequence[int] | None = None,
    chunks: Sequence[int] | None = None,
    dtype: str = "u2",
    compressor: str | None = "blosc-lz4",
    dimension_separator: str = "/",
    levels: int = 2,
    fill_value: Any = 0,
    missing_chunks: bool = False,
    order: str = "C",
    filters: Sequence[str | Codec] = (),
    with_labels: bool = False,
    omero: bool = True,
    extra_attrs: Mapping[str, Any] | None = None,
    seed: int = 0,
    name: str = "image",
) -> Path:
    """Write a 0.4 image (``multiscales`` + optional ``omero``, ``_creator``) at ``root``.

    Level ``k`` is level 0 subsampled by ``2**k`` in z/y/x (shapes need not divide the chunks).
    With a NaN ``fill_value`` a few pixels are NaN too. ``missing_chunks`` deletes every third
    chunk file of every level after writing (see :func:`remove_some_chunks`).
    """
    if shape is None:
        shape = [_DEFAULT_SIZE[a] for a in axes]
    if chunks is None:
        chunks = [_DEFAULT_CHUNK[a] for a in axes]
    if not (len(axes) == len(shape) == len(chunks)):
        raise ValueError(f"axes {axes!r}, shape {shape} and chunks {chunks} differ in length")
    dt = np.dtype(dtype)
    data = random_pixels(shape, dt, seed)
    if dt.kind == "f" and isinstance(fill_value, float) and math.isnan(fill_value):
        flat = data.reshape(-1)
        flat[:: max(1, flat.size // 7)] = np.nan
    attrs: dict[str, Any] = {"_creator": dict(CREATOR)}
    attrs["multiscales"] = [multiscales_metadata(axes, levels, name=name)]
    if omero:
        n_channels = shape[axes.index("c")] if "c" in axes else 1
        attrs["omero"] = omero_metadata(n_channels, dt)
    if extra_attrs:
        attrs.update(extra_attrs)
    write_group(root, attrs)
    for level in range(levels):
        array_dir = write_v2_array(
            root / str(level),
            np.ascontiguousarray(downsample(data, axes, level)),
            chunks=chunks,
            compressor=compressor,
            dimension_separator=dimension_separator,
            fill_value=fill_value,
            order=order,
            filters=filters,
        )
        if missing_chunks:
            remove_some_chunks(array_dir)
    if with_labels:
        add_label_image(root, "cells", axes=axes, shape=shape, chunks=chunks, levels=levels)
    return root


def image_label_metadata(values: Sequence[int]) -> dict[str, Any]:
    """A 0.4 ``image-label`` block with colors, properties and ``source``."""
    return {
        "version": "0.4",
        "colors": [
            {"label-value": v, "rgba": [(37 * v) % 256, (91 * v) % 256, (53 * v) % 256, 255]}
            for v in values
        ],
        "properties": [
            {"label-value": v, "class": f"cell {v}", "area (pixels)": 10 * v} for v in values
        ],
        "source": {"image": "../../"},
    }


def add_label_image(
    image_root: Path,
    label_name: str,
    *,
    axes: str,
    shape: Sequence[int],
    chunks: Sequence[int],
    levels: int,
    dtype: str = "<u4",
    n_labels: int = 5,
    seed: int = 7,
) -> Path:
    """Add ``labels/<label_name>`` (an ``image-label`` + ``multiscales``) to a 0.4 image.

    The label keeps the parent's axes with the channel axis of size 1, and as many levels.
    """
    labels_dir = image_root / "labels"
    labels_attrs_path = labels_dir / ".zattrs"
    existing: list[str] = (
        list(read_json(labels_attrs_path).get("labels", [])) if labels_attrs_path.exists() else []
    )
    if label_name not in existing:
        existing.append(label_name)
    write_group(labels_dir, {"labels": existing})
    label_shape = [1 if a == "c" else n for a, n in zip(axes, shape, strict=True)]
    rng = np.random.default_rng(seed)
    data = rng.integers(0, n_labels, size=label_shape, endpoint=True).astype(np.dtype(dtype))
    label_root = labels_dir / label_name
    write_group(
        label_root,
        {
            "image-label": image_label_metadata(list(range(1, n_labels + 1))),
            "multiscales": [multiscales_metadata(axes, levels, name=label_name)],
        },
    )
    for level in range(levels):
        write_v2_array(
            label_root / str(level),
            np.ascontiguousarray(downsample(data, axes, level)),
            chunks=chunks,
            compressor="blosc-zstd",
            fill_value=0,
        )
    return label_root


def build_plate(
    root: Path,
    rows: int = 2,
    cols: int = 2,
    fields: int = 2,
    acquisitions: bool = True,
    with_labels: bool = False,
) -> Path:
    """Write a 0.4 HCS plate: row groups with only ``.zgroup``, wells ``A/1``…, field images.

    With ``acquisitions`` the plate lists two acquisitions and field ``k`` belongs to
    acquisition ``k % 2``.
    """
    row_names = [chr(ord("A") + r) for r in range(rows)]
    col_names = [str(c + 1) for c in range(cols)]
    wells = [
        {"path": f"{r}/{c}", "rowIndex": ri, "columnIndex": ci}
        for ri, r in enumerate(row_names)
        for ci, c in enumerate(col_names)
    ]
    plate: dict[str, Any] = {
        "name": "synthetic plate",
        "version": "0.4",
        "rows": [{"name": r} for r in row_names],
        "columns": [{"name": c} for c in col_names],
        "wells": wells,
        "field_count": fields,
    }
    if acquisitions:
        plate["acquisitions"] = [
            {"id": 0, "name": "cycle 1", "maximumfieldcount": fields, "starttime": 1700000000},
            {"id": 1, "name": "cycle 2", "maximumfieldcount": fields},
        ]
    write_group(root, {"plate": plate, "_creator": dict(CREATOR)})
    for r in row_names:
        write_group(root / r)  # row groups: .zgroup only, as real plates have
    seed = 100
    for well in wells:
        images: list[dict[str, Any]] = []
        for f in range(fields):
            entry: dict[str, Any] = {"path": str(f)}
            if acquisitions:
                entry["acquisition"] = f % 2
            images.append(entry)
            build_image(
                root / str(well["path"]) / str(f),
                axes="cyx",
                shape=(2, 24, 20),
                chunks=(1, 16, 16),
                levels=2,
                with_labels=with_labels,
                seed=seed,
                name=f"{well['path']}/{f}",
            )
            seed += 1
        write_group(root / str(well["path"]), {"well": {"images": images, "version": "0.4"}})
    return root


def ome_xml_document(
    n_series: int, *, size: tuple[int, int, int, int, int] = (36, 40, 5, 2, 1)
) -> str:
    """A small valid OME-XML document (2016-06 schema) with ``n_series`` metadata-only images."""
    sx, sy, sz, sc, st = size
    images = []
    for i in range(n_series):
        channels = "".join(
            f'<Channel ID="Channel:{i}:{c}" SamplesPerPixel="1"><LightPath/></Channel>'
            for c in range(sc)
        )
        images.append(
            f'  <Image ID="Image:{i}" Name="series {i}">\n'
            f'    <Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" Type="uint16" BigEndian="false"'
            f' SizeX="{sx}" SizeY="{sy}" SizeZ="{sz}" SizeC="{sc}" SizeT="{st}">'
            f"{channels}<MetadataOnly/></Pixels>\n"
            "  </Image>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06'
        ' http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd"'
        ' Creator="ngff-resave tests">\n' + "".join(images) + "</OME>\n"
    )


def write_ome_group(root: Path, series: Sequence[str] | None, *, xml: str | None) -> Path:
    """Write the bioformats2raw ``OME/`` group (``series`` attr and METADATA.ome.xml if given)."""
    ome_dir = root / "OME"
    write_group(ome_dir, {"series": list(series)} if series is not None else None)
    if xml is not None:
        (ome_dir / "METADATA.ome.xml").write_text(xml)
    return ome_dir


def build_bioformats2raw(
    root: Path, series: int = 2, explicit_series: bool = True, ome_xml: bool = True
) -> Path:
    """Write a bioformats2raw.layout 3 root: images ``0/``…, and an ``OME/`` group.

    ``explicit_series=False`` leaves the ``series`` attribute out (readers then probe 0, 1, …);
    ``ome_xml=False`` leaves out ``OME/METADATA.ome.xml``.
    """
    write_group(root, {"bioformats2raw.layout": 3})
    for i in range(series):
        build_image(
            root / str(i),
            axes="czyx",
            shape=(2, 5, 40, 36),
            chunks=(1, 2, 16, 16),
            levels=2,
            seed=200 + i,
            name=f"series {i}",
        )
    write_ome_group(
        root,
        [str(i) for i in range(series)] if explicit_series else None,
        xml=ome_xml_document(series) if ome_xml else None,
    )
    return root


def write_anndata_table(tables_dir: Path, name: str = "nuclei", n_obs: int = 12) -> Path:
    """Add an AnnData-like (non-OME) table ``tables/<name>`` with numeric arrays only.

    ``X`` is float32 (n_obs × 3), ``obs/label`` int64, and ``obs/_index``/``var/_index`` are
    strings stored as real AnnData stores them: dtype ``|O`` with the ``vlen-utf8`` filter
    (zarr v3: data type ``string``; tensorstore cannot read it). A fixed-width ``<U`` array is
    avoided on purpose: zarr-python has no stable v3 spelling for it
    (``UnstableSpecificationWarning``).
    """
    attrs_path = tables_dir / ".zattrs"
    names: list[str] = list(read_json(attrs_path).get("tables", [])) if attrs_path.exists() else []
    if name not in names:
        names.append(name)
    write_group(tables_dir, {"tables": names})
    table = tables_dir / name
    write_group(
        table,
        {
            "encoding-type": "anndata",
            "encoding-version": "0.1.0",
            "type": "feature_table",
            "region": {"path": "../labels/cells"},
            "instance_key": "label",
        },
    )
    rng = np.random.default_rng(11)
    x = rng.random((n_obs, 3)).astype("f4")
    write_v2_array(table / "X", x, chunks=(n_obs, 3), compressor="zstd", fill_value=0.0)
    write_json(table / "X" / ".zattrs", {"encoding-type": "array", "encoding-version": "0.2.0"})
    obs_attrs = {
        "_index": "_index",
        "column-order": ["label"],
        "encoding-type": "dataframe",
        "encoding-version": "0.2.0",
    }
    write_group(table / "obs", obs_attrs)
    write_string_array(table / "obs" / "_index", [str(i) for i in range(n_obs)])
    labels = np.arange(1, n_obs + 1, dtype="i8")
    write_v2_array(table / "obs" / "label", labels, chunks=(n_obs,), compressor="zlib")
    var_attrs = {
        "_index": "_index",
        "column-order": [],
        "encoding-type": "dataframe",
        "encoding-version": "0.2.0",
    }
    write_group(table / "var", var_attrs)
    write_string_array(table / "var" / "_index", ["area", "mean", "max"])
    return table


def write_string_array(path: Path, values: Sequence[str]) -> Path:
    """A 1-D v2 string array as AnnData writes it: ``|O`` + ``vlen-utf8`` filter."""
    arr = zarr.create_array(
        store=str(path),
        shape=(len(values),),
        chunks=(len(values),),
        dtype=str,
        zarr_format=2,
        compressors=None,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        overwrite=True,
    )
    arr[...] = np.array(values, dtype=object)
    write_json(path / ".zattrs", {"encoding-type": "string-array", "encoding-version": "0.2.0"})
    return path


def build_with_tables(root: Path) -> Path:
    """A 0.4 image with a label and a non-OME AnnData-like ``tables/`` group."""
    build_image(root, axes="cyx", shape=(2, 32, 30), chunks=(1, 16, 16), with_labels=True)
    write_anndata_table(root / "tables", "nuclei")
    return root


def hash_tree(path: Path, exclude: Sequence[Path] = ()) -> str:
    """SHA-256 over a tree: sorted relative paths, file bytes, symlink targets, directories.

    Any added, removed or renamed entry, any changed byte, changes the digest. Entries in
    ``exclude`` (e.g. an output inside the tree) are skipped.
    """
    skip = {p.resolve() for p in exclude}
    h = hashlib.sha256()
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if (d / n).is_symlink() or (d / n).resolve() not in skip]
        for n in dirnames + filenames:
            if not (d / n).is_symlink() and (d / n).resolve() in skip:
                continue
            entries.append(((d / n).relative_to(path).as_posix(), d / n))
    for rel, p in sorted(entries):
        if p.is_symlink():
            h.update(b"L\0" + rel.encode() + b"\0" + os.readlink(p).encode() + b"\0")
        elif p.is_dir():
            h.update(b"D\0" + rel.encode() + b"\0")
        else:
            h.update(b"F\0" + rel.encode() + b"\0")
            with p.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


#: 0.4 attribute keys that move under ``attributes.ome`` in 0.5 (their own ``version`` dropped).
OME_KEYS = ("multiscales", "omero", "image-label", "labels", "plate", "well")
OME_TOP_KEYS = ("bioformats2raw.layout", "series")


def v05_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """0.4 group attributes → 0.5 attributes: OME keys under ``ome`` with ``version: "0.5"``.

    Per-object ``version`` fields are dropped (0.5 has one ``ome.version``); other keys
    (``_creator``, AnnData's ``encoding-type``…) stay at the top level.
    """
    out: dict[str, Any] = {}
    ome: dict[str, Any] = {}
    for key, value in attrs.items():
        if key == "multiscales":
            ome[key] = [{k: v for k, v in ms.items() if k != "version"} for ms in value]
        elif key in OME_KEYS and isinstance(value, dict):
            ome[key] = {k: v for k, v in value.items() if k != "version"}
        elif key in OME_KEYS or key in OME_TOP_KEYS:
            ome[key] = value
        else:
            out[key] = value
    if ome:
        out["ome"] = {"version": "0.5", **ome}
    return out


def naive_convert(in_root: Path, out_root: Path, *, shard_factor: int = 2) -> Path:
    """Convert a whole 0.4 tree to 0.5 the simplest way: whole-array copies, group by group.

    A reference for the checkers' own tests only (not the project's converter): arrays are
    sharded with ``shard = chunk * shard_factor`` (rounded to whole chunks), ``dimension_names``
    come from the parent's axes, metadata moves under ``attributes.ome``, other files (such as
    ``OME/METADATA.ome.xml``) are copied as they are.
    """
    axes_by_array: dict[Path, list[str]] = {}
    for zattrs in sorted(in_root.rglob(".zattrs")):
        attrs = read_json(zattrs)
        for ms in attrs.get("multiscales", []) if isinstance(attrs, dict) else []:
            for ds in ms["datasets"]:
                axes_by_array[zattrs.parent / ds["path"]] = [a["name"] for a in ms["axes"]]
    for dirpath, _dirs, files in os.walk(in_root):
        src_dir = Path(dirpath)
        dst_dir = out_root / src_dir.relative_to(in_root)
        attrs = read_json(src_dir / ".zattrs") if ".zattrs" in files else {}
        if ".zgroup" in files:
            zarr.open_group(str(dst_dir), mode="w", zarr_format=3, attributes=v05_attributes(attrs))
        elif ".zarray" in files:
            _naive_copy_array(src_dir, dst_dir, axes_by_array.get(src_dir), attrs, shard_factor)
        for name in files:
            if not name.startswith(".") and ".zarray" not in files:
                dst_dir.mkdir(parents=True, exist_ok=True)
                (dst_dir / name).write_bytes((src_dir / name).read_bytes())
    return out_root


def _naive_copy_array(
    src_dir: Path,
    dst_dir: Path,
    axes: list[str] | None,
    attrs: dict[str, Any],
    shard_factor: int,
) -> None:
    src = zarr.open_array(str(src_dir), mode="r", zarr_format=2)
    shards = tuple(
        math.ceil(min(max(n, 1), c * shard_factor) / c) * c
        for n, c in zip(src.shape, src.chunks, strict=True)
    )
    dst = zarr.create_array(
        str(dst_dir),
        shape=src.shape,
        chunks=src.chunks,
        shards=shards,
        dtype=src.dtype.newbyteorder("<") if src.dtype.kind in "biufc" else src.dtype,
        fill_value=src.fill_value if src.fill_value is not None else 0,
        dimension_names=axes,
        attributes=attrs,
        zarr_format=3,
        overwrite=True,
    )
    dst[...] = src[...]
