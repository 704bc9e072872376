"""Read-only walk of an OME-Zarr 0.4 hierarchy into an inventory of groups, arrays and files.

The walk follows the OME metadata first (multiscales datasets, labels, plate wells, well
fields, bioformats2raw series), so that inputs without directory listing (plain HTTP) are
walked from their metadata alone. Where the store can list, every other child group or array
is found too and carried over untouched (e.g. an AnnData ``tables/`` group).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ngff_resave.errors import InputError, NodeNotFoundError, UnsafePathError
from ngff_resave.generic import is_generic_dtype
from ngff_resave.locations import LocalStore, Store, check_key, join_key
from ngff_resave.metadata.arrays import V2Array, parse_v2_array
from ngff_resave.metadata.ome import (
    NodeKind,
    check_input_version,
    detect_kind,
    multiscales_of,
)

#: Files of a bioformats2raw ``OME/`` group copied byte for byte.
OME_XML = "METADATA.ome.xml"
#: Largest metadata document read (a hostile input cannot make us load gigabytes of JSON).
MAX_JSON_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GroupNode:
    """A group of the input: where it is, what it is, its 0.4 attributes."""

    path: str
    kind: NodeKind
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class ArrayNode:
    """An array of the input with what the plan needs to know about it."""

    path: str
    meta: V2Array
    attrs: Mapping[str, Any]
    #: Axis names of the image the array is a level of (``None`` for non-OME arrays).
    dimension_names: tuple[str, ...] | None = None
    #: Axis types ("space", "channel", "time", …) in the same order, when known.
    axis_types: tuple[str | None, ...] | None = None
    #: Position in its image's ``datasets`` (0 = full resolution), when it is a level.
    level: int | None = None


@dataclass
class Inventory:
    """Everything the walk found, in the order found (parents before children)."""

    root_kind: NodeKind
    groups: list[GroupNode] = field(default_factory=list)
    arrays: list[ArrayNode] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: Non-OME arrays of string/object dtypes, carried over by :mod:`ngff_resave.generic`.
    generic_arrays: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_json(store: Store, key: str) -> Any | None:
    """Parse the JSON document at ``key`` (``None`` when absent); errors name the file.

    A local file larger than :data:`MAX_JSON_BYTES` is refused before it is read, so a
    hostile (e.g. sparse multi-GB) metadata file costs no memory.
    """
    if isinstance(store, LocalStore):
        try:
            size = os.path.getsize(os.path.join(store.root, *check_key(key).split("/")))
        except OSError:
            size = 0  # missing or unreadable: read() below says which
        if size > MAX_JSON_BYTES:
            raise InputError(
                f"{store.describe(key)}: metadata file is {size} bytes, larger than the "
                f"{MAX_JSON_BYTES} allowed; it cannot be OME-Zarr metadata"
            )
    data = store.read(key)
    if data is None:
        return None
    where = store.describe(key)
    if len(data) > MAX_JSON_BYTES:
        raise InputError(
            f"{where}: metadata file is {len(data)} bytes, larger than the {MAX_JSON_BYTES} "
            "allowed; it cannot be OME-Zarr metadata"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8 JSON"
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "fix or restore the file"
        ) from exc
    except RecursionError as exc:
        raise InputError(f"{where}: JSON nested too deeply to read") from exc


def _read_object(store: Store, key: str) -> dict[str, Any] | None:
    doc = read_json(store, key)
    if doc is not None and not isinstance(doc, dict):
        raise InputError(f"{store.describe(key)}: expected a JSON object, got {type(doc).__name__}")
    return doc


#: The 0.4 attribute that makes a group of each kind, for messages.
_KIND_KEYS: dict[str, str] = {
    "image": "multiscales",
    "label-image": "multiscales",
    "well": "'well'",
    "plate": "'plate'",
}


class _Walker:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.inventory = Inventory(root_kind="group")

    # -- helpers -----------------------------------------------------------------------
    def _check_path(self, path: str, parent: str, what: str) -> str:
        try:
            check_key(path)
        except UnsafePathError as exc:
            where = self.store.describe(join_key(parent, ".zattrs"))
            raise UnsafePathError(f"{where}: {what} {exc}") from exc
        full = join_key(parent, path)
        if isinstance(self.store, LocalStore) and self.store.is_symlink_escape(full):
            raise UnsafePathError(
                f"{self.store.describe(full)}: is a symlink pointing outside the input; "
                "copy the data into the input instead"
            )
        return full

    def _attrs(self, path: str) -> dict[str, Any]:
        return _read_object(self.store, join_key(path, ".zattrs")) or {}

    def _is_group(self, path: str) -> bool:
        return self.store.exists(join_key(path, ".zgroup"))

    def _require_group(self, path: str, what: str) -> dict[str, Any]:
        zgroup = _read_object(self.store, join_key(path, ".zgroup"))
        if zgroup is None:
            if self.store.exists(join_key(path, "zarr.json")):
                raise InputError(
                    f"{self.store.describe(join_key(path, 'zarr.json'))}: is Zarr v3 "
                    "(OME-Zarr 0.5?); only OME-Zarr 0.4 (Zarr v2) inputs can be converted"
                )
            raise NodeNotFoundError(
                f"{self.store.describe(join_key(path, '.zgroup'))}: {what} is missing; "
                "restore it or remove it from the metadata that lists it"
            )
        if zgroup.get("zarr_format") != 2:
            raise InputError(
                f"{self.store.describe(join_key(path, '.zgroup'))}: zarr_format is "
                f"{zgroup.get('zarr_format')!r}, expected 2"
            )
        return self._attrs(path)

    def _add_group(self, path: str, kind: NodeKind, attrs: Mapping[str, Any]) -> bool:
        if path in self.seen:
            return False
        self.seen.add(path)
        self.inventory.groups.append(GroupNode(path, kind, attrs))
        return True

    def _add_array(self, node: ArrayNode) -> None:
        self.seen.add(node.path)
        self.inventory.arrays.append(node)

    def _read_array(self, path: str, what: str) -> tuple[V2Array, dict[str, Any]]:
        key = join_key(path, ".zarray")
        doc = _read_object(self.store, key)
        if doc is None:
            raise NodeNotFoundError(
                f"{self.store.describe(key)}: {what} is missing; restore the array or "
                "remove it from the metadata that lists it"
            )
        return parse_v2_array(doc, self.store.describe(key)), self._attrs(path)

    # -- node kinds --------------------------------------------------------------------
    def visit(self, path: str, kind: NodeKind, attrs: dict[str, Any]) -> None:
        where = self.store.describe(join_key(path, ".zattrs"))
        check_input_version(attrs, kind, where)
        if not self._add_group(path, kind, attrs):
            return
        if kind in ("image", "label-image"):
            self._image(path, attrs, where)
        elif kind == "labels":
            self._labels(path, attrs, where)
        elif kind == "plate":
            self._plate(path, attrs, where)
        elif kind == "well":
            self._well(path, attrs, where)
        elif kind == "bioformats2raw":
            self._bioformats2raw(path, where)
        self._rest(path)

    def _image(self, path: str, attrs: dict[str, Any], where: str) -> None:
        pyramids = multiscales_of(attrs, where)
        every_path = [p for _, paths in pyramids for p in paths]
        if len(set(every_path)) != len(every_path):
            raise InputError(f"{where}: multiscales datasets list the same path twice")
        for axes, paths in pyramids:
            self._pyramid(path, axes, paths)
        labels = join_key(path, "labels")
        if self._is_group(labels):
            labels_attrs = self._require_group(labels, "labels group")
            self.visit(labels, "labels", labels_attrs)

    def _pyramid(self, path: str, axes: list[dict[str, Any]], paths: list[str]) -> None:
        """The levels of one multiscale, highest resolution first."""
        names = tuple(str(a["name"]) for a in axes)
        types = tuple(a.get("type") if isinstance(a.get("type"), str) else None for a in axes)
        previous: tuple[int, ...] | None = None
        for level, dataset in enumerate(paths):
            full = self._check_path(dataset, path, "dataset path")
            meta, array_attrs = self._read_array(full, f"resolution level {level}")
            if len(meta.shape) != len(axes):
                raise InputError(
                    f"{self.store.describe(join_key(full, '.zarray'))}: array has "
                    f"{len(meta.shape)} dimensions but the image has {len(axes)} axes "
                    f"({', '.join(names)}); fix the axes or the array"
                )
            if previous is not None and any(
                s > p for s, p in zip(meta.shape, previous, strict=True)
            ):
                raise InputError(
                    f"{self.store.describe(join_key(full, '.zarray'))}: level {level} "
                    f"shape {list(meta.shape)} is larger than level {level - 1} "
                    f"{list(previous)}; datasets must go from high to low resolution"
                )
            previous = meta.shape
            self._add_array(ArrayNode(full, meta, array_attrs, names, types, level))

    def _labels(self, path: str, attrs: dict[str, Any], where: str) -> None:
        names = attrs.get("labels")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{where}: 'labels' must be a list of strings")
        for name in names:
            full = self._check_path(name, path, "label path")
            self._visit_listed(full, f"label image '{name}'", ("image", "label-image"))

    def _plate(self, path: str, attrs: dict[str, Any], where: str) -> None:
        plate = attrs.get("plate")
        if not isinstance(plate, dict):
            raise InputError(f"{where}: 'plate' must be an object")
        wells = plate.get("wells")
        if not isinstance(wells, list) or not wells:
            raise InputError(f"{where}: plate lists no wells; a plate needs at least one")
        seen_wells: set[str] = set()
        for i, well in enumerate(wells):
            well_path = well.get("path") if isinstance(well, dict) else None
            if not isinstance(well_path, str):
                raise InputError(f"{where}: plate.wells[{i}].path must be a string")
            if well_path in seen_wells:
                raise InputError(f"{where}: plate lists well '{well_path}' twice")
            seen_wells.add(well_path)
            full = self._check_path(well_path, path, "well path")
            parts = well_path.split("/")
            if len(parts) != 2:
                raise InputError(f"{where}: well path '{well_path}' must be '<row>/<column>'")
            row = join_key(path, parts[0])
            if row not in self.seen:
                row_attrs = self._require_group(row, f"plate row '{parts[0]}'")
                self._add_group(row, "plate-row", row_attrs)
            self._visit_listed(full, f"well '{well_path}'", ("well",))
        for row in sorted({w.split("/")[0] for w in seen_wells}):
            self._rest(join_key(path, row))

    def _well(self, path: str, attrs: dict[str, Any], where: str) -> None:
        well = attrs.get("well")
        images = well.get("images") if isinstance(well, dict) else None
        if not isinstance(images, list) or not images:
            raise InputError(f"{where}: well.images must be a non-empty list")
        for i, image in enumerate(images):
            image_path = image.get("path") if isinstance(image, dict) else None
            if not isinstance(image_path, str):
                raise InputError(f"{where}: well.images[{i}].path must be a string")
            full = self._check_path(image_path, path, "field path")
            self._visit_listed(full, f"field '{image_path}'", ("image",))

    def _bioformats2raw(self, path: str, where: str) -> None:
        ome = join_key(path, "OME")
        series: list[str] | None = None
        if self._is_group(ome):
            ome_attrs = self._require_group(ome, "OME group")
            listed = ome_attrs.get("series")
            if listed is not None:
                if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
                    raise InputError(
                        f"{self.store.describe(join_key(ome, '.zattrs'))}: 'series' must be "
                        "a list of strings"
                    )
                series = listed
            if self.store.exists(join_key(ome, OME_XML)):
                self.inventory.files.append(join_key(ome, OME_XML))
        implicit = series is None
        if series is None:
            # Implicit layout (bioformats2raw.layout 3 without a series list): series are
            # the groups 0, 1, 2, … up to the first missing number.
            series = []
            while self._is_group(join_key(path, str(len(series)))):
                series.append(str(len(series)))
            if not series:
                raise InputError(
                    f"{where}: bioformats2raw layout with no series (no OME/series list and "
                    "no group '0')"
                )
        if self._is_group(ome):
            # 0.5's OME group schema requires the series list: an implicit one is written out.
            ome_attrs = self._attrs(ome)
            if implicit:
                ome_attrs = {**ome_attrs, "series": list(series)}
                self.inventory.warnings.append(
                    f"{self.store.describe(ome)}: no 'series' list; the series found "
                    f"({', '.join(series)}) are listed explicitly in the output"
                )
            self._add_group(ome, "ome-series", ome_attrs)
        for name in series:
            full = self._check_path(name, path, "series path")
            self._visit_listed(full, f"series '{name}'", ("image", "plate"))

    def _visit_listed(self, path: str, what: str, allowed: tuple[NodeKind, ...]) -> None:
        """Visit a group the parent's metadata lists; it must exist and be of an allowed kind."""
        attrs = self._require_group(path, what)
        kind = detect_kind(attrs)
        if kind not in allowed:
            expected = " or ".join(k.replace("-", " ") for k in allowed)
            raise InputError(
                f"{self.store.describe(join_key(path, '.zattrs'))}: {what} is not a {expected} "
                f"(its .zattrs has no {_KIND_KEYS[allowed[0]]} metadata); fix the metadata "
                "that lists it"
            )
        self.visit(path, kind, attrs)

    def _refuse_escaping_symlinks(self, path: str) -> None:
        """A symlinked child directory that leaves the input is an error, not a silent skip.

        ``list_children`` does not follow symlinks, so such a child would otherwise be left
        out of the output without a word.
        """
        assert isinstance(self.store, LocalStore)
        directory = os.path.join(self.store.root, *path.split("/")) if path else self.store.root
        try:
            entries = sorted(e.name for e in os.scandir(directory) if e.is_symlink())
        except OSError:
            return
        for name in entries:
            child = join_key(path, name)
            if child not in self.seen and self.store.is_symlink_escape(child):
                raise UnsafePathError(
                    f"{self.store.describe(child)}: is a symlink pointing outside the input; "
                    "copy the data into the input instead"
                )

    def _rest(self, path: str) -> None:
        """Carry over children the OME metadata does not name (only where we can list)."""
        if not self.store.can_list:
            return
        if isinstance(self.store, LocalStore):
            self._refuse_escaping_symlinks(path)
        for name in self.store.list_children(path):
            child = join_key(path, name)
            if child in self.seen:
                continue
            if isinstance(self.store, LocalStore) and self.store.is_symlink_escape(child):
                raise UnsafePathError(
                    f"{self.store.describe(child)}: is a symlink pointing outside the input; "
                    "copy the data into the input instead"
                )
            if self.store.exists(join_key(child, ".zarray")):
                if is_generic_dtype(read_json(self.store, join_key(child, ".zarray"))):
                    self.seen.add(child)
                    self.inventory.generic_arrays.append(child)
                    continue
                meta, attrs = self._read_array(child, "array")
                self._add_array(ArrayNode(child, meta, attrs))
            elif self._is_group(child):
                attrs = self._require_group(child, "group")
                kind = detect_kind(attrs)
                self.visit(child, kind, attrs)


def discover(store: Store) -> Inventory:
    """Walk the 0.4 hierarchy at the root of ``store`` (read-only) and list what it holds.

    Raises :class:`InputError` (or a subclass) naming the file when the input is not
    OME-Zarr 0.4 or its metadata is broken.
    """
    walker = _Walker(store)
    if store.exists("zarr.json"):
        raise InputError(
            f"{store.describe('zarr.json')}: the input is Zarr v3 (OME-Zarr 0.5?); only "
            "OME-Zarr 0.4 (Zarr v2) inputs can be converted"
        )
    if store.exists(".zarray"):
        raise InputError(
            f"{store.describe('.zarray')}: the input is a bare array; give the OME-Zarr "
            "group (image, plate or bioformats2raw container) that holds it"
        )
    if not store.exists(".zgroup") and not store.exists(".zattrs"):
        raise InputError(
            f"{store.url}: not a Zarr v2 group (no .zgroup or .zattrs); give the root of an "
            "OME-Zarr 0.4 image, plate or bioformats2raw container"
        )
    attrs = _read_object(store, ".zattrs") or {}
    kind = detect_kind(attrs)
    if kind == "group":
        if isinstance(attrs.get("ome"), dict):
            raise InputError(
                f"{store.describe('.zattrs')}: has an 'ome' block (OME-Zarr 0.5); only "
                "OME-Zarr 0.4 inputs can be converted"
            )
        raise InputError(
            f"{store.describe('.zattrs')}: not OME-Zarr 0.4 (no multiscales, plate, well, "
            "labels or bioformats2raw.layout); give the root of an OME-Zarr 0.4 hierarchy"
        )
    zgroup = _read_object(store, ".zgroup")
    if zgroup is not None and zgroup.get("zarr_format") != 2:
        raise InputError(
            f"{store.describe('.zgroup')}: zarr_format is {zgroup.get('zarr_format')!r}, expected 2"
        )
    walker.inventory.root_kind = kind
    walker.visit("", kind, attrs)
    if not store.can_list:
        walker.inventory.warnings.append(
            f"{store.url}: cannot be listed (plain HTTP); only the nodes the OME metadata names "
            "were converted, other groups (e.g. tables/) could not be found"
        )
    return walker.inventory
