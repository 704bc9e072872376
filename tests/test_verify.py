"""Data verification (:mod:`ngff_resave.verify`): a correct output passes; a damaged one is
caught, and the problem names the array and the shard.

One small 0.4 image is converted once per copy path — chunks copied as stored (the fast
path, the default) and re-encoded (``--output-codec blosc-zstd``) — into shards of 8 inner
chunks. Level 0 (5×40×36, chunks 2×16×16, shards 4×32×32) has a 2×2×2 shard grid with edge
shards whose inner chunks reach beyond the array; before the conversion, every source chunk
of shard ``(1, 0, 0)`` is removed (so that shard is rightly never written) and one chunk of
shard ``(0, 0, 0)`` (so that shard misses an inner chunk). Each damaging test copies the
pristine output and breaks it after the conversion.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from ngff_resave.cli import main
from ngff_resave.copying import CopyTask, shard_indices
from ngff_resave.discover import discover
from ngff_resave.locations import LocalStore, LocationSpec
from ngff_resave.planning import ArrayPlan, parse_codec
from ngff_resave.shards import build_shard, inner_chunk, read_index
from ngff_resave.verify import (
    SAMPLE_CHUNKS,
    SAMPLE_SHARDS,
    ShardProblem,
    sample_shards,
    verification_tasks,
    verify_data,
    verify_output,
    verify_shard,
)
from tests.support import builders, checks
from tests.support.gapped import PATH_TAKEN, PLANS, build_gapped_image, convert_each_way

#: Level-0 source chunks removed before converting: all of shard (1, 0, 0), one of (0, 0, 0).
REMOVED_CHUNKS = ("2/0/0", "2/0/1", "2/1/0", "2/1/1", "0/0/1")
ABSENT_SHARD = "0/c/1/0/0"
#: The damaged shard: z 0..4, y 32..40 (its y inner chunk 3 lies beyond the array), x 0..32.
VICTIM = "0/c/0/1/0"
#: Inner chunks per shard: (4, 32, 32) / (2, 16, 16).
INNER_PER_SHARD = 8
#: Level 0: 8 shards; level 1 (3×20×18): 1 shard.
FULL_SHARDS = 9
#: Level 0: sample_shards((2, 2, 2)) picks 5 of 8; level 1: its only shard.
SAMPLED_SHARDS = 6


@dataclasses.dataclass(frozen=True)
class Converted:
    """A 0.4 input, its 0.5 output and the plans the conversion used."""

    src: Path
    out: Path
    plans: list[ArrayPlan]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    base = tmp_path_factory.mktemp("verify")
    src = build_gapped_image(base / "in.zarr", REMOVED_CHUNKS, seed=3)
    made: dict[str, Converted] = {}
    for name, (out, _, result) in convert_each_way(src, base, "none").items():
        assert [p.path_taken for p in result.plans] == [PATH_TAKEN[name]] * 2
        made[name] = Converted(src, out, result.plans)
    return made


def _copy(converted: Converted, tmp_path: Path) -> Converted:
    """A private copy of the output, free to damage."""
    out = tmp_path / "out.zarr"
    shutil.copytree(converted.out, out)
    return Converted(converted.src, out, converted.plans)


def _templates(c: Converted) -> list[CopyTask]:
    """One task per array, as the converter hands them to :func:`verify_data`."""
    source, dest = LocalStore(str(c.src)), LocalStore(str(c.out))
    nodes = {n.path: n for n in discover(source).arrays}
    return [
        CopyTask(source, dest, p.path, nodes[p.path].meta, p, (0,) * len(p.shape)) for p in c.plans
    ]


def _task(c: Converted, shard: tuple[int, ...], path: str = "0") -> CopyTask:
    template = next(t for t in _templates(c) if t.path == path)
    return dataclasses.replace(template, shard=shard)


# --------------------------------------------------------------------------- damages


def flip_chunk_byte(out: Path) -> None:
    """One byte in the middle of the shard's first stored inner chunk (index intact)."""
    shard = out / VICTIM
    data = bytearray(shard.read_bytes())
    index = read_index(bytes(data), INNER_PER_SHARD, "test")
    offset, nbytes = (int(v) for v in index[0])
    data[offset + nbytes // 2] ^= 0x5A
    shard.write_bytes(bytes(data))


def flip_index_byte(out: Path) -> None:
    shard = out / VICTIM
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0x01
    shard.write_bytes(bytes(data))


def truncate_tail(out: Path) -> None:
    shard = out / VICTIM
    shard.write_bytes(shard.read_bytes()[:-40])


def truncate_below_index(out: Path) -> None:
    shard = out / VICTIM
    shard.write_bytes(shard.read_bytes()[:50])  # the index alone is 8 × 16 + 4 bytes


def drop_inner_chunk(out: Path) -> None:
    """The shard's first stored inner chunk left out, with a valid index (reads as fill)."""
    shard = out / VICTIM
    data = shard.read_bytes()
    index = read_index(data, INNER_PER_SHARD, "test")
    chunks = [inner_chunk(data, index, i) for i in range(INNER_PER_SHARD)]
    assert chunks[0] is not None
    chunks[0] = None
    rebuilt = build_shard(chunks)
    assert rebuilt is not None
    shard.write_bytes(rebuilt)


def delete_shard(out: Path) -> None:
    (out / VICTIM).unlink()


#: Inner chunk (1, 2, 1) of the victim: z 2..4, y 32..40 (an edge chunk), x 16..32.
REWRITTEN = (slice(2, 4), slice(32, 40), slice(16, 32))


def rewrite_pixels(out: Path) -> None:
    """New pixels in one inner chunk, written by zarr-python: a well-formed, valid shard."""
    array = zarr.open_array(str(out / "0"), mode="r+")
    before = array[REWRITTEN]
    array[REWRITTEN] = before + 1
    np.testing.assert_array_equal(array[REWRITTEN], before + 1)  # still readable


DAMAGES: list[tuple[str, Callable[[Path], None], dict[str, str]]] = [
    (
        "flip-chunk-byte",
        flip_chunk_byte,
        {
            "copy": "inner chunk [0, 2, 0] differs from the source chunk's stored bytes",
            "reencode": "inner chunk [0, 2, 0]",
        },
    ),
    (
        "flip-index-byte",
        flip_index_byte,
        {"copy": "checksum mismatch", "reencode": "checksum mismatch"},
    ),
    (
        "truncate-tail",
        truncate_tail,
        {"copy": "checksum mismatch", "reencode": "checksum mismatch"},
    ),
    (
        "truncate-below-index",
        truncate_below_index,
        {"copy": "shorter than its index", "reencode": "shorter than its index"},
    ),
    (
        "drop-inner-chunk",
        drop_inner_chunk,
        {
            "copy": "inner chunk [0, 2, 0] differs from the source chunk's stored bytes",
            "reencode": "inner chunk [0, 2, 0] is missing",
        },
    ),
    (
        "delete-shard",
        delete_shard,
        {
            "copy": "shard is missing but the input has data",
            "reencode": "shard is missing but the input has data",
        },
    ),
    (
        "rewrite-pixels",
        rewrite_pixels,
        {
            "copy": "inner chunk [1, 2, 1] differs from the source chunk's stored bytes",
            "reencode": "inner chunk [1, 2, 1]: 256 values differ from the input",
        },
    ),
]


# --------------------------------------------------------------------------- verify_data


@pytest.mark.parametrize("path", list(PLANS))
def test_correct_output_has_no_problems(converted: dict[str, Converted], path: str) -> None:
    c = converted[path]
    assert not (c.out / ABSENT_SHARD).exists(), "the input has no data there: no shard"
    assert verify_data(_templates(c), "full", 1) == (FULL_SHARDS, [])
    assert verify_data(_templates(c), "sample", 1) == (SAMPLED_SHARDS, [])
    for task in verification_tasks(_templates(c), "full"):
        assert verify_shard(task) is None, task.shard_key
        assert verify_shard(task, SAMPLE_CHUNKS) is None, task.shard_key
        assert verify_shard(task, 1) is None, task.shard_key


@pytest.mark.parametrize("path", list(PLANS))
@pytest.mark.parametrize(
    ("damage", "says"), [(d, s) for _, d, s in DAMAGES], ids=[n for n, _, _ in DAMAGES]
)
def test_damaged_shard_is_found_and_named(
    converted: dict[str, Converted],
    tmp_path: Path,
    path: str,
    damage: Callable[[Path], None],
    says: dict[str, str],
) -> None:
    c = _copy(converted[path], tmp_path)
    damage(c.out)
    checked, problems = verify_data(_templates(c), "full", 1)
    assert checked == FULL_SHARDS
    assert len(problems) == 1, problems  # only the damaged shard, no collateral
    problem = problems[0]
    assert (problem.path, problem.shard_key) == ("0", VICTIM)
    assert str(problem).startswith(f"array '0', shard {VICTIM}: ")
    assert says[path] in problem.message, problem.message
    # The same problem straight from verify_shard; a neighbouring shard is still fine.
    assert verify_shard(_task(c, (0, 1, 0))) == problem
    assert verify_shard(_task(c, (0, 1, 1))) is None


def test_sample_mode_checks_only_the_sampled_shards(
    converted: dict[str, Converted], tmp_path: Path
) -> None:
    """``sample`` checks sample_shards' picks; a shard between them is left to ``full``."""
    c = _copy(converted["copy"], tmp_path)
    (c.out / "0/c/0/0/1").unlink()  # linear position 1 of 8: not sampled
    assert verify_data(_templates(c), "sample", 1) == (SAMPLED_SHARDS, [])
    _, problems = verify_data(_templates(c), "full", 1)
    assert [p.shard_key for p in problems] == ["0/c/0/0/1"]
    (c.out / "0/c/1/1/1").unlink()  # the last shard: always sampled
    _, problems = verify_data(_templates(c), "sample", 1)
    assert [p.shard_key for p in problems] == ["0/c/1/1/1"]


#: Shard (0, 0, 0) lies inside the array; its inner chunk 1 is missing in the input too.
INNER = {
    2: (slice(0, 2), slice(16, 32), slice(0, 16)),
    7: (slice(2, 4), slice(16, 32), slice(16, 32)),
}


@pytest.mark.parametrize("path", list(PLANS))
@pytest.mark.parametrize(
    ("position", "found_by_two"),
    [(2, False), (7, True)],
    ids=["between-picks", "last-pick"],
)
def test_sample_chunks_compares_spread_inner_chunks(
    converted: dict[str, Converted], tmp_path: Path, path: str, position: int, found_by_two: bool
) -> None:
    """Two of eight inner chunks are the first and the last; every chunk without sampling."""
    c = _copy(converted[path], tmp_path)
    array = zarr.open_array(str(c.out / "0"), mode="r+")
    array[INNER[position]] = array[INNER[position]] + 1
    task = _task(c, (0, 0, 0))
    assert verify_shard(task, 8) is not None
    assert verify_shard(task) is not None
    sampled = verify_shard(task, 2)
    assert (sampled is not None) == found_by_two, sampled


@pytest.mark.parametrize("path", list(PLANS))
def test_sample_chunks_of_an_edge_shard_are_spread_inside_the_array(
    converted: dict[str, Converted], tmp_path: Path, path: str
) -> None:
    """Shard (0, 1, 0) reaches beyond the array in y: of its 8 inner chunks only 4 hold data.
    A sample of two compares the first and the last of those (the last one inside is the
    z 2..4, y 32..40, x 16..32 chunk), not a chunk beyond the edge."""
    c = _copy(converted[path], tmp_path)
    array = zarr.open_array(str(c.out / "0"), mode="r+")
    last_inside = (slice(2, 4), slice(32, 40), slice(16, 32))
    array[last_inside] = array[last_inside] + 1
    problem = verify_shard(_task(c, (0, 1, 0)), 2)
    assert problem is not None and "[1, 2, 1]" in problem.message, problem


def test_fast_path_decodes_a_copied_chunk(converted: dict[str, Converted]) -> None:
    """Copied bytes equal the source's, but a codec that cannot decode them is still caught."""
    task = _task(converted["copy"], (0, 0, 0))
    assert verify_shard(task) is None
    wrong = dataclasses.replace(task.plan, codec=parse_codec("zstd"))
    problem = verify_shard(dataclasses.replace(task, plan=wrong))
    assert problem is not None and "inner chunk [0, 0, 0] cannot be decoded" in problem.message


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("copy", "inner chunk [0, 0, 0] differs from the source chunk's stored bytes"),
        ("reencode", "in.zarr/0/0/0/0: blosc chunk header says"),
    ],
    ids=["copy", "reencode"],
)
def test_truncated_input_chunk_is_a_problem_not_a_crash(
    converted: dict[str, Converted], tmp_path: Path, path: str, says: str
) -> None:
    """An input chunk damaged after the conversion: the shard made from it is named."""
    src = tmp_path / "in.zarr"
    shutil.copytree(converted[path].src, src)
    chunk = src / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-8])
    c = Converted(src, converted[path].out, converted[path].plans)
    checked, problems = verify_data(_templates(c), "full", 1)
    assert checked == FULL_SHARDS
    assert [(p.path, p.shard_key) for p in problems] == [("0", "0/c/0/0/0")]
    assert says in problems[0].message, problems[0].message


def test_mode_none_checks_nothing(converted: dict[str, Converted], tmp_path: Path) -> None:
    c = _copy(converted["copy"], tmp_path)
    delete_shard(c.out)
    seen: list[CopyTask] = []
    assert verify_data(_templates(c), "none", 1, seen.append) == (0, [])
    assert seen == []


@pytest.mark.parametrize("workers", [1, 2])
def test_every_checked_shard_is_reported_once(
    converted: dict[str, Converted], tmp_path: Path, workers: int
) -> None:
    c = _copy(converted["reencode"], tmp_path)
    delete_shard(c.out)
    level1 = zarr.open_array(str(c.out / "1"), mode="r+")
    level1[0, 0, 0] = level1[0, 0, 0] + 1
    seen: list[str] = []
    checked, problems = verify_data(
        _templates(c), "full", workers, lambda task: seen.append(task.shard_key)
    )
    expected = [t.shard_key for t in verification_tasks(_templates(c), "full")]
    assert checked == len(seen) == FULL_SHARDS
    assert sorted(seen) == sorted(expected) and len(set(seen)) == FULL_SHARDS
    assert sorted((p.path, p.shard_key) for p in problems) == [("0", VICTIM), ("1", "1/c/0/0/0")]


# --------------------------------------------------------------------------- which shards


@pytest.mark.parametrize("mode", ["none", "Full", "samples", ""])
def test_verification_tasks_refuse_other_modes(converted: dict[str, Converted], mode: str) -> None:
    """A typo must not silently verify a sample (``none`` is decided by the caller)."""
    with pytest.raises(ValueError, match="verification mode"):
        next(verification_tasks(_templates(converted["copy"]), mode))


def test_verification_tasks_per_mode(converted: dict[str, Converted]) -> None:
    templates = _templates(converted["copy"])
    level0 = [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1)]
    expected = {
        "sample": [("0", s) for s in level0] + [("1", (0, 0, 0))],
        "full": [("0", s) for s in shard_indices(templates[0].plan)] + [("1", (0, 0, 0))],
    }
    for mode, positions in expected.items():
        tasks = list(verification_tasks(templates, mode))
        assert [(t.path, t.shard) for t in tasks] == positions, mode
        for task in tasks:
            template = templates[0] if task.path == "0" else templates[1]
            assert (task.source, task.dest, task.meta, task.plan) == (
                template.source,
                template.dest,
                template.meta,
                template.plan,
            )
    assert len(expected["full"]) == FULL_SHARDS and len(expected["sample"]) == SAMPLED_SHARDS


@pytest.mark.parametrize(
    ("grid", "count", "expected"),
    [
        ((10,), 5, [(0,), (2,), (4,), (7,), (9,)]),
        ((2, 2, 2), 5, [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1)]),
        ((3,), 5, [(0,), (1,), (2,)]),  # fewer shards than the sample: all of them
        ((1, 1), 5, [(0, 0)]),
        ((4, 0), 5, []),  # an empty array has no shards
        ((4, 6), 2, [(0, 0), (3, 5)]),
        ((4, 6), 1, [(0, 0)]),
    ],
    ids=["1d", "cube", "few", "single", "empty", "two", "one"],
)
def test_sample_shards_examples(
    grid: tuple[int, ...], count: int, expected: list[tuple[int, ...]]
) -> None:
    assert sample_shards(grid, count) == expected


@settings(max_examples=300, deadline=None)
@given(
    grid=st.lists(st.integers(0, 7), min_size=1, max_size=4).map(tuple),
    count=st.integers(0, 12),
)
def test_sample_shards_properties(grid: tuple[int, ...], count: int) -> None:
    picks = sample_shards(grid, count)
    total = int(np.prod(grid))
    assert len(picks) == min(count, total)  # the count is respected, no duplicates
    assert all(0 <= i < g for p in picks for i, g in zip(p, grid, strict=True))
    linear = [int(np.ravel_multi_index(p, grid)) for p in picks]
    assert linear == sorted(set(linear))
    if picks and count >= 2:
        assert picks[0] == (0,) * len(grid)  # the first corner…
        assert picks[-1] == tuple(g - 1 for g in grid)  # …and the last
        step = (total - 1) / (count - 1)
        assert all(b - a <= step + 1 for a, b in itertools.pairwise(linear))  # evenly spread
    assert sample_shards(grid, count) == picks


def test_default_sample_is_five_shards() -> None:
    assert SAMPLE_SHARDS == 5
    assert len(sample_shards((100, 100))) == 5


# --------------------------------------------------------------------------- verify_output


def _verify_output(c: Converted, mode: str = "full") -> tuple[int, list[str]]:
    check = verify_output(LocationSpec(str(c.src)), LocationSpec(str(c.out)), mode, 1)
    assert check.ok == (not check.problems)
    return check.checked_shards, check.problems


@pytest.mark.parametrize("path", list(PLANS))
def test_verify_output_passes_a_correct_output_read_only(
    converted: dict[str, Converted], path: str
) -> None:
    c = converted[path]
    before = builders.hash_tree(c.src), builders.hash_tree(c.out)
    assert _verify_output(c, "full") == (FULL_SHARDS, [])
    assert _verify_output(c, "sample") == (SAMPLED_SHARDS, [])
    assert (builders.hash_tree(c.src), builders.hash_tree(c.out)) == before


@pytest.mark.parametrize("path", list(PLANS))
@pytest.mark.parametrize(
    "damage", [delete_shard, rewrite_pixels, flip_chunk_byte], ids=["delete", "rewrite", "flip"]
)
def test_verify_output_names_a_damaged_shard(
    converted: dict[str, Converted],
    tmp_path: Path,
    path: str,
    damage: Callable[[Path], None],
) -> None:
    c = _copy(converted[path], tmp_path)
    damage(c.out)
    checked, problems = _verify_output(c)
    assert checked == FULL_SHARDS
    assert len(problems) == 1 and problems[0].startswith(f"array '0', shard {VICTIM}: "), problems


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def rename_creator(out: Path) -> None:
    """Still valid 0.5, but not what the input's attributes migrate to."""
    _edit_json(out / "zarr.json", lambda d: d["attributes"]["_creator"].update(name="x"))


def drop_an_axis(out: Path) -> None:
    """The image loses an axis: no longer valid OME-Zarr 0.5."""
    _edit_json(out / "zarr.json", lambda d: d["attributes"]["ome"]["multiscales"][0]["axes"].pop())


def rename_dimensions(out: Path) -> None:
    _edit_json(out / "1" / "zarr.json", lambda d: d.update(dimension_names=["a", "b", "c"]))


def drop_array_metadata(out: Path) -> None:
    (out / "1" / "zarr.json").unlink()


def unshard_array(out: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["codecs"] = doc["codecs"][0]["configuration"]["codecs"]

    _edit_json(out / "1" / "zarr.json", edit)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (rename_creator, "group '/': "),
        (drop_an_axis, "/ (image): not valid OME-Zarr 0.5: "),
        (rename_dimensions, "array '1': "),
        (drop_array_metadata, "array '1': "),
        (unshard_array, "array '1': "),
    ],
    ids=[
        "group-attributes",
        "invalid-group",
        "dimension-names",
        "missing-zarr-json",
        "not-sharded",
    ],
)
def test_verify_output_compares_metadata_with_the_input(
    converted: dict[str, Converted], tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    c = _copy(converted["copy"], tmp_path)
    damage(c.out)
    _, problems = _verify_output(c)
    assert any(p.startswith(says) for p in problems), problems
    if says.startswith("array"):
        assert all("array '0'" not in p for p in problems), problems


def test_verify_output_details_of_array_metadata(
    converted: dict[str, Converted], tmp_path: Path
) -> None:
    """Each problem says what differs: the key of zarr.json, or that it is missing."""
    c = _copy(converted["copy"], tmp_path)
    rename_dimensions(c.out)
    _, problems = _verify_output(c)
    assert any("differs from the input's metadata (dimension_names)" in p for p in problems)
    drop_array_metadata(c.out)
    _, problems = _verify_output(c)
    assert any(p.startswith("array '1': ") and "is missing" in p for p in problems), problems


# --------------------------------------------------------------------------- the command


def test_verify_command(
    converted: dict[str, Converted], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = _copy(converted["reencode"], tmp_path)
    args = ["verify", str(c.src), str(c.out), "--workers", "1"]
    assert main(args) == 0
    assert f"verified {FULL_SHARDS} shards: output equals input" in capsys.readouterr().err
    assert main([*args, "--verify", "sample"]) == 0
    assert f"verified {SAMPLED_SHARDS} shards" in capsys.readouterr().err
    rewrite_pixels(c.out)
    assert main(args) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert f"array '0', shard {VICTIM}: inner chunk [1, 2, 1]" in line, line


def test_shard_problem_text() -> None:
    problem = ShardProblem("labels/cells/0", "labels/cells/0/c/0/1", "shard is missing")
    assert str(problem) == "array 'labels/cells/0', shard labels/cells/0/c/0/1: shard is missing"
