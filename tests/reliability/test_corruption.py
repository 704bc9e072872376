"""Output corruption is detected: ``verify_output(..., "full")`` names the array and the shard.

A small image is converted once per copy path (chunks copied as stored; re-encoded with zstd)
with several shards per array. Each test copies that output, damages it in one way, and checks
that full verification of the existing output reports it — and that the undamaged copy passes
(so the check can fail for the right reason only).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ngff_resave.chunkcodecs import decode_inner, encode_inner
from ngff_resave.locations import LocationSpec
from ngff_resave.shards import build_shard, inner_chunk, read_index
from ngff_resave.verify import OutputCheck, verify_output
from tests.reliability import figures
from tests.reliability.corpus import run_cli, small_image, tree_digest

PATHS = {"copy": (), "reencode": ("--output-codec", "zstd")}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """(input, output) per copy path; level 0 has 4 shards of 4 inner chunks, level 1 one."""
    base = tmp_path_factory.mktemp("corruption")
    root = small_image(base / "in.zarr", shape=(2, 4, 64, 64), chunks=(1, 2, 32, 32))
    made: dict[str, tuple[Path, Path]] = {}
    for name, args in PATHS.items():
        out = base / f"out-{name}.zarr"
        run = run_cli(["convert", "-q", "--shard-size", "16KiB", str(root), str(out), *args])
        assert run.status == 0, run.stderr
        made[name] = (root, out)
    return made


def _victim(out: Path) -> Path:
    """The second shard file of level 0 (not the first: nothing special about position 0)."""
    shards = sorted(p for p in (out / "0" / "c").rglob("*") if p.is_file())
    assert len(shards) >= 3
    return shards[1]


def _inner_count(out: Path) -> int:
    doc = json.loads((out / "0" / "zarr.json").read_text())
    chunks = doc["codecs"][0]["configuration"]["chunk_shape"]
    shards = doc["chunk_grid"]["configuration"]["chunk_shape"]
    n = 1
    for s, c in zip(shards, chunks, strict=True):
        n *= s // c
    return n


def flip_data_byte(out: Path) -> str:
    shard = _victim(out)
    data = bytearray(shard.read_bytes())
    data[len(data) // 4] ^= 0x5A
    shard.write_bytes(bytes(data))
    return shard.relative_to(out / "0").as_posix()


def flip_index_byte(out: Path) -> str:
    shard = _victim(out)
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0x01
    shard.write_bytes(bytes(data))
    return shard.relative_to(out / "0").as_posix()


def truncate_shard(out: Path) -> str:
    shard = _victim(out)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 40])
    return shard.relative_to(out / "0").as_posix()


def delete_shard(out: Path) -> str:
    shard = _victim(out)
    shard.unlink()
    return shard.relative_to(out / "0").as_posix()


def replace_inner_chunk(out: Path) -> str:
    """Swap inner chunk 0 for one that decodes to other values, with a valid index checksum."""
    shard = _victim(out)
    doc = json.loads((out / "0" / "zarr.json").read_text())
    config = doc["codecs"][0]["configuration"]
    codec = config["codecs"][1] if len(config["codecs"]) > 1 else None
    chunk_shape = tuple(config["chunk_shape"])
    data = shard.read_bytes()
    count = _inner_count(out)
    index = read_index(data, count, "test")
    chunks = [inner_chunk(data, index, i) for i in range(count)]
    first = chunks[0]
    assert first is not None
    values = decode_inner(first, codec, np.dtype("<u2"), chunk_shape).copy()
    values.reshape(-1)[7] += 1
    chunks[0] = encode_inner(values, codec)
    rebuilt = build_shard(chunks)
    assert rebuilt is not None
    shard.write_bytes(rebuilt)
    return shard.relative_to(out / "0").as_posix()


def break_group_metadata(out: Path) -> str:
    """The root's axes lose an entry: the multiscales no longer validates as 0.5."""
    doc = json.loads((out / "zarr.json").read_text())
    del doc["attributes"]["ome"]["multiscales"][0]["axes"][0]
    (out / "zarr.json").write_text(json.dumps(doc))
    return "/"


def break_array_metadata(out: Path) -> str:
    """Level 0 claims another data type: still valid Zarr, but not the input's array."""
    doc = json.loads((out / "0" / "zarr.json").read_text())
    doc["data_type"] = "int16"
    (out / "0" / "zarr.json").write_text(json.dumps(doc))
    return "zarr.json"


CORRUPTIONS: dict[str, Callable[[Path], str]] = {
    "flip-data-byte": flip_data_byte,
    "flip-index-byte": flip_index_byte,
    "truncate-shard": truncate_shard,
    "delete-shard": delete_shard,
    "replace-inner-chunk": replace_inner_chunk,
    "break-group-metadata": break_group_metadata,
    "break-array-metadata": break_array_metadata,
}


def _verify(root: Path, out: Path) -> OutputCheck:
    return verify_output(LocationSpec(str(root)), LocationSpec(str(out)), "full")


@pytest.mark.parametrize("path", list(PATHS))
def test_intact_output_verifies(
    converted: dict[str, tuple[Path, Path]], path: str, tmp_path: Path
) -> None:
    root, out = converted[path]
    check = _verify(root, out)
    assert check.ok, check.problems
    assert check.checked_shards == 5  # 4 shards of level 0, 1 of level 1


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_is_detected(
    converted: dict[str, tuple[Path, Path]], path: str, corruption: str, tmp_path: Path
) -> None:
    root, pristine = converted[path]
    out = tmp_path / "out.zarr"
    shutil.copytree(pristine, out)
    input_before = tree_digest(root)

    where = CORRUPTIONS[corruption](out)
    check = _verify(root, out)

    if tree_digest(root) != input_before:
        figures.record(figures.INPUTS_MODIFIED)
    assert tree_digest(root) == input_before
    assert not check.ok, f"{corruption} went unnoticed"
    text = "\n".join(check.problems)
    if corruption.startswith("break-group"):
        assert "not valid OME-Zarr 0.5" in text and "axes" in text, text
    elif corruption.startswith("break-array"):
        assert "array '0'" in text and "data_type" in text, text
    else:
        shard_key = f"0/{where}"
        assert f"array '0', shard {shard_key}" in check.problems[0], text
    figures.record(figures.CORRUPTIONS_DETECTED)
