"""The re-encode path of :mod:`ngff_resave.copying`: shard bytes, fill, streaming, memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
import zarr

from ngff_resave.chunkcodecs import Block, codec_pool, decode_inner, encode_stream
from ngff_resave.copying import (
    CopyTask,
    _reencode,
    copy_shard,
    inner_chunk_indices,
    shard_indices,
    task_memory,
)
from ngff_resave.discover import ArrayNode
from ngff_resave.locations import LocalStore
from ngff_resave.metadata.arrays import parse_v2_array, sharded_array_metadata
from ngff_resave.planning import PATH_REENCODE, PlanOptions, parse_codec, plan_array
from ngff_resave.shards import build_shard, inner_chunk, read_index
from tests.support import builders

BLOSC_ZSTD = parse_codec("blosc-zstd:3")


def _setup(
    tmp_path: Path,
    data: np.ndarray,
    *,
    source_chunks: tuple[int, ...],
    chunks: tuple[int, ...] | None = None,
    shards: tuple[int, ...] | None = None,
    fill_value: Any = 0,
    drop: tuple[str, ...] = (),
) -> tuple[list[CopyTask], LocalStore, np.ndarray]:
    """A v2 array on disk (some chunks removed), its re-encode plan and copy tasks."""
    src_dir = tmp_path / "in"
    builders.write_v2_array(src_dir / "a", data, chunks=source_chunks, fill_value=fill_value)
    for key in drop:
        (src_dir / "a" / key).unlink()
    expected = np.asarray(zarr.open_array(str(src_dir / "a"), mode="r", zarr_format=2)[...])
    meta = parse_v2_array(json.loads((src_dir / "a" / ".zarray").read_text()), "a")
    options = PlanOptions(chunks=chunks, shards=shards, codec=BLOSC_ZSTD, codec_given=True)
    plan = plan_array(ArrayNode("a", meta, {}), options)
    assert plan.path_taken == PATH_REENCODE
    dest = LocalStore(str(tmp_path / "out"))
    doc = sharded_array_metadata(
        meta, chunks=plan.chunks, shards=plan.shards, codec=plan.codec, dimension_names=None
    )
    dest.write("a/zarr.json", json.dumps(doc).encode())
    source = LocalStore(str(src_dir))
    tasks = [CopyTask(source, dest, "a", meta, plan, s) for s in shard_indices(plan)]
    return tasks, dest, expected


def _read_back(out: Path) -> tuple[np.ndarray, np.ndarray]:
    by_zarr = np.asarray(zarr.open_array(str(out / "a"), mode="r")[...])
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out / "a")}}
    by_tensorstore = ts.open(spec, read=True).result().read().result()
    return by_zarr, by_tensorstore


CASES = [
    # (source chunks, output chunks, output shards, removed source chunks)
    pytest.param((4, 8, 8), None, (4, 16, 16), (), id="aligned"),
    pytest.param((4, 8, 8), None, (4, 16, 16), ("0/1/0", "1/0/2"), id="aligned-missing"),
    pytest.param((3, 7, 5), (2, 6, 6), (4, 12, 12), (), id="unaligned"),
    pytest.param((3, 7, 5), (2, 6, 6), (4, 12, 12), ("0/0/0", "1/2/3"), id="unaligned-missing"),
]


@pytest.mark.parametrize(("source_chunks", "chunks", "shards", "drop"), CASES)
def test_reencode_reads_back_equal(
    tmp_path: Path,
    source_chunks: tuple[int, ...],
    chunks: tuple[int, ...] | None,
    shards: tuple[int, ...] | None,
    drop: tuple[str, ...],
) -> None:
    data = builders.random_pixels((6, 20, 21), ">u2", seed=3)  # big-endian, edges everywhere
    tasks, _, expected = _setup(
        tmp_path, data, source_chunks=source_chunks, chunks=chunks, shards=shards, drop=drop
    )
    outcomes = [copy_shard(t) for t in tasks]
    assert sum(o.bytes_written for o in outcomes) > 0
    for got in _read_back(tmp_path / "out"):
        np.testing.assert_array_equal(got, expected)


def test_edge_chunk_padding_holds_the_fill_value(tmp_path: Path) -> None:
    """Beyond the array's edge an inner chunk holds fill_value, whatever the source stored."""
    data = np.full((10, 13), 7, dtype="<u2")
    tasks, _, _ = _setup(tmp_path, data, source_chunks=(4, 4), shards=(8, 8), fill_value=5)
    # The v2 writer stored the source edge chunks with its own padding; overwrite it with 9s.
    src = tmp_path / "in" / "a"
    meta = tasks[0].meta
    edges = [(2, j) for j in range(4)] + [(i, 3) for i in range(2)]
    for i, j in edges:
        block = np.full((4, 4), 9, dtype="<u2")
        block[: 10 - 4 * i, : 13 - 4 * j] = 7
        codec = builders.make_compressor("blosc-lz4")
        assert codec is not None
        (src / f"{i}/{j}").write_bytes(codec.encode(block))
    for task in tasks:
        copy_shard(task)
    plan = tasks[0].plan
    shard = (tmp_path / "out" / "a" / "c" / "1" / "1").read_bytes()
    index = read_index(shard, 4, "shard 1/1")
    corner = inner_chunk(shard, index, 1)  # inner chunk (2, 3): rows 8..11, cols 12..15
    assert corner is not None
    block = decode_inner(corner, plan.codec, meta.numpy_dtype, plan.chunks)
    np.testing.assert_array_equal(block[:2, :1], 7)
    np.testing.assert_array_equal(block[2:, :], 5)
    np.testing.assert_array_equal(block[:, 1:], 5)


def test_streamed_shard_equals_the_built_shard(tmp_path: Path) -> None:
    """Written inner chunk by inner chunk, the shard is the bytes build_shard would make."""
    data = builders.random_pixels((6, 20, 21), "<u2", seed=5)
    tasks, _, _ = _setup(
        tmp_path,
        data,
        source_chunks=(3, 7, 5),
        chunks=(2, 6, 6),
        shards=(4, 12, 12),
        drop=("0/0/0",),
    )
    for task in tasks:
        copy_shard(task)
        built = build_shard(list(_reencode(task, [0], [0.0])))
        written = (tmp_path / "out" / task.shard_key).read_bytes()
        assert written == built


def test_encode_stream_pulls_a_bounded_window_ahead() -> None:
    """Memory is the chunks in flight: the encoder never runs more than its window ahead."""
    window = 2 * (codec_pool()._max_workers or 1)
    pulled = 0

    def blocks() -> Iterator[np.ndarray | None]:
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield None if i % 7 == 0 else np.full((64, 64), i, dtype="<u2")

    leads: list[int] = []
    out: list[bytes | None] = []
    for encoded in encode_stream(blocks(), BLOSC_ZSTD):
        leads.append(pulled - len(out))
        out.append(encoded)
    assert len(out) == 50 and max(leads) <= window
    assert [o is None for o in out] == [i % 7 == 0 for i in range(50)]
    second = decode_inner(out[1] or b"", BLOSC_ZSTD, np.dtype("<u2"), (64, 64))
    np.testing.assert_array_equal(second, 1)


def test_inner_chunk_indices_are_in_shard_index_order() -> None:
    """C order over the shard's inner-chunk grid: the order of the shard index entries."""
    data_plan = plan_array(
        ArrayNode(
            "a",
            parse_v2_array(
                {
                    "zarr_format": 2,
                    "shape": [8, 8],
                    "chunks": [2, 2],
                    "dtype": "<u1",
                    "compressor": None,
                    "fill_value": 0,
                    "order": "C",
                    "filters": None,
                },
                "a",
            ),
            {},
        ),
        PlanOptions(shards=(4, 4)),
    )
    assert inner_chunk_indices(data_plan, (1, 0)) == [(2, 0), (2, 1), (3, 0), (3, 1)]


def _plan(
    chunks: tuple[int, ...], shards: tuple[int, ...], output_chunks: tuple[int, ...] | None = None
) -> tuple[Any, Any]:
    meta = parse_v2_array(
        {
            "zarr_format": 2,
            "shape": [64, 4096, 4096],
            "chunks": list(chunks),
            "dtype": "<u2",
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
            "fill_value": 0,
            "order": "C",
            "filters": None,
        },
        "a",
    )
    codec = BLOSC_ZSTD if output_chunks is None else None
    options = PlanOptions(chunks=output_chunks, shards=shards, codec=codec, codec_given=True)
    return plan_array(ArrayNode("a", meta, {}), options), meta


def test_task_memory_is_far_below_the_shard_when_it_streams() -> None:
    mib = 1024 * 1024
    window = 2 * (codec_pool()._max_workers or 1)
    plan, meta = _plan((1, 1024, 1024), (16, 4096, 4096))  # 512 MiB shards of 2 MiB chunks
    assert task_memory(plan, meta) == 32 * 2 * mib + 2 * window * 2 * mib
    # Inner chunks that are not the source chunks: decoded source chunks may wait (a shard).
    plan, meta = _plan((1, 1024, 1024), (16, 4096, 4096), (4, 512, 512))
    assert task_memory(plan, meta) == 32 * 2 * mib + 2 * window * 2 * mib + 512 * mib
    plan, meta = _plan((1, 1024, 1024), (1, 1024, 1024), (1, 512, 512))
    assert task_memory(plan, meta) == 2 * 2 * mib  # never above stored + encoded shard
    plan, meta = _plan((1, 64, 64), (8, 2048, 2048), (2, 512, 512))
    assert task_memory(plan, meta) == 32 * 8 * 1024 + 2 * window * 1 * mib + 64 * mib
    # Small inner chunks are encoded GROUP_BYTES (1 MiB) to a pool job: a window of jobs.
    plan, meta = _plan((1, 64, 64), (8, 2048, 2048))
    assert task_memory(plan, meta) == 32 * 8 * 1024 + 2 * window * 1 * mib


@pytest.mark.parametrize("group", [1, 3, 8])
def test_encode_stream_in_groups_keeps_order_and_its_window(group: int) -> None:
    """Small chunks go to the pool several to a job; the output is the same, in order, and
    at most a window of jobs is pulled ahead. A block may be a function run on the pool."""
    window = 2 * (codec_pool()._max_workers or 1)
    pulled = 0

    def blocks() -> Iterator[Block]:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            if i % 7 == 0 or 20 <= i < 30:  # absent, and a run of whole absent groups
                yield None
            elif i % 2:
                yield partial(np.full, (16, 16), i, dtype="<u2")
            else:
                yield np.full((16, 16), i, dtype="<u2")

    cpu = [0.0]
    leads: list[int] = []
    out: list[bytes | None] = []
    for encoded in encode_stream(blocks(), BLOSC_ZSTD, cpu, group):
        leads.append(pulled - len(out))
        out.append(encoded)
    assert max(leads) <= window * group + group
    for i, encoded in enumerate(out):
        if i % 7 == 0 or 20 <= i < 30:
            assert encoded is None
        else:
            assert encoded is not None
            decoded = decode_inner(encoded, BLOSC_ZSTD, np.dtype("<u2"), (16, 16))
            assert (decoded == i).all()
    assert cpu[0] > 0
