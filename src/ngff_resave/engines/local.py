"""Run copy tasks on a pool of threads in this process.

Threads suffice: the work is I/O and codec calls (numcodecs releases the GIL). At most
``workers`` tasks are in flight and tasks are pulled lazily from the iterable, so memory is
bounded by ``workers`` × (one shard) whatever the size of the array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from ngff_resave.copying import CopyTask, ShardOutcome, copy_shard
from ngff_resave.engines.allocator import tune_allocator


class ThreadEngine:
    """The default engine: ``workers`` threads, ``workers`` tasks in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def run(self, tasks: Iterable[CopyTask], on_done: Callable[[ShardOutcome], None]) -> None:
        tune_allocator()
        iterator = iter(tasks)
        pending: set[Future[ShardOutcome]] = set()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="ngff-resave") as pool:
            try:
                exhausted = False
                while True:
                    while not exhausted and len(pending) < self.workers:
                        task = next(iterator, None)
                        if task is None:
                            exhausted = True
                            break
                        pending.add(pool.submit(copy_shard, task))
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_done(future.result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
