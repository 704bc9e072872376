"""Tests of :mod:`ngff_resave.validate`: OME-Zarr 0.5 validation through the Store protocol.

Valid hierarchies are built at test time with zarr-python 3 (tests/support/v05_builders.py),
then broken in one place each; the published 0.5 metadata in ``../shared/ngff-samples`` is
validated as it stands.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ngff_resave.errors import StorageError
from ngff_resave.locations import LocalStore
from ngff_resave.validate import (
    NodeResult,
    format_results,
    validate_hierarchy,
    validate_node,
)
from tests.support.v05_builders import (
    MemoryStore,
    build_bioformats2raw,
    build_image_with_labels,
    build_plate,
    edit_zarr_json,
    plate_in_memory,
    write_group,
)

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "ngff-samples" / "idr" / "v0.5"


def by_path(results: list[NodeResult]) -> dict[str, NodeResult]:
    return {r.path: r for r in results}


def failures(results: list[NodeResult]) -> dict[str, NodeResult]:
    return {r.path: r for r in results if not r.ok}


def local(root: Path) -> LocalStore:
    return LocalStore(str(root))


# --------------------------------------------------------------------------------------------
# Valid hierarchies
# --------------------------------------------------------------------------------------------


def test_image_with_labels_is_valid(tmp_path: Path) -> None:
    results = validate_hierarchy(local(build_image_with_labels(tmp_path)))
    assert [(r.path, r.kind, r.ok) for r in results] == [
        ("", "image", True),
        ("labels", "labels", True),
        ("labels/cells", "label-image", True),
    ]
    assert all(r.message == "" for r in results)


def test_plate_is_valid_and_every_well_and_field_is_visited(tmp_path: Path) -> None:
    results = validate_hierarchy(local(build_plate(tmp_path)))
    assert failures(results) == {}
    kinds = {r.path: r.kind for r in results}
    assert kinds[""] == "plate"
    assert [p for p, k in kinds.items() if k == "group"] == ["A", "B"]
    assert sorted(p for p, k in kinds.items() if k == "well") == ["A/1", "A/2", "B/1", "B/2"]
    assert len([k for k in kinds.values() if k == "image"]) == 2 * 2 * 2


def test_bioformats2raw_with_ome_group_is_valid(tmp_path: Path) -> None:
    results = validate_hierarchy(local(build_bioformats2raw(tmp_path, n_series=3)))
    assert [(r.path, r.kind, r.ok) for r in results] == [
        ("", "bioformats2raw", True),
        ("OME", "ome-series", True),
        ("0", "image", True),
        ("1", "image", True),
        ("2", "image", True),
    ]


def test_bioformats2raw_without_ome_group_finds_numbered_series(tmp_path: Path) -> None:
    root = build_bioformats2raw(tmp_path, n_series=2, ome_group=False)
    store = MemoryStore.copy_of(root, listable=False)
    results = validate_hierarchy(store)
    assert [(r.path, r.kind, r.ok) for r in results] == [
        ("", "bioformats2raw", True),
        ("0", "image", True),
        ("1", "image", True),
    ]


def test_unlistable_store_still_follows_labels_and_plate(tmp_path: Path) -> None:
    """Plain HTTP cannot list: the walk must come from the OME metadata alone."""
    build_image_with_labels(tmp_path / "img")
    build_plate(tmp_path / "plate")
    image = validate_hierarchy(MemoryStore.copy_of(tmp_path / "img", listable=False))
    plate = validate_hierarchy(MemoryStore.copy_of(tmp_path / "plate", listable=False))
    assert [r.path for r in image] == ["", "labels", "labels/cells"]
    assert len(plate) == 1 + 2 + 4 + 8
    assert all(r.ok for r in image + plate)


def test_non_ome_child_groups_are_visited_where_the_store_lists(tmp_path: Path) -> None:
    root = build_image_with_labels(tmp_path)
    write_group(root, "tables", {"encoding-type": "anndata"})
    write_group(root, "tables/nuclei")
    (root / "not-a-node").mkdir()  # a directory without zarr.json is not part of the hierarchy
    results = by_path(validate_hierarchy(local(root)))
    assert results["tables"] == NodeResult("tables", "group", True, "")
    assert results["tables/nuclei"].kind == "group"
    assert "not-a-node" not in results
    # Arrays of the image are validated as part of the image, not listed again.
    assert "0" not in results


def test_plate_model_warning_does_not_escape(tmp_path: Path) -> None:
    """ome-zarr-models warns that a 0.5 plate has no plate.version; in 0.5 that is correct.
    (pytest turns warnings into errors, so reaching the assert proves it was handled.)"""
    results = validate_hierarchy(local(build_plate(tmp_path)))
    assert results[0] == NodeResult("", "plate", True, "")


# --------------------------------------------------------------------------------------------
# Broken hierarchies: one rule each
# --------------------------------------------------------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        del doc["attributes"]["ome"][key]

    return edit


def _set_ome(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["attributes"]["ome"][key] = value

    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc[key] = value

    return edit


def _bad_well_path(doc: dict[str, Any]) -> None:
    doc["attributes"]["ome"]["plate"]["wells"][1]["path"] = "B/1"  # wells[1] is A/2


def _bad_acquisition(doc: dict[str, Any]) -> None:
    doc["attributes"]["ome"]["well"]["images"][1]["acquisition"] = 7


def _one_label_level(doc: dict[str, Any]) -> None:
    del doc["attributes"]["ome"]["multiscales"][0]["datasets"][1]


def _unsafe_dataset_path(doc: dict[str, Any]) -> None:
    doc["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "../../etc"


BuildFn = Callable[[Path], Path]
BREAKS: list[Any] = [
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "labels", _drop("version")),
        "labels",
        "labels",
        'labels group: ome.version missing; 0.5 requires "version": "0.5"',
        id="labels-version-missing",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "", _set_ome("version", "0.4")),
        "",
        "image",
        'image group: ome.version is \'0.4\'; 0.5 requires "version": "0.5"',
        id="image-version-0.4",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: shutil.rmtree(root / "1"),
        "",
        "image",
        "image: multiscales[0].datasets[1]: array '1' missing (no 1/zarr.json)",
        id="missing-array",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "0", _set("shape", [64, 64])),
        "",
        "image",
        "image: multiscales[0].datasets[0]: array '0' has 2 dimensions but multiscales[0] "
        "has 3 axes; they must be equal",
        id="wrong-rank",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "1", _set("zarr_format", 2)),
        "",
        "image",
        "image: multiscales[0].datasets[1]: array '1': zarr_format is 2; OME-Zarr 0.5 "
        'requires Zarr v3 ("zarr_format": 3)',
        id="array-not-zarr-v3",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "0", _set("dimension_names", ["c", "z", "x"])),
        "",
        "image",
        "image: The multiscale metadata has ('c', 'y', 'x') axes names which does not match "
        "the dimension names of the array found in this group at path '0' (('c', 'z', 'x')).",
        id="dimension-names-from-ome-zarr-models",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "", _unsafe_dataset_path),
        "",
        "image",
        "image: multiscales[0].datasets[0].path: path '../../etc' leaves its root or has an "
        "empty part; fix the metadata that names it",
        id="dataset-path-escapes-root",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "labels/cells/0", _set("data_type", "float32")),
        "labels/cells",
        "label-image",
        "label-image: array '0' has data type 'float32'; labels must be one of ['uint8', "
        "'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64']",
        id="label-float-dtype",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "labels/cells", _one_label_level),
        "labels/cells",
        "label-image",
        "label-image: 1 multiscale levels but its image has 2; they must be equal",
        id="label-level-count",
    ),
    pytest.param(
        build_image_with_labels,
        lambda root: edit_zarr_json(root, "labels", _set_ome("labels", ["cells", "nuclei"])),
        "labels",
        "labels",
        "labels: label 'nuclei' is listed but nuclei/zarr.json is missing",
        id="label-listed-but-missing",
    ),
    pytest.param(
        build_bioformats2raw,
        lambda root: edit_zarr_json(root, "OME", _set_ome("series", ["0", "7"])),
        "OME",
        "ome-series",
        "ome-series: series[1] is '7' but 7/zarr.json is missing",
        id="series-entry-missing",
    ),
    pytest.param(
        build_bioformats2raw,
        lambda root: edit_zarr_json(root, "OME", _set_ome("series", [0, 1])),
        "OME",
        "ome-series",
        "ome-series: ome.series must be a list of strings (image group paths)",
        id="series-entry-not-str",
    ),
    pytest.param(
        build_bioformats2raw,
        lambda root: edit_zarr_json(root, "", _set_ome("bioformats2raw.layout", 2)),
        "",
        "bioformats2raw",
        "bioformats2raw: attributes.ome.bioformats2raw.layout: Input should be 3",
        id="bioformats2raw-layout-from-ome-zarr-models",
    ),
    pytest.param(
        build_plate,
        lambda root: (root / "A" / "2" / "zarr.json").write_text("{not json", encoding="utf-8"),
        "A/2",
        "well",
        "well: A/2/zarr.json is not valid JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))",
        id="invalid-json",
    ),
    pytest.param(
        build_plate,
        lambda root: edit_zarr_json(root, "", _bad_well_path),
        "",
        "plate",
        "plate: wells[1].path is 'B/1' but rows[0]/columns[1] give 'A/2'; the path must be "
        "row name/column name",
        id="plate-well-path-mismatch",
    ),
    pytest.param(
        build_plate,
        lambda root: edit_zarr_json(root, "B/2", _bad_acquisition),
        "B/2",
        "well",
        "well: images[1].acquisition is 7 but the plate's acquisitions are [0, 1]",
        id="well-acquisition-not-in-plate",
    ),
    pytest.param(
        build_plate,
        lambda root: shutil.rmtree(root / "B" / "1"),
        "B/1",
        "well",
        "well: no zarr.json at B/1; not a Zarr v3 node",
        id="well-group-missing",
    ),
]


@pytest.mark.parametrize(("build", "breakage", "path", "kind", "message"), BREAKS)
def test_each_broken_rule_fails_the_right_node(
    tmp_path: Path,
    build: BuildFn,
    breakage: Callable[[Path], object],
    path: str,
    kind: str,
    message: str,
) -> None:
    root = build(tmp_path)
    breakage(root)
    results = validate_hierarchy(local(root))
    failed = failures(results)
    assert failed == {path: NodeResult(path, kind, False, message)}
    assert "\n" not in message


def test_well_path_with_column_before_row_fails(tmp_path: Path) -> None:
    """Spec 0.5 (plate): "path ... MUST consist of the name of the row and the name of the
    column" in that order; JSON Schema cannot say it, ome-zarr-models 1.7 does not check it."""
    root = build_plate(tmp_path)

    def swap(doc: dict[str, Any]) -> None:
        plate = doc["attributes"]["ome"]["plate"]
        plate["rows"] = [{"name": "A"}, {"name": "B"}]
        plate["columns"] = [{"name": "A"}, {"name": "B"}]
        plate["wells"] = [{"path": "B/A", "rowIndex": 0, "columnIndex": 1}]

    edit_zarr_json(root, "", swap)
    assert validate_node(local(root), "").message == (
        "plate: wells[0].path is 'B/A' but rows[0]/columns[1] give 'A/B'; the path must be "
        "row name/column name"
    )


def test_missing_root_is_a_failed_node(tmp_path: Path) -> None:
    assert validate_hierarchy(local(tmp_path)) == [
        NodeResult("", "group", False, "root: no zarr.json at .; not a Zarr v3 node")
    ]


def test_json_that_is_not_an_object_is_a_failed_node(tmp_path: Path) -> None:
    (tmp_path / "zarr.json").write_text("[1, 2]", encoding="utf-8")
    assert validate_node(local(tmp_path), "").message == (
        "group: zarr.json holds a JSON list, not an object"
    )


def test_malformed_multiscales_never_raise(tmp_path: Path) -> None:
    write_group(tmp_path, "", {"ome": {"version": "0.5", "multiscales": [{"axes": 3}]}})
    result = validate_node(local(tmp_path), "")
    assert not result.ok
    assert result.message == "image: multiscales[0] needs lists 'axes' and 'datasets'"


def test_storage_errors_propagate(tmp_path: Path) -> None:
    class BrokenStore(MemoryStore):
        def read(self, key: str) -> bytes | None:
            raise StorageError(f"cannot read memory://{key}: connection reset")

    with pytest.raises(StorageError, match="connection reset"):
        validate_hierarchy(BrokenStore())


def test_validate_node_detects_the_kind(tmp_path: Path) -> None:
    build_plate(tmp_path / "plate")
    build_image_with_labels(tmp_path / "img")
    plate, img = local(tmp_path / "plate"), local(tmp_path / "img")
    assert validate_node(plate, "A/1") == NodeResult("A/1", "well", True, "")
    assert validate_node(plate, "A/1/0").kind == "image"
    assert validate_node(img, "labels/cells").kind == "label-image"
    assert validate_node(img, "0") == NodeResult("0", "array", True, "")


def test_many_identical_field_images_validate_quickly() -> None:
    """400 wells x 2 fields: identical documents are validated by the models once."""
    store = MemoryStore(plate_in_memory(20, 20, 2, 3), listable=False)
    results = validate_hierarchy(store)
    assert len(results) == 1 + 20 + 400 + 800
    assert all(r.ok for r in results)


def test_format_results() -> None:
    text = format_results(
        [
            NodeResult("", "image", True, ""),
            NodeResult("labels", "labels", False, "labels group: ome.version missing"),
        ]
    )
    assert text.splitlines() == [
        "ok      image          .",
        "FAILED  labels         labels: labels group: ome.version missing",
    ]


# --------------------------------------------------------------------------------------------
# Published 0.5 metadata (../shared/ngff-samples, metadata only)
# --------------------------------------------------------------------------------------------


def _sample(relative: str) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    path = SAMPLES / relative
    if not path.is_dir():
        pytest.skip(f"sample {relative} not present in {SAMPLES}")
    return path


@pytest.mark.parametrize(
    "relative",
    [
        "idr0066/ExpA_VIP_ASLM_on.zarr",
        "idr0066/ExpD_chicken_embryo_MIP.ome.zarr",
        "idr0157/Asterella gracilis SWE/"
        "IMG_1033-1112 Asterella gracilis (Mannia gracilis) stature.ome.zarr",
    ],
)
def test_published_images_pass(relative: str) -> None:
    results = validate_hierarchy(local(_sample(relative)))
    assert results == [NodeResult("", "image", True, "")]


def test_published_bioformats2raw_with_nine_series_passes() -> None:
    root = _sample("idr0033A/BR00109990_C2.zarr")
    assert not (root / "OME").exists()  # series found as numbered children 0..8
    for store in (local(root), MemoryStore.copy_of(root, listable=False)):
        results = validate_hierarchy(store)
        assert results[0] == NodeResult("", "bioformats2raw", True, "")
        assert [(r.path, r.kind, r.ok) for r in results[1:]] == [
            (str(i), "image", True) for i in range(9)
        ]


def test_published_idr0062A_labels_group_lacks_version() -> None:
    root = _sample("idr0062A/6001240_labels.zarr")
    results = validate_hierarchy(local(root))
    assert results == [
        NodeResult("", "image", True, ""),
        NodeResult(
            "labels",
            "labels",
            False,
            'labels group: ome.version missing; 0.5 requires "version": "0.5"',
        ),
    ]
    assert json.loads((root / "labels" / "zarr.json").read_text())["attributes"]["ome"] == {
        "labels": ["0"]
    }
