"""Pure planning: per-array inner chunks, shard shapes and codecs; the details file.

The shard heuristic (documented in README "Chunks and shards"):

1. The inner chunk is the source chunk (unless ``--output-chunks`` or the details file says
   otherwise): the source chunk bytes then *are* valid inner chunks and the fast path can
   copy them without decoding. Chunks larger than the array are kept as they are (Zarr allows
   it), so the fast path still applies.
2. The shard starts as one chunk and grows by doubling the number of chunks along one
   dimension at a time — first the spatial axes (the one with the fewest pixels in the shard
   first, so shards stay near-cubic/square, which is what viewers read), then the others
   (channel, time) — as long as the *uncompressed* shard stays within the byte target
   (default 256 MiB, ``--shard-size``). A dimension stops growing when the shard covers the
   whole array along it (the shard is clipped to the chunk grid: a whole multiple of the
   chunk, never more chunks than the array has).
3. So every shard is a whole multiple of the chunk, the shard grid covers the array, and the
   uncompressed shard size is ≤ max(target, one chunk).

Why a byte target on the uncompressed size: it bounds the memory of one copy task and the
work lost on a crash, and gives large objects (few files per TB) whatever the compression.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ngff_resave.discover import ArrayNode, Inventory
from ngff_resave.errors import PlanError
from ngff_resave.metadata.arrays import v3_data_type, v3_equivalent_codec

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
DETAILS_FORMAT = "ngff-resave-details"
DETAILS_VERSION = 1

#: The codec used when the source codec has no v3 equivalent and none was asked for.
DEFAULT_CODEC: dict[str, Any] = {
    "name": "blosc",
    "configuration": {"cname": "zstd", "clevel": 5, "shuffle": "shuffle", "blocksize": 0},
}

PATH_COPY = "copy-chunks"
PATH_REENCODE = "reencode"


@dataclass(frozen=True)
class ArrayPlan:
    """What to write for one array: the JSON of one entry of the details file."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...]
    codec: Mapping[str, Any] | None
    path_taken: str
    reason: str

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shards, self.chunks, strict=True))

    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Inner chunks per axis over the whole array (the last ones may overhang it)."""
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))

    @property
    def shard_grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / s) for n, s in zip(self.shape, self.shards, strict=True))

    @property
    def shard_count(self) -> int:
        return math.prod(self.shard_grid)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "chunks": list(self.chunks),
            "shards": list(self.shards),
            "codec": dict(self.codec) if self.codec is not None else None,
            "path_taken": self.path_taken,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PlanOptions:
    """The user's choices that shape the plan."""

    shard_bytes: int = DEFAULT_SHARD_BYTES
    chunks: tuple[int, ...] | None = None
    shards: tuple[int, ...] | None = None
    codec: Mapping[str, Any] | None = None
    codec_given: bool = False  # --output-codec given (None then means "no compression")


def parse_size(text: str) -> int:
    """Parse ``512MiB``, ``1GB``, ``64M`` or a plain byte count into bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise PlanError(f"size {text!r} not understood; write e.g. 512MiB, 2GB or 1048576")
    number, unit, binary = match.groups()
    # KiB/MiB and a bare K/M are binary; KB/MB (an explicit decimal unit) are decimal.
    decimal = bool(unit) and not binary and text.strip().upper().endswith("B")
    base = 1000 if decimal else 1024
    power = " KMGTP".index(unit.upper()) if unit else 0
    value = int(float(number) * (base**power if unit else 1))
    if value <= 0:
        raise PlanError(f"size {text!r} must be positive")
    return value


def parse_shape(text: str, what: str) -> tuple[int, ...]:
    """Parse ``1,1,64,512,512`` into a tuple of positive integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise PlanError(f"{what} {text!r} must be comma-separated integers, e.g. 1,64,64") from None
    if not values or any(v <= 0 for v in values):
        raise PlanError(f"{what} {text!r} must be positive integers")
    return values


_CODEC_NAMES = ("blosc-zstd", "blosc-lz4", "blosc-lz4hc", "blosc-zlib", "zstd", "gzip", "none")


def parse_codec(text: str) -> dict[str, Any] | None:
    """Parse ``--output-codec`` (``zstd``, ``zstd:5``, ``blosc-zstd:5``, ``gzip:6``, ``none``)."""
    name, _, level_text = text.strip().lower().partition(":")
    if name not in _CODEC_NAMES:
        raise PlanError(f"codec {text!r} unknown; choose one of {', '.join(_CODEC_NAMES)}")
    level: int | None = None
    if level_text:
        try:
            level = int(level_text)
        except ValueError:
            raise PlanError(f"codec level in {text!r} must be an integer") from None
    if name == "none":
        return None
    if name.startswith("blosc-"):
        clevel = 5 if level is None else level
        if not 0 <= clevel <= 9:
            raise PlanError(f"blosc level must be 0..9, got {clevel}")
        return {
            "name": "blosc",
            "configuration": {
                "cname": name.removeprefix("blosc-"),
                "clevel": clevel,
                "shuffle": "shuffle",
                "blocksize": 0,
            },
        }
    if name == "zstd":
        zlevel = 5 if level is None else level
        if not -131072 <= zlevel <= 22:
            raise PlanError(f"zstd level must be at most 22, got {zlevel}")
        return {"name": "zstd", "configuration": {"level": zlevel, "checksum": False}}
    glevel = 5 if level is None else level
    if not 0 <= glevel <= 9:
        raise PlanError(f"gzip level must be 0..9, got {glevel}")
    return {"name": "gzip", "configuration": {"level": glevel}}


def _with_typesize(codec: Mapping[str, Any] | None, itemsize: int) -> dict[str, Any] | None:
    """Blosc in v3 records the item size its shuffle works on; fill it in per array."""
    if codec is None:
        return None
    out = json.loads(json.dumps(codec))
    if out.get("name") == "blosc":
        out.setdefault("configuration", {})["typesize"] = itemsize
    return dict(out)


def choose_shards(
    shape: Sequence[int],
    chunks: Sequence[int],
    itemsize: int,
    target_bytes: int,
    axis_types: Sequence[str | None] | None = None,
) -> tuple[int, ...]:
    """The shard shape for ``chunks`` under ``target_bytes`` (heuristic in module docstring)."""
    rank = len(shape)
    grid = [max(1, math.ceil(n / c)) for n, c in zip(shape, chunks, strict=True)]
    counts = [1] * rank
    types = list(axis_types) if axis_types is not None else [None] * rank
    # Non-OME arrays: treat every dimension as spatial (grow the largest extents evenly).
    spatial = [i for i in range(rank) if types[i] == "space" or axis_types is None]
    others = [i for i in reversed(range(rank)) if i not in spatial]

    def shard_bytes(c: Sequence[int]) -> int:
        return math.prod(k * ch for k, ch in zip(c, chunks, strict=True)) * itemsize

    for group in (spatial, others):
        while True:
            growable = [i for i in group if counts[i] < grid[i]]
            if not growable:
                break
            # The dimension with the fewest pixels in the shard grows first (ties: the
            # later, faster-varying dimension), keeping shards near-cubic in space.
            dim = min(growable, key=lambda i: (counts[i] * chunks[i], -i))
            trial = list(counts)
            trial[dim] = min(grid[dim], counts[dim] * 2)
            if shard_bytes(trial) > target_bytes:
                # Try growing by whatever still fits along this dimension, then stop it.
                fit = target_bytes // max(1, shard_bytes(counts) // counts[dim])
                if fit > counts[dim]:
                    counts[dim] = int(min(grid[dim], fit))
                group = [i for i in group if i != dim]
                continue
            counts = trial
    return tuple(k * c for k, c in zip(counts, chunks, strict=True))


def plan_array(node: ArrayNode, options: PlanOptions) -> ArrayPlan:
    """The plan of one array (pure)."""
    meta = node.meta
    rank = len(meta.shape)
    asked = chunks = meta.chunks  # the source chunk is kept whole (fast path)
    if options.chunks is not None and len(options.chunks) == rank:
        asked = tuple(options.chunks)
        # A chunk larger than a (smaller) resolution level is clipped to it.
        chunks = tuple(max(1, min(c, s)) for c, s in zip(asked, meta.shape, strict=True))
    source_codec, not_copyable = v3_equivalent_codec(meta)
    if options.codec_given:
        codec = _with_typesize(options.codec, meta.itemsize)
    elif not_copyable is None:
        codec = source_codec
    else:
        codec = _with_typesize(DEFAULT_CODEC, meta.itemsize)
    if options.shards is not None and len(options.shards) == rank:
        # Clipped with the chunk: a shard never spans more than the chunks covering the array
        # (so a level smaller than --output-chunks gets one chunk per shard along that axis).
        shards = tuple(
            min(s, -(-n // c) * c) if s % a == 0 else s
            for s, a, c, n in zip(options.shards, asked, chunks, meta.shape, strict=True)
        )
    else:
        shards = choose_shards(
            meta.shape, chunks, meta.itemsize, options.shard_bytes, node.axis_types
        )
    return finish_plan(
        node,
        chunks=chunks,
        shards=shards,
        codec=codec,
        source_codec=source_codec,
        not_copyable=not_copyable,
    )


def finish_plan(
    node: ArrayNode,
    *,
    chunks: tuple[int, ...],
    shards: tuple[int, ...],
    codec: Mapping[str, Any] | None,
    source_codec: Mapping[str, Any] | None,
    not_copyable: str | None,
) -> ArrayPlan:
    """Check a chunk/shard/codec choice and decide the copy path (fast or re-encode)."""
    meta = node.meta
    check_shards(node.path, meta.shape, chunks, shards)
    if not_copyable is not None:
        path_taken, reason = PATH_REENCODE, not_copyable
    elif chunks != meta.chunks:
        path_taken, reason = (
            PATH_REENCODE,
            (f"inner chunks {list(chunks)} differ from the source chunks {list(meta.chunks)}"),
        )
    elif codec != source_codec:
        path_taken, reason = PATH_REENCODE, "an output codec other than the source's was asked"
    else:
        path_taken, reason = PATH_COPY, "source chunks are valid inner chunks; copied as stored"
    return ArrayPlan(
        path=node.path,
        shape=meta.shape,
        dtype=v3_data_type(np.dtype(meta.dtype)),
        chunks=chunks,
        shards=shards,
        codec=codec,
        path_taken=path_taken,
        reason=reason,
    )


def check_shards(
    path: str, shape: Sequence[int], chunks: Sequence[int], shards: Sequence[int]
) -> None:
    """Raise :class:`PlanError` unless ``shards`` is a whole multiple of ``chunks``."""
    rank = len(shape)
    if len(chunks) != rank or len(shards) != rank:
        raise PlanError(
            f"array '{path}': chunks {list(chunks)} and shards {list(shards)} must have "
            f"{rank} values like the shape {list(shape)}"
        )
    for dim, (c, s) in enumerate(zip(chunks, shards, strict=True)):
        if c <= 0 or s <= 0:
            raise PlanError(f"array '{path}': chunks and shards must be positive")
        if s % c:
            raise PlanError(
                f"array '{path}': shard {list(shards)} is not a whole multiple of the chunk "
                f"{list(chunks)} (dimension {dim}: {s} is not a multiple of {c}); fix "
                "--output-shards or the shards in the details file"
            )


def plan_inventory(inventory: Inventory, options: PlanOptions) -> list[ArrayPlan]:
    """The plan of every array of the inventory, in inventory order."""
    return [plan_array(node, options) for node in inventory.arrays]


def details_document(
    plans: Sequence[ArrayPlan], *, source: str, shard_bytes: int
) -> dict[str, Any]:
    """The JSON document written by ``--output-write-details``."""
    return {
        "format": DETAILS_FORMAT,
        "version": DETAILS_VERSION,
        "input": source,
        "shard_size": shard_bytes,
        "arrays": [p.to_json() for p in plans],
    }


def apply_details(
    inventory: Inventory,
    plans: Sequence[ArrayPlan],
    document: Any,
    *,
    where: str,
) -> tuple[list[ArrayPlan], list[str]]:
    """Apply an edited details file to the computed plans (``--output-read-details``).

    Returns the new plans and warnings. Shape changes are ignored with a warning (the shape
    is the input's); chunks, shards and codec are taken, and checked before anything is
    written. Arrays the file does not list keep their computed plan.
    """
    if not isinstance(document, dict) or not isinstance(document.get("arrays"), list):
        raise PlanError(f"{where}: not an ngff-resave details file (no 'arrays' list)")
    by_path = {p.path: (i, p) for i, p in enumerate(plans)}
    nodes = {n.path: n for n in inventory.arrays}
    out = list(plans)
    warnings: list[str] = []
    for k, entry in enumerate(document["arrays"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise PlanError(f"{where}: arrays[{k}] needs a 'path'")
        path = entry["path"]
        if path not in by_path:
            warnings.append(f"{where}: array '{path}' is not in the input; entry ignored")
            continue
        index, plan = by_path[path]
        node = nodes[path]
        if "shape" in entry and list(entry["shape"]) != list(plan.shape):
            warnings.append(
                f"{where}: array '{path}': shape {entry['shape']} ignored; the input's shape "
                f"{list(plan.shape)} is kept"
            )
        chunks = _entry_shape(entry, "chunks", plan.chunks, where, path)
        shards = _entry_shape(entry, "shards", plan.shards, where, path)
        codec = entry.get("codec", plan.codec)
        if codec is not None and not (
            isinstance(codec, dict) and isinstance(codec.get("name"), str)
        ):
            raise PlanError(f"{where}: array '{path}': codec must be null or a v3 codec object")
        source_codec, not_copyable = v3_equivalent_codec(node.meta)
        try:
            out[index] = finish_plan(
                node,
                chunks=chunks,
                shards=shards,
                codec=_with_typesize(codec, node.meta.itemsize) if codec else None,
                source_codec=source_codec,
                not_copyable=not_copyable,
            )
        except PlanError as exc:
            raise PlanError(f"{where}: {exc}") from exc
    return out, warnings


def _entry_shape(
    entry: Mapping[str, Any], key: str, default: tuple[int, ...], where: str, path: str
) -> tuple[int, ...]:
    value = entry.get(key, list(default))
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise PlanError(f"{where}: array '{path}': '{key}' must be a list of integers")
    return tuple(value)
