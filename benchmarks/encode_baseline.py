"""The codec's own speed: encode decoded chunks with Blosc(zstd, clevel 5, shuffle).

That is the reference converter's output codec (hard-coded in ome2024-ngff-challenge 1.0.3's
``resave.py``: ``{"name": "blosc", "configuration": {"cname": "zstd", "clevel": 5}}``; tensorstore
fills in byte shuffle and typesize for multi-byte types). A re-encoding converter cannot beat
this rate on the same cores, so it is the denominator of the "re-encode >= 90%" target.

The chunks are decoded first (untimed, evenly sampled), then encoded twice. Given several arrays
(the levels of a pyramid: the data a converter encodes), --max-bytes is shared among them in
proportion to their sizes and each array's sample is encoded in turn; the throughput is the
sum of bytes over the sum of seconds, i.e. the codec's rate on the whole input. Each array's own
rate is kept in the JSON (``arrays``): coarser levels compress more slowly per byte.
Two ways of using 2 cores:
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


def array_raw_bytes(array_dir: Path) -> int:
    meta = json.loads((array_dir / ".zarray").read_text())
    return math.prod(meta["shape"]) * np.dtype(meta["dtype"]).itemsize


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arrays", type=Path, nargs="+", help="Zarr v2 array directories (the levels)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-bytes", type=int, default=1 << 30, help="decoded bytes to encode")
    p.add_argument("--json", type=Path)
    ns = p.parse_args(argv)

    sizes = [array_raw_bytes(a) for a in ns.arrays]
    total = sum(sizes)
    per_array = []
    for array, size in zip(ns.arrays, sizes, strict=True):
        chunks = load_chunks(array, max(1, ns.max_bytes * size // total))
        raw = sum(c.nbytes for c in chunks)
        pool_s, pool_cpu, pool_out = encode_pool(chunks, ns.threads)
        blosc_s, blosc_cpu, _ = encode_blosc_threads(chunks, ns.threads)
        per_array.append(
            {
                "array": str(array),
                "chunks": len(chunks),
                "chunk_shape": list(chunks[0].shape) if chunks else None,
                "raw_bytes": raw,
                "encoded_bytes": pool_out,
                "pool_seconds": pool_s,
                "pool_cpu_seconds": pool_cpu,
                "pool_mb_s": raw / 1e6 / pool_s if pool_s else None,
                "blosc_threads_seconds": blosc_s,
                "blosc_threads_cpu_seconds": blosc_cpu,
                "blosc_threads_mb_s": raw / 1e6 / blosc_s if blosc_s else None,
            }
        )
        del chunks
    raw = sum(a["raw_bytes"] for a in per_array)
    out = sum(a["encoded_bytes"] for a in per_array)
    pool_s = sum(a["pool_seconds"] for a in per_array)
    blosc_s = sum(a["blosc_threads_seconds"] for a in per_array)
    pool_cpu = sum(a["pool_cpu_seconds"] for a in per_array)
    blosc_cpu = sum(a["blosc_threads_cpu_seconds"] for a in per_array)
    best = min(pool_s, blosc_s)
    result = {
        "codec": CODEC,
        "threads": ns.threads,
        "chunks": sum(a["chunks"] for a in per_array),
        "raw_bytes": raw,
        "encoded_bytes": out,
        "compression_ratio": raw / out if out else None,
        "pool_seconds": pool_s,
        "pool_mb_s": raw / 1e6 / pool_s,
        "blosc_threads_seconds": blosc_s,
        "blosc_threads_mb_s": raw / 1e6 / blosc_s,
        "pool_cpu_seconds": pool_cpu,
        "blosc_threads_cpu_seconds": blosc_cpu,
        "encode_seconds": best,
        "encode_cpu_seconds": pool_cpu if best == pool_s else blosc_cpu,
        "encode_mb_s": raw / 1e6 / best,
        "level0_mb_s": max(per_array[0]["pool_mb_s"] or 0, per_array[0]["blosc_threads_mb_s"] or 0),
        "arrays": per_array,
        "blosc_version": getattr(numcodecs.blosc, "VERSION_STRING", None),
        "numcodecs": numcodecs.__version__,
        "pid": os.getpid(),
    }
    levels = ", ".join(
        f"{Path(a['array']).name} {max(a['pool_mb_s'] or 0, a['blosc_threads_mb_s'] or 0):.0f}"
        for a in per_array
    )
    print(
        f"blosc-zstd clevel 5 shuffle, {ns.threads} threads, {result['chunks']} chunks "
        f"{raw / 1e6:.0f} MB of {len(per_array)} arrays: pool {result['pool_mb_s']:.0f} MB/s, "
        f"blosc-threads {result['blosc_threads_mb_s']:.0f} MB/s (per array: {levels} MB/s), "
        f"ratio {result['compression_ratio']:.2f}"
    )
    if ns.json:
        ns.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
