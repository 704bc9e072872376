"""The ``ngff-resave`` command line: ``main(argv) -> int`` and the one error boundary.

The library never prints or exits; this module turns exceptions into a red one-line
``ERROR`` message and an exit status: 0 success, 1 conversion/validation error, 2 usage error.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

from ngff_resave import __version__
from ngff_resave.cliargs import add_location_args, add_remote_tuning, location_spec
from ngff_resave.convert import ConvertOptions, Progress, convert, default_workers
from ngff_resave.copying import ShardOutcome
from ngff_resave.crateoptions import CrateOptions, add_crate_arguments, crate_options_from_args
from ngff_resave.discover import Inventory, read_json
from ngff_resave.engines.dask import add_dask_arguments, engine_from_args, max_memory_conflict
from ngff_resave.errors import InputError, PlanError, ResaveError, VerificationError
from ngff_resave.locations import Store, open_store
from ngff_resave.metadata.ome import migrate_attributes
from ngff_resave.planning import (
    DEFAULT_SHARD_BYTES,
    PlanOptions,
    parse_codec,
    parse_shape,
    parse_size,
)
from ngff_resave.report import RunReport, now_iso, write_json_atomically
from ngff_resave.scripts import (
    add_convert_array_parser,
    add_script_arguments,
    run_convert_array,
    run_finalize,
    write_scripts,
)
from ngff_resave.terms import format_lookup, lookup
from ngff_resave.verify import verify_output

log = logging.getLogger("ngff_resave")
_T = TypeVar("_T")


class UsageError(Exception):
    """A command-line usage error (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit(2) itself
        raise UsageError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="only errors and the summary")
    parser.add_argument(
        "--log",
        default="info",
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
        help="log level (debug also shows tracebacks)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="ngff-resave",
        description="Convert OME-Zarr 0.4 (Zarr v2) to OME-Zarr 0.5 (Zarr v3, sharded).",
    )
    parser.add_argument("--version", action="version", version=f"ngff-resave {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    conv = sub.add_parser(
        "convert",
        aliases=["resave"],
        help="convert a whole OME-Zarr 0.4 hierarchy to 0.5",
        description="Convert a whole OME-Zarr 0.4 hierarchy (image, labels, plate, "
        "bioformats2raw container) to OME-Zarr 0.5.",
    )
    conv.add_argument("input", help="the 0.4 input (path, s3://bucket/prefix or http(s) URL)")
    conv.add_argument(
        "output", help="the 0.5 output (or the details JSON with --output-write-details)"
    )
    conv.add_argument("--output-overwrite", action="store_true", help="replace an existing output")
    conv.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (rerunning the same command also resumes)",
    )
    plan = conv.add_argument_group("chunks, shards and codec")
    plan.add_argument(
        "--shard-size",
        default=None,
        help=f"target uncompressed shard size (default {DEFAULT_SHARD_BYTES // 2**20}MiB)",
    )
    plan.add_argument("--output-chunks", help="inner chunk shape for all arrays, e.g. 1,1,64,64,64")
    plan.add_argument("--output-shards", help="shard shape for all arrays, e.g. 1,1,256,512,512")
    plan.add_argument(
        "--output-codec",
        help="re-encode with this codec: zstd, blosc-zstd, blosc-lz4, gzip, none "
        "(optionally :LEVEL); default: keep the source's codec and copy chunks as stored",
    )
    plan.add_argument(
        "--output-write-details",
        action="store_true",
        help="write the plan as JSON to OUTPUT instead of converting",
    )
    plan.add_argument(
        "--output-read-details", metavar="FILE", help="take chunks/shards/codec from a plan file"
    )
    run = conv.add_argument_group("run")
    run.add_argument(
        "--verify",
        choices=["none", "sample", "full"],
        default="sample",
        help="check the output after writing: metadata plus a sample of shards (default) "
        "or every shard",
    )
    run.add_argument("--workers", type=int, default=0, help="concurrent shards (default: cores)")
    run.add_argument("--max-memory", help="cap on memory, e.g. 4GiB (reduces concurrency)")
    run.add_argument("--report", metavar="FILE", help="write the run report (JSON) here")
    crate = conv.add_argument_group("RO-Crate")
    crate.add_argument(
        "--output-rocrate",
        action="store_true",
        help="write ro-crate-metadata.json at the output root (needs --rocrate-license); "
        "implied by any --rocrate-* option",
    )
    add_crate_arguments(conv)
    add_dask_arguments(conv)
    add_script_arguments(conv)
    add_location_args(conv, "input")
    add_location_args(conv, "output")
    add_remote_tuning(conv)
    _common(conv)

    add_convert_array_parser(sub)
    _common(sub.choices["convert-array"])
    _common(sub.choices["finalize"])

    ver = sub.add_parser(
        "verify",
        help="check an existing 0.5 output against its 0.4 input",
        description="Check an existing output against its input: 0.5 metadata, every "
        "zarr.json against what the input converts to, and the data of every shard (full) "
        "or of a sample.",
    )
    ver.add_argument("input", help="the 0.4 input")
    ver.add_argument("output", help="the 0.5 output")
    ver.add_argument("--verify", choices=["sample", "full"], default="full", help="default: full")
    ver.add_argument("--workers", type=int, default=0, help="concurrent shards (default: cores)")
    add_location_args(ver, "input")
    add_location_args(ver, "output")
    add_remote_tuning(ver)
    _common(ver)

    crate_cmd = sub.add_parser(
        "crate",
        help="write or update the RO-Crate of an existing output (data untouched)",
        description="Write or update ro-crate-metadata.json of an existing OME-Zarr 0.5 "
        "output; only that file is written.",
    )
    crate_cmd.add_argument("output", help="the 0.5 output (path, s3://bucket/prefix)")
    add_crate_arguments(crate_cmd)
    add_location_args(crate_cmd, "output")
    add_remote_tuning(crate_cmd)
    _common(crate_cmd)

    look = sub.add_parser(
        "lookup",
        help="find the id of an organism or imaging method",
        description="Search the built-in tables of organisms (NCBI taxonomy) and imaging "
        "methods (FBbi) used by --rocrate-organism and --rocrate-modality.",
    )
    look.add_argument("text", help='what to look for, e.g. "confocal" or "mouse"')
    look.add_argument("--limit", type=int, default=10, help="at most this many results")
    _common(look)

    val = sub.add_parser(
        "validate",
        help="validate an OME-Zarr 0.5 hierarchy",
        description="Validate every node of an OME-Zarr 0.5 hierarchy with ome-zarr-models.",
    )
    val.add_argument("path", help="the 0.5 hierarchy (path, s3://bucket/prefix or URL)")
    add_location_args(val, "input")
    add_remote_tuning(val)
    _common(val)
    return parser


class _CliProgress(Progress):
    """A progress bar on a terminal; a log line every 10 s otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.done = 0
        self.total = 0
        self.last = time.monotonic()

    def start(self, total_shards: int, total_bytes: int) -> None:
        self.total = total_shards
        if self.quiet:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_shards, unit="shard", desc="converting", file=sys.stderr)
        else:
            log.info("copying %d shards (%.1f MB of pixels)", total_shards, total_bytes / 1e6)

    def advance(self, outcome: ShardOutcome) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet and time.monotonic() - self.last > 10:
            self.last = time.monotonic()
            log.info("%d/%d shards done", self.done, self.total)

    def phase(self, text: str) -> None:
        if not self.quiet:
            log.info("%s", text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _flag(flag: str, parse: Callable[[str], _T], text: str) -> _T:
    """``parse(text)`` of a command-line value; a value it rejects is a usage error (exit 2)."""
    try:
        return parse(text)
    except PlanError as exc:
        message = str(exc)
        raise UsageError(message if flag in message else f"{flag}: {message}") from exc


def _plan_options(args: argparse.Namespace) -> PlanOptions:
    def shape(flag: str, text: str | None) -> tuple[int, ...] | None:
        return _flag(flag, lambda t: parse_shape(t, flag), text) if text else None

    return PlanOptions(
        shard_bytes=(
            _flag("--shard-size", parse_size, args.shard_size)
            if args.shard_size
            else DEFAULT_SHARD_BYTES
        ),
        chunks=shape("--output-chunks", args.output_chunks),
        shards=shape("--output-shards", args.output_shards),
        codec=_flag("--output-codec", parse_codec, args.output_codec)
        if args.output_codec
        else None,
        codec_given=args.output_codec is not None,
    )


def _crate_writer(
    args: argparse.Namespace, options: CrateOptions
) -> Callable[[Store, RunReport, Inventory], None]:
    def write(dest: Store, report: RunReport, inventory: Inventory) -> None:
        from ngff_resave.crate import Provenance, build_crate, default_name, write_crate

        root = inventory.groups[0]
        ome = migrate_attributes(root.attrs, root.kind).get("ome", {})
        totals = report.totals()
        keys = ("bytes_read", "bytes_written", "raw_bytes", "wall_seconds", "cpu_seconds")
        figures = {key: totals[key] for key in keys}
        document = build_crate(
            options,
            default_name=default_name(ome, _basename(args.output)),
            provenance=Provenance(
                __version__,
                report.input_url,
                report.output_url,
                report.started_at,
                report.ended_at,
                figures,
            ),
            date_published=report.ended_at[:10],
        )
        write_crate(dest, document)

    return write


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def _crate_requested(args: argparse.Namespace, options: CrateOptions) -> bool:
    given = (options.license, options.organism, options.modality, options.name)
    return bool(args.output_rocrate) or any(v is not None for v in given)


def _run_convert(args: argparse.Namespace) -> int:
    plan = _plan_options(args)  # bad flag values are usage errors, before anything else
    if plan.chunks and plan.shards and len(plan.chunks) != len(plan.shards):
        raise UsageError("--output-chunks and --output-shards must have the same length")
    if args.workers < 0:
        raise UsageError("--workers must be 0 (one per core) or more")
    conflict = max_memory_conflict(args)
    if conflict:
        raise UsageError(conflict)
    crate_options = crate_options_from_args(args)
    crate_writer = None
    if _crate_requested(args, crate_options) and not args.output_write_details:
        from ngff_resave.crate import check_options

        check_options(crate_options)  # unknown terms or no license: fail before copying
        crate_writer = _crate_writer(args, crate_options)
    options = ConvertOptions(
        input=location_spec(args, "input", args.input),
        output=location_spec(args, "output", args.output),
        plan=plan,
        overwrite=args.output_overwrite,
        resume=args.resume,
        write_details=args.output_write_details,
        read_details=args.output_read_details,
        verify=args.verify,
        workers=args.workers,
        max_memory=_flag("--max-memory", parse_size, args.max_memory) if args.max_memory else None,
        crate_writer=crate_writer,
    )
    dask_asked = any(
        getattr(args, name, None) is not None
        for name in ("dask_scheduler", "dask_workers", "slurm_jobs")
    )
    if args.output_script:
        if args.output_write_details or dask_asked:
            raise UsageError(
                "--output-script cannot be combined with --output-write-details or Dask options"
            )
        scripts = write_scripts(options, args.script_tool, script_workers=args.workers)
        print(
            f"wrote {len(scripts.array_scripts)} array scripts; run "
            f"{args.output.rstrip('/')}/{scripts.convert_all} (or use {scripts.array_list} "
            "with a job array), which finalizes the output last",
            file=sys.stderr,
        )
        return 0
    engine, close = engine_from_args(args, args.workers, options.max_memory)
    try:
        result = convert(replace(options, engine=engine), _CliProgress(args.quiet))
    finally:
        close()
    if args.report:
        write_json_atomically(args.report, result.report.to_json())
    if options.write_details:
        print(f"wrote the plan of {len(result.plans)} arrays to {args.output}", file=sys.stderr)
    else:
        print(result.report.summary(), file=sys.stderr)
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from ngff_resave.crate import CRATE_KEY, check_crate
    from ngff_resave.validate import format_results, validate_hierarchy

    store = open_store(location_spec(args, "input", args.path))
    results = validate_hierarchy(store)
    print(format_results(results))
    failed = [r for r in results if not r.ok]
    crate_problems = check_crate(store)
    for problem in crate_problems:
        print(f"FAILED  ro-crate      {problem}")
    crate_note = f", RO-Crate: {len(crate_problems)} problems" if store.exists(CRATE_KEY) else ""
    print(
        f"{len(results) - len(failed)} nodes ok, {len(failed)} failed{crate_note}",
        file=sys.stderr,
    )
    return 1 if failed or crate_problems else 0


def _run_verify(args: argparse.Namespace) -> int:
    check = verify_output(
        location_spec(args, "input", args.input),
        location_spec(args, "output", args.output),
        args.verify,
        args.workers or default_workers(),
    )
    if check.problems:
        more = f" (and {len(check.problems) - 1} more)" if len(check.problems) > 1 else ""
        for problem in check.problems[1:]:
            log.error("%s", problem)
        raise VerificationError(f"verification failed: {check.problems[0]}{more}")
    print(f"verified {check.checked_shards} shards: output equals input", file=sys.stderr)
    return 0


def _run_crate(args: argparse.Namespace) -> int:
    from ngff_resave.crate import CRATE_KEY, default_name, update_crate

    store = open_store(location_spec(args, "output", args.output))
    root = read_json(store, "zarr.json")
    if not isinstance(root, dict):
        raise InputError(
            f"{store.describe('zarr.json')}: no OME-Zarr 0.5 output here; convert first"
        )
    attributes = root.get("attributes")
    ome = attributes.get("ome") if isinstance(attributes, dict) else None
    update_crate(
        store,
        crate_options_from_args(args),
        default_name=default_name(ome if isinstance(ome, dict) else {}, _basename(args.output)),
        date_published=now_iso()[:10],
    )
    print(f"wrote {store.describe(CRATE_KEY)}", file=sys.stderr)
    return 0


def _run_lookup(args: argparse.Namespace) -> int:
    results = lookup(args.text, args.limit)
    if not results:
        print(f"nothing matches {args.text!r}", file=sys.stderr)
        return 1
    print("\n".join(format_lookup(results)))
    return 0


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("ngff_resave")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _error(message: str) -> None:
    red = sys.stderr.isatty()
    prefix = "\x1b[31mERROR\x1b[0m" if red else "ERROR"
    print(f"{prefix}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (callable from tests)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        _error(str(exc))
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    _configure_logging("warning" if args.quiet and args.log == "info" else args.log)
    try:
        if args.command in ("convert", "resave"):
            return _run_convert(args)
        if args.command == "validate":
            return _run_validate(args)
        if args.command == "verify":
            return _run_verify(args)
        if args.command == "crate":
            return _run_crate(args)
        if args.command == "lookup":
            return _run_lookup(args)
        if args.command == "convert-array":
            return run_convert_array(args)
        if args.command == "finalize":
            return run_finalize(args)
        raise UsageError(f"unknown command {args.command}")  # pragma: no cover
    except UsageError as exc:
        _error(str(exc))
        return 2
    except ResaveError as exc:
        if args.log == "debug":
            log.exception("details")
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted; rerun the same command to resume")
        return 130
    except Exception as exc:  # the one boundary: no traceback unless --log debug
        if args.log == "debug":
            log.exception("unexpected error")
        _error(f"unexpected {type(exc).__name__}: {exc} (rerun with --log debug for details)")
        return 1


def console_main() -> None:
    """Entry point of the ``ngff-resave`` console script."""
    _exit_now(main())


def _exit_now(code: int) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down.

    When ``main`` returns, every file is written and closed and every worker has stopped.
    Destroying the modules a run loaded (the pydantic models of the validator, zarr-python)
    still took ~0.4 s of one core per run, measured; that is 1-4 % of a conversion's wall
    time on the benchmark. Exit handlers run, the logs and standard streams are flushed,
    then the process ends.
    """
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
        code = code or 1
    os._exit(code)
