"""Run the ngff-resave CLI and SIGKILL it at an exact moment: a deterministic crash.

``python -m tests.reliability.killer WRITE PHASE -- convert IN OUT …`` runs
``ngff_resave.cli.main`` with :meth:`LocalStore.write` wrapped: at the ``WRITE``-th write of
the run (1-based, counted over every key: run marker, array metadata, shards, group metadata)
the process sends itself SIGKILL — no cleanup, no ``finally``, as an OOM kill or a node loss.
``PHASE`` says when within that write:

* ``before``: nothing of that object is written;
* ``torn``: half the bytes sit in the temporary file of the atomic write, not renamed;
* ``after``: the object is in place, the next one not started.

``WRITE`` 0 never kills: the run then prints each written key, one per line, on stdout (the
tests choose their kill points from that sequence).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from ngff_resave.cli import main as cli_main
from ngff_resave.locations import TEMP_SUFFIX, FilePart, LocalStore


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill_at: int, phase: str) -> list[str]:
    """Wrap ``LocalStore.write_parts`` (every local write goes through it); returns the list
    of keys written so far (in order)."""
    original = LocalStore.write_parts
    keys: list[str] = []
    lock = threading.Lock()

    def write_parts(self: LocalStore, key: str, parts: Iterable[bytes | FilePart]) -> int:
        data = b"".join(
            Path(p.path).read_bytes()[: p.size] if isinstance(p, FilePart) else p for p in parts
        )
        if not data and not isinstance(parts, list):
            return 0  # an all-empty shard: nothing is written, not a write
        with lock:
            keys.append(key)
            n = len(keys)
        if n == kill_at and phase == "before":
            _die()
        if n == kill_at and phase == "torn":
            path = Path(self.root, *key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
            tmp.write_bytes(data[: len(data) // 2])
            _die()
        size = original(self, key, [data])
        if n == kill_at and phase == "after":
            _die()
        return size

    LocalStore.write_parts = write_parts  # type: ignore[method-assign]
    return keys


def run(argv: list[str]) -> int:
    """``WRITE PHASE -- ARGS…``: see the module docstring."""
    kill_at, phase = int(argv[0]), argv[1]
    if phase not in ("before", "torn", "after"):
        raise SystemExit(f"unknown phase {phase!r}")
    rest = argv[3:] if argv[2:3] == ["--"] else argv[2:]
    keys = install(kill_at, phase)
    status = cli_main(rest)
    if kill_at == 0:
        print("\n".join(keys))
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
