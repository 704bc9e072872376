"""OME-Zarr 0.4 attributes → 0.5 ``ome`` block (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ngff_resave.errors import InputError
from ngff_resave.metadata.ome import check_input_version, detect_kind, migrate_attributes

MULTISCALES = [
    {
        "version": "0.4",
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
        ],
    }
]


def test_image_moves_ome_keys_and_keeps_the_rest_untouched() -> None:
    attrs = {
        "multiscales": MULTISCALES,
        "omero": {"channels": [], "version": "0.4"},
        "_creator": {"name": "omero-zarr", "version": "0.4.0"},
        "my_key": {"software_version": 3},
    }
    out = migrate_attributes(attrs, detect_kind(attrs))
    assert out["ome"]["version"] == "0.5"
    assert "version" not in out["ome"]["multiscales"][0]
    # "unrelated user keys that happen to contain version are left alone"
    assert out["_creator"] == {"name": "omero-zarr", "version": "0.4.0"}
    assert out["my_key"] == {"software_version": 3}
    assert out["ome"]["omero"] == {"channels": [], "version": "0.4"}
    assert attrs["multiscales"][0]["version"] == "0.4", "the input dict is not modified"


@pytest.mark.parametrize(
    ("attrs", "kind", "key"),
    [
        ({"labels": ["cells"]}, "labels", "labels"),
        ({"plate": {"version": "0.4", "wells": [{"path": "A/1"}]}}, "plate", "plate"),
        ({"well": {"version": "0.4", "images": [{"path": "0"}]}}, "well", "well"),
        ({"bioformats2raw.layout": 3}, "bioformats2raw", "bioformats2raw.layout"),
        (
            {"multiscales": MULTISCALES, "image-label": {"version": "0.4", "colors": []}},
            "label-image",
            "image-label",
        ),
    ],
    ids=["labels", "plate", "well", "bf2raw", "label-image"],
)
def test_every_ome_block_gets_version_05(attrs: dict[str, Any], kind: str, key: str) -> None:
    assert detect_kind(attrs) == kind
    out = migrate_attributes(attrs, detect_kind(attrs))
    # "the labels group too: the published 0.5 data that lacks it is rejected by validators"
    assert out["ome"]["version"] == "0.5"
    assert key in out["ome"]
    if isinstance(out["ome"][key], dict):
        assert "version" not in out["ome"][key]


def test_ome_series_group() -> None:
    out = migrate_attributes({"series": ["0", "1"]}, "ome-series")
    assert out == {"ome": {"version": "0.5", "series": ["0", "1"]}}


def test_non_ome_group_is_untouched() -> None:
    attrs = {"encoding-type": "anndata", "version": "whatever"}
    assert detect_kind(attrs) == "group"
    assert migrate_attributes(attrs, "group") == attrs


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"multiscales": [{**MULTISCALES[0], "version": "0.3"}]}, "0.3"),
        ({"ome": {"version": "0.5", "multiscales": []}}, "already OME-Zarr 0.5"),
    ],
    ids=["v0.3", "v0.5"],
)
def test_only_04_inputs_are_accepted(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_input_version(attrs, detect_kind(attrs), "in.zarr/.zattrs")
