"""Per-array scripts (``convert --output-script``), ``convert-array`` and ``finalize``.

Issue 6: "one executable convert.sh per array, at OUTPUT/<array path>/convert.sh (the
reference converter doubles the path for every non-root image; don't)", "a list file for job
arrays", "credentials never go into scripts", "run the ngff-resave flavour scripts and compare
with a direct conversion".
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ngff_resave.convert import RUN_MARKER, ConvertOptions, convert
from ngff_resave.errors import OutputExistsError, PlanError
from ngff_resave.locations import LocationSpec
from ngff_resave.planning import PlanOptions
from ngff_resave.scripts import (
    ARRAY_LIST_KEY,
    CONVERT_ALL_KEY,
    SCRIPT_FILES,
    convert_array,
    finalize,
    ngff_resave_array_script,
    plan_from_details,
    write_scripts,
)
from tests.support.builders import build_bioformats2raw, build_image, build_plate

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
#: Run the scripts' ngff-resave steps through this module (independent of the CLI wiring).
RUNNER = f"{shlex.quote(sys.executable)} -m ngff_resave.scripts"


def options(source: Path, out: Path, **kw: object) -> ConvertOptions:
    return ConvertOptions(LocationSpec(str(source)), LocationSpec(str(out)), **kw)  # type: ignore[arg-type]


def data_tree(root: Path) -> dict[str, bytes]:
    """Every file of an output except the scripts' own files."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in SCRIPT_FILES
    }


def _image(root: Path) -> Path:
    return build_image(root, levels=2, with_labels=True)


def _plate(root: Path) -> Path:
    return build_plate(root, rows=1, cols=2, fields=2, acquisitions=False)


def _bf2raw(root: Path) -> Path:
    return build_bioformats2raw(root, series=2)


CASES: list[tuple[str, Callable[[Path], Path], set[str]]] = [
    ("image+labels", _image, {"0", "1", "labels/cells/0", "labels/cells/1"}),
    ("plate fields", _plate, {f"A/{c}/{f}/{k}" for c in (1, 2) for f in (0, 1) for k in (0, 1)}),
    ("bioformats2raw series", _bf2raw, {f"{s}/{k}" for s in (0, 1) for k in (0, 1)}),
]


@pytest.mark.parametrize(("kind", "build", "arrays"), CASES, ids=[c[0] for c in CASES])
def test_one_script_per_array_at_the_array_path(
    kind: str, build: Callable[[Path], Path], arrays: set[str], tmp_path: Path
) -> None:
    source = build(tmp_path / "in.zarr")
    out = tmp_path / "out.zarr"
    result = write_scripts(options(source, out))
    assert {p.path for p in result.plans} == arrays
    assert set(result.array_scripts) == {f"{a}/convert.sh" for a in arrays}
    for array in arrays:
        script = out / array / "convert.sh"
        assert os.access(script, os.X_OK), f"{script} is not executable"
        text = script.read_text()
        assert f"--array {array}\n" in text  # the path once, never doubled
        assert (out / array / "zarr.json").is_file()
        subprocess.run(["bash", "-n", str(script)], check=True)  # valid bash
    assert os.access(out / CONVERT_ALL_KEY, os.X_OK)
    assert (out / ARRAY_LIST_KEY).read_text().splitlines() == [p.path for p in result.plans]
    # Nothing declares the output 0.5 yet: no group metadata until `finalize`.
    assert not (out / "zarr.json").exists()
    assert (out / RUN_MARKER).is_file()
    assert not list(out.rglob("c"))  # no pixels copied


def test_running_the_scripts_equals_a_direct_conversion(tmp_path: Path) -> None:
    # Two arrays (an image level and a label level): each step is a Python process.
    source = build_image(tmp_path / "in.zarr", levels=1, with_labels=True)
    plan = PlanOptions(shard_bytes=8192)  # several shards per array
    direct = tmp_path / "direct.zarr"
    convert(options(source, direct, plan=plan))
    out = tmp_path / "scripted.zarr"
    write_scripts(options(source, out, plan=plan))
    env = {**os.environ, "NGFF_RESAVE": RUNNER, "AWS_SECRET_ACCESS_KEY": SECRET}
    run = subprocess.run(
        ["bash", str(out / CONVERT_ALL_KEY)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert data_tree(out) == data_tree(direct)
    assert not (out / RUN_MARKER).exists()  # finalize removed the marker: the run is done
    assert SECRET not in run.stdout + run.stderr


def test_convert_array_resumes_and_finalize_repairs_a_missing_array(tmp_path: Path) -> None:
    source = build_image(tmp_path / "in.zarr", levels=2)
    plan_options = PlanOptions(shard_bytes=8192)
    out = tmp_path / "out.zarr"
    result = write_scripts(options(source, out, plan=plan_options))
    details = json.loads((out / "ngff-resave-details.json").read_text())
    plan = plan_from_details(details, "0", "details")
    assert plan == result.plans[0]
    src, dest = LocationSpec(str(source)), LocationSpec(str(out))
    first = convert_array(src, dest, plan, workers=2)
    assert first.written == plan.shard_count and first.skipped == 0
    again = convert_array(src, dest, plan, workers=2, verify="none")
    assert again.skipped == plan.shard_count and again.written == 0
    # Array "1" never ran (a failed job): finalize writes its shards before the groups.
    report = finalize(src, dest, workers=2).report
    assert report.groups_written == 1
    direct = tmp_path / "direct.zarr"
    convert(options(source, direct, plan=plan_options, verify="none"))
    assert data_tree(out) == data_tree(direct)
    with pytest.raises(OutputExistsError, match="already finalized"):
        finalize(src, dest)


def test_job_array_line_selects_the_array(tmp_path: Path) -> None:
    source = _bf2raw(tmp_path / "in.zarr")
    out = tmp_path / "out.zarr"
    result = write_scripts(options(source, out))
    for k, plan in enumerate(result.plans, start=1):
        picked = subprocess.run(
            ["bash", "-c", f'sed -n "${{SLURM_ARRAY_TASK_ID}}p" {ARRAY_LIST_KEY}'],
            cwd=out,
            env={**os.environ, "SLURM_ARRAY_TASK_ID": str(k)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert picked == plan.path
        assert (out / picked / "convert.sh").is_file()
    convert_all = (out / CONVERT_ALL_KEY).read_text()
    assert "--array=1-$n" in convert_all and "afterok" in convert_all


def test_zarrs_reencode_scripts_use_the_documented_flags(tmp_path: Path) -> None:
    source = build_image(tmp_path / "in.zarr", levels=2, compressor="blosc-zstd")
    out = tmp_path / "out.zarr"
    write_scripts(options(source, out), "zarrs_reencode")
    text = (out / "1" / "convert.sh").read_text()
    assert "cargo install zarrs_tools" in text
    detail = json.loads((out / "ngff-resave-details.json").read_text())["arrays"][1]
    chunks = ",".join(map(str, detail["chunks"]))
    shards = ",".join(map(str, detail["shards"]))
    codecs = shlex.quote(json.dumps([detail["codec"]], separators=(",", ":")))
    assert (
        f"zarrs_reencode --chunk-shape {chunks} --shard-shape {shards} "
        f"--dimension-names c,z,y,x --separator / --bytes-to-bytes-codecs {codecs} "
        '--validate "$in" "$tmp"'
    ) in text
    assert f"in={source}/1\n" in text and f"out={out}/1\n" in text
    subprocess.run(["bash", "-n", str(out / "1" / "convert.sh")], check=True)
    assert "finalize" in (out / CONVERT_ALL_KEY).read_text()


def test_zarrs_reencode_needs_local_files(tmp_path: Path) -> None:
    source = build_image(tmp_path / "in.zarr", levels=1)
    s3 = ConvertOptions(LocationSpec(str(source)), LocationSpec("s3://bucket/out.zarr"))
    with pytest.raises(PlanError, match="needs a local output"):
        write_scripts(s3, "zarrs_reencode")


def test_no_credentials_in_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    source = _image(tmp_path / "in.zarr")
    for tool in ("ngff-resave", "zarrs_reencode"):
        out = tmp_path / f"out-{tool}.zarr"
        write_scripts(options(source, out), tool)
        for path in out.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert SECRET not in text and "AKIAEXAMPLEKEYID0000" not in text, path
    # Remote locations: places are named (bucket, endpoint, region), keys never.
    remote = ConvertOptions(
        LocationSpec("in.zarr", bucket="lab", endpoint="https://s3.example.org", region="eu"),
        LocationSpec("s3://results/out.zarr"),
    )
    plan = write_scripts(options(source, tmp_path / "again.zarr")).plans[0]
    text = ngff_resave_array_script(remote, plan)
    assert "--input-bucket lab --input-endpoint https://s3.example.org --input-region eu" in text
    assert "s3://results/out.zarr" in text and SECRET not in text


def test_urls_with_credentials_are_refused(tmp_path: Path) -> None:
    bad = ConvertOptions(
        LocationSpec("https://alice:hunter2@data.example.org/in.zarr"),
        LocationSpec(str(tmp_path / "out.zarr")),
    )
    with pytest.raises(PlanError, match="credentials") as info:
        write_scripts(bad)
    assert "hunter2" not in str(info.value)


def test_existing_output_is_refused_unless_same_plan(tmp_path: Path) -> None:
    source = build_image(tmp_path / "in.zarr", levels=1)
    out = tmp_path / "out.zarr"
    write_scripts(options(source, out))
    write_scripts(options(source, out))  # same plan: scripts rewritten, nothing lost
    with pytest.raises(OutputExistsError, match="different plan"):
        write_scripts(options(source, out, plan=PlanOptions(shard_bytes=4096)))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_scripts(options(source, other))
