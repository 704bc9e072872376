"""Independent checkers of a converted OME-Zarr 0.5 output: code we did not write judges it.

* :func:`schema_validate_output` – the official NGFF 0.5 JSON schemas (read offline from
  ``../shared/ngff-samples/spec``) on every group ``zarr.json`` that has an ``ome`` attribute.
* :func:`models_validate_output` – ``ome_zarr_models.v05`` classes via ``from_zarr``.
* :func:`assert_same_data` – every input array read with zarr-python (v2) against the output
  read with zarr-python (v3) *and* tensorstore (``zarr3`` driver).
* :func:`open_with_ome_zarr_py` – a third reader, ome-zarr-py.
* :func:`assert_no_stray_files` / :func:`assert_no_legacy_attrs` – leftovers of v2 or of a crash.

Every checker raises ``AssertionError`` listing *all* failures, each with the path that failed.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support.builders import chunk_aligned_regions
from tests.support.samples import SAMPLES

SPEC_DIR: Path = SAMPLES / "spec"
SCHEMA_BASE = "https://ngff.openmicroscopy.org/{version}/"
#: Temporary-file suffix of the project's atomic writes (ngff_resave.locations.TEMP_SUFFIX).
TEMP_SUFFIX = ".ngff-resave-tmp"
V2_METADATA = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata"})
#: ``ome`` key -> schema file that validates a node carrying it.
SCHEMA_BY_KEY: dict[str, str] = {
    "multiscales": "image.schema",
    "image-label": "label.schema",
    "plate": "plate.schema",
    "well": "well.schema",
    "bioformats2raw.layout": "bf2raw.schema",
    "series": "ome.schema",
}
#: Keys that belong under ``attributes.ome`` in 0.5 and must not stay at the top level.
LEGACY_KEYS = frozenset({*SCHEMA_BY_KEY, "labels", "omero"})


# --------------------------------------------------------------------------- JSON schemas


def require_spec(version: str = "0.5") -> Path:
    """Return ``spec/<version>`` of the shared samples, or skip the calling test."""
    path = SPEC_DIR / version
    if not (path / "schemas").is_dir():
        pytest.skip(f"NGFF {version} schemas not found at {path} (they live in ../shared)")
    return path


@functools.cache
def schema_registry(version: str = "0.5") -> Registry[Any]:
    """All ``spec/<version>/schemas/*.schema`` in a registry keyed by their ``$id``.

    The strict schemas carry no ``$schema``, hence the default specification DRAFT202012.
    """
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted((require_spec(version) / "schemas").glob("*.schema")):
        contents = json.loads(path.read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((contents["$id"], resource))
    return Registry().with_resources(resources)


def schema_id(name: str, version: str = "0.5") -> str:
    """The ``$id`` of a schema file name (``"image.schema"`` or ``"schemas/image.schema"``)."""
    name = name.removeprefix("schemas/")
    registry = schema_registry(version)
    for prefix in (SCHEMA_BASE.format(version=version), SCHEMA_BASE.format(version="latest")):
        uri = prefix + "schemas/" + name
        if uri in registry:
            return uri
    raise KeyError(f"no schema {name!r} in the NGFF {version} registry")


def schema_validator(name: str, version: str = "0.5") -> Draft202012Validator:
    """A validator for one NGFF schema, resolving its ``$ref``s offline through the registry."""
    registry = schema_registry(version)
    uri = schema_id(name, version)
    return Draft202012Validator(registry[uri].contents, registry=registry)


def schema_errors(document: Any, name: str, version: str = "0.5") -> list[str]:
    """Messages of every schema violation of ``document`` (empty when valid)."""
    errors = sorted(schema_validator(name, version).iter_errors(document), key=str)
    return [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    ]


def iter_group_metadata(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every v3 group ``zarr.json`` under ``root`` (root included): (group dir, document)."""
    for dirpath, _dirs, files in os.walk(root):
        if "zarr.json" in files:
            doc = json.loads((Path(dirpath) / "zarr.json").read_text())
            if doc.get("node_type") == "group":
                yield Path(dirpath), doc


def _labels_errors(ome: dict[str, Any]) -> list[str]:
    """No schema exists for a labels group: ``version`` is "0.5" and ``labels`` lists strings."""
    errors: list[str] = []
    if ome.get("version") != "0.5":
        errors.append(f"labels group: ome.version is {ome.get('version')!r}, expected '0.5'")
    labels = ome.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        errors.append(f"labels group: ome.labels must be a list of str, got {labels!r}")
    return errors


def ome_node_errors(ome: dict[str, Any], version: str = "0.5") -> list[str]:
    """Schema errors of one ``ome`` block, checked against every schema its keys call for."""
    errors: list[str] = []
    names = [schema for key, schema in SCHEMA_BY_KEY.items() if key in ome]
    for name in names:
        errors.extend(schema_errors({"ome": ome}, name, version))
    if "labels" in ome:
        errors.extend(_labels_errors(ome))
    if not names and "labels" not in ome:
        errors.append(f"ome block with no known OME-Zarr key: {sorted(ome)}")
    return errors


def schema_validate_output(out_root: Path) -> int:
    """Validate every group ``attributes.ome`` under ``out_root`` with the official 0.5 schemas.

    The schema follows the node kind (multiscales→image, image-label→label, plate, well,
    bioformats2raw.layout→bf2raw, series→ome). Returns the number of OME nodes checked;
    raises ``AssertionError`` listing every failure, or when no OME node is found.
    """
    failures: list[str] = []
    checked = 0
    for group_dir, doc in iter_group_metadata(out_root):
        ome = doc.get("attributes", {}).get("ome")
        if ome is None:
            continue
        checked += 1
        rel = group_dir.relative_to(out_root).as_posix() or "."
        failures.extend(f"{rel}: {msg}" for msg in ome_node_errors(ome))
    if checked == 0:
        failures.append(f"no group with an 'ome' attribute under {out_root}")
    if failures:
        raise AssertionError("0.5 schema validation failed:\n  " + "\n  ".join(failures))
    return checked


def schema_validate_v04_input(in_root: Path) -> int:
    """Validate every ``.zattrs`` of a 0.4 tree with the official 0.4 schemas (no ``ome`` key).

    Returns the number of OME nodes checked; raises ``AssertionError`` on any failure.
    """
    failures: list[str] = []
    checked = 0
    for path in sorted(in_root.rglob(".zattrs")):
        attrs = json.loads(path.read_text())
        if (path.parent / ".zarray").exists():
            continue
        rel = path.parent.relative_to(in_root).as_posix() or "."
        names = [schema for key, schema in SCHEMA_BY_KEY.items() if key in attrs]
        for name in names:
            failures.extend(f"{rel}: {m}" for m in schema_errors(attrs, name, "0.4"))
        checked += bool(names)
    if failures:
        raise AssertionError("0.4 schema validation failed:\n  " + "\n  ".join(failures))
    return checked


def assert_no_legacy_attrs(out_root: Path) -> None:
    """No OME key (multiscales, omero, labels…) left outside ``attributes.ome`` in 0.5."""
    failures = [
        f"{group_dir.relative_to(out_root).as_posix() or '.'}: top-level {sorted(left)}"
        for group_dir, doc in iter_group_metadata(out_root)
        if (left := LEGACY_KEYS & set(doc.get("attributes", {})))
    ]
    if failures:
        raise AssertionError("0.4 keys left outside 'ome':\n  " + "\n  ".join(failures))


# --------------------------------------------------------------------------- ome-zarr-models


def models_validate_output(out_root: Path) -> int:
    """Validate every OME node under ``out_root`` with ``ome_zarr_models.v05`` ``from_zarr``.

    Class by kind: image-label→ImageLabel, multiscales→Image (which also loads its labels),
    labels→Labels, bioformats2raw.layout→BioFormats2Raw, plate→HCS, well→Well. The models
    have no class for the bioformats2raw ``OME`` group: its ``series`` is checked by hand.
    The warning the models raise when a 0.5 plate lacks ``plate.version`` (0.5 moved it to
    ``ome.version``) is expected and silenced. Returns the number of nodes validated.
    """
    from ome_zarr_models.v05 import HCS, BioFormats2Raw, Image, ImageLabel, Labels, Well

    failures: list[str] = []
    checked = 0
    for group_dir, doc in iter_group_metadata(out_root):
        ome = doc.get("attributes", {}).get("ome")
        if ome is None:
            continue
        rel = group_dir.relative_to(out_root).as_posix() or "."
        cls: Any
        if "image-label" in ome:
            cls = ImageLabel
        elif "multiscales" in ome:
            cls = Image
        elif "labels" in ome:
            cls = Labels
        elif "bioformats2raw.layout" in ome:
            cls = BioFormats2Raw
        elif "plate" in ome:
            cls = HCS
        elif "well" in ome:
            cls = Well
        elif "series" in ome:
            series = ome["series"]
            if not (isinstance(series, list) and all(isinstance(s, str) for s in series)):
                failures.append(f"{rel}: ome.series must be a list of str, got {series!r}")
            checked += 1
            continue
        else:
            failures.append(f"{rel}: no ome-zarr-models class for keys {sorted(ome)}")
            continue
        try:
            group = zarr.open_group(str(group_dir), mode="r", zarr_format=3)
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=r".*'version' field not specified in plate metadata.*"
                )
                cls.from_zarr(group)
            checked += 1
        except Exception as err:  # any failure of the model is a finding, with its path
            failures.append(f"{rel}: {cls.__name__}: {type(err).__name__}: {err}")
    if failures:
        raise AssertionError("ome-zarr-models 0.5 validation failed:\n  " + "\n  ".join(failures))
    return checked


# --------------------------------------------------------------------------- data


def iter_v2_arrays(in_root: Path) -> Iterator[str]:
    """Relative paths (``/``-separated) of every Zarr v2 array under ``in_root``, sorted."""
    for path in sorted(in_root.rglob(".zarray")):
        yield path.parent.relative_to(in_root).as_posix()


def output_axes_by_array(out_root: Path) -> dict[str, list[str]]:
    """Array path → axis names, from every output ``ome.multiscales`` (datasets' paths)."""
    result: dict[str, list[str]] = {}
    for group_dir, doc in iter_group_metadata(out_root):
        for ms in doc.get("attributes", {}).get("ome", {}).get("multiscales", []) or []:
            names = [a["name"] for a in ms.get("axes", [])]
            for ds in ms.get("datasets", []):
                rel = (group_dir / ds["path"]).relative_to(out_root).as_posix()
                result[rel] = names
    return result


def _same_fill(a: Any, b: Any) -> bool:
    """Fill values equal, NaN equal to NaN (numpy scalars or JSON spellings such as "NaN")."""
    try:
        aa, bb = (np.asarray(float(x) if isinstance(x, str) else x) for x in (a, b))
    except ValueError:
        return bool(a == b)
    if aa.dtype.kind in "fc" and bb.dtype.kind in "fc" and np.isnan(aa) and np.isnan(bb):
        return True
    try:
        return bool(aa == bb)
    except (TypeError, ValueError):
        return False


def _native(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` in native byte order (numeric kinds; string dtypes have no byte order)."""
    return dtype.newbyteorder("=") if dtype.kind in "biufc" else dtype


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _compare_array(in_dir: Path, out_dir: Path, axes: list[str] | None) -> list[str]:
    import tensorstore as ts

    src = zarr.open_array(str(in_dir), mode="r", zarr_format=2)
    try:
        dst = zarr.open_array(str(out_dir), mode="r", zarr_format=3)
    except Exception as err:
        return [f"output array missing or unreadable with zarr-python: {err}"]
    meta = json.loads((out_dir / "zarr.json").read_text())
    errors: list[str] = []
    if tuple(src.shape) != tuple(dst.shape):
        return [f"shape {dst.shape} != input {src.shape}"]
    if _native(src.dtype) != _native(dst.dtype):
        errors.append(f"dtype {dst.dtype} != input {src.dtype} (byte order aside)")
    if src.fill_value is not None and not _same_fill(src.fill_value, dst.fill_value):
        errors.append(f"fill_value {meta.get('fill_value')!r} != input {src.fill_value!r}")
    if axes is not None and meta.get("dimension_names") != axes:
        errors.append(f"dimension_names {meta.get('dimension_names')} != axes {axes}")
    # tensorstore's zarr3 driver knows numeric and bool data types only (not zarr-python's
    # string types, which non-OME tables may use): those arrays are compared by zarr-python.
    tsa: Any = None
    if src.dtype.kind in "biufc":
        tsa = ts.open(
            {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out_dir)}},
            read=True,
        ).result()
        if tuple(tsa.shape) != tuple(src.shape):
            return [*errors, f"tensorstore shape {tsa.shape} != input {src.shape}"]
    readers: list[tuple[str, Any]] = [("zarr-python", lambda r: dst[r])]
    if tsa is not None:
        readers.append(("tensorstore", lambda r: tsa[r].read().result()))
    for region in chunk_aligned_regions(src.shape, src.chunks, max(src.dtype.itemsize, 1)):
        expected = np.asarray(src[region])
        for reader, read in readers:
            try:
                got = np.asarray(read(region))
            except Exception as err:  # a reader that cannot decode the output is a finding
                errors.append(f"{reader} cannot read region {_fmt(region)}: {err}")
                continue
            if _native(got.dtype) != _native(expected.dtype):
                errors.append(f"{reader} reads dtype {got.dtype}, input {expected.dtype}")
            elif not _same_values(expected, got):
                bad = int(np.sum(~_equal_mask(expected, got)))
                errors.append(f"{reader}: {bad} values differ in region {_fmt(region)}")
        if errors:
            break
    return errors


def _equal_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    eq = np.asarray(a == b)
    if a.dtype.kind in "fc":
        eq |= np.isnan(a) & np.isnan(b)
    return eq


def _fmt(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


def assert_same_data(
    in_root: Path, out_root: Path, array_paths: Sequence[str] | None = None
) -> int:
    """Every input v2 array equals its output v3 array, read by zarr-python and tensorstore.

    Checks shape, dtype (same kind and size; big-endian input must read back the same values),
    values (NaN equals NaN), fill_value (NaN-aware; skipped when the input's is null) and,
    for arrays that an output ``multiscales`` names, ``dimension_names`` equal to the axes.
    Returns the number of arrays compared.
    """
    paths = list(array_paths) if array_paths is not None else list(iter_v2_arrays(in_root))
    if not paths:
        raise AssertionError(f"no Zarr v2 array found under {in_root}")
    axes_by_array = output_axes_by_array(out_root)
    failures: list[str] = []
    for rel in paths:
        out_dir = out_root / rel
        if not (out_dir / "zarr.json").is_file():
            failures.append(f"{rel}: no zarr.json in the output")
            continue
        failures.extend(
            f"{rel}: {m}" for m in _compare_array(in_root / rel, out_dir, axes_by_array.get(rel))
        )
    if failures:
        raise AssertionError("data differs:\n  " + "\n  ".join(failures))
    return len(paths)


# --------------------------------------------------------------------------- ome-zarr-py


def open_with_ome_zarr_py(image_path: Path) -> np.ndarray:
    """Read an image with ome-zarr-py (``Reader(parse_url(...))``); return level 0 as numpy.

    ome-zarr-py ≥ 0.12 reads 0.5 (zarr v3, ``attributes.ome``) directly; no special handling.
    """
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(str(image_path), mode="r")
    if location is None:
        raise AssertionError(f"ome-zarr-py cannot open {image_path}")
    for node in Reader(location)():
        if node.load(Multiscales) is not None and node.data:
            return np.asarray(node.data[0].compute())
    raise AssertionError(f"ome-zarr-py found no multiscales image at {image_path}")


# --------------------------------------------------------------------------- leftovers


def assert_no_stray_files(out_root: Path) -> None:
    """No temporary files of an atomic write and no Zarr v2 metadata anywhere in the output."""
    stray = sorted(
        p.relative_to(out_root).as_posix()
        for p in out_root.rglob("*")
        if TEMP_SUFFIX in p.name or p.name in V2_METADATA
    )
    if stray:
        raise AssertionError("stray files in the output:\n  " + "\n  ".join(stray))


def judge_output(src: Path, out: Path) -> None:
    """Every independent check of a finished 0.5 output against its 0.4 source."""
    if SPEC_DIR.exists():
        schema_validate_output(out)
    models_validate_output(out)
    assert_same_data(src, out)
    assert_no_stray_files(out)
    assert_no_legacy_attrs(out)
    assert not (out / ".ngff-resave-run.json").exists()


def one_error_line(err: str) -> str:
    """The single ``ERROR`` line of a failed run's stderr (and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]
