"""Hostile or broken inputs: exit 1, one ``ERROR:`` line naming the node, nothing else touched.

For every corpus case (:mod:`tests.reliability.corpus`) the CLI runs in-process
(``main(["convert", "-q", IN, OUT])``) and must:

* return 1 (0 for the awkward-but-valid cases, whose values must then equal the input's);
* write exactly one line to stderr, starting with ``ERROR:``, naming the file or node, with no
  traceback and no "unexpected" error (an exception the package did not raise on purpose);
* change nothing outside OUT: the digest of the whole scratch directory minus OUT (the input
  included) is the same before and after;
* leave no output that looks complete: OUT is absent, empty, or has no root ``zarr.json``;
* do it within the case's time bound (10^5 levels, 10^6 wells, a sparse 1 GiB ``.zattrs``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability import figures
from tests.reliability.corpus import (
    CASES,
    GOOD_CASES,
    Case,
    output_looks_complete,
    run_cli,
    tree_digest,
)
from tests.support.checks import assert_no_stray_files, assert_same_data


def _output_for(case: Case, base: Path, root: Path) -> Path:
    if case.id == "output-inside-input":
        return root / "out.zarr"
    return base / "out ü.zarr" if case.id == "spaces-and-unicode" else base / "out.zarr"


def test_corpus_is_large_enough() -> None:
    """The issue asks for at least 30 hostile cases, each with a distinct id."""
    ids = [c.id for c in CASES + GOOD_CASES]
    assert len(CASES) >= 30
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_rejected_cleanly(case: Case, tmp_path: Path) -> None:
    root = case.build(tmp_path)
    out = _output_for(case, tmp_path, root)
    before = tree_digest(tmp_path, exclude=[out])

    started = time.monotonic()
    run = run_cli(["convert", "-q", str(root), str(out), *list(case.args)])
    elapsed = time.monotonic() - started

    after = tree_digest(tmp_path, exclude=[out])
    if after != before:
        figures.record(figures.INPUTS_MODIFIED)
    assert after == before, "something outside the output (the input?) was modified"
    figures.record(figures.INPUTS_CHECKED)
    assert run.status == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.lines) == 1, f"expected one ERROR line, got:\n{run.stderr}"
    message = run.lines[0]
    assert message.startswith("ERROR: "), message
    assert "unexpected" not in message, f"not a ResaveError: {message}"
    assert case.names in message, f"{case.names!r} not named in: {message}"
    assert not output_looks_complete(out), "a failed run left a root zarr.json"
    assert elapsed < case.seconds, f"took {elapsed:.1f} s (bound {case.seconds} s)"
    figures.record(figures.HOSTILE_REJECTED)


@pytest.mark.parametrize("case", GOOD_CASES, ids=[c.id for c in GOOD_CASES])
def test_awkward_input_converts_exactly(case: Case, tmp_path: Path) -> None:
    root = case.build(tmp_path)
    out = _output_for(case, tmp_path, root)
    before = tree_digest(tmp_path, exclude=[out])

    run = run_cli(["convert", "-q", "--verify", "full", str(root), str(out), *list(case.args)])

    after = tree_digest(tmp_path, exclude=[out])
    if after != before:
        figures.record(figures.INPUTS_MODIFIED)
    assert after == before
    figures.record(figures.INPUTS_CHECKED)
    assert run.status == 0, run.stderr
    assert "ERROR" not in run.stderr and "Traceback" not in run.stderr
    assert output_looks_complete(out)
    assert not (out / ".ngff-resave-run.json").exists()
    assert_no_stray_files(out)
    assert assert_same_data(root, out) >= 2
    figures.record(figures.HOSTILE_ACCEPTED)
