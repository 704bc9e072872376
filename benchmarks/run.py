"""Benchmark ngff-resave against the reference converter and the physical floor, in one run.

One command from a fresh clone (after ``pip install -e .``)::

    python benchmarks/run.py            # full: 2 GiB inputs, median of 3
    python benchmarks/run.py --quick    # smoke test: 128 MiB input, 1 repeat

For each input it runs, one after another and in this process tree, round-robin (every tool
once, then every tool again, --repeat times):

* ``cp``        ``cp -r IN OUT``: the physical floor (read + write every byte once)
* ``fast``      ``ngff-resave convert IN OUT --output-overwrite`` (default: fast path)
* ``reencode``  ``ngff-resave convert IN OUT --output-codec blosc-zstd --output-overwrite``
* ``reference`` ``ome2024-ngff-challenge==1.0.3 resave --cc-by IN OUT --output-chunks <source
  chunks> --output-shards <ngff-resave's shard for level 0> --output-overwrite`` (own venv)

plus an in-process-tree ``encode`` baseline: numcodecs Blosc(zstd, clevel 5, byte shuffle) --
the reference's output codec -- encoding every stored chunk of every array of the input (the
data the converters encode; decoded beforehand, untimed) on 2 threads.

Each is repeated (median of --repeat); the page cache is dropped before every run when
possible (root), else a warm-up run is made first and every run is warm. Raw numbers go to
``benchmarks/results/<date>-<case>.json``; the table and the issue's target ratios are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402

WORK = HERE / "work"
RESULTS = HERE / "results"
REFERENCE_VENV = HERE / ".venv-reference"
REFERENCE_PACKAGE = "ome2024-ngff-challenge==1.0.3"
REFERENCE_CODEC = {"cname": "zstd", "clevel": 5, "shuffle": "shuffle"}  # resave.py, hard-coded
POLL_SECONDS = 0.05
#: Listing a tree's descendants scans /proc (~2 ms of CPU; at every poll that is ~4 % of a
#: core taken from the tool being measured): the list is refreshed this often instead.
TREE_SECONDS = 1.0
TOOLS = ("cp", "fast", "reencode", "reference", "encode")


# ---------------------------------------------------------------------------------------------
# Measuring one child process tree


@dataclass
class RunResult:
    tool: str
    case: str
    repeat: int
    argv: list[str]
    exit_code: int
    ok: bool
    wall_s: float
    sync_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_tree_bytes: int  # max over time of the summed RSS of the child and descendants
    ru_maxrss_bytes: int  # the largest single process's peak RSS (kernel accounting)
    other_cpu_s: float  # CPU seconds used by the rest of the machine during the run (noise)
    load_avg_1min: float
    raw_bytes: int
    output_bytes: int
    cold_cache: bool
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    @property
    def throughput_mb_s(self) -> float:
        return self.raw_bytes / 1e6 / self.wall_s if self.wall_s > 0 else float("nan")


class TreeRssPoller(threading.Thread):
    """Samples the summed RSS of a process and its descendants every POLL_SECONDS (the list
    of descendants is refreshed every TREE_SECONDS)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        procs: list[psutil.Process] = []
        listed = -math.inf
        while not self._halt.is_set():
            if time.monotonic() - listed >= TREE_SECONDS:
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    break
                listed = time.monotonic()
            total = 0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._halt.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(argv: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run argv to completion; wall, CPU (whole tree, via wait4), peak RSS, then timed sync."""
    cpu0 = psutil.cpu_times()
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        poller = TreeRssPoller(proc.pid)
        poller.start()
        # wait4 reports the child's rusage including all descendants it waited for.
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        poller.stop()
    cpu1 = psutil.cpu_times()
    t1 = time.perf_counter()
    os.sync()  # the written data reaching the disk is part of the job; reported separately
    sync_s = time.perf_counter() - t1
    return {
        "exit_code": proc.returncode,
        "wall_s": wall,
        "sync_s": sync_s,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "peak_rss_tree_bytes": poller.peak,
        "ru_maxrss_bytes": ru.ru_maxrss * 1024,
        # CPU the rest of the machine used meanwhile: the noise from other work (2 cores!).
        "other_cpu_s": max(0.0, _busy(cpu1) - _busy(cpu0) - ru.ru_utime - ru.ru_stime),
        "load_avg_1min": os.getloadavg()[0],
    }


def _busy(t: Any) -> float:
    return float(
        t.user
        + t.nice
        + t.system
        + getattr(t, "irq", 0)
        + getattr(t, "softirq", 0)
        + getattr(t, "steal", 0)
    )


def drop_page_cache() -> bool:
    """Drop the page cache (needs root and a writable /proc/sys); False if not possible."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def wait_until_quiet(max_wait_s: float, busy_pct: float = 25.0) -> float:
    """Wait (at most max_wait_s) until other work uses < busy_pct of the CPUs; seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        if psutil.cpu_percent(interval=2.0) < busy_pct:
            break
    return time.perf_counter() - t0


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Case:
    name: str
    path: Path
    raw_bytes: int  # uncompressed bytes of every array of the input
    raw_bytes_level0: int
    level0: Path  # the level-0 v2 array (for the encode baseline)
    description: str


def find_arrays(root: Path) -> list[Path]:
    """Every Zarr v2 array under root (directories holding a .zarray), sorted."""
    found = []
    for dirpath, dirnames, files in os.walk(root):
        if ".zarray" in files:
            found.append(Path(dirpath))
            dirnames[:] = []  # chunks only below
        dirnames.sort()
    return sorted(found)


def v2_raw_bytes(array_dir: Path) -> int:
    import numpy as np

    meta = json.loads((array_dir / ".zarray").read_text())
    return math.prod(meta["shape"]) * np.dtype(meta["dtype"]).itemsize


def synthetic_case(layout: str, scale: float) -> Case:
    spec = generate.DatasetSpec(layout, scale)
    generate.generate([spec], generate.DEFAULT_OUT)
    path = generate.DEFAULT_OUT / spec.name
    return Case(
        name=f"{layout}-s{scale:g}",
        path=path,
        raw_bytes=spec.raw_bytes_all_levels,
        raw_bytes_level0=spec.raw_bytes_level0,
        level0=path / "0",
        description=f"synthetic {spec.shape} uint16, chunks {spec.chunks}, blosc-lz4, "
        f"{generate.N_LEVELS} levels",
    )


def idr_case(quick: bool) -> Case | None:
    """The IDR bioformats2raw sample, materialized by the project's test helper if present."""
    dest = WORK / "data" / ("idr-bf2raw-small" if quick else "idr-bf2raw-full")
    stamp = dest.with_suffix(".done")
    if not stamp.exists():
        remove(dest)
        t0 = time.perf_counter()
        code = (
            "import sys; from pathlib import Path\n"
            "from tests.support.samples import materialize_idr_bf2raw\n"
            "materialize_idr_bf2raw(Path(sys.argv[1]), full_size=sys.argv[2] == '1')\n"
        )
        res = subprocess.run(
            [sys.executable, "-c", code, str(dest), "0" if quick else "1"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["?"])[-1]
            print(f"SKIP idr case: tests/support/samples.py materialize_idr_bf2raw failed: {last}")
            return None
        stamp.write_text(str(time.perf_counter() - t0))
    arrays = find_arrays(dest)
    if not arrays:
        print(f"SKIP idr case: no arrays materialized under {dest}")
        return None
    level0 = arrays[0]
    return Case(
        name="idr-bf2raw" + ("-small" if quick else ""),
        path=dest,
        raw_bytes=sum(v2_raw_bytes(a) for a in arrays),
        raw_bytes_level0=v2_raw_bytes(level0),
        level0=level0,
        description=f"IDR idr0079A bioformats2raw layout ({len(arrays)} arrays), synthetic pixels",
    )


# ---------------------------------------------------------------------------------------------
# The tools


def ensure_reference_venv() -> Path:
    """Create benchmarks/.venv-reference with the reference converter (reused if present)."""
    exe = REFERENCE_VENV / "bin" / "ome2024-ngff-challenge"
    if exe.exists():
        return exe
    print(f"creating {REFERENCE_VENV} with {REFERENCE_PACKAGE} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)
    pip = REFERENCE_VENV / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", REFERENCE_PACKAGE], check=True)
    return exe


def ngff_resave_exe() -> list[str] | None:
    """The ngff-resave command, if its `convert` subcommand exists yet.

    The script installed beside this interpreter first (a version manager's shim on PATH,
    e.g. pyenv's, would add its own shell start-up to every timed run), else PATH, else -m.
    """
    beside = Path(sys.executable).parent / "ngff-resave"
    exe = str(beside) if beside.exists() else shutil.which("ngff-resave")
    cmd = [exe] if exe else [sys.executable, "-m", "ngff_resave"]
    probe = subprocess.run([*cmd, "convert", "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or "usage" not in (probe.stdout + probe.stderr).lower():
        return None
    return cmd


def level0_meta(case: Case) -> dict[str, Any]:
    return json.loads((case.level0 / ".zarray").read_text())


def comparable_shards(case: Case) -> tuple[int, ...]:
    """The shard shape ngff-resave plans for level 0 (so both converters write alike).

    Asked in a child process: importing ngff_resave pulls in zarr, and the runner stays small
    because a forked child's ru_maxrss starts at the parent's size.
    """
    code = (
        "import json, sys, numpy as np\n"
        "from ngff_resave.planning import DEFAULT_SHARD_BYTES, choose_shards\n"
        "meta, types = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "print(json.dumps(list(choose_shards(meta['shape'], meta['chunks'],\n"
        "    np.dtype(meta['dtype']).itemsize, DEFAULT_SHARD_BYTES, types))))\n"
    )
    meta = level0_meta(case)
    axis_types = None
    with contextlib.suppress(OSError, KeyError, ValueError, IndexError):
        attrs = json.loads((case.level0.parent / ".zattrs").read_text())
        axis_types = [a.get("type") for a in attrs["multiscales"][0]["axes"]]
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(meta), json.dumps(axis_types)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # planner not importable: one shard per array
        print(
            f"NOTE: ngff_resave.planning unavailable; reference shard = shape "
            f"({out.stderr.strip().splitlines()[-1:]})"
        )
        return tuple(meta["shape"])
    return tuple(json.loads(out.stdout))


def commands(
    case: Case, out: Path, resave: list[str] | None, ref: Path | None, workers: int | None
) -> dict[str, list[str] | None]:
    chunks = ",".join(map(str, level0_meta(case)["chunks"]))
    shards = ",".join(map(str, comparable_shards(case)))
    extra = ["--workers", str(workers)] if workers else []
    return {
        "cp": ["cp", "-r", str(case.path), str(out)],
        "fast": None
        if resave is None
        else [*resave, "convert", str(case.path), str(out), "--output-overwrite", *extra],
        "reencode": None
        if resave is None
        else [
            *resave,
            "convert",
            str(case.path),
            str(out),
            "--output-codec",
            "blosc-zstd",
            "--output-overwrite",
            *extra,
        ],
        "reference": None
        if ref is None
        else [
            str(ref),
            "resave",
            "--cc-by",
            str(case.path),
            str(out),
            "--output-chunks",
            chunks,
            "--output-shards",
            shards,
            "--output-overwrite",
        ],
        "encode": [
            sys.executable,
            str(HERE / "encode_baseline.py"),
            *map(str, find_arrays(case.path)),
            "--threads",
            "2",
            "--json",
            str(out),
        ],
    }


# ---------------------------------------------------------------------------------------------
# Checking an output (untimed)


def check_output(tool: str, case: Case, out: Path) -> tuple[bool, str]:
    """Judge a run by its output (the reference exits 1 on success): checked in a child."""
    if tool == "encode":
        return out.exists(), "" if out.exists() else "no result file"
    if not out.exists():
        return False, "no output"
    if tool == "cp":
        return True, ""
    res = subprocess.run(
        [sys.executable, __file__, "--check-output", str(case.path), str(out)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        return False, (res.stdout + res.stderr).strip()[-300:]
    return True, ""


def compare_output(src_root: Path, out: Path, samples: int = 3) -> list[str]:
    """Is `out` a readable Zarr v3 copy of the v2 input? Compares random chunks of each array."""
    import numpy as np
    import zarr

    rng = random.Random(0)
    arrays = find_arrays(src_root)
    problems = []
    for src_dir in arrays:
        rel = src_dir.relative_to(src_root)
        dst_dir = out / rel
        if not (dst_dir / "zarr.json").exists():
            problems.append(f"{rel}: no zarr.json")
            continue
        try:
            src = zarr.open_array(str(src_dir), mode="r", zarr_format=2)
            dst = zarr.open_array(str(dst_dir), mode="r", zarr_format=3)
        except Exception as exc:  # any failure to open is a failed output
            problems.append(f"{rel}: {type(exc).__name__}: {exc}")
            continue
        if dst.shape != src.shape or dst.dtype != src.dtype:
            problems.append(
                f"{rel}: shape/dtype {dst.shape}/{dst.dtype} != {src.shape}/{src.dtype}"
            )
            continue
        for _ in range(samples):
            start = [rng.randrange(0, max(1, n)) for n in src.shape]
            sel = tuple(
                slice(s - s % c, min(n, s - s % c + c))
                for s, c, n in zip(start, src.chunks, src.shape, strict=True)
            )
            if not np.array_equal(src[sel], dst[sel]):
                problems.append(f"{rel}: data differ at {sel}")
                break
    root_meta = out / "zarr.json"
    if root_meta.exists():
        ome = json.loads(root_meta.read_text()).get("attributes", {}).get("ome")
        if not ome:
            problems.append("root zarr.json has no attributes.ome")
    elif src_root.joinpath(".zattrs").exists():
        problems.append("no root zarr.json")
    return problems


# ---------------------------------------------------------------------------------------------
# Running and summarizing


def run_case(
    case: Case,
    tools: list[str],
    repeat: int,
    resave: list[str] | None,
    ref: Path | None,
    workers: int | None,
    cold: bool,
    quiet_wait: float = 0.0,
) -> list[RunResult]:
    out = WORK / "out" / (case.name + ".out")
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmds = commands(case, out, resave, ref, workers)
    results: list[RunResult] = []
    runnable = []
    for tool in tools:
        if cmds[tool] is None:
            why = (
                "`ngff-resave convert` is not available yet"
                if tool in ("fast", "reencode")
                else "reference converter not set up"
            )
            print(f"  {tool:<9} SKIP: {why}")
        else:
            runnable.append(tool)
    failed: set[str] = set()
    runs = repeat if cold else repeat + 1  # warm cache: a discarded warm-up run first
    # Round-robin (every tool once, then again): on a shared machine whose speed drifts over
    # minutes, each tool's median then comes from the same stretches of time as the others'.
    for i in range(runs):
        for tool in runnable:
            if tool in failed:
                continue
            argv = cmds[tool]
            assert argv is not None
            remove(out)
            if quiet_wait:
                wait_until_quiet(quiet_wait)
            is_cold = drop_page_cache() if cold else False
            log = logs / f"{case.name}-{tool}-{i}.log"
            m = measure(argv, log)
            ok, note = check_output(tool, case, out)
            extra: dict[str, Any] = {}
            if tool == "encode" and out.exists():
                extra = json.loads(out.read_text())
            raw = extra.get("raw_bytes", case.raw_bytes) if tool == "encode" else case.raw_bytes
            r = RunResult(
                tool=tool,
                case=case.name,
                repeat=i,
                argv=argv,
                ok=ok,
                note=note,
                raw_bytes=raw,
                output_bytes=tree_bytes(out) if tool != "encode" else extra.get("encoded_bytes", 0),
                cold_cache=is_cold,
                extra=extra,
                **m,
            )
            if tool == "encode":  # wall and CPU of the encoding alone, measured inside
                r.wall_s = extra.get("encode_seconds", r.wall_s)
                r.cpu_user_s, r.cpu_sys_s = extra.get("encode_cpu_seconds", r.cpu_s), 0.0
            warmup = not cold and i == 0
            tag = "warm-up" if warmup else f"run {i + 1 - (0 if cold else 1)}/{repeat}"
            print(
                f"  {tool:<9} {tag:<8} exit {r.exit_code:>3}  {'ok  ' if ok else 'FAIL'} "
                f"wall {r.wall_s:7.2f}s (+sync {r.sync_s:5.2f}s)  cpu {r.cpu_s:7.2f}s  "
                f"rss {r.peak_rss_tree_bytes / 2**20:6.0f} MiB  other-cpu {r.other_cpu_s:5.1f}s  "
                f"{r.throughput_mb_s:7.0f} MB/s  {note}",
                flush=True,
            )
            if not ok:
                print(f"            log: {log}")
                failed.add(tool)  # a failing tool fails every time: do not waste the machine
            if not warmup:
                results.append(r)
            remove(out)
    return results


def median_of(results: list[RunResult], case: str, tool: str) -> dict[str, float] | None:
    runs = [r for r in results if r.case == case and r.tool == tool and r.ok]
    if not runs:
        return None
    return {
        "runs": len(runs),
        "wall_s": statistics.median(r.wall_s for r in runs),
        "wall_sync_s": statistics.median(r.wall_s + r.sync_s for r in runs),
        "cpu_s": statistics.median(r.cpu_s for r in runs),
        "peak_rss_tree_bytes": statistics.median(r.peak_rss_tree_bytes for r in runs),
        "ru_maxrss_bytes": statistics.median(r.ru_maxrss_bytes for r in runs),
        "throughput_mb_s": statistics.median(r.throughput_mb_s for r in runs),
        "output_bytes": statistics.median(r.output_bytes for r in runs),
        "other_cpu_s": statistics.median(r.other_cpu_s for r in runs),
        "raw_bytes": runs[0].raw_bytes,
        "level0_mb_s": statistics.median(r.extra.get("level0_mb_s") or 0 for r in runs),
        "encode_share": statistics.median(r.extra.get("encode_share") or 0 for r in runs),
    }


def print_table(summary: dict[str, dict[str, dict[str, float] | None]]) -> None:
    head = (
        f"{'case':<16} {'tool':<9} {'n':>2} {'wall s':>8} {'+sync s':>8} {'cpu s':>8} "
        f"{'peak RSS':>9} {'maxrss':>8} {'MB/s':>7} {'out GiB':>8} {'other cpu':>9}"
    )
    print(head)
    print("-" * len(head))
    for case, tools in summary.items():
        for tool, m in tools.items():
            if m is None:
                print(f"{case:<16} {tool:<9}  - (skipped or failed)")
                continue
            print(
                f"{case:<16} {tool:<9} {m['runs']:>2} {m['wall_s']:8.2f} "
                f"{m['wall_sync_s']:8.2f} {m['cpu_s']:8.2f} "
                f"{m['peak_rss_tree_bytes'] / 2**20:7.0f}Mi "
                f"{m['ru_maxrss_bytes'] / 2**20:6.0f}Mi "
                f"{m['throughput_mb_s']:7.0f} {m['output_bytes'] / 2**30:8.3f} "
                f"{m['other_cpu_s']:8.1f}s"
            )


def paired_ratios(results: list[RunResult], case: str, a: str, b: str) -> list[float]:
    """Throughput of tool ``a`` / tool ``b`` in each round (repeat) where both succeeded.

    Tools run round-robin, so the two runs of a round are minutes apart at most: the drift
    of a shared machine (±10 % over tens of minutes here) mostly cancels out in each pair.
    """
    by_round: dict[int, dict[str, float]] = {}
    for r in results:
        if r.case == case and r.tool in (a, b) and r.ok and r.throughput_mb_s:
            by_round.setdefault(r.repeat, {})[r.tool] = r.throughput_mb_s
    return [v[a] / v[b] for _, v in sorted(by_round.items()) if a in v and b in v]


def targets(
    summary: dict[str, dict[str, dict[str, float] | None]],
    flatness: tuple[str, str] | None,
    quick_flatness: bool = False,
    results: list[RunResult] | None = None,
) -> list[dict[str, Any]]:
    """The issue's targets as ratios of medians measured in this run."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, passed: bool | None, detail: str) -> None:
        if value is None:  # a tool the ratio needs did not run (or failed): say so briefly
            detail = "not measured in this run"
        rows.append(
            {
                "target": name,
                "value": value,
                "goal": goal,
                "result": "n/a" if passed is None else ("PASS" if passed else "FAIL"),
                "detail": detail,
            }
        )

    def tp(case: str, tool: str) -> float | None:
        m = summary.get(case, {}).get(tool)
        return m["throughput_mb_s"] if m else None

    def rss(case: str, tool: str) -> float | None:
        m = summary.get(case, {}).get(tool)
        return m["peak_rss_tree_bytes"] if m else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    for case in summary:
        if flatness and case == flatness[1]:
            continue  # the doubled input only runs ngff-resave, for the flatness rows
        fast, ref, cp = tp(case, "fast"), tp(case, "reference"), tp(case, "cp")
        reenc, enc = tp(case, "reencode"), tp(case, "encode")
        r = ratio(fast, ref)
        add(
            f"{case}: fast / reference throughput",
            r,
            ">= 5",
            None if r is None else r >= 5,
            f"{fast or 0:.0f} vs {ref or 0:.0f} MB/s",
        )
        r = ratio(fast, cp)
        add(
            f"{case}: fast / cp -r throughput",
            r,
            ">= 0.5 (within 2x)",
            None if r is None else r >= 0.5,
            f"{fast or 0:.0f} vs {cp or 0:.0f} MB/s",
        )
        r = ratio(reenc, ref)
        add(
            f"{case}: re-encode / reference throughput",
            r,
            ">= 1",
            None if r is None else r >= 1,
            f"{reenc or 0:.0f} vs {ref or 0:.0f} MB/s",
        )
        r = ratio(reenc, enc)
        add(
            f"{case}: re-encode / 2-core blosc-zstd encode",
            r,
            ">= 0.9",
            None if r is None else r >= 0.9,
            f"{reenc or 0:.0f} vs {enc or 0:.0f} MB/s",
        )
        r = ratio(rss(case, "fast"), rss(case, "reference"))
        add(
            f"{case}: peak RSS fast / reference",
            r,
            "<= 0.5",
            None if r is None else r <= 0.5,
            f"{(rss(case, 'fast') or 0) / 2**20:.0f} vs "
            f"{(rss(case, 'reference') or 0) / 2**20:.0f} MiB",
        )
        r = ratio(rss(case, "reencode"), rss(case, "reference"))
        add(
            f"{case}: peak RSS re-encode / reference",
            r,
            "<= 0.5",
            None if r is None else r <= 0.5,
            f"{(rss(case, 'reencode') or 0) / 2**20:.0f} vs "
            f"{(rss(case, 'reference') or 0) / 2**20:.0f} MiB",
        )
    # Not a target: the baseline on level 0 alone (the finest level compresses fastest per byte).
    for case in summary:
        enc_m = summary[case].get("encode")
        reenc = tp(case, "reencode")
        if enc_m and enc_m.get("level0_mb_s") and reenc:
            rows.append(
                {
                    "target": f"{case}: re-encode / level-0-only encode",
                    "value": reenc / enc_m["level0_mb_s"],
                    "goal": "info",
                    "result": "info",
                    "detail": f"{reenc:.0f} vs {enc_m['level0_mb_s']:.0f} MB/s",
                }
            )
    # Not a target: the ceiling of "re-encode / encode" for a converter that must also read and
    # decode the source on the same cores (encode CPU / (encode + read-and-decode CPU), both
    # measured by the baseline). Near 1 for lz4 sources of noisy data; far below 1 when the
    # data compresses so well that encoding costs about as little as reading and decoding.
    for case in summary:
        enc_m = summary[case].get("encode")
        if enc_m and enc_m.get("encode_share"):
            rows.append(
                {
                    "target": f"{case}: ceiling of re-encode / encode (encode CPU share)",
                    "value": enc_m["encode_share"],
                    "goal": "info",
                    "result": "info",
                    "detail": "encode CPU / (encode + read-and-decode CPU)",
                }
            )
    # Not a target: re-encode / encode computed per round, then the median of those ratios.
    for case in summary:
        pairs = paired_ratios(results or [], case, "reencode", "encode")
        if pairs:
            rows.append(
                {
                    "target": f"{case}: re-encode / encode, paired by round",
                    "value": statistics.median(pairs),
                    "goal": "info",
                    "result": "info",
                    "detail": "median of per-round ratios: " + ", ".join(f"{p:.3f}" for p in pairs),
                }
            )
    # Not targets: the same throughput ratios per CPU second of the tool's own process tree.
    # On a busy 2-core machine wall time measures the neighbours; CPU seconds mostly do not.
    for case in summary:
        if flatness and case == flatness[1]:
            continue
        for a, b in (("fast", "reference"), ("reencode", "reference"), ("reencode", "encode")):
            ma, mb = summary[case].get(a), summary[case].get(b)
            if not (ma and mb and ma["cpu_s"] and mb["cpu_s"]):
                continue
            per_a = ma["raw_bytes"] / 1e6 / ma["cpu_s"]
            per_b = mb["raw_bytes"] / 1e6 / mb["cpu_s"]
            rows.append(
                {
                    "target": f"{case}: {a} / {b} MB per CPU-second",
                    "value": per_a / per_b,
                    "goal": "info",
                    "result": "info",
                    "detail": f"{per_a:.0f} vs {per_b:.0f} MB/CPU-s",
                }
            )
    if flatness:
        small, big = flatness
        meaningful = "" if quick_flatness is False else " [quick: shards grow with the input]"
        for tool in ("fast", "reencode"):
            r = ratio(rss(big, tool), rss(small, tool))
            add(
                f"peak RSS {tool}: {big} / {small} (input x2){meaningful}",
                r,
                "0.9 .. 1.1",
                None if r is None else 0.9 <= r <= 1.1,
                f"{(rss(big, tool) or 0) / 2**20:.0f} vs {(rss(small, tool) or 0) / 2**20:.0f} MiB",
            )
    return rows


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    from importlib import metadata

    for dist in ("ngff-resave", "zarr", "numcodecs", "numpy", "tensorstore", "psutil"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    ref_py = REFERENCE_VENV / "bin" / "python"
    if ref_py.exists():
        out = subprocess.run(
            [
                str(ref_py),
                "-c",
                "from importlib.metadata import version as v;"
                "print(v('ome2024-ngff-challenge'), v('tensorstore'), v('zarr'))",
            ],
            capture_output=True,
            text=True,
        )
        versions["reference (ome2024-ngff-challenge, tensorstore, zarr)"] = out.stdout.strip()
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    disk = shutil.disk_usage(WORK)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_bytes": psutil.virtual_memory().total,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg(),
        "disk_free_bytes": disk.free,
        "git_head": git,
        "versions": versions,
    }


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="small inputs (scale 1/16 = 128 MiB level 0), 1 repeat: a smoke test",
    )
    p.add_argument("--repeat", type=int, help="runs per tool and case (median); default 3")
    p.add_argument(
        "--cases", default=None, help="comma list of: planes, cubes, idr, flatness (default: all)"
    )
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {TOOLS}")
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help="size of the synthetic input (1 = 2 GiB level 0; --quick: 0.0625)",
    )
    p.add_argument("--workers", type=int, default=None, help="passed to ngff-resave --workers")
    p.add_argument(
        "--warm",
        action="store_true",
        help="do not drop the page cache (a warm-up run is made instead)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other work to stop using "
        "the CPUs (0: do not wait)",
    )
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument(
        "--check-output", nargs=2, type=Path, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS
    )  # internal: compare an output with its input
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.check_output:
        problems = compare_output(*ns.check_output)
        print("; ".join(problems[:3]))
        return 1 if problems else 0
    scale = ns.scale if ns.scale is not None else (0.0625 if ns.quick else 1.0)
    repeat = ns.repeat or (1 if ns.quick else 3)
    cases_wanted = (ns.cases or "planes,cubes,idr,flatness").split(",")
    tools = [t for t in ns.tools.split(",") if t]
    if set(tools) - set(TOOLS):
        print(f"ERROR unknown tools {sorted(set(tools) - set(TOOLS))}; choose from {TOOLS}")
        return 2
    if "flatness" in cases_wanted and "planes" not in cases_wanted:
        cases_wanted.append("planes")

    cold = not ns.warm and drop_page_cache()
    if not ns.warm and not cold:
        print("NOTE: cannot drop the page cache here: all runs are warm-cache, after a warm-up")
    ref = ensure_reference_venv() if "reference" in tools else None
    resave = ngff_resave_exe() if {"fast", "reencode"} & set(tools) else None
    if resave is None and {"fast", "reencode"} & set(tools):
        print("NOTE: `ngff-resave convert` is not available: fast/reencode are skipped")

    cases: list[Case] = []
    for name in cases_wanted:
        if name in ("planes", "cubes"):
            cases.append(synthetic_case(name, scale))
        elif name == "idr":
            c = idr_case(ns.quick)
            if c:
                cases.append(c)
    flatness = None
    if "flatness" in cases_wanted:
        big = synthetic_case("planes", scale * 2)
        cases.append(big)
        flatness = (f"planes-s{scale:g}", big.name)

    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, "
        f"{info['ram_bytes'] / 2**30:.0f} GiB RAM, python {info['python']}, "
        f"load {info['load_avg_at_start'][0]:.1f}; page cache "
        f"{'dropped before every run' if cold else 'warm'}"
    )
    results: list[RunResult] = []
    started = dt.datetime.now()
    for case in cases:
        print(
            f"\n== {case.name}: {case.description}; raw {case.raw_bytes / 2**30:.2f} GiB "
            f"(level 0 {case.raw_bytes_level0 / 2**30:.2f} GiB), stored "
            f"{tree_bytes(case.path) / 2**30:.2f} GiB"
        )
        doubled = flatness is not None and case.name == flatness[1]
        case_tools = [t for t in tools if not doubled or t in ("fast", "reencode")]
        results.extend(
            run_case(case, case_tools, repeat, resave, ref, ns.workers, cold, ns.wait_quiet)
        )

    doubled_case = flatness[1] if flatness else None
    summary = {
        c.name: {
            t: median_of(results, c.name, t)
            for t in tools
            if c.name != doubled_case or t in ("fast", "reencode")
        }
        for c in cases
    }
    print()
    print_table(summary)
    rows = targets(summary, flatness, quick_flatness=scale < 1, results=results)
    print()
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.2f}"
        print(
            f"{row['result']:<4} {row['target']:<52} {value:>6}  (goal {row['goal']}; "
            f"{row['detail']})"
        )

    stamp = started.strftime("%Y%m%d-%H%M%S")
    label = ("quick-" if ns.quick else "") + "-".join(c.name for c in cases)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "machine": info,
        "page_cache": "dropped before every run" if cold else "warm (after a warm-up run)",
        "notes": "wall_s is the process's own wall time; sync_s is a timed `sync` right after "
        "it (flushing what it wrote); throughput = uncompressed bytes of every input array / "
        "wall_s (encode: array bytes of every stored chunk encoded / encode seconds).",
        "cases": [{**asdict(c), "path": str(c.path), "level0": str(c.level0)} for c in cases],
        "runs": [
            {**asdict(r), "cpu_s": r.cpu_s, "throughput_mb_s": r.throughput_mb_s} for r in results
        ],
        "summary": summary,
        "targets": rows,
    }
    path = ns.results / f"{stamp}-{label}.json"
    write_json_atomic(path, doc)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
