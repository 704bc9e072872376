"""OME-Zarr 0.4 group attributes (``.zattrs``) to the 0.5 ``zarr.json`` attributes.

Pure functions on plain dicts. In 0.5 every OME key moves under ``attributes["ome"]`` next to
``"version": "0.5"`` (spec 0.5, "OME-Zarr metadata"); keys that are not OME metadata (for
example ``_creator`` or a user's own keys) stay where they were, untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from ngff_resave.errors import InputError

NGFF_VERSION = "0.5"

NodeKind = Literal[
    "image",
    "label-image",
    "labels",
    "plate",
    "plate-row",
    "well",
    "bioformats2raw",
    "ome-series",
    "group",
]

#: The OME keys each kind of node carries in 0.4 (and moves under ``ome`` in 0.5).
_OME_KEYS: dict[str, tuple[str, ...]] = {
    "image": ("multiscales", "omero"),
    "label-image": ("multiscales", "omero", "image-label"),
    "labels": ("labels",),
    "plate": ("plate",),
    "well": ("well",),
    "bioformats2raw": ("bioformats2raw.layout",),
    "ome-series": ("series",),
    "plate-row": (),
    "group": (),
}

#: Versions a 0.4 converter accepts in the per-object ``version`` keys.
SUPPORTED_INPUT_VERSIONS = ("0.4",)


def detect_kind(attrs: Mapping[str, Any]) -> NodeKind:
    """The kind of a 0.4 group from its attributes (``group`` when it is not OME)."""
    if "multiscales" in attrs:
        return "label-image" if "image-label" in attrs else "image"
    if "plate" in attrs:
        return "plate"
    if "well" in attrs:
        return "well"
    if "bioformats2raw.layout" in attrs:
        return "bioformats2raw"
    if "labels" in attrs and isinstance(attrs["labels"], list):
        return "labels"
    return "group"


def input_version(attrs: Mapping[str, Any], kind: NodeKind) -> str | None:
    """The NGFF version a 0.4-style node declares (``None`` when it declares none)."""
    if kind in ("image", "label-image"):
        multiscales = attrs.get("multiscales")
        if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict):
            version = multiscales[0].get("version")
            return version if isinstance(version, str) else None
        return None
    for key in ("plate", "well", "image-label"):
        block = attrs.get(key)
        if isinstance(block, dict) and isinstance(block.get("version"), str):
            return str(block["version"])
    return None


def _drop_version(block: Any) -> Any:
    """A copy of an OME object without its 0.4 ``version`` key (0.5 keeps it in ``ome``)."""
    if isinstance(block, dict):
        return {k: copy.deepcopy(v) for k, v in block.items() if k != "version"}
    return copy.deepcopy(block)


def migrate_attributes(attrs: Mapping[str, Any], kind: NodeKind) -> dict[str, Any]:
    """The 0.5 ``zarr.json`` attributes of a node whose 0.4 ``.zattrs`` are ``attrs``.

    Rules (OME-Zarr 0.5 spec):

    * OME keys of the node's kind move under ``ome`` with ``"version": "0.5"`` — the
      ``labels`` group included (published 0.5 data without it is rejected by validators).
    * The per-object ``version`` keys of 0.4 (``multiscales[i].version``, ``plate.version``,
      ``well.version``, ``image-label.version``) are removed: 0.5 moved the version to
      ``ome.version``. Other keys, including unrelated ones containing "version" (e.g.
      ``_creator.version``, ``omero.version``), are left alone.
    * Non-OME keys stay at the top level of ``attributes``, untouched.
    """
    ome_keys = _OME_KEYS[kind]
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in attrs.items() if k not in ome_keys}
    if kind in ("group", "plate-row"):
        return out
    ome: dict[str, Any] = {"version": NGFF_VERSION}
    for key in ome_keys:
        if key not in attrs:
            continue
        value = attrs[key]
        if key == "multiscales" and isinstance(value, list):
            ome[key] = [_drop_version(m) for m in value]
        elif key in ("plate", "well", "image-label"):
            ome[key] = _drop_version(value)
        else:
            ome[key] = copy.deepcopy(value)
    out["ome"] = ome
    return out


def check_input_version(attrs: Mapping[str, Any], kind: NodeKind, where: str) -> None:
    """Refuse nodes that are not OME-Zarr 0.4 (0.5 inputs, 0.3 and older)."""
    if "ome" in attrs and isinstance(attrs["ome"], dict):
        raise InputError(
            f"{where}: has an 'ome' block, i.e. is already OME-Zarr 0.5; nothing to convert"
        )
    version = input_version(attrs, kind)
    if version is not None and version not in SUPPORTED_INPUT_VERSIONS:
        raise InputError(
            f"{where}: declares OME-Zarr version {version!r}; only 0.4 can be converted "
            "(upgrade older data to 0.4 first, e.g. with ome-zarr-py)"
        )


def multiscales_of(
    attrs: Mapping[str, Any], where: str
) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """Each multiscale of an image's attributes: its checked ``axes`` and ``datasets[].path``.

    Spec 0.4 allows several multiscales in one image (each its own pyramid, e.g. another
    downsampling method); each has its own axes and its own levels, highest resolution first.
    """
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise InputError(f"{where}: 'multiscales' must be a non-empty list")
    found: list[tuple[list[dict[str, Any]], list[str]]] = []
    for i, multiscale in enumerate(multiscales):
        if not isinstance(multiscale, dict):
            raise InputError(f"{where}: multiscales[{i}] must be an object")
        found.append((_axes(multiscale, i, where), _dataset_paths(multiscale, i, where)))
    return found


def _axes(multiscale: Mapping[str, Any], i: int, where: str) -> list[dict[str, Any]]:
    axes = multiscale.get("axes")
    if not isinstance(axes, list) or not axes:
        raise InputError(f"{where}: multiscales[{i}].axes must be a non-empty list")
    if not all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in axes):
        raise InputError(
            f"{where}: axes must be objects with a 'name' (strings are OME-Zarr 0.3; "
            "upgrade to 0.4 first)"
        )
    if not 2 <= len(axes) <= 5:
        # Spec 0.4 and 0.5: "The length of axes MUST be between 2 and 5"; refusing here
        # beats writing a whole output that then fails validation.
        raise InputError(
            f"{where}: multiscales[{i}] has {len(axes)} axes; OME-Zarr images have 2 to 5"
        )
    return list(axes)


def _dataset_paths(multiscale: Mapping[str, Any], i: int, where: str) -> list[str]:
    datasets = multiscale.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise InputError(f"{where}: multiscales[{i}].datasets must be a non-empty list")
    paths: list[str] = []
    for j, dataset in enumerate(datasets):
        path = dataset.get("path") if isinstance(dataset, dict) else None
        if not isinstance(path, str) or not path:
            raise InputError(f"{where}: multiscales[{i}].datasets[{j}].path must be a string")
        paths.append(path)
    return paths
