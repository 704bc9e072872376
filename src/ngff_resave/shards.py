"""The binary layout of a Zarr v3 shard (``sharding_indexed`` codec, index at the end).

Spec (Zarr v3 sharding codec): the shard is the encoded inner chunks, then an index of
``prod(chunks_per_shard)`` pairs ``(offset, nbytes)`` of little-endian uint64 in C order over
the inner-chunk grid, encoded with ``bytes`` (little) + ``crc32c`` (4 bytes appended).
An inner chunk that is not stored has both values set to 2**64 - 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import TypeVar

import crc32c
import numpy as np

from ngff_resave.errors import CorruptChunkError

EMPTY = np.uint64(2**64 - 1)


def index_nbytes(chunk_count: int) -> int:
    """Size in bytes of a shard index with ``chunk_count`` entries (plus the checksum)."""
    return chunk_count * 16 + 4


Piece = TypeVar("Piece", bound=Sized)


def shard_pieces(chunks: Iterable[Piece | None], count: int) -> Iterator[Piece | bytes]:
    """A shard piece by piece, as its encoded inner chunks arrive (C order, ``None`` = not stored).

    Yields each stored chunk as it is (bytes, or anything with a length in bytes, such as a
    whole local file to copy), then the index and its crc32c; yields nothing when no chunk is
    stored (a missing shard means fill_value, like a missing chunk). ``count`` is the number
    of inner chunks.
    """
    index = np.full((count, 2), EMPTY, dtype="<u8")
    offset = 0
    for i, chunk in enumerate(chunks):
        if chunk is None:
            continue
        index[i, 0] = offset
        index[i, 1] = len(chunk)
        offset += len(chunk)
        yield chunk
    if offset or (index[:, 0] != EMPTY).any():
        index_bytes = index.tobytes()
        yield index_bytes
        yield crc32c.crc32c(index_bytes).to_bytes(4, "little")


def build_shard(chunks: Sequence[bytes | None]) -> bytes | None:
    """The whole shard of :func:`shard_pieces` in memory; ``None`` when no chunk is stored."""
    return b"".join(shard_pieces(chunks, len(chunks))) or None


def read_index(shard: bytes, chunk_count: int, where: str) -> np.ndarray:
    """The ``(chunk_count, 2)`` index of a shard; checks its size and crc32c checksum."""
    return parse_index(shard[-index_nbytes(chunk_count) :], len(shard), chunk_count, where)


def parse_index(tail: bytes, shard_size: int, chunk_count: int, where: str) -> np.ndarray:
    """The index from the last :func:`index_nbytes` bytes of a shard of ``shard_size`` bytes.

    Checks the size, the crc32c checksum, and that every stored chunk lies inside the shard.
    Needs only the tail, so a large shard's index is read without reading the shard.
    """
    size = index_nbytes(chunk_count)
    if shard_size < size or len(tail) != size:
        raise CorruptChunkError(f"{where}: shard is {shard_size} bytes, shorter than its index")
    raw = tail[:-4]
    stored = int.from_bytes(tail[-4:], "little")
    if crc32c.crc32c(raw) != stored:
        raise CorruptChunkError(f"{where}: shard index checksum mismatch (corrupt index)")
    index = np.frombuffer(raw, dtype="<u8").reshape(chunk_count, 2)
    data_size = shard_size - size
    for i, (offset, nbytes) in enumerate(index):
        if offset == EMPTY and nbytes == EMPTY:
            continue
        if int(offset) + int(nbytes) > data_size:
            raise CorruptChunkError(
                f"{where}: inner chunk {i} lies outside the shard (truncated shard?)"
            )
    return index


def inner_chunk(shard: bytes, index: np.ndarray, i: int) -> bytes | None:
    """The encoded bytes of inner chunk ``i`` (``None`` when it is not stored)."""
    offset, nbytes = index[i]
    if offset == EMPTY and nbytes == EMPTY:
        return None
    return shard[int(offset) : int(offset) + int(nbytes)]
