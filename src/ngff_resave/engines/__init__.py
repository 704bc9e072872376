"""Executors of copy tasks: local threads (default) and Dask (distributed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ngff_resave.copying import CopyTask, ShardOutcome


class Engine(Protocol):
    """Runs copy tasks; calls ``on_done`` in the caller's thread for every finished task."""

    def run(self, tasks: Iterable[CopyTask], on_done: Callable[[ShardOutcome], None]) -> None:
        """Run every task; raise the first task error after cancelling what is pending."""
        ...
