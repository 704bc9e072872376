"""The corpus of hostile (and awkward) inputs, built on disk at test time, and shared helpers.

Each :class:`Case` builds one input under a scratch directory and says what the CLI must do
with it: fail with exit 1 and one ``ERROR:`` line naming ``names`` (a file or node), or —
for the awkward-but-valid ones — convert with exit 0 and values equal to the input's.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np

from ngff_resave.cli import main
from tests.support.builders import (
    build_bioformats2raw,
    build_image,
    build_plate,
    hash_tree,
    write_group,
    write_json,
    write_v2_array,
)

#: Largest file hashed byte for byte; larger (sparse) files are hashed by size, mtime and ends.


# --------------------------------------------------------------------------- helpers


def tree_digest(root: Path, exclude: Sequence[Path] = ()) -> str:
    """SHA-256 over a tree (``exclude`` skipped): :func:`tests.support.builders.hash_tree`."""
    return hash_tree(root, exclude=exclude)


@dataclass(frozen=True)
class CliRun:
    """Exit status and captured streams of one in-process CLI run."""

    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(argv: Sequence[str]) -> CliRun:
    """``ngff_resave.cli.main(argv)`` with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return CliRun(status, out.getvalue(), err.getvalue())


def output_looks_complete(out: Path) -> bool:
    """Whether an output location holds a root ``zarr.json`` (what readers take as done)."""
    return (out / "zarr.json").is_file()


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    """Rewrite the JSON document at ``path`` with ``change(doc)`` (which may mutate and return)."""
    doc = json.loads(path.read_text())
    result = change(doc)
    write_json(path, doc if result is None else result)


# --------------------------------------------------------------------------- inputs


def small_image(root: Path, **kwargs: Any) -> Path:
    """A small 0.4 image: czyx (2, 4, 32, 32) u2, chunks (1, 2, 16, 16), 2 levels."""
    options: dict[str, Any] = {
        "axes": "czyx",
        "shape": (2, 4, 32, 32),
        "chunks": (1, 2, 16, 16),
        "levels": 2,
    }
    options.update(kwargs)
    return build_image(root, **options)


def small_plate(root: Path) -> Path:
    """A 0.4 plate with wells A/1 and A/2, one field each."""
    return build_plate(root, rows=1, cols=2, fields=1, acquisitions=False)


def _zattrs(root: Path) -> Path:
    return root / ".zattrs"


def _multiscale(doc: dict[str, Any]) -> dict[str, Any]:
    ms: dict[str, Any] = doc["multiscales"][0]
    return ms


def _set_datasets(root: Path, paths: Sequence[str]) -> None:
    def change(doc: dict[str, Any]) -> None:
        template = _multiscale(doc)["datasets"][0]
        _multiscale(doc)["datasets"] = [{**template, "path": p} for p in paths]

    edit_json(_zattrs(root), change)


def _set_zarray(root: Path, level: str, **values: Any) -> None:
    edit_json(root / level / ".zarray", lambda doc: doc.update(values))


def _first_chunk(root: Path, level: str = "0") -> Path:
    return root / level / "0" / "0" / "0" / "0"


@dataclass(frozen=True)
class Case:
    """One corpus entry: how to build it and what the CLI must say."""

    id: str
    build: Callable[[Path], Path]  # (scratch dir) -> input root
    names: str  # text the one ERROR line must contain (the node or file)
    args: tuple[str, ...] = ()
    succeeds: bool = False
    #: Wall-clock bound of the run (seconds): the "must not explode" cases.
    seconds: float = 60.0


def _image_then(change: Callable[[Path], None], **kwargs: Any) -> Callable[[Path], Path]:
    def build(base: Path) -> Path:
        root = small_image(base / "in.zarr", **kwargs)
        change(root)
        return root

    return build


def _plate_then(change: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(base: Path) -> Path:
        root = small_plate(base / "in.zarr")
        change(root)
        return root

    return build


def _write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / rel).write_bytes(data)

    return change


def _truncate_chunk(root: Path) -> None:
    chunk = _first_chunk(root)
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])


def _scramble_chunk(root: Path) -> None:
    """Scramble the middle of a gzip chunk's deflate stream (its CRC-32 then fails).

    (A Blosc chunk of noisy pixels is stored "memcpyed", without a checksum: a flipped
    payload byte there is undetectable by anyone, so gzip inputs carry this case.)
    """
    chunk = _first_chunk(root)
    data = bytearray(chunk.read_bytes())
    for i in range(20, len(data) - 8):
        data[i] = (data[i] * 7 + 13) % 256
    chunk.write_bytes(bytes(data))


def _blosc_header_lies(root: Path) -> None:
    """A Blosc header whose uncompressed size is not the chunk's."""
    chunk = _first_chunk(root)
    data = bytearray(chunk.read_bytes())
    data[4:8] = (int.from_bytes(data[4:8], "little") // 2).to_bytes(4, "little")
    chunk.write_bytes(bytes(data))


def _symlink_level_outside(root: Path) -> None:
    outside = root.parent / "outside-level"
    shutil.move(str(root / "1"), str(outside))
    (root / "1").symlink_to(outside, target_is_directory=True)


def _symlink_child_outside(root: Path) -> None:
    outside = root.parent / "outside-group"
    write_group(outside, {"note": "not part of the input"})
    (root / "extra").symlink_to(outside, target_is_directory=True)


def _drop_axis(root: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        del _multiscale(doc)["axes"][0]

    edit_json(_zattrs(root), change)


def _many_levels(root: Path) -> None:
    doc = json.loads(_zattrs(root).read_text())
    scale = _multiscale(doc)["datasets"][0]["coordinateTransformations"]
    _multiscale(doc)["datasets"] += [
        {"path": str(i), "coordinateTransformations": scale} for i in range(2, 100_000)
    ]
    _zattrs(root).write_text(json.dumps(doc, separators=(",", ":")))


def _plate_many_wells(root: Path) -> None:
    doc = json.loads(_zattrs(root).read_text())
    doc["plate"]["wells"] += [
        {"path": f"A/{i}", "rowIndex": 0, "columnIndex": 0} for i in range(3, 1_000_003)
    ]
    _zattrs(root).write_text(json.dumps(doc, separators=(",", ":")))


def _sparse_huge_zattrs(root: Path) -> None:
    # A sparse 1 GiB file: costs no disk, but reading it whole would cost 1 GiB of memory.
    with _zattrs(root).open("r+b") as fh:
        fh.truncate(1 << 30)


def _just_over_limit_zattrs(root: Path) -> None:
    doc = json.loads(_zattrs(root).read_text())
    doc["padding"] = "x" * (64 * 1024 * 1024)
    _zattrs(root).write_text(json.dumps(doc))


def _v05_input(base: Path) -> Path:
    root = base / "in.zarr"
    write_json(
        root / "zarr.json",
        {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5"}}},
    )
    return root


def _v05_attrs(root: Path) -> None:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        return {"ome": {"version": "0.5", "multiscales": doc["multiscales"]}}

    edit_json(_zattrs(root), change)


def _v03_input(root: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        _multiscale(doc)["version"] = "0.3"
        _multiscale(doc)["axes"] = ["c", "z", "y", "x"]

    edit_json(_zattrs(root), change)


def _v03_axes_only(root: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        del _multiscale(doc)["version"]
        _multiscale(doc)["axes"] = ["c", "z", "y", "x"]

    edit_json(_zattrs(root), change)


def _empty_dir(base: Path) -> Path:
    root = base / "in.zarr"
    root.mkdir()
    return root


def _bare_array(base: Path) -> Path:
    return write_v2_array(base / "in.zarr", np.arange(16, dtype="u2"), chunks=(8,))


def _missing_input(base: Path) -> Path:
    return base / "no-such-input.zarr"


def _swap_wells(root: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["plate"]["wells"][1]["path"] = doc["plate"]["wells"][0]["path"]

    edit_json(_zattrs(root), change)


def _no_wells(root: Path) -> None:
    edit_json(_zattrs(root), lambda doc: doc["plate"].update(wells=[]))


def _absent_well(root: Path) -> None:
    shutil.rmtree(root / "A" / "2")


def _field_absent(root: Path) -> None:
    shutil.rmtree(root / "A" / "1" / "0")


def _label_without_multiscales(root: Path) -> None:
    write_group(root / "labels", {"labels": ["cells"]})
    write_group(root / "labels" / "cells", {"note": "no multiscales here"})


def _wrong_level_order(root: Path) -> None:
    _set_datasets(root, ["1", "0"])


def _bad_filters(root: Path) -> None:
    _set_zarray(root, "0", filters=[{"id": "no-such-filter"}])


def _bioformats_no_series(base: Path) -> Path:
    root = base / "in.zarr"
    write_group(root, {"bioformats2raw.layout": 3})
    return root


def _bioformats_series_escape(base: Path) -> Path:
    root = build_bioformats2raw(base / "in.zarr", series=1, ome_xml=False)
    edit_json(root / "OME" / ".zattrs", lambda doc: doc.update(series=["../../elsewhere"]))
    return root


def _output_inside_input(base: Path) -> Path:
    return small_image(base / "in.zarr")


def _unicode_names(base: Path) -> Path:
    return small_image(base / "in put é 漢字 🙂.zarr")


def _order_f(base: Path) -> Path:
    return small_image(base / "in.zarr", order="F")


def _big_endian(base: Path) -> Path:
    return small_image(base / "in.zarr", dtype=">f4", fill_value=float("nan"))


def _missing_chunks(base: Path) -> Path:
    return small_image(base / "in.zarr", missing_chunks=True, with_labels=True)


def _unknown_attrs(base: Path) -> Path:
    root = small_image(base / "in.zarr", extra_attrs={"zeta": {"version": "9"}, "x": [None]})
    write_v2_array(root / "extras" / "table", np.arange(10, dtype="<i8"), chunks=(4,))
    write_group(root / "extras")
    return root


def _zlib_filters(base: Path) -> Path:
    return small_image(base / "in.zarr", compressor="zlib", filters=[numcodecs.Delta("<u2")])


#: The corpus. ``names`` is matched against the single ERROR line.
CASES: tuple[Case, ...] = (
    Case("invalid-json", _image_then(_write_bytes(".zattrs", b'{"multiscales": [')), ".zattrs"),
    Case("json-not-object", _image_then(_write_bytes(".zattrs", b"[1, 2, 3]")), ".zattrs"),
    Case("zarray-not-object", _image_then(_write_bytes("0/.zarray", b'"array"')), "0/.zarray"),
    Case("zarray-invalid-json", _image_then(_write_bytes("1/.zarray", b"{,}")), "1/.zarray"),
    Case("json-nan-nesting", _image_then(_write_bytes(".zattrs", b"[" * 100_000)), ".zattrs"),
    Case("huge-json-65MiB", _image_then(_just_over_limit_zattrs), ".zattrs", seconds=20),
    Case("huge-json-sparse-1GiB", _image_then(_sparse_huge_zattrs), ".zattrs", seconds=10),
    Case(
        "zgroup-zarr-format-3",
        _image_then(_write_bytes(".zgroup", b'{"zarr_format": 3}')),
        ".zgroup",
    ),
    Case("zarray-zarr-format-1", _image_then(lambda r: _set_zarray(r, "0", zarr_format=1)), "0/"),
    Case("shape-negative", _image_then(lambda r: _set_zarray(r, "0", shape=[2, 4, -32, 32])), "0/"),
    Case(
        "shape-not-ints", _image_then(lambda r: _set_zarray(r, "0", shape=[2, 4, "32", 32])), "0/"
    ),
    Case("chunks-zero", _image_then(lambda r: _set_zarray(r, "1", chunks=[1, 2, 0, 16])), "1/"),
    Case("chunks-rank", _image_then(lambda r: _set_zarray(r, "0", chunks=[1, 16, 16])), "0/"),
    Case("axes-count", _image_then(_drop_axis), "0/.zarray"),
    Case("datasets-empty", _image_then(lambda r: _set_datasets(r, [])), ".zattrs"),
    Case("level-missing", _image_then(lambda r: shutil.rmtree(r / "1")), "1/.zarray"),
    Case("levels-wrong-order", _image_then(_wrong_level_order), "0/.zarray"),
    Case("level-path-dotdot", _image_then(lambda r: _set_datasets(r, ["0", "../../etc"])), "etc"),
    Case("level-path-absolute", _image_then(lambda r: _set_datasets(r, ["/etc/passwd"])), "/etc"),
    Case("level-path-duplicate", _image_then(lambda r: _set_datasets(r, ["0", "0"])), ".zattrs"),
    Case("symlink-level-outside", _image_then(_symlink_level_outside), "in.zarr/1"),
    Case("symlink-child-outside", _image_then(_symlink_child_outside), "in.zarr/extra"),
    Case("unknown-dtype", _image_then(lambda r: _set_zarray(r, "0", dtype="<x9")), "0/.zarray"),
    Case("string-dtype", _image_then(lambda r: _set_zarray(r, "0", dtype="<U4")), "0/.zarray"),
    Case(
        "unknown-compressor",
        _image_then(lambda r: _set_zarray(r, "0", compressor={"id": "no-such-codec"})),
        "0/.zarray",
    ),
    Case("unknown-filter", _image_then(_bad_filters), "0/.zarray"),
    Case("fill-value-text", _image_then(lambda r: _set_zarray(r, "0", fill_value="abc")), "0/"),
    Case("fill-value-list", _image_then(lambda r: _set_zarray(r, "1", fill_value=[1, 2])), "1/"),
    Case("fill-value-overflow", _image_then(lambda r: _set_zarray(r, "0", fill_value=2**40)), "0/"),
    Case("order-x", _image_then(lambda r: _set_zarray(r, "0", order="X")), "0/.zarray"),
    Case("chunk-truncated-copy", _image_then(_truncate_chunk), "0/0/0/0/0"),
    Case("chunk-corrupt-copy", _image_then(_scramble_chunk, compressor="gzip"), "0/0/0/0/0"),
    Case("chunk-blosc-header-copy", _image_then(_blosc_header_lies), "0/0/0/0/0"),
    Case(
        "chunk-blosc-header-reencode",
        _image_then(_blosc_header_lies),
        "0/0/0/0/0",
        ("--output-codec", "zstd"),
    ),
    Case(
        "chunk-truncated-reencode",
        _image_then(_truncate_chunk),
        "0/0/0/0/0",
        ("--output-codec", "zstd"),
    ),
    Case(
        "chunk-corrupt-reencode",
        _image_then(_scramble_chunk, compressor="gzip"),
        "0/0/0/0/0",
        ("--output-codec", "zstd"),
    ),
    Case("v05-input", _v05_input, "zarr.json"),
    Case("v05-attrs-in-v2", _image_then(_v05_attrs), ".zattrs"),
    Case("v03-input", _image_then(_v03_input), ".zattrs"),
    Case("v03-axes-strings", _image_then(_v03_axes_only), ".zattrs"),
    Case("not-utf8-zattrs", _image_then(_write_bytes(".zattrs", b'{"a": "\xff\xfe"}')), ".zattrs"),
    Case(
        "not-utf8-zarray", _image_then(_write_bytes("0/.zarray", b'{"dtype": "\xc3("}')), ".zarray"
    ),
    Case("empty-directory", _empty_dir, "in.zarr"),
    Case("bare-array", _bare_array, ".zarray"),
    Case("input-missing", _missing_input, "no-such-input.zarr"),
    Case("image-1e5-levels", _image_then(_many_levels), "2/.zarray", seconds=15),
    Case("plate-0-wells", _plate_then(_no_wells), ".zattrs"),
    Case("plate-duplicate-wells", _plate_then(_swap_wells), "A/1"),
    Case("plate-well-absent", _plate_then(_absent_well), "A/2"),
    Case("plate-field-absent", _plate_then(_field_absent), "A/1/0"),
    Case("plate-1e6-wells", _plate_then(_plate_many_wells), "A/3", seconds=30),
    Case("label-not-an-image", _image_then(_label_without_multiscales), "labels/cells"),
    Case("bioformats2raw-no-series", _bioformats_no_series, ".zattrs"),
    Case("bioformats2raw-series-escape", _bioformats_series_escape, "elsewhere"),
    Case("output-inside-input", _output_inside_input, "overlap"),
)

#: Awkward but valid inputs: these must convert, with values equal to the input's.
GOOD_CASES: tuple[Case, ...] = (
    Case("spaces-and-unicode", _unicode_names, "", succeeds=True),
    Case("order-F", _order_f, "", succeeds=True),
    Case("big-endian-nan-fill", _big_endian, "", succeeds=True),
    Case("missing-chunks-and-labels", _missing_chunks, "", succeeds=True),
    Case("non-ome-children-and-attrs", _unknown_attrs, "", succeeds=True),
    Case("zlib-with-delta-filter", _zlib_filters, "", succeeds=True),
)
