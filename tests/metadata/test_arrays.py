"""Zarr v2 array documents → Zarr v3 (pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ngff_resave.errors import InputError
from ngff_resave.metadata.arrays import (
    bytes_codec,
    parse_v2_array,
    sharded_array_metadata,
    v3_equivalent_codec,
    v3_fill_value,
)


def zarray(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "zarr_format": 2,
        "shape": [10, 20],
        "chunks": [4, 8],
        "dtype": "<u2",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }
    doc.update(over)
    return doc


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"),
    [
        ("<u2", 0, 0),
        ("<u2", None, 0),  # v2 null: readers saw zeros
        ("<i4", -5, -5),
        ("<f4", "NaN", "NaN"),
        ("<f8", "Infinity", "Infinity"),
        ("<f8", "-Infinity", "-Infinity"),
        ("<f8", 1.5, 1.5),
        (">u2", 7, 7),
        ("|b1", True, True),
        ("<u8", 2**64 - 1, 2**64 - 1),
    ],
    ids=[
        "u2-0",
        "u2-null",
        "i4-neg",
        "f4-nan",
        "f8-inf",
        "f8-ninf",
        "f8",
        "be-u2",
        "bool",
        "u8-max",
    ],
)
def test_fill_value_kept_exactly(dtype: str, fill: Any, expected: Any) -> None:
    v2 = parse_v2_array(zarray(dtype=dtype, fill_value=fill), "x")
    assert v3_fill_value(v2) == expected


def test_big_endian_keeps_byte_order_in_bytes_codec() -> None:
    v2 = parse_v2_array(zarray(dtype=">u2"), "x")
    assert bytes_codec(v2.numpy_dtype) == {"name": "bytes", "configuration": {"endian": "big"}}
    assert bytes_codec(parse_v2_array(zarray(dtype="|u1"), "x").numpy_dtype) == {"name": "bytes"}


@pytest.mark.parametrize(
    ("compressor", "filters", "order", "name", "reason_part"),
    [
        ({"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2}, None, "C", "blosc", None),
        ({"id": "zstd", "level": 3}, None, "C", "zstd", None),
        ({"id": "gzip", "level": 6}, None, "C", "gzip", None),
        (None, None, "C", None, None),
        ({"id": "zlib", "level": 1}, None, "C", None, "zlib"),
        ({"id": "zstd", "level": 3}, [{"id": "delta", "dtype": "<u2"}], "C", None, "filters"),
        ({"id": "zstd", "level": 3}, None, "F", None, "order"),
    ],
    ids=["blosc", "zstd", "gzip", "raw", "zlib", "filters", "order-F"],
)
def test_fast_path_equivalents(
    compressor: Any, filters: Any, order: str, name: str | None, reason_part: str | None
) -> None:
    v2 = parse_v2_array(zarray(compressor=compressor, filters=filters, order=order), "x")
    codec, reason = v3_equivalent_codec(v2)
    if reason_part is None:
        assert reason is None
        assert (codec or {}).get("name") == name
    else:
        assert codec is None and reason is not None and reason_part in reason


def test_blosc_mapping_records_typesize_and_shuffle_names() -> None:
    v2 = parse_v2_array(
        zarray(compressor={"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2}), "x"
    )
    codec, _ = v3_equivalent_codec(v2)
    assert codec == {
        "name": "blosc",
        "configuration": {
            "cname": "zstd",
            "clevel": 3,
            "shuffle": "bitshuffle",
            "typesize": 2,
            "blocksize": 0,
        },
    }


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"zarr_format": 3}, "zarr_format"),
        ({"shape": [10, -1]}, "shape"),
        ({"chunks": [0, 8]}, "chunks"),
        ({"chunks": [4]}, "dimensions"),
        ({"dtype": "<x9"}, "dtype"),
        ({"dtype": "|O"}, "no Zarr v3 core equivalent"),
        ({"order": "Z"}, "order"),
        ({"dimension_separator": "-"}, "dimension_separator"),
        ({"compressor": "blosc"}, "compressor"),
    ],
    ids=["format", "neg-shape", "zero-chunk", "rank", "dtype", "object", "order", "sep", "comp"],
)
def test_invalid_documents_are_refused_with_the_reason(over: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_v2_array(zarray(**over), "in.zarr/0/.zarray")
    assert "in.zarr/0/.zarray" in str(info.value)


def test_sharded_metadata_follows_the_sharding_spec() -> None:
    v2 = parse_v2_array(zarray(fill_value="NaN", dtype="<f4"), "x")
    doc = sharded_array_metadata(
        v2, chunks=(4, 8), shards=(8, 16), codec=None, dimension_names=["y", "x"]
    )
    assert doc["chunk_grid"]["configuration"]["chunk_shape"] == [8, 16]
    sharding = doc["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert sharding["configuration"]["chunk_shape"] == [4, 8]
    assert sharding["configuration"]["index_codecs"][-1] == {"name": "crc32c"}
    assert doc["dimension_names"] == ["y", "x"]
    assert doc["fill_value"] == "NaN" and doc["data_type"] == "float32"
    assert math.isnan(float(doc["fill_value"]))
