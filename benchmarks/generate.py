"""Generate the benchmark inputs: microscopy-like 5D uint16 OME-Zarr 0.4 images (Zarr v2).

Pixels are a sum of 3D Gaussian "nuclei" over a dim, slowly varying background, with Poisson
(shot) noise on top: smooth structure plus noise, which gives blosc-lz4 (byte shuffle) a
compression ratio of about 2.5, like real fluorescence data. Every plane is drawn from its own
seeded generator, so the same (channel, z) plane is identical in every chunk layout and the data
never depends on how it was generated.

Memory stays bounded: planes are made one at a time and written as soon as a whole row of chunks
(one chunk deep in z) is complete. Chunk layouts deeper than one plane in z buffer that depth in a
memory-mapped scratch file, so resident memory does not grow with the image.

Outputs are cached: a dataset is regenerated only if its parameters changed (see the
``<name>.params.json`` stamp written beside it, last, once the data is complete).

Usage::

    python benchmarks/generate.py [--scale 1] [--layouts planes,cubes] [--out benchmarks/work/data]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numcodecs
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "work" / "data"
GENERATOR_VERSION = 1  # bump when the pixel recipe changes: invalidates cached datasets

# Level 0 at --scale 1: (t, c, z, y, x) = (1, 2, 64, 2048, 4096) uint16 = 2 GiB raw.
# --scale multiplies the z extent only, so y/x chunk grids stay identical across sizes.
BASE_SHAPE = (1, 2, 64, 2048, 4096)
N_LEVELS = 3  # each level halves y and x (2x2 mean)
LAYOUTS = {
    # name -> chunk shape of every level (as real writers do: same chunks, clipped by shape)
    "planes": (1, 1, 1, 1024, 1024),
    "cubes": (1, 1, 64, 64, 64),
}
COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}

# The pixel recipe (photon counts).
BLOBS_VISIBLE_PER_PLANE = 600  # about this many nuclei cut each plane
BLOB_SIGMA_YX = (6.0, 25.0)  # pixels
BLOB_SIGMA_Z = (2.0, 6.0)  # planes
BLOB_PEAK = (50.0, 1500.0)  # photons at the centre
BACKGROUND_MEAN = 0.5  # photons: a dim, background-subtracted camera
BACKGROUND_SWING = 0.5  # amplitude of the low-frequency background
BACKGROUND_CORRELATION = 300.0  # pixels


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One generated image: where it goes and everything its pixels and layout depend on."""

    layout: str
    scale: float
    seed: int = 2024

    @property
    def shape(self) -> tuple[int, ...]:
        t, c, z, y, x = BASE_SHAPE
        return (t, c, max(1, round(z * self.scale)), y, x)

    @property
    def chunks(self) -> tuple[int, ...]:
        return LAYOUTS[self.layout]

    @property
    def name(self) -> str:
        return f"synth-{self.layout}-scale{self.scale:g}.ome.zarr"

    def level_shape(self, level: int) -> tuple[int, ...]:
        t, c, z, y, x = self.shape
        return (t, c, z, math.ceil(y / 2**level), math.ceil(x / 2**level))

    @property
    def raw_bytes_level0(self) -> int:
        return math.prod(self.shape) * 2

    @property
    def raw_bytes_all_levels(self) -> int:
        return sum(math.prod(self.level_shape(lv)) * 2 for lv in range(N_LEVELS))

    def params(self) -> dict[str, object]:
        return {
            "generator_version": GENERATOR_VERSION,
            "layout": self.layout,
            "scale": self.scale,
            "seed": self.seed,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "levels": N_LEVELS,
            "compressor": COMPRESSOR,
        }


# ---------------------------------------------------------------------------------------------
# Pixels


class ChannelModel:
    """The smooth 3D structure of one channel: background field + Gaussian nuclei."""

    def __init__(self, spec: DatasetSpec, channel: int) -> None:
        _, _, nz, ny, nx = spec.shape
        rng = np.random.default_rng([spec.seed, channel, 0xB10B])
        self.background = _low_frequency_field((ny, nx), BACKGROUND_CORRELATION, rng)
        # Blobs are spread over z with some margin so edge planes are as busy as middle ones.
        # A blob is "visible" within +-2 sigma_z: mean window ~ 4 * mean sigma_z planes.
        window = 4 * sum(BLOB_SIGMA_Z) / 2
        n_blobs = max(1, round(BLOBS_VISIBLE_PER_PLANE * (nz + window) / window))
        self.zc = rng.uniform(-window / 2, nz + window / 2, n_blobs)
        self.sz = rng.uniform(*BLOB_SIGMA_Z, n_blobs)
        self.yc = rng.uniform(0, ny, n_blobs)
        self.xc = rng.uniform(0, nx, n_blobs)
        self.syx = rng.uniform(*BLOB_SIGMA_YX, n_blobs)
        self.peak = rng.uniform(*BLOB_PEAK, n_blobs)
        self.ny, self.nx = ny, nx

    def expected_photons(self, z: int) -> np.ndarray:
        """Noise-free intensity of plane z (float32, shape (ny, nx))."""
        dz = z - self.zc
        sel = np.abs(dz) < 3 * self.sz
        amp = (self.peak[sel] * np.exp(-(dz[sel] ** 2) / (2 * self.sz[sel] ** 2))).astype(
            np.float32
        )
        s = self.syx[sel][:, None]
        gy = np.exp(-((np.arange(self.ny)[None, :] - self.yc[sel][:, None]) ** 2) / (2 * s**2))
        gx = np.exp(-((np.arange(self.nx)[None, :] - self.xc[sel][:, None]) ** 2) / (2 * s**2))
        # Each blob is separable: sum_i amp_i * gy_i(y) * gx_i(x) is one matrix product.
        blobs = (gy.astype(np.float32) * amp[:, None]).T @ gx.astype(np.float32)
        blobs += BACKGROUND_MEAN
        blobs += BACKGROUND_SWING * self.background
        np.maximum(blobs, 0, out=blobs)
        return blobs


def _low_frequency_field(shape: tuple[int, int], correlation: float, rng: np.random.Generator):
    noise = rng.standard_normal(shape).astype(np.float32)
    spectrum = np.fft.rfft2(noise)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    spectrum *= np.exp(-(ky**2 + kx**2) * (2 * np.pi * correlation) ** 2 / 2)
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    return field / max(float(field.std()), 1e-12)


def make_plane(model: ChannelModel, spec: DatasetSpec, channel: int, z: int) -> np.ndarray:
    """One noisy level-0 plane (uint16), reproducible from (seed, channel, z) alone."""
    rng = np.random.default_rng([spec.seed, channel, z])
    counts = rng.poisson(model.expected_photons(z))
    return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)


def downsample_2x(plane: np.ndarray) -> np.ndarray:
    """2x2 mean in (y, x), edge rows/columns kept by padding with themselves."""
    ny, nx = plane.shape
    if ny % 2 or nx % 2:
        plane = np.pad(plane, ((0, ny % 2), (0, nx % 2)), mode="edge")
    acc = plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).astype(np.uint32)
    return ((acc.sum(axis=(1, 3)) + 2) // 4).astype(np.uint16)


# ---------------------------------------------------------------------------------------------
# Writing (numcodecs + hand-written v2 metadata: the bytes are exactly what a v2 writer makes)


class LevelWriter:
    """Buffers planes of one array until a full chunk depth in z is there, then writes chunks."""

    def __init__(
        self, root: Path, level: int, shape: tuple[int, ...], chunks: tuple[int, ...], scratch: Path
    ) -> None:
        self.dir = root / str(level)
        self.shape = shape
        self.chunks = chunks
        self.codec = numcodecs.get_codec(dict(COMPRESSOR))
        self.stored_bytes = 0
        self.n_chunks = 0
        _, _, nz, ny, nx = shape
        cz = self.chunks[2]
        depth = min(cz, nz)
        if depth == 1:
            self.buffer = np.empty((1, ny, nx), np.uint16)
        else:
            fd, name = tempfile.mkstemp(dir=scratch, suffix=".slab")
            os.close(fd)
            self.buffer = np.memmap(name, np.uint16, "w+", shape=(depth, ny, nx))
            os.unlink(name)  # the mapping keeps it alive; nothing to clean up on a crash
        self.dir.mkdir(parents=True)
        (self.dir / ".zarray").write_text(json.dumps(_zarray(shape, self.chunks), indent=4))

    def add(self, channel: int, z: int, plane: np.ndarray) -> None:
        _, _, nz, _, _ = self.shape
        cz = self.chunks[2]
        self.buffer[z % cz] = plane
        if z % cz == cz - 1 or z == nz - 1:
            self._flush(channel, z // cz, z % cz + 1)

    def _flush(self, channel: int, zi: int, depth: int) -> None:
        _, _, _, ny, nx = self.shape
        _, _, cz, cy, cx = self.chunks
        for yi in range(math.ceil(ny / cy)):
            for xi in range(math.ceil(nx / cx)):
                # A v2 chunk is always the full chunk shape; the part past the array edge holds
                # the fill value (0), as zarr-python writes it.
                block = np.zeros((1, 1, cz, cy, cx), np.uint16)
                part = self.buffer[:depth, yi * cy : (yi + 1) * cy, xi * cx : (xi + 1) * cx]
                block[0, 0, :depth, : part.shape[1], : part.shape[2]] = part
                data = self.codec.encode(block)
                path = self.dir / "0" / str(channel) / str(zi) / str(yi) / str(xi)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                self.stored_bytes += len(data)
                self.n_chunks += 1


def _zarray(shape: tuple[int, ...], chunks: tuple[int, ...]) -> dict[str, object]:
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": "<u2",
        "compressor": COMPRESSOR,
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _zattrs(spec: DatasetSpec) -> dict[str, object]:
    pixel = (1.0, 1.0, 0.5, 0.1625, 0.1625)  # t, c, z (um), y (um), x (um)
    datasets = []
    for level in range(N_LEVELS):
        scale = [pixel[0], pixel[1], pixel[2], pixel[3] * 2**level, pixel[4] * 2**level]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": spec.name.removesuffix(".ome.zarr"),
                "axes": [
                    {"name": "t", "type": "time", "unit": "second"},
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": datasets,
                "type": "mean",
            }
        ],
        "omero": {
            "version": "0.4",
            "channels": [
                {
                    "label": label,
                    "color": color,
                    "active": True,
                    "window": {"start": 0, "end": 1500, "min": 0, "max": 65535},
                }
                for label, color in (("DAPI", "0000FF"), ("GFP", "00FF00"))
            ][: spec.shape[1]],
            "rdefs": {"model": "color"},
        },
    }


# ---------------------------------------------------------------------------------------------
# Driver


def stamp_path(out: Path, spec: DatasetSpec) -> Path:
    return out / (spec.name + ".params.json")


def is_cached(out: Path, spec: DatasetSpec) -> bool:
    stamp = stamp_path(out, spec)
    if not stamp.exists() or not (out / spec.name).is_dir():
        return False
    try:
        return json.loads(stamp.read_text()).get("params") == spec.params()
    except (OSError, ValueError):
        return False


def _planes(spec: DatasetSpec, workers: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (channel, z, plane) in order, computing up to ``workers`` planes at once."""
    _, nc, nz, _, _ = spec.shape
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for c in range(nc):
            model = ChannelModel(spec, c)
            pending: list[concurrent.futures.Future[np.ndarray]] = []
            for z in range(nz):
                pending.append(pool.submit(make_plane, model, spec, c, z))
                if len(pending) > workers:
                    yield c, z - len(pending) + 1, pending.pop(0).result()
            first = nz - len(pending)
            for i, fut in enumerate(pending):
                yield c, first + i, fut.result()


def generate(specs: list[DatasetSpec], out: Path, workers: int = 2) -> list[dict[str, object]]:
    """Write every spec not already cached, in one pass over the pixels per scale."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    todo = [s for s in specs if not is_cached(out, s)]
    for spec in specs:
        if spec not in todo:
            info = json.loads(stamp_path(out, spec).read_text())
            print(f"cached: {out / spec.name} (ratio {info['compression_ratio']:.2f})")
            results.append(info)
    scales = sorted({s.scale for s in todo})
    for scale in scales:
        group = [s for s in todo if s.scale == scale]
        results.extend(_generate_same_pixels(group, out, workers))
    return results


def _generate_same_pixels(specs: list[DatasetSpec], out: Path, workers: int):
    t0 = time.perf_counter()
    writers: dict[DatasetSpec, list[LevelWriter]] = {}
    scratch = Path(tempfile.mkdtemp(dir=out, prefix=".scratch-"))
    try:
        for spec in specs:
            root = out / spec.name
            stamp_path(out, spec).unlink(missing_ok=True)
            if root.exists():
                shutil.rmtree(root)
            root.mkdir()
            (root / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
            (root / ".zattrs").write_text(json.dumps(_zattrs(spec), indent=4))
            writers[spec] = [
                LevelWriter(root, lv, spec.level_shape(lv), spec.chunks, scratch)
                for lv in range(N_LEVELS)
            ]
        ref = specs[0]
        n_planes = ref.shape[1] * ref.shape[2]
        for i, (c, z, plane) in enumerate(_planes(ref, workers)):
            levels = [plane]
            for _ in range(1, N_LEVELS):
                levels.append(downsample_2x(levels[-1]))
            for spec in specs:
                for lv, writer in enumerate(writers[spec]):
                    writer.add(c, z, levels[lv])
            if (i + 1) % 16 == 0 or i + 1 == n_planes:
                print(f"  plane {i + 1}/{n_planes}  {time.perf_counter() - t0:6.1f}s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    results = []
    for spec in specs:
        stored0 = writers[spec][0].stored_bytes
        stored = sum(w.stored_bytes for w in writers[spec])
        info = {
            "params": spec.params(),
            "path": str(out / spec.name),
            "raw_bytes_level0": spec.raw_bytes_level0,
            "raw_bytes_all_levels": spec.raw_bytes_all_levels,
            "stored_bytes_level0": stored0,
            "stored_bytes_all_levels": stored,
            "chunks_all_levels": sum(w.n_chunks for w in writers[spec]),
            # Ratio over the bytes the chunks hold (edge chunks are padded with zeros).
            "compression_ratio": spec.raw_bytes_level0 / stored0,
            "generation_seconds": elapsed,
        }
        _check_readback(out / spec.name, spec)
        stamp_path(out, spec).write_text(json.dumps(info, indent=2))
        print(
            f"generated: {out / spec.name}  level0 {spec.shape} chunks {spec.chunks}  "
            f"raw {spec.raw_bytes_level0 / 2**30:.2f} GiB, stored {stored0 / 2**30:.2f} GiB, "
            f"blosc-lz4 ratio {info['compression_ratio']:.2f}  ({elapsed:.0f}s)"
        )
        results.append(info)
    return results


def _check_readback(root: Path, spec: DatasetSpec) -> None:
    """Read the first plane back through zarr-python: the files are a valid v2 array."""
    import zarr

    arr = zarr.open_array(str(root / "0"), mode="r", zarr_format=2)
    expect = make_plane(ChannelModel(spec, 0), spec, 0, 0)
    got = arr[0, 0, 0]
    if not np.array_equal(got, expect):
        raise RuntimeError(f"read-back mismatch in {root}/0 at plane (c=0, z=0)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--scale",
        type=float,
        action="append",
        help="z extent relative to 64 planes (1 = 2 GiB level 0); repeatable",
    )
    p.add_argument(
        "--layouts", default="planes,cubes", help=f"comma-separated, of {sorted(LAYOUTS)}"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--workers", type=int, default=2, help="planes computed at once")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    layouts = [x for x in ns.layouts.split(",") if x]
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        print(
            f"ERROR unknown layout(s) {sorted(unknown)}; choose from {sorted(LAYOUTS)}",
            file=sys.stderr,
        )
        return 2
    specs = [DatasetSpec(lay, s) for s in (ns.scale or [1.0]) for lay in layouts]
    generate(specs, ns.out, ns.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
