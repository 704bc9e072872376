"""The command line: exit codes, one-line errors, output safety, details files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngff_resave.cli import main
from tests.support import builders, checks


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return builders.build_image(
        tmp_path / "in.zarr", axes="zyx", shape=(6, 40, 50), chunks=(3, 16, 16), levels=2
    )


def test_success_exits_0_and_prints_a_summary(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    assert main(["convert", str(image), str(tmp_path / "out.zarr"), "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "converted 2 arrays (2 copied as stored, 0 re-encoded)" in err
    doc = json.loads(report.read_text())
    assert doc["total"]["arrays"] == 2 and doc["total"]["bytes_written"] > 0
    assert {a["path"] for a in doc["arrays"]} == {"0", "1"}
    for entry in doc["arrays"]:
        assert entry["path_taken"] == "copy-chunks"
        assert entry["cpu_seconds"] >= 0 and entry["peak_rss_bytes"] > 0


def test_resave_alias_and_module_entry_point(image: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ngff_resave", "resave", str(image), str(tmp_path / "o.zarr"), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o.zarr" / "zarr.json").exists()
    # The process ends without tearing the interpreter down: the summary must still be out.
    assert "converted 2 arrays" in run.stderr


def test_module_entry_point_exit_codes_and_flushed_output(image: Path, tmp_path: Path) -> None:
    # Buffered standard streams, as on most machines: the output must be flushed before the
    # process ends (os._exit does not).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ngff_resave", *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("ngff-resave ")
    missing = run("convert", str(tmp_path / "absent.zarr"), str(tmp_path / "o.zarr"))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "absent.zarr" in missing.stderr
    assert run("convert", str(image)).returncode == 2


def test_usage_errors_exit_2(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(image)]) == 2
    assert main(["convert", str(image), str(tmp_path / "o"), "--verify", "maybe"]) == 2
    assert main(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--max-memory", "lots", "--max-memory: size 'lots' not understood"),
        ("--shard-size", "-3", "--shard-size: size '-3' not understood"),
        ("--output-chunks", "1,x", "--output-chunks '1,x' must be comma-separated integers"),
        ("--output-shards", "0,4", "--output-shards '0,4' must be positive integers"),
        ("--output-codec", "bogus", "--output-codec: codec 'bogus' unknown; choose one of"),
    ],
    ids=lambda v: str(v)[:14],
)
def test_bad_flag_values_are_usage_errors(
    image: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    says: str,
) -> None:
    """A value the option cannot take: exit 2, one line naming the option, nothing written."""
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out), flag, value]) == 2
    assert says in checks.one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_existing_output_is_refused_unless_overwrite(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["convert", str(image), str(out), "-q"]) == 1
    assert "--output-overwrite" in checks.one_error_line(capsys.readouterr().err)
    assert (out / "keep.txt").read_text() == "precious"
    assert main(["convert", str(image), str(out), "-q", "--output-overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "zarr.json").exists()


def test_output_inside_input_is_refused(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = builders.hash_tree(image)
    assert main(["convert", str(image), str(image / "nested.zarr"), "-q"]) == 1
    assert "overlap" in checks.one_error_line(capsys.readouterr().err)
    assert builders.hash_tree(image) == before


def test_details_write_edit_read(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    details = tmp_path / "params.json"
    assert main(["convert", str(image), str(details), "--output-write-details"]) == 0
    doc = json.loads(details.read_text())
    entry = next(a for a in doc["arrays"] if a["path"] == "0")
    assert entry["shape"] == [6, 40, 50] and entry["chunks"] == [3, 16, 16]
    assert entry["path_taken"] == "copy-chunks"
    # A user edits the plan: other shards, a changed shape (ignored with a warning).
    entry["shards"] = [3, 32, 16]
    entry["shape"] = [1, 1, 1]
    details.write_text(json.dumps(doc))
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out), "--output-read-details", str(details), "-q"]) == 0
    assert "shape [1, 1, 1] ignored" in capsys.readouterr().err
    meta = json.loads((out / "0" / "zarr.json").read_text())
    assert meta["shape"] == [6, 40, 50]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [3, 32, 16]
    # A shard that is not a multiple of the chunk: a clear error before anything is written.
    entry["shards"] = [3, 24, 16]
    details.write_text(json.dumps(doc))
    out2 = tmp_path / "out2.zarr"
    assert main(["convert", str(image), str(out2), "--output-read-details", str(details)]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert "params.json" in line and "not a whole multiple" in line
    assert not out2.exists()


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def break_malformed_json(root: Path) -> str:
    write(root / ".zattrs", '{"multiscales": [')
    return ".zattrs"


def break_missing_level(root: Path) -> str:
    (root / "1" / ".zarray").unlink()
    return "1/.zarray"


def break_level_shape(root: Path) -> str:
    doc = json.loads((root / "1" / ".zarray").read_text())
    doc["shape"] = [6, 400, 50]
    write(root / "1" / ".zarray", json.dumps(doc))
    return "1/.zarray"


def break_unknown_codec(root: Path) -> str:
    doc = json.loads((root / "0" / ".zarray").read_text())
    doc["compressor"] = {"id": "no-such-codec"}
    write(root / "0" / ".zarray", json.dumps(doc))
    return "0/.zarray"


def break_escaping_path(root: Path) -> str:
    attrs = json.loads((root / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][1]["path"] = "../../etc"
    write(root / ".zattrs", json.dumps(attrs))
    return ".zattrs"


def break_v05_input(root: Path) -> str:
    write(root / "zarr.json", json.dumps({"zarr_format": 3, "node_type": "group"}))
    return "zarr.json"


def break_not_ome(root: Path) -> str:
    write(root / ".zattrs", json.dumps({"hello": "world"}))
    return ".zattrs"


BREAKERS = [
    break_malformed_json,
    break_missing_level,
    break_level_shape,
    break_unknown_codec,
    break_escaping_path,
    break_v05_input,
    break_not_ome,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__[6:] for b in BREAKERS])
def test_bad_input_one_line_error_naming_the_file(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], breaker: object
) -> None:
    assert callable(breaker)
    named = breaker(image)
    before = builders.hash_tree(image)
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out)]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert os.path.join(str(image), named).replace("/.zattrs", "") in line or named in line
    assert builders.hash_tree(image) == before, "the input was modified"
    assert not out.exists(), "bad input must be refused before anything is written"


def test_corrupt_chunk_is_reported_with_its_key(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chunk = image / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out)]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert str(chunk) in line
    assert not (out / "zarr.json").exists(), "a failed run must not look complete"


def test_validate_reports_each_node(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    assert "ok" in capsys.readouterr().out
    doc = json.loads((out / "zarr.json").read_text())
    del doc["attributes"]["ome"]["version"]
    (out / "zarr.json").write_text(json.dumps(doc))
    assert main(["validate", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_command_finds_a_corrupt_shard(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.zarr"
    assert main(["convert", str(image), str(out), "-q"]) == 0
    assert main(["verify", str(image), str(out)]) == 0
    shard = next(p for p in sorted((out / "0" / "c").rglob("*")) if p.is_file())
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x55
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", str(image), str(out)]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert "array '0'" in line and shard.relative_to(out / "0").as_posix() in line
