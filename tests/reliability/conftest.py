"""Fixtures of the reliability suite and the session's summary line of figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.figures import COUNTS, summary_line


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder carries the ``reliability`` marker."""
    for item in items:
        if "tests/reliability/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures line once, when any reliability counter moved."""
    if sum(COUNTS.values()):
        terminalreporter.write_line(summary_line())
