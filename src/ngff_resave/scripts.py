"""Per-array conversion scripts (``--output-script``), and the commands they run.

Instead of converting, ``convert --output-script`` prepares the output and writes one
executable script per array, so that the arrays can be converted as separate jobs (an HPC job
array, a workflow engine, several machines)::

    OUTPUT/
      ngff-resave-details.json     the plan (chunks, shards, codec of every array)
      .ngff-resave-run.json        "a run is in progress" (the same marker ``convert`` uses)
      arrays.txt                   one array path per line (``.`` for a root array)
      convert-all.sh               runs every per-array script, then ``ngff-resave finalize``
      <array path>/zarr.json       the array metadata, as ``convert`` writes it
      <array path>/convert.sh      converts that one array (at the array's own path: the
                                   reference converter doubled it for non-root images)

Two flavours (``--script-tool``): ``ngff-resave`` (``ngff-resave convert-array``: copies one
array's shards with the plan's chunks, shards and codec; resumable; the fast copy path
applies) and ``zarrs_reencode`` (the Rust tool of zarrs_tools, local files only).

When the output becomes valid: group ``zarr.json`` documents (which declare the nodes
OME-Zarr 0.5) are *not* written by ``--output-script``. They are written by the last step,
``ngff-resave finalize INPUT OUTPUT``, which is an ordinary resumed ``convert`` with the stored
plan: it keeps every shard already written, writes any shard still missing (so a failed job
is repaired rather than silently left out), verifies, then writes the group metadata last and
removes the run marker. Until then the output never looks complete to a reader.

Credentials never go into scripts: they name locations (paths, buckets, endpoints, regions,
``--*-anon``) only; S3 keys come from the environment of the machine that runs them. URLs with
a user name or password are refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from ngff_resave import __version__
from ngff_resave.chunkcodecs import check_source_codecs
from ngff_resave.cliargs import add_location_args, add_remote_tuning, location_spec
from ngff_resave.convert import (
    RUN_MARKER,
    ConvertOptions,
    ConvertResult,
    array_document,
    check_locations,
    convert,
    plan_conversion,
    prepare_output,
    run_marker_document,
)
from ngff_resave.copying import CopyTask, ShardOutcome, shard_indices
from ngff_resave.discover import ArrayNode, read_json
from ngff_resave.engines.local import ThreadEngine
from ngff_resave.errors import InputError, OutputExistsError, PlanError, VerificationError
from ngff_resave.locations import (
    LocalStore,
    LocationSpec,
    Store,
    join_key,
    open_store,
    remove_temporaries,
)
from ngff_resave.metadata.arrays import parse_v2_array, v3_data_type
from ngff_resave.planning import ArrayPlan, details_document
from ngff_resave.verify import verify_data

log = logging.getLogger("ngff_resave")

ScriptTool = Literal["ngff-resave", "zarrs_reencode"]
SCRIPT_TOOLS: tuple[ScriptTool, ...] = ("ngff-resave", "zarrs_reencode")

DETAILS_KEY = "ngff-resave-details.json"
ARRAY_LIST_KEY = "arrays.txt"
CONVERT_ALL_KEY = "convert-all.sh"
ARRAY_SCRIPT_NAME = "convert.sh"
#: Every file ``--output-script`` adds that a direct ``convert`` does not write.
SCRIPT_FILES = (DETAILS_KEY, ARRAY_LIST_KEY, CONVERT_ALL_KEY, ARRAY_SCRIPT_NAME)

#: The ngff-resave command the scripts run; override with NGFF_RESAVE="python -m ngff_resave".
_NGFF_RESAVE = "${NGFF_RESAVE:-ngff-resave}"


@dataclass
class ScriptsResult:
    """What :func:`write_scripts` wrote (keys relative to the output root)."""

    plans: list[ArrayPlan]
    array_scripts: list[str] = field(default_factory=list)
    convert_all: str = CONVERT_ALL_KEY
    array_list: str = ARRAY_LIST_KEY
    details: str = DETAILS_KEY
    warnings: list[str] = field(default_factory=list)


# ---- locations on a command line (never credentials) ----------------------------------------


def _check_no_credentials(spec: LocationSpec, side: str) -> None:
    for value in (spec.path, spec.endpoint or ""):
        parts = urlsplit(value)
        if parts.scheme and (parts.username or parts.password):
            raise PlanError(
                f"the {side} URL {parts.scheme}://…@{parts.hostname} holds credentials, which "
                "would be written into the scripts; pass credentials through the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws) instead"
            )


def _absolute(spec: LocationSpec) -> str:
    if spec.bucket or spec.path.startswith(("s3://", "http://", "https://")):
        return spec.path
    return os.path.abspath(os.path.expanduser(spec.path))


def location_arguments(spec: LocationSpec, side: str) -> list[str]:
    """The ``--{side}-*`` flags that reopen ``spec`` (names of places only, no secrets)."""
    args: list[str] = []
    if spec.bucket:
        args += [f"--{side}-bucket", spec.bucket]
    if spec.endpoint:
        args += [f"--{side}-endpoint", spec.endpoint]
    if spec.region:
        args += [f"--{side}-region", spec.region]
    if spec.anon:
        args.append(f"--{side}-anon")
    return args


def _command(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _line_path(path: str) -> str:
    """An array path as a line of ``arrays.txt`` (``.`` is the root)."""
    return path or "."


# ---- the script texts --------------------------------------------------------------------


def _header(what: str) -> list[str]:
    return [
        "#!/usr/bin/env bash",
        f"# {what}",
        f"# Written by ngff-resave {__version__} (convert --output-script).",
        "# No credentials in here: S3 access uses AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or",
        "# ~/.aws of the machine that runs it.",
        "set -euo pipefail",
    ]


def ngff_resave_array_script(options: ConvertOptions, plan: ArrayPlan, *, workers: int = 0) -> str:
    """The ``convert.sh`` of one array, flavour ``ngff-resave`` (``convert-array``)."""
    words = [
        _absolute(options.input),
        _absolute(options.output),
        "--array",
        _line_path(plan.path),
        *location_arguments(options.input, "input"),
        *location_arguments(options.output, "output"),
    ]
    if workers:
        words += ["--workers", str(workers)]
    lines = _header(f"Convert array '{_line_path(plan.path)}' to OME-Zarr 0.5 (one job).")
    lines += [
        f"# Plan: chunks {list(plan.chunks)}, shards {list(plan.shards)}, {plan.path_taken}.",
        f"# The plan is read from OUTPUT/{DETAILS_KEY}. Resumable: rerun after a crash,",
        "# shards already written are kept. Set NGFF_RESAVE to run another ngff-resave",
        '# (e.g. NGFF_RESAVE="python -m ngff_resave").',
        f"{_NGFF_RESAVE} convert-array {_command(words)}",
        "",
    ]
    return "\n".join(lines)


def zarrs_reencode_array_script(options: ConvertOptions, plan: ArrayPlan, node: ArrayNode) -> str:
    """The ``convert.sh`` of one array, flavour ``zarrs_reencode`` (zarrs_tools).

    Flags as documented by zarrs_tools (``zarrs_reencode [OPTIONS] <PATH_IN> <PATH_OUT>``):
    ``--chunk-shape``/``--shard-shape`` (comma separated), ``--dimension-names`` (comma
    separated), ``--separator /`` (the v3 default chunk keys), ``--bytes-to-bytes-codecs``
    (JSON list), ``--validate``. zarrs_reencode erases ``PATH_OUT`` first, so it writes to a
    hidden sibling directory whose result is then moved in (keeping this script in place).
    """
    source = _absolute(options.input)
    dest = _absolute(options.output)
    if not plan.path:
        raise PlanError(
            "--script-tool zarrs_reencode cannot convert an array at the root of the output "
            "(zarrs_reencode erases its output directory); use --script-tool ngff-resave"
        )
    parent, _, name = plan.path.rpartition("/")
    array_in = source.rstrip("/") + "/" + plan.path
    array_out = os.path.join(dest, *plan.path.split("/"))
    scratch = os.path.join(dest, *parent.split("/"), f".{name}.zarrs-tmp")
    codecs = [dict(plan.codec)] if plan.codec is not None else []
    words = [
        "zarrs_reencode",
        "--chunk-shape",
        ",".join(str(c) for c in plan.chunks),
        "--shard-shape",
        ",".join(str(s) for s in plan.shards),
    ]
    if node.dimension_names is not None:
        words += ["--dimension-names", ",".join(node.dimension_names)]
    words += [
        "--separator",
        "/",
        "--bytes-to-bytes-codecs",
        json.dumps(codecs, separators=(",", ":")),
        "--validate",
        '"$in"',
        '"$tmp"',
    ]
    command = " ".join(w if w.startswith('"$') else shlex.quote(w) for w in words)
    lines = _header(f"Convert array '{plan.path}' to Zarr v3 with zarrs_reencode (one job).")
    lines += [
        "# Install: cargo install zarrs_tools   (prebuilt: cargo binstall zarrs_tools)",
        "# zarrs_reencode writes its own zarr.json; `ngff-resave finalize` (in convert-all.sh)",
        "# rewrites the planned one, fills in any missing shard, verifies and writes the groups.",
        f"in={shlex.quote(array_in)}",
        f"out={shlex.quote(array_out)}",
        f"tmp={shlex.quote(scratch)}",
        'rm -rf "$tmp"',
        command,
        'rm -rf "$out/c"',
        'if [ -d "$tmp/c" ]; then mv "$tmp/c" "$out/c"; fi',
        'mv "$tmp/zarr.json" "$out/zarr.json"',
        'rm -rf "$tmp"',
        "",
    ]
    return "\n".join(lines)


def convert_all_script(options: ConvertOptions, tool: ScriptTool, count: int) -> str:
    """The top-level ``convert-all.sh``: every array in turn, then ``finalize``."""
    finalize = [
        _absolute(options.input),
        _absolute(options.output),
        *location_arguments(options.input, "input"),
        *location_arguments(options.output, "output"),
    ]
    lines = _header(f"Convert all {count} arrays (flavour {tool}), then finalize the output.")
    lines += [
        "#",
        "# On a SLURM cluster, run the arrays as a job array instead (from this directory):",
        f"#   n=$(wc -l < {ARRAY_LIST_KEY})",
        "#   jid=$(sbatch --parsable --array=1-$n --wrap \\",
        '#     \'bash "$(sed -n "${SLURM_ARRAY_TASK_ID}p" '
        f"{ARRAY_LIST_KEY})/{ARRAY_SCRIPT_NAME}\"')",
        "#   sbatch --dependency=afterok:$jid --wrap \\",
        f"#     '{_NGFF_RESAVE} finalize {_command(finalize)}'",
        "# Line k of arrays.txt is the array of task k. The group metadata is written only by",
        "# finalize, so the output is not valid OME-Zarr 0.5 until every array is done.",
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        "while IFS= read -r array; do",
        f'  bash "$here/$array/{ARRAY_SCRIPT_NAME}" < /dev/null',
        f'done < "$here/{ARRAY_LIST_KEY}"',
        f"{_NGFF_RESAVE} finalize {_command(finalize)}",
        "",
    ]
    return "\n".join(lines)


# ---- writing ---------------------------------------------------------------------------------


def _write_script(dest: Store, key: str, text: str) -> None:
    dest.write(key, text.encode())
    if isinstance(dest, LocalStore):
        path = dest.describe(key)
        mode = os.stat(path).st_mode
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def write_scripts(
    options: ConvertOptions, tool: ScriptTool = "ngff-resave", *, script_workers: int = 0
) -> ScriptsResult:
    """Prepare ``options.output`` for per-array conversion (see module docstring).

    Writes the plan, the run marker, every array ``zarr.json``, one ``convert.sh`` per array,
    ``arrays.txt`` and ``convert-all.sh``; copies no pixels and writes no group metadata.
    The output must be empty, hold an earlier ``--output-script`` or interrupted run with the
    same plan (scripts are rewritten, shards kept), or ``options.overwrite`` must be set.
    """
    if tool not in SCRIPT_TOOLS:
        raise PlanError(f"--script-tool {tool!r} unknown; choose one of {', '.join(SCRIPT_TOOLS)}")
    _check_no_credentials(options.input, "input")
    _check_no_credentials(options.output, "output")
    source = open_store(options.input)
    inventory, plans, warnings = plan_conversion(source, options)
    for warning in warnings:
        log.warning("%s", warning)
    nodes = {n.path: n for n in inventory.arrays}
    for plan in plans:
        if "\n" in plan.path or "\r" in plan.path:
            raise InputError(f"array path {plan.path!r} has a line break; cannot list it")
    if tool == "zarrs_reencode":
        for spec, side in ((options.input, "input"), (options.output, "output")):
            remote = spec.bucket or spec.path.startswith("s3://")
            if remote or (side == "output" and spec.path.startswith(("http://", "https://"))):
                raise PlanError(
                    f"--script-tool zarrs_reencode needs a local {side} (zarrs_reencode reads "
                    "local paths or http(s) URLs and writes local directories); use "
                    "--script-tool ngff-resave for S3"
                )
    details = details_document(plans, source=source.url, shard_bytes=options.plan.shard_bytes)
    dest = open_store(options.output, for_writing=True)
    check_locations(source, dest)
    prepare_output(dest, options, details)

    result = ScriptsResult(plans, warnings=list(warnings))
    dest.write(DETAILS_KEY, (json.dumps(details, indent=2) + "\n").encode())
    dest.write(RUN_MARKER, run_marker_document(details))
    for plan in plans:
        node = nodes[plan.path]
        dest.write(join_key(plan.path, "zarr.json"), array_document(node, plan))
        if tool == "ngff-resave":
            text = ngff_resave_array_script(options, plan, workers=script_workers)
        else:
            text = zarrs_reencode_array_script(options, plan, node)
        key = join_key(plan.path, ARRAY_SCRIPT_NAME)
        _write_script(dest, key, text)
        result.array_scripts.append(key)
    listing = "".join(_line_path(p.path) + "\n" for p in plans)
    dest.write(ARRAY_LIST_KEY, listing.encode())
    _write_script(dest, CONVERT_ALL_KEY, convert_all_script(options, tool, len(plans)))
    return result


def add_script_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--output-script`` and ``--script-tool`` to the ``convert`` parser."""
    group = parser.add_argument_group("per-array scripts")
    group.add_argument(
        "--output-script",
        action="store_true",
        help="do not convert: write the array metadata and one OUTPUT/<array>/convert.sh per "
        "array, arrays.txt (for job arrays) and convert-all.sh (runs them, then finalizes)",
    )
    group.add_argument(
        "--script-tool",
        choices=SCRIPT_TOOLS,
        default="ngff-resave",
        help="what the scripts run: ngff-resave convert-array (default) or zarrs_reencode "
        "(zarrs_tools; local files only)",
    )


# ---- convert-array: one array, as one job ------------------------------------------------------


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the 0.4 input the scripts were written for")
    parser.add_argument("output", help="the output prepared by convert --output-script")
    parser.add_argument(
        "--verify",
        choices=["none", "sample", "full"],
        default="sample",
        help="check the written shards against the input (default: a sample)",
    )
    parser.add_argument("--workers", type=int, default=0, help="concurrent shards (default: cores)")
    add_location_args(parser, "input")
    add_location_args(parser, "output")
    add_remote_tuning(parser)


def add_convert_array_parser(subparsers: Any) -> None:
    """Add the ``convert-array`` and ``finalize`` subcommands (the steps the scripts run)."""
    conv = subparsers.add_parser(
        "convert-array",
        help="convert one array of an output prepared by convert --output-script",
        description="Copy one array's shards with its planned chunks, shards and codec "
        "(resumable: shards already written are kept). One HPC job-array step.",
    )
    _common_args(conv)
    conv.add_argument(
        "--array", required=True, metavar="PATH", help="the array's path ('.' for the root)"
    )
    conv.add_argument(
        "--details",
        metavar="FILE",
        help=f"the plan (default: OUTPUT/{DETAILS_KEY}, written by --output-script)",
    )
    fin = subparsers.add_parser(
        "finalize",
        help="finish an output prepared by convert --output-script",
        description="Write any shard still missing, verify, then write the group metadata "
        "(last) and remove the run marker: a resumed convert with the stored plan.",
    )
    _common_args(fin)


def _load_details(args: argparse.Namespace, dest: Store) -> tuple[Any, str]:
    if args.details:
        try:
            with open(args.details, encoding="utf-8") as fh:
                return json.load(fh), args.details
        except FileNotFoundError:
            raise InputError(f"{args.details}: details file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{args.details}: not a valid JSON details file ({exc})") from None
    document = read_json(dest, DETAILS_KEY)
    if document is None:
        raise InputError(
            f"{dest.describe(DETAILS_KEY)}: no plan; prepare the output with "
            "`ngff-resave convert INPUT OUTPUT --output-script` first"
        )
    return document, dest.describe(DETAILS_KEY)


def _tuple(entry: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise PlanError(f"{where}: '{key}' must be a list of integers")
    return tuple(value)


def plan_from_details(document: Any, path: str, where: str) -> ArrayPlan:
    """The :class:`ArrayPlan` of array ``path`` in a details document."""
    if not isinstance(document, dict) or not isinstance(document.get("arrays"), list):
        raise PlanError(f"{where}: not an ngff-resave details file (no 'arrays' list)")
    for entry in document["arrays"]:
        if isinstance(entry, dict) and entry.get("path") == path:
            label = f"{where}: array '{path}'"
            codec = entry.get("codec")
            if codec is not None and not isinstance(codec, dict):
                raise PlanError(f"{label}: codec must be null or a v3 codec object")
            return ArrayPlan(
                path=path,
                shape=_tuple(entry, "shape", label),
                dtype=str(entry.get("dtype")),
                chunks=_tuple(entry, "chunks", label),
                shards=_tuple(entry, "shards", label),
                codec=codec,
                path_taken=str(entry.get("path_taken")),
                reason=str(entry.get("reason", "")),
            )
    listed = ", ".join(repr(e.get("path")) for e in document["arrays"] if isinstance(e, dict))
    raise PlanError(f"{where}: no array '{path}' in the plan (it lists {listed})")


@dataclass
class ArrayRun:
    """What :func:`convert_array` did."""

    path: str
    written: int = 0
    skipped: int = 0
    empty: int = 0
    verified: int = 0


def convert_array(
    source_spec: LocationSpec,
    dest_spec: LocationSpec,
    plan: ArrayPlan,
    *,
    workers: int = 0,
    verify: str = "sample",
) -> ArrayRun:
    """Copy every shard of one array (skipping those already written), then verify."""
    from ngff_resave.convert import default_workers

    source = open_store(source_spec)
    dest = open_store(dest_spec, for_writing=True)
    check_locations(source, dest)
    zarray_key = join_key(plan.path, ".zarray")
    where = source.describe(zarray_key)
    doc = read_json(source, zarray_key)
    if doc is None:
        raise InputError(f"{where}: the array is missing from the input")
    meta = parse_v2_array(doc, where)
    check_source_codecs(meta, where)
    if meta.shape != plan.shape or v3_data_type(meta.numpy_dtype) != plan.dtype:
        raise PlanError(
            f"{where}: the input array (shape {list(meta.shape)}) is not the one planned "
            f"(shape {list(plan.shape)}, {plan.dtype}); rerun convert --output-script"
        )
    if not dest.exists(join_key(plan.path, "zarr.json")):
        raise OutputExistsError(
            f"{dest.describe(join_key(plan.path, 'zarr.json'))}: missing; prepare the output "
            "with `ngff-resave convert INPUT OUTPUT --output-script` first"
        )
    if not dest.exists(RUN_MARKER):
        raise OutputExistsError(
            f"{dest.url}: holds no run in progress (already finalized?); nothing to convert"
        )
    remove_temporaries(dest, plan.path)
    run = ArrayRun(plan.path)
    workers = workers or default_workers()
    template = CopyTask(source, dest, plan.path, meta, plan, (0,) * len(plan.shape), True)

    def tasks() -> Iterator[CopyTask]:
        for shard in shard_indices(plan):
            yield CopyTask(source, dest, plan.path, meta, plan, shard, True)

    def on_done(outcome: ShardOutcome) -> None:
        if outcome.skipped_existing:
            run.skipped += 1
        elif outcome.written:
            run.written += 1
        else:
            run.empty += 1

    ThreadEngine(workers).run(tasks(), on_done)
    checked, problems = verify_data([template], verify, workers)
    run.verified = checked
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(f"verification failed: {problems[0]}{more}")
    return run


def run_convert_array(args: argparse.Namespace) -> int:
    """``ngff-resave convert-array``: one array of a prepared output (exit status)."""
    source_spec = location_spec(args, "input", args.input)
    dest_spec = location_spec(args, "output", args.output)
    dest = open_store(dest_spec, for_writing=True)
    document, where = _load_details(args, dest)
    path = "" if args.array in (".", "/") else args.array.strip("/")
    plan = plan_from_details(document, path, where)
    run = convert_array(source_spec, dest_spec, plan, workers=args.workers, verify=args.verify)
    print(
        f"array {args.array}: {run.written} shards written, {run.skipped} already done, "
        f"{run.empty} empty (fill value); {run.verified} verified",
        file=sys.stderr,
    )
    return 0


def finalize(
    source_spec: LocationSpec,
    dest_spec: LocationSpec,
    *,
    workers: int = 0,
    verify: str = "sample",
    base: ConvertOptions | None = None,
) -> ConvertResult:
    """Finish a scripted output: a resumed :func:`convert` with the plan stored in it.

    ``base`` carries other options of the run (e.g. ``crate_writer``); its input, output,
    plan source and resume flags are replaced.
    """
    dest = open_store(dest_spec, for_writing=True)
    document = read_json(dest, DETAILS_KEY)
    if document is None:
        raise InputError(
            f"{dest.describe(DETAILS_KEY)}: no plan; was the output prepared with "
            "`convert --output-script`?"
        )
    if not dest.exists(RUN_MARKER):
        raise OutputExistsError(f"{dest.url}: holds no run in progress (already finalized?)")
    options = base or ConvertOptions(input=source_spec, output=dest_spec)
    with tempfile.TemporaryDirectory(prefix="ngff-resave-") as tmp:
        path = os.path.join(tmp, DETAILS_KEY)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(document, fh)
        options = replace(
            options,
            input=source_spec,
            output=dest_spec,
            resume=True,
            overwrite=False,
            write_details=False,
            read_details=path,
            workers=workers or options.workers,
            verify=verify,  # type: ignore[arg-type]
        )
        return convert(options)


def run_finalize(args: argparse.Namespace) -> int:
    """``ngff-resave finalize``: the last step of the scripts (exit status)."""
    result = finalize(
        location_spec(args, "input", args.input),
        location_spec(args, "output", args.output),
        workers=args.workers,
        verify=args.verify,
    )
    print(result.report.summary(), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ngff_resave.scripts convert-array|finalize …`` (until the CLI has them)."""
    from ngff_resave.errors import ResaveError

    parser = argparse.ArgumentParser(prog="ngff-resave")
    sub = parser.add_subparsers(dest="command", required=True)
    add_convert_array_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "convert-array":
            return run_convert_array(args)
        return run_finalize(args)
    except ResaveError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
