"""Generic arrays: which ``.zarray`` dtypes bypass the pixel pipeline, and their v2 → v3 copy
through zarr-python, read back with zarr-python (values, shape, chunks, attributes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from numcodecs.abc import Codec

from ngff_resave import generic
from ngff_resave.discover import discover
from ngff_resave.errors import InputError
from ngff_resave.generic import copy_generic_array, is_generic_dtype
from ngff_resave.locations import LocalStore
from ngff_resave.metadata.arrays import parse_v2_array
from tests.support import builders

#: zarr-python writes fixed-width strings, bytes, void and structured arrays to v3 with a data
#: type that has no v3 specification yet, and says so with this warning.
UNSTABLE = pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning")
PATH = "table/obs/_index"


def zarray(dtype: Any) -> dict[str, Any]:
    """A complete v2 ``.zarray`` document of a 1-D array of ``dtype``."""
    return {
        "zarr_format": 2,
        "shape": [4],
        "chunks": [4],
        "dtype": dtype,
        "compressor": None,
        "fill_value": None,
        "order": "C",
        "filters": None,
    }


def parses(doc: dict[str, Any]) -> bool:
    """Whether the pixel pipeline takes the array (``parse_v2_array`` accepts it)."""
    try:
        parse_v2_array(doc, ".zarray")
    except InputError:
        return False
    return True


# --------------------------------------------------------------------------- is_generic_dtype

DTYPES = [
    pytest.param("|O", True, id="object"),
    pytest.param("<U12", True, id="unicode"),
    pytest.param(">U3", True, id="unicode-big-endian"),
    pytest.param("=U5", True, id="unicode-native-order"),
    pytest.param("|S8", True, id="bytes"),
    pytest.param("|V16", True, id="void"),
    pytest.param([["a", "<i4"], ["b", "<f8"]], True, id="structured"),
    pytest.param("|b1", False, id="bool"),
    pytest.param("|u1", False, id="uint8"),
    pytest.param("<u2", False, id="uint16"),
    pytest.param(">i8", False, id="int64-big-endian"),
    pytest.param("<f2", False, id="float16"),
    pytest.param(">f8", False, id="float64-big-endian"),
    pytest.param("<c16", False, id="complex128"),
    pytest.param("<M8[ns]", True, id="datetime64"),
    pytest.param("<m8[s]", True, id="timedelta64"),
]


@pytest.mark.parametrize(("dtype", "expected"), DTYPES)
def test_is_generic_dtype(dtype: Any, expected: bool) -> None:
    """Every array goes somewhere: exactly one of the generic copy and the pixel pipeline
    takes it, or the input cannot be converted at all."""
    doc = zarray(dtype)
    assert is_generic_dtype(doc) is expected
    assert parses(doc) is not expected


@pytest.mark.parametrize(
    "doc",
    [None, [], "|O", {}, {"dtype": None}, {"dtype": 2}, {"dtype": ""}],
    ids=["missing", "list", "string", "no-dtype", "dtype-null", "dtype-number", "dtype-empty"],
)
def test_is_generic_dtype_of_what_is_not_a_zarray(doc: Any) -> None:
    """``read_json`` gives ``None`` for a missing file; a broken document is not generic (the
    pixel pipeline's parser then reports it, naming the file)."""
    assert is_generic_dtype(doc) is False


# --------------------------------------------------------------------------- round trips


def _strings(path: Path) -> list[Any]:
    values = ["a", "µm", "日本語", ""]
    builders.write_string_array(path, values)
    return values


def _create(path: Path, data: np.ndarray, chunks: tuple[int, ...], **kwargs: Any) -> None:
    array = zarr.create_array(
        store=str(path),
        shape=data.shape,
        chunks=chunks,
        dtype=kwargs.pop("dtype", data.dtype),
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": kwargs.pop("separator", ".")},
        **kwargs,
    )
    array[...] = data


def _strings_2d(path: Path) -> list[Any]:
    values = [[f"r{i}c{j}" * (i + 1) for j in range(3)] for i in range(5)]
    compressor = builders.make_compressor("zstd")
    _create(path, np.array(values, dtype=object), (2, 2), dtype=str, compressors=compressor)
    return values


def _strings_f_order(path: Path) -> list[Any]:
    values = [[f"{i}{j}" for j in range(4)] for i in range(3)]
    _create(path, np.array(values, dtype=object), (2, 3), dtype=str, order="F", separator="/")
    return values


def _strings_missing_chunk(path: Path) -> list[Any]:
    array = zarr.create_array(
        store=str(path), shape=(4,), chunks=(2,), dtype=str, zarr_format=2, fill_value="zz"
    )
    array[:2] = np.array(["a", "b"], dtype=object)
    assert not (path / "1").exists()
    return ["a", "b", "zz", "zz"]


def _string_scalar(path: Path) -> list[Any] | str:
    array = zarr.create_array(store=str(path), shape=(), dtype=str, zarr_format=2)
    array[...] = "only"
    return "only"


def _fixed_unicode(path: Path) -> list[Any]:
    values = ["ab", "cdé", "f", ""]
    _create(path, np.array(values, dtype="<U3"), (3,))
    return values


def _fixed_bytes(path: Path) -> list[Any]:
    values = [b"ab", b"cde", b"f"]
    _create(path, np.array(values, dtype="|S4"), (2,))
    return values


def _datetimes(path: Path) -> list[Any]:
    values = np.array(["2024-05-01T12:00:00", "1999-12-31T23:59:59", "NaT"], "<M8[s]")
    _create(path, values, (2,))
    return list(values.tolist())  # datetime objects, None for NaT


def _timedeltas(path: Path) -> list[Any]:
    values = np.array([3, -7, 86400], "<m8[s]")
    _create(path, values, (2,))
    return list(values.tolist())


def _same_fill(copied: Any, source: Any) -> bool:
    """Fill values agree; v2 ``null`` may become the data type's default (v3 requires one)."""
    if source is None:
        return copied in (b"", "", 0)
    if isinstance(source, np.datetime64 | np.timedelta64) and np.isnat(source):
        return bool(np.isnat(copied))
    return bool(copied == source)


def _structured(path: Path) -> list[Any]:
    values = [(1, 2.5), (3, -4.0), (5, 6.25)]
    _create(path, np.array(values, dtype=[("a", "<i4"), ("b", "<f8")]), (2,))
    return values


def _void(path: Path) -> list[Any]:
    values = [b"abcd", b"efgh", b"ijkl"]
    _create(path, np.array(values, dtype="|V4"), (2,))
    return values


def _object_array(path: Path, codec: Codec, values: list[Any]) -> None:
    """A v2 ``|O`` array with ``codec`` as its object codec, written with numcodecs alone."""
    doc = {**zarray("|O"), "shape": [len(values)], "chunks": [len(values)]}
    doc["filters"] = [codec.get_config()]
    builders.write_json(path / ".zarray", doc)
    chunk = np.empty(len(values), dtype=object)
    chunk[:] = values
    (path / "0").write_bytes(codec.encode(chunk))


def _vlen_bytes(path: Path) -> list[Any]:
    values = [b"a", b"\x00bb", b""]
    _object_array(path, numcodecs.VLenBytes(), values)
    return values


ROUND_TRIPS = [
    pytest.param(_strings, id="vlen-utf8"),
    pytest.param(_strings_2d, id="vlen-utf8-2d-chunked-zstd"),
    pytest.param(_strings_f_order, id="vlen-utf8-f-order"),
    pytest.param(_strings_missing_chunk, id="vlen-utf8-missing-chunk"),
    pytest.param(_string_scalar, id="vlen-utf8-0d"),
    pytest.param(_fixed_unicode, id="fixed-unicode", marks=UNSTABLE),
    pytest.param(_fixed_bytes, id="fixed-bytes", marks=UNSTABLE),
    pytest.param(_structured, id="structured", marks=UNSTABLE),
    pytest.param(_void, id="void", marks=UNSTABLE),
    pytest.param(
        _vlen_bytes,
        id="vlen-bytes",
        marks=UNSTABLE,
    ),
    pytest.param(_datetimes, id="datetime64", marks=UNSTABLE),
    pytest.param(_timedeltas, id="timedelta64", marks=UNSTABLE),
]


@pytest.mark.parametrize("write", ROUND_TRIPS)
def test_copy_reads_back_equal_with_zarr(
    tmp_path: Path, write: Callable[[Path], list[Any] | str]
) -> None:
    source_dir, out = tmp_path / "in", tmp_path / "out"
    expected = write(source_dir / PATH)
    attrs = {"encoding-type": "string-array", "encoding-version": "0.2.0", "unit": "µm"}
    builders.write_json(source_dir / PATH / ".zattrs", attrs)
    before = builders.hash_tree(source_dir)
    source_bytes = sum(p.stat().st_size for p in (source_dir / PATH).rglob("*") if p.is_file())

    read = copy_generic_array(LocalStore(str(source_dir)), LocalStore(str(out)), PATH)

    assert read == source_bytes
    assert builders.hash_tree(source_dir) == before
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert f"{PATH}/zarr.json" in written
    assert all(p.startswith(f"{PATH}/") for p in written), written
    assert not any(p.rpartition("/")[2].startswith(".z") for p in written), written
    source = zarr.open_array(str(source_dir / PATH), mode="r", zarr_format=2)
    copied = zarr.open_array(str(out / PATH), mode="r")
    assert copied.metadata.zarr_format == 3
    assert (copied.shape, copied.chunks) == (source.shape, source.chunks)
    assert copied.attrs.asdict() == attrs
    assert _same_fill(copied.fill_value, source.fill_value)
    assert np.asarray(copied[...]).tolist() == expected


def test_tables_found_by_discover_are_copied(tmp_input: Path, tmp_output: Path) -> None:
    """The string columns of an AnnData table (``obs/_index``, ``var/_index``): discover lists
    them, the generic copy carries them over with their values and attributes."""
    builders.build_with_tables(tmp_input)
    source, dest = LocalStore(str(tmp_input)), LocalStore(str(tmp_output))
    paths = discover(source).generic_arrays
    assert paths == ["tables/nuclei/obs/_index", "tables/nuclei/var/_index"]
    for path in paths:
        copy_generic_array(source, dest, path)
        copied = zarr.open_array(str(tmp_output / path), mode="r")
        original = zarr.open_array(str(tmp_input / path), mode="r", zarr_format=2)
        assert copied[...].tolist() == original[...].tolist()
        assert copied.attrs.asdict() == builders.read_json(tmp_input / path / ".zattrs")
        doc = json.loads((tmp_output / path / "zarr.json").read_text())
        assert (doc["node_type"], doc["data_type"]) == ("array", "string")
    index = zarr.open_array(str(tmp_output / "tables/nuclei/var/_index"), mode="r")
    assert index[...].tolist() == ["area", "mean", "max"]


# --------------------------------------------------------------------------- refused arrays


def _corrupt_chunk(path: Path) -> None:
    builders.write_string_array(path, ["a", "b", "c"])
    (path / "0").write_bytes(b"\x05\x00\x00\x00not a vlen-utf8 chunk")


def _not_an_array(path: Path) -> None:
    builders.write_json(path / ".zattrs", {"note": "a .zattrs alone is no array"})


REFUSED = [
    pytest.param(
        lambda p: _object_array(p, numcodecs.JSON(), [1, "a", [2]]), id="object-codec-json2"
    ),
    pytest.param(
        lambda p: _object_array(p, numcodecs.Pickle(), [1, "a", [2]]), id="object-codec-pickle"
    ),
    pytest.param(
        lambda p: _object_array(p, numcodecs.VLenArray("<i4"), [np.arange(2, dtype="<i4")]),
        id="object-codec-vlen-array",
    ),
    pytest.param(_corrupt_chunk, id="corrupt-chunk"),
    pytest.param(_not_an_array, id="no-zarray"),
]


@pytest.mark.parametrize("write", REFUSED)
def test_unreadable_array_is_refused_naming_it(
    tmp_path: Path, write: Callable[[Path], None]
) -> None:
    write(tmp_path / "in" / PATH)
    dest = LocalStore(str(tmp_path / "out"))
    with pytest.raises(InputError) as caught:
        copy_generic_array(LocalStore(str(tmp_path / "in")), dest, PATH)
    assert str(caught.value).startswith(f"{tmp_path / 'in' / PATH}: cannot read this array (")
    assert dest.is_empty(), "nothing is written for an array that cannot be read"


def test_array_over_the_memory_limit_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generic arrays are held in memory whole, so a size limit applies (lowered here)."""
    _strings(tmp_path / "in" / PATH)
    size = sum(p.stat().st_size for p in (tmp_path / "in" / PATH).rglob("*") if p.is_file())
    source, dest = LocalStore(str(tmp_path / "in")), LocalStore(str(tmp_path / "out"))
    monkeypatch.setattr(generic, "MAX_GENERIC_BYTES", size - 1)
    with pytest.raises(InputError, match="cannot be carried over in memory") as caught:
        copy_generic_array(source, dest, PATH)
    assert str(caught.value).startswith(f"{tmp_path / 'in' / PATH}: ")
    assert dest.is_empty()
    monkeypatch.setattr(generic, "MAX_GENERIC_BYTES", size)
    assert copy_generic_array(source, dest, PATH) == size
