"""Kill the CLI with SIGKILL at many moments, rerun the same command, get the same bytes.

The CLI runs as a subprocess (``python -m tests.reliability.killer``, which wraps
``LocalStore.write_parts`` to SIGKILL the process at the N-th write: before it, with a torn
temporary file, or right after it). Kill points are chosen from the write sequence of an
uninterrupted run: the run marker, array metadata, the first/middle/last shards, the boundary
between two arrays, the OME-XML copy, the group metadata and the root ``zarr.json`` (after
which only the run marker's removal is left). Two more rounds kill from outside, when the N-th
shard file appears, and one round kills twice before resuming.

After each kill the *same command* is run again (in-process ``main``) and the output must equal
the uninterrupted conversion file for file, byte for byte (``zarr.json``, shards,
``METADATA.ome.xml``), with no temporary file and no run marker left, and the input unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngff_resave.convert import RUN_MARKER
from ngff_resave.locations import TEMP_SUFFIX
from tests.reliability import figures
from tests.reliability.corpus import run_cli, tree_digest
from tests.support.builders import add_label_image, build_bioformats2raw, build_image

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dataset:
    """An input, the CLI options of its conversion, and its uninterrupted output."""

    name: str
    root: Path
    options: tuple[str, ...]
    reference: Path
    writes: tuple[str, ...]  # keys in the order the uninterrupted run wrote them

    def argv(self, out: Path) -> list[str]:
        return ["convert", "-q", "--workers", "1", *self.options, str(self.root), str(out)]


def _killer(dataset: Dataset, out: Path, write: int, phase: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.killer",
            str(write),
            phase,
            "--",
            *dataset.argv(out),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _make(base: Path, name: str, root: Path, options: Sequence[str]) -> Dataset:
    reference = base / f"{name}-reference.zarr"
    partial = Dataset(name, root, tuple(options), reference, ())
    proc = _killer(partial, reference, 0, "after")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    writes = tuple(line for line in stdout.splitlines() if line)
    assert not (reference / RUN_MARKER).exists()
    return Dataset(name, root, tuple(options), reference, writes)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """A bioformats2raw container (chunks copied as stored) and a labelled image (re-encoded)."""
    base = tmp_path_factory.mktemp("resume")
    b2r = build_bioformats2raw(base / "b2r.zarr", series=2)
    image = build_image(
        base / "image.zarr", axes="czyx", shape=(2, 4, 64, 64), chunks=(1, 2, 16, 16)
    )
    add_label_image(
        image, "cells", axes="czyx", shape=(2, 4, 64, 64), chunks=(1, 2, 16, 16), levels=2
    )
    return {
        "b2r": _make(base, "b2r", b2r, ["--shard-size", "4KiB"]),
        "image": _make(base, "image", image, ["--shard-size", "8KiB", "--output-codec", "zstd"]),
    }


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def _is_shard(key: str) -> bool:
    return "/c/" in f"/{key}"


def _kill_point(writes: Sequence[str], where: str) -> int:
    """1-based index of the write named ``where`` in the uninterrupted sequence."""
    shards = [i for i, k in enumerate(writes, 1) if _is_shard(k)]
    arrays = [i for i, k in enumerate(writes, 1) if k.endswith("zarr.json") and i < shards[0]]
    groups = [i for i, k in enumerate(writes, 1) if k.endswith("zarr.json") and i > shards[-1]]
    first_array = writes[arrays[0] - 1].rsplit("/", 1)[0]
    table = {
        "marker": writes.index(RUN_MARKER) + 1,
        "array-metadata": arrays[0],
        "last-array-metadata": arrays[-1],
        "first-shard": shards[0],
        "fifth-shard": shards[4],
        "middle-shard": shards[len(shards) // 2],
        "last-shard": shards[-1],
        "between-arrays": max(i for i in shards if writes[i - 1].startswith(first_array + "/c/")),
        "first-group": groups[0],
        "root-metadata": len(writes),
    }
    if any(k.endswith("METADATA.ome.xml") for k in writes):
        table["ome-xml"] = next(i for i, k in enumerate(writes, 1) if k.endswith(".ome.xml"))
    return table[where]


#: (dataset, kill point, phase) — 12 rounds at distinct moments of the run.
_POINTS = [
    ("b2r", "marker", "before"),
    ("b2r", "marker", "torn"),
    ("b2r", "array-metadata", "after"),
    ("b2r", "first-shard", "torn"),
    ("b2r", "between-arrays", "after"),
    ("b2r", "middle-shard", "before"),
    ("b2r", "last-shard", "after"),
    ("b2r", "ome-xml", "torn"),
    ("b2r", "first-group", "after"),
    ("b2r", "root-metadata", "after"),
    ("image", "middle-shard", "torn"),
    ("image", "root-metadata", "torn"),
]
ROUNDS = [pytest.param(*p, id="-".join(p)) for p in _POINTS]


def _assert_resumed_identically(dataset: Dataset, out: Path, input_before: str) -> None:
    rerun = run_cli(dataset.argv(out))
    assert rerun.status == 0, rerun.stderr
    if tree_digest(dataset.root) != input_before:
        figures.record(figures.INPUTS_MODIFIED)
    assert tree_digest(dataset.root) == input_before
    got, want = _files(out), _files(dataset.reference)
    stray = sorted(k for k in got if TEMP_SUFFIX in k or k.endswith(RUN_MARKER))
    assert not stray, f"stray files after resume: {stray}"
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    differ = sorted(k for k in want if got[k] != want[k])
    assert not differ, f"files differ from the uninterrupted run: {differ[:5]}"
    figures.record(figures.RESUME_IDENTICAL)


@pytest.mark.parametrize(("name", "where", "phase"), ROUNDS)
def test_kill_then_resume_is_identical(
    datasets: dict[str, Dataset], name: str, where: str, phase: str, tmp_path: Path
) -> None:
    dataset = datasets[name]
    out = tmp_path / "out.zarr"
    input_before = tree_digest(dataset.root)
    write = _kill_point(dataset.writes, where)

    proc = _killer(dataset, out, write, phase)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"not killed at write {write}: {stderr}"
    assert not (out / "zarr.json").exists() or (out / RUN_MARKER).exists(), (
        "a killed run looks complete"
    )
    _assert_resumed_identically(dataset, out, input_before)


def _count_shards(out: Path) -> int:
    count = 0
    for _dirpath, _dirs, files in os.walk(out):
        count += sum(1 for f in files if TEMP_SUFFIX not in f and not f.endswith(".json"))
    return count


@pytest.mark.parametrize("nth", [12])
def test_external_kill_then_resume_is_identical(
    datasets: dict[str, Dataset], nth: int, tmp_path: Path
) -> None:
    """SIGKILL from outside as soon as the ``nth`` shard file shows up (timing not controlled)."""
    dataset = datasets["b2r"]
    out = tmp_path / "out.zarr"
    input_before = tree_digest(dataset.root)
    proc = _killer(dataset, out, -1, "after")  # never kills itself
    deadline = time.monotonic() + 120
    while proc.poll() is None and _count_shards(out) < nth and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.communicate(timeout=60)
    assert _count_shards(out) >= nth
    _assert_resumed_identically(dataset, out, input_before)


def test_killed_twice_then_resumed(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    """A resumed run that is killed again still resumes to the same bytes."""
    dataset = datasets["b2r"]
    out = tmp_path / "out.zarr"
    input_before = tree_digest(dataset.root)
    for where in ("fifth-shard", "middle-shard"):
        # The second run skips existing shards, so its N-th write is a later shard: count
        # from what the first run left (the marker and array metadata are written again).
        proc = _killer(dataset, out, _kill_point(dataset.writes, where), "torn")
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL
    _assert_resumed_identically(dataset, out, input_before)
