"""The only code that moves pixels: copy one output shard from the source chunks.

A :class:`CopyTask` is a small frozen, picklable value (stores are configuration only), so
the same task runs in a worker thread or on a Dask worker. One task writes one whole shard,
in one atomic write; no two tasks ever touch the same shard.

Two paths (chosen by the plan, see :mod:`ngff_resave.planning`):

* ``copy-chunks`` (fast path): the inner chunk is the source chunk and the source codec has
  an exact v3 equivalent, so the stored source bytes are concatenated into the shard as they
  are, with the shard index appended. No decode, no encode.
* ``reencode``: source chunks are decoded, the inner chunks assembled and encoded with the
  output codec. Decoded source chunks are dropped as soon as no remaining inner chunk of the
  shard needs them, so memory stays near one shard.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np

from ngff_resave.chunkcodecs import (
    Block,
    check_stored_chunk,
    check_stored_edges,
    chunk_nbytes,
    decode_source_chunk,
    decode_source_reusing,
    encode_stream,
    encode_window,
    group_size,
)
from ngff_resave.locations import FilePart, LocalStore, Store, StreamingWriteStore, join_key
from ngff_resave.metadata.arrays import V2Array, fill_as_scalar, v3_chunk_key
from ngff_resave.planning import PATH_COPY, ArrayPlan
from ngff_resave.shards import build_shard, shard_pieces

#: Source chunks fetched per ``read_many`` while streaming a shard (to an object store, the
#: next batch is fetched while the parts of the previous one upload; re-encoding, they are
#: decoded one by one as the inner chunks need them).
STREAM_BATCH = 32
#: Bytes an object store's multipart upload buffers per shard (parts in flight).
UPLOAD_BUFFER = 32 * 1024 * 1024


@dataclass(frozen=True)
class CopyTask:
    """Copy the shard at grid position ``shard`` of one array."""

    source: Store
    dest: Store
    path: str  # the array's path, the same in input and output
    meta: V2Array
    plan: ArrayPlan
    shard: tuple[int, ...]
    skip_existing: bool = False

    @property
    def shard_key(self) -> str:
        return join_key(self.path, v3_chunk_key(self.shard))


@dataclass(frozen=True)
class ShardOutcome:
    """What one task did (summed into the run report)."""

    path: str
    shard_key: str
    bytes_read: int
    bytes_written: int
    raw_bytes: int  # uncompressed bytes of the array region the shard covers
    written: bool
    skipped_existing: bool
    started: float
    seconds: float
    cpu_seconds: float


def task_memory(plan: ArrayPlan, meta: V2Array) -> int:
    """Upper bound of the bytes one copy task of this array holds at once (``--max-memory``).

    * fast path: one batch of stored source chunks (at most their uncompressed size) and the
      upload buffer (local to local, the kernel copies the files: less);
    * re-encode: one batch of stored source chunks, the inner chunks in the encoder's window
      (decoded and encoded, see :func:`~ngff_resave.chunkcodecs.encode_stream`) and, when the
      inner chunk is not the source chunk, the decoded source chunks still needed by later
      inner chunks (at most one shard);
    * never more than the whole shard twice (stored source + encoded result), the bound when
      the destination cannot stream.
    """
    shard = math.prod(plan.shards) * meta.itemsize
    batch = STREAM_BATCH * chunk_nbytes(meta)
    if plan.path_taken == PATH_COPY:
        return min(2 * shard, batch + UPLOAD_BUFFER)
    inner = math.prod(plan.chunks) * meta.itemsize
    held = 0 if tuple(plan.chunks) == tuple(meta.chunks) else shard
    in_flight = encode_window() * group_size(inner) * inner
    return min(2 * shard, batch + 2 * in_flight + held)


def inner_chunk_indices(plan: ArrayPlan, shard: Sequence[int]) -> list[tuple[int, ...]]:
    """Grid indices of the shard's inner chunks, in the C order of the shard index."""
    cps = plan.chunks_per_shard
    return list(
        itertools.product(*(range(s * n, s * n + n) for s, n in zip(shard, cps, strict=True)))
    )


def in_grid(index: Sequence[int], grid: Sequence[int]) -> bool:
    """Whether the chunk at grid ``index`` exists in a grid of ``grid`` chunks per axis
    (a shard's inner chunks may lie beyond the array's last chunk)."""
    return all(i < g for i, g in zip(index, grid, strict=True))


def shard_region(plan: ArrayPlan, shard: Sequence[int]) -> tuple[slice, ...]:
    """The part of the array a shard covers (clipped to the array)."""
    return tuple(
        slice(i * s, min((i + 1) * s, n))
        for i, s, n in zip(shard, plan.shards, plan.shape, strict=True)
    )


def shard_indices(plan: ArrayPlan) -> Iterator[tuple[int, ...]]:
    """Every shard grid position of an array, lazily (a TB array has very many)."""
    return itertools.product(*(range(n) for n in plan.shard_grid))


def _source_key(task: CopyTask, index: Sequence[int]) -> str:
    return join_key(task.path, task.meta.chunk_key(index))


def _describer(task: CopyTask, index: Sequence[int]) -> Callable[[], str]:
    """Where a source chunk is, for an error message: only worked out if one is raised."""
    return lambda: task.source.describe(_source_key(task, index))


def copy_shard(task: CopyTask) -> ShardOutcome:
    """Build and write one output shard; see module docstring for the two paths."""
    started = time.time()
    cpu0 = time.thread_time()
    pool_cpu = [0.0]  # encoding on the shared codec pool, not seen by thread_time
    region = shard_region(task.plan, task.shard)
    raw_bytes = math.prod(r.stop - r.start for r in region) * task.meta.itemsize
    if task.skip_existing and task.dest.exists(task.shard_key):
        return ShardOutcome(
            task.path,
            task.shard_key,
            0,
            0,
            raw_bytes,
            False,
            True,
            started,
            time.time() - started,
            time.thread_time() - cpu0,
        )
    if task.plan.path_taken == PATH_COPY and isinstance(task.dest, StreamingWriteStore):
        bytes_read, written = _stream_chunks(task, task.dest)
    else:
        counts = [0]
        chunks: Iterable[bytes | None]
        if task.plan.path_taken == PATH_COPY:
            chunks, counts[0] = _copy_chunks(task)
        else:
            chunks = _reencode(task, counts, pool_cpu)
        written = _write_shard(task, chunks)
        bytes_read = counts[0]  # the re-encode counts its reads while it is written
    return ShardOutcome(
        task.path,
        task.shard_key,
        bytes_read,
        written,
        raw_bytes,
        written > 0,
        False,
        started,
        time.time() - started,
        time.thread_time() - cpu0 + pool_cpu[0],
    )


def _write_shard(task: CopyTask, chunks: Iterable[bytes | None]) -> int:
    """Write the shard of these encoded inner chunks; returns its size (0: not written).

    To a store that takes parts, each inner chunk is written as soon as it arrives: memory
    stays at the chunks in flight, not the shard.
    """
    if isinstance(task.dest, StreamingWriteStore):
        count = len(inner_chunk_indices(task.plan, task.shard))
        return task.dest.write_parts(task.shard_key, shard_pieces(chunks, count))
    data = build_shard(list(chunks))
    if data is None:
        return 0
    task.dest.write(task.shard_key, data)
    return len(data)


def _stream_chunks(task: CopyTask, dest: StreamingWriteStore) -> tuple[int, int]:
    """Fast path: write the shard piece by piece while its chunks arrive.

    Returns (bytes read, bytes written). The shard bytes equal :func:`_copy_chunks` +
    ``build_shard``; only the timing and the memory differ. To an object store, the upload of
    the first parts overlaps the fetching of the next batch. Local to local, each source chunk
    file is copied into the shard by the kernel (``copy_file_range``) after a check of its
    header: the pixels never pass through Python, as with ``cp``.
    """
    grid = task.meta.chunk_grid
    indices = inner_chunk_indices(task.plan, task.shard)
    bytes_read = 0
    source = task.source

    def local_chunks(store: LocalStore) -> Iterator[FilePart | None]:
        nonlocal bytes_read
        for idx in indices:
            if not in_grid(idx, grid):
                yield None
                continue
            key = _source_key(task, idx)
            edges = store.file_edges(key)
            if edges is None:
                yield None
                continue
            part, head, tail = edges
            check_stored_edges(task.meta, part.size, head, tail, _describer(task, idx))
            bytes_read += part.size
            yield part

    def fetched_chunks() -> Iterator[bytes | None]:
        nonlocal bytes_read
        for start in range(0, len(indices), STREAM_BATCH):
            batch = indices[start : start + STREAM_BATCH]
            inside = [in_grid(idx, grid) for idx in batch]
            keys = [_source_key(task, idx) for idx, ok in zip(batch, inside, strict=True) if ok]
            fetched = iter(source.read_many(keys))
            for idx, ok in zip(batch, inside, strict=True):
                data = next(fetched) if ok else None
                if data is not None:
                    check_stored_chunk(task.meta, data, _describer(task, idx))
                    bytes_read += len(data)
                yield data

    if isinstance(source, LocalStore) and isinstance(dest, LocalStore):
        written = dest.write_parts(task.shard_key, shard_pieces(local_chunks(source), len(indices)))
    else:
        # Fetched chunks are bytes, so every piece is bytes (no FilePart to an object store).
        written = dest.write_parts(task.shard_key, shard_pieces(fetched_chunks(), len(indices)))
    return bytes_read, written


def _copy_chunks(task: CopyTask) -> tuple[list[bytes | None], int]:
    grid = task.meta.chunk_grid
    indices = inner_chunk_indices(task.plan, task.shard)
    inside = [in_grid(idx, grid) for idx in indices]
    keys = [_source_key(task, idx) for idx, ok in zip(indices, inside, strict=True) if ok]
    fetched = iter(task.source.read_many(keys))
    chunks: list[bytes | None] = []
    bytes_read = 0
    for idx, ok in zip(indices, inside, strict=True):
        data = next(fetched) if ok else None
        if data is not None:
            check_stored_chunk(task.meta, data, _describer(task, idx))
            bytes_read += len(data)
        chunks.append(data)
    return chunks, bytes_read


def _overlap(
    lo: Sequence[int], hi: Sequence[int], src: Sequence[int], size: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of the inner chunk (starting at ``lo``) and of the source chunk ``src``."""
    dst_slices = []
    src_slices = []
    for a, b, s, c in zip(lo, hi, src, size, strict=True):
        start = max(a, s * c)
        stop = min(b, (s + 1) * c)
        dst_slices.append(slice(start - a, stop - a))
        src_slices.append(slice(start - s * c, stop - s * c))
    return tuple(dst_slices), tuple(src_slices)


def _fill_beyond(block: np.ndarray, extent: Sequence[int], fill: object) -> None:
    """Set ``fill`` everywhere in ``block`` outside the box ``[0, extent)`` (an edge chunk).

    The complement of the box is cut into one slab per axis, so only the padding is written.
    """
    for d, (e, n) in enumerate(zip(extent, block.shape, strict=True)):
        if e < n:
            slab = (*(slice(0, x) for x in extent[:d]), slice(e, None))
            block[slab] = fill


def _reencode(task: CopyTask, counts: list[int], cpu: list[float]) -> Iterator[bytes | None]:
    """The shard's encoded inner chunks in index order (``None``: not stored), lazily.

    Source chunks are fetched in batches of :data:`STREAM_BATCH` as the inner chunks come to
    need them, decoded once, and dropped as soon as no later inner chunk of the shard needs
    them. When the inner chunk is the source chunk (same shape), it is decoded on the codec
    pool, in the thread that encodes it, into that thread's reused buffer: no copy, and at
    the array's edge only the padding is filled. ``counts[0]`` is increased by the stored
    bytes read, ``cpu[0]`` by the CPU seconds of decoding and encoding on the codec pool.
    """
    meta, plan = task.meta, task.plan
    out_grid = plan.chunk_grid
    indices = inner_chunk_indices(plan, task.shard)
    needs: list[list[tuple[int, ...]] | None] = []
    refcount: dict[tuple[int, ...], int] = {}
    for idx in indices:
        if not in_grid(idx, out_grid):
            needs.append(None)
            continue
        lo = [i * c for i, c in zip(idx, plan.chunks, strict=True)]
        hi = [min(a + c, n) for a, c, n in zip(lo, plan.chunks, plan.shape, strict=True)]
        ranges = [
            range(a // s, (b - 1) // s + 1) for a, b, s in zip(lo, hi, meta.chunks, strict=True)
        ]
        overlapping = list(itertools.product(*ranges))
        needs.append(overlapping)
        for src in overlapping:
            refcount[src] = refcount.get(src, 0) + 1
    order = list(refcount)  # first-needed order
    stored: dict[tuple[int, ...], bytes | None] = {}
    fetched = 0

    def fetch_until(wanted: list[tuple[int, ...]]) -> None:
        nonlocal fetched
        while any(src not in stored for src in wanted):
            batch = order[fetched : fetched + STREAM_BATCH]
            fetched += len(batch)
            keys = [_source_key(task, s) for s in batch]
            for src, data in zip(batch, task.source.read_many(keys), strict=True):
                stored[src] = data
                counts[0] += 0 if data is None else len(data)

    aligned = tuple(plan.chunks) == tuple(meta.chunks)

    def blocks() -> Iterator[Block]:
        """The shard's inner chunks, assembled from decoded source chunks (None: not stored)."""
        decoded: dict[tuple[int, ...], np.ndarray] = {}
        fill = fill_as_scalar(meta)
        for idx, needed in zip(indices, needs, strict=True):
            if needed is None:
                yield None
                continue
            fetch_until(needed)
            lo = [i * c for i, c in zip(idx, plan.chunks, strict=True)]
            hi = [min(a + c, n) for a, c, n in zip(lo, plan.chunks, plan.shape, strict=True)]
            present = [src for src in needed if stored[src] is not None]
            inside = all(b - a == c for a, b, c in zip(lo, hi, plan.chunks, strict=True))
            block: Block = None
            if present and aligned:
                # Inner chunk = source chunk: decoded (and its padding filled) on the pool.
                src = needed[0]
                extent = None if inside else [b - a for a, b in zip(lo, hi, strict=True)]
                block = partial(
                    _aligned_block,
                    meta,
                    cast(bytes, stored[src]),
                    _describer(task, src),
                    extent,
                    fill,
                )
            elif present:
                covered = len(present) == len(needed)  # the sources tile the in-array part
                block = (
                    np.empty(plan.chunks, dtype=meta.numpy_dtype)
                    if covered
                    else np.full(plan.chunks, fill, dtype=meta.numpy_dtype)
                )
                for src in present:
                    if src not in decoded:
                        decoded[src] = decode_source_chunk(
                            meta, cast(bytes, stored[src]), _describer(task, src)
                        )
                    dst_sl, src_sl = _overlap(lo, hi, src, meta.chunks)
                    block[dst_sl] = decoded[src][src_sl]
                if covered and not inside:
                    _fill_beyond(block, [b - a for a, b in zip(lo, hi, strict=True)], fill)
            for src in needed:
                refcount[src] -= 1
                if refcount[src] == 0:
                    # Nothing else in this shard needs it: free the memory now.
                    decoded.pop(src, None)
                    stored[src] = None
            yield block

    group = group_size(math.prod(plan.chunks) * meta.itemsize)
    return encode_stream(blocks(), plan.codec, cpu, group)


def _aligned_block(
    meta: V2Array,
    data: bytes,
    where: Callable[[], str],
    extent: Sequence[int] | None,
    fill: object,
) -> np.ndarray:
    """The inner chunk that is the source chunk ``data``; ``extent``: its in-array part
    when it overhangs the array (the rest is set to ``fill``)."""
    block = decode_source_reusing(meta, data, where)
    if extent is not None:
        if not block.flags.writeable:
            block = block.copy()
        _fill_beyond(block, extent, fill)
    return block
