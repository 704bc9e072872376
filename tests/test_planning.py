"""Planning: shard heuristic, overrides, codecs and the details file (pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ngff_resave.discover import ArrayNode, Inventory
from ngff_resave.errors import PlanError
from ngff_resave.metadata.arrays import parse_v2_array
from ngff_resave.planning import (
    PATH_COPY,
    PATH_REENCODE,
    PlanOptions,
    apply_details,
    choose_shards,
    details_document,
    parse_codec,
    parse_size,
    plan_array,
    plan_inventory,
)

SPACE5 = ("time", "channel", "space", "space", "space")


def node(shape: list[int], chunks: list[int], dtype: str = "<u2", **over: Any) -> ArrayNode:
    doc = {
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": dtype,
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
        "fill_value": 0,
        "order": "C",
        "filters": None,
        **over,
    }
    rank = len(shape)
    names = tuple("tczyx"[-rank:])
    return ArrayNode("0", parse_v2_array(doc, "0/.zarray"), {}, names, SPACE5[-rank:], 0)


@pytest.mark.parametrize(
    ("shape", "chunks", "itemsize", "target", "expected"),
    [
        ((1, 2, 64, 2048, 4096), (1, 1, 1, 1024, 1024), 2, 256 * 2**20, (1, 1, 64, 1024, 2048)),
        ((50, 494, 464), (1, 494, 464), 8, 256 * 2**20, (50, 494, 464)),
        ((2, 142, 788, 1584), (1, 1, 1024, 1024), 1, 256 * 2**20, (1, 142, 1024, 1024)),
        ((10, 10), (3, 3), 1, 10**9, (12, 12)),  # clipped to the chunk grid, not beyond
        ((4096, 4096), (4096, 4096), 2, 1024, (4096, 4096)),  # one chunk over the target
    ],
    ids=["5d-planes", "idr-f8", "chunk-over-shape", "small", "chunk-over-target"],
)
def test_choose_shards(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    itemsize: int,
    target: int,
    expected: tuple[int, ...],
) -> None:
    types = SPACE5[-len(shape) :]
    shards = choose_shards(shape, chunks, itemsize, target, types)
    assert shards == expected
    assert all(s % c == 0 for s, c in zip(shards, chunks, strict=True))
    assert math.prod(shards) * itemsize <= max(target, math.prod(chunks) * itemsize)


def test_spatial_axes_grow_before_channels() -> None:
    shards = choose_shards((1, 8, 64, 512, 512), (1, 1, 16, 128, 128), 2, 16 * 2**20, SPACE5)
    assert shards[1] == 1, "channels are only grouped once space is exhausted"
    assert shards[2:] == (64, 256, 512)  # exactly the 16 MiB target


def test_fast_path_by_default_and_reencode_with_reasons() -> None:
    n = node([100, 100], [32, 32])
    assert plan_array(n, PlanOptions()).path_taken == PATH_COPY
    other_chunks = plan_array(n, PlanOptions(chunks=(16, 16)))
    assert other_chunks.path_taken == PATH_REENCODE and "differ" in other_chunks.reason
    codec = plan_array(n, PlanOptions(codec=parse_codec("zstd:3"), codec_given=True))
    assert codec.path_taken == PATH_REENCODE and "codec" in codec.reason
    zlib = plan_array(
        node([100, 100], [32, 32], compressor={"id": "zlib", "level": 1}), PlanOptions()
    )
    assert zlib.path_taken == PATH_REENCODE and "zlib" in zlib.reason
    assert zlib.codec is not None and zlib.codec["name"] == "blosc"


def test_output_chunks_are_clipped_to_small_levels() -> None:
    plan = plan_array(node([10, 300], [10, 100]), PlanOptions(chunks=(64, 64)))
    assert plan.chunks == (10, 64)


@pytest.mark.parametrize(
    ("shape", "chunks", "shards", "expected_chunks", "expected_shards"),
    [
        # A level smaller than --output-chunks: the chunk is clipped and so is the shard.
        ([10, 30], (24, 24), (48, 48), (10, 24), (10, 48)),
        ([10, 300], (64, 64), (128, 128), (10, 64), (10, 128)),
        # A shard larger than the chunks covering the array shrinks to them.
        ([100, 100], (32, 32), (256, 64), (32, 32), (128, 64)),
        # Nothing to clip.
        ([1000, 1000], (32, 32), (256, 64), (32, 32), (256, 64)),
    ],
    ids=["level-smaller-than-chunk", "one-axis-clipped", "shard-beyond-array", "unchanged"],
)
def test_output_shards_are_clipped_with_the_chunks(
    shape: list[int],
    chunks: tuple[int, int],
    shards: tuple[int, int],
    expected_chunks: tuple[int, int],
    expected_shards: tuple[int, int],
) -> None:
    plan = plan_array(node(shape, [10, 10]), PlanOptions(chunks=chunks, shards=shards))
    assert (plan.chunks, plan.shards) == (expected_chunks, expected_shards)


def test_chunk_and_shard_grids_count_overhanging_edges() -> None:
    plan = plan_array(node([5, 40, 36], [2, 16, 16]), PlanOptions(shards=(4, 32, 32)))
    assert plan.chunk_grid == (3, 3, 3)  # 5/2, 40/16, 36/16 rounded up
    assert plan.shard_grid == (2, 2, 2)
    assert plan.shard_count == 8


def test_source_chunk_larger_than_level_is_kept_for_the_fast_path() -> None:
    plan = plan_array(node([10, 30], [64, 64]), PlanOptions(shards=(128, 128)))
    assert (plan.chunks, plan.shards, plan.path_taken) == ((64, 64), (64, 64), PATH_COPY)


def test_shards_override_must_be_multiple() -> None:
    with pytest.raises(PlanError, match="not a whole multiple"):
        plan_array(node([100, 100], [32, 32]), PlanOptions(shards=(48, 64)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MiB", 512 * 2**20), ("1GB", 10**9), ("64K", 64 * 1024), ("1048576", 2**20)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-5MiB", "0"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(PlanError):
        parse_size(text)


def test_parse_codec() -> None:
    assert parse_codec("none") is None
    assert parse_codec("blosc-zstd:3") == {
        "name": "blosc",
        "configuration": {"cname": "zstd", "clevel": 3, "shuffle": "shuffle", "blocksize": 0},
    }
    with pytest.raises(PlanError, match="unknown"):
        parse_codec("lzma")


def test_details_round_trip_and_edits() -> None:
    inventory = Inventory("image", arrays=[node([100, 100], [32, 32])])
    plans = plan_inventory(inventory, PlanOptions())
    doc = details_document(plans, source="in.zarr", shard_bytes=2**20)
    same, warnings = apply_details(inventory, plans, doc, where="p.json")
    assert same == plans and warnings == []
    doc["arrays"][0]["shape"] = [1, 1]
    doc["arrays"][0]["shards"] = [64, 64]
    edited, warnings = apply_details(inventory, plans, doc, where="p.json")
    assert edited[0].shape == (100, 100) and edited[0].shards == (64, 64)
    assert any("shape" in w for w in warnings)
    doc["arrays"][0]["shards"] = [48, 64]
    with pytest.raises(PlanError, match=r"p\.json.*not a whole multiple"):
        apply_details(inventory, plans, doc, where="p.json")
