"""Property tests (hypothesis): planner invariants, metadata migration, exact round trips."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngff_resave.metadata.ome import _OME_KEYS, migrate_attributes
from ngff_resave.planning import choose_shards
from tests.reliability import figures
from tests.reliability.corpus import run_cli, tree_digest
from tests.support.builders import multiscales_metadata, write_group, write_v2_array

FAST = settings(max_examples=60, deadline=None)
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

AXIS_TYPES = st.sampled_from(["space", "channel", "time", None])


@st.composite
def shapes_and_chunks(draw: st.DrawFn, max_rank: int = 5) -> tuple[list[int], list[int]]:
    rank = draw(st.integers(1, max_rank))
    shape = draw(st.lists(st.integers(0, 5000), min_size=rank, max_size=rank))
    chunks = [draw(st.integers(1, max(1, 2 * n))) for n in shape]
    return shape, chunks


@FAST
@given(
    sc=shapes_and_chunks(),
    itemsize=st.sampled_from([1, 2, 4, 8, 16]),
    target=st.integers(1, 1 << 28),
    typed=st.booleans(),
    data=st.data(),
)
def test_choose_shards_invariants(
    sc: tuple[list[int], list[int]], itemsize: int, target: int, typed: bool, data: st.DataObject
) -> None:
    shape, chunks = sc
    types = data.draw(st.lists(AXIS_TYPES, min_size=len(shape), max_size=len(shape)))
    shards = choose_shards(shape, chunks, itemsize, target, types if typed else None)
    assert len(shards) == len(shape)
    for n, c, s in zip(shape, chunks, shards, strict=True):
        assert s > 0 and s % c == 0, "shard is a whole multiple of the chunk"
        assert s // c <= max(1, math.ceil(n / c)), "no more chunks than the array's grid"
        assert math.ceil(n / s) * s >= n, "the shard grid covers the array"
    one_chunk = math.prod(chunks) * itemsize
    assert math.prod(shards) * itemsize <= max(target, one_chunk), "byte target respected"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@FAST
@given(
    kind=st.sampled_from(sorted(_OME_KEYS)),
    extra=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in {"ome", *sum(_OME_KEYS.values(), ())}),
        JSON,
        max_size=4,
    ),
    version=st.sampled_from(["0.4", "0.3", None]),
    payload=JSON,
)
def test_migrate_attributes_invariants(
    kind: Any, extra: dict[str, Any], version: str | None, payload: Any
) -> None:
    attrs: dict[str, Any] = dict(extra)
    for key in _OME_KEYS[kind]:
        if key == "multiscales":
            block: Any = [{"axes": [{"name": "x"}], "datasets": [{"path": "0"}], "x": payload}]
            if version:
                block[0]["version"] = version
        elif key in ("plate", "well", "image-label"):
            block = {"x": payload, **({"version": version} if version else {})}
        else:
            block = payload
        attrs[key] = block
    before = json.dumps(attrs, sort_keys=True)
    out = migrate_attributes(attrs, kind)
    assert json.dumps(attrs, sort_keys=True) == before, "the input mapping is not mutated"
    for key, value in extra.items():
        assert out[key] == value, "non-OME keys untouched"
    if kind in ("group", "plate-row"):
        assert "ome" not in out
        return
    ome = out["ome"]
    assert ome["version"] == "0.5"
    assert not set(_OME_KEYS[kind]) & set(out), "OME keys moved under 'ome'"
    for m in ome.get("multiscales", []):
        assert "version" not in m
    for key in ("plate", "well", "image-label"):
        if isinstance(ome.get(key), dict):
            assert "version" not in ome[key]


DTYPES = st.sampled_from(["|u1", "<i2", ">u2", "<i4", ">i8", "<f4", ">f8", "<f8", "|b1", "<c8"])


@st.composite
def small_arrays(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], Any, str, str | None]:
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape)
    dtype = np.dtype(draw(DTYPES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        data = rng.integers(0, 2, size=shape).astype(dtype)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        data = rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), size=shape)
        data = data.astype(dtype)
    else:
        data = (rng.standard_normal(size=shape) * 1e3).astype(dtype)
    fill: Any = 0
    if dtype.kind == "f" and draw(st.booleans()):
        fill = float("nan")
        data.reshape(-1)[:: max(1, data.size // 3)] = np.nan
    order = draw(st.sampled_from(["C", "F"]))
    compressor = draw(st.sampled_from(["blosc-lz4", "zstd", "gzip", None]))
    return data, chunks, fill, order, compressor


def _axes(rank: int) -> str:
    return "tczyx"[5 - rank :]


def _convert_and_compare(
    sample: tuple[np.ndarray, tuple[int, ...], Any, str, str | None], extra: list[str]
) -> None:
    data, chunks, fill, order, compressor = sample
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "in.zarr"
        # OME images have 2 to 5 axes: a rank-1 array rides along as a non-OME child.
        rel = "0" if data.ndim >= 2 else "tables/a"
        if data.ndim >= 2:
            write_group(root, {"multiscales": [multiscales_metadata(_axes(data.ndim), 1)]})
        else:
            write_group(root, {"multiscales": [multiscales_metadata("yx", 1)]})
            write_v2_array(root / "0", np.zeros((3, 2), "u1"), chunks=(2, 2))
            write_group(root / "tables")
        write_v2_array(
            root / rel, data, chunks=chunks, compressor=compressor, fill_value=fill, order=order
        )
        # A chunk missing: its region must read back as the fill value, not as zeros.
        missing = root / rel / "/".join(["0"] * data.ndim)
        expected = data.copy()
        if missing.exists() and data.size > 1:
            missing.unlink()
            expected[tuple(slice(0, c) for c in chunks)] = fill
        before = tree_digest(root)
        out = base / "out.zarr"
        run = run_cli(["convert", "-q", "--verify", "full", str(root), str(out), *extra])
        assert run.status == 0, run.stderr
        assert tree_digest(root) == before
        got = zarr.open_array(str(out / rel), mode="r")[...]
        assert got.shape == data.shape
        assert got.dtype.kind == data.dtype.kind and got.dtype.itemsize == data.dtype.itemsize
        assert np.array_equal(got, expected, equal_nan=data.dtype.kind in "fc")
        figures.record(figures.INPUTS_CHECKED)


@SLOW
@given(sample=small_arrays())
def test_round_trip_copy_path(
    sample: tuple[np.ndarray, tuple[int, ...], Any, str, str | None],
) -> None:
    _convert_and_compare(sample, [])


@SLOW
@given(sample=small_arrays(), shard_size=st.sampled_from(["64", "1KiB", "256MiB"]))
def test_round_trip_reencode_path(
    sample: tuple[np.ndarray, tuple[int, ...], Any, str, str | None], shard_size: str
) -> None:
    _convert_and_compare(sample, ["--output-codec", "zstd", "--shard-size", shard_size])


def test_fuzz_json_readers_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few seconds of the fuzzer (the long run is ``python -m tests.reliability.fuzz_json``)."""
    from tests.reliability import fuzz_json

    assert fuzz_json.fuzz_for(3.0, batch=30, first_seed=7) >= 30

    # The fuzzer can fail: a reader crash that is not a ResaveError propagates out of it.
    def crash(store: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(fuzz_json, "discover", crash)
    with pytest.raises(KeyError):
        fuzz_json.exercise({".zgroup": {"zarr_format": 2}})
