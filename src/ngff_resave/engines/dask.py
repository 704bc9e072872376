"""Run copy tasks on a Dask distributed cluster: an existing scheduler, a local cluster, SLURM.

The metadata walk, the plan and the group metadata stay on the client (see
:mod:`ngff_resave.convert`); only :func:`~ngff_resave.copying.copy_shard` runs on workers. A
:class:`~ngff_resave.copying.CopyTask` is a small frozen value (stores are configuration only),
so it pickles to a worker as it is.

Failures:

* A worker that dies mid-task (killed, out of memory, node lost) is handled by the scheduler:
  the tasks it held are rescheduled on other workers, up to ``distributed.scheduler.
  allowed-failures`` times (default 3). Rewriting a shard is safe: it is built from the same
  source bytes and written atomically, so a rerun writes the same bytes.
* A task that *raises* is retried ``retries`` times (transient storage errors that outlived the
  store's own retries); after that its exception is raised here as it was raised on the
  worker (the package's own :class:`~ngff_resave.errors.ResaveError`, not a Dask wrapper).

Dask is optional: it is imported only when one of these engines is built, and a missing
install raises :class:`~ngff_resave.errors.MissingDependencyError` saying what to install.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

from ngff_resave.copying import CopyTask, ShardOutcome, copy_shard
from ngff_resave.engines import Engine
from ngff_resave.errors import MissingDependencyError, ResaveError

log = logging.getLogger("ngff_resave")

#: Tasks kept in flight per worker thread: enough to hide scheduling latency, few enough
#: that the client never materialises a large part of a huge task list.
IN_FLIGHT_PER_THREAD = 3
#: In-flight bound when the cluster has no workers yet (SLURM jobs still queued).
MIN_IN_FLIGHT = 8
#: Retries of a task that raised (worker deaths are rescheduled by the scheduler itself).
DEFAULT_RETRIES = 2

TaskFunction = Callable[[CopyTask], ShardOutcome]


class WorkerLostError(ResaveError, RuntimeError):
    """A copy task was lost with its workers more often than the scheduler allows."""


def _require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this option needs the {module.split('.')[0]} package, which is not installed; "
            f"install it with: pip install 'ngff-resave[{extra}]'"
        ) from exc


def _distributed() -> ModuleType:
    return _require("distributed", "dask")


class DaskEngine:
    """Runs copy tasks on a ``distributed.Client``; ``on_done`` runs in the calling thread.

    At most ``max_in_flight`` tasks are submitted at a time (default: ``IN_FLIGHT_PER_THREAD``
    × the cluster's worker threads); tasks are pulled lazily from the iterable, so a task list
    of millions of shards never sits in memory on the client or the scheduler.
    """

    def __init__(
        self,
        client: Any,
        *,
        max_in_flight: int | None = None,
        retries: int = DEFAULT_RETRIES,
        function: TaskFunction = copy_shard,
    ) -> None:
        self.client = client
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.function = function

    def _limit(self) -> int:
        if self.max_in_flight is not None:
            return max(1, self.max_in_flight)
        threads = int(sum(self.client.nthreads().values()))
        return max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads)

    def run(self, tasks: Iterable[CopyTask], on_done: Callable[[ShardOutcome], None]) -> None:
        distributed = _distributed()
        killed_worker: type[BaseException] = distributed.KilledWorker
        iterator: Iterator[CopyTask] = iter(tasks)
        limit = self._limit()
        pending: set[Any] = set()
        completed = distributed.as_completed()
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < limit:
                task = next(iterator, None)
                if task is None:
                    exhausted = True
                    return
                # pure=False: every task is its own key (no deduplication by value), and a
                # shard is written exactly once per submission.
                future = self.client.submit(self.function, task, pure=False, retries=self.retries)
                pending.add(future)
                completed.add(future)

        try:
            refill()
            while pending:
                future = next(completed)
                pending.discard(future)
                try:
                    outcome = future.result()
                except killed_worker as exc:
                    raise WorkerLostError(
                        f"a copy task was lost with its worker too many times ({exc}); check "
                        "the workers' memory limit and logs, then rerun to resume"
                    ) from None
                future.release()
                on_done(outcome)
                refill()
        except BaseException:
            if pending:
                self.client.cancel(list(pending))
            raise


# ---- building an engine from the command line ----------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Dask and SLURM options to the ``convert`` parser (its "distributed" group)."""
    group = parser.add_argument_group(
        "distributed (Dask)",
        "Run the shard copies on a Dask cluster; the walk, the plan and the group metadata "
        "stay on this machine. Needs: pip install 'ngff-resave[dask]' ([slurm] for SLURM).",
    )
    target = group.add_mutually_exclusive_group()
    target.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786",
    )
    target.add_argument(
        "--dask-workers",
        type=_positive_int,
        metavar="N",
        help="start a local Dask cluster of N worker processes on this machine",
    )
    target.add_argument(
        "--slurm-jobs",
        type=_positive_int,
        metavar="N",
        help="submit N SLURM jobs, each one Dask worker (dask-jobqueue)",
    )
    group.add_argument("--slurm-queue", help="SLURM partition of the worker jobs")
    group.add_argument("--slurm-account", help="SLURM account charged for the worker jobs")
    group.add_argument(
        "--slurm-walltime", default="01:00:00", help="time limit of a worker job (HH:MM:SS)"
    )
    group.add_argument("--slurm-memory", default="8GB", help="memory of a worker job, e.g. 16GB")
    group.add_argument(
        "--slurm-cores", type=_positive_int, default=4, help="cores of a worker job (= its threads)"
    )


def slurm_cluster(
    *,
    jobs: int,
    queue: str | None,
    account: str | None,
    walltime: str,
    memory: str,
    cores: int,
    scheduler_options: Mapping[str, Any] | None = None,
) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` of ``jobs`` jobs (each one worker of ``cores`` threads).

    Its ``job_script()`` is the ``sbatch`` script each job runs (checked by the tests, since
    no SLURM runs there). ``jobs=0`` builds the cluster without submitting anything.
    """
    jobqueue = _require("dask_jobqueue", "slurm")
    _distributed()
    cluster = jobqueue.SLURMCluster(
        queue=queue,
        account=account,
        walltime=walltime,
        memory=memory,
        cores=cores,
        processes=1,
        job_name="ngff-resave-worker",
        scheduler_options=dict(scheduler_options or {}),
    )
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster


def local_cluster(n_workers: int, threads_per_worker: int, memory_limit: int | None = None) -> Any:
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1, no dashboard.

    The scheduler's HTTP endpoints (metrics, health) take a free port on 127.0.0.1, not the
    fixed 8787: two conversions on one machine do not collide.

    ``memory_limit`` (bytes per worker process; default: Dask's share of the machine) is
    enforced by each worker's nanny: paused at 80 %, restarted at 95 %.
    """
    distributed = _distributed()
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=max(1, threads_per_worker),
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
        memory_limit="auto" if memory_limit is None else memory_limit,
    )


def _closer(*resources: Any) -> Callable[[], None]:
    def close() -> None:
        for resource in resources:
            try:
                resource.close()
            except Exception as exc:  # closing must not hide the run's own outcome
                log.warning("closing %s failed: %s", type(resource).__name__, exc)

    return close


def _nothing() -> None:
    pass


def max_memory_conflict(args: argparse.Namespace) -> str | None:
    """Why ``--max-memory`` cannot be kept with these Dask options (None: it can)."""
    if not getattr(args, "max_memory", None) or getattr(args, "dask_workers", None):
        return None
    if getattr(args, "slurm_jobs", None):
        return "--max-memory caps this machine's workers; for SLURM jobs use --slurm-memory"
    if getattr(args, "dask_scheduler", None):
        return (
            "--max-memory caps this machine's workers; on an existing Dask cluster the "
            "workers' own memory limits apply"
        )
    return None


def engine_from_args(
    args: argparse.Namespace, workers: int, max_memory: int | None = None
) -> tuple[Engine | None, Callable[[], None]]:
    """The engine the Dask/SLURM options ask for, and a callback that shuts it down.

    Returns ``(None, no-op)`` when no Dask option was given (the caller uses its thread
    engine). ``workers`` is ``--workers`` (0 = one per core): with ``--dask-workers N`` the
    local cluster gets ``workers // N`` threads per process (at least one), and
    ``max_memory`` (bytes, the parsed ``--max-memory``) is shared among its N processes as
    their Dask memory limit. Elsewhere the
    cluster's own limits rule (``--slurm-memory`` for SLURM jobs): the CLI refuses
    ``--max-memory`` there (:func:`max_memory_conflict`).
    """
    scheduler = getattr(args, "dask_scheduler", None)
    n_local = getattr(args, "dask_workers", None)
    n_jobs = getattr(args, "slurm_jobs", None)
    if scheduler is None and n_local is None and n_jobs is None:
        return None, _nothing
    distributed = _distributed()
    if scheduler is not None:
        client = distributed.Client(scheduler)
        log.info("running on the Dask scheduler at %s", scheduler)
        return DaskEngine(client), _closer(client)
    if n_local is not None:
        if workers <= 0:
            from ngff_resave.convert import default_workers

            workers = default_workers()
        limit = None if max_memory is None else max(1, max_memory // n_local)
        cluster = local_cluster(n_local, workers // n_local, limit)
        client = distributed.Client(cluster)
        log.info("started a local Dask cluster of %d worker processes", n_local)
        return DaskEngine(client), _closer(client, cluster)
    assert n_jobs is not None
    cluster = slurm_cluster(
        jobs=n_jobs,
        queue=args.slurm_queue,
        account=args.slurm_account,
        walltime=args.slurm_walltime,
        memory=args.slurm_memory,
        cores=args.slurm_cores,
    )
    client = distributed.Client(cluster)
    log.info("submitted %d SLURM worker jobs", n_jobs)
    # Queued jobs have no threads yet: size the in-flight window by what was asked for.
    limit = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * n_jobs * args.slurm_cores)
    return DaskEngine(client, max_in_flight=limit), _closer(client, cluster)


__all__ = [
    "DaskEngine",
    "WorkerLostError",
    "add_dask_arguments",
    "engine_from_args",
    "local_cluster",
    "max_memory_conflict",
    "slurm_cluster",
]
