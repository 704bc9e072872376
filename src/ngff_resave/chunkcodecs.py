"""Decoding v2 chunks and encoding/decoding v3 inner chunks, with numcodecs.

numcodecs is what zarr-python itself uses for these codecs, and its Blosc/Zstd/GZip
release the GIL, so worker threads encode in parallel.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Literal

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from ngff_resave.errors import CorruptChunkError, UnsupportedCodecError
from ngff_resave.metadata.arrays import V2Array

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_lock = threading.Lock()


@lru_cache(maxsize=256)
def _codec_from_json(config_json: str) -> Codec:
    config = json.loads(config_json)
    try:
        with _lock:
            return numcodecs.get_codec(config)
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsupportedCodecError(
            f"codec {config.get('id')!r} is not available; install the numcodecs plugin that "
            "provides it, or convert the array with a tool that reads it"
        ) from exc


_Cache = dict[int, tuple[Mapping[str, Any], Codec]]
_v2_codecs: _Cache = {}
_v3_codecs: _Cache = {}


def _by_identity(
    cache: _Cache, config: Mapping[str, Any], build: Callable[[Mapping[str, Any]], Codec]
) -> Codec:
    """``build(config)``, cached by the identity of the (never mutated) mapping.

    A run asks for the same few mappings once per chunk, and JSON-encoding them each time
    showed up in profiles of arrays with small chunks.
    """
    hit = cache.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    codec = build(config)
    if len(cache) < 1024:
        cache[id(config)] = (config, codec)  # keeps config alive: its id stays unique
    return codec


def v2_codec(config: Mapping[str, Any]) -> Codec:
    """The numcodecs codec of a v2 ``compressor``/``filters`` entry (cached)."""
    return _by_identity(_v2_codecs, config, _v2_from_config)


def _v2_from_config(config: Mapping[str, Any]) -> Codec:
    return _codec_from_json(json.dumps(dict(config), sort_keys=True))


def _as_uint8(raw: Any) -> np.ndarray:
    """A codec's output (bytes-like or ndarray) as a flat uint8 array, without copying."""
    if isinstance(raw, np.ndarray):
        return raw.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)


def check_source_codecs(meta: V2Array, where: str) -> None:
    """Raise :class:`UnsupportedCodecError` naming ``where`` if a codec cannot be loaded."""
    for config in ([meta.compressor] if meta.compressor else []) + list(meta.filters):
        try:
            v2_codec(config)
        except UnsupportedCodecError as exc:
            raise UnsupportedCodecError(f"{where}: {exc}") from exc


def v3_codec(codec: Mapping[str, Any]) -> Codec:
    """The numcodecs codec that encodes like the v3 compression codec ``codec`` (cached)."""
    return _by_identity(_v3_codecs, codec, _v3_codec)


def _v3_codec(codec: Mapping[str, Any]) -> Codec:
    name = codec["name"]
    config = dict(codec.get("configuration") or {})
    if name == "blosc":
        v2 = {
            "id": "blosc",
            "cname": config.get("cname", "zstd"),
            "clevel": int(config.get("clevel", 5)),
            "shuffle": _SHUFFLE[config.get("shuffle", "shuffle")],
            "blocksize": int(config.get("blocksize", 0)),
        }
    elif name == "zstd":
        v2 = {"id": "zstd", "level": int(config.get("level", 0))}
        if config.get("checksum"):
            v2["checksum"] = True
    elif name == "gzip":
        v2 = {"id": "gzip", "level": int(config.get("level", 5))}
    else:
        raise UnsupportedCodecError(f"output codec {name!r} is not supported")
    return v2_codec(v2)


def chunk_nbytes(meta: V2Array) -> int:
    """Uncompressed size of one (full) chunk of the source array."""
    n = meta.itemsize
    for c in meta.chunks:
        n *= c
    return n


Where = str | Callable[[], str]


def _where(where: Where) -> str:
    return where if isinstance(where, str) else where()


def _undecodable(where: Where, exc: Exception) -> CorruptChunkError:
    return CorruptChunkError(
        f"{_where(where)}: chunk cannot be decoded ({exc}); the stored bytes are corrupt or "
        "truncated — restore the chunk from a backup"
    )


def decode_source_chunk(meta: V2Array, data: bytes, where: Where) -> np.ndarray:
    """Decode one stored v2 chunk to a C-ordered array of the chunk shape.

    Corrupt or truncated bytes raise :class:`CorruptChunkError` naming ``where`` (the chunk
    is never silently replaced with fill values). The cheap header checks of
    :func:`check_stored_chunk` run first: Blosc does not know the length of the buffer it
    decodes, so a truncated Blosc chunk would otherwise decode to whatever follows it.
    """
    check_stored_chunk(meta, data, where)
    try:
        raw: Any = data
        if meta.compressor is not None:
            raw = v2_codec(meta.compressor).decode(raw)
        for config in reversed(meta.filters):
            raw = v2_codec(config).decode(raw)
        buf = _as_uint8(raw)
    except UnsupportedCodecError:
        raise
    except Exception as exc:  # numcodecs raises RuntimeError/ValueError on corrupt input
        raise _undecodable(where, exc) from exc
    expected = chunk_nbytes(meta)
    if buf.nbytes != expected:
        raise CorruptChunkError(
            f"{_where(where)}: chunk decodes to {buf.nbytes} bytes, expected {expected}; the "
            "stored bytes are corrupt or truncated — restore the chunk from a backup"
        )
    order: Literal["C", "F"] = "F" if meta.order == "F" else "C"
    array = buf.view(meta.numpy_dtype).reshape(meta.chunks, order=order)
    return np.ascontiguousarray(array)


def check_stored_chunk(meta: V2Array, data: bytes, where: Where) -> None:
    """Cheap integrity check of a chunk copied without decoding (fast path).

    Blosc frames record their compressed and uncompressed sizes in the header, gzip its
    uncompressed size in the trailer, and raw chunks have a fixed size: a truncated or
    mangled chunk is caught here with its key instead of being copied as is.
    """
    check_stored_edges(meta, len(data), data[:16], data[-4:], where)


def check_stored_edges(meta: V2Array, size: int, head: bytes, tail: bytes, where: Where) -> None:
    """:func:`check_stored_chunk` from a chunk's size, first 16 and last 4 bytes only.

    That is all the check reads, so a chunk copied file to file by the kernel is checked
    without bringing its bytes into Python.
    """
    expected = chunk_nbytes(meta)
    comp = meta.compressor
    if comp is None:
        if size != expected:
            raise CorruptChunkError(
                f"{_where(where)}: uncompressed chunk is {size} bytes, expected {expected}"
            )
        return
    cid = comp["id"]
    if cid == "blosc":
        if size < 16:
            raise CorruptChunkError(f"{_where(where)}: blosc chunk is truncated ({size} bytes)")
        nbytes = int.from_bytes(head[4:8], "little")
        cbytes = int.from_bytes(head[12:16], "little")
        if cbytes != size or nbytes != expected:
            raise CorruptChunkError(
                f"{_where(where)}: blosc chunk header says {cbytes} bytes holding {nbytes}, but "
                f"it is {size} bytes and should hold {expected}; corrupt or truncated"
            )
    elif cid == "gzip":
        if size < 18 or head[:2] != b"\x1f\x8b":
            raise CorruptChunkError(f"{_where(where)}: not a gzip stream (corrupt chunk)")
        if int.from_bytes(tail, "little") != expected % 2**32:
            raise CorruptChunkError(f"{_where(where)}: gzip chunk size mismatch (truncated?)")
    elif cid == "zstd" and head[:4] != b"\x28\xb5\x2f\xfd":
        raise CorruptChunkError(f"{_where(where)}: not a zstd frame (corrupt chunk)")


def encode_inner(array: np.ndarray, codec: Mapping[str, Any] | None) -> bytes:
    """Encode an inner chunk: ``bytes`` codec (the array's byte order) then ``codec``."""
    contiguous = np.ascontiguousarray(array)
    if codec is None:
        return contiguous.tobytes()
    return bytes(v3_codec(codec).encode(contiguous))


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def codec_pool() -> ThreadPoolExecutor:
    """One thread per core, shared by every task of this process, for encoding chunks.

    A shard is one task, and a run may have fewer shards in flight than cores (a 256 MiB
    shard of a 2 GB array): encoding its inner chunks on this pool keeps every core busy.
    numcodecs releases the GIL while it compresses. Recreated after a fork (Dask workers).
    """
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        _pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ngff-resave-codec")
        _pool_pid = os.getpid()
    return _pool


def encode_window() -> int:
    """Jobs one task keeps in flight on the codec pool: two per pool thread."""
    return 2 * (codec_pool()._max_workers or 1)


#: Inner chunks smaller than this are encoded several to a pool job, up to about this many
#: bytes: a job costs a hand-over between threads (~20-50 us), which chunks of a few KiB
#: (the low levels of a pyramid) would otherwise pay one each.
GROUP_BYTES = 1 << 20


def group_size(inner_nbytes: int) -> int:
    """Inner chunks per pool job for chunks of ``inner_nbytes`` (see :data:`GROUP_BYTES`)."""
    return max(1, GROUP_BYTES // max(1, inner_nbytes))


#: An inner chunk to encode: the array, or a function that makes it on the pool thread (so
#: that decoding runs in parallel too), or None (not stored).
Block = np.ndarray | Callable[[], np.ndarray] | None


def _encode_group(
    blocks: list[Block], codec: Mapping[str, Any] | None
) -> tuple[list[bytes | None], float]:
    """Encode (and make) a group of inner chunks; with the CPU seconds this thread spent."""
    cpu0 = time.thread_time()
    out: list[bytes | None] = []
    for block in blocks:
        if block is None:
            out.append(None)
        else:
            out.append(encode_inner(block() if callable(block) else block, codec))
    return out, time.thread_time() - cpu0


def encode_stream(
    blocks: Iterator[Block],
    codec: Mapping[str, Any] | None,
    cpu: list[float] | None = None,
    group: int = 1,
) -> Iterator[bytes | None]:
    """Encode inner chunks in parallel on :func:`codec_pool`, yielding them in order.

    Blocks go to the pool ``group`` at a time (one job). At most :func:`encode_window` jobs
    are pulled ahead of the consumer, so memory stays bounded by the chunks in flight while
    the caller writes the ones already encoded. ``cpu[0]``, if given, is increased by the
    pool threads' CPU seconds (the caller's own thread time does not see them).
    """
    pool = codec_pool()
    window = encode_window()
    pending: deque[Future[tuple[list[bytes | None], float]] | int] = deque()

    def submit(batch: list[Block]) -> None:
        if all(b is None for b in batch):
            pending.append(len(batch))  # nothing to encode: that many absent chunks
        else:
            pending.append(pool.submit(_encode_group, batch, codec))

    def take() -> list[bytes | None]:
        head = pending.popleft()
        if isinstance(head, int):
            return [None] * head
        data, seconds = head.result()
        if cpu is not None:
            cpu[0] += seconds
        return data

    batch: list[Block] = []
    for block in blocks:
        batch.append(block)
        if len(batch) >= group:
            submit(batch)
            batch = []
            while len(pending) >= window:
                yield from take()
    if batch:
        submit(batch)
    while pending:
        yield from take()


_scratch = threading.local()


def decode_source_reusing(meta: V2Array, data: bytes, where: Where) -> np.ndarray:
    """:func:`decode_source_chunk`, Blosc into a buffer that this thread reuses.

    The result is valid until this thread's next call, and writable. Decoding into a fresh
    buffer each time costs page faults that, measured on 1 MiB chunks, took longer than the
    decoding itself. Only Blosc chunks (C order, no filters) take this way: their header,
    checked first, says how many bytes they decode to. Others are decoded as usual.
    """
    comp = meta.compressor
    if comp is None or comp["id"] != "blosc" or meta.filters or meta.order == "F":
        return decode_source_chunk(meta, data, where)
    check_stored_chunk(meta, data, where)  # the header promises exactly one chunk's bytes
    nbytes = chunk_nbytes(meta)
    buffer: np.ndarray | None = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _scratch.buffer = np.empty(nbytes, dtype=np.uint8)
    out = buffer[:nbytes]
    try:
        v2_codec(comp).decode(data, out=out)
    except Exception as exc:  # numcodecs raises RuntimeError on corrupt input
        raise _undecodable(where, exc) from exc
    return out.view(meta.numpy_dtype).reshape(meta.chunks)


def decode_inner(
    data: bytes, codec: Mapping[str, Any] | None, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> np.ndarray:
    """Decode an inner chunk written by :func:`encode_inner` (or copied from the source)."""
    raw: Any = data if codec is None else v3_codec(codec).decode(data)
    buf = _as_uint8(raw)
    return buf.view(dtype).reshape(shape)
