"""What a run did and cost: per array and in total. Written atomically as JSON.

The 2024 challenge existed to learn what conversion costs; this report is how users learn it:
bytes read and written, shards, wall and CPU seconds, throughput and peak memory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from ngff_resave.copying import ShardOutcome
from ngff_resave.locations import LocalStore


@dataclass
class ArrayStats:
    """Totals of one array."""

    path: str
    path_taken: str
    reason: str
    shards_total: int
    shards_written: int = 0
    shards_empty: int = 0
    shards_skipped_existing: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    raw_bytes: int = 0
    cpu_seconds: float = 0.0
    first_start: float | None = None
    last_end: float | None = None
    peak_rss_bytes: int = 0

    @property
    def wall_seconds(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_start)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("first_start")
        doc.pop("last_end")
        doc["wall_seconds"] = round(self.wall_seconds, 3)
        doc["cpu_seconds"] = round(self.cpu_seconds, 3)
        doc["throughput_mb_s"] = _rate(self.raw_bytes, self.wall_seconds)
        return doc


def _rate(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1) if seconds > 0 else 0.0


class MemorySampler:
    """Samples this process's RSS in a background thread (every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.05) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak: int = int(self._process.memory_info().rss)
        self.window_peak = self.peak
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            rss = int(self._process.memory_info().rss)
            self.peak = max(self.peak, rss)
            self.window_peak = max(self.window_peak, rss)

    def take_window(self) -> int:
        """The peak since the previous call (used to attribute peaks to arrays)."""
        rss = int(self._process.memory_info().rss)
        peak = max(self.window_peak, rss)
        self.window_peak = rss
        self.peak = max(self.peak, peak)
        return peak

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class RunReport:
    """The whole run."""

    software_version: str
    input_url: str
    output_url: str
    started_at: str
    workers: int
    arrays: dict[str, ArrayStats] = field(default_factory=dict)
    ended_at: str = ""
    wall_seconds: float = 0.0
    copy_seconds: float = 0.0
    verify_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    groups_written: int = 0
    files_copied: int = 0
    verification: str = "none"
    verified_shards: int = 0
    warnings: list[str] = field(default_factory=list)

    def record(self, outcome: ShardOutcome, rss_peak: int) -> None:
        stats = self.arrays[outcome.path]
        stats.bytes_read += outcome.bytes_read
        stats.bytes_written += outcome.bytes_written
        stats.raw_bytes += outcome.raw_bytes
        stats.cpu_seconds += outcome.cpu_seconds
        if outcome.skipped_existing:
            stats.shards_skipped_existing += 1
        elif outcome.written:
            stats.shards_written += 1
        else:
            stats.shards_empty += 1
        end = outcome.started + outcome.seconds
        stats.first_start = (
            outcome.started
            if stats.first_start is None
            else min(stats.first_start, outcome.started)
        )
        stats.last_end = end if stats.last_end is None else max(stats.last_end, end)
        stats.peak_rss_bytes = max(stats.peak_rss_bytes, rss_peak)

    def totals(self) -> dict[str, Any]:
        stats = list(self.arrays.values())
        raw = sum(s.raw_bytes for s in stats)
        return {
            "arrays": len(stats),
            "shards_written": sum(s.shards_written for s in stats),
            "shards_empty": sum(s.shards_empty for s in stats),
            "shards_skipped_existing": sum(s.shards_skipped_existing for s in stats),
            "bytes_read": sum(s.bytes_read for s in stats),
            "bytes_written": sum(s.bytes_written for s in stats),
            "raw_bytes": raw,
            "wall_seconds": round(self.wall_seconds, 3),
            "copy_seconds": round(self.copy_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "throughput_mb_s": _rate(raw, self.wall_seconds),
            "copy_throughput_mb_s": _rate(raw, self.copy_seconds),
            "peak_rss_bytes": self.peak_rss_bytes,
            "fast_path_arrays": sum(1 for s in stats if s.path_taken == "copy-chunks"),
            "reencoded_arrays": sum(1 for s in stats if s.path_taken != "copy-chunks"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "software": {"name": "ngff-resave", "version": self.software_version},
            "input": self.input_url,
            "output": self.output_url,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "workers": self.workers,
            "verification": self.verification,
            "verified_shards": self.verified_shards,
            "groups_written": self.groups_written,
            "files_copied": self.files_copied,
            "total": self.totals(),
            "arrays": [s.to_json() for s in self.arrays.values()],
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """The short summary printed on stderr at the end of a run."""
        t = self.totals()
        skipped = (
            f", {t['shards_skipped_existing']} already done" if t["shards_skipped_existing"] else ""
        )
        return (
            f"converted {t['arrays']} arrays ({t['fast_path_arrays']} copied as stored, "
            f"{t['reencoded_arrays']} re-encoded) and {self.groups_written} groups: "
            f"{t['shards_written']} shards{skipped}, {_human(t['raw_bytes'])} of pixels, "
            f"read {_human(t['bytes_read'])}, wrote {_human(t['bytes_written'])} in "
            f"{t['wall_seconds']:.1f} s (copy {t['copy_seconds']:.1f} s at "
            f"{t['copy_throughput_mb_s']} MB/s, {t['cpu_seconds']:.1f} CPU s, peak "
            f"{_human(t['peak_rss_bytes'])} RSS); verification: {self.verification}"
            f"{f' ({self.verify_seconds:.1f} s)' if self.verification != 'none' else ''}"
        )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def write_json_atomically(path: str, document: Any) -> None:
    """Write ``document`` as JSON to a local ``path`` atomically.

    Serialized first (a document that cannot be written as JSON writes nothing), then written
    like any object of a local store: a unique temporary file and a rename, the temporary
    file removed if anything fails.
    """
    text = json.dumps(document, indent=2) + "\n"
    directory, name = os.path.split(os.path.abspath(path))
    LocalStore(directory).write(name, text.encode("utf-8"))


def now_iso() -> str:
    """The current UTC time in ISO 8601 with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
