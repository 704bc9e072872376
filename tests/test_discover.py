"""Discovery: what :func:`ngff_resave.discover.discover` inventories in real 0.4 trees on disk,
and how it refuses broken ones (the error class, and a message that names the file)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ngff_resave.discover import MAX_JSON_BYTES, Inventory, discover
from ngff_resave.errors import (
    InputError,
    NodeNotFoundError,
    ResaveError,
    StorageError,
    UnsafePathError,
)
from ngff_resave.locations import LocalStore
from ngff_resave.remote import HttpStore, RetryPolicy
from tests.support import builders
from tests.support.httpserver import StaticHttpServer

FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)
OME_XML = "OME/METADATA.ome.xml"


def run(root: Path) -> Inventory:
    return discover(LocalStore(str(root)))


def kinds(inventory: Inventory) -> list[tuple[str, str]]:
    """The groups found, in the order found, as ``(path, kind)``."""
    return [(g.path, g.kind) for g in inventory.groups]


def levels(inventory: Inventory) -> list[tuple[str, int | None]]:
    """The arrays found, in the order found, as ``(path, level)``."""
    return [(a.path, a.level) for a in inventory.arrays]


def small_image(root: Path, **kwargs: Any) -> Path:
    """A tiny 2-level ``yx`` image (fast to write)."""
    options: dict[str, Any] = {
        "axes": "yx",
        "shape": (16, 12),
        "chunks": (8, 8),
        "levels": 2,
        "omero": False,
    }
    return builders.build_image(root, **{**options, **kwargs})


def small_bf2raw(root: Path, *, explicit: bool = True, ome_xml: bool = True) -> Path:
    """:func:`builders.build_bioformats2raw` with two tiny series (fast to write)."""
    builders.write_group(root, {"bioformats2raw.layout": 3})
    for i in range(2):
        small_image(root / str(i), seed=i, name=f"series {i}")
    xml = builders.ome_xml_document(2) if ome_xml else None
    builders.write_ome_group(root, ["0", "1"] if explicit else None, xml=xml)
    return root


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    """Apply ``change`` to the JSON document at ``path`` in place (what it returns is unused)."""
    doc = builders.read_json(path)
    change(doc)
    builders.write_json(path, doc)


# --------------------------------------------------------------------------- images


IMAGE_CASES = [
    # (axes, shape, chunks, dtype, levels, separator)
    pytest.param("yx", (30, 20), (16, 16), "|u1", 1, ".", id="2d-one-level-dot"),
    pytest.param("czyx", (2, 5, 40, 36), (1, 2, 16, 16), ">f4", 3, "/", id="4d-three-levels"),
    pytest.param("tczyx", (2, 1, 3, 9, 7), (1, 1, 2, 4, 4), "<u2", 2, "/", id="5d"),
]


@pytest.mark.parametrize(("axes", "shape", "chunks", "dtype", "n_levels", "separator"), IMAGE_CASES)
def test_image_levels_carry_their_axes_and_array_metadata(
    tmp_input: Path,
    axes: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: str,
    n_levels: int,
    separator: str,
) -> None:
    builders.build_image(
        tmp_input,
        axes=axes,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        levels=n_levels,
        dimension_separator=separator,
    )
    inventory = run(tmp_input)
    assert inventory.root_kind == "image"
    assert kinds(inventory) == [("", "image")]
    assert inventory.groups[0].attrs == builders.read_json(tmp_input / ".zattrs")
    assert levels(inventory) == [(str(k), k) for k in range(n_levels)]
    for k, node in enumerate(inventory.arrays):
        assert node.dimension_names == tuple(axes)
        assert node.axis_types == tuple(builders.AXIS_TYPES[a] for a in axes)
        level_shape = builders.level_shape(shape, axes, k)
        assert node.meta.shape == level_shape
        assert node.meta.chunks == tuple(map(min, chunks, level_shape))
        assert node.meta.dtype == dtype
        assert node.meta.separator == separator
    assert (inventory.files, inventory.generic_arrays, inventory.warnings) == ([], [], [])


def test_axis_types_missing_or_not_strings_are_none(tmp_input: Path) -> None:
    small_image(tmp_input)

    def retype(attrs: dict[str, Any]) -> None:
        attrs["multiscales"][0]["axes"] = [{"name": "y", "type": 3}, {"name": "x"}]

    edit_json(tmp_input / ".zattrs", retype)
    node = run(tmp_input).arrays[0]
    assert node.dimension_names == ("y", "x")
    assert node.axis_types == (None, None)


def test_image_with_labels_and_tables(tmp_input: Path) -> None:
    """Labels are walked from the metadata, the AnnData ``tables/`` group from the listing:
    numeric arrays go to the pixel pipeline, string arrays to the generic copy."""
    builders.build_with_tables(tmp_input)
    before = builders.hash_tree(tmp_input)
    inventory = run(tmp_input)
    assert builders.hash_tree(tmp_input) == before, "discover must not write to its input"
    assert inventory.root_kind == "image"
    assert kinds(inventory) == [
        ("", "image"),
        ("labels", "labels"),
        ("labels/cells", "label-image"),
        ("tables", "group"),
        ("tables/nuclei", "group"),
        ("tables/nuclei/obs", "group"),
        ("tables/nuclei/var", "group"),
    ]
    assert levels(inventory) == [
        ("0", 0),
        ("1", 1),
        ("labels/cells/0", 0),
        ("labels/cells/1", 1),
        ("tables/nuclei/X", None),
        ("tables/nuclei/obs/label", None),
    ]
    assert inventory.generic_arrays == ["tables/nuclei/obs/_index", "tables/nuclei/var/_index"]
    by_path = {a.path: a for a in inventory.arrays}
    label = by_path["labels/cells/0"]
    assert (label.dimension_names, label.meta.shape, label.meta.dtype) == (
        ("c", "y", "x"),
        (1, 32, 30),
        "<u4",
    )
    table_x = by_path["tables/nuclei/X"]
    assert (table_x.dimension_names, table_x.axis_types) == (None, None)
    assert (table_x.meta.shape, table_x.meta.dtype) == ((12, 3), "<f4")
    assert table_x.attrs == {"encoding-type": "array", "encoding-version": "0.2.0"}
    groups = {g.path: g for g in inventory.groups}
    for path in ("labels", "labels/cells", "tables/nuclei/obs"):
        assert groups[path].attrs == builders.read_json(tmp_input / path / ".zattrs")
    assert (inventory.files, inventory.warnings) == ([], [])


def test_parents_are_listed_before_their_children(tmp_input: Path) -> None:
    builders.build_with_tables(tmp_input)
    inventory = run(tmp_input)
    order = {g.path: i for i, g in enumerate(inventory.groups)}
    for i, group in enumerate(inventory.groups[1:], start=1):
        parent = group.path.rpartition("/")[0]
        assert order[parent] < i, f"{group.path} listed before its parent {parent!r}"
    for path in [a.path for a in inventory.arrays] + inventory.generic_arrays:
        assert path.rpartition("/")[0] in order, f"{path} has no parent group in the inventory"


def test_unlisted_label_image_and_other_groups_are_found_by_listing(tmp_input: Path) -> None:
    """A label image the ``labels`` list leaves out, a listed label without ``image-label``,
    and a nested non-OME group with a numeric array: all carried over with their kinds."""
    small_image(tmp_input)
    for name in ("cells", "nuclei"):
        builders.add_label_image(
            tmp_input, name, axes="yx", shape=(16, 12), chunks=(8, 8), levels=1
        )
    builders.write_json(tmp_input / "labels" / ".zattrs", {"labels": ["nuclei"]})
    edit_json(tmp_input / "labels" / "nuclei" / ".zattrs", lambda a: a.pop("image-label"))
    builders.write_group(tmp_input / "extra", {"note": "not OME"})
    builders.write_group(tmp_input / "extra" / "deeper")
    data = builders.random_pixels((5,), "<i8", seed=1)
    builders.write_v2_array(tmp_input / "extra" / "deeper" / "values", data, chunks=(5,))
    inventory = run(tmp_input)
    assert kinds(inventory) == [
        ("", "image"),
        ("labels", "labels"),
        ("labels/nuclei", "image"),
        ("labels/cells", "label-image"),
        ("extra", "group"),
        ("extra/deeper", "group"),
    ]
    assert levels(inventory)[-1] == ("extra/deeper/values", None)
    assert {g.path: g.attrs for g in inventory.groups}["extra"] == {"note": "not OME"}


def test_second_multiscale_is_its_own_pyramid(tmp_input: Path) -> None:
    """0.4 ``multiscales`` is a list; each entry is a whole pyramid from full resolution down."""
    small_image(tmp_input)
    second = builders.multiscales_metadata("yx", 2, name="copy")
    for dataset in second["datasets"]:
        dataset["path"] = "b" + dataset["path"]
    edit_json(tmp_input / ".zattrs", lambda a: a["multiscales"].append(second))
    for level in ("0", "1"):
        shutil.copytree(tmp_input / level, tmp_input / f"b{level}")
    assert levels(run(tmp_input)) == [("0", 0), ("1", 1), ("b0", 0), ("b1", 1)]


def test_datetime_array_in_a_table_is_carried_over(tmp_input: Path) -> None:
    small_image(tmp_input)
    builders.write_group(tmp_input / "tables")
    dates = builders.random_pixels((4,), "<i8", seed=2).astype("<M8[s]")
    builders.write_v2_array(tmp_input / "tables" / "when", dates, chunks=(4,), fill_value=None)
    assert run(tmp_input).generic_arrays == ["tables/when"]


# --------------------------------------------------------------------------- plates


PLATE_CASES = [
    pytest.param(
        {"rows": 2, "cols": 1, "fields": 2},
        [
            ("", "plate"),
            ("A", "plate-row"),
            ("A/1", "well"),
            ("A/1/0", "image"),
            ("A/1/1", "image"),
            ("B", "plate-row"),
            ("B/1", "well"),
            ("B/1/0", "image"),
            ("B/1/1", "image"),
        ],
        id="2x1-two-fields",
    ),
    pytest.param(
        {"rows": 1, "cols": 2, "fields": 1, "with_labels": True, "acquisitions": False},
        [
            ("", "plate"),
            ("A", "plate-row"),
            ("A/1", "well"),
            ("A/1/0", "image"),
            ("A/1/0/labels", "labels"),
            ("A/1/0/labels/cells", "label-image"),
            ("A/2", "well"),
            ("A/2/0", "image"),
            ("A/2/0/labels", "labels"),
            ("A/2/0/labels/cells", "label-image"),
        ],
        id="1x2-labels",
    ),
]


@pytest.mark.parametrize(("layout", "expected"), PLATE_CASES)
def test_plate_rows_wells_and_fields(
    tmp_input: Path, layout: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    builders.build_plate(tmp_input, **layout)
    inventory = run(tmp_input)
    assert inventory.root_kind == "plate"
    assert kinds(inventory) == expected
    images = [p for p, k in expected if k in ("image", "label-image")]
    assert levels(inventory) == [(f"{p}/{k}", k) for p in images for k in (0, 1)]
    assert all(a.dimension_names == ("c", "y", "x") for a in inventory.arrays)
    well = {g.path: g for g in inventory.groups}["A/1"]
    assert well.attrs == builders.read_json(tmp_input / "A" / "1" / ".zattrs")


def test_well_the_plate_does_not_list_is_still_carried(tmp_input: Path) -> None:
    builders.build_plate(tmp_input, rows=1, cols=2, fields=1)
    edit_json(tmp_input / ".zattrs", lambda a: a["plate"]["wells"].pop())  # drops A/2
    assert kinds(run(tmp_input)) == [
        ("", "plate"),
        ("A", "plate-row"),
        ("A/1", "well"),
        ("A/1/0", "image"),
        ("A/2", "well"),
        ("A/2/0", "image"),
    ]


# --------------------------------------------------------------------------- bioformats2raw


def _series_plate(root: Path) -> None:
    """Series 1 replaced by a one-well plate (bioformats2raw writes HCS data this way)."""
    shutil.rmtree(root / "1")
    builders.build_plate(root / "1", rows=1, cols=1, fields=1, acquisitions=False)


BF2RAW_CASES = [
    # (explicit series, OME XML, change, groups, series in the OME group, files, warns)
    pytest.param(
        True,
        True,
        None,
        [("", "bioformats2raw"), ("OME", "ome-series"), ("0", "image"), ("1", "image")],
        ["0", "1"],
        [OME_XML],
        False,
        id="series-listed",
    ),
    pytest.param(
        False,
        True,
        None,
        [("", "bioformats2raw"), ("OME", "ome-series"), ("0", "image"), ("1", "image")],
        ["0", "1"],
        [OME_XML],
        True,
        id="series-not-listed",
    ),
    pytest.param(
        True,
        False,
        None,
        [("", "bioformats2raw"), ("OME", "ome-series"), ("0", "image"), ("1", "image")],
        ["0", "1"],
        [],
        False,
        id="no-ome-xml",
    ),
    pytest.param(
        False,
        False,
        lambda root: shutil.rmtree(root / "OME"),
        [("", "bioformats2raw"), ("0", "image"), ("1", "image")],
        None,
        [],
        False,
        id="no-ome-group",
    ),
    pytest.param(
        True,
        True,
        lambda root: builders.write_ome_group(root, ["1"], xml=None),
        [("", "bioformats2raw"), ("OME", "ome-series"), ("1", "image"), ("0", "image")],
        ["1"],
        [OME_XML],
        False,
        id="one-series-unlisted",
    ),
    pytest.param(
        True,
        True,
        _series_plate,
        [
            ("", "bioformats2raw"),
            ("OME", "ome-series"),
            ("0", "image"),
            ("1", "plate"),
            ("1/A", "plate-row"),
            ("1/A/1", "well"),
            ("1/A/1/0", "image"),
        ],
        ["0", "1"],
        [OME_XML],
        False,
        id="series-is-a-plate",
    ),
]


@pytest.mark.parametrize(
    ("explicit", "ome_xml", "change", "expected", "series", "files", "warns"), BF2RAW_CASES
)
def test_bioformats2raw(
    tmp_input: Path,
    explicit: bool,
    ome_xml: bool,
    change: Callable[[Path], Any] | None,
    expected: list[tuple[str, str]],
    series: list[str] | None,
    files: list[str],
    warns: bool,
) -> None:
    """Without an OME ``series`` list, the series are the groups 0, 1, … (bioformats2raw
    layout); 0.5 requires the list, so an implicit one is written out, with a warning."""
    small_bf2raw(tmp_input, explicit=explicit, ome_xml=ome_xml)
    if change is not None:
        change(tmp_input)
    inventory = run(tmp_input)
    assert inventory.root_kind == "bioformats2raw"
    assert kinds(inventory) == expected
    groups = {g.path: g for g in inventory.groups}
    if series is None:
        assert "OME" not in groups
    else:
        assert groups["OME"].attrs == {"series": series}
    assert inventory.files == files
    if warns:
        [warning] = inventory.warnings
        assert str(tmp_input / "OME") in warning and "(0, 1)" in warning
    else:
        assert inventory.warnings == []


# --------------------------------------------------------------------------- HTTP (no listing)


def test_http_input_is_walked_from_metadata_alone(tmp_path: Path) -> None:
    """Plain HTTP cannot list: the OME nodes are found from the metadata, ``tables/`` is not,
    and a warning says so."""
    builders.build_with_tables(tmp_path / "img.zarr")
    small_bf2raw(tmp_path / "bf.zarr", explicit=False)
    local_image = run(tmp_path / "img.zarr")
    local_bf = run(tmp_path / "bf.zarr")
    with StaticHttpServer(tmp_path) as server:
        image = discover(HttpStore(f"{server.url}/img.zarr", retry=FAST_RETRY))
        bf = discover(HttpStore(f"{server.url}/bf.zarr", retry=FAST_RETRY))
    assert image.groups == [g for g in local_image.groups if not g.path.startswith("tables")]
    assert image.arrays == [a for a in local_image.arrays if not a.path.startswith("tables")]
    assert image.generic_arrays == []
    [warning] = image.warnings
    assert warning.startswith(f"{server.url}/img.zarr: cannot be listed")
    # The implicit series are found by probing 0, 1, … one request at a time.
    assert (bf.groups, bf.arrays, bf.files) == (local_bf.groups, local_bf.arrays, local_bf.files)
    assert len(bf.warnings) == 2 and "cannot be listed" in bf.warnings[1]
    assert f"{server.url}/bf.zarr/OME: no 'series' list" in bf.warnings[0]


# --------------------------------------------------------------------------- refused inputs


def _bare_array(root: Path) -> None:
    builders.write_v2_array(root, builders.random_pixels((4, 4), "u1", 0), chunks=(4, 4))


def _zarr_v3_root(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')


def _sparse_huge(path: Path) -> None:
    with path.open("wb") as fh:
        fh.truncate(MAX_JSON_BYTES + 1)  # sparse: costs no disk, and must cost no memory


def _loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)  # ELOOP: unreadable, even for root


def _set(rel: str, obj: Any) -> Callable[[Path], None]:
    return lambda root: builders.write_json(root / rel, obj)


def _bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(data)


def _edit(rel: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    return lambda root: edit_json(root / rel, change)


def _remove(rel: str) -> Callable[[Path], None]:
    def remove(root: Path) -> None:
        target = root / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return remove


def _datasets(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    datasets: list[dict[str, Any]] = attrs["multiscales"][0]["datasets"]
    return datasets


def _image(root: Path) -> None:
    small_image(root)


def _labelled(root: Path) -> None:
    small_image(root)
    builders.add_label_image(root, "cells", axes="yx", shape=(16, 12), chunks=(8, 8), levels=1)


def _tables(root: Path) -> None:
    small_image(root)
    builders.write_anndata_table(root / "tables", n_obs=4)


def _plate(root: Path) -> None:
    builders.build_plate(root, rows=1, cols=2, fields=1, acquisitions=False)


def _bf2raw(root: Path) -> None:
    small_bf2raw(root, ome_xml=False)


def _bf2raw_bare(root: Path) -> None:
    builders.write_group(root, {"bioformats2raw.layout": 3})


def _nothing(root: Path) -> None:
    root.mkdir(parents=True)


def _escaping_symlink(root: Path) -> None:
    builders.write_group(root.parent / "outside", {"secret": True})
    (root / "extra").symlink_to(root.parent / "outside")


def _dataset_escape(attrs: dict[str, Any]) -> None:
    _datasets(attrs)[1]["path"] = "../elsewhere"


def _grow(doc: dict[str, Any]) -> None:
    doc["shape"] = [99, 99]


def _add_dimension(doc: dict[str, Any]) -> None:
    doc["shape"] = [1, *doc["shape"]]
    doc["chunks"] = [1, *doc["chunks"]]


def _list_label(attrs: dict[str, Any]) -> None:
    attrs["labels"].append("nuclei")


REFUSED = [
    # (build, damage, error class, the file the message names, what it says)
    pytest.param(_nothing, None, InputError, "", "not a Zarr v2 group", id="empty-directory"),
    pytest.param(_zarr_v3_root, None, InputError, "zarr.json", "Zarr v3", id="zarr-v3-root"),
    pytest.param(_bare_array, None, InputError, ".zarray", "bare array", id="bare-array"),
    pytest.param(
        _image, _set(".zattrs", {"foo": 1}), InputError, ".zattrs", "not OME-Zarr 0.4", id="no-ome"
    ),
    pytest.param(
        _image,
        _set(".zattrs", {"ome": {"version": "0.5", "multiscales": []}}),
        InputError,
        ".zattrs",
        "OME-Zarr 0.5",
        id="ome-0.5-block",
    ),
    pytest.param(
        _image,
        _edit(".zattrs", lambda a: a["multiscales"][0].update(version="0.3")),
        InputError,
        ".zattrs",
        "'0.3'",
        id="version-0.3",
    ),
    pytest.param(
        _image,
        _set(".zgroup", {"zarr_format": 3}),
        InputError,
        ".zgroup",
        "zarr_format is 3",
        id="root-zgroup-format",
    ),
    pytest.param(
        _image,
        _bytes(".zattrs", b'{"multiscales": [}'),
        InputError,
        ".zattrs",
        "invalid JSON at line 1",
        id="zattrs-not-json",
    ),
    pytest.param(
        _image,
        _bytes(".zattrs", b'{"name": "\xff"}'),
        InputError,
        ".zattrs",
        "not UTF-8",
        id="zattrs-not-utf8",
    ),
    pytest.param(
        _image, _set(".zattrs", [1, 2]), InputError, ".zattrs", "got list", id="zattrs-a-list"
    ),
    pytest.param(
        _image, _bytes(".zattrs", b""), InputError, ".zattrs", "invalid JSON", id="zattrs-empty"
    ),
    pytest.param(
        _image,
        lambda root: _sparse_huge(root / ".zattrs"),
        InputError,
        ".zattrs",
        "larger than",
        id="zattrs-huge",
    ),
    pytest.param(
        _image,
        lambda root: _loop(root / ".zattrs"),
        StorageError,
        ".zattrs",
        "cannot read",
        id="zattrs-unreadable",
    ),
    pytest.param(
        _image,
        _bytes("1/.zarray", b"zarr_format: 2"),
        InputError,
        "1/.zarray",
        "invalid JSON",
        id="zarray-not-json",
    ),
    pytest.param(
        _image,
        lambda root: _loop(root / "0" / ".zarray"),
        StorageError,
        "0/.zarray",
        "cannot read",
        id="zarray-unreadable",
    ),
    pytest.param(
        _image,
        _edit("0/.zarray", lambda d: d.update(zarr_format=3)),
        InputError,
        "0/.zarray",
        "zarr_format is 3",
        id="zarray-format",
    ),
    pytest.param(
        _image,
        _remove("1/.zarray"),
        NodeNotFoundError,
        "1/.zarray",
        "resolution level 1 is missing",
        id="level-missing",
    ),
    pytest.param(
        _image,
        _edit("0/.zarray", _add_dimension),
        InputError,
        "0/.zarray",
        "3 dimensions but the image has 2 axes",
        id="rank-mismatch",
    ),
    pytest.param(
        _image,
        _edit("1/.zarray", _grow),
        InputError,
        "1/.zarray",
        "larger than level 0",
        id="level-grows",
    ),
    pytest.param(
        _image,
        _edit(".zattrs", lambda a: _datasets(a).append({"path": "0"})),
        InputError,
        ".zattrs",
        "same path twice",
        id="dataset-twice",
    ),
    pytest.param(
        _image,
        _edit(".zattrs", _dataset_escape),
        UnsafePathError,
        ".zattrs",
        "dataset path",
        id="dataset-escapes",
    ),
    pytest.param(
        _image,
        _escaping_symlink,
        UnsafePathError,
        "extra",
        "symlink pointing outside",
        id="symlink-escapes",
    ),
    pytest.param(
        _labelled,
        _edit("labels/.zattrs", _list_label),
        NodeNotFoundError,
        "labels/nuclei/.zgroup",
        "label image 'nuclei' is missing",
        id="label-missing",
    ),
    pytest.param(
        _labelled,
        _set("labels/cells/.zattrs", {"note": "no multiscales"}),
        InputError,
        "labels/cells/.zattrs",
        "is not a image or label image",
        id="label-not-an-image",
    ),
    pytest.param(
        _labelled,
        _bytes("labels/cells/.zattrs", b"\x00"),
        InputError,
        "labels/cells/.zattrs",
        "invalid JSON",
        id="label-zattrs-not-json",
    ),
    pytest.param(
        _labelled,
        _set("labels/.zgroup", {"zarr_format": 3}),
        InputError,
        "labels/.zgroup",
        "zarr_format is 3",
        id="labels-zgroup-format",
    ),
    pytest.param(
        _labelled,
        lambda root: (root / "labels/cells/.zgroup").rename(root / "labels/cells/zarr.json"),
        InputError,
        "labels/cells/zarr.json",
        "is Zarr v3",
        id="label-is-v3",
    ),
    pytest.param(
        _labelled,
        _set("labels/.zattrs", {"labels": "cells"}),
        InputError,
        "labels/.zattrs",
        "list of strings",
        id="labels-not-a-list",
    ),
    pytest.param(
        _tables,
        _bytes("tables/nuclei/X/.zarray", b"{"),
        InputError,
        "tables/nuclei/X/.zarray",
        "invalid JSON",
        id="table-zarray-not-json",
    ),
    pytest.param(
        _tables,
        _set("tables/nuclei/.zgroup", {"zarr_format": "2"}),
        InputError,
        "tables/nuclei/.zgroup",
        "zarr_format is '2'",
        id="table-zgroup-format",
    ),
    pytest.param(
        _plate,
        _remove("A/2"),
        NodeNotFoundError,
        "A/2/.zgroup",
        "well 'A/2' is missing",
        id="well-missing",
    ),
    pytest.param(
        _plate,
        _remove("A/.zgroup"),
        NodeNotFoundError,
        "A/.zgroup",
        "plate row 'A' is missing",
        id="row-missing",
    ),
    pytest.param(
        _plate,
        _remove("A/1/0"),
        NodeNotFoundError,
        "A/1/0/.zgroup",
        "field '0' is missing",
        id="field-missing",
    ),
    pytest.param(
        _plate,
        _set("A/1/.zattrs", {}),
        InputError,
        "A/1/.zattrs",
        "is not a well",
        id="well-not-a-well",
    ),
    pytest.param(
        _plate,
        _edit(".zattrs", lambda a: a["plate"].update(wells=[])),
        InputError,
        ".zattrs",
        "no wells",
        id="plate-no-wells",
    ),
    pytest.param(
        _plate,
        _edit(".zattrs", lambda a: a["plate"]["wells"].append({"path": "A/1"})),
        InputError,
        ".zattrs",
        "well 'A/1' twice",
        id="well-twice",
    ),
    pytest.param(
        _plate,
        _edit(".zattrs", lambda a: a["plate"]["wells"][0].update(path="A1")),
        InputError,
        ".zattrs",
        "'<row>/<column>'",
        id="well-path-shape",
    ),
    pytest.param(
        _plate,
        _edit("A/1/.zattrs", lambda a: a["well"].update(images=[])),
        InputError,
        "A/1/.zattrs",
        "well.images",
        id="well-no-fields",
    ),
    pytest.param(
        _bf2raw,
        _set("OME/.zattrs", {"series": ["0", "1", "2"]}),
        NodeNotFoundError,
        "2/.zgroup",
        "series '2' is missing",
        id="series-missing",
    ),
    pytest.param(
        _bf2raw,
        _set("OME/.zattrs", {"series": "0"}),
        InputError,
        "OME/.zattrs",
        "list of strings",
        id="series-not-a-list",
    ),
    pytest.param(
        _bf2raw,
        _bytes("OME/.zattrs", b"series"),
        InputError,
        "OME/.zattrs",
        "invalid JSON",
        id="ome-zattrs-not-json",
    ),
    pytest.param(
        _bf2raw_bare, None, InputError, ".zattrs", "no series", id="bf2raw-without-series"
    ),
]


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Callable[[Path], None], Path], None]:
    """Copy the input ``build`` writes to a path; each input is written once per module."""
    templates: dict[Callable[[Path], None], Path] = {}

    def copy(build: Callable[[Path], None], dest: Path) -> None:
        if build not in templates:
            templates[build] = tmp_path_factory.mktemp("template") / "input.zarr"
            build(templates[build])
        shutil.copytree(templates[build], dest, symlinks=True)

    return copy


@pytest.mark.parametrize(("build", "damage", "error", "names", "says"), REFUSED)
def test_broken_input_is_refused_naming_the_file(
    tmp_input: Path,
    built: Callable[[Callable[[Path], None], Path], None],
    build: Callable[[Path], None],
    damage: Callable[[Path], Any] | None,
    error: type[ResaveError],
    names: str,
    says: str,
) -> None:
    built(build, tmp_input)
    if damage is not None:
        damage(tmp_input)
    with pytest.raises(ResaveError) as caught:
        run(tmp_input)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    message = str(caught.value)
    where = str(tmp_input / names) if names else str(tmp_input)
    assert message.startswith(where + ":") or f" {where}:" in message, message
    assert says in message
