"""The shard binary layout, checked against zarr-python's own reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from ngff_resave.errors import CorruptChunkError
from ngff_resave.shards import build_shard, inner_chunk, read_index, shard_pieces


def test_all_empty_shard_is_not_written() -> None:
    assert build_shard([None, None]) is None


def test_index_round_trip_and_checksum() -> None:
    shard = build_shard([b"abc", None, b"de"])
    assert shard is not None
    index = read_index(shard, 3, "s")
    assert inner_chunk(shard, index, 0) == b"abc"
    assert inner_chunk(shard, index, 1) is None
    assert inner_chunk(shard, index, 2) == b"de"
    broken = bytearray(shard)
    broken[-10] ^= 0xFF
    with pytest.raises(CorruptChunkError, match="checksum"):
        read_index(bytes(broken), 3, "s")
    with pytest.raises(CorruptChunkError, match="outside the shard"):
        read_index(shard[:1] + shard[3:], 3, "s")


@pytest.mark.parametrize(
    "chunks",
    [[b"abc", None, b"de"], [None, None], [b"", b"x"], [None, b"only"]],
    ids=["mixed", "empty", "zero-length-chunk", "one"],
)
def test_shard_pieces_stream_a_shard_the_index_reader_accepts(chunks: list[bytes | None]) -> None:
    """Piece by piece (as the copy path streams it), read back by the index reader."""
    pieces = list(shard_pieces(iter(chunks), len(chunks)))
    if all(c is None for c in chunks):
        assert pieces == [] and build_shard(chunks) is None
        return
    shard = b"".join(pieces)
    stored = [c for c in chunks if c is not None]
    assert pieces[: len(stored)] == stored and len(pieces) == len(stored) + 2  # + index, crc
    index = read_index(shard, len(chunks), "s")
    assert [inner_chunk(shard, index, i) for i in range(len(chunks))] == chunks
    assert build_shard(chunks) == shard


def test_zarr_python_reads_a_shard_we_built(tmp_path: Path) -> None:
    """Raw (uncompressed) inner chunks, one missing, at an edge the chunks do not divide."""
    data = np.arange(5 * 6, dtype="<u2").reshape(5, 6)
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [5, 6],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 8]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 9,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [4, 4],
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
    }
    (tmp_path / "zarr.json").write_text(json.dumps(meta))
    chunks: list[bytes | None] = []
    expected = np.full((5, 6), 9, dtype="<u2")
    for i in range(2):
        for j in range(2):
            if (i, j) == (0, 1):
                chunks.append(None)  # never written: reads as fill_value
                continue
            block = np.full((4, 4), 9, dtype="<u2")
            part = data[i * 4 : i * 4 + 4, j * 4 : j * 4 + 4]
            block[: part.shape[0], : part.shape[1]] = part
            expected[i * 4 : i * 4 + 4, j * 4 : j * 4 + 4] = part
            chunks.append(block.tobytes())
    shard = build_shard(chunks)
    assert shard is not None
    (tmp_path / "c" / "0").mkdir(parents=True)
    (tmp_path / "c" / "0" / "0").write_bytes(shard)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path), mode="r")[:], expected)
