"""The codec's own speed: encode decoded level-0 chunks with Blosc(zstd, clevel 5, shuffle).

That is the reference converter's output codec (hard-coded in ome2024-ngff-challenge 1.0.3's
``resave.py``: ``{"name": "blosc", "configuration": {"cname": "zstd", "clevel": 5}}``; tensorstore
fills in byte shuffle and typesize for multi-byte types). A re-encoding converter cannot beat
this rate on the same cores, so it is the denominator of the "re-encode >= 90%" target.

The chunks are decoded first (untimed, up to --max-bytes, evenly sampled), then encoded twice:
* ``pool``: N Python threads, each encoding whole chunks with single-threaded blosc (GIL released);
* ``blosc``: one thread, blosc's internal N threads splitting each chunk into blocks.
The faster of the two is the baseline. Prints and writes JSON (``--json FILE``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import sys
import time
from pathlib import Path

import numcodecs
import numcodecs.blosc
import numpy as np

CODEC = {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0}


def load_chunks(array_dir: Path, max_bytes: int) -> list[np.ndarray]:
    meta = json.loads((array_dir / ".zarray").read_text())
    sep = meta.get("dimension_separator", ".")
    dtype = np.dtype(meta["dtype"])
    chunk_shape = tuple(meta["chunks"])
    grid = [math.ceil(n / c) for n, c in zip(meta["shape"], chunk_shape, strict=True)]
    decoder = numcodecs.get_codec(meta["compressor"]) if meta["compressor"] else None
    keys = list(np.ndindex(*grid))
    chunk_bytes = math.prod(chunk_shape) * dtype.itemsize
    wanted = max(1, min(len(keys), max_bytes // chunk_bytes))
    step = len(keys) / wanted
    chunks = []
    for i in range(wanted):
        key = keys[int(i * step)]
        path = array_dir / sep.join(map(str, key))
        if not path.exists():
            continue
        data = path.read_bytes()
        raw = decoder.decode(data) if decoder else data
        chunks.append(np.frombuffer(raw, dtype).reshape(chunk_shape))
    return chunks


def encode_pool(chunks: list[np.ndarray], threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s, encoded bytes)."""
    codec = numcodecs.get_codec(CODEC)
    numcodecs.blosc.use_threads = False  # each call single-threaded, in parallel across chunks
    c0, t0 = time.process_time(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(lambda c: len(codec.encode(c)), chunks))
    return time.perf_counter() - t0, time.process_time() - c0, sum(sizes)


def encode_blosc_threads(chunks: list[np.ndarray], threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s, encoded bytes)."""
    codec = numcodecs.get_codec(CODEC)
    numcodecs.blosc.use_threads = True
    numcodecs.blosc.set_nthreads(threads)
    c0, t0 = time.process_time(), time.perf_counter()
    total = sum(len(codec.encode(c)) for c in chunks)
    return time.perf_counter() - t0, time.process_time() - c0, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("array", type=Path, help="a Zarr v2 array directory (level 0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-bytes", type=int, default=1 << 30, help="decoded bytes to encode")
    p.add_argument("--json", type=Path)
    ns = p.parse_args(argv)

    chunks = load_chunks(ns.array, ns.max_bytes)
    raw = sum(c.nbytes for c in chunks)
    pool_s, pool_cpu, pool_out = encode_pool(chunks, ns.threads)
    blosc_s, blosc_cpu, _ = encode_blosc_threads(chunks, ns.threads)
    best = min(pool_s, blosc_s)
    result = {
        "codec": CODEC,
        "threads": ns.threads,
        "chunks": len(chunks),
        "chunk_shape": list(chunks[0].shape) if chunks else None,
        "raw_bytes": raw,
        "encoded_bytes": pool_out,
        "compression_ratio": raw / pool_out if pool_out else None,
        "pool_seconds": pool_s,
        "pool_mb_s": raw / 1e6 / pool_s,
        "blosc_threads_seconds": blosc_s,
        "blosc_threads_mb_s": raw / 1e6 / blosc_s,
        "pool_cpu_seconds": pool_cpu,
        "blosc_threads_cpu_seconds": blosc_cpu,
        "encode_seconds": best,
        "encode_cpu_seconds": pool_cpu if best == pool_s else blosc_cpu,
        "encode_mb_s": raw / 1e6 / best,
        "blosc_version": getattr(numcodecs.blosc, "VERSION_STRING", None),
        "numcodecs": numcodecs.__version__,
        "pid": os.getpid(),
    }
    print(
        f"blosc-zstd clevel 5 shuffle, {ns.threads} threads, {len(chunks)} chunks "
        f"{raw / 1e6:.0f} MB: pool {result['pool_mb_s']:.0f} MB/s, blosc-threads "
        f"{result['blosc_threads_mb_s']:.0f} MB/s, ratio {result['compression_ratio']:.2f}"
    )
    if ns.json:
        ns.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
