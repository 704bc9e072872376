"""The conversion, step by step (one direction of flow):

open locations → discover (read-only) → plan → [details file] → check the output →
write array metadata → copy shards (engine) → verify data → copy OME files → write group
metadata (last: a crashed run never looks done) → validate metadata → RO-Crate → report.

A run in progress leaves ``.ngff-resave-run.json`` at the output root, holding its plan.
Rerunning the same command resumes: shards already written whole are kept (every shard is
written atomically, so "exists" means "done"). The marker is removed when the run succeeds.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psutil

from ngff_resave import __version__
from ngff_resave.chunkcodecs import check_source_codecs
from ngff_resave.copying import CopyTask, ShardOutcome, shard_indices, task_memory
from ngff_resave.discover import ArrayNode, Inventory, discover, read_json
from ngff_resave.engines import Engine
from ngff_resave.engines.local import ThreadEngine
from ngff_resave.errors import (
    InputError,
    OutputExistsError,
    PlanError,
    ResaveError,
    VerificationError,
)
from ngff_resave.generic import copy_generic_array
from ngff_resave.locations import (
    TEMP_SUFFIX,
    LocalStore,
    LocationSpec,
    Store,
    join_key,
    open_store,
    remove_temporaries,
)
from ngff_resave.metadata.arrays import sharded_array_metadata
from ngff_resave.metadata.ome import migrate_attributes
from ngff_resave.planning import (
    ArrayPlan,
    PlanOptions,
    apply_details,
    details_document,
    plan_inventory,
)
from ngff_resave.report import ArrayStats, MemorySampler, RunReport, now_iso, write_json_atomically
from ngff_resave.verify import verify_data

log = logging.getLogger("ngff_resave")

RUN_MARKER = ".ngff-resave-run.json"
#: Memory budgeted for everything but the copy tasks (interpreter, libraries, metadata).
FIXED_MEMORY = 200 * 1024 * 1024
VerifyMode = Literal["none", "sample", "full"]


class Progress:
    """Receives progress events; the CLI shows a bar or log lines, tests ignore them."""

    def start(self, total_shards: int, total_bytes: int) -> None:
        """The copy starts."""

    def advance(self, outcome: ShardOutcome) -> None:
        """A shard is done."""

    def phase(self, text: str) -> None:
        """A new phase starts (walk, plan, verify…)."""

    def close(self) -> None:
        """The copy is over."""


@dataclass(frozen=True)
class ConvertOptions:
    """Everything a conversion run needs to know."""

    input: LocationSpec
    output: LocationSpec
    plan: PlanOptions = field(default_factory=PlanOptions)
    overwrite: bool = False
    resume: bool = False
    write_details: bool = False
    read_details: str | None = None
    verify: VerifyMode = "sample"
    workers: int = 0  # 0: one per core
    max_memory: int | None = None
    #: Called with the output store and the finished report to write the RO-Crate (or None).
    crate_writer: Callable[[Store, RunReport, Inventory], None] | None = None
    #: Runs the copy tasks (default: :class:`ThreadEngine` with the effective workers).
    engine: Engine | None = None


@dataclass
class ConvertResult:
    """What :func:`convert` returns: the report, and the plan (the details file)."""

    report: RunReport
    plans: list[ArrayPlan]
    details: dict[str, Any] | None = None


def default_workers() -> int:
    """One worker per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def effective_workers(
    options: ConvertOptions, plans: Sequence[ArrayPlan], nodes: Mapping[str, ArrayNode]
) -> int:
    """Workers after the memory cap (``--max-memory``).

    Peak memory ≈ fixed overhead (interpreter, libraries, metadata: 200 MiB budgeted) +
    workers × the largest :func:`~ngff_resave.copying.task_memory` of the plan. At least one
    task is always in flight.
    """
    workers = options.workers or default_workers()
    if options.max_memory is None or not plans:
        return workers
    largest = max(task_memory(p, nodes[p.path].meta) for p in plans)
    budget = options.max_memory - FIXED_MEMORY
    fit = max(1, budget // max(1, largest))
    if budget < largest:
        log.warning(
            "--max-memory %.0f MiB is below what one copy task needs (%.0f MiB with the fixed "
            "%.0f MiB): running one task at a time; lower --shard-size to need less",
            options.max_memory / 2**20,
            (FIXED_MEMORY + largest) / 2**20,
            FIXED_MEMORY / 2**20,
        )
    if fit < workers:
        log.info("--max-memory allows %d concurrent shards (of %d workers)", fit, workers)
    return int(min(workers, fit))


def check_locations(source: Store, dest: Store) -> None:
    """Refuse an output that overlaps the input (the input is never modified)."""
    if isinstance(source, LocalStore) and isinstance(dest, LocalStore):
        src = os.path.realpath(source.root)
        out = os.path.realpath(dest.root)
        if src == out or out.startswith(src + os.sep) or src.startswith(out + os.sep):
            raise PlanError(
                f"output {dest.root} and input {source.root} overlap; choose an output outside "
                "the input (the input is never modified)"
            )


def prepare_output(dest: Store, options: ConvertOptions, plan_doc: dict[str, Any]) -> bool:
    """Check the output location; returns whether this run resumes an earlier one."""
    if dest.can_list and not dest.exists(RUN_MARKER):
        # A run killed while writing its marker leaves only temporary files: nothing written.
        keys = list(itertools.islice(dest.list_keys(""), 1000))
        if keys and all(k.endswith(TEMP_SUFFIX) for k in keys):
            for key in keys:
                dest.delete_prefix(key)
    if dest.is_empty():
        if options.resume:
            raise OutputExistsError(f"{dest.url}: nothing to resume (the output is empty)")
        return False
    marker = read_json(dest, RUN_MARKER) if dest.exists(RUN_MARKER) else None
    if options.overwrite:
        log.info("removing the existing output %s (--output-overwrite)", dest.url)
        dest.delete_prefix("")
        return False
    if marker is None:
        raise OutputExistsError(
            f"{dest.url}: output already exists; choose another output or pass "
            "--output-overwrite to replace it"
        )
    if marker.get("plan") != plan_doc.get("arrays"):
        raise OutputExistsError(
            f"{dest.url}: holds an interrupted run with a different plan (chunks, shards or "
            "codec); rerun with the same options to resume, or pass --output-overwrite"
        )
    remove_temporaries(dest)
    log.info("resuming the interrupted run in %s", dest.url)
    return True


def run_marker_document(details: dict[str, Any]) -> bytes:
    """The run marker: the plan of the run in progress (a rerun resumes only the same plan)."""
    return (json.dumps({"plan": details["arrays"]}, indent=1) + "\n").encode()


def group_document(attrs: dict[str, Any]) -> bytes:
    """The ``zarr.json`` of a converted group."""
    doc = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode()


def array_document(node: ArrayNode, plan: ArrayPlan) -> bytes:
    """The ``zarr.json`` of a converted array (sharded as planned)."""
    doc = sharded_array_metadata(
        node.meta,
        chunks=plan.chunks,
        shards=plan.shards,
        codec=plan.codec,
        dimension_names=node.dimension_names,
        attributes=dict(node.attrs),
    )
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode()


def plan_conversion(
    source: Store, options: ConvertOptions
) -> tuple[Inventory, list[ArrayPlan], list[str]]:
    """Walk the input and plan every array (applying a details file if given)."""
    inventory = discover(source)
    for node in inventory.arrays:
        check_source_codecs(node.meta, source.describe(join_key(node.path, ".zarray")))
    plans = plan_inventory(inventory, options.plan)
    warnings = list(inventory.warnings)
    if options.read_details:
        path = options.read_details
        try:
            with open(path, encoding="utf-8") as fh:
                document = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"{path}: details file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a valid JSON details file ({exc})") from None
        plans, more = apply_details(inventory, plans, document, where=path)
        warnings.extend(more)
    return inventory, plans, warnings


def convert(options: ConvertOptions, progress: Progress | None = None) -> ConvertResult:
    """Convert the 0.4 hierarchy at ``options.input`` to 0.5 at ``options.output``."""
    progress = progress or Progress()
    started_at = now_iso()
    t0 = time.monotonic()
    cpu0 = psutil.Process().cpu_times()
    source = open_store(options.input)
    progress.phase(f"reading the input {source.url}")
    inventory, plans, warnings = plan_conversion(source, options)
    for warning in warnings:
        log.warning("%s", warning)
    details = details_document(plans, source=source.url, shard_bytes=options.plan.shard_bytes)

    if options.write_details:
        write_json_atomically(options.output.path, details)
        report = RunReport(__version__, source.url, options.output.path, started_at, 0)
        report.warnings = warnings
        report.ended_at = now_iso()
        return ConvertResult(report, plans, details)

    if options.verify != "none":
        # The 0.5 models (pydantic) take a second or more to import: do it while copying.
        threading.Thread(target=_import_validator, name="import-validator", daemon=True).start()
    dest = open_store(options.output, for_writing=True)
    check_locations(source, dest)
    resuming = prepare_output(dest, options, details)
    nodes = {n.path: n for n in inventory.arrays}
    workers = effective_workers(options, plans, nodes)
    report = RunReport(__version__, source.url, dest.url, started_at, workers)
    report.warnings = warnings
    for plan in plans:
        report.arrays[plan.path] = ArrayStats(
            plan.path, plan.path_taken, plan.reason, plan.shard_count
        )
        log.info("array %s: %s (%s)", plan.path or "/", plan.path_taken, plan.reason)

    dest.write(RUN_MARKER, run_marker_document(details))
    for plan in plans:
        dest.write(join_key(plan.path, "zarr.json"), array_document(nodes[plan.path], plan))

    # Non-numeric arrays (table columns) first: they are small, always (re)copied, and one
    # zarr-python cannot read stops the run now, not after hours of pixel copying.
    for path in inventory.generic_arrays:
        copy_generic_array(source, dest, path)

    templates = [
        CopyTask(source, dest, p.path, nodes[p.path].meta, p, (0,) * len(p.shape), resuming)
        for p in plans
    ]

    def tasks() -> Iterator[CopyTask]:
        for template in templates:
            for shard in shard_indices(template.plan):
                yield CopyTask(
                    source, dest, template.path, template.meta, template.plan, shard, resuming
                )

    total_raw = sum(math.prod(p.shape) * nodes[p.path].meta.itemsize for p in plans)
    progress.start(sum(p.shard_count for p in plans), total_raw)
    with MemorySampler() as sampler:

        def on_done(outcome: ShardOutcome) -> None:
            report.record(outcome, sampler.take_window())
            progress.advance(outcome)

        copy_start = time.monotonic()
        try:
            engine = options.engine or ThreadEngine(workers)
            engine.run(tasks(), on_done)
        finally:
            progress.close()
        report.copy_seconds = time.monotonic() - copy_start
        if options.engine is not None:
            # A distributed worker killed mid-write leaves a temporary file; its task reran.
            remove_temporaries(dest)

        report.verification = options.verify
        if options.verify != "none":
            progress.phase(f"verifying data ({options.verify})")
            verify_start = time.monotonic()
            checked, problems = verify_data(templates, options.verify, workers)
            report.verify_seconds = time.monotonic() - verify_start
            report.verified_shards = checked
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise VerificationError(f"verification failed: {problems[0]}{more}")

        progress.phase("writing group metadata")
        for key in inventory.files:
            data = source.read(key)
            if data is not None:
                dest.write(key, data)
                report.files_copied += 1
        # Children first, the root last: a node is declared 0.5 only when all below is there.
        for group in reversed(inventory.groups):
            dest.write(
                join_key(group.path, "zarr.json"),
                group_document(migrate_attributes(group.attrs, group.kind)),
            )
            report.groups_written += 1
        report.peak_rss_bytes = sampler.peak

    if options.verify != "none":
        progress.phase("validating OME-Zarr 0.5 metadata")
        _validate_metadata(dest)

    cpu1 = psutil.Process().cpu_times()
    report.cpu_seconds = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    report.wall_seconds = time.monotonic() - t0
    report.ended_at = now_iso()
    if options.crate_writer is not None:
        options.crate_writer(dest, report, inventory)
    dest.delete_prefix(RUN_MARKER)
    return ConvertResult(report, plans, details)


def _import_validator() -> None:
    import ngff_resave.validate  # noqa: F401


def _validate_metadata(dest: Store) -> None:
    from ngff_resave.validate import validate_hierarchy

    failures = [r for r in validate_hierarchy(dest) if not r.ok]
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        # The output must not look complete: drop the root metadata, keep the run marker.
        dest.delete_prefix("zarr.json")
        raise VerificationError(
            f"output metadata is not valid OME-Zarr 0.5: {first.path or '/'} ({first.kind}): "
            f"{first.message}{more}"
        )


__all__ = ["ConvertOptions", "ConvertResult", "Progress", "ResaveError", "convert"]
