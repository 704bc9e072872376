"""Validate an OME-Zarr 0.5 hierarchy (Zarr v3), reading only through a :class:`Store`.

The walk starts at the root ``zarr.json`` and follows the OME metadata: multiscales datasets,
the ``labels`` subgroup of an image and its label list, plate → row groups → wells → field
images, and bioformats2raw series (``OME/zarr.json`` ``series`` or numbered children ``0..N-1``).
Where the store can list, every other child group is visited too, so nothing hides from the
validator (non-OME groups must still be valid Zarr v3 groups).

Each OME node is checked with the explicit ``ome_zarr_models.v05`` classes (``Image``,
``ImageLabel``, ``Labels``, ``HCS``, ``Well``, ``BioFormats2Raw``) built from the JSON documents
read here (pydantic ``model_validate`` of a group spec whose members are the referenced arrays),
so the same code works on local disk, S3 or plain HTTP. On top of those classes this module
checks the rules they leave out:

* every ``ome`` block has ``"version": "0.5"`` (also the ``labels`` group);
* multiscales arrays exist, are Zarr v3 arrays and have one dimension per axis;
* a plate's well path is ``rows[rowIndex].name/columns[columnIndex].name`` and its well group
  exists; a well image's ``acquisition`` is one of the plate's acquisitions;
* a label image has an integer data type and as many levels as its image;
* the bioformats2raw ``OME`` group: ``ome.series`` is a list of str naming image groups.

A plate is validated from its own attributes only (``HCS`` with no members): its wells and
their images are validated as their own nodes, so a 10^4-well plate is never one giant model.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from ome_zarr_models.exceptions import ValidationWarning
from ome_zarr_models.v05 import HCS, BioFormats2Raw, Image, ImageLabel, Well
from ome_zarr_models.v05.labels import VALID_DTYPES, LabelsAttrs
from pydantic import BaseModel, ValidationError
from pydantic_zarr.v3 import ArraySpec

from ngff_resave.errors import StorageError
from ngff_resave.locations import Store, check_key, join_key

__all__ = ["NodeResult", "format_results", "validate_hierarchy", "validate_node"]

#: The only OME-Zarr version this validator accepts.
OME_VERSION: Final = "0.5"

#: The keys of an array ``zarr.json`` that ``pydantic_zarr.v3.ArraySpec`` models.
_ARRAY_KEYS: Final[tuple[str, ...]] = (
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "storage_transformers",
    "dimension_names",
    "attributes",
)

#: Kinds a node can have in a :class:`NodeResult`.
KINDS: Final = (
    "image",
    "label-image",
    "labels",
    "plate",
    "well",
    "bioformats2raw",
    "ome-series",
    "group",
    "array",
)

#: Message of the warning ``ome-zarr-models`` 1.x emits for every 0.5 plate: in 0.5 the version
#: lives in ``ome.version`` and the plate has none, so the warning is a false alarm there.
_PLATE_VERSION_WARNING: Final = r"'version' field not specified in plate metadata"


@dataclass(frozen=True)
class NodeResult:
    """The verdict on one node of the hierarchy.

    ``path`` is relative to the root (``""`` is the root); ``kind`` is one of :data:`KINDS`;
    ``message`` is empty when ``ok``, else one line naming the rule and the numbers that broke it.
    """

    path: str
    kind: str
    ok: bool
    message: str


class _Invalid(Exception):
    """A rule is broken at the node being validated (internal; becomes a failed NodeResult)."""


@dataclass(frozen=True)
class _Visit:
    """A node to validate, with what its parent knows about it."""

    path: str
    kind: str | None = None  # None: detect from the node's own metadata
    acquisitions: frozenset[int] | None = None  # a well's plate acquisitions, when known
    image_levels: int | None = None  # a label image's parent image level count, when known


@dataclass
class _Outcome:
    result: NodeResult
    children: list[_Visit] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)  # child arrays validated as part of this node


# --------------------------------------------------------------------------------------------
# Reading documents through the store
# --------------------------------------------------------------------------------------------


class _Documents:
    """``zarr.json`` documents read through a store, each read at most once per validation.

    Documents with identical bytes are parsed once and shared (never mutated): the images of a
    plate usually repeat the same few documents thousands of times.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, dict[str, Any] | str | None] = {}
        self._digests: dict[str, bytes] = {}
        self._parsed: dict[bytes, dict[str, Any] | str] = {}
        self.verdicts: dict[tuple[object, ...], str | None] = {}  # see _run_model

    def get(self, path: str) -> dict[str, Any] | str | None:
        """The parsed ``zarr.json`` at ``path``: a dict, an error message, or None if absent."""
        if path not in self._cache:
            self._cache[path] = self._load(path)
        return self._cache[path]

    def digest(self, path: str) -> bytes:
        """A digest of the bytes of the ``zarr.json`` at ``path`` (after :meth:`get`)."""
        return self._digests.get(path, b"")

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read the ``zarr.json`` of many nodes at once (:meth:`Store.read_many`: concurrent
        on remote stores), so a walk over 10^4 wells is not 10^4 sequential round trips."""
        todo: list[tuple[str, str]] = []
        for path in dict.fromkeys(paths):
            if path in self._cache:
                continue
            key = join_key(path, "zarr.json")
            try:
                check_key(key)
            except ValueError as exc:
                self._cache[path] = str(exc)
                continue
            todo.append((path, key))
        if todo:
            raws = self.store.read_many([key for _, key in todo])
            for (path, key), raw in zip(todo, raws, strict=True):
                self._cache[path] = self._accept(path, key, raw)

    def _load(self, path: str) -> dict[str, Any] | str | None:
        key = join_key(path, "zarr.json")
        try:
            check_key(key)
        except ValueError as exc:
            return str(exc)
        # StorageError propagates: the store itself is broken, not the hierarchy.
        return self._accept(path, key, self.store.read(key))

    def _accept(self, path: str, key: str, raw: bytes | None) -> dict[str, Any] | str | None:
        if raw is None:
            return None
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        self._digests[path] = digest
        if digest not in self._parsed:
            self._parsed[digest] = _parse(key, raw)
        return self._parsed[digest]


def _parse(key: str, raw: bytes) -> dict[str, Any] | str:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{key} is not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return f"{key} holds a JSON {type(doc).__name__}, not an object"
    return doc


def _display(path: str) -> str:
    return path if path else "."


def _format_validation_error(exc: Exception) -> str:
    """One line out of a pydantic ValidationError (or any exception a model raised)."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        text = "; ".join(parts)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _run_model(
    docs: _Documents,
    rule: str,
    model: type[BaseModel],
    data: object,
    source: tuple[object, ...],
) -> None:
    """``model.model_validate(data)``; any failure becomes :class:`_Invalid` named by ``rule``.

    ``source`` identifies everything ``data`` was built from (document digests, dataset paths):
    verdicts are remembered per (rule, model, source). The field images of a plate usually share
    their documents, and ome-zarr-models 1.7 builds a pydantic class inside a validator of every
    multiscales dataset (``Dataset._ensure_scale_translation``, ~5 ms each), so a plate of 10^4
    wells would otherwise spend minutes re-validating identical JSON.
    """
    key = (rule, model.__qualname__, *source)
    if key not in docs.verdicts:
        docs.verdicts[key] = _model_verdict(rule, model, data)
    message = docs.verdicts[key]
    if message is not None:
        raise _Invalid(message)


def _model_verdict(rule: str, model: type[BaseModel], data: object) -> str | None:
    with warnings.catch_warnings():
        # A 0.5 plate has no plate.version (the version is ome.version), yet the Plate model
        # warns about it: that one warning is a false alarm here, every other one stays.
        warnings.filterwarnings(
            "ignore", message=_PLATE_VERSION_WARNING, category=ValidationWarning
        )
        try:
            model.model_validate(data)
        except StorageError:
            raise
        # Models raise ValidationError, but some validators raise RuntimeError/KeyError
        # directly (e.g. Image._check_label_multiscales); none may escape as an exception.
        except Exception as exc:
            return f"{rule}: {_format_validation_error(exc)}"
    return None


# --------------------------------------------------------------------------------------------
# Rules shared by several kinds
# --------------------------------------------------------------------------------------------


def _check_zarr_node(doc: dict[str, Any], node_type: str, what: str) -> None:
    """Zarr v3: ``zarr_format`` is 3 and ``node_type`` is the expected one."""
    if doc.get("zarr_format") != 3:
        raise _Invalid(
            f"{what}: zarr_format is {doc.get('zarr_format')!r}; OME-Zarr 0.5 requires Zarr v3 "
            '("zarr_format": 3)'
        )
    if doc.get("node_type") != node_type:
        raise _Invalid(f"{what}: node_type is {doc.get('node_type')!r}, expected {node_type!r}")
    if "attributes" in doc and not isinstance(doc["attributes"], dict):
        raise _Invalid(f"{what}: attributes is not a JSON object")


def _ome_block(doc: dict[str, Any]) -> dict[str, Any] | None:
    attrs = doc.get("attributes") or {}
    ome = attrs.get("ome") if isinstance(attrs, dict) else None
    return ome if isinstance(ome, dict) else None


def _check_ome_version(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """Every ``ome`` block carries ``"version": "0.5"`` (OME-Zarr 0.5, "ome" metadata)."""
    attrs = doc.get("attributes") or {}
    if "ome" not in attrs:
        raise _Invalid(f'{kind} group: attributes.ome missing; 0.5 keeps OME metadata under "ome"')
    ome = attrs["ome"]
    if not isinstance(ome, dict):
        raise _Invalid(f"{kind} group: attributes.ome is a {type(ome).__name__}, not an object")
    if "version" not in ome:
        raise _Invalid(f'{kind} group: ome.version missing; 0.5 requires "version": "0.5"')
    if ome["version"] != OME_VERSION:
        raise _Invalid(
            f'{kind} group: ome.version is {ome["version"]!r}; 0.5 requires "version": "0.5"'
        )
    return ome


def _group_spec(doc: dict[str, Any], members: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pydantic-zarr group spec from a group document (extension keys such as
    ``consolidated_metadata`` are left out: they are not part of what OME validates)."""
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": doc.get("attributes", {}),
        "members": members if members is not None else {},
    }


def _array_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {k: doc[k] for k in _ARRAY_KEYS if k in doc}
    spec.setdefault("attributes", {})  # optional in Zarr v3
    return {"zarr_format": 3, "node_type": "array", **spec}


def _child(path: str, name: str) -> str:
    check_key(name)  # a hostile name ("../x") becomes a failed node, never a read outside
    return join_key(path, name)


# --------------------------------------------------------------------------------------------
# One validator per kind
# --------------------------------------------------------------------------------------------


def _validate_multiscales(
    docs: _Documents, path: str, doc: dict[str, Any], kind: str, visit: _Visit
) -> _Outcome:
    ome = _check_ome_version(doc, kind)
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise _Invalid(f"{kind}: ome.multiscales must be a non-empty list")
    docs.prefetch(
        [join_key(path, "labels")] * (kind == "image")
        + [
            join_key(path, d["path"])
            for m in multiscales
            if isinstance(m, dict) and isinstance(m.get("datasets"), list)
            for d in m["datasets"]
            if isinstance(d, dict) and isinstance(d.get("path"), str)
        ]
    )
    members: dict[str, Any] = {}
    source: tuple[object, ...] = (docs.digest(path),)
    covered: set[str] = set()
    dtypes: list[tuple[str, Any]] = []
    for m_i, multiscale in enumerate(multiscales):
        if not isinstance(multiscale, dict):
            raise _Invalid(f"{kind}: multiscales[{m_i}] is not an object")
        axes = multiscale.get("axes")
        datasets = multiscale.get("datasets")
        if not isinstance(axes, list) or not isinstance(datasets, list):
            raise _Invalid(f"{kind}: multiscales[{m_i}] needs lists 'axes' and 'datasets'")
        for d_i, dataset in enumerate(datasets):
            where = f"multiscales[{m_i}].datasets[{d_i}]"
            ds_path = dataset.get("path") if isinstance(dataset, dict) else None
            if not isinstance(ds_path, str):
                raise _Invalid(f"{kind}: {where}.path missing or not a string")
            try:
                array_path = _child(path, ds_path)
            except ValueError as exc:
                raise _Invalid(f"{kind}: {where}.path: {exc}") from exc
            array_doc = docs.get(array_path)
            if array_doc is None:
                raise _Invalid(
                    f"{kind}: {where}: array {ds_path!r} missing (no {ds_path}/zarr.json)"
                )
            if isinstance(array_doc, str):
                raise _Invalid(f"{kind}: {where}: array {ds_path!r}: {array_doc}")
            _check_zarr_node(array_doc, "array", f"{kind}: {where}: array {ds_path!r}")
            shape = array_doc.get("shape")
            if not isinstance(shape, list):
                raise _Invalid(f"{kind}: {where}: array {ds_path!r} has no shape list")
            if len(shape) != len(axes):
                raise _Invalid(
                    f"{kind}: {where}: array {ds_path!r} has {len(shape)} dimensions but "
                    f"multiscales[{m_i}] has {len(axes)} axes; they must be equal"
                )
            members[ds_path] = spec = _array_spec(array_doc)
            rule = f"{kind}: array {ds_path!r} is not a valid Zarr v3 array"
            _run_model(docs, rule, ArraySpec, spec, (docs.digest(array_path),))
            source += (ds_path, docs.digest(array_path))
            covered.add(array_path)
            dtypes.append((ds_path, array_doc.get("data_type")))
    if any("/" in p for p in members):
        members = _nest(members)
    model: type[BaseModel] = ImageLabel if kind == "label-image" else Image
    _run_model(docs, kind, model, _group_spec(doc, members), source)
    if kind == "label-image":
        _check_label_image(dtypes, multiscales, visit)
    children = []
    if kind == "image" and docs.get(join_key(path, "labels")) is not None:
        levels = len(multiscales[0]["datasets"]) if len(multiscales) == 1 else None
        children.append(_Visit(join_key(path, "labels"), "labels", image_levels=levels))
    return _Outcome(NodeResult(path, kind, True, ""), children, covered)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Members keyed ``"a/b"`` become nested group specs (datasets in subgroups are allowed)."""
    nested: dict[str, Any] = {}
    for key, spec in flat.items():
        parts = key.split("/")
        node = nested
        for part in parts[:-1]:
            group = node.setdefault(
                part, {"zarr_format": 3, "node_type": "group", "attributes": {}, "members": {}}
            )
            node = group["members"]
        node[parts[-1]] = spec
    return nested


def _check_label_image(
    dtypes: list[tuple[str, Any]], multiscales: list[Any], visit: _Visit
) -> None:
    """Label arrays hold integers; a label image has as many levels as its image."""
    allowed = [str(d) for d in VALID_DTYPES]
    for ds_path, dtype in dtypes:
        try:
            ok = isinstance(dtype, str) and np.dtype(dtype) in VALID_DTYPES
        except TypeError:
            ok = False
        if not ok:
            raise _Invalid(
                f"label-image: array {ds_path!r} has data type {dtype!r}; labels must be one "
                f"of {allowed}"
            )
    if visit.image_levels is not None and len(multiscales) == 1:
        n_levels = len(multiscales[0].get("datasets", []))
        if n_levels != visit.image_levels:
            raise _Invalid(
                f"label-image: {n_levels} multiscale levels but its image has "
                f"{visit.image_levels}; they must be equal"
            )


def _validate_labels(docs: _Documents, path: str, doc: dict[str, Any], visit: _Visit) -> _Outcome:
    ome = _check_ome_version(doc, "labels")
    # The attributes class, not ``Labels``: the model would re-validate every label image,
    # which are validated (with the same rules) as their own nodes.
    _run_model(docs, "labels", LabelsAttrs, ome, (docs.digest(path),))
    children = []
    for name in ome["labels"]:
        try:
            label_path = _child(path, name)
        except ValueError as exc:
            raise _Invalid(f"labels: label {name!r}: {exc}") from exc
        if docs.get(label_path) is None:
            raise _Invalid(f"labels: label {name!r} is listed but {name}/zarr.json is missing")
        children.append(_Visit(label_path, "label-image", image_levels=visit.image_levels))
    return _Outcome(NodeResult(path, "labels", True, ""), children)


def _validate_plate(docs: _Documents, path: str, doc: dict[str, Any]) -> _Outcome:
    ome = _check_ome_version(doc, "plate")
    # Plate attributes only: wells and their images are validated as their own nodes.
    _run_model(docs, "plate", HCS, _group_spec(doc, None), (docs.digest(path),))
    return _Outcome(NodeResult(path, "plate", True, ""), _plate_children(path, ome["plate"]))


def _plate_children(path: str, plate: dict[str, Any]) -> list[_Visit]:
    """Row groups and wells of a plate whose attributes passed ``HCS`` validation."""
    plate_version = plate.get("version")
    if plate_version is not None and plate_version != OME_VERSION:
        raise _Invalid(f'plate: plate.version is {plate_version!r}; 0.5 requires "0.5" or none')
    rows = [r["name"] for r in plate["rows"]]
    columns = [c["name"] for c in plate["columns"]]
    acquisitions = plate.get("acquisitions")
    acq_ids = frozenset(a["id"] for a in acquisitions) if acquisitions is not None else None
    children: list[_Visit] = []
    seen_rows: set[str] = set()
    for w_i, well in enumerate(plate["wells"]):
        r_i, c_i = well["rowIndex"], well["columnIndex"]
        if not (0 <= r_i < len(rows) and 0 <= c_i < len(columns)):
            raise _Invalid(
                f"plate: wells[{w_i}] rowIndex {r_i}/columnIndex {c_i} out of range for "
                f"{len(rows)} rows and {len(columns)} columns"
            )
        expected = f"{rows[r_i]}/{columns[c_i]}"
        if well["path"] != expected:
            raise _Invalid(
                f"plate: wells[{w_i}].path is {well['path']!r} but rows[{r_i}]/columns[{c_i}] "
                f"give {expected!r}; the path must be row name/column name"
            )
        if rows[r_i] not in seen_rows:
            seen_rows.add(rows[r_i])
            children.append(_Visit(join_key(path, rows[r_i]), "group"))
        children.append(_Visit(join_key(path, expected), "well", acquisitions=acq_ids))
    return children


def _validate_well(docs: _Documents, path: str, doc: dict[str, Any], visit: _Visit) -> _Outcome:
    ome = _check_ome_version(doc, "well")
    _run_model(docs, "well", Well, _group_spec(doc, None), (docs.digest(path),))
    children = []
    for i_i, image in enumerate(ome["well"]["images"]):
        acq = image.get("acquisition")
        if visit.acquisitions is not None and acq is not None and acq not in visit.acquisitions:
            raise _Invalid(
                f"well: images[{i_i}].acquisition is {acq} but the plate's acquisitions are "
                f"{sorted(visit.acquisitions)}"
            )
        children.append(_Visit(join_key(path, image["path"]), "image"))
    return _Outcome(NodeResult(path, "well", True, ""), children)


def _validate_bioformats2raw(docs: _Documents, path: str, doc: dict[str, Any]) -> _Outcome:
    ome = _check_ome_version(doc, "bioformats2raw")
    spec = _group_spec(doc, None)
    _run_model(docs, "bioformats2raw", BioFormats2Raw, spec, (docs.digest(path),))
    children: list[_Visit] = []
    if isinstance(ome.get("plate"), dict):
        # A bioformats2raw plate: the root carries the plate; wells hold the images.
        _run_model(docs, "plate", HCS, _group_spec(doc, None), (docs.digest(path),))
        children.extend(_plate_children(path, ome["plate"]))
    ome_path = join_key(path, "OME")
    if docs.get(ome_path) is not None:
        children.append(_Visit(ome_path, "ome-series"))
    elif not children:
        # No OME group: the series are the numbered children 0..N-1 (bioformats2raw layout 3).
        index = 0
        while docs.get(join_key(path, str(index))) is not None:
            children.append(_Visit(join_key(path, str(index)), "image"))
            index += 1
        if index == 0:
            raise _Invalid("bioformats2raw: no OME/zarr.json and no series group 0/zarr.json")
    return _Outcome(NodeResult(path, "bioformats2raw", True, ""), children)


def _validate_ome_series(docs: _Documents, path: str, doc: dict[str, Any]) -> _Outcome:
    """The ``OME`` group of bioformats2raw: ``ome.series`` lists the image groups (no model
    class covers it in ome-zarr-models, so it is checked here)."""
    ome = _check_ome_version(doc, "ome-series")
    series = ome.get("series")
    if series is None:
        raise _Invalid("ome-series: ome.series missing; the OME group lists its image groups")
    if not isinstance(series, list) or not all(isinstance(s, str) for s in series):
        raise _Invalid("ome-series: ome.series must be a list of strings (image group paths)")
    parent = path.rpartition("/")[0] if "/" in path else ""
    children = []
    for s_i, name in enumerate(series):
        try:
            image_path = _child(parent, name)
        except ValueError as exc:
            raise _Invalid(f"ome-series: series[{s_i}] {name!r}: {exc}") from exc
        image_doc = docs.get(image_path)
        if not isinstance(image_doc, dict):
            raise _Invalid(
                f"ome-series: series[{s_i}] is {name!r} but {name}/zarr.json is "
                f"{'missing' if image_doc is None else 'unreadable'}"
            )
        ome_image = _ome_block(image_doc)
        if ome_image is None or "multiscales" not in ome_image:
            raise _Invalid(
                f"ome-series: series[{s_i}] is {name!r}, which is not an image group "
                "(no ome.multiscales)"
            )
        children.append(_Visit(image_path, "image"))
    return _Outcome(NodeResult(path, "ome-series", True, ""), children)


def _validate_group(path: str, doc: dict[str, Any]) -> _Outcome:
    """A group that is not an OME node: a valid Zarr v3 group; an ``ome`` block, if any,
    still carries ``"version": "0.5"``."""
    if "ome" in (doc.get("attributes") or {}):
        _check_ome_version(doc, "group")
    return _Outcome(NodeResult(path, "group", True, ""))


def _validate_array(docs: _Documents, path: str, doc: dict[str, Any]) -> _Outcome:
    rule = "array: not a valid Zarr v3 array"
    _run_model(docs, rule, ArraySpec, _array_spec(doc), (docs.digest(path),))
    return _Outcome(NodeResult(path, "array", True, ""))


def _detect_kind(doc: dict[str, Any]) -> str:
    if doc.get("node_type") == "array":
        return "array"
    ome = _ome_block(doc)
    if ome is None:
        return "group"
    for key, kind in (
        ("bioformats2raw.layout", "bioformats2raw"),
        ("plate", "plate"),
        ("well", "well"),
        ("image-label", "label-image"),
        ("multiscales", "image"),
        ("labels", "labels"),
        ("series", "ome-series"),
    ):
        if key in ome:
            return kind
    return "group"


def _claimed_arrays(path: str, doc: object) -> set[str]:
    """The paths of the arrays an image's multiscales name (best effort, for any metadata)."""
    ome = _ome_block(doc) if isinstance(doc, dict) else None
    claimed: set[str] = set()
    for m in ome.get("multiscales", []) if ome and isinstance(ome.get("multiscales"), list) else []:
        datasets = m.get("datasets") if isinstance(m, dict) else None
        for d in datasets if isinstance(datasets, list) else []:
            if isinstance(d, dict) and isinstance(d.get("path"), str):
                claimed.add(join_key(path, d["path"]))
    return claimed


def _validate(docs: _Documents, visit: _Visit) -> _Outcome:
    path = visit.path
    kind = visit.kind or "group"
    doc: dict[str, Any] | str | None = None
    try:
        doc = docs.get(path)
        if doc is None:
            what = "root" if path == "" else kind
            raise _Invalid(f"{what}: no zarr.json at {_display(path)}; not a Zarr v3 node")
        if isinstance(doc, str):
            raise _Invalid(f"{kind}: {doc}")
        if visit.kind is None:
            kind = _detect_kind(doc)
        _check_zarr_node(doc, "array" if kind == "array" else "group", kind)
        if kind in ("image", "label-image"):
            return _validate_multiscales(docs, path, doc, kind, visit)
        if kind == "labels":
            return _validate_labels(docs, path, doc, visit)
        if kind == "plate":
            return _validate_plate(docs, path, doc)
        if kind == "well":
            return _validate_well(docs, path, doc, visit)
        if kind == "bioformats2raw":
            return _validate_bioformats2raw(docs, path, doc)
        if kind == "ome-series":
            return _validate_ome_series(docs, path, doc)
        if kind == "array":
            return _validate_array(docs, path, doc)
        return _validate_group(path, doc)
    except _Invalid as exc:
        # The arrays a failed image names are still its own: not reported again as arrays.
        claimed = _claimed_arrays(path, doc) if kind in ("image", "label-image") else set()
        return _Outcome(NodeResult(path, kind, False, str(exc)), covered=claimed)
    except (KeyError, TypeError, AttributeError) as exc:
        # Metadata of an unexpected shape that slipped past the models: a failed node, not a
        # crash of the whole validation.
        return _Outcome(
            NodeResult(
                path, kind, False, f"{kind}: malformed metadata ({type(exc).__name__}: {exc})"
            )
        )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def validate_node(store: Store, path: str) -> NodeResult:
    """Validate the single node at ``path`` (kind detected from its own metadata).

    Context that only a parent knows (a plate's acquisitions, an image's level count) is not
    checked here; :func:`validate_hierarchy` checks it.
    """
    return _validate(_Documents(store), _Visit(path)).result


def validate_hierarchy(store: Store) -> list[NodeResult]:
    """Validate every node reachable from the root ``zarr.json``, in walk order.

    OME metadata is followed on any store; where ``store.can_list``, every other child group or
    array is visited too. Raises only :class:`~ngff_resave.errors.StorageError`.
    """
    docs = _Documents(store)
    results: list[NodeResult] = []
    queue: deque[_Visit] = deque([_Visit("")])
    scheduled: set[str] = {""}
    covered: set[str] = set()
    while queue:
        visit = queue.popleft()
        outcome = _validate(docs, visit)
        results.append(outcome.result)
        covered |= outcome.covered
        nexts = list(outcome.children)
        if store.can_list and outcome.result.kind != "array":
            nexts.extend(_listed_children(store, docs, visit.path))
        docs.prefetch(c.path for c in nexts if c.path not in scheduled)
        for child in nexts:
            if child.path not in scheduled and child.path not in covered:
                scheduled.add(child.path)
                queue.append(child)
    return results


def _listed_children(store: Store, docs: _Documents, path: str) -> Iterable[_Visit]:
    """Child directories that hold a ``zarr.json`` (other directories are not Zarr nodes)."""
    doc = docs.get(path)
    if not isinstance(doc, dict) or doc.get("node_type") != "group":
        return []
    paths = [join_key(path, name) for name in store.list_children(path)]
    docs.prefetch(paths)
    return [_Visit(p) for p in paths if docs.get(p) is not None]


def format_results(results: list[NodeResult]) -> str:
    """Human-readable lines: ``ok      image        path`` / ``FAILED  labels       path: why``."""
    lines = []
    for r in results:
        status = "ok" if r.ok else "FAILED"
        line = f"{status:<8}{r.kind:<15}{_display(r.path)}"
        if not r.ok:
            line += f": {r.message}"
        lines.append(line)
    return "\n".join(lines)
