"""Zarr v2 array metadata (``.zarray``) and its Zarr v3 (``zarr.json``) counterpart.

Pure functions on plain dicts: no I/O. The v2 rules come from the Zarr v2 storage
specification, the v3 ones from the Zarr v3 core specification and the sharding codec
extension ("sharding_indexed").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ngff_resave.errors import InputError

#: Zarr v3 core data types by NumPy kind+itemsize (endianness travels in the ``bytes`` codec).
_V3_DATA_TYPES = {
    "b1": "bool",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
    "c8": "complex64",
    "c16": "complex128",
}

#: numcodecs Blosc ``shuffle`` integers to the v3 ``blosc`` codec's names.
_BLOSC_SHUFFLE = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}


@dataclass(frozen=True)
class V2Array:
    """The parts of a v2 ``.zarray`` the converter needs, checked."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str  # NumPy dtype string as in the v2 document, e.g. "<u2", ">f4", "|u1"
    fill_value: Any  # JSON form as stored in v2 (number, "NaN", "Infinity", None, bool)
    order: str  # "C" or "F"
    compressor: Mapping[str, Any] | None
    filters: tuple[Mapping[str, Any], ...]
    separator: str  # "." or "/"

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype)

    @property
    def itemsize(self) -> int:
        return int(self.numpy_dtype.itemsize)

    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))

    def chunk_key(self, index: Sequence[int]) -> str:
        """The v2 storage key of the chunk at grid ``index`` (relative to the array)."""
        if not index:
            return "0"
        return self.separator.join(str(i) for i in index)


def _positive_ints(value: Any, name: str, where: str, *, allow_zero: bool) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InputError(f"{where}: '{name}' must be a list of integers, got {value!r}")
    low = 0 if allow_zero else 1
    if any(v < low for v in value):
        raise InputError(f"{where}: '{name}' has a value below {low}: {value}")
    return tuple(value)


def parse_v2_array(doc: Any, where: str) -> V2Array:
    """Check a parsed ``.zarray`` document and return it as a :class:`V2Array`.

    ``where`` names the file in error messages. Implements the v2 spec's required keys:
    ``zarr_format`` (2), ``shape``, ``chunks``, ``dtype``, ``compressor``, ``fill_value``,
    ``order``, ``filters``; ``dimension_separator`` defaults to ``"."``.
    """
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("zarr_format")
    if fmt != 2:
        raise InputError(f"{where}: zarr_format is {fmt!r}, expected 2 (a Zarr v2 array)")
    shape = _positive_ints(doc.get("shape"), "shape", where, allow_zero=True)
    chunks = _positive_ints(doc.get("chunks"), "chunks", where, allow_zero=False)
    if len(shape) != len(chunks):
        raise InputError(f"{where}: shape has {len(shape)} dimensions but chunks has {len(chunks)}")
    dtype = doc.get("dtype")
    if not isinstance(dtype, str):
        raise InputError(f"{where}: dtype must be a string, got {dtype!r}")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise InputError(f"{where}: unknown dtype {dtype!r}") from exc
    if np_dtype.kind + str(np_dtype.itemsize) not in _V3_DATA_TYPES or np_dtype.fields:
        raise InputError(
            f"{where}: dtype {dtype!r} has no Zarr v3 core equivalent; only bool, integer, "
            "float and complex arrays can be converted"
        )
    order = doc.get("order", "C")
    if order not in ("C", "F"):
        raise InputError(f"{where}: order must be 'C' or 'F', got {order!r}")
    compressor = doc.get("compressor")
    if compressor is not None and not (
        isinstance(compressor, dict) and isinstance(compressor.get("id"), str)
    ):
        raise InputError(f"{where}: compressor must be null or an object with an 'id'")
    filters_doc = doc.get("filters") or []
    if not isinstance(filters_doc, list) or not all(
        isinstance(f, dict) and isinstance(f.get("id"), str) for f in filters_doc
    ):
        raise InputError(f"{where}: filters must be null or a list of objects with an 'id'")
    separator = doc.get("dimension_separator", ".") or "."
    if separator not in (".", "/"):
        raise InputError(f"{where}: dimension_separator must be '.' or '/', got {separator!r}")
    array = V2Array(
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=doc.get("fill_value"),
        order=order,
        compressor=compressor,
        filters=tuple(filters_doc),
        separator=separator,
    )
    try:  # a fill value the dtype cannot hold is reported here, with the file
        v3_fill_value(array)
        fill_as_scalar(array)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc
    try:  # e.g. a blosc "clevel" of null: numcodecs accepts it, the v3 codec cannot
        v3_equivalent_codec(array)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(
            f"{where}: compressor {compressor!r} has an invalid parameter ({exc})"
        ) from exc
    return array


def v3_data_type(dtype: np.dtype[Any]) -> str:
    """The Zarr v3 core ``data_type`` name of a NumPy dtype."""
    return _V3_DATA_TYPES[dtype.kind + str(dtype.itemsize)]


def bytes_codec(dtype: np.dtype[Any]) -> dict[str, Any]:
    """The v3 ``bytes`` codec keeping the source byte order (big-endian stays big-endian)."""
    if dtype.itemsize == 1:
        return {"name": "bytes"}
    endian = "big" if dtype.byteorder == ">" else "little"
    if dtype.byteorder == "=":
        endian = "little" if np.little_endian else "big"
    return {"name": "bytes", "configuration": {"endian": endian}}


def _float_json(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def v3_fill_value(v2: V2Array) -> Any:
    """The v3 ``fill_value`` that keeps the v2 one exactly.

    v2 ``null`` means "no fill value": readers (zarr-python) return zeros for missing chunks,
    so 0 (or false) keeps what readers saw. NaN and infinities use the v3 JSON strings.
    """
    dtype = v2.numpy_dtype
    value = v2.fill_value
    if dtype.kind == "b":
        return bool(value) if value is not None else False
    if dtype.kind in "iu":
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"fill_value {value!r} is not valid for dtype {v2.dtype}")
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"fill_value {value!r} is not an integer for dtype {v2.dtype}")
        return int(value)
    if dtype.kind == "f":
        return _float_json(float(fill_as_scalar(v2)))
    # complex
    scalar = complex(fill_as_scalar(v2))
    return [_float_json(scalar.real), _float_json(scalar.imag)]


def fill_as_scalar(v2: V2Array) -> Any:
    """The v2 fill value as a NumPy scalar of the array's dtype (0 for ``null``)."""
    dtype = v2.numpy_dtype
    value = v2.fill_value
    if value is None:
        return dtype.type(0)
    if isinstance(value, str):
        table = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value not in table or dtype.kind not in "fc":
            raise InputError(f"fill_value {value!r} is not valid for dtype {v2.dtype}")
        return dtype.type(table[value])
    try:
        if isinstance(value, list) and dtype.kind == "c" and len(value) == 2:
            return dtype.type(complex(float(value[0]), float(value[1])))
        if not isinstance(value, (bool, int, float)):
            # dtype.type() of a list builds an array, not a scalar: not a fill value.
            raise TypeError(type(value).__name__)
        return dtype.type(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"fill_value {value!r} is not valid for dtype {v2.dtype}") from exc


def v3_equivalent_codec(v2: V2Array) -> tuple[dict[str, Any] | None, str | None]:
    """The v3 compression codec whose encoded bytes equal the v2 compressor's, if any.

    Returns ``(codec, None)`` when the stored v2 chunk bytes are valid v3 inner-chunk bytes
    (``codec`` is ``None`` for uncompressed data), or ``(None, reason)`` when they are not.
    numcodecs Blosc → v3 ``blosc``; Zstd → ``zstd``; GZip → ``gzip``; no compressor → none.
    """
    if v2.filters:
        ids = ", ".join(str(f["id"]) for f in v2.filters)
        return None, f"filters ({ids}) have no Zarr v3 core equivalent"
    if v2.order != "C":
        return None, "order 'F' chunks are transposed; they are re-encoded in C order"
    comp = v2.compressor
    if comp is None:
        return None, None
    cid = comp["id"]
    if cid == "blosc":
        shuffle = comp.get("shuffle", 1)
        if shuffle == -1:  # numcodecs AUTOSHUFFLE: bit-shuffle for 1-byte items, else byte
            shuffle = 2 if v2.itemsize == 1 else 1
        return {
            "name": "blosc",
            "configuration": {
                "cname": comp.get("cname", "lz4"),
                "clevel": int(comp.get("clevel", 5)),
                "shuffle": _BLOSC_SHUFFLE.get(int(shuffle), "shuffle"),
                "typesize": v2.itemsize,
                "blocksize": int(comp.get("blocksize", 0)),
            },
        }, None
    if cid == "zstd":
        return {
            "name": "zstd",
            "configuration": {
                "level": int(comp.get("level", 0)),
                "checksum": bool(comp.get("checksum", False)),
            },
        }, None
    if cid == "gzip":
        return {"name": "gzip", "configuration": {"level": int(comp.get("level", 1))}}, None
    return None, f"compressor '{cid}' has no Zarr v3 core equivalent"


def sharded_array_metadata(
    v2: V2Array,
    *,
    chunks: Sequence[int],
    shards: Sequence[int] | None,
    codec: Mapping[str, Any] | None,
    dimension_names: Sequence[str] | None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The v3 ``zarr.json`` of the converted array.

    With ``shards`` the outer grid is the shard shape and the ``sharding_indexed`` codec holds
    the inner ``chunks`` (index at the end, ``bytes`` + ``crc32c`` index codecs, as the
    sharding spec recommends). Without, the array is chunked plainly.
    """
    dtype = v2.numpy_dtype
    inner: list[dict[str, Any]] = [bytes_codec(dtype)]
    if codec is not None:
        inner.append(dict(codec))
    if shards is not None:
        codecs: list[dict[str, Any]] = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(chunks),
                    "codecs": inner,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ]
        grid = list(shards)
    else:
        codecs = inner
        grid = list(chunks)
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(v2.shape),
        "data_type": v3_data_type(dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": v3_fill_value(v2),
        "codecs": codecs,
        "attributes": dict(attributes or {}),
    }
    if dimension_names is not None:
        doc["dimension_names"] = list(dimension_names)
    return doc


def v3_chunk_key(index: Sequence[int]) -> str:
    """The v3 default chunk key (``c/i/j/k``) of grid ``index``."""
    return "/".join(["c", *(str(i) for i in index)])
