"""The Dask engine: same output as the thread engine, survives a killed worker, optional.

One ``LocalCluster`` (2 worker processes on 127.0.0.1, no dashboard) serves the module:
starting one costs seconds.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngff_resave.cli import main
from ngff_resave.convert import ConvertOptions, convert
from ngff_resave.copying import CopyTask, ShardOutcome, copy_shard
from ngff_resave.engines.dask import (
    DaskEngine,
    add_dask_arguments,
    engine_from_args,
    local_cluster,
    slurm_cluster,
)
from ngff_resave.engines.local import ThreadEngine
from ngff_resave.errors import CorruptChunkError, MissingDependencyError
from ngff_resave.locations import LocationSpec
from ngff_resave.planning import PlanOptions
from tests.support.builders import build_image

distributed = pytest.importorskip("distributed")

#: Small shards, so every array has several tasks and many are in flight at once.
PLAN = PlanOptions(shard_bytes=4096)
VICTIM = "0/c/0/0/1/1"  # a shard of the full-resolution level (czyx grid 2 × 3 × 3 × 3)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (compared whole: byte-identical outputs)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dask") / "in.zarr"
    return build_image(root, levels=3, with_labels=True)


@pytest.fixture(scope="module")
def expected(source: Path) -> dict[str, bytes]:
    out = source.parent / "threads.zarr"
    convert(
        ConvertOptions(LocationSpec(str(source)), LocationSpec(str(out)), plan=PLAN, verify="none")
    )
    return tree(out)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = local_cluster(2, 2)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _convert(source: Path, out: Path, engine: Any) -> None:
    convert(
        ConvertOptions(
            LocationSpec(str(source)),
            LocationSpec(str(out)),
            plan=PLAN,
            engine=engine,
            verify="none",  # the byte-for-byte comparison is the check here
        )
    )


def test_dask_output_equals_thread_engine_output(
    source: Path, expected: dict[str, bytes], client: Any, tmp_path: Path
) -> None:
    assert sum(1 for k in expected if "/c/" in k) > 20  # many tasks, several per array
    out = tmp_path / "dask.zarr"
    _convert(source, out, DaskEngine(client, max_in_flight=5))
    assert tree(out) == expected


def kill_first_attempt(task: CopyTask, *, victim: str, marker: str) -> ShardOutcome:
    """Kill the worker process on the first attempt of one shard (the retry finds the marker)."""
    if task.shard_key == victim:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os._exit(1)  # the worker dies mid-run, as an OOM kill or a lost node would
    return copy_shard(task)


def test_killed_worker_is_recovered(
    source: Path, expected: dict[str, bytes], client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed-once"
    out = tmp_path / "killed.zarr"
    function = functools.partial(kill_first_attempt, victim=VICTIM, marker=str(marker))
    _convert(source, out, DaskEngine(client, function=function))
    assert marker.exists(), "the victim shard was never attempted"
    assert VICTIM in tree(out)
    assert tree(out) == expected
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def corrupt(task: CopyTask) -> ShardOutcome:
    raise CorruptChunkError(f"{task.shard_key}: chunk is truncated")


def test_task_error_is_raised_as_the_package_error(
    source: Path, client: Any, tmp_path: Path
) -> None:
    engine = DaskEngine(client, function=corrupt, retries=0)
    with pytest.raises(CorruptChunkError, match="chunk is truncated"):
        _convert(source, tmp_path / "err.zarr", engine)
    assert not (tmp_path / "err.zarr" / "zarr.json").exists()  # never looks complete


def test_engine_from_args_connects_to_a_scheduler(
    source: Path, expected: dict[str, bytes], client: Any, tmp_path: Path
) -> None:
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    args = parser.parse_args(["--dask-scheduler", client.scheduler.address])
    engine, close = engine_from_args(args, workers=0)
    assert isinstance(engine, DaskEngine)
    try:
        _convert(source, tmp_path / "sched.zarr", engine)
    finally:
        close()
    assert tree(tmp_path / "sched.zarr") == expected


def test_no_dask_option_means_no_engine() -> None:
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    engine, close = engine_from_args(parser.parse_args([]), workers=4)
    assert engine is None
    close()


@pytest.mark.parametrize("argv", [["--dask-workers", "0"], ["--slurm-jobs", "-1"]], ids=str)
def test_worker_counts_must_be_positive(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_dask_arguments(parser)
    with pytest.raises(argparse.ArgumentError, match="at least 1"):
        parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "hidden", "extra"),
    [
        (["--dask-workers", "2"], "distributed", "[dask]"),
        (["--dask-scheduler", "tcp://127.0.0.1:1"], "distributed", "[dask]"),
        (["--slurm-jobs", "2"], "dask_jobqueue", "[slurm]"),
    ],
    ids=["local", "scheduler", "slurm"],
)
def test_missing_dask_says_what_to_install(
    argv: list[str], hidden: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # makes `import hidden` fail
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'ngff-resave\{extra}'"):
        engine_from_args(parser.parse_args(argv), workers=2)


def test_thread_and_dask_engines_share_the_task_code() -> None:
    # The same function runs in both engines: a task is a picklable value, no handles.
    import pickle

    assert pickle.loads(pickle.dumps(copy_shard)) is copy_shard
    assert ThreadEngine(2).workers == 2


def test_slurm_job_script() -> None:
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    args = parser.parse_args(
        [
            "--slurm-jobs", "3",
            "--slurm-queue", "bigmem",
            "--slurm-account", "imaging-lab",
            "--slurm-walltime", "04:00:00",
            "--slurm-memory", "32GB",
            "--slurm-cores", "8",
        ]
    )  # fmt: skip
    cluster = slurm_cluster(
        jobs=0,  # nothing is submitted: no SLURM here
        queue=args.slurm_queue,
        account=args.slurm_account,
        walltime=args.slurm_walltime,
        memory=args.slurm_memory,
        cores=args.slurm_cores,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p bigmem" in script
    assert "#SBATCH -A imaging-lab" in script
    assert "#SBATCH -t 04:00:00" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert "--nthreads 8" in script
    assert "#SBATCH --mem=30G" in script  # 32 GB as GiB, as dask-jobqueue writes it
    assert "#SBATCH -J ngff-resave-worker" in script
    assert "distributed.cli.dask_worker" in script


def test_max_memory_is_shared_among_local_dask_workers() -> None:
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    args = parser.parse_args(["--dask-workers", "2"])
    engine, close = engine_from_args(args, workers=2, max_memory=1024**3)
    try:
        assert isinstance(engine, DaskEngine)
        limits = {w["memory_limit"] for w in engine.client.scheduler_info()["workers"].values()}
        assert limits == {512 * 1024 * 1024}
    finally:
        close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--slurm-jobs", "2"], "use --slurm-memory"),
        (["--dask-scheduler", "tcp://127.0.0.1:1"], "workers' own memory limits"),
    ],
    ids=["slurm", "scheduler"],
)
def test_max_memory_on_a_cluster_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    src = build_image(tmp_path / "in.zarr")
    argv = ["convert", str(src), str(tmp_path / "out.zarr"), "--max-memory", "2GiB", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.zarr").exists()
