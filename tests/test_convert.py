"""End to end: build 0.4 inputs, convert them, and let code we did not write judge the output.

Every output is checked by the official 0.5 JSON schemas, ome-zarr-models, and read back
equal with zarr-python and tensorstore; the input tree is hashed before and after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr

from ngff_resave.cli import main
from tests.support import builders, checks, samples


def convert_and_check(
    src: Path, out: Path, *args: str, capsys: pytest.CaptureFixture[str] | None = None
) -> None:
    """Convert ``src`` to ``out`` through the CLI and run every independent check."""
    before = builders.hash_tree(src)
    assert main(["convert", str(src), str(out), "--quiet", "--verify", "full", *args]) == 0
    assert builders.hash_tree(src) == before, "the input was modified"
    checks.judge_output(src, out)
    assert main(["validate", str(out), "--quiet"]) == 0


IMAGES: list[tuple[str, dict[str, Any]]] = [
    ("yx-u8-blosc", {"axes": "yx", "shape": (70, 90), "chunks": (32, 32), "dtype": "u1"}),
    (
        "zyx-u2-zstd-dot",
        {
            "axes": "zyx",
            "shape": (9, 40, 50),
            "chunks": (4, 16, 16),
            "compressor": "zstd",
            "dimension_separator": ".",
        },
    ),
    (
        "cyx-i4-gzip",
        {
            "axes": "cyx",
            "shape": (3, 40, 33),
            "chunks": (1, 16, 16),
            "dtype": "i4",
            "compressor": "gzip",
        },
    ),
    (
        "czyx-be-u2",
        {"axes": "czyx", "shape": (2, 5, 40, 41), "chunks": (1, 2, 16, 16), "dtype": ">u2"},
    ),
    (
        "tczyx-f4-nan-missing",
        {
            "axes": "tczyx",
            "shape": (2, 2, 4, 30, 30),
            "chunks": (1, 1, 2, 16, 16),
            "dtype": "f4",
            "fill_value": "NaN",
            "missing_chunks": True,
        },
    ),
    (
        "yx-f8-raw",
        {"axes": "yx", "shape": (33, 65), "chunks": (16, 16), "dtype": "f8", "compressor": None},
    ),
    (
        "yx-u2-nonzero-fill-missing",
        {
            "axes": "yx",
            "shape": (50, 50),
            "chunks": (16, 16),
            "fill_value": 17,
            "missing_chunks": True,
        },
    ),
    (
        "yx-u2-zlib-reencode",
        {"axes": "yx", "shape": (40, 40), "chunks": (16, 16), "compressor": "zlib"},
    ),
    ("yx-u2-order-F", {"axes": "yx", "shape": (40, 37), "chunks": (16, 16), "order": "F"}),
    (
        "cyx-labels",
        {"axes": "cyx", "shape": (2, 40, 40), "chunks": (1, 16, 16), "with_labels": True},
    ),
]


@pytest.mark.parametrize(("kind", "kwargs"), IMAGES, ids=[i for i, _ in IMAGES])
def test_images(tmp_path: Path, kind: str, kwargs: dict[str, Any]) -> None:
    src = builders.build_image(tmp_path / "in.zarr", **kwargs)
    convert_and_check(src, tmp_path / "out.zarr")


def test_missing_chunks_stay_unwritten(tmp_path: Path) -> None:
    src = builders.build_image(
        tmp_path / "in.zarr",
        axes="yx",
        shape=(64, 64),
        chunks=(16, 16),
        missing_chunks=True,
        levels=1,
    )
    out = tmp_path / "out.zarr"
    # One inner chunk per shard, so a missing source chunk is a missing shard.
    convert_and_check(src, out, "--output-shards", "16,16")
    present = sum(1 for p in (src / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    written = [p for p in (out / "0" / "c").rglob("*") if p.is_file()]
    assert 0 < len(written) == present < 16


def test_reencode_paths(tmp_path: Path) -> None:
    src = builders.build_image(
        tmp_path / "in.zarr",
        axes="czyx",
        shape=(2, 6, 45, 50),
        chunks=(1, 3, 16, 16),
        dtype=">u2",
        missing_chunks=True,
    )
    convert_and_check(src, tmp_path / "a.zarr", "--output-codec", "blosc-zstd:3")
    convert_and_check(src, tmp_path / "b.zarr", "--output-chunks", "1,2,20,24")
    meta = json.loads((tmp_path / "b.zarr" / "0" / "zarr.json").read_text())
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [1, 2, 20, 24]


def test_plate(tmp_path: Path) -> None:
    src = builders.build_plate(tmp_path / "in.zarr", rows=2, cols=2, fields=2, with_labels=True)
    out = tmp_path / "out.zarr"
    convert_and_check(src, out)
    # Row groups get a zarr.json too (the reference converter writes none).
    for row in ("A", "B"):
        doc = json.loads((out / row / "zarr.json").read_text())
        assert doc["node_type"] == "group"
    plate = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    assert plate["version"] == "0.5" and plate["plate"]["acquisitions"]


@pytest.mark.parametrize("explicit", [True, False], ids=["series-list", "implicit"])
def test_bioformats2raw(tmp_path: Path, explicit: bool) -> None:
    src = builders.build_bioformats2raw(tmp_path / "in.zarr", series=2, explicit_series=explicit)
    out = tmp_path / "out.zarr"
    convert_and_check(src, out)
    xml = "OME/METADATA.ome.xml"
    assert (out / xml).read_bytes() == (src / xml).read_bytes()
    ome = json.loads((out / "OME" / "zarr.json").read_text())["attributes"]
    if explicit:
        assert ome["ome"] == {"version": "0.5", "series": ["0", "1"]}


def test_tables_group_is_carried_over(tmp_path: Path) -> None:
    src = builders.build_with_tables(tmp_path / "in.zarr")
    out = tmp_path / "out.zarr"
    convert_and_check(src, out)
    table = zarr.open_group(str(out / "tables" / "nuclei"), mode="r")
    source = zarr.open_group(str(src / "tables" / "nuclei"), mode="r", zarr_format=2)
    assert dict(table.attrs) == dict(source.attrs)
    index_out = zarr.open_array(str(out / "tables/nuclei/obs/_index"), mode="r")[:]
    index_in = zarr.open_array(str(src / "tables/nuclei/obs/_index"), mode="r")[:]
    assert list(index_out) == list(index_in)


def test_unreadable_table_column_stops_the_run_before_any_pixel_is_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table columns are copied first: one zarr-python cannot read (a pickled object column)
    fails the run with its name before hours of pixels are spent."""
    src = builders.build_with_tables(tmp_path / "in.zarr")
    column = src / "tables" / "nuclei" / "obs" / "pickled"
    column.mkdir()
    doc = {
        "zarr_format": 2,
        "shape": [2],
        "chunks": [2],
        "dtype": "|O",
        "compressor": None,
        "fill_value": None,
        "order": "C",
        "filters": [numcodecs.Pickle().get_config()],
    }
    builders.write_json(column / ".zarray", doc)
    (column / "0").write_bytes(numcodecs.Pickle().encode(np.array([1, "a"], dtype=object)))
    out = tmp_path / "out.zarr"

    assert main(["convert", str(src), str(out)]) == 1

    err = capsys.readouterr().err
    assert "tables/nuclei/obs/pickled" in err
    shards = [
        p for p in out.rglob("*") if p.is_file() and "c" in p.parts and "tables" not in p.parts
    ]
    assert shards == [], "pixels were copied before the table failed"


def test_ome_zarr_py_reads_the_output(tmp_path: Path) -> None:
    src = builders.build_image(
        tmp_path / "in.zarr", axes="czyx", shape=(2, 4, 40, 40), chunks=(1, 2, 16, 16)
    )
    out = tmp_path / "out.zarr"
    convert_and_check(src, out)
    level0 = zarr.open_array(str(src / "0"), mode="r")[:]
    np.testing.assert_array_equal(checks.open_with_ome_zarr_py(out), level0)


SAMPLES: list[tuple[str, Callable[[Path], Path]]] = [
    ("idr0076A-f8-odd-chunks", samples.materialize_idr_image),
    ("idr0079A-bioformats2raw", samples.materialize_idr_bf2raw),
    ("fractal-hcs-with-tables", samples.materialize_fractal_hcs),
]


@pytest.mark.parametrize(("name", "materialize"), SAMPLES, ids=[n for n, _ in SAMPLES])
def test_published_samples(tmp_path: Path, name: str, materialize: Callable[[Path], Path]) -> None:
    """Real published metadata, synthetic pixels: convert, validate, read back equal."""
    samples.require_shared()
    src = materialize(tmp_path / "in.zarr")
    convert_and_check(src, tmp_path / "out.zarr")


@pytest.mark.parametrize(
    ("cap", "workers"),
    [("1GiB", 2), ("202.5MiB", 1), ("10MiB", 1)],  # a task here holds at most 2 MiB
    ids=["fits-two-workers", "one-worker", "below-one-task"],
)
def test_max_memory_lowers_concurrency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cap: str, workers: int
) -> None:
    """--max-memory: 200 MiB fixed + workers × task memory must fit, else fewer workers."""
    src = builders.build_image(
        tmp_path / "in.zarr", axes="zyx", shape=(8, 256, 256), chunks=(1, 128, 128)
    )
    report = tmp_path / "report.json"
    args = ["--workers", "2", "--max-memory", cap, "--report", str(report)]
    convert_and_check(src, tmp_path / "out.zarr", "--output-codec", "zstd", *args)
    assert json.loads(report.read_text())["workers"] == workers
    # A cap that cannot be kept is said, not silently exceeded.
    assert ("below what one copy task needs" in capsys.readouterr().err) == (cap == "10MiB")
