"""Source chunk decoding and checks, inner chunk encoding, the codec cache."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest

from ngff_resave.chunkcodecs import (
    check_stored_chunk,
    decode_inner,
    decode_source_chunk,
    decode_source_reusing,
    encode_inner,
    v2_codec,
    v3_codec,
)
from ngff_resave.errors import CorruptChunkError
from ngff_resave.metadata.arrays import parse_v2_array
from ngff_resave.planning import parse_codec

LZ4 = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}


def _meta(compressor: dict[str, object] | None = LZ4, dtype: str = "<u2", side: int = 4) -> object:
    """A 2-D array of 2 × 2 square chunks of ``side``."""
    return parse_v2_array(
        {
            "zarr_format": 2,
            "shape": [2 * side, 2 * side],
            "chunks": [side, side],
            "dtype": dtype,
            "compressor": compressor,
            "fill_value": 0,
            "order": "C",
            "filters": None,
        },
        "a",
    )


def test_codecs_are_cached_by_mapping_and_by_content() -> None:
    config = dict(LZ4)
    first = v2_codec(config)
    assert v2_codec(config) is first  # the same mapping: the identity cache
    assert v2_codec(dict(LZ4)) is first  # an equal mapping: the content cache
    codec = parse_codec("zstd:3")
    assert codec is not None
    assert v3_codec(codec) is v3_codec(codec)
    assert v3_codec(codec).get_config()["level"] == 3


def test_the_location_is_only_worked_out_for_an_error() -> None:
    meta = _meta()
    block = np.arange(16, dtype="<u2").reshape(4, 4)
    good = numcodecs.get_codec(LZ4).encode(block)
    calls: list[int] = []

    def where() -> str:
        calls.append(1)
        return "in.zarr/0/1.1"

    np.testing.assert_array_equal(decode_source_chunk(meta, good, where), block)  # type: ignore[arg-type]
    assert calls == []
    with pytest.raises(CorruptChunkError, match=r"^in\.zarr/0/1\.1: blosc chunk header"):
        decode_source_chunk(meta, good[:-3], where)  # type: ignore[arg-type]
    assert calls == [1]


@pytest.mark.parametrize(
    ("compressor", "data", "message"),
    [
        (None, b"\x00" * 31, "uncompressed chunk is 31 bytes"),
        (LZ4, b"\x02\x01", "truncated"),
        ({"id": "gzip", "level": 1}, b"not gzip at all, long enough", "not a gzip stream"),
        ({"id": "zstd", "level": 1}, b"not a zstd frame", "not a zstd frame"),
    ],
    ids=["raw", "blosc", "gzip", "zstd"],
)
def test_cheap_checks_catch_damaged_chunks(
    compressor: dict[str, object] | None, data: bytes, message: str
) -> None:
    with pytest.raises(CorruptChunkError, match=message):
        check_stored_chunk(_meta(compressor), data, "k")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["zstd:1", "gzip:2", "blosc-zstd", "blosc-lz4:3", "none"])
def test_inner_chunks_round_trip(text: str) -> None:
    codec = parse_codec(text)
    block = np.arange(64, dtype=">u2").reshape(8, 8)  # big-endian: the bytes codec keeps it
    data = encode_inner(block, codec)
    np.testing.assert_array_equal(decode_inner(data, codec, block.dtype, (8, 8)), block)


def test_decoding_into_the_reused_buffer_gives_the_same_chunk() -> None:
    """Blosc chunks decode into one buffer per thread: equal values, writable, reused."""
    meta = _meta()
    first_block = np.arange(16, dtype="<u2").reshape(4, 4)
    second_block = first_block * 3
    codec = numcodecs.get_codec(LZ4)
    first = decode_source_reusing(meta, codec.encode(first_block), "a/0.0")  # type: ignore[arg-type]
    np.testing.assert_array_equal(first, first_block)
    assert first.flags.writeable and first.dtype == np.dtype("<u2")
    second = decode_source_reusing(meta, codec.encode(second_block), "a/0.1")  # type: ignore[arg-type]
    np.testing.assert_array_equal(second, second_block)
    assert np.shares_memory(first, second)  # the same buffer: no new pages per chunk


def test_decoding_into_the_reused_buffer_refuses_corrupt_chunks() -> None:
    meta = _meta(side=64)
    block = np.arange(64 * 64, dtype="<u2").reshape(64, 64) // 7  # compresses: not memcpyed
    good = bytearray(numcodecs.get_codec(LZ4).encode(block))
    with pytest.raises(CorruptChunkError, match=r"^a/1\.1: blosc chunk header"):
        decode_source_reusing(meta, bytes(good[:-3]), "a/1.1")  # type: ignore[arg-type]
    good[16:] = b"\xff" * (len(good) - 16)  # the header is right, the blocks are garbage
    with pytest.raises(CorruptChunkError, match=r"^a/1\.1: chunk cannot be decoded"):
        decode_source_reusing(meta, bytes(good), "a/1.1")  # type: ignore[arg-type]


def test_other_codecs_decode_as_usual_when_reusing() -> None:
    meta = _meta({"id": "zstd", "level": 1})
    block = np.arange(16, dtype="<u2").reshape(4, 4)
    data = numcodecs.get_codec({"id": "zstd", "level": 1}).encode(block)
    np.testing.assert_array_equal(decode_source_reusing(meta, data, "a/0.0"), block)  # type: ignore[arg-type]
