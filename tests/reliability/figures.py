"""Counters the reliability tests record; ``conftest.py`` prints them as one summary line.

A counter is only incremented after the test's assertions about that event passed, so the
line states what was *shown*, not what was attempted. ``inputs_modified`` is incremented when a
hash of an input tree changed (the test then fails too).
"""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()

HOSTILE_REJECTED = "hostile inputs rejected cleanly"
HOSTILE_ACCEPTED = "awkward inputs converted"
CORRUPTIONS_DETECTED = "corruptions detected"
RESUME_IDENTICAL = "kill/resume rounds identical"
INPUTS_MODIFIED = "inputs modified"
INPUTS_CHECKED = "inputs checked unchanged"


def record(name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name``."""
    COUNTS[name] += n


def summary_line() -> str:
    """The one line of figures the issue asks for."""
    return (
        f"reliability: {COUNTS[HOSTILE_REJECTED]} hostile inputs rejected cleanly, "
        f"{COUNTS[CORRUPTIONS_DETECTED]} corruptions detected, "
        f"{COUNTS[RESUME_IDENTICAL]} kill/resume rounds identical, "
        f"{COUNTS[INPUTS_MODIFIED]} inputs modified"
    )
