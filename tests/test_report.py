"""The run report (:mod:`ngff_resave.report`): what a real conversion did and cost.

Counts and bytes are checked against the files on disk (source chunks read, shards written),
not against the converter's own bookkeeping; times against each other. The JSON report is
written atomically: the target is whole or absent, and no temporary file stays behind.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from ngff_resave import __version__
from ngff_resave.cli import main
from ngff_resave.convert import (
    RUN_MARKER,
    ConvertOptions,
    ConvertResult,
    convert,
    run_marker_document,
)
from ngff_resave.copying import ShardOutcome
from ngff_resave.locations import LocationSpec
from ngff_resave.planning import PATH_COPY, PATH_REENCODE, PlanOptions, parse_codec
from ngff_resave.report import (
    ArrayStats,
    MemorySampler,
    RunReport,
    write_json_atomically,
)
from tests.support import builders
from tests.support.gapped import (
    PATH_TAKEN,
    PLANS,
    build_gapped_image,
    convert_each_way,
    convert_options,
)

#: Every level-0 source chunk of shard (1, 0, 0): that shard has nothing to write.
REMOVED_CHUNKS = ("2/0/0", "2/0/1", "2/1/0", "2/1/1")
#: Copy path -> the reason the report gives for it.
REASONS = {
    "copy": "source chunks are valid inner chunks; copied as stored",
    "reencode": "an output codec other than the source's was asked",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True)
class Run:
    src: Path
    out: Path
    options: ConvertOptions
    result: ConvertResult


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("report")
    src = build_gapped_image(base / "in.zarr", REMOVED_CHUNKS, seed=4)
    return {
        name: Run(src, out, options, result)
        for name, (out, options, result) in convert_each_way(src, base, "sample").items()
    }


def _files(directory: Path) -> list[Path]:
    """Data files below ``directory`` (chunks or shards; no dot-files such as .zarray)."""
    return [p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")]


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


# --------------------------------------------------------------------------- after a conversion


@pytest.mark.parametrize("path", list(PLANS))
def test_array_stats_match_the_files_on_disk(runs: dict[str, Run], path: str) -> None:
    run = runs[path]
    report = run.result.report
    path_taken, reason = PATH_TAKEN[path], REASONS[path]
    assert list(report.arrays) == [p.path for p in run.result.plans] == ["0", "1"]
    for plan in run.result.plans:
        stats = report.arrays[plan.path]
        shards = _files(run.out / plan.path / "c")
        assert (stats.path, stats.path_taken, stats.reason) == (plan.path, path_taken, reason)
        assert stats.shards_total == plan.shard_count
        assert stats.shards_written == len(shards)
        assert stats.shards_empty == plan.shard_count - len(shards)
        assert stats.shards_skipped_existing == 0
        assert stats.bytes_read == sum(p.stat().st_size for p in _files(run.src / plan.path))
        assert stats.bytes_written == sum(p.stat().st_size for p in shards)
        assert stats.raw_bytes == math.prod(plan.shape) * 2  # uint16 pixels, every shard
    assert report.arrays["0"].shards_empty == 1  # shard (1, 0, 0): no source chunk at all


@pytest.mark.parametrize("path", list(PLANS))
def test_run_fields(runs: dict[str, Run], path: str) -> None:
    run = runs[path]
    report = run.result.report
    assert report.software_version == __version__
    assert (report.input_url, report.output_url) == (str(run.src), str(run.out))
    assert ISO_UTC.match(report.started_at) and ISO_UTC.match(report.ended_at)
    assert report.started_at <= report.ended_at
    assert (report.workers, report.verification, report.verified_shards) == (1, "sample", 6)
    assert (report.groups_written, report.files_copied, report.warnings) == (1, 0, [])


@pytest.mark.parametrize("path", list(PLANS))
def test_seconds_and_memory_are_consistent(runs: dict[str, Run], path: str) -> None:
    report = runs[path].result.report
    assert report.copy_seconds > 0 and report.verify_seconds > 0 and report.cpu_seconds >= 0
    assert report.wall_seconds >= report.copy_seconds + report.verify_seconds
    assert report.peak_rss_bytes > 50 * 2**20  # an interpreter with numpy and zarr loaded
    for stats in report.arrays.values():
        # Array times come from the tasks (time.time), the copy phase from time.monotonic.
        assert 0 < stats.wall_seconds <= report.copy_seconds + 0.05
        assert stats.cpu_seconds >= 0
        assert 0 < stats.peak_rss_bytes <= report.peak_rss_bytes


@pytest.mark.parametrize("path", list(PLANS))
def test_totals_and_json(runs: dict[str, Run], path: str) -> None:
    report = runs[path].result.report
    stats = list(report.arrays.values())
    totals = report.totals()
    for key in ("shards_written", "shards_empty", "bytes_read", "bytes_written", "raw_bytes"):
        assert totals[key] == sum(getattr(s, key) for s in stats), key
    fast = 2 if path == "copy" else 0
    assert (totals["arrays"], totals["fast_path_arrays"], totals["reencoded_arrays"]) == (
        2,
        fast,
        2 - fast,
    )
    assert totals["copy_throughput_mb_s"] == round(
        totals["raw_bytes"] / report.copy_seconds / 1e6, 1
    )
    doc = json.loads(json.dumps(report.to_json(), allow_nan=False))  # strict JSON
    assert doc["total"] == totals
    assert doc["software"] == {"name": "ngff-resave", "version": __version__}
    for entry, array in zip(doc["arrays"], stats, strict=True):
        assert "first_start" not in entry and "last_end" not in entry
        assert entry["path"] == array.path and entry["reason"] == array.reason
        assert entry["wall_seconds"] == round(array.wall_seconds, 3)
        assert entry["throughput_mb_s"] == round(array.raw_bytes / array.wall_seconds / 1e6, 1)


@pytest.mark.parametrize("path", list(PLANS))
def test_summary_after_a_conversion(runs: dict[str, Run], path: str) -> None:
    report = runs[path].result.report
    totals = report.totals()
    kinds = (
        "2 copied as stored, 0 re-encoded" if path == "copy" else "0 copied as stored, 2 re-encoded"
    )
    # The peak is this process's RSS: under the whole suite it can pass 1 GiB.
    pattern = (
        rf"converted 2 arrays \({kinds}\) and 1 groups: 8 shards, "
        rf"{_kib(5 * 40 * 36 * 2 + 3 * 20 * 18 * 2)} of pixels, "
        rf"read {_kib(totals['bytes_read'])}, wrote {_kib(totals['bytes_written'])} in "
        r"\d+\.\d s \(copy \d+\.\d s at \d+\.\d MB/s, \d+\.\d CPU s, peak \d+\.\d [KMG]iB RSS\); "
        r"verification: sample \(\d+\.\d s\)"
    )
    assert re.fullmatch(pattern, report.summary()), report.summary()


def test_resumed_run_counts_the_shards_already_done(runs: dict[str, Run], tmp_path: Path) -> None:
    """A rerun after a crash keeps the shards written whole; the report says how many."""
    first = runs["copy"]
    out = tmp_path / "out.zarr"
    shutil.copytree(first.out, out)
    assert first.result.details is not None
    (out / RUN_MARKER).write_bytes(run_marker_document(first.result.details))  # "crashed"
    victim = out / "0" / "c" / "0" / "1" / "0"
    original = victim.read_bytes()
    victim.unlink()

    report = convert(replace(first.options, output=LocationSpec(str(out)))).report

    assert victim.read_bytes() == original
    level0, level1 = report.arrays["0"], report.arrays["1"]
    assert (level0.shards_written, level0.shards_skipped_existing, level0.shards_empty) == (1, 6, 1)
    assert (level1.shards_written, level1.shards_skipped_existing) == (0, 1)
    # Only the chunks of the rewritten shard were read: z chunks 0-1, y chunk 2, x chunks 0-1.
    keys = ("0/2/0", "0/2/1", "1/2/0", "1/2/1")
    assert level0.bytes_read == sum((first.src / "0" / k).stat().st_size for k in keys)
    assert level0.bytes_written == len(original)
    assert (level1.bytes_read, level1.bytes_written) == (0, 0)
    assert ": 1 shards, 7 already done, " in report.summary()


def test_reencode_cpu_seconds_include_the_encoding(tmp_path: Path) -> None:
    """Compression dominates this run (gzip level 9): the array's CPU must show it."""
    src = builders.build_image(
        tmp_path / "in.zarr", axes="yx", shape=(1024, 2048), chunks=(256, 256), levels=1
    )
    plan = PlanOptions(codec=parse_codec("gzip:9"), codec_given=True)
    options = convert_options(src, tmp_path / "out.zarr", plan, "none")
    report = convert(options).report
    assert report.arrays["0"].path_taken == PATH_REENCODE
    assert report.arrays["0"].cpu_seconds >= 0.5 * report.cpu_seconds


def test_cli_writes_the_report_it_summarizes(
    runs: dict[str, Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "reports" / "run.json"
    out = tmp_path / "out.zarr"
    args = ["convert", str(runs["copy"].src), str(out), "-q", "--workers", "1"]
    assert main([*args, "--output-shards", "4,32,32", "--report", str(target)]) == 0
    doc = json.loads(target.read_text())
    assert os.listdir(target.parent) == ["run.json"]
    shards = _files(out / "0" / "c") + _files(out / "1" / "c")
    assert doc["total"]["shards_written"] == len(shards) == 8
    assert doc["total"]["bytes_written"] == sum(p.stat().st_size for p in shards)
    assert [a["path"] for a in doc["arrays"]] == ["0", "1"]
    err = capsys.readouterr().err
    assert f"wrote {_kib(doc['total']['bytes_written'])} in" in err


# --------------------------------------------------------------------------- RunReport alone


def _outcome(
    kind: str, started: float, seconds: float, read: int = 0, written: int = 0
) -> ShardOutcome:
    return ShardOutcome(
        "a",
        "a/c/0",
        read,
        written,
        100,
        kind == "written",
        kind == "skipped",
        started,
        seconds,
        seconds / 2,
    )


@pytest.mark.parametrize(
    ("outcomes", "peaks", "expected"),
    [
        ([], [], (0, 0, 0, 0, 0, 0, 0.0, 0)),
        (
            [_outcome("written", 10.0, 2.0, 30, 40)],
            [7],
            (1, 0, 0, 30, 40, 100, 2.0, 7),
        ),
        (
            # Recorded out of order: the span is first start .. last end, whatever the order.
            [
                _outcome("skipped", 20.0, 0.5),
                _outcome("written", 10.0, 2.0, 30, 40),
                _outcome("empty", 5.0, 1.0, 0, 0),
                _outcome("written", 11.0, 1.0, 5, 6),
            ],
            [300, 100, 200, 50],
            (2, 1, 1, 35, 46, 400, 15.5, 300),
        ),
    ],
    ids=["nothing", "one", "mixed-out-of-order"],
)
def test_record_sums_outcomes(
    outcomes: list[ShardOutcome], peaks: list[int], expected: tuple[Any, ...]
) -> None:
    report = RunReport("1", "in", "out", "2024-01-01T00:00:00Z", 1)
    report.arrays["a"] = ArrayStats("a", PATH_COPY, "why", len(outcomes))
    for outcome, peak in zip(outcomes, peaks, strict=True):
        report.record(outcome, peak)
    s = report.arrays["a"]
    got = (
        s.shards_written,
        s.shards_empty,
        s.shards_skipped_existing,
        s.bytes_read,
        s.bytes_written,
        s.raw_bytes,
        s.wall_seconds,
        s.peak_rss_bytes,
    )
    assert got == expected
    assert s.cpu_seconds == pytest.approx(sum(o.cpu_seconds for o in outcomes))


def _report(raw: int, *, skipped: int = 0, verification: str = "full") -> RunReport:
    report = RunReport("1", "in", "out", "2024-01-01T00:00:00Z", 2, verification=verification)
    report.arrays["a"] = ArrayStats(
        "a", PATH_COPY, "why", 4, shards_written=3, shards_skipped_existing=skipped, raw_bytes=raw
    )
    report.wall_seconds, report.copy_seconds, report.verify_seconds = 4.0, 2.0, 1.25
    return report


@pytest.mark.parametrize(
    ("report", "says"),
    [
        (_report(1023), "3 shards, 1023 B of pixels"),
        (_report(1024), "3 shards, 1.0 KiB of pixels"),
        (_report(1536), "1.5 KiB of pixels"),
        (_report(5 * 2**30), "5.0 GiB of pixels"),
        (_report(2**50), "1024.0 TiB of pixels"),
        (_report(2**21, skipped=1), "3 shards, 1 already done, 2.0 MiB of pixels"),
        (_report(4_000_000), "copy 2.0 s at 2.0 MB/s"),
        (_report(0), "verification: full (1.2 s)"),
        (_report(0, verification="none"), "verification: none"),
    ],
    ids=["bytes", "kib", "kib-half", "gib", "tib", "already-done", "rate", "verify", "none"],
)
def test_summary_text(report: RunReport, says: str) -> None:
    text = report.summary()
    assert says in text, text
    assert ("already done" in text) == (report.totals()["shards_skipped_existing"] > 0)
    assert text.endswith(")") == (report.verification != "none")


# --------------------------------------------------------------------------- writing the JSON


DOCUMENT = {"total": {"arrays": 2, "seconds": 1.5}, "arrays": [{"path": "0"}], "unicode": "µm"}


@pytest.mark.parametrize(
    "relative", ["report.json", "deeper/still/report.json"], ids=["here", "new-directories"]
)
def test_write_json_atomically_writes_the_whole_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_json_atomically(relative, DOCUMENT)
    target = tmp_path / relative
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == DOCUMENT and text.endswith("}\n")
    assert os.listdir(target.parent) == ["report.json"]


def test_write_json_atomically_replaces_an_existing_report(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text('{"old": ' + "1, " * 10000 + "1}")  # longer than the new document
    write_json_atomically(str(target), DOCUMENT)
    assert json.loads(target.read_text()) == DOCUMENT
    assert os.listdir(tmp_path) == ["report.json"]


#: Serializes a long way, then fails: a plain ``open(target, "w")`` would leave half of it.
UNSERIALIZABLE = {"arrays": list(range(5000)), "zz": object()}


@pytest.mark.parametrize("existing", [True, False], ids=["replacing", "new"])
def test_failed_write_leaves_the_target_whole_or_absent(tmp_path: Path, existing: bool) -> None:
    target = tmp_path / "report.json"
    if existing:
        write_json_atomically(str(target), DOCUMENT)
    with pytest.raises(TypeError):
        write_json_atomically(str(target), UNSERIALIZABLE)
    if existing:
        assert json.loads(target.read_text()) == DOCUMENT
    else:
        assert not target.exists()


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomically(str(tmp_path / "report.json"), UNSERIALIZABLE)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- MemorySampler


#: Above glibc's mmap threshold even as the thread engine raises it (64 MiB, see
#: engines/allocator.py): the block is mapped fresh and unmapped when freed, so RSS shows it.
ALLOCATION = 256 * 2**20


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def test_memory_sampler_sees_an_allocation_made_while_it_runs() -> None:
    before = _rss()
    with MemorySampler(interval=0.01) as sampler:
        block = np.ones(ALLOCATION, dtype=np.uint8)  # written: every page is resident
        time.sleep(0.1)
        del block
        time.sleep(0.05)
    assert sampler.peak > 0
    assert sampler.peak >= before + 0.9 * ALLOCATION


def test_memory_sampler_windows_are_separate() -> None:
    with MemorySampler(interval=0.01) as sampler:
        sampler.take_window()
        block = np.ones(ALLOCATION, dtype=np.uint8)
        held = _rss()
        time.sleep(0.1)
        del block
        time.sleep(0.05)
        first = sampler.take_window()  # the allocation is gone: only the sampler saw it
        second = sampler.take_window()
    assert first >= held - 2**20
    assert second < first - ALLOCATION // 2
    assert sampler.peak >= first


def test_memory_sampler_stops_its_thread() -> None:
    def samplers() -> int:
        return sum(t.name == "rss-sampler" for t in threading.enumerate())

    before = samplers()
    with MemorySampler(interval=0.01):
        assert samplers() == before + 1
    assert samplers() == before
