"""Data verification: the written shards hold what the input holds.

For each verified shard, every inner chunk is decoded from the output and compared with the
values assembled from the *source* chunks (decoded with the v2 codecs); fast-path inner chunks
are compared byte for byte with the source chunks (and one per shard also by value). The
shard index checksum (crc32c) catches a corrupt index, size checks a truncated shard, and a
missing shard is an error whenever the source has data there.

``sample`` checks the first and last shard of every array and a few spread between them;
``full`` checks every shard.

:func:`verify_output` checks an output that already exists (``ngff-resave verify``): it
validates the 0.5 metadata, compares every array's and group's ``zarr.json`` with what the
input migrates to, rebuilds each array's plan from its ``zarr.json`` and verifies the shards.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ngff_resave.chunkcodecs import decode_inner, decode_source_chunk
from ngff_resave.copying import (
    CopyTask,
    in_grid,
    inner_chunk_indices,
    shard_indices,
    shard_region,
)
from ngff_resave.discover import ArrayNode, discover, read_json
from ngff_resave.errors import CorruptChunkError, ResaveError
from ngff_resave.locations import LocalStore, LocationSpec, Store, join_key, open_store
from ngff_resave.metadata.arrays import (
    fill_as_scalar,
    sharded_array_metadata,
    v3_equivalent_codec,
)
from ngff_resave.metadata.ome import migrate_attributes
from ngff_resave.planning import PATH_COPY, ArrayPlan, finish_plan
from ngff_resave.shards import EMPTY, index_nbytes, inner_chunk, parse_index, read_index

SAMPLE_SHARDS = 5
#: Inner chunks decoded per sampled shard in ``sample`` mode.
SAMPLE_CHUNKS = 8


@dataclass(frozen=True)
class ShardProblem:
    """One verification failure."""

    path: str
    shard_key: str
    message: str

    def __str__(self) -> str:
        return f"array '{self.path}', shard {self.shard_key}: {self.message}"


def sample_shards(grid: Sequence[int], count: int = SAMPLE_SHARDS) -> list[tuple[int, ...]]:
    """First, last and evenly spread shard positions (deterministic)."""
    total = math.prod(grid)
    if total == 0:
        return []
    picks = sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(count)})
    return [tuple(int(v) for v in np.unravel_index(p, grid)) for p in picks]


#: Decoded source chunks kept while verifying one shard (re-encoded inner chunks may be
#: smaller than the source chunks, so neighbours reuse them).
_CACHE_CHUNKS = 16


def _expected_block(
    task: CopyTask,
    lo: Sequence[int],
    hi: Sequence[int],
    cache: dict[tuple[int, ...], np.ndarray | None],
) -> np.ndarray | None:
    """The array region ``[lo, hi)`` assembled from decoded source chunks.

    ``None`` when every source chunk overlapping it is missing (the region is fill_value).
    """
    meta = task.meta
    out = np.full(
        [b - a for a, b in zip(lo, hi, strict=True)], fill_as_scalar(meta), meta.numpy_dtype
    )
    ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(lo, hi, meta.chunks, strict=True)]
    found = False
    for src in itertools.product(*ranges):
        if src not in cache:
            key = join_key(task.path, meta.chunk_key(src))
            data = task.source.read(key)
            if len(cache) >= _CACHE_CHUNKS:
                cache.pop(next(iter(cache)))
            cache[src] = (
                None if data is None else decode_source_chunk(meta, data, task.source.describe(key))
            )
        chunk = cache[src]
        if chunk is None:
            continue
        found = True
        dst, sl = [], []
        for a, b, s, c in zip(lo, hi, src, meta.chunks, strict=True):
            start, stop = max(a, s * c), min(b, (s + 1) * c)
            dst.append(slice(start - a, stop - a))
            sl.append(slice(start - s * c, stop - s * c))
        out[tuple(dst)] = chunk[tuple(sl)]
    return out if found else None


def _read_shard(
    task: CopyTask, count: int, picked: set[int] | None, where: str
) -> dict[int, bytes | None] | None:
    """The stored inner chunks of a shard that verification needs (None: no shard).

    Local shards are read by range: the index from the end, then only the picked chunks, so a
    sample of a 256 MiB shard does not read it whole. Other stores read the shard once.
    """
    dest = task.dest
    wanted = range(count) if picked is None else sorted(picked)
    if isinstance(dest, LocalStore):
        size = dest.size(task.shard_key)
        if size is None:
            return None
        tail = dest.read_ranges(task.shard_key, [(-index_nbytes(count), index_nbytes(count))])
        if tail is None:
            return None
        index = parse_index(tail[0], size, count, where)
        spans = [
            (i, int(index[i, 0]), int(index[i, 1]))
            for i in wanted
            if not (index[i, 0] == EMPTY and index[i, 1] == EMPTY)
        ]
        parts = dest.read_ranges(task.shard_key, [(o, n) for _, o, n in spans]) or []
        out: dict[int, bytes | None] = dict.fromkeys(wanted)
        out.update({i: part for (i, _, _), part in zip(spans, parts, strict=True)})
        return out
    shard = dest.read(task.shard_key)
    if shard is None:
        return None
    index = read_index(shard, count, where)
    return {i: inner_chunk(shard, index, i) for i in wanted}


def verify_shard(task: CopyTask, sample_chunks: int | None = None) -> ShardProblem | None:
    """Compare one output shard with the input, inner chunk by inner chunk.

    Memory stays at one shard's stored bytes plus a few decoded chunks, whatever the shard
    size. The index checksum is always checked. Fast-path chunks must equal the source chunk's
    stored bytes (and the first of each shard must also decode to the source's values);
    re-encoded chunks must decode to the values assembled from the source chunks. With
    ``sample_chunks``, only that many evenly spread inner chunks are compared (the ``sample``
    mode: a 256 MiB shard is not read and decoded whole again).
    """
    plan, meta = task.plan, task.meta
    region = shard_region(plan, task.shard)
    indices = inner_chunk_indices(plan, task.shard)
    # Inner chunks beyond the array (an edge shard's) hold nothing to compare.
    grid = plan.chunk_grid
    inside = [i for i, idx in enumerate(indices) if in_grid(idx, grid)]
    compared = inside
    picked: set[int] | None = None  # None: the whole shard is read
    if sample_chunks is not None and len(inside) > sample_chunks:
        step = (len(inside) - 1) / max(1, sample_chunks - 1)
        compared = [inside[round(k * step)] for k in range(sample_chunks)]
        picked = set(compared)
    where = task.dest.describe(task.shard_key)
    try:
        stored = _read_shard(task, len(indices), picked, where)
    except CorruptChunkError as exc:
        return ShardProblem(task.path, task.shard_key, str(exc))
    if stored is None:
        if _source_has_data(task, region):
            return ShardProblem(
                task.path, task.shard_key, "shard is missing but the input has data"
            )
        return None
    cache: dict[tuple[int, ...], np.ndarray | None] = {}
    decoded_one = False
    for i in compared:
        idx = indices[i]
        lo = [j * c for j, c in zip(idx, plan.chunks, strict=True)]
        hi = [min(a + c, n) for a, c, n in zip(lo, plan.chunks, plan.shape, strict=True)]
        data = stored[i]
        if plan.path_taken == PATH_COPY:
            source = task.source.read(join_key(task.path, meta.chunk_key(idx)))
            if source != data:
                return ShardProblem(
                    task.path,
                    task.shard_key,
                    f"inner chunk {list(idx)} differs from the source chunk's stored bytes",
                )
            if data is None or decoded_one:
                continue
            decoded_one = True
        expected = _expected_block(task, lo, hi, cache)
        if data is None:
            if expected is not None:
                return ShardProblem(
                    task.path, task.shard_key, f"inner chunk {list(idx)} is missing"
                )
            continue
        try:
            block = decode_inner(data, plan.codec, meta.numpy_dtype, plan.chunks)
        except Exception as exc:
            return ShardProblem(
                task.path,
                task.shard_key,
                f"inner chunk {list(idx)} cannot be decoded ({type(exc).__name__}: {exc})",
            )
        actual = block[tuple(slice(0, b - a) for a, b in zip(lo, hi, strict=True))]
        if expected is None:
            expected = np.full(actual.shape, fill_as_scalar(meta), meta.numpy_dtype)
        if not np.array_equal(expected, actual, equal_nan=expected.dtype.kind in "fc"):
            differ = int(np.count_nonzero(~_equal(expected, actual)))
            return ShardProblem(
                task.path,
                task.shard_key,
                f"inner chunk {list(idx)}: {differ} values differ from the input",
            )
    return None


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same: np.ndarray = a == b
    if a.dtype.kind in "fc":
        same |= np.isnan(a) & np.isnan(b)
    return same


def _source_has_data(task: CopyTask, region: tuple[slice, ...]) -> bool:
    meta = task.meta
    ranges = [
        range(r.start // c, (r.stop - 1) // c + 1) for r, c in zip(region, meta.chunks, strict=True)
    ]
    return any(
        task.source.exists(join_key(task.path, meta.chunk_key(src)))
        for src in itertools.product(*ranges)
    )


def verification_tasks(tasks: Sequence[CopyTask], mode: str) -> Iterator[CopyTask]:
    """The shard tasks to verify for ``mode`` (``sample`` or ``full``), one list per array."""
    if mode not in ("sample", "full"):
        raise ValueError(f"verification mode must be 'sample' or 'full', not {mode!r}")
    for template in tasks:
        positions: Iterator[tuple[int, ...]] | list[tuple[int, ...]]
        if mode == "full":
            positions = shard_indices(template.plan)
        else:
            positions = sample_shards(template.plan.shard_grid)
        for shard in positions:
            yield CopyTask(
                template.source, template.dest, template.path, template.meta, template.plan, shard
            )


def verify_data(
    templates: Sequence[CopyTask],
    mode: str,
    workers: int,
    on_checked: Callable[[CopyTask], None] | None = None,
) -> tuple[int, list[ShardProblem]]:
    """Verify the shards of every array; returns (shards checked, problems)."""
    if mode == "none":
        return 0, []
    problems: list[ShardProblem] = []
    checked = 0

    sample_chunks = SAMPLE_CHUNKS if mode == "sample" else None

    def run(task: CopyTask) -> ShardProblem | None:
        try:
            return verify_shard(task, sample_chunks)
        except ResaveError as exc:
            return ShardProblem(task.path, task.shard_key, str(exc))

    def finish(task: CopyTask, future: Future[ShardProblem | None]) -> None:
        nonlocal checked
        checked += 1
        if on_checked is not None:
            on_checked(task)
        problem = future.result()
        if problem is not None:
            problems.append(problem)

    # A bounded window of shards in flight: `full` on a TB array has very many.
    window = 2 * max(1, workers)
    pending: deque[tuple[CopyTask, Future[ShardProblem | None]]] = deque()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for task in verification_tasks(templates, mode):
            pending.append((task, pool.submit(run, task)))
            if len(pending) >= window:
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    return checked, problems


@dataclass
class OutputCheck:
    """What :func:`verify_output` found: shards checked and one line per problem."""

    checked_shards: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON documents as JSON (NaN fill values compare by their text)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _output_plan(dest: Store, node: ArrayNode) -> ArrayPlan | str:
    """The plan an output array was written with, read back from its ``zarr.json``.

    Returns a problem message instead when the document is missing, is not a sharded array
    as this tool writes it, or differs from what the input array migrates to.
    """
    key = join_key(node.path, "zarr.json")
    where = dest.describe(key)
    try:
        doc = read_json(dest, key)
    except ResaveError as exc:
        return f"array '{node.path}': {exc}"
    if doc is None:
        return f"array '{node.path}': {where} is missing"
    try:
        shards = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        sharding = doc["codecs"][0]
        if sharding["name"] != "sharding_indexed":
            raise ValueError(sharding["name"])
        config = sharding["configuration"]
        chunks = tuple(int(v) for v in config["chunk_shape"])
        inner = config["codecs"]
        codec = dict(inner[1]) if len(inner) > 1 else None
    except (KeyError, IndexError, TypeError, ValueError):
        return f"array '{node.path}': {where} is not a sharded Zarr v3 array"
    source_codec, not_copyable = v3_equivalent_codec(node.meta)
    try:
        plan = finish_plan(
            node,
            chunks=chunks,
            shards=shards,
            codec=codec,
            source_codec=source_codec,
            not_copyable=not_copyable,
        )
        expected = sharded_array_metadata(
            node.meta,
            chunks=chunks,
            shards=shards,
            codec=codec,
            dimension_names=node.dimension_names,
            attributes=dict(node.attrs),
        )
    except ResaveError as exc:
        return f"array '{node.path}': {where}: {exc}"
    if not _json_equal(doc, expected):
        keys = sorted(k for k in set(doc) | set(expected) if doc.get(k) != expected.get(k))
        return (
            f"array '{node.path}': {where} differs from the input's metadata "
            f"({', '.join(keys) or 'values'})"
        )
    return plan


def verify_output(
    input_spec: LocationSpec, output_spec: LocationSpec, mode: str = "full", workers: int = 1
) -> OutputCheck:
    """Verify an existing 0.5 output against its 0.4 input (read-only on both sides).

    Checks, in order: the output metadata validates as OME-Zarr 0.5; every group's and
    array's ``zarr.json`` equals what the input migrates to (the array plan — chunks, shards,
    codec — is taken from the output itself); then the shards (``mode`` ``sample`` or
    ``full``, see :func:`verify_data`). Raises only for an unreadable input.
    """
    from ngff_resave.validate import validate_hierarchy  # pydantic models: load lazily

    source = open_store(input_spec)
    dest = open_store(output_spec)
    inventory = discover(source)
    check = OutputCheck()
    for result in validate_hierarchy(dest):
        if not result.ok:
            check.problems.append(
                f"{result.path or '/'} ({result.kind}): not valid OME-Zarr 0.5: {result.message}"
            )
    for group in inventory.groups:
        key = join_key(group.path, "zarr.json")
        try:
            doc = read_json(dest, key)
        except ResaveError as exc:
            check.problems.append(f"group '{group.path or '/'}': {exc}")
            continue
        expected = migrate_attributes(group.attrs, group.kind)
        if not isinstance(doc, dict) or not _json_equal(doc.get("attributes"), expected):
            check.problems.append(
                f"group '{group.path or '/'}': {dest.describe(key)} is missing or its "
                "attributes differ from the input's"
            )
    templates: list[CopyTask] = []
    for node in inventory.arrays:
        plan = _output_plan(dest, node)
        if isinstance(plan, str):
            check.problems.append(plan)
            continue
        templates.append(CopyTask(source, dest, node.path, node.meta, plan, (0,) * len(plan.shape)))
    checked, problems = verify_data(templates, mode, workers)
    check.checked_shards = checked
    check.problems.extend(str(p) for p in problems)
    return check
