"""Tests of the test-support library: builders make valid 0.4, checkers catch bad 0.5.

A checker that cannot fail proves nothing, so every checker is shown passing on a known-good
output (from :func:`naive_convert`) and failing on the same output broken in one place.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr_models import v04

from tests.support import builders, checks, samples
from tests.support.builders import (
    build_bioformats2raw,
    build_image,
    build_plate,
    build_with_tables,
    expected_chunk_keys,
    hash_tree,
    naive_convert,
    present_chunk_keys,
    read_json,
    write_json,
)

IMAGE_CASES: dict[str, dict[str, Any]] = {
    "default-czyx-u2-blosc-lz4": {},
    "tczyx-f4-nan-zstd-dot-missing": {
        "axes": "tczyx",
        "shape": (2, 2, 3, 20, 18),
        "chunks": (1, 1, 2, 8, 8),
        "dtype": "f4",
        "fill_value": float("nan"),
        "compressor": "zstd",
        "dimension_separator": ".",
        "levels": 3,
        "missing_chunks": True,
    },
    "yx-bigendian-u2-F-delta-gzip": {
        "axes": "yx",
        "shape": (50, 45),
        "chunks": (16, 16),
        "dtype": ">u2",
        "order": "F",
        "filters": ["delta"],
        "compressor": "gzip",
    },
    "zyx-f8-zlib-labels": {
        "axes": "zyx",
        "shape": (4, 30, 20),
        "chunks": (2, 16, 16),
        "dtype": "f8",
        "compressor": "zlib",
        "with_labels": True,
    },
    "cyx-i4-none-noomero": {
        "axes": "cyx",
        "shape": (3, 17, 19),
        "chunks": (1, 8, 8),
        "dtype": "i4",
        "compressor": None,
        "omero": False,
        "extra_attrs": {"custom": {"keep": True}},
    },
    "yx-u1-blosc-zstd": {
        "axes": "yx",
        "shape": (33, 31),
        "chunks": (32, 32),
        "dtype": "u1",
        "compressor": "blosc-zstd",
    },
}


def _open_v2(path: Path) -> zarr.Group:
    return zarr.open_group(str(path), mode="r", zarr_format=2)


# --------------------------------------------------------------------------- builders


@pytest.mark.parametrize("kwargs", IMAGE_CASES.values(), ids=IMAGE_CASES.keys())
def test_build_image_is_valid_04_with_the_asked_array_metadata(
    tmp_input: Path, kwargs: dict[str, Any]
) -> None:
    build_image(tmp_input, **kwargs)
    v04.Image.from_zarr(_open_v2(tmp_input))
    if checks.SPEC_DIR.is_dir():
        assert checks.schema_validate_v04_input(tmp_input) >= 1
    meta = read_json(tmp_input / "0" / ".zarray")
    assert np.dtype(meta["dtype"]) == np.dtype(kwargs.get("dtype", "u2"))
    assert meta["dimension_separator"] == kwargs.get("dimension_separator", "/")
    assert meta["order"] == kwargs.get("order", "C")
    compressor = kwargs.get("compressor", "blosc-lz4")
    expected_id = None if compressor is None else compressor.split("-")[0]
    assert (meta["compressor"] or {}).get("id") == expected_id
    if kwargs.get("filters"):
        assert [f["id"] for f in meta["filters"]] == ["delta"]
    if isinstance(kwargs.get("fill_value"), float):
        assert meta["fill_value"] == "NaN"  # how zarr v2 spells a NaN fill value
    attrs = read_json(tmp_input / ".zattrs")
    levels = kwargs.get("levels", 2)
    assert [d["path"] for d in attrs["multiscales"][0]["datasets"]] == [
        str(i) for i in range(levels)
    ]
    assert ("omero" in attrs) == kwargs.get("omero", True)
    base = zarr.open_array(str(tmp_input / "0"), mode="r", zarr_format=2).shape
    assert base == tuple(kwargs.get("shape", base))
    for level in range(1, levels):
        shape = zarr.open_array(str(tmp_input / str(level)), mode="r", zarr_format=2).shape
        assert shape == builders.level_shape(base, kwargs.get("axes", "czyx"), level)
    if kwargs.get("with_labels"):
        assert read_json(tmp_input / "labels" / ".zattrs") == {"labels": ["cells"]}
        v04.ImageLabel.from_zarr(_open_v2(tmp_input / "labels" / "cells"))


def test_missing_chunks_are_missing_and_read_as_fill(tmp_input: Path) -> None:
    build_image(tmp_input, dtype="f4", fill_value=float("nan"), missing_chunks=True)
    array_dir = tmp_input / "0"
    present, expected = present_chunk_keys(array_dir), expected_chunk_keys(array_dir)
    missing = expected - present
    assert present < expected and missing
    arr = zarr.open_array(str(array_dir), mode="r", zarr_format=2)
    key = sorted(missing)[0]
    index = [int(i) for i in key.split("/")]
    region = tuple(
        slice(i * c, min((i + 1) * c, n))
        for i, c, n in zip(index, arr.chunks, arr.shape, strict=True)
    )
    assert np.isnan(arr[region]).all()


def test_without_missing_chunks_every_chunk_is_written(tmp_input: Path) -> None:
    build_image(tmp_input)
    assert present_chunk_keys(tmp_input / "0") == expected_chunk_keys(tmp_input / "0")


def test_plate_layout_is_valid_04(tmp_input: Path) -> None:
    build_plate(tmp_input, rows=2, cols=1, fields=2, with_labels=True)
    v04.HCS.from_zarr(_open_v2(tmp_input))
    assert sorted(p.name for p in (tmp_input / "A").iterdir()) == [".zgroup", "1"]
    well = read_json(tmp_input / "B" / "1" / ".zattrs")["well"]
    assert well["images"] == [{"path": "0", "acquisition": 0}, {"path": "1", "acquisition": 1}]
    plate = read_json(tmp_input / ".zattrs")["plate"]
    assert plate["field_count"] == 2 and [a["id"] for a in plate["acquisitions"]] == [0, 1]
    if checks.SPEC_DIR.is_dir():
        assert checks.schema_validate_v04_input(tmp_input) == 1 + 2 + 4 + 4


@pytest.mark.parametrize("explicit_series", [True, False], ids=["series", "no-series"])
def test_bioformats2raw_layout(tmp_input: Path, explicit_series: bool) -> None:
    build_bioformats2raw(tmp_input, series=2, explicit_series=explicit_series, ome_xml=True)
    v04.BioFormats2Raw.from_zarr(_open_v2(tmp_input))
    assert read_json(tmp_input / ".zattrs") == {"bioformats2raw.layout": 3}
    ome_attrs = tmp_input / "OME" / ".zattrs"
    assert ome_attrs.exists() == explicit_series
    if explicit_series:
        assert read_json(ome_attrs) == {"series": ["0", "1"]}
    xml = (tmp_input / "OME" / "METADATA.ome.xml").read_text()
    assert xml.count("<Image ") == 2
    if checks.SPEC_DIR.is_dir():
        checks.schema_validate_v04_input(tmp_input)


def test_tables_group_is_not_ome_and_holds_strings(tmp_input: Path) -> None:
    build_with_tables(tmp_input)
    v04.Image.from_zarr(_open_v2(tmp_input))
    assert read_json(tmp_input / "tables" / ".zattrs") == {"tables": ["nuclei"]}
    index = zarr.open_array(str(tmp_input / "tables/nuclei/var/_index"), mode="r", zarr_format=2)
    assert list(np.asarray(index[:])) == ["area", "mean", "max"]
    assert read_json(tmp_input / "tables/nuclei/X/.zarray")["dtype"] == "<f4"


def test_builders_are_deterministic(tmp_path: Path) -> None:
    a = build_image(tmp_path / "a", missing_chunks=True, with_labels=True)
    b = build_image(tmp_path / "b", missing_chunks=True, with_labels=True)
    assert hash_tree(a) == hash_tree(b)


def test_hash_tree_sees_every_kind_of_change(tmp_input: Path) -> None:
    build_image(tmp_input, axes="yx", shape=(20, 20), chunks=(10, 10), levels=1)
    before = hash_tree(tmp_input)
    chunk = tmp_input / "0" / "0" / "0"
    original = chunk.read_bytes()
    chunk.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    assert hash_tree(tmp_input) != before
    chunk.write_bytes(original)
    assert hash_tree(tmp_input) == before
    (tmp_input / "empty").mkdir()
    assert hash_tree(tmp_input) != before
    (tmp_input / "empty").rmdir()
    os.symlink("0", tmp_input / "link")
    with_link = hash_tree(tmp_input)
    assert with_link != before
    (tmp_input / "link").unlink()
    os.symlink("1", tmp_input / "link")
    assert hash_tree(tmp_input) != with_link


# --------------------------------------------------------------------------- samples


SAMPLE_CASES: dict[str, tuple[Any, Path, Any]] = {
    "idr-image": (samples.materialize_idr_image, samples.IDR_IMAGE, v04.Image),
    "idr-bf2raw": (samples.materialize_idr_bf2raw, samples.IDR_BF2RAW, v04.BioFormats2Raw),
    "fractal-hcs": (samples.materialize_fractal_hcs, samples.FRACTAL_HCS, v04.HCS),
}


@pytest.fixture(scope="module", params=list(SAMPLE_CASES))
def materialized(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    """(sample name, recorded source, materialized copy), built once per module."""
    samples.require_shared()
    build, src, _model = SAMPLE_CASES[request.param]
    return request.param, src, build(tmp_path_factory.mktemp(request.param) / "input.zarr")


def test_samples_keep_every_recorded_metadata_file(materialized: tuple[str, Path, Path]) -> None:
    _name, src, dest = materialized
    for name in (".zarray", ".zattrs", ".zgroup"):
        for recorded in src.rglob(name):
            rel = recorded.relative_to(src)
            assert (dest / rel).read_bytes() == recorded.read_bytes(), rel
    sparse = 0
    for recorded in src.rglob(".zarray"):
        array_dir = dest / recorded.parent.relative_to(src)
        present = present_chunk_keys(array_dir)
        assert present, f"{array_dir}: no chunk written"
        sparse += present < expected_chunk_keys(array_dir)
    assert sparse > 0  # default mode leaves chunks missing


def test_samples_are_valid_04(materialized: tuple[str, Path, Path]) -> None:
    name, _src, dest = materialized
    SAMPLE_CASES[name][2].from_zarr(_open_v2(dest))
    assert checks.schema_validate_v04_input(dest) >= 1


def test_samples_gain_the_groups_the_recording_lacks(
    materialized: tuple[str, Path, Path],
) -> None:
    name, _src, dest = materialized
    if name == "idr-image":
        label = v04.ImageLabel.from_zarr(_open_v2(dest / "labels" / "0"))
        assert len(label.ome_attributes.multiscales[0].datasets) == 4
        assert read_json(dest / "labels/0/0/.zarray")["shape"] == [1, 494, 464]
    elif name == "idr-bf2raw":
        assert read_json(dest / "OME" / ".zattrs") == {"series": ["0", "1", "2"]}
        assert (dest / "OME" / "METADATA.ome.xml").read_text().count("<Image ") == 3
        for series in ("0", "2"):
            label = v04.ImageLabel.from_zarr(_open_v2(dest / series / "labels" / "0"))
            assert len(label.ome_attributes.multiscales[0].datasets) == 6
    else:
        assert read_json(dest / "B/03/0/tables/.zattrs") == {"tables": ["nuclei"]}


def test_sample_pixels_follow_the_coordinate_pattern(tmp_input: Path) -> None:
    samples.require_shared()
    samples.materialize_idr_image(tmp_input)
    arr = zarr.open_array(str(tmp_input / "0"), mode="r", zarr_format=2)
    block = np.asarray(arr[0, :, :])
    expected = samples.pattern_block(arr.dtype, (0, 0, 0), (1, *arr.shape[1:]), salt=0)[0]
    assert np.array_equal(block, expected)
    assert np.all(np.asarray(arr[1]) == 0.0)  # channel 1 was not written: fill_value 0.0


# --------------------------------------------------------------------------- 0.5 schemas


def _suite_cases() -> list[Any]:
    suites = sorted((checks.SPEC_DIR / "0.5" / "tests").glob("*_suite.json"))
    cases = []
    for suite in suites:
        doc = json.loads(suite.read_text())
        for n, test in enumerate(doc["tests"]):
            case_id = f"{suite.stem}:{test.get('formerly', n)}"
            cases.append(pytest.param(doc["schema"]["id"], test, id=case_id))
    return cases or [pytest.param(None, None, id="spec-absent")]


SUITE_CASES = _suite_cases()


def test_the_official_suites_hold_86_cases() -> None:
    # The shared README says 95; the recorded suites hold 86 cases (28 image, 9 label,
    # 31 plate, 5 well, 13 strict) and there are 10 examples besides.
    checks.require_spec("0.5")
    assert len(SUITE_CASES) == 86


@pytest.mark.parametrize(("schema", "case"), SUITE_CASES)
def test_official_05_suite_through_our_schema_loader(schema: str, case: dict[str, Any]) -> None:
    checks.require_spec("0.5")
    # JSON Schema cannot say "row before column" in a well path: that case passes the schema.
    expected = case["valid"] or case.get("formerly", "").endswith("well_path_has_column_before_row")
    errors = checks.schema_errors(case["data"], schema)
    assert (not errors) == expected, errors


def test_official_05_examples_are_valid() -> None:
    spec = checks.require_spec("0.5")
    n = 0
    for config in sorted((spec / "examples").glob("*/.config.json")):
        schema = json.loads(config.read_text())["schema"]
        for example in sorted(config.parent.glob("*.json")):
            if example.name == ".config.json":
                continue
            # the examples are JSON with whole-line // comments
            text = re.sub(r"^\s*//.*$", "", example.read_text(), flags=re.MULTILINE)
            attributes = json.loads(text)["attributes"]
            assert checks.schema_errors(attributes, schema) == [], example
            assert checks.ome_node_errors(attributes["ome"]) == [], example
            n += 1
    assert n == 10


# --------------------------------------------------------------------------- checkers


@pytest.fixture
def converted_image(tmp_input: Path, tmp_output: Path) -> tuple[Path, Path]:
    """A small 0.4 image with labels, missing chunks and NaN fill, naively converted to 0.5."""
    build_image(
        tmp_input,
        axes="czyx",
        shape=(2, 3, 20, 18),
        chunks=(1, 2, 8, 8),
        dtype="f4",
        fill_value=float("nan"),
        missing_chunks=True,
        with_labels=True,
    )
    naive_convert(tmp_input, tmp_output)
    return tmp_input, tmp_output


def _ome(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = read_json(path / "zarr.json")
    return doc


def _set_ome(path: Path, ome: dict[str, Any]) -> None:
    doc = _ome(path)
    doc["attributes"]["ome"] = ome
    write_json(path / "zarr.json", doc)


def test_checkers_pass_on_a_good_image(converted_image: tuple[Path, Path]) -> None:
    src, out = converted_image
    checks.require_spec("0.5")
    assert checks.schema_validate_output(out) == 3  # image, labels, labels/cells
    assert checks.models_validate_output(out) == 3
    assert checks.assert_same_data(src, out) == 4
    checks.assert_no_stray_files(out)
    checks.assert_no_legacy_attrs(out)


def test_ome_zarr_py_reads_level_0(converted_image: tuple[Path, Path]) -> None:
    src, out = converted_image
    level0 = zarr.open_array(str(src / "0"), mode="r", zarr_format=2)[...]
    assert np.array_equal(checks.open_with_ome_zarr_py(out), level0, equal_nan=True)


@pytest.mark.parametrize(
    ("build", "n_nodes"),
    [
        (lambda p: build_plate(p, rows=1, cols=2, fields=1), 1 + 2 + 2),
        (lambda p: build_bioformats2raw(p, series=2), 1 + 2 + 1),
        (build_with_tables, 3),
        (lambda p: build_image(p, axes="yx", shape=(40, 30), chunks=(16, 16), dtype=">u2"), 1),
    ],
    ids=["plate", "bioformats2raw", "tables", "big-endian"],
)
def test_checkers_pass_on_other_good_layouts(
    tmp_input: Path, tmp_output: Path, build: Any, n_nodes: int
) -> None:
    checks.require_spec("0.5")
    build(tmp_input)
    naive_convert(tmp_input, tmp_output)
    assert checks.schema_validate_output(tmp_output) == n_nodes
    assert checks.models_validate_output(tmp_output) == n_nodes
    assert checks.assert_same_data(tmp_input, tmp_output) >= 1
    checks.assert_no_stray_files(tmp_output)


def _break_version(out: Path) -> None:
    ome = _ome(out)["attributes"]["ome"]
    _set_ome(out, {**ome, "version": "0.4"})


def _break_labels_version(out: Path) -> None:
    # the mistake of the published idr0062A labels group
    _set_ome(out / "labels", {"labels": ["cells"]})


def _break_axes_type(out: Path) -> None:
    ome = _ome(out)["attributes"]["ome"]
    ome["multiscales"][0]["axes"][0]["type"] = 7
    _set_ome(out, ome)


def _break_label_colors(out: Path) -> None:
    ome = _ome(out / "labels" / "cells")["attributes"]["ome"]
    ome["image-label"]["colors"][0]["rgba"] = [0, 0, 300, 0]
    _set_ome(out / "labels" / "cells", ome)


@pytest.mark.parametrize(
    "breaker",
    [_break_version, _break_labels_version, _break_axes_type, _break_label_colors],
    ids=["version-0.4", "labels-without-version", "axis-type-not-str", "rgba-over-255"],
)
def test_schema_check_fails_on_bad_metadata(
    converted_image: tuple[Path, Path], breaker: Any
) -> None:
    checks.require_spec("0.5")
    _src, out = converted_image
    breaker(out)
    with pytest.raises(AssertionError, match="schema validation failed"):
        checks.schema_validate_output(out)


def test_schema_check_fails_when_there_is_no_ome_node(tmp_output: Path) -> None:
    checks.require_spec("0.5")
    zarr.open_group(str(tmp_output), mode="w", zarr_format=3)
    with pytest.raises(AssertionError, match="no group with an 'ome' attribute"):
        checks.schema_validate_output(tmp_output)


def test_models_check_fails_where_the_schema_cannot_see(
    converted_image: tuple[Path, Path],
) -> None:
    _src, out = converted_image
    ome = _ome(out)["attributes"]["ome"]
    ome["multiscales"][0]["datasets"][1]["path"] = "missing"  # schema-valid, no such array
    _set_ome(out, ome)
    with pytest.raises(AssertionError, match=r"\.: Image"):
        checks.models_validate_output(out)


def test_models_check_fails_on_float_label(converted_image: tuple[Path, Path]) -> None:
    _src, out = converted_image
    label = out / "labels" / "cells" / "0"
    arr = zarr.open_array(str(label), mode="r", zarr_format=3)
    doc = read_json(label / "zarr.json")
    shutil.rmtree(label)
    zarr.create_array(
        str(label),
        shape=arr.shape,
        chunks=arr.chunks,
        dtype="f4",
        dimension_names=doc["dimension_names"],
        zarr_format=3,
    )
    with pytest.raises(AssertionError, match="Data type of labels at path 'cells/0'"):
        checks.models_validate_output(out)


def _overwrite_values(out: Path) -> str:
    arr = zarr.open_array(str(out / "1"), mode="r+", zarr_format=3)
    arr[0, 0, 0, 0] = 12345.0
    return "values differ"


def _change_fill(out: Path) -> str:
    doc = read_json(out / "0" / "zarr.json")
    doc["fill_value"] = 0.0
    write_json(out / "0" / "zarr.json", doc)
    return "fill_value"


def _drop_dimension_names(out: Path) -> str:
    doc = read_json(out / "0" / "zarr.json")
    del doc["dimension_names"]
    write_json(out / "0" / "zarr.json", doc)
    return "dimension_names"


def _delete_array(out: Path) -> str:
    shutil.rmtree(out / "labels" / "cells" / "1")
    return "no zarr.json"


def _change_dtype(out: Path) -> str:
    doc = read_json(out / "0" / "zarr.json")
    doc["data_type"] = "float64"
    write_json(out / "0" / "zarr.json", doc)
    return "dtype"


@pytest.mark.parametrize(
    "breaker",
    [_overwrite_values, _change_fill, _drop_dimension_names, _delete_array, _change_dtype],
    ids=["one-value", "fill-value", "dimension-names", "missing-array", "dtype"],
)
def test_data_check_fails_on_bad_arrays(converted_image: tuple[Path, Path], breaker: Any) -> None:
    src, out = converted_image
    expected = breaker(out)
    with pytest.raises(AssertionError, match=expected):
        checks.assert_same_data(src, out)


def test_data_check_uses_tensorstore_too(converted_image: tuple[Path, Path]) -> None:
    src, out = converted_image
    _overwrite_values(out)
    with pytest.raises(AssertionError) as info:
        checks.assert_same_data(src, out, array_paths=["1"])
    assert "zarr-python" in str(info.value) and "tensorstore" in str(info.value)


def test_data_check_passes_nan_where_nan_is_expected(converted_image: tuple[Path, Path]) -> None:
    src, out = converted_image
    level0 = zarr.open_array(str(src / "0"), mode="r", zarr_format=2)[...]
    assert np.isnan(level0).any() and not np.isnan(level0).all()
    assert checks.assert_same_data(src, out, array_paths=["0"]) == 1


def test_stray_files_are_found(converted_image: tuple[Path, Path]) -> None:
    _src, out = converted_image
    (out / "0" / "c.1234.ngff-resave-tmp").write_bytes(b"partial")
    write_json(out / "labels" / ".zattrs", {})
    with pytest.raises(AssertionError) as info:
        checks.assert_no_stray_files(out)
    assert "ngff-resave-tmp" in str(info.value) and "labels/.zattrs" in str(info.value)


def test_legacy_top_level_keys_are_found(converted_image: tuple[Path, Path]) -> None:
    _src, out = converted_image
    doc = _ome(out)
    doc["attributes"]["multiscales"] = doc["attributes"]["ome"]["multiscales"]
    write_json(out / "zarr.json", doc)
    with pytest.raises(AssertionError, match="multiscales"):
        checks.assert_no_legacy_attrs(out)


def test_block_iteration_covers_the_array_once() -> None:
    shape, chunks = (3, 7, 5, 4), (1, 2, 5, 4)
    seen = np.zeros(shape, dtype=int)
    for region in builders.chunk_aligned_regions(shape, chunks, itemsize=8, budget=8 * 5 * 4 * 3):
        seen[region] += 1
        assert all((s.start or 0) % c == 0 for s, c in zip(region[:2], chunks[:2], strict=True))
    assert (seen == 1).all()
    assert math.prod(shape) == seen.sum()
