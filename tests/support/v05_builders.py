"""Builders of small, valid OME-Zarr **0.5** (Zarr v3, sharded) hierarchies for the validator.

Arrays are created with zarr-python 3 (``zarr_format=3``, ``shards=...``, ``dimension_names``);
group metadata goes in ``zarr.json`` ``attributes.ome`` with ``"version": "0.5"``. Only
metadata is written (no chunks): the validator checks metadata, not pixels.

Also here: :class:`MemoryStore`, a dict-backed :class:`ngff_resave.locations.Store` that can be
made unlistable (like plain HTTP), and :func:`edit_zarr_json` to break a fixture in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from ngff_resave.locations import LocalStore, check_key

VERSION = "0.5"
AXES = ("c", "y", "x")
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def ome(**block: Any) -> dict[str, Any]:
    """Group attributes ``{"ome": {"version": "0.5", ...}}``."""
    return {"ome": {"version": VERSION, **block}}


def multiscales(levels: int, axes: Sequence[str] = AXES) -> list[dict[str, Any]]:
    """One multiscale with ``levels`` datasets ``0..levels-1``, x2 downsampling in y/x."""
    return [
        {
            "name": "image",
            "axes": [
                {"name": a, "type": _AXIS_TYPES[a]}
                | ({"unit": "micrometer"} if _AXIS_TYPES[a] == "space" else {})
                for a in axes
            ],
            "datasets": [
                {
                    "path": str(level),
                    "coordinateTransformations": [
                        {
                            "type": "scale",
                            "scale": [
                                0.5 * 2**level if _AXIS_TYPES[a] == "space" else 1.0 for a in axes
                            ],
                        }
                    ],
                }
                for level in range(levels)
            ],
        }
    ]


def write_group(root: Path, path: str, attributes: dict[str, Any] | None = None) -> None:
    """A Zarr v3 group at ``root/path`` (written by zarr-python)."""
    zarr.create_group(root, path=path or None, zarr_format=3, attributes=attributes or {})


def write_image(
    root: Path,
    path: str = "",
    *,
    levels: int = 2,
    dtype: str = "uint16",
    label_values: Sequence[int] | None = None,
    axes: Sequence[str] = AXES,
) -> None:
    """A 0.5 image (or, with ``label_values``, an image-label) with sharded arrays."""
    block: dict[str, Any] = {"multiscales": multiscales(levels, axes)}
    if label_values is not None:
        block["image-label"] = {
            "colors": [{"label-value": v, "rgba": [255, 0, 0, 255]} for v in label_values],
            "source": {"image": "../../"},
        }
    write_group(root, path, ome(**block))
    for level in range(levels):
        shape = tuple(2 if a == "c" else 64 // 2**level for a in axes)
        chunks = tuple(1 if a == "c" else 8 for a in axes)
        shards = tuple(1 if a == "c" else 16 for a in axes)
        zarr.create_array(
            root,
            name="/".join(p for p in (path, str(level)) if p),
            shape=shape,
            chunks=chunks,
            shards=shards,
            dtype=dtype,
            dimension_names=list(axes),
            zarr_format=3,
            write_data=False,
        )


def build_image_with_labels(root: Path) -> Path:
    """Image at the root with ``labels/`` listing one label image ``cells`` (2 levels each)."""
    write_image(root, "", levels=2)
    write_group(root, "labels", ome(labels=["cells"]))
    write_image(root, "labels/cells", levels=2, dtype="uint32", label_values=[1, 2])
    return root


ROWS = ("A", "B")
COLUMNS = ("1", "2")
FIELDS = ("0", "1")


def plate_block(rows: Sequence[str] = ROWS, columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    """``ome.plate`` of a full plate with acquisitions 0 and 1, ``field_count`` fields."""
    return {
        "name": "test plate",
        "acquisitions": [{"id": 0, "name": "first"}, {"id": 1, "name": "second"}],
        "field_count": len(FIELDS),
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [
            {"path": f"{r}/{c}", "rowIndex": r_i, "columnIndex": c_i}
            for r_i, r in enumerate(rows)
            for c_i, c in enumerate(columns)
        ],
    }


def well_block(fields: Sequence[str] = FIELDS) -> dict[str, Any]:
    """``ome.well``: field ``i`` belongs to acquisition ``i % 2``."""
    return {"images": [{"path": f, "acquisition": i % 2} for i, f in enumerate(fields)]}


def build_plate(root: Path) -> Path:
    """Plate 2 rows x 2 columns x 2 fields, with acquisitions; each field a 1-level image."""
    write_group(root, "", ome(plate=plate_block()))
    for r in ROWS:
        write_group(root, r)
        for c in COLUMNS:
            write_group(root, f"{r}/{c}", ome(well=well_block()))
            for f in FIELDS:
                write_image(root, f"{r}/{c}/{f}", levels=1)
    return root


def build_bioformats2raw(root: Path, *, n_series: int = 2, ome_group: bool = True) -> Path:
    """bioformats2raw layout 3: series ``0..n-1`` and (optionally) ``OME/`` listing them."""
    write_group(root, "", ome(**{"bioformats2raw.layout": 3}))
    for i in range(n_series):
        write_image(root, str(i), levels=2)
    if ome_group:
        write_group(root, "OME", ome(series=[str(i) for i in range(n_series)]))
        (root / "OME" / "METADATA.ome.xml").write_text("<OME/>", encoding="utf-8")
    return root


def edit_zarr_json(root: Path, path: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the parsed ``root/path/zarr.json`` and write it back."""
    file = root / path / "zarr.json" if path else root / "zarr.json"
    doc = json.loads(file.read_text(encoding="utf-8"))
    edit(doc)
    file.write_text(json.dumps(doc), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Pure-JSON hierarchies in memory (fast enough for thousands of wells)
# --------------------------------------------------------------------------------------------


def array_doc(shape: Sequence[int], dims: Sequence[str], dtype: str = "uint16") -> dict[str, Any]:
    """A sharded Zarr v3 array ``zarr.json`` as zarr-python writes it."""
    inner = [max(1, s // 2) for s in shape]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": inner,
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ],
        "attributes": {},
        "dimension_names": list(dims),
    }


def group_doc(attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes or {}}


def plate_in_memory(n_rows: int, n_columns: int, n_fields: int, levels: int) -> dict[str, bytes]:
    """The metadata of a whole plate as ``{key: zarr.json bytes}`` (for :class:`MemoryStore`)."""
    rows = [f"R{i}" for i in range(n_rows)]
    columns = [str(i) for i in range(n_columns)]
    fields = [str(i) for i in range(n_fields)]
    files: dict[str, dict[str, Any]] = {
        "zarr.json": group_doc(ome(plate=plate_block(rows, columns)))
    }
    image = group_doc(ome(multiscales=multiscales(levels)))
    arrays = [array_doc((2, 64 // 2**level, 64 // 2**level), AXES) for level in range(levels)]
    for r in rows:
        files[f"{r}/zarr.json"] = group_doc()
        for c in columns:
            files[f"{r}/{c}/zarr.json"] = group_doc(ome(well=well_block(fields)))
            for f in fields:
                files[f"{r}/{c}/{f}/zarr.json"] = image
                for level, doc in enumerate(arrays):
                    files[f"{r}/{c}/{f}/{level}/zarr.json"] = doc
    return {k: json.dumps(v).encode() for k, v in files.items()}


@dataclass(frozen=True)
class MemoryStore:
    """A read-mostly, dict-backed Store; ``listable=False`` behaves like plain HTTP."""

    objects: dict[str, bytes] = field(default_factory=dict)
    listable: bool = True

    @property
    def url(self) -> str:
        return "memory://"

    @property
    def can_list(self) -> bool:
        return self.listable

    def describe(self, key: str) -> str:
        return f"memory://{key}"

    def read(self, key: str) -> bytes | None:
        return self.objects.get(check_key(key))

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.read(k) for k in keys]

    def write(self, key: str, data: bytes) -> None:
        self.objects[check_key(key)] = data

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_children(self, prefix: str) -> list[str]:
        if not self.listable:
            raise NotImplementedError("this store cannot list")
        start = f"{prefix}/" if prefix else ""
        return sorted(
            {
                k[len(start) :].split("/", 1)[0]
                for k in self.objects
                if k.startswith(start) and "/" in k[len(start) :]
            }
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = f"{prefix}/" if prefix else ""
        return iter(sorted(k for k in self.objects if k.startswith(start)))

    def delete_prefix(self, prefix: str) -> None:
        for k in list(self.objects):
            if k == prefix or k.startswith(f"{prefix}/"):
                del self.objects[k]

    def is_empty(self) -> bool:
        return not self.objects

    @classmethod
    def copy_of(cls, root: Path, *, listable: bool = True) -> MemoryStore:
        """Every file under a local directory, as a memory store."""
        local = LocalStore(str(root))
        return cls({k: local.read(k) or b"" for k in local.list_keys("")}, listable)
